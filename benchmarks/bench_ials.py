"""iALS solver benchmark: seconds per epoch of the exact and the conjugate-gradient solvers.

Run from the repository root::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ials.py [--rounds 3] [--epochs 3]

Writes ``benchmarks/results/ials.json`` (every epoch, medians, ratios) and ``ials.md``.

Data: synthetic at ML-1M size (no full ML-1M ratings file is available here): 6,040 users x
3,706 items, 1,000,209 distinct pairs (ML-1M's counts), users' activity log-normal and items'
popularity Zipf-like, drawn with ``numpy.random.default_rng(0)``; binary, as iALS trains.

Contenders, all ``recforge.models.ials.IALS`` with the same hyper-parameters (``--factors``,
default 50; regularization 0.01; log confidence, alpha 2, epsilon 0.5) and ``n_threads=1``:

- ``numba exact`` (anchor): our Cholesky solve per row (``solver="cholesky"``,
  ``use_implicit=False``, the numba kernel in ``models/_ials_numba.py``);
- ``implicit exact``: implicit's CPU solver with ``use_cg=False``;
- ``numpy CG``: our block-vectorised conjugate gradient (3 steps per row);
- ``implicit CG``: implicit's CPU conjugate gradient (3 steps per row).

Method: one untimed warm-up fit of every contender on a small matrix (numba loads its cached
kernel, implicit its extension); then ``--rounds`` rounds, each fitting every contender for
``--epochs`` epochs on the full matrix in an order rotated each round; per epoch the wall and
the process CPU seconds of ``_train_epoch`` are recorded (one thread, so CPU seconds are the
less noisy figure on a shared machine). Medians over all epochs of all rounds; ratios against
the anchor in the same run. The objective after the last epoch (``IALS.training_loss``) shows
what CG's three steps give up against the exact solve (implicit initialises its own factors,
so its objectives differ slightly at equal solver).
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("NUMBA_NUM_THREADS", "1")

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge._json import write_json
from recforge.data.interactions import Interactions
from recforge.models.ials import IALS

RESULTS = Path(__file__).resolve().parent / "results"
N_USERS, N_ITEMS, NNZ = 6040, 3706, 1_000_209
CONTENDERS: dict[str, dict[str, Any]] = {
    "numba exact": {"solver": "cholesky", "use_implicit": False},
    "implicit exact": {"solver": "cholesky", "use_implicit": True},
    "numpy CG": {"solver": "cg", "use_implicit": False},
    "implicit CG": {"solver": "cg", "use_implicit": True},
}
ANCHOR = "numba exact"


def synthetic(n_users: int, n_items: int, nnz: int, seed: int = 0) -> sp.csr_matrix:
    """Binary users x items with ``nnz`` distinct pairs (log-normal activity, Zipf popularity)."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 1.0, n_users)
    popularity = 1.0 / (np.arange(n_items) + 10.0)
    rng.shuffle(popularity)
    pu, pi = activity / activity.sum(), popularity / popularity.sum()
    keys = np.zeros(0, dtype=np.int64)
    while keys.size < nnz:
        draw = 2 * (nnz - keys.size)
        u = rng.choice(n_users, size=draw, p=pu)
        i = rng.choice(n_items, size=draw, p=pi)
        keys = np.unique(np.concatenate([keys, u.astype(np.int64) * n_items + i]))
    keys = rng.choice(keys, size=nnz, replace=False)
    m = sp.csr_matrix((np.ones(nnz, np.float32), (keys // n_items, keys % n_items)),
                      shape=(n_users, n_items))
    m.sort_indices()
    return m


def _model(params: dict[str, Any], factors: int, epochs: int) -> IALS:
    return IALS(factors=factors, regularization=0.01, confidence="log", alpha=2.0, epsilon=0.5,
                iterations=epochs, n_threads=1, cg_steps=3, seed=0, **params)


def fit_timed(train: Interactions, params: dict[str, Any], factors: int,
              epochs: int) -> tuple[IALS, list[float], list[float]]:
    """Fit and return an IALS contender with each epoch's wall and CPU seconds."""
    model = _model(params, factors, epochs)
    walls, cpus = timed_fit(model, train)
    return model, walls, cpus


def timed_fit(model: Any, train: Interactions) -> tuple[list[float], list[float]]:
    """Fit an iterative ``model`` on ``train``; each epoch's wall and process CPU seconds."""
    walls: list[float] = []
    cpus: list[float] = []
    inner = model._train_epoch

    def timed(epoch: int) -> float | None:
        w0, c0 = time.perf_counter(), time.process_time()
        out = inner(epoch)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
        return out

    model._train_epoch = timed
    model.fit(train)
    return walls, cpus


def run(rounds: int, epochs: int, factors: int, shape: tuple[int, int, int]) -> dict[str, Any]:
    started = time.time()
    load_start = os.getloadavg()
    train = Interactions(synthetic(*shape))
    warm = Interactions(synthetic(300, 200, 6000, seed=1))
    for params in CONTENDERS.values():
        fit_timed(warm, params, factors, 1)
    per: dict[str, dict[str, Any]] = {
        name: {"wall": [], "cpu": [], "objective": [], "backend": None} for name in CONTENDERS
    }
    names = list(CONTENDERS)
    for r in range(rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            model, walls, cpus = fit_timed(train, CONTENDERS[name], factors, epochs)
            per[name]["wall"] += walls
            per[name]["cpu"] += cpus
            per[name]["objective"].append(model.training_loss(train))
            per[name]["backend"] = model.backend_
            print(f"round {r + 1}/{rounds} {name}: {statistics.median(walls):.2f} s/epoch wall, "
                  f"{statistics.median(cpus):.2f} CPU", flush=True)
    anchor_wall = statistics.median(per[ANCHOR]["wall"])
    anchor_cpu = statistics.median(per[ANCHOR]["cpu"])
    rows = []
    for name in names:
        wall = statistics.median(per[name]["wall"])
        cpu = statistics.median(per[name]["cpu"])
        rows.append({
            "contender": name, "backend": per[name]["backend"], **CONTENDERS[name],
            "epochs_timed": len(per[name]["wall"]), "median_wall_s": wall, "median_cpu_s": cpu,
            "min_wall_s": min(per[name]["wall"]), "max_wall_s": max(per[name]["wall"]),
            "wall_ratio_to_anchor": wall / anchor_wall, "cpu_ratio_to_anchor": cpu / anchor_cpu,
            "objective_median": statistics.median(per[name]["objective"]),
        })
    versions = {"python": platform.python_version(), "numpy": np.__version__}
    for lib in ("numba", "implicit", "scipy"):
        try:
            versions[lib] = __import__(lib).__version__
        except ImportError:
            versions[lib] = "not installed"
    return {
        "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ials.py "
                   + " ".join(sys.argv[1:]),
        "data": {"n_users": shape[0], "n_items": shape[1], "nnz": int(train.matrix.nnz),
                 "checksum": train.checksum(), "generator": "synthetic(seed=0)"},
        "params": {"factors": factors, "regularization": 0.01, "confidence": "log",
                   "alpha": 2.0, "epsilon": 0.5, "cg_steps": 3, "n_threads": 1},
        "rounds": rounds, "epochs_per_fit": epochs, "anchor": ANCHOR,
        "load_average_start": list(load_start), "load_average_end": list(os.getloadavg()),
        "wall_seconds": time.time() - started, "versions": versions,
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "rows": rows, "runs": per,
    }


def render(result: dict[str, Any]) -> str:
    d, p = result["data"], result["params"]
    lines = [
        "# iALS solver benchmark",
        "",
        f"Command: `{result['command']}`",
        "",
        f"Data: synthetic ({d['generator']}), {d['n_users']:,} x {d['n_items']:,}, {d['nnz']:,} "
        f"pairs (checksum `{d['checksum'][:16]}`). IALS factors {p['factors']}, "
        f"regularization {p['regularization']}, log confidence (alpha {p['alpha']}, epsilon "
        f"{p['epsilon']}), CG {p['cg_steps']} steps, 1 thread everywhere. "
        f"{result['rounds']} rounds x {result['epochs_per_fit']} epochs per contender, order "
        f"rotated each round; medians over all timed epochs. Machine: {result['cores']} cores "
        f"shared with other work, load average at start "
        f"{[round(x, 1) for x in result['load_average_start']]}, end "
        f"{[round(x, 1) for x in result['load_average_end']]}; wall time "
        f"{result['wall_seconds']:.0f} s. Versions: "
        + ", ".join(f"{k} {v}" for k, v in result["versions"].items()) + ".",
        "",
        "| contender | backend | s/epoch wall | s/epoch CPU | min / max wall | wall ratio | "
        "CPU ratio | objective after the fit |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["rows"]:
        lines.append(
            f"| {r['contender']} | {r['backend']} | {r['median_wall_s']:.2f} | "
            f"{r['median_cpu_s']:.2f} | {r['min_wall_s']:.2f} / {r['max_wall_s']:.2f} | "
            f"{r['wall_ratio_to_anchor']:.2f}x | {r['cpu_ratio_to_anchor']:.2f}x | "
            f"{r['objective_median']:.6g} |"
        )
    lines += ["", f"Ratios are against `{result['anchor']}` in the same run.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--factors", type=int, default=50)
    ap.add_argument("--quick", action="store_true", help="small data, for a smoke run")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    shape = (600, 400, 20_000) if args.quick else (N_USERS, N_ITEMS, NNZ)
    result = run(args.rounds, args.epochs, args.factors, shape)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "ials.json", result, indent=1)
    (args.out / "ials.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
