"""Prediction-aware sparse autoencoders over recommender embeddings (Arviv, Elisha, Barkan & Koenigstein 2025).

A sparse autoencoder (SAE) maps an embedding x (a user's or an item's) to a sparse non-negative code z and
back: z = act(W (n(x) - b_pre) + b_lat), x̂ = n⁻¹(D z + b_pre), with D = Wᵀ when the decoder is tied (the
authors' setting), ``act`` ReLU (authors) or TopK (keep the k largest pre-activations, then ReLU), and n an
input normalisation that ``decode`` inverts. The recommender is FROZEN: no parameter of it is updated and no
gradient is stored for it; gradients only flow *through* it into the SAE.

Objective (equation numbers not verified; from the authors' code, ``code/ML1M/training.ipynb``):

    L = w_pred · L_pred + w_mse · (MSE(x̂_u, x_u) + MSE(x̂_i, x_i)) + w_kl · Σ KL(ρ ‖ ρ̂_j) + w_l1 · mean|z|

* L_pred — the *prediction-aware* term, comparing the frozen recommender's scores computed from the original
  and from the reconstructed embeddings of a batch of users and items. MF (authors): MSE between the
  batch-users × batch-items score matrices u·i + b_u + b_i ("matrix" mode). NCF (authors): BCE between the
  outputs on the batch's (user, item) pairs with the original output as soft target ("pairs" mode); we
  subtract the target's entropy, i.e. use KL(Bern(y) ‖ Bern(ŷ)), which has the same gradient and is exactly 0
  when the reconstruction is perfect. ``pred_weight = 0`` gives the reconstruction-only SAE.
* KL sparsity (authors' ``kl_divergence_loss``): ρ̂_j = batch mean of unit j, clamped to [1e-6, 1 - 1e-6],
  KL(ρ ‖ ρ̂_j) summed over units, for user and item codes separately.
* Matryoshka variant: with prefixes (m_1 < ... < m_K) the reconstruction and prediction terms are computed
  from the first m_k units only (the rest set to 0) and summed over k; sparsity once on the full code.

Normalisation (authors): MF-SAE inputs are min–max normalised per feature *over the batch*
(``normalize_matrix``) and then layer-normalised inside the SAE (``Autoencoder(normalize=True)``), and the
losses are computed in the min–max-normalised space (``loss_space='normalized'``; the MF scores there are
not the MF's actual scores). The NCF-SAE in the code (``SparseAutoencoderNCF``) has no normalisation
(protocols.md 5.2 says layer-normalised; ``layernorm=True`` provides it). In evaluation mode the min–max
statistics are the ones of the whole fitting set (stored buffers), so a code does not depend on its batch.
Fidelity and everything downstream always use reconstructions mapped back to the original space.

One SAE serves users and items (authors: the same ``autoencoder`` encodes both batches), ``side='both'``;
``side='user'`` / ``'item'`` reconstruct one side only and feed the other side's original embeddings to the
recommender.

Protocol: the SAE is trained on 80% of the users and evaluated on the other 20% (authors: unseeded
``random.sample``; ours is seeded by the caller's split). All items are used in training, as in the
authors' code. A validation set of users (``valid_fraction`` of the training users) chooses the epoch
(validation objective by default); test metrics — RBO / Kendall tau between the top-30 lists of all items
from original vs reconstructed embeddings, reconstruction and prediction errors, sparsity — are reported at
that epoch.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.nn import functional as F

from recrepro.data.types import Ratings
from recrepro.device import resolve_device
from recrepro.fidelity import concept_control, recommendation_fidelity
from recrepro.models.implicit_recommenders import ImplicitRecommender
from recrepro.training import EarlyStopping, FitResult, atomic_torch_save, load_checkpoint

Side = Literal["user", "item", "both"]
USER, ITEM = 0, 1  # normalisation groups


@dataclass
class SAEConfig:
    """SAE hyperparameters; defaults = the authors' ML-1M MF-SAE (protocols.md 5.2, training.ipynb)."""

    latent_dim: int = 22  # latent 22 on ML-1M, authors
    tied: bool = True  # tied encoder/decoder, authors
    activation: Literal["relu", "topk"] = "relu"  # authors: ReLU (TopK written but commented out)
    topk: int = 8  # k for TopK, authors' commented-out TopK(k=8)
    layernorm: bool = True  # Autoencoder(normalize=True) for MF, authors
    minmax: Literal["none", "batch", "global"] = "batch"  # authors' normalize_matrix per batch (MF)
    loss_space: Literal["normalized", "original"] = "normalized"  # authors: losses on min-max-normalised inputs
    mse_weight: float = 0.1  # w_mse, authors (ML-1M MF)
    pred_weight: float = 1.0  # w_pred, authors (ML-1M MF; a second definition uses 2)
    kl_weight: float = 0.01  # w_kl, authors (ML-1M MF)
    kl_target: float = 0.05  # ρ, authors' kl_divergence_loss default
    l1_weight: float = 0.0  # authors: l1_weight=0 for ML-1M
    pred_mode: Literal["matrix", "pairs"] = "matrix"  # MF: batch score matrices; NCF: aligned pairs (authors)
    matryoshka_prefixes: tuple[int, ...] = ()  # () = plain SAE; else nested prefix sizes (last = latent_dim)
    epochs: int = 18  # authors (ML-1M)
    batch_size: int = 256  # authors
    lr: float = 1e-3  # Adam, authors
    steps_per_epoch: int | None = None  # None = one pass over the training pairs/users, our choice
    valid_fraction: float = 0.1  # our choice: share of the training users used for selection
    select_metric: Literal["loss", "rbo"] = "loss"  # our choice: validation objective (lower) or RBO (higher)
    patience: int = 3  # our choice (authors: fixed epochs)
    eval_batches: int = 8  # our choice: fixed validation/test batches for the objective
    fidelity_k: int = 30  # top-30 lists, authors
    rbo_p: float = 0.9  # authors
    checkpoint_every: int = 1  # our choice

    def __post_init__(self) -> None:
        self.matryoshka_prefixes = tuple(int(m) for m in self.matryoshka_prefixes)
        if self.matryoshka_prefixes and (
            list(self.matryoshka_prefixes) != sorted(set(self.matryoshka_prefixes))
            or self.matryoshka_prefixes[-1] != self.latent_dim
            or self.matryoshka_prefixes[0] < 1
        ):
            raise ValueError("matryoshka_prefixes must be strictly increasing, >= 1 and end at latent_dim")
        if self.activation == "topk" and not 1 <= self.topk <= self.latent_dim:
            raise ValueError("topk must be in [1, latent_dim]")
        if not 0.0 < self.valid_fraction < 1.0:
            raise ValueError("valid_fraction must be in (0, 1)")


