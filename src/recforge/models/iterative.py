"""The one training loop with early stopping, for every model trained in epochs.

A model declares itself iterative by subclassing :class:`IterativeRecommender` (class
attribute ``iterative = True``) and implements four hooks:

- ``_init_training(train, run)``: build the learned state from scratch (seeded); ``run`` is
  the :class:`TrainingRun` (the validation callback, the stopping rule, a logger) so that a
  model with pre-training stages can early-stop them with the same callback;
- ``_train_epoch(epoch) -> float | None``: one epoch (1-based); returns the mean training loss
  or ``None`` when the model does not compute one;
- ``get_state() -> dict`` / ``set_state(state)``: a copy of the learned state, independent of
  further training, and its restoration (used to keep and restore the best epoch);
- optionally ``_end_training()`` (free training-only buffers) and ``_training_context()``
  (a context manager around the whole run, e.g. thread pinning for torch models);
- optionally, with ``resumable = True``, ``_training_snapshot()`` / ``_restore_training(s)``:
  all the state the next epochs depend on, so a fit given ``resume=`` continues after an
  interruption from its last resume point (:mod:`recforge.models.resume`).

The loop (:func:`train_iterative`, called by ``fit``) owns everything else: validate every
``validate_every`` epochs (and at the last epoch), patience, minimum and maximum epochs, keep
the best state and restore it, ``epochs_best_``, ``epochs_run_``, ``best_validation_``,
``stop_reason_`` and the per-epoch ``history_`` (epoch, loss, validation value, seconds), and a
progress line per validation (logger ``recforge.models.iterative``, level INFO).

Models never evaluate themselves: the validation callback comes from the evaluator side
(:func:`recforge.evaluation.validation.validation_callback` builds one from a split's
validation part, a metric and a cut-off). Without a callback, ``fit`` trains exactly
``getattr(model, model.epochs_param)`` epochs.
"""

from __future__ import annotations

import json
import logging
import math
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal, Protocol, Self, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field, model_validator

from recforge._json import dumps
from recforge.data.interactions import Interactions
from recforge.models.base import Recommender
from recforge.models.resume import Resume, read_point, write_point

__all__ = [
    "EarlyStopping",
    "EpochRecord",
    "IterativeRecommender",
    "NamedValidation",
    "TrainingRun",
    "ValidationCallback",
    "train_iterative",
]

log = logging.getLogger(__name__)


class EarlyStopping(BaseModel):
    """When to validate and when to stop (defaults: RecSys'19 ``paper-protocols.md`` §1.5).

    Validate every ``validate_every`` epochs and at the last epoch; stop once ``patience``
    validations in a row did not improve on the best *and* at least ``min_epochs`` epochs ran;
    never run more than ``max_epochs`` (``None``: the model's own epoch hyper-parameter, named
    by its ``epochs_param``). ``monitor="loss"`` stops on the training loss instead of a
    validation callback (lower is better), as CMN's GMF pre-training did.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    validate_every: int = Field(default=5, ge=1)
    patience: int = Field(default=5, ge=1)
    min_epochs: int = Field(default=0, ge=0)
    max_epochs: int | None = Field(default=None, ge=1)
    monitor: Literal["validation", "loss"] = "validation"

    @model_validator(mode="after")
    def _min_below_max(self) -> EarlyStopping:
        if self.max_epochs is not None and self.min_epochs > self.max_epochs:
            raise ValueError(
                f"min_epochs ({self.min_epochs}) must not exceed max_epochs ({self.max_epochs})"
            )
        return self

    def with_cap(self, cap: int | None) -> EarlyStopping:
        """A copy whose ``max_epochs`` is at most ``cap`` (``None`` leaves it unchanged)."""
        if cap is None:
            return self
        new_max = cap if self.max_epochs is None else min(cap, self.max_epochs)
        return self.model_copy(
            update={"max_epochs": new_max, "min_epochs": min(self.min_epochs, new_max)}
        )


@runtime_checkable
class ValidationCallback(Protocol):
    """``callback(model) -> float`` (higher is better) with a ``name`` for progress lines."""

    @property
    def name(self) -> str: ...

    def __call__(self, model: Recommender) -> float: ...


@dataclass(frozen=True)
class NamedValidation:
    """Wraps a plain function ``model -> float`` as a :class:`ValidationCallback`."""

    fn: Callable[[Recommender], float]
    name: str = "validation"

    def __call__(self, model: Recommender) -> float:
        return float(self.fn(model))


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of ``history_``: seconds are training only; validation has its own time."""

    epoch: int
    loss: float | None
    seconds: float
    validation: float | None = None
    validation_seconds: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingRun:
    """What the loop hands to ``_init_training``: the run's validation and stopping rule.

    ``validation`` is None when the model trains a fixed number of epochs. ``stage`` names the
    run in progress lines (a pre-training stage passes its own, e.g. "GMF pre-training").
    """

    validation: ValidationCallback | None
    early_stopping: EarlyStopping | None
    max_epochs: int
    stage: str
    progress: Callable[[str], None] | None = None


