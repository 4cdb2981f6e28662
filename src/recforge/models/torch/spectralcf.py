"""SpectralCF (Zheng et al., RecSys'18) on the shared torch base.

Node embeddings E₀ of users and items are filtered K times through the bipartite graph's
propagation matrix Â (:mod:`.spectralcf_propagation`): E_k = σ(Â E_{k−1} Θ_k); the final vector of
a node is [E₀ | E₁ | … | E_K] and a score is the dot product of a user's and an item's final
vectors. Training follows the original (and the RecSys'19 wrapper):

- **one epoch = one minibatch** of ``batch_size`` distinct users with training items (drawn
  with replacement only when there are fewer such users than the batch), each with one
  training item and one non-training item, drawn uniformly;
- BPR loss −mean log σ(s⁺ − s⁻) plus ``decay`` · (‖u‖² + ‖i⁺‖² + ‖i⁻‖²) / 2 / batch on the
  final vectors;
- RMSProp with TensorFlow 1's semantics (decay 0.9, mean square started at 1, ε = 1e-10);
- embeddings and filters drawn from N(0.01, 0.02²).

``propagation="eig"`` (default) is the original's dense Â = U Uᵀ + U Λ Uᵀ, computed once per
training matrix and cached on disk; ``"sparse"`` is I + L, what Â would be with orthonormal
eigenvectors (RecBole's simplification). The RecSys'19 early stopping for SpectralCF (validate
every 5 epochs, patience 20, at least 400 epochs, RECALL@50) is the Table 7 rows' setting in
:mod:`recforge.experiments.paper.setups`.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models.base import SearchSpace
from recforge.models.iterative import TrainingRun
from recforge.models.params import Param, check_params
from recforge.models.torch.base import TorchRecommender, csr_to_torch, torch
from recforge.models.torch.sampling import NegativeSampler
from recforge.models.torch.spectralcf_propagation import (
    EIG_DTYPES,
    PROPAGATIONS,
    propagation_matrix,
)

nn = torch.nn

__all__ = ["SparsePropagation", "SpectralCF", "SpectralCFNet", "tf1_rmsprop"]


def tf1_rmsprop(params: list[torch.nn.Parameter], lr: float) -> torch.optim.RMSprop:
    """RMSProp as TensorFlow 1's ``RMSPropOptimizer`` defaults: decay 0.9, ε 1e-10, and the
    running mean square started at 1 (torch starts it at 0, which makes the first steps
    roughly sign-sized instead of gradient-sized)."""
    opt = torch.optim.RMSprop(params, lr=lr, alpha=0.9, eps=1e-10)
    for p in params:
        opt.state[p] = {"step": torch.tensor(0.0), "square_avg": torch.ones_like(p)}
    return opt


class _SymmetricMatmul(torch.autograd.Function):
    """Â @ E for a symmetric dense Â whose backward is Â @ G, not Âᵀ @ G.

    The eig matrix is exactly symmetric (it is formed as B Bᵀ), and a product with the
    transposed view of a 9,746² matrix and a narrow G runs on a slow BLAS path (12x slower
    per step at width 4 on 2 cores)."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(a)
        return a @ e

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        (a,) = ctx.saved_tensors
        return None, a @ grad


class SparsePropagation:
    """A sparse Â as two CSR tensors, Â and Âᵀ, for the forward and the backward product.

    torch's own backward of a sparse product transposes Â through COO on every call; a COO
    product itself is ~10x slower than a CSR one (MKL's kernel) at SpectralCF's sizes
    (benchmarks/README.md). Â = I + L is not symmetric, hence the stored transpose."""

    def __init__(self, a_hat: sp.spmatrix, device: torch.device) -> None:
        self.forward = csr_to_torch(a_hat, device)
        self.transposed = csr_to_torch(sp.csr_matrix(a_hat).T, device)

    def __matmul__(self, e: torch.Tensor) -> torch.Tensor:
        return _SparseMatmul.apply(self.forward, self.transposed, e)  # type: ignore[no-any-return]


