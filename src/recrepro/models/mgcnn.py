"""Geometric matrix completion with recurrent multi-graph neural networks (Monti, Bronstein & Bresson, NIPS 2017).

Objective. A partially observed users x items matrix M with a user graph (rows) and/or an item graph (columns)
is completed by a learned diffusion: a graph convolution extracts features of the current estimate, an LSTM
turns them into an increment, and T steps are unrolled. The whole unrolled process is trained on

    ℓ = ‖P_Ω(X̂ − M)‖²_F / |Ω| + γ/2 (‖X‖²_Dr + ‖X‖²_Dc) [+ γ_W/2 ‖W‖²_F/(m r) + γ_H/2 ‖H‖²_F/(n r)],

with ‖X‖²_Dr = tr(Xᵀ L_r X), ‖X‖²_Dc = tr(X L_c Xᵀ) (normalised Laplacians) and X̂ the network output
min-max rescaled over the whole matrix to the rating range (authors' code). Equation numbers not verified
(no full text of the paper was available); the implementation follows the authors' notebooks
(fmonti/mgcnn, TF 1.0), see ``/work/shared/research/protocols.md`` section 4.

Two models:

* ``RMGCNN`` (full): bivariate Chebyshev filters T_i(L̃_r) X T_j(L̃_c), i, j = 0..p, on the whole score
  matrix, a per-entry linear map to 32 features + ReLU, one LSTM over all m·n entries, dX = tanh(out(c)).
  X₀ = M ⊙ Ω_init. Cost O(mn) per step.
* ``SRMGCNN`` (separable): X = W Hᵀ with W, H initialised by the rank-r SVD of M ⊙ Ω_init; a univariate
  Chebyshev conv on W (user graph) and on H (item graph), separate LSTMs, dW and dH. Cost O((m + n) r).

Ω_init is a random half of the training entries (``np.random.RandomState(0)`` shuffle of the row-major list,
the authors' ``np.random.seed(0)`` + ``np.random.shuffle``); it only builds the initial state, the loss covers
every training entry.

Authors' details kept (each selectable in ``MGCNNConfig``): rescaled Laplacian simplified to L − I (assumes
λ_max = 2); non-standard LSTM (sigmoid cell candidate, h = o ⊙ sigmoid(c), increment read from the cell
state c); the Dirichlet terms on the raw X = W Hᵀ also for sRMGCNN (the paper's factorised loss puts them on
W and H, as recalled, not verified: ``dirichlet_target='factors'``); the Frobenius terms on the diffused
W, H; with a single graph (Douban: users, YahooMusic: items) the factor of the other side is a free
trainable matrix initialised by the SVD, not diffused (``ungraphed_factor='lstm'`` diffuses it with an
identity filter instead).

sRMGCNN never builds X with gradients (see ``MGCNNOutput``): the loss is exact but costs
O((m + n) r² + |Ω| r) plus one gradient-free m·n·r product per step to find the extremes of X.

Protocol. ``fit_mgcnn(selection="validation")`` (clean): choose the evaluation with the lowest RMSE on a
validation set carved from the training data, report the test RMSE there. ``selection="paper"`` (authors'
notebooks): no validation; report the test RMSE at the evaluation of the iteration with the lowest training
loss (test evaluated every ``eval_every`` iterations).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.sparse.linalg as sla
import torch
from torch import nn

from ..data.types import Ratings, RatingSplit
from ..device import device_name, resolve_device, seed_everything
from ..metrics import rmse
from ..training import EarlyStopping, FitResult, atomic_torch_save, load_checkpoint

LaplacianRescale = Literal["simplified", "exact"]
Selection = Literal["validation", "paper"]

# ---------------------------------------------------------------------------------------------------------
# Graph utilities
# ---------------------------------------------------------------------------------------------------------


def normalized_laplacian(adjacency: sp.spmatrix | np.ndarray) -> sp.csr_matrix:
    """L = I − D^{-1/2} A D^{-1/2} of a symmetric weighted adjacency.

    Matches ``scipy.sparse.csgraph.laplacian(A, normed=True)`` (the authors' call): self-loops are ignored and
    an isolated node gets a zero row (L_ii = 0), so its features pass through T_k(L̃) unchanged up to sign.
    """
    a = sp.csr_matrix(adjacency, dtype=np.float64)
    if a.shape[0] != a.shape[1]:
        raise ValueError(f"adjacency must be square, got {a.shape}")
    if abs(a - a.T).max() > 1e-8 * max(1.0, abs(a).max()):
        raise ValueError("adjacency must be symmetric")
    a = a.tolil()
    a.setdiag(0.0)
    a = a.tocsr()
    a.eliminate_zeros()
    deg = np.asarray(a.sum(axis=1)).ravel()
    isolated = deg <= 0
    inv_sqrt = np.where(isolated, 0.0, 1.0 / np.sqrt(np.where(isolated, 1.0, deg)))
    d = sp.diags(inv_sqrt)
    lap = sp.diags((~isolated).astype(np.float64)) - d @ a @ d
    return sp.csr_matrix(lap)


def largest_eigenvalue(laplacian: sp.spmatrix, dense_below: int = 2000) -> float:
    """λ_max of a symmetric Laplacian: dense ``eigvalsh`` for small graphs, ARPACK ``eigsh`` otherwise."""
    n = laplacian.shape[0]
    if n <= dense_below:
        return float(np.linalg.eigvalsh(sp.csr_matrix(laplacian).toarray())[-1])
    v0 = np.ones(n) / np.sqrt(n)  # fixed start vector: deterministic
    return float(sla.eigsh(laplacian, k=1, which="LA", v0=v0, return_eigenvectors=False)[0])


def rescaled_laplacian(laplacian: sp.spmatrix, mode: LaplacianRescale = "simplified") -> sp.csr_matrix:
    """L̃ with spectrum in [−1, 1] for the Chebyshev basis.

    ``exact``: 2L/λ_max − I (Defferrard et al. 2016). ``simplified``: L − I, the authors' code, exact only
    when λ_max = 2 (a bipartite component); a normalised Laplacian has λ_max ≤ 2 so the spectrum of L − I
    lies in [−1, λ_max − 1] ⊂ [−1, 1], merely not stretched to fill it.
    """
    lap = sp.csr_matrix(laplacian, dtype=np.float64)
    eye = sp.identity(lap.shape[0], format="csr")
    if mode == "simplified":
        return sp.csr_matrix(lap - eye)
    if mode == "exact":
        lmax = largest_eigenvalue(lap)
        if lmax < 1e-12:  # edgeless graph: L = 0, any scale gives −I
            lmax = 2.0
        return sp.csr_matrix(2.0 * lap / lmax - eye)
    raise ValueError(f"unknown Laplacian rescaling {mode!r}; choose 'simplified' or 'exact'")


def sparse_to_torch(
    matrix: sp.spmatrix,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    layout: Literal["coo", "csr"] = "coo",
) -> torch.Tensor:
    """A coalesced torch COO tensor on ``device``, or a CSR tensor (``layout="csr"``, the faster operand of
    :func:`symmetric_spmm`: about 7x per product on one CPU thread for a 3000-node graph)."""
    coo = sp.coo_matrix(matrix)
    idx = torch.as_tensor(np.vstack([coo.row, coo.col]).astype(np.int64))
    vals = torch.as_tensor(coo.data, dtype=dtype)
    out = torch.sparse_coo_tensor(idx, vals, coo.shape, device=device, check_invariants=False).coalesce()
    if layout == "coo":
        return out
    if layout == "csr":
        with warnings.catch_warnings():  # "sparse CSR support is in beta": only the product A @ x is used
            warnings.simplefilter("ignore", UserWarning)
            return out.to_sparse_csr()
    raise ValueError(f"unknown sparse layout {layout!r}; choose 'coo' or 'csr'")


class _SymmetricSpMM(torch.autograd.Function):
    """y = A x for a constant symmetric sparse A; backward A g (= Aᵀ g), one more sparse-dense product.

    Autograd's own backward of a sparse product forms Aᵀ explicitly (slow on CPU, and not available for
    every layout); the Laplacians of this module are symmetric by construction.
    """

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        ctx.a = a
        return a @ x

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[None, torch.Tensor]:
        return None, ctx.a @ grad


def symmetric_spmm(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A x for a sparse (COO or CSR) symmetric A that needs no gradient; differentiable in x."""
    return _SymmetricSpMM.apply(a, x) if x.requires_grad else a @ x