# Presets, protocols.md 5.2 (from the authors' notebooks).
ML1M_MF_SAE = SAEConfig()  # w_mse 0.1, w_kl 0.01 (ρ 0.05), w_pred 1, latent 22, 18 epochs, batch 256, Adam 1e-3
ML1M_NCF_SAE = SAEConfig(
    layernorm=False,  # SparseAutoencoderNCF has no normalisation (protocols.md says layer-norm: layernorm=True)
    minmax="none",  # NCF-SAE inputs are the raw embeddings, authors
    loss_space="original",  # identical to 'normalized' without min-max
    mse_weight=2.0,  # w_l2 2, protocols.md 5.2 (the training.ipynb call uses 0.1)
    kl_weight=0.07,  # w_kl 0.07, protocols.md 5.2 (training.ipynb call: 0.01)
    pred_weight=10.0,  # w_pred 10, protocols.md 5.2 (training.ipynb call: 1)
    pred_mode="pairs",  # BCE on the batch's (user, item) outputs, authors
)
LASTFM_MF_SAE = replace(ML1M_MF_SAE, latent_dim=70, mse_weight=8.0, kl_weight=0.003, epochs=30)  # seed 42
LASTFM_NCF_SAE = replace(ML1M_NCF_SAE, latent_dim=70, mse_weight=2.6, kl_weight=0.7, pred_weight=1.0, epochs=30)
LASTFM_MATRYOSHKA_SAE = replace(
    LASTFM_MF_SAE,
    l1_weight=0.3,  # protocols.md 5.2
    pred_weight=5.0,  # "inner-product weight 5", protocols.md 5.2
    matryoshka_prefixes=(10, 20, 35, 70),  # our choice: the authors' prefix sizes are not in our notes
)


