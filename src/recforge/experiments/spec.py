"""Experiment specs: a YAML file validated by pydantic before any work starts.

Example::

    name: ml1m-5star
    dataset: {name: spectralcf-ml-1m, options: {part: all}}
    split:
      method: per_user_holdout
      params: {test_fraction: 0.2}
      validation: {mode: per_user, fraction: 0.1}
    protocol: full
    preset: recsys2019            # or tois2021 (recforge.tuning.protocols)
    optimize: {metric: RECALL, cutoff: 50}
    report: {metrics: [RECALL, MAP], cutoffs: [20, 40]}
    seeds: [0]
    models:
      - {model: TopPopular}
      - {model: ItemKNNCF, label: ItemKNN cosine, params: {similarity: cosine},
         search: {n_trials: 35}}

Every section forbids unknown keys, so a typo fails naming the field. Model names and
hyper-parameter names are checked against the model registry at load time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from recforge._yaml import load_yaml
from recforge.data.split_methods import SPLIT_METHODS, follow_validation, validate_split_params
from recforge.experiments.reference import ReferenceSpec
from recforge.models import MODELS, get_model_class
from recforge.models.iterative import EarlyStopping
from recforge.models.params import check_params, check_space
from recforge.tuning.protocols import DEFAULT_PRESET, PRESET_NAMES, get_preset

__all__ = [
    "SPLIT_METHODS",
    "DatasetRef",
    "ExperimentSpec",
    "ModelEntry",
    "SearchSpec",
    "SpecError",
    "SplitSpec",
    "cap_trials",
    "load_spec",
    "parse_spec",
    "resolve_paths",
]

KNOWN_METRICS = (
    "HR", "HIT_RATE", "PRECISION", "RECALL", "RECALL_MIN", "NDCG", "NDCG_TRUNC", "MAP", "MRR",
    "COVERAGE", "GINI", "NOVELTY", "AVG_POP",
)


class SpecError(ValueError):
    """An experiment spec is invalid; the message names the file and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetRef(_Strict):
    """A registered dataset (``name``) or your own file (``file`` with its column names)."""

    name: str | None = None
    file: str | None = None
    user_col: str = "user"
    item_col: str = "item"
    rating_col: str | None = None
    timestamp_col: str | None = None
    sep: str | None = None
    id_type: Literal["int", "str"] = "int"
    options: dict[str, Any] = Field(default_factory=dict)
    binarize: bool = True
    rating_equals: float | None = None
    min_rating: float | None = None
    k_core: int | None = None
    #: after the filters, drop users and items left without interactions (ids map back);
    #: false keeps the full id space (e.g. to match a published matrix shape)
    compact: bool = True

    @model_validator(mode="after")
    def _one_source(self) -> DatasetRef:
        if (self.name is None) == (self.file is None):
            raise ValueError("give exactly one of dataset.name (registered) or dataset.file")
        if self.name is not None:
            from recforge.data.registry import get_dataset

            try:
                reg = get_dataset(self.name)
            except LookupError as exc:
                raise ValueError(str(exc).strip('"')) from None
            bad = sorted(set(self.options) - set(reg.option_names()))
            if bad:
                raise ValueError(f"dataset {self.name!r} has no option(s) {bad}; "
                                 f"options: {reg.option_names()}")
        return self

    @property
    def label(self) -> str:
        return self.name or str(self.file)


class ValidationSpec(_Strict):
    """Validation carved out of train.

    ``mode: follow`` (the default) carves validation the way the test split was made, so
    tuning is judged like the final test: per-user / global random holdouts get the same,
    ``temporal`` a time cut-off on train, ``leave_one_out`` with ``mode: latest`` each user's
    latest train item, a released split the per-user carve-out. The other modes choose one by
    name (``per_user``, ``global``, ``leave_one_out`` are random; ``leave_latest``,
    ``temporal`` follow time). ``fraction`` is ignored by the leave-one-out modes.
    ``add_back`` keeps the validation pairs in train as well (MCRec's leaky protocol).
    ``refit`` fits the final model (fixed or best-found configuration) on train + validation
    before the test evaluation; without it the final model is trained on train minus
    validation, as the paper did for most tables.
    """

    mode: Literal[
        "follow", "per_user", "global", "leave_one_out", "leave_latest", "temporal"
    ] = "follow"
    fraction: float = Field(0.1, gt=0, lt=1, description="ignored by the leave-one-out modes")
    add_back: bool = False
    refit: bool = False

    @model_validator(mode="after")
    def _refit_needs_clean(self) -> ValidationSpec:
        if self.refit and self.add_back:
            raise ValueError("refit and add_back exclude each other (add_back already trains on "
                             "train + validation)")
        return self


