"""CVAE: Collaborative Variational Autoencoder (Li & She, KDD'17), as run in RecSys'19.

Network (``dimensions_vae=[200, 100]``, ``num_factors=50``, sigmoid units): the inference
network encodes an item's content ``x`` to ``h2`` and then to ``mu`` and ``log sigma^2``
(linear); the generation network maps ``z`` to the 100-unit layer (its own weights), then runs
the encoder's layers backwards with their transposed weights and biases (tied, as the original)
to Bernoulli logits over the features.

Training (``fit``):
1. Pre-training on ``pretrain_fraction`` (80 %) of the items, Adam ``learning_rate_vae``:
   one denoising autoencoder per layer (masking noise 0.3, ``epochs_vae`` epochs each), a VAE
   on the top codes (``epochs_latent``), then the whole VAE (``epochs_full``).
2. ``theta = mu(x)``, ``V = theta``; then per epoch: one pass of VAE steps over the items with
   the loss ``CE + KL + lambda_v/lambda_r |v_j - z_j|^2 + 2e-4 |W|^2`` (Adam
   ``learning_rate_cvae``), ``theta = mu(x)``, and up to ``als_max_iter`` CTR sweeps for ``U`` and
   ``V`` (confidence ``a``/``b``, ``lambda_u``, ``lambda_v``; :mod:`recforge.models.torch.ctr`).
   Early stopping is the project's loop (RecSys'19: every 5 epochs, patience 5, RECALL@150).

Scores are ``U V^T``. Quirks of the original, by name: ``batch_sampling="per_step"`` draws
each step's items afresh (some items are skipped in an epoch; default: one shuffled pass) and
``unrated="rated"`` keeps never-rated items out of the users' negative term (default: the CTR
objective). The unused ``M`` argument of the original is not taken.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from recforge.models.iterative import TrainingRun
from recforge.models.params import Param
from recforge.models.torch._require import TORCH_EXTRA_MESSAGE, MissingTorchError
from recforge.models.torch.autoencoder import (
    DAESettings,
    SparseBatch,
    TiedStack,
    bernoulli_nll,
    encode_rows,
    make_optimizer,
    minibatches,
    pretrain_layer,
    sparse_batch,
)
from recforge.models.torch.hybrid import CTRHybrid, FactorBuffers, listed

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised by the no-torch subprocess test
    raise MissingTorchError(TORCH_EXTRA_MESSAGE) from exc

__all__ = ["CVAE", "CVAENetwork"]

#: weight of the squared weights in the CVAE loss (the original's 2e-4 * tf.nn.l2_loss terms)
_L2 = 2e-4


class CVAENetwork(nn.Module):
    """Inference + generation networks of CVAE and the CTR factors (see the module doc)."""

    def __init__(self, n_features: int, dims: list[int], n_factors: int, n_users: int,
                 n_items: int) -> None:
        super().__init__()
        self.stack = TiedStack([n_features, *dims])
        self.mu = nn.Linear(dims[-1], n_factors)
        self.logvar = nn.Linear(dims[-1], n_factors)
        self.gen = nn.Linear(n_factors, dims[-1])
        for lin in (self.mu, self.logvar, self.gen):
            nn.init.xavier_uniform_(lin.weight)
            nn.init.zeros_(lin.bias)
        self.factors = FactorBuffers(n_users, n_items, n_factors)

    def infer(self, x: SparseBatch | torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.stack.encode(x)
        return self.mu(h), self.logvar(h)

    def generate(self, z: torch.Tensor) -> torch.Tensor:
        return self.stack.decode(torch.sigmoid(self.gen(z)))


def _sample(mu: torch.Tensor, logvar: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    eps = torch.randn(mu.shape, generator=gen, device=mu.device, dtype=mu.dtype)
    return mu + torch.sqrt(torch.clamp(torch.exp(logvar), min=1e-10)) * eps


def _kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Per-row KL(q(z|x) || N(0, I))."""
    return 0.5 * (mu * mu + torch.exp(logvar) - logvar - 1.0).sum(dim=1)


