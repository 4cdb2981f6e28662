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
    """Collects the results table (header + rows of cell texts) and the SVG charts' texts."""

    def __init__(self) -> None:
        super().__init__()
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self.charts: list[list[str]] = []
        self._in_table = self._in_head = self._in_svg = False
        self._cell: list[str] | None = None
        self._depth_div = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table" and not self.rows and not self.header:
            self._in_table = True
        elif self._in_table and tag == "thead":
            self._in_head = True
        elif self._in_table and tag == "tr" and not self._in_head:
            self.rows.append([])
        elif self._in_table and tag in ("td", "th"):
            self._cell = []
        elif self._cell is not None and tag == "div":
            self._depth_div += 1  # the paper note inside a cell: not the cell's value
        elif tag == "svg":
            self._in_svg = True
            self.charts.append([])

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._in_table = False
        elif tag == "thead":
            self._in_head = False
        elif tag in ("td", "th") and self._cell is not None:
            text = "".join(self._cell).strip()
            (self.header if self._in_head else self.rows[-1]).append(text)
            self._cell = None
        elif tag == "div" and self._depth_div:
            self._depth_div -= 1
        elif tag == "svg":
            self._in_svg = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._depth_div:
            self._cell.append(data)
        elif self._in_svg:
            self.charts[-1].append(data)


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

    assert page.header == ["model", *cols]
    assert [r[0] for r in page.rows] == list(rows)
    distinct = set()
    for cells in page.rows:
        label, values = cells[0], cells[1:]
        assert len(values) == len(cols), label
        for col, cell in zip(cols, values, strict=True):
            assert _value(cell) == pytest.approx(round(rows[label][col], 4), abs=1e-12), (
                label, col, cell)
            distinct.add(_value(cell))
    # A planted-structure dataset: the models differ, so the report cannot be one constant.
    assert len(distinct) > len(cols)
    assert rows["ItemKNN fixed"]["RECALL@10"] > rows["Random"]["RECALL@10"]


def test_html_charts_label_each_bar_with_its_value(run_dir: Path) -> None:
    rows = json.loads((run_dir / "results.json").read_text())["rows"]
    cols = list(next(iter(rows.values())))
    page = _Report()
    page.feed((run_dir / "report.html").read_text())
    assert len(page.charts) == len(cols)
    for col, texts in zip(cols, page.charts, strict=True):
        # title, then (label, value) per model
        assert texts[0] == col
        pairs = dict(zip(texts[1::2], texts[2::2], strict=True))
        assert set(pairs) == set(rows)
        for label, text in pairs.items():
            assert float(text) == pytest.approx(round(rows[label][col], 4), abs=1e-12)


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
