"""The torch base on a tiny BPR factorisation: learning, seeds, threads, devices, checkpoints."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

# CI installs the torch extra (scripts/test.sh), so there a missing torch is an error, not a skip.
if os.environ.get("CI"):
    import torch
else:
    torch = pytest.importorskip("torch", reason="needs the recforge[torch] extra")

from planted_blocks import own_block_wins, planted_blocks

from recforge.data.interactions import Interactions
from recforge.models.iterative import EarlyStopping, NamedValidation, TrainingRun
from recforge.models.torch.base import (
    TorchRecommender,
    default_threads,
    resolve_device,
    thread_limits,
)
from recforge.models.torch.sampling import NegativeSampler, minibatches


class _TinyBPR(TorchRecommender):
    """Test-only model: BPR matrix factorisation on the shared base and sampler (unregistered)."""

    name = "TinyBPR"

    def __init__(self, factors: int = 8, epochs: int = 30, lr: float = 0.05, batch_size: int = 64,
                 seed: int = 0, device: str = "cpu", n_threads: int | None = 1) -> None:
        self.factors = factors
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.seed = seed
        self.device = device
        self.n_threads = n_threads

    def _module_config(self, train: Interactions) -> dict[str, Any]:
        return {"n_users": train.n_users, "n_items": train.n_items, "factors": self.factors}

    def _make_module(self, config: dict[str, Any]) -> Any:
        m = torch.nn.Module()
        m.users = torch.nn.Embedding(config["n_users"], config["factors"])
        m.items = torch.nn.Embedding(config["n_items"], config["factors"])
        torch.nn.init.normal_(m.users.weight, std=0.1)
        torch.nn.init.normal_(m.items.weight, std=0.1)
        return m

    def _prepare(self, train: Interactions, run: TrainingRun) -> None:
        self._sampler = NegativeSampler(train, self._rng)
        self._opt = torch.optim.Adam(self.module_.parameters(), lr=self.lr)

    def _train_epoch(self, epoch: int) -> float | None:
        u, p, n = (torch.from_numpy(a).to(self.device_) for a in self._sampler.pairwise())
        total = 0.0
        for idx in minibatches(u.numel(), self.batch_size, self._rng):
            b = torch.from_numpy(idx).to(self.device_)
            eu = self.module_.users(u[b])
            diff = (eu * (self.module_.items(p[b]) - self.module_.items(n[b]))).sum(-1)
            loss = -torch.nn.functional.logsigmoid(diff).mean()
            self._opt.zero_grad()
            loss.backward()
            self._opt.step()
            total += float(loss.detach()) * idx.size
        return total / u.numel()

    def _predict(self, users: Any) -> Any:
        return self.module_.users(users) @ self.module_.items.weight.T


@pytest.fixture(scope="module")
def planted() -> tuple[np.ndarray, Interactions]:
    r = planted_blocks()
    return r, Interactions(sp.csr_matrix(r))


def test_learns_the_planted_preference_and_loss_falls(planted: Any) -> None:
    r, train = planted
    m = _TinyBPR().fit(train)
    scores = m.score(np.arange(r.shape[0]))
    assert scores.shape == r.shape and scores.dtype == np.float32
    assert own_block_wins(scores, r) > 0.95
    losses = [h.loss for h in m.history_]
    assert losses[-1] < 0.6 * losses[0]


def test_same_seed_same_scores_other_seed_differs(planted: Any) -> None:
    _, train = planted
    users = np.arange(10)
    a = _TinyBPR(epochs=3, seed=5).fit(train).score(users)
    torch.manual_seed(1234)  # the caller's global state does not leak into a seeded fit
    b = _TinyBPR(epochs=3, seed=5).fit(train).score(users)
    c = _TinyBPR(epochs=3, seed=6).fit(train).score(users)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_fit_leaves_global_rng_and_threads_as_they_were(planted: Any) -> None:
    _, train = planted
    torch.manual_seed(99)
    expected = torch.rand(3)
    torch.manual_seed(99)
    before_threads = torch.get_num_threads()
    _TinyBPR(epochs=2, n_threads=1).fit(train)
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected.numpy())
    assert torch.get_num_threads() == before_threads


def test_thread_limits_pin_and_restore() -> None:
    from threadpoolctl import threadpool_info

    before = torch.get_num_threads()
    with thread_limits(1):
        assert torch.get_num_threads() == 1
        assert all(p["num_threads"] == 1 for p in threadpool_info())
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="n_threads"), thread_limits(-1):
        pass


def test_default_threads_follow_the_environment_as_torch_does(monkeypatch: Any) -> None:
    from recforge.models.similarity import physical_cores

    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert default_threads() == physical_cores()
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    monkeypatch.setenv("MKL_NUM_THREADS", "2")  # torch reads MKL's after OpenMP's
    assert default_threads() == 2
    monkeypatch.setenv("MKL_NUM_THREADS", "none")  # not a count: the next one decides
    assert default_threads() == 3


class _ThreadProbe(_TinyBPR):
    """Records torch's intra-op thread count in every epoch; sets 2 threads where a numba
    kernel could run in a real fit (preprocessing, and validation after an epoch)."""

    def _prepare(self, train: Interactions, run: TrainingRun) -> None:
        super()._prepare(train, run)
        torch.set_num_threads(2)

    def _train_epoch(self, epoch: int) -> float | None:
        self.seen_threads_ = [*getattr(self, "seen_threads_", []), torch.get_num_threads()]
        loss = super()._train_epoch(epoch)
        torch.set_num_threads(2)
        return loss


def test_unset_threads_ignore_what_a_numba_kernel_left_behind(planted: Any,
                                                              monkeypatch: Any) -> None:
    """numba's OpenMP layer sets the process's OpenMP thread count, torch's included, to
    numba's on each parallel kernel (the evaluator's top-k runs one in every validation); a
    fit with ``n_threads=None`` still runs the environment's count."""
    _, train = planted
    monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)  # what such a kernel leaves behind on a 2-core machine
        model = _ThreadProbe(epochs=3, n_threads=None).fit(train)
        assert model.seen_threads_ == [1, 1, 1]  # also after the kernels inside the fit
        assert "_threads" not in vars(model)
        assert torch.get_num_threads() == 2  # the caller's setting is restored after the fit
        assert _ThreadProbe(epochs=2, n_threads=3).fit(train).seen_threads_ == [3, 3]
    finally:
        torch.set_num_threads(before)


