"""SLIM ElasticNet fit: the numba solver against today's per-item scikit-learn fits, same run.

    RECFORGE_DATA_MIRROR=../shared/data .venv/bin/python benchmarks/bench_slim.py \
        [--runs 3] [--anchor-runs 1] [--plain-runs 0] [--cases ml-1m,citeulike-a] [--threads 2]

Cases (issue 12 item 4 targets: CiteULike-a at topK 1000 under 60 s, ML-1M under 2 s, 2 cores):

- ``ml-1m``: the Table 7 training matrix of ``bench_models.py`` (ML-1M 5-star, per-user 80/20
  split seed 0, minus a 10 % per-user validation part seed 0; 6,040 x 3,706) at that
  benchmark's SLIM setting: top_k 100, l1_ratio 1e-3, alpha 1e-3.
- ``citeulike-a``: CMN's CiteULike-a train part (Table 2; 5,551 x 16,980, 199,435 pairs),
  top_k 1000, l1_ratio 1.45e-2, alpha 1e-3 (the paper's SLIM optimum on ML-20M; small
  penalties are the slow end of the search space: many non-zero coefficients).

Method: every fit is a fresh process (an untimed warm-up fit on a 300 x 300 block first, so
numba compilation and imports stay out of the timing), contenders alternate, ``--threads``
numba threads or loky worker processes. Wall and CPU seconds (the process plus its reaped
children: loky's workers are shut down before the count). Medians over the runs; ratios are
anchor / numba. The anchor (``solver="sklearn"``, today's implementation) is slow on
CiteULike-a, so it runs ``--anchor-runs`` times. ``--plain-runs`` adds a second anchor,
``numba-cd``: the same numba solver without the Anderson extrapolation (``slim.ANDERSON = 0``),
to measure what the extrapolation buys. Agreement: the first run of each solver saves
W and the parent compares them (max |dW|, relative Frobenius difference, kept-set overlap).
Load averages are recorded before and after every fit (the machine is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

RESULTS = Path(__file__).resolve().parent / "results"
CASES: dict[str, dict[str, Any]] = {
    "ml-1m": {"params": {"top_k": 100, "l1_ratio": 1e-3, "alpha": 1e-3}, "target_s": 2.0},
    "citeulike-a": {"params": {"top_k": 1000, "l1_ratio": 1.45e-2, "alpha": 1e-3},
                    "target_s": 60.0},
}
SOLVERS = ("numba", "numba-cd", "sklearn")  # numba-cd: the numba solver without extrapolation
WARMUP = 300


def load_case(case: str) -> tuple[Any, dict[str, Any]]:
    """The training Interactions of a case and its provenance (sizes, split fingerprint)."""
    from recforge.data.registry import load_dataset

    if case == "ml-1m":
        from recforge.data.splitting import carve_validation, per_user_holdout

        pairs = load_dataset("spectralcf-ml-1m", part="all")
        split = carve_validation(per_user_holdout(pairs, test_fraction=0.2, seed=0), 0.1,
                                 seed=0, mode="per_user")
        info: dict[str, Any] = {"dataset": "spectralcf-ml-1m (all 5-star pairs)",
                "split": "per_user_holdout 0.2 seed 0, carve_validation 0.1 per_user seed 0"}
    elif case == "citeulike-a":
        split = load_dataset("cmn-citeulike-a")
        info = {"dataset": "cmn-citeulike-a", "split": "predefined (train part)"}
    else:
        raise ValueError(f"unknown case {case!r}; choose from {sorted(CASES)}")
    train = split.train
    info |= {"shape": list(train.matrix.shape), "pairs": int(train.matrix.nnz),
             "split_fingerprint": split.fingerprint()}
    return train, info


def sample_columns(n_items: int, sample: int) -> np.ndarray:
    """The item columns a sampled anchor fits (seed 0, ascending); all when ``sample`` is 0."""
    if sample <= 0 or sample >= n_items:
        return np.arange(n_items)
    return np.sort(np.random.default_rng(0).choice(n_items, sample, replace=False))


class _SampledAnchor:
    """Today's sklearn path (``SLIMElasticNet._fit_sklearn``'s loky blocks) on some columns."""

    def __init__(self, params: dict[str, Any], cols: np.ndarray) -> None:
        self.params, self.cols = params, cols
        self.converged_ = self.n_iter_ = None

    def fit(self, train: Any) -> _SampledAnchor:
        from joblib import Parallel, delayed

        from recforge.models._matrices import binary_matrix
        from recforge.models.slim import SLIMElasticNet, _fit_block_worker

        checked = SLIMElasticNet(**self.params)._checked_params()
        x_csc = sp.csc_matrix(binary_matrix(train))
        x_csc.sort_indices()
        n, jobs = x_csc.shape[1], int(self.params["n_jobs"])
        blocks = np.array_split(self.cols, min(self.cols.size, 4 * jobs))
        parts = Parallel(n_jobs=jobs, backend="loky")(
            delayed(_fit_block_worker)(x_csc, blk, checked) for blk in blocks)
        rows, cols, vals = (np.concatenate([p[i] for p in parts]) for i in range(3))
        self.item_weights_ = sp.csr_matrix((vals, (rows, cols)), shape=(n, n))
        return self


def child(case: str, solver: str, threads: int, save: str | None, sample: int = 0) -> None:
    """One measured fit in this (fresh) process; prints one JSON line."""
    from recforge.data.interactions import Interactions
    from recforge.models import slim
    from recforge.models.slim import SLIMElasticNet

    train, _ = load_case(case)
    if solver == "numba-cd":
        slim.ANDERSON = 0  # this process only: plain coordinate descent
    params = {**CASES[case]["params"], "solver": solver.removesuffix("-cd"), "n_jobs": threads}
    block = sp.csr_matrix(train.matrix[:WARMUP, :WARMUP])
    SLIMElasticNet(**params).fit(Interactions(block))
    cols = sample_columns(train.matrix.shape[1], sample if solver == "sklearn" else 0)
    fitter: Any = (SLIMElasticNet(**params) if cols.size == train.matrix.shape[1]
                   else _SampledAnchor(params, cols))
    if solver == "sklearn":
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)  # workers restart inside the timed fit
    load_before = os.getloadavg()
    c0 = _cpu()
    t0 = time.perf_counter()
    model = fitter.fit(train)
    wall = time.perf_counter() - t0
    if solver == "sklearn":
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)  # so that their CPU time is counted
    cpu = _cpu() - c0
    w = model.item_weights_
    if save:
        sp.save_npz(save, w)
    out = {
        "wall_s": wall, "cpu_s": cpu, "nnz": int(w.nnz), "columns_fitted": int(cols.size),
        "load_before": list(load_before), "load_after": list(os.getloadavg()),
        "converged": None if model.converged_ is None else float(model.converged_.mean()),
        "sweeps_median": None if model.n_iter_ is None else float(np.median(model.n_iter_)),
        "sweeps_max": None if model.n_iter_ is None else int(model.n_iter_.max()),
    }
    print(json.dumps(out), flush=True)


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def _run_child(case: str, solver: str, threads: int, save: Path | None,
               sample: int = 0) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", case, solver, "--threads", str(threads),
           "--sample", str(sample)]
    if save is not None:
        cmd += ["--save", str(save)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
           "MKL_NUM_THREADS": "1"}
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{case}/{solver} fit failed:\n{done.stderr[-3000:]}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def summarise(case: str, info: dict[str, Any], runs: dict[str, list[dict[str, Any]]],
              tmp: Path, popularity: np.ndarray) -> dict[str, Any]:
    """A case's entry of the results: its runs, medians, ratios and W agreement so far."""
    # a sampled anchor's times are scaled to every column (its per-column cost is a sample)
    med = {s: {k: float(np.median([r[k] * r.get("scale", 1.0) for r in runs[s]]))
               for k in ("wall_s", "cpu_s")} for s in SOLVERS if runs[s]}
    saved = {s: tmp / f"{case}-{s}.npz" for s in SOLVERS}
    both = "numba" in med and "sklearn" in med
    plain = "numba" in med and "numba-cd" in med
    return {
        **info, "params": CASES[case]["params"], "target_wall_s": CASES[case]["target_s"],
        "runs": runs, "median": med,
        "ratio_anchor_over_numba": {k: med["sklearn"][k] / med["numba"][k]
                                    for k in ("wall_s", "cpu_s")} if both else None,
        "ratio_plain_over_numba": {k: med["numba-cd"][k] / med["numba"][k]
                                   for k in ("wall_s", "cpu_s")} if plain else None,
        "agreement": agreement(saved["numba"], saved["sklearn"], case, info["shape"][0],
                               popularity, runs["sklearn"][0]["columns_fitted"])
        if saved["numba"].exists() and saved["sklearn"].exists() else None,
        "agreement_plain": agreement(saved["numba"], saved["numba-cd"], case, info["shape"][0],
                                     popularity, 0)
        if saved["numba"].exists() and saved["numba-cd"].exists() else None,
    }


