"""Declared hyper-parameters (recforge.models.params): every registered model's schema holds its
defaults and its default search space, and refuses wrong types, ranges and choices."""

from __future__ import annotations

import inspect

import pytest
from test_contract import _cls

from recforge.models import MODELS, get_model_class
from recforge.models.params import HyperParameterError, check_params, check_space, param_info


@pytest.mark.parametrize("name", sorted(MODELS))
def test_defaults_and_default_space_conform(name: str) -> None:
    cls = _cls(name)  # a torch model skips only where torch is not installed
    info = param_info(cls)
    defaults = {k: p.default for k, p in info.items() if not p.required}
    check_params(cls, defaults)
    check_space(cls, cls.space_for({}))
    # every rule names a real hyper-parameter, and the schema covers the whole signature
    assert set(info) == set(cls._param_names())
    assert set(cls.param_rules) <= set(info)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_test_params_conform(name: str) -> None:
    cls = _cls(name)
    check_params(cls, dict(cls._test_params))


def test_strict_types_ranges_and_choices() -> None:
    knn = get_model_class("ItemKNNCF")
    check_params(knn, {"top_k": 5, "shrink": 3, "similarity": "jaccard", "n_threads": None})
    cases = [
        ({"top_k": 5.0}, "valid integer"), ({"top_k": True}, "valid integer"),
        ({"top_k": 0}, "greater than or equal to 1"), ({"shrink": "1"}, "valid number"),
        ({"similarity": "Cosine"}, "Input should be 'cosine'"),
        ({"normalize": "yes"}, "valid boolean"), ({"n_threads": 0}, "greater than or equal"),
    ]
    for params, reason in cases:
        with pytest.raises(HyperParameterError, match=reason):
            check_params(knn, params)


def test_space_type_must_fit_the_parameter() -> None:
    slim = get_model_class("SLIMElasticNet")
    check_space(slim, {"l1_ratio": {"type": "float", "low": 0.0, "high": 1.0}})
    check_space(slim, {"alpha": {"type": "int", "low": 0, "high": 1}})  # ints are floats too
    with pytest.raises(HyperParameterError, match="<= 1"):
        check_space(slim, {"l1_ratio": {"type": "float", "low": 0.1, "high": 2.0}})
    with pytest.raises(HyperParameterError, match="a float range"):
        check_space(slim, {"top_k": {"type": "float", "low": 5.0, "high": 9.0}})
    with pytest.raises(HyperParameterError, match="an int range, but positive_only"):
        check_space(slim, {"positive_only": {"type": "int", "low": 0, "high": 1}})


def test_tune_checks_values_before_the_first_trial() -> None:
    from recforge.data.interactions import Interactions
    from recforge.data.split import Split
    from recforge.tuning import tune

    x = Interactions.from_arrays([0, 1], [0, 1], shape=(2, 2))
    split = Split(train=x, test=x, validation=x)
    with pytest.raises(HyperParameterError, match=r"fixed_params\.top_k=2\.5"):
        tune("P3alpha", split, fixed_params={"top_k": 2.5}, n_trials=1)
    with pytest.raises(HyperParameterError, match=r"search_space\.alpha"):
        tune("P3alpha", split, search_space={"alpha": {"type": "float", "low": -1, "high": 1}},
             n_trials=1)


def test_signature_default_is_recorded() -> None:
    info = param_info(get_model_class("RP3beta"))
    assert info["beta"].default == inspect.signature(
        get_model_class("RP3beta").__init__).parameters["beta"].default
    assert info["beta"].describe() == "float >= 0 (default 0.6)"
    assert param_info(get_model_class("EASE"))["n_threads"].describe() == (
        "int >= 1 or None (default None)")
