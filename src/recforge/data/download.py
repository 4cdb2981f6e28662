"""Verified download, mirror copy, archive extraction and cache of dataset files.

Files live in ``<cache>/<dataset>/<filename>``; the cache root is ``cache_dir``, else the
``RECFORGE_CACHE`` environment variable, else ``~/.cache/recforge``. When
``RECFORGE_DATA_MIRROR`` is set, ``<mirror>/<dataset>/<filename>`` (or the file's archive
``<mirror>/<dataset>/<archive>``) is copied instead of downloading, and the network is never
used. Otherwise each file comes from its sources in order (:mod:`recforge.data.dataset_spec`):
its archive, its direct URL, a local derivation.

Whatever the source, the bytes are written to a temporary file inside the dataset's cache
folder, verified against every identifier the source publishes (sha256, git blob id, md5; for an
archive member, the archive's checksum and the member's own identifiers where known) and only
then renamed into place, so the cache never holds a partial or unverified file under its final
name. What was verified, and the sha256 of the verified bytes, is recorded in
``<cache>/<dataset>/.verified/<filename>.json``; a later use re-hashes the file unless the
record still matches its size and modification time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from recforge._json import write_json
from recforge.data.dataset_spec import (
    ArchiveSpec,
    DatasetSpec,
    DatasetUnavailableError,
    Fetcher,
    FileSpec,
)

__all__ = [
    "CACHE_ENV",
    "MIRROR_ENV",
    "ChecksumError",
    "DownloadError",
    "availability",
    "cache_root",
    "cached_file",
    "fetch_file",
    "file_identifiers",
    "git_blob_id",
    "mirror_root",
    "obtain",
    "sha256_file",
    "verified_record",
]

CACHE_ENV = "RECFORGE_CACHE"
MIRROR_ENV = "RECFORGE_DATA_MIRROR"
_CHUNK = 1 << 20
_RECORDS = ".verified"

log = logging.getLogger(__name__)

#: progress(done_bytes, total_bytes_or_None) while a download runs.
Progress = Callable[[int, int | None], None]


class DownloadError(DatasetUnavailableError):
    """A file could not be obtained (HTTP error, network error, missing mirror file)."""


class ChecksumError(DownloadError):
    """The obtained bytes do not match a published identifier (nothing was cached)."""

    def __init__(self, filename: str, source: str, expected: str, actual: str,
                 kind: str = "sha256") -> None:
        self.filename = filename
        self.source = source
        self.expected = expected
        self.actual = actual
        self.kind = kind
        super().__init__(
            f"checksum mismatch for {filename} from {source}: expected {kind} {expected}, "
            f"got {actual}; the file was not cached"
        )


# ---------------------------------------------------------------------------- hashing
def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    return file_identifiers(path, ("sha256",))["sha256"]


def git_blob_id(path: str | Path) -> str:
    """Git's blob id of a file: sha1 of ``b"blob <size>\\0"`` followed by the bytes."""
    return file_identifiers(path, ("git_blob",))["git_blob"]


def file_identifiers(path: str | Path, kinds: tuple[str, ...] | list[str]) -> dict[str, str]:
    """The requested identifiers (``sha256``, ``git_blob``, ``md5``) of a file, in one pass."""
    hashes: dict[str, Any] = {}
    for kind in kinds:
        if kind == "sha256":
            hashes[kind] = hashlib.sha256()
        elif kind == "md5":
            hashes[kind] = hashlib.md5(usedforsecurity=False)
        elif kind == "git_blob":
            h = hashlib.sha1(usedforsecurity=False)
            h.update(b"blob %d\0" % os.path.getsize(path))
            hashes[kind] = h
        else:
            raise ValueError(f"unknown identifier kind {kind!r}")
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            for h in hashes.values():
                h.update(chunk)
    return {k: h.hexdigest() for k, h in hashes.items()}


def _verify(path: Path, expected: Mapping[str, str], name: str, source: str,
            size: int | None = None) -> dict[str, str]:
    """All identifiers of ``path`` (sha256 always); ChecksumError on the first mismatch."""
    if size is not None and path.stat().st_size != size:
        raise ChecksumError(name, source, str(size), str(path.stat().st_size), "size")
    kinds = list(dict.fromkeys(["sha256", *expected]))
    actual = file_identifiers(path, kinds)
    for kind, value in expected.items():
        if actual[kind] != value.lower():
            raise ChecksumError(name, source, value.lower(), actual[kind], kind)
    return actual


