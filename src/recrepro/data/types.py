"""The two shapes of data every model in the study consumes.

``Ratings`` is a sparse list of (user, item, value) triples with 0-based ids; ``RatingSplit`` holds the
train/validation/test parts of one protocol plus the side graphs some papers use; ``LeaveOneOut`` is the
implicit-feedback protocol of NCF/LRML (one held-out item per user ranked against fixed negatives).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp
import torch


def sample_negatives(seen: sp.csr_matrix, n_negatives: int, rng: np.random.Generator) -> np.ndarray:
    """Per row of ``seen`` (users x items, nonzero = interacted), ``n_negatives`` items drawn uniformly from the
    items the user never interacted with (with replacement only if there are too few)."""
    n_users, n_items = seen.shape
    negatives = np.empty((n_users, n_negatives), dtype=np.int64)
    for u in range(n_users):
        banned = seen.indices[seen.indptr[u] : seen.indptr[u + 1]]
        pool = np.setdiff1d(np.arange(n_items), banned)
        negatives[u] = rng.choice(pool, size=n_negatives, replace=len(pool) < n_negatives)
    return negatives


@dataclass(frozen=True)
class Ratings:
    """Observed entries of a users x items matrix (0-based ids, float32 values).

    ``timestamps`` is float64 seconds with NaN where the source lacks the time (ML-1M reconstruction).
    """

    users: np.ndarray
    items: np.ndarray
    values: np.ndarray
    n_users: int
    n_items: int
    timestamps: np.ndarray | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "users", np.asarray(self.users, dtype=np.int64))
        object.__setattr__(self, "items", np.asarray(self.items, dtype=np.int64))
        object.__setattr__(self, "values", np.asarray(self.values, dtype=np.float32))
        n = len(self.users)
        if len(self.items) != n or len(self.values) != n:
            raise ValueError("users, items and values must have the same length")
        if n and (self.users.min() < 0 or self.users.max() >= self.n_users):
            raise ValueError("user id out of range [0, n_users)")
        if n and (self.items.min() < 0 or self.items.max() >= self.n_items):
            raise ValueError("item id out of range [0, n_items)")

    def __len__(self) -> int:
        return len(self.values)

    def take(self, index: np.ndarray) -> Ratings:
        """Rows selected by a boolean mask or an integer index, same id space."""
        ts = None if self.timestamps is None else self.timestamps[index]
        return Ratings(self.users[index], self.items[index], self.values[index], self.n_users, self.n_items, ts)

    def pairs(self) -> np.ndarray:
        """Linear (user * n_items + item) keys, for overlap checks and lookups."""
        return self.users * self.n_items + self.items

    def to_csr(self) -> sp.csr_matrix:
        return sp.csr_matrix((self.values, (self.users, self.items)), shape=(self.n_users, self.n_items))

    def to_torch(self, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(users, items, values) tensors on ``device``."""
        return (
            torch.tensor(self.users, device=device),
            torch.tensor(self.items, device=device),
            torch.tensor(self.values, device=device),
        )


@dataclass(frozen=True)
class RatingSplit:
    """One explicit-rating protocol: train (+ validation carved from it) and test, on one id space."""

    name: str
    train: Ratings
    test: Ratings
    valid: Ratings | None = None
    rating_values: tuple[float, ...] = (1.0, 2.0, 3.0, 4.0, 5.0)
    user_graph: sp.csr_matrix | None = None
    item_graph: sp.csr_matrix | None = None
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items

    @property
    def rating_range(self) -> tuple[float, float]:
        return (min(self.rating_values), max(self.rating_values))

    def with_validation(self, fraction: float, seed: int) -> RatingSplit:
        """Move a random ``fraction`` of the training entries to ``valid`` (test is never touched)."""
        if not 0.0 < fraction < 1.0:
            raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
        rng = np.random.default_rng(seed)
        is_valid = rng.random(len(self.train)) < fraction
        return replace(self, train=self.train.take(~is_valid), valid=self.train.take(is_valid))


@dataclass(frozen=True)
class LeaveOneOut:
    """Implicit feedback, leave-one-out: every user has one test item ranked against fixed negatives.

    ``train`` holds every other interaction (values 1). ``test_negatives`` is (n_users, n_neg); a user
    without a test item has ``test_items == -1``.
    """

    name: str
    train: Ratings
    test_items: np.ndarray
    test_negatives: np.ndarray
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items

    def validation_view(self, seed: int, n_negatives: int | None = None) -> LeaveOneOut:
        """A leave-one-out problem carved from ``train`` alone, for tuning without touching the test items.

        Per user, the latest training interaction (by timestamp where known; a random one where the time is
        missing) becomes the validation target, ranked against ``n_negatives`` (default: as many as the
        test protocol) items the user never interacted with, test item included in the exclusion.
        """
        rng = np.random.default_rng(seed)
        n_neg = self.test_negatives.shape[1] if n_negatives is None else n_negatives
        tr = self.train
        ts = tr.timestamps if tr.timestamps is not None else np.full(len(tr), np.nan)
        # latest known timestamp first; unknown times get a random key below every known one
        key = np.where(np.isnan(ts), -1.0 - rng.random(len(tr)), ts)
        order = np.lexsort((-key, tr.users))
        first = np.ones(len(order), dtype=bool)
        first[1:] = tr.users[order][1:] != tr.users[order][:-1]
        held = order[first]
        keep = np.ones(len(tr), dtype=bool)
        keep[held] = False
        if np.bincount(tr.users[keep], minlength=tr.n_users).min(initial=1) == 0:
            raise ValueError("a user would be left with no training interaction; cannot carve a validation item")
        valid_items = np.full(self.n_users, -1, dtype=np.int64)
        valid_items[tr.users[held]] = tr.items[held]
        has_test = self.test_items >= 0
        rows = np.concatenate([tr.users, np.nonzero(has_test)[0]])
        cols = np.concatenate([tr.items, self.test_items[has_test]])
        seen = sp.csr_matrix((np.ones(len(rows), dtype=bool), (rows, cols)), shape=(self.n_users, self.n_items))
        negatives = sample_negatives(seen, n_neg, rng)
        return LeaveOneOut(f"{self.name}/validation", tr.take(keep), valid_items, negatives, {"carved_from": "train"})
