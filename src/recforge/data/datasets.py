"""Built-in datasets of the RecSys'19 reproduction: file specs (sha256, size, original URL),
licence notes and loaders. Registered into :mod:`recforge.data.registry` on import.

Loaders are deterministic parsers of the released files (no sampling). Id conventions:
external ids are kept exactly as in the files (1-based for MovieLens-100k / MCRec, 0-based for
the SpectralCF, CVAE, CMN and NCF releases) and every id space is the documented universe, so
users or items without interactions in a file still exist as empty rows / columns.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.data.io import DataFormatError, _split_lines, build_interactions
from recforge.data.registry import (
    DatasetSpec,
    DatasetUnavailableError,
    Fetcher,
    FileSpec,
    register,
)
from recforge.data.split import Split, negatives_from_lists

# pandas is imported where it is used: `import recforge.data` (which registers these) stays light.
if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ML100K_GENRES", "genre_icm"]

_PAPER_REPO = (
    "https://raw.githubusercontent.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation/"
    "f5618c65573c5b220713775bdd56971663de9828/"
)
_GROUPLENS_100K = "https://files.grouplens.org/datasets/movielens/ml-100k/"
_CLASNAKE = (
    "https://raw.githubusercontent.com/clasnake/recommender/"
    "5f3f5df795b04d680d5f886ee6e81c023dcd598a/ml-100k/"
)
_RI_REC = (
    "https://raw.githubusercontent.com/caiopinheiro/RI_Recommendation/"
    "24726694bba28989bf6fd7b1b0ec46d75d4835fb/ml-1m/"
)
_CITEULIKE_RAW = (
    "https://raw.githubusercontent.com/js05212/citeulike-a/"
    "91b603922d7f2d3db18071d4798bf78c9c5d1680/"
)

_GROUPLENS_TERMS = (
    "GroupLens terms: research use only, acknowledge the dataset (Harper & Konstan, ACM TiiS "
    "2015), no redistribution without separate permission, no commercial use, no endorsement "
    "implied. Keep internal."
)
_CITEULIKE_TERMS = (
    "citeulike-a (Wang & Blei KDD 2011; Wang, Chen & Li IJCAI 2013): no licence stated; "
    "research use, cite the original papers."
)

#: The 19 genre flags of MovieLens-100k ``u.item``, in file order (``u.genre``).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)


def _files(base: str | None, rows: list[tuple[str, int, str]]) -> tuple[FileSpec, ...]:
    return tuple(
        FileSpec(filename=f, size=n, sha256=h, url=None if base is None else base + f)
        for f, n, h in rows
    )


# ---------------------------------------------------------------------------- parsing


def _read_lines(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    if not raw.strip():
        raise DataFormatError("file is empty", file=path)
    return _split_lines(raw)


def _int_fields(
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


def _table(path: Path, ncols: int, sep: str = "\t") -> np.ndarray:
    """Integer table with ``ncols`` columns; pandas fast path, exact line on any error."""
    import pandas as pd

    try:
        df = pd.read_csv(path, sep=sep, header=None, dtype=np.int64, engine="c")
        if df.shape[1] == ncols and len(df):
            return df.to_numpy()
    except (ValueError, pd.errors.ParserError):
        pass  # fall through to the slow path, which names the offending line
    lines = _read_lines(path)
    lengths, vals = _int_fields(path, lines, sep.encode())
    bad = np.flatnonzero(lengths != ncols)
    if bad.size:
        k = int(bad[0])
        raise DataFormatError(
            f"{int(lengths[k])} field(s), expected {ncols}", file=path, line=k + 1
        )
    return vals.reshape(-1, ncols)


def _check_min(path: Path, vals: np.ndarray, lines: np.ndarray, base: int, what: str) -> None:
    bad = np.flatnonzero(vals < base)
    if bad.size:
        k = int(bad[0])
        raise DataFormatError(
            f"{what} id {int(vals[k])} is below {base}", file=path, line=int(lines[k])
        )


def _adjacency(path: Path, base: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lines ``user item_1 item_2 ...`` -> (users, items, file line of each pair)."""
    lines = _read_lines(path)
    lengths, vals = _int_fields(path, lines, None)
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
    _check_min(path, users_per_line, np.arange(1, len(lines) + 1), base, "user")
    _check_min(path, items, line_no, base, "item")
    return users, items, line_no


