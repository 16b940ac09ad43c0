"""Inductive matrix completion (Monti et al. Table 4's IMC row) and the ML-100K side features it reads."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from recrepro.data import load_split
from recrepro.data.side_features import ml100k_feature_matrices, read_ml100k_users
from recrepro.data.types import Ratings, RatingSplit
from recrepro.models.imc import IMCConfig, _ridge_factor, fit_imc


def _bilinear_problem(seed: int = 0, noise: float = 0.0) -> tuple[RatingSplit, np.ndarray, np.ndarray]:
    """Ratings 3 + x_iᵀ Z y_j (+ noise) with a rank-2 Z, 60% of a 60 x 50 matrix observed."""
    rng = np.random.default_rng(seed)
    xu, xi = rng.normal(size=(60, 6)), rng.normal(size=(50, 5))
    z = 0.3 * rng.normal(size=(6, 2)) @ rng.normal(size=(2, 5))
    full = 3.0 + xu @ z @ xi.T + noise * rng.normal(size=(60, 50))
    u, i = np.nonzero(rng.random((60, 50)) < 0.6)
    part = rng.random(len(u))

    def take(mask: np.ndarray) -> Ratings:
        return Ratings(u[mask], i[mask], full[u[mask], i[mask]], 60, 50)

    valid = take((part >= 0.7) & (part < 0.85))
    # continuous ratings: a range wide enough that clipping never binds
    return RatingSplit("bilinear", take(part < 0.7), take(part >= 0.85), valid, (-100.0, 100.0)), xu, xi


def test_ridge_half_step_equals_the_explicit_design_matrix_solution() -> None:
    """The per-row normal equations equal ridge regression on rows kron(x_i, c_k), built explicitly."""
    rng = np.random.default_rng(1)
    own, codes = rng.normal(size=(7, 3)), rng.normal(size=(40, 2))
    idx, target, lam = rng.integers(0, 7, 40), rng.normal(size=40), 0.7
    design = np.stack([np.kron(own[k], codes[n]) for n, k in enumerate(idx)])
    expected = np.linalg.solve(design.T @ design + lam * np.eye(6), design.T @ target).reshape(3, 2)
    got = _ridge_factor(*(torch.as_tensor(a) for a in (own, idx, codes, target)), lam)
    np.testing.assert_allclose(got.numpy(), expected, rtol=1e-10, atol=1e-12)


def test_imc_recovers_a_noise_free_bilinear_matrix(device: str) -> None:
    split, xu, xi = _bilinear_problem()
    config = IMCConfig(ranks=(1, 3, 5), lambdas=(1e-6,), n_sweeps=200, tol=1e-14)
    res = fit_imc(split, xu, xi, config, device=device)
    # with the constant columns the map is [[Z, 0], [0, 3 - μ]]: rank 3; validation must see that rank 1 is short
    assert res.config["selected"]["rank"] >= 3
    assert res.metrics["rmse"] < 1e-4
    assert res.history.loc[0, "valid_rmse"] > 100 * res.valid_metrics["rmse"]


def test_imc_is_deterministic_and_selects_on_validation() -> None:
    split, xu, xi = _bilinear_problem(noise=0.3)
    config = IMCConfig(ranks=(1, 2), lambdas=(0.1, 10.0), n_sweeps=20)
    a, b = fit_imc(split, xu, xi, config, device="cpu"), fit_imc(split, xu, xi, config, device="cpu")
    assert a.metrics == b.metrics and a.config["selected"] == b.config["selected"]
    best = a.history["valid_rmse"].idxmin()
    assert a.metrics["rmse"] == a.history.loc[best, "test_rmse"]
    assert a.config["selected"] == {"rank": int(a.history.loc[best, "rank"]), "lambda": a.history.loc[best, "lambda"]}


def test_imc_rejects_mismatched_features_and_a_grid_without_validation() -> None:
    split, xu, xi = _bilinear_problem()
    with pytest.raises(ValueError, match="one row per id"):
        fit_imc(split, xu[:-1], xi, IMCConfig(ranks=(1,), lambdas=(1.0,)))
    with pytest.raises(ValueError, match="split.valid"):
        fit_imc(replace(split, valid=None), xu, xi, IMCConfig(ranks=(1, 2), lambdas=(1.0,)))
    with pytest.raises(ValueError, match="exceeds"):
        fit_imc(split, xu, xi, IMCConfig(ranks=(7,), lambdas=(1.0,)))


def test_ml100k_side_features(data_root: Path) -> None:
    user_x, item_x, user_cols, item_cols = ml100k_feature_matrices(data_root)
    assert user_x.shape == (943, 23) and item_x.shape == (1682, 19)
    assert len(user_cols) == 23 and len(item_cols) == 19 and item_cols[0] == "unknown"
    np.testing.assert_array_equal(user_x[:, 2:].sum(1), 1.0)  # exactly one occupation per user
    assert user_x[:, 1].sum() == 273  # women in ML-100K (README: 943 users)
    assert user_x[:, 0].min() > 0.0 and user_x[:, 0].max() == 1.0
    raw = read_ml100k_users(data_root)
    assert user_x[0, 0] == raw.loc[0, "age"] / raw["age"].max()  # row k is user id k + 1 (id 1: 24, M, technician)
    assert user_cols[2 + int(np.argmax(user_x[0, 2:]))] == "occupation=technician"
    assert set(np.unique(item_x)) <= {0.0, 1.0} and item_x.sum(1).min() >= 1  # every movie has a genre flag


def test_imc_on_ml100k_u1_uses_the_features(data_root: Path) -> None:
    """Features alone beat the global mean (1.154) but not the per-user mean (1.063) on split_1."""
    split = load_split("ml-100k-monti", data_root).with_validation(0.1, seed=0)
    user_x, item_x, _, _ = ml100k_feature_matrices(data_root)
    res = fit_imc(split, user_x, item_x, IMCConfig(ranks=(2,), lambdas=(1.0,), n_sweeps=10), device="cpu")
    assert 1.07 < res.metrics["rmse"] < 1.14
