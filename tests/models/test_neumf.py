"""NeuMF: the networks, the pre-trained fusion, and the model on tiny data."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

if os.environ.get("CI"):
    import torch
else:
    torch = pytest.importorskip("torch")

from recforge.models.torch.gmf import GMFNet
from recforge.models.torch.neumf import MLPNet, NeuMFNet


def test_pretrained_fusion_starts_at_the_mean_of_the_two_branch_logits() -> None:
    torch.manual_seed(0)
    gmf, mlp = GMFNet(7, 5, 4), MLPNet(7, 5, [8, 4, 2])
    with torch.no_grad():  # trained-looking branches: non-zero biases, spread-out embeddings
        for p in (*gmf.parameters(), *mlp.parameters()):
            p.normal_(0.0, 0.7)
    net = NeuMFNet(7, 5, 4, [8, 4, 2])
    net.load_pretrained(gmf, mlp)
    users = torch.arange(7).repeat_interleave(5)
    items = torch.arange(5).repeat(7)
    torch.testing.assert_close(net(users, items), 0.5 * (gmf(users, items) + mlp(users, items)))


def test_branches_have_their_own_embeddings() -> None:
    net = NeuMFNet(7, 5, 4, [8, 4])
    assert net.gmf.user.weight.shape == (7, 4)
    assert net.mlp.user.weight.shape == (7, 4)  # layers[0] / 2
    assert net.gmf.user.weight.data_ptr() != net.mlp.user.weight.data_ptr()
    trained = {id(p) for p in net.fused_parameters()}
    assert id(net.gmf.head.weight) not in trained and id(net.mlp.head.weight) not in trained
    assert id(net.head.weight) in trained and id(net.mlp.user.weight) in trained


def test_mlp_tower_widths_follow_layers() -> None:
    mlp = MLPNet(3, 4, [64, 32, 16, 8])
    widths = [m.out_features for m in mlp.tower if isinstance(m, torch.nn.Linear)]
    assert widths == [32, 16, 8]
    assert mlp(torch.tensor([0, 2]), torch.tensor([3, 1])).shape == (2,)


@pytest.mark.parametrize("layers", [[7, 4], [8], [8, 0]])
def test_bad_layers_are_named(layers: list[int]) -> None:
    with pytest.raises(ValueError, match="layers"):
        MLPNet(3, 3, layers)


# ----------------------------------------------------------------------------- the models
from tests.models.neural_data import ScriptedValidation, planted, top_unseen_in_group  # noqa: E402

from recforge.models.iterative import EarlyStopping  # noqa: E402
from recforge.models.torch.gmf import GMF  # noqa: E402
from recforge.models.torch.neumf import MLP, NeuMF  # noqa: E402

_MODELS: dict[str, tuple[type, dict[str, object]]] = {  # lr raised: few epochs suffice
    "GMF": (GMF, {"factors": 8, "epochs": 5, "learning_rate": 1e-2}),
    "MLP": (MLP, {"layers": [16, 8], "epochs": 8, "learning_rate": 3e-2}),
    "NeuMF": (NeuMF, {"factors": 8, "layers": [16, 8], "epochs": 3, "epochs_gmf": 3,
                      "epochs_mlp": 3, "learning_rate": 1e-2, "learning_rate_pretrain": 1e-2}),
}
_SHORT = {"GMF": {"epochs": 2}, "MLP": {"epochs": 2},
          "NeuMF": {"epochs": 2, "epochs_gmf": 1, "epochs_mlp": 1}}


def _make(name: str, **overrides: object) -> Any:
    cls, params = _MODELS[name]
    return cls(**{**params, "batch_size": 64, "seed": 3, "n_threads": 1, **overrides})


@pytest.mark.parametrize("name", list(_MODELS))
def test_planted_preference_is_ranked_first(name: str) -> None:
    data = planted()
    model = _make(name).fit(data.train)
    assert top_unseen_in_group(model, data) == 1.0


@pytest.mark.parametrize("name", list(_MODELS))
def test_same_seed_same_scores_and_another_seed_other_scores(name: str) -> None:
    data = planted()
    users = np.arange(data.train.n_users)
    a, b, c = (_make(name, **_SHORT[name], seed=seed).fit(data.train).score(users)
               for seed in (3, 3, 4))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("name", list(_MODELS))
def test_candidate_scores_equal_full_scores_and_chunking_changes_nothing(name: str) -> None:
    data = planted()
    model = _make(name, **_SHORT[name]).fit(data.train)
    users = np.arange(data.train.n_users)
    full = model.score(users)
    cand = data.unseen
    rows, cols = cand.nonzero()
    np.testing.assert_allclose(model.score_candidates(users, cand), full[rows, cols],
                               rtol=1e-5, atol=1e-6)
    model.score_budget = 7  # many tiny forward passes
    np.testing.assert_allclose(model.score(users), full, rtol=1e-5, atol=1e-6)


def test_each_stage_early_stops_on_the_validation_and_keeps_its_best_state() -> None:
    data = planted()
    # every 2 epochs; patience 2: GMF best at epoch 4, MLP at 2, NeuMF at 6
    script = ScriptedValidation({
        "GMF": [0.1, 0.5, 0.4, 0.3, 0.2],
        "MLP": [0.6, 0.5, 0.4, 0.3],
        "NeuMF": [0.1, 0.2, 0.7, 0.3, 0.2, 0.1],
    })
    model = NeuMF(factors=4, layers=[8, 4], epochs=20, epochs_gmf=20, epochs_mlp=20,
                  batch_size=64, n_threads=1)
    model.fit(data.train, validation=script,
              early_stopping=EarlyStopping(validate_every=2, patience=2))
    assert (model.epochs_gmf_best_, model.epochs_mlp_best_, model.epochs_best_) == (4, 2, 6)
    assert [h["epoch"] for h in model.pretrain_history_["GMF"]] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert [h["epoch"] for h in model.pretrain_history_["MLP"]] == [1, 2, 3, 4, 5, 6]
    # the fitted NeuMF is the one validated at epoch 6, not the last one (epoch 10)
    np.testing.assert_array_equal(model.score(np.arange(data.train.n_users)),
                                  script.scores_at("NeuMF", 0.7))


def test_without_pretraining_no_stage_runs() -> None:
    data = planted()
    script = ScriptedValidation({"NeuMF": [0.3, 0.2]})
    model = NeuMF(factors=4, layers=[8, 4], epochs=4, pretrain=False, batch_size=64, n_threads=1)
    model.fit(data.train, validation=script,
              early_stopping=EarlyStopping(validate_every=2, patience=5))
    assert {s[0] for s in script.seen} == {"NeuMF"}
    assert model.epochs_gmf_best_ is None and model.pretrain_history_ == {}
    assert model.epochs_best_ == 2


def test_presets_fill_what_is_left_unset() -> None:
    apr = NeuMF().resolved_settings()
    assert (apr["factors"], apr["layers"], apr["optimizer"]) == (8, [64, 32, 16, 8], "adam")
    aug = NeuMF(preset="aug2019").resolved_settings()
    assert (aug["factors"], aug["layers"]) == (64, [256, 128, 64])
    assert (aug["optimizer"], aug["optimizer_pretrain"]) == ("sgd", "adam")
    pinterest = NeuMF(preset="aug2019", factors=16).resolved_settings()
    assert pinterest["layers"] == [64, 32, 16]
    assert NeuMF(preset="aug2019", optimizer="adam").resolved_settings()["optimizer"] == "adam"


@pytest.mark.parametrize(("params", "field"), [
    ({"preset": "may2019"}, "preset"),
    ({"layers": [63, 8]}, "layers"),
    ({"optimizer": "rmsprop"}, "optimizer"),
    ({"layers": [8, 4], "reg_layers": [0.0]}, "reg_layers"),
])
def test_bad_settings_are_named_before_training(params: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        NeuMF(**params).fit(planted().train)
