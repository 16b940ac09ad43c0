"""Simple rating baselines on ML-100K u1 and Monti's Douban, Flixster, YahooMusic splits.

Protocol: the mean predictors are fitted on the whole training part. Biased MF is tuned by grid search on a
validation split (10% of the training entries, seed 0), each trial early-stopped on that validation split;
the chosen configuration is then trained once per seed, each seed with its own validation carve (10%, that
seed) for early stopping, and the test RMSE at the best validation epoch is reported. Test data is never used
for a decision.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, replace
from typing import Any

import pandas as pd

from ..data import load_split
from ..metrics import rmse
from ..models.baselines import MEAN_BASELINES, BiasedMFConfig, fit_biased_mf, mean_baseline_predictions, tune_biased_mf
from ..results import RunRecorder
from . import resolve_seeds

DATASETS = {"ml-100k/u1": "ML-100K", "douban": "Douban", "flixster": "Flixster", "yahoo_music": "YahooMusic"}
VALID_FRACTION = 0.1


@dataclass(frozen=True)
class Profile:
    seeds: tuple[int, ...]
    grid: dict[str, list[Any]]
    max_epochs: int
    datasets: tuple[str, ...] = tuple(DATASETS)
    note: str = ""


PROFILES = {
    "full": Profile(
        seeds=(0, 1, 2, 3, 4),
        grid={"n_factors": [8, 32, 128], "reg": [0.03, 0.1, 0.3], "lr": [0.001, 0.005]},
        max_epochs=400,
        note="18-trial grid (factors x lambda x learning rate), at most 400 epochs with early stopping "
        "(patience 8), 5 seeds",
    ),
    "smoke": Profile(
        seeds=(0,),
        grid={"n_factors": [8], "reg": [0.1]},
        max_epochs=3,
        note="1 grid point, 3 epochs, 1 seed: exercises the code path, numbers are not comparable",
    ),
}


def run(
    recorder: RunRecorder, *, profile: str, device: str, data_root: str | None, seeds: list[int] | None = None
) -> dict[str, pd.DataFrame]:
    """Fill ``recorder`` with every number of the table; returns the tuning and learning-curve tables."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    prof = replace(PROFILES[profile], seeds=resolve_seeds(PROFILES[profile].seeds, seeds))
    tuning, curves = [], []
    for ds in prof.datasets:
        split = load_split(ds, data_root=data_root)
        for kind in MEAN_BASELINES:
            recorder.add(
                ds, kind, "rmse", rmse(mean_baseline_predictions(kind, split.train, split.test), split.test.values)
            )

        def tune(split=split, ds=ds) -> dict[str, Any]:
            best, trials = tune_biased_mf(
                split.with_validation(VALID_FRACTION, seed=0),
                prof.grid,
                BiasedMFConfig(max_epochs=prof.max_epochs),
                device=device,
                seed=0,
            )
            return {"best": asdict(best), "trials": trials.to_dict(orient="records")}

        tuned = recorder.cached(f"{ds.replace('/', '_')}-tuning", tune)
        best = BiasedMFConfig(**tuned["best"])
        tuning.append(pd.DataFrame(tuned["trials"]).assign(dataset=ds))
        for seed in prof.seeds:

            def fit(seed=seed, split=split, ds=ds, best=best) -> dict[str, Any]:
                res = fit_biased_mf(
                    split.with_validation(VALID_FRACTION, seed=seed),
                    best,
                    device=device,
                    seed=seed,
                    checkpoint_path=recorder.checkpoint_path(f"{ds.replace('/', '_')}-mf-{seed}"),
                )
                return {
                    "rmse": res.metrics["rmse"],
                    "valid_rmse": res.valid_metrics["rmse"],
                    "best_epoch": res.best_epoch,
                    "history": res.history.to_dict(orient="records"),
                }

            out = recorder.cached(f"{ds.replace('/', '_')}-mf-seed{seed}", fit)
            recorder.add(ds, "biased-mf", "rmse", out["rmse"], seed=seed)
            curves.append(pd.DataFrame(out["history"]).assign(dataset=ds, seed=seed))
    n_trials = len(list(itertools.product(*prof.grid.values())))
    recorder.info.update(
        profile_note=prof.note,
        seeds=list(prof.seeds),
        grid=prof.grid,
        search_budget=f"{n_trials} grid trials per dataset on one validation split, then {len(prof.seeds)} seeds",
    )
    tables = {"tuning": pd.concat(tuning, ignore_index=True), "curves": pd.concat(curves, ignore_index=True)}
    for name, df in tables.items():
        recorder.save_table(name, df)
    return tables
