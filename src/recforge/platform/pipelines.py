"""recforge experiments as platform pipelines: an experiment spec becomes a DAG.

:func:`experiment_dag` turns a (resolved) :class:`~recforge.experiments.spec.ExperimentSpec`
into a DAG spec with one node per model entry (its search, final fit and test evaluation, as
``recforge run`` does them) and a ``report`` node that depends on all of them. Each node runs
this module (``python -m recforge.platform.pipelines model|report``) and writes its outputs as
artefacts of the run:

* ``model-<stem>``: the experiment restricted to that entry, run into ``${outputs.part}`` (a
  complete ``recforge run`` folder of one model; its optuna study is that folder's own SQLite
  file, a database separate from the platform's: no store URL or secret reaches a job). With
  ``workers`` > 1 an entry with a search is a gang of that many replicas sharing one study,
  ``${outputs.study}/studies.db`` (a SQLite file in the run directory, which only the run's
  user can open): every replica claims and runs trials (:mod:`recforge.tuning.shared`), and
  replica 0 also writes the part, as above, from the shared study;
* ``report``: copies every part's finished model run into ``${outputs.report}`` and runs the
  whole spec there, which keeps them all (the resume path of ``recforge run``) and writes
  results.json, the report and every other output, the same as a local run of the spec.

The spec travels in the jobs' environment (``RECFORGE_EXPERIMENT``, the resolved YAML) so the
jobs need no access to the submitter's files beyond the data it names.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path
from typing import Any

import yaml

__all__ = ["ENV", "experiment_dag", "main", "submit_experiment"]

#: the environment variable holding the resolved experiment spec (YAML) in the node jobs
ENV = "RECFORGE_EXPERIMENT"


def experiment_dag(spec: Any, *, queue: str, python: str = "python",
                   resources: dict[str, Any] | None = None,
                   workers: int = 1) -> dict[str, Any]:  # fmt: skip
    """The DAG spec (a mapping for ``POST /dags``) of experiment ``spec``; ``workers``
    replicas (each with ``resources``) share each search."""
    from recforge.experiments.artifacts import label_stems

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    doc = yaml.safe_dump(_portable(spec), sort_keys=False)
    stems = label_stems([m.display for m in spec.models])
    res = resources or {"cpu": 1, "memory": "2Gi"}

    def job(*args: str, replicas: int = 1) -> dict[str, Any]:
        specs: list[dict[str, Any]] = [{"role": "master", "resources": res}]
        if replicas > 1:
            specs.append({"role": "worker", "replicas": replicas - 1, "resources": res})
        return {"command": [python, "-m", "recforge.platform.pipelines", *args],
                "env": {ENV: doc}, "cluster_type": "local", "replica_specs": specs}  # fmt: skip

    nodes: list[dict[str, Any]] = []
    for entry in spec.models:
        name = _node_name(stems[entry.display])
        args = ["model", "--label", entry.display, "--out", "${outputs.part}"]
        if workers > 1 and entry.search is not None:
            nodes.append({"name": name, "outputs": ["part", "study"],
                          "job": job(*args, "--study", "${outputs.study}", replicas=workers)})
        else:
            nodes.append({"name": name, "outputs": ["part"], "job": job(*args)})
    parts = {f"p{i}": f"{n['name']}.part" for i, n in enumerate(nodes)}
    report = job("report", "--out", "${outputs.report}",
                 *[a for k in parts for a in ("--part", f"${{inputs.{k}}}")])
    nodes.append({"name": "report", "inputs": parts, "outputs": ["report"], "job": report})
    return {"name": _dag_name(spec.name), "queue": queue, "failure_policy": "stop",
            "labels": {"experiment": _dag_name(spec.name)}, "nodes": nodes}  # fmt: skip


def _portable(spec: Any) -> dict[str, Any]:
    """The spec as data that parses back to the same spec (the full dump does not: it names
    defaults the validator refuses to see set, e.g. ``early_stopping`` of a non-iterative
    model)."""
    from recforge.experiments.spec import parse_spec

    for kw in ({"exclude_unset": True}, {"exclude_defaults": True}):
        doc = dict(spec.model_dump(mode="json", **kw))
        try:
            if parse_spec(doc, source="the experiment") == spec:
                return doc
        except ValueError:
            continue
    raise ValueError(f"experiment {spec.name!r} cannot be passed on as data (it does not "
                     "parse back to itself)")


def submit_experiment(spec: Any, client: Any, out: Path, *, queue: str, workers: int = 1,
                      resources: dict[str, Any] | None = None,
                      log: Any = print, poll_seconds: float = 1.0,
                      timeout: float | None = None) -> dict[str, Any]:  # fmt: skip
    """Submit ``spec`` as a DAG through ``client`` (a :class:`~recforge.platform.client.
    PlatformClient`), follow it, and unpack the report node's outputs into ``out``; returns
    the finished run. A run that does not succeed raises ``RuntimeError`` naming its nodes."""
    import time

    run = client.submit_dag(experiment_dag(spec, queue=queue, workers=workers,
                                           resources=resources))  # fmt: skip
    log(f"submitted DAG run {run['id']} ({len(run['nodes'])} nodes)")
    seen: dict[str, str] = {}
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        run = client.get_dag(run["id"])
        for n in run["nodes"]:
            if seen.get(n["name"]) != n["state"]:
                seen[n["name"]] = n["state"]
                log(f"  {n['name']}: {n['state']}")
        if run["state"] not in ("PENDING", "RUNNING"):
            break
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"DAG run {run['id']} still {run['state']} after {timeout:g}s")
        time.sleep(poll_seconds)
    if run["state"] != "SUCCEEDED":
        bad = {n["name"]: n["reason"] for n in run["nodes"] if n["state"] != "SUCCEEDED"}
        raise RuntimeError(f"DAG run {run['id']} {run['state']}: {run['reason']}; nodes {bad}")
    client.download_artifact(run["id"], "report", "report", out)
    return dict(run)


def _clean(text: str, prefix: str) -> str:
    out = "".join(c if c.isalnum() or c in "._-" else "-" for c in text).strip("-._")
    return (prefix + out)[:63].rstrip("-._") or prefix.rstrip("-")


def _node_name(stem: str) -> str:
    return _clean(stem, "model-")


def _dag_name(name: str) -> str:
    return _clean(name, "exp-")


def _spec() -> Any:
    from recforge.experiments.spec import parse_spec

    text = os.environ.get(ENV)
    if not text:
        raise SystemExit(f"{ENV} is not set: run this as a node of an experiment DAG")
    return parse_spec(yaml.safe_load(text), source=ENV)


def run_part(label: str, out: Path, study: Path | None = None) -> None:
    """The experiment restricted to the entry ``label``, into ``out``; with ``study`` this
    replica (``RECFORGE_REPLICA_INDEX``) shares the search's study in ``study/studies.db``
    with the job's other replicas, and replica 0 writes ``out``."""
    from recforge.experiments.runner import run_experiment, share_searches
    from recforge.tuning.shared import SharedStudy

    spec = _spec()
    entries = [m for m in spec.models if m.display == label]
    if not entries:
        raise SystemExit(f"no model entry {label!r} in the experiment "
                         f"(entries: {[m.display for m in spec.models]})")  # fmt: skip
    part = spec.model_copy(update={"models": entries})
    if study is None:
        run_experiment(part, out)
        return
    index = int(os.environ.get("RECFORGE_REPLICA_INDEX", "0"))
    # The attempt tells a retried gang's trials from those its dead replicas left running.
    shared = SharedStudy(index=index, lead=index == 0,
                         generation=os.environ.get("RECFORGE_ATTEMPT", "1"))  # fmt: skip
    storage = f"sqlite:///{(study / 'studies.db').resolve()}"
    if shared.lead:
        run_experiment(part, out, study_storage=storage, shared=shared)
    else:
        share_searches(part, storage, shared)


