"""Vectorised negative sampling and minibatching (numpy only; importable without torch).

A *negative* for user u is an item outside u's training row. Candidates are drawn in blocks
(uniform, or in proportion to training popularity raised to ``exponent``) and rejected against
the CSR rows: with canonical CSR (sorted indices) the keys ``u * n_items + i`` of the stored
entries are globally sorted, so one ``np.searchsorted`` tests every candidate at once; only the
rejected ones are redrawn. No per-pair Python loop runs anywhere. Users too dense for
rejection (uniform mode) get exact draws from their complement, also by ``searchsorted``.

Forms for training:

- :meth:`NegativeSampler.pairwise`: ``(user, positive, negative)`` triples, ``n_negatives``
  per training interaction (BPR, CMN) or per sampled user (:meth:`NegativeSampler.user_triples`,
  SpectralCF's one positive and one negative per user of a batch);
- :meth:`NegativeSampler.pointwise`: ``(user, item, label)`` with every positive (label 1)
  and ``n_negatives`` negatives per positive (label 0), as NeuMF trains.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions

__all__ = ["NegativeSampler", "minibatches"]

Mode = Literal["uniform", "popularity"]

#: rejection rounds before the exact fallback (each round redraws only the rejected pairs).
_MAX_ROUNDS = 64


def minibatches(
    n: int, batch_size: int, rng: np.random.Generator | None = None, *, drop_last: bool = False
) -> Iterator[np.ndarray]:
    """Index blocks covering ``range(n)`` once, shuffled by ``rng`` (in order when None)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    order = np.arange(n, dtype=np.int64) if rng is None else rng.permutation(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield order[start : start + batch_size]


class NegativeSampler:
    """Negative items for users of one training matrix.

    Args:
        train: the training interactions (or a users x items sparse matrix).
        rng: the fit's numpy generator (seeded by the model).
        mode: ``"uniform"`` over items, or ``"popularity"`` (probability proportional to the
            item's number of training users to the power ``exponent``).
        allowed: optional boolean mask over items that may be drawn at all (e.g. CMN draws
            only items with at least one training user).
    """

    def __init__(
        self,
        train: Interactions | sp.spmatrix,
        rng: np.random.Generator,
        *,
        mode: Mode = "uniform",
        exponent: float = 1.0,
        allowed: np.ndarray | None = None,
    ) -> None:
        m = train.matrix if isinstance(train, Interactions) else sp.csr_matrix(train)
        m = sp.csr_matrix(m)
        if not m.has_canonical_format:
            m = m.copy()
            m.sum_duplicates()  # also sorts the indices
        m.eliminate_zeros()
        if mode not in ("uniform", "popularity"):
            raise ValueError(
                f"NegativeSampler: mode must be 'uniform' or 'popularity', got {mode!r}"
            )
        self.n_users, self.n_items = (int(m.shape[0]), int(m.shape[1]))
        self.indptr = m.indptr.astype(np.int64)
        self.indices = m.indices.astype(np.int64)
        self.rng = rng
        self.mode: Mode = mode
        self._rows = np.repeat(np.arange(self.n_users, dtype=np.int64), np.diff(self.indptr))
        self._keys = self._rows * self.n_items + self.indices  # sorted: canonical CSR
        self.allowed: np.ndarray | None = None
        if allowed is not None:
            a = np.asarray(allowed, dtype=bool)
            if a.shape != (self.n_items,):
                raise ValueError(
                    f"NegativeSampler: allowed has shape {a.shape}, expected ({self.n_items},)"
                )
            self.allowed = a
        counts = np.bincount(self.indices, minlength=self.n_items).astype(np.float64)
        self._cdf: np.ndarray | None = None
        if mode == "popularity":
            weights = counts ** float(exponent)
            if self.allowed is not None:
                weights[~self.allowed] = 0.0
            if not np.isfinite(weights).all() or weights.sum() <= 0:
                raise ValueError("NegativeSampler: popularity mode needs items with training users")
            self._cdf = np.cumsum(weights) / weights.sum()
        # How many items each user may draw: allowed items outside the user's row.
        n_allowed = self.n_items if self.allowed is None else int(self.allowed.sum())
        own_allowed = np.diff(self.indptr) if self.allowed is None else np.bincount(
            self._rows[self.allowed[self.indices]], minlength=self.n_users)
        self.free = n_allowed - own_allowed
        if self._cdf is not None:
            # items of zero weight can never be drawn: count only positive-weight free items
            positive = np.diff(np.concatenate(([0.0], self._cdf))) > 0
            own_pos = np.bincount(self._rows[positive[self.indices]], minlength=self.n_users)
            self.free = int(positive.sum()) - own_pos

    # ------------------------------------------------------------------ core
    def is_positive(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Whether each ``(users[k], items[k])`` is a training interaction."""
        keys = np.asarray(users, dtype=np.int64) * self.n_items + np.asarray(items, dtype=np.int64)
        if self._keys.size == 0:
            return np.zeros(keys.shape, dtype=bool)
        pos = np.searchsorted(self._keys, keys)
        pos = np.minimum(pos, self._keys.size - 1)
        return self._keys[pos] == keys

    def _draw(self, size: int) -> np.ndarray:
        if self._cdf is not None:
            out = np.searchsorted(self._cdf, self.rng.random(size), side="right")
            return np.minimum(out, self.n_items - 1).astype(np.int64)
        return self.rng.integers(0, self.n_items, size=size, dtype=np.int64)

    def _rejected(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        bad = self.is_positive(users, items)
        if self.allowed is not None:
            bad |= ~self.allowed[items]
        return bad

    def negatives(self, users: np.ndarray, n: int = 1) -> np.ndarray:
        """``(len(users), n)`` int64 negatives, drawn independently (with replacement)."""
        u = np.asarray(users, dtype=np.int64).ravel()
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"NegativeSampler.negatives: n must be a positive integer, got {n!r}")
        if u.size and (u.min() < 0 or u.max() >= self.n_users):
            raise IndexError(f"NegativeSampler: user index out of range [0, {self.n_users})")
        if u.size == 0:
            return np.zeros((0, int(n)), dtype=np.int64)
        starved = np.unique(u[self.free[u] <= 0])
        if starved.size:
            raise ValueError(
                f"NegativeSampler: {starved.size} user(s) have no item left to draw as a negative "
                f"(e.g. user {int(starved[0])}); drop them from the training data"
            )
        flat_u = np.repeat(u, int(n))
        out = self._draw(flat_u.size)
        todo = np.flatnonzero(self._rejected(flat_u, out))
        rounds = 0
        while todo.size and rounds < _MAX_ROUNDS:
            out[todo] = self._draw(todo.size)
            todo = todo[self._rejected(flat_u[todo], out[todo])]
            rounds += 1
        if todo.size:
            if self._cdf is not None or self.allowed is not None:
                raise RuntimeError(
                    f"NegativeSampler: {todo.size} draws still rejected after {_MAX_ROUNDS} "
                    "rounds; the users are too dense for this sampling mode"
                )
            out[todo] = self._exact_uniform(flat_u[todo])
        return out.reshape(u.size, int(n))

    def _exact_uniform(self, users: np.ndarray) -> np.ndarray:
        """Uniform draws from each user's complement: the r-th item outside the row.

        With the row's sorted items m_0 < m_1 < ..., the r-th free item is r + j, where j
        counts the m_k with m_k - k <= r; ``m_k - k`` is non-decreasing within a row, so one
        global ``searchsorted`` over ``u * (n_items + 1) + (m_k - k)`` finds j for all draws.
        """
        r = (self.rng.random(users.size) * self.free[users]).astype(np.int64)
        r = np.minimum(r, self.free[users] - 1)
        shifted = self.indices - (np.arange(self.indices.size) - self.indptr[self._rows])
        keys = self._rows * (self.n_items + 1) + shifted
        j = np.searchsorted(keys, users * (self.n_items + 1) + r, side="right") - self.indptr[users]
        return r + j

    # ------------------------------------------------------------------ training forms
    def pairwise(self, n_negatives: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(user, positive, negative)``: every training pair repeated ``n_negatives`` times."""
        users = np.repeat(self._rows, int(n_negatives))
        pos = np.repeat(self.indices, int(n_negatives))
        neg = self.negatives(self._rows, n_negatives).ravel()
        return users, pos, neg

    def user_triples(self, users: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One random training item and one negative for each given user (users need items)."""
        u = np.asarray(users, dtype=np.int64).ravel()
        deg = np.diff(self.indptr)[u]
        if u.size and (deg <= 0).any():
            bad = int(u[np.flatnonzero(deg <= 0)[0]])
            raise ValueError(f"NegativeSampler.user_triples: user {bad} has no training items")
        pick = self.indptr[u] + (self.rng.random(u.size) * deg).astype(np.int64)
        pos = self.indices[np.minimum(pick, self.indptr[u + 1] - 1)]
        return u, pos, self.negatives(u, 1).ravel()

    def sample_users(self, n: int, *, replace: bool = True) -> np.ndarray:
        """``n`` users with at least one training item, uniformly.

        ``replace=False`` draws ``n`` distinct users (SpectralCF's batches) when there are that
        many, and falls back to drawing with replacement when there are fewer.
        """
        active = np.flatnonzero(np.diff(self.indptr) > 0)
        if active.size == 0:
            raise ValueError("NegativeSampler.sample_users: no user has training items")
        if not replace and int(n) <= active.size:
            return self.rng.choice(active, size=int(n), replace=False)
        return active[self.rng.integers(0, active.size, size=int(n))]

    def pointwise(self, n_negatives: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(user, item, label)``: all positives (1.0) then ``n_negatives`` per positive (0.0)."""
        k = int(n_negatives)
        neg = self.negatives(self._rows, k).ravel() if k else np.zeros(0, dtype=np.int64)
        users = np.concatenate([self._rows, np.repeat(self._rows, k)])
        items = np.concatenate([self.indices, neg])
        labels = np.concatenate(
            [np.ones(self._rows.size, np.float32), np.zeros(neg.size, np.float32)]
        )
        return users, items, labels
