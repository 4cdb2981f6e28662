"""A small planted-structure split shared by the tuning tests."""

from __future__ import annotations

import numpy as np
import pytest

from recforge.data.interactions import Interactions
from recforge.data.split import Split, negatives_from_lists


def planted_split(seed: int = 0, n_users: int = 80, n_items: int = 50) -> Split:
    """Two user blocks preferring their own half of the items; random 65/15/20 split."""
    rng = np.random.default_rng(seed)
    p = np.full((n_users, n_items), 0.04)
    p[: n_users // 2, : n_items // 2] = 0.45
    p[n_users // 2 :, n_items // 2 :] = 0.45
    users, items = np.nonzero(rng.random((n_users, n_items)) < p)
    full = Interactions.from_arrays(users, items, shape=(n_users, n_items))
    part = rng.choice(3, size=full.nnz, p=[0.65, 0.15, 0.20])
    seen = full.matrix.toarray() > 0

    def negatives(k: int) -> list[np.ndarray]:
        return [rng.choice(np.flatnonzero(~seen[u]), size=k) for u in range(n_users)]

    return Split(
        train=full.select(part == 0),
        validation=full.select(part == 1),
        test=full.select(part == 2),
        validation_negatives=negatives_from_lists(negatives(10), n_items),
        test_negatives=negatives_from_lists(negatives(10), n_items),
        method="planted_random",
        params={"seed": seed},
    )


@pytest.fixture(scope="session")
def split() -> Split:
    return planted_split()
