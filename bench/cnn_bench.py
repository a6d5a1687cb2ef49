"""The lecture CNN: one training step and one inference batch, neuraxis vs PyTorch.

    python bench/cnn_bench.py                 # W3: 64x64x3, batch 32 (a couple of seconds per library)
    python bench/cnn_bench.py --mnist         # W6: 28x28x1, Conv2D(32,3)-Pool-Conv2D(64,3)-Pool, batch 128
    python bench/cnn_bench.py --repeat 5 --steps 8

Model (issue 7): Conv2D(32, 3, relu) -> MaxPooling2D(2) -> Conv2D(64, 3, relu) ->
MaxPooling2D(2) -> Flatten -> Dense(128, relu) -> Dense(10, softmax), Adam, cross-entropy.
neuraxis runs through its engine (`_core.Network32`, the network `Sequential.fit` builds);
PyTorch runs eager in channels-last memory format (its fastest CPU layout for this model),
with `torch.set_num_threads` equal to neuraxis's threads. Each library runs in its own fresh
subprocess (their thread pools would spin against each other in one process); the time of a
step is the minimum over repeats of the mean over `--steps` steps. OPENBLAS_CORETYPE /
OPENBLAS_L2_SIZE are unset for every process (see bench/_benchenv.py).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _benchenv  # noqa: E402

_benchenv.scrub_environ()

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402


def shapes(mnist):
    return ((28, 28, 1), 128) if mnist else ((64, 64, 3), 32)


def data(mnist, steps):
    import numpy as np

    (h, w, c), batch = shapes(mnist)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(batch * steps, h, w, c)).astype(np.float32)
    y = rng.integers(0, 10, len(X))
    return X, y, batch


def timed(step, steps, repeat):
    step(0)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(steps):
            step(i)
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def run_neuraxis(mnist, steps, repeat):
    import numpy as np

    import neuraxis
    from neuraxis import _core

    X, y, batch = data(mnist, steps)
    Y = np.eye(10, dtype=np.float32)[y]
    specs = [{"kind": "conv2d", "filters": 32, "kernel_size": [3, 3], "activation": "relu"},
             {"kind": "max_pool2d", "pool_size": [2, 2]},
             {"kind": "conv2d", "filters": 64, "kernel_size": [3, 3], "activation": "relu"},
             {"kind": "max_pool2d", "pool_size": [2, 2]}, {"kind": "flatten"},
             {"kind": "dense", "units": 128, "activation": "relu"},
             {"kind": "dense", "units": 10, "activation": "softmax"}]
    net = _core.Network32(list(X.shape[1:]), specs, "categorical_crossentropy", "batch_size")
    rng = np.random.default_rng(1)
    params = [(rng.normal(size=s) * 0.05).astype(np.float32) for s in net.param_shapes]
    opt = _core.OptConfig()
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]

    def step(i):
        net.train_batches(params, opt, m, v, X, Y, None, None, batch, i, 1, [], 0)

    def infer(i):
        net.predict(params, X[i * batch:(i + 1) * batch])

    return {"train_step_s": timed(step, steps, repeat), "predict_batch_s": timed(infer, steps, repeat),
            "threads": neuraxis.get_num_threads(), "version": neuraxis.__version__}


def run_torch(mnist, steps, repeat, threads):
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    X, y, batch = data(mnist, steps)
    (h, w, c), _ = shapes(mnist)
    flat = 64 * ((((h - 2) // 2) - 2) // 2) ** 2
    model = nn.Sequential(nn.Conv2d(c, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3),
                          nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(flat, 128), nn.ReLU(),
                          nn.Linear(128, 10)).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(model.parameters())
    xt = torch.tensor(X).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
    yt = torch.tensor(y)
    loss = nn.CrossEntropyLoss()

    def step(i):
        opt.zero_grad()
        loss(model(xt[i * batch:(i + 1) * batch]), yt[i * batch:(i + 1) * batch]).backward()
        opt.step()

    def infer(i):
        with torch.no_grad():
            model(xt[i * batch:(i + 1) * batch])

    return {"train_step_s": timed(step, steps, repeat), "predict_batch_s": timed(infer, steps, repeat),
            "threads": threads, "version": torch.__version__}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist", action="store_true", help="W6 (28x28x1, batch 128) instead of W3")
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--worker", choices=("neuraxis", "torch"), help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker == "neuraxis":
        print(json.dumps(run_neuraxis(args.mnist, args.steps, args.repeat)))
        return 0
    if args.worker == "torch":
        print(json.dumps(run_torch(args.mnist, args.steps, args.repeat, args.threads)))
        return 0

    def worker(lib, threads=0):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib, "--steps",
               str(args.steps), "--repeat", str(args.repeat), "--threads", str(threads)]
        if args.mnist:
            cmd.append("--mnist")
        out = subprocess.run(cmd, env=_benchenv.child_env(), capture_output=True, text=True)
        if out.returncode != 0:
            return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1]}
        return json.loads(out.stdout.strip().splitlines()[-1])

    (h, w, c), batch = shapes(args.mnist)
    print(f"# lecture CNN on {h}x{w}x{c}, batch {batch}; {_benchenv.describe()}")
    nx = worker("neuraxis")
    res = {"neuraxis": nx, "torch": worker("torch", nx.get("threads", 2))}
    print("| measure | neuraxis | PyTorch (channels-last) | torch/neuraxis |")
    print("|---|---|---|---|")
    for key, title in (("train_step_s", "train step"), ("predict_batch_s", "predict batch")):
        a, b = res["neuraxis"].get(key), res["torch"].get(key)
        ratio = f"{b / a:.2f}x" if a and b else "n/a"
        cell = (lambda r, k: f"{r[k] * 1e3:.1f} ms" if k in r else r.get("error", "n/a"))
        print(f"| {title} | {cell(res['neuraxis'], key)} | {cell(res['torch'], key)} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
