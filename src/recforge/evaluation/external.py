"""Recommendation lists made elsewhere, evaluated by recforge's own protocol and metrics.

:class:`ExternalLists` is a registered model (``"ExternalLists"``) whose scores *are* a list
file: rows of ``user, item`` plus a ``rank`` (1 = best) or a ``score`` (higher = better)
column, in CSV or parquet, with the dataset's **external** ids. Fitting reads the file and
maps the ids onto the training data's id space; scoring gives each listed item a score that
reproduces the list order and every other item ``-inf`` (so it never enters a list). From
there the one evaluator takes over — seen-item removal, candidate sets, top-k, every metric,
per-user values, significance tests and the report — so another library's lists and our own
models land in the same table::

    models:
      - {model: RP3beta, params: {top_k: 200, alpha: 0.7, beta: 0.4}}
      - {model: ExternalLists, label: implicit ALS,
         params: {path: runs/implicit_als.parquet, score_col: score}}

or ``recforge evaluate ExternalLists --split-dir split/ -p path=lists.csv -p rank_col=rank``.
The lists must have been made for the same split (train on its train part): a list cannot
know which split it belongs to, so the file's sha256 is kept (``file_sha256_``) for the record.

Protocol consequences, stated because they change numbers: listed items the user has in train
are removed by the evaluator like any seen item (a library that did not filter them gets
shorter lists, not a free pass); under the candidate protocol only candidate items count; a
list shorter than the cut-off is evaluated as it is (PRECISION divides by |L|, as the paper);
an evaluated user with no list scores 0. Ties in a score column are ordered like the
evaluator's own ties (lower internal item index first). Nothing is dropped silently: unknown
users or items are an error unless ``unknown="drop"``, and :attr:`ExternalLists.load_report_`
counts rows, users, dropped ids, seen items and duplicates.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models.base import Recommender
from recforge.models.params import Param

__all__ = ["ExternalLists", "read_list_table"]

log = logging.getLogger(__name__)

# _test_params: lists for the contract suite's tiny ids (user 3 lists all 24 items, user 17
# 14 of them, so some survive the removal of their at most 10 seen items).
_TINY_ROWS: list[list[str | int | float]] = [
    ["user-00", "item-03", 1], ["user-00", "item-01", 2], ["user-01", "item-05", 1],
    ["user-02", "item-00", 2], ["user-02", "item-07", 1], ["user-05", "item-11", 1],
]
_TINY_ROWS += [["user-03", f"item-{i:02d}", r] for r, i in enumerate(range(24), start=1)]
_TINY_ROWS += [["user-17", f"item-{i:02d}", r] for r, i in enumerate(range(23, 9, -1), start=1)]


def read_list_table(
    path: str | Path, columns: list[str], sep: str | None = None
) -> dict[str, np.ndarray]:
    """The named columns of a CSV or parquet file (by suffix) as numpy arrays."""
    import polars as pl

    p = Path(path).expanduser()
    if not p.is_file():
        raise FileNotFoundError(f"ExternalLists: list file not found: {p}")
    if p.suffix.lower() in (".parquet", ".pq"):
        frame = pl.read_parquet(p)
    else:
        frame = pl.read_csv(p, separator=sep or ("\t" if p.suffix.lower() == ".tsv" else ","),
                            infer_schema_length=10_000)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"ExternalLists: {p} has no column(s) {missing}; it has {frame.columns}")
    return {c: frame[c].to_numpy() for c in columns}


class ExternalLists(Recommender):
    """Lists from a file (or given inline as ``rows``), scored so the evaluator keeps their order.

    Args:
        path: CSV (``sep``, default ``,``; ``.tsv`` files tab) or parquet file of the lists.
        rows: instead of ``path``, the lists inline as ``[user, item, rank-or-score]`` triples.
        user_col, item_col: id columns (external ids as in the dataset).
        rank_col / score_col: exactly one: 1-based rank (lower = better) or a score (higher
            = better). With ``rows`` the third value is a rank unless ``score_col`` is set.
        unknown: ``"error"`` (default) refuses ids the training data does not have;
            ``"drop"`` drops those rows, counted in ``load_report_`` and logged.
    """

    name = "ExternalLists"
    param_rules: ClassVar[dict[str, Param]] = {"unknown": Param(choices=("error", "drop"))}
    _test_params: ClassVar[dict[str, Any]] = {"rows": _TINY_ROWS}

    def __init__(
        self,
        path: str | None = None,
        rows: list[list[str | int | float]] | None = None,
        user_col: str = "user",
        item_col: str = "item",
        rank_col: str | None = None,
        score_col: str | None = None,
        sep: str | None = None,
        unknown: Literal["error", "drop"] = "error",
    ) -> None:
        self.path = path
        self.rows = rows
        self.user_col = user_col
        self.item_col = item_col
        self.rank_col = rank_col
        self.score_col = score_col
        self.sep = sep
        self.unknown = unknown

    # ------------------------------------------------------------------ reading
    def _table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool, str | None]:
        """(users, items, order values, higher_is_better, file sha256)."""
        who = "ExternalLists"
        if (self.path is None) == (self.rows is None):
            raise ValueError(f"{who}: give exactly one of path (a list file) or rows (inline)")
        if self.rows is not None:
            if self.rank_col is not None:
                raise ValueError(f"{who}: rank_col names a file column; inline rows are "
                                 "[user, item, rank] (or [user, item, score] with score_col)")
            odd = [r for r in self.rows if len(r) != 3]
            if odd:
                raise ValueError(f"{who}: inline rows must be [user, item, rank or score] "
                                 f"triples; got {odd[0]!r}")
            users = np.array([str(r[0]) for r in self.rows], dtype=object)
            items = np.array([str(r[1]) for r in self.rows], dtype=object)
            vals = np.array([r[2] for r in self.rows], dtype=np.float64)
            return users, items, vals, self.score_col is not None, None
        if (self.rank_col is None) == (self.score_col is None):
            raise ValueError(f"{who}: give exactly one of rank_col or score_col for {self.path}")
        order_col = self.rank_col or self.score_col
        assert order_col is not None and self.path is not None
        cols = read_list_table(self.path, [self.user_col, self.item_col, order_col], self.sep)
        digest = hashlib.sha256(Path(self.path).expanduser().read_bytes()).hexdigest()
        vals = np.asarray(cols[order_col], dtype=np.float64)
        if not np.isfinite(vals).all():
            bad = int((~np.isfinite(vals)).sum())
            raise ValueError(f"{who}: {bad} row(s) of {self.path} have a missing or non-finite "
                             f"{order_col!r}")
        users = np.asarray(cols[self.user_col]).astype(str).astype(object)
        items = np.asarray(cols[self.item_col]).astype(str).astype(object)
        return users, items, vals, self.score_col is not None, digest

    @staticmethod
    def _index(ids: np.ndarray, external: np.ndarray) -> np.ndarray:
        """Internal index of each external id (-1 where unknown)."""
        known = np.asarray(ids).astype(str)
        ext = np.asarray(external).astype(str)
        if known.size == 0:
            return np.full(ext.size, -1, dtype=np.int64)
        order = np.argsort(known)
        pos = np.minimum(np.searchsorted(known[order], ext), known.size - 1)
        return np.where(known[order][pos] == ext, order[pos], -1).astype(np.int64)

    def _fit(self, train: Interactions) -> None:
        where = self.path if self.path is not None else "rows"
        users_ext, items_ext, vals, higher_better, digest = self._table()
        u = self._index(self.user_ids_, users_ext)
        i = self._index(self.item_ids_, items_ext)
        bad_u, bad_i = u < 0, i < 0
        report: dict[str, Any] = {"rows": int(u.size), "unknown_users": int(bad_u.sum()),
                                  "unknown_items": int((bad_i & ~bad_u).sum())}
        if (bad_u | bad_i).any():
            first = (users_ext[bad_u][:3].tolist() if bad_u.any() else
                     items_ext[bad_i][:3].tolist())
            what = "user" if bad_u.any() else "item"
            msg = (f"ExternalLists: {int(bad_u.sum())} row(s) of {where} name users and "
                   f"{int((bad_i & ~bad_u).sum())} more name items the training data does not "
                   f"have (e.g. {what} {first})")
            if self.unknown == "error":
                raise ValueError(msg + "; were the lists made for this dataset and split? "
                                 "unknown='drop' drops such rows (counted)")
            log.warning("%s; dropped", msg)
            keep = ~(bad_u | bad_i)
            u, i, vals = u[keep], i[keep], vals[keep]
        keys = u * self.n_items_ + i
        uniq, counts = np.unique(keys, return_counts=True)
        if (counts > 1).any():
            dup = uniq[counts > 1][0]
            raise ValueError(
                f"ExternalLists: {int((counts > 1).sum())} (user, item) pair(s) of {where} are "
                f"listed more than once, e.g. user {self.user_ids_[dup // self.n_items_]!r}, "
                f"item {self.item_ids_[dup % self.n_items_]!r}")
        if not higher_better:
            by = np.lexsort((vals, u))
            same = (u[by][1:] == u[by][:-1]) & (vals[by][1:] == vals[by][:-1])
            if same.any():
                raise ValueError(
                    f"ExternalLists: {int(same.sum())} rank(s) of {where} are given to more "
                    f"than one item of the same user, e.g. rank {vals[by][1:][same][0]:g} of "
                    f"user {self.user_ids_[u[by][1:][same][0]]!r}")
        # Position within each user's list: by rank ascending, or score descending with the
        # evaluator's tie rule (lower item index first).
        primary = -vals if higher_better else vals
        order = np.lexsort((i, primary, u))
        u, i = u[order], i[order]
        start = np.searchsorted(u, u, side="left")
        length = np.bincount(u, minlength=self.n_users_)
        position = np.arange(u.size) - start  # 0 = best
        score = (length[u] - position).astype(np.float32)  # positive, distinct per user
        self.lists_ = sp.csr_matrix((score, (u, i)), shape=(self.n_users_, self.n_items_))
        seen = train.matrix[u, i] if u.size else np.zeros(0)
        report.update(users=int((length > 0).sum()), entries=int(u.size),
                      seen_in_train=int(np.count_nonzero(np.asarray(seen).ravel())),
                      longest=int(length.max(initial=0)))
        self.load_report_ = report
        self.file_sha256_ = digest

    def _score(self, users: np.ndarray) -> np.ndarray:
        sub = self.lists_[users]
        out = np.full((users.size, self.n_items_), -np.inf, dtype=np.float32)
        out[np.repeat(np.arange(users.size), np.diff(sub.indptr)), sub.indices] = sub.data
        return out
