"""The experiment report as one self-contained HTML page (inline CSS and SVG, no script, no
network).

Sections (each an ``<section id=...>`` with an ``<h2>``): ``dataset`` (dataset and split
statistics), ``results`` (one table per metric: models x cut-offs, significance marks and the
95 % interval printed under each value), ``checks`` (only with reference values), ``curves``
(metric versus cut-off), ``per-user`` (distributions), ``tuning`` (convergence per searched
model), ``popularity`` (recommended versus training popularity), ``coverage``,
``configurations`` (hyper-parameters and times) and ``warnings`` (only when there are some).
Every results cell carries ``data-model``, ``data-metric`` and ``data-value`` (full precision),
so tools and tests can read the numbers back.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

from recforge.experiments.report import figures
from recforge.experiments.report.markdown import mark, render_markdown

if TYPE_CHECKING:
    from recforge.experiments.outcome import ExperimentOutcome

__all__ = ["SECTIONS", "render_html"]

#: Section ids always present, in page order (``checks`` and ``warnings`` come when needed).
SECTIONS = ("dataset", "results", "curves", "per-user", "tuning", "popularity", "coverage",
            "configurations")

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;padding:1em 1.5em;
max-width:1240px;color:#1d1d1f;line-height:1.4}
h1{font-size:1.5em;margin:.2em 0}h2{font-size:1.2em;border-bottom:1px solid #ddd;
padding-bottom:.2em;margin-top:1.6em}h3{font-size:1em;margin:.8em 0 .3em}
.meta{color:#444;font-size:.9em}.meta code{font-size:.95em}
table{border-collapse:collapse;font-size:13px;margin:.3em 0 .8em}
td,th{border:1px solid #d6d6d6;padding:3px 7px;text-align:right;vertical-align:top}
th{background:#f5f5f7;text-align:left}td.txt{text-align:left}
td.ref{background:#e3f2e3}td.sig{background:#fbe9e9}
.ci{display:block;font-size:11px;color:#555;white-space:nowrap}
.paper{display:block;font-size:11px;color:#6a4b00}
.scroll{overflow-x:auto;max-width:100%}.grid{display:flex;flex-wrap:wrap;gap:0 2em}
.note{font-size:.85em;color:#555;max-width:60em}details pre{background:#f6f6f6;padding:1em;
overflow:auto;font-size:12px}svg{display:block;margin:.3em 0}
ul.params{margin:0;padding-left:1em;text-align:left;font-size:12px}
"""


def _e(v: Any) -> str:
    return html.escape(str(v), quote=True)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e-3 or abs(v) >= 1e4 else f"{v:.4f}".rstrip("0").rstrip(".")
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{_e(title)}</h2>{body}</section>'


def _dataset(outcome: ExperimentOutcome) -> str:
    spec = outcome.spec
    seed = str(spec.seeds[0])
    info = outcome.data.get("splits", {}).get(seed, {})
    stats = info.get("statistics")
    rows = [
        ("dataset", f"{spec.dataset.label} {spec.dataset.options or ''}".strip()),
        ("data checksum", outcome.data.get("data_checksum", "")),
        ("split", f"{spec.split.method}; seeds {spec.seeds}"),
        ("protocol", spec.protocol),
        ("tuning protocol preset", spec.preset),
    ]
    head = "".join(f"<tr><th>{_e(k)}</th><td class='txt'><code>{_e(v)}</code></td></tr>"
                   for k, v in rows)
    out = [f"<table>{head}</table>"]
    if not stats:
        out.append("<p class='note'>No split statistics were stored with these results "
                   "(older run).</p>")
        return "".join(out)
    overall = [("users", stats["users"]), ("items", stats["items"]),
               ("training interactions", stats["train_interactions"]),
               ("density", f"{100 * stats['density']:.3f} %"),
               ("interactions per user", f"{stats['interactions_per_user']:.1f}"),
               ("popularity Gini (training)", f"{stats['popularity_gini']:.3f}")]
    out.append("<div class='grid'><table><tr><th colspan=2>training data (seed "
               f"{_e(seed)})</th></tr>"
               + "".join(f"<tr><th>{_e(k)}</th><td>{_e(_fmt(v))}</td></tr>" for k, v in overall)
               + "</table>")
    parts = [p for p in ("validation", "test") if p in stats]
    if parts:
        keys = [("interactions", "interactions"), ("users", "users"), ("items", "items"),
                ("cold-start users", "cold_start_users"), ("cold-start items", "cold_start_items")]
        t = ["<table><tr><th>held out</th>" + "".join(f"<th>{p}</th>" for p in parts) + "</tr>"]
        for name, key in keys:
            t.append(f"<tr><th>{name}</th>"
                     + "".join(f"<td>{_fmt(stats[p][key])}</td>" for p in parts) + "</tr>")
        out.append("".join(t) + "</table>")
    out.append("</div><p class='note'>Cold-start: a held-out user or item without any training "
               "interaction. Split fingerprints: "
               + ", ".join(f"seed {_e(s)} <code>{_e(v['fingerprint'][:16])}</code>"
                           for s, v in outcome.data.get("splits", {}).items()) + ".</p>")
    return "".join(out)


