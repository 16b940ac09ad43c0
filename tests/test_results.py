"""Run outputs: the recorder, checkpointed units, atomic writes and publishing, and the runner's input hash."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from recrepro.results import RunRecorder, atomic_write_json, atomic_write_text, load_run, publish_run, run_dir
from recrepro.runner import (
    _recrepro_imports,
    checkpoint_folder,
    code_hash,
    input_hash,
    notebook_code,
    notebook_hash,
    resume_key,
    source_snapshot,
    static_imports,
)

MODULES = ["recrepro.models.baselines", "recrepro.metrics", "recrepro.data.types", "recrepro.training"]


def test_finish_writes_metrics_and_info(tmp_path: Path) -> None:
    rec = RunRecorder("baselines_rating", "smoke", tmp_path / "out")
    rec.add("ml-100k/u1", "global-mean", "rmse", 1.1537)
    rec.add("ml-100k/u1", "biased-mf", "rmse", 0.93, seed=3, budget="reduced: 5 epochs")
    df = rec.finish(code_modules=MODULES)
    written = pd.read_csv(tmp_path / "out" / "metrics.csv", keep_default_na=False)
    assert written[["dataset", "method", "metric", "seed"]].values.tolist() == [
        ["ml-100k/u1", "global-mean", "rmse", -1],
        ["ml-100k/u1", "biased-mf", "rmse", 3],
    ]
    assert written["value"].tolist() == [1.1537, 0.93]
    assert written["budget"].tolist() == ["", "reduced: 5 epochs"]
    assert len(df) == 2
    info = json.loads((tmp_path / "out" / "notebook_info.json").read_text())
    assert info["notebook"] == "baselines_rating" and info["profile"] == "smoke"
    assert info["code_modules"] == MODULES and "torch" in info["versions"]


def test_finish_refuses_an_empty_run(tmp_path: Path) -> None:
    rec = RunRecorder("baselines_rating", "full", tmp_path)
    with pytest.raises(RuntimeError, match="recorded no metrics"):
        rec.finish()
    assert not (tmp_path / "metrics.csv").exists() and not (tmp_path / "notebook_info.json").exists()


def test_unknown_profile(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown profile"):
        RunRecorder("baselines_rating", "medium", tmp_path)


def test_cached_survives_an_interruption(tmp_path: Path) -> None:
    calls: list[str] = []

    def compute() -> dict[str, float]:
        calls.append("ran")
        return {"rmse": 0.9123, "epochs": 7}

    first = RunRecorder("nb", "full", tmp_path / "staging-1", checkpoint_dir=tmp_path / "ckpt")
    assert first.cached("fold-1", compute) == {"rmse": 0.9123, "epochs": 7}
    assert first.cached("fold-1", compute) == {"rmse": 0.9123, "epochs": 7}
    assert calls == ["ran"]
    # the process dies here (no finish); a new run with the same checkpoint folder reuses the unit
    second = RunRecorder("nb", "full", tmp_path / "staging-2", checkpoint_dir=tmp_path / "ckpt")

    def must_not_run() -> dict[str, float]:
        raise AssertionError("a finished unit was recomputed")

    assert second.cached("fold-1", must_not_run) == {"rmse": 0.9123, "epochs": 7}
    assert second.cached("fold-2", lambda: {"rmse": 1.0}) == {"rmse": 1.0}  # other units still computed
    assert second.checkpoint_path("fold-1") == tmp_path / "ckpt" / "fold-1.pt"
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["fold-1.json", "fold-2.json"]


def test_cached_without_checkpoint_dir_always_computes(tmp_path: Path) -> None:
    rec = RunRecorder("nb", "smoke", tmp_path)
    calls: list[int] = []
    for _ in range(2):
        rec.cached("unit", lambda: calls.append(1) or {"x": 1})
    assert len(calls) == 2 and rec.checkpoint_path("unit") is None


def _write_run(folder: Path, value: float) -> None:
    folder.mkdir(parents=True)
    (folder / "metrics.csv").write_text(f"dataset,method,metric,seed,value\nd,m,rmse,0,{value}\n")
    atomic_write_json(folder / "provenance.json", {"input_hash": f"h{value}"})


def test_publish_run_replaces_the_old_run(tmp_path: Path) -> None:
    final = run_dir(tmp_path, "nb", "full")
    _write_run(final, 1.0)
    staging = final.with_name(".full.staging-1")
    _write_run(staging, 2.0)
    publish_run(staging, final)
    metrics, prov = load_run(tmp_path, "nb", "full")
    assert metrics["value"].tolist() == [2.0] and prov["input_hash"] == "h2.0"
    assert sorted(p.name for p in final.parent.iterdir()) == ["full"]  # no staging, no backup left


def test_failed_run_leaves_the_published_one_intact(tmp_path: Path) -> None:
    """The runner's failure path: the staging folder is written, the run fails, staging is dropped unpublished."""
    final = run_dir(tmp_path, "nb", "full")
    _write_run(final, 1.0)
    staging = final.with_name(".full.staging-1")
    staging.mkdir()
    (staging / "metrics.csv").write_text("dataset,method,metric,seed,value\nd,m,rmse,0,")  # half written
    shutil.rmtree(staging)  # what run_notebook does when the notebook raises
    metrics, prov = load_run(tmp_path, "nb", "full")
    assert metrics["value"].tolist() == [1.0] and prov["input_hash"] == "h1.0"


