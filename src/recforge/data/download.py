"""Checksummed download and cache of dataset files.

Files live in ``<cache>/<dataset>/<filename>``; the cache root is ``cache_dir``, else the
``RECFORGE_CACHE`` environment variable, else ``~/.cache/recforge``. When
``RECFORGE_DATA_MIRROR`` is set, ``<mirror>/<dataset>/<filename>`` is copied instead of
downloading (no network at all). Either way the bytes are written to a temporary file inside the
dataset's cache folder, verified against the expected sha256 and only then renamed into place,
so the cache never holds a partial or corrupt file under its final name.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "CACHE_ENV",
    "MIRROR_ENV",
    "ChecksumError",
    "DownloadError",
    "cache_root",
    "fetch_file",
    "sha256_file",
]

CACHE_ENV = "RECFORGE_CACHE"
MIRROR_ENV = "RECFORGE_DATA_MIRROR"
_CHUNK = 1 << 20

log = logging.getLogger(__name__)


class DownloadError(RuntimeError):
    """A file could not be obtained (HTTP error, network error, missing mirror file)."""


class ChecksumError(DownloadError):
    """The obtained bytes do not have the expected sha256 (nothing was cached)."""

    def __init__(self, filename: str, source: str, expected: str, actual: str) -> None:
        self.filename = filename
        self.source = source
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"checksum mismatch for {filename} from {source}: expected sha256 {expected}, "
            f"got {actual}; the file was not cached"
        )


def cache_root(cache_dir: str | Path | None = None) -> Path:
    """The cache root: ``cache_dir``, else ``$RECFORGE_CACHE``, else ``~/.cache/recforge``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "recforge"


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _copy_hashing(src: BinaryIO, dst: BinaryIO) -> str:
    h = hashlib.sha256()
    while chunk := src.read(_CHUNK):
        h.update(chunk)
        dst.write(chunk)
    return h.hexdigest()


def _check_name(kind: str, value: str) -> None:
    # Names become path components under the cache root; refuse anything that could escape it.
    if not value or value in (".", "..") or "/" in value or "\\" in value or "\x00" in value:
        raise ValueError(f"invalid {kind} name {value!r} (must be a single path component)")


def fetch_file(
    dataset: str,
    filename: str,
    url: str | None,
    sha256: str,
    cache_dir: str | Path | None = None,
    *,
    timeout: float = 60.0,
) -> Path:
    """Return the cached path of ``dataset/filename``, fetching and verifying it if needed.

    A cached file whose sha256 matches is returned without any network access; a cached file
    that does not match is replaced. Raises :class:`ChecksumError` when the fetched bytes do
    not match ``sha256`` (no file is left behind) and :class:`DownloadError` when the file
    cannot be obtained (HTTP status, unreachable host, no URL, file missing from the mirror).
    """
    _check_name("dataset", dataset)
    _check_name("file", filename)
    expected = sha256.lower()
    folder = cache_root(cache_dir) / dataset
    target = folder / filename
    if target.is_file():
        actual = sha256_file(target)
        if actual == expected:
            return target
        log.warning("cached %s has sha256 %s, expected %s: fetching again", target, actual,
                    expected)

    mirror = os.environ.get(MIRROR_ENV)
    if mirror:
        src_path = Path(mirror).expanduser() / dataset / filename
        if not src_path.is_file():
            raise DownloadError(
                f"{dataset}/{filename}: not found in the data mirror {MIRROR_ENV}={mirror} "
                f"(looked for {src_path})"
            )
        source = str(src_path)
    elif url:
        source = url
    else:
        raise DownloadError(
            f"{dataset}/{filename} has no public URL (it is a derived file); set {MIRROR_ENV} "
            "to a folder holding <dataset>/<filename>"
        )

    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".part", dir=folder)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            if mirror:
                with open(source, "rb") as src:
                    actual = _copy_hashing(src, out)
            else:
                actual = _download(source, out, dataset, filename, timeout)
        if actual != expected:
            raise ChecksumError(f"{dataset}/{filename}", source, expected, actual)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    log.info("cached %s (from %s)", target, source)
    return target


def _download(url: str, out: BinaryIO, dataset: str, filename: str, timeout: float) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise DownloadError(f"{dataset}/{filename}: unsupported URL scheme in {url!r}")
    # Quote the path so names such as "artist_artist(knn).dat" are sent verbatim.
    safe_url = urllib.parse.urlunsplit(
        parts._replace(path=urllib.parse.quote(urllib.parse.unquote(parts.path)))
    )
    req = urllib.request.Request(safe_url, headers={"User-Agent": "recforge"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return _copy_hashing(resp, out)
    except urllib.error.HTTPError as exc:
        raise DownloadError(
            f"downloading {dataset}/{filename} from {url} failed: HTTP {exc.code} {exc.reason}"
        ) from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(
            f"downloading {dataset}/{filename} from {url} failed: {reason}; if this machine "
            f"is offline, set {MIRROR_ENV} to a local copy of the data"
        ) from exc