def reconstruction_only(config: SAEConfig) -> SAEConfig:
    """The same SAE without the prediction-aware term (the paper's baseline)."""
    return replace(config, pred_weight=0.0)


_TRAJECTORY_FIELDS = tuple(
    f
    for f in SAEConfig.__dataclass_fields__
    if f not in ("epochs", "patience", "checkpoint_every", "fidelity_k", "rbo_p")
)


class SparseAutoencoder(nn.Module):
    """Tied or untied SAE with ReLU/TopK codes and invertible input normalisation (module docstring)."""

    def __init__(
        self,
        input_dim: int,
        latent_dim: int,
        *,
        tied: bool = True,
        activation: Literal["relu", "topk"] = "relu",
        topk: int = 8,
        layernorm: bool = True,
        minmax: Literal["none", "batch", "global"] = "batch",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if activation not in ("relu", "topk"):
            raise ValueError(f"unknown activation {activation!r}")
        self.input_dim, self.latent_dim = input_dim, latent_dim
        self.tied, self.activation, self.k = tied, activation, topk
        self.layernorm, self.minmax = layernorm, minmax
        self.pre_bias = nn.Parameter(torch.zeros(input_dim))
        self.encoder = nn.Linear(input_dim, latent_dim, bias=False)
        nn.init.kaiming_uniform_(self.encoder.weight, a=math.sqrt(5), generator=generator)  # nn.Linear default
        self.latent_bias = nn.Parameter(torch.zeros(latent_dim))
        if tied:
            self.decoder_weight = None
        else:
            w = torch.empty(input_dim, latent_dim)
            nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=generator)
            self.decoder_weight = nn.Parameter(w)
        # min-max statistics of the fitting set per group (users, items), used outside 'batch' training
        self.register_buffer("mm_lo", torch.zeros(2, input_dim))
        self.register_buffer("mm_hi", torch.ones(2, input_dim))

    @property
    def decoder_matrix(self) -> torch.Tensor:
        """D (input_dim, latent_dim): Wᵀ of the encoder when tied (the very same tensor), else its own."""
        return self.encoder.weight.T if self.tied else self.decoder_weight

    def set_minmax_stats(self, x: torch.Tensor, group: int) -> None:
        with torch.no_grad():
            self.mm_lo[group] = x.min(0).values
            self.mm_hi[group] = x.max(0).values

    def to_minmax(self, x: torch.Tensor, group: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Min-max-normalised x with its (lo, range); identity when ``minmax='none'``."""
        if self.minmax == "none":
            return x, torch.zeros_like(x[:1]), torch.ones_like(x[:1])
        if self.minmax == "batch" and self.training:
            lo, hi = x.min(0, keepdim=True).values, x.max(0, keepdim=True).values
        else:
            lo, hi = self.mm_lo[group : group + 1], self.mm_hi[group : group + 1]
        rng = hi - lo
        rng = torch.where(rng > 0, rng, torch.ones_like(rng))  # a constant feature maps to 0 (authors: nan → 0)
        return (x - lo) / rng, lo, rng

    def encode(self, x: torch.Tensor, group: int = USER) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Codes z and the normalisation info ``decode`` needs to return to the original space."""
        xm, lo, rng = self.to_minmax(x, group)
        info = {"lo": lo, "range": rng, "x_norm": xm}
        h = xm
        if self.layernorm:  # authors' LN: (x - mean) / (unbiased std + 1e-5)
            mu = h.mean(-1, keepdim=True)
            std = (h - mu).std(-1, keepdim=True)
            h = (h - mu) / (std + 1e-5)
            info["mu"], info["std"] = mu, std
        pre = F.linear(h - self.pre_bias, self.encoder.weight, self.latent_bias)
        info["pre_act"] = pre
        return self.activate(pre), info

    def activate(self, pre: torch.Tensor) -> torch.Tensor:
        if self.activation == "relu":
            return torch.relu(pre)
        vals, idx = torch.topk(pre, self.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))

    def decode(
        self, z: torch.Tensor, info: dict[str, torch.Tensor], space: Literal["original", "normalized"] = "original"
    ) -> torch.Tensor:
        """Reconstruction in the min-max-normalised space or (default) mapped back to the original space."""
        y = F.linear(z, self.decoder_matrix) + self.pre_bias
        if self.layernorm:
            y = y * info["std"] + info["mu"]
        if space == "normalized":
            return y
        return y * info["range"] + info["lo"]

    def forward(self, x: torch.Tensor, group: int = USER) -> tuple[torch.Tensor, torch.Tensor]:
        """(reconstruction in the original space, codes)."""
        z, info = self.encode(x, group)
        return self.decode(z, info), z


