"""Data layer: one entry point, :func:`load_split`, for every protocol in the study.

>>> split = load_split("ml-100k/u1", data_root="../shared/data")   # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pandas as pd

from . import movielens as ml
from .monti import load_monti
from .netflix import read_netflix_ratings
from .registry import (
    DATASETS,
    ENV_VAR,
    ChecksumError,
    DataError,
    DataNotFoundError,
    UnknownNameError,
    fetch,
    resolve_data_root,
    verify,
)
from .splits import fixed_split, latest_leave_one_out, random_split, to_ratings
from .types import LeaveOneOut, Ratings, RatingSplit

PathLike = str | os.PathLike[str] | None


def _ml100k_fold(fold: str) -> Callable[..., RatingSplit]:
    def load(data_root: PathLike = None, split_seed: int = 0) -> RatingSplit:
        train, test = ml.read_ml100k(f"{fold}.base", data_root), ml.read_ml100k(f"{fold}.test", data_root)
        return fixed_split(f"ml-100k/{fold}", train, test, {"protocol": f"official {fold}.base / {fold}.test"})

    return load


def _random(dataset: str, reader: Callable[[PathLike], pd.DataFrame]) -> Callable[..., RatingSplit]:
    def load(data_root: PathLike = None, split_seed: int = 0) -> RatingSplit:
        return random_split(
            f"{dataset}/random-90-10", reader(data_root), 0.1, split_seed, {"protocol": "uniform random 90/10"}
        )

    return load


def _ml1m_ncf_loo(data_root: PathLike = None, split_seed: int = 0) -> LeaveOneOut:
    """NCF's exact ML-1M test items and 99 negatives; training = every other rating (NCF id mapping)."""
    ratings, source = ml.read_ml1m_ratings(data_root)
    order = ml.ncf_item_order(ratings)
    items = {int(m): k for k, m in enumerate(order)}
    users = {u: u - 1 for u in range(1, int(ratings["user_id"].max()) + 1)}
    t_users, t_items, negatives = ml.read_ncf_test(data_root)
    all_r = to_ratings(ratings.assign(rating=1.0), users, items)
    test_keys = t_users * all_r.n_items + t_items
    is_test = np.isin(all_r.pairs(), test_keys)
    if is_test.sum() != len(t_users):
        raise ValueError("NCF test pairs do not match the ML-1M ratings one-to-one; check the data files")
    test_items = np.full(all_r.n_users, -1, dtype=np.int64)
    test_items[t_users] = t_items
    neg = np.zeros((all_r.n_users, negatives.shape[1]), dtype=np.int64)
    neg[t_users] = negatives
    notes = {"protocol": "NCF leave-one-out test files (latest rating per user, 99 fixed negatives)", "ratings": source}
    return LeaveOneOut("ml-1m/ncf-loo", all_r.take(~is_test), test_items, neg, notes)


def _time_loo(dataset: str, reader: Callable[[PathLike], pd.DataFrame]) -> Callable[..., LeaveOneOut]:
    def load(data_root: PathLike = None, split_seed: int = 0) -> LeaveOneOut:
        notes = {"protocol": "latest interaction per user held out, 99 negatives sampled uniformly"}
        return latest_leave_one_out(f"{dataset}/loo", reader(data_root), 99, split_seed, notes)

    return load


SPLITS: dict[str, Callable[..., RatingSplit | LeaveOneOut]] = {
    **{f"ml-100k/{fold}": _ml100k_fold(fold) for fold in ("u1", "u2", "u3", "u4", "u5", "ua", "ub")},
    "ml-100k/random-90-10": _random("ml-100k", lambda root: ml.read_ml100k("u.data", root)),
    "ml-1m/random-90-10": _random("ml-1m", lambda root: ml.read_ml1m_ratings(root)[0]),
    "ml-1m/ncf-loo": _ml1m_ncf_loo,
    "ml-20m/loo": _time_loo("ml-20m", ml.read_ml20m_ratings),
    "netflix/loo": _time_loo("netflix", read_netflix_ratings),
    **{
        name: (lambda data_root=None, split_seed=0, _n=name: load_monti(_n, data_root))
        for name in ("douban", "flixster", "yahoo_music", "ml-100k-monti", "synthetic_netflix")
    },
}


def load_split(name: str, data_root: PathLike = None, split_seed: int = 0) -> RatingSplit | LeaveOneOut:
    """Load one protocol by name (see ``SPLITS``); ``split_seed`` matters only for random splits."""
    if name not in SPLITS:
        raise UnknownNameError(f"unknown split {name!r}; valid names: {', '.join(SPLITS)}")
    return SPLITS[name](data_root=data_root, split_seed=split_seed)


__all__ = [
    "DATASETS",
    "ENV_VAR",
    "SPLITS",
    "ChecksumError",
    "DataError",
    "DataNotFoundError",
    "LeaveOneOut",
    "RatingSplit",
    "Ratings",
    "UnknownNameError",
    "fetch",
    "load_split",
    "resolve_data_root",
    "verify",
]
