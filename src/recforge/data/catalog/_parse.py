"""Parsers shared by the catalog's loaders: integer tables, adjacency and LDA-C lines.

Every parser names the file, line and field of the first bad value
(:class:`~recforge.data.io.DataFormatError`) and returns numpy arrays.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge.data.download import sha256_file, verified_record
from recforge.data.interactions import Interactions
from recforge.data.io import DataFormatError, _split_lines
from recforge.data.split import Split

__all__ = [
    "adjacency",
    "check_min",
    "choice",
    "empty_like",
    "file_sha256",
    "int_fields",
    "ldac",
    "predefined",
    "read_lines",
    "table",
    "universe",
]


def read_lines(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    if not raw.strip():
        raise DataFormatError("file is empty", file=path)
    return _split_lines(raw)


def int_fields(
    path: Path, lines: list[bytes], sep: bytes | None
) -> tuple[np.ndarray, np.ndarray]:
    """(number of fields of every line, all fields as one int64 array)."""
    toks = [ln.split(sep) for ln in lines]
    lengths = np.fromiter((len(t) for t in toks), dtype=np.int64, count=len(toks))
    flat = list(itertools.chain.from_iterable(toks))
    try:
        vals = np.array(flat, dtype=np.bytes_).astype(np.int64) if flat else np.zeros(0, np.int64)
    except ValueError:
        for n, t in enumerate(toks):
            for j, tok in enumerate(t):
                try:
                    int(tok)
                except ValueError:
                    raise DataFormatError(
                        f"expected an integer, found {tok.decode('latin-1')!r}",
                        file=path,
                        line=n + 1,
                        column=f"field {j + 1}",
                    ) from None
        raise
    return lengths, vals


def table(path: Path, ncols: int, sep: str = "\t") -> np.ndarray:
    """Integer table with ``ncols`` columns; pandas fast path, exact line on any error."""
    import pandas as pd

    try:
        df = pd.read_csv(path, sep=sep, header=None, dtype=np.int64, engine="c")
        if df.shape[1] == ncols and len(df):
            return df.to_numpy()
    except (ValueError, pd.errors.ParserError):
        pass  # fall through to the slow path, which names the offending line
    lines = read_lines(path)
    lengths, vals = int_fields(path, lines, sep.encode())
    bad = np.flatnonzero(lengths != ncols)
    if bad.size:
        k = int(bad[0])
        raise DataFormatError(
            f"{int(lengths[k])} field(s), expected {ncols}", file=path, line=k + 1
        )
    return vals.reshape(-1, ncols)


def check_min(path: Path, vals: np.ndarray, lines: np.ndarray, base: int, what: str) -> None:
    bad = np.flatnonzero(vals < base)
    if bad.size:
        k = int(bad[0])
        raise DataFormatError(
            f"{what} id {int(vals[k])} is below {base}", file=path, line=int(lines[k])
        )


def adjacency(path: Path, base: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lines ``user item_1 item_2 ...`` -> (users, items, file line of each pair)."""
    lines = read_lines(path)
    lengths, vals = int_fields(path, lines, None)
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        raise DataFormatError("empty line", file=path, line=int(empty[0]) + 1)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    users_per_line = vals[starts]
    n_items = lengths - 1
    is_item = np.ones(vals.size, dtype=bool)
    is_item[starts] = False
    items = vals[is_item]
    users = np.repeat(users_per_line, n_items)
    line_no = np.repeat(np.arange(1, len(lines) + 1), n_items)
    check_min(path, users_per_line, np.arange(1, len(lines) + 1), base, "user")
    check_min(path, items, line_no, base, "item")
    return users, items, line_no


def ldac(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """LDA-C lines: line n is row n, ``count id_1 ... id_count`` (0-based).

    Returns (rows, ids, file line of each pair, number of lines).
    """
    lines = read_lines(path)
    lengths, vals = int_fields(path, lines, None)
    empty = np.flatnonzero(lengths == 0)
    if empty.size:
        raise DataFormatError("empty line (expected 'count id ...')", file=path,
                              line=int(empty[0]) + 1)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    counts = vals[starts]
    bad = np.flatnonzero(counts != lengths - 1)
    if bad.size:
        k = int(bad[0])
        raise DataFormatError(
            f"count field says {int(counts[k])} but {int(lengths[k]) - 1} ids follow",
            file=path,
            line=k + 1,
        )
    is_id = np.ones(vals.size, dtype=bool)
    is_id[starts] = False
    ids = vals[is_id]
    rows = np.repeat(np.arange(len(lines), dtype=np.int64), counts)
    line_no = rows + 1
    check_min(path, ids, line_no, 0, "item")
    return rows, ids, line_no, len(lines)


def universe(base: int, declared: int, *seen: np.ndarray) -> np.ndarray:
    """Ids base .. base+declared-1, widened to the largest id seen."""
    top = base + declared - 1
    for s in seen:
        if s.size:
            top = max(top, int(s.max()))
    return np.arange(base, top + 1, dtype=np.int64)


def empty_like(x: Interactions, name: str) -> Interactions:
    z = np.zeros(0, dtype=np.int64)
    return Interactions.from_arrays(
        z, z, shape=x.shape, user_ids=x.user_ids, item_ids=x.item_ids, name=name
    )


def predefined(
    dataset: str,
    train: Interactions,
    test: Interactions,
    options: dict[str, Any],
    files: dict[str, Path],
    negatives: sp.csr_matrix | None = None,
) -> Split:
    """A released split, its ``params`` naming the dataset, options and each file's sha256."""
    return Split(
        train=train,
        test=test,
        test_negatives=negatives,
        method="predefined",
        params={
            "dataset": dataset,
            **options,
            "files": {fn: file_sha256(files[fn]) for fn in sorted(files)},
        },
    )


def file_sha256(path: Path) -> str:
    """The sha256 of a fetched file: from its verification record, else hashed now."""
    rec = verified_record(path)
    if rec is not None and rec.get("size") == path.stat().st_size and "sha256" in rec:
        return str(rec["sha256"])
    return sha256_file(path)


def choice(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"option {name}={value!r} is not one of {list(allowed)}")


