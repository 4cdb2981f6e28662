"""The seven neural rows on a CUDA GPU, beside their committed CPU runs: seconds per epoch,
epochs to the best validation, whole fit, GPU memory and, for uncapped runs, the test metrics.

Run on a machine with a CUDA GPU, from the repository root, with the lab's dependencies and a
CUDA build of torch importable (``pip install -e '.[torch]'``, or ``PYTHONPATH=src``)::

    RECFORGE_DATA_MIRROR=../shared/data python benchmarks/bench_neural_gpu.py \\
        [--cases SpectralCF-sparse,Mult-VAE,...] [--budget 330] [--threads 8] [--out DIR]

Writes ``DIR/neural_gpu_cuda.json`` (``neural_gpu_cpu.json`` with ``--device cpu``: the CPU
anchor, the same cases and caps run on the processor) after every case, so a run cut short keeps
what it finished, and ``DIR/neural_gpu.md`` from both sides (default DIR: benchmarks/results).

Each case is the product's own command, ``recforge reproduce <table> ... --neural-param
<row>.device=cuda`` in a fresh process (the table's split and the paper's settings), run by
``bench_neural_own.run_row``. Cases run in the order given, each within its own limit and what
is left of ``--budget``; a case that cannot finish in what is left is reported as not run.
Whole fits that take minutes on a GPU run uncapped (SpectralCF, Mult-VAE at the 80-epoch cap of
its CPU record); the others run capped at a few epochs (``--max-epochs``, every pre-training
stage too) and are compared per epoch. The CPU side is the committed record of the row's full
run on the 2-core machine (``docs/results/<run>/best_configs.json``). GPU memory is the
device's used memory sampled by ``nvidia-smi`` while the case runs, less what was in use before
it (the CUDA context included). cuBLAS runs with ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` because
the torch base asks for deterministic kernels.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_neural_own import fmt_or_na, full_run, per_stage, run_row
from procstats import load_average

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"


@dataclass(frozen=True)
class GpuCase:
    """One neural row on the GPU: its reproduce arguments, epoch cap and committed CPU run."""

    args: tuple[str, ...]
    row: str
    cap: int | None  # --max-epochs; None runs the row as its CPU record ran
    record: str  # docs/results/<run> of the CPU run it is compared with
    limit: float  # seconds this case may take at most
    metric: str | None  # the headline metric to compare; None when the runs differ (a cap)


CASES: dict[str, GpuCase] = {
    # The README's main job: Table 7 with SpectralCF's CSR propagation, early stopping.
    "SpectralCF-sparse": GpuCase(
        ("table7", "--fixed", "--models", "RP3beta,SpectralCF",
         "--neural-param", "SpectralCF.propagation=sparse"),
        "SpectralCF", None, "docs/results/table7-fixed-spectralcf-sparse", 150, "RECALL@20"),
    # The CPU record ran at an 80-epoch cap; the same cap keeps the two comparable.
    "Mult-VAE": GpuCase(("multvae-ml1m", "--budget", "1", "--models", "Mult-VAE"),
                        "Mult-VAE", 80, "docs/results/multvae-ml1m-search15-cap80", 150,
                        "NDCG@100"),
    "CMN": GpuCase(("table2", "--fixed", "--models", "CMN"), "CMN", 3,
                   "docs/results/table2-fixed-cmn", 90, None),
    "MCRec": GpuCase(("table3", "--fixed", "--models", "MCRec"), "MCRec", 3,
                     "docs/results/table3-fixed-mcrec", 90, None),
    "NeuMF": GpuCase(("neumf-ml100k", "--budget", "1", "--models", "NeuMF"), "NeuMF", 3,
                     "docs/results/neumf-ml100k-search35", 90, None),
    "CVAE": GpuCase(("table4", "--fixed", "--models", "CollaborativeVAE"), "CollaborativeVAE",
                    3, "docs/results/table4-fixed-cvae-tags", 60, None),
    "CDL": GpuCase(("table5", "--fixed", "--models", "CollaborativeDL"), "CollaborativeDL", 3,
                   "docs/results/table5-fixed-cdl-tags", 60, None),
    # The paper's eigenvector propagation, all its epochs: 1 h 47 min on the CPU.
    "SpectralCF-eig": GpuCase(("table7", "--fixed", "--models", "SpectralCF"), "SpectralCF",
                              None, "docs/results/table7-fixed-spectralcf-eig", 300,
                              "RECALL@20"),
}


def _smi(*query: str) -> list[str]:
    out = subprocess.run(["nvidia-smi", f"--query-gpu={','.join(query)}",
                          "--format=csv,noheader,nounits"], capture_output=True, text=True,
                         timeout=30, check=True)
    return [v.strip() for v in out.stdout.strip().splitlines()[0].split(",")]


def gpu_info(device: str) -> dict[str, Any]:
    """The device as torch and nvidia-smi see it (``--device cpu``: the processor)."""
    import torch

    info = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda,
            "python": platform.python_version(), "cpu_cores": os.cpu_count()}
    if device == "cpu":
        return {**info, "name": platform.processor() or platform.machine(), "driver": "-",
                "memory_total_mib": 0.0}
    name, driver, total = _smi("name", "driver_version", "memory.total")
    return {**info, "name": name, "driver": driver, "memory_total_mib": float(total)}


class GpuMemory:
    """The device's peak used memory while a case runs, less what was used before it."""

    def __init__(self) -> None:
        self.before = float(_smi("memory.used")[0])
        self.peak = self.before

    def __call__(self, pid: int) -> None:
        # one missed sample lowers the peak a little; it must not stop the run
        with contextlib.suppress(subprocess.SubprocessError, ValueError, IndexError):
            self.peak = max(self.peak, float(_smi("memory.used")[0]))

    @property
    def added_mib(self) -> float:
        return self.peak - self.before


