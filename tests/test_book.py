"""The book's summary helpers (the full build is exercised in test_pipeline)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

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
    assert "seeds [0, 1]" in line and "abc1234567" in line and "stale" not in line and "in progress" not in line
    line = _provenance_line("nb", {"profile": "full", "provenance": prov, "stale": False, "in_progress": 21})
    assert "a full run is in progress (21 units finished, see [](budget.md))" in line


def test_provenance_line_reads_seeds_recorded_per_split() -> None:
    """LRML's runs record seeds under each split, not at the top level: the line must not say 'seeds ?'."""
    prov = {"commit": "abc1234567890", "splits": {"ml-1m/ncf-loo": {"seeds": [0, 1, 2]}, "note": "text"}}
    assert "seeds [0, 1, 2]," in _provenance_line("nb", {"profile": "full", "provenance": prov, "stale": False})
    prov["splits"]["other"] = {"seeds": [0]}
    line = _provenance_line("nb", {"profile": "full", "provenance": prov, "stale": False})
    assert "seeds {'ml-1m/ncf-loo': [0, 1, 2], 'other': [0]}," in line
    assert "seeds ?," in _provenance_line("nb", {"profile": "full", "provenance": {}, "stale": False})


def test_measurements_table_shows_mean_std_and_budget_per_row() -> None:
    from recrepro.book import _measurements

    metrics = pd.DataFrame(
        {
            "dataset": ["d"] * 5,
            "method": ["m", "m", "m", "base", "base"],
            "metric": ["rmse", "rmse", "epochs", "rmse", "other"],
            "seed": [0, 1, 0, -1, -1],
            "value": [1.0, 3.0, 7.0, 2.0, 9.0],
            "budget": ["reduced: 2 of 5 seeds", "reduced: 2 of 5 seeds", "reduced: 2 of 5 seeds", None, None],
        }
    )
    text = "\n".join(_measurements(metrics, "A table", ("rmse", "epochs")))
    assert "### A table" in text
    row_m = next(line for line in text.splitlines() if "| m " in line)
    assert "2.0000 ± 1.4142 (n=2)" in row_m and "7.0000" in row_m and "2 of 5 seeds" in row_m
    row_base = next(line for line in text.splitlines() if "| base " in line)
    assert "2.0000" in row_base and "full" in row_base and "9.0" not in row_base


def test_full_protocol_costs_multiply_measured_speed_by_the_full_budget(tmp_path) -> None:
    from recrepro.book import full_protocol_costs

    def write(stem: str, name: str, text: str) -> None:
        run = tmp_path / "results" / "runs" / stem / "full"
        run.mkdir(parents=True, exist_ok=True)
        (run / name).write_text(text)

    write(
        "monti2017_t4_ml100k",
        "cost.csv",
        "dataset,method,device,measured_seconds_per_iteration,full_iterations,full_seeds,full_hours_per_seed,"
        "full_hours_all_seeds\nml-100k/u1,srmgcnn,cpu,0.36,10000,5,1.0,5.0\nall,total,cpu,,,5,1.0,5.0\n",
    )
    write(
        "nnmf2015_movielens",
        "cost.csv",
        "dataset,method,fits,seconds_per_epoch,epochs_per_fit,fits_hitting_cap,wall_seconds,max_epochs\n"
        "ml-1m/random-90-10,nnmf,1,2.0,100,1,200,100\n",
    )
    write(
        "lrml2018_ml1m",
        "timing.csv",
        "dataset,method,seed,seconds_per_epoch\nml-1m/ncf-loo,lrml,0,3.6\nml-1m/ncf-loo,popularity,0,\n",
    )
    metrics = pd.DataFrame(
        {"notebook": ["monti2017_t4_ml100k"], "dataset": ["ml-100k/u1"], "method": ["srmgcnn"], "budget": [None]}
    )
    costs = full_protocol_costs(tmp_path, metrics).set_index("method")
    assert set(costs.index) == {"srmgcnn", "nnmf", "lrml"}  # the total row and untimed popularity are dropped
    assert costs.loc["srmgcnn", "CPU-hours"] == 5.0 and costs.loc["srmgcnn", "committed run"] == "full protocol"
    assert costs.loc["nnmf", "CPU-hours"] == 2.0 * 10_000 * 9 * 5 / 3600  # every grid point of every seed
    assert costs.loc["lrml", "CPU-hours"] == 3.6 * 500 * (4 + 4) / 3600  # 4 grid trials, then 4 more seeds
    assert costs.loc["lrml", "committed run"] == "not run"
    assert "code changed since" not in costs.loc["lrml", "measured in"]
    marked = full_protocol_costs(tmp_path, metrics, stale={"lrml2018_ml1m"}).set_index("method")["measured in"]
    assert marked["lrml"].endswith(", code changed since") and "code changed" not in marked["srmgcnn"]


def test_full_protocol_costs_take_the_fastest_committed_measurement(tmp_path) -> None:
    """A run measured beside other processes is slower than the CPU; the page takes the fastest committed speed."""
    import subprocess

    from recrepro.book import full_protocol_costs

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    header = "dataset,method,device,measured_seconds_per_iteration,full_iterations,full_seeds,full_hours_per_seed,"
    header += "full_hours_all_seeds\n"
    cost = tmp_path / "results" / "runs" / "monti2017_t4_ml100k" / "full" / "cost.csv"
    cost.parent.mkdir(parents=True)
    git("init", "-q")
    for speed in (0.36, 0.18):  # two commits, the second measured alone
        hours = f"{speed * 10000 / 3600},{speed * 50000 / 3600}"
        cost.write_text(header + f"ml-100k/u1,srmgcnn,cpu,{speed},10000,5,{hours}\n")
        git("add", ".")
        git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", f"speed {speed}")
    cost.write_text(header + "ml-100k/u1,srmgcnn,cpu,0.72,10000,5,2.0,10.0\n")  # uncommitted, on a busy machine
    metrics = pd.DataFrame({"notebook": [], "dataset": [], "method": [], "budget": []})
    row = full_protocol_costs(tmp_path, metrics).set_index("method").loc["srmgcnn"]
    assert row["CPU-hours"] == 0.18 * 50000 / 3600 and row["measured"].startswith("0.18 s/iteration")
    assert row["measured in"] != "working tree"


