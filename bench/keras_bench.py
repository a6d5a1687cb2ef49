"""Benchmark neuraxis's Keras front against a NumPy reference, Keras 3 (torch, JAX) and PyTorch.

    python bench/keras_bench.py                      # full run (a couple of minutes on 2 cores)
    python bench/keras_bench.py --quick              # smoke run, smaller sizes
    python bench/keras_bench.py --repeat 3 --threads 2 --json bench/results/keras.json
    python bench/keras_bench.py --baseline /path/to/old   # + "neuraxis (before)" column

The lecture model (issue 3)

    Sequential([Input((784,)), Dense(100), LeakyReLU(negative_slope=0.01),
                Dense(10, activation="softmax")])
    compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    fit(X, Y_onehot, batch_size=32, epochs=5, verbose=0, shuffle=True)

trained on the same float32 arrays by neuraxis, by the NumPy reference
(bench/numpy_keras_mlp.py), by Keras 3 on its torch and on its JAX backend and by
a hand-written PyTorch loop (and, with --baseline DIR, by the neuraxis build in
DIR/neuraxis). Each library trains in its own fresh subprocess (no environment
variable or thread pool of one leaks into another; KERAS_BACKEND is set only for
Keras), with torch's (and XLA's) thread count set to neuraxis's. Every number in
one report comes from the same invocation and the same data; the ratios
compare columns of the same run. See bench/README.md.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _benchenv  # noqa: E402  (standard library only)

# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are read when OpenBLAS loads: unset them
# before NumPy (or neuraxis, torch, jax) is imported, re-exec'ing if that is too late.
_benchenv.scrub_environ()

import argparse  # noqa: E402
import importlib.metadata  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402

import numpy as np  # noqa: E402

LIBS = ("neuraxis", "neuraxis-before", "numpy", "keras", "keras-jax", "torch")
LIB_TITLES = {"neuraxis": "neuraxis", "neuraxis-before": "neuraxis (before)",
              "numpy": "NumPy ref", "keras": "Keras 3 (torch)", "keras-jax": "Keras 3 (JAX)",
              "torch": "PyTorch loop"}
KERAS_BACKENDS = {"keras": "torch", "keras-jax": "jax"}
# what each optional column needs installed, and how to get it
NEEDS = {"keras": ("torch", "keras"), "keras-jax": ("jax", "jaxlib", "keras"),
         "torch": ("torch",)}
INSTALL = {"keras": "pip install torch==2.13.0 keras", "keras-jax": "pip install jax keras",
           "torch": "pip install torch==2.13.0"}
# ratio columns: numerator library / neuraxis, mean epoch 2..E
RATIOS = (("keras", "keras/neuraxis"), ("keras-jax", "keras-jax/neuraxis"),
          ("torch", "torch/neuraxis"), ("numpy", "numpy/neuraxis"),
          ("neuraxis-before", "before/after"))
SEED = 0


# ------------------------------------------------------------------- workers
# Each trainer returns {"epoch_s": [...], "total_s": fit wall time, "accuracy": test accuracy,
# "train_loss": last epoch's logged loss}. The clock starts right before `fit` (or the loop)
# and each epoch ends at its on_epoch_end, so epoch 1 carries the setup/compile costs.

def _result(t0, ends, t_end, acc, loss):
    epoch_s = np.diff([t0] + ends).tolist()
    return {"epoch_s": epoch_s, "total_s": t_end - t0, "accuracy": float(acc),
            "train_loss": None if loss is None else float(loss)}


def train_neuraxis(X_tr, Y_tr, X_te, y_te, epochs, bs):
    from neuraxis import utils
    from neuraxis.callbacks import Callback
    from neuraxis.layers import Dense, Input, LeakyReLU
    from neuraxis.models import Sequential

    ends = []

    class Clock(Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append(time.perf_counter())

    utils.set_random_seed(SEED)
    model = Sequential([Input((X_tr.shape[1],)), Dense(100), LeakyReLU(negative_slope=0.01),
                        Dense(Y_tr.shape[1], activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    hist = model.fit(X_tr, Y_tr, batch_size=bs, epochs=epochs, verbose=0, shuffle=True,
                     callbacks=[Clock()])
    t_end = time.perf_counter()
    acc = np.mean(model.predict(X_te, verbose=0).argmax(axis=1) == y_te)
    return _result(t0, ends, t_end, acc, hist.history["loss"][-1])


def train_numpy(X_tr, Y_tr, X_te, y_te, epochs, bs):
    from numpy_keras_mlp import NumpyKerasMLP

    ends = []
    net = NumpyKerasMLP(X_tr.shape[1], 100, Y_tr.shape[1], negative_slope=0.01, seed=SEED)
    t0 = time.perf_counter()
    hist = net.fit(X_tr, Y_tr, batch_size=bs, epochs=epochs, shuffle=True,
                   on_epoch_end=lambda e, logs: ends.append(time.perf_counter()))
    t_end = time.perf_counter()
    acc = np.mean(net.predict(X_te).argmax(axis=1) == y_te)
    return _result(t0, ends, t_end, acc, hist["loss"][-1])


def train_keras(X_tr, Y_tr, X_te, y_te, epochs, bs, backend="torch"):
    os.environ["KERAS_BACKEND"] = backend  # before the first import of keras
    import keras

    if keras.backend.backend() != backend:
        raise RuntimeError(f"keras was already imported with backend {keras.backend.backend()!r}")

    ends = []

    class Clock(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            ends.append(time.perf_counter())

    keras.utils.set_random_seed(SEED)
    model = keras.Sequential([keras.Input((X_tr.shape[1],)), keras.layers.Dense(100),
                              keras.layers.LeakyReLU(negative_slope=0.01),
                              keras.layers.Dense(Y_tr.shape[1], activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    t0 = time.perf_counter()
    hist = model.fit(X_tr, Y_tr, batch_size=bs, epochs=epochs, verbose=0, shuffle=True,
                     callbacks=[Clock()])
    t_end = time.perf_counter()
    acc = np.mean(np.asarray(model.predict(X_te, verbose=0)).argmax(axis=1) == y_te)
    return _result(t0, ends, t_end, acc, hist.history["loss"][-1])


def train_torch(X_tr, Y_tr, X_te, y_te, epochs, bs):
    import torch
    from torch import nn

    torch.manual_seed(SEED)
    model = nn.Sequential(nn.Linear(X_tr.shape[1], 100), nn.LeakyReLU(0.01),
                          nn.Linear(100, Y_tr.shape[1]))
    for layer in (model[0], model[2]):  # same init as Keras: Glorot uniform, zero bias
        nn.init.xavier_uniform_(layer.weight)
        nn.init.zeros_(layer.bias)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-7)
    loss_fn = nn.CrossEntropyLoss()
    Xt = torch.from_numpy(X_tr)
    yt = torch.from_numpy(Y_tr.argmax(axis=1).astype(np.int64))
    n = Xt.shape[0]
    ends = []
    t0 = time.perf_counter()
    for _ in range(epochs):
        perm = torch.randperm(n)
        loss_sum = torch.zeros(())
        for start in range(0, n, bs):
            idx = perm[start:start + bs]
            xb, yb = Xt[idx], yt[idx]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            loss_sum += loss.detach() * idx.shape[0]
        last_loss = float(loss_sum) / n
        ends.append(time.perf_counter())
    t_end = time.perf_counter()
    with torch.no_grad():
        pred = model(torch.from_numpy(X_te)).argmax(dim=1).numpy()
    return _result(t0, ends, t_end, np.mean(pred == y_te), last_loss)


def train_keras_jax(X_tr, Y_tr, X_te, y_te, epochs, bs):
    return train_keras(X_tr, Y_tr, X_te, y_te, epochs, bs, backend="jax")


TRAINERS = {"neuraxis": train_neuraxis, "neuraxis-before": train_neuraxis,
            "numpy": train_numpy, "keras": train_keras, "keras-jax": train_keras_jax,
            "torch": train_torch}


def timed_fit(lib, data, epochs, bs):
    """One fit, plus busy_cores: process CPU time / wall time of the whole call
    (model build, fit and predict; threads spinning while they wait count as busy)."""
    c0, w0 = time.process_time(), time.perf_counter()
    r = TRAINERS[lib](*data, epochs, bs)
    r["busy_cores"] = (time.process_time() - c0) / max(time.perf_counter() - w0, 1e-9)
    return r


def merge_runs(runs):
    """Per-epoch times and total: element-wise minimum; busy_cores from the fastest
    run; the rest from the last run."""
    for r in runs:
        if "epoch_s" not in r:
            return r
    best = dict(runs[-1])
    best["epoch_s"] = np.min([r["epoch_s"] for r in runs], axis=0).tolist()
    best["total_s"] = min(r["total_s"] for r in runs)
    best["busy_cores"] = min(runs, key=lambda r: r["total_s"]).get("busy_cores")
    best["repeats"] = sum(r.get("repeats", 1) for r in runs)
    return best


def run_repeats(lib, data, epochs, bs, repeat):
    """`repeat` fresh fits; per-epoch times and total are the element-wise minimum."""
    best = merge_runs([timed_fit(lib, data, epochs, bs) for _ in range(repeat)])
    best["epochs"] = epochs
    return best


def _limit_xla_threads(n, info):
    """XLA (jax 0.10) ignores intra_op_parallelism_threads for CPU computations and
    sizes its pool by the CPUs this process may run on: pin the process to n CPUs."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "intra_op_parallelism_threads" not in flags:  # harmless; honoured by older jaxlibs
        os.environ["XLA_FLAGS"] = (flags + " " + xla_thread_flags(n)).strip()
    info["xla_flags"] = os.environ["XLA_FLAGS"]
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        info["cpu_affinity"] = "n/a (no sched_setaffinity)"
        return
    if n < len(cpus):
        os.sched_setaffinity(0, cpus[:n])
        info["cpu_affinity"] = f"pinned to CPUs {cpus[:n]} (of {len(cpus)})"
    else:
        info["cpu_affinity"] = f"all {len(cpus)} usable CPUs (not pinned)"


