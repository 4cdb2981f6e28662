"""SpectralCF's propagation matrix Â (numpy/scipy only; importable without torch).

SpectralCF (Zheng et al., RecSys'18) filters node embeddings of the user-item bipartite graph with
Â = U Uᵀ + U Λ Uᵀ, where (Λ, U) are the eigenvalues and unit-norm right eigenvectors of the
random-walk Laplacian L = I − D⁻¹A of A = I + [[0, R], [Rᵀ, 0]] (self-loops included, D = the
row sums of A). Three variants, by name:

- ``"eig"`` — the original's matrix. The original ran a dense general eigensolver on L. L is
  similar to the symmetric L_sym = I − D^-½ A D^-½ (L = D^-½ L_sym D^½), so we solve the
  symmetric problem with :func:`scipy.linalg.eigh` (real, several times faster), map the
  eigenvectors back with U = D^-½ V and normalise every column to unit length as the general
  solver does. Those columns are not orthogonal, which is why Â differs from I + L. The
  eigenvectors are computed per connected component of the graph: a node without training
  interactions is its own component (eigenvector e_i, eigenvalue 0, so Â_ii = 1). This pins
  down the basis of the degenerate eigenvalue-0 eigenspace, which the original left to the
  solver. Â is dense, float32, (n_users + n_items)².
- ``"eig-original"`` — the original's recipe step by step, for when its exact matrix matters:
  numpy's general eigensolver on the float32 L of the whole graph, then
  Â = Re(U Uᵀ + U Λ Uᵀ) with the plain (not conjugate) transpose, as the original's
  ``np.dot(U, U.T)`` on complex eigenvectors did. Inside a degenerate eigenspace the general
  solver's unit eigenvectors are not orthogonal, so this is not "eig"'s matrix there (and for
  a complex pair v = a + ib, Re(v vᵀ) is a aᵀ − b bᵀ). Several times slower than "eig"; the
  result is symmetrised, which changes it only at rounding level.
- ``"sparse"`` — Â = I + L = 2I − D⁻¹A, which is what Â would be if U were orthonormal (the
  simplification RecBole uses, there without self-loops). Sparse CSR, float32.

The dense matrix costs O(n³) once (minutes at ML-1M's 9,746 nodes on 2 cores), so
:func:`propagation_matrix` caches it on disk under ``<cache>/derived/spectralcf/``, keyed by
the training matrix's checksum, the variant and the eigensolver precision; a cached file is
verified against its JSON sidecar before use.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp

__all__ = [
    "EIG_DTYPES",
    "PROPAGATIONS",
    "bipartite_adjacency",
    "eig_propagation",
    "original_eig_propagation",
    "propagation_matrix",
    "sparse_propagation",
]

Propagation = Literal["eig", "eig-original", "sparse"]
EigDtype = Literal["float32", "float64"]
PROPAGATIONS: tuple[str, ...] = ("eig", "eig-original", "sparse")
EIG_DTYPES: tuple[str, ...] = ("float32", "float64")

#: bump when the rule that builds Â changes, so that stale cache files are never read.
_RULE_VERSION = 1

log = logging.getLogger(__name__)


def bipartite_adjacency(train: sp.spmatrix) -> sp.csr_matrix:
    """A = I + [[0, R], [Rᵀ, 0]] over users then items (float64; R's stored values as weights)."""
    r = sp.csr_matrix(train, dtype=np.float64)
    n_users, n_items = r.shape
    a = sp.bmat([[None, r], [r.T, None]], format="csr", dtype=np.float64)
    if a.shape != (n_users + n_items, n_users + n_items):  # bmat drops empty blocks' shape
        a = sp.csr_matrix(a, shape=(n_users + n_items, n_users + n_items))
    a = a + sp.identity(n_users + n_items, dtype=np.float64, format="csr")
    a = sp.csr_matrix(a)
    a.sum_duplicates()
    return a


def _degrees(a: sp.csr_matrix) -> np.ndarray:
    d = np.asarray(a.sum(axis=1)).ravel()
    if (d <= 0).any():
        bad = int(np.flatnonzero(d <= 0)[0])
        raise ValueError(f"node {bad} has non-positive degree {d[bad]}; "
                         "the training matrix must not hold negative values")
    return d


def sparse_propagation(train: sp.spmatrix) -> sp.csr_matrix:
    """Â = I + L = 2I − D⁻¹A (CSR float32): the value Â would have if U were orthonormal."""
    a = bipartite_adjacency(train)
    d = _degrees(a)
    rw = sp.diags(1.0 / d) @ a
    out = sp.csr_matrix(2.0 * sp.identity(a.shape[0], format="csr") - rw, dtype=np.float32)
    out.sum_duplicates()
    out.eliminate_zeros()
    return out


def eig_propagation(
    train: sp.spmatrix,
    *,
    dtype: EigDtype = "float64",
    log_fn: Callable[[str], None] | None = None,
) -> np.ndarray:
    """The original's dense Â = U Uᵀ + U Λ Uᵀ (float32), computed per connected component.

    ``dtype`` is the eigensolver's precision (the original's numpy solver worked in float64);
    Â itself is formed and returned in float32, as the original did.
    """
    import scipy.linalg as sla
    from scipy.sparse.csgraph import connected_components

    say = log_fn or log.info
    if dtype not in EIG_DTYPES:
        raise ValueError(f"eig dtype must be 'float32' or 'float64', got {dtype!r}")
    a = bipartite_adjacency(train)
    n = a.shape[0]
    d = _degrees(a)
    n_comp, labels = connected_components(a, directed=False)
    out = np.zeros((n, n), dtype=np.float32)
    sizes = np.bincount(labels, minlength=n_comp)
    singles = np.flatnonzero(sizes[labels] == 1)
    out[singles, singles] = 1.0  # e_i eᵢᵀ (1 + 0)
    inv_sqrt_d = 1.0 / np.sqrt(d)
    for c in np.flatnonzero(sizes > 1):
        nodes = np.flatnonzero(labels == c)
        t0 = time.perf_counter()
        s = (sp.diags(inv_sqrt_d[nodes]) @ a[nodes][:, nodes] @ sp.diags(inv_sqrt_d[nodes]))
        lsym = np.eye(len(nodes), dtype=dtype) - s.toarray().astype(dtype, copy=False)
        lam, v = sla.eigh(lsym, driver="evd", overwrite_a=True, check_finite=False)
        del lsym
        u = v
        u *= inv_sqrt_d[nodes, None].astype(dtype)  # right eigenvectors of L = I - D^-1 A
        u /= np.linalg.norm(u, axis=0, keepdims=True)  # unit columns, as a general solver
        # Â_C = U diag(1 + λ) Uᵀ = B Bᵀ with B = U diag(√(1 + λ)); 1 + λ ∈ [1, 3) here.
        u *= np.sqrt(np.clip(1.0 + lam, 0.0, None)).astype(dtype)[None, :]
        b = u.astype(np.float32, copy=False)
        if len(nodes) == n:
            np.matmul(b, b.T, out=out)
        else:
            out[np.ix_(nodes, nodes)] = b @ b.T
        say(f"SpectralCF eig propagation: component of {len(nodes):,} nodes in "
            f"{time.perf_counter() - t0:.1f}s ({dtype} eigh)")
    return out


def original_eig_propagation(
    train: sp.spmatrix, *, log_fn: Callable[[str], None] | None = None
) -> np.ndarray:
    """Â exactly as the original formed it (float32; see ``"eig-original"`` in the module)."""
    say = log_fn or log.info
    a = bipartite_adjacency(train)
    d = _degrees(a)
    t0 = time.perf_counter()
    lap = (sp.identity(a.shape[0], format="csr") - sp.diags(1.0 / d) @ a).toarray()
    lam, u = np.linalg.eig(lap.astype(np.float32))  # numpy solves in float64, returns 32-bit
    del lap
    n_complex = int(np.count_nonzero(np.imag(lam)))
    # U Uᵀ + U Λ Uᵀ = W Uᵀ with W = U diag(1 + λ); Re(W Uᵀ) = Re(W) Re(U)ᵀ − Im(W) Im(U)ᵀ
    sr = (1.0 + np.real(lam)).astype(np.float32)
    ur = np.ascontiguousarray(np.real(u), dtype=np.float32)
    out: np.ndarray
    if n_complex:
        si = np.imag(lam).astype(np.float32)
        ui = np.ascontiguousarray(np.imag(u), dtype=np.float32)
        out = (ur * sr - ui * si) @ ur.T
        out -= (ui * sr + ur * si) @ ui.T
        del ui
    else:
        out = (ur * sr) @ ur.T
    del u, ur
    out += out.T  # numpy buffers the overlapping operand
    out *= 0.5
    say(f"SpectralCF eig-original propagation: {a.shape[0]:,} nodes in "
        f"{time.perf_counter() - t0:.1f}s (numpy eig; {n_complex:,} complex eigenvalues)")
    return out


def _cache_dir(cache_dir: str | Path | None) -> Path:
    from recforge.data.download import cache_root

    return cache_root(cache_dir) / "derived" / "spectralcf"


def propagation_matrix(
    train: sp.spmatrix,
    kind: Propagation = "eig",
    *,
    eig_dtype: EigDtype = "float64",
    cache: bool = True,
    cache_dir: str | Path | None = None,
    log_fn: Callable[[str], None] | None = None,
) -> np.ndarray | sp.csr_matrix:
    """Â for the training matrix ``train`` (users x items): dense for the eig variants, CSR for
    "sparse".

    With ``cache`` the dense matrix is read from / written to the disk cache (see the module).
    """
    if kind not in PROPAGATIONS:
        raise ValueError(f"propagation must be one of {list(PROPAGATIONS)}, got {kind!r}")
    m = sp.csr_matrix(train, dtype=np.float32)
    m.sum_duplicates()
    if kind == "sparse":
        return sparse_propagation(m)
    say = log_fn or log.info

    def compute() -> np.ndarray:
        if kind == "eig-original":
            return original_eig_propagation(m, log_fn=say)
        return eig_propagation(m, dtype=eig_dtype, log_fn=say)

    if not cache:
        return compute()
    from recforge.data.interactions import Interactions

    checksum = Interactions(m).checksum()
    variant = (f"eig-v{_RULE_VERSION}-{eig_dtype}" if kind == "eig"
               else f"eig-original-v{_RULE_VERSION}")
    stem = f"ahat-{variant}-{checksum[:24]}"
    folder = _cache_dir(cache_dir)
    path, meta_path = folder / f"{stem}.npy", folder / f"{stem}.json"
    n = m.shape[0] + m.shape[1]
    if path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta.get("train_checksum") == checksum and meta.get("shape") == [n, n]:
            arr = np.load(path, allow_pickle=False)
            if arr.shape == (n, n) and arr.dtype == np.float32:
                say(f"SpectralCF {kind} propagation: read from cache {path}")
                return arr
        say(f"SpectralCF {kind} propagation: ignoring cache file {path} (does not match the data)")
    t0 = time.perf_counter()
    arr = compute()
    seconds = time.perf_counter() - t0
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".npy.part")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, arr, allow_pickle=False)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    meta_path.write_text(json.dumps({
        "train_checksum": checksum, "shape": [n, n], "n_users": int(m.shape[0]),
        "n_items": int(m.shape[1]), "variant": variant, "rule_version": _RULE_VERSION,
        "seconds": round(seconds, 2),
    }, indent=1))
    say(f"SpectralCF {kind} propagation: {n:,} nodes in {seconds:.1f}s, cached at {path}")
    return arr
