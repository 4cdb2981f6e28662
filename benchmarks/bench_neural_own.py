"""Neural models RecBole does not have (CMN, MCRec, CVAE, CDL): seconds per epoch, epochs to the
best validation, whole fit time and peak memory, each on its own table's data and settings.

Run from the repository root::

    RECFORGE_DATA_MIRROR=../shared/data .venv/bin/python benchmarks/bench_neural_own.py \
        [--models CMN,MCRec,CVAE,CDL] [--max-epochs 2] [--threads 1]

Writes ``benchmarks/results/neural_own.json`` and ``neural_own.md``.

Each model runs as the product runs it: ``recforge reproduce <table> --fixed --models <row>
--max-epochs N`` in a fresh process (the table's split, the paper's settings, every
pre-training stage capped at N epochs too), with N small because whole fits take 30 min to
hours here. From that run's ``best_configs.json`` the benchmark reads the seconds of each
epoch and the peak resident memory of the fit (the runner's own measure, ``fit_memory``: the
process's VmHWM during the fit, and that minus the resident size before it); the process's
CPU and wall seconds come from ``wait4``. Epochs to the best validation and the whole fit time
cannot come from a capped run: they are read from the committed record of the row's full run
(``docs/results/<run>/best_configs.json``) and shown beside the capped run's figures, with the
full run's own median seconds per epoch (a different machine load: compare with care).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from procstats import load_average

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")


@dataclass(frozen=True)
class OwnCase:
    """One neural row: its table, its ``--models`` label and its full run's committed record."""

    table: str
    row: str
    data: str
    record: str | None  # docs/results/<run> of the full (uncapped) run, None while none exists


CASES: dict[str, OwnCase] = {
    "CMN": OwnCase("table2", "CMN", "CiteULike-a, candidate sets of 100 negatives",
                   "docs/results/table2-fixed-cmn"),
    "MCRec": OwnCase("table3", "MCRec", "ML-100k with metapaths from the side information",
                     "docs/results/table3-fixed-mcrec"),
    "CVAE": OwnCase("table4", "CollaborativeVAE", "CiteULike-a, tag matrix as content",
                    "docs/results/table4-fixed-cvae-tags"),
    "CDL": OwnCase("table5", "CollaborativeDL", "CiteULike-a, tag matrix as content",
                   "docs/results/table5-fixed-cdl-tags"),
}


def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def _stages(training: dict[str, Any]) -> dict[str, list[float]]:
    """Seconds per epoch of each stage: the pre-training stages by name, then the model's."""
    out = {name: [h["seconds"] for h in hist]
           for name, hist in (training.get("pretrain_history") or {}).items()}
    out["main"] = [h["seconds"] for h in training["history"]]
    return out


def _row_record(best_configs: Path, row: str) -> dict[str, Any]:
    by_seed = json.loads(best_configs.read_text())[row]
    return dict(by_seed[sorted(by_seed)[0]])


