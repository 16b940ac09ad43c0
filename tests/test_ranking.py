"""Ranking evaluation, negative sampling, baselines and grid search on tiny hand-made and planted data."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from recrepro.data.types import LeaveOneOut, Ratings
from recrepro.models.ranking import (
    BPRConfig,
    CMLConfig,
    IALSConfig,
    NegativeSampler,
    NeuMF,
    NeuMFConfig,
    evaluate_ranking,
    fit_bpr,
    fit_cml,
    fit_ials,
    fit_neumf,
    fit_popularity,
    ials_solve,
    synthetic_leave_one_out,
    tune,
)

# 3 users, 6 items. User 2 has no test item and must be skipped.
SCORES = torch.tensor(
    [
        [0.5, 0.9, 0.5, 0.1, 0.2, 2.0],  # user 0: target 0
        [3.0, 0.1, 0.2, 0.6, 0.5, 0.5],  # user 1: target 4
        [9.0, 9.0, 9.0, 9.0, 9.0, 9.0],  # user 2: no target
    ]
)


def _hand_loo() -> LeaveOneOut:
    train = Ratings(np.array([0, 0, 1, 2]), np.array([1, 5, 0, 3]), np.ones(4), n_users=3, n_items=6)
    negatives = np.array([[1, 2, 3], [0, 1, 2], [0, 1, 2]])
    return LeaveOneOut("hand", train, np.array([0, 4, -1]), negatives)


def _matrix_score_fn(users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    return SCORES[users[:, None], items]


def _expected(positions_per_user: list[list[int]], k: int) -> tuple[float, float, float]:
    """(HR@k, nDCG@k, MRR) when each user's target is equally likely at each listed 1-based position."""
    hr = np.mean([np.mean([p <= k for p in pos]) for pos in positions_per_user])
    ndcg = np.mean([np.mean([1 / math.log2(p + 1) if p <= k else 0.0 for p in pos]) for pos in positions_per_user])
    mrr = np.mean([np.mean([1 / p for p in pos]) for pos in positions_per_user])
    return float(hr), float(ndcg), float(mrr)


def test_sampled_protocol_hand_computed_with_ties() -> None:
    # user 0: target 0.5 vs negatives [1, 2, 3] = 0.9 (above), 0.5 (tie), 0.1 -> positions {2, 3}
    # user 1: target 0.5 vs negatives [0, 1, 2] = 3.0 (above), 0.1, 0.2 -> position 2 (training item 0 counts:
    # the sampled protocol ranks against the fixed list as given)
    m = evaluate_ranking(_matrix_score_fn, _hand_loo(), protocol="sampled", ks=(1, 2, 3), device="cpu")
    for k in (1, 2, 3):
        hr, ndcg, mrr = _expected([[2, 3], [2]], k)
        assert m[f"hr@{k}"] == pytest.approx(hr)
        assert m[f"ndcg@{k}"] == pytest.approx(ndcg)
    assert m["mrr"] == pytest.approx(_expected([[2, 3], [2]], 1)[2])
    assert m["hr@2"] == pytest.approx(0.75)  # explicit: user 0 half the time, user 1 always


def test_sampled_protocol_ignores_a_negative_equal_to_the_target() -> None:
    loo = _hand_loo()
    dup = LeaveOneOut("dup", loo.train, loo.test_items, np.array([[0, 3, 3], [4, 1, 2], [0, 1, 2]]))
    # user 0: negatives 0 (the target itself: ignored), 3, 3 (both below) -> position 1, not {1, 2}
    # user 1: negatives 4 (the target: ignored), 1, 2 (below) -> position 1
    m = evaluate_ranking(_matrix_score_fn, dup, protocol="sampled", ks=(1,), device="cpu")
    assert m["hr@1"] == 1.0 and m["mrr"] == 1.0


