"""Run an experiment spec end to end and write every artefact into one directory.

Pipeline per seed: load dataset -> explicit filters (each reported) -> split (or predefined) ->
validation carve-out -> leakage audit -> per model: fixed configuration or Bayesian search on
validation -> test evaluation of the chosen configuration (trained on train minus validation,
as the paper did) -> per-user values kept for significance tests.

Several seeds re-draw the split and re-seed the models; ``results.json`` holds the mean over
seeds, ``spread`` the standard deviation, and significance marks use the first seed's per-user
values (a paired test needs one split).
"""

from __future__ import annotations

import platform
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

from recforge._files import write_text_atomic
from recforge._json import dumps, write_json
from recforge.data.interactions import Interactions
from recforge.data.split import Split
from recforge.experiments.artifacts import (
    RunDir,
    label_stems,
    run_stem,
    save_run_files,
    spec_document,
)
from recforge.experiments.outcome import ExperimentOutcome, ModelRun, SearchFailedError
from recforge.experiments.progress import RunProgress
from recforge.experiments.report.statistics import recommendation_profile, split_statistics
from recforge.experiments.spec import ExperimentSpec, ModelEntry

if TYPE_CHECKING:
    from recforge.tuning.shared import SharedStudy

# ExperimentOutcome and ModelRun moved to recforge.experiments.outcome (re-exported here).
__all__ = ["ExperimentOutcome", "ModelRun", "RunInterrupted", "prepare_split", "run_experiment",
           "share_searches"]


def _load_data(spec: ExperimentSpec) -> tuple[Interactions | Split, list[dict[str, Any]]]:
    from recforge.data import filters
    from recforge.data.registry import load_dataset

    ds = spec.dataset
    if ds.file is not None:
        from recforge.data.io import read_interactions

        kwargs: dict[str, Any] = {
            "rating_col": ds.rating_col,
            "timestamp_col": ds.timestamp_col,
            "id_type": ds.id_type,
        }
        if ds.sep is not None:
            kwargs["sep"] = ds.sep
        loaded: Any = read_interactions(ds.file, ds.user_col, ds.item_col, **kwargs,
                                        **ds.options)
    else:
        assert ds.name is not None  # the spec validator requires name or file
        loaded = load_dataset(ds.name, **ds.options)
    reports: list[dict[str, Any]] = []
    if isinstance(loaded, Interactions):
        x = loaded
        squeeze = spec.dataset.compact
        if spec.dataset.rating_equals is not None:
            x, rep = filters.rating_equals(x, spec.dataset.rating_equals, compact=squeeze)
            reports.append(rep.as_dict())
        if spec.dataset.min_rating is not None:
            x, rep = filters.rating_threshold(x, spec.dataset.min_rating, compact=squeeze)
            reports.append(rep.as_dict())
        if spec.dataset.k_core is not None:
            x, rep = filters.k_core(x, min_user=spec.dataset.k_core,
                                    min_item=spec.dataset.k_core, compact=squeeze)
            reports.append(rep.as_dict())
        if spec.dataset.binarize:
            x = x.binarized()
        return x, reports
    if any(
        v is not None
        for v in (spec.dataset.rating_equals, spec.dataset.min_rating, spec.dataset.k_core)
    ):
        raise ValueError(
            f"dataset {spec.dataset.label!r} is a predefined split; rating and k-core filters "
            "would change the published split, so they are refused"
        )
    return loaded, reports


def prepare_split(spec: ExperimentSpec, data: Interactions | Split, seed: int) -> Split:
    """Apply the spec's split and validation carve-out to loaded data."""
    from recforge.data import splitting
    from recforge.data.split_methods import make_split

    if isinstance(data, Split):
        if spec.split.method != "predefined":
            raise ValueError(
                f"dataset {spec.dataset.label!r} ships a predefined split; "
                f"split.method must be 'predefined', not {spec.split.method!r}"
            )
        split = data
    else:
        method = spec.split.method
        if method == "predefined":
            raise ValueError(
                f"dataset {spec.dataset.label!r} is not a predefined split; choose split.method "
                "(per_user_holdout, global_holdout, leave_one_out, temporal, held_out_users)"
            )
        split = make_split(data, method, spec.split.params, seed)
        if spec.split.negatives is not None:
            split = splitting.sample_test_negatives(split, spec.split.negatives, seed=seed)
    v = spec.split.validation
    mode = spec.split.validation_mode
    if v is not None and mode is not None:
        leave = mode in ("leave_one_out", "leave_latest")
        split = splitting.carve_validation(
            split,
            fraction=None if leave else v.fraction,
            seed=seed,
            mode=mode,  # type: ignore[arg-type]  # the spec's Literal, follow resolved
            add_back=v.add_back,
        )
        if split.validation_negatives is None and split.test_negatives is not None:
            split = _reuse_test_negatives(split)
    if spec.split.filter_test_users == "drop_cold_start":
        from recforge.data.filters import drop_cold_start_users

        split, _ = drop_cold_start_users(split)
    return split


