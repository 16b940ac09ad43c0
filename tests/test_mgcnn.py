"""Monti et al. (2017) sRMGCNN/RMGCNN and the graph MC baselines: spectral correctness, masking, tiny fits."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from numpy.polynomial import chebyshev as cheb

from recrepro.data.types import Ratings, RatingSplit
from recrepro.models.graph_mc import GMCConfig, GRALSConfig, SoftImputeConfig, fit_gmc, fit_grals, fit_soft_impute
from recrepro.models.mgcnn import (
    SRMGCNN,
    MGCNNConfig,
    bivariate_chebyshev_basis,
    build_model,
    build_problem,
    chebyshev_basis,
    fit_mgcnn,
    init_split,
    mgcnn_loss,
    normalized_laplacian,
    rescaled_laplacian,
    sparse_to_torch,
    symmetric_spmm,
)


def random_graph(n: int, rng: np.random.Generator, p: float = 0.3) -> sp.csr_matrix:
    """Symmetric weighted graph with one isolated node (the last) and one self-loop (ignored by L)."""
    a = np.triu(rng.random((n, n)) < p, 1) * rng.uniform(0.5, 2.0, (n, n))
    a = a + a.T
    a[-1, :] = a[:, -1] = 0.0
    a[0, 0] = 1.0
    return sp.csr_matrix(a)


def spectral(lap: sp.csr_matrix, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition of L with eigenvalues rescaled like ``rescaled_laplacian``."""
    lam, u = np.linalg.eigh(lap.toarray())
    lam_t = 2.0 * lam / lam.max() - 1.0 if mode == "exact" else lam - 1.0
    return lam_t, u


def toy_split(seed: int = 0, m: int = 30, n: int = 40) -> RatingSplit:
    """Low-rank ratings on [1, 5] whose factors are constant (+ noise) on graph clusters; 40/10/20 % split."""
    rng = np.random.default_rng(seed)
    cu, ci = rng.integers(0, 3, m), rng.integers(0, 4, n)
    u = rng.normal(size=(3, 3))[cu] + 0.1 * rng.normal(size=(m, 3))
    v = rng.normal(size=(4, 3))[ci] + 0.1 * rng.normal(size=(n, 3))
    x = u @ v.T
    x = 1.0 + 4.0 * (x - x.min()) / (x.max() - x.min())
    au = (cu[:, None] == cu[None, :]).astype(float)
    ai = (ci[:, None] == ci[None, :]).astype(float)
    np.fill_diagonal(au, 0.0)
    np.fill_diagonal(ai, 0.0)
    draw = rng.random((m, n))

    def ratings(mask: np.ndarray) -> Ratings:
        r, c = np.nonzero(mask)
        return Ratings(r, c, x[r, c], m, n)

    return RatingSplit(
        "toy",
        train=ratings(draw < 0.4),
        valid=ratings((draw >= 0.4) & (draw < 0.5)),
        test=ratings(draw >= 0.8),
        user_graph=sp.csr_matrix(au),
        item_graph=sp.csr_matrix(ai),
    )


def global_mean_rmse(split: RatingSplit) -> float:
    return float(np.sqrt(np.mean((split.test.values - split.train.values.mean()) ** 2)))


# --- graph utilities ------------------------------------------------------------------------------------


def test_normalized_laplacian_matches_scipy_with_isolated_node_and_self_loop():
    adj = random_graph(9, np.random.default_rng(1))
    ours = normalized_laplacian(adj).toarray()
    ref = sp.csgraph.laplacian(adj, normed=True).toarray()
    np.testing.assert_allclose(ours, ref, atol=1e-12)
    assert ours[-1, -1] == 0.0 and not ours[-1].any()  # isolated node: zero row


