"""Loaders of the registered datasets, checked against the counts in the data READMEs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from recforge.data.catalog import _parse as parse
from recforge.data.catalog import grouplens as ds
from recforge.data.download import DownloadError
from recforge.data.interactions import Interactions
from recforge.data.io import DataFormatError
from recforge.data.registry import DatasetUnavailableError, load_dataset
from recforge.data.split import Split


@pytest.fixture
def data(paper_data: Path) -> Path:
    """The mirror root; each test declares the datasets it reads (tests/conftest.py)."""
    return paper_data


def pairs(x: Interactions) -> set[tuple[int, int]]:
    u, i = x.to_arrays()
    return set(zip(x.user_ids[u].tolist(), x.item_ids[i].tolist(), strict=True))


def active_users(x: Interactions) -> int:
    return int((x.user_counts() > 0).sum())


# ---------------------------------------------------------------- MovieLens-100k / MCRec


@pytest.mark.paper_data("movielens-100k")
def test_movielens_100k(data: Path) -> None:
    x = load_dataset("movielens-100k")
    assert x.shape == (943, 1682) and x.nnz == 100_000
    assert x.name == "movielens-100k"
    assert x.user_ids[0] == 1 and x.item_ids[-1] == 1682
    assert np.bincount(x.ratings.astype(int))[1:].tolist() == [6110, 11370, 27145, 34174, 21201]
    assert x.timestamps is not None and x.timestamps.min() > 8e8
    np.testing.assert_array_equal(x.matrix.data, x.ratings)  # explicit by default
    assert set(load_dataset("movielens-100k", implicit=True).matrix.data.tolist()) == {1.0}


@pytest.mark.paper_data("movielens-100k")
def test_genre_icm_correct_and_bug(data: Path) -> None:
    good = load_dataset("movielens-100k").item_features
    bug = load_dataset("movielens-100k", genre_bug=True).item_features
    assert good.shape == (1682, 19) and bug.shape == (1682, 2)
    assert load_dataset("movielens-100k").item_feature_names.tolist() == list(ds.ML100K_GENRES)
    # Item 1 is Toy Story: Animation, Children's, Comedy.
    names = np.array(ds.ML100K_GENRES)
    assert names[good[0].indices].tolist() == ["Animation", "Children's", "Comedy"]
    ones = np.asarray(good.sum(axis=1)).ravel()
    np.testing.assert_array_equal(bug[:, 1].toarray().ravel(), ones)
    np.testing.assert_array_equal(bug[:, 0].toarray().ravel(), 19 - ones)
    genre_file = (data / "movielens-100k" / "u.genre").read_text().split()
    assert [g.split("|")[0] for g in genre_file] == list(ds.ML100K_GENRES)


@pytest.mark.paper_data("mcrec-ml-100k", "movielens-100k")
def test_mcrec_split(data: Path) -> None:
    s = load_dataset("mcrec-ml-100k")
    assert isinstance(s, Split) and s.method == "predefined"
    assert s.train.shape == s.test.shape == (943, 1682)
    assert s.train.nnz == 80_000 and active_users(s.train) == 943
    assert s.test.nnz == 20_000 and active_users(s.test) == 942
    assert int((s.train.item_counts() > 0).sum()) == 1657
    assert set(s.train.matrix.data.tolist()) == {1.0} == set(s.test.matrix.data.tolist())
    assert s.train.name == "mcrec-ml-100k:train"
    full = load_dataset("movielens-100k", with_genres=False)
    assert pairs(s.train) | pairs(s.test) == pairs(full)
    assert not pairs(s.train) & pairs(s.test)
    # train ratings equal the u.data ratings of the same pairs
    fr = dict(zip(zip(*[a.tolist() for a in full.to_arrays()], strict=True),
                  full.ratings.tolist(), strict=True))
    tu, ti = s.train.to_arrays()
    assert all(fr[(u, i)] == r for u, i, r in zip(tu.tolist(), ti.tolist(),
                                                   s.train.ratings.tolist(), strict=True))


@pytest.mark.paper_data("mcrec-ml-100k", "movielens-100k")
def test_mcrec_with_genres_aligns_items(data: Path) -> None:
    s = load_dataset("mcrec-ml-100k", with_genres=True, genre_bug=True)
    ml = load_dataset("movielens-100k", genre_bug=True)
    np.testing.assert_array_equal(s.train.item_ids, ml.item_ids)
    assert (s.train.item_features != ml.item_features).nnz == 0
    assert s.test.item_features is not None
    assert load_dataset("mcrec-ml-100k").train.item_features is None


# ---------------------------------------------------------------- ML-1M releases


@pytest.mark.paper_data("spectralcf-ml-1m")
def test_spectralcf(data: Path) -> None:
    s = load_dataset("spectralcf-ml-1m")
    assert s.train.shape == (6040, 3706)
    assert (s.train.nnz, active_users(s.train)) == (179_207, 6014)
    assert (s.test.nnz, active_users(s.test)) == (47_103, 5479)
    assert not pairs(s.train) & pairs(s.test)
    allx = load_dataset("spectralcf-ml-1m", part="all")
    assert allx.shape == (6040, 3706) and allx.nnz == 226_310
    assert pairs(allx) == pairs(s.train) | pairs(s.test)


@pytest.mark.paper_data("neumf-ml-1m")
def test_neumf(data: Path) -> None:
    # The train file is downloadable only (its copies are 20 MB): the mirror lacks it.
    with pytest.raises(DownloadError, match=r"ml-1m\.train\.rating: not found in the data mirror"):
        load_dataset("neumf-ml-1m")
    with pytest.raises(DownloadError, match=r"ratings\.dat: not found in the data mirror"):
        load_dataset("neumf-ml-1m", train="rebuild")
    s = load_dataset("neumf-ml-1m", part="test")
    assert s.train.shape == (6040, 3706) and s.train.nnz == 0
    assert s.test.nnz == 6040 and active_users(s.test) == 6040
    assert s.test.ratings is not None and s.test.timestamps is not None
    neg = s.test_negatives
    assert np.diff(neg.indptr).tolist() == [99] * 6040
    # user 0's test line is "0 25 5 978824351"
    assert s.test.matrix[0].indices.tolist() == [25]
    tu, ti = s.test.to_arrays()
    own = sum(int(i in set(neg.indices[neg.indptr[u]:neg.indptr[u + 1]].tolist()))
              for u, i in zip(tu.tolist(), ti.tolist(), strict=True))
    assert own == 156


@pytest.mark.paper_data("movielens-1m")
def test_movielens_1m_side_files(data: Path) -> None:
    with pytest.raises(DatasetUnavailableError, match=r"ratings\.dat"):
        load_dataset("movielens-1m")  # downloadable only: GroupLens' zip or a pinned blob
    movies = load_dataset("movielens-1m", part="movies")
    users = load_dataset("movielens-1m", part="users")
    assert isinstance(movies, pd.DataFrame) and len(movies) == 3883 and len(users) == 6040
    assert movies.iloc[0].tolist() == [1, "Toy Story (1995)", "Animation|Children's|Comedy"]


# ---------------------------------------------------------------- CiteULike-a


@pytest.mark.paper_data("cvae-citeulike-a")
@pytest.mark.parametrize(
    ("p", "train", "test", "test_users", "train_items"),
    [(1, 5_551, 199_435, 5551, 4327), (10, 55_510, 149_476, 5139, 11_949)],
)
def test_cvae(data: Path, p: int, train: int, test: int, test_users: int, train_items: int):
    s = load_dataset("cvae-citeulike-a", p=p)
    assert s.train.shape == (5551, 16980)
    assert (s.train.nnz, s.test.nnz) == (train, test)
    assert active_users(s.test) == test_users
    assert int((s.train.item_counts() > 0).sum()) == train_items
    assert s.params["p"] == p and s.train.name == f"cvae-citeulike-a[p={p}]:train"
    allx = load_dataset("cvae-citeulike-a", part="all")
    assert allx.nnz == 204_986
    assert (s.train.matrix + s.test.matrix != allx.matrix).nnz == 0


@pytest.mark.paper_data("cvae-citeulike-a", "citeulike-a-raw")
def test_cvae_tag_features(data: Path) -> None:
    s = load_dataset("cvae-citeulike-a", p=1, item_features="tags")
    assert s.train.item_features.shape == (16980, 46391)
    raw = load_dataset("citeulike-a-raw", part="item_tags")
    assert (raw != s.train.item_features).nnz == 0
    first = (data / "citeulike-a-raw" / "item-tag.dat").read_text().split("\n")[0].split()
    assert sorted(int(t) for t in first[1:]) == raw[0].indices.tolist()


@pytest.mark.paper_data("cmn-citeulike-a", "cvae-citeulike-a")
def test_cmn(data: Path) -> None:
    s = load_dataset("cmn-citeulike-a")
    assert s.train.shape == (5551, 16980)
    assert s.train.nnz == 199_435 and active_users(s.train) == 5551
    assert s.test.nnz == 5551 and active_users(s.test) == 5551
    neg = s.test_negatives
    assert neg.shape == (5551, 16980)
    assert np.diff(neg.indptr).tolist() == [100] * 5551
    users = np.repeat(np.arange(5551), 100)
    in_train = np.asarray(s.train.matrix[users, neg.indices]).ravel() > 0
    assert int(in_train.sum()) == 1115
    in_test = np.asarray(s.test.matrix[users, neg.indices]).ravel() > 0
    assert not in_test.any()
    cvae_all = load_dataset("cvae-citeulike-a", part="all")
    assert pairs(s.train) | pairs(s.test) == pairs(cvae_all)


@pytest.mark.paper_data("cmn-citeulike-a")
def test_cmn_npz_equals_tsv(data: Path) -> None:
    a = load_dataset("cmn-citeulike-a")
    b = load_dataset("cmn-citeulike-a", source="npz")
    assert a.fingerprint() == b.fingerprint()
    assert a.params["files"] != b.params["files"]


@pytest.mark.paper_data("citeulike-a-raw")
def test_citeulike_raw_parts(data: Path) -> None:
    cites = load_dataset("citeulike-a-raw", part="citations")
    assert isinstance(cites, sp.csr_matrix) and cites.shape == (16980, 16980)
    assert len(load_dataset("citeulike-a-raw", part="vocabulary")) == 8000
    assert len(load_dataset("citeulike-a-raw", part="tags")) == 46391


# ---------------------------------------------------------------- MCRec extras


@pytest.mark.paper_data("mcrec-lastfm", "mcrec-yelp")
def test_lastfm_and_yelp(data: Path) -> None:
    fm = load_dataset("mcrec-lastfm")
    assert (fm.nnz, active_users(fm), int((fm.item_counts() > 0).sum())) == (92_834, 1892, 17_632)
    assert fm.ratings.max() == 352_698
    yelp = load_dataset("mcrec-yelp", implicit=True)
    assert (yelp.nnz, active_users(yelp)) == (198_397, 16_239)
    assert int((yelp.item_counts() > 0).sum()) == 14_284
    assert set(np.unique(yelp.ratings).tolist()) <= {1, 2, 3, 4, 5}
    assert set(yelp.matrix.data.tolist()) == {1.0}


@pytest.mark.paper_data("spectralcf-ml-1m", "cvae-citeulike-a", "mcrec-ml-100k", "movielens-100k")
def test_loading_is_reproducible(data: Path) -> None:
    for name, opts in [("spectralcf-ml-1m", {}), ("cvae-citeulike-a", {"p": 10}),
                       ("mcrec-ml-100k", {"with_genres": True})]:
        assert load_dataset(name, **opts).fingerprint() == load_dataset(name, **opts).fingerprint()
    assert load_dataset("movielens-100k").checksum() == load_dataset("movielens-100k").checksum()


# ---------------------------------------------------------------- parsers (no data needed)


def test_ldac_count_mismatch_names_line(tmp_path: Path) -> None:
    p = tmp_path / "u.dat"
    p.write_text("2 5 6\n0\n3 1 2\n")
    with pytest.raises(DataFormatError, match="count field says 3 but 2 ids follow") as e:
        parse.ldac(p)
    assert e.value.line == 3
    p.write_text("2 5 6\n0\n1 1\n")
    rows, ids, lines, n = parse.ldac(p)
    assert rows.tolist() == [0, 0, 2] and ids.tolist() == [5, 6, 1] and n == 3
    assert lines.tolist() == [1, 1, 3]


def test_adjacency_errors(tmp_path: Path) -> None:
    p = tmp_path / "t.dat"
    p.write_text("1 2 3\n2 x\n")
    with pytest.raises(DataFormatError, match="'x'") as e:
        parse.adjacency(p, 1)
    assert (e.value.line, e.value.column) == (2, "field 2")
    p.write_text("1 2 3\n2 0\n")
    with pytest.raises(DataFormatError, match="item id 0 is below 1") as e:
        parse.adjacency(p, 1)
    assert e.value.line == 2
    p.write_text("")
    with pytest.raises(DataFormatError, match="file is empty"):
        parse.adjacency(p, 0)


def test_table_ragged_line(tmp_path: Path) -> None:
    p = tmp_path / "r.tsv"
    p.write_text("1\t2\t3\n4\t5\n")
    with pytest.raises(DataFormatError, match=r"2 field.*expected 3") as e:
        parse.table(p, 3)
    assert e.value.line == 2
    p.write_text("1\t2\t3\n4\t5\t6\n")
    assert parse.table(p, 3).tolist() == [[1, 2, 3], [4, 5, 6]]


def test_genre_icm_rejects_bad_lines(tmp_path: Path) -> None:
    p = tmp_path / "u.item"
    good = "1|T|d||u|" + "|".join(["0"] * 18 + ["1"])
    p.write_text(good + "\n2|T|d||u|0|1\n", encoding="latin-1")
    with pytest.raises(DataFormatError, match="expected 24") as e:
        ds.genre_icm(p, np.array([1, 2]))
    assert e.value.line == 2
    p.write_text(good + "\n", encoding="latin-1")
    m, names = ds.genre_icm(p, np.array([1, 2, 3]))
    assert m.shape == (3, 19) and m[0].indices.tolist() == [18] and m[1].nnz == 0
    assert names[18] == "Western"
