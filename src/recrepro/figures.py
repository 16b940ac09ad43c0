"""Seaborn figures shared by notebooks and the book (never raw prints)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns


def relative_rmse(metrics: pd.DataFrame, reference: str = "global-mean") -> plt.Figure:
    """Each method's test RMSE divided by the ``reference`` method's, per dataset (scales differ by dataset)."""
    df = metrics[metrics["metric"] == "rmse"]
    ref = df[df["method"] == reference].groupby("dataset")["value"].mean()
    rel = df.assign(relative=df["value"] / df["dataset"].map(ref))
    fig, ax = plt.subplots(figsize=(7, 3.2))
    sns.barplot(data=rel, x="dataset", y="relative", hue="method", errorbar="sd", ax=ax)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_ylabel(f"test RMSE / {reference}")
    ax.set_ylim(0.7 * rel["relative"].min(), 1.05 * rel["relative"].max())
    ax.legend(fontsize=7, ncols=3, loc="upper right")
    fig.tight_layout()
    return fig


def paper_vs_ours(diff: pd.DataFrame) -> plt.Figure:
    """Ours against the paper's value for every claim with both, on each claim's relative scale."""
    df = diff.dropna(subset=["rel_delta"]).copy()
    df["label"] = df["method"].str.slice(0, 28) + " · " + df["dataset"]
    fig, ax = plt.subplots(figsize=(7, 0.32 * max(3, len(df)) + 0.8))
    sns.barplot(data=df, y="label", x=100 * df["rel_delta"], hue="status", dodge=False, ax=ax)
    ax.axvline(0.0, color="grey", lw=0.8)
    ax.set_xlabel("ours − paper, % of the paper's value")
    ax.set_ylabel("")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def learning_curves(long: pd.DataFrame) -> sns.FacetGrid:
    """Validation and test RMSE per evaluation, one line per seed, a panel per (dataset, method).

    ``long``: columns epoch, rmse, curve, seed, panel (``hartford2018.learning_curves_long`` makes it).
    """
    g = sns.relplot(
        data=long, x="epoch", y="rmse", hue="curve", units="seed", estimator=None, col="panel", kind="line",
        facet_kws={"sharey": False}, height=3.0,
    )  # fmt: skip
    g.set_titles("{col_name}")
    return g


def rmse_by_observed_share(sweep: pd.DataFrame) -> sns.FacetGrid:
    """Held-out RMSE against the share of the unseen block's ratings given as input (mean ± sd over seeds)."""
    g = sns.relplot(
        data=sweep, x="observed_share", y="rmse", hue="method", style="method", kind="line", marker="o",
        errorbar="sd", height=3.5, aspect=1.4,
    )  # fmt: skip
    g.set_axis_labels("observed share of the unseen block's ratings", "held-out RMSE")
    return g


def hr_at_k(curves: pd.DataFrame) -> sns.FacetGrid:
    """HR@k against k per method, a panel per protocol (sampled, full ranking), mean ± sd over seeds.

    ``curves``: columns k, hr, method, protocol (``lrml2018.hr_curves`` makes it); the panels keep their own y
    scale, since full-ranking hit rates are an order of magnitude lower.
    """
    protocols = sorted(curves["protocol"].unique(), key=lambda p: p.startswith("full"))  # sampled first
    g = sns.relplot(
        data=curves, x="k", y="hr", hue="method", col="protocol", col_order=protocols, kind="line", marker="o",
        markersize=3, errorbar="sd", height=3.2, facet_kws={"sharey": False},
    )  # fmt: skip
    g.set_axis_labels("cut-off k", "HR@k (test)")
    g.set_titles("{col_name}")
    return g
