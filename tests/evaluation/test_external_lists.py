"""Lists from another library (implicit) evaluated by our protocol give our own numbers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp
import yaml
from evaluation_helpers import interactions, reference_metrics
from threadpoolctl import threadpool_limits

from recforge.data import splitting
from recforge.data.interactions import Interactions
from recforge.data.split import Split
from recforge.evaluation import evaluate_split
from recforge.evaluation.external import ExternalLists
from recforge.experiments.runner import run_experiment
from recforge.experiments.spec import parse_spec
from recforge.models import make_model
from recforge.models.base import Recommender

CUTOFFS = [1, 5, 10, 20]
METRICS = ["PRECISION", "RECALL", "NDCG", "MAP", "HR", "MRR", "COVERAGE", "GINI", "NOVELTY"]
N_USERS, N_ITEMS = 400, 300


def _split() -> Split:
    m = sp.random(N_USERS, N_ITEMS, density=0.06, random_state=7, format="csr", dtype=np.float32)
    m.data[:] = 1.0
    x = Interactions(m, user_ids=np.array([f"u{u}" for u in range(N_USERS)]),
                     item_ids=np.array([f"i{i}" for i in range(N_ITEMS)]))
    return splitting.per_user_holdout(x, test_fraction=0.25, seed=0)


class _ImplicitScores(Recommender):
    """implicit's ALS factors as a recforge model: score = user_factors @ item_factors.T."""

    name = "ImplicitScores"

    def __init__(self, als: object = None) -> None:
        self.als = als

    def _fit(self, train: Interactions) -> None:
        self.u_ = self.als.user_factors  # type: ignore[attr-defined]
        self.v_ = self.als.item_factors  # type: ignore[attr-defined]

    def _score(self, users: np.ndarray) -> np.ndarray:
        return self.u_[users] @ self.v_.T


@pytest.fixture(scope="module")
def implicit_lists() -> tuple[Split, object, np.ndarray, np.ndarray]:
    from implicit.cpu.als import AlternatingLeastSquares

    split = _split()
    train = split.train.matrix.astype(np.float32)
    als = AlternatingLeastSquares(factors=16, iterations=5, random_state=0, num_threads=1)
    with threadpool_limits(1):
        als.fit(train, show_progress=False)
        users = np.arange(N_USERS)
        ids, scores = als.recommend(users, train[users], N=20, filter_already_liked_items=True)
    return split, als, ids, scores


def _write(split: Split, ids: np.ndarray, scores: np.ndarray, path: Path, kind: str) -> None:
    users = np.repeat(np.arange(ids.shape[0]), ids.shape[1])
    frame = pl.DataFrame({
        "user_id": split.train.user_ids[users].astype(str),
        "item_id": split.train.item_ids[ids.ravel()].astype(str),
        "rank": np.tile(np.arange(1, ids.shape[1] + 1), ids.shape[0]),
        "score": scores.ravel().astype(np.float64),
    })
    if kind == "parquet":
        frame.sample(fraction=1.0, shuffle=True, seed=1).write_parquet(path)  # order is data
    else:
        frame.write_csv(path)


@pytest.mark.filterwarnings("ignore:OpenBLAS is configured:RuntimeWarning")
@pytest.mark.parametrize("kind, order", [("csv", "rank"), ("parquet", "score")])
def test_implicit_lists_evaluate_to_our_numbers(
    implicit_lists: tuple[Split, object, np.ndarray, np.ndarray], tmp_path: Path, kind: str,
    order: str,
) -> None:
    split, als, ids, scores = implicit_lists
    path = tmp_path / f"lists.{kind}"
    _write(split, ids, scores, path, kind)
    ext = ExternalLists(path=str(path), user_col="user_id", item_col="item_id",
                        **{f"{order}_col": order}).fit(split.train)
    got = evaluate_split(ext, split, cutoffs=CUTOFFS, metrics=METRICS)
    # (1) our own evaluation of the same model: the evaluator ranks implicit's scores itself.
    ours = evaluate_split(_ImplicitScores(als).fit(split.train), split, cutoffs=CUTOFFS,
                          metrics=METRICS)
    assert got.summary.keys() == ours.summary.keys()
    for key, v in ours.summary.items():
        assert got.summary[key] == pytest.approx(v, abs=1e-12), key
    # (2) a plain per-user computation from the lists themselves.
    test = split.test.matrix
    for u_pos, u in enumerate(got.users[:60]):
        t = set(test.indices[test.indptr[u] : test.indptr[u + 1]].tolist())
        for k in CUTOFFS:
            ref = reference_metrics(ids[u].tolist(), t, k)
            for name in ("PRECISION", "RECALL", "NDCG", "MAP", "HR", "MRR"):
                assert got.per_user[f"{name}@{k}"][u_pos] == pytest.approx(ref[name]), (u, k)
    assert ext.load_report_ == {"rows": N_USERS * 20, "unknown_users": 0, "unknown_items": 0,
                                "users": N_USERS, "entries": N_USERS * 20, "seen_in_train": 0,
                                "longest": 20}
    assert len(ext.file_sha256_) == 64


