"""End to end: every notebook runs under the smoke profile through papermill, then the book builds with
warnings as errors, and the CLI diffs the results against the papers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recrepro.book import build_book
from recrepro.catalog import NOTEBOOKS
from recrepro.cli import main
from recrepro.experiments import lrml2018
from recrepro.results import load_run
from recrepro.runner import RunFailed, resume_key, run_notebook

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke_runs(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    out = {}
    for stem in NOTEBOOKS:
        run_notebook(stem, "smoke", device="cpu", data_root=data_root, force=True, log=lambda _: None)
        loaded = load_run(ROOT / "results", stem, "smoke")
        assert loaded is not None, f"{stem}: no published smoke run"
        out[stem] = loaded[1]
    return out


def test_every_notebook_runs_under_smoke(smoke_runs: dict[str, dict]) -> None:
    for stem, prov in smoke_runs.items():
        assert prov["profile"] == "smoke"
        assert prov["input_hash"] and prov["commit"]
        assert prov["parameters"]["device"] == "cpu"
        metrics = load_run(ROOT / "results", stem, "smoke")[0]
        assert len(metrics) > 0 and metrics["value"].notna().all()
        executed = json.loads((ROOT / "results" / "runs" / stem / "smoke" / f"{stem}.ipynb").read_text())
        tags = [c.get("metadata", {}).get("tags", []) for c in executed["cells"]]
        assert ["parameters"] in tags, f"{stem}: first code cell must be tagged 'parameters'"


def test_unchanged_inputs_are_not_rerun(smoke_runs: dict[str, dict], data_root: Path) -> None:
    stem = next(iter(smoke_runs))
    outcome = run_notebook(stem, "smoke", device="cpu", data_root=data_root, log=lambda _: None)
    assert outcome.status.startswith("skipped")


def test_book_builds_with_warnings_as_errors(smoke_runs: dict[str, dict], data_root: Path) -> None:
    assert build_book(data_root=str(data_root), run_missing=False) == 0
    html = ROOT / "book" / "_build" / "html"
    intro = (html / "generated" / "intro.html").read_text()
    assert "recrepro v" in intro
    for page in ("discrepancies", "data", "versions"):
        assert (html / "generated" / f"{page}.html").exists()


def test_cli_diff_formats(smoke_runs: dict[str, dict], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", "--format", "json", "--paper", "monti2017"]) == 0
    rows = json.loads(capsys.readouterr().out)
    statuses = {r["claim_id"]: r["status"] for r in rows}
    assert statuses["monti2017-08"] in ("reproduced", "reduced budget: smoke profile only")
    assert main(["diff", "--paper", "nope"]) == 2


def test_failed_run_keeps_published_results(smoke_runs: dict[str, dict], data_root: Path, tmp_path: Path) -> None:
    stem = next(iter(smoke_runs))
    before = (ROOT / "results" / "runs" / stem / "smoke" / "metrics.csv").read_text()
    with pytest.raises(RunFailed, match="Results already published were kept"):
        run_notebook(
            stem,
            "smoke",
            device="cpu",
            data_root=data_root,
            force=True,
            log=lambda _: None,
            extra_parameters={"seeds": "not-a-list"},
        )
    assert (ROOT / "results" / "runs" / stem / "smoke" / "metrics.csv").read_text() == before


def test_units_only_worker_checkpoints_units_and_publishes_nothing(
    smoke_runs: dict[str, dict], data_root: Path
) -> None:
    """A second worker (other seeds, same other parameters) fills the shared checkpoint folder only."""
    stem = "hartford2018_t3_disjoint"
    published = ROOT / "results" / "runs" / stem / "smoke"
    before = {f.name: f.read_bytes() for f in published.iterdir()}
    out = run_notebook(
        stem, "smoke", device="cpu", data_root=data_root, units_only=True, log=lambda _: None,
        extra_parameters={"seeds": [7]},
    )  # fmt: skip
    assert out.status == "units only" and out.path.parent.name == stem
    assert any(f.name.endswith("seed7.json") for f in out.path.iterdir())  # the new seed's finished unit
    assert {f.name: f.read_bytes() for f in published.iterdir()} == before  # nothing published or replaced
    with pytest.raises(ValueError, match="units-only"):
        run_notebook(stem, "smoke", data_root=data_root, units_only=True, force=True, log=lambda _: None)


def test_a_worker_can_take_a_share_of_the_methods(smoke_runs: dict[str, dict], data_root: Path) -> None:
    """``methods`` picks a units-only worker's share: same checkpoint folder as the full run, never published."""
    stem = "lrml2018_ml1m"
    params = smoke_runs[stem]["parameters"]
    shared = ROOT / "results" / "checkpoints" / stem / f"smoke-{resume_key(stem, params, ROOT, data_root)}"
    out = run_notebook(
        stem, "smoke", device="cpu", data_root=data_root, units_only=True, log=lambda _: None,
        extra_parameters={"methods": ["lrml", "popularity"]},
    )  # fmt: skip
    assert out.path == shared and any(f.name.startswith("ml-1m_ncf-loo-lrml-") for f in shared.iterdir())
    with pytest.raises(ValueError, match="units-only"):
        run_notebook(stem, "smoke", data_root=data_root, extra_parameters={"methods": ["lrml"]}, log=lambda _: None)
    with pytest.raises(ValueError, match="methods must name"):
        lrml2018.run_split(
            None, split="ml-1m/ncf-loo", dataset_key="x", profile="smoke", device="cpu", data_root=None,
            methods=["lrml", "no-such-method"],
        )  # fmt: skip


def test_unknown_notebook_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "no_such_table"]) == 2
    assert "valid notebooks" in capsys.readouterr().err
