"""Sampled negatives for candidate-set evaluation, drawn the way a reviewer can trust.

:func:`sample_negatives` draws, for every user with a held-out item, ``n_negatives``
*distinct* items that are none of the user's known positives, either uniformly or with
probability proportional to the item's training popularity raised to ``exponent``. It is
seeded and vectorised (no per-user Python loop): candidates are drawn in blocks, rejected
against the sorted keys ``user * n_items + item`` of the excluded pairs with one
``searchsorted``, de-duplicated in draw order, and only the missing ones are redrawn. Users
whose pool is too small for rejection to be quick (fewer than 4 x ``n_negatives`` free
items) get exact draws from dense exponential keys instead (Efraimidis & Spirakis). Both
paths sample without replacement with the same law: uniformly, the set is a uniform random
``n``-subset of the pool; by popularity, it is successive sampling (each next item drawn in
proportion to its weight among the items not drawn yet), the law of
``numpy.random.Generator.choice(replace=False, p=...)``.

:func:`sampled_split` puts such negatives into a :class:`~recforge.data.split.Split`, so the
evaluator's candidate protocol (test items ∪ negatives, train items removed) ranks them.
What is excluded: for test negatives, the user's train, validation, test (and fold-in
profile) items; for validation negatives, the user's train, validation and profile items
(the test part is unknown at validation time).

A user whose pool holds fewer than ``n_negatives`` items is refused before anything is
drawn, with the count and the first such users named.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field

from recforge._kernels.topk import select_rows
from recforge.data.interactions import Interactions
from recforge.data.split import Split

__all__ = ["NegativeSampling", "SamplingMode", "sample_negatives", "sampled_split"]

SamplingMode = Literal["uniform", "popularity"]

#: a user is drawn exactly (dense keys) when its pool is below this many times n_negatives.
_DENSE_FACTOR = 4
#: cells of one dense key block (float64), bounding the exact path's memory (~128 MB).
_DENSE_CELLS = 1 << 24
_MAX_ROUNDS = 64


class NegativeSampling(BaseModel):
    """How sampled negatives are drawn (validated configuration).

    ``mode="popularity"`` weighs item i by ``train_users(i) ** exponent``; items without a
    training user then have weight 0 and are never drawn (they also leave the pool).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    n_negatives: int = Field(100, ge=1)
    mode: SamplingMode = "uniform"
    exponent: float = Field(1.0, gt=0)
    seed: int = 0


def _binary_csr(
    m: Interactions | sp.spmatrix | sp.sparray, shape: tuple[int, int]
) -> sp.csr_matrix:
    mat = m.matrix if isinstance(m, Interactions) else m
    out = sp.csr_matrix(mat, dtype=np.float32, copy=True)
    if out.shape != shape:
        raise ValueError(f"sample_negatives: a part has shape {out.shape}, expected {shape}")
    out.sum_duplicates()
    out.eliminate_zeros()
    out.data[:] = 1.0
    return out


def _item_weights(
    mode: SamplingMode, exponent: float, popularity: np.ndarray | None, n_items: int
) -> np.ndarray | None:
    """Draw weights per item (None = uniform over all items)."""
    if mode == "uniform":
        return None
    if mode != "popularity":
        raise ValueError(f"sample_negatives: mode must be 'uniform' or 'popularity', got {mode!r}")
    if popularity is None:
        raise ValueError("sample_negatives: mode='popularity' needs the training popularity")
    pop = np.asarray(popularity, dtype=np.float64)
    if pop.shape != (n_items,) or (pop < 0).any() or not np.isfinite(pop).all():
        raise ValueError(
            f"sample_negatives: popularity must be {n_items} non-negative finite counts, got "
            f"shape {pop.shape}"
        )
    w = np.where(pop > 0, pop ** float(exponent), 0.0)
    if w.sum() <= 0:
        raise ValueError("sample_negatives: no item has training users to weigh by popularity")
    return w


