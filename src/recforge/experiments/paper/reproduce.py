"""One-command reproductions of the RecSys 2019 paper's baseline tables.

``toppop-checks`` pins the evaluator and splits against two published TopPopular/Random cells.
Every table block of :mod:`recforge.experiments.paper.setups` (its protocol decisions are
documented there) runs with either the paper's reported best hyper-parameters
(``fixed=True``) or our own seeded Bayesian search, and each cell is compared with the paper
by :func:`check_cell`.

Neural rows (``TableSetup.neural_labels``) always run with the paper's settings and stop early
on the block's validation metric; ``neural=False`` leaves them out and ``max_epochs`` caps
their training for a quick look (the cap is printed and stored in the results: such a row is
not the paper's protocol); ``neural_params`` changes single settings of a neural row the same
way (printed and stored; e.g. SpectralCF's ``propagation="sparse"``). Their cells are
compared with the paper's numbers too (``kind``
"neural"; they do not decide ``all_ok``, which is about the baselines), and
:func:`~recforge.experiments.paper.conclusion.check_conclusion` asks whether the best baseline
still beats them, with a paired test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from recforge.data.dataset_spec import DatasetUnavailableError
from recforge.experiments.paper.numbers import PAPER_PARAMS, PAPER_TABLES, REFERENCE_ROWS
from recforge.experiments.paper.setups import MODEL_OF_LABEL, SETUPS
from recforge.experiments.reference import Check, Tolerance, check_outcome, rule_text, summarize
from recforge.experiments.reference import check_cell as _reference_cell

__all__ = [
    "TABLES", "Check", "TableDataUnavailable", "block_at_hand", "build_table_spec",
    "check_cell", "content_at_hand", "reproduce_table", "tolerance", "toppop_checks",
]


#: The paper cells' tolerance: 0.01 absolute or 3 % relative, whichever is larger.
PAPER_TOLERANCE = Tolerance(absolute=0.01, relative=0.03)


def tolerance(paper: float) -> float:
    """Issue rule: 0.01 absolute or 3% relative, whichever is larger."""
    return PAPER_TOLERANCE.of(paper)


def check_cell(dataset: str, model: str, metric: str, paper: float, ours: float, *,
               fixed: bool, spread: float | None = None,
               interval: tuple[float, float] | None = None) -> Check:
    """The one pass rule of a reproduced table cell (:func:`recforge.experiments.reference.
    check_cell`) with the paper's tolerance.

    With the paper's hyper-parameters (``fixed``) the paper value is a target: ours must lie
    within :func:`tolerance` and the paper value inside our 95 % ``interval``. With our own
    search it is a floor: ours must reach at least the paper value minus the tolerance, and
    the paper value must not lie above our interval.
    """
    return _reference_cell(dataset, model, metric, paper, ours,
                           mode="target" if fixed else "floor", tolerance=PAPER_TOLERANCE,
                           interval=interval, spread=spread)


def _check(dataset: str, model: str, metric: str, paper: float, values: list[float],
           tol: float, note: str = "") -> Check:
    arr = np.asarray(values, dtype=np.float64)
    ours = float(arr.mean())
    ok = bool(abs(ours - paper) <= tol)
    return Check(
        dataset=dataset,
        model=model,
        metric=metric,
        paper=paper,
        ours=round(ours, 6),
        delta=round(ours - paper, 6),
        tolerance=tol,
        ok=ok,
        spread=float(arr.std(ddof=1)) if arr.size > 1 else None,
        note=note,
        rel_delta=round((ours - paper) / abs(paper), 6) if paper else None,
        within_tolerance=ok,
    )


def toppop_checks(n_seeds_ml1m: int = 5, n_seeds_random: int = 10,
                  log: Any = None) -> list[Check]:
    """The foundation issue's acceptance checks (TopPopular and Random)."""
    from recforge.data import splitting
    from recforge.data.registry import load_dataset
    from recforge.evaluation import evaluate_split
    from recforge.models import make_model

    log = log or (lambda _m: None)
    checks: list[Check] = []

    log("mcrec-ml-100k: TopPopular, full ranking excluding train items, cut-off 10")
    split = load_dataset("mcrec-ml-100k")
    top = make_model("TopPopular").fit(split.train)
    res = evaluate_split(top, split, cutoffs=[10], metrics=["PRECISION", "RECALL", "NDCG"])
    for metric, paper in (("PRECISION@10", 0.1907), ("RECALL@10", 0.1180), ("NDCG@10", 0.1361)):
        checks.append(_check("mcrec-ml-100k", "TopPopular", metric, paper,
                             [res.summary[metric]], 0.001))
    log(f"mcrec-ml-100k: Random, {n_seeds_random} seeds")
    precs = []
    for seed in range(n_seeds_random):
        rnd = make_model("Random", seed=seed).fit(split.train)
        r = evaluate_split(rnd, split, cutoffs=[10], metrics=["PRECISION"])
        precs.append(r.summary["PRECISION@10"])
    checks.append(_check("mcrec-ml-100k", "Random", "PRECISION@10", 0.0141, precs, 0.002,
                         note=f"mean of {n_seeds_random} seeds"))

    log(f"spectralcf-ml-1m (226,310 5-star pairs): per-user 80/20 + 10% validation, "
        f"{n_seeds_ml1m} seeds")
    pairs = load_dataset("spectralcf-ml-1m", part="all")
    rec, mapk = [], []
    for seed in range(n_seeds_ml1m):
        sp_ = splitting.per_user_holdout(pairs, test_fraction=0.2, seed=seed)
        sp_ = splitting.carve_validation(sp_, fraction=0.1, seed=seed, mode="per_user")
        model = make_model("TopPopular").fit(sp_.train)
        r = evaluate_split(model, sp_, cutoffs=[20], metrics=["RECALL", "MAP"])
        rec.append(r.summary["RECALL@20"])
        mapk.append(r.summary["MAP@20"])
    note = f"mean of {n_seeds_ml1m} seeds"
    checks.append(_check("spectralcf-ml-1m", "TopPopular", "RECALL@20", 0.1853, rec, 0.005, note))
    checks.append(_check("spectralcf-ml-1m", "TopPopular", "MAP@20", 0.0576, mapk, 0.003, note))
    return checks


