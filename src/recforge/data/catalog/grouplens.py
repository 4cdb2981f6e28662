"""GroupLens' MovieLens releases: 100K, 1M and 20M (files.grouplens.org, md5-checked zips).

MovieLens-100k and -1M files are also pinned to repository copies with known sha256 / git blob
ids; a release archive is tried first (one download gives every member) and a member that does
not match its own identifier falls back to the pinned copy. MovieLens-20M is only in its zip,
verified by the md5 GroupLens publishes.
"""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from recforge.data.catalog._parse import choice, read_lines, table, universe
from recforge.data.catalog._sources import (
    GROUPLENS,
    GROUPLENS_TERMS,
    PAPER_REPO,
    sha_files,
)
from recforge.data.dataset_spec import ArchiveSpec, DatasetSpec, Fetcher, FileSpec
from recforge.data.interactions import Interactions
from recforge.data.io import DataFormatError, build_interactions

# pandas is imported where it is used: `import recforge.data` stays light.
if TYPE_CHECKING:
    import pandas as pd

__all__ = ["DATASETS", "ML100K_GENRES", "genre_icm", "read_ml1m_ratings"]

_CLASNAKE = (
    "https://raw.githubusercontent.com/clasnake/recommender/"
    "5f3f5df795b04d680d5f886ee6e81c023dcd598a/ml-100k/"
)
_RI_REC = (
    "https://raw.githubusercontent.com/caiopinheiro/RI_Recommendation/"
    "24726694bba28989bf6fd7b1b0ec46d75d4835fb/ml-1m/"
)

#: The 19 genre flags of MovieLens-100k ``u.item``, in file order (``u.genre``).
ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
)



# ---------------------------------------------------------------------------- MovieLens-100k


