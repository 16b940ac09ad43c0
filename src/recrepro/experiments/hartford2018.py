"""Hartford et al. (ICML 2018), "Deep Models of Interactions Across Sets": the four tables of its chapter.

Tables (one notebook each, ``run(recorder, table=...)``):

* ``t1_ml100k`` -- ML-100K ``u1.base``/``u1.test``: the self-supervised exchangeable model
  (``ss-exchangeable``, paper 0.91) and the factorized exchangeable autoencoder (``f-eae``, paper 0.920).
* ``t1_ml1m`` -- ML-1M, the paper's uniformly random 90/10 split (``load_split("ml-1m/random-90-10",
  split_seed=seed)``, a new split per seed): ``f-eae`` (paper 0.860) and ``ss-exchangeable`` (no paper value
  recovered). Sub-matrix sampling as in the authors' code (800 x 1300 / 800 x 800, rows and columns drawn
  with probability proportional to their number of ratings).
* ``t2_monti`` -- Monti et al.'s fixed Douban / Flixster / YahooMusic masks: ``f-eae`` (paper 0.738 / 0.908 /
  20.0), the whole 3000 x 3000 matrix per step.
* ``t3_transfer`` -- an F-EAE trained on ML-100K ``u1.base`` is applied without retraining to other matrices
  (ML-1M: every user and item unseen; Douban, Flixster, YahooMusic: other domains). Input = the target's
  training entries, predicted = the target's test entries; the same entries are scored for the target's mean
  baselines (fitted on the same input). Ratings are mapped explicitly onto the model's 1..5 classes:
  ``value_mapping="linear"`` from the target's rating range (training values) onto [1, 5], each value then
  snapped to the nearest class, predictions mapped back by the inverse affine map. That is the identity for
  ML-1M and Douban (1..5 integers); Flixster's 0.5..5 half stars map by v -> 1 + (v - 0.5) * 4 / 4.5 (so the
  half-star values 1.5, 2.5, 3.5, 4.5 land on 2, 3, 4, 5 and 0.5 on 1); YahooMusic's 1..100 by
  v -> 1 + (v - 1) * 4 / 99. Keys: ``transfer:ml-100k-><target>``, method ``f-eae-transfer``.

Protocol (all tables): validation entries are carved from the training part only, a fresh random carve per
seed (``split.with_validation(fraction, seed)``, numpy ``default_rng``); the authors drew ONE carve with
``np.random.RandomState(1234)`` (5% of u1.base; 7% of Otraining), which we do not replicate entry for entry.
The model state with the best validation RMSE is kept (F-EAE: its EMA weights, as the authors evaluated) and
the test RMSE *at that state* is reported; the per-evaluation test RMSE is a learning curve only (the authors'
logs also printed the best test RMSE over training, which is test-set selection and is never used here).
Test-time input = training + validation entries (all observed ratings). Rating classes = the distinct values of
the (uncarved) training part; the authors used ``np.unique`` over all ratings including test.

Hyperparameter sources (paper = Hartford et al. 2018, code = mravanba/deep_exchangeable_tensors HEAD f4eb8c7,
as summarised in /work/shared/research/protocols.md section 1; the model defaults in
``recrepro.models.exchangeable.ExchangeableConfig`` carry the per-field sources):

* Architectures, activations, dropout, L2, Adam settings, EMA, masking fraction: code (model defaults =
  ML-100K scripts). Monti datasets: 200 hidden units (Douban, YahooMusic) / 220 (Flixster), latent 100, no
  EMA, whole matrix: code. Transfer model: 220 units, latent 100, 100 x 100 uniformly sampled sub-matrices,
  EMA 0.9, 3,000 epochs: code (``sparse_factorized_autoencoder_disjoint.py`` defaults).
* Epoch caps: F-EAE 10,000 (ML), 6,000 (Monti datasets), 3,000 (transfer), SS 50,000 ("never-mind this"):
  code. Validation every 10 epochs (ML; SS on ML-1M every 20), every epoch on Monti's datasets: code.
* F-EAE on ML stops when validation RMSE > 1.075 x best: code (not on Monti's datasets, where the authors
  commented it out; not in the transfer script: our choice).
* Early-stopping patience of 500 epochs without validation improvement (converted to evaluations): OUR
  choice -- the authors ran to the cap and picked the best validation epoch from the log.
* Validation fraction: 5% of u1.base (code), 5% of the ML-1M training part (our choice, the authors' 5% of the
  SS script), 7% of Otraining (code).
* Seeds: 5 per headline number (0..4), our choice (the authors fixed only the split seed; number of runs not
  recovered). Each seed sets the initialisation, dropout and sampling, the validation carve and, on ML-1M,
  the random 90/10 split.
* Weight initialisation: the authors' N(0, 0.01) (code). ``init="pytorch"`` switches to PyTorch's
  nn.Linear-style uniform(+-1/sqrt(fan_in)) for capped CPU runs (with N(0, 0.01) the F-EAE sits at the global
  mean for ~180 epochs on ML-100K); rows of such a run are labelled as a reduced budget.

Budget labels: every metric row of a run that differs from the full profile (fewer epochs via ``max_epochs``,
fewer than 5 seeds, a smaller network or fewer sampled steps in the smoke profile, another initialisation)
carries ``budget="reduced: <what>"``. The measured training seconds per epoch are recorded per fit
(``seconds_per_epoch``) so the chapter can state the cost of the full protocol.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np
import pandas as pd

from ..data import load_split
from ..data.types import RatingSplit
from ..metrics import rmse
from ..models.baselines import MEAN_BASELINES, mean_baseline_predictions
from ..models.exchangeable import ExchangeableConfig, predict_ratings, train_exchangeable
from ..results import RunRecorder
from . import resolve_seeds

MIN_SEEDS = 5  # the study's rule for a headline number (the paper does not state its number of runs)
PATIENCE_EPOCHS = 500  # our choice, see the module docstring
INITS = {"authors": 0.01, "pytorch": None}  # ExchangeableConfig.init_std


def _patience(eval_every: int) -> int:
    return max(1, PATIENCE_EPOCHS // eval_every)


@dataclass(frozen=True)
class Unit:
    """One trained model of a table: where its data come from and its full-protocol configuration."""

    dataset: str  # dataset key of the metric rows (matches results/claims.csv)
    split: str  # load_split name
    method: str  # method key of the metric rows
    valid_fraction: float
    config: ExchangeableConfig
    seeded_split: bool = False  # a new random split per seed (ML-1M random 90/10)


_ML100K_SS = ExchangeableConfig(kind="self_supervised", epochs=50_000, eval_every=10, patience=_patience(10))
_ML100K_FE = ExchangeableConfig(
    kind="factorized", epochs=10_000, eval_every=10, patience=_patience(10), divergence_ratio=1.075
)
# ML-1M: the authors' "conditional" sampling, rows/columns drawn with probability proportional to their ratings
_ML1M = {"submatrix_sampling": "density"}
_MONTI_FE = ExchangeableConfig(kind="factorized", epochs=6_000, eval_every=1, patience=_patience(1), fe_ema_decay=None)


def _monti_fe(units: int) -> ExchangeableConfig:
    return replace(_MONTI_FE, fe_encoder_hidden=(units, units), fe_decoder_hidden=(units,) * 4)


FULL_UNITS: dict[str, tuple[Unit, ...]] = {
    "t1_ml100k": (
        Unit("ml-100k/u1", "ml-100k/u1", "ss-exchangeable", 0.05, _ML100K_SS),
        Unit("ml-100k/u1", "ml-100k/u1", "f-eae", 0.05, _ML100K_FE),
    ),
    "t1_ml1m": (
        Unit(
            "ml-1m/random-90-10",
            "ml-1m/random-90-10",
            "f-eae",
            0.05,
            replace(_ML100K_FE, submatrix_rows=800, submatrix_cols=1300, **_ML1M),
            seeded_split=True,
        ),
        Unit(
            "ml-1m/random-90-10",
            "ml-1m/random-90-10",
            "ss-exchangeable",
            0.05,
            replace(_ML100K_SS, submatrix_rows=800, submatrix_cols=800, eval_every=20, patience=_patience(20), **_ML1M),
            seeded_split=True,
        ),
    ),
    "t2_monti": (
        Unit("douban", "douban", "f-eae", 0.07, _monti_fe(200)),
        Unit("flixster", "flixster", "f-eae", 0.07, _monti_fe(220)),
        Unit("yahoo_music", "yahoo_music", "f-eae", 0.07, _monti_fe(200)),
    ),
    "t3_transfer": (
        Unit(
            "ml-100k/u1",
            "ml-100k/u1",
            "f-eae-transfer",
            0.05,
            ExchangeableConfig(
                kind="factorized",
                epochs=3_000,
                eval_every=10,
                patience=_patience(10),
                submatrix_rows=100,
                submatrix_cols=100,
                submatrix_sampling="uniform",
            ),
        ),
    ),
}
TABLES = tuple(FULL_UNITS)

# transfer targets: registry split name -> dataset key suffix; ML-1M gets a new random split per seed
TRANSFER_TARGETS = {
    "ml-1m/random-90-10": "ml-1m",
    "douban": "douban",
    "flixster": "flixster",
    "yahoo_music": "yahoo_music",
}
TRANSFER_MAPPING = "linear"


def transfer_key(target: str) -> str:
    return f"transfer:ml-100k->{TRANSFER_TARGETS[target]}"


_SMOKE_NET = {
    "ss_hidden": (16, 16),
    "fe_encoder_hidden": (16,),
    "fe_latent": 8,
    "fe_decoder_hidden": (16, 16),
    "fe_decoder_dropout_after": (2,),
}


def _smoke(unit: Unit) -> Unit:
    """Same code path, tiny network, 2 epochs (2 sampled sub-matrices per epoch where the protocol samples)."""
    c = unit.config
    sub = {} if c.submatrix_rows is None else {"submatrix_rows": 200, "submatrix_cols": 200, "steps_per_epoch": 2}
    return replace(unit, config=replace(c, epochs=2, eval_every=1, patience=5, **_SMOKE_NET, **sub))


@dataclass(frozen=True)
class Profile:
    seeds: tuple[int, ...]
    units: dict[str, tuple[Unit, ...]]
    note: str


PROFILES = {
    "full": Profile(
        seeds=(0, 1, 2, 3, 4),
        units=FULL_UNITS,
        note="the authors' code settings (epoch caps, architectures, sampling), early stopping (500 epochs), 5 seeds",
    ),
    "smoke": Profile(
        seeds=(0,),
        units={t: tuple(_smoke(u) for u in us) for t, us in FULL_UNITS.items()},
        note="tiny networks, 2 epochs, 1 seed: exercises the code path on the real data, numbers not comparable",
    ),
}


def _full_unit(table: str, unit: Unit) -> Unit:
    return next(u for u in FULL_UNITS[table] if (u.dataset, u.method) == (unit.dataset, unit.method))


def budget_label(used: ExchangeableConfig, full: ExchangeableConfig, n_seeds: int, why: str) -> str | None:
    """``reduced: <what>`` when a run is below the full protocol, else None (same string for every seed)."""
    parts = []
    if used.epochs < full.epochs:
        parts.append(f"{used.epochs} of {full.epochs} epochs")
    if n_seeds < MIN_SEEDS:
        parts.append(f"{n_seeds} of {MIN_SEEDS} seeds")
    if used.init_std != full.init_std:
        parts.append("PyTorch default init instead of the authors' N(0, 0.01)")
    unused = "fe_" if used.kind == "self_supervised" else "ss_"  # the other model's fields do not matter
    other = [
        f.name
        for f in fields(ExchangeableConfig)
        if f.name not in ("epochs", "init_std", "patience", "eval_every")
        and not f.name.startswith(unused)
        and getattr(used, f.name) != getattr(full, f.name)
    ]
    if other:
        parts.append(f"smaller network / fewer sampled steps ({', '.join(other)})")
    if not parts:
        return None
    return f"reduced: {'; '.join(parts)} ({why})"


def _slug(text: str) -> str:
    return text.replace("/", "_").replace(":", "_").replace(">", "").replace("-", "_")


def _load(unit: Unit, data_root: str | None, seed: int) -> RatingSplit:
    split = load_split(unit.split, data_root=data_root, split_seed=seed if unit.seeded_split else 0)
    assert isinstance(split, RatingSplit)
    return split


def _fit_unit(
    recorder: RunRecorder, unit: Unit, config: ExchangeableConfig, split: RatingSplit, seed: int, device: str, tag: str
) -> tuple[dict[str, Any], Any]:
    """Train one model (resumable from its checkpoint); returns the JSON summary and the best-validation model."""
    ckpt = recorder.checkpoint_path(f"{tag}-{_slug(unit.dataset)}-{unit.method}-seed{seed}")
    carved = split.with_validation(unit.valid_fraction, seed=seed)
    t0 = time.perf_counter()
    res, model = train_exchangeable(carved, config, device=device, seed=seed, checkpoint_path=ckpt)
    out = {
        "rmse": res.metrics["rmse"],
        "mae": res.metrics["mae"],
        "valid_rmse": res.valid_metrics["rmse"],
        "best_epoch": res.best_epoch,
        "epochs_run": res.epochs_run,
        "seconds_per_epoch": res.config["train_seconds"] / max(res.epochs_run, 1),
        "fit_wall_seconds": time.perf_counter() - t0,
        "n_params": res.config["n_params"],
        "steps_per_epoch": res.config["steps_per_epoch"],
        "device": res.config["device"],
        "n_train": len(carved.train),
        "n_valid": len(carved.valid) if carved.valid is not None else 0,
        "n_test": len(carved.test),
        "history": res.history.to_dict(orient="records"),
    }
    return out, model


def _record_fit(recorder: RunRecorder, unit: Unit, seed: int, out: dict[str, Any], budget: str | None) -> None:
    extra = {} if budget is None else {"budget": budget}
    for metric in ("rmse", "mae", "valid_rmse", "best_epoch", "epochs_run", "seconds_per_epoch"):
        recorder.add(unit.dataset, unit.method, metric, out[metric], seed=seed, **extra)


def run(
    recorder: RunRecorder,
    *,
    table: str,
    profile: str,
    device: str,
    data_root: str | None,
    seeds: list[int] | None = None,
    max_epochs: int | None = None,
    init: str = "authors",
) -> dict[str, pd.DataFrame]:
    """Fill ``recorder`` with every number of one table; returns the side tables (curves, fits, ...).

    ``max_epochs`` caps every fit's epoch budget (None = the protocol's); ``init`` is ``authors`` (N(0, 0.01))
    or ``pytorch``. Either, when it departs from the full protocol, labels the rows ``budget="reduced: ..."``.
    """
    if table not in FULL_UNITS:
        raise ValueError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if init not in INITS:
        raise ValueError(f"unknown init {init!r}; choose one of {', '.join(INITS)}")
    if max_epochs is not None and (not isinstance(max_epochs, int) or max_epochs < 1):
        raise ValueError(f"max_epochs must be a positive integer or None, got {max_epochs!r}")
    prof = PROFILES[profile]
    run_seeds = resolve_seeds(prof.seeds, seeds)
    why = "smoke profile" if profile == "smoke" else "capped run"
    curves, fits, baselines = [], [], []
    summary: list[dict[str, Any]] = []

    for unit in prof.units[table]:
        config = replace(unit.config, init_std=INITS[init])
        if max_epochs is not None and max_epochs < config.epochs:
            config = replace(config, epochs=max_epochs)
        full = _full_unit(table, unit).config
        budget = budget_label(config, full, len(run_seeds), why)
        # per-epoch cost is representative of the full profile only with the full network and sampling
        full_network = budget_label(replace(config, epochs=full.epochs, init_std=full.init_std), full, MIN_SEEDS, why)
        tag = f"{table}-{init}-e{config.epochs}"
        for seed in run_seeds:

            def fit(unit=unit, config=config, seed=seed, tag=tag) -> dict[str, Any]:
                split = _load(unit, data_root, seed)
                out, model = _fit_unit(recorder, unit, config, split, seed, device, tag)
                if table == "t3_transfer":
                    out["transfer"] = _transfer_eval(model, config, data_root, seed)
                elif unit.seeded_split or seed == run_seeds[0]:
                    out["mean_baselines"] = _mean_baselines(split, unit.dataset, seed if unit.seeded_split else None)
                return out

            out = recorder.cached(f"{tag}-{_slug(unit.dataset)}-{unit.method}-seed{seed}", fit)
            _record_fit(recorder, unit, seed, out, budget)
            curves.append(pd.DataFrame(out["history"]).assign(dataset=unit.dataset, method=unit.method, seed=seed))
            fits.append(
                {
                    "dataset": unit.dataset,
                    "method": unit.method,
                    "seed": seed,
                    "full_network": full_network is None,
                    **{k: v for k, v in out.items() if k not in ("history", "transfer", "mean_baselines")},
                }
            )
            baselines.extend(out.get("mean_baselines", []))
            for row in out.get("transfer", []):
                extra = {} if budget is None or row["method"] != "f-eae-transfer" else {"budget": budget}
                recorder.add(row["dataset"], row["method"], "rmse", row["rmse"], seed=row["seed"], **extra)
                baselines.append(row)
        summary.append(
            {
                "dataset": unit.dataset,
                "method": unit.method,
                "budget": budget or "full protocol",
                "config": asdict(config),
                "full_protocol_epochs": full.epochs,
            }
        )

    if table == "t3_transfer":
        _dedupe_baseline_rows(recorder)
    recorder.info.update(
        table=table,
        profile_note=prof.note,
        seeds=list(run_seeds),
        max_epochs=max_epochs,
        init=init,
        units=summary,
    )
    tables = {"curves": pd.concat(curves, ignore_index=True), "fits": pd.DataFrame(fits)}
    if baselines:
        tables["reference"] = pd.DataFrame(baselines)
    tables["cost"] = full_cost_estimate(tables["fits"], table)
    for name, df in tables.items():
        recorder.save_table(name, df)
    return tables


def _mean_baselines(split: RatingSplit, dataset: str, seed: int | None) -> list[dict[str, Any]]:
    """Mean predictors on the same split, fitted on the whole training part (context for the figures)."""
    return [
        {
            "dataset": dataset,
            "method": kind,
            "seed": seed,
            "rmse": rmse(mean_baseline_predictions(kind, split.train, split.test), split.test.values),
        }
        for kind in MEAN_BASELINES
    ]


def _transfer_eval(model: Any, config: ExchangeableConfig, data_root: str | None, seed: int) -> list[dict[str, Any]]:
    """The ML-100K model on each target without retraining, and the target's mean baselines, same entries."""
    model.eval()
    rows = []
    for target in TRANSFER_TARGETS:
        seeded = target == "ml-1m/random-90-10"
        split = load_split(target, data_root=data_root, split_seed=seed if seeded else 0)
        assert isinstance(split, RatingSplit)
        pred = predict_ratings(
            model,
            split.train,
            split.test.users,
            split.test.items,
            value_mapping=TRANSFER_MAPPING,
            source_range=split.rating_range,
            chunk_size=config.eval_chunk_size,
        )
        key = transfer_key(target)
        rows.append({"dataset": key, "method": "f-eae-transfer", "seed": seed, "rmse": rmse(pred, split.test.values)})
        # the mean baselines are deterministic on a fixed split: one row (seed -1) is kept after the loop
        for b in _mean_baselines(split, key, seed if seeded else None):
            rows.append(b)
    return rows


