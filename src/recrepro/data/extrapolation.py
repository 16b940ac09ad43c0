"""The authors' extrapolation split of Hartford et al. 2018: train on some users x movies, predict for others.

``disjoint_data.load_ratings`` in mravanba/deep_exchangeable_tensors (as summarised in
``shared/research/claims.csv``, rows hartford2018-30..33): 30% of the users and 30% of the movies are
"observed" and the model trains on their ratings only; the evaluation matrix is half of the *other* users x
half of the other movies, whose ratings are split 80/20 into observed (the model's input, no retraining) and
held-out (scored). No user or movie of the evaluation matrix appears in training.

The fractions are the authors'; the random draws are ours (numpy ``default_rng(seed)``, the authors used
``RandomState(1234)``). :func:`reveal` gives nested subsets of the observed part for the "RMSE vs fraction of
observed entries" figure, scored on the same held-out entries at every fraction. (A module of its own so that
adding it did not change the hashed code of every published run that imports ``recrepro.data.splits``.)
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .splits import index_ids, to_ratings
from .types import Ratings, RatingSplit


@dataclass(frozen=True)
class DisjointSplit:
    """``source``: the training block (train / test within it, same id space); ``target_*``: the unseen block."""

    source: RatingSplit
    target_observed: Ratings  # the model's input on the unseen block, in a fixed random order (see reveal)
    target_heldout: Ratings  # scored; same id space as target_observed
    observed_share: float  # fraction of the unseen block's ratings in target_observed (0.8)
    notes: dict[str, str] = field(default_factory=dict)


def _pick(ids: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    return rng.choice(ids, size=int(round(fraction * len(ids))), replace=False)


def disjoint_split(
    name: str,
    df: pd.DataFrame,
    *,
    seed: int,
    source_users: float = 0.3,
    source_items: float = 0.3,
    target_share: float = 0.5,
    target_observed: float = 0.8,
    source_test: float = 0.1,
) -> DisjointSplit:
    """Split a ratings frame (user_id, item_id, rating) into a training block and an unseen evaluation block.

    ``source_test``: share of the training block's ratings kept as its own (in-domain) test set.
    """
    for label, v in [("source_users", source_users), ("source_items", source_items), ("target_share", target_share),
                     ("target_observed", target_observed), ("source_test", source_test)]:  # fmt: skip
        if not 0.0 < v < 1.0:
            raise ValueError(f"{label} must be in (0, 1), got {v}")
    rng = np.random.default_rng(seed)
    users, items = np.sort(df["user_id"].unique()), np.sort(df["item_id"].unique())
    src_u, src_i = _pick(users, source_users, rng), _pick(items, source_items, rng)
    tgt_u = _pick(np.setdiff1d(users, src_u), target_share, rng)
    tgt_i = _pick(np.setdiff1d(items, src_i), target_share, rng)
    src = df[df["user_id"].isin(src_u) & df["item_id"].isin(src_i)].reset_index(drop=True)
    tgt = df[df["user_id"].isin(tgt_u) & df["item_id"].isin(tgt_i)].reset_index(drop=True)
    if src.empty or tgt.empty:
        raise ValueError("the training or the evaluation block has no ratings; use larger fractions")

    uid, iid = index_ids(src)
    src_r = to_ratings(src, uid, iid)
    is_test = rng.random(len(src_r)) < source_test
    values = tuple(float(v) for v in np.unique(src_r.values[~is_test]))
    source = RatingSplit(f"{name}/source", src_r.take(~is_test), src_r.take(is_test), rating_values=values)

    uid, iid = index_ids(tgt)
    tgt_r = to_ratings(tgt, uid, iid)
    order = rng.permutation(len(tgt_r))
    n_obs = int(round(target_observed * len(tgt_r)))
    notes = {
        "protocol": f"authors' disjoint split: {source_users:.0%} of users x {source_items:.0%} of items train; "
        f"{target_share:.0%} of the other users x {target_share:.0%} of the other items evaluated, their ratings "
        f"{target_observed:.0%} observed / {1 - target_observed:.0%} held out",
        "split_seed": str(seed),
        "source": f"{len(src_u)} users x {len(src_i)} items, {len(src_r)} ratings",
        "target": f"{len(tgt_u)} users x {len(tgt_i)} items, {len(tgt_r)} ratings",
    }
    return DisjointSplit(source, tgt_r.take(order[:n_obs]), tgt_r.take(order[n_obs:]), target_observed, notes)


def reveal(split: DisjointSplit, fraction: float) -> Ratings:
    """The first ``fraction`` (of the whole unseen block's ratings) of the observed part: nested in ``fraction``."""
    if not 0.0 < fraction <= split.observed_share + 1e-9:
        raise ValueError(f"fraction must be in (0, {split.observed_share}], got {fraction}")
    n_block = len(split.target_observed) + len(split.target_heldout)
    n = min(len(split.target_observed), int(round(fraction * n_block)))
    return split.target_observed.take(np.arange(n))
