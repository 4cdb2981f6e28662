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
from recforge.data.download import DownloadError
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
    "citeulike-a-raw", "cmn-citeulike-a", "cvae-citeulike-a", "epinions", "mcrec-lastfm",
    "mcrec-ml-100k", "mcrec-yelp", "movielens-100k", "movielens-1m", "movielens-20m",
    "netflix-prize", "neumf-ml-1m", "neumf-pinterest", "spectralcf-ml-1m",
}
UNOBTAINABLE = {"epinions", "netflix-prize"}


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
        assert s.description and s.licence and s.source
        assert bool(s.files) == (s.name not in UNOBTAINABLE)
        assert (s.unobtainable is not None) == (s.name in UNOBTAINABLE)


def test_the_catalog_is_data_and_the_registry_cycle_is_gone() -> None:
    """Registration is the catalog's BUILTIN tuple; no catalog module imports the registry."""
    import recforge.data.catalog as catalog

    assert {s.name for s in catalog.BUILTIN} == NAMES
    imports_registry = re.compile(
        r"^\s*(from recforge\.data\.registry import|import recforge\.data\.registry|"
        r"from recforge\.data import .*\bregistry\b)", re.M)
    src = Path(catalog.__file__).parent
    for module in src.glob("*.py"):
        text = module.read_text()
        assert not imports_registry.search(text), module
        assert "register(" not in text, module
    for name in ("dataset_spec.py", "download.py"):
        assert not imports_registry.search((src.parent / name).read_text()), name


def test_unknown_dataset_lists_known_names() -> None:
    with pytest.raises(UnknownDatasetError) as e:
        get_dataset("ml-100k")
    assert "'ml-100k'" in str(e.value)
    for name in NAMES:
        assert name in str(e.value)


def test_every_file_has_a_network_path_from_its_source() -> None:
    raw = re.compile(r"^https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/")
    grouplens = "https://files.grouplens.org/datasets/movielens/"
    for spec in list_datasets():
        for a in spec.archives:
            assert a.url == grouplens + a.filename and a.md5, a
        for f in spec.files:
            if f.filename in spec.derivers:
                assert f.url is None and f.archive is None and f.sha256  # verified result
                continue
            assert f.remote, (spec.name, f.filename)
            if f.url is not None:
                assert raw.match(f.url) or f.url.startswith(grouplens), f.url
                assert f.url.endswith("/" + f.filename)
                # a file from a moving target would need a sha256: a pinned commit gives a blob
                assert f.sha256 or f.git_blob, f
            if f.archive is not None:
                assert f.member is not None and f.member.endswith("/" + f.filename)
    cmn = get_dataset("cmn-citeulike-a")
    assert set(cmn.derivers) == {"train.tsv", "test_with_negatives.tsv"}


def test_published_identifiers_are_registered() -> None:
    """The blob ids and md5 sums of shared/docs/data-sources.md, file by file."""
    blobs = {
        ("movielens-1m", "ratings.dat"): "77a7c4b150f588c23bb9e1f068aa996c0b413695",
        ("neumf-ml-1m", "ml-1m.train.rating"): "31ba384fd58dac8fbd09d2dfc6616431f3563ab5",
        ("neumf-pinterest", "pinterest-20.train.rating"):
            "99813f8ed7486c36fa0f405e3f400db5d6fed0be",
        ("neumf-pinterest", "pinterest-20.test.negative"):
            "b752ccdc14df423b9484771440ff4a73e4a4a304",
        ("neumf-pinterest", "pinterest-20.test.rating"):
            "87fdbd13bced61c51f2842e2a667e83b9b0084e3",
        ("cvae-citeulike-a", "mult_nor.mat"): "da724372f829f2bc40f3e335f191877d82927d23",
        ("mcrec-ml-100k", "ml-100k.ummm_5_1"): "61834fae8282ae207cd087b1549068c422c29c54",
        ("mcrec-ml-100k", "ml-100k.umtm_5_1"): "9a09e0d7c888cfa20c6c50e1c2132c4e95f92682",
        ("mcrec-ml-100k", "ml-100k.umum_5_1"): "ba03d2d82af10524f8707ef87e9b868aefd0fa7e",
        ("mcrec-ml-100k", "ml-100k.uuum_5_1"): "fb261e341b343f07c77d40fd4d9204c76e4a7317",
        ("mcrec-ml-100k", "ml-100k.test.negative"): "03b1cd598b8e7bd563a60386e3daf430642c648b",
    }
    for (name, filename), blob in blobs.items():
        assert get_dataset(name).file(filename).git_blob == blob
    md5 = {"movielens-100k": ("ml-100k.zip", "0e33842e24a9c977be4e0107933c0723"),
           "movielens-1m": ("ml-1m.zip", "c4d9eecfca2ab87c1945afe126590906"),
           "movielens-20m": ("ml-20m.zip", "cd245b17a1ae2cc31bb14903e1204af3")}
    for name, (archive, digest) in md5.items():
        assert get_dataset(name).archive(archive).md5 == digest
    assert get_dataset("neumf-pinterest").file("pinterest-20.test.rating").size == 807_267
    assert get_dataset("movielens-20m").file("ratings.csv").member == "ml-20m/ratings.csv"