class SplitSpec(_Strict):
    """How test (and validation) are made; ``params`` are checked against the method's model
    (:mod:`recforge.data.split_methods`) at load time.

    ``filter_test_users`` decides about cold-start users, those with test (or validation)
    items but no training interaction (common under a time split): ``keep`` evaluates them
    (as the paper's evaluator did; the audit counts them and the run warns), ``drop_cold_start``
    removes them from test and validation, reported like every filter.
    """

    method: Literal[
        "predefined", "per_user_holdout", "global_holdout", "leave_one_out", "temporal",
        "held_out_users", "mult_vae",
    ] = "predefined"
    params: dict[str, Any] = Field(default_factory=dict)
    validation: ValidationSpec | None = None
    filter_test_users: Literal["keep", "drop_cold_start"] = "keep"
    # NCF's protocol: this many test negatives sampled per user among the items the user never
    # interacted with (seeded by the spec's seed), for ``protocol: candidates``.
    negatives: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check_params(self) -> SplitSpec:
        validate_split_params(self.method, self.params)  # SplitParamsError is a ValueError
        v = self.validation
        if v is not None and v.mode == "follow" and self.validation_mode is None:
            raise ValueError(
                f"validation: split method {self.method!r} makes its own validation users "
                "(see its params); remove split.validation or name a mode"
            )
        if self.negatives is not None and self.method == "predefined":
            raise ValueError(
                "split.negatives samples test negatives for a split made here; a predefined "
                "split ships its own (drop split.negatives or choose a split method)"
            )
        return self

    @property
    def validation_mode(self) -> str | None:
        """The carve-out mode to use: ``validation.mode``, with ``follow`` resolved."""
        if self.validation is None:
            return None
        if self.validation.mode != "follow":
            return self.validation.mode
        return follow_validation(self.method, self.params)


class MetricAt(_Strict):
    metric: str
    cutoff: int = Field(gt=0)

    @field_validator("metric")
    @classmethod
    def _known(cls, v: str) -> str:
        v = v.upper()
        if v not in KNOWN_METRICS:
            raise ValueError(f"unknown metric {v!r}; known: {', '.join(KNOWN_METRICS)}")
        return v


class ReportSpec(_Strict):
    metrics: list[str] = Field(default_factory=lambda: ["PRECISION", "RECALL", "NDCG"])
    cutoffs: list[int] = Field(default_factory=lambda: [10])
    significance_test: Literal["wilcoxon", "ttest"] = "wilcoxon"
    correction: Literal["holm", "bh"] = "holm"
    alpha: float = 0.05

    @field_validator("metrics")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        out = [m.upper() for m in v]
        bad = [m for m in out if m not in KNOWN_METRICS]
        if bad:
            raise ValueError(f"unknown metric(s) {bad}; known: {', '.join(KNOWN_METRICS)}")
        return out

    @field_validator("cutoffs")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if not v or any(k <= 0 for k in v):
            raise ValueError("cutoffs must be a non-empty list of positive integers")
        return sorted(set(v))


class SearchSpec(_Strict):
    n_trials: int = Field(35, ge=1)
    n_startup_trials: int = Field(5, ge=0)
    space: dict[str, dict[str, Any]] | None = None
    early_stopping: bool = True