def run_case(case: GpuCase, *, device: str, threads: int, timeout: float) -> dict[str, Any]:
    """One case on ``device``, its figures beside the CPU record's."""
    args = [*case.args, "--neural-param", f"{case.row}.device={device}"]
    if case.cap is not None:
        args += ["--max-epochs", str(case.cap)]
    memory = GpuMemory() if device != "cpu" else None
    gpu = run_row(args, case.row, threads=threads, timeout=timeout,
                  env={"CUBLAS_WORKSPACE_CONFIG": ":4096:8"}, poll=memory, tail=25)
    gpu["gpu_added_mib"] = memory.added_mib if memory is not None else 0.0
    return {"cap": case.cap, "metric": case.metric, "gpu": gpu,
            "cpu": full_run(case.record, case.row)}


def _side(result: dict[str, Any] | None) -> str:
    if result is None:
        return "not run"
    g = result["gpu_info"]
    where = (f"{g['name']} ({g['memory_total_mib']:.0f} MiB, driver {g['driver']})"
             if g["device"] != "cpu" else f"CPU {g['name']}")
    return (f"{where}, torch {g['torch']} (CUDA {g['cuda']}), Python {g['python']}, "
            f"{g['cpu_cores']} cores, {result['threads']} CPU threads; last invocation: load "
            f"average {result['load_before']} before, {result['load_after']} after, "
            f"`{result['bench_command']}`")


