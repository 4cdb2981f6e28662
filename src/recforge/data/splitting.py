"""Seeded train/test(/validation) splits of an :class:`Interactions`.

Every function returns a :class:`~recforge.data.split.Split` whose parts are carved from the
input with :meth:`Interactions.select`, so all parts keep the input's shape, id maps, features
and the ratings/timestamps of the interactions they hold. ``method`` names the function and
``params`` records every argument (seed included) as plain JSON values, plus the few measured
outcomes named in each docstring, so a split can be rebuilt from its parameters: the same
input, parameters and seed give the same :meth:`Split.fingerprint`. Randomness comes only
from ``numpy.random.default_rng(seed)``.

Counting conventions (RecSys'19 evaluation framework, "Are we really making much progress?"):

* Per-user percentages round the **train** count: a user with ``n`` interactions keeps
  ``t = round(n * (1 - test_fraction))`` of them (Python ``round``: halves go to the even
  integer, e.g. ``round(2.5) == 2``), and if that would keep all ``n`` while ``n >= 2``, one is
  moved out (``t = n - 1``) so every user with two or more interactions gets at least one
  held-out item. A user with a single interaction keeps it in train.
* Global percentages round the global train count the same way (``round(nnz * (1 - f))``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from recforge._kernels.topk import select_rows
from recforge.data.interactions import Interactions
from recforge.data.split import Split, negatives_from_lists

__all__ = [
    "carve_validation",
    "global_holdout",
    "held_out_users",
    "leave_one_out",
    "per_user_holdout",
    "predefined_split",
    "sample_test_negatives",
    "temporal_split",
]

Rounding = Literal["round", "floor", "ceil"]


# ---------------------------------------------------------------------------- helpers
def _check_fraction(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be strictly between 0 and 1, got {value}")
    return value


def _rng(seed: int) -> np.random.Generator:
    # An unseeded generator would make the recorded params useless for rebuilding the split.
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise TypeError(f"seed must be an int, got {seed!r}")
    return np.random.default_rng(int(seed))


def _complement(fraction: float) -> float:
    # 1 - 0.7 is 0.30000000000000004 in binary floating point; rounding to 12 decimals gives
    # the same float as the literal 0.3, so counts match code that passes the literal share.
    return round(1.0 - fraction, 12)


def _row_of_entry(x: Interactions) -> np.ndarray:
    return np.repeat(np.arange(x.n_users, dtype=np.int64), x.user_counts())


def _random_rank(x: Interactions, rng: np.random.Generator) -> np.ndarray:
    """Position of each stored entry in a random permutation of its user's entries."""
    users = _row_of_entry(x)
    keys = rng.random(x.nnz)
    # CSR rows are contiguous, so sorting by (user, key) permutes entries inside each row only.
    order = np.lexsort((keys, users))
    rank = np.empty(x.nnz, dtype=np.int64)
    rank[order] = np.arange(x.nnz, dtype=np.int64) - x.matrix.indptr[users[order]]
    return rank


def _kept_counts(n: np.ndarray, keep_fraction: float, rounding: str) -> np.ndarray:
    """Per-user number of interactions that stay in the larger part (see module docstring)."""
    raw = n.astype(np.float64) * keep_fraction
    if rounding == "round":
        # numpy rounds halves to even exactly like Python's round() on a float.
        kept = np.round(raw)
    elif rounding == "floor":
        kept = np.floor(raw)
    elif rounding == "ceil":
        kept = np.ceil(raw)
    else:
        raise ValueError(f"rounding must be 'round', 'floor' or 'ceil', got {rounding!r}")
    kept = kept.astype(np.int64)
    kept[(kept == n) & (n > 1)] -= 1
    return kept


def _per_user_mask(
    x: Interactions, held_fraction: float, rng: np.random.Generator, rounding: str
) -> np.ndarray:
    """True for the entries moved out of the larger part, per user."""
    kept = _kept_counts(x.user_counts(), _complement(held_fraction), rounding)
    return _random_rank(x, rng) >= kept[_row_of_entry(x)]


def _global_mask(
    x: Interactions, held_fraction: float, rng: np.random.Generator, sampling: str
) -> np.ndarray:
    if sampling == "exact":
        n_kept = round(x.nnz * _complement(held_fraction))
        mask = np.ones(x.nnz, dtype=bool)
        mask[rng.permutation(x.nnz)[:n_kept]] = False
        return mask
    if sampling == "bernoulli":
        # The 2019 framework kept each pair independently with probability 1 - fraction.
        return rng.random(x.nnz) > _complement(held_fraction)
    raise ValueError(f"sampling must be 'exact' or 'bernoulli', got {sampling!r}")