def xla_thread_flags(n):
    return f"--xla_cpu_multi_thread_eigen=true intra_op_parallelism_threads={n}"


def worker_main(args):
    """Subprocess entry: --worker LIB --data NPZ --out JSON [--threads N] [--expect-dir DIR]."""
    info = {"pinned_env": _benchenv.pinned_now()}
    limiter = None
    try:
        if args.worker in ("keras", "torch"):
            if args.worker == "keras":
                os.environ["KERAS_BACKEND"] = "torch"
            import torch
            torch.set_num_threads(args.threads)
            info["torch"] = torch.__version__
            info["torch_num_threads"] = torch.get_num_threads()
            if args.worker == "keras":
                import keras
                info["keras"] = keras.__version__
                info["keras_backend"] = keras.backend.backend()
        elif args.worker == "keras-jax":
            os.environ["KERAS_BACKEND"] = "jax"  # before keras (and jax) are imported
            _limit_xla_threads(args.threads, info)
            import jax
            info["jax"] = jax.__version__
            info["jax_devices"] = [str(d) for d in jax.devices()]
            import keras
            info["keras"] = keras.__version__
            info["keras_backend"] = keras.backend.backend()
        elif args.threads is not None:  # neuraxis / numpy: library defaults unless --threads
            from threadpoolctl import threadpool_limits
            limiter = threadpool_limits(limits=args.threads)
            if args.worker.startswith("neuraxis"):
                import neuraxis
                neuraxis.set_num_threads(args.threads)
        if args.worker.startswith("neuraxis"):
            import neuraxis
            nx_dir = os.path.dirname(os.path.abspath(neuraxis.__file__))
            info["neuraxis"] = getattr(neuraxis, "__version__", "?")
            info["neuraxis_dir"] = nx_dir
            info["neuraxis_num_threads"] = neuraxis.get_num_threads()
            if args.expect_dir:
                want = os.path.join(os.path.abspath(args.expect_dir), "neuraxis")
                if os.path.realpath(nx_dir) != os.path.realpath(want):
                    raise RuntimeError(f"neuraxis was imported from {nx_dir}, not from {want}")
            try:
                import io
                buf = io.StringIO()
                neuraxis.show_config(file=buf)
                info["show_config"] = buf.getvalue().strip()
            except Exception:
                pass
        d = np.load(args.data)
        data = (d["X_tr"], d["Y_tr"], d["X_te"], d["y_te"])
        res = run_repeats(args.worker, data, args.epochs, args.batch_size, args.repeat)
        res["info"] = info
    except Exception as exc:
        res = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc(),
               "info": info}
    try:  # every pool this worker loaded, after training (threadpoolctl is optional here)
        from threadpoolctl import threadpool_info
        info["threadpools"] = _benchenv.pool_records(threadpool_info())
    except Exception as exc:
        info["threadpools_error"] = f"{type(exc).__name__}: {exc}"
    if limiter is not None:
        limiter.restore_original_limits()
    with open(args.out, "w") as f:
        json.dump(res, f, default=str)
    return 0


