"""The `Interactions` type: one float32 CSR users x items matrix plus id maps and side data.

Internal ids are row / column positions (0..n-1). External ids are whatever the source file
used (ints or strings) and live in ``user_ids`` / ``item_ids`` (``user_ids[u]`` is the external
id of internal user ``u``). Ratings and timestamps, when present, are arrays aligned with the
CSR ``data`` array (same order as the stored non-zeros), so every filter or split that keeps a
subset of non-zeros keeps them in step.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["Interactions"]


def _as_ids(values: np.ndarray | list[Any] | None, n: int) -> np.ndarray:
    if values is None:
        return np.arange(n, dtype=np.int64)
    arr = np.asarray(values)
    if arr.shape != (n,):
        raise ValueError(f"id map has shape {arr.shape}, expected ({n},)")
    return arr


@dataclass(frozen=True, eq=False)
class Interactions:
    """Implicit or explicit feedback as a canonical float32 CSR matrix.

    Attributes:
        matrix: users x items, float32, canonical CSR (sorted indices, no duplicates).
            Values are 1.0 for implicit feedback, or whatever the builder stored.
        user_ids / item_ids: external id of each internal row / column.
        ratings: per stored entry rating (aligned with ``matrix.data``), or None.
        timestamps: per stored entry timestamp (int64, aligned with ``matrix.data``), or None.
        item_features: items x features CSR (float32), or None.
        user_features: users x features CSR (float32), or None.
        name: a label used in reports.
    """

    matrix: sp.csr_matrix
    user_ids: np.ndarray = field(default=None)  # type: ignore[arg-type]
    item_ids: np.ndarray = field(default=None)  # type: ignore[arg-type]
    ratings: np.ndarray | None = None
    timestamps: np.ndarray | None = None
    item_features: sp.csr_matrix | None = None
    user_features: sp.csr_matrix | None = None
    item_feature_names: np.ndarray | None = None
    name: str = "interactions"

    def __post_init__(self) -> None:
        m = self.matrix
        if not sp.isspmatrix_csr(m) and not isinstance(m, sp.csr_array):
            m = sp.csr_matrix(m)
        m = sp.csr_matrix(m, dtype=np.float32)
        if not m.has_canonical_format:
            raise ValueError(
                "matrix must be canonical CSR (sorted indices, no duplicates); "
                "build it with Interactions.from_arrays"
            )
        object.__setattr__(self, "matrix", m)
        object.__setattr__(self, "user_ids", _as_ids(self.user_ids, m.shape[0]))
        object.__setattr__(self, "item_ids", _as_ids(self.item_ids, m.shape[1]))
        for attr in ("ratings", "timestamps"):
            arr = getattr(self, attr)
            if arr is not None and len(arr) != m.nnz:
                raise ValueError(f"{attr} has {len(arr)} values for {m.nnz} stored interactions")
        if self.item_features is not None:
            f = sp.csr_matrix(self.item_features, dtype=np.float32)
            if f.shape[0] != m.shape[1]:
                raise ValueError(f"item_features has {f.shape[0]} rows for {m.shape[1]} items")
            object.__setattr__(self, "item_features", f)
        if self.user_features is not None:
            f = sp.csr_matrix(self.user_features, dtype=np.float32)
            if f.shape[0] != m.shape[0]:
                raise ValueError(f"user_features has {f.shape[0]} rows for {m.shape[0]} users")
            object.__setattr__(self, "user_features", f)

    # ------------------------------------------------------------------ builders
    @classmethod
    def from_arrays(
        cls,
        users: np.ndarray,
        items: np.ndarray,
        values: np.ndarray | None = None,
        *,
        shape: tuple[int, int] | None = None,
        ratings: np.ndarray | None = None,
        timestamps: np.ndarray | None = None,
        user_ids: np.ndarray | None = None,
        item_ids: np.ndarray | None = None,
        duplicates: str = "error",
        **kwargs: Any,
    ) -> Interactions:
        """Build from internal (0-based, integer) user and item indices.

        ``duplicates``: "error" raises on a repeated (user, item) pair, "last" keeps the last
        occurrence (in timestamp order when timestamps are given, else input order). Use
        :func:`recforge.data.filters.deduplicate` to get a report of what was dropped.
        """
        users = np.asarray(users, dtype=np.int64)
        items = np.asarray(items, dtype=np.int64)
        if users.shape != items.shape or users.ndim != 1:
            raise ValueError("users and items must be 1-d arrays of equal length")
        n_users = shape[0] if shape else (int(users.max()) + 1 if users.size else 0)
        n_items = shape[1] if shape else (int(items.max()) + 1 if items.size else 0)
        if user_ids is not None:
            n_users = max(n_users, len(user_ids))
        if item_ids is not None:
            n_items = max(n_items, len(item_ids))
        if users.size and (users.min() < 0 or users.max() >= n_users):
            raise ValueError(f"user index out of range [0, {n_users})")
        if items.size and (items.min() < 0 or items.max() >= n_items):
            raise ValueError(f"item index out of range [0, {n_items})")
        vals = (
            np.ones(users.size, dtype=np.float32)
            if values is None
            else np.asarray(values, dtype=np.float32)
        )
        # Sort by (user, item) with a stable sort so "last occurrence" is well defined.
        if timestamps is not None:
            ts_arr = np.asarray(timestamps, dtype=np.int64)
            order = np.lexsort((ts_arr, items, users))
        else:
            order = np.lexsort((np.arange(users.size), items, users))
        u, i = users[order], items[order]
        dup_next = np.zeros(u.size, dtype=bool)
        if u.size > 1:
            dup_next[:-1] = (u[1:] == u[:-1]) & (i[1:] == i[:-1])
        if dup_next.any():
            if duplicates == "error":
                k = int(np.argmax(dup_next))
                raise ValueError(
                    f"duplicate interaction (user index {u[k]}, item index {i[k]}); "
                    "deduplicate first (recforge.data.filters.deduplicate) "
                    "or pass duplicates='last'"
                )
            if duplicates != "last":
                raise ValueError(f"duplicates must be 'error' or 'last', got {duplicates!r}")
            keep = ~dup_next
            order = order[keep]
            u, i = u[keep], i[keep]
        indptr = np.zeros(n_users + 1, dtype=np.int64)
        np.add.at(indptr, u + 1, 1)
        np.cumsum(indptr, out=indptr)
        idx_dtype = np.int32 if max(n_items, u.size) < 2**31 - 1 else np.int64
        matrix = sp.csr_matrix(
            (vals[order], i.astype(idx_dtype), indptr.astype(idx_dtype)), shape=(n_users, n_items)
        )
        matrix.has_sorted_indices = True
        return cls(
            matrix=matrix,
            user_ids=user_ids,  # type: ignore[arg-type]
            item_ids=item_ids,  # type: ignore[arg-type]
            ratings=None if ratings is None else np.asarray(ratings, dtype=np.float32)[order],
            timestamps=None if timestamps is None else np.asarray(timestamps, np.int64)[order],
            **kwargs,
        )

    # ------------------------------------------------------------------ views
    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape  # type: ignore[return-value]

    @property
    def n_users(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.matrix.shape[1])

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)

    def to_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(user index, item index) of every stored interaction, in CSR order."""
        m = self.matrix
        users = np.repeat(np.arange(m.shape[0], dtype=np.int64), np.diff(m.indptr))
        return users, m.indices.astype(np.int64)

    def binarized(self) -> Interactions:
        """Same interactions with every stored value set to 1.0 (the paper's implicit view)."""
        m = self.matrix.copy()
        m.data[:] = 1.0
        return replace(self, matrix=m)

    def select(self, mask: np.ndarray) -> Interactions:
        """Keep the stored interactions where ``mask`` (aligned with ``matrix.data``) is True.

        Shape, id maps and features are unchanged, so the result stays comparable.
        """
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != (self.nnz,):
            raise ValueError(f"mask has shape {mask.shape}, expected ({self.nnz},)")
        m = self.matrix
        users = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))[mask]
        indptr = np.zeros(m.shape[0] + 1, dtype=m.indptr.dtype)
        np.add.at(indptr, users + 1, 1)
        np.cumsum(indptr, out=indptr)
        new = sp.csr_matrix((m.data[mask], m.indices[mask], indptr), shape=m.shape)
        new.has_sorted_indices = True
        return replace(
            self,
            matrix=new,
            ratings=None if self.ratings is None else self.ratings[mask],
            timestamps=None if self.timestamps is None else self.timestamps[mask],
        )

    def with_matrix(self, matrix: sp.csr_matrix) -> Interactions:
        """Same ids and features around another matrix of the same shape (no side arrays)."""
        if matrix.shape != self.shape:
            raise ValueError(f"matrix shape {matrix.shape} != {self.shape}")
        m = sp.csr_matrix(matrix, dtype=np.float32)
        m.sum_duplicates()
        m.sort_indices()
        m.eliminate_zeros()
        return replace(self, matrix=m, ratings=None, timestamps=None)

    def user_counts(self) -> np.ndarray:
        return np.diff(self.matrix.indptr).astype(np.int64)

    def item_counts(self) -> np.ndarray:
        return np.bincount(self.matrix.indices, minlength=self.n_items).astype(np.int64)

    # ------------------------------------------------------------------ identity
    def checksum(self) -> str:
        """sha256 of the interaction structure and values (not of the id maps' dtype)."""
        m = self.matrix
        h = hashlib.sha256()
        h.update(np.asarray(m.shape, dtype=np.int64).tobytes())
        h.update(m.indptr.astype(np.int64).tobytes())
        h.update(m.indices.astype(np.int64).tobytes())
        h.update(m.data.astype(np.float32).tobytes())
        return h.hexdigest()

    def __repr__(self) -> str:
        extra = []
        if self.ratings is not None:
            extra.append("ratings")
        if self.timestamps is not None:
            extra.append("timestamps")
        if self.item_features is not None:
            extra.append(f"item_features={self.item_features.shape[1]}")
        return (
            f"Interactions(name={self.name!r}, users={self.n_users}, items={self.n_items}, "
            f"nnz={self.nnz}{', ' + ', '.join(extra) if extra else ''})"
        )
