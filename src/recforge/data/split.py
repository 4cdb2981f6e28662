"""The `Split` type: train / validation / test parts sharing one id space, plus negatives.

Every part is an :class:`~recforge.data.interactions.Interactions` of the same shape with the
same id maps. Candidate negatives (for sampled, candidate-set protocols) are kept as *raw*
ragged lists in a CSR container that is deliberately not canonicalised, so the audit can see
duplicated negatives; the evaluator de-duplicates when it builds candidate sets.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge._json import jsonable
from recforge.data.interactions import Interactions

__all__ = ["Split", "negatives_from_lists"]


def negatives_from_lists(lists: list[np.ndarray] | list[list[int]], n_items: int) -> sp.csr_matrix:
    """Pack per-user negative item lists (duplicates kept) into a non-canonical CSR matrix."""
    lengths = np.fromiter((len(x) for x in lists), dtype=np.int64, count=len(lists))
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    indices = (
        np.concatenate([np.asarray(x, dtype=np.int64) for x in lists])
        if lengths.sum()
        else np.zeros(0, dtype=np.int64)
    )
    data = np.ones(indices.size, dtype=np.float32)
    m = sp.csr_matrix((len(lists), n_items), dtype=np.float32)
    # Assign the arrays directly: the constructor would not sum duplicates, but be explicit.
    m.data, m.indices, m.indptr = data, indices.astype(np.int32), indptr.astype(np.int32)
    m.has_canonical_format = False
    return m


def _hash_csr(h: Any, m: sp.csr_matrix | None) -> None:
    if m is None:
        h.update(b"none")
        return
    h.update(np.asarray(m.shape, dtype=np.int64).tobytes())
    h.update(np.asarray(m.indptr, dtype=np.int64).tobytes())
    h.update(np.asarray(m.indices, dtype=np.int64).tobytes())


@dataclass(frozen=True, eq=False)
class Split:
    """A train/test(/validation) split.

    Attributes:
        train: what models are fitted on.
        test: held-out positives for the final evaluation.
        validation: held-out positives for tuning (carved out of train), or None.
        test_negatives / validation_negatives: raw per-user negative lists (users x items
            CSR, possibly with duplicates) for candidate-set protocols, or None.
        test_profiles: for held-out-user splits, the fold-in interactions of the test users
            (scored through ``score_profiles``); None otherwise.
        method: how the split was made (e.g. "per_user_holdout", "predefined").
        params: the parameters and seed it was made with.
    """

    train: Interactions
    test: Interactions
    validation: Interactions | None = None
    test_negatives: sp.csr_matrix | None = None
    validation_negatives: sp.csr_matrix | None = None
    test_profiles: Interactions | None = None
    validation_profiles: Interactions | None = None
    method: str = "unknown"
    params: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("test", "validation", "test_profiles", "validation_profiles"):
            part = getattr(self, name)
            if part is not None and part.shape != self.train.shape:
                raise ValueError(
                    f"split part {name} has shape {part.shape}, train {self.train.shape}"
                )
        for name in ("test_negatives", "validation_negatives"):
            neg = getattr(self, name)
            if neg is not None and neg.shape != self.train.shape:
                raise ValueError(f"{name} has shape {neg.shape}, train {self.train.shape}")

    def fingerprint(self) -> str:
        """sha256 over the content of every part (structure only, not the values)."""
        h = hashlib.sha256()
        for name in (
            "train", "test", "validation", "test_profiles", "validation_profiles",
        ):
            part = getattr(self, name)
            h.update(name.encode())
            _hash_csr(h, None if part is None else part.matrix)
        for name in ("test_negatives", "validation_negatives"):
            h.update(name.encode())
            _hash_csr(h, getattr(self, name))
        return h.hexdigest()

    def describe(self) -> dict[str, Any]:
        """Counts per part, for reports and ``--json`` output."""
        out: dict[str, Any] = {
            "method": self.method,
            "params": self.params,
            "fingerprint": self.fingerprint(),
            "shape": list(self.train.shape),
        }
        for name in ("train", "validation", "test", "test_profiles"):
            part = getattr(self, name)
            if part is not None:
                out[name] = {
                    "interactions": part.nnz,
                    "users": int((part.user_counts() > 0).sum()),
                    "items": int((part.item_counts() > 0).sum()),
                }
        for name in ("test_negatives", "validation_negatives"):
            neg = getattr(self, name)
            if neg is not None:
                out[name] = {"entries": int(neg.indptr[-1])}
        return jsonable(out)  # type: ignore[no-any-return]