def test_device_choice_and_errors() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="'cpu', 'cuda' or 'cuda:N'"):
        resolve_device("tpu")
    if torch.cuda.is_available():
        assert resolve_device("cuda").type == "cuda"
        with pytest.raises(ValueError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(ValueError, match="sees no CUDA device"):
            resolve_device("cuda")
        with pytest.raises(ValueError, match="sees no CUDA device"):
            _TinyBPR(device="cuda").fit(Interactions(sp.csr_matrix(np.eye(3, dtype=np.float32))))


def test_a_cuda_device_sets_the_deterministic_cublas_workspace(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # fits run under torch's deterministic algorithms, which need this for cuBLAS
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    resolve_device("cpu")
    assert "CUBLAS_WORKSPACE_CONFIG" not in os.environ
    assert resolve_device("cuda:0") == torch.device("cuda:0")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")  # the caller's own choice is kept
    resolve_device("cuda")
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


def test_early_stopping_restores_the_best_epoch_state(planted: Any) -> None:
    _, train = planted
    snapshots: dict[int, np.ndarray] = {}

    def planted_best(model: Any) -> float:
        epoch = len(snapshots) + 1  # validated after every epoch
        snapshots[epoch] = model.score(np.arange(5)).copy()
        return 1.0 if epoch == 3 else 0.0

    m = _TinyBPR(epochs=20).fit(train, validation=NamedValidation(planted_best, "X@1"),
                                early_stopping=EarlyStopping(validate_every=1, patience=4))
    assert m.epochs_best_ == 3 and m.epochs_run_ == 7
    np.testing.assert_array_equal(m.score(np.arange(5)), snapshots[3])


def test_save_load_round_trip_weights_in_safetensors(planted: Any, tmp_path: Path) -> None:
    _, train = planted
    m = _TinyBPR(epochs=4, seed=3).fit(
        train, validation=lambda model: 0.0, early_stopping=EarlyStopping(validate_every=2))
    out = m.save(tmp_path / "model")
    assert sorted(p.name for p in out.iterdir()) == [
        "arrays.npz", "model.json", "weights.safetensors"]
    meta = json.loads((out / "model.json").read_text())
    assert meta["params"]["seed"] == 3
    from safetensors.torch import load_file

    weights = load_file(str(out / "weights.safetensors"))
    assert set(weights) == {"users.weight", "items.weight"}
    assert tuple(weights["items.weight"].shape) == (30, 8)
    back = _TinyBPR.load(out, data=train)
    assert isinstance(back, _TinyBPR) and back.epochs_best_ == 2
    assert back.module_config_ == m.module_config_ and back.history_ == m.history_
    np.testing.assert_array_equal(back.score(np.arange(40)), m.score(np.arange(40)))
    (out / "weights.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match="no weights file"):
        _TinyBPR.load(out, data=train)


def test_score_checks_input(planted: Any) -> None:
    _, train = planted
    from recforge.models.base import NotFittedError

    with pytest.raises(NotFittedError):
        _TinyBPR().score(np.arange(3))
    m = _TinyBPR(epochs=1).fit(train)
    with pytest.raises(IndexError, match="out of range"):
        m.score(np.array([40]))
    with pytest.raises(NotImplementedError, match="cannot score unseen user profiles"):
        m.score_profiles(sp.csr_matrix((1, 30), dtype=np.float32))
    with pytest.raises(TypeError, match=r"overrides Recommender\.score"):
        type("Bad", (_TinyBPR,), {"score": lambda self, users: None})
