"""Paper vs ours: join the claims registry with measured results and compute each claim's status.

Tolerance rule (the one place it is defined; the book quotes ``TOLERANCE_RULE``): a claim is *reproduced* when
|ours − paper| ≤ max(1% of |paper|, half a unit of the paper's last printed digit, 2 × the standard deviation
of ours over seeds). Statuses:

* ``reproduced`` — full-profile result within tolerance;
* ``not reproduced (ours better|worse)`` — full-profile result outside tolerance;
* ``reduced budget: …`` — we only have a smoke-profile result, or the notebook ran less than the paper's budget;
* ``not run: …`` — no result, with the reason (data unavailable here, or not implemented yet);
* ``no paper value`` — the registry has no number for the claim (not recovered), ours is shown alone.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd

from .catalog import NOTEBOOKS, UNAVAILABLE_DATA

TOLERANCE_RULE = (
    "reproduced when |ours - paper| <= max(1% of |paper|, half a unit in the paper's last printed digit, "
    "2 x std of ours over seeds), using full-profile results only"
)
REL_TOL = 0.01
NOT_IMPLEMENTED = "not run: not implemented yet"


def printed_half_unit(text: str) -> float:
    """Half a unit in the last printed digit: '0.91' -> 0.005, '22.4149' -> 0.00005, '20' -> 0.5."""
    text = text.strip()
    decimals = len(text.split(".")[1]) if "." in text else 0
    return 0.5 * 10.0 ** (-decimals)


def tolerance(paper_text: str, paper_value: float, std: float) -> float:
    return max(REL_TOL * abs(paper_value), printed_half_unit(paper_text), 2.0 * (0.0 if math.isnan(std) else std))


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean, std and count over seeds per (dataset, method, metric), with a formatted ``ours`` column."""
    keys = ["dataset", "method", "metric"]
    extra = [c for c in ("notebook", "profile", "budget") if c in metrics.columns]
    agg = metrics.groupby(keys + extra, dropna=False)["value"].agg(["mean", "std", "count"]).reset_index()
    agg["std"] = agg["std"].fillna(0.0)

    def fmt(r: pd.Series) -> str:
        digits = 4 if abs(r["mean"]) < 10 else 2
        if r["count"] > 1:
            return f"{r['mean']:.{digits}f} ± {r['std']:.{digits}f} (n={int(r['count'])})"
        return f"{r['mean']:.{digits}f}"

    agg["ours"] = agg.apply(fmt, axis=1)
    return agg


def selection_optimism(curves: pd.DataFrame) -> pd.DataFrame:
    """What test-set selection would have reported, from a run's learning curves (RMSE, lower is better).

    Per fit (dataset, method, protocol, seed; a grid's configs count as one fit, as the notebooks select over
    them): the test RMSE at the evaluation with the lowest validation RMSE (what we report) and the lowest test
    RMSE over all evaluations (what a "best test" log, e.g. Hartford et al.'s ``min_ts_loss``, shows). Returns
    their means over seeds and the mean optimism (ours - best test, >= 0). Curves without a validation RMSE
    (Monti's paper protocol) are left out.
    """
    if not {"valid_rmse", "test_rmse", "dataset", "method", "seed"} <= set(curves.columns):
        return pd.DataFrame()
    keys = [c for c in ("dataset", "method", "protocol") if c in curves.columns]
    c = curves.dropna(subset=["valid_rmse", "test_rmse"])
    fits = (
        c.groupby([*keys, "seed"], dropna=False)
        .apply(
            lambda g: pd.Series(
                {"test_at_best_valid": g.loc[g["valid_rmse"].idxmin(), "test_rmse"], "best_test": g["test_rmse"].min()}
            ),
            include_groups=False,
        )
        .reset_index()
    )
    if fits.empty:
        return fits
    fits["optimism"] = fits["test_at_best_valid"] - fits["best_test"]
    out = fits.groupby(keys, dropna=False).agg(
        seeds=("seed", "nunique"),
        test_at_best_valid=("test_at_best_valid", "mean"),
        best_test=("best_test", "mean"),
        optimism=("optimism", "mean"),
    )
    return out.reset_index()


