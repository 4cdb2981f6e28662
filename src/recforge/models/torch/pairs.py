"""Models whose network scores (user, item) pairs: NCF's GMF/MLP/NeuMF, CMN (and MCRec).

Such a network has no user × item matrix to read scores from, so every score is a forward pass.
:class:`PairScoringRecommender` gives them

- the candidate-only path (``supports_candidates``): the evaluator's candidate-set protocols
  (e.g. 1 test item + 100 negatives) score only those pairs, ~100× fewer than all items;
- full-item scoring in chunks of at most ``score_budget`` cost units per forward pass (a pair
  costs 1 unless the model says otherwise, e.g. CMN: 1 + the item's neighbourhood size), so
  memory stays bounded whatever the number of items;

and the two training epochs these models share: point-wise binary cross-entropy over every
positive plus sampled negatives (NCF) and BPR over (user, positive, negative) triples (CMN).
Negatives come from the shared :class:`~recforge.models.torch.sampling.NegativeSampler`.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, Protocol

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models.torch._require import TORCH_EXTRA_MESSAGE, MissingTorchError
from recforge.models.torch.base import TorchRecommender, thread_limits
from recforge.models.torch.optim import clip_by_norm_
from recforge.models.torch.sampling import NegativeSampler

try:
    import torch
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover - exercised by the no-torch subprocess test
    raise MissingTorchError(TORCH_EXTRA_MESSAGE) from exc

__all__ = [
    "PairScoringRecommender",
    "Stepper",
    "bpr_epoch",
    "bpr_loss",
    "check_choice",
    "make_optimizer",
    "negative_sampler",
    "pointwise_epoch",
]

Penalty = Callable[[], torch.Tensor | None]


class Stepper(Protocol):
    """What the epochs need of an optimiser (a torch optimiser or a TF-form one from
    :mod:`recforge.models.torch.optim`)."""

    def zero_grad(self, set_to_none: bool = True) -> None: ...

    def step(self) -> Any: ...


def check_choice(model: Any, field: str, allowed: Iterable[Any]) -> None:
    """Raise a ValueError naming the model, the field, the value and the allowed values."""
    allowed = tuple(allowed)
    value = getattr(model, field)
    if value not in allowed:
        raise ValueError(f"{type(model).__name__}: {field} must be one of {allowed}, got {value!r}")


def make_optimizer(name: str, params: Iterable[torch.Tensor], lr: float) -> torch.optim.Optimizer:
    """``"adam"`` (Keras/TF defaults are torch's up to ε) or ``"sgd"`` (plain, no momentum)."""
    if name == "adam":
        # fused: one kernel per tensor instead of ~8 operators; the same arithmetic (same
        # scores), and Adam was 57 % of a NeuMF step on CPU (benchmarks/README.md)
        return torch.optim.Adam(params, lr=lr, fused=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise ValueError(f"optimizer must be 'adam' or 'sgd', got {name!r}")


def negative_sampler(train: Interactions, rng: np.random.Generator,
                     with_users_only: bool) -> NegativeSampler:
    """Uniform negatives outside each user's row; optionally only items with a training user."""
    allowed = None
    if with_users_only:
        allowed = np.asarray(train.matrix.getnnz(axis=0) > 0).ravel()
    return NegativeSampler(train, rng, allowed=allowed)


def bpr_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Mean of −log σ(s⁺ − s⁻) (the originals add 1e-12 inside the log; logsigmoid is exact)."""
    return -F.logsigmoid(positive - negative).mean()


def _shuffled_batches(arrays: Sequence[np.ndarray], batch_size: int,
                      rng: np.random.Generator, device: torch.device
                      ) -> Iterator[tuple[torch.Tensor, ...]]:
    """The epoch's instances in the order of :func:`minibatches` (the same one permutation),
    permuted once in numpy and moved to ``device`` once: each step reads slices (views) of the
    shuffled tensors instead of gathering its rows (three index operations per step)."""
    n = int(arrays[0].size)
    order = rng.permutation(n)  # the draw minibatches(n, batch_size, rng) makes
    tensors = [torch.from_numpy(np.ascontiguousarray(a[order])).to(device) for a in arrays]
    for start in range(0, n, batch_size):
        yield tuple(t[start : start + batch_size] for t in tensors)


def _step(loss: torch.Tensor, penalty: Penalty | None, opt: Stepper,
          params: Sequence[torch.Tensor], clip: float | None) -> torch.Tensor:
    pen = penalty() if penalty is not None else None
    if pen is not None:
        loss = loss + pen
    opt.zero_grad(set_to_none=True)
    loss.backward()
    if clip is not None:
        clip_by_norm_(params, clip)
    opt.step()
    return loss.detach()


def pointwise_epoch(
    net: torch.nn.Module,
    opt: Stepper,
    sampler: NegativeSampler,
    n_negatives: int,
    batch_size: int,
    rng: np.random.Generator,
    device: torch.device,
    penalty: Penalty | None = None,
) -> float:
    """One NCF epoch: every positive (label 1) and ``n_negatives`` fresh negatives each (label 0),
    shuffled into minibatches; binary cross-entropy on the logits. Returns the mean batch loss."""
    params = [p for p in net.parameters() if p.requires_grad]
    losses = [
        _step(F.binary_cross_entropy_with_logits(net(u, i), y), penalty, opt, params, None)
        for u, i, y in _shuffled_batches(sampler.pointwise(n_negatives), batch_size, rng, device)
    ]
    return float(torch.stack(losses).mean())


def bpr_epoch(
    score: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    params: list[torch.Tensor],
    opt: Stepper,
    sampler: NegativeSampler,
    n_negatives: int,
    batch_size: int,
    rng: np.random.Generator,
    device: torch.device,
    penalty: Penalty | None = None,
    clip: float | None = None,
) -> float:
    """One BPR epoch over ``n_negatives`` (user, positive, negative) triples per training pair.

    ``score(users, positives, negatives)`` returns the two score vectors; ``clip`` rescales
    every gradient tensor to at most that norm. Returns the mean batch loss (penalty included).
    """
    losses = [
        _step(bpr_loss(*score(u, p, n)), penalty, opt, params, clip)
        for u, p, n in _shuffled_batches(sampler.pairwise(n_negatives), batch_size, rng, device)
    ]
    return float(torch.stack(losses).mean())


def _chunks(costs: np.ndarray, budget: int) -> Iterator[slice]:
    """Consecutive slices whose summed cost stays within ``budget`` (at least one item each)."""
    ends = np.cumsum(costs, dtype=np.int64)
    start, base = 0, 0
    while start < costs.size:
        stop = max(start + 1, int(np.searchsorted(ends, base + budget, side="right")))
        yield slice(start, stop)
        base = int(ends[stop - 1])
        start = stop


class PairScoringRecommender(TorchRecommender):
    """Base for networks that score pairs (see the module docstring).

    A subclass implements ``_score_pairs(users, items) -> (n,)`` (called in eval mode under
    ``torch.inference_mode``) and may override ``_pair_costs(items)``.
    """

    supports_candidates: ClassVar[bool] = True
    #: cost units (pairs, or pairs + neighbours) per forward pass when scoring.
    score_budget: ClassVar[int] = 1 << 18

    @abstractmethod
    def _score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """One score per (users[k], items[k])."""

    def _pair_costs(self, items: np.ndarray) -> np.ndarray:
        """Relative cost of scoring each pair (memory of its forward pass); 1 by default."""
        return np.ones(items.size, dtype=np.int64)

    def _score_flat(self, users: np.ndarray, items: np.ndarray) -> torch.Tensor:
        out = torch.empty(users.size, dtype=torch.float32, device=self.device_)
        u = torch.from_numpy(np.ascontiguousarray(users, dtype=np.int64)).to(self.device_)
        i = torch.from_numpy(np.ascontiguousarray(items, dtype=np.int64)).to(self.device_)
        for sl in _chunks(self._pair_costs(items), self.score_budget):
            out[sl] = self._score_pairs(u[sl], i[sl]).to(torch.float32)
        return out

    def _predict(self, users: torch.Tensor) -> torch.Tensor:
        n = self.n_items_
        u = users.cpu().numpy()
        flat = self._score_flat(np.repeat(u, n), np.tile(np.arange(n, dtype=np.int64), u.size))
        return flat.view(u.size, n)

    def _score_candidates(self, users: np.ndarray, items: sp.csr_matrix) -> np.ndarray:
        rows = np.repeat(np.arange(users.size), np.diff(items.indptr))
        with thread_limits(self.n_threads), torch.inference_mode():
            self.module_.eval()
            out = self._score_flat(np.asarray(users, dtype=np.int64)[rows],
                                   np.asarray(items.indices, dtype=np.int64))
        return out.cpu().numpy()
