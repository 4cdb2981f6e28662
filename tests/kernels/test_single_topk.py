"""The one top-k (recforge._kernels): every selection follows TIE_RULE, checked by brute force."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recforge._kernels import topk
from recforge._kernels.heap import heap_push
from recforge._kernels.topk import TIE_RULE, select_rows, select_stored, select_topk

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _reference_row(row: np.ndarray, k: int, drop_zeros: bool) -> list[tuple[int, float]]:
    """Sort by (value descending, index ascending), keep k, then drop zeros if asked."""
    ranked = sorted(range(row.size), key=lambda j: (-float(row[j]), j))[:k]
    return [(j, float(row[j])) for j in ranked if not (drop_zeros and row[j] == 0)]


@st.composite
def tied_blocks(draw: st.DrawFn) -> tuple[np.ndarray, int]:
    n_rows = draw(st.integers(1, 6))
    n_cols = draw(st.integers(1, 12))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    vals = draw(st.lists(st.integers(-2, 3), min_size=n_rows * n_cols, max_size=n_rows * n_cols))
    k = draw(st.integers(1, n_cols + 2))
    return np.array(vals, dtype=dtype).reshape(n_rows, n_cols), k


@SETTINGS
@given(tied_blocks(), st.booleans())
def test_select_rows_follows_the_tie_rule(case: tuple[np.ndarray, int], drop_zeros: bool) -> None:
    values, k = case
    rows, cols, vals = select_rows(values, k, drop_zeros=drop_zeros)
    got: dict[int, list[tuple[int, float]]] = {}
    for r, c, v in zip(rows.tolist(), cols.tolist(), vals.tolist(), strict=True):
        got.setdefault(r, []).append((c, v))
    for r in range(values.shape[0]):
        assert got.get(r, []) == _reference_row(values[r], k, drop_zeros)
    assert np.all(np.diff(rows) >= 0)
    assert vals.dtype == values.dtype


@SETTINGS
@given(tied_blocks())
def test_select_stored_keeps_the_best_stored_entries(case: tuple[np.ndarray, int]) -> None:
    values, k = case
    m = sp.csr_matrix(values)
    got = select_stored(m, k).toarray()
    expected = np.zeros_like(values, dtype=np.float32)
    for c in range(values.shape[1]):
        stored = np.flatnonzero(values[:, c] != 0)  # only stored entries compete
        ranked = sorted(stored.tolist(), key=lambda r: (-float(values[r, c]), r))[:k]
        expected[ranked, c] = values[ranked, c]
    np.testing.assert_array_equal(got, expected)


@SETTINGS
@given(tied_blocks())
def test_compiled_heap_keeps_the_same_entries(case: tuple[np.ndarray, int]) -> None:
    values, k = case
    row = values[0].astype(np.float64)
    hv = np.empty(k, dtype=np.float64)
    hi = np.empty(k, dtype=np.int64)
    size = 0
    for j in range(row.size):
        size = heap_push(hv, hi, size, k, row[j], j)
    kept = sorted(zip(hi[:size].tolist(), hv[:size].tolist(), strict=True),
                  key=lambda t: (-t[1], t[0]))  # fmt: skip
    assert kept == _reference_row(row, k, drop_zeros=False)


@pytest.mark.parametrize("backend", ["numba", "numpy"])
def test_score_block_selection_agrees_with_row_selection(backend: str) -> None:
    rng = np.random.default_rng(4)
    block = rng.integers(0, 4, (9, 30)).astype(np.float32)
    users = np.arange(9)
    empty_ptr = np.zeros(10, dtype=np.int64)
    empty_idx = np.zeros(0, dtype=np.int32)
    sel, nan_rows = select_topk(
        block, users, 7, mask_ptr=empty_ptr, mask_idx=empty_idx, test_ptr=empty_ptr,
        test_idx=empty_idx, candidates=False, backend=topk.resolve_backend(backend),
    )  # fmt: skip
    assert not nan_rows.any()
    _, cols, _ = select_rows(block, 7)
    np.testing.assert_array_equal(sel.items, cols.reshape(9, 7))
    assert "lower index first" in TIE_RULE


def test_old_import_paths_are_the_same_objects() -> None:
    from recforge import numpy_legacy
    from recforge._kernels import _select_numba, legacy
    from recforge.evaluation import _kernels as old_kernels
    from recforge.evaluation import topk as old_topk

    assert old_topk.select_topk is topk.select_topk and old_topk.TIE_RULES is topk.TIE_RULES
    assert old_kernels.topk_full is _select_numba.topk_full
    assert numpy_legacy.legacy_top is legacy.legacy_top


def test_no_other_module_selects_top_k_itself() -> None:
    """One top-k: argpartition and hand-rolled heaps live in recforge/_kernels only."""
    src = Path(__file__).resolve().parents[2] / "src" / "recforge"
    pattern = re.compile(r"np\.argpartition\(|def _?heap_push\(|def _?better\(")
    offenders = [
        str(p.relative_to(src))
        for p in src.rglob("*.py")
        if "_kernels" not in p.parts and pattern.search(p.read_text())
    ]
    assert offenders == []


@pytest.mark.parametrize("fill", ["zeros", "signed-zeros", "ties", "minus-inf"])
def test_select_rows_float32_kernel_path_equals_the_numpy_path(
    fill: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """float32 blocks go through the numba kernel (SLIM BPR's and the KNNs' pruning); its
    output equals the partition path's exactly, -inf rows included (they fall back)."""
    if not topk.numba_available():
        pytest.fail("numba is a core dependency: the kernel path must be testable")
    rng = np.random.default_rng(11)
    v = rng.standard_normal((60, 300)).astype(np.float32)
    if fill == "zeros":
        v[rng.random(v.shape) < 0.9] = 0.0
    elif fill == "signed-zeros":
        v[rng.random(v.shape) < 0.5] = -0.0
        v[rng.random(v.shape) < 0.3] = 0.0
    elif fill == "ties":
        v = rng.integers(-2, 3, v.shape).astype(np.float32)
    else:
        v[rng.random(v.shape) < 0.5] = -np.inf
    for k, drop in [(1, False), (17, True), (150, False), (299, True)]:
        fast = select_rows(v, k, drop_zeros=drop)
        with monkeypatch.context() as m:
            m.setattr(topk, "_load_kernels", lambda: None)
            slow = select_rows(v, k, drop_zeros=drop)
        for a, b in zip(fast, slow, strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