def _unavailable_reason(dataset_key: str) -> str | None:
    why = UNAVAILABLE_DATA.get(dataset_key)
    return None if why is None else f"not run: {why}"


def _best_match(candidates: list[pd.Series], paper: str) -> pd.Series | None:
    """Among results for the same key (several notebooks can measure it), prefer a full-profile run, then one from
    the claim's own paper's notebook."""
    if not candidates:
        return None

    def rank(r: pd.Series) -> tuple[bool, bool]:
        nb = str(r.get("notebook", ""))
        own = nb in NOTEBOOKS and NOTEBOOKS[nb].paper == paper
        return (r.get("profile", "full") == "full", own)

    return max(candidates, key=rank)


def status_of(claim: pd.Series, ours: pd.Series | None) -> str:
    """The computed status of one claim given our summary row (or None)."""
    if ours is None:
        if math.isnan(claim["value_num"]) and not _unavailable_reason(claim["dataset_key"]):
            return "not run: paper value not recovered"
        return _unavailable_reason(claim["dataset_key"]) or NOT_IMPLEMENTED
    if ours.get("profile", "full") != "full":
        return "reduced budget: smoke profile only"
    if math.isnan(claim["value_num"]):
        return "no paper value (not recovered)"
    budget = ours.get("budget", "")
    if isinstance(budget, str) and budget.startswith("reduced"):
        return f"reduced budget: {budget.removeprefix('reduced').lstrip(': ')}"
    delta = ours["mean"] - claim["value_num"]
    if abs(delta) <= tolerance(claim["value"], claim["value_num"], ours["std"]):
        return "reproduced"
    better = delta < 0 if claim["lower_is_better"] == "true" else delta > 0
    return f"not reproduced (ours {'better' if better else 'worse'})"


def diff(
    claims: pd.DataFrame,
    metrics: pd.DataFrame,
    paper: str | None = None,
    kinds: tuple[str, ...] = ("paper", "code-output", "external"),
) -> pd.DataFrame:
    """One row per claim: paper value, ours (mean ± std), deltas, tolerance and status."""
    sel = claims[claims["kind"].isin(kinds)]
    if paper is not None:
        if paper not in set(claims["paper"]):
            raise KeyError(
                f"unknown paper {paper!r}; papers in the registry: {', '.join(sorted(set(claims['paper'])))}"
            )
        sel = sel[sel["paper"] == paper]
    summary = summarise(metrics) if len(metrics) else pd.DataFrame()
    index: dict[tuple[str, str, str], list[pd.Series]] = {}
    for _, r in summary.iterrows():
        index.setdefault((r["dataset"], r["method"], r["metric"]), []).append(r)
    rows = []
    for _, c in sel.iterrows():
        ours = _best_match(index.get((c["dataset_key"], c["method_key"], c["metric_key"]), []), c["paper"])
        row = {
            "claim_id": c["claim_id"],
            "paper": c["paper"],
            "table": c["table"],
            "dataset": c["dataset_key"] or c["dataset"],
            "method": c["method"],
            "our_row": c["method_key"],
            "metric": c["metric_key"] or c["metric"],
            "paper_value": c["value"],
            "paper_num": c["value_num"],
            "kind": c["kind"],
            "source": c["source"],
            "ours_mean": np.nan,
            "ours_std": np.nan,
            "n_seeds": 0,
            "ours": "",
            "abs_delta": np.nan,
            "rel_delta": np.nan,
            "tolerance": np.nan,
            "profile": "",
            "notebook": "",
        }
        if ours is not None:
            row.update(
                ours_mean=ours["mean"],
                ours_std=ours["std"],
                n_seeds=int(ours["count"]),
                ours=ours["ours"],
                profile=ours.get("profile", ""),
                notebook=ours.get("notebook", ""),
            )
            if not math.isnan(c["value_num"]):
                row["abs_delta"] = ours["mean"] - c["value_num"]
                row["rel_delta"] = row["abs_delta"] / abs(c["value_num"]) if c["value_num"] else np.nan
                row["tolerance"] = tolerance(c["value"], c["value_num"], ours["std"])
        row["status"] = status_of(c, ours)
        rows.append(row)
    return pd.DataFrame(rows)


