"""Declared hyper-parameters: each model's ``__init__`` types plus its ``param_rules``.

A model's hyper-parameter schema is its constructor signature (the annotated type and the
default of every argument) refined by the class attribute ``param_rules``: ranges and choices
as plain data, next to ``search_space``::

    class ItemKNNCF(Recommender):
        param_rules = {"top_k": Param(ge=1), "similarity": Param(choices=SIMILARITIES)}

:func:`check_params` validates given values and :func:`check_space` a search space against the
schema, strictly (``690.0`` is not an ``int``, ``"0.5"`` is not a ``float``, ``bm25`` is not
``BM25``), so an experiment spec fails when it is loaded, naming the parameter, the value and
what is allowed, instead of when a model is fitted an hour into a run.
"""

from __future__ import annotations

import inspect
import json
import math
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError

from recforge._json import jsonable

if TYPE_CHECKING:
    from recforge.models.base import Recommender

__all__ = [
    "HyperParameterError",
    "Param",
    "ParamInfo",
    "check_params",
    "check_space",
    "describe_params",
    "param_info",
]


class HyperParameterError(ValueError):
    """A hyper-parameter value or search-space entry that the model's schema does not allow."""


@dataclass(frozen=True)
class Param:
    """Constraints on one hyper-parameter beyond its annotated type (None = unconstrained)."""

    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None


@dataclass(frozen=True)
class ParamInfo:
    """One declared hyper-parameter: name, annotation, default, rule and its validator."""

    name: str
    annotation: Any
    default: Any
    rule: Param
    adapter: TypeAdapter[Any]

    @property
    def required(self) -> bool:
        return self.default is inspect.Parameter.empty

    def kinds(self) -> set[str]:
        """Value kinds the annotation admits: int, float, bool, str, none, other, any."""
        return _kinds(self.annotation)

    def describe(self) -> str:
        """A one-line statement of what is allowed, e.g. ``int >= 1 (default 100)``."""
        r = self.rule
        if r.choices is not None:
            text = "one of " + ", ".join(repr(c) for c in r.choices)
            if "none" in self.kinds():
                text += " or None"
        else:
            optional = typing.get_origin(self.annotation) in (Union, types.UnionType) and (
                type(None) in typing.get_args(self.annotation))
            inner = [a for a in typing.get_args(self.annotation) if a is not type(None)]
            text = _type_name(inner[0] if optional and len(inner) == 1 else self.annotation)
            bounds = [f"{op} {v:g}" for op, v in ((">=", r.ge), (">", r.gt), ("<=", r.le),
                                                   ("<", r.lt)) if v is not None]
            if bounds:
                text += " " + " and ".join(bounds)
            if optional and len(inner) == 1:
                text += " or None"
        if not self.required:
            text += f" (default {self.default!r})"
        return text

    def check(self, value: Any) -> Any:
        """The value if it is allowed; raises ValueError with pydantic's reason otherwise.

        Values are checked as the JSON a spec holds, strictly: 690.0 is no int, "0.5" no
        float, while a list stands for a tuple (YAML has no tuples).
        """
        try:
            return self.adapter.validate_json(json.dumps(jsonable(value)))
        except ValidationError as exc:
            reason = "; ".join(e["msg"] for e in exc.errors())
            raise ValueError(reason) from None


def _kinds(annotation: Any) -> set[str]:
    if annotation is Any or annotation is inspect.Parameter.empty:
        return {"any"}
    origin = typing.get_origin(annotation)
    if origin in (Union, types.UnionType):
        out: set[str] = set()
        for arg in typing.get_args(annotation):
            out |= _kinds(arg)
        return out
    if origin is Literal:
        return {_kind_of(v) for v in typing.get_args(annotation)}
    return {
        bool: {"bool"}, int: {"int"}, float: {"float", "int"}, str: {"str"}, type(None): {"none"},
    }.get(annotation, {"other"})


def _kind_of(value: Any) -> str:
    for kind, typ in (("bool", bool), ("int", int), ("float", float), ("str", str)):
        if isinstance(value, typ):
            return kind
    return "none" if value is None else "other"


def _type_name(annotation: Any) -> str:
    if annotation is inspect.Parameter.empty:
        return "any value"
    name = getattr(annotation, "__name__", None)
    return name if name and typing.get_origin(annotation) is None else (
        str(annotation).replace("typing.", "")
    )


