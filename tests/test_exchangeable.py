"""Properties of the sparse exchangeable layer and the two Hartford et al. (2018) models, on tiny inputs."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recrepro.data.types import Ratings, RatingSplit
from recrepro.metrics import rmse
from recrepro.models import exchangeable as ex
from recrepro.models.exchangeable import (
    ExchangeableConfig,
    FactorizedEAE,
    SelfSupervisedExchangeable,
    SparseExchangeable,
    dense_exchangeable_reference,
    fit_exchangeable,
    model_from_checkpoint,
    predict_ratings,
    sample_hidden_mask,
    sample_submatrix,
    sparse_exchangeable,
    train_exchangeable,
    values_to_classes,
)

TINY = {
    "ss_hidden": (16, 16),
    "fe_encoder_hidden": (16,),
    "fe_latent": 8,
    "fe_decoder_hidden": (16, 16),
    "fe_decoder_dropout_after": (2,),
}


def _entries(n_rows: int, n_cols: int, density: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    r, c = np.nonzero(rng.random((n_rows, n_cols)) < density)
    return torch.as_tensor(r), torch.as_tensor(c)


def _synthetic_split(n: int = 60, m: int = 50, density: float = 0.4, seed: int = 0) -> RatingSplit:
    """Low-rank ratings: 3 + row bias + column bias + a rank-1 interaction, rounded to 1..5 (rank <= 3)."""
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, 1)), rng.normal(size=(1, m))
    u, v = rng.normal(size=(n, 1)), rng.normal(size=(1, m))
    full = np.clip(np.round(3 + 0.8 * a + 0.8 * b + 0.5 * u * v), 1, 5)
    rows, cols = np.nonzero(rng.random((n, m)) < density)
    vals = full[rows, cols]
    is_test = rng.random(len(rows)) < 0.2
    train = Ratings(rows[~is_test], cols[~is_test], vals[~is_test], n, m)
    test = Ratings(rows[is_test], cols[is_test], vals[is_test], n, m)
    return RatingSplit("synthetic", train, test).with_validation(0.1, seed=1)


# --- the layer -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("density", [1.0, 0.5])
def test_sparse_layer_equals_dense_reference(density: float) -> None:
    torch.manual_seed(0)
    n_rows, n_cols = 6, 5
    rows, cols = _entries(n_rows, n_cols, density, seed=3)
    layer = SparseExchangeable(3, 4, init_std=None).double()
    with torch.no_grad():
        layer.bias.normal_()
    x = torch.randn(len(rows), 3, dtype=torch.float64)
    dense = torch.zeros(n_rows, n_cols, 3, dtype=torch.float64)
    dense[rows, cols] = x
    mask = torch.zeros(n_rows, n_cols, dtype=torch.bool)
    mask[rows, cols] = True
    ref = dense_exchangeable_reference(layer, dense, mask)
    out = layer(x, rows, cols, n_rows, n_cols)
    torch.testing.assert_close(out, ref[rows, cols], rtol=1e-12, atol=1e-12)
    assert torch.all(ref[~mask] == 0)


def test_layer_is_equivariant_to_row_column_and_entry_permutations() -> None:
    torch.manual_seed(1)
    n_rows, n_cols = 9, 7
    rows, cols = _entries(n_rows, n_cols, 0.5, seed=4)
    layer = SparseExchangeable(4, 5, init_std=None)
    x = torch.randn(len(rows), 4)
    out = layer(x, rows, cols, n_rows, n_cols)
    pr, pc, order = torch.randperm(n_rows), torch.randperm(n_cols), torch.randperm(len(rows))
    out_perm = layer(x[order], pr[rows[order]], pc[cols[order]], n_rows, n_cols)
    torch.testing.assert_close(out_perm, out[order], rtol=1e-5, atol=1e-6)
    # an entry-dependent function would fail this: the identity permutation of a *different* matrix differs
    assert not torch.allclose(layer(x.flip(0), rows, cols, n_rows, n_cols), out)


@pytest.mark.parametrize("model_cls", [SelfSupervisedExchangeable, FactorizedEAE])
def test_models_are_equivariant(model_cls: type) -> None:
    torch.manual_seed(2)
    n_rows, n_cols = 8, 6
    rows, cols = _entries(n_rows, n_cols, 0.6, seed=5)
    n_q = 5
    model = model_cls((1.0, 2.0, 3.0), (8, 8), init_std=None).eval()
    cls = torch.randint(3, (len(rows),))
    q_rows, q_cols = torch.randint(n_rows, (n_q,)), torch.randint(n_cols, (n_q,))
    a_in, a_q = model.query_logits(cls, rows, cols, q_rows, q_cols, n_rows, n_cols)
    pr, pc, order = torch.randperm(n_rows), torch.randperm(n_cols), torch.randperm(len(rows))
    b_in, b_q = model.query_logits(cls[order], pr[rows[order]], pc[cols[order]], pr[q_rows], pc[q_cols], n_rows, n_cols)
    torch.testing.assert_close(b_in, a_in[order], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(b_q, a_q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("chunk_size", [None, 2])
def test_gradcheck_double(chunk_size: int | None) -> None:
    torch.manual_seed(3)
    rows = torch.tensor([0, 0, 1, 2, 2, 2])
    cols = torch.tensor([0, 3, 1, 0, 2, 3])
    params = [torch.randn(2, 3, dtype=torch.float64, requires_grad=True) for _ in range(4)]
    bias = torch.randn(3, dtype=torch.float64, requires_grad=True)
    x = torch.randn(6, 2, dtype=torch.float64, requires_grad=True)

    def f(x: torch.Tensor, *w: torch.Tensor) -> torch.Tensor:
        return sparse_exchangeable(x, rows, cols, 4, 5, *w, chunk_size=chunk_size)  # row 3 and col 4 empty

    assert torch.autograd.gradcheck(f, (x, *params, bias))


def test_chunked_forward_matches_unchunked() -> None:
    torch.manual_seed(4)
    rows, cols = _entries(10, 8, 0.5, seed=6)
    layer = SparseExchangeable(5, 6, init_std=None)
    x = torch.randn(len(rows), 5)
    torch.testing.assert_close(
        layer(x, rows, cols, 10, 8, chunk_size=7), layer(x, rows, cols, 10, 8), rtol=1e-6, atol=1e-6
    )


def test_empty_rows_columns_and_matrix_give_finite_output() -> None:
    torch.manual_seed(5)
    rows = torch.tensor([0, 0, 2, 3, 3])  # rows 1 and 4 empty
    cols = torch.tensor([0, 1, 1, 0, 3])  # cols 2 and 4 empty
    layer = SparseExchangeable(2, 3)
    out = layer(torch.randn(5, 2), rows, cols, 5, 5)
    assert out.shape == (5, 3) and torch.isfinite(out).all()
    empty = layer(torch.zeros(0, 2), rows[:0], cols[:0], 5, 5)
    assert empty.shape == (0, 3) and torch.isfinite(empty).all()
    cls = torch.tensor([0, 1, 2, 0, 1])
    q_rows, q_cols = torch.tensor([1, 4, 0]), torch.tensor([2, 4, 4])  # queries in the empty rows/cols
    for model in (
        SelfSupervisedExchangeable((1.0, 2.0, 3.0), (4,)),
        FactorizedEAE((1.0, 2.0, 3.0), (4,), 3, (4,), decoder_dropout_after=()),
    ):
        model.eval()
        _, q = model.query_logits(cls, rows, cols, q_rows, q_cols, 5, 5)
        assert torch.isfinite(q).all()
        _, q_only = model.query_logits(cls[:0], rows[:0], cols[:0], q_rows, q_cols, 5, 5)  # nothing observed
        assert torch.isfinite(q_only).all()


# --- masking ---------------------------------------------------------------------------------------------


class _Spy(SelfSupervisedExchangeable):
    """Records what ``_train_step`` feeds the model."""

    def query_logits(self, in_classes, in_rows, in_cols, q_rows, q_cols, n_rows, n_cols, **kw):  # type: ignore[override]
        out = super().query_logits(in_classes, in_rows, in_cols, q_rows, q_cols, n_rows, n_cols, **kw)
        self.seen = (in_classes.clone(), in_rows.clone(), in_cols.clone(), q_rows.clone(), q_cols.clone(), out[1])
        return out


def test_masking_keeps_hidden_entries_out_of_the_input() -> None:
    torch.manual_seed(6)
    n_rows, n_cols = 12, 10
    rows, cols = _entries(n_rows, n_cols, 0.6, seed=7)
    cls = torch.randint(3, (len(rows),))
    config = ExchangeableConfig(ss_mask_fraction=0.3, **TINY)
    hidden = sample_hidden_mask(len(rows), 0.3, torch.Generator().manual_seed(11), torch.device("cpu"))
    assert 0 < int(hidden.sum()) < len(rows)

    def step(classes: torch.Tensor) -> tuple[torch.Tensor, tuple]:
        torch.manual_seed(0)
        spy = _Spy((1.0, 2.0, 3.0), config.ss_hidden)
        batch = ex._Entries(classes, rows, cols, classes.numpy().astype(np.float32))
        loss = ex._train_step(spy, config, batch, n_rows, n_cols, torch.Generator().manual_seed(11))
        return loss, spy.seen

    loss, (in_cls, in_r, in_c, q_r, q_c, q_logits) = step(cls)
    key = rows * n_cols + cols
    assert set((in_r * n_cols + in_c).tolist()) == set(key[~hidden].tolist())
    assert set((q_r * n_cols + q_c).tolist()) == set(key[hidden].tolist())
    torch.testing.assert_close(in_cls, cls[~hidden])
    torch.testing.assert_close(loss, F.cross_entropy(q_logits, cls[hidden]))  # loss only on hidden entries

    changed_hidden = cls.clone()
    changed_hidden[hidden] = (cls[hidden] + 1) % 3
    _, seen_h = step(changed_hidden)
    torch.testing.assert_close(seen_h[5], q_logits)  # hidden values never reach the network
    changed_visible = cls.clone()
    first_visible = int(torch.nonzero(~hidden)[0])
    changed_visible[first_visible] = (cls[first_visible] + 1) % 3
    _, seen_v = step(changed_visible)
    assert not torch.allclose(seen_v[5], q_logits)  # ...while visible values do


def test_query_entries_are_fed_as_zero_input() -> None:
    torch.manual_seed(7)
    rows, cols = _entries(7, 6, 0.7, seed=8)
    model = SelfSupervisedExchangeable((1.0, 2.0, 3.0, 4.0), (8, 8)).eval()
    cls = torch.randint(4, (len(rows),))
    n_in = len(rows) - 4
    _, q = model.query_logits(cls[:n_in], rows[:n_in], cols[:n_in], rows[n_in:], cols[n_in:], 7, 6)
    x = F.one_hot(cls, 4).float()
    x[n_in:] = 0
    torch.testing.assert_close(q, model(x, rows, cols, 7, 6)[n_in:])


# --- sampling and value mapping --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["density", "uniform"])
def test_sample_submatrix_returns_exactly_the_entries_inside(mode: str) -> None:
    rows, cols = _entries(30, 20, 0.3, seed=9)
    gen = torch.Generator().manual_seed(0)
    pos, new_r, new_c, nr, nc = sample_submatrix(rows, cols, 30, 20, 8, 5, generator=gen, mode=mode)
    assert (nr, nc) == (8, 5)
    assert int(new_r.max()) < 8 and int(new_c.max()) < 5 and int(new_r.min()) >= 0
    picked_r, picked_c = set(rows[pos].tolist()), set(cols[pos].tolist())
    assert len(picked_r) <= 8 and len(picked_c) <= 5
    inside = np.isin(rows.numpy(), list(picked_r)) & np.isin(cols.numpy(), list(picked_c))
    assert inside.sum() == len(pos)  # nothing inside the chosen rows x cols is left out
    old_to_new = {}
    for o, nw in zip(rows[pos].tolist(), new_r.tolist(), strict=True):
        assert old_to_new.setdefault(o, nw) == nw  # a consistent re-indexing


def test_values_to_classes_mappings() -> None:
    classes = (1.0, 2.0, 3.0, 4.0, 5.0)
    assert values_to_classes(np.array([1.0, 5.0, 3.0]), classes).tolist() == [0, 4, 2]
    with pytest.raises(ValueError, match="not rating classes"):
        values_to_classes(np.array([2.5]), classes)
    assert values_to_classes(np.array([0.5, 2.5, 2.6, 7.0]), classes, "nearest").tolist() == [0, 1, 2, 4]
    assert values_to_classes(np.array([1.0, 50.5, 100.0]), classes, "linear", (1.0, 100.0)).tolist() == [0, 2, 4]


# --- training --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["self_supervised", "factorized"])
def test_tiny_fit_beats_global_mean(kind: str, device: str) -> None:
    split = _synthetic_split()
    config = ExchangeableConfig(
        kind=kind, lr=3e-3, epochs=120, eval_every=20, patience=100, init_std=None, dropout=0.1, **TINY
    )
    result = fit_exchangeable(split, config, device=device, seed=0)
    global_mean = rmse(np.full(len(split.test), split.train.values.mean()), split.test.values)
    assert result.metrics["rmse"] < 0.8 * global_mean
    assert list(result.history.columns[:4]) == ["epoch", "train_loss", "valid_rmse", "test_rmse"]
    best_row = result.history.loc[result.history.epoch == result.best_epoch].iloc[0]
    assert best_row.valid_rmse == result.history.valid_rmse.min()
    assert result.metrics["rmse"] == pytest.approx(best_row.test_rmse, abs=1e-9)  # test AT the best validation


def test_fit_needs_a_validation_set() -> None:
    split = _synthetic_split()
    with pytest.raises(ValueError, match="split.valid"):
        fit_exchangeable(replace(split, valid=None), ExchangeableConfig(epochs=1, **TINY), device="cpu")


@pytest.mark.parametrize("kind", ["factorized", "self_supervised"])
def test_checkpoint_resume_equals_uninterrupted_run(kind: str, tmp_path) -> None:
    split = _synthetic_split(n=30, m=25)
    config = ExchangeableConfig(
        kind=kind, epochs=20, eval_every=5, checkpoint_every=5, lr=3e-3, submatrix_rows=20, submatrix_cols=20, **TINY
    )
    full, _ = train_exchangeable(split, config, device="cpu", seed=3, checkpoint_path=tmp_path / "full.pt")
    train_exchangeable(split, replace(config, epochs=10), device="cpu", seed=3, checkpoint_path=tmp_path / "part.pt")
    assert torch.load(tmp_path / "part.pt", weights_only=False)["epoch"] == 10
    resumed, _ = train_exchangeable(split, config, device="cpu", seed=3, checkpoint_path=tmp_path / "part.pt")
    a, b = (torch.load(tmp_path / f, weights_only=False) for f in ("full.pt", "part.pt"))
    assert a["epoch"] == b["epoch"] == 20
    for part in ("model", "best_state"):
        for k, v in a[part].items():
            assert torch.equal(v, b[part][k]), (part, k)
    cols = ["epoch", "train_loss", "valid_rmse", "test_rmse"]
    assert full.history[cols].equals(resumed.history[cols])
    assert full.metrics == resumed.metrics and full.best_epoch == resumed.best_epoch
    with pytest.raises(ValueError, match="different config"):
        train_exchangeable(split, replace(config, lr=1e-3), device="cpu", seed=3, checkpoint_path=tmp_path / "part.pt")


def test_predict_path_matches_fit_and_transfers_to_a_new_matrix(tmp_path) -> None:
    split = _synthetic_split(n=30, m=25)
    config = ExchangeableConfig(kind="factorized", epochs=10, eval_every=5, **TINY)
    result, model = train_exchangeable(split, config, device="cpu", seed=0, checkpoint_path=tmp_path / "f.pt")
    assert split.valid is not None
    observed = Ratings(
        np.concatenate([split.train.users, split.valid.users]),
        np.concatenate([split.train.items, split.valid.items]),
        np.concatenate([split.train.values, split.valid.values]),
        split.n_users,
        split.n_items,
    )
    pred = predict_ratings(model, observed, split.test.users, split.test.items)
    np.testing.assert_allclose(pred, result.test_predictions, rtol=1e-6, atol=1e-6)
    reloaded = model_from_checkpoint(tmp_path / "f.pt", device="cpu")
    np.testing.assert_allclose(predict_ratings(reloaded, observed, split.test.users, split.test.items), pred, atol=1e-6)

    # a different matrix (new users/items) on a 1..100 scale: mapped explicitly, predictions mapped back
    rng = np.random.default_rng(0)
    other = Ratings(rng.integers(0, 7, 20), rng.integers(0, 9, 20), rng.integers(1, 101, 20).astype(float), 7, 9)
    with pytest.raises(ValueError, match="not rating classes"):
        predict_ratings(model, other, np.array([0, 6]), np.array([8, 1]))
    far = predict_ratings(
        model, other, np.array([0, 6]), np.array([8, 1]), value_mapping="linear", source_range=(1, 100)
    )
    assert np.all(np.isfinite(far)) and np.all((far >= 1) & (far <= 100))
