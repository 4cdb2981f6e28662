"""Model benchmark: fit time, full-evaluation time and peak memory of the baselines on ML-1M.

Run from the repository root::

    RECFORGE_DATA_MIRROR=../shared/data .venv/bin/python benchmarks/bench_models.py \
        [--runs 5] [--slim-runs 3] [--setup-cornac]

Writes ``benchmarks/results/models.json`` (every run, medians, ratios) and ``models.md``.

Data: ML-1M 5-star (SpectralCF files, train + test, 6,040 x 3,706, 226,310 pairs), per-user
random 80/20 split, seed 0 (``per_user_holdout``). Two groups, both on that one split:

- ``table7``: our baselines at the paper's best Table 7 hyper-parameters (plus TopPopular,
  EASE, iALS, SLIM ElasticNet), trained on train minus a 10 % per-user validation part
  (``carve_validation``, seed 0), evaluated on test: full ranking, training items excluded,
  cut-offs 20..100 step 10, RECALL and MAP.
- ``anchors``: the same models in other libraries, trained on the whole 80 % train part:
  ItemKNN cosine (K=100) and iALS (64 factors, 15 iterations) against implicit (its own batch
  ``recommend(..., N=20, filter_already_liked_items=True)`` plus a vectorised Recall@20),
  ItemKNN and EASE (lambda 500) against cornac (its own ``ranking_eval``, Recall@20..100), run
  by ``benchmarks/cornac_side.py`` inside the separate environment ``.bench-venvs/cornac``.

Every measurement is one fresh subprocess: load the split from an .npz, run one untimed
warm-up fit + evaluation on the first 600 users (numba loads or compiles its kernels there;
the other libraries get the same warm-up), reset the peak resident size (``VmHWM`` via
``/proc/self/clear_refs``), then time the fit and the evaluation, reading the peak of each
phase. ``peak MB`` is the larger of the two: the whole process (interpreter, libraries, data)
at its highest during the timed work; ``added MB`` is that minus the resident size just
before the fit. SLIM's loky workers are other processes, so for SLIM the summed resident size
of the process tree is also sampled every 20 ms. Contenders are interleaved (one run of each,
in an order rotated every round) and medians are reported, since the 2-core machine is
shared. BLAS, OpenMP and numba use 2 threads on every side (environment variables,
threadpoolctl, implicit ``num_threads``, our ``n_threads`` / ``n_jobs``).
"""

from __future__ import annotations

import os

THREADS = 2
for _var in (
    "OPENBLAS_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
):
    os.environ[_var] = str(THREADS)

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402

from procstats import reset_peak as _reset_peak  # noqa: E402
from procstats import status_mb as _status_mb  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CORNAC_VENV = ROOT / ".bench-venvs" / "cornac"
CORNAC_PIN = "cornac==3.0.1"  # the release that installed here on Python 3.11 with numpy 2
CORNAC_SIDE = ROOT / "benchmarks" / "cornac_side.py"
DATASET = "spectralcf-ml-1m"
CUTOFFS = list(range(20, 101, 10))
METRICS = ("RECALL", "MAP")
WARMUP_USERS = 600  # the warm-up fit sees the first 600 users x 600 items
WARMUP_ITEMS = 600
EASE_L2 = 500.0


@dataclass(frozen=True)
class Contender:
    """One measured thing: a library, a model and the split part it trains on."""

    name: str
    side: str  # "recforge", "implicit" or "cornac"
    group: str  # "table7" or "anchors"
    model: str
    params: dict[str, Any] = field(default_factory=dict)
    paper_row: str | None = None  # row of PAPER_TABLES["table7"], for RECALL@20 / MAP@20
    multiprocess: bool = False  # spawns worker processes: sample the process tree's memory
    slow: bool = False  # measured only --slow-runs times (keeps the benchmark near 10 min)


def _table7_params() -> dict[str, dict[str, Any]]:
    from recforge.experiments.paper.numbers import PAPER_PARAMS

    return PAPER_PARAMS["table7"]


