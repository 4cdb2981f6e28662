"""The saved-model format: ``model.json`` + ``arrays.npz`` in one directory, no pickle.

``model.json`` holds the format version, the registry name and class path, the recforge version,
the training data's checksum, the hyper-parameters and the small learned values (JSON, with
tuples and non-finite floats tagged so they load back exactly). ``arrays.npz`` holds every learned
array (dense as is; scipy CSR/CSC as ``<name>.data/.indices/.indptr``), read back with
``allow_pickle=False``. What is saved is the model's ``_get_fitted_state()`` (by default every
public attribute ending in ``_``); models with other state (torch weights) add files through
``_save_files``/``_load_files``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from recforge._json import write_json
from recforge.data.interactions import Interactions

if TYPE_CHECKING:
    from recforge.models.base import Recommender

__all__ = [
    "ARRAYS_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "MODEL_FILE",
    "ModelDataMismatchError",
    "read_model",
    "write_model",
]

log = logging.getLogger(__name__)

MODEL_FILE = "model.json"
ARRAYS_FILE = "arrays.npz"
FORMAT = "recforge-model"
FORMAT_VERSION = 1


class ModelDataMismatchError(ValueError):
    """``load`` was given other data than the model was fitted on."""


def write_model(model: Recommender, path: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Write fitted ``model`` to directory ``path`` (see :meth:`Recommender.save`)."""
    from recforge import __version__

    out = Path(path)
    who = f"{type(model).__name__}.save"
    if out.exists():
        if not out.is_dir():
            raise FileExistsError(f"{who}: {out} is a file; give a directory path")
        if (out / MODEL_FILE).exists():
            if not overwrite:
                raise FileExistsError(
                    f"{who}: {out} already holds a saved model; pass overwrite=True"
                )
        elif any(out.iterdir()):
            raise FileExistsError(
                f"{who}: {out} is a non-empty directory without a saved model; choose a new "
                "or empty directory"
            )
    params = {k: _to_json(v, who, f"hyper-parameter {k}") for k, v in model.get_params().items()}
    arrays: dict[str, np.ndarray] = {}
    fitted: dict[str, Any] = {}
    for key, value in model._get_fitted_state().items():
        fitted[key] = _encode(key, value, arrays, who)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": model.name or type(model).__name__,
        "class": f"{type(model).__module__}:{type(model).__qualname__}",
        "recforge_version": __version__,
        "train_checksum": model.train_checksum_,
        "params": params,
        "fitted": fitted,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old = tmp.with_suffix(".old")
    try:
        with open(tmp / ARRAYS_FILE, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        model._save_files(tmp)
        write_json(tmp / MODEL_FILE, meta, indent=1)
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return out


def read_model(
    cls: type[Recommender],
    path: str | os.PathLike[str],
    *,
    data: Interactions | str | None,
    allow_other_data: bool,
    device: str | None = None,
) -> Recommender:
    """Read a model saved by :func:`write_model` (see :meth:`Recommender.load`)."""
    src = Path(path)
    try:
        meta = json.loads((src / MODEL_FILE).read_text())
    except FileNotFoundError:
        msg = f"{src}: no {MODEL_FILE}, not a saved recforge model"
        raise FileNotFoundError(msg) from None
    if meta.get("format") != FORMAT or meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{src / MODEL_FILE}: format {meta.get('format')!r} version "
            f"{meta.get('format_version')!r}; expected {FORMAT!r} version {FORMAT_VERSION}"
        )
    saved = str(meta["train_checksum"])
    if not allow_other_data:
        if data is None:
            raise ValueError(
                f"load({str(src)!r}): pass data= (the training Interactions or its checksum) "
                "to check the model belongs to it, or allow_other_data=True to skip the check"
            )
        given = data.checksum() if isinstance(data, Interactions) else str(data)
        if given != saved:
            raise ModelDataMismatchError(
                f"{src}: model {meta['model']} was fitted on data with checksum {saved}, "
                f"but the given data has checksum {given}; pass allow_other_data=True to "
                "load it anyway"
            )
    target = _resolve_class(cls, meta, src)
    from recforge import __version__

    if meta.get("recforge_version") != __version__:
        log.warning(
            "%s was saved by recforge %s, this is %s",
            src, meta.get("recforge_version"), __version__,
        )
    params = {k: _from_json(v) for k, v in meta["params"].items()}
    if device is not None:
        kind = str(device).split(":", 1)[0]
        if kind not in target.devices or (kind != "cpu" and "device" not in params):
            raise ValueError(f"load({str(src)!r}, device={device!r}): {target.__name__} "
                             f"computes on {', '.join(target.devices)} only")
        if "device" in params:
            params["device"] = device
    model = target(**params)
    with np.load(src / ARRAYS_FILE, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    state = {k: _decode(k, v, arrays) for k, v in meta["fitted"].items()}
    try:
        model._set_fitted_state(state)
    except ValueError as exc:
        if device is not None or "device" not in params:
            raise
        # e.g. fitted on a GPU, loaded where torch sees none
        raise ValueError(f"{src}: {exc}; load it with device='cpu' (recforge recommend "
                         "--device cpu)") from None
    model._load_files(src)
    return model


# --------------------------------------------------------------------------- encoding
_TUPLE, _FLOAT = "__tuple__", "__float__"


def _to_json(value: Any, who: str, what: str) -> Any:
    """``value`` as JSON that loads back equal and of the same type (tuples and non-finite
    floats tagged); anything JSON cannot hold exactly is refused, naming ``what``."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if np.isfinite(value) else {_FLOAT: repr(value)}
    if isinstance(value, tuple):
        return {_TUPLE: [_to_json(v, who, what) for v in value]}
    if isinstance(value, list):
        return [_to_json(v, who, what) for v in value]
    if isinstance(value, dict) and all(isinstance(k, str) for k in value):
        return {k: _to_json(v, who, what) for k, v in value.items()}
    raise TypeError(
        f"{who}: {what} = {value!r} ({type(value).__name__}) cannot be saved as JSON; use "
        "numbers, strings, None, lists, tuples or str-keyed dicts of them"
    )


def _from_json(obj: Any) -> Any:
    if isinstance(obj, list):
        return [_from_json(v) for v in obj]
    if isinstance(obj, dict):
        if set(obj) == {_TUPLE}:
            return tuple(_from_json(v) for v in obj[_TUPLE])
        if set(obj) == {_FLOAT}:
            return float(obj[_FLOAT])
        return {k: _from_json(v) for k, v in obj.items()}
    return obj


def _ids_array(a: np.ndarray) -> np.ndarray:
    """An object array of ids as a native (int or str) array, which npz stores without pickle."""
    if a.dtype != object:
        return a
    native = np.asarray(a.tolist())
    return native if native.dtype != object else a.astype(str)


def _encode(key: str, value: Any, arrays: dict[str, np.ndarray], who: str) -> Any:
    if isinstance(value, np.ndarray):
        arrays[key] = _ids_array(value)
        if arrays[key].dtype == object:
            raise TypeError(f"{who}: attribute {key} is an object array; store numbers or str")
        return {"kind": "ndarray"}
    if sp.issparse(value):
        fmt = value.format if value.format in ("csr", "csc") else "csr"
        m = value.asformat(fmt)
        arrays[f"{key}.data"] = m.data
        arrays[f"{key}.indices"] = m.indices
        arrays[f"{key}.indptr"] = m.indptr
        return {"kind": fmt, "shape": [int(s) for s in m.shape]}
    if isinstance(value, np.generic):
        arrays[key] = np.asarray(value)
        return {"kind": "scalar"}
    if isinstance(value, bool | int | float) and not isinstance(value, np.generic):
        arrays[key] = np.asarray(value)
        return {"kind": "python", "type": type(value).__name__}
    if value is None or isinstance(value, str | list | tuple | dict):
        return {"kind": "json", "value": _to_json(value, who, f"attribute {key}")}
    raise TypeError(
        f"{who}: cannot save attribute {key} of type {type(value).__name__}; override "
        "_get_fitted_state/_set_fitted_state to store it as arrays"
    )


def _decode(key: str, spec: dict[str, Any], arrays: dict[str, np.ndarray]) -> Any:
    kind = spec["kind"]
    if kind == "ndarray":
        return arrays[key]
    if kind in ("csr", "csc"):
        ctor = sp.csr_matrix if kind == "csr" else sp.csc_matrix
        m = ctor(
            (arrays[f"{key}.data"], arrays[f"{key}.indices"], arrays[f"{key}.indptr"]),
            shape=tuple(spec["shape"]),
        )
        return m
    if kind == "scalar":
        return arrays[key][()]
    if kind == "python":
        return {"bool": bool, "int": int, "float": float}[spec["type"]](arrays[key].item())
    if kind == "json":
        return _from_json(spec["value"])
    raise ValueError(f"unknown saved attribute kind {kind!r} for {key}")


def _resolve_class(cls: type[Recommender], meta: dict[str, Any], src: Path) -> type[Recommender]:
    from recforge.models import MODELS, get_model_class
    from recforge.models.base import Recommender

    saved_class = str(meta["class"])
    if cls is not Recommender:
        here = f"{cls.__module__}:{cls.__qualname__}"
        if here != saved_class:
            raise TypeError(f"{src} holds a {saved_class} model, not {here}")
        return cls
    name = str(meta["model"])
    if name not in MODELS:
        raise KeyError(
            f"{src} holds model {name!r} ({saved_class}), which is not registered; register it "
            "or call load on its class"
        )
    target = get_model_class(name)
    here = f"{target.__module__}:{target.__qualname__}"
    if here != saved_class:
        raise TypeError(f"{src} holds a {saved_class} model; {name!r} is registered as {here}")
    return target
