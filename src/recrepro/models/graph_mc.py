"""Non-deep matrix-completion baselines of Monti et al. (2017), Tables 2, 4 and 5: MC, GMC, GRALS.

All three fit X ≈ M − μ on the training entries Ω (μ = training mean, our choice), predict μ + X clipped to
the rating range, pick their regularisation weights on ``split.valid`` (carved from the training data) and
report the test RMSE of the chosen candidate (no refit on train + valid). Equation numbers of the original
papers not verified.

* **MC** (Candès & Recht 2009; solver: soft-impute, Mazumder, Hastie & Tibshirani 2010):
  min_X ½‖P_Ω(X − M)‖²_F + λ‖X‖_*, iterating X ← SVT_λ(P_Ω(M) + P_Ω⊥(X)) (proximal gradient, step 1) along a
  decreasing λ path with warm starts. λ = fraction · σ_max(P_Ω(M − μ)).
* **GMC** (Kalofolias, Bresson, Bronstein & Vandergheynst 2014): the same plus
  γ/2 (tr(Xᵀ L_r X) + tr(X L_c Xᵀ)) with normalised Laplacians (Kalofolias et al. use combinatorial ones;
  ours keeps the step size bounded). Solver: FISTA with step 1/(1 + γ(λ_max(L_r) + λ_max(L_c))), λ_max ≤ 2.
* **GRALS** (Rao, Yu, Ravikumar & Dhillon 2015): X = W Hᵀ of rank r,
  min ½‖P_Ω(W Hᵀ − M)‖² + ½ tr(Wᵀ(λ_g L_r + λ_r I)W) + ½ tr(Hᵀ(λ_g L_c + λ_r I)H); alternating exact
  minimisation in W and in H, each a linear system solved by warm-started conjugate gradient (as in GRALS).

Budget: a fixed number of iterations per candidate (config fields); the exact SVD of an m x n matrix is the
cost of one MC/GMC iteration (``svd_rank`` switches to a randomized truncated SVD for 3000 x 3000 data).
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from ..data.types import Ratings, RatingSplit
from ..device import device_name, resolve_device, seed_everything
from ..metrics import rmse
from ..training import FitResult
from .mgcnn import normalized_laplacian, sparse_to_torch, svd_factors, symmetric_spmm


@dataclass(frozen=True)
class SoftImputeConfig:
    """Nuclear-norm MC by soft-impute; every default is our choice (the paper quotes MC from elsewhere)."""

    lambda_fractions: tuple[float, ...] = (0.5, 0.3, 0.2, 0.1, 0.05, 0.03, 0.02, 0.01)  # λ / σ_max, large → small
    max_iter: int = 100  # iterations per λ (warm-started path)
    tol: float = 1e-4  # stop a λ when ‖X_k+1 − X_k‖_F / ‖X_k‖_F < tol (Mazumder et al. 2010)
    svd_rank: int | None = None  # None: exact SVD; k: randomized rank-k SVD (exact only if rank(X) < k)
    center: bool = True  # fit M − μ


@dataclass(frozen=True)
class GMCConfig:
    """Graph-regularised nuclear-norm MC; grids and budget are our choice."""

    lambda_fractions: tuple[float, ...] = (0.3, 0.1, 0.03, 0.01)  # λ / σ_max, warm-started path per γ
    gammas: tuple[float, ...] = (0.1, 1.0, 10.0)  # weight of the Dirichlet terms
    max_iter: int = 100  # FISTA iterations per (γ, λ)
    tol: float = 1e-5  # relative-change stopping rule
    svd_rank: int | None = None
    center: bool = True


@dataclass(frozen=True)
class GRALSConfig:
    """Graph-regularised ALS; rank 10 like sRMGCNN on real data, grids and budget our choice."""

    rank: int = 10
    lambda_ridge: tuple[float, ...] = (0.1, 1.0, 10.0)  # λ_r (sum-of-squares data term, so per-rating scale)
    lambda_graph: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0)  # λ_g on the normalised Laplacians
    n_outer: int = 30  # ALS sweeps (W then H)
    cg_iters: int = 20  # conjugate-gradient iterations per half-step, warm-started
    center: bool = True


# ---------------------------------------------------------------------------------------------------------
# shared helpers
# ---------------------------------------------------------------------------------------------------------


@dataclass
class _Data:
    users: torch.Tensor
    items: torch.Tensor
    values: torch.Tensor  # centred
    mu: float
    n_users: int
    n_items: int
    lap_rows: torch.Tensor | None
    lap_cols: torch.Tensor | None


def _prepare(split: RatingSplit, center: bool, device: torch.device, n_candidates: int) -> _Data:
    if n_candidates > 1 and (split.valid is None or len(split.valid) == 0):
        raise ValueError(
            "choosing among several regularisation weights needs split.valid; carve it with "
            "split.with_validation(fraction, seed) or pass a single-value grid"
        )
    tr = split.train
    mu = float(np.mean(tr.values, dtype=np.float64)) if center else 0.0
    users, items, values = tr.to_torch(device)

    def lap(adj: Any) -> torch.Tensor | None:
        return None if adj is None else sparse_to_torch(normalized_laplacian(adj), device, layout="csr")

    return _Data(users, items, values - mu, mu, tr.n_users, tr.n_items, lap(split.user_graph), lap(split.item_graph))


def _predict(x: torch.Tensor, mu: float, ratings: Ratings, rating_range: tuple[float, float]) -> np.ndarray:
    u = torch.as_tensor(ratings.users, device=x.device)
    i = torch.as_tensor(ratings.items, device=x.device)
    return (x[u, i] + mu).clamp(*rating_range).cpu().numpy()


def _score(
    x: torch.Tensor, d: _Data, split: RatingSplit, row: dict[str, Any]
) -> tuple[dict[str, Any], np.ndarray | None]:
    """Add train/valid/test RMSE to a history row; also return the test predictions."""
    row["train_rmse"] = rmse(_predict(x, d.mu, split.train, split.rating_range), split.train.values)
    if split.valid is not None and len(split.valid):
        row["valid_rmse"] = rmse(_predict(x, d.mu, split.valid, split.rating_range), split.valid.values)
    test_pred = _predict(x, d.mu, split.test, split.rating_range)
    row["test_rmse"] = rmse(test_pred, split.test.values)
    return row, test_pred


def _result(
    rows: list[dict[str, Any]], preds: list[np.ndarray], config: dict[str, Any], dev: torch.device
) -> FitResult:
    """Select the candidate with the lowest validation RMSE (the only one if there is a single candidate)."""
    history = pd.DataFrame(rows)
    best = int(history["valid_rmse"].idxmin()) if "valid_rmse" in history else 0
    valid = {"rmse": float(history.loc[best, "valid_rmse"])} if "valid_rmse" in history else {}
    return FitResult(
        metrics={"rmse": float(history.loc[best, "test_rmse"])},
        best_epoch=best,
        history=history,
        config=config | {"device": device_name(dev), "selected": {k: rows[best][k] for k in config["grid_keys"]}},
        valid_metrics=valid,
        test_predictions=preds[best],
        epochs_run=int(history["epoch"].sum()),
    )


def _svt(y: torch.Tensor, tau: float, svd_rank: int | None) -> torch.Tensor:
    """Singular value soft-thresholding: U max(S − τ, 0) Vᵀ."""
    if svd_rank is None:
        u, s, vh = torch.linalg.svd(y, full_matrices=False)
    else:
        u, s, v = torch.svd_lowrank(y, q=min(svd_rank, min(y.shape)), niter=4)
        vh = v.T
    s = (s - tau).clamp_min(0.0)
    k = int((s > 0).sum())
    return (u[:, :k] * s[:k]) @ vh[:k]


def _observed_matrix(d: _Data) -> torch.Tensor:
    p = torch.zeros(d.n_users, d.n_items, device=d.values.device)
    p[d.users, d.items] = d.values
    return p


def _prox_path(
    d: _Data,
    lambdas: list[float],
    gamma: float,
    max_iter: int,
    tol: float,
    svd_rank: int | None,
    accelerate: bool,
    on_lambda: Callable[[float, torch.Tensor, int, float], None],
) -> None:
    """Proximal gradient on ½‖P_Ω(X − M)‖² + λ‖X‖_* + γ/2 Dirichlet, along a decreasing λ path.

    With γ = 0 and no acceleration this is exactly soft-impute (step 1). ``on_lambda`` gets
    (λ, X, iterations, objective) after each λ.
    """
    observed = _observed_matrix(d)
    mask = torch.zeros_like(observed, dtype=torch.bool)
    mask[d.users, d.items] = True
    n_graphs = (d.lap_rows is not None) + (d.lap_cols is not None)
    lipschitz = 1.0 + gamma * 2.0 * n_graphs  # λ_max of a normalised Laplacian is ≤ 2

    def grad(x: torch.Tensor) -> torch.Tensor:
        g = torch.where(mask, x - observed, torch.zeros_like(x))
        if gamma and d.lap_rows is not None:
            g = g + gamma * symmetric_spmm(d.lap_rows, x)
        if gamma and d.lap_cols is not None:
            g = g + gamma * symmetric_spmm(d.lap_cols, x.T.contiguous()).T
        return g

    def objective(x: torch.Tensor, lam: float) -> float:
        val = 0.5 * float(((x - observed)[mask] ** 2).sum()) + lam * float(torch.linalg.matrix_norm(x, "nuc"))
        if gamma and d.lap_rows is not None:
            val += gamma / 2 * float((x * symmetric_spmm(d.lap_rows, x)).sum())
        if gamma and d.lap_cols is not None:
            val += gamma / 2 * float((x.T * symmetric_spmm(d.lap_cols, x.T.contiguous())).sum())
        return val

    x = torch.zeros_like(observed)
    for lam in lambdas:
        y, t, k = x, 1.0, 0
        for k in range(1, max_iter + 1):  # noqa: B007 (k is reported)
            x_new = _svt(y - grad(y) / lipschitz, lam / lipschitz, svd_rank)
            change = float(torch.linalg.norm(x_new - x)) / max(float(torch.linalg.norm(x)), 1e-12)
            if accelerate:
                t_new = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
                y = x_new + ((t - 1.0) / t_new) * (x_new - x)
                t = t_new
            else:
                y = x_new
            x = x_new
            if change < tol:
                break
        on_lambda(lam, x, k, objective(x, lam))


# ---------------------------------------------------------------------------------------------------------
# fit functions
# ---------------------------------------------------------------------------------------------------------


def fit_soft_impute(split: RatingSplit, config: SoftImputeConfig | None = None, *, device: str = "auto") -> FitResult:
    """Nuclear-norm MC; λ chosen on ``split.valid`` along a warm-started path (deterministic, no seed)."""
    config = config or SoftImputeConfig()
    dev = resolve_device(device)
    d = _prepare(split, config.center, dev, len(config.lambda_fractions))
    sigma_max = float(torch.linalg.matrix_norm(_observed_matrix(d), 2))
    rows: list[dict[str, Any]] = []
    preds: list[np.ndarray] = []
    tic = time.perf_counter()

    def record(lam: float, x: torch.Tensor, iters: int, obj: float) -> None:
        row = {"epoch": iters, "lambda": lam, "lambda_fraction": lam / sigma_max, "train_loss": obj}
        row["rank"] = int(torch.linalg.matrix_rank(x))
        row, pred = _score(x, d, split, row)
        rows.append(row | {"seconds": time.perf_counter() - tic})
        preds.append(pred)

    lambdas = [f * sigma_max for f in sorted(config.lambda_fractions, reverse=True)]
    _prox_path(d, lambdas, 0.0, config.max_iter, config.tol, config.svd_rank, False, record)
    return _result(rows, preds, asdict(config) | {"method": "soft-impute", "grid_keys": ["lambda_fraction"]}, dev)


def fit_gmc(split: RatingSplit, config: GMCConfig | None = None, *, device: str = "auto") -> FitResult:
    """Graph-regularised MC by FISTA; (γ, λ) chosen on ``split.valid``."""
    config = config or GMCConfig()
    dev = resolve_device(device)
    d = _prepare(split, config.center, dev, len(config.lambda_fractions) * len(config.gammas))
    if d.lap_rows is None and d.lap_cols is None:
        raise ValueError("GMC needs at least one graph (split.user_graph or split.item_graph)")
    sigma_max = float(torch.linalg.matrix_norm(_observed_matrix(d), 2))
    rows: list[dict[str, Any]] = []
    preds: list[np.ndarray] = []
    tic = time.perf_counter()
    lambdas = [f * sigma_max for f in sorted(config.lambda_fractions, reverse=True)]
    for gamma in config.gammas:

        def record(lam: float, x: torch.Tensor, iters: int, obj: float, gamma: float = gamma) -> None:
            row = {"epoch": iters, "gamma": gamma, "lambda": lam, "lambda_fraction": lam / sigma_max}
            row["train_loss"] = obj
            row, pred = _score(x, d, split, row)
            rows.append(row | {"seconds": time.perf_counter() - tic})
            preds.append(pred)

        _prox_path(d, lambdas, gamma, config.max_iter, config.tol, config.svd_rank, True, record)
    return _result(rows, preds, asdict(config) | {"method": "gmc", "grid_keys": ["gamma", "lambda_fraction"]}, dev)


def _conjugate_gradient(
    apply: Callable[[torch.Tensor], torch.Tensor], b: torch.Tensor, x0: torch.Tensor, iters: int
) -> torch.Tensor:
    """Solve A x = b for symmetric positive-definite A (given as a function), warm-started at x0."""
    x = x0
    r = b - apply(x)
    p = r
    rs = (r * r).sum()
    b_norm = float(b.norm())
    for _ in range(iters):
        if float(rs.sqrt()) <= 1e-10 * max(b_norm, 1e-30):
            break
        ap = apply(p)
        alpha = rs / (p * ap).sum()
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = (r * r).sum()
        p = r + (rs_new / rs) * p
        rs = rs_new
    return x


def _grals_half_step(
    rows: torch.Tensor,
    cols: torch.Tensor,
    values: torch.Tensor,
    fixed: torch.Tensor,
    current: torch.Tensor,
    lap: torch.Tensor | None,
    lam_graph: float,
    lam_ridge: float,
    cg_iters: int,
) -> torch.Tensor:
    """argmin_F ½Σ_Ω (f_rowᵀ g_col − v)² + ½tr(Fᵀ(λ_g L + λ_r I)F) with G = ``fixed``, by CG."""
    g = fixed[cols]

    def apply(f: torch.Tensor) -> torch.Tensor:
        pred = (f[rows] * g).sum(1, keepdim=True)
        out = torch.zeros_like(f).index_add_(0, rows, pred * g) + lam_ridge * f
        if lap is not None and lam_graph:
            out = out + lam_graph * symmetric_spmm(lap, f)
        return out

    b = torch.zeros_like(current).index_add_(0, rows, values[:, None] * g)
    return _conjugate_gradient(apply, b, current, cg_iters)


def fit_grals(
    split: RatingSplit, config: GRALSConfig | None = None, *, device: str = "auto", seed: int = 0
) -> FitResult:
    """GRALS with ALS + CG; (λ_r, λ_g) chosen on ``split.valid``. Initialised by the rank-r SVD of P_Ω(M − μ)."""
    config = config or GRALSConfig()
    dev = resolve_device(device)
    seed_everything(seed)  # the solver is deterministic; seeded for the shared fit-function contract
    grid = list(itertools.product(config.lambda_ridge, config.lambda_graph))
    d = _prepare(split, config.center, dev, len(grid))
    tr = split.train
    centred = sp.csr_matrix((tr.values - d.mu, (tr.users, tr.items)), shape=(tr.n_users, tr.n_items))
    w0, h0 = svd_factors(centred, config.rank)
    rows: list[dict[str, Any]] = []
    preds: list[np.ndarray] = []
    tic = time.perf_counter()
    for lam_r, lam_g in grid:
        w = torch.as_tensor(w0, dtype=torch.float32, device=dev)
        h = torch.as_tensor(h0, dtype=torch.float32, device=dev)
        for _ in range(config.n_outer):
            w = _grals_half_step(d.users, d.items, d.values, h, w, d.lap_rows, lam_g, lam_r, config.cg_iters)
            h = _grals_half_step(d.items, d.users, d.values, w, h, d.lap_cols, lam_g, lam_r, config.cg_iters)
        resid = (w[d.users] * h[d.items]).sum(1) - d.values
        obj = 0.5 * float((resid**2).sum()) + 0.5 * lam_r * float((w**2).sum() + (h**2).sum())
        if d.lap_rows is not None:
            obj += 0.5 * lam_g * float((w * symmetric_spmm(d.lap_rows, w)).sum())
        if d.lap_cols is not None:
            obj += 0.5 * lam_g * float((h * symmetric_spmm(d.lap_cols, h)).sum())
        row, pred = _score(w @ h.T, d, split, {"epoch": config.n_outer, "lambda_ridge": lam_r, "lambda_graph": lam_g})
        rows.append(row | {"train_loss": obj, "seconds": time.perf_counter() - tic})
        preds.append(pred)
    cfg = asdict(config) | {"method": "grals", "seed": seed, "grid_keys": ["lambda_ridge", "lambda_graph"]}
    return _result(rows, preds, cfg, dev)


__all__ = [
    "GMCConfig",
    "GRALSConfig",
    "SoftImputeConfig",
    "fit_gmc",
    "fit_grals",
    "fit_soft_impute",
]
