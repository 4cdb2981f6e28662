"""SpectralCF on tiny data: planted preference, seeds, early stopping, the original's training."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

if os.environ.get("CI"):
    import torch
else:
    torch = pytest.importorskip("torch", reason="needs the recforge[torch] extra")

from planted_blocks import own_block_wins, planted_blocks

from recforge.data.interactions import Interactions
from recforge.models import make_model
from recforge.models.iterative import EarlyStopping
from recforge.models.torch.spectralcf import (
    SparsePropagation,
    SpectralCF,
    SpectralCFNet,
    tf1_rmsprop,
)
from recforge.models.torch.spectralcf_propagation import eig_propagation, sparse_propagation

R = planted_blocks()
TRAIN = Interactions(sp.csr_matrix(R))
FAST: dict[str, Any] = {"batch_size": 32, "embedding_size": 8, "k": 2, "learning_rate": 0.02,
                        "cache_propagation": False, "n_threads": 1}


@pytest.mark.parametrize("propagation", ["eig", "sparse"])
def test_learns_the_planted_preference(propagation: str) -> None:
    m = SpectralCF(epochs=200, propagation=propagation, **FAST).fit(TRAIN)
    scores = m.score(np.arange(R.shape[0]))
    assert scores.shape == R.shape and scores.dtype == np.float32
    assert own_block_wins(scores, R) > 0.95
    losses = [h.loss for h in m.history_]
    assert len(losses) == 200  # one epoch = one minibatch
    assert np.mean(losses[-20:]) < 0.5 * np.mean(losses[:20])


def test_eig_and_sparse_train_differently() -> None:
    users = np.arange(10)
    a = SpectralCF(epochs=5, propagation="eig", **FAST).fit(TRAIN).score(users)
    b = SpectralCF(epochs=5, propagation="sparse", **FAST).fit(TRAIN).score(users)
    assert np.isfinite(a).all() and np.isfinite(b).all()
    assert not np.allclose(a, b)


def test_same_seed_same_scores_other_seed_differs() -> None:
    users = np.arange(R.shape[0])
    a = SpectralCF(epochs=8, seed=3, **FAST).fit(TRAIN).score(users)
    torch.manual_seed(77)
    b = SpectralCF(epochs=8, seed=3, **FAST).fit(TRAIN).score(users)
    c = SpectralCF(epochs=8, seed=4, **FAST).fit(TRAIN).score(users)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_early_stopping_restores_the_best_epoch_and_its_vectors() -> None:
    seen: dict[int, np.ndarray] = {}
    values = iter([0.2, 0.5, 0.9, 0.4, 0.3, 0.1, 0.05])

    def callback(model: Any) -> float:
        seen[len(seen) + 1] = model.score(np.arange(R.shape[0]))
        return next(values)

    m = SpectralCF(epochs=50, **FAST).fit(
        TRAIN, validation=callback,
        early_stopping=EarlyStopping(validate_every=2, patience=3, min_epochs=0))
    assert m.epochs_best_ == 6 and m.epochs_run_ == 12 and m.stop_reason_ == "patience"
    np.testing.assert_array_equal(m.score(np.arange(R.shape[0])), seen[3])
    assert not np.allclose(seen[3], seen[6])


def test_set_state_puts_the_vectors_on_the_model_device() -> None:
    # a best state read back from a resume point holds CPU tensors; on a GPU fit the restored
    # vectors must land on the model's device ("meta" stands in for CUDA here)
    m = SpectralCF(epochs=2, **FAST).fit(TRAIN)
    state = m.get_state()
    m.device_ = torch.device("meta")
    m.set_state(state)
    assert m.vectors_.device.type == "meta"


def test_paper_defaults() -> None:
    m = make_model("SpectralCF")
    assert (m.epochs, m.batch_size, m.embedding_size, m.decay, m.k, m.learning_rate) == (
        1000, 1024, 16, 1e-3, 3, 1e-3)
    assert m.propagation == "eig" and m.eig_dtype == "float64"
    from recforge.experiments.paper.setups import SETUPS

    for block in ("table7", "table7-original"):
        assert SETUPS[block].early_stopping["SpectralCF"] == {
            "validate_every": 5, "patience": 20, "min_epochs": 400}


def test_rmsprop_has_tensorflow1_semantics() -> None:
    # TF1: ms starts at 1, ms <- 0.9 ms + 0.1 g², step = lr g / sqrt(ms + eps).
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = tf1_rmsprop([p], lr=0.1)
    g = torch.tensor([0.5, 3.0])
    p.grad = g.clone()
    opt.step()
    ms = 0.9 + 0.1 * g**2
    np.testing.assert_allclose(p.detach().numpy(),
                               (torch.tensor([1.0, -2.0]) - 0.1 * g / ms.sqrt()).numpy(),
                               rtol=1e-6)


def test_network_matches_the_written_formula() -> None:
    net = SpectralCFNet(n_users=R.shape[0], n_items=R.shape[1], embedding_size=3, k=2)
    net.reset_parameters(torch.Generator().manual_seed(0))
    a = eig_propagation(sp.csr_matrix(R)).astype(np.float64)
    e0 = net.embeddings.detach().numpy().astype(np.float64)
    th = net.filters.detach().numpy().astype(np.float64)
    sig = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    e1 = sig(a @ e0 @ th[0])
    e2 = sig(a @ e1 @ th[1])
    got = net.propagate(torch.from_numpy(a.astype(np.float32))).detach().numpy()
    np.testing.assert_allclose(got, np.hstack([e0, e1, e2]), atol=1e-5)
    # the init of the original: N(0.01, 0.02²)
    w = net.embeddings.detach()
    assert abs(float(w.mean()) - 0.01) < 0.005
    assert abs(float(w.std()) - 0.02) < 0.003


def _plain_propagation(net: SpectralCFNet, a: torch.Tensor) -> torch.Tensor:
    """[E₀ | E₁ | … | E_K] through plain dense products (autograd's own backward)."""
    e = net.embeddings
    outs = [e]
    for k in range(net.filters.shape[0]):
        e = torch.sigmoid((a @ e) @ net.filters[k])
        outs.append(e)
    return torch.cat(outs, 1)


def test_symmetric_backward_equals_autograd_through_the_transpose() -> None:
    a = torch.from_numpy(eig_propagation(sp.csr_matrix(R)))
    net = SpectralCFNet(n_users=R.shape[0], n_items=R.shape[1], embedding_size=4, k=2)
    net.reset_parameters(torch.Generator().manual_seed(1))
    net.propagate(a).square().sum().backward()
    ours = net.embeddings.grad.clone()
    net.zero_grad()
    _plain_propagation(net, a).square().sum().backward()
    torch.testing.assert_close(ours, net.embeddings.grad, rtol=1e-5, atol=1e-7)


def test_sparse_propagation_gives_the_dense_products_and_gradients() -> None:
    # I + L is not symmetric: the backward must multiply by its transpose
    a_sp = sparse_propagation(sp.csr_matrix(R))
    dense = torch.from_numpy(a_sp.toarray())
    assert not torch.equal(dense, dense.T)
    net = SpectralCFNet(n_users=R.shape[0], n_items=R.shape[1], embedding_size=4, k=3)
    net.reset_parameters(torch.Generator().manual_seed(2))
    weights = torch.randn(R.shape[0] + R.shape[1], 16, generator=torch.Generator().manual_seed(3))
    out = net.propagate(SparsePropagation(a_sp, torch.device("cpu")))
    (out * weights).sum().backward()
    got_e, got_f = net.embeddings.grad.clone(), net.filters.grad.clone()
    net.zero_grad()
    want = _plain_propagation(net, dense)
    (want * weights).sum().backward()
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_e, net.embeddings.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_f, net.filters.grad, rtol=1e-5, atol=1e-6)


def test_bad_hyper_parameters_fail_before_work() -> None:
    with pytest.raises(ValueError,
                       match=r"propagation=.dense.*one of .eig., .eig-original., .sparse."):
        SpectralCF(propagation="dense", **FAST).fit(TRAIN)
    with pytest.raises(ValueError, match="eig_dtype"):
        SpectralCF(eig_dtype="float16", **FAST).fit(TRAIN)
    with pytest.raises(ValueError, match="k"):
        SpectralCF(epochs=2, **{**FAST, "k": 0}).fit(TRAIN)
