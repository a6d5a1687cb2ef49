"""GFLOP/s of each conv layer of the lecture CNNs, forward and backward, against the GEMM rate.

    python bench/conv_layers.py            # W3 (64x64x3) and W6 (28x28x1) conv layers, 1 thread

For each conv layer (its input shape for a batch of images), one core:
- `neuraxis.ops.conv2d_forward` (im2col by blocks + GEMM + bias) and
  `neuraxis.ops.conv2d_backward` (dW, db and dx: im2col + two GEMMs + col2im);
- the bare GEMMs of the same shapes through NumPy's matmul on one OpenBLAS thread
  (the products the im2col method needs, with no im2col, bias or col2im): the rate
  the layer would reach if everything but the products were free.
FLOPs are 2 x the multiply-adds of the products (forward: one, backward: two). Time is
the minimum over repeats. OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset (bench/_benchenv.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _benchenv  # noqa: E402

_benchenv.scrub_environ()

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
import threadpoolctl  # noqa: E402

import neuraxis  # noqa: E402
from neuraxis import ops  # noqa: E402

# (name, batch, input (H, W, C), filters): 3x3 valid convolutions of the lecture CNNs
LAYERS = [("W3 conv1", 32, (64, 64, 3), 32), ("W3 conv2", 32, (31, 31, 32), 64),
          ("W6 conv1", 128, (28, 28, 1), 32), ("W6 conv2", 128, (13, 13, 32), 64)]


def best(f, repeat):
    f()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    neuraxis.set_num_threads(1)
    threadpoolctl.threadpool_limits(1, user_api="blas")
    print(f"# conv layers, 1 thread; {_benchenv.describe()}")
    print("| layer | products (M x N x K) | forward | fwd GFLOP/s | GEMM GFLOP/s | fwd/GEMM "
          "| backward | bwd GFLOP/s | GEMM GFLOP/s | bwd/GEMM |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    for name, n, (h, w, c), f in LAYERS:
        x = rng.normal(size=(n, h, w, c)).astype(np.float32)
        k = rng.normal(size=(3, 3, c, f)).astype(np.float32) * 0.1
        b = np.zeros(f, np.float32)
        oh, ow = h - 2, w - 2
        P, K = oh * ow, 9 * c
        dy = rng.normal(size=(n, oh, ow, f)).astype(np.float32)
        t_fwd = best(lambda: ops.conv2d_forward(x, k, b), args.repeat)
        t_bwd = best(lambda: ops.conv2d_backward(x, k, dy), args.repeat)
        col = rng.normal(size=(P, K)).astype(np.float32)
        wk = k.reshape(K, f)
        dz = dy[0].reshape(P, f)
        g_fwd = best(lambda: [col @ wk for _ in range(n)], args.repeat)
        g_bwd = best(lambda: [(col.T @ dz, dz @ wk.T) for _ in range(n)], args.repeat)
        flops = 2.0 * n * P * K * f
        print(f"| {name} | {P} x {f} x {K} | {t_fwd * 1e3:.2f} ms | {flops / t_fwd / 1e9:.0f} | "
              f"{flops / g_fwd / 1e9:.0f} | {g_fwd / t_fwd:.2f} | {t_bwd * 1e3:.2f} ms | "
              f"{2 * flops / t_bwd / 1e9:.0f} | {2 * flops / g_bwd / 1e9:.0f} | "
              f"{g_bwd / t_bwd:.2f} |")
    print("\n(backward computes dx for every layer here; in training the first layer skips it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