# ---------------------------------------------------------------------------- tables
TABLES = tuple(SETUPS)


def _preset_rows(setup: Any, preset: str, rows: tuple[str, ...]) -> tuple[str, ...]:
    """The block's rows plus the baselines ``preset`` adds (before the neural rows)."""
    from recforge.tuning.protocols import get_preset

    label_of = {m: lab for lab, m in MODEL_OF_LABEL.items()}
    have = {MODEL_OF_LABEL[lab] for lab in setup.rows(with_content=True)}
    extra = tuple(label_of.get(m, m) for m in get_preset(preset).extra_models if m not in have)
    neural = tuple(lab for lab in rows if lab in setup.neural_labels)
    return tuple(lab for lab in rows if lab not in neural) + extra + neural


def build_table_spec(name: str, *, fixed: bool, budget: int | None = None,
                     seeds: list[int] | None = None,
                     correct_genres: bool = False, models: list[str] | None = None,
                     n_jobs: int = 1, paper_ties: bool = False,
                     with_content: bool = False, neural: bool = True,
                     max_epochs: int | None = None, stand_in: bool = False,
                     neural_params: dict[str, dict[str, Any]] | None = None,
                     all_similarities: bool = False,
                     preset: str = "recsys2019") -> dict[str, Any]:
    """The experiment spec (as a dict) that reproduces one table block (see ``setups``).

    ``preset``: the tuning protocol (:mod:`recforge.tuning.protocols`); ``budget`` defaults to
    its trial count, its random starts are ``min(n_startup_trials, budget)``, and its
    ``extra_models`` join the block's baseline rows (``tois2021``: the journal's baselines).
    Only the default preset runs ``fixed`` (the 2019 paper's reported hyper-parameters).

    ``all_similarities`` (search mode): the KNN rows search each of the paper's five
    similarities (``budget`` trials each) and keep the best on validation, as RS19 did;
    default: cosine only (a fifth of the cost).

    ``paper_ties``: break ties among equal scores/similarities as the paper's numpy did
    (``tie_rule="numpy-legacy"`` for the evaluator and the KNN neighbour selection) instead of
    lower-index-first; needed where ties dominate (Table 3 ItemKNN CBF, Table 4 UserKNN).
    ``with_content``: also run the rows that need item content (Tables 4/5 CBF and CFCBF).
    ``neural``: run the block's neural rows (paper settings, early stopping); ``max_epochs``
    caps their epochs (a quick look); ``neural_params`` (label -> {parameter: value}) changes
    single settings of a neural row. ``stand_in``: the rows that need item content run on the
    block's stand-in content (Tables 4/5: CiteULike tags); the spec name says so.
    """
    try:
        setup = SETUPS[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLES)}") from None
    unknown = sorted(set(neural_params or {}) - set(setup.neural_labels))
    if unknown:
        rows = ", ".join(setup.neural_labels) or "none"
        raise ValueError(f"neural_params name {', '.join(unknown)}, not a neural row of {name} "
                         f"(its neural rows: {rows})")
    if all_similarities and fixed:
        raise ValueError("all_similarities applies to a search; --fixed uses the paper's "
                         "reported similarity")
    if stand_in and not setup.stand_in_options:
        raise ValueError(f"{name} has no stand-in item content")
    from recforge.tuning.protocols import DEFAULT_PRESET, get_preset

    protocol = get_preset(preset)
    if fixed and preset != DEFAULT_PRESET:
        raise ValueError(f"--fixed runs the RecSys 2019 paper's reported hyper-parameters; "
                         f"preset {preset} is a search protocol (drop --fixed)")
    budget = protocol.n_trials if budget is None else budget
    with_content = with_content or stand_in
    fields = setup.spec_fields(with_content=with_content, stand_in=stand_in)
    if name == "table3":
        fields["dataset"]["options"]["genre_bug"] = not correct_genres
    if fixed and not setup.from_paper:
        raise ValueError(f"{name} is not a paper table: it has no reported hyper-parameters "
                         "to fix; run it with a search (--budget N)")
    if max_epochs is not None and (isinstance(max_epochs, bool) or max_epochs < 1):
        raise ValueError(f"max_epochs must be a positive integer, got {max_epochs!r}")
    params = PAPER_PARAMS.get(name, {})
    every = _preset_rows(setup, preset, setup.rows(with_content=True))
    unknown = sorted(set(models or ()) - set(every) - {MODEL_OF_LABEL[lab] for lab in every})
    if unknown:  # a filter that matches nothing would silently drop the row asked for
        raise ValueError(f"{name} has no row {', '.join(map(repr, unknown))}; its rows: "
                         f"{', '.join(every)}")
    entries = []
    for label in _preset_rows(setup, preset,
                              setup.rows(with_content=with_content, with_neural=neural)):
        model_name = MODEL_OF_LABEL[label]
        if models and label not in models and model_name not in models:
            continue
        if label in setup.neural_labels and setup.neural_needs_content and not with_content:
            continue  # no item content to read (reproduce_table says so in a note)
        entry: dict[str, Any] = {"model": model_name, "label": label}
        if label in setup.neural_labels:
            entry.update(_neural_entry(setup, name, label, model_name, max_epochs))
            entry["params"].update((neural_params or {}).get(label, {}))
        elif label in ("TopPop", "Random"):
            pass
        elif fixed:
            if label not in params:
                raise KeyError(f"no reported hyper-parameters for {label} in {name}")
            entry["params"] = dict(params[label])
            if paper_ties and "KNN" in label:
                entry["params"]["tie_rule"] = "numpy-legacy"
        else:
            from recforge.models.knn import SEARCHED_SIMILARITIES

            fixed_part: dict[str, Any] = {}
            if "KNN" in label:
                fixed_part["similarity"] = (list(SEARCHED_SIMILARITIES) if all_similarities
                                            else "cosine")
            if paper_ties and "KNN" in label:
                fixed_part["tie_rule"] = "numpy-legacy"
            entry["params"] = fixed_part
            entry["search"] = {"n_trials": budget,
                               "n_startup_trials": min(protocol.n_startup_trials, budget)}
        entries.append(entry)
    suffix = ("" if not setup.neural_labels else "-no-neural" if not neural
              else "" if max_epochs is None else f"-cap{max_epochs}")
    if stand_in:
        suffix = f"-{setup.stand_in_name}{suffix}"
    if all_similarities:
        suffix = f"-allsim{suffix}"
    if preset != DEFAULT_PRESET:
        suffix = f"-{preset}{suffix}"
    return {
        "name": f"{name}-{'fixed' if fixed else f'search{budget}'}{suffix}",
        **fields,
        "preset": preset,
        "seeds": seeds or list(setup.seeds),
        "models": entries,
        "n_jobs": n_jobs,
        "tie_rule": "numpy-legacy" if paper_ties else "lower-index",
    }