def _leave_one_out_mask(
    x: Interactions, rng: np.random.Generator, mode: str, min_interactions: int
) -> np.ndarray:
    if min_interactions < 1:
        raise ValueError(f"min_interactions must be >= 1, got {min_interactions}")
    counts = x.user_counts()
    eligible = counts >= min_interactions
    if mode == "random":
        pick = _random_rank(x, rng) == 0
    elif mode == "latest":
        if x.timestamps is None:
            raise ValueError(f"leave_one_out(mode='latest') needs timestamps; {x!r} has none")
        users = _row_of_entry(x)
        # Sort each row by (timestamp, item index); the last entry of a row is the latest,
        # ties on the timestamp going to the largest internal item index.
        order = np.lexsort((x.matrix.indices, x.timestamps, users))
        last = x.matrix.indptr[1:][counts > 0] - 1
        pick = np.zeros(x.nnz, dtype=bool)
        pick[order[last]] = True
    else:
        raise ValueError(f"mode must be 'random' or 'latest', got {mode!r}")
    return pick & eligible[_row_of_entry(x)]


def _temporal_mask(
    x: Interactions, cutoff: int | None, fraction: float | None, what: str
) -> tuple[np.ndarray, int]:
    """Entries at or after one global time cut-off (given, or the ``fraction`` latest)."""
    if x.timestamps is None:
        raise ValueError(f"a time cut-off needs timestamps; {x!r} has none")
    ts = x.timestamps
    if fraction is not None:
        n_late = round(x.nnz * fraction)
        if n_late == 0:
            raise ValueError(f"{what}={fraction} of {x.nnz} interactions rounds to none")
        cutoff = int(np.sort(ts)[x.nnz - n_late])
    assert cutoff is not None
    return ts >= cutoff, int(cutoff)


def _split(x: Interactions, test_mask: np.ndarray, method: str, params: dict[str, Any]) -> Split:
    return Split(train=x.select(~test_mask), test=x.select(test_mask), method=method, params=params)


# ---------------------------------------------------------------------------- splits
def per_user_holdout(
    x: Interactions,
    test_fraction: float = 0.2,
    seed: int = 0,
    rounding: Rounding = "round",
) -> Split:
    """Per user, a random ``test_fraction`` of the user's interactions goes to test.

    The **train** count is rounded: a user with ``n`` interactions keeps
    ``t = round(n * (1 - test_fraction))`` in train (``rounding="floor"`` / ``"ceil"`` use
    ``floor`` / ``ceil`` instead of Python's half-to-even ``round``); if ``t == n`` and
    ``n >= 2``, ``t = n - 1``. The other ``n - t`` go to test. So with 80/20: n=1 -> 1/0 (a
    single interaction stays in train), n=2 -> 1/1, n=3 -> 2/1, n=5 -> 4/1, n=8 -> 6/2.
    (With ``rounding="floor"`` a single interaction goes to test: floor(0.8) = 0.)
    This is the RecSys'19 framework's ``train_percentage`` rule (paper §2.5, "ours" split).
    """
    test_fraction = _check_fraction("test_fraction", test_fraction)
    mask = _per_user_mask(x, test_fraction, _rng(seed), rounding)
    params = {"test_fraction": test_fraction, "seed": seed, "rounding": rounding}
    return _split(x, mask, "per_user_holdout", params)


def global_holdout(
    x: Interactions,
    test_fraction: float = 0.2,
    seed: int = 0,
    *,
    sampling: Literal["exact", "bernoulli"] = "exact",
) -> Split:
    """A random ``test_fraction`` of all (user, item) pairs goes to test.

    ``sampling="exact"`` keeps exactly ``round(nnz * (1 - test_fraction))`` pairs in train;
    ``"bernoulli"`` keeps each pair independently with probability ``1 - test_fraction``
    (the RecSys'19 code's ``random_holdout``; the realised fraction then varies).
    """
    test_fraction = _check_fraction("test_fraction", test_fraction)
    mask = _global_mask(x, test_fraction, _rng(seed), sampling)
    params = {"test_fraction": test_fraction, "seed": seed, "sampling": sampling}
    return _split(x, mask, "global_holdout", params)


def leave_one_out(
    x: Interactions,
    seed: int = 0,
    mode: Literal["random", "latest"] = "random",
    *,
    min_interactions: int = 2,
) -> Split:
    """One interaction per user goes to test; users with fewer than ``min_interactions``
    (default 2) keep everything in train.

    ``mode="random"`` picks uniformly at random (seeded). ``mode="latest"`` picks the
    interaction with the largest timestamp (needs timestamps); among interactions sharing
    that timestamp the one with the largest internal item index is chosen, independent of
    the seed. ``min_interactions=1`` reproduces the framework's default, which also moves the
    only interaction of single-interaction users.
    """
    rng = _rng(seed)
    mask = _leave_one_out_mask(x, rng, mode, min_interactions)
    params = {"seed": seed, "mode": mode, "min_interactions": min_interactions}
    return _split(x, mask, "leave_one_out", params)