class ModelEntry(_Strict):
    """One model of the experiment.

    ``early_stopping`` applies to iterative models (``iterative = True``) when the split has a
    validation part: they train on train minus validation and stop on the experiment's
    ``optimize`` metric and cut-off (paper defaults: validate every 5 epochs, patience 5); the
    model's epoch hyper-parameter is the cap. ``null`` trains the fixed number of epochs.

    ``params.similarity`` may be a list (KNN models, e.g. ``[cosine, jaccard, asymmetric, dice,
    tversky]``) when the entry has a ``search``: each similarity gets its own search (its own
    space, ``n_trials`` each), the best on validation is kept, and every trial is recorded.
    """

    model: str
    label: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    search: SearchSpec | None = None
    early_stopping: EarlyStopping | None = Field(default_factory=EarlyStopping)

    @model_validator(mode="after")
    def _check_model(self) -> ModelEntry:
        if self.model not in MODELS:
            raise ValueError(f"unknown model {self.model!r}; known: {', '.join(sorted(MODELS))}")
        cls = get_model_class(self.model)
        if "early_stopping" in self.model_fields_set and not cls.iterative:
            raise ValueError(
                f"early_stopping is set for {self.model}, which is not iterative (it does not "
                "train in epochs); remove it"
            )
        sims = self.similarities
        if sims is None:
            self._check_params_and_space(cls, self.params)
            return self
        if "similarity" not in cls._param_names():
            raise ValueError(f"params.similarity is a list, but {self.model} has no similarity")
        if not sims or len(set(map(str, sims))) != len(sims):
            raise ValueError(f"params.similarity must list distinct similarities, got {sims!r}")
        if self.search is None:
            raise ValueError(
                "params.similarity lists several similarities: each gets its own search, so "
                "the entry needs a search block (or give one similarity)"
            )
        for s in sims:
            try:
                self._check_params_and_space(cls, {**self.params, "similarity": s})
            except ValueError as exc:
                raise ValueError(f"similarity {s!r}: {exc}") from None
        return self

    @property
    def similarities(self) -> list[Any] | None:
        """The listed similarities of a ``similarity: [...]`` entry (one search each)."""
        value = self.params.get("similarity")
        return list(value) if isinstance(value, list | tuple) else None

    def with_similarity(self, similarity: str) -> ModelEntry:
        """This entry with one similarity fixed (a validated copy)."""
        return ModelEntry.model_validate(
            {**self.model_dump(exclude_unset=True),
             "params": {**self.params, "similarity": similarity}})

    def _check_params_and_space(self, cls: Any, params: dict[str, Any]) -> None:
        # Values, not only names: a wrong type, range or choice fails here, before any model runs.
        check_params(cls, params, where="params")
        if self.search is None:
            return
        if self.search.space is None:
            space = cls.space_for(params)
        else:
            both = sorted(set(self.search.space) & set(params))
            if both:
                raise ValueError(
                    f"{both} are both fixed in params and searched in search.space; "
                    "keep each hyper-parameter in one of the two"
                )
            space = self.search.space
        check_space(cls, space, where="search.space")
        epochs = cls.epochs_param
        stops_early = self.search.early_stopping and self.early_stopping is not None
        if cls.iterative and stops_early and epochs in space:
            raise ValueError(
                f"search.space.{epochs}: {self.model}'s epochs are chosen by early stopping; "
                "remove it from the space or set search.early_stopping: false"
            )

    @property
    def display(self) -> str:
        return self.label or self.model


class ExperimentSpec(_Strict):
    """A whole experiment. ``protocol`` is the ranking protocol (full or candidate set);
    ``preset`` the named tuning protocol (:mod:`recforge.tuning.protocols`): it supplies each
    search's ``n_trials``/``n_startup_trials``, ``split.validation.refit`` and the
    hyper-parameters it fixes where the spec leaves them out (values the spec gives win), and
    the widened ranges of a search without its own ``space``."""

    name: str
    dataset: DatasetRef
    split: SplitSpec = Field(default_factory=SplitSpec)
    protocol: Literal["full", "candidates"] = "full"
    preset: str = DEFAULT_PRESET
    optimize: MetricAt = Field(default_factory=lambda: MetricAt(metric="RECALL", cutoff=10))
    report: ReportSpec = Field(default_factory=ReportSpec)
    seeds: list[int] = Field(default_factory=lambda: [0])
    models: list[ModelEntry]
    memory_budget_mb: float = 256
    n_jobs: int = Field(1, ge=1)
    # Order among tied scores in the test evaluation; "numpy-legacy" = the RecSys'19 evaluator's.
    tie_rule: Literal["lower-index", "numpy-legacy"] = "lower-index"
    # Reference values to check our numbers against (recforge.experiments.reference).
    reference: ReferenceSpec | None = None
    #: save the final (best) model of every entry and seed under --out/models/ (save/load)
    keep_models: bool = False

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        """Fill what the preset decides and the spec leaves out (see the class docstring)."""
        if not isinstance(data, dict):
            return data
        name = data.get("preset", DEFAULT_PRESET)
        if name not in PRESET_NAMES:
            raise ValueError(f"preset: unknown protocol preset {name!r}; known: "
                             f"{', '.join(PRESET_NAMES)}")
        preset = get_preset(name)
        data = dict(data)
        models = data.get("models")
        if isinstance(models, list):
            data["models"] = [_preset_search(m, preset) for m in models]
        split = data.get("split")
        if isinstance(split, BaseModel):
            split = split.model_dump(exclude_unset=True)
        if isinstance(split, dict) and isinstance(split.get("validation"), dict | BaseModel):
            v = split["validation"]
            v = v.model_dump(exclude_unset=True) if isinstance(v, BaseModel) else dict(v)
            if "refit" not in v and preset.refit:
                if v.get("add_back"):
                    raise ValueError(
                        f"preset {name} refits the final model on train + validation, which "
                        "split.validation.add_back excludes; drop add_back or set "
                        "split.validation.refit: false")
                v["refit"] = True
            data["split"] = {**split, "validation": v}
        return data

    @field_validator("preset")
    @classmethod
    def _known_preset(cls, v: str) -> str:
        get_preset(v)
        return v

    @model_validator(mode="after")
    def _labels_unique(self) -> ExperimentSpec:
        labels = [m.display for m in self.models]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ValueError(f"model labels must be unique; repeated: {dup} (set 'label')")
        if not self.models:
            raise ValueError("models must list at least one model")
        if not self.seeds:
            raise ValueError("seeds must list at least one seed")
        if self.reference is not None:
            self._check_reference(self.reference, labels)
        preset = get_preset(self.preset)
        for m in self.models:  # the preset's widened spaces are checked like declared ones
            if m.search is None or m.search.space is not None:
                continue
            cls = get_model_class(m.model)
            for s in m.similarities or [None]:
                params = m.params if s is None else {**m.params, "similarity": s}
                check_space(cls, preset.space_for(m.model, params),
                            where=f"{m.display}: preset {self.preset} search space")
        return self

    def _check_reference(self, ref: ReferenceSpec, labels: list[str]) -> None:
        unknown = sorted(set(ref.values) - set(labels))
        if unknown:
            raise ValueError(f"reference.values names model(s) {unknown} the spec does not run; "
                             f"labels: {labels}")
        reported = {f"{m}@{k}" for m in self.report.metrics for k in self.report.cutoffs}
        for label, cells in ref.values.items():
            bad = sorted(set(cells) - reported)
            if bad:
                raise ValueError(f"reference.values.{label}: {bad} are not reported; report "
                                 f"gives {sorted(reported)} (report.metrics x report.cutoffs)")


