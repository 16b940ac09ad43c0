"""Latent Relational Metric Learning (LRML; Tay, Luu & Hui, WWW 2018, arXiv 1707.05176).

Model (as recalled from the paper and read in the authors' code; equation numbers not verified). Users and
items are points p_u, q_i ∈ R^d. A user-item pair gets a latent relation vector r read from a memory of N
slots with attention keyed by the pair:

    s = p ⊙ q,    a = softmax(s K)  (K ∈ R^{d×N} keys),    r = Σ_j a_j m_j  (memory slots m_j ∈ R^d)
    score(u, i) = -‖p + r - q‖   (L2: sqrt(Σ (q - p - r)² + 1e-3) as in the official code; or L1)

Objective: pairwise hinge Σ max(0, margin - score(u, i) + score(u, j)) over observed (u, i) and one uniformly
sampled non-interacted item j per pair (a *sum* over the batch, as the code does), with p and q clipped to
norm ≤ 1. Optimiser Adagrad (DeepRec). Protocol: NCF leave-one-out (``recrepro.models.ranking``); the state
is selected on the validation view's sampled HR@10, test metrics are reported at that state for both the
sampled (paper) and full-ranking protocols.

Code–paper discrepancies exposed as config switches (protocols.md 3.3):

* ``copy_relations``: the paper scores the negative pair with its own relation r(p, q_j)
  (``False``); the official ``model.py`` and DeepRec's ``lrml.py`` reuse the positive pair's relation for the
  negative (``True``, their default).
* ``attention``: the official file hard-codes "mode 1", r = a M with M ∈ R^{N×d} (rows are slots);
  DeepRec's docstring says "mode 2 corresponds to the implementation in the paper", which with DeepRec's
  memory of shape d×N is r = M a (columns are slots) — ``"paper"`` stores the memory as d×N and reads it that
  way. Both are the same function class (M_paper = M_codeᵀ gives identical relations), and Adagrad is
  per-coordinate, so training is identical when the initial draws correspond — which they do here (the paper
  layout is the transpose of the same draw). The switch exists to *show* that the modes cannot differ beyond
  rounding, not to imply they do. (DeepRec's mode 1 with a d×N memory only runs when N = d.)
* ``norm_clip_mode``: DeepRec assigns clip_by_norm to the tables after each step (``"post_step"``); the
  official file clips the looked-up embeddings inside the forward pass (``"forward"``, parameters unbounded).
* ``train_memory``: the official file trains K and M; DeepRec passes ``var_list=[P, Q]`` to Adagrad, so K and
  M stay at their random initialisation (``False`` reproduces that, probably an accident).
* ``grad_clip_norm``: the official file clips each gradient to ±10 then to a norm ``clip_norm`` (value not
  published); DeepRec does not clip.
* DeepRec initialises K and M with ``tf.random_normal_initializer(1/sqrt(d))``, whose first argument is the
  *mean* (std 1): we use N(0, 1/sqrt(d)) instead (``memory_init_std``), our choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import torch
from torch import nn

from recrepro.data.types import LeaveOneOut
from recrepro.models.ranking import PairwiseModel, clip_rows_, fit_pairwise, touched_rows
from recrepro.training import FitResult


@dataclass
class LRMLConfig:
    """LRML hyperparameters. Defaults: DeepRec ``lrml.py`` (protocols.md 3.2) unless the comment says otherwise."""

    dim: int = 100  # DeepRec build_network(num_factor=100)
    n_memories: int = 100  # protocols.md 3.2 (N = 100); DeepRec's mode 1 needs N = d (its ctor default 10 fails)
    margin: float = 0.5  # DeepRec build_network(margin=0.5)
    distance: Literal["l2", "l1"] = "l2"  # official model.py composition_layer(dist='L2'); DeepRec default 'L1'
    l2_eps: float = 1e-3  # official code: sqrt(Σ e² + 1e-3)
    attention: Literal["paper", "code"] = "code"  # official model.py mode 1 (equivalent to "paper", see docstring)
    copy_relations: bool = True  # DeepRec/official code: negative reuses r(p, q_pos); the paper: False
    norm_clip: float | None = 1.0  # DeepRec norm_clip_value=1 (None disables clipping)
    norm_clip_mode: Literal["post_step", "forward"] = "post_step"  # DeepRec: tf.assign after each step
    train_memory: bool = True  # official model.py trains K and M (DeepRec's var_list=[P, Q] freezes them)
    init_std: float | None = None  # DeepRec: N(0, 1/sqrt(d)) embeddings when None
    memory_init_std: float | None = None  # our choice: N(0, 1/sqrt(d)) for K and M when None (see docstring)
    optimizer: str = "adagrad"  # DeepRec: tf.train.AdagradOptimizer
    lr: float = 0.1  # DeepRec learning_rate=0.1
    adagrad_init_acc: float = 0.1  # TF AdagradOptimizer default used by DeepRec (official model.py uses 0.9)
    batch_size: int = 500  # DeepRec batch_size=500
    n_negatives: int = 1  # DeepRec: one uniformly sampled non-interacted item per positive
    grad_clip_norm: float | None = None  # DeepRec: no gradient clipping (official: ±10 then norm, value unknown)
    epochs: int = 500  # DeepRec epoch=500 (upper bound; early stopping on validation)
    eval_every: int = 5  # DeepRec T=5 (evaluates every 5 epochs)
    patience: int = 10  # our choice: evaluations without improvement before stopping (50 epochs at T=5)
    checkpoint_every: int = 5  # our choice
    eval_batch_users: int = 64  # our choice: scoring all items materialises (B, n_items, d) relations


class PairTerms(NamedTuple):
    """Intermediate quantities of one training batch (exposed for tests and analysis)."""

    d_pos: torch.Tensor  # (B,) distance of the positive pair
    d_neg: torch.Tensor  # (B, n_neg) distances of the negative pairs
    r_pos: torch.Tensor  # (B, d) relation of the positive pair
    r_neg: torch.Tensor  # (B, n_neg, d) relation used for the negative pairs
    a_pos: torch.Tensor  # (B, N) attention of the positive pair


def hinge_loss(d_pos: torch.Tensor, d_neg: torch.Tensor, margin: float) -> torch.Tensor:
    """Σ max(0, margin - s_pos + s_neg) with s = -distance, summed over the batch (as the authors' code)."""
    return torch.relu(margin + d_pos[:, None] - d_neg).sum()


class LRML(PairwiseModel):
    """User/item embeddings plus a key matrix and an N-slot memory that produce a relation per pair."""

    name = "lrml"

    def __init__(self, n_users: int, n_items: int, cfg: LRMLConfig, gen: torch.Generator) -> None:
        super().__init__()
        if cfg.attention not in ("paper", "code"):
            raise ValueError(f"attention must be 'paper' or 'code', got {cfg.attention!r}")
        if cfg.distance not in ("l1", "l2"):
            raise ValueError(f"distance must be 'l1' or 'l2', got {cfg.distance!r}")
        self.cfg = cfg
        d, n_mem = cfg.dim, cfg.n_memories
        std = cfg.init_std if cfg.init_std is not None else 1.0 / math.sqrt(d)
        mstd = cfg.memory_init_std if cfg.memory_init_std is not None else 1.0 / math.sqrt(d)
        self.user = nn.Parameter(torch.randn(n_users, d, generator=gen) * std)
        self.item = nn.Parameter(torch.randn(n_items, d, generator=gen) * std)
        self.keys = nn.Parameter(torch.randn(d, n_mem, generator=gen) * mstd, requires_grad=cfg.train_memory)
        memory = torch.randn(n_mem, d, generator=gen) * mstd  # slots as rows (official file's layout)
        if cfg.attention == "paper":
            memory = memory.T.contiguous()  # DeepRec's d x N layout, slots as columns (same draw, transposed)
        self.memory = nn.Parameter(memory, requires_grad=cfg.train_memory)

    def _embed(self, table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        e = self.lookup(table, idx)
        if self.cfg.norm_clip is not None and self.cfg.norm_clip_mode == "forward":
            e = e * torch.clamp(self.cfg.norm_clip / e.norm(dim=-1, keepdim=True).clamp_min(1e-12), max=1.0)
        return e

    def relation(self, p: torch.Tensor, q: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(r, a) for broadcastable p, q of shape (..., d): a = softmax((p ⊙ q) K), r = weighted memory slots."""
        a = torch.softmax((p * q) @ self.keys, dim=-1)
        r = a @ self.memory if self.cfg.attention == "code" else a @ self.memory.T
        return r, a

    def distance(self, p: torch.Tensor, q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """‖q - (p + r)‖ over the last axis (L2 with the code's 1e-3 inside the root, or L1)."""
        e = q - (p + r)
        if self.cfg.distance == "l2":
            return torch.sqrt(e.pow(2).sum(-1) + self.cfg.l2_eps)
        return e.abs().sum(-1)

    def pair_terms(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> PairTerms:
        """Distances and relations of (user, positive) and (user, negatives) pairs; ``neg`` is (B, n_neg)."""
        p, q_pos, q_neg = self._embed(self.user, users), self._embed(self.item, pos), self._embed(self.item, neg)
        r_pos, a_pos = self.relation(p, q_pos)
        d_pos = self.distance(p, q_pos, r_pos)
        p_neg = p[:, None, :]
        if self.cfg.copy_relations:
            r_neg = r_pos[:, None, :].expand_as(q_neg)
        else:
            r_neg, _ = self.relation(p_neg, q_neg)
        return PairTerms(d_pos, self.distance(p_neg, q_neg, r_neg), r_pos, r_neg, a_pos)

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        t = self.pair_terms(users, pos, neg)
        return hinge_loss(t.d_pos, t.d_neg, self.cfg.margin)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        p = self._embed(self.user, users)[:, None, :]
        q = self._embed(self.item, items)
        r, _ = self.relation(p, q)
        return -self.distance(p, q, r)

    def constrain(self, rows_only: bool = False) -> None:
        if self.cfg.norm_clip is not None and self.cfg.norm_clip_mode == "post_step":
            for table in (self.user, self.item):
                clip_rows_(table.data, self.cfg.norm_clip, touched_rows(table) if rows_only else None)


def fit_lrml(loo: LeaveOneOut, config: LRMLConfig | None = None, **options: Any) -> FitResult:
    """Train LRML on ``loo.validation_view(seed)``; keep the state with the best validation HR@10 (sampled).

    ``metrics`` holds the test metrics at that state for each protocol evaluated (keys like ``sampled/hr@10``,
    ``full/ndcg@10``); ``history`` one row per evaluation with ``seconds_per_epoch``. Options (device, seed,
    checkpoint_path, ...): ``recrepro.models.ranking.fit_pairwise``.
    """
    return fit_pairwise(LRML, loo, config or LRMLConfig(), **options)
