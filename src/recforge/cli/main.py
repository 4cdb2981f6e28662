"""The ``recforge`` command line: data, split, evaluate, run, recommend, export, reproduce,
platform. Each group lives in its own module under ``recforge.cli``; this one mounts them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from recforge._json import dumps, write_json
from recforge.cli import experiments, results
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

app = typer.Typer(
    help="recforge: strong recommender baselines, paper-exact evaluation, and a job platform.",
    no_args_is_help=True,
    add_completion=False,
)
data_app = typer.Typer(help="Registered datasets: list, fetch (verify checksums), info.",
                       no_args_is_help=True)
app.add_typer(data_app, name="data")

# Shared helpers live in cli/_common.py; the old private names stay for code that used them.
_fail = fail
_print_json = print_json
_echo = echo
_log = log
_parse_kv = parse_kv


def _version(value: bool) -> None:
    if value:
        from recforge import __version__

        echo(f"recforge {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option(
        "--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """recforge: strong recommender baselines, paper-exact evaluation, and a job platform."""


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


# ------------------------------------------------------------------------------ lab commands
app.command("split")(experiments.split_cmd)
app.command("evaluate")(experiments.evaluate_cmd)
app.command("run")(experiments.run_cmd)
app.command("recommend")(results.recommend_cmd)
app.command("export")(results.export_cmd)


# ------------------------------------------------------------------------------ reproduce
@app.command("reproduce")
def reproduce_cmd(
    name: Annotated[str, typer.Argument(help="toppop-checks, table2, table3, table4, table5, "
                                        "table4-p1, table5-p1, table6, table7, table8, "
                                        "multvae-ml1m, neumf-ml100k, sampled-metrics")],
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
    stand_in: Annotated[bool | None, typer.Option(
        "--stand-in/--no-stand-in", show_default=False,
        help="Tables 4/5: run the rows that read item content (ItemKNN CBF/CFCBF, CVAE, CDL) "
        "on the CiteULike tag matrix instead of the bag of words, labelled as tag-content "
        "runs. Default: when the neural row needs content that is not at hand.")] = None,
    budget: Annotated[int | None, typer.Option(
        min=1, help="Search trials per model (default: the --protocol's; recsys2019: 35, "
        "tois2021: 50).")] = None,
    protocol: Annotated[str, typer.Option(
        "--protocol", help="Tuning protocol preset: recsys2019 (the RecSys 2019 paper's) or "
        "tois2021 (the journal version's: 50 trials / 15 random starts, wider ranges, refit "
        "on train + validation, its added baselines). See docs/protocols.md.")] = "recsys2019",
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
    models: Annotated[str | None, typer.Option(
        "--models", help="Comma-separated rows to run (labels such as 'Mult-VAE' or model "
        "names); default: all of the table's rows.")] = None,
    negatives: Annotated[int, typer.Option(
        min=1, help="sampled-metrics: sampled negatives per user.")] = 100,
    neural_param: Annotated[list[str] | None, typer.Option(
        "--neural-param", help="Change one setting of a neural row, LABEL.PARAM=VALUE "
        "(VALUE read as JSON, else as a string; repeatable), e.g. "
        "SpectralCF.propagation=sparse. Printed and stored in the results.")] = None,
    all_similarities: Annotated[bool, typer.Option(
        "--all-similarities", help="Search mode: each KNN row searches all five of the "
        "paper's similarities (--budget trials each) and keeps the best on validation, as "
        "the paper did (default: cosine only).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Reproduce a table of the RecSys 2019 paper and print ours next to the paper's.

    ``sampled-metrics``: full ranking vs sampled vs corrected-sampled metrics of Table 7's
    baselines on ML-1M 5-star, leave-one-out (--seeds = sampling seeds, default 0..4).
    """
    from recforge.data.dataset_spec import DatasetUnavailableError
    from recforge.experiments.paper import toppop_checks
    from recforge.experiments.paper.reproduce import TableDataUnavailable, reproduce_command
    from recforge.experiments.paper.setups import SETUPS, TABLE_VARIANTS, resolve

    if name == "sampled-metrics":
        from recforge.experiments.paper.sampled_study import DEFAULT_SEEDS, sampled_metrics_study

        try:
            sampling_seeds = [int(s) for s in seeds.split(",") if s.strip()] if seeds else None
        except ValueError:
            _fail(f"--seeds must be comma-separated integers, got {seeds!r}")
        try:
            study = sampled_metrics_study(n_negatives=negatives, out_dir=out, log=_log,
                                          seeds=sampling_seeds or DEFAULT_SEEDS)
        except (LookupError, ValueError, OSError) as exc:
            _fail(str(exc))
        if as_json:
            _print_json(study)
        else:
            _echo(study["markdown"])
        return
    if name == "toppop-checks":
        try:
            checks = [c.to_dict() for c in toppop_checks(log=_log)]
        except DatasetUnavailableError as exc:
            _fail(f"{exc}. On a machine with internet access (RECFORGE_DATA_MIRROR unset) run "
                  "`recforge data fetch mcrec-ml-100k spectralcf-ml-1m`, then rerun.")
        payload: dict[str, Any] = {"checks": checks, "all_ok": all(c["ok"] for c in checks)}
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            write_json(out / "results.json", payload)
    elif name in SETUPS or name in TABLE_VARIANTS:
        if split is not None and dataset is not None:
            _fail("give --split or --dataset, not both")
        table = name
        from recforge.tuning.protocols import PRESET_NAMES

        if protocol not in PRESET_NAMES:
            _fail(f"--protocol {protocol!r} is not a tuning protocol preset; known: "
                  f"{', '.join(PRESET_NAMES)}")
        try:
            name = resolve(name, split if split is not None else dataset)
        except (KeyError, ValueError) as exc:
            _fail(str(exc).strip('"'))
        try:
            seed_list = [int(s) for s in seeds.split(",") if s.strip()] if seeds else None
        except ValueError:
            _fail(f"--seeds must be comma-separated integers, got {seeds!r}")
        from recforge.experiments.runner import RunInterrupted

        changes = _neural_params(neural_param or [])
        try:
            with sigterm_as_interrupt():
                payload = reproduce_command(
                    table, split if split is not None else dataset, fixed=fixed,
                    budget=budget, seeds=seed_list, out_dir=out,
                    correct_genres=correct_genres, n_jobs=jobs, log=_log,
                    paper_ties=fixed if paper_ties is None else paper_ties,
                    with_content=content, neural=neural, max_epochs=max_epochs,
                    stand_in=stand_in, neural_params=changes or None,
                    all_similarities=all_similarities, preset=protocol,
                    models=[m.strip() for m in models.split(",") if m.strip()] if models
                    else None,
                )
        except RunInterrupted as exc:  # with --out the finished model runs are on disk
            err.print(f"[yellow]{exc.message}[/]")
            raise typer.Exit(130) from None
        except (TableDataUnavailable, ValueError) as exc:  # refused before any work
            _fail(str(exc))
        checks = payload["checks"]
        for note in payload.get("notes", []):
            err.print(f"[yellow]note:[/] {note}")
    else:
        _fail(f"unknown reproduction {name!r}; known: toppop-checks, sampled-metrics, "
              f"{', '.join(SETUPS)}")
    if as_json:
        _print_json(payload)
    else:
        _print_reproduction(name, payload)
    if not payload["all_ok"]:
        raise typer.Exit(1)


def _neural_params(items: list[str]) -> dict[str, dict[str, Any]]:
    """``--neural-param LABEL.PARAM=VALUE`` options as {label: {param: value}}."""
    for item in items:
        label, dot, param = item.partition("=")[0].rpartition(".")
        if "=" not in item or not (dot and label and param):
            _fail(f"--neural-param {item!r}: expected LABEL.PARAM=VALUE, "
                  "e.g. SpectralCF.propagation=sparse")
    out: dict[str, dict[str, Any]] = {}
    for key, value in parse_kv(items, "--neural-param").items():
        label, _, param = key.rpartition(".")
        out.setdefault(label, {})[param] = value
    return out


def _print_reproduction(name: str, payload: dict[str, Any]) -> None:
    """The paper-vs-ours table (neural rows marked), our rows without paper numbers, and the
    per-table conclusion check."""
    console = Console(width=max(Console().width, 120))
    checks = payload["checks"]
    if checks:
        from recforge.cli.checks import print_checks

        print_checks(console, checks, f"recforge reproduce {name}", payload.get("rule"))
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
