"""Where the catalog's files come from: pinned repository commits, release hosts, licence terms."""

from __future__ import annotations

from recforge.data.dataset_spec import FileSpec

__all__ = [
    "CITEULIKE_RAW",
    "CITEULIKE_TERMS",
    "GROUPLENS",
    "GROUPLENS_TERMS",
    "PAPER_REPO",
    "blob_files",
    "sha_files",
]

#: The RecSys'19 authors' repository at the commit whose blobs the catalog pins.
PAPER_REPO = (
    "https://raw.githubusercontent.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation/"
    "f5618c65573c5b220713775bdd56971663de9828/"
)
GROUPLENS = "https://files.grouplens.org/datasets/movielens/"
CITEULIKE_RAW = (
    "https://raw.githubusercontent.com/js05212/citeulike-a/"
    "91b603922d7f2d3db18071d4798bf78c9c5d1680/"
)

GROUPLENS_TERMS = (
    "GroupLens terms: research use only, acknowledge the dataset (Harper & Konstan, ACM TiiS "
    "2015), no redistribution without separate permission, no commercial use, no endorsement "
    "implied. Keep internal."
)
CITEULIKE_TERMS = (
    "citeulike-a (Wang & Blei KDD 2011; Wang, Chen & Li IJCAI 2013): no licence stated; "
    "research use, cite the original papers."
)


def sha_files(base: str | None, rows: list[tuple[str, int, str]]) -> tuple[FileSpec, ...]:
    """Files known by (filename, size, sha256), at ``base + filename`` (None: no URL)."""
    return tuple(
        FileSpec(filename=f, size=n, sha256=h, url=None if base is None else base + f)
        for f, n, h in rows
    )


def blob_files(base: str, rows: list[tuple[str, str]]) -> tuple[FileSpec, ...]:
    """Files of a pinned repository commit known by (filename, git blob id)."""
    return tuple(FileSpec(filename=f, git_blob=b, url=base + f) for f, b in rows)
