"""List fidelity and concept metrics of Arviv et al. 2025 (interaction-aware monosemantic concepts).

Fidelity asks whether an SAE's reconstructed embeddings produce the *same recommendations* as the original
ones: per user, the top-k list from the original scores is compared with the top-k list from the scores of
the reconstructed embeddings.

* ``rbo``: rank-biased overlap (Webber, Moffat & Zobel 2010, ACM TOIS 28(4)). With A_d the overlap of the two
  depth-d prefixes divided by d, the truncated sum is (1 - p) Σ_{d=1..D} p^{d-1} A_d — the authors' function
  (``utils.ipynb``), which caps identical lists of length 30 at 1 - p^30 ≈ 0.958 for p = 0.9. The extrapolated
  RBO_ext (Webber et al. eq. 30/32; equation numbers from memory, not verified) adds the tail assuming the
  agreement at the last depth continues, so identical lists score exactly 1.
* ``kendall_tau_topk``: the authors' Kendall tau between two top-k lists — over the union of their items, an
  item absent from a list gets rank len(list) + 1 (ties), then ``scipy.stats.kendalltau`` (tau-b).
* ``monosemanticity_scores``: the authors' MS score (``ms_score_new``): per neuron, activations min–max
  normalised over items, its ``top`` most activating items, MS = Σ_{i≠j} a_i a_j cos(f_i, f_j) / Σ_{i≠j} a_i a_j
  with f the item features (the authors use the recommender's item embeddings); and, as an alternative that
  does not reuse the embeddings, the share of the neuron's top items carrying its most frequent genre.
* ``concept_control``: promote / suppress a concept by editing one SAE neuron of the users' codes, decode,
  re-rank, and measure the share of concept items (e.g. one genre) in the top-k lists.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from scipy.stats import kendalltau

ArrayLike = np.ndarray | torch.Tensor


def _np(x: ArrayLike) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _check_unique(lst: Sequence, name: str) -> None:
    if len(set(lst)) != len(lst):
        raise ValueError(f"{name} has repeated items; RBO is defined for rankings without repeats")


def rbo(
    list_a: Sequence,
    list_b: Sequence,
    p: float = 0.9,
    depth: int | None = None,
    extrapolated: bool = False,
) -> float:
    """Rank-biased overlap of two rankings (items hashable, no repeats).

    ``depth`` truncates both lists first (None: the longer list's length). ``extrapolated=False`` is the
    authors' truncated sum (identical lists of length D give 1 - p^D); ``extrapolated=True`` is RBO_ext,
    which also handles lists of different lengths (Webber et al., uneven-lists form).
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p must be in (0, 1), got {p}")
    a, b = list(list_a), list(list_b)
    if depth is not None:
        a, b = a[:depth], b[:depth]
    _check_unique(a, "list_a")
    _check_unique(b, "list_b")
    if not extrapolated:
        seen_a: set = set()
        seen_b: set = set()
        overlap, total = 0, 0.0
        for d in range(1, max(len(a), len(b)) + 1):
            if d <= len(a):
                x = a[d - 1]
                overlap += x in seen_b
                seen_a.add(x)
            if d <= len(b):
                y = b[d - 1]
                overlap += y in seen_a
                seen_b.add(y)
            total += p ** (d - 1) * overlap / d
        return (1.0 - p) * total
    # RBO_ext with S the shorter (length s) and L the longer (length n) list:
    #   (1-p)/p [Σ_{d=1..n} X_d/d p^d + Σ_{d=s+1..n} X_s (d-s)/(s d) p^d] + [(X_n - X_s)/n + X_s/s] p^n
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    s, n = len(short), len(long_)
    if n == 0:
        return 1.0  # two empty rankings agree trivially
    if s == 0:
        return 0.0
    seen_s: set = set()
    seen_l: set = set()
    x = 0
    xs = 0
    acc = 0.0
    for d in range(1, n + 1):
        y = long_[d - 1]
        x += y in seen_s
        seen_l.add(y)
        if d <= s:
            z = short[d - 1]
            x += z in seen_l
            seen_s.add(z)
            if d == s:
                xs = x
        acc += x / d * p**d
        if d > s:
            acc += xs * (d - s) / (s * d) * p**d
    return (1.0 - p) / p * acc + ((x - xs) / n + xs / s) * p**n


def kendall_tau_topk(list_a: Sequence, list_b: Sequence) -> float:
    """Kendall tau-b between two top-k lists as the authors computed it (absent items ranked len + 1).

    NaN when one of the rank vectors is constant (scipy's convention; e.g. two one-item lists).
    """
    rank_a = {x: r for r, x in enumerate(list_a, 1)}
    rank_b = {x: r for r, x in enumerate(list_b, 1)}
    items = list(dict.fromkeys([*list_a, *list_b]))  # union; its order does not affect tau
    ra = [rank_a.get(x, len(list_a) + 1) for x in items]
    rb = [rank_b.get(x, len(list_b) + 1) for x in items]
    if len(items) < 2:
        return float("nan")
    return float(kendalltau(ra, rb).statistic)


def topk_lists(scores: ArrayLike, k: int, exclude: ArrayLike | None = None) -> np.ndarray:
    """(n_users, k) item indices by decreasing score; ``exclude`` (bool, same shape) drops items.

    Ties are broken towards the lower item index (stable sort), so the result is deterministic.
    """
    s = torch.as_tensor(_np(scores), dtype=torch.float64) if not isinstance(scores, torch.Tensor) else scores
    s = s.detach().double()
    if exclude is not None:
        s = s.masked_fill(torch.as_tensor(_np(exclude), dtype=torch.bool, device=s.device), -torch.inf)
    if k > s.shape[1]:
        raise ValueError(f"k={k} exceeds the number of items {s.shape[1]}")
    order = torch.sort(s, dim=1, descending=True, stable=True).indices[:, :k]
    return order.cpu().numpy()


def recommendation_fidelity(
    orig_scores: ArrayLike,
    recon_scores: ArrayLike,
    k: int = 30,
    p: float = 0.9,
    exclude: ArrayLike | None = None,
) -> dict[str, float]:
    """Mean over users of the agreement between top-k lists from original and reconstructed scores.

    Keys: ``rbo`` (truncated at depth k, the authors'), ``rbo_ext`` (extrapolated), ``kendall_tau``
    (authors' top-k version; NaN users skipped), ``overlap`` (|A ∩ B| / k), ``top1`` (same first item).
    """
    a = topk_lists(orig_scores, k, exclude)
    b = topk_lists(recon_scores, k, exclude)
    if a.shape != b.shape:
        raise ValueError("orig_scores and recon_scores must have the same shape")
    r, rx, kt, ov = [], [], [], []
    for la, lb in zip(a.tolist(), b.tolist(), strict=True):
        r.append(rbo(la, lb, p=p, depth=k))
        rx.append(rbo(la, lb, p=p, depth=k, extrapolated=True))
        kt.append(kendall_tau_topk(la, lb))
        ov.append(len(set(la) & set(lb)) / k)
    return {
        "rbo": float(np.mean(r)),
        "rbo_ext": float(np.mean(rx)),
        "kendall_tau": float(np.nanmean(kt)) if not np.all(np.isnan(kt)) else float("nan"),
        "overlap": float(np.mean(ov)),
        "top1": float(np.mean(a[:, 0] == b[:, 0])),
        "n_users": float(len(a)),
    }


def _minmax_columns(a: np.ndarray) -> np.ndarray:
    """Per-column (x - min) / (max - min); a constant column becomes 0 (sklearn MinMaxScaler behaviour)."""
    lo, hi = a.min(0), a.max(0)
    rng = np.where(hi - lo > 0, hi - lo, 1.0)
    return (a - lo) / rng


def _ms_one(vals: np.ndarray, feats: np.ndarray) -> float:
    r = np.outer(vals, vals)
    np.fill_diagonal(r, 0.0)
    norms = np.linalg.norm(feats, axis=1)
    unit = feats / np.where(norms > 0, norms, 1.0)[:, None]  # zero vectors: cosine 0 (sklearn convention)
    sim = unit @ unit.T
    np.fill_diagonal(sim, 0.0)
    denom = r.sum()
    return float((r * sim).sum() / denom) if denom != 0 else 0.0


def monosemanticity_scores(
    activations: ArrayLike,
    item_features: ArrayLike,
    top: int = 30,
    genres: ArrayLike | None = None,
    n_random: int = 0,
    seed: int = 0,
) -> dict[str, np.ndarray | float]:
    """Per-neuron concept coherence of SAE neurons over items.

    ``activations`` (n_items, n_neurons) are SAE codes of the items; ``item_features`` (n_items, f) the vectors
    whose cosine similarity defines coherence (authors: the recommender's item embeddings; a genre matrix also
    works). ``genres`` (n_items, n_genres) binary enables the genre-share alternative. With ``n_random`` > 0,
    the same statistics for ``n_random`` random item sets of size ``top`` (uniform weights) give a chance
    level. Returns ``ms`` (per neuron), ``ms_mean`` (the authors' number: mean over all neurons, dead ones
    count 0), ``dead`` (neurons constant over items), and if ``genres`` is given ``genre_share``,
    ``dominant_genre`` (NaN / -1 for dead neurons) and ``genre_share_mean`` (over live neurons);
    ``ms_random`` / ``genre_share_random`` with ``n_random``.
    """
    act = _np(activations).astype(np.float64)
    feats = _np(item_features).astype(np.float64)
    if act.ndim != 2 or feats.ndim != 2 or len(act) != len(feats):
        raise ValueError("activations (n_items, n_neurons) and item_features (n_items, f) must align")
    top = min(top, len(act))
    a_norm = _minmax_columns(act)
    dead = act.max(0) == act.min(0)
    ms = np.zeros(act.shape[1])
    tops = []
    for n in range(act.shape[1]):
        idx = np.argsort(a_norm[:, n], kind="stable")[-top:]
        tops.append(idx)
        ms[n] = _ms_one(a_norm[idx, n], feats[idx])
    out: dict[str, np.ndarray | float] = {"ms": ms, "ms_mean": float(ms.mean()), "dead": dead}
    g = None if genres is None else _np(genres).astype(bool)
    if g is not None:
        share = np.full(act.shape[1], np.nan)
        dom = np.full(act.shape[1], -1)
        for n, idx in enumerate(tops):
            if dead[n]:
                continue
            counts = g[idx].sum(0)
            dom[n] = int(np.argmax(counts))
            share[n] = counts[dom[n]] / len(idx)
        out["genre_share"] = share
        out["dominant_genre"] = dom
        out["genre_share_mean"] = float(np.nanmean(share)) if (~dead).any() else float("nan")
    if n_random > 0:
        rng = np.random.default_rng(seed)
        ms_r, gs_r = [], []
        for _ in range(n_random):
            idx = rng.choice(len(act), size=top, replace=False)
            ms_r.append(_ms_one(np.ones(top), feats[idx]))
            if g is not None:
                gs_r.append(g[idx].sum(0).max() / top)
        out["ms_random"] = float(np.mean(ms_r))
        if g is not None:
            out["genre_share_random"] = float(np.mean(gs_r))
    return out


def concept_control(
    latents: torch.Tensor,
    decode: Callable[[torch.Tensor], torch.Tensor],
    score: Callable[[torch.Tensor], torch.Tensor],
    neuron: int,
    concept_items: ArrayLike,
    values: Sequence[float] = (0.0, 0.5, 1.0, 2.0, 5.0),
    mode: Literal["scale", "add"] = "scale",
    k: int = 30,
    exclude: ArrayLike | None = None,
    p: float = 0.9,
) -> pd.DataFrame:
    """Edit one neuron of the users' SAE codes and measure how the top-k lists move toward a concept.

    ``latents`` (n_users, n_neurons) are the users' codes, ``decode`` maps codes to user embeddings and
    ``score`` user embeddings to (n_users, n_items) scores. ``mode='scale'`` multiplies the neuron by each
    value (0 suppresses, > 1 promotes; a neuron that is 0 for a user cannot be promoted that way);
    ``mode='add'`` adds value · max(neuron over these users) (max 1 if the neuron is dead here). The baseline
    is the unedited codes decoded the same way. One row per value: ``share`` (mean share of ``concept_items``
    in the top-k), ``delta_share`` (vs baseline), ``rbo_to_baseline`` (truncated RBO, depth k) and
    ``changed_users`` (share of users whose list changed at all).
    """
    concept = torch.as_tensor(_np(concept_items), dtype=torch.bool)
    with torch.no_grad():
        base_lists = topk_lists(score(decode(latents)), k, exclude)
        base_share = concept[torch.as_tensor(base_lists)].float().mean(1)
        ref = float(latents[:, neuron].max()) if mode == "add" else 1.0
        ref = ref if ref > 0 else 1.0
        rows = []
        for v in values:
            z = latents.clone()
            if mode == "scale":
                z[:, neuron] = z[:, neuron] * v
            elif mode == "add":
                z[:, neuron] = z[:, neuron] + v * ref
            else:
                raise ValueError(f"unknown mode {mode!r}; choose scale or add")
            lists = topk_lists(score(decode(z)), k, exclude)
            share = concept[torch.as_tensor(lists)].float().mean(1)
            rows.append(
                {
                    "value": float(v),
                    "share": float(share.mean()),
                    "delta_share": float((share - base_share).mean()),
                    "rbo_to_baseline": float(
                        np.mean([rbo(a, b, p=p, depth=k) for a, b in zip(base_lists, lists, strict=True)])
                    ),
                    "changed_users": float(np.mean((base_lists != lists).any(1))),
                    "baseline_share": float(base_share.mean()),
                }
            )
    return pd.DataFrame(rows)


__all__ = [
    "concept_control",
    "kendall_tau_topk",
    "monosemanticity_scores",
    "rbo",
    "recommendation_fidelity",
    "topk_lists",
]
