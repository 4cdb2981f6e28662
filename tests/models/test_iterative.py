"""The one training loop: validation cadence, patience, bounds, best-state restore, history."""

from __future__ import annotations

import logging
import math
from typing import Any, Self

import numpy as np
import pytest
import scipy.sparse as sp
from pydantic import ValidationError

from recforge.data.interactions import Interactions
from recforge.models.iterative import (
    EarlyStopping,
    IterativeRecommender,
    NamedValidation,
    TrainingRun,
    train_iterative,
)


class _Counter(IterativeRecommender):
    """Its state is the number of epochs trained; scores reveal it; the loss is 1/epoch."""

    name = "Counter"

    def __init__(self, epochs: int = 10, loss_curve: list[float] | None = None) -> None:
        self.epochs = epochs
        self.loss_curve = loss_curve

    def _init_training(self, train: Interactions, run: TrainingRun) -> None:
        self.trained_ = 0
        self.inits_ = getattr(self, "inits_", 0) + 1
        self._run = run

    def _train_epoch(self, epoch: int) -> float | None:
        self.trained_ += 1
        if self.loss_curve is not None:
            return self.loss_curve[epoch - 1]
        return 1.0 / epoch

    def _end_training(self) -> None:
        self.ended_ = True

    def get_state(self) -> dict[str, Any]:
        return {"trained": self.trained_}

    def set_state(self, state: dict[str, Any]) -> Self:
        self.trained_ = int(state["trained"])
        return self

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.full((len(users), self.n_items_), float(self.trained_), dtype=np.float32)


def _train() -> Interactions:
    return Interactions(sp.csr_matrix(np.eye(4, 6, dtype=np.float32)))


def _curve(values: dict[int, float]) -> NamedValidation:
    """A validation callback reading the model's epoch and returning the planted value."""

    def value(model: Any) -> float:
        return values[int(model.trained_)]

    return NamedValidation(value, name="PLANTED@1")


def test_fixed_epochs_without_validation() -> None:
    m = _Counter(epochs=7).fit(_train())
    assert m.trained_ == 7 and m.epochs_run_ == 7 and m.epochs_best_ == 7
    assert m.best_validation_ is None and m.stop_reason_ == "fixed epochs"
    assert [h.epoch for h in m.history_] == list(range(1, 8))
    assert all(h.validation is None for h in m.history_)
    assert m.history_[2].loss == pytest.approx(1 / 3) and all(h.seconds >= 0 for h in m.history_)
    assert m.ended_ and m._run.validation is None


def test_validates_every_n_and_stops_after_patience_restoring_best() -> None:
    # rises to a peak at epoch 10, then falls: with patience 3 the run stops at epoch 25
    values = {e: 1.0 - abs(e - 10) / 100 for e in range(1, 101)}
    m = _Counter(epochs=100)
    m.fit(_train(), validation=_curve(values),
          early_stopping=EarlyStopping(validate_every=5, patience=3))
    validated = [h.epoch for h in m.history_ if h.validation is not None]
    assert validated == [5, 10, 15, 20, 25]
    assert m.epochs_run_ == 25 and m.stop_reason_ == "patience"
    assert m.epochs_best_ == 10 and m.best_validation_ == pytest.approx(1.0)
    assert m.trained_ == 10  # the best state was restored
    assert len(m.history_) == 25 and m.history_[9].validation == pytest.approx(1.0)
    assert m.history_[9].validation_seconds is not None


def test_min_epochs_and_final_epoch_validation() -> None:
    values = {e: 1.0 if e == 5 else 0.5 for e in range(1, 50)}
    m = _Counter(epochs=23)
    m.fit(_train(), validation=_curve(values),
          early_stopping=EarlyStopping(validate_every=5, patience=1, min_epochs=18))
    validated = [h.epoch for h in m.history_ if h.validation is not None]
    # epoch 10 already fails patience 1, but the loop runs on until min_epochs (18) is reached
    assert validated == [5, 10, 15, 20] and m.epochs_best_ == 5 and m.trained_ == 5
    # the cap is validated even when it is not a multiple of validate_every
    m2 = _Counter(epochs=23)
    m2.fit(_train(), validation=_curve({e: float(e) for e in range(1, 50)}),
           early_stopping=EarlyStopping(validate_every=5, patience=2))
    assert [h.epoch for h in m2.history_ if h.validation is not None] == [5, 10, 15, 20, 23]
    assert m2.epochs_best_ == 23 and m2.stop_reason_ == "max_epochs"


