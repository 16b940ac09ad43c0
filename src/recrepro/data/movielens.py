"""MovieLens readers (100K, 1M, 20M) in their official formats, plus the NCF leave-one-out files for 1M.

ML-1M ratings: the official ``ratings.dat`` is used when present (identified by its git blob id, the only
checksum on record). Otherwise the complete reconstruction ``ratings_reconstructed.csv.gz`` is used: every
rating exact and in official line order, 198,417 timestamps unknown. Those stay NaN; nothing is invented.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from .registry import (
    ML1M_OFFICIAL_GIT_BLOB,
    ML1M_OFFICIAL_RATINGS,
    ML1M_RECONSTRUCTED,
    ML1M_RECONSTRUCTED_SHA256,
    ChecksumError,
    DataNotFoundError,
    git_blob_sha1,
    require_file,
    resolve_data_root,
)

RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
PathLike = str | os.PathLike[str] | None


def read_ml100k(relfile: str = "u.data", data_root: PathLike = None) -> pd.DataFrame:
    """One ML-100K ratings file (``u.data``, ``u1.base``...): columns user_id, item_id (1-based), rating, timestamp."""
    path = require_file("ml-100k", f"ml-100k/{relfile}", data_root)
    df = pd.read_csv(path, sep="\t", names=RATING_COLUMNS, dtype={"rating": np.float32, "timestamp": np.float64})
    return df


def read_ml100k_items(data_root: PathLike = None) -> pd.DataFrame:
    """``u.item``: item_id, title, release_date and the 19 genre flags."""
    genres = [
        line.split("|")[0]
        for line in require_file("ml-100k", "ml-100k/u.genre", data_root).read_text("latin-1").splitlines()
        if line.strip()
    ]
    cols = ["item_id", "title", "release_date", "video_release_date", "url", *genres]
    path = require_file("ml-100k", "ml-100k/u.item", data_root)
    return pd.read_csv(path, sep="|", names=cols, encoding="latin-1")


def read_ml1m_ratings(data_root: PathLike = None) -> tuple[pd.DataFrame, str]:
    """All 1,000,209 ML-1M ratings in official order, and which source was used.

    Returns columns user_id, item_id (MovieLens ids), rating, timestamp (float seconds, NaN where unknown).
    """
    root = resolve_data_root(data_root)
    official = root / ML1M_OFFICIAL_RATINGS
    if official.is_file():
        blob = git_blob_sha1(official)
        if blob != ML1M_OFFICIAL_GIT_BLOB:
            raise ChecksumError(
                f"dataset 'ml-1m': {official} is not the official ratings.dat (git blob {blob}, expected "
                f"{ML1M_OFFICIAL_GIT_BLOB}); replace it with the file from ml-1m.zip or remove it to use the "
                "reconstruction"
            )
        df = pd.read_csv(official, sep="::", engine="python", names=RATING_COLUMNS)
        return df.astype({"rating": np.float32, "timestamp": np.float64}), "official ratings.dat"
    try:
        path = require_file("ml-1m", ML1M_RECONSTRUCTED, root, expected=ML1M_RECONSTRUCTED_SHA256)
    except DataNotFoundError as err:
        raise DataNotFoundError(
            f"dataset 'ml-1m': neither {ML1M_OFFICIAL_RATINGS} nor {ML1M_RECONSTRUCTED} is under the data root "
            f"{root}. Download ml-1m.zip from https://files.grouplens.org/datasets/movielens/ml-1m.zip and unzip it "
            "there (or run `recrepro data fetch ml-1m` with internet)."
        ) from err
    df = pd.read_csv(path, usecols=["user_id", "movie_id", "rating", "timestamp"])
    df = df.rename(columns={"movie_id": "item_id"}).astype({"rating": np.float32, "timestamp": np.float64})
    return df[RATING_COLUMNS], "reconstructed ratings (timestamps missing for some rows, kept missing)"


def read_ml1m_movies(data_root: PathLike = None) -> pd.DataFrame:
    """``movies.dat``: item_id, title, genres (list of str), year (from the title)."""
    path = require_file("ml-1m", "ml-1m/movies.dat", data_root)
    df = pd.read_csv(path, sep="::", engine="python", names=["item_id", "title", "genres"], encoding="latin-1")
    df["genres"] = df["genres"].str.split("|")
    df["year"] = df["title"].str.extract(r"\((\d{4})\)\s*$")[0].astype("Int64")
    return df


def ncf_item_order(ratings: pd.DataFrame) -> np.ndarray:
    """MovieLens ids in order of first appearance: NCF item id i is ``ncf_item_order(...)[i]``."""
    return pd.unique(ratings["item_id"].to_numpy())


def read_ncf_test(data_root: PathLike = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NCF's ML-1M leave-one-out files: (users, test items, negatives (n, 99)), all 0-based NCF ids."""
    rating_path = require_file("ml-1m-ncf", "ml-1m/ncf/ml-1m.test.rating", data_root)
    neg_path = require_file("ml-1m-ncf", "ml-1m/ncf/ml-1m.test.negative", data_root)
    test = pd.read_csv(rating_path, sep="\t", names=["user", "item", "rating", "timestamp"])
    users, negatives = [], []
    for line in Path(neg_path).read_text().splitlines():
        head, *rest = line.split("\t")
        users.append(int(head.strip("()").split(",")[0]))
        negatives.append([int(x) for x in rest])
    if users != test["user"].tolist():
        raise ValueError("ml-1m.test.negative and ml-1m.test.rating list different users; the files do not match")
    return test["user"].to_numpy(), test["item"].to_numpy(), np.asarray(negatives, dtype=np.int64)


def read_ml20m_ratings(data_root: PathLike = None) -> pd.DataFrame:
    """ML-20M ``ratings.csv`` (header userId,movieId,rating,timestamp)."""
    path = require_file("ml-20m", "ml-20m/ratings.csv", data_root)
    df = pd.read_csv(path)
    expected = ["userId", "movieId", "rating", "timestamp"]
    if list(df.columns) != expected:
        raise ValueError(f"{path}: expected columns {expected}, found {list(df.columns)}; is this ML-20M ratings.csv?")
    df.columns = RATING_COLUMNS
    return df.astype({"rating": np.float32, "timestamp": np.float64})
