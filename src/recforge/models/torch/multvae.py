"""Mult-VAE and Mult-DAE (Liang, Krishnan, Hoffman & Jebara, WWW 2018).

Both encode a user's binary item row and decode a softmax over all items; training maximises
the multinomial log-likelihood of the row. Defaults are the RecSys'19 run's settings
(``neural-models.md`` §7): batch 500 users, Adam lr 1e-3, dropout 0.5 on the L2-normalised
input, Xavier-uniform weights and N(0, 0.001) biases, ``[n_items -> 600 -> 200 -> 600 ->
n_items]`` with tanh for Mult-VAE; KL annealing ``beta = min(anneal_cap, updates /
total_anneal_steps)`` with cap 0.2 and 200,000 steps, counted per minibatch; no weight
penalty for Mult-VAE. Mult-DAE uses ``[n_items -> 200 -> n_items]`` (the architecture Liang
et al. report as best for the DAE) with a 0.01 weight penalty, as their DAE code does.

Quirk as a named option (the correct behaviour is the default): ``anneal_counter_reset=True``
resets the update counter at the start of every epoch, as the RecSys'19 wrapper at 024dc15 did,
so beta never exceeds ``batches per epoch / total_anneal_steps`` (~0.001 on ML-20M): that run
was effectively a beta ~ 0 VAE.

The encoder's first layer sums the weight rows of a user's items (``embedding_bag`` over an
item-major weight), so its cost is proportional to the interactions, not to ``n_items``.
Held-out users are scored from their fold-in rows through ``score_profiles``, training users
from their training rows. Users without training interactions are not trained on (their
normalised row is undefined).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, ClassVar, cast

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models._matrices import binary_matrix
from recforge.models._validation import positive_float, positive_int
from recforge.models.iterative import TrainingRun
from recforge.models.params import Param
from recforge.models.torch._require import require_torch

require_torch()

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from recforge.models.torch.base import TorchRecommender  # noqa: E402
from recforge.models.torch.sampling import minibatches  # noqa: E402

__all__ = ["MultDAE", "MultVAE"]


@dataclass(frozen=True)
class _Bag:
    """Rows as bags of items: ``items`` (concatenated rows), ``offsets`` (row starts), and
    ``weights`` (the normalised, dropped-out input values)."""

    items: torch.Tensor
    offsets: torch.Tensor
    weights: torch.Tensor


class _MultAutoencoder(nn.Module):
    """``[n_items -> hidden... -> latent -> reversed(hidden)... -> n_items]`` with tanh."""

    def __init__(self, n_items: int, hidden: list[int], latent: int, variational: bool) -> None:
        super().__init__()
        self.variational = variational
        q_dims = [n_items, *hidden, latent]
        p_dims = [latent, *reversed(hidden), n_items]
        out_last = 2 * latent if variational else latent
        widths = [out_last if i == len(q_dims) - 2 else b
                  for i, b in enumerate(q_dims[1:])]
        # The first layer is stored item-major, (n_items, width): a batch's rows are a weighted
        # sum of the rows of its items (embedding_bag), 4x cheaper than a dense or COO product.
        self.item_in = nn.Parameter(torch.empty(n_items, widths[0]))
        self.bias_in = nn.Parameter(torch.empty(widths[0]))
        self.encoder = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(widths))
        self.decoder = nn.ModuleList(
            nn.Linear(a, b) for a, b in itertools.pairwise(p_dims)
        )
        self.latent = latent
        nn.init.xavier_uniform_(self.item_in)  # same bound as for the (width, n_items) matrix
        nn.init.trunc_normal_(self.bias_in, std=0.001, a=-0.002, b=0.002)
        for layer in [*self.encoder, *self.decoder]:
            nn.init.xavier_uniform_(layer.weight)
            nn.init.trunc_normal_(layer.bias, std=0.001, a=-0.002, b=0.002)

    def encode(self, x: _Bag) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Normalised input rows as a weighted bag of items -> (mu, logvar or None)."""
        h = F.embedding_bag(x.items, self.item_in, x.offsets, mode="sum",
                            per_sample_weights=x.weights) + self.bias_in
        for layer in self.encoder:
            h = layer(torch.tanh(h))
        if not self.variational:
            # the DAE's code layer is a hidden layer too: tanh before the decoder
            return torch.tanh(h), None
        return h[:, : self.latent], h[:, self.latent :]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        h = z
        for i, layer in enumerate(self.decoder):
            h = layer(h)
            if i < len(self.decoder) - 1:
                h = torch.tanh(h)
        return h

    def weights(self) -> list[torch.Tensor]:
        layers = [cast(nn.Linear, layer).weight for layer in [*self.encoder, *self.decoder]]
        return [self.item_in, *layers]


