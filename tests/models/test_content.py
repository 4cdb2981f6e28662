"""Item content preparation for CVAE and CDL: feature trimming, row scaling, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.models.torch.content import prepare_content


def test_keeps_the_most_frequent_columns_lower_index_on_ties():
    # column document frequencies: c0=1, c1=3, c2=2, c3=2, c4=3
    x = sp.csr_matrix(np.array([
        [0, 1, 1, 0, 1],
        [1, 1, 0, 1, 1],
        [0, 1, 1, 1, 1],
    ], dtype=np.float32))
    out = prepare_content(x, 3, max_features=3, model="M")
    # c1 and c4 (df 3), then c2 before c3 (df 2, lower index wins)
    np.testing.assert_array_equal(out.columns, [1, 2, 4])
    np.testing.assert_array_equal(out.matrix.toarray(), x.toarray()[:, [1, 2, 4]])
    assert out.n_features == 3 and out.n_input_features == 5


def test_rows_are_divided_by_their_maximum_and_bow_passes_unchanged():
    counts = sp.csr_matrix(np.array([[2, 0, 4], [0, 0, 0], [1, 1, 0]], dtype=np.float32))
    out = prepare_content(counts, 3, max_features=8000, model="M")
    np.testing.assert_allclose(out.matrix.toarray(), [[0.5, 0, 1], [0, 0, 0], [1, 1, 0]])
    assert out.empty_items == 1
    again = prepare_content(out.matrix, 3, max_features=8000, model="M")  # mult_nor-like input
    np.testing.assert_array_equal(again.matrix.toarray(), out.matrix.toarray())
    np.testing.assert_array_equal(again.columns, [0, 1, 2])


def test_input_is_not_modified():
    x = sp.csr_matrix(np.array([[3.0, 1.0]], dtype=np.float32))
    prepare_content(x, 1, max_features=None, model="M")
    np.testing.assert_array_equal(x.toarray(), [[3.0, 1.0]])


@pytest.mark.parametrize(
    ("features", "n_items", "kw", "message"),
    [
        (None, 3, {}, "needs item content"),
        (sp.csr_matrix(np.ones((2, 2))), 3, {}, "2 rows for 3 items"),
        (sp.csr_matrix(np.array([[1.0, -1.0]])), 1, {}, ">= 0"),
        (sp.csr_matrix(np.array([[1.0, np.inf]])), 1, {}, "non-finite"),
        (sp.csr_matrix(np.ones((1, 2))), 1, {"max_features": 0}, "max_features"),
    ],
)
def test_bad_content_is_named(features, n_items, kw, message):
    with pytest.raises(ValueError, match=message):
        prepare_content(features, n_items, model="CVAE", **{"max_features": 10, **kw})
