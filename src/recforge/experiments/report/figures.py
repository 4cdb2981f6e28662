"""The report's charts, drawn with matplotlib and inlined as SVG text (no files, no network).

Every function returns one ``<svg>`` element as a string. Figures are built with
``matplotlib.figure.Figure`` (no pyplot global state) and written with text kept as text
(``svg.fonttype: none``: selectable, small) and a fixed ``svg.hashsalt`` and no date, so the
same results give the same bytes. Each model keeps one colour across all charts.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "coverage_chart",
    "cutoff_curves",
    "model_colours",
    "per_user_distributions",
    "popularity_bias",
    "tuning_convergence",
]

_RC: dict[str, Any] = {
    "svg.fonttype": "none",
    "svg.hashsalt": "recforge-report",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
}
def _style() -> Any:
    """matplotlib's rc_context with the report's settings (typed loosely: rc keys are Literals)."""
    import matplotlib

    rc: Any = _RC
    return matplotlib.rc_context(rc)


_WIDTH = 7.6  # inches at 96 px: about 730 px, two columns of text on a laptop screen


def model_colours(labels: Sequence[str]) -> dict[str, str]:
    """One colour per model (tab10, then tab20), in table order."""
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(labels) <= 10 else "tab20"]
    return {lab: _hex(cmap(i % cmap.N)) for i, lab in enumerate(labels)}


def _hex(rgba: tuple[float, ...]) -> str:
    return "#" + "".join(f"{round(255 * v):02x}" for v in rgba[:3])


def _svg(fig: Any, title: str) -> str:

    buf = io.StringIO()
    with _style():
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buf.getvalue()
    start = text.index("<svg")
    svg = text[start:]
    # An accessible name, and width scaling with the page.
    head_end = svg.index(">")
    head = svg[:head_end]
    head = head.replace("<svg ", f'<svg role="img" aria-label="{_attr(title)}" '
                        'style="max-width:100%;height:auto" ', 1)
    return head + svg[head_end:]


def _attr(s: str) -> str:
    import html

    return html.escape(s, quote=True)


def _figure(n_axes: int, height: float, ncols: int | None = None) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    with _style():
        ncols = ncols or min(n_axes, 3)
        nrows = -(-n_axes // ncols)
        fig = Figure(figsize=(_WIDTH, height * nrows), layout="constrained")
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel().tolist()
    for ax in axes[n_axes:]:
        ax.set_visible(False)
    return fig, axes[:n_axes]


def cutoff_curves(
    rows: Mapping[str, Mapping[str, float]], metrics: Sequence[str], cutoffs: Sequence[int],
    colours: Mapping[str, str],
) -> str:
    """Metric versus cut-off, one panel per metric, one line per model."""

    with _style():
        fig, axes = _figure(len(metrics), 2.6)
        for ax, m in zip(axes, metrics, strict=True):
            for lab, row in rows.items():
                ys = [row.get(f"{m}@{k}", np.nan) for k in cutoffs]
                ax.plot(cutoffs, ys, marker="o", ms=3, lw=1.4, color=colours[lab], label=lab)
            ax.set_title(m)
            ax.set_xlabel("cut-off k")
            ax.set_xticks(list(cutoffs))
        axes[0].legend(fontsize=7, frameon=False)
        return _svg(fig, "metric versus cut-off")


def per_user_distributions(
    per_user: Mapping[str, Mapping[str, np.ndarray]], columns: Sequence[str],
    colours: Mapping[str, str],
) -> str:
    """Box plots of per-user values (box: quartiles, whiskers: 5th-95th percentile, diamond:
    mean), one panel per column, one box per model."""

    labels = list(per_user)
    with _style():
        fig, axes = _figure(len(columns), 0.28 * len(labels) + 0.9, ncols=min(len(columns), 2))
        for ax, col in zip(axes, columns, strict=True):
            data = [np.asarray(per_user[lab][col], dtype=np.float64) for lab in labels]
            bp = ax.boxplot(
                data[::-1], orientation="horizontal", whis=(5, 95), showfliers=False,
                showmeans=True, patch_artist=True, widths=0.6,
                meanprops={"marker": "D", "markersize": 3, "markerfacecolor": "black",
                           "markeredgecolor": "black"},
                medianprops={"color": "black"},
            )
            for patch, lab in zip(bp["boxes"], labels[::-1], strict=True):
                patch.set_facecolor(colours[lab])
                patch.set_alpha(0.6)
            ax.set_yticks(range(1, len(labels) + 1), labels[::-1])
            ax.set_title(f"{col} per user")
        return _svg(fig, "per-user distributions")


def tuning_convergence(
    trials: Mapping[str, Sequence[Mapping[str, Any]]], objective: str,
    colours: Mapping[str, str],
) -> str:
    """Best validation score so far against the trial number (optuna's, from 0, as in the log
    and the results); dots are single trials, failed trials are left out."""

    with _style():
        fig, (ax,) = _figure(1, 2.8)
        for lab, ts in trials.items():
            ts = sorted(ts, key=lambda t: int(t.get("number", 0)))
            scores = np.array([np.nan if t.get("score") is None else float(t["score"])
                               for t in ts], dtype=np.float64)
            x = np.array([int(t.get("number", i)) for i, t in enumerate(ts)])
            ok = np.isfinite(scores)
            best = np.fmax.accumulate(np.where(ok, scores, -np.inf))
            best[~np.isfinite(best)] = np.nan
            ax.plot(x, best, drawstyle="steps-post", lw=1.6, color=colours[lab], label=lab)
            ax.scatter(x[ok], scores[ok], s=12, alpha=0.7, color=colours[lab], linewidths=0)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_xlabel("trial number (from 0)")
        ax.set_ylabel(f"validation {objective}")
        ax.set_title("tuning convergence: best so far (line) and each trial (dots)")
        ax.legend(fontsize=7, frameon=False)
        return _svg(fig, "tuning convergence")


def popularity_bias(
    profiles: Mapping[str, Mapping[str, Any]], colours: Mapping[str, str]
) -> str:
    """Share of recommendations per item-popularity bin against the training share."""

    first = next(iter(profiles.values()))["bins"]
    n = int(first["n_bins"])
    x = np.arange(1, n + 1)
    with _style():
        fig, (ax,) = _figure(1, 2.9)
        ax.plot(x, first["train_share"], color="black", lw=2.2, ls="--",
                label="training interactions")
        for lab, prof in profiles.items():
            ax.plot(x, prof["bins"]["recommended_share"], marker="o", ms=3, lw=1.3,
                    color=colours[lab], label=lab)
        ax.set_yscale("log")  # the head holds most of the mass; the tail must stay visible
        ax.set_xticks(x)
        ax.set_xlabel(f"item popularity bin (1 = most popular {100 // n} % of items)")
        ax.set_ylabel("share (log scale)")
        ax.set_title(f"recommended (top-{first['cutoff']}) versus training popularity")
        ax.legend(fontsize=7, frameon=False, ncols=2)
        return _svg(fig, "popularity bias")


def coverage_chart(
    profiles: Mapping[str, Mapping[str, Any]], colours: Mapping[str, str]
) -> str:
    """Catalogue coverage and Gini of the recommendation counts against the cut-off, one line
    per model."""
    cutoffs = [int(k) for k in next(iter(profiles.values()))["cutoffs"]]
    with _style():
        fig, axes = _figure(2, 2.6, ncols=2)
        for ax, key, title in zip(axes, ("coverage", "gini"),
                                  ("catalogue coverage", "Gini of recommendation counts"),
                                  strict=True):
            for lab, prof in profiles.items():
                ys = [prof["cutoffs"][str(k)][key] for k in cutoffs]
                ax.plot(cutoffs, ys, marker="o", ms=3, lw=1.4, color=colours[lab], label=lab)
            ax.set_xticks(cutoffs)
            ax.set_xlabel("cut-off k")
            ax.set_ylim(0, 1.02)
            ax.set_title(title)
        axes[0].legend(fontsize=7, frameon=False)
        return _svg(fig, "coverage")
