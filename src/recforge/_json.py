"""The one JSON encoder for every file and ``--json`` output the lab writes.

Rules: non-finite floats -> null (JSON has no NaN/Infinity; strict parsers reject them), numpy
scalars and arrays -> native numbers and lists, ``Path`` -> str, tuples and sets -> lists,
mapping keys -> str, pydantic models -> their JSON dump, dataclasses -> dicts. Anything else
becomes ``str(value)`` so a long run's results are never lost to one odd value.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from recforge._files import write_text_atomic

__all__ = ["dumps", "jsonable", "write_json"]


def jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON types, following the module's rules."""
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    # numpy only if it is loaded (no numpy value can exist otherwise): this module stays
    # standard-library-only for the platform's sidecar, which forks for every replica.
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(obj, np.generic):
            return jsonable(obj.item())
        if isinstance(obj, np.ndarray):
            return jsonable(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        items = sorted(obj, key=repr) if isinstance(obj, set | frozenset) else obj
        return [jsonable(v) for v in items]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "model_dump") and callable(obj.model_dump):  # pydantic models
        return jsonable(obj.model_dump(mode="json"))
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return jsonable(dataclasses.asdict(obj))
    return str(obj)


def dumps(obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> str:
    """JSON text of ``obj`` (strict: no NaN/Infinity tokens ever appear)."""
    return json.dumps(jsonable(obj), indent=indent, sort_keys=sort_keys, allow_nan=False)


def write_json(path: str | Path, obj: Any, *, indent: int | None = 2) -> Path:
    """Write ``obj`` to ``path`` atomically (see :mod:`recforge._files`)."""
    return write_text_atomic(path, dumps(obj, indent=indent) + "\n")