SWAP_FACTOR = 4.0  # a pair "fits swapped" when exchanging its two paper values cuts the total error this many times
MEASURED = ("reproduced", "not reproduced")  # statuses of full-protocol results compared with a paper value
_PAIR_FIELDS = {"our_row": "our_row", "ours": "ours", "claim": "claim_id", "paper": "paper_value", "source": "source"}


def swapped_settings(d: pd.DataFrame, factor: float = SWAP_FACTOR) -> pd.DataFrame:
    """Pairs of paper claims on one method, dataset and metric under two settings (two of our rows, e.g. both graphs
    and users graph only) whose two paper values fit our two results far better exchanged.

    ``d`` is ``diff``'s output. A pair is listed when both our rows are full-protocol results (status reproduced or
    not reproduced) and the total |ours − paper| with the two values swapped is at most 1/``factor`` of the total
    as the registry assigns them: a sign that the values belong to the settings the other way round (a recalled
    assignment, or a mislabelled column in the paper), for a reader to check against the paper.
    """
    paper = d[(d["kind"] == "paper") & d["status"].str.startswith(MEASURED) & d["paper_num"].notna()]
    rows = []
    for (pkey, dataset, method, metric), g in paper.groupby(["paper", "dataset", "method", "metric"]):
        if len(g) != 2 or g["our_row"].nunique() != 2:
            continue
        a, b = g.iloc[0], g.iloc[1]
        direct = abs(a["ours_mean"] - a["paper_num"]) + abs(b["ours_mean"] - b["paper_num"])
        swapped = abs(a["ours_mean"] - b["paper_num"]) + abs(b["ours_mean"] - a["paper_num"])
        if swapped * factor <= direct:
            rows.append(
                {"paper": pkey, "dataset": dataset, "method": method, "metric": metric}
                | {f"{k}_{side}": r[col] for side, r in (("a", a), ("b", b)) for k, col in _PAIR_FIELDS.items()}
                | {"error_as_assigned": direct, "error_swapped": swapped}
            )
    return pd.DataFrame(rows)


NOISE_STDS = 2.0  # a gap between two methods is "firm" when it exceeds this many of the larger std over seeds


def _firm(a: pd.Series, b: pd.Series) -> bool:
    return abs(a["mean"] - b["mean"]) > NOISE_STDS * max(a["std"], b["std"])


def beaten_paper_methods(d: pd.DataFrame, metrics: pd.DataFrame, claims: pd.DataFrame) -> pd.DataFrame:
    """Our runs of a paper's own method that other methods of the same notebook beat, on the claim's dataset and
    metric (full profile only; the metric's direction from the claim's ``lower_is_better``).

    One row per beating method, best first: the claim, our row's ``ours``, the beating method's ``ours`` and
    whether the gap is firm (more than ``NOISE_STDS`` times the larger std over seeds). A paper whose method loses
    to its own baselines, run by us under one protocol, is a finding whatever the published number says.
    """
    direction = claims.set_index("claim_id")[["is_paper_method", "lower_is_better"]]
    rows = d[(d["kind"] == "paper") & d["status"].str.startswith(MEASURED)].join(direction, on="claim_id")
    rows = rows[rows["is_paper_method"] == "true"].drop_duplicates(["notebook", "dataset", "our_row", "metric"])
    full = metrics[metrics["profile"] == "full"] if "profile" in metrics else metrics
    summary = summarise(full) if len(full) else pd.DataFrame(columns=["notebook", "dataset", "metric"])
    out = []
    for r in rows.itertuples():
        same = summary[
            (summary["notebook"] == r.notebook) & (summary["dataset"] == r.dataset) & (summary["metric"] == r.metric)
        ].set_index("method")
        if r.our_row not in same.index:
            continue
        lower = r.lower_is_better == "true"
        ours = same.loc[r.our_row]
        better = same[(same["mean"] < ours["mean"]) if lower else (same["mean"] > ours["mean"])]
        for method, b in better.sort_values("mean", ascending=lower).iterrows():
            out.append(
                {"claim_id": r.claim_id, "paper": r.paper, "dataset": r.dataset, "metric": r.metric}
                | {"our_row": r.our_row, "ours": ours["ours"], "method": method, "theirs": b["ours"]}
                | {"firm": _firm(ours, b)}
            )
    cols = ["claim_id", "paper", "dataset", "metric", "our_row", "ours", "method", "theirs", "firm"]
    return pd.DataFrame(out, columns=cols)