class TableDataUnavailable(DatasetUnavailableError):
    """A table block's data cannot be obtained here; the message says how to fetch it."""


def _fetch_required(name: str, required: tuple[tuple[str, str | None], ...]) -> None:
    """Fetch (and verify) what a block reads before any work, or refuse naming the command."""
    from recforge.data.registry import fetch, fetch_command

    for dataset, filename in required:
        try:
            fetch(dataset, filename)
        except DatasetUnavailableError as exc:
            what = dataset + (f"/{filename}" if filename else "")
            raise TableDataUnavailable(
                f"{name} needs {what}, which cannot be obtained here: {exc}. On a machine "
                f"with internet access (RECFORGE_DATA_MIRROR unset) run `{fetch_command(dataset)}`"
                f" (a verified download into the cache), then `recforge reproduce` again."
            ) from exc


def _stand_in_note(setup: Any) -> str:
    rows = [*setup.content_labels, *setup.neural_labels]
    own = ", ".join(f or d for d, f in setup.content_requires) or "the block's content"
    return (f"item content: {setup.stand_in_name} stand in for {own} (not used or not at "
            f"hand): rows {', '.join(rows)} are {setup.stand_in_name}-content runs, reported "
            "beside the paper's numbers but not judged against them")


def content_at_hand(name: str) -> bool:
    """Whether the item content a block's CBF/CFCBF rows need is cached or in the mirror."""
    from recforge.data.registry import is_local

    setup = SETUPS[name]
    return bool(setup.content_labels) and all(
        is_local(d, f) for d, f in setup.content_requires)


