"""Neural Network Matrix Factorization (NNMF; Dziugaite & Roy 2015, arXiv 1511.06443).

Model. Every user n has latent vectors U_n (D dims) and U'_n (D' dims), every item m has V_m and V'_m; the
rating is predicted by an MLP on the concatenation [U_n, V_m, U'_n ⊙ V'_m] (⊙: element-wise product, the
"inner-product-like" part), with 3 hidden layers of 50 sigmoid units (with biases). The paper does not state
the output layer (protocols.md 2.2, after JoonyoungYi's re-implementation); by default we use one *linear* output
unit. Third-party code varies: jstol's original has no biases and outputs 4·sigmoid(·) + 1; JoonyoungYi's commits
add biases, output 4·sigmoid(·) + 1 and count the output layer in "hidden_layer_number = 3" (i.e. only 2 hidden
layers); a later TF adaptation of JoonyoungYi's code uses a linear output. ``bounded_output=True`` gives the
lo + (hi - lo)·sigmoid(·) variant for comparison.

Objective (recalled from the paper and JoonyoungYi's code; equation numbers not verified):

    L = Σ_{(n,m) ∈ train} (X_nm - f_θ(U_n, V_m, U'_n ⊙ V'_m))²
        + λ (Σ_n ‖U_n‖² + ‖U'_n‖² + Σ_m ‖V_m‖² + ‖V'_m‖²)

i.e. a **sum** of squared errors (not a mean) and an L2 penalty on the latent features only; the network
weights θ are not penalised. λ therefore lives on the sum scale: JoonyoungYi's λ = 50 on ML-100K (~88k training
ratings) equals a mean-loss λ of 50 / 88k ≈ 5.7e-4. The same λ weighs relatively less on a larger data set
(ML-1M), which is why the paper chooses λ on validation per data set. With minibatches (``batch_size`` set, our
speed option) the data term is rescaled by N / B so each step's loss is an unbiased estimate of the same L and
λ keeps its full-batch meaning.

Optimisation (paper, as relayed in protocols.md 2.2 and JoonyoungYi's code): alternating updates, each epoch a
phase that updates only θ with the latents fixed, then a phase that updates only the latents with θ fixed;
RMSProp with learning rate 1e-3; full batch; early stopping on validation RMSE (patience 40 in
JoonyoungYi's code). Each block has its own RMSProp state, which the other phase never advances.

Protocol: random 90/10 train/test split of all ratings, 2% of the training ratings held out for validation
(third-party re-implementations; not verified against the paper). Test RMSE is reported at the epoch with the
best validation RMSE; predictions are clipped to the rating range when evaluated (never during training).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn

from recrepro.data.types import RatingSplit
from recrepro.device import resolve_device
from recrepro.metrics import mae, rmse
from recrepro.training import EarlyStopping, FitResult, atomic_torch_save, load_checkpoint

log = logging.getLogger(__name__)

Phase = Literal["network", "latent"]
PHASES: tuple[Phase, Phase] = ("network", "latent")


@dataclass
class NNMFConfig:
    """Hyperparameters of one NNMF fit. A smoke run is the same code with smaller values."""

    d: int = 10  # D, paper (protocols.md 2.2); JoonyoungYi default
    d_prime: int = 60  # D', paper (protocols.md 2.2); JoonyoungYi default
    hidden: tuple[int, ...] = (50, 50, 50)  # 3 hidden layers of 50 sigmoid units, paper (protocols.md 2.2)
    lam: float = 50.0  # λ on the *sum*-of-squares scale, JoonyoungYi (paper: chosen on validation)
    lr: float = 1e-3  # RMSProp learning rate, paper / JoonyoungYi
    rmsprop_alpha: float = 0.9  # TF1 RMSPropOptimizer default decay used by JoonyoungYi (torch default 0.99)
    rmsprop_eps: float = 1e-10  # TF1 default; TF adds it inside the sqrt, torch outside (negligible here)
    # TF1 also starts RMSProp's mean square at 1 (torch: 0); with sum-loss gradients >> 1 the first steps of both
    # are ≈ lr / sqrt(1 - alpha), so we keep torch's RMSprop unchanged.
    # False: linear output unit (protocols.md 2.2); True: lo + (hi - lo)·sigmoid(·) on the rating range (jstol's
    # 4·sigmoid + 1 on 1..5)
    bounded_output: bool = False
    latent_init_std: float = 0.1  # truncated normal (±2 std) latent init, jstol / JoonyoungYi
    batch_size: int | None = None  # None = full batch (paper, JoonyoungYi); an int = minibatches (our speed option)
    phase_passes: int = 1  # passes over the data per phase; JoonyoungYi: one full-batch step per block per iteration
    max_epochs: int = 10_000  # JoonyoungYi max_iters (one epoch = one network phase + one latent phase)
    patience: int = 40  # evaluations without improvement, JoonyoungYi early_stop_max_iter
    eval_every: int = 1  # epochs between validation evaluations, JoonyoungYi (every iteration)
    eval_batch_size: int = 262_144  # rows per prediction chunk, our choice (memory only, no effect on results)
    checkpoint_every: int = 50  # epochs between checkpoints, our choice

    def __post_init__(self) -> None:
        self.hidden = tuple(int(h) for h in self.hidden)
        if self.d < 1 or self.d_prime < 1 or not self.hidden or min(self.hidden) < 1:
            raise ValueError("d, d_prime and every hidden width must be >= 1 (and at least one hidden layer)")
        if self.max_epochs < 1 or self.eval_every < 1 or self.checkpoint_every < 1 or self.phase_passes < 1:
            raise ValueError("max_epochs, eval_every, checkpoint_every and phase_passes must be >= 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise ValueError("batch_size must be None (full batch) or >= 1")
        if self.lam < 0 or self.lr <= 0:
            raise ValueError("lam must be >= 0 and lr > 0")


# Fields that define the optimisation trajectory: a checkpoint written under other values cannot be resumed.
# max_epochs / patience / checkpoint_every / eval_batch_size may change between runs (e.g. to extend a run).
_TRAJECTORY_FIELDS = (
    "d",
    "d_prime",
    "hidden",
    "lam",
    "lr",
    "rmsprop_alpha",
    "rmsprop_eps",
    "latent_init_std",
    "bounded_output",
    "batch_size",
    "phase_passes",
    "eval_every",
)


class NNMF(nn.Module):
    """f_θ([U_n, V_m, U'_n ⊙ V'_m]) with sigmoid hidden layers and a linear output unit.

    With ``output_range=(lo, hi)`` the output unit is lo + (hi - lo)·sigmoid(·) instead of linear.

    Initialisation follows JoonyoungYi's code: latents ~ truncated N(0, std²) cut at ±2 std, weights
    ~ U(±4·sqrt(6 / (fan_in + fan_out))) (the Glorot range scaled for sigmoid units), biases 0. A
    ``generator`` makes the initialisation independent of the global RNG.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        d: int = 10,
        d_prime: int = 60,
        hidden: Sequence[int] = (50, 50, 50),
        latent_init_std: float = 0.1,
        generator: torch.Generator | None = None,
        output_range: tuple[float, float] | None = None,
    ) -> None:
        super().__init__()
        self.n_users, self.n_items, self.d, self.d_prime = n_users, n_items, d, d_prime
        self.output_range = output_range

        def latent(rows: int, dim: int) -> nn.Parameter:
            t = torch.empty(rows, dim)
            nn.init.trunc_normal_(
                t, std=latent_init_std, a=-2 * latent_init_std, b=2 * latent_init_std, generator=generator
            )
            return nn.Parameter(t)

        self.user_latent = latent(n_users, d)  # U
        self.item_latent = latent(n_items, d)  # V
        self.user_latent_prime = latent(n_users, d_prime)  # U'
        self.item_latent_prime = latent(n_items, d_prime)  # V'
        widths = [2 * d + d_prime, *hidden, 1]
        self.layers = nn.ModuleList(
            nn.utils.skip_init(nn.Linear, a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)
        )
        with torch.no_grad():
            for layer in self.layers:
                fan_out, fan_in = layer.weight.shape
                bound = 4.0 * float(np.sqrt(6.0 / (fan_in + fan_out)))
                layer.weight.uniform_(-bound, bound, generator=generator)
                layer.bias.zero_()

    def latent_parameters(self) -> list[nn.Parameter]:
        """U, V, U', V': the block updated in the latent phase and penalised by λ."""
        return [self.user_latent, self.item_latent, self.user_latent_prime, self.item_latent_prime]

    def network_parameters(self) -> list[nn.Parameter]:
        """MLP weights and biases θ: the block updated in the network phase (not penalised)."""
        return list(self.layers.parameters())

    def l2_penalty(self) -> torch.Tensor:
        """Σ of squared latent entries (all users and items, as in the full-batch objective)."""
        return sum(
            (p.square().sum() for p in self.latent_parameters()), torch.zeros((), device=self.user_latent.device)
        )

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Unclipped predicted ratings, shape (len(users),)."""
        x = torch.cat(
            [
                self.user_latent[users],
                self.item_latent[items],
                self.user_latent_prime[users] * self.item_latent_prime[items],
            ],
            dim=1,
        )
        for layer in self.layers[:-1]:
            x = torch.sigmoid(layer(x))
        out = self.layers[-1](x).squeeze(-1)
        if self.output_range is not None:
            lo, hi = self.output_range
            out = lo + (hi - lo) * torch.sigmoid(out)
        return out

    @torch.no_grad()
    def predict(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        clip: tuple[float, float] | None = None,
        batch_size: int = 262_144,
    ) -> torch.Tensor:
        """Predictions in chunks (memory only), optionally clipped to the rating range."""
        out = torch.cat(
            [self(users[i : i + batch_size], items[i : i + batch_size]) for i in range(0, len(users), batch_size)]
        )
        return out.clamp(*clip) if clip is not None else out


def make_optimizers(model: NNMF, config: NNMFConfig) -> dict[Phase, torch.optim.RMSprop]:
    """One RMSProp per block, so a phase can never advance the other block's state."""

    def rms(params: list[nn.Parameter]) -> torch.optim.RMSprop:
        return torch.optim.RMSprop(params, lr=config.lr, alpha=config.rmsprop_alpha, eps=config.rmsprop_eps)

    return {"network": rms(model.network_parameters()), "latent": rms(model.latent_parameters())}


