"""NNMF (Dziugaite & Roy 2015): model shapes, the alternating schedule, determinism, learning, resume."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import recrepro.models.nnmf as nnmf_mod
from recrepro.data.types import Ratings, RatingSplit
from recrepro.models.nnmf import NNMF, NNMFConfig, fit_nnmf, make_optimizers, train_phase

SMALL = dict(d=3, d_prime=6, hidden=(8, 8))


def low_rank_split(
    n_users: int = 40, n_items: int = 30, rank: int = 2, density: float = 0.6, seed: int = 0
) -> RatingSplit:
    """Continuous ratings 3 + 0.8·A Bᵀ (rank 2, + small noise, clipped to 1..5) on ~60% of the cells, split 80/10/10."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n_users, rank))
    b = rng.normal(size=(n_items, rank))
    full = np.clip(3.0 + 0.8 * a @ b.T + 0.05 * rng.normal(size=(n_users, n_items)), 1.0, 5.0)
    users, items = np.nonzero(rng.random((n_users, n_items)) < density)
    part = rng.choice(3, size=len(users), p=[0.8, 0.1, 0.1])

    def take(k: int) -> Ratings:
        m = part == k
        return Ratings(users[m], items[m], full[users[m], items[m]], n_users, n_items)

    return RatingSplit("synthetic-low-rank", take(0), take(2), valid=take(1))


def _tensors(split: RatingSplit) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    return split.train.to_torch("cpu")


def _snapshot(params: list[torch.nn.Parameter]) -> list[torch.Tensor]:
    return [p.detach().clone() for p in params]


def _opt_state(opt: torch.optim.Optimizer) -> list[torch.Tensor]:
    """square_avg and step of every parameter of ``opt`` (cloned)."""
    out = []
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state[p]
            out += [st["square_avg"].clone(), torch.as_tensor(st["step"]).clone()]
    return out


def _same(xs: list[torch.Tensor], ys: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(xs, ys, strict=True))


def test_forward_shapes_and_parameter_blocks() -> None:
    model = NNMF(7, 5, d=4, d_prime=6, hidden=(9, 8, 7), generator=torch.Generator().manual_seed(0))
    users, items = torch.tensor([0, 6, 3, 3]), torch.tensor([4, 0, 2, 2])
    out = model(users, items)
    assert out.shape == (4,)
    assert torch.allclose(out[2], out[3])  # same (user, item) -> same prediction
    assert model.user_latent.shape == (7, 4) and model.item_latent.shape == (5, 4)
    assert model.user_latent_prime.shape == (7, 6) and model.item_latent_prime.shape == (5, 6)
    # MLP input is [U_n, V_m, U'_n ⊙ V'_m]: width 2D + D'; sigmoid hidden layers with biases; one linear output
    assert [tuple(layer.weight.shape) for layer in model.layers] == [(9, 14), (8, 9), (7, 8), (1, 7)]
    assert all(layer.bias is not None for layer in model.layers)
    # the two blocks partition the parameters
    ids = {id(p) for p in model.latent_parameters()} | {id(p) for p in model.network_parameters()}
    assert len(ids) == len(list(model.parameters())) == 4 + 2 * 4
    assert not {id(p) for p in model.latent_parameters()} & {id(p) for p in model.network_parameters()}
    # latents truncated at ±2 std, biases start at zero
    assert model.user_latent.abs().max() <= 0.2 and all(torch.all(layer.bias == 0) for layer in model.layers)
    clipped = model.predict(users, items, clip=(1.0, 5.0), batch_size=3)
    assert clipped.shape == (4,) and clipped.min() >= 1.0 and clipped.max() <= 5.0


