"""Optimiser pieces that reproduce TensorFlow-1 training code the paper's originals ran on.

- :class:`TFRMSprop`: ``tf.train.RMSPropOptimizer``. It differs from ``torch.optim.RMSprop`` in
  three ways that matter for embeddings trained with momentum (CMN, SpectralCF): the running
  mean of squares starts at 1 (torch: 0, so torch's first steps are ~3× larger), ε sits inside
  the square root, and a sparse gradient (``nn.Embedding(sparse=True)``) updates only the rows
  of the batch, as TF does for ``IndexedSlices`` (torch's RMSprop refuses sparse gradients and,
  given dense ones, keeps decaying the running mean of rows absent from the batch, so their
  next step is blown up by a tiny denominator).
- :func:`clip_by_norm_`: ``tf.clip_by_norm`` applied to every gradient tensor on its own (not
  one global norm), for dense and sparse gradients.
- :class:`TFAdam`: Adam in TF-1's form. On sparse embedding gradients it is TF's
  ``LazyAdamOptimizer`` by default (only the rows of the batch move); ``lazy=False`` is TF-1's
  ``AdamOptimizer``, which decays the moments of every row at every step and so keeps moving
  rows outside the batch (a full-table update per step: CMN's GMF on CiteULike-a has 1.1M
  embedding values).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from recforge.models.torch._require import TORCH_EXTRA_MESSAGE, MissingTorchError

try:
    import torch
except ImportError as exc:  # pragma: no cover - exercised by the no-torch subprocess test
    raise MissingTorchError(TORCH_EXTRA_MESSAGE) from exc

__all__ = ["TFAdam", "TFRMSprop", "clip_by_norm_"]


def clip_by_norm_(params: Iterable[torch.Tensor], max_norm: float) -> None:
    """Rescale each parameter's gradient to L2 norm at most ``max_norm`` (in place)."""
    for p in params:
        g = p.grad
        if g is None:
            continue
        if g.is_sparse:
            g = g.coalesce()
            norm = torch.linalg.vector_norm(g.values())
            if norm > max_norm:
                g = g * (max_norm / norm)
            p.grad = g
        else:
            norm = torch.linalg.vector_norm(g)
            if norm > max_norm:
                g.mul_(max_norm / norm)


