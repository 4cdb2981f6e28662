"""Neural-model benchmark: seconds per epoch, epochs to the best validation, whole fit time and
peak memory, ours side by side with RecBole on the same data, hyper-parameters and threads.

Run from the repository root::

    RECFORGE_DATA_MIRROR=../shared/data .venv/bin/python benchmarks/bench_neural.py \
        [--models MultVAE,...] [--max-epochs 100] [--runs 1] [--setup-recbole]

Writes ``benchmarks/results/neural.json`` (every run, medians, ratios) and ``neural.md``.

Data: ML-1M 5-star (6,040 x 3,706, 226,310 pairs), per-user 80/20 split and a 10 % per-user
validation part carved from train (seed 0), as ``bench_models.py`` writes it. Both sides train
on train minus validation and stop early on the validation part: every 5 epochs, patience 5
(RecBole: ``eval_step=5``, ``stopping_step=4``, because it stops after ``stopping_step + 1``
validations without improvement), at most ``--max-epochs`` epochs. Each side uses its own
metric code for stopping (RecBole's NDCG has the truncated ideal DCG), so the epochs to the best
validation are each library's own answer on the same data.

Per model (``MODELS`` below): the same architecture and optimiser settings on both sides, the
same torch / BLAS threads (``--threads``, default 2). Mult-VAE: both epochs are a pass over the
training *users* in minibatches of 500 rows (RecBole's autoencoder data loader), so the
epochs are alike; each library's epoch is timed in wall and CPU seconds (the CPU seconds are
the steadier figure on a shared machine), and besides seconds per epoch the table
gives seconds per optimiser step of the same shape: the like-for-like cost. NeuMF: 256-row
batches of one positive and 4 sampled negatives on both sides. SpectralCF: our epoch is one
batch of 1,024 users (the original's), RecBole's a pass over the training pairs in batches of
1,024; ours is run, validated and reported in passes of as many batches (RecBole's epoch).

Every measurement is a fresh subprocess (ours: this script with ``--worker``; RecBole:
``benchmarks/recbole_side.py`` inside ``.bench-venvs/recbole``). Peak memory is the process's
``VmHWM`` during the fit (reset after loading the data); ``added MB`` is that minus the resident
size before the fit. Sides interleaved per round, medians over rounds reported.
"""

from __future__ import annotations

import os

# torch / BLAS threads of both sides; --threads sets it for the worker processes too
THREADS = int(os.environ.get("BENCH_NEURAL_THREADS", "2"))
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
             "NUMBA_NUM_THREADS", "BENCH_NEURAL_THREADS"):
    os.environ[_var] = str(THREADS)

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

from bench_models import _interactions, _load_csr, write_split  # noqa: E402
from procstats import cpu_seconds, load_average, reset_peak, status_mb  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
RECBOLE_VENV = ROOT / ".bench-venvs" / "recbole"
RECBOLE_SIDE = ROOT / "benchmarks" / "recbole_side.py"
# recbole 1.2.1 still uses np.float_ (removed in numpy 2) and dok_matrix._update (removed in
# scipy 1.12, SpectralCF): its venv pins numpy < 2 and the pandas / scipy releases built for
# it; torch first so that recbole cannot pull another one.
RECBOLE_PINS = (["torch==2.13.0"], ["recbole==1.2.1"],
                ["numpy<2", "pandas<2.3", "scipy<1.12"])
VALIDATE_EVERY, PATIENCE = 5, 5


@dataclass(frozen=True)
class NeuralCase:
    """One neural model on both sides: our registry name + params, RecBole's name + config."""

    name: str
    ours: str
    ours_params: dict[str, Any]
    metric: tuple[str, int]
    recbole: str | None
    recbole_config: dict[str, Any] = field(default_factory=dict)
    batch_rows: int = 500
    #: rows per epoch: "users" (autoencoders) or "instances" (positives x (1 + negatives))
    epoch_rows: str = "users"
    negatives: int = 0
    #: our model's epoch is one minibatch (SpectralCF): ours is then run and reported in passes
    #: of ``ceil(train pairs / batch_rows)`` minibatches, RecBole's epoch for a pairwise model
    one_batch_epochs: bool = False