def run_report(out: Path, parts: list[Path]) -> None:
    """Gather the parts' finished model runs in ``out`` and write the whole run's outputs."""
    from recforge.experiments.artifacts import RunDir, label_stems
    from recforge.experiments.runner import run_experiment

    spec = _spec()
    stems = label_stems([m.display for m in spec.models])
    RunDir.open(out, spec).close()  # the folder is this spec's run before the parts arrive
    for part in parts:
        for record in sorted((part / "runs").glob("*.json")):
            stem = record.stem  # "<label stem>__seed<k>" of the one-entry run
            done = json.loads(record.read_text())
            target = f"{stems[done['label']]}__seed{done['seed']}"
            for sub, ext in (("runs", "json"), ("per_user", "npz"), ("trials", "json")):
                src = part / sub / f"{stem}.{ext}"
                if src.is_file():
                    (out / sub).mkdir(exist_ok=True)
                    shutil.copyfile(src, out / sub / f"{target}.{ext}")
    outcome = run_experiment(spec, out)
    missing = [m.display for m in spec.models
               if any(m.display not in by for by in outcome.runs.values())]  # fmt: skip
    if missing:  # cannot happen after run_experiment; kept as a guard against silent gaps
        raise SystemExit(f"report: model runs missing for {missing}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m recforge.platform.pipelines",
                                description="A node of an experiment DAG.")  # fmt: skip
    sub = p.add_subparsers(dest="step", required=True)
    m = sub.add_parser("model", help="one model entry's search, fit and evaluation")
    m.add_argument("--label", required=True)
    m.add_argument("--out", type=Path, required=True)
    m.add_argument("--study", type=Path, help="folder of the study the job's replicas share")
    r = sub.add_parser("report", help="gather the parts and write the run's outputs")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--part", type=Path, action="append", default=[])
    a = p.parse_args(argv)
    if a.step == "model":
        run_part(a.label, a.out, a.study)
    else:
        run_report(a.out, a.part)


if __name__ == "__main__":
    main()
