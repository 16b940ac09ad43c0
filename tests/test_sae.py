"""Arviv et al. 2025: implicit recommenders, the held-out protocol, and the (prediction-aware) SAE."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from recrepro.data.types import Ratings
from recrepro.models.implicit_recommenders import (
    NCF,
    BiasedMF,
    BiasedMFConfig,
    NCFConfig,
    build_heldout_split,
    evaluate_heldout,
    fit_implicit_recommender,
    sample_negatives,
)
from recrepro.models.sae import (
    ML1M_MF_SAE,
    SAEConfig,
    SparseAutoencoder,
    fit_sae,
    prediction_loss,
    reconstruction_only,
    sae_objective,
    split_users,
)


def _synthetic(n_users: int = 120, n_items: int = 60, per_user: int = 15, seed: int = 0) -> Ratings:
    """Each user's positives are the top items of a rank-3 score plus Gumbel noise (learnable structure)."""
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n_users, 3)) @ rng.normal(size=(3, n_items)) + rng.gumbel(size=(n_users, n_items))
    top = np.argsort(-s, 1)[:, :per_user]
    users = np.repeat(np.arange(n_users), per_user)
    return Ratings(users, top.ravel(), rng.integers(1, 6, users.size), n_users, n_items)


_MF_SMALL = BiasedMFConfig(max_epochs=20, patience=20, batch_size=64)  # the authors' SGD, more steps per epoch


@pytest.fixture(scope="module")
def split():
    return build_heldout_split(_synthetic(), seed=0, drop_users=(7,))


@pytest.fixture(scope="module")
def mf(split) -> BiasedMF:
    torch.set_num_threads(1)
    model, _ = fit_implicit_recommender("mf", split, _MF_SMALL, device="cpu", seed=0)
    return model


# ------------------------------------------------------------------------------------------------ protocol


def test_heldout_protocol(split) -> None:
    r = _synthetic()
    assert split.n_users == r.n_users - 1 and split.n_items == r.n_items
    assert eval(split.notes["dropped_users"]) == {7: 15}  # the dropped user and its number of interactions
    assert split.user_index.tolist() == [u for u in range(r.n_users) if u != 7]
    assert (split.test_positives >= 0).all() and (split.test_negatives >= 0).all()
    assert split.test_positives.shape == (119, 5) and split.test_negatives.shape == (119, 5)
    for u in range(split.n_users):
        src = split.user_index[u]
        mine = set(r.items[r.users == src])
        train_u = set(split.train.items[split.train.users == u])
        held = set(split.test_positives[u])
        assert len(held) == 5 and held <= mine and not held & train_u
        assert train_u | held == mine  # binarised: every rating became one positive, nothing lost
        assert len(set(split.test_negatives[u])) == 5 and not set(split.test_negatives[u]) & mine
    again = build_heldout_split(r, seed=0, drop_users=(7,))
    assert np.array_equal(again.test_positives, split.test_positives)
    other = build_heldout_split(r, seed=1, drop_users=(7,))
    assert not np.array_equal(other.test_positives, split.test_positives)
    valid = split.validation_view(seed=3)
    assert len(valid.train) == len(split.train) - split.n_users  # one validation positive carved per user
    train_pairs = set(zip(split.train.users.tolist(), split.train.items.tolist(), strict=True))
    valid_pos = {(u, int(i)) for u in range(split.n_users) for i in valid.test_positives[u]}
    valid_neg = {(u, int(i)) for u in range(split.n_users) for i in valid.test_negatives[u]}
    test_pairs = {
        (u, int(i)) for u in range(split.n_users) for i in [*split.test_positives[u], *split.test_negatives[u]]
    }
    assert valid_pos <= train_pairs and not valid_neg & (train_pairs | test_pairs)


def test_sample_negatives_respects_bans_and_counts() -> None:
    banned = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 1], [1, 1, 1, 1, 1, 0]], dtype=float))
    counts = np.array([3, 2, 5])
    u, i = sample_negatives(counts, banned, np.ones(6), torch.Generator().manual_seed(0))
    assert np.bincount(u, minlength=3).tolist() == [3, 2, 1]  # user 2 has a single allowed item
    assert not banned[u, i].any()
    for user in range(3):
        assert len(set(i[u == user])) == (u == user).sum()  # without replacement


