"""Suite-wide guard: in CI the paper datasets must be present, so data tests never skip there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_configure(config: pytest.Config) -> None:
    mirror = os.environ.get("RECFORGE_DATA_MIRROR", "")
    if os.environ.get("CI") and not (mirror and (Path(mirror) / "mcrec-ml-100k").is_dir()):
        raise pytest.UsageError(
            f"CI is set but RECFORGE_DATA_MIRROR={mirror!r} holds no datasets; the data tests "
            "would be skipped. Point it at shared/data (as .ci/run does)."
        )