def build_sae(config: SAEConfig, input_dim: int, seed: int) -> SparseAutoencoder:
    return SparseAutoencoder(
        input_dim,
        config.latent_dim,
        tied=config.tied,
        activation=config.activation,
        topk=config.topk,
        layernorm=config.layernorm,
        minmax=config.minmax,
        generator=torch.Generator().manual_seed(seed),
    )


# ----------------------------------------------------------------------------------------------------------
# Loss terms
# ----------------------------------------------------------------------------------------------------------


def kl_sparsity(z: torch.Tensor, target: float, eps: float = 1e-6) -> torch.Tensor:
    """Σ_j KL(ρ ‖ ρ̂_j), ρ̂_j = batch mean of unit j clamped to [eps, 1-eps] (authors' kl_divergence_loss)."""
    rho_hat = z.mean(0).clamp(eps, 1 - eps)
    rho = torch.as_tensor(target, dtype=z.dtype, device=z.device)
    return (
        rho * torch.log((rho + eps) / (rho_hat + eps)) + (1 - rho) * torch.log((1 - rho + eps) / (1 - rho_hat + eps))
    ).sum()


def prediction_loss(
    recommender: ImplicitRecommender,
    users: torch.Tensor,
    items: torch.Tensor,
    user_orig: torch.Tensor,
    item_orig: torch.Tensor,
    user_recon: torch.Tensor,
    item_recon: torch.Tensor,
    mode: Literal["matrix", "pairs"] = "matrix",
) -> torch.Tensor:
    """Disagreement of the frozen recommender's scores from original vs reconstructed embeddings.

    MSE of logits for ``prediction_loss == 'mse'`` models (MF), KL(σ(s) ‖ σ(ŝ)) = BCE(ŝ, σ(s)) - H(σ(s)) for
    ``'bce'`` models (NCF). Both are exactly 0 when the reconstructions equal the originals.
    """
    fn = recommender.score_matrix if mode == "matrix" else recommender.score
    with torch.no_grad():
        s = fn(users, items, user_orig, item_orig)
    s_hat = fn(users, items, user_recon, item_recon)
    if recommender.prediction_loss == "mse":
        return F.mse_loss(s_hat, s)
    if recommender.prediction_loss == "bce":
        target = torch.sigmoid(s)
        entropy = F.binary_cross_entropy_with_logits(s, target)
        return F.binary_cross_entropy_with_logits(s_hat, target) - entropy
    raise ValueError(f"unknown prediction_loss {recommender.prediction_loss!r}")


