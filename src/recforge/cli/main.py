"""The ``recforge`` command line: data, split, evaluate, run, reproduce, platform."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from recforge._json import dumps, write_json

app = typer.Typer(
    help="recforge: strong recommender baselines, paper-exact evaluation, and a job platform.",
    no_args_is_help=True,
    add_completion=False,
)
data_app = typer.Typer(help="Registered datasets: list, fetch (verify checksums), info.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

err = Console(stderr=True)
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]


def _fail(msg: str, code: int = 2) -> None:
    err.print(f"[bold red]error:[/] {msg}")
    raise typer.Exit(code)


def _print_json(obj: Any) -> None:
    sys.stdout.write(dumps(obj) + "\n")


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM (a scheduler cancelling the job) stops a run as cleanly as Ctrl-C."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. a test runner's worker): leave it be
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _echo(text: str) -> None:
    """Plain text on stdout at full width (no wrapping when piped)."""
    sys.stdout.write(text + "\n")


def _log(msg: str) -> None:
    err.print(f"[dim]{msg}[/]")


# ------------------------------------------------------------------------------ data
@data_app.command("list")
def data_list(as_json: JsonOpt = False) -> None:
    """List registered datasets: cached, in the mirror, downloadable or unobtainable, and why."""
    from recforge.data.registry import availability, list_datasets

    specs = list_datasets()
    status = {s.name: availability(s.name) for s in specs}
    if as_json:
        _print_json([
            {**s.model_dump(mode="json", exclude={"loader", "derivers"}),
             "availability": {"status": status[s.name][0], "why": status[s.name][1]}}
            for s in specs
        ])
        return
    colour = {"cached": "green", "in mirror": "green", "downloadable": "cyan",
              "partly in mirror": "yellow", "not in mirror": "yellow", "unobtainable": "red"}
    t = Table("name", "status", "tables", "files", "description / why")
    for s in specs:
        st, why = status[s.name]
        t.add_row(s.name, f"[{colour.get(st, 'white')}]{st}[/]",
                  ", ".join(map(str, s.paper_tables)) or "-", str(len(s.files)),
                  f"{s.description}\n[dim]{why}[/]")
    Console(width=max(Console().width, 120)).print(t)


@data_app.command("fetch")
def data_fetch(
    names: Annotated[list[str], typer.Argument(help="Registered dataset name(s).")],
    as_json: JsonOpt = False,
) -> None:
    """Download (or copy from RECFORGE_DATA_MIRROR) and verify datasets' files.

    Each file is checked against the identifiers its source publishes (sha256, git blob id,
    md5 of its archive); a file that does not match is refused and nothing is left behind.
    """
    from recforge.data.download import verified_record
    from recforge.data.registry import fetch

    done: dict[str, dict[str, str]] = {}
    failed: dict[str, str] = {}
    for name in names:
        try:
            paths = fetch(name)
        except (LookupError, ValueError, OSError, RuntimeError) as exc:
            failed[name] = str(exc)
            err.print(f"[bold red]error:[/] {exc}")
            continue
        assert isinstance(paths, dict)
        done[name] = {k: str(v) for k, v in paths.items()}
        if not as_json:
            for k, v in paths.items():
                rec = verified_record(v) or {}
                err.print(f"[green]ok[/] {name}/{k} -> {v} "
                          f"[dim](verified: {rec.get('verified_by', '?')})[/]")
    if as_json:
        if len(names) == 1 and not failed:
            _print_json({"dataset": names[0], "files": done[names[0]]})
        else:
            _print_json({"datasets": done, "failed": failed})
    if failed:
        raise typer.Exit(2)


@data_app.command("info")
def data_info(name: str, as_json: JsonOpt = False) -> None:
    """Files, checksums and counts of a dataset."""
    from recforge.data.registry import dataset_info

    try:
        info = dataset_info(name)
    except (LookupError, ValueError, OSError, RuntimeError) as exc:
        _fail(str(exc))
    if as_json:
        _print_json(info)
    else:
        Console().print_json(dumps(info))


# ------------------------------------------------------------------------------ split
def _parse_kv(items: list[str] | None, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            _fail(f"{what} {item!r} must look like key=value")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


@app.command("split")
def split_cmd(
    dataset: Annotated[str, typer.Argument(help="Registered dataset name.")],
    out: Annotated[Path, typer.Option(help="Directory to save the split into.")],
    method: Annotated[str, typer.Option(help="predefined, per_user_holdout, global_holdout, "
                                        "leave_one_out, temporal, held_out_users, "
                                        "mult_vae")] = "predefined",
    option: Annotated[list[str] | None, typer.Option("--option", "-o",
                                                     help="Dataset option key=value")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p",
                                                    help="Split parameter key=value")] = None,
    validation: Annotated[float | None, typer.Option(help="Carve this fraction of train "
                                                     "out as validation.")] = None,
    validation_mode: Annotated[str, typer.Option()] = "per_user",
    seed: int = 0,
    as_json: JsonOpt = False,
) -> None:
    """Make (or load) a split, audit it for leakage, and save it with its fingerprint."""
    from recforge.data.audit import audit_split
    from recforge.data.split_io import save_split
    from recforge.experiments.runner import prepare_split
    from recforge.experiments.spec import SpecError, parse_spec

    spec_dict: dict[str, Any] = {
        "name": "split",
        "dataset": {"name": dataset, "options": _parse_kv(option, "--option")},
        "split": {"method": method, "params": _parse_kv(param, "--param")},
        "models": [{"model": "TopPopular"}],
    }
    if validation is not None:
        spec_dict["split"]["validation"] = {"mode": validation_mode, "fraction": validation}
    try:
        spec = parse_spec(spec_dict, source="command line")
        from recforge.experiments.runner import _load_data

        data, reports = _load_data(spec)
        split = prepare_split(spec, data, seed)
        report = audit_split(split)
        save_split(split, out)
    except (SpecError, LookupError, ValueError, TypeError, OSError, RuntimeError) as exc:
        _fail(str(exc))
    payload = {"out": str(out), "split": split.describe(), "audit": report.to_dict(),
               "filters": reports}
    if as_json:
        _print_json(payload)
    else:
        Console().print_json(dumps(payload))


# ------------------------------------------------------------------------------ evaluate
@app.command("evaluate")
def evaluate_cmd(
    model: Annotated[str, typer.Argument(help="Registered model name, e.g. TopPopular.")],
    dataset: Annotated[str | None, typer.Option(help="Registered dataset (predefined split, "
                                                "or use --method).")] = None,
    split_dir: Annotated[
        Path | None, typer.Option(help="A split saved by `recforge split`.")
    ] = None,
    method: str = "predefined",
    option: Annotated[list[str] | None, typer.Option("--option", "-o")] = None,
    split_param: Annotated[list[str] | None, typer.Option("--split-param")] = None,
    param: Annotated[list[str] | None, typer.Option("--param", "-p",
                                                    help="Model hyper-parameter key=value")] = None,
    cutoffs: Annotated[str, typer.Option(help="Comma-separated cut-offs.")] = "10",
    metrics: Annotated[str, typer.Option()] = "PRECISION,RECALL,NDCG,MAP,HR,MRR",
    protocol: Annotated[str, typer.Option(help="full or candidates")] = "full",
    seed: int = 0,
    as_json: JsonOpt = False,
) -> None:
    """Fit one model on a split's train part and evaluate it on the test part."""
    from recforge.evaluation import evaluate_split
    from recforge.models import make_model

    try:
        cut = sorted({int(c) for c in cutoffs.split(",") if c.strip()})
    except ValueError:
        _fail(f"--cutoffs must be comma-separated integers, got {cutoffs!r}")
    mets = [m.strip().upper() for m in metrics.split(",") if m.strip()]
    try:
        if split_dir is not None:
            from recforge.data.split_io import load_split

            split = load_split(split_dir)
        elif dataset is not None:
            from recforge.experiments.runner import _load_data, prepare_split
            from recforge.experiments.spec import parse_spec

            spec = parse_spec({
                "name": "evaluate",
                "dataset": {"name": dataset, "options": _parse_kv(option, "--option")},
                "split": {"method": method, "params": _parse_kv(split_param, "--split-param")},
                "models": [{"model": model, "params": _parse_kv(param, "--param")}],
            }, source="command line")
            data, _ = _load_data(spec)
            split = prepare_split(spec, data, seed)
        else:
            _fail("give --dataset or --split-dir")
        m = make_model(model, **_parse_kv(param, "--param"))
        with err.status(f"fitting {model}"):
            m.fit(split.train)
        with err.status("evaluating"):
            res = evaluate_split(m, split, cutoffs=cut, metrics=mets, protocol=protocol)
    except (LookupError, ValueError, TypeError, OSError, RuntimeError) as exc:
        _fail(str(exc))
    if as_json:
        _print_json({"model": model, "summary": res.summary, "meta": res.meta})
        return
    t = Table("metric", "value")
    for k, v in res.summary.items():
        t.add_row(k, f"{v:.4f}")
    Console().print(t)