def _ldac(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """LDA-C lines: line n is row n, ``count id_1 ... id_count`` (0-based).

    Returns (rows, ids, file line of each pair, number of lines).
    """
    lines = _read_lines(path)
    lengths, vals = _int_fields(path, lines, None)
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
    _check_min(path, ids, line_no, 0, "item")
    return rows, ids, line_no, len(lines)


def _universe(base: int, declared: int, *seen: np.ndarray) -> np.ndarray:
    """Ids base .. base+declared-1, widened to the largest id seen."""
    top = base + declared - 1
    for s in seen:
        if s.size:
            top = max(top, int(s.max()))
    return np.arange(base, top + 1, dtype=np.int64)


def _empty_like(x: Interactions, name: str) -> Interactions:
    z = np.zeros(0, dtype=np.int64)
    return Interactions.from_arrays(
        z, z, shape=x.shape, user_ids=x.user_ids, item_ids=x.item_ids, name=name
    )


def _predefined(
    dataset: str,
    train: Interactions,
    test: Interactions,
    options: dict[str, Any],
    files: dict[str, Path],
    negatives: sp.csr_matrix | None = None,
) -> Split:
    spec_files = {f.filename: f.sha256 for f in _SPECS[dataset].files}
    return Split(
        train=train,
        test=test,
        test_negatives=negatives,
        method="predefined",
        params={
            "dataset": dataset,
            **options,
            "files": {fn: spec_files[fn] for fn in sorted(files)},
        },
    )


def _choice(name: str, value: Any, allowed: tuple[Any, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"option {name}={value!r} is not one of {list(allowed)}")


# ---------------------------------------------------------------------------- MovieLens-100k


def genre_icm(
    path: Path, item_ids: np.ndarray, *, bug: bool = False
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Genre item-content matrix from ``u.item``, rows aligned with ``item_ids``.

    ``bug=False``: items x 19 one-hot genre flags. ``bug=True``: the RecSys'19 code's ICM,
    which used each flag *value* (0/1) as the column id, giving items x 2 with the number of
    0-flags in column 0 and of 1-flags in column 1. Items absent from ``u.item`` get empty rows.
    """
    text = path.read_bytes().decode("latin-1")
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataFormatError("file is empty", file=path)
    ids = np.empty(len(lines), dtype=np.int64)
    flags = np.empty((len(lines), len(ML100K_GENRES)), dtype=np.int64)
    for n, line in enumerate(lines):
        f = line.split("|")
        if len(f) != 5 + len(ML100K_GENRES):
            raise DataFormatError(
                f"{len(f)} '|'-separated fields, expected 24 "
                "(id|title|release date|video release date|IMDb URL|19 genre flags)",
                file=path,
                line=n + 1,
            )
        try:
            ids[n] = int(f[0])
            flags[n] = [int(v) for v in f[5:]]
        except ValueError:
            raise DataFormatError("non-integer movie id or genre flag", file=path,
                                  line=n + 1) from None
        if not np.isin(flags[n], (0, 1)).all():
            raise DataFormatError("genre flags must be 0 or 1", file=path, line=n + 1)
    pos = np.searchsorted(item_ids, ids)
    pos_c = np.minimum(pos, len(item_ids) - 1)
    bad = np.flatnonzero(item_ids[pos_c] != ids)
    if bad.size:
        k = int(bad[0])
        raise DataFormatError(
            f"movie id {int(ids[k])} is not in the item id space ({len(item_ids)} items)",
            file=path,
            line=k + 1,
        )
    n_items = len(item_ids)
    if bug:
        rows = np.repeat(pos_c, flags.shape[1])
        cols = flags.ravel()
        m = sp.csr_matrix(
            (np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=(n_items, 2)
        )
        m.sum_duplicates()
        names = np.array(["flag=0", "flag=1"])
    else:
        r, c = np.nonzero(flags)
        m = sp.csr_matrix(
            (np.ones(r.size, dtype=np.float32), (pos_c[r], c)),
            shape=(n_items, len(ML100K_GENRES)),
        )
        names = np.array(ML100K_GENRES)
    m.sort_indices()
    return m, names


def _load_ml100k(
    fetch: Fetcher, *, implicit: bool = False, with_genres: bool = True, genre_bug: bool = False
) -> Interactions:
    path = fetch("movielens-100k", "u.data")
    t = _table(path, 4)
    uids = _universe(1, 943, t[:, 0])
    iids = _universe(1, 1682, t[:, 1])
    x = build_interactions(
        t[:, 0], t[:, 1], ratings=t[:, 2], timestamps=t[:, 3], user_ids=uids, item_ids=iids,
        implicit=implicit, name="movielens-100k", source=path, first_line=1,
    )
    if with_genres:
        icm, names = genre_icm(fetch("movielens-100k", "u.item"), x.item_ids, bug=genre_bug)
        x = replace(x, item_features=icm, item_feature_names=names)
    return x


def _load_mcrec_ml100k(
    fetch: Fetcher, *, with_genres: bool = False, genre_bug: bool = False
) -> Split:
    train_path = fetch("mcrec-ml-100k", "ml-100k.train.rating")
    test_path = fetch("mcrec-ml-100k", "ml-100k.test.rating")
    t = _table(train_path, 3)
    tu, ti, tl = _adjacency(test_path, 1)
    _check_min(train_path, t[:, 0], np.arange(1, len(t) + 1), 1, "user")
    _check_min(train_path, t[:, 1], np.arange(1, len(t) + 1), 1, "item")
    uids = _universe(1, 943, t[:, 0], tu)
    iids = _universe(1, 1682, t[:, 1], ti)
    train = build_interactions(
        t[:, 0], t[:, 1], ratings=t[:, 2], user_ids=uids, item_ids=iids, implicit=True,
        name="mcrec-ml-100k:train", source=train_path, first_line=1,
    )
    test = build_interactions(
        tu, ti, user_ids=uids, item_ids=iids, implicit=True, name="mcrec-ml-100k:test",
        source=test_path, lines=tl,
    )
    if with_genres:
        icm, names = genre_icm(fetch("movielens-100k", "u.item"), iids, bug=genre_bug)
        train = replace(train, item_features=icm, item_feature_names=names)
        test = replace(test, item_features=icm, item_feature_names=names)
    files = {"ml-100k.train.rating": train_path, "ml-100k.test.rating": test_path}
    return _predefined(
        "mcrec-ml-100k", train, test, {"with_genres": with_genres, "genre_bug": genre_bug}, files
    )


# ---------------------------------------------------------------------------- ML-1M releases


def _load_spectralcf(fetch: Fetcher, *, part: str = "original") -> Split | Interactions:
    _choice("part", part, ("original", "all"))
    paths = {f: fetch("spectralcf-ml-1m", f) for f in ("train_users.dat", "test_users.dat")}
    tr = _adjacency(paths["train_users.dat"], 0)
    te = _adjacency(paths["test_users.dat"], 0)
    uids = _universe(0, 6040, tr[0], te[0])
    iids = _universe(0, 3706, tr[1], te[1])
    if part == "all":
        # Build train and test separately first so an overlap would be reported with its line.
        users = np.concatenate([tr[0], te[0]])
        items = np.concatenate([tr[1], te[1]])
        return build_interactions(
            users, items, user_ids=uids, item_ids=iids, name="spectralcf-ml-1m:all",
            source="spectralcf-ml-1m/{train,test}_users.dat",
        )
    train = build_interactions(
        tr[0], tr[1], user_ids=uids, item_ids=iids, name="spectralcf-ml-1m:train",
        source=paths["train_users.dat"], lines=tr[2],
    )
    test = build_interactions(
        te[0], te[1], user_ids=uids, item_ids=iids, name="spectralcf-ml-1m:test",
        source=paths["test_users.dat"], lines=te[2],
    )
    return _predefined("spectralcf-ml-1m", train, test, {"part": part}, paths)


def _load_neumf(fetch: Fetcher, *, part: str = "full") -> Split:
    _choice("part", part, ("full", "test"))
    if part == "full":
        raise DatasetUnavailableError(
            "neumf-ml-1m: ml-1m.train.rating (about 20 MB) is not obtainable here, so the full "
            "NCF split cannot be loaded. load_dataset('neumf-ml-1m', part='test') gives the "
            "test items and their 99 negatives. The train file can be rebuilt from ML-1M "
            "ratings.dat: user = UserID - 1, item = order of first appearance of the MovieID "
            "in ratings.dat, train = all 1,000,209 ratings minus the 6,040 test pairs "
            "(see the neumf-ml-1m README)."
        )
    rating_path = fetch("neumf-ml-1m", "ml-1m.test.rating")
    neg_path = fetch("neumf-ml-1m", "ml-1m.test.negative")
    t = _table(rating_path, 4)
    neg_lines = _read_lines(neg_path)
    heads: list[tuple[int, int]] = []
    neg_lists: list[np.ndarray] = []
    for n, line in enumerate(neg_lines):
        fields = line.split(b"\t")
        head = fields[0].strip()
        try:
            if not (head.startswith(b"(") and head.endswith(b")")):
                raise ValueError
            u_s, i_s = head[1:-1].split(b",")
            heads.append((int(u_s), int(i_s)))
            neg_lists.append(np.array(fields[1:], dtype=np.bytes_).astype(np.int64))
        except ValueError:
            raise DataFormatError(
                "expected '(user,item)<TAB>neg_1<TAB>...' with integer ids",
                file=neg_path, line=n + 1,
            ) from None
    head_arr = np.array(heads, dtype=np.int64).reshape(-1, 2)
    if len(head_arr) != len(t) or not (head_arr == t[:, :2]).all():
        k = next(
            (j for j in range(min(len(t), len(head_arr))) if tuple(head_arr[j]) != tuple(t[j, :2])),
            min(len(t), len(head_arr)),
        )
        raise DataFormatError(
            f"(user,item) does not match line {k + 1} of ml-1m.test.rating "
            f"({len(head_arr)} negative lines, {len(t)} test lines)",
            file=neg_path, line=k + 1,
        )
    all_negs = np.concatenate(neg_lists) if neg_lists else np.zeros(0, np.int64)
    uids = _universe(0, 6040, t[:, 0])
    iids = _universe(0, 3706, t[:, 1], all_negs)
    test = build_interactions(
        t[:, 0], t[:, 1], ratings=t[:, 2], timestamps=t[:, 3], user_ids=uids, item_ids=iids,
        implicit=True, name="neumf-ml-1m:test", source=rating_path, first_line=1,
    )
    per_user: list[np.ndarray] = [np.zeros(0, np.int64)] * len(uids)
    for (u, _), negs in zip(head_arr, neg_lists, strict=True):
        per_user[int(u)] = negs  # ids are 0-based, so external id == index
    negatives = negatives_from_lists(per_user, len(iids))
    train = _empty_like(test, "neumf-ml-1m:train (unavailable, empty)")
    files = {"ml-1m.test.rating": rating_path, "ml-1m.test.negative": neg_path}
    return _predefined("neumf-ml-1m", train, test, {"part": part}, files, negatives)


def _load_ml1m_side(fetch: Fetcher, *, part: str | None = None) -> pd.DataFrame:
    _choice("part", part, (None, "movies", "users"))
    if part is None:
        raise DatasetUnavailableError(
            "movielens-1m: ratings.dat is not obtainable here, so there are no interactions; "
            "use part='movies' or part='users' for the side files, 'spectralcf-ml-1m' for "
            "the 5-star interactions and 'neumf-ml-1m' (part='test') for the NCF test set"
        )
    if part == "movies":
        path, cols = fetch("movielens-1m", "movies.dat"), ["movie_id", "title", "genres"]
    else:
        path = fetch("movielens-1m", "users.dat")
        cols = ["user_id", "gender", "age", "occupation", "zip"]
    text = path.read_bytes().decode("latin-1")
    rows = [ln.rstrip("\r").split("::") for ln in text.split("\n") if ln.strip()]
    for n, r in enumerate(rows):
        if len(r) != len(cols):
            raise DataFormatError(
                f"{len(r)} '::'-separated fields, expected {len(cols)}", file=path, line=n + 1
            )
    import pandas as pd

    df = pd.DataFrame(rows, columns=cols)
    for c in ("movie_id", "user_id", "age", "occupation"):
        if c in df:
            df[c] = df[c].astype(np.int64)
    return df


# ---------------------------------------------------------------------------- CiteULike-a


def _item_tag_matrix(fetch: Fetcher, n_items: int | None = None) -> sp.csr_matrix:
    rows, ids, _, n_lines = _ldac(fetch("citeulike-a-raw", "item-tag.dat"))
    n_tags = len(_read_lines(fetch("citeulike-a-raw", "tags.dat")))
    n_rows = max(n_items or 0, n_lines)
    m = sp.csr_matrix(
        (np.ones(rows.size, dtype=np.float32), (rows, ids)),
        shape=(n_rows, max(n_tags, int(ids.max()) + 1 if ids.size else 0)),
    )
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _load_cvae(
    fetch: Fetcher, *, p: int = 10, part: str = "original", item_features: str | None = None
) -> Split | Interactions:
    _choice("p", p, (1, 10))
    _choice("part", part, ("original", "all"))
    _choice("item_features", item_features, (None, "tags"))
    if part == "all":
        path = fetch("cvae-citeulike-a", "users.dat")
        r, i, ln, n = _ldac(path)
        x = build_interactions(
            r, i, user_ids=_universe(0, 5551, np.array([n - 1])), item_ids=_universe(0, 16980, i),
            name="cvae-citeulike-a:all", source=path, lines=ln,
        )
        if item_features == "tags":
            x = replace(x, item_features=_item_tag_matrix(fetch, x.n_items))
        return x
    names = (f"cf-train-{p}-users.dat", f"cf-test-{p}-users.dat")
    paths = {f: fetch("cvae-citeulike-a", f) for f in names}
    tr = _ldac(paths[names[0]])
    te = _ldac(paths[names[1]])
    uids = _universe(0, 5551, np.array([tr[3] - 1, te[3] - 1]))
    iids = _universe(0, 16980, tr[1], te[1])
    train = build_interactions(
        tr[0], tr[1], user_ids=uids, item_ids=iids, name=f"cvae-citeulike-a[p={p}]:train",
        source=paths[names[0]], lines=tr[2],
    )
    test = build_interactions(
        te[0], te[1], user_ids=uids, item_ids=iids, name=f"cvae-citeulike-a[p={p}]:test",
        source=paths[names[1]], lines=te[2],
    )
    if item_features == "tags":
        icm = _item_tag_matrix(fetch, len(iids))
        train = replace(train, item_features=icm)
        test = replace(test, item_features=icm)
    return _predefined(
        "cvae-citeulike-a", train, test,
        {"p": p, "part": part, "item_features": item_features}, paths,
    )


def _load_cmn(fetch: Fetcher, *, source: str = "tsv") -> Split:
    _choice("source", source, ("tsv", "npz"))
    test_lines: list[int] | None = None
    if source == "tsv":
        train_path = fetch("cmn-citeulike-a", "train.tsv")
        test_path = fetch("cmn-citeulike-a", "test_with_negatives.tsv")
        tr = _table(train_path, 2)
        te = _table(test_path, 102)
        files = {"train.tsv": train_path, "test_with_negatives.tsv": test_path}
        test_lines = list(range(1, len(te) + 1))
        train_src: str | Path = train_path
        test_src: str | Path = test_path
    else:
        npz_path = fetch("cmn-citeulike-a", "citeulike-a.npz")
        # The npz pickles a dict; its sha256 was verified above, so unpickling is safe.
        with np.load(npz_path, allow_pickle=True) as z:
            tr = np.asarray(z["train_data"], dtype=np.int64)
            test_dict = z["test_data"].item()
        te = np.array(
            [[u, pos, *np.asarray(negs).tolist()] for u, (pos, negs) in sorted(test_dict.items())],
            dtype=np.int64,
        )
        files = {"citeulike-a.npz": npz_path}
        train_src = test_src = npz_path
    uids = _universe(0, 5551, tr[:, 0], te[:, 0])
    iids = _universe(0, 16980, tr[:, 1], te[:, 1:].ravel())
    train = build_interactions(
        tr[:, 0], tr[:, 1], user_ids=uids, item_ids=iids, name="cmn-citeulike-a:train",
        source=train_src, first_line=1 if source == "tsv" else None,
    )
    test = build_interactions(
        te[:, 0], te[:, 1], user_ids=uids, item_ids=iids, name="cmn-citeulike-a:test",
        source=test_src, first_line=1 if test_lines else None,
    )
    per_user: list[np.ndarray] = [np.zeros(0, np.int64)] * len(uids)
    for row in te:
        per_user[int(row[0])] = row[2:]
    negatives = negatives_from_lists(per_user, len(iids))
    return _predefined("cmn-citeulike-a", train, test, {"source": source}, files, negatives)


def _load_citeulike_raw(fetch: Fetcher, *, part: str = "item_tags") -> Any:
    _choice("part", part, ("item_tags", "citations", "tags", "vocabulary"))
    if part == "item_tags":
        return _item_tag_matrix(fetch)
    if part == "citations":
        rows, ids, _, n = _ldac(fetch("citeulike-a-raw", "citations.dat"))
        m = sp.csr_matrix(
            (np.ones(rows.size, dtype=np.float32), (rows, ids)), shape=(n, max(n, ids.max() + 1))
        )
        m.sum_duplicates()
        return m
    fname = "tags.dat" if part == "tags" else "vocabulary.dat"
    return [ln.decode("utf-8", errors="replace") for ln in _read_lines(fetch("citeulike-a-raw",
                                                                              fname))]


# ---------------------------------------------------------------------------- MCRec extras


def _mcrec_triples(fetch: Fetcher, dataset: str, fname: str, implicit: bool) -> Interactions:
    """A 1-based ``user item value`` file of MCRec, the ids as released."""
    path = fetch(dataset, fname)
    t = _table(path, 3)
    return build_interactions(
        t[:, 0], t[:, 1], ratings=t[:, 2], user_ids=_universe(1, 1, t[:, 0]),
        item_ids=_universe(1, 1, t[:, 1]), implicit=implicit, name=dataset,
        source=path, first_line=1,
    )


# The registry reads each loader's keyword options from its signature, hence two thin loaders.
def _load_mcrec_lastfm(fetch: Fetcher, *, implicit: bool = False) -> Interactions:
    return _mcrec_triples(fetch, "mcrec-lastfm", "user_artist.dat", implicit)


def _load_mcrec_yelp(fetch: Fetcher, *, implicit: bool = False) -> Interactions:
    return _mcrec_triples(fetch, "mcrec-yelp", "user_business.dat", implicit)


# ---------------------------------------------------------------------------- specs

_SPECS: dict[str, DatasetSpec] = {}


def _add(spec: DatasetSpec) -> None:
    _SPECS[spec.name] = register(spec, replace=True)


_add(DatasetSpec(
    name="movielens-100k",
    description="MovieLens 100K raw ratings (943 users, 1,682 items, 100,000 ratings 1-5 with "
    "timestamps) and the 19-genre item-content matrix from u.item.",
    source="GroupLens ml-100k release; copy in github.com/clasnake/recommender @ 5f3f5df",
    licence=_GROUPLENS_TERMS,
    paper_tables=("3",),
    options={
        "implicit": "bool = False; True stores 1.0 (ratings stay in .ratings)",
        "with_genres": "bool = True; attach the genre ICM as item_features",
        "genre_bug": "bool = False; True builds the paper's buggy 2-column ICM",
    },
    returns="Interactions (943 x 1,682; ratings, timestamps, item_features)",
    files=tuple(
        _files(_GROUPLENS_100K if f in ("u.data", "u.item") else _CLASNAKE, [(f, n, h)])[0]
        for f, n, h in [
            ("README", 6401,
             "b2f69dd0cab50c2b976da7c6113f267169cf0b35ade48de35fe75ed1b81c0f28"),
            ("u.data", 1979173,
             "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),
            ("u.genre", 202,
             "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb"),
            ("u.info", 36,
             "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b"),
            ("u.item", 236344,
             "6dd287831559152bea892eb27694a492ff14926ac5f7a16e5f8c4968e6fe13c3"),
            ("u.occupation", 193,
             "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d"),
            ("u.user", 22628,
             "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c"),
        ]
    ),
    loader=_load_ml100k,
))

_add(DatasetSpec(
    name="mcrec-ml-100k",
    description="MCRec's released 80/20 split of MovieLens-100k (train 80,000 pairs of 943 "
    "users; test 20,000 pairs of 942 users); ratings ignored (values 1.0).",
    source="github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation @ f5618c6, "
    "Conferences/KDD/MCRec_github/data",
    licence=_GROUPLENS_TERMS,
    paper_tables=("3",),
    options={
        "with_genres": "bool = False; attach the ML-100k genre ICM (u.item) as item_features",
        "genre_bug": "bool = False; with with_genres, build the paper's buggy 2-column ICM",
    },
    returns="Split (predefined; 943 x 1,682)",
    status="complete for Table 3 (ml-100k.test.negative missing; equivalent to full ranking)",
    files=_files(_PAPER_REPO + "Conferences/KDD/MCRec_github/data/", [
        ("ml-100k.test.rating", 81890,
         "f5c8e8216402dc6e277fc15853b90ef9e4b8f922c77d20bac7e1ae80b5c55ae5"),
        ("ml-100k.train.rating", 783394,
         "d043d9fedf7efecb41fdfa98e4c96c5134a26d247a70ba5d4cf3f32a61c5957b"),
        # MCRec's fixed 64-d BPR node embeddings (inputs of its metapath encoder, not trained).
        ("ml-100k.bpr.item_embedding", 1713474,
         "93e87a41be52fb2dc9efc800366a2f93d504d75c22212853f5f68722e6b5f90e"),
        ("ml-100k.bpr.type_embedding", 9513,
         "e93cbe7ffa350ca1a3fc9d544f9faa8e967e3cadc19c88665f9e2f902a07f440"),
        ("ml-100k.bpr.user_embedding", 948541,
         "ca4ada817752366c80a8d4926f1d996f0442eff8a581a738240aaa18a69d1e80"),
    ]),
    loader=_load_mcrec_ml100k,
))

_add(DatasetSpec(
    name="spectralcf-ml-1m",
    description="SpectralCF's released split of ML-1M 5-star ratings (train 179,207 + test "
    "47,103 = 226,310 pairs), in the 6,040 x 3,706 ML-1M id space.",
    source="github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation @ f5618c6, "
    "Conferences/RecSys/SpectralCF_github/data/ml-1m",
    licence=_GROUPLENS_TERMS,
    paper_tables=("7",),
    options={"part": "'original' (Split of the released files) or 'all' (train ∪ test)"},
    returns="Split (part='original') or Interactions (part='all'); 6,040 x 3,706",
    files=_files(_PAPER_REPO + "Conferences/RecSys/SpectralCF_github/data/ml-1m/", [
        ("test_users.dat", 217824,
         "b114c7c87a94462399b02e4f59f05e91b690a9091adea83dd8efcfd3e03b67ee"),
        ("train_users.dat", 761460,
         "ee6cf59160f3cde155416941ac42890f79accd9cf7f1ac5496ee194db49687bb"),
    ]),
    loader=_load_spectralcf,
))

_add(DatasetSpec(
    name="cvae-citeulike-a",
    description="CiteULike-a sparse (P=1) and dense (P=10) splits of CVAE/CDL; 5,551 users x "
    "16,980 items, 204,986 pairs.",
    source="github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation @ f5618c6, "
    "Conferences/KDD/CollaborativeVAE_github/data/citeulike-a",
    licence=_CITEULIKE_TERMS + " CVAE code is MIT; no data licence stated.",
    paper_tables=("4", "5"),
    options={
        "p": "1 or 10 (train items per user)",
        "part": "'original' (Split) or 'all' (users.dat as Interactions)",
        "item_features": "None or 'tags' (citeulike-a-raw item-tag matrix; the paper used "
        "the missing title+abstract bag of words)",
    },
    returns="Split (part='original') or Interactions (part='all'); 5,551 x 16,980",
    status="interactions complete; mult_nor.mat (title+abstract ICM) missing",
    files=_files(_PAPER_REPO + "Conferences/KDD/CollaborativeVAE_github/data/citeulike-a/", [
        ("cf-test-1-items.dat", 998440,
         "fe16a05c2ace64834b2b8149f260666d6e407752f4f2513be0b71e4d6a3843d0"),
        ("cf-test-1-users.dat", 1065419,
         "1809da1a5a136b377eaad0b6b76b6a04ec09c8b59e74c98bfbe9b892f011505c"),
        ("cf-test-10-items.dat", 756603,
         "bbca940e6f9a366db11baa5ebb47ec604c2c3b544ade3b9a3fbdcfd63bf1bf02"),
        ("cf-test-10-users.dat", 826118,
         "204a51f7496fb1234e2b7acbc52084043fe1f784e070e16d254945abd2482d39"),
        ("cf-train-1-items.dat", 73260,
         "cd2a8d4698553ec8b00b564910c1d996b19b2d7d396ccc78aeeb0fbe4536b834"),
        ("cf-train-1-users.dat", 40052,
         "660ef4404b3d2ea75c1888fdad32b0c2037a8bc815312537f211c4a44ef3c5df"),
        ("cf-train-10-items.dat", 306631,
         "3146887edab6964323ae238476e744043b0a1ed5ec2fe05fae0d674fe313732b"),
        ("cf-train-10-users.dat", 283230,
         "d743cc216f1383e40767b5979ceae736009bf30835d49334ecfbdd692622c28f"),
        ("items.dat", 1025426,
         "cb10fbd7b894e0e33b8f27bc8c92bc130653922d6a0665029fc4bd34bd5aa4b6"),
        ("users.dat", 1094786,
         "a8059144c3b2b4dbc83a50b190c14261a6f491761e83fac5967ff8d1fcaff1b6"),
    ]),
    loader=_load_cvae,
))

_add(DatasetSpec(
    name="cmn-citeulike-a",
    description="CMN's CiteULike-a split: 199,435 train pairs; per user one test item ranked "
    "among 100 sampled negatives; 5,551 x 16,980.",
    source="github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation @ f5618c6, "
    "Conferences/SIGIR/CMN_github/data/citeulike-a.npz (tsv files derived from it)",
    licence=_CITEULIKE_TERMS,
    paper_tables=("2",),
    options={"source": "'tsv' (derived plain-text copies; default) or 'npz' (original, "
                       "pickled, read after its sha256 is verified)"},
    returns="Split (predefined, with test_negatives; 5,551 x 16,980)",
    files=(
        _files(_PAPER_REPO + "Conferences/SIGIR/CMN_github/data/", [
            ("citeulike-a.npz", 3626944,
             "f0a97219a00e9c57d7b0c58c0e345d24200f059b4490fa307a885bf53afb2eeb"),
        ])
        + _files(None, [
            ("test_with_negatives.tsv", 3023719,
             "5041b95d9fd70b7f7cc935f5d1e747d0d0fe0931f7885353737f3bd5b6f208fb"),
            ("train.tsv", 2005658,
             "d219002b85060d0226f029154d8998172b8d83b26c7cc6ee3e85d76014c8b2c6"),
        ])
    ),
    loader=_load_cmn,
))

_add(DatasetSpec(
    name="neumf-ml-1m",
    description="NCF (NeuMF) ML-1M leave-latest-out test items with 99 sampled negatives per "
    "user; the train file is missing.",
    source="github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation @ f5618c6, "
    "Conferences/WWW/NeuMF_github/Data (identical to hexiangnan/neural_collaborative_filtering)",
    licence=_GROUPLENS_TERMS,
    paper_tables=("6",),
    options={"part": "'full' (raises DatasetUnavailableError: train file missing) or 'test' "
                     "(Split with an EMPTY train, the 6,040 test pairs and test_negatives)"},
    returns="Split (part='test': empty train, 6,040 x 3,706)",
    status="train file ml-1m.train.rating missing (rebuild rule in the README)",
    files=_files(_PAPER_REPO + "Conferences/WWW/NeuMF_github/Data/", [
        ("ml-1m.test.negative", 2891424,
         "127853228a76b7d21c0481e8ef8d00dd009cd5c88670dbdd9e9debfdb9f93de4"),
        ("ml-1m.test.rating", 128039,
         "231ae11eb060b643a8c58c063cd17ffc743b54f569afb073d1abb6cf126b88b5"),
    ]),
    loader=_load_neumf,
))

_add(DatasetSpec(
    name="movielens-1m",
    description="MovieLens 1M side files (movies.dat, users.dat); ratings.dat is missing.",
    source="github.com/caiopinheiro/RI_Recommendation @ 2472669, ml-1m",
    licence=_GROUPLENS_TERMS,
    paper_tables=("6", "7"),
    options={"part": "None (raises: no ratings), 'movies' or 'users' (pandas DataFrame)"},
    returns="pandas.DataFrame (side information only)",
    status="ratings.dat missing",
    files=_files(_RI_REC, [
        ("README", 5577,
         "2d5ddce86ccbd247207456165827b4b9ddf27282bca93807d4c763e28414f133"),
        ("movies.dat", 171308,
         "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9"),
        ("users.dat", 134368,
         "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3"),
    ]),
    loader=_load_ml1m_side,
))

_add(DatasetSpec(
    name="citeulike-a-raw",
    description="CiteULike-a auxiliary files: vocabulary (8,000 words), 46,391 tags, item-tag "
    "and citation lists of the 16,980 articles.",
    source="github.com/js05212/citeulike-a @ 91b6039",
    licence=_CITEULIKE_TERMS,
    paper_tables=("4", "5"),
    options={"part": "'item_tags' (CSR 16,980 x 46,391), 'citations' (CSR 16,980 x 16,980), "
                     "'tags' or 'vocabulary' (list of str)"},
    returns="scipy.sparse.csr_matrix or list[str]",
    status="mult.dat / raw-data.csv (bag of words) missing",
    files=_files(_CITEULIKE_RAW, [
        ("citations.dat", 511127,
         "78458ba6b6f013552c43f47dbec1c2d19073820155c40567744cd8a038044364"),
        ("item-tag.dat", 1423307,
         "0f7b432796a5038ed2631c02b99d70e636123673afc11bf9e051de5b49467890"),
        ("tags.dat", 628894,
         "c02b3e5ee1a57f88f3a598b2040018bb198f54cd0c11116fa7a0db905b6f60e3"),
        ("vocabulary.dat", 73012,
         "f3ffa75f7524a9ff2ecc2a0cb1a0f29f4d46e32f17bc8e2f8472a1c7c814f319"),
    ]),
    loader=_load_citeulike_raw,
))

_add(DatasetSpec(
    name="mcrec-lastfm",
    description="MCRec's LastFM (HetRec 2011) network data; user_artist.dat listening counts "
    "(92,834 pairs, 1,892 users, 17,632 artists) plus tag and k-NN side files.",
    source="github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation @ f5618c6, "
    "Conferences/KDD/MCRec_github/Dataset-In-Papers_master/LastFM",
    licence="HetRec 2011 / Last.fm terms: non-commercial research use, acknowledge Last.fm and "
    "the workshop; no redistribution. Keep internal.",
    options={"implicit": "bool = False; True stores 1.0 (listening counts stay in .ratings)"},
    returns="Interactions (values = listening counts)",
    files=_files(_PAPER_REPO + "Conferences/KDD/MCRec_github/Dataset-In-Papers_master/LastFM/", [
        ("artist_artist(knn).dat", 3145931,
         "15bbe112d78a02bf96b11c98c009ee891d136d50ca13bfb376351a28cc3951d8"),
        ("artist_tag.dat", 1604283,
         "263e61b0a2a5c06c3994540a2cb732dd2c9d8fafcbe44e7a51a6f18e59f618de"),
        ("user_artist.dat", 1198733,
         "4303d1dccfd3b8b03c1e34f99710c4d99539c9fa9b54f654e34299efeefbff16"),
        ("user_user(knn).dat", 446392,
         "dd1c1c19fc676decf291688053e86a5ae48962f014f85c07dc167605f192e150"),
        ("user_user(original).dat", 223780,
         "eb2f3eb5dbee61161923d0231874cce574c33cea8b9f331d912b1642a1cd29ba"),
    ]),
    loader=_load_mcrec_lastfm,
))

_add(DatasetSpec(
    name="mcrec-yelp",
    description="MCRec's Yelp network data; user_business.dat star ratings (198,397 pairs, "
    "16,239 users, 14,284 businesses) plus category, city, compliment and social files.",
    source="github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation @ f5618c6, "
    "Conferences/KDD/MCRec_github/Dataset-In-Papers_master/Yelp",
    licence="Yelp Dataset terms: academic non-commercial use, no redistribution. Keep internal.",
    options={"implicit": "bool = False; True stores 1.0 (stars stay in .ratings)"},
    returns="Interactions (values = star ratings 1-5)",
    files=_files(_PAPER_REPO + "Conferences/KDD/MCRec_github/Dataset-In-Papers_master/Yelp/", [
        ("business_category.dat", 439981,
         "d3c1499e406c0a842b3c08c478ffe7bf26a8758b630e0b056d0f4bcf18c01a5b"),
        ("business_city.dat", 145353,
         "09c009dfa16709aff52de4831b9cb30f45a16dcfce1db06858d54af6ef5f7d1e"),
        ("user_business.dat", 2490385,
         "d57853e95c3f49f0060f31ee9365ab3fffe1010999c76863c3cd9628b91e994d"),
        ("user_compliment.dat", 728264,
         "e7f5c15155bf0843e3bdf9fb4743bb3ebf76826b4108e9e194fd637e0bb05ed6"),
        ("user_user.dat", 2015188,
         "d360f88f66b7ba9a1fd460b8c414dba1bec6489773283083a614a77925bcaaed"),
    ]),
    loader=_load_mcrec_yelp,
))
