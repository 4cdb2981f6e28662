"""``recforge split``, ``evaluate`` and ``run``: data in, splits and results out.

``split`` and ``evaluate`` take their data the way ``run`` does: a registered dataset name, your
own interactions file (CSV/TSV/parquet with ``--user-col`` ...), or an experiment spec whose
dataset, filters and split are used.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from recforge._json import dumps
from recforge.cli._common import (
    JsonOpt,
    echo,
    err,
    fail,
    log,
    parse_kv,
    print_json,
    sigterm_as_interrupt,
)

__all__ = ["evaluate_cmd", "run_cmd", "split_cmd"]

SPLIT_HELP = ("predefined, per_user_holdout, global_holdout, leave_one_out, temporal, "
              "held_out_users, mult_vae (default: predefined for a registered dataset)")
UserCol = Annotated[str, typer.Option(help="Data file: the user column.")]
ItemCol = Annotated[str, typer.Option(help="Data file: the item column.")]
RatingCol = Annotated[str | None, typer.Option(help="Data file: the rating column.")]
TimeCol = Annotated[str | None, typer.Option(help="Data file: the timestamp column.")]
Sep = Annotated[str | None, typer.Option(help="Data file: the separator (default: guessed).")]
IdType = Annotated[str, typer.Option(help="Data file: ids are 'int' or 'str'.")]


def source_spec(
    source: str, *, options: dict[str, Any], method: str | None, params: dict[str, Any],
    validation: float | None, validation_mode: str, models: list[dict[str, Any]],
    file_columns: dict[str, Any],
) -> Any:
    """The experiment spec a command's data source stands for (see the module docstring)."""
    from recforge.experiments.spec import load_spec, parse_spec, resolve_paths

    path = Path(source).expanduser()
    if path.suffix.lower() in (".yaml", ".yml"):
        if method is not None or params or validation is not None:
            fail(f"{source} is a spec: its split is used, so --method/--param/--validation "
                 "are not taken with it")
        spec = load_spec(path)  # paths resolved against the spec's folder
        return parse_spec({**spec.model_dump(mode="json"), "models": models}, source=str(path))
    if path.is_file():
        if method is None:
            fail(f"{source} is a data file: choose how to split it with --method ({SPLIT_HELP})")
        dataset = {"file": str(path), **{k: v for k, v in file_columns.items() if v is not None}}
        if options:
            dataset["options"] = options
    else:
        dataset = {"name": source, "options": options}
    spec_dict: dict[str, Any] = {
        "name": "command-line",
        "dataset": dataset,
        "split": {"method": method or "predefined", "params": params},
        "models": models,
    }
    if validation is not None:
        spec_dict["split"]["validation"] = {"mode": validation_mode, "fraction": validation}
    return resolve_paths(parse_spec(spec_dict, source="command line"), Path.cwd())


def _file_columns(user_col: str, item_col: str, rating_col: str | None,
                  timestamp_col: str | None, sep: str | None, id_type: str) -> dict[str, Any]:
    """The data-file options (``--user-col`` ...) as ``dataset`` fields of a spec."""
    return {"user_col": user_col, "item_col": item_col, "rating_col": rating_col,
            "timestamp_col": timestamp_col, "sep": sep, "id_type": id_type}


def split_cmd(
    dataset: Annotated[str, typer.Argument(
        help="A registered dataset, a data file, or an experiment spec (.yaml).")],
    out: Annotated[Path, typer.Option(help="Directory to save the split into.")],
    method: Annotated[str | None, typer.Option(help=SPLIT_HELP)] = None,
    option: Annotated[list[str] | None, typer.Option("--option", "-o",
                                                     help="Dataset option key=value")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p",
                                                    help="Split parameter key=value")] = None,
    validation: Annotated[float | None, typer.Option(help="Carve this fraction of train "
                                                     "out as validation.")] = None,
    validation_mode: Annotated[str, typer.Option(
        help="follow (the test split's kind), per_user, global, leave_one_out, leave_latest, "
        "temporal")] = "follow",
    user_col: UserCol = "user",
    item_col: ItemCol = "item",
    rating_col: RatingCol = None,
    timestamp_col: TimeCol = None,
    sep: Sep = None,
    id_type: IdType = "int",
    seed: int = 0,
    as_json: JsonOpt = False,
) -> None:
    """Make (or load) a split, audit it for leakage, and save it with its fingerprint."""
    from recforge.data.audit import audit_split
    from recforge.data.split_io import save_split
    from recforge.experiments.runner import _load_data, prepare_split
    from recforge.experiments.spec import SpecError

    columns = _file_columns(user_col, item_col, rating_col, timestamp_col, sep, id_type)
    try:
        spec = source_spec(dataset, options=parse_kv(option, "--option"), method=method,
                           params=parse_kv(param, "--param"), validation=validation,
                           validation_mode=validation_mode, models=[{"model": "TopPopular"}],
                           file_columns=columns)
        data, reports = _load_data(spec)
        split = prepare_split(spec, data, seed)
        report = audit_split(split)
        save_split(split, out)
    except (SpecError, LookupError, ValueError, TypeError, OSError, RuntimeError) as exc:
        fail(str(exc))
    payload = {"out": str(out), "split": split.describe(), "audit": report.to_dict(),
               "filters": reports}
    if as_json:
        print_json(payload)
    else:
        Console().print_json(dumps(payload))