def temporal_split(
    x: Interactions,
    cutoff: int | None = None,
    test_fraction: float | None = None,
    *,
    seed: int | None = None,
) -> Split:
    """One global cut-off: every interaction with timestamp ``>= cutoff`` is test.

    Give exactly one of ``cutoff`` or ``test_fraction``. With ``test_fraction``, the cut-off
    is the timestamp of the ``round(nnz * test_fraction)``-th latest interaction, so at least
    that many interactions are test (more when several share the cut-off timestamp; the
    realised fraction is recorded in ``params``). Deterministic: ``seed`` is accepted for a
    uniform interface and only recorded.
    """
    if x.timestamps is None:
        raise ValueError(f"temporal_split needs timestamps; {x!r} has none")
    if (cutoff is None) == (test_fraction is None):
        raise ValueError("temporal_split needs exactly one of cutoff= or test_fraction=")
    if test_fraction is not None:
        test_fraction = _check_fraction("test_fraction", test_fraction)
    mask, cutoff = _temporal_mask(x, cutoff, test_fraction, "test_fraction")
    params = {
        "cutoff": int(cutoff),
        "test_fraction": test_fraction,
        "realised_test_fraction": float(mask.mean()) if x.nnz else 0.0,
        "seed": seed,
    }
    return _split(x, mask, "temporal_split", params)


def held_out_users(
    x: Interactions,
    n_test_users: int,
    n_validation_users: int = 0,
    foldin_fraction: float = 0.8,
    seed: int = 0,
    *,
    min_interactions: int = 5,
    restrict_items_to_train: bool = True,
) -> Split:
    """Strong generalisation (Mult-VAE protocol, paper §2.6): whole users are held out.

    Users with at least one interaction are shuffled; the last ``n_test_users`` of the
    permutation are test users, the ``n_validation_users`` before them validation users, the
    rest training users. ``train`` holds the training users' interactions only. With
    ``restrict_items_to_train``, held-out interactions on items no training user has are
    dropped from the split (counted in ``params["dropped_interactions"]``). Each held-out
    user with at least ``min_interactions`` remaining interactions gets
    ``floor(n * (1 - foldin_fraction))`` random target interactions (test / validation); the
    rest is fold-in (``test_profiles`` / ``validation_profiles``). Users below
    ``min_interactions`` keep everything as fold-in.
    """
    foldin_fraction = _check_fraction("foldin_fraction", foldin_fraction)
    if n_test_users < 1 or n_validation_users < 0:
        raise ValueError(
            f"need n_test_users >= 1 and n_validation_users >= 0, "
            f"got {n_test_users} and {n_validation_users}"
        )
    rng = _rng(seed)
    counts = x.user_counts()
    active = np.flatnonzero(counts > 0)
    n_held = n_test_users + n_validation_users
    if n_held >= active.size:
        raise ValueError(
            f"{n_held} held-out users requested but only {active.size} users have interactions"
        )
    perm = rng.permutation(active)
    n_train_users = active.size - n_held
    role = np.zeros(x.n_users, dtype=np.int8)  # 0 train, 1 validation, 2 test
    role[perm[n_train_users : n_train_users + n_validation_users]] = 1
    role[perm[n_train_users + n_validation_users :]] = 2
    entry_role = role[_row_of_entry(x)]

    train_mask = entry_role == 0
    keep = np.ones(x.nnz, dtype=bool)
    if restrict_items_to_train:
        train_items = np.zeros(x.n_items, dtype=bool)
        train_items[x.matrix.indices[train_mask]] = True
        keep = train_mask | train_items[x.matrix.indices]
    held = x.select(keep & ~train_mask)  # all held-out interactions that stay in the split

    n = held.user_counts()
    target_fraction = _complement(foldin_fraction)
    # A tiny epsilon keeps floor(0.2 * 10) at 2 despite 0.2 not being exact in binary.
    n_target = np.where(n >= min_interactions, np.floor(n * target_fraction + 1e-9), 0)
    target_entry = _random_rank(held, rng) < n_target.astype(np.int64)[_row_of_entry(held)]
    held_role = role[_row_of_entry(held)]

    params = {
        "n_test_users": n_test_users,
        "n_validation_users": n_validation_users,
        "foldin_fraction": foldin_fraction,
        "seed": seed,
        "min_interactions": min_interactions,
        "restrict_items_to_train": restrict_items_to_train,
        "dropped_interactions": int((~keep).sum()),
    }
    return Split(
        train=x.select(train_mask),
        test=held.select(target_entry & (held_role == 2)),
        test_profiles=held.select(~target_entry & (held_role == 2)),
        validation=held.select(target_entry & (held_role == 1)) if n_validation_users else None,
        validation_profiles=(
            held.select(~target_entry & (held_role == 1)) if n_validation_users else None
        ),
        method="held_out_users",
        params=params,
    )


