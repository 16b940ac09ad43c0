"""Shared training plumbing: the result every ``fit_*`` function returns, checkpoints, early stopping.

Selection rule used everywhere in the study: the model state is chosen on validation data carved from the
training data; the test metric reported is the one *at* that state. Test values may be logged per epoch
for learning curves, never used for a decision.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch


@dataclass
class FitResult:
    """What a training run hands back to a notebook.

    ``metrics`` are test metrics at the best validation epoch; ``history`` has one row per evaluation
    (columns at least ``epoch``, ``train_loss`` and the validation metric).
    """

    metrics: dict[str, float]
    best_epoch: int
    history: pd.DataFrame
    config: dict[str, Any]
    valid_metrics: dict[str, float] = field(default_factory=dict)
    test_predictions: np.ndarray | None = None
    epochs_run: int = 0


def atomic_torch_save(obj: Any, path: Path) -> None:
    """Write ``obj`` with torch.save to a temporary file, then rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: Path | None) -> dict[str, Any] | None:
    """The saved state if ``path`` exists, else None (a fresh run)."""
    if path is None or not Path(path).exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


class EarlyStopping:
    """Tracks the best validation value (lower is better unless ``mode='max'``) and a patience counter."""

    def __init__(self, patience: int, mode: str = "min") -> None:
        if mode not in ("min", "max"):
            raise ValueError("mode must be 'min' or 'max'")
        self.patience = patience
        self.mode = mode
        self.best: float = float("inf") if mode == "min" else -float("inf")
        self.best_epoch = -1
        self.bad_rounds = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record ``value``; True if it is a new best."""
        improved = value < self.best if self.mode == "min" else value > self.best
        if improved:
            self.best, self.best_epoch, self.bad_rounds = value, epoch, 0
        else:
            self.bad_rounds += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.bad_rounds > self.patience

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "bad_rounds": self.bad_rounds}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch, self.bad_rounds = state["best"], state["best_epoch"], state["bad_rounds"]
