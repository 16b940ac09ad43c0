"""Base recommenders of Arviv, Elisha, Barkan & Koenigstein 2025 ("Interaction-Aware Monosemantic Concepts").

The paper interprets the user/item embeddings of two frozen recommenders with a sparse autoencoder
(``recrepro.models.sae``). This module trains those recommenders on binarised implicit feedback.

Models (equation numbers not verified; no full text of the paper was available):

* ``BiasedMF``: s(u, i) = p_u · q_i + b_u + b_i + b, probability σ(s). Authors' code
  (``code/ML1M/models.ipynb``, ``MatrixFactorization``): P, Q ~ N(0, (1/K)²), biases 0, the global bias b is
  the mean of the positive entries (= 1 after binarisation) and is never updated; mini-batch SGD whose update
  is the gradient of the *summed* per-sample loss BCE + β/2 (‖p_u‖² + ‖q_i‖² + b_u² + b_i²) (their
  ``np.add.at`` accumulation), α = 0.05, β = 0.01, batch 256.
* ``NCF``: the authors' ``NeuralCollaborativeFiltering`` is an MLP on the concatenation [e_u, e_i]
  (embedding 20, hidden [64, 32, 16], ReLU, one sigmoid output), *without* the GMF tower of He et al. 2017.
  ``NCFConfig.gmf=True`` adds a NeuMF-style GMF branch (e_u ⊙ e_i concatenated to the last MLP layer before
  the output unit). Both branches share one embedding per user/item (He et al. use separate ones) so that
  the SAE has a single vector to reconstruct. Embeddings ~ N(0, 0.1²); BCE; Adam lr 0.05; batch 256.

Training data per epoch: every training positive plus, per user, as many negatives as the user has training
positives (1:1, authors), resampled each epoch without replacement (same weights as below) from the items
the user never interacted with — held-out positives count as interactions, as in the authors' code
(``exclude_heldout_positives_from_negatives``) — excluding the held-out (and validation) negatives.

Protocol (``build_heldout_split``, authors' ``data_processing.ipynb``): ratings binarised (any rating → 1);
users listed in ``drop_users`` removed and the rest re-indexed (authors drop ML-1M UserID 4169, the heaviest
user, 2,314 ratings — presumably because 1:1 sampling without replacement is impossible for a user with
more positives than non-interacted items; ``sample_negatives`` caps such users instead); per user, 5
held-out positives sampled from the user's positives and 5 held-out negatives from the never-interacted
items, both without replacement with probability ∝ exp(popularity share of the item) — a softmax over
shares that are ≪ 1, hence *nearly uniform* (on ML-1M the most and least popular items differ in probability
by a factor exp(0.0034) ≈ 1.003). ``sampling="uniform"`` gives exactly uniform draws.

Evaluation (``evaluate_heldout``), all computed from one score matrix:

* ``hr@k``, ``ndcg@k``, ``mrr`` (``recrepro.metrics``): every held-out positive is ranked against all items
  except the user's training positives and the user's *other* held-out positives; averaged over (user,
  positive) pairs. This is our main ranking metric (the authors' NDCG is broken, protocols.md 5.2).
* ``authors_hr@k``: the authors' hit rate — share of users with at least one held-out positive among the top
  k of *all* items (training items not excluded, as in their ``hit_rate_calc``); an item tied with the
  target counts as ranked above it (pessimistic, so a model with constant outputs scores 0, not 1).
* ``mpr``: the authors' mean percentile rank — 100 · (0-based position among all items) / n_items per
  held-out positive (ties: expected position under a random order), averaged per user, then over users.
* ``auc_sampled``: each held-out positive against the user's 5 held-out negatives (share of correctly ordered
  pairs, ties ½) — the only use of the held-out negatives.

Selection: one validation positive per user (``valid_positives_per_user``) is carved from the training
positives; the epoch with the best validation ``ndcg@10`` (full ranking as above, on the carved positives) is
kept and the test metrics are reported at that state. The authors trained a fixed number of epochs.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F

from recrepro.data.types import Ratings
from recrepro.device import resolve_device
from recrepro.metrics import rank_counts, ranking_metrics
from recrepro.training import EarlyStopping, FitResult, atomic_torch_save, load_checkpoint

Sampling = Literal["popularity_softmax", "uniform"]
Kind = Literal["mf", "ncf"]

# ML-1M UserID 4169 (1-based, the heaviest user) as a 0-based index when the loader maps user = UserID - 1.
# Check with the notes of the split: the dropped user must have 2,314 interactions.
ML1M_AUTHORS_DROPPED_USER = 4168


# ----------------------------------------------------------------------------------------------------------
# Protocol
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HeldOutSplit:
    """Binarised implicit feedback with, per user, held-out positives and held-out negatives.

    ``train`` holds the training positives (values 1) in the re-indexed user space; ``test_positives`` and
    ``test_negatives`` are (n_users, n) with -1 where a user has fewer. ``user_index[u]`` is the user's id in
    the source ``Ratings``; ``item_weights`` are the (unnormalised) sampling weights of the items.
    """

    name: str
    train: Ratings
    test_positives: np.ndarray
    test_negatives: np.ndarray
    user_index: np.ndarray
    item_weights: np.ndarray
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def n_users(self) -> int:
        return self.train.n_users

    @property
    def n_items(self) -> int:
        return self.train.n_items

    def validation_view(self, seed: int, n_positives: int = 1, n_negatives: int | None = None) -> HeldOutSplit:
        """Carve ``n_positives`` training positives per user as validation targets (test data untouched).

        Users keep at least one training positive. Validation negatives are drawn (same weights) from items
        the user never interacted with, excluding the test positives and test negatives.
        """
        rng = np.random.default_rng(seed)
        n_neg = self.test_negatives.shape[1] if n_negatives is None else n_negatives
        train_csr = _positives_csr(self.train)
        held = np.concatenate([self.test_positives, self.test_negatives], axis=1)
        valid_pos = np.full((self.n_users, n_positives), -1, dtype=np.int64)
        valid_neg = np.full((self.n_users, n_neg), -1, dtype=np.int64)
        w = self.item_weights
        for u in range(self.n_users):
            pos = train_csr.indices[train_csr.indptr[u] : train_csr.indptr[u + 1]]
            if len(pos) > n_positives:
                valid_pos[u] = np.sort(_weighted_sample(rng, pos, w[pos], n_positives))
            seen = np.zeros(self.n_items, dtype=bool)
            seen[pos] = True
            seen[held[u][held[u] >= 0]] = True
            pool = np.flatnonzero(~seen)
            take = min(n_neg, len(pool))
            valid_neg[u, :take] = _weighted_sample(rng, pool, w[pool], take)
        carved = valid_pos[valid_pos >= 0]
        carved_users = np.repeat(np.arange(self.n_users), (valid_pos >= 0).sum(1))
        keep = ~np.isin(self.train.pairs(), carved_users * self.n_items + carved)
        notes = {**self.notes, "carved_from": "train", "valid_seed": str(seed)}
        return replace(
            self,
            name=f"{self.name}/validation",
            train=self.train.take(keep),
            test_positives=valid_pos,
            test_negatives=valid_neg,
            notes=notes,
        )


def _positives_csr(r: Ratings) -> sp.csr_matrix:
    m = sp.csr_matrix((np.ones(len(r), dtype=np.float32), (r.users, r.items)), shape=(r.n_users, r.n_items))
    m.sum_duplicates()
    m.sort_indices()
    return m


def _weighted_sample(rng: np.random.Generator, pool: np.ndarray, weights: np.ndarray, n: int) -> np.ndarray:
    """``n`` draws without replacement, P ∝ weights (same law as ``np.random.choice(..., replace=False, p=)``).

    Efraimidis–Spirakis keys log(U)/w: the n largest keys are a weighted sample without replacement.
    """
    if n <= 0:
        return np.empty(0, dtype=np.int64)
    keys = np.log(rng.random(len(pool))) / weights
    return pool[np.argsort(-keys, kind="stable")[:n]]


def item_sampling_weights(r: Ratings, sampling: Sampling = "popularity_softmax") -> np.ndarray:
    """exp(popularity share) per item (authors' softmax over shares), or ones for ``uniform``."""
    if sampling == "uniform":
        return np.ones(r.n_items)
    if sampling != "popularity_softmax":
        raise ValueError(f"unknown sampling {sampling!r}; choose popularity_softmax or uniform")
    pop = np.bincount(r.items, minlength=r.n_items).astype(np.float64)
    return np.exp(pop / max(pop.sum(), 1.0))


def build_heldout_split(
    ratings: Ratings,
    *,
    seed: int,
    n_test_positives: int = 5,
    n_test_negatives: int = 5,
    drop_users: tuple[int, ...] | list[int] = (),
    sampling: Sampling = "popularity_softmax",
    name: str = "heldout",
) -> HeldOutSplit:
    """The authors' protocol from any ``Ratings`` (binarised: every observed entry is a positive).

    ``drop_users`` are ids in ``ratings``' user space (for ML-1M loaded as UserID - 1, pass
    ``(ML1M_AUTHORS_DROPPED_USER,)``); the remaining users are re-indexed 0..n-1 in order. A user needs more
    than ``n_test_positives`` positives to get held-out ones (so one training positive remains); otherwise
    the user's rows are -1 and all positives stay in training.
    """
    rng = np.random.default_rng(seed)
    drop = np.unique(np.asarray(list(drop_users), dtype=np.int64))
    if len(drop) and (drop.min() < 0 or drop.max() >= ratings.n_users):
        raise ValueError("drop_users out of range")
    pairs = np.unique(ratings.pairs())  # binarise: duplicates and rating values collapse to one positive
    users, items = pairs // ratings.n_items, pairs % ratings.n_items
    dropped_counts = {int(u): int((users == u).sum()) for u in drop}
    kept = np.setdiff1d(np.arange(ratings.n_users), drop)
    keep_rows = np.isin(users, kept)
    new_users = np.searchsorted(kept, users[keep_rows])
    pos = Ratings(new_users, items[keep_rows], np.ones(keep_rows.sum(), np.float32), len(kept), ratings.n_items)
    weights = item_sampling_weights(pos, sampling)
    csr = _positives_csr(pos)
    test_pos = np.full((pos.n_users, n_test_positives), -1, dtype=np.int64)
    test_neg = np.full((pos.n_users, n_test_negatives), -1, dtype=np.int64)
    all_items = np.arange(pos.n_items)
    for u in range(pos.n_users):
        mine = csr.indices[csr.indptr[u] : csr.indptr[u + 1]]
        if len(mine) > n_test_positives:
            test_pos[u] = np.sort(_weighted_sample(rng, mine, weights[mine], n_test_positives))
        pool = np.setdiff1d(all_items, mine, assume_unique=True)
        take = min(n_test_negatives, len(pool))
        test_neg[u, :take] = _weighted_sample(rng, pool, weights[pool], take)
    held_users = np.repeat(np.arange(pos.n_users), (test_pos >= 0).sum(1))
    held = test_pos[test_pos >= 0]
    train = pos.take(~np.isin(pos.pairs(), held_users * pos.n_items + held))
    notes = {
        "sampling": sampling,
        "seed": str(seed),
        "dropped_users": str(dropped_counts),  # {source id: number of interactions}
        "binarised": "any observed rating -> 1",
    }
    return HeldOutSplit(name, train, test_pos, test_neg, kept, weights, notes)


# ----------------------------------------------------------------------------------------------------------
# Models
# ----------------------------------------------------------------------------------------------------------


class ImplicitRecommender(nn.Module):
    """Common interface the SAE relies on: embeddings and scores (logits) from *any* embeddings.

    ``score(users, items, user_emb, item_emb)`` scores aligned pairs; ``score_matrix`` scores every user of
    ``users`` against every item of ``items``. The optional embeddings replace the model's own rows (e.g. by
    SAE reconstructions); the index tensors still select per-user/per-item biases.
    """

    prediction_loss: str = "mse"  # how the prediction-aware SAE term compares scores (authors' choice per model)

    def user_embeddings(self) -> torch.Tensor:
        raise NotImplementedError

    def item_embeddings(self) -> torch.Tensor:
        raise NotImplementedError

    def score(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        user_emb: torch.Tensor | None = None,
        item_emb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        raise NotImplementedError

    def score_matrix(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        user_emb: torch.Tensor | None = None,
        item_emb: torch.Tensor | None = None,
    ) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.score(users, items)


class BiasedMF(ImplicitRecommender):
    """s(u, i) = p_u · q_i + b_u + b_i + b (logit); b is a fixed buffer (authors never update it)."""

    prediction_loss = "mse"  # authors: MSE between score matrices u·i + biases

    def __init__(
        self, n_users: int, n_items: int, dim: int, init_std: float, global_bias: float, generator: torch.Generator
    ) -> None:
        super().__init__()
        self.P = nn.Parameter(torch.randn(n_users, dim, generator=generator) * init_std)
        self.Q = nn.Parameter(torch.randn(n_items, dim, generator=generator) * init_std)
        self.user_bias = nn.Parameter(torch.zeros(n_users))
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.register_buffer("global_bias", torch.tensor(float(global_bias)))

    def user_embeddings(self) -> torch.Tensor:
        return self.P

    def item_embeddings(self) -> torch.Tensor:
        return self.Q

    def score(self, users, items, user_emb=None, item_emb=None):  # noqa: D102 (see base class)
        pu = self.P[users] if user_emb is None else user_emb
        qi = self.Q[items] if item_emb is None else item_emb
        return (pu * qi).sum(-1) + self.user_bias[users] + self.item_bias[items] + self.global_bias

    def score_matrix(self, users, items, user_emb=None, item_emb=None):  # noqa: D102
        pu = self.P[users] if user_emb is None else user_emb
        qi = self.Q[items] if item_emb is None else item_emb
        return pu @ qi.T + self.user_bias[users][:, None] + self.item_bias[items][None, :] + self.global_bias

    def l2_terms(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Per-sample ‖p_u‖² + ‖q_i‖² + b_u² + b_i² (the authors' β-penalised quantities)."""
        return (
            self.P[users].square().sum(-1)
            + self.Q[items].square().sum(-1)
            + self.user_bias[users].square()
            + self.item_bias[items].square()
        )


def _linear(fan_in: int, fan_out: int, generator: torch.Generator) -> nn.Linear:
    """nn.Linear with PyTorch's default initialisation drawn from ``generator`` (not the global RNG)."""
    layer = nn.utils.skip_init(nn.Linear, fan_in, fan_out)
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        bound = 1.0 / math.sqrt(fan_in)
        layer.bias.uniform_(-bound, bound, generator=generator)
    return layer


class NCF(ImplicitRecommender):
    """MLP on [e_u, e_i] (authors), optionally with a GMF branch e_u ⊙ e_i (NeuMF-style, shared embeddings)."""

    prediction_loss = "bce"  # authors: BCE between frozen-NCF outputs from original vs reconstructed embeddings

    def __init__(
        self,
        n_users: int,
        n_items: int,
        dim: int,
        mlp_layers: tuple[int, ...],
        gmf: bool,
        init_std: float,
        generator: torch.Generator,
    ) -> None:
        super().__init__()
        self.user_embedding = nn.Parameter(torch.randn(n_users, dim, generator=generator) * init_std)
        self.item_embedding = nn.Parameter(torch.randn(n_items, dim, generator=generator) * init_std)
        widths = [2 * dim, *mlp_layers]
        self.mlp = nn.ModuleList(_linear(a, b, generator) for a, b in zip(widths[:-1], widths[1:], strict=True))
        self.gmf = gmf
        self.output = _linear(widths[-1] + (dim if gmf else 0), 1, generator)
        self.dim = dim

    def user_embeddings(self) -> torch.Tensor:
        return self.user_embedding

    def item_embeddings(self) -> torch.Tensor:
        return self.item_embedding

    def _head(self, h: torch.Tensor, gmf: torch.Tensor | None) -> torch.Tensor:
        for layer in self.mlp[1:]:
            h = torch.relu(layer(h))
        if gmf is not None:
            h = torch.cat([h, gmf], dim=-1)
        return self.output(h).squeeze(-1)

    def score(self, users, items, user_emb=None, item_emb=None):  # noqa: D102
        eu = self.user_embedding[users] if user_emb is None else user_emb
        ei = self.item_embedding[items] if item_emb is None else item_emb
        h = torch.relu(self.mlp[0](torch.cat([eu, ei], dim=-1)))
        return self._head(h, eu * ei if self.gmf else None)

    def score_matrix(self, users, items, user_emb=None, item_emb=None, chunk_elements: int = 1 << 24):  # noqa: D102
        eu = self.user_embedding[users] if user_emb is None else user_emb
        ei = self.item_embedding[items] if item_emb is None else item_emb
        first = self.mlp[0]
        # W [e_u; e_i] + c = W_u e_u + W_i e_i + c: project once per user and per item, then broadcast
        hu = eu @ first.weight[:, : self.dim].T + first.bias
        hi = ei @ first.weight[:, self.dim :].T
        rows = max(1, chunk_elements // max(1, len(ei) * first.out_features))
        out = []
        for s in range(0, len(eu), rows):
            h = torch.relu(hu[s : s + rows, None, :] + hi[None, :, :])
            gmf = eu[s : s + rows, None, :] * ei[None, :, :] if self.gmf else None
            out.append(self._head(h, gmf))
        return torch.cat(out, dim=0)


# ----------------------------------------------------------------------------------------------------------
# Configs
# ----------------------------------------------------------------------------------------------------------


@dataclass
class BiasedMFConfig:
    """BiasedMF fit. Sources: authors' ``training.ipynb`` / ``models.ipynb`` (ML-1M) unless noted."""

    dim: int = 22  # K: training.ipynb call MatrixFactorization(..., K=22, ...) (protocols.md 5.2 reads 20)
    init_std: float | None = None  # None = 1/dim, authors np.random.normal(scale=1./K)
    global_bias: float = 1.0  # authors: mean of positive entries (=1 binarised), never updated
    reg: float = 0.01  # β, authors
    lr: float = 0.05  # α, authors (plain SGD)
    optimizer: Literal["sgd", "adam"] = "sgd"  # authors: mini-batch SGD
    loss_reduction: Literal["sum", "mean"] = "sum"  # authors: np.add.at accumulates per-sample gradients (a sum)
    batch_size: int = 256  # authors
    max_epochs: int = 10  # authors: iterations=10 (training.ipynb)
    negatives_per_positive: int = 1  # authors: 1:1, resampled every epoch
    negative_sampling: Sampling = "popularity_softmax"  # authors: p ∝ exp(popularity share)
    exclude_heldout_positives_from_negatives: bool = True  # authors sample from never-interacted items
    valid_positives_per_user: int = 1  # our choice: validation targets carved from training positives
    valid_metric: str = "ndcg@10"  # our choice: early-stopping criterion (full ranking, see module doc)
    patience: int = 2  # our choice: evaluations without improvement before stopping
    eval_every: int = 1  # our choice
    ks: tuple[int, ...] = (10,)  # our choice: cut-offs reported
    checkpoint_every: int = 1  # our choice
    log_test_curve: bool = False  # our choice: log test metrics per evaluation (learning curves only)


@dataclass
class NCFConfig:
    """NCF fit. Sources: authors' ``training.ipynb`` / ``models.ipynb`` (ML-1M) unless noted."""

    dim: int = 20  # embedding_dim=20, authors
    mlp_layers: tuple[int, ...] = (64, 32, 16)  # hidden_layers=[64, 32, 16], authors
    gmf: bool = False  # authors' model has no GMF tower; True = NeuMF-style (He et al. 2017), shared embeddings
    init_std: float = 0.1  # nn.init.normal_(std=0.1) on embeddings, authors
    lr: float = 0.05  # Adam lr 0.05, authors
    optimizer: Literal["sgd", "adam"] = "adam"  # authors
    loss_reduction: Literal["sum", "mean"] = "mean"  # nn.BCELoss() default, authors
    weight_decay: float = 0.0  # authors: none
    batch_size: int = 256  # authors
    max_epochs: int = 30  # protocols.md 5.2 (30); the training.ipynb call uses 10 — early stopping decides
    negatives_per_positive: int = 1  # authors: 1:1, resampled every epoch
    negative_sampling: Sampling = "popularity_softmax"  # authors
    exclude_heldout_positives_from_negatives: bool = True  # authors sample from never-interacted items
    valid_positives_per_user: int = 1  # our choice
    valid_metric: str = "ndcg@10"  # our choice
    patience: int = 2  # our choice
    eval_every: int = 1  # our choice
    ks: tuple[int, ...] = (10,)  # our choice
    checkpoint_every: int = 1  # our choice
    log_test_curve: bool = False  # our choice


# Last.FM presets (protocols.md 5.2; the data set itself is not in shared/data).
LASTFM_MF = BiasedMFConfig(dim=100, max_epochs=30, batch_size=8)  # MF K=100, 30 iterations, batch 8
LASTFM_NCF = NCFConfig(dim=100, lr=1e-3, max_epochs=30)  # NCF embedding 100, Adam 1e-3, 30 epochs

# Fields that change the optimisation trajectory: a checkpoint written under other values is refused.
_TRAJECTORY_FIELDS = (
    "dim",
    "init_std",
    "global_bias",
    "reg",
    "lr",
    "optimizer",
    "loss_reduction",
    "weight_decay",
    "batch_size",
    "negatives_per_positive",
    "negative_sampling",
    "exclude_heldout_positives_from_negatives",
    "valid_positives_per_user",
    "mlp_layers",
    "gmf",
    "eval_every",
    "valid_metric",
)


def build_recommender(
    kind: Kind, n_users: int, n_items: int, config: BiasedMFConfig | NCFConfig, generator: torch.Generator
) -> ImplicitRecommender:
    """A freshly initialised model (CPU) of the given kind."""
    if kind == "mf":
        if not isinstance(config, BiasedMFConfig):
            raise TypeError("kind='mf' needs a BiasedMFConfig")
        std = 1.0 / config.dim if config.init_std is None else config.init_std
        return BiasedMF(n_users, n_items, config.dim, std, config.global_bias, generator)
    if kind == "ncf":
        if not isinstance(config, NCFConfig):
            raise TypeError("kind='ncf' needs an NCFConfig")
        return NCF(n_users, n_items, config.dim, tuple(config.mlp_layers), config.gmf, config.init_std, generator)
    raise ValueError(f"unknown kind {kind!r}; choose mf or ncf")


# ----------------------------------------------------------------------------------------------------------
# Sampling and evaluation
# ----------------------------------------------------------------------------------------------------------


def sample_negatives(
    counts: np.ndarray,
    banned: sp.csr_matrix,
    weights: np.ndarray,
    generator: torch.Generator,
    chunk: int = 1024,
) -> tuple[np.ndarray, np.ndarray]:
    """Per user u, ``counts[u]`` items outside ``banned[u]`` without replacement, P ∝ ``weights``.

    Efraimidis–Spirakis keys log(U)/w drawn with the (CPU) ``generator``; a user with fewer allowed items
    than asked gets all of them. Returns aligned (users, items) arrays.
    """
    n_users, n_items = banned.shape
    w = torch.as_tensor(weights, dtype=torch.float64)
    out_u, out_i = [], []
    for s in range(0, n_users, chunk):
        rows = np.arange(s, min(s + chunk, n_users))
        need = counts[rows]
        if need.max(initial=0) <= 0:
            continue
        keys = torch.rand(len(rows), n_items, generator=generator, dtype=torch.float64).log_() / w
        mask = torch.from_numpy(banned[rows].toarray().astype(bool))
        keys[mask] = -torch.inf
        allowed = (~mask).sum(1).numpy()
        take = np.minimum(need, allowed)
        top = torch.topk(keys, int(take.max()), dim=1).indices.numpy()
        sel = np.arange(top.shape[1])[None, :] < take[:, None]
        out_u.append(np.repeat(rows, take))
        out_i.append(top[sel])
    if not out_u:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(out_u).astype(np.int64), np.concatenate(out_i).astype(np.int64)


@torch.no_grad()
def evaluate_heldout(
    model: ImplicitRecommender,
    split: HeldOutSplit,
    *,
    ks: tuple[int, ...] = (10,),
    users: np.ndarray | None = None,
    chunk: int = 256,
) -> dict[str, float]:
    """Ranking metrics of ``split.test_positives`` (module docstring); training items = ``split.train``."""
    model.eval()
    dev = next(model.parameters()).device
    train_csr = _positives_csr(split.train)
    has_any = (split.test_positives >= 0).any(1)
    users = np.flatnonzero(has_any) if users is None else np.asarray(users)[has_any[np.asarray(users)]]
    if len(users) == 0:
        raise ValueError("no user has a held-out positive to evaluate")
    all_items = torch.arange(split.n_items, device=dev)
    greater, ties, min_above, mean_above, auc = [], [], [], [], []
    for s in range(0, len(users), chunk):
        us = users[s : s + chunk]
        scores = model.score_matrix(torch.as_tensor(us, device=dev), all_items).double().cpu()
        tp = split.test_positives[us]
        r_idx, c_idx = np.nonzero(tp >= 0)  # row-major: r_idx is sorted
        targets = torch.as_tensor(tp[r_idx, c_idx])
        rows = torch.as_tensor(r_idx)
        t_scores = scores[rows, targets]
        excluded = torch.from_numpy(train_csr[us].toarray().astype(bool))
        excluded[rows, targets] = True  # the user's held-out positives (the target itself included)
        cand = scores[rows]
        g, t = rank_counts(t_scores, cand, ~excluded[rows])
        greater.append(g)
        ties.append(t)
        # authors' metrics rank among *all* items; ties with other items: pessimistic for the hit rate (a
        # constant scorer gets 0), expected position under a random order for the percentile rank
        above_all = (cand > t_scores[:, None]).sum(1).numpy()
        tied_all = (cand == t_scores[:, None]).sum(1).numpy() - 1
        starts = np.flatnonzero(np.r_[True, r_idx[1:] != r_idx[:-1]])
        counts = np.diff(np.r_[starts, len(r_idx)])
        min_above.append(np.minimum.reduceat(above_all + tied_all, starts))
        mean_above.append(np.add.reduceat(above_all + 0.5 * tied_all, starts) / counts)
        negs = split.test_negatives[us][r_idx]  # (pairs, n_neg), -1 padded
        neg_ok = torch.as_tensor(negs >= 0)
        if neg_ok.any():
            n_scores = scores[rows[:, None], torch.as_tensor(np.where(negs >= 0, negs, 0))]
            right = (t_scores[:, None] > n_scores).double() + 0.5 * (t_scores[:, None] == n_scores).double()
            right_sum = (right * neg_ok).sum(1).numpy()
            per_user_n = np.add.reduceat(neg_ok.sum(1).numpy(), starts)
            ok = per_user_n > 0
            auc.append(np.add.reduceat(right_sum, starts)[ok] / per_user_n[ok])
    out = ranking_metrics(np.concatenate(greater), np.concatenate(ties), ks)
    best = np.concatenate(min_above)
    for k in ks:
        out[f"authors_hr@{k}"] = float(np.mean(best + 1 <= k))
    out["mpr"] = float(np.mean(100.0 * np.concatenate(mean_above) / split.n_items))
    if auc:
        out["auc_sampled"] = float(np.mean(np.concatenate(auc)))
    out["n_users"] = float(len(best))
    return out


# ----------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------


def fit_implicit_recommender(
    kind: Kind,
    data: HeldOutSplit,
    config: BiasedMFConfig | NCFConfig | None = None,
    *,
    device: str = "auto",
    seed: int = 0,
    checkpoint_path: Path | str | None = None,
) -> tuple[ImplicitRecommender, FitResult]:
    """Train ``kind`` on ``data.train`` (minus carved validation positives); test metrics at the best epoch.

    ``history`` has one row per evaluation: epoch, train_loss (mean per-sample BCE over the epoch), the
    validation metrics prefixed ``valid_`` (and ``test_`` ones if ``log_test_curve``), seconds. With a
    ``checkpoint_path`` the run resumes from the file when it exists.
    """
    if config is None:
        config = BiasedMFConfig() if kind == "mf" else NCFConfig()
    dev = resolve_device(device)
    ckpt_path = Path(checkpoint_path) if checkpoint_path is not None else None
    valid_split = data.validation_view(seed=seed + 1, n_positives=config.valid_positives_per_user)
    fit_train = valid_split.train

    model = build_recommender(kind, data.n_users, data.n_items, config, torch.Generator().manual_seed(seed)).to(dev)
    wd = getattr(config, "weight_decay", 0.0)
    if config.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, weight_decay=wd)
    elif config.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=wd)
    else:
        raise ValueError(f"unknown optimizer {config.optimizer!r}")
    gen = torch.Generator().manual_seed(seed + 2)  # negatives and batch order (CPU: same draws on any device)
    stopper = EarlyStopping(config.patience, mode="max")
    history: list[dict[str, float]] = []
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch, stopped = 0, False

    cfg = asdict(config)
    ckpt = load_checkpoint(ckpt_path)
    if ckpt is not None:
        diff = [k for k in _TRAJECTORY_FIELDS if k in cfg and ckpt["config"].get(k) != cfg[k]]
        if diff or ckpt["seed"] != seed or ckpt["kind"] != kind or ckpt["shape"] != (data.n_users, data.n_items):
            raise ValueError(f"checkpoint {ckpt_path} was written by a different run (differs in {diff or 'run'})")
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        stopper.load_state_dict(ckpt["early_stopping"])
        gen.set_state(ckpt["generator"])
        history, best_state = list(ckpt["history"]), ckpt["best_state"]
        start_epoch, stopped = ckpt["epoch"], ckpt["stopped"]

    def save(epoch: int) -> None:
        if ckpt_path is None:
            return
        atomic_torch_save(
            {
                "epoch": epoch,
                "stopped": stopped,
                "model": model.state_dict(),
                "optimizer": optimizer.state_dict(),
                "early_stopping": stopper.state_dict(),
                "generator": gen.get_state(),
                "history": history,
                "best_state": best_state,
                "config": cfg,
                "seed": seed,
                "kind": kind,
                "shape": (data.n_users, data.n_items),
            },
            ckpt_path,
        )

    # negatives: never the user's known positives (train + validation [+ test]) nor the held-out negatives
    banned_parts = [data.train, _ratings_from_rows(data.test_negatives, data.n_items)]
    banned_parts.append(_ratings_from_rows(valid_split.test_negatives, data.n_items))
    if config.exclude_heldout_positives_from_negatives:
        banned_parts.append(_ratings_from_rows(data.test_positives, data.n_items))
    banned = sum((_positives_csr(r) for r in banned_parts), sp.csr_matrix((data.n_users, data.n_items))).tocsr()
    n_pos_user = np.bincount(fit_train.users, minlength=data.n_users) * config.negatives_per_positive
    pos_u = torch.as_tensor(fit_train.users)
    pos_i = torch.as_tensor(fit_train.items)

    last_epoch = start_epoch
    for epoch in range(start_epoch + 1, config.max_epochs + 1):
        if stopped:
            break
        t0 = time.perf_counter()
        model.train()
        neg_u, neg_i = sample_negatives(n_pos_user, banned, data.item_weights, gen)
        users = torch.cat([pos_u, torch.as_tensor(neg_u)])
        items = torch.cat([pos_i, torch.as_tensor(neg_i)])
        labels = torch.cat([torch.ones(len(pos_u)), torch.zeros(len(neg_u))])
        perm = torch.randperm(len(users), generator=gen)
        users, items, labels = users[perm].to(dev), items[perm].to(dev), labels[perm].to(dev)
        total, n_seen = 0.0, 0
        for s in range(0, len(users), config.batch_size):
            u, i, y = (
                users[s : s + config.batch_size],
                items[s : s + config.batch_size],
                labels[s : s + config.batch_size],
            )
            bce = F.binary_cross_entropy_with_logits(model.score(u, i), y, reduction="none")
            per_sample = bce
            if isinstance(model, BiasedMF) and config.reg > 0:
                per_sample = per_sample + 0.5 * config.reg * model.l2_terms(u, i)
            loss = per_sample.sum() if config.loss_reduction == "sum" else per_sample.mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(bce.detach().sum())
            n_seen += len(y)
        seconds = time.perf_counter() - t0
        last_epoch = epoch
        if epoch % config.eval_every == 0 or epoch == config.max_epochs:
            row: dict[str, float] = {"epoch": epoch, "train_loss": total / max(n_seen, 1), "seconds": seconds}
            vm = evaluate_heldout(model, valid_split, ks=config.ks)
            row.update({f"valid_{k}": v for k, v in vm.items()})
            if config.log_test_curve:  # learning curve only, never used for a decision
                row.update({f"test_{k}": v for k, v in evaluate_heldout(model, data, ks=config.ks).items()})
            history.append(row)
            if config.valid_metric not in vm:
                raise ValueError(f"valid_metric {config.valid_metric!r} not among {sorted(vm)}")
            if stopper.update(vm[config.valid_metric], epoch):
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            stopped = stopper.should_stop
        if epoch % config.checkpoint_every == 0 or stopped or epoch == config.max_epochs:
            save(epoch)

    if best_state is not None:
        model.load_state_dict(best_state)
    optimizer.zero_grad(set_to_none=True)  # hand back a model without stale gradients
    model.eval()
    valid_metrics = evaluate_heldout(model, valid_split, ks=config.ks)
    test_metrics = evaluate_heldout(model, data, ks=config.ks)
    result = FitResult(
        metrics=test_metrics,
        best_epoch=stopper.best_epoch,
        history=pd.DataFrame(history),
        config={**cfg, "kind": kind, "seed": seed, "device": str(dev), "split": data.name},
        valid_metrics=valid_metrics,
        epochs_run=last_epoch,
    )
    return model, result


def _ratings_from_rows(rows: np.ndarray, n_items: int) -> Ratings:
    """(n_users, m) item table with -1 padding → Ratings of its entries."""
    users = np.repeat(np.arange(rows.shape[0]), (rows >= 0).sum(1))
    items = rows[rows >= 0]
    return Ratings(users, items, np.ones(len(items), np.float32), rows.shape[0], n_items)


__all__ = [
    "ML1M_AUTHORS_DROPPED_USER",
    "LASTFM_MF",
    "LASTFM_NCF",
    "BiasedMF",
    "BiasedMFConfig",
    "HeldOutSplit",
    "ImplicitRecommender",
    "NCF",
    "NCFConfig",
    "build_heldout_split",
    "build_recommender",
    "evaluate_heldout",
    "fit_implicit_recommender",
    "item_sampling_weights",
    "sample_negatives",
]
