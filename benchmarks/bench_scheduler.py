"""Benchmark the level-1 scheduler: admission throughput and the cost of one scheduling pass.

Workload (seeded): 5 clusters of different sizes, 10 groups with a quota on every cluster (half
of them with a lending limit, half with a borrowing limit), 50 queues (5 per group, two priority
levels, random weights), and 10,000 gang jobs submitted at t=0 (1-8 replicas, 0.5-8 cores,
0.5-16 GiB and sometimes GPUs per replica, random run times). The simulation admits what fits,
then repeatedly advances to the next job end, reports every job that ended (``on_finished``:
quota released) and runs one pass, until every job has finished. Preemption is on (the
default): as the service does, each victim is evicted and requeued after a backoff that grows
with each of its preemptions (60 s, doubling, at most 1 h: a RetryPolicy), and runs again from
the start when it is admitted again. Only ``schedule`` calls are timed for pass
statistics; ``submit`` is timed separately. Every replica counts one pod, as in the platform.

Run:  python benchmarks/bench_scheduler.py [--jobs 10000] [--runs 5] [--seed 0]
Writes benchmarks/results/scheduler.json and scheduler.md (medians over the runs).
``--profile-only N`` instead profiles one run of the first N jobs (cProfile on CPU time) and
writes benchmarks/results/scheduler-profile.md (where a pass spends its time).
"""

from __future__ import annotations

import argparse
import cProfile
import heapq
import io
import json
import os
import platform
import pstats
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from recforge.platform.model.config import parse_platform_config
from recforge.platform.model.specs import JobSpec, RetryPolicy
from recforge.platform.scheduling import AgingPolicy, Scheduler

RESULTS = Path(__file__).resolve().parent / "results"
# A preempted job waits PREEMPTED_BACKOFF.delay(n) before it queues again after its n-th
# preemption (the service uses the job's own retry policy the same way).
PREEMPTED_BACKOFF = RetryPolicy(backoff_seconds=60, backoff_factor=2, max_backoff=3600)

# Published figures (other hardware, other scope) quoted in /work/shared/docs/platform-notes.md.
PUBLISHED = [
    ("Ray placement groups (release benchmark)", 18.9, "placement groups/s"),
    ("Slurm batch jobs (sustained)", 500.0, "jobs/s"),
    ("YuniKorn at 2,000 nodes (API-server bound)", 427.0, "pods/s"),
    ("Volcano (vendor claim)", 1000.0, "pods/s"),
]


