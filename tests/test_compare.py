"""Paper vs ours: every status of the tolerance rule, on small hand-made claims and metrics frames."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pandas as pd
import pytest

from recrepro.catalog import UNAVAILABLE_DATA
from recrepro.claims import CLAIM_COLUMNS, load_claims
from recrepro.compare import (
    NOT_IMPLEMENTED,
    beaten_paper_methods,
    diff,
    printed_half_unit,
    protocol_reversals,
    render,
    selection_optimism,
    summarise,
    swapped_settings,
    tolerance,
)

# claim_id, dataset_key, method_key, metric_key, printed value, lower_is_better
CLAIMS = [
    ("c-rep", "d1", "m-rep", "rmse", "0.929", "true"),
    ("c-lo-better", "d1", "m-lo-better", "rmse", "0.929", "true"),
    ("c-lo-worse", "d1", "m-lo-worse", "rmse", "0.929", "true"),
    ("c-hi-better", "d1", "m-hi-better", "hr@10", "0.700", "false"),
    ("c-hi-worse", "d1", "m-hi-worse", "hr@10", "0.700", "false"),
    ("c-smoke", "d2", "m-smoke", "rmse", "0.929", "true"),
    ("c-budget", "d1", "m-budget", "rmse", "0.929", "true"),
    ("c-none", "d1", "m-none", "rmse", "0.929", "true"),
    ("c-unavailable", "ml-20m/loo", "lrml", "hr@10", "0.80", "false"),
    ("c-nopaper", "d1", "m-nopaper", "rmse", "", "true"),
    ("c-std", "d1", "m-std", "rmse", "0.90", "true"),
]
EXPECTED = {
    "c-rep": "reproduced",
    "c-lo-better": "not reproduced (ours better)",
    "c-lo-worse": "not reproduced (ours worse)",
    "c-hi-better": "not reproduced (ours better)",
    "c-hi-worse": "not reproduced (ours worse)",
    "c-smoke": "reduced budget: smoke profile only",
    "c-budget": "reduced budget: 20 of 200 epochs",
    "c-none": NOT_IMPLEMENTED,
    "c-unavailable": f"not run: {UNAVAILABLE_DATA['ml-20m/loo']}",
    "c-nopaper": "no paper value (not recovered)",
    "c-std": "reproduced",
}


def write_claims(path: Path, claims: list[tuple[str, ...]], labels: dict[str, str] | None = None) -> pd.DataFrame:
    """A registry of ``CLAIMS``-shaped rows; ``labels`` maps a claim to the paper's method name (default: its row)."""
    rows = []
    for cid, ds, method, metric, value, lower in claims:
        row = {c: "" for c in CLAIM_COLUMNS}
        row.update(
            claim_id=cid,
            paper="monti2017",
            table="T1",
            dataset=ds,
            metric=metric,
            method=(labels or {}).get(cid, method),
            is_paper_method="false",
            value=value,
            source_note="VERIFIED-PWC (test)",
            kind="paper",
            dataset_key=ds,
            method_key=method,
            metric_key=metric,
            lower_is_better=lower,
        )
        rows.append(row)
    pd.DataFrame(rows).to_csv(path, index=False)
    return load_claims(path)


@pytest.fixture
def claims(tmp_path: Path) -> pd.DataFrame:
    return write_claims(tmp_path / "claims.csv", CLAIMS)


def metrics_frame() -> pd.DataFrame:
    def row(ds: str, method: str, metric: str, value: float, seed: int = 0, profile: str = "full", budget: str = ""):
        return dict(dataset=ds, method=method, metric=metric, seed=seed, value=value, profile=profile, budget=budget)

    return pd.DataFrame(
        [
            row("d1", "m-rep", "rmse", 0.935),  # |Δ| = 0.006 <= 1% of 0.929 = 0.00929
            row("d1", "m-lo-better", "rmse", 0.90),  # Δ = -0.029, lower is better
            row("d1", "m-lo-worse", "rmse", 0.96),
            row("d1", "m-hi-better", "hr@10", 0.75),  # Δ = +0.05, higher is better
            row("d1", "m-hi-worse", "hr@10", 0.65),
            row("d2", "m-smoke", "rmse", 0.929, profile="smoke"),  # equal value, but only a smoke run
            row("d1", "m-budget", "rmse", 0.929, budget="reduced: 20 of 200 epochs"),
            row("d1", "m-nopaper", "rmse", 1.0),
            # mean 0.93, std 0.02 over three seeds: |Δ| = 0.03 > 1% (0.009) but <= 2 std (0.04)
            row("d1", "m-std", "rmse", 0.91, seed=0),
            row("d1", "m-std", "rmse", 0.93, seed=1),
            row("d1", "m-std", "rmse", 0.95, seed=2),
        ]
    )


