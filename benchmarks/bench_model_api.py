"""Model API benchmark: what the template method, recommend and save/load cost on ML-1M.

Run from the repository root::

    RECFORGE_DATA_MIRROR=../shared/data .venv/bin/python benchmarks/bench_model_api.py [--runs 5]

Writes ``benchmarks/results/model_api.json`` (every run, medians, ratios) and ``model_api.md``.

Data: ML-1M 5-star (SpectralCF files, 6,040 x 3,706, 226,310 pairs), per-user random 80/20
split, seed 0; every model is fitted once on the train part. Measured per model, medians of
``--runs`` interleaved rounds (the 2-core machine is shared):

- ``score`` (public: input and output checks) against ``_score`` (the model's own code) on the
  same 1,024 users, 9 alternating pairs per round: the template method's overhead, as a ratio
  (anchor: ``_score``).
- ``recommend`` (external ids, seen items excluded, k=20) for all 6,040 users against the
  evaluator's full ranking of the same model on the test part (same scoring, masking and top-k,
  plus metrics at 20): ratio recommend / evaluate (anchor: the evaluator).
- ``save`` and ``load`` seconds and the bytes written; the loaded model's scores are checked
  to equal the original's exactly.

Threads: 2 for BLAS, OpenMP and numba (``n_threads=2`` where a model has it).
"""

from __future__ import annotations

import os

THREADS = 2
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ[_var] = str(THREADS)

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
DATASET = "spectralcf-ml-1m"
K = 20
SCORE_USERS = 1024
SCORE_REPEATS = 9  # alternating score/_score pairs per round

MODELS: list[tuple[str, str, dict[str, Any]]] = [
    ("TopPopular", "TopPopular", {}),
    ("ItemKNN CF cosine K=100", "ItemKNNCF", {"top_k": 100, "shrink": 0, "n_threads": THREADS}),
    ("RP3beta", "RP3beta", {"top_k": 100, "alpha": 1.0, "beta": 0.6, "n_threads": THREADS}),
    ("PureSVD 50", "PureSVD", {"num_factors": 50}),
    ("EASE l2=500", "EASE", {"l2_norm": 500.0, "n_threads": THREADS}),
    ("iALS 64f 15it", "IALS", {"factors": 64, "iterations": 15, "n_threads": THREADS}),
]


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from recforge.data.registry import load_dataset
    from recforge.data.splitting import per_user_holdout
    from recforge.evaluation import evaluate_split
    from recforge.models import load_model, make_model

    split = per_user_holdout(load_dataset(DATASET, part="all"), test_fraction=0.2, seed=0)
    train = split.train
    users_ext = train.user_ids
    batch = np.arange(min(SCORE_USERS, train.n_users))
    fitted = {}
    fit_seconds = {}
    for label, name, params in MODELS:
        model = make_model(name, **params).fit(train)
        model.recommend(users_ext[:50], k=K)  # warm-up: kernels and lazy imports
        evaluate_split(model, split, cutoffs=[K], metrics=["RECALL"])
        fitted[label], fit_seconds[label] = model, model.fit_seconds_
    runs: dict[str, dict[str, list[float]]] = {
        label: {"score": [], "_score": [], "recommend": [], "evaluate": [], "save": [], "load": []}
        for label in fitted
    }
    sizes: dict[str, int] = {}
    load_start = os.getloadavg()
    tmp = Path(tempfile.mkdtemp(prefix="bench-model-api-"))
    try:
        for rnd in range(args.runs):
            order = list(fitted)
            order = order[rnd % len(order) :] + order[: rnd % len(order)]
            for label in order:
                model, r = fitted[label], runs[label]
                for _ in range(SCORE_REPEATS):  # alternate: both see the same machine load
                    r["_score"].append(_timed(lambda m=model: m._score(batch)))
                    r["score"].append(_timed(lambda m=model: m.score(batch)))
                pair = [
                    ("recommend", lambda m=model: m.recommend(users_ext, k=K)),
                    ("evaluate",
                     lambda m=model: evaluate_split(m, split, cutoffs=[K], metrics=["RECALL"])),
                ]  # fmt: skip
                for key, fn in pair if rnd % 2 == 0 else pair[::-1]:  # no order bias
                    r[key].append(_timed(fn))
                out = tmp / f"{label.replace(' ', '_')}-{rnd}"
                r["save"].append(_timed(lambda m=model, o=out: m.save(o)))
                sizes[label] = _dir_bytes(out)
                t0 = time.perf_counter()
                loaded = load_model(out, data=train)
                r["load"].append(time.perf_counter() - t0)
                if not np.array_equal(loaded.score(batch), model.score(batch)):
                    raise AssertionError(f"{label}: loaded model scores differ")
                shutil.rmtree(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    rows = []
    for label, r in runs.items():
        med = {k: statistics.median(v) for k, v in r.items()}
        rows.append({
            "model": label,
            "fit_seconds": round(fit_seconds[label], 4),
            "medians_seconds": {k: round(v, 5) for k, v in med.items()},
            "score_overhead_ratio": round(med["score"] / med["_score"], 3),
            "recommend_over_evaluate": round(med["recommend"] / med["evaluate"], 3),
            "saved_bytes": sizes[label],
            "runs_seconds": {k: [round(x, 5) for x in v] for k, v in r.items()},
        })  # fmt: skip
    result = {
        "benchmark": "model_api",
        "command": "RECFORGE_DATA_MIRROR=../shared/data .venv/bin/python "
        f"benchmarks/bench_model_api.py --runs {args.runs}",
        "data": f"{DATASET} part=all, per_user_holdout(0.2, seed=0); train {train.shape}, "
        f"{train.nnz} pairs; recommend/evaluate over all {train.n_users} users, k={K}",
        "threads": THREADS,
        "runs": args.runs,
        "python": platform.python_version(),
        "load_avg_start": [round(x, 2) for x in load_start],
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
        "rows": rows,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "model_api.json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"# Model API on ML-1M (medians of {args.runs} runs, {THREADS} threads)",
        "",
        f"Load average {result['load_avg_start']} -> {result['load_avg_end']}. "
        f"Command: `{result['command']}`",
        "",
        "| model | fit s | score ms | _score ms | overhead | recommend s | evaluate s | "
        "rec/eval | save s | load s | MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        m = row["medians_seconds"]
        lines.append(
            f"| {row['model']} | {row['fit_seconds']:.3f} | {m['score'] * 1e3:.3f} "
            f"| {m['_score'] * 1e3:.3f} "
            f"| {row['score_overhead_ratio']:.2f}x | {m['recommend']:.3f} | {m['evaluate']:.3f} "
            f"| {row['recommend_over_evaluate']:.2f}x | {m['save']:.3f} | {m['load']:.3f} "
            f"| {row['saved_bytes'] / 2**20:.1f} |"
        )
    (RESULTS / "model_api.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