def chebyshev_basis(lap_tilde: torch.Tensor | None, x: torch.Tensor, order: int) -> list[torch.Tensor]:
    """[T_0(L̃)x, …, T_order(L̃)x] by the recurrence T_k = 2 L̃ T_{k−1} − T_{k−2} with sparse products.

    ``lap_tilde=None`` means no graph on that side: the basis is just [x] (identity filter).
    """
    if lap_tilde is None:
        return [x]
    basis = [x]
    if order >= 1:
        basis.append(symmetric_spmm(lap_tilde, x))
    for _ in range(2, order + 1):
        basis.append(2.0 * symmetric_spmm(lap_tilde, basis[-1]) - basis[-2])
    return basis


def bivariate_chebyshev_basis(
    lap_rows: torch.Tensor | None, lap_cols: torch.Tensor | None, x: torch.Tensor, order: int
) -> torch.Tensor:
    """(m, n, K) stack of T_i(L̃_r) X T_j(L̃_c) for all (i, j); K = (p_r + 1)(p_c + 1), i major.

    L̃_c is symmetric, so X T_j(L̃_c) = (T_j(L̃_c) Xᵀ)ᵀ and only sparse-dense products are needed.
    """
    out = []
    for y in chebyshev_basis(lap_rows, x, order):
        out.extend(z.T for z in chebyshev_basis(lap_cols, y.T.contiguous(), order))
    return torch.stack(out, dim=2)


