"""Models on one estimator API (see :mod:`recforge.models.base`).

``MODELS`` maps a registry name to ``"module:Class"``; classes are imported lazily so the
registry stays cheap and a user model can be registered with :func:`register`. Every registered
model passes the contract suite (``tests/models/test_contract.py``).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from recforge.models.base import (
    IdOutOfRangeError,
    ModelDataMismatchError,
    NotFittedError,
    Recommendations,
    Recommender,
)
from recforge.models.iterative import IterativeRecommender

__all__ = [
    "MODELS",
    "IdOutOfRangeError",
    "IterativeRecommender",
    "ModelDataMismatchError",
    "NotFittedError",
    "Recommendations",
    "Recommender",
    "get_model_class",
    "load_model",
    "make_model",
    "register",
]

MODELS: dict[str, str | type[Recommender]] = {
    "TopPopular": "recforge.models.baselines:TopPopular",
    "Random": "recforge.models.baselines:Random",
    "ItemKNNCF": "recforge.models.knn:ItemKNNCF",
    "UserKNNCF": "recforge.models.knn:UserKNNCF",
    "ItemKNNCBF": "recforge.models.knn:ItemKNNCBF",
    "ItemKNNCFCBF": "recforge.models.knn:ItemKNNCFCBF",
    "P3alpha": "recforge.models.graph:P3alpha",
    "RP3beta": "recforge.models.graph:RP3beta",
    "PureSVD": "recforge.models.mf:PureSVD",
    "SLIMElasticNet": "recforge.models.slim:SLIMElasticNet",
    "EASE": "recforge.models.ease:EASE",
    "IALS": "recforge.models.ials:IALS",
    "NMF": "recforge.models.nmf:NMF",
    "MFBPR": "recforge.models.mf_bpr:MFBPR",
    "SLIMBPR": "recforge.models.slim_bpr:SLIMBPR",
    "FunkSVD": "recforge.models.funksvd:FunkSVD",
    "CVAE": "recforge.models.torch.cvae:CVAE",
    "CDL": "recforge.models.torch.cdl:CDL",
    "MultVAE": "recforge.models.torch.multvae:MultVAE",
    "MultDAE": "recforge.models.torch.multvae:MultDAE",
    "GMF": "recforge.models.torch.gmf:GMF",
    "MLP": "recforge.models.torch.neumf:MLP",
    "NeuMF": "recforge.models.torch.neumf:NeuMF",
    "CMN": "recforge.models.torch.cmn:CMN",
    "SpectralCF": "recforge.models.torch.spectralcf:SpectralCF",
    "MCRec": "recforge.models.torch.mcrec:MCRec",
    # Lists made by another library, evaluated by our protocol (not a learning model).
    "ExternalLists": "recforge.evaluation.external:ExternalLists",
}


def register(name: str, cls: type[Recommender] | str) -> None:
    """Register a user model class (or ``"module:Class"`` path) under ``name``."""
    MODELS[name] = cls


def get_model_class(name: str) -> type[Recommender]:
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {sorted(MODELS)}")
    target = MODELS[name]
    if isinstance(target, str):
        module, _, attr = target.partition(":")
        target = getattr(importlib.import_module(module), attr)
        MODELS[name] = target
    return target  # type: ignore[return-value]


def make_model(name: str, **params: Any) -> Recommender:
    """An unfitted ``name`` model; unknown or renamed hyper-parameters are refused by name."""
    cls = get_model_class(name)
    cls.check_param_names(params, where=f"model {name}")
    return cls(**params)


def load_model(
    path: str | os.PathLike[str], *, data: Any = None, allow_other_data: bool = False,
    device: str | None = None,
) -> Recommender:
    """Load any registered model saved with ``save`` (see :meth:`Recommender.load`)."""
    return Recommender.load(path, data=data, allow_other_data=allow_other_data, device=device)
