"""Tests for recforge.data.split_io: lossless round trips and loud failures on bad files."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.data.split import Split
from recforge.data.split_io import SplitFileError, load_split, save_split
from recforge.data.splitting import (
    carve_validation,
    held_out_users,
    per_user_holdout,
    predefined_split,
)


def data(str_ids: bool = True) -> Interactions:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(12), 9)
    items = np.concatenate([rng.choice(20, 9, replace=False) for _ in range(12)])
    return Interactions.from_arrays(
        users,
        items,
        shape=(12, 20),
        ratings=rng.integers(1, 6, users.size),
        timestamps=rng.integers(0, 10**9, users.size),
        user_ids=np.array([f"user-{u}" for u in range(12)]) if str_ids else np.arange(12) * 7,
        item_ids=np.arange(20) + 1000,
        item_features=sp.random(20, 5, density=0.3, random_state=1, format="csr"),
        item_feature_names=np.array([f"f{k}" for k in range(5)]),
        name="toy",
    )


def assert_same_interactions(a: Interactions, b: Interactions) -> None:
    assert a.shape == b.shape and a.name == b.name
    assert a.checksum() == b.checksum()
    assert np.array_equal(a.user_ids, b.user_ids) and np.array_equal(a.item_ids, b.item_ids)
    for attr in ("ratings", "timestamps"):
        x, y = getattr(a, attr), getattr(b, attr)
        assert (x is None and y is None) or np.array_equal(x, y)
    assert (a.item_features is None) == (b.item_features is None)
    if a.item_features is not None:
        assert (a.item_features != b.item_features).nnz == 0
        assert np.array_equal(a.item_feature_names, b.item_feature_names)


def assert_same_split(a: Split, b: Split) -> None:
    assert b.fingerprint() == a.fingerprint()
    assert b.method == a.method and b.params == a.params
    for name in ("train", "test", "validation", "test_profiles", "validation_profiles"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert_same_interactions(x, y)
    for name in ("test_negatives", "validation_negatives"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert np.array_equal(x.indptr, y.indptr) and np.array_equal(x.indices, y.indices)


def test_round_trip_keeps_everything(tmp_path: Path) -> None:
    x = data()
    s = carve_validation(per_user_holdout(x, 0.2, seed=3), 0.1, seed=4, add_back=True)
    s = Split(
        train=s.train,
        test=s.test,
        validation=s.validation,
        test_negatives=predefined_split(
            s.train, s.test, test_negatives=[[1, 1, 2]] + [[3]] * 11
        ).test_negatives,
        method=s.method,
        params=s.params,
    )
    out = save_split(s, tmp_path / "split")
    assert sorted(p.name for p in out.iterdir()) == ["arrays.npz", "split.json"]
    loaded = load_split(out)
    assert_same_split(s, loaded)
    assert loaded.test_negatives is not None
    assert loaded.test_negatives.indices[:3].tolist() == [1, 1, 2]  # duplicates survive
    assert loaded.params["add_back"] is True
    meta = json.loads((out / "split.json").read_text())
    assert meta["fingerprint"] == s.fingerprint() and meta["method"] == "per_user_holdout"
    assert meta["user_ids"]["values"][:2] == ["user-0", "user-1"]
    # no pickled objects anywhere in the arrays file
    with np.load(out / "arrays.npz", allow_pickle=False) as arrays:
        assert all(arrays[k].dtype != object for k in arrays.files)


def test_round_trip_of_held_out_users_split_with_int_ids(tmp_path: Path) -> None:
    s = held_out_users(data(str_ids=False), 3, 2, seed=1, min_interactions=2)
    loaded = load_split(save_split(s, tmp_path / "heldout"))
    assert_same_split(s, loaded)
    assert loaded.train.user_ids.dtype.kind == "i"


def test_save_overwrites_and_rejects_a_file_path(tmp_path: Path) -> None:
    a = per_user_holdout(data(), 0.2, seed=1)
    b = per_user_holdout(data(), 0.2, seed=2)
    save_split(a, tmp_path / "s")
    save_split(b, tmp_path / "s")
    assert load_split(tmp_path / "s").fingerprint() == b.fingerprint()
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError, match="is not a directory"):
        save_split(a, tmp_path / "file")


def test_unserialisable_params_are_refused(tmp_path: Path) -> None:
    s = per_user_holdout(data(), 0.2, seed=1)
    bad = Split(train=s.train, test=s.test, params={"model": object()})
    with pytest.raises(TypeError, match="params are not JSON-serialisable"):
        save_split(bad, tmp_path / "bad")


# ---------------------------------------------------------------------------- bad files
@pytest.fixture
def saved(tmp_path: Path) -> Path:
    return save_split(per_user_holdout(data(), 0.2, seed=1), tmp_path / "split")


@pytest.mark.parametrize("missing", ["arrays.npz", "split.json"])
def test_missing_file_is_named(saved: Path, missing: str) -> None:
    (saved / missing).unlink()
    with pytest.raises(SplitFileError, match=rf"{saved / missing} is missing"):
        load_split(saved)


def test_corrupted_arrays_file_is_named(saved: Path) -> None:
    raw = bytearray((saved / "arrays.npz").read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    (saved / "arrays.npz").write_bytes(bytes(raw))
    with pytest.raises(SplitFileError, match=r"arrays\.npz is corrupted or was changed"):
        load_split(saved)


def test_truncated_arrays_with_matching_checksum_is_unreadable(saved: Path) -> None:
    path = saved / "arrays.npz"
    path.write_bytes(path.read_bytes()[:200])
    meta = json.loads((saved / "split.json").read_text())
    meta["arrays_sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    (saved / "split.json").write_text(json.dumps(meta))
    with pytest.raises(SplitFileError, match=r"arrays\.npz is unreadable"):
        load_split(saved)


def test_corrupted_metadata_is_named(saved: Path) -> None:
    text = (saved / "split.json").read_text()
    (saved / "split.json").write_text(text[: len(text) // 2])
    with pytest.raises(SplitFileError, match=r"split\.json is not valid JSON"):
        load_split(saved)


def test_fingerprint_mismatch_is_reported(saved: Path) -> None:
    meta = json.loads((saved / "split.json").read_text())
    meta["fingerprint"] = "0" * 64
    (saved / "split.json").write_text(json.dumps(meta))
    with pytest.raises(SplitFileError, match="fingerprint mismatch"):
        load_split(saved)


def test_arrays_of_another_split_are_detected(saved: Path, tmp_path: Path) -> None:
    other = save_split(per_user_holdout(data(), 0.2, seed=2), tmp_path / "other")
    shutil.copy(other / "arrays.npz", saved / "arrays.npz")
    with pytest.raises(SplitFileError, match="corrupted or was changed"):
        load_split(saved)
    # even with the checksum patched, the recomputed fingerprint gives it away
    meta = json.loads((saved / "split.json").read_text())
    meta["arrays_sha256"] = json.loads((other / "split.json").read_text())["arrays_sha256"]
    (saved / "split.json").write_text(json.dumps(meta))
    with pytest.raises(SplitFileError, match="fingerprint mismatch"):
        load_split(saved)


def test_missing_array_is_named(saved: Path) -> None:
    with np.load(saved / "arrays.npz") as arrays:
        kept = {k: arrays[k] for k in arrays.files if not k.startswith("test.")}
    np.savez_compressed(saved / "arrays.npz", **kept)
    meta = json.loads((saved / "split.json").read_text())
    meta["arrays_sha256"] = hashlib.sha256((saved / "arrays.npz").read_bytes()).hexdigest()
    (saved / "split.json").write_text(json.dumps(meta))
    with pytest.raises(SplitFileError, match=r"array 'test\.data' is missing"):
        load_split(saved)


def test_unknown_format_version_is_refused(saved: Path) -> None:
    meta = json.loads((saved / "split.json").read_text())
    meta["format_version"] = 99
    (saved / "split.json").write_text(json.dumps(meta))
    with pytest.raises(SplitFileError, match="no supported format_version"):
        load_split(saved)
