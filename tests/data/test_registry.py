"""The dataset registry: specs agree with the data READMEs, API errors are clear."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import numpy as np
import pydantic
import pytest

from recforge.data import registry
from recforge.data.interactions import Interactions
from recforge.data.registry import (
    DatasetSpec,
    DatasetUnavailableError,
    FileSpec,
    UnknownDatasetError,
    dataset_info,
    fetch,
    get_dataset,
    list_datasets,
    load_dataset,
    register,
)

NAMES = {
    "citeulike-a-raw", "cmn-citeulike-a", "cvae-citeulike-a", "mcrec-lastfm", "mcrec-ml-100k",
    "mcrec-yelp", "movielens-100k", "movielens-1m", "neumf-ml-1m", "spectralcf-ml-1m",
}


@pytest.fixture
def mirror(paper_data: Path) -> Path:
    """The mirror root; each test declares the datasets it reads (tests/conftest.py)."""
    return paper_data


def readme_files(folder: Path) -> dict[str, tuple[int, str]]:
    rows = re.findall(
        r"^\| (\S[^|]*?) \| (\d+) \| ([0-9a-f]{64}) \|$",
        (folder / "README.md").read_text(),
        flags=re.M,
    )
    return {name: (int(size), sha) for name, size, sha in rows}


def test_every_dataset_is_registered() -> None:
    specs = list_datasets()
    assert {s.name for s in specs} == NAMES
    assert [s.name for s in specs] == sorted(NAMES)
    for s in specs:
        assert s.description and s.licence and s.source and s.files


def test_unknown_dataset_lists_known_names() -> None:
    with pytest.raises(UnknownDatasetError) as e:
        get_dataset("ml-100k")
    assert "'ml-100k'" in str(e.value)
    for name in NAMES:
        assert name in str(e.value)


def test_urls_point_at_the_original_sources() -> None:
    raw = re.compile(r"^https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/")
    for spec in list_datasets():
        for f in spec.files:
            if spec.name == "cmn-citeulike-a" and f.filename.endswith(".tsv"):
                assert f.url is None  # derived from the npz by the data team
            elif spec.name == "movielens-100k" and f.filename in ("u.data", "u.item"):
                assert f.url == f"https://files.grouplens.org/datasets/movielens/ml-100k/{f.filename}"
            else:
                assert f.url is not None and raw.match(f.url), f.url
                assert f.url.endswith("/" + f.filename)


@pytest.mark.paper_data(registered=True)
def test_specs_match_readmes_and_mirror_bytes(mirror: Path) -> None:
    for spec in list_datasets():
        folder = mirror / spec.name
        expected = readme_files(folder)
        assert {f.filename: (f.size, f.sha256) for f in spec.files} == expected, spec.name
        for f in spec.files:
            data = (folder / f.filename).read_bytes()
            assert len(data) == f.size
            assert hashlib.sha256(data).hexdigest() == f.sha256


@pytest.mark.paper_data("mcrec-ml-100k")
def test_fetch_one_or_all_files(mirror: Path) -> None:
    paths = fetch("mcrec-ml-100k")
    assert isinstance(paths, dict)
    assert set(paths) == {
        "ml-100k.train.rating", "ml-100k.test.rating", "ml-100k.bpr.item_embedding",
        "ml-100k.bpr.type_embedding", "ml-100k.bpr.user_embedding",
    }
    one = fetch("mcrec-ml-100k", "ml-100k.test.rating")
    assert one == paths["ml-100k.test.rating"]
    assert one.parent.parent == Path(os.environ["RECFORGE_CACHE"])
    with pytest.raises(KeyError, match="no file 'nope'"):
        fetch("mcrec-ml-100k", "nope")


def test_options_are_checked() -> None:
    assert get_dataset("cvae-citeulike-a").option_names() == ["p", "part", "item_features"]
    with pytest.raises(ValueError, match=r"no option\(s\) \['q'\]; options: \['p', 'part'"):
        load_dataset("cvae-citeulike-a", q=3)


@pytest.mark.paper_data("cvae-citeulike-a")
def test_option_values_are_checked(mirror: Path) -> None:
    with pytest.raises(ValueError, match=r"p=3 is not one of \[1, 10\]"):
        load_dataset("cvae-citeulike-a", p=3)


def test_dataset_info_without_loading_is_json() -> None:
    info = dataset_info("cmn-citeulike-a", load=False)
    json.dumps(info)
    assert "loaded" not in info and "loader" not in info
    assert {f["filename"] for f in info["files"]} == {
        "citeulike-a.npz", "train.tsv", "test_with_negatives.tsv",
    }
    assert info["paper_tables"] == ["2"]
    assert "source" in info["options"]


@pytest.mark.paper_data("mcrec-ml-100k", "movielens-100k", "neumf-ml-1m")
def test_dataset_info_counts_after_load(mirror: Path) -> None:
    info = dataset_info("mcrec-ml-100k")
    json.dumps(info)
    assert info["loaded"]["type"] == "Split"
    assert info["loaded"]["train"] == {"interactions": 80000, "users": 943, "items": 1657}
    assert info["loaded"]["test"]["interactions"] == 20000
    assert info["loaded"]["shape"] == [943, 1682]
    ml = dataset_info("movielens-100k", with_genres=False)
    assert ml["loaded"]["interactions"] == 100000 and ml["loaded"]["item_features"] is None
    na = dataset_info("neumf-ml-1m")
    assert "ml-1m.train.rating" in na["unavailable"] and "loaded" not in na


def test_register_custom_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"1 2\n1 3\n4 2\n"
    (tmp_path / "mirror" / "toy-ds").mkdir(parents=True)
    (tmp_path / "mirror" / "toy-ds" / "pairs.txt").write_bytes(body)
    monkeypatch.setenv("RECFORGE_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("RECFORGE_CACHE", str(tmp_path / "cache"))

    def loader(fetch, *, offset: int = 0) -> Interactions:  # type: ignore[no-untyped-def]
        a = np.loadtxt(fetch("toy-ds", "pairs.txt"), dtype=np.int64)
        return Interactions.from_arrays(a[:, 0] - offset, a[:, 1] - offset)

    spec = DatasetSpec(
        name="toy-ds", description="toy", licence="none", source="test",
        files=(FileSpec(filename="pairs.txt", size=len(body),
                        sha256=hashlib.sha256(body).hexdigest()),),
        loader=loader,
    )
    monkeypatch.setitem(registry._REGISTRY, "toy-ds", spec)
    with pytest.raises(ValueError, match="already registered"):
        register(spec)
    x = load_dataset("toy-ds", offset=1)
    assert x.shape == (4, 3) and x.nnz == 3
    no_loader = spec.model_copy(update={"name": "toy-meta", "loader": None})
    monkeypatch.setitem(registry._REGISTRY, "toy-meta", no_loader)
    with pytest.raises(DatasetUnavailableError, match="no loader"):
        load_dataset("toy-meta")


def test_file_spec_validates_checksum_format() -> None:
    with pytest.raises(pydantic.ValidationError):
        FileSpec(filename="x", size=1, sha256="abc")