# ------------------------------------------------------------------------------ run
@app.command("run")
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
        plan = make_plan(spec)
    except (SpecError, LookupError) as exc:
        _fail(str(exc))
    if dry_run:
        if as_json:
            _print_json(plan.to_dict())
        else:
            _echo(render_plan(plan))
        if plan.problems:
            _fail(f"{spec_path}: " + "; ".join(plan.problems))
        return
    if plan.problems:
        _fail(f"{spec_path}: " + "; ".join(plan.problems))
    try:
        with _sigterm_as_interrupt():
            run_experiment(spec, out, log=_log, force=force)
    except RunInterrupted as exc:
        err.print(f"[yellow]{exc.message}[/]")
        raise typer.Exit(130) from None
    except SearchFailedError as exc:
        _fail(f"{spec_path}: {exc}", code=1)
    except OutDirError as exc:
        _fail(str(exc))
    except (LookupError, ValueError, OSError, RuntimeError) as exc:
        _fail(f"{spec_path}: {exc}")
    if as_json:
        _print_json(json.loads((out / "results.json").read_text()))
    else:
        err.print(f"[green]done[/]: {out}/results.json, {out}/report.md, {out}/report.html")


# ------------------------------------------------------------------------------ reproduce
@app.command("reproduce")
def reproduce_cmd(
    name: Annotated[str, typer.Argument(help="toppop-checks, table2, table3, table4, table5, "
                                        "table4-p1, table5-p1, table6, table7, table8, "
                                        "multvae-ml1m")],
    split: Annotated[str | None, typer.Option(help="Table 7: 'ours' (the paper's random "
                                              "re-split, default) or 'original' (SpectralCF's "
                                              "released split).")] = None,
    dataset: Annotated[str | None, typer.Option(help="Tables with several datasets: which "
                                                "one (table2: citeulike-a, pinterest; table6: "
                                                "ml-1m, pinterest). Default: the first, plus "
                                                "the others whose data is at hand.")] = None,
    content: Annotated[bool | None, typer.Option(
        "--content/--no-content", show_default=False,
        help="Tables 4/5: also run ItemKNN CBF/CFCBF on the title+abstract bag of words "
        "(mult_nor.mat). Default: when it is at hand.")] = None,
    budget: Annotated[int, typer.Option(help="Search trials per model (paper: 35).")] = 35,
    fixed: Annotated[bool, typer.Option("--fixed", help="Use the paper's reported best "
                                        "hyper-parameters instead of searching.")] = False,
    seeds: Annotated[str | None, typer.Option(help="Comma-separated seeds (default: the "
                                              "table's; 0,1,2,3,4 for table7 --split "
                                              "original, else 0).")] = None,
    out: Annotated[Path | None, typer.Option(help="Write the full run here.")] = None,
    correct_genres: Annotated[bool, typer.Option(help="Table 3: use the correct 19-genre ICM "
                                                 "instead of the paper's buggy one.")] = False,
    jobs: Annotated[int, typer.Option(help="Parallel tuning trials.")] = 1,
    paper_ties: Annotated[
        bool | None,
        typer.Option(
            "--paper-ties/--no-paper-ties",
            help="Order tied scores and neighbours as the paper's numpy did "
            "(argpartition/quicksort) instead of lower index first. Default: on with --fixed "
            "(reproducing the paper's numbers), off for our own search.",
            show_default=False,
        ),
    ] = None,
    neural: Annotated[bool, typer.Option(
        "--neural/--no-neural", help="Run the table's neural row (paper settings, early "
        "stopping on the table's validation metric).")] = True,
    max_epochs: Annotated[int | None, typer.Option(
        min=1, help="Cap the neural rows' epochs for a quick look (printed and stored in the "
        "results; not the paper's protocol).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Reproduce a table of the RecSys 2019 paper and print ours next to the paper's."""
    from recforge.experiments.paper import toppop_checks
    from recforge.experiments.paper.reproduce import TableDataUnavailable, reproduce_command
    from recforge.experiments.paper.setups import SETUPS, TABLE_VARIANTS, resolve

    if name == "toppop-checks":
        checks = [c.to_dict() for c in toppop_checks(log=_log)]
        payload: dict[str, Any] = {"checks": checks, "all_ok": all(c["ok"] for c in checks)}
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / "results.json", payload)
    elif name in SETUPS or name in TABLE_VARIANTS:
        if split is not None and dataset is not None:
            _fail("give --split or --dataset, not both")
        table = name
        try:
            name = resolve(name, split if split is not None else dataset)
        except (KeyError, ValueError) as exc:
            _fail(str(exc).strip('"'))
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()] if seeds else None
        except ValueError:
            _fail(f"--seeds must be comma-separated integers, got {seeds!r}")
        try:
            payload = reproduce_command(
                table, split if split is not None else dataset, fixed=fixed, budget=budget,
                seeds=seed_list, out_dir=out, correct_genres=correct_genres, n_jobs=jobs,
                log=_log, paper_ties=fixed if paper_ties is None else paper_ties,
                with_content=content, neural=neural, max_epochs=max_epochs,
            )
        except (TableDataUnavailable, ValueError) as exc:  # refused before any work
            _fail(str(exc))
        checks = payload["checks"]
        for note in payload.get("notes", []):
            err.print(f"[yellow]note:[/] {note}")
    else:
        _fail(f"unknown reproduction {name!r}; known: toppop-checks, {', '.join(SETUPS)}")
    if as_json:
        _print_json(payload)
    else:
        _print_reproduction(name, payload)
    if not payload["all_ok"]:
        raise typer.Exit(1)


def _print_reproduction(name: str, payload: dict[str, Any]) -> None:
    """The paper-vs-ours table (neural rows marked), our rows without paper numbers, and the
    per-table conclusion check."""
    console = Console(width=max(Console().width, 120))
    checks = payload["checks"]
    if checks:
        t = Table("dataset", "model", "metric", "paper", "ours", "delta", "ok",
                  title=f"recforge reproduce {name}")
        for c in checks:
            spread = f" ±{c['spread']:.4f}" if c.get("spread") else ""
            mark = "yes" if c["ok"] else "NO"
            if c.get("kind") == "neural":  # reported, but the table's pass is the baselines'
                mark = f"{mark} (neural)"
            t.add_row(c["dataset"], c["model"], c["metric"], f"{c['paper']:.4f}",
                      f"{c['ours']:.4f}{spread}", f"{c['delta']:+.4f}",
                      f"[green]{mark}[/]" if c["ok"] else f"[red]{mark}[/]")
        console.print(t)
    elif payload.get("rows"):
        rows = payload["rows"]
        metrics = list(next(iter(rows.values())))
        t = Table("model", *metrics, title=f"recforge reproduce {name} (no paper numbers)")
        for label, row in rows.items():
            t.add_row(label, *(f"{row[m]:.4f}" for m in metrics))
        console.print(t)
    for key, block in (payload.get("blocks") or {name: payload}).items():
        for label, verdict in (block.get("conclusion") or {}).items():
            console.print(f"conclusion {key} ({label}): {verdict['summary']['text']}")


# ------------------------------------------------------------------------------ platform
def _add_platform() -> None:
    try:
        from recforge.platform.cli import app as platform_app
    except ImportError as exc:  # the platform CLI needs only typer; its server needs extras
        missing = str(exc)

        @app.command("platform", help="Job platform (needs recforge[platform]).")
        def _platform_missing() -> None:
            _fail(f"the platform CLI could not be loaded ({missing}); "
                  "install recforge[platform]")

        return
    app.add_typer(platform_app, name="platform")


_add_platform()


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