def protocol_reversals(metrics: pd.DataFrame, metric: str, full_prefix: str = "full/") -> pd.DataFrame:
    """How the order of methods on a sampled ranking metric (``hr@10``) changes under full ranking
    (``full/hr@10``), per dataset of full-profile results (Krichene & Rendle 2020 show it can).

    One row per dataset with both protocols: the number of methods, Kendall's tau between the two orders, and
    ``reversals``, a list of the pairs whose order flips, each ``(ahead when sampled, ahead under full ranking,
    firm)``; ``firm``: both gaps exceed ``NOISE_STDS`` times the larger std over seeds.
    """
    from scipy.stats import kendalltau

    full = metrics[metrics["profile"] == "full"] if "profile" in metrics else metrics
    both = full[full["metric"].isin([metric, full_prefix + metric])]
    rows = []
    for dataset, g in both.groupby("dataset"):
        stats = summarise(g).set_index(["metric", "method"])
        if not {metric, full_prefix + metric} <= set(stats.index.get_level_values(0)):
            continue
        sampled, ranked = stats.loc[metric], stats.loc[full_prefix + metric]
        methods = sorted(sampled.index.intersection(ranked.index))
        reversals = []
        for a, b in itertools.combinations(methods, 2):
            if (sampled.loc[a, "mean"] - sampled.loc[b, "mean"]) * (ranked.loc[a, "mean"] - ranked.loc[b, "mean"]) < 0:
                ahead = a if sampled.loc[a, "mean"] > sampled.loc[b, "mean"] else b
                other = b if ahead == a else a
                firm = _firm(sampled.loc[a], sampled.loc[b]) and _firm(ranked.loc[a], ranked.loc[b])
                reversals.append((ahead, other, firm))
        tau = kendalltau(sampled.loc[methods, "mean"], ranked.loc[methods, "mean"]).statistic
        rows.append(
            {"dataset": dataset, "metric": metric, "n_methods": len(methods), "kendall_tau": tau}
            | {"reversals": reversals}
        )
    return pd.DataFrame(rows, columns=["dataset", "metric", "n_methods", "kendall_tau", "reversals"])


def comparison_table(metrics: pd.DataFrame, profile: str, claims_path: str = "results/claims.csv") -> pd.DataFrame:
    """Claims that match one run's metrics, paper vs ours (for display inside a notebook)."""
    from .claims import load_claims

    claims = load_claims(claims_path)
    keys = set(zip(metrics["dataset"], metrics["method"], metrics["metric"], strict=True))
    claim_keys = zip(claims["dataset_key"], claims["method_key"], claims["metric_key"], strict=True)
    matched = claims[[k in keys for k in claim_keys]]
    cols = ["claim_id", "dataset", "method", "metric", "paper_value", "source", "ours", "abs_delta", "status"]
    out = diff(matched, metrics.assign(profile=profile))
    return out[cols] if len(out) else pd.DataFrame(columns=cols)


def render(df: pd.DataFrame, fmt: str) -> str:
    """The diff as text, markdown, csv or json."""
    cols = [
        "claim_id",
        "dataset",
        "method",
        "our_row",
        "metric",
        "paper_value",
        "ours",
        "abs_delta",
        "rel_delta",
        "status",
    ]
    if fmt == "csv":
        return df.to_csv(index=False)
    if fmt == "json":
        return df.to_json(orient="records", indent=2)
    view = df[cols].copy()
    view["abs_delta"] = view["abs_delta"].map(lambda x: "" if pd.isna(x) else f"{x:+.4f}")
    view["rel_delta"] = view["rel_delta"].map(lambda x: "" if pd.isna(x) else f"{100 * x:+.1f}%")
    if fmt == "markdown":
        return view.to_markdown(index=False)
    if fmt == "text":
        return view.to_string(index=False)
    raise ValueError(f"unknown format {fmt!r}; choose text, markdown, csv or json")