@pytest.mark.parametrize("mode", ["simplified", "exact"])
def test_chebyshev_filter_equals_dense_spectral_filter(mode):
    rng = np.random.default_rng(2)
    lap = normalized_laplacian(random_graph(12, rng))
    lap_t = sparse_to_torch(rescaled_laplacian(lap, mode), dtype=torch.float64)
    x = rng.normal(size=(12, 3))
    theta = rng.normal(size=5)  # p = 4
    basis = chebyshev_basis(lap_t, torch.as_tensor(x), order=4)
    ours = sum(t * b for t, b in zip(theta, basis, strict=True)).numpy()
    lam_t, u = spectral(lap, mode)
    ref = u @ (cheb.chebval(lam_t, theta)[:, None] * (u.T @ x))
    np.testing.assert_allclose(ours, ref, atol=1e-10)


@pytest.mark.parametrize("layout", ["coo", "csr"])
def test_symmetric_spmm_value_and_gradient_match_dense(layout):
    rng = np.random.default_rng(5)
    lap = rescaled_laplacian(normalized_laplacian(random_graph(11, rng)))
    a = sparse_to_torch(lap, dtype=torch.float64, layout=layout)
    dense = torch.as_tensor(lap.toarray())
    x = torch.tensor(rng.normal(size=(11, 4)), requires_grad=True)
    weight = torch.as_tensor(rng.normal(size=(11, 4)))
    (grad,) = torch.autograd.grad((symmetric_spmm(a, x) * weight).sum(), x)
    (ref,) = torch.autograd.grad(((dense @ x) * weight).sum(), x)
    torch.testing.assert_close(symmetric_spmm(a, x), dense @ x)
    torch.testing.assert_close(grad, ref)


def test_exact_rescaling_fills_the_unit_interval():
    lap = normalized_laplacian(random_graph(15, np.random.default_rng(3)))
    lam = np.linalg.eigvalsh(rescaled_laplacian(lap, "exact").toarray())
    assert lam.min() >= -1 - 1e-9 and lam.max() == pytest.approx(1.0)


def test_bivariate_filter_equals_dense_spectral_filter():
    rng = np.random.default_rng(4)
    lr, lc = normalized_laplacian(random_graph(7, rng)), normalized_laplacian(random_graph(9, rng, 0.4))
    x = rng.normal(size=(7, 9))
    to_t = lambda lap: sparse_to_torch(rescaled_laplacian(lap, "simplified"), dtype=torch.float64)  # noqa: E731
    stack = bivariate_chebyshev_basis(to_t(lr), to_t(lc), torch.as_tensor(x), order=2).numpy()
    assert stack.shape == (7, 9, 9)
    (lam_r, ur), (lam_c, uc) = spectral(lr, "simplified"), spectral(lc, "simplified")
    for i in range(3):
        for j in range(3):
            gi = ur @ np.diag(cheb.chebval(lam_r, np.eye(3)[i])) @ ur.T
            gj = uc @ np.diag(cheb.chebval(lam_c, np.eye(3)[j])) @ uc.T
            np.testing.assert_allclose(stack[:, :, 3 * i + j], gi @ x @ gj, atol=1e-10)


# --- models ---------------------------------------------------------------------------------------------


def test_recurrent_diffusion_output_shapes_and_updates():
    split = toy_split()
    cfg = MGCNNConfig(rank=4, diffusion_steps=3)
    problem = build_problem(split, cfg, "cpu")
    model = build_model(problem, cfg, seed=0)
    out = model()
    assert out.dense().shape == (30, 40) and out.w.shape == (30, 4) and out.h.shape == (40, 4)
    assert not torch.allclose(out.w, model.w0) and not torch.allclose(out.h, model.h0)  # both sides diffuse

    full = build_model(problem, replace(cfg, model="rmgcnn"), seed=0)
    x = full().x
    assert x.shape == (30, 40) and not torch.allclose(x, full.x0)
    assert full.conv.weight.shape == (25, 32)  # (p+1)^2 bivariate polynomials -> 32 features

    one_graph = replace(split, item_graph=None)  # Douban-like: user graph only
    model1 = build_model(build_problem(one_graph, cfg, "cpu"), cfg, seed=0)
    assert isinstance(model1, SRMGCNN) and model1.diffuse_w and not model1.diffuse_h
    assert isinstance(model1.h0, torch.nn.Parameter)  # authors: free trainable H
    out1 = model1()
    torch.testing.assert_close(out1.h, model1.h0)
    cfg2 = replace(cfg, ungraphed_factor="lstm")
    model2 = build_model(build_problem(one_graph, cfg2, "cpu"), cfg2, seed=0)
    assert model2.diffuse_h and model2.net_h.conv.weight.shape == (4, 32)  # identity filter only


