"""RecBole's side of ``bench_neural.py``; runs inside ``.bench-venvs/recbole`` (no recforge).

    .bench-venvs/recbole/bin/python benchmarks/recbole_side.py SPLIT.npz MODEL CONFIG_JSON

Reads the benchmark's split (train minus validation, validation, test as CSR arrays), writes
them as RecBole atomic files (``benchmark_filename`` train / valid / test, so RecBole trains
and validates on exactly our parts), builds the model from ``CONFIG_JSON`` (hyper-parameters
in RecBole's names, ``epochs``, ``eval_step``, ``stopping_step``, ``threads``) and runs
``Trainer.fit`` with validation. Prints one JSON line: the training seconds of every epoch,
the validation epochs and scores, the best epoch, the whole fit time, optimiser steps per
epoch and the peak resident size during the fit (``VmHWM`` reset after loading the data).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from procstats import cpu_seconds, reset_peak, status_mb


def _write_inter(path: Path, z: Any, prefix: str) -> int:
    indptr, indices = z[f"{prefix}_indptr"], z[f"{prefix}_indices"]
    users = np.repeat(np.arange(indptr.size - 1), np.diff(indptr))
    with open(path, "w") as fh:
        fh.write("user_id:token\titem_id:token\n")
        fh.writelines(f"{u}\t{i}\n" for u, i in zip(users.tolist(), indices.tolist(),
                                                    strict=True))
    return int(indices.size)


def main(npz: str, model_name: str, cfg_json: str) -> dict[str, Any]:
    cfg = json.loads(cfg_json)
    threads = int(cfg.pop("threads", 2))
    import torch

    torch.set_num_threads(threads)
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.trainer import Trainer
    from recbole.utils import get_model, init_seed

    work = Path(tempfile.mkdtemp(prefix="recbole-bench-"))
    os.chdir(work)  # RecBole writes its log and saved/ folders into the working directory
    z = np.load(npz)
    (work / "bench").mkdir()
    for part, prefix in (("train", "t7train"), ("valid", "t7val"), ("test", "test")):
        _write_inter(work / "bench" / f"bench.{part}.inter", z, prefix)
    config_dict = {
        "data_path": str(work),
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id"]},
        "eval_args": {"mode": "full", "order": "RO", "group_by": "user"},
        "use_gpu": False,
        "seed": 0,
        "reproducibility": True,
        "show_progress": False,
        "worker": 0,
        "checkpoint_dir": str(work / "saved"),
        "log_wandb": False,
        **cfg,
    }
    config = Config(model=model_name, dataset="bench", config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    import logging

    logging.getLogger().setLevel(logging.ERROR)
    dataset = create_dataset(config)
    train_data, valid_data, _test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)
    epoch_seconds: list[float] = []
    epoch_cpu: list[float] = []
    original = trainer._train_epoch

    def timed_epoch(*args: Any, **kwargs: Any) -> Any:
        t0, c0 = time.perf_counter(), time.process_time()
        out = original(*args, **kwargs)
        epoch_seconds.append(time.perf_counter() - t0)
        epoch_cpu.append(time.process_time() - c0)
        return out

    trainer._train_epoch = timed_epoch  # type: ignore[method-assign]
    validations: list[tuple[int, float]] = []
    rss_before = status_mb("VmRSS")
    reset_peak()
    cpu0 = cpu_seconds()
    t0 = time.perf_counter()
    best_score, _ = trainer.fit(train_data, valid_data, verbose=False, saved=False,
                                callback_fn=lambda e, s: validations.append((e + 1, float(s))))
    fit_seconds = time.perf_counter() - t0
    peak = status_mb("VmHWM")
    cpu = cpu_seconds() - cpu0
    best_epoch = max(validations, key=lambda v: v[1])[0] if validations else None
    return {
        "library": "recbole",
        "version": __import__("recbole").__version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "epoch_seconds": epoch_seconds,
        "epoch_cpu_seconds": epoch_cpu,
        "epochs_run": len(epoch_seconds),
        "steps_per_epoch": len(train_data),
        "validations": validations,
        "best_validation": float(best_score),
        "epochs_best": best_epoch,
        "fit_seconds": fit_seconds,
        "cpu_seconds": cpu,
        "peak_mb": peak,
        "added_mb": peak - rss_before,
    }


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(sys.argv[1], sys.argv[2], sys.argv[3])) + "\n")
