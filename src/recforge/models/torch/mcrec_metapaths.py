"""MCRec's metapath instances, re-sampled from the training data (numpy + numba; no torch).

MCRec (Hu, Shi, Zhao, Yu, KDD'18) feeds, for every (user u, movie m) pair, up to five instances
of each of four metapaths connecting u to m. Its ML-100k path files (``ml-100k.{umtm,umum,uuum,
ummm}_5_1``) and the k-NN graphs they were sampled from (``ml-100k.{uu,mm}_knn_50``) are not
obtainable, so the instances are rebuilt here with the rules of the authors' sampling script,
applied to the fit's training matrix. The result is an **approximation** of the released files:
the k-NN graphs are rebuilt by our own documented rule, and equal scores are ordered by our rule.

Nodes carry MCRec's fixed 64-d BPR vectors (``ml-100k.bpr.{user,item,type}_embedding``);
``cos(a, b)`` is the cosine of two such vectors. Writing M(u) for the (at most) 10 training items
of u with the largest cos(u, ·), U(m) for the 10 training users of m with the largest cos(m, ·),
G(m) for m's genres, and N(x) for x's neighbours in the k-NN graph, the candidates for a pair
(u, m) and their scores are:

- **UMTM** u–m₁–t–m: m₁ ∈ M(u), m₁ ≠ m, t ∈ G(m) ∩ G(m₁); score cos(u, m₁).
- **UMUM** u–m₁–u₂–m: m₁ ∈ M(u), u₂ ∈ U(m), u₂ rated m₁, u₂ ≠ u, m₁ ≠ m; score the mean of
  cos(u, m₁), cos(u₂, m₁) and cos(m, u₂).
- **UUUM** u–u₁–u₂–m: u₁ ∈ N(u), u₂ ∈ U(m), u₂ ∈ N(u₁), u₂ ≠ u; score cos(m, u₂).
- **UMMM** u–m₁–m₂–m: m₁ ∈ M(u), m₁ ≠ m, m₂ ∈ N(m) ∩ N(m₁); score cos(u, m₁).

Candidates scoring above 0.7 are kept, at most 5 per pair and metapath, best first. Candidates
are enumerated in the nested order written above (first node outer, lists in the order just
defined: M and U by decreasing cosine, G, N and ties of the cosine by increasing id) and equal
scores keep that order, as the script's stable sort did.

**k-NN graphs (our rule; the originals' construction is undocumented):** for users and for
items separately, the 50 most cosine-similar neighbours on the binary training matrix
(:func:`recforge.models.similarity.compute_similarity`, ``top_k=50``, no shrink), made
symmetric by union, as the script's loader added every file line in both directions.

The instances are stored as node ids (not 64-d copies): :class:`Metapaths` holds, per pair and
metapath, the two middle nodes of each instance in one node table (users, then items, then
genres, then one all-zero padding row that also fills the slots of missing instances, as the
original's zero-filled input arrays did).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numba
import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions

__all__ = [
    "METAPATHS",
    "BprEmbeddings",
    "Metapaths",
    "instance_nodes",
    "knn_graph",
    "load_bpr_embeddings",
    "load_side_information",
    "read_bpr_embeddings",
    "sample_metapaths",
    "svd_node_vectors",
]

#: the four metapaths of MCRec's ML-100k run, in the order of its input slots.
METAPATHS: tuple[str, ...] = ("umtm", "umum", "uuum", "ummm")
N_PATHS = 5
HOP_LIMIT = 10
THRESHOLD = 0.7
KNN = 50
#: cap on the dense per-pair storage (bytes) so a large dataset fails before work starts.
MAX_BYTES = 2 * 1024**3

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- BPR inputs
@dataclass(frozen=True)
class BprEmbeddings:
    """MCRec's fixed node vectors aligned with internal ids (float32)."""

    users: np.ndarray  # (n_users, dim)
    items: np.ndarray  # (n_items, dim)
    types: np.ndarray  # (n_types, dim)
    source: str = ""

    @property
    def dim(self) -> int:
        return int(self.users.shape[1])


