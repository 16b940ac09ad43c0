"""Execute notebooks with papermill and publish their results with provenance.

A notebook's *inputs* are its code cells (not its prose: ``notebook_code``), the ``recrepro`` package source,
its parameters (profile, seeds and any extra ones; not the device or paths) and the checksums of the datasets it
declares in the catalog. Their hash is stored with the result; a run whose inputs are unchanged is skipped unless
forced, and the book marks a result whose inputs changed since it was produced as stale.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .catalog import notebook
from .data.registry import ML1M_OFFICIAL_RATINGS, spec
from .results import atomic_write_json, load_run, publish_run, run_dir

NON_INPUT_PARAMETERS = {"device", "data_root", "output_dir", "checkpoint_dir"}
# modules that present or orchestrate results but cannot change a measured number
PRESENTATION_MODULES = {
    "recrepro",
    "recrepro.book",
    "recrepro.catalog",
    "recrepro.claims",
    "recrepro.cli",
    "recrepro.compare",
    "recrepro.figures",
    "recrepro.runner",
}


class RunFailed(RuntimeError):
    pass


def project_root() -> Path:
    """The repository root: $RECREPRO_ROOT, else the nearest parent of the cwd holding notebooks/ and pyproject."""
    env = os.environ.get("RECREPRO_ROOT")
    if env:
        return Path(env).resolve()
    for d in [Path.cwd(), *Path.cwd().parents]:
        if (d / "pyproject.toml").is_file() and (d / "notebooks").is_dir():
            return d
    raise RunFailed(
        "cannot find the recrepro repository (a folder with pyproject.toml and notebooks/); "
        "run from inside the checkout or set RECREPRO_ROOT"
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def module_path(root: Path, module: str) -> Path:
    """Source file of a recrepro module name (``recrepro.models.baselines`` -> src/recrepro/models/baselines.py)."""
    base = root / "src" / Path(*module.split("."))
    return base / "__init__.py" if base.is_dir() else base.with_suffix(".py")


def source_snapshot(root: Path) -> dict[str, str]:
    """SHA-256 of every package source file, taken before a run (edits during a run must not leak in)."""
    src = root / "src" / "recrepro"
    return {p.relative_to(root).as_posix(): _sha256(p.read_bytes()) for p in sorted(src.rglob("*.py"))}


def _hashed_paths(root: Path, modules: list[str] | None, snapshot: dict[str, str]) -> set[str]:
    """Source files that count as a notebook's code inputs: those of the modules it imported, or, before a run
    has told which, every package file but the presentation modules (so editing the book keeps checkpoints)."""

    def path(module: str) -> str:
        return module_path(root, module).relative_to(root).as_posix()

    wanted = {path(m) for m in modules} if modules else set(snapshot)
    return wanted - {path(m) for m in PRESENTATION_MODULES}


def code_hash(root: Path, modules: list[str] | None, snapshot: dict[str, str] | None = None) -> str:
    """Hash of the package source a notebook used (all of it when the module list is unknown)."""
    snap = snapshot if snapshot is not None else source_snapshot(root)
    wanted = _hashed_paths(root, modules, snap)
    return _sha256(json.dumps({p: snap.get(p, "<missing>") for p in sorted(wanted)}).encode())


def data_fingerprint(stem: str, data_root: Path | None) -> dict[str, str]:
    """Recorded checksums of the notebook's datasets (files are verified by the loaders when read)."""
    out: dict[str, str] = {}
    for name in notebook(stem).datasets:
        for rel, sha in spec(name).files.items():
            out[rel] = sha or "no checksum recorded"
        if name == "ml-1m" and data_root is not None:
            out["ml-1m ratings source"] = (
                "official" if (data_root / ML1M_OFFICIAL_RATINGS).is_file() else "reconstructed"
            )
    return out