def test_full_protocol_masks_training_items_and_not_the_target() -> None:
    # user 0 (train {1, 5}): candidates {2, 3, 4} + target; 2 ties, 3 and 4 below; items 1 (0.9) and 5 (2.0)
    # score higher but are training items -> positions {1, 2}. Had the target tied with itself: {1, 2, 3}.
    # user 1 (train {0}): candidates {1, 2, 3, 5}: 3 (0.6) above, 5 ties -> positions {2, 3}; item 0 (3.0) masked.
    m = evaluate_ranking(_matrix_score_fn, _hand_loo(), protocol="full", ks=(1, 2, 3), device="cpu", batch_users=1)
    for k in (1, 2, 3):
        hr, ndcg, mrr = _expected([[1, 2], [2, 3]], k)
        assert m[f"hr@{k}"] == pytest.approx(hr)
        assert m[f"ndcg@{k}"] == pytest.approx(ndcg)
    assert m["mrr"] == pytest.approx(_expected([[1, 2], [2, 3]], 1)[2])
    assert m["hr@1"] == pytest.approx(0.25)


def test_constant_scorer_gets_chance_level() -> None:
    loo = synthetic_leave_one_out(n_negatives=19)
    m = evaluate_ranking(lambda u, i: torch.zeros(i.shape), loo, protocol="sampled", ks=(10,), device="cpu")
    assert m["hr@10"] == pytest.approx(10 / 20)


def test_negative_sampler_never_returns_a_training_item() -> None:
    loo = synthetic_leave_one_out()
    sampler = NegativeSampler(loo.train, torch.device("cpu"))
    users = torch.arange(loo.n_users).repeat_interleave(50)
    neg = sampler.sample(users, 3, torch.Generator().manual_seed(0))
    seen = set(zip(loo.train.users.tolist(), loo.train.items.tolist(), strict=True))
    pairs = set(zip(users[:, None].expand(-1, 3).flatten().tolist(), neg.flatten().tolist(), strict=True))
    assert not pairs & seen
    # and it is not degenerate: user 0 gets (nearly) all of its 34 non-interacted items
    assert len({i for u, i in pairs if u == 0}) >= 30


def test_negative_sampler_rechecking_only_redrawn_draws_changes_nothing() -> None:
    """The sampler re-checks only the draws redrawn in the round before; re-checking every draw every round (the
    reference form) must give the same items, draw for draw, from the same generator state."""
    loo = synthetic_leave_one_out()
    sampler = NegativeSampler(loo.train, torch.device("cpu"))
    users = torch.arange(loo.n_users).repeat_interleave(50)

    def recheck_everything(gen: torch.Generator) -> torch.Tensor:
        u = users[:, None].expand(-1, 4)
        items = torch.randint(loo.n_items, u.shape, generator=gen)
        while (bad := sampler.is_positive(u, items)).any():
            items[bad] = torch.randint(loo.n_items, (int(bad.sum()),), generator=gen)
        return items

    gen_a, gen_b = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for _ in range(3):  # several batches from one generator: its state must advance identically too
        assert torch.equal(sampler.sample(users, 4, gen_a), recheck_everything(gen_b))


def test_negative_sampler_dense_mask_and_binary_search_agree() -> None:
    """The dense mask of training pairs (small matrices) and the binary search in their sorted keys (large
    ones) find the same positives, so they draw the same negatives from the same generator state."""
    loo = synthetic_leave_one_out()
    masked = NegativeSampler(loo.train, torch.device("cpu"))
    searched = NegativeSampler(loo.train, torch.device("cpu"))
    searched.mask = None
    assert masked.mask is not None
    users = torch.arange(loo.n_users).repeat_interleave(loo.n_items)
    items = torch.arange(loo.n_items).repeat(loo.n_users)
    truth = torch.zeros(loo.n_users, loo.n_items, dtype=torch.bool)
    truth[loo.train.users, loo.train.items] = True
    assert torch.equal(masked.is_positive(users, items), truth.flatten())
    assert torch.equal(searched.is_positive(users, items), truth.flatten())
    sample_users = torch.arange(loo.n_users).repeat_interleave(20)
    gen_a, gen_b = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(masked.sample(sample_users, 4, gen_a), searched.sample(sample_users, 4, gen_b))