def _read_vectors(path: Path) -> tuple[np.ndarray, np.ndarray]:
    from recforge.data.io import DataFormatError

    ids: list[int] = []
    rows: list[list[float]] = []
    width = None
    with open(path, encoding="ascii") as fh:
        for n, line in enumerate(fh, start=1):
            parts = line.split()
            if not parts:
                continue
            try:
                ids.append(int(parts[0]))
                rows.append([float(v) for v in parts[1:]])
            except ValueError:
                raise DataFormatError("expected '<integer id> <float> ...'", file=path,
                                      line=n) from None
            if width is None:
                width = len(rows[-1])
            if len(rows[-1]) != width or width == 0:
                raise DataFormatError(f"{len(rows[-1])} values, expected {width}", file=path,
                                      line=n)
    if not ids:
        raise DataFormatError("file is empty", file=path)
    return np.asarray(ids, dtype=np.int64), np.asarray(rows, dtype=np.float32)


def _align(path: Path, ids: np.ndarray, vecs: np.ndarray, wanted: np.ndarray,
           what: str) -> np.ndarray:
    from recforge.data.io import DataFormatError

    if len(np.unique(ids)) != len(ids):
        raise DataFormatError(f"duplicate {what} ids", file=path)
    order = np.argsort(ids)
    ids, vecs = ids[order], vecs[order]
    try:
        wanted_int = np.asarray(wanted).astype(np.int64)
    except (TypeError, ValueError):
        raise DataFormatError(f"{what} ids of the data are not integers; they cannot be matched "
                              "with the embedding file's ids", file=path) from None
    pos = np.clip(np.searchsorted(ids, wanted_int), 0, len(ids) - 1)
    missing = np.flatnonzero(ids[pos] != wanted_int)
    if missing.size:
        raise DataFormatError(
            f"{missing.size} {what} ids of the data have no vector (first: "
            f"{int(wanted_int[missing[0]])})", file=path)
    return vecs[pos]


def read_bpr_embeddings(train: Interactions, user_file: str | Path, item_file: str | Path,
                        type_file: str | Path) -> BprEmbeddings:
    """MCRec's ``id v_1 ... v_d`` vector files, rows matched with ``train``'s external ids.

    Users and items are matched through ``train.user_ids`` / ``train.item_ids``; file rows for
    other ids (MCRec's files have an unused row 0) are ignored. Genre vectors are matched to the
    columns of ``train.item_features`` (ids 0..n_genres-1) and zero-padded to the user/item
    width, as the original loader did (the released genre file has 32 values, the others 64).
    """
    paths = {"user": Path(user_file), "item": Path(item_file), "type": Path(type_file)}
    uid, uvec = _read_vectors(paths["user"])
    iid, ivec = _read_vectors(paths["item"])
    tid, tvec = _read_vectors(paths["type"])
    n_types = 0 if train.item_features is None else int(train.item_features.shape[1])
    users = _align(paths["user"], uid, uvec, train.user_ids, "user")
    items = _align(paths["item"], iid, ivec, train.item_ids, "item")
    types = _align(paths["type"], tid, tvec, np.arange(n_types), "genre")
    dim = users.shape[1]
    if items.shape[1] != dim or types.shape[1] > dim:
        raise ValueError(f"BPR vectors differ in width: users {dim} ({paths['user']}), items "
                         f"{items.shape[1]} ({paths['item']}), genres {types.shape[1]} "
                         f"({paths['type']})")
    types = np.pad(types, ((0, 0), (0, dim - types.shape[1])))
    return BprEmbeddings(users, items, types,
                         source=", ".join(p.name for p in paths.values()))


def load_bpr_embeddings(train: Interactions, dataset: str = "mcrec-ml-100k",
                        cache_dir: str | Path | None = None) -> BprEmbeddings:
    """:func:`read_bpr_embeddings` on the registered ``ml-100k.bpr.*_embedding`` files."""
    from recforge.data.registry import fetch

    files = [Path(str(fetch(dataset, f"ml-100k.bpr.{k}_embedding", cache_dir=cache_dir)))
             for k in ("user", "item", "type")]
    emb = read_bpr_embeddings(train, *files)
    return BprEmbeddings(emb.users, emb.items, emb.types, source=f"{dataset}: {emb.source}")