def _batches(n: int, batch_size: int | None, generator: torch.Generator, device: torch.device) -> Iterator[Any]:
    """The whole set (full batch: no randomness) or a fresh random permutation cut into minibatches."""
    if batch_size is None or batch_size >= n:
        yield slice(None)
        return
    perm = torch.randperm(n, generator=generator).to(device)
    for start in range(0, n, batch_size):
        yield perm[start : start + batch_size]


def train_phase(
    model: NNMF,
    optimizer: torch.optim.Optimizer,
    phase: Phase,
    users: torch.Tensor,
    items: torch.Tensor,
    ratings: torch.Tensor,
    lam: float,
    batch_size: int | None,
    generator: torch.Generator,
) -> tuple[float, float]:
    """One pass over the training ratings updating only ``phase``'s block; the other block is frozen.

    The frozen block gets ``requires_grad=False`` for the pass (no gradient is computed or stored for it) and its
    optimizer is not stepped. Returns the summed pre-step objective estimates and squared errors of the pass,
    both over the number of steps (so a full-batch pass returns L and the SSE).
    """
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    active = model.network_parameters() if phase == "network" else model.latent_parameters()
    frozen = model.latent_parameters() if phase == "network" else model.network_parameters()
    n = len(ratings)
    objective, sse_total, steps = 0.0, 0.0, 0
    try:
        for p in frozen:
            p.requires_grad_(False)
            p.grad = None  # drop the gradient left by this block's own last phase
        for p in active:
            p.requires_grad_(True)
        for idx in _batches(n, batch_size, generator, ratings.device):
            target = ratings[idx]
            optimizer.zero_grad(set_to_none=True)
            sse = (model(users[idx], items[idx]) - target).square().sum()
            # N / B rescaling keeps λ on the full-batch sum scale (module docstring)
            loss = sse * (n / len(target)) + lam * model.l2_penalty()
            loss.backward()
            optimizer.step()
            objective += float(loss.detach())
            sse_total += float(sse.detach()) * (n / len(target))
            steps += 1
    finally:
        for p in model.parameters():
            p.requires_grad_(True)
    return objective / steps, sse_total / steps