def agreement(a_path: Path, b_path: Path, case: str, n_users: int, popularity: np.ndarray,
              sample: int) -> dict[str, float]:
    """How close W (numba) is to W (sklearn): max |dW|, relative Frobenius, kept-set overlap,
    and the largest column difference in units of the solver tolerance.

    A solve that meets the gap ``tol * |y|^2`` lies within ``sqrt(2 * tol * |y|^2 / l2)`` of the
    optimum (l2-strong convexity), so two converged solves differ by at most twice that:
    ``max_gap_ball_ratio`` <= 1 means "identical within solver tolerance" (top-k pruning aside).
    Only the ``sample`` columns the anchor fitted are compared.
    """
    cols = sample_columns(popularity.size, sample)  # the anchor's columns
    a = sp.csc_matrix(sp.load_npz(a_path).tocsc()[:, cols], dtype=np.float64)
    b = sp.csc_matrix(sp.load_npz(b_path).tocsc()[:, cols], dtype=np.float64)
    popularity = popularity[cols]
    d = (a - b).tocsc()
    p = CASES[case]["params"]
    l2 = p["alpha"] * (1 - p["l1_ratio"]) * n_users
    col_norm = np.sqrt(np.asarray(d.multiply(d).sum(axis=0)).ravel())
    ball = 2 * np.sqrt(2 * 1e-4 * popularity / l2)  # tol = 1e-4, the default
    overlap = []
    for j in range(a.shape[1]):
        sa = set(a.indices[a.indptr[j]:a.indptr[j + 1]].tolist())
        sb = set(b.indices[b.indptr[j]:b.indptr[j + 1]].tolist())
        if sa or sb:
            overlap.append(len(sa & sb) / len(sa | sb))
    return {
        "max_abs_diff": float(abs(d).max()) if d.nnz else 0.0,
        "max_abs_coef": float(abs(b).max()) if b.nnz else 0.0,
        "rel_frobenius_diff": float(sp.linalg.norm(d) / sp.linalg.norm(b)) if b.nnz else 0.0,
        "kept_set_jaccard_mean": float(np.mean(overlap)) if overlap else 1.0,
        "kept_set_equal_fraction": float(np.mean(np.array(overlap) == 1.0)) if overlap else 1.0,
        "max_gap_ball_ratio": float(np.max(col_norm / np.maximum(ball, 1e-300))),
        "columns_compared": int(cols.size),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="fits of the numba solver per case")
    ap.add_argument("--anchor-runs", type=int, default=1, help="fits of the sklearn anchor")
    ap.add_argument("--plain-runs", type=int, default=0,
                    help="fits of the numba solver without Anderson extrapolation (0: none)")
    ap.add_argument("--cases", default="ml-1m,citeulike-a")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--child", nargs=2, metavar=("CASE", "SOLVER"), help=argparse.SUPPRESS)
    ap.add_argument("--sample", type=int, default=0,
                    help="fit only this many seeded random item columns in the sklearn anchor "
                    "and scale its times by n_items / sample (0: every column)")
    ap.add_argument("--save", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.threads, args.save, args.sample)
        return
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = sorted(set(cases) - set(CASES))
    if unknown or args.runs < 1 or args.anchor_runs < 1 or args.plain_runs < 0:
        ap.error(f"unknown case(s) {unknown}" if unknown else "--runs/--anchor-runs must be >= 1")
    out_json = RESULTS / "slim.json"
    report: dict[str, Any] = json.loads(out_json.read_text()) if out_json.exists() else {}
    report |= {
        "command": "python benchmarks/bench_slim.py " + " ".join(sys.argv[1:]),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version(),
                    "threads": args.threads},
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    report.setdefault("cases", {})
    with tempfile.TemporaryDirectory() as tmp:
        for case in cases:
            train, info = load_case(case)
            popularity = np.diff(sp.csc_matrix(train.matrix).indptr).astype(np.float64)
            runs: dict[str, list[dict[str, Any]]] = {s: [] for s in SOLVERS}
            counts = {"numba": args.runs, "numba-cd": args.plain_runs,
                      "sklearn": args.anchor_runs}
            for i in range(max(counts.values())):
                order = SOLVERS[i % 3:] + SOLVERS[:i % 3]  # rotated: no fixed neighbour
                for solver in order:
                    if len(runs[solver]) >= counts[solver]:
                        continue
                    save = Path(tmp) / f"{case}-{solver}.npz" if i == 0 else None
                    r = _run_child(case, solver, args.threads, save, args.sample)
                    r["scale"] = info["shape"][1] / r["columns_fitted"]
                    runs[solver].append(r)
                    print(f"{case} {solver} run {i + 1}: wall {r['wall_s']:.2f} s, "
                          f"cpu {r['cpu_s']:.2f} s, load {r['load_before'][0]:.1f}", flush=True)
                    # write what is finished after every fit (the anchor may take long)
                    report["cases"][case] = summarise(case, info, runs, Path(tmp), popularity)
                    report["cases"][case]["command"] = report["command"]
                    out_json.write_text(json.dumps(report, indent=1) + "\n")
                    (RESULTS / "slim.md").write_text(render(report))
    (RESULTS / "slim.md").write_text(render(report))
    print(f"wrote {out_json} and {RESULTS / 'slim.md'}")


