"""How far the released SpectralCF test set's popularity is from its train set's, and what a
ranker that knows it scores (a leaky oracle, for diagnosis only).

Run: RECFORGE_DATA_MIRROR=../shared/data .venv/bin/python \
    docs/results/table7-original-diagnostics/test_popularity.py
"""

from __future__ import annotations

import json

import numpy as np

from recforge.data.registry import load_dataset
from recforge.data.splitting import carve_validation
from recforge.evaluation.evaluator import evaluate_split
from recforge.models.baselines import TopPopular

CUTOFFS = (20, 100)

split = carve_validation(load_dataset("spectralcf-ml-1m", part="original"), 0.1, seed=0)
train_pop = split.train.item_counts().astype(float)
test_pop = split.test.item_counts().astype(float)
top100 = np.sort(test_pop)[::-1][:100].sum() / test_pop.sum()
out: dict[str, object] = {
    "split_fingerprint": split.fingerprint(),
    "pearson_train_vs_test_popularity": round(float(np.corrcoef(train_pop, test_pop)[0, 1]), 4),
    "test_share_of_100_most_frequent_test_items": round(float(top100), 4),
}
for label, part in (("TopPop (train counts)", split.train),
                    ("TestPop oracle (test counts; leaky)", split.test)):
    res = evaluate_split(TopPopular().fit(part), split, cutoffs=CUTOFFS, metrics=("RECALL", "MAP"))
    row = {k: round(float(v), 4) for k, v in res.summary.items()}
    row["MAP@20 / RECALL@20"] = round(row["MAP@20"] / row["RECALL@20"], 3)
    out[label] = row
print(json.dumps(out, indent=1))
