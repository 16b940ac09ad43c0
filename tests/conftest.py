"""Shared fixtures: where the real data lives (tests that need it skip, with the reason, when it is absent)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

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


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """The tests use tiny tensors, which gain nothing from intra-op threads; on a busy shared CPU extra threads made
    them 10-100x slower. One thread also makes the per-seed determinism checks independent of the core count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(
    params=[
        "cpu",
        pytest.param(
            "cuda",
            marks=pytest.mark.skipif(
                not torch.cuda.is_available(),
                reason="no CUDA device here (benchmarks/device_check.sh runs these on one)",
            ),
        ),
    ]
)
def device(request: pytest.FixtureRequest) -> str:
    """The devices a model's quality tests run on: the CPU always, CUDA where there is one (the same assertions)."""
    return request.param