def notebook_code(source: bytes) -> bytes:
    """The code cells of a jupytext percent notebook, each with its ``# %%`` line (tags included) and without
    trailing blank lines: what its numbers can depend on. Markdown cells are prose, so editing or adding them
    keeps the notebook's results current and its checkpoints in use."""
    cells: list[bytes] = []
    keep, lines = True, []
    for line in [*source.splitlines(keepends=True), b"# %%\n"]:  # a sentinel closes the last cell
        if line.startswith(b"# %%"):
            if keep and lines:
                cells.append(b"".join(lines).rstrip())
            keep, lines = not line[4:].lstrip().startswith((b"[markdown]", b"[md]")), []
        lines.append(line)
    return b"\n\0".join(cells)


def notebook_hash(source: bytes, legacy: bool = False) -> str:
    """SHA-256 of a notebook's code cells (``notebook_code``); ``legacy``: of the whole file, as results and
    checkpoint folders made before prose stopped counting recorded it (``is_stale`` and ``checkpoint_folder``
    accept those, so they stay current and resumable)."""
    return _sha256(source if legacy else notebook_code(source))


def input_hash(
    stem: str,
    parameters: dict[str, Any],
    root: Path,
    data_root: Path | None,
    modules: list[str] | None,
    snapshot: dict[str, str] | None = None,
    notebook_source: bytes | None = None,
    legacy_notebook_hash: bool = False,
) -> tuple[str, dict[str, Any]]:
    """The hash of everything that determines a notebook's numbers, and its parts. ``notebook_source``: the
    notebook file's bytes as the run read them (default: read now)."""
    source = notebook_source if notebook_source is not None else (root / "notebooks" / f"{stem}.py").read_bytes()
    parts = {
        "notebook": notebook_hash(source, legacy_notebook_hash),
        "code": code_hash(root, modules, snapshot),
        "parameters": {k: v for k, v in sorted(parameters.items()) if k not in NON_INPUT_PARAMETERS},
        "data": data_fingerprint(stem, data_root),
    }
    return _sha256(json.dumps(parts, sort_keys=True).encode()), parts


def _recrepro_imports(source: str, module: str | None, is_package: bool) -> set[str]:
    """Dotted names a source file's import statements may load from recrepro (relative imports resolved).

    ``from a import b`` yields both ``a`` and ``a.b`` (``b`` may be a submodule); names that are not modules
    are dropped by the caller. Imports inside functions count too, so the result is a superset.
    """
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                if module is None:
                    continue
                package = module.split(".") if is_package else module.split(".")[:-1]
                base = ".".join([*package[: len(package) - node.level + 1], *([node.module] if node.module else [])])
            names = [base, *(f"{base}.{alias.name}" for alias in node.names)]
        else:
            continue
        found.update(n for n in names if n == "recrepro" or n.startswith("recrepro."))
    return found


def static_imports(root: Path, stem: str) -> list[str]:
    """The recrepro modules notebook ``stem`` can load, found by following its import statements through the
    package source without running anything (parent packages included). A superset of the ``code_modules`` a
    run records, known before the run starts."""
    pending = _recrepro_imports((root / "notebooks" / f"{stem}.py").read_text(), None, False)
    seen: set[str] = set()
    while pending:
        parts = pending.pop().split(".")
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            path = module_path(root, name)
            if name in seen or not path.is_file():
                continue
            seen.add(name)
            pending |= _recrepro_imports(path.read_text(), name, path.name == "__init__.py")
    return sorted(seen)


SHARE_PARAMETERS = ("seeds", "methods")  # choose which units a process computes, never what a unit computes


