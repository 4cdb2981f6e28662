"""cornac side of ``bench_models.py``: runs INSIDE the separate cornac environment.

Usage (normally called by ``bench_models.py``)::

    .bench-venvs/cornac/bin/python benchmarks/cornac_side.py --npz SPLIT.npz --model itemknn

Reads the split that ``bench_models.py`` wrote (``train_*`` / ``test_*`` CSR arrays and
``shape``), builds cornac's datasets with ``BaseMethod.from_splits`` (timed apart as
``prep_s``), fits one cornac model (``itemknn``: ``ItemKNN(k, similarity="cosine")``;
``ease``: ``EASE(lamb, posB=False)``, i.e. plain EASE^R without cornac's default clipping of
negative weights, so it is the same model as ours), and evaluates it with cornac's own
``ranking_eval`` (Recall at the given cut-offs, training items excluded, unknown items
excluded as cornac does by default). Prints one JSON line: timings, Recall@k and memory.

Memory: the process's peak resident size (``VmHWM``) is reset after the warm-up, so
``fit_peak_mb`` / ``eval_peak_mb`` are the peaks of the timed phases alone;
``rss_before_mb`` is the resident size just before the timed fit (data and cornac loaded).
Only numpy, scipy and cornac are imported here: recforge is not installed in that environment.
"""

from __future__ import annotations

import os
import sys

_THREADS = "2"
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = os.environ.get("BENCH_THREADS", _THREADS)

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

from procstats import reset_peak as _reset_peak  # noqa: E402
from procstats import status_mb as _status_mb  # noqa: E402


def _triples(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> list[Any]:
    users = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    return list(zip(users.tolist(), indices.tolist(), data.astype(float).tolist(), strict=True))


def _load(path: str, block: tuple[int, int] | None) -> tuple[list[Any], list[Any]]:
    """Train and test (user, item, rating) triples; ``block`` keeps users x items < it."""
    with np.load(path) as z:
        out = []
        for part in ("train", "test"):
            indptr, indices, data = (z[f"{part}_{a}"] for a in ("indptr", "indices", "data"))
            triples = _triples(indptr, indices, data)
            if block is not None:
                triples = [t for t in triples if t[0] < block[0] and t[1] < block[1]]
            out.append(triples)
    return out[0], out[1]


def _make_model(name: str, k: int, lamb: float, threads: int) -> Any:
    import cornac

    if name == "itemknn":
        return cornac.models.ItemKNN(
            k=k, similarity="cosine", num_threads=threads, verbose=False, seed=0
        )
    if name == "ease":
        return cornac.models.EASE(lamb=lamb, posB=False, verbose=False, seed=0)
    raise SystemExit(f"cornac_side.py: unknown --model {name!r} (use itemknn or ease)")


def _run(
    name: str, train: list[Any], test: list[Any], cutoffs: list[int], k: int, lamb: float,
    threads: int,
) -> dict[str, Any]:
    from cornac.eval_methods import BaseMethod, ranking_eval
    from cornac.metrics import Recall

    t0 = time.perf_counter()
    bm = BaseMethod.from_splits(
        train_data=train, test_data=test, exclude_unknowns=True, verbose=False, seed=0
    )
    prep = time.perf_counter() - t0
    model = _make_model(name, k, lamb, threads)
    metrics = [Recall(k=c) for c in cutoffs]
    gc.collect()
    out: dict[str, Any] = {"prep_s": prep, "rss_before_mb": _status_mb("VmRSS")}
    reset = _reset_peak()
    t0 = time.perf_counter()
    model.fit(bm.train_set)
    out["fit_s"] = time.perf_counter() - t0
    out["fit_peak_mb"] = _status_mb("VmHWM") if reset else float("nan")
    reset = _reset_peak()
    t0 = time.perf_counter()
    avg, _ = ranking_eval(
        model, metrics, bm.train_set, bm.test_set, exclude_unknowns=True, verbose=False
    )
    out["eval_s"] = time.perf_counter() - t0
    out["eval_peak_mb"] = _status_mb("VmHWM") if reset else float("nan")
    out["metrics"] = {f"RECALL@{c}": float(v) for c, v in zip(cutoffs, avg, strict=True)}
    out["n_eval_users"] = len(set(bm.test_set.uir_tuple[0].tolist()))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--npz", required=True, help="split written by bench_models.py")
    ap.add_argument("--model", required=True, choices=["itemknn", "ease"])
    ap.add_argument("--k", type=int, default=100, help="ItemKNN neighbours")
    ap.add_argument("--lamb", type=float, default=500.0, help="EASE L2 penalty")
    ap.add_argument("--cutoffs", default="20,30,40,50,60,70,80,90,100")
    ap.add_argument("--threads", type=int, default=int(_THREADS))
    ap.add_argument("--warmup-users", type=int, default=600, help="users in the warm-up fit")
    ap.add_argument("--warmup-items", type=int, default=600, help="items in the warm-up fit")
    a = ap.parse_args(argv)
    import cornac
    import scipy

    cutoffs = [int(c) for c in a.cutoffs.split(",")]
    # Untimed warm-up on a small block: first-call costs (imports, lazy init) stay out.
    t0 = time.perf_counter()
    w_train, w_test = _load(a.npz, (a.warmup_users, a.warmup_items))
    _run(a.model, w_train, w_test, cutoffs, a.k, a.lamb, a.threads)
    warmup = time.perf_counter() - t0
    del w_train, w_test
    train, test = _load(a.npz, None)
    out = _run(a.model, train, test, cutoffs, a.k, a.lamb, a.threads)
    out.update(
        warmup_s=warmup,
        maxrss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        versions={
            "cornac": cornac.__version__, "numpy": np.__version__, "scipy": scipy.__version__,
            "python": sys.version.split()[0],
        },
    )
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
