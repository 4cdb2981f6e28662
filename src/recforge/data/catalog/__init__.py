"""The built-in datasets of the RecSys'19 reproduction, one module per source.

Each source module defines its datasets as data (``DATASETS``: file specs with their
identifiers and sources, licence notes, a loader); :data:`BUILTIN` lists them all. Nothing is
registered on import: :mod:`recforge.data.registry` reads :data:`BUILTIN` when first asked.

Loaders are deterministic parsers of the released files (no sampling). Id conventions:
external ids are kept exactly as in the files (1-based for MovieLens and MCRec, 0-based for the
SpectralCF, CVAE, CMN and NCF releases) and every id space is the documented universe, so users
or items without interactions in a file still exist as empty rows / columns.
"""

from __future__ import annotations

from recforge.data.catalog import (
    citeulike,
    cmn,
    cvae,
    grouplens,
    mcrec,
    ncf,
    spectralcf,
    unobtainable,
)
from recforge.data.dataset_spec import DatasetSpec

__all__ = ["BUILTIN"]

#: Every built-in dataset, by source.
BUILTIN: tuple[DatasetSpec, ...] = (
    *grouplens.DATASETS,    # files.grouplens.org: MovieLens 100K, 1M, 20M
    *mcrec.DATASETS,        # MCRec (KDD'18): ML-100k split, LastFM, Yelp
    *spectralcf.DATASETS,   # SpectralCF (RecSys'18): ML-1M 5-star split
    *cvae.DATASETS,         # CVAE / CDL (KDD'17, KDD'15): CiteULike-a P=1 / P=10
    *cmn.DATASETS,          # CMN (SIGIR'18): CiteULike-a with sampled negatives
    *citeulike.DATASETS,    # js05212/citeulike-a: tags, citations, vocabulary
    *ncf.DATASETS,          # NCF (WWW'17): ML-1M and Pinterest with sampled negatives
    *unobtainable.DATASETS,  # Netflix Prize, Epinions: no public source
)
