"""P3alpha on ``reproduce table7 --split original``: our tie rule vs the paper's at both top-k cuts.

    RECFORGE_DATA_MIRROR=../shared/data .venv/bin/python scripts/p3alpha_tie_check.py 0 1 2

Per validation carve-out seed: fits P3alpha with the Table 7 original-split settings (top_k
371, alpha 0.8629, normalised), evaluates RECALL/MAP@20,100 on the test part (evaluator tie
rule numpy-legacy, as the table), then replaces W by the one the RecSys'19 code builds (per
row ``argsort()[::-1][:topK]`` in numpy <= 1.24's order, L1 rows, per column
``argsort(nz)[-k:]``) and evaluates again. Prints both and how many W entries differ.
"""

from __future__ import annotations

import sys

import numpy as np
import scipy.sparse as sp

from recforge._kernels.legacy import legacy_argsort
from recforge.data.interactions import Interactions
from recforge.evaluation.evaluator import evaluate_split
from recforge.experiments.runner import _load_data, prepare_split
from recforge.experiments.spec import load_spec
from recforge.models import make_model
from recforge.models._matrices import binary_matrix
from recforge.models.graph import _row_l1

SPEC = "docs/results/table7-original-validation/spec-validation10.yaml"
K, ALPHA = 371, 0.8629


def paper_w(train: Interactions) -> sp.csr_matrix:
    """W as the paper's P3alphaRecommender builds it, with its tie order at both cuts."""
    r = train.matrix
    p_ui = _row_l1(r)
    p_iu = _row_l1(binary_matrix(r).T.tocsr())
    p_ui.data **= ALPHA
    p_iu.data **= ALPHA
    w = (p_iu @ p_ui).toarray().astype(np.float32)  # the original stores values as float32
    rows, cols, vals = [], [], []
    for i in range(w.shape[0]):
        row = w[i].astype(np.float64)
        row[i] = 0.0
        best = legacy_argsort(row)[::-1][:K]
        best = best[row[best] != 0]
        rows.append(np.full(best.size, i))
        cols.append(best)
        vals.append(row[best])
    m = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                      shape=w.shape)
    m = _row_l1(m).tocsc().astype(np.float32)
    data, ridx, ptr = [], [], [0]
    for j in range(m.shape[1]):
        cd, ci = m.data[m.indptr[j]:m.indptr[j + 1]], m.indices[m.indptr[j]:m.indptr[j + 1]]
        cd, ci = cd[cd != 0], ci[cd != 0]
        top = legacy_argsort(cd.astype(np.float64))[-K:] if cd.size else np.zeros(0, np.int64)
        data.append(cd[top])
        ridx.append(ci[top])
        ptr.append(ptr[-1] + top.size)
    return sp.csc_matrix((np.concatenate(data), np.concatenate(ridx), np.array(ptr)),
                         shape=m.shape).tocsr()


def main(seeds: list[int]) -> None:
    spec = load_spec(SPEC)
    data, _ = _load_data(spec)
    for seed in seeds:
        split = prepare_split(spec, data, seed)
        m = make_model("P3alpha", top_k=K, alpha=ALPHA, normalize_similarity=True,
                       n_threads=1).fit(split.train)

        def cells() -> dict[str, float]:
            return evaluate_split(m, split, cutoffs=[20, 100], metrics=["RECALL", "MAP"],  # noqa: B023
                                  tie_rule="numpy-legacy").summary

        ours, w_ours = cells(), m.W_.copy()
        m.W_ = paper_w(split.train)
        paper = cells()
        differ = int((abs(w_ours - m.W_) > 1e-6).sum())
        print(f"seed {seed}: ours {ours} | paper's tie order {paper} | "
              f"W entries differing {differ} of {w_ours.nnz}", flush=True)


if __name__ == "__main__":
    main([int(s) for s in sys.argv[1:]] or [0])
