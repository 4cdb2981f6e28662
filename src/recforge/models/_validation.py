"""The one input check every model's public methods run before any work (template method).

Each function raises an error that names the model, the method and what was wrong; it returns
the input in the one form ``_fit``/``_score``/``_score_profiles``/``_score_candidates`` receive:
``Interactions`` for training, int64 user ids, float32 CSR profiles, CSR candidate lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions

if TYPE_CHECKING:
    from recforge.models.base import Recommender

__all__ = [
    "IdOutOfRangeError",
    "NotFittedError",
    "boolean",
    "check_candidates",
    "check_fitted",
    "check_profiles",
    "check_scores",
    "check_train",
    "check_users",
    "one_of",
    "optional_threads",
    "positive_float",
    "positive_int",
]


class NotFittedError(RuntimeError):
    """Raised when a model is used before ``fit``."""


class IdOutOfRangeError(IndexError, ValueError):
    """An internal user or item id outside the fitted model's range.

    Both an ``IndexError`` (an index past the end) and a ``ValueError`` (bad argument value),
    like numpy's ``AxisError``, so either ``except`` clause catches it.
    """


def _who(model: Recommender | str, method: str) -> str:
    name = model if isinstance(model, str) else type(model).__name__
    return f"{name}.{method}"


def check_fitted(model: Recommender, method: str) -> None:
    """Raise :class:`NotFittedError` unless ``model.fit`` completed."""
    if "fit_seconds_" not in vars(model):
        raise NotFittedError(
            f"{_who(model, method)}: {type(model).__name__} is not fitted; call fit(train) first"
        )


def check_train(model: Recommender | str, train: Any, method: str = "fit") -> Interactions:
    """``train`` must be a non-empty-shaped :class:`Interactions`."""
    if not isinstance(train, Interactions):
        raise TypeError(
            f"{_who(model, method)}: train must be an Interactions, got {type(train).__name__}"
        )
    if train.n_users == 0 or train.n_items == 0:
        raise ValueError(
            f"{_who(model, method)}: train has shape {train.shape}; it needs at least one user "
            "and one item"
        )
    return train


def check_ids(ids: Any, n: int, who: str, what: str) -> np.ndarray:
    """1-d integer ids in ``[0, n)`` as int64 (a copy only when the dtype differs)."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(
            f"{who}: {what}s must be a 1-d array of integer ids, got shape {arr.shape}"
        )
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{who}: {what}s must be integer ids, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size:
        bad = (arr < 0) | (arr >= n)
        if bad.any():
            pos = int(np.argmax(bad))
            raise IdOutOfRangeError(
                f"{who}: {what} ids must lie in [0, {n}); {int(bad.sum())} out of range "
                f"(first: {int(arr[pos])} at position {pos})"
            )
    return arr


def check_users(model: Recommender, users: Any, method: str = "score") -> np.ndarray:
    """Internal user ids of a fitted model as a 1-d int64 array."""
    return check_ids(users, model.n_users_, _who(model, method), "user")


def check_profiles(model: Recommender, profiles: Any, method: str = "score_profiles") -> Any:
    """Fold-in profiles (sparse, dense 2-d or ``Interactions``) as a float32 CSR.

    Stored values are kept as given (models that learn from binary data binarise them as
    they did the training matrix).
    """
    who = _who(model, method)
    m = profiles.matrix if isinstance(profiles, Interactions) else profiles
    if not (sp.issparse(m) or isinstance(m, np.ndarray)):
        raise TypeError(
            f"{who}: profiles must be a sparse or dense 2-d matrix or Interactions, "
            f"got {type(profiles).__name__}"
        )
    if m.ndim != 2 or m.shape[1] != model.n_items_:
        cols = f" ({m.shape[1]} item columns)" if m.ndim == 2 else ""
        raise ValueError(
            f"{who}: profiles have shape {m.shape}{cols}, expected (n, {model.n_items_}): the "
            f"model was fitted on {model.n_items_} items"
        )
    p = sp.csr_matrix(m, dtype=np.float32)
    if p.nnz and not np.all(np.isfinite(p.data)):
        raise ValueError(f"{who}: profiles hold non-finite values")
    return p


