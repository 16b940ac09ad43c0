"""Implicit-feedback ranking: shared evaluation, the shared pairwise training loop, and the baselines.

Protocol (NCF/LRML leave-one-out, ``recrepro.data.types.LeaveOneOut``): every user has one held-out test item.
``evaluate_ranking`` ranks it either among the user's fixed sampled negatives (``protocol="sampled"``, the
protocol of the papers: 99 negatives in the NCF files) or among every item the user has no training
interaction with (``protocol="full"``, Krichene & Rendle 2020 show sampled metrics can reorder methods).
Ties are counted in expectation over a random order (``recrepro.metrics``), so a constant scorer gets chance.

Selection rule (every ``fit_*`` here and in ``lrml.py``): the model is trained on
``loo.validation_view(seed).train`` (the training interactions minus one validation item per user: the latest
by timestamp, a random one where the time is unknown), the state with the best validation HR@10 (sampled
protocol, validation negatives) is kept, and test metrics are computed at that state on the real test items,
with the *full* training set masked in full ranking. We do **not** refit on the full training data after
selection: the reported model never saw the validation items (one per user), a small handicap shared by all
methods; ``FitResult.config["refit_on_full_train"]`` records this. Popularity has nothing to select; its
test scores are the item counts of the full training set.

Baselines (all return ``FitResult``; metric keys ``"sampled/hr@10"``, ``"full/ndcg@10"``...):

* popularity: score = number of training interactions of the item (deterministic);
* BPR-MF (Rendle et al. 2009): s = p_u·q_i (+ item bias), loss -log σ(s_ui - s_uj) with j uniform among the
  user's non-interacted items;
* NeuMF (He et al. 2017, WWW): GMF and MLP towers on separate embeddings, one logit, log loss on each positive
  and its sampled negatives (the authors' ``NeuMF.py`` without pre-training);
* CML (Hsieh et al. 2017, WWW): s = -‖u - v‖², loss Σ w_ui [m + d(u,i)² - min_j d(u,j)²]_+ over U sampled
  negatives with the WARP-like rank weight w = log(1 + n_items · #impostors / U) of the authors' code, all
  embeddings clipped to norm ≤ 1 after each step, optional covariance regulariser;
* iALS (Hu et al. 2008 in the form of Rendle et al. 2021, "Revisiting the performance of iALS"):
  L = Σ_{(u,i) observed} (w_u·h_i - 1)² + α₀ Σ_{u,i} (w_u·h_i)² + Σ_u λ_u‖w_u‖² + Σ_i λ_i‖h_i‖², with
  λ_u = λ (|I_u| + α₀|I|)^ν; each half-step is the exact per-row solve
  (α₀ HᵀH + Σ_{i∈I_u} h_i h_iᵀ + λ_u I) w_u = Σ_{i∈I_u} h_i (``ials_solve``, torch.linalg on the device).

Equation numbers of the cited papers are not verified (no full text available to us).
"""

from __future__ import annotations

import copy
import itertools
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn

from recrepro.data.types import LeaveOneOut, Ratings
from recrepro.device import resolve_device
from recrepro.metrics import rank_counts, ranking_metrics
from recrepro.training import EarlyStopping, FitResult, atomic_torch_save, load_checkpoint

ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
EvalProtocol = Literal["sampled", "full"]
DEFAULT_KS: tuple[int, ...] = (1, 5, 10, 20)
SELECT_METRIC = "sampled/hr@10"
# config fields that may change between a checkpoint and its resumption (they do not alter the trajectory)
RESUMABLE_FIELDS = ("epochs", "checkpoint_every", "eval_batch_users")


def as_device(device: str | torch.device) -> torch.device:
    """Accept either a resolved ``torch.device`` or one of ``auto``/``cpu``/``cuda``."""
    return device if isinstance(device, torch.device) else resolve_device(device)


# ----------------------------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate_ranking(
    score_fn: ScoreFn,
    loo: LeaveOneOut,
    *,
    protocol: EvalProtocol = "sampled",
    ks: Sequence[int] = DEFAULT_KS,
    device: str | torch.device = "auto",
    batch_users: int = 256,
) -> dict[str, float]:
    """HR@k, nDCG@k (each k) and MRR of ``loo``'s held-out items, keyed like ``hr@10``.

    ``score_fn(users, items)`` takes users (B,) and items (B, m) on ``device`` and returns (B, m) scores,
    higher = better. ``sampled`` ranks the target among ``loo.test_negatives`` (a negative equal to the target
    is ignored, as in NCF's evaluator); ``full`` ranks it among every
    item without a training interaction of that user (the target is a candidate; training items are masked
    through ``rank_counts``'s ``valid``). Users without a target (``test_items == -1``) are skipped.
    """
    if protocol not in ("sampled", "full"):
        raise ValueError(f"unknown protocol {protocol!r}; choose 'sampled' or 'full'")
    dev = as_device(device)
    users = np.flatnonzero(loo.test_items >= 0)
    if len(users) == 0:
        raise ValueError("no user has a held-out item to rank")
    csr = loo.train.to_csr() if protocol == "full" else None
    all_items = torch.arange(loo.n_items, device=dev)
    greater: list[np.ndarray] = []
    ties: list[np.ndarray] = []
    for start in range(0, len(users), batch_users):
        ub = users[start : start + batch_users]
        u = torch.as_tensor(ub, device=dev)
        target = torch.as_tensor(loo.test_items[ub], device=dev)
        rows = torch.arange(len(ub), device=dev)
        if protocol == "sampled":
            negatives = torch.as_tensor(loo.test_negatives[ub], device=dev)
            scores = _checked_scores(score_fn, u, torch.cat([target[:, None], negatives], dim=1))
            # a negative equal to the target is not a competitor (156 users of NCF's ML-1M file have one);
            # NCF's own evaluator drops it too, by keying scores on item id
            g, t = rank_counts(scores[:, 0], scores[:, 1:], negatives != target[:, None])
        else:
            assert csr is not None
            scores = _checked_scores(score_fn, u, all_items.expand(len(ub), -1))
            sub = csr[ub]
            valid = torch.ones(len(ub), loo.n_items, dtype=torch.bool, device=dev)
            seen_rows = np.repeat(np.arange(len(ub)), np.diff(sub.indptr))
            valid[torch.as_tensor(seen_rows, device=dev), torch.as_tensor(sub.indices, device=dev)] = False
            valid[rows, target] = False  # the target's own score is not a competitor
            g, t = rank_counts(scores[rows, target], scores, valid)
        greater.append(g)
        ties.append(t)
    return ranking_metrics(np.concatenate(greater), np.concatenate(ties), tuple(ks))