class _SparseMatmul(torch.autograd.Function):
    """Â @ E with Â as CSR; backward Âᵀ @ G from the stored CSR transpose."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, a_t: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        ctx.a_t = a_t  # a constant: no gradient flows to it
        return a @ e

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, None, torch.Tensor]:
        return None, None, ctx.a_t @ grad


def _propagate_once(a_hat: torch.Tensor | SparsePropagation, e: torch.Tensor) -> torch.Tensor:
    if isinstance(a_hat, SparsePropagation):
        return a_hat @ e
    if a_hat.layout != torch.strided:
        raise TypeError("a sparse Â goes through SparsePropagation (CSR with its transpose)")
    return _SymmetricMatmul.apply(a_hat, e)  # type: ignore[no-any-return]


class SpectralCFNet(nn.Module):
    """E₀ (users then items) and the K filters Θ_k; :meth:`propagate` gives the final vectors."""

    def __init__(self, n_users: int, n_items: int, embedding_size: int, k: int) -> None:
        super().__init__()
        self.n_users = n_users
        self.n_items = n_items
        self.embeddings = nn.Parameter(torch.empty(n_users + n_items, embedding_size))
        self.filters = nn.Parameter(torch.empty(k, embedding_size, embedding_size))

    def reset_parameters(self, generator: torch.Generator) -> None:
        with torch.no_grad():
            for p in (self.embeddings, self.filters):
                p.normal_(0.01, 0.02, generator=generator)

    def propagate(self, a_hat: torch.Tensor | SparsePropagation) -> torch.Tensor:
        """[E₀ | E₁ | … | E_K] for all nodes (users then items); ``a_hat`` a dense symmetric
        tensor or a :class:`SparsePropagation`."""
        e: torch.Tensor = self.embeddings
        outs: list[torch.Tensor] = [e]
        for k in range(self.filters.shape[0]):
            e = torch.sigmoid(_propagate_once(a_hat, e) @ self.filters[k])
            outs.append(e)
        return torch.cat(outs, dim=1)


class SpectralCF(TorchRecommender):
    """SpectralCF with the original's propagation by default (see the module docstring).

    Args:
        epochs: maximum number of epochs (= minibatches); the article's default is 1000.
        batch_size: users per epoch (1,024 in the original).
        embedding_size: width of E₀ (final vectors are ``embedding_size * (k + 1)`` wide).
        decay: weight of the L2 term on the batch's final vectors.
        k: number of spectral filters (layers).
        learning_rate: RMSProp step size.
        propagation: "eig" (the original's dense Â), "eig-original" (the same formula through
            the original's own numpy steps, complex eigenvectors included) or "sparse" (I + L).
        eig_dtype: eigensolver precision for "eig" ("float64" as numpy's solver used).
        cache_propagation: keep the dense Â in the disk cache (keyed by the training matrix).
        seed, device, n_threads: see :class:`~recforge.models.torch.base.TorchRecommender`.
    """

    name = "SpectralCF"
    epochs_param = "epochs"
    resumable = True
    _resume_attrs = ("_opt",)
    search_space: ClassVar[SearchSpace] = {
        "embedding_size": {"type": "categorical", "choices": [4, 8, 16, 32]},
        "decay": {"type": "float", "low": 1e-5, "high": 1e-1, "log": True},
        "learning_rate": {"type": "float", "low": 1e-5, "high": 1e-2, "log": True},
        "k": {"type": "int", "low": 1, "high": 6},
    }
    param_rules: ClassVar[dict[str, Param]] = {
        "epochs": Param(ge=1), "batch_size": Param(ge=1), "embedding_size": Param(ge=1),
        "decay": Param(ge=0), "k": Param(ge=1), "learning_rate": Param(gt=0),
        "propagation": Param(choices=PROPAGATIONS), "eig_dtype": Param(choices=EIG_DTYPES),
        "n_threads": Param(ge=1),
    }
    _test_params: ClassVar[dict[str, Any]] = {
        "epochs": 3, "batch_size": 16, "embedding_size": 4, "k": 2, "n_threads": 1,
        "cache_propagation": False,
    }

    def __init__(
        self,
        epochs: int = 1000,
        batch_size: int = 1024,
        embedding_size: int = 16,
        decay: float = 1e-3,
        k: int = 3,
        learning_rate: float = 1e-3,
        propagation: str = "eig",
        eig_dtype: str = "float64",
        cache_propagation: bool = True,
        seed: int = 0,
        device: str = "cpu",
        n_threads: int | None = None,
    ) -> None:
        self.epochs = epochs
        self.batch_size = batch_size
        self.embedding_size = embedding_size
        self.decay = decay
        self.k = k
        self.learning_rate = learning_rate
        self.propagation = propagation
        self.eig_dtype = eig_dtype
        self.cache_propagation = cache_propagation
        self.seed = seed
        self.device = device
        self.n_threads = n_threads

    # ------------------------------------------------------------------ hooks
    def _check_params(self) -> None:
        check_params(type(self), self.get_params())

    def _module_config(self, train: Interactions) -> dict[str, Any]:
        return {"n_users": int(train.n_users), "n_items": int(train.n_items),
                "embedding_size": int(self.embedding_size), "k": int(self.k)}

    def _make_module(self, config: dict[str, Any]) -> nn.Module:
        return SpectralCFNet(**config)

    def _prepare(self, train: Interactions, run: TrainingRun) -> None:
        assert isinstance(self.module_, SpectralCFNet)
        self.module_.reset_parameters(self._generator)
        say = run.progress
        a_hat = propagation_matrix(train.matrix, self.propagation,  # type: ignore[arg-type]
                                   eig_dtype=self.eig_dtype,  # type: ignore[arg-type]
                                   cache=self.cache_propagation, log_fn=say)
        self._a_hat: torch.Tensor | SparsePropagation
        if sp.issparse(a_hat):
            self._a_hat = SparsePropagation(a_hat, self.device_)
        else:
            self._a_hat = torch.from_numpy(np.ascontiguousarray(a_hat)).to(self.device_)
        self._sampler = NegativeSampler(train, self._rng)
        self._opt = tf1_rmsprop(list(self.module_.parameters()), float(self.learning_rate))
        self._live: torch.Tensor | None = None

    def _train_epoch(self, epoch: int) -> float:
        net = self.module_
        assert isinstance(net, SpectralCFNet)
        users = self._sampler.sample_users(int(self.batch_size), replace=False)
        u, pos, neg = self._sampler.user_triples(users)
        dev = self.device_
        table = net.propagate(self._a_hat)
        b = len(u)
        eu = table[torch.from_numpy(u).to(dev)]
        ep = table[torch.from_numpy(net.n_users + pos).to(dev)]
        en = table[torch.from_numpy(net.n_users + neg).to(dev)]
        diff = (eu * ep).sum(1) - (eu * en).sum(1)
        reg = (eu.square().sum() + ep.square().sum() + en.square().sum()) / 2.0 / b
        loss = -torch.nn.functional.logsigmoid(diff).mean() + float(self.decay) * reg
        self._opt.zero_grad(set_to_none=True)
        loss.backward()
        self._opt.step()
        self._live = None
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"SpectralCF: loss became {value} at epoch {epoch}")
        return value

    def _end_training(self) -> None:
        super()._end_training()
        # Keep only the final vectors: scoring needs neither Â nor the optimiser. (The loop may
        # still restore the best state afterwards; its vectors travel with it.)
        if "_a_hat" in vars(self):
            self.vectors_ = self._vectors()
        for name in ("_a_hat", "_opt", "_sampler", "_live"):
            self.__dict__.pop(name, None)

    def _restore_training(self, snapshot: dict[str, Any]) -> None:
        super()._restore_training(snapshot)
        self._live = None  # the cached propagation was of the weights before

    def get_state(self) -> dict[str, Any]:
        state = super().get_state()
        state["vectors"] = self._vectors().detach().clone()
        return state

    def set_state(self, state: dict[str, Any]) -> SpectralCF:
        super().set_state(state)
        # a best state read back from a resume point holds CPU tensors
        self.vectors_ = state["vectors"].detach().clone().to(self.device_)
        if "_a_hat" in vars(self):
            self._live = self.vectors_
        return self

    def _vectors(self) -> torch.Tensor:
        """Final vectors of all nodes for the current weights (cached until the next step)."""
        if "_a_hat" not in vars(self):  # fitted or loaded: the stored vectors
            return self.vectors_
        if self._live is None:
            with torch.no_grad():
                self._live = self.module_.propagate(self._a_hat)  # type: ignore[operator]
        return self._live

    def _predict(self, users: torch.Tensor) -> torch.Tensor:
        net = self.module_
        assert isinstance(net, SpectralCFNet)
        v = self._vectors()
        return v[users] @ v[net.n_users:].T
