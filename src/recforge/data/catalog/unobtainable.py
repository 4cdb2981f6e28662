"""Datasets of the paper that have no public source: listed so users see why a table cannot run."""

from __future__ import annotations

from recforge.data.dataset_spec import DatasetSpec

__all__ = ["DATASETS"]

DATASETS: tuple[DatasetSpec, ...] = (
    DatasetSpec(
        name="netflix-prize",
        description="Netflix Prize ratings (Table 9, Mult-VAE): 100M ratings of 480k users.",
        source="Netflix Prize (2006-2009); withdrawn by Netflix",
        licence="Netflix Prize terms (competition use only); no longer distributed.",
        paper_tables=("9",),
        files=(),
        unobtainable="Netflix withdrew the Prize data; there is no official public host, so "
        "Table 9 cannot be reproduced from a verifiable source.",
        status="unobtainable",
        returns="nothing (no loader)",
    ),
    DatasetSpec(
        name="epinions",
        description="Epinions ratings (Table 2, CMN): trustlet.org ratings_data.txt.bz2, all "
        "ratings as 1, split by the paper's own unseeded code.",
        source="trustlet.org (Massa & Avesani), offline",
        licence="no licence stated by the source.",
        paper_tables=("2",),
        files=(),
        unobtainable="the authors' source (trustlet.org ratings_data.txt.bz2) is offline and "
        "the paper split it with unseeded randomness, so its Table 2 block cannot be rebuilt.",
        status="unobtainable",
        returns="nothing (no loader)",
    ),
)