def sample_negatives(
    exclude: Interactions | sp.spmatrix | sp.sparray,
    users: np.ndarray,
    n_negatives: int,
    *,
    mode: SamplingMode = "uniform",
    exponent: float = 1.0,
    popularity: np.ndarray | None = None,
    seed: int = 0,
) -> sp.csr_matrix:
    """``n_negatives`` distinct items per user in ``users``, none of them in ``exclude``.

    Args:
        exclude: users x items; the stored entries of a row are that user's known positives.
        users: the users that get negatives (others get an empty row).
        n_negatives: items per user (>= 1).
        mode, exponent, popularity: ``"uniform"``, or ``"popularity"`` with weights
            ``popularity ** exponent`` (``popularity`` = training users per item).
        seed: the numpy generator's seed; same inputs and seed give the same negatives.

    Returns:
        A users x items CSR (float32 ones) whose row u holds u's negatives, sorted by item.

    Raises:
        ValueError: before any draw, if a user's pool has fewer than ``n_negatives`` items.
    """
    cfg = NegativeSampling(n_negatives=n_negatives, mode=mode, exponent=exponent, seed=seed)
    n = cfg.n_negatives
    shape = tuple(int(s) for s in exclude.shape)
    n_users, n_items = shape[0], shape[1]
    ex = _binary_csr(exclude, (n_users, n_items))
    u = np.unique(np.asarray(users, dtype=np.int64).ravel())
    if u.size and (u[0] < 0 or u[-1] >= n_users):
        raise IndexError(f"sample_negatives: user index out of range [0, {n_users})")
    weights = _item_weights(cfg.mode, cfg.exponent, popularity, n_items)
    drawable = np.ones(n_items, dtype=bool) if weights is None else weights > 0
    ex_rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(ex.indptr))
    own = np.bincount(ex_rows[drawable[ex.indices]], minlength=n_users)
    pool = int(drawable.sum()) - own
    short = u[pool[u] < n]
    if short.size:
        first = ", ".join(f"user {int(s)} ({int(pool[s])} items)" for s in short[:3])
        raise ValueError(
            f"sample_negatives: {short.size} user(s) have fewer than {n} items left to draw as "
            f"negatives once their known positives are excluded, e.g. {first}; lower "
            "n_negatives or drop those users"
        )
    rng = np.random.default_rng(cfg.seed)
    keys_ex = ex_rows * n_items + ex.indices.astype(np.int64)  # sorted: canonical CSR
    cdf = None if weights is None else np.cumsum(weights) / weights.sum()
    # Chance that one draw is not excluded (the rejection path's oversampling factor).
    if weights is None:
        accept = pool / n_items
    else:
        held = np.bincount(ex_rows, weights=weights[ex.indices], minlength=n_users)
        accept = np.maximum(1.0 - held / weights.sum(), 1e-6)
    dense = u[pool[u] < _DENSE_FACTOR * n]
    sparse_users = u[pool[u] >= _DENSE_FACTOR * n]
    parts = [
        _draw_rejection(sparse_users, n, n_items, keys_ex, accept, cdf, rng),
        _draw_dense(dense, n, ex, weights, rng),
    ]
    keys = np.sort(np.concatenate(parts))
    rows = keys // n_items
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=n_users), out=indptr[1:])
    return sp.csr_matrix(
        (np.ones(keys.size, np.float32), (keys % n_items).astype(np.int32), indptr),
        shape=(n_users, n_items),
    )


def _is_excluded(keys: np.ndarray, keys_ex: np.ndarray) -> np.ndarray:
    if keys_ex.size == 0:
        return np.zeros(keys.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(keys_ex, keys), keys_ex.size - 1)
    return keys_ex[pos] == keys


