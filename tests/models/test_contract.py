"""The estimator contract, checked for every registered model (classic and neural).

Parametrised over ``recforge.models.MODELS`` at collection time, so a newly registered model is
checked without editing this file. Each model fits the tiny data below with its own
``_test_params``. A model whose import fails is an error, except a torch model when torch is
not installed (CI installs torch, so there every model runs).
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
from pydantic import ValidationError

from recforge.data.interactions import Interactions
from recforge.evaluation import Evaluator
from recforge.models import (
    MODELS,
    IdOutOfRangeError,
    IterativeRecommender,
    ModelDataMismatchError,
    NotFittedError,
    Recommender,
    get_model_class,
    load_model,
    make_model,
)
from recforge.models.iterative import EarlyStopping

N_USERS, N_ITEMS, N_FEATURES = 30, 24, 6
NAMES = sorted(MODELS)
_FITTED: dict[str, Recommender] = {}


def _tiny(seed: int = 0) -> Interactions:
    """30 users x 24 items, 3-10 items each, string external ids, an item and a user ICM."""
    rng = np.random.default_rng(seed)
    users, items = [], []
    for u in range(N_USERS):
        chosen = rng.choice(N_ITEMS, size=int(rng.integers(3, 11)), replace=False)
        users.extend([u] * chosen.size)
        items.extend(chosen.tolist())
    icm = sp.csr_matrix((rng.random((N_ITEMS, N_FEATURES)) < 0.4).astype(np.float32))
    ucm = sp.csr_matrix((rng.random((N_USERS, N_FEATURES)) < 0.4).astype(np.float32))
    return Interactions.from_arrays(
        np.array(users),
        np.array(items),
        shape=(N_USERS, N_ITEMS),
        timestamps=rng.integers(0, 10_000, size=len(users)),
        user_ids=np.array([f"user-{u:02d}" for u in range(N_USERS)]),
        item_ids=np.array([f"item-{i:02d}" for i in range(N_ITEMS)]),
        item_features=icm,
        user_features=ucm,
        name="tiny",
    )


TRAIN = _tiny()
OTHER = _tiny(seed=1)
USERS = np.arange(N_USERS)


def _cls(name: str) -> type[Recommender]:
    try:
        return get_model_class(name)
    except ImportError as exc:
        if "torch" in str(exc) and importlib.util.find_spec("torch") is None:
            pytest.skip(f"{name} needs torch, which is not installed ({exc})")
        raise


def _new(name: str) -> Recommender:
    cls = _cls(name)
    return cls(**cls._test_params)


def _fitted(name: str) -> Recommender:
    """One fitted model per name, shared by the read-only checks."""
    if name not in _FITTED:
        _FITTED[name] = _new(name).fit(TRAIN)
    return _FITTED[name]


@pytest.fixture(params=NAMES)
def name(request: pytest.FixtureRequest) -> str:
    return str(request.param)


# ----------------------------------------------------------------------------- declaration
def test_registry_entry_names_its_class(name: str) -> None:
    cls = _cls(name)
    assert issubclass(cls, Recommender)
    assert cls.name == name
    assert cls.check_param_names(cls._test_params) is None
    caps = cls.capabilities()
    assert set(caps) == {"profiles", "candidates", "iterative", "devices"}
    assert "cpu" in caps["devices"]
    assert cls.iterative == (cls.epochs_param is not None)


# ----------------------------------------------------------------------------- fit / score
def test_fit_returns_self_and_scores_are_float32(name: str) -> None:
    model = _new(name)
    assert model.fit(TRAIN) is model
    assert model.is_fitted and model.fit_seconds_ >= 0
    assert (model.n_users_, model.n_items_) == (N_USERS, N_ITEMS)
    assert model.train_checksum_ == TRAIN.checksum()
    scores = model.score(USERS)
    assert scores.shape == (N_USERS, N_ITEMS)
    assert scores.dtype == np.float32
    # Finite scores, or -inf for "never recommend" (the evaluator drops such items; list
    # adapters like ExternalLists score unlisted items so). NaN and +inf are never valid.
    assert (np.isfinite(scores) | (scores == -np.inf)).all()
    assert np.isfinite(scores).any()


def test_scores_do_not_depend_on_batching(name: str) -> None:
    model = _fitted(name)
    full = model.score(USERS)
    subset = np.array([7, 0, 29, 7])
    np.testing.assert_array_equal(model.score(subset), full[subset])
    assert model.score(np.array([], dtype=np.int64)).shape == (0, N_ITEMS)


def test_not_fitted_is_refused_before_work(name: str) -> None:
    model = _new(name)
    with pytest.raises(NotFittedError, match="not fitted"):
        model.score(USERS)
    with pytest.raises(NotFittedError):
        model.score_candidates(USERS[:2], np.zeros((2, 3), dtype=np.int64))
    with pytest.raises(NotFittedError):
        model.recommend(["user-00"], k=3)
    if model.supports_profiles:
        with pytest.raises(NotFittedError):
            model.score_profiles(TRAIN.matrix[:2])


def test_bad_input_is_named(name: str) -> None:
    model = _fitted(name)
    with pytest.raises(TypeError, match="train must be an Interactions"):
        _new(name).fit(TRAIN.matrix)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="integer ids"):
        model.score(np.array([0.5, 1.0]))
    with pytest.raises(ValueError, match="1-d"):
        model.score(np.zeros((2, 2), dtype=np.int64))
    with pytest.raises(IdOutOfRangeError, match=rf"user ids must lie in \[0, {N_USERS}\)"):
        model.score(np.array([0, N_USERS]))
    with pytest.raises(IndexError):
        model.score(np.array([-1]))
    with pytest.raises(IdOutOfRangeError, match="candidate item"):
        model.score_candidates(np.array([0]), np.array([[0, N_ITEMS]]))
    if model.supports_profiles:
        with pytest.raises(ValueError, match=rf"expected \(n, {N_ITEMS}\)"):
            model.score_profiles(sp.csr_matrix((2, N_ITEMS + 1), dtype=np.float32))
    else:
        with pytest.raises(NotImplementedError, match="supports_profiles=False"):
            model.score_profiles(TRAIN.matrix[:2])


# ----------------------------------------------------------------------------- parameters
def test_get_set_params_round_trip(name: str) -> None:
    model = _new(name)
    params = model.get_params()
    assert set(params) == set(type(model)._param_names())
    assert model.set_params(**params) is model
    assert model.get_params() == params
    clone = model.clone()
    assert type(clone) is type(model) and clone.get_params() == params
    assert not clone.is_fitted
    with pytest.raises(ValueError, match="no_such_param"):
        model.set_params(no_such_param=1)
    with pytest.raises(ValueError, match="no_such_param"):
        make_model(name, no_such_param=1)
    for old, new in type(model).renamed_params.items():
        with pytest.raises(ValueError, match=f"{old!r} is now {new!r}"):
            make_model(name, **{old: 1})


def test_refit_with_same_seed_gives_same_scores(name: str) -> None:
    first = _fitted(name)
    again = first.clone().fit(TRAIN)
    np.testing.assert_array_equal(again.score(USERS), first.score(USERS))


def test_refit_forgets_the_previous_data(name: str) -> None:
    model = _new(name).fit(OTHER).fit(TRAIN)
    assert model.train_checksum_ == TRAIN.checksum()
    np.testing.assert_array_equal(model.score(USERS), _fitted(name).score(USERS))


# ----------------------------------------------------------------------------- save / load
def test_save_load_round_trip(name: str, tmp_path: Any) -> None:
    model = _fitted(name)
    out = model.save(tmp_path / "m")
    for loaded in (
        type(model).load(out, data=TRAIN),
        load_model(out, data=TRAIN.checksum()),
    ):
        assert type(loaded) is type(model)
        assert loaded.get_params() == model.get_params()
        np.testing.assert_array_equal(loaded.score(USERS), model.score(USERS))
        assert loaded.train_checksum_ == model.train_checksum_
        np.testing.assert_array_equal(loaded.user_ids_, model.user_ids_)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save(out)
    model.save(out, overwrite=True)
    np.testing.assert_array_equal(load_model(out, data=TRAIN).score(USERS), model.score(USERS))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary left behind
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="non-empty directory without a saved model"):
        model.save(other, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"


def test_load_refuses_other_data_naming_both_checksums(name: str, tmp_path: Any) -> None:
    out = _fitted(name).save(tmp_path / "m")
    with pytest.raises(ModelDataMismatchError) as info:
        load_model(out, data=OTHER)
    assert TRAIN.checksum() in str(info.value) and OTHER.checksum() in str(info.value)
    with pytest.raises(ValueError, match="allow_other_data"):
        load_model(out)
    loaded = load_model(out, data=OTHER, allow_other_data=True)
    np.testing.assert_array_equal(loaded.score(USERS), _fitted(name).score(USERS))


# ----------------------------------------------------------------------------- recommend
def _reference_top(scores: np.ndarray, seen: set[int], k: int) -> list[int]:
    """Score descending, lower item index first among ties, seen items left out."""
    pool = [j for j in range(scores.size) if j not in seen and scores[j] != -np.inf]
    pool.sort(key=lambda j: (-float(scores[j]), j))
    return pool[:k]


def test_recommend_returns_external_ids_without_seen_items(name: str) -> None:
    model = _fitted(name)
    users = ["user-03", "user-00", "user-17"]
    rec = model.recommend(users, k=5)
    scores = model.score(np.array([3, 0, 17]))
    got = rec.lists()
    assert list(got) == users
    for row, ext in enumerate(users):
        u = int(ext.split("-")[1])
        seen = set(TRAIN.matrix[u].indices.tolist())
        expected = _reference_top(scores[row], seen, 5)
        assert [i for i, _ in got[ext]] == [f"item-{j:02d}" for j in expected]
        np.testing.assert_array_equal([s for _, s in got[ext]], scores[row, expected])
    assert rec.rank[:5].tolist() == [1, 2, 3, 4, 5]
    everything = model.recommend(["user-03"], k=N_ITEMS, exclude_seen=False)
    assert len(everything) == N_ITEMS
    with pytest.raises(KeyError, match="nobody"):
        model.recommend(["user-00", "nobody"], k=3)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        model.recommend(["user-00"], k=0)
    with pytest.raises(TypeError, match="wrap a single id in a list"):
        model.recommend("user-00", k=3)


# ----------------------------------------------------------------------------- capabilities
def test_score_profiles_when_declared(name: str) -> None:
    model = _fitted(name)
    if not model.supports_profiles:
        with pytest.raises(NotImplementedError, match="cannot score unseen user profiles"):
            model.score_profiles(TRAIN.matrix[:2])
        return
    profiles = TRAIN.matrix[[4, 9, 21]]
    scores = model.score_profiles(profiles)
    assert scores.shape == (3, N_ITEMS) and scores.dtype == np.float32
    assert np.isfinite(scores).all()
    # a GEMM over 1 row may round differently from one over 3 rows: allow float32 noise
    noise = 1e-6 * float(np.abs(scores).max())
    np.testing.assert_allclose(model.score_profiles(profiles[1:2])[0], scores[1], rtol=1e-6,
                               atol=noise)
    np.testing.assert_allclose(model.score_profiles(profiles.toarray()), scores, rtol=1e-6,
                               atol=noise)
    empty = model.score_profiles(sp.csr_matrix((2, N_ITEMS), dtype=np.float32))
    assert empty.shape == (2, N_ITEMS)


def test_candidate_scores_agree_with_full_scores(name: str) -> None:
    model = _fitted(name)
    users = np.array([2, 11, 2])
    items = np.array([[0, 5, 5, 23], [1, 2, 3, 4], [23, 22, 0, 1]])
    full = model.score(users)
    got = model.score_candidates(users, items)
    assert got.shape == items.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, np.take_along_axis(full, items, axis=1), rtol=1e-5, atol=1e-6)
    ragged = model.score_candidates(users[:2], [np.array([3]), np.array([0, 1, 2])])
    np.testing.assert_allclose(ragged[1], full[1, :3], rtol=1e-5, atol=1e-6)


def test_candidate_protocol_uses_the_declared_scoring_path(name: str) -> None:
    model = _fitted(name)
    rng = np.random.default_rng(5)
    test = Interactions.from_arrays(np.arange(N_USERS), rng.integers(0, N_ITEMS, N_USERS),
                                    shape=(N_USERS, N_ITEMS))  # fmt: skip
    negatives = sp.csr_matrix(
        (np.ones(N_USERS * 6, np.float32),
         (np.repeat(np.arange(N_USERS), 6), rng.integers(0, N_ITEMS, N_USERS * 6))),
        shape=(N_USERS, N_ITEMS),
    )  # fmt: skip
    ev = Evaluator(test, cutoffs=[1, 3], metrics=["HR", "NDCG"], candidates=negatives)
    res = ev.evaluate(model)
    expected = "candidate pairs" if model.supports_candidates else "all items"
    assert res.meta["scored"] == expected
    assert 0.0 <= res.summary["HR@3"] <= 1.0


def test_iterative_models_train_in_the_loop_and_restore_state(name: str) -> None:
    model = _new(name)
    if not model.iterative:
        assert type(model).epochs_param is None
        assert not isinstance(model, IterativeRecommender)
        with pytest.raises(TypeError, match="takes no training options"):
            model.fit(TRAIN, early_stopping=None)
        return
    assert isinstance(model, IterativeRecommender)
    model.fit(TRAIN, early_stopping=EarlyStopping(max_epochs=2))
    assert model.epochs_run_ == 2 and [h.epoch for h in model.history_] == [1, 2]
    snapshots: list[tuple[dict[str, Any], np.ndarray]] = []

    def best_at_two(m: Any) -> float:  # validated after every epoch; epoch 2 is "best"
        if m is not model:  # a pre-training stage (NeuMF's GMF, MLP) validated on its own
            return 0.0
        snapshots.append((m.get_state(), m.score(USERS).copy()))
        return 1.0 if len(snapshots) == 2 else 0.0

    model.fit(TRAIN, validation=best_at_two,
              early_stopping=EarlyStopping(validate_every=1, patience=5, max_epochs=3))
    assert len(snapshots) == 3 and model.epochs_best_ == 2 and model.epochs_run_ == 3
    np.testing.assert_array_equal(model.score(USERS), snapshots[1][1])
    model.set_state(snapshots[2][0])
    np.testing.assert_array_equal(model.score(USERS), snapshots[2][1])
    with pytest.raises(ValidationError, match="max_epochs"):
        model.fit(TRAIN, early_stopping=EarlyStopping(max_epochs=0))


def test_resumable_models_continue_an_interrupted_fit_bit_for_bit(name: str,
                                                                   tmp_path: Any) -> None:
    from recforge.models.resume import Resume

    cls = _cls(name)
    point = Resume(path=tmp_path / "point.npz", every_seconds=0)
    if not getattr(cls, "resumable", False):
        if cls.iterative:
            with pytest.raises(ValueError, match="cannot resume a fit"):
                _new(name).fit(TRAIN, resume=point)
        return
    es = EarlyStopping(validate_every=1, patience=9, max_epochs=4)

    def validation(target: Recommender, stop_at: int | None) -> Any:
        calls: list[int] = []

        def value(m: Any) -> float:
            if m is not target:  # a pre-training stage (NeuMF's GMF, MLP) validated on its own
                return 0.0
            calls.append(1)
            if len(calls) == stop_at:
                raise KeyboardInterrupt
            return float(m.score(USERS[:5]).mean())
        return value

    whole = _new(name)
    whole.fit(TRAIN, validation=validation(whole, None), early_stopping=es)
    model = _new(name)
    with pytest.raises(KeyboardInterrupt):  # at epoch 3's validation: the point is epoch 2's
        model.fit(TRAIN, validation=validation(model, 3), early_stopping=es, resume=point)
    assert point.path.is_file()
    from recforge.models.resume import read_point

    _, saved = read_point(point.path)  # fixed inputs rebuilt from the data are not stored
    fixed = set(getattr(cls, "_fixed_buffers", ()))
    assert not fixed & set(saved["model"].get("module", {}))
    assert not {f"module.{k}" for k in fixed} & set(saved["best_state"])
    model.fit(TRAIN, validation=validation(model, None), early_stopping=es, resume=point)
    assert isinstance(model, IterativeRecommender) and isinstance(whole, IterativeRecommender)
    assert model.resumed_from_epoch_ == 2 and not point.path.exists()
    assert [(h.epoch, h.loss, h.validation) for h in model.history_] == [
        (h.epoch, h.loss, h.validation) for h in whole.history_]
    np.testing.assert_array_equal(model.score(USERS), whole.score(USERS))


# ----------------------------------------------------------------------------- not per model
class _OddParams(Recommender):
    """Hyper-parameter types JSON does not hold natively (tuple, inf, nested)."""

    name = "OddParams"

    def __init__(
        self, layers: tuple[int, ...] = (4, 2), tol: float = float("inf"), opts: Any = None
    ) -> None:
        self.layers = layers
        self.tol = tol
        self.opts = opts

    def _fit(self, train: Interactions) -> None:
        self.shape_ = (train.n_users, train.n_items)
        self.weights_ = np.arange(train.n_items, dtype=np.float32) * sum(self.layers)

    def _score(self, users: np.ndarray) -> np.ndarray:
        return np.tile(self.weights_, (users.size, 1))


def test_save_keeps_parameter_types_that_json_lacks(tmp_path: Any) -> None:
    model = _OddParams(layers=(8, 4, 2), opts={"a": [1, (2, 3)], "b": float("-inf")}).fit(TRAIN)
    loaded = _OddParams.load(model.save(tmp_path / "m"), data=TRAIN)
    assert loaded.get_params() == model.get_params()
    assert isinstance(loaded.layers, tuple) and loaded.shape_ == (N_USERS, N_ITEMS)
    assert isinstance(loaded.opts["a"][1], tuple)
    np.testing.assert_array_equal(loaded.score(USERS), model.score(USERS))
    with pytest.raises(TypeError, match="hyper-parameter opts"):
        _OddParams(opts=object()).fit(TRAIN).save(tmp_path / "bad")
    with pytest.raises(TypeError, match=r"holds a .*_OddParams model, not"):
        get_model_class("EASE").load(tmp_path / "m", data=TRAIN)
    with pytest.raises(KeyError, match="not registered"):
        load_model(tmp_path / "m", data=TRAIN)


def test_renamed_parameter_is_refused_in_specs_by_its_new_name() -> None:
    from recforge.experiments.spec import ModelEntry

    with pytest.raises(ValueError, match="'num_threads' is now 'n_threads'"):
        ModelEntry(model="IALS", params={"num_threads": 2})
    with pytest.raises(ValueError, match="no hyper-parameter"):
        ModelEntry(model="IALS", params={"threads": 2})