MODELS: dict[str, NeuralCase] = {
    # RecSys'19 Mult-VAE settings; RecBole's latent_dimension is mu and logvar together.
    "MultVAE": NeuralCase(
        name="Mult-VAE", ours="MultVAE",
        ours_params={"batch_size": 500, "hidden_dims": [600], "latent_dim": 200,
                     "dropout": 0.5, "lr": 1e-3, "anneal_cap": 0.2,
                     "total_anneal_steps": 200_000},
        metric=("NDCG", 100),
        recbole="MultiVAE",
        recbole_config={"mlp_hidden_size": [600], "latent_dimension": 400,
                        "dropout_prob": 0.5, "anneal_cap": 0.2, "total_anneal_steps": 200_000,
                        "learning_rate": 1e-3, "train_batch_size": 500,
                        "train_neg_sample_args": None},
    ),
    # NeuMF with the April 2019 settings, trained from scratch on both sides (RecBole's
    # pre-training reads checkpoint files, so the GMF/MLP stages are left out of the timing).
    "NeuMF": NeuralCase(
        name="NeuMF", ours="NeuMF",
        ours_params={"preset": "apr2019", "pretrain": False, "batch_size": 256,
                     "n_negatives": 4},
        metric=("NDCG", 10),
        recbole="NeuMF",
        recbole_config={"mf_embedding_size": 8, "mlp_embedding_size": 32,
                        "mlp_hidden_size": [32, 16, 8], "dropout_prob": 0.0,
                        "mf_train": True, "mlp_train": True, "use_pretrain": False,
                        "learning_rate": 1e-3, "train_batch_size": 256,
                        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 4}},
        batch_rows=256, epoch_rows="instances", negatives=4,
    ),
    # SpectralCF with the RecSys'19 settings and the sparse I + L propagation on both sides
    # (RecBole has only that one; the original's dense eigenvector matrix is ours by name).
    # Ours: one epoch = one batch of 1,024 users, as the original; RecBole: a pass over the
    # training pairs in batches of 1,024. Ours is timed in passes of as many batches.
    "SpectralCF": NeuralCase(
        name="SpectralCF", ours="SpectralCF",
        ours_params={"batch_size": 1024, "embedding_size": 16, "k": 3, "decay": 0.001,
                     "learning_rate": 0.001, "propagation": "sparse"},
        metric=("RECALL", 20),
        recbole="SpectralCF",
        recbole_config={"embedding_size": 16, "n_layers": 3, "reg_weight": 0.001,
                        "learning_rate": 0.001, "learner": "rmsprop",
                        "train_batch_size": 1024,
                        "train_neg_sample_args": {"distribution": "uniform", "sample_num": 1}},
        batch_rows=1024, epoch_rows="instances", one_batch_epochs=True,
    ),
}


