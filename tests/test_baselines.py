"""Rating baselines: mean predictors by hand and on ML-100K u1 (Monti Table 4 rows), biased MF learning and resume."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import recrepro.models.baselines as baselines
from recrepro.data import load_split
from recrepro.data.types import Ratings, RatingSplit
from recrepro.metrics import rmse
from recrepro.models.baselines import BiasedMFConfig, fit_biased_mf, mean_baseline_predictions

SMALL = BiasedMFConfig(n_factors=4, reg=0.01, lr=0.02, batch_size=64, max_epochs=40, patience=5, checkpoint_every=1)


def tiny() -> tuple[Ratings, Ratings]:
    # train: u0 rates i0=5, i1=3; u1 rates i0=4; u2 rates i1=2. u3 and i2 have no training rating.
    train = Ratings(np.array([0, 0, 1, 2]), np.array([0, 1, 0, 1]), np.array([5.0, 3.0, 4.0, 2.0]), 4, 3)
    query = Ratings(np.array([0, 3, 3, 2]), np.array([2, 0, 2, 1]), np.zeros(4), 4, 3)
    return train, query


def test_mean_baselines_by_hand() -> None:
    train, query = tiny()
    mu = 3.5  # (5 + 3 + 4 + 2) / 4
    user = {0: 4.0, 1: 4.0, 2: 2.0, 3: mu}  # user 3 unseen -> global mean
    item = {0: 4.5, 1: 2.5, 2: mu}  # item 2 unseen -> global mean
    pairs = list(zip(query.users.tolist(), query.items.tolist(), strict=True))
    np.testing.assert_allclose(mean_baseline_predictions("global-mean", train, query), [mu] * 4)
    np.testing.assert_allclose(mean_baseline_predictions("user-mean", train, query), [user[u] for u, _ in pairs])
    np.testing.assert_allclose(mean_baseline_predictions("item-mean", train, query), [item[i] for _, i in pairs])
    np.testing.assert_allclose(
        mean_baseline_predictions("user-item-mean", train, query), [(user[u] + item[i]) / 2 for u, i in pairs]
    )
    with pytest.raises(ValueError, match="unknown mean baseline"):
        mean_baseline_predictions("median", train, query)


@pytest.mark.parametrize(("kind", "expected"), [("global-mean", 1.1537), ("user-mean", 1.0630), ("item-mean", 1.0334)])
def test_mean_baselines_on_ml100k_u1(data_root: Path, kind: str, expected: float) -> None:
    """Monti et al. Table 4's mean rows, recomputed on u1.base/u1.test (= split_1.mat)."""
    split = load_split("ml-100k/u1", data_root)
    assert round(rmse(mean_baseline_predictions(kind, split.train, split.test), split.test.values), 4) == expected


def low_rank_split(n_users: int = 40, n_items: int = 30, seed: int = 0) -> RatingSplit:
    """Ratings 3 + 0.8 a_u·b_i (rank 2, clipped to [1, 5], small noise) on 60% of the cells, split 80/10/10."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n_users, 2)), rng.normal(size=(n_items, 2))
    full = np.clip(3.0 + 0.8 * a @ b.T + 0.05 * rng.normal(size=(n_users, n_items)), 1.0, 5.0)
    users, items = np.nonzero(rng.random((n_users, n_items)) < 0.6)
    part = rng.choice(3, size=len(users), p=[0.8, 0.1, 0.1])

    def take(k: int) -> Ratings:
        m = part == k
        return Ratings(users[m], items[m], full[users[m], items[m]], n_users, n_items)

    return RatingSplit("synthetic-low-rank", take(0), take(2), valid=take(1))


def test_biased_mf_beats_the_global_mean(device: str) -> None:
    split = low_rank_split()
    res = fit_biased_mf(split, SMALL, device=device, seed=0)
    baseline = rmse(mean_baseline_predictions("global-mean", split.train, split.test), split.test.values)
    assert res.metrics["rmse"] < 0.8 * baseline
    # the reported state is the best validation epoch, and its test RMSE is the one logged at that epoch
    hist = res.history.set_index("epoch")
    assert res.best_epoch == int(hist["valid_rmse"].idxmin())
    assert res.valid_metrics["rmse"] == pytest.approx(hist["valid_rmse"].min())
    assert res.metrics["rmse"] == pytest.approx(hist.loc[res.best_epoch, "test_rmse"], rel=1e-6)
    assert res.epochs_run == len(res.history)
    assert res.test_predictions.min() >= 1.0 and res.test_predictions.max() <= 5.0  # clamped to the scale


def test_biased_mf_needs_a_validation_split() -> None:
    split = low_rank_split()
    with pytest.raises(ValueError, match="split.valid"):
        fit_biased_mf(replace(split, valid=None), SMALL, device="cpu")
    empty = split.train.take(np.zeros(len(split.train), dtype=bool))
    with pytest.raises(ValueError, match="split.valid"):
        fit_biased_mf(replace(split, valid=empty), SMALL, device="cpu")


def _same_result(a: baselines.FitResult, b: baselines.FitResult) -> None:
    assert a.metrics == b.metrics and a.valid_metrics == b.valid_metrics and a.best_epoch == b.best_epoch
    pd.testing.assert_frame_equal(a.history, b.history)
    np.testing.assert_array_equal(a.test_predictions, b.test_predictions)


def test_biased_mf_is_deterministic_per_seed() -> None:
    split = low_rank_split()
    cfg = replace(SMALL, max_epochs=5)
    a, b = fit_biased_mf(split, cfg, device="cpu", seed=1), fit_biased_mf(split, cfg, device="cpu", seed=1)
    _same_result(a, b)
    assert fit_biased_mf(split, cfg, device="cpu", seed=2).metrics != a.metrics


def test_biased_mf_resume_equals_uninterrupted(tmp_path: Path) -> None:
    split = low_rank_split()
    cfg = replace(SMALL, max_epochs=8, patience=100)
    full = fit_biased_mf(split, cfg, device="cpu", seed=3)
    ckpt = tmp_path / "mf.pt"
    fit_biased_mf(split, replace(cfg, max_epochs=3), device="cpu", seed=3, checkpoint_path=ckpt)  # "interrupted"
    assert ckpt.exists()
    resumed = fit_biased_mf(split, cfg, device="cpu", seed=3, checkpoint_path=ckpt)
    _same_result(full, resumed)
    assert resumed.epochs_run == 8


def test_biased_mf_resume_after_a_crash(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A crash in epoch 4 with checkpoints every 2 epochs: the resumed run redoes epochs 3-4 identically."""
    split = low_rank_split()
    cfg = replace(SMALL, max_epochs=6, patience=100, checkpoint_every=2)
    full = fit_biased_mf(split, cfg, device="cpu", seed=4)
    real = baselines.train_one_epoch
    calls = {"n": 0}

    def crashing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt("simulated interruption")
        return real(*args, **kwargs)

    ckpt = tmp_path / "mf.pt"
    monkeypatch.setattr(baselines, "train_one_epoch", crashing)
    with pytest.raises(KeyboardInterrupt):
        fit_biased_mf(split, cfg, device="cpu", seed=4, checkpoint_path=ckpt)
    monkeypatch.setattr(baselines, "train_one_epoch", real)
    resumed = fit_biased_mf(split, cfg, device="cpu", seed=4, checkpoint_path=ckpt)
    _same_result(full, resumed)
