"""environment.yml (conda users) must name exactly the requirements of pyproject.toml (pip users)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_requirements() -> dict[str, str]:
    proj = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = proj["dependencies"] + proj["optional-dependencies"]["book"] + proj["optional-dependencies"]["test"]
    return {canonicalize_name(r.name): str(r.specifier) for r in map(Requirement, reqs)}


def _environment_requirements() -> tuple[dict[str, str], list[str]]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    reqs = {canonicalize_name(r.name): str(r.specifier) for r in map(Requirement, (p for p in pip if p != "-e ."))}
    return reqs, conda


def test_environment_matches_pyproject() -> None:
    env, _ = _environment_requirements()
    assert env == _pyproject_requirements()


def test_environment_pins_python_and_torch() -> None:
    env, conda = _environment_requirements()
    assert "python=3.11" in conda
    assert env["torch"] == "==2.13.0", "torch must be pinned (an unpinned torch pulls a multi-GB CUDA build)"
