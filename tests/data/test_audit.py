"""Tests for recforge.data.audit: planted leaks fail loudly, skew is measured, not judged."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recforge.data.audit import AuditReport, LeakageError, audit_split, gini
from recforge.data.interactions import Interactions
from recforge.data.split import Split
from recforge.data.splitting import (
    carve_validation,
    global_holdout,
    held_out_users,
    leave_one_out,
    per_user_holdout,
    predefined_split,
    temporal_split,
)

N_USERS, N_ITEMS = 4, 6
USER_IDS = np.array(["ann", "bob", "cid", "dee"])
ITEM_IDS = np.array([100, 101, 102, 103, 104, 105])


def part(*pairs: tuple[int, int]) -> Interactions:
    u = np.array([p[0] for p in pairs], dtype=np.int64)
    i = np.array([p[1] for p in pairs], dtype=np.int64)
    return Interactions.from_arrays(
        u, i, shape=(N_USERS, N_ITEMS), user_ids=USER_IDS, item_ids=ITEM_IDS
    )


TRAIN = [(0, 0), (0, 1), (1, 1), (1, 2), (2, 3), (3, 4)]
TEST = [(0, 2), (1, 3), (2, 4)]


def clean(**kw: object) -> Split:
    return predefined_split(part(*TRAIN), part(*TEST), **kw)  # type: ignore[arg-type]


def failure(split: Split, **kw: object) -> LeakageError:
    with pytest.raises(LeakageError) as info:
        audit_split(split, **kw)  # type: ignore[arg-type]
    return info.value


# ---------------------------------------------------------------------------- clean splits
def test_clean_handmade_split_passes() -> None:
    negs = [[3, 4], [0, 5], [0, 1], [0]]
    report = audit_split(clean(validation=part((0, 5)), test_negatives=negs))
    assert report.ok and report.errors == [] and report.warnings == []
    parts = report.stats["parts"]
    assert parts["train"] == {"interactions": 6, "users": 4, "items": 5}
    assert parts["test"] == {"interactions": 3, "users": 3, "items": 3}
    assert parts["test_negatives"] == {"entries": 7, "distinct": 7, "users": 4}


def test_clean_random_split_passes_without_warnings() -> None:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(50), 12)
    items = np.concatenate([rng.choice(40, 12, replace=False) for _ in range(50)])
    x = Interactions.from_arrays(users, items, shape=(50, 40))
    s = carve_validation(per_user_holdout(x, 0.2, seed=1), 0.1, seed=2)
    report = audit_split(s)
    assert report.ok and not report.warnings
    assert report.stats["users_without_train"] == {"test": 0, "validation": 0}


@pytest.mark.parametrize(
    "build",
    [
        lambda x: carve_validation(global_holdout(x, 0.3, seed=1), 0.2, seed=2, mode="global"),
        lambda x: carve_validation(leave_one_out(x, seed=1), seed=2, mode="leave_one_out"),
        lambda x: leave_one_out(x, mode="latest"),
        lambda x: temporal_split(x, test_fraction=0.2),
        lambda x: held_out_users(x, 10, 10, seed=3),
    ],
    ids=["global", "loo", "loo-latest", "temporal", "held-out-users"],
)
def test_every_split_function_passes_the_audit(build: object) -> None:
    rng = np.random.default_rng(5)
    users = np.repeat(np.arange(60), 8)
    items = np.concatenate([rng.choice(25, 8, replace=False) for _ in range(60)])
    x = Interactions.from_arrays(
        users, items, shape=(60, 25), timestamps=rng.permutation(users.size)
    )
    report = audit_split(build(x))  # type: ignore[operator]
    assert report.ok and report.errors == [] and report.warnings == []


# ---------------------------------------------------------------------------- planted leaks
def test_train_test_overlap_is_reported_with_external_ids() -> None:
    err = failure(predefined_split(part(*TRAIN), part(*TEST, (3, 4), (1, 1))))
    msg = str(err)
    assert "train_test_overlap: 2 pairs in both train and test (2 users)" in msg
    assert "(user 'bob', item 101)" in msg and "(user 'dee', item 104)" in msg
    issue = err.report.issues[0]
    assert issue.code == "train_test_overlap" and issue.count == 2
    assert issue.examples == [("bob", 101), ("dee", 104)]


def test_validation_inside_test_is_an_error() -> None:
    err = failure(clean(validation=part((0, 2), (3, 5))))
    assert "validation_test_overlap: 1 validation pairs also in test (1 users)" in str(err)
    assert "(user 'ann', item 102)" in str(err)


def test_validation_in_train_is_an_error_unless_added_back() -> None:
    err = failure(clean(validation=part((0, 1), (3, 5))))
    assert "validation_train_overlap: 1 validation pairs also in train" in str(err)
    report = audit_split(clean(validation=part((0, 1), (3, 5)), params={"add_back": True}))
    assert report.ok
    assert len(report.warnings) == 1 and "optimistic validation" in report.warnings[0]
    assert report.issues[0].code == "optimistic_validation" and report.issues[0].count == 1


def test_carve_validation_add_back_is_recognised_by_the_audit() -> None:
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(20), 10)
    items = np.concatenate([rng.choice(30, 10, replace=False) for _ in range(20)])
    x = Interactions.from_arrays(users, items, shape=(20, 30))
    s = carve_validation(per_user_holdout(x, 0.2, seed=1), 0.1, seed=2, add_back=True)
    report = audit_split(s)
    assert report.ok and "optimistic validation" in report.warnings[0]
    assert report.issues[0].count == s.validation.nnz  # type: ignore[union-attr]


def test_negative_that_is_a_positive_is_an_error() -> None:
    negs = [[2, 5], [4], [5, 4], []]  # ann's 102 and cid's 104 are their test items
    err = failure(clean(test_negatives=negs))
    assert "negative_is_positive: 2 test_negatives entries" in str(err)
    assert "(user 'ann', item 102)" in str(err) and "(user 'cid', item 104)" in str(err)
    # a validation item listed as a test negative is ranked as non-relevant at test time
    # (the model never trained on it): a warning, not a leak
    report = audit_split(clean(validation=part((3, 5)), test_negatives=[[], [], [], [5]]))
    assert report.ok
    assert any(w.startswith("negative_is_other_positive: 1") for w in report.warnings)
    # ... but a validation negative that is that user's validation item is an error
    err = failure(clean(validation=part((3, 5)), validation_negatives=[[], [], [], [5]]))
    assert "negative_is_positive: 1 validation_negatives" in str(err)
    report = audit_split(clean(test_negatives=negs), positive_negatives="warn")
    assert report.ok and "negative_is_positive: 2" in report.warnings[0]


def test_negative_in_train_warns_by_default_and_can_be_an_error() -> None:
    negs = [[0, 1, 5], [2], [], []]  # ann has 100, 101 in train; bob has 102 in train
    report = audit_split(clean(test_negatives=negs))
    assert report.ok
    assert report.warnings == [
        "negative_in_train: 3 test_negatives entries that are train (or fold-in) items of the "
        "user (2 users); e.g. (user 'ann', item 100), (user 'ann', item 101), (user 'bob', "
        "item 102)"
    ]
    err = failure(clean(test_negatives=negs), train_negatives="error")
    assert "negative_in_train: 3" in str(err)
    with pytest.raises(ValueError, match="train_negatives must be 'warn' or 'error'"):
        audit_split(clean(), train_negatives="drop")  # type: ignore[arg-type]


def test_duplicated_negatives_are_an_error() -> None:
    err = failure(clean(test_negatives=[[3, 3, 3, 4], [5, 0, 5], [], []]))
    assert "duplicated_negatives: 3 repeated test_negatives entries" in str(err)
    assert "(2 users)" in str(err)
    assert err.report.stats["parts"]["test_negatives"] == {
        "entries": 7,
        "distinct": 4,
        "users": 2,
    }


def test_validation_negatives_are_checked_too() -> None:
    split = clean(validation=part((3, 5)), validation_negatives=[[], [], [], [5, 0, 0]])
    err = failure(split)
    assert "negative_is_positive: 1 validation_negatives entries" in str(err)
    assert "duplicated_negatives: 1 repeated validation_negatives entries" in str(err)


def test_foldin_target_overlap_is_an_error() -> None:
    split = Split(
        train=part((0, 0), (1, 1)),
        test=part((2, 3), (2, 4), (3, 5)),
        test_profiles=part((2, 3), (2, 0), (3, 1)),
        validation=part((3, 2)),
        validation_profiles=part((3, 2)),
        method="held_out_users",
    )
    msg = str(failure(split))
    assert "foldin_target_overlap: 1 test pairs also in the test fold-in profiles" in msg
    assert "(user 'cid', item 103)" in msg
    assert "foldin_target_overlap: 1 validation pairs also in the validation fold-in" in msg


def test_heldout_user_with_train_rows_is_a_warning() -> None:
    split = Split(
        train=part((0, 0), (2, 1)),
        test=part((2, 3)),
        test_profiles=part((2, 4)),
        method="held_out_users",
    )
    report = audit_split(split)
    assert report.ok
    assert report.warnings == [
        "heldout_users_in_train: 1 users with test_profiles also have train interactions"
    ]


def test_every_problem_is_listed_in_one_error() -> None:
    split = predefined_split(
        part(*TRAIN),
        part(*TEST, (0, 0)),
        validation=part((0, 2), (3, 4)),
        test_negatives=[[1, 1], [3], [], []],
    )
    err = failure(split)
    codes = {i.code for i in err.report.issues if i.severity == "error"}
    assert codes == {
        "train_test_overlap",
        "validation_test_overlap",
        "validation_train_overlap",
        "negative_is_positive",
        "duplicated_negatives",
    }
    assert str(err).startswith("split audit failed (method='predefined'): 5 problem(s)")
    report = audit_split(split, raise_on_error=False)
    assert not report.ok and len(report.errors) == 5
    assert report.warnings == [
        "negative_in_train: 2 test_negatives entries that are train (or fold-in) items of the "
        "user (1 users); e.g. (user 'ann', item 101)"
    ]
    json.dumps(report.to_dict(), allow_nan=False)


def test_empty_test_is_a_warning() -> None:
    report = audit_split(predefined_split(part(*TRAIN), part()))
    assert report.ok and report.warnings == ["empty_test: the test part holds no interactions"]
    assert np.isnan(report.stats["popularity"]["gini"]["test"])
    assert report.to_dict()["stats"]["popularity"]["gini"]["test"] is None


# ---------------------------------------------------------------------------- statistics
def test_gini_formula() -> None:
    assert gini(np.array([3, 3, 3, 3])) == 0.0
    assert gini(np.array([0, 0, 0, 5])) == pytest.approx(0.75)  # (n - 1) / n
    # sorted 1, 2, 3: (-2*1 + 0*2 + 2*3) / (3 * 6) = 4 / 18
    assert gini(np.array([3, 1, 2])) == pytest.approx(4 / 18)
    x = np.random.default_rng(0).integers(0, 50, 200)
    mean_abs_diff = np.abs(x[:, None] - x[None, :]).sum() / (2 * x.size**2 * x.mean())
    assert gini(x) == pytest.approx(mean_abs_diff)
    assert np.isnan(gini(np.zeros(3))) and np.isnan(gini(np.array([])))


def test_popularity_stats_follow_the_parts() -> None:
    train_pairs = [(u, 0) for u in range(4)] + [(u, 1) for u in range(3)] + [(0, 2), (1, 2), (2, 3)]
    train = part(*train_pairs)  # item popularity 4, 3, 2, 1, 0, 0
    test = part((2, 2), (0, 3), (1, 3), (3, 3), (0, 4), (1, 4))  # 0, 0, 1, 3, 2, 0
    report = audit_split(predefined_split(train, test))
    pop = report.stats["popularity"]
    assert pop["items"] == 5  # item 105 is in no part and is left out
    assert pop["gini"]["train"] == pytest.approx(gini(np.array([4, 3, 2, 1, 0])))
    assert pop["gini"]["test"] == pytest.approx(gini(np.array([0, 0, 1, 3, 2])))
    assert pop["gini_gap_test_train"] == pytest.approx(pop["gini"]["test"] - pop["gini"]["train"])
    assert pop["train_test"]["spearman"] < -0.5 and pop["train_test"]["kendall"] < -0.5
    same = audit_split(predefined_split(part(*TRAIN), part(*TRAIN)), raise_on_error=False)
    assert same.stats["popularity"]["train_test"]["spearman"] == pytest.approx(1.0)
    assert same.stats["popularity"]["train_test"]["kendall"] == pytest.approx(1.0)


def test_users_without_train_are_counted() -> None:
    split = predefined_split(part((0, 0), (1, 1)), part((0, 2), (2, 3), (3, 4)))
    report = audit_split(split)
    assert report.stats["users_without_train"] == {"test": 2}
    [cold] = [i for i in report.issues if i.code == "cold_start_users"]
    assert cold.severity == "warning" and cold.count == 2 and report.ok
    assert cold.message.startswith("cold_start_users: 2 of 3 test users have no train")
    # users with fold-in profiles are meant to have no train: no cold-start warning for them
    held = predefined_split(part((0, 0)), part((2, 3)), test_profiles=part((2, 1)))
    assert not [i for i in audit_split(held).issues if i.code == "cold_start_users"]


def test_report_to_dict_is_json() -> None:
    report = audit_split(clean(validation=part((0, 5))))
    d = report.to_dict()
    assert isinstance(report, AuditReport) and d["ok"] is True
    assert json.loads(json.dumps(d, allow_nan=False)) == d


# ---------------------------------------------------------------------------- real data


def read_user_lines(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """SpectralCF format: one line per user, ``user item item ...``."""
    users: list[int] = []
    items: list[int] = []
    for line in path.read_text().splitlines():
        fields = [int(v) for v in line.split()]
        if fields:
            users += [fields[0]] * (len(fields) - 1)
            items += fields[1:]
    return np.asarray(users), np.asarray(items)


@pytest.mark.paper_data("spectralcf-ml-1m")
def test_spectralcf_random_split_counts_and_original_split_skew(paper_data: Path) -> None:
    root = paper_data / "spectralcf-ml-1m"
    tu, ti = read_user_lines(root / "train_users.dat")
    su, si = read_user_lines(root / "test_users.dat")
    shape = (int(max(tu.max(), su.max())) + 1, int(max(ti.max(), si.max())) + 1)
    original = predefined_split(
        Interactions.from_arrays(tu, ti, shape=shape),
        Interactions.from_arrays(su, si, shape=shape),
    )
    everything = Interactions.from_arrays(np.r_[tu, su], np.r_[ti, si], shape=shape)
    assert everything.nnz == 226_310

    ours = carve_validation(per_user_holdout(everything, 0.2, seed=0), 0.1, seed=1)
    assert ours.validation is not None
    # expected counts from the per-user rule, computed independently with Python's round
    exp_train = exp_val = exp_test = 0
    for n in everything.user_counts().tolist():
        t = round(n * 0.8)
        t -= t == n and n > 1
        v = round(t * 0.9)
        v -= v == t and t > 1
        exp_test += n - t
        exp_val += t - v
        exp_train += v
    assert (ours.train.nnz, ours.validation.nnz, ours.test.nnz) == (exp_train, exp_val, exp_test)
    assert (exp_train, exp_val, exp_test) == (162_415, 18_537, 45_358)

    ours_pop = audit_split(ours).stats["popularity"]
    orig_report = audit_split(original)
    assert orig_report.ok
    orig_pop = orig_report.stats["popularity"]
    # measured: original gap 0.141, spearman 0.235; random split gap ~0.009, spearman ~0.91
    assert orig_pop["gini_gap_test_train"] > 0.10
    assert abs(ours_pop["gini_gap_test_train"]) < 0.03
    assert orig_pop["gini_gap_test_train"] > 5 * abs(ours_pop["gini_gap_test_train"])
    assert orig_pop["train_test"]["spearman"] < 0.4 < 0.85 < ours_pop["train_test"]["spearman"]
    assert orig_pop["train_test"]["kendall"] < ours_pop["train_test"]["kendall"] - 0.4


@pytest.mark.paper_data("cmn-citeulike-a")
def test_cmn_citeulike_negatives_in_train_are_counted(paper_data: Path) -> None:
    root = paper_data / "cmn-citeulike-a"
    train_pairs = np.loadtxt(root / "train.tsv", dtype=np.int64, delimiter="\t")
    rows = [
        [int(v) for v in line.split("\t")]
        for line in (root / "test_with_negatives.tsv").read_text().splitlines()
    ]
    n_users = int(max(train_pairs[:, 0].max(), max(r[0] for r in rows))) + 1
    n_items = int(max(train_pairs[:, 1].max(), max(max(r[1:]) for r in rows))) + 1
    negs: list[list[int]] = [[] for _ in range(n_users)]
    for r in rows:
        negs[r[0]] = r[2:]
    split = predefined_split(
        Interactions.from_arrays(train_pairs[:, 0], train_pairs[:, 1], shape=(n_users, n_items)),
        Interactions.from_arrays(
            np.array([r[0] for r in rows]), np.array([r[1] for r in rows]), shape=(n_users, n_items)
        ),
        test_negatives=negs,
    )
    report = audit_split(split)
    assert report.ok
    [issue] = report.issues
    assert issue.code == "negative_in_train" and issue.count == 1115
    with pytest.raises(LeakageError, match="negative_in_train: 1115"):
        audit_split(split, train_negatives="error")


@pytest.mark.paper_data("neumf-ml-1m")
def test_ncf_ml1m_negatives_listing_the_test_item_are_found(paper_data: Path) -> None:
    root = paper_data / "neumf-ml-1m"
    test = np.loadtxt(root / "ml-1m.test.rating", dtype=np.int64, delimiter="\t")
    negs = []
    for line in (root / "ml-1m.test.negative").read_text().splitlines():
        head, *rest = line.split("\t")
        user = int(head.strip("()").split(",")[0])
        assert user == len(negs)  # one line per user, in order
        negs.append([int(v) for v in rest])
    shape = (len(negs), 3706)
    split = predefined_split(
        Interactions.from_arrays(np.zeros(0), np.zeros(0), shape=shape),  # train file missing
        Interactions.from_arrays(test[:, 0], test[:, 1], shape=shape),
        test_negatives=negs,
    )
    err = failure(split)
    [issue] = [i for i in err.report.issues if i.severity == "error"]
    assert issue.code == "negative_is_positive" and issue.count == 156 and issue.users == 156
    # without the train file every test user is cold: counted and warned about
    [cold] = [i for i in err.report.issues if i.code == "cold_start_users"]
    assert cold.count == 6040 and "6040 of 6040 test users" in cold.message
    report = audit_split(split, positive_negatives="warn")
    assert report.ok and report.warnings[0].startswith("negative_is_positive: 156 test_negatives")
    assert report.stats["users_without_train"] == {"test": 6040}
