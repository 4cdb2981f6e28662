"""Tied-weight stacked autoencoders over item content, and their layer-wise pre-training.

CVAE's inference/generation networks and CDL's SDAE share one shape (both originals):
encoder layers ``h_l = sigmoid(h_{l-1} W_l + b_l)``; the decoder runs back with the transposed
weights ``W_l^T`` *and the encoder's biases* of the layers it reconstructs, plus its own output
bias; the output is a vector of Bernoulli logits over the content features. The first layer
reads a sparse batch through ``embedding_bag`` (a batch of 128 tag rows holds ~1.8k non-zeros
out of 1M cells), so only the output layer is dense.

:func:`pretrain_layer` trains one denoising autoencoder (masking noise on the stored entries,
optional hidden dropout and CDL's sparsity pull, Adam or Adadelta); stacking its results
layer by layer initialises the deep networks, as both papers did. Randomness comes from the
numpy and torch generators the caller passes (batch order, noise masks, dropout).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recforge.models.torch._require import TORCH_EXTRA_MESSAGE, MissingTorchError

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised by the no-torch subprocess test
    raise MissingTorchError(TORCH_EXTRA_MESSAGE) from exc

__all__ = [
    "DAESettings",
    "SparseBatch",
    "TiedStack",
    "bernoulli_nll",
    "dropout",
    "encode_rows",
    "minibatches",
    "pretrain_layer",
    "sparse_batch",
    "sparsity_pull",
]

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- batches
@dataclass(frozen=True)
class SparseBatch:
    """Rows of a CSR matrix as ``embedding_bag`` input (``offsets`` start each row)."""

    indices: torch.Tensor
    offsets: torch.Tensor
    weights: torch.Tensor
    n_rows: int
    n_cols: int

    def _row_of_entry(self) -> torch.Tensor:
        ends = torch.cat([self.offsets[1:], self.offsets.new_tensor([self.indices.numel()])])
        counts = ends - self.offsets
        return torch.repeat_interleave(torch.arange(self.n_rows, device=counts.device), counts)

    def dense(self) -> torch.Tensor:
        """The rows as a dense float32 ``(n_rows, n_cols)`` tensor."""
        out = torch.zeros(self.n_rows, self.n_cols, dtype=torch.float32,
                          device=self.weights.device)
        out[self._row_of_entry(), self.indices] = self.weights
        return out

    def masked(self, p: float, gen: torch.Generator | None) -> SparseBatch:
        """Masking noise: each stored entry dropped with chance ``p``.

        Masking a zero changes nothing, so this is exactly masking noise on the dense rows.
        """
        if p <= 0:
            return self
        keep = torch.rand(self.indices.numel(), generator=gen,
                          device=self.indices.device) >= p
        counts = torch.bincount(self._row_of_entry()[keep], minlength=self.n_rows)
        offsets = torch.cumsum(counts, 0) - counts
        return SparseBatch(self.indices[keep], offsets, self.weights[keep], self.n_rows,
                           self.n_cols)


def sparse_batch(x: sp.csr_matrix, rows: np.ndarray, device: torch.device) -> SparseBatch:
    """Rows ``rows`` of the CSR matrix ``x`` as a :class:`SparseBatch` on ``device``."""
    sub = x[rows]
    return SparseBatch(
        indices=torch.as_tensor(sub.indices.astype(np.int64), device=device),
        offsets=torch.as_tensor(sub.indptr[:-1].astype(np.int64), device=device),
        weights=torch.as_tensor(sub.data.astype(np.float32), device=device),
        n_rows=len(rows),
        n_cols=int(x.shape[1]),
    )


def minibatches(
    n: int, batch_size: int, sampling: str, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Index batches for one epoch over ``n`` rows.

    ``"epoch"``: one shuffled pass (every row once, the last batch may be short).
    ``"per_step"``: ``n // batch_size`` independent draws of ``batch_size`` distinct rows, as
    the CVAE code sampled (``np.random.choice(..., replace=False)`` per step), so some rows
    are not visited in an epoch.
    """
    if sampling == "epoch":
        order = rng.permutation(n)
        for lo in range(0, n, batch_size):
            yield order[lo : lo + batch_size]
    elif sampling == "per_step":
        size = min(batch_size, n)
        for _ in range(max(1, n // batch_size)):
            yield rng.choice(n, size, replace=False)
    else:
        raise ValueError(f"batch_sampling must be 'epoch' or 'per_step', got {sampling!r}")


def bernoulli_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy of ``target`` in [0, 1] under Bernoulli ``logits`` (summed)."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").sum(dim=1)


def sparsity_pull(pre: torch.Tensor, h: torch.Tensor, cost: float, target: float) -> torch.Tensor:
    """A term whose gradient on the pre-activations ``pre`` is ``cost * (h - target) / rows``.

    That is the deepmat DAE's sparsity update (no sigmoid derivative), expressed as a loss.
    """
    return ((h.detach() - target) * cost * pre).sum() / pre.shape[0]


def dropout(h: torch.Tensor, p: float, gen: torch.Generator | None) -> torch.Tensor:
    """Inverted dropout drawn from ``gen`` (``F.dropout`` cannot take a generator)."""
    if p <= 0:
        return h
    keep = torch.empty_like(h).bernoulli_(1.0 - p, generator=gen)
    return h * keep / (1.0 - p)


# --------------------------------------------------------------------------- network
class TiedStack(nn.Module):
    """Sigmoid encoder ``dims[0] -> ... -> dims[-1]`` with the tied decoder of the module doc.

    ``weights[l]`` has shape ``(dims[l], dims[l+1])``; ``biases[l]`` belongs to the encoder's
    layer ``l+1`` and is reused when the decoder rebuilds that layer; ``visible_bias`` is the
    output bias. Weights start Xavier-uniform (drawn from ``gen`` when given), biases at zero;
    the parameters are made on ``gen``'s device (a generator draws only on its own device),
    else on the CPU.
    """

    def __init__(self, dims: Sequence[int], gen: torch.Generator | None = None) -> None:
        super().__init__()
        if len(dims) < 2 or any(int(d) < 1 for d in dims):
            raise ValueError(f"TiedStack: dims must be >= 2 positive sizes, got {list(dims)}")
        self.dims = [int(d) for d in dims]
        dev = None if gen is None else gen.device
        self.weights = nn.ParameterList(
            nn.Parameter(torch.empty(a, b, device=dev))
            for a, b in zip(self.dims[:-1], self.dims[1:], strict=True)
        )
        self.biases = nn.ParameterList(
            nn.Parameter(torch.zeros(b, device=dev)) for b in self.dims[1:]
        )
        self.visible_bias = nn.Parameter(torch.zeros(self.dims[0], device=dev))
        for w in self.weights:
            nn.init.xavier_uniform_(w, generator=gen)

    @property
    def depth(self) -> int:
        return len(self.weights)

    def _first(self, x: SparseBatch | torch.Tensor) -> torch.Tensor:
        if isinstance(x, SparseBatch):
            return F.embedding_bag(x.indices, self.weights[0], x.offsets, mode="sum",
                                   per_sample_weights=x.weights) + self.biases[0]
        return x @ self.weights[0] + self.biases[0]

    def encode(
        self,
        x: SparseBatch | torch.Tensor,
        *,
        drop: float = 0.0,
        drop_top: bool = True,
        gen: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Top-layer activations; ``drop`` is hidden dropout (also on the top unless
        ``drop_top`` is False)."""
        h = torch.sigmoid(self._first(x))
        for layer in range(1, self.depth + 1):
            if layer < self.depth or drop_top:
                h = dropout(h, drop, gen)
            if layer < self.depth:
                h = torch.sigmoid(h @ self.weights[layer] + self.biases[layer])
        return h

    def decode(
        self, h: torch.Tensor, *, drop: float = 0.0, gen: torch.Generator | None = None
    ) -> torch.Tensor:
        """Bernoulli logits over the input features from top-layer activations ``h``."""
        for layer in range(self.depth - 1, 0, -1):
            h = torch.sigmoid(h @ self.weights[layer].T + self.biases[layer - 1])
            h = dropout(h, drop, gen)
        return h @ self.weights[0].T + self.visible_bias

    @torch.no_grad()
    def layer_codes(self, rows: sp.csr_matrix | np.ndarray, layer: int,
                    device: torch.device) -> np.ndarray:
        """Clean activations of encoder layer ``layer + 1`` for inputs ``rows`` to that layer
        (content rows as CSR for layer 0, the previous layer's codes otherwise)."""
        if layer == 0:
            return encode_rows(lambda sb: torch.sigmoid(self._first(sb)), rows, device)  # type: ignore[arg-type]
        h = torch.as_tensor(np.asarray(rows), dtype=torch.float32, device=device)
        return torch.sigmoid(h @ self.weights[layer] + self.biases[layer]).double().cpu().numpy()

    def l2(self) -> torch.Tensor:
        """Sum of squared weights (biases excluded)."""
        return sum((w * w).sum() for w in self.weights)  # type: ignore[return-value]


@torch.no_grad()
def encode_rows(
    fn: Callable[[SparseBatch], torch.Tensor],
    x: sp.csr_matrix,
    device: torch.device,
    batch_size: int = 2048,
) -> np.ndarray:
    """``fn`` applied to every row of ``x`` in batches, as a float64 array (items x code)."""
    parts = []
    for lo in range(0, x.shape[0], batch_size):
        rows = np.arange(lo, min(lo + batch_size, x.shape[0]))
        parts.append(fn(sparse_batch(x, rows, device)).double().cpu().numpy())
    return np.concatenate(parts, axis=0)


# --------------------------------------------------------------------------- pre-training
@dataclass(frozen=True)
class DAESettings:
    """One denoising autoencoder layer's training schedule.

    ``sparsity_cost`` adds CDL's pull of the hidden units towards ``sparsity_target``: the
    gradient ``cost * (h - target)`` on the pre-activations, as the deepmat code applies it
    (no sigmoid derivative). ``visible_bias="logit_mean"`` starts the output bias at the
    clipped log-odds of the mean input (CDL); ``"zero"`` at 0 (CVAE).
    """

    epochs: int
    batch_size: int = 128
    mask: float = 0.3
    drop: float = 0.0
    sparsity_cost: float = 0.0
    sparsity_target: float = 0.0
    weight_decay: float = 0.0
    optimizer: str = "adam"
    lr: float = 1e-2
    visible_bias: str = "zero"
    batch_sampling: str = "epoch"


def make_optimizer(
    params: Sequence[torch.nn.Parameter] | Iterator[torch.nn.Parameter],
    kind: str,
    lr: float,
    weight_decay: float = 0.0,
) -> torch.optim.Optimizer:
    """Adam, or Adadelta with the deepmat settings (decay 0.99, eps 1e-8; its step is 1)."""
    if kind == "adam":
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    if kind == "adadelta":
        return torch.optim.Adadelta(params, lr=lr, rho=0.99, eps=1e-8,
                                    weight_decay=weight_decay)
    raise ValueError(f"optimizer must be 'adam' or 'adadelta', got {kind!r}")


def pretrain_layer(
    x: sp.csr_matrix | np.ndarray,
    n_hidden: int,
    settings: DAESettings,
    *,
    rng: np.random.Generator,
    gen: torch.Generator,
    device: torch.device,
    label: str = "DAE",
    progress: Callable[[str], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[float]]:
    """Train one tied DAE ``x -> sigmoid(x W + b) -> x W^T + c`` on the rows of ``x``.

    ``x`` is sparse CSR (the content) or a dense array in [0, 1] (a lower layer's codes).
    Returns ``(W, b, c, epoch_losses)``; the loss is the mean per-row cross-entropy of the
    clean input (plus nothing else: the sparsity pull and weight decay act on the gradients).
    """
    n_rows, n_in = x.shape
    layer = TiedStack([n_in, n_hidden], gen=gen).to(device)
    if settings.visible_bias == "logit_mean":
        mean = np.asarray(x.mean(axis=0)).ravel().clip(1e-6, 1 - 1e-6)
        with torch.no_grad():
            layer.visible_bias.copy_(torch.as_tensor(np.clip(np.log(mean / (1 - mean)), -4, 4)))
    opt = make_optimizer(layer.parameters(), settings.optimizer, settings.lr,
                         settings.weight_decay)
    dense = None if sp.issparse(x) else torch.as_tensor(np.asarray(x, dtype=np.float32),
                                                          device=device)
    losses: list[float] = []
    report = max(1, settings.epochs // 10)
    for epoch in range(1, settings.epochs + 1):
        total, seen = 0.0, 0
        for rows in minibatches(n_rows, settings.batch_size, settings.batch_sampling, rng):
            if dense is None:
                clean = sparse_batch(x, rows, device)  # type: ignore[arg-type]
                target = clean.dense()
                noisy: SparseBatch | torch.Tensor = clean.masked(settings.mask, gen)
            else:
                target = dense[torch.as_tensor(rows, device=device)]
                keep = torch.empty_like(target).bernoulli_(1.0 - settings.mask, generator=gen)
                noisy = target * keep
            pre = layer._first(noisy)
            h = dropout(torch.sigmoid(pre), settings.drop, gen)
            logits = h @ layer.weights[0].T + layer.visible_bias
            nll = bernoulli_nll(logits, target).mean()
            loss = nll
            if settings.sparsity_cost > 0:
                loss = loss + sparsity_pull(pre, h, settings.sparsity_cost,
                                            settings.sparsity_target)
            opt.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]
            opt.step()
            total += float(nll.detach()) * len(rows)
            seen += len(rows)
        losses.append(total / max(1, seen))
        if not math.isfinite(losses[-1]):
            raise FloatingPointError(f"{label}: loss became {losses[-1]} at epoch {epoch}")
        if epoch % report == 0 or epoch == settings.epochs:
            line = f"{label} epoch {epoch}/{settings.epochs}: reconstruction {losses[-1]:.4f}"
            (progress or log.info)(line)
    w, b, c = layer.weights[0], layer.biases[0], layer.visible_bias
    return w.detach().clone(), b.detach().clone(), c.detach().clone(), losses
