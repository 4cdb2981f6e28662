"""CMN: the ragged memory layer against a padded reference, and the model on tiny data."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.sparse as sp

if os.environ.get("CI"):
    import torch
else:
    torch = pytest.importorskip("torch")

from recforge.models.torch.cmn import CMNNet
from recforge.models.torch.gmf import GMFNet
from recforge.models.torch.ragged import Neighbourhoods


def _padded_memory(net: CMNNet, users: torch.Tensor, items: torch.Tensor,
                   neighbours: list[list[int]]) -> torch.Tensor:
    """The original's layout: pad every neighbourhood to the longest, mask, softmax per row."""
    width = max(1, max(len(n) for n in neighbours))
    ids = torch.zeros(len(neighbours), width, dtype=torch.long)
    mask = torch.zeros(len(neighbours), width, dtype=torch.bool)
    for row, n in enumerate(neighbours):
        ids[row, : len(n)] = torch.tensor(n, dtype=torch.long)
        mask[row, : len(n)] = True
    keys, values = net.user_memory(ids), net.user_output(ids)
    query = net.user_memory(users) + net.item_memory(items)
    out = torch.zeros_like(query)
    for hop in range(net.hops):
        if hop:
            query = torch.relu(net.hop_maps[hop - 1](query) + out)
        logits = (keys * query[:, None, :]).sum(-1).masked_fill(~mask, float("-inf"))
        attn = torch.softmax(logits, dim=1).nan_to_num(0.0)  # an all-masked row attends to nothing
        out = (attn[..., None] * values).sum(1)
    return out


def _tiny(seed: int = 0, n_users: int = 12, n_items: int = 9) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < 0.35
    dense[:, -1] = False  # one item without any training user
    return sp.csr_matrix(dense.astype(np.float32))


@pytest.mark.parametrize(("hops", "fused"), [(1, True), (3, True), (3, False)])
def test_ragged_memory_equals_the_padded_layout_in_value_and_gradient(hops: int,
                                                                      fused: bool) -> None:
    torch.manual_seed(0)
    train = _tiny()
    # float64: compare the layouts, not rounding
    net = CMNNet(12, 9, factors=6, hops=hops, fused=fused).double()
    with torch.no_grad():  # memories large enough that the attention is far from uniform
        for emb in (net.user_memory, net.user_output, net.item_memory):
            emb.weight.normal_(0.0, 1.0)
    users = torch.tensor([0, 1, 2, 3, 4, 5])
    items = torch.tensor([0, 1, 2, 8, 4, 1])
    nb = Neighbourhoods(train)
    rag = nb.gather(items, exclude=users)
    csc = train.tocsc()
    neighbours = [sorted(set(csc[:, i].indices.tolist()) - {u})
                  for u, i in zip(users.tolist(), items.tolist(), strict=True)]

    ragged = net.memory(users, items, rag)
    (ragged ** 2).sum().backward()
    grads = [p.grad.clone() for p in net.parameters() if p.grad is not None]
    net.zero_grad()
    padded = _padded_memory(net, users, items, neighbours)
    (padded ** 2).sum().backward()
    grads_ref = [p.grad.clone() for p in net.parameters() if p.grad is not None]

    torch.testing.assert_close(ragged, padded)
    assert ragged[3].abs().max() == 0  # item 8: empty neighbourhood, o = 0
    assert len(grads) == len(grads_ref)
    for g, ref in zip(grads, grads_ref, strict=True):
        torch.testing.assert_close(g, ref)


def test_memory_pretraining_copies_half_the_gmf_embeddings_and_not_the_output_memory() -> None:
    torch.manual_seed(0)
    gmf = GMFNet(12, 9, 6, variant="cmn")
    net = CMNNet(12, 9, factors=6, hops=2)
    before = net.user_output.weight.detach().clone()
    net.load_pretrained(gmf)
    torch.testing.assert_close(net.user_memory.weight, 0.5 * gmf.user.weight)
    torch.testing.assert_close(net.item_memory.weight, 0.5 * gmf.item.weight)
    torch.testing.assert_close(net.user_output.weight, before)