def test_a_spec_puts_external_lists_in_the_same_table(tmp_path: Path) -> None:
    split_data = _split()
    x = Interactions(split_data.train.matrix + split_data.test.matrix,
                     user_ids=split_data.train.user_ids, item_ids=split_data.train.item_ids)
    data_file = tmp_path / "data.csv"
    u, i = x.matrix.nonzero()
    pl.DataFrame({"user": x.user_ids[u], "item": x.item_ids[i]}).write_csv(data_file)
    base = {
        "name": "external", "dataset": {"file": str(data_file), "id_type": "str"},
        "split": {"method": "per_user_holdout", "params": {"test_fraction": 0.25}},
        "report": {"metrics": ["RECALL", "NDCG"], "cutoffs": [5, 10]}, "seeds": [0],
        "models": [{"model": "TopPopular"}],
    }
    # TopPopular's own top-10 lists, exported with external ids, enter as another row.
    from recforge.experiments.runner import _load_data, prepare_split

    # The lists must be made on the run's own split: the same loading, the same seed.
    loaded, _ = _load_data(parse_spec(base))
    split = prepare_split(parse_spec(base), loaded, 0)
    top = make_model("TopPopular").fit(split.train)
    rec = top.recommend(split.train.user_ids.tolist(), k=10)
    lists = tmp_path / "toppop.csv"
    pl.DataFrame({"user": rec.user, "item": rec.item, "rank": rec.rank}).write_csv(lists)
    spec = {**base, "models": [
        {"model": "TopPopular"},
        {"model": "ExternalLists", "label": "TopPop lists",
         "params": {"path": str(lists), "rank_col": "rank"}},
    ]}
    out = tmp_path / "b"
    run_experiment(parse_spec(spec), out, log=lambda _m: None)
    results = json.loads((out / "results.json").read_text())
    assert results["rows"]["TopPop lists"] == pytest.approx(results["rows"]["TopPopular"])
    sig = results["significance"]["RECALL@10"]
    assert sig["TopPop lists"]["significant"] in (False, None)
    assert "TopPop lists" in (out / "report.md").read_text()
    assert yaml.safe_load((out / "spec.resolved.yaml").read_text())["models"][1]["model"] == (
        "ExternalLists")


def _ext(rows: list[list[object]], **kw: object) -> ExternalLists:
    return ExternalLists(rows=rows, **kw)  # type: ignore[arg-type]


def test_protocol_seen_items_short_lists_missing_users_and_ties() -> None:
    # 3 users, 6 items; user 0 saw item 1, user 2 has no list.
    train = interactions([[1], [0], [2]], 6)
    test = interactions([[3, 4], [5], [0]], 6)
    split = Split(train=train, test=test)
    rows = [[0, 1, 1], [0, 3, 2], [0, 5, 3], [1, 5, 1]]  # user 0's list holds a seen item
    ext = _ext(rows).fit(train)
    assert ext.load_report_["seen_in_train"] == 1 and ext.load_report_["users"] == 2
    res = evaluate_split(ext, split, cutoffs=[2], metrics=["PRECISION", "RECALL", "HR"])
    # user 0: [1 (seen, removed), 3, 5] -> L@2 = [3, 5], one hit of two test items
    # user 1: [5] -> a list of one item, a hit; user 2: no list -> 0
    assert res.per_user["RECALL@2"].tolist() == [0.5, 1.0, 0.0]
    assert res.per_user["PRECISION@2"].tolist() == [0.5, 1.0, 0.0]
    # Equal scores: the lower internal item index ranks first, as in the evaluator.
    tied = _ext([[0, 4, 0.5], [0, 3, 0.5], [0, 0, 0.1]], score_col="score").fit(train)
    assert tied.recommend([0], k=3).item.tolist() == [3, 4, 0]


def test_bad_lists_are_refused_naming_what_is_wrong(tmp_path: Path) -> None:
    train = interactions([[1], [0]], 4)
    with pytest.raises(ValueError, match=r"name users .* \(e.g. user \['7'\]\).*unknown='drop'"):
        _ext([[7, 1, 1], [0, 2, 1]]).fit(train)
    dropped = _ext([[7, 1, 1], [0, 9, 2], [0, 2, 1]], unknown="drop").fit(train)
    assert dropped.load_report_["unknown_users"] == 1
    assert dropped.load_report_["unknown_items"] == 1 and dropped.load_report_["entries"] == 1
    with pytest.raises(ValueError, match="listed more than once"):
        _ext([[0, 2, 1], [0, 2, 2]]).fit(train)
    with pytest.raises(ValueError, match=r"rank.*more than one item"):
        _ext([[0, 2, 1], [0, 3, 1]]).fit(train)
    with pytest.raises(ValueError, match="exactly one of path"):
        ExternalLists().fit(train)
    csv = tmp_path / "l.csv"
    csv.write_text("user,item,rank\n0,2,1\n")
    with pytest.raises(ValueError, match="exactly one of rank_col or score_col"):
        ExternalLists(path=str(csv)).fit(train)
    with pytest.raises(ValueError, match=r"no column\(s\) \['pos'\]"):
        ExternalLists(path=str(csv), rank_col="pos").fit(train)
    csv.write_text("user,item,rank\n0,2,\n")
    with pytest.raises(ValueError, match="missing or non-finite 'rank'"):
        ExternalLists(path=str(csv), rank_col="rank").fit(train)
    with pytest.raises(FileNotFoundError, match="list file not found"):
        ExternalLists(path=str(tmp_path / "nope.csv"), rank_col="rank").fit(train)