def run_worker(lib, tmpdir, threads, epochs, bs, repeat, timeout, baseline=None, tag=""):
    """Run one library's fits in a fresh interpreter (no other library's thread pools)."""
    out = os.path.join(tmpdir, f"{lib}{tag}.json")
    updates = {}
    cmd = [sys.executable, os.path.abspath(__file__), "--worker", lib,
           "--data", os.path.join(tmpdir, "data.npz"), "--out", out,
           "--epochs", str(epochs), "--batch-size", str(bs), "--repeat", str(repeat)]
    if lib in ("keras", "keras-jax", "torch"):
        updates.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if lib in KERAS_BACKENDS:
            updates["KERAS_BACKEND"] = KERAS_BACKENDS[lib]
        if lib == "keras-jax":
            flags = os.environ.get("XLA_FLAGS", "")
            if "intra_op_parallelism_threads" not in flags:
                updates["XLA_FLAGS"] = (flags + " " + xla_thread_flags(threads)).strip()
        cmd += ["--threads", str(threads)]
    elif threads is not None:
        cmd += ["--threads", str(threads)]
    if lib == "neuraxis-before":
        cmd += ["--expect-dir", baseline]
    env = _benchenv.child_env(updates, pythonpath_first=baseline if lib == "neuraxis-before"
                              else None)
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    if not os.path.exists(out):
        return {"error": f"worker exited with {proc.returncode}",
                "traceback": (proc.stdout + proc.stderr)[-4000:]}
    with open(out) as f:
        return json.load(f)