def _evaluate(
    model: NNMF, data: tuple[torch.Tensor, torch.Tensor, torch.Tensor], clip: tuple[float, float], bs: int
) -> tuple[float, np.ndarray]:
    users, items, values = data
    pred = model.predict(users, items, clip=clip, batch_size=bs).cpu().numpy()
    return rmse(pred, values.cpu().numpy()), pred


def fit_nnmf(
    split: RatingSplit,
    config: NNMFConfig | None = None,
    *,
    device: str = "auto",
    seed: int = 0,
    checkpoint_path: Path | str | None = None,
) -> FitResult:
    """Train NNMF with alternating RMSProp phases; state chosen on ``split.valid``, test RMSE reported there.

    ``metrics`` = test RMSE/MAE of the best-validation state (clipped predictions); ``history`` has one row per
    evaluation: epoch, train_loss (objective L / N_train, pre-step, averaged over the epoch's steps),
    train_rmse (pre-step, unclipped), valid_rmse, test_rmse (logged for learning curves only), seconds (training
    wall time of the epoch). With ``checkpoint_path`` the run resumes from the file when it exists. On CPU a seed
    fixes the result bit for bit for a given torch thread count (float sums are ordered by the thread split).
    """
    config = config or NNMFConfig()
    if split.valid is None or len(split.valid) == 0:
        raise ValueError(
            "fit_nnmf needs a validation set for early stopping: use split.with_validation(0.02, seed) "
            "(2% of train, as in the third-party NNMF code)"
        )
    if len(split.train) == 0 or len(split.test) == 0:
        raise ValueError("fit_nnmf needs non-empty train and test sets")
    dev = resolve_device(device)
    clip = split.rating_range
    ckpt_path = Path(checkpoint_path) if checkpoint_path is not None else None

    init_gen = torch.Generator().manual_seed(seed)
    model = NNMF(
        split.n_users,
        split.n_items,
        config.d,
        config.d_prime,
        config.hidden,
        config.latent_init_std,
        init_gen,
        output_range=clip if config.bounded_output else None,
    )
    model.to(dev)
    optimizers = make_optimizers(model, config)
    batch_gen = torch.Generator().manual_seed(seed + 1)  # minibatch order only (unused in full batch)
    stopper = EarlyStopping(config.patience)
    history: list[dict[str, float]] = []
    best_state: dict[str, torch.Tensor] | None = None
    start_epoch, stopped = 0, False

    ckpt = load_checkpoint(ckpt_path)
    if ckpt is not None:
        saved = ckpt["config"]
        diff = [k for k in _TRAJECTORY_FIELDS if saved.get(k) != asdict(config)[k]]
        if diff or ckpt["seed"] != seed or ckpt["shape"] != (split.n_users, split.n_items):
            raise ValueError(
                f"checkpoint {ckpt_path} was written by a different run (differs in {diff or 'seed/shape'})"
            )
        model.load_state_dict(ckpt["model"])
        for name, opt in optimizers.items():
            opt.load_state_dict(ckpt["optimizers"][name])
        stopper.load_state_dict(ckpt["early_stopping"])
        batch_gen.set_state(ckpt["batch_generator"])
        history, best_state = list(ckpt["history"]), ckpt["best_state"]
        start_epoch, stopped = ckpt["epoch"], ckpt["stopped"]
        stopper.patience = config.patience

    def save(epoch: int) -> None:
        if ckpt_path is None:
            return
        state = {
            "epoch": epoch,
            "stopped": stopped,
            "model": model.state_dict(),
            "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
            "early_stopping": stopper.state_dict(),
            "batch_generator": batch_gen.get_state(),
            "history": history,
            "best_state": best_state,
            "config": asdict(config),
            "seed": seed,
            "shape": (split.n_users, split.n_items),
        }
        atomic_torch_save(state, ckpt_path)

    train = split.train.to_torch(dev)
    valid = split.valid.to_torch(dev)
    test = split.test.to_torch(dev)
    n_train = len(split.train)

    last_epoch = start_epoch
    for epoch in range(start_epoch + 1, config.max_epochs + 1):
        if stopped:  # early-stopped before (possibly in the run that wrote the checkpoint)
            break
        t0 = time.perf_counter()
        model.train()
        objectives, sses = [], []
        for phase in PHASES:  # network weights with latents fixed, then latents with the network fixed
            for _ in range(config.phase_passes):
                obj, sse = train_phase(
                    model, optimizers[phase], phase, *train, config.lam, config.batch_size, batch_gen
                )
                objectives.append(obj)
                sses.append(sse)
        seconds = time.perf_counter() - t0
        last_epoch = epoch
        if epoch % config.eval_every == 0 or epoch == config.max_epochs:
            model.eval()
            valid_rmse, _ = _evaluate(model, valid, clip, config.eval_batch_size)
            test_rmse, _ = _evaluate(model, test, clip, config.eval_batch_size)
            history.append(
                {
                    "epoch": epoch,
                    "train_loss": float(np.mean(objectives)) / n_train,
                    "train_rmse": float(np.sqrt(np.mean(sses) / n_train)),
                    "valid_rmse": valid_rmse,
                    "test_rmse": test_rmse,  # learning curve only, never used for a decision
                    "seconds": seconds,
                }
            )
            row = history[-1]
            log.info(
                "epoch %d loss %.4f train %.4f valid %.4f (%.2fs)",
                epoch,
                row["train_loss"],
                row["train_rmse"],
                valid_rmse,
                seconds,
            )
            if stopper.update(valid_rmse, epoch):
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            stopped = stopper.should_stop
        if epoch % config.checkpoint_every == 0 or stopped or epoch == config.max_epochs:
            save(epoch)

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    valid_rmse, _ = _evaluate(model, valid, clip, config.eval_batch_size)
    test_rmse, test_pred = _evaluate(model, test, clip, config.eval_batch_size)
    return FitResult(
        metrics={"rmse": test_rmse, "mae": mae(test_pred, split.test.values)},
        best_epoch=stopper.best_epoch,
        history=pd.DataFrame(
            history, columns=["epoch", "train_loss", "train_rmse", "valid_rmse", "test_rmse", "seconds"]
        ),
        config={**asdict(config), "seed": seed, "device": str(dev), "split": split.name},
        valid_metrics={"rmse": valid_rmse},
        test_predictions=test_pred,
        epochs_run=last_epoch,
    )


__all__ = ["NNMF", "NNMFConfig", "fit_nnmf", "make_optimizers", "train_phase"]
