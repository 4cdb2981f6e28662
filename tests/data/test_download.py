"""fetch_file against a local HTTP server and a local mirror folder."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from recforge.data.download import (
    CACHE_ENV,
    MIRROR_ENV,
    ChecksumError,
    DownloadError,
    cache_root,
    fetch_file,
    sha256_file,
)

PAYLOAD = b"".join(b"%d\t%d\t%d\n" % (u, u * 7 % 13, u % 5 + 1) for u in range(5000))
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Server:
    def __init__(self, root: Path) -> None:
        self.requests: list[str] = []
        log = self.requests

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:
                log.append(self.path)
                super().do_GET()

            def log_message(self, *args: object) -> None:  # keep test output clean
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        # A short poll interval keeps shutdown() fast.
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def __enter__(self) -> Server:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "www"
    root.mkdir()
    (root / "ratings.tsv").write_bytes(PAYLOAD)
    (root / "a(b).dat").write_bytes(PAYLOAD)
    with Server(root) as s:
        yield s


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    c = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(c))
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    return c


def test_cache_root_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert cache_root() == Path.home() / ".cache" / "recforge"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert cache_root() == tmp_path
    assert cache_root(tmp_path / "x") == tmp_path / "x"


def test_download_verifies_and_caches(server: Server, cache: Path) -> None:
    p = fetch_file("toy", "ratings.tsv", f"{server.url}/ratings.tsv", SHA)
    assert p == cache / "toy" / "ratings.tsv"
    assert p.read_bytes() == PAYLOAD
    assert sorted(x.name for x in (cache / "toy").iterdir()) == ["ratings.tsv"]
    assert server.requests == ["/ratings.tsv"]


def test_cached_file_is_reused_without_network(server: Server, cache: Path) -> None:
    fetch_file("toy", "ratings.tsv", f"{server.url}/ratings.tsv", SHA)
    # A URL that cannot be reached: reuse must not touch the network at all.
    p = fetch_file("toy", "ratings.tsv", "http://127.0.0.1:9/ratings.tsv", SHA.upper())
    assert p.read_bytes() == PAYLOAD
    assert server.requests == ["/ratings.tsv"]


def test_corrupt_cached_file_is_replaced(server: Server, cache: Path) -> None:
    (cache / "toy").mkdir(parents=True)
    (cache / "toy" / "ratings.tsv").write_bytes(b"truncated")
    p = fetch_file("toy", "ratings.tsv", f"{server.url}/ratings.tsv", SHA)
    assert sha256_file(p) == SHA
    assert len(server.requests) == 1


def test_checksum_mismatch_leaves_cache_clean(server: Server, cache: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as e:
        fetch_file("toy", "ratings.tsv", f"{server.url}/ratings.tsv", wrong)
    msg = str(e.value)
    assert "toy/ratings.tsv" in msg and wrong in msg and SHA in msg
    assert (e.value.expected, e.value.actual) == (wrong, SHA)
    assert list((cache / "toy").iterdir()) == []  # neither the file nor a temp file


def test_http_404_is_reported(server: Server, cache: Path) -> None:
    url = f"{server.url}/missing.tsv"
    with pytest.raises(DownloadError, match="HTTP 404") as e:
        fetch_file("toy", "missing.tsv", url, SHA)
    assert url in str(e.value)
    assert list((cache / "toy").iterdir()) == []


def test_unreachable_host_suggests_mirror(cache: Path) -> None:
    with pytest.raises(DownloadError, match=MIRROR_ENV):
        fetch_file("toy", "x.tsv", "http://127.0.0.1:9/x.tsv", SHA, timeout=5)


def test_special_characters_in_filename_are_quoted(server: Server, cache: Path) -> None:
    p = fetch_file("toy", "a(b).dat", f"{server.url}/a(b).dat", SHA)
    assert p.name == "a(b).dat" and sha256_file(p) == SHA


def test_mirror_copy_no_network(tmp_path: Path, cache: Path, monkeypatch) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "toy").mkdir(parents=True)
    (mirror / "toy" / "ratings.tsv").write_bytes(PAYLOAD)
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    p = fetch_file("toy", "ratings.tsv", "http://127.0.0.1:9/never", SHA)
    assert p == cache / "toy" / "ratings.tsv" and p.read_bytes() == PAYLOAD
    # The mirror is checked too: wrong bytes there are refused and not cached.
    (mirror / "toy" / "other.tsv").write_bytes(PAYLOAD + b"x")
    with pytest.raises(ChecksumError, match=r"other\.tsv"):
        fetch_file("toy", "other.tsv", None, SHA)
    assert not (cache / "toy" / "other.tsv").exists()
    with pytest.raises(DownloadError, match="not found in the data mirror"):
        fetch_file("toy", "absent.tsv", None, SHA)


def test_derived_file_without_mirror_or_url(cache: Path) -> None:
    with pytest.raises(DownloadError, match="no public URL"):
        fetch_file("toy", "derived.tsv", None, SHA)


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".."])
def test_names_cannot_escape_the_cache(cache: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="single path component"):
        fetch_file("toy", bad, "http://127.0.0.1:9/", SHA)
    with pytest.raises(ValueError, match="single path component"):
        fetch_file(bad, "x", "http://127.0.0.1:9/", SHA)