def _adapter(annotation: Any, rule: Param) -> TypeAdapter[Any]:
    base: Any = Any if annotation is inspect.Parameter.empty else annotation
    if rule.choices is not None:
        base = Literal[tuple(rule.choices)]  # type: ignore[valid-type]
        if "none" in _kinds(annotation):
            base = base | None
    bounds = {k: getattr(rule, k) for k in ("ge", "gt", "le", "lt") if getattr(rule, k) is not None}
    typ: Any = Annotated[base, Field(**bounds)] if bounds else base
    return TypeAdapter(typ, config=ConfigDict(strict=True))


@cache
def param_info(cls: type[Recommender]) -> dict[str, ParamInfo]:
    """The declared hyper-parameters of ``cls`` (signature types and defaults + its rules)."""
    sig = inspect.signature(cls.__init__)
    try:
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an annotation that cannot be resolved: fall back to "any value"
        hints = {}
    rules: Mapping[str, Param] = getattr(cls, "param_rules", {}) or {}
    names = [p for p in sig.parameters.values() if p.name != "self"
             and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    unknown = sorted(set(rules) - {p.name for p in names})
    if unknown:
        raise TypeError(f"{cls.__name__}.param_rules names no hyper-parameter(s) {unknown}")
    out = {}
    for p in names:
        ann = hints.get(p.name, inspect.Parameter.empty)
        rule = rules.get(p.name, Param())
        out[p.name] = ParamInfo(p.name, ann, p.default, rule, _adapter(ann, rule))
    return out


def describe_params(cls: type[Recommender]) -> dict[str, str]:
    """name -> what is allowed, for messages and ``--dry-run`` plans."""
    return {name: info.describe() for name, info in param_info(cls).items()}


def check_params(cls: type[Recommender], params: Mapping[str, Any], where: str = "params") -> None:
    """Raise :class:`HyperParameterError` listing every given value the schema refuses.

    ``where`` prefixes each problem (e.g. ``models.2.params``). Unknown names are refused too
    (with the rename hint of ``renamed_params``).
    """
    cls.check_param_names(params, where=f"{where} of {cls.__name__}")
    info = param_info(cls)
    problems = []
    for name, value in params.items():
        try:
            info[name].check(value)
        except ValueError as exc:
            problems.append(f"{where}.{name}={value!r}: {exc}; allowed: {info[name].describe()}")
    if problems:
        raise HyperParameterError(f"{cls.__name__}: " + "\n  ".join(problems))


def check_space(cls: type[Recommender], space: Mapping[str, Any], where: str = "search.space",
                ) -> None:
    """Raise :class:`HyperParameterError` for search-space entries the schema cannot take.

    Every categorical choice must be an allowed value; an int or float range must have both
    ends allowed and a type the parameter takes (a float range for an int parameter would
    sample 5.3 neighbours).
    """
    from recforge.tuning.space import to_distribution

    cls.check_param_names(space, where=f"{where} of {cls.__name__}")
    info = param_info(cls)
    problems = []
    for name, spec in space.items():
        p = info[name]
        try:
            dist = to_distribution(name, spec)
        except (TypeError, ValueError) as exc:
            problems.append(f"{where}.{name}: {exc}")
            continue
        choices = getattr(dist, "choices", None)
        if choices is not None:
            values = list(choices)
        else:
            kind = "int" if type(dist).__name__ == "IntDistribution" else "float"
            kinds = p.kinds()
            if not kinds & {kind, "any"}:
                article = "an" if kind == "int" else "a"
                problems.append(
                    f"{where}.{name}: {article} {kind} range, but {name} takes {p.describe()}")
                continue
            values = [dist.low, dist.high]  # type: ignore[attr-defined]
        for v in values:
            if isinstance(v, float) and not math.isfinite(v):
                problems.append(f"{where}.{name}: {v!r} is not finite")
                continue
            try:
                p.check(v)
            except ValueError as exc:
                problems.append(f"{where}.{name}: {v!r}: {exc}; allowed: {p.describe()}")
    if problems:
        raise HyperParameterError(f"{cls.__name__}: " + "\n  ".join(problems))
