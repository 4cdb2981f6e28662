"""CDL: Collaborative Deep Learning (Wang, Wang & Yeung, KDD'15), as run in RecSys'19.

Network: a stacked denoising autoencoder ``[n_features, 200, 50]`` with sigmoid units (the
bottleneck too), tied weights and the decoder reusing the encoder's hidden biases, as the
authors' Matlab code (built on deepmat) has it. Training (``fit``), following that code:

1. Layer-wise pre-training: one denoising autoencoder per layer on ``pretrain_fraction``
   (3/4) of the items, ``epochs_dae`` epochs each: masking noise 0.3 on the input, dropout
   0.1 on the hidden units, the sparsity pull (cost 0.1 towards 0), weight decay 1e-4,
   Adadelta (decay 0.99, eps 1e-8), batch 128.
2. ``epochs`` alternations (the Matlab ``epoch_sdae``, 200 in the paper runs; not a
   pre-training count): one SDAE pass over all items minimising the reconstruction
   cross-entropy plus ``lambda_v / lambda_n * 1/2 |theta_j - v_j|^2`` on the bottleneck (no
   prior in the first pass, before ``V`` exists), then ``theta`` = the clean codes, ``V = theta``
   in the first alternation, and one CTR sweep for ``U`` and ``V`` (confidence ``a``/``b``,
   ``lambda_u``, ``lambda_v``). The last alternation runs up to ``final_als_iterations`` sweeps.

No early stopping (RecSys'19 ran CDL once with these settings); scores are ``U V^T``.
Substitutes, documented: torch's Adadelta applies weight decay inside its running averages
(the Matlab code adds it after them) and uses inverted dropout (the Matlab code rescales at
inference); minibatches are reshuffled every epoch (the Matlab code keeps one fixed order);
one forward pass serves both loss terms (the Matlab code draws a second dropout mask for the
bottleneck term); the pre-trained output bias is kept (the Matlab code restarts it at 0).
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from recforge.models.iterative import TrainingRun
from recforge.models.params import Param
from recforge.models.torch._require import TORCH_EXTRA_MESSAGE, MissingTorchError
from recforge.models.torch.autoencoder import (
    DAESettings,
    TiedStack,
    bernoulli_nll,
    encode_rows,
    make_optimizer,
    minibatches,
    pretrain_layer,
    sparse_batch,
)
from recforge.models.torch.autoencoder import (
    dropout as apply_dropout,
)
from recforge.models.torch.hybrid import CTRHybrid, FactorBuffers, listed

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised by the no-torch subprocess test
    raise MissingTorchError(TORCH_EXTRA_MESSAGE) from exc

__all__ = ["CDL", "CDLNetwork"]


class CDLNetwork(nn.Module):
    """The SDAE and the CTR factors."""

    def __init__(self, n_features: int, dims: list[int], n_factors: int, n_users: int,
                 n_items: int) -> None:
        super().__init__()
        self.stack = TiedStack([n_features, *dims, n_factors])
        self.factors = FactorBuffers(n_users, n_items, n_factors)


class CDL(CTRHybrid):
    """Collaborative Deep Learning on item content (``train.item_features``)."""

    name = "CDL"
    resumable = True
    _resume_attrs = ("_opt", "_u", "_v", "_theta", "_has_v", "als_sweeps_")
    epochs_param: ClassVar[str] = "epochs"
    param_rules: ClassVar[dict[str, Param]] = {
        **CTRHybrid.param_rules, "epochs_dae": Param(ge=0), "dropout": Param(ge=0, lt=1),
        "sparsity_cost": Param(ge=0), "weight_decay": Param(ge=0),
        "optimizer": Param(choices=("adadelta", "adam")), "learning_rate": Param(gt=0),
        "lambda_n": Param(gt=0), "final_als_iterations": Param(ge=1),
    }
    reports_fixed_progress: ClassVar[bool] = True  # its alternation lines (CTR loss too)
    _test_params: ClassVar[dict[str, Any]] = {
        "epochs": 3, "epochs_dae": 2, "num_factors": 3, "hidden_dims": [8], "batch_size": 8,
        "final_als_iterations": 5, "n_threads": 1,
    }

    def __init__(
        self,
        epochs: int = 200,
        epochs_dae: int = 200,
        num_factors: int = 50,
        hidden_dims: list[int] = [200],  # noqa: B006 - copied in __init__
        batch_size: int = 128,
        mask: float = 0.3,
        dropout: float = 0.1,
        sparsity_cost: float = 0.1,
        sparsity_target: float = 0.0,
        weight_decay: float = 1e-4,
        optimizer: str = "adadelta",
        learning_rate: float = 1.0,
        lambda_u: float = 1.0,
        lambda_v: float = 10.0,
        lambda_n: float = 1000.0,
        a: float = 1.0,
        b: float = 0.01,
        final_als_iterations: int = 100,
        als_tol: float = 1e-6,
        pretrain_fraction: float = 0.75,
        max_features: int | None = 8000,
        unrated: str = "all",
        cache_pretraining: bool = False,
        seed: int = 0,
        device: str = "cpu",
        n_threads: int | None = 1,
    ) -> None:
        self.epochs = epochs
        self.epochs_dae = epochs_dae
        self.num_factors = num_factors
        self.hidden_dims = listed(hidden_dims)
        self.batch_size = batch_size
        self.mask = mask
        self.dropout = dropout
        self.sparsity_cost = sparsity_cost
        self.sparsity_target = sparsity_target
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.lambda_u = lambda_u
        self.lambda_v = lambda_v
        self.lambda_n = lambda_n
        self.a = a
        self.b = b
        self.final_als_iterations = final_als_iterations
        self.als_tol = als_tol
        self.pretrain_fraction = pretrain_fraction
        self.max_features = max_features
        self.unrated = unrated
        self.cache_pretraining = cache_pretraining
        self.seed = seed
        self.device = device
        self.n_threads = n_threads

    # ------------------------------------------------------------------ checks and config
    def _check_params(self) -> None:
        super()._check_params()
        dims = self.hidden_dims
        if not isinstance(dims, list) or any(
            isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims
        ):
            raise ValueError(f"CDL: hidden_dims must be a list of layer sizes >= 1, got {dims!r}")

    def _network_config(self) -> dict[str, Any]:
        return {"dims": [int(d) for d in self.hidden_dims]}

    def _make_module(self, config: dict[str, Any]) -> nn.Module:
        return CDLNetwork(config["n_features"], list(config["dims"]), config["n_factors"],
                          config["n_users"], config["n_items"])

    @property
    def _net(self) -> CDLNetwork:
        net = self.module_
        assert isinstance(net, CDLNetwork)
        return net

    @property
    def _stack(self) -> TiedStack:
        return self._net.stack

    # ------------------------------------------------------------------ pre-training
    def _pretrain_settings(self) -> dict[str, Any]:
        return {
            "dims": list(self.hidden_dims), "num_factors": int(self.num_factors),
            "epochs_dae": self._stage_epochs(self.epochs_dae),
            "batch_size": int(self.batch_size), "mask": float(self.mask),
            "dropout": float(self.dropout), "sparsity_cost": float(self.sparsity_cost),
            "sparsity_target": float(self.sparsity_target),
            "weight_decay": float(self.weight_decay), "optimizer": self.optimizer,
            "learning_rate": float(self.learning_rate),
            "pretrain_fraction": float(self.pretrain_fraction),
            "max_features": self.max_features,
        }

    def _pretrain(self, run: TrainingRun) -> dict[str, float]:
        st, dev = self._stack, self.device_
        codes: Any = self._content.matrix[self._pretrain_items]
        epochs = self._stage_epochs(self.epochs_dae)
        record: dict[str, float] = {}
        for layer, width in enumerate([*self.hidden_dims, self.num_factors]):
            if epochs > 0:
                settings = DAESettings(
                    epochs=epochs, batch_size=int(self.batch_size), mask=float(self.mask),
                    drop=float(self.dropout), sparsity_cost=float(self.sparsity_cost),
                    sparsity_target=float(self.sparsity_target),
                    weight_decay=float(self.weight_decay), optimizer=self.optimizer,
                    lr=float(self.learning_rate), visible_bias="logit_mean",
                )
                w, b, c, losses = pretrain_layer(codes, int(width), settings, rng=self._rng,
                                                 gen=self._generator, device=dev,
                                                 label=f"CDL DAE {layer + 1}",
                                                 progress=run.progress)
                record[f"dae{layer + 1}_reconstruction"] = losses[-1]
                with torch.no_grad():
                    st.weights[layer].copy_(w)
                    st.biases[layer].copy_(b)
                    if layer == 0:
                        st.visible_bias.copy_(c)
            codes = st.layer_codes(codes, layer, dev)
        return record

    def _start_training(self, run: TrainingRun) -> None:
        self._opt = make_optimizer(self._stack.parameters(), self.optimizer,
                                   float(self.learning_rate), float(self.weight_decay))
        self._last_epoch = int(run.max_epochs)
        self._progress = run.progress if run.validation is None else None
        self._u = np.zeros((self._r.shape[0], int(self.num_factors)))
        self._v = np.zeros((self._r.shape[1], int(self.num_factors)))
        self._has_v = False

    @torch.no_grad()
    def _codes(self) -> np.ndarray:
        st = self._stack
        return encode_rows(lambda sb: st.encode(sb), self._content.matrix, self.device_)

    # ------------------------------------------------------------------ epochs
    def _train_epoch(self, epoch: int) -> float:
        st, x, gen = self._stack, self._content.matrix, self._generator
        weight = 0.5 * float(self.lambda_v) / float(self.lambda_n)
        v = torch.as_tensor(self._v, dtype=torch.float32, device=self.device_)
        drop = float(self.dropout)
        total, seen = 0.0, 0
        for rows in minibatches(x.shape[0], int(self.batch_size), "epoch", self._rng):
            clean = sparse_batch(x, rows, self.device_)
            theta = st.encode(clean.masked(float(self.mask), gen), drop=drop, drop_top=False,
                              gen=gen)
            logits = st.decode(apply_dropout(theta, drop, gen), drop=drop, gen=gen)
            loss = bernoulli_nll(logits, clean.dense()).mean()
            if self._has_v:
                v_rows = v[torch.as_tensor(rows, device=self.device_)]
                loss = loss + weight * ((theta - v_rows) ** 2).sum(dim=1).mean()
            self._opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            self._opt.step()
            total += float(loss.detach()) * len(rows)
            seen += len(rows)
        self._theta = self._codes()
        if not self._has_v:
            self._v = self._theta.copy()
            self._has_v = True
        sweeps = int(self.final_als_iterations) if epoch >= self._last_epoch else 1
        ctr_loss = self._als(sweeps, float(self.als_tol))
        # a fixed run has no validation lines: report every tenth alternation (and the last)
        if self._progress is not None and (
            epoch % max(1, self._last_epoch // 10) == 0 or epoch >= self._last_epoch
        ):
            self._progress(f"CDL alternation {epoch}/{self._last_epoch}: SDAE loss "
                           f"{total / max(1, seen):.4f}, CTR loss {ctr_loss:.1f}")
        return total / max(1, seen)
