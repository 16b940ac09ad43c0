"""Metrics: RMSE against numpy, HR@k / nDCG@k / MRR against hand-computed cases and a brute-force tie average."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from recrepro.metrics import hit_ratio_at_k, mae, mrr, ndcg_at_k, rank_counts, ranking_metrics, rmse


def test_rmse_and_mae_match_numpy() -> None:
    rng = np.random.default_rng(0)
    p, t = rng.normal(3, 1, 1000), rng.integers(1, 6, 1000).astype(float)
    assert rmse(p, t) == pytest.approx(np.sqrt(np.mean((p - t) ** 2)), rel=1e-12)
    assert mae(p, t) == pytest.approx(np.mean(np.abs(p - t)), rel=1e-12)
    # float32 torch tensors are accumulated in float64
    assert rmse(torch.tensor(p, dtype=torch.float32), torch.tensor(t)) == pytest.approx(
        np.sqrt(np.mean((p.astype(np.float32).astype(float) - t) ** 2)), rel=1e-12
    )
    assert rmse([1.0, 2.0], [1.0, 4.0]) == pytest.approx(math.sqrt(2.0))


def test_rmse_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="shape mismatch"):
        rmse(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="empty"):
        rmse(np.array([]), np.array([]))


def test_rank_counts_basic_and_valid_mask() -> None:
    target = np.array([0.5, 2.0])
    cand = np.array([[0.9, 0.5, 0.5, 0.1], [1.0, 3.0, 2.0, -1.0]])
    greater, ties = rank_counts(target, cand)
    assert greater.tolist() == [1, 1] and ties.tolist() == [2, 1]
    valid = np.array([[False, True, False, True], [True, True, False, True]])
    greater, ties = rank_counts(target, cand, valid)
    assert greater.tolist() == [0, 1] and ties.tolist() == [1, 0]
    greater_t, ties_t = rank_counts(torch.tensor(target), torch.tensor(cand), torch.tensor(valid))
    assert greater_t.tolist() == [0, 1] and ties_t.tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"\(n, m\)"):
        rank_counts(np.zeros(3), np.zeros((2, 4)))


def test_tie_modes_by_hand() -> None:
    # Target 0.5 among candidates [0.9, 0.5, 0.5, 0.1]: one candidate above, two tied.
    # Under a random order of the three tied items the target is at position 2, 3 or 4, each with prob. 1/3.
    greater, ties = rank_counts(np.array([0.5]), np.array([[0.9, 0.5, 0.5, 0.1]]))
    # k=2 -- expected: only position 2 is a hit -> HR = 1/3; nDCG = (1/log2(3)) / 3
    assert hit_ratio_at_k(greater, ties, 2) == pytest.approx(1 / 3)
    assert ndcg_at_k(greater, ties, 2) == pytest.approx(1 / math.log2(3) / 3)
    # pessimistic: the target is last among the ties -> position 4 -> miss
    assert hit_ratio_at_k(greater, ties, 2, "pessimistic") == 0.0
    assert ndcg_at_k(greater, ties, 2, "pessimistic") == 0.0
    # optimistic: first among the ties -> position 2 -> hit, nDCG = 1/log2(3)
    assert hit_ratio_at_k(greater, ties, 2, "optimistic") == 1.0
    assert ndcg_at_k(greater, ties, 2, "optimistic") == pytest.approx(1 / math.log2(3))
    # k=3 -- expected: positions 2 and 3 hit -> 2/3; nDCG = (1/log2(3) + 1/log2(4)) / 3
    assert hit_ratio_at_k(greater, ties, 3) == pytest.approx(2 / 3)
    assert ndcg_at_k(greater, ties, 3) == pytest.approx((1 / math.log2(3) + 0.5) / 3)
    # MRR: expected (1/2 + 1/3 + 1/4) / 3, pessimistic 1/4, optimistic 1/2
    assert mrr(greater, ties) == pytest.approx((1 / 2 + 1 / 3 + 1 / 4) / 3)
    assert mrr(greater, ties, "pessimistic") == pytest.approx(1 / 4)
    assert mrr(greater, ties, "optimistic") == pytest.approx(1 / 2)
    with pytest.raises(ValueError, match="tie mode"):
        hit_ratio_at_k(greater, ties, 2, "random")  # type: ignore[arg-type]


def test_ranking_metrics_average_over_users() -> None:
    # user 0: target strictly first -> position 1 in every mode (HR 1, nDCG 1, RR 1)
    # user 1: 11 candidates above the target -> position 12 -> miss at k=10, RR 1/12
    # user 2: the tie case above, k=10 -> always a hit; nDCG = (1/log2 3 + 1/log2 4 + 1/log2 5) / 3
    greater, ties = np.array([0, 11, 1]), np.array([0, 0, 2])
    out = ranking_metrics(greater, ties, ks=(1, 10))
    assert set(out) == {"hr@1", "ndcg@1", "hr@10", "ndcg@10", "mrr"}
    assert out["hr@1"] == pytest.approx(1 / 3) and out["ndcg@1"] == pytest.approx(1 / 3)
    assert out["hr@10"] == pytest.approx(2 / 3)
    user2 = (1 / math.log2(3) + 1 / math.log2(4) + 1 / math.log2(5)) / 3
    assert out["ndcg@10"] == pytest.approx((1 + 0 + user2) / 3)
    assert out["mrr"] == pytest.approx((1 + 1 / 12 + (1 / 2 + 1 / 3 + 1 / 4) / 3) / 3)


def test_valid_mask_changes_the_metrics() -> None:
    # the only higher-scored candidate is a training item, masked out -> the target is first
    target, cand = np.array([1.0]), np.array([[5.0, 0.0, 0.5]])
    assert ranking_metrics(*rank_counts(target, cand), ks=(1,))["hr@1"] == 0.0
    valid = np.array([[False, True, True]])
    assert ranking_metrics(*rank_counts(target, cand, valid), ks=(1,))["hr@1"] == 1.0


def test_constant_scorer_gets_chance_level() -> None:
    n_users, n_cand, k = 7, 99, 10
    greater, ties = rank_counts(np.zeros(n_users), np.zeros((n_users, n_cand)))
    assert (ties == n_cand).all() and (greater == 0).all()
    # expected position is uniform over 1..100 -> HR@10 = 10/100
    assert hit_ratio_at_k(greater, ties, k) == pytest.approx(k / (n_cand + 1))
    assert ndcg_at_k(greater, ties, k) == pytest.approx(sum(1 / math.log2(p + 1) for p in range(1, k + 1)) / 100)
    assert hit_ratio_at_k(greater, ties, k, "pessimistic") == 0.0
    assert hit_ratio_at_k(greater, ties, k, "optimistic") == 1.0


def test_expected_mode_equals_brute_force_average_over_tie_orders() -> None:
    """Average HR/nDCG over every order of the items (stable sort by score) equals the 'expected' value."""
    rng = np.random.default_rng(1)
    for _ in range(20):
        scores = rng.integers(0, 3, size=5).astype(float)  # item 0 is the target; many ties
        hrs, ndcgs = [], []
        for perm in itertools.permutations(range(5)):
            order = sorted(perm, key=lambda i: -scores[i])  # stable: ties keep the permutation order
            pos = order.index(0) + 1
            hrs.append(pos <= 2)
            ndcgs.append(1 / math.log2(pos + 1) if pos <= 2 else 0.0)
        greater, ties = rank_counts(scores[:1], scores[None, 1:])
        assert hit_ratio_at_k(greater, ties, 2) == pytest.approx(np.mean(hrs))
        assert ndcg_at_k(greater, ties, 2) == pytest.approx(np.mean(ndcgs))
