"""Resume points of the training loop: an interrupted fit goes on from its last saved epoch.

A fit given ``resume=Resume(path=...)`` (see :func:`recforge.models.iterative.train_iterative`)
writes, after each validated epoch and after any other epoch once ``every_seconds`` passed since
the last write, one file holding the loop's state (epoch, history,
best value, best state, patience count) and the model's ``_training_snapshot()`` (weights,
optimiser, generators: everything the next epochs depend on). A later fit of the same model
(same class, hyper-parameters, training data, stopping rule) on the same path reads it and
continues after the saved epoch, so the finished model equals an uninterrupted fit's bit for
bit; a fit that finishes removes the file. A file that does not match the fit is reported and
replaced (a fresh start loses nothing it could have used).

Format: one ``.npz`` (read with ``allow_pickle=False``): every array or tensor of the state as
its own entry, and ``__tree__`` (UTF-8 JSON, bytes) holding the rest, with arrays, tensors,
tuples, non-finite floats and dicts with non-string keys tagged so they load back exactly.
Torch is imported only when a tensor is stored or loaded.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from recforge._files import atomic_path
from recforge._json import dumps

__all__ = ["FORMAT", "Resume", "read_point", "write_point"]

FORMAT = "recforge-resume-point"
FORMAT_VERSION = 1
_TREE = "__tree__"
_ARRAY, _TENSOR, _TUPLE, _FLOAT, _ITEMS = (
    "__array__", "__tensor__", "__tuple__", "__float__", "__items__")


class Resume(BaseModel):
    """Where a fit keeps its resume point and how often it is rewritten."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    every_seconds: float = Field(default=60.0, ge=0)


def _encode(obj: Any, arrays: dict[str, np.ndarray], where: str) -> Any:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(obj, torch.Tensor):
        key = f"a{len(arrays)}"
        t = obj.detach().to("cpu")
        arrays[key] = t.numpy().copy()
        return {_TENSOR: key, "dtype": str(t.dtype).removeprefix("torch.")}
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:
            raise TypeError(f"resume point: {where} is an object array")
        key = f"a{len(arrays)}"
        arrays[key] = obj
        return {_ARRAY: key}
    if isinstance(obj, np.generic):
        obj = obj.item()
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else {_FLOAT: repr(obj)}
    if isinstance(obj, tuple):
        return {_TUPLE: [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj):
            return {k: _encode(v, arrays, f"{where}.{k}") for k, v in obj.items()}
        return {_ITEMS: [[_encode(k, arrays, where), _encode(v, arrays, f"{where}[{k!r}]")]
                         for k, v in obj.items()]}
    raise TypeError(f"resume point: {where} has type {type(obj).__name__}, which cannot be "
                    "stored (use arrays, tensors, numbers, strings, lists, tuples, dicts)")


def _decode(obj: Any, arrays: Any) -> Any:
    if isinstance(obj, list):
        return [_decode(v, arrays) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if _TENSOR in obj:
        import torch

        return torch.from_numpy(arrays[obj[_TENSOR]].copy())
    if _ARRAY in obj:
        return arrays[obj[_ARRAY]]
    if _TUPLE in obj:
        return tuple(_decode(v, arrays) for v in obj[_TUPLE])
    if _FLOAT in obj:
        return float(obj[_FLOAT])
    if _ITEMS in obj:
        return {_decode(k, arrays): _decode(v, arrays) for k, v in obj[_ITEMS]}
    return {k: _decode(v, arrays) for k, v in obj.items()}


def write_point(path: str | Path, identity: dict[str, Any], state: dict[str, Any]) -> Path:
    """Write ``state`` under ``identity`` (the fit it belongs to) to ``path``, atomically."""
    arrays: dict[str, np.ndarray] = {}
    tree = {"format": FORMAT, "version": FORMAT_VERSION, "identity": identity,
            "state": _encode(state, arrays, "state")}
    text = dumps(tree, indent=None).encode("utf-8")
    arrays[_TREE] = np.frombuffer(text, dtype=np.uint8)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)  # type: ignore[arg-type]
    return Path(path)


def read_point(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(identity, state)`` of the resume point at ``path``.

    Raises ValueError naming the file when it is not a resume point of this format."""
    src = Path(path)
    try:
        with np.load(src, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{src}: not a readable resume point ({exc})") from exc
    if _TREE not in arrays:
        raise ValueError(f"{src}: not a resume point (no {_TREE} entry)")
    tree = json.loads(arrays.pop(_TREE).tobytes().decode("utf-8"))
    if tree.get("format") != FORMAT or tree.get("version") != FORMAT_VERSION:
        raise ValueError(f"{src}: format {tree.get('format')!r} version {tree.get('version')!r}"
                         f", expected {FORMAT!r} version {FORMAT_VERSION}")
    return tree["identity"], _decode(tree["state"], arrays)
