"""Hartford et al. 2018, extrapolation as the authors' code measured it: ML-1M, unseen users x unseen movies.

Objective: an exchangeable model has no per-user or per-item parameters, so a factorized exchangeable
autoencoder (F-EAE, the paper's Sec. 4 factorized model; layer of its Eq. 3 with row/column pooling) trained on
one block of a matrix predicts the ratings of users *and* movies it never saw, from their observed ratings
alone, without retraining. The paper's table and its figure "RMSE vs fraction of observed entries of new
users/movies" (claims hartford2018-30..33) were not recovered, so this module produces ours, with the
protocol of ``disjoint_data.load_ratings`` (see :mod:`recrepro.data.extrapolation`):

* train: the ratings of 30% of ML-1M's users x 30% of its movies; 10% of them are an in-block test set
  (``ml-1m/disjoint``, reported for reference), 5% of the rest the validation set (best-validation state kept);
* evaluate: half of the other users x half of the other movies (``extrapolation:ml-1m-disjoint``); the model's
  input is 80% of their ratings (the authors' share: metric ``rmse``) or a nested smaller share (metrics
  ``rmse-at-observed-<share>``), the remaining 20% are scored, the same entries at every share;
* compare: the mean predictors fitted on the same observed input and scored on the same entries.

Network and training: the authors' transfer settings (``sparse_factorized_autoencoder_disjoint.py`` defaults,
the ``t3_transfer`` unit of :mod:`recrepro.experiments.hartford2018`): 220 units, 100-d codes, 100 x 100
uniformly sampled sub-matrices, EMA 0.9, up to 3,000 epochs, 5 seeds (our rule). Each seed draws a new split.
Differences from the authors: our own random draws (not ``RandomState(1234)``), a validation set carved from the
training block (the authors' script had none), an in-block test set (ours).
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from typing import Any

import pandas as pd

from ..data.extrapolation import DisjointSplit, disjoint_split, reveal
from ..data.movielens import read_ml1m_ratings
from ..metrics import rmse
from ..models.baselines import MEAN_BASELINES, mean_baseline_predictions
from ..models.exchangeable import predict_ratings
from ..results import RunRecorder
from . import resolve_seeds
from .hartford2018 import FULL_UNITS, INITS, MIN_SEEDS, PROFILES, Unit, _fit_unit, _record_fit, _smoke, budget_label

SOURCE = "ml-1m/disjoint"  # dataset key of the in-block rows
TARGET = "extrapolation:ml-1m-disjoint"  # dataset key of the unseen-block rows
METHOD = "f-eae-disjoint"
SHARES = (0.05, 0.1, 0.2, 0.4, 0.6, 0.8)  # observed share of the unseen block's ratings; 0.8 = the authors'
AUTHORS_SHARE = 0.8

FULL_UNIT = replace(FULL_UNITS["t3_transfer"][0], dataset=SOURCE, split=SOURCE, method=METHOD)


def metric_name(share: float) -> str:
    return "rmse" if share == AUTHORS_SHARE else f"rmse-at-observed-{share:g}"


def extrapolation_rmse(model: Any, split: DisjointSplit, chunk_size: int | None) -> list[dict[str, Any]]:
    """RMSE on the held-out entries of the unseen block, per observed share, for the model and the means."""
    model.eval()
    held = split.target_heldout
    rows = []
    for share in SHARES:
        observed = reveal(split, share)
        pred = predict_ratings(model, observed, held.users, held.items, value_mapping="exact", chunk_size=chunk_size)
        base = {"observed_share": share, "n_observed": len(observed), "n_heldout": len(held)}
        rows.append({**base, "method": METHOD, "rmse": rmse(pred, held.values)})
        for kind in MEAN_BASELINES:
            rows.append(
                {**base, "method": kind, "rmse": rmse(mean_baseline_predictions(kind, observed, held), held.values)}
            )
    return rows


def run(
    recorder: RunRecorder,
    *,
    profile: str,
    device: str,
    data_root: str | None,
    seeds: list[int] | None = None,
    max_epochs: int | None = None,
    init: str = "authors",
) -> dict[str, pd.DataFrame]:
    """Fill ``recorder`` with the in-block and unseen-block rows; returns the side tables (also saved as CSV)."""
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    if max_epochs is not None and (not isinstance(max_epochs, int) or max_epochs < 1):
        raise ValueError(f"max_epochs must be a positive integer or None, got {max_epochs!r}")
    run_seeds = resolve_seeds(PROFILES[profile].seeds, seeds)
    unit: Unit = FULL_UNIT if profile == "full" else _smoke(FULL_UNIT)
    config = replace(unit.config, init_std=INITS[init])
    if max_epochs is not None and max_epochs < config.epochs:
        config = replace(config, epochs=max_epochs)
    why = "smoke profile" if profile == "smoke" else "capped run"
    budget = budget_label(config, FULL_UNIT.config, len(run_seeds), why)
    extra = {} if budget is None else {"budget": budget}
    tag = f"disjoint-{init}-e{config.epochs}"
    ratings = read_ml1m_ratings(data_root)[0]

    curves, fits, sweep = [], [], []
    for seed in run_seeds:

        def fit(seed: int = seed) -> dict[str, Any]:
            split = disjoint_split(SOURCE, ratings, seed=seed)
            out, model = _fit_unit(recorder, unit, config, split.source, seed, device, tag)
            t0 = time.perf_counter()
            out["sweep"] = extrapolation_rmse(model, split, config.eval_chunk_size)
            out["extrapolation_seconds"] = time.perf_counter() - t0
            out["split_notes"] = split.notes
            return out

        out = recorder.cached(f"{tag}-seed{seed}", fit)
        _record_fit(recorder, unit, seed, out, budget)
        for row in out["sweep"]:
            row_extra = extra if row["method"] == METHOD else {}
            recorder.add(TARGET, row["method"], metric_name(row["observed_share"]), row["rmse"], seed=seed, **row_extra)
        sweep.append(pd.DataFrame(out["sweep"]).assign(seed=seed))
        curves.append(pd.DataFrame(out["history"]).assign(dataset=SOURCE, method=METHOD, seed=seed))
        fits.append({"seed": seed, **{k: v for k, v in out.items() if k not in ("history", "sweep", "split_notes")}})
        recorder.info.setdefault("split_notes", {})[str(seed)] = out["split_notes"]

    fits_df = pd.DataFrame(fits)
    sec = float(fits_df["seconds_per_epoch"].mean())
    cost = pd.DataFrame(
        [{"dataset": SOURCE, "method": METHOD, "device": fits_df["device"].iloc[0], "measured_seconds_per_epoch": sec,
          "measured_on_full_network": profile == "full", "full_epoch_cap": FULL_UNIT.config.epochs,
          "full_seeds": MIN_SEEDS, "full_hours_upper_bound": sec * FULL_UNIT.config.epochs * MIN_SEEDS / 3600.0}]
    )  # fmt: skip
    recorder.info.update(
        table="t3_disjoint",
        profile_note=PROFILES[profile].note,
        seeds=list(run_seeds),
        max_epochs=max_epochs,
        init=init,
        shares=list(SHARES),
        units=[{"dataset": SOURCE, "method": METHOD, "budget": budget or "full protocol", "config": asdict(config),
                "full_protocol_epochs": FULL_UNIT.config.epochs}],
    )  # fmt: skip
    tables = {"curves": pd.concat(curves, ignore_index=True), "fits": fits_df, "sweep": pd.concat(sweep), "cost": cost}
    for name, df in tables.items():
        recorder.save_table(name, df)
    return tables