def dirichlet_energy(lap: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """tr(xᵀ L x) = Σ x ⊙ (L x), with L sparse symmetric (n, n) and x (n, d)."""
    return (x * symmetric_spmm(lap, x)).sum()


# ---------------------------------------------------------------------------------------------------------
# Configuration
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MGCNNConfig:
    """Hyperparameters; defaults are the authors' ML-100K notebook unless the comment says otherwise."""

    model: Literal["srmgcnn", "rmgcnn"] = "srmgcnn"  # factorised sRMGCNN (paper's real-data model) or full RMGCNN
    rank: int = 10  # r of W, H; authors' code: 10 on real data, 15 on synthetic
    cheb_order: int = 4  # p; 5 polynomials T0..T4 (authors' ord_row = ord_col = 5)
    n_conv_features: int = 32  # authors' n_conv_feat
    lstm_hidden: int = 32  # authors' LSTM weights are n_conv_feat x n_conv_feat
    diffusion_steps: int = 10  # T; authors' num_iterations = 10
    learning_rate: float = 1e-3  # Adam; authors' notebooks
    n_iterations: int = 10_000  # full-batch Adam steps; authors: 10,000 on ML-100K
    eval_every: int = 10  # authors' num_iter_test (100 on YahooMusic)
    gamma: float = 1e-10  # Dirichlet weight γ; authors' ML-100K notebook
    gamma_w: float = 0.0  # Frobenius weight on W (divided by m·r); authors use it on Douban/Yahoo only
    gamma_h: float = 0.0  # Frobenius weight on H (divided by n·r); authors use it on Douban only
    dirichlet_normalize: bool = False  # divide Dirichlet terms by m·n (authors: Douban and Yahoo notebooks)
    dirichlet_target: Literal["matrix", "factors"] = "matrix"  # authors' code: on X; paper: tr(WᵀL_rW)+tr(HᵀL_cH)
    laplacian_rescale: LaplacianRescale = "simplified"  # authors' code: L − I; "exact": 2L/λ_max − I
    output_rescale: Literal["minmax", "none"] = "minmax"  # authors: min-max of X to the rating range, in the loss
    lstm_variant: Literal["authors", "standard"] = "authors"  # authors' gates (see GraphLSTMCell)
    ungraphed_factor: Literal["free", "lstm"] = "free"  # side without graph: authors train it as a free matrix
    init_fraction: float = 0.5  # share of training entries used only for the SVD / X0 init (authors: half)
    init_seed: int = 0  # authors' np.random.seed(0) for that split
    patience: int | None = None  # validation mode only: stop after this many evaluations without gain; ours
    checkpoint_every: int = 500  # iterations between checkpoints; our choice

    @classmethod
    def preset(cls, dataset_name: str, model: str = "srmgcnn", **overrides: Any) -> MGCNNConfig:
        """The authors' notebook settings for one of the paper's datasets (protocols.md section 4.2).

        Accepts ``ml-100k``, ``douban``, ``flixster``, ``yahoo_music``, ``synthetic_netflix`` (also the
        ``load_split`` names such as ``ml-100k-monti`` or ``douban/monti``).
        """
        key = dataset_name.split("/")[0].lower().replace("-monti", "").replace("yahoomusic", "yahoo_music")
        presets: dict[str, dict[str, Any]] = {
            # ML-100K notebook: gamma=1e-10, 10,000 iterations, test every 10, rank 10
            "ml-100k": {"gamma": 1e-10, "n_iterations": 10_000},
            # Flixster notebook (both graphs): gamma=1e-10, 10,000 iterations, rank 10
            "flixster": {"gamma": 1e-10, "n_iterations": 10_000},
            # Douban notebook (user graph only): gamma=1e2, gamma_H=1e2, gamma_W=1, trace/(m·n), 5,000 iterations
            "douban": {
                "gamma": 1e2,
                "gamma_h": 1e2,
                "gamma_w": 1.0,
                "dirichlet_normalize": True,
                "n_iterations": 5_000,
            },
            # YahooMusic notebook (item graph only): gamma=1e2, gamma_W=1e-2, trace/(m·n), test every 100
            "yahoo_music": {
                "gamma": 1e2,
                "gamma_w": 1e-2,
                "dirichlet_normalize": True,
                "n_iterations": 10_000,
                "eval_every": 100,
            },
            # Synthetic Netflix notebooks: sRMGCNN rank 15, gamma=1e-10, 50,000 it.; RMGCNN gamma=1e-8, 25,000 it.
            "synthetic_netflix": (
                {"rank": 15, "gamma": 1e-10, "n_iterations": 50_000}
                if model == "srmgcnn"
                else {"gamma": 1e-8, "n_iterations": 25_000}
            ),
        }
        if key not in presets:
            raise ValueError(f"no MGCNN preset for {dataset_name!r}; known: {', '.join(presets)}")
        if model not in ("srmgcnn", "rmgcnn"):
            raise ValueError(f"model must be 'srmgcnn' or 'rmgcnn', got {model!r}")
        return cls(model=model, **{**presets[key], **overrides})  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------------------


def _xavier(*shape: int) -> nn.Parameter:
    """Glorot-uniform weight, like the authors' ``xavier_initializer`` (one call per matrix)."""
    return nn.Parameter(nn.init.xavier_uniform_(torch.empty(*shape)))


class GraphLSTMCell(nn.Module):
    """LSTM applied independently to every node (row) with shared weights.

    ``authors``: f, i, o = σ(·); candidate g = σ(·) (not tanh); c' = f c + i g; h' = o σ(c'); the network
    reads the increment from c'. ``standard``: g = tanh(·), h' = o tanh(c'), increment read from h'.
    Each of the 8 gate matrices is Xavier-initialised separately and the biases are zero, as in the TF code.
    """

    def __init__(self, n_in: int, n_hidden: int, variant: str = "authors") -> None:
        super().__init__()
        if variant not in ("authors", "standard"):
            raise ValueError(f"unknown LSTM variant {variant!r}")
        self.variant = variant
        self.n_hidden = n_hidden
        # gates f, i, o, c side by side in one matrix (one matmul), each block Xavier-initialised on its own
        self.w = nn.Parameter(torch.cat([nn.init.xavier_uniform_(torch.empty(n_in, n_hidden)) for _ in range(4)], 1))
        self.u = nn.Parameter(
            torch.cat([nn.init.xavier_uniform_(torch.empty(n_hidden, n_hidden)) for _ in range(4)], 1)
        )
        self.b = nn.Parameter(torch.zeros(4 * n_hidden))

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """One step; returns (the features the increment is read from, (h', c'))."""
        h, c = state
        pre = x @ self.w + h @ self.u + self.b
        f, i, o, g = pre.split(self.n_hidden, dim=1)
        f, i, o = torch.sigmoid(f), torch.sigmoid(i), torch.sigmoid(o)
        if self.variant == "authors":
            c = f * c + i * torch.sigmoid(g)
            h = o * torch.sigmoid(c)
            return c, (h, c)
        c = f * c + i * torch.tanh(g)
        h = o * torch.tanh(c)
        return h, (h, c)


class ChebConv(nn.Module):
    """ReLU(concat_k(T_k(L̃) x) Θ + b): the authors' ``mono_conv`` (and ``bid_conv`` with K = (p+1)²)."""

    def __init__(self, n_basis: int, n_in: int, n_out: int) -> None:
        super().__init__()
        self.weight = _xavier(n_basis * n_in, n_out)
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, basis: torch.Tensor) -> torch.Tensor:
        """``basis`` is (rows, n_basis * n_in)."""
        return torch.relu(basis @ self.weight + self.bias)


