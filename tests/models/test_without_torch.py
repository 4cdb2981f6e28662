"""The lab installs and imports without the torch extra; neural models then name the extra."""

from __future__ import annotations

import subprocess
import sys
import textwrap

_BLOCK = textwrap.dedent(
    """
    import importlib.abc, sys

    class _NoTorch(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "safetensors"):
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
            return None

    sys.meta_path.insert(0, _NoTorch())
    """
)


def _run(body: str) -> subprocess.CompletedProcess[str]:
    code = _BLOCK + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)


def test_lab_imports_and_trains_without_torch() -> None:
    proc = _run(
        """
        import numpy as np, scipy.sparse as sp
        import recforge, recforge.models, recforge.evaluation, recforge.experiments
        import recforge.experiments.runner, recforge.experiments.spec, recforge.tuning
        import recforge.experiments.paper.reproduce, recforge.models.iterative
        import recforge.models.torch, recforge.models.torch.sampling
        from recforge.data.interactions import Interactions
        from recforge.models import make_model
        x = Interactions(sp.csr_matrix(np.eye(5, dtype=np.float32)))
        make_model("IALS", iterations=2, use_implicit=False).fit(x)
        assert "torch" not in sys.modules and "safetensors" not in sys.modules
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"


def test_neural_model_without_torch_names_the_extra() -> None:
    proc = _run(
        """
        from recforge.models.torch._require import MissingTorchError
        for mod in ("recforge.models.torch.base", "recforge.models.torch.checkpoint"):
            try:
                __import__(mod)
            except MissingTorchError as exc:
                assert "recforge[torch]" in str(exc), str(exc)
            else:
                raise SystemExit(f"{mod} imported without torch")
        from recforge.models import MODELS, get_model_class
        neural = [n for n, t in MODELS.items()
                  if isinstance(t, str) and t.startswith("recforge.models.torch.")]
        for name in neural:
            try:
                get_model_class(name)
            except MissingTorchError as exc:
                assert "recforge[torch]" in str(exc), str(exc)
            else:
                raise SystemExit(f"{name} loaded without torch")
        assert {"MultVAE", "MultDAE"} <= set(neural), neural
        print("ok")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
