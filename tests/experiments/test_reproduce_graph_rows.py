"""The neural rows of Tables 7 (SpectralCF) and 3 (MCRec): paper settings, stopping, overrides."""

from __future__ import annotations

from typing import Any

import pytest
from typer.testing import CliRunner

from recforge.cli.main import app
from recforge.experiments.paper.numbers import REFERENCE_ROWS
from recforge.experiments.paper.reproduce import build_table_spec


def _entry(spec: dict[str, Any], label: str) -> dict[str, Any]:
    return next(m for m in spec["models"] if m["label"] == label)


@pytest.mark.parametrize(("block", "params"), [
    ("table7", {"epochs": 865, "embedding_size": 4, "decay": 0.0012, "k": 2,
                "learning_rate": 1.71e-3, "batch_size": 1024}),
    ("table7-original", {"epochs": 840, "embedding_size": 16, "decay": 1e-3, "k": 3,
                         "learning_rate": 1e-3, "batch_size": 1024}),
])
def test_spectralcf_row_has_the_papers_settings_and_stopping(block: str,
                                                            params: dict[str, Any]) -> None:
    spec = build_table_spec(block, fixed=True)
    row = _entry(spec, "SpectralCF")
    assert row["model"] == "SpectralCF" and row["params"] == params
    assert row["early_stopping"] == {"validate_every": 5, "patience": 20, "min_epochs": 400}
    assert spec["optimize"] == {"metric": "RECALL", "cutoff": 50}
    assert REFERENCE_ROWS[block]["SpectralCF"]["RECALL@20"] in (0.1843, 0.1556)
    # the same row in a search run: the neural model keeps the paper's settings
    assert _entry(build_table_spec(block, fixed=False, budget=3), "SpectralCF")["params"] == params


def test_mcrec_row_has_the_original_settings() -> None:
    spec = build_table_spec("table3", fixed=True)
    row = _entry(spec, "MCRec")
    assert row["params"] == {"epochs": 100, "latent_dim": 128, "layers": (512, 256, 128, 64),
                             "learning_rate": 1e-3, "batch_size": 256, "num_negatives": 4}
    assert row["early_stopping"] == {}  # the loop's defaults: every 5 epochs, patience 5
    assert spec["optimize"] == {"metric": "PRECISION", "cutoff": 10}
    assert REFERENCE_ROWS["table3"]["MCRec"] == {"PRECISION@10": 0.3077, "RECALL@10": 0.2061,
                                                 "NDCG@10": 0.2363}
    assert all(m["label"] != "MCRec" for m in build_table_spec(
        "table3", fixed=True, neural=False)["models"])


def test_a_cap_keeps_spectralcf_minimum_inside_it() -> None:
    row = _entry(build_table_spec("table7", fixed=True, max_epochs=50), "SpectralCF")
    assert row["early_stopping"]["max_epochs"] == 50
    assert row["early_stopping"]["min_epochs"] == 50


def test_neural_params_change_one_setting_and_are_checked() -> None:
    spec = build_table_spec("table7", fixed=True,
                            neural_params={"SpectralCF": {"propagation": "sparse"}})
    row = _entry(spec, "SpectralCF")
    assert row["params"]["propagation"] == "sparse" and row["params"]["k"] == 2
    with pytest.raises(ValueError, match="MCRec, not a neural row of table7"):
        build_table_spec("table7", fixed=True, neural_params={"MCRec": {"epochs": 1}})


def test_cli_refuses_a_malformed_or_wrong_neural_param() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["reproduce", "table7", "--fixed", "--neural-param", "SpectralCF"])
    assert res.exit_code == 2 and "LABEL.PARAM=VALUE" in res.output
    res = runner.invoke(app, ["reproduce", "table7", "--fixed",
                              "--neural-param", "SpectralCF.propagation=dense"])
    assert res.exit_code == 2 and "propagation" in res.output and "'eig'" in res.output