def run_pair(tmpdir, threads, epochs, bs, repeat, timeout, baseline):
    """neuraxis and neuraxis (before), one fresh worker per fit, taking turns
    (A B, B A, A B, ...); each column is then merged like run_repeats."""
    runs = {"neuraxis": [], "neuraxis-before": []}
    for rep in range(repeat):
        order = list(runs) if rep % 2 == 0 else list(runs)[::-1]
        for lib in order:
            runs[lib].append(run_worker(lib, tmpdir, threads, epochs, bs, 1, timeout,
                                        baseline=baseline, tag=f"-{rep}"))
    res = {}
    for lib, rs in runs.items():
        res[lib] = merge_runs(rs)
        if "epoch_s" in res[lib]:
            res[lib]["epochs"] = epochs
            res[lib]["info"] = rs[0].get("info", {})
    return res


# --------------------------------------------------------------------- data
def make_data(quick):
    from sklearn.datasets import make_classification
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    n_samples = 3000 if quick else 20000
    X, y = make_classification(n_samples=n_samples, n_features=784, n_informative=60,
                               n_classes=10, random_state=0)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=0)
    scaler = StandardScaler().fit(X_tr)
    X_tr = np.ascontiguousarray(scaler.transform(X_tr), dtype=np.float32)
    X_te = np.ascontiguousarray(scaler.transform(X_te), dtype=np.float32)
    Y_tr = np.eye(10, dtype=np.float32)[y_tr]
    return X_tr, Y_tr, X_te, y_te


# -------------------------------------------------------------------- report
def mean_later(r):
    """Mean epoch time over epochs 2..E (None with fewer than 2 epochs)."""
    e = r.get("epoch_s") or []
    return float(np.mean(e[1:])) if len(e) >= 2 else None


def epoch_ratio(res, num, den="neuraxis"):
    a, b = mean_later(res.get(num, {})), mean_later(res.get(den, {}))
    return a / b if a is not None and b else None


def fmt_ratio(r):
    return f"{r:.2f}x" if r is not None else "n/a"


def targets(res, epochs):
    """[(text, met)] for issue 3's targets (met None when a column is missing)."""
    rk, rj, rt = (epoch_ratio(res, lib) for lib in ("keras", "keras-jax", "torch"))
    return [(">= 5x faster than Keras per epoch", None if rk is None else rk >= 5),
            (f"neuraxis >= 4x faster than Keras-JAX per epoch (mean epoch 2..{epochs})",
             None if rj is None else rj >= 4),
            ("faster than the PyTorch loop per epoch", None if rt is None else rt > 1)]