def test_max_epochs_overrides_the_model_cap_and_with_cap() -> None:
    m = _Counter(epochs=100)
    es = EarlyStopping(validate_every=2, patience=50, max_epochs=6)
    m.fit(_train(), validation=_curve({e: float(e) for e in range(1, 101)}), early_stopping=es)
    assert m.epochs_run_ == 6 and m.epochs_best_ == 6
    capped = EarlyStopping(min_epochs=400).with_cap(30)
    assert capped.max_epochs == 30 and capped.min_epochs == 30
    assert EarlyStopping(max_epochs=10).with_cap(30).max_epochs == 10
    assert EarlyStopping().with_cap(None).max_epochs is None


def test_nan_never_improves_and_all_nan_fails() -> None:
    values = {e: (math.nan if e == 10 else float(e == 5)) for e in range(1, 50)}
    m = _Counter(epochs=40)
    m.fit(_train(), validation=_curve(values), early_stopping=EarlyStopping(patience=2))
    assert m.epochs_best_ == 5 and m.epochs_run_ == 15
    with pytest.raises(RuntimeError, match="no finite PLANTED@1"):
        _Counter(epochs=20).fit(_train(), validation=_curve(dict.fromkeys(range(1, 21),
                                                                           math.nan)))


def test_monitor_loss_stops_on_training_loss() -> None:
    losses = [5, 4, 3, 2, 1, 2, 3, 4, 5, 6, 7, 8]
    m = _Counter(epochs=12, loss_curve=[float(x) for x in losses])
    m.fit(_train(), early_stopping=EarlyStopping(validate_every=1, patience=3, monitor="loss"))
    assert m.epochs_best_ == 5 and m.epochs_run_ == 8 and m.trained_ == 5
    assert m.best_validation_ == pytest.approx(1.0)  # reported as the loss itself
    with pytest.raises(ValueError, match="takes no validation callback"):
        _Counter().fit(_train(), validation=_curve({}),
                       early_stopping=EarlyStopping(monitor="loss"))


def test_progress_line_per_validation(caplog: pytest.LogCaptureFixture) -> None:
    values = {e: float(e) for e in range(1, 21)}
    lines: list[str] = []
    _Counter(epochs=20).fit(_train(), validation=_curve(values), progress=lines.append,
                            stage="Counter (test)")
    assert len(lines) == 4
    assert lines[1].startswith("Counter (test) epoch 10/20: loss 0.1000, PLANTED@1 10.0000")
    assert "best 10.0000 at epoch 10" in lines[1]
    with caplog.at_level(logging.INFO, logger="recforge.models.iterative"):
        _Counter(epochs=10).fit(_train(), validation=_curve(values))
    assert sum("PLANTED@1" in r.getMessage() for r in caplog.records) == 2


def test_plain_function_callback_and_refit_from_scratch() -> None:
    m = _Counter(epochs=10)
    m.fit(_train(), validation=lambda model: -abs(model.trained_ - 5),
          early_stopping=EarlyStopping(validate_every=1, patience=2))
    assert m.epochs_best_ == 5 and m.trained_ == 5
    m.fit(_train())  # a second fit starts from scratch
    assert m.inits_ == 2 and m.trained_ == 10 and m.best_validation_ is None


def test_bad_configuration_is_named() -> None:
    with pytest.raises(ValidationError, match="validate_every"):
        EarlyStopping(validate_every=0)
    with pytest.raises(ValidationError, match="patienc"):
        EarlyStopping(patience=-1)
    with pytest.raises(ValidationError, match="min_epochs"):
        EarlyStopping(min_epochs=10, max_epochs=5)
    with pytest.raises(ValidationError, match="extra"):
        EarlyStopping(patients=3)  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        _Counter(epochs=0).fit(_train())
    with pytest.raises(TypeError, match="not an IterativeRecommender"):
        train_iterative(object(), _train())  # type: ignore[arg-type]


def test_failed_fit_leaves_the_model_unfitted() -> None:
    from recforge.models import NotFittedError

    def broken(model: Any) -> float:
        if model.trained_ == 4:
            raise RuntimeError("validation broke")
        return 1.0

    m = _Counter(epochs=10)
    with pytest.raises(RuntimeError, match="validation broke"):
        m.fit(_train(), validation=broken, early_stopping=EarlyStopping(validate_every=2))
    assert not m.is_fitted and m.ended_
    with pytest.raises(NotFittedError):
        m.score(np.arange(2))


def test_saved_history_round_trips(tmp_path: Any) -> None:
    m = _Counter(epochs=6).fit(_train(), validation=_curve({e: float(e % 4) for e in range(7)}),
                               early_stopping=EarlyStopping(validate_every=1, patience=9))
    m.save(tmp_path / "m")
    back = _Counter.load(tmp_path / "m", data=_train())
    assert back.history_ == m.history_ and back.epochs_best_ == 3 and back.trained_ == 3
    np.testing.assert_array_equal(back.score(np.arange(4)), m.score(np.arange(4)))


