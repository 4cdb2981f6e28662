"""The NCF ML-1M train file rebuilt from ratings.dat, on a small synthetic ratings.dat made to the
same rules as the real one (UserID::MovieID::Rating::Timestamp, users 1..U, each user's lines
together, MovieIDs in no particular order)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from standins import spec_with

from recforge.data import registry
from recforge.data.catalog.grouplens import read_ml1m_ratings
from recforge.data.catalog.ncf import RebuildError, rebuild_ml1m_train, write_rating_file
from recforge.data.registry import load_dataset


def synthetic_ratings(n_users: int = 40, seed: int = 3) -> list[tuple[int, int, int, int]]:
    rng = np.random.default_rng(seed)
    movies = rng.choice(np.arange(1, 400), size=60, replace=False)  # ids with gaps
    rows = []
    for user in range(1, n_users + 1):
        k = int(rng.integers(3, 12))
        picked = rng.choice(movies, size=k, replace=False)
        stamps = 978_300_000 + rng.choice(10_000, size=k, replace=False)
        for m, t in zip(picked.tolist(), stamps.tolist(), strict=True):
            rows.append((user, m, int(rng.integers(1, 6)), t))
    return rows


def by_documented_rule(rows: list[tuple[int, int, int, int]], *, sorted_items: bool = False):
    """(test lines, train lines) as NCF made them: user = UserID - 1, item = order of first
    appearance of the MovieID (or, the wrong rule, the rank of the MovieID), test = each
    user's latest rating."""
    if sorted_items:
        index = {m: k for k, m in enumerate(sorted({r[1] for r in rows}))}
    else:
        index = {}
        for r in rows:
            index.setdefault(r[1], len(index))
    latest: dict[int, tuple[int, int, int, int]] = {}
    for r in rows:
        if r[0] not in latest or r[3] > latest[r[0]][3]:
            latest[r[0]] = r
    test = [(u - 1, index[m], v, t) for u, (_, m, v, t) in sorted(latest.items())]
    test_set = set(latest.values())
    train = [(u - 1, index[m], v, t) for (u, m, v, t) in rows if (u, m, v, t) not in test_set]
    return test, train


def write_dat(rows: list[tuple[int, int, int, int]], path: Path) -> Path:
    path.write_text("".join(f"{u}::{m}::{v}::{t}\n" for u, m, v, t in rows))
    return path


def write_tsv(rows: list[tuple[int, int, int, int]], path: Path) -> Path:
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows))
    return path


def test_rebuild_follows_the_documented_rule(tmp_path: Path) -> None:
    rows = synthetic_ratings()
    test, train = by_documented_rule(rows)
    got = rebuild_ml1m_train(read_ml1m_ratings(write_dat(rows, tmp_path / "ratings.dat")),
                             np.array(test))
    assert got.tolist() == [list(r) for r in train]  # same rows, in ratings.dat order
    assert len(got) == len(rows) - len(test)
    write_rating_file(got, tmp_path / "out.rating")
    assert (tmp_path / "out.rating").read_text() == write_tsv(train, tmp_path / "t").read_text()


def test_self_check_fails_on_a_wrong_rule(tmp_path: Path) -> None:
    """A test file made with items numbered by MovieID rank, not first appearance."""
    rows = synthetic_ratings()
    wrong_test, _ = by_documented_rule(rows, sorted_items=True)
    ratings = read_ml1m_ratings(write_dat(rows, tmp_path / "ratings.dat"))
    with pytest.raises(RebuildError, match="under the rule user = UserID - 1") as e:
        rebuild_ml1m_train(ratings, np.array(wrong_test), test_file="ml-1m.test.rating")
    assert e.value.line is not None and e.value.line >= 1
    assert "ml-1m.test.rating" in str(e.value)


