"""Throughput of the sparse exchangeable layer (Hartford et al. 2018) against a dense layer and the hardware.

A script, not a test. Prints, for one ``SparseExchangeable(C_in, C_out)`` on random observed entries of an
ML-1M-sized matrix (default 1,000,209 entries over 6040 x 3706, 256 -> 256 channels):

* forward and forward+backward time, observed entries x output channels per second, GFLOP/s;
* the same layer's main product alone (an (nnz x C_in) @ (C_in x C_out) matmul), i.e. the compute floor;
* a measured memory-bandwidth ceiling (large tensor copy, GB/s) and the layer's estimated bytes moved, as
  achieved GB/s and the ratio of the measured time to the bandwidth lower bound;
* the dense implementation (``dense_exchangeable_reference``) on the largest sub-matrix whose dense tensors fit
  ``--dense-max-gb`` (same density, the top-left rows x cols of the same data), its time against the sparse
  layer on the same entries, and the dense time extrapolated to the full size (linear in rows x cols).

Examples::

    python benchmarks/bench_exchangeable.py --device cuda
    python benchmarks/bench_exchangeable.py --device cpu --nnz 100000 --rows 2000 --cols 1200 --channels 64
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from recrepro.device import DEVICE_CHOICES, device_name, resolve_device
from recrepro.models.exchangeable import SparseExchangeable, dense_exchangeable_reference, pool_counts

BYTES = 4  # float32


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def timed(fn: Callable[[], object], dev: torch.device, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``fn`` in seconds (after ``warmup`` untimed calls)."""
    for _ in range(warmup):
        fn()
    _sync(dev)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def random_entries(nnz: int, n_rows: int, n_cols: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``nnz`` distinct uniformly random (row, col) pairs, sorted by row then column (like ratings.dat)."""
    if nnz > n_rows * n_cols:
        raise ValueError("nnz exceeds rows x cols")
    rng = np.random.default_rng(seed)
    keys = np.unique(rng.integers(0, n_rows * n_cols, size=int(nnz * 1.1) + 16))
    while len(keys) < nnz:
        keys = np.unique(np.concatenate([keys, rng.integers(0, n_rows * n_cols, size=nnz)]))
    keys = np.sort(rng.choice(keys, size=nnz, replace=False))
    return keys // n_cols, keys % n_cols


def copy_bandwidth(dev: torch.device, megabytes: int, repeats: int) -> float:
    """GB/s of ``dst.copy_(src)`` on a large float32 tensor (read + write counted)."""
    n = megabytes * 2**20 // BYTES
    src = torch.ones(n, device=dev)
    dst = torch.empty_like(src)
    t = timed(lambda: dst.copy_(src), dev, repeats)
    return 2 * n * BYTES / t / 1e9


def layer_bytes(nnz: int, n_rows: int, n_cols: int, c_in: int, c_out: int) -> tuple[float, float]:
    """(ideal, as-implemented) bytes moved by one forward pass.

    Ideal: read the input and the two index vectors once, write the output once. As implemented: two
    index_add_ poolings and the matmul each read the input; the two gathers write nnz x C_out, the addmm
    reads one gathered tensor and writes the output, the final add reads two and writes one; four reads of
    an index vector; the (rows + cols) x C pooled tables are counted once each.
    """
    idx = 8  # int64
    ideal = nnz * (c_in + c_out) * BYTES + 2 * nnz * idx
    implemented = (
        3 * nnz * c_in * BYTES + 7 * nnz * c_out * BYTES + 4 * nnz * idx + (n_rows + n_cols) * (c_in + c_out) * BYTES
    )
    return float(ideal), float(implemented)


def layer_flops(nnz: int, n_rows: int, n_cols: int, c_in: int, c_out: int) -> float:
    """Forward FLOPs: the per-entry product, pooling sums, the pooled products and the two adds."""
    return 2.0 * nnz * c_in * c_out + 2.0 * nnz * c_in + 2.0 * (n_rows + n_cols + 1) * c_in * c_out + 2.0 * nnz * c_out


def bench_sparse(
    layer: SparseExchangeable,
    rows: torch.Tensor,
    cols: torch.Tensor,
    n_rows: int,
    n_cols: int,
    dev: torch.device,
    repeats: int,
    backward: bool = True,
) -> dict[str, float]:
    nnz = rows.numel()
    x = torch.randn(nnz, layer.in_channels, device=dev)
    counts = pool_counts(rows, cols, n_rows, n_cols)
    out: dict[str, float] = {}
    with torch.no_grad():
        out["forward_s"] = timed(lambda: layer(x, rows, cols, n_rows, n_cols, counts=counts), dev, repeats)
        out["forward_counts_s"] = timed(lambda: layer(x, rows, cols, n_rows, n_cols), dev, repeats)
        w = layer.w_entry.detach()
        out["matmul_only_s"] = timed(lambda: x @ w, dev, repeats)
    if backward:
        xg = x.clone().requires_grad_(True)
        grad = torch.randn(nnz, layer.out_channels, device=dev)

        def fwd_bwd() -> None:
            layer.zero_grad(set_to_none=True)
            xg.grad = None
            layer(xg, rows, cols, n_rows, n_cols, counts=counts).backward(grad)

        out["forward_backward_s"] = timed(fwd_bwd, dev, repeats)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=DEVICE_CHOICES, default="auto")
    p.add_argument("--nnz", type=int, default=1_000_209, help="observed entries (ML-1M: 1,000,209)")
    p.add_argument("--rows", type=int, default=6040, help="matrix rows (ML-1M users)")
    p.add_argument("--cols", type=int, default=3706, help="matrix columns (ML-1M rated movies)")
    p.add_argument("--channels", type=int, default=256, help="C_in = C_out unless set separately")
    p.add_argument("--in-channels", type=int, default=None)
    p.add_argument("--out-channels", type=int, default=None)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--dense-max-gb", type=float, default=None, help="memory budget for the dense layer (GB)")
    p.add_argument("--copy-mb", type=int, default=None, help="size of the bandwidth-test tensor (MB)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    dev = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    c_in = args.in_channels or args.channels
    c_out = args.out_channels or args.channels
    n_rows, n_cols, nnz = args.rows, args.cols, args.nnz
    dense_budget = args.dense_max_gb if args.dense_max_gb is not None else (8.0 if dev.type == "cuda" else 1.0)
    copy_mb = args.copy_mb or (2048 if dev.type == "cuda" else 512)

    print(f"device: {device_name(dev)} | torch {torch.__version__} | cpu threads {torch.get_num_threads()}")
    print(
        f"matrix {n_rows} x {n_cols}, nnz {nnz:,} (density {nnz / (n_rows * n_cols):.4f}), channels {c_in} -> {c_out}"
    )
    print(f"timings: median of {args.repeats} runs after 1 warm-up, float32")

    bw = copy_bandwidth(dev, copy_mb, args.repeats)
    print(f"\nmemory bandwidth (copy of {copy_mb} MB, read+write): {bw:.1f} GB/s")

    r_np, c_np = random_entries(nnz, n_rows, n_cols, args.seed)
    rows = torch.as_tensor(r_np, device=dev)
    cols = torch.as_tensor(c_np, device=dev)
    layer = SparseExchangeable(c_in, c_out).to(dev)
    res = bench_sparse(layer, rows, cols, n_rows, n_cols, dev, args.repeats)
    flops = layer_flops(nnz, n_rows, n_cols, c_in, c_out)
    ideal_b, impl_b = layer_bytes(nnz, n_rows, n_cols, c_in, c_out)
    f, fb = res["forward_s"], res["forward_backward_s"]
    print("\nsparse layer, full size")
    print(
        f"  forward            {f * 1e3:9.2f} ms  {nnz * c_out / f / 1e9:8.3f} G entry-channels/s"
        f"  {flops / f / 1e9:8.1f} GFLOP/s"
    )
    print(
        f"  forward+backward   {fb * 1e3:9.2f} ms  {nnz * c_out / fb / 1e9:8.3f} G entry-channels/s"
        f"  {3 * flops / fb / 1e9:8.1f} GFLOP/s (backward counted as 2x forward)"
    )
    print(f"  forward incl. per-call pooling counts (bincount): {res['forward_counts_s'] * 1e3:.2f} ms")
    mm = res["matmul_only_s"]
    print(
        f"  its (nnz x C_in) @ (C_in x C_out) matmul alone: {mm * 1e3:.2f} ms ({2 * nnz * c_in * c_out / mm / 1e9:.1f}"
        f" GFLOP/s) -> forward = {f / mm:.2f} x matmul"
    )
    print(
        f"  bytes moved per forward: ideal {ideal_b / 1e9:.3f} GB, as implemented ~{impl_b / 1e9:.3f} GB;"
        f" achieved {impl_b / f / 1e9:.1f} GB/s = {impl_b / f / 1e9 / bw:.2f} of the copy bandwidth"
    )
    print(
        f"  bandwidth lower bound (ideal bytes / copy GB/s) {ideal_b / bw / 1e9 * 1e3:.2f} ms"
        f" -> measured forward is {f / (ideal_b / bw / 1e9):.1f} x that bound"
    )

    # dense comparison on the largest sub-matrix that fits the budget
    per_cell = (2 * c_in + 4 * c_out) * BYTES  # input, masked input, 4 product terms / output (peak estimate)
    scale = min(1.0, math.sqrt(dense_budget * 1e9 / (n_rows * n_cols * per_cell)))
    sr, sc = max(2, int(n_rows * scale)), max(2, int(n_cols * scale))
    inside = (r_np < sr) & (c_np < sc)
    s_rows, s_cols = rows[torch.as_tensor(inside, device=dev)], cols[torch.as_tensor(inside, device=dev)]
    sub_nnz = int(inside.sum())
    x = torch.randn(sub_nnz, c_in, device=dev)
    dense_x = torch.zeros(sr, sc, c_in, device=dev)
    dense_x[s_rows, s_cols] = x
    mask = torch.zeros(sr, sc, dtype=torch.bool, device=dev)
    mask[s_rows, s_cols] = True
    with torch.no_grad():
        t_dense = timed(lambda: dense_exchangeable_reference(layer, dense_x, mask), dev, args.repeats)
        t_sparse = timed(lambda: layer(x, s_rows, s_cols, sr, sc), dev, args.repeats)
        diff = dense_exchangeable_reference(layer, dense_x, mask)[s_rows, s_cols] - layer(x, s_rows, s_cols, sr, sc)
        max_diff = float(diff.abs().max()) if sub_nnz else 0.0
    label = (
        "full size" if scale >= 1.0 else f"sub-matrix {sr} x {sc} ({100 * sr * sc / (n_rows * n_cols):.1f}% of cells)"
    )
    print(f"\ndense implementation (forward only), {label}, budget {dense_budget:g} GB, nnz inside {sub_nnz:,}")
    print(
        f"  dense {t_dense * 1e3:.2f} ms vs sparse {t_sparse * 1e3:.2f} ms on the same entries"
        f" -> sparse is {t_dense / t_sparse:.1f}x faster"
    )
    print(f"  max |dense - sparse| on observed entries: {max_diff:.2e}")
    if scale < 1.0:
        full_dense = t_dense * (n_rows * n_cols) / (sr * sc)
        print(
            f"  dense extrapolated to {n_rows} x {n_cols}: ~{full_dense * 1e3:.0f} ms"
            f" (needs ~{n_rows * n_cols * per_cell / 1e9:.0f} GB)"
            f" -> ~{full_dense / f:.0f}x the sparse forward"
        )


if __name__ == "__main__":
    main()
