"""The dataset registry: look up, fetch, verify and load datasets by name.

The built-in datasets are data in :mod:`recforge.data.catalog` (one module per source); the
registry starts from :data:`recforge.data.catalog.BUILTIN` on first use, adds the datasets a
JSON catalog names (``$RECFORGE_CATALOG``, see :func:`read_catalog`), and :func:`register`
adds your own. ``load_dataset(name, **options)`` obtains the files (cache, mirror, archive,
URL or local derivation; see :mod:`recforge.data.download`), verifies them against the
identifiers their source publishes and calls the dataset's loader, which returns an
:class:`~recforge.data.interactions.Interactions`, a :class:`~recforge.data.split.Split`, or
(for side files only) the object its docs name. Loading is deterministic: the same files and
options always give the same result.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from recforge.data.catalog import BUILTIN
from recforge.data.dataset_spec import (
    ArchiveSpec,
    DatasetSpec,
    DatasetUnavailableError,
    Fetcher,
    FileSpec,
    UnknownDatasetError,
)
from recforge.data.download import availability as _availability
from recforge.data.download import cached_file, mirror_root, obtain
from recforge.data.interactions import Interactions
from recforge.data.split import Split

__all__ = [
    "ArchiveSpec",
    "DatasetSpec",
    "DatasetUnavailableError",
    "Fetcher",
    "FileSpec",
    "UnknownDatasetError",
    "availability",
    "dataset_info",
    "fetch",
    "fetch_command",
    "get_dataset",
    "is_local",
    "list_datasets",
    "load_dataset",
    "read_catalog",
    "register",
]

_REGISTRY: dict[str, DatasetSpec] = {}
_BUILTINS_LOADED = False


CATALOG_ENV = "RECFORGE_CATALOG"


def _registry() -> dict[str, DatasetSpec]:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        for spec in BUILTIN:
            _REGISTRY.setdefault(spec.name, spec)
        _BUILTINS_LOADED = True
        extra = os.environ.get(CATALOG_ENV)
        if extra:
            for spec in read_catalog(extra):
                if spec.name in _REGISTRY:
                    raise ValueError(f"{CATALOG_ENV}={extra}: dataset {spec.name!r} is "
                                     "already registered (built in)")
                _REGISTRY[spec.name] = spec
    return _REGISTRY


def read_catalog(path: str | Path) -> list[DatasetSpec]:
    """Datasets described as data in a JSON file: a list of objects with the fields of
    :class:`DatasetSpec` (name, description, licence, source, files, archives, ...), each file
    with its URL or archive member and its identifiers. They can be listed and fetched
    (verified) like the built-in ones; they have no loader. ``$RECFORGE_CATALOG`` names such a
    file to register your own datasets without code."""
    p = Path(path)
    try:
        entries = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"dataset catalog {p}: cannot read it as JSON ({exc})") from None
    if not isinstance(entries, list):
        raise ValueError(f"dataset catalog {p}: expected a JSON list of datasets")
    specs = []
    for k, entry in enumerate(entries):
        try:
            specs.append(DatasetSpec.model_validate(entry))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in e['loc']) or '<entry>'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ValueError(f"dataset catalog {p}, entry {k + 1}: {problems}") from None
    return specs


def register(spec: DatasetSpec, *, replace: bool = False) -> DatasetSpec:
    """Add a dataset to the registry (``replace=True`` to overwrite an existing name)."""
    reg = _registry()
    if spec.name in reg and not replace:
        raise ValueError(f"dataset {spec.name!r} is already registered")
    reg[spec.name] = spec
    return spec


def list_datasets() -> list[DatasetSpec]:
    """Every registered dataset, sorted by name."""
    reg = _registry()
    return [reg[k] for k in sorted(reg)]


def get_dataset(name: str) -> DatasetSpec:
    """The spec of ``name``; unknown names raise :class:`UnknownDatasetError` listing the known."""
    reg = _registry()
    try:
        return reg[name]
    except KeyError:
        raise UnknownDatasetError(
            f"unknown dataset {name!r}; known datasets: {', '.join(sorted(reg))}"
        ) from None


def fetch_command(name: str) -> str:
    """The command a user online runs to download and verify ``name``."""
    return f"recforge data fetch {name}"


class _Fetch:
    """The ``fetch`` loaders and derivers receive (see :class:`Fetcher`)."""

    def __init__(self, cache_dir: str | Path | None) -> None:
        self.cache_dir = cache_dir

    def __call__(self, dataset: str, filename: str) -> Path:
        spec = get_dataset(dataset)
        if spec.unobtainable is not None:
            raise DatasetUnavailableError(f"dataset {dataset!r} is unobtainable: "
                                          f"{spec.unobtainable}")
        return obtain(spec, spec.file(filename).filename, self, self.cache_dir)

    def local(self, dataset: str, filename: str) -> Path | None:
        spec = get_dataset(dataset)
        f = spec.file(filename)
        hit = cached_file(spec, f, self.cache_dir)
        if hit is not None:
            return hit
        mirror = mirror_root()
        if mirror is not None and (mirror / dataset / filename).is_file():
            return self(dataset, filename)
        return None


def fetch(
    name: str, filename: str | None = None, *, cache_dir: str | Path | None = None
) -> Path | dict[str, Path]:
    """Fetch and verify one file of a dataset (a Path) or all of them ({filename: Path})."""
    spec = get_dataset(name)
    get = _Fetch(cache_dir)
    if filename is not None:
        return get(name, spec.file(filename).filename)
    if spec.unobtainable is not None:
        raise DatasetUnavailableError(f"dataset {name!r} is unobtainable: {spec.unobtainable}")
    return {f.filename: get(name, f.filename) for f in spec.files}


def is_local(name: str, filename: str | None = None, *,
             cache_dir: str | Path | None = None) -> bool:
    """True when using the file (or every file of ``name``) needs no network: it is verified in
    the cache or present in the data mirror. Nothing is read or hashed."""
    if filename is None:
        return availability(name, cache_dir=cache_dir)[0] in ("cached", "in mirror")
    spec = get_dataset(name)
    f = spec.file(filename)
    if cached_file(spec, f, cache_dir) is not None:
        return True
    mirror = mirror_root()
    return mirror is not None and (
        (mirror / name / filename).is_file()
        or (f.archive is not None and (mirror / name / f.archive).is_file())
    )


def availability(name: str, *, cache_dir: str | Path | None = None) -> tuple[str, str]:
    """(status, why) of a dataset: cached, in mirror, not in mirror, downloadable or
    unobtainable; touches neither the network nor the file contents."""
    return _availability(get_dataset(name), cache_dir)


def load_dataset(name: str, *, cache_dir: str | Path | None = None, **options: Any) -> Any:
    """Fetch, verify and parse a registered dataset; ``options`` go to its loader.

    Returns an Interactions or a Split (method "predefined") for interaction data; see
    ``get_dataset(name).options`` / ``.returns``. Unknown options raise ValueError; a file that
    cannot be obtained raises :class:`~recforge.data.download.DownloadError` (a
    :class:`DatasetUnavailableError`) naming it and where it was looked for.
    """
    spec = get_dataset(name)
    if spec.unobtainable is not None:
        raise DatasetUnavailableError(f"dataset {name!r} is unobtainable: {spec.unobtainable}")
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
    return spec.loader(_Fetch(cache_dir), **options)


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
    """Spec (files, identifiers, sources, licence), availability, plus counts after loading.

    With ``load=False`` no file is touched. When the dataset cannot be loaded here the reason
    is under ``"unavailable"`` instead of ``"loaded"``.
    """
    spec = get_dataset(name)
    info: dict[str, Any] = spec.model_dump(mode="json")
    info["options"] = dict(spec.options)
    status, why = availability(name, cache_dir=cache_dir)
    info["availability"] = {"status": status, "why": why}
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