def genre_icm(
    path: Path, item_ids: np.ndarray, *, bug: bool = False
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Genre item-content matrix from ``u.item``, rows aligned with ``item_ids``.

    ``bug=False``: items x 19 one-hot genre flags. ``bug=True``: the RecSys'19 code's ICM,
    which used each flag *value* (0/1) as the column id, giving items x 2 with the number of
    0-flags in column 0 and of 1-flags in column 1. Items absent from ``u.item`` get empty rows.
    """
    text = path.read_bytes().decode("latin-1")
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    while lines and not lines[-1].strip():
        lines.pop()
    if not lines:
        raise DataFormatError("file is empty", file=path)
    ids = np.empty(len(lines), dtype=np.int64)
    flags = np.empty((len(lines), len(ML100K_GENRES)), dtype=np.int64)
    for n, line in enumerate(lines):
        f = line.split("|")
        if len(f) != 5 + len(ML100K_GENRES):
            raise DataFormatError(
                f"{len(f)} '|'-separated fields, expected 24 "
                "(id|title|release date|video release date|IMDb URL|19 genre flags)",
                file=path,
                line=n + 1,
            )
        try:
            ids[n] = int(f[0])
            flags[n] = [int(v) for v in f[5:]]
        except ValueError:
            raise DataFormatError("non-integer movie id or genre flag", file=path,
                                  line=n + 1) from None
        if not np.isin(flags[n], (0, 1)).all():
            raise DataFormatError("genre flags must be 0 or 1", file=path, line=n + 1)
    pos = np.searchsorted(item_ids, ids)
    pos_c = np.minimum(pos, len(item_ids) - 1)
    bad = np.flatnonzero(item_ids[pos_c] != ids)
    if bad.size:
        k = int(bad[0])
        raise DataFormatError(
            f"movie id {int(ids[k])} is not in the item id space ({len(item_ids)} items)",
            file=path,
            line=k + 1,
        )
    n_items = len(item_ids)
    if bug:
        rows = np.repeat(pos_c, flags.shape[1])
        cols = flags.ravel()
        m = sp.csr_matrix(
            (np.ones(rows.size, dtype=np.float32), (rows, cols)), shape=(n_items, 2)
        )
        m.sum_duplicates()
        names = np.array(["flag=0", "flag=1"])
    else:
        r, c = np.nonzero(flags)
        m = sp.csr_matrix(
            (np.ones(r.size, dtype=np.float32), (pos_c[r], c)),
            shape=(n_items, len(ML100K_GENRES)),
        )
        names = np.array(ML100K_GENRES)
    m.sort_indices()
    return m, names


def _load_ml100k(
    fetch: Fetcher, *, implicit: bool = False, with_genres: bool = True, genre_bug: bool = False
) -> Interactions:
    path = fetch("movielens-100k", "u.data")
    t = table(path, 4)
    uids = universe(1, 943, t[:, 0])
    iids = universe(1, 1682, t[:, 1])
    x = build_interactions(
        t[:, 0], t[:, 1], ratings=t[:, 2], timestamps=t[:, 3], user_ids=uids, item_ids=iids,
        implicit=implicit, name="movielens-100k", source=path, first_line=1,
    )
    if with_genres:
        icm, names = genre_icm(fetch("movielens-100k", "u.item"), x.item_ids, bug=genre_bug)
        x = replace(x, item_features=icm, item_feature_names=names)
    return x



# ---------------------------------------------------------------------------- MovieLens-1M


def read_ml1m_ratings(path: Path) -> np.ndarray:
    """``UserID::MovieID::Rating::Timestamp`` lines as an int64 array (n, 4), file order."""
    import pandas as pd

    raw = path.read_bytes()
    if not raw.strip():
        raise DataFormatError("file is empty", file=path)
    try:
        df = pd.read_csv(io.BytesIO(raw.replace(b"::", b"\t")), sep="\t", header=None,
                         dtype=np.int64, engine="c")
        if df.shape[1] == 4:
            return df.to_numpy()
    except (ValueError, pd.errors.ParserError):
        pass  # the slow path below names the offending line
    for n, line in enumerate(read_lines(path)):
        fields = line.split(b"::")
        if len(fields) != 4:
            raise DataFormatError(f"{len(fields)} '::'-separated fields, expected 4 "
                                  "(UserID::MovieID::Rating::Timestamp)", file=path, line=n + 1)
        for j, tok in enumerate(fields):
            try:
                int(tok)
            except ValueError:
                raise DataFormatError(f"expected an integer, found {tok.decode('latin-1')!r}",
                                      file=path, line=n + 1, column=f"field {j + 1}") from None
    raise DataFormatError("could not parse the ratings", file=path)


def _load_ml1m(fetch: Fetcher, *, part: str | None = None,
               implicit: bool = False) -> Interactions | pd.DataFrame:
    choice("part", part, (None, "movies", "users"))
    if part is not None:
        return _ml1m_side(fetch, part)
    path = fetch("movielens-1m", "ratings.dat")
    t = read_ml1m_ratings(path)
    # Users 1..6040 as documented; items = the 3,706 MovieIDs that have a rating (the README's
    # 1..3952 range has ids without any movie, which would only add empty columns).
    return build_interactions(
        t[:, 0], t[:, 1], ratings=t[:, 2], timestamps=t[:, 3],
        user_ids=universe(1, 6040, t[:, 0]), item_ids=np.unique(t[:, 1]),
        implicit=implicit, name="movielens-1m", source=path, first_line=1,
    )


def _ml1m_side(fetch: Fetcher, part: str) -> pd.DataFrame:
    if part == "movies":
        path, cols = fetch("movielens-1m", "movies.dat"), ["movie_id", "title", "genres"]
    else:
        path = fetch("movielens-1m", "users.dat")
        cols = ["user_id", "gender", "age", "occupation", "zip"]
    text = path.read_bytes().decode("latin-1")
    rows = [ln.rstrip("\r").split("::") for ln in text.split("\n") if ln.strip()]
    for n, r in enumerate(rows):
        if len(r) != len(cols):
            raise DataFormatError(
                f"{len(r)} '::'-separated fields, expected {len(cols)}", file=path, line=n + 1
            )
    import pandas as pd

    df = pd.DataFrame(rows, columns=cols)
    for c in ("movie_id", "user_id", "age", "occupation"):
        if c in df:
            df[c] = df[c].astype(np.int64)
    return df



# ---------------------------------------------------------------------------- MovieLens-20M


def _load_ml20m(fetch: Fetcher, *, part: str | None = None,
                implicit: bool = False) -> Interactions | pd.DataFrame:
    import pandas as pd

    choice("part", part, (None, "movies"))
    if part == "movies":
        return pd.read_csv(fetch("movielens-20m", "movies.csv"))
    path = fetch("movielens-20m", "ratings.csv")
    cols = ["userId", "movieId", "rating", "timestamp"]
    try:
        df = pd.read_csv(path, dtype={"userId": np.int64, "movieId": np.int64,
                                      "rating": np.float32, "timestamp": np.int64},
                         engine="c")
    except (ValueError, pd.errors.ParserError) as exc:
        raise DataFormatError(f"not a userId,movieId,rating,timestamp CSV ({exc})",
                              file=path) from None
    if list(df.columns) != cols:
        raise DataFormatError(f"header {list(df.columns)}, expected {cols}", file=path, line=1)
    users = df["userId"].to_numpy()
    items = df["movieId"].to_numpy()
    return build_interactions(
        users, items, ratings=df["rating"].to_numpy(), timestamps=df["timestamp"].to_numpy(),
        user_ids=np.unique(users), item_ids=np.unique(items), implicit=implicit,
        name="movielens-20m", source=path, first_line=2,
    )


# ---------------------------------------------------------------------------- specs

_ML100K_ZIP = ArchiveSpec(filename="ml-100k.zip", url=GROUPLENS + "ml-100k.zip",
                          md5="0e33842e24a9c977be4e0107933c0723")
_ML1M_ZIP = ArchiveSpec(filename="ml-1m.zip", url=GROUPLENS + "ml-1m.zip",
                        md5="c4d9eecfca2ab87c1945afe126590906")
_ML20M_ZIP = ArchiveSpec(filename="ml-20m.zip", url=GROUPLENS + "ml-20m.zip",
                         md5="cd245b17a1ae2cc31bb14903e1204af3")


def _members(archive: ArchiveSpec, folder: str,
             files: tuple[FileSpec, ...]) -> tuple[FileSpec, ...]:
    return tuple(
        f.model_copy(update={"archive": archive.filename, "member": f"{folder}/{f.filename}"})
        for f in files
    )


_ML100K = DatasetSpec(
    name="movielens-100k",
    description="MovieLens 100K raw ratings (943 users, 1,682 items, 100,000 ratings 1-5 with "
    "timestamps) and the 19-genre item-content matrix from u.item.",
    source="GroupLens ml-100k release (ml-100k.zip, md5 published by GroupLens); files also "
    "from files.grouplens.org/datasets/movielens/ml-100k/ and github.com/clasnake/recommender "
    "@ 5f3f5df",
    licence=GROUPLENS_TERMS,
    paper_tables=("3",),
    options={
        "implicit": "bool = False; True stores 1.0 (ratings stay in .ratings)",
        "with_genres": "bool = True; attach the genre ICM as item_features",
        "genre_bug": "bool = False; True builds the paper's buggy 2-column ICM",
    },
    returns="Interactions (943 x 1,682; ratings, timestamps, item_features)",
    archives=(_ML100K_ZIP,),
    files=_members(_ML100K_ZIP, "ml-100k", tuple(
        sha_files(GROUPLENS + "ml-100k/" if f in ("u.data", "u.item") else _CLASNAKE,
                  [(f, n, h)])[0]
        for f, n, h in [
            ("README", 6401,
             "b2f69dd0cab50c2b976da7c6113f267169cf0b35ade48de35fe75ed1b81c0f28"),
            ("u.data", 1979173,
             "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),
            ("u.genre", 202,
             "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb"),
            ("u.info", 36,
             "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b"),
            ("u.item", 236344,
             "6dd287831559152bea892eb27694a492ff14926ac5f7a16e5f8c4968e6fe13c3"),
            ("u.occupation", 193,
             "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d"),
            ("u.user", 22628,
             "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c"),
        ]
    )),
    loader=_load_ml100k,
)

_ML1M = DatasetSpec(
    name="movielens-1m",
    description="MovieLens 1M: 1,000,209 ratings 1-5 with timestamps of 6,040 users on 3,706 "
    "movies (ratings.dat), plus movies.dat and users.dat.",
    source="GroupLens ml-1m release (ml-1m.zip, md5 published by GroupLens); ratings.dat also "
    "from github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation @ f5618c6 (git blob), side "
    "files from github.com/caiopinheiro/RI_Recommendation @ 2472669",
    licence=GROUPLENS_TERMS,
    paper_tables=("6", "7"),
    options={
        "part": "None (ratings as Interactions), 'movies' or 'users' (pandas DataFrame)",
        "implicit": "bool = False; True stores 1.0 (ratings stay in .ratings)",
    },
    returns="Interactions (6,040 x 3,706; ratings, timestamps) or pandas.DataFrame",
    archives=(_ML1M_ZIP,),
    files=_members(_ML1M_ZIP, "ml-1m", (
        *sha_files(_RI_REC, [
            ("README", 5577,
             "2d5ddce86ccbd247207456165827b4b9ddf27282bca93807d4c763e28414f133"),
            ("movies.dat", 171308,
             "0140fc2356357c1a851d0f52e893a1e4d3696df632c4141cea8d5bc3d621f0b9"),
            ("users.dat", 134368,
             "1dc3a95300cb19f7c10e027daf29b8cdf1d908dab65b5edfb45950aa389a10a3"),
        ]),
        FileSpec(filename="ratings.dat", git_blob="77a7c4b150f588c23bb9e1f068aa996c0b413695",
                 url=PAPER_REPO + "Conferences/IJCAI/CoupledCF_original/ml-1m/ratings.dat"),
    )),
    loader=_load_ml1m,
)

_ML20M = DatasetSpec(
    name="movielens-20m",
    description="MovieLens 20M: 20,000,263 ratings 0.5-5 with timestamps of 138,493 users on "
    "26,744 movies (ratings.csv), plus movies.csv. Table 8 uses it through the 'mult_vae' "
    "split (Mult-VAE preprocessing).",
    source="GroupLens ml-20m release (ml-20m.zip, md5 published by GroupLens)",
    licence=GROUPLENS_TERMS,
    paper_tables=("8",),
    options={
        "part": "None (ratings as Interactions) or 'movies' (pandas DataFrame)",
        "implicit": "bool = False; True stores 1.0 (ratings stay in .ratings)",
    },
    returns="Interactions (138,493 x 26,744; ratings, timestamps) or pandas.DataFrame",
    archives=(_ML20M_ZIP,),
    files=(
        FileSpec(filename="ratings.csv", archive="ml-20m.zip", member="ml-20m/ratings.csv"),
        FileSpec(filename="movies.csv", archive="ml-20m.zip", member="ml-20m/movies.csv"),
        FileSpec(filename="README.txt", archive="ml-20m.zip", member="ml-20m/README.txt"),
    ),
    loader=_load_ml20m,
)

DATASETS: tuple[DatasetSpec, ...] = (_ML100K, _ML1M, _ML20M)