ValidationMode = Literal["per_user", "global", "leave_one_out", "leave_latest", "temporal"]


def carve_validation(
    split: Split,
    fraction: float | None = None,
    seed: int = 0,
    mode: ValidationMode = "per_user",
    add_back: bool = False,
    *,
    rounding: Rounding = "round",
    sampling: Literal["exact", "bernoulli"] = "exact",
    min_interactions: int = 2,
) -> Split:
    """Carve a validation part out of ``split.train``.

    Modes (paper protocols): ``"per_user"`` -- a ``fraction`` of each user's train items with
    the same rounding rule as :func:`per_user_holdout` (SpectralCF and MCRec: 0.1);
    ``"global"`` -- a ``fraction`` of all train pairs as in :func:`global_holdout` (CVAE/CDL:
    0.2); ``"leave_one_out"`` -- one random train item per user with at least
    ``min_interactions`` train items (CMN, NeuMF; ``fraction`` must be None). Time-ordered
    modes, for time-ordered test parts (validation then sits in the past of test, as test
    sits in the past of deployment): ``"leave_latest"`` -- each user's latest train item
    (ties as in :func:`leave_one_out`; no fraction), ``"temporal"`` -- every train
    interaction at or after one global cut-off, the ``fraction`` latest ones (as
    :func:`temporal_split`; the cut-off is recorded).

    ``add_back=True`` reproduces MCRec's leaky protocol: the validation pairs *also stay in
    train*; ``params["add_back"]`` records it and the audit reports it as optimistic
    validation instead of failing. Test, negatives and profiles are kept unchanged; the new
    split's ``params`` are the old ones plus ``"validation"`` (mode, fraction, seed, ...) and
    ``"add_back"``.
    """
    if split.validation is not None:
        raise ValueError(f"split ({split.method}) already has a validation part")
    rng = _rng(seed)
    train = split.train
    extra: dict[str, Any] = {}
    if mode in ("leave_one_out", "leave_latest"):
        if fraction is not None:
            raise ValueError(f"carve_validation(mode={mode!r}) takes no fraction")
        pick = "random" if mode == "leave_one_out" else "latest"
        mask = _leave_one_out_mask(train, rng, pick, min_interactions)
    elif fraction is None:
        raise ValueError(f"carve_validation(mode={mode!r}) needs a fraction")
    elif mode == "per_user":
        fraction = _check_fraction("fraction", fraction)
        mask = _per_user_mask(train, fraction, rng, rounding)
    elif mode == "global":
        fraction = _check_fraction("fraction", fraction)
        mask = _global_mask(train, fraction, rng, sampling)
    elif mode == "temporal":
        fraction = _check_fraction("fraction", fraction)
        mask, cut = _temporal_mask(train, None, fraction, "validation fraction")
        extra = {"cutoff": cut, "realised_fraction": float(mask.mean()) if train.nnz else 0.0}
    else:
        raise ValueError(
            "mode must be 'per_user', 'global', 'leave_one_out', 'leave_latest' or 'temporal', "
            f"got {mode!r}"
        )
    validation_params: dict[str, Any] = {"mode": mode, "fraction": fraction, "seed": seed}
    if mode == "per_user":
        validation_params["rounding"] = rounding
    elif mode == "global":
        validation_params["sampling"] = sampling
    elif mode in ("leave_one_out", "leave_latest"):
        validation_params["min_interactions"] = min_interactions
    validation_params.update(extra)
    params = {**split.params, "validation": validation_params, "add_back": add_back}
    return Split(
        train=train if add_back else train.select(~mask),
        test=split.test,
        validation=train.select(mask),
        test_negatives=split.test_negatives,
        validation_negatives=split.validation_negatives,
        test_profiles=split.test_profiles,
        validation_profiles=split.validation_profiles,
        method=split.method,
        params=params,
    )


