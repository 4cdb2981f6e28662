"""The estimator API every recforge model shares.

Conventions (after scikit-learn): hyper-parameters are plain ``__init__`` arguments stored as-is,
learned state ends with an underscore, ``fit`` returns ``self``, and constructors do no work.
Models only fit and score: batching, masking of seen items, top-k and metrics belong to the
evaluator (:mod:`recforge.evaluation`).
"""

from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions

__all__ = ["NotFittedError", "Recommender"]


class NotFittedError(RuntimeError):
    """Raised when ``score`` is called before ``fit``."""


class Recommender(ABC):
    """Base class: ``fit(train) -> self`` and ``score(users) -> (len(users), n_items) float32``.

    Subclasses that can score arbitrary profiles (item-based models) also implement
    ``score_profiles(profiles)``; the evaluator uses it for held-out-user protocols.
    """

    #: registry name, e.g. "ItemKNNCF"; set by subclasses.
    name: ClassVar[str] = ""
    #: whether ``score_profiles`` is available (item-based models).
    supports_profiles: ClassVar[bool] = False

    @abstractmethod
    def fit(self, train: Interactions) -> Self:
        """Learn from the training interactions and return self."""

    @abstractmethod
    def score(self, users: np.ndarray) -> np.ndarray:
        """Dense float32 scores for the given internal user ids over all items."""

    def score_profiles(self, profiles: sp.csr_matrix) -> np.ndarray:
        """Scores for users described only by their interaction rows (fold-in users)."""
        raise NotImplementedError(f"{type(self).__name__} cannot score unseen user profiles")

    # ---------------------------------------------------------------- sklearn-like params
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        valid = set(self._param_names())
        for k, v in params.items():
            if k not in valid:
                raise ValueError(
                    f"{type(self).__name__} has no hyper-parameter {k!r}; valid: {sorted(valid)}"
                )
            setattr(self, k, v)
        return self

    def _check_fitted(self, attr: str) -> None:
        if not hasattr(self, attr):
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(train) first")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