def test_statuses(claims: pd.DataFrame) -> None:
    out = diff(claims, metrics_frame()).set_index("claim_id")
    assert out["status"].to_dict() == EXPECTED
    assert out.loc["c-std", "n_seeds"] == 3
    assert out.loc["c-std", "ours_mean"] == pytest.approx(0.93)
    assert out.loc["c-std", "tolerance"] == pytest.approx(0.04)
    assert out.loc["c-lo-better", "abs_delta"] == pytest.approx(-0.029)
    assert out.loc["c-lo-better", "rel_delta"] == pytest.approx(-0.029 / 0.929)
    assert pd.isna(out.loc["c-none", "ours_mean"]) and out.loc["c-none", "n_seeds"] == 0
    assert pd.isna(out.loc["c-nopaper", "abs_delta"])


def test_diff_filters_by_paper(claims: pd.DataFrame) -> None:
    assert len(diff(claims, metrics_frame(), paper="monti2017")) == len(claims)
    with pytest.raises(KeyError, match="unknown paper"):
        diff(claims, metrics_frame(), paper="nobody2020")


def test_no_metrics_at_all(claims: pd.DataFrame) -> None:
    out = diff(claims, pd.DataFrame(columns=["dataset", "method", "metric", "seed", "value"]))
    assert out["status"].str.startswith("not run: ").all()


def test_two_paper_values_that_fit_our_two_settings_swapped_are_found(tmp_path: Path) -> None:
    """Flixster's shape: the value the registry gives "both graphs" fits our users-graph row and vice versa."""
    claims = write_claims(
        tmp_path / "claims.csv",
        [
            ("s-both", "fx", "s", "rmse", "1.1788", "true"),
            ("s-users", "fx", "s-users", "rmse", "0.9258", "true"),
            ("g-both", "fx", "g", "rmse", "1.3126", "true"),  # ours far from both values: no swap
            ("g-users", "fx", "g-users", "rmse", "1.2447", "true"),
            ("c-both", "fx", "c", "rmse", "1.1788", "true"),  # would fit swapped, but one row is a capped run
            ("c-users", "fx", "c-users", "rmse", "0.9258", "true"),
        ],
        labels={"s-users": "s", "g-users": "g", "c-users": "c"},
    )
    rows = [("s", 0.9116), ("s-users", 1.195), ("g", 0.8954), ("g-users", 0.9974), ("c", 0.9116), ("c-users", 1.195)]
    metrics = pd.DataFrame(
        [{"dataset": "fx", "method": m, "metric": "rmse", "seed": 0, "value": v, "profile": "full"} for m, v in rows]
    ).assign(budget=lambda f: f["method"].map({"c-users": "reduced: 500 of 10,000 iterations"}).fillna(""))
    found = swapped_settings(diff(claims, metrics))
    assert found[["method", "claim_a", "claim_b"]].values.tolist() == [["s", "s-both", "s-users"]]
    (row,) = found.itertuples()
    assert row.error_as_assigned == pytest.approx(abs(0.9116 - 1.1788) + abs(1.195 - 0.9258))
    assert row.error_swapped == pytest.approx(abs(0.9116 - 0.9258) + abs(1.195 - 1.1788))
    assert swapped_settings(diff(claims, metrics), factor=100.0).empty  # 0.536 / 0.030 is ~18x, not 100x
    from recrepro.book import _findings

    lines = [line for line in _findings(claims, metrics, diff(claims, metrics)) if "swapped" in line]
    assert len(lines) == 1 and "`s-both`" in lines[0] and "`s-users`" in lines[0]