def test_popularity_is_deterministic_and_counts_items() -> None:
    loo = synthetic_leave_one_out()
    a = fit_popularity(loo, device="cpu", seed=3)
    b = fit_popularity(loo, device="cpu", seed=3)
    assert a.metrics == b.metrics and a.valid_metrics == b.valid_metrics
    # popularity scores must be the training counts: compare with a direct scorer
    counts = torch.as_tensor(np.bincount(loo.train.items, minlength=loo.n_items), dtype=torch.float32)
    direct = evaluate_ranking(lambda u, i: counts[i], loo, protocol="full", device="cpu")
    assert a.metrics["full/hr@10"] == pytest.approx(direct["hr@10"])


FITS = {
    "bpr": (fit_bpr, BPRConfig(dim=16, lr=0.05, batch_size=64, epochs=20, eval_every=5)),
    "cml": (fit_cml, CMLConfig(dim=16, batch_size=64, n_negatives=5, epochs=20, eval_every=5)),
    "ials": (fit_ials, IALSConfig(dim=8, epochs=4)),
    "neumf": (fit_neumf, NeuMFConfig(factors=8, layers=(16, 8), lr=0.01, batch_size=64, epochs=20, eval_every=5)),
}


@pytest.mark.parametrize("name", sorted(FITS))
def test_baselines_beat_random_on_planted_structure(name: str, device: str) -> None:
    fit, cfg = FITS[name]
    loo = synthetic_leave_one_out()  # 20 negatives: random HR@5 = 5/21 = 0.24
    res = fit(loo, cfg, device=device, seed=0, ks=(5, 10))
    assert res.metrics["sampled/hr@5"] > 0.6
    # full ranking: 34 candidates per user, random HR@10 = 10/34 = 0.29
    assert res.metrics["full/hr@10"] > 0.6
    assert res.valid_metrics["sampled/hr@10"] > 0.6
    assert 1 <= res.best_epoch <= res.epochs_run
    assert res.config["refit_on_full_train"] is False


def test_reported_test_metrics_are_those_of_the_validation_selected_epoch() -> None:
    loo = synthetic_leave_one_out()
    cfg = BPRConfig(dim=16, lr=0.05, batch_size=64, epochs=12, eval_every=2, patience=100)
    res = fit_bpr(loo, cfg, device="cpu", seed=1, ks=(10,), protocol_eval=("sampled",), log_test_curve=True)
    h = res.history.set_index("epoch")
    assert h["valid_sampled/hr@10"].idxmax() == res.best_epoch  # first maximum = the kept state
    assert res.metrics["sampled/hr@10"] == pytest.approx(h.loc[res.best_epoch, "test_sampled/hr@10"])


def test_fits_are_deterministic_for_a_seed() -> None:
    loo = synthetic_leave_one_out()
    cfg = BPRConfig(dim=8, lr=0.05, batch_size=64, epochs=3)
    a = fit_bpr(loo, cfg, device="cpu", seed=5, protocol_eval=("sampled",))
    b = fit_bpr(loo, cfg, device="cpu", seed=5, protocol_eval=("sampled",))
    assert a.metrics == b.metrics
    assert a.history["train_loss"].tolist() == b.history["train_loss"].tolist()


def _poisoned(loo: LeaveOneOut, size: int = 10, n_clusters: int = 4) -> LeaveOneOut:
    """Test item = an item outside the user's block; negatives = the user's unobserved in-block items (cycled).

    A model that learned the blocks ranks the poisoned target *last*; a random model ranks it anywhere.
    """
    rng = np.random.default_rng(0)
    test = np.empty(loo.n_users, dtype=np.int64)
    neg = np.empty_like(loo.test_negatives)
    for u in range(loo.n_users):
        block = (u % n_clusters) * size + np.arange(size)
        seen = loo.train.items[loo.train.users == u]
        test[u] = rng.choice(np.setdiff1d(np.arange(loo.n_items), block))
        neg[u] = np.resize(np.setdiff1d(block, seen), neg.shape[1])
    return LeaveOneOut("poisoned", loo.train, test, neg)