def resume_key(
    stem: str,
    parameters: dict[str, Any],
    root: Path,
    data_root: Path | None,
    snapshot: dict[str, str] | None = None,
    notebook_source: bytes | None = None,
    legacy_notebook_hash: bool = False,
) -> str:
    """Name of the checkpoint folder: the inputs less the presentation modules and the ``SHARE_PARAMETERS``.

    The code part covers the modules the notebook can import (``static_imports``), so editing another
    notebook's model keeps this notebook's checkpoints, across sessions too. Every unit is keyed by its own
    seed and method, so runs that differ only in which seeds or methods they compute share their finished
    units (a 5-seed run after a 3-seed run computes seeds 3 and 4 only).
    """
    params = {k: v for k, v in parameters.items() if k not in SHARE_PARAMETERS}
    modules = static_imports(root, stem)
    return input_hash(stem, params, root, data_root, modules, snapshot, notebook_source, legacy_notebook_hash)[0][:12]


def _git(root: Path, *args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def git_state(root: Path) -> dict[str, Any]:
    """Commit and whether tracked files differ from it."""
    commit = _git(root, "rev-parse", "HEAD") or "unknown"
    return {"commit": commit, "dirty": bool(_git(root, "status", "--porcelain", "--untracked-files=no"))}


def uncommitted_inputs(root: Path, commit: str, files: dict[str, str]) -> list[str]:
    """Input files ({path: sha256 as run}) whose content is not the one at ``commit`` (or not in it at all)."""
    changed = []
    for path, sha in sorted(files.items()):
        blob = subprocess.run(["git", "show", f"{commit}:{path}"], cwd=root, capture_output=True)
        if blob.returncode != 0 or _sha256(blob.stdout) != sha:
            changed.append(path)
    return changed


_cwd_lock = threading.Lock()
_cwd_state: dict[str, Any] = {"users": 0, "saved": None}


@contextmanager
def _working_dir(root: Path) -> Iterator[None]:
    """Enter ``root`` for as long as any run (thread) needs it; the first in saves the cwd, the last out restores it."""
    with _cwd_lock:
        if _cwd_state["users"] == 0:
            _cwd_state["saved"] = os.getcwd()
            os.chdir(root)
        _cwd_state["users"] += 1
    try:
        yield
    finally:
        with _cwd_lock:
            _cwd_state["users"] -= 1
            if _cwd_state["users"] == 0:
                os.chdir(_cwd_state["saved"])


@dataclass
class RunOutcome:
    stem: str
    profile: str
    status: str  # "ran", "skipped (up to date)"
    seconds: float
    path: Path


def _relative(path: Path, root: Path) -> str:
    """Paths handed to notebooks are relative to the repository root, so no machine path reaches the book."""
    return os.path.relpath(Path(path).resolve(), root)


def declared_parameters(root: Path, stem: str) -> list[str]:
    """The names the notebook's cell tagged ``parameters`` assigns: the only parameters a run may pass (papermill
    itself only warns about others, and the notebook would silently ignore them)."""
    import jupytext

    cells = jupytext.read(root / "notebooks" / f"{stem}.py").cells
    source = next((c.source for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), "")
    return [
        t.id for node in ast.parse(source).body if isinstance(node, ast.Assign) for t in node.targets
        if isinstance(t, ast.Name)
    ]  # fmt: skip


def run_parameters(
    profile: str, device: str, data_root: Path, root: Path, extra_parameters: dict[str, Any] | None
) -> dict[str, Any]:
    """The notebook parameters of a run (before its output and checkpoint folders are added)."""
    return {"profile": profile, "device": device, "data_root": _relative(data_root, root)} | (extra_parameters or {})


def checkpoint_folder(
    stem: str,
    parameters: dict[str, Any],
    root: Path,
    data_root: Path,
    snapshot: dict[str, str] | None = None,
    notebook_source: bytes | None = None,
) -> Path:
    """Where a run with these parameters keeps (and finds) its finished units: ``resume_key`` names it. A folder
    named by the legacy key (the whole notebook file hashed) is used where it exists and the current one does not:
    a run started before prose stopped counting resumes there."""

    def named(legacy_key: bool) -> Path:
        key = resume_key(stem, parameters, root, data_root, snapshot, notebook_source, legacy_key)
        return root / "results" / "checkpoints" / stem / f"{parameters['profile']}-{key}"

    folder, legacy = named(False), named(True)
    return legacy if legacy.is_dir() and not folder.is_dir() else folder


def unit_progress(folder: Path) -> list[tuple[str, str, str, str]]:
    """(modified UTC, kind, file, how far) of what a checkpoint folder holds, oldest first: finished units
    (``.json``, written by ``RunRecorder.cached``) and the training checkpoints of fits (``.pt``, unfinished ones
    among them; how far: ``checkpoint_position``)."""
    kinds = {".json": "finished unit", ".pt": "training checkpoint"}
    files = sorted((f for f in folder.rglob("*") if f.suffix in kinds), key=lambda f: f.stat().st_mtime)
    return [
        (
            datetime.fromtimestamp(f.stat().st_mtime, UTC).strftime("%Y-%m-%d %H:%M"),
            kinds[f.suffix],
            f.relative_to(folder).as_posix(),
            checkpoint_position(f) if f.suffix == ".pt" else "",
        )
        for f in files
    ]


def fit_position(path: Path) -> tuple[str, int, int | None, bool] | None:
    """(counter name, value, bound, stopped early) of the fit that wrote a training checkpoint, for the fits whose
    checkpoints carry them (MGCNN: ``next_iteration`` of ``n_iterations``; the epoch loops: ``epoch`` of
    ``epochs``); None for the others. Raises on a torn or foreign file."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(state, dict):
        return None
    config = state.get("config") if isinstance(state.get("config"), dict) else {}
    if "next_iteration" in state:
        name, value, bound = "iteration", state["next_iteration"], config.get("n_iterations")
    elif "epoch" in state:
        name, value, bound = "epoch", state["epoch"], config.get("epochs", config.get("max_epochs"))
    else:
        return None
    stopped = bool(state.get("stopped") or state.get("stopped_early"))
    return name, int(value), bound if isinstance(bound, int) else None, stopped


def checkpoint_position(path: Path) -> str:
    """How far the fit that wrote a training checkpoint got, e.g. ``iteration 6,000 of 10,000`` or ``epoch 15 of
    500, stopped early`` (see ``fit_position``); "unreadable" for a torn file, "" when it does not say."""
    try:
        position = fit_position(path)
    except Exception:  # noqa: BLE001 - a torn or foreign file: say so, the listing goes on
        return "unreadable"
    if position is None:
        return ""
    name, value, bound, stopped = position
    of = f" of {bound:,}" if bound is not None else ""
    return f"{name} {value:,}{of}" + (", stopped early" if stopped else "")


def is_midway(path: Path) -> bool:
    """Whether a training checkpoint is of a fit that has neither reached its bound nor stopped early."""
    try:
        position = fit_position(path)
    except Exception:  # noqa: BLE001 - unreadable: the run that resumes it starts that fit again
        return False
    return position is not None and position[2] is not None and position[1] < position[2] and not position[3]


def resume_files(folder: Path) -> list[Path]:
    """What a checkpoint folder needs to be committed with for the next session to resume its run: every finished
    unit (``.json``) and the training checkpoints of the fits stopped mid-way (``is_midway``). A finished fit's
    ``.pt`` is left out: its result is in a unit (an LRML grid trial's too), so nothing reads it again."""
    return sorted([*folder.rglob("*.json"), *(p for p in folder.rglob("*.pt") if is_midway(p))])


def committed_checkpoint_folders(root: Path) -> list[Path]:
    """The checkpoint folders ``results/checkpoints/<notebook>/<profile>-<key>`` that hold committed files: a long
    run's finished units, committed so that the next session (or a reader) resumes it instead of starting over."""
    tracked = _git(root, "ls-files", "--", "results/checkpoints").splitlines()
    return sorted({root.joinpath(*Path(f).parts[:4]) for f in tracked if len(Path(f).parts) > 4})


def run_notebook(
    stem: str,
    profile: str,
    *,
    device: str = "auto",
    data_root: str | os.PathLike[str] | None = None,
    force: bool = False,
    units_only: bool = False,
    extra_parameters: dict[str, Any] | None = None,
    log: Callable[[str], None] = print,
) -> RunOutcome:
    """Execute ``notebooks/<stem>.py`` under ``profile`` and publish its results if it succeeds.

    ``units_only``: compute and checkpoint the units but publish nothing -- a second worker beside a run whose
    parameters differ only in ``seeds`` or ``methods`` (same checkpoint folder), e.g. seeds ``[4, 3]`` beside
    ``[0, 1, 2, 3, 4]``, or ``methods=["lrml-code"]`` beside a run of every method. ``methods`` (a worker's
    share of a table) is refused without ``units_only``: a published run has every method.
    """
    import jupytext
    import papermill as pm

    from .data.registry import resolve_data_root

    notebook(stem)  # validates the name
    if profile not in ("smoke", "full"):
        raise ValueError(f"unknown profile {profile!r}; choose smoke or full")
    if force and units_only:
        raise ValueError("--force empties the checkpoint folder that a units-only worker shares; use one or the other")
    if (extra_parameters or {}).get("methods") is not None and not units_only:
        raise ValueError(
            "-p methods=[...] picks a --units-only worker's share of a table; a published run computes every "
            "method: add --units-only, or drop -p methods"
        )
    root = project_root()
    declared = declared_parameters(root, stem)
    unknown = sorted(set(extra_parameters or {}) - set(declared))
    if unknown:
        raise ValueError(f"{stem} has no parameter {', '.join(unknown)}; its parameters: {', '.join(declared)}")
    droot = resolve_data_root(data_root)
    params = run_parameters(profile, device, droot, root, extra_parameters)
    final = run_dir(root / "results", stem, profile)
    existing = load_run(root / "results", stem, profile)
    if (
        existing is not None
        and not force
        and not units_only
        and _inputs_unchanged(stem, params, root, droot, existing[1])
    ):
        log(f"{stem} [{profile}]: up to date (inputs unchanged), skipped; use --force to re-run")
        return RunOutcome(stem, profile, "skipped (up to date)", 0.0, final)

    staging = final.with_name(f".{profile}.staging-{os.getpid()}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    snapshot = source_snapshot(root)
    notebook_source = (root / "notebooks" / f"{stem}.py").read_bytes()
    checkpoint_dir = checkpoint_folder(stem, params, root, droot, snapshot, notebook_source)
    if force:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # --force recomputes every unit
    params.update(output_dir=_relative(staging, root), checkpoint_dir=_relative(checkpoint_dir, root))
    nb_input = root / "build" / "nb-inputs" / f"{stem}.ipynb"
    nb_input.parent.mkdir(parents=True, exist_ok=True)
    nb = jupytext.read(root / "notebooks" / f"{stem}.py")
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    jupytext.write(nb, nb_input)
    executed = staging / f"{stem}.ipynb"
    log(f"{stem} [{profile}]: running on device={device} ...")
    commit_state = git_state(root)  # the code that runs is the code at start
    started = datetime.now(UTC)
    t0 = time.perf_counter()
    try:
        with _working_dir(root):  # papermill resolves paths against the process cwd
            pm.execute_notebook(
                _relative(nb_input, root),
                _relative(executed, root),
                parameters=params,
                kernel_name="python3",
                cwd=".",
                progress_bar=False,
                log_output=False,
            )
    except Exception as err:
        failed = root / "build" / "failed" / f"{stem}-{profile}.ipynb"
        failed.parent.mkdir(parents=True, exist_ok=True)
        if executed.exists():
            shutil.copy(executed, failed)
        shutil.rmtree(staging, ignore_errors=True)
        raise RunFailed(
            f"{stem} [{profile}] failed: {type(err).__name__}: {str(err).strip().splitlines()[-1] if str(err) else ''}"
            f"\nThe executed notebook with the error is at {failed}. Results already published were kept; finished "
            f"units are checkpointed in {checkpoint_dir} and are reused when you re-run."
        ) from err
    seconds = time.perf_counter() - t0
    if units_only:
        shutil.rmtree(staging, ignore_errors=True)
        log(f"{stem} [{profile}]: units done in {seconds:.0f} s -> {_relative(checkpoint_dir, root)} (not published)")
        return RunOutcome(stem, profile, "units only", seconds, checkpoint_dir)
    info_path = staging / "notebook_info.json"
    info = json.loads(info_path.read_text()) if info_path.exists() else {}
    info_path.unlink(missing_ok=True)
    if not (staging / "metrics.csv").exists():
        shutil.rmtree(staging, ignore_errors=True)
        raise RunFailed(f"{stem} [{profile}] ran but wrote no metrics.csv (the notebook must call RunRecorder.finish)")
    digest, parts = input_hash(stem, params, root, droot, info.get("code_modules"), snapshot, notebook_source)
    used = {p: snapshot[p] for p in snapshot if p in _hashed_paths(root, info.get("code_modules"), snapshot)}
    used[f"notebooks/{stem}.py"] = _sha256(notebook_source)
    changed = uncommitted_inputs(root, commit_state["commit"], used)
    provenance = {
        **info,
        "commit": commit_state["commit"],
        "dirty": bool(changed),
        "uncommitted_inputs": changed,
        "notebook": stem,
        "profile": profile,
        "parameters": {k: v for k, v in params.items() if k not in ("output_dir", "checkpoint_dir")},
        "input_hash": digest,
        "inputs": parts,
        "wall_seconds": round(seconds, 1),
        "started_utc": started.isoformat(timespec="seconds"),
        "python_executable": os.path.basename(sys.executable),
    }
    atomic_write_json(staging / "provenance.json", provenance)
    publish_run(staging, final)  # the checkpoint folder stays: a run with more seeds reuses its units
    log(f"{stem} [{profile}]: done in {seconds:.0f} s -> {_relative(final, root)}")
    return RunOutcome(stem, profile, "ran", seconds, final)


def run_many(stems: list[str], profile: str, *, jobs: int = 1, **kwargs: Any) -> list[RunOutcome]:
    """Run several notebooks (``jobs`` at a time; each papermill kernel is its own process)."""
    for stem in stems:
        notebook(stem)
    total = len(stems)
    outcomes: list[RunOutcome] = []

    def one(i_stem: tuple[int, str]) -> RunOutcome:
        i, stem = i_stem
        return run_notebook(stem, profile, log=lambda m, i=i: print(f"[{i}/{total}] {m}", flush=True), **kwargs)

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        outcomes = list(pool.map(one, enumerate(stems, 1)))
    return outcomes


def is_stale(stem: str, profile: str, data_root: str | os.PathLike[str] | None = None) -> bool | None:
    """True if a published run's inputs differ from the current ones; None if there is no such run."""
    root = project_root()
    existing = load_run(root / "results", stem, profile)
    if existing is None:
        return None
    params = dict(existing[1].get("parameters", {}))
    try:
        from .data.registry import resolve_data_root

        droot: Path | None = resolve_data_root(data_root)
    except Exception:
        droot = None
    return not _inputs_unchanged(stem, params, root, droot, existing[1])


def _inputs_unchanged(stem: str, params: dict[str, Any], root: Path, droot: Path | None, prov: dict) -> bool:
    """Whether a published run's recorded input hash is the current one (or its legacy form: the whole notebook
    file hashed, as runs before prose stopped counting recorded it)."""
    return any(
        input_hash(stem, params, root, droot, prov.get("code_modules"), legacy_notebook_hash=old)[0]
        == prov.get("input_hash")
        for old in (False, True)
    )
