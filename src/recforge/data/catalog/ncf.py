"""NCF's releases (He et al., WWW 2017): ML-1M and Pinterest, each user's latest interaction
held out with 99 sampled negatives.

The ML-1M train file can also be rebuilt from MovieLens-1M ``ratings.dat``
(:func:`rebuild_ml1m_train`): user = UserID - 1; item = the order in which MovieIDs first
appear reading ``ratings.dat`` top to bottom; train = every rating except the test pairs. The
rule is inferred, so the rebuild verifies itself against the test file (every test line is a
rating of that user with the same value and timestamp, and the user's latest) and, when the
downloaded train file is at hand, against it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recforge.data.catalog._parse import choice, predefined, read_lines, table, universe
from recforge.data.catalog._sources import GROUPLENS_TERMS, PAPER_REPO, blob_files, sha_files
from recforge.data.catalog.grouplens import read_ml1m_ratings
from recforge.data.dataset_spec import DatasetSpec, Fetcher, FileSpec
from recforge.data.interactions import Interactions
from recforge.data.io import DataFormatError, build_interactions
from recforge.data.split import Split, negatives_from_lists

__all__ = ["DATASETS", "RebuildError", "rebuild_ml1m_train", "write_rating_file"]

_NCF_DATA = PAPER_REPO + "Conferences/WWW/NeuMF_github/Data/"


class RebuildError(DataFormatError):
    """A rebuilt file fails its self-check (the rule does not explain the released file)."""


def _rating_table(path: Path) -> np.ndarray:
    """NCF ``user<TAB>item<TAB>rating[<TAB>timestamp]`` lines as int64 (n, 4)."""
    ncols = len(_first_line(path).split(b"\t"))
    if ncols not in (3, 4):
        raise DataFormatError(f"{ncols} tab-separated fields, expected user, item, rating "
                              "and optionally a timestamp", file=path, line=1)
    t = table(path, ncols)
    return t if ncols == 4 else np.column_stack([t, np.zeros(len(t), dtype=np.int64)])


def _first_line(path: Path) -> bytes:
    with open(path, "rb") as f:
        return f.readline().rstrip(b"\r\n")


def _negatives(neg_path: Path, test: np.ndarray, test_name: str) -> list[np.ndarray]:
    """Per test line, its negatives; the ``(user,item)`` heads must repeat the test file."""
    heads: list[tuple[int, int]] = []
    neg_lists: list[np.ndarray] = []
    for n, line in enumerate(read_lines(neg_path)):
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
    if len(head_arr) != len(test) or not (head_arr == test[:, :2]).all():
        n_common = min(len(test), len(head_arr))
        k = next((j for j in range(n_common) if tuple(head_arr[j]) != tuple(test[j, :2])),
                 n_common)
        raise DataFormatError(
            f"(user,item) does not match line {k + 1} of {test_name} "
            f"({len(head_arr)} negative lines, {len(test)} test lines)",
            file=neg_path, line=k + 1,
        )
    return neg_lists


def _ncf_split(dataset: str, prefix: str, n_users: int, n_items: int, part: str,
               train_rows: np.ndarray | None, files: dict[str, Path],
               options: dict[str, object], train_source: str | Path) -> Split:
    test_name = f"{prefix}.test.rating"
    t = _rating_table(files[test_name])
    neg_lists = _negatives(files[f"{prefix}.test.negative"], t, test_name)
    all_negs = np.concatenate(neg_lists) if neg_lists else np.zeros(0, np.int64)
    seen_u = [t[:, 0]] if train_rows is None else [t[:, 0], train_rows[:, 0]]
    seen_i = [t[:, 1], all_negs] if train_rows is None else [t[:, 1], all_negs,
                                                              train_rows[:, 1]]
    uids = universe(0, n_users, *seen_u)
    iids = universe(0, n_items, *seen_i)
    test = build_interactions(
        t[:, 0], t[:, 1], ratings=t[:, 2], timestamps=t[:, 3], user_ids=uids, item_ids=iids,
        implicit=True, name=f"{dataset}:test", source=files[test_name], first_line=1,
    )
    if train_rows is None:
        z = np.zeros(0, dtype=np.int64)
        train = Interactions.from_arrays(z, z, shape=test.shape, user_ids=test.user_ids,
                                         item_ids=test.item_ids,
                                         name=f"{dataset}:train (not loaded, empty)")
    else:
        train = build_interactions(
            train_rows[:, 0], train_rows[:, 1], ratings=train_rows[:, 2],
            timestamps=train_rows[:, 3], user_ids=uids, item_ids=iids, implicit=True,
            name=f"{dataset}:train", source=train_source, first_line=1,
        )
    per_user: list[np.ndarray] = [np.zeros(0, np.int64)] * len(uids)
    for u, negs in zip(t[:, 0].tolist(), neg_lists, strict=True):
        per_user[u] = negs  # ids are 0-based, so external id == index
    negatives = negatives_from_lists(per_user, len(iids))
    return predefined(dataset, train, test, {"part": part, **options}, files, negatives)


# ---------------------------------------------------------------------------- the rebuild
def rebuild_ml1m_train(ratings: np.ndarray, test: np.ndarray, *,
                       ratings_file: str | Path = "ratings.dat",
                       test_file: str | Path = "ml-1m.test.rating") -> np.ndarray:
    """NCF's ML-1M train rows (user, item, rating, timestamp) from ``ratings.dat`` rows.

    ``ratings``: ``UserID, MovieID, Rating, Timestamp`` in file order; ``test``: the rows of
    ``ml-1m.test.rating``. Returns the train rows in ``ratings.dat`` order. Raises
    :class:`RebuildError` naming the first test line the rule does not explain (no rating of
    that user and item, a different rating or timestamp, not the user's latest rating, two
    test lines for one user) or when the row count does not add up.
    """
    users = ratings[:, 0] - 1
    movies = ratings[:, 1]
    uniq, first = np.unique(movies, return_index=True)
    rank = np.empty(uniq.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(uniq.size)
    items = rank[np.searchsorted(uniq, movies)]
    n_items = int(uniq.size)
    keys = users * n_items + items
    order = np.argsort(keys, kind="stable")
    sorted_keys = keys[order]
    dup = np.flatnonzero(sorted_keys[1:] == sorted_keys[:-1])
    if dup.size:
        k = int(order[dup[0] + 1])
        raise RebuildError(f"UserID {int(ratings[k, 0])} rated MovieID {int(movies[k])} "
                           "twice", file=ratings_file, line=k + 1)

    def fail(line: int, why: str) -> RebuildError:
        u, i, r, ts = (int(v) for v in test[line])
        return RebuildError(
            f"test pair (user {u}, item {i}, rating {r}, timestamp {ts}) {why} under the "
            f"rule user = UserID - 1, item = order of first appearance in {ratings_file}",
            file=test_file, line=line + 1,
        )

    t_users, t_items = test[:, 0], test[:, 1]
    bad = np.flatnonzero((t_items < 0) | (t_items >= n_items) | (t_users < 0))
    if bad.size:
        raise fail(int(bad[0]), "names an item or user outside the rebuilt id space")
    t_keys = t_users * n_items + t_items
    pos = np.searchsorted(sorted_keys, t_keys)
    pos_c = np.minimum(pos, sorted_keys.size - 1)
    found = sorted_keys[pos_c] == t_keys
    if not found.all():
        raise fail(int(np.flatnonzero(~found)[0]), "is not a rating in ratings.dat")
    row = order[pos_c]
    same = (ratings[row, 2] == test[:, 2]) & (ratings[row, 3] == test[:, 3])
    if not same.all():
        k = int(np.flatnonzero(~same)[0])
        raise fail(k, f"has rating {int(ratings[row[k], 2])} and timestamp "
                      f"{int(ratings[row[k], 3])} in ratings.dat")
    latest = np.full(int(users.max()) + 1, np.iinfo(np.int64).min)
    np.maximum.at(latest, users, ratings[:, 3])
    not_latest = test[:, 3] != latest[t_users]
    if not_latest.any():
        k = int(np.flatnonzero(not_latest)[0])
        raise fail(k, f"is not the user's latest rating (latest: {int(latest[t_users[k]])})")
    uniq_users, counts = np.unique(t_users, return_counts=True)
    if (counts > 1).any():
        u = int(uniq_users[np.flatnonzero(counts > 1)[0]])
        raise fail(int(np.flatnonzero(t_users == u)[1]), "is a second test line of its user")
    is_test = np.zeros(len(ratings), dtype=bool)
    is_test[row] = True
    out = np.column_stack([users, items, ratings[:, 2], ratings[:, 3]])[~is_test]
    if len(out) != len(ratings) - len(test):
        raise RebuildError(f"{len(out)} train rows, expected {len(ratings) - len(test)}",
                           file=test_file)
    return out


def write_rating_file(rows: np.ndarray, out: Path) -> None:
    """Write rows as NCF ``user<TAB>item<TAB>rating<TAB>timestamp`` lines."""
    with open(out, "w", newline="\n") as f:
        f.writelines("\t".join(map(str, r)) + "\n" for r in rows.tolist())


def _same_rows(a: np.ndarray, b: np.ndarray) -> tuple[int, int]:
    """(rows only in a, rows only in b), comparing the rows as sets."""
    sa = {tuple(r) for r in a.tolist()}
    sb = {tuple(r) for r in b.tolist()}
    return len(sa - sb), len(sb - sa)


# ---------------------------------------------------------------------------- loaders
def _load_neumf_ml1m(fetch: Fetcher, *, part: str = "full", train: str = "download") -> Split:
    choice("part", part, ("full", "test"))
    choice("train", train, ("download", "rebuild"))
    files = {f: fetch("neumf-ml-1m", f) for f in ("ml-1m.test.rating", "ml-1m.test.negative")}
    rows: np.ndarray | None = None
    options: dict[str, object] = {"train": train}
    source: str | Path = ""
    if part == "full" and train == "download":
        files["ml-1m.train.rating"] = fetch("neumf-ml-1m", "ml-1m.train.rating")
        rows = _rating_table(files["ml-1m.train.rating"])
        source = files["ml-1m.train.rating"]
    elif part == "full":
        ratings_path = fetch("movielens-1m", "ratings.dat")
        test_path = files["ml-1m.test.rating"]
        rows = rebuild_ml1m_train(read_ml1m_ratings(ratings_path), _rating_table(test_path),
                                  ratings_file=ratings_path, test_file=test_path)
        source = f"rebuilt from {ratings_path}"
        downloaded = fetch.local("neumf-ml-1m", "ml-1m.train.rating")
        if downloaded is not None:
            only_rebuilt, only_downloaded = _same_rows(rows, _rating_table(downloaded))
            if only_rebuilt or only_downloaded:
                raise RebuildError(
                    f"the rebuilt train differs from the downloaded file: {only_rebuilt} "
                    f"row(s) only in the rebuild, {only_downloaded} only in the download",
                    file=downloaded,
                )
        options["rebuild_checked_against_download"] = downloaded is not None
        options["ratings.dat"] = str(ratings_path.name)
        files["ratings.dat"] = ratings_path
    return _ncf_split("neumf-ml-1m", "ml-1m", 6040, 3706, part, rows, files, options, source)


def _load_neumf_pinterest(fetch: Fetcher, *, part: str = "full") -> Split:
    choice("part", part, ("full", "test"))
    prefix = "pinterest-20"
    names = [f"{prefix}.test.rating", f"{prefix}.test.negative"]
    if part == "full":
        names.append(f"{prefix}.train.rating")
    files = {f: fetch("neumf-pinterest", f) for f in names}
    rows = _rating_table(files[f"{prefix}.train.rating"]) if part == "full" else None
    return _ncf_split("neumf-pinterest", prefix, 55187, 9916, part, rows, files, {},
                      files.get(f"{prefix}.train.rating", ""))


DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        name="neumf-ml-1m",
        description="NCF (NeuMF) ML-1M: 994,169 train ratings (any value, treated as 1); per "
        "user the latest rating held out with 99 sampled negatives; 6,040 x 3,706.",
        source="github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation @ f5618c6, "
        "Conferences/WWW/NeuMF_github/Data (identical to hexiangnan/"
        "neural_collaborative_filtering @ 4aab159)",
        licence=GROUPLENS_TERMS,
        paper_tables=("6",),
        options={
            "part": "'full' (Split: train, test, test_negatives) or 'test' (Split with an "
                    "EMPTY train, the 6,040 test pairs and test_negatives)",
            "train": "'download' (ml-1m.train.rating) or 'rebuild' (from movielens-1m "
                     "ratings.dat by the documented rule, self-checked against the test "
                     "file and, when it is cached, the downloaded train file)",
        },
        returns="Split (predefined, with test_negatives; 6,040 x 3,706)",
        status="complete (ml-1m.train.rating is downloadable only: its copies are 20 MB)",
        files=sha_files(_NCF_DATA, [
            ("ml-1m.test.negative", 2891424,
             "127853228a76b7d21c0481e8ef8d00dd009cd5c88670dbdd9e9debfdb9f93de4"),
            ("ml-1m.test.rating", 128039,
             "231ae11eb060b643a8c58c063cd17ffc743b54f569afb073d1abb6cf126b88b5"),
        ]) + blob_files(_NCF_DATA, [
            ("ml-1m.train.rating", "31ba384fd58dac8fbd09d2dfc6616431f3563ab5"),
        ]),
        loader=_load_neumf_ml1m,
    ),
    DatasetSpec(
        name="neumf-pinterest",
        description="NCF (NeuMF) Pinterest (pinterest-20): train pins of 55,187 users on 9,916 "
        "images; per user the latest pin held out with 99 sampled negatives.",
        source="github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation @ f5618c6, "
        "Conferences/WWW/NeuMF_github/Data (identical to hexiangnan/"
        "neural_collaborative_filtering @ 4aab159)",
        licence="Pinterest data of Geng et al. (ICCV 2015) as released by NCF; no licence "
        "stated; research use, cite the original papers.",
        paper_tables=("2", "6"),
        options={"part": "'full' (Split: train, test, test_negatives) or 'test' (empty "
                         "train)"},
        returns="Split (predefined, with test_negatives; 55,187 x 9,916)",
        status="complete (downloadable only: the train and negative files are 4 MiB or more)",
        files=(
            *blob_files(_NCF_DATA, [
                ("pinterest-20.train.rating", "99813f8ed7486c36fa0f405e3f400db5d6fed0be"),
                ("pinterest-20.test.negative", "b752ccdc14df423b9484771440ff4a73e4a4a304"),
            ]),
            FileSpec(filename="pinterest-20.test.rating", size=807267,
                     git_blob="87fdbd13bced61c51f2842e2a667e83b9b0084e3",
                     url=_NCF_DATA + "pinterest-20.test.rating"),
        ),
        loader=_load_neumf_pinterest,
    ),
)
