"""The claims registry: every number the five papers report, with how it is known.

``results/claims.csv`` starts from the research registry and adds the keys that join a claim to our
results (``dataset_key``, ``method_key``, ``metric_key``). Values are kept exactly as printed (strings); an
unknown value stays empty. ``source`` is the first word of the note: how the number is known.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .catalog import PAPERS

CLAIM_COLUMNS = [
    "claim_id",
    "paper",
    "table",
    "dataset",
    "split",
    "metric",
    "method",
    "is_paper_method",
    "value",
    "plusminus",
    "source_note",
    "kind",
    "dataset_key",
    "method_key",
    "metric_key",
    "lower_is_better",
]
KINDS = ("paper", "external", "code-output")
SOURCES = (
    "VERIFIED-PWC",
    "VERIFIED-3P",
    "VERIFIED-COMPUTED",
    "VERIFIED",
    "CODE-OUTPUT",
    "UNVERIFIED-RECALLED",
    "NOT-RECOVERED",
)


class ClaimsError(ValueError):
    pass


def source_of(note: str) -> str:
    """How a number is known, from the start of its note (e.g. ``VERIFIED-PWC``)."""
    head = note.strip().split(" ")[0].split(":")[0].split("/")[0].rstrip(",;")
    for s in SOURCES:
        if head.startswith(s):
            return s
    return "UNSPECIFIED"


def parse_value(text: str) -> float | None:
    """The numeric value of a printed number, or None when empty or not a single number."""
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def validate(df: pd.DataFrame) -> None:
    """Raise ClaimsError on any schema problem (missing columns, duplicate ids, unknown papers or kinds)."""
    missing = [c for c in CLAIM_COLUMNS if c not in df.columns]
    if missing:
        raise ClaimsError(f"claims registry lacks columns {missing}")
    dup = df.loc[df["claim_id"].duplicated(), "claim_id"].tolist()
    if dup:
        raise ClaimsError(f"duplicate claim_id values: {dup}")
    bad_paper = sorted({p for p in df["paper"] if p not in PAPERS and not p.startswith("ext:")})
    if bad_paper:
        raise ClaimsError(f"unknown paper keys {bad_paper}; use one of {sorted(PAPERS)} or ext:<source>")
    bad_kind = sorted(set(df["kind"]) - set(KINDS))
    if bad_kind:
        raise ClaimsError(f"unknown kind values {bad_kind}; use one of {KINDS}")
    bad_flag = sorted(set(df["is_paper_method"]) - {"true", "false"})
    if bad_flag:
        raise ClaimsError(f"is_paper_method must be true/false, found {bad_flag}")
    numeric_without_metric = df[df["value"].map(parse_value).notna() & (df["metric_key"] == "")]
    if len(numeric_without_metric):
        raise ClaimsError(f"claims with a value but no metric_key: {numeric_without_metric['claim_id'].tolist()}")


def load_claims(path: str | Path) -> pd.DataFrame:
    """The registry as strings, validated, with ``value_num`` (float or NaN) and ``source`` added."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    validate(df)
    return df.assign(value_num=df["value"].map(parse_value).astype(float), source=df["source_note"].map(source_of))