def sae_objective(
    sae: SparseAutoencoder,
    recommender: ImplicitRecommender,
    config: SAEConfig,
    side: Side,
    users: torch.Tensor,
    items: torch.Tensor,
    user_emb: torch.Tensor,
    item_emb: torch.Tensor,
) -> dict[str, torch.Tensor]:
    """All loss terms for one batch (``user_emb``/``item_emb`` are the batch rows); key ``loss`` = total."""
    space = config.loss_space
    enc_u, enc_i = side in ("user", "both"), side in ("item", "both")
    zu, info_u = sae.encode(user_emb, USER) if enc_u else (None, None)
    zi, info_i = sae.encode(item_emb, ITEM) if enc_i else (None, None)

    def target(x: torch.Tensor, info: dict | None, group: int) -> torch.Tensor:
        if space == "original":
            return x
        return info["x_norm"] if info is not None else sae.to_minmax(x, group)[0]

    tu, ti = target(user_emb, info_u, USER), target(item_emb, info_i, ITEM)
    prefixes = config.matryoshka_prefixes or (config.latent_dim,)
    recon = torch.zeros((), device=user_emb.device)
    pred = torch.zeros((), device=user_emb.device)
    for m in prefixes:
        ru = ri = None
        if enc_u:
            zm = zu if m == config.latent_dim else torch.cat([zu[:, :m], torch.zeros_like(zu[:, m:])], 1)
            ru = sae.decode(zm, info_u, space)
            recon = recon + F.mse_loss(ru, tu)
        if enc_i:
            zm = zi if m == config.latent_dim else torch.cat([zi[:, :m], torch.zeros_like(zi[:, m:])], 1)
            ri = sae.decode(zm, info_i, space)
            recon = recon + F.mse_loss(ri, ti)
        if config.pred_weight > 0 or not sae.training:  # evaluation reports it for reconstruction-only too
            pred = pred + prediction_loss(
                recommender,
                users,
                items,
                tu,
                ti,
                tu if ru is None else ru,
                ti if ri is None else ri,
                config.pred_mode,
            )
    codes = [z for z in (zu, zi) if z is not None]
    kl = sum((kl_sparsity(z, config.kl_target) for z in codes), torch.zeros((), device=user_emb.device))
    l1 = sum((z.abs().mean() for z in codes), torch.zeros((), device=user_emb.device))
    total = config.mse_weight * recon + config.pred_weight * pred + config.kl_weight * kl + config.l1_weight * l1
    return {"loss": total, "recon": recon, "pred": pred, "kl": kl, "l1": l1}


# ----------------------------------------------------------------------------------------------------------
# Evaluation helpers
# ----------------------------------------------------------------------------------------------------------


@torch.no_grad()
def reconstruct(sae: SparseAutoencoder, emb: torch.Tensor, group: int, chunk: int = 65536) -> torch.Tensor:
    """Reconstructions (original space) of many embeddings, evaluation-mode normalisation."""
    was = sae.training
    sae.eval()
    out = torch.cat([sae(emb[s : s + chunk], group)[0] for s in range(0, len(emb), chunk)])
    sae.train(was)
    return out


@torch.no_grad()
def codes(sae: SparseAutoencoder, emb: torch.Tensor, group: int) -> torch.Tensor:
    """SAE codes (evaluation mode), e.g. of all items for ``monosemanticity_scores``."""
    was = sae.training
    sae.eval()
    z = sae.encode(emb, group)[0]
    sae.train(was)
    return z


@torch.no_grad()
def sae_fidelity(
    sae: SparseAutoencoder,
    recommender: ImplicitRecommender,
    users: torch.Tensor,
    side: Side = "both",
    k: int = 30,
    p: float = 0.9,
) -> dict[str, float]:
    """RBO / Kendall tau between top-k lists (all items) from original vs reconstructed embeddings."""
    dev = users.device
    all_items = torch.arange(recommender.item_embeddings().shape[0], device=dev)
    u_emb = recommender.user_embeddings().detach()[users]
    u_rec = reconstruct(sae, u_emb, USER) if side in ("user", "both") else None
    i_rec = reconstruct(sae, recommender.item_embeddings().detach(), ITEM) if side in ("item", "both") else None
    orig = recommender.score_matrix(users, all_items)
    recon = recommender.score_matrix(users, all_items, u_rec, i_rec)
    return recommendation_fidelity(orig, recon, k=k, p=p)