def test_mf_learns_and_is_deterministic(split) -> None:
    cfg = _MF_SMALL
    m1, r1 = fit_implicit_recommender("mf", split, cfg, device="cpu", seed=0)
    m2, r2 = fit_implicit_recommender("mf", split, cfg, device="cpu", seed=0)
    assert torch.equal(m1.P, m2.P) and r1.metrics == r2.metrics
    # 5 targets among ~50 candidates: chance HR@10 ≈ 0.2; the low-rank structure must be picked up
    assert r1.metrics["hr@10"] > 0.4 and r1.metrics["auc_sampled"] > 0.65
    assert {"ndcg@10", "mrr", "authors_hr@10", "mpr"} <= set(r1.metrics)
    assert r1.best_epoch == r1.history["valid_ndcg@10"].idxmax() + 1


def test_constant_scorer_gets_chance_level_metrics(split) -> None:
    model = NCF(split.n_users, split.n_items, 4, (8,), False, 0.1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.output.weight.zero_()  # every (user, item) gets the same score
    m = evaluate_heldout(model, split)
    n_train = np.bincount(split.train.users, minlength=split.n_users)
    n_cand = split.n_items - n_train - 4  # all items but the training ones and the 4 other held-out positives
    assert m["hr@10"] == pytest.approx(np.mean(np.minimum(10, n_cand) / n_cand))  # random order among ties
    assert m["authors_hr@10"] == 0.0 and m["auc_sampled"] == 0.5
    assert m["mpr"] == pytest.approx(100 * (split.n_items - 1) / 2 / split.n_items)


def test_ncf_fit_is_deterministic(split) -> None:
    cfg = NCFConfig(max_epochs=2, lr=0.01)
    torch.manual_seed(123)  # the global RNG must play no part
    m1, r1 = fit_implicit_recommender("ncf", split, cfg, device="cpu", seed=5)
    torch.manual_seed(456)
    m2, r2 = fit_implicit_recommender("ncf", split, cfg, device="cpu", seed=5)
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m2.state_dict()[k]), k
    assert r1.metrics == r2.metrics


def test_recommender_checkpoint_resume(split, tmp_path) -> None:
    cfg = BiasedMFConfig(max_epochs=2, patience=10)
    full, rf = fit_implicit_recommender("mf", split, cfg, device="cpu", seed=4)
    ck = tmp_path / "mf.pt"
    fit_implicit_recommender("mf", split, replace(cfg, max_epochs=1), device="cpu", seed=4, checkpoint_path=ck)
    resumed, rr = fit_implicit_recommender("mf", split, cfg, device="cpu", seed=4, checkpoint_path=ck)
    assert torch.equal(full.P, resumed.P) and rf.metrics == rr.metrics
    with pytest.raises(ValueError):
        fit_implicit_recommender("mf", split, replace(cfg, lr=0.1), device="cpu", seed=4, checkpoint_path=ck)


def test_ncf_score_matrix_matches_pairwise_scores() -> None:
    g = torch.Generator().manual_seed(0)
    for gmf in (False, True):
        model = NCF(7, 9, 4, (8, 4), gmf, 0.1, g)
        u, i = torch.arange(7), torch.arange(9)
        mat = model.score_matrix(u, i, chunk_elements=40)  # force several chunks
        pairs = model.score(u.repeat_interleave(9), i.repeat(7)).view(7, 9)
        assert torch.allclose(mat, pairs, atol=1e-6)


# ------------------------------------------------------------------------------------------------ SAE


def test_recommender_stays_frozen(split, mf) -> None:
    assert all(p.grad is None for p in mf.parameters())  # fit_implicit_recommender hands it back clean
    before = {k: v.clone() for k, v in mf.state_dict().items()}
    tr, te = split_users(split.n_users, seed=0)
    fit_sae(mf, replace(ML1M_MF_SAE, epochs=2, latent_dim=6), train_ids=tr, test_ids=te, device="cpu", seed=0)
    for k, v in mf.state_dict().items():
        assert torch.equal(v, before[k]), k  # bit-identical
    assert all(p.grad is None for p in mf.parameters())
    assert all(p.requires_grad for p in mf.parameters())  # flags restored as they came


