"""Rating-prediction baselines every table is measured against.

Objective: predict r_ui on the dataset's scale. The mean baselines are closed form on the training entries
(Monti et al. 2017, Table 4 rows "Global mean", "User mean", "Movie mean"). The biased matrix factorisation is
Koren, Bell & Volinsky (2009), eq. 4/5 of that paper: r̂_ui = μ + b_u + b_i + p_uᵀq_i, minimising squared
error plus λ(‖p_u‖² + ‖q_i‖² + b_u² + b_i²) per observed rating; trained here with minibatch Adam and early
stopping on a validation split carved from the training data (test never used for a decision). Ratings are
modelled in units of (max − min)/4 (our choice), so λ and the step size mean the same on a 1–5, a 0.5–5 and a
1–100 scale and one grid serves every dataset.
"""

from __future__ import annotations

import itertools
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data.types import Ratings, RatingSplit
from ..device import resolve_device, seed_everything
from ..metrics import rmse
from ..training import EarlyStopping, FitResult, atomic_torch_save, load_checkpoint

MEAN_BASELINES = ("global-mean", "user-mean", "item-mean", "user-item-mean")


def mean_baseline_predictions(kind: str, train: Ratings, query: Ratings) -> np.ndarray:
    """Predictions of a mean baseline for the (user, item) pairs of ``query``.

    A user (item) with no training rating falls back to the global mean. ``user-item-mean`` is the average
    of the user and item means (the variant discussed in fmonti/mgcnn issue #3).
    """
    mu = float(np.mean(train.values, dtype=np.float64))

    def side_mean(ids: np.ndarray, n: int, query_ids: np.ndarray) -> np.ndarray:
        sums = np.bincount(ids, weights=train.values.astype(np.float64), minlength=n)
        counts = np.bincount(ids, minlength=n)
        means = np.where(counts > 0, sums / np.maximum(counts, 1), mu)
        return means[query_ids]

    if kind == "global-mean":
        return np.full(len(query), mu)
    if kind == "user-mean":
        return side_mean(train.users, train.n_users, query.users)
    if kind == "item-mean":
        return side_mean(train.items, train.n_items, query.items)
    if kind == "user-item-mean":
        return 0.5 * (
            side_mean(train.users, train.n_users, query.users) + side_mean(train.items, train.n_items, query.items)
        )
    raise ValueError(f"unknown mean baseline {kind!r}; choose one of {', '.join(MEAN_BASELINES)}")


@dataclass(frozen=True)
class BiasedMFConfig:
    """Hyperparameters of biased MF; the defaults are our choices (no paper prescribes them)."""

    n_factors: int = 64  # our choice; tuned per dataset by tune_biased_mf
    reg: float = 0.05  # λ on factors and biases, per observed rating (Koren et al. 2009 form)
    lr: float = 0.005  # Adam step size, our choice
    batch_size: int = 1024  # our choice
    max_epochs: int = 200  # upper bound; early stopping usually ends far sooner
    patience: int = 8  # epochs without validation improvement before stopping
    init_std: float = 0.05  # N(0, init_std) factor initialisation
    checkpoint_every: int = 5


def rating_unit(lo: float, hi: float) -> float:
    """The unit biased MF models ratings in: a 4-step range (1–5) maps to 1."""
    return (hi - lo) / 4.0 if hi > lo else 1.0


