"""Job templates: reusable, parameterised job specs owned by a group (or by ``admin``).

A :class:`Template` has typed parameters and a *body*: a JobSpec-shaped mapping in which strings
may contain ``${param}`` placeholders (``$$`` is a literal ``$``). :func:`render` substitutes the
values and validates the result as a :class:`~recforge.platform.specs.JobSpec`; that rendered
spec is what gets stored with a job, so later template edits never change submitted jobs.

Substitution is plain text replacement, no expression language: a string that is exactly one
placeholder (``"${workers}"``) becomes the parameter's typed value (an int stays an int, a list
a list); a placeholder inside a longer string is replaced by the value's text (``true``/``false``
for booleans; lists cannot be embedded in text). Mapping keys are never substituted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from recforge.platform.model.names import NAME_PATTERN
from recforge.platform.model.specs import (
    JobSpec,
    SpecError,
    format_validation_error,
    load_mapping,
    parse_job_spec,
)

__all__ = ["Template", "TemplateParameter", "parse_template", "placeholders", "render"]

ParamType = Literal["int", "float", "str", "bool", "list"]
_PLACEHOLDER = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|(\$)|(\{[^}]*\}?))")
_ONLY = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def _coerce(name: str, kind: ParamType, value: Any) -> Any:
    """``value`` as ``kind``; strings from CLIs/forms are converted strictly, else SpecError."""
    bad = SpecError(f"parameter {name!r}: expected {kind}, got {value!r}")
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        raise bad
    if kind == "int":
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, str) and re.fullmatch(r"\s*[-+]?\d+\s*", value):
            return int(value)
        raise bad
    if kind == "float":
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int | float):
            out = float(value)
        elif isinstance(value, str):
            try:
                out = float(value)
            except ValueError:
                raise bad from None
        else:
            raise bad
        if not math.isfinite(out):
            raise bad
        return out
    if kind == "str":
        if isinstance(value, str):
            return value
        raise bad
    if isinstance(value, list | tuple):
        return list(value)
    raise bad


class TemplateParameter(BaseModel):
    """A typed parameter; without ``default`` it is required."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    type: ParamType = "str"
    default: Any = None
    required: bool = False
    choices: list[Any] | None = None
    min: float | None = None
    max: float | None = None
    description: str = ""

    @model_validator(mode="after")
    def _check(self) -> TemplateParameter:
        if (self.min is not None or self.max is not None) and self.type not in ("int", "float"):
            raise ValueError(f"min: min/max only apply to int and float, not {self.type}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min: {self.min:g} is above max {self.max:g}")
        if self.choices is not None:
            if not self.choices:
                raise ValueError("choices: must not be empty (omit it instead)")
            try:
                object.__setattr__(
                    self, "choices", [_coerce(self.name, self.type, c) for c in self.choices]
                )
            except SpecError as exc:
                raise ValueError(f"choices: {exc}") from None
        if self.default is None:
            object.__setattr__(self, "required", True)
        else:
            try:
                object.__setattr__(self, "default", self.check(self.default))
            except SpecError as exc:
                raise ValueError(f"default: {exc}") from None
        return self

    def check(self, value: Any) -> Any:
        """Coerce and check one value (type, choices, range); raises :class:`SpecError`."""
        v = _coerce(self.name, self.type, value)
        if self.choices is not None and v not in self.choices:
            raise SpecError(f"parameter {self.name!r}: {v!r} is not one of {self.choices}")
        if self.min is not None and v < self.min:
            raise SpecError(f"parameter {self.name!r}: {v!r} is below the minimum {self.min:g}")
        if self.max is not None and v > self.max:
            raise SpecError(f"parameter {self.name!r}: {v!r} is above the maximum {self.max:g}")
        return v


def placeholders(body: Any) -> set[str]:
    """Names of every ``${name}`` used in string values of ``body`` (recursively)."""
    found: set[str] = set()
    if isinstance(body, str):
        for m in _PLACEHOLDER.finditer(body):
            if m.group(1):
                found.add(m.group(1))
    elif isinstance(body, Mapping):
        for v in body.values():
            found |= placeholders(v)
    elif isinstance(body, list | tuple):
        for v in body:
            found |= placeholders(v)
    return found