def shown_libs(res):
    """Every library except 'neuraxis (before)' when --baseline was not given."""
    return [lib for lib in LIBS if lib != "neuraxis-before" or lib in res]


def print_results(res, epochs):
    from run import fmt_time

    for lib in shown_libs(res):
        r = res.get(lib, {})
        if "epoch_s" in r:
            e = r["epochs"]
            cpu = (f", {r['busy_cores']:.2f} busy cores"
                   if r.get("busy_cores") is not None else "")
            print(f"  {LIB_TITLES[lib]:<17}: epoch 1 {fmt_time(r['epoch_s'][0])}, "
                  f"mean epoch 2..{e} {fmt_time(mean_later(r))}, "
                  f"total {fmt_time(r['total_s'])} ({e} epochs{cpu}), "
                  f"test accuracy {r['accuracy']:.4f}, last train loss {r['train_loss']:.4f}")
            print(f"  {'':<17}  epochs: " + ", ".join(fmt_time(t) for t in r["epoch_s"]))
            later = r["epoch_s"][1:]
            if len(later) >= 2 and max(later) > 3 * min(later):
                print(f"  {'':<17}  WARNING: epochs 2..{e} vary {max(later) / min(later):.0f}x "
                      "(stalls, e.g. spinning thread pools on busy cores); rerun with --repeat")
        elif r.get("skipped"):
            print(f"  {LIB_TITLES[lib]:<17}: SKIPPED ({r['skipped']})")
        else:
            print(f"  {LIB_TITLES[lib]:<17}: ERROR {r.get('error', 'not run')}")
            if r.get("traceback"):
                print("    " + r["traceback"].strip().replace("\n", "\n    "))
    for num, name in RATIOS:
        if num in res:
            note = (" (neuraxis (before) / neuraxis; > 1: the current build is faster)"
                    if num == "neuraxis-before" else "")
            print(f"  {name + ' per epoch':<29}: {fmt_ratio(epoch_ratio(res, num))}{note}")
    for text, met in targets(res, epochs):
        print(f"  target {text}: {({True: 'met', False: 'NOT met', None: 'n/a'})[met]}")
    print()


def markdown_table(res, epochs):
    from run import fmt_time

    libs = shown_libs(res)
    ratio_libs = [num for num, _ in RATIOS if num != "numpy" and num in libs]
    head = ([("measure")] + [LIB_TITLES[lib] for lib in libs]
            + [dict(RATIOS)[num] for num in ratio_libs])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]

    def cells(fn):
        out = []
        for lib in libs:
            r = res.get(lib, {})
            out.append(fn(r) if "epoch_s" in r else ("skipped" if r.get("skipped") else "error"))
        return out

    def epochs_note(r):
        return "" if r["epochs"] == epochs else f" ({r['epochs']} ep)"

    def ratio_of(fn):
        nx = res.get("neuraxis", {})
        out = []
        for lib in ratio_libs:
            r = res.get(lib, {})
            a = fn(r) if "epoch_s" in r else None
            b = fn(nx) if "epoch_s" in nx else None
            out.append(fmt_ratio(a / b if a is not None and b else None))
        return out

    first = lambda r: r["epoch_s"][0]  # noqa: E731
    rows = [
        ("epoch 1 (incl. setup)", cells(lambda r: fmt_time(first(r))), ratio_of(first)),
        (f"mean epoch 2..{epochs}", cells(lambda r: fmt_time(mean_later(r)) + epochs_note(r)),
         ratio_of(mean_later)),
        (f"fit total ({epochs} epochs)",
         cells(lambda r: fmt_time(r["total_s"]) + epochs_note(r)),
         ratio_of(lambda r: r["total_s"] if r["epochs"] == epochs else None)),
        ("test accuracy", cells(lambda r: f"{100 * r['accuracy']:.1f}%" + epochs_note(r)),
         ["" for _ in ratio_libs]),
    ]
    for name, c, rt in rows:
        lines.append("| " + " | ".join([name] + c + rt) + " |")
    lines.append("")
    lines.append("| target (mean epoch 2.." + str(epochs) + ") | met? |")
    lines.append("|---|---|")
    for text, met in targets(res, epochs):
        lines.append(f"| {text} | {({True: 'yes', False: '**no**', None: 'n/a'})[met]} |")
    return "\n".join(lines)


