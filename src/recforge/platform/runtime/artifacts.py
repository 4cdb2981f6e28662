"""DAG run directories and their artefacts: made by the platform, written by the run's jobs,
read back for users (never the platform's store).

Layout: ``<runs dir>/dag-<id>/`` (mode 0700, owned by the OS user the run's jobs run as) holding
``artifacts/<node>/<output>/``, each created empty before the run starts. Reading an artefact
back is careful because a job controls what is in it and the service may run as root: the
tree is walked through directory descriptors without following symbolic links; only regular
files are served (opened with ``O_NOFOLLOW``), and, when jobs run as another user, only files
owned by that user (a job cannot hand out a hard link to someone else's file); anything left
out is named in the listing's ``skipped``, never dropped silently.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tarfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from recforge.platform.backends.users import RunAs

__all__ = ["ArtifactListing", "artifact_dir", "list_files", "make_run_dir", "tar_stream"]


def artifact_dir(run_dir: str | Path, node: str, output: str) -> Path:
    """Where node ``node`` writes its output ``output``."""
    return Path(run_dir) / "artifacts" / node / output


def make_run_dir(runs_dir: Path, run_id: int, outputs: dict[str, list[str]],
                 run_as: RunAs | None) -> Path:  # fmt: skip
    """Create the run's directory and an empty directory per node output (idempotent: a restart
    may do it again), owned by ``run_as`` (None: the service's user)."""
    runs_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(runs_dir, 0o711)  # traversable, not listable: runs do not see each other
    root = runs_dir / f"dag-{run_id}"
    made = [root, root / "artifacts"]
    for node, names in outputs.items():
        made.append(root / "artifacts" / node)
        made.extend(artifact_dir(root, node, n) for n in names)
    for d in made:
        d.mkdir(exist_ok=True)
        os.chmod(d, 0o700)
        if run_as is not None:
            os.chown(d, run_as.uid, run_as.gid)
    return root


@dataclass
class ArtifactListing:
    """The files of one artefact (relative paths and sizes) and what was left out, with why."""

    files: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(n for _, n in self.files)


def _walk(root: Path, owner: int | None) -> Iterator[tuple[str, int | None, str]]:
    """``(relative path, open fd or None, why skipped)`` for every entry under ``root``;
    directories come with fd None and an empty reason."""
    try:
        top = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        yield "", None, f"unreadable: {exc.strerror}"
        return
    try:
        for dirpath, dirnames, filenames, dirfd in os.fwalk(".", dir_fd=top,
                                                             follow_symlinks=False):  # fmt: skip
            rel_dir = os.path.normpath(dirpath)
            for d in sorted(dirnames):
                rel = os.path.normpath(os.path.join(rel_dir, d))
                st = os.stat(d, dir_fd=dirfd, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    yield rel, None, "a symbolic link"
                else:
                    yield rel + "/", None, ""
            for name in sorted(filenames):
                rel = os.path.normpath(os.path.join(rel_dir, name))
                try:
                    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=dirfd)
                except OSError as exc:
                    yield rel, None, ("a symbolic link" if exc.errno == 40
                                      else f"unreadable: {exc.strerror}")  # fmt: skip
                    continue
                st = os.fstat(fd)
                why = ""
                if not stat.S_ISREG(st.st_mode):
                    why = "not a regular file"
                elif owner is not None and st.st_uid != owner:
                    why = "not owned by the run's user"
                if why:
                    os.close(fd)
                    yield rel, None, why
                else:
                    yield rel, fd, ""
    finally:
        os.close(top)


def list_files(root: Path, owner: int | None = None) -> ArtifactListing:
    """The regular files under ``root`` (see the module docstring for what is left out)."""
    out = ArtifactListing()
    for rel, fd, why in _walk(root, owner):
        if fd is not None:
            out.files.append((rel, os.fstat(fd).st_size))
            os.close(fd)
        elif why:
            out.skipped.append((rel, why))
    return out


_CHUNK = 1 << 20


def tar_stream(root: Path, owner: int | None = None) -> Iterator[bytes]:
    """A gzip-compressed tar of the regular files (and directories) under ``root``, produced
    piece by piece (memory stays bounded by one chunk, whatever the files' sizes); entries carry
    relative names, modes 0644/0755, no owners."""
    gz = zlib.compressobj(6, zlib.DEFLATED, 31)  # wbits 31: the gzip container

    def out(data: bytes) -> bytes:
        return gz.compress(data)

    for rel, fd, why in _walk(root, owner):
        if why:
            continue
        info = tarfile.TarInfo(rel.rstrip("/"))
        info.uname = info.gname = ""
        if fd is None:  # a directory
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            yield out(info.tobuf(tarfile.PAX_FORMAT))
            continue
        with contextlib.closing(os.fdopen(fd, "rb")) as f:
            st = os.fstat(f.fileno())
            info.size, info.mode, info.mtime = st.st_size, 0o644, int(st.st_mtime)
            yield out(info.tobuf(tarfile.PAX_FORMAT))
            left = st.st_size
            while left > 0:
                block = f.read(min(_CHUNK, left))
                if not block:  # shrank while read: pad, so the archive stays well formed
                    block = b"\0" * min(_CHUNK, left)
                left -= len(block)
                yield out(block)
            pad = (-st.st_size) % tarfile.BLOCKSIZE
            if pad:
                yield out(b"\0" * pad)
    yield out(b"\0" * (2 * tarfile.BLOCKSIZE)) + gz.flush()
