"""The one JSON encoder (recforge._json) and the atomic writes under it."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from pydantic import BaseModel

from recforge._files import atomic_path
from recforge._json import dumps, jsonable, write_json


@dataclass
class _Point:
    x: float
    where: Path


class _Model(BaseModel):
    name: str
    value: float


def test_rules() -> None:
    obj = {
        "nan": math.nan, "inf": -math.inf, "f32": np.float32(0.5), "i64": np.int64(7),
        "arr": np.array([[1.0, np.nan], [2.0, 3.0]]), "path": Path("/a/b"), 3: (1, 2),
        "set": {2, 1}, "bool": np.bool_(True), "dc": _Point(np.nan, Path("p")),
        "model": _Model(name="m", value=1.0), "other": complex(1, 2),
    }
    assert jsonable(obj) == {
        "nan": None, "inf": None, "f32": 0.5, "i64": 7, "arr": [[1.0, None], [2.0, 3.0]],
        "path": "/a/b", "3": [1, 2], "set": [1, 2], "bool": True,
        "dc": {"x": None, "where": "p"}, "model": {"name": "m", "value": 1.0},
        "other": "(1+2j)",
    }
    text = dumps(obj)
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["i64"] == 7


def test_write_json_is_atomic_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "r.json"
    write_json(target, {"a": np.float64(np.inf)})
    assert json.loads(target.read_text()) == {"a": None}
    assert os.listdir(target.parent) == ["r.json"]


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "r.json"
    write_json(target, {"v": 1})
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert json.loads(target.read_text()) == {"v": 1}
    assert os.listdir(tmp_path) == ["r.json"]
