"""Loaders of the downloadable-only files on stand-ins built to the releases' formats: the
MovieLens-20M zip (served on 127.0.0.1, md5 computed here) through the ``mult_vae`` split and
``recforge split``, MovieLens-1M ratings.dat, NCF Pinterest, mult_nor.mat; and the CMN tsv
files derived from the real npz."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp
from local_http import Server, git_blob, md5, zip_bytes
from typer.testing import CliRunner

from recforge.cli.main import app
from recforge.data import registry
from recforge.data.dataset_spec import ArchiveSpec, FileSpec
from recforge.data.download import verified_record
from recforge.data.registry import get_dataset, load_dataset, read_catalog


def ml20m_csv(n_users: int = 300, seed: int = 5) -> bytes:
    rng = np.random.default_rng(seed)
    lines = ["userId,movieId,rating,timestamp"]
    for u in range(1, n_users + 1):
        items = np.unique(rng.zipf(1.4, size=30) % 500 + 1)[: int(rng.integers(3, 25))]
        for i in items.tolist():
            lines.append(f"{u},{i},{rng.integers(1, 11) / 2:.1f},{1_000_000_000 + u * 10}")
    return ("\n".join(lines) + "\n").encode()


@pytest.fixture
def release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Server, bytes]]:
    csv = ml20m_csv()
    www = tmp_path / "www"
    www.mkdir()
    (www / "ml-20m.zip").write_bytes(zip_bytes({
        "ml-20m/ratings.csv": csv,
        "ml-20m/movies.csv": b"movieId,title,genres\n1,Toy Story (1995),Animation\n",
        "ml-20m/README.txt": b"stand-in\n",
    }))
    with Server(www) as server:
        spec = get_dataset("movielens-20m")
        archive = ArchiveSpec(filename="ml-20m.zip", url=f"{server.url}/ml-20m.zip",
                              md5=md5((www / "ml-20m.zip").read_bytes()))
        monkeypatch.setitem(registry._REGISTRY, "movielens-20m",
                            spec.model_copy(update={"archives": (archive,)}))
        monkeypatch.delenv("RECFORGE_DATA_MIRROR", raising=False)
        monkeypatch.setenv("RECFORGE_CACHE", str(tmp_path / "cache"))
        yield server, csv


def test_movielens_20m_from_its_zip(release: tuple[Server, bytes]) -> None:
    server, csv = release
    x = load_dataset("movielens-20m")
    rows = [ln.split(",") for ln in csv.decode().splitlines()[1:]]
    assert x.nnz == len(rows)
    assert x.ratings is not None and sorted(set(x.ratings.tolist())) <= [
        v / 2 for v in range(1, 11)]
    assert x.timestamps is not None and x.timestamps.min() >= 1_000_000_000
    assert server.requests == ["/ml-20m.zip"]
    movies = load_dataset("movielens-20m", part="movies")
    assert movies.iloc[0].tolist() == [1, "Toy Story (1995)", "Animation"]
    assert server.requests == ["/ml-20m.zip"]  # one download served every member


def test_recforge_split_names_mult_vae(release: tuple[Server, bytes], tmp_path: Path) -> None:
    res = CliRunner().invoke(app, [
        "split", "movielens-20m", "--method", "mult_vae", "-p", "n_heldout_users=40",
        "--seed", "98765", "--out", str(tmp_path / "s"), "--json",
    ])
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["audit"]["ok"] is True
    from recforge.data.split_io import load_split

    split = load_split(tmp_path / "s")
    assert split.method == "mult_vae" and split.params["seed"] == 98765
    assert split.test_profiles is not None and split.validation_profiles is not None
    held = np.flatnonzero((split.test.user_counts() + split.test_profiles.user_counts()) > 0)
    assert held.size == 40


def test_movielens_1m_ratings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    body = b"1::1193::5::978300760\n1::661::3::978302109\n2::1193::4::978298413\n"
    mirror = tmp_path / "mirror" / "movielens-1m"
    mirror.mkdir(parents=True)
    (mirror / "ratings.dat").write_bytes(body)
    spec = get_dataset("movielens-1m")
    files = tuple(FileSpec(filename="ratings.dat", git_blob=git_blob(body), url=f.url)
                  if f.filename == "ratings.dat" else f for f in spec.files)
    monkeypatch.setitem(registry._REGISTRY, "movielens-1m",
                        spec.model_copy(update={"files": files}))
    monkeypatch.setenv("RECFORGE_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("RECFORGE_CACHE", str(tmp_path / "cache"))
    x = load_dataset("movielens-1m")
    assert x.shape == (6040, 2) and x.nnz == 3
    assert x.item_ids.tolist() == [661, 1193]
    assert x.ratings.tolist() == [3.0, 5.0, 4.0]  # row order: user 1 (items 661, 1193), user 2
    (mirror / "ratings.dat").write_bytes(body + b"3::1::x::1\n")
    (tmp_path / "cache" / "movielens-1m" / "ratings.dat").unlink()
    with pytest.raises(Exception, match="checksum mismatch"):
        load_dataset("movielens-1m")


def test_pinterest_split(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    train = b"0\t0\t1\t0\n0\t1\t1\t0\n1\t1\t1\t0\n1\t2\t1\t0\n"
    test = b"0\t2\t1\t0\n1\t0\t1\t0\n"
    neg = b"(0,2)\t3\t4\n(1,0)\t3\t5\n"
    mirror = tmp_path / "mirror" / "neumf-pinterest"
    mirror.mkdir(parents=True)
    blobs = {"pinterest-20.train.rating": train, "pinterest-20.test.rating": test,
             "pinterest-20.test.negative": neg}
    for name, data in blobs.items():
        (mirror / name).write_bytes(data)
    spec = get_dataset("neumf-pinterest")
    files = tuple(FileSpec(filename=f.filename, url=f.url, git_blob=git_blob(blobs[f.filename]))
                  for f in spec.files)
    monkeypatch.setitem(registry._REGISTRY, "neumf-pinterest",
                        spec.model_copy(update={"files": files}))
    monkeypatch.setenv("RECFORGE_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("RECFORGE_CACHE", str(tmp_path / "cache"))
    s = load_dataset("neumf-pinterest")
    assert s.train.shape == (55187, 9916)  # NCF's id space
    assert (s.train.nnz, s.test.nnz) == (4, 2)
    assert s.test_negatives[0].indices.tolist() == [3, 4]
    assert s.params["files"]["pinterest-20.train.rating"] == hashlib.sha256(train).hexdigest()


def test_mult_nor_bag_of_words(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from recforge.data.catalog.cvae import bag_of_words

    x = np.zeros((4, 6))
    x[0, [1, 2]] = [1.0, 0.5]
    x[2, 5] = 1.0
    scipy.io.savemat(tmp_path / "mult_nor.mat", {"X": x})
    m = bag_of_words(tmp_path / "mult_nor.mat", n_items=5)
    assert isinstance(m, sp.csr_matrix) and m.dtype == np.float32 and m.shape == (5, 6)
    np.testing.assert_array_equal(m.toarray()[:4], x.astype(np.float32))
    scipy.io.savemat(tmp_path / "sparse.mat", {"X": sp.csr_matrix(x)})
    assert (bag_of_words(tmp_path / "sparse.mat") != m[:4]).nnz == 0
    scipy.io.savemat(tmp_path / "wrong.mat", {"Y": x})
    with pytest.raises(Exception, match="no variable 'X'"):
        bag_of_words(tmp_path / "wrong.mat")
    (tmp_path / "junk.mat").write_bytes(b"not matlab")
    with pytest.raises(Exception, match="not a readable Matlab file"):
        bag_of_words(tmp_path / "junk.mat")


@pytest.mark.paper_data("cmn-citeulike-a")
def test_cmn_tsv_files_are_derived_from_the_npz(paper_data: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    only_npz = tmp_path / "mirror" / "cmn-citeulike-a"
    only_npz.mkdir(parents=True)
    (only_npz / "citeulike-a.npz").symlink_to(paper_data / "cmn-citeulike-a" / "citeulike-a.npz")
    monkeypatch.setenv("RECFORGE_DATA_MIRROR", str(tmp_path / "mirror"))
    monkeypatch.setenv("RECFORGE_CACHE", str(tmp_path / "cache"))
    derived = load_dataset("cmn-citeulike-a")  # the default reads the tsv copies
    for name in ("train.tsv", "test_with_negatives.tsv"):
        path = tmp_path / "cache" / "cmn-citeulike-a" / name
        rec = verified_record(path)
        assert rec is not None and rec["source"] == "derived locally"
        # the derivation reproduces the published copies byte for byte
        assert path.read_bytes() == (paper_data / "cmn-citeulike-a" / name).read_bytes()
    assert derived.fingerprint() == load_dataset("cmn-citeulike-a", source="npz").fingerprint()


def test_catalog_file_registers_datasets_as_data(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps([{"name": "mine", "description": "d", "licence": "l",
                                 "source": "s", "files": [{"filename": "a.csv",
                                                           "url": "https://x/a.csv",
                                                           "md5": "0" * 32}]}]))
    [spec] = read_catalog(path)
    assert spec.name == "mine" and spec.file("a.csv").md5 == "0" * 32 and spec.loader is None
    path.write_text(json.dumps([{"name": "bad", "description": "d", "licence": "l",
                                 "source": "s", "files": [{"filename": "a.csv",
                                                           "url": "https://x/a.csv"}]}]))
    with pytest.raises(ValueError, match=r"entry 1: .*needs a sha256, git_blob or md5"):
        read_catalog(path)
    path.write_text("{")
    with pytest.raises(ValueError, match="cannot read it as JSON"):
        read_catalog(path)
