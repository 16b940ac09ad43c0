"""The claims registry: schema, values kept verbatim from the research registry, and the validator's refusals."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from recrepro.claims import CLAIM_COLUMNS, SOURCES, ClaimsError, load_claims, parse_value, source_of, validate

REPO = Path(__file__).resolve().parents[1]
CLAIMS = REPO / "results" / "claims.csv"
RESEARCH = REPO.parent / "shared" / "research" / "claims.csv"


def read_raw(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def test_registry_passes_validation() -> None:
    df = load_claims(CLAIMS)
    assert list(df.columns[: len(CLAIM_COLUMNS)]) == CLAIM_COLUMNS
    assert len(df) > 0 and df["claim_id"].is_unique
    assert set(df["source"]) <= set(SOURCES)  # every note says how the number is known
    assert set(df["lower_is_better"]) <= {"true", "false", ""}
    # a numeric value parses; an unknown one stays empty (never a made-up number)
    assert df.loc[df["value"] != "", "value_num"].notna().sum() >= 1
    assert df.loc[df["value"] == "", "value_num"].isna().all()
    assert df.loc[df["source"] == "NOT-RECOVERED", "value"].map(parse_value).isna().any()


def test_values_are_the_research_registry_verbatim() -> None:
    if not RESEARCH.is_file():
        pytest.skip(f"research registry {RESEARCH} not present on this machine")
    ours, research = read_raw(CLAIMS), read_raw(RESEARCH)
    assert len(ours) == len(research)
    cols = ["paper", "table", "dataset", "method", "metric", "value", "plusminus"]
    rows = zip(ours[cols].itertuples(index=False), research[cols].itertuples(index=False), strict=True)
    for i, (a, b) in enumerate(rows):
        assert tuple(a) == tuple(b), f"row {i} differs from the research registry"


def _good() -> pd.DataFrame:
    row = {c: "" for c in CLAIM_COLUMNS}
    row.update(
        claim_id="x-01",
        paper="monti2017",
        metric="RMSE",
        method="sRMGCNN",
        is_paper_method="true",
        value="0.929",
        kind="paper",
        dataset_key="ml-100k/u1",
        method_key="srmgcnn",
        metric_key="rmse",
        lower_is_better="true",
    )
    second = {**row, "claim_id": "x-02", "paper": "ext:someone", "kind": "external", "value": ""}
    return pd.DataFrame([row, second])


def test_validate_accepts_a_good_frame() -> None:
    validate(_good())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"claim_id": "x-01"}, "duplicate claim_id"),
        ({"paper": "monti2071"}, "unknown paper keys"),
        ({"kind": "rumour"}, "unknown kind"),
        ({"is_paper_method": "yes"}, "is_paper_method"),
        ({"value": "1.5", "metric_key": ""}, "no metric_key"),
    ],
)
def test_validate_rejects(change: dict[str, str], message: str) -> None:
    df = _good()
    for col, val in change.items():
        df.loc[1, col] = val
    with pytest.raises(ClaimsError, match=message):
        validate(df)


def test_validate_rejects_missing_columns() -> None:
    with pytest.raises(ClaimsError, match="lacks columns"):
        validate(_good().drop(columns=["kind"]))


@pytest.mark.parametrize(
    ("note", "source"),
    [
        ("VERIFIED-PWC (Douban Monti sRGCNN 0.8012)", "VERIFIED-PWC"),
        ("VERIFIED-PWC", "VERIFIED-PWC"),
        ("UNVERIFIED-RECALLED: no stored copy of the paper's table", "UNVERIFIED-RECALLED"),
        ("UNVERIFIED-RECALLED from the IGMC paper", "UNVERIFIED-RECALLED"),
        ("NOT-RECOVERED: not listed on PWC", "NOT-RECOVERED"),
        ("NOT-RECOVERED/CONFLICT: two sources disagree", "NOT-RECOVERED"),
        ("CODE-OUTPUT official notebook", "CODE-OUTPUT"),
        ("VERIFIED: issue text", "VERIFIED"),
        ("VERIFIED-3P: a third-party report", "VERIFIED-3P"),
        ("VERIFIED-COMPUTED: recomputed here 1.0630", "VERIFIED-COMPUTED"),
        ("  VERIFIED-PWC, padded", "VERIFIED-PWC"),
        ("recalled, probably", "UNSPECIFIED"),
    ],
)
def test_source_of(note: str, source: str) -> None:
    assert source_of(note) == source


def test_parse_value() -> None:
    assert parse_value("0.929") == pytest.approx(0.929)
    assert parse_value("20") == 20.0
    assert parse_value("") is None
    assert parse_value("0.9 / 0.8") is None