def block_at_hand(name: str) -> bool:
    """Whether every file a block needs is cached or in the mirror (no download)."""
    from recforge.data.registry import is_local

    return all(is_local(d, f) for d, f in SETUPS[name].requires)


def _neural_entry(setup: Any, name: str, label: str, model_name: str,
                  max_epochs: int | None) -> dict[str, Any]:
    """Spec fields of a neural row: the paper's settings, its early stopping, the epoch cap."""
    from recforge.models import get_model_class
    from recforge.models.iterative import EarlyStopping

    params = dict(PAPER_PARAMS.get(name, {}).get(label, {}))
    es = setup.early_stopping.get(label, {})
    if max_epochs is not None:
        if es is None:  # a fixed run (no validation): cap the epoch hyper-parameter itself
            cls = get_model_class(model_name)
            cap_name = cls.epochs_param
            assert cap_name is not None, f"{model_name} is a neural row but not iterative"
            default = cls().get_params()[cap_name]
            params[cap_name] = min(int(params.get(cap_name, default)), max_epochs)
        else:
            es = EarlyStopping(**es).with_cap(max_epochs).model_dump()
    return {"params": params, "early_stopping": es}


def reproduce_table(name: str, *, fixed: bool = False, budget: int | None = None,
                    seeds: list[int] | None = None, out_dir: str | Path | None = None,
                    correct_genres: bool = False, models: list[str] | None = None,
                    n_jobs: int = 1, log: Any = None, paper_ties: bool = False,
                    with_content: bool | None = None, neural: bool = True,
                    max_epochs: int | None = None,
                    stand_in: bool | None = None,
                    neural_params: dict[str, dict[str, Any]] | None = None,
                    all_similarities: bool = False,
                    preset: str = "recsys2019") -> dict[str, Any]:
    """Run one table block and compare with the paper; returns the ``results.json`` content.

    ``preset`` names the tuning protocol (``recsys2019``, ``tois2021``; see
    :func:`build_table_spec`); ``budget`` (trials per search) defaults to the preset's.

    ``with_content``: run the rows that need item content (Tables 4/5 CBF/CFCBF) — True
    requires the content (refused if it cannot be obtained), None runs them when the content
    is already at hand and says so when it is not, False never.
    ``neural``: run the block's neural rows; ``max_epochs``: cap their epochs (a quick look);
    ``neural_params``: change single settings of a neural row (label -> {parameter: value}).
    ``stand_in``: run the rows that need item content on the block's stand-in (Tables 4/5:
    the CiteULike tag matrix for the bag of words) — None does so when the block's neural rows
    need content that is not at hand, True always, False never (those neural rows are then
    left out, with a note). Cells of the content rows on a stand-in are reported with kind
    "stand-in" and do not decide ``all_ok``; the neural cells never do.
    Raises :class:`TableDataUnavailable` before any work when the block's data cannot be
    obtained.
    """
    from recforge.experiments.paper.conclusion import check_conclusion
    from recforge.experiments.runner import run_experiment, write_outputs
    from recforge.experiments.spec import parse_spec
    from recforge.tuning.protocols import get_preset

    log = log or (lambda _m: None)
    if name not in SETUPS:
        raise KeyError(f"unknown table {name!r}; known: {', '.join(TABLES)}")
    budget = get_preset(preset).n_trials if budget is None else budget
    setup = SETUPS[name]
    notes: list[str] = []
    wanted = [lab for lab in setup.neural_labels
              if not models or lab in models or MODEL_OF_LABEL[lab] in models]
    reads_content = neural and setup.neural_needs_content and bool(wanted)
    if stand_in is None:  # only when the content was not decided and is not at hand
        stand_in = (bool(setup.stand_in_options) and reads_content and with_content is None
                    and not content_at_hand(name))
    if stand_in:
        if not setup.stand_in_options:
            raise ValueError(f"{name} has no stand-in item content")
        with_content = True
        notes.append(_stand_in_note(setup))
        log(notes[-1])
    elif reads_content and not with_content and not (
            with_content is None and content_at_hand(name)):
        notes.append(f"rows {', '.join(setup.neural_labels)} not run: they read the item "
                     "content, which is not used (--content, or --stand-in for "
                     f"{setup.stand_in_name or 'a substitute'})")
        log(notes[-1])
    if with_content is None:
        with_content = content_at_hand(name)
        if setup.content_labels and not with_content:
            datasets = sorted({d for d, _ in setup.content_requires})
            notes.append(
                f"rows {', '.join(setup.content_labels)} not run: their item content "
                f"({', '.join(f or d for d, f in setup.content_requires)}) is not at hand; "
                f"`recforge data fetch {' '.join(datasets)}` online, or --content to fetch it"
            )
            log(notes[-1])
    _fetch_required(name, setup.requires + setup.stand_in_requires if stand_in
                    else setup.required(with_content=with_content))
    spec = parse_spec(
        build_table_spec(name, fixed=fixed, budget=budget, seeds=seeds,
                         correct_genres=correct_genres, models=models, n_jobs=n_jobs,
                         paper_ties=paper_ties, with_content=with_content, neural=neural,
                         max_epochs=max_epochs, stand_in=stand_in,
                         neural_params=neural_params,
                         all_similarities=all_similarities, preset=preset),
        source=f"reproduce {name}",
    )
    neural_rows = [m.display for m in spec.models if m.display in setup.neural_labels]
    changed = {label: dict(p) for label, p in (neural_params or {}).items()
               if p and label in neural_rows}
    if changed:
        text = "; ".join(f"{label}: " + ", ".join(f"{k}={v!r}" for k, v in p.items())
                         for label, p in changed.items())
        notes.append(f"neural rows changed from the paper's settings ({text})")
        log(notes[-1])
    cap_note = (None if max_epochs is None or not neural_rows else
                f"neural rows capped at {max_epochs} epochs: a quick look, not the paper's "
                "protocol")
    if cap_note:
        notes.append(cap_note)
        log(cap_note)
    try:
        # with out_dir each finished model run is written as it finishes, and re-running the
        # same command into the same folder resumes (long neural rows, 35-trial searches)
        outcome = run_experiment(spec, None if out_dir is None else Path(out_dir), log=log)
    except TableDataUnavailable:
        raise
    except DatasetUnavailableError as exc:  # raised while loading, before any model work
        from recforge.data.registry import fetch_command

        dataset = spec.dataset.name or str(spec.dataset.file)
        raise TableDataUnavailable(
            f"{name}: its data cannot be obtained here: {exc}. On a machine with internet "
            f"access (RECFORGE_DATA_MIRROR unset) run `{fetch_command(dataset)}`, then "
            "`recforge reproduce` again."
        ) from exc
    paper = PAPER_TABLES.get(name, {})
    reference = REFERENCE_ROWS.get(name, {})
    kinds = {label: ("neural" if label in neural_rows
                     else "stand-in" if stand_in and label in setup.content_labels
                     else "baseline") for label in outcome.rows}
    values = {label: (reference if kinds[label] == "neural" else paper).get(label, {})
              for label in outcome.rows}
    modes = {label: "target" if fixed or kinds[label] == "neural" else "floor"
             for label in outcome.rows}
    checks = [c.to_dict() for c in check_outcome(
        outcome, values, mode=modes, tolerance=PAPER_TOLERANCE, kinds=kinds)]  # type: ignore[arg-type]
    baseline_checks = [c for c in checks if c["kind"] == "baseline"]
    neural_checks = [c for c in checks if c["kind"] == "neural"]
    extra = {
        "notes": notes,
        "item_content": (setup.stand_in_name if stand_in
                         else "block's own" if with_content else None),
        "paper": paper,
        "paper_reference_rows": reference,
        "checks": checks,
        "rule": rule_text("target" if fixed else "floor", PAPER_TOLERANCE, 0.95),
        "check_summary": summarize(baseline_checks),
        "mode": "fixed" if fixed else f"search ({budget} trials per model, preset {preset})",
        "preset": preset,
        "all_ok": all(c["ok"] for c in baseline_checks),
        "neural": {
            "enabled": neural,
            "rows": neural_rows,
            "max_epochs": max_epochs,
            "changed_params": changed,
            "note": cap_note,
            "all_ok": all(c["ok"] for c in neural_checks) if neural_checks else None,
        },
        "conclusion": check_conclusion(outcome, neural_rows, paper, reference),
    }
    if out_dir is not None:
        write_outputs(outcome, Path(out_dir), extra)
    return {"name": spec.name, "rows": outcome.rows, "spread": outcome.spread, **extra}


