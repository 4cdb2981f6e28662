"""The estimator API every recforge model shares (template method, declared capabilities).

Conventions (after scikit-learn and RecPack): hyper-parameters are plain ``__init__`` arguments
stored as given, learned state ends with an underscore, ``fit`` returns ``self``, constructors do
no work. Models only fit and score: batching, masking of seen items, top-k and metrics belong to
the evaluator (:mod:`recforge.evaluation`) and to :mod:`recforge._kernels.topk`.

The contract a model author implements (everything else is inherited):

- ``_fit(train)``: learn from a checked :class:`~recforge.data.interactions.Interactions`.
  ``n_users_``, ``n_items_``, ``user_ids_``, ``item_ids_``, ``seen_`` (the training matrix)
  and ``train_checksum_`` are already set; the base records ``fit_seconds_`` afterwards.
- ``_score(users)``: dense ``(len(users), n_items_)`` scores for checked int64 user ids.
- with ``supports_profiles = True``: ``_score_profiles(profiles)`` for a checked float32 CSR
  (``n x n_items_``) of fold-in users.
- with ``supports_candidates = True``: ``_score_candidates(users, items)`` for a checked CSR
  ``items`` (row r = the candidates of ``users[r]``), returning one score per stored entry in
  stored order (shape ``(items.nnz,)``). Pairwise-scored models use it so that candidate-set
  protocols never score every item.
- iterative models subclass :class:`recforge.models.iterative.IterativeRecommender` and
  implement its per-epoch hooks (``_init_training``, ``_train_epoch``, ``get_state``,
  ``set_state``) instead of ``_fit``; the project's one loop trains them.
- ``_test_params``: small hyper-parameters under which the model fits the contract suite's
  tiny data (``tests/models/test_contract.py``) in well under a second.

The public ``fit``/``score``/``score_profiles``/``score_candidates`` check their
input with :mod:`recforge.models._validation` before any work, call the underscored method and
check its output (shape; cast to float32); subclasses may not override them (``TypeError`` at
class creation). Capabilities are class attributes that consumers read directly, never probe.
"""

from __future__ import annotations

import copy
import inspect
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models._validation import (
    IdOutOfRangeError,
    NotFittedError,
    check_candidates,
    check_fitted,
    check_profiles,
    check_scores,
    check_train,
    check_users,
    positive_int,
)
from recforge.models.params import Param
from recforge.models.persistence import ModelDataMismatchError, read_model, write_model

__all__ = [
    "IdOutOfRangeError",
    "ModelDataMismatchError",
    "NotFittedError",
    "Recommendations",
    "Recommender",
    "SearchSpace",
]

SearchSpace = dict[str, dict[str, Any]]

#: public methods the base class owns; a subclass implements the underscored counterparts.
_TEMPLATE_METHODS = (
    "fit",
    "score",
    "score_profiles",
    "score_candidates",
    "recommend",
    "save",
    "load",
    "get_params",
    "set_params",
    "clone",
)


@dataclass(frozen=True)
class Recommendations:
    """Top-k lists in long form, one entry per recommended item, best first per user.

    ``user``/``item`` hold external ids (as in the training ``Interactions``), ``rank`` is 1-based
    and ``score`` the model's float32 score. A user whose every item is excluded has no entry.
    """

    user: np.ndarray
    item: np.ndarray
    score: np.ndarray
    rank: np.ndarray

    def __len__(self) -> int:
        return int(self.user.size)

    def lists(self) -> dict[Any, list[tuple[Any, float]]]:
        """``external user -> [(external item, score), ...]`` in rank order."""
        out: dict[Any, list[tuple[Any, float]]] = {}
        triples = zip(self.user.tolist(), self.item.tolist(), self.score.tolist(), strict=True)
        for u, i, s in triples:
            out.setdefault(u, []).append((i, s))
        return out

    def to_frame(self) -> Any:
        """A pandas DataFrame with columns user, rank, item, score."""
        import pandas as pd

        return pd.DataFrame(
            {"user": self.user, "rank": self.rank, "item": self.item, "score": self.score}
        )


def _overrides(cls: type, name: str) -> bool:
    return getattr(cls, name) is not getattr(Recommender, name)