def test_across_notebooks_sets_every_notebooks_rmse_side_by_side() -> None:
    from recrepro.book import _across_notebooks

    def row(nb: str, ds: str, method: str, value: float, seed: int = 0, budget=None, profile: str = "full") -> dict:
        return {"notebook": nb, "profile": profile, "dataset": ds, "method": method, "metric": "rmse",
                "seed": seed, "value": value, "budget": budget}  # fmt: skip

    metrics = pd.DataFrame(
        [
            row("mine", "a", "global-mean", 1.5),
            row("shared", "a", "global-mean", 1.5),  # the same closed-form number: one row
            row("mine", "a", "model", 0.9, 0),
            row("mine", "a", "model", 0.8, 1),
            row("other", "b", "model", 0.7, budget="reduced: 1 of 5 seeds"),
            row("other", "a", "f-eae", 1.2, budget="reduced: capped"),
            row("late", "a", "f-eae", 1.1),  # measured differently on the same dataset: a row per notebook
            row("mine", "a", "smoke-only", 9.9, profile="smoke"),
            row("mine", "c", "model", 0.1),  # a dataset the paper does not name
        ]
    )
    lines = _across_notebooks(metrics, ("a", "b"), own=["mine"])
    table = next(block for block in lines if block.startswith("| ")).splitlines()[2:]  # past header and rule
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]] for line in table}
    assert list(cells)[:2] == ["global-mean", "model"]  # this chapter's notebooks first
    assert cells["global-mean"] == ["mine, shared", "1.5000", ""]
    assert cells["model"] == ["mine, other", "0.8500 ± 0.0707 (n=2)", "0.7000 †"]
    assert cells["f-eae (other)"][1] == "1.2000 †" and cells["f-eae (late)"][1] == "1.1000"
    assert "smoke-only" not in cells and _across_notebooks(metrics, ("z",), own=[]) == []


def _commit_all(repo: Path) -> None:
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=repo, check=True, capture_output=True)


def test_runs_in_progress_list_committed_checkpoint_folders_and_whether_they_resume(
    repo_root: Path, data_root: Path, tmp_path: Path
) -> None:
    """The budget page's in-progress table: committed folders only, their finished units, the fits stopped
    mid-way (not the finished or early-stopped ones), and whether the current code's resume key names them."""
    import torch

    from recrepro.book import runs_in_progress
    from recrepro.runner import checkpoint_folder, run_parameters

    for part in ("notebooks", "src", "pyproject.toml"):
        copy = shutil.copytree if (repo_root / part).is_dir() else shutil.copy
        copy(repo_root / part, tmp_path / part)
    stem = "monti2017_t5_real"
    current = checkpoint_folder(stem, run_parameters("full", "cpu", data_root, tmp_path, None), tmp_path, data_root)
    older = current.with_name("full-000000000000")
    for folder in (current, older):
        folder.mkdir(parents=True)
        (folder / "unit-seed0.json").write_text("{}")
    torch.save({"next_iteration": 6000, "stopped": False, "config": {"n_iterations": 10_000}}, current / "mid.pt")
    torch.save({"next_iteration": 10_000, "stopped": False, "config": {"n_iterations": 10_000}}, current / "done.pt")
    torch.save({"epoch": 15, "stopped_early": True, "config": {"epochs": 500}}, current / "early.pt")
    (current / "m-trials").mkdir()  # a grid search's trials: named by their folder too
    torch.save({"epoch": 40, "stopped_early": False, "config": {"epochs": 500}}, current / "m-trials" / "trial_001.pt")
    (tmp_path / "results" / "checkpoints" / "no_such_table" / "full-1").mkdir(parents=True)
    (tmp_path / "results" / "checkpoints" / "no_such_table" / "full-1" / "u.json").write_text("{}")
    _commit_all(tmp_path)
    (tmp_path / "results" / "checkpoints" / stem / "smoke-2").mkdir()  # not committed: not listed
    (tmp_path / "results" / "checkpoints" / stem / "smoke-2" / "u.json").write_text("{}")

    rows = runs_in_progress(tmp_path, data_root).set_index("checkpoint folder")
    assert sorted(rows.index) == sorted(f.relative_to(tmp_path).as_posix() for f in (current, older)) + [
        "results/checkpoints/no_such_table/full-1"
    ]
    row = rows.loc[current.relative_to(tmp_path).as_posix()]
    assert row["finished units"] == 1
    assert row["fits mid-way"] == "m-trials/trial_001: epoch 40 of 500; mid: iteration 6,000 of 10,000"
    assert row["current code resumes it"] == "yes"
    assert row["command"] == f"`recrepro run {stem} --profile full`"
    assert rows.loc[older.relative_to(tmp_path).as_posix(), "current code resumes it"].startswith("no: code")
    assert rows.loc["results/checkpoints/no_such_table/full-1", "current code resumes it"].startswith("no: no notebook")
    unknown = runs_in_progress(tmp_path, None).set_index("checkpoint folder")
    assert unknown.loc[current.relative_to(tmp_path).as_posix(), "current code resumes it"] == "unknown (no data root)"