def render(report: dict[str, Any]) -> str:
    """The Markdown table of ``results/slim.json``."""
    lines = [
        "# SLIM ElasticNet fit: numba solver vs today's per-item scikit-learn fits",
        "",
        f"Last: `{report['command']}` ({report['when']}, {report['machine']['cores']} cores, "
        f"{report['machine']['threads']} threads/processes per fit). Medians; fresh process per "
        "fit with an untimed warm-up; CPU = process + reaped children (loky workers); ratio = "
        "sklearn / numba. Load average = 1-minute value before each fit (min-max). A sampled "
        "anchor fits that many seeded random item columns; its times are scaled by "
        "n_items / sampled (per-column costs are a random sample of the full fit's).",
        "",
        "| case | items | solver | runs | wall s | CPU s | ratio wall | ratio CPU | target | "
        "load | converged | nnz |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |",
    ]
    for case, c in report["cases"].items():
        ratio = c["ratio_anchor_over_numba"]
        for s in SOLVERS:
            runs = c["runs"].get(s, [])
            if not runs:
                continue
            loads = [r["load_before"][0] for r in runs]
            conv = runs[0]["converged"]
            m = c["median"][s]
            fitted = runs[0].get("columns_fitted", c["shape"][1])
            if s == "numba-cd":
                rel = "1 | 1 | no extrapolation"
            elif s == "sklearn":
                rel = "1 | 1 | " + (f"sampled {fitted:,} columns, scaled" if fitted < c["shape"][1]
                                    else "")
            elif ratio is None:
                rel = f"n/a | n/a | {c['target_wall_s']:g} s"
            else:
                rel = f"{ratio['wall_s']:.1f}x | {ratio['cpu_s']:.1f}x | {c['target_wall_s']:g} s"
            lines.append(
                f"| {case} | {c['shape'][1]:,} | {s} | {len(runs)} | {m['wall_s']:.2f} "
                f"| {m['cpu_s']:.2f} | {rel} | {min(loads):.1f}-{max(loads):.1f} | "
                + ("n/a" if conv is None else f"{conv:.4f}") + f" | {runs[0]['nnz']:,} |"
            )
    for case, c in report["cases"].items():
        pr = c.get("ratio_plain_over_numba")
        if pr:
            lines += ["", f"Anderson extrapolation on {case}: numba-cd / numba = "
                      f"{pr['wall_s']:.2f}x wall, {pr['cpu_s']:.2f}x CPU (same run)."]
    lines += ["", "Agreement of W (numba vs sklearn, first run of each; numba vs numba-cd "
              "where run):", "",
              "| case | max abs dW | max abs W | rel. Frobenius dW | kept-set Jaccard (mean) | "
              "columns with equal kept set | max column dW / tolerance ball | columns compared |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for case, c in report["cases"].items():
        for label, a in ((case, c["agreement"]),
                         (f"{case} (numba vs numba-cd)", c.get("agreement_plain"))):
            if a is None:
                continue
            lines.append(f"| {label} | {a['max_abs_diff']:.2e} | {a['max_abs_coef']:.3f} | "
                         f"{a['rel_frobenius_diff']:.2e} | {a['kept_set_jaccard_mean']:.4f} | "
                         f"{a['kept_set_equal_fraction']:.4f} | {a['max_gap_ball_ratio']:.3f} | "
                         f"{a.get('columns_compared', c['shape'][1]):,} |")
    lines += ["", "Tolerance ball: a solve that meets sklearn's stop (duality gap <= tol |y|^2, "
              "tol 1e-4) lies within sqrt(2 tol |y|^2 / l2) of the unique optimum, so two such "
              "solves differ by at most twice that per column; a ratio <= 1 means the coefficients "
              "are identical within solver tolerance (pruning to top_k aside)."]
    lines += ["", "Cases:", ""]
    for case, c in report["cases"].items():
        lines.append(f"- `{case}` (`{c.get('command', report['command'])}`): {c['dataset']}, "
                     f"{c['split']}, {c['shape'][0]:,} x "
                     f"{c['shape'][1]:,}, {c['pairs']:,} pairs, split fingerprint "
                     f"`{c['split_fingerprint']}`; params {c['params']}.")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
