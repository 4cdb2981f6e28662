"""CVAE and CDL on tiny data: the hybrid learns from content, seeds hold, the ALS is exact."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.sparse as sp

# CI installs the torch extra, so there a missing torch is an error, not a skip.
if os.environ.get("CI"):
    import torch
else:
    torch = pytest.importorskip("torch", reason="needs the recforge[torch] extra")

from recforge.data.interactions import Interactions
from recforge.models import make_model
from recforge.models.torch.cdl import CDL
from recforge.models.torch.ctr import CTRWeights, update_items, update_users
from recforge.models.torch.cvae import CVAE

N_USERS, N_ITEMS, N_FEATURES = 60, 48, 30

TINY_CVAE = {"num_factors": 4, "dimensions_vae": [12, 6], "epochs_vae": [3, 3],
             "epochs_latent": 3, "epochs_full": 3, "batch_size": 16, "epochs": 4,
             "als_max_iter": 3, "n_threads": 1}
# Adam instead of the paper's Adadelta: Adadelta's first steps are ~1e-4 (eps 1e-8), too slow
# for a few epochs on tiny data; the Adadelta path is covered by the DAE tests.
TINY_CDL = {"num_factors": 4, "hidden_dims": [12], "epochs_dae": 10, "epochs": 10,
            "batch_size": 16, "final_als_iterations": 20, "optimizer": "adam",
            "learning_rate": 1e-2, "n_threads": 1}


def _planted(seed: int = 0) -> tuple[Interactions, np.ndarray, np.ndarray]:
    """Two topics: item i has topic i % 2 (features of block t); user u likes topic u % 2.

    Training pairs use only the first 32 items; items 32.. are cold (no training users) and
    can be ranked only through their content.
    """
    rng = np.random.default_rng(seed)
    topic = np.arange(N_ITEMS) % 2
    half = N_FEATURES // 2
    feats = np.zeros((N_ITEMS, N_FEATURES), dtype=np.float32)
    for i in range(N_ITEMS):
        feats[i, rng.choice(half, 5, replace=False) + topic[i] * half] = 1.0
    group = np.arange(N_USERS) % 2
    warm = np.arange(32)
    rows, cols = [], []
    for u in range(N_USERS):
        liked = warm[topic[warm] == group[u]]
        for i in rng.choice(liked, 5, replace=False):
            rows.append(u)
            cols.append(int(i))
    x = Interactions.from_arrays(np.array(rows), np.array(cols), shape=(N_USERS, N_ITEMS),
                                 item_features=sp.csr_matrix(feats))
    return x, group, topic


@pytest.fixture(scope="module")
def planted():
    return _planted()


def _topic_margin(scores: np.ndarray, group: np.ndarray, topic: np.ndarray,
                  items: np.ndarray) -> float:
    same = group[:, None] == topic[None, items]
    s = scores[:, items]
    return float(s[same].mean() - s[~same].mean())


@pytest.mark.parametrize(("cls", "params"), [(CVAE, TINY_CVAE), (CDL, TINY_CDL)])
def test_planted_preference_reaches_cold_items_through_content(cls, params, planted):
    x, group, topic = planted
    model = cls(**params).fit(x)
    scores = model.score(np.arange(N_USERS))
    assert scores.shape == (N_USERS, N_ITEMS) and scores.dtype == np.float32
    assert _topic_margin(scores, group, topic, np.arange(32)) > 0.05
    cold = np.arange(32, N_ITEMS)
    assert _topic_margin(scores, group, topic, cold) > 0.0


@pytest.mark.parametrize(("cls", "params"), [(CVAE, TINY_CVAE), (CDL, TINY_CDL)])
def test_same_seed_same_scores(cls, params, planted):
    x, _, _ = planted
    users = np.arange(N_USERS)
    a = cls(**params, seed=3).fit(x).score(users)
    b = cls(**params, seed=3).fit(x).score(users)
    c = cls(**params, seed=4).fit(x).score(users)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize(("cls", "params"), [(CVAE, TINY_CVAE), (CDL, TINY_CDL)])
def test_factors_are_the_exact_ctr_steps_of_the_last_epoch(cls, params, planted):
    x, _, _ = planted
    model = cls(**params).fit(x)
    r = sp.csr_matrix(x.matrix)
    w = CTRWeights(a=model.a, b=model.b, lambda_u=model.lambda_u, lambda_v=model.lambda_v)
    f = model.module_.factors
    u, v = f.user_factors.double().numpy(), f.item_factors.double().numpy()
    theta = f.item_codes.double().numpy()
    # the last sweep ended with the item step: V is the exact minimiser for U and theta
    np.testing.assert_allclose(v, update_items(sp.csr_matrix(r.T), u, theta, w),
                               rtol=1e-4, atol=1e-6)
    # ... and U the exact user step for the V before it, so one more user step moves little
    u_next = update_users(r, v, w)
    assert np.abs(u_next - u).max() < 0.05 * max(1e-3, np.abs(u).max())
    np.testing.assert_allclose(model.score(np.arange(3)), u[:3] @ v.T, rtol=1e-5, atol=1e-6)


def test_cdl_runs_one_sweep_per_alternation_and_more_at_the_end(planted):
    x, _, _ = planted
    lines: list[str] = []
    model = CDL(**TINY_CDL).fit(x, progress=lines.append)
    done = [ln for ln in lines if ln.startswith("CDL alternation")]
    assert len(done) == TINY_CDL["epochs"] and done[-1].startswith("CDL alternation 10/10")
    assert model.als_sweeps_[:-1] == [1] * (TINY_CDL["epochs"] - 1)
    assert model.als_sweeps_[-1] > 1
    assert model.epochs_run_ == TINY_CDL["epochs"] and model.epochs_best_ == TINY_CDL["epochs"]


def test_cvae_early_stopping_keeps_the_best_epoch(planted):
    x, _, _ = planted
    from recforge.models.iterative import EarlyStopping

    calls: list[int] = []

    def validation(model):  # a made-up curve peaking at the second validation
        calls.append(1)
        return [0.1, 0.3, 0.2, 0.15, 0.1, 0.05][len(calls) - 1]

    model = CVAE(**{**TINY_CVAE, "epochs": 12}).fit(
        x, validation=validation,
        early_stopping=EarlyStopping(validate_every=2, patience=2))
    assert model.epochs_best_ == 4
    assert model.epochs_run_ == 8


def test_quirk_options_change_the_result(planted):
    x, _, _ = planted
    users = np.arange(N_USERS)
    base = CVAE(**TINY_CVAE).fit(x).score(users)
    per_step = CVAE(**TINY_CVAE, batch_sampling="per_step").fit(x).score(users)
    rated = CVAE(**TINY_CVAE, unrated="rated").fit(x).score(users)
    assert not np.array_equal(base, per_step)
    assert not np.array_equal(base, rated)


def test_registered_and_missing_content_is_named(planted):
    x, _, _ = planted
    assert isinstance(make_model("CVAE", **TINY_CVAE), CVAE)
    assert isinstance(make_model("CDL", **TINY_CDL), CDL)
    bare = Interactions(x.matrix)
    with pytest.raises(ValueError, match="CVAE: needs item content"):
        CVAE(**TINY_CVAE).fit(bare)
    with pytest.raises(ValueError, match="CDL: needs item content"):
        CDL(**TINY_CDL).fit(bare)


@pytest.mark.parametrize(
    ("cls", "params", "message"),
    [
        (CVAE, {"dimensions_vae": [12], "epochs_vae": [3, 3]}, "epochs_vae"),
        (CVAE, {"batch_sampling": "random"}, "batch_sampling"),
        (CVAE, {"lambda_u": 0.0}, "lambda_u"),
        (CVAE, {"pretrain_fraction": 0.0}, "pretrain_fraction"),
        (CDL, {"dropout": 1.0}, "dropout"),
        (CDL, {"optimizer": "sgd"}, "optimizer"),
        (CDL, {"unrated": "none"}, "unrated"),
    ],
)
def test_bad_hyper_parameters_are_named_before_training(cls, params, message, planted):
    x, _, _ = planted
    base = TINY_CVAE if cls is CVAE else TINY_CDL
    with pytest.raises(ValueError, match=message):
        cls(**{**base, **params}).fit(x)


def test_content_beyond_max_features_is_trimmed(planted):
    x, _, _ = planted
    model = CVAE(**{**TINY_CVAE, "max_features": 20}).fit(x)
    assert model.content_columns_.shape == (20,)
    assert model.module_config_["n_features"] == 20


@pytest.mark.parametrize(("cls", "params"), [(CVAE, TINY_CVAE), (CDL, TINY_CDL)])
def test_cached_pretraining_gives_the_same_model(cls, params, planted, tmp_path, monkeypatch):
    x, _, _ = planted
    monkeypatch.setenv("RECFORGE_CACHE", str(tmp_path))
    users = np.arange(N_USERS)
    plain = cls(**params).fit(x)
    first = cls(**params, cache_pretraining=True).fit(x)
    assert not first.pretrain_cached_
    entries = list((tmp_path / "pretrained" / cls.__name__).iterdir())
    assert len(entries) == 1 and (entries[0] / "weights.safetensors").is_file()
    # another interaction matrix on the same content reuses it and continues identically
    lines: list[str] = []
    second = cls(**params, cache_pretraining=True).fit(x, progress=lines.append)
    assert second.pretrain_cached_ and any("loaded from the cache" in ln for ln in lines)
    assert second.pretrain_record_ == first.pretrain_record_
    np.testing.assert_array_equal(plain.score(users), first.score(users))
    np.testing.assert_array_equal(first.score(users), second.score(users))
    cls(**params, cache_pretraining=True, seed=9).fit(x)
    assert len(list((tmp_path / "pretrained" / cls.__name__).iterdir())) == 2


def test_no_pretraining_stage_outruns_the_epoch_cap(planted):
    x, _, _ = planted
    lines: list[str] = []
    model = CDL(**{**TINY_CDL, "epochs_dae": 10, "epochs": 2})
    model.fit(x, progress=lines.append)
    assert "CDL: pre-training stages capped at 2 epochs (the run's epoch cap)" in lines
    assert any("CDL DAE 1 epoch 2/2" in ln for ln in lines)
    assert not any("/10" in ln for ln in lines)
