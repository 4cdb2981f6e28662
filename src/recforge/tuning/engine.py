"""Hyper-parameter search with the RecSys'19 paper's protocol, on optuna.

What follows the paper (``paper-protocols.md`` §1.4, §1.5):

- 35 trials, the first 5 random, maximising one metric at one cut-off on the *validation*
  part (``split.validation``; train items excluded; the candidate protocol uses
  ``split.validation_negatives``). Models are fitted on ``split.train`` (train minus validation).
- A configuration that raises gets the worst score (:data:`WORST_SCORE`, below any metric
  value), and its exception is kept in its trial record.
- Each time a trial sets a new best validation score, the same fitted model is evaluated on
  the test part (no refit on train + validation); ``test_result_of_best`` is that evaluation.
- Iterative models (``iterative = True``, see :mod:`recforge.models.iterative`) given an
  :class:`EarlyStopping` train through the project's one loop with a validation callback
  built by :func:`recforge.evaluation.validation.validation_callback` from the objective
  (every 5 epochs, stop after 5 validations without improvement by default); the best
  epoch's state is restored (no re-fit) and its epoch count becomes the model's epoch
  hyper-parameter in the trial's params; the per-epoch history is kept in the record.

Deliberate deviation: the paper used scikit-optimize's GP (``gp_minimize``, unseeded); we use
optuna's ``TPESampler(seed=seed, n_startup_trials=5)``, which is seeded and reproducible.

Parallel trials (``n_jobs > 1``) run in spawned worker processes, each limited to one BLAS/
OpenMP thread, with optuna's ask/tell in the parent; the sampler then uses the constant-liar
strategy and the order in which trials finish (hence the exact sequence) depends on timing.
"""

from __future__ import annotations

import json
import logging
import math
import multiprocessing
import os
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from recforge._json import jsonable
from recforge.data.split import Split
from recforge.models import get_model_class
from recforge.models.base import Recommender
from recforge.models.iterative import EarlyStopping, IterativeRecommender, iter_epochs
from recforge.models.params import check_params, check_space
from recforge.tuning.memory import PeakMemory
from recforge.tuning.shared import SharedSearch, SharedStudy, storage_lock
from recforge.tuning.space import SearchSpace, to_distributions, validate_space
from recforge.tuning.storage import ResumeError, StoredTrial, StudyStore

if TYPE_CHECKING:
    from recforge.evaluation import EvaluationResult

__all__ = [
    "WORST_SCORE",
    "EarlyStopping",
    "TrialRecord",
    "TuningResult",
    "default_search_space",
    "tune",
]

log = logging.getLogger(__name__)

#: objective given to the sampler for a failed configuration (every metric is >= 0).
WORST_SCORE = -1.0

Protocol = Literal["full", "candidates"]
TrialCallback = Callable[["TrialRecord"], None]


