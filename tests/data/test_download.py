"""Verified downloads against a local HTTP server: sha256, git blob ids, md5-checked zip
archives, fallbacks between sources, local derivations, the data mirror and the cache."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from local_http import Server, git_blob, md5, sha256, zip_bytes

from recforge.data.dataset_spec import ArchiveSpec, DatasetSpec, FileSpec
from recforge.data.download import (
    CACHE_ENV,
    MIRROR_ENV,
    ChecksumError,
    DownloadError,
    availability,
    cache_root,
    cached_file,
    fetch_file,
    git_blob_id,
    obtain,
    sha256_file,
    verified_record,
)

PAYLOAD = b"".join(b"%d\t%d\t%d\n" % (u, u * 7 % 13, u % 5 + 1) for u in range(5000))
SHA = sha256(PAYLOAD)
OTHER = b"user,item\n" + b"".join(b"%d,%d\n" % (u, u % 3) for u in range(300))


@pytest.fixture
def www(tmp_path: Path) -> Path:
    root = tmp_path / "www"
    root.mkdir()
    (root / "ratings.tsv").write_bytes(PAYLOAD)
    (root / "a(b).dat").write_bytes(PAYLOAD)
    (root / "other.csv").write_bytes(OTHER)
    (root / "release.zip").write_bytes(zip_bytes({"rel/ratings.tsv": PAYLOAD,
                                                  "rel/other.csv": OTHER}))
    return root


@pytest.fixture
def server(www: Path) -> Iterator[Server]:
    with Server(www) as s:
        yield s


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    c = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(c))
    monkeypatch.delenv(MIRROR_ENV, raising=False)
    return c


def data_files(folder: Path) -> list[str]:
    """What a cache folder holds besides its verification records."""
    return sorted(p.name for p in folder.iterdir() if p.name != ".verified") if folder.exists() \
        else []


class NoParents:
    def __call__(self, dataset: str, filename: str) -> Path:
        raise AssertionError("no parent file expected")

    def local(self, dataset: str, filename: str) -> Path | None:
        return None


def test_cache_root_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert cache_root() == Path.home() / ".cache" / "recforge"
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    assert cache_root() == tmp_path
    assert cache_root(tmp_path / "x") == tmp_path / "x"


def test_identifiers_match_gits_and_hashlibs(tmp_path: Path) -> None:
    p = tmp_path / "f"
    p.write_bytes(PAYLOAD)
    assert git_blob_id(p) == git_blob(PAYLOAD)
    assert sha256_file(p) == SHA
    # the id git prints for an empty file
    (tmp_path / "e").write_bytes(b"")
    assert git_blob_id(tmp_path / "e") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


# ---------------------------------------------------------------------------- single files
def test_download_verifies_records_and_caches(server: Server, cache: Path) -> None:
    p = fetch_file("toy", "ratings.tsv", f"{server.url}/ratings.tsv", SHA, progress=False)
    assert p == cache / "toy" / "ratings.tsv"
    assert p.read_bytes() == PAYLOAD
    assert data_files(cache / "toy") == ["ratings.tsv"]  # no temporary file left
    assert server.requests == ["/ratings.tsv"]
    rec = verified_record(p)
    assert rec is not None and rec["sha256"] == SHA and rec["size"] == len(PAYLOAD)
    assert rec["source"] == f"{server.url}/ratings.tsv"


def test_git_blob_id_verifies_a_file_of_a_pinned_commit(server: Server, cache: Path) -> None:
    p = fetch_file("toy", "ratings.tsv", f"{server.url}/ratings.tsv", git_blob=git_blob(PAYLOAD),
                   progress=False)
    rec = verified_record(p)
    assert rec is not None
    # the sha256 of what was verified by its blob id is recorded
    assert rec["sha256"] == SHA and rec["identifiers"]["git_blob"] == git_blob(PAYLOAD)
    wrong = git_blob(PAYLOAD + b"x")
    with pytest.raises(ChecksumError, match="expected git_blob") as e:
        fetch_file("toy", "other.csv", f"{server.url}/other.csv", git_blob=wrong, progress=False)
    assert (e.value.kind, e.value.expected, e.value.actual) == ("git_blob", wrong, git_blob(OTHER))
    assert data_files(cache / "toy") == ["ratings.tsv"]


def test_md5_and_size_are_checked(server: Server, cache: Path) -> None:
    fetch_file("toy", "other.csv", f"{server.url}/other.csv", md5=md5(OTHER), progress=False)
    spec = DatasetSpec(name="sized", description="", licence="", source="", files=(
        FileSpec(filename="other.csv", url=f"{server.url}/other.csv", md5=md5(OTHER),
                 size=len(OTHER) + 1),))
    with pytest.raises(ChecksumError, match="expected size"):
        obtain(spec, "other.csv", NoParents(), progress=False)
    assert data_files(cache / "sized") == []


def test_cached_file_is_reused_without_network(server: Server, cache: Path) -> None:
    fetch_file("toy", "ratings.tsv", f"{server.url}/ratings.tsv", SHA, progress=False)
    # A URL that cannot be reached: reuse must not touch the network at all.
    p = fetch_file("toy", "ratings.tsv", "http://127.0.0.1:9/ratings.tsv", SHA.upper())
    assert p.read_bytes() == PAYLOAD
    assert server.requests == ["/ratings.tsv"]


def test_corrupt_cached_file_is_replaced(server: Server, cache: Path) -> None:
    (cache / "toy").mkdir(parents=True)
    (cache / "toy" / "ratings.tsv").write_bytes(b"truncated")
    p = fetch_file("toy", "ratings.tsv", f"{server.url}/ratings.tsv", SHA, progress=False)
    assert sha256_file(p) == SHA
    assert len(server.requests) == 1
    # a file changed after it was verified (new size/mtime) is hashed again and replaced
    p.write_bytes(PAYLOAD[:-1])
    fetch_file("toy", "ratings.tsv", f"{server.url}/ratings.tsv", SHA, progress=False)
    assert sha256_file(p) == SHA and len(server.requests) == 2


def test_checksum_mismatch_leaves_cache_clean(server: Server, cache: Path) -> None:
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as e:
        fetch_file("toy", "ratings.tsv", f"{server.url}/ratings.tsv", wrong, progress=False)
    msg = str(e.value)
    assert "toy/ratings.tsv" in msg and wrong in msg and SHA in msg
    assert (e.value.expected, e.value.actual) == (wrong, SHA)
    assert data_files(cache / "toy") == []  # neither the file nor a temp file
    assert not (cache / "toy" / ".verified" / "ratings.tsv.json").exists()


def test_http_404_is_reported(server: Server, cache: Path) -> None:
    url = f"{server.url}/missing.tsv"
    with pytest.raises(DownloadError, match="HTTP 404") as e:
        fetch_file("toy", "missing.tsv", url, SHA, progress=False)
    assert url in str(e.value)
    assert data_files(cache / "toy") == []


def test_unreachable_host_suggests_mirror(cache: Path) -> None:
    with pytest.raises(DownloadError, match=MIRROR_ENV):
        fetch_file("toy", "x.tsv", "http://127.0.0.1:9/x.tsv", SHA, timeout=5, progress=False)


def test_special_characters_in_filename_are_quoted(server: Server, cache: Path) -> None:
    p = fetch_file("toy", "a(b).dat", f"{server.url}/a(b).dat", SHA, progress=False)
    assert p.name == "a(b).dat" and sha256_file(p) == SHA


def test_progress_is_reported(server: Server, cache: Path) -> None:
    seen: list[tuple[int, int | None]] = []
    fetch_file("toy", "ratings.tsv", f"{server.url}/ratings.tsv", SHA,
               progress=lambda done, total: seen.append((done, total)))
    assert seen and seen[-1] == (len(PAYLOAD), len(PAYLOAD))


def test_default_progress_lines_when_not_a_terminal(server: Server, cache: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    fetch_file("toy", "ratings.tsv", f"{server.url}/ratings.tsv", SHA)
    err = capsys.readouterr().err
    assert "downloading toy/ratings.tsv: 100% of" in err


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
        fetch_file("toy", "absent.tsv", "http://127.0.0.1:9/absent.tsv", SHA)


def test_mirror_only_file_without_mirror(cache: Path) -> None:
    with pytest.raises(DownloadError, match="no public URL"):
        fetch_file("toy", "private.tsv", None, SHA)


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".."])
def test_names_cannot_escape_the_cache(cache: Path, bad: str) -> None:
    with pytest.raises(ValueError, match="single path component"):
        fetch_file("toy", bad, "http://127.0.0.1:9/", SHA)
    with pytest.raises(ValueError, match="single path component"):
        fetch_file(bad, "x", "http://127.0.0.1:9/", SHA)


# ---------------------------------------------------------------------------- archives
def archive_spec(url: str, archive_md5: str, *, other_url: str | None = None,
                 other_blob: str | None = None) -> DatasetSpec:
    return DatasetSpec(
        name="rel", description="toy release", licence="", source="test",
        archives=(ArchiveSpec(filename="release.zip", url=url, md5=archive_md5),),
        files=(
            # known by its own sha256 too
            FileSpec(filename="ratings.tsv", sha256=SHA, archive="release.zip",
                     member="rel/ratings.tsv"),
            # known only through the archive's md5 (like ML-20M's members), or a blob + URL
            FileSpec(filename="other.csv", archive="release.zip", member="rel/other.csv",
                     url=other_url, git_blob=other_blob),
        ),
    )


def test_zip_downloaded_once_and_members_extracted(server: Server, www: Path,
                                                   cache: Path) -> None:
    zmd5 = md5((www / "release.zip").read_bytes())
    spec = archive_spec(f"{server.url}/release.zip", zmd5)
    p = obtain(spec, "other.csv", NoParents(), progress=False)
    assert p.read_bytes() == OTHER
    assert data_files(cache / "rel") == ["other.csv", "ratings.tsv"]  # no zip kept
    assert server.requests == ["/release.zip"]
    q = obtain(spec, "ratings.tsv", NoParents(), progress=False)
    assert q.read_bytes() == PAYLOAD and server.requests == ["/release.zip"]  # no second fetch
    rec = verified_record(p)
    assert rec is not None and rec["archive_identifiers"] == {"md5": zmd5}
    assert rec["archive_sha256"] == sha256((www / "release.zip").read_bytes())
    assert rec["sha256"] == sha256(OTHER) and "release.zip" in rec["verified_by"]
    # a member known only by its archive is trusted through its record ...
    assert cached_file(spec, spec.file("other.csv"), rehash=True) == p
    # ... and a changed copy is not: it is fetched again from the archive
    p.write_bytes(OTHER.replace(b"1", b"2"))
    assert cached_file(spec, spec.file("other.csv")) is None
    assert obtain(spec, "other.csv", NoParents(), progress=False).read_bytes() == OTHER
    assert server.requests == ["/release.zip", "/release.zip"]


def test_corrupted_zip_is_refused_and_leaves_nothing(server: Server, www: Path,
                                                     cache: Path) -> None:
    good = (www / "release.zip").read_bytes()
    (www / "release.zip").write_bytes(good[:-10] + b"corrupted!")
    spec = archive_spec(f"{server.url}/release.zip", md5(good))
    with pytest.raises(ChecksumError, match="expected md5") as e:
        obtain(spec, "ratings.tsv", NoParents(), progress=False)
    assert e.value.expected == md5(good)
    assert data_files(cache / "rel") == []
    assert not (cache / "rel" / ".verified").exists() or not list(
        (cache / "rel" / ".verified").iterdir())


def test_member_failing_its_own_id_falls_back_to_its_url(server: Server, www: Path,
                                                         cache: Path) -> None:
    """The archive verifies, but a member differs from the pinned copy: the pinned copy wins."""
    pinned = OTHER + b"999,0\n"
    (www / "pinned.csv").write_bytes(pinned)
    spec = archive_spec(f"{server.url}/release.zip", md5((www / "release.zip").read_bytes()),
                        other_url=f"{server.url}/pinned.csv", other_blob=git_blob(pinned))
    p = obtain(spec, "other.csv", NoParents(), progress=False)
    assert p.read_bytes() == pinned
    assert server.requests == ["/release.zip", "/pinned.csv"]
    assert (cache / "rel" / "ratings.tsv").read_bytes() == PAYLOAD  # verified member kept


def test_every_failed_source_is_named(server: Server, cache: Path) -> None:
    spec = archive_spec(f"{server.url}/missing.zip", "0" * 32,
                        other_url=f"{server.url}/missing.csv", other_blob="0" * 40)
    with pytest.raises(DownloadError) as e:
        obtain(spec, "other.csv", NoParents(), progress=False)
    msg = str(e.value)
    assert "missing.zip" in msg and "missing.csv" in msg and msg.count("HTTP 404") == 2


def test_archive_in_the_mirror(tmp_path: Path, www: Path, cache: Path,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    mirror = tmp_path / "mirror"
    (mirror / "rel").mkdir(parents=True)
    (mirror / "rel" / "release.zip").write_bytes((www / "release.zip").read_bytes())
    monkeypatch.setenv(MIRROR_ENV, str(mirror))
    spec = archive_spec("http://127.0.0.1:9/never.zip", md5((www / "release.zip").read_bytes()))
    assert availability(spec)[0] == "in mirror"
    assert obtain(spec, "other.csv", NoParents()).read_bytes() == OTHER
    assert availability(spec)[0] == "cached"
    # a loose member in the mirror that has no identifier of its own cannot be verified
    (mirror / "rel" / "release.zip").unlink()
    (cache / "rel" / "other.csv").unlink()
    (mirror / "rel" / "other.csv").write_bytes(OTHER)
    with pytest.raises(DownloadError, match="cannot be verified"):
        obtain(spec, "other.csv", NoParents())


def test_not_a_zip_is_reported(server: Server, www: Path, cache: Path) -> None:
    spec = archive_spec(f"{server.url}/ratings.tsv", md5(PAYLOAD))
    with pytest.raises(DownloadError, match="not a zip archive"):
        obtain(spec, "other.csv", NoParents(), progress=False)
    assert data_files(cache / "rel") == []


# ---------------------------------------------------------------------------- derivations
class Parents:
    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec

    def __call__(self, dataset: str, filename: str) -> Path:
        return obtain(self.spec, filename, self, progress=False)

    def local(self, dataset: str, filename: str) -> Path | None:
        return None


def derived_spec(url: str, result_sha: str) -> DatasetSpec:
    def upper(fetch, out: Path) -> None:  # type: ignore[no-untyped-def]
        out.write_bytes(fetch("drv", "ratings.tsv").read_bytes().upper() + b"# derived\n")

    return DatasetSpec(
        name="drv", description="", licence="", source="",
        files=(FileSpec(filename="ratings.tsv", url=url, sha256=SHA),
               FileSpec(filename="derived.tsv", sha256=result_sha)),
        derivers={"derived.tsv": upper},
    )


def test_derived_file_is_built_locally_and_verified(server: Server, cache: Path) -> None:
    result = PAYLOAD.upper() + b"# derived\n"
    spec = derived_spec(f"{server.url}/ratings.tsv", sha256(result))
    fetch = Parents(spec)
    p = obtain(spec, "derived.tsv", fetch, progress=False)
    assert p.read_bytes() == result
    assert server.requests == ["/ratings.tsv"]
    rec = verified_record(p)
    assert rec is not None and rec["source"] == "derived locally"
    assert availability(spec)[0] == "cached"


def test_wrong_derivation_is_refused(server: Server, cache: Path) -> None:
    spec = derived_spec(f"{server.url}/ratings.tsv", "1" * 64)
    with pytest.raises(ChecksumError, match="local derivation"):
        obtain(spec, "derived.tsv", Parents(spec), progress=False)
    assert data_files(cache / "drv") == ["ratings.tsv"]


def test_availability_without_network(tmp_path: Path, cache: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    spec = derived_spec("https://example.org/ratings.tsv", SHA)
    assert availability(spec) == ("downloadable",
                                  "1 file(s) from example.org, 1 derived locally")
    monkeypatch.setenv(MIRROR_ENV, str(tmp_path / "empty-mirror"))
    status, why = availability(spec)
    assert status == "not in mirror" and "ratings.tsv" in why
    gone = DatasetSpec(name="gone", description="", licence="", source="", files=(),
                       unobtainable="withdrawn by its owner")
    assert availability(gone) == ("unobtainable", "withdrawn by its owner")


def test_record_is_json_with_what_was_verified(server: Server, cache: Path) -> None:
    p = fetch_file("toy", "other.csv", f"{server.url}/other.csv", md5=md5(OTHER),
                   progress=False)
    rec = json.loads((p.parent / ".verified" / "other.csv.json").read_text())
    assert rec["identifiers"] == {"sha256": sha256(OTHER), "md5": md5(OTHER)}
    assert rec["verified_by"] == f"md5 {md5(OTHER)}"
