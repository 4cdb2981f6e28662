"""Experiment reports: significance marks, Markdown, and a self-contained HTML page.

Significance: per metric column, the reference is the model with the best mean on the first
seed. Every other model is compared with it by a paired per-user test (Wilcoxon signed-rank by
default, or a paired t-test), and the p-values of one column are corrected together (Holm or
Benjamini-Hochberg). A cell is marked ``*`` when it differs significantly from the reference
after correction; the reference cell is marked ``^``. Bootstrap 95% confidence intervals of each
mean are given in the HTML page and ``results.json``.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from recforge.experiments.outcome import ExperimentOutcome

__all__ = ["build_significance", "render_html", "render_markdown"]


def build_significance(outcome: ExperimentOutcome) -> dict[str, dict[str, dict[str, Any]]]:
    from recforge.evaluation.significance import bootstrap_ci, correct_pvalues, paired_test

    spec = outcome.spec
    seed = spec.seeds[0]
    runs = outcome.runs[seed]
    labels = [m.display for m in spec.models]
    columns = [k for k in runs[labels[0]].per_user]
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for col in columns:
        means = {lab: float(np.mean(runs[lab].per_user[col])) for lab in labels}
        ref = max(labels, key=lambda lab: means[lab])
        others = [lab for lab in labels if lab != ref]
        pvals = []
        for lab in others:
            a, b = runs[lab].per_user[col], runs[ref].per_user[col]
            pvals.append(
                paired_test(a, b, test=spec.report.significance_test).pvalue if a.size else 1.0
            )
        adj: np.ndarray = (
            correct_pvalues(np.asarray(pvals, dtype=np.float64), method=spec.report.correction)
            if pvals
            else np.zeros(0)
        )
        col_out: dict[str, dict[str, Any]] = {}
        for lab in labels:
            vals = runs[lab].per_user[col]
            lo, hi = bootstrap_ci(vals, n_boot=1000, alpha=0.05, seed=seed) if vals.size else (0, 0)
            entry: dict[str, Any] = {"mean": means[lab], "ci95": [float(lo), float(hi)]}
            if lab == ref:
                entry.update(reference=True, p=None, p_adjusted=None, significant=None)
            else:
                i = others.index(lab)
                p_adj = float(adj[i])
                entry.update(
                    reference=False,
                    p=float(pvals[i]),
                    p_adjusted=p_adj,
                    significant=bool(p_adj < spec.report.alpha),
                )
            col_out[lab] = entry
        out[col] = col_out
    return out


def _mark(sig: dict[str, Any] | None) -> str:
    if not sig:
        return ""
    if sig.get("reference"):
        return "^"
    return "*" if sig.get("significant") else ""


def _columns(outcome: ExperimentOutcome) -> list[str]:
    first = next(iter(outcome.rows.values()))
    return list(first)


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
        "- split fingerprints: "
        + ", ".join(
            f"seed {s}: `{v['fingerprint'][:16]}`" for s, v in outcome.data["splits"].items()
        ),
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
            cell = f"{row[c]:.4f}{_mark(sig.get(c, {}).get(label))}"
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
            f"- **{label}** (`{run.model}`): `{run.params}`; fit {run.fit_seconds:.2f} s, "
            f"evaluation {run.eval_seconds:.2f} s"
            + (f"; {len(run.trials)} trials" if run.trials else "")
        )
    if outcome.warnings:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in outcome.warnings]
    if len(spec.seeds) > 1:
        lines += ["", "## Spread over seeds (std)", ""]
        for label, row in outcome.spread.items():
            lines.append(f"- {label}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items()))
    return "\n".join(lines) + "\n"


def _bar_svg(values: dict[str, float], title: str, cis: dict[str, list[float]]) -> str:
    width, row_h, left = 520, 22, 170
    vmax = max([*values.values(), *(c[1] for c in cis.values())] or [1.0]) or 1.0
    h = row_h * len(values) + 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{h}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="4" y="14" font-size="12" font-weight="bold">{html.escape(title)}</text>',
    ]
    scale = (width - left - 60) / vmax
    for i, (lab, v) in enumerate(values.items()):
        y = 22 + i * row_h
        parts.append(f'<text x="4" y="{y + 13}" font-size="11">{html.escape(lab)}</text>')
        parts.append(
            f'<rect x="{left}" y="{y + 2}" width="{max(v, 0) * scale:.1f}" height="{row_h - 6}" '
            'fill="#4a78b5"/>'
        )
        if lab in cis:
            lo, hi = cis[lab]
            parts.append(
                f'<line x1="{left + lo * scale:.1f}" x2="{left + hi * scale:.1f}" '
                f'y1="{y + row_h / 2}" y2="{y + row_h / 2}" stroke="#222" stroke-width="1.5"/>'
            )
        parts.append(
            f'<text x="{left + max(v, 0) * scale + 4:.1f}" y="{y + 13}" font-size="10">'
            f"{v:.4f}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def render_html(
    outcome: ExperimentOutcome,
    sig: dict[str, dict[str, dict[str, Any]]],
    extra: dict[str, Any] | None = None,
) -> str:
    md = render_markdown(outcome, sig, extra)
    cols = _columns(outcome)
    table = ["<table><thead><tr><th>model</th>"]
    table += [f"<th>{html.escape(c)}</th>" for c in cols]
    table.append("</tr></thead><tbody>")
    paper = (extra or {}).get("paper", {})
    for label, row in outcome.rows.items():
        table.append(f"<tr><th>{html.escape(label)}</th>")
        for c in cols:
            s = sig.get(c, {}).get(label, {})
            ci = s.get("ci95")
            title = f"95% CI {ci[0]:.4f}..{ci[1]:.4f}" if ci else ""
            if s.get("p_adjusted") is not None:
                title += f"; adjusted p {s['p_adjusted']:.3g}"
            cls = "ref" if s.get("reference") else ("sig" if s.get("significant") else "")
            extra_txt = ""
            if label in paper and c in paper[label]:
                extra_txt = (
                    f'<div class="paper">paper {paper[label][c]:.4f} '
                    f"({row[c] - paper[label][c]:+.4f})</div>"
                )
            table.append(
                f'<td class="{cls}" title="{html.escape(title)}">{row[c]:.4f}'
                f"{_mark(s)}{extra_txt}</td>"
            )
        table.append("</tr>")
    table.append("</tbody></table>")
    charts = []
    for c in cols:
        values = {lab: row[c] for lab, row in outcome.rows.items()}
        cis = {lab: s["ci95"] for lab, s in sig.get(c, {}).items() if "ci95" in s}
        charts.append(_bar_svg(values, c, cis))
    style = (
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 8px;"
        "text-align:right}th{text-align:left}td.ref{background:#e7f3e7}td.sig{background:#fbeaea}"
        ".paper{font-size:80%;color:#555}pre{background:#f6f6f6;padding:1em;overflow:auto}"
        ".charts svg{margin:8px}"
    )
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>recforge: {html.escape(outcome.spec.name)}</title><style>{style}</style></head>"
        f"<body><h1>recforge experiment {html.escape(outcome.spec.name)}</h1>"
        "<p>Green: best model of the column (reference). Red: differs significantly from it "
        "after multiple-comparison correction. Hover a cell for its confidence interval.</p>"
        + "".join(table)
        + f"<div class='charts'>{''.join(charts)}</div>"
        + f"<h2>Full report</h2><pre>{html.escape(md)}</pre></body></html>"
    )