def concept_control_users(
    sae: SparseAutoencoder,
    recommender: ImplicitRecommender,
    users: torch.Tensor,
    neuron: int,
    concept_items: np.ndarray,
    *,
    values: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 5.0),
    mode: Literal["scale", "add"] = "scale",
    k: int = 30,
    reconstruct_items: bool = True,
    exclude: np.ndarray | None = None,
) -> pd.DataFrame:
    """``recrepro.fidelity.concept_control`` for the users' codes of this SAE and recommender.

    Items are scored with their reconstructions (``reconstruct_items``, as when the SAE replaces both sides)
    or their original embeddings; each user keeps its own bias.
    """
    dev = users.device
    sae.eval()
    all_items = torch.arange(recommender.item_embeddings().shape[0], device=dev)
    item_emb = recommender.item_embeddings().detach()
    item_emb = reconstruct(sae, item_emb, ITEM) if reconstruct_items else item_emb
    with torch.no_grad():
        z, info = sae.encode(recommender.user_embeddings().detach()[users], USER)
    return concept_control(
        z,
        lambda codes_: sae.decode(codes_, info),
        lambda u_emb: recommender.score_matrix(users, all_items, u_emb, item_emb),
        neuron,
        concept_items,
        values=values,
        mode=mode,
        k=k,
        exclude=exclude,
    )


# ----------------------------------------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------------------------------------


class _Batches:
    """(users, items) index batches: interaction pairs of the given users, or users × random items."""

    def __init__(
        self, users: np.ndarray, n_items: int, interactions: Ratings | None, batch_size: int, steps: int | None
    ) -> None:
        self.users, self.n_items, self.bs, self.steps = np.asarray(users), n_items, batch_size, steps
        self.pairs = None
        if interactions is not None:
            keep = np.isin(interactions.users, self.users)
            self.pairs = (interactions.users[keep], interactions.items[keep])
            if keep.sum() == 0:
                raise ValueError("no interaction of the SAE's users")

    def epoch(self, gen: torch.Generator) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        if self.pairs is not None:
            perm = torch.randperm(len(self.pairs[0]), generator=gen).numpy()
            u, i = self.pairs[0][perm], self.pairs[1][perm]
            for s in range(0, len(u), self.bs):
                out.append((torch.as_tensor(u[s : s + self.bs]), torch.as_tensor(i[s : s + self.bs])))
        else:
            perm = torch.randperm(len(self.users), generator=gen).numpy()
            u = self.users[perm]
            for s in range(0, len(u), self.bs):
                ub = torch.as_tensor(u[s : s + self.bs])
                ib = torch.randperm(self.n_items, generator=gen)[: len(ub)]
                if len(ib) < len(ub):  # fewer items than a batch: sample with replacement
                    ib = torch.randint(self.n_items, (len(ub),), generator=gen)
                out.append((ub, ib))
        return out[: self.steps] if self.steps is not None else out


@torch.no_grad()
def _eval_objective(
    sae: SparseAutoencoder,
    rec: ImplicitRecommender,
    config: SAEConfig,
    side: Side,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
    u_all: torch.Tensor,
    i_all: torch.Tensor,
) -> dict[str, float]:
    sae.eval()
    sums: dict[str, float] = {}
    dev = u_all.device
    for ub, ib in batches:
        ub, ib = ub.to(dev), ib.to(dev)
        terms = sae_objective(sae, rec, config, side, ub, ib, u_all[ub], i_all[ib])
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v)
    return {k: v / len(batches) for k, v in sums.items()}


