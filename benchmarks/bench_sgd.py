"""SGD models' cost: seconds per epoch of SLIM BPR and FunkSVD against MF BPR, at ML-1M size.

Run from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sgd.py [--rounds 2] [--epochs 2]

Writes ``benchmarks/results/sgd.json`` and ``sgd.md``. No speed target: the journal runs
(``--protocol tois2021``) need the per-epoch cost to plan, and this records it reproducibly.

Data: ``bench_ials.synthetic`` (6,040 x 3,706, 1,000,209 pairs, seed 0; ML-1M's counts).
Contenders (1 thread each): MF BPR (the anchor; numpy minibatches of 1,024, 64 factors,
adagrad), SLIM BPR (numba, per-sample; adagrad symmetric top_k 200, and adam asymmetric
top_k 1000), FunkSVD (numba; 50 factors batch 1 negative quota 0.3 adam, and 200 factors batch
1,024 quota 0.5 adagrad). An epoch is one pass of the model's own sampling: MF BPR and SLIM BPR
draw nnz triples, FunkSVD visits nnz positives plus ``nnz q / (1 - q)`` zeros. Method as
``bench_ials``: an untimed warm-up fit on a small matrix, then ``--rounds`` rounds of
``--epochs``-epoch fits in rotated order; medians of each epoch's wall and process CPU seconds
(the epoch as the one training loop times it: sampling and SGD; SLIM BPR prunes its dense
weights to top_k at the end of the fit and before each validation, outside an epoch's time);
``score s`` is scoring all users once after the fit.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse
import functools
import re
import shlex
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from bench_ials import N_ITEMS, N_USERS, NNZ, synthetic, timed_fit
from recforge._json import write_json
from recforge.data.interactions import Interactions
from recforge.models import make_model
from recforge.models.funksvd import FunkSVD

RESULTS = Path(__file__).resolve().parent / "results"
CONTENDERS: dict[str, tuple[str, dict[str, Any]]] = {
    "MF BPR 64f batch 1024 adagrad": (
        "MFBPR", {"factors": 64, "batch_size": 1024, "sgd_mode": "adagrad"}),
    "SLIM BPR top_k 200 adagrad symmetric": (
        "SLIMBPR", {"top_k": 200, "sgd_mode": "adagrad", "symmetric": True}),
    "SLIM BPR top_k 1000 adam asymmetric": (
        "SLIMBPR", {"top_k": 1000, "sgd_mode": "adam", "symmetric": False}),
    "FunkSVD 50f batch 1 quota 0.3 adam": (
        "FunkSVD", {"factors": 50, "batch_size": 1, "negative_quota": 0.3, "sgd_mode": "adam"}),
    "FunkSVD 200f batch 1024 quota 0.5 adagrad": (
        "FunkSVD", {"factors": 200, "batch_size": 1024, "negative_quota": 0.5,
                    "sgd_mode": "adagrad"}),
}
ANCHOR = "MF BPR 64f batch 1024 adagrad"
#: The commit before MF BPR's row kernels and FunkSVD's row step: the "before" contenders
#: import those two files as they were there (git history), as same-run anchors of the change;
#: each must end with the same factors as its twin (the contender without the suffix).
BEFORE_COMMIT = "86f3f4e"
ROOT = Path(__file__).resolve().parents[1]
#: MF BPR's update before its numba row kernels (np.add.at into full-size buffers, numpy
#: fancy-index optimiser steps).
BEFORE = " (all-numpy update)"
#: FunkSVD's epoch before ``adapted_row`` (the scalar rule per entry), likewise checked.
BEFORE_FUNK = " (per-entry step)"
CONTENDERS.update({
    "MF BPR 200f batch 256 adam": (
        "MFBPR", {"factors": 200, "batch_size": 256, "sgd_mode": "adam"}),
    "MF BPR 64f batch 1024 adagrad" + BEFORE: (
        "MFBPR-numpy", {"factors": 64, "batch_size": 1024, "sgd_mode": "adagrad"}),
    "MF BPR 200f batch 256 adam" + BEFORE: (
        "MFBPR-numpy", {"factors": 200, "batch_size": 256, "sgd_mode": "adam"}),
    "FunkSVD 50f batch 1 quota 0.3 adam" + BEFORE_FUNK: (
        "FunkSVD-per-entry",
        {"factors": 50, "batch_size": 1, "negative_quota": 0.3, "sgd_mode": "adam"}),
    "FunkSVD 200f batch 1024 quota 0.5 adagrad" + BEFORE_FUNK: (
        "FunkSVD-per-entry",
        {"factors": 200, "batch_size": 1024, "negative_quota": 0.5, "sgd_mode": "adagrad"}),
})



@functools.cache
def _before(path: str) -> ModuleType:
    """``path`` as it was at ``BEFORE_COMMIT``, imported from git history as a fresh module
    (the benchmark's "before": the code itself, not a copy kept here)."""
    code = subprocess.run(["git", "show", f"{BEFORE_COMMIT}:{path}"], check=True,
                          capture_output=True, text=True, cwd=ROOT).stdout
    code = code.replace("cache=True", "cache=False")  # numba caches only real source files
    module = ModuleType(f"before_{Path(path).stem}")
    module.__file__ = f"{BEFORE_COMMIT}:{path}"
    sys.modules[module.__name__] = module  # dataclasses and numba look modules up by name
    exec(compile(code, module.__file__, "exec"), module.__dict__)
    return module


def _per_entry_funksvd(**params: Any) -> Any:
    """FunkSVD whose epochs run the kernel of ``BEFORE_COMMIT`` (the scalar rule per entry)."""
    kernel = _before("src/recforge/models/_funksvd_numba.py").funk_svd_epoch

    class PerEntryStepFunkSVD(FunkSVD):
        def _train_epoch(self, epoch: int) -> float | None:
            import recforge.models._funksvd_numba as current

            now = current.funk_svd_epoch
            current.funk_svd_epoch = kernel
            try:
                return super()._train_epoch(epoch)
            finally:
                current.funk_svd_epoch = now

    return PerEntryStepFunkSVD(**params)

def _make(name: str, **params: Any) -> Any:
    if name == "MFBPR-numpy":
        return _before("src/recforge/models/mf_bpr.py").MFBPR(**params)
    if name == "FunkSVD-per-entry":
        return _per_entry_funksvd(**params)
    return make_model(name, **params)


def _timed(fn: Callable[[], Any]) -> tuple[float, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w0, time.process_time() - c0


def run(rounds: int, epochs: int, shape: tuple[int, int, int],
        only: str | None = None) -> dict[str, Any]:
    started = time.time()
    load_start = os.getloadavg()
    train = Interactions(synthetic(*shape))
    warm = Interactions(synthetic(300, 200, 6000, seed=1))
    names = [c for c in CONTENDERS if only is None or re.search(only, c) or c == ANCHOR]
    for c in names:
        name, params = CONTENDERS[c]
        _make(name, epochs=1, **params).fit(warm)
    per: dict[str, dict[str, list[float]]] = {
        c: {"wall": [], "cpu": [], "score_wall": [], "score_cpu": [], "loss": []}
        for c in names
    }
    factors: dict[str, tuple[np.ndarray, ...]] = {}
    users = np.arange(train.n_users)
    for r in range(rounds):
        for c in names[r % len(names):] + names[: r % len(names)]:
            name, params = CONTENDERS[c]
            model = _make(name, epochs=epochs, **params)
            walls, cpus = timed_fit(model, train)
            if name.startswith(("MFBPR", "FunkSVD")):
                factors[c] = (model.user_factors_, model.item_factors_)
            sw, sc = _timed(lambda model=model: model.score(users))
            per[c]["wall"] += walls
            per[c]["cpu"] += cpus
            per[c]["score_wall"].append(sw)
            per[c]["score_cpu"].append(sc)
            per[c]["loss"].append(float(model.history_[-1].loss))
            print(f"round {r + 1}/{rounds} {c}: {statistics.median(walls):.2f} s/epoch wall, "
                  f"{statistics.median(cpus):.2f} CPU; score {sw:.2f} s wall", flush=True)
    for c in names:  # the kernels must not change what the models learn
        twin = c.removesuffix(BEFORE).removesuffix(BEFORE_FUNK)
        if twin != c and twin in factors:
            same = all(np.array_equal(a, b, equal_nan=True) for a, b in zip(
                factors[c], factors[twin], strict=True))
            if not same:
                raise SystemExit(f"{c}: factors differ from the kernels' ones")
    anchor_cpu = statistics.median(per[ANCHOR]["cpu"])
    rows = []
    for c in names:
        cpu = statistics.median(per[c]["cpu"])
        rows.append({
            "contender": c, "model": CONTENDERS[c][0], "params": CONTENDERS[c][1],
            "epochs_timed": len(per[c]["wall"]), "median_wall_s": statistics.median(per[c]["wall"]),
            "median_cpu_s": cpu, "cpu_ratio_to_anchor": cpu / anchor_cpu,
            "score_wall_s": statistics.median(per[c]["score_wall"]),
            "score_cpu_s": statistics.median(per[c]["score_cpu"]),
            "last_epoch_loss": statistics.median(per[c]["loss"]),
        })
    return {
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_sgd.py "
                   + shlex.join(sys.argv[1:]),
        "data": {"n_users": shape[0], "n_items": shape[1], "nnz": int(train.matrix.nnz),
                 "checksum": train.checksum(), "generator": "bench_ials.synthetic(seed=0)"},
        "rounds": rounds, "epochs_per_fit": epochs, "anchor": ANCHOR,
        "load_average_start": list(load_start), "load_average_end": list(os.getloadavg()),
        "wall_seconds": time.time() - started, "cores": os.cpu_count(),
        "rows": rows, "runs": per, "only": only,
    }


def render(result: dict[str, Any]) -> str:
    d = result["data"]
    lines = [
        "# SGD models: seconds per epoch",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Data: {d['generator']}, {d['n_users']:,} x {d['n_items']:,}, {d['nnz']:,} pairs "
        f"(checksum `{d['checksum'][:16]}`); 1 thread everywhere; {result['rounds']} rounds x "
        f"{result['epochs_per_fit']} epochs per contender, order rotated; medians. Machine: "
        f"{result['cores']} cores shared with other work, load average at start "
        f"{[round(x, 1) for x in result['load_average_start']]}, end "
        f"{[round(x, 1) for x in result['load_average_end']]}; wall time "
        f"{result['wall_seconds']:.0f} s. *score s*: scoring all {d['n_users']:,} users once "
        "after the fit (SLIM BPR's pruning to top_k runs at the end of the fit and before each "
        "validation, in neither figure).",
        "",
        "| contender | s/epoch wall | s/epoch CPU | CPU ratio | score s wall | score s CPU | "
        "loss of the last epoch |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['contender']} | {r['median_wall_s']:.2f} | {r['median_cpu_s']:.2f} | "
            f"{r['cpu_ratio_to_anchor']:.2f}x | {r['score_wall_s']:.2f} | {r['score_cpu_s']:.2f} | "
            f"{r['last_epoch_loss']:.4f} |"
        )
    lines += ["", f"CPU ratios are against `{result['anchor']}` in the same run. Contenders "
              f"ending in `{BEFORE.strip()}` run MF BPR's earlier update, those ending in "
              f"`{BEFORE_FUNK.strip()}` FunkSVD's earlier epoch kernel (both files imported as "
              f"they were at commit {BEFORE_COMMIT}); each ended with factors identical to its "
              "twin's (checked).", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="small data, for a smoke run")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--stem", default="sgd", help="result file names: STEM.json, STEM.md")
    ap.add_argument("--only", help="regular expression: time only the matching contenders "
                    "(and the anchor)")
    args = ap.parse_args()
    shape = (600, 400, 20_000) if args.quick else (N_USERS, N_ITEMS, NNZ)
    result = run(args.rounds, args.epochs, shape, args.only)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / f"{args.stem}.json", result, indent=1)
    (args.out / f"{args.stem}.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