class CVAE(CTRHybrid):
    """Collaborative Variational Autoencoder on item content (``train.item_features``)."""

    name = "CVAE"
    resumable = True
    _resume_attrs = ("_opt", "_u", "_v", "_theta", "als_sweeps_")
    epochs_param: ClassVar[str] = "epochs"
    param_rules: ClassVar[dict[str, Param]] = {
        **CTRHybrid.param_rules, "epochs_latent": Param(ge=0), "epochs_full": Param(ge=0),
        "learning_rate_vae": Param(gt=0), "learning_rate_cvae": Param(gt=0),
        "lambda_r": Param(gt=0), "als_max_iter": Param(ge=1),
        "batch_sampling": Param(choices=("epoch", "per_step")),
    }
    _test_params: ClassVar[dict[str, Any]] = {
        "epochs": 3, "num_factors": 3, "dimensions_vae": [8, 4], "epochs_vae": [2, 2],
        "epochs_latent": 2, "epochs_full": 2, "batch_size": 8, "als_max_iter": 2, "n_threads": 1,
    }

    def __init__(
        self,
        epochs: int = 200,
        num_factors: int = 50,
        dimensions_vae: list[int] = [200, 100],  # noqa: B006 - copied in __init__
        epochs_vae: list[int] = [50, 50],  # noqa: B006 - copied in __init__
        epochs_latent: int = 50,
        epochs_full: int = 100,
        learning_rate_vae: float = 1e-2,
        learning_rate_cvae: float = 1e-3,
        batch_size: int = 128,
        mask: float = 0.3,
        lambda_u: float = 0.1,
        lambda_v: float = 10.0,
        lambda_r: float = 1.0,
        a: float = 1.0,
        b: float = 0.01,
        als_max_iter: int = 10,
        als_tol: float = 1e-6,
        pretrain_fraction: float = 0.8,
        max_features: int | None = 8000,
        batch_sampling: str = "epoch",
        unrated: str = "all",
        cache_pretraining: bool = False,
        seed: int = 0,
        device: str = "cpu",
        n_threads: int | None = 1,
    ) -> None:
        self.epochs = epochs
        self.num_factors = num_factors
        self.dimensions_vae = listed(dimensions_vae)
        self.epochs_vae = listed(epochs_vae)
        self.epochs_latent = epochs_latent
        self.epochs_full = epochs_full
        self.learning_rate_vae = learning_rate_vae
        self.learning_rate_cvae = learning_rate_cvae
        self.batch_size = batch_size
        self.mask = mask
        self.lambda_u = lambda_u
        self.lambda_v = lambda_v
        self.lambda_r = lambda_r
        self.a = a
        self.b = b
        self.als_max_iter = als_max_iter
        self.als_tol = als_tol
        self.pretrain_fraction = pretrain_fraction
        self.max_features = max_features
        self.batch_sampling = batch_sampling
        self.unrated = unrated
        self.cache_pretraining = cache_pretraining
        self.seed = seed
        self.device = device
        self.n_threads = n_threads

    # ------------------------------------------------------------------ checks and config
    def _check_params(self) -> None:
        super()._check_params()
        dims, ev = self.dimensions_vae, self.epochs_vae
        if not isinstance(dims, list) or not dims or any(
            isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in dims
        ):
            raise ValueError(
                f"CVAE: dimensions_vae must be a list of layer sizes >= 1, got {dims!r}"
            )
        if not isinstance(ev, list) or len(ev) != len(dims) or any(
            isinstance(e, bool) or not isinstance(e, int) or e < 0 for e in ev
        ):
            raise ValueError(
                f"CVAE: epochs_vae needs one epoch count >= 0 per layer of dimensions_vae "
                f"({len(dims)}), got {ev!r}"
            )

    def _network_config(self) -> dict[str, Any]:
        return {"dims": [int(d) for d in self.dimensions_vae]}

    def _make_module(self, config: dict[str, Any]) -> nn.Module:
        return CVAENetwork(config["n_features"], list(config["dims"]), config["n_factors"],
                           config["n_users"], config["n_items"])

    @property
    def _net(self) -> CVAENetwork:
        net = self.module_
        assert isinstance(net, CVAENetwork)
        return net

    # ------------------------------------------------------------------ pre-training
    def _pretrain_settings(self) -> dict[str, Any]:
        return {
            "dims": list(self.dimensions_vae), "num_factors": int(self.num_factors),
            "epochs_vae": [self._stage_epochs(e) for e in self.epochs_vae],
            "epochs_latent": self._stage_epochs(self.epochs_latent),
            "epochs_full": self._stage_epochs(self.epochs_full),
            "learning_rate_vae": float(self.learning_rate_vae),
            "batch_size": int(self.batch_size), "mask": float(self.mask),
            "pretrain_fraction": float(self.pretrain_fraction),
            "max_features": self.max_features, "batch_sampling": self.batch_sampling,
        }

    def _pretrain(self, run: TrainingRun) -> dict[str, float]:
        net, dev, gen = self._net, self.device_, self._generator
        x = self._content.matrix
        pre = x[self._pretrain_items]
        codes: Any = pre
        for layer, (width, epochs) in enumerate(
            zip(self.dimensions_vae, self.epochs_vae, strict=True)
        ):
            if self._stage_epochs(epochs) > 0:
                settings = DAESettings(epochs=self._stage_epochs(epochs),
                                       batch_size=int(self.batch_size), mask=float(self.mask),
                                       optimizer="adam", lr=float(self.learning_rate_vae),
                                       batch_sampling=self.batch_sampling)
                w, b, c, _ = pretrain_layer(codes, int(width), settings, rng=self._rng, gen=gen,
                                            device=dev, label=f"CVAE DAE {layer + 1}",
                                            progress=run.progress)
                with torch.no_grad():
                    net.stack.weights[layer].copy_(w)
                    net.stack.biases[layer].copy_(b)
                    if layer == 0:
                        net.stack.visible_bias.copy_(c)
            codes = net.stack.layer_codes(codes, layer, dev)
        self._fit_vae(torch.as_tensor(codes, dtype=torch.float32, device=dev), latent_only=True,
                      epochs=self._stage_epochs(self.epochs_latent), run=run)
        self._fit_vae(pre, latent_only=False, epochs=self._stage_epochs(self.epochs_full),
                      run=run)
        return {"heldout_reconstruction": self._reconstruction(x[self._heldout_items])}

    def _start_training(self, run: TrainingRun) -> None:
        self._opt = make_optimizer(self._net.parameters(), "adam", float(self.learning_rate_cvae))
        self._theta = self._codes()
        self._v = self._theta.copy()
        self._u = np.zeros((self._r.shape[0], int(self.num_factors)))

    def _fit_vae(self, data: Any, *, latent_only: bool, epochs: int, run: TrainingRun) -> None:
        """Pre-train the VAE: on the top codes (``latent_only``) or on the content rows."""
        if epochs == 0:
            return
        net = self._net
        params = (list(net.mu.parameters()) + list(net.logvar.parameters())
                  + list(net.gen.parameters())) if latent_only else list(net.parameters())
        opt = make_optimizer(params, "adam", float(self.learning_rate_vae))
        n = data.shape[0]
        label = "CVAE latent VAE" if latent_only else "CVAE full VAE"
        report = max(1, epochs // 10)
        for epoch in range(1, epochs + 1):
            total = 0.0
            seen = 0
            for rows in minibatches(n, int(self.batch_size), self.batch_sampling, self._rng):
                if latent_only:
                    target = data[torch.as_tensor(rows, device=self.device_)]
                    mu, logvar = net.mu(target), net.logvar(target)
                    z = _sample(mu, logvar, self._generator)
                    logits = net.gen(z)
                else:
                    batch = sparse_batch(data, rows, self.device_)
                    target = batch.dense()
                    mu, logvar = net.infer(batch)
                    logits = net.generate(_sample(mu, logvar, self._generator))
                nll = bernoulli_nll(logits, target).mean()
                loss = nll + _kl(mu, logvar).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                total += float(loss.detach()) * len(rows)
                seen += len(rows)
            if epoch % report == 0 or epoch == epochs:
                line = f"{label} epoch {epoch}/{epochs}: loss {total / max(1, seen):.4f}"
                if run.progress is not None:
                    run.progress(line)

    @torch.no_grad()
    def _reconstruction(self, rows_x: Any) -> float:
        """Mean cross-entropy of the mean reconstruction of ``rows_x`` (a held-out check)."""
        if rows_x.shape[0] == 0:
            return float("nan")
        net, total = self._net, 0.0
        for lo in range(0, rows_x.shape[0], 2048):
            batch = sparse_batch(rows_x, np.arange(lo, min(lo + 2048, rows_x.shape[0])),
                                 self.device_)
            mu, _ = net.infer(batch)
            total += float(bernoulli_nll(net.generate(mu), batch.dense()).sum())
        return total / rows_x.shape[0]

    @torch.no_grad()
    def _codes(self) -> np.ndarray:
        net = self._net
        return encode_rows(lambda sb: net.infer(sb)[0], self._content.matrix, self.device_)

    # ------------------------------------------------------------------ epochs
    def _train_epoch(self, epoch: int) -> float:
        net, x, gen = self._net, self._content.matrix, self._generator
        v = torch.as_tensor(self._v, dtype=torch.float32, device=self.device_)
        weight = float(self.lambda_v) / float(self.lambda_r)
        total = 0.0
        seen = 0
        for rows in minibatches(x.shape[0], int(self.batch_size), self.batch_sampling,
                                self._rng):
            batch = sparse_batch(x, rows, self.device_)
            mu, logvar = net.infer(batch)
            z = _sample(mu, logvar, gen)
            logits = net.generate(z)
            v_rows = v[torch.as_tensor(rows, device=self.device_)]
            loss = (bernoulli_nll(logits, batch.dense()).mean() + _kl(mu, logvar).mean()
                    + weight * ((v_rows - z) ** 2).sum(dim=1).mean()
                    + _L2 * net.stack.l2())
            self._opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            self._opt.step()
            total += float(loss.detach()) * len(rows)
            seen += len(rows)
        self._theta = self._codes()
        self._als(int(self.als_max_iter), float(self.als_tol))
        return total / max(1, seen)
