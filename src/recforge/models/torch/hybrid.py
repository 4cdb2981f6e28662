"""The shared base of CVAE and CDL: a content network plus CTR's collaborative factors.

Both models alternate a pass of their content network over the items with closed-form ALS for
``U`` and ``V`` (:mod:`recforge.models.torch.ctr`), the network's item codes ``theta`` acting as
the prior mean of ``V``. :class:`CTRHybrid` owns what the two share: reading and trimming the
item content (:mod:`recforge.models.torch.content`), the binary training matrix, the held-out
share of items for pre-training, the ALS call, and scoring ``U V^T`` (one GEMM, float32). The
factors live as buffers of the network module, so the loop's best-state copies and the
checkpoints carry them with the weights. Subclasses build the network and its training.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models._matrices import binary_matrix
from recforge.models.iterative import TrainingRun
from recforge.models.params import Param
from recforge.models.torch import pretrain_cache
from recforge.models.torch._require import TORCH_EXTRA_MESSAGE, MissingTorchError
from recforge.models.torch.base import TorchRecommender
from recforge.models.torch.content import ContentMatrix, prepare_content
from recforge.models.torch.ctr import CTRWeights, als_sweeps

try:
    import torch
    from torch import nn
except ImportError as exc:  # pragma: no cover - exercised by the no-torch subprocess test
    raise MissingTorchError(TORCH_EXTRA_MESSAGE) from exc

__all__ = ["CTRHybrid", "FactorBuffers", "listed"]


def listed(value: Any) -> Any:
    """A list-valued hyper-parameter as stored: a copy (no shared default list), a tuple as the
    list JSON gives back, anything else unchanged (the schema check names it)."""
    return list(value) if isinstance(value, list | tuple) else value


@contextmanager
def _numba_threads(n_threads: int | None) -> Iterator[None]:
    """Cap numba's threads for the ALS kernel (threadpoolctl does not reach numba's pool).

    On a busy shared machine, two spinning threads ran the kernel 3.5x slower than one.
    """
    import numba

    if n_threads is None:
        yield
        return
    old = numba.get_num_threads()
    limit = int(numba.config.NUMBA_NUM_THREADS)  # type: ignore[attr-defined]
    numba.set_num_threads(max(1, min(int(n_threads), limit)))
    try:
        yield
    finally:
        numba.set_num_threads(old)


class FactorBuffers(nn.Module):
    """Float32 buffers next to a content network: ``user_factors`` ``U``, ``item_factors``
    ``V`` and ``item_codes`` (the network's codes ``theta`` that ``V`` was fitted to)."""

    user_factors: torch.Tensor
    item_factors: torch.Tensor
    item_codes: torch.Tensor

    def __init__(self, n_users: int, n_items: int, n_factors: int) -> None:
        super().__init__()
        self.register_buffer("user_factors", torch.zeros(n_users, n_factors))
        self.register_buffer("item_factors", torch.zeros(n_items, n_factors))
        self.register_buffer("item_codes", torch.zeros(n_items, n_factors))


class CTRHybrid(TorchRecommender):
    """Base for the CTR hybrids; subclasses set the hyper-parameters listed below.

    Required attributes (``__init__`` arguments): ``num_factors``, ``a``, ``b``, ``lambda_u``,
    ``lambda_v``, ``unrated``, ``max_features``, ``pretrain_fraction``, ``cache_pretraining``,
    plus the base's
    ``seed``, ``device``, ``n_threads``. Learned state besides the network (whose
    :class:`FactorBuffers` hold ``U``, ``V`` and ``theta``): ``content_columns_`` (the input
    feature columns kept), ``als_sweeps_`` (CTR sweeps run per epoch), ``pretrain_record_``
    (the pre-training's diagnostics), ``pretrain_seconds_`` and ``pretrain_cached_`` (whether
    the pre-training came from :mod:`~recforge.models.torch.pretrain_cache`, with
    ``cache_pretraining=True``).
    """

    #: rules of the hyper-parameters every hybrid takes (subclasses extend them)
    param_rules: ClassVar[dict[str, Param]] = {
        "epochs": Param(ge=1), "num_factors": Param(ge=1), "batch_size": Param(ge=1),
        "mask": Param(ge=0, lt=1), "lambda_u": Param(gt=0), "lambda_v": Param(gt=0),
        "a": Param(ge=0), "b": Param(ge=0), "als_tol": Param(ge=0),
        "pretrain_fraction": Param(gt=0, le=1), "max_features": Param(ge=1),
        "unrated": Param(choices=("all", "rated")), "n_threads": Param(ge=1),
    }

    num_factors: int
    a: float
    b: float
    lambda_u: float
    lambda_v: float
    unrated: str
    max_features: int | None
    pretrain_fraction: float
    cache_pretraining: bool

    content_columns_: np.ndarray
    als_sweeps_: list[int]

    _content: ContentMatrix
    _u: np.ndarray
    _v: np.ndarray
    _theta: np.ndarray

    # ------------------------------------------------------------------ checks
    def _ctr_weights(self) -> CTRWeights:
        name = type(self).__name__
        try:
            return CTRWeights(a=float(self.a), b=float(self.b), lambda_u=float(self.lambda_u),
                              lambda_v=float(self.lambda_v), unrated=self.unrated)  # type: ignore[arg-type]
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{name}: {exc}") from None

    def _check_params(self) -> None:
        """The declared schema (``param_rules`` and ``__init__`` types), then the CTR weights."""
        from recforge.models.params import check_params

        check_params(type(self), self.get_params(), where="hyper-parameters")
        self._ctr_weights()

    # ------------------------------------------------------------------ data
    def _read_content(self, train: Interactions) -> ContentMatrix:
        return prepare_content(train.item_features, int(train.n_items),
                               max_features=self.max_features, model=type(self).__name__)

    def _module_config(self, train: Interactions) -> dict[str, Any]:
        self._check_params()
        self._content = self._read_content(train)
        self.content_columns_ = self._content.columns
        return {
            "n_features": self._content.n_features,
            "n_users": int(train.n_users),
            "n_items": int(train.n_items),
            "n_factors": int(self.num_factors),
            **self._network_config(),
        }

    @abstractmethod
    def _network_config(self) -> dict[str, Any]:
        """The network's own JSON-able sizes (merged into ``module_config_``)."""

    def _prepare(self, train: Interactions, run: TrainingRun) -> None:
        self._r = binary_matrix(train)
        self._rt = sp.csr_matrix(self._r.T)
        self._ctr = self._ctr_weights()
        self.als_sweeps_ = []
        n_items = self._r.shape[1]
        order = self._rng.permutation(n_items)
        n_pre = max(1, round(float(self.pretrain_fraction) * n_items))
        self._pretrain_items = np.sort(order[:n_pre])
        self._heldout_items = np.sort(order[n_pre:])
        # no pre-training stage runs more epochs than the run itself (--max-epochs quick looks)
        self._stage_cap = int(run.max_epochs)
        capped = self._pretrain_settings() != self._uncapped_settings()
        if capped and run.progress is not None:
            run.progress(f"{type(self).__name__}: pre-training stages capped at "
                         f"{self._stage_cap} epochs (the run's epoch cap)")
        t0 = time.perf_counter()
        self.pretrain_cached_ = bool(self.cache_pretraining) and self._load_pretrained(run)
        if not self.pretrain_cached_:
            self.pretrain_record_ = self._pretrain(run)
            if self.cache_pretraining:
                self._store_pretrained()
        self.pretrain_seconds_ = time.perf_counter() - t0
        self._start_training(run)

    def _stage_epochs(self, epochs: int) -> int:
        """A pre-training stage's epochs under the run's cap (a ``--max-epochs`` quick look)."""
        return min(int(epochs), self._stage_cap)

    @abstractmethod
    def _pretrain(self, run: TrainingRun) -> dict[str, float]:
        """Layer-wise pre-training of the network on ``_pretrain_items`` (stage epochs through
        ``_stage_epochs``); returns JSON-able diagnostics (e.g. a held-out loss)."""

    @abstractmethod
    def _start_training(self, run: TrainingRun) -> None:
        """After pre-training: the optimiser and the initial ``_theta``, ``_u``, ``_v``."""

    # ------------------------------------------------------------------ pre-training cache
    @abstractmethod
    def _pretrain_settings(self) -> dict[str, Any]:
        """Everything the pre-training reads besides the content and the seed (JSON-able,
        stage epochs as run): the cache key."""

    def _uncapped_settings(self) -> dict[str, Any]:
        cap, self._stage_cap = self._stage_cap, 1 << 62
        try:
            return self._pretrain_settings()
        finally:
            self._stage_cap = cap

    def _pretrain_key(self) -> str:
        return pretrain_cache.cache_key(type(self).__name__, self._content.matrix,
                                        self._pretrain_settings(), int(self.seed), self.device_)

    def _network_weights(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.module_.state_dict().items()
                if not k.startswith("factors.")}

    def _load_pretrained(self, run: TrainingRun) -> bool:
        found = pretrain_cache.load_entry(type(self).__name__, self._pretrain_key(),
                                          self.device_)
        if found is None:
            return False
        weights, gen_state, meta = found
        missing, unexpected = self.module_.load_state_dict(weights, strict=False)
        if unexpected or any(not k.startswith("factors.") for k in missing):
            raise ValueError(
                f"{type(self).__name__}: cached pre-training does not fit the network "
                f"(missing {sorted(missing)}, unexpected {sorted(unexpected)})"
            )
        self._generator.set_state(gen_state)
        self._rng.bit_generator.state = meta["numpy_generator"]
        self.pretrain_record_ = dict(meta["record"])
        if run.progress is not None:
            run.progress(f"{type(self).__name__}: pre-training loaded from the cache")
        return True

    def _store_pretrained(self) -> None:
        meta = {"numpy_generator": self._rng.bit_generator.state,
                "record": self.pretrain_record_}
        pretrain_cache.store_entry(type(self).__name__, self._pretrain_key(),
                                   self._network_weights(), self._generator.get_state(), meta)

    # ------------------------------------------------------------------ collaborative step
    def _als(self, max_iter: int, tol: float) -> float:
        """Refit ``U`` and ``V`` to the current codes ``_theta``; returns the CTR loss."""
        with _numba_threads(self.n_threads):
            u, v, sweeps, loss = als_sweeps(self._r, self._u, self._v, self._theta, self._ctr,
                                            max_iter=max_iter, tol=tol, rt=self._rt)
        self._u, self._v = u, v
        self.als_sweeps_.append(sweeps)
        buffers = self._factor_buffers()
        with torch.no_grad():
            buffers.user_factors.copy_(torch.from_numpy(u))
            buffers.item_factors.copy_(torch.from_numpy(v))
            buffers.item_codes.copy_(torch.from_numpy(self._theta))
        return loss

    def _factor_buffers(self) -> FactorBuffers:
        factors = self.module_.factors  # type: ignore[union-attr]
        assert isinstance(factors, FactorBuffers)
        return factors

    def _end_training(self) -> None:
        for attr in ("_r", "_rt", "_u", "_v", "_theta", "_content", "_opt", "_progress"):
            vars(self).pop(attr, None)
        super()._end_training()

    # ------------------------------------------------------------------ scoring
    def _predict(self, users: torch.Tensor) -> torch.Tensor:
        f = self._factor_buffers()
        return f.user_factors[users] @ f.item_factors.T
