"""The dataset registry: checksummed file specs plus a loader per dataset.

Built-in datasets are defined in :mod:`recforge.data.datasets` and registered on first use.
``load_dataset(name, **options)`` fetches the files (cache, mirror or URL; see
:mod:`recforge.data.download`), verifies their sha256 and calls the dataset's loader, which
returns an :class:`~recforge.data.interactions.Interactions`, a
:class:`~recforge.data.split.Split`, or (for side files only) the object its docs name.
Loading is deterministic: the same files and options always give the same result.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from recforge.data.download import fetch_file
from recforge.data.interactions import Interactions
from recforge.data.split import Split

__all__ = [
    "DatasetSpec",
    "DatasetUnavailableError",
    "FileSpec",
    "UnknownDatasetError",
    "dataset_info",
    "fetch",
    "get_dataset",
    "list_datasets",
    "load_dataset",
    "register",
]

#: (dataset, filename) -> local path of the verified file. Loaders receive one.
Fetcher = Callable[[str, str], Path]


class UnknownDatasetError(LookupError):
    """No dataset of that name is registered."""


class DatasetUnavailableError(RuntimeError):
    """The dataset (or the requested part) cannot be built from the files obtainable here."""


class FileSpec(BaseModel):
    """One file of a dataset: name, size in bytes, sha256 and where it originally came from."""

    model_config = ConfigDict(frozen=True)

    filename: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)
    url: str | None = None  # None: derived file, only obtainable through a mirror
    note: str = ""


class DatasetSpec(BaseModel):
    """A registered dataset.

    ``options`` documents the keyword options of ``load_dataset``; ``loader`` is called as
    ``loader(fetch, **options)`` where ``fetch(dataset, filename)`` returns a verified path.
    """

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    name: str
    description: str
    files: tuple[FileSpec, ...]
    licence: str
    source: str
    paper_tables: tuple[str, ...] = ()
    status: str = "complete"
    options: dict[str, str] = Field(default_factory=dict)
    returns: str = "Interactions"
    loader: Callable[..., Any] | None = Field(default=None, exclude=True, repr=False)

    def file(self, filename: str) -> FileSpec:
        for f in self.files:
            if f.filename == filename:
                return f
        raise KeyError(
            f"dataset {self.name!r} has no file {filename!r}; files: "
            f"{[f.filename for f in self.files]}"
        )

    def option_names(self) -> list[str]:
        if self.loader is None:
            return []
        params = inspect.signature(self.loader).parameters.values()
        return [p.name for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY]


_REGISTRY: dict[str, DatasetSpec] = {}
_BUILTINS_LOADED = False


def register(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Add a dataset to the registry (``replace=True`` to overwrite an existing name)."""
    if spec.name in _REGISTRY and not replace:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def _ensure_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        import recforge.data.datasets  # noqa: F401  (registers the built-in datasets)


def list_datasets() -> list[DatasetSpec]:
    """Every registered dataset, sorted by name."""
    _ensure_builtins()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_dataset(name: str) -> DatasetSpec:
    """The spec of ``name``; unknown names raise :class:`UnknownDatasetError` listing the known."""
    _ensure_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; known datasets: {', '.join(sorted(_REGISTRY))}"
        ) from None


def _fetcher(cache_dir: str | Path | None) -> Fetcher:
    def fetch_one(dataset: str, filename: str) -> Path:
        f = get_dataset(dataset).file(filename)
        return fetch_file(dataset, f.filename, f.url, f.sha256, cache_dir)

    return fetch_one


def fetch(
    name: str, filename: str | None = None, *, cache_dir: str | Path | None = None
) -> Path | dict[str, Path]:
    """Fetch and verify one file of a dataset (a Path) or all of them ({filename: Path})."""
    spec = get_dataset(name)
    get = _fetcher(cache_dir)
    if filename is not None:
        return get(name, spec.file(filename).filename)
    return {f.filename: get(name, f.filename) for f in spec.files}


def load_dataset(name: str, *, cache_dir: str | Path | None = None, **options: Any) -> Any:
    """Fetch, verify and parse a registered dataset; ``options`` go to its loader.

    Returns an Interactions or a Split (method "predefined") for interaction data; see
    ``get_dataset(name).options`` / ``.returns``. Unknown options raise ValueError.
    """
    spec = get_dataset(name)
    if spec.loader is None:
        raise DatasetUnavailableError(
            f"dataset {name!r} has no loader (metadata and files only: use fetch({name!r}))"
        )
    allowed = spec.option_names()
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(
            f"dataset {name!r} has no option(s) {unknown}; options: {allowed or 'none'}"
        )
    return spec.loader(_fetcher(cache_dir), **options)


def _counts(x: Interactions) -> dict[str, Any]:
    return {
        "shape": list(x.shape),
        "interactions": x.nnz,
        "users_with_interactions": int((x.user_counts() > 0).sum()),
        "items_with_interactions": int((x.item_counts() > 0).sum()),
        "checksum": x.checksum(),
        "item_features": None if x.item_features is None else list(x.item_features.shape),
    }


def dataset_info(
    name: str, *, cache_dir: str | Path | None = None, load: bool = True, **options: Any
) -> dict[str, Any]:
    """Spec (files, sizes, checksums, source, licence) plus counts after loading.

    With ``load=False`` no file is touched. When the dataset cannot be loaded here the reason
    is under ``"unavailable"`` instead of ``"loaded"``.
    """
    spec = get_dataset(name)
    info: dict[str, Any] = spec.model_dump(mode="json")
    info["options"] = dict(spec.options)
    if not load or spec.loader is None:
        return info
    try:
        obj = load_dataset(name, cache_dir=cache_dir, **options)
    except DatasetUnavailableError as exc:
        info["unavailable"] = str(exc)
        return info
    loaded: dict[str, Any] = {"options": options, "type": type(obj).__name__}
    if isinstance(obj, Interactions):
        loaded.update(_counts(obj))
    elif isinstance(obj, Split):
        loaded.update(obj.describe())
        loaded["train_checksum"] = obj.train.checksum()
        loaded["test_checksum"] = obj.test.checksum()
    elif hasattr(obj, "shape"):
        loaded["shape"] = list(obj.shape)
    info["loaded"] = loaded
    return info
