"""The HTML report rendered in headless Chromium (Playwright, Debian's ``chromium``).

One real run (a small synthetic data file, three models, a search, two seeds, a ``reference:``
block) writes ``report.html``; the page must load with no console error and no request other
than the file itself, show every section with its content, fit a 1366 px laptop screen, and
the numbers it shows must be the ones in ``results.json``. The browser is the suite's
``chromium`` fixture (tests/conftest.py): a missing browser FAILS these tests, never skips.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml
from typer.testing import CliRunner

from recforge.cli.main import app
from recforge.experiments.report import SECTIONS

LAPTOP = {"width": 1366, "height": 768}
CHARTS = ("curves", "per-user", "tuning", "popularity", "coverage")


def _data(path: Path) -> Path:
    rng = np.random.default_rng(11)
    weights = np.linspace(3, 0.05, 150)
    weights /= weights.sum()
    users = np.repeat(np.arange(600), 15)
    items = np.concatenate([rng.choice(150, 15, replace=False, p=weights) for _ in range(600)])
    pl.DataFrame({"user": users, "item": items}).write_csv(path)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("report")
    spec = {
        "name": "report-check",
        "dataset": {"file": str(_data(tmp / "data.csv"))},
        "split": {"method": "per_user_holdout", "params": {"test_fraction": 0.2},
                  "validation": {"mode": "per_user", "fraction": 0.1}},
        "optimize": {"metric": "NDCG", "cutoff": 10},
        "report": {"metrics": ["NDCG", "RECALL", "COVERAGE"], "cutoffs": [5, 10, 20]},
        "seeds": [0, 1],
        "models": [{"model": "TopPopular"}, {"model": "Random"},
                   {"model": "ItemKNNCF", "search": {"n_trials": 4}}],
        "reference": {"source": "made-up values",
                      "values": {"TopPopular": {"NDCG@10": 0.2, "RECALL@10": 0.2}}},
    }
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp / "out"
    res = CliRunner().invoke(app, ["run", str(path), "--out", str(out)])
    assert res.exit_code == 0, res.output
    (out / "log.txt").write_text(res.output)
    return out


@pytest.fixture(scope="module")
def page(chromium: Any, run_dir: Path) -> Iterator[tuple[Any, list[str], list[str]]]:
    pg = chromium.new_page(viewport=LAPTOP)
    errors: list[str] = []
    requests: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("request", lambda r: requests.append(r.url))
    url = (run_dir / "report.html").resolve().as_uri()
    pg.goto(url, wait_until="load")
    yield pg, errors, [r for r in requests if r != url]
    pg.close()


def test_the_page_loads_cleanly_offline_and_fits_a_laptop(page: Any) -> None:
    pg, errors, requests = page
    assert errors == []
    assert requests == []  # self-contained: no script, style, font or image fetched
    width = pg.evaluate("document.documentElement.scrollWidth")
    assert width <= LAPTOP["width"], f"page is {width} px wide"


def test_every_section_is_there_with_its_content(page: Any) -> None:
    pg, _, _ = page
    ids = pg.eval_on_selector_all("section", "els => els.map(e => e.id)")
    for sid in SECTIONS:
        assert sid in ids, f"section {sid!r} missing"
    assert "checks" in ids  # the spec has a reference block
    assert ids.index("dataset") < ids.index("results") < ids.index("configurations")
    for sid in CHARTS:  # each chart section holds a drawn chart with text in it
        n = pg.eval_on_selector_all(f"#{sid} svg", "els => els.length")
        assert n >= 1, f"section {sid!r} has no chart"
        box = pg.eval_on_selector(f"#{sid} svg", "e => e.getBoundingClientRect().width")
        assert 300 < box <= LAPTOP["width"]
    stats = pg.inner_text("#dataset")
    for word in ("users", "items", "density", "popularity Gini", "cold-start users"):
        assert word in stats
    tuning = pg.text_content("#tuning")
    assert "ItemKNNCF" in tuning  # the searched entry is drawn; fixed ones are not
    config = pg.inner_text("#configurations")
    assert "top_k" in config and "best trial" in config


def test_trials_are_counted_one_way_in_log_results_and_report(page: Any, run_dir: Path) -> None:
    pg, _, _ = page
    best = json.loads((run_dir / "best_configs.json").read_text())["ItemKNNCF"]["0"]["tuning"]
    trials = json.loads((run_dir / "trials" / "ItemKNNCF__seed0.json").read_text())
    assert [t["number"] for t in trials] == [0, 1, 2, 3]
    assert best["best_trial"] in {0, 1, 2, 3}
    log = (run_dir / "log.txt").read_text()
    assert "ItemKNNCF trial #0 (1/4)" in log and "ItemKNNCF trial #3 (4/4)" in log
    row = pg.inner_text("#configurations tr:has(th:text-is('ItemKNNCF'))")
    assert row.split("\t")[-1].strip() == f"#{best['best_trial']}"


def test_the_numbers_shown_are_those_in_results_json(page: Any, run_dir: Path) -> None:
    pg, _, _ = page
    results = json.loads((run_dir / "results.json").read_text())
    cells = pg.eval_on_selector_all(
        "#results td[data-metric]",
        "els => els.map(e => [e.dataset.model, e.dataset.metric, e.dataset.value, e.innerText])")
    rows = results["rows"]
    expected = {(lab, col) for lab, row in rows.items() for col in row}
    assert {(m, c) for m, c, _, _ in cells} == expected
    sig = results["significance"]
    for model, col, value, text in cells:
        assert float(value) == rows[model][col]
        assert text.startswith(f"{rows[model][col]:.4f}")
        s = sig.get(col, {}).get(model)
        if s:  # per-user metric: the interval is printed, and the mark matches the test
            lo, hi = s["ci95"]
            assert f"{lo:.4f}–{hi:.4f}" in text
            mark = "^" if s["reference"] else ("*" if s["significant"] else "")
            assert text.split("\n")[0] == f"{rows[model][col]:.4f}{mark}"
    # per-seed values are kept, and the rows are their means
    for lab, row in rows.items():
        per_seed = results["per_seed"][lab]
        assert set(per_seed) == {"0", "1"}
        for col, v in row.items():
            assert v == pytest.approx(np.mean([per_seed[s][col] for s in per_seed]), abs=1e-12)
    checks = pg.inner_text("#checks")
    assert f"of {len(results['checks'])} cells pass" in checks


def test_popularity_and_coverage_come_from_the_recommendations(run_dir: Path) -> None:
    results = json.loads((run_dir / "results.json").read_text())
    for lab, by_seed in results["recommended"].items():
        prof = by_seed["0"]
        share = np.asarray(prof["bins"]["recommended_share"])
        assert share.sum() == pytest.approx(1.0) and share.size == 10
        cov = prof["cutoffs"]["20"]["coverage"]
        assert cov == pytest.approx(results["per_seed"][lab]["0"]["COVERAGE@20"], abs=1e-12)
    top = np.asarray(results["recommended"]["TopPopular"]["0"]["bins"]["recommended_share"])
    rnd = np.asarray(results["recommended"]["Random"]["0"]["bins"]["recommended_share"])
    # TopPop recommends the head (the 2 most popular bins hold 30 items), Random spreads out.
    assert top[:2].sum() > 0.8 and rnd[:2].sum() < 0.4