def load_side_information(train: Interactions, dataset: str = "mcrec-ml-100k",
                          cache_dir: str | Path | None = None
                          ) -> tuple[BprEmbeddings, sp.csr_matrix]:
    """MCRec's BPR vectors and the correct 19-genre matrix, both matched to ``train``'s ids.

    The genres come from the registered ``dataset`` loaded with ``with_genres=True,
    genre_bug=False`` (MovieLens-100k's ``u.item`` flags), whatever item features ``train``
    itself carries (Table 3's ItemKNN-CBF rows use the paper's buggy 2-column ICM).
    """
    from recforge.data.registry import load_dataset
    from recforge.data.split import Split

    side = load_dataset(dataset, with_genres=True, genre_bug=False, cache_dir=cache_dir)
    side_train = side.train if isinstance(side, Split) else side
    icm = sp.csr_matrix(side_train.item_features)
    ids = np.asarray(side_train.item_ids)
    order = np.argsort(ids)
    want = np.asarray(train.item_ids)
    pos = np.clip(np.searchsorted(ids[order], want), 0, len(ids) - 1)
    missing = np.flatnonzero(ids[order][pos] != want)
    if missing.size:
        raise ValueError(f"{missing.size} item ids of the data are not items of {dataset} "
                         f"(first: {want[missing[0]]!r}); its genres cannot be matched")
    genres = sp.csr_matrix(icm[order[pos]])
    with_types = Interactions(train.matrix, user_ids=train.user_ids, item_ids=train.item_ids,
                              item_features=genres)
    return load_bpr_embeddings(with_types, dataset, cache_dir), genres


def svd_node_vectors(train: Interactions, genres: sp.spmatrix, dim: int = 64,
                     seed: int = 0) -> BprEmbeddings:
    """Node vectors from the training data alone: a seeded truncated SVD R ≈ U Σ Vᵀ of the
    binary training matrix, users U√Σ, items V√Σ, a genre the mean of its items' vectors.

    A leakage-free stand-in for the released BPR vectors (which may have seen test data) and
    the vectors of datasets that have none; ``dim`` is capped at min(n_users, n_items) - 1.
    """
    from sklearn.utils.extmath import randomized_svd

    r = sp.csr_matrix(train.matrix, dtype=np.float64, copy=True)
    r.data[:] = 1.0
    k = max(1, min(int(dim), min(r.shape) - 1))
    u, sigma, vt = randomized_svd(r, k, random_state=int(seed))
    root = np.sqrt(sigma)[None, :]
    users, items = (u * root).astype(np.float32), (vt.T * root).astype(np.float32)
    g = sp.csr_matrix(genres, dtype=np.float64)
    g.data[:] = 1.0
    size = np.asarray(g.sum(axis=0)).ravel()
    types = (g.T @ items) / np.where(size > 0, size, 1.0)[:, None]
    return BprEmbeddings(users, items, np.asarray(types, dtype=np.float32),
                         source=f"truncated SVD of the training matrix (k={k}, seed={seed})")


# ----------------------------------------------------------------------------- graphs
def knn_graph(x: sp.spmatrix, k: int = KNN) -> sp.csr_matrix:
    """Symmetric k-NN graph between the columns of ``x`` (cosine on binarised ``x``; bool CSR)."""
    from recforge.models.similarity import compute_similarity

    b = sp.csr_matrix(x, dtype=np.float32, copy=True)
    b.data[:] = 1.0
    w = compute_similarity(b, "cosine", shrink=0.0, top_k=k, normalize=True)
    w.data[:] = 1.0
    g = sp.csr_matrix(((w + w.T) > 0).astype(np.int8))
    g.setdiag(0)
    g.eliminate_zeros()
    g.sort_indices()
    return g


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1.0)


def _top_by_score(m: sp.csr_matrix, score: np.ndarray, limit: int) -> np.ndarray:
    """Per row, the (at most ``limit``) column ids with the largest ``score`` (ties: lower id)."""
    rows = np.repeat(np.arange(m.shape[0]), np.diff(m.indptr))
    order = np.lexsort((m.indices, -score, rows))  # row, then score desc, then id asc
    rows_sorted = rows[order]
    rank = np.arange(len(order)) - m.indptr[rows_sorted]
    sel = rank < limit
    out = np.full((m.shape[0], limit), -1, dtype=np.int64)
    out[rows_sorted[sel], rank[sel]] = m.indices[order][sel]
    return out


