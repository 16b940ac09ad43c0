"""Dziugaite & Roy 2015 (NNMF): the MovieLens table, beside biased MF tuned with the same budget.

Protocol (one seed s = one complete, independent repetition):

* **Split.** ``load_split(<dataset>/random-90-10, split_seed=s)``: a uniform random 90/10 train/test split of all
  ratings (ML-1M: the paper, as relayed by protocols.md 2.1/2.2; ML-100K: the paper's protocol is not recovered,
  the third-party re-implementations (JoonyoungYi, jstol) split ``u.data`` 90/10 at random, so we do the same and
  *not* the official u1 fold). 2% of the training ratings are moved to a validation set with seed s (the
  third-party code's fraction). The test part is never used for a decision.
* **NNMF.** Every point of a small grid over the latent dimensions (D, D') and the latent penalty λ is trained
  with model seed s (initialisation), each fit early-stopped on the validation RMSE (patience 40 evaluations,
  one per epoch, at most ``max_epochs`` epochs), its state restored to the best validation epoch. The grid point
  with the lowest validation RMSE is chosen *per seed* (λ is "chosen on a validation set" in the paper; D, D' are
  recalled values, hence in the grid too); that fit's test RMSE is the seed's number. No refit: the chosen trial
  is the reported run, so tuning uses only split s's validation data and never another seed's test ratings.
* **Biased MF** (``recrepro.models.baselines.fit_biased_mf``, Koren et al. 2009) gets the *same budget*: the same
  splits and validation carve, the same number of grid trials per seed (asserted), the same early-stopping rule
  (validation RMSE every epoch, patience 40, at most ``max_epochs`` epochs, best-validation state) and the same
  per-seed selection.

Hyperparameters and their sources:

=====================  ==========================  ==========================================================
what                   value (full profile)        source
=====================  ==========================  ==========================================================
split                  random 90/10, seed s        paper (ML-1M); third-party code (ML-100K)
validation             2% of train, seed s         third-party code (JoonyoungYi / jstol)
D, D'                  pairs (5, 30), (10, 60),    (10, 60): paper (recalled); the halved and doubled pairs:
                       (20, 120)                   ours
hidden layers          3 x 50 sigmoid, linear out  paper (output layer: protocols.md 2.2)
λ (sum-of-squares      ML-100K {15, 50, 150}       50: JoonyoungYi on ML-100K; the rest ours. ML-1M has ~1.5x
scale)                 ML-1M {50, 150, 500}        the ratings per user and ~4.5x per item of ML-100K and 10x
                                                   the ratings, so its grid is shifted up (1x to 10x of 50)
optimiser              RMSProp lr 1e-3, full       paper / JoonyoungYi (``NNMFConfig`` defaults)
                       batch, alternating phases
max_epochs             10,000                      JoonyoungYi ``max_iters`` (the paper gives none)
patience               40 evaluations              JoonyoungYi ``early_stop_max_iter``
seeds                  0..4 (split = model seed)   ours (the study's minimum; the paper's run count is not
                                                   recovered)
biased MF grid         factors {8, 32, 128} x      the study's baseline grid (``baselines_rating``, ours) without
                       λ {0.03, 0.1, 0.2}          its lr axis: 9 trials = NNMF's 9; Adam lr 0.005, batch 1024,
                                                   init std 0.05: ``BiasedMFConfig`` defaults (ours). λ was
                                                   first {0.02, 0.05, 0.1}; a validation-only check on ML-100K
                                                   seed 0 (factors 32) put the best λ at that grid's edge (0.1),
                                                   so the baseline grid was used instead
biased MF stopping     patience 40, max_epochs     the NNMF rule (same budget)
torch CPU threads      torch default (full);       ours; no effect on the optimisation (float summation order
                       1 (smoke)                   only)
=====================  ==========================  ==========================================================

The "paper-point" search (a CPU option) keeps the middle of every axis: NNMF D=10, D'=60 and λ = 50 (ML-100K,
JoonyoungYi) / 150 (ML-1M, ours); biased MF 32 factors, λ = 0.1.

Anything less than the full profile (``max_epochs`` below 10,000, fewer than 5 seeds, the single "paper-point"
search instead of the grid, or the smoke profile) is written on every metric row as ``budget="reduced: ..."``.
The measured wall seconds per epoch are recorded (metric ``seconds_per_epoch``) so the cost of the full run can
be stated.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import time
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..data import load_split
from ..models.baselines import BiasedMFConfig, fit_biased_mf
from ..models.nnmf import NNMFConfig, fit_nnmf
from ..results import RunRecorder
from . import resolve_seeds

DATASETS = {"ml-100k/random-90-10": "ML-100K", "ml-1m/random-90-10": "ML-1M"}
VALID_FRACTION = 0.02  # third-party NNMF code (JoonyoungYi / jstol)
PAPER_MAX_EPOCHS = 10_000  # JoonyoungYi max_iters
PAPER_PATIENCE = 40  # JoonyoungYi early_stop_max_iter
MIN_SEEDS = 5  # the study's minimum for a headline number
SEARCHES = ("grid", "paper-point")
CURVE_POINTS = 300  # learning curves are thinned to about this many evaluations per fit (the best one kept)


@dataclass(frozen=True)
class Profile:
    seeds: tuple[int, ...]
    datasets: tuple[str, ...]
    dims: tuple[tuple[int, int], ...]  # (D, D') pairs
    lams: dict[str, tuple[float, ...]]  # λ grid per dataset (sum-of-squares scale)
    hidden: tuple[int, ...]
    bmf_factors: tuple[int, ...]
    bmf_regs: tuple[float, ...]
    max_epochs: int
    patience: int
    threads: int | None = None  # torch CPU threads; None = torch's default
    note: str = ""


PROFILES = {
    "full": Profile(
        seeds=(0, 1, 2, 3, 4),
        datasets=tuple(DATASETS),
        dims=((5, 30), (10, 60), (20, 120)),
        lams={"ml-100k/random-90-10": (15.0, 50.0, 150.0), "ml-1m/random-90-10": (50.0, 150.0, 500.0)},
        hidden=(50, 50, 50),
        bmf_factors=(8, 32, 128),
        bmf_regs=(0.03, 0.1, 0.2),
        max_epochs=PAPER_MAX_EPOCHS,
        patience=PAPER_PATIENCE,
        note="9-point grid (D, D') x λ per seed for NNMF and 9-point grid (factors x λ) for biased MF, full-batch "
        "RMSProp up to 10,000 epochs, patience 40, 5 seeds (split seed = model seed)",
    ),
    "smoke": Profile(
        seeds=(0,),
        datasets=tuple(DATASETS),
        dims=((4, 8),),
        lams={"ml-100k/random-90-10": (15.0, 50.0), "ml-1m/random-90-10": (50.0, 150.0)},
        hidden=(16,),
        bmf_factors=(8,),
        bmf_regs=(0.03, 0.1),
        max_epochs=2,
        patience=PAPER_PATIENCE,
        threads=1,
        note="2 grid points, a 1-layer 16-unit MLP, D=4, D'=8, 2 epochs, 1 seed: exercises the code path, numbers "
        "are not comparable",
    ),
}


def _middle(values: tuple[Any, ...]) -> Any:
    return values[len(values) // 2]


def nnmf_grid(prof: Profile, dataset: str, search: str) -> list[NNMFConfig]:
    """The NNMF trials of one seed; "paper-point" keeps the middle of each axis (D=10, D'=60, λ=50 on ML-100K)."""
    dims, lams = prof.dims, prof.lams[dataset]
    if search == "paper-point":
        dims, lams = (_middle(dims),), (_middle(lams),)
    return [
        NNMFConfig(d=d, d_prime=dp, hidden=prof.hidden, lam=lam, max_epochs=prof.max_epochs, patience=prof.patience)
        for (d, dp), lam in itertools.product(dims, lams)
    ]


def bmf_grid(prof: Profile, search: str) -> list[BiasedMFConfig]:
    """The biased-MF trials of one seed (same count as NNMF's, same early-stopping rule)."""
    factors, regs = prof.bmf_factors, prof.bmf_regs
    if search == "paper-point":
        factors, regs = (_middle(factors),), (_middle(regs),)
    return [
        BiasedMFConfig(n_factors=k, reg=reg, max_epochs=prof.max_epochs, patience=prof.patience)
        for k, reg in itertools.product(factors, regs)
    ]


def budget_label(profile: str, prof: Profile, search: str, n_trials: int, full_trials: int) -> str:
    """``"full"`` or ``"reduced: <what and why>"``: the same for every row of a run."""
    if profile == "smoke":
        return f"reduced: smoke profile ({prof.note})"
    why = []
    if prof.max_epochs < PAPER_MAX_EPOCHS:
        why.append(f"max_epochs capped at {prof.max_epochs} (paper protocol: {PAPER_MAX_EPOCHS:,} with patience 40)")
    if search != "grid" or n_trials < full_trials:
        why.append(f"{n_trials} of {full_trials} grid points per seed (search={search!r})")
    if len(prof.seeds) < MIN_SEEDS:
        why.append(f"{len(prof.seeds)} seed(s) instead of {MIN_SEEDS}")
    return "reduced: " + "; ".join(why) if why else "full"


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:10]