def test_l2_covers_the_dense_and_hop_kernels_only() -> None:
    net = CMNNet(12, 9, factors=4, hops=3)
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(1.0)
    # two 4x4 hop kernels + a 4x8 dense kernel + a 1x4 output kernel, halved; no biases.
    assert float(net.l2_weights().detach()) == pytest.approx(0.5 * (16 + 16 + 32 + 4))


def test_hops_must_be_positive() -> None:
    with pytest.raises(ValueError, match="hops"):
        CMNNet(3, 3, factors=2, hops=0)


# ----------------------------------------------------------------------------- TF optimiser
def test_tf_rmsprop_follows_the_tensorflow_update_rule() -> None:
    from recforge.models.torch.optim import TFRMSprop

    theta = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    opt = TFRMSprop([theta], lr=0.1, decay=0.9, momentum=0.5, eps=1e-10)
    ms, mom, ref = np.ones(2), np.zeros(2), np.array([1.0, -2.0])
    for grad in ([0.5, -1.0], [2.0, 0.0]):
        theta.grad = torch.tensor(grad)
        opt.step()
        g = np.array(grad)
        ms = 0.9 * ms + 0.1 * g * g  # the mean of squares starts at 1, not 0
        mom = 0.5 * mom + 0.1 * g / np.sqrt(ms + 1e-10)
        ref = ref - mom
        np.testing.assert_allclose(theta.detach().numpy(), ref, rtol=1e-6)


def test_tf_rmsprop_on_a_sparse_gradient_touches_only_the_batch_rows() -> None:
    from recforge.models.torch.optim import TFRMSprop

    torch.manual_seed(0)
    sparse = torch.nn.Embedding(6, 3, sparse=True)
    dense = torch.nn.Embedding(6, 3)
    dense.weight.data.copy_(sparse.weight.data)
    opt_s = TFRMSprop(sparse.parameters(), lr=0.05, momentum=0.9)
    opt_d = TFRMSprop(dense.parameters(), lr=0.05, momentum=0.9)
    rows = torch.tensor([1, 4, 1])
    for _ in range(2):  # rows 1 and 4 both steps: sparse and dense agree there
        for emb, opt in ((sparse, opt_s), (dense, opt_d)):
            opt.zero_grad()
            (emb(rows) ** 2).sum().backward()
            opt.step()
    torch.testing.assert_close(sparse.weight[[1, 4]], dense.weight[[1, 4]])
    before = sparse.weight.detach().clone()
    state = {k: v.clone() for k, v in opt_s.state[sparse.weight].items()}
    opt_s.zero_grad()
    (sparse(torch.tensor([2])) ** 2).sum().backward()
    opt_s.step()
    # rows 1 and 4 are absent now: no momentum step and no decay of their mean of squares
    torch.testing.assert_close(sparse.weight[[0, 1, 3, 4, 5]], before[[0, 1, 3, 4, 5]])
    torch.testing.assert_close(opt_s.state[sparse.weight]["ms"][[1, 4]], state["ms"][[1, 4]])
    assert not torch.equal(sparse.weight[2], before[2])


def test_tf_adam_follows_the_tensorflow_update_and_is_lazy_on_sparse_rows() -> None:
    from recforge.models.torch.optim import TFAdam

    theta = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = TFAdam([theta], lr=0.1, eps=1e-8)
    m, v, ref = np.zeros(2), np.zeros(2), np.array([1.0, -2.0])
    for t, grad in enumerate(([0.5, -1.0], [2.0, 0.0], [0.1, 0.3]), start=1):
        theta.grad = torch.tensor(grad, dtype=torch.float64)
        opt.step()
        g = np.array(grad)
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g * g
        ref = ref - 0.1 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t) * m / (np.sqrt(v) + 1e-8)
        np.testing.assert_allclose(theta.detach().numpy(), ref, rtol=1e-12)
    emb = torch.nn.Embedding(5, 2, sparse=True)
    opt = TFAdam(emb.parameters(), lr=0.1)
    (emb(torch.tensor([0, 3])) ** 2).sum().backward()
    opt.step()
    before = emb.weight.detach().clone()
    moments = opt.state[emb.weight]["m"].clone()
    opt.zero_grad()
    (emb(torch.tensor([1])) ** 2).sum().backward()
    opt.step()
    # rows 0 and 3 keep their moments and do not move (TF-1's dense Adam would move them)
    torch.testing.assert_close(emb.weight[[0, 2, 3, 4]], before[[0, 2, 3, 4]])
    torch.testing.assert_close(opt.state[emb.weight]["m"][[0, 3]], moments[[0, 3]])
    assert not torch.equal(emb.weight[1], before[1])


