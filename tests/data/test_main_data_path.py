"""scripts/main.sh's data path with no mirror: scripts/data-env.sh chooses no mirror, and
``recforge data fetch`` downloads stand-in datasets from a local HTTP server on 127.0.0.1 —
a file of a pinned commit known by its git blob id, a GroupLens-style zip known by its md5, and
a corrupted file that is refused and leaves nothing behind. Identifiers are computed here."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_http import Server, git_blob, md5, sha256, zip_bytes

REPO = Path(__file__).resolve().parents[2]
RECFORGE = Path(sys.executable).parent / "recforge"
COMMIT = "0123456789abcdef0123456789abcdef01234567"

RATINGS = b"".join(b"%d::%d::%d::%d\n" % (u, 10 + u % 7, u % 5 + 1, 978300000 + u)
                   for u in range(1, 2000))
CSV = b"userId,movieId,rating,timestamp\n" + b"".join(
    b"%d,%d,%.1f,%d\n" % (u, u % 11, (u % 10) / 2 + 0.5, 1_100_000_000 + u) for u in range(800))
MOVIES = b"movieId,title,genres\n1,Toy Story (1995),Animation\n"
TRAIN = b"".join(b"%d\t%d\t1\t0\n" % (u, u % 13) for u in range(3000))


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """A checkout without ../shared/data next to it: only the script under test is copied."""
    repo = tmp_path / "checkout" / "recforge"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "data-env.sh", repo / "scripts" / "data-env.sh")
    return repo


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    www = tmp_path / "www"
    gh = www / "gh" / COMMIT
    gh.mkdir(parents=True)
    (gh / "ratings.dat").write_bytes(RATINGS)
    corrupted = bytearray(TRAIN)
    corrupted[100] ^= 0x01  # one flipped bit
    (gh / "train.rating").write_bytes(bytes(corrupted))
    (www / "gl").mkdir()
    (www / "gl" / "ml-s.zip").write_bytes(zip_bytes({"ml-s/ratings.csv": CSV,
                                                     "ml-s/movies.csv": MOVIES,
                                                     "ml-s/README.txt": b"stand-in\n"}))
    with Server(www) as s:
        s.zip_md5 = md5((www / "gl" / "ml-s.zip").read_bytes())  # type: ignore[attr-defined]
        yield s


def catalog(tmp_path: Path, server: Server) -> Path:
    base = f"{server.url}/gh/{COMMIT}/"
    common = {"description": "stand-in", "licence": "test data", "source": "this test"}
    entries = [
        {"name": "standin-blob", **common,
         "files": [{"filename": "ratings.dat", "url": base + "ratings.dat",
                    "git_blob": git_blob(RATINGS)}]},
        {"name": "standin-zip", **common,
         "archives": [{"filename": "ml-s.zip", "url": f"{server.url}/gl/ml-s.zip",
                       "md5": server.zip_md5}],  # type: ignore[attr-defined]
         "files": [{"filename": "ratings.csv", "archive": "ml-s.zip",
                    "member": "ml-s/ratings.csv"},
                   {"filename": "movies.csv", "archive": "ml-s.zip",
                    "member": "ml-s/movies.csv", "sha256": sha256(MOVIES)}]},
        {"name": "standin-corrupt", **common,
         "files": [{"filename": "train.rating", "url": base + "train.rating",
                    "git_blob": git_blob(TRAIN)}]},
    ]
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(entries))
    return path


def data_path(repo: Path, names: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    """What main.sh does for data: source data-env.sh, then the registry fetches."""
    script = f'source scripts/data-env.sh && "{RECFORGE}" data fetch {" ".join(names)}'
    return subprocess.run(["bash", "-c", script], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture
def env(tmp_path: Path, server: Server) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items()
         if k not in ("RECFORGE_DATA_MIRROR", "RECFORGE_CACHE", "CI")}
    e["RECFORGE_CATALOG"] = str(catalog(tmp_path, server))
    e["COLUMNS"] = "200"
    return e


def data_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name != ".verified") \
        if folder.exists() else []


def test_main_sh_uses_the_data_env_script() -> None:
    main = (REPO / "scripts" / "main.sh").read_text()
    assert "source scripts/data-env.sh" in main
    # no hard-wired mirror left: the mirror is only used when given or present
    assert "RECFORGE_DATA_MIRROR=" not in main
    assert "source scripts/data-env.sh" in (REPO / "scripts" / "test.sh").read_text()


def test_no_mirror_downloads_verifies_and_caches(layout: Path, server: Server,
                                                 env: dict[str, str]) -> None:
    res = data_path(layout, ["standin-blob", "standin-zip"], env)
    assert res.returncode == 0, res.stderr
    assert "data: no mirror; files are downloaded from their original sources" in res.stderr
    cache = layout / ".cache" / "recforge"
    assert f"data: cache {cache}" in res.stderr
    assert (cache / "standin-blob" / "ratings.dat").read_bytes() == RATINGS
    # the archive was downloaded once, its members extracted, the zip itself not kept
    assert data_files(cache / "standin-zip") == ["movies.csv", "ratings.csv"]
    assert (cache / "standin-zip" / "ratings.csv").read_bytes() == CSV
    assert sorted(server.requests) == sorted([f"/gh/{COMMIT}/ratings.dat", "/gl/ml-s.zip"])
    rec = json.loads((cache / "standin-zip" / ".verified" / "ratings.csv.json").read_text())
    assert rec["sha256"] == sha256(CSV) and rec["archive_identifiers"] == {
        "md5": server.zip_md5}  # type: ignore[attr-defined]
    rec = json.loads((cache / "standin-blob" / ".verified" / "ratings.dat.json").read_text())
    assert rec["sha256"] == sha256(RATINGS) and rec["identifiers"]["git_blob"] == git_blob(
        RATINGS)
    # progress is shown while downloading (a line per 10 % when not on a terminal)
    assert "downloading standin-blob/ratings.dat: 100% of" in res.stderr
    assert "verified: git_blob " + git_blob(RATINGS) in " ".join(res.stderr.split())

    # a second run reuses the verified cache: no request at all
    n = len(server.requests)
    again = data_path(layout, ["standin-blob", "standin-zip"], env)
    assert again.returncode == 0, again.stderr
    assert len(server.requests) == n


def test_corrupted_download_is_refused_and_leaves_nothing(layout: Path, server: Server,
                                                          env: dict[str, str]) -> None:
    res = data_path(layout, ["standin-corrupt"], env)
    assert res.returncode != 0
    flat = " ".join(res.stderr.split())
    assert "checksum mismatch for standin-corrupt/train.rating" in flat
    assert f"expected git_blob {git_blob(TRAIN)}" in flat
    folder = layout / ".cache" / "recforge" / "standin-corrupt"
    assert data_files(folder) == []  # neither the file nor a partial download
    verified = folder / ".verified"
    assert not verified.exists() or list(verified.iterdir()) == []


def test_a_mirror_next_to_the_checkout_is_used(layout: Path, server: Server,
                                               env: dict[str, str]) -> None:
    shared = layout.parent / "shared" / "data" / "standin-blob"
    shared.mkdir(parents=True)
    (shared / "ratings.dat").write_bytes(RATINGS)
    res = data_path(layout, ["standin-blob"], env)
    assert res.returncode == 0, res.stderr
    assert f"data: mirror {layout.parent / 'shared' / 'data'} (found next to" in res.stderr
    assert server.requests == []  # a mirror means no network


def test_a_given_mirror_must_exist(layout: Path, env: dict[str, str], tmp_path: Path) -> None:
    env = {**env, "RECFORGE_DATA_MIRROR": str(tmp_path / "nowhere")}
    res = data_path(layout, ["standin-blob"], env)
    assert res.returncode == 2
    assert "is not a folder" in res.stderr
