"""Save and load a :class:`~recforge.data.split.Split` without pickle.

Layout of a saved split (a directory)::

    <path>/arrays.npz   CSR arrays of every part, plus ratings / timestamps / features
    <path>/split.json   format version, method, params, fingerprint, shape, id maps,
                        item feature names, the name of each part and the sha256 of arrays.npz

Loading checks the sha256 of ``arrays.npz`` and recomputes :meth:`Split.fingerprint`; any
mismatch, a missing or unreadable file, or a missing array raises :class:`SplitFileError`
naming the file. Negatives are restored exactly as stored (duplicates kept, not canonicalised).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.data.split import Split

__all__ = ["SplitFileError", "load_split", "save_split"]

FORMAT_VERSION = 1
ARRAYS_FILE = "arrays.npz"
METADATA_FILE = "split.json"
_PARTS = ("train", "test", "validation", "test_profiles", "validation_profiles")
_NEGATIVES = ("test_negatives", "validation_negatives")


class SplitFileError(ValueError):
    """A saved split is missing, unreadable, or does not match its recorded fingerprint."""


# ---------------------------------------------------------------------------- id maps
def _ids_to_json(ids: np.ndarray, what: str) -> dict[str, Any]:
    arr = np.asarray(ids)
    if arr.dtype.kind in "iu":
        return {"kind": "int", "values": arr.astype(np.int64).tolist()}
    if arr.dtype.kind == "U" or (
        arr.dtype.kind == "O" and all(isinstance(v, str) for v in arr.tolist())
    ):
        return {"kind": "str", "values": [str(v) for v in arr.tolist()]}
    raise TypeError(f"cannot save {what} of dtype {arr.dtype}: only integer or string ids")


def _ids_from_json(obj: dict[str, Any], where: Path) -> np.ndarray:
    try:
        kind, values = obj["kind"], obj["values"]
    except (KeyError, TypeError) as exc:
        raise SplitFileError(f"{where}: malformed id map ({exc!r})") from None
    if kind == "int":
        return np.asarray(values, dtype=np.int64)
    if kind == "str":
        return np.asarray(values, dtype=str)
    raise SplitFileError(f"{where}: unknown id map kind {kind!r}")


# ---------------------------------------------------------------------------- arrays
def _put_csr(arrays: dict[str, np.ndarray], prefix: str, m: sp.csr_matrix) -> None:
    arrays[f"{prefix}.data"] = np.asarray(m.data, dtype=np.float32)
    arrays[f"{prefix}.indices"] = np.asarray(m.indices, dtype=np.int64)
    arrays[f"{prefix}.indptr"] = np.asarray(m.indptr, dtype=np.int64)
    arrays[f"{prefix}.shape"] = np.asarray(m.shape, dtype=np.int64)


def _get(arrays: Any, key: str, where: Path) -> np.ndarray:
    try:
        return np.asarray(arrays[key])
    except KeyError:
        raise SplitFileError(f"{where}: array {key!r} is missing") from None
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise SplitFileError(f"{where}: array {key!r} is unreadable ({exc})") from None


def _raw_csr(arrays: Any, prefix: str, where: Path, canonical: bool) -> sp.csr_matrix:
    data = _get(arrays, f"{prefix}.data", where)
    indices = _get(arrays, f"{prefix}.indices", where)
    indptr = _get(arrays, f"{prefix}.indptr", where)
    shape = tuple(int(v) for v in _get(arrays, f"{prefix}.shape", where))
    if len(shape) != 2 or indptr.size != shape[0] + 1 or indices.size != data.size:
        raise SplitFileError(f"{where}: arrays of {prefix!r} are inconsistent")
    idx_dtype = np.int32 if max(shape[1], indices.size) < 2**31 - 1 else np.int64
    m = sp.csr_matrix(shape, dtype=np.float32)
    # Assigning the arrays keeps duplicated negatives exactly as they were saved.
    m.data = data.astype(np.float32)
    m.indices = indices.astype(idx_dtype)
    m.indptr = indptr.astype(idx_dtype)
    m.has_canonical_format = canonical
    return m


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------- public API
def save_split(split: Split, path: str | os.PathLike[str]) -> Path:
    """Write ``split`` to the directory ``path`` (created if needed) and return it.

    Params must be JSON-serialisable. Existing ``arrays.npz`` / ``split.json`` there are
    replaced; each file is written to a temporary name first and then renamed.
    """
    root = Path(path)
    if root.exists() and not root.is_dir():
        raise FileExistsError(f"save_split: {root} exists and is not a directory")
    root.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    parts: dict[str, dict[str, Any]] = {}
    for name in _PARTS:
        part: Interactions | None = getattr(split, name)
        if part is None:
            continue
        _put_csr(arrays, name, part.matrix)
        if part.ratings is not None:
            arrays[f"{name}.ratings"] = np.asarray(part.ratings, dtype=np.float32)
        if part.timestamps is not None:
            arrays[f"{name}.timestamps"] = np.asarray(part.timestamps, dtype=np.int64)
        parts[name] = {
            "name": part.name,
            "ratings": part.ratings is not None,
            "timestamps": part.timestamps is not None,
        }
    for name in _NEGATIVES:
        neg = getattr(split, name)
        if neg is not None:
            _put_csr(arrays, name, neg)
    # Parts are carved from one Interactions, so side information is stored once, from train.
    train = split.train
    if train.item_features is not None:
        _put_csr(arrays, "item_features", train.item_features)
    if train.user_features is not None:
        _put_csr(arrays, "user_features", train.user_features)

    arrays_path = root / ARRAYS_FILE
    tmp = root / (ARRAYS_FILE + ".tmp.npz")
    np.savez_compressed(tmp, allow_pickle=False, **arrays)  # type: ignore[arg-type]
    os.replace(tmp, arrays_path)

    meta = {
        "format_version": FORMAT_VERSION,
        "method": split.method,
        "params": split.params,
        "fingerprint": split.fingerprint(),
        "shape": list(train.shape),
        "parts": parts,
        "negatives": [n for n in _NEGATIVES if getattr(split, n) is not None],
        "user_ids": _ids_to_json(train.user_ids, "user_ids"),
        "item_ids": _ids_to_json(train.item_ids, "item_ids"),
        "item_feature_names": (
            None
            if train.item_feature_names is None
            else [str(v) for v in np.asarray(train.item_feature_names).tolist()]
        ),
        "arrays_sha256": _sha256(arrays_path),
    }
    try:
        text = json.dumps(meta, indent=1, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"save_split: params are not JSON-serialisable ({exc})") from None
    tmp_meta = root / (METADATA_FILE + ".tmp")
    tmp_meta.write_text(text, encoding="utf-8")
    os.replace(tmp_meta, root / METADATA_FILE)
    return root


def load_split(path: str | os.PathLike[str]) -> Split:
    """Read a split written by :func:`save_split`, verifying checksum and fingerprint."""
    root = Path(path)
    meta_path, arrays_path = root / METADATA_FILE, root / ARRAYS_FILE
    for p in (meta_path, arrays_path):
        if not p.is_file():
            raise SplitFileError(f"load_split: {p} is missing")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SplitFileError(f"load_split: {meta_path} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        raise SplitFileError(
            f"load_split: {meta_path} has no supported format_version (expected {FORMAT_VERSION})"
        )
    digest = _sha256(arrays_path)
    if digest != meta.get("arrays_sha256"):
        raise SplitFileError(
            f"load_split: {arrays_path} is corrupted or was changed: sha256 {digest} "
            f"!= recorded {meta.get('arrays_sha256')}"
        )
    try:
        with np.load(arrays_path, allow_pickle=False) as arrays:
            split = _build(meta, arrays, meta_path, arrays_path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise SplitFileError(f"load_split: {arrays_path} is unreadable ({exc})") from None
    found = split.fingerprint()
    if found != meta.get("fingerprint"):
        raise SplitFileError(
            f"load_split: fingerprint mismatch for {root}: recomputed {found}, "
            f"{meta_path} records {meta.get('fingerprint')}"
        )
    return split


def _build(meta: dict[str, Any], arrays: Any, meta_path: Path, arrays_path: Path) -> Split:
    try:
        parts_meta: dict[str, Any] = meta["parts"]
        user_ids = _ids_from_json(meta["user_ids"], meta_path)
        item_ids = _ids_from_json(meta["item_ids"], meta_path)
        negatives: list[str] = meta["negatives"]
        method, params = meta["method"], meta["params"]
    except KeyError as exc:
        raise SplitFileError(f"load_split: {meta_path} lacks the field {exc}") from None
    if "train" not in parts_meta or "test" not in parts_meta:
        raise SplitFileError(f"load_split: {meta_path} lists no train or no test part")
    names = meta.get("item_feature_names")
    side: dict[str, Any] = {
        "item_features": (
            _raw_csr(arrays, "item_features", arrays_path, True)
            if "item_features.data" in arrays.files
            else None
        ),
        "user_features": (
            _raw_csr(arrays, "user_features", arrays_path, True)
            if "user_features.data" in arrays.files
            else None
        ),
        "item_feature_names": None if names is None else np.asarray(names, dtype=str),
    }
    kwargs: dict[str, Any] = {}
    for name, info in parts_meta.items():
        if name not in _PARTS:
            raise SplitFileError(f"load_split: {meta_path} names an unknown part {name!r}")
        kwargs[name] = Interactions(
            matrix=_raw_csr(arrays, name, arrays_path, True),
            user_ids=user_ids,
            item_ids=item_ids,
            ratings=_get(arrays, f"{name}.ratings", arrays_path) if info["ratings"] else None,
            timestamps=(
                _get(arrays, f"{name}.timestamps", arrays_path) if info["timestamps"] else None
            ),
            name=str(info.get("name", name)),
            **side,
        )
    for name in negatives:
        if name not in _NEGATIVES:
            raise SplitFileError(f"load_split: {meta_path} names unknown negatives {name!r}")
        kwargs[name] = _raw_csr(arrays, name, arrays_path, False)
    try:
        return Split(method=method, params=params, **kwargs)
    except ValueError as exc:
        raise SplitFileError(
            f"load_split: {arrays_path} holds inconsistent parts ({exc})"
        ) from None