# --------------------------------------------------------------------------- workers
def worker(case_name: str, npz: str, max_epochs: int) -> dict[str, Any]:
    """Our side, in this (fresh) process: fit with early stopping, report the record."""
    import numpy as np

    from recforge.data.split import Split
    from recforge.evaluation.validation import validation_callback
    from recforge.models import make_model
    from recforge.models.iterative import EarlyStopping

    case = MODELS[case_name]
    z = np.load(npz)
    split = Split(train=_interactions(_load_csr(z, "t7train")),
                  test=_interactions(_load_csr(z, "test")),
                  validation=_interactions(_load_csr(z, "t7val")), method="per_user_holdout")
    import torch

    from recforge.models import MODELS as REGISTRY

    if case.ours not in REGISTRY:
        raise SystemExit(f"{case.ours} is not registered in this checkout's recforge.models")
    rows = (int((np.diff(split.train.matrix.indptr) > 0).sum()) if case.epoch_rows == "users"
            else split.train.nnz * (1 + case.negatives))
    steps = math.ceil(rows / case.batch_rows)
    per_pass = steps if case.one_batch_epochs else 1  # our epochs in one reported epoch
    model = make_model(case.ours, **case.ours_params, n_threads=THREADS,
                       epochs=max_epochs * per_pass)
    epoch_cpu: list[float] = []
    train_epoch = model._train_epoch

    def timed_epoch(epoch: int) -> float | None:  # CPU seconds too: the machine is shared
        c0 = time.process_time()
        out = train_epoch(epoch)
        epoch_cpu.append(time.process_time() - c0)
        return out

    model._train_epoch = timed_epoch  # type: ignore[method-assign]
    callback = validation_callback(split, *case.metric)
    rss_before = status_mb("VmRSS")
    reset_peak()
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    model.fit(split.train, validation=callback,
              early_stopping=EarlyStopping(validate_every=VALIDATE_EVERY * per_pass,
                                           patience=PATIENCE))
    fit_seconds = time.perf_counter() - t0
    peak = status_mb("VmHWM")
    cpu = cpu_seconds() - cpu0
    history = [h.to_dict() for h in model.history_]
    seconds = [h["seconds"] for h in history]

    def passes(xs: list[float]) -> list[float]:
        return [sum(xs[i:i + per_pass]) for i in range(0, len(xs) - per_pass + 1, per_pass)]

    return {
        "library": "recforge",
        "version": __import__("recforge").__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "epoch_seconds": passes(seconds),
        "epoch_cpu_seconds": passes(epoch_cpu),
        "epochs_run": model.epochs_run_ / per_pass,
        "steps_per_epoch": steps,
        "validations": [(h["epoch"] / per_pass, h["validation"]) for h in history
                        if h["validation"] is not None],
        "best_validation": model.best_validation_,
        "epochs_best": model.epochs_best_ / per_pass,
        "fit_seconds": fit_seconds,
        "validation_seconds": sum(h["validation_seconds"] or 0.0 for h in history),
        "cpu_seconds": cpu,
        "peak_mb": peak,
        "added_mb": peak - rss_before,
    }


def _child(cmd: list[str], timeout: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["exit " + str(proc.returncode)],
                "wall_seconds": time.perf_counter() - t0}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["wall_seconds"] = time.perf_counter() - t0
    return dict(out)


def run_ours(case: str, npz: Path, max_epochs: int, timeout: int) -> dict[str, Any]:
    return _child([sys.executable, str(Path(__file__).resolve()), "--worker", case, str(npz),
                   "--max-epochs", str(max_epochs)], timeout)


def run_recbole(case: str, npz: Path, max_epochs: int, timeout: int) -> dict[str, Any]:
    c = MODELS[case]
    if c.recbole is None:
        return {"error": ["RecBole has no such model"]}
    python = RECBOLE_VENV / "bin" / "python"
    if not python.exists():
        return {"error": [f"no RecBole environment at {RECBOLE_VENV}; run with --setup-recbole"]}
    metric, k = c.metric
    cfg = {**c.recbole_config, "epochs": max_epochs, "eval_step": VALIDATE_EVERY,
           "stopping_step": PATIENCE - 1, "metrics": [metric.capitalize() if metric != "NDCG"
                                                       else "NDCG"],
           # RecBole's full-sort evaluation scores eval_batch_size // n_items users at a time:
           # 2,000,000 gives ~540 users per batch (its default 4,096 would be one user)
           "topk": [k], "valid_metric": f"{metric.lower()}@{k}", "eval_batch_size": 2_000_000,
           "threads": THREADS}
    return _child([str(python), str(RECBOLE_SIDE), str(npz), c.recbole, json.dumps(cfg)],
                  timeout)


def _set_threads(n: int) -> None:
    global THREADS
    THREADS = n
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                "NUMBA_NUM_THREADS", "BENCH_NEURAL_THREADS"):
        os.environ[var] = str(n)


def setup_recbole() -> None:
    subprocess.run([sys.executable, "-m", "venv", str(RECBOLE_VENV)], check=True)
    pip = [str(RECBOLE_VENV / "bin" / "pip"), "install", "-q"]
    for pins in RECBOLE_PINS:
        subprocess.run(pip + pins, check=True)


