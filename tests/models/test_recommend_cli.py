"""`recforge recommend` on a saved model gives the model's own top-k lists with external ids,
for every registered model (fit on the contract suite's tiny data, saved, loaded by the CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_contract import NAMES, TRAIN, _cls
from typer.testing import CliRunner

from recforge.cli.main import app

USERS = ["user-03", "user-11", "user-27"]


@pytest.mark.parametrize("name", NAMES)
def test_recommend_cli_gives_the_models_lists(name: str, tmp_path: Path) -> None:
    cls = _cls(name)
    model = cls(**cls._test_params).fit(TRAIN)
    model.save(tmp_path / "model")
    expected = model.recommend(USERS, 5)
    args = ["recommend", str(tmp_path / "model"), "--k", "5", "--json",
            "--out", str(tmp_path / "lists.csv")]
    for u in USERS:
        args += ["--user", u]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["lists"] == {u: [[i, s] for i, s in pairs]
                                for u, pairs in expected.lists().items()}
    assert payload["train_checksum"] == TRAIN.checksum()
    table = pd.read_csv(tmp_path / "lists.csv")
    assert table["user"].tolist() == expected.user.tolist()
    assert table["item"].tolist() == expected.item.tolist()
    assert table["rank"].tolist() == expected.rank.tolist()
    np.testing.assert_allclose(table["score"].to_numpy(), expected.score, rtol=1e-6)
    # external ids, and a user's training items are never recommended
    seen = {(TRAIN.user_ids[u], TRAIN.item_ids[i]) for u, i in zip(*TRAIN.to_arrays(),
                                                                      strict=True)}
    assert all(str(i).startswith("item-") for i in table["item"])
    assert not {(u, i) for u, i in zip(table["user"], table["item"], strict=True)} & seen


def test_a_model_fitted_on_a_gpu_loads_on_the_cpu_when_asked(tmp_path: Path) -> None:
    from recforge.models import load_model

    cls = _cls("MultVAE")
    model = cls(**cls._test_params).fit(TRAIN)
    out = model.save(tmp_path / "model")
    meta = json.loads((out / "model.json").read_text())
    meta["params"]["device"] = "cuda"  # what a fit with device="cuda" records
    (out / "model.json").write_text(json.dumps(meta))
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="load it with device='cpu'"):
            load_model(out, allow_other_data=True)
    back = load_model(out, allow_other_data=True, device="cpu")
    assert back.device == "cpu"
    users = np.arange(TRAIN.n_users)
    np.testing.assert_array_equal(back.score(users), model.score(users))
    args = ["recommend", str(out), "--k", "5", "--json", "--device", "cpu"]
    for u in USERS:
        args += ["--user", u]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["lists"] == {
        u: [[i, s] for i, s in pairs] for u, pairs in model.recommend(USERS, 5).lists().items()}


def test_a_cpu_only_model_refuses_another_device_on_load(tmp_path: Path) -> None:
    from recforge.models import load_model

    cls = _cls("ItemKNNCF")
    out = cls(**cls._test_params).fit(TRAIN).save(tmp_path / "model")
    with pytest.raises(ValueError, match=r"device='cuda'.*ItemKNNCF computes on cpu only"):
        load_model(out, allow_other_data=True, device="cuda")
    assert load_model(out, allow_other_data=True, device="cpu").get_params() == cls(
        **cls._test_params).get_params()
