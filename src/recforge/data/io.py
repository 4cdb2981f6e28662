"""Build :class:`~recforge.data.interactions.Interactions` from data frames and files.

Every builder takes the caller's column names (``user_col``, ``item_col``, optional
``rating_col`` and ``timestamp_col``), maps external ids to internal indices 0..n-1 (sorted
external ids, kept in ``user_ids`` / ``item_ids``) and validates the input. Anything wrong
raises :class:`DataFormatError`, which names the file, the line (or row) and the column.

``id_type="int"`` requires integer ids and keeps them as int64; ``id_type="str"`` treats ids as
strings (CSV ids are read as text, so ``"007"`` stays ``"007"``). ``implicit=True`` stores 1.0
in the matrix but keeps the ratings in ``Interactions.ratings``. Duplicate (user, item) pairs
raise by default; ``duplicates="last"`` keeps the last one (latest timestamp when timestamps
are given, otherwise the last in input order).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from recforge.data.interactions import Interactions

# pandas is imported inside the functions that use it: `import recforge.data` stays light.
if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DataFormatError",
    "build_interactions",
    "from_pandas",
    "from_polars",
    "read_csv",
    "read_interactions",
    "read_parquet",
]

IdType = Literal["int", "str"]
Duplicates = Literal["error", "last"]

# Separators we recognise when a file turns out to hold a single column.
_CANDIDATE_SEPS = ("\t", ",", ";", "|", "::", " ")


class DataFormatError(ValueError):
    """Input data that cannot be turned into interactions.

    Attributes:
        file: the file (or a label such as ``"<pandas.DataFrame>"``), or None.
        line: 1-based line in the file, or None (in-memory frames and parquet use ``row``).
        column: the column concerned, or None.
        row: 0-based row position in a frame or parquet file, or None.
        reason: the message without the location prefix.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        line: int | None = None,
        column: str | None = None,
        row: int | None = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.line = line
        self.column = column
        self.row = row
        self.reason = message
        where = []
        if self.file is not None:
            where.append(self.file)
        if line is not None:
            where.append(f"line {line}")
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column {column!r}")
        super().__init__(f"{', '.join(where)}: {message}" if where else message)


@dataclass(frozen=True)
class _Where:
    """Turns a 0-based data row position into the location fields of an error."""

    file: str | None
    first_line: int | None  # file line of data row 0; None when rows have no line number
    lines: np.ndarray | None = None  # file line of every data row (overrides first_line)

    def line(self, row: int) -> int | None:
        if self.lines is not None:
            return int(self.lines[row])
        return None if self.first_line is None else int(row) + self.first_line

    def label(self, row: int) -> str:
        line = self.line(row)
        return f"row {row}" if line is None else f"line {line}"

    def error(self, message: str, row: int | None = None, column: str | None = None) -> Exception:
        if row is None:
            return DataFormatError(message, file=self.file, column=column)
        line = self.line(row)
        if line is None:
            return DataFormatError(message, file=self.file, row=int(row), column=column)
        return DataFormatError(message, file=self.file, line=line, column=column)


# ---------------------------------------------------------------------------- core