def test_tune_selects_on_validation_even_when_test_would_flip_the_choice() -> None:
    poisoned = _poisoned(synthetic_leave_one_out())
    base = BPRConfig(dim=16, batch_size=64, epochs=10, eval_every=5)
    kw = {"device": "cpu", "ks": (10,), "protocol_eval": ("sampled",)}
    result = tune(fit_bpr, {"lr": [0.0, 0.05]}, poisoned, seed=0, base_config=base, **kw)
    best_config, table = result
    # lr = 0 leaves the random initialisation: chance on validation; lr = 0.05 learns the blocks
    assert best_config.lr == 0.05
    assert result.n_trials == 2 == len(table) == table.attrs["n_trials"]
    assert table.loc[table["selected"], "valid/sampled/hr@10"].item() == table["valid/sampled/hr@10"].max()
    assert not any(c.startswith(("test", "sampled/", "full/")) for c in table.columns)  # no test metric
    # the poisoned test set would have picked the other config: check that the flip is real
    untrained = fit_bpr(poisoned, replace(base, lr=0.0), seed=0, **kw)
    assert untrained.metrics["sampled/hr@10"] > result.best_result.metrics["sampled/hr@10"] + 0.2


def test_ials_solve_matches_direct_least_squares() -> None:
    rng = np.random.default_rng(0)
    n_fixed, d, alpha0, reg, nu = 7, 3, 0.3, 0.1, 1.0
    fixed = rng.normal(size=(n_fixed, d))
    rows = [[0, 2, 5], [], [1], [0, 1, 2, 3, 4, 5, 6], [6, 3]]
    indptr = np.cumsum([0] + [len(r) for r in rows])
    indices = np.array([c for r in rows for c in r], dtype=np.int64)
    got = ials_solve(torch.as_tensor(fixed), indptr, indices, alpha0=alpha0, reg=reg, nu=nu, batch_elems=6)
    for r, cols in enumerate(rows):
        # minimise Σ_{c∈cols} (x·f_c - 1)² + α₀ Σ_all (x·f_c)² + λ_r ‖x‖² as one stacked least-squares problem
        lam = reg * (len(cols) + alpha0 * n_fixed) ** nu
        a = np.vstack([fixed[cols], math.sqrt(alpha0) * fixed, math.sqrt(lam) * np.eye(d)])
        b = np.concatenate([np.ones(len(cols)), np.zeros(n_fixed + d)])
        ref = np.linalg.lstsq(a, b, rcond=None)[0]
        np.testing.assert_allclose(got[r].numpy(), ref, rtol=1e-8, atol=1e-10)


def test_ials_objective_never_increases_and_resumes(tmp_path) -> None:
    loo = synthetic_leave_one_out()
    cfg = IALSConfig(dim=8, epochs=4, patience=100)
    full = fit_ials(loo, cfg, device="cpu", seed=0, protocol_eval=("sampled",))
    losses = full.history["train_loss"].to_numpy()
    assert np.all(np.diff(losses) <= 1e-6 * np.abs(losses[:-1]))
    ckpt = tmp_path / "ials.pt"
    fit_ials(loo, replace(cfg, epochs=2), device="cpu", seed=0, checkpoint_path=ckpt, protocol_eval=("sampled",))
    resumed = fit_ials(loo, cfg, device="cpu", seed=0, checkpoint_path=ckpt, protocol_eval=("sampled",))
    assert resumed.metrics == full.metrics
    np.testing.assert_allclose(resumed.history["train_loss"], losses)


