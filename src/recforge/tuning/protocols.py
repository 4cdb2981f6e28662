"""Named tuning protocols: how a search is run and what the final model is trained on.

A :class:`ProtocolPreset` is validated data. Two are defined, one per version of the paper's
study (``PRESETS``; the differences and their sources are in ``docs/protocols.md``):

- ``recsys2019`` (the default; what recforge did before presets existed): 35 trials with 5
  random starts, the models' declared search spaces (the 2019 code's ranges for the models of
  that code), the final model trained on train minus validation (unless a spec asks for
  ``split.validation.refit``).
- ``tois2021`` (Ferrari Dacrema, Boglio, Cremonesi, Jannach, ACM TOIS 39(2), 2021): 50 trials
  with 15 random starts; topK up to 1000 and PureSVD up to 350 factors; the best configuration
  refitted on train + validation before the test evaluation, iterative models for the epoch
  count early stopping chose on validation; UserKNN with TF-IDF/BM25 scored with the
  unweighted matrix (``params``). The journal's added baselines are ``extra_models``.

Ranges in ``widen`` are merged over a model's declared search-space entries (only the keys
given change, e.g. ``high``); a parameter fixed by the caller is not searched and keeps its
value. Models that postdate the 2019 code declare the journal's ranges themselves (EASE,
iALS, NMF, MF BPR, SLIM BPR, FunkSVD), so both presets search them alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "DEFAULT_PRESET",
    "PRESETS",
    "PRESET_NAMES",
    "ProtocolPreset",
    "get_preset",
]


class ProtocolPreset(BaseModel):
    """One named tuning protocol (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    #: where the protocol is described (paper and, where read, the authors' code)
    source: str
    n_trials: int = Field(ge=1)
    n_startup_trials: int = Field(ge=0)
    #: train the final model on train + validation (iterative models: for the best epochs)
    refit: bool
    #: model name -> parameter -> keys merged over the declared search-space entry
    widen: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)
    #: model name -> hyper-parameter values the protocol fixes where a spec gives none
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: registered models the protocol's version adds to the paper's baseline rows
    extra_models: tuple[str, ...] = ()
    #: one line per difference from the default preset (for results and reports)
    differences: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _check(self) -> ProtocolPreset:
        from recforge.models import MODELS, get_model_class

        if self.n_startup_trials > self.n_trials:
            raise ValueError(f"preset {self.name}: n_startup_trials {self.n_startup_trials} > "
                             f"n_trials {self.n_trials}")
        for model in [*self.widen, *self.params, *self.extra_models]:
            if model not in MODELS:
                raise ValueError(f"preset {self.name}: unknown model {model!r}")
        for model, values in self.params.items():
            from recforge.models.params import check_params

            check_params(get_model_class(model), values, where=f"preset {self.name} params")
        for model, params in self.widen.items():
            declared = get_model_class(model).space_for({})
            bad = sorted(set(params) - set(declared))
            if bad:
                raise ValueError(f"preset {self.name}: {model} does not search {bad} (its "
                                 f"space: {sorted(declared)})")
        return self

    def space_for(self, model_name: str, fixed_params: Mapping[str, Any] | None = None,
                  ) -> dict[str, dict[str, Any]]:
        """``model_name``'s search space under this protocol (fixed parameters removed)."""
        from recforge.models import get_model_class

        space = get_model_class(model_name).space_for(fixed_params)
        for param, change in self.widen.get(model_name, {}).items():
            if param in space:
                space[param] = {**space[param], **change}
        return space

    def describe(self) -> dict[str, Any]:
        """What results.json records about the protocol that ran."""
        return self.model_dump(mode="json")


_TOP_K_1000 = {"top_k": {"high": 1000}}

PRESETS: dict[str, ProtocolPreset] = {
    p.name: p
    for p in (
        ProtocolPreset(
            name="recsys2019",
            source="Ferrari Dacrema, Cremonesi, Jannach, RecSys 2019; the authors' code at "
                   "commit 024dc15 (paper-protocols.md §1.4, §1.5)",
            n_trials=35,
            n_startup_trials=5,
            refit=False,
        ),
        ProtocolPreset(
            name="tois2021",
            source="Ferrari Dacrema, Boglio, Cremonesi, Jannach, 'A Troubling Analysis of "
                   "Reproducibility and Progress in Recommender Systems Research', ACM TOIS "
                   "39(2), 2021; the authors' repository HEAD f5618c6 (paper-protocols.md §0)",
            n_trials=50,
            n_startup_trials=15,
            refit=True,
            widen={
                "UserKNNCF": _TOP_K_1000,
                "ItemKNNCF": _TOP_K_1000,
                "ItemKNNCBF": _TOP_K_1000,
                "ItemKNNCFCBF": _TOP_K_1000,
                "P3alpha": _TOP_K_1000,
                "RP3beta": _TOP_K_1000,
                "SLIMElasticNet": _TOP_K_1000,
                "PureSVD": {"num_factors": {"high": 350}},
            },
            params={"UserKNNCF": {"score_with": "unweighted"}},
            extra_models=("SLIMElasticNet", "EASE", "IALS", "NMF", "MFBPR", "SLIMBPR",
                          "FunkSVD"),
            differences=(
                "50 trials, 15 of them random starts (2019: 35 and 5)",
                "the best configuration is refitted on train + validation before testing; "
                "iterative models train for the epoch count early stopping chose on "
                "validation (2019: tested as fitted on train minus validation)",
                "topK searched up to 1000 (2019: 800) for the KNNs, P3alpha, RP3beta and "
                "SLIM ElasticNet; PureSVD up to 350 factors (2019: 250)",
                "UserKNN with TF-IDF/BM25 scores users with the unweighted matrix "
                "(score_with='unweighted'; 2019: the weighted one)",
                "more baselines: SLIM ElasticNet, EASE^R, iALS, NMF, MF BPR, SLIM BPR, "
                "MF FunkSVD",
            ),
        ),
    )
}

PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)
DEFAULT_PRESET = "recsys2019"


def get_preset(name: str) -> ProtocolPreset:
    """The preset called ``name``; an unknown name is refused listing the known ones."""
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown protocol preset {name!r}; known: "
                         f"{', '.join(PRESET_NAMES)}") from None