def render(gpu: dict[str, Any], cpu: dict[str, Any] | None) -> str:
    """The GPU run beside the CPU anchor (same cases and caps) and the committed full runs."""
    lines = [
        "# Neural rows on a GPU beside the CPU",
        "",
        f"- GPU side: {_side(gpu)}",
        f"- CPU anchor (the same cases and caps with `--device cpu`): {_side(cpu)}",
        "",
        "s / epoch: median of the model's stage (pre-training stages in brackets). Capped "
        "cases ran a few epochs of every stage, so their fit is the cap's and their metric is "
        "not compared (-). GPU MiB: the device's peak used memory during the case, less before "
        "it (CUDA context included). Full CPU run: the committed record of the row's uncapped "
        "run on the 2-core machine (`docs/results/<run>`, another load).",
        "",
        "| case | cap | GPU s / epoch | CPU s / epoch | CPU / GPU | GPU fit s | CPU fit s | "
        "GPU epochs best / run | GPU MiB | metric: GPU / CPU | full CPU run: epochs best / "
        "run, fit |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, c in gpu["cases"].items():
        g = c["gpu"]
        a = ((cpu or {}).get("cases", {}).get(name) or {}).get("gpu") or {
            "error": ["not run"]}
        full = c["cpu"]
        cap = "-" if c["cap"] is None else str(c["cap"])
        if "error" in full:
            full_s = " ".join(full["error"])
        else:
            fit = (full["epoch_and_validation_seconds"] if full.get("resumed_from_epoch")
                   else full["fit_seconds"])
            full_s = f"{full['epochs_best']} / {full['epochs_run']}, {fit / 60:.1f} min"
        if "error" in g:
            why = g["error"][0] + (f": {g['error'][-1]}" if len(g["error"]) > 1 else "")
            lines.append(f"| {name} | {cap} | not run: {why.replace('|', '/')} | | | | | | | "
                         f"| {full_s} |")
            continue
        ok = "error" not in a
        gm, am = g["seconds_per_epoch"].get("main"), (
            a["seconds_per_epoch"].get("main") if ok else None)
        metric = c["metric"]
        m = (f"{metric} {fmt_or_na(g['metrics'].get(metric), '.4f')} / "
             f"{fmt_or_na(a['metrics'].get(metric) if ok else None, '.4f')}" if metric else "-")
        anchor = per_stage(a["seconds_per_epoch"], ".3f") if ok else "not run"
        lines.append(
            f"| {name} | {cap} | {per_stage(g['seconds_per_epoch'], '.3f')} | {anchor} | "
            f"{f'{am / gm:.1f}x' if am and gm else 'n/a'} | {g['fit_seconds']:.1f} | "
            f"{fmt_or_na(a['fit_seconds'] if ok else None, '.1f')} | {g['epochs_best']} / "
            f"{g['epochs_run']} ({g['stop_reason']}) | {g['gpu_added_mib']:.0f} | {m} | "
            f"{full_s} |")
    lines.append("")
    return "\n".join(lines)


def _write(out: Path, result: dict[str, Any]) -> None:
    """This side's results, and the report from whatever the two sides have so far."""
    device = result["gpu_info"]["device"]
    (out / f"neural_gpu_{'cpu' if device == 'cpu' else 'cuda'}.json").write_text(
        json.dumps(result, indent=1))
    sides = {k: json.loads((out / f"neural_gpu_{k}.json").read_text())
             for k in ("cuda", "cpu") if (out / f"neural_gpu_{k}.json").exists()}
    if "cuda" in sides:
        (out / "neural_gpu.md").write_text(render(sides["cuda"], sides.get("cpu")))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--budget", type=float, default=1800.0,
                    help="seconds for all cases together")
    ap.add_argument("--threads", type=int, default=8, help="CPU threads (evaluation, numba)")
    ap.add_argument("--device", default="cuda",
                    help="the neural rows' device: cuda, or cpu for the anchor run")
    ap.add_argument("--limit-scale", type=float, default=1.0,
                    help="multiply every case's own time limit (the CPU anchor needs ~10)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    names = [n for n in args.cases.split(",") if n]
    unknown = sorted(set(names) - set(CASES))
    if unknown:
        ap.error(f"unknown case(s) {unknown}; known: {', '.join(CASES)}")
    if args.threads < 1 or args.budget <= 0 or args.limit_scale <= 0:
        ap.error("--threads must be at least 1, --budget and --limit-scale positive")
    deadline = time.monotonic() + args.budget
    result: dict[str, Any] = {
        "gpu_info": gpu_info(args.device), "threads": args.threads, "cases": {},
        "bench_command": ("RECFORGE_DATA_MIRROR=../shared/data python "
                          f"benchmarks/bench_neural_gpu.py --cases {','.join(names)} "
                          f"--budget {args.budget:g} --threads {args.threads} "
                          f"--device {args.device}"
                          + (f" --limit-scale {args.limit_scale:g}"
                             if args.limit_scale != 1 else "")),
        "load_before": load_average(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    # Cases measured by separate invocations on one device share its results file.
    path = args.out / f"neural_gpu_{'cpu' if args.device == 'cpu' else 'cuda'}.json"
    if path.exists():
        kept = json.loads(path.read_text())
        if kept.get("gpu_info", {}).get("name") == result["gpu_info"]["name"]:
            result["cases"] = {k: v for k, v in kept["cases"].items() if k not in names}
    for name in names:
        case = CASES[name]
        left = deadline - time.monotonic()
        if left < 20:
            result["cases"][name] = {"cap": case.cap, "metric": case.metric,
                                     "gpu": {"error": [f"budget spent ({left:.0f} s left)"]},
                                     "cpu": full_run(case.record, case.row)}
        else:
            limit = min(case.limit * args.limit_scale, left)
            print(f"{name}: up to {limit:.0f} s", file=sys.stderr, flush=True)
            result["cases"][name] = run_case(case, device=args.device, threads=args.threads,
                                             timeout=limit)
            print(f"  -> {json.dumps(result['cases'][name]['gpu'])[:3000]}", file=sys.stderr,
                  flush=True)
        result["load_after"] = load_average()
        _write(args.out, result)  # after every case: an interruption loses only the current one
    print((args.out / "neural_gpu.md").read_text() if (args.out / "neural_gpu.md").exists()
          else json.dumps(result, indent=1)[:4000])


if __name__ == "__main__":
    main()