def contenders() -> list[Contender]:
    """Everything the benchmark measures, in the base order of a round."""
    t7 = _table7_params()
    knn = {"n_threads": THREADS}
    return [
        Contender("TopPopular", "recforge", "table7", "TopPopular", {}, "TopPop"),
        Contender("UserKNN CF", "recforge", "table7", "UserKNNCF",
                  {**t7["UserKNN CF"], **knn}, "UserKNN CF"),
        Contender("ItemKNN CF", "recforge", "table7", "ItemKNNCF",
                  {**t7["ItemKNN CF"], **knn}, "ItemKNN CF"),
        Contender("P3alpha", "recforge", "table7", "P3alpha", {**t7["P3alpha"], **knn}, "P3alpha"),
        Contender("RP3beta", "recforge", "table7", "RP3beta", {**t7["RP3beta"], **knn}, "RP3beta"),
        Contender("PureSVD", "recforge", "table7", "PureSVD", dict(t7["PureSVD"]), "PureSVD"),
        Contender("EASE", "recforge", "table7", "EASE", {"l2_norm": EASE_L2}),
        Contender("iALS", "recforge", "table7", "IALS",
                  {"factors": 64, "iterations": 15, "n_threads": THREADS}),
        Contender("SLIM ElasticNet", "recforge", "table7", "SLIMElasticNet",
                  {"top_k": 100, "l1_ratio": 1e-3, "alpha": 1e-3, "n_jobs": THREADS},
                  multiprocess=True, slow=True),
        # anchors: the same model on the same split in another library
        Contender("recforge ItemKNN cosine K=100", "recforge", "anchors", "ItemKNNCF",
                  {"similarity": "cosine", "top_k": 100, "shrink": 0, **knn}),
        Contender("implicit CosineRecommender K=100", "implicit", "anchors", "cosine",
                  {"K": 100, "num_threads": THREADS}),
        Contender("cornac ItemKNN cosine k=100", "cornac", "anchors", "itemknn", {"k": 100},
                  slow=True),
        Contender("recforge EASE l2=500", "recforge", "anchors", "EASE", {"l2_norm": EASE_L2}),
        Contender("cornac EASE lamb=500", "cornac", "anchors", "ease", {"lamb": EASE_L2}),
        Contender("recforge iALS 64f 15it", "recforge", "anchors", "IALS",
                  {"factors": 64, "iterations": 15, "n_threads": THREADS}),
        Contender("recforge iALS 64f 15it (numpy backend)", "recforge", "anchors", "IALS",
                  {"factors": 64, "iterations": 15, "n_threads": THREADS,
                   "use_implicit": False}, slow=True),
        Contender("implicit ALS 64f 15it", "implicit", "anchors", "als",
                  {"factors": 64, "iterations": 15, "num_threads": THREADS}),
    ]


# (label, ours, theirs): ratio = median(ours fit + eval) / median(theirs fit + eval)
RATIOS = [
    ("ItemKNN cosine K=100: recforge / implicit", "recforge ItemKNN cosine K=100",
     "implicit CosineRecommender K=100"),
    ("ItemKNN cosine K=100: recforge / cornac", "recforge ItemKNN cosine K=100",
     "cornac ItemKNN cosine k=100"),
    ("EASE lambda=500: recforge / cornac", "recforge EASE l2=500", "cornac EASE lamb=500"),
    ("iALS 64f 15it: recforge / implicit", "recforge iALS 64f 15it", "implicit ALS 64f 15it"),
    ("iALS 64f 15it: recforge numpy backend / implicit",
     "recforge iALS 64f 15it (numpy backend)", "implicit ALS 64f 15it"),
]