def test_tf_adam_dense_on_sparse_rows_equals_adam_on_the_dense_gradient() -> None:
    """lazy=False is TF-1's AdamOptimizer: every row's moments decay, every row moves."""
    from recforge.models.torch.optim import TFAdam

    torch.manual_seed(0)
    sparse = torch.nn.Embedding(6, 3, sparse=True).double()
    dense = torch.nn.Embedding(6, 3).double()
    dense.weight.data.copy_(sparse.weight.data)
    opt_s = TFAdam(sparse.parameters(), lr=0.05, lazy=False, clip_norm=5.0)
    opt_d = TFAdam(dense.parameters(), lr=0.05, clip_norm=5.0)
    lazy = torch.nn.Embedding(6, 3, sparse=True).double()
    lazy.weight.data.copy_(sparse.weight.data)
    opt_l = TFAdam(lazy.parameters(), lr=0.05)
    for rows in ([1, 4, 1], [2], [0, 5], [2]):  # duplicates are summed before the moments
        idx = torch.tensor(rows)
        for emb, opt in ((sparse, opt_s), (dense, opt_d), (lazy, opt_l)):
            opt.zero_grad()
            (emb(idx) ** 2).sum().backward()
            opt.step()
    torch.testing.assert_close(sparse.weight, dense.weight, rtol=1e-12, atol=1e-12)
    # row 3 never had a gradient: it stays put under both; rows 1 and 4 kept moving after their
    # one step under the dense rule, and stopped under the lazy one
    torch.testing.assert_close(sparse.weight[3], lazy.weight[3])
    assert not torch.allclose(sparse.weight[[1, 4]], lazy.weight[[1, 4]])


def test_clip_by_norm_clips_each_tensor_on_its_own() -> None:
    from recforge.models.torch.optim import clip_by_norm_

    a = torch.nn.Parameter(torch.zeros(2))
    b = torch.nn.Parameter(torch.zeros(2))
    emb = torch.nn.Embedding(4, 2, sparse=True)
    a.grad, b.grad = torch.tensor([3.0, 4.0]), torch.tensor([0.3, 0.4])
    (emb(torch.tensor([0, 0, 2])).sum() * 10).backward()
    clip_by_norm_([a, b, emb.weight], 1.0)
    torch.testing.assert_close(a.grad, torch.tensor([0.6, 0.8]))
    torch.testing.assert_close(b.grad, torch.tensor([0.3, 0.4]))  # under the limit: unchanged
    g = emb.weight.grad.coalesce()
    assert float(torch.linalg.vector_norm(g.values())) == pytest.approx(1.0)
    assert g.to_dense()[0, 0] == pytest.approx(2 * g.to_dense()[2, 0])


# ----------------------------------------------------------------------------- the model
from tests.models.neural_data import ScriptedValidation, planted, top_unseen_in_group  # noqa: E402

from recforge.data.interactions import Interactions  # noqa: E402
from recforge.models.iterative import EarlyStopping  # noqa: E402
from recforge.models.torch.cmn import CMN  # noqa: E402
from recforge.models.torch.pairs import negative_sampler  # noqa: E402


def _cmn(**overrides: object) -> CMN:
    params = {"factors": 8, "hops": 2, "epochs": 2, "epochs_gmf": 1, "batch_size": 64,
              "seed": 3, "n_threads": 1}
    return CMN(**{**params, **overrides})  # type: ignore[arg-type]


def test_planted_preference_is_ranked_first() -> None:
    data = planted()
    model = _cmn(epochs=3, epochs_gmf=3, learning_rate=1e-2).fit(data.train)
    assert top_unseen_in_group(model, data) == 1.0


