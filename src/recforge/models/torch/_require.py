"""The error raised when a neural model is asked for without the ``recforge[torch]`` extra."""

from __future__ import annotations

__all__ = ["TORCH_EXTRA_MESSAGE", "MissingTorchError", "require_torch"]

TORCH_EXTRA_MESSAGE = (
    "recforge's neural models need PyTorch: install the extra with "
    "`pip install 'recforge[torch]'` (torch==2.13.0 and safetensors; for the CPU-only wheel add "
    "`--extra-index-url https://download.pytorch.org/whl/cpu`)"
)


class MissingTorchError(ImportError):
    """torch (or safetensors) is not importable; the message names the ``recforge[torch]`` extra."""


def require_torch() -> None:
    """Raise :class:`MissingTorchError` unless torch and safetensors are importable.

    Call it at the top of a module, before ``import torch`` (``# noqa: E402`` on the imports)::

        from recforge.models.torch._require import require_torch

        require_torch()

        import torch  # noqa: E402
    """
    import importlib.util

    for name in ("torch", "safetensors"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise MissingTorchError(f"{name} is not installed. {TORCH_EXTRA_MESSAGE}")
