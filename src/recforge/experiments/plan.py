"""The plan of a run: what a spec will load, filter, split, fit and evaluate, and how much work.

``recforge run --dry-run`` prints it and exits; the runner logs it at the start. Building a plan
touches no data beyond checking that the source exists, so it is instant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recforge.experiments.spec import ExperimentSpec, ModelEntry

__all__ = ["ModelPlan", "RunPlan", "make_plan", "render_plan"]


@dataclass(frozen=True)
class ModelPlan:
    """One entry: its fixed parameters, its search (if any) and its work per seed."""

    label: str
    model: str
    params: dict[str, Any]
    n_trials: int | None  # None: a fixed configuration, no search
    space: dict[str, Any] | None
    fits_per_seed: int
    evaluations_per_seed: int


@dataclass(frozen=True)
class RunPlan:
    name: str
    data: dict[str, Any]
    filters: list[dict[str, Any]]
    split: dict[str, Any]
    validation: dict[str, Any] | None
    seeds: list[int]
    protocol: str
    optimize: str
    report: dict[str, Any]
    models: list[ModelPlan]
    problems: list[str] = field(default_factory=list)

    @property
    def fits(self) -> int:
        return len(self.seeds) * sum(m.fits_per_seed for m in self.models)

    @property
    def evaluations(self) -> int:
        return len(self.seeds) * sum(m.evaluations_per_seed for m in self.models)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["work"] = {"fits": self.fits, "evaluations": self.evaluations,
                       "model_runs": len(self.seeds) * len(self.models)}
        return out


def _data_section(spec: ExperimentSpec) -> tuple[dict[str, Any], list[str]]:
    ds = spec.dataset
    problems: list[str] = []
    if ds.file is not None:
        path = Path(ds.file).expanduser()
        info: dict[str, Any] = {
            "file": str(path), "columns": {"user": ds.user_col, "item": ds.item_col,
                                           "rating": ds.rating_col, "timestamp": ds.timestamp_col},
            "id_type": ds.id_type,
        }
        if path.is_file():
            info["bytes"] = path.stat().st_size
        else:
            problems.append(f"dataset.file {path} does not exist")
        return info, problems
    from recforge.data.registry import get_dataset

    assert ds.name is not None
    reg = get_dataset(ds.name)
    return {"name": ds.name, "options": dict(ds.options), "returns": reg.returns,
            "files": [f.filename for f in reg.files]}, problems


def _filters(spec: ExperimentSpec) -> list[dict[str, Any]]:
    ds = spec.dataset
    out: list[dict[str, Any]] = []
    if ds.rating_equals is not None:
        out.append({"name": "rating_equals", "value": ds.rating_equals})
    if ds.min_rating is not None:
        out.append({"name": "rating_threshold", "min_rating": ds.min_rating})
    if ds.k_core is not None:
        out.append({"name": "k_core", "min_user": ds.k_core, "min_item": ds.k_core})
    if out and ds.compact:
        out.append({"name": "compact"})
    if ds.binarize:
        out.append({"name": "binarize"})
    return out


def _model_plan(spec: ExperimentSpec, entry: ModelEntry) -> ModelPlan:
    from recforge.models import get_model_class

    if entry.search is None:
        return ModelPlan(entry.display, entry.model, dict(entry.params), None, None, 1, 1)
    sims = entry.similarities
    if sims is not None:  # one search per listed similarity; the plan shows the first's space
        first = _model_plan(spec, entry.with_similarity(sims[0]))
        n = sum(_model_plan(spec, entry.with_similarity(s)).n_trials or 0 for s in sims)
        return ModelPlan(entry.display, entry.model, dict(entry.params), n, first.space,
                         n + 1, 2 * n + 1)
    space = entry.search.space
    if space is None:
        space = dict(get_model_class(entry.model).space_for(entry.params))
    n = entry.search.n_trials if space else 1  # an empty space runs one trial
    # n trials (fit + validation) and the final fit + test evaluation; new bests are also
    # evaluated on test during the search (at most n more evaluations, counted here).
    return ModelPlan(entry.display, entry.model, dict(entry.params), n, dict(space),
                     n + 1, 2 * n + 1)


def make_plan(spec: ExperimentSpec) -> RunPlan:
    """The plan of ``spec``; ``problems`` lists what would stop the run before any work."""
    from recforge.data.split_methods import validate_split_params

    data, problems = _data_section(spec)
    split_params = validate_split_params(spec.split.method, spec.split.params).model_dump()
    validation = None
    if spec.split.validation is not None:
        validation = spec.split.validation.model_dump()
        if validation["mode"] == "follow":
            validation["mode"] = f"{spec.split.validation_mode} (follows the test split)"
    models = [_model_plan(spec, e) for e in spec.models]
    return RunPlan(
        name=spec.name,
        data=data,
        filters=_filters(spec),
        split={"method": spec.split.method, "params": split_params,
               "filter_test_users": spec.split.filter_test_users},
        validation=validation,
        seeds=list(spec.seeds),
        protocol=spec.protocol,
        optimize=f"{spec.optimize.metric}@{spec.optimize.cutoff} on validation",
        report={"metrics": list(spec.report.metrics), "cutoffs": list(spec.report.cutoffs)},
        models=models,
        problems=problems,
    )


def render_plan(plan: RunPlan) -> str:
    """The plan as readable text."""
    d = plan.data
    lines = [f"plan of {plan.name!r}"]
    if "file" in d:
        size = f", {d['bytes']:,} bytes" if "bytes" in d else ", MISSING"
        lines.append(f"  data      file {d['file']}{size}")
    else:
        opts = ", ".join(f"{k}={v!r}" for k, v in d["options"].items())
        lines.append(f"  data      dataset {d['name']}" + (f" ({opts})" if opts else ""))
    if plan.filters:
        lines.append("  filters   " + " -> ".join(
            f["name"] + ("(" + ", ".join(f"{k}={v!r}" for k, v in f.items() if k != "name") + ")"
                         if len(f) > 1 else "") for f in plan.filters))
    params = ", ".join(f"{k}={v!r}" for k, v in plan.split["params"].items())
    lines.append(f"  split     {plan.split['method']}({params}), seeds {plan.seeds}")
    if plan.validation:
        v = plan.validation
        lines.append("  validate  " + ", ".join(f"{k}={val!r}" for k, val in v.items()))
    lines.append(f"  protocol  {plan.protocol}; optimise {plan.optimize}")
    lines.append(f"  report    {', '.join(plan.report['metrics'])} @ "
                 f"{', '.join(map(str, plan.report['cutoffs']))}")
    lines.append(f"  models    {len(plan.models)}")
    for i, m in enumerate(plan.models, 1):
        fixed = ", ".join(f"{k}={v!r}" for k, v in m.params.items())
        what = (f"search {m.n_trials} trial(s) over {sorted(m.space or {})}"
                if m.n_trials is not None else "fixed")
        lines.append(f"    {i}. {m.label} [{m.model}] {what}" + (f"; {fixed}" if fixed else ""))
    lines.append(f"  work      {plan.fits} fits, up to {plan.evaluations} evaluations "
                 f"({len(plan.seeds)} seed(s) x {len(plan.models)} model(s))")
    for p in plan.problems:
        lines.append(f"  PROBLEM   {p}")
    return "\n".join(lines)
