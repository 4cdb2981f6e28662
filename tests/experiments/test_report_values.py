"""The HTML and Markdown reports show the numbers of results.json, cell by cell.

The values are read back from report.html with the standard library's HTML parser (the table
cells, the chart labels) and from report.md's table, and compared with ``results.json`` rounded
to the 4 decimals the reports print: a report that prints wrong, swapped or constant numbers
fails here.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from lab_helpers import spec_dict, write_csv

from recforge.experiments.runner import run_experiment
from recforge.experiments.spec import parse_spec

NUMBER = re.compile(r"^-?\d+\.\d{4}")


class _Report(HTMLParser):
    """Collects the results tables (one per metric: ``@k`` header + rows of cell texts, with
    each cell's ``data-metric``/``data-value``) and the SVG charts' texts."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, dict[str, list]] = {}
        self.charts: list[list[str]] = []
        self._table: dict[str, list] | None = None
        self._in_head = self._in_svg = False
        self._cell: list[str] | None = None
        self._attrs: dict[str, str | None] = {}
        self._depth_span = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "table" and a.get("class") == "results":
            self._table = self.tables.setdefault(a["data-metric-name"] or "", {
                "header": [], "rows": [], "cells": []})
        elif self._table is not None and tag == "thead":
            self._in_head = True
        elif self._table is not None and tag == "tr" and not self._in_head:
            self._table["rows"].append([])
        elif self._table is not None and tag in ("td", "th"):
            self._cell, self._attrs = [], a
        elif self._cell is not None and tag == "span":
            self._depth_span += 1  # the interval / paper note under a value: not the value
        elif tag == "svg":
            self._in_svg = True
            self.charts.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._table = None
        elif tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None and self._table is not None:
            text = "".join(self._cell).strip()
            if self._in_head:
                self._table["header"].append(text)
            else:
                self._table["rows"][-1].append(text)
                if "data-metric" in self._attrs:
                    self._table["cells"].append(self._attrs)
            self._cell = None
        elif tag == "span" and self._depth_span:
            self._depth_span -= 1
        elif tag == "svg":
            self._in_svg = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._depth_span:
            self._cell.append(data)
        elif self._in_svg and data.strip():
            self.charts[-1].append(data.strip())


def _value(cell: str) -> float:
    m = NUMBER.match(cell)
    assert m, f"no 4-decimal number at the start of cell {cell!r}"
    return float(m.group(0))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    csv = write_csv(tmp / "data.csv")
    spec = parse_spec(spec_dict(csv, seeds=[0], models=[
        {"model": "TopPopular"},
        {"model": "Random"},
        {"model": "ItemKNNCF", "label": "ItemKNN fixed",
         "params": {"top_k": 20, "similarity": "cosine"}},
    ]))
    out = tmp / "out"
    run_experiment(spec, out, log=lambda _m: None)
    return out


def test_html_table_cells_are_the_results(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    rows = results["rows"]
    cols = list(next(iter(rows.values())))
    page = _Report()
    page.feed((run_dir / "report.html").read_text())

    metrics = list(dict.fromkeys(c.split("@")[0] for c in cols))
    assert list(page.tables) == metrics  # one table per metric, in the spec's order
    distinct = set()
    for metric, table in page.tables.items():
        mcols = [c for c in cols if c.split("@")[0] == metric]
        assert table["header"] == ["model", *(f"@{c.split('@')[1]}" for c in mcols)]
        assert [r[0] for r in table["rows"]] == list(rows)
        for cells in table["rows"]:
            label, values = cells[0], cells[1:]
            assert len(values) == len(mcols), label
            for col, cell in zip(mcols, values, strict=True):
                assert _value(cell) == pytest.approx(round(rows[label][col], 4), abs=1e-12), (
                    label, col, cell)
                distinct.add(_value(cell))
        # the machine-readable copy of each cell is the full-precision value
        for attrs in table["cells"]:
            assert float(attrs["data-value"] or "nan") == rows[attrs["data-model"]][
                attrs["data-metric"]]
    # A planted-structure dataset: the models differ, so the report cannot be one constant.
    assert len(distinct) > len(cols)
    assert rows["ItemKNN fixed"]["RECALL@10"] > rows["Random"]["RECALL@10"]


def test_html_charts_name_every_model_and_metric(run_dir: Path) -> None:
    rows = json.loads((run_dir / "results.json").read_text())["rows"]
    cols = list(next(iter(rows.values())))
    page = _Report()
    page.feed((run_dir / "report.html").read_text())
    # curves, per-user, popularity, coverage (no search in this spec: no tuning chart)
    assert len(page.charts) == 4
    curves = page.charts[0]
    for metric in dict.fromkeys(c.split("@")[0] for c in cols):
        assert metric in curves
    for texts in (curves, page.charts[2], page.charts[3]):
        assert set(rows) <= set(texts)  # each model in the legend


def test_markdown_table_cells_are_the_results(run_dir: Path) -> None:
    rows = json.loads((run_dir / "results.json").read_text())["rows"]
    cols = list(next(iter(rows.values())))
    lines = (run_dir / "report.md").read_text().splitlines()
    head = lines.index("| model | " + " | ".join(cols) + " |")
    table = lines[head + 2: head + 2 + len(rows)]
    for line, (label, row) in zip(table, rows.items(), strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[0] == label
        for col, cell in zip(cols, cells[1:], strict=True):
            assert _value(cell) == pytest.approx(round(row[col], 4), abs=1e-12), (label, col)
