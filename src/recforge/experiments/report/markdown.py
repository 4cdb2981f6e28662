"""The experiment report as Markdown (``report.md``): identity, results table with
significance marks, reference checks, configurations, warnings and spread over seeds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from recforge.experiments.outcome import ExperimentOutcome

__all__ = ["mark", "render_markdown"]


def mark(sig: dict[str, Any] | None) -> str:
    if not sig:
        return ""
    if sig.get("reference"):
        return "^"
    return "*" if sig.get("significant") else ""


def _columns(outcome: ExperimentOutcome) -> list[str]:
    first = next(iter(outcome.rows.values()))
    return list(first)


def _statistics_lines(outcome: ExperimentOutcome) -> list[str]:
    seed = str(outcome.spec.seeds[0])
    st = outcome.data.get("splits", {}).get(seed, {}).get("statistics")
    if not st:
        return []
    line = (f"- training data (seed {seed}): {st['users']:,} users, {st['items']:,} items, "
            f"{st['train_interactions']:,} interactions, density {100 * st['density']:.3f} %, "
            f"popularity Gini {st['popularity_gini']:.3f}")
    test = st.get("test")
    if test:
        line += (f"; test: {test['interactions']:,} interactions of {test['users']:,} users, "
                 f"{test['cold_start_users']} cold-start users, "
                 f"{test['cold_start_items']} cold-start items")
    return [line]


def render_markdown(
    outcome: ExperimentOutcome,
    sig: dict[str, dict[str, dict[str, Any]]],
    extra: dict[str, Any] | None = None,
) -> str:
    spec = outcome.spec
    cols = _columns(outcome)
    paper = (extra or {}).get("paper", {})
    lines = [
        f"# Experiment `{spec.name}`",
        "",
        f"- dataset: `{spec.dataset.label}` {spec.dataset.options or ''}",
        f"- data checksum: `{outcome.data['data_checksum']}`",
        f"- protocol: {spec.protocol}; split: {spec.split.method}; seeds: {spec.seeds}",
        f"- tuning protocol preset: {spec.preset} (recforge.tuning.protocols)",
        "- split fingerprints: "
        + ", ".join(
            f"seed {s}: `{v['fingerprint'][:16]}`" for s, v in outcome.data["splits"].items()
        ),
        *_statistics_lines(outcome),
        f"- optimised: {spec.optimize.metric}@{spec.optimize.cutoff} on validation",
        f"- significance: paired {spec.report.significance_test} vs the best model per column, "
        f"{spec.report.correction} correction, alpha {spec.report.alpha}; `*` differs "
        "significantly, `^` reference",
        "",
        "| model | " + " | ".join(cols) + " |",
        "| --- | " + " | ".join("---:" for _ in cols) + " |",
    ]
    for label, row in outcome.rows.items():
        cells = []
        for c in cols:
            cell = f"{row[c]:.4f}{mark(sig.get(c, {}).get(label))}"
            if label in paper and c in paper[label]:
                d = row[c] - paper[label][c]
                cell += f" ({paper[label][c]:.4f}, {d:+.4f})"
            cells.append(cell)
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if paper:
        lines += ["", "Cells with a paper value show `ours (paper, delta)`."]
    checks = (extra or {}).get("checks")
    if checks:
        lines += ["", "## Cell-by-cell check against the reference", ""]
        rule = (extra or {}).get("rule") or ((extra or {}).get("reference") or {}).get("rule")
        if rule:
            lines += [f"Rule: {rule}.", ""]
        lines += ["| model | metric | reference | ours | delta | rel. delta | 95% interval | "
                  "in interval | within tolerance | ok |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |"]
        for c in checks:
            iv = c.get("interval")
            rel = c.get("rel_delta")
            inside = c.get("in_interval")
            lines.append(
                f"| {c['model']} | {c['metric']} | {c['paper']:.4f} | {c['ours']:.4f} | "
                f"{c['delta']:+.4f} | {'' if rel is None else f'{100 * rel:+.1f}%'} | "
                f"{'' if not iv else f'{iv[0]:.4f}..{iv[1]:.4f}'} | "
                f"{'n/a' if inside is None else ('yes' if inside else 'NO')} | "
                f"{'yes' if c.get('within_tolerance', c['ok']) else 'NO'} | "
                f"{'yes' if c['ok'] else 'NO'} |"
            )
    lines += ["", "## Configurations", ""]
    for label, run in outcome.runs[spec.seeds[0]].items():
        lines.append(
            f"- **{label}** (`{run.model}`): `{run.params}`; fit {run.fit_seconds:.2f} s"
            + _peak(run.fit_memory)
            + f", evaluation {run.eval_seconds:.2f} s"
            + (f"; {len(run.trials)} trials" if run.trials else "")
        )
    if outcome.warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in outcome.warnings]
    if len(spec.seeds) > 1:
        lines += ["", "## Spread over seeds (std)", ""]
        for label, row in outcome.spread.items():
            lines.append(f"- {label}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()))
    return "\n".join(lines) + "\n"


def _peak(memory: dict[str, Any] | None) -> str:
    """`` (peak RSS 812 MB)`` of a final fit, when it was measured."""
    rss = (memory or {}).get("peak_rss_mb")
    return "" if rss is None else f" (peak RSS {rss:,.0f} MB)"
