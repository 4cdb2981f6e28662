"""What a registered dataset is: its files, how each is obtained and verified, and its loader.

Pure data shared by the registry (:mod:`recforge.data.registry`) and the built-in catalog
(:mod:`recforge.data.catalog`); it imports neither, so neither imports the other through it.

A file is identified by its content, by whatever its source publishes: a sha256, the git blob
id of a file fetched from a pinned repository commit, an md5, or (for a member of an archive)
the checksum of the archive. It is obtained from the first source that works, in this order:
its archive (downloaded once, members extracted into the cache), its direct URL, and finally a
local derivation from other files of the same dataset (``DatasetSpec.derivers``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ArchiveSpec",
    "DatasetSpec",
    "DatasetUnavailableError",
    "Deriver",
    "Fetcher",
    "FileSpec",
    "UnknownDatasetError",
]

_SHA256 = r"^[0-9a-f]{64}$"
_SHA1 = r"^[0-9a-f]{40}$"
_MD5 = r"^[0-9a-f]{32}$"


class UnknownDatasetError(LookupError):
    """No dataset of that name is registered."""


class DatasetUnavailableError(RuntimeError):
    """The dataset (or the requested part) cannot be built from the files obtainable here."""


class Fetcher(Protocol):
    """What a loader receives: ``fetch(dataset, filename)`` returns the verified local path.

    ``fetch.local(dataset, filename)`` returns it only when no network is needed (already
    cached, or in the data mirror), else None.
    """

    def __call__(self, dataset: str, filename: str) -> Path: ...

    def local(self, dataset: str, filename: str) -> Path | None: ...


#: ``derive(fetch, out)`` writes a derived file to ``out`` from other (fetched) files.
Deriver = Callable[[Fetcher, Path], None]


class _Identified(BaseModel):
    """Content identifiers; at least one must be given (checked by the subclasses)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str | None = Field(default=None, pattern=_SHA256)
    git_blob: str | None = Field(default=None, pattern=_SHA1)
    md5: str | None = Field(default=None, pattern=_MD5)
    size: int | None = Field(default=None, ge=0)

    def identifiers(self) -> dict[str, str]:
        """The known content identifiers, strongest first ({"sha256": ..., ...})."""
        out = {"sha256": self.sha256, "git_blob": self.git_blob, "md5": self.md5}
        return {k: v for k, v in out.items() if v is not None}


class ArchiveSpec(_Identified):
    """A zip archive published by a source (e.g. GroupLens' ``ml-1m.zip`` with its md5)."""

    filename: str
    url: str

    @model_validator(mode="after")
    def _has_identifier(self) -> ArchiveSpec:
        if not self.identifiers():
            raise ValueError(f"archive {self.filename!r} needs a sha256, git_blob or md5")
        return self


class FileSpec(_Identified):
    """One file of a dataset, its identifiers and its sources.

    ``url``: a direct download. ``archive``/``member``: the file is ``member`` of the dataset's
    archive ``archive`` (verified by the archive's checksum, and by this file's own identifiers
    where known). A file with neither is derived locally when the dataset has a deriver for it
    (it must then carry its sha256, since a deterministic derivation has a known result), else
    it is obtainable only from a data mirror (your own datasets; every built-in file has a
    network path).
    """

    filename: str
    url: str | None = None
    archive: str | None = None
    member: str | None = None
    note: str = ""

    @model_validator(mode="after")
    def _consistent(self) -> FileSpec:
        if (self.archive is None) != (self.member is None):
            raise ValueError(f"file {self.filename!r}: give archive and member together")
        if self.archive is None and not self.identifiers():
            raise ValueError(
                f"file {self.filename!r} needs a sha256, git_blob or md5 (or an archive)"
            )
        return self

    @property
    def remote(self) -> bool:
        """True when the file has a network source (a URL or an archive)."""
        return self.url is not None or self.archive is not None


class DatasetSpec(BaseModel):
    """A registered dataset.

    ``options`` documents the keyword options of ``load_dataset``; ``loader`` is called as
    ``loader(fetch, **options)`` where ``fetch(dataset, filename)`` returns a verified path.
    ``unobtainable`` (with no files) marks a dataset of the paper that has no public source;
    it is listed so users see why a table cannot run.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    description: str
    files: tuple[FileSpec, ...]
    licence: str
    source: str
    archives: tuple[ArchiveSpec, ...] = ()
    paper_tables: tuple[str, ...] = ()
    status: str = "complete"
    unobtainable: str | None = None
    options: dict[str, str] = Field(default_factory=dict)
    returns: str = "Interactions"
    loader: Callable[..., Any] | None = Field(default=None, exclude=True, repr=False)
    derivers: dict[str, Deriver] = Field(default_factory=dict, exclude=True, repr=False)

    @model_validator(mode="after")
    def _consistent(self) -> DatasetSpec:
        names = [f.filename for f in self.files]
        if len(set(names)) != len(names):
            raise ValueError(f"dataset {self.name!r} lists a file twice: {names}")
        archives = {a.filename for a in self.archives}
        for f in self.files:
            if f.archive is not None and f.archive not in archives:
                raise ValueError(
                    f"dataset {self.name!r}: file {f.filename!r} names unknown archive "
                    f"{f.archive!r}"
                )
            if f.filename in self.derivers and f.sha256 is None:
                raise ValueError(
                    f"dataset {self.name!r}: derived file {f.filename!r} needs its sha256"
                )
        unknown = sorted(set(self.derivers) - set(names))
        if unknown:
            raise ValueError(f"dataset {self.name!r}: derivers for unknown files {unknown}")
        if self.unobtainable is not None and self.files:
            raise ValueError(f"dataset {self.name!r} is unobtainable but lists files")
        if self.unobtainable is None and not self.files:
            raise ValueError(f"dataset {self.name!r} lists no files (mark it unobtainable)")
        return self

    def file(self, filename: str) -> FileSpec:
        for f in self.files:
            if f.filename == filename:
                return f
        raise KeyError(
            f"dataset {self.name!r} has no file {filename!r}; files: "
            f"{[f.filename for f in self.files]}"
        )

    def archive(self, filename: str) -> ArchiveSpec:
        for a in self.archives:
            if a.filename == filename:
                return a
        raise KeyError(f"dataset {self.name!r} has no archive {filename!r}")

    def option_names(self) -> list[str]:
        if self.loader is None:
            return []
        params = inspect.signature(self.loader).parameters.values()
        return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]
