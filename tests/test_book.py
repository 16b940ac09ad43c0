"""The book's summary helpers (the full build is exercised in test_pipeline)."""

from __future__ import annotations

import pandas as pd

from recrepro.book import STATUS_GROUPS, _provenance_line, _status_counts


def test_status_counts_group_statuses_by_kind_not_by_reason() -> None:
    d = pd.DataFrame(
        {
            "paper": ["a", "a", "a", "b", "b"],
            "status": [
                "reduced budget: 500 of 10,000 iterations; 1 of 5 seeds (capped CPU run)",
                "reduced budget: smoke profile only",
                "not reproduced (ours better)",
                "not run: data unavailable here",
                "reproduced",
            ],
        }
    )
    counts = _status_counts(d).set_index("paper")
    assert list(counts.columns) == list(STATUS_GROUPS)
    assert counts.loc["a"].to_dict() == {
        "reproduced": 0,
        "not reproduced": 1,
        "reduced budget": 2,
        "not run": 0,
        "no paper value": 0,
    }
    assert counts.loc["b", "reproduced"] == 1 and counts.loc["b", "not run"] == 1


def test_provenance_line_reads_seeds_from_parameters_when_not_recorded_apart() -> None:
    prov = {"commit": "abc1234567890", "device": "cpu", "parameters": {"seeds": [0, 1]}, "wall_seconds": 3.0}
    line = _provenance_line("nb", {"profile": "full", "provenance": prov, "stale": False})
    assert "seeds [0, 1]" in line and "abc1234567" in line and "stale" not in line
