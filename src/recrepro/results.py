"""Run outputs: tidy metrics, side tables and provenance, written atomically under ``results/runs``.

Layout: ``results/runs/<notebook>/<profile>/`` holds ``metrics.csv`` (one row per dataset, method, metric,
seed), ``provenance.json``, any side tables (``<name>.csv``) and the executed notebook. A run writes into a
staging folder; the runner swaps it into place only when the notebook finished, so a failed or interrupted
run never destroys the results already there. Units of work finished before an interruption are kept in
``results/checkpoints/`` and reused by :meth:`RunRecorder.cached`.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd

METRIC_COLUMNS = ["dataset", "method", "metric", "seed", "value"]
PROFILES = ("smoke", "full")


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temporary file in the same folder and rename (atomic on POSIX)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def loaded_modules() -> list[str]:
    """The recrepro modules this process imported: the code a notebook's numbers depend on."""
    return sorted(name for name in sys.modules if name == "recrepro" or name.startswith("recrepro."))


def package_versions() -> dict[str, str]:
    """Versions of the packages that can change a number."""
    out = {"python": platform.python_version()}
    for pkg in ("recrepro", "torch", "numpy", "scipy", "pandas", "h5py"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


@dataclass
class RunRecorder:
    """Collects one notebook run's metrics; used inside the notebook.

    ``output_dir`` is where this run writes (the runner passes a staging folder); ``checkpoint_dir`` keeps
    finished units across interruptions.
    """

    notebook: str
    profile: str
    output_dir: Path
    checkpoint_dir: Path | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"unknown profile {self.profile!r}; choose one of {', '.join(PROFILES)}")
        self.output_dir = Path(self.output_dir)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = Path(self.checkpoint_dir)
            self.checkpoint_dir.mkdir(parents=True, exist_ok=True)

    def add(self, dataset: str, method: str, metric: str, value: float, seed: int | None = None, **extra: Any) -> None:
        """Record one measured number (``extra`` columns, e.g. ``budget``, are kept in metrics.csv)."""
        self.rows.append(
            {
                "dataset": dataset,
                "method": method,
                "metric": metric,
                "seed": -1 if seed is None else int(seed),
                "value": float(value),
                **extra,
            }
        )

    def cached(self, key: str, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Return the stored result of unit ``key`` if an earlier (interrupted) run finished it, else compute it.

        ``compute`` must return a JSON-serialisable dict. Checkpoints are keyed by profile as well.
        """
        if self.checkpoint_dir is None:
            return compute()
        path = self.checkpoint_dir / f"{key}.json"
        if path.exists():
            return json.loads(path.read_text())
        out = compute()
        atomic_write_json(path, out)
        return out

    def checkpoint_path(self, key: str) -> Path | None:
        """Where a long fit for unit ``key`` keeps its resumable state."""
        return None if self.checkpoint_dir is None else self.checkpoint_dir / f"{key}.pt"

    def save_table(self, name: str, df: pd.DataFrame) -> Path:
        """A side table (tuning trials, learning curves) saved as ``<name>.csv``."""
        path = self.output_dir / f"{name}.csv"
        atomic_write_text(path, df.to_csv(index=False))
        return path

    def metrics(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=None if self.rows else METRIC_COLUMNS)

    def finish(self, **info: Any) -> pd.DataFrame:
        """Write metrics.csv and the notebook's part of the provenance; returns the metrics frame."""
        self.info.update(info)
        df = self.metrics()
        if df.empty:
            raise RuntimeError(f"notebook {self.notebook} recorded no metrics; nothing to write")
        atomic_write_text(self.output_dir / "metrics.csv", df.to_csv(index=False))
        atomic_write_json(
            self.output_dir / "notebook_info.json",
            {
                "notebook": self.notebook,
                "profile": self.profile,
                "versions": package_versions(),
                "code_modules": loaded_modules(),
                **self.info,
            },
        )
        return df


def run_dir(results_dir: Path, notebook: str, profile: str) -> Path:
    return Path(results_dir) / "runs" / notebook / profile


def publish_run(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` so that a reader never sees a half-written run.

    The old run is moved aside first and put back if the new one cannot be moved in.
    """
    if not Path(staging).is_dir():
        raise FileNotFoundError(f"staging folder {staging} does not exist; nothing to publish, {final} kept")
    final.parent.mkdir(parents=True, exist_ok=True)
    backup = final.with_name(f".{final.name}.old")
    if backup.exists():
        shutil.rmtree(backup)
    if final.exists():
        os.replace(final, backup)
    try:
        os.replace(staging, final)
    except OSError:
        if backup.exists():
            os.replace(backup, final)
        raise
    if backup.exists():
        shutil.rmtree(backup)


def load_run(results_dir: Path, notebook: str, profile: str) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """(metrics, provenance) of a published run, or None."""
    d = run_dir(results_dir, notebook, profile)
    if not (d / "metrics.csv").exists() or not (d / "provenance.json").exists():
        return None
    return pd.read_csv(d / "metrics.csv"), json.loads((d / "provenance.json").read_text())


def load_all_metrics(results_dir: Path, notebooks: list[str]) -> pd.DataFrame:
    """Every published run's metrics with notebook and profile columns; full profile preferred over smoke."""
    frames = []
    for nb in notebooks:
        for profile in ("full", "smoke"):
            loaded = load_run(results_dir, nb, profile)
            if loaded is not None:
                df, prov = loaded
                frames.append(df.assign(notebook=nb, profile=profile, input_hash=prov.get("input_hash", "")))
                break
    if not frames:
        return pd.DataFrame(columns=[*METRIC_COLUMNS, "notebook", "profile", "input_hash"])
    return pd.concat(frames, ignore_index=True)
