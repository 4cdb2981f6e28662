"""Explicit filters: each returns the filtered data and a :class:`FilterReport`.

Nothing is dropped silently: every call reports how many interactions, users and items it
removed (and logs the one-line summary). By default the interaction filters also *compact*:
users and items left without interactions leave the matrix, so they cannot deflate
catalogue-wide measures (an item nobody can have in test still counts against COVERAGE) or
receive recommendations; ``user_ids`` / ``item_ids`` keep mapping rows and columns back to the
external ids. ``compact=False`` keeps the shape and id space (a user or item that loses all
its interactions stays as an empty row / column); :func:`compact` is the step on its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.data.split import Split

__all__ = [
    "FilterReport",
    "compact",
    "deduplicate",
    "drop_cold_start_users",
    "k_core",
    "rating_equals",
    "rating_threshold",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FilterReport:
    """What one filter call removed.

    ``removed_users`` / ``removed_items`` count users / items that had at least one
    interaction before and none after (for :func:`compact`: rows / columns dropped).
    """

    name: str
    parameters: dict[str, Any]
    removed_interactions: int
    removed_users: int
    removed_items: int
    kept_interactions: int
    kept_users: int
    kept_items: int
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.parameters.items())
        extra = "".join(f", {k}={v}" for k, v in self.details.items())
        return (
            f"{self.name}({params}): removed {self.removed_interactions:,} interactions, "
            f"{self.removed_users:,} users, {self.removed_items:,} items; kept "
            f"{self.kept_interactions:,} interactions, {self.kept_users:,} users, "
            f"{self.kept_items:,} items{extra}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "parameters": dict(self.parameters),
            "removed_interactions": self.removed_interactions,
            "removed_users": self.removed_users,
            "removed_items": self.removed_items,
            "kept_interactions": self.kept_interactions,
            "kept_users": self.kept_users,
            "kept_items": self.kept_items,
            "details": dict(self.details),
        }


def _active(x: Interactions) -> tuple[int, int]:
    return int((x.user_counts() > 0).sum()), int((x.item_counts() > 0).sum())


def _report(
    name: str,
    params: dict[str, Any],
    before: Interactions,
    after: Interactions,
    details: dict[str, Any] | None = None,
) -> FilterReport:
    ub, ib = _active(before)
    ua, ia = _active(after)
    details = dict(details or {})
    if after.shape != before.shape:
        details["shape"] = list(after.shape)
    rep = FilterReport(
        name=name,
        parameters=params,
        removed_interactions=before.nnz - after.nnz,
        removed_users=ub - ua,
        removed_items=ib - ia,
        kept_interactions=after.nnz,
        kept_users=ua,
        kept_items=ia,
        details=details,
    )
    log.info("%s", rep)
    return rep


def _filtered(x: Interactions, keep: np.ndarray, compact_after: bool) -> Interactions:
    out = x.select(keep)
    return _compacted(out) if compact_after else out


def _ratings(x: Interactions, filter_name: str) -> np.ndarray:
    if x.ratings is None:
        raise ValueError(
            f"{filter_name} needs ratings but {x.name!r} has none "
            "(build it with a rating column)"
        )
    return x.ratings


def rating_threshold(
    x: Interactions, min_rating: float, *, compact: bool = True
) -> tuple[Interactions, FilterReport]:
    """Keep interactions whose rating is >= ``min_rating`` (then compact, see module doc)."""
    keep = _ratings(x, "rating_threshold") >= min_rating
    out = _filtered(x, keep, compact)
    return out, _report("rating_threshold", {"min_rating": min_rating}, x, out)


def rating_equals(
    x: Interactions, value: float, *, compact: bool = True
) -> tuple[Interactions, FilterReport]:
    """Keep interactions whose rating equals ``value`` (e.g. SpectralCF's 5-star-only rule)."""
    keep = _ratings(x, "rating_equals") == value
    out = _filtered(x, keep, compact)
    return out, _report("rating_equals", {"value": value}, x, out)


def k_core(
    x: Interactions,
    k: int | None = None,
    *,
    min_user: int | None = None,
    min_item: int | None = None,
    compact: bool = True,
) -> tuple[Interactions, FilterReport]:
    """Iteratively drop users with < ``min_user`` and items with < ``min_item`` interactions.

    Repeats until nothing changes (a fixed point), so every remaining user and item meets its
    threshold (then compacts, see the module docstring). ``k`` sets both thresholds;
    ``min_user`` / ``min_item`` override it.
    """
    mu = min_user if min_user is not None else k
    mi = min_item if min_item is not None else k
    if mu is None or mi is None:
        raise ValueError("k_core needs k, or both min_user and min_item")
    if mu < 0 or mi < 0:
        raise ValueError(f"k_core thresholds must be >= 0, got min_user={mu}, min_item={mi}")
    m = x.matrix
    users = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    items = m.indices.astype(np.int64)
    keep = np.ones(m.nnz, dtype=bool)
    rounds = 0
    while True:
        rounds += 1
        uc = np.bincount(users[keep], minlength=m.shape[0])
        ic = np.bincount(items[keep], minlength=m.shape[1])
        new_keep = keep & (uc[users] >= mu) & (ic[items] >= mi)
        if new_keep.sum() == keep.sum():
            break
        keep = new_keep
    out = _filtered(x, keep, compact)
    return out, _report(
        "k_core", {"min_user": mu, "min_item": mi}, x, out, {"iterations": rounds}
    )


def compact(x: Interactions) -> tuple[Interactions, FilterReport]:
    """Drop users and items without interactions; id maps, features and side arrays follow."""
    out = _compacted(x)
    rep = FilterReport(
        name="compact",
        parameters={},
        removed_interactions=x.nnz - out.nnz,
        removed_users=x.n_users - out.n_users,
        removed_items=x.n_items - out.n_items,
        kept_interactions=out.nnz,
        kept_users=out.n_users,
        kept_items=out.n_items,
    )
    log.info("%s", rep)
    return out, rep


def _compacted(x: Interactions) -> Interactions:
    urows = np.flatnonzero(x.user_counts() > 0)
    icols = np.flatnonzero(x.item_counts() > 0)
    m = x.matrix
    sub = m[urows][:, icols]
    sub = sp.csr_matrix(sub, dtype=np.float32)
    sub.sort_indices()
    # Column slicing preserves the within-row order of kept entries, so side arrays stay
    # aligned once they are taken through the same mask.
    users = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    col_keep = np.zeros(m.shape[1], dtype=bool)
    col_keep[icols] = True
    row_keep = np.zeros(m.shape[0], dtype=bool)
    row_keep[urows] = True
    mask = row_keep[users] & col_keep[m.indices]
    out = replace(
        x,
        matrix=sub,
        user_ids=x.user_ids[urows],
        item_ids=x.item_ids[icols],
        ratings=None if x.ratings is None else x.ratings[mask],
        timestamps=None if x.timestamps is None else x.timestamps[mask],
        item_features=None if x.item_features is None else x.item_features[icols],
        user_features=None if x.user_features is None else x.user_features[urows],
    )
    return out


def drop_cold_start_users(split: Split) -> tuple[Split, FilterReport]:
    """Remove the test and validation interactions of users without a training interaction.

    Such cold-start users are scored from no history at all (every personalised model falls
    back to ties or popularity for them), which a time-ordered split produces in numbers. The
    report counts the interactions, users (``details``: per part) and items that leave the
    evaluated parts; ``params["dropped_cold_start"]`` of the split records it. Not for
    held-out-user splits, whose test users have fold-in profiles instead of train.
    """
    if split.test_profiles is not None or split.validation_profiles is not None:
        raise ValueError(
            "drop_cold_start_users: a held-out-user split has no train for its test users by "
            "design (they have fold-in profiles); nothing to drop"
        )
    has_train = split.train.user_counts() > 0
    parts: dict[str, Interactions] = {}
    details: dict[str, Any] = {}
    removed = kept = 0
    users_out: set[int] = set()
    items_before = np.zeros(split.train.n_items, dtype=bool)
    items_after = np.zeros(split.train.n_items, dtype=bool)
    for name in ("test", "validation"):
        part = getattr(split, name)
        if part is None:
            continue
        users = np.repeat(np.arange(part.n_users), part.user_counts())
        keep = has_train[users]
        parts[name] = part.select(keep)
        cold = np.flatnonzero((part.user_counts() > 0) & ~has_train)
        users_out.update(cold.tolist())
        details[f"{name}_users"] = int(cold.size)
        removed += int((~keep).sum())
        kept += int(keep.sum())
        items_before |= part.item_counts() > 0
        items_after |= parts[name].item_counts() > 0
    params = {**split.params, "dropped_cold_start": details}
    out = replace(split, params=params, **parts)  # type: ignore[arg-type]
    active = np.zeros(split.train.n_users, dtype=bool)
    for p in parts.values():
        active |= p.user_counts() > 0
    kept_users = int(active.sum())
    rep = FilterReport(
        name="drop_cold_start_users",
        parameters={},
        removed_interactions=removed,
        removed_users=len(users_out),
        removed_items=int((items_before & ~items_after).sum()),
        kept_interactions=kept,
        kept_users=kept_users,
        kept_items=int(items_after.sum()),
        details=details,
    )
    log.info("%s", rep)
    return out, rep


def deduplicate(
    df: Any,
    user_col: str,
    item_col: str,
    timestamp_col: str | None = None,
    *,
    keep: str = "last",
) -> tuple[Any, FilterReport]:
    """Drop repeated (user, item) rows of a raw pandas or polars frame before building.

    ``keep="last"`` keeps the row with the latest timestamp (ties and no timestamp column:
    the last in frame order); ``keep="first"`` the earliest. Returns a frame of the same kind,
    in the original row order.
    """
    if keep not in ("first", "last"):
        raise ValueError(f"keep must be 'first' or 'last', got {keep!r}")
    import pandas as pd  # here, not at the top: `import recforge.data` stays light

    is_polars = False
    try:
        import polars as pl

        is_polars = isinstance(df, pl.DataFrame)
    except ImportError:  # pragma: no cover - polars is a dependency
        pass
    cols = [user_col, item_col] + ([timestamp_col] if timestamp_col else [])
    found = [str(c) for c in df.columns]
    missing = [c for c in cols if c not in found]
    if missing:
        raise ValueError(f"columns {missing} not found; columns found: {found}")
    pdf = pd.DataFrame({c: df[c].to_numpy() for c in cols}) if is_polars else df
    pos = np.arange(len(pdf))
    order = np.lexsort((pos, pdf[timestamp_col].to_numpy())) if timestamp_col else pos
    ordered = pdf.iloc[order]
    dup = ordered.duplicated(subset=[user_col, item_col], keep=keep).to_numpy()
    keep_mask = np.ones(len(pdf), dtype=bool)
    keep_mask[order[dup]] = False
    out = df.filter(pl.Series(keep_mask)) if is_polars else df[keep_mask]
    pairs = pd.MultiIndex.from_arrays([pdf[user_col], pdf[item_col]])
    n_users_before = pdf[user_col].nunique()
    n_items_before = pdf[item_col].nunique()
    kept = pdf[keep_mask]
    rep = FilterReport(
        name="deduplicate",
        parameters={"keep": keep, "timestamp_col": timestamp_col},
        removed_interactions=int((~keep_mask).sum()),
        removed_users=int(n_users_before - kept[user_col].nunique()),
        removed_items=int(n_items_before - kept[item_col].nunique()),
        kept_interactions=int(keep_mask.sum()),
        kept_users=int(kept[user_col].nunique()),
        kept_items=int(kept[item_col].nunique()),
        details={"duplicated_pairs": int(pairs[~keep_mask].nunique())},
    )
    log.info("%s", rep)
    return out, rep