def evaluate_cmd(
    model: Annotated[str, typer.Argument(help="Registered model name, e.g. TopPopular.")],
    dataset: Annotated[str | None, typer.Option(
        help="A registered dataset (predefined split, or use --method), a data file (with "
        "--method), or an experiment spec (.yaml).")] = None,
    split_dir: Annotated[
        Path | None, typer.Option(help="A split saved by `recforge split`.")
    ] = None,
    method: Annotated[str | None, typer.Option(help=SPLIT_HELP)] = None,
    option: Annotated[list[str] | None, typer.Option("--option", "-o")] = None,
    split_param: Annotated[list[str] | None, typer.Option("--split-param")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p",
                                                    help="Model hyper-parameter key=value")] = None,
    cutoffs: Annotated[str, typer.Option(help="Comma-separated cut-offs.")] = "10",
    metrics: Annotated[str, typer.Option()] = "PRECISION,RECALL,NDCG,MAP,HR,MRR",
    protocol: Annotated[str, typer.Option(help="full or candidates")] = "full",
    user_col: UserCol = "user",
    item_col: ItemCol = "item",
    rating_col: RatingCol = None,
    timestamp_col: TimeCol = None,
    sep: Sep = None,
    id_type: IdType = "int",
    seed: int = 0,
    as_json: JsonOpt = False,
) -> None:
    """Fit one model on a split's train part and evaluate it on the test part."""
    from recforge.evaluation import evaluate_split
    from recforge.experiments.spec import SpecError
    from recforge.models import make_model

    try:
        cut = sorted({int(c) for c in cutoffs.split(",") if c.strip()})
    except ValueError:
        fail(f"--cutoffs must be comma-separated integers, got {cutoffs!r}")
    mets = [m.strip().upper() for m in metrics.split(",") if m.strip()]
    model_params = parse_kv(param, "--param")
    columns = _file_columns(user_col, item_col, rating_col, timestamp_col, sep, id_type)
    try:
        if split_dir is not None:
            from recforge.data.split_io import load_split

            split = load_split(split_dir)
        elif dataset is not None:
            from recforge.experiments.runner import _load_data, prepare_split

            spec = source_spec(dataset, options=parse_kv(option, "--option"), method=method,
                               params=parse_kv(split_param, "--split-param"), validation=None,
                               validation_mode="follow",
                               models=[{"model": model, "params": model_params}],
                               file_columns=columns)
            data, _ = _load_data(spec)
            split = prepare_split(spec, data, seed)
        else:
            fail("give --dataset or --split-dir")
        m = make_model(model, **model_params)
        with err.status(f"fitting {model}"):
            m.fit(split.train)
        with err.status("evaluating"):
            res = evaluate_split(m, split, cutoffs=cut, metrics=mets, protocol=protocol)
    except (SpecError, LookupError, ValueError, TypeError, OSError, RuntimeError) as exc:
        fail(str(exc))
    if as_json:
        print_json({"model": model, "summary": res.summary, "meta": res.meta})
        return
    t = Table("metric", "value")
    for k, v in res.summary.items():
        t.add_row(k, f"{v:.4f}")
    Console().print(t)


def _run_on_platform(spec: Any, spec_path: Path, out: Path, url: str, token: str | None,
                     queue: str, as_json: bool, workers: int = 1,
                     resources: dict[str, Any] | None = None) -> None:  # fmt: skip
    """``run --platform``: submit the experiment as a DAG, follow it, fetch its outputs."""
    try:
        from recforge.platform.client import PlatformClient, PlatformError
        from recforge.platform.pipelines import submit_experiment
    except ImportError as exc:
        fail(f"--platform needs the platform client (pip install 'recforge[platform]'): {exc}")
    if out.exists() and any(out.iterdir()):
        fail(f"--out {out} is not empty: the platform run's outputs need an empty folder")
    with PlatformClient(url, token) as client:
        try:
            submit_experiment(spec, client, out, queue=queue, workers=workers,
                              resources=resources,
                              log=lambda m: print(m, file=sys.stderr))  # fmt: skip
        except PlatformError as exc:
            fail(f"{spec_path}: the platform refused: {exc.detail}")
        except RuntimeError as exc:
            fail(f"{spec_path}: {exc}")
    if as_json:
        print_json(json.loads((out / "results.json").read_text()))
    else:
        echo(f"results of the platform run in {out} (results.json, report.md, report.html)")