def test_self_check_fails_when_the_test_item_is_not_the_latest(tmp_path: Path) -> None:
    rows = synthetic_ratings()
    test, _ = by_documented_rule(rows)
    # user 0's test line replaced by another of its ratings (not the latest)
    index: dict[int, int] = {}
    for r in rows:
        index.setdefault(r[1], len(index))
    other = next(r for r in rows if r[0] == 1 and (0, index[r[1]], r[2], r[3]) != test[0])
    bad = [(0, index[other[1]], other[2], other[3]), *test[1:]]
    with pytest.raises(RebuildError, match="not the user's latest rating") as e:
        rebuild_ml1m_train(read_ml1m_ratings(write_dat(rows, tmp_path / "r.dat")),
                           np.array(bad))
    assert e.value.line == 1
    # a changed rating value is named too
    changed = [(test[0][0], test[0][1], test[0][2] % 5 + 1, test[0][3]), *test[1:]]
    with pytest.raises(RebuildError, match="has rating"):
        rebuild_ml1m_train(read_ml1m_ratings(tmp_path / "r.dat"), np.array(changed))


def standin_release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                    downloaded_train: list[tuple[int, int, int, int]] | None):
    """A mirror with a synthetic ratings.dat and the NCF test files made from it by the
    documented rule (and, if given, a "downloaded" train file); the registry's specs point
    at the stand-ins' sha256. Returns (test rows, train rows by the rule, train file bytes)."""
    rows = synthetic_ratings()
    test, train = by_documented_rule(rows)
    mirror = tmp_path / "mirror"
    (mirror / "movielens-1m").mkdir(parents=True)
    (mirror / "neumf-ml-1m").mkdir()
    dat = write_dat(rows, mirror / "movielens-1m" / "ratings.dat").read_bytes()
    test_b = write_tsv(test, mirror / "neumf-ml-1m" / "ml-1m.test.rating").read_bytes()
    neg_b = "".join(f"({u},{i})\t" + "\t".join(str((i + k) % 60) for k in range(1, 4)) + "\n"
                    for u, i, _, _ in test).encode()
    (mirror / "neumf-ml-1m" / "ml-1m.test.negative").write_bytes(neg_b)
    train_b = write_tsv(downloaded_train if downloaded_train is not None else train,
                        tmp_path / "train.rating").read_bytes()
    if downloaded_train is not None:
        (mirror / "neumf-ml-1m" / "ml-1m.train.rating").write_bytes(train_b)
    monkeypatch.setenv("RECFORGE_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("RECFORGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(registry._REGISTRY, "movielens-1m",
                        spec_with("movielens-1m", {"ratings.dat": dat}))
    files = {"ml-1m.test.rating": test_b, "ml-1m.test.negative": neg_b,
             "ml-1m.train.rating": train_b}
    monkeypatch.setitem(registry._REGISTRY, "neumf-ml-1m", spec_with("neumf-ml-1m", files))
    return test, train, train_b


def test_loader_rebuilds_and_checks_against_the_downloaded_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    test, train, train_b = standin_release(tmp_path, monkeypatch, None)
    rebuilt = load_dataset("neumf-ml-1m", train="rebuild")
    assert rebuilt.params["rebuild_checked_against_download"] is False
    assert rebuilt.train.nnz == len(train) and rebuilt.test.nnz == len(test)
    assert set(rebuilt.train.matrix.data.tolist()) == {1.0}  # implicit, ratings kept aside
    # once the downloaded train file is at hand, the rebuild is compared with it
    (tmp_path / "mirror" / "neumf-ml-1m" / "ml-1m.train.rating").write_bytes(train_b)
    downloaded = load_dataset("neumf-ml-1m")
    again = load_dataset("neumf-ml-1m", train="rebuild")
    assert again.params["rebuild_checked_against_download"] is True
    assert (again.train.matrix != downloaded.train.matrix).nnz == 0
    np.testing.assert_array_equal(np.sort(again.train.ratings), np.sort(downloaded.train.ratings))
    assert again.fingerprint() == downloaded.fingerprint()


def test_loader_refuses_a_rebuild_that_differs_from_the_download(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = synthetic_ratings()
    _, train = by_documented_rule(rows)
    standin_release(tmp_path, monkeypatch, train[1:])
    with pytest.raises(RebuildError, match="1 row\\(s\\) only in the rebuild, 0 only in the"):
        load_dataset("neumf-ml-1m", train="rebuild")
