"""Schedules: a DAG or a job run once (``at``) or on a cron expression in a time zone (pure data).

Cron expressions are read by `cronsim <https://pypi.org/project/cronsim/>`_ (Debian cron's
semantics: 5 fields, or 6 with seconds first; ``L``, ``#``, names of days and months; on a
daylight-saving change a job at a fixed time that falls in the gap runs at the first valid
time, one in the repeated hour runs once). Every instant is computed in ``timezone`` (an IANA
name, default UTC) and stored as seconds since the epoch.

What happens when an instant comes (``concurrency``, as Kubernetes CronJob's policy, with
``queue`` instead of ``Allow``): ``forbid`` records it as skipped while a run of the schedule is
still going; ``queue`` keeps it and starts it when the runs before it have ended (runs never
overlap, none is dropped); ``replace`` cancels the run still going and starts the new one.

After downtime (or any time several instants are due at once) only the ``catch_up`` most recent
due instants run, oldest first, and the older ones are recorded as missed (one event naming how
many and from when to when); an instant more than ``starting_deadline_seconds`` late is missed
whatever the bound. ``backfill`` (an API call) records every instant of a date range to run one
after another. A suspended schedule fires no new instant; what was queued before (a backlog, a
backfill) still runs. A restart never loses or doubles a run: the instants dealt with are
recorded in the transaction that starts their runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from recforge.platform.model.names import check_name
from recforge.platform.model.specs import SpecError, format_validation_error, load_mapping

__all__ = [
    "MAX_BACKFILL",
    "Concurrency",
    "ScheduleSpec",
    "iso_instant",
    "iter_instants",
    "parse_schedule_spec",
]

Concurrency = Literal["forbid", "queue", "replace"]
#: the most instants one backfill may record.
MAX_BACKFILL = 1000


def iso_instant(t: float | None) -> str:
    """An instant (seconds since the epoch) as ISO 8601 in UTC; "" for None."""
    return "" if t is None else datetime.fromtimestamp(t, UTC).isoformat()


def _cron(expr: str, start: datetime, reverse: bool = False) -> Iterator[datetime]:
    from cronsim import CronSim

    return iter(CronSim(expr, start, reverse=reverse))


class ScheduleSpec(BaseModel):
    """A schedule (see the module docstring): exactly one of ``cron``/``at`` and of
    ``dag``/``job``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    cron: str | None = Field(default=None, description="5 fields, or 6 with seconds first")
    at: datetime | None = Field(default=None,
                                description="run once at this time (naive: in `timezone`)")
    timezone: str = "UTC"
    concurrency: Concurrency = "forbid"
    catch_up: int = Field(default=1, ge=1, le=1000,
                          description="at most this many of the instants due at once run")
    starting_deadline_seconds: float | None = Field(
        default=None, gt=0, allow_inf_nan=False,
        description="an instant later than this is missed, not run",
    )
    suspended: bool = False
    dag: dict[str, Any] | None = Field(default=None, description="a DAG spec")
    job: dict[str, Any] | None = Field(default=None,
                                       description="a job spec, or {template, values}")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "schedule name")

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as 'Europe/Berlin' "
                             "or 'UTC')") from None  # fmt: skip
        return v

    @field_validator("cron")
    @classmethod
    def _expr(cls, v: str | None) -> str | None:
        if v is None:
            return v
        from cronsim import CronSimError

        try:
            next(_cron(v, datetime(2000, 1, 1, tzinfo=UTC)))
        except (CronSimError, StopIteration) as exc:
            raise ValueError(f"invalid cron expression {v!r}: {exc or 'never matches'}") from None
        return v

    @model_validator(mode="after")
    def _check(self) -> ScheduleSpec:
        if (self.cron is None) == (self.at is None):
            raise ValueError("cron: give a 'cron' expression or a one-off time 'at' (exactly one)")
        if (self.dag is None) == (self.job is None):
            raise ValueError("dag: give the 'dag' or the 'job' to run (exactly one)")
        return self

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def target(self) -> Literal["dag", "job"]:
        return "dag" if self.dag is not None else "job"

    def at_epoch(self) -> float:
        assert self.at is not None
        at = self.at if self.at.tzinfo is not None else self.at.replace(tzinfo=self.zone)
        return at.timestamp()

    def instants(self, after: float, until: float, limit: int) -> list[float]:
        """The instants in ``(after, until]``, oldest first, at most ``limit`` (the first ones)."""
        if self.at is not None:
            t = self.at_epoch()
            return [t] if after < t <= until and limit > 0 else []
        assert self.cron is not None
        out: list[float] = []
        for dt in _cron(self.cron, datetime.fromtimestamp(after, self.zone)):
            t = dt.timestamp()
            if t > until or len(out) >= limit:
                break
            if t > after:
                out.append(t)
        return out

    def latest(self, after: float, until: float, n: int) -> list[float]:
        """The ``n`` most recent instants in ``(after, until]``, oldest first."""
        if self.at is not None:
            return self.instants(after, until, n)
        assert self.cron is not None
        out: list[float] = []
        # Reverse iteration from a time with a fraction of a second starts at its whole second,
        # so an instant exactly at ``until`` is included.
        start = datetime.fromtimestamp(until + 0.5, self.zone)
        for dt in _cron(self.cron, start, reverse=True):
            t = dt.timestamp()
            if t <= after or len(out) >= n:
                break
            if t <= until:
                out.append(t)
        return sorted(out)

    def next_after(self, t: float) -> float | None:
        """The first instant after ``t`` (None: a one-off already past)."""
        if self.at is not None:
            at = self.at_epoch()
            return at if at > t else None
        assert self.cron is not None
        return next(_cron(self.cron, datetime.fromtimestamp(t, self.zone))).timestamp()


def iter_instants(spec: ScheduleSpec, start: float, end: float) -> list[float]:
    """Every instant in ``[start, end]`` (a backfill); :class:`SpecError` if more than
    :data:`MAX_BACKFILL`."""
    if end < start:
        raise SpecError(f"backfill: end {end} is before start {start}")
    found = spec.instants(start - 1e-6, end, MAX_BACKFILL + 1)
    if len(found) > MAX_BACKFILL:
        raise SpecError(f"backfill: more than {MAX_BACKFILL} instants between the two dates; "
                        "backfill a shorter range at a time")  # fmt: skip
    return found


def parse_schedule_spec(data: Mapping[str, Any] | str | bytes,
                        source: str = "<schedule>") -> ScheduleSpec:  # fmt: skip
    """Validate a schedule from YAML/JSON text or a dict; :class:`SpecError` names the field."""
    mapping = load_mapping(data, "schedule", source)
    try:
        return ScheduleSpec.model_validate(mapping)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, "schedule", source)) from None