class TFRMSprop(torch.optim.Optimizer):
    """RMSProp with TensorFlow 1 semantics (see the module docstring).

    Per step, on the rows a gradient touches: ``ms ← ρ·ms + (1−ρ)·g²``,
    ``mom ← μ·mom + lr·g / sqrt(ms + ε)``, ``θ ← θ − mom``; ``ms`` starts at 1, ``mom`` at 0.
    ``clip_norm`` first rescales each gradient tensor as :func:`clip_by_norm_` does (fused here
    so that a sparse gradient is coalesced once).
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        decay: float = 0.9,
        momentum: float = 0.0,
        eps: float = 1e-10,
        clip_norm: float | None = None,
    ) -> None:
        if clip_norm is not None and not clip_norm > 0:
            raise ValueError(f"TFRMSprop: clip_norm must be > 0 or None, got {clip_norm!r}")
        self.clip_norm = clip_norm
        if lr <= 0 or not 0.0 <= decay < 1.0 or not 0.0 <= momentum < 1.0 or eps <= 0:
            raise ValueError(
                f"TFRMSprop: need lr > 0, 0 <= decay < 1, 0 <= momentum < 1, eps > 0; got lr={lr}, "
                f"decay={decay}, momentum={momentum}, eps={eps}"
            )
        super().__init__(params, {"lr": lr, "decay": decay, "momentum": momentum, "eps": eps})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, rho, mu, eps = group["lr"], group["decay"], group["momentum"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["ms"] = torch.ones_like(p)
                    state["mom"] = torch.zeros_like(p)
                ms, mom = state["ms"], state["mom"]
                g = p.grad
                if g.is_sparse:
                    g = g.coalesce()
                    rows, vals = g.indices()[0], g.values()
                    vals = _clipped(vals, self.clip_norm)
                    ms_r = ms.index_select(0, rows).mul_(rho).addcmul_(vals, vals, value=1.0 - rho)
                    mom_r = mom.index_select(0, rows).mul_(mu).add_(
                        vals / torch.sqrt(ms_r + eps), alpha=lr
                    )
                    ms.index_copy_(0, rows, ms_r)
                    mom.index_copy_(0, rows, mom_r)
                    p.index_add_(0, rows, mom_r, alpha=-1.0)
                else:
                    g = _clipped(g, self.clip_norm)
                    ms.mul_(rho).addcmul_(g, g, value=1.0 - rho)
                    mom.mul_(mu).add_(g / torch.sqrt(ms + eps), alpha=lr)
                    p.sub_(mom)
        return loss


class TFAdam(torch.optim.Optimizer):
    """Adam in TensorFlow 1's form, lazy on sparse gradients (TF's ``LazyAdamOptimizer``).

    Per step t, on the rows a gradient touches: ``m ← β1·m + (1−β1)·g``, ``v ← β2·v + (1−β2)·g²``,
    ``θ ← θ − lr·sqrt(1−β2^t)/(1−β1^t) · m / (sqrt(v) + ε)``. A dense gradient updates every
    entry (TF-1's ``AdamOptimizer``); a sparse one (``nn.Embedding(sparse=True)``) only its rows,
    so rows absent from the batch keep their moments and do not move (see the module docstring),
    unless ``lazy=False``: then the moments of every row decay, the batch rows' gradients are
    added (duplicates summed first) and every row moves, as TF-1's ``_apply_sparse`` does.
    ``clip_norm`` rescales each gradient tensor first, as in :class:`TFRMSprop`.
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        clip_norm: float | None = None,
        lazy: bool = True,
    ) -> None:
        b1, b2 = betas
        if lr <= 0 or not 0.0 <= b1 < 1.0 or not 0.0 <= b2 < 1.0 or eps <= 0:
            raise ValueError(
                f"TFAdam: need lr > 0, 0 <= betas < 1, eps > 0; got lr={lr}, betas={betas}, "
                f"eps={eps}"
            )
        if clip_norm is not None and not clip_norm > 0:
            raise ValueError(f"TFAdam: clip_norm must be > 0 or None, got {clip_norm!r}")
        self.clip_norm = clip_norm
        self.lazy = lazy
        super().__init__(params, {"lr": lr, "betas": (b1, b2), "eps": eps})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["t"] = 0
                    state["m"] = torch.zeros_like(p)
                    state["v"] = torch.zeros_like(p)
                state["t"] += 1
                t, m, v = state["t"], state["m"], state["v"]
                step = lr * (1.0 - b2**t) ** 0.5 / (1.0 - b1**t)
                g = p.grad
                if g.is_sparse and not self.lazy:
                    g = g.coalesce()
                    rows, vals = g.indices()[0], _clipped(g.values(), self.clip_norm)
                    m.mul_(b1).index_add_(0, rows, vals, alpha=1.0 - b1)
                    v.mul_(b2).index_add_(0, rows, vals * vals, alpha=1.0 - b2)
                    p.addcdiv_(m, v.sqrt().add_(eps), value=-step)
                elif g.is_sparse:
                    g = g.coalesce()
                    rows, vals = g.indices()[0], _clipped(g.values(), self.clip_norm)
                    m_r = m.index_select(0, rows).mul_(b1).add_(vals, alpha=1.0 - b1)
                    v_r = v.index_select(0, rows).mul_(b2).addcmul_(vals, vals, value=1.0 - b2)
                    m.index_copy_(0, rows, m_r)
                    v.index_copy_(0, rows, v_r)
                    p.index_add_(0, rows, m_r / (v_r.sqrt() + eps), alpha=-step)
                else:
                    g = _clipped(g, self.clip_norm)
                    m.mul_(b1).add_(g, alpha=1.0 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
                    p.addcdiv_(m, v.sqrt().add_(eps), value=-step)
        return loss


def _clipped(g: torch.Tensor, clip_norm: float | None) -> torch.Tensor:
    """``g`` rescaled to L2 norm at most ``clip_norm`` (unchanged when None or within)."""
    if clip_norm is None:
        return g
    norm = torch.linalg.vector_norm(g)
    return g * (clip_norm / norm) if norm > clip_norm else g