def test_publish_of_a_missing_staging_keeps_the_old_run(tmp_path: Path) -> None:
    final = run_dir(tmp_path, "nb", "full")
    _write_run(final, 1.0)
    with pytest.raises(FileNotFoundError):
        publish_run(final.with_name(".full.staging-404"), final)
    assert load_run(tmp_path, "nb", "full") is not None


def test_atomic_write_text_leaves_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one\n")
    atomic_write_text(target, "two\n")
    assert target.read_text() == "two\n"
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]
    with pytest.raises(TypeError):
        atomic_write_text(target, 123)  # type: ignore[arg-type]  # fails while writing the temporary file
    assert target.read_text() == "two\n"  # the old content survives a failed write
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]


def test_input_hash_tracks_parameters_not_device_or_paths(repo_root: Path, tmp_path: Path) -> None:
    params = {"profile": "smoke", "seeds": [0, 1, 2], "device": "cpu", "data_root": "../shared/data"}

    def digest(p: dict, data_root: Path | None = None, modules: list[str] = MODULES) -> str:
        value, _ = input_hash(
            stem="baselines_rating", parameters=p, root=repo_root, data_root=data_root, modules=modules
        )
        return value

    base = digest(params)
    assert digest(params) == base  # deterministic
    assert digest({**params, "seeds": [0, 1]}) != base
    assert digest({**params, "profile": "full"}) != base
    assert digest({**params, "extra": 1}) != base
    assert digest({**params, "device": "cuda"}) == base
    assert digest({**params, "data_root": "/elsewhere/data"}) == base
    assert digest({**params, "output_dir": "x", "checkpoint_dir": "y"}) == base
    assert digest(params, data_root=tmp_path) == base  # where the data lives is not an input
    assert digest(params, modules=[*MODULES, "recrepro.compare", "recrepro.book"]) == base  # presentation only
    assert digest(params, modules=MODULES[:2]) != base  # a different set of code modules
    _, parts = input_hash("baselines_rating", params, repo_root, None, MODULES)
    assert "device" not in parts["parameters"] and "data_root" not in parts["parameters"]
    assert "ml-100k/u1.base" in parts["data"]  # recorded checksums of the notebook's datasets