class Recommender(ABC):
    """Base class: ``fit(train) -> self`` and ``score(users) -> (len(users), n_items) float32``.

    See the module docstring for what a subclass implements.
    """

    #: registry name, e.g. "ItemKNNCF"; set by subclasses.
    name: ClassVar[str] = ""
    #: ``score_profiles`` scores users known only by their interactions (fold-in).
    supports_profiles: ClassVar[bool] = False
    #: ``_score_candidates`` scores given (user, item) pairs without scoring every item.
    supports_candidates: ClassVar[bool] = False
    #: trained in epochs by :mod:`recforge.models.iterative` (``fit(train, validation=...,
    #: early_stopping=...)``, ``epochs_best_``, ``history_``).
    iterative: ClassVar[bool] = False
    #: the hyper-parameter holding the number of epochs ``fit`` runs (iterative models).
    epochs_param: ClassVar[str | None] = None
    #: devices the model can compute on ("cpu"; torch models add "cuda").
    devices: ClassVar[tuple[str, ...]] = ("cpu",)
    #: the tuner's default search space (see :mod:`recforge.tuning.space`).
    search_space: ClassVar[SearchSpace] = {}
    #: ranges and choices of hyper-parameters beyond their ``__init__`` types
    #: (:mod:`recforge.models.params`; checked when a spec is loaded and before a search).
    param_rules: ClassVar[Mapping[str, Param]] = {}
    #: old hyper-parameter name -> new name; the old one is refused with a message naming the new.
    renamed_params: ClassVar[dict[str, str]] = {}
    #: hyper-parameters for the contract suite's tiny data (fast, still meaningful).
    _test_params: ClassVar[dict[str, Any]] = {}

    # fitted state the base class sets (declared for type checkers)
    n_users_: int
    n_items_: int
    user_ids_: np.ndarray
    item_ids_: np.ndarray
    seen_: sp.csr_matrix
    train_checksum_: str
    fit_seconds_: float

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for method in _TEMPLATE_METHODS:
            if method in cls.__dict__ and cls.__module__ != __name__:
                raise TypeError(
                    f"{cls.__name__} overrides Recommender.{method}; implement _{method} (or the "
                    "documented underscored hook) instead: the public method checks input first"
                )
        if cls.supports_profiles and not _overrides(cls, "_score_profiles"):
            raise TypeError(f"{cls.__name__} declares supports_profiles but has no _score_profiles")
        if cls.supports_candidates and not _overrides(cls, "_score_candidates"):
            raise TypeError(
                f"{cls.__name__} declares supports_candidates but has no _score_candidates"
            )
        if cls.iterative and not any(b.__name__ == "IterativeRecommender" for b in cls.__mro__):
            raise TypeError(f"{cls.__name__} declares iterative but is no IterativeRecommender")

    # ------------------------------------------------------------------ what subclasses write
    @abstractmethod
    def _fit(self, train: Interactions) -> Any:
        """Learn from the (checked) training interactions.

        An iterative model's ``_fit`` also takes the training options of :meth:`fit`; a loop
        that validates between epochs sets ``fit_seconds_`` (training time so far) before each
        validation, which makes the model scorable mid-training.
        """

    @abstractmethod
    def _score(self, users: np.ndarray) -> np.ndarray:
        """Dense float32 scores ``(len(users), n_items_)`` for checked internal user ids."""

    def _score_profiles(self, profiles: sp.csr_matrix) -> np.ndarray:
        """Scores for fold-in users given as a checked float32 CSR (``supports_profiles``)."""
        raise NotImplementedError

    def _score_candidates(self, users: np.ndarray, items: sp.csr_matrix) -> np.ndarray:
        """One score per stored entry of ``items`` (row r: candidates of ``users[r]``)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ public, checked
    def fit(self, train: Interactions, **options: Any) -> Self:
        """Learn from ``train`` and return self (records ``fit_seconds_``).

        ``options`` (validation, early stopping, progress, ...) are for iterative models, whose
        ``_fit`` accepts them; other models refuse any.
        """
        train = check_train(self, train)
        if options and not self.iterative:
            raise TypeError(
                f"{type(self).__name__}.fit takes no training options (got {sorted(options)}); "
                "only iterative models do"
            )
        self._begin_fit(train)
        t0 = time.perf_counter()
        if options:
            self._fit(train, **options)
        else:
            self._fit(train)
        self.fit_seconds_ = time.perf_counter() - t0
        return self

    def _begin_fit(self, train: Interactions) -> None:
        vars(self).pop("fit_seconds_", None)  # a failed re-fit leaves the model unfitted
        self.n_users_, self.n_items_ = train.n_users, train.n_items
        self.user_ids_ = train.user_ids
        self.item_ids_ = train.item_ids
        self.seen_ = train.matrix  # a reference, not a copy: recommend() masks with it
        self.train_checksum_ = train.checksum()

    @property
    def is_fitted(self) -> bool:
        return "fit_seconds_" in vars(self)

    def score(self, users: np.ndarray) -> np.ndarray:
        """Dense float32 scores ``(len(users), n_items_)`` for internal user ids."""
        check_fitted(self, "score")
        u = check_users(self, users, "score")
        return check_scores(self, self._score(u), (u.size, self.n_items_), "score")

    def score_profiles(self, profiles: Any) -> np.ndarray:
        """Scores for users described only by their interaction rows (fold-in users).

        ``profiles``: sparse or dense ``n x n_items_`` matrix, or ``Interactions``.
        """
        if not self.supports_profiles:
            raise NotImplementedError(
                f"{type(self).__name__} cannot score unseen user profiles "
                "(supports_profiles=False)"
            )
        check_fitted(self, "score_profiles")
        p = check_profiles(self, profiles)
        out = self._score_profiles(p)
        return check_scores(self, out, (p.shape[0], self.n_items_), "score_profiles")

    def score_candidates(self, users: np.ndarray, items: Any) -> Any:
        """Scores of the given candidate items of each user (any model).

        ``items``: a 2-d int array ``(len(users), m)`` -> ``(len(users), m)`` scores; a sparse
        ``len(users) x n_items_`` matrix -> one score per stored entry in CSR order; a list of
        1-d int arrays -> a list of score arrays. Models with ``supports_candidates`` score only
        these pairs; the others score every item and pick the candidates.
        """
        check_fitted(self, "score_candidates")
        u = check_users(self, users, "score_candidates")
        cand = check_candidates(self, u, items)
        if self.supports_candidates:
            flat = self._score_candidates(u, cand)
        else:
            full = check_scores(self, self._score(u), (u.size, self.n_items_), "score")
            flat = full[np.repeat(np.arange(u.size), np.diff(cand.indptr)), cand.indices]
        flat = check_scores(self, flat, (cand.nnz,), "score_candidates")
        if isinstance(items, np.ndarray) and items.ndim == 2:
            return flat.reshape(items.shape)
        if sp.issparse(items):
            return flat
        return np.split(flat, cand.indptr[1:-1])

    def recommend(
        self,
        users: Iterable[Any],
        k: int = 10,
        *,
        exclude_seen: bool = True,
        memory_budget_mb: float = 256.0,
    ) -> Recommendations:
        """Top-``k`` items for users given by **external** id, with scores.

        ``exclude_seen`` removes each user's training items through the evaluator's masking and
        top-k (:func:`recforge._kernels.topk.select_topk`, its tie rule: lower item index first
        among equal scores). Unknown user ids raise ``KeyError`` naming them.
        """
        from recforge._kernels.topk import resolve_backend, select_topk

        check_fitted(self, "recommend")
        who = f"{type(self).__name__}.recommend"
        k = positive_int(k, "k", who)
        bad = TypeError(
            f"{who}: users must be a 1-d list or array of external user ids, got {users!r}; "
            "wrap a single id in a list"
        )
        if isinstance(users, str | bytes) or not isinstance(users, Iterable):
            raise bad
        ext = np.asarray(users if isinstance(users, np.ndarray) else list(users))
        if ext.ndim != 1:
            raise bad
        internal = self._internal_users(ext)
        seen = self.seen_
        if exclude_seen:
            m_ptr = np.asarray(seen.indptr, dtype=np.int64)
            m_idx = np.asarray(seen.indices, dtype=np.int32)
        else:
            m_ptr = np.zeros(self.n_users_ + 1, dtype=np.int64)
            m_idx = np.zeros(0, dtype=np.int32)
        no_ptr = np.zeros(self.n_users_ + 1, dtype=np.int64)
        no_idx = np.zeros(0, dtype=np.int32)
        backend = resolve_backend("auto")
        kk = min(k, self.n_items_)
        batch = max(1, int(memory_budget_mb * 2**20 // (4 * self.n_items_)))
        parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for start in range(0, internal.size, batch):
            bu = internal[start : start + batch]
            block = self.score(bu)
            sel, nan_rows = select_topk(
                block, bu, kk, mask_ptr=m_ptr, mask_idx=m_idx, test_ptr=no_ptr,
                test_idx=no_idx, candidates=False, backend=backend,
            )  # fmt: skip
            if nan_rows.any():
                bad = ext[start + int(np.argmax(nan_rows))]
                raise ValueError(f"{type(self).__name__} returned NaN scores for user {bad!r}")
            valid = sel.items >= 0
            rows = np.broadcast_to(np.arange(bu.size)[:, None], sel.items.shape)[valid]
            items = sel.items[valid]
            parts.append((rows + start, items, block[rows, items]))
        rows = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
        items = np.concatenate([p[1] for p in parts]) if parts else np.zeros(0, np.int64)
        scores = np.concatenate([p[2] for p in parts]) if parts else np.zeros(0, np.float32)
        first = np.searchsorted(rows, rows, side="left")
        return Recommendations(
            user=ext[rows],
            item=self.item_ids_[items],
            score=scores.astype(np.float32, copy=False),
            rank=(np.arange(rows.size) - first + 1).astype(np.int64),
        )

    def _internal_users(self, ext: np.ndarray) -> np.ndarray:
        index = {u: pos for pos, u in enumerate(self.user_ids_.tolist())}
        out = np.empty(ext.size, dtype=np.int64)
        unknown: list[Any] = []
        for pos, u in enumerate(ext.tolist()):
            found = index.get(u)
            if found is None:
                unknown.append(u)
            else:
                out[pos] = found
        if unknown:
            raise KeyError(
                f"{type(self).__name__}.recommend: {len(unknown)} user id(s) not in the training "
                f"data, e.g. {unknown[:5]!r}"
            )
        return out

    # ------------------------------------------------------------------ sklearn-like params
    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)
        ]

    @classmethod
    def check_param_names(cls, names: Iterable[str], where: str | None = None) -> None:
        """Raise ``ValueError`` naming unknown (or renamed) hyper-parameters of this model."""
        valid = set(cls._param_names())
        given = list(names)
        renamed = [n for n in given if n in cls.renamed_params and n not in valid]
        label = where or cls.__name__
        if renamed:
            hints = ", ".join(f"{n!r} is now {cls.renamed_params[n]!r}" for n in renamed)
            raise ValueError(f"{label}: renamed hyper-parameter(s): {hints}")
        bad = [n for n in given if n not in valid]
        if bad:
            raise ValueError(
                f"{label} has no hyper-parameter(s) {bad}; valid: {sorted(valid)}"
            )

    def get_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> Self:
        self.check_param_names(params)
        for k, v in params.items():
            setattr(self, k, v)
        return self

    def clone(self) -> Self:
        """A new unfitted model with (deep copies of) the same hyper-parameters."""
        return type(self)(**copy.deepcopy(self.get_params()))

    @classmethod
    def space_for(cls, fixed_params: Mapping[str, Any] | None = None) -> SearchSpace:
        """The default search space given the fixed hyper-parameters (which are removed)."""
        fixed = dict(fixed_params or {})
        return {k: dict(v) for k, v in cls.search_space.items() if k not in fixed}

    @classmethod
    def capabilities(cls) -> dict[str, Any]:
        """The declared capabilities, for reports."""
        return {
            "profiles": cls.supports_profiles,
            "candidates": cls.supports_candidates,
            "iterative": cls.iterative,
            "devices": list(cls.devices),
        }

    # ------------------------------------------------------------------ save / load
    def _get_fitted_state(self) -> dict[str, Any]:
        """Learned state to save: every public attribute ending in ``_`` (override to trim)."""
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def _set_fitted_state(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`_get_fitted_state` returned (override together with it)."""
        for k, v in state.items():
            setattr(self, k, v)

    def _save_files(self, out: Path) -> None:  # noqa: B027 - optional hook
        """Write extra files of the saved model into ``out`` (torch: ``weights.safetensors``)."""

    def _load_files(self, src: Path) -> None:  # noqa: B027 - optional hook
        """Read what :meth:`_save_files` wrote (after :meth:`_set_fitted_state`)."""

    def save(self, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write the fitted model to directory ``path`` (:mod:`recforge.models.persistence`).

        No pickle; the files record the recforge version and the training data's checksum.
        ``path`` never holds a half-written model; an existing model is kept unless
        ``overwrite``, and a directory holding anything else is refused.
        """
        check_fitted(self, "save")
        return write_model(self, path, overwrite=overwrite)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str],
        *,
        data: Interactions | str | None = None,
        allow_other_data: bool = False,
        device: str | None = None,
    ) -> Self:
        """Read a model written by :meth:`save`.

        ``data`` (the training ``Interactions`` or its checksum) must match the data the model
        was fitted on, else :class:`ModelDataMismatchError` names both checksums; pass
        ``allow_other_data=True`` to skip the check. Called on ``Recommender`` the class comes
        from the registry; called on a model class the file must hold that class. ``device``
        (``"cpu"``, ``"cuda"``, ``"cuda:N"``; one of the class's ``devices``) scores on that
        device instead of the one the model was fitted on, e.g. a GPU-trained model here.
        """
        model = read_model(cls, path, data=data, allow_other_data=allow_other_data,
                           device=device)
        check_fitted(model, "load")
        return model  # type: ignore[return-value]  # an instance of cls or of a registered subclass

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
