"""The output folder of a run (``recforge run --out DIR``): what is written where, and resuming.

Layout (every file written atomically, so an interrupted run leaves whole files only)::

    spec.resolved.yaml   the spec as run (identity of the folder: another spec is refused)
    progress.json        state (running / interrupted / failed / finished), what is done
    environment.json     versions, platform, BLAS thread pools
    data.json            data checksum, filter reports, split fingerprints and audits
    studies.db           optuna storage: every finished trial of every search
    runs/<stem>__seed<k>.json     one finished model run (written last: it marks "done")
    trials/<stem>__seed<k>.json   its search trials
    per_user/<stem>__seed<k>.npz  its per-user test values
    models/<stem>__seed<k>/       its fitted model (``--keep-models``)
    resume/<stem>__seed<k>.<stage>.npz   the resume point of a fit in progress (resumable
                         models: an interrupted fit goes on from its last saved epoch)
    best_configs.json, results.json, report.md, report.html   written when all is done
    .recforge.lock       held (flock) by the run using the folder; its pid, host, start

Re-running the same spec into the same folder resumes: finished model runs are read back,
a search continues its study from ``studies.db``, and the results are those of an
uninterrupted run with the same seeds. A folder holding another spec's run, or files that
are not a run's, is refused; ``force`` discards the folder's run (this layout's files only,
nothing else) and starts afresh. One run at a time: a second process opening a folder in use
is refused before it touches anything (two would sample the same seeded trials twice).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import time
from pathlib import Path
from typing import IO, Any

import numpy as np
import yaml

from recforge._files import atomic_path, write_text_atomic
from recforge._json import write_json
from recforge.experiments.outcome import ModelRun
from recforge.experiments.spec import ExperimentSpec
from recforge.tuning.protocols import DEFAULT_PRESET

__all__ = ["OutDirError", "RunDir", "label_stems", "run_stem"]

SPEC_FILE = "spec.resolved.yaml"
PROGRESS_FILE = "progress.json"
LOCK_FILE = ".recforge.lock"
#: every name this layout writes at the top of the folder (``force`` removes these only)
LAYOUT = (
    SPEC_FILE, PROGRESS_FILE, "environment.json", "data.json", "studies.db", "runs", "trials",
    "per_user", "models", "resume", "exports", "best_configs.json", "results.json", "report.md",
    "report.html",
)


class OutDirError(ValueError):
    """The output folder cannot take this run (another spec's run, foreign files, other data)."""


def label_stems(labels: list[str]) -> dict[str, str]:
    """A file-name stem per model label: the label with unsafe characters replaced, plus a
    short hash where two labels would otherwise share a stem."""
    def safe(label: str) -> str:
        return "".join(c if c.isalnum() or c in "-_" else "_" for c in label)

    stems = {lab: safe(lab) for lab in labels}
    counts: dict[str, int] = {}
    for s in stems.values():
        counts[s] = counts.get(s, 0) + 1
    return {lab: s if counts[s] == 1 else f"{s}-{hashlib.sha1(lab.encode()).hexdigest()[:6]}"
            for lab, s in stems.items()}


def run_stem(stem: str, seed: int) -> str:
    """The file stem of one model run (and the name of its search's optuna study)."""
    return f"{stem}__seed{seed}"


def spec_document(spec: ExperimentSpec) -> dict[str, Any]:
    """The spec as plain data (what ``spec.resolved.yaml`` holds)."""
    return dict(spec.model_dump(mode="json"))


def _differences(a: Any, b: Any, path: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for k in sorted(set(a) | set(b), key=str):
            out += _differences(a.get(k), b.get(k), f"{path}.{k}" if path else str(k))
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        out = []
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            out += _differences(x, y, f"{path}.{i}")
        return out
    return [] if a == b else [path or "<root>"]


def _take_lock(path: Path) -> IO[str] | None:
    """An exclusive lock on ``path`` (file ``LOCK_FILE``) for as long as the returned handle is
    open: a second run on the same folder would sample the same seeded trials again into the
    same studies, so it is refused before it touches anything. None where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock (documented)
        return None
    try:
        path.mkdir(parents=True, exist_ok=True)
        fh = open(path / LOCK_FILE, "a+")  # noqa: SIM115 - held for the run, closed by RunDir
    except OSError as exc:
        raise OutDirError(f"--out {path} is not writable: {exc}") from None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        fh.seek(0)
        holder = fh.read().strip() or "holder unknown"
        fh.close()
        raise OutDirError(
            f"--out {path} is in use by another recforge run ({holder}); wait for it to end "
            "or stop it (SIGTERM) and run again, or choose another folder"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(f"pid {os.getpid()} on {socket.gethostname()} since {_now()}\n")
    fh.flush()
    return fh


class RunDir:
    """One run's output folder; :meth:`open` checks it can take ``spec`` before any work and
    holds the folder's lock until :meth:`close` (one run per folder at a time)."""

    def __init__(self, path: Path, spec: ExperimentSpec, resumed: bool) -> None:
        self.path = path
        self.spec = spec
        self.resumed = resumed
        self.stems = label_stems([m.display for m in spec.models])
        self._progress: dict[str, Any] = {}
        self._lock: IO[str] | None = None

    def close(self) -> None:
        """Release the folder's lock (the run is over)."""
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | Path, spec: ExperimentSpec, *, force: bool = False) -> RunDir:
        """Create or reopen ``path`` for ``spec``; refuses another spec's folder unless
        ``force``. Writes the spec first, so an unwritable folder fails here."""
        path = Path(path)
        if path.exists() and not path.is_dir():
            raise OutDirError(f"--out {path} is a file, not a folder")
        made_dir, made_lock = not path.exists(), not (path / LOCK_FILE).exists()
        lock = _take_lock(path)
        try:
            rd = cls._open_locked(path, spec, force)
        except BaseException:
            if lock is not None:  # a refused folder is left as it was found
                lock.close()
                if made_lock:
                    (path / LOCK_FILE).unlink(missing_ok=True)
                if made_dir and not any(path.iterdir()):
                    path.rmdir()
            raise
        rd._lock = lock
        return rd

    @classmethod
    def _open_locked(cls, path: Path, spec: ExperimentSpec, force: bool) -> RunDir:
        doc = spec_document(spec)
        resumed = False
        if path.is_dir() and any(p.name != LOCK_FILE for p in path.iterdir()):
            marker = path / SPEC_FILE
            if force:
                cls._clear(path)
            elif marker.is_file():
                old = yaml.safe_load(marker.read_text()) or {}
                # folders written before presets existed ran the default one
                old.setdefault("preset", DEFAULT_PRESET)
                diff = _differences(old, doc)
                if diff:
                    shown = ", ".join(diff[:6]) + (" ..." if len(diff) > 6 else "")
                    raise OutDirError(
                        f"--out {path} holds the results of a different spec "
                        f"({old.get('name')!r}; differs in {shown}); choose another folder, or "
                        "--force to discard them"
                    )
                resumed = True
            else:
                raise OutDirError(
                    f"--out {path} is not empty and holds no recforge run (no {SPEC_FILE}); "
                    "choose an empty or new folder, or --force to write into it"
                )
        try:
            path.mkdir(parents=True, exist_ok=True)
            if not resumed:
                write_text_atomic(path / SPEC_FILE, yaml.safe_dump(doc, sort_keys=False))
            probe = path / ".recforge-write-check"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            raise OutDirError(f"--out {path} is not writable: {exc}") from None
        rd = cls(path, spec, resumed)
        old_progress = rd._read(PROGRESS_FILE) or {}
        rd._progress = {
            "name": spec.name,
            "state": "running",
            "started": old_progress.get("started", _now()),
            "resumed": list(old_progress.get("resumed", [])) + ([_now()] if resumed else []),
            "done": list(old_progress.get("done", [])) if resumed else [],
        }
        rd.write_progress()
        return rd

    @staticmethod
    def _clear(path: Path) -> None:
        for name in LAYOUT:
            p = path / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()

    def _read(self, name: str) -> Any:
        import json

        p = self.path / name
        return json.loads(p.read_text()) if p.is_file() else None

    # ------------------------------------------------------------------ shared files
    @property
    def storage_url(self) -> str:
        """The optuna storage holding every search of the run."""
        return f"sqlite:///{(self.path / 'studies.db').resolve()}"

    def study_name(self, label: str, seed: int) -> str:
        return self._stem(label, seed)

    def write_progress(self, **update: Any) -> None:
        self._progress.update(update, updated=_now())
        write_json(self.path / PROGRESS_FILE, self._progress)

    def check_data(self, data_checksum: str) -> None:
        """On resume the data must be what the first part of the run saw."""
        old = self._read("data.json")
        if self.resumed and old and old.get("data_checksum") != data_checksum:
            raise OutDirError(
                f"--out {self.path}: the data changed since this run started (checksum "
                f"{old.get('data_checksum', '')[:12]} then, {data_checksum[:12]} now); "
                "use another folder, or --force to start again"
            )

    def write(self, name: str, obj: Any) -> None:
        write_json(self.path / name, obj)

    # ------------------------------------------------------------------ model runs
    def _stem(self, label: str, seed: int) -> str:
        return run_stem(self.stems[label], seed)

    def save_run(self, run: ModelRun, seed: int) -> None:
        """Write one finished model run; the run record goes last (it marks it done)."""
        save_run_files(self.path, self._stem(run.label, seed), run)
        record = {
            "label": run.label, "model": run.model, "params": run.params,
            "summary": run.summary, "fit_seconds": run.fit_seconds,
            "eval_seconds": run.eval_seconds, "tuning": run.tuning, "training": run.training,
            "warnings": run.warnings, "seed": seed, "recommended": run.recommended,
            "fit_memory": run.fit_memory,
        }
        write_json(self.path / "runs" / f"{self._stem(run.label, seed)}.json", record)
        self._progress["done"] = sorted(set(self._progress["done"]) | {f"{seed}/{run.label}"})
        self.write_progress()

    def load_run(self, label: str, seed: int) -> ModelRun | None:
        """The finished run of ``label`` on ``seed``, or None if it did not finish."""
        stem = self._stem(label, seed)
        if not (self.path / "runs" / f"{stem}.json").is_file():
            return None
        return read_run(self.path, stem)

    def model_dir(self, label: str, seed: int) -> Path:
        return self.path / "models" / self._stem(label, seed)

    def resume_stem(self, label: str, seed: int) -> Path:
        """Where the fits of one model run keep their resume points (``<stem>.<stage>.npz``)."""
        return self.path / "resume" / self._stem(label, seed)


def read_run(out: Path, stem: str) -> ModelRun:
    """One finished model run from ``runs/``, ``per_user/`` and ``trials/`` under ``out``."""
    import json

    record = json.loads((out / "runs" / f"{stem}.json").read_text())
    arrays = np.load(out / "per_user" / f"{stem}.npz")
    trials_file = out / "trials" / f"{stem}.json"
    trials = json.loads(trials_file.read_text()) if trials_file.is_file() else []
    return ModelRun(
        label=record["label"], model=record["model"], params=record["params"],
        # JSON has no NaN: a null summary value was a non-finite float.
        summary={k: float("nan") if v is None else float(v)
                 for k, v in record["summary"].items()},
        per_user={k: arrays[k] for k in arrays.files if k not in _ID_COLUMNS},
        users=arrays["user"], fit_seconds=record["fit_seconds"],
        eval_seconds=record["eval_seconds"], trials=trials, tuning=record["tuning"],
        training=record.get("training"), warnings=list(record.get("warnings", [])),
        user_ids=arrays["user_id"] if "user_id" in arrays.files else None,
        recommended=record.get("recommended"), fit_memory=record.get("fit_memory"),
    )


_ID_COLUMNS = ("user", "user_id")


def save_run_files(out: Path, stem: str, run: ModelRun) -> None:
    """The trials and per-user values of one model run under ``out`` (atomic writes).

    The npz holds ``user`` (internal ids), ``user_id`` (external ids, when known) and one
    array per ``METRIC@k``; no pickled objects (ids of mixed type are stored as text).
    """
    if run.trials:
        write_json(out / "trials" / f"{stem}.json", run.trials, indent=1)
    cols: dict[str, Any] = {"user": run.users.astype(np.int64), **run.per_user}
    if run.user_ids is not None:
        ids = np.asarray(run.user_ids)
        cols["user_id"] = ids.astype(str) if ids.dtype.kind == "O" else ids
    target = out / "per_user" / f"{stem}.npz"
    # A file object, not a name: savez would append ".npz" to the temporary name.
    with atomic_path(target) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **cols)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")
