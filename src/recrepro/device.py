"""Device selection: every model runs on CUDA when present and on CPU otherwise."""

from __future__ import annotations

import torch

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto") -> torch.device:
    """Map ``auto``/``cpu``/``cuda`` to a torch device, failing loudly if CUDA is asked for but absent."""
    if device not in DEVICE_CHOICES:
        raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICE_CHOICES)}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device=cuda was requested but CUDA is not available here; use --device cpu or auto")
    return torch.device(device)


def device_name(device: torch.device) -> str:
    """Human-readable device description recorded in run provenance."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({torch.get_num_threads()} threads)"


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch (CPU and CUDA) and return a CPU generator for explicit sampling."""
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