def sample_test_negatives(split: Split, n_negatives: int = 99, seed: int = 0) -> Split:
    """Attach ``n_negatives`` sampled negatives per test user (NCF's protocol: 99 per user).

    Each user with a test item gets ``n_negatives`` distinct items drawn uniformly among the
    items the user has no interaction with in any part (train, validation, test); a user with
    fewer such items gets them all, and ``params["test_negatives"]["short_users"]`` counts those
    users (no user is dropped). Replaces any existing test negatives; the new split's ``params``
    are the old ones plus ``"test_negatives"`` (n, seed, short_users).
    """
    if isinstance(n_negatives, bool) or not isinstance(n_negatives, int) or n_negatives < 1:
        raise ValueError(f"n_negatives must be a positive integer, got {n_negatives!r}")
    rng = _rng(seed)
    n_users, n_items = split.train.shape
    seen = split.train.matrix.astype(bool).astype(np.int8)
    for part in (split.validation, split.test):
        if part is not None:
            seen = seen + part.matrix.astype(bool).astype(np.int8)
    seen = sp.csr_matrix(seen)
    users = np.flatnonzero(np.diff(split.test.matrix.indptr) > 0)
    k = min(n_negatives, n_items)
    parts_u: list[np.ndarray] = []
    parts_i: list[np.ndarray] = []
    # Random keys per user with the user's items set to -inf; the k largest are the draw
    # (through the one top-k). Row blocks bound the dense key matrix to ~16M cells.
    block = max(1, (1 << 24) // max(1, n_items))
    for start in range(0, users.size, block):
        rows = users[start : start + block]
        sub = seen[rows]
        keys = -rng.random((rows.size, n_items))
        r, c = sub.nonzero()
        keys[r, c] = -np.inf
        row, col, val = select_rows(keys, k)
        ok = np.isfinite(val)
        parts_u.append(rows[row[ok]])
        parts_i.append(col[ok])
    neg_u = np.concatenate(parts_u) if parts_u else np.zeros(0, dtype=np.int64)
    neg_i = np.concatenate(parts_i) if parts_i else np.zeros(0, dtype=np.int64)
    order = np.lexsort((neg_i, neg_u))
    negatives = sp.csr_matrix(
        (np.ones(order.size, np.float32), (neg_u[order], neg_i[order])), shape=(n_users, n_items)
    )
    short = int((np.diff(negatives.indptr)[users] < n_negatives).sum())
    params = {**split.params, "test_negatives": {"n": n_negatives, "seed": seed,
                                                 "short_users": short}}
    return replace(split, test_negatives=negatives, params=params)


def _as_negatives(
    name: str, neg: sp.csr_matrix | list[Any] | None, shape: tuple[int, int]
) -> sp.csr_matrix | None:
    if neg is None or sp.issparse(neg):
        return neg  # type: ignore[return-value]
    if len(neg) != shape[0]:
        raise ValueError(f"{name} has lists for {len(neg)} users, the split has {shape[0]}")
    packed = negatives_from_lists(neg, shape[1])
    if packed.indices.size and (packed.indices.min() < 0 or packed.indices.max() >= shape[1]):
        raise ValueError(f"{name} holds item indices outside [0, {shape[1]})")
    return packed


def predefined_split(
    train: Interactions,
    test: Interactions,
    validation: Interactions | None = None,
    test_negatives: sp.csr_matrix | list[Any] | None = None,
    *,
    validation_negatives: sp.csr_matrix | list[Any] | None = None,
    test_profiles: Interactions | None = None,
    validation_profiles: Interactions | None = None,
    params: dict[str, Any] | None = None,
) -> Split:
    """Wrap given parts (e.g. a released split) after checking they share one id space.

    Negatives may be a users x items CSR (kept raw, duplicates included) or per-user lists
    (packed with :func:`~recforge.data.split.negatives_from_lists`).
    """
    parts = {
        "test": test,
        "validation": validation,
        "test_profiles": test_profiles,
        "validation_profiles": validation_profiles,
    }
    for name, part in parts.items():
        if part is None:
            continue
        if part.shape != train.shape:
            raise ValueError(
                f"predefined_split: {name} has shape {part.shape}, train {train.shape}"
            )
        for ids in ("user_ids", "item_ids"):
            if not np.array_equal(getattr(part, ids), getattr(train, ids)):
                raise ValueError(f"predefined_split: {name}.{ids} differ from train.{ids}")
    return Split(
        train=train,
        test=test,
        validation=validation,
        test_negatives=_as_negatives("test_negatives", test_negatives, train.shape),
        validation_negatives=_as_negatives(
            "validation_negatives", validation_negatives, train.shape
        ),
        test_profiles=test_profiles,
        validation_profiles=validation_profiles,
        method="predefined",
        params=dict(params or {}),
    )
