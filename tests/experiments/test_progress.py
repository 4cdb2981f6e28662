"""Progress people can follow: one log line per trial, model i/n, a live display with ETA and
the best score on a terminal (none when piped), a final results table, unwrapped piped logs,
and `recforge --version`."""

from __future__ import annotations

import io
from pathlib import Path

import yaml
from lab_helpers import spec_dict as _spec
from lab_helpers import write_csv as _write_csv
from rich.console import Console
from typer.testing import CliRunner

import recforge
from recforge.cli.main import app
from recforge.experiments.progress import RichProgress, RunProgress
from recforge.experiments.runner import run_experiment
from recforge.experiments.spec import parse_spec


def test_cli_run_logs_every_trial_and_prints_the_results_table(tmp_path: Path) -> None:
    spec = _spec(_write_csv(tmp_path / "data.csv"), seeds=[0])
    spec["models"] = [{"model": "TopPopular"},
                      {"model": "ItemKNNCF", "label": "ItemKNN tuned",
                       "search": {"n_trials": 4, "n_startup_trials": 2}}]
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    lines = res.stderr.splitlines()
    assert "model 1/2: TopPopular (seed 0)" in lines
    assert "model 2/2: ItemKNN tuned (seed 0)" in lines
    trial_lines = [x for x in lines if x.startswith("    ItemKNN tuned trial ")]
    # one numbering: the trial's number (from 0, as in trials/*.json), then finished/total
    assert [x.split(":")[0].split()[-2:] for x in trial_lines] == [
        ["#0", "(1/4)"], ["#1", "(2/4)"], ["#2", "(3/4)"], ["#3", "(4/4)"]]
    assert all("fit" in x and ("new best" in x or "best 0." in x) for x in trial_lines)
    # the final table on stdout: a header with the columns and one row per model
    out = res.stdout
    assert "test results, mean of 1 seed(s)" in out
    assert "RECALL@5" in out and "ItemKNN tuned" in out and "TopPopular" in out
    # piped logs are not wrapped: the long done line stays on one line
    assert any(x.startswith("done: ") and x.endswith("report.html") for x in lines)


def test_runner_reports_events_in_order(tmp_path: Path) -> None:
    events: list[tuple[object, ...]] = []

    class Recorder(RunProgress):
        def run_started(self, n_model_runs: int) -> None:
            events.append(("start", n_model_runs))

        def model_started(self, done: int, total: int, label: str, seed: int,
                          n_trials: int | None) -> None:
            events.append(("model", done, total, label, seed, n_trials))

        def trial_finished(self, label: str, done: int, total: int, score: float | None,
                           best: float | None) -> None:
            events.append(("trial", label, done, total, best is not None))

        def model_finished(self, done: int, total: int, run: object, kept: bool) -> None:
            events.append(("done", done, kept))

        def run_finished(self, outcome: object) -> None:
            events.append(("end", outcome is not None))

    spec = _spec(_write_csv(tmp_path / "data.csv"), seeds=[0, 1])
    spec["models"] = [{"model": "TopPopular"},
                      {"model": "P3alpha", "search": {"n_trials": 2, "n_startup_trials": 2}}]
    run_experiment(parse_spec(spec), tmp_path / "out", log=lambda _m: None,
                   progress=Recorder())
    assert events == [
        ("start", 4),
        ("model", 0, 4, "TopPopular", 0, None), ("done", 1, False),
        ("model", 1, 4, "P3alpha", 0, 2), ("trial", "P3alpha", 1, 2, True),
        ("trial", "P3alpha", 2, 2, True), ("done", 2, False),
        ("model", 2, 4, "TopPopular", 1, None), ("done", 3, False),
        ("model", 3, 4, "P3alpha", 1, 2), ("trial", "P3alpha", 1, 2, True),
        ("trial", "P3alpha", 2, 2, True), ("done", 4, False),
        ("end", True),
    ]
    # resumed: every model run comes back as kept
    events.clear()
    run_experiment(parse_spec(spec), tmp_path / "out", log=lambda _m: None,
                   progress=Recorder())
    assert [e for e in events if e[0] == "done"] == [("done", i, True) for i in (1, 2, 3, 4)]


def _drive(console: Console) -> None:
    p = RichProgress(console)
    p.run_started(2)
    p.model_started(0, 2, "EASE", 0, 3)
    p.trial_finished("EASE", 1, 3, 0.25, 0.25)
    p.trial_finished("EASE", 2, 3, 0.5, 0.5)
    p.progress.refresh()
    p.model_finished(1, 2, None, kept=False)  # type: ignore[arg-type]
    p.run_finished(None)


def test_live_display_on_a_terminal_shows_counts_eta_and_best() -> None:
    buf = io.StringIO()
    _drive(Console(file=buf, force_terminal=True, width=160, color_system=None))
    text = buf.getvalue()
    assert "model 1/2 EASE (seed 0)" in text
    assert "trials of EASE" in text and "2/3" in text
    assert "eta" in text and "best 0.5000" in text


def test_no_live_display_when_piped() -> None:
    buf = io.StringIO()
    _drive(Console(file=buf, force_terminal=False, width=160))
    assert buf.getvalue() == ""


def test_version() -> None:
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"recforge {recforge.__version__}"
    import importlib.metadata

    assert importlib.metadata.version("recforge") == recforge.__version__
