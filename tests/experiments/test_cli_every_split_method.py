"""Every split method through the CLI (``recforge split`` then ``evaluate --split-dir`` and
``evaluate --dataset``), on a small data file whose expected part sizes are computed here from
the methods' documented rules."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from recforge.cli.main import app
from recforge.data.split_methods import SPLIT_METHODS

N_USERS, N_ITEMS = 40, 30


@pytest.fixture(scope="module")
def data_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """user,item,rating,timestamp rows; users have 3..12 distinct items, distinct timestamps."""
    rng = np.random.default_rng(7)
    rows, counts = [], []
    t = 1_000
    for u in range(N_USERS):
        k = int(rng.integers(3, 13))
        counts.append(k)
        for i in rng.choice(N_ITEMS, size=k, replace=False):
            t += int(rng.integers(1, 50))
            rows.append(f"{u},{int(i)},{int(rng.integers(1, 6))},{t}")
    path = tmp_path_factory.mktemp("splits") / "data.csv"
    path.write_text("user,item,rating,timestamp\n" + "\n".join(rows) + "\n")
    return path, np.asarray(counts)


def _split(path: Path, out: Path, method: str, *params: str) -> dict:  # type: ignore[type-arg]
    args = ["split", str(path), "--method", method, "--rating-col", "rating",
            "--timestamp-col", "timestamp", "--seed", "1", "--out", str(out), "--json"]
    for p in params:
        args += ["-p", p]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    payload = json.loads(res.stdout)
    assert payload["audit"]["ok"] is True, payload["audit"]
    return payload["split"]  # type: ignore[no-any-return]


def _evaluate_dir(out: Path) -> dict:  # type: ignore[type-arg]
    res = CliRunner().invoke(app, ["evaluate", "TopPopular", "--split-dir", str(out),
                                   "--cutoffs", "5", "--metrics", "recall", "--json"])
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)  # type: ignore[no-any-return]


CASES = {
    "per_user_holdout": ("test_fraction=0.25",),
    "global_holdout": ("test_fraction=0.25",),
    "leave_one_out": ("mode=latest",),
    "temporal": ("test_fraction=0.25",),
    "held_out_users": ("n_test_users=8", "foldin_fraction=0.5", "min_interactions=3",
                       "restrict_items_to_train=false"),
}


def test_the_cases_cover_every_method_a_data_file_can_use() -> None:
    # predefined needs a dataset with its own parts (test_cli_lab reads mcrec-ml-100k's);
    # mult_vae's CLI run is in tests/data/test_mult_vae_split.py.
    assert set(CASES) | {"predefined", "mult_vae"} == set(SPLIT_METHODS)


@pytest.mark.parametrize("method", list(CASES))
def test_split_method_through_the_cli(
    method: str, data_file: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    path, counts = data_file
    nnz = int(counts.sum())
    out = tmp_path / method
    split = _split(path, out, method, *CASES[method])
    test, train = split["test"]["interactions"], split["train"]["interactions"]
    if method == "per_user_holdout":  # train keeps round(n * 0.75) of each user's n
        kept = np.array([round(n * 0.75) for n in counts])
        assert (train, test) == (int(kept.sum()), nnz - int(kept.sum()))
    elif method == "global_holdout":  # exact sampling: round(nnz * 0.75) stay in train
        assert (train, test) == (round(nnz * 0.75), nnz - round(nnz * 0.75))
    elif method == "leave_one_out":  # one per user with >= 2 interactions (all here)
        assert (train, test) == (nnz - N_USERS, N_USERS)
        assert split["test"]["users"] == N_USERS
    elif method == "temporal":  # the latest quarter (ties at the cut-off go to test)
        assert test >= round(nnz * 0.25) and train + test == nnz
    else:  # held_out_users: 8 users leave train; half of each one's items fold in
        assert split["test"]["users"] == 8
        assert split["test_profiles"]["users"] == 8
        assert test + split["test_profiles"]["interactions"] + train == nnz
    ev = _evaluate_dir(out)
    assert ev["meta"]["split_fingerprint"] == split["fingerprint"]
    assert 0.0 <= ev["summary"]["RECALL@5"] <= 1.0

    # evaluate --dataset makes the same split from the same file, method, params and seed.
    args = ["evaluate", "TopPopular", "--dataset", str(path), "--method", method,
            "--rating-col", "rating", "--timestamp-col", "timestamp", "--seed", "1",
            "--cutoffs", "5", "--metrics", "recall", "--json"]
    for p in CASES[method]:
        args += ["--split-param", p]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    direct = json.loads(res.stdout)
    assert direct["meta"]["split_fingerprint"] == split["fingerprint"]
    assert direct["summary"] == ev["summary"]


def test_temporal_split_puts_the_latest_interactions_in_test(
    data_file: tuple[Path, np.ndarray], tmp_path: Path
) -> None:
    from recforge.data.split_io import load_split

    path, _ = data_file
    out = tmp_path / "temporal"
    _split(path, out, "temporal", "test_fraction=0.25")
    s = load_split(out)
    assert s.train.timestamps is not None and s.test.timestamps is not None
    assert s.train.timestamps.max() <= s.test.timestamps.min()
