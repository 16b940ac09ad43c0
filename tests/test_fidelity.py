"""List-fidelity and concept metrics (recrepro.fidelity) against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import kendalltau

from recrepro.fidelity import (
    concept_control,
    kendall_tau_topk,
    monosemanticity_scores,
    rbo,
    recommendation_fidelity,
    topk_lists,
)


def test_rbo_identical_lists_truncated_and_extrapolated() -> None:
    lst = list(range(30))
    # truncated: (1-p) Σ_{d=1..30} p^{d-1} · 1 = 1 - p^30 (≈ 0.958 at p = 0.9, the authors' ceiling)
    assert rbo(lst, lst, p=0.9) == pytest.approx(1 - 0.9**30, abs=1e-12)
    assert rbo(lst, lst, p=0.9) == pytest.approx(0.957609, abs=1e-6)
    assert rbo(lst, lst, p=0.8, depth=10) == pytest.approx(1 - 0.8**10, abs=1e-12)
    assert rbo(lst, lst, p=0.9, extrapolated=True) == pytest.approx(1.0, abs=1e-12)
    assert rbo(lst, lst, p=0.5, depth=7, extrapolated=True) == pytest.approx(1.0, abs=1e-12)


def test_rbo_disjoint_lists_is_zero() -> None:
    assert rbo([1, 2, 3], [4, 5, 6]) == 0.0
    assert rbo([1, 2, 3], [4, 5, 6], extrapolated=True) == 0.0


def test_rbo_three_element_worked_example() -> None:
    # A = [1, 2, 3], B = [1, 3, 2], p = 0.9. Agreements A_d = |A_:d ∩ B_:d| / d:
    #   d=1: {1} ∩ {1} = 1 → 1;  d=2: {1,2} ∩ {1,3} = 1 → 1/2;  d=3: 3 common → 1.
    # truncated = (1-p)(p^0·1 + p^1·0.5 + p^2·1) = 0.1 · (1 + 0.45 + 0.81) = 0.226
    # extrapolated = truncated + A_3 · p^3 = 0.226 + 0.729 = 0.955
    assert rbo([1, 2, 3], [1, 3, 2], p=0.9) == pytest.approx(0.226, abs=1e-12)
    assert rbo([1, 2, 3], [1, 3, 2], p=0.9, extrapolated=True) == pytest.approx(0.955, abs=1e-12)
    # symmetric, and depth truncates before comparing: depth 1 → (1-p)·1
    assert rbo([1, 3, 2], [1, 2, 3], p=0.9) == pytest.approx(0.226, abs=1e-12)
    assert rbo([1, 2, 3], [1, 3, 2], p=0.9, depth=1) == pytest.approx(0.1, abs=1e-12)


def test_rbo_uneven_lists() -> None:
    # the authors' truncated form on lists of different length (their MF lists had 29 items):
    # A=[1,2], B=[1,2,3]: A_1 = 1, A_2 = 1, A_3 = 2/3 → 0.1·(1 + 0.9 + 0.81·2/3) = 0.244
    assert rbo([1, 2], [1, 2, 3], p=0.9) == pytest.approx(0.244, abs=1e-12)
    # RBO_ext: a short list that is a prefix of the long one is fully consistent with it → 1
    assert rbo([1, 2], [1, 2, 3, 4], p=0.9, extrapolated=True) == pytest.approx(1.0, abs=1e-12)
    assert rbo([5], [1, 2, 3], p=0.9, extrapolated=True) == 0.0
    with pytest.raises(ValueError):
        rbo([1, 1], [1, 2])
    with pytest.raises(ValueError):
        rbo([1], [1], p=1.0)


def test_rbo_equals_the_rbo_package_on_random_rankings() -> None:
    """Against changyaochen/rbo (PyPI ``rbo``; ``make setup`` installs it without its stale numpy<2 pin).

    Equal-length lists: its ``rbo(p=p)`` is the truncated sum and ``ext=True`` is RBO_ext (Webber et al. Eq. 32).
    """
    reference = pytest.importorskip("rbo", reason="the reference package rbo is not installed (make setup does)")
    rng = np.random.default_rng(0)
    for trial in range(50):
        depth, p = int(rng.integers(1, 40)), float(rng.uniform(0.5, 0.99))
        pool = rng.permutation(60)
        a = pool[:depth].tolist()
        b = rng.permutation(pool[: depth + int(rng.integers(0, 20))])[:depth].tolist()  # partly overlapping
        sim = reference.RankingSimilarity(a, b)
        assert rbo(a, b, p=p) == pytest.approx(sim.rbo(p=p), abs=1e-12), trial
        assert rbo(a, b, p=p, extrapolated=True) == pytest.approx(sim.rbo(p=p, ext=True), abs=1e-12), trial


def test_kendall_tau_topk_hand_computed() -> None:
    # [1,2,3] vs [1,3,2]: pairs (1,2) concordant, (1,3) concordant, (2,3) discordant → (2-1)/3
    assert kendall_tau_topk([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)
    # [1,2] vs [2,3]: union {1,2,3}; ranks a = (1, 2, 3[absent]), b = (3[absent], 1, 2)
    # (1,2): a 1<2, b 3>1 discordant; (1,3): a 1<3, b 3>2 discordant; (2,3): a 2<3, b 1<2 concordant → -1/3
    assert kendall_tau_topk([1, 2], [2, 3]) == pytest.approx(-1 / 3)
    assert kendall_tau_topk([4, 5, 6], [4, 5, 6]) == pytest.approx(1.0)
    assert np.isnan(kendall_tau_topk([7], [7]))


def test_kendall_tau_topk_equals_scipy_on_a_full_permutation() -> None:
    rng = np.random.default_rng(0)
    a = list(rng.permutation(12))
    b = list(rng.permutation(12))
    pos_b = {x: r for r, x in enumerate(b)}
    expected = kendalltau(np.arange(12), [pos_b[x] for x in a]).statistic
    assert kendall_tau_topk(a, b) == pytest.approx(expected, abs=1e-12)


def test_topk_lists_order_ties_and_exclusion() -> None:
    s = np.array([[0.1, 0.9, 0.5, 0.9], [3.0, 2.0, 1.0, 0.0]])
    assert topk_lists(s, 3).tolist() == [[1, 3, 2], [0, 1, 2]]  # tie 0.9/0.9 → lower index first
    excl = np.array([[False, True, False, False], [True, False, False, False]])
    assert topk_lists(s, 2, exclude=excl).tolist() == [[3, 2], [1, 2]]
    assert topk_lists(torch.as_tensor(s), 1).tolist() == [[1], [0]]


def test_recommendation_fidelity_identical_and_reversed() -> None:
    rng = np.random.default_rng(1)
    s = rng.normal(size=(20, 50))
    same = recommendation_fidelity(s, s.copy(), k=10, p=0.9)
    assert same["rbo"] == pytest.approx(1 - 0.9**10)
    assert same["rbo_ext"] == pytest.approx(1.0)
    assert same["kendall_tau"] == pytest.approx(1.0)
    assert same["overlap"] == 1.0 and same["top1"] == 1.0
    flipped = recommendation_fidelity(s, -s, k=10)  # top-10 become bottom-10: disjoint lists
    assert flipped["rbo"] == 0.0 and flipped["overlap"] == 0.0
    noisy = recommendation_fidelity(s, s + 0.3 * rng.normal(size=s.shape), k=10)
    assert 0.0 < noisy["rbo"] < same["rbo"]


def test_monosemanticity_identical_top_items_beat_random() -> None:
    rng = np.random.default_rng(2)
    n_items = 200
    feats = rng.normal(size=(n_items, 8))
    coherent = np.arange(30)
    feats[coherent] = feats[0]  # the coherent neuron's 30 top items share one feature vector
    act = rng.random((n_items, 3)) * 0.5
    act[coherent, 0] += 1.0  # neuron 0 fires on the coherent items
    act[:, 2] = 0.0  # a dead neuron
    genres = np.zeros((n_items, 4), dtype=bool)
    genres[np.arange(n_items), rng.integers(0, 4, n_items)] = True
    genres[coherent] = False
    genres[coherent, 1] = True
    out = monosemanticity_scores(act, feats, top=30, genres=genres, n_random=20, seed=0)
    assert out["ms"][0] == pytest.approx(1.0)  # identical vectors: cosine 1 everywhere
    assert out["ms"][0] > out["ms"][1] + 0.5
    assert abs(out["ms"][1]) < 0.2 and abs(out["ms_random"]) < 0.2
    assert out["ms"][2] == 0.0 and out["dead"].tolist() == [False, False, True]
    assert out["ms_mean"] == pytest.approx(out["ms"].mean())
    assert out["genre_share"][0] == 1.0 and out["dominant_genre"][0] == 1
    assert out["genre_share"][1] < 0.7 and np.isnan(out["genre_share"][2])
    assert out["genre_share_random"] < 0.7


def test_concept_control_promotes_and_suppresses() -> None:
    rng = np.random.default_rng(3)
    n_users, n_items = 40, 100
    concept = np.zeros(n_items, dtype=bool)
    concept[:20] = True
    items = np.c_[concept.astype(float), rng.normal(size=n_items)]  # dim 0 = the concept
    item_t = torch.as_tensor(items, dtype=torch.float64)
    z = torch.as_tensor(np.c_[np.full(n_users, 0.3), rng.normal(size=n_users)], dtype=torch.float64)
    table = concept_control(z, lambda c: c, lambda u: u @ item_t.T, 0, concept, values=(0.0, 1.0, 20.0), k=10)
    base = table.set_index("value")
    assert base.loc[1.0, "delta_share"] == 0.0 and base.loc[1.0, "rbo_to_baseline"] == pytest.approx(1 - 0.9**10)
    assert base.loc[20.0, "share"] == 1.0  # promoted: the top-10 are all concept items
    assert base.loc[0.0, "delta_share"] < 0 < base.loc[20.0, "delta_share"]
    assert base.loc[20.0, "changed_users"] > 0.5
    added = concept_control(z, lambda c: c, lambda u: u @ item_t.T, 0, concept, values=(40.0,), mode="add", k=10)
    assert added["share"].iloc[0] == 1.0