class _ResumableCounter(_Counter):
    """A counter whose training state can be saved and continued (a resume point)."""

    name = "ResumableCounter"
    resumable = True

    def _training_snapshot(self) -> dict[str, Any]:
        return {"trained": self.trained_, "weights": np.arange(3.0) * self.trained_}

    def _restore_training(self, snapshot: dict[str, Any]) -> None:
        assert np.array_equal(snapshot["weights"], np.arange(3.0) * snapshot["trained"])
        self.trained_ = int(snapshot["trained"])


def _stops_at(values: dict[int, float], at: int) -> NamedValidation:
    """Like :func:`_curve`, but the run is interrupted when epoch ``at`` is validated."""

    def value(model: Any) -> float:
        if int(model.trained_) == at:
            raise KeyboardInterrupt
        return values[int(model.trained_)]

    return NamedValidation(value, name="PLANTED@1")


def test_an_interrupted_fit_resumes_from_its_last_resume_point(tmp_path: Any) -> None:
    from recforge.models.resume import Resume

    values = {e: v for e, v in zip(range(1, 13), [1, 2, 3, 4, 5, 6, 5, 4, 3, 2, 1, 0],
                                   strict=True)}
    es = EarlyStopping(validate_every=2, patience=2)
    whole = _ResumableCounter(epochs=12).fit(_train(), validation=_curve(values),
                                             early_stopping=es)
    point = Resume(path=tmp_path / "fit.npz", every_seconds=0)
    model = _ResumableCounter(epochs=12)
    with pytest.raises(KeyboardInterrupt):
        model.fit(_train(), validation=_stops_at(values, 8), early_stopping=es, resume=point)
    assert point.path.is_file() and not model.is_fitted
    lines: list[str] = []
    model.fit(_train(), validation=_curve(values), early_stopping=es, resume=point,
              progress=lines.append)
    assert "resumed after epoch 7" in lines[0]
    assert model.resumed_from_epoch_ == 7 and whole.resumed_from_epoch_ == 0
    assert [(h.epoch, h.loss, h.validation) for h in model.history_] == [
        (h.epoch, h.loss, h.validation) for h in whole.history_]
    assert (model.epochs_best_, model.epochs_run_, model.trained_) == (
        whole.epochs_best_, whole.epochs_run_, whole.trained_) == (6, 10, 6)
    assert not point.path.exists()  # a finished fit removes its resume point


def test_progress_rate_of_a_resumed_fit_counts_only_its_own_epochs() -> None:
    from recforge.models.iterative import EpochRecord, _seconds_per_epoch

    # epochs 1-4 ran before the resume at another load; the estimate is this process's pace
    history = [EpochRecord(e, 0.5, 600.0) for e in range(1, 5)] + [
        EpochRecord(5, 0.4, 30.0, 0.1, 2.0), EpochRecord(6, 0.3, 40.0)]
    assert _seconds_per_epoch(history, resumed_from=4) == 35.0
    assert _seconds_per_epoch(history, resumed_from=0) == (4 * 600 + 70) / 6


def test_a_resume_point_of_another_fit_is_not_continued(tmp_path: Any) -> None:
    from recforge.models.resume import Resume, read_point

    values = dict.fromkeys(range(1, 9), 1.0)
    point = Resume(path=tmp_path / "fit.npz", every_seconds=0)
    with pytest.raises(KeyboardInterrupt):
        _ResumableCounter(epochs=8).fit(_train(), validation=_stops_at(values, 5),
                                        early_stopping=EarlyStopping(patience=9),
                                        resume=point)
    identity, state = read_point(point.path)
    assert state["epoch"] == 4 and identity["params"]["epochs"] == 8
    lines: list[str] = []
    other = _ResumableCounter(epochs=7).fit(
        _train(), validation=_curve(values), early_stopping=EarlyStopping(patience=9),
        resume=point, progress=lines.append)
    assert "another fit (differs in max_epochs, params)" in lines[0]
    assert other.resumed_from_epoch_ == 0 and other.epochs_run_ == 7
    point.path.write_bytes(b"not a resume point")
    lines.clear()
    _ResumableCounter(epochs=3).fit(_train(), resume=point, progress=lines.append)
    assert "ignoring the resume point" in lines[0] and str(point.path) in lines[0]


def test_resume_needs_a_resumable_model(tmp_path: Any) -> None:
    from recforge.models.resume import Resume

    with pytest.raises(ValueError, match="Counter cannot resume a fit"):
        _Counter(epochs=2).fit(_train(), resume=Resume(path=tmp_path / "x.npz"))
    assert not (tmp_path / "x.npz").exists()