def _dedupe_baseline_rows(recorder: RunRecorder) -> None:
    """Deterministic baselines on fixed splits were computed once per seed; keep one row each (seed -1)."""
    seen: set[tuple[str, str, str, int]] = set()
    kept = []
    for r in recorder.rows:
        key = (r["dataset"], r["method"], r["metric"], r["seed"])
        if r["seed"] == -1 and key in seen:
            continue
        seen.add(key)
        kept.append(r)
    recorder.rows[:] = kept


def full_cost_estimate(fits: pd.DataFrame, table: str) -> pd.DataFrame:
    """Measured training seconds per epoch x the full protocol's epoch cap x 5 seeds, per model.

    An upper bound for the full profile on the device that ran this notebook (early stopping usually ends
    sooner; evaluation time comes on top: every evaluation costs about two forward passes over the matrix).
    Meaningful only where ``measured_on_full_network`` (the smoke profile's tiny networks are much cheaper).
    """
    rows = []
    for (ds, method), g in fits.groupby(["dataset", "method"], sort=False):
        full = next(u for u in FULL_UNITS[table] if (u.dataset, u.method) == (ds, method)).config
        sec = float(np.mean(g["seconds_per_epoch"]))
        rows.append(
            {
                "dataset": ds,
                "method": method,
                "device": g["device"].iloc[0],
                "measured_seconds_per_epoch": sec,
                "measured_on_full_network": bool(g["full_network"].all()),
                "full_epoch_cap": full.epochs,
                "full_seeds": MIN_SEEDS,
                "full_hours_upper_bound": sec * full.epochs * MIN_SEEDS / 3600.0,
            }
        )
    return pd.DataFrame(rows)


def learning_curves_long(curves: pd.DataFrame) -> pd.DataFrame:
    """Validation and test RMSE per evaluation in long form (``curve`` column) for seaborn."""
    long = curves.melt(
        id_vars=["dataset", "method", "seed", "epoch"],
        value_vars=["valid_rmse", "test_rmse"],
        var_name="curve",
        value_name="rmse",
    )
    long["panel"] = long["dataset"] + " · " + long["method"]
    return long
