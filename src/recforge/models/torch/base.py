"""The torch model base: seeding, threads, device, the shared loop, best-state copies, scoring.

A neural model subclasses :class:`TorchRecommender` and implements

- ``_module_config(train) -> dict``: the JSON-able sizes its network needs (checkpoints rebuild
  the network from it), and ``_make_module(config) -> nn.Module``;
- ``_prepare(train, run)`` (optional): optimiser, samplers, training tensors;
- ``_train_epoch(epoch) -> float | None``: one epoch, returning the mean loss;
- ``_predict(users) -> Tensor``: ``(len(users), n_items)`` scores for a long tensor of users on
  ``device_`` (and ``_predict_profiles(profiles)`` when ``supports_profiles``).

Its ``__init__`` takes ``seed``, ``device`` and ``n_threads`` hyper-parameters (read here).
The base seeds every fit (``torch.manual_seed`` inside :func:`torch.random.fork_rng`, so the
caller's global generators are left as they were, a ``torch.Generator`` in ``_generator`` and
a numpy generator in ``_rng`` for sampling), pins threads for the fit and for scoring
(``torch.set_num_threads`` and threadpoolctl; ``n_threads=None`` is the process's default from
its environment, :func:`default_threads`, whatever a numba kernel left behind),
resolves the device (``"cpu"`` by default; ``"cuda"``/``"cuda:N"`` when asked for and present,
otherwise an error) and trains through :func:`recforge.models.iterative.train_iterative`, so
validation, patience and the best-state restore are the project's one loop. The best state is
a copy of the module's ``state_dict`` (tensors cloned on their device). A model whose training
state is the module, the generators and the helpers named in ``_resume_attrs`` sets
``resumable = True`` and can continue an interrupted fit (the base's ``_training_snapshot``).

Conventions: learned state ends in ``_`` and is saved by ``model.save`` (tensors as arrays, the
network's weights in ``weights.safetensors`` through :mod:`.checkpoint`); training-only helpers
(optimiser, sampler, data tensors) are private (``self._opt``) and freed in ``_end_training``.
"""

from __future__ import annotations

import os
import warnings
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models._matrices import binary_matrix
from recforge.models._validation import check_fitted, optional_threads
from recforge.models.iterative import IterativeRecommender, TrainingRun
from recforge.models.torch._require import require_torch

require_torch()

import torch  # noqa: E402
from torch import nn  # noqa: E402

__all__ = [
    "CUBLAS_WORKSPACE_CONFIG",
    "WEIGHTS_FILE",
    "TorchRecommender",
    "csr_to_torch",
    "default_threads",
    "dense_rows",
    "resolve_device",
    "seeded_generators",
    "thread_limits",
]


#: where ``model.save`` puts a torch model's network weights (next to model.json / arrays.npz).
WEIGHTS_FILE = "weights.safetensors"


#: cuBLAS's deterministic workspace setting (one of the two values NVIDIA documents), which
#: torch's deterministic algorithms ask for: without it every cuBLAS product warns and may differ
#: between runs. The variable is read at the first cuBLAS call, so it is set before any.
CUBLAS_WORKSPACE_CONFIG = ":4096:8"


