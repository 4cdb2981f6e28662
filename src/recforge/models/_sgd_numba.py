"""The SGD modes of the BPR/SGD models and the adaptive step their numba kernels share.

``SGD_MODES``, ``ADAM_BETAS`` and ``EPS`` hold for MF BPR, SLIM BPR and FunkSVD alike; one
scalar rule for every mode, so each kernel adapts its gradients identically: state arrays
``c1``/``c2`` are flat (one slot per adapted quantity), ``t`` is the 1-based step count used by
Adam's bias correction.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

#: ``mode`` codes of the kernels, in the order of :data:`SGD_MODES`.
SGD_MODES = ("sgd", "adagrad", "adam")
SGD, ADAGRAD, ADAM = 0, 1, 2
ADAM_BETAS = (0.9, 0.999)
EPS = 1e-8


@njit(cache=True, inline="always")
def adapted(g: float, slot: int, mode: int, c1: np.ndarray, c2: np.ndarray, t: int,
            b1: float, b2: float, eps: float) -> float:  # pragma: no cover - compiled
    """The step direction for gradient ``g`` of ``slot``: ``g`` (sgd), ``g / sqrt(sum g^2)``
    (adagrad) or Adam's bias-corrected ``m / sqrt(v)``; updates the slot's state."""
    if mode == ADAGRAD:
        c1[slot] += g * g
        return g / (math.sqrt(c1[slot]) + eps)
    if mode == ADAM:
        c1[slot] = b1 * c1[slot] + (1.0 - b1) * g
        c2[slot] = b2 * c2[slot] + (1.0 - b2) * g * g
        m_hat = c1[slot] / (1.0 - b1**t)
        v_hat = c2[slot] / (1.0 - b2**t)
        return m_hat / (math.sqrt(v_hat) + eps)
    return g
