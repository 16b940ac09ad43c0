"""Monti, Bronstein & Bresson (NIPS 2017), geometric matrix completion with sRMGCNN/RMGCNN: three tables.

Tables (one notebook each, ``run(recorder, table=...)``):

* ``t2_synthetic`` -- Synthetic Netflix (150 x 200, 4,500 training / 4,500 test entries), users and items
  graphs: sRMGCNN, the full RMGCNN, GRALS, GMC; and the users-graph-only variant (sRMGCNN, GRALS; method keys
  with the suffix ``-users-graph``, the paper's Table 3 whose values were not recovered).
* ``t4_ml100k`` -- ML-100K ``split_1.mat`` (``load_split("ml-100k-monti")``: exactly the ratings of
  ``u1.base``/``u1.test``, so its rows are recorded under the claims' dataset key ``ml-100k/u1``), both
  graphs: sRMGCNN, the mean predictors, MC (soft-impute), GMC, GRALS, and IMC on ML-100K's user and item
  features (``recrepro.data.side_features``; the only dataset of the three tables that ships features).
* ``t5_real`` -- Monti's 3000 x 3000 Douban (user graph only, as shipped), Flixster (both graphs, and users
  graph only: suffix ``-users-graph``) and YahooMusic (item graph only, as shipped): sRMGCNN, GRALS, the mean
  predictors. The full RMGCNN is not run on them: its activations need ~150 GB (``benchmarks/bench_mgcnn.py``).

Two protocols for every sRMGCNN/RMGCNN number, both reported and labelled:

* ``<model>-paper-protocol[-users-graph]`` (``fit_mgcnn(selection="paper")``): the authors' notebooks. No
  validation set; the model trains on every training entry and the reported test RMSE is the one evaluated at
  the iteration of lowest *training* loss (test evaluated every ``eval_every`` iterations). These are the rows
  compared with the paper's numbers.
* ``<model>[-users-graph]`` (``selection="validation"``, clean): 10% of the training entries (fresh carve per
  seed, ``split.with_validation(0.1, seed)``) are held out; the model trains on the other 90% for the same
  fixed number of iterations and the test RMSE is reported at the evaluation with the lowest validation RMSE.

Both keep the authors' output layer: the network's score matrix X is min-max rescaled *over the whole matrix*
(X̂ = lo + (hi − lo)(X − min X)/(max X − min X), [lo, hi] = the training ratings' range) inside the training
loss and at prediction. It uses the predictions at every entry, the test entries included, but never a test
rating; it is part of the model, not a selection on test data, so it is kept in both protocols.

GRALS, GMC, MC (``recrepro.models.graph_mc``) and IMC (``recrepro.models.imc``) pick their regularisation
weights on the same kind of validation carve (10% of the training entries, seed 0) and report the test RMSE of
the chosen candidate. They are deterministic given the carve (exact SVDs, conjugate gradient, no random
initialisation; IMC's ALS starts from a random H drawn with seed 0), so they run once (seed 0). The mean
predictors are closed form on the whole training part. The paper quotes its GMC/MC/IMC numbers from earlier
work (protocol not recovered); ours are our own runs of those methods.

Hyperparameter sources (paper = Monti et al. 2017, recalled and unverified; code = fmonti/mgcnn notebooks, as
summarised in /work/shared/research/protocols.md section 4.2; ``MGCNNConfig.preset`` carries them):

* sRMGCNN/RMGCNN architecture (Chebyshev order 4, 32 features, LSTM 32, T = 10 diffusion steps, rank 10 on
  real data / 15 on synthetic, Adam lr 1e-3), the loss weights (γ, γ_W, γ_H, Dirichlet normalisation), the
  iteration counts (50,000 synthetic sRMGCNN, 25,000 synthetic RMGCNN, 10,000 ML-100K / Flixster /
  YahooMusic, 5,000 Douban), the evaluation period (every 10 iterations, 100 on YahooMusic), the half of the
  training entries used for the SVD initialisation (``RandomState(0)``), the simplified Laplacian L − I, the
  authors' LSTM gates, single-graph side as a free trainable factor: code.
* Users-graph-only variants (Flixster, synthetic): the dataset's preset with the item graph removed (the
  authors' single-graph convention of their Douban notebook); the paper's settings for them not recovered.
* Validation fraction 10% and selection on validation RMSE, no early stopping (same fixed iteration budget as
  the paper protocol): our choice. Seeds 0..4 (five per headline number, the study's rule; the number of runs
  behind the paper's numbers is not recovered): our choice. A seed sets the network initialisation and, in
  the clean protocol, the validation carve.
* GRALS on real data: rank 10 (like sRMGCNN), λ_r ∈ {0.1, 1, 10, 100} x λ_g ∈ {0.1, 1, 10, 100, 1000}, 30
  ALS sweeps, 20 CG steps per half-sweep: our choice (``GRALSConfig``'s 3 x 4 grid widened because Douban and
  YahooMusic chose its largest weights; in the wider grid Douban still picks the smallest λ_g and YahooMusic
  the largest). On Synthetic Netflix: rank 15 (like sRMGCNN there), λ_r ∈ {1e-4, 1e-3, 1e-2} x λ_g ∈ {0.03,
  0.1, 0.3, 1}, 100 sweeps: our choice (noise-free data: small weights; the validation RMSE is flat in the
  chosen corner).
* GMC on ML-100K: γ ∈ {0.001, 0.01, 0.1} x λ/σ_max ∈ {0.3, 0.2, 0.1, 0.05}, 100 FISTA steps, exact SVDs: our
  choice (``GMCConfig``'s γ ∈ {0.1, 1, 10} all did worse than MC; with the Dirichlet term on every entry of
  the dense X the useful γ is small, and the smallest γ wins: GMC ≈ MC here). On Synthetic Netflix:
  ``GMCConfig``'s γ grid with the λ path extended down to 0.001 σ_max (it chose the smallest λ): our choice.
* MC: ``SoftImputeConfig`` (λ/σ_max from 0.5 down to 0.01, warm-started, exact SVDs): our choice.
* IMC: ``IMCConfig`` (rank ∈ {1, 2, 5, 10, 20} x λ ∈ {0.01, ..., 100}, 50 ALS sweeps, centred, a constant
  feature column on both sides); features age, gender, occupation / 19 genres (as GC-MC's): our choice.
* Grid edges a method chose are visible in the ``tuning`` side table.

Budget labels: a run below the full protocol -- sRMGCNN/RMGCNN iterations capped by ``max_iterations``, fewer
than 5 seeds, or the smoke profile (a few iterations, small baseline grids) -- labels its rows
``budget="reduced: <what>"``. The measured training seconds per iteration are recorded per fit
(``seconds_per_iteration``) and the ``cost`` side table multiplies them by the full protocol's iterations
and seeds. Each fit checkpoints every 500 iterations, so an interrupted run resumes exactly where it stopped
(``tests/test_mgcnn.py``); the runner keeps checkpoints per set of inputs (code, notebook, parameters).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from ..data import load_split
from ..data.side_features import ml100k_feature_matrices
from ..data.types import RatingSplit
from ..metrics import rmse
from ..models.baselines import MEAN_BASELINES, mean_baseline_predictions
from ..models.graph_mc import GMCConfig, GRALSConfig, SoftImputeConfig, fit_gmc, fit_grals, fit_soft_impute
from ..models.imc import IMCConfig, fit_imc
from ..models.mgcnn import MGCNNConfig, fit_mgcnn
from ..results import RunRecorder
from ..training import load_checkpoint
from . import resolve_seeds

MIN_SEEDS = 5  # the study's rule for a headline number
VALID_FRACTION = 0.1  # clean protocol and baseline tuning; our choice
BASELINE_SEED = 0  # validation carve of the deterministic baselines
MGCNN_MODELS = ("srmgcnn", "rmgcnn")
PROTOCOLS = ("paper", "validation")


@dataclass(frozen=True)
class Unit:
    """One method on one dataset of a table."""

    dataset: str  # dataset key of the metric rows (matches results/claims.csv)
    split: str  # load_split name
    method: str  # srmgcnn, rmgcnn, grals, gmc, mc, imc
    graphs: str = "shipped"  # "shipped": the graphs in the file; "users": the item graph dropped

    @property
    def suffix(self) -> str:
        return "-users-graph" if self.graphs == "users" else ""

    def method_key(self, protocol: str | None = None) -> str:
        """``srmgcnn-paper-protocol-users-graph`` etc. (protocol only for the graph networks)."""
        if self.method in MGCNN_MODELS and protocol == "paper":
            return f"{self.method}-paper-protocol{self.suffix}"
        return f"{self.method}{self.suffix}"


_SYN, _ML, _DB, _FX, _YM = "synthetic_netflix", "ml-100k-monti", "douban", "flixster", "yahoo_music"
TABLE_UNITS: dict[str, tuple[Unit, ...]] = {
    "t2_synthetic": (
        Unit(_SYN, _SYN, "srmgcnn"),
        Unit(_SYN, _SYN, "rmgcnn"),
        Unit(_SYN, _SYN, "grals"),
        Unit(_SYN, _SYN, "gmc"),
        Unit(_SYN, _SYN, "srmgcnn", "users"),
        Unit(_SYN, _SYN, "grals", "users"),
    ),
    "t4_ml100k": (
        Unit("ml-100k/u1", _ML, "srmgcnn"),
        Unit("ml-100k/u1", _ML, "mc"),
        Unit("ml-100k/u1", _ML, "gmc"),
        Unit("ml-100k/u1", _ML, "grals"),
        Unit("ml-100k/u1", _ML, "imc"),
    ),
    "t5_real": (
        Unit(_DB, _DB, "srmgcnn"),
        Unit(_DB, _DB, "grals"),
        Unit(_FX, _FX, "srmgcnn"),
        Unit(_FX, _FX, "srmgcnn", "users"),
        Unit(_FX, _FX, "grals"),
        Unit(_FX, _FX, "grals", "users"),
        Unit(_YM, _YM, "srmgcnn"),
        Unit(_YM, _YM, "grals"),
    ),
}
TABLES = tuple(TABLE_UNITS)

# baseline configurations of the full profile (sources in the module docstring)
_GRALS_SYNTHETIC = GRALSConfig(
    rank=15, lambda_ridge=(1e-4, 1e-3, 1e-2), lambda_graph=(0.03, 0.1, 0.3, 1.0), n_outer=100
)
_GRALS_REAL = GRALSConfig(lambda_ridge=(0.1, 1.0, 10.0, 100.0), lambda_graph=(0.1, 1.0, 10.0, 100.0, 1000.0))
_GMC_REAL = GMCConfig(lambda_fractions=(0.3, 0.2, 0.1, 0.05), gammas=(0.001, 0.01, 0.1))
_GMC_SYNTHETIC = GMCConfig(lambda_fractions=(0.3, 0.1, 0.03, 0.01, 0.003, 0.001))


def _full_baseline_config(unit: Unit) -> Any:
    synthetic = unit.split == _SYN
    if unit.method == "grals":
        return _GRALS_SYNTHETIC if synthetic else _GRALS_REAL
    if unit.method == "gmc":
        return _GMC_SYNTHETIC if synthetic else _GMC_REAL
    if unit.method == "mc":
        return SoftImputeConfig()
    if unit.method == "imc":
        return IMCConfig()
    raise ValueError(f"{unit.method!r} is not a baseline")


def _smoke_baseline_config(unit: Unit) -> Any:
    full = _full_baseline_config(unit)
    if unit.method == "grals":
        return replace(full, lambda_ridge=full.lambda_ridge[1:2], lambda_graph=full.lambda_graph[1:3], n_outer=2)
    if unit.method == "gmc":
        return replace(full, lambda_fractions=full.lambda_fractions[:1], gammas=full.gammas[:1], max_iter=3)
    if unit.method == "imc":
        return replace(full, ranks=(1, 2), lambdas=(1.0,), n_sweeps=3)
    return replace(full, lambda_fractions=(0.1, 0.03), max_iter=3)


@dataclass(frozen=True)
class Profile:
    seeds: tuple[int, ...]
    max_iterations: int | None  # cap on the graph networks' iterations (None: the authors')
    eval_every: int | None  # evaluation period override (None: the authors')
    small_baselines: bool
    note: str
    protocols: tuple[str, ...] = field(default=PROTOCOLS)


PROFILES = {
    "full": Profile(
        seeds=(0, 1, 2, 3, 4),
        max_iterations=None,
        eval_every=None,
        small_baselines=False,
        note="the authors' iteration counts and settings, paper and validation protocols, 5 seeds; baselines "
        "tuned on a 10% validation carve, one deterministic run each",
    ),
    "smoke": Profile(
        seeds=(0,),
        max_iterations=10,
        eval_every=5,
        small_baselines=True,
        note="10 iterations per graph network, tiny baseline grids, 1 seed: exercises the code path on the real "
        "data, numbers not comparable",
    ),
}


def mgcnn_config(unit: Unit, profile: Profile, max_iterations: int | None) -> tuple[MGCNNConfig, MGCNNConfig]:
    """(config used, full-protocol config) of a graph-network unit."""
    full = MGCNNConfig.preset(unit.split, model=unit.method)
    cap = min(c for c in (profile.max_iterations, max_iterations, full.n_iterations) if c is not None)
    used = replace(full, n_iterations=cap)
    if profile.eval_every is not None:
        used = replace(used, eval_every=min(profile.eval_every, cap))
    return used, full


def budget_label(used_iterations: int, full_iterations: int, n_seeds: int, why: str) -> str | None:
    """``reduced: <what>`` when a graph-network run is below the full protocol, else None."""
    parts = []
    if used_iterations < full_iterations:
        parts.append(f"{used_iterations:,} of {full_iterations:,} iterations")
    if n_seeds < MIN_SEEDS:
        parts.append(f"{n_seeds} of {MIN_SEEDS} seeds")
    return None if not parts else f"reduced: {'; '.join(parts)} ({why})"


def _slug(text: str) -> str:
    return text.replace("/", "_").replace("-", "_")


def _load(unit: Unit, data_root: str | None) -> RatingSplit:
    split = load_split(unit.split, data_root=data_root)
    assert isinstance(split, RatingSplit)
    if unit.graphs == "users":
        if split.user_graph is None:
            raise ValueError(f"{unit.split} has no user graph; the users-graph-only variant is undefined")
        split = replace(split, item_graph=None)
    return split


def _fit_mgcnn(
    recorder: RunRecorder,
    unit: Unit,
    config: MGCNNConfig,
    split: RatingSplit,
    protocol: str,
    seed: int,
    device: str,
    tag: str,
) -> dict[str, Any]:
    """Train one graph network.

    The checkpoint key has no iteration count: in the same checkpoint folder a longer run continues a shorter
    one; a checkpoint already past this run's iteration count is left alone and this run gets its own.
    """
    data = split if protocol == "paper" else split.with_validation(VALID_FRACTION, seed=seed)
    ckpt = recorder.checkpoint_path(f"{tag}-{_slug(unit.dataset)}-{unit.method_key(protocol)}-seed{seed}")
    state = load_checkpoint(ckpt)
    if ckpt is not None and state is not None and state["next_iteration"] > config.n_iterations:
        ckpt = ckpt.with_name(f"{ckpt.stem}-it{config.n_iterations}{ckpt.suffix}")
    del state
    t0 = time.perf_counter()
    res = fit_mgcnn(data, config, device=device, seed=seed, checkpoint_path=ckpt, selection=protocol)
    hist = res.history
    return {
        "rmse": res.metrics["rmse"],
        "valid_rmse": res.valid_metrics.get("rmse"),
        "best_iteration": res.best_epoch,
        "iterations_run": res.epochs_run,
        "seconds_per_iteration": res.config["seconds_per_iteration"],
        "fit_wall_seconds": time.perf_counter() - t0,
        "last_eval_test_rmse": float(hist["test_rmse"].iloc[-1]),
        "last_eval_iteration": int(hist["iteration"].iloc[-1]),
        "n_parameters": res.config["n_parameters"],
        "device": res.config["device"],
        "n_train": len(data.train),
        "n_valid": 0 if data.valid is None else len(data.valid),
        "history": hist.to_dict(orient="records"),
    }


def _fit_baseline(unit: Unit, config: Any, split: RatingSplit, device: str, data_root: str | None) -> dict[str, Any]:
    carved = split.with_validation(VALID_FRACTION, seed=BASELINE_SEED)
    t0 = time.perf_counter()
    if unit.method == "imc":
        if unit.split != _ML:
            raise ValueError(f"IMC needs side features; only {_ML} has them, not {unit.split}")
        user_x, item_x, _, _ = ml100k_feature_matrices(data_root)
        res = fit_imc(carved, user_x, item_x, config, device=device, seed=BASELINE_SEED)
    elif unit.method == "grals":
        res = fit_grals(carved, config, device=device, seed=BASELINE_SEED)
    elif unit.method == "gmc":
        res = fit_gmc(carved, config, device=device)
    else:
        res = fit_soft_impute(carved, config, device=device)
    return {
        "rmse": res.metrics["rmse"],
        "valid_rmse": res.valid_metrics["rmse"],
        "selected": res.config["selected"],
        "wall_seconds": time.perf_counter() - t0,
        "config": asdict(config),
        "trials": res.history.to_dict(orient="records"),
    }


def run(
    recorder: RunRecorder,
    *,
    table: str,
    profile: str,
    device: str,
    data_root: str | None,
    seeds: list[int] | None = None,
    max_iterations: int | None = None,
) -> dict[str, pd.DataFrame]:
    """Fill ``recorder`` with every number of one table; returns the side tables (curves, fits, tuning, cost).

    ``max_iterations`` caps every graph network's iteration count (None = the authors'); a cap below the
    authors' count, or fewer than 5 seeds, labels the graph-network rows ``budget="reduced: ..."``.
    """
    if table not in TABLE_UNITS:
        raise ValueError(f"unknown table {table!r}; choose one of {', '.join(TABLES)}")
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; choose one of {', '.join(PROFILES)}")
    if max_iterations is not None and (
        not isinstance(max_iterations, int) or isinstance(max_iterations, bool) or max_iterations < 1
    ):
        raise ValueError(f"max_iterations must be a positive integer or None, got {max_iterations!r}")
    prof = PROFILES[profile]
    run_seeds = resolve_seeds(prof.seeds, seeds)
    why = "smoke profile" if profile == "smoke" else "capped CPU run"
    curves, fits, tuning, summary = [], [], [], []
    splits: dict[tuple[str, str], RatingSplit] = {}

    def split_of(unit: Unit) -> RatingSplit:
        if (unit.split, unit.graphs) not in splits:
            splits[(unit.split, unit.graphs)] = _load(unit, data_root)
        return splits[(unit.split, unit.graphs)]

    # the mean predictors, closed form on the whole training part of each dataset of the table
    for dataset, name in dict.fromkeys((u.dataset, u.split) for u in TABLE_UNITS[table]):
        split = split_of(Unit(dataset, name, "mean"))
        for kind in MEAN_BASELINES:
            pred = mean_baseline_predictions(kind, split.train, split.test)
            recorder.add(dataset, kind, "rmse", rmse(pred, split.test.values))

    for unit in TABLE_UNITS[table]:
        if unit.method in MGCNN_MODELS:
            config, full = mgcnn_config(unit, prof, max_iterations)
            budget = budget_label(config.n_iterations, full.n_iterations, len(run_seeds), why)
            extra = {} if budget is None else {"budget": budget}
            for protocol in prof.protocols:
                key = unit.method_key(protocol)
                for seed in run_seeds:

                    def fit(unit=unit, config=config, protocol=protocol, seed=seed) -> dict[str, Any]:
                        return _fit_mgcnn(recorder, unit, config, split_of(unit), protocol, seed, device, table)

                    out = recorder.cached(
                        f"{table}-{_slug(unit.dataset)}-{key}-seed{seed}-it{config.n_iterations}", fit
                    )
                    metrics = ["rmse", "best_iteration", "iterations_run", "seconds_per_iteration"]
                    if protocol == "validation":
                        metrics.append("valid_rmse")
                    for metric in metrics:
                        recorder.add(unit.dataset, key, metric, out[metric], seed=seed, **extra)
                    curves.append(
                        pd.DataFrame(out["history"]).assign(
                            dataset=unit.dataset, method=key, protocol=protocol, seed=seed
                        )
                    )
                    fits.append(
                        {"dataset": unit.dataset, "method": key, "protocol": protocol, "seed": seed}
                        | {k: v for k, v in out.items() if k != "history"}
                        | {"full_iterations": full.n_iterations}
                    )
                summary.append(
                    {"dataset": unit.dataset, "method": key, "budget": budget or "full protocol"}
                    | {"config": asdict(config), "full_protocol_iterations": full.n_iterations}
                )
        else:
            config = (_smoke_baseline_config if prof.small_baselines else _full_baseline_config)(unit)
            budget = "reduced: smoke profile (small grid, few iterations)" if prof.small_baselines else None
            extra = {} if budget is None else {"budget": budget}
            key = unit.method_key()

            def fit_b(unit=unit, config=config) -> dict[str, Any]:
                return _fit_baseline(unit, config, split_of(unit), device, data_root)

            out = recorder.cached(f"{table}-{_slug(unit.dataset)}-{key}", fit_b)
            recorder.add(unit.dataset, key, "rmse", out["rmse"], seed=BASELINE_SEED, **extra)
            recorder.add(unit.dataset, key, "valid_rmse", out["valid_rmse"], seed=BASELINE_SEED, **extra)
            tuning.append(pd.DataFrame(out["trials"]).assign(dataset=unit.dataset, method=key))
            summary.append(
                {"dataset": unit.dataset, "method": key, "budget": budget or "full protocol (one deterministic run)"}
                | {"config": out["config"], "selected": out["selected"], "wall_seconds": out["wall_seconds"]}
            )

    recorder.info.update(
        table=table,
        profile_note=prof.note,
        seeds=list(run_seeds),
        max_iterations=max_iterations,
        valid_fraction=VALID_FRACTION,
        units=summary,
    )
    tables = {
        "curves": pd.concat(curves, ignore_index=True),
        "fits": pd.DataFrame(fits),
        "tuning": pd.concat(tuning, ignore_index=True) if tuning else pd.DataFrame(),
        "units": pd.DataFrame(summary).drop(columns=["config"]),
    }
    tables["cost"] = full_cost_estimate(tables["fits"])
    for name, df in tables.items():
        recorder.save_table(name, df.astype({"selected": str}) if "selected" in df else df)
    return tables


def full_cost_estimate(fits: pd.DataFrame) -> pd.DataFrame:
    """Measured training seconds per iteration x the authors' iterations x 5 seeds x 2 protocols, per model.

    Evaluations (a gradient-free forward pass every ``eval_every`` iterations) come on top, a few percent.
    """
    rows = []
    for (ds, method), g in fits.groupby(["dataset", "method"], sort=False):
        sec = float(np.mean(g["seconds_per_iteration"]))
        n = int(g["full_iterations"].iloc[0])
        rows.append(
            {
                "dataset": ds,
                "method": method,
                "device": g["device"].iloc[0],
                "measured_seconds_per_iteration": sec,
                "full_iterations": n,
                "full_seeds": MIN_SEEDS,
                "full_hours_per_seed": sec * n / 3600.0,
                "full_hours_all_seeds": sec * n * MIN_SEEDS / 3600.0,
            }
        )
    out = pd.DataFrame(rows)
    if len(out):
        total = {"dataset": "all", "method": "total", "device": out["device"].iloc[0], "full_seeds": MIN_SEEDS}
        total |= {k: out[k].sum() for k in ("full_hours_per_seed", "full_hours_all_seeds")}
        out = pd.concat([out, pd.DataFrame([total])], ignore_index=True)
    return out


def protocol_gap(metrics: pd.DataFrame) -> pd.DataFrame:
    """Paper protocol vs clean validation protocol, per dataset and model (test RMSE mean ± std over seeds)."""
    df = metrics[metrics["metric"] == "rmse"]
    rows = []
    for (ds, method), g in df.groupby(["dataset", "method"], sort=False):
        if "-paper-protocol" not in method:
            continue
        clean = df[(df["dataset"] == ds) & (df["method"] == method.replace("-paper-protocol", ""))]
        if clean.empty:
            continue
        rows.append(
            {
                "dataset": ds,
                "model": method.replace("-paper-protocol", ""),
                "paper_protocol_mean": g["value"].mean(),
                "paper_protocol_std": g["value"].std(ddof=1) if len(g) > 1 else 0.0,
                "validation_mean": clean["value"].mean(),
                "validation_std": clean["value"].std(ddof=1) if len(clean) > 1 else 0.0,
                "difference": clean["value"].mean() - g["value"].mean(),
                "n_seeds": len(g),
            }
        )
    return pd.DataFrame(rows)


def baselines_vs_published(metrics: pd.DataFrame, claims_path: str = "results/claims.csv") -> pd.DataFrame:
    """Our best mean predictor per dataset against the paper's sRMGCNN numbers and ours (paper protocol)."""
    from ..claims import load_claims

    claims = load_claims(claims_path)
    pub = claims[
        (claims["paper"] == "monti2017")
        & (claims["kind"] == "paper")
        & claims["method_key"].str.startswith("srmgcnn-paper-protocol")
        & claims["value_num"].notna()
    ]
    df = metrics[metrics["metric"] == "rmse"]
    means = df[df["method"].isin(MEAN_BASELINES)].groupby(["dataset", "method"])["value"].mean().reset_index()
    rows = []
    for _, c in pub.iterrows():
        m = means[means["dataset"] == c["dataset_key"]]
        if m.empty:
            continue
        best = m.loc[m["value"].idxmin()]
        ours = df[(df["dataset"] == c["dataset_key"]) & (df["method"] == c["method_key"])]["value"]
        rows.append(
            {
                "claim_id": c["claim_id"],
                "dataset": c["dataset_key"],
                "published": c["method_key"],
                "published_rmse": c["value_num"],
                "ours_same_protocol": ours.mean() if len(ours) else np.nan,
                "best_mean_predictor": best["method"],
                "best_mean_rmse": best["value"],
                "mean_predictor_beats_published": bool(best["value"] < c["value_num"]),
            }
        )
    return pd.DataFrame(rows)


def curves_long(curves: pd.DataFrame) -> pd.DataFrame:
    """Training RMSE, validation and test RMSE per evaluation in long form (``curve`` column) for seaborn."""
    cols = [c for c in ("train_rmse", "valid_rmse", "test_rmse") if c in curves]
    long = curves.melt(
        id_vars=["dataset", "method", "protocol", "seed", "iteration"], value_vars=cols, var_name="curve",
        value_name="rmse",
    )  # fmt: skip
    long = long.dropna(subset=["rmse"])
    panel = long["method"] if long["dataset"].nunique() == 1 else long["dataset"] + " · " + long["method"]
    return long.assign(panel=panel)
