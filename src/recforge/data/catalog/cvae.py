"""The CVAE / CDL release of CiteULike-a (Li & She, KDD 2017; Wang, Wang & Yeung, KDD 2015):
the sparse (P=1) and dense (P=10) splits and the title+abstract bag of words ``mult_nor.mat``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recforge.data.catalog._parse import choice, ldac, predefined, universe
from recforge.data.catalog._sources import CITEULIKE_TERMS, PAPER_REPO, blob_files, sha_files
from recforge.data.catalog.citeulike import item_tag_matrix
from recforge.data.dataset_spec import DatasetSpec, Fetcher
from recforge.data.interactions import Interactions
from recforge.data.io import DataFormatError, build_interactions
from recforge.data.split import Split

__all__ = ["DATASETS", "bag_of_words"]

_CVAE_DATA = PAPER_REPO + "Conferences/KDD/CollaborativeVAE_github/data/citeulike-a/"


def bag_of_words(path: Path, n_items: int | None = None) -> sp.csr_matrix:
    """The ``X`` matrix of ``mult_nor.mat`` (articles x 8,000 words, each article's counts
    divided by its largest count) as float32 CSR, with at least ``n_items`` rows."""
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        mat = scipy.io.loadmat(path)
    except (MatReadError, ValueError, NotImplementedError, OSError) as exc:
        raise DataFormatError(f"not a readable Matlab file ({exc})", file=path) from None
    if "X" not in mat:
        names = sorted(k for k in mat if not k.startswith("__"))
        raise DataFormatError(f"no variable 'X' (found {names})", file=path)
    x = mat["X"]
    if sp.issparse(x):
        m = sp.csr_matrix(x, dtype=np.float32)
    else:
        # A dense X is 16,980 x 8,000 float64 (1 GB): convert in row blocks so no second
        # dense copy is made.
        x = np.atleast_2d(np.asarray(x))
        m = sp.vstack([sp.csr_matrix(x[i:i + 1024].astype(np.float32))
                       for i in range(0, x.shape[0], 1024)], format="csr")
    if m.ndim != 2 or (n_items is not None and m.shape[0] > n_items):
        raise DataFormatError(f"X has shape {m.shape}, expected {n_items} article rows",
                              file=path)
    if n_items is not None and m.shape[0] < n_items:
        m = sp.vstack([m, sp.csr_matrix((n_items - m.shape[0], m.shape[1]),
                                        dtype=np.float32)]).tocsr()
    m.eliminate_zeros()
    m.sort_indices()
    return m


def _content(fetch: Fetcher, kind: str, n_items: int) -> sp.csr_matrix:
    if kind == "words":
        return bag_of_words(fetch("cvae-citeulike-a", "mult_nor.mat"), n_items)
    return item_tag_matrix(fetch, n_items)


def _load_cvae(
    fetch: Fetcher, *, p: int = 10, part: str = "original", item_features: str | None = None
) -> Split | Interactions:
    choice("p", p, (1, 10))
    choice("part", part, ("original", "all"))
    choice("item_features", item_features, (None, "tags", "words"))
    if part == "all":
        path = fetch("cvae-citeulike-a", "users.dat")
        r, i, ln, n = ldac(path)
        x = build_interactions(
            r, i, user_ids=universe(0, 5551, np.array([n - 1])), item_ids=universe(0, 16980, i),
            name="cvae-citeulike-a:all", source=path, lines=ln,
        )
        if item_features is not None:
            x = replace(x, item_features=_content(fetch, item_features, x.n_items))
        return x
    names = (f"cf-train-{p}-users.dat", f"cf-test-{p}-users.dat")
    paths = {f: fetch("cvae-citeulike-a", f) for f in names}
    tr = ldac(paths[names[0]])
    te = ldac(paths[names[1]])
    uids = universe(0, 5551, np.array([tr[3] - 1, te[3] - 1]))
    iids = universe(0, 16980, tr[1], te[1])
    train = build_interactions(
        tr[0], tr[1], user_ids=uids, item_ids=iids, name=f"cvae-citeulike-a[p={p}]:train",
        source=paths[names[0]], lines=tr[2],
    )
    test = build_interactions(
        te[0], te[1], user_ids=uids, item_ids=iids, name=f"cvae-citeulike-a[p={p}]:test",
        source=paths[names[1]], lines=te[2],
    )
    if item_features is not None:
        icm = _content(fetch, item_features, len(iids))
        train = replace(train, item_features=icm)
        test = replace(test, item_features=icm)
    return predefined(
        "cvae-citeulike-a", train, test,
        {"p": p, "part": part, "item_features": item_features}, paths,
    )


DATASETS: tuple[DatasetSpec, ...] = (
DatasetSpec(
    name="cvae-citeulike-a",
    description="CiteULike-a sparse (P=1) and dense (P=10) splits of CVAE/CDL; 5,551 users x "
    "16,980 items, 204,986 pairs.",
    source="github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation @ f5618c6, "
    "Conferences/KDD/CollaborativeVAE_github/data/citeulike-a",
    licence=CITEULIKE_TERMS + " CVAE code is MIT; no data licence stated.",
    paper_tables=("4", "5"),
    options={
        "p": "1 or 10 (train items per user)",
        "part": "'original' (Split) or 'all' (users.dat as Interactions)",
        "item_features": "None, 'words' (the title+abstract bag of words of mult_nor.mat, "
        "16,980 x 8,000, as the paper used) or 'tags' (citeulike-a-raw item-tag matrix, a "
        "stand-in)",
    },
    returns="Split (part='original') or Interactions (part='all'); 5,551 x 16,980",
    status="complete (mult_nor.mat is downloadable only: its public copies are 4 MiB or more)",
    files=sha_files(_CVAE_DATA, [
        ("cf-test-1-items.dat", 998440,
         "fe16a05c2ace64834b2b8149f260666d6e407752f4f2513be0b71e4d6a3843d0"),
        ("cf-test-1-users.dat", 1065419,
         "1809da1a5a136b377eaad0b6b76b6a04ec09c8b59e74c98bfbe9b892f011505c"),
        ("cf-test-10-items.dat", 756603,
         "bbca940e6f9a366db11baa5ebb47ec604c2c3b544ade3b9a3fbdcfd63bf1bf02"),
        ("cf-test-10-users.dat", 826118,
         "204a51f7496fb1234e2b7acbc52084043fe1f784e070e16d254945abd2482d39"),
        ("cf-train-1-items.dat", 73260,
         "cd2a8d4698553ec8b00b564910c1d996b19b2d7d396ccc78aeeb0fbe4536b834"),
        ("cf-train-1-users.dat", 40052,
         "660ef4404b3d2ea75c1888fdad32b0c2037a8bc815312537f211c4a44ef3c5df"),
        ("cf-train-10-items.dat", 306631,
         "3146887edab6964323ae238476e744043b0a1ed5ec2fe05fae0d674fe313732b"),
        ("cf-train-10-users.dat", 283230,
         "d743cc216f1383e40767b5979ceae736009bf30835d49334ecfbdd692622c28f"),
        ("items.dat", 1025426,
         "cb10fbd7b894e0e33b8f27bc8c92bc130653922d6a0665029fc4bd34bd5aa4b6"),
        ("users.dat", 1094786,
         "a8059144c3b2b4dbc83a50b190c14261a6f491761e83fac5967ff8d1fcaff1b6"),
    ]) + blob_files(_CVAE_DATA, [
        ("mult_nor.mat", "da724372f829f2bc40f3e335f191877d82927d23"),
    ]),
    loader=_load_cvae,
),
)