def check_candidates(
    model: Recommender, users: np.ndarray, items: Any, method: str = "score_candidates"
) -> sp.csr_matrix:
    """Candidate items per user as a CSR with one row per entry of ``users``.

    Accepted: a CSR/sparse matrix (``len(users) x n_items``; its stored entries are the
    candidates, in stored order), a 2-d int array (``len(users) x m``, fixed-length lists) or a
    sequence of 1-d int arrays (ragged lists). Duplicates are kept (each pair is scored).
    """
    who = _who(model, method)
    n_items = model.n_items_
    if sp.issparse(items):
        c = sp.csr_matrix(items)
        if c.shape != (users.size, n_items):
            raise ValueError(
                f"{who}: candidate matrix has shape {c.shape}, expected ({users.size}, {n_items})"
            )
        indptr = np.asarray(c.indptr, dtype=np.int64)
        flat = np.asarray(c.indices)
    elif isinstance(items, np.ndarray) and items.ndim == 2:
        if items.shape[0] != users.size:
            raise ValueError(f"{who}: {items.shape[0]} candidate rows for {users.size} users")
        flat = items.ravel()
        indptr = np.arange(users.size + 1, dtype=np.int64) * items.shape[1]
    elif isinstance(items, Sequence | np.ndarray):
        rows = [np.asarray(r) for r in items]
        if len(rows) != users.size:
            raise ValueError(f"{who}: {len(rows)} candidate lists for {users.size} users")
        for pos, r in enumerate(rows):
            if r.ndim != 1:
                raise ValueError(
                    f"{who}: candidate list {pos} must be 1-d item ids, got shape {r.shape}"
                )
        indptr = np.zeros(users.size + 1, dtype=np.int64)
        np.cumsum([r.size for r in rows], out=indptr[1:])
        flat = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    else:
        raise TypeError(
            f"{who}: items must be a sparse matrix, a 2-d int array or a list of int arrays, "
            f"got {type(items).__name__}"
        )
    indices = check_ids(flat, n_items, who, "candidate item")
    data = np.ones(indices.size, dtype=np.float32)
    out = sp.csr_matrix((data, indices, indptr), shape=(users.size, n_items))
    return out


def check_scores(
    model: Recommender, scores: Any, shape: tuple[int, ...], method: str
) -> np.ndarray:
    """A model's output as dense float32 of the expected shape (model bugs named clearly)."""
    if sp.issparse(scores):
        scores = scores.toarray()
    if not isinstance(scores, np.ndarray):
        raise TypeError(
            f"{_who(model, method)} returned {type(scores).__name__}; models return dense "
            "numpy arrays"
        )
    if scores.shape != shape:
        raise ValueError(
            f"{_who(model, method)} returned scores of shape {scores.shape}; expected {shape}"
        )
    return scores if scores.dtype == np.float32 else scores.astype(np.float32)


def positive_int(value: Any, name: str, who: str) -> int:
    """A hyper-parameter or argument that must be an integer >= 1 (bool refused)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive integer, got {value!r}")
    return int(value)


def positive_float(value: Any, name: str, who: str, *, allow_zero: bool = False) -> float:
    """A finite number > 0 (or >= 0 with ``allow_zero``)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{who}: {name} must be a number, got {value!r}") from None
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{who}: {name} must be finite and {bound}, got {value!r}")
    return v


def optional_threads(value: Any, who: str) -> int | None:
    """The shared ``n_threads`` hyper-parameter: a positive int, or None (library default)."""
    return None if value is None else positive_int(value, "n_threads", who)


def one_of(value: Any, choices: tuple[Any, ...], name: str, who: str) -> Any:
    """A hyper-parameter that must be one of ``choices`` (e.g. ``sgd_mode``)."""
    if value not in choices:
        raise ValueError(f"{who}: unknown {name} {value!r}; choose one of {list(choices)}")
    return value


def boolean(value: Any, name: str, who: str) -> bool:
    """A hyper-parameter that must be True or False (0/1 and strings refused)."""
    if not isinstance(value, bool | np.bool_):
        raise ValueError(f"{who}: {name} must be True or False, got {value!r}")
    return bool(value)