def test_same_seed_same_scores_and_another_seed_other_scores() -> None:
    data = planted()
    users = np.arange(data.train.n_users)
    a, b, c = (_cmn(seed=s).fit(data.train).score(users) for s in (3, 3, 4))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_candidate_scores_equal_full_scores_and_chunking_changes_nothing() -> None:
    data = planted()
    model = _cmn().fit(data.train)
    users = np.arange(data.train.n_users)
    full = model.score(users)
    cand = data.unseen
    rows, cols = cand.nonzero()
    np.testing.assert_allclose(model.score_candidates(users, cand), full[rows, cols],
                               rtol=1e-5, atol=1e-6)
    model.score_budget = 50  # a few pairs (with their neighbourhoods) per forward pass
    np.testing.assert_allclose(model.score(users), full, rtol=1e-5, atol=1e-6)


def test_early_stopping_on_validation_keeps_the_best_state_and_gmf_stops_on_its_loss() -> None:
    data = planted()
    script = ScriptedValidation({"CMN": [0.2, 0.6, 0.5, 0.4]})
    model = _cmn(epochs=20, epochs_gmf=6)
    model.fit(data.train, validation=script,
              early_stopping=EarlyStopping(validate_every=2, patience=2))
    assert {s[0] for s in script.seen} == {"CMN"}  # the GMF is never validated on HR
    assert model.epochs_best_ == 4 and model.epochs_run_ == 8
    np.testing.assert_array_equal(model.score(np.arange(data.train.n_users)),
                                  script.scores_at("CMN", 0.6))
    gmf = model.pretrain_history_["GMF"]
    checked = [h for h in gmf if h["validation"] is not None]
    assert [h["epoch"] for h in checked] == [2, 4, 6]
    assert all(h["validation"] == pytest.approx(-h["loss"]) for h in checked)  # its loss
    best = max(checked, key=lambda h: h["validation"])["epoch"]
    assert model.epochs_gmf_best_ == best


def test_the_target_user_is_left_out_of_its_own_neighbourhood_unless_asked() -> None:
    data = planted()
    users = np.arange(data.train.n_users)
    u_pos, i_pos = data.train.matrix.nonzero()  # training pairs: u is in N(i)
    for include in (False, True):
        model = _cmn(include_target_user=include).fit(data.train)
        u, i = torch.from_numpy(u_pos.astype(np.int64)), torch.from_numpy(i_pos.astype(np.int64))
        with torch.no_grad():
            rag = model.neighbourhoods.gather(i, exclude=None if include else u)
            expected = model.module_(u, i, rag).numpy()
        got = model.score(users)[u_pos, i_pos]
        np.testing.assert_allclose(got, expected, rtol=1e-5)
        every = int(np.diff(data.train.matrix.tocsc().indptr)[i_pos].sum())
        assert rag.users.numel() == (every if include else every - u_pos.size)


def test_negatives_only_among_items_with_users_is_an_option() -> None:
    data = planted()
    users, items = data.train.matrix.nonzero()
    keep = items != 5  # item 5 loses all its training users
    train = Interactions.from_arrays(users[keep], items[keep], shape=data.train.shape)
    draws = {flag: negative_sampler(train, np.random.default_rng(0), flag).pairwise(20)[2]
             for flag in (False, True)}
    assert 5 in set(draws[False].tolist())
    assert 5 not in set(draws[True].tolist())


def test_bad_hyper_parameters_are_named_before_training() -> None:
    for field, value in (("hops", 0), ("factors", 2.5), ("learning_rate", 0.0), ("reg_l2", -1)):
        with pytest.raises(ValueError, match=field):
            _cmn(**{field: value}).fit(planted().train)


def _sparse_train(n_users: int = 400, n_items: int = 600, per_user: int = 4) -> Interactions:
    """Few items per user over many rows: most embedding rows sit out most steps."""
    rng = np.random.default_rng(0)
    group = np.arange(n_items) % 2
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(np.flatnonzero(group == u % 2), per_user, replace=False)
                            for u in range(n_users)])
    return Interactions.from_arrays(users, items, shape=(n_users, n_items))