def _metrics(
    sae: SparseAutoencoder,
    rec: ImplicitRecommender,
    config: SAEConfig,
    side: Side,
    users: np.ndarray,
    batches: list,
    u_all: torch.Tensor,
    i_all: torch.Tensor,
) -> dict[str, float]:
    dev = u_all.device
    out = _eval_objective(sae, rec, config, side, batches, u_all, i_all)
    ut = torch.as_tensor(users, device=dev)
    out.update(sae_fidelity(sae, rec, ut, side, config.fidelity_k, config.rbo_p))
    zu, zi = codes(sae, u_all[ut], USER), codes(sae, i_all, ITEM)
    out["active_user"] = float((zu > 0).float().sum(1).mean())
    out["active_item"] = float((zi > 0).float().sum(1).mean())
    out["dead_item_units"] = float(((zi > 0).sum(0) == 0).sum())
    with torch.no_grad():
        out["recon_mse_user"] = float(F.mse_loss(reconstruct(sae, u_all[ut], USER), u_all[ut]))
        out["recon_mse_item"] = float(F.mse_loss(reconstruct(sae, i_all, ITEM), i_all))
    return out


def fit_sae(
    recommender: ImplicitRecommender,
    config: SAEConfig | None = None,
    *,
    side: Side = "both",
    train_ids: np.ndarray,
    test_ids: np.ndarray,
    device: str = "auto",
    seed: int = 0,
    checkpoint_path: Path | str | None = None,
    interactions: Ratings | None = None,
) -> tuple[SparseAutoencoder, FitResult]:
    """Train an SAE on the frozen ``recommender``'s embeddings; ``train_ids``/``test_ids`` are *user* ids.

    Batches are the ``interactions`` (user, item) pairs of the training users when given (authors: the
    recommender's training batches; pass the binarised training positives), else training users × uniformly
    random items. ``valid_fraction`` of ``train_ids`` (seeded) select the epoch. ``metrics``/``valid_metrics``:
    the objective terms, ``rbo``, ``rbo_ext``, ``kendall_tau``, ``overlap``, ``top1`` (top-``fidelity_k`` lists
    over all items), active units per user/item code, dead item units, reconstruction MSE in the original
    space. The recommender is moved to ``device`` and left with its parameters and modes as it came.
    """
    config = config or SAEConfig()
    if side not in ("user", "item", "both"):
        raise ValueError(f"side must be user, item or both, got {side!r}")
    train_ids, test_ids = np.asarray(train_ids, dtype=np.int64), np.asarray(test_ids, dtype=np.int64)
    if np.intersect1d(train_ids, test_ids).size:
        raise ValueError("train_ids and test_ids overlap")
    dev = resolve_device(device)
    ckpt_path = Path(checkpoint_path) if checkpoint_path is not None else None
    rng = np.random.default_rng(seed)
    shuffled = rng.permutation(train_ids)
    n_valid = max(1, int(round(config.valid_fraction * len(train_ids))))
    valid_ids, fit_ids = np.sort(shuffled[:n_valid]), np.sort(shuffled[n_valid:])

    rec = recommender.to(dev)
    flags = [p.requires_grad for p in rec.parameters()]
    was_training = rec.training
    try:
        for p in rec.parameters():
            p.requires_grad_(False)
        rec.eval()
        u_all = rec.user_embeddings().detach()
        i_all = rec.item_embeddings().detach()
        sae = build_sae(config, u_all.shape[1], seed).to(dev)
        sae.set_minmax_stats(u_all[torch.as_tensor(fit_ids, device=dev)], USER)
        sae.set_minmax_stats(i_all, ITEM)
        optimizer = torch.optim.Adam(sae.parameters(), lr=config.lr)
        gen = torch.Generator().manual_seed(seed + 1)
        n_items = i_all.shape[0]
        train_batches = _Batches(fit_ids, n_items, interactions, config.batch_size, config.steps_per_epoch)
        eval_gen = torch.Generator().manual_seed(seed + 2)
        valid_batches = _Batches(valid_ids, n_items, interactions, config.batch_size, None).epoch(eval_gen)
        valid_batches = valid_batches[: config.eval_batches]
        test_batches = _Batches(test_ids, n_items, interactions, config.batch_size, None).epoch(eval_gen)
        test_batches = test_batches[: config.eval_batches]

        mode = "min" if config.select_metric == "loss" else "max"
        stopper = EarlyStopping(config.patience, mode=mode)
        history: list[dict[str, float]] = []
        best_state: dict[str, torch.Tensor] | None = None
        start_epoch, stopped = 0, False
        cfg = asdict(config)
        ckpt = load_checkpoint(ckpt_path)
        if ckpt is not None:
            diff = [k for k in _TRAJECTORY_FIELDS if ckpt["config"].get(k) != cfg[k]]
            if diff or ckpt["seed"] != seed or ckpt["side"] != side:
                raise ValueError(f"checkpoint {ckpt_path} was written by a different run (differs in {diff or 'run'})")
            sae.load_state_dict(ckpt["sae"])
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
                    "sae": sae.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "early_stopping": stopper.state_dict(),
                    "generator": gen.get_state(),
                    "history": history,
                    "best_state": best_state,
                    "config": cfg,
                    "seed": seed,
                    "side": side,
                },
                ckpt_path,
            )

        last_epoch = start_epoch
        for epoch in range(start_epoch + 1, config.epochs + 1):
            if stopped:
                break
            t0 = time.perf_counter()
            sae.train()
            total, steps = 0.0, 0
            for ub, ib in train_batches.epoch(gen):
                ub, ib = ub.to(dev), ib.to(dev)
                terms = sae_objective(sae, rec, config, side, ub, ib, u_all[ub], i_all[ib])
                optimizer.zero_grad(set_to_none=True)
                terms["loss"].backward()
                optimizer.step()
                total += float(terms["loss"].detach())
                steps += 1
            seconds = time.perf_counter() - t0
            last_epoch = epoch
            vm = _metrics(sae, rec, config, side, valid_ids, valid_batches, u_all, i_all)
            history.append({"epoch": epoch, "train_loss": total / max(steps, 1), "seconds": seconds})
            history[-1].update({f"valid_{k}": v for k, v in vm.items()})
            if stopper.update(vm["loss" if config.select_metric == "loss" else "rbo"], epoch):
                best_state = {k: v.detach().cpu().clone() for k, v in sae.state_dict().items()}
            stopped = stopper.should_stop
            if epoch % config.checkpoint_every == 0 or stopped or epoch == config.epochs:
                save(epoch)

        if best_state is not None:
            sae.load_state_dict(best_state)
        sae.eval()
        valid_metrics = _metrics(sae, rec, config, side, valid_ids, valid_batches, u_all, i_all)
        test_metrics = _metrics(sae, rec, config, side, test_ids, test_batches, u_all, i_all)
    finally:
        for p, f in zip(rec.parameters(), flags, strict=True):
            p.requires_grad_(f)
        rec.train(was_training)
    result = FitResult(
        metrics=test_metrics,
        best_epoch=stopper.best_epoch,
        history=pd.DataFrame(history),
        config={**cfg, "side": side, "seed": seed, "device": str(dev), "n_fit_users": len(fit_ids)},
        valid_metrics=valid_metrics,
        epochs_run=last_epoch,
    )
    return sae, result


def split_users(n_users: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random 80/20 user split (authors: unseeded ``random.sample`` of floor(0.2 n) users)."""
    rng = np.random.default_rng(seed)
    test = np.sort(rng.choice(n_users, size=int(math.floor(test_fraction * n_users)), replace=False))
    return np.setdiff1d(np.arange(n_users), test), test


__all__ = [
    "LASTFM_MATRYOSHKA_SAE",
    "LASTFM_MF_SAE",
    "LASTFM_NCF_SAE",
    "ML1M_MF_SAE",
    "ML1M_NCF_SAE",
    "SAEConfig",
    "SparseAutoencoder",
    "build_sae",
    "codes",
    "concept_control_users",
    "fit_sae",
    "kl_sparsity",
    "prediction_loss",
    "reconstruct",
    "reconstruction_only",
    "sae_fidelity",
    "sae_objective",
    "split_users",
]
