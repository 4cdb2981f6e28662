"""``recforge reproduce sampled-metrics`` on ML-1M 5-star (one sampling seed, one cut-off)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from recforge.cli.main import app
from recforge.data import splitting
from recforge.data.registry import load_dataset
from recforge.evaluation import evaluate_split
from recforge.experiments.paper.sampled_study import STUDY_LABELS
from recforge.models import make_model


@pytest.mark.paper_data("spectralcf-ml-1m")
def test_cli_writes_full_sampled_and_corrected_values(paper_data: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["reproduce", "sampled-metrics", "--seeds", "3",
                                   "--negatives", "50", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "Kendall tau vs full" in res.output
    payload = json.loads((tmp_path / "results.json").read_text())
    comp = payload["comparison"]
    assert comp["labels"] == list(STUDY_LABELS)
    assert comp["settings"]["n_negatives"] == 50 and comp["settings"]["seeds"] == [3]
    assert (tmp_path / "report.md").read_text() == payload["markdown"]
    # The full view is the plain evaluator on the same leave-one-out split.
    split = splitting.leave_one_out(load_dataset("spectralcf-ml-1m", part="all").binarized(),
                                    seed=0)
    assert comp["settings"]["split_fingerprint"] == split.fingerprint()
    top = make_model("TopPopular").fit(split.train)
    full = evaluate_split(top, split, cutoffs=[10], metrics=["HIT_RATE"]).summary["HIT_RATE@10"]
    assert comp["values"]["full"]["HIT_RATE@10"]["TopPop"] == pytest.approx(full)
    for col in comp["columns"]:
        for lab in STUDY_LABELS:
            # Ranking among 51 candidates can only lift an item relative to the whole catalogue.
            assert comp["values"]["sampled"][col][lab] >= comp["values"]["full"][col][lab]
        assert -1.0 <= comp["tau"][col]["sampled"] <= 1.0
