"""Shared fixtures: where the real data lives (tests that need it skip, with the reason, when it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The checkout (the folder holding pyproject.toml, notebooks/ and src/)."""
    return REPO_ROOT


@pytest.fixture(scope="session")
def data_root() -> Path:
    """The data root: $RECREPRO_DATA, else ``<repo>/../shared/data`` (the layout of this study's machines)."""
    raw = os.environ.get("RECREPRO_DATA")
    root = Path(raw).expanduser() if raw else REPO_ROOT.parent / "shared" / "data"
    if not root.is_dir():
        pytest.skip(
            f"real data not found at {root}: set RECREPRO_DATA to the folder holding ml-100k/, ml-1m/ and "
            "monti_mgcnn/ to run the tests on real data"
        )
    return root.resolve()
