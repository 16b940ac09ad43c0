"""Splits used by the papers, built from the readers' data frames.

Every split maps the raw ids of the *whole* dataset to one 0-based id space, so train, validation and test
share it; a user or item seen only in test keeps an id with no training entries (models must handle it).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .types import LeaveOneOut, Ratings, RatingSplit, sample_negatives


def index_ids(*frames: pd.DataFrame) -> tuple[dict[int, int], dict[int, int]]:
    """0-based user and item ids over the union of the frames, in order of first appearance."""
    allf = pd.concat([f[["user_id", "item_id"]] for f in frames], ignore_index=True)
    users = {int(u): k for k, u in enumerate(pd.unique(allf["user_id"]))}
    items = {int(i): k for k, i in enumerate(pd.unique(allf["item_id"]))}
    return users, items


def to_ratings(df: pd.DataFrame, users: dict[int, int], items: dict[int, int]) -> Ratings:
    ts = df["timestamp"].to_numpy(dtype=np.float64) if "timestamp" in df else None
    return Ratings(
        df["user_id"].map(users).to_numpy(),
        df["item_id"].map(items).to_numpy(),
        df["rating"].to_numpy(dtype=np.float32),
        len(users),
        len(items),
        ts,
    )


def fixed_split(name: str, train: pd.DataFrame, test: pd.DataFrame, notes: dict[str, str]) -> RatingSplit:
    """A split given as two files (ML-100K u1.base/u1.test...)."""
    users, items = index_ids(train, test)
    tr, te = to_ratings(train, users, items), to_ratings(test, users, items)
    values = tuple(float(v) for v in np.unique(tr.values))
    return RatingSplit(name, tr, te, rating_values=values, notes=notes)


def random_split(name: str, df: pd.DataFrame, test_fraction: float, seed: int, notes: dict[str, str]) -> RatingSplit:
    """Uniformly random split of the ratings (each rating in test with probability ``test_fraction``)."""
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(df))
    n_test = int(round(test_fraction * len(df)))
    test, train = df.iloc[perm[:n_test]], df.iloc[perm[n_test:]]
    users, items = index_ids(df)
    tr, te = to_ratings(train, users, items), to_ratings(test, users, items)
    values = tuple(float(v) for v in np.unique(tr.values))
    return RatingSplit(name, tr, te, rating_values=values, notes={**notes, "split_seed": str(seed)})


def latest_leave_one_out(
    name: str, df: pd.DataFrame, n_negatives: int, seed: int, notes: dict[str, str]
) -> LeaveOneOut:
    """NCF-style protocol: each user's latest interaction is the test item, ranked against sampled negatives.

    Needs timestamps for every row (ML-20M, Netflix). Ties in time are broken by file order.
    """
    if df["timestamp"].isna().any():
        raise ValueError(f"{name}: leave-one-out by time needs every timestamp; this data has missing ones")
    users, items = index_ids(df)
    r = to_ratings(df.assign(rating=1.0), users, items)
    order = np.lexsort((np.arange(len(r)), r.timestamps, r.users))
    last = np.ones(len(order), dtype=bool)
    last[:-1] = r.users[order][1:] != r.users[order][:-1]
    test_rows = order[last]
    keep = np.ones(len(r), dtype=bool)
    keep[test_rows] = False
    test_items = np.full(r.n_users, -1, dtype=np.int64)
    test_items[r.users[test_rows]] = r.items[test_rows]
    rng = np.random.default_rng(seed)
    negatives = sample_negatives(r.to_csr(), n_negatives, rng)
    return LeaveOneOut(name, r.take(keep), test_items, negatives, {**notes, "negatives_seed": str(seed)})
