"""SpectralCF propagation: eig against the original dense formula, sparse I + L, the cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

from recforge.models.torch.spectralcf_propagation import (
    eig_propagation,
    original_eig_propagation,
    propagation_matrix,
    sparse_propagation,
)


def _graph(seed: int, n_users: int = 14, n_items: int = 9, density: float = 0.35) -> np.ndarray:
    rng = np.random.default_rng(seed)
    r = (rng.random((n_users, n_items)) < density).astype(np.float32)
    r[np.arange(n_users), np.arange(n_users) % n_items] = 1.0  # connected, nobody empty
    r[np.arange(n_items) % n_users, np.arange(n_items)] = 1.0
    return r


def _original_formula(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The original's recipe, written out: dense A with self-loops, general eig of I - D^-1 A."""
    nu, ni = r.shape
    a = np.eye(nu + ni)
    a[:nu, nu:] = r
    a[nu:, :nu] = r.T
    lap = np.eye(nu + ni) - a / a.sum(1, keepdims=True)
    lam, u = np.linalg.eig(lap)
    return (u @ u.T + u @ np.diag(lam) @ u.T).real, lam.real


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_eig_matches_the_original_dense_formula(seed: int) -> None:
    r = _graph(seed)
    ref, lam = _original_formula(r)
    # The original's eigenvectors are unique (up to sign) only for distinct eigenvalues.
    assert np.diff(np.sort(lam)).min() > 1e-4
    got = eig_propagation(sp.csr_matrix(r))
    assert got.dtype == np.float32 and got.shape == ref.shape
    np.testing.assert_allclose(got, ref, atol=2e-5)
    # float32 eigensolver: same matrix at float32 accuracy
    np.testing.assert_allclose(eig_propagation(sp.csr_matrix(r), dtype="float32"), ref, atol=2e-3)


def _twin_graph() -> np.ndarray:
    """Five items only user 0 has and five users with the same items: degenerate eigenspaces."""
    rng = np.random.default_rng(0)
    nu, ni = 40, 30
    r = (rng.random((nu, ni)) < 0.2).astype(np.float32)
    r[np.arange(nu), np.arange(nu) % ni] = 1.0
    r[5:10, :] = r[5]
    r[:, 1:6] = 0.0
    r[0, 1:6] = 1.0
    return r


def _literal_recipe(r: np.ndarray) -> np.ndarray:
    """The original's code path: float32 L, numpy eig, complex products, real part."""
    nu, ni = r.shape
    a = np.eye(nu + ni)
    a[:nu, nu:] = r
    a[nu:, :nu] = r.T
    lap = (np.eye(nu + ni) - a / a.sum(1, keepdims=True)).astype(np.float32)
    lam, u = np.linalg.eig(lap)
    return np.real(u @ u.T + u @ np.diag(lam) @ u.T).astype(np.float32)


def test_eig_original_follows_the_original_recipe() -> None:
    r = _twin_graph()
    got = original_eig_propagation(sp.csr_matrix(r))
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, _literal_recipe(r), atol=1e-5)
    np.testing.assert_array_equal(got, got.T)
    # Inside degenerate eigenspaces the general solver's unit eigenvectors are not orthogonal,
    # so its Â is not the one "eig" forms from an orthonormal basis there.
    assert np.abs(got - eig_propagation(sp.csr_matrix(r))).max() > 0.1
    # With distinct eigenvalues both are the same matrix.
    plain = _graph(0)
    np.testing.assert_allclose(original_eig_propagation(sp.csr_matrix(plain)),
                               eig_propagation(sp.csr_matrix(plain)), atol=2e-5)


def test_eig_original_takes_the_plain_transpose_of_complex_eigenvectors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    n = 5
    rng = np.random.default_rng(4)
    u = (rng.normal(size=(n, n)) + 1j * rng.normal(size=(n, n))).astype(np.complex64)
    u[:, 3] = np.conj(u[:, 2])  # a conjugate pair, as a real matrix's spectrum has
    u /= np.linalg.norm(u, axis=0, keepdims=True)
    lam = np.array([0.0, 0.5, 0.7 + 0.01j, 0.7 - 0.01j, 1.2], dtype=np.complex64)
    monkeypatch.setattr(np.linalg, "eig", lambda _a: (lam, u))
    got = original_eig_propagation(sp.csr_matrix(np.ones((2, 3), dtype=np.float32)))
    want = np.real(u @ u.T + u @ np.diag(lam) @ u.T)
    np.testing.assert_allclose(got, (want + want.T) / 2, atol=1e-5)
    assert np.abs(want - np.real(u @ np.conj(u).T + u @ np.diag(lam) @ np.conj(u).T)).max() > 0.05