def _reuse_test_negatives(split: Split) -> Split:
    """Validation negatives = the user's test negatives minus the user's validation items.

    The paper ranked the leave-one-out validation item against the released test negatives
    (CMN, NeuMF); a negative that happens to be the carved-out validation item is dropped so it
    is not both a positive and a negative.
    """
    from recforge.data.split import negatives_from_lists

    assert split.validation is not None and split.test_negatives is not None
    neg = split.test_negatives
    rows = np.repeat(np.arange(neg.shape[0]), np.diff(neg.indptr))
    is_val = np.asarray(split.validation.matrix[rows, neg.indices]).ravel() != 0
    kept = neg.indices[~is_val]
    counts = np.bincount(rows[~is_val], minlength=neg.shape[0])
    lists = np.split(kept, np.cumsum(counts)[:-1])
    val_neg = negatives_from_lists(lists, neg.shape[1])
    params = {**split.params, "validation_negatives": "test negatives minus validation items",
              "validation_negatives_dropped": int(is_val.sum())}
    return replace(split, validation_negatives=val_neg, params=params)


def merge_validation(split: Split) -> Split:
    """The split with validation folded back into train (for refitting the final model)."""
    if split.validation is None:
        return split
    merged = split.train.with_matrix(split.train.matrix.maximum(split.validation.matrix))
    return replace(split, train=merged, validation=None, validation_negatives=None,
                   validation_profiles=None, params={**split.params, "refit_on_validation": True})


def _environment() -> dict[str, Any]:
    import importlib.metadata as md

    pkgs: dict[str, str | None] = {}
    for name in ("numpy", "scipy", "numba", "optuna", "scikit-learn", "implicit", "pydantic"):
        try:
            pkgs[name] = md.version(name)
        except md.PackageNotFoundError:
            pkgs[name] = None
    try:
        from threadpoolctl import threadpool_info

        blas = [
            {k: i.get(k) for k in ("internal_api", "num_threads", "version")}
            for i in threadpool_info()
        ]
    except Exception:  # threadpoolctl is optional at runtime
        blas = []
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": pkgs,
        "threadpools": blas,
        "recforge": __import__("recforge").__version__,
    }


def _seeded_params(entry: ModelEntry, seed: int) -> dict[str, Any]:
    from recforge.models import get_model_class

    params = dict(entry.params)
    if "seed" in get_model_class(entry.model)._param_names() and "seed" not in params:
        params["seed"] = seed
    return params


