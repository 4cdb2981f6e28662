"""MCRec on tiny data: planted preference, the network against its written form, options."""

from __future__ import annotations

import os
from pathlib import Path
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
from recforge.models.torch.mcrec import ORIGINAL_LABELS, MCRec, MCRecNet, bernoulli_mask
from recforge.models.torch.mcrec_metapaths import METAPATHS


def _planted(n_users: int = 40, n_items: int = 30) -> Interactions:
    r = planted_blocks(n_users, n_items)
    g = np.zeros((n_items, 3), dtype=np.float32)  # genre 0 / 1 follow the blocks, 2 is noise
    g[: n_items // 2, 0] = 1
    g[n_items // 2 :, 1] = 1
    g[::3, 2] = 1
    return Interactions(sp.csr_matrix(r), item_features=sp.csr_matrix(g))


TRAIN = _planted()
R = TRAIN.matrix.toarray()
SMALL: dict[str, Any] = {"latent_dim": 16, "layers": (32, 16), "batch_size": 32,
                         "side_data": None, "node_vectors": "svd", "knn": 5, "threshold": 0.3,
                         "n_threads": 1}


@pytest.fixture(scope="module")
def fitted() -> MCRec:
    return MCRec(epochs=20, **SMALL).fit(TRAIN)


def test_learns_the_planted_preference(fitted: MCRec) -> None:
    scores = fitted.score(np.arange(R.shape[0]))
    assert scores.shape == R.shape and scores.dtype == np.float32
    assert own_block_wins(scores, R) >= 0.9
    losses = [h.loss for h in fitted.history_]
    assert losses[-1] < 0.5 * losses[0]
    assert set(fitted.metapath_coverage_) == set(METAPATHS)
    assert all(0 < v <= 1 for v in fitted.metapath_coverage_.values())


def test_scoring_blocks_do_not_change_scores(fitted: MCRec) -> None:
    users = np.arange(R.shape[0])
    full = fitted.score(users)
    fitted.set_params(score_batch=7)
    try:
        np.testing.assert_allclose(fitted.score(users), full, rtol=1e-5, atol=1e-6)
    finally:
        fitted.set_params(score_batch=SMALL.get("score_batch", 4096))


def test_original_labels_rename_the_inputs_only() -> None:
    a = MCRec(epochs=2, **SMALL).fit(TRAIN)
    b = MCRec(epochs=2, metapath_labels="original", **SMALL).fit(TRAIN)
    users = np.arange(R.shape[0])
    np.testing.assert_array_equal(a.score(users), b.score(users))
    assert a.metapath_names_ == list(METAPATHS)
    assert b.metapath_names_ == list(ORIGINAL_LABELS) == ["umtm", "umum", "umtmum", "uuum"]
    pairs = (np.repeat(users, 3), np.tile(np.arange(3), len(users)))
    wa, wb = a.metapath_attention(*pairs), b.metapath_attention(*pairs)
    assert list(wb) == list(ORIGINAL_LABELS)
    np.testing.assert_allclose(list(wa.values()), list(wb.values()))
    assert abs(sum(wa.values()) - 1.0) < 1e-5


def test_network_matches_the_convolution_it_replaces() -> None:
    torch.manual_seed(0)
    n_users, n_items, n_nodes, f = 5, 6, 5 + 6 + 2 + 1, 8
    net = MCRecNet(n_users, n_items, n_nodes, f, latent_dim=4, n_metapaths=4, layers=[8],
                   conv_dim=6, att_dim=5)
    net.reset_parameters(torch.Generator().manual_seed(1))
    feats = torch.randn(n_nodes, f)
    feats[-1] = 0
    net.features.copy_(feats)
    net.eval()
    users = torch.tensor([0, 1, 4, 2])
    items = torch.tensor([5, 0, 3, 3])
    nodes = torch.randint(0, n_nodes, (4, 4, 5, 4))
    nodes[1, 2, 3:] = n_nodes - 1  # missing instances: the zero row everywhere
    with torch.no_grad():
        got = net(users, items, nodes)
        # Written form: Conv1D(kernel 4, valid) over the 4 node vectors = one linear map of the
        # flattened (position, feature) input, ReLU, max over instances, then the attentions.
        x = feats[nodes].reshape(4, 4, 5, 4 * f)
        w = net.conv_weight.reshape(4, 4 * f, 6)
        h = torch.relu(torch.einsum("bmpk,mkc->bmpc", x, w) + net.conv_bias[None, :, None])
        paths = h.max(dim=2).values
        u, i = net.user_latent(users), net.item_latent(items)
        att = torch.stack([net.att2(torch.relu(net.att1(torch.cat([u, i, paths[:, m]], 1))))
                           for m in range(4)], 1).relu().squeeze(-1).softmax(1)
        ctx = (att[..., None] * paths).sum(1)
        ua = u * torch.relu(net.user_att(torch.cat([u, ctx], 1))).softmax(1)
        ia = i * torch.relu(net.item_att(torch.cat([i, ctx], 1))).softmax(1)
        want = net.out(torch.relu(net.mlp[0](torch.cat([ua, ctx, ia], 1)))).squeeze(-1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_bernoulli_mask_is_seeded_and_has_the_rate() -> None:
    a = bernoulli_mask((200, 50), 0.5, np.random.default_rng(0))
    b = bernoulli_mask((200, 50), 0.5, np.random.default_rng(0))
    torch.testing.assert_close(a, b)
    assert set(a.unique().tolist()) == {0.0, 1.0}
    assert abs(float(a.mean()) - 0.5) < 0.02
    assert abs(float(bernoulli_mask((200, 50), 0.8, np.random.default_rng(1)).mean()) - 0.8) < 0.02


def test_paper_defaults() -> None:
    m = make_model("MCRec")
    assert (m.epochs, m.latent_dim, tuple(m.layers), m.learning_rate, m.batch_size,
            m.num_negatives, m.l2, m.dropout) == (100, 128, (512, 256, 128, 64), 1e-3, 256, 4,
                                                  1e-3, 0.5)
    assert (m.node_vectors, m.side_data, m.knn, m.threshold, m.metapath_labels) == (
        "released", "mcrec-ml-100k", 50, 0.7, "paths")
    assert MCRec.supports_candidates


def test_bad_hyper_parameters_fail_before_work() -> None:
    with pytest.raises(ValueError, match="node_vectors='released' reads the BPR files"):
        MCRec(epochs=1, **{**SMALL, "node_vectors": "released"}).fit(TRAIN)
    with pytest.raises(ValueError, match=r"metapath_labels='paper'.*allowed: one of"):
        MCRec(epochs=1, **{**SMALL, "metapath_labels": "paper"}).fit(TRAIN)
    with pytest.raises(ValueError, match="layers"):
        MCRec(epochs=1, **{**SMALL, "layers": ()}).fit(TRAIN)
    with pytest.raises(ValueError, match="item_features"):
        MCRec(epochs=1, **SMALL).fit(Interactions(TRAIN.matrix))


@pytest.mark.paper_data("mcrec-ml-100k", "movielens-100k")
def test_ml100k_with_the_released_vectors_and_correct_genres(paper_data: Path) -> None:
    from recforge.data.registry import load_dataset

    # Table 3's data carries the paper's buggy 2-column ICM; MCRec reads the 19 genres itself.
    split = load_dataset("mcrec-ml-100k", with_genres=True, genre_bug=True)
    assert split.train.item_features.shape[1] == 2
    # One epoch over every pair costs minutes on a loaded machine: keep the first 80 users'
    # ratings (all ids stay, so the released vectors still match; full-data coverage is
    # test_mcrec_metapaths' job).
    m0 = split.train.matrix
    keep = (np.arange(m0.shape[0]) < 80).astype(np.float32)
    train = split.train.with_matrix(sp.diags(keep) @ m0)
    m = MCRec(epochs=1, latent_dim=8, layers=(16,), batch_size=2048, n_threads=1).fit(train)
    n_users, n_items = train.shape
    assert m.module_.features.shape[0] == n_users + n_items + 19 + 1  # + the padding node
    assert 0 < m.metapath_coverage_["umtm"] < 80 / n_users
    users = np.array([0, 1, 2])
    items = sp.csr_matrix(np.ones((3, split.train.n_items), dtype=np.float32))
    cand = m.score_candidates(users, items)
    np.testing.assert_allclose(cand.reshape(3, -1), m.score(users), rtol=1e-5, atol=1e-6)

