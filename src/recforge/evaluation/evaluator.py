"""The evaluator: batched scoring, seen-item masking, top-k, metrics, per-user results.

Two protocols, as in the RecSys'19 framework (Base/Evaluation/Evaluator.py):

- ``"full"``: every item is ranked; items in the user's ``exclude`` row (normally the training
  profile) are removed.
- ``"candidates"``: only the user's candidate set is ranked, i.e. the set union of the user's test
  items and the given negatives (duplicates collapse); items in ``exclude`` are removed *even if*
  they are listed as negatives, as the paper's code does.

Users evaluated: every user with at least one test item (an empty training profile is fine).
Test items that also appear in ``exclude`` stay in T_u (they can never be hit), as in the paper.

Ties: **among equal scores the lower item index ranks first** (``TIE_RULE``; both backends give
identical lists). The paper ordered ties by numpy's unstable argpartition/quicksort internals,
which cannot be reproduced exactly, so metrics may differ from its numbers in the 4th decimal
for models with many tied scores (TopPopular, KNN rows of zeros).

Pairwise-scored models (``supports_candidates``) are asked for the candidate pairs only under
the candidate protocol (``model.score_candidates``; ``meta["scored"] == "candidate pairs"``);
the evaluator still builds the candidate sets, masks and ranks. Other models score all items.

Items scored -inf are dropped, so a list may hold fewer than k items (``PRECISION`` divides by
|L|). NaN scores raise ``ValueError``. Scores are ranked as float32 (the model contract); other
dtypes are cast first.

Blocks: :meth:`Evaluator.evaluate_block` evaluates a batch-aligned range of the users and
:meth:`Evaluator.combine` merges blocks in user order; a single pass is one block, and
:mod:`recforge.evaluation.distributed` spreads blocks over a Ray cluster with identical results.

Memory: users are scored in batches of ``memory_budget_mb / (n_items * bytes per cell)`` rows,
4 bytes per cell with the compiled (numba) backend, which reads the block without copying, and
32 with the numpy fallback, which needs a masked copy and int64 sort keys.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recforge._json import jsonable
from recforge._kernels.topk import TIE_RULES, Backend, TieRule, resolve_backend, select_topk
from recforge.data.interactions import Interactions
from recforge.data.split import Split
from recforge.evaluation.metrics import (
    ACCURACY_METRICS,
    BeyondAccuracy,
    accuracy_metrics,
    check_metric_names,
)
from recforge.models.base import Recommender

__all__ = ["DEFAULT_METRICS", "BlockResult", "EvaluationResult", "Evaluator", "evaluate_split"]

DEFAULT_METRICS: tuple[str, ...] = ("PRECISION", "RECALL", "NDCG", "MAP", "HR", "MRR")

_BYTES_PER_CELL = {"numba": 4, "numpy": 32}


@dataclass
class BlockResult:
    """One block of users, evaluated (:meth:`Evaluator.evaluate_block`): positions
    ``start:stop`` of ``Evaluator.users``, their per-user values and beyond-accuracy counts."""

    start: int
    stop: int
    per_user: dict[str, np.ndarray]
    beyond: BeyondAccuracy
    n_batches: int
    timings: dict[str, float]
    backend: str
    scored: str


@dataclass
class EvaluationResult:
    """What :meth:`Evaluator.evaluate` returns.

    users: evaluated internal user ids (ascending), one per row of every per-user array.
    per_user: ``"NAME@k" -> float64 array`` aligned with ``users`` (accuracy metrics only).
    summary: ``"NAME@k" -> float`` means over users, plus the beyond-accuracy values.
    recommended: with ``keep_counts``: cut-off ``k`` -> how often each item was recommended in
        the users' top-k lists (int64, one entry per item); else ``None``.
    meta: protocol, cutoffs, metrics, n_users, tie_rule, data_checksum, split_fingerprint,
        seconds (total) and timings (score / select / metrics), backend, batching.
    """

    users: np.ndarray
    per_user: dict[str, np.ndarray]
    summary: dict[str, float]
    meta: dict[str, Any] = field(default_factory=dict)
    recommended: dict[int, np.ndarray] | None = None

    def to_dict(self, include_per_user: bool = False) -> dict[str, Any]:
        """JSON-able dict; per-user arrays (large) only when ``include_per_user``."""
        out: dict[str, Any] = {
            "summary": {k: float(v) for k, v in self.summary.items()},
            "meta": jsonable(self.meta),
        }
        if include_per_user:
            out["users"] = self.users.tolist()
            out["per_user"] = {k: v.tolist() for k, v in self.per_user.items()}
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvaluationResult:
        """Inverse of :meth:`to_dict` (per-user arrays are empty if they were not saved)."""
        return cls(
            users=np.asarray(d.get("users", []), dtype=np.int64),
            per_user={k: np.asarray(v, dtype=np.float64) for k, v in d.get("per_user", {}).items()},
            summary=dict(d["summary"]),
            meta=dict(d.get("meta", {})),
        )

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v:.4f}" for k, v in list(self.summary.items())[:6])
        return f"EvaluationResult(n_users={self.users.size}, {shown})"


def _canonical_csr(
    m: Interactions | sp.spmatrix | sp.sparray, shape: tuple[int, int], what: str
) -> sp.csr_matrix:
    """Sorted, duplicate-free CSR copy (only its structure is used)."""
    mat = m.matrix if isinstance(m, Interactions) else m
    if not sp.issparse(mat):
        raise TypeError(f"{what} must be Interactions or a scipy sparse matrix, got {type(m)}")
    if mat.shape != shape:
        raise ValueError(f"{what} has shape {mat.shape}, test has {shape}")
    csr = sp.csr_matrix(mat, copy=True)
    if csr.nnz and (csr.indices.min() < 0 or csr.indices.max() >= shape[1]):
        raise ValueError(f"{what} holds item indices outside [0, {shape[1]})")
    csr.sum_duplicates()  # also sorts indices
    return csr


def _candidate_sets(
    test: sp.csr_matrix, negatives: sp.csr_matrix, exclude: sp.csr_matrix | None
) -> sp.csr_matrix:
    """Per-user (test ∪ negatives) \\ exclude as a sorted CSR, built from flat keys (no loop)."""
    n_users, n_items = test.shape
    neg_ptr = np.asarray(negatives.indptr, dtype=np.int64)
    neg_idx = np.asarray(negatives.indices, dtype=np.int64)
    if neg_idx.size and (neg_idx.min() < 0 or neg_idx.max() >= n_items):
        raise ValueError(f"candidates hold item indices outside [0, {n_items})")
    if neg_ptr.size != n_users + 1 or neg_ptr[-1] != neg_idx.size:
        raise ValueError("candidates is not a well-formed CSR matrix (indptr/indices mismatch)")
    neg_users = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(neg_ptr))
    test_users = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(test.indptr))
    keys = np.concatenate([test_users * n_items + test.indices, neg_users * n_items + neg_idx])
    keys = np.unique(keys)
    if exclude is not None and exclude.nnz:
        ex_users = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(exclude.indptr))
        keys = keys[~np.isin(keys, ex_users * n_items + exclude.indices, assume_unique=True)]
    users = keys // n_items
    indptr = np.zeros(n_users + 1, dtype=np.int64)
    np.cumsum(np.bincount(users, minlength=n_users), out=indptr[1:])
    out = sp.csr_matrix(
        (np.ones(keys.size, np.float32), (keys % n_items).astype(np.int32), indptr),
        shape=(n_users, n_items),
    )
    return out


class Evaluator:
    """Evaluate recommenders on one held-out set; build once, call :meth:`evaluate` per model.

    Args:
        test: held-out positives (every stored entry is relevant).
        cutoffs: list lengths k (positive ints) to report metrics at.
        metrics: names from :mod:`recforge.evaluation.metrics` (reported as ``NAME@k``).
        exclude: items removed from each user's ranking (normally the training interactions).
        candidates: raw per-user negatives (duplicates allowed) -> candidate-set protocol.
        profiles: fold-in profiles; when given the model is scored with ``score_profiles``.
        item_popularity: training users per item, for NOVELTY / AVG_POP.
        n_popularity_users: NOVELTY's normaliser N (default: number of users in ``test``'s shape).
        memory_budget_mb: bound on the dense score block of one batch.
        data_checksum / split_fingerprint: provenance copied into ``meta``.
        backend: "auto" (numba when importable), "numba" or "numpy".
        tie_rule: order among equal scores: "lower-index" (default) or "numpy-legacy" (the
            RecSys'19 evaluator's argpartition/quicksort order, to reproduce its numbers where
            scores tie massively; see :mod:`recforge._kernels.topk`).
        keep_counts: also return how often each item was recommended at each cut-off
            (:attr:`EvaluationResult.recommended`; reports' popularity-bias and coverage views).
    """

    def __init__(
        self,
        test: Interactions,
        *,
        cutoffs: Sequence[int],
        metrics: Sequence[str] = DEFAULT_METRICS,
        exclude: Interactions | sp.csr_matrix | None = None,
        candidates: sp.csr_matrix | None = None,
        profiles: Interactions | None = None,
        item_popularity: np.ndarray | None = None,
        memory_budget_mb: float = 256,
        data_checksum: str | None = None,
        split_fingerprint: str | None = None,
        n_popularity_users: int | None = None,
        backend: Backend = "auto",
        tie_rule: TieRule = "lower-index",
        keep_counts: bool = False,
    ) -> None:
        self.keep_counts = bool(keep_counts)
        if not isinstance(test, Interactions):
            raise TypeError(f"test must be an Interactions, got {type(test).__name__}")
        shape = test.shape
        self.n_users, self.n_items = shape
        if self.n_items == 0:
            raise ValueError("test has no items (n_items == 0)")
        cut = sorted({int(k) for k in cutoffs}) if cutoffs is not None else []
        if not cut or cut[0] < 1 or any(int(k) != k for k in cutoffs):
            raise ValueError(f"cutoffs must be a non-empty list of positive ints, got {cutoffs!r}")
        self.cutoffs = cut
        self.metrics = check_metric_names(metrics)
        if not memory_budget_mb or memory_budget_mb <= 0:
            raise ValueError(f"memory_budget_mb must be > 0, got {memory_budget_mb!r}")
        self.memory_budget_mb = float(memory_budget_mb)
        if tie_rule not in TIE_RULES:
            raise ValueError(f"tie_rule must be one of {list(TIE_RULES)}, got {tie_rule!r}")
        self.tie_rule: TieRule = tie_rule
        self.backend: Backend = backend
        if backend != "auto":
            resolve_backend(backend)  # fail early on a bad name or a missing numba

        self._test = _canonical_csr(test, shape, "test")
        self.n_test = np.diff(self._test.indptr)
        self.users = np.flatnonzero(self.n_test > 0).astype(np.int64)
        if self.users.size == 0:
            raise ValueError("no user has a test item; nothing to evaluate")
        self._exclude = None if exclude is None else _canonical_csr(exclude, shape, "exclude")
        self.protocol = "full" if candidates is None else "candidates"
        if candidates is not None:
            if not sp.issparse(candidates) or candidates.shape != shape:
                raise ValueError(
                    f"candidates must be a users x items sparse matrix of shape {shape}, got "
                    f"{getattr(candidates, 'shape', type(candidates).__name__)}"
                )
            cand = sp.csr_matrix(candidates)
            self._mask = _candidate_sets(self._test, cand, self._exclude)
        elif self._exclude is not None:
            self._mask = self._exclude
        else:
            self._mask = sp.csr_matrix(shape, dtype=np.float32)
        if profiles is not None and (
            not isinstance(profiles, Interactions) or profiles.shape != shape
        ):
            raise ValueError(f"profiles must be an Interactions of shape {shape}")
        self.profiles = profiles
        self.item_popularity = item_popularity
        self.n_popularity_users = n_popularity_users or self.n_users
        # Validate the beyond-accuracy inputs now rather than after scoring every user.
        BeyondAccuracy(
            self.cutoffs, self.metrics, self.n_items, item_popularity, self.n_popularity_users
        )
        self.data_checksum = data_checksum
        self.split_fingerprint = split_fingerprint

    def batch_size(self, backend: str) -> int:
        """Users per batch so that one dense score block fits the memory budget."""
        per_row = self.n_items * _BYTES_PER_CELL[backend]
        return max(1, int(self.memory_budget_mb * 2**20 // per_row))

    def _scores_candidates_only(self, model: Recommender) -> bool:
        """Whether the model scores just the candidate pairs (candidate protocol, no fold-in)."""
        return (
            self.protocol == "candidates" and self.profiles is None and model.supports_candidates
        )

    def _candidate_block(self, model: Recommender, users: np.ndarray) -> np.ndarray:
        """Dense block holding the model's pairwise scores on each user's candidate set.

        Other cells are -inf; the candidate top-k reads candidate cells only, so the ranking is
        the one the full score block would give when the model scores pairs consistently.
        """
        cand = self._mask[users]
        vals = model.score_candidates(users, cand)
        block = np.full((users.size, self.n_items), -np.inf, dtype=np.float32)
        rows = np.repeat(np.arange(users.size), np.diff(cand.indptr))
        block[rows, cand.indices] = vals
        return block

    def _check_model(self, model: Recommender) -> None:
        if self.profiles is not None and not model.supports_profiles:
            raise ValueError(
                f"{type(model).__name__} cannot score fold-in profiles (supports_profiles=False)"
            )

    def blocks(self, batches_per_block: int, backend: str | None = None) -> list[tuple[int, int]]:
        """``(start, stop)`` positions in :attr:`users` covering them in whole batches.

        Blocks made of whole batches score exactly the user groups a single pass scores, so
        evaluating them separately and merging with :meth:`combine` gives identical results.
        """
        if batches_per_block < 1:
            raise ValueError(f"batches_per_block must be >= 1, got {batches_per_block}")
        step = self.batch_size(backend or resolve_backend(self.backend)) * batches_per_block
        return [(a, min(a + step, self.users.size)) for a in range(0, self.users.size, step)]

    def evaluate_block(
        self, model: Recommender, start: int, stop: int, *, backend: Backend | None = None
    ) -> BlockResult:
        """Per-user values and beyond-accuracy counts for ``users[start:stop]``.

        ``start`` must lie on a batch boundary (see :meth:`blocks`); batches begin at
        ``start`` and have :meth:`batch_size` users, as in a single pass.
        """
        self._check_model(model)
        be = resolve_backend(backend or self.backend)
        bs = self.batch_size(be)
        if start % bs or not 0 <= start <= stop <= self.users.size:
            raise ValueError(f"block [{start}, {stop}) is not batch-aligned within "
                             f"[0, {self.users.size}] (batch size {bs})")
        users = self.users[start:stop]
        kmax = min(max(self.cutoffs), self.n_items)
        acc_names = [m for m in self.metrics if m in ACCURACY_METRICS]
        per_user = {f"{m}@{k}": np.empty(users.size) for m in acc_names for k in self.cutoffs}
        beyond = BeyondAccuracy(
            self.cutoffs,
            self.metrics,
            self.n_items,
            self.item_popularity,
            self.n_popularity_users,
            keep_counts=self.keep_counts,
        )
        # The kernels take int64 row pointers and int32 columns (one compiled signature).
        t_ptr = np.asarray(self._test.indptr, dtype=np.int64)
        t_idx = np.asarray(self._test.indices, dtype=np.int32)
        m_ptr = np.asarray(self._mask.indptr, dtype=np.int64)
        m_idx = np.asarray(self._mask.indices, dtype=np.int32)
        prof = None if self.profiles is None else self.profiles.matrix
        pairwise = self._scores_candidates_only(model)
        t_score = t_select = t_metrics = 0.0
        n_batches = 0
        for off in range(0, users.size, bs):
            bu = users[off : off + bs]
            t0 = time.perf_counter()
            if pairwise:
                block = self._candidate_block(model, bu)
            else:
                block = model.score(bu) if prof is None else model.score_profiles(prof[bu])
            if block.shape != (bu.size, self.n_items):
                raise ValueError(
                    f"{type(model).__name__} returned scores of shape {block.shape} for "
                    f"{bu.size} users; expected ({bu.size}, {self.n_items})"
                )
            t1 = time.perf_counter()
            sel, nan_rows = select_topk(
                block,
                bu,
                kmax,
                mask_ptr=m_ptr,
                mask_idx=m_idx,
                test_ptr=t_ptr,
                test_idx=t_idx,
                candidates=self.protocol == "candidates",
                backend=be,
                tie_rule=self.tie_rule,
            )
            if nan_rows.any():
                raise ValueError(
                    f"{type(model).__name__} returned NaN scores for user "
                    f"{int(bu[np.argmax(nan_rows)])} ({int(nan_rows.sum())} users in this batch)"
                )
            del block
            t2 = time.perf_counter()
            vals = accuracy_metrics(sel.hits, sel.lengths, self.n_test[bu], self.cutoffs, acc_names)
            for key, v in vals.items():
                per_user[key][off : off + bu.size] = v
            beyond.update(sel.items, sel.lengths)
            t3 = time.perf_counter()
            t_score += t1 - t0
            t_select += t2 - t1
            t_metrics += t3 - t2
            n_batches += 1
        return BlockResult(
            start=start, stop=stop, per_user=per_user, beyond=beyond, n_batches=n_batches,
            timings={"score": t_score, "select": t_select, "metrics": t_metrics}, backend=be,
            scored="candidate pairs" if pairwise else "all items",
        )

    def combine(
        self, model: Recommender, parts: Sequence[BlockResult], t_start: float
    ) -> EvaluationResult:
        """Merge blocks covering :attr:`users` in order into one :class:`EvaluationResult`."""
        parts = sorted(parts, key=lambda b: b.start)
        edges = [0] + [b.stop for b in parts]
        if [b.start for b in parts] != edges[:-1] or edges[-1] != self.users.size:
            raise ValueError("blocks must cover every evaluated user once, in order")
        first = parts[0]
        per_user = {key: np.concatenate([b.per_user[key] for b in parts])
                    for key in first.per_user}
        beyond = first.beyond
        for b in parts[1:]:
            beyond.merge(b.beyond)
        summary = {key: float(v.mean()) for key, v in per_user.items()}
        summary.update(beyond.result())
        # Report in a stable order: by metric as requested, then cut-off.
        order = [f"{m}@{k}" for m in self.metrics for k in self.cutoffs]
        summary = {key: summary[key] for key in order}
        timings = {name: sum(b.timings[name] for b in parts) for name in first.timings}
        meta: dict[str, Any] = {
            "protocol": self.protocol,
            "cutoffs": list(self.cutoffs),
            "metrics": list(self.metrics),
            "n_users": int(self.users.size),
            "n_items": int(self.n_items),
            "tie_rule": TIE_RULES[self.tie_rule],
            "exclude_seen": self._exclude is not None,
            "fold_in_profiles": self.profiles is not None,
            "scored": first.scored,
            "data_checksum": self.data_checksum,
            "split_fingerprint": self.split_fingerprint,
            "model": repr(model),
            "backend": first.backend,
            "batch_size": self.batch_size(first.backend),
            "n_batches": sum(b.n_batches for b in parts),
            "memory_budget_mb": self.memory_budget_mb,
            "seconds": time.perf_counter() - t_start,
            "timings": timings,
        }
        recommended = ({k: beyond.counts[k].copy() for k in self.cutoffs}
                       if self.keep_counts else None)
        return EvaluationResult(users=self.users.copy(), per_user=per_user, summary=summary,
                                meta=meta, recommended=recommended)

    def evaluate(self, model: Recommender) -> EvaluationResult:
        """Score every evaluated user in batches, rank, and compute all metrics."""
        t_start = time.perf_counter()
        self._check_model(model)
        backend = resolve_backend(self.backend)
        block = self.evaluate_block(model, 0, self.users.size, backend=backend)
        return self.combine(model, [block], t_start)


def evaluate_split(
    model: Recommender,
    split: Split,
    *,
    cutoffs: Sequence[int],
    metrics: Sequence[str] = DEFAULT_METRICS,
    on: str = "test",
    protocol: str = "full",
    exclude_train: bool = True,
    **kw: Any,
) -> EvaluationResult:
    """Evaluate a fitted ``model`` on ``split.test`` or ``split.validation``.

    ``exclude_train`` removes the training interactions (and, for held-out-user splits, the
    fold-in profiles) from the rankings. Validation items are *not* excluded at test time (the
    paper's behaviour). ``protocol="candidates"`` uses the split's negatives for that part.
    Training popularity, ``data_checksum`` and ``split_fingerprint`` are filled from the split
    unless given in ``kw`` (which is passed on to :class:`Evaluator`).
    """
    if on not in ("test", "validation"):
        raise ValueError(f"on must be 'test' or 'validation', got {on!r}")
    if protocol not in ("full", "candidates"):
        raise ValueError(f"protocol must be 'full' or 'candidates', got {protocol!r}")
    target = split.test if on == "test" else split.validation
    if target is None:
        raise ValueError(f"split has no {on} part")
    negatives = split.test_negatives if on == "test" else split.validation_negatives
    if protocol == "candidates" and negatives is None:
        raise ValueError(f"protocol='candidates' needs split.{on}_negatives, which is None")
    profiles = split.test_profiles if on == "test" else split.validation_profiles
    exclude: sp.csr_matrix | None = None
    if exclude_train:
        exclude = split.train.matrix
        if on == "validation" and split.params.get("add_back") and split.validation is not None:
            # MCRec's leaky protocol keeps validation pairs in train. Masking all of train would
            # hide every validation item, so mask train minus validation; the paper masked
            # nothing here, which also rewards re-recommending known items.
            keep = exclude.astype(bool).astype(np.int8) - split.validation.matrix.astype(
                bool
            ).astype(np.int8)
            keep.data = (keep.data > 0).astype(np.int8)
            keep.eliminate_zeros()
            exclude = keep.astype(np.float32).tocsr()
        if profiles is not None:
            exclude = (exclude + profiles.matrix).tocsr()
    train_bin = split.train.binarized()
    kw.setdefault("item_popularity", train_bin.item_counts())
    kw.setdefault("n_popularity_users", max(1, int((train_bin.user_counts() > 0).sum())))
    kw.setdefault("data_checksum", split.train.checksum())
    kw.setdefault("split_fingerprint", split.fingerprint())
    ev = Evaluator(
        target,
        cutoffs=cutoffs,
        metrics=metrics,
        exclude=exclude,
        candidates=negatives if protocol == "candidates" else None,
        profiles=profiles,
        **kw,
    )
    res = ev.evaluate(model)
    res.meta["on"] = on
    return res