def _search(
    spec: ExperimentSpec, entry: ModelEntry, split: Split, seed: int, log: Any,
    params: dict[str, Any], es: Any, storage: str | None, study_name: str | None,
    progress: RunProgress | None, offset: int = 0, total: int | None = None,
    shared: SharedStudy | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], dict[str, Any], list[str]] | None:
    """One seeded search of ``entry`` on validation: (params, final params, trials, tuning,
    warnings); None for a process helping with a shared search (it has no result).
    ``offset``/``total`` number the log lines when one entry runs several searches."""
    from recforge.models import get_model_class
    from recforge.models.iterative import IterativeRecommender
    from recforge.tuning import tune

    assert entry.search is not None
    model_cls = get_model_class(entry.model)
    warnings: list[str] = []

    log(f"  tuning {entry.display}: {entry.search.n_trials} trials on validation "
        f"{spec.optimize.metric}@{spec.optimize.cutoff}")
    from recforge.tuning.protocols import get_preset

    space = entry.search.space
    if space is None:  # the preset's ranges (recsys2019: the model's declared space)
        space = get_preset(spec.preset).space_for(entry.model, params)
    result = tune(
        entry.model,
        split,
        search_space=space,
        fixed_params=params,
        metric=spec.optimize.metric,
        cutoff=spec.optimize.cutoff,
        n_trials=entry.search.n_trials,
        n_startup_trials=entry.search.n_startup_trials,
        seed=seed,
        protocol=spec.protocol,
        n_jobs=spec.n_jobs,
        tie_rule=spec.tie_rule,
        report_metrics=spec.report.metrics,
        report_cutoffs=spec.report.cutoffs,
        early_stopping=es if entry.search.early_stopping else None,
        callbacks=[_trial_reporter(log, entry.display, total or entry.search.n_trials,
                                   progress, offset=offset)],
        storage=storage,
        study_name=study_name,
        shared=shared,
    )
    if shared is not None and not shared.lead:
        log(f"  {entry.display}: this worker ran {len(result.trials)} trial(s) of the search")
        return None
    tdict = result.to_dict()
    trials = list(tdict.get("trials", []))
    tuning = {k: v for k, v in tdict.items() if k != "trials"}
    failed = [t for t in result.trials if t.status != "ok"]
    if result.best_params is None:
        first = failed[0] if failed else None
        raise SearchFailedError(
            f"model {entry.display!r} (seed {seed}): no trial of the search succeeded "
            f"({len(failed)} of {len(result.trials)} failed); the first failure, trial "
            f"{first.number if first else '?'} with params "
            f"{first.params if first else {}}:\n{first.traceback if first else ''}"
        )
    if failed:
        warnings.append(
            f"{len(failed)} of {len(result.trials)} trials failed, e.g. trial "
            f"{failed[0].number}: {failed[0].error}"
        )
        log(f"  WARNING {entry.display}: {warnings[-1]}")
    params = {**params, **result.best_params}
    final_params = dict(params)
    if es is not None and entry.search.early_stopping:
        # tune() wrote the best epoch into the epoch parameter; the final fit stops early
        # again under the original cap (same seed, same best epoch) and keeps its history.
        assert issubclass(model_cls, IterativeRecommender)
        cap_name = model_cls.epochs_param
        final_params[cap_name] = _seeded_params(entry, seed).get(
            cap_name, model_cls().get_params()[cap_name])
    return params, final_params, trials, tuning or {}, warnings


def _search_similarities(
    spec: ExperimentSpec, entry: ModelEntry, sims: list[Any], split: Split, seed: int,
    log: Any, params: dict[str, Any], es: Any, storage: str | None, study_name: str | None,
    progress: RunProgress | None, shared: SharedStudy | None = None,
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]], dict[str, Any], list[str]] | None:
    """One search per listed similarity (each its own space and optuna study); the best on
    validation is kept. The trials of all searches are kept in order, numbered on from one
    search to the next (one numbering for the entry), each with its ``similarity``."""
    assert entry.search is not None
    total = entry.search.n_trials * len(sims)
    runs: list[tuple[Any, tuple[Any, ...]]] = []
    trials: list[dict[str, Any]] = []
    warnings: list[str] = []
    per_sim: dict[str, Any] = {}
    for s in sims:
        log(f"  {entry.display}: similarity {s}")
        one = entry.with_similarity(s)
        res = _search(spec, one, split, seed, log, {**params, "similarity": s}, es, storage,
                      None if study_name is None else f"{study_name}--{s}", progress,
                      offset=len(trials), total=total, shared=shared)
        if res is None:
            continue
        tuning = res[3]
        offset = len(trials)
        for t in res[2]:
            trials.append({**t, "number": int(t["number"]) + offset, "similarity": s})
        best = tuning.get("best_trial")
        per_sim[str(s)] = {"best_validation": tuning.get("best_validation"),
                           "best_trial": None if best is None else int(best) + offset,
                           "best_params": tuning.get("best_params"),
                           "n_trials": len(res[2])}
        warnings += [f"similarity {s}: {w}" for w in res[4]]
        runs.append((s, res))
    if not runs:  # a helper of shared searches
        return None
    # Best validation wins; ties go to the first listed similarity.
    s_best, (params, final_params, _, tuning, _) = max(
        runs, key=lambda r: (r[1][3].get("best_validation") or float("-inf"),
                             -sims.index(r[0])))
    tuning = {**tuning, "best_trial": per_sim[str(s_best)]["best_trial"],
              "n_trials": len(trials), "best_similarity": s_best, "similarities": per_sim}
    log(f"  {entry.display}: best similarity {s_best} (validation "
        f"{per_sim[str(s_best)]['best_validation']:.4f})")
    return params, final_params, trials, tuning, warnings



