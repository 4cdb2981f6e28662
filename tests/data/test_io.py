"""Builders from frames and files, and the errors they raise on bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

from recforge.data.io import (
    DataFormatError,
    build_interactions,
    from_pandas,
    from_polars,
    read_csv,
    read_interactions,
    read_parquet,
)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def dense(x) -> np.ndarray:
    return x.matrix.toarray()


# ---------------------------------------------------------------- successful builds


def test_csv_maps_external_ids_and_keeps_side_arrays(tmp_path: Path) -> None:
    p = write(tmp_path, "r.csv", "user,item,rating,ts\n7,30,5,100\n3,30,2,101\n7,10,4,102\n")
    x = read_csv(p, "user", "item", "rating", "ts")
    assert x.user_ids.tolist() == [3, 7]
    assert x.item_ids.tolist() == [10, 30]
    np.testing.assert_array_equal(dense(x), [[0, 2], [4, 5]])
    # ratings / timestamps follow the CSR order (row 3: item 30; row 7: items 10, 30)
    assert x.ratings.tolist() == [2, 4, 5]
    assert x.timestamps.tolist() == [101, 102, 100]
    assert x.name == "r"


def test_implicit_stores_ones_but_keeps_ratings(tmp_path: Path) -> None:
    p = write(tmp_path, "r.csv", "u,i,r\n1,1,3\n2,1,5\n")
    x = read_csv(p, "u", "i", "r", implicit=True)
    assert x.matrix.data.tolist() == [1.0, 1.0]
    assert x.ratings.tolist() == [3.0, 5.0]


def test_str_ids_keep_leading_zeros(tmp_path: Path) -> None:
    p = write(tmp_path, "r.tsv", "u\ti\n007\ta\n7\tb\n")
    x = read_csv(p, "u", "i", id_type="str")
    assert x.user_ids.tolist() == ["007", "7"]
    assert x.item_ids.tolist() == ["a", "b"]


def test_headerless_multichar_separator(tmp_path: Path) -> None:
    p = write(tmp_path, "ratings.dat", "1::10::5::99\n2::10::3::98\n")
    x = read_csv(p, "u", "i", "r", "t", sep="::", header=False, names=["u", "i", "r", "t"])
    assert x.shape == (2, 1)
    assert x.ratings.tolist() == [5.0, 3.0]


def test_crlf_and_trailing_blank_lines_are_accepted(tmp_path: Path) -> None:
    p = tmp_path / "r.tsv"
    p.write_bytes(b"u\ti\r\n1\t2\r\n3\t4\r\n\r\n\n")
    assert read_csv(p, "u", "i").nnz == 2


def test_duplicates_last_keeps_latest_timestamp(tmp_path: Path) -> None:
    p = write(tmp_path, "r.csv", "u,i,r,t\n1,1,5,200\n1,1,2,100\n1,2,4,1\n")
    x = read_csv(p, "u", "i", "r", "t", duplicates="last")
    assert x.nnz == 2
    assert x.ratings.tolist() == [5.0, 4.0]  # the t=200 rating wins although it comes first


def test_pandas_polars_parquet_agree(tmp_path: Path) -> None:
    df = pd.DataFrame({"u": [5, 1, 5], "i": [2, 2, 9], "r": [1.0, 2.0, 3.0]})
    a = from_pandas(df, "u", "i", "r")
    b = from_polars(pl.from_pandas(df), "u", "i", "r")
    df.to_parquet(tmp_path / "x.parquet")
    c = read_parquet(tmp_path / "x.parquet", "u", "i", "r")
    d = read_interactions(tmp_path / "x.parquet", "u", "i", rating_col="r")
    assert a.checksum() == b.checksum() == c.checksum() == d.checksum()
    assert c.user_ids.tolist() == [1, 5]


def test_parquet_datetime_timestamps_become_unix_seconds(tmp_path: Path) -> None:
    when = pd.to_datetime(["1970-01-01 00:00:10", "2001-09-09 00:00:00"])
    df = pd.DataFrame({"u": [1, 2], "i": [1, 1], "t": when})
    df.to_parquet(tmp_path / "x.parquet")
    x = read_parquet(tmp_path / "x.parquet", "u", "i", timestamp_col="t")
    assert x.timestamps.tolist() == [10, 1_000_000_000 - 6_400]  # 2001-09-09 00:00 UTC


def test_build_interactions_with_declared_universe() -> None:
    x = build_interactions(np.array([1, 3]), np.array([2, 2]), user_ids=np.arange(1, 5),
                           item_ids=np.arange(1, 4))
    assert x.shape == (4, 3)
    assert x.user_counts().tolist() == [1, 0, 1, 0]
    with pytest.raises(DataFormatError, match="outside the declared universe") as e:
        build_interactions(np.array([1, 9]), np.array([1, 1]), user_ids=np.arange(1, 5),
                           source="f.txt", lines=np.array([4, 7]))
    assert e.value.line == 7 and e.value.file == "f.txt"


# ---------------------------------------------------------------- errors


def test_missing_column_lists_columns_found(tmp_path: Path) -> None:
    p = write(tmp_path, "r.csv", "usr,item\n1,2\n")
    with pytest.raises(DataFormatError) as e:
        read_csv(p, "user", "item")
    assert e.value.column == "user"
    assert e.value.file == str(p)
    assert "columns found: ['usr', 'item']" in str(e.value)


def test_wrong_separator_is_named(tmp_path: Path) -> None:
    p = write(tmp_path, "r.csv", "user;item;rating\n1;2;3\n")
    with pytest.raises(DataFormatError, match=r"seems to use ';'.*sep=';'") as e:
        read_csv(p, "user", "item", "rating")
    assert e.value.line == 1


def test_tab_file_read_as_csv_is_detected(tmp_path: Path) -> None:
    p = write(tmp_path, "r.csv", "user\titem\n1\t2\n")
    with pytest.raises(DataFormatError, match=r"seems to use '\\t'"):
        read_csv(p, "user", "item")


@pytest.mark.parametrize(
    ("text", "line", "pattern"),
    [
        ("user,item\n1,2\n3,4,5\n", 3, "3 field"),
        ("user,item\n1,2\n5,6\n3\n", 4, "1 field"),
        ("user,item\n1,2\n\n3,4\n", 3, "empty line"),
    ],
)
def test_ragged_lines_name_the_line(tmp_path: Path, text: str, line: int, pattern: str) -> None:
    p = write(tmp_path, "r.csv", text)
    with pytest.raises(DataFormatError, match=pattern) as e:
        read_csv(p, "user", "item")
    assert e.value.line == line
    assert f"line {line}" in str(e.value)


def test_non_numeric_id_names_line_and_column(tmp_path: Path) -> None:
    p = write(tmp_path, "r.csv", "user,item\n1,2\n3,4\nabc,4\n")
    with pytest.raises(DataFormatError, match=r"'abc'.*id_type='str'") as e:
        read_csv(p, "user", "item")
    assert (e.value.line, e.value.column) == (4, "user")


def test_non_numeric_rating_and_fractional_id(tmp_path: Path) -> None:
    p = write(tmp_path, "r.csv", "u,i,r\n1,2,x\n")
    with pytest.raises(DataFormatError, match="ratings must be numbers") as e:
        read_csv(p, "u", "i", "r")
    assert (e.value.line, e.value.column) == (2, "r")
    with pytest.raises(DataFormatError, match=r"1\.5") as e2:
        from_pandas(pd.DataFrame({"u": [1, 2], "i": [1.0, 1.5]}), "u", "i")
    assert (e2.value.row, e2.value.column) == (1, "i")


def test_empty_value_and_nan(tmp_path: Path) -> None:
    p = write(tmp_path, "r.csv", "u,i\n1,2\n,4\n")
    with pytest.raises(DataFormatError, match="empty or missing") as e:
        read_csv(p, "u", "i")
    assert (e.value.line, e.value.column) == (3, "u")
    with pytest.raises(DataFormatError, match="empty or missing") as e2:
        from_pandas(pd.DataFrame({"u": [1, 2], "i": [1, 2], "r": [1.0, np.nan]}), "u", "i", "r")
    assert (e2.value.row, e2.value.column) == (1, "r")
    with pytest.raises(DataFormatError, match="empty or missing"):
        read_csv(write(tmp_path, "s.csv", "u,i\n1, \n"), "u", "i", id_type="str")


def test_empty_inputs(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="file is empty"):
        read_csv(write(tmp_path, "e.csv", "\n  \n"), "u", "i")
    with pytest.raises(DataFormatError, match="no data rows"):
        read_csv(write(tmp_path, "h.csv", "u,i\n"), "u", "i")
    with pytest.raises(DataFormatError, match="zero rows"):
        from_pandas(pd.DataFrame({"u": [], "i": []}), "u", "i")
    (tmp_path / "e.parquet").write_bytes(b"")
    with pytest.raises(DataFormatError, match="file is empty"):
        read_parquet(tmp_path / "e.parquet", "u", "i")


def test_duplicate_pair_names_both_lines(tmp_path: Path) -> None:
    p = write(tmp_path, "r.csv", "u,i\n1,2\n3,4\n5,6\n3,4\n")
    with pytest.raises(DataFormatError, match=r"\(3, 4\), first seen at line 3") as e:
        read_csv(p, "u", "i")
    assert e.value.line == 5


def test_quoted_file_with_short_line(tmp_path: Path) -> None:
    p = write(tmp_path, "q.csv", 'u,i\n"1","2"\n"3"\n')
    with pytest.raises(DataFormatError, match="empty or missing") as e:
        read_csv(p, "u", "i")
    assert e.value.line == 3


def test_parquet_errors(tmp_path: Path) -> None:
    pd.DataFrame({"a": [1], "b": [2]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(DataFormatError, match=r"columns found: \['a', 'b'\]"):
        read_parquet(tmp_path / "x.parquet", "u", "i")
    (tmp_path / "bad.parquet").write_text("u,i\n1,2\n")
    with pytest.raises(DataFormatError, match="not a readable parquet file"):
        read_parquet(tmp_path / "bad.parquet", "u", "i")


def test_polars_missing_column_and_bad_options() -> None:
    df = pl.DataFrame({"u": [1], "i": [2]})
    with pytest.raises(DataFormatError, match="column 'x' not found"):
        from_polars(df, "u", "x")
    with pytest.raises(ValueError, match="id_type"):
        from_polars(df, "u", "i", id_type="float")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="duplicates"):
        from_polars(df, "u", "i", duplicates="first")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="distinct"):
        from_polars(df, "u", "u")