def test_bounded_output_stays_in_range() -> None:
    model = NNMF(6, 4, d=2, d_prime=3, hidden=(5,), generator=torch.Generator().manual_seed(0), output_range=(1.0, 5.0))
    with torch.no_grad():
        model.layers[-1].bias.fill_(100.0)  # saturate: a linear unit would output ~100
    users, items = torch.arange(6), torch.arange(6) % 4
    assert torch.all(model(users, items) <= 5.0) and torch.all(model(users, items) > 4.99)
    split = low_rank_split()
    res = fit_nnmf(split, NNMFConfig(**SMALL, bounded_output=True, max_epochs=3), device="cpu")
    assert np.isfinite(res.metrics["rmse"]) and len(res.history) == 3


@pytest.mark.parametrize("batch_size", [None, 16])
def test_alternating_phases_freeze_the_other_block(batch_size: int | None) -> None:
    split = low_rank_split()
    users, items, ratings = _tensors(split)
    model = NNMF(split.n_users, split.n_items, **SMALL, generator=torch.Generator().manual_seed(0))
    opts = make_optimizers(model, NNMFConfig(**SMALL, lr=1e-2, batch_size=batch_size))
    gen = torch.Generator().manual_seed(0)
    args = (users, items, ratings, 1.0, batch_size, gen)
    # one phase of each first, so that both optimizers have a state that could (wrongly) move
    train_phase(model, opts["network"], "network", *args)
    train_phase(model, opts["latent"], "latent", *args)

    net0, lat0 = _snapshot(model.network_parameters()), _snapshot(model.latent_parameters())
    net_state0, lat_state0 = _opt_state(opts["network"]), _opt_state(opts["latent"])
    train_phase(model, opts["latent"], "latent", *args)
    assert _same(net0, _snapshot(model.network_parameters())), "network moved during a latent phase"
    assert _same(net_state0, _opt_state(opts["network"])), "network RMSProp state advanced during a latent phase"
    assert all(p.grad is None for p in model.network_parameters()), "gradients were computed for the frozen block"
    assert not _same(lat0, _snapshot(model.latent_parameters()))
    assert not _same(lat_state0, _opt_state(opts["latent"]))

    net1, lat1 = _snapshot(model.network_parameters()), _snapshot(model.latent_parameters())
    lat_state1 = _opt_state(opts["latent"])
    train_phase(model, opts["network"], "network", *args)
    assert _same(lat1, _snapshot(model.latent_parameters())), "latents moved during a network phase"
    assert _same(lat_state1, _opt_state(opts["latent"])), "latent RMSProp state advanced during a network phase"
    assert all(p.grad is None for p in model.latent_parameters())
    assert not _same(net1, _snapshot(model.network_parameters()))
    assert all(p.requires_grad for p in model.parameters())  # freezing is undone after each phase


def test_objective_is_sum_of_squares_plus_lambda_latent_l2() -> None:
    split = low_rank_split()
    users, items, ratings = _tensors(split)
    model = NNMF(split.n_users, split.n_items, **SMALL, generator=torch.Generator().manual_seed(0))
    lam = 3.0
    with torch.no_grad():
        sse = (model(users, items) - ratings).square().sum()
        latent_sq = sum(p.square().sum() for p in model.latent_parameters())
    opts = make_optimizers(model, NNMFConfig(**SMALL))
    objective, sse_out = train_phase(
        model, opts["network"], "network", users, items, ratings, lam, None, torch.Generator()
    )
    assert objective == pytest.approx(float(sse + lam * latent_sq), rel=1e-5)  # a sum, not a mean
    assert sse_out == pytest.approx(float(sse), rel=1e-5)
    net_sq = sum(float(p.detach().square().sum()) for p in model.network_parameters())
    assert net_sq > 1.0  # the network weights are large enough that penalising them would have shown up above


def test_fit_requires_validation() -> None:
    split = low_rank_split()
    no_valid = RatingSplit(split.name, split.train, split.test)
    with pytest.raises(ValueError, match="validation"):
        fit_nnmf(no_valid, NNMFConfig(**SMALL, max_epochs=1), device="cpu")


