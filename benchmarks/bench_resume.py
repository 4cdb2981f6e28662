"""Resumable searches: what keeping every trial in optuna SQLite storage costs, and resuming.

Run from the repository root::

    RECFORGE_DATA_MIRROR=../shared/data .venv/bin/python benchmarks/bench_resume.py [--runs 3]

Writes ``benchmarks/results/resume.json`` (every run, medians, ratios) and ``resume.md``.

Data: ML-1M 5-star (SpectralCF files, 226,310 pairs), per-user random 80/20 split, 10 % of each
user's train as validation, seed 0. One search: ItemKNN CF cosine, the paper's space, 10 trials
(5 random), RECALL@50 on validation, the test part evaluated at each new best. Per round,
interleaved (the 2-core machine is shared):

- ``plain``: ``tune`` in memory (the anchor);
- ``stored``: the same search with ``storage=sqlite:///...`` (a fresh database: schema creation
  plus one transaction per finished trial);
- ``resumed``: ``tune`` again on that finished study: all 10 trials replayed from storage, none
  fitted (what a re-run of a finished or interrupted search costs before new work starts).

The stored and resumed searches must find the plain search's trials and best parameters; the
benchmark checks it.
"""

from __future__ import annotations

import os

THREADS = 2
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = str(THREADS)

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
N_TRIALS = 10
SEARCH: dict[str, Any] = {
    "fixed_params": {"similarity": "cosine", "n_threads": THREADS}, "metric": "RECALL",
    "cutoff": 50, "n_trials": N_TRIALS, "n_startup_trials": 5, "seed": 0,
    "measure_memory": False,
}


def _split() -> Any:
    from recforge.data.registry import load_dataset
    from recforge.data.split_methods import make_split
    from recforge.data.splitting import carve_validation

    data = load_dataset("spectralcf-ml-1m", part="all")
    split = make_split(data, "per_user_holdout", {"test_fraction": 0.2}, seed=0)
    return carve_validation(split, 0.1, seed=0, mode="per_user")


def _same(a: Any, b: Any) -> bool:
    return [t.params for t in a.trials] == [t.params for t in b.trials] and (
        a.best_params == b.best_params)


def main() -> None:
    from recforge.tuning import tune

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    split = _split()
    tune("ItemKNNCF", split, **{**SEARCH, "n_trials": 1})  # warm-up: numba compilation
    rounds = []
    for r in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'studies.db'}"
            t0 = time.perf_counter()
            plain = tune("ItemKNNCF", split, **SEARCH)
            t1 = time.perf_counter()
            stored = tune("ItemKNNCF", split, storage=url, study_name="knn", **SEARCH)
            t2 = time.perf_counter()
            resumed = tune("ItemKNNCF", split, storage=url, study_name="knn", **SEARCH)
            t3 = time.perf_counter()
        if not (_same(plain, stored) and _same(plain, resumed)):
            raise SystemExit("stored or resumed search differs from the plain one")
        rounds.append({"round": r, "plain": t1 - t0, "stored": t2 - t1, "resumed": t3 - t2})
        print(f"round {r}: plain {t1 - t0:.2f} s, stored {t2 - t1:.2f} s, "
              f"resumed {t3 - t2:.2f} s")
    med = {k: statistics.median(x[k] for x in rounds) for k in ("plain", "stored", "resumed")}
    result = {
        "what": f"ItemKNNCF cosine search, {N_TRIALS} trials, ML-1M 5-star, RECALL@50",
        "rounds": rounds, "median_seconds": med,
        "ratios": {"stored/plain": med["stored"] / med["plain"],
                   "resumed/plain": med["resumed"] / med["plain"]},
        "per_trial_overhead_seconds": (med["stored"] - med["plain"]) / N_TRIALS,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "load_average": os.getloadavg(), "threads": THREADS},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "resume.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        "# Resumable searches: optuna SQLite storage", "",
        f"{result['what']}; medians of {args.runs} interleaved rounds; load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores.", "",
        "| search | median s | ratio to plain |", "| --- | ---: | ---: |",
        f"| plain (in memory, anchor) | {med['plain']:.2f} | 1.00 |",
        f"| stored (fresh SQLite study) | {med['stored']:.2f} | "
        f"{result['ratios']['stored/plain']:.2f} |",
        f"| resumed (10 trials replayed, none fitted) | {med['resumed']:.2f} | "
        f"{result['ratios']['resumed/plain']:.2f} |", "",
        f"Storage overhead per trial (incl. creating the database once): "
        f"{result['per_trial_overhead_seconds']:.3f} s.", "",
        "Command: `RECFORGE_DATA_MIRROR=../shared/data .venv/bin/python "
        "benchmarks/bench_resume.py`",
    ]
    (RESULTS / "resume.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
