"""Progress of a run, for people: events the runner emits and a live terminal display.

:class:`RunProgress` is what the runner calls (every method optional to override); the
default does nothing. :class:`RichProgress` shows model i/n, trial j/m, elapsed time, the ETA
and the best validation score so far on a terminal, and nothing (the log lines are enough) when
the output is piped.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

    from recforge.experiments.outcome import ExperimentOutcome, ModelRun

__all__ = ["RichProgress", "RunProgress", "results_table"]


class RunProgress:
    """Run events; subclass and override what you need (the base ignores them)."""

    def run_started(self, n_model_runs: int) -> None:
        """``n_model_runs`` = seeds x models, kept ones included."""

    def model_started(self, done: int, total: int, label: str, seed: int,
                      n_trials: int | None) -> None:
        """Model run ``done + 1`` of ``total`` starts (``n_trials`` None: no search)."""

    def trial_finished(self, label: str, done: int, total: int, score: float | None,
                       best: float | None) -> None:
        """Trial ``done`` of ``total`` of ``label``'s search ended (``score`` None: failed)."""

    def model_finished(self, done: int, total: int, run: ModelRun, kept: bool) -> None:
        """Model run ``done`` of ``total`` is finished (``kept``: from an earlier run)."""

    def run_finished(self, outcome: ExperimentOutcome | None) -> None:
        """The run ended (``outcome`` None: it stopped early)."""


class RichProgress(RunProgress):
    """A live display on ``console`` (stderr): models and trials bars with elapsed and ETA."""

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
            TextColumn("{task.fields[best]}"),
            console=console, disable=not console.is_terminal, transient=False,
        )
        self.models: Any = None
        self.trials: Any = None
        self.started = time.monotonic()

    def run_started(self, n_model_runs: int) -> None:
        self.progress.start()
        self.models = self.progress.add_task("models", total=n_model_runs, best="")

    def model_started(self, done: int, total: int, label: str, seed: int,
                      n_trials: int | None) -> None:
        self.progress.update(self.models, description=f"model {done + 1}/{total} {label} "
                             f"(seed {seed})")
        if self.trials is not None:
            self.progress.remove_task(self.trials)
            self.trials = None
        if n_trials is not None:
            self.trials = self.progress.add_task(f"  trials of {label}", total=n_trials,
                                                 best="")

    def trial_finished(self, label: str, done: int, total: int, score: float | None,
                       best: float | None) -> None:
        if self.trials is not None:
            shown = "" if best is None else f"best {best:.4f}"
            self.progress.update(self.trials, completed=done, total=total, best=shown)

    def model_finished(self, done: int, total: int, run: ModelRun, kept: bool) -> None:
        self.progress.update(self.models, completed=done)

    def run_finished(self, outcome: ExperimentOutcome | None) -> None:
        if self.trials is not None:
            self.progress.remove_task(self.trials)
            self.trials = None
        self.progress.stop()


def results_table(outcome: ExperimentOutcome, max_columns: int = 8) -> Any:
    """A rich table of the mean results (best of each column in bold, +- the seed spread)."""
    from rich.table import Table

    rows = outcome.rows
    columns = list(next(iter(rows.values()))) if rows else []
    shown = [c for c in columns if c.split("@")[0] == outcome.spec.optimize.metric]
    shown += [c for c in columns if c not in shown]
    shown = shown[:max_columns]
    table = Table(title=f"{outcome.spec.name}: test results, mean of {len(outcome.spec.seeds)} "
                  f"seed(s)" + (f" (first {max_columns} of {len(columns)} columns)"
                                if len(columns) > max_columns else ""))
    table.add_column("model")
    for c in shown:
        table.add_column(c, justify="right")
    best = {c: max((r[c] for r in rows.values() if r[c] == r[c]), default=None) for c in shown}
    for label, row in rows.items():
        cells = []
        for c in shown:
            text = f"{row[c]:.4f}"
            spread = outcome.spread.get(label, {}).get(c)
            if spread:
                text += f" ±{spread:.4f}"
            cells.append(f"[bold]{text}[/]" if best[c] is not None and row[c] == best[c]
                         else text)
        table.add_row(label, *cells)
    return table
