"""ML-100K side features (``u.user``, ``u.item``) as matrices in MovieLens id order, for feature-based baselines.

The features are the ones feature-based studies of ML-100K use (van den Berg et al.'s GC-MC, for instance):
users -- age, gender, occupation; items -- the 19 genre flags. Row ``k`` belongs to MovieLens id ``k + 1``,
which is also row/column ``k`` of Monti's ``split_1.mat`` (``tests/test_data.py`` checks that mapping).
Kept apart from ``movielens.py`` because only the feature-based baselines need it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .movielens import PathLike, read_ml100k_items
from .registry import require_file

USER_COLUMNS = ["user_id", "age", "gender", "occupation", "zip_code"]


def read_ml100k_users(data_root: PathLike = None) -> pd.DataFrame:
    """``u.user``: user_id (1-based), age, gender (M/F), occupation, zip_code."""
    path = require_file("ml-100k", "ml-100k/u.user", data_root)
    return pd.read_csv(path, sep="|", names=USER_COLUMNS, dtype={"zip_code": str}, encoding="latin-1")


def _occupations(data_root: PathLike) -> list[str]:
    text = require_file("ml-100k", "ml-100k/u.occupation", data_root).read_text("latin-1")
    return [line.strip() for line in text.splitlines() if line.strip()]


def ml100k_feature_matrices(data_root: PathLike = None) -> tuple[np.ndarray, np.ndarray, list[str], list[str]]:
    """(user features 943 x 23, item features 1682 x 19, their column names), float64, rows in id order.

    Users: age / max age (in [0, 1]), gender (1 = F), occupation one-hot (the 21 of ``u.occupation``).
    Items: the 19 genre flags of ``u.item`` (``unknown`` included). No constant column: models add their own.
    """
    users = read_ml100k_users(data_root).sort_values("user_id")
    items = read_ml100k_items(data_root).sort_values("item_id")
    for name, ids in (("u.user", users["user_id"]), ("u.item", items["item_id"])):
        if not np.array_equal(ids.to_numpy(), np.arange(1, len(ids) + 1)):
            raise ValueError(f"ml-100k/{name}: ids are not 1..{len(ids)}; the file is not the official one")
    occupations = _occupations(data_root)
    unknown = sorted(set(users["occupation"]) - set(occupations))
    if unknown:
        raise ValueError(f"ml-100k/u.user: occupations {unknown} are not in u.occupation")
    one_hot = (users["occupation"].to_numpy()[:, None] == np.asarray(occupations)[None, :]).astype(np.float64)
    age = users["age"].to_numpy(np.float64)
    user_x = np.column_stack([age / age.max(), (users["gender"] == "F").to_numpy(np.float64), one_hot])
    genres = list(items.columns[5:])
    item_x = items[genres].to_numpy(np.float64)
    return user_x, item_x, ["age", "gender=F", *(f"occupation={o}" for o in occupations)], genres