def test_findings_list_every_simple_baseline_that_beats_a_published_number(tmp_path: Path) -> None:
    """YahooMusic's shape: biased MF and three mean predictors (the global mean too) under the paper's 22.4149;
    the item mean above it is not listed, nor a smoke-profile run."""
    from recrepro.book import _findings

    claims = write_claims(tmp_path / "claims.csv", [("s", "ym", "srmgcnn", "rmse", "22.4149", "true")])
    claims = claims.assign(is_paper_method="true")
    rows = [("biased-mf", 19.57, "full"), ("user-item-mean", 19.66, "full"), ("user-mean", 19.99, "full")]
    rows += [("global-mean", 22.32, "full"), ("item-mean", 23.75, "full"), ("user-mean", 1.0, "smoke")]
    metrics = pd.DataFrame(
        [{"dataset": "ym", "method": m, "metric": "rmse", "seed": 0, "value": v, "profile": p} for m, v, p in rows]
    ).assign(budget="", notebook="nb")
    (line,) = [x for x in _findings(claims, metrics, diff(claims, metrics)) if "claim `s`" in x]
    listed = ["`biased-mf` 19.57", "`user-item-mean` 19.66", "`user-mean` 19.99", "`global-mean` 22.32"]
    assert line.index(listed[0]) < line.index(listed[1]) < line.index(listed[2]) < line.index(listed[3])
    assert "item-mean` 23.75" not in line and "1.0000" not in line
    assert "(mean predictors, fitted in closed form: 3 of 4)" in line


def ranking_metrics(means: dict[str, dict[str, list[float]]]) -> pd.DataFrame:
    """Full-profile ranking results of one notebook: ``{metric: {method: [value per seed]}}``."""
    rows = [
        {"dataset": "ml", "method": m, "metric": k, "seed": i, "value": v, "profile": "full", "notebook": "nb"}
        for k, per_method in means.items()
        for m, values in per_method.items()
        for i, v in enumerate(values)
    ]
    return pd.DataFrame(rows).assign(budget="")


def test_paper_method_beaten_by_its_baselines_lists_each_best_first_with_firmness(tmp_path: Path) -> None:
    """LRML's shape: higher HR@10 is better; iALS beats it firmly, BPR-MF within noise, popularity not at all."""
    claims = write_claims(tmp_path / "claims.csv", [("l", "ml", "lrml", "hr@10", "0.7397", "false")])
    claims = claims.assign(is_paper_method="true")
    metrics = ranking_metrics(
        {"hr@10": {"lrml": [0.63, 0.64], "ials": [0.71, 0.72], "bpr-mf": [0.64, 0.65], "popularity": [0.45]}}
    )
    beaten = beaten_paper_methods(diff(claims, metrics), metrics, claims)
    assert beaten["method"].tolist() == ["ials", "bpr-mf"]
    assert beaten["firm"].tolist() == [True, False]  # 0.08 > 2 x 0.0071; 0.01 is within it
    assert beaten_paper_methods(diff(claims, metrics), metrics, claims.assign(is_paper_method="false")).empty
    # lower is better (RMSE): the same numbers now mean lrml beats everything except popularity
    claims = write_claims(tmp_path / "claims.csv", [("l", "ml", "lrml", "hr@10", "0.7397", "true")])
    beaten = beaten_paper_methods(diff(claims, metrics), metrics, claims.assign(is_paper_method="true"))
    assert beaten["method"].tolist() == ["popularity"]


def test_protocol_reversals_find_the_pairs_that_swap_and_kendall_tau(tmp_path: Path) -> None:
    """Three methods; b and c swap between sampled and full ranking, a stays first; d has no full ranking."""
    metrics = ranking_metrics(
        {
            "hr@10": {"a": [0.9, 0.9], "b": [0.7, 0.7], "c": [0.6, 0.6], "d": [0.5]},
            "full/hr@10": {"a": [0.30, 0.30], "b": [0.10, 0.12], "c": [0.11, 0.13]},
        }
    )
    (row,) = protocol_reversals(metrics, "hr@10").itertuples()
    assert row.n_methods == 3 and row.reversals == [("b", "c", False)]  # full gap 0.01 < 2 x std 0.0141
    assert row.kendall_tau == pytest.approx(1 / 3)  # 2 of 3 pairs concordant, 1 discordant
    same = ranking_metrics({"hr@10": {"a": [0.9], "b": [0.7]}, "full/hr@10": {"a": [0.3], "b": [0.1]}})
    (row,) = protocol_reversals(same, "hr@10").itertuples()
    assert row.reversals == [] and row.kendall_tau == pytest.approx(1.0)
    assert protocol_reversals(ranking_metrics({"hr@10": {"a": [0.9]}}), "hr@10").empty
    from recrepro.book import _ranking_findings

    claims = write_claims(tmp_path / "claims.csv", [("x", "other", "m", "rmse", "1.0", "true")])  # no ranking claim
    lines = _ranking_findings(claims, metrics, diff(claims, metrics))
    assert lines == [
        "- **ml**, hr@10: the sampled protocol (the target among sampled negatives) and full ranking (among every "
        "unseen item, `full/hr@10`) order our 3 methods with Kendall's tau 0.333. Pairs that swap: `b` ahead of `c` "
        "sampled, behind under full ranking (the gap is within noise under at least one protocol). Every other pair "
        "keeps its order."
    ]


