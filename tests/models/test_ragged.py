"""Ragged attention (CMN's memory read): the segment softmax, the neighbourhood gather, and the
fused numba kernels against the torch ops."""

from __future__ import annotations

import os

import numpy as np
import pytest
import scipy.sparse as sp

if os.environ.get("CI"):
    import torch
else:
    torch = pytest.importorskip("torch")

from recforge.models.torch.ragged import (
    Neighbourhoods,
    RaggedBatch,
    ragged_attention,
    segment_softmax,
)


def _tiny(seed: int = 0, n_users: int = 12, n_items: int = 9) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = rng.random((n_users, n_items)) < 0.35
    dense[:, -1] = False  # one item without any training user
    return sp.csr_matrix(dense.astype(np.float32))


def test_segment_softmax_matches_a_row_softmax_per_segment() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(11, generator=gen) * 30  # large values: the max shift must hold
    segments = torch.tensor([0, 0, 0, 2, 2, 3, 3, 3, 3, 3, 5])
    got = segment_softmax(logits, segments, 6)
    for s in range(6):
        sel = segments == s
        if sel.any():
            torch.testing.assert_close(got[sel], torch.softmax(logits[sel], 0))
    assert torch.isfinite(got).all()


def test_gather_lists_each_items_training_users_and_drops_the_excluded_one() -> None:
    train = _tiny()
    nb = Neighbourhoods(train)
    items = torch.tensor([0, 3, 8, 3])
    users = torch.tensor([5, 1, 2, 99])
    rag = nb.gather(items, exclude=users)
    csc = train.tocsc()
    for row, (item, user) in enumerate(zip(items.tolist(), users.tolist(), strict=True)):
        expected = sorted(set(csc[:, item].indices.tolist()) - {user})
        assert sorted(rag.users[rag.segments == row].tolist()) == expected
    assert not (rag.segments == 2).any()  # item 8 has no training user
    counts = torch.bincount(rag.segments, minlength=4)
    assert rag.ptr.tolist() == [0, *torch.cumsum(counts, 0).tolist()]  # CSR pointer after the drop
    assert rag.n_segments == 4
    full = nb.gather(items)
    assert full.users.numel() == int(np.diff(csc.indptr)[items.numpy()].sum())


def test_fused_attention_has_the_torch_ops_values_and_gradients() -> None:
    gen = torch.Generator().manual_seed(1)
    lens = torch.tensor([3, 0, 5, 1, 2])  # an empty neighbourhood among them
    ptr = torch.cat([torch.zeros(1, dtype=torch.int64), torch.cumsum(lens, 0)])
    rag = RaggedBatch(users=torch.zeros(int(lens.sum()), dtype=torch.int64),
                      segments=torch.repeat_interleave(torch.arange(5), lens), ptr=ptr)
    for dtype in (torch.float64, torch.float32):
        q = (torch.randn(5, 4, generator=gen, dtype=dtype) * 3).requires_grad_()
        k = torch.randn(11, 4, generator=gen, dtype=dtype, requires_grad=True)
        v = torch.randn(11, 4, generator=gen, dtype=dtype, requires_grad=True)
        outs, grads = [], []
        for fused in (True, False):
            out = ragged_attention(q, k, v, rag, fused=fused)
            (out * torch.arange(20, dtype=dtype).view(5, 4)).sum().backward()
            outs.append(out.detach())
            grads.append([t.grad.clone() for t in (q, k, v)])  # type: ignore[union-attr]
            for t in (q, k, v):
                t.grad = None
        torch.testing.assert_close(outs[0], outs[1])
        assert outs[0][1].abs().max() == 0  # the empty neighbourhood reads nothing
        for a, b in zip(*grads, strict=True):
            torch.testing.assert_close(a, b)
    q64, k64, v64 = (t.detach().double().requires_grad_() for t in (q, k, v))
    assert torch.autograd.gradcheck(
        lambda a, b, c: ragged_attention(a, b, c, rag, fused=True), (q64, k64, v64))
