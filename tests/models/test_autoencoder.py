"""Tied stacked autoencoders and layer-wise DAE pre-training (the content networks of CVAE/CDL)."""

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

from recforge.models.torch.autoencoder import (
    DAESettings,
    TiedStack,
    bernoulli_nll,
    minibatches,
    pretrain_layer,
    sparse_batch,
    sparsity_pull,
)

CPU = torch.device("cpu")


@pytest.fixture(autouse=True)
def _one_thread():
    # tiny batches: one thread avoids OpenMP contention on a loaded shared machine
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _content(n_items: int = 120, n_features: int = 40, seed: int = 0) -> sp.csr_matrix:
    """Two topics: items of topic t use features of block t (plus a little noise)."""
    rng = np.random.default_rng(seed)
    topic = np.arange(n_items) % 2
    half = n_features // 2
    dense = np.zeros((n_items, n_features), dtype=np.float32)
    for i in range(n_items):
        cols = rng.choice(half, 6, replace=False) + topic[i] * half
        dense[i, cols] = 1.0
    return sp.csr_matrix(dense)


def test_sparse_batches_match_the_dense_rows_and_mask_at_the_rate():
    x = _content()
    rows = np.array([5, 0, 17])
    b = sparse_batch(x, rows, CPU)
    np.testing.assert_array_equal(b.dense().numpy(), x[rows].toarray())
    gen = torch.Generator().manual_seed(0)
    full = sparse_batch(x, np.arange(x.shape[0]), CPU)
    masked = full.masked(0.3, gen)
    kept = masked.indices.numel() / full.indices.numel()
    assert 0.62 < kept < 0.78
    dense = masked.dense().numpy()
    assert np.all(dense <= x.toarray())  # only stored entries are dropped


def test_sparse_first_layer_equals_the_dense_product():
    x = _content()
    st = TiedStack([x.shape[1], 7, 3])
    rows = np.arange(20)
    sparse_out = st.encode(sparse_batch(x, rows, CPU))
    dense_out = st.encode(torch.as_tensor(x[rows].toarray()))
    torch.testing.assert_close(sparse_out, dense_out)


def test_decoder_uses_the_transposed_weights_and_encoder_biases():
    st = TiedStack([6, 4, 2])
    with torch.no_grad():
        for p in st.parameters():
            p.normal_()
    h = torch.rand(3, 2)
    w0, w1 = st.weights[0], st.weights[1]
    expected = torch.sigmoid(h @ w1.T + st.biases[0]) @ w0.T + st.visible_bias
    torch.testing.assert_close(st.decode(h), expected)
    # tied: a reconstruction loss moves the encoder weights
    st.zero_grad()
    st.decode(h).sum().backward()
    assert w0.grad is not None and float(w0.grad.abs().sum()) > 0
    assert set(dict(st.named_parameters())) == {
        "weights.0", "weights.1", "biases.0", "biases.1", "visible_bias"}


def test_pretraining_learns_the_topics():
    x = _content()
    settings = DAESettings(epochs=60, batch_size=16, mask=0.3, lr=1e-2)
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    w, b, c, losses = pretrain_layer(x, 4, settings, rng=rng, gen=gen, device=CPU)
    assert losses[-1] < 0.8 * losses[0]
    h = torch.sigmoid(sparse_batch(x, np.arange(x.shape[0]), CPU).dense() @ w + b)
    topic = np.arange(x.shape[0]) % 2
    # the codes separate the two topics: nearest-centroid accuracy on the codes
    codes = h.numpy()
    c0, c1 = codes[topic == 0].mean(0), codes[topic == 1].mean(0)
    pred = (np.linalg.norm(codes - c1, axis=1) < np.linalg.norm(codes - c0, axis=1)).astype(int)
    assert (pred == topic).mean() > 0.95
    recon = torch.sigmoid(h @ w.T + c)
    ref = bernoulli_nll(torch.logit(recon.clamp(1e-6, 1 - 1e-6)),
                        torch.as_tensor(x.toarray())).mean()
    assert float(ref) < losses[0]


def test_pretraining_is_seeded_and_accepts_dense_codes():
    x = np.random.default_rng(1).random((50, 8)).astype(np.float32)
    settings = DAESettings(epochs=3, batch_size=10, mask=0.2, drop=0.1, sparsity_cost=0.1,
                           weight_decay=1e-4, optimizer="adadelta", lr=1.0,
                           visible_bias="logit_mean")

    def run(seed: int) -> torch.Tensor:
        w, _, _, _ = pretrain_layer(x, 3, settings, rng=np.random.default_rng(seed),
                                    gen=torch.Generator().manual_seed(seed), device=CPU)
        return w

    torch.testing.assert_close(run(4), run(4))
    assert not torch.equal(run(4), run(5))


def test_sparsity_pull_is_cost_times_activation_minus_target_on_the_pre_activation():
    layer = TiedStack([3, 2])
    x = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    pre = layer._first(x)
    h = torch.sigmoid(pre)
    sparsity_pull(pre, h, 0.5, 0.1).backward()
    g = (h.detach() - 0.1) * 0.5 / 2  # per row, averaged over the two rows
    torch.testing.assert_close(layer.biases[0].grad, g.sum(0))
    torch.testing.assert_close(layer.weights[0].grad, x.T @ g)


def test_minibatches_cover_every_row_once_or_sample_per_step():
    rng = np.random.default_rng(0)
    epoch = list(minibatches(10, 4, "epoch", rng))
    assert [len(b) for b in epoch] == [4, 4, 2]
    assert sorted(np.concatenate(epoch).tolist()) == list(range(10))
    steps = list(minibatches(10, 4, "per_step", rng))
    assert len(steps) == 2 and all(len(set(s.tolist())) == 4 for s in steps)
    with pytest.raises(ValueError, match="batch_sampling"):
        list(minibatches(10, 4, "shuffle", rng))  # type: ignore[arg-type]