def _preset_search(entry: Any, preset: Any) -> Any:
    """A model entry (raw or validated) with the preset's fixed hyper-parameters and trial
    counts where it gives none."""
    if isinstance(entry, BaseModel):
        entry = entry.model_dump(exclude_unset=True)
    if not isinstance(entry, dict):
        return entry
    searched = entry.get("search")
    if isinstance(searched, BaseModel):
        searched = searched.model_dump(exclude_unset=True)
    searched = searched.get("space") if isinstance(searched, dict) else None
    fixed = {k: v for k, v in preset.params.get(entry.get("model"), {}).items()
             if k not in (searched or {})}
    if fixed and isinstance(entry.get("params", {}), dict):
        entry = {**entry, "params": {**fixed, **entry.get("params", {})}}
    search = entry.get("search")
    if isinstance(search, BaseModel):
        search = search.model_dump(exclude_unset=True)
    if not isinstance(search, dict):
        return entry
    search = dict(search)
    search.setdefault("n_trials", preset.n_trials)
    search.setdefault("n_startup_trials", preset.n_startup_trials)
    return {**entry, "search": search}


def _format_errors(err: ValidationError, source: str) -> str:
    lines = [f"invalid experiment spec {source}:"]
    for e in err.errors():
        loc = ".".join(str(p) for p in e["loc"]) or "<root>"
        lines.append(f"  - {loc}: {e['msg']}")
    return "\n".join(lines)


def parse_spec(data: dict[str, Any] | str, source: str = "<spec>") -> ExperimentSpec:
    """Validate a spec given as a dict or YAML text; raises SpecError naming source and field."""
    if isinstance(data, str):
        try:
            data = load_yaml(data)
        except yaml.YAMLError as exc:
            raise SpecError(f"invalid YAML in {source}: {exc}") from None
    if not isinstance(data, dict):
        kind = type(data).__name__
        raise SpecError(f"{source}: an experiment spec must be a mapping, got {kind}")
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_format_errors(exc, source)) from None


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read and validate a spec file; a relative ``dataset.file`` is taken from the spec's
    folder (so a spec and its data move together), not from the working directory."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(f"experiment spec not found: {p}")
    spec = parse_spec(p.read_text(), source=str(p))
    return resolve_paths(spec, p.parent)


def resolve_paths(spec: ExperimentSpec, base: Path) -> ExperimentSpec:
    """The spec with relative file paths made absolute against ``base``."""
    file = spec.dataset.file
    if file is None or Path(file).expanduser().is_absolute():
        return spec
    resolved = str((base / file).resolve())
    return spec.model_copy(update={"dataset": spec.dataset.model_copy(update={"file": resolved})})


def cap_trials(spec: ExperimentSpec, max_trials: int) -> ExperimentSpec:
    """The spec with every search limited to ``max_trials`` trials (smoke runs, examples)."""
    if max_trials < 1:
        raise SpecError(f"max_trials must be >= 1, got {max_trials}")
    models = []
    for m in spec.models:
        if m.search is not None and m.search.n_trials > max_trials:
            search = m.search.model_copy(update={
                "n_trials": max_trials,
                "n_startup_trials": min(m.search.n_startup_trials, max_trials),
            })
            m = m.model_copy(update={"search": search})
        models.append(m)
    return spec.model_copy(update={"models": models})
