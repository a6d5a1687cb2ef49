"""Lecture CNN: train step + inference batch (neuraxis/PyTorch/NumPy), model.fit epochs (Keras 3).

One training step and one inference batch: neuraxis vs PyTorch vs the NumPy reference; and
model.fit epochs: neuraxis's Keras front vs real Keras 3 on its torch and JAX backends.

    python bench/cnn_bench.py                 # W3: 64x64x3, batch 32: both tables
    python bench/cnn_bench.py --mnist         # W6: 28x28x1, batch 128: both tables
    python bench/cnn_bench.py --only step     # the step table only (neuraxis, PyTorch, NumPy)
    python bench/cnn_bench.py --only fit      # the model.fit table only (neuraxis, Keras x2)
    python bench/cnn_bench.py --repeat 5 --steps 8 --epochs 4 --json bench/results/cnn_w3.json
    python bench/cnn_bench.py --steps 2 --repeat 1 --epochs 2 --images 64   # smoke run
    python bench/numpy_cnn.py --check         # the NumPy reference's gradients vs PyTorch

Model (issue 7): Conv2D(32, 3, relu) -> MaxPooling2D(2) -> Conv2D(64, 3, relu) ->
MaxPooling2D(2) -> Flatten -> Dense(128, relu) -> Dense(10, softmax), Adam, cross-entropy.

Step table ("train step", "predict batch"; time of a step = the minimum over `--repeat`
repeats of the mean over `--steps` steps, after one warm-up step):
  * neuraxis through its engine (`_core.Network32`, the network `Sequential.fit` builds);
  * PyTorch eager in channels-last memory format (its fastest CPU layout for this model),
    `torch.set_num_threads` equal to neuraxis's threads;
  * NumPy: the careful NumPy reference bench/numpy_cnn.py (im2col + one GEMM per conv layer
    over the whole batch, reshape max-pooling, Keras's Adam), OpenBLAS limited to the same
    threads through threadpoolctl.
  The "train step GFLOP/s" row divides the step's matrix-product FLOPs, counted analytically
  (numpy_cnn.step_flops: 2 * multiply-adds of the forward and both backward products of
  every conv and dense layer, no dx product for conv1), by each library's step time.

model.fit table: the lecture code, `Sequential([...]).compile(optimizer="adam",
loss="categorical_crossentropy", metrics=["accuracy"]).fit(X, Y, batch_size, epochs=3,
verbose=0)` on W3: 512 images of 64x64x3, batch 32, or W6 (`--mnist`): 4096 images of
28x28x1, batch 128 (random normal images, random one-hot labels); an epoch is timed by a
callback (on_epoch_begin / on_epoch_end, time.perf_counter) and the table shows the best
(minimum) epoch over epochs 2..E (epoch 1 carries graph building / tracing / compilation
and is shown apart):
  * neuraxis: `from neuraxis.models import Sequential; from neuraxis.layers import ...`;
  * Keras-torch and Keras-JAX: real Keras 3, KERAS_BACKEND set in the worker's environment,
    torch threads / XLA's CPUs limited to neuraxis's threads (as in bench/keras_bench.py).

Every library runs in its own fresh subprocess (their thread pools would spin against each
other in one process). OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for every process
(see bench/_benchenv.py). `--json PATH` writes every number of the run.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _benchenv  # noqa: E402
from _benchlib import (KERAS_BACKENDS, cell_ms, clocked_fit, fit_front, machine,  # noqa: E402
                       ratio, timed)

_benchenv.scrub_environ()

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402

STEP_KINDS = ("neuraxis", "torch", "numpy")
FIT_KINDS = ("neuraxis-fit", "keras-torch", "keras-jax")
TITLES = {"neuraxis": "neuraxis", "torch": "PyTorch (channels-last)", "numpy": "NumPy ref",
          "neuraxis-fit": "neuraxis", "keras-torch": "Keras-torch", "keras-jax": "Keras-JAX"}


def shapes(mnist):
    return ((28, 28, 1), 128) if mnist else ((64, 64, 3), 32)


def fit_images(mnist):
    """The issue's model.fit data sizes: W6 4096 images, W3 512 images."""
    return 4096 if mnist else 512


def data(mnist, steps):
    import numpy as np

    (h, w, c), batch = shapes(mnist)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(batch * steps, h, w, c)).astype(np.float32)
    y = rng.integers(0, 10, len(X))
    return X, y, batch


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


