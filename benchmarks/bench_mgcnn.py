"""Training-step time of sRMGCNN (separable, O((m+n) r)) against the full RMGCNN (O(mn)) on one dataset.

Monti et al. (2017) motivate sRMGCNN by its cost; this script measures one full-batch Adam step (forward over
T diffusion steps, backward, update) of both models on the same data and device and prints their ratio.

The full RMGCNN keeps ~m·n·T·((p+1)² + 12·32) floats for backpropagation (about 150 GB on the 3000 x 3000
Douban matrix), so when the estimate exceeds ``--max-memory-gb`` both models are also timed on the largest
top-left square crop (users and items with the smallest ids) that fits, and the ratio is reported there.

    python benchmarks/bench_mgcnn.py --device auto --dataset douban --data-root /work/shared/data --steps 5
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import scipy.sparse as sp
import torch

from recrepro.data.types import Ratings, RatingSplit
from recrepro.device import DEVICE_CHOICES, device_name, resolve_device
from recrepro.models.mgcnn import MGCNNConfig, build_model, build_problem, mgcnn_loss

_FILES = {
    "douban": "monti_mgcnn/douban/training_test_dataset.mat",
    "flixster": "monti_mgcnn/flixster/training_test_dataset_10_NNs.mat",
    "yahoo_music": "monti_mgcnn/yahoo_music/training_test_dataset_10_NNs.mat",
    "ml-100k": "monti_mgcnn/movielens/split_1.mat",
    "synthetic_netflix": "monti_mgcnn/synthetic_netflix/synthetic_netflix.mat",
}
_GRAPH_KEYS = {"user": ("W_users", "Wrow"), "item": ("W_movies", "W_tracks", "Wcol")}


def _read_mat(f: h5py.File, key: str) -> np.ndarray | sp.csr_matrix:
    """MATLAB v7.3: dense arrays are stored transposed; sparse ones are groups with data/ir/jc."""
    obj = f[key]
    if isinstance(obj, h5py.Group):
        jc = np.asarray(obj["jc"])
        n_rows = int(obj.attrs["MATLAB_sparse"])
        return sp.csc_matrix((np.asarray(obj["data"]), np.asarray(obj["ir"]), jc), shape=(n_rows, len(jc) - 1)).tocsr()
    return np.asarray(obj).T


def load_monti_split(dataset: str, data_root: str | None) -> RatingSplit:
    """``recrepro.data.load_split`` when available, else a direct h5py read of the Monti ``.mat`` file."""
    try:
        from recrepro.data import load_split
    except ImportError:
        load_split = None
    if load_split is not None:
        name = "ml-100k-monti" if dataset == "ml-100k" else dataset
        split = load_split(name, data_root)
        assert isinstance(split, RatingSplit)
        return split
    path = Path(data_root or ".") / _FILES[dataset]
    with h5py.File(path, "r") as f:
        m = np.asarray(_read_mat(f, "M"), dtype=np.float64)
        o_train, o_test = np.asarray(_read_mat(f, "Otraining")) > 0, np.asarray(_read_mat(f, "Otest")) > 0
        graphs = {
            side: next((sp.csr_matrix(_read_mat(f, k)) for k in keys if k in f), None)
            for side, keys in _GRAPH_KEYS.items()
        }

    def ratings(mask: np.ndarray) -> Ratings:
        u, i = np.nonzero(mask)
        return Ratings(u, i, m[u, i], *m.shape)

    train = ratings(o_train)
    return RatingSplit(
        dataset,
        train,
        ratings(o_test),
        rating_values=tuple(float(v) for v in np.unique(train.values)),
        user_graph=graphs["user"],
        item_graph=graphs["item"],
    )


def crop(split: RatingSplit, size: int) -> RatingSplit:
    """The top-left ``size`` x ``size`` block: entries and graphs restricted to the first users and items."""
    n_u, n_i = min(size, split.n_users), min(size, split.n_items)

    def part(r: Ratings | None) -> Ratings | None:
        if r is None:
            return None
        keep = (r.users < n_u) & (r.items < n_i)
        return Ratings(r.users[keep], r.items[keep], r.values[keep], n_u, n_i)

    sub = lambda g, n: None if g is None else sp.csr_matrix(g[:n, :n])  # noqa: E731
    return replace(
        split,
        name=f"{split.name}[:{n_u},:{n_i}]",
        train=part(split.train),
        test=part(split.test),
        valid=part(split.valid),
        user_graph=sub(split.user_graph, n_u),
        item_graph=sub(split.item_graph, n_i),
    )


def rmgcnn_memory_gb(n_users: int, n_items: int, config: MGCNNConfig) -> float:
    """Rough size of what autograd keeps for the full RMGCNN: per entry and diffusion step, the (p+1)² basis
    values plus ~12 tensors of 32 features (conv, 4 gates before/after the nonlinearity, c, h, ...)."""
    per_entry = (config.cheb_order + 1) ** 2 + 12 * config.n_conv_features
    return n_users * n_items * config.diffusion_steps * per_entry * 4 / 1e9


def time_steps(split: RatingSplit, config: MGCNNConfig, device: torch.device, steps: int, warmup: int) -> list[float]:
    """Wall-clock seconds of ``steps`` training steps after ``warmup`` untimed ones."""
    problem = build_problem(split, config, device)
    model = build_model(problem, config, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    times = []
    for k in range(warmup + steps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        tic = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss, _ = mgcnn_loss(model(), problem, config)
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        if k >= warmup:
            times.append(time.perf_counter() - tic)
    return times


def report(label: str, times: list[float]) -> float:
    mean = statistics.fmean(times)
    sd = statistics.stdev(times) if len(times) > 1 else 0.0
    print(f"  {label:<34s} {mean * 1e3:10.1f} ms/step  (sd {sd * 1e3:.1f} ms, {len(times)} steps)")
    return mean


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="auto", choices=DEVICE_CHOICES)
    ap.add_argument("--dataset", default="douban", choices=sorted(_FILES))
    ap.add_argument("--data-root", default=None, help="folder holding monti_mgcnn/ (default: the data layer's)")
    ap.add_argument("--steps", type=int, default=5, help="timed training steps per model")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps before timing")
    ap.add_argument("--size", type=int, default=None, help="crop the matrix to the first SIZE users and items")
    ap.add_argument("--max-memory-gb", type=float, default=4.0, help="skip RMGCNN sizes whose estimate exceeds it")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = ap.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    split = load_monti_split(args.dataset, args.data_root)
    if args.size:
        split = crop(split, args.size)
    config = MGCNNConfig.preset(args.dataset)
    full_cfg = MGCNNConfig.preset(args.dataset, model="rmgcnn")
    print(f"device: {device_name(device)}  torch {torch.__version__}")
    print(
        f"dataset: {split.name}  {split.n_users} x {split.n_items}, {len(split.train)} training entries, "
        f"graphs: users={split.user_graph is not None} items={split.item_graph is not None}"
    )
    print(f"config: p={config.cheb_order} T={config.diffusion_steps} r={config.rank} features={config.n_conv_features}")

    s_time = report("sRMGCNN (full matrix)", time_steps(split, config, device, args.steps, args.warmup))
    need = rmgcnn_memory_gb(split.n_users, split.n_items, full_cfg)
    if need <= args.max_memory_gb:
        f_time = report("RMGCNN (full matrix)", time_steps(split, full_cfg, device, args.steps, args.warmup))
        print(f"ratio RMGCNN / sRMGCNN step time on {split.n_users} x {split.n_items}: {f_time / s_time:.1f}x")
        return
    print(f"  RMGCNN on {split.n_users} x {split.n_items}: skipped, needs ~{need:.0f} GB (> --max-memory-gb)")
    side = int(np.sqrt(args.max_memory_gb / rmgcnn_memory_gb(1, 1, full_cfg)))
    side = max(100, side - side % 100)
    small = crop(split, side)
    print(f"same comparison on the {small.n_users} x {small.n_items} crop ({len(small.train)} training entries):")
    s_small = report("sRMGCNN (crop)", time_steps(small, config, device, args.steps, args.warmup))
    f_small = report("RMGCNN (crop)", time_steps(small, full_cfg, device, args.steps, args.warmup))
    print(f"ratio RMGCNN / sRMGCNN step time on the crop: {f_small / s_small:.1f}x")
    print(f"RMGCNN memory estimate at full size: ~{need:.0f} GB; sRMGCNN full-size step: {s_time * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