def test_topk_keeps_exactly_k_units() -> None:
    sae = SparseAutoencoder(5, 12, activation="topk", topk=3, layernorm=False, minmax="none")
    with torch.no_grad():
        sae.latent_bias.fill_(10.0)  # every pre-activation positive: ReLU keeps all k selected units
    z, info = sae.encode(torch.randn(50, 5))
    assert ((z > 0).sum(1) == 3).all()
    top3 = torch.topk(info["pre_act"], 3, dim=1).indices
    assert torch.equal(torch.sort(top3, 1).values, torch.sort(torch.nonzero(z)[:, 1].view(50, 3), 1).values)
    with torch.no_grad():
        sae.latent_bias.fill_(-10.0)
    assert ((sae.encode(torch.randn(50, 5))[0] > 0).sum(1) <= 3).all()  # never more than k


def test_tied_decoder_shares_the_encoder_weight() -> None:
    tied = SparseAutoencoder(4, 6, tied=True, layernorm=False, minmax="none")
    untied = SparseAutoencoder(4, 6, tied=False, layernorm=False, minmax="none")
    assert sum(p.numel() for p in tied.parameters()) == 4 * 6 + 4 + 6
    assert sum(p.numel() for p in untied.parameters()) == 2 * 4 * 6 + 4 + 6
    assert tied.decoder_matrix.data_ptr() == tied.encoder.weight.data_ptr()
    z = torch.rand(3, 6)
    info = {"lo": torch.zeros(1, 4), "range": torch.ones(1, 4)}
    before = tied.decode(z, info)
    with torch.no_grad():
        tied.encoder.weight.mul_(2.0)
    assert torch.allclose(tied.decode(z, info) - tied.pre_bias, 2 * (before - tied.pre_bias))


def test_prediction_term_is_zero_for_perfect_reconstruction(mf) -> None:
    u, i = torch.arange(10), torch.arange(12)
    pu, qi = mf.P[u].detach(), mf.Q[i].detach()
    assert prediction_loss(mf, u, i, pu, qi, pu.clone(), qi.clone(), "matrix").item() == 0.0
    assert prediction_loss(mf, u, i, pu, qi, pu + 0.1, qi, "matrix").item() > 0
    ncf = NCF(10, 12, 4, (8,), False, 0.5, torch.Generator().manual_seed(1))
    eu, ei = ncf.user_embedding[u].detach(), ncf.item_embedding[torch.arange(10)].detach()
    pairs_i = torch.arange(10)
    assert prediction_loss(ncf, u, pairs_i, eu, ei, eu.clone(), ei.clone(), "pairs").item() == 0.0
    assert prediction_loss(ncf, u, pairs_i, eu, ei, eu + 0.5, ei, "pairs").item() > 0


