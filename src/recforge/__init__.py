"""recforge: strong, tuned recommender baselines with paper-exact evaluation, and a job platform.

The lab's public API is importable from here; each name is imported on first use, so
``import recforge`` stays instant and pulls in neither numpy nor the platform's server stack::

    import recforge

    data = recforge.load_dataset("movielens-100k")
    split = recforge.make_split(data, "per_user_holdout", {"test_fraction": 0.2}, seed=0)
    model = recforge.make_model("RP3beta", top_k=100).fit(split.train)
    print(recforge.evaluate_split(model, split, cutoffs=[10]).summary)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: public name -> the module that defines it (where a newcomer finds the code)
_LAZY: dict[str, str] = {
    # data
    "Interactions": "recforge.data.interactions",
    "Split": "recforge.data.split",
    "load_dataset": "recforge.data.registry",
    "list_datasets": "recforge.data.registry",
    "read_csv": "recforge.data.io",
    "read_parquet": "recforge.data.io",
    "read_interactions": "recforge.data.io",
    "make_split": "recforge.data.split_methods",
    "carve_validation": "recforge.data.splitting",
    "audit_split": "recforge.data.audit",
    # models
    "Recommender": "recforge.models.base",
    "make_model": "recforge.models",
    "get_model_class": "recforge.models",
    "load_model": "recforge.models",
    "register_model": "recforge.models",
    # evaluation and tuning
    "evaluate_split": "recforge.evaluation",
    "tune": "recforge.tuning",
    # experiments
    "ExperimentSpec": "recforge.experiments.spec",
    "load_spec": "recforge.experiments.spec",
    "parse_spec": "recforge.experiments.spec",
    "run_experiment": "recforge.experiments.runner",
}
#: names that differ from the attribute in their module
_RENAMED = {"register_model": "register"}

__all__ = [
    "ExperimentSpec",
    "Interactions",
    "Recommender",
    "Split",
    "__version__",
    "audit_split",
    "carve_validation",
    "evaluate_split",
    "get_model_class",
    "list_datasets",
    "load_dataset",
    "load_model",
    "load_spec",
    "make_model",
    "make_split",
    "parse_spec",
    "read_csv",
    "read_interactions",
    "read_parquet",
    "register_model",
    "run_experiment",
    "tune",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'recforge' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), _RENAMED.get(name, name))
    globals()[name] = value  # the next access skips this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


if TYPE_CHECKING:  # what the lazy names are, for type checkers and editors
    from recforge.data.audit import audit_split
    from recforge.data.interactions import Interactions
    from recforge.data.io import read_csv, read_interactions, read_parquet
    from recforge.data.registry import list_datasets, load_dataset
    from recforge.data.split import Split
    from recforge.data.split_methods import make_split
    from recforge.data.splitting import carve_validation
    from recforge.evaluation import evaluate_split
    from recforge.experiments.runner import run_experiment
    from recforge.experiments.spec import ExperimentSpec, load_spec, parse_spec
    from recforge.models import get_model_class, load_model, make_model
    from recforge.models import register as register_model
    from recforge.models.base import Recommender
    from recforge.tuning import tune
