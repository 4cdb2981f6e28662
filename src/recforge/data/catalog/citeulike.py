"""Hao Wang's citeulike-a repository (js05212/citeulike-a): vocabulary, tags, citations."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge.data.catalog._parse import choice, ldac, read_lines
from recforge.data.catalog._sources import CITEULIKE_RAW, CITEULIKE_TERMS, sha_files
from recforge.data.dataset_spec import DatasetSpec, Fetcher

__all__ = ["DATASETS", "item_tag_matrix"]


def item_tag_matrix(fetch: Fetcher, n_items: int | None = None) -> sp.csr_matrix:
    """Binary articles x tags matrix of ``item-tag.dat`` (at least ``n_items`` rows)."""
    rows, ids, _, n_lines = ldac(fetch("citeulike-a-raw", "item-tag.dat"))
    n_tags = len(read_lines(fetch("citeulike-a-raw", "tags.dat")))
    n_rows = max(n_items or 0, n_lines)
    m = sp.csr_matrix(
        (np.ones(rows.size, dtype=np.float32), (rows, ids)),
        shape=(n_rows, max(n_tags, int(ids.max()) + 1 if ids.size else 0)),
    )
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def _load_citeulike_raw(fetch: Fetcher, *, part: str = "item_tags") -> Any:
    choice("part", part, ("item_tags", "citations", "tags", "vocabulary"))
    if part == "item_tags":
        return item_tag_matrix(fetch)
    if part == "citations":
        rows, ids, _, n = ldac(fetch("citeulike-a-raw", "citations.dat"))
        m = sp.csr_matrix(
            (np.ones(rows.size, dtype=np.float32), (rows, ids)), shape=(n, max(n, ids.max() + 1))
        )
        m.sum_duplicates()
        return m
    fname = "tags.dat" if part == "tags" else "vocabulary.dat"
    return [ln.decode("utf-8", errors="replace") for ln in read_lines(fetch("citeulike-a-raw",
                                                                              fname))]


DATASETS: tuple[DatasetSpec, ...] = (
DatasetSpec(
    name="citeulike-a-raw",
    description="CiteULike-a auxiliary files: vocabulary (8,000 words), 46,391 tags, item-tag "
    "and citation lists of the 16,980 articles.",
    source="github.com/js05212/citeulike-a @ 91b6039",
    licence=CITEULIKE_TERMS,
    paper_tables=("4", "5"),
    options={"part": "'item_tags' (CSR 16,980 x 46,391), 'citations' (CSR 16,980 x 16,980), "
                     "'tags' or 'vocabulary' (list of str)"},
    returns="scipy.sparse.csr_matrix or list[str]",
    status="complete (mult.dat / raw-data.csv are not registered: the paper's normalised bag "
    "of words is cvae-citeulike-a's mult_nor.mat)",
    files=sha_files(CITEULIKE_RAW, [
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
),
)
