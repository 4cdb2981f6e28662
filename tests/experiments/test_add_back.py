"""Validation with MCRec's add-back protocol still sees its validation items."""

from __future__ import annotations

import numpy as np

from recforge.data.interactions import Interactions
from recforge.data.splitting import carve_validation, predefined_split
from recforge.evaluation import evaluate_split
from recforge.models.baselines import TopPopular


def test_add_back_validation_masks_train_minus_validation() -> None:
    rng = np.random.default_rng(0)
    dense = rng.random((30, 20)) < 0.4
    users, items = np.nonzero(dense)
    full = Interactions.from_arrays(users, items, shape=(30, 20))
    test_mask = rng.random(full.nnz) < 0.2
    split = predefined_split(full.select(~test_mask), full.select(test_mask))
    leaky = carve_validation(split, fraction=0.3, seed=1, mode="per_user", add_back=True)
    clean = carve_validation(split, fraction=0.3, seed=1, mode="per_user", add_back=False)
    assert leaky.train.nnz == split.train.nnz
    model = TopPopular().fit(clean.train)
    r_leaky = evaluate_split(model, leaky, cutoffs=[5], metrics=["RECALL"], on="validation")
    r_clean = evaluate_split(model, clean, cutoffs=[5], metrics=["RECALL"], on="validation")
    # Same items masked (train minus validation), same model: identical validation numbers.
    assert r_leaky.summary["RECALL@5"] > 0
    assert np.allclose(r_leaky.per_user["RECALL@5"], r_clean.per_user["RECALL@5"])