def _results(outcome: ExperimentOutcome, sig: dict[str, Any], extra: dict[str, Any]) -> str:
    spec = outcome.spec
    paper = extra.get("paper", {})
    cols = list(next(iter(outcome.rows.values())))
    metrics = list(dict.fromkeys(c.split("@")[0] for c in cols))
    out = [
        "<p class='note'>Mean over seeds; under each value its 95 % bootstrap interval over "
        f"users (seed {spec.seeds[0]}). <b>^</b> (green): best model of the column, the "
        "reference; <b>*</b> (red): differs from it by a paired "
        f"{_e(spec.report.significance_test)} test after {_e(spec.report.correction)} "
        "correction at alpha "
        f"{spec.report.alpha}.</p><div class='grid'>"
    ]
    for m in metrics:
        mcols = [c for c in cols if c.split("@")[0] == m]
        t = [f"<div class='scroll'><h3>{_e(m)}</h3><table class='results' data-metric-name="
             f"'{_e(m)}'><thead><tr><th>model</th>"
             + "".join(f"<th>@{_e(c.split('@')[1])}</th>" for c in mcols) + "</tr></thead><tbody>"]
        for label, row in outcome.rows.items():
            t.append(f"<tr><th>{_e(label)}</th>")
            for c in mcols:
                s = sig.get(c, {}).get(label, {})
                cls = "ref" if s.get("reference") else ("sig" if s.get("significant") else "")
                ci = s.get("ci95")
                ci_txt = f"<span class='ci'>{ci[0]:.4f}–{ci[1]:.4f}</span>" if ci else ""
                p_txt = ""
                if label in paper and c in paper[label]:
                    p_txt = (f"<span class='paper'>paper {paper[label][c]:.4f} "
                             f"({row[c] - paper[label][c]:+.4f})</span>")
                title = f"adjusted p {s['p_adjusted']:.3g}" if s.get("p_adjusted") is not None \
                    else ""
                t.append(f'<td class="{cls}" data-model="{_e(label)}" data-metric="{_e(c)}" '
                         f'data-value="{row[c]!r}" title="{_e(title)}">{row[c]:.4f}{mark(s)}'
                         f"{ci_txt}{p_txt}</td>")
            t.append("</tr>")
        out.append("".join(t) + "</tbody></table></div>")
    out.append("</div>")
    if len(spec.seeds) > 1:
        out.append("<p class='note'>Spread over seeds (sample sd) and per-seed values are in "
                   "results.json (<code>spread</code>, <code>per_seed</code>).</p>")
    return "".join(out)


def _checks(extra: dict[str, Any]) -> str:
    checks = extra.get("checks") or []
    rule = extra.get("rule") or (extra.get("reference") or {}).get("rule")
    head = ("<tr><th>model</th><th>metric</th><th>reference</th><th>ours</th><th>delta</th>"
            "<th>rel. delta</th><th>our 95 % interval</th><th>in interval</th>"
            "<th>within tolerance</th><th>ok</th></tr>")
    rows = []
    for c in checks:
        iv = c.get("interval")
        rel = c.get("rel_delta")
        inside = c.get("in_interval")
        tol = c.get("within_tolerance", c["ok"])
        rows.append(
            f"<tr><td class='txt'>{_e(c['model'])}</td><td class='txt'>{_e(c['metric'])}</td>"
            f"<td>{c['paper']:.4f}</td><td>{c['ours']:.4f}</td><td>{c['delta']:+.4f}</td>"
            f"<td>{'' if rel is None else f'{100 * rel:+.1f} %'}</td>"
            f"<td>{'' if not iv else f'{iv[0]:.4f}–{iv[1]:.4f}'}</td>"
            f"<td>{'n/a' if inside is None else ('yes' if inside else 'no')}</td>"
            f"<td>{'yes' if tol else 'no'}</td>"
            f"<td class='{'' if c['ok'] else 'sig'}'>{'yes' if c['ok'] else 'NO'}</td></tr>")
    n_ok = sum(bool(c["ok"]) for c in checks)
    return (f"<p>{n_ok} of {len(checks)} cells pass. " + (f"Rule: {_e(rule)}." if rule else "")
            + f"</p><div class='scroll'><table>{head}{''.join(rows)}</table></div>")


def _configurations(outcome: ExperimentOutcome) -> str:
    spec = outcome.spec
    t = ["<div class='scroll'><table><tr><th>model</th><th>class</th><th>hyper-parameters"
         "</th><th>fit s</th><th>evaluation s</th><th>trials</th><th>best trial</th></tr>"]
    for label, run in outcome.runs[spec.seeds[0]].items():
        params = "".join(f"<li><code>{_e(k)}</code> = {_e(_fmt(v))}</li>"
                         for k, v in sorted(run.params.items()))
        best = (run.tuning or {}).get("best_trial")
        t.append(f"<tr><th>{_e(label)}</th><td class='txt'>{_e(run.model)}</td>"
                 f"<td class='txt'><ul class='params'>{params or '<li>(defaults)</li>'}</ul></td>"
                 f"<td>{run.fit_seconds:.2f}</td><td>{run.eval_seconds:.2f}</td>"
                 f"<td>{len(run.trials) or ''}</td>"
                 f"<td>{'' if best is None else f'#{int(best)}'}</td></tr>")
    return ("".join(t) + "</table></div><p class='note'>Seed "
            f"{spec.seeds[0]}; trials are numbered from 0 (optuna's numbers, as in the log and "
            "<code>trials/*.json</code>). Times "
            "are wall seconds of the final fit and the test evaluation.</p>")


