"""Mult-VAE / Mult-DAE on tiny planted data: learning, held-out users, annealing, seeds."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

if os.environ.get("CI"):  # CI installs the torch extra: a missing torch is an error there
    import torch  # noqa: F401
else:
    pytest.importorskip("torch", reason="needs the recforge[torch] extra")

from recforge.data.interactions import Interactions
from recforge.data.splitting import held_out_users
from recforge.evaluation import evaluate_split
from recforge.evaluation.validation import validation_callback
from recforge.models import make_model
from recforge.models.iterative import EarlyStopping
from recforge.models.torch.multvae import MultDAE, MultVAE

SMALL = {"hidden_dims": (32,), "latent_dim": 8, "batch_size": 16, "n_threads": 1}


def _planted(n_users: int = 160, n_items: int = 40, seed: int = 0) -> Interactions:
    """Two user groups, each clicking mostly inside its own half of the items."""
    rng = np.random.default_rng(seed)
    p = np.full((n_users, n_items), 0.02)
    p[: n_users // 2, : n_items // 2] = 0.35
    p[n_users // 2 :, n_items // 2 :] = 0.35
    dense = (rng.random((n_users, n_items)) < p).astype(np.float32)
    return Interactions(sp.csr_matrix(dense))


def _own_half_first(scores: np.ndarray, profiles: sp.csr_matrix, group_a: np.ndarray) -> float:
    """Share of users whose unseen own-half items outscore the unseen other-half items."""
    n_items = scores.shape[1]
    half = np.arange(n_items) < n_items // 2
    seen = profiles.toarray() > 0
    wins = []
    for row, in_a in enumerate(group_a):
        own = half if in_a else ~half
        wins.append(scores[row, own & ~seen[row]].mean() > scores[row, ~own & ~seen[row]].mean())
    return float(np.mean(wins))


@pytest.mark.parametrize("cls", [MultVAE, MultDAE])
def test_held_out_users_get_their_planted_preference(cls: type) -> None:
    x = _planted()
    split = held_out_users(x, n_test_users=40, n_validation_users=0, seed=1)
    model = cls(epochs=15, lr=2e-2, **SMALL).fit(split.train)
    assert split.test_profiles is not None
    prof = split.test_profiles.matrix
    held = np.flatnonzero(np.diff(prof.indptr) > 0)
    scores = model.score_profiles(prof[held])
    assert scores.shape == (held.size, 40) and scores.dtype == np.float32
    assert _own_half_first(scores, prof[held], held < 80) > 0.9
    losses = [h.loss for h in model.history_]
    assert losses[-1] < losses[0]
    # training users are scored from their training rows
    train_users = np.flatnonzero(np.diff(split.train.matrix.indptr) > 0)[:20]
    assert _own_half_first(model.score(train_users), split.train.matrix[train_users],
                           train_users < 80) > 0.9


def test_same_seed_same_scores_and_seed_matters() -> None:
    train = _planted()
    users = np.arange(30)
    a = MultVAE(epochs=3, seed=4, **SMALL).fit(train).score(users)
    b = MultVAE(epochs=3, seed=4, **SMALL).fit(train).score(users)
    c = MultVAE(epochs=3, seed=5, **SMALL).fit(train).score(users)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_kl_annealing_schedule_and_the_2019_counter_reset() -> None:
    train = _planted()  # 160 users, batch 16 -> 10 updates per epoch
    model = MultVAE(epochs=3, total_anneal_steps=100, anneal_cap=0.2, **SMALL).fit(train)
    assert model.update_count_ == 30
    assert model.beta_ == pytest.approx(0.2)  # min(0.2, 29 / 100): capped
    capped = MultVAE(epochs=3, total_anneal_steps=50, anneal_cap=0.2, **SMALL).fit(train)
    assert capped.beta_ == pytest.approx(0.2)
    slow = MultVAE(epochs=3, total_anneal_steps=200, anneal_cap=0.2, **SMALL).fit(train)
    assert slow.beta_ == pytest.approx(29 / 200)
    # the 2019 wrapper reset the counter every epoch: beta never passes (updates per epoch)/steps
    buggy = MultVAE(epochs=3, total_anneal_steps=200, anneal_counter_reset=True, **SMALL)
    buggy.fit(train)
    assert buggy.beta_ == pytest.approx(9 / 200) and buggy.update_count_ == 30
    fixed_beta = MultVAE(epochs=1, total_anneal_steps=0, anneal_cap=0.3, **SMALL).fit(train)
    assert fixed_beta.beta_ == pytest.approx(0.3)
    # different schedules train different models
    assert not np.allclose(slow.score(np.arange(5)), buggy.score(np.arange(5)))


def test_early_stopping_on_held_out_validation_users() -> None:
    x = _planted(n_users=200)
    split = held_out_users(x, n_test_users=30, n_validation_users=30, seed=2)
    cb = validation_callback(split, "NDCG", 10)
    model = make_model("MultVAE", epochs=12, lr=2e-2, **SMALL)
    model.fit(split.train, validation=cb, early_stopping=EarlyStopping(validate_every=2,
                                                                       patience=2))
    validated = [h for h in model.history_ if h.validation is not None]
    assert validated and model.epochs_best_ == max(validated, key=lambda h: h.validation).epoch
    again = evaluate_split(model, split, cutoffs=[10], metrics=["NDCG"], on="validation")
    assert again.summary["NDCG@10"] == pytest.approx(model.best_validation_)
    test = evaluate_split(model, split, cutoffs=[10], metrics=["NDCG"], on="test")
    assert test.summary["NDCG@10"] > 0.3  # random ranking of 40 items gives ~0.15 here


def test_bad_hyper_parameters_are_named_before_training() -> None:
    train = _planted()
    with pytest.raises(ValueError, match="dropout"):
        MultVAE(dropout=1.0, **{k: v for k, v in SMALL.items() if k != "dropout"}).fit(train)
    with pytest.raises(ValueError, match="total_anneal_steps"):
        MultVAE(total_anneal_steps=-1, **SMALL).fit(train)
    with pytest.raises(ValueError, match="hidden_dims"):
        MultVAE(**{**SMALL, "hidden_dims": (0,)}).fit(train)
    with pytest.raises(ValueError, match="batch_size"):
        MultDAE(**{**SMALL, "batch_size": 0}).fit(train)
    empty = Interactions(sp.csr_matrix((5, 6), dtype=np.float32))
    with pytest.raises(ValueError, match="no interactions"):
        MultDAE(**SMALL).fit(empty)


def test_defaults_are_the_recsys19_settings() -> None:
    vae = MultVAE().get_params()
    assert {k: vae[k] for k in ("epochs", "batch_size", "hidden_dims", "latent_dim", "dropout",
                                "lr", "l2_reg", "anneal_cap", "total_anneal_steps",
                                "anneal_counter_reset")} == {
        "epochs": 100, "batch_size": 500, "hidden_dims": (600,), "latent_dim": 200,
        "dropout": 0.5, "lr": 1e-3, "l2_reg": 0.0, "anneal_cap": 0.2,
        "total_anneal_steps": 200_000, "anneal_counter_reset": False}
    dae: dict[str, Any] = MultDAE().get_params()
    assert dae["hidden_dims"] == () and dae["l2_reg"] == 0.01 and dae["latent_dim"] == 200
