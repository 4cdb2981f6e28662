"""MCRec's releases (Hu, Shi, Zhao, Yu, KDD 2018): the ML-100k split with its BPR embeddings,
metapath instances and test negatives, and the LastFM / Yelp network data.

All files are pinned in the RecSys'19 authors' repository (sha256 where the files were in our
snapshot, else git blob ids).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from recforge.data.catalog._parse import adjacency, check_min, predefined, table, universe
from recforge.data.catalog._sources import GROUPLENS_TERMS, PAPER_REPO, blob_files, sha_files
from recforge.data.catalog.grouplens import genre_icm
from recforge.data.dataset_spec import DatasetSpec, Fetcher
from recforge.data.interactions import Interactions
from recforge.data.io import build_interactions
from recforge.data.split import Split

__all__ = ["DATASETS"]

_MCREC_DATA = PAPER_REPO + "Conferences/KDD/MCRec_github/data/"


def _load_mcrec_ml100k(
    fetch: Fetcher, *, with_genres: bool = False, genre_bug: bool = False
) -> Split:
    train_path = fetch("mcrec-ml-100k", "ml-100k.train.rating")
    test_path = fetch("mcrec-ml-100k", "ml-100k.test.rating")
    t = table(train_path, 3)
    tu, ti, tl = adjacency(test_path, 1)
    check_min(train_path, t[:, 0], np.arange(1, len(t) + 1), 1, "user")
    check_min(train_path, t[:, 1], np.arange(1, len(t) + 1), 1, "item")
    uids = universe(1, 943, t[:, 0], tu)
    iids = universe(1, 1682, t[:, 1], ti)
    train = build_interactions(
        t[:, 0], t[:, 1], ratings=t[:, 2], user_ids=uids, item_ids=iids, implicit=True,
        name="mcrec-ml-100k:train", source=train_path, first_line=1,
    )
    test = build_interactions(
        tu, ti, user_ids=uids, item_ids=iids, implicit=True, name="mcrec-ml-100k:test",
        source=test_path, lines=tl,
    )
    if with_genres:
        icm, names = genre_icm(fetch("movielens-100k", "u.item"), iids, bug=genre_bug)
        train = replace(train, item_features=icm, item_feature_names=names)
        test = replace(test, item_features=icm, item_feature_names=names)
    files = {"ml-100k.train.rating": train_path, "ml-100k.test.rating": test_path}
    return predefined(
        "mcrec-ml-100k", train, test, {"with_genres": with_genres, "genre_bug": genre_bug}, files
    )


def _mcrec_triples(fetch: Fetcher, dataset: str, fname: str, implicit: bool) -> Interactions:
    """A 1-based ``user item value`` file of MCRec, the ids as released."""
    path = fetch(dataset, fname)
    t = table(path, 3)
    return build_interactions(
        t[:, 0], t[:, 1], ratings=t[:, 2], user_ids=universe(1, 1, t[:, 0]),
        item_ids=universe(1, 1, t[:, 1]), implicit=implicit, name=dataset,
        source=path, first_line=1,
    )


# The registry reads each loader's keyword options from its signature, hence two thin loaders.
def _load_mcrec_lastfm(fetch: Fetcher, *, implicit: bool = False) -> Interactions:
    return _mcrec_triples(fetch, "mcrec-lastfm", "user_artist.dat", implicit)


def _load_mcrec_yelp(fetch: Fetcher, *, implicit: bool = False) -> Interactions:
    return _mcrec_triples(fetch, "mcrec-yelp", "user_business.dat", implicit)



# ---------------------------------------------------------------------------- specs

DATASETS: tuple[DatasetSpec, ...] = (
DatasetSpec(
    name="mcrec-ml-100k",
    description="MCRec's released 80/20 split of MovieLens-100k (train 80,000 pairs of 943 "
    "users; test 20,000 pairs of 942 users); ratings ignored (values 1.0).",
    source="github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation @ f5618c6, "
    "Conferences/KDD/MCRec_github/data",
    licence=GROUPLENS_TERMS,
    paper_tables=("3",),
    options={
        "with_genres": "bool = False; attach the ML-100k genre ICM (u.item) as item_features",
        "genre_bug": "bool = False; with with_genres, build the paper's buggy 2-column ICM",
    },
    returns="Split (predefined; 943 x 1,682)",
    status="complete (the metapath files and test negatives are downloadable only; Table 3 "
    "is a full ranking and does not need them)",
    files=sha_files(_MCREC_DATA, [
        ("ml-100k.test.rating", 81890,
         "f5c8e8216402dc6e277fc15853b90ef9e4b8f922c77d20bac7e1ae80b5c55ae5"),
        ("ml-100k.train.rating", 783394,
         "d043d9fedf7efecb41fdfa98e4c96c5134a26d247a70ba5d4cf3f32a61c5957b"),
        # MCRec's fixed 64-d BPR node embeddings (inputs of its metapath encoder, not trained).
        ("ml-100k.bpr.item_embedding", 1713474,
         "93e87a41be52fb2dc9efc800366a2f93d504d75c22212853f5f68722e6b5f90e"),
        ("ml-100k.bpr.type_embedding", 9513,
         "e93cbe7ffa350ca1a3fc9d544f9faa8e967e3cadc19c88665f9e2f902a07f440"),
        ("ml-100k.bpr.user_embedding", 948541,
         "ca4ada817752366c80a8d4926f1d996f0442eff8a581a738240aaa18a69d1e80"),
    ]) + blob_files(_MCREC_DATA, [
        # Metapath instances sampled by the MCRec authors, in their format; the original
        # loader reads them under swapped names (see shared neural-models notes).
        ("ml-100k.ummm_5_1", "61834fae8282ae207cd087b1549068c422c29c54"),
        ("ml-100k.umtm_5_1", "9a09e0d7c888cfa20c6c50e1c2132c4e95f92682"),
        ("ml-100k.umum_5_1", "ba03d2d82af10524f8707ef87e9b868aefd0fa7e"),
        ("ml-100k.uuum_5_1", "fb261e341b343f07c77d40fd4d9204c76e4a7317"),
        # MCRec's sampled test negatives (Table 3 is a full ranking; kept to confirm it).
        ("ml-100k.test.negative", "03b1cd598b8e7bd563a60386e3daf430642c648b"),
    ]),
    loader=_load_mcrec_ml100k,
),
DatasetSpec(
    name="mcrec-lastfm",
    description="MCRec's LastFM (HetRec 2011) network data; user_artist.dat listening counts "
    "(92,834 pairs, 1,892 users, 17,632 artists) plus tag and k-NN side files.",
    source="github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation @ f5618c6, "
    "Conferences/KDD/MCRec_github/Dataset-In-Papers_master/LastFM",
    licence="HetRec 2011 / Last.fm terms: non-commercial research use, acknowledge Last.fm and "
    "the workshop; no redistribution. Keep internal.",
    options={"implicit": "bool = False; True stores 1.0 (listening counts stay in .ratings)"},
    returns="Interactions (values = listening counts)",
    files=sha_files(PAPER_REPO + "Conferences/KDD/MCRec_github/Dataset-In-Papers_master/LastFM/", [
        ("artist_artist(knn).dat", 3145931,
         "15bbe112d78a02bf96b11c98c009ee891d136d50ca13bfb376351a28cc3951d8"),
        ("artist_tag.dat", 1604283,
         "263e61b0a2a5c06c3994540a2cb732dd2c9d8fafcbe44e7a51a6f18e59f618de"),
        ("user_artist.dat", 1198733,
         "4303d1dccfd3b8b03c1e34f99710c4d99539c9fa9b54f654e34299efeefbff16"),
        ("user_user(knn).dat", 446392,
         "dd1c1c19fc676decf291688053e86a5ae48962f014f85c07dc167605f192e150"),
        ("user_user(original).dat", 223780,
         "eb2f3eb5dbee61161923d0231874cce574c33cea8b9f331d912b1642a1cd29ba"),
    ]),
    loader=_load_mcrec_lastfm,
),
DatasetSpec(
    name="mcrec-yelp",
    description="MCRec's Yelp network data; user_business.dat star ratings (198,397 pairs, "
    "16,239 users, 14,284 businesses) plus category, city, compliment and social files.",
    source="github.com/MaurizioFD/RecSys2019_DeepLearning_Evaluation @ f5618c6, "
    "Conferences/KDD/MCRec_github/Dataset-In-Papers_master/Yelp",
    licence="Yelp Dataset terms: academic non-commercial use, no redistribution. Keep internal.",
    options={"implicit": "bool = False; True stores 1.0 (stars stay in .ratings)"},
    returns="Interactions (values = star ratings 1-5)",
    files=sha_files(PAPER_REPO + "Conferences/KDD/MCRec_github/Dataset-In-Papers_master/Yelp/", [
        ("business_category.dat", 439981,
         "d3c1499e406c0a842b3c08c478ffe7bf26a8758b630e0b056d0f4bcf18c01a5b"),
        ("business_city.dat", 145353,
         "09c009dfa16709aff52de4831b9cb30f45a16dcfce1db06858d54af6ef5f7d1e"),
        ("user_business.dat", 2490385,
         "d57853e95c3f49f0060f31ee9365ab3fffe1010999c76863c3cd9628b91e994d"),
        ("user_compliment.dat", 728264,
         "e7f5c15155bf0843e3bdf9fb4743bb3ebf76826b4108e9e194fd637e0bb05ed6"),
        ("user_user.dat", 2015188,
         "d360f88f66b7ba9a1fd460b8c414dba1bec6489773283083a614a77925bcaaed"),
    ]),
    loader=_load_mcrec_yelp,
),
)