def test_gmf_dense_adam_is_the_default_and_grows_rows_faster_than_lazy_adam() -> None:
    """Dense (textbook, TF-1) Adam keeps moving rows between their batches; lazy does not."""
    from recforge.models.torch.gmf import GMF

    train = _sparse_train()
    fits = {}
    for adam in ("dense", "lazy"):
        gmf = GMF(factors=8, variant="cmn", epochs=3, batch_size=32, sparse_adam=adam, seed=0,
                  n_threads=1)
        fits[adam] = gmf.fit(train)
    assert GMF().sparse_adam == "dense" and CMN().gmf_adam == "dense"
    norms = {a: float(g.module_.user.weight.detach().norm(dim=1).mean()) for a, g in fits.items()}
    losses = {a: g.history_[-1].loss for a, g in fits.items()}
    assert norms["dense"] > 1.5 * norms["lazy"]  # 0.35 against 0.18 here
    assert losses["dense"] < losses["lazy"] - 0.01  # 0.664 against 0.685


def test_cmn_hands_its_gmf_adam_to_the_pre_training_and_names_a_bad_one() -> None:
    data = planted()
    gmf_losses = [
        [h["loss"] for h in _cmn(gmf_adam=a).fit(data.train).pretrain_history_["GMF"]]
        for a in ("dense", "lazy")
    ]
    assert gmf_losses[0] != gmf_losses[1]
    with pytest.raises(ValueError, match="gmf_adam"):
        _cmn(gmf_adam="sparse").fit(data.train)


def test_paper_l2_collapses_after_a_short_gmf_pre_training_and_learns_after_a_long_one() -> None:
    """The table2 finding on tiny data: with reg_l2=0.1 and memories 0.5x the GMF embeddings,
    CMN's output layer is driven to zero (chance ranking) unless the GMF trained long enough."""
    data = planted()
    short, long = (_cmn(epochs=4, epochs_gmf=g).fit(data.train) for g in (1, 20))
    norms = [float(m.module_.out.weight.detach().norm()) for m in (short, long)]
    assert norms[0] < 0.1 < 1.0 < norms[1]
    assert top_unseen_in_group(short, data) <= 0.75  # two groups: chance is 0.5
    assert top_unseen_in_group(long, data) == 1.0
    assert long.history_[-1].loss < 0.68 < short.history_[-1].loss  # ln 2 = 0.693: constant scores


def test_cached_gmf_pretraining_gives_the_same_model(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RECFORGE_CACHE", str(tmp_path))
    data = planted()
    users = np.arange(data.train.n_users)
    plain = _cmn(epochs_gmf=3).fit(data.train)
    first = _cmn(epochs_gmf=3, cache_pretraining=True).fit(data.train)
    assert not plain.pretrain_cached_ and not first.pretrain_cached_
    store = tmp_path / "pretrained" / "GMF"
    assert len(list(store.iterdir())) == 1
    lines: list[str] = []
    second = _cmn(epochs_gmf=3, cache_pretraining=True).fit(data.train, progress=lines.append)
    assert second.pretrain_cached_
    assert any("GMF pre-training: loaded from the cache" in ln for ln in lines)
    assert not any("GMF pre-training" in ln and "epoch" in ln and "loaded" not in ln
                   for ln in lines)  # nothing was trained again
    assert second.epochs_gmf_best_ == first.epochs_gmf_best_
    assert second.pretrain_history_ == first.pretrain_history_
    np.testing.assert_array_equal(plain.score(users), first.score(users))
    np.testing.assert_array_equal(first.score(users), second.score(users))
    # another seed, another stopping rule or other data: each its own entry
    _cmn(epochs_gmf=3, cache_pretraining=True, seed=9).fit(data.train)
    _cmn(epochs_gmf=2, cache_pretraining=True).fit(data.train)
    m = data.train.matrix.copy()
    m.data[0] = 0.0  # one training pair less
    m.eliminate_zeros()
    other = Interactions(m, data.train.user_ids, data.train.item_ids)
    _cmn(epochs_gmf=3, cache_pretraining=True).fit(other)
    assert len(list(store.iterdir())) == 4
    assert not [p for p in store.iterdir() if p.name.startswith(".tmp-")]
