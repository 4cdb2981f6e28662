"""Vectorised evaluator vs a plain per-user Python reference, on random tied score matrices."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from evaluation_helpers import fixed_scores, interactions, reference_list, reference_metrics
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recforge._kernels.topk import select_topk
from recforge.evaluation import ACCURACY_METRICS, Evaluator

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def cases(draw: st.DrawFn) -> dict:  # type: ignore[type-arg]
    n_users = draw(st.integers(1, 6))
    n_items = draw(st.integers(1, 12))
    # Small integer scores make ties common; some cells are -inf (dropped items).
    raw = draw(
        st.lists(
            st.sampled_from([0.0, 1.0, 2.0, 3.0, -0.0, -1.0, -np.inf, np.inf]),
            min_size=n_users * n_items,
            max_size=n_users * n_items,
        )
    )
    scores = np.array(raw, dtype=np.float32).reshape(n_users, n_items)
    subsets = st.lists(st.sets(st.integers(0, n_items - 1)), min_size=n_users, max_size=n_users)
    test = draw(subsets)
    if not any(test):
        test[0] = {0}
    exclude = draw(subsets)
    negatives = draw(
        st.lists(
            st.lists(st.integers(0, n_items - 1), max_size=2 * n_items),
            min_size=n_users,
            max_size=n_users,
        )
    )
    cutoffs = draw(st.lists(st.integers(1, n_items + 2), min_size=1, max_size=4))
    return {
        "scores": scores,
        "test": [sorted(t) for t in test],
        "exclude": [sorted(e) for e in exclude],
        "negatives": negatives,
        "cutoffs": cutoffs,
        "n_items": n_items,
        "backend": draw(st.sampled_from(["numba", "numpy"])),
        "candidates": draw(st.booleans()),
        "budget": draw(st.sampled_from([256.0, 1e-6])),
    }


def _negatives_csr(lists: list[list[int]], n_items: int) -> sp.csr_matrix:
    from recforge.data.split import negatives_from_lists

    return negatives_from_lists(lists, n_items)


@SETTINGS
@given(cases())
def test_matches_reference(case: dict) -> None:  # type: ignore[type-arg]
    n_items = case["n_items"]
    ev = Evaluator(
        interactions(case["test"], n_items),
        cutoffs=case["cutoffs"],
        metrics=[*ACCURACY_METRICS, "COVERAGE"],
        exclude=interactions(case["exclude"], n_items),
        candidates=_negatives_csr(case["negatives"], n_items) if case["candidates"] else None,
        memory_budget_mb=case["budget"],
        backend=case["backend"],
    )
    res = ev.evaluate(fixed_scores(case["scores"]))  # type: ignore[arg-type]
    expected_users = [u for u, t in enumerate(case["test"]) if t]
    assert res.users.tolist() == expected_users
    for k in sorted(set(case["cutoffs"])):
        recommended: set[int] = set()
        for row, u in enumerate(expected_users):
            cand = set(case["test"][u]) | set(case["negatives"][u]) if case["candidates"] else None
            ranked = reference_list(case["scores"][u], set(case["exclude"][u]), cand, k)
            recommended.update(ranked)
            ref = reference_metrics(ranked, set(case["test"][u]), k)
            for name, value in ref.items():
                got = res.per_user[f"{name}@{k}"][row]
                assert np.isclose(got, value, rtol=1e-9, atol=1e-12), (name, k, u, got, value)
        assert np.isclose(res.summary[f"COVERAGE@{k}"], len(recommended) / n_items)


@SETTINGS
@given(cases(), st.integers(1, 14))
def test_numba_and_numpy_give_identical_lists(case: dict, k: int) -> None:  # type: ignore[type-arg]
    n_items = case["n_items"]
    users = np.arange(case["scores"].shape[0], dtype=np.int64)
    excl = interactions(case["exclude"], n_items).matrix
    test = interactions(case["test"], n_items).matrix
    out = {}
    for backend in ("numba", "numpy"):
        sel, nan_rows = select_topk(
            case["scores"],
            users,
            k,
            mask_ptr=excl.indptr.astype(np.int64),
            mask_idx=excl.indices.astype(np.int32),
            test_ptr=test.indptr.astype(np.int64),
            test_idx=test.indices.astype(np.int32),
            candidates=False,
            backend=backend,  # type: ignore[arg-type]
        )
        assert not nan_rows.any()
        out[backend] = sel
    a, b = out["numba"], out["numpy"]
    np.testing.assert_array_equal(a.items, b.items)
    np.testing.assert_array_equal(a.hits, b.hits)
    np.testing.assert_array_equal(a.lengths, b.lengths)
    for u in users:
        ref = reference_list(case["scores"][u], set(case["exclude"][u]), None, k)
        assert a.items[u, : a.lengths[u]].tolist() == ref
        assert (a.items[u, a.lengths[u] :] == -1).all()


def test_large_random_blocks_identical_between_backends() -> None:
    # Wide rows exercise the buffer compaction (cap = 2k + 64) many times per row.
    rng = np.random.default_rng(3)
    n_users, n_items, k = 50, 5000, 40
    scores = rng.integers(0, 30, size=(n_users, n_items)).astype(np.float32)
    scores[rng.random(scores.shape) < 0.05] = -np.inf
    excl = sp.random(n_users, n_items, density=0.02, format="csr", random_state=1)
    excl.sort_indices()
    test = sp.random(n_users, n_items, density=0.01, format="csr", random_state=2)
    test.sort_indices()
    users = np.arange(n_users, dtype=np.int64)
    sels = [
        select_topk(
            scores,
            users,
            k,
            mask_ptr=excl.indptr.astype(np.int64),
            mask_idx=excl.indices.astype(np.int32),
            test_ptr=test.indptr.astype(np.int64),
            test_idx=test.indices.astype(np.int32),
            candidates=False,
            backend=b,  # type: ignore[arg-type]
        )[0]
        for b in ("numba", "numpy")
    ]
    np.testing.assert_array_equal(sels[0].items, sels[1].items)
    np.testing.assert_array_equal(sels[0].hits, sels[1].hits)
    ex_rows = [set(excl.indices[excl.indptr[u] : excl.indptr[u + 1]]) for u in range(n_users)]
    for u in (0, 17, 49):
        assert sels[0].items[u].tolist() == reference_list(scores[u], ex_rows[u], None, k)
