"""MCRec's metapath re-sampling: the vectorised kernel against a plain reading of the rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.data.io import DataFormatError
from recforge.models.torch.mcrec_metapaths import (
    METAPATHS,
    BprEmbeddings,
    knn_graph,
    read_bpr_embeddings,
    sample_metapaths,
)


def _tiny(seed: int = 0, n_users: int = 14, n_items: int = 17, n_types: int = 4,
          density: float = 0.35) -> tuple[Interactions, BprEmbeddings]:
    rng = np.random.default_rng(seed)
    r = (rng.random((n_users, n_items)) < density).astype(np.float32)
    r[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0  # nobody empty
    genres = (rng.random((n_items, n_types)) < 0.5).astype(np.float32)
    train = Interactions(sp.csr_matrix(r), item_features=sp.csr_matrix(genres))
    # Vectors around one common direction, so that many cosines clear the 0.7 cut.
    base = rng.normal(size=8)
    def vecs(n: int) -> np.ndarray:
        return (base + 0.6 * rng.normal(size=(n, 8))).astype(np.float32)
    return train, BprEmbeddings(vecs(n_users), vecs(n_items), vecs(n_types))


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _reference(train: Interactions, emb: BprEmbeddings, knn: int, threshold: float
               ) -> dict[tuple[int, int, str], list[tuple[int, int]]]:
    """The module docstring's rules, one pair at a time, with plain lists and a stable sort."""
    r = train.matrix.toarray() > 0
    g = train.item_features.toarray() > 0
    n_users, n_items = r.shape
    nu = knn_graph(train.matrix.T, knn).toarray() > 0
    nm = knn_graph(train.matrix, knn).toarray() > 0
    item0, type0 = n_users, n_users + n_items

    def top(cands: list[int], score: dict[int, float]) -> list[int]:
        return sorted(cands, key=lambda x: (-score[x], x))[:10]

    out: dict[tuple[int, int, str], list[tuple[int, int]]] = {}
    for u in range(n_users):
        su = {m: _cos(emb.users[u], emb.items[m]) for m in np.flatnonzero(r[u])}
        mu = top(list(su), su)
        for m in range(n_items):
            sm = {v: _cos(emb.items[m], emb.users[v]) for v in np.flatnonzero(r[:, m])}
            um = top(list(sm), sm)
            cands: dict[str, list[tuple[float, int, int]]] = {k: [] for k in METAPATHS}
            for m1 in mu:
                for t in np.flatnonzero(g[m]):
                    if m1 != m and g[m1, t]:
                        cands["umtm"].append((su[m1], item0 + m1, type0 + int(t)))
                for u2 in um:
                    if r[u2, m1] and u2 != u and m1 != m:
                        s = (_cos(emb.users[u2], emb.items[m1]) + sm[u2] + su[m1]) / 3
                        cands["umum"].append((s, item0 + m1, u2))
                for m2 in np.flatnonzero(nm[m]):
                    if nm[m1, m2] and m1 != m:
                        cands["ummm"].append((su[m1], item0 + m1, item0 + int(m2)))
            for u1 in np.flatnonzero(nu[u]):
                for u2 in um:
                    if nu[u1, u2] and u2 != u:
                        cands["uuum"].append((sm[u2], int(u1), u2))
            for k, lst in cands.items():
                kept = [c for c in lst if c[0] > threshold]
                kept.sort(key=lambda c: -c[0])  # stable: enumeration order among equals
                out[(u, m, k)] = [(a, b) for _, a, b in kept[:5]]
    return out


@pytest.mark.parametrize(("seed", "threshold", "knn"), [(0, 0.7, 4), (1, 0.0, 3), (2, 0.5, 6)])
def test_kernel_matches_a_plain_reading_of_the_rules(seed: int, threshold: float,
                                                     knn: int) -> None:
    train, emb = _tiny(seed)
    got = sample_metapaths(train, emb, knn=knn, threshold=threshold)
    ref = _reference(train, emb, knn, threshold)
    n_found = 0
    for (u, m, name), paths in ref.items():
        k = METAPATHS.index(name)
        c = int(got.counts[u, m, k])
        assert c == len(paths), (u, m, name)
        assert [tuple(map(int, got.mids[u, m, k, p])) for p in range(c)] == paths, (u, m, name)
        n_found += c
    assert n_found > 200  # the tiny data exercises every rule, not just empty lists


def test_ties_keep_the_enumeration_order() -> None:
    # Every user and item has the same vector: all cosines are 1, every candidate ties.
    train, emb = _tiny(3)
    same = np.ones((1, 8), dtype=np.float32)
    flat = BprEmbeddings(np.repeat(same, train.n_users, 0), np.repeat(same, train.n_items, 0),
                         np.repeat(same, emb.types.shape[0], 0))
    got = sample_metapaths(train, flat, knn=4)
    ref = _reference(train, flat, 4, 0.7)
    for (u, m, name), paths in ref.items():
        k = METAPATHS.index(name)
        c = int(got.counts[u, m, k])
        assert [tuple(map(int, got.mids[u, m, k, p])) for p in range(c)] == paths


