"""LRML: relation/attention mechanics, the copy_relations switch, clipping, loss, fitting and resuming."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from recrepro.models.lrml import LRML, LRMLConfig, fit_lrml, hinge_loss
from recrepro.models.ranking import synthetic_leave_one_out

SMALL = LRMLConfig(dim=16, n_memories=8, batch_size=32, epochs=20, eval_every=5)


def _model(**overrides) -> LRML:
    return LRML(10, 12, replace(SMALL, **overrides), torch.Generator().manual_seed(0))


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    users = torch.tensor([0, 1, 2, 3, 9])
    pos = torch.tensor([0, 1, 2, 3, 11])
    neg = torch.tensor([[4, 5], [6, 7], [8, 9], [10, 11], [0, 1]])
    return users, pos, neg


def test_shapes_and_attention_is_a_distribution() -> None:
    m = _model()
    users, pos, neg = _batch()
    t = m.pair_terms(users, pos, neg)
    assert t.d_pos.shape == (5,) and t.d_neg.shape == (5, 2)
    assert t.r_pos.shape == (5, 16) and t.r_neg.shape == (5, 2, 16)
    assert t.a_pos.shape == (5, 8)
    assert torch.all(t.a_pos >= 0)
    torch.testing.assert_close(t.a_pos.sum(-1), torch.ones(5))
    items = torch.arange(12).expand(5, -1)
    assert m.score(users, items).shape == (5, 12)
    # scoring agrees with the training-time distance of the same pair
    torch.testing.assert_close(m.score(users, pos[:, None])[:, 0], -t.d_pos)


def test_relation_is_the_attention_weighted_memory() -> None:
    m = _model()
    p, q = m.user[:3], m.item[:3]
    r, a = m.relation(p, q)
    manual_a = torch.softmax((p * q) @ m.keys, dim=-1)
    torch.testing.assert_close(a, manual_a)
    torch.testing.assert_close(r, sum(manual_a[:, j : j + 1] * m.memory[j] for j in range(8)))


def test_copy_relations_switch_changes_the_negative_relation() -> None:
    users, pos, neg = _batch()
    copied = _model(copy_relations=True).pair_terms(users, pos, neg)
    torch.testing.assert_close(copied.r_neg, copied.r_pos[:, None, :].expand(-1, 2, -1))
    m = _model(copy_relations=False)
    own = m.pair_terms(users, pos, neg)
    assert not torch.allclose(own.r_neg, own.r_pos[:, None, :].expand(-1, 2, -1))
    expected, _ = m.relation(m.user[users][:, None, :], m.item[neg])
    torch.testing.assert_close(own.r_neg, expected)
    # same parameters (same seed), same positive side; only the negative side differs
    torch.testing.assert_close(own.d_pos, copied.d_pos)
    assert not torch.allclose(own.d_neg, copied.d_neg)


def test_distances_match_their_formulas() -> None:
    users, pos, neg = _batch()
    for dist in ("l2", "l1"):
        m = _model(distance=dist)
        t = m.pair_terms(users, pos, neg)
        e = m.item[pos] - (m.user[users] + t.r_pos)
        ref = torch.sqrt((e**2).sum(-1) + 1e-3) if dist == "l2" else e.abs().sum(-1)
        torch.testing.assert_close(t.d_pos, ref)


def test_hinge_loss_is_zero_when_the_margin_is_satisfied() -> None:
    d_pos = torch.tensor([0.1, 0.2], requires_grad=True)
    d_neg = torch.tensor([[0.7], [1.0]], requires_grad=True)
    loss = hinge_loss(d_pos, d_neg, margin=0.5)
    loss.backward()
    assert loss.item() == 0.0 and d_pos.grad.abs().sum() == 0
    assert hinge_loss(torch.tensor([0.4]), torch.tensor([[0.6]]), 0.5).item() == pytest.approx(0.3)
    # model level: zero memory (r = 0), q_pos = p, q_neg = -p with ‖p‖ = 1 -> d_neg - d_pos ≈ 2 > margin
    m = _model()
    with torch.no_grad():
        m.memory.zero_()
        m.user[0] = torch.nn.functional.normalize(m.user[0], dim=0)
        m.item[0], m.item[1] = m.user[0], -m.user[0]
    assert m.loss(torch.tensor([0]), torch.tensor([0]), torch.tensor([[1]])).item() == 0.0
    assert m.loss(torch.tensor([0]), torch.tensor([1]), torch.tensor([[0]])).item() > 0.0  # swapped: violated


def test_norm_clipping_keeps_embeddings_in_the_unit_ball(tmp_path) -> None:
    loo = synthetic_leave_one_out()
    # through the real fit loop: the saved parameters after training with a violent learning rate
    cfg = replace(SMALL, lr=5.0, epochs=2, init_std=2.0)
    fit_lrml(loo, cfg, device="cpu", checkpoint_path=tmp_path / "c.pt", protocol_eval=("sampled",))
    saved = torch.load(tmp_path / "c.pt", weights_only=False)["model"]
    assert saved["user"].norm(dim=1).max() <= 1.0 + 1e-6 and saved["item"].norm(dim=1).max() <= 1.0 + 1e-6
    m = LRML(loo.n_users, loo.n_items, replace(SMALL, init_std=2.0), torch.Generator().manual_seed(0))
    assert m.user.norm(dim=1).max() > 1.5  # starts far outside the ball
    opt = torch.optim.Adagrad(m.parameters(), lr=5.0)
    users, pos, neg = torch.arange(20), torch.arange(20) % 40, (torch.arange(20)[:, None] + 7) % 40
    for _ in range(3):
        opt.zero_grad()
        m.loss(users, pos, neg).backward()
        opt.step()
        with torch.no_grad():
            m.constrain()
        assert m.user.norm(dim=1).max() <= 1.0 + 1e-6
        assert m.item.norm(dim=1).max() <= 1.0 + 1e-6
    # the official code's variant clips the looked-up vectors instead of the parameters
    f = LRML(loo.n_users, loo.n_items, replace(SMALL, init_std=2.0, norm_clip_mode="forward"), torch.Generator())
    assert f.user.norm(dim=1).max() > 1.5
    assert f._embed(f.user, torch.arange(loo.n_users)).norm(dim=1).max() <= 1.0 + 1e-6


def test_paper_and_code_attention_are_the_same_function_class() -> None:
    users, pos, neg = _batch()
    code, paper = _model(attention="code"), _model(attention="paper")
    assert code.memory.shape == (8, 16) and paper.memory.shape == (16, 8)
    torch.testing.assert_close(paper.memory, code.memory.T)
    torch.testing.assert_close(code.pair_terms(users, pos, neg).d_neg, paper.pair_terms(users, pos, neg).d_neg)
    # a differently drawn memory gives different relations: the equality above is not vacuous
    other = LRML(10, 12, replace(SMALL, attention="paper"), torch.Generator().manual_seed(1))
    assert not torch.allclose(other.pair_terms(users, pos, neg).r_pos, code.pair_terms(users, pos, neg).r_pos)


@pytest.mark.parametrize("copy_relations", [True, False])
def test_tiny_fit_beats_random(copy_relations: bool, device: str) -> None:
    loo = synthetic_leave_one_out()  # random sampled HR@5 = 5/21 = 0.24; full HR@10 = 10/34 = 0.29
    res = fit_lrml(loo, replace(SMALL, copy_relations=copy_relations), device=device, seed=0, ks=(5, 10))
    assert res.metrics["sampled/hr@5"] > 0.6
    assert res.metrics["full/hr@10"] > 0.6
    assert set(res.metrics) >= {"sampled/hr@10", "sampled/ndcg@10", "full/hr@10", "full/ndcg@10", "full/mrr"}
    assert res.valid_metrics["sampled/hr@10"] == res.history["valid_sampled/hr@10"].max()
    assert "seconds_per_epoch" in res.history


def test_checkpoint_resume_reproduces_an_uninterrupted_run(tmp_path) -> None:
    loo = synthetic_leave_one_out()
    cfg = replace(SMALL, epochs=4, eval_every=1, checkpoint_every=1, patience=100)
    kw = {"device": "cpu", "seed": 2, "protocol_eval": ("sampled",)}
    straight = fit_lrml(loo, cfg, **kw)
    ckpt = tmp_path / "lrml.pt"
    first = fit_lrml(loo, replace(cfg, epochs=2), checkpoint_path=ckpt, **kw)
    assert first.epochs_run == 2 and ckpt.exists()
    resumed = fit_lrml(loo, cfg, checkpoint_path=ckpt, **kw)
    assert resumed.epochs_run == 4
    assert resumed.metrics == straight.metrics
    assert resumed.best_epoch == straight.best_epoch
    assert resumed.history["train_loss"].tolist() == straight.history["train_loss"].tolist()
    with pytest.raises(ValueError, match="different config"):
        fit_lrml(loo, replace(cfg, margin=1.0), checkpoint_path=ckpt, **kw)


def test_paper_and_code_attention_train_identically() -> None:
    loo = synthetic_leave_one_out()
    kw = {"device": "cpu", "seed": 0, "protocol_eval": ("sampled",)}
    code = fit_lrml(loo, replace(SMALL, attention="code", epochs=5), **kw)
    paper = fit_lrml(loo, replace(SMALL, attention="paper", epochs=5), **kw)
    torch.testing.assert_close(
        torch.tensor(paper.history["train_loss"].to_numpy()), torch.tensor(code.history["train_loss"].to_numpy())
    )
    assert paper.metrics == pytest.approx(code.metrics, abs=1e-6)


@pytest.mark.parametrize(
    "overrides",
    [{"copy_relations": False}, {"copy_relations": True, "grad_clip_norm": 0.5}, {"optimizer": "sgd", "lr": 0.05}],
    ids=["paper", "code-with-grad-clip", "sgd"],
)
def test_row_sparse_steps_equal_dense_steps(overrides: dict) -> None:
    """Row-sparse gradients (the shared loop's choice for Adagrad/SGD) give the dense trajectory: a zero gradient
    row moves nothing, and clipping the touched rows suffices once the first step has clipped them all."""
    from recrepro.models.ranking import _clip_grads_like_lrml_code, make_optimizer

    cfg = replace(SMALL, init_std=0.6, **overrides)  # init outside the unit ball: the first clip matters
    models = [LRML(10, 12, cfg, torch.Generator().manual_seed(0)) for _ in range(2)]
    models[1].sparse_grads = True
    optimizers = [make_optimizer(m.parameters(), cfg) for m in models]
    gen = torch.Generator().manual_seed(1)
    for step in range(30):
        users, pos = torch.randint(0, 4, (6,), generator=gen), torch.randint(0, 5, (6,), generator=gen)
        neg = torch.randint(0, 12, (6, 2), generator=gen)  # few users and items per step: most rows untouched
        for model, opt in zip(models, optimizers, strict=True):
            opt.zero_grad(set_to_none=True)
            model.loss(users, pos, neg).backward()
            if cfg.grad_clip_norm is not None:
                _clip_grads_like_lrml_code(list(model.parameters()), cfg.grad_clip_norm)
            opt.step()
            with torch.no_grad():
                model.constrain(rows_only=step > 0)
    assert models[1].user.grad.is_sparse and not models[0].user.grad.is_sparse
    for dense, sparse in zip(models[0].parameters(), models[1].parameters(), strict=True):
        torch.testing.assert_close(sparse, dense, rtol=1e-5, atol=1e-6)
    assert float(models[0].user.detach().norm(dim=1).max()) <= 1.0 + 1e-6


def test_grid_search_resumes_from_finished_trials_and_seed_0_is_the_selected_trial(
    tmp_path, data_root, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each finished trial is a unit (``<unit>-trials/trial_###.json``): with its training checkpoint and the
    search's result deleted, a rerun rebuilds the search from those units without training anything, and seed 0's
    rows are the selected trial's test metrics (not a retrained fit)."""
    from recrepro.experiments import lrml2018
    from recrepro.results import RunRecorder

    def run(out: str) -> dict:
        recorder = RunRecorder("lrml2018_ml1m", "smoke", tmp_path / out, tmp_path / "ckpt")
        lrml2018.run_split(
            recorder, split="ml-1m/ncf-loo", dataset_key="ml-1m/ncf-loo", profile="smoke", device="cpu",
            data_root=data_root, methods=["bpr-mf"],
        )  # fmt: skip
        rows = recorder.metrics()
        return dict(zip(rows["metric"] + "/" + rows["seed"].astype(str), rows["value"], strict=True))

    first = run("a")
    (trial_json,) = (tmp_path / "ckpt").glob("*-bpr-mf-*-trials/trial_000.json")
    summary = json.loads(trial_json.read_text())
    assert first["hr@10/0"] == summary["metrics"]["sampled/hr@10"]
    assert first["full/ndcg@10/0"] == summary["metrics"]["full/ndcg@10"]
    assert not list((tmp_path / "ckpt").glob("*-seed0.json"))  # seed 0 is not a fit of its own
    trial_json.with_suffix(".pt").unlink()
    next((tmp_path / "ckpt").glob("*-bpr-mf-*-tuning.json")).unlink()

    def no_training(*args, **kwargs):
        raise AssertionError("a finished trial was trained again")

    monkeypatch.setitem(lrml2018.FIT_FUNCTIONS, "bpr-mf", no_training)
    assert run("b") == first
