"""CMN's release (Ebesu, Shen & Fang, SIGIR 2018): the CiteULike-a split with 100 sampled
negatives per test item, as ``citeulike-a.npz`` and two plain-text copies derived from it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recforge.data.catalog._parse import choice, predefined, table, universe
from recforge.data.catalog._sources import CITEULIKE_TERMS, PAPER_REPO, sha_files
from recforge.data.dataset_spec import DatasetSpec, Fetcher
from recforge.data.io import build_interactions
from recforge.data.split import Split, negatives_from_lists

__all__ = ["DATASETS", "read_npz"]


def read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(train pairs (n, 2), test rows ``user, positive, 100 negatives`` sorted by user).

    The npz pickles a dict; callers pass only a file whose sha256 was verified, so unpickling
    it is safe.
    """
    with np.load(path, allow_pickle=True) as z:
        train = np.asarray(z["train_data"], dtype=np.int64)
        test_dict = z["test_data"].item()
    test = np.array(
        [[u, pos, *np.asarray(negs).tolist()] for u, (pos, negs) in sorted(test_dict.items())],
        dtype=np.int64,
    )
    return train, test


def _write_tsv(rows: np.ndarray, out: Path) -> None:
    with open(out, "w", newline="\n") as f:
        f.writelines("\t".join(map(str, r)) + "\n" for r in rows.tolist())


def _derive_train(fetch: Fetcher, out: Path) -> None:
    _write_tsv(read_npz(fetch("cmn-citeulike-a", "citeulike-a.npz"))[0], out)


def _derive_test(fetch: Fetcher, out: Path) -> None:
    _write_tsv(read_npz(fetch("cmn-citeulike-a", "citeulike-a.npz"))[1], out)


def _load_cmn(fetch: Fetcher, *, source: str = "tsv") -> Split:
    choice("source", source, ("tsv", "npz"))
    test_lines: list[int] | None = None
    if source == "tsv":
        train_path = fetch("cmn-citeulike-a", "train.tsv")
        test_path = fetch("cmn-citeulike-a", "test_with_negatives.tsv")
        tr = table(train_path, 2)
        te = table(test_path, 102)
        files = {"train.tsv": train_path, "test_with_negatives.tsv": test_path}
        test_lines = list(range(1, len(te) + 1))
        train_src: str | Path = train_path
        test_src: str | Path = test_path
    else:
        npz_path = fetch("cmn-citeulike-a", "citeulike-a.npz")
        tr, te = read_npz(npz_path)
        files = {"citeulike-a.npz": npz_path}
        train_src = test_src = npz_path
    uids = universe(0, 5551, tr[:, 0], te[:, 0])
    iids = universe(0, 16980, tr[:, 1], te[:, 1:].ravel())
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
    return predefined("cmn-citeulike-a", train, test, {"source": source}, files, negatives)


DATASETS: tuple[DatasetSpec, ...] = (
DatasetSpec(
    name="cmn-citeulike-a",
    description="CMN's CiteULike-a split: 199,435 train pairs; per user one test item ranked "
    "among 100 sampled negatives; 5,551 x 16,980.",
    source="github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation @ f5618c6, "
    "Conferences/SIGIR/CMN_github/data/citeulike-a.npz (the tsv files are derived from it "
    "locally)",
    licence=CITEULIKE_TERMS,
    paper_tables=("2",),
    options={"source": "'tsv' (plain-text copies derived from the npz; default) or 'npz' "
                       "(the original, pickled, read after its sha256 is verified)"},
    returns="Split (predefined, with test_negatives; 5,551 x 16,980)",
    files=(
        sha_files(PAPER_REPO + "Conferences/SIGIR/CMN_github/data/", [
            ("citeulike-a.npz", 3626944,
             "f0a97219a00e9c57d7b0c58c0e345d24200f059b4490fa307a885bf53afb2eeb"),
        ])
        + sha_files(None, [
            ("test_with_negatives.tsv", 3023719,
             "5041b95d9fd70b7f7cc935f5d1e747d0d0fe0931f7885353737f3bd5b6f208fb"),
            ("train.tsv", 2005658,
             "d219002b85060d0226f029154d8998172b8d83b26c7cc6ee3e85d76014c8b2c6"),
        ])
    ),
    loader=_load_cmn,
    derivers={"train.tsv": _derive_train, "test_with_negatives.tsv": _derive_test},
),
)