class _MultBase(TorchRecommender):
    """Shared training and scoring of Mult-VAE and Mult-DAE."""

    supports_profiles = True
    epochs_param = "epochs"
    variational: ClassVar[bool] = True
    resumable = True
    _resume_attrs: ClassVar[tuple[str, ...]] = ("_opt", "update_count_")

    epochs: int
    batch_size: int
    hidden_dims: tuple[int, ...]
    latent_dim: int
    dropout: float
    lr: float
    l2_reg: float

    #: minibatch updates made so far.
    update_count_: int

    @property
    def _net(self) -> _MultAutoencoder:
        return cast(_MultAutoencoder, self.module_)

    def _check_params(self) -> None:
        who = type(self).__name__
        positive_int(self.batch_size, "batch_size", who)
        positive_int(self.latent_dim, "latent_dim", who)
        for h in self.hidden_dims:
            positive_int(h, "hidden_dims entry", who)
        positive_float(self.lr, "lr", who)
        positive_float(self.l2_reg, "l2_reg", who, allow_zero=True)
        d = float(self.dropout)
        if not 0.0 <= d < 1.0:
            raise ValueError(f"{who}: dropout must be in [0, 1), got {self.dropout!r}")

    def _module_config(self, train: Interactions) -> dict[str, Any]:
        return {
            "n_items": int(train.n_items),
            "hidden": [int(h) for h in self.hidden_dims],
            "latent": int(self.latent_dim),
            "variational": self.variational,
        }

    def _make_module(self, config: dict[str, Any]) -> nn.Module:
        return _MultAutoencoder(config["n_items"], list(config["hidden"]), config["latent"],
                                bool(config["variational"]))

    def _prepare(self, train: Interactions, run: TrainingRun) -> None:
        self._x = binary_matrix(train)
        self._users = np.flatnonzero(np.diff(self._x.indptr) > 0)
        if self._users.size == 0:
            raise ValueError(f"{type(self).__name__}: the training data has no interactions")
        # fused: one kernel per step over all parameters (~20 % of a CPU step is Adam's update)
        self._opt = torch.optim.Adam(self.module_.parameters(), lr=float(self.lr), fused=True)
        self.update_count_ = 0

    def _end_training(self) -> None:
        super()._end_training()
        for name in ("_x", "_users", "_opt"):
            self.__dict__.pop(name, None)

    # ------------------------------------------------------------------ tensors
    def _input(self, rows: sp.csr_matrix, *, train: bool) -> _Bag:
        """L2-normalised binary rows as bags of items, with input dropout when training."""
        n = np.diff(rows.indptr)
        values = np.repeat(1.0 / np.sqrt(np.maximum(n, 1)), n).astype(np.float32)
        vals = torch.from_numpy(values).to(self.device_)
        if train and self.dropout > 0:
            keep = 1.0 - float(self.dropout)
            mask = torch.rand(vals.shape, generator=self._generator, device=self.device_) < keep
            vals = vals * mask / keep
        dev = self.device_
        return _Bag(torch.from_numpy(rows.indices.astype(np.int64)).to(dev),
                    torch.from_numpy(rows.indptr[:-1].astype(np.int64)).to(dev), vals)

    def _logits(self, x: _Bag, *, train: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        mu, logvar = self._net.encode(x)
        if logvar is None:
            return self._net.decode(mu), None
        z = mu
        if train:
            eps = torch.randn(mu.shape, generator=self._generator, device=self.device_)
            z = mu + eps * torch.exp(0.5 * logvar)
        kl = 0.5 * torch.sum(-logvar + torch.exp(logvar) + mu.pow(2) - 1.0, dim=1).mean()
        return self._net.decode(z), kl

    # ------------------------------------------------------------------ training
    def _annealing(self, epoch: int) -> float:
        """beta for the next minibatch (0 for the DAE)."""
        return 0.0

    def _train_epoch(self, epoch: int) -> float | None:
        total, seen = 0.0, 0
        bs = int(self.batch_size)
        self._on_epoch_start(epoch)
        for idx in minibatches(self._users.size, bs, self._rng):
            rows = self._x[self._users[idx]]
            x = self._input(rows, train=True)
            logits, kl = self._logits(x, train=True)
            log_sm = F.log_softmax(logits, dim=1)
            r = torch.from_numpy(np.repeat(np.arange(rows.shape[0]), np.diff(rows.indptr)))
            c = torch.from_numpy(rows.indices.astype(np.int64))
            neg_ll = -log_sm[r.to(self.device_), c.to(self.device_)].sum() / rows.shape[0]
            loss = neg_ll
            if kl is not None:
                loss = loss + self._annealing(epoch) * kl
            if self.l2_reg > 0:
                # l2_regularizer(lam) = lam * sum(w^2) / 2, added twice in the original
                penalty = sum(w.pow(2).sum() for w in self._net.weights())
                loss = loss + float(self.l2_reg) * penalty
            self._opt.zero_grad()
            loss.backward()
            self._opt.step()
            self.update_count_ += 1
            total += float(loss.detach()) * rows.shape[0]
            seen += rows.shape[0]
        return total / max(seen, 1)

    def _on_epoch_start(self, epoch: int) -> None:
        """Called before each epoch's first minibatch."""

    # ------------------------------------------------------------------ scoring
    def _predict_rows(self, rows: sp.csr_matrix) -> torch.Tensor:
        logits, _ = self._logits(self._input(rows, train=False), train=False)
        return logits

    def _predict(self, users: torch.Tensor) -> torch.Tensor:
        return self._predict_rows(binary_matrix(self.seen_)[users.cpu().numpy()])

    def _predict_profiles(self, profiles: sp.csr_matrix) -> torch.Tensor:
        return self._predict_rows(profiles)


class MultVAE(_MultBase):
    """Mult-VAE^PR: the variational autoencoder with KL annealing (see the module docstring).

    Args:
        epochs: the epoch cap (RecSys'19: 100 on ML-20M, 200 on Netflix; early stopping on
            NDCG@100 picks the epoch).
        batch_size: users per minibatch (500).
        hidden_dims: encoder hidden layers, mirrored in the decoder ((600,)).
        latent_dim: size of z (200).
        dropout: input dropout probability (0.5 = keep 0.5).
        lr: Adam learning rate (1e-3).
        l2_reg: weight penalty ``lam`` on all weights, added as ``lam * sum(w^2)`` (0).
        anneal_cap, total_anneal_steps: ``beta = min(anneal_cap, updates /
            total_anneal_steps)``; ``total_anneal_steps=0`` keeps beta at the cap.
        anneal_counter_reset: the 2019 run's bug (counter reset every epoch); off by default.
        seed, device, n_threads: see :class:`~recforge.models.torch.base.TorchRecommender`.
    """

    name = "MultVAE"
    variational = True
    _resume_attrs = ("_opt", "update_count_", "_counter", "beta_")
    param_rules: ClassVar[dict[str, Param]] = {
        "epochs": Param(ge=1), "batch_size": Param(ge=1), "latent_dim": Param(ge=1),
        "dropout": Param(ge=0.0, lt=1.0), "lr": Param(gt=0.0), "l2_reg": Param(ge=0.0),
        "anneal_cap": Param(ge=0.0), "total_anneal_steps": Param(ge=0),
    }
    _test_params: ClassVar[dict[str, Any]] = {
        "epochs": 3, "batch_size": 8, "hidden_dims": (16,), "latent_dim": 4, "n_threads": 1,
    }

    def __init__(
        self,
        epochs: int = 100,
        batch_size: int = 500,
        hidden_dims: tuple[int, ...] | list[int] = (600,),
        latent_dim: int = 200,
        dropout: float = 0.5,
        lr: float = 1e-3,
        l2_reg: float = 0.0,
        anneal_cap: float = 0.2,
        total_anneal_steps: int = 200_000,
        anneal_counter_reset: bool = False,
        seed: int = 0,
        device: str = "cpu",
        n_threads: int | None = None,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.hidden_dims = tuple(hidden_dims)  # JSON gives a list back; keep one form
        self.latent_dim = latent_dim
        self.dropout = dropout
        self.lr = lr
        self.l2_reg = l2_reg
        self.anneal_cap = anneal_cap
        self.total_anneal_steps = total_anneal_steps
        self.anneal_counter_reset = anneal_counter_reset
        self.seed = seed
        self.device = device
        self.n_threads = n_threads

    def _check_params(self) -> None:
        super()._check_params()
        positive_float(self.anneal_cap, "anneal_cap", "MultVAE", allow_zero=True)
        steps = self.total_anneal_steps
        if isinstance(steps, bool) or not isinstance(steps, int | np.integer) or steps < 0:
            raise ValueError(
                f"MultVAE: total_anneal_steps must be an integer >= 0, got {steps!r}"
            )

    def _prepare(self, train: Interactions, run: TrainingRun) -> None:
        super()._prepare(train, run)
        self._counter = 0
        self.beta_ = 0.0

    def _on_epoch_start(self, epoch: int) -> None:
        if self.anneal_counter_reset:
            self._counter = 0

    def _annealing(self, epoch: int) -> float:
        steps = int(self.total_anneal_steps)
        cap = float(self.anneal_cap)
        beta = cap if steps == 0 else min(cap, self._counter / steps)
        self._counter += 1
        self.beta_ = beta
        return beta


class MultDAE(_MultBase):
    """Mult-DAE: the denoising autoencoder with multinomial likelihood (no KL term).

    Same arguments as :class:`MultVAE` without the annealing ones; defaults ``hidden_dims=()``
    (``[n_items -> 200 -> n_items]``) and ``l2_reg=0.01``.
    """

    name = "MultDAE"
    variational = False
    param_rules: ClassVar[dict[str, Param]] = {
        "epochs": Param(ge=1), "batch_size": Param(ge=1), "latent_dim": Param(ge=1),
        "dropout": Param(ge=0.0, lt=1.0), "lr": Param(gt=0.0), "l2_reg": Param(ge=0.0),
    }
    _test_params: ClassVar[dict[str, Any]] = {
        "epochs": 3, "batch_size": 8, "latent_dim": 4, "n_threads": 1,
    }

    def __init__(
        self,
        epochs: int = 100,
        batch_size: int = 500,
        hidden_dims: tuple[int, ...] | list[int] = (),
        latent_dim: int = 200,
        dropout: float = 0.5,
        lr: float = 1e-3,
        l2_reg: float = 0.01,
        seed: int = 0,
        device: str = "cpu",
        n_threads: int | None = None,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.hidden_dims = tuple(hidden_dims)  # JSON gives a list back; keep one form
        self.latent_dim = latent_dim
        self.dropout = dropout
        self.lr = lr
        self.l2_reg = l2_reg
        self.seed = seed
        self.device = device
        self.n_threads = n_threads

