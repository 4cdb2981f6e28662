"""The split methods a spec or the CLI can name, with their validated parameters.

Each method maps a spec name (``split.method``) to its function in
:mod:`recforge.data.splitting` and to a strict pydantic model of its parameters, so a typo, a
wrong type or a value out of range fails when the spec is loaded, naming the parameter and what
is allowed, before any data is read. The seed is not a parameter: it comes from the spec's
``seeds`` (one split per seed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recforge.data import splitting
from recforge.data.interactions import Interactions
from recforge.data.mult_vae_split import mult_vae_split
from recforge.data.split import Split

__all__ = [
    "SPLIT_METHODS",
    "SplitMethod",
    "SplitParamsError",
    "follow_validation",
    "make_split",
    "split_method",
    "validate_split_params",
]


class SplitParamsError(ValueError):
    """Split parameters that do not fit the method; the message names each bad parameter."""


class _Params(BaseModel):
    # strict: YAML already types its values, so 690.0 for an int or "0.2" for a float is a
    # mistake worth reporting rather than coercing.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)



class PerUserHoldoutParams(_Params):
    test_fraction: float = Field(0.2, gt=0, lt=1)
    rounding: Literal["round", "floor", "ceil"] = "round"


class GlobalHoldoutParams(_Params):
    test_fraction: float = Field(0.2, gt=0, lt=1)
    sampling: Literal["exact", "bernoulli"] = "exact"


class LeaveOneOutParams(_Params):
    mode: Literal["random", "latest"] = "random"
    min_interactions: int = Field(2, ge=1)


class TemporalParams(_Params):
    cutoff: int | None = None
    test_fraction: float | None = Field(None, gt=0, lt=1)

    @model_validator(mode="after")
    def _exactly_one(self) -> TemporalParams:
        if (self.cutoff is None) == (self.test_fraction is None):
            raise ValueError("temporal needs exactly one of cutoff (a timestamp) or test_fraction")
        return self


class HeldOutUsersParams(_Params):
    n_test_users: int = Field(ge=1)
    n_validation_users: int = Field(0, ge=0)
    foldin_fraction: float = Field(0.8, gt=0, lt=1)
    min_interactions: int = Field(5, ge=1)
    restrict_items_to_train: bool = True


class MultVAEParams(_Params):
    n_heldout_users: int = Field(10_000, ge=1)
    min_rating: float | None = 4.0
    min_user_interactions: int = Field(5, ge=1)
    target_fraction: float = Field(0.2, gt=0, lt=1)


class PredefinedParams(_Params):
    """A released split takes no parameters."""


@dataclass(frozen=True)
class SplitMethod:
    """One nameable split: its function, parameter model and what it needs."""

    name: str
    function: Callable[..., Split] | None  # None: the dataset ships the split
    params: type[_Params]
    seeded: bool
    needs_timestamps: bool = False
    description: str = ""
    #: the validation carve-out that matches this test split (``validation.mode: follow``);
    #: None: the method makes its own validation part (held-out validation users)
    validation: str | None = "per_user"


SPLIT_METHODS: dict[str, SplitMethod] = {
    m.name: m
    for m in (
        SplitMethod("predefined", None, PredefinedParams, seeded=False,
                    description="the split released with the dataset"),
        SplitMethod("per_user_holdout", splitting.per_user_holdout, PerUserHoldoutParams,
                    seeded=True, description="a random fraction of each user's interactions"),
        SplitMethod("global_holdout", splitting.global_holdout, GlobalHoldoutParams,
                    seeded=True, description="a random fraction of all pairs",
                    validation="global"),
        SplitMethod("leave_one_out", splitting.leave_one_out, LeaveOneOutParams, seeded=True,
                    description="one interaction per user (random, or the latest)",
                    validation="leave_one_out"),  # "leave_latest" for mode=latest
        SplitMethod("temporal", splitting.temporal_split, TemporalParams, seeded=False,
                    needs_timestamps=True,
                    description="one global time cut-off: later interactions are test",
                    validation="temporal"),
        SplitMethod("held_out_users", splitting.held_out_users, HeldOutUsersParams, seeded=True,
                    description="whole users held out, fold-in profile + targets",
                    validation=None),
        SplitMethod("mult_vae", mult_vae_split, MultVAEParams, seeded=True,
                    description="Mult-VAE's preprocessing: ratings >= 4, users >= 5, "
                    "held-out users with 80/20 fold-in/targets (seed 98765 in the paper)",
                    validation=None),
    )
}


def split_method(name: str) -> SplitMethod:
    """The method called ``name``; an unknown name lists the known ones."""
    try:
        return SPLIT_METHODS[name]
    except KeyError:
        raise SplitParamsError(
            f"unknown split method {name!r}; known: {', '.join(SPLIT_METHODS)}"
        ) from None


def follow_validation(method: str, params: Mapping[str, Any]) -> str | None:
    """The validation mode that follows a test split: random splits get the same random
    carve-out, time-ordered ones a time-ordered one (temporal -> temporal, leave-one-out of the
    latest -> each user's latest train item). A released split (``predefined``) gets the
    per-user carve-out. None: the method makes its own validation users."""
    m = split_method(method)
    if method == "leave_one_out" and params.get("mode") == "latest":
        return "leave_latest"
    return m.validation


def validate_split_params(method: str, params: Mapping[str, Any]) -> _Params:
    """The parameters as the method's model; raises :class:`SplitParamsError` naming each one."""
    m = split_method(method)
    if "seed" in params:
        raise SplitParamsError(
            "params.seed: the split seed comes from the spec's seeds (one split per seed), "
            "not from split.params"
        )
    try:
        return m.params.model_validate(dict(params))
    except ValidationError as exc:
        allowed = ", ".join(
            f"{k} ({_describe(f)})" for k, f in m.params.model_fields.items()
        ) or "none"
        problems = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e["loc"])
            where = f"params.{loc}" if loc else "params"
            shown = f" (got {e['input']!r})" if loc and e["type"] != "missing" else ""
            problems.append(f"{where}: {e['msg']}{shown}")
        raise SplitParamsError(
            f"split method {method!r}: " + "; ".join(problems) + f"; parameters: {allowed}"
        ) from None


def _describe(field: Any) -> str:
    ann = field.annotation
    if get_origin(ann) is Literal:
        kind = "one of " + "/".join(str(a) for a in get_args(ann))
    else:
        kind = getattr(ann, "__name__", None) or str(ann).replace("typing.", "")
    bounds = [f"{op}{v}" for meta in field.metadata for op, attr in
              ((">", "gt"), (">=", "ge"), ("<", "lt"), ("<=", "le"))
              if (v := getattr(meta, attr, None)) is not None]
    default = "required" if field.is_required() else f"default {field.default!r}"
    return ", ".join([kind, *bounds, default])


def make_split(x: Interactions, method: str, params: Mapping[str, Any], seed: int) -> Split:
    """Split ``x`` with the named method; ``params`` are validated first."""
    m = split_method(method)
    if m.function is None:
        raise SplitParamsError(
            f"split method {method!r} needs a dataset that ships its split; choose one of "
            f"{', '.join(k for k, v in SPLIT_METHODS.items() if v.function is not None)}"
        )
    checked = validate_split_params(method, params)
    if m.needs_timestamps and x.timestamps is None:
        raise SplitParamsError(
            f"split method {method!r} needs timestamps but {x.name!r} has none "
            "(give dataset.timestamp_col)"
        )
    kwargs = checked.model_dump(exclude_unset=True)
    if m.seeded:
        kwargs["seed"] = seed
    return m.function(x, **kwargs)
