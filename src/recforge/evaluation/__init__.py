"""Evaluation: paper-exact ranking protocols, vectorised metrics, significance tests.

``Evaluator`` (full ranking or candidate sets, batched under a memory budget, a compiled top-k
kernel with a numpy fallback), ``EvaluationResult`` and ``evaluate_split``; metric definitions
in :mod:`recforge.evaluation.metrics`; tests in :mod:`recforge.evaluation.significance`.
Sampled negatives in :mod:`~recforge.evaluation.sampling`, their Krichene-Rendle correction in
:mod:`~recforge.evaluation.correction`, and full vs sampled vs corrected side by side in
:mod:`~recforge.evaluation.sampled_comparison`.

Tie rule: among equal scores the lower item index ranks first (``TIE_RULE``, also in every
result's ``meta["tie_rule"]``). The RecSys'19 code ordered ties by numpy's unstable
argpartition/quicksort internals, which cannot be reproduced exactly.
"""

from recforge._kernels.topk import TIE_RULE, numba_available
from recforge.evaluation.evaluator import (
    DEFAULT_METRICS,
    EvaluationResult,
    Evaluator,
    evaluate_split,
)
from recforge.evaluation.metrics import (
    ACCURACY_METRICS,
    ALL_METRICS,
    BEYOND_ACCURACY_METRICS,
)
from recforge.evaluation.sampling import sample_negatives, sampled_split
from recforge.evaluation.significance import bootstrap_ci, correct_pvalues, paired_test

__all__ = [
    "ACCURACY_METRICS",
    "ALL_METRICS",
    "BEYOND_ACCURACY_METRICS",
    "DEFAULT_METRICS",
    "TIE_RULE",
    "EvaluationResult",
    "Evaluator",
    "bootstrap_ci",
    "correct_pvalues",
    "evaluate_split",
    "numba_available",
    "paired_test",
    "sample_negatives",
    "sampled_split",
]
