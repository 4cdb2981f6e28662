"""Memoised pre-training: a network's pre-trained weights, reused by later fits that match.

CVAE's and CDL's layer-wise pre-training reads only the item content, its own settings and the
seed, not the interactions, so every fit on the same content with the same settings repeats it
(Tables 4 and 5 fit it on P=1 and P=10; the CPU cost is most of a CVAE fit). With
``cache_pretraining=True`` the first fit stores the pre-trained weights *and* the states of the
fit's random generators afterwards; a later fit whose key matches loads both and continues
exactly as if it had pre-trained itself (same scores, bit for bit, on the same device).

Key: sha256 of the model class, a format version, the content matrix (shape and CSR arrays),
the pre-training settings, the seed, the device type and the torch version. Entries live under
``<cache root>/pretrained/<model>/<key>/`` (``weights.safetensors`` + ``meta.json``; the cache
root is :func:`recforge.data.download.cache_root`, ``$RECFORGE_CACHE``) and are written
atomically (a temporary directory renamed into place), so a crash leaves no partial entry.

Pre-training *stages* that are whole models of their own (CMN's GMF) are memoised by
:func:`fit_stage`: the fitted stage model is saved with
:meth:`~recforge.models.base.Recommender.save` under
``<cache root>/pretrained/<stage class>/<key>/``, keyed by its class, its parameters, its
stopping rule, the training data's checksum, the device type and the torch version; a later fit
with the same key loads it instead of training it. Only stages that need no validation callback
qualify (they stop on their training loss or after a fixed count): a callback's data is not in
the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import scipy.sparse as sp

from recforge.data.interactions import Interactions
from recforge.models.iterative import EarlyStopping, IterativeRecommender
from recforge.models.torch._require import TORCH_EXTRA_MESSAGE, MissingTorchError
from recforge.models.torch.base import resolve_device

try:
    import torch
    from safetensors.torch import load_file, save_file
except ImportError as exc:  # pragma: no cover - exercised by the no-torch subprocess test
    raise MissingTorchError(TORCH_EXTRA_MESSAGE) from exc

__all__ = ["cache_dir", "cache_key", "fit_stage", "load_entry", "stage_key", "store_entry"]

_FORMAT = 1
_GENERATOR = "__torch_generator_state__"


def cache_dir(root: str | Path | None = None) -> Path:
    """``<root>/pretrained`` (default root: the data cache, ``$RECFORGE_CACHE``)."""
    from recforge.data.download import cache_root

    return (Path(root) if root is not None else cache_root()) / "pretrained"


def cache_key(model: str, content: sp.csr_matrix, settings: dict[str, Any], seed: int,
              device: torch.device) -> str:
    """The hex key of one pre-training (see the module docstring)."""
    h = hashlib.sha256()
    head = {"format": _FORMAT, "model": model, "settings": settings, "seed": int(seed),
            "device": device.type, "torch": torch.__version__, "shape": list(content.shape)}
    h.update(json.dumps(head, sort_keys=True).encode())
    for arr in (content.indptr, content.indices, content.data):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()


def _entry(model: str, key: str, root: str | Path | None) -> Path:
    return cache_dir(root) / model / key


def load_entry(
    model: str, key: str, device: torch.device, root: str | Path | None = None
) -> tuple[dict[str, torch.Tensor], torch.Tensor, dict[str, Any]] | None:
    """``(weights, torch generator state, meta)`` of a stored entry, or None when absent."""
    where = _entry(model, key, root)
    try:
        meta = json.loads((where / "meta.json").read_text())
        tensors = load_file(str(where / "weights.safetensors"), device=str(device))
    except (FileNotFoundError, NotADirectoryError):
        return None
    state = tensors.pop(_GENERATOR).to("cpu")
    return tensors, state, meta


def store_entry(
    model: str,
    key: str,
    weights: dict[str, torch.Tensor],
    generator_state: torch.Tensor,
    meta: dict[str, Any],
    root: str | Path | None = None,
) -> Path:
    """Write an entry atomically; an entry that appeared meanwhile is kept (same key, same data)."""

    def write(where: Path) -> None:
        where.mkdir()
        tensors = {k: v.detach().to("cpu").clone().contiguous() for k, v in weights.items()}
        tensors[_GENERATOR] = generator_state.to("cpu").clone()
        save_file(tensors, str(where / "weights.safetensors"))
        (where / "meta.json").write_text(json.dumps(meta, indent=1, sort_keys=True))

    return _publish(_entry(model, key, root), write)


def _publish(final: Path, write: Callable[[Path], object]) -> Path:
    """``write(path)`` makes a directory at a temporary path, which is then renamed to ``final``
    (a crash leaves no partial entry); an entry that appeared meanwhile is kept."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=final.parent))
    try:
        write(tmp / "entry")
        try:
            os.rename(tmp / "entry", final)
        except OSError:  # another fit stored the same key first
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


Stage = TypeVar("Stage", bound=IterativeRecommender)


def stage_key(model: IterativeRecommender, train: Interactions, early_stopping: EarlyStopping,
              device: torch.device) -> str:
    """The hex key of one stage fit (see the module docstring)."""
    head = {"format": _FORMAT, "kind": "stage", "model": type(model).__name__,
            "params": model.get_params(), "early_stopping": early_stopping.model_dump(),
            "data": train.checksum(), "device": device.type, "torch": torch.__version__}
    return hashlib.sha256(json.dumps(head, sort_keys=True).encode()).hexdigest()


def fit_stage(
    model: Stage,
    train: Interactions,
    *,
    early_stopping: EarlyStopping,
    stage: str,
    progress: Callable[[str], None] | None = None,
    root: str | Path | None = None,
) -> tuple[Stage, bool]:
    """``model`` fitted on ``train`` (no validation callback), or the identical fit stored
    before; ``(model, loaded from the cache)``. The first fit is stored atomically."""
    key = stage_key(model, train, early_stopping, resolve_device(getattr(model, "device", "cpu")))
    final = _entry(type(model).__name__, key, root)
    if final.is_dir():
        loaded = type(model).load(final, data=train)
        if progress is not None:
            progress(f"{stage}: loaded from the cache (best epoch {loaded.epochs_best_})")
        return loaded, True
    model.fit(train, early_stopping=early_stopping, stage=stage, progress=progress)
    _publish(final, model.save)
    return model, False
