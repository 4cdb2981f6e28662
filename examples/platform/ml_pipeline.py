"""The steps of the ML DAG (``ml-dag.yaml``): read -> preprocess -> features -> train -> predict
-> evaluate -> freeze, each a recforge call that reads its inputs and writes its outputs as
directories (the platform passes them by name; run alone, pass any directories)::

    python ml_pipeline.py read --data FILE --out DIR
    python ml_pipeline.py preprocess --raw DIR --out DIR [--min-user 5] [--min-item 2]
    python ml_pipeline.py features --clean DIR --out DIR [--test-fraction 0.2] [--seed 0]
    python ml_pipeline.py train --split DIR --out DIR [--l2 50]
    python ml_pipeline.py predict --split DIR --model DIR --out DIR [--k 10]
    python ml_pipeline.py evaluate --split DIR --model DIR --out DIR [--k 10]
    python ml_pipeline.py freeze --split DIR --model DIR --metrics DIR --predictions DIR --out DIR

Every step writes ``step.json`` beside its outputs (what it read, with checksums, and what it
made), so a downstream step and a reader of the frozen bundle can tell exactly where the numbers
came from; ``freeze`` adds ``MANIFEST.json`` with the sha256 of every file it holds.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

COLUMNS = ("user_id", "item_id", "rating", "ts")


def _read(path: Path) -> Any:
    from recforge.data.io import read_csv

    return read_csv(path, *COLUMNS, id_type="str")


def _write(x: Any, path: Path) -> None:
    """Interactions as the CSV ``_read`` reads (external ids, ratings, timestamps)."""
    import pandas as pd

    users, items = x.to_arrays()
    pd.DataFrame({"user_id": x.user_ids[users], "item_id": x.item_ids[items],
                  "rating": x.ratings, "ts": x.timestamps}).to_csv(path, index=False)  # fmt: skip


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _record(out: Path, step: str, **facts: Any) -> None:
    (out / "step.json").write_text(json.dumps({"step": step, **facts}, indent=2, sort_keys=True))
    print(f"{step}: {json.dumps(facts, sort_keys=True)}", flush=True)


def read(data: Path, out: Path) -> None:
    """Validate the raw file (recforge's reader refuses bad rows, naming them) and keep it."""
    x = _read(data)
    shutil.copyfile(data, out / "interactions.csv")
    _record(out, "read", source=str(data), sha256=_sha256(data), users=x.n_users,
            items=x.n_items, interactions=x.nnz, data_checksum=x.checksum())  # fmt: skip


def preprocess(raw: Path, out: Path, min_user: int, min_item: int) -> None:
    """Keep positive feedback (rating >= 4), then a (min_user, min_item)-core."""
    from recforge.data.filters import k_core, rating_threshold

    x = _read(raw / "interactions.csv")
    liked, r1 = rating_threshold(x, 4)
    core, r2 = k_core(liked, min_user=min_user, min_item=min_item)
    _write(core, out / "interactions.csv")
    _record(out, "preprocess", filters=[r1.as_dict(), r2.as_dict()], users=core.n_users,
            items=core.n_items, interactions=core.nnz, data_checksum=core.checksum())  # fmt: skip


def features(clean: Path, out: Path, test_fraction: float, seed: int) -> None:
    """The model's input: a seeded per-user hold-out split (train = the features, test = the
    labels), saved with its fingerprint."""
    from recforge.data.split_io import save_split
    from recforge.data.splitting import per_user_holdout

    split = per_user_holdout(_read(clean / "interactions.csv"), test_fraction, seed=seed)
    save_split(split, out / "split")
    _record(out, "features", split_fingerprint=split.fingerprint(), seed=seed,
            test_fraction=test_fraction, train=split.train.nnz, test=split.test.nnz)  # fmt: skip


def _split(path: Path) -> Any:
    from recforge.data.split_io import load_split

    return load_split(path / "split")


def train(split_dir: Path, out: Path, l2: float) -> None:
    from recforge.models.ease import EASE

    split = _split(split_dir)
    model = EASE(l2_norm=l2, n_threads=1)
    model.fit(split.train)
    model.save(out / "model", overwrite=True)
    _record(out, "train", model="EASE", l2_norm=l2, split_fingerprint=split.fingerprint())


def _model(model_dir: Path, split: Any) -> Any:
    from recforge.models import load_model

    # Refuses a model trained on other data (its training checksum is checked).
    return load_model(model_dir / "model", data=split.train)


def predict(split_dir: Path, model_dir: Path, out: Path, k: int) -> None:
    """Top-k lists (training items excluded) for every user with test items."""
    split = _split(split_dir)
    model = _model(model_dir, split)
    users = split.test.user_ids[split.test.user_counts() > 0]
    recs = model.recommend(users, k=k)
    recs.to_frame().to_csv(out / "top_k.csv", index=False)
    _record(out, "predict", k=k, users=int(users.size), rows=len(recs))


def evaluate(split_dir: Path, model_dir: Path, out: Path, k: int) -> None:
    from recforge.evaluation.evaluator import evaluate_split

    split = _split(split_dir)
    result = evaluate_split(_model(model_dir, split), split, cutoffs=[k])
    (out / "metrics.json").write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    _record(out, "evaluate", summary=result.summary,
            split_fingerprint=result.meta.get("split_fingerprint"))  # fmt: skip


def freeze(split_dir: Path, model_dir: Path, metrics_dir: Path, predictions_dir: Path,
           out: Path) -> None:  # fmt: skip
    """One read-only bundle: the model, its metrics and lists, the steps' records, and a
    manifest with every file's sha256."""
    bundle = out / "bundle"
    if bundle.exists():  # a retried attempt starts over
        shutil.rmtree(bundle)
    shutil.copytree(model_dir / "model", bundle / "model")
    shutil.copyfile(metrics_dir / "metrics.json", bundle / "metrics.json")
    shutil.copyfile(predictions_dir / "top_k.csv", bundle / "top_k.csv")
    for name, d in (("features", split_dir), ("train", model_dir), ("evaluate", metrics_dir),
                    ("predict", predictions_dir)):  # fmt: skip
        shutil.copyfile(d / "step.json", bundle / f"{name}.step.json")
    files = sorted(p for p in bundle.rglob("*") if p.is_file())
    manifest = {str(p.relative_to(bundle)): _sha256(p) for p in files}
    (bundle / "MANIFEST.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    for p in [*files, bundle / "MANIFEST.json"]:
        os.chmod(p, 0o444)
    _record(out, "freeze", files=len(manifest),
            scheduled_at=os.environ.get("RECFORGE_SCHEDULED_AT", ""))  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="step", required=True)
    s = sub.add_parser("read")
    s.add_argument("--data", type=Path, required=True)
    s = sub.add_parser("preprocess")
    s.add_argument("--raw", type=Path, required=True)
    s.add_argument("--min-user", type=int, default=5)
    s.add_argument("--min-item", type=int, default=2)
    s = sub.add_parser("features")
    s.add_argument("--clean", type=Path, required=True)
    s.add_argument("--test-fraction", type=float, default=0.2)
    s.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("train")
    s.add_argument("--split", type=Path, required=True)
    s.add_argument("--l2", type=float, default=50.0)
    for name in ("predict", "evaluate"):
        s = sub.add_parser(name)
        s.add_argument("--split", type=Path, required=True)
        s.add_argument("--model", type=Path, required=True)
        s.add_argument("--k", type=int, default=10)
    s = sub.add_parser("freeze")
    for arg in ("--split", "--model", "--metrics", "--predictions"):
        s.add_argument(arg, type=Path, required=True)
    for s in sub.choices.values():
        s.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    if a.step == "read":
        read(a.data, a.out)
    elif a.step == "preprocess":
        preprocess(a.raw, a.out, a.min_user, a.min_item)
    elif a.step == "features":
        features(a.clean, a.out, a.test_fraction, a.seed)
    elif a.step == "train":
        train(a.split, a.out, a.l2)
    elif a.step == "predict":
        predict(a.split, a.model, a.out, a.k)
    elif a.step == "evaluate":
        evaluate(a.split, a.model, a.out, a.k)
    else:
        freeze(a.split, a.model, a.metrics, a.predictions, a.out)


if __name__ == "__main__":
    sys.exit(main())