def render_html(
    outcome: ExperimentOutcome,
    sig: dict[str, dict[str, dict[str, Any]]],
    extra: dict[str, Any] | None = None,
) -> str:
    """The whole report page (see the module docstring for its sections)."""
    extra = extra or {}
    spec = outcome.spec
    seed = spec.seeds[0]
    runs = outcome.runs[seed]
    labels = list(outcome.rows)
    colours = figures.model_colours(labels)
    cols = list(next(iter(outcome.rows.values())))
    metrics = list(dict.fromkeys(c.split("@")[0] for c in cols))
    cutoffs = sorted({int(c.split("@")[1]) for c in cols})
    body = [_section("dataset", "Dataset and split", _dataset(outcome)),
            _section("results", "Results", _results(outcome, sig, extra))]
    if extra.get("checks"):
        body.append(_section("checks", "Check against the reference values", _checks(extra)))
    curve_metrics = [m for m in metrics if all(f"{m}@{k}" in cols for k in cutoffs)]
    body.append(_section("curves", "Metric versus cut-off", (
        figures.cutoff_curves(outcome.rows, curve_metrics, cutoffs, colours)
        if len(cutoffs) > 1 and curve_metrics
        else "<p class='note'>One cut-off only: no curve to draw.</p>")))
    per_user_cols = list(next(iter(runs.values())).per_user)
    k_user = spec.optimize.cutoff if any(c.endswith(f"@{spec.optimize.cutoff}")
                                         for c in per_user_cols) else cutoffs[0]
    shown = [c for c in per_user_cols if c.endswith(f"@{k_user}")]
    body.append(_section("per-user", "Per-user distributions", (
        figures.per_user_distributions({lab: runs[lab].per_user for lab in labels}, shown,
                                       colours)
        + f"<p class='note'>Seed {seed}, {next(iter(runs.values())).users.size:,} test users, "
        f"at cut-off {k_user}. Box: quartiles; whiskers: 5th to 95th percentile; diamond: "
        "mean.</p>") if shown else "<p class='note'>No per-user values.</p>"))
    searched = {lab: run.trials for lab, run in runs.items() if run.trials}
    body.append(_section("tuning", "Tuning convergence", (
        figures.tuning_convergence(searched, f"{spec.optimize.metric}@{spec.optimize.cutoff}",
                                   colours)
        if searched else "<p class='note'>No entry had a hyper-parameter search (fixed "
        "configurations).</p>")))
    profiles = {lab: run.recommended for lab, run in runs.items() if run.recommended}
    missing = "<p class='note'>No recommendation counts were stored with these results.</p>"
    body.append(_section("popularity", "Recommended versus training popularity", (
        figures.popularity_bias(profiles, colours)
        + "<p class='note'>Items ranked by training popularity and cut into equal bins; the "
        "dashed line is each bin's share of the training interactions, the others each model's "
        "share of its recommendations. Mean training popularity of a recommended item: "
        + ", ".join(f"{_e(lab)} {p['cutoffs'][str(p['bins']['cutoff'])]['avg_popularity']:.1f}"
                    for lab, p in profiles.items())
        + f" (training interactions: {next(iter(profiles.values()))['train_avg_popularity']:.1f})"
        ".</p>") if profiles else missing))
    body.append(_section("coverage", "Coverage", (
        figures.coverage_chart(profiles, colours)
        + "<p class='note'>Coverage: share of the catalogue recommended to at least one test "
        "user; Gini 0 = every item recommended equally often.</p>") if profiles else missing))
    body.append(_section("configurations", "Hyper-parameters and times",
                         _configurations(outcome)))
    if outcome.warnings:
        body.append(_section("warnings", "Warnings", "<ul>" + "".join(
            f"<li>{_e(w)}</li>" for w in outcome.warnings) + "</ul>"))
    md = render_markdown(outcome, sig, extra)
    header = (
        f"<h1>recforge experiment <code>{_e(spec.name)}</code></h1><p class='meta'>"
        f"{_e(spec.dataset.label)} · {_e(spec.protocol)} protocol · optimised "
        f"{_e(spec.optimize.metric)}@{spec.optimize.cutoff} on validation · seeds "
        f"{_e(spec.seeds)}</p>"
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>recforge: {_e(spec.name)}</title><style>{_STYLE}</style></head><body>"
        + header + "".join(body)
        + f"<details><summary>Markdown report</summary><pre>{_e(md)}</pre></details>"
        "</body></html>"
    )