def test_matryoshka_sums_prefix_terms(mf) -> None:
    cfg = replace(ML1M_MF_SAE, latent_dim=6, loss_space="original")
    sae = SparseAutoencoder(mf.P.shape[1], 6, layernorm=True, minmax="batch").eval()  # eval: fixed min-max stats
    sae.set_minmax_stats(mf.P.detach(), 0)
    sae.set_minmax_stats(mf.Q.detach(), 1)
    u, i = torch.arange(20), torch.arange(15)
    pu, qi = mf.P[u].detach(), mf.Q[i].detach()
    with torch.no_grad():
        zu, info_u = sae.encode(pu, 0)
        zi, info_i = sae.encode(qi, 1)

        def terms(m: int) -> tuple[float, float]:
            mu, mi = zu.clone(), zi.clone()
            mu[:, m:] = 0.0
            mi[:, m:] = 0.0
            ru, ri = sae.decode(mu, info_u), sae.decode(mi, info_i)
            recon = torch.nn.functional.mse_loss(ru, pu) + torch.nn.functional.mse_loss(ri, qi)
            return float(recon), float(prediction_loss(mf, u, i, pu, qi, ru, ri, "matrix"))

        plain = sae_objective(sae, mf, cfg, "both", u, i, pu, qi)
        nested = sae_objective(sae, mf, replace(cfg, matryoshka_prefixes=(2, 6)), "both", u, i, pu, qi)
        (r2, p2), (r6, p6) = terms(2), terms(6)
    assert float(plain["recon"]) == pytest.approx(r6, rel=1e-5) and float(plain["pred"]) == pytest.approx(p6, rel=1e-5)
    assert float(nested["recon"]) == pytest.approx(r2 + r6, rel=1e-5)
    assert float(nested["pred"]) == pytest.approx(p2 + p6, rel=1e-5)
    assert float(nested["kl"]) == pytest.approx(float(plain["kl"]))  # sparsity once, on the full code
    with pytest.raises(ValueError):
        SAEConfig(latent_dim=6, matryoshka_prefixes=(4, 2, 6))


def test_eval_codes_do_not_depend_on_the_batch(mf) -> None:
    sae = SparseAutoencoder(mf.P.shape[1], 8, minmax="batch").eval()
    sae.set_minmax_stats(mf.P.detach(), 0)
    x = mf.P.detach()
    assert torch.allclose(sae.encode(x[:5])[0], sae.encode(x)[0][:5])
    assert torch.allclose(sae(x[:5])[0], sae(x)[0][:5])


def _anisotropic_mf(seed: int) -> BiasedMF:
    """User variance sits in dims the items ignore: an MSE-optimal code keeps the wrong directions."""
    g = torch.Generator().manual_seed(seed)
    m = BiasedMF(250, 120, 6, 0.1, 0.0, g)
    with torch.no_grad():
        m.P[:, :3] = torch.randn(250, 3, generator=g) * 3.0
        m.P[:, 3:] = torch.randn(250, 3, generator=g) * 0.3
        m.Q[:, :3] = torch.randn(120, 3, generator=g) * 0.05
        m.Q[:, 3:] = torch.randn(120, 3, generator=g)
    return m


def test_prediction_aware_beats_reconstruction_only_on_a_synthetic_case(device: str) -> None:
    cfg = SAEConfig(
        latent_dim=4,
        layernorm=False,
        minmax="none",
        loss_space="original",
        mse_weight=0.01,
        pred_weight=1.0,
        kl_weight=0.0,
        epochs=20,
        batch_size=16,
        lr=2e-2,
        patience=100,
        fidelity_k=10,
    )
    mf = _anisotropic_mf(0)
    tr, te = split_users(250, seed=0)
    _, aware = fit_sae(mf, cfg, side="user", train_ids=tr, test_ids=te, device=device, seed=0)
    _, plain = fit_sae(mf, reconstruction_only(cfg), side="user", train_ids=tr, test_ids=te, device=device, seed=0)
    assert aware.metrics["rbo"] > plain.metrics["rbo"] + 0.05
    assert aware.metrics["pred"] < plain.metrics["pred"]
    assert plain.metrics["recon_mse_user"] < aware.metrics["recon_mse_user"]  # the price: worse embeddings


def test_sae_checkpoint_resume(split, mf, tmp_path) -> None:
    tr, te = split_users(split.n_users, seed=1)
    cfg = replace(ML1M_MF_SAE, epochs=3, latent_dim=6, patience=10)
    kw = {"train_ids": tr, "test_ids": te, "device": "cpu", "seed": 2, "interactions": split.train}
    full, rf = fit_sae(mf, cfg, **kw)
    ck = tmp_path / "sae.pt"
    fit_sae(mf, replace(cfg, epochs=1), checkpoint_path=ck, **kw)
    resumed, rr = fit_sae(mf, cfg, checkpoint_path=ck, **kw)
    for k, v in full.state_dict().items():
        assert torch.equal(v, resumed.state_dict()[k]), k
    assert rf.metrics == rr.metrics and rr.epochs_run == 3