# --------------------------------------------------------------------------- memory helpers
def _tree_rss_mb(root: int) -> float:
    """Summed VmRSS of ``root`` and its descendants (scans /proc: no children files here)."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                stat = fh.read()
        except OSError:
            continue
        # field 4 (ppid) follows the parenthesised command name, which may hold spaces
        parent[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        kids = [c for c, pp in parent.items() if pp == p and c not in tree]
        tree.update(kids)
        frontier.extend(kids)
    return sum(_status_mb("VmRSS", str(p)) for p in tree)


class _TreeSampler:
    """Background sampler of the process tree's summed resident size (for multi-process fits)."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        pid = os.getpid()
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, _tree_rss_mb(pid))
            self._stop.wait(self.interval_s)

    def __enter__(self) -> _TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _measure(fit: Callable[[], Any], evaluate: Callable[[Any], dict[str, Any]],
             tree: bool) -> dict[str, Any]:
    """Time ``fit()`` then ``evaluate(fitted)``, with the peak resident size of each phase."""
    gc.collect()
    out: dict[str, Any] = {"rss_before_mb": _status_mb("VmRSS")}
    sampler = _TreeSampler() if tree else None
    if sampler is not None:
        sampler.__enter__()
    try:
        reset = _reset_peak()
        t0 = time.perf_counter()
        fitted = fit()
        out["fit_s"] = time.perf_counter() - t0
        out["fit_peak_mb"] = _status_mb("VmHWM") if reset else float("nan")
        reset = _reset_peak()
        t0 = time.perf_counter()
        out["metrics"] = evaluate(fitted)
        out["eval_s"] = time.perf_counter() - t0
        out["eval_peak_mb"] = _status_mb("VmHWM") if reset else float("nan")
    finally:
        if sampler is not None:
            sampler.__exit__()
            out["tree_peak_mb"] = sampler.peak_mb
    return out


# --------------------------------------------------------------------------- data
def _csr_parts(prefix: str, m: sp.csr_matrix) -> dict[str, np.ndarray]:
    m = sp.csr_matrix(m)
    m.sort_indices()
    return {
        f"{prefix}_indptr": m.indptr.astype(np.int64),
        f"{prefix}_indices": m.indices.astype(np.int32),
        f"{prefix}_data": m.data.astype(np.float32),
    }


def write_split(path: Path) -> dict[str, Any]:
    """Load ML-1M, split it (80/20, then 10 % validation) and save every part's CSR arrays."""
    from recforge.data.registry import load_dataset
    from recforge.data.splitting import carve_validation, per_user_holdout

    pairs = load_dataset(DATASET, part="all")
    split = per_user_holdout(pairs, test_fraction=0.2, seed=0)
    t7 = carve_validation(split, 0.1, seed=0, mode="per_user")
    assert t7.validation is not None
    arrays: dict[str, np.ndarray] = {"shape": np.array(pairs.shape, dtype=np.int64)}
    arrays |= _csr_parts("train", split.train.matrix)
    arrays |= _csr_parts("test", split.test.matrix)
    arrays |= _csr_parts("t7train", t7.train.matrix)
    arrays |= _csr_parts("t7val", t7.validation.matrix)
    np.savez(path, **arrays)  # type: ignore[arg-type]  # numpy stub: allow_pickle kw
    return {
        "dataset": DATASET,
        "shape": list(pairs.shape),
        "pairs": int(pairs.nnz),
        "train": int(split.train.nnz),
        "test": int(split.test.nnz),
        "table7_train": int(t7.train.nnz),
        "table7_validation": int(t7.validation.nnz),
        "test_users": int((split.test.user_counts() > 0).sum()),
        "split_fingerprint": split.fingerprint(),
        "table7_split_fingerprint": t7.fingerprint(),
    }


def _load_csr(z: Any, prefix: str, warmup: bool = False) -> sp.csr_matrix:
    """One stored part; ``warmup`` keeps only the first WARMUP_USERS x WARMUP_ITEMS block."""
    shape = tuple(int(s) for s in z["shape"])
    m = sp.csr_matrix(
        (z[f"{prefix}_data"], z[f"{prefix}_indices"], z[f"{prefix}_indptr"]), shape=shape
    )
    return sp.csr_matrix(m[:WARMUP_USERS, :WARMUP_ITEMS]) if warmup else m


def _interactions(m: sp.csr_matrix) -> Any:
    from recforge.data.interactions import Interactions

    users = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    return Interactions.from_arrays(users, m.indices, m.data, shape=m.shape)