# --------------------------------------------------------------------------- summary
def _median(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    ok = [r for r in runs if "error" not in r]
    if not ok:
        return {"error": runs[0].get("error") if runs else ["not run"]}
    epoch = [statistics.median(r["epoch_seconds"]) for r in ok]
    epoch_cpu = [statistics.median(r["epoch_cpu_seconds"]) for r in ok
                 if r.get("epoch_cpu_seconds")]
    steps = ok[0]["steps_per_epoch"]
    return {
        "seconds_per_epoch": _median(epoch),
        "cpu_seconds_per_epoch": _median(epoch_cpu),
        "epochs_timed": _median([float(len(r["epoch_seconds"])) for r in ok]),
        "steps_per_epoch": steps,
        "seconds_per_step": _median([e / max(r["steps_per_epoch"], 1)
                                     for e, r in zip(epoch, ok, strict=True)]),
        "epochs_best": _median([float(r["epochs_best"]) for r in ok if r["epochs_best"]]),
        "validated": any(r["validations"] for r in ok),
        "epochs_run": _median([float(r["epochs_run"]) for r in ok]),
        "fit_seconds": _median([r["fit_seconds"] for r in ok]),
        "cpu_seconds": _median([r["cpu_seconds"] for r in ok]),
        "peak_mb": _median([r["peak_mb"] for r in ok]),
        "added_mb": _median([r["added_mb"] for r in ok]),
        "best_validation": _median([r["best_validation"] for r in ok]),
        "runs": len(ok),
    }


def _f(x: float | None, fmt: str) -> str:
    return "n/a" if x is None else format(x, fmt)


def render(result: dict[str, Any]) -> str:
    lines = [
        f"# Neural models vs RecBole (ML-1M 5-star, {result.get('threads', 2)} threads)",
        "",
        f"Machine: {result['machine']}.  ",
        f"Split: {result['split']['dataset']} per-user 80/20 + 10 % validation (seed 0), "
        f"train {result['split']['table7_train']:,} pairs, validation "
        f"{result['split']['table7_validation']:,}; validate every {VALIDATE_EVERY}, "
        f"patience {PATIENCE} (RecBole stopping_step {PATIENCE - 1}).",
        "",
    ]
    for name, sides in result["models"].items():
        run = sides.get("run", {})
        lines.append(f"- {name}: `{run.get('command')}` (max {run.get('max_epochs')} epochs "
                     f"ours, {run.get('recbole_max_epochs', run.get('max_epochs'))} RecBole; "
                     f"load average {run.get('load_before')} before, {run.get('load_after')} "
                     "after)")
    lines += [
        "",
        "| model | side | s / epoch | CPU s / epoch | steps / epoch | s / step | epochs to best "
        "| epochs run | fit s | fit CPU s | peak MB | added MB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, sides in result["models"].items():
        for side, s in sides.items():
            if side in ("ratios", "run"):
                continue
            if "error" in s:
                lines.append(f"| {name} | {side} | not measured: {' '.join(s['error'])} "
                             "| | | | | | | | | |")
                continue
            best = (_f(s["epochs_best"], ".0f") if s.get("validated", True)
                    else "not validated")
            lines.append(
                f"| {name} | {side} | {s['seconds_per_epoch']:.3f} "
                f"| {_f(s.get('cpu_seconds_per_epoch'), '.3f')} | {s['steps_per_epoch']} "
                f"| {s['seconds_per_step']:.4f} | {best} | {s['epochs_run']:.0f} "
                f"| {s['fit_seconds']:.1f} | {s['cpu_seconds']:.1f} | {s['peak_mb']:.0f} "
                f"| {s['added_mb']:.0f} |")
        r = sides.get("ratios")
        if r:
            lines.append(
                f"| {name} | ours / RecBole | {r['seconds_per_epoch']:.3f}x "
                f"| {_f(r.get('cpu_seconds_per_epoch'), '.3f')}x | "
                f"| {r['seconds_per_step']:.3f}x | | | {r['fit_seconds']:.3f}x "
                f"| {r['cpu_seconds']:.3f}x | {r['peak_mb']:.2f}x | |")
    lines += ["", "Target: ours at most 0.5x RecBole's seconds per epoch. Fit seconds and "
              "fit CPU seconds compare whole fits only when both sides ran the same number of "
              "epochs (see the caps above); epochs to best needs at least one validation "
              f"(every {VALIDATE_EVERY} epochs).", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--max-epochs", type=int, default=100)
    ap.add_argument("--recbole-max-epochs", type=int, default=None,
                    help="RecBole's epoch cap (default --max-epochs): its epochs are passes "
                    "over the interactions, many more steps than ours for Mult-VAE")
    ap.add_argument("--threads", type=int, default=THREADS)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--timeout", type=int, default=4 * 3600)
    ap.add_argument("--setup-recbole", action="store_true")
    ap.add_argument("--worker", nargs=2, metavar=("MODEL", "NPZ"))
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.worker:
        sys.stdout.write(json.dumps(worker(args.worker[0], args.worker[1], args.max_epochs))
                         + "\n")
        return
    if args.threads != THREADS:
        _set_threads(args.threads)
    rb_epochs = args.recbole_max_epochs or args.max_epochs
    if args.setup_recbole:
        setup_recbole()
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        ap.error(f"unknown model(s) {unknown}; known: {', '.join(MODELS)}")
    load_before = load_average()
    runs: dict[str, dict[str, list[dict[str, Any]]]] = {n: {"ours": [], "recbole": []}
                                                         for n in names}
    with tempfile.TemporaryDirectory() as tmp:
        npz = Path(tmp) / "split.npz"
        split_info = write_split(npz)
        for rnd in range(args.runs):
            for name in names:
                order = ("ours", "recbole") if rnd % 2 == 0 else ("recbole", "ours")
                for side in order:
                    fn = run_ours if side == "ours" else run_recbole
                    print(f"round {rnd + 1}/{args.runs}: {name} {side}", file=sys.stderr)
                    out = fn(name, npz, args.max_epochs if side == "ours" else rb_epochs,
                             args.timeout)
                    runs[name][side].append(out)
                    print(f"  -> {json.dumps({k: out.get(k) for k in ('epochs_best', 'epochs_run', 'fit_seconds', 'error')})}",  # noqa: E501
                          file=sys.stderr)
    models: dict[str, Any] = {}
    for name in names:
        ours, rb = summarise(runs[name]["ours"]), summarise(runs[name]["recbole"])
        entry: dict[str, Any] = {"ours": ours, "recbole": rb}
        if "error" not in ours and "error" not in rb:
            entry["ratios"] = {k: ours[k] / rb[k] for k in
                               ("seconds_per_epoch", "cpu_seconds_per_epoch",
                                "seconds_per_step", "fit_seconds", "cpu_seconds", "peak_mb")
                               if ours.get(k) is not None and rb.get(k)}
        models[MODELS[name].name] = entry
    command = ("RECFORGE_DATA_MIRROR=../shared/data .venv/bin/python "
               f"benchmarks/bench_neural.py --models {','.join(names)} "
               f"--max-epochs {args.max_epochs} --runs {args.runs}"
               + (f" --recbole-max-epochs {rb_epochs}" if rb_epochs != args.max_epochs else "")
               + (f" --threads {THREADS}" if THREADS != 2 else ""))
    run_info = {"command": command, "load_before": load_before, "load_after": load_average(),
                "max_epochs": args.max_epochs, "recbole_max_epochs": rb_epochs,
                "runs": args.runs, "threads": THREADS}
    # Models measured by separate invocations (different epoch caps) share one results file.
    path = args.out / "neural.json"
    result: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    if result.get("split", {}).get("table7_split_fingerprint") != split_info[
            "table7_split_fingerprint"]:
        result = {}
    result.update({
        "machine": f"{platform.machine()} {os.cpu_count()} cores, {THREADS} threads used",
        "threads": THREADS,
        "split": split_info,
    })
    for name in names:
        label = MODELS[name].name
        result.setdefault("models", {})[label] = {**models[label], "run": run_info}
        result.setdefault("runs", {})[label] = runs[name]
    args.out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    (args.out / "neural.md").write_text(render(result))
    print(render(result))


if __name__ == "__main__":
    main()
