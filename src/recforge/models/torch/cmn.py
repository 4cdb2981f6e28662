"""CMN, the Collaborative Memory Network (Ebesu, Shen & Fang, SIGIR'18), with ragged neighbourhoods.

The neighbourhood N(i) of item i is its set of training users. The original pads every
neighbourhood of a batch to the longest one (up to 311 users on CiteULike-a, ~11× the real
work); here a batch's neighbourhoods are one flat list of user ids with a segment id per entry,
and the attention is a segment softmax (:mod:`recforge.models.torch.ragged`), so the cost is
the sum of the true lengths.

Network, per (u, i), with m = user memory (keys), c = user output memory (values), e = item
memory, all truncated N(0, 0.01²):

- hop 1: q = m_u + e_i; p_v = softmax_{v ∈ N(i)}(q · m_v); o = Σ_v p_v c_v;
- hop k > 1: q ← ReLU(W_k q + b_k + o) (b_k starts at 1 so that the ReLU fires), then the same
  attention with the new q;
- score: w · ReLU(U [m_u ⊙ e_i ; o] + b) (w without bias).

An empty neighbourhood gives o = 0. Training (the paper's settings are the defaults): BPR over 4
(user, positive, negative) triples per training pair, L2 ½λ·Σw² on the hop/dense/output
kernels (λ = 0.1), every gradient tensor clipped to norm 5, RMSProp with TensorFlow 1
semantics (lr 1e-3, decay 0.9, momentum 0.9; :class:`~recforge.models.torch.optim.TFRMSprop`)
with sparse embedding gradients, after a pair-wise GMF pre-training (Adam, early-stopped on its
training loss) whose embeddings, halved, start the user and item memories.

The original's quirks, as options (default: the corrected behaviour):

- ``include_target_user``: in training, N(pos) contains the target user u itself (u rated pos),
  while N(neg) and every test item's neighbourhood never do. The model can learn "my own memory
  in the neighbourhood means positive", a signal that is absent at test time: a train/test
  mismatch, treated as a bug. Off by default (u is dropped from the neighbourhoods it scores).
- ``negatives_with_users_only``: negatives are drawn only among items with at least one training
  user (the original needed it to avoid empty neighbourhoods). Off by default: any item outside
  the user's row, as BPR defines it; empty neighbourhoods are handled (o = 0).

Known sensitivity: with the paper's L2 (0.1) whether CMN learns depends on the size of the
pre-trained memories. On CiteULike-a the paper's 0.5x initialisation learns after the paper's
full 100-epoch GMF pre-training but collapses to a constant score (loss ln 2) within ~200 steps
after a short one (lazy Adam: 2-60 epochs; dense: 2-5). Dense Adam (``gmf_adam="dense"``, the
default, as the original's TF-1 ``AdamOptimizer``) grows the GMF embeddings 1.4-1.8x faster per
epoch than lazy Adam. A capped run (which caps the GMF pre-training too) says nothing about CMN
(evidence in docs/RESULTS.md, table2).

Not replicated: for an item without training users the original fills the neighbourhood with
the item id read as a user id (training) or with the target user (scoring).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from recforge.data.interactions import Interactions
from recforge.models.iterative import EarlyStopping, TrainingRun
from recforge.models.torch import pretrain_cache
from recforge.models.torch._require import TORCH_EXTRA_MESSAGE, MissingTorchError
from recforge.models.torch.gmf import GMF, GMFNet, SparseAdam, init_embedding
from recforge.models.torch.optim import TFRMSprop
from recforge.models.torch.pairs import (
    PairScoringRecommender,
    bpr_epoch,
    check_choice,
    negative_sampler,
)
from recforge.models.torch.ragged import Neighbourhoods, RaggedBatch, ragged_attention

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised by the no-torch subprocess test
    raise MissingTorchError(TORCH_EXTRA_MESSAGE) from exc

__all__ = ["CMN", "CMNNet"]


def _variance_scaling_(linear: nn.Linear) -> None:
    """TF-contrib ``variance_scaling_initializer(2.0, 'FAN_IN', uniform=False)``: truncated
    normal with std sqrt(1.3 · 2 / fan_in) (1.3 compensates the truncation at 2 std)."""
    std = float(np.sqrt(1.3 * 2.0 / linear.in_features))
    nn.init.trunc_normal_(linear.weight, 0.0, std, -2.0 * std, 2.0 * std)


class CMNNet(nn.Module):
    """The memory network. ``forward(users, items, ragged)`` gives one score per pair.

    Args:
        n_users, n_items: table sizes.
        factors: memory size d.
        hops: number of memory hops (the paper's runs: 3).
        sparse: sparse embedding gradients (for :class:`TFRMSprop`'s per-row updates).
        fused: the memory read's implementation (None: numba on the CPU, torch ops elsewhere).
    """

    def __init__(self, n_users: int, n_items: int, factors: int, hops: int,
                 sparse: bool = False, fused: bool | None = None) -> None:
        super().__init__()
        self.fused = fused  # the attention's implementation (see ragged.ragged_attention)
        if hops < 1:
            raise ValueError(f"hops must be >= 1, got {hops}")
        self.user_memory = nn.Embedding(n_users, factors, sparse=sparse)
        self.user_output = nn.Embedding(n_users, factors, sparse=sparse)
        self.item_memory = nn.Embedding(n_items, factors, sparse=sparse)
        for emb in (self.user_memory, self.user_output, self.item_memory):
            init_embedding(emb.weight, "truncated_normal", 0.01)
        maps = [nn.Linear(factors, factors) for _ in range(hops - 1)]
        for lin in maps:
            _variance_scaling_(lin)
            nn.init.constant_(lin.bias, 1.0)
        self.hop_maps = nn.ModuleList(maps)
        self.dense = nn.Linear(2 * factors, factors)
        _variance_scaling_(self.dense)
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
        out = torch.zeros_like(query)
        for hop in range(self.hops):
            if hop:
                query = torch.relu(self.hop_maps[hop - 1](query) + out)
            out = ragged_attention(query, keys, values, ragged, fused=self.fused)
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
    def load_pretrained(self, gmf: GMFNet, scale: float = 0.5) -> None:
        """User and item memories := ``scale`` × the GMF embeddings (the output memory is kept)."""
        self.user_memory.weight.copy_(scale * gmf.user.weight)
        self.item_memory.weight.copy_(scale * gmf.item.weight)


class CMN(PairScoringRecommender):
    """Collaborative Memory Network with pair-wise GMF pre-training (see the module docstring).

    Args:
        factors: memory size (CiteULike-a and Pinterest: 50; Epinions: 40).
        hops: memory hops (the paper's runs: 3).
        epochs, epochs_gmf: maximum epochs of CMN and of the GMF pre-training.
        batch_size: triples per step (CiteULike-a, Epinions: 128; Pinterest: 256).
        n_negatives: triples (negatives) per training pair.
        learning_rate: RMSProp's (CMN) and Adam's (GMF).
        reg_l2, reg_l2_gmf: L2 of CMN's kernels and of GMF's output weights.
        clip_norm: per-tensor gradient norm limit.
        pretrain: start the memories from the GMF pre-training.
        include_target_user, negatives_with_users_only: the original's quirks (module docstring).
        gmf_adam: Adam's rule for the GMF pre-training's embedding rows, ``"dense"`` (textbook
            Adam, as the original's TF-1 ``AdamOptimizer``) or ``"lazy"`` (only the batch's rows
            move; about half the CPU); see :class:`~recforge.models.torch.gmf.GMF`.
        cache_pretraining: keep the fitted GMF pre-training in the pre-training cache and
            reuse an identical one (same data, settings, stopping rule, seed, device, torch;
            :func:`~recforge.models.torch.pretrain_cache.fit_stage`); the scores do not change.
        seed, device, n_threads: see :class:`~recforge.models.torch.base.TorchRecommender`.

    After ``fit``: ``epochs_best_``, ``epochs_gmf_best_``, ``pretrain_history_`` and
    ``pretrain_cached_`` (whether the GMF came from the cache).
    """

    name: ClassVar[str] = "CMN"
    resumable = True
    _resume_attrs = ("_opt",)
    _test_params: ClassVar[dict[str, Any]] = {
        "factors": 4, "hops": 2, "epochs": 2, "epochs_gmf": 1, "batch_size": 64, "n_threads": 1,
    }

    def __init__(
        self,
        factors: int = 50,
        hops: int = 3,
        epochs: int = 100,
        epochs_gmf: int = 100,
        batch_size: int = 128,
        n_negatives: int = 4,
        learning_rate: float = 1e-3,
        reg_l2: float = 0.1,
        reg_l2_gmf: float = 1e-4,
        clip_norm: float = 5.0,
        pretrain: bool = True,
        include_target_user: bool = False,
        negatives_with_users_only: bool = False,
        gmf_adam: SparseAdam = "dense",
        cache_pretraining: bool = False,
        seed: int = 0,
        device: str = "cpu",
        n_threads: int | None = None,
    ) -> None:
        self.factors = factors
        self.hops = hops
        self.epochs = epochs
        self.epochs_gmf = epochs_gmf
        self.batch_size = batch_size
        self.n_negatives = n_negatives
        self.learning_rate = learning_rate
        self.reg_l2 = reg_l2
        self.reg_l2_gmf = reg_l2_gmf
        self.clip_norm = clip_norm
        self.pretrain = pretrain
        self.include_target_user = include_target_user
        self.negatives_with_users_only = negatives_with_users_only
        self.gmf_adam = gmf_adam
        self.cache_pretraining = cache_pretraining
        self.seed = seed
        self.device = device
        self.n_threads = n_threads

    def _check_params(self) -> None:
        for field in ("factors", "hops", "batch_size", "n_negatives"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"CMN: {field} must be a positive integer, got {value!r}")
        for field in ("learning_rate", "clip_norm"):
            if not getattr(self, field) > 0:
                raise ValueError(f"CMN: {field} must be > 0, got {getattr(self, field)!r}")
        for field in ("reg_l2", "reg_l2_gmf"):
            if not getattr(self, field) >= 0:
                raise ValueError(f"CMN: {field} must be >= 0, got {getattr(self, field)!r}")
        check_choice(self, "gmf_adam", ("dense", "lazy"))
        if not isinstance(self.cache_pretraining, bool):
            raise ValueError(
                f"CMN: cache_pretraining must be true or false, got {self.cache_pretraining!r}")

    def _module_config(self, train: Interactions) -> dict[str, Any]:
        return {"n_users": self.n_users_, "n_items": self.n_items_, "factors": int(self.factors),
                "hops": int(self.hops)}

    def _make_module(self, config: dict[str, Any]) -> nn.Module:
        return CMNNet(config["n_users"], config["n_items"], config["factors"], config["hops"],
                      sparse=True)

    @property
    def neighbourhoods(self) -> Neighbourhoods:
        """N(i) of every item, from the training matrix (built on first use, also after load)."""
        nb = vars(self).get("_neighbourhoods")
        if nb is None:
            nb = self._neighbourhoods = Neighbourhoods(self.seen_, self.device_)
        return nb

    def _prepare(self, train: Interactions, run: TrainingRun) -> None:
        net = self.module_
        assert isinstance(net, CMNNet)
        self._neighbourhoods = Neighbourhoods(train.matrix, self.device_)
        self.epochs_gmf_best_: int | None = None
        self.pretrain_history_: dict[str, list[dict[str, Any]]] = {}
        self.pretrain_cached_ = False
        if self.pretrain:
            gmf = GMF(factors=int(self.factors), variant="cmn", epochs=self.epochs_gmf,
                      batch_size=self.batch_size, n_negatives=self.n_negatives,
                      learning_rate=self.learning_rate, reg=self.reg_l2_gmf,
                      negatives_with_users_only=self.negatives_with_users_only,
                      sparse_adam=self.gmf_adam, seed=self.seed,
                      device=self.device, n_threads=self.n_threads)
            rule, stage = _gmf_rule(run, self.epochs_gmf), "CMN: GMF pre-training"
            if self.cache_pretraining:
                gmf, self.pretrain_cached_ = pretrain_cache.fit_stage(
                    gmf, train, early_stopping=rule, stage=stage, progress=run.progress)
            else:
                gmf.fit(train, early_stopping=rule, stage=stage, progress=run.progress)
            self.epochs_gmf_best_ = int(gmf.epochs_best_)
            self.pretrain_history_["GMF"] = [h.to_dict() for h in gmf.history_]
            gmf_net = gmf.module_
            assert isinstance(gmf_net, GMFNet)
            net.load_pretrained(gmf_net)
        self._sampler = negative_sampler(train, self._rng, self.negatives_with_users_only)
        self._opt = TFRMSprop(net.parameters(), lr=self.learning_rate, decay=0.9, momentum=0.9,
                              clip_norm=self.clip_norm)

    def _end_training(self) -> None:
        super()._end_training()
        for attr in ("_sampler", "_opt"):
            vars(self).pop(attr, None)

    def _forward_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        exclude = None if self.include_target_user else users
        ragged = self.neighbourhoods.gather(items, exclude=exclude)
        out: torch.Tensor = self.module_(users, items, ragged)
        return out

    def _train_epoch(self, epoch: int) -> float:
        net = self.module_
        assert isinstance(net, CMNNet)

        def score(u: torch.Tensor, pos: torch.Tensor,
                  neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            # one gather and one forward for both halves; u is never in N(neg) (neg is unrated)
            s_pos, s_neg = self._forward_pairs(torch.cat([u, u]), torch.cat([pos, neg])).chunk(2)
            return s_pos, s_neg

        return bpr_epoch(score, list(net.parameters()), self._opt, self._sampler,
                         self.n_negatives, self.batch_size, self._rng, self.device_,
                         lambda: self.reg_l2 * net.l2_weights() if self.reg_l2 else None)

    def _pair_costs(self, items: np.ndarray) -> np.ndarray:
        return 1 + self.neighbourhoods.lengths_np[items]

    def _score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self._forward_pairs(users, items)


def _gmf_rule(run: TrainingRun, epochs: int) -> EarlyStopping:
    """CMN's GMF stops on its training loss (every ``validate_every``, the run's patience),
    capped by ``epochs_gmf`` and by the run's epoch cap."""
    es = run.early_stopping or EarlyStopping()
    cap = epochs if es.max_epochs is None else min(epochs, es.max_epochs)
    return EarlyStopping(validate_every=es.validate_every, patience=es.patience,
                         max_epochs=cap, monitor="loss")