def resolve_device(device: str | torch.device) -> torch.device:
    """``"cpu"``, ``"cuda"`` or ``"cuda:N"``; CUDA only when torch sees a GPU (else an error).

    A CUDA device also sets ``CUBLAS_WORKSPACE_CONFIG`` (:data:`CUBLAS_WORKSPACE_CONFIG`)
    unless the environment has it: fits run under :func:`deterministic_algorithms`, and this
    runs before a model's first CUDA operation.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(
            f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}"
        ) from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was asked for, but torch {torch.__version__} sees no CUDA device "
            "(a CPU-only build or no GPU); use device='cpu'"
        )
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) are present"
        )
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE_CONFIG)
    return dev


def default_threads() -> int:
    """The intra-op thread count torch starts with: ``MKL_NUM_THREADS``, else
    ``OMP_NUM_THREADS``, else the physical cores (torch's own order).

    ``n_threads=None`` means this count, not torch's current one: every parallel numba kernel
    (the evaluator's top-k, the similarity and metapath kernels) sets the calling thread's
    OpenMP thread count, which torch's is, to numba's through numba's OpenMP layer. So torch
    would run as many threads as numba after a model's numba preprocessing or its first
    validation; the fit therefore re-pins torch before every epoch. On a shared 2-core machine
    two threads waiting in OpenMP barriers made MCRec's epochs several times slower than one.
    """
    from recforge.models.similarity import physical_cores

    for var in ("MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        value = os.environ.get(var, "").strip()
        if value.isdigit() and int(value) > 0:
            return int(value)
    return physical_cores()


@contextmanager
def thread_limits(n_threads: int | None) -> Iterator[None]:
    """Pin torch's intra-op threads and the BLAS/OpenMP pools to ``n_threads`` (None: the
    process's default, :func:`default_threads`), restoring both after the block."""
    n = optional_threads(n_threads, "thread_limits")
    if n is None:
        n = default_threads()
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(old)


@contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """torch's deterministic kernels inside the block, the caller's setting restored after.

    Without them two CPU fits of MCRec with one seed and one thread differed from the second
    epoch on (loss 0.76637429 vs 0.76637428): some backward kernels accumulate in a varying
    order. ``warn_only``: an op with no deterministic kernel (on some GPUs) warns, not fails.
    cuBLAS needs ``CUBLAS_WORKSPACE_CONFIG`` as well, which :func:`resolve_device` sets.
    """
    old = torch.are_deterministic_algorithms_enabled()
    old_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(old, warn_only=old_warn)


def seeded_generators(
    seed: int, device: torch.device
) -> tuple[torch.Generator, np.random.Generator]:
    """Seed torch's global generators and return a fresh torch and numpy generator."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    torch.manual_seed(int(seed))
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen, np.random.default_rng(int(seed))


def csr_to_torch(m: sp.spmatrix, device: torch.device) -> torch.Tensor:
    """A scipy matrix as a float32 sparse CSR tensor on ``device`` (duplicates summed)."""
    csr = sp.csr_matrix(m, dtype=np.float32, copy=True)
    csr.sum_duplicates()  # also sorts each row's columns, as torch's CSR invariants require
    with warnings.catch_warnings():  # torch marks its CSR layout "beta" on every construction
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        t = torch.sparse_csr_tensor(
            torch.from_numpy(csr.indptr.astype(np.int64)),
            torch.from_numpy(csr.indices.astype(np.int64)),
            torch.from_numpy(csr.data),
            size=csr.shape,
            check_invariants=True,
        )
    return t.to(device)


def dense_rows(m: sp.csr_matrix, rows: np.ndarray, device: torch.device) -> torch.Tensor:
    """Rows of a CSR matrix as a dense float32 tensor on ``device``."""
    block = m[rows].toarray().astype(np.float32, copy=False)
    return torch.from_numpy(block).to(device)


_STATEFUL = (torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler)


class TorchRecommender(IterativeRecommender):
    """Base for neural models (see the module docstring for the hooks)."""

    devices: ClassVar[tuple[str, ...]] = ("cpu", "cuda")
    #: what a resume point stores besides the weights and the generators (``resumable``
    #: models): optimisers and schedulers by their ``state_dict``, other attributes (counters,
    #: arrays) as they are.
    _resume_attrs: ClassVar[tuple[str, ...]] = ()
    #: buffers that ``_init_training`` rebuilds from the data and training never changes (e.g.
    #: MCRec's node vectors, read from a dataset): left out of best states and resume points,
    #: so a saved resume point never carries a copy of the data.
    _fixed_buffers: ClassVar[tuple[str, ...]] = ()

    # hyper-parameters every torch model takes (set by the subclass's __init__)
    seed: int
    device: str
    n_threads: int | None

    # learned state
    module_: nn.Module
    module_config_: dict[str, Any]
    device_: torch.device

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _module_config(self, train: Interactions) -> dict[str, Any]:
        """JSON-able sizes of the network for ``train`` (saved with the model)."""

    @abstractmethod
    def _make_module(self, config: dict[str, Any]) -> nn.Module:
        """A freshly initialised network for ``config`` (on the CPU; the base moves it)."""

    def _prepare(self, train: Interactions, run: TrainingRun) -> None:
        """Build the optimiser, samplers and training tensors (after the module exists)."""

    @abstractmethod
    def _predict(self, users: torch.Tensor) -> torch.Tensor:
        """``(len(users), n_items_)`` scores for a long tensor of users on ``device_``."""

    def _predict_profiles(self, profiles: sp.csr_matrix) -> torch.Tensor:
        """Scores for fold-in users given as a binary CSR (models with ``supports_profiles``)."""
        raise NotImplementedError(f"{type(self).__name__} cannot score unseen user profiles")

    def _check_params(self) -> None:
        """Validate hyper-parameters before any work (raise ValueError naming the field)."""

    # ------------------------------------------------------------------ loop plumbing
    def _training_context(self) -> AbstractContextManager[Any]:
        stack = ExitStack()
        n = optional_threads(self.n_threads, type(self).__name__)
        self._threads = default_threads() if n is None else n
        stack.enter_context(thread_limits(self._threads))
        dev = resolve_device(self.device)
        cuda = [dev.index if dev.index is not None else torch.cuda.current_device()] if (
            dev.type == "cuda") else []
        stack.enter_context(torch.random.fork_rng(devices=cuda))
        stack.enter_context(deterministic_algorithms())
        return stack

    def _before_epoch(self, epoch: int) -> None:
        # a numba kernel since the last epoch (validation's top-k, a model's preprocessing)
        # may have changed torch's thread count: see default_threads
        torch.set_num_threads(self._threads)

    def _init_training(self, train: Interactions, run: TrainingRun) -> None:
        self.device_ = resolve_device(self.device)
        self._generator, self._rng = seeded_generators(self.seed, self.device_)
        self._check_params()
        self.module_config_ = self._module_config(train)
        self.module_ = self._make_module(self.module_config_).to(self.device_)
        self.module_.train()
        self._prepare(train, run)

    def _end_training(self) -> None:
        self.__dict__.pop("_threads", None)
        if "module_" in vars(self):
            self.module_.eval()

    def _training_snapshot(self) -> dict[str, Any]:
        snap: dict[str, Any] = {
            "module": self._learned_weights(),
            "generator": self._generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "numpy_rng": self._rng.bit_generator.state,
        }
        if self.device_.type == "cuda":
            snap["cuda_rng"] = torch.cuda.get_rng_state(self.device_)
        for name in self._resume_attrs:
            value = getattr(self, name)
            snap[f"attr.{name}"] = value.state_dict() if isinstance(value, _STATEFUL) else value
        return snap

    def _restore_training(self, snapshot: dict[str, Any]) -> None:
        self._load_learned(snapshot["module"])
        self._generator.set_state(snapshot["generator"])
        torch.set_rng_state(snapshot["torch_rng"])
        self._rng.bit_generator.state = snapshot["numpy_rng"]
        if "cuda_rng" in snapshot:
            torch.cuda.set_rng_state(snapshot["cuda_rng"], self.device_)
        for name in self._resume_attrs:
            value = snapshot[f"attr.{name}"]
            current = getattr(self, name, None)  # a value first set by an epoch may be unset
            if isinstance(current, _STATEFUL):
                current.load_state_dict(value)
            else:
                setattr(self, name, value)

    def _learned_weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in self.module_.state_dict().items()
                if k not in self._fixed_buffers}

    def _load_learned(self, weights: dict[str, Any]) -> None:
        missing, unexpected = self.module_.load_state_dict(weights, strict=False)
        if unexpected or set(missing) - set(self._fixed_buffers):
            raise ValueError(f"{type(self).__name__}: state does not fit the network (missing "
                             f"{sorted(missing)}, unexpected {sorted(unexpected)})")

    def get_state(self) -> dict[str, Any]:
        check_fitted(self, "get_state")
        return {f"module.{k}": v for k, v in self._learned_weights().items()}

    def set_state(self, state: dict[str, Any]) -> Self:
        check_fitted(self, "set_state")
        self._load_learned({k[len("module."):]: v for k, v in state.items()
                            if k.startswith("module.")})
        return self

    # ------------------------------------------------------------------ save / load
    def _get_fitted_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {}
        tensors: list[str] = []
        for key, value in super()._get_fitted_state().items():
            if isinstance(value, torch.Tensor):
                state[key] = value.detach().to("cpu").numpy()
                tensors.append(key)
            elif not isinstance(value, nn.Module | torch.device | torch.Generator):
                state[key] = value  # the network's weights go to weights.safetensors
        state["tensor_attrs_"] = tensors
        return state

    def _set_fitted_state(self, state: dict[str, Any]) -> None:
        state = dict(state)
        self.device_ = resolve_device(self.device)
        for key in state.pop("tensor_attrs_", []):
            state[key] = torch.from_numpy(np.asarray(state[key])).to(self.device_)
        super()._set_fitted_state(state)
        self.module_ = self._make_module(self.module_config_).to(self.device_)
        self.module_.eval()

    def _save_files(self, out: Path) -> None:
        from recforge.models.torch.checkpoint import write_weights

        write_weights(self.module_, out / WEIGHTS_FILE)

    def _load_files(self, src: Path) -> None:
        from recforge.models.torch.checkpoint import read_weights

        read_weights(self.module_, src / WEIGHTS_FILE, self.device_)

    # ------------------------------------------------------------------ scoring
    def _to_numpy(self, out: torch.Tensor) -> np.ndarray:
        return out.detach().to(dtype=torch.float32, device="cpu").numpy()

    def _score(self, users: np.ndarray) -> np.ndarray:
        with thread_limits(self.n_threads), torch.inference_mode():
            self.module_.eval()
            return self._to_numpy(self._predict(torch.from_numpy(users).to(self.device_)))

    def _score_profiles(self, profiles: sp.csr_matrix) -> np.ndarray:
        with thread_limits(self.n_threads), torch.inference_mode():
            self.module_.eval()
            return self._to_numpy(self._predict_profiles(binary_matrix(profiles)))
