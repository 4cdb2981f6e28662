"""EASE ``n_threads``: the BLAS limit applies to the factorisation only and changes nothing else."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from threadpoolctl import threadpool_info, threadpool_limits

from recforge.data.interactions import Interactions
from recforge.models.ease import EASE


def _train(n_users: int = 400, n_items: int = 300, seed: int = 7) -> Interactions:
    # Large enough for LAPACK's blocked (BLAS-3, multi-threaded) Cholesky path.
    r = (np.random.default_rng(seed).random((n_users, n_items)) < 0.1).astype(np.float32)
    return Interactions(sp.csr_matrix(r))


def _blas_threads() -> list[int]:
    return [int(i["num_threads"]) for i in threadpool_info() if i["user_api"] == "blas"]


def _record_threads(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Record the BLAS thread counts seen while EASE factorises."""
    seen: list[list[int]] = []
    invert = EASE._invert_in_place

    def spy(g: np.ndarray) -> Any:
        seen.append(_blas_threads())
        return invert(g)

    monkeypatch.setattr(EASE, "_invert_in_place", staticmethod(spy))
    return seen


def test_one_thread_gives_the_default_b() -> None:
    train = _train()
    default = EASE(l2_norm=30.0).fit(train).item_similarity_
    single = EASE(l2_norm=30.0, n_threads=1).fit(train).item_similarity_
    assert single.dtype == default.dtype == np.float32
    # Thread count may change the summation order: equal to float32 round-off.
    np.testing.assert_allclose(single, default, rtol=1e-5, atol=1e-5 * np.abs(default).max())
    assert EASE(n_threads=1).get_params()["n_threads"] == 1


def test_limit_holds_during_the_factorisation_only(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _record_threads(monkeypatch)
    with threadpool_limits(2, user_api="blas"):
        outside = _blas_threads()
        assert outside, "no BLAS library loaded: scipy.linalg should have loaded one"
        EASE(l2_norm=30.0, n_threads=1).fit(_train(60, 40))
        assert _blas_threads() == outside  # restored after fit
        EASE(l2_norm=30.0).fit(_train(60, 40))
    assert seen == [[1] * len(outside), outside]  # None leaves BLAS as configured


@pytest.mark.parametrize("bad", [0, -2, 1.5, True, "2"])
def test_bad_n_threads_is_named(bad: Any) -> None:
    with pytest.raises(ValueError, match="EASE: n_threads must be a positive integer"):
        EASE(n_threads=bad).fit(_train(20, 10))
