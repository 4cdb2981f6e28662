"""Sampled versus full-ranking metrics on a paper dataset: does sampling change the verdict?

The study behind ``recforge reproduce sampled-metrics``: ML-1M with only the 5-star ratings
(``spectralcf-ml-1m``, ``part="all"``: 6,040 x 3,706, 226,310 pairs), one random test item per
user (``leave_one_out``, the setting of the sampled protocols and of Krichene & Rendle's
correction), the baselines of Table 7 with the paper's best hyper-parameters for that dataset
(trained on the rest), then each model evaluated by full ranking, against ``n_negatives``
uniformly sampled negatives (one draw per sampling seed) and by the corrected sampled
estimate (:mod:`recforge.evaluation.correction`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from recforge._files import write_text_atomic
from recforge._json import write_json

__all__ = ["DEFAULT_SEEDS", "STUDY_LABELS", "sampled_metrics_study"]

#: Table 7's baseline rows, in the paper's order.
STUDY_LABELS = ("Random", "TopPop", "UserKNN CF", "ItemKNN CF", "P3alpha", "RP3beta", "PureSVD")
#: sampling seeds (one draw of negatives each); the split itself uses ``split_seed``.
DEFAULT_SEEDS = (0, 1, 2, 3, 4)


def sampled_metrics_study(
    *,
    n_negatives: int = 100,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    split_seed: int = 0,
    cutoffs: Sequence[int] = (1, 5, 10, 20),
    metrics: Sequence[str] = ("HIT_RATE", "NDCG"),
    gamma: float = 0.1,
    out_dir: str | Path | None = None,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the study; returns (and with ``out_dir`` writes) results.json's content.

    ``payload["markdown"]`` (``report.md`` in ``out_dir``) holds the tables
    (:meth:`~recforge.evaluation.sampled_comparison.SampledComparison.to_markdown`).
    """
    import time

    from recforge.data import splitting
    from recforge.data.registry import load_dataset
    from recforge.evaluation.sampled_comparison import compare_sampled
    from recforge.experiments.paper.numbers import PAPER_PARAMS
    from recforge.experiments.paper.setups import MODEL_OF_LABEL
    from recforge.models import make_model

    log = log or (lambda _m: None)
    t0 = time.perf_counter()
    data = load_dataset("spectralcf-ml-1m", part="all").binarized()
    split = splitting.leave_one_out(data, seed=split_seed)
    log(f"leave-one-out split (seed {split_seed}): {split.test.nnz} test users, "
        f"fingerprint {split.fingerprint()[:12]}")
    models = {}
    for label in STUDY_LABELS:
        params = dict(PAPER_PARAMS["table7"].get(label, {}))
        if label == "Random":
            params["seed"] = split_seed
        log(f"fitting {label} {params}")
        models[label] = make_model(MODEL_OF_LABEL[label], **params).fit(split.train)
    comp = compare_sampled(models, split, n_negatives=n_negatives, seeds=seeds,
                           cutoffs=cutoffs, metrics=metrics, correction="bv", gamma=gamma,
                           log=log)
    payload: dict[str, Any] = {
        "name": "sampled-metrics",
        "dataset": {"name": "spectralcf-ml-1m", "options": {"part": "all"},
                    "data_checksum": data.checksum()},
        "split": split.describe(),
        "models": {lab: {"model": MODEL_OF_LABEL[lab], "params": models[lab].get_params()}
                   for lab in STUDY_LABELS},
        "comparison": comp.to_dict(),
        "seconds": time.perf_counter() - t0,
    }
    payload["markdown"] = (
        f"# Sampled vs full ranking: ML-1M 5-star, leave-one-out (split seed {split_seed})\n\n"
        f"{n_negatives} uniformly sampled negatives per user, sampling seeds "
        f"{list(seeds)} (mean ± sd over seeds); corrected = Krichene-Rendle bias-variance "
        f"correction, gamma {gamma}. Place in parentheses.\n\n" + comp.to_markdown()
    )
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / "results.json", payload)
        write_text_atomic(out / "report.md", payload["markdown"])
    return payload