def _show(value: Any) -> str:
    """repr of a value without numpy's ``np.int64(...)`` wrapper."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def _check_present(s: pd.Series, col: str, where: _Where) -> None:
    import pandas as pd
    bad = s.isna().to_numpy()
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        bad = bad | s.astype(str).str.strip().eq("").to_numpy()
    k = _first(bad)
    if k is not None:
        raise where.error("empty or missing value", row=k, column=col)


def _integers(s: pd.Series, col: str, where: _Where, what: str, hint: str = "") -> np.ndarray:
    """Column as int64, or an error naming the first value that is not an integer."""
    import pandas as pd
    if pd.api.types.is_bool_dtype(s.dtype):
        raise where.error(f"{what} must be integers, found booleans", column=col)
    if pd.api.types.is_integer_dtype(s.dtype):
        return s.to_numpy(dtype=np.int64)
    num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(num) | (num != np.floor(num))
    k = _first(bad)
    if k is not None:
        raise where.error(
            f"{what} must be integers, found {_show(s.iloc[k])}{hint}", row=k, column=col
        )
    return num.astype(np.int64)


def _floats(s: pd.Series, col: str, where: _Where, what: str) -> np.ndarray:
    import pandas as pd
    num = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64)
    k = _first(~np.isfinite(num))
    if k is not None:
        raise where.error(f"{what} must be numbers, found {_show(s.iloc[k])}", row=k, column=col)
    return num


def _timestamps(s: pd.Series, col: str, where: _Where) -> np.ndarray:
    import pandas as pd
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        # Unix seconds, like the files the registry loads.
        return (s.astype("datetime64[ns]").to_numpy().astype(np.int64) // 10**9).astype(np.int64)
    return _integers(s, col, where, "timestamps")


def _external_ids(
    s: pd.Series, col: str, id_type: IdType, where: _Where
) -> tuple[np.ndarray, np.ndarray]:
    """(sorted unique external ids, internal index of every row)."""
    if id_type == "int":
        vals = _integers(
            s, col, where, "ids", " (ids are declared numeric; pass id_type='str' for text ids)"
        )
    elif id_type == "str":
        vals = s.astype(str).str.strip().to_numpy(dtype=str)
    else:
        raise ValueError(f"id_type must be 'int' or 'str', got {id_type!r}")
    uniq, inverse = np.unique(vals, return_inverse=True)
    return uniq, inverse.astype(np.int64)


def _duplicate_error(
    users: np.ndarray,
    items: np.ndarray,
    user_ids: np.ndarray,
    item_ids: np.ndarray,
    n_items: int,
    where: _Where,
) -> Exception | None:
    """Error naming the first repeated (user, item) pair in input order, or None."""
    keys = users * np.int64(n_items) + items
    order = np.argsort(keys, kind="stable")
    sk = keys[order]
    dup = np.flatnonzero(sk[1:] == sk[:-1]) + 1
    if dup.size == 0:
        return None
    # With a stable sort the later row of each equal pair sits at the higher sorted position.
    second = order[dup]
    j = int(np.argmin(second))
    row = int(second[j])
    first_row = int(order[dup[j] - 1])
    # Walk back to the first occurrence of this key.
    p = int(dup[j]) - 1
    while p > 0 and sk[p - 1] == sk[p]:
        p -= 1
        first_row = int(order[p])
    pair = f"({_show(user_ids[users[row]])}, {_show(item_ids[items[row]])})"
    return where.error(
        f"duplicate (user, item) pair {pair}, "
        f"first seen at {where.label(first_row)}; pass duplicates='last' to keep the last "
        "one, or use recforge.data.filters.deduplicate",
        row=row,
    )


def build_interactions(
    users: np.ndarray,
    items: np.ndarray,
    *,
    ratings: np.ndarray | None = None,
    timestamps: np.ndarray | None = None,
    user_ids: np.ndarray | None = None,
    item_ids: np.ndarray | None = None,
    implicit: bool = False,
    duplicates: Duplicates = "error",
    name: str = "interactions",
    source: str | Path | None = None,
    first_line: int | None = None,
    lines: np.ndarray | None = None,
) -> Interactions:
    """Build from arrays of *external* ids, optionally within a declared id universe.

    ``user_ids`` / ``item_ids``: the full external id universe (sorted); ids that never occur
    still get a row / column. Without them the universe is the sorted set of ids seen. An id
    outside a declared universe raises :class:`DataFormatError`, as does a duplicate pair
    unless ``duplicates="last"``. ``source`` names the file; data row ``k`` is file line
    ``lines[k]`` if given, else ``first_line + k``.
    """
    where = _Where(None if source is None else str(source), first_line, lines)
    users = np.asarray(users)
    items = np.asarray(items)
    if users.size == 0:
        raise where.error("no interactions")
    mapped = []
    for col, ext, universe in (("user", users, user_ids), ("item", items, item_ids)):
        if universe is None:
            uniq, idx = np.unique(ext, return_inverse=True)
        else:
            uniq = np.asarray(universe)
            if uniq.size > 1 and not (uniq[1:] > uniq[:-1]).all():
                raise ValueError(f"{col}_ids universe must be sorted and unique")
            idx = np.searchsorted(uniq, ext)
            idx_c = np.minimum(idx, uniq.size - 1)
            k = _first(uniq[idx_c] != ext)
            if k is not None:
                raise where.error(
                    f"{col} id {_show(ext[k])} outside the declared universe "
                    f"({uniq.size} ids, {_show(uniq[0])}..{_show(uniq[-1])})",
                    row=k,
                    column=col,
                )
            idx = idx_c
        mapped.append((uniq, idx.astype(np.int64)))
    (uids, u), (iids, i) = mapped
    return _assemble(
        u, i, uids, iids, ratings, timestamps, implicit, duplicates, name, where
    )


def _assemble(
    u: np.ndarray,
    i: np.ndarray,
    uids: np.ndarray,
    iids: np.ndarray,
    ratings: np.ndarray | None,
    timestamps: np.ndarray | None,
    implicit: bool,
    duplicates: str,
    name: str,
    where: _Where,
) -> Interactions:
    if duplicates not in ("error", "last"):
        raise ValueError(f"duplicates must be 'error' or 'last', got {duplicates!r}")
    if duplicates == "error":
        err = _duplicate_error(u, i, uids, iids, len(iids), where)
        if err is not None:
            raise err
    r = None if ratings is None else np.asarray(ratings, dtype=np.float32)
    values = None if (implicit or r is None) else r
    return Interactions.from_arrays(
        u,
        i,
        values,
        shape=(len(uids), len(iids)),
        ratings=r,
        timestamps=None if timestamps is None else np.asarray(timestamps, dtype=np.int64),
        user_ids=uids,
        item_ids=iids,
        duplicates=duplicates,
        name=name,
    )


def _needed(user_col: str, item_col: str, rating_col: str | None, ts_col: str | None) -> list[str]:
    cols = [user_col, item_col]
    cols += [c for c in (rating_col, ts_col) if c is not None]
    if len(set(cols)) != len(cols):
        raise ValueError(f"column names must be distinct, got {cols}")
    return cols


def _check_columns(found: Sequence[Any], needed: list[str], where: _Where) -> None:
    names = [str(c) for c in found]
    for c in needed:
        if c not in names:
            raise where.error(f"column {c!r} not found; columns found: {names}", column=c)


def _from_frame(
    df: pd.DataFrame,
    user_col: str,
    item_col: str,
    rating_col: str | None,
    timestamp_col: str | None,
    id_type: IdType,
    implicit: bool,
    duplicates: Duplicates,
    name: str,
    where: _Where,
) -> Interactions:
    needed = _needed(user_col, item_col, rating_col, timestamp_col)
    _check_columns(df.columns, needed, where)
    if len(df) == 0:
        raise where.error("no interactions (zero rows)")
    for c in needed:
        _check_present(df[c], c, where)
    uids, u = _external_ids(df[user_col], user_col, id_type, where)
    iids, i = _external_ids(df[item_col], item_col, id_type, where)
    r = None if rating_col is None else _floats(df[rating_col], rating_col, where, "ratings")
    ts = None if timestamp_col is None else _timestamps(df[timestamp_col], timestamp_col, where)
    return _assemble(u, i, uids, iids, r, ts, implicit, duplicates, name, where)


# ---------------------------------------------------------------------------- frames


def from_pandas(
    df: pd.DataFrame,
    user_col: str,
    item_col: str,
    rating_col: str | None = None,
    timestamp_col: str | None = None,
    *,
    id_type: IdType = "int",
    implicit: bool = False,
    duplicates: Duplicates = "error",
    name: str = "interactions",
) -> Interactions:
    """Build from a pandas DataFrame; errors name the 0-based row position."""
    import pandas as pd
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    where = _Where("<pandas.DataFrame>", None)
    df = df.reset_index(drop=True)
    return _from_frame(
        df, user_col, item_col, rating_col, timestamp_col, id_type, implicit, duplicates, name,
        where,
    )


def from_polars(
    df: Any,
    user_col: str,
    item_col: str,
    rating_col: str | None = None,
    timestamp_col: str | None = None,
    *,
    id_type: IdType = "int",
    implicit: bool = False,
    duplicates: Duplicates = "error",
    name: str = "interactions",
) -> Interactions:
    """Build from a polars DataFrame (or LazyFrame); errors name the 0-based row position."""
    import pandas as pd
    import polars as pl

    if isinstance(df, pl.LazyFrame):
        df = df.collect()
    if not isinstance(df, pl.DataFrame):
        raise TypeError(f"expected a polars DataFrame, got {type(df).__name__}")
    where = _Where("<polars.DataFrame>", None)
    needed = _needed(user_col, item_col, rating_col, timestamp_col)
    _check_columns(df.columns, needed, where)
    pdf = pd.DataFrame({c: df.get_column(c).to_pandas() for c in needed})
    return _from_frame(
        pdf, user_col, item_col, rating_col, timestamp_col, id_type, implicit, duplicates, name,
        where,
    )


# ---------------------------------------------------------------------------- text files


def _split_lines(raw: bytes) -> list[bytes]:
    lines = raw.split(b"\n")
    while lines and not lines[-1].strip():
        lines.pop()  # trailing newline(s) at the end of the file are fine
    if b"\r" not in raw:
        return lines
    return [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]


def _guess_sep(first_line: str, expected: int) -> str | None:
    """The candidate separator that splits ``first_line`` into at least ``expected`` fields."""
    for cand in _CANDIDATE_SEPS:
        n = len(first_line.split()) if cand == " " else len(first_line.split(cand))
        if n >= expected:
            return cand
    return None


def _field_counts(raw: bytes, lines: list[bytes], sep: str) -> np.ndarray:
    """Number of fields of every line of ``raw`` = ``lines`` joined by newlines.

    Quotes are not honoured: callers skip this check for quoted files.
    """
    sb = sep.encode()
    if len(sb) == 1:
        buf = np.frombuffer(raw, dtype=np.uint8)
        nl = np.flatnonzero(buf == 10)
        n = len(lines)
        starts = np.concatenate([[0], nl + 1])[:n]
        ends = np.concatenate([nl, [buf.size]])[:n]
        seps = np.flatnonzero(buf == sb[0])
        return np.searchsorted(seps, ends) - np.searchsorted(seps, starts) + 1
    return np.fromiter((ln.count(sb) + 1 for ln in lines), dtype=np.int64, count=len(lines))


def _default_sep(path: Path) -> str | None:
    suffix = path.suffix.lower()
    if suffix in (".tsv", ".tab"):
        return "\t"
    if suffix == ".csv":
        return ","
    return None


def read_csv(
    path: str | Path,
    user_col: str,
    item_col: str,
    rating_col: str | None = None,
    timestamp_col: str | None = None,
    *,
    sep: str | None = None,
    header: bool = True,
    names: Sequence[str] | None = None,
    id_type: IdType = "int",
    implicit: bool = False,
    duplicates: Duplicates = "error",
    encoding: str = "utf-8",
    name: str | None = None,
) -> Interactions:
    """Build from a delimited text file (CSV, TSV, ``::``-separated ...).

    ``sep``: the separator; default from the suffix (``.tsv`` tab, ``.csv`` comma), else
    guessed from the first line. ``header=False`` needs ``names`` (one per field). Errors
    give the 1-based file line: empty file, single column (with the separator that the file
    seems to use), ragged or empty lines, missing columns, empty values, non-numeric ids,
    duplicate pairs.
    """
    import pandas as pd
    path = Path(path)
    raw = path.read_bytes()
    where_file = _Where(str(path), None)
    if not raw.strip():
        raise DataFormatError("file is empty", file=path)
    needed = _needed(user_col, item_col, rating_col, timestamp_col)
    if not header and names is None:
        raise ValueError("header=False needs names= (the name of every field)")
    lines = _split_lines(raw)
    # Normalised copy: no CR, no trailing blank lines, so data row k is line k + 1 (+ header).
    raw = b"\n".join(lines) + b"\n"
    first = lines[0].decode(encoding, errors="replace")
    expected_fields = len(names) if names is not None else len(needed)
    if sep is None:
        sep = _default_sep(path) or _guess_sep(first, expected_fields) or ","
    first_fields = first.split() if sep == " " else first.split(sep)
    if len(first_fields) == 1 and expected_fields > 1:
        other = _guess_sep(first, expected_fields)
        hint = (
            f"; the file seems to use {other!r} as separator (pass sep={other!r})"
            if other is not None and other != sep
            else ""
        )
        raise DataFormatError(
            f"expected at least {expected_fields} fields separated by {sep!r} but line 1 is "
            f"a single field {first[:80]!r}{hint}",
            file=path,
            line=1,
        )
    quoted = b'"' in raw
    if sep != " " and not quoted:
        counts = _field_counts(raw, lines, sep)
        n_expected = len(names) if names is not None and not header else int(counts[0])
        bad = np.flatnonzero(counts != n_expected)
        if bad.size:
            k = int(bad[0])
            if not lines[k].strip():
                raise DataFormatError("empty line", file=path, line=k + 1)
            raise DataFormatError(
                f"ragged line: {int(counts[k])} field(s), expected {n_expected}"
                + ("" if names is not None and not header else " (as in the header)"),
                file=path,
                line=k + 1,
            )
    elif sep == " ":
        lens = np.fromiter((len(ln.split()) for ln in lines), dtype=np.int64, count=len(lines))
        n_expected = len(names) if names is not None and not header else int(lens[0])
        first_bad = _first(lens != n_expected)
        if first_bad is not None:
            raise DataFormatError(
                f"ragged line: {int(lens[first_bad])} field(s), expected {n_expected}",
                file=path,
                line=first_bad + 1,
            )
    if header:
        found = [f.strip().strip('"') for f in first_fields]
        cols = list(names) if names is not None else found
        _check_columns(cols, needed, where_file)
        if len(lines) == 1:
            raise DataFormatError("no data rows after the header", file=path)
    else:
        _check_columns(list(names or []), needed, where_file)
    dtype = {user_col: str, item_col: str} if id_type == "str" else None
    read_sep = sep
    data = raw
    if len(sep) > 1 and sep != " ":
        # The C parser needs a one-character separator; \x1f (unit separator) never occurs
        # in interaction files.
        if b"\x1f" in raw:
            raise DataFormatError("file contains the control byte 0x1f", file=path)
        data = raw.replace(sep.encode(), b"\x1f")
        read_sep = "\x1f"
    try:
        df = pd.read_csv(
            io.BytesIO(data),
            sep=r"\s+" if sep == " " else read_sep,
            header=0 if header else None,
            names=list(names) if names is not None else None,
            usecols=needed,
            dtype=dtype,
            encoding=encoding,
            skip_blank_lines=False,
            keep_default_na=True,
        )
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise DataFormatError(
            f"cannot parse: {exc}", file=path, line=int(m.group(1)) if m else None
        ) from exc
    where = _Where(str(path), 2 if header else 1)
    return _from_frame(
        df, user_col, item_col, rating_col, timestamp_col, id_type, implicit, duplicates,
        name or path.stem, where,
    )


def read_parquet(
    path: str | Path,
    user_col: str,
    item_col: str,
    rating_col: str | None = None,
    timestamp_col: str | None = None,
    *,
    id_type: IdType = "int",
    implicit: bool = False,
    duplicates: Duplicates = "error",
    name: str | None = None,
) -> Interactions:
    """Build from a parquet file; errors name the 0-based row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if path.stat().st_size == 0:
        raise DataFormatError("file is empty", file=path)
    needed = _needed(user_col, item_col, rating_col, timestamp_col)
    where = _Where(str(path), None)
    try:
        schema = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataFormatError(f"not a readable parquet file: {exc}", file=path) from exc
    _check_columns(schema.names, needed, where)
    df = pq.read_table(path, columns=needed).to_pandas()
    return _from_frame(
        df, user_col, item_col, rating_col, timestamp_col, id_type, implicit, duplicates,
        name or path.stem, where,
    )


_READERS: dict[str, Callable[..., Interactions]] = {
    ".parquet": read_parquet,
    ".pq": read_parquet,
}


def read_interactions(
    path: str | Path, user_col: str, item_col: str, **kwargs: Any
) -> Interactions:
    """Dispatch on the suffix: ``.parquet``/``.pq`` to :func:`read_parquet`, else ``read_csv``."""
    reader = _READERS.get(Path(path).suffix.lower(), read_csv)
    return reader(path, user_col, item_col, **kwargs)
