"""Training-step time of the pairwise ranking models (LRML, CML) at ML-1M size, against their reference forms.

Two implementation choices of ``recrepro.models.ranking`` are measured against the form they replaced, in the
same run and on the same random batches (the tests show each pair computes the same thing):

* LRML, batch 500, one negative: row-sparse embedding gradients (Adagrad touches the batch's rows) vs dense
  gradients (every step updates and clips the whole 6040 x 100 and 3706 x 100 tables).
* CML, batch 50,000, 20 negatives: the loss's gradient through the closest negative only (the K distances
  computed without autograd; the current form) vs through all K distances (the previous form, with the dots
  from one GEMM of the batch's distinct users with every item), vs the direct ‖u − v‖² over the (B, 20, 100)
  block (the first reference); and, for the current form, the dots from the gathered block instead of the GEMM.
* Negative sampling for a CollMetric batch (50,000 pairs x 20 negatives) against the training pairs a fit on
  NCF's ML-1M split uses (``validation_view(0).train``; needs the data root): the dense boolean mask of the
  training pairs (current) vs binary search in their sorted keys, re-checking only the redrawn draws each
  rejection round (previous) or every draw (the reference form; the tests show all three return the same
  items). Heavy users make many rejection rounds. The step times above exclude sampling; an epoch pays both.

    RECREPRO_DATA=../shared/data python benchmarks/bench_pairwise.py --device cpu --threads 1 --steps 50
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from recrepro.data import load_split
from recrepro.device import DEVICE_CHOICES, device_name, resolve_device
from recrepro.models.lrml import LRML, LRMLConfig
from recrepro.models.ranking import CML, CMLConfig, NegativeSampler, PairwiseModel, make_optimizer

N_USERS, N_ITEMS = 6040, 3706  # ML-1M
N_TRAIN_PAIRS = 994_169  # ML-1M's training pairs in NCF's leave-one-out split (for the per-epoch estimates)


class AllNegativesGradCML(CML):
    """The previous loss: the hinge differentiated through all K negatives' distances (min picks the closest)."""

    def loss(self, users: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
        d_pos = (self.user[users] - self.item[pos]).pow(2).sum(-1)
        d_neg = self.squared_distances(users, neg)
        pair = torch.relu(self.cfg.margin + d_pos - d_neg.min(dim=1).values)
        impostors = (d_pos[:, None] - d_neg + self.cfg.margin > 0).float().mean(1)
        return (pair * torch.log(impostors * self.n_items + 1.0)).sum()


class DirectCML(AllNegativesGradCML):
    """The first reference: ‖u − v‖² over the differenced (B, K, d) block, differentiated through all K."""

    def squared_distances(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        return (self.user[users][:, None, :] - self.item[items]).pow(2).sum(-1)


class GatheredCML(CML):
    """The current loss with its dot products from the gathered (B, K, d) block (no GEMM)."""

    DENSE_DOTS_FACTOR = 0


class BinarySearchSampler(NegativeSampler):
    """The previous form: training pairs found by binary search in their sorted keys (no dense mask)."""

    DENSE_MASK_LIMIT = 0


class RecheckAllSampler(BinarySearchSampler):
    """The reference form: every rejection round re-checks every draw of the batch (binary search)."""

    def sample(self, users: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
        u = users[:, None].expand(-1, n)
        items = torch.randint(self.n_items, u.shape, generator=generator, device=self.device)
        while (bad := self.is_positive(u, items)).any():
            items[bad] = torch.randint(self.n_items, (int(bad.sum()),), generator=generator, device=self.device)
        return items


def sample_seconds(
    sampler: NegativeSampler, sampler_users: np.ndarray, cfg: CMLConfig, repeats: int, dev: torch.device
) -> list[float]:
    """Wall seconds of drawing the negatives of one batch of training pairs (drawn as an epoch's are), ``repeats``
    times."""
    gen = torch.Generator(device=dev).manual_seed(1)
    pair_users = torch.as_tensor(sampler_users, device=dev)
    times = []
    for _ in range(repeats):
        users = pair_users[torch.randint(0, len(pair_users), (cfg.batch_size,), generator=gen, device=dev)]
        synchronize(dev)
        t0 = time.perf_counter()
        sampler.sample(users, cfg.n_negatives, gen)
        synchronize(dev)
        times.append(time.perf_counter() - t0)
    return times


def synchronize(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def step_seconds(model: PairwiseModel, cfg: LRMLConfig | CMLConfig, steps: int, dev: torch.device) -> list[float]:
    """Wall seconds of ``steps`` optimiser steps (loss, backward, Adagrad, clip), after one warm-up step."""
    model.to(dev)
    opt = make_optimizer(model.parameters(), cfg)
    gen = torch.Generator().manual_seed(1)
    times = []
    for step in range(steps + 1):
        users = torch.randint(0, N_USERS, (cfg.batch_size,), generator=gen).to(dev)
        pos = torch.randint(0, N_ITEMS, (cfg.batch_size,), generator=gen).to(dev)
        neg = torch.randint(0, N_ITEMS, (cfg.batch_size, cfg.n_negatives), generator=gen).to(dev)
        synchronize(dev)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        model.loss(users, pos, neg).backward()
        with torch.sparse.check_sparse_tensor_invariants(enable=False):
            opt.step()
        with torch.no_grad():
            model.constrain(rows_only=step > 0)
        synchronize(dev)
        if step > 0:
            times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--steps", type=int, default=50, help="timed LRML steps (CML: a tenth, at least 2)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = resolve_device(args.device)
    print(f"device: {device_name(dev)}  torch {torch.__version__}  ML-1M size {N_USERS} x {N_ITEMS}")
    lrml_cfg = LRMLConfig(copy_relations=False, attention="paper")
    cml_cfg = CMLConfig()
    cml_steps = max(2, args.steps // 10)
    cases = [
        ("LRML dense gradients (reference)", lambda: LRML(N_USERS, N_ITEMS, lrml_cfg, _gen()), False, lrml_cfg),
        ("LRML row-sparse gradients", lambda: LRML(N_USERS, N_ITEMS, lrml_cfg, _gen()), True, lrml_cfg),
        ("CML all-K grad, direct (reference)", lambda: DirectCML(N_USERS, N_ITEMS, cml_cfg, _gen()), False, cml_cfg),
        ("CML all-K grad, GEMM dots", lambda: AllNegativesGradCML(N_USERS, N_ITEMS, cml_cfg, _gen()), False, cml_cfg),
        ("CML closest grad, gathered dots", lambda: GatheredCML(N_USERS, N_ITEMS, cml_cfg, _gen()), False, cml_cfg),
        ("CML closest grad, GEMM dots", lambda: CML(N_USERS, N_ITEMS, cml_cfg, _gen()), False, cml_cfg),
    ]
    medians = []
    for name, build, sparse, cfg in cases:
        model = build()
        model.sparse_grads = sparse
        times = step_seconds(model, cfg, args.steps if cfg is lrml_cfg else cml_steps, dev)
        medians.append(statistics.median(times))
        per_epoch = medians[-1] * N_TRAIN_PAIRS / cfg.batch_size
        print(f"  {name:36s} {1e3 * medians[-1]:9.2f} ms/step (median of {len(times)}), ~{per_epoch:6.1f} s/epoch")
    train = load_split("ml-1m/ncf-loo").validation_view(0).train
    for name, sampler_class in [
        ("CML sampling, search, all (reference)", RecheckAllSampler),
        ("CML sampling, search, redrawn", BinarySearchSampler),
        ("CML sampling, mask, redrawn", NegativeSampler),
    ]:
        times = sample_seconds(sampler_class(train, dev), train.users, cml_cfg, cml_steps, dev)
        medians.append(statistics.median(times))
        per_epoch = medians[-1] * len(train) / cml_cfg.batch_size
        print(f"  {name:36s} {1e3 * medians[-1]:9.2f} ms/batch (median of {len(times)}), ~{per_epoch:6.1f} s/epoch")
    lrml_dense, lrml_sparse, cml_direct, cml_all_k, cml_gathered, cml_now, s_ref, s_prev, s_now = medians
    print(f"LRML speed-up (dense / row-sparse): {lrml_dense / lrml_sparse:.2f}x")
    print(f"CML step speed-up (direct all-K / current):   {cml_direct / cml_now:.2f}x")
    print(f"CML step speed-up (GEMM all-K / current):     {cml_all_k / cml_now:.2f}x")
    print(f"CML step speed-up (gathered dots / GEMM dots): {cml_gathered / cml_now:.2f}x")
    print(f"CML sampling speed-up (search, re-check all / current): {s_ref / s_now:.2f}x")
    print(f"CML sampling speed-up (search, re-check redrawn / current): {s_prev / s_now:.2f}x")
    print(f"CML epoch speed-up (reference forms / current): {(cml_direct + s_ref) / (cml_now + s_now):.2f}x")


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(0)


if __name__ == "__main__":
    main()
