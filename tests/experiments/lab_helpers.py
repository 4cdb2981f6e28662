"""Shared by the lab's experiment tests: a small synthetic CSV and a spec over it."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_csv(path: Path, seed: int = 0) -> Path:
    """Two user communities, each preferring its own half of the items, plus popularity."""
    rng = np.random.default_rng(seed)
    rows = ["user,item,rating"]
    n_users, n_items = 120, 60
    for u in range(n_users):
        half = u % 2
        pool = np.arange(n_items // 2) + half * (n_items // 2)
        k = int(rng.integers(8, 16))
        weights = 1.0 / (1 + np.arange(pool.size))
        items = rng.choice(pool, size=k, replace=False, p=weights / weights.sum())
        for i in items:
            rows.append(f"u{u},i{i},{int(rng.integers(1, 6))}")
    path.write_text("\n".join(rows) + "\n")
    return path


def spec_dict(csv: Path, **over: object) -> dict[str, object]:
    spec: dict[str, object] = {
        "name": "synthetic",
        "dataset": {"file": str(csv), "rating_col": "rating", "id_type": "str"},
        "split": {
            "method": "per_user_holdout",
            "params": {"test_fraction": 0.2},
            "validation": {"mode": "per_user", "fraction": 0.2},
        },
        "optimize": {"metric": "RECALL", "cutoff": 5},
        "report": {"metrics": ["RECALL", "NDCG", "PRECISION"], "cutoffs": [5, 10]},
        "seeds": [0, 1],
        "models": [
            {"model": "TopPopular"},
            {"model": "Random"},
            {"model": "ItemKNNCF", "label": "ItemKNN fixed",
             "params": {"top_k": 20, "similarity": "cosine"}},
            {"model": "ItemKNNCF", "label": "ItemKNN tuned", "params": {"similarity": "cosine"},
             "search": {"n_trials": 3, "n_startup_trials": 2}},
        ],
    }
    spec.update(over)
    return spec


class _Gate:
    """Counts fits in this process; with ``RECFORGE_TEST_GATE`` set, the
    ``RECFORGE_TEST_BLOCK_AT``-th fit writes ``<gate>.blocked`` and waits for ``<gate>`` to
    exist, so a test can interrupt a run at a known point of a search."""

    fits = 0

    @classmethod
    def passed(cls) -> None:
        import os
        import time

        cls.fits += 1
        gate = os.environ.get("RECFORGE_TEST_GATE")
        if not gate or cls.fits != int(os.environ.get("RECFORGE_TEST_BLOCK_AT", "0")):
            return
        Path(gate + ".blocked").write_text(str(os.getpid()))
        deadline = time.monotonic() + 600
        while not Path(gate).exists() and time.monotonic() < deadline:
            time.sleep(0.05)


def sluggish_class() -> type:
    """A searched test model: TopPopular plus a seeded level-dependent perturbation (so the
    search has something to find), that fits through :class:`_Gate`."""
    from typing import Any, ClassVar

    from recforge.data.interactions import Interactions
    from recforge.models.baselines import TopPopular
    from recforge.models.params import Param

    class Sluggish(TopPopular):
        name = "Sluggish"
        search_space: ClassVar[dict[str, Any]] = {
            "level": {"type": "int", "low": 0, "high": 40},
            "weight": {"type": "float", "low": 0.0, "high": 3.0},
        }
        param_rules: ClassVar[dict[str, Param]] = {"level": Param(ge=0), "weight": Param(ge=0)}

        def __init__(self, level: int = 0, weight: float = 0.0) -> None:
            self.level = level
            self.weight = weight

        def _fit(self, train: Interactions) -> None:
            super()._fit(train)
            noise = np.random.default_rng(self.level).random(self.popularity_.size)
            self.popularity_ = (self.popularity_ + self.weight * 4 * noise).astype(np.float32)
            _Gate.passed()

    return Sluggish


def stepper_class() -> type:
    """A resumable iterative test model: popularity plus seeded noise added every epoch, so
    the finished scores depend on every epoch's draw; each epoch passes :class:`_Gate`."""
    from typing import Any, ClassVar, Self

    from recforge.data.interactions import Interactions
    from recforge.models.iterative import IterativeRecommender, TrainingRun
    from recforge.models.params import Param

    class Stepper(IterativeRecommender):
        name = "Stepper"
        resumable = True
        param_rules: ClassVar[dict[str, Param]] = {"epochs": Param(ge=1)}

        def __init__(self, epochs: int = 12, seed: int = 0) -> None:
            self.epochs = epochs
            self.seed = seed

        def _init_training(self, train: Interactions, run: TrainingRun) -> None:
            self._rng = np.random.default_rng(self.seed)
            self.weights_ = np.asarray(train.matrix.sum(axis=0), dtype=np.float64).ravel()

        def _train_epoch(self, epoch: int) -> float | None:
            self.weights_ = self.weights_ + self._rng.normal(0.0, 0.5, self.weights_.size)
            _Gate.passed()
            return float(np.abs(self.weights_).mean())

        def get_state(self) -> dict[str, Any]:
            return {"weights": self.weights_.copy()}

        def set_state(self, state: dict[str, Any]) -> Self:
            self.weights_ = np.asarray(state["weights"]).copy()
            return self

        def _training_snapshot(self) -> dict[str, Any]:
            return {"weights": self.weights_.copy(), "rng": self._rng.bit_generator.state}

        def _restore_training(self, snapshot: dict[str, Any]) -> None:
            self.weights_ = np.asarray(snapshot["weights"]).copy()
            self._rng.bit_generator.state = snapshot["rng"]

        def _score(self, users: np.ndarray) -> np.ndarray:
            return np.tile(self.weights_.astype(np.float32), (len(users), 1))

    return Stepper