def run_row(args: list[str], row: str, *, threads: int, timeout: float,
            env: dict[str, str] | None = None,
            poll: Callable[[int], None] | None = None, tail: int = 3) -> dict[str, Any]:
    """``recforge reproduce ARGS`` in a fresh process; the row's record and the process's cost.

    ``poll(pid)`` is called about twice a second while the run lasts (e.g. to sample GPU memory).
    A failed run's ``error`` holds its exit code and the last ``tail`` lines of its output.
    """
    cmd = [sys.executable, "-m", "recforge.cli.main", "reproduce", *args]
    env = {**os.environ, **dict.fromkeys(THREAD_VARS, str(threads)), **(env or {})}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        cmd += ["--out", str(out)]
        t0 = time.perf_counter()
        with open(Path(tmp) / "log", "w") as log:
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
            deadline = time.monotonic() + timeout
            while True:  # wait4 gives the child's own CPU time and peak resident size
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.monotonic() > deadline:
                    proc.kill()
                    pid, status, usage = os.wait4(proc.pid, 0)
                    break
                if poll is not None:
                    poll(proc.pid)
                time.sleep(0.5)
        wall = time.perf_counter() - t0
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            last = (Path(tmp) / "log").read_text().strip().splitlines()[-tail:]
            return {"error": [f"exit {code}", *last], "wall_seconds": wall}
        rec = _row_record(out / "best_configs.json", row)
        results = json.loads((out / "results.json").read_text())
    training = rec["training"]
    stages = _stages(training)
    return {
        "command": " ".join(["recforge", "reproduce", *args]),
        "seconds_per_epoch": {k: _median(v) for k, v in stages.items()},
        "epochs_timed": {k: len(v) for k, v in stages.items()},
        "epochs_best": training["epochs_best"],
        "epochs_run": training["epochs_run"],
        "stop_reason": training["stop_reason"],
        "fit_seconds": rec["fit_seconds"],
        "fit_peak_rss_mb": rec["fit_memory"]["peak_rss_mb"],
        "fit_added_mb": rec["fit_memory"]["added_mb"],
        "memory_method": rec["fit_memory"]["method"],
        "metrics": results["rows"][row],
        "conclusion": (results.get("conclusion") or {}).get(row),
        "process_cpu_seconds": usage.ru_utime + usage.ru_stime,
        "process_peak_rss_mb": usage.ru_maxrss / 1024,
        "wall_seconds": wall,
    }


def run_capped(case: OwnCase, max_epochs: int, threads: int, timeout: float) -> dict[str, Any]:
    """The row's capped reproduction (``--fixed --models ROW --max-epochs N``)."""
    return run_row([case.table, "--fixed", "--models", case.row, "--max-epochs", str(max_epochs)],
                   case.row, threads=threads, timeout=timeout)


def full_run(record: str | None, row: str) -> dict[str, Any]:
    """What the committed record (docs/results/<run>) of a row's full run says, or why none."""
    if record is None or not (ROOT / record / "best_configs.json").exists():
        return {"error": [f"no finished run recorded at {record}"]}
    rec = _row_record(ROOT / record / "best_configs.json", row)
    training = rec["training"]
    stage_best = {k[len("epochs_"):-len("_best")]: v for k, v in training.items()
                  if k.startswith("epochs_") and k.endswith("_best") and k != "epochs_best"}
    history = training["history"]
    return {
        "record": record,
        # a resumed fit's record times only its last process: the epochs' own seconds add up
        "resumed_from_epoch": training.get("resumed_from_epoch"),
        "epoch_and_validation_seconds": sum(h["seconds"] + (h["validation_seconds"] or 0.0)
                                            for h in history),
        "refit_epochs": training.get("refit_epochs"),
        "epochs_best": training["epochs_best"],
        "epochs_run": training["epochs_run"],
        "stop_reason": training["stop_reason"],
        "pretraining_epochs_best": stage_best,
        "fit_seconds": rec["fit_seconds"],
        "seconds_per_epoch": {k: _median(v) for k, v in _stages(training).items()},
        "fit_peak_rss_mb": (rec.get("fit_memory") or {}).get("peak_rss_mb"),
        "metrics": json.loads((ROOT / record / "results.json").read_text())["rows"][row],
    }


def fmt_or_na(x: float | None, fmt: str) -> str:
    """``x`` formatted, or ``n/a`` when it was not measured."""
    return "n/a" if x is None else format(x, fmt)


def per_stage(d: dict[str, float | None], fmt: str = ".1f") -> str:
    """The model's seconds per epoch, its pre-training stages' in brackets."""
    main = fmt_or_na(d.get("main"), fmt)
    pre = [f"{k} {fmt_or_na(v, fmt)}" for k, v in d.items() if k != "main"]
    return main + (f" ({', '.join(pre)})" if pre else "")


