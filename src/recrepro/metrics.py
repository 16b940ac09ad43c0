"""Accuracy metrics shared by every table.

Rating prediction uses RMSE on the dataset's own scale. Ranking uses one held-out target item per user,
scored against candidates (sampled negatives or the whole catalogue minus the user's training items).
Ties between the target and a candidate are resolved in expectation over a uniformly random order by
default, so a model that scores everything equally gets the chance-level value rather than 0 or 1.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch

TieMode = Literal["expected", "pessimistic", "optimistic"]
ArrayLike = np.ndarray | torch.Tensor


def _np(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def rmse(predictions: ArrayLike, targets: ArrayLike) -> float:
    """Root mean squared error."""
    p, t = _np(predictions).astype(np.float64), _np(targets).astype(np.float64)
    if p.shape != t.shape:
        raise ValueError(f"shape mismatch {p.shape} vs {t.shape}")
    if p.size == 0:
        raise ValueError("rmse of an empty array is undefined")
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mae(predictions: ArrayLike, targets: ArrayLike) -> float:
    """Mean absolute error."""
    p, t = _np(predictions).astype(np.float64), _np(targets).astype(np.float64)
    return float(np.mean(np.abs(p - t)))


def rank_counts(
    target_scores: ArrayLike, candidate_scores: ArrayLike, valid: ArrayLike | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per row: how many candidates score strictly higher than the target, and how many tie with it.

    ``candidate_scores`` is (n, m); ``valid`` (bool, same shape) excludes candidates, e.g. training items
    in full-ranking evaluation.
    """
    target = torch.as_tensor(_np(target_scores), dtype=torch.float64).reshape(-1, 1)
    cand = torch.as_tensor(_np(candidate_scores), dtype=torch.float64)
    if cand.ndim != 2 or cand.shape[0] != target.shape[0]:
        raise ValueError(f"candidate_scores must be (n, m) with n={target.shape[0]}, got {tuple(cand.shape)}")
    greater = cand > target
    ties = cand == target
    if valid is not None:
        mask = torch.as_tensor(_np(valid), dtype=torch.bool)
        greater &= mask
        ties &= mask
    return greater.sum(1).numpy(), ties.sum(1).numpy()


def _positions(greater: np.ndarray, ties: np.ndarray, mode: TieMode) -> list[np.ndarray]:
    """1-based positions the target can take, each equally likely under the tie mode."""
    if mode == "pessimistic":
        return [np.array([g + t + 1]) for g, t in zip(greater, ties, strict=True)]
    if mode == "optimistic":
        return [np.array([g + 1]) for g in greater]
    if mode == "expected":
        return [np.arange(g + 1, g + t + 2) for g, t in zip(greater, ties, strict=True)]
    raise ValueError(f"unknown tie mode {mode!r}; choose expected, pessimistic or optimistic")


def hit_ratio_at_k(greater: np.ndarray, ties: np.ndarray, k: int, ties_mode: TieMode = "expected") -> float:
    """Share of users whose target lands in the top k (HR@k; equals recall@k with one target)."""
    return float(np.mean([np.mean(pos <= k) for pos in _positions(greater, ties, ties_mode)]))


def ndcg_at_k(greater: np.ndarray, ties: np.ndarray, k: int, ties_mode: TieMode = "expected") -> float:
    """nDCG@k with a single relevant item: 1/log2(position + 1) if position <= k, else 0."""
    vals = [np.mean(np.where(pos <= k, 1.0 / np.log2(pos + 1.0), 0.0)) for pos in _positions(greater, ties, ties_mode)]
    return float(np.mean(vals))


def mrr(greater: np.ndarray, ties: np.ndarray, ties_mode: TieMode = "expected") -> float:
    """Mean reciprocal rank of the target."""
    return float(np.mean([np.mean(1.0 / pos) for pos in _positions(greater, ties, ties_mode)]))


def ranking_metrics(
    greater: np.ndarray, ties: np.ndarray, ks: tuple[int, ...] = (10,), ties_mode: TieMode = "expected"
) -> dict[str, float]:
    """HR@k, nDCG@k for each k, and MRR, keyed like ``hr@10``."""
    out: dict[str, float] = {}
    for k in ks:
        out[f"hr@{k}"] = hit_ratio_at_k(greater, ties, k, ties_mode)
        out[f"ndcg@{k}"] = ndcg_at_k(greater, ties, k, ties_mode)
    out["mrr"] = mrr(greater, ties, ties_mode)
    return out