def _run_model(
    spec: ExperimentSpec, entry: ModelEntry, split: Split, seed: int, log: Any,
    storage: str | None = None, study_name: str | None = None, model_dir: Path | None = None,
    progress: RunProgress | None = None, shared: SharedStudy | None = None,
    resume_stem: Path | None = None,
) -> ModelRun | None:
    """One model entry on one seed's split: its search, final fit and test evaluation (None
    for a process that only helps with the shared search). The final fits of a resumable
    model keep resume points at ``<resume_stem>.fit.npz`` / ``.refit.npz``."""
    from recforge.evaluation import evaluate_split
    from recforge.models import get_model_class, make_model

    cutoffs = sorted(set(spec.report.cutoffs))
    metrics = list(dict.fromkeys(spec.report.metrics))
    params = _seeded_params(entry, seed)
    from recforge.models.iterative import IterativeRecommender

    model_cls = get_model_class(entry.model)
    iterative = issubclass(model_cls, IterativeRecommender)
    # Iterative models stop early on the experiment's validation objective (paper §1.5).
    es = entry.early_stopping if iterative and split.validation is not None else None
    trials: list[dict[str, Any]] = []
    tuning: dict[str, Any] | None = None
    final_params = dict(params)
    warnings: list[str] = []
    if entry.search is not None:
        if split.validation is None:
            raise ValueError(
                f"model {entry.display!r} has a search but the split has no validation part; "
                "add split.validation to the spec"
            )
        sims = entry.similarities
        if sims is None:
            found = _search(spec, entry, split, seed, log, params, es, storage, study_name,
                            progress, shared=shared)  # fmt: skip
        else:
            found = _search_similarities(spec, entry, sims, split, seed, log, params, es,
                                         storage, study_name, progress, shared=shared)  # fmt: skip
        if found is None:
            return None
        params, final_params, trials, tuning, warnings = found
    final = split
    v = spec.split.validation
    refit = v is not None and v.refit and split.validation is not None
    if refit:
        final = merge_validation(split)
    from recforge.tuning.memory import PeakMemory

    t0 = time.perf_counter()
    model = make_model(entry.model, **final_params)
    training: dict[str, Any] | None = None

    def say(line: str) -> None:
        log(f"    {line}")

    def resume(stage: str) -> dict[str, Any]:
        if resume_stem is None or not getattr(model_cls, "resumable", False):
            return {}
        from recforge.models.resume import Resume

        return {"resume": Resume(path=resume_stem.with_name(f"{resume_stem.name}.{stage}.npz"))}

    # An early-stopped fit that a refit follows keeps its outcome once done, so a run
    # interrupted during the refit goes on with the refit instead of fitting again.
    done_path = (resume_stem.with_name(f"{resume_stem.name}.fit.done.json")
                 if resume_stem is not None and refit and es is not None else None)
    done_identity = {} if done_path is None else {
        "model": entry.model, "params": final_params, "split": split.fingerprint(),
        "early_stopping": es, "protocol": spec.protocol, "tie_rule": spec.tie_rule,
        "optimize": [spec.optimize.metric, spec.optimize.cutoff]}
    restored = _read_finished_fit(done_path, done_identity, say) if done_path else None
    restored_seconds = 0.0
    with PeakMemory() as memory:  # the final fit (and refit) only; trials measure their own
        if es is not None:
            assert isinstance(model, IterativeRecommender)  # model_cls.iterative is declared
            if restored is not None:
                training, restored_seconds = restored
                say(f"{entry.display}: the early-stopped fit finished before (best epoch "
                    f"{training['epochs_best']} of {training['epochs_run']}), kept; refitting")
            else:
                from recforge.evaluation.validation import validation_callback

                callback = validation_callback(
                    split, spec.optimize.metric, spec.optimize.cutoff, protocol=spec.protocol,
                    tie_rule=spec.tie_rule, memory_budget_mb=spec.memory_budget_mb,
                )
                model.fit(split.train, validation=callback, early_stopping=es,
                          stage=entry.display, progress=say, **resume("fit"))
                training = _training_summary(model)
                if done_path is not None:
                    write_json(done_path, {"identity": done_identity, "training": training,
                                           "seconds": time.perf_counter() - t0})
            params = {**params, model.epochs_param: int(training["epochs_best"])}
            if refit:
                # No validation left to stop on: refit on train + validation, best epoch count.
                model = make_model(entry.model, **params)
                assert isinstance(model, IterativeRecommender)
                model.fit(final.train, stage=f"{entry.display} (refit)", progress=say,
                          **resume("refit"))
                training["refit_epochs"] = int(model.epochs_run_)
                if done_path is not None:
                    done_path.unlink(missing_ok=True)
        elif isinstance(model, IterativeRecommender):
            model.fit(final.train, stage=entry.display, progress=say, **resume("fit"))
            training = _training_summary(model)
        else:
            model.fit(final.train)
    fit_s = time.perf_counter() - t0 + restored_seconds  # a kept fit counts its own time
    fit_memory = {"peak_rss_mb": memory.peak_rss_mb, "added_mb": memory.peak_mb,
                  "method": memory.method}
    t0 = time.perf_counter()
    res = evaluate_split(
        model,
        final,
        cutoffs=cutoffs,
        metrics=metrics,
        on="test",
        protocol=spec.protocol,
        memory_budget_mb=spec.memory_budget_mb,
        tie_rule=spec.tie_rule,
        keep_counts=True,
    )
    eval_s = time.perf_counter() - t0
    if model_dir is not None:
        model.save(model_dir, overwrite=True)
    return ModelRun(
        label=entry.display,
        model=entry.model,
        params=params,
        summary={k: float(v) for k, v in res.summary.items()},
        per_user={k: np.asarray(v) for k, v in res.per_user.items()},
        users=np.asarray(res.users),
        fit_seconds=fit_s,
        fit_memory=fit_memory,
        eval_seconds=eval_s,
        trials=trials,
        tuning=tuning,
        training=training,
        warnings=warnings,
        user_ids=np.asarray(final.train.user_ids)[np.asarray(res.users)],
        recommended=(None if res.recommended is None
                     else recommendation_profile(res.recommended, final.train.item_counts())),
    )