def run_cmd(
    spec_path: Annotated[Path, typer.Argument(help="Experiment spec (YAML).")],
    out: Annotated[Path, typer.Option(help="Output directory.")] = Path("results/run"),
    max_trials: Annotated[int | None, typer.Option(
        help="Cap every search at this many trials (quick smoke runs).", min=1)] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Print the plan (data, filters, split, models, trials, work) "
        "and exit without running.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Discard what --out holds (another spec's run, or this one's) and "
        "start afresh. Without it the same spec resumes and another is refused.")] = False,
    keep_models: Annotated[bool, typer.Option(
        "--keep-models", help="Save the final (best) model of every entry and seed under "
        "--out/models/ (for `recforge recommend`); same as keep_models: true in the spec.")
    ] = False,
    platform: Annotated[str | None, typer.Option(
        "--platform", help="Run it on a recforge platform at this URL, as a DAG (one job per "
        "model entry, then the report); its outputs come back into --out.")] = None,
    token: Annotated[str | None, typer.Option(
        "--token", envvar="RECFORGE_TOKEN", help="Platform bearer token (with --platform).",
        show_default=False)] = None,
    queue: Annotated[str, typer.Option(help="Platform queue (with --platform).")] = "default",
    workers: Annotated[int, typer.Option(
        help="With --platform: each search runs as a gang of this many replicas sharing one "
        "optuna study (1 = the local run's trial sequence).", min=1)] = 1,
    cpu: Annotated[float, typer.Option(
        help="With --platform: cpu of each replica of the experiment's jobs.", min=0.01)] = 1.0,
    memory: Annotated[str, typer.Option(
        help="With --platform: memory of each replica of the experiment's jobs (e.g. 2Gi)."
        )] = "2Gi",
    as_json: JsonOpt = False,
) -> None:
    """Run an experiment spec and write results, trials, per-user values and a report.

    Every finished model run is written at once; re-running the same spec into the same
    --out resumes (finished models kept, a search continues from its stored trials).
    Ctrl-C stops after writing what is done.
    """
    from recforge.experiments.artifacts import OutDirError
    from recforge.experiments.outcome import SearchFailedError
    from recforge.experiments.plan import make_plan, render_plan
    from recforge.experiments.runner import RunInterrupted, run_experiment
    from recforge.experiments.spec import SpecError, cap_trials, load_spec

    try:
        spec = load_spec(spec_path)
        if max_trials is not None:
            spec = cap_trials(spec, max_trials)
        if keep_models:
            spec = spec.model_copy(update={"keep_models": True})
        plan = make_plan(spec)
    except (SpecError, LookupError) as exc:
        fail(str(exc))
    if dry_run:
        if as_json:
            print_json(plan.to_dict())
        else:
            echo(render_plan(plan))
        if plan.problems:
            fail(f"{spec_path}: " + "; ".join(plan.problems))
        return
    if plan.problems:
        fail(f"{spec_path}: " + "; ".join(plan.problems))
    if workers > 1 and platform is None:
        fail("--workers: only with --platform (a local search uses n_jobs in the spec)")
    if platform is not None:
        _run_on_platform(spec, spec_path, out, platform, token, queue, as_json, workers,
                         {"cpu": cpu, "memory": memory})
        return
    from recforge.experiments.progress import RichProgress, results_table

    progress = RichProgress(err)
    try:
        with sigterm_as_interrupt():
            outcome = run_experiment(spec, out, log=log, force=force, progress=progress)
    except RunInterrupted as exc:
        err.print(f"[yellow]{exc.message}[/]")
        raise typer.Exit(130) from None
    except SearchFailedError as exc:
        fail(f"{spec_path}: {exc}", code=1)
    except OutDirError as exc:
        fail(str(exc))
    except (LookupError, ValueError, OSError, RuntimeError) as exc:
        fail(f"{spec_path}: {exc}")
    if as_json:
        print_json(json.loads((out / "results.json").read_text()))
    else:
        # Piped: no terminal width to fit, so do not squeeze the columns into 80.
        wide = None if sys.stdout.isatty() else 1000
        Console(width=wide).print(results_table(outcome))
        ref = spec.reference
        if outcome.checks and ref is not None:
            from recforge.cli.checks import print_checks
            from recforge.experiments.reference import rule_text

            print_checks(Console(width=wide or 160), outcome.checks,
                         f"reference check ({ref.source or spec_path})",
                         rule_text(ref.mode, ref.tolerance, ref.confidence))
        for w in outcome.warnings:
            err.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)
        err.print(f"[green]done[/]: {out}/results.json, {out}/report.md, {out}/report.html",
                  highlight=False)