def test_eig_is_not_i_plus_l_but_sparse_is() -> None:
    r = _graph(0)
    nu, ni = r.shape
    a = np.eye(nu + ni)
    a[:nu, nu:] = r
    a[nu:, :nu] = r.T
    i_plus_l = 2 * np.eye(nu + ni) - a / a.sum(1, keepdims=True)
    sparse = sparse_propagation(sp.csr_matrix(r))
    assert sp.issparse(sparse) and sparse.dtype == np.float32
    np.testing.assert_allclose(sparse.toarray(), i_plus_l, atol=1e-6)
    eig = eig_propagation(sp.csr_matrix(r))
    # Unit-norm eigenvectors of the non-symmetric L are not orthogonal: U Uᵀ ≠ I.
    assert np.abs(eig - i_plus_l).max() > 0.05
    np.testing.assert_allclose(eig, eig.T, atol=1e-6)


def test_nodes_without_interactions_are_their_own_component() -> None:
    r = _graph(1)
    padded = np.zeros((r.shape[0] + 1, r.shape[1] + 2), dtype=np.float32)
    padded[1:, :-2] = r  # user 0 and the last two items have no training interaction
    nu = padded.shape[0]
    got = eig_propagation(sp.csr_matrix(padded))
    lonely = [0, nu + r.shape[1], nu + r.shape[1] + 1]
    for i in lonely:
        row = np.zeros(got.shape[0], dtype=np.float32)
        row[i] = 1.0
        np.testing.assert_array_equal(got[i], row)
        np.testing.assert_array_equal(got[:, i], row)
    keep = [i for i in range(got.shape[0]) if i not in lonely]
    np.testing.assert_allclose(got[np.ix_(keep, keep)], eig_propagation(sp.csr_matrix(r)),
                               atol=1e-6)


def test_cache_is_keyed_by_the_training_matrix(tmp_path: Path) -> None:
    r = sp.csr_matrix(_graph(2))
    lines: list[str] = []
    first = propagation_matrix(r, "eig", cache_dir=tmp_path, log_fn=lines.append)
    files = sorted(p.name for p in (tmp_path / "derived" / "spectralcf").iterdir())
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".npy")
    again = propagation_matrix(r, "eig", cache_dir=tmp_path, log_fn=lines.append)
    assert any("read from cache" in ln for ln in lines)
    np.testing.assert_array_equal(first, again)
    # Other training data -> another file, never the cached one.
    other = r.copy().tolil()
    other[0, 0] = 0 if other[0, 0] else 1
    other = sp.csr_matrix(other)
    third = propagation_matrix(other, "eig", cache_dir=tmp_path)
    assert len(list((tmp_path / "derived" / "spectralcf").iterdir())) == 4
    np.testing.assert_allclose(third, eig_propagation(other), atol=1e-6)
    # A sidecar that does not match the file's data is ignored (recomputed, not trusted).
    meta = next((tmp_path / "derived" / "spectralcf").glob("*.json"))
    meta.write_text('{"train_checksum": "other", "shape": [1, 1]}')
    lines.clear()
    propagation_matrix(r, "eig", cache_dir=tmp_path, log_fn=lines.append)
    propagation_matrix(other, "eig", cache_dir=tmp_path, log_fn=lines.append)
    assert sum("read from cache" in ln for ln in lines) == 1
    # The original's recipe is its own entry, never served the eig file.
    before = len(list((tmp_path / "derived" / "spectralcf").iterdir()))
    orig = propagation_matrix(r, "eig-original", cache_dir=tmp_path)
    assert len(list((tmp_path / "derived" / "spectralcf").iterdir())) == before + 2
    np.testing.assert_array_equal(orig, original_eig_propagation(r))
    lines.clear()
    propagation_matrix(r, "eig-original", cache_dir=tmp_path, log_fn=lines.append)
    assert any("eig-original propagation: read from cache" in ln for ln in lines)


def test_bad_input_is_named() -> None:
    r = sp.csr_matrix(_graph(0))
    with pytest.raises(ValueError,
                       match=r"propagation must be one of \['eig', 'eig-original', 'sparse'\]"):
        propagation_matrix(r, "dense")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="eig dtype"):
        eig_propagation(r, dtype="float16")  # type: ignore[arg-type]
    neg = r.copy()
    neg.data[:] = -5.0
    with pytest.raises(ValueError, match="non-positive degree"):
        sparse_propagation(neg)