def reproduce_command(table: str, variant: str | None = None, *,
                      out_dir: str | Path | None = None, log: Any = None,
                      **kwargs: Any) -> dict[str, Any]:
    """``recforge reproduce <table> [--split/--dataset variant]``: the block(s) it names.

    Without a variant a table runs its default block plus the optional blocks of
    :data:`~recforge.experiments.paper.setups.OPTIONAL_BLOCKS` whose data is already at hand
    (a skipped block is reported in ``notes``). One block returns its own payload; several
    return ``{"blocks": {key: payload}, "checks": [...], "all_ok", "notes"}`` and write each
    block under ``out_dir/<key>``. ``kwargs`` go to :func:`reproduce_table`.
    """
    from recforge.data.registry import fetch_command
    from recforge.experiments.paper.setups import OPTIONAL_BLOCKS, resolve

    log = log or (lambda _m: None)
    first = resolve(table, variant)
    blocks = [first]
    notes: list[str] = []
    if variant is None:
        for extra in OPTIONAL_BLOCKS.get(table, ()):
            if block_at_hand(extra):
                blocks.append(extra)
            else:
                datasets = sorted({d for d, _ in SETUPS[extra].requires})
                notes.append(
                    f"block {extra} not run: {', '.join(datasets)} not at hand; "
                    f"`{'; '.join(fetch_command(d) for d in datasets)}` online, then rerun "
                    f"(or --dataset {next(k for k, v in _variants(table).items() if v == extra)}"
                    " to download and run it)"
                )
                log(notes[-1])
    if len(blocks) == 1:
        payload = reproduce_table(first, out_dir=out_dir, log=log, **kwargs)
        payload["notes"] = notes + payload.get("notes", [])
        return payload
    results = {
        b: reproduce_table(b, out_dir=None if out_dir is None else Path(out_dir) / b, log=log,
                           **kwargs)
        for b in blocks
    }
    checks = [c for r in results.values() for c in r["checks"]]
    return {
        "name": table,
        "blocks": results,
        "checks": checks,
        "all_ok": all(r["all_ok"] for r in results.values()),
        "notes": notes + [n for r in results.values() for n in r.get("notes", [])],
    }


def _variants(table: str) -> dict[str, str]:
    from recforge.experiments.paper.setups import TABLE_VARIANTS

    return TABLE_VARIANTS.get(table, {})
