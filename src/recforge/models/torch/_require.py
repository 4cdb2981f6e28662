"""The error raised when a neural model is asked for without the ``recforge[torch]`` extra."""

from __future__ import annotations

__all__ = ["TORCH_EXTRA_MESSAGE", "MissingTorchError"]

TORCH_EXTRA_MESSAGE = (
    "recforge's neural models need PyTorch: install the extra with "
    "`pip install 'recforge[torch]'` (torch==2.13.0 and safetensors; for the CPU-only wheel add "
    "`--extra-index-url https://download.pytorch.org/whl/cpu`)"
)


class MissingTorchError(ImportError):
    """torch (or safetensors) is not importable; the message names the ``recforge[torch]`` extra."""