@pytest.mark.parametrize("dense_dots_factor", [0, 10**6], ids=["gathered", "gemm"])
def test_cml_squared_distances_and_gradients_equal_the_direct_form(dense_dots_factor: int) -> None:
    """Both ways of computing the dot products (repeated users included) give the direct form's values and
    gradients."""
    from recrepro.models.ranking import CML, CMLConfig

    model = CML(7, 9, CMLConfig(dim=5), torch.Generator().manual_seed(0))
    model.DENSE_DOTS_FACTOR = dense_dots_factor
    users, items = torch.tensor([0, 3, 6, 3]), torch.tensor([[0, 1, 8], [2, 2, 5], [7, 4, 3], [1, 8, 8]])
    direct = (model.user[users][:, None, :] - model.item[items]).pow(2).sum(-1)
    weights = torch.randn(direct.shape, generator=torch.Generator().manual_seed(1))
    expected = torch.autograd.grad((direct * weights).sum(), [model.user, model.item])
    ours = model.squared_distances(users, items)
    torch.testing.assert_close(ours, direct, rtol=1e-5, atol=1e-6)
    for got, want in zip(torch.autograd.grad((ours * weights).sum(), [model.user, model.item]), expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(model.score(users, items), -direct.detach(), rtol=1e-5, atol=1e-6)


def test_cml_loss_and_gradients_equal_differentiating_through_every_negative() -> None:
    """CML's loss takes its gradient through the closest negative only; differentiating the hinge through the
    min over all K distances (ties from a repeated negative included) gives the same loss and gradients."""
    from recrepro.models.ranking import CML, CMLConfig

    model = CML(7, 9, CMLConfig(dim=5, margin=1.0), torch.Generator().manual_seed(0))
    users, pos = torch.tensor([0, 3, 6, 3, 1]), torch.tensor([2, 0, 1, 4, 6])
    neg = torch.tensor([[0, 1, 8], [2, 2, 5], [7, 4, 3], [1, 8, 8], [5, 5, 5]])
    d_pos = (model.user[users] - model.item[pos]).pow(2).sum(-1)
    d_neg = (model.user[users][:, None, :] - model.item[neg]).pow(2).sum(-1)
    impostors = (d_pos[:, None] - d_neg + model.cfg.margin > 0).float().mean(1)
    hinge = torch.relu(model.cfg.margin + d_pos - d_neg.min(dim=1).values)
    expected = (hinge * torch.log(impostors * model.n_items + 1.0)).sum()
    assert expected > 0 and (hinge > 0).sum() >= 2  # the case exercises the gradient
    ours = model.loss(users, pos, neg)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    params = [model.user, model.item]
    for got, want in zip(torch.autograd.grad(ours, params), torch.autograd.grad(expected, params), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_clip_rows_of_a_subset_leaves_the_other_rows() -> None:
    from recrepro.models.ranking import clip_rows_

    w = torch.tensor([[3.0, 4.0], [0.3, 0.4], [6.0, 8.0]])
    clip_rows_(w, 1.0, torch.tensor([0, 1]))
    torch.testing.assert_close(w, torch.tensor([[0.6, 0.8], [0.3, 0.4], [6.0, 8.0]]))


def test_neumf_logits_and_log_loss_by_hand() -> None:
    """One logit = w·[p_g ⊙ q_g, MLP([p_m, q_m])] + b; the loss is the mean log loss over 1 + K instances."""
    cfg = NeuMFConfig(factors=3, layers=(4, 2))
    model = NeuMF(2, 5, cfg, torch.Generator().manual_seed(0))
    users, pos, neg = torch.tensor([0, 1]), torch.tensor([1, 4]), torch.tensor([[0, 2], [3, 3]])
    items = torch.cat([pos[:, None], neg], dim=1)
    expected = torch.empty(2, 3)
    for b in range(2):
        for k in range(3):
            u, i = users[b], items[b, k]
            hidden = torch.relu(model.mlp[0](torch.cat([model.user_mlp[u], model.item_mlp[i]])))
            expected[b, k] = model.out(torch.cat([model.user_gmf[u] * model.item_gmf[i], hidden]))[0]
    torch.testing.assert_close(model.score(users, items), expected)
    labels = torch.tensor([[1.0, 0.0, 0.0]]).expand(2, -1)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(expected, labels)
    torch.testing.assert_close(model.loss(users, pos, neg), bce)
