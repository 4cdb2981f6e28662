"""The Mult-VAE preprocessing of Liang et al. (WWW 2018) as a named split (``mult_vae``).

The protocol of the paper's Tables 8 and 9 (paper-protocols §2.6), step by step:

1. keep ratings ``>= min_rating`` (4 stars; MovieLens-20M has half stars, so this is the
   original's ``> 3.5``) as implicit 1s;
2. keep users with at least ``min_user_interactions`` (5) of them; items are not filtered;
3. shuffle those users (in user-id order) with ``numpy.random.RandomState(seed).permutation``,
   seed 98765: the last ``n_heldout_users`` are test users, the ``n_heldout_users`` before
   them validation users, the rest training users;
4. keep only the held-out interactions on items that some training user has;
5. per held-out user, in user-id order and with a fresh ``RandomState(seed)`` for the
   validation users and another for the test users: a user with at least 5 remaining
   interactions gets ``floor(target_fraction * n)`` random targets
   (``RandomState.choice(n, size, replace=False)`` over the user's interactions in item-id
   order, which is the order of MovieLens-20M's ``ratings.csv``); the rest is fold-in. A user
   with fewer keeps everything as fold-in.

The legacy ``RandomState`` (not :func:`numpy.random.default_rng`) is used on purpose: with the
same seed and data it draws the same users and targets as the original preprocessing.
Every part keeps the input's shape and id maps; what each step dropped is counted in
``params`` (nothing is dropped silently). Items without a training user stay as empty columns.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recforge.data.interactions import Interactions
from recforge.data.split import Split

__all__ = ["mult_vae_split"]


def _rows(x: Interactions) -> np.ndarray:
    return np.repeat(np.arange(x.n_users, dtype=np.int64), x.user_counts())


def _targets(part: Interactions, users: np.ndarray, seed: int, target_fraction: float,
             min_interactions: int) -> np.ndarray:
    """Mask of the target entries of ``part`` (entries of ``users`` only), drawn per user."""
    rs = np.random.RandomState(seed)
    mask = np.zeros(part.nnz, dtype=bool)
    indptr = part.matrix.indptr
    for u in np.sort(users):
        start, stop = int(indptr[u]), int(indptr[u + 1])
        n = stop - start
        if n >= min_interactions:
            # int() of the float product, as the original; 1e-9 guards 0.2*n just below k
            k = int(target_fraction * n + 1e-9)
            mask[start + rs.choice(n, size=k, replace=False)] = True
    return mask


def mult_vae_split(
    x: Interactions,
    n_heldout_users: int = 10_000,
    seed: int = 98765,
    *,
    min_rating: float | None = 4.0,
    min_user_interactions: int = 5,
    target_fraction: float = 0.2,
) -> Split:
    """Mult-VAE's held-out-user split (see the module docstring for the exact steps).

    ``x`` needs its ratings (``x.ratings``) unless ``min_rating`` is None (already implicit).
    Returns train (training users), validation / validation_profiles and test / test_profiles
    (targets and fold-in items of the held-out users).
    """
    if n_heldout_users < 1:
        raise ValueError(f"n_heldout_users must be >= 1, got {n_heldout_users}")
    if not 0.0 < target_fraction < 1.0:
        raise ValueError(f"target_fraction must be strictly between 0 and 1, got "
                         f"{target_fraction}")
    if min_user_interactions < 1:
        raise ValueError(f"min_user_interactions must be >= 1, got {min_user_interactions}")
    if min_rating is not None:
        if x.ratings is None:
            raise ValueError(
                f"mult_vae needs the ratings of {x.name!r} to keep those >= {min_rating}; "
                "load the dataset with its ratings, or pass min_rating=None for implicit data"
            )
        rated = x.select(x.ratings >= min_rating).binarized()
    else:
        rated = x.binarized()
    counts = rated.user_counts()
    active = np.flatnonzero(counts >= min_user_interactions)
    kept = rated.select(counts[_rows(rated)] >= min_user_interactions)
    if 2 * n_heldout_users >= active.size:
        raise ValueError(
            f"2 x {n_heldout_users} held-out users requested but only {active.size} users "
            f"have >= {min_user_interactions} ratings >= {min_rating}"
        )
    order = active[np.random.RandomState(seed).permutation(active.size)]
    n_train = active.size - 2 * n_heldout_users
    role = np.full(x.n_users, -1, dtype=np.int8)  # -1 dropped, 0 train, 1 validation, 2 test
    role[order[:n_train]] = 0
    role[order[n_train:n_train + n_heldout_users]] = 1
    role[order[n_train + n_heldout_users:]] = 2

    entry_role = role[_rows(kept)]
    train_mask = entry_role == 0
    in_train = np.zeros(x.n_items, dtype=bool)
    in_train[kept.matrix.indices[train_mask]] = True
    held = kept.select((entry_role > 0) & in_train[kept.matrix.indices])
    held_role = role[_rows(held)]
    parts: dict[str, Interactions] = {}
    for r, name in ((1, "validation"), (2, "test")):
        target = _targets(held, order[role[order] == r], seed, target_fraction, 5)
        parts[name] = held.select(target & (held_role == r))
        parts[f"{name}_profiles"] = held.select(~target & (held_role == r))

    params: dict[str, Any] = {
        "n_heldout_users": n_heldout_users,
        "seed": seed,
        "min_rating": min_rating,
        "min_user_interactions": min_user_interactions,
        "target_fraction": target_fraction,
        "rng": "numpy.random.RandomState (legacy), as the original preprocessing",
        "dropped_low_ratings": int(x.nnz - rated.nnz),
        "dropped_users": int(int((counts > 0).sum()) - active.size),
        "dropped_user_interactions": int(rated.nnz - kept.nnz),
        "dropped_heldout_on_unseen_items": int((entry_role > 0).sum() - held.nnz),
        "n_train_users": int(n_train),
        "n_items_in_train": int(in_train.sum()),
    }
    return Split(
        train=kept.select(train_mask),
        test=parts["test"],
        test_profiles=parts["test_profiles"],
        validation=parts["validation"],
        validation_profiles=parts["validation_profiles"],
        method="mult_vae",
        params=params,
    )