# ---------------------------------------------------------------------------- places
def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache root: ``cache_dir``, else ``$RECFORGE_CACHE``, else ``~/.cache/recforge``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "recforge"


def mirror_root() -> Path | None:
    """The data mirror (``$RECFORGE_DATA_MIRROR``), or None when none is set."""
    env = os.environ.get(MIRROR_ENV)
    return Path(env).expanduser() if env else None


def _check_name(kind: str, value: str) -> None:
    # Names become path components under the cache root; refuse anything that could escape it.
    if not value or value in (".", "..") or "/" in value or "\\" in value or "\x00" in value:
        raise ValueError(f"invalid {kind} name {value!r} (must be a single path component)")


def _record_path(target: Path) -> Path:
    return target.parent / _RECORDS / f"{target.name}.json"


def verified_record(path: str | Path) -> dict[str, Any] | None:
    """What was verified about a cached file (identifiers, sha256, source), or None."""
    p = _record_path(Path(path))
    try:
        rec = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) else None


def _write_record(target: Path, identifiers: dict[str, str], verified_by: str,
                  source: str, **extra: Any) -> None:
    st = target.stat()
    rec = {
        "filename": target.name,
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "sha256": identifiers["sha256"],
        "identifiers": identifiers,
        "verified_by": verified_by,
        "source": source,
        "verified_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
    p = _record_path(target)
    p.parent.mkdir(exist_ok=True)
    write_json(p, rec, indent=1)


@contextmanager
def _temp_in(folder: Path, name: str) -> Iterator[Path]:
    """A temporary file in ``folder`` that is removed unless it was renamed away."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _expected(f: FileSpec) -> dict[str, str]:
    return f.identifiers()


def _archive_ids(spec: DatasetSpec, f: FileSpec) -> dict[str, str]:
    return spec.archive(f.archive).identifiers() if f.archive else {}


def cached_file(spec: DatasetSpec, f: FileSpec, cache_dir: str | Path | None = None,
                *, rehash: bool = False) -> Path | None:
    """The verified cached copy of ``f``, or None (absent, or not matching its identifiers).

    A file whose record matches its size and modification time (and the identifiers it was
    verified against) is trusted without hashing unless ``rehash``.
    """
    target = cache_root(cache_dir) / spec.name / f.filename
    if not target.is_file():
        return None
    rec = verified_record(target)
    expected = _expected(f)
    if rec is not None and not rehash:
        st = target.stat()
        if rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns:
            if expected:
                ids = rec.get("identifiers", {})
                trusted = all(ids.get(k) == v for k, v in expected.items())
            else:
                trusted = rec.get("archive_identifiers") == _archive_ids(spec, f)
            if trusted:
                return target
    if expected:
        try:
            actual = _verify(target, expected, f"{spec.name}/{f.filename}", str(target), f.size)
        except ChecksumError as exc:
            log.warning("cached %s does not match (%s): fetching again", target, exc)
            return None
        _write_record(target, actual, _describe(expected), str(target))
        return target
    # An archive member without its own identifier: only its record vouches for it.
    if rec is not None and rec.get("archive_identifiers") == _archive_ids(spec, f):
        actual = file_identifiers(target, ("sha256",))
        if actual["sha256"] == rec.get("sha256"):
            extra = {k: rec[k] for k in ("archive", "archive_identifiers", "archive_sha256")
                     if k in rec}
            _write_record(target, actual, str(rec.get("verified_by", "")),
                          str(rec.get("source", "")), **extra)
            return target
    return None


def _describe(ids: Mapping[str, str]) -> str:
    return ", ".join(f"{k} {v}" for k, v in ids.items())


# ---------------------------------------------------------------------------- transport
def _default_progress(label: str) -> tuple[Progress, Callable[[], None]]:
    """A rich progress bar on a terminal, else a line per 10 % on stderr."""
    if sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as RichProgress

        bar = RichProgress("[progress.description]{task.description}", BarColumn(),
                           DownloadColumn(), TransferSpeedColumn(), TimeRemainingColumn(),
                           console=Console(stderr=True), transient=False)
        bar.start()
        task = bar.add_task(label, total=None)

        def update(done: int, total: int | None) -> None:
            bar.update(task, completed=done, total=total)

        return update, bar.stop
    state = {"next": 0.0}

    def lines(done: int, total: int | None) -> None:
        if total and done / total >= state["next"]:
            sys.stderr.write(f"{label}: {done / total:4.0%} of {total / 1e6:.1f} MB\n")
            state["next"] += 0.1

    return lines, lambda: None


def _download(url: str, out: BinaryIO, name: str, timeout: float,
              progress: Progress | bool | None) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise DownloadError(f"{name}: unsupported URL scheme in {url!r}")
    # Quote the path so names such as "artist_artist(knn).dat" are sent verbatim.
    safe_url = urllib.parse.urlunsplit(
        parts._replace(path=urllib.parse.quote(urllib.parse.unquote(parts.path)))
    )
    req = urllib.request.Request(safe_url, headers={"User-Agent": "recforge"})
    stop: Callable[[], None] = lambda: None  # noqa: E731
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if progress is None or progress is True:
                update, stop = _default_progress(f"downloading {name}")
            elif progress is False:
                update = None
            else:
                update = progress
            done = 0
            while chunk := resp.read(_CHUNK):
                out.write(chunk)
                done += len(chunk)
                if update is not None:
                    update(done, total)
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"downloading {name} from {url} failed: HTTP {exc.code} {exc.reason}"
        ) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"downloading {name} from {url} failed: {reason}; if this machine "
            f"is offline, set {MIRROR_ENV} to a local copy of the data"
        ) from exc
    finally:
        stop()


def _get(source: str, out_path: Path, name: str, timeout: float,
         progress: Progress | bool | None) -> None:
    """Copy a mirror path or download a URL into ``out_path``."""
    with open(out_path, "wb") as out:
        if "://" in source:
            _download(source, out, name, timeout, progress)
        else:
            with open(source, "rb") as src:
                shutil.copyfileobj(src, out, _CHUNK)


# ---------------------------------------------------------------------------- sources
def _from_single(spec: DatasetSpec, f: FileSpec, source: str, cache_dir: str | Path | None,
                 timeout: float, progress: Progress | bool | None) -> Path:
    name = f"{spec.name}/{f.filename}"
    expected = _expected(f)
    if not expected:
        raise DownloadError(
            f"{name}: a copy at {source} cannot be verified (only its archive "
            f"{f.archive} has a published checksum)"
        )
    folder = cache_root(cache_dir) / spec.name
    target = folder / f.filename
    with _temp_in(folder, f.filename) as tmp:
        _get(source, tmp, name, timeout, progress)
        actual = _verify(tmp, expected, name, source, f.size)
        os.replace(tmp, target)
    _write_record(target, actual, _describe(expected), source)
    log.info("cached %s (from %s)", target, source)
    return target


def _from_archive(spec: DatasetSpec, archive: ArchiveSpec, source: str,
                  cache_dir: str | Path | None, timeout: float,
                  progress: Progress | bool | None) -> dict[str, Path | DownloadError]:
    """Fetch and verify the archive once, extract and verify every member the spec names.

    Returns filename -> cached path, or the error of a member that did not verify (its other
    sources are tried by the caller). A corrupt archive raises and leaves nothing behind.
    """
    folder = cache_root(cache_dir) / spec.name
    aname = f"{spec.name}/{archive.filename}"
    members = [f for f in spec.files if f.archive == archive.filename]
    out: dict[str, Path | DownloadError] = {}
    with _temp_in(folder, archive.filename) as tmp:
        _get(source, tmp, aname, timeout, progress)
        archive_ids = _verify(tmp, archive.identifiers(), aname, source, archive.size)
        try:
            zf = zipfile.ZipFile(tmp)
        except zipfile.BadZipFile as exc:
            raise DownloadError(f"{aname} from {source} is not a zip archive: {exc}") from exc
        with zf:
            names = set(zf.namelist())
            for f in members:
                assert f.member is not None
                fname = f"{spec.name}/{f.filename}"
                if f.member not in names:
                    out[f.filename] = DownloadError(
                        f"{aname} from {source} has no member {f.member!r} (for {fname})"
                    )
                    continue
                target = folder / f.filename
                with _temp_in(folder, f.filename) as mtmp:
                    with zf.open(f.member) as src, open(mtmp, "wb") as dst:
                        shutil.copyfileobj(src, dst, _CHUNK)
                    try:
                        actual = _verify(mtmp, _expected(f), fname, f"{source}:{f.member}",
                                         f.size)
                    except ChecksumError as exc:
                        out[f.filename] = exc
                        continue
                    os.replace(mtmp, target)
                _write_record(target, actual, f"member {f.member} of {archive.filename} "
                              f"({_describe(archive.identifiers())})", f"{source}:{f.member}",
                              archive=archive.filename,
                              archive_identifiers=archive.identifiers(),
                              archive_sha256=archive_ids["sha256"])
                out[f.filename] = target
    log.info("extracted %d member(s) of %s into %s", len(members), aname, folder)
    return out


def _derive(spec: DatasetSpec, f: FileSpec, fetch: Fetcher,
            cache_dir: str | Path | None) -> Path:
    name = f"{spec.name}/{f.filename}"
    folder = cache_root(cache_dir) / spec.name
    target = folder / f.filename
    with _temp_in(folder, f.filename) as tmp:
        spec.derivers[f.filename](fetch, tmp)
        actual = _verify(tmp, _expected(f), name, "local derivation", f.size)
        os.replace(tmp, target)
    _write_record(target, actual, _describe(_expected(f)), "derived locally")
    log.info("derived %s", target)
    return target


def obtain(spec: DatasetSpec, filename: str, fetch: Fetcher,
           cache_dir: str | Path | None = None, *, timeout: float = 60.0,
           progress: Progress | bool | None = None) -> Path:
    """The verified cached path of one file of ``spec``, obtaining it if needed.

    With a data mirror set: the mirror's copy of the file, else of its archive, else a local
    derivation; no network. Without: its archive, its URL, a local derivation, in this order.
    The first source that gives verified bytes wins; when all fail the error names each.
    """
    _check_name("dataset", spec.name)
    _check_name("file", filename)
    f = spec.file(filename)
    hit = cached_file(spec, f, cache_dir)
    if hit is not None:
        return hit
    mirror = mirror_root()
    name = f"{spec.name}/{f.filename}"
    attempts: list[tuple[str, Callable[[], Path]]] = []

    def via_archive(source: str, archive: ArchiveSpec) -> Callable[[], Path]:
        def run() -> Path:
            got = _from_archive(spec, archive, source, cache_dir, timeout, progress)[filename]
            if isinstance(got, DownloadError):
                raise got
            return got
        return run

    if mirror is not None:
        folder = mirror / spec.name
        if (folder / f.filename).is_file():
            src = str(folder / f.filename)
            attempts.append((src, lambda: _from_single(spec, f, src, cache_dir, timeout,
                                                       progress)))
        if f.archive is not None and (folder / f.archive).is_file():
            arch = spec.archive(f.archive)
            attempts.append((str(folder / f.archive), via_archive(str(folder / f.archive),
                                                                   arch)))
    else:
        if f.archive is not None:
            arch = spec.archive(f.archive)
            attempts.append((arch.url, via_archive(arch.url, arch)))
        if f.url is not None:
            url = f.url
            attempts.append((url, lambda: _from_single(spec, f, url, cache_dir, timeout,
                                                       progress)))
    if f.filename in spec.derivers:
        attempts.append(("local derivation", lambda: _derive(spec, f, fetch, cache_dir)))
    if not attempts:
        if mirror is not None:
            wanted = f.filename + (f" or its archive {f.archive}" if f.archive else "")
            raise DownloadError(
                f"{name}: not found in the data mirror {MIRROR_ENV}={mirror} (looked for "
                f"{mirror / spec.name}/{wanted}); unset {MIRROR_ENV} to download it"
            )
        raise DownloadError(
            f"{name} has no public URL (only a data mirror has it); set {MIRROR_ENV} to a folder "
            "holding <dataset>/<filename>"
        )
    errors: list[tuple[str, DownloadError]] = []
    for source, attempt in attempts:
        try:
            return attempt()
        except DownloadError as exc:
            log.warning("%s: %s failed: %s", name, source, exc)
            errors.append((source, exc))
    if len(errors) == 1:
        raise errors[0][1]
    raise DownloadError(
        f"could not obtain {name}: " + "; ".join(f"[{s}] {e}" for s, e in errors)
    ) from errors[-1][1]


def availability(spec: DatasetSpec, cache_dir: str | Path | None = None) -> tuple[str, str]:
    """(status, why) without touching the network or hashing anything.

    ``cached``: every file is in the cache with a matching verification record;
    ``in mirror``: every file (or its archive) is in the data mirror; ``partly in mirror`` /
    ``not in mirror``: a mirror is set and lacks some / all files; ``downloadable``: every
    file has a network source or a derivation; ``unobtainable``: the dataset has no public
    source.
    """
    if spec.unobtainable is not None:
        return "unobtainable", spec.unobtainable
    root = cache_root(cache_dir) / spec.name
    missing = []
    for f in spec.files:
        target = root / f.filename
        rec = verified_record(target) if target.is_file() else None
        if rec is None or rec.get("size") != target.stat().st_size:
            missing.append(f)
    if not missing:
        return "cached", f"{len(spec.files)} file(s) verified in {root}"
    mirror = mirror_root()
    if mirror is not None:
        folder = mirror / spec.name
        absent = [
            f.filename for f in missing
            if not (folder / f.filename).is_file()
            and not (f.archive and (folder / f.archive).is_file())
            and f.filename not in spec.derivers
        ]
        if absent:
            needed = sum(1 for f in spec.files if f.filename not in spec.derivers)
            status = "not in mirror" if len(absent) == needed else "partly in mirror"
            return status, (f"{MIRROR_ENV}={mirror} lacks {', '.join(absent)} (downloadable "
                            f"when {MIRROR_ENV} is not set)")
        return "in mirror", f"copied from {folder} on first use"
    local_only = [f.filename for f in missing
                  if not f.remote and f.filename not in spec.derivers]
    if local_only:
        return "not in mirror", (f"{', '.join(local_only)} can only come from a data mirror "
                                 f"({MIRROR_ENV} is not set)")
    n_remote = sum(1 for f in missing if f.remote)
    hosts = sorted({urllib.parse.urlsplit(u).netloc for f in missing
                    for u in (f.url, spec.archive(f.archive).url if f.archive else None) if u})
    return "downloadable", (
        f"{n_remote} file(s) from {', '.join(hosts) or 'their sources'}"
        + (f", {len(missing) - n_remote} derived locally" if len(missing) > n_remote else "")
    )


# ---------------------------------------------------------------------------- one file
class _NoDerive:
    def __call__(self, dataset: str, filename: str) -> Path:
        raise DownloadError(f"{dataset}/{filename}: nothing to derive from")

    def local(self, dataset: str, filename: str) -> Path | None:
        return None


def fetch_file(
    dataset: str,
    filename: str,
    url: str | None = None,
    sha256: str | None = None,
    cache_dir: str | Path | None = None,
    *,
    git_blob: str | None = None,
    md5: str | None = None,
    timeout: float = 60.0,
    progress: Progress | bool | None = None,
) -> Path:
    """Return the cached path of ``dataset/filename``, fetching and verifying it if needed.

    A single file outside the registry, identified by any of ``sha256``, ``git_blob`` (the git
    blob id of a file at a pinned repository commit) or ``md5``. A cached file that matches is
    returned without any network access; one that does not is replaced. Raises
    :class:`ChecksumError` when the fetched bytes do not match (no file is left behind) and
    :class:`DownloadError` when the file cannot be obtained (HTTP status, unreachable host, no
    URL, file missing from the mirror).
    """
    _check_name("dataset", dataset)
    _check_name("file", filename)
    f = FileSpec(filename=filename, url=url, sha256=sha256.lower() if sha256 else None,
                 git_blob=git_blob.lower() if git_blob else None,
                 md5=md5.lower() if md5 else None)
    spec = DatasetSpec(name=dataset, description="", licence="", source="", files=(f,))
    return obtain(spec, filename, _NoDerive(), cache_dir, timeout=timeout, progress=progress)