class BiasedMF(torch.nn.Module):
    def __init__(
        self, n_users: int, n_items: int, n_factors: int, global_mean: float, init_std: float, scale: float = 1.0
    ) -> None:
        super().__init__()
        self.user_factors = torch.nn.Embedding(n_users, n_factors)
        self.item_factors = torch.nn.Embedding(n_items, n_factors)
        self.user_bias = torch.nn.Embedding(n_users, 1)
        self.item_bias = torch.nn.Embedding(n_items, 1)
        torch.nn.init.normal_(self.user_factors.weight, std=init_std)
        torch.nn.init.normal_(self.item_factors.weight, std=init_std)
        torch.nn.init.zeros_(self.user_bias.weight)
        torch.nn.init.zeros_(self.item_bias.weight)
        self.register_buffer("global_mean", torch.tensor(float(global_mean)))
        self.register_buffer("scale", torch.tensor(float(scale)))  # ratings are modelled in units of `scale`

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions and the per-example squared norm of the parameters they touch (for λ)."""
        p, q = self.user_factors(users), self.item_factors(items)
        bu, bi = self.user_bias(users).squeeze(-1), self.item_bias(items).squeeze(-1)
        pred = self.global_mean + bu + bi + (p * q).sum(-1)
        norms = (p * p).sum(-1) + (q * q).sum(-1) + bu * bu + bi * bi
        return pred, norms


def _predict(model: BiasedMF, data: Ratings, device: torch.device, lo: float, hi: float) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        u, i, _ = data.to_torch(device)
        pred, _ = model(u, i)
    return (pred * model.scale).clamp(lo, hi).cpu().numpy()


def train_one_epoch(
    model: BiasedMF,
    opt: torch.optim.Optimizer,
    users: torch.Tensor,
    items: torch.Tensor,
    ratings: torch.Tensor,
    batch_size: int,
    reg: float,
    gen: torch.Generator,
) -> float:
    """One shuffled pass over the training ratings; returns the training RMSE seen during the pass."""
    model.train()
    n = len(ratings)
    perm = torch.randperm(n, generator=gen).to(ratings.device)
    total = 0.0
    for start in range(0, n, batch_size):
        idx = perm[start : start + batch_size]
        pred, norms = model(users[idx], items[idx])
        err = pred - ratings[idx]
        loss = (err * err + reg * norms).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float((err * err).sum().detach())
    return float(np.sqrt(total / n))


def fit_biased_mf(
    split: RatingSplit,
    config: BiasedMFConfig = BiasedMFConfig(),
    *,
    device: str = "auto",
    seed: int = 0,
    checkpoint_path: Path | None = None,
) -> FitResult:
    """Train biased MF on ``split.train``, stop early on ``split.valid``, report test RMSE at the best epoch."""
    if split.valid is None or len(split.valid) == 0:
        raise ValueError("fit_biased_mf needs split.valid; carve one with split.with_validation(fraction, seed)")
    dev = resolve_device(device)
    gen = seed_everything(seed)
    lo, hi = split.rating_range
    scale = rating_unit(lo, hi)
    model = BiasedMF(
        split.n_users, split.n_items, config.n_factors, float(split.train.values.mean()) / scale, config.init_std, scale
    ).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    stopper = EarlyStopping(config.patience)
    history: list[dict[str, float]] = []
    best_state: dict[str, torch.Tensor] = {}
    start_epoch = 0
    state = load_checkpoint(checkpoint_path)
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        stopper.load_state_dict(state["stopper"])
        best_state, history, start_epoch = state["best_state"], state["history"], state["epoch"]
        gen.set_state(state["generator"])
    u_all, i_all, r_all = split.train.to_torch(dev)
    r_all = r_all / scale
    t0 = time.perf_counter()
    epoch = start_epoch
    for epoch in range(start_epoch, config.max_epochs):
        if stopper.should_stop:
            break
        train_rmse = scale * train_one_epoch(model, opt, u_all, i_all, r_all, config.batch_size, config.reg, gen)
        valid_rmse = rmse(_predict(model, split.valid, dev, lo, hi), split.valid.values)
        test_rmse = rmse(_predict(model, split.test, dev, lo, hi), split.test.values)  # curve only
        history.append(
            {
                "epoch": epoch + 1,
                "train_rmse": train_rmse,
                "valid_rmse": valid_rmse,
                "test_rmse": test_rmse,
            }
        )
        if stopper.update(valid_rmse, epoch + 1):
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        if checkpoint_path is not None and (epoch + 1) % config.checkpoint_every == 0:
            atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "optimizer": opt.state_dict(),
                    "stopper": stopper.state_dict(),
                    "best_state": best_state,
                    "history": history,
                    "epoch": epoch + 1,
                    "generator": gen.get_state(),
                },
                checkpoint_path,
            )
    model.load_state_dict(best_state)
    test_pred = _predict(model, split.test, dev, lo, hi)
    return FitResult(
        metrics={"rmse": rmse(test_pred, split.test.values)},
        valid_metrics={"rmse": stopper.best},
        best_epoch=stopper.best_epoch,
        history=pd.DataFrame(history),
        config={**asdict(config), "seed": seed, "device": str(dev), "seconds": time.perf_counter() - t0},
        test_predictions=test_pred,
        epochs_run=len(history),
    )


def tune_biased_mf(
    split: RatingSplit,
    grid: dict[str, list[Any]],
    base: BiasedMFConfig = BiasedMFConfig(),
    *,
    device: str = "auto",
    seed: int = 0,
) -> tuple[BiasedMFConfig, pd.DataFrame]:
    """Grid search on validation RMSE only; returns the best config and one row per trial (budget = rows)."""
    rows = []
    best: tuple[float, BiasedMFConfig] | None = None
    keys = list(grid)
    for values in itertools.product(*(grid[k] for k in keys)):
        cfg = replace(base, **dict(zip(keys, values, strict=True)))
        res = fit_biased_mf(split, cfg, device=device, seed=seed)
        rows.append(
            {
                **dict(zip(keys, values, strict=True)),
                "valid_rmse": res.valid_metrics["rmse"],
                "best_epoch": res.best_epoch,
                "seconds": res.config["seconds"],
            }
        )
        if best is None or res.valid_metrics["rmse"] < best[0]:
            best = (res.valid_metrics["rmse"], cfg)
    assert best is not None, "empty grid"
    return best[1], pd.DataFrame(rows)