def make_config(rng: random.Random, scale: int = 1) -> dict[str, Any]:
    clusters: list[dict[str, Any]] = []
    sizes = [(512, 32), (1024, 0), (768, 16), (256, 64), (2048, 8)]
    for i, (cpu, gpu) in enumerate((c * scale, g * scale) for c, g in sizes):
        clusters.append(
            {
                "name": f"c{i}",
                "type": "ray" if i % 2 else "local",
                # Pods as on nodes of 64 cores with Kubernetes' default 110 pods each (left
                # out, a cluster would default to one node's 110 pods, whatever its cores).
                "capacity": {"cpu": cpu, "memory": f"{cpu * 4}Gi", "gpu": gpu,
                             "pods": cpu * 110 // 64},
            }
        )
    groups = []
    for g in range(10):
        quotas = []
        for c in clusters:
            cap: dict[str, Any] = c["capacity"]
            nominal = {"cpu": cap["cpu"] / 10, "memory": cap["cpu"] * 4 * 1024 // 10}
            nominal["gpu"] = cap["gpu"] // 10
            q: dict[str, Any] = {"cluster": c["name"], "nominal": nominal}
            if g % 2 == 0:
                q["lending_limit"] = {
                    k: v / 2 if k == "cpu" else v // 2 for k, v in nominal.items()
                }
            else:
                q["borrowing_limit"] = {k: v * 3 for k, v in nominal.items()}
            quotas.append(q)
        groups.append({"name": f"g{g}", "quotas": quotas})
    queues = [
        {
            "name": f"q{g}-{k}",
            "group": f"g{g}",
            "weight": rng.choice([1, 1, 2, 4]),
            "priority": 1 if k == 0 else 0,
        }
        for g in range(10)
        for k in range(5)
    ]
    return {"clusters": clusters, "groups": groups, "queues": queues}


def make_jobs(rng: random.Random, n: int) -> list[tuple[str, JobSpec, float]]:
    jobs = []
    for i in range(n):
        workers = rng.choice([0, 0, 1, 3, 7])
        cpu = rng.choice([0.5, 1, 2, 4, 8])
        mem = rng.choice([512, 1024, 4096, 16384])
        gpu = rng.choice([0, 0, 0, 1, 2])
        specs: list[dict[str, Any]] = [{"role": "master", "resources": {"cpu": 1, "memory": 1024}}]
        if workers:
            specs.append(
                {
                    "role": "worker",
                    "replicas": workers,
                    "resources": {"cpu": cpu, "memory": mem, "gpu": gpu},
                }
            )
        else:
            specs[0]["resources"] = {"cpu": cpu, "memory": mem, "gpu": gpu}
        spec = JobSpec.model_validate(
            {
                "name": f"job-{i}",
                "command": ["true"],
                "queue": f"q{rng.randrange(10)}-{rng.randrange(5)}",
                "replica_specs": specs,
                "priority": rng.choice([0, 0, 0, 5]),
            }
        )
        runtime = rng.uniform(60, 3600)
        jobs.append((f"j{i}", spec, runtime))
    return jobs


def percentile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    k = min(len(s) - 1, max(0, round(q * (len(s) - 1))))
    return s[k]


MAX_WAIT_S = 4 * 3600  # the waiting bound (aging policy of the run)


def run_once(cfg: dict[str, Any], jobs: list[tuple[str, JobSpec, float]]) -> dict[str, Any]:
    sched = Scheduler(
        parse_platform_config(cfg, source="bench"),
        aging=AgingPolicy(aging_seconds=1800, max_wait_seconds=MAX_WAIT_S),
    )
    runtime = {jid: rt for jid, _, rt in jobs}
    t0 = time.perf_counter()
    for jid, spec, _ in jobs:
        sched.submit(jid, spec, now=0.0)
    submit_s = time.perf_counter() - t0

    ends: list[tuple[float, str]] = []
    end_of: dict[str, float] = {}  # the current end of each running job (evictions move it)
    pass_times: list[float] = []
    pass_cpu: list[float] = []  # CPU time of this process: robust to other load on the machine
    admitted = 0
    preempted = 0
    preemptions_of: dict[str, int] = {}
    starving_runs: set[str] = set()  # running jobs admitted while starving (they may borrow)
    preempted_starving = 0
    finished: set[str] = set()
    waits: list[float] = []
    now = 0.0
    while True:
        t, c = time.perf_counter(), time.thread_time()
        out = sched.schedule(now)
        plans = sched.take_preemptions()
        pass_cpu.append(time.thread_time() - c)
        pass_times.append(time.perf_counter() - t)
        for a in out:
            end_of[a.job_id] = now + runtime[a.job_id]
            heapq.heappush(ends, (end_of[a.job_id], a.job_id))
            waits.append(a.waited_seconds)
            if a.waited_seconds >= MAX_WAIT_S:
                starving_runs.add(a.job_id)
            else:
                starving_runs.discard(a.job_id)
        admitted += len(out)
        # As the service does: stop the victims and requeue them after a backoff (their run
        # starts over when they are admitted again).
        for p in plans:
            end_of.pop(p.victim, None)
            if p.victim in starving_runs:
                starving_runs.discard(p.victim)
                preempted_starving += 1
            n = preemptions_of[p.victim] = preemptions_of.get(p.victim, 0) + 1
            sched.evict(p.victim, now, not_before=now + PREEMPTED_BACKOFF.delay(n))
            preempted += 1
        if len(finished) == len(jobs):
            break
        later = [t for t in (ends[0][0] if ends else None, sched.next_event_time())
                 if t is not None]  # fmt: skip
        if not later:
            break
        now = max(now, min(later))
        while ends and ends[0][0] <= now:
            end, jid = heapq.heappop(ends)
            if end_of.get(jid) == end:  # not a run that was preempted meanwhile
                del end_of[jid]
                sched.on_finished(jid, now)
                finished.add(jid)
    # Cost of a pass with no event (what the service loop pays on an idle tick).
    t = time.perf_counter()
    for _ in range(1000):
        sched.schedule(now)
    idle_us = (time.perf_counter() - t) / 1000 * 1e6
    total_pass = sum(pass_times)
    return {
        "admitted": admitted,
        "finished": len(finished),
        "preempted": preempted,
        "jobs_preempted": len(preemptions_of),
        "preempted_after_starving_admission": preempted_starving,
        "max_preemptions_of_a_job": max(preemptions_of.values(), default=0),
        "held_for_lenders": sched.stats.held_for_lenders,
        "blocked_windows": sched.stats.blocked_windows,
        "passes": len(pass_times),
        "submit_per_s": len(jobs) / submit_s,
        "admissions_per_s": admitted / total_pass,
        "fit_checks_per_s": sched.stats.tries / total_pass,
        "fit_checks": sched.stats.tries,
        "pass_ms_p50": percentile(pass_times, 0.5) * 1e3,
        "pass_ms_p99": percentile(pass_times, 0.99) * 1e3,
        "pass_ms_max": max(pass_times) * 1e3,
        "cpu_admissions_per_s": admitted / sum(pass_cpu),
        "cpu_pass_ms_p50": percentile(pass_cpu, 0.5) * 1e3,
        "cpu_pass_ms_p99": percentile(pass_cpu, 0.99) * 1e3,
        "first_pass_ms": pass_times[0] * 1e3,
        "idle_pass_us": idle_us,
        "simulated_makespan_h": now / 3600,
        "max_wait_h": max(waits) / 3600,
    }


def run_burst(cfg: dict[str, Any], jobs: list[tuple[str, JobSpec, float]]) -> dict[str, Any]:
    """Every job fits at once (capacity x200): the cost of deciding a large batch in one pass."""
    sched = Scheduler(parse_platform_config(cfg, source="bench-burst"))
    for jid, spec, _ in jobs:
        sched.submit(jid, spec, now=0.0)
    t, c = time.perf_counter(), time.thread_time()
    out = sched.schedule(0.0)
    cpu = time.thread_time() - c
    elapsed = time.perf_counter() - t
    return {
        "burst_admitted": len(out),
        "burst_pass_s": elapsed,
        "burst_per_s": len(out) / elapsed,
        "burst_cpu_per_s": len(out) / cpu,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--profile-only", type=int, default=0, metavar="N")
    args = ap.parse_args(argv)

    rng = random.Random(args.seed)
    cfg = make_config(rng)
    burst_cfg = make_config(random.Random(args.seed), scale=200)
    jobs = make_jobs(rng, args.jobs)
    if args.profile_only:
        return profile(cfg, jobs[: args.profile_only], args.out)
    runs = []
    for r in range(args.runs):
        load = os.getloadavg()[0]  # the machine is shared: CPU-time figures are the robust ones
        res = run_once(cfg, jobs)
        res["load_average_1min_before"] = round(load, 2)
        res.update(run_burst(burst_cfg, jobs))
        runs.append(res)
        print(
            f"run {r + 1}/{args.runs}: {res['admissions_per_s']:.0f} admissions/s, "
            f"pass p50 {res['pass_ms_p50']:.3f} ms p99 {res['pass_ms_p99']:.3f} ms, "
            f"{res['passes']} passes; burst {res['burst_per_s']:.0f} admissions/s",
            file=sys.stderr,
        )
    keys = [k for k, v in runs[0].items() if isinstance(v, int | float)]
    median = {k: statistics.median(r[k] for r in runs) for k in keys}
    result = {
        "benchmark": "level-1 scheduler (pure logic, in-process)",
        "workload": {
            "jobs": args.jobs,
            "queues": len(cfg["queues"]),
            "groups": len(cfg["groups"]),
            "clusters": len(cfg["clusters"]),
            "seed": args.seed,
            "runs": args.runs,
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
        },
        "median": median,
        "runs": runs,
        "published": [{"system": s, "value": v, "unit": u} for s, v, u in PUBLISHED],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "scheduler.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out / "scheduler.md").write_text(render_md(result))
    return result


def profile(cfg: dict[str, Any], jobs: list[tuple[str, JobSpec, float]], out: Path) -> dict:
    """One run under cProfile (CPU-time clock: robust to other load); top functions by own
    time go to scheduler-profile.md."""
    prof = cProfile.Profile(time.process_time)
    load = os.getloadavg()[0]
    prof.enable()
    res = run_once(cfg, jobs)
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf)
    stats.sort_stats("tottime").print_stats(25)
    table = "\n".join(
        line.replace(str(Path(__file__).resolve().parents[1]) + "/", "")
        for line in buf.getvalue().splitlines()
        if line.strip() and not line.startswith(("   Ordered", "   List reduced"))
    )
    keys = ["admitted", "preempted", "preempted_after_starving_admission", "passes",
            "fit_checks", "blocked_windows", "held_for_lenders"]  # fmt: skip
    text = (
        "# Scheduler profile (cProfile, CPU time, one run)\n\n"
        f"Workload: the first {len(jobs):,} jobs of bench_scheduler's workload (seed as given); "
        f"1-minute load average before: {load:.1f}. "
        + ", ".join(f"{k} {res[k]:,}" for k in keys)
        + ". Profiling slows every call, so read the shares, not the absolute times.\n\n"
        "```\n" + table + "\n```\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "scheduler-profile.md").write_text(text)
    return res


def render_md(res: dict[str, Any]) -> str:
    m, w = res["median"], res["workload"]

    def rng_(key: str, fmt: str) -> str:
        vals = [r[key] for r in res["runs"]]
        return f"{format(min(vals), fmt)} - {format(max(vals), fmt)}"

    lines = [
        "# Scheduler benchmark (level-1 admission)",
        "",
        f"Workload: {w['jobs']:,} gang jobs pending at t=0 over {w['queues']} queues, "
        f"{w['groups']} groups, {w['clusters']} clusters (seed {w['seed']}); jobs finish -> "
        "quota released -> one pass, until every job finished (preemption on: victims are "
        "evicted and requeued after a backoff of 60 s doubling per preemption, at most 1 h); "
        "pods as on 64-core nodes of 110 pods. "
        "Medians of "
        f"{w['runs']} runs on {res['machine']['processor']} ({res['machine']['platform']}), "
        f"Python {res['machine']['python']}, single thread, shared 2-core machine.",
        "",
        "| metric | median | range over runs |",
        "|---|---|---|",
        "| 1-minute load average before each run | "
        f"{m['load_average_1min_before']:.1f} | {rng_('load_average_1min_before', '.1f')} |",
        "| admission decisions per second (admitted gangs / wall time in passes) | "
        f"{m['admissions_per_s']:,.0f} | {rng_('admissions_per_s', ',.0f')} |",
        "| same, per CPU second of the scheduler thread | "
        f"{m['cpu_admissions_per_s']:,.0f} | {rng_('cpu_admissions_per_s', ',.0f')} |",
        f"| gang fit checks per second | {m['fit_checks_per_s']:,.0f} | "
        f"{rng_('fit_checks_per_s', ',.0f')} |",
        f"| one pass, median (wall) | {m['pass_ms_p50']:.3f} ms | {rng_('pass_ms_p50', '.3f')} |",
        f"| one pass, p99 (wall) | {m['pass_ms_p99']:.3f} ms | {rng_('pass_ms_p99', '.3f')} |",
        f"| one pass, median (CPU) | {m['cpu_pass_ms_p50']:.3f} ms | "
        f"{rng_('cpu_pass_ms_p50', '.3f')} |",
        f"| one pass, p99 (CPU) | {m['cpu_pass_ms_p99']:.3f} ms | "
        f"{rng_('cpu_pass_ms_p99', '.3f')} |",
        f"| one pass, max (wall) | {m['pass_ms_max']:.3f} ms | {rng_('pass_ms_max', '.3f')} |",
        f"| first pass (admits the initial batch) | {m['first_pass_ms']:.1f} ms | "
        f"{rng_('first_pass_ms', '.1f')} |",
        f"| pass with no new event | {m['idle_pass_us']:.2f} us | {rng_('idle_pass_us', '.2f')} |",
        f"| passes per run | {m['passes']:,.0f} | |",
        f"| admissions per run (re-admissions of preempted jobs included) | "
        f"{m['admitted']:,.0f} | |",
        f"| preemptions per run (victims evicted and requeued) | {m['preempted']:,.0f} | |",
        f"| jobs preempted at least once / most preemptions of one job | "
        f"{m['jobs_preempted']:,.0f} / {m['max_preemptions_of_a_job']:.0f} | |",
        f"| of those preemptions, runs admitted while starving (exempt from the borrowing rule) | "
        f"{m['preempted_after_starving_admission']:,.0f} | |",
        f"| turns decided by the window check (no job of the window fits anywhere) | "
        f"{m['blocked_windows']:,.0f} | |",
        f"| borrowing tries held back for lenders' pending jobs | "
        f"{m['held_for_lenders']:,.0f} | |",
        f"| burst: one pass admitting all {m['burst_admitted']:,.0f} jobs (capacity x200) | "
        f"{m['burst_pass_s'] * 1e3:.0f} ms = {m['burst_per_s']:,.0f} admissions/s | "
        f"{rng_('burst_per_s', ',.0f')} /s |",
        f"| burst, per CPU second | {m['burst_cpu_per_s']:,.0f} admissions/s | "
        f"{rng_('burst_cpu_per_s', ',.0f')} /s |",
        f"| submit (validate + enqueue) per second | {m['submit_per_s']:,.0f} | "
        f"{rng_('submit_per_s', ',.0f')} |",
        "| REST submission throughput | measured in bench_api | |",
        "",
        "## Published figures (other systems, other hardware, other scope)",
        "",
        "| system | figure |",
        "|---|---|",
    ]
    for p in res["published"]:
        lines.append(f"| {p['system']} | {p['value']:g} {p['unit']} |")
    lines += [
        "",
        "These are not like-for-like: the figures above include placing and starting real",
        "processes/pods (API servers, node agents, network), while this number is only the",
        "level-1 decision (quota reservation for a whole gang) in memory. It shows the admission",
        "logic is not the bottleneck: the service loop, the store and the backends are. REST",
        "submission throughput is measured in bench_api.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