@pytest.mark.paper_data(registered=True)
def test_specs_match_readmes_and_mirror_bytes(mirror: Path) -> None:
    in_mirror = [s for s in list_datasets() if (mirror / s.name).is_dir()]
    assert {s.name for s in in_mirror} == NAMES - UNOBTAINABLE - {"movielens-20m",
                                                                 "neumf-pinterest"}
    for spec in in_mirror:
        folder = mirror / spec.name
        expected = readme_files(folder)
        known = {f.filename: (f.size, f.sha256) for f in spec.files if f.sha256}
        assert known == expected, spec.name
        for f in spec.files:
            if f.sha256 is None:
                # downloadable only (a blob id or an archive's md5): not in the mirror
                assert not (folder / f.filename).exists(), (spec.name, f.filename)
                continue
            data = (folder / f.filename).read_bytes()
            assert len(data) == f.size
            assert hashlib.sha256(data).hexdigest() == f.sha256


@pytest.mark.paper_data("mcrec-ml-100k")
def test_fetch_one_or_all_files(mirror: Path) -> None:
    names = ["ml-100k.train.rating", "ml-100k.test.rating", "ml-100k.bpr.item_embedding",
             "ml-100k.bpr.type_embedding", "ml-100k.bpr.user_embedding"]
    paths = {n: fetch("mcrec-ml-100k", n) for n in names}
    cache = Path(os.environ["RECFORGE_CACHE"])
    for n, p in paths.items():
        assert isinstance(p, Path) and p == cache / "mcrec-ml-100k" / n
    # The metapath files are downloadable only: with a mirror set there is no network, and
    # fetching every file names the first one the mirror lacks.
    with pytest.raises(DownloadError, match=r"ml-100k\.\w+_5_1: not found in the data mirror"):
        fetch("mcrec-ml-100k")
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


def test_data_list_shows_availability_and_why(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from recforge.cli.main import app

    monkeypatch.delenv("RECFORGE_DATA_MIRROR", raising=False)
    monkeypatch.setenv("RECFORGE_CACHE", str(tmp_path / "cache"))
    res = CliRunner().invoke(app, ["data", "list", "--json"])
    assert res.exit_code == 0, res.output
    status = {d["name"]: d["availability"] for d in json.loads(res.stdout)}
    assert set(status) == NAMES
    for name in UNOBTAINABLE:
        assert status[name]["status"] == "unobtainable" and status[name]["why"]
    assert status["movielens-20m"] == {"status": "downloadable",
                                       "why": "3 file(s) from files.grouplens.org"}
    assert status["cmn-citeulike-a"]["why"].endswith("2 derived locally")
    # with a mirror that lacks a dataset, the reason names the mirror
    monkeypatch.setenv("RECFORGE_DATA_MIRROR", str(tmp_path / "mirror"))
    res = CliRunner().invoke(app, ["data", "list"])
    assert res.exit_code == 0 and "not in mirror" in res.output and "unobtainable" in res.output