class _FactorDiffusion(nn.Module):
    """Conv → LSTM → tanh(linear) producing the increment of one factor (W or H), rows = graph nodes."""

    def __init__(self, n_basis: int, rank: int, config: MGCNNConfig) -> None:
        super().__init__()
        self.conv = ChebConv(n_basis, rank, config.n_conv_features)
        self.cell = GraphLSTMCell(config.n_conv_features, config.lstm_hidden, config.lstm_variant)
        self.out_w = _xavier(config.lstm_hidden, rank)
        self.out_b = nn.Parameter(torch.zeros(rank))

    def forward(
        self, basis: list[torch.Tensor], state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        feat = self.conv(torch.cat(basis, dim=1))
        read, state = self.cell(feat, state)
        return torch.tanh(read @ self.out_w + self.out_b), state


class MGCNNOutput(NamedTuple):
    """What a forward pass produces: the full X (RMGCNN) or the factors W, H with X = W Hᵀ (sRMGCNN).

    For sRMGCNN the m x n product is never built with gradients: the loss needs X only at the observed
    entries, at its two extreme entries (min-max rescaling) and through traces that factorise, which keeps
    the cost of a step O((m + n) r² + |Ω| r) plus one gradient-free m·n·r product to locate the extremes.
    """

    x: torch.Tensor | None  # (m, n) raw score matrix (RMGCNN)
    w: torch.Tensor | None  # (m, r) (sRMGCNN)
    h: torch.Tensor | None  # (n, r) (sRMGCNN)

    def dense(self) -> torch.Tensor:
        """The full m x n matrix X."""
        return self.x if self.x is not None else self.w @ self.h.T

    def entries(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """X at the given (user, item) pairs."""
        if self.x is not None:
            return self.x[users, items]
        return (self.w[users] * self.h[items]).sum(1)

    def extremes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(min X, max X), differentiable like ``torch.amin``/``amax`` (gradient to the extreme entry)."""
        if self.x is not None:
            return self.x.min(), self.x.max()
        with torch.no_grad():  # locate the extremes block by block, ≤ 2^24 entries at a time
            n = self.h.shape[0]
            step = max(1, 2**24 // max(n, 1))
            lo, hi = (float("inf"), 0, 0), (-float("inf"), 0, 0)
            for start in range(0, self.w.shape[0], step):
                block = self.w[start : start + step] @ self.h.T
                a, b = int(block.argmin()), int(block.argmax())
                if float(block.view(-1)[a]) < lo[0]:
                    lo = (float(block.view(-1)[a]), start + a // n, a % n)
                if float(block.view(-1)[b]) > hi[0]:
                    hi = (float(block.view(-1)[b]), start + b // n, b % n)
        return self.w[lo[1]] @ self.h[lo[2]], self.w[hi[1]] @ self.h[hi[2]]


class SRMGCNN(nn.Module):
    """Separable recurrent multi-graph CNN: X = W Hᵀ, W diffused on the user graph, H on the item graph.

    A side whose Laplacian is None is a free trainable factor when ``ungraphed_factor='free'`` (authors'
    Douban/Yahoo notebooks), or is diffused by its own LSTM fed with an identity filter (no graph term) when
    ``ungraphed_factor='lstm'``.
    """

    def __init__(
        self,
        w0: torch.Tensor,
        h0: torch.Tensor,
        lap_rows: torch.Tensor | None,
        lap_cols: torch.Tensor | None,
        config: MGCNNConfig,
    ) -> None:
        super().__init__()
        self.config = config
        self.lap_rows, self.lap_cols = lap_rows, lap_cols  # constants, deliberately not in state_dict
        self.diffuse_w = lap_rows is not None or config.ungraphed_factor == "lstm"
        self.diffuse_h = lap_cols is not None or config.ungraphed_factor == "lstm"
        k = config.cheb_order
        if self.diffuse_w:
            self.register_buffer("w0", w0.clone())
            self.net_w = _FactorDiffusion(k + 1 if lap_rows is not None else 1, w0.shape[1], config)
        else:
            self.w0 = nn.Parameter(w0.clone())
        if self.diffuse_h:
            self.register_buffer("h0", h0.clone())
            self.net_h = _FactorDiffusion(k + 1 if lap_cols is not None else 1, h0.shape[1], config)
        else:
            self.h0 = nn.Parameter(h0.clone())

    def forward(self) -> MGCNNOutput:
        cfg = self.config
        w, h = self.w0, self.h0
        zeros = lambda n: torch.zeros(n, cfg.lstm_hidden, device=w.device, dtype=w.dtype)  # noqa: E731
        state_w = (zeros(w.shape[0]), zeros(w.shape[0]))
        state_h = (zeros(h.shape[0]), zeros(h.shape[0]))
        for _ in range(cfg.diffusion_steps):
            # both increments are computed from the factors before this step's update (authors' order)
            dw = dh = None
            if self.diffuse_w:
                dw, state_w = self.net_w(chebyshev_basis(self.lap_rows, w, cfg.cheb_order), state_w)
            if self.diffuse_h:
                dh, state_h = self.net_h(chebyshev_basis(self.lap_cols, h, cfg.cheb_order), state_h)
            w = w if dw is None else w + dw
            h = h if dh is None else h + dh
        return MGCNNOutput(None, w, h)


class RMGCNN(nn.Module):
    """Full recurrent multi-graph CNN on the m x n score matrix (one LSTM over all m·n entries).

    Memory grows as m·n·T·(K + ~8·hidden): fine for the synthetic 150 x 200 matrix, not for 3000 x 3000.
    """

    def __init__(
        self, x0: torch.Tensor, lap_rows: torch.Tensor | None, lap_cols: torch.Tensor | None, config: MGCNNConfig
    ) -> None:
        super().__init__()
        self.config = config
        self.lap_rows, self.lap_cols = lap_rows, lap_cols
        self.register_buffer("x0", x0.clone())
        p = config.cheb_order
        n_basis = (p + 1 if lap_rows is not None else 1) * (p + 1 if lap_cols is not None else 1)
        self.conv = ChebConv(n_basis, 1, config.n_conv_features)
        self.cell = GraphLSTMCell(config.n_conv_features, config.lstm_hidden, config.lstm_variant)
        self.out_w = _xavier(config.lstm_hidden, 1)
        self.out_b = nn.Parameter(torch.zeros(1))

    def forward(self) -> MGCNNOutput:
        cfg = self.config
        x = self.x0
        m, n = x.shape
        h = torch.zeros(m * n, cfg.lstm_hidden, device=x.device, dtype=x.dtype)
        state = (h, h)
        for _ in range(cfg.diffusion_steps):
            basis = bivariate_chebyshev_basis(self.lap_rows, self.lap_cols, x, cfg.cheb_order)
            feat = self.conv(basis.reshape(m * n, -1))
            read, state = self.cell(feat, state)
            x = x + torch.tanh(read @ self.out_w + self.out_b).reshape(m, n)
        return MGCNNOutput(x, None, None)


# ---------------------------------------------------------------------------------------------------------
# Problem, loss, prediction
# ---------------------------------------------------------------------------------------------------------


@dataclass
class MGCNNProblem:
    """Everything the loss needs, on one device. Built from the training entries only (no test value)."""

    n_users: int
    n_items: int
    users: torch.Tensor  # training entries
    items: torch.Tensor
    values: torch.Tensor
    lap_rows: torch.Tensor | None  # normalised Laplacians (Dirichlet terms)
    lap_cols: torch.Tensor | None
    cheb_rows: torch.Tensor | None  # rescaled Laplacians L̃ (Chebyshev basis)
    cheb_cols: torch.Tensor | None
    init_matrix: sp.csr_matrix  # M ⊙ Ω_init (the half of the training entries used for initialisation)
    rating_range: tuple[float, float]


def init_split(train: Ratings, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of the training entries used for initialisation.

    Entries are put in row-major (user, item) order, the order of ``np.where(Otraining)``, and shuffled with
    ``RandomState(seed).shuffle``; the first ``int(n * fraction)`` are the init half (authors: n // 2).
    """
    order = np.lexsort((train.items, train.users))
    idx = np.arange(len(train))
    np.random.RandomState(seed).shuffle(idx)
    chosen = order[idx[: int(len(train) * fraction)]]
    mask = np.zeros(len(train), dtype=bool)
    mask[chosen] = True
    return mask


def build_problem(split: RatingSplit, config: MGCNNConfig, device: torch.device | str = "cpu") -> MGCNNProblem:
    """Laplacians, training tensors and the init matrix for ``split`` (``split.train`` only)."""
    train = split.train
    if len(train) == 0:
        raise ValueError("the training set is empty")
    mask = init_split(train, config.init_fraction, config.init_seed)
    init = train.take(mask)
    init_matrix = sp.csr_matrix((init.values, (init.users, init.items)), shape=(train.n_users, train.n_items))

    def graph(adj: sp.spmatrix | None, n: int, side: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        if adj is None:
            return None, None
        if adj.shape != (n, n):
            raise ValueError(f"{side} graph has shape {adj.shape}, expected ({n}, {n})")
        lap = normalized_laplacian(adj)
        return (
            sparse_to_torch(lap, device, layout="csr"),
            sparse_to_torch(rescaled_laplacian(lap, config.laplacian_rescale), device, layout="csr"),
        )

    lap_r, cheb_r = graph(split.user_graph, train.n_users, "user")
    lap_c, cheb_c = graph(split.item_graph, train.n_items, "item")
    users, items, values = train.to_torch(device)
    return MGCNNProblem(
        train.n_users, train.n_items, users, items, values, lap_r, lap_c, cheb_r, cheb_c, init_matrix,
        split.rating_range,
    )  # fmt: skip


def svd_factors(matrix: sp.spmatrix, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """W = U_r S_r^{1/2}, H = V_r S_r^{1/2} (authors' init), signs fixed so each u_k's largest |entry| is > 0."""
    a = sp.csr_matrix(matrix, dtype=np.float64)
    if min(a.shape) <= 2000 or rank >= min(a.shape) - 1:
        u, s, vt = np.linalg.svd(a.toarray(), full_matrices=False)
        u, s, vt = u[:, :rank], s[:rank], vt[:rank]
    else:
        v0 = np.ones(min(a.shape)) / np.sqrt(min(a.shape))  # deterministic ARPACK start
        u, s, vt = sla.svds(a, k=rank, v0=v0)
        order = np.argsort(-s)
        u, s, vt = u[:, order], s[order], vt[order]
    sign = np.sign(u[np.abs(u).argmax(axis=0), np.arange(u.shape[1])])
    sign[sign == 0] = 1.0
    u, vt = u * sign, vt * sign[:, None]
    root = np.sqrt(s)
    return u * root, vt.T * root


def build_model(problem: MGCNNProblem, config: MGCNNConfig, seed: int = 0) -> SRMGCNN | RMGCNN:
    """The model of ``config.model`` with weights drawn from ``seed``, on the problem's device."""
    device = problem.users.device
    seed_everything(seed)
    if config.model == "srmgcnn":
        w0, h0 = svd_factors(problem.init_matrix, config.rank)
        as_t = lambda a: torch.as_tensor(a, dtype=torch.float32)  # noqa: E731
        model: SRMGCNN | RMGCNN = SRMGCNN(as_t(w0), as_t(h0), problem.cheb_rows, problem.cheb_cols, config)
    elif config.model == "rmgcnn":
        x0 = torch.as_tensor(problem.init_matrix.toarray(), dtype=torch.float32)
        model = RMGCNN(x0, problem.cheb_rows, problem.cheb_cols, config)
    else:
        raise ValueError(f"unknown model {config.model!r}; choose 'srmgcnn' or 'rmgcnn'")
    return model.to(device)


def predict_entries(
    out: MGCNNOutput, config: MGCNNConfig, rating_range: tuple[float, float], users: torch.Tensor, items: torch.Tensor
) -> torch.Tensor:
    """X̂ at (users, items): X min-max rescaled over the whole matrix to the rating range (authors), or raw X
    (``output_rescale='none'``)."""
    x = out.entries(users, items)
    if config.output_rescale == "none":
        return x
    lo, hi = rating_range
    x_min, x_max = out.extremes()
    return lo + (hi - lo) * (x - x_min) / (x_max - x_min).clamp_min(1e-12)


def output_matrix(out: MGCNNOutput, config: MGCNNConfig, rating_range: tuple[float, float]) -> torch.Tensor:
    """The full m x n prediction X̂ (for inspection; training and evaluation use ``predict_entries``)."""
    x = out.dense()
    if config.output_rescale == "none":
        return x.clamp(*rating_range)
    lo, hi = rating_range
    return lo + (hi - lo) * (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)


def dirichlet_terms(out: MGCNNOutput, problem: MGCNNProblem, config: MGCNNConfig) -> torch.Tensor:
    """tr(Xᵀ L_r X) + tr(X L_c Xᵀ) (or on the factors, ``dirichlet_target='factors'``), /(m·n) if normalised.

    For X = W Hᵀ the traces factorise exactly: tr(Xᵀ L_r X) = ⟨Wᵀ L_r W, Hᵀ H⟩ and tr(X L_c Xᵀ) = ⟨Hᵀ L_c H, Wᵀ W⟩.
    """
    dev = out.w.device if out.x is None else out.x.device
    total = torch.zeros((), device=dev)
    if out.x is not None:  # full model: on X itself
        if problem.lap_rows is not None:
            total = total + dirichlet_energy(problem.lap_rows, out.x)
        if problem.lap_cols is not None:
            total = total + dirichlet_energy(problem.lap_cols, out.x.T)
    else:
        w, h = out.w, out.h
        on_factors = config.dirichlet_target == "factors"
        if problem.lap_rows is not None:
            lw = w.T @ symmetric_spmm(problem.lap_rows, w)
            total = total + (lw.trace() if on_factors else (lw * (h.T @ h)).sum())
        if problem.lap_cols is not None:
            lh = h.T @ symmetric_spmm(problem.lap_cols, h)
            total = total + (lh.trace() if on_factors else (lh * (w.T @ w)).sum())
    if config.dirichlet_normalize:
        total = total / (problem.n_users * problem.n_items)
    return total


def mgcnn_loss(out: MGCNNOutput, problem: MGCNNProblem, config: MGCNNConfig) -> tuple[torch.Tensor, dict[str, float]]:
    """Training loss (see module docstring) and its parts; touches only the training entries of M."""
    pred = predict_entries(out, config, problem.rating_range, problem.users, problem.items)
    data = torch.mean((pred - problem.values) ** 2)
    dirichlet = dirichlet_terms(out, problem, config)
    loss = data + config.gamma / 2 * dirichlet
    if out.w is not None and config.gamma_w:
        loss = loss + config.gamma_w / 2 * out.w.pow(2).sum() / out.w.numel()
    if out.h is not None and config.gamma_h:
        loss = loss + config.gamma_h / 2 * out.h.pow(2).sum() / out.h.numel()
    return loss, {"data": float(data.detach()), "dirichlet": float(dirichlet.detach())}


def _evaluate(
    out: MGCNNOutput, config: MGCNNConfig, rating_range: tuple[float, float], ratings: Ratings
) -> tuple[dict[str, float], np.ndarray]:
    """RMSE of X̂ (clipped to the range when not min-max rescaled) and of raw X on ``ratings``."""
    dev = out.w.device if out.x is None else out.x.device
    users = torch.as_tensor(ratings.users, device=dev)
    items = torch.as_tensor(ratings.items, device=dev)
    pred = predict_entries(out, config, rating_range, users, items)
    if config.output_rescale == "none":
        pred = pred.clamp(*rating_range)
    pred_np = pred.detach().cpu().numpy()
    raw = out.entries(users, items).detach().cpu().numpy()
    return {"rmse": rmse(pred_np, ratings.values), "rmse_raw": rmse(raw, ratings.values)}, pred_np


# ---------------------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------------------

_RESUMABLE_FIELDS = {"n_iterations", "checkpoint_every", "patience"}


def fit_mgcnn(
    split: RatingSplit,
    config: MGCNNConfig | None = None,
    *,
    device: str = "auto",
    seed: int = 0,
    checkpoint_path: Path | str | None = None,
    selection: Selection = "validation",
) -> FitResult:
    """Train sRMGCNN/RMGCNN full-batch with Adam and report the test RMSE at the selected evaluation.

    ``selection="validation"`` needs ``split.valid`` (carve it with ``split.with_validation``) and picks the
    evaluation with the lowest validation RMSE. ``selection="paper"`` reproduces the notebooks: the test
    RMSE at the evaluation ``eval_every·⌊i*/eval_every⌋`` where i* is the iteration of lowest training loss
    (the loss logged at iteration i is the one computed before that iteration's update, as in TF's
    ``session.run([optimizer, loss])``; evaluations run after the update). ``metrics['rmse']`` is on X̂
    (min-max rescaled under the presets), ``metrics['rmse_raw']`` on the raw X = W Hᵀ.
    """
    config = config or MGCNNConfig()
    if selection not in ("validation", "paper"):
        raise ValueError(f"selection must be 'validation' or 'paper', got {selection!r}")
    if selection == "validation" and (split.valid is None or len(split.valid) == 0):
        raise ValueError(
            "selection='validation' needs split.valid; carve one from the training data with "
            "split.with_validation(fraction, seed), or pass selection='paper' for the authors' protocol"
        )
    dev = resolve_device(device)
    problem = build_problem(split, config, dev)
    model = build_model(problem, config, seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    stopper = EarlyStopping(config.patience if config.patience is not None else 10**12)
    rows: list[dict[str, float]] = []
    best: dict[str, Any] = {"iteration": -1, "metrics": {}, "valid": {}, "pred": None}
    min_loss, start, elapsed = float("inf"), 0, 0.0
    ckpt_path = Path(checkpoint_path) if checkpoint_path is not None else None

    last_eval: dict[str, Any] | None = None  # the latest evaluation (paper mode selects among these)
    stopped = False
    state = load_checkpoint(ckpt_path)
    if state is not None:
        saved = state["config"]
        diff = {k for k in saved if k not in _RESUMABLE_FIELDS and saved[k] != asdict(config)[k]}
        if diff or state["selection"] != selection or state["seed"] != seed:
            raise ValueError(f"checkpoint {ckpt_path} was written by a different run (differs in {sorted(diff)})")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        stopper.load_state_dict(state["early_stopping"])
        rows, best, last_eval, min_loss = state["history"], state["best"], state["last_eval"], state["min_loss"]
        start, elapsed, stopped = state["next_iteration"], state["elapsed"], state["stopped"]

    def save(next_iteration: int) -> None:
        if ckpt_path is None:
            return
        atomic_torch_save(
            {
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "early_stopping": stopper.state_dict(),
                "history": rows,
                "best": best,
                "last_eval": last_eval,
                "min_loss": min_loss,
                "next_iteration": next_iteration,
                "elapsed": elapsed,
                "stopped": stopped,
                "config": asdict(config),
                "selection": selection,
                "seed": seed,
            },
            ckpt_path,
        )

    iterations_run = start
    for it in [] if stopped else range(start, config.n_iterations):
        tic = time.perf_counter()
        model.train()
        optimizer.zero_grad(set_to_none=True)
        loss, parts = mgcnn_loss(model(), problem, config)
        loss.backward()
        optimizer.step()
        loss_value = float(loss.detach())
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        elapsed += time.perf_counter() - tic
        iterations_run = it + 1

        if it % config.eval_every == 0:
            model.eval()
            with torch.no_grad():
                out = model()
            test_m, test_pred = _evaluate(out, config, problem.rating_range, split.test)
            row = {"iteration": it, "epoch": it, "train_loss": loss_value, "train_rmse": parts["data"] ** 0.5}
            valid_m: dict[str, float] = {}
            if split.valid is not None and len(split.valid):
                valid_m, _ = _evaluate(out, config, problem.rating_range, split.valid)
                row |= {"valid_rmse": valid_m["rmse"], "valid_rmse_raw": valid_m["rmse_raw"]}
            row |= {"test_rmse": test_m["rmse"], "test_rmse_raw": test_m["rmse_raw"], "seconds": elapsed}
            rows.append(row)
            last_eval = {"iteration": it, "metrics": test_m, "valid": valid_m, "pred": test_pred}
            if selection == "validation" and stopper.update(valid_m["rmse"], it):
                best = last_eval
            stopped = selection == "validation" and config.patience is not None and stopper.should_stop
        if selection == "paper" and loss_value < min_loss:
            # eval_every·⌊it/eval_every⌋ is the latest evaluation run so far (iteration 0 is always evaluated)
            min_loss, best = loss_value, last_eval
        if (it + 1) % config.checkpoint_every == 0 or it + 1 == config.n_iterations or stopped:
            save(it + 1)
        if stopped:
            break

    history = pd.DataFrame(rows)
    run_config = asdict(config) | {
        "selection": selection,
        "seed": seed,
        "device": device_name(dev),
        "split": split.name,
        "user_graph": split.user_graph is not None,
        "item_graph": split.item_graph is not None,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "seconds_per_iteration": elapsed / max(iterations_run, 1),
    }
    return FitResult(
        metrics=dict(best["metrics"]),
        best_epoch=int(best["iteration"]),
        history=history,
        config=run_config,
        valid_metrics=dict(best["valid"]),
        test_predictions=best["pred"],
        epochs_run=iterations_run,
    )


def config_from_dict(values: dict[str, Any]) -> MGCNNConfig:
    """Rebuild a config from ``FitResult.config`` (extra run keys are ignored)."""
    names = {f.name for f in fields(MGCNNConfig)}
    return replace(MGCNNConfig(), **{k: v for k, v in values.items() if k in names})


__all__ = [
    "ChebConv",
    "GraphLSTMCell",
    "MGCNNConfig",
    "MGCNNOutput",
    "MGCNNProblem",
    "RMGCNN",
    "SRMGCNN",
    "bivariate_chebyshev_basis",
    "build_model",
    "build_problem",
    "chebyshev_basis",
    "config_from_dict",
    "dirichlet_energy",
    "dirichlet_terms",
    "fit_mgcnn",
    "init_split",
    "largest_eigenvalue",
    "mgcnn_loss",
    "normalized_laplacian",
    "output_matrix",
    "predict_entries",
    "rescaled_laplacian",
    "sparse_to_torch",
    "svd_factors",
    "symmetric_spmm",
]