# ----------------------------------------------------------------------------- the kernel
@numba.njit(cache=True, inline="always")
def _push(bs: np.ndarray, bg: np.ndarray, b1: np.ndarray, b2: np.ndarray, cnt: int,
          score: float, gen: int, n1: int, n2: int) -> int:
    """Insert into a best-first buffer ordered by (score desc, enumeration index asc).

    Ordering by the enumeration index makes the result that of a stable sort of the nested
    enumeration, whatever order the kernel visits the candidates in.
    """
    cap = bs.shape[0]
    if cnt == cap and (score < bs[cap - 1] or (score == bs[cap - 1] and gen > bg[cap - 1])):
        return cnt
    p = cnt if cnt < cap else cap - 1
    while p > 0 and (score > bs[p - 1] or (score == bs[p - 1] and gen < bg[p - 1])):
        if p < cap:
            bs[p], bg[p], b1[p], b2[p] = bs[p - 1], bg[p - 1], b1[p - 1], b2[p - 1]
        p -= 1
    bs[p], bg[p], b1[p], b2[p] = score, gen, n1, n2
    return cnt + 1 if cnt < cap else cnt


@numba.njit(cache=True, inline="always")
def _full_and_below(bs: np.ndarray, cnt: int, score: float) -> bool:
    # Once the buffer is full, a candidate scoring strictly less can never enter.
    return cnt == bs.shape[0] and score < bs[cnt - 1]


@numba.njit(cache=True, parallel=True)
def _sample_kernel(cos_ui, rated, top_items, top_users, g_ptr, g_idx, uk_ptr, uk_idx,
                   mk_ptr, mk_idx, threshold, mids, counts):  # pragma: no cover - numba
    n_users, n_items = rated.shape
    n_types = g_idx.shape[0] + 1  # > the genre count of any item: the UMTM index stride
    cap = mids.shape[3]
    limit = top_items.shape[1]
    item0 = n_users
    type0 = n_users + n_items
    for u in numba.prange(n_users):
        bs = np.empty(cap, dtype=np.float64)
        bg = np.empty(cap, dtype=np.int64)
        b1 = np.empty(cap, dtype=np.int64)
        b2 = np.empty(cap, dtype=np.int64)
        for m in range(n_items):
            # UMTM  u-m1-t-m: score cos(u, m1), non-increasing along M(u).
            cnt = 0
            for s in range(limit):
                m1 = top_items[u, s]
                if m1 < 0:
                    break
                sc = cos_ui[u, m1]
                if sc <= threshold or _full_and_below(bs, cnt, sc):
                    break
                if m1 == m:
                    continue
                gm, gm_end = g_ptr[m], g_ptr[m + 1]
                g1, g1_end = g_ptr[m1], g_ptr[m1 + 1]
                k = 0
                while gm < gm_end and g1 < g1_end:  # t in G(m) (in G(m)'s order) and in G(m1)
                    if g_idx[gm] < g_idx[g1]:
                        gm += 1
                        k += 1
                    elif g_idx[gm] > g_idx[g1]:
                        g1 += 1
                    else:
                        cnt = _push(bs, bg, b1, b2, cnt, sc, s * n_types + k, item0 + m1,
                                    type0 + g_idx[gm])
                        gm += 1
                        g1 += 1
                        k += 1
            counts[u, m, 0] = cnt
            for p in range(cnt):
                mids[u, m, 0, p, 0] = b1[p]
                mids[u, m, 0, p, 1] = b2[p]
            # UMUM  u-m1-u2-m: score mean(cos(u, m1), cos(u2, m1), cos(m, u2)).
            cnt = 0
            for s in range(limit):
                m1 = top_items[u, s]
                if m1 < 0:
                    break
                if m1 == m:
                    continue
                sm = cos_ui[u, m1]
                for r in range(limit):
                    u2 = top_users[m, r]
                    if u2 < 0:
                        break
                    if u2 == u or not rated[u2, m1]:
                        continue
                    sc = (cos_ui[u2, m1] + cos_ui[u2, m] + sm) / 3.0
                    if sc > threshold:
                        cnt = _push(bs, bg, b1, b2, cnt, sc, s * limit + r, item0 + m1, u2)
            counts[u, m, 1] = cnt
            for p in range(cnt):
                mids[u, m, 1, p, 0] = b1[p]
                mids[u, m, 1, p, 1] = b2[p]
            # UUUM  u-u1-u2-m: score cos(m, u2), non-increasing along U(m); enumerated
            # u1-major, so visit u2 in score order and u1 in N(u) ∩ N(u2) (the graph is
            # symmetric, so u2 ∈ N(u1) ⟺ u1 ∈ N(u2)).
            cnt = 0
            for r in range(limit):
                u2 = top_users[m, r]
                if u2 < 0:
                    break
                sc = cos_ui[u2, m]
                if sc <= threshold or _full_and_below(bs, cnt, sc):
                    break
                if u2 == u:
                    continue
                a, a_end = uk_ptr[u], uk_ptr[u + 1]
                b, b_end = uk_ptr[u2], uk_ptr[u2 + 1]
                pos = 0
                while a < a_end and b < b_end:
                    if uk_idx[a] < uk_idx[b]:
                        a += 1
                        pos += 1
                    elif uk_idx[a] > uk_idx[b]:
                        b += 1
                    else:
                        cnt = _push(bs, bg, b1, b2, cnt, sc, pos * limit + r, uk_idx[a], u2)
                        a += 1
                        b += 1
                        pos += 1
            counts[u, m, 2] = cnt
            for p in range(cnt):
                mids[u, m, 2, p, 0] = b1[p]
                mids[u, m, 2, p, 1] = b2[p]
            # UMMM  u-m1-m2-m: score cos(u, m1), non-increasing along M(u); m2 in N(m) ∩ N(m1).
            cnt = 0
            for s in range(limit):
                m1 = top_items[u, s]
                if m1 < 0:
                    break
                sc = cos_ui[u, m1]
                if sc <= threshold or _full_and_below(bs, cnt, sc):
                    break
                if m1 == m:
                    continue
                a, a_end = mk_ptr[m], mk_ptr[m + 1]
                b, b_end = mk_ptr[m1], mk_ptr[m1 + 1]
                pos = 0
                while a < a_end and b < b_end:
                    if mk_idx[a] < mk_idx[b]:
                        a += 1
                        pos += 1
                    elif mk_idx[a] > mk_idx[b]:
                        b += 1
                    else:
                        cnt = _push(bs, bg, b1, b2, cnt, sc, s * n_items + pos, item0 + m1,
                                    item0 + mk_idx[a])
                        a += 1
                        b += 1
                        pos += 1
            counts[u, m, 3] = cnt
            for p in range(cnt):
                mids[u, m, 3, p, 0] = b1[p]
                mids[u, m, 3, p, 1] = b2[p]