def run_numpy(mnist, steps, repeat, threads):
    import numpy as np

    from numpy_cnn import NumpyCNN

    limiter = None
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
        if threads:
            limiter = threadpool_limits(limits=threads)
        blas = [f"{p['internal_api']} {p['version']} num_threads={p['num_threads']}"
                for p in threadpool_info() if p["user_api"] == "blas"]
    except ImportError:
        blas = ["threadpoolctl not installed: BLAS threads not limited"]
    X, y, batch = data(mnist, steps)
    Y = np.eye(10, dtype=np.float32)[y]
    net = NumpyCNN(X.shape[1:], seed=1)

    def step(i):
        net.train_step(X[i * batch:(i + 1) * batch], Y[i * batch:(i + 1) * batch])

    def infer(i):
        net.predict(X[i * batch:(i + 1) * batch])

    res = {"train_step_s": timed(step, steps, repeat),
           "predict_batch_s": timed(infer, steps, repeat), "threads": threads,
           "version": np.__version__, "blas": blas}
    if limiter is not None:
        limiter.restore_original_limits()
    return res


# --------------------------------------------------------------- model.fit workers
def fit_data(mnist, images):
    import numpy as np

    (h, w, c), batch = shapes(mnist)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(images, h, w, c)).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, images)]
    return X, Y, batch