@dataclass
class TrialRecord:
    """What one configuration did. ``score`` is None when the trial failed.

    Timings are wall seconds: ``fit_seconds`` is training only (all epochs), ``eval_seconds``
    every validation evaluation, ``test_eval_seconds`` the test evaluation (new bests only).
    ``peak_memory_mb`` is the trial's peak memory above its starting point, measured by
    ``memory_method`` (see :mod:`recforge.tuning.memory`).
    """

    number: int
    params: dict[str, Any]
    status: Literal["ok", "failed"]
    score: float | None
    objective: float
    fit_seconds: float = 0.0
    eval_seconds: float = 0.0
    test_eval_seconds: float = 0.0
    peak_memory_mb: float | None = None
    peak_rss_mb: float | None = None
    memory_method: str = "none"
    is_new_best: bool = False
    best_epoch: int | None = None
    epochs_run: int | None = None
    validation_curve: list[tuple[int, float]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    test_summary: dict[str, float] | None = None
    #: validation values of the report metrics at every report cut-off (``report_metrics`` /
    #: ``report_cutoffs`` of :func:`tune`), the objective among them; None when not asked
    validation_summary: dict[str, float] | None = None
    error: str | None = None
    traceback: str | None = None
    cached_from: int | None = None
    worker: str = "in-process"

    def to_dict(self) -> dict[str, Any]:
        return jsonable(asdict(self))


@dataclass
class TuningResult:
    """The search outcome. ``best_params`` are full constructor arguments for the model.

    ``trials`` are in completion order (the order the sampler was told the results, which
    defines ``is_new_best``); with ``n_jobs > 1`` that can differ from trial numbers.
    """

    model_name: str
    metric: str
    cutoff: int
    protocol: str
    validation_protocol: str
    test_protocol: str
    sampler: str
    search_space: dict[str, Any]
    fixed_params: dict[str, Any]
    n_trials: int
    seed: int
    best_params: dict[str, Any] | None
    best_validation: float | None
    best_trial: int | None
    test_result_of_best: EvaluationResult | None
    trials: list[TrialRecord]
    total_seconds: float = 0.0
    data_checksum: str | None = None
    split_fingerprint: str | None = None

    @property
    def key(self) -> str:
        return f"{self.metric}@{self.cutoff}"

    def to_dict(self) -> dict[str, Any]:
        out = {
            k: getattr(self, k)
            for k in (
                "model_name", "metric", "cutoff", "protocol", "validation_protocol",
                "test_protocol", "sampler", "search_space", "fixed_params", "n_trials", "seed",
                "best_params", "best_validation", "best_trial", "total_seconds",
                "data_checksum", "split_fingerprint",
            )
        }
        out["test_result_of_best"] = (
            None if self.test_result_of_best is None else self.test_result_of_best.to_dict()
        )
        out["trials"] = [t.to_dict() for t in self.trials]
        return jsonable(out)


def default_search_space(
    model_cls: type[Recommender], fixed_params: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The class's ``search_space``, or ``search_space_for(similarity)`` for KNN-like classes.

    Entries whose parameter is fixed are removed (the fixed value wins).
    """
    return model_cls.space_for(fixed_params)


# --------------------------------------------------------------------------- one trial
@dataclass(frozen=True)
class _Task:
    number: int
    model_cls: type[Recommender]
    params: dict[str, Any]
    metric: str
    cutoff: int
    protocol: str
    early_stopping: EarlyStopping | None
    evaluate_test_above: float | None  # evaluate test when score > this; None = never
    test_cutoffs: tuple[int, ...]
    test_metrics: tuple[str, ...] | None
    measure_memory: bool
    tie_rule: str = "lower-index"
    report_cutoffs: tuple[int, ...] = ()
    report_metrics: tuple[str, ...] = ()


@dataclass
class _Outcome:
    status: Literal["ok", "failed"]
    score: float | None
    params: dict[str, Any]
    fit_seconds: float = 0.0
    eval_seconds: float = 0.0
    test_eval_seconds: float = 0.0
    peak_memory_mb: float | None = None
    peak_rss_mb: float | None = None
    memory_method: str = "none"
    best_epoch: int | None = None
    epochs_run: int | None = None
    validation_curve: list[tuple[int, float]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)
    validation_summary: dict[str, float] | None = None
    test_result: Any = None
    error: str | None = None
    traceback: str | None = None
    worker: str = "in-process"


def _evaluate(model: Recommender, split: Split, task: _Task, on: str) -> Any:
    from recforge.evaluation import evaluate_split

    kw: dict[str, Any] = {
        "on": on,
        "protocol": task.protocol,
        "exclude_train": True,
        "tie_rule": task.tie_rule,
    }
    if on == "validation":
        kw["cutoffs"] = sorted({task.cutoff, *task.report_cutoffs})
        kw["metrics"] = list(dict.fromkeys([task.metric, *task.report_metrics]))
    else:
        kw["cutoffs"] = list(task.test_cutoffs)
        if task.test_metrics is not None:
            kw["metrics"] = list(task.test_metrics)
    return evaluate_split(model, split, **kw)


def _validation_score(
    model: Recommender, split: Split, task: _Task
) -> tuple[float, dict[str, float] | None]:
    """The objective on validation, and every report metric at every report cut-off (None
    when the task asks for none)."""
    res = _evaluate(model, split, task, "validation")
    key = f"{task.metric}@{task.cutoff}"
    if key not in res.summary:
        raise KeyError(f"evaluator returned no {key}; got {sorted(res.summary)}")
    wanted = task.report_metrics or task.report_cutoffs
    summary = {k: float(v) for k, v in res.summary.items()} if wanted else None
    return float(res.summary[key]), summary


def _fit_early_stopping(
    model: IterativeRecommender, split: Split, task: _Task, out: _Outcome
) -> float:
    from recforge.evaluation.validation import validation_callback

    assert task.early_stopping is not None
    callback = validation_callback(
        split, task.metric, task.cutoff, protocol=task.protocol, tie_rule=task.tie_rule
    )
    t0 = time.perf_counter()
    try:
        model.fit(split.train, validation=callback, early_stopping=task.early_stopping)
    finally:
        total = time.perf_counter() - t0
        history = list(getattr(model, "history_", []))
        out.eval_seconds = float(sum(h.validation_seconds or 0.0 for h in history))
        out.fit_seconds = total - out.eval_seconds
    out.history = [h.to_dict() for h in history]
    out.validation_curve = list(iter_epochs(history))
    out.epochs_run = int(model.epochs_run_)
    best_epoch = int(model.epochs_best_)
    model.set_params(**{model.epochs_param: best_epoch})
    out.params = {**out.params, model.epochs_param: best_epoch}
    out.best_epoch = best_epoch
    assert model.best_validation_ is not None  # a validation callback was given
    return float(model.best_validation_)


def _run_trial(task: _Task, split: Split) -> _Outcome:
    """Fit, validate and (when it may be a new best) test one configuration; never raises."""
    out = _Outcome(status="ok", score=None, params=dict(task.params))
    with PeakMemory(task.measure_memory) as pm:
        try:
            model = task.model_cls(**task.params)
            if task.early_stopping is not None and isinstance(model, IterativeRecommender):
                score = _fit_early_stopping(model, split, task, out)
                if task.report_metrics or task.report_cutoffs:  # the best epoch's full values
                    t1 = time.perf_counter()
                    _, out.validation_summary = _validation_score(model, split, task)
                    out.eval_seconds += time.perf_counter() - t1
            else:
                t0 = time.perf_counter()
                model.fit(split.train)
                out.fit_seconds = time.perf_counter() - t0
                t1 = time.perf_counter()
                score, out.validation_summary = _validation_score(model, split, task)
                out.eval_seconds = time.perf_counter() - t1
            if not math.isfinite(score):
                raise FloatingPointError(f"validation score is {score}")
            out.score = score
            if task.evaluate_test_above is not None and score > task.evaluate_test_above:
                t2 = time.perf_counter()
                out.test_result = _evaluate(model, split, task, "test")
                out.test_eval_seconds = time.perf_counter() - t2
        except Exception as exc:  # a broken configuration scores worst, like the paper
            out.status, out.score = "failed", None
            out.error = f"{type(exc).__name__}: {exc}"
            out.traceback = traceback.format_exc()
    out.peak_memory_mb, out.peak_rss_mb, out.memory_method = pm.peak_mb, pm.peak_rss_mb, pm.method
    return out


# --------------------------------------------------------------------------- worker processes
_WORKER_SPLIT: Split | None = None
_WORKER_LIMITS: Any = None


def _worker_init(split: Split) -> None:
    global _WORKER_SPLIT, _WORKER_LIMITS
    from threadpoolctl import threadpool_limits

    _WORKER_SPLIT = split
    _WORKER_LIMITS = threadpool_limits(1)  # kept alive for the worker's lifetime


def _worker_run(task: _Task) -> _Outcome:
    assert _WORKER_SPLIT is not None, "worker not initialised"
    out = _run_trial(task, _WORKER_SPLIT)
    out.worker = f"pid {os.getpid()}"
    return out


def _single_thread_env() -> dict[str, str | None]:
    """Set thread env vars to 1 (inherited by spawned workers); returns the old values."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    old = {n: os.environ.get(n) for n in names}
    for n in names:
        os.environ[n] = "1"
    return old


def _restore_env(old: dict[str, str | None]) -> None:
    for n, v in old.items():
        if v is None:
            os.environ.pop(n, None)
        else:
            os.environ[n] = v


# --------------------------------------------------------------------------- the search
def tune(
    model_name: str,
    split: Split,
    *,
    search_space: SearchSpace | None = None,
    fixed_params: Mapping[str, Any] | None = None,
    metric: str = "PRECISION",
    cutoff: int = 10,
    n_trials: int = 35,
    n_startup_trials: int = 5,
    seed: int = 0,
    protocol: Protocol = "full",
    n_jobs: int = 1,
    early_stopping: EarlyStopping | None = None,
    timeout: float | None = None,
    evaluate_test_on_improvement: bool = True,
    test_cutoffs: Sequence[int] | None = None,
    test_metrics: Sequence[str] | None = None,
    report_metrics: Sequence[str] | None = None,
    report_cutoffs: Sequence[int] | None = None,
    measure_memory: bool = True,
    callbacks: Sequence[TrialCallback] = (),
    tie_rule: str = "lower-index",
    storage: str | None = None,
    study_name: str | None = None,
    shared: SharedStudy | None = None,
) -> TuningResult:
    """Search ``model_name``'s hyper-parameters on ``split`` (see the module docstring).

    Args:
        search_space: param -> spec (see :mod:`recforge.tuning.space`); default
            :func:`default_search_space`. An empty space runs a single trial.
        fixed_params: constructor arguments held constant (they override the space). A
            ``seed`` hyper-parameter the model has and nobody fixed is set to ``seed``.
        metric, cutoff: the maximised validation objective, e.g. "PRECISION", 10.
        protocol: "full" ranking or "candidates" (uses the split's negatives).
        n_jobs: parallel trials in worker processes (1 = in-process). Workers also force a
            model's own ``n_jobs``/``n_threads`` to 1 unless fixed.
        early_stopping: used for iterative models only (their epochs come from it; its
            ``max_epochs=None`` caps at the model's own epoch hyper-parameter).
        timeout: seconds after which no new trial starts (running ones finish).
        test_cutoffs, test_metrics: what the test evaluation of new bests reports
            (default: ``cutoff`` and the evaluator's default metrics).
        report_metrics, report_cutoffs: every trial also records these metrics at these
            cut-offs on validation (``TrialRecord.validation_summary``; one evaluation with
            the objective). Default: the objective only.
        callbacks: called in this process with each finished :class:`TrialRecord`.
        tie_rule: how the evaluator orders equal scores ("lower-index", or "numpy-legacy" to
            mimic the paper's numpy; see :mod:`recforge._kernels.topk`).
        storage, study_name: an optuna storage URL (e.g. ``sqlite:///out/studies.db``) and a
            study in it that keeps every finished trial; calling again with the same search
            continues it where it stopped (see :mod:`recforge.tuning.storage`).
        shared: this process is one of several running the search together in the study of
            ``storage`` (a SQLite file); see :mod:`recforge.tuning.shared`. A non-lead process
            returns only the trials it ran.
    """
    import optuna

    t_start = time.perf_counter()
    metric = str(metric).upper()
    if cutoff < 1:
        raise ValueError(f"tune: cutoff must be >= 1, got {cutoff}")
    if n_trials < 1:
        raise ValueError(f"tune: n_trials must be >= 1, got {n_trials}")
    if n_jobs < 1:
        raise ValueError(f"tune: n_jobs must be >= 1, got {n_jobs}")
    if shared is not None and (storage is None or n_jobs != 1):
        raise ValueError("tune: a shared search needs storage= (its SQLite study) and n_jobs=1 "
                         "(each process runs one trial at a time)")
    if protocol not in ("full", "candidates"):
        raise ValueError(f"tune: protocol must be 'full' or 'candidates', got {protocol!r}")
    if split.validation is None:
        raise ValueError("tune: the split has no validation part; make one (carved from train)")
    if protocol == "candidates" and split.validation_negatives is None:
        raise ValueError("tune: protocol='candidates' needs split.validation_negatives")

    model_cls = get_model_class(model_name)
    param_names = model_cls._param_names()
    fixed = dict(fixed_params or {})
    model_cls.check_param_names(fixed, where=f"tune: fixed_params of {model_name}")
    space = (
        default_search_space(model_cls, fixed)
        if search_space is None
        else {k: v for k, v in dict(search_space).items() if k not in fixed}
    )
    validate_space(space, param_names, model_name)
    # Values against the model's declared hyper-parameters, before the first trial runs.
    check_params(model_cls, fixed, where="fixed_params")
    check_space(model_cls, space, where="search_space")
    distributions = to_distributions(space)
    if "seed" in param_names and "seed" not in fixed and "seed" not in space:
        fixed["seed"] = seed
    if n_jobs > 1:
        for name in ("n_jobs", "n_threads"):
            if name in param_names and name not in fixed and name not in space:
                fixed[name] = 1
    es = early_stopping if model_cls.iterative else None
    if early_stopping is not None and not model_cls.iterative:
        log.info("tune: %s is not iterative; early stopping ignored", model_name)
    if es is not None and issubclass(model_cls, IterativeRecommender) and (
        (epochs_param := model_cls.epochs_param) in space
    ):
        raise ValueError(
            f"tune: {model_name}.{epochs_param} is chosen by early stopping; remove it from the "
            "search space or pass early_stopping=None"
        )
    total = 1 if not distributions else n_trials

    parallel = n_jobs > 1 or shared is not None
    sampler = optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=n_startup_trials, constant_liar=parallel
    )
    sampler_desc = (
        f"optuna TPESampler(seed={seed}, n_startup_trials={n_startup_trials}, "
        f"constant_liar={parallel}); the paper used skopt gp_minimize (unseeded)"
    )
    if shared is not None:
        sampler_desc += "; shared by several processes, process i seeded seed + i"
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    eval_desc = "full ranking" if protocol == "full" else "candidate-set ranking"
    neg = "" if protocol == "full" else " over split.validation_negatives"
    result = TuningResult(
        model_name=model_name,
        metric=metric,
        cutoff=int(cutoff),
        protocol=protocol,
        validation_protocol=(
            f"{eval_desc}{neg} on split.validation, train items excluded; "
            f"model fitted on split.train; objective {metric}@{cutoff} (maximised)"
        ),
        test_protocol=(
            f"{eval_desc}{'' if protocol == 'full' else ' over split.test_negatives'} on "
            "split.test, train items excluded; evaluated whenever a new best validation score "
            "is found, on that same model fitted on split.train (no refit on train+validation)"
        ),
        sampler=sampler_desc,
        search_space={k: dict(v) if isinstance(v, Mapping) else repr(v) for k, v in space.items()},
        fixed_params=dict(fixed),
        n_trials=0,
        seed=seed,
        best_params=None,
        best_validation=None,
        best_trial=None,
        test_result_of_best=None,
        trials=[],
        data_checksum=split.train.checksum(),
        split_fingerprint=split.fingerprint(),
    )
    cache: dict[str, _Outcome] = {}
    cache_number: dict[str, int] = {}
    store: StudyStore | None = None
    if storage is not None:
        signature = {
            "model": model_name, "fixed_params": fixed, "search_space": result.search_space,
            "metric": metric, "cutoff": int(cutoff), "protocol": protocol, "seed": seed,
            "n_startup_trials": n_startup_trials, "parallel": parallel, "tie_rule": tie_rule,
            "early_stopping": None if es is None else es.model_dump(mode="json"),
            "split_fingerprint": result.split_fingerprint,
            "test": [evaluate_test_on_improvement, list(test_cutoffs or []),
                     list(test_metrics or [])],
        }
        if shared is None:
            store = StudyStore(storage, study_name or model_name, signature)
        else:
            with storage_lock(storage):  # the processes create the study once between them
                store = StudyStore(storage, study_name or model_name, signature)

    def make_task(number: int, params: dict[str, Any]) -> _Task:
        above: float | None = None
        if evaluate_test_on_improvement:
            above = -math.inf if result.best_validation is None else result.best_validation
        return _Task(
            number=number,
            model_cls=model_cls,
            params=params,
            metric=metric,
            cutoff=int(cutoff),
            protocol=protocol,
            early_stopping=es,
            evaluate_test_above=above,
            test_cutoffs=tuple(test_cutoffs) if test_cutoffs else (int(cutoff),),
            test_metrics=tuple(test_metrics) if test_metrics else None,
            measure_memory=measure_memory,
            tie_rule=tie_rule,
            report_cutoffs=tuple(int(k) for k in report_cutoffs or ()),
            report_metrics=tuple(str(m).upper() for m in report_metrics or ()),
        )

    def finish(trial: Any, number: int, key: str, out: _Outcome, cached: int | None,
               replayed: bool = False) -> None:
        value = out.score if out.status == "ok" and out.score is not None else WORST_SCORE
        if trial is not None:
            study.tell(trial, value)
        new_best = out.status == "ok" and (
            result.best_validation is None or value > result.best_validation
        )
        rec = _record(number, out, value, cached, new_best)
        if out.status == "failed":
            log.warning("trial %d of %s failed with params %s: %s",
                        number, model_name, out.params, out.error)
        if new_best:
            result.best_validation = value
            result.best_params = dict(out.params)
            result.best_trial = number
            if evaluate_test_on_improvement:
                if out.test_result is None:  # cannot happen: tested when above the old best
                    raise RuntimeError(f"trial {number} is a new best but was not tested")
                result.test_result_of_best = out.test_result
                rec.test_summary = {k: float(v) for k, v in out.test_result.summary.items()}
        if cached is None and out.worker != "crashed":
            cache.setdefault(key, out)
            cache_number.setdefault(key, number)
        result.trials.append(rec)
        result.n_trials = len(result.trials)
        if store is not None and not replayed:
            store.append(
                dict(trial.params) if trial is not None else {}, distributions, rec.to_dict(),
                value, out.status != "ok",
                None if not new_best or out.test_result is None else out.test_result.to_dict(),
            )
        for cb in callbacks:
            cb(rec)

    def ask() -> tuple[Any, int, dict[str, Any], str]:
        trial = study.ask(fixed_distributions=distributions)
        params = {**fixed, **trial.params}
        key = json.dumps(jsonable(params), sort_keys=True)
        return trial, trial.number, params, key

    def out_of_time() -> bool:
        return timeout is not None and time.perf_counter() - t_start > timeout

    def from_cache(key: str) -> _Outcome | None:
        # A repeated configuration of a deterministic model gives the same result; a cached
        # outcome never carries a test result (the configuration cannot be a new best).
        hit = cache.get(key)
        if hit is None:
            return None
        return _Outcome(**{**hit.__dict__, "test_result": None})

    if shared is not None:
        assert storage is not None and store is not None
        own = _run_shared(split, total, seed, n_startup_trials, storage, store.study_name,
                          distributions, fixed, shared, make_task,
                          evaluate_test_on_improvement)  # fmt: skip
        if not shared.lead:
            for number, out in own:
                value = out.score if out.status == "ok" and out.score is not None else WORST_SCORE
                result.trials.append(_record(number, out, value, None))
            result.n_trials = len(result.trials)
            result.total_seconds = time.perf_counter() - t_start
            return result
    asked = 0
    stored = store.finished()[:total] if store is not None else []
    if stored and not parallel:
        # Replay: the seeded sampler proposes the stored trials again, in order, and is told
        # their stored objectives, so it ends where the interrupted search stood.
        for st in stored:
            trial, number, params, key = ask()
            if jsonable(params) != jsonable({**fixed, **st.sampled}):
                raise ResumeError(
                    f"tune: stored trial {number} of study {study_name!r} had {st.sampled}, "
                    f"but the sampler now proposes {trial.params}; the search does not replay "
                    "(changed optuna version?), start it afresh"
                )
            finish(trial, number, key, _stored_outcome(st), st.record.get("cached_from"),
                   replayed=True)
            asked += 1
    elif stored:
        # Parallel searches are timing dependent: the stored trials re-enter as history.
        import optuna.trial

        for st in stored:
            study.add_trial(optuna.trial.create_trial(
                params=st.sampled, distributions={k: distributions[k] for k in st.sampled},
                value=float(st.record["objective"]),
            ))
            params = {**fixed, **st.sampled}
            finish(None, int(st.record["number"]), json.dumps(jsonable(params), sort_keys=True),
                   _stored_outcome(st), st.record.get("cached_from"), replayed=True)
            asked += 1
    if n_jobs == 1:
        while asked < total and not (asked and out_of_time()):
            trial, number, params, key = ask()
            asked += 1
            hit = from_cache(key)
            if hit is not None:
                finish(trial, number, key, hit, cache_number[key])
                continue
            finish(trial, number, key, _run_trial(make_task(number, params), split), None)
    else:
        _run_parallel(
            split, total - asked, n_jobs, ask, make_task, finish, from_cache, cache_number,
            out_of_time,
        )

    result.total_seconds = time.perf_counter() - t_start
    return result


def _record(number: int, out: _Outcome, value: float, cached: int | None,
            new_best: bool = False) -> TrialRecord:  # fmt: skip
    """The record of trial ``number`` (``cached``: the trial whose outcome it reused)."""
    return TrialRecord(
        number=number,
        params=out.params,
        status=out.status,
        score=out.score,
        objective=value,
        fit_seconds=0.0 if cached is not None else out.fit_seconds,
        eval_seconds=0.0 if cached is not None else out.eval_seconds,
        test_eval_seconds=0.0 if cached is not None else out.test_eval_seconds,
        peak_memory_mb=None if cached is not None else out.peak_memory_mb,
        peak_rss_mb=None if cached is not None else out.peak_rss_mb,
        memory_method="none" if cached is not None else out.memory_method,
        is_new_best=new_best,
        best_epoch=out.best_epoch,
        epochs_run=out.epochs_run,
        validation_curve=list(out.validation_curve),
        history=list(out.history),
        validation_summary=out.validation_summary,
        error=out.error,
        traceback=out.traceback,
        cached_from=cached,
        worker=out.worker if cached is None else "cache",
    )


def _run_shared(
    split: Split, total: int, seed: int, n_startup_trials: int, storage: str, study_name: str,
    distributions: dict[str, Any], fixed: dict[str, Any], shared: SharedStudy,
    make_task: Callable[[int, dict[str, Any]], _Task], test_on_improvement: bool,
) -> list[tuple[int, _Outcome]]:
    """This process's share of a shared search (see :mod:`recforge.tuning.shared`): claim,
    run and store trials until all are claimed; the lead then waits until all are stored.
    Returns (number, outcome) of the trials this process ran."""
    import dataclasses

    import optuna

    sampler = optuna.samplers.TPESampler(seed=seed + shared.index, constant_liar=True,
                                         n_startup_trials=n_startup_trials)  # fmt: skip
    search = SharedSearch(storage, study_name, sampler, total, distributions, shared)
    own: list[tuple[int, _Outcome]] = []
    while (trial := search.claim()) is not None:
        task = make_task(trial.number, {**fixed, **trial.params})
        if test_on_improvement:
            # Test whenever the trial beats every trial stored so far: in number order (how
            # the search is read back) a new best is then always one that was tested.
            best = search.best()
            task = dataclasses.replace(task, evaluate_test_above=-math.inf if best is None
                                       else best)  # fmt: skip
        out = _run_trial(task, split)
        out.worker = shared.worker
        value = out.score if out.status == "ok" and out.score is not None else WORST_SCORE
        search.store(trial, _record(trial.number, out, value, None).to_dict(),
                     None if out.test_result is None else out.test_result.to_dict())
        own.append((trial.number, out))
    if shared.lead:
        search.wait_all()
    return own


def _stored_outcome(st: StoredTrial) -> _Outcome:
    """The outcome of a stored trial, as :func:`_run_trial` returned it (no test arrays)."""
    from recforge.evaluation import EvaluationResult

    r = st.record
    names = {f for f in _Outcome.__dataclass_fields__ if f != "test_result"}
    out = _Outcome(**{k: r[k] for k in names if k in r})
    out.validation_curve = [(int(e), float(v)) for e, v in out.validation_curve]
    if st.test_result is not None:
        out.test_result = EvaluationResult.from_dict(st.test_result)
    return out


def _run_parallel(
    split: Split,
    total: int,
    n_jobs: int,
    ask: Callable[[], tuple[Any, int, dict[str, Any], str]],
    make_task: Callable[[int, dict[str, Any]], _Task],
    finish: Callable[[Any, int, str, _Outcome, int | None], None],
    from_cache: Callable[[str], _Outcome | None],
    cache_number: dict[str, int],
    out_of_time: Callable[[], bool],
) -> None:
    """Ask/tell loop over a spawn-context process pool; a crashed pool is replaced."""
    ctx = multiprocessing.get_context("spawn")
    old_env = _single_thread_env()
    asked = 0
    broken_in_a_row = 0
    pool: ProcessPoolExecutor | None = None
    pending: dict[Future[_Outcome], tuple[Any, int, dict[str, Any], str]] = {}
    try:
        while asked < total or pending:
            if pool is None:
                pool = ProcessPoolExecutor(
                    max_workers=n_jobs, mp_context=ctx, initializer=_worker_init,
                    initargs=(split,),
                )
            while len(pending) < n_jobs and asked < total and not (asked and out_of_time()):
                trial, number, params, key = ask()
                asked += 1
                hit = from_cache(key)
                if hit is not None:
                    finish(trial, number, key, hit, cache_number[key])
                    continue
                fut = pool.submit(_worker_run, make_task(number, params))
                pending[fut] = (trial, number, params, key)
            if not pending:
                if asked >= total or out_of_time():
                    break
                continue
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            broken = False
            for fut in sorted(done, key=lambda f: pending[f][1]):
                trial, number, params, key = pending.pop(fut)
                try:
                    out = fut.result()
                except BrokenProcessPool as exc:
                    broken = True
                    out = _Outcome(
                        status="failed", score=None, params=params,
                        error=f"worker process died: {exc}", worker="crashed",
                    )
                finish(trial, number, key, out, None)
                if out.worker != "crashed":
                    broken_in_a_row = 0
            if broken:
                broken_in_a_row += 1
                if broken_in_a_row >= 3:
                    raise RuntimeError(
                        "tune: the worker pool died 3 times in a row; workers are spawned, so a "
                        "script calling tune(n_jobs>1) needs an `if __name__ == '__main__':` "
                        "guard, and a trial may be exhausting memory"
                    )
                for fut, (trial, number, params, key) in list(pending.items()):
                    pending.pop(fut)
                    finish(trial, number, key, _Outcome(
                        status="failed", score=None, params=params,
                        error="worker pool broke while this trial ran", worker="crashed",
                    ), None)
                pool.shutdown(wait=False, cancel_futures=True)
                pool = None
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        _restore_env(old_env)