# ----------------------------------------------------------------------------- result
def instance_nodes(mids: np.ndarray, counts: np.ndarray, users: np.ndarray, items: np.ndarray,
                   pad: int) -> np.ndarray:
    """Full node ids [u, n1, n2, m] of each pair's instances; missing instances are ``pad``."""
    users = np.asarray(users, dtype=np.int64)
    items = np.asarray(items, dtype=np.int64)
    n_users = mids.shape[0]
    mid = mids[users, items].astype(np.int64)
    cnt = counts[users, items].astype(np.int64)
    out = np.empty((*mid.shape[:3], 4), dtype=np.int64)
    out[..., 0] = users[:, None, None]
    out[..., 1:3] = mid
    out[..., 3] = (n_users + items)[:, None, None]
    out[np.arange(mid.shape[2])[None, None, :] >= cnt[..., None]] = pad
    return out


@dataclass(frozen=True)
class Metapaths:
    """Sampled instances: ``mids[u, m, k, p]`` = the two middle node ids of instance p.

    ``counts[u, m, k]`` instances are valid (best first); the other slots hold ``pad``.
    Node ids index :attr:`features` (users, items, genres, then the zero padding row).
    """

    mids: np.ndarray  # (n_users, n_items, n_metapaths, N_PATHS, 2) int16
    counts: np.ndarray  # (n_users, n_items, n_metapaths) int8
    features: np.ndarray  # (n_nodes + 1, dim) float32, last row zeros
    n_users: int
    n_items: int
    names: tuple[str, ...] = METAPATHS

    @property
    def pad(self) -> int:
        return int(self.features.shape[0] - 1)

    def node_ids(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(len(users), n_metapaths, N_PATHS, 4) node ids of the pairs' instances (pad-filled)."""
        return instance_nodes(self.mids, self.counts, users, items, self.pad)

    def coverage(self) -> dict[str, float]:
        """Share of (user, item) pairs with at least one instance, per metapath."""
        return {name: float((self.counts[..., k] > 0).mean()) for k, name in enumerate(self.names)}


def sample_metapaths(
    train: Interactions,
    embeddings: BprEmbeddings,
    *,
    genres: sp.spmatrix | None = None,
    knn: int = KNN,
    threshold: float = THRESHOLD,
    log_fn: Callable[[str], None] | None = None,
) -> Metapaths:
    """Re-sample the four metapaths for every (user, item) pair of ``train`` (see the module).

    ``genres`` is the items x genres 0/1 matrix (rows aligned with ``train``'s items); by
    default ``train.item_features`` (MovieLens-100k's ``u.item`` flags loaded with
    ``with_genres=True``).
    """
    say = log_fn or log.info
    if genres is None:
        genres = train.item_features
    if genres is None:
        raise ValueError("MCRec metapaths need the item genres: pass genres= or load the data "
                         "with with_genres=True so that train.item_features is the genre matrix")
    n_users, n_items = train.shape
    if genres.shape[0] != n_items:
        raise ValueError(f"genres has {genres.shape[0]} rows for {n_items} items")
    n_types = int(genres.shape[1])
    if embeddings.users.shape[0] != n_users or embeddings.items.shape[0] != n_items:
        raise ValueError(f"BPR vectors cover {embeddings.users.shape[0]} users x "
                         f"{embeddings.items.shape[0]} items, the data has {n_users} x {n_items}")
    if embeddings.types.shape[0] != n_types:
        raise ValueError(f"{embeddings.types.shape[0]} genre vectors for {n_types} genres")
    n_nodes = n_users + n_items + n_types
    if n_nodes + 1 > np.iinfo(np.int16).max:
        raise ValueError(f"{n_nodes:,} nodes do not fit the int16 node ids of the path store")
    need = n_users * n_items * (len(METAPATHS) * (N_PATHS * 2 * 2 + 1) + 4)
    if need > MAX_BYTES:
        raise ValueError(
            f"metapaths for {n_users:,} x {n_items:,} pairs need {need / 2**30:.1f} GiB "
            f"(dense store); the cap is {MAX_BYTES / 2**30:.0f} GiB")
    t0 = time.perf_counter()
    r = sp.csr_matrix(train.matrix, dtype=np.float32)
    r.data[:] = 1.0
    # float64 cosines, as the script computed them, so that the 0.7 cut falls where it did.
    eu, ei = _unit_rows(embeddings.users), _unit_rows(embeddings.items)
    cos_ui = eu @ ei.T
    rt = sp.csr_matrix(r.T)
    rt.sort_indices()
    top_items = _top_by_score(r, cos_ui[np.repeat(np.arange(n_users), np.diff(r.indptr)),
                                        r.indices], HOP_LIMIT)
    top_users = _top_by_score(rt, cos_ui[rt.indices,
                                         np.repeat(np.arange(n_items), np.diff(rt.indptr))],
                              HOP_LIMIT)
    genres = sp.csr_matrix(genres, dtype=np.float32)
    genres.eliminate_zeros()
    genres.sort_indices()
    uk = knn_graph(r.T, knn)
    mk = knn_graph(r, knn)
    mids = np.zeros((n_users, n_items, len(METAPATHS), N_PATHS, 2), dtype=np.int16)
    counts = np.zeros((n_users, n_items, len(METAPATHS)), dtype=np.int8)
    rated = r.toarray() > 0  # n_users x n_items bytes, far below the path store itself
    _sample_kernel(cos_ui, rated, top_items, top_users,
                   genres.indptr.astype(np.int64), genres.indices.astype(np.int64),
                   uk.indptr.astype(np.int64), uk.indices.astype(np.int64),
                   mk.indptr.astype(np.int64), mk.indices.astype(np.int64),
                   float(threshold), mids, counts)
    features = np.concatenate([embeddings.users, embeddings.items, embeddings.types,
                               np.zeros((1, embeddings.dim), dtype=np.float32)]).astype(np.float32)
    out = Metapaths(mids=mids, counts=counts, features=features, n_users=n_users,
                    n_items=n_items)
    cov = ", ".join(f"{k} {v:.1%}" for k, v in out.coverage().items())
    say(f"MCRec metapaths for {n_users:,} x {n_items:,} pairs in "
        f"{time.perf_counter() - t0:.1f}s; pairs with >= 1 instance: {cov}")
    return out