def lecture_model(Sequential, L, input_shape):
    """The lecture code; `Sequential` and the layer module `L` are Keras's or neuraxis's."""
    model = Sequential([L.Input(input_shape), L.Conv2D(32, 3, activation="relu"),
                        L.MaxPooling2D(2), L.Conv2D(64, 3, activation="relu"),
                        L.MaxPooling2D(2), L.Flatten(), L.Dense(128, activation="relu"),
                        L.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    return model


def run_fit(kind, mnist, images, epochs, threads):
    """model.fit(epochs) of the lecture code with an epoch clock."""
    info = {}
    Sequential, L, Callback = fit_front(kind, threads, info)
    X, Y, batch = fit_data(mnist, images)
    model = lecture_model(Sequential, L, X.shape[1:])
    return clocked_fit(model, Callback, X, Y, batch, epochs, dict(info, images=images))


# ------------------------------------------------------------------------ runner
def versions_line(results):
    parts = []
    for table in ("step", "fit"):
        for lib, r in results.get(table, {}).items():
            if "error" in r:
                parts.append(f"{lib}: ERROR {r['error']}")
                continue
            v = f"{lib}: {r.get('version')}"
            if r.get("torch") or r.get("jax"):
                v += f" (torch {r['torch']})" if r.get("torch") else f" (jax {r['jax']})"
            if r.get("blas"):
                v += f" ({'; '.join(r['blas'])})"
            parts.append(v + f", threads {r.get('threads')}")
    return "; ".join(parts)


def step_table(res, flops):
    libs = [lib for lib in STEP_KINDS if lib in res]
    others = [lib for lib in libs if lib != "neuraxis"]
    head = ["measure"] + [TITLES[lib] for lib in libs] + [f"{lib}/neuraxis" for lib in others]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for key, title in (("train_step_s", "train step"), ("predict_batch_s", "predict batch")):
        row = [title] + [cell_ms(res[lib], key) for lib in libs]
        row += [ratio(res[lib].get(key), res["neuraxis"].get(key)) for lib in others]
        lines.append("| " + " | ".join(row) + " |")
    row = [f"train step GFLOP/s ({flops / 1e9:.2f} GFLOP)"]
    for lib in libs:
        t = res[lib].get("train_step_s")
        row.append(f"{flops / t / 1e9:.1f}" if t else "n/a")
    lines.append("| " + " | ".join(row + [""] * len(others)) + " |")
    return "\n".join(lines)


def fit_table(res):
    libs = [lib for lib in FIT_KINDS if lib in res]
    kerases = [lib for lib in libs if lib != "neuraxis-fit"]
    head = (["model.fit epoch"] + [TITLES[lib] for lib in libs]
            + [f"{TITLES[lib]}/neuraxis" for lib in kerases] + ["faster Keras/neuraxis"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    nx = res.get("neuraxis-fit", {})
    for key, title in (("best_epoch_s", "best epoch (2..E)"), ("epoch1_s", "epoch 1")):
        row = [title] + [cell_ms(res[lib], key) for lib in libs]
        row += [ratio(res[lib].get(key), nx.get(key)) for lib in kerases]
        times = [res[lib].get(key) for lib in kerases if res[lib].get(key)]
        row.append(ratio(min(times), nx.get(key)) if times else "n/a")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mnist", action="store_true", help="W6 (28x28x1, batch 128) instead of W3")
    ap.add_argument("--steps", type=int, default=8, help="steps per repeat (step table)")
    ap.add_argument("--repeat", type=int, default=3, help="repeats; the fastest is reported")
    ap.add_argument("--only", choices=("step", "fit"), help="run one table only")
    ap.add_argument("--epochs", type=int, default=3, help="model.fit epochs (>= 2; default 3)")
    ap.add_argument("--images", type=int, default=None,
                    help="model.fit images (default: 512 for W3, 4096 for W6)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per worker")
    ap.add_argument("--json", metavar="PATH", help="write all results to PATH")
    ap.add_argument("--worker", choices=STEP_KINDS + FIT_KINDS, help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    images = args.images or fit_images(args.mnist)
    if args.worker:
        if args.worker == "neuraxis":
            out = run_neuraxis(args.mnist, args.steps, args.repeat)
        elif args.worker == "torch":
            out = run_torch(args.mnist, args.steps, args.repeat, args.threads)
        elif args.worker == "numpy":
            out = run_numpy(args.mnist, args.steps, args.repeat, args.threads)
        else:
            out = run_fit(args.worker, args.mnist, images, args.epochs, args.threads)
        sys.stdout.flush()
        print("\n" + json.dumps(out), flush=True)  # the last line of stdout is the result
        return 0
    if args.epochs < 2 and args.only != "step":
        ap.error("--epochs must be >= 2 (epoch 1 is reported apart)")

    def worker(lib, threads=0):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib, "--steps",
               str(args.steps), "--repeat", str(args.repeat), "--threads", str(threads),
               "--epochs", str(args.epochs), "--images", str(images)]
        if args.mnist:
            cmd.append("--mnist")
        updates = {}
        if lib in ("torch", "keras-torch", "keras-jax"):
            updates.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if lib in KERAS_BACKENDS:
            updates["KERAS_BACKEND"] = KERAS_BACKENDS[lib]
        try:
            out = subprocess.run(cmd, env=_benchenv.child_env(updates), capture_output=True,
                                 text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {args.timeout:.0f} s"}
        lines = out.stdout.strip().splitlines()
        if out.returncode != 0 or not lines:
            return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1][:200],
                    "stderr_tail": out.stderr[-4000:]}
        return json.loads(lines[-1])

    import numpy_cnn

    (h, w, c), batch = shapes(args.mnist)
    flops = numpy_cnn.step_flops((h, w, c), batch)
    m = machine()
    print(f"# lecture CNN on {h}x{w}x{c}; {_benchenv.describe()}")
    busy = m["loadavg_1min_at_start"] is not None and \
        m["loadavg_1min_at_start"] > 0.5 * (m["usable_cpus"] or 1)
    print(f"# machine: {m['cpu']}, {m['usable_cpus']} usable CPUs, load "
          f"{m['loadavg_1min_at_start']:.2f} at start"
          + ("  WARNING: the machine is busy, timings will be noisy" if busy else ""))
    results = {"machine": m,
               "config": {"input_shape": [h, w, c], "batch": batch, "steps": args.steps,
                          "repeat": args.repeat, "fit_images": images, "epochs": args.epochs,
                          "workload": "W6" if args.mnist else "W3"},
               "env": _benchenv.describe(),
               "train_step_flops": flops,
               "predict_batch_flops": numpy_cnn.forward_flops((h, w, c), batch)}
    threads = None
    if args.only != "fit":
        step = {"neuraxis": worker("neuraxis")}
        threads = step["neuraxis"].get("threads") or len(os.sched_getaffinity(0))
        step["torch"] = worker("torch", threads)
        step["numpy"] = worker("numpy", threads)
        results["step"] = step
        print(f"\n## one training step / inference batch, batch {batch}; threads {threads}; "
              f"min over {args.repeat} repeats of the mean of {args.steps} steps")
        print(step_table(step, flops))
    if args.only != "step":
        fit = {"neuraxis-fit": worker("neuraxis-fit")}
        threads = threads or fit["neuraxis-fit"].get("threads") or len(os.sched_getaffinity(0))
        for lib in ("keras-torch", "keras-jax"):
            fit[lib] = worker(lib, threads)
        results["fit"] = fit
        print(f"\n## model.fit: {images} images, batch {batch}, {args.epochs} epochs, "
              f"verbose=0; threads {threads}")
        print(fit_table(fit))
        for lib in FIT_KINDS:
            e = fit[lib].get("epoch_s")
            if e:
                print(f"  {TITLES[lib]:<12} epochs: " + ", ".join(f"{t * 1e3:.0f} ms" for t in e))
    print("\nworkers: " + versions_line(results))
    if args.json:
        _benchenv.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