def render(result: dict[str, Any]) -> str:
    lines = [
        "# Neural models without a RecBole counterpart, on their own tables' data",
        "",
        f"Machine: {result['machine']}; {result['threads']} thread(s); load average "
        f"{result['load_before']} before, {result['load_after']} after (last invocation).",
        "",
        *sorted({f"- `{m['bench_command']}`" for m in result["models"].values()}),
        "",
        "Capped run: the row's `recforge reproduce ... --fixed --max-epochs "
        f"{result['max_epochs']}` here, now (seconds per epoch of the model's stage, its "
        "pre-training stages in brackets; peak resident MB of the fit and what the fit added). "
        "Full run: the committed record of the row's uncapped run (another session's load).",
        "",
        "| model | data | capped: s / epoch | fit peak MB (added) | process CPU s | "
        "full run: s / epoch | epochs to best / run | pre-training best | whole fit |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, m in result["models"].items():
        c, full = m["capped"], m["full"]
        if "error" in c:
            capped = f"not measured: {' '.join(c['error'])} | | "
        else:
            capped = (f"{per_stage(c['seconds_per_epoch'])} | {c['fit_peak_rss_mb']:.0f} "
                      f"({c['fit_added_mb']:.0f}) | {c['process_cpu_seconds']:.0f}")
        if "error" in full:
            fr = f"{' '.join(full['error'])} | | |"
        else:
            pre = ", ".join(f"{k} {v}" for k, v in full["pretraining_epochs_best"].items())
            if full.get("resumed_from_epoch"):
                whole = (f"{full['epoch_and_validation_seconds'] / 60:.1f} min of epochs and "
                         f"validations (resumed after epoch {full['resumed_from_epoch']}"
                         + (f"; the refit's {full['refit_epochs']} epochs not included)"
                            if full.get("refit_epochs") else ")"))
            else:
                whole = f"{full['fit_seconds'] / 60:.1f} min"
            fr = (f"{per_stage(full['seconds_per_epoch'])} | {full['epochs_best']} / "
                  f"{full['epochs_run']} ({full['stop_reason']}) | {pre or '-'} | {whole}")
        lines.append(f"| {name} | {m['data']} | {capped} | {fr} |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(CASES))
    ap.add_argument("--max-epochs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=2 * 3600)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--refresh-records", action="store_true",
                    help="only re-read the full runs' committed records into the results "
                    "(after a row's full run has landed); runs nothing")
    args = ap.parse_args()
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        ap.error(f"unknown model(s) {unknown}; known: {', '.join(CASES)}")
    if args.max_epochs < 1 or args.threads < 1:
        ap.error("--max-epochs and --threads must be at least 1")
    path = args.out / "neural_own.json"
    # Models measured by separate invocations share one results file.
    result: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    if args.refresh_records:
        if not result:
            ap.error(f"--refresh-records: no results at {path} to refresh")
        for name, entry in result["models"].items():
            entry["full"] = full_run(CASES[name].record, CASES[name].row)
        path.write_text(json.dumps(result, indent=1))
        (args.out / "neural_own.md").write_text(render(result))
        print(render(result))
        return
    if result.get("max_epochs") not in (None, args.max_epochs) or result.get(
            "threads") not in (None, args.threads):
        result = {}
    load_before = load_average()
    result.setdefault("models", {})
    command = ("RECFORGE_DATA_MIRROR=../shared/data .venv/bin/python "
               f"benchmarks/bench_neural_own.py --models {','.join(names)} "
               f"--max-epochs {args.max_epochs} --threads {args.threads}")
    for name in names:
        case = CASES[name]
        print(f"{name}: {case.table} capped at {args.max_epochs} epochs", file=sys.stderr)
        capped = run_capped(case, args.max_epochs, args.threads, args.timeout)
        print(f"  -> {json.dumps(capped)}", file=sys.stderr)
        result["models"][name] = {"data": case.data, "capped": capped,
                                  "full": full_run(case.record, case.row),
                                  "bench_command": command}
        result.update({  # written after each model: an interruption loses only the current one
            "machine": f"{platform.machine()} {os.cpu_count()} cores",
            "threads": args.threads, "max_epochs": args.max_epochs,
            "load_before": load_before, "load_after": load_average(),
        })
        args.out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=1))
        (args.out / "neural_own.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
