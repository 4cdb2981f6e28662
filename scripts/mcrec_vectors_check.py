"""Do MCRec's released BPR vectors know the test set? A check for docs/RESULTS.md.

MCRec feeds fixed 64-d BPR vectors (``ml-100k.bpr.*_embedding``) into its metapath encoder;
how the authors trained them is undocumented. This script ranks every user's non-training
items by the plain dot product of those vectors (Table 3's protocol: full ranking, train items
excluded) and reports where training and test items sit in each user's ranking, next to BPR
models trained here on the training split alone (``implicit``, 64 factors). Vectors trained
without the test pairs rank them well below the training pairs; vectors that saw them do not.

    python scripts/mcrec_vectors_check.py            # needs the mcrec-ml-100k data and implicit
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp


def _report(name: str, scores: np.ndarray, split: Any) -> str:
    """PREC/REC@10 by the project's evaluator and the mean rank (0 = top) of both item sets."""
    from recforge.evaluation import evaluate_split
    from recforge.models.base import Recommender

    class _Fixed(Recommender):
        name = "fixed"

        def _fit(self, train: Any) -> None:
            pass

        def _score(self, users: np.ndarray) -> np.ndarray:
            return scores[users].astype(np.float32)

    res = evaluate_split(_Fixed().fit(split.train), split, cutoffs=[10],
                         metrics=["PRECISION", "RECALL"]).summary
    rank = np.argsort(np.argsort(-scores, axis=1), axis=1) / scores.shape[1]
    train = split.train.matrix.toarray() > 0
    test = split.test.matrix.toarray() > 0
    return (f"| {name} | {res['PRECISION@10']:.4f} | {res['RECALL@10']:.4f} | "
            f"{rank[train].mean():.3f} | {rank[test].mean():.3f} |")


def main() -> None:
    from threadpoolctl import threadpool_limits

    from recforge.data.registry import load_dataset
    from recforge.models.torch.mcrec_metapaths import load_bpr_embeddings

    split = load_dataset("mcrec-ml-100k")
    emb = load_bpr_embeddings(split.train)
    print("| vectors | PREC@10 | REC@10 | mean rank of train items | of test items |")
    print("| --- | --- | --- | --- | --- |")
    print(_report("released BPR vectors (dot product)", emb.users @ emb.items.T, split))
    from implicit.bpr import BayesianPersonalizedRanking

    r = sp.csr_matrix(split.train.matrix)
    for iterations in (100, 300):
        with threadpool_limits(2):
            bpr = BayesianPersonalizedRanking(factors=64, regularization=0.01,
                                              iterations=iterations, random_state=0,
                                              num_threads=2)
            bpr.fit(r, show_progress=False)
        u, v = np.asarray(bpr.user_factors), np.asarray(bpr.item_factors)
        print(_report(f"BPR on train only, {iterations} epochs (implicit, 64 factors)",
                      u @ v.T, split))


if __name__ == "__main__":
    main()
