"""Biased-MF training throughput (ratings per second) against scikit-surprise's SVD, measured in the same run.

Both train the same model (μ + b_u + b_i + p_uᵀq_i) for the same number of epochs and factors on the same
training ratings: surprise with per-rating SGD in Cython, ours with minibatch Adam in PyTorch. Prints one line
per dataset with both throughputs and their ratio (ours / surprise); also each model's test RMSE after those
epochs, so a speed-up bought with accuracy is visible. Run: ``python benchmarks/bench_biased_mf.py``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from recrepro.data import load_split
from recrepro.device import device_name, resolve_device, seed_everything
from recrepro.metrics import rmse
from recrepro.models.baselines import BiasedMF, train_one_epoch


def ours(split, epochs: int, factors: int, batch_size: int, device: torch.device) -> tuple[float, float]:
    gen = seed_everything(0)
    model = BiasedMF(split.n_users, split.n_items, factors, float(split.train.values.mean()), 0.05).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=0.005)
    u, i, r = split.train.to_torch(device)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(epochs):
        train_one_epoch(model, opt, u, i, r, batch_size, 0.05, gen)
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - t0
    with torch.no_grad():
        tu, ti, _ = split.test.to_torch(device)
        pred = model(tu, ti)[0].clamp(*split.rating_range).cpu().numpy()
    return len(split.train) * epochs / seconds, rmse(pred, split.test.values)


def surprise_svd(split, epochs: int, factors: int) -> tuple[float, float] | None:
    try:
        import pandas as pd
        from surprise import SVD, Dataset, Reader
    except ImportError:
        return None
    lo, hi = split.rating_range
    df = pd.DataFrame({"u": split.train.users, "i": split.train.items, "r": split.train.values})
    trainset = Dataset.load_from_df(df, Reader(rating_scale=(lo, hi))).build_full_trainset()
    algo = SVD(n_factors=factors, n_epochs=epochs, biased=True, random_state=0)
    t0 = time.perf_counter()
    algo.fit(trainset)
    seconds = time.perf_counter() - t0
    pred = [algo.predict(u, i).est for u, i in zip(split.test.users, split.test.items, strict=True)]
    return len(split.train) * epochs / seconds, rmse(np.asarray(pred), split.test.values)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["ml-100k/u1", "ml-1m/random-90-10"])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--factors", type=int, default=100, help="surprise's SVD default is 100")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--device", default="auto")
    p.add_argument("--data-root", default=None)
    args = p.parse_args()
    device = resolve_device(args.device)
    print(f"device: {device_name(device)}; torch {torch.__version__}; epochs {args.epochs}, factors {args.factors}")
    for name in args.datasets:
        split = load_split(name, data_root=args.data_root)
        ours_rate, ours_rmse = ours(split, args.epochs, args.factors, args.batch_size, device)
        ref = surprise_svd(split, args.epochs, args.factors)
        line = f"{name:22s} ours {ours_rate / 1e6:6.2f} M ratings/s (test RMSE {ours_rmse:.4f})"
        if ref is None:
            line += " | scikit-surprise not installed (pip install '.[bench]'): no reference, no ratio"
        else:
            line += (
                f" | surprise SVD {ref[0] / 1e6:6.2f} M ratings/s (test RMSE {ref[1]:.4f})"
                f" | ratio ours/surprise {ours_rate / ref[0]:.2f}"
            )
        print(line, flush=True)


if __name__ == "__main__":
    main()