def test_fit_is_deterministic_for_a_seed() -> None:
    split = low_rank_split()
    cfg = NNMFConfig(**SMALL, lr=1e-2, lam=0.5, max_epochs=8, batch_size=64)
    a = fit_nnmf(split, cfg, device="cpu", seed=0)
    b = fit_nnmf(split, cfg, device="cpu", seed=0)
    c = fit_nnmf(split, cfg, device="cpu", seed=1)
    cols = ["epoch", "train_loss", "train_rmse", "valid_rmse", "test_rmse"]
    assert a.history[cols].equals(b.history[cols])
    assert np.array_equal(a.test_predictions, b.test_predictions)
    assert not np.array_equal(a.test_predictions, c.test_predictions)
    assert list(a.history.columns[:5]) == ["epoch", "train_loss", "train_rmse", "valid_rmse", "test_rmse"]


def test_tiny_fit_beats_global_mean_on_low_rank_data(device: str) -> None:
    split = low_rank_split()
    cfg = NNMFConfig(d=4, d_prime=8, hidden=(16, 16), lr=1e-2, lam=0.05, max_epochs=400, patience=400, eval_every=10)
    res = fit_nnmf(split, cfg, device=device, seed=0)
    mean_rmse = float(np.sqrt(np.mean((split.test.values - split.train.values.mean()) ** 2)))
    assert res.metrics["rmse"] < 0.7 * mean_rmse, (res.metrics, mean_rmse)
    lo, hi = split.rating_range
    assert res.test_predictions.min() >= lo and res.test_predictions.max() <= hi
    # reported test RMSE is the one logged at the best validation epoch
    best = res.history.set_index("epoch").loc[res.best_epoch]
    assert res.metrics["rmse"] == pytest.approx(best["test_rmse"], abs=1e-6)
    assert best["valid_rmse"] == res.history["valid_rmse"].min()


def test_checkpoint_resume_continues_from_saved_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    split = low_rank_split()
    kw = dict(**SMALL, lr=1e-2, lam=0.5, batch_size=64, checkpoint_every=2)
    straight = fit_nnmf(split, NNMFConfig(**kw, max_epochs=6), device="cpu", seed=0)

    ckpt = tmp_path / "nnmf.pt"
    first = fit_nnmf(split, NNMFConfig(**kw, max_epochs=3), device="cpu", seed=0, checkpoint_path=ckpt)
    saved = torch.load(ckpt, weights_only=False)
    assert saved["epoch"] == 3 and first.epochs_run == 3
    three = NNMF(split.n_users, split.n_items, **SMALL)
    three.load_state_dict(saved["model"])

    calls: list[str] = []
    real_phase = nnmf_mod.train_phase

    def counting_phase(*args: object, **kwargs: object) -> tuple[float, float]:
        calls.append(str(args[2]))
        if len(calls) == 1:  # the resumed run starts from the saved parameters
            model = args[0]
            assert isinstance(model, NNMF)
            assert all(torch.equal(p, q) for p, q in zip(model.parameters(), three.parameters(), strict=True))
        return real_phase(*args, **kwargs)

    monkeypatch.setattr(nnmf_mod, "train_phase", counting_phase)
    resumed = fit_nnmf(split, NNMFConfig(**kw, max_epochs=6), device="cpu", seed=0, checkpoint_path=ckpt)
    assert calls == ["network", "latent"] * 3  # epochs 4..6 only
    cols = ["epoch", "train_loss", "train_rmse", "valid_rmse", "test_rmse"]
    assert resumed.history[cols].equals(straight.history[cols])
    assert np.array_equal(resumed.test_predictions, straight.test_predictions)
    assert resumed.epochs_run == 6 and resumed.best_epoch == straight.best_epoch

    with pytest.raises(ValueError, match="different run"):
        fit_nnmf(split, NNMFConfig(**{**kw, "lam": 1.0}, max_epochs=7), device="cpu", seed=0, checkpoint_path=ckpt)