def _recforge_split(z: Any, group: str, warmup: bool) -> Any:
    from recforge.data.split import Split

    train = "t7train" if group == "table7" else "train"
    val = _interactions(_load_csr(z, "t7val", warmup)) if group == "table7" else None
    return Split(
        train=_interactions(_load_csr(z, train, warmup)),
        test=_interactions(_load_csr(z, "test", warmup)),
        validation=val,
        method="per_user_holdout",
    )


# --------------------------------------------------------------------------- workers
def _recall_at(recs: np.ndarray, users: np.ndarray, test: sp.csr_matrix) -> float:
    """Mean Recall@N of the id lists ``recs`` (one row per user in ``users``; -1 = empty)."""
    rows = np.repeat(np.arange(users.size), recs.shape[1])
    cols = recs.ravel()
    keep = cols >= 0
    listed = sp.csr_matrix(
        (np.ones(int(keep.sum()), dtype=np.float32), (rows[keep], cols[keep])),
        shape=(users.size, test.shape[1]),
    )
    t = test[users]
    hits = np.asarray(listed.multiply(t).sum(axis=1)).ravel()
    return float(np.mean(hits / np.diff(t.indptr)))


def _recforge_once(c: Contender, z: Any, warmup: bool) -> dict[str, Any]:
    from recforge.evaluation import evaluate_split
    from recforge.models import make_model

    split = _recforge_split(z, c.group, warmup)

    def fit() -> Any:
        return make_model(c.model, **c.params).fit(split.train)

    def evaluate(model: Any) -> dict[str, Any]:
        res = evaluate_split(model, split, cutoffs=CUTOFFS, metrics=METRICS)
        return {k: float(v) for k, v in res.summary.items()}

    return _measure(fit, evaluate, c.multiprocess)


def _implicit_once(c: Contender, z: Any, warmup: bool) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    train = _load_csr(z, "train", warmup)
    test = _load_csr(z, "test", warmup)
    users = np.flatnonzero(np.diff(test.indptr)).astype(np.int32)
    if c.model == "als":
        from implicit.cpu.als import AlternatingLeastSquares

        # our IALS hands implicit the confidence 1 + alpha * r (alpha = 1): give it the same
        user_items = train.copy()
        user_items.data = np.full_like(user_items.data, 2.0)

        def make() -> Any:
            return AlternatingLeastSquares(**c.params, regularization=0.01, alpha=1.0,
                                           random_state=0)
    else:
        from implicit.nearest_neighbours import CosineRecommender

        user_items = train

        def make() -> Any:
            return CosineRecommender(**c.params)

    def fit() -> Any:
        model = make()
        model.fit(user_items, show_progress=False)
        return model

    def evaluate(model: Any) -> dict[str, Any]:
        ids, _ = model.recommend(users, user_items[users], N=20,
                                 filter_already_liked_items=True)
        return {"RECALL@20": _recall_at(np.asarray(ids), users, test)}

    with threadpool_limits(THREADS):
        return _measure(fit, evaluate, False)


def worker(name: str, npz: str) -> dict[str, Any]:
    """One measurement of contender ``name`` (runs in its own process)."""
    c = next((x for x in contenders() if x.name == name), None)
    if c is None:
        raise SystemExit(f"bench_models.py --worker: unknown contender {name!r}")
    once = _recforge_once if c.side == "recforge" else _implicit_once
    with np.load(npz) as f:
        z = {k: f[k] for k in f.files}
    t0 = time.perf_counter()
    once(c, z, True)  # untimed: numba kernels load/compile, lazy imports happen
    warmup = time.perf_counter() - t0
    out = once(c, z, False)
    out["warmup_s"] = warmup
    out["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _run_cornac(c: Contender, npz: Path, timeout: int) -> dict[str, Any]:
    py = CORNAC_VENV / "bin" / "python"
    cmd = [str(py), str(CORNAC_SIDE), "--npz", str(npz), "--model", c.model,
           "--threads", str(THREADS), "--warmup-users", str(WARMUP_USERS),
           "--warmup-items", str(WARMUP_ITEMS),
           "--cutoffs", ",".join(map(str, CUTOFFS))]
    if c.model == "itemknn":
        cmd += ["--k", str(c.params["k"])]
    else:
        cmd += ["--lamb", str(c.params["lamb"])]
    return _child(cmd, timeout)


def _child(cmd: list[str], timeout: int) -> dict[str, Any]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if proc.returncode != 0:
        tail = proc.stderr.strip().splitlines()[-3:] if proc.stderr else ["no stderr"]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}
    try:
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (IndexError, json.JSONDecodeError):
        return {"error": f"no JSON result on stdout: {proc.stdout[-300:]!r}"}


