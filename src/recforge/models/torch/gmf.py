"""GMF, generalised matrix factorisation: the piece NeuMF and CMN both pre-train.

``GMFNet`` embeds a user and an item, multiplies them element-wise and maps the product to one
score with a linear head. The two papers train it differently, so :class:`GMF` takes a
``variant``:

- ``"ncf"`` (He et al., WWW'17, as ported by the RecSys'19 authors to Keras 2): embeddings
  N(0, ``init_std``²) (Keras' ``random_normal``: 0.05; the Keras-1 original used 0.01), a head
  with bias and LeCun-uniform weights, point-wise binary cross-entropy over every positive and
  ``n_negatives`` sampled negatives; ``reg`` is Keras' L2 on both embedding tables, λ·Σw².
- ``"cmn"`` (Ebesu et al., SIGIR'18, ``PairwiseGMF``): embeddings truncated N(0, 0.01²), a
  ReLU head without bias (Glorot-uniform), BPR over (user, positive, negative) triples with
  ``n_negatives`` triples per training pair; ``reg`` is TF's L2 on the head weights, ½λ·Σw²;
  every gradient tensor clipped to norm 5.

Both use Adam (lr 1e-3) in the papers' runs. The "cmn" variant's embeddings take sparse
gradients, so ``sparse_adam`` says how Adam treats the rows outside a batch
(:class:`~recforge.models.torch.optim.TFAdam`): ``"dense"`` (default) is textbook Adam and
TF-1's ``AdamOptimizer``, which the original ran: every row's moments decay at every step and
every row keeps moving; ``"lazy"`` (TF's ``LazyAdamOptimizer``) moves only the batch's rows, at
about half the CPU of a CiteULike-a epoch (15.7 against 29.5 CPU-s), but grows the embeddings
more slowly (docs/RESULTS.md, table2 — the CMN row). The "ncf" variant's dense embeddings
always get the dense rule.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np

from recforge.data.interactions import Interactions
from recforge.models.iterative import TrainingRun
from recforge.models.torch._require import TORCH_EXTRA_MESSAGE, MissingTorchError
from recforge.models.torch.optim import TFAdam
from recforge.models.torch.pairs import (
    PairScoringRecommender,
    Stepper,
    bpr_epoch,
    check_choice,
    make_optimizer,
    negative_sampler,
    pointwise_epoch,
)

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised by the no-torch subprocess test
    raise MissingTorchError(TORCH_EXTRA_MESSAGE) from exc

__all__ = ["GMF", "GMFNet", "init_embedding"]

Init = Literal["normal", "truncated_normal"]
Variant = Literal["ncf", "cmn"]
SparseAdam = Literal["dense", "lazy"]


def init_embedding(weight: torch.Tensor, init: Init, std: float) -> None:
    """Initialise an embedding table in place: N(0, std²), or truncated at ±2·std (TF's rule)."""
    with torch.no_grad():
        if init == "normal":
            nn.init.normal_(weight, 0.0, std)
        elif init == "truncated_normal":
            nn.init.trunc_normal_(weight, 0.0, std, -2.0 * std, 2.0 * std)
        else:
            raise ValueError(f"init must be 'normal' or 'truncated_normal', got {init!r}")


def lecun_uniform_(weight: torch.Tensor) -> None:
    """Keras' ``lecun_uniform``: U(-sqrt(3 / fan_in), sqrt(3 / fan_in))."""
    bound = float(np.sqrt(3.0 / weight.shape[1]))
    with torch.no_grad():
        weight.uniform_(-bound, bound)


class GMFNet(nn.Module):
    """``head(p_u ⊙ q_i)``: one score per (user, item) pair (see the module docstring)."""

    def __init__(self, n_users: int, n_items: int, factors: int, *, variant: Variant = "ncf",
                 init_std: float = 0.05) -> None:
        super().__init__()
        self.variant = variant
        cmn = variant == "cmn"
        # CMN's variant trains with TFAdam on sparse gradients (see _prepare and sparse_adam).
        self.user = nn.Embedding(n_users, factors, sparse=cmn)
        self.item = nn.Embedding(n_items, factors, sparse=cmn)
        for emb in (self.user, self.item):
            init_embedding(emb.weight, "truncated_normal" if cmn else "normal",
                           0.01 if cmn else init_std)
        self.head = nn.Linear(factors, 1, bias=not cmn)
        if cmn:
            nn.init.xavier_uniform_(self.head.weight)
        else:
            lecun_uniform_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def product(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """The element-wise product p_u ⊙ q_i, shape (batch, factors)."""
        out: torch.Tensor = self.user(users) * self.item(items)
        return out

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Scores, shape (batch,): a logit for "ncf", ReLU(logit) for "cmn"."""
        out: torch.Tensor = self.head(self.product(users, items)).squeeze(-1)
        return torch.relu(out) if self.variant == "cmn" else out


class GMF(PairScoringRecommender):
    """Generalised matrix factorisation as NCF (``variant="ncf"``) or CMN (``"cmn"``) trains it.

    Args:
        factors: embedding size.
        variant: whose GMF (see the module docstring).
        epochs: maximum epochs (the cap under early stopping).
        batch_size: training instances per step.
        n_negatives: sampled negatives per training pair.
        learning_rate, optimizer: ``"adam"`` (both papers) or ``"sgd"``.
        reg: L2 strength (its form depends on ``variant``).
        init_std: std of the "ncf" embedding initialisation.
        negatives_with_users_only: draw negatives only among items with a training user (CMN's
            original sampler; default: every item outside the user's row).
        sparse_adam: ``"dense"`` or ``"lazy"`` Adam on the "cmn" variant's embedding rows
            (module docstring).
        seed, device, n_threads: see :class:`~recforge.models.torch.base.TorchRecommender`.
    """

    name: ClassVar[str] = "GMF"
    resumable = True
    _resume_attrs = ("_opt",)
    _test_params: ClassVar[dict[str, Any]] = {
        "factors": 4, "epochs": 2, "batch_size": 64, "n_threads": 1,
    }

    def __init__(
        self,
        factors: int = 8,
        variant: Variant = "ncf",
        epochs: int = 100,
        batch_size: int = 256,
        n_negatives: int = 4,
        learning_rate: float = 1e-3,
        optimizer: Literal["adam", "sgd"] = "adam",
        reg: float = 0.0,
        init_std: float = 0.05,
        negatives_with_users_only: bool = False,
        sparse_adam: SparseAdam = "dense",
        seed: int = 0,
        device: str = "cpu",
        n_threads: int | None = None,
    ) -> None:
        self.factors = factors
        self.variant = variant
        self.epochs = epochs
        self.batch_size = batch_size
        self.n_negatives = n_negatives
        self.learning_rate = learning_rate
        self.optimizer = optimizer
        self.reg = reg
        self.init_std = init_std
        self.negatives_with_users_only = negatives_with_users_only
        self.sparse_adam = sparse_adam
        self.seed = seed
        self.device = device
        self.n_threads = n_threads

    def _check_params(self) -> None:
        check_choice(self, "variant", ("ncf", "cmn"))
        check_choice(self, "optimizer", ("adam", "sgd"))
        check_choice(self, "sparse_adam", ("dense", "lazy"))

    def _module_config(self, train: Interactions) -> dict[str, Any]:
        return {"n_users": self.n_users_, "n_items": self.n_items_, "factors": int(self.factors),
                "variant": self.variant, "init_std": float(self.init_std)}

    def _make_module(self, config: dict[str, Any]) -> nn.Module:
        return GMFNet(config["n_users"], config["n_items"], config["factors"],
                      variant=config["variant"], init_std=config["init_std"])

    def _prepare(self, train: Interactions, run: TrainingRun) -> None:
        self._sampler = negative_sampler(train, self._rng, self.negatives_with_users_only)
        if self.variant == "cmn" and self.optimizer == "adam":
            self._opt: Stepper = TFAdam(self.module_.parameters(), lr=self.learning_rate,
                                        clip_norm=5.0, lazy=self.sparse_adam == "lazy")
        else:
            self._opt = make_optimizer(self.optimizer, self.module_.parameters(),
                                       self.learning_rate)

    def _end_training(self) -> None:
        super()._end_training()
        for attr in ("_sampler", "_opt"):
            vars(self).pop(attr, None)

    def _penalty(self) -> torch.Tensor | None:
        net = self.module_
        assert isinstance(net, GMFNet)
        if not self.reg:
            return None
        if self.variant == "cmn":
            return 0.5 * self.reg * (net.head.weight**2).sum()
        return self.reg * ((net.user.weight**2).sum() + (net.item.weight**2).sum())

    def _train_epoch(self, epoch: int) -> float:
        net = self.module_
        if self.variant == "ncf":
            return pointwise_epoch(net, self._opt, self._sampler, self.n_negatives,
                                   self.batch_size, self._rng, self.device_, self._penalty)

        def score(u: torch.Tensor, pos: torch.Tensor,
                  neg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            s_pos, s_neg = net(torch.cat([u, u]), torch.cat([pos, neg])).chunk(2)
            return s_pos, s_neg

        return bpr_epoch(score, list(net.parameters()), self._opt, self._sampler,
                         self.n_negatives, self.batch_size, self._rng, self.device_,
                         self._penalty, clip=None if isinstance(self._opt, TFAdam) else 5.0)

    def _score_pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.module_(users, items)
        return out

