"""Network weights as safetensors (no pickle), for ``model.save``/``Recommender.load``.

A saved torch model is the base class's ``model.json`` (hyper-parameters, the network config
``module_config_``, the training record and history, the data checksum) plus ``arrays.npz``
(learned arrays) plus ``weights.safetensors`` (the ``state_dict`` written here). Loading
rebuilds the network from its config and reads the weights onto the model's device.
"""

from __future__ import annotations

from pathlib import Path

from recforge.models.torch._require import require_torch

require_torch()

import torch  # noqa: E402
from safetensors.torch import load_file, save_file  # noqa: E402
from torch import nn  # noqa: E402

__all__ = ["FORMAT", "read_weights", "write_weights"]

FORMAT = "recforge-torch-weights"


def write_weights(module: nn.Module, path: str | Path) -> Path:
    """Write ``module.state_dict()`` to ``path`` (tied weights are stored once per name)."""
    # clone: safetensors refuses tensors sharing storage (tied encoder/decoder weights)
    tensors = {k: v.detach().to("cpu").clone().contiguous()
               for k, v in module.state_dict().items()}
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT, "torch": torch.__version__})
    tmp.replace(out)
    return out


def read_weights(module: nn.Module, path: str | Path, device: torch.device) -> nn.Module:
    """Load weights written by :func:`write_weights` into ``module`` (names must match)."""
    src = Path(path)
    if not src.is_file():
        raise FileNotFoundError(f"{src} is missing: the saved torch model has no weights file")
    weights = load_file(str(src), device=str(device))
    missing, unexpected = module.load_state_dict(weights, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"{src}: weights do not fit {type(module).__name__} (missing {sorted(missing)}, "
            f"unexpected {sorted(unexpected)})"
        )
    return module