@pytest.mark.parametrize("target", ["matrix", "factors"])
def test_factorised_loss_equals_the_dense_formula(target):
    """sRMGCNN never builds X = W Hᵀ with gradients; its loss and gradients must match the dense definition."""
    split = toy_split()
    cfg = MGCNNConfig(rank=3, diffusion_steps=2, gamma=0.3, gamma_w=0.2, gamma_h=0.1, dirichlet_target=target)
    problem = build_problem(split, cfg, "cpu")
    net = build_model(problem, cfg, seed=0)
    loss, _ = mgcnn_loss(net(), problem, cfg)
    grads = torch.autograd.grad(loss, list(net.parameters()))

    out = net()
    x = out.w @ out.h.T
    lo, hi = split.rating_range
    xhat = lo + (hi - lo) * (x - x.min()) / (x.max() - x.min())
    tr = split.train
    data = ((xhat[tr.users, tr.items] - torch.as_tensor(tr.values)) ** 2).mean()
    lr = torch.as_tensor(normalized_laplacian(split.user_graph).toarray(), dtype=torch.float32)
    lc = torch.as_tensor(normalized_laplacian(split.item_graph).toarray(), dtype=torch.float32)
    if target == "matrix":
        dirichlet = torch.trace(x.T @ lr @ x) + torch.trace(x @ lc @ x.T)
    else:
        dirichlet = torch.trace(out.w.T @ lr @ out.w) + torch.trace(out.h.T @ lc @ out.h)
    ref = data + 0.15 * dirichlet + 0.1 * out.w.pow(2).mean() + 0.05 * out.h.pow(2).mean()
    ref_grads = torch.autograd.grad(ref, list(net.parameters()))
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-6)
    for g, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g, r, rtol=1e-3, atol=1e-5)  # float32, different summation order


@pytest.mark.parametrize("model", ["srmgcnn", "rmgcnn"])
def test_test_values_never_reach_the_loss_or_gradients(model):
    split = toy_split()
    cfg = MGCNNConfig(model=model, rank=3, diffusion_steps=2, gamma=1e-2, gamma_w=0.1, gamma_h=0.1)

    def loss_and_grads(s: RatingSplit) -> tuple[float, list[torch.Tensor]]:
        net = build_model(build_problem(s, cfg, "cpu"), cfg, seed=0)
        loss, _ = mgcnn_loss(net(), build_problem(s, cfg, "cpu"), cfg)
        loss.backward()
        return float(loss.detach()), [p.grad.clone() for p in net.parameters()]

    base_loss, base_grads = loss_and_grads(split)
    test = split.test
    shuffled = Ratings(test.users, test.items, 6.0 - test.values + 0.37, test.n_users, test.n_items)
    loss2, grads2 = loss_and_grads(replace(split, test=shuffled))
    assert loss2 == base_loss
    for g1, g2 in zip(base_grads, grads2, strict=True):
        assert torch.equal(g1, g2)
    # the check has power: changing one *training* value does change the loss
    tr = split.train
    bumped = tr.values.copy()
    bumped_idx = np.flatnonzero(~init_split(tr, cfg.init_fraction, cfg.init_seed))[0]
    bumped[bumped_idx] += 1.0
    loss3, _ = loss_and_grads(replace(split, train=Ratings(tr.users, tr.items, bumped, tr.n_users, tr.n_items)))
    assert loss3 != base_loss


def test_tiny_fit_beats_global_mean(device: str):
    split = toy_split()
    res = fit_mgcnn(split, MGCNNConfig(rank=3, n_iterations=160, eval_every=20), device=device, seed=0)
    assert res.metrics["rmse"] < 0.6 * global_mean_rmse(split)
    assert res.best_epoch == res.history.loc[res.history["valid_rmse"].idxmin(), "iteration"]
    assert res.metrics["rmse"] == pytest.approx(res.history.set_index("iteration").loc[res.best_epoch, "test_rmse"])
    assert res.test_predictions.shape == (len(split.test),)