def _read_finished_fit(path: Path, identity: dict[str, Any],
                       say: Any) -> tuple[dict[str, Any], float] | None:
    """The training record and seconds of the finished early-stopped fit kept at ``path``, if
    it is this fit's (same ``identity``); None, said, for another fit's or a damaged file."""
    import json

    if not path.is_file():
        return None
    try:
        found = json.loads(path.read_text())
        same = found["identity"] == json.loads(dumps(identity, indent=None))
        training, seconds = dict(found["training"]), float(found["seconds"])
        training["epochs_best"] = int(training["epochs_best"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        say(f"ignoring the kept fit at {path} ({type(exc).__name__}: {exc}); fitting again")
        return None
    if not same:
        say(f"the kept fit at {path} is of another fit; fitting again")
        return None
    return training, seconds


def _training_summary(model: Any) -> dict[str, Any]:
    """What the training loop recorded on an iterative model (for results.json).

    Models with pre-training stages add each stage's best epoch (``epochs_<stage>_best_``, e.g.
    NeuMF's ``epochs_gmf_best_``) and the stages' histories (``pretrain_history_``).
    """
    out = {
        "epochs_best": int(model.epochs_best_),
        "epochs_run": int(model.epochs_run_),
        "best_validation": model.best_validation_,
        "stop_reason": model.stop_reason_,
        "history": [h.to_dict() for h in model.history_],
    }
    for key, value in vars(model).items():
        if key.startswith("epochs_") and key.endswith("_best_") and key != "epochs_best_":
            out[key[:-1]] = value
    if "pretrain_history_" in vars(model):
        out["pretrain_history"] = model.pretrain_history_
    if getattr(model, "resumed_from_epoch_", 0):
        out["resumed_from_epoch"] = int(model.resumed_from_epoch_)
    return out


def _trial_reporter(log: Any, label: str, total: int,
                    progress: RunProgress | None = None, offset: int = 0) -> Any:
    """A tuning callback: one log line per trial (score, best so far, fit time) and the
    progress display's trial count.

    One counting convention: a trial's *number* is optuna's, from 0 (``trials/*.json``
    ``number``, ``best_trial`` in the results, the report), shown as ``#n``; ``done/total``
    counts finished trials. ``offset``: trials of the entry's earlier searches (a similarity
    list), so numbers and counts run on across them."""
    state: dict[str, Any] = {"done": offset, "best": None}

    def report(rec: Any) -> None:
        state["done"] += 1
        done = state["done"]
        if rec.status != "ok":
            log(f"    {label} trial #{rec.number + offset} ({done}/{total}): failed "
                f"({rec.error or 'error'})")
        else:
            if state["best"] is None or rec.score > state["best"]:
                state["best"] = rec.score
            tag = "new best" if rec.is_new_best else f"best {state['best']:.4f}"
            log(f"    {label} trial #{rec.number + offset} ({done}/{total}): "
                f"{rec.score:.4f} ({tag}; fit {rec.fit_seconds:.2f}s)")
        if progress is not None:
            progress.trial_finished(label, done, total, rec.score, state["best"])

    return report


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by Ctrl-C (or SIGTERM) after writing what it had finished."""

    def __init__(self, message: str, done: int) -> None:
        super().__init__(message)
        self.message = message
        self.done = done


def _preflight(spec: ExperimentSpec, split: Split) -> None:
    """What the split must offer every model, checked before the first model runs."""
    needs_validation = [e.display for e in spec.models if e.search is not None]
    if needs_validation and split.validation is None:
        raise ValueError(
            f"model(s) {needs_validation} have a search but the split has no validation part; "
            "add split.validation to the spec"
        )
    if spec.protocol == "candidates":
        if split.test_negatives is None:
            raise ValueError("protocol 'candidates' needs test negatives, and the split has none")
        if needs_validation and split.validation_negatives is None:
            raise ValueError(
                f"protocol 'candidates' with a search ({needs_validation}) needs validation "
                "negatives, and the split has none"
            )


def run_experiment(
    spec: ExperimentSpec,
    out_dir: str | Path | None = None,
    *,
    log: Any = None,
    audit: bool = True,
    force: bool = False,
    progress: RunProgress | None = None,
    study_storage: str | None = None,
    shared: SharedStudy | None = None,
) -> ExperimentOutcome:
    """Run ``spec``; with ``out_dir`` every artefact is written there as it is finished.

    Re-running the same spec into the same ``out_dir`` resumes it (see
    :mod:`recforge.experiments.artifacts`); ``force`` discards what the folder holds first.
    Ctrl-C raises :class:`RunInterrupted` once what was finished is on disk. ``progress``
    receives the run's events (e.g. :class:`~recforge.experiments.progress.RichProgress`).
    ``study_storage`` (an optuna storage URL) keeps the searches' studies instead of the
    folder's ``studies.db``; with ``shared`` (a lead) other processes run trials of each
    search with :func:`share_searches` on the same storage (see :mod:`recforge.tuning.shared`).
    """
    if shared is not None and (not shared.lead or out_dir is None or study_storage is None):
        raise ValueError("run_experiment: a shared run is the searches' lead, with out_dir and "
                         "study_storage (the helpers run share_searches)")
    from recforge.data.audit import audit_split

    log = log or (lambda msg: print(msg, file=sys.stderr))
    rundir = RunDir.open(out_dir, spec, force=force) if out_dir is not None else None
    progress = progress or RunProgress()
    done = 0
    finished = 0
    total = len(spec.seeds) * len(spec.models)
    outcome: ExperimentOutcome | None = None
    try:
        if rundir is not None:
            if rundir.resumed:
                log(f"resuming {rundir.path}: {len(rundir._progress['done'])} model run(s) "
                    "finished before")
            rundir.write("environment.json", _environment())
        data, filter_reports = _load_data(spec)
        base = data.train if isinstance(data, Split) else data
        data_info: dict[str, Any] = {
            "dataset": spec.dataset.label,
            "options": spec.dataset.options,
            "data_checksum": base.checksum(),
            "filters": filter_reports,
            "splits": {},
        }
        if rundir is not None:
            rundir.check_data(data_info["data_checksum"])
        runs: dict[int, dict[str, ModelRun]] = {}
        progress.run_started(total)
        for seed in spec.seeds:
            split = prepare_split(spec, data, seed)
            if seed == spec.seeds[0]:
                _preflight(spec, split)
            info: dict[str, Any] = {"describe": split.describe(),
                                    "fingerprint": split.fingerprint(),
                                    "statistics": split_statistics(split)}
            log(f"seed {seed}: split {split.fingerprint()[:12]} "
                f"train={split.train.nnz} test={split.test.nnz}")
            if audit:
                rep = audit_split(split)
                info["audit"] = rep.to_dict()
                for w in rep.warnings:
                    log(f"  audit warning (seed {seed}): {w}")
            dropped = split.params.get("dropped_cold_start")
            if dropped:
                log(f"  filter_test_users=drop_cold_start (seed {seed}): removed "
                    f"{dropped.get('test_users', 0)} test and "
                    f"{dropped.get('validation_users', 0)} validation user(s) without train")
            data_info["splits"][str(seed)] = info
            if rundir is not None:
                rundir.write("data.json", data_info)
            runs[seed] = {}
            for entry in spec.models:
                kept = rundir.load_run(entry.display, seed) if rundir is not None else None
                if kept is not None:
                    runs[seed][entry.display] = kept
                    finished += 1
                    log(f"  {entry.display}: finished before, kept")
                    progress.model_finished(finished, total, kept, kept=True)
                    continue
                n_trials = entry.search.n_trials if entry.search is not None else None
                log(f"model {finished + 1}/{total}: {entry.display} (seed {seed})")
                progress.model_started(finished, total, entry.display, seed, n_trials)
                store: dict[str, Any] = {}
                if rundir is not None:
                    store = {"storage": study_storage or rundir.storage_url,
                             "study_name": rundir.study_name(entry.display, seed)}
                    if spec.keep_models:
                        store["model_dir"] = rundir.model_dir(entry.display, seed)
                    store["resume_stem"] = rundir.resume_stem(entry.display, seed)
                run = _run_model(spec, entry, split, seed, log, progress=progress,
                                 shared=shared, **store)  # fmt: skip
                assert run is not None  # the lead (or a run that shares nothing) has a result
                if rundir is not None:
                    rundir.save_run(run, seed)
                runs[seed][entry.display] = run
                done += 1
                finished += 1
                progress.model_finished(finished, total, run, kept=False)
                main = f"{spec.optimize.metric}@{spec.optimize.cutoff}"
                shown = run.summary.get(main)
                log(f"  {entry.display}: fit {run.fit_seconds:.2f}s eval {run.eval_seconds:.2f}s"
                    + (f" {main}={shown:.4f}" if shown is not None else ""))
        rows, spread = _aggregate(spec, runs)
        outcome = ExperimentOutcome(spec=spec, rows=rows, spread=spread, runs=runs,
                                    data=data_info)
        extra = None
        if spec.reference is not None:
            from recforge.experiments.reference import check_spec_reference

            extra = check_spec_reference(outcome, spec.reference)
            outcome.checks = extra["checks"]
            s = extra["check_summary"]
            log(f"reference check: {s['pass']}/{s['cells']} cells pass "
                f"({s['within_tolerance']} within tolerance, {s['reference_in_interval']} with "
                f"the reference inside our interval)")
        if rundir is not None:
            write_outputs(outcome, rundir.path, extra)
            rundir.write_progress(state="finished")
        progress.run_finished(outcome)
        return outcome
    except KeyboardInterrupt:
        progress.run_finished(None)
        if rundir is None:
            raise
        rundir.write_progress(state="interrupted")
        points = sorted(p.name for pattern in ("*.npz", "*.fit.done.json")
                        for p in (rundir.path / "resume").glob(pattern))
        raise RunInterrupted(
            f"interrupted; {len(rundir._progress['done'])} finished model run(s) are kept in "
            f"{rundir.path}" + (f" and the fit in progress is saved ({', '.join(points)})"
                                if points else "")
            + ": run the same command again to resume", done,
        ) from None
    except BaseException as exc:
        progress.run_finished(None)
        if rundir is not None:
            rundir.write_progress(state="failed", error=f"{type(exc).__name__}: {exc}")
        raise
    finally:
        if rundir is not None:
            rundir.close()


def share_searches(spec: ExperimentSpec, study_storage: str, shared: SharedStudy,
                   log: Any = None) -> None:  # fmt: skip
    """Help with the searches of ``spec``: run trials in their shared studies in
    ``study_storage`` until none is left to claim, while another process (the lead) runs the
    spec with ``run_experiment(..., study_storage=, shared=)`` and writes every output."""
    if shared.lead:
        raise ValueError("share_searches: this process helps; the lead runs run_experiment")
    log = log or (lambda msg: print(msg, file=sys.stderr))
    data, _ = _load_data(spec)
    stems = label_stems([m.display for m in spec.models])
    for seed in spec.seeds:
        split = prepare_split(spec, data, seed)
        for entry in spec.models:
            if entry.search is not None:
                name = run_stem(stems[entry.display], seed)
                _run_model(spec, entry, split, seed, log, storage=study_storage,
                           study_name=name, shared=shared)


def _aggregate(
    spec: ExperimentSpec, runs: dict[int, dict[str, ModelRun]]
) -> tuple[dict[str, dict[str, float]], dict[str, dict[str, float]]]:
    rows: dict[str, dict[str, float]] = {}
    spread: dict[str, dict[str, float]] = {}
    for entry in spec.models:
        label = entry.display
        keys = list(runs[spec.seeds[0]][label].summary)
        rows[label] = {}
        spread[label] = {}
        for k in keys:
            vals = np.array([runs[s][label].summary[k] for s in spec.seeds], dtype=np.float64)
            rows[label][k] = float(vals.mean())
            spread[label][k] = float(vals.std(ddof=1)) if vals.size > 1 else 0.0
    return rows, spread


def write_outputs(
    outcome: ExperimentOutcome, out: Path, extra: dict[str, Any] | None = None
) -> None:
    """Write spec, environment, data identity, trials, best configs, per-user values, results
    and the Markdown/HTML report (atomically, file by file)."""
    from recforge.experiments.report import build_significance, render_html, render_markdown

    out.mkdir(parents=True, exist_ok=True)
    spec = outcome.spec
    write_text_atomic(out / "spec.resolved.yaml",
                      yaml.safe_dump(spec_document(spec), sort_keys=False))
    if not (out / "environment.json").is_file():
        write_json(out / "environment.json", _environment())
    write_json(out / "data.json", outcome.data)
    stems = label_stems([m.display for m in spec.models])
    best: dict[str, Any] = {}
    for seed, by_label in outcome.runs.items():
        for label, run in by_label.items():
            best.setdefault(label, {})[str(seed)] = {
                "model": run.model,
                "params": run.params,
                "fit_seconds": run.fit_seconds,
                "fit_memory": run.fit_memory,
                "eval_seconds": run.eval_seconds,
                "tuning": run.tuning,
                "training": run.training,
            }
            save_run_files(out, f"{stems[label]}__seed{seed}", run)
    write_json(out / "best_configs.json", best)
    sig = build_significance(outcome)
    from recforge.tuning.protocols import get_preset

    results: dict[str, Any] = {
        "name": spec.name,
        "protocol_preset": get_preset(spec.preset).describe(),
        "rows": outcome.rows,
        "spread": outcome.spread,
        "seeds": spec.seeds,
        "data_checksum": outcome.data["data_checksum"],
        "split_fingerprints": {s: v["fingerprint"] for s, v in outcome.data["splits"].items()},
        "significance": sig,
        "warnings": outcome.warnings,
        # every seed's test values (rows are their means) and what each run recommended
        "per_seed": {label: {str(seed): by_label[label].summary
                             for seed, by_label in outcome.runs.items()}
                     for label in outcome.rows},
        "recommended": {label: {str(seed): by_label[label].recommended
                                for seed, by_label in outcome.runs.items()}
                        for label in outcome.rows},
    }
    training = {
        label: {str(seed): by_label[label].training for seed, by_label in outcome.runs.items()}
        for label in next(iter(outcome.runs.values()), {})
        if any(by_label[label].training is not None for by_label in outcome.runs.values())
    }
    if training:
        results["training"] = training
    if extra:
        results.update(extra)
    write_json(out / "results.json", results)
    write_text_atomic(out / "report.md", render_markdown(outcome, sig, extra))
    write_text_atomic(out / "report.html", render_html(outcome, sig, extra))
    outcome.out_dir = out