def test_code_hash_changes_with_the_source(repo_root: Path, tmp_path: Path) -> None:
    fake = tmp_path / "repo"
    for rel in ["notebooks/baselines_rating.py", *(f"src/{m.replace('.', '/')}.py" for m in MODULES)]:
        (fake / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(repo_root / rel, fake / rel)
    before = code_hash(fake, MODULES)
    assert before == code_hash(repo_root, MODULES)  # only the files' paths and bytes count
    path = fake / "src/recrepro/metrics.py"
    path.write_text(path.read_text() + "\n# a change\n")
    assert code_hash(fake, MODULES) != before
    h_before = input_hash("baselines_rating", {"profile": "smoke"}, repo_root, None, MODULES)[0]
    assert input_hash("baselines_rating", {"profile": "smoke"}, fake, None, MODULES)[0] != h_before


def test_resume_key_covers_the_notebooks_imports_but_not_the_book(repo_root: Path) -> None:
    """Editing another notebook's model or the book keeps a run's checkpoints; editing its own code does not."""
    snapshot = source_snapshot(repo_root)
    params = {"profile": "full", "device": "cpu"}

    def key(**edits: str) -> str:
        return resume_key("monti2017_t4_ml100k", params, repo_root, None, {**snapshot, **edits})

    base = key()
    assert key(**{"src/recrepro/book.py": "edited", "src/recrepro/compare.py": "edited"}) == base
    assert key(**{"src/recrepro/models/lrml.py": "edited", "src/recrepro/models/nnmf.py": "edited"}) == base
    assert key(**{"src/recrepro/models/mgcnn.py": "edited"}) != base
    assert key(**{"src/recrepro/metrics.py": "edited"}) != base
    assert key(**{"src/recrepro/data/side_features.py": "edited"}) != base  # imported by the experiment only


def test_relative_imports_resolve_to_package_modules() -> None:
    source = "from ..data import load_split\nfrom . import resolve_seeds\nimport recrepro.metrics, numpy\n"
    source += "def f():\n    from .other import thing\n"
    assert _recrepro_imports(source, "recrepro.experiments.monti2017", False) == {
        "recrepro.data",
        "recrepro.data.load_split",
        "recrepro.experiments",
        "recrepro.experiments.resolve_seeds",
        "recrepro.metrics",
        "recrepro.experiments.other",
        "recrepro.experiments.other.thing",
    }
    assert _recrepro_imports("from .monti import load_monti", "recrepro.data", True) == {
        "recrepro.data.monti",
        "recrepro.data.monti.load_monti",
    }


def test_static_imports_cover_every_module_a_committed_run_loaded(repo_root: Path) -> None:
    """What a run records (sys.modules at its end) is within what the checkpoint key covers before it starts."""
    runs = sorted((repo_root / "results" / "runs").glob("*/full/provenance.json"))
    assert runs
    for path in runs:
        loaded = set(json.loads(path.read_text())["code_modules"])
        assert loaded <= set(static_imports(repo_root, path.parent.parent.name)), path


def test_resume_key_is_shared_by_runs_that_differ_only_in_seeds_or_methods(repo_root: Path) -> None:
    """A 5-seed run reuses the finished units of a 3-seed run (units are keyed by their own seed and method),
    and a worker given a share of the methods fills the same folder."""
    params = {"profile": "full", "seeds": [0, 1, 2], "device": "cpu"}
    base = resume_key("baselines_rating", params, repo_root, None)
    assert resume_key("baselines_rating", {**params, "seeds": [0, 1, 2, 3, 4]}, repo_root, None) == base
    assert resume_key("baselines_rating", {**params, "methods": ["lrml"]}, repo_root, None) == base
    assert resume_key("baselines_rating", {**params, "max_epochs": 5}, repo_root, None) != base
    assert resume_key("baselines_rating", {**params, "profile": "smoke"}, repo_root, None) != base


NOTEBOOK = b"""# %% [markdown]
# # A table
# Prose about the protocol.

# %% tags=["parameters"]
profile = "smoke"

# %%
print(profile)
"""


def test_only_a_notebooks_code_cells_count_as_its_input() -> None:
    """Editing or adding prose keeps the hash (results stay current, checkpoints in use); code and tags count."""
    base = notebook_hash(NOTEBOOK)
    prose = NOTEBOOK.replace(b"Prose about", b"Better prose about")
    added = NOTEBOOK.replace(b"# %%\nprint", b"# %% [markdown]\n# A new paragraph.\n\n# %%\nprint")
    assert notebook_hash(prose) == notebook_hash(added) == base
    assert notebook_code(NOTEBOOK).count(b"# %%") == 2 and b"Prose" not in notebook_code(NOTEBOOK)
    assert notebook_hash(NOTEBOOK.replace(b'"smoke"', b'"full"')) != base
    assert notebook_hash(NOTEBOOK.replace(b'tags=["parameters"]', b"")) != base
    assert notebook_hash(prose, legacy=True) != notebook_hash(NOTEBOOK, legacy=True)  # the whole file


def test_a_checkpoint_folder_named_by_the_legacy_key_is_resumed(repo_root: Path, tmp_path: Path) -> None:
    """A run started while the whole notebook file was hashed keeps its folder; a new run gets the new key."""
    for part in ("notebooks", "src"):
        shutil.copytree(repo_root / part, tmp_path / part)
    params = {"profile": "full", "seeds": [0], "device": "cpu"}
    stem = "baselines_rating"
    new = checkpoint_folder(stem, params, tmp_path, None)
    legacy = new.with_name(f"full-{resume_key(stem, params, tmp_path, None, legacy_notebook_hash=True)}")
    assert legacy != new and new.name == f"full-{resume_key(stem, params, tmp_path, None)}"
    legacy.mkdir(parents=True)
    assert checkpoint_folder(stem, params, tmp_path, None) == legacy
    new.mkdir()
    assert checkpoint_folder(stem, params, tmp_path, None) == new  # once both exist, the current key wins


def test_progress_names_the_folder_a_run_uses_and_what_it_holds(
    repo_root: Path, data_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``recrepro progress`` computes the checkpoint folder exactly as ``run`` does, lists its units and names the
    files to commit for the next session to resume it."""
    from recrepro.cli import main
    from recrepro.runner import checkpoint_folder, resume_files, run_parameters, unit_progress

    params = run_parameters("full", "cpu", data_root, repo_root, {"seeds": [4, 3], "max_epochs": 5})
    folder = checkpoint_folder("baselines_rating", params, repo_root, data_root)
    assert folder.name == "full-" + resume_key("baselines_rating", params, repo_root, data_root)
    argv = ["progress", "baselines_rating", "--profile", "full", "--device", "cpu", "--data-root", str(data_root)]
    assert main([*argv, "-p", "seeds=[4, 3]", "-p", "max_epochs=5"]) == 0
    assert str(folder.relative_to(repo_root)) in capsys.readouterr().out
    assert main(["progress", "no_such_table"]) == 2

    scratch = tmp_path / "full-0123456789ab"
    (scratch / "trials").mkdir(parents=True)
    (scratch / "unit-seed0.json").write_text("{}")
    (scratch / "trials" / "trial_000.pt").write_bytes(b"")  # torn: listed, marked unreadable
    torch.save({"next_iteration": 6000, "stopped": False, "config": {"n_iterations": 10_000}}, scratch / "mg.pt")
    torch.save({"epoch": 15, "stopped_early": True, "config": {"epochs": 500}}, scratch / "lrml.pt")
    (scratch / "notes.txt").write_text("not a unit")
    listed = {name: (kind, position) for _, kind, name, position in unit_progress(scratch)}
    assert listed == {
        "unit-seed0.json": ("finished unit", ""),
        "trials/trial_000.pt": ("training checkpoint", "unreadable"),
        "mg.pt": ("training checkpoint", "iteration 6,000 of 10,000"),
        "lrml.pt": ("training checkpoint", "epoch 15 of 500, stopped early"),
    }
    # what to commit for the next session: the units and the one fit stopped mid-way, not finished fits' states
    torch.save({"next_iteration": 10_000, "stopped": False, "config": {"n_iterations": 10_000}}, scratch / "done.pt")
    assert resume_files(scratch) == [scratch / "mg.pt", scratch / "unit-seed0.json"]
    assert main([*argv, "-p", "seeds=[4, 3]", "-p", "max_epochs=5", "--resume-files"]) == 0


def test_a_parameter_the_notebook_does_not_declare_is_refused(repo_root: Path, data_root: Path) -> None:
    """papermill only warns about an unknown parameter and the notebook ignores it: the runner stops first."""
    from recrepro.runner import declared_parameters, run_notebook

    assert {"profile", "device", "seeds", "max_iterations"} <= set(declared_parameters(repo_root, "monti2017_t5_real"))
    assert "methods" in declared_parameters(repo_root, "lrml2018_ml1m")
    with pytest.raises(ValueError, match="has no parameter max_epochs, methods; its parameters: profile"):
        run_notebook(
            "monti2017_t5_real", "full", data_root=data_root, units_only=True, log=lambda _: None,
            extra_parameters={"methods": ["srmgcnn"], "max_epochs": 3},
        )  # fmt: skip