def test_selection_modes():
    split = toy_split()
    cfg = MGCNNConfig(rank=3, n_iterations=25, eval_every=1, diffusion_steps=3)
    with pytest.raises(ValueError, match="split.valid"):
        fit_mgcnn(replace(split, valid=None), cfg, device="cpu")
    paper = fit_mgcnn(replace(split, valid=None), cfg, device="cpu", selection="paper")
    assert paper.config["selection"] == "paper" and paper.valid_metrics == {}
    # every iteration evaluated: the selected one is the argmin of the logged training loss
    h = paper.history
    assert paper.best_epoch == h.loc[h["train_loss"].idxmin(), "iteration"]
    assert paper.metrics["rmse"] == pytest.approx(h.set_index("iteration").loc[paper.best_epoch, "test_rmse"])
    assert {"rmse", "rmse_raw"} <= set(paper.metrics)
    valid = fit_mgcnn(split, cfg, device="cpu", selection="validation")
    assert valid.config["selection"] == "validation" and "rmse" in valid.valid_metrics


def test_checkpoint_resume_matches_an_uninterrupted_run(tmp_path):
    split = toy_split()
    cfg = MGCNNConfig(rank=3, n_iterations=20, eval_every=5, diffusion_steps=2, checkpoint_every=10)
    full = fit_mgcnn(split, cfg, device="cpu", seed=3)
    ckpt = tmp_path / "mgcnn.pt"
    first = fit_mgcnn(split, replace(cfg, n_iterations=10), device="cpu", seed=3, checkpoint_path=ckpt)
    assert first.epochs_run == 10 and ckpt.exists()
    resumed = fit_mgcnn(split, cfg, device="cpu", seed=3, checkpoint_path=ckpt)
    assert resumed.epochs_run == 20
    cols = ["iteration", "train_loss", "valid_rmse", "test_rmse"]
    np.testing.assert_array_equal(resumed.history[cols].to_numpy(), full.history[cols].to_numpy())
    assert resumed.metrics == full.metrics
    with pytest.raises(ValueError, match="different run"):
        fit_mgcnn(split, replace(cfg, gamma=1.0), device="cpu", seed=3, checkpoint_path=ckpt)


def test_presets_carry_the_notebook_values():
    douban = MGCNNConfig.preset("douban")
    assert (douban.gamma, douban.gamma_h, douban.gamma_w, douban.dirichlet_normalize) == (1e2, 1e2, 1.0, True)
    assert MGCNNConfig.preset("yahoo_music").eval_every == 100
    assert MGCNNConfig.preset("synthetic_netflix").rank == 15
    assert MGCNNConfig.preset("synthetic_netflix", model="rmgcnn").gamma == 1e-8
    assert MGCNNConfig.preset("ml-100k-monti/monti").n_iterations == 10_000
    with pytest.raises(ValueError):
        MGCNNConfig.preset("netflix")


# --- baselines ------------------------------------------------------------------------------------------


def test_graph_mc_baselines_recover_a_low_rank_matrix(device: str):
    split = toy_split()
    mean = global_mean_rmse(split)
    si = fit_soft_impute(split, SoftImputeConfig(lambda_fractions=(0.3, 0.1, 0.03, 0.01), max_iter=50), device=device)
    assert si.metrics["rmse"] < 0.3 * mean
    assert si.config["selected"]["lambda_fraction"] == si.history.loc[si.best_epoch, "lambda_fraction"]
    grals = fit_grals(
        split, GRALSConfig(rank=3, lambda_ridge=(0.1,), lambda_graph=(0.1, 1.0), n_outer=10), device=device
    )
    assert grals.metrics["rmse"] < 0.3 * mean
    gmc = fit_gmc(split, GMCConfig(lambda_fractions=(0.1, 0.03), gammas=(0.1,), max_iter=50), device=device)
    assert gmc.metrics["rmse"] < 0.5 * mean
    with pytest.raises(ValueError, match="split.valid"):
        fit_soft_impute(replace(split, valid=None), device="cpu")
