r"""Ranking metrics computed from one boolean hits matrix, vectorised over users.

Notation, per evaluated user u: T_u the test items, L the ranked list kept at cut-off k
(best first, |L| = min(k, number of items that survived masking)), rel_i = 1 if the item at
1-based position i is in T_u, hits@k = Σ_{i≤|L|} rel_i.

Accuracy metrics (per user, then averaged over evaluated users):

- ``HR``          hits@k — a *count*, as in the RecSys'19 code (can exceed 1).
- ``HIT_RATE``    1 if hits@k > 0 else 0 (textbook hit ratio).
- ``PRECISION``   hits@k / |L| (paper; |L| < k only when items were dropped; 0 when L is empty).
- ``RECALL``      hits@k / |T_u| (paper).
- ``RECALL_MIN``  hits@k / min(k, |T_u|) (Mult-VAE's variant).
- ``NDCG``        DCG@k / IDCG with DCG@k = Σ_{i≤k} rel_i / log2(i+1) and the paper's
                  *untruncated* IDCG = Σ_{j=1}^{|T_u|} 1/log2(j+1).
- ``NDCG_TRUNC``  same DCG, textbook IDCG = Σ_{j=1}^{min(k,|T_u|)} 1/log2(j+1).
- ``MAP``         AP@k = Σ_{i≤k} P@i · rel_i / min(k, |T_u|) with P@i = hits@i / i.
                  (The 2019 code divides by min(|L|, |T_u|); the two agree unless |L| < k and
                  |L| < |T_u|, i.e. only when masking left fewer than k candidates.)
- ``MRR``         1 / (position of the first hit) if it is ≤ k, else 0.

Beyond-accuracy metrics (one value per cut-off, over all recommended (user, position) entries):

- ``COVERAGE``  number of distinct recommended items / n_items.
- ``GINI``      Gini index of the recommendation counts c_1 ≤ … ≤ c_n over **all** n items
                (never-recommended items count as 0):
                G = Σ_i (2i − n − 1) c_i / (n Σ_i c_i); 0 = perfectly even, (n−1)/n = one item.
                NaN when nothing was recommended (undefined; see :func:`recforge.stats.gini`).
- ``NOVELTY``   mean over recommended entries of −log2(max(pop_i, 1) / N), pop_i = number of
                training users of item i, N = number of training users (``n_popularity_users``);
                an item without training users is treated as having one.
- ``AVG_POP``   mean over recommended entries of pop_i.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from recforge.stats import gini

__all__ = [
    "ACCURACY_METRICS",
    "ALL_METRICS",
    "BEYOND_ACCURACY_METRICS",
    "BeyondAccuracy",
    "accuracy_metrics",
    "check_metric_names",
    "gini",
]

ACCURACY_METRICS: tuple[str, ...] = (
    "HR",
    "HIT_RATE",
    "PRECISION",
    "RECALL",
    "RECALL_MIN",
    "NDCG",
    "NDCG_TRUNC",
    "MAP",
    "MRR",
)
BEYOND_ACCURACY_METRICS: tuple[str, ...] = ("COVERAGE", "GINI", "NOVELTY", "AVG_POP")
ALL_METRICS: tuple[str, ...] = ACCURACY_METRICS + BEYOND_ACCURACY_METRICS


def check_metric_names(metrics: Sequence[str]) -> tuple[str, ...]:
    """Upper-case, de-duplicate (keeping order) and validate metric names."""
    if isinstance(metrics, str):
        metrics = [metrics]
    out: list[str] = []
    for m in metrics:
        name = str(m).upper()
        if name not in ALL_METRICS:
            raise ValueError(f"unknown metric {m!r}; valid metrics: {', '.join(ALL_METRICS)}")
        if name not in out:
            out.append(name)
    if not out:
        raise ValueError("metrics must name at least one metric")
    return tuple(out)


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2, dtype=np.float64))


def accuracy_metrics(
    hits: np.ndarray,
    lengths: np.ndarray,
    n_test: np.ndarray,
    cutoffs: Sequence[int],
    metrics: Sequence[str],
) -> dict[str, np.ndarray]:
    """Per-user accuracy metrics ``"NAME@k" -> float64 (rows,)`` from a hits matrix.

    ``hits`` is (rows, kmax) bool with rows' lists best first (entries past ``lengths`` False),
    ``lengths`` the list lengths at kmax, ``n_test`` = |T_u| (> 0). Cut-offs above kmax read
    the last column (the list cannot be longer than kmax) but keep k in the denominators.
    """
    wanted = [m for m in metrics if m in ACCURACY_METRICS]
    rows, kmax = hits.shape
    out: dict[str, np.ndarray] = {}
    if not wanted or rows == 0:
        return {f"{m}@{k}": np.zeros(rows) for m in wanted for k in cutoffs}
    n_test = n_test.astype(np.float64)
    lengths = lengths.astype(np.int64)
    need = set(wanted)
    # Sums over the first k positions for every cut-off at once: one matrix product with a
    # (kmax, n_cutoffs) prefix mask (float cumulative sums along rows are ~10x slower).
    cols = [min(k, kmax) - 1 for k in cutoffs]
    prefix = (np.arange(kmax)[:, None] <= np.asarray(cols)[None, :]).astype(np.float64)
    hits_f = hits.astype(np.float64)
    hits_at = hits_f @ prefix  # (rows, n_cutoffs) hits@k, exact small integers
    disc = _discounts(max(kmax, int(n_test.max())))
    cum_disc = np.cumsum(disc)
    if need & {"NDCG", "NDCG_TRUNC"}:
        dcg_at = hits_f @ (prefix * disc[:kmax, None])
    if "NDCG" in need:
        idcg_full = cum_disc[n_test.astype(np.int64) - 1]
    if "MAP" in need:
        # sum_i rel_i * hits@i / i: the 1/i factor is folded into the prefix mask.
        cum_hits = np.cumsum(hits, axis=1, dtype=np.int32)
        rel_cum = (cum_hits * hits).astype(np.float64)
        ap_at = rel_cum @ (prefix / np.arange(1, kmax + 1, dtype=np.float64)[:, None])
    if "MRR" in need:
        # 0-based position of the first hit; +inf when there is none (fails every `< k`).
        first = np.where(hits.any(axis=1), np.argmax(hits, axis=1), np.inf)
    for c, k in enumerate(cutoffs):
        h = hits_at[:, c]
        min_k_t = np.minimum(float(k), n_test)
        for m in wanted:
            if m == "HR":
                v = h.copy()
            elif m == "HIT_RATE":
                v = (h > 0).astype(np.float64)
            elif m == "PRECISION":
                list_len = np.minimum(lengths, k)
                v = np.divide(h, list_len, out=np.zeros(rows), where=list_len > 0)
            elif m == "RECALL":
                v = h / n_test
            elif m == "RECALL_MIN":
                v = h / min_k_t
            elif m == "NDCG":
                v = dcg_at[:, c] / idcg_full
            elif m == "NDCG_TRUNC":
                v = dcg_at[:, c] / cum_disc[min_k_t.astype(np.int64) - 1]
            elif m == "MAP":
                v = ap_at[:, c] / min_k_t
            else:  # MRR
                v = np.where(first < k, 1.0 / (first + 1.0), 0.0)
            out[f"{m}@{k}"] = v
    return out


def _ordered_sum(parts: list[float]) -> float:
    total = 0.0
    for x in parts:  # left to right, as the parts were produced
        total += x
    return total


class BeyondAccuracy:
    """Accumulates recommendation counts and popularity sums per cut-off across user batches."""

    def __init__(
        self,
        cutoffs: Sequence[int],
        metrics: Sequence[str],
        n_items: int,
        item_popularity: np.ndarray | None,
        n_popularity_users: int | None,
        keep_counts: bool = False,
    ) -> None:
        self.cutoffs = list(cutoffs)
        self.metrics = [m for m in metrics if m in BEYOND_ACCURACY_METRICS]
        # Count recommendations per item even without a beyond-accuracy metric (reports).
        self.keep_counts = keep_counts
        self.n_items = n_items
        self.pop = None if item_popularity is None else np.asarray(item_popularity, np.float64)
        needs_pop = {"NOVELTY", "AVG_POP"} & set(self.metrics)
        if needs_pop and self.pop is None:
            raise ValueError(
                f"{'/'.join(sorted(needs_pop))} need item_popularity (training users per item)"
            )
        if self.pop is not None and self.pop.shape != (n_items,):
            raise ValueError(f"item_popularity has shape {self.pop.shape}, expected ({n_items},)")
        if self.pop is not None and (self.pop < 0).any():
            raise ValueError("item_popularity must be non-negative counts")
        if "NOVELTY" in self.metrics:
            if not n_popularity_users or n_popularity_users <= 0:
                raise ValueError("NOVELTY needs n_popularity_users > 0")
            assert self.pop is not None  # checked above (NOVELTY needs item_popularity)
            self.self_info = -np.log2(np.maximum(self.pop, 1.0) / float(n_popularity_users))
        self.counts = {k: np.zeros(n_items, dtype=np.int64) for k in self.cutoffs}
        # Per-batch float sums, added up in batch order at the end: merging accumulators of
        # consecutive user blocks (distributed evaluation) then gives bit-identical totals.
        self.novelty_parts: dict[int, list[float]] = {k: [] for k in self.cutoffs}
        self.pop_parts: dict[int, list[float]] = {k: [] for k in self.cutoffs}

    def update(self, items: np.ndarray, lengths: np.ndarray) -> None:
        if not self.metrics and not self.keep_counts:
            return
        kmax = items.shape[1]
        # Counts grow cut-off by cut-off: each new slice of positions is counted once. Padding
        # (-1) is shifted to bin 0 and dropped.
        cnt = np.zeros(self.n_items, dtype=np.int64)
        prev = 0
        for k in self.cutoffs:
            col = min(k, kmax)
            if col > prev:
                part = np.bincount(items[:, prev:col].ravel() + 1, minlength=self.n_items + 1)
                cnt += part[1:]
                prev = col
            self.counts[k] += cnt
            if "NOVELTY" in self.metrics:
                self.novelty_parts[k].append(float(cnt @ self.self_info))
            if "AVG_POP" in self.metrics:
                self.pop_parts[k].append(float(cnt @ self.pop))  # type: ignore[operator]

    def merge(self, other: BeyondAccuracy) -> None:
        """Add ``other``'s counts and sums (the next block of users) to this accumulator."""
        for k in self.cutoffs:
            # A new array: counts that came through Ray's object store are read-only views.
            self.counts[k] = self.counts[k] + other.counts[k]
            self.novelty_parts[k].extend(other.novelty_parts[k])
            self.pop_parts[k].extend(other.pop_parts[k])

    def result(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for k in self.cutoffs:
            c = self.counts[k]
            total = int(c.sum())
            for m in self.metrics:
                if m == "COVERAGE":
                    v = float((c > 0).sum()) / self.n_items
                elif m == "GINI":
                    v = gini(c)
                elif m == "NOVELTY":
                    v = _ordered_sum(self.novelty_parts[k]) / total if total else 0.0
                else:  # AVG_POP
                    v = _ordered_sum(self.pop_parts[k]) / total if total else 0.0
                out[f"{m}@{k}"] = v
        return out
