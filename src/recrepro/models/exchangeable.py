"""Hartford, Graham, Leyton-Brown & Ravanbakhsh (ICML 2018), "Deep Models of Interactions Across Sets".

Objective: predict the rating r_ij of user i for item j from the *set* of observed entries of the matrix, with
networks that are equivariant to any permutation of the rows and of the columns. The building block is the
exchangeable matrix layer restricted to observed entries (the paper's sparse exchangeable layer; equation
numbers not verified, no full text was available):

    y_ij = W1 x_ij + W2 mean_{j' in row i} x_ij' + W3 mean_{i' in col j} x_i'j + W4 mean_{all (i',j')} x_i'j' + b

with the means taken over *observed* entries only, so the cost grows with the number of observed entries
(nnz), not with rows x columns. Two models are built from it, both trained with cross-entropy over the rating
classes (the distinct rating values) and predicting the expected rating under the softmax:

* ``SelfSupervisedExchangeable`` -- masked-entry denoising: a random fraction (15%) of the observed entries is
  hidden (its one-hot input zeroed, its position kept), the network predicts every entry, the loss counts only
  the hidden ones. At evaluation the query entries are appended with a zero input.
* ``FactorizedEAE`` -- exchangeable encoder, row/column mean pooling into per-user and per-item codes, and an
  exchangeable decoder evaluated at any set of (user, item) pairs. The encoder sees the observed entries only;
  the decoder runs on observed entries plus query entries (as in the authors' code: validation RMSE is computed
  by decoding train+validation entries and scoring the validation ones).

Protocol (``fit_exchangeable``): train on ``split.train``, select the state with the best validation RMSE
(``split.valid``, carved from the training data), report test RMSE on the dataset's scale at that state. At
test time the input is the training entries (+ validation entries, ``test_input_includes_valid``).

Known differences from the authors' TensorFlow code (mravanba/deep_exchangeable_tensors, HEAD f4eb8c7):

* Rating classes come from the TRAINING values (or an explicit ``rating_values``); the authors built them
  with ``np.unique`` over all ratings including the test ones (label-set leakage, minor).
* The layers here have a bias ``b``; the authors' exchangeable layers have none.
* L2 regularisation is added to the loss as ``weight_decay * sum(W**2)`` over weight matrices (the Keras
  ``l2`` convention the authors used), not through Adam's ``weight_decay`` argument.
* Skip connections are ``h <- h + act(layer(h))`` where the widths match (our reading of the authors' flag).
* Mean pooling divides by the exact number of observed entries (at least 1); the authors add ``eps=1e-3``.
* The authors validate with "test at best validation" *and* log the best test value; only the former is
  reported here.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..data.types import Ratings, RatingSplit
from ..device import device_name, resolve_device, seed_everything
from ..metrics import mae, rmse
from ..training import EarlyStopping, FitResult, atomic_torch_save, load_checkpoint

ModelKind = Literal["self_supervised", "factorized"]
Activation = Literal["relu", "leaky_relu", "tanh"]
ValueMapping = Literal["exact", "nearest", "linear"]

# ---------------------------------------------------------------------------------------------------------
# The sparse exchangeable layer
# ---------------------------------------------------------------------------------------------------------


def pool_counts(
    rows: torch.Tensor, cols: torch.Tensor, n_rows: int, n_cols: int, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor]:
    """Observed entries per row and per column, clamped to >= 1 so an empty row/column pools to 0, not NaN.

    Computed once per index set and shared by every layer of a network (the counts do not change with depth).
    """
    row_count = torch.bincount(rows, minlength=n_rows).clamp_(min=1).to(dtype)
    col_count = torch.bincount(cols, minlength=n_cols).clamp_(min=1).to(dtype)
    return row_count, col_count


def pool_mean(x: torch.Tensor, index: torch.Tensor, size: int, count: torch.Tensor) -> torch.Tensor:
    """Mean of the rows of ``x`` grouped by ``index`` (size ``size``); O(nnz * channels) via index_add_."""
    return x.new_zeros(size, x.shape[1]).index_add_(0, index, x) / count[:, None]


def sparse_exchangeable(
    x: torch.Tensor,
    rows: torch.Tensor,
    cols: torch.Tensor,
    n_rows: int,
    n_cols: int,
    w_entry: torch.Tensor,
    w_row: torch.Tensor,
    w_col: torch.Tensor,
    w_all: torch.Tensor,
    bias: torch.Tensor | None = None,
    *,
    counts: tuple[torch.Tensor, torch.Tensor] | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Functional form of :class:`SparseExchangeable` (also what ``gradcheck`` differentiates).

    The pooled terms are multiplied by their weights at the row/column level (n_rows x C_out) and then
    gathered, so the per-entry work is one (nnz x C_in) @ (C_in x C_out) product plus two gathers.
    ``chunk_size`` bounds the temporaries of that product (for evaluation of large matrices).
    """
    nnz = x.shape[0]
    if counts is None:
        counts = pool_counts(rows, cols, n_rows, n_cols, x.dtype)
    row_count, col_count = counts
    row_mean = pool_mean(x, rows, n_rows, row_count)
    col_mean = pool_mean(x, cols, n_cols, col_count)
    all_mean = x.sum(0, keepdim=True) / max(nnz, 1)
    shared = all_mean @ w_all
    if bias is not None:
        shared = shared + bias
    row_term = row_mean @ w_row + shared  # (n_rows, C_out): the global term and bias ride along
    col_term = col_mean @ w_col  # (n_cols, C_out)
    if chunk_size is None or nnz <= chunk_size:
        out = torch.addmm(row_term.index_select(0, rows), x, w_entry)
        return out + col_term.index_select(0, cols)
    out = x.new_empty(nnz, w_entry.shape[1])
    for s in range(0, nnz, chunk_size):
        e = min(s + chunk_size, nnz)
        r, c = rows[s:e], cols[s:e]
        out[s:e] = torch.addmm(row_term.index_select(0, r), x[s:e], w_entry) + col_term.index_select(0, c)
    return out


