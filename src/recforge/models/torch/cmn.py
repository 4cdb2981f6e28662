"""CMN, the Collaborative Memory Network (Ebesu, Shen & Fang, SIGIR'18), with ragged neighbourhoods.

The neighbourhood of item i is the set of its training users N(i). The original pads every
neighbourhood in a batch to the longest one (up to 311 on CiteULike-a, ~11× the real work);
here a batch's neighbourhoods are one flat list of user ids with a segment id per entry, and the
attention is a segment softmax (``scatter_reduce`` max, ``index_add`` sums), so the cost is the
sum of the true lengths.

Network, per (u, i) with m = user memory (keys), c = user output memory (values), e = item memory:

- hop 1: q = m_u + e_i; p_v = softmax_{v ∈ N(i)}(q · m_v); o = Σ_v p_v c_v;
- hop k > 1: q ← ReLU(W_k q + b_k + o) (b_k starts at 1 so that the ReLU is active), then the
  same attention with the new q;
- score: w · ReLU(U [m_u ⊙ e_i ; o]) (no bias on w).

An empty neighbourhood gives o = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from recforge.models.torch.gmf import GMF, init_embedding

__all__ = ["CMNNet", "Neighbourhoods", "RaggedBatch", "segment_softmax"]


def segment_softmax(logits: torch.Tensor, segments: torch.Tensor, n_segments: int) -> torch.Tensor:
    """Softmax of ``logits`` within each segment (``segments[j]`` is entry j's segment id).

    The per-segment maximum is subtracted for stability; it is detached because a softmax does
    not depend on a shift, so no gradient has to flow through the max.
    """
    fill = torch.full((n_segments,), float("-inf"), dtype=logits.dtype, device=logits.device)
    top = fill.scatter_reduce(0, segments, logits.detach(), reduce="amax", include_self=True)
    expd = torch.exp(logits - top[segments])
    denom = torch.zeros(n_segments, dtype=logits.dtype, device=logits.device)
    denom = denom.index_add(0, segments, expd)
    return expd / denom[segments]


@dataclass(frozen=True)
class RaggedBatch:
    """The neighbourhoods of a batch of pairs as one flat list.

    ``users[j]`` is the j-th neighbour, ``segments[j]`` the pair (row of the batch) it belongs to.
    """

    users: torch.Tensor
    segments: torch.Tensor
    n_segments: int


class Neighbourhoods:
    """Item → training users (CSR on the device), gathered for a batch without Python loops."""

    def __init__(self, train: sp.csr_matrix, device: torch.device | str = "cpu") -> None:
        by_item = sp.csc_matrix(train, copy=True)
        by_item.sum_duplicates()  # also sorts the user ids of each item
        self.n_items = int(by_item.shape[1])
        self.indptr = torch.as_tensor(by_item.indptr.astype(np.int64), device=device)
        self.indices = torch.as_tensor(by_item.indices.astype(np.int64), device=device)
        self.lengths = self.indptr[1:] - self.indptr[:-1]

    def gather(self, items: torch.Tensor, exclude: torch.Tensor | None = None) -> RaggedBatch:
        """Neighbours of ``items``; ``exclude[b]`` (a user id per pair) is dropped from row b."""
        start = self.indptr[items]
        lens = self.lengths[items]
        rows = torch.arange(items.numel(), device=items.device)
        segments = torch.repeat_interleave(rows, lens)
        first = torch.repeat_interleave(torch.cumsum(lens, 0) - lens, lens)
        offsets = torch.arange(segments.numel(), device=items.device) - first
        users = self.indices[start[segments] + offsets]
        if exclude is not None:
            keep = users != exclude[segments]
            users, segments = users[keep], segments[keep]
        return RaggedBatch(users=users, segments=segments, n_segments=int(items.numel()))


class CMNNet(nn.Module):
    """The memory network. ``forward(users, items, ragged)`` gives one score per pair.

    Args:
        n_users, n_items: table sizes.
        factors: memory size d.
        hops: number of memory hops (the paper's runs: 3).
    """

    def __init__(self, n_users: int, n_items: int, factors: int, hops: int) -> None:
        super().__init__()
        if hops < 1:
            raise ValueError(f"hops must be >= 1, got {hops}")
        self.user_memory = nn.Embedding(n_users, factors)
        self.user_output = nn.Embedding(n_users, factors)
        self.item_memory = nn.Embedding(n_items, factors)
        for emb in (self.user_memory, self.user_output, self.item_memory):
            init_embedding(emb.weight, "truncated_normal", 0.01)
        maps = [nn.Linear(factors, factors) for _ in range(hops - 1)]
        for lin in maps:
            # TF's variance_scaling_initializer default: truncated normal, fan-in, scale 2.
            std = float(np.sqrt(2.0 / factors))
            nn.init.trunc_normal_(lin.weight, 0.0, std, -2.0 * std, 2.0 * std)
            nn.init.constant_(lin.bias, 1.0)
        self.hop_maps = nn.ModuleList(maps)
        self.dense = nn.Linear(2 * factors, factors)
        nn.init.xavier_uniform_(self.dense.weight)
        nn.init.zeros_(self.dense.bias)
        self.out = nn.Linear(factors, 1, bias=False)
        nn.init.xavier_uniform_(self.out.weight)

    @property
    def hops(self) -> int:
        return len(self.hop_maps) + 1

    def memory(self, users: torch.Tensor, items: torch.Tensor, ragged: RaggedBatch) -> torch.Tensor:
        """The last hop's output o, shape (batch, d)."""
        query = self.user_memory(users) + self.item_memory(items)
        keys = self.user_memory(ragged.users)
        values = self.user_output(ragged.users)
        seg = ragged.segments
        out = torch.zeros_like(query)
        for hop in range(self.hops):
            if hop:
                query = torch.relu(self.hop_maps[hop - 1](query) + out)
            attn = segment_softmax((query[seg] * keys).sum(-1), seg, ragged.n_segments)
            out = torch.zeros_like(query).index_add(0, seg, attn.unsqueeze(-1) * values)
        return out

    def forward(
        self, users: torch.Tensor, items: torch.Tensor, ragged: RaggedBatch
    ) -> torch.Tensor:
        """Scores, shape (batch,)."""
        product = self.user_memory(users) * self.item_memory(items)
        hidden = torch.relu(self.dense(torch.cat([product, self.memory(users, items, ragged)], -1)))
        score: torch.Tensor = self.out(hidden).squeeze(-1)
        return score

    def l2_weights(self) -> torch.Tensor:
        """½ Σ w² over the hop, dense and output kernels (TF's ``l2_loss``; embeddings excluded)."""
        kernels = [self.dense.weight, self.out.weight]
        kernels += [p for name, p in self.hop_maps.named_parameters() if name.endswith("weight")]
        return 0.5 * torch.stack([(w * w).sum() for w in kernels]).sum()

    @torch.no_grad()
    def load_pretrained(self, gmf: GMF, scale: float = 0.5) -> None:
        """User and item memories := ``scale`` × the GMF embeddings (the output memory is kept)."""
        self.user_memory.weight.copy_(scale * gmf.user.weight)
        self.item_memory.weight.copy_(scale * gmf.item.weight)