def _unit_keys(slug: str, method: str, config: Any, seed: int) -> tuple[str, str]:
    """(result key, checkpoint key): the checkpoint ignores max_epochs so a longer run resumes a shorter one."""
    cfg = asdict(config)
    resumable = {k: v for k, v in cfg.items() if k not in ("max_epochs", "checkpoint_every", "eval_batch_size")}
    return (f"{slug}-{method}-s{seed}-{_digest(cfg)}", f"{slug}-{method}-s{seed}-{_digest(resumable)}")


def thin_history(history: pd.DataFrame, best_epoch: int, points: int = CURVE_POINTS) -> pd.DataFrame:
    """At most about ``points`` rows of a learning curve: the first 50 epochs, every k-th, the best and the last."""
    if len(history) <= points:
        return history
    step = math.ceil(len(history) / points)
    ep = history["epoch"]
    keep = (ep <= 50) | (ep % step == 0) | (ep == best_epoch) | (ep == ep.max())
    return history[keep]


def describe(method: str, cfg: dict[str, Any]) -> str:
    if method == "nnmf":
        return f"D={cfg['d']}, D'={cfg['d_prime']}, λ={cfg['lam']:g}"
    return f"factors={cfg['n_factors']}, λ={cfg['reg']:g}"


def _fit_unit(method: str, split: Any, config: Any, seed: int, device: str, ckpt: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    if method == "nnmf":
        res = fit_nnmf(split, config, device=device, seed=seed, checkpoint_path=ckpt)
    else:
        res = fit_biased_mf(split, config, device=device, seed=seed, checkpoint_path=ckpt)
    wall = time.perf_counter() - t0
    epochs = int(res.epochs_run)
    hist = thin_history(res.history, res.best_epoch)
    return {
        "config": asdict(config),
        "test_rmse": res.metrics["rmse"],
        "valid_rmse": res.valid_metrics["rmse"],
        "best_epoch": int(res.best_epoch),
        "epochs_run": epochs,
        "stopped_early": epochs < config.max_epochs,
        "wall_seconds": wall,
        "seconds_per_epoch": wall / max(epochs, 1),
        "history": hist.to_dict(orient="records"),
    }


def _for_dataset(value: Any, dataset: str) -> Any:
    """A run parameter given once for all data sets, or as a dict keyed by data set (missing key: None)."""
    return value.get(dataset) if isinstance(value, dict) else value


def plan(
    profile: str,
    seeds: Any = None,
    max_epochs: Any = None,
    datasets: list[str] | None = None,
) -> dict[str, Profile]:
    """The profile each data set runs under, after the caller's overrides (``seeds`` / ``max_epochs`` may be
    one value for every data set or a dict keyed by data set)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    base = PROFILES[profile]
    chosen = tuple(datasets) if datasets else base.datasets
    unknown = [d for d in chosen if d not in DATASETS]
    if unknown:
        raise ValueError(f"unknown dataset(s) {unknown}; choose from {', '.join(DATASETS)}")
    for name, value in (("seeds", seeds), ("max_epochs", max_epochs)):
        if isinstance(value, dict) and set(value) - set(DATASETS):
            raise ValueError(f"{name}: unknown dataset key(s) {sorted(set(value) - set(DATASETS))}")
    out = {}
    for ds in chosen:
        prof = replace(base, seeds=resolve_seeds(base.seeds, _for_dataset(seeds, ds)))
        cap = _for_dataset(max_epochs, ds)
        if cap is not None:
            if not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
                raise ValueError(f"max_epochs must be a positive integer, a dict of them, or None; got {cap!r}")
            prof = replace(prof, max_epochs=cap)
        out[ds] = prof
    return out


def run(
    recorder: RunRecorder,
    *,
    profile: str,
    device: str,
    data_root: str | None,
    seeds: list[int] | dict[str, list[int]] | None = None,
    max_epochs: int | dict[str, int] | None = None,
    search: str = "grid",
    datasets: list[str] | None = None,
    threads: int | None = None,
) -> dict[str, pd.DataFrame]:
    """Fill ``recorder`` with the table's numbers; returns the trials, learning-curve and cost tables.

    ``seeds`` / ``max_epochs``: None = the profile's (full: 0..4 and 10,000), one value for both data sets, or a
    dict keyed by data set; ``search`` "grid" (the profile's grid) or "paper-point" (the middle grid point only,
    for a CPU-capped run); ``datasets`` None = both; ``threads`` None = the profile's torch CPU thread count.
    """
    if search not in SEARCHES:
        raise ValueError(f"unknown search {search!r}; choose one of {', '.join(SEARCHES)}")
    plans = plan(profile, seeds, max_epochs, datasets)
    n_threads = threads if threads is not None else PROFILES[profile].threads
    if n_threads is not None:
        torch.set_num_threads(int(n_threads))

    trials, curves, budgets = [], [], {}
    for ds, prof in plans.items():
        slug = ds.replace("/", "_")
        grids = {"nnmf": nnmf_grid(prof, ds, search), "biased-mf": bmf_grid(prof, search)}
        n_trials = len(grids["nnmf"])
        if len(grids["biased-mf"]) != n_trials:
            raise AssertionError("NNMF and biased MF must get the same number of trials (same budget)")
        full_trials = len(nnmf_grid(prof, ds, "grid"))
        budget = budgets[ds] = budget_label(profile, prof, search, n_trials, full_trials)
        for seed in prof.seeds:
            split = load_split(ds, data_root=data_root, split_seed=seed).with_validation(VALID_FRACTION, seed=seed)
            for method, grid in grids.items():
                outs = []
                for config in grid:
                    key, ckpt_key = _unit_keys(slug, method, config, seed)
                    outs.append(
                        recorder.cached(
                            key,
                            lambda m=method, sp=split, c=config, s=seed, k=ckpt_key: _fit_unit(
                                m, sp, c, s, device, recorder.checkpoint_path(k)
                            ),
                        )
                    )
                chosen = int(np.argmin([o["valid_rmse"] for o in outs]))  # validation only
                best = outs[chosen]
                common = dict(split_seed=seed, model_seed=seed, valid_seed=seed, budget=budget)
                recorder.add(
                    ds,
                    method,
                    "rmse",
                    best["test_rmse"],
                    seed=seed,
                    valid_rmse=best["valid_rmse"],
                    config=describe(method, best["config"]),
                    best_epoch=best["best_epoch"],
                    epochs_run=best["epochs_run"],
                    stopped_early=best["stopped_early"],
                    **common,
                )
                recorder.add(
                    ds,
                    method,
                    "seconds_per_epoch",
                    sum(o["wall_seconds"] for o in outs) / max(1, sum(o["epochs_run"] for o in outs)),
                    seed=seed,
                    **common,
                )
                for i, o in enumerate(outs):
                    cfg = o["config"]
                    trials.append(
                        {
                            "dataset": ds,
                            "method": method,
                            "seed": seed,
                            "config": describe(method, cfg),
                            "dims": f"({cfg['d']}, {cfg['d_prime']})" if method == "nnmf" else f"k={cfg['n_factors']}",
                            "lam": cfg["lam"] if method == "nnmf" else cfg["reg"],
                            "valid_rmse": o["valid_rmse"],
                            "best_epoch": o["best_epoch"],
                            "epochs_run": o["epochs_run"],
                            "stopped_early": o["stopped_early"],
                            "max_epochs": prof.max_epochs,
                            "seconds_per_epoch": o["seconds_per_epoch"],
                            "wall_seconds": o["wall_seconds"],
                            "chosen": i == chosen,
                            # test only at the validation-chosen point: the other trials' test is never shown
                            "test_rmse_at_chosen": o["test_rmse"] if i == chosen else np.nan,
                        }
                    )
                hist = pd.DataFrame(best["history"]).assign(dataset=ds, method=method, seed=seed)
                curves.append(hist.assign(config=describe(method, best["config"])))

    recorder.info.update(
        profile_note=PROFILES[profile].note,
        seeds={ds: list(p.seeds) for ds, p in plans.items()},
        search=search,
        max_epochs={ds: p.max_epochs for ds, p in plans.items()},
        patience=PROFILES[profile].patience,
        budget=budgets,
        torch_threads=torch.get_num_threads(),
        nnmf_grid={ds: [describe("nnmf", asdict(c)) for c in nnmf_grid(p, ds, search)] for ds, p in plans.items()},
        biased_mf_grid=[describe("biased-mf", asdict(c)) for c in bmf_grid(PROFILES[profile], search)],
        search_budget=(
            "per seed and data set: the same number of trials for NNMF and biased MF "
            f"({ {ds: len(nnmf_grid(p, ds, search)) for ds, p in plans.items()} }), each early-stopped on the "
            f"validation RMSE (every epoch, patience {PROFILES[profile].patience}, at most max_epochs epochs); the "
            "validation-best trial per seed is the reported run"
        ),
    )
    tables = {
        "trials": pd.DataFrame(trials),
        "curves": pd.concat(curves, ignore_index=True),
    }
    tables["cost"] = cost_table(tables["trials"])
    for name, df in tables.items():
        recorder.save_table(name, df)
    return tables


def sensitivity_table(trials: pd.DataFrame, method: str = "nnmf") -> pd.DataFrame:
    """Validation RMSE (mean ± std over seeds) per grid point; test only where validation chose the point."""
    df = trials[trials["method"] == method]
    out = (
        df.groupby(["dataset", "dims", "lam"], sort=True)
        .agg(
            valid_rmse_mean=("valid_rmse", "mean"),
            valid_rmse_std=("valid_rmse", "std"),
            n_seeds=("seed", "nunique"),
            best_epoch_mean=("best_epoch", "mean"),
            stopped_early=("stopped_early", "mean"),
            times_chosen=("chosen", "sum"),
            test_rmse_at_chosen=("test_rmse_at_chosen", "mean"),
        )
        .reset_index()
    )
    out["stopped_early"] = (100 * out["stopped_early"]).round().astype(int).astype(str) + "%"
    return out


def cost_table(trials: pd.DataFrame) -> pd.DataFrame:
    """Measured cost per dataset and method: seconds per epoch, epochs per fit, and the measured total."""
    g = trials.groupby(["dataset", "method"])
    out = g.agg(
        fits=("config", "size"),
        seconds_per_epoch=("seconds_per_epoch", "mean"),
        epochs_per_fit=("epochs_run", "mean"),
        fits_hitting_cap=("stopped_early", lambda s: int((~s.astype(bool)).sum())),
        wall_seconds=("wall_seconds", "sum"),
        max_epochs=("max_epochs", "max"),
    ).reset_index()
    return out


__all__ = ["DATASETS", "PROFILES", "budget_label", "cost_table", "plan", "run", "sensitivity_table"]