class IterativeRecommender(Recommender):
    """Base for models trained in epochs; ``fit`` runs :func:`train_iterative`."""

    #: declared capability: trained in epochs by the shared loop.
    iterative: ClassVar[bool] = True
    #: the hyper-parameter holding the number of epochs (the cap under early stopping).
    epochs_param: ClassVar[str] = "epochs"
    #: the model reports its own progress in runs without validation (CDL's alternations), so
    #: the loop's line every tenth epoch of such a run is left out.
    reports_fixed_progress: ClassVar[bool] = False
    #: the model implements ``_training_snapshot``/``_restore_training``, so a fit given
    #: ``resume=`` can be interrupted and continued (:mod:`recforge.models.resume`).
    resumable: ClassVar[bool] = False

    # what the loop records (see train_iterative)
    epochs_best_: int
    epochs_run_: int
    best_validation_: float | None
    stop_reason_: str
    history_: list[EpochRecord]
    resumed_from_epoch_: int

    @abstractmethod
    def _init_training(self, train: Interactions, run: TrainingRun) -> None:
        """Build the learned state from scratch for ``train`` (seeded)."""

    @abstractmethod
    def _train_epoch(self, epoch: int) -> float | None:
        """Train one epoch (1-based); return the mean training loss or None."""

    @abstractmethod
    def get_state(self) -> dict[str, Any]:
        """A copy of the learned state, independent of further training."""

    @abstractmethod
    def set_state(self, state: dict[str, Any]) -> Self:
        """Restore a state returned by :meth:`get_state`."""

    def _training_snapshot(self) -> dict[str, Any]:
        """Everything the next epochs depend on (weights, optimiser, generators) as a tree of
        dicts, lists, tuples, numbers, strings, arrays and tensors (``resumable`` models)."""
        raise NotImplementedError(f"{type(self).__name__} cannot resume a fit")

    def _restore_training(self, snapshot: dict[str, Any]) -> None:
        """Continue from a :meth:`_training_snapshot` (called after ``_init_training``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot resume a fit")

    def _end_training(self) -> None:
        """Free training-only buffers (called once the loop is done, also on error)."""

    def _training_context(self) -> AbstractContextManager[Any]:
        """Context around the whole run, validation included (thread limits, devices)."""
        return nullcontext()

    def _before_epoch(self, epoch: int) -> None:
        """Called by the loop right before each ``_train_epoch`` (the torch base re-pins its
        threads there, see :func:`recforge.models.torch.base.default_threads`)."""

    def _get_fitted_state(self) -> dict[str, Any]:
        state = super()._get_fitted_state()
        if "history_" in state:
            state["history_"] = [h.to_dict() for h in state["history_"]]
        return state

    def _set_fitted_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        if "history_" in state:
            state["history_"] = [EpochRecord(**h) for h in state["history_"]]
        super()._set_fitted_state(state)

    def _fit(
        self,
        train: Interactions,
        *,
        validation: ValidationCallback | Callable[[Recommender], float] | None = None,
        early_stopping: EarlyStopping | None = None,
        stage: str | None = None,
        progress: Callable[[str], None] | None = None,
        resume: Resume | None = None,
    ) -> None:
        """The training options of ``fit(train, **options)`` (see :func:`train_iterative`)."""
        train_iterative(
            self, train, validation=validation, early_stopping=early_stopping, stage=stage,
            progress=progress, resume=resume,
        )


def _epochs_cap(model: IterativeRecommender, es: EarlyStopping | None) -> int:
    if es is not None and es.max_epochs is not None:
        return int(es.max_epochs)
    name = model.epochs_param
    value = getattr(model, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(
            f"{type(model).__name__}: {name} must be a positive integer, got {value!r}"
        )
    return int(value)


def _as_callback(
    validation: ValidationCallback | Callable[[Recommender], float] | None,
) -> ValidationCallback | None:
    if validation is None or isinstance(validation, ValidationCallback):
        return validation
    if callable(validation):
        return NamedValidation(validation)
    raise TypeError(f"validation must be a callable model -> float, got {type(validation)}")


def _seconds_per_epoch(history: list[EpochRecord], resumed_from: int) -> float:
    """Mean training seconds of the epochs this process ran (a resumed fit's earlier epochs
    ran on another machine or at another load, so they would mislead a time estimate)."""
    here = [h.seconds for h in history if h.epoch > resumed_from]
    return sum(here) / len(here)


def train_iterative(
    model: IterativeRecommender,
    train: Interactions,
    *,
    validation: ValidationCallback | Callable[[Recommender], float] | None = None,
    early_stopping: EarlyStopping | None = None,
    stage: str | None = None,
    progress: Callable[[str], None] | None = None,
    resume: Resume | None = None,
) -> IterativeRecommender:
    """Run ``model``'s epochs on ``train`` under the stopping rule (see the module docstring).

    Called by ``model.fit(train, validation=..., early_stopping=..., stage=..., progress=...)``,
    which checks ``train`` and sets the model's data attributes first; call ``fit``.

    Early stopping is active when a ``validation`` callback is given (``early_stopping``
    defaults to :class:`EarlyStopping`'s paper defaults) or when ``early_stopping.monitor`` is
    ``"loss"``. Otherwise exactly the model's ``epochs_param`` epochs run (or
    ``early_stopping.max_epochs``). Afterwards the model holds the best state and
    ``epochs_best_``, ``epochs_run_``, ``best_validation_``, ``stop_reason_``, ``history_``.
    ``progress`` receives one line per validation (default: this module's logger, INFO).

    ``resume`` (models with ``resumable = True`` only): keep a resume point at ``resume.path``
    (see :mod:`recforge.models.resume`), rewritten after every validated epoch and after any
    other once ``every_seconds`` passed since the last write; a matching point found there at
    the start is continued from, and the finished fit removes it. ``resumed_from_epoch_``
    records the epoch continued from (0: none).
    """
    if not isinstance(model, IterativeRecommender):
        raise TypeError(f"{type(model).__name__} is not an IterativeRecommender")
    if resume is not None and not model.resumable:
        raise ValueError(f"{type(model).__name__} cannot resume a fit (resumable=False); "
                         "fit it without resume=")
    callback = _as_callback(validation)
    es = early_stopping
    if callback is not None and es is None:
        es = EarlyStopping()
    if es is not None and es.monitor == "loss" and callback is not None:
        raise ValueError("early_stopping.monitor='loss' takes no validation callback")
    stopping = es is not None and (callback is not None or es.monitor == "loss")
    max_epochs = _epochs_cap(model, es)
    label = stage or type(model).__name__
    metric_name = "loss" if es is not None and es.monitor == "loss" else (
        callback.name if callback is not None else "")
    run = TrainingRun(validation=callback, early_stopping=es if stopping else None,
                      max_epochs=max_epochs, stage=label, progress=progress)

    every = es.validate_every if es is not None else 1
    tenth = max(1, max_epochs // 10)
    sign = 1.0 if callback is not None else -1.0  # monitor="loss": maximise -loss
    history: list[EpochRecord] = []
    best = -math.inf
    best_epoch = 0
    best_state: dict[str, Any] | None = None
    bad = 0
    reason = "max_epochs"
    epoch = 0
    ok = False
    identity = _resume_identity(model, train, es, max_epochs, label, metric_name)
    resumed_from = 0
    say = progress if progress is not None else (lambda line: log.info("%s", line))
    with model._training_context():
        try:
            model._init_training(train, run)
            if resume is not None:
                point = _read_resume(resume, identity, say, label)
                if point is not None:
                    model._restore_training(point["model"])
                    resumed_from = int(point["epoch"])
                    history = [EpochRecord(**h) for h in point["history"]]
                    best, best_epoch, bad = float(point["best"]), int(point["best_epoch"]), int(
                        point["bad"])
                    best_state = point["best_state"]
                    say(f"{label}: resumed after epoch {resumed_from} from {resume.path}")
            last_write = time.monotonic()

            def keep(epoch: int, validated: bool) -> None:
                nonlocal last_write
                if resume is None or epoch == max_epochs or (
                        not validated and time.monotonic() - last_write < resume.every_seconds):
                    return
                write_point(resume.path, identity, {
                    "epoch": epoch, "history": [h.to_dict() for h in history],
                    "best": best, "best_epoch": best_epoch, "bad": bad,
                    "best_state": best_state, "model": model._training_snapshot()})
                last_write = time.monotonic()

            for epoch in range(resumed_from + 1, max_epochs + 1):
                model._before_epoch(epoch)
                t0 = time.perf_counter()
                loss = model._train_epoch(epoch)
                seconds = time.perf_counter() - t0
                loss_f = None if loss is None else float(loss)
                due = epoch % every == 0 or epoch == max_epochs
                if not (stopping and due):
                    history.append(EpochRecord(epoch, loss_f, seconds))
                    if (not stopping and progress is not None and not model.reports_fixed_progress
                            and (epoch % tenth == 0 or epoch == max_epochs)):
                        # a run without validation would otherwise be silent to the end
                        progress(f"{label} epoch {epoch}/{max_epochs}: loss "
                                 f"{'-' if loss_f is None else f'{loss_f:.4f}'}, "
                                 f"{_seconds_per_epoch(history, resumed_from):.2f}s/epoch "
                                 f"(fixed epochs)")
                    keep(epoch, validated=False)
                    continue
                assert es is not None
                # the base class's fitted marker: the model is scorable mid-training
                model.fit_seconds_ = sum(h.seconds for h in history) + seconds
                t1 = time.perf_counter()
                if callback is not None:
                    value = float(callback(model))
                else:
                    if loss_f is None:
                        raise ValueError(
                            f"{label}: monitor='loss' needs _train_epoch to return the loss"
                        )
                    value = -loss_f
                v_seconds = time.perf_counter() - t1
                history.append(EpochRecord(epoch, loss_f, seconds, value, v_seconds))
                if value > best:  # NaN never improves
                    best, best_epoch, best_state, bad = value, epoch, model.get_state(), 0
                else:
                    bad += 1
                line = (
                    f"{label} epoch {epoch}/{max_epochs}: loss "
                    f"{'-' if loss_f is None else f'{loss_f:.4f}'}, {metric_name} "
                    f"{sign * value:.4f} (best {sign * best:.4f} at epoch {best_epoch}), "
                    f"{_seconds_per_epoch(history, resumed_from):.2f}s/epoch"
                )
                say(line)
                if bad >= es.patience and epoch >= es.min_epochs:
                    reason = "patience"
                    break
                keep(epoch, validated=True)
            ok = True
        finally:
            if not ok:  # a failed fit leaves the model unfitted
                vars(model).pop("fit_seconds_", None)
            model._end_training()
    if resume is not None:
        resume.path.unlink(missing_ok=True)
    if stopping:
        if best_state is None:
            vars(model).pop("fit_seconds_", None)
            raise RuntimeError(
                f"{label}: early stopping saw no finite {metric_name or 'validation'} value "
                f"in {epoch} epochs"
            )
        if best_epoch != epoch:
            model.set_state(best_state)
        model.best_validation_ = sign * best
        model.epochs_best_ = best_epoch
    else:
        reason = "fixed epochs"
        model.best_validation_ = None
        model.epochs_best_ = epoch
    model.epochs_run_ = epoch
    model.resumed_from_epoch_ = resumed_from
    model.stop_reason_ = reason
    model.history_ = history
    return model


def _resume_identity(model: IterativeRecommender, train: Interactions,
                     es: EarlyStopping | None, max_epochs: int, label: str,
                     metric: str) -> dict[str, Any]:
    """What a resume point must match to be continued: the same fit of the same model."""
    cls = type(model)
    return json.loads(dumps({
        "model": f"{cls.__module__}.{cls.__qualname__}", "params": model.get_params(),
        "train": train.checksum(), "early_stopping": es, "max_epochs": max_epochs,
        "stage": label, "validation": metric,
    }, indent=None))


def _read_resume(resume: Resume, identity: dict[str, Any], say: Callable[[str], None],
                 label: str) -> dict[str, Any] | None:
    if not resume.path.exists():
        return None
    try:
        found, state = read_point(resume.path)
    except ValueError as exc:
        say(f"{label}: ignoring the resume point, starting at epoch 1: {exc}")
        return None
    if found != identity:
        diff = sorted(k for k in set(found) | set(identity) if found.get(k) != identity.get(k))
        say(f"{label}: the resume point at {resume.path} is of another fit (differs in "
            f"{', '.join(diff)}); starting at epoch 1")
        return None
    return state


def iter_epochs(records: list[EpochRecord]) -> Iterator[tuple[int, float]]:
    """``(epoch, validation value)`` of the validated epochs, in order."""
    for r in records:
        if r.validation is not None:
            yield r.epoch, r.validation
