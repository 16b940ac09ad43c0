"""Inductive matrix completion (IMC; Jain & Dhillon 2013, Xu et al. 2013), Monti et al. (2017) Table 4's IMC row.

Objective (rank-r factorised form of Jain & Dhillon 2013; equation numbers not verified): with user features
x_i ∈ R^{d_u} and item features y_j ∈ R^{d_i},

    min_{W ∈ R^{d_u x r}, H ∈ R^{d_i x r}}  ½ Σ_{(i,j) ∈ Ω} (x_iᵀ W Hᵀ y_j − (M_ij − μ))² + λ/2 (‖W‖²_F + ‖H‖²_F),

so a rating is predicted from the features alone: μ + x_iᵀ W Hᵀ y_j, clipped to the rating range. Solver:
alternating exact minimisation (each half-step is a ridge regression in d·r unknowns, solved from its normal
equations, built per user / per item so that no |Ω| x d·r design matrix is formed), from a seeded random H.

Our choices (Monti et al. quote IMC from earlier work; its features and settings there are not recovered):
centring on the training mean μ and a constant column appended to both feature matrices (so that the model
holds per-user-feature and per-item-feature offsets, as the graph baselines hold μ); rank r and λ chosen on
``split.valid`` from a grid; a fixed number of sweeps with a relative-objective stopping rule.

Protocol: like the other non-deep baselines (``recrepro.models.graph_mc``), every candidate is fitted on
``split.train``, selected on ``split.valid`` (carved from the training data) and its test RMSE reported.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data.types import Ratings, RatingSplit
from ..device import device_name, resolve_device
from ..metrics import rmse
from ..training import FitResult

_CHUNK = 20_000  # entries per scatter when accumulating the per-user / per-item Gram blocks


@dataclass(frozen=True)
class IMCConfig:
    """IMC grid and budget; every value is our choice (see the module docstring)."""

    ranks: tuple[int, ...] = (1, 2, 5, 10, 20)
    lambdas: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)  # on a sum-of-squares data term
    n_sweeps: int = 50  # ALS sweeps (W then H) per candidate
    tol: float = 1e-7  # stop when the objective's relative decrease in a sweep is below tol
    center: bool = True  # fit M − μ
    intercept: bool = True  # append a constant column to both feature matrices


def _with_constant(x: np.ndarray, intercept: bool) -> np.ndarray:
    return np.column_stack([x, np.ones(len(x))]) if intercept else x


def _ridge_factor(
    own: torch.Tensor, own_idx: torch.Tensor, other_codes: torch.Tensor, target: torch.Tensor, lam: float
) -> torch.Tensor:
    """argmin_W ½ Σ (own_kᵀ W c_k − t_k)² + λ/2 ‖W‖², c_k the other side's code of entry k.

    Normal equations grouped by row of ``own``: Gram = Σ_i (x_i x_iᵀ) ⊗ S_i with S_i = Σ_{k: row i} c_k c_kᵀ,
    right-hand side Σ_i x_i ⊗ t_i with t_i = Σ_{k: row i} t_k c_k.
    """
    n, d = own.shape
    r = other_codes.shape[1]
    s = torch.zeros(n, r, r, dtype=own.dtype, device=own.device)
    t = torch.zeros(n, r, dtype=own.dtype, device=own.device)
    for lo in range(0, len(own_idx), _CHUNK):
        idx, c, b = own_idx[lo : lo + _CHUNK], other_codes[lo : lo + _CHUNK], target[lo : lo + _CHUNK]
        s.index_add_(0, idx, c[:, :, None] * c[:, None, :])
        t.index_add_(0, idx, b[:, None] * c)
    outer = (own[:, :, None] * own[:, None, :]).reshape(n, d * d)
    gram = (outer.T @ s.reshape(n, r * r)).reshape(d, d, r, r).permute(0, 2, 1, 3).reshape(d * r, d * r)
    gram += lam * torch.eye(d * r, dtype=own.dtype, device=own.device)
    rhs = torch.einsum("ia,ik->ak", own, t).reshape(d * r)
    return torch.linalg.solve(gram, rhs).reshape(d, r)


def _fit_one(
    xu: torch.Tensor, xi: torch.Tensor, u: torch.Tensor, i: torch.Tensor, b: torch.Tensor, rank: int, lam: float,
    config: IMCConfig, generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, int, float]:  # fmt: skip
    """ALS from a random H: (W, H, sweeps run, final objective)."""
    h = 0.1 * torch.randn(xi.shape[1], rank, generator=generator, dtype=xu.dtype).to(xu.device)
    objective, sweeps = float("inf"), 0
    for sweeps in range(1, config.n_sweeps + 1):  # noqa: B007 (sweeps is reported)
        w = _ridge_factor(xu, u, (xi @ h)[i], b, lam)
        h = _ridge_factor(xi, i, (xu @ w)[u], b, lam)
        residual = ((xu @ w)[u] * (xi @ h)[i]).sum(1) - b
        new = 0.5 * float(residual.square().sum()) + lam / 2 * float(w.square().sum() + h.square().sum())
        converged = objective - new <= config.tol * abs(new)
        objective = new
        if converged:
            break
    return w, h, sweeps, objective


def fit_imc(
    split: RatingSplit,
    user_features: np.ndarray,
    item_features: np.ndarray,
    config: IMCConfig | None = None,
    *,
    device: str = "auto",
    seed: int = 0,
) -> FitResult:
    """Fit every (rank, λ) of the grid on ``split.train``; select on ``split.valid``; report its test RMSE.

    ``user_features`` / ``item_features``: one row per user / item id of ``split`` (id order), no constant column.
    """
    config = config or IMCConfig()
    if user_features.shape[0] != split.n_users or item_features.shape[0] != split.n_items:
        raise ValueError(
            f"feature rows ({user_features.shape[0]} users, {item_features.shape[0]} items) do not match the split "
            f"({split.n_users} users, {split.n_items} items); give one row per id, in id order"
        )
    n_candidates = len(config.ranks) * len(config.lambdas)
    if n_candidates > 1 and (split.valid is None or len(split.valid) == 0):
        raise ValueError("choosing rank and λ needs split.valid; carve it with split.with_validation(fraction, seed)")
    dev = resolve_device(device)
    xu_np = _with_constant(np.asarray(user_features, np.float64), config.intercept)
    xi_np = _with_constant(np.asarray(item_features, np.float64), config.intercept)
    max_rank = min(xu_np.shape[1], xi_np.shape[1])
    if max(config.ranks) > max_rank:
        raise ValueError(f"rank {max(config.ranks)} exceeds the feature dimensions' limit {max_rank}")
    xu = torch.as_tensor(xu_np, device=dev)
    xi = torch.as_tensor(xi_np, device=dev)
    tr = split.train
    mu = float(np.mean(tr.values, dtype=np.float64)) if config.center else 0.0
    u = torch.as_tensor(tr.users, device=dev)
    i = torch.as_tensor(tr.items, device=dev)
    b = torch.as_tensor(tr.values, dtype=torch.float64, device=dev) - mu

    def predict(w: torch.Tensor, h: torch.Tensor, ratings: Ratings) -> np.ndarray:
        pu = torch.as_tensor(ratings.users, device=dev)
        pi = torch.as_tensor(ratings.items, device=dev)
        score = ((xu @ w)[pu] * (xi @ h)[pi]).sum(1) + mu
        return score.clamp(*split.rating_range).cpu().numpy()

    generator = torch.Generator().manual_seed(seed)
    rows: list[dict[str, Any]] = []
    preds: list[np.ndarray] = []
    tic = time.perf_counter()
    for rank, lam in itertools.product(config.ranks, config.lambdas):
        w, h, sweeps, objective = _fit_one(xu, xi, u, i, b, rank, lam, config, generator)
        row: dict[str, Any] = {"rank": rank, "lambda": lam, "epoch": sweeps, "train_loss": objective}
        row["train_rmse"] = rmse(predict(w, h, tr), tr.values)
        if split.valid is not None and len(split.valid):
            row["valid_rmse"] = rmse(predict(w, h, split.valid), split.valid.values)
        preds.append(predict(w, h, split.test))
        row["test_rmse"] = rmse(preds[-1], split.test.values)
        rows.append(row | {"seconds": time.perf_counter() - tic})
    history = pd.DataFrame(rows)
    best = int(history["valid_rmse"].idxmin()) if "valid_rmse" in history else 0
    return FitResult(
        metrics={"rmse": float(history.loc[best, "test_rmse"])},
        best_epoch=best,
        history=history,
        config=asdict(config)
        | {
            "method": "imc",
            "device": device_name(dev),
            "seed": seed,
            "feature_dims": [int(xu_np.shape[1]), int(xi_np.shape[1])],
            "selected": {"rank": int(rows[best]["rank"]), "lambda": float(rows[best]["lambda"])},
        },
        valid_metrics={"rmse": float(history.loc[best, "valid_rmse"])} if "valid_rmse" in history else {},
        test_predictions=preds[best],
        epochs_run=int(history["epoch"].sum()),
    )