def test_instances_only_use_training_edges_and_typed_nodes() -> None:
    train, emb = _tiny(4)
    mp = sample_metapaths(train, emb, knn=4, threshold=0.3)
    r = train.matrix.toarray() > 0
    g = train.item_features.toarray() > 0
    n_users, n_items = train.shape
    ids = mp.node_ids(np.repeat(np.arange(n_users), n_items), np.tile(np.arange(n_items), n_users))
    ids = ids.reshape(n_users, n_items, len(METAPATHS), 5, 4)
    kinds = {"u": (0, n_users), "m": (n_users, n_users + n_items),
             "t": (n_users + n_items, n_users + n_items + g.shape[1])}
    for k, name in enumerate(METAPATHS):
        valid = np.arange(5)[None, None, :] < mp.counts[..., k][..., None]
        block = ids[:, :, k][valid]  # (n_valid, 4)
        assert len(block) > 0
        for pos, kind in enumerate(name):
            lo, hi = kinds[kind]
            assert ((block[:, pos] >= lo) & (block[:, pos] < hi)).all(), (name, pos)
        # Missing instances are the zero padding row in all four positions.
        assert (ids[:, :, k][~valid] == mp.pad).all()
    # UMUM's middle edge u2-m1 and UMTM's m1-t are real training / genre edges.
    umum = ids[:, :, 1][np.arange(5)[None, None, :] < mp.counts[..., 1][..., None]]
    assert r[umum[:, 2], umum[:, 1] - n_users].all()
    umtm = ids[:, :, 0][np.arange(5)[None, None, :] < mp.counts[..., 0][..., None]]
    assert g[umtm[:, 1] - n_users, umtm[:, 2] - n_users - n_items].all()
    assert (mp.features[mp.pad] == 0).all()


def test_knn_graph_is_symmetric_without_self_loops() -> None:
    rng = np.random.default_rng(0)
    x = sp.csr_matrix((rng.random((30, 12)) < 0.3).astype(np.float32))
    g = knn_graph(x, 3)
    d = g.toarray()
    assert (d == d.T).all() and not d.diagonal().any()
    assert (d.sum(0) >= np.minimum(3, (x.T @ x > 0).toarray().sum(0) - 1)).all()


def test_missing_genres_and_oversized_data_fail_before_work() -> None:
    train, emb = _tiny(0)
    with pytest.raises(ValueError, match="with_genres=True"):
        sample_metapaths(Interactions(train.matrix), emb)
    big = Interactions(sp.csr_matrix((8000, 8000), dtype=np.float32),
                       item_features=sp.csr_matrix((8000, 2), dtype=np.float32))
    z = np.zeros((8000, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="GiB"):
        sample_metapaths(big, BprEmbeddings(z, z, np.zeros((2, 4), dtype=np.float32)))


def _write(path: Path, rows: dict[int, list[float]]) -> Path:
    path.write_text("".join(f"{k} " + " ".join(map(str, v)) + "\n" for k, v in rows.items()))
    return path


def test_bpr_files_are_matched_by_external_id_and_genres_padded(tmp_path: Path) -> None:
    train = Interactions(sp.csr_matrix(np.eye(2, 3, dtype=np.float32)),
                         user_ids=np.array([1, 2]), item_ids=np.array([1, 2, 3]),
                         item_features=sp.csr_matrix(np.ones((3, 2), dtype=np.float32)))
    uf = _write(tmp_path / "u", {2: [2.0, 2.5, 0.0], 0: [9.0, 9.0, 9.0], 1: [1.0, 1.5, 0.0]})
    itf = _write(tmp_path / "i", {i: [float(i), 0.0, 1.0] for i in range(4)})
    tf = _write(tmp_path / "t", {0: [0.5], 1: [0.25]})
    emb = read_bpr_embeddings(train, uf, itf, tf)
    assert emb.users.tolist() == [[1.0, 1.5, 0.0], [2.0, 2.5, 0.0]]
    assert emb.items[:, 0].tolist() == [1.0, 2.0, 3.0]
    assert emb.types.tolist() == [[0.5, 0.0, 0.0], [0.25, 0.0, 0.0]]


def test_bpr_file_errors_name_file_and_line(tmp_path: Path) -> None:
    train = Interactions(sp.csr_matrix(np.eye(2, 3, dtype=np.float32)),
                         user_ids=np.array([1, 2]), item_ids=np.array([1, 2, 3]),
                         item_features=sp.csr_matrix(np.ones((3, 1), dtype=np.float32)))
    good_i = _write(tmp_path / "i", {i: [1.0, 2.0] for i in range(1, 4)})
    good_t = _write(tmp_path / "t", {0: [1.0]})
    short = _write(tmp_path / "u", {1: [1.0, 2.0], 2: [1.0]})
    with pytest.raises(DataFormatError, match=r"u.*line 2"):
        read_bpr_embeddings(train, short, good_i, good_t)
    missing = _write(tmp_path / "u2", {1: [1.0, 2.0]})
    with pytest.raises(DataFormatError, match=r"1 user ids of the data have no vector.*2"):
        read_bpr_embeddings(train, missing, good_i, good_t)
    (tmp_path / "u3").write_text("1 a b\n")
    with pytest.raises(DataFormatError, match="line 1"):
        read_bpr_embeddings(train, tmp_path / "u3", good_i, good_t)


@pytest.mark.paper_data("mcrec-ml-100k", "movielens-100k")
def test_ml100k_metapaths_from_the_released_vectors(paper_data: Path) -> None:
    from recforge.data.registry import load_dataset
    from recforge.models.torch.mcrec_metapaths import load_bpr_embeddings

    split = load_dataset("mcrec-ml-100k", with_genres=True)
    emb = load_bpr_embeddings(split.train)
    assert emb.users.shape == (943, 64) and emb.items.shape == (1682, 64)
    assert emb.types.shape == (19, 64) and not emb.types[:, 32:].any()
    mp = sample_metapaths(split.train, emb)
    cov = mp.coverage()
    # Genre and item-kNN paths reach most pairs; the user-side paths are rarer.
    assert 0.5 < cov["umtm"] < 0.95 and 0.5 < cov["ummm"] < 0.95
    assert 0.05 < cov["umum"] < 0.5 and 0.05 < cov["uuum"] < 0.5
