"""SpectralCF's release (Zheng et al., RecSys 2018): its ML-1M 5-star train/test split."""

from __future__ import annotations

import numpy as np

from recforge.data.catalog._parse import adjacency, choice, predefined, universe
from recforge.data.catalog._sources import GROUPLENS_TERMS, PAPER_REPO, sha_files
from recforge.data.dataset_spec import DatasetSpec, Fetcher
from recforge.data.interactions import Interactions
from recforge.data.io import build_interactions
from recforge.data.split import Split

__all__ = ["DATASETS"]


def _load_spectralcf(fetch: Fetcher, *, part: str = "original") -> Split | Interactions:
    choice("part", part, ("original", "all"))
    paths = {f: fetch("spectralcf-ml-1m", f) for f in ("train_users.dat", "test_users.dat")}
    tr = adjacency(paths["train_users.dat"], 0)
    te = adjacency(paths["test_users.dat"], 0)
    uids = universe(0, 6040, tr[0], te[0])
    iids = universe(0, 3706, tr[1], te[1])
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
    return predefined("spectralcf-ml-1m", train, test, {"part": part}, paths)


DATASETS: tuple[DatasetSpec, ...] = (
DatasetSpec(
    name="spectralcf-ml-1m",
    description="SpectralCF's released split of ML-1M 5-star ratings (train 179,207 + test "
    "47,103 = 226,310 pairs), in the 6,040 x 3,706 ML-1M id space.",
    source="github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation @ f5618c6, "
    "Conferences/RecSys/SpectralCF_github/data/ml-1m",
    licence=GROUPLENS_TERMS,
    paper_tables=("7",),
    options={"part": "'original' (Split of the released files) or 'all' (train ∪ test)"},
    returns="Split (part='original') or Interactions (part='all'); 6,040 x 3,706",
    files=sha_files(PAPER_REPO + "Conferences/RecSys/SpectralCF_github/data/ml-1m/", [
        ("test_users.dat", 217824,
         "b114c7c87a94462399b02e4f59f05e91b690a9091adea83dd8efcfd3e03b67ee"),
        ("train_users.dat", 761460,
         "ee6cf59160f3cde155416941ac42890f79accd9cf7f1ac5496ee194db49687bb"),
    ]),
    loader=_load_spectralcf,
),
)