class SparseExchangeable(nn.Module):
    """Exchangeable matrix layer on observed entries: (nnz, C_in) -> (nnz, C_out), see the module docstring.

    ``init_std`` draws every weight from N(0, init_std) (authors' code: 0.01); ``None`` uses PyTorch's
    ``nn.Linear``-style uniform(+-1/sqrt(C_in)). The bias starts at zero.
    """

    def __init__(self, in_channels: int, out_channels: int, *, bias: bool = True, init_std: float | None = 0.01):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.w_entry = nn.Parameter(torch.empty(in_channels, out_channels))
        self.w_row = nn.Parameter(torch.empty(in_channels, out_channels))
        self.w_col = nn.Parameter(torch.empty(in_channels, out_channels))
        self.w_all = nn.Parameter(torch.empty(in_channels, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.reset_parameters(init_std)

    def weights(self) -> tuple[torch.Tensor, ...]:
        return (self.w_entry, self.w_row, self.w_col, self.w_all)

    def reset_parameters(self, init_std: float | None) -> None:
        with torch.no_grad():
            for w in self.weights():
                if init_std is None:
                    bound = 1.0 / math.sqrt(max(self.in_channels, 1))
                    w.uniform_(-bound, bound)
                else:
                    w.normal_(0.0, init_std)
            if self.bias is not None:
                self.bias.zero_()

    def forward(
        self,
        x: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        n_rows: int,
        n_cols: int,
        *,
        counts: tuple[torch.Tensor, torch.Tensor] | None = None,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        return sparse_exchangeable(
            x, rows, cols, n_rows, n_cols, *self.weights(), self.bias, counts=counts, chunk_size=chunk_size
        )

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, bias={self.bias is not None}"


def dense_exchangeable_reference(layer: SparseExchangeable, values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The same layer on a dense (n_rows, n_cols, C_in) tensor with a boolean (n_rows, n_cols) mask.

    Straightforward reference for tests and the benchmark: costs O(rows * cols * C_in * C_out) whatever the
    number of observed entries. Returns (n_rows, n_cols, C_out), zero at unobserved positions.
    """
    m = mask.to(values.dtype)[..., None]
    xm = values * m
    row_mean = xm.sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1)
    col_mean = xm.sum(0, keepdim=True) / m.sum(0, keepdim=True).clamp(min=1)
    all_mean = xm.sum((0, 1), keepdim=True) / m.sum().clamp(min=1)
    out = xm @ layer.w_entry + row_mean @ layer.w_row + col_mean @ layer.w_col + all_mean @ layer.w_all
    if layer.bias is not None:
        out = out + layer.bias
    return out * m


# ---------------------------------------------------------------------------------------------------------
# Models
# ---------------------------------------------------------------------------------------------------------


def _activation(name: Activation, leaky_slope: float) -> nn.Module:
    if name == "relu":
        return nn.ReLU()
    if name == "leaky_relu":
        return nn.LeakyReLU(leaky_slope)
    if name == "tanh":
        return nn.Tanh()
    raise ValueError(f"unknown activation {name!r}; choose relu, leaky_relu or tanh")


def channel_dropout(h: torch.Tensor, rate: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Drop whole channels (the same ones for every entry), scaling the kept ones by 1/(1-rate).

    Channel rather than entry dropout keeps the layer exchangeable (the authors' ``channel_dropout_sparse``).
    An explicit generator makes training reproducible and resumable.
    """
    if rate <= 0.0:
        return h
    keep = torch.rand(h.shape[1], generator=generator, device=h.device) >= rate
    return h * (keep.to(h.dtype) / (1.0 - rate))


def _one_hot(classes: torch.Tensor, n_classes: int, dtype: torch.dtype) -> torch.Tensor:
    return F.one_hot(classes, n_classes).to(dtype)


class ExchangeableRatingModel(nn.Module):
    """Shared parts: the rating-class values (a buffer, so predictions travel with the weights)."""

    rating_values: torch.Tensor

    def __init__(self, rating_values: Sequence[float]) -> None:
        super().__init__()
        vals = [float(v) for v in rating_values]
        if len(vals) < 2 or any(b <= a for a, b in zip(vals[:-1], vals[1:], strict=True)):
            raise ValueError(f"rating_values must be >= 2 strictly increasing values, got {vals}")
        self.register_buffer("rating_values", torch.tensor(vals, dtype=torch.float32))

    @property
    def n_classes(self) -> int:
        return int(self.rating_values.numel())

    def query_logits(
        self,
        in_classes: torch.Tensor,
        in_rows: torch.Tensor,
        in_cols: torch.Tensor,
        q_rows: torch.Tensor,
        q_cols: torch.Tensor,
        n_rows: int,
        n_cols: int,
        *,
        generator: torch.Generator | None = None,
        chunk_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits at the input entries and at the query entries, given the observed (input) entries."""
        raise NotImplementedError

    def expected_rating(self, logits: torch.Tensor) -> torch.Tensor:
        """Prediction = E[rating] under the softmax over the rating classes (authors' ``expected_value``)."""
        return torch.softmax(logits, dim=-1) @ self.rating_values.to(logits.dtype)


class SelfSupervisedExchangeable(ExchangeableRatingModel):
    """Stack of sparse exchangeable layers mapping one-hot ratings to rating-class logits at every entry.

    Authors' code (``sparse_self_supervised.py``): 5 hidden layers of 256 units, ReLU, skip connections,
    channel dropout 0.5 after the first four hidden layers, an output layer with one logit per class.
    Hidden entries (masked in training, queries at evaluation) are present with an all-zero input.
    The classes are whatever ``rating_values`` says: ``fit_exchangeable`` uses the distinct TRAINING values
    (or ``config.rating_values``), whereas the authors' code took ``np.unique`` over all ratings incl. test.
    """

    def __init__(
        self,
        rating_values: Sequence[float],
        hidden: Sequence[int] = (256, 256, 256, 256, 256),
        *,
        dropout: float = 0.5,
        dropout_layers: int = 4,
        skip: bool = True,
        activation: Activation = "relu",
        leaky_slope: float = 0.01,
        init_std: float | None = 0.01,
    ) -> None:
        super().__init__(rating_values)
        dims = [self.n_classes, *hidden]
        self.hidden_layers = nn.ModuleList(
            SparseExchangeable(a, b, init_std=init_std) for a, b in zip(dims[:-1], dims[1:], strict=True)
        )
        self.output_layer = SparseExchangeable(dims[-1], self.n_classes, init_std=init_std)
        self.act = _activation(activation, leaky_slope)
        self.dropout, self.dropout_layers, self.skip = dropout, dropout_layers, skip

    def forward(
        self,
        x: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        n_rows: int,
        n_cols: int,
        *,
        generator: torch.Generator | None = None,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        """Logits (nnz, n_classes) for the (nnz, n_classes) input at the given entries."""
        counts = pool_counts(rows, cols, n_rows, n_cols, x.dtype)
        h = x
        for k, layer in enumerate(self.hidden_layers):
            z = self.act(layer(h, rows, cols, n_rows, n_cols, counts=counts, chunk_size=chunk_size))
            h = z + h if self.skip and z.shape == h.shape else z
            if self.training and k < self.dropout_layers:
                h = channel_dropout(h, self.dropout, generator)
        return self.output_layer(h, rows, cols, n_rows, n_cols, counts=counts, chunk_size=chunk_size)

    def query_logits(
        self,
        in_classes: torch.Tensor,
        in_rows: torch.Tensor,
        in_cols: torch.Tensor,
        q_rows: torch.Tensor,
        q_cols: torch.Tensor,
        n_rows: int,
        n_cols: int,
        *,
        generator: torch.Generator | None = None,
        chunk_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n_in = in_classes.shape[0]
        dtype = self.rating_values.dtype
        x = torch.cat(
            [
                _one_hot(in_classes, self.n_classes, dtype),
                in_classes.new_zeros((q_rows.shape[0], self.n_classes), dtype=dtype),
            ]
        )
        rows, cols = torch.cat([in_rows, q_rows]), torch.cat([in_cols, q_cols])
        logits = self(x, rows, cols, n_rows, n_cols, generator=generator, chunk_size=chunk_size)
        return logits[:n_in], logits[n_in:]


class FactorizedEAE(ExchangeableRatingModel):
    """Factorized exchangeable autoencoder: encoder -> per-user/per-item codes -> decoder at any entries.

    Authors' code (``sparse_factorized_autoencoder*.py``): encoder 2 x 220 units + a linear 100-unit layer,
    mean-pooled over each row and each column into 100-d user and item codes; decoder 4 x 220 units with
    channel dropout 0.5 after the 3rd and 4th, then one logit per class; leaky ReLU (slope 0.01).
    The decoder's first layer sees only [user code, item code] of each entry: with
    ``decoder_input_pooling=False`` (authors: ``W_u u_i + W_v v_j``, no pooled terms) or as a full exchangeable
    layer over those 2 x latent input channels (``True``).
    """

    def __init__(
        self,
        rating_values: Sequence[float],
        encoder_hidden: Sequence[int] = (220, 220),
        latent: int = 100,
        decoder_hidden: Sequence[int] = (220, 220, 220, 220),
        *,
        dropout: float = 0.5,
        decoder_dropout_after: Sequence[int] = (3, 4),
        skip: bool = False,
        activation: Activation = "leaky_relu",
        leaky_slope: float = 0.01,
        decoder_input_pooling: bool = False,
        init_std: float | None = 0.01,
    ) -> None:
        super().__init__(rating_values)
        if not decoder_hidden:
            raise ValueError("decoder_hidden needs at least one layer")
        enc_dims = [self.n_classes, *encoder_hidden]
        self.encoder_layers = nn.ModuleList(
            SparseExchangeable(a, b, init_std=init_std) for a, b in zip(enc_dims[:-1], enc_dims[1:], strict=True)
        )
        self.latent_layer = SparseExchangeable(enc_dims[-1], latent, init_std=init_std)
        self.decoder_input_pooling = decoder_input_pooling
        if decoder_input_pooling:
            self.decoder_input = SparseExchangeable(2 * latent, decoder_hidden[0], init_std=init_std)
        else:
            self.decoder_input = _CodeLinear(latent, decoder_hidden[0], init_std)
        dec_dims = list(decoder_hidden)
        self.decoder_layers = nn.ModuleList(
            SparseExchangeable(a, b, init_std=init_std) for a, b in zip(dec_dims[:-1], dec_dims[1:], strict=True)
        )
        self.output_layer = SparseExchangeable(dec_dims[-1], self.n_classes, init_std=init_std)
        self.act = _activation(activation, leaky_slope)
        self.dropout, self.skip = dropout, skip
        self.decoder_dropout_after = tuple(int(k) for k in decoder_dropout_after)
        if any(k < 2 or k > len(dec_dims) for k in self.decoder_dropout_after):
            raise ValueError(f"decoder_dropout_after must index decoder layers 2..{len(dec_dims)} (1-based)")

    def _block(self, layer: SparseExchangeable, h: torch.Tensor, *args: Any, **kw: Any) -> torch.Tensor:
        z = self.act(layer(h, *args, **kw))
        return z + h if self.skip and z.shape == h.shape else z

    def encode(
        self,
        x: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        n_rows: int,
        n_cols: int,
        *,
        chunk_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(n_rows, latent) user codes and (n_cols, latent) item codes; rows/cols with no entry get 0."""
        counts = pool_counts(rows, cols, n_rows, n_cols, x.dtype)
        h = x
        for layer in self.encoder_layers:
            h = self._block(layer, h, rows, cols, n_rows, n_cols, counts=counts, chunk_size=chunk_size)
        z = self.latent_layer(h, rows, cols, n_rows, n_cols, counts=counts, chunk_size=chunk_size)
        return pool_mean(z, rows, n_rows, counts[0]), pool_mean(z, cols, n_cols, counts[1])

    def decode(
        self,
        user_codes: torch.Tensor,
        item_codes: torch.Tensor,
        rows: torch.Tensor,
        cols: torch.Tensor,
        n_rows: int,
        n_cols: int,
        *,
        generator: torch.Generator | None = None,
        chunk_size: int | None = None,
    ) -> torch.Tensor:
        """Logits at the entries (rows, cols); the pooled terms pool over exactly these entries."""
        counts = pool_counts(rows, cols, n_rows, n_cols, user_codes.dtype)
        if self.decoder_input_pooling:
            x = torch.cat([user_codes.index_select(0, rows), item_codes.index_select(0, cols)], dim=1)
            h = self.act(self.decoder_input(x, rows, cols, n_rows, n_cols, counts=counts, chunk_size=chunk_size))
        else:
            h = self.act(self.decoder_input(user_codes, item_codes, rows, cols))
        for k, layer in enumerate(self.decoder_layers, start=2):
            h = self._block(layer, h, rows, cols, n_rows, n_cols, counts=counts, chunk_size=chunk_size)
            if self.training and k in self.decoder_dropout_after:
                h = channel_dropout(h, self.dropout, generator)
        return self.output_layer(h, rows, cols, n_rows, n_cols, counts=counts, chunk_size=chunk_size)

    def query_logits(
        self,
        in_classes: torch.Tensor,
        in_rows: torch.Tensor,
        in_cols: torch.Tensor,
        q_rows: torch.Tensor,
        q_cols: torch.Tensor,
        n_rows: int,
        n_cols: int,
        *,
        generator: torch.Generator | None = None,
        chunk_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        x = _one_hot(in_classes, self.n_classes, self.rating_values.dtype)
        u, v = self.encode(x, in_rows, in_cols, n_rows, n_cols, chunk_size=chunk_size)
        rows, cols = torch.cat([in_rows, q_rows]), torch.cat([in_cols, q_cols])
        logits = self.decode(u, v, rows, cols, n_rows, n_cols, generator=generator, chunk_size=chunk_size)
        n_in = in_classes.shape[0]
        return logits[:n_in], logits[n_in:]


class _CodeLinear(nn.Module):
    """Decoder input ``W_u u_i + W_v v_j + b`` (authors' theta_4/theta_5), computed per row/column then gathered."""

    def __init__(self, latent: int, out_channels: int, init_std: float | None) -> None:
        super().__init__()
        self.w_user = nn.Parameter(torch.empty(latent, out_channels))
        self.w_item = nn.Parameter(torch.empty(latent, out_channels))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        with torch.no_grad():
            for w in (self.w_user, self.w_item):
                if init_std is None:
                    bound = 1.0 / math.sqrt(latent)
                    w.uniform_(-bound, bound)
                else:
                    w.normal_(0.0, init_std)

    def forward(self, u: torch.Tensor, v: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor) -> torch.Tensor:
        return (u @ self.w_user + self.bias).index_select(0, rows) + (v @ self.w_item).index_select(0, cols)


# ---------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExchangeableConfig:
    """Hyperparameters; sources in the comments ("authors' code" = mravanba/deep_exchangeable_tensors HEAD).

    Fields prefixed ``ss_`` apply to the self-supervised model, ``fe_`` to the factorized EAE. One "epoch" is
    one gradient step on the whole matrix, or ``steps_per_epoch`` steps on sampled sub-matrices (authors).
    """

    kind: ModelKind = "self_supervised"  # which of the paper's two models
    lr: float = 5e-4  # Adam step size, authors' code (both models)
    epochs: int = 10_000  # cap; authors' F-EAE script 10,000 (SS: 50,000 "never-mind this"); early stopping ends sooner
    eval_every: int = 10  # epochs between validations, authors' code on ML (every epoch on Monti's datasets)
    patience: int = 50  # our choice: evaluations without validation improvement before stopping
    divergence_ratio: float | None = None  # authors' F-EAE on ML stops when valid > 1.075 x best; off: our choice
    checkpoint_every: int = 100  # our choice (epochs)
    init_std: float | None = 0.01  # authors' code: weights ~ N(0, 0.01); None = nn.Linear-style uniform
    dropout: float = 0.5  # channel-dropout rate, authors' code
    leaky_slope: float = 0.01  # authors' F-EAE leaky ReLU: relu(x) - 0.01 relu(-x)
    submatrix_rows: int | None = None  # None = whole matrix per step (authors, ML-100K); ML-1M: 800 (SS and F-EAE)
    submatrix_cols: int | None = None  # ML-1M in authors' code: 800 (SS), 1300 (F-EAE)
    submatrix_sampling: Literal["density", "uniform"] = "density"  # authors' sample_submatrix: p ∝ entries per row/col
    steps_per_epoch: int | None = None  # None: 1 (whole matrix) or (N // rows) * (M // cols) sub-matrices (authors)
    rating_values: tuple[float, ...] | None = None  # None: distinct TRAINING values (authors: all incl. test)
    test_input_includes_valid: bool = True  # test input = train + valid entries (all observed ratings): our choice
    eval_chunk_size: int | None = None  # entries per chunk in evaluation products (memory cap): our choice
    # self-supervised model (sparse_self_supervised.py, ML-100K settings)
    ss_hidden: tuple[int, ...] = (256, 256, 256, 256, 256)  # authors' code
    ss_dropout_layers: int = 4  # channel dropout after the first 4 hidden layers, authors' code
    ss_skip: bool = True  # authors' code
    ss_activation: Activation = "relu"  # authors' code
    ss_mask_fraction: float = 0.15  # entries hidden from the input and predicted ("DAE noise"), authors' code
    ss_weight_decay: float = 1e-5  # L2 coefficient on weights (Keras l2 convention), authors' code
    ss_adam_eps: float = 1e-8  # TensorFlow's Adam default (authors did not set it)
    ss_ema_decay: float | None = None  # authors' SS script uses no EMA
    # factorized EAE (sparse_factorized_autoencoder*.py, ML-100K settings)
    fe_encoder_hidden: tuple[int, ...] = (220, 220)  # authors' code
    fe_latent: int = 100  # authors' code: code size per user and per item
    fe_decoder_hidden: tuple[int, ...] = (220, 220, 220, 220)  # authors' code
    fe_decoder_dropout_after: tuple[int, ...] = (3, 4)  # 1-based decoder layers followed by dropout, authors' code
    fe_skip: bool = False  # authors' code (ML-100K)
    fe_activation: Activation = "leaky_relu"  # authors' code
    fe_decoder_input_pooling: bool = False  # authors: decoder input layer is W_u u_i + W_v v_j, no pooled terms
    fe_mask_fraction: float = 0.0  # authors train F-EAE as a plain autoencoder (no hidden entries); >0: our option
    fe_weight_decay: float = 1e-10  # authors' code
    fe_adam_eps: float = 1e-6  # authors' code
    fe_ema_decay: float | None = 0.9  # EMA of weights used for evaluation, authors' code

    def __post_init__(self) -> None:
        if self.kind not in ("self_supervised", "factorized"):
            raise ValueError(f"kind must be 'self_supervised' or 'factorized', got {self.kind!r}")
        if self.kind == "self_supervised" and not 0.0 < self.ss_mask_fraction < 1.0:
            raise ValueError("ss_mask_fraction must be in (0, 1): the self-supervised loss is on hidden entries")
        if not 0.0 <= self.fe_mask_fraction < 1.0:
            raise ValueError("fe_mask_fraction must be in [0, 1)")
        if (self.submatrix_rows is None) != (self.submatrix_cols is None):
            raise ValueError("set both submatrix_rows and submatrix_cols, or neither")
        if self.eval_every < 1 or self.epochs < 0 or self.checkpoint_every < 1:
            raise ValueError("eval_every and checkpoint_every must be >= 1 and epochs >= 0")

    @property
    def mask_fraction(self) -> float:
        return self.ss_mask_fraction if self.kind == "self_supervised" else self.fe_mask_fraction

    @property
    def weight_decay(self) -> float:
        return self.ss_weight_decay if self.kind == "self_supervised" else self.fe_weight_decay

    @property
    def adam_eps(self) -> float:
        return self.ss_adam_eps if self.kind == "self_supervised" else self.fe_adam_eps

    @property
    def ema_decay(self) -> float | None:
        return self.ss_ema_decay if self.kind == "self_supervised" else self.fe_ema_decay


def build_model(config: ExchangeableConfig, rating_values: Sequence[float]) -> ExchangeableRatingModel:
    """The network ``config.kind`` describes, on CPU (move it with ``.to``)."""
    if config.kind == "self_supervised":
        return SelfSupervisedExchangeable(
            rating_values,
            config.ss_hidden,
            dropout=config.dropout,
            dropout_layers=config.ss_dropout_layers,
            skip=config.ss_skip,
            activation=config.ss_activation,
            leaky_slope=config.leaky_slope,
            init_std=config.init_std,
        )
    return FactorizedEAE(
        rating_values,
        config.fe_encoder_hidden,
        config.fe_latent,
        config.fe_decoder_hidden,
        dropout=config.dropout,
        decoder_dropout_after=config.fe_decoder_dropout_after,
        skip=config.fe_skip,
        activation=config.fe_activation,
        leaky_slope=config.leaky_slope,
        decoder_input_pooling=config.fe_decoder_input_pooling,
        init_std=config.init_std,
    )


# ---------------------------------------------------------------------------------------------------------
# Sampling, masking and value <-> class mapping
# ---------------------------------------------------------------------------------------------------------


def sample_submatrix(
    rows: torch.Tensor,
    cols: torch.Tensor,
    n_rows: int,
    n_cols: int,
    max_rows: int,
    max_cols: int,
    *,
    generator: torch.Generator | None = None,
    mode: Literal["density", "uniform"] = "density",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int, int]:
    """Entries inside a random sub-matrix of ``max_rows`` rows x ``max_cols`` columns, re-indexed from 0.

    Rows and columns are drawn without replacement, uniformly or with probability proportional to their
    number of entries (``density``, the authors' ``sample_submatrix``; empty rows/cols get a tiny weight so
    the draw never fails). Exchangeability makes the re-indexing harmless. Cost O(nnz + n_rows + n_cols).
    Returns (entry positions, new row ids, new col ids, n_sub_rows, n_sub_cols).
    """

    def draw(ids: torch.Tensor, n: int, k: int) -> torch.Tensor:
        if k >= n:
            return torch.arange(n, device=ids.device)
        if mode == "uniform":
            return torch.randperm(n, generator=generator, device=ids.device)[:k]
        if mode != "density":
            raise ValueError(f"unknown sub-matrix sampling mode {mode!r}; choose density or uniform")
        weight = torch.bincount(ids, minlength=n).to(torch.float64).clamp_(min=1e-6)
        return torch.multinomial(weight, k, replacement=False, generator=generator)

    pick_r, pick_c = draw(rows, n_rows, max_rows), draw(cols, n_cols, max_cols)
    rmap = torch.full((n_rows,), -1, dtype=torch.long, device=rows.device)
    cmap = torch.full((n_cols,), -1, dtype=torch.long, device=cols.device)
    rmap[pick_r] = torch.arange(pick_r.numel(), device=rows.device)
    cmap[pick_c] = torch.arange(pick_c.numel(), device=cols.device)
    new_r, new_c = rmap[rows], cmap[cols]
    pos = torch.nonzero((new_r >= 0) & (new_c >= 0)).squeeze(1)
    return pos, new_r[pos], new_c[pos], int(pick_r.numel()), int(pick_c.numel())


def sample_hidden_mask(
    n: int, fraction: float, generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """Boolean mask hiding each entry with probability ``fraction`` (authors: Bernoulli), at least one if n > 0."""
    hidden = torch.rand(n, generator=generator, device=device) < fraction
    if n > 0 and not bool(hidden.any()):
        hidden[torch.randint(n, (1,), generator=generator, device=device)] = True
    return hidden


def values_to_classes(
    values: np.ndarray,
    rating_values: Sequence[float],
    mapping: ValueMapping = "exact",
    source_range: tuple[float, float] | None = None,
) -> np.ndarray:
    """Class index of each rating value.

    ``exact`` refuses values outside the class set (tolerance 1e-6); ``nearest`` snaps each value to the
    closest class (ties go to the LOWER class, e.g. 2.5 -> 2 with classes 1..5); ``linear`` first maps
    ``source_range`` (lo, hi) affinely onto [min class, max class] and then snaps to the nearest class.
    """
    classes = np.asarray(rating_values, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if mapping == "linear":
        if source_range is None:
            raise ValueError("value mapping 'linear' needs source_range=(lo, hi) of the input ratings")
        v = _affine(v, source_range, (classes[0], classes[-1]))
    elif mapping not in ("exact", "nearest"):
        raise ValueError(f"unknown value mapping {mapping!r}; choose exact, nearest or linear")
    pos = np.clip(np.searchsorted(classes, v), 1, len(classes) - 1)
    lower, upper = classes[pos - 1], classes[pos]
    idx = np.where(np.abs(v - lower) <= np.abs(upper - v), pos - 1, pos)
    if mapping == "exact":
        bad = np.abs(classes[idx] - v) > 1e-6
        if bad.any():
            raise ValueError(
                f"{int(bad.sum())} ratings are not rating classes {classes.tolist()} (e.g. {np.unique(v[bad])[:5]}); "
                "pass value_mapping='nearest' or 'linear' to map them explicitly"
            )
    return idx.astype(np.int64)


def _affine(v: np.ndarray, src: tuple[float, float], dst: tuple[float, float]) -> np.ndarray:
    (a, b), (c, d) = src, dst
    if b <= a:
        raise ValueError(f"range must have lo < hi, got {src}")
    return c + (v - a) * (d - c) / (b - a)


# ---------------------------------------------------------------------------------------------------------
# Prediction
# ---------------------------------------------------------------------------------------------------------


@torch.no_grad()
def _expected_at(
    model: ExchangeableRatingModel,
    in_classes: torch.Tensor,
    in_rows: torch.Tensor,
    in_cols: torch.Tensor,
    q_rows: torch.Tensor,
    q_cols: torch.Tensor,
    n_rows: int,
    n_cols: int,
    chunk_size: int | None,
) -> torch.Tensor:
    was_training = model.training
    model.eval()
    try:
        _, logits = model.query_logits(
            in_classes, in_rows, in_cols, q_rows, q_cols, n_rows, n_cols, chunk_size=chunk_size
        )
        return model.expected_rating(logits)
    finally:
        model.train(was_training)


def predict_ratings(
    model: ExchangeableRatingModel,
    observed: Ratings,
    query_users: np.ndarray,
    query_items: np.ndarray,
    *,
    value_mapping: ValueMapping = "exact",
    source_range: tuple[float, float] | None = None,
    chunk_size: int | None = None,
) -> np.ndarray:
    """Predicted ratings at (query_users, query_items) of a matrix whose observed entries are ``observed``.

    Works on any matrix, including one with users/items the model never saw (extrapolation / transfer): the
    model only uses the observed entries through exchangeable pooling. Ratings of ``observed`` that are not
    the model's rating classes must be mapped explicitly (``value_mapping``, see :func:`values_to_classes`);
    with ``linear`` the predictions are mapped back onto ``source_range`` by the inverse affine map, with
    ``exact``/``nearest`` they are on the model's class scale. Queries should be disjoint from ``observed``.
    """
    dev = next(model.parameters()).device
    classes = model.rating_values.cpu().numpy().astype(np.float64)
    cls = values_to_classes(observed.values, classes, value_mapping, source_range)
    qu = torch.tensor(np.asarray(query_users, dtype=np.int64), device=dev)  # a copy: inputs may be read-only
    qi = torch.tensor(np.asarray(query_items, dtype=np.int64), device=dev)
    if qu.numel() and (int(qu.max()) >= observed.n_users or int(qi.max()) >= observed.n_items):
        raise ValueError("query ids out of range of the observed matrix")
    u, i, _ = observed.to_torch(dev)
    pred = _expected_at(
        model, torch.as_tensor(cls, device=dev), u, i, qu, qi, observed.n_users, observed.n_items, chunk_size
    )
    out = pred.double().cpu().numpy()
    if value_mapping == "linear":
        assert source_range is not None
        out = _affine(out, (classes[0], classes[-1]), source_range)
    return out


# ---------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------

_RESUMABLE_CHANGES = {"epochs"}  # config fields that may differ between a checkpoint and the resuming call


@dataclass
class _Entries:
    """One set of entries on the device: class indices (or -1 for unknown), rows, cols and true values."""

    classes: torch.Tensor
    rows: torch.Tensor
    cols: torch.Tensor
    values: np.ndarray

    @staticmethod
    def of(r: Ratings, rating_values: Sequence[float], mapping: ValueMapping | None, dev: torch.device) -> _Entries:
        """``mapping=None``: the values are only targets (test), no class index is computed (-1)."""
        if mapping is None or len(r) == 0:
            cls = np.full(len(r), -1, dtype=np.int64)
        else:
            cls = values_to_classes(r.values, rating_values, mapping)
        u, i, _ = r.to_torch(dev)
        return _Entries(torch.as_tensor(cls, device=dev), u, i, r.values)

    def cat(self, other: _Entries) -> _Entries:
        return _Entries(
            torch.cat([self.classes, other.classes]),
            torch.cat([self.rows, other.rows]),
            torch.cat([self.cols, other.cols]),
            np.concatenate([self.values, other.values]),
        )


def _weight_penalty(model: nn.Module) -> torch.Tensor:
    """Sum of squared weight matrices (biases excluded), as the authors' Keras l2 regularizer."""
    return torch.stack([p.pow(2).sum() for p in model.parameters() if p.ndim == 2]).sum()


def _train_step(
    model: ExchangeableRatingModel,
    config: ExchangeableConfig,
    train: _Entries,
    n_rows: int,
    n_cols: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Cross-entropy of one step: on hidden entries when masking, else on every input entry (plain F-EAE)."""
    cls, rows, cols = train.classes, train.rows, train.cols
    if config.submatrix_rows is not None:
        assert config.submatrix_cols is not None
        pos, rows, cols, n_rows, n_cols = sample_submatrix(
            rows, cols, n_rows, n_cols, config.submatrix_rows, config.submatrix_cols,
            generator=generator, mode=config.submatrix_sampling,
        )  # fmt: skip
        cls = cls[pos]
    if config.mask_fraction > 0:
        hidden = sample_hidden_mask(cls.shape[0], config.mask_fraction, generator, cls.device)
        vis = ~hidden
        _, logits = model.query_logits(
            cls[vis], rows[vis], cols[vis], rows[hidden], cols[hidden], n_rows, n_cols, generator=generator
        )
        return F.cross_entropy(logits, cls[hidden])
    empty = rows[:0]
    logits, _ = model.query_logits(cls, rows, cols, empty, empty, n_rows, n_cols, generator=generator)
    return F.cross_entropy(logits, cls)


def _check_resume(saved: dict[str, Any], config: ExchangeableConfig, seed: int) -> None:
    now = asdict(config)
    diff = [k for k in now if k not in _RESUMABLE_CHANGES and saved["config"].get(k) != now[k]]
    if diff or saved["seed"] != seed:
        raise ValueError(
            f"checkpoint was written with a different config/seed (fields {diff}, seed {saved['seed']} vs {seed}); "
            "use another checkpoint_path"
        )


def _clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_exchangeable(
    split: RatingSplit,
    config: ExchangeableConfig = ExchangeableConfig(),
    *,
    device: str = "auto",
    seed: int = 0,
    checkpoint_path: Path | None = None,
) -> tuple[FitResult, ExchangeableRatingModel]:
    """:func:`fit_exchangeable`, also returning the model at its best validation state (for transfer runs)."""
    if split.valid is None or len(split.valid) == 0:
        raise ValueError(
            "fit_exchangeable needs split.valid for model selection; carve one with split.with_validation(f, seed)"
        )
    dev = resolve_device(device)
    seed_everything(seed)
    gen = torch.Generator(device=dev).manual_seed(seed)
    if config.rating_values is not None:
        classes = tuple(float(v) for v in config.rating_values)
    else:
        classes = tuple(float(v) for v in np.unique(split.train.values))
    model = build_model(config, classes).to(dev)
    eval_model = copy.deepcopy(model) if config.ema_decay is not None else model
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, eps=config.adam_eps)
    stopper = EarlyStopping(config.patience)
    n_rows, n_cols = split.n_users, split.n_items

    train = _Entries.of(split.train, classes, "exact", dev)  # the class set must cover every training value
    # validation values are targets, and test-time input: one unseen in training snaps to the nearest class
    valid = _Entries.of(split.valid, classes, "nearest", dev)
    test = _Entries.of(split.test, classes, None, dev)  # targets only
    test_input = train.cat(valid) if config.test_input_includes_valid else train

    def evaluate(m: ExchangeableRatingModel, inp: _Entries, query: _Entries) -> np.ndarray:
        pred = _expected_at(
            m, inp.classes, inp.rows, inp.cols, query.rows, query.cols, n_rows, n_cols, config.eval_chunk_size
        )
        return pred.double().cpu().numpy()

    if config.submatrix_rows is None:
        steps = config.steps_per_epoch or 1
    else:
        assert config.submatrix_cols is not None
        steps = config.steps_per_epoch or max(1, n_rows // config.submatrix_rows) * max(
            1, n_cols // config.submatrix_cols
        )

    history: list[dict[str, float]] = []
    best_state = _clone_state(eval_model)
    epoch, stopped, train_seconds = 0, False, 0.0
    loss_sum, loss_n = 0.0, 0
    saved = load_checkpoint(checkpoint_path)
    if saved is not None:
        _check_resume(saved, config, seed)
        model.load_state_dict(saved["model"])
        if saved["ema_model"] is not None:
            eval_model.load_state_dict(saved["ema_model"])
        opt.load_state_dict(saved["optimizer"])
        stopper.load_state_dict(saved["stopper"])
        gen.set_state(saved["generator"])
        torch.set_rng_state(saved["torch_rng"])
        history, best_state = saved["history"], saved["best_state"]
        epoch, stopped, train_seconds = saved["epoch"], saved["stopped"], saved["train_seconds"]
        loss_sum, loss_n = saved["loss_sum"], saved["loss_n"]

    def save() -> None:
        if checkpoint_path is None:
            return
        atomic_torch_save(
            {
                "config": asdict(config),
                "seed": seed,
                "rating_values": classes,
                "model": model.state_dict(),
                "ema_model": eval_model.state_dict() if eval_model is not model else None,
                "optimizer": opt.state_dict(),
                "stopper": stopper.state_dict(),
                "generator": gen.get_state(),
                "torch_rng": torch.get_rng_state(),
                "history": history,
                "best_state": best_state,
                "epoch": epoch,
                "stopped": stopped,
                "train_seconds": train_seconds,
                "loss_sum": loss_sum,
                "loss_n": loss_n,
            },
            Path(checkpoint_path),
        )

    while epoch < config.epochs and not stopped:
        t0 = time.perf_counter()
        model.train()
        for _ in range(steps):
            loss = _train_step(model, config, train, n_rows, n_cols, gen)
            total = loss + config.weight_decay * _weight_penalty(model)
            opt.zero_grad(set_to_none=True)
            total.backward()
            opt.step()
            if eval_model is not model:
                assert config.ema_decay is not None
                with torch.no_grad():
                    for pe, p in zip(eval_model.parameters(), model.parameters(), strict=True):
                        pe.lerp_(p, 1.0 - config.ema_decay)
            loss_sum += float(loss.detach())
            loss_n += 1
        epoch += 1
        train_seconds += time.perf_counter() - t0
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            valid_rmse = rmse(evaluate(eval_model, train, valid), valid.values)
            test_rmse = rmse(evaluate(eval_model, test_input, test), test.values)  # learning curve only
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": loss_sum / max(loss_n, 1),
                    "valid_rmse": valid_rmse,
                    "test_rmse": test_rmse,
                    "train_seconds": train_seconds,
                }
            )
            loss_sum, loss_n = 0.0, 0
            if stopper.update(valid_rmse, epoch):
                best_state = _clone_state(eval_model)
            diverged = config.divergence_ratio is not None and valid_rmse > config.divergence_ratio * stopper.best
            stopped = stopper.should_stop or diverged
        if epoch % config.checkpoint_every == 0 or stopped or epoch == config.epochs:
            save()

    eval_model.load_state_dict(best_state)
    test_pred = evaluate(eval_model, test_input, test)
    valid_pred = evaluate(eval_model, train, valid)
    n_params = sum(p.numel() for p in model.parameters())
    result = FitResult(
        metrics={"rmse": rmse(test_pred, test.values), "mae": mae(test_pred, test.values)},
        valid_metrics={"rmse": rmse(valid_pred, valid.values)},
        best_epoch=stopper.best_epoch,
        history=pd.DataFrame(history, columns=["epoch", "train_loss", "valid_rmse", "test_rmse", "train_seconds"]),
        config={
            **asdict(config),
            "seed": seed,
            "device": device_name(dev),
            "rating_values": classes,
            "n_params": n_params,
            "steps_per_epoch": steps,
            "train_seconds": train_seconds,
        },
        test_predictions=test_pred,
        epochs_run=epoch,
    )
    return result, eval_model


def fit_exchangeable(
    split: RatingSplit,
    config: ExchangeableConfig = ExchangeableConfig(),
    *,
    device: str = "auto",
    seed: int = 0,
    checkpoint_path: Path | None = None,
) -> FitResult:
    """Train the model ``config.kind`` on ``split.train``; select on ``split.valid``; test RMSE at the best state.

    Rating classes: ``config.rating_values`` (e.g. ``split.rating_values``) or the distinct training values; a
    training value outside the class set is an error, a validation value is snapped to the nearest class
    where it is used as input (test time). RMSE is on the dataset's scale.

    History has one row per evaluation (``epoch, train_loss, valid_rmse, test_rmse, train_seconds``); the test
    column is a learning curve only. With ``checkpoint_path`` the run saves every ``checkpoint_every`` epochs
    and at the end, and resumes from an existing file (same config except ``epochs``, same seed).
    """
    return train_exchangeable(split, config, device=device, seed=seed, checkpoint_path=checkpoint_path)[0]


def model_from_checkpoint(checkpoint_path: Path, device: str = "auto") -> ExchangeableRatingModel:
    """The best-validation model saved by a ``fit_exchangeable`` run (for :func:`predict_ratings`)."""
    saved = load_checkpoint(Path(checkpoint_path))
    if saved is None:
        raise FileNotFoundError(checkpoint_path)
    known = {f.name for f in fields(ExchangeableConfig)}
    config = ExchangeableConfig(**{k: v for k, v in saved["config"].items() if k in known})
    model = build_model(config, saved["rating_values"])
    model.load_state_dict(saved["best_state"])
    return model.to(resolve_device(device)).eval()