def _draw_rejection(
    users: np.ndarray,
    n: int,
    n_items: int,
    keys_ex: np.ndarray,
    accept: np.ndarray,
    cdf: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Keys of ``n`` distinct negatives per user by blockwise draws, first occurrences kept."""
    if users.size == 0:
        return np.zeros(0, dtype=np.int64)
    kept = np.zeros(0, dtype=np.int64)  # keys in draw order (per user: first n distinct)
    todo, deficit = users, np.full(users.size, n, dtype=np.int64)
    for _ in range(_MAX_ROUNDS):
        # Oversample by the chance a draw is free, plus slack for duplicates.
        draws = np.ceil(deficit / accept[todo] * 1.2).astype(np.int64) + 4
        flat_u = np.repeat(todo, draws)
        if cdf is None:
            items = rng.integers(0, n_items, size=flat_u.size, dtype=np.int64)
        else:
            items = np.minimum(np.searchsorted(cdf, rng.random(flat_u.size), side="right"),
                               n_items - 1).astype(np.int64)
        new = flat_u * n_items + items
        new = new[~_is_excluded(new, keys_ex)]
        both = np.concatenate([kept, new])
        _, first = np.unique(both, return_index=True)
        both = both[np.sort(first)]  # distinct keys, in the order they were drawn
        owner = both // n_items
        order = np.argsort(owner, kind="stable")
        both, owner = both[order], owner[order]
        starts = np.searchsorted(owner, owner, side="left")
        kept = both[np.arange(both.size) - starts < n]
        have = np.bincount(kept // n_items, minlength=int(users.max()) + 1)[users]
        missing = have < n
        if not missing.any():
            return kept
        todo, deficit = users[missing], n - have[missing]
    raise RuntimeError(
        f"sample_negatives: {todo.size} user(s) still short of negatives after {_MAX_ROUNDS} "
        "rounds of draws; this should not happen, please report it"
    )


def _draw_dense(
    users: np.ndarray,
    n: int,
    ex: sp.csr_matrix,
    weights: np.ndarray | None,
    rng: np.random.Generator,
) -> np.ndarray:
    """Exact draws for users with small pools: the n largest of -Exp(1)/w over the pool."""
    if users.size == 0:
        return np.zeros(0, dtype=np.int64)
    n_items = ex.shape[1]
    out = []
    step = max(1, _DENSE_CELLS // n_items)
    for start in range(0, users.size, step):
        bu = users[start : start + step]
        keys = rng.exponential(size=(bu.size, n_items))
        if weights is not None:
            with np.errstate(divide="ignore"):
                keys = keys / weights  # weight 0 -> +inf: never among the n smallest
        sub = ex[bu]
        keys[np.repeat(np.arange(bu.size), np.diff(sub.indptr)), sub.indices] = np.inf
        rows, cols, _ = select_rows(-keys, n)
        out.append(bu[rows] * n_items + cols)
    return np.concatenate(out)


def sampled_split(
    split: Split,
    n_negatives: int = 100,
    *,
    mode: SamplingMode = "uniform",
    exponent: float = 1.0,
    seed: int = 0,
    parts: tuple[str, ...] = ("test", "validation"),
) -> Split:
    """``split`` with sampled test (and validation) negatives for the candidate protocol.

    Negatives replace any the split had; only users with an item in that part get them.
    Popularity is counted on ``split.train`` (users per item). ``params["sampled_negatives"]``
    records the settings, so the split fingerprint and its description show them.
    """
    cfg = NegativeSampling(n_negatives=n_negatives, mode=mode, exponent=exponent, seed=seed)
    bad = sorted(set(parts) - {"test", "validation"})
    if bad or not parts:
        raise ValueError(f"sampled_split: parts must name 'test' and/or 'validation', got {parts}")
    shape = split.train.shape
    known = _binary_csr(split.train, shape)
    for extra in (split.validation, split.test_profiles, split.validation_profiles):
        if extra is not None:
            known = known.maximum(_binary_csr(extra, shape))
    popularity = split.train.binarized().item_counts()
    updates: dict[str, sp.csr_matrix] = {}
    for i, part in enumerate(("validation", "test")):
        target = split.validation if part == "validation" else split.test
        if part not in parts or target is None:
            continue
        exclude = known if part == "validation" else known.maximum(_binary_csr(target, shape))
        users = np.flatnonzero(target.user_counts() > 0)
        updates[f"{part}_negatives"] = sample_negatives(
            exclude, users, cfg.n_negatives, mode=cfg.mode, exponent=cfg.exponent,
            popularity=popularity, seed=cfg.seed + i,  # independent streams per part
        )
    if "test" in parts and "test_negatives" not in updates:
        raise ValueError("sampled_split: the split has no test part")
    params = {**split.params, "sampled_negatives": {**cfg.model_dump(), "parts": sorted(updates)}}
    return replace(split, params=params, **updates)