def optional_version(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def print_worker_info(lib, wi):
    """What a worker subprocess reported about itself: versions, threads, pools."""
    title = LIB_TITLES[lib]
    parts = []
    if "neuraxis" in wi:
        parts.append(f"neuraxis {wi['neuraxis']} from {wi.get('neuraxis_dir')}, "
                     f"get_num_threads()={wi.get('neuraxis_num_threads')}")
    if "torch" in wi:
        parts.append(f"torch {wi['torch']} num_threads={wi.get('torch_num_threads')}")
    if "jax" in wi:
        parts.append(f"jax {wi['jax']} devices={','.join(wi.get('jax_devices', []))}, "
                     f"XLA_FLAGS={wi.get('xla_flags')!r}, {wi.get('cpu_affinity')}")
    if "keras" in wi:
        parts.append(f"keras {wi['keras']} backend={wi.get('keras_backend')}")
    parts.append(f"OPENBLAS_* seen: {wi.get('pinned_env')}")
    print(f"{title} subprocess: " + "; ".join(parts))
    if wi.get("show_config"):
        print("  show_config: " + "; ".join(wi["show_config"].splitlines()[2:]))
    for p in wi.get("threadpools", []):
        print(f"  threadpoolctl: {_benchenv.format_pool(p)}")
    if wi.get("threadpools_error"):
        print(f"  threadpoolctl: {wi['threadpools_error']}")


# ---------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=1,
                    help="repeat each fit, report the minimum of each epoch time")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    ap.add_argument("--threads", type=int, default=None,
                    help="neuraxis.set_num_threads(N), threadpoolctl limits, torch and XLA threads")
    ap.add_argument("--epochs", type=int, default=5, help="epochs for every library (default 5)")
    ap.add_argument("--keras-epochs", type=int, default=None,
                    help="fewer epochs for Keras (both backends) only, if it is very slow (>= 2)")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also run the neuraxis build in DIR/neuraxis (column 'neuraxis (before)')")
    ap.add_argument("--json", metavar="PATH", help="write the raw numbers to PATH")
    ap.add_argument("--worker", choices=LIBS, help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--expect-dir", help=argparse.SUPPRESS)
    ap.add_argument("--batch-size", type=int, default=32, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(args)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    if args.epochs < 2 or (args.keras_epochs is not None and args.keras_epochs < 2):
        ap.error("epochs must be >= 2 (epoch 1 is reported apart)")
    if args.baseline is not None:
        args.baseline = os.path.abspath(args.baseline)
        if not os.path.isfile(os.path.join(args.baseline, "neuraxis", "__init__.py")):
            ap.error(f"--baseline {args.baseline}: no neuraxis/ package there")

    import sklearn
    from threadpoolctl import threadpool_limits

    import run  # header helpers shared with bench/run.py
    neuraxis = run.neuraxis
    if neuraxis is None:
        print("neuraxis import error:\n" + (run.NEURAXIS_IMPORT_ERROR or ""))
        return 1

    limiter = None
    if args.threads is not None:
        if args.threads < 1:
            ap.error("--threads must be >= 1")
        limiter = threadpool_limits(limits=args.threads)
        neuraxis.set_num_threads(args.threads)
    threads = args.threads or neuraxis.get_num_threads()
    keras_epochs = args.keras_epochs or args.epochs
    bs = 32

    info = {
        "machine": run.machine_info(),
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "sklearn": sklearn.__version__, "neuraxis": neuraxis.__version__,
                     "torch": optional_version("torch"), "keras": optional_version("keras"),
                     "jax": optional_version("jax"), "jaxlib": optional_version("jaxlib")},
        "threads": run.thread_info(),
        "args": vars(args),
    }
    # header, in bench/run.py's format
    m, v, t = info["machine"], info["versions"], info["threads"]
    print("# neuraxis benchmark: Keras front (issue 3, lecture model)")
    print(f"machine : {m['cpu']}; {m['logical_cpus']} logical CPUs "
          f"({m['usable_cpus']} usable, physical cores: {m['physical_cores'] or '?'}); "
          f"{platform.system()} {platform.release()}")
    if m["loadavg_at_start"] is not None:
        load1 = m["loadavg_at_start"][0]
        busy = load1 > 0.5 * (m["usable_cpus"] or 1)
        print(f"load    : {load1:.2f} (1-min average at start)"
              + ("  WARNING: the machine is busy, timings will be noisy" if busy else ""))
    print(f"versions: python {v['python']}, numpy {v['numpy']}, scikit-learn {v['sklearn']}, "
          f"neuraxis {v['neuraxis']}, torch {v['torch'] or 'not installed'}, "
          f"keras {v['keras'] or 'not installed'}, jax {v['jax'] or 'not installed'}"
          + (f" (jaxlib {v['jaxlib']})" if v["jaxlib"] else ""))
    if args.baseline:
        print(f"baseline: neuraxis (before) from {args.baseline}/neuraxis, in its own "
              "subprocesses (PYTHONPATH first), one fit per subprocess, taking turns with "
              "neuraxis (A B, B A, ...)")
    print(f"env     : {_benchenv.describe()}")
    print(f"threads : --threads={args.threads or 'default'}; "
          f"neuraxis.get_num_threads()={t['neuraxis_num_threads']}; "
          f"torch.set_num_threads({threads}) in the Keras-torch and PyTorch subprocesses; "
          f"XLA limited to {threads} CPUs in the Keras-JAX subprocess; "
          "one fresh subprocess per library")
    print("pools   : runner (makes the data; trains nothing):")
    for p in t["threadpools"]:
        print(f"          threadpoolctl: {_benchenv.format_pool(p)}")
    print(f"mode    : {'quick' if args.quick else 'full'}, repeat={args.repeat} "
          "(minimum of each epoch time reported)")
    if keras_epochs != args.epochs:
        print(f"NOTE    : Keras runs {keras_epochs} epochs instead of {args.epochs} "
              "(--keras-epochs); its mean epoch is over epochs 2.."
              f"{keras_epochs} and its total is not comparable")
    print()

    t_start = time.perf_counter()
    X_tr, Y_tr, X_te, y_te = make_data(args.quick)
    res = {}
    tmpdir = tempfile.mkdtemp(prefix="neuraxis_keras_bench_")
    try:
        np.savez(os.path.join(tmpdir, "data.npz"), X_tr=X_tr, Y_tr=Y_tr, X_te=X_te, y_te=y_te)
        if args.baseline:
            res.update(run_pair(tmpdir, args.threads, args.epochs, bs, args.repeat,
                                timeout=900, baseline=args.baseline))
        plan = ((("neuraxis", args.epochs),) if not args.baseline else ()) + (
            ("numpy", args.epochs), ("keras", keras_epochs), ("keras-jax", keras_epochs),
            ("torch", args.epochs))
        for lib, ep in plan:
            missing = [d for d in NEEDS.get(lib, ()) if v[d] is None]
            if missing:
                res[lib] = {"skipped": f"{' and '.join(missing)} not installed; {INSTALL[lib]}"}
                print(f"note: {LIB_TITLES[lib]} skipped: {res[lib]['skipped']}")
                continue
            res[lib] = run_worker(lib, tmpdir, threads if lib in ("keras", "keras-jax", "torch")
                                  else args.threads, ep, bs, args.repeat, timeout=900)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    for lib in LIBS:
        if res.get(lib, {}).get("info"):
            info[f"{lib}_worker"] = res[lib]["info"]
            print_worker_info(lib, res[lib]["info"])

    n_tr, n_te = X_tr.shape[0], X_te.shape[0]
    print(f"\n## lecture model: make_classification {n_tr}+{n_te} x 784 float32, 10 classes; "
          f"Dense(100) LeakyReLU(0.01) Dense(10, softmax); adam, categorical_crossentropy; "
          f"batch 32, {args.epochs} epochs, shuffle")
    print_results(res, args.epochs)

    elapsed = time.perf_counter() - t_start
    print(f"total benchmark time: {elapsed:.1f} s\n")
    print(markdown_table(res, args.epochs))

    if args.json:
        out = {"info": info, "results": res, "elapsed_s": elapsed,
               "mean_epoch_ratios": {name: epoch_ratio(res, num)
                                     for num, name in RATIOS if num in res},
               "targets": {text: met for text, met in targets(res, args.epochs)}}
        _benchenv.write_json(args.json, out)

    if limiter is not None:
        limiter.restore_original_limits()
    return 0


if __name__ == "__main__":
    sys.exit(main())
