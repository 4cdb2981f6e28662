"""Search-space specs: plain dicts on model classes, turned into optuna distributions.

A spec is one of::

    {"type": "int", "low": 1, "high": 250}                  # optional "log": bool, "step": int
    {"type": "float", "low": 1e-3, "high": 1.0, "log": True}  # optional "step": float
    {"type": "categorical", "choices": [True, False]}

Specs stay plain data so that model modules do not import optuna and spaces serialise to JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

__all__ = ["SearchSpace", "to_distribution", "to_distributions", "validate_space"]

SearchSpace = Mapping[str, Mapping[str, Any] | BaseDistribution]

_KEYS = {
    "int": {"type", "low", "high", "log", "step"},
    "float": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}


def to_distribution(name: str, spec: Mapping[str, Any] | BaseDistribution) -> BaseDistribution:
    """One spec -> an optuna distribution; errors name the parameter and the problem."""
    if isinstance(spec, BaseDistribution):
        return spec
    if not isinstance(spec, Mapping):
        raise TypeError(
            f"search space entry {name!r} must be a dict spec, got {type(spec).__name__}"
        )
    kind = spec.get("type")
    if kind not in _KEYS:
        raise ValueError(
            f"search space entry {name!r}: type must be one of {sorted(_KEYS)}, got {kind!r}"
        )
    unknown = set(spec) - _KEYS[kind]
    if unknown:
        raise ValueError(f"search space entry {name!r}: unknown keys {sorted(unknown)} for {kind}")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list | tuple) or not choices:
            raise ValueError(f"search space entry {name!r}: choices must be a non-empty list")
        return CategoricalDistribution(list(choices))
    if "low" not in spec or "high" not in spec:
        raise ValueError(f"search space entry {name!r}: {kind} needs 'low' and 'high'")
    low, high, log = spec["low"], spec["high"], bool(spec.get("log", False))
    if low > high:
        raise ValueError(f"search space entry {name!r}: low={low} > high={high}")
    if log and low <= 0:
        raise ValueError(f"search space entry {name!r}: log scale needs low > 0, got {low}")
    try:
        if kind == "int":
            step = int(spec.get("step", 1))
            return IntDistribution(int(low), int(high), log=log, step=step)
        return FloatDistribution(float(low), float(high), log=log, step=spec.get("step"))
    except ValueError as exc:
        raise ValueError(f"search space entry {name!r}: {exc}") from None


def to_distributions(space: SearchSpace) -> dict[str, BaseDistribution]:
    return {name: to_distribution(name, spec) for name, spec in space.items()}


def validate_space(space: SearchSpace, param_names: list[str], model: str) -> None:
    """Every searched name must be a hyper-parameter of the model."""
    unknown = sorted(set(space) - set(param_names))
    if unknown:
        raise ValueError(
            f"search space for {model} names unknown hyper-parameters {unknown}; "
            f"valid: {sorted(param_names)}"
        )
    to_distributions(space)
