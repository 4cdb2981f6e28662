"""The table of reference checks, printed by ``recforge reproduce`` and ``recforge run``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table

__all__ = ["print_checks"]


def _fmt(v: float | None, spec: str) -> str:
    return "" if v is None else format(v, spec)


def print_checks(console: Console, checks: Sequence[dict[str, Any]], title: str,
                 rule: str | None = None) -> None:
    """One row per cell: reference, ours (± spread over seeds), delta, relative delta, our
    interval, the two criteria and the verdict; the pass rule underneath."""
    datasets = sorted({str(c["dataset"]) for c in checks})
    one = len(datasets) == 1  # then the dataset goes into the title, not a column
    cols = ["model", "metric", "reference", "ours", "delta", "rel.", "95% interval",
            "in interval", "within tol.", "ok"]
    t = Table(*(cols if one else ["dataset", *cols]),
              title=f"{title}: {datasets[0]}" if one and datasets else title)
    for c in checks:
        spread = f" ±{c['spread']:.4f}" if c.get("spread") else ""
        mark = "yes" if c["ok"] else "NO"
        if c.get("kind") in ("neural", "stand-in"):  # reported; the pass is the baselines'
            mark = f"{mark} ({c['kind']})"
        iv = c.get("interval")
        inside = c.get("in_interval")
        t.add_row(
            *([] if one else [c["dataset"]]), c["model"], c["metric"], f"{c['paper']:.4f}",
            f"{c['ours']:.4f}{spread}", f"{c['delta']:+.4f}",
            _fmt(None if c.get("rel_delta") is None else 100 * c["rel_delta"], "+.1f") + "%",
            "" if not iv else f"{iv[0]:.4f}..{iv[1]:.4f}",
            "n/a" if inside is None else ("yes" if inside else "NO"),
            "yes" if c.get("within_tolerance", c["ok"]) else "NO",
            f"[green]{mark}[/]" if c["ok"] else f"[red]{mark}[/]",
        )
    console.print(t)
    n = [c for c in checks if c.get("kind", "baseline") == "baseline"]
    if n:
        console.print(
            f"{sum(c['ok'] for c in n)}/{len(n)} cells pass; "
            f"{sum(bool(c.get('within_tolerance', c['ok'])) for c in n)} within tolerance, "
            f"{sum(c.get('in_interval') is True for c in n)} with the reference inside our "
            "interval" + (f".\n{rule}" if rule else "."))
