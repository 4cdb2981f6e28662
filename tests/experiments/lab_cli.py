"""``recforge`` with the tests' Sluggish and Stepper models registered.

``python lab_cli.py run ...``
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from lab_helpers import sluggish_class, stepper_class

from recforge.cli.main import app
from recforge.models import register

if __name__ == "__main__":
    register("Sluggish", sluggish_class())
    register("Stepper", stepper_class())
    app(prog_name="recforge")