# --------------------------------------------------------------------------- cornac env
def cornac_python() -> Path | None:
    py = CORNAC_VENV / "bin" / "python"
    return py if py.exists() else None


def setup_cornac() -> str:
    """Create ``.bench-venvs/cornac`` and install cornac into it; return what happened."""
    if cornac_python() is None:
        subprocess.run([sys.executable, "-m", "venv", str(CORNAC_VENV)], check=True)
    py = str(CORNAC_VENV / "bin" / "python")
    proc = subprocess.run([py, "-m", "pip", "install", "-q", CORNAC_PIN],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return f"pip install {CORNAC_PIN} failed: {proc.stderr.strip()[-500:]}"
    return f"installed {CORNAC_PIN} into {CORNAC_VENV.relative_to(ROOT)}"


def cornac_status() -> tuple[bool, str]:
    py = cornac_python()
    if py is None:
        return False, (f"no cornac environment at {CORNAC_VENV.relative_to(ROOT)} "
                       "(create it with --setup-cornac)")
    proc = subprocess.run([str(py), "-c", "import cornac; print(cornac.__version__)"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        return False, "cornac does not import: " + proc.stderr.strip()[-300:]
    return True, f"cornac {proc.stdout.strip()}"


# --------------------------------------------------------------------------- summary
def _median(xs: list[float]) -> float:
    return float(statistics.median(xs)) if xs else float("nan")


def _peak(r: dict[str, Any]) -> float:
    return float(max(r.get("fit_peak_mb", 0.0), r.get("eval_peak_mb", 0.0),
                     r.get("tree_peak_mb", 0.0)))


def summarise(c: Contender, runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    s: dict[str, Any] = {"name": c.name, "side": c.side, "group": c.group, "model": c.model,
                         "params": c.params, "runs_ok": len(ok), "runs_failed": len(runs) - len(ok)}
    if not ok:
        s["error"] = runs[-1]["error"] if runs else "not run"
        return s
    s["fit_s"] = _median([r["fit_s"] for r in ok])
    s["eval_s"] = _median([r["eval_s"] for r in ok])
    s["total_s"] = _median([r["fit_s"] + r["eval_s"] for r in ok])
    s["total_min_s"] = min(r["fit_s"] + r["eval_s"] for r in ok)
    s["total_max_s"] = max(r["fit_s"] + r["eval_s"] for r in ok)
    s["peak_mb"] = _median([_peak(r) for r in ok])
    s["added_mb"] = _median([_peak(r) - r["rss_before_mb"] for r in ok])
    s["rss_before_mb"] = _median([r["rss_before_mb"] for r in ok])
    s["metrics"] = ok[-1]["metrics"]
    if "prep_s" in ok[0]:
        s["prep_s"] = _median([r["prep_s"] for r in ok])
    if c.paper_row is not None:
        from recforge.experiments.paper.numbers import PAPER_TABLES

        row = PAPER_TABLES["table7"][c.paper_row]
        s["paper"] = {"RECALL@20": row["RECALL@20"], "MAP@20": row["MAP@20"]}
    return s


def ratios(summary: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for label, ours, theirs in RATIOS:
        a, b = summary.get(ours, {}), summary.get(theirs, {})
        entry: dict[str, Any] = {"label": label, "ours": ours, "theirs": theirs}
        if "total_s" in a and "total_s" in b:
            entry.update(
                total=a["total_s"] / b["total_s"],
                total_min=a["total_min_s"] / b["total_min_s"],
                fit=a["fit_s"] / b["fit_s"],
                eval=a["eval_s"] / b["eval_s"],
                peak_mb=a["peak_mb"] / b["peak_mb"],
                added_mb=a["added_mb"] / b["added_mb"],
            )
        else:
            entry["error"] = a.get("error") or b.get("error") or "missing"
        out.append(entry)
    return out


def _machine() -> dict[str, Any]:
    import implicit
    import numba
    import scipy

    cpu = "unknown"
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "numba": numba.__version__,
        "implicit": implicit.__version__,
        "threads": THREADS,
    }


def _fmt(x: Any, spec: str) -> str:
    return format(x, spec) if isinstance(x, int | float) else "n/a"


def write_markdown(report: dict[str, Any], path: Path) -> None:
    m = report["machine"]
    lines = [
        "# Model benchmark",
        "",
        f"Command: `{report['command']}`",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['mem_gb']} GB; Python {m['python']}, "
        f"numpy {m['numpy']}, scipy {m['scipy']}, numba {m['numba']}, implicit "
        f"{m['implicit']}; {report['cornac']}. {m['threads']} BLAS/OpenMP/numba threads on "
        f"every side. Load average at start {report['load_avg_start']}, end "
        f"{report['load_avg_end']} (machine shared with other work: expect noise). Wall time "
        f"{report['wall_s']:.0f} s.",
        "",
        f"Data: ML-1M 5-star ({report['data']['shape'][0]:,} x {report['data']['shape'][1]:,}, "
        f"{report['data']['pairs']:,} pairs), per-user random 80/20 split seed 0 "
        f"({report['data']['train']:,} train / {report['data']['test']:,} test pairs, "
        f"{report['data']['test_users']:,} test users). Full ranking, training items excluded.",
        "",
        "Each number is the median over the runs (`runs` column); every run is a fresh process "
        "with an untimed warm-up fit + evaluation on 600 users first (numba kernel loading, "
        "lazy imports); contenders interleaved, order rotated each round. *peak MB*: highest "
        "resident size of the process during the timed fit or evaluation (includes interpreter, "
        "libraries and data); *added MB*: that minus the resident size just before the fit. "
        "SLIM: process tree (loky workers) sampled every 20 ms.",
        "",
        "## Baselines at the paper's best Table 7 hyper-parameters",
        "",
        "Trained on train minus a 10 % per-user validation part (seed 0), evaluated on test: "
        "cut-offs 20..100 step 10, RECALL and MAP (18 numbers per user). EASE: l2_norm = 500 "
        "(not searched); iALS: 64 factors, 15 iterations, defaults otherwise (runs implicit's "
        "CG solver inside); SLIM: top_k 100, l1_ratio 1e-3, alpha 1e-3, 2 loky jobs.",
        "",
        "| model | runs | fit s | eval s | fit+eval s | peak MB | added MB | RECALL@20 | "
        "MAP@20 | paper RECALL@20 | paper MAP@20 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    summary = report["summary"]
    for s in summary.values():
        if s["group"] != "table7":
            continue
        if "error" in s:
            lines.append(f"| {s['name']} | 0 | {s['error']} | | | | | | | | |")
            continue
        p = s.get("paper", {})
        lines.append(
            f"| {s['name']} | {s['runs_ok']} | {s['fit_s']:.3f} | {s['eval_s']:.3f} | "
            f"{s['total_s']:.3f} | {s['peak_mb']:.0f} | {s['added_mb']:.0f} | "
            f"{s['metrics']['RECALL@20']:.4f} | {s['metrics']['MAP@20']:.4f} | "
            f"{_fmt(p.get('RECALL@20'), '.4f')} | {_fmt(p.get('MAP@20'), '.4f')} |"
        )
    lines += [
        "",
        "## Anchors: the same models in implicit and cornac, same split, same run",
        "",
        "Trained on the whole 80 % train part. recforge: fit + `evaluate_split` (RECALL and MAP "
        "at 9 cut-offs, full ranking). implicit: fit + its batch `recommend(userids, "
        "user_items[userids], N=20, filter_already_liked_items=True)` for every test user + "
        "Recall@20 from the lists; the ALS matrix holds the confidence 1 + alpha r = 2, which is "
        "what our IALS gives implicit's solver. cornac: fit + `ranking_eval` (Recall@20..100, "
        "its per-user loop; unknown test items dropped as cornac does, so its Recall "
        "denominators differ slightly); building cornac's datasets is not timed (`prep s`). "
        "cornac EASE with `posB=False` (no clipping of negative weights, i.e. the same model "
        "as ours; cornac's default clips).",
        "",
        "RECALL@20 differs between libraries because the models differ, not the splits: "
        "implicit's CosineRecommender prunes each *liked* item's row of the similarity to its K "
        "best (scores sum those rows), ours keeps the K best neighbours of each *target* item "
        "(the paper's code); cornac's ItemKNN predicts a similarity-weighted *average* of the "
        "user's ratings over the k nearest rated neighbours, which on binary data is ~1 for "
        "most items, so its ranking is mostly ties. iALS runs the same solver on both sides.",
        "",
        "| contender | runs | fit s | eval s | fit+eval s | min / max fit+eval s | peak MB | "
        "added MB | RECALL@20 |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for s in summary.values():
        if s["group"] != "anchors":
            continue
        if "error" in s:
            lines.append(f"| {s['name']} | 0 | not measured: {s['error']} | | | | | | |")
            continue
        extra = f" (prep {s['prep_s']:.2f} s)" if "prep_s" in s else ""
        lines.append(
            f"| {s['name']}{extra} | {s['runs_ok']} | {s['fit_s']:.3f} | {s['eval_s']:.3f} | "
            f"{s['total_s']:.3f} | {s['total_min_s']:.3f} / {s['total_max_s']:.3f} | "
            f"{s['peak_mb']:.0f} | "
            f"{s['added_mb']:.0f} | {s['metrics']['RECALL@20']:.4f} |"
        )
    lines += [
        "",
        "## Ratios (ours / theirs; < 1 means recforge is faster or smaller)",
        "",
        "Ratios of medians, plus the ratio of the fastest runs (`best fit+eval`), which the "
        "machine's load disturbs least.",
        "",
        "| comparison | fit+eval | best fit+eval | fit | eval | peak MB | added MB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in report["ratios"]:
        if "error" in r:
            lines.append(f"| {r['label']} | {r['error']} | | | | | |")
        else:
            lines.append(f"| {r['label']} | {r['total']:.2f} | {r['total_min']:.2f} | "
                         f"{r['fit']:.2f} | {r['eval']:.2f} | {r['peak_mb']:.2f} | "
                         f"{r['added_mb']:.2f} |")
    target = report.get("target")
    if target:
        lines += ["", f"Target (ItemKNN fit + full evaluation at least as fast as the fastest "
                      f"other library): {target}"]
    if report.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {n}" for n in report["notes"]]
    path.write_text("\n".join(lines) + "\n")


def _target(summary: dict[str, dict[str, Any]]) -> str:
    ours = summary.get("recforge ItemKNN cosine K=100", {})
    others = [summary.get(n, {}) for n in
              ("implicit CosineRecommender K=100", "cornac ItemKNN cosine k=100")]
    others = [o for o in others if "total_s" in o]
    if "total_s" not in ours or not others:
        return "not decided (a side is missing)"
    best = min(others, key=lambda o: o["total_s"])
    met = ours["total_s"] <= best["total_s"]
    return (f"{'met' if met else 'NOT met'}: recforge {ours['total_s']:.3f} s vs fastest other "
            f"({best['name']}) {best['total_s']:.3f} s")


# --------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Baseline fit/evaluation time and memory on ML-1M.")
    ap.add_argument("--runs", type=int, default=5, help="runs per contender (median reported)")
    ap.add_argument("--slow-runs", type=int, default=3,
                    help="runs for the slow contenders (SLIM, cornac ItemKNN, numpy iALS)")
    ap.add_argument("--setup-cornac", action="store_true",
                    help=f"create {CORNAC_VENV.relative_to(ROOT)} and pip install {CORNAC_PIN}")
    ap.add_argument("--only", default="", help="comma-separated contender names (default: all)")
    ap.add_argument("--out", default=str(RESULTS), help="folder for models.json / models.md")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per measurement process")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--npz", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.worker, a.npz)))
        return 0
    if a.runs < 1 or a.slow_runs < 0:
        raise SystemExit("--runs must be >= 1 and --slow-runs >= 0")
    start = time.perf_counter()
    notes: list[str] = []
    if a.setup_cornac:
        msg = setup_cornac()
        print(msg, file=sys.stderr)
        notes.append(f"--setup-cornac: {msg}")
    has_cornac, cornac_msg = cornac_status()
    chosen = contenders()
    if a.only:
        names = {n.strip() for n in a.only.split(",")}
        unknown = names - {c.name for c in chosen}
        if unknown:
            raise SystemExit(f"--only: unknown contenders {sorted(unknown)}")
        chosen = [c for c in chosen if c.name in names]
    load_start = os.getloadavg()
    results: dict[str, list[dict[str, Any]]] = {c.name: [] for c in chosen}
    with tempfile.TemporaryDirectory(prefix="bench_models_") as tmp:
        npz = Path(tmp) / "split.npz"
        data = write_split(npz)
        for rnd in range(max(a.runs, a.slow_runs)):
            k = rnd % len(chosen)
            for c in chosen[k:] + chosen[:k]:  # rotate so no contender always follows another
                wanted = a.slow_runs if c.slow else a.runs
                if rnd >= wanted:
                    continue
                if c.side == "cornac":
                    if not has_cornac:
                        results[c.name].append({"error": cornac_msg})
                        continue
                    r = _run_cornac(c, npz, a.timeout)
                else:
                    r = _child([sys.executable, __file__, "--worker", c.name, "--npz", str(npz)],
                               a.timeout)
                r["round"] = rnd
                results[c.name].append(r)
                shown = r.get("error") or f"fit {r['fit_s']:.3f} s eval {r['eval_s']:.3f} s"
                print(f"[{rnd}] {c.name}: {shown}", file=sys.stderr, flush=True)
    summary = {c.name: summarise(c, results[c.name]) for c in chosen}
    before = {
        side: _median([s["rss_before_mb"] for s in summary.values()
                       if s["side"] == side and "rss_before_mb" in s])
        for side in ("recforge", "implicit", "cornac")
    }
    notes.append(
        "Resident size before the timed fit (medians): "
        + ", ".join(f"{k} {v:.0f} MB" for k, v in before.items() if v == v)
        + ". Most of recforge's is import footprint (recforge.data imports pandas, "
        "recforge.evaluation imports numba and scipy.stats), so *added MB* is the fairer "
        "memory comparison of the models and evaluators themselves."
    )
    slow = [c.name for c in chosen if c.slow]
    if slow and a.slow_runs != a.runs:
        notes.append(f"{a.slow_runs} runs instead of {a.runs} for the slow contenders "
                     f"({', '.join(slow)}) to keep the benchmark near 10 minutes.")
    cversions = next((r["versions"] for rs in results.values() for r in rs if "versions" in r),
                     None)
    if cversions:
        cornac_msg = (f"cornac {cversions['cornac']} in its own venv (Python "
                      f"{cversions['python']}, numpy {cversions['numpy']}, scipy "
                      f"{cversions['scipy']})")
    report = {
        "command": "RECFORGE_DATA_MIRROR=../shared/data .venv/bin/python "
                   "benchmarks/bench_models.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": _machine(),
        "cornac": cornac_msg if has_cornac else f"cornac not measured: {cornac_msg}",
        "load_avg_start": [round(x, 2) for x in load_start],
        "load_avg_end": [round(x, 2) for x in os.getloadavg()],
        "wall_s": time.perf_counter() - start,
        "data": data,
        "cutoffs": CUTOFFS,
        "metrics": list(METRICS),
        "summary": summary,
        "ratios": ratios(summary),
        "target": _target(summary),
        "notes": notes,
        "runs": results,
    }
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "models.json").write_text(json.dumps(report, indent=1, default=float) + "\n")
    write_markdown(report, out / "models.md")
    print(f"wrote {out / 'models.json'} and {out / 'models.md'} in {report['wall_s']:.0f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