def test_printed_half_unit() -> None:
    assert printed_half_unit("0.91") == 0.005
    assert printed_half_unit("22.4149") == pytest.approx(0.00005)
    assert printed_half_unit("20") == 0.5
    assert printed_half_unit(" 0.929 ") == pytest.approx(0.0005)


def test_tolerance_is_the_max_of_three_terms() -> None:
    assert tolerance("0.91", 0.91, 0.0) == pytest.approx(0.0091)  # 1% beats half a unit (0.005)
    assert tolerance("0.9", 0.9, 0.0) == pytest.approx(0.05)  # half a unit beats 1% (0.009)
    assert tolerance("20", 20.0, 0.0) == pytest.approx(0.5)
    assert tolerance("0.929", 0.929, 0.01) == pytest.approx(0.02)  # 2 std
    assert tolerance("0.929", 0.929, float("nan")) == pytest.approx(0.00929)  # one seed: no std term
    assert tolerance("-0.50", -0.5, 0.0) == pytest.approx(0.005)  # |paper| for negative values


def test_summarise_formats_mean_and_std() -> None:
    s = summarise(metrics_frame()).set_index("method")
    assert s.loc["m-std", "ours"] == "0.9300 ± 0.0200 (n=3)"
    assert s.loc["m-rep", "ours"] == "0.9350"
    assert s.loc["m-rep", "std"] == 0.0


@pytest.mark.parametrize("fmt", ["text", "markdown", "csv", "json"])
def test_render_formats(claims: pd.DataFrame, fmt: str) -> None:
    out = render(diff(claims, metrics_frame()), fmt)
    assert "c-lo-better" in out and "not reproduced (ours better)" in out
    assert "our_row" in out  # the result row each claim was matched to
    if fmt == "json":
        records = json.loads(out)
        assert len(records) == len(claims) and {r["claim_id"] for r in records} == {c[0] for c in CLAIMS}
    if fmt == "markdown":
        assert out.splitlines()[1].startswith("|")
        assert "-3.1%" in out  # relative delta of c-lo-better (-0.029 / 0.929), as a percentage
    if fmt == "csv":
        assert pd.read_csv(io.StringIO(out))["claim_id"].tolist() == [c[0] for c in CLAIMS]


def test_render_rejects_unknown_format(claims: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="unknown format 'html'"):
        render(diff(claims, metrics_frame()), "html")


def test_selection_optimism_is_test_at_best_validation_against_the_best_test() -> None:
    curves = pd.DataFrame(
        {
            "dataset": ["d"] * 6,
            "method": ["m"] * 6,
            "seed": [0, 0, 0, 1, 1, 1],
            "epoch": [10, 20, 30, 10, 20, 30],
            "valid_rmse": [1.0, 0.8, 0.9, 1.0, 0.95, 0.7],
            "test_rmse": [1.1, 0.9, 0.85, 1.2, 1.0, 0.9],
        }
    )
    row = selection_optimism(curves).iloc[0]
    # seed 0: best validation at epoch 20 -> test 0.9, best test 0.85; seed 1: epoch 30 -> 0.9, best test 0.9
    assert row["seeds"] == 2
    assert row["test_at_best_valid"] == pytest.approx(0.9)
    assert row["best_test"] == pytest.approx(0.875)
    assert row["optimism"] == pytest.approx(0.025)
    no_valid = curves.assign(valid_rmse=float("nan"))  # Monti's paper protocol logs no validation RMSE
    assert selection_optimism(no_valid).empty and selection_optimism(curves.drop(columns="valid_rmse")).empty