def _malformed(body: Any, path: str = "body") -> str | None:
    """Path of the first string with a ``$`` that is neither ``${name}`` nor ``$$``."""
    if isinstance(body, str):
        for m in _PLACEHOLDER.finditer(body):
            if m.group(3) is not None:
                return f"{path}: malformed placeholder '${m.group(3)}' in {body!r}"
        stray = re.sub(r"\$(\{[A-Za-z_][A-Za-z0-9_]*\}|\$)", "", body)
        if "$" in stray:
            return f"{path}: stray '$' in {body!r} (write '$$' for a literal '$')"
    elif isinstance(body, Mapping):
        for k, v in body.items():
            why = _malformed(v, f"{path}.{k}")
            if why:
                return why
    elif isinstance(body, list | tuple):
        for i, v in enumerate(body):
            why = _malformed(v, f"{path}.{i}")
            if why:
                return why
    return None


class Template(BaseModel):
    """A named, parameterised job spec owned by a group (or ``"admin"``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=NAME_PATTERN)
    owner: str = Field(default="admin", pattern=NAME_PATTERN, description="a group, or 'admin'")
    description: str = ""
    parameters: list[TemplateParameter] = Field(default_factory=list)
    body: dict[str, Any]

    @model_validator(mode="after")
    def _check(self) -> Template:
        names = [p.name for p in self.parameters]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"parameters: duplicate parameter name(s) {dup}")
        why = _malformed(self.body)
        if why:
            raise ValueError(why)
        undeclared = sorted(placeholders(self.body) - set(names))
        if undeclared:
            raise ValueError(f"body: uses undeclared parameter(s) {undeclared}")
        return self

    def parameter(self, name: str) -> TemplateParameter:
        for p in self.parameters:
            if p.name == name:
                return p
        raise KeyError(name)


def parse_template(data: Mapping[str, Any] | str | bytes, source: str = "<template>") -> Template:
    """Validate a template from YAML/JSON text or a dict; raises :class:`SpecError`."""
    mapping = load_mapping(data, "template", source)
    try:
        return Template.model_validate(mapping)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, "template", source)) from None


def _text(value: Any, name: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        raise SpecError(f"parameter {name!r} is a list and cannot be embedded in text")
    return str(value)


def _substitute(node: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(node, str):
        only = _ONLY.match(node)
        if only:
            return values[only.group(1)]
        return _PLACEHOLDER.sub(
            lambda m: "$" if m.group(2) else _text(values[m.group(1)], m.group(1)), node
        )
    if isinstance(node, Mapping):
        return {k: _substitute(v, values) for k, v in node.items()}
    if isinstance(node, list | tuple):
        return [_substitute(v, values) for v in node]
    return node


def render(template: Template, values: Mapping[str, Any] | None = None) -> JobSpec:
    """Fill ``template`` with ``values`` and validate the result as a job spec.

    Raises :class:`SpecError` for an unknown parameter, a missing required value, a wrong type
    or a value outside its choices/range (each naming the parameter), or for a rendered spec
    that is invalid (naming the field).
    """
    values = dict(values or {})
    known = {p.name: p for p in template.parameters}
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise SpecError(
            f"template {template.name!r}: unknown parameter(s) {unknown}; "
            f"known: {sorted(known) or 'none'}"
        )
    missing = sorted(n for n, p in known.items() if p.required and n not in values)
    if missing:
        raise SpecError(f"template {template.name!r}: missing required parameter(s) {missing}")
    resolved: dict[str, Any] = {}
    for name, p in known.items():
        try:
            resolved[name] = p.check(values[name]) if name in values else p.default
        except SpecError as exc:
            raise SpecError(f"template {template.name!r}: {exc}") from None
    try:
        body = _substitute(template.body, resolved)
    except SpecError as exc:
        raise SpecError(f"template {template.name!r}: {exc}") from None
    return parse_job_spec(body, source=f"rendered from template {template.name!r}")