def _checked_scores(score_fn: ScoreFn, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    scores = score_fn(users, items)
    if tuple(scores.shape) != tuple(items.shape):
        raise ValueError(f"score_fn returned shape {tuple(scores.shape)}, expected {tuple(items.shape)}")
    return scores.float()


def evaluate_protocols(
    score_fn: ScoreFn,
    loo: LeaveOneOut,
    protocols: Sequence[EvalProtocol],
    *,
    ks: Sequence[int] = DEFAULT_KS,
    device: str | torch.device = "auto",
    batch_users: int = 256,
) -> dict[str, float]:
    """``evaluate_ranking`` for each protocol, keys prefixed like ``sampled/hr@10``, ``full/ndcg@10``."""
    out: dict[str, float] = {}
    for protocol in protocols:
        m = evaluate_ranking(score_fn, loo, protocol=protocol, ks=ks, device=device, batch_users=batch_users)
        out.update({f"{protocol}/{k}": v for k, v in m.items()})
    return out


def _selection_ks(ks: Sequence[int]) -> tuple[int, ...]:
    """Cut-offs computed on the validation view: only the selection metric's (HR@10; nDCG@10 and MRR come along).

    The test ``ks`` are not repeated on validation: ``recrepro.metrics`` loops over users in Python (about 0.1 s
    per cut-off on ML-1M), and the validation view is evaluated at every ``eval_every`` epochs, so a 20-point
    HR@k curve on test would otherwise add seconds to every evaluation of every trial.
    """
    return (10,)


# ------------------------------------------------------------------------------------------------- sampling


class NegativeSampler:
    """Uniform negatives among the items a user has no interaction with in ``train`` (rejection on device).

    A draw that hits a training pair is redrawn, up to ``max_rounds`` times; a user who interacted with every
    item keeps a positive as "negative" (cannot happen in the study's data). Each round checks only the draws
    redrawn in the round before: the draws that passed never change, so this returns exactly what re-checking
    every draw each round would, while CollMetric's 50,000 x 20 batches on ML-1M (about 4.5% of the matrix
    is positive) sample about 10x faster (``benchmarks/bench_pairwise.py``).

    A matrix of at most ``DENSE_MASK_LIMIT`` entries is checked against a dense boolean mask of the training
    pairs (one gather per draw; 22 MB for ML-1M), a larger one (ML-20M: 3.7 G entries) by binary search in the
    sorted pair keys. Both answer the same, so the draws are the same.
    """

    DENSE_MASK_LIMIT = 2**28

    def __init__(self, train: Ratings, device: torch.device, max_rounds: int = 100) -> None:
        self.n_items = train.n_items
        self.keys = torch.as_tensor(np.unique(train.pairs()), device=device)
        self.mask: torch.Tensor | None = None
        if train.n_users * train.n_items <= self.DENSE_MASK_LIMIT:
            self.mask = torch.zeros(train.n_users * train.n_items, dtype=torch.bool, device=device)
            self.mask[self.keys] = True
        self.device = device
        self.max_rounds = max_rounds

    def is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """True where (user, item) is a training pair."""
        key = users * self.n_items + items
        if self.mask is not None:
            return self.mask[key]
        if len(self.keys) == 0:
            return torch.zeros_like(items, dtype=torch.bool)
        idx = torch.searchsorted(self.keys, key).clamp_(max=len(self.keys) - 1)
        return self.keys[idx] == key

    def sample(self, users: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        """(len(users), n) item ids, each uniform over the user's non-interacted items."""
        items = torch.randint(self.n_items, (len(users), n), generator=generator, device=self.device)
        flat_users, flat_items = users.repeat_interleave(n), items.view(-1)
        todo = torch.arange(flat_items.numel(), device=self.device)  # positions still to check, ascending
        for _ in range(self.max_rounds):
            todo = todo[self.is_positive(flat_users[todo], flat_items[todo])]
            if todo.numel() == 0:
                break
            flat_items[todo] = torch.randint(self.n_items, (todo.numel(),), generator=generator, device=self.device)
        return items


# ------------------------------------------------------------------------------------ shared pairwise loop


SPARSE_GRAD_OPTIMIZERS = ("adagrad", "sgd")  # torch optimisers that take row-sparse gradients


class PairwiseModel(nn.Module):
    """What the shared loop needs from a model trained on (user, positive, sampled negatives) triples.

    ``sparse_grads`` (set by the loop when the optimiser takes sparse gradients): ``lookup`` then gives the
    embedding tables row-sparse gradients, so a step touches only the rows of the batch. For Adagrad and SGD
    this is the dense update exactly (a zero gradient row moves neither its parameters nor its accumulator);
    it saves the dense gradient, the full-table update and the full-table clip of every small batch.
    """

    name: str = ""  # the model's name in its fit results
    sparse_grads: bool = False

    def lookup(self, table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Rows ``idx`` (any shape) of an embedding table, with a row-sparse gradient when ``sparse_grads``."""
        if self.sparse_grads and table.requires_grad and torch.is_grad_enabled():
            return nn.functional.embedding(idx, table, sparse=True)
        return table[idx]

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """Scalar loss of a batch; ``neg`` is (B, n_negatives)."""
        raise NotImplementedError

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, m) scores of items (B, m) for users (B,); higher = better."""
        raise NotImplementedError

    def constrain(self, rows_only: bool = False) -> None:
        """Projection applied after every optimiser step (e.g. norm clipping); default none.

        ``rows_only``: the loop's promise that rows outside the last step's sparse gradients are already
        projected (true after the first step), so only those rows need it (``touched_rows``).
        """


class PairwiseTrainConfig(Protocol):
    """Fields the shared loop reads from a model config (each model's dataclass documents their sources)."""

    epochs: int
    batch_size: int
    n_negatives: int
    optimizer: str
    lr: float
    adagrad_init_acc: float
    grad_clip_norm: float | None
    eval_every: int
    patience: int
    checkpoint_every: int
    eval_batch_users: int


def make_optimizer(params: Iterator[nn.Parameter], cfg: PairwiseTrainConfig) -> torch.optim.Optimizer:
    """Adagrad (LRML/CML code), Adam or plain SGD over the trainable parameters."""
    trainable = [p for p in params if p.requires_grad]
    if cfg.optimizer == "adagrad":
        return torch.optim.Adagrad(trainable, lr=cfg.lr, initial_accumulator_value=cfg.adagrad_init_acc)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(trainable, lr=cfg.lr)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(trainable, lr=cfg.lr)
    raise ValueError(f"unknown optimizer {cfg.optimizer!r}; choose adagrad, adam or sgd")


def clip_rows_(weight: torch.Tensor, max_norm: float, rows: torch.Tensor | None = None) -> None:
    """In place: rescale every row (or only ``rows``) with L2 norm > ``max_norm`` onto the ball (TF
    ``clip_by_norm`` per row)."""
    if rows is None:
        norms = weight.norm(dim=1, keepdim=True)
        weight.mul_(torch.clamp(max_norm / norms.clamp_min(1e-12), max=1.0))
        return
    sub = weight[rows]
    weight[rows] = sub * torch.clamp(max_norm / sub.norm(dim=1, keepdim=True).clamp_min(1e-12), max=1.0)


def touched_rows(param: torch.Tensor) -> torch.Tensor | None:
    """Rows holding a (row-sparse) gradient of the last step; None when the gradient is dense or absent."""
    grad = param.grad
    if grad is None or not grad.is_sparse:
        return None
    return torch.unique(grad._indices()[0])


def _clip_grads_like_lrml_code(params: Sequence[nn.Parameter], max_norm: float) -> None:
    """Official LRML code: each gradient clipped by value to ±10, then by its own norm to ``max_norm``."""
    for p in params:
        if p.grad is None:
            continue
        if p.grad.is_sparse:  # the same clip on the rows present: absent rows are zeros in the dense gradient
            p.grad = p.grad.coalesce()
        values = p.grad._values() if p.grad.is_sparse else p.grad
        values.clamp_(-10.0, 10.0)
        norm = values.norm()
        if norm > max_norm:
            values.mul_(max_norm / norm)


def _check_resume(saved: dict[str, Any], current: dict[str, Any], seed: int, saved_seed: int) -> None:
    a = {k: v for k, v in saved.items() if k not in RESUMABLE_FIELDS}
    b = {k: v for k, v in current.items() if k not in RESUMABLE_FIELDS}
    if a != b or seed != saved_seed:
        raise ValueError(
            "checkpoint was written by a different config or seed; delete it or use another checkpoint_path "
            f"(saved {a}, seed {saved_seed}; now {b}, seed {seed})"
        )


def _state_copy(module: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _result_config(config: Any, seed: int, device: torch.device, model: str) -> dict[str, Any]:
    return {
        **asdict(config),
        "model": model,
        "seed": seed,
        "device": str(device),
        "trained_on": "validation_view(seed).train (train minus one validation item per user)",
        "selection": f"best {SELECT_METRIC} on the validation view",
        "refit_on_full_train": False,
    }


def fit_pairwise(
    model_class: type[PairwiseModel],
    loo: LeaveOneOut,
    config: Any,
    *,
    device: str | torch.device = "auto",
    seed: int = 0,
    checkpoint_path: Path | str | None = None,
    protocol_eval: Sequence[EvalProtocol] = ("sampled", "full"),
    ks: Sequence[int] = DEFAULT_KS,
    log_test_curve: bool = False,
) -> FitResult:
    """Train a ``PairwiseModel`` by epochs over the validation view's training pairs; select on validation.

    Each epoch: a random permutation of the training (user, item) pairs, ``n_negatives`` fresh uniform
    negatives per pair (drawn per batch from the same seeded generator), one optimiser step per minibatch
    followed by ``model.constrain()``. Every ``eval_every`` epochs the model is scored on the validation view
    (sampled protocol); the state with the best HR@10 is kept in memory (and in the checkpoint), training stops
    after ``patience`` evaluations without improvement. Test metrics are computed once, at the kept state.
    ``log_test_curve`` adds sampled test metrics to every history row (learning curves only).
    """
    dev = as_device(device)
    if config.epochs < 1:
        raise ValueError("epochs must be >= 1")
    cfg_dict = asdict(config)
    val = loo.validation_view(seed)
    model = model_class(loo.n_users, loo.n_items, config, torch.Generator().manual_seed(seed)).to(dev)
    model.sparse_grads = config.optimizer in SPARSE_GRAD_OPTIMIZERS
    optimizer = make_optimizer(model.parameters(), config)
    gen = torch.Generator(device=dev).manual_seed(seed + 1)
    sampler = NegativeSampler(val.train, dev)
    users_t, items_t, _ = val.train.to_torch(dev)
    n_pairs = len(users_t)
    stopper = EarlyStopping(config.patience, mode="max")
    history: list[dict[str, float]] = []
    best_state: dict[str, torch.Tensor] | None = None
    best_valid: dict[str, float] = {}
    epoch, stopped_early = 0, False
    val_ks = _selection_ks(ks)

    ckpt_path = None if checkpoint_path is None else Path(checkpoint_path)
    state = load_checkpoint(ckpt_path)
    if state is not None:
        _check_resume(state["config"], cfg_dict, seed, state["seed"])
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        stopper.load_state_dict(state["early_stopping"])
        gen.set_state(state["generator"])
        epoch, stopped_early = state["epoch"], state["stopped_early"]
        history, best_valid = state["history"], state["best_valid"]
        best_state = None if state["best_state"] is None else {k: v.to(dev) for k, v in state["best_state"].items()}

    def save() -> None:
        if ckpt_path is not None:
            atomic_torch_save(
                {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "early_stopping": stopper.state_dict(),
                    "generator": gen.get_state(),
                    "epoch": epoch,
                    "stopped_early": stopped_early,
                    "history": history,
                    "best_valid": best_valid,
                    "best_state": best_state,
                    "config": cfg_dict,
                    "seed": seed,
                },
                ckpt_path,
            )

    trainable = [p for p in model.parameters() if p.requires_grad]
    train_seconds, epochs_since_eval = 0.0, 0
    while epoch < config.epochs and not stopped_early:
        epoch += 1
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(n_pairs, generator=gen, device=dev)
        total = torch.zeros((), device=dev)
        n_batches = 0
        for start in range(0, n_pairs, config.batch_size):
            idx = perm[start : start + config.batch_size]
            u, pos = users_t[idx], items_t[idx]
            neg = sampler.sample(u, config.n_negatives, gen)
            loss = model.loss(u, pos, neg)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if config.grad_clip_norm is not None:
                _clip_grads_like_lrml_code(trainable, config.grad_clip_norm)
            with torch.sparse.check_sparse_tensor_invariants(enable=False):  # opting out explicitly: no warning
                optimizer.step()
            with torch.no_grad():
                model.constrain(rows_only=epoch > 1 or start > 0)  # the first step projects every row
            total += loss.detach()
            n_batches += 1
        train_seconds += time.perf_counter() - t0
        epochs_since_eval += 1
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            model.eval()
            vm = evaluate_ranking(
                model.score, val, protocol="sampled", ks=val_ks, device=dev, batch_users=config.eval_batch_users
            )
            row = {
                "epoch": float(epoch),
                "train_loss": float(total) / max(n_batches, 1),
                "seconds_per_epoch": train_seconds / epochs_since_eval,
                **{f"valid_sampled/{k}": v for k, v in vm.items()},
            }
            train_seconds, epochs_since_eval = 0.0, 0
            if log_test_curve:
                tm = evaluate_ranking(
                    model.score, loo, protocol="sampled", ks=ks, device=dev, batch_users=config.eval_batch_users
                )
                row.update({f"test_sampled/{k}": v for k, v in tm.items()})
            history.append(row)
            if stopper.update(vm["hr@10"], epoch):
                best_state = _state_copy(model)
                best_valid = {f"sampled/{k}": v for k, v in vm.items()}
            stopped_early = stopper.should_stop
        if epoch % config.checkpoint_every == 0 or stopped_early or epoch == config.epochs:
            save()

    assert best_state is not None
    model.load_state_dict(best_state)
    model.eval()
    metrics = evaluate_protocols(
        model.score, loo, protocol_eval, ks=ks, device=dev, batch_users=config.eval_batch_users
    )
    return FitResult(
        metrics=metrics,
        best_epoch=stopper.best_epoch,
        history=pd.DataFrame(history),
        config=_result_config(config, seed, dev, model_class.name),
        valid_metrics=best_valid,
        epochs_run=epoch,
    )


# ----------------------------------------------------------------------------------------------- popularity


@dataclass
class PopularityConfig:
    """Popularity has no hyperparameters; the dataclass keeps the ``fit_*`` signature uniform."""

    eval_batch_users: int = 1024  # our choice: users per evaluation batch


def _popularity_score_fn(train: Ratings, device: torch.device) -> ScoreFn:
    counts = torch.as_tensor(np.bincount(train.items, minlength=train.n_items).astype(np.float32), device=device)
    return lambda users, items: counts[items]


def fit_popularity(
    loo: LeaveOneOut,
    config: PopularityConfig | None = None,
    *,
    device: str | torch.device = "auto",
    seed: int = 0,
    checkpoint_path: Path | str | None = None,
    protocol_eval: Sequence[EvalProtocol] = ("sampled", "full"),
    ks: Sequence[int] = DEFAULT_KS,
) -> FitResult:
    """Rank items by their number of training interactions (ties in expectation); nothing is tuned.

    Validation metrics use the counts of the validation view's training set; test metrics the counts of the
    full training set (no selection happens, so nothing is chosen on either). ``checkpoint_path`` is ignored.
    """
    config = config or PopularityConfig()
    dev = as_device(device)
    val = loo.validation_view(seed)
    vm = evaluate_ranking(
        _popularity_score_fn(val.train, dev), val, ks=_selection_ks(ks), device=dev, batch_users=config.eval_batch_users
    )
    metrics = evaluate_protocols(
        _popularity_score_fn(loo.train, dev), loo, protocol_eval, ks=ks, device=dev, batch_users=config.eval_batch_users
    )
    result_cfg = _result_config(config, seed, dev, "popularity")
    result_cfg.update(trained_on="full train (test scores); validation view (validation scores)", selection="none")
    history = pd.DataFrame(
        [{"epoch": 0.0, "train_loss": float("nan"), **{f"valid_sampled/{k}": v for k, v in vm.items()}}]
    )
    return FitResult(
        metrics=metrics,
        best_epoch=0,
        history=history,
        config=result_cfg,
        valid_metrics={f"sampled/{k}": v for k, v in vm.items()},
        epochs_run=0,
    )


# -------------------------------------------------------------------------------------------------- BPR-MF


@dataclass
class BPRConfig:
    """BPR-MF hyperparameters (Rendle et al. 2009 fixes the loss and the sampling, not these values)."""

    dim: int = 64  # our choice: embedding size
    item_bias: bool = True  # our choice: a per-item bias (common BPR-MF variant; it captures popularity)
    init_std: float = 0.01  # our choice: N(0, init_std) initial embeddings
    reg: float = 1e-5  # our choice: L2 weight on the batch's embeddings (and biases), per triple
    optimizer: str = "adam"  # our choice
    lr: float = 1e-3  # our choice
    adagrad_init_acc: float = 0.1  # TF default; only used with optimizer="adagrad"
    batch_size: int = 1024  # our choice
    n_negatives: int = 1  # Rendle et al. 2009: one uniformly sampled negative per observed pair
    grad_clip_norm: float | None = None  # our choice: no gradient clipping
    epochs: int = 100  # our choice: upper bound, early stopping decides
    eval_every: int = 1  # our choice: validate every epoch
    patience: int = 10  # our choice: evaluations without improvement before stopping
    checkpoint_every: int = 5  # our choice
    eval_batch_users: int = 256  # our choice: users per evaluation batch (memory, not results)


class BPRMF(PairwiseModel):
    """Matrix factorisation scored by a dot product, trained with the BPR pairwise log-sigmoid loss."""

    name = "bpr"

    def __init__(self, n_users: int, n_items: int, cfg: BPRConfig, gen: torch.Generator) -> None:
        super().__init__()
        self.cfg = cfg
        self.user = nn.Parameter(torch.randn(n_users, cfg.dim, generator=gen) * cfg.init_std)
        self.item = nn.Parameter(torch.randn(n_items, cfg.dim, generator=gen) * cfg.init_std)
        self.bias = nn.Parameter(torch.zeros(n_items), requires_grad=cfg.item_bias)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bd,bmd->bm", self.user[users], self.item[items]) + self.bias[items]

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        p, qp, qn = self.user[users], self.item[pos], self.item[neg]
        s_pos = (p * qp).sum(-1) + self.bias[pos]
        s_neg = torch.einsum("bd,bnd->bn", p, qn) + self.bias[neg]
        data = -nn.functional.logsigmoid(s_pos[:, None] - s_neg).sum(1).mean()
        reg = (p.pow(2).sum(-1) + qp.pow(2).sum(-1) + qn.pow(2).sum((-1, -2))).mean()
        reg = reg + (self.bias[pos].pow(2) + self.bias[neg].pow(2).sum(-1)).mean() if self.cfg.item_bias else reg
        return data + self.cfg.reg * reg


def fit_bpr(loo: LeaveOneOut, config: BPRConfig | None = None, **options: Any) -> FitResult:
    """BPR-MF through the shared pairwise loop (options: ``fit_pairwise``)."""
    return fit_pairwise(BPRMF, loo, config or BPRConfig(), **options)


# ----------------------------------------------------------------------------------------------------- CML


@dataclass
class CMLConfig:
    """CML hyperparameters; defaults from the authors' code (changun/CollMetric ``CML.py``) where it has them."""

    dim: int = 100  # CollMetric CML.py script: EMBED_DIM = 100
    margin: float = 1.9  # CollMetric CML.py script (no features): margin=1.9 (class default 1.5)
    clip_norm: float = 1.0  # CollMetric: clip_norm=1 (embeddings projected into the unit ball after each step)
    use_rank_weight: bool = True  # CollMetric: use_rank_weight=True (WARP-style log-rank weight)
    cov_loss_weight: float = 0.0  # CollMetric script: use_cov_loss=False without features; >0 enables it
    optimizer: str = "adagrad"  # CollMetric: AdagradOptimizer
    lr: float = 0.1  # CollMetric: master_learning_rate=0.1
    adagrad_init_acc: float = 0.1  # TF AdagradOptimizer default initial accumulator
    batch_size: int = 50000  # CollMetric: BATCH_SIZE = 50000
    n_negatives: int = 20  # CollMetric: N_NEGATIVE = 20 (U in the paper)
    grad_clip_norm: float | None = None  # CollMetric: none
    epochs: int = 200  # our choice: upper bound (CollMetric trains without a stop rule)
    eval_every: int = 5  # our choice
    patience: int = 10  # our choice: evaluations without improvement
    checkpoint_every: int = 5  # our choice
    eval_batch_users: int = 256  # our choice


class CML(PairwiseModel):
    """Collaborative metric learning: users and items in one Euclidean space, score = -squared distance."""

    name = "cml"

    # at CollMetric's batch on ML-1M the GEMM computes 22x the dots needed and is still ~2x faster (one CPU thread)
    DENSE_DOTS_FACTOR = 32

    def __init__(self, n_users: int, n_items: int, cfg: CMLConfig, gen: torch.Generator) -> None:
        super().__init__()
        self.cfg = cfg
        self.n_items = n_items
        std = 1.0 / math.sqrt(cfg.dim)  # CollMetric: N(0, 1/sqrt(dim))
        self.user = nn.Parameter(torch.randn(n_users, cfg.dim, generator=gen) * std)
        self.item = nn.Parameter(torch.randn(n_items, cfg.dim, generator=gen) * std)

    def squared_distances(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """‖u_{users[b]} − v_{items[b, k]}‖² as ‖u‖² + ‖v‖² − 2 u·v (equal to the direct form to ~1e-6 on the
        unit ball).

        The dot products come from one matrix product of the batch's distinct users with every item, gathered
        at (b, k), whenever that product is at most ``DENSE_DOTS_FACTOR`` times the B x K dots needed: a GEMM
        runs so much faster than B batched (K x d) matrix-vector products, and than gathering the (B, K, d)
        item block, that CollMetric's batches (50,000 pairs x 20 negatives) train ~2x faster this way
        (``benchmarks/bench_pairwise.py``). Small batches keep the gathered form."""
        distinct, row = torch.unique(users, return_inverse=True)
        if distinct.numel() * self.n_items <= self.DENSE_DOTS_FACTOR * items.numel():
            dots = (self.user[distinct] @ self.item.T)[row[:, None], items]
        else:
            dots = torch.bmm(self.item[items], self.user[users][:, :, None]).squeeze(-1)
        return self.user[users].pow(2).sum(-1)[:, None] + self.item.pow(2).sum(-1)[items] - 2.0 * dots

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return -self.squared_distances(users, items)

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        """CollMetric's loss: hinge on the closest of the K negatives, times log(rank estimate + 1).

        Only the closest negative's distance carries a gradient (the gradient of a min is its argmin's; the
        rank weight counts impostors and has none), so the K distances are computed without autograd and the
        closest one again, directly, with it: the same loss and gradient as differentiating through all K, with
        the backward pass of one (B, d) block instead of the (distinct users x items) GEMM's two."""
        user = self.user[users]
        d_pos = (user - self.item[pos]).pow(2).sum(-1)
        with torch.no_grad():
            d_neg = self.squared_distances(users, neg)
            closest = neg.gather(1, d_neg.argmin(dim=1, keepdim=True)).squeeze(1)
        pair = torch.relu(self.cfg.margin + d_pos - (user - self.item[closest]).pow(2).sum(-1))
        if self.cfg.use_rank_weight:
            impostors = (d_pos.detach()[:, None] - d_neg + self.cfg.margin > 0).float().mean(1)
            pair = pair * torch.log(impostors * self.n_items + 1.0)
        loss = pair.sum()
        if self.cfg.cov_loss_weight > 0:
            loss = loss + self.cfg.cov_loss_weight * self.covariance_loss()
        return loss

    def covariance_loss(self) -> torch.Tensor:
        """Hsieh et al.: penalise off-diagonal covariance of all embeddings (sum of squares over N rows).

        The CollMetric code sums the *signed* off-diagonal entries; we use the squares, as the paper describes
        (a Frobenius-type penalty), since a signed sum can be driven negative.
        """
        x = torch.cat([self.item, self.user], 0)
        x = x - x.mean(0)
        cov = x.T @ x / x.shape[0]
        off = cov - torch.diag(torch.diagonal(cov))
        return off.pow(2).sum() / x.shape[0]

    def constrain(self, rows_only: bool = False) -> None:
        for table in (self.user, self.item):
            clip_rows_(table.data, self.cfg.clip_norm, touched_rows(table) if rows_only else None)


def fit_cml(loo: LeaveOneOut, config: CMLConfig | None = None, **options: Any) -> FitResult:
    """CML through the shared pairwise loop (options: ``fit_pairwise``)."""
    return fit_pairwise(CML, loo, config or CMLConfig(), **options)


# ---------------------------------------------------------------------------------------------------- NeuMF


@dataclass
class NeuMFConfig:
    """NeuMF hyperparameters; defaults from the authors' code (hexiangnan/neural_collaborative_filtering
    ``NeuMF.py``, no pre-training) unless the comment says otherwise."""

    factors: int = 8  # NeuMF.py --num_factors 8: GMF embedding size (predictive factors)
    layers: tuple[int, ...] = (64, 32, 16, 8)  # NeuMF.py --layers; the MLP embeddings are layers[0] / 2 each
    init_std: float = 0.01  # NeuMF.py: embeddings ~ N(0, 0.01); dense layers Glorot uniform, output LeCun uniform
    reg: float = 0.0  # NeuMF.py --reg_mf 0, --reg_layers 0: L2 weight on the batch's embeddings
    optimizer: str = "adam"  # NeuMF.py --learner adam
    lr: float = 1e-3  # NeuMF.py --lr 0.001
    adagrad_init_acc: float = 0.1  # TF default; only used with optimizer="adagrad"
    batch_size: int = 256  # our choice: 256 positives with their negatives per step (NeuMF.py: 256 instances)
    n_negatives: int = 4  # NeuMF.py --num_neg 4 negatives per positive, resampled every epoch
    grad_clip_norm: float | None = None  # NeuMF.py: none
    epochs: int = 20  # NeuMF.py --epochs 20 (an upper bound here: early stopping decides)
    eval_every: int = 1  # NeuMF.py evaluates every epoch
    patience: int = 5  # our choice: evaluations without improvement before stopping
    checkpoint_every: int = 1  # our choice
    eval_batch_users: int = 64  # our choice: scoring all items runs the MLP on (B, n_items) pairs


class NeuMF(PairwiseModel):
    """Neural matrix factorisation (He et al. 2017, WWW): a GMF tower (p_u ⊙ q_i) and an MLP tower on
    [p'_u, q'_i], with separate embeddings, concatenated into one logit; pointwise log loss on each positive
    and its sampled negatives (label 1 / 0), averaged over the instances of the batch as Keras does."""

    name = "neumf"

    def __init__(self, n_users: int, n_items: int, cfg: NeuMFConfig, gen: torch.Generator) -> None:
        super().__init__()
        if cfg.layers[0] % 2:
            raise ValueError(f"layers[0] must be even (two MLP embeddings of layers[0] / 2), got {cfg.layers}")
        self.cfg = cfg

        def table(n: int, d: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(n, d, generator=gen) * cfg.init_std)

        half = cfg.layers[0] // 2
        self.user_gmf, self.item_gmf = table(n_users, cfg.factors), table(n_items, cfg.factors)
        self.user_mlp, self.item_mlp = table(n_users, half), table(n_items, half)
        self.mlp = nn.ModuleList(nn.Linear(a, b) for a, b in itertools.pairwise(cfg.layers))
        self.out = nn.Linear(cfg.factors + cfg.layers[-1], 1)
        for layer in self.mlp:
            nn.init.xavier_uniform_(layer.weight, generator=gen)
            nn.init.zeros_(layer.bias)
        bound = math.sqrt(3.0 / self.out.in_features)  # LeCun uniform
        nn.init.uniform_(self.out.weight, -bound, bound, generator=gen)
        nn.init.zeros_(self.out.bias)

    def logits(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits of items (B, m) for users (B,)."""
        gmf = self.user_gmf[users][:, None, :] * self.item_gmf[items]
        user_mlp = self.user_mlp[users][:, None, :].expand(-1, items.shape[1], -1)
        h = torch.cat([user_mlp, self.item_mlp[items]], dim=-1)
        for layer in self.mlp:
            h = torch.relu(layer(h))
        return self.out(torch.cat([gmf, h], dim=-1)).squeeze(-1)

    def score(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return self.logits(users, items)

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        s = self.logits(users, torch.cat([pos[:, None], neg], dim=1))
        data = (nn.functional.softplus(-s[:, 0]).sum() + nn.functional.softplus(s[:, 1:]).sum()) / s.numel()
        if not self.cfg.reg:
            return data
        items = torch.cat([pos[:, None], neg], dim=1)
        emb = self.user_gmf[users].pow(2).sum() + self.user_mlp[users].pow(2).sum()
        emb = emb + self.item_gmf[items].pow(2).sum() + self.item_mlp[items].pow(2).sum()
        return data + self.cfg.reg * emb / s.numel()


def fit_neumf(loo: LeaveOneOut, config: NeuMFConfig | None = None, **options: Any) -> FitResult:
    """NeuMF through the shared loop (options: ``fit_pairwise``)."""
    return fit_pairwise(NeuMF, loo, config or NeuMFConfig(), **options)


# ---------------------------------------------------------------------------------------------------- iALS


@dataclass
class IALSConfig:
    """iALS hyperparameters in the parameterisation of Rendle et al. 2021 ("Revisiting ... iALS")."""

    dim: int = 64  # our choice: embedding size (Rendle et al. 2021 show larger is better when tuned)
    alpha0: float = 0.1  # our choice, tune: weight α₀ of every (unobserved) entry
    reg: float = 0.01  # our choice, tune: λ
    nu: float = 1.0  # Rendle et al. 2021: frequency-scaled λ_u = λ(|I_u| + α₀|I|)^ν with ν = 1; ν = 0 = plain L2
    init_std: float = 0.1  # Rendle et al. 2021: N(0, σ*/sqrt(dim)) initial embeddings with σ* = 0.1
    epochs: int = 16  # Rendle et al. 2021 train 16 epochs; early stopping on validation may stop sooner
    eval_every: int = 1  # our choice: validate after every epoch (one user sweep + one item sweep)
    patience: int = 3  # our choice: evaluations without improvement
    checkpoint_every: int = 1  # our choice
    eval_batch_users: int = 256  # our choice: users per evaluation batch
    solve_batch_elems: int = 2**22  # our choice: padded gather size per batched solve (memory, not results)


def ials_solve(
    fixed: torch.Tensor,
    indptr: np.ndarray,
    indices: np.ndarray,
    *,
    alpha0: float,
    reg: float,
    nu: float,
    batch_elems: int = 2**22,
) -> torch.Tensor:
    """One exact iALS half-step: the row embeddings that minimise the loss with ``fixed`` held constant.

    Row r (CSR ``indptr``/``indices`` over the columns of ``fixed``) solves
    (α₀ FᵀF + Σ_{c∈C_r} f_c f_cᵀ + λ_r I) x_r = Σ_{c∈C_r} f_c with λ_r = reg (|C_r| + α₀ n_fixed)^ν.
    Rows are sorted by count and solved in padded batches (``torch.linalg.solve``) on ``fixed``'s device.
    """
    n_rows, n_fixed, d = len(indptr) - 1, fixed.shape[0], fixed.shape[1]
    dev, dtype = fixed.device, fixed.dtype
    gram = fixed.T @ fixed
    padded = torch.cat([fixed, torch.zeros(1, d, dtype=dtype, device=dev)])  # row n_fixed = padding
    counts = np.diff(indptr)
    order = np.argsort(counts, kind="stable")
    out = torch.zeros(n_rows, d, dtype=dtype, device=dev)
    eye = torch.eye(d, dtype=dtype, device=dev)
    i = 0
    while i < n_rows:
        j = i + 1
        while j < n_rows and (j + 1 - i) * max(int(counts[order[j]]), 1) * d <= batch_elems:
            j += 1
        rows = order[i:j]
        width = max(int(counts[rows].max()), 1)
        offs = np.arange(width)
        pos = indptr[rows][:, None] + offs
        keep = offs < counts[rows][:, None]
        idx = np.where(keep, indices[np.minimum(pos, max(len(indices) - 1, 0))] if len(indices) else 0, n_fixed)
        g = padded[torch.as_tensor(idx, device=dev)]  # (B, width, d)
        lam = reg * (torch.as_tensor(counts[rows], dtype=dtype, device=dev) + alpha0 * n_fixed) ** nu
        a = alpha0 * gram + g.transpose(1, 2) @ g + lam[:, None, None] * eye
        out[torch.as_tensor(rows, device=dev)] = torch.linalg.solve(a, g.sum(1))
        i = j
    return out


def ials_objective(
    w: torch.Tensor, h: torch.Tensor, users: torch.Tensor, items: torch.Tensor, cfg: IALSConfig
) -> float:
    """The full iALS loss L(W, H) (module docstring), computed without forming the dense matrix."""
    pred = (w[users] * h[items]).sum(-1)
    observed = (pred - 1.0).pow(2).sum()
    all_entries = cfg.alpha0 * ((w.T @ w) * (h.T @ h)).sum()
    n_u = torch.bincount(users, minlength=w.shape[0]).to(w.dtype)
    n_i = torch.bincount(items, minlength=h.shape[0]).to(h.dtype)
    lam_u = cfg.reg * (n_u + cfg.alpha0 * h.shape[0]) ** cfg.nu
    lam_i = cfg.reg * (n_i + cfg.alpha0 * w.shape[0]) ** cfg.nu
    penalty = (lam_u * w.pow(2).sum(1)).sum() + (lam_i * h.pow(2).sum(1)).sum()
    return float(observed + all_entries + penalty)


def fit_ials(
    loo: LeaveOneOut,
    config: IALSConfig | None = None,
    *,
    device: str | torch.device = "auto",
    seed: int = 0,
    checkpoint_path: Path | str | None = None,
    protocol_eval: Sequence[EvalProtocol] = ("sampled", "full"),
    ks: Sequence[int] = DEFAULT_KS,
    log_test_curve: bool = False,
) -> FitResult:
    """iALS by exact alternating solves (users then items per epoch); selection as in the module docstring.

    ``history.train_loss`` is the full objective after each epoch (non-increasing: each half-step is exact).
    """
    cfg = config or IALSConfig()
    dev = as_device(device)
    cfg_dict = asdict(cfg)
    val = loo.validation_view(seed)
    train = val.train
    user_csr = train.to_csr()
    user_csr.sum_duplicates()
    item_csr = user_csr.T.tocsr()
    item_csr.sum_duplicates()
    users_t, items_t, _ = train.to_torch(dev)
    gen = torch.Generator().manual_seed(seed)
    std = cfg.init_std / math.sqrt(cfg.dim)
    w = (torch.randn(loo.n_users, cfg.dim, generator=gen) * std).to(dev)
    h = (torch.randn(loo.n_items, cfg.dim, generator=gen) * std).to(dev)
    stopper = EarlyStopping(cfg.patience, mode="max")
    history: list[dict[str, float]] = []
    best: tuple[torch.Tensor, torch.Tensor] | None = None
    best_valid: dict[str, float] = {}
    epoch, stopped_early = 0, False
    ckpt_path = None if checkpoint_path is None else Path(checkpoint_path)
    state = load_checkpoint(ckpt_path)
    if state is not None:
        _check_resume(state["config"], cfg_dict, seed, state["seed"])
        w, h = state["w"].to(dev), state["h"].to(dev)
        stopper.load_state_dict(state["early_stopping"])
        epoch, stopped_early = state["epoch"], state["stopped_early"]
        history, best_valid = state["history"], state["best_valid"]
        best = None if state["best"] is None else (state["best"][0].to(dev), state["best"][1].to(dev))

    def score_with(wm: torch.Tensor, hm: torch.Tensor) -> ScoreFn:
        return lambda users, items: torch.einsum("bd,bmd->bm", wm[users], hm[items])

    val_ks = _selection_ks(ks)
    while epoch < cfg.epochs and not stopped_early:
        epoch += 1
        t0 = time.perf_counter()
        kw = {"alpha0": cfg.alpha0, "reg": cfg.reg, "nu": cfg.nu, "batch_elems": cfg.solve_batch_elems}
        w = ials_solve(h, user_csr.indptr, user_csr.indices, **kw)
        h = ials_solve(w, item_csr.indptr, item_csr.indices, **kw)
        seconds = time.perf_counter() - t0
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            vm = evaluate_ranking(
                score_with(w, h), val, protocol="sampled", ks=val_ks, device=dev, batch_users=cfg.eval_batch_users
            )
            row = {
                "epoch": float(epoch),
                "train_loss": ials_objective(w, h, users_t, items_t, cfg),
                "seconds_per_epoch": seconds,
                **{f"valid_sampled/{k}": v for k, v in vm.items()},
            }
            if log_test_curve:
                tm = evaluate_ranking(score_with(w, h), loo, ks=ks, device=dev, batch_users=cfg.eval_batch_users)
                row.update({f"test_sampled/{k}": v for k, v in tm.items()})
            history.append(row)
            if stopper.update(vm["hr@10"], epoch):
                best = (w.clone(), h.clone())
                best_valid = {f"sampled/{k}": v for k, v in vm.items()}
            stopped_early = stopper.should_stop
        if ckpt_path is not None and (epoch % cfg.checkpoint_every == 0 or stopped_early or epoch == cfg.epochs):
            atomic_torch_save(
                {
                    "w": w,
                    "h": h,
                    "early_stopping": stopper.state_dict(),
                    "epoch": epoch,
                    "stopped_early": stopped_early,
                    "history": history,
                    "best_valid": best_valid,
                    "best": best,
                    "config": cfg_dict,
                    "seed": seed,
                },
                ckpt_path,
            )
    assert best is not None
    metrics = evaluate_protocols(
        score_with(*best), loo, protocol_eval, ks=ks, device=dev, batch_users=cfg.eval_batch_users
    )
    return FitResult(
        metrics=metrics,
        best_epoch=stopper.best_epoch,
        history=pd.DataFrame(history),
        config=_result_config(cfg, seed, dev, "ials"),
        valid_metrics=best_valid,
        epochs_run=epoch,
    )


# ---------------------------------------------------------------------------------------------------- tuning


@dataclass
class TuneResult:
    """Outcome of a grid search. Unpacks as ``best_config, table = tune(...)``.

    ``table`` has one row per trial (grid values, validation metrics, best epoch, ``selected``); it holds no
    test metric. ``best_result`` is the chosen trial's ``FitResult`` (its ``metrics`` are the test numbers to
    report). ``n_trials`` is the budget: every grid point is trained once with the same seed.
    """

    best_config: Any
    table: pd.DataFrame
    n_trials: int
    metric: str
    best_result: FitResult

    def __iter__(self) -> Iterator[Any]:
        return iter((self.best_config, self.table))


def tune(
    fit_fn: Callable[..., FitResult],
    grid: dict[str, list[Any]],
    loo: LeaveOneOut,
    seed: int,
    *,
    base_config: Any,
    metric: str = SELECT_METRIC,
    device: str | torch.device = "auto",
    checkpoint_dir: Path | str | None = None,
    **fit_kwargs: Any,
) -> TuneResult:
    """Exhaustive grid search; the winner has the best *validation* ``metric`` (first trial on ties).

    Each trial is ``fit_fn(loo, replace(base_config, **point), device=..., seed=seed, ...)``; only
    ``FitResult.valid_metrics`` is read to choose. ``checkpoint_dir`` gives each trial its own checkpoint file
    (``trial_###.pt``) so an interrupted search resumes.
    """
    keys = list(grid)
    points = [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]
    if not points:
        raise ValueError("empty grid")
    rows: list[dict[str, Any]] = []
    results: list[FitResult] = []
    for n, point in enumerate(points):
        cfg = replace(base_config, **point)
        ckpt = None if checkpoint_dir is None else Path(checkpoint_dir) / f"trial_{n:03d}.pt"
        res = fit_fn(loo, cfg, device=device, seed=seed, checkpoint_path=ckpt, **fit_kwargs)
        if metric not in res.valid_metrics:
            raise KeyError(f"{metric!r} not in the trial's validation metrics {sorted(res.valid_metrics)}")
        results.append(res)
        rows.append(
            {
                "trial": n,
                **point,
                **{f"valid/{k}": v for k, v in res.valid_metrics.items()},
                "best_epoch": res.best_epoch,
            }
        )
    scores = [r.valid_metrics[metric] for r in results]
    best = int(np.argmax(scores))
    table = pd.DataFrame(rows)
    table["selected"] = table["trial"] == best
    table.attrs.update(n_trials=len(points), metric=metric, seed=seed)
    return TuneResult(
        best_config=replace(base_config, **points[best]),
        table=table,
        n_trials=len(points),
        metric=metric,
        best_result=copy.copy(results[best]),
    )


# ------------------------------------------------------------------------------------------- synthetic data


def synthetic_leave_one_out(
    n_users: int = 80,
    n_items: int = 40,
    n_clusters: int = 4,
    per_user: int = 6,
    n_negatives: int = 20,
    seed: int = 0,
) -> LeaveOneOut:
    """A tiny implicit dataset with planted structure, for tests and smoke runs.

    Items form ``n_clusters`` equal blocks; user u belongs to block u mod n_clusters and interacted with
    ``per_user + 1`` random items of its block, the last of which is the test item. Negatives are uniform among
    the user's non-interacted items, so a model that learns the blocks ranks the target near the top.
    """
    rng = np.random.default_rng(seed)
    size = n_items // n_clusters
    if size < per_user + 2:
        raise ValueError("clusters too small for per_user + 1 items and at least one unobserved in-cluster item")
    users, items, test = [], [], np.empty(n_users, dtype=np.int64)
    negatives = np.empty((n_users, n_negatives), dtype=np.int64)
    for u in range(n_users):
        block = (u % n_clusters) * size + np.arange(size)
        chosen = rng.choice(block, size=per_user + 1, replace=False)
        users += [u] * per_user
        items += list(chosen[:-1])
        test[u] = chosen[-1]
        pool = np.setdiff1d(np.arange(n_items), chosen)
        negatives[u] = rng.choice(pool, size=n_negatives, replace=len(pool) < n_negatives)
    train = Ratings(np.array(users), np.array(items), np.ones(len(users)), n_users, n_items)
    return LeaveOneOut("synthetic", train, test, negatives, {"planted": f"{n_clusters} item blocks"})
