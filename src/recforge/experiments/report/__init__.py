"""Experiment reports: ``report.md`` and a self-contained ``report.html``.

- :mod:`.significance`: paired tests against the best model per column and bootstrap
  intervals (``results.json["significance"]``).
- :mod:`.statistics`: dataset/split statistics and recommendation profiles (coverage,
  popularity bias), computed by the runner and stored with the results.
- :mod:`.figures`: the charts (matplotlib, inlined as SVG).
- :mod:`.markdown` and :mod:`.page`: the two renderings.
"""

from recforge.experiments.report.markdown import render_markdown
from recforge.experiments.report.page import SECTIONS, render_html
from recforge.experiments.report.significance import build_significance
from recforge.experiments.report.statistics import recommendation_profile, split_statistics

__all__ = [
    "SECTIONS",
    "build_significance",
    "recommendation_profile",
    "render_html",
    "render_markdown",
    "split_statistics",
]
