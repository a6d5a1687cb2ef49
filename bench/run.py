"""Benchmark neuraxis's MLPClassifier against a NumPy reference and scikit-learn.

    python bench/run.py --workload all            # full run (a few minutes on 2 cores)
    python bench/run.py --quick --workload all    # smoke run, smaller sizes
    python bench/run.py --workload w1 --repeat 3 --threads 2 --json bench/results/w1.json
    python bench/run.py --workload all --baseline /path/to/old  # + "neuraxis (before)" column

neuraxis runs in a worker subprocess of this script (one per neuraxis build: the
one importable here and, with --baseline DIR, the one in DIR/neuraxis), fed the
same data and parameters; the NumPy reference and scikit-learn run in this
process. With --repeat N the neuraxis builds take turns (A B, B A, A B, ...).
Every number in one report comes from the same invocation and the same data;
the ratios compare columns of the same run. See bench/README.md for the workloads.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import _benchenv  # noqa: E402  (standard library only)

# OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are read when OpenBLAS loads: unset them
# before NumPy (or neuraxis) is imported, re-exec'ing if that is already too late.
_benchenv.scrub_environ()

if __name__ == "__main__" and "--worker" in sys.argv:
    # Worker: replies go to the original stdout; anything the libraries print
    # (to fd 1 or sys.stdout) goes to stderr instead, so it cannot corrupt them.
    _PROTO = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
else:
    _PROTO = None

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from sklearn.datasets import make_classification  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkMLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from numpy_mlp import NumpyMLPClassifier  # noqa: E402

try:
    import neuraxis
except Exception:  # pragma: no cover - reported in the header
    neuraxis = None
    NEURAXIS_IMPORT_ERROR = traceback.format_exc()
else:
    NEURAXIS_IMPORT_ERROR = None

try:
    from neuraxis.neural_network import MLPClassifier as NxMLPClassifier
except Exception:
    NxMLPClassifier = None
    NEURAXIS_IMPORT_ERROR = NEURAXIS_IMPORT_ERROR or traceback.format_exc()

# "neuraxis" and "neuraxis-before" run in worker subprocesses, the others in this process.
LIBS = ("neuraxis", "neuraxis-before", "numpy", "sklearn")
NX_VARIANTS = ("neuraxis", "neuraxis-before")
LIB_TITLES = {"neuraxis": "neuraxis", "neuraxis-before": "neuraxis (before)",
              "numpy": "NumPy ref", "sklearn": "scikit-learn"}
# Pause when the neuraxis builds take turns, so one's spinning BLAS/OpenMP threads
# (OpenBLAS spins ~0.1 s after a call) have gone to sleep before the other is timed.
SWITCH_PAUSE_S = 0.2


def _quiet():
    """Context that silences convergence warnings (sklearn's and neuraxis's own)."""
    ctx = warnings.catch_warnings()
    ctx.__enter__()
    warnings.simplefilter("ignore", ConvergenceWarning)
    warnings.filterwarnings("ignore", message=r".*(Maximum iterations|converge).*")
    return ctx


def make_estimator(lib, **params):
    if lib == "neuraxis":
        if NxMLPClassifier is None:
            raise RuntimeError("neuraxis.neural_network.MLPClassifier could not be imported:\n"
                               + (NEURAXIS_IMPORT_ERROR or ""))
        return NxMLPClassifier(**params)
    if lib == "sklearn":
        return SkMLPClassifier(**params)
    keep = ("hidden_layer_sizes", "alpha", "batch_size", "learning_rate_init", "max_iter",
            "shuffle", "random_state", "tol", "beta_1", "beta_2", "epsilon", "n_iter_no_change")
    unsupported = {k: v for k, v in params.items() if k not in keep}
    for k, v in unsupported.items():
        if (k, v) not in (("activation", "relu"), ("solver", "adam")):
            raise ValueError(f"NumPy reference does not support {k}={v!r}")
    return NumpyMLPClassifier(**{k: v for k, v in params.items() if k in keep})


# --------------------------------------------------------------------- header
def machine_info():
    cpu = platform.processor() or platform.machine()
    physical = None
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        cores = set()
        for block in text.split("\n\n"):
            fields = dict((k.strip(), v.strip()) for k, v in
                          (line.split(":", 1) for line in block.splitlines() if ":" in line))
            if "core id" in fields:
                cores.add((fields.get("physical id"), fields["core id"]))
        physical = len(cores) or None
    except OSError:
        pass
    logical = os.cpu_count()
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = logical
    try:
        load = os.getloadavg()
    except (AttributeError, OSError):
        load = None
    return {"cpu": cpu, "logical_cpus": logical, "usable_cpus": usable, "physical_cores": physical,
            "loadavg_at_start": load}


def thread_info():
    """neuraxis's thread count and every pool threadpoolctl sees in this process."""
    return {
        "neuraxis_num_threads": neuraxis.get_num_threads() if neuraxis is not None else None,
        "threadpools": _benchenv.pool_records(threadpool_info()),
        "env": {"unset": _benchenv.removed_by_run(), "now": _benchenv.pinned_now()},
    }


def neuraxis_config(nx):
    """neuraxis.show_config()'s text ('' for a build without it)."""
    buf = io.StringIO()
    try:
        nx.show_config(file=buf)
    except Exception:
        return ""
    return buf.getvalue().strip()


def print_pools(pools, indent="          "):
    for p in pools:
        print(f"{indent}threadpoolctl: {_benchenv.format_pool(p)}")


def print_worker_info(title, w, indent="          "):
    """Header lines for one worker's hello (see worker_main)."""
    if w.get("error"):
        print(f"{indent}{title} worker: ERROR {w['error']}")
        return
    print(f"{indent}{title} worker: neuraxis {w.get('neuraxis_version')} from "
          f"{w.get('neuraxis_dir')}; get_num_threads()={w.get('neuraxis_num_threads')}; "
          f"OPENBLAS_* seen: {w.get('pinned_env')}")
    cfg = w.get("show_config")
    if cfg:
        print(f"{indent}  show_config: " + "; ".join(cfg.splitlines()[2:]))
    print_pools(w.get("threadpools", []), indent + "  ")


def print_header(args, info):
    m = info["machine"]
    print("# neuraxis benchmark")
    print(f"machine : {m['cpu']}; {m['logical_cpus']} logical CPUs "
          f"({m['usable_cpus']} usable, physical cores: {m['physical_cores'] or '?'}); "
          f"{platform.system()} {platform.release()}")
    if m["loadavg_at_start"] is not None:
        load1 = m["loadavg_at_start"][0]
        busy = load1 > 0.5 * (m["usable_cpus"] or 1)
        print(f"load    : {load1:.2f} (1-min average at start)"
              + ("  WARNING: the machine is busy, timings will be noisy" if busy else ""))
    v = info["versions"]
    print(f"versions: python {v['python']}, numpy {v['numpy']}, scikit-learn {v['sklearn']}, "
          f"neuraxis {v['neuraxis']}")
    print(f"env     : {_benchenv.describe()}")
    t = info["threads"]
    print(f"threads : --threads={args.threads or 'default'}; "
          f"neuraxis.get_num_threads()={t['neuraxis_num_threads']} (runner)")
    print("pools   : runner (NumPy ref, scikit-learn; its neuraxis only for this header):")
    print_pools(t["threadpools"])
    for name, w in info.get("workers", {}).items():
        print_worker_info(LIB_TITLES[name], w)
    if NEURAXIS_IMPORT_ERROR:
        print("neuraxis import error:\n" + NEURAXIS_IMPORT_ERROR)
    nx = [LIB_TITLES[n] for n in info.get("workers", {})]
    print(f"mode    : {'quick' if args.quick else 'full'}, repeat={args.repeat} "
          f"(minimum reported); {' and '.join(nx)} in worker subprocesses"
          + (", taking turns (A B, B A, ...) each repeat" if len(nx) > 1 else ""))
    print()


# ------------------------------------------------------------------ workloads
def w1_data(quick):
    n_samples = 3000 if quick else 20000
    X, y = make_classification(n_samples=n_samples, n_features=784, n_informative=60,
                               n_classes=10, random_state=0)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=0)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te


def w1_params(quick):
    return dict(hidden_layer_sizes=(100,), activation="relu", solver="adam", batch_size=200,
                max_iter=5 if quick else 20, tol=0.0, n_iter_no_change=1000, random_state=0)


def w2_data():
    X, y = make_classification(n_samples=1000, n_features=20, n_classes=2, random_state=42)
    return train_test_split(X, y, test_size=0.2, random_state=42)  # X_tr, X_te, y_tr, y_te


W2_PARAMS = dict(hidden_layer_sizes=(100, 50), activation="relu", max_iter=300, random_state=42)


def predict_sizes(quick):
    """(one-row calls, rows of the big batch, big-batch calls)."""
    return (200, 2000, 5) if quick else (2000, 10000, 15)


def predict_inputs(X_te, X_tr, n_rows):
    X_one = np.ascontiguousarray(X_te[:1])
    X_big = np.ascontiguousarray(np.concatenate([X_te, X_tr])[:n_rows])
    if X_big.shape[0] < n_rows:
        X_big = np.ascontiguousarray(np.resize(X_big, (n_rows, X_big.shape[1])))
    return X_one, X_big


def fit_once(lib, params, X_tr, y_tr, X_te, y_te):
    """One fit: wall time, test accuracy, n_iter_; and the fitted estimator."""
    est = make_estimator(lib, **params)
    ctx = _quiet()
    try:
        t0 = time.perf_counter()
        est.fit(X_tr, y_tr)
        dt = time.perf_counter() - t0
    finally:
        ctx.__exit__(None, None, None)
    acc = float(np.mean(est.predict(X_te) == y_te))
    return {"time_s": dt, "accuracy": acc, "n_iter": int(getattr(est, "n_iter_", -1))}, est


def median_ns(fn, n_calls, warmup=20):
    for _ in range(warmup):
        fn()
    samples = np.empty(n_calls, dtype=np.int64)
    for i in range(n_calls):
        t0 = time.perf_counter_ns()
        fn()
        samples[i] = time.perf_counter_ns() - t0
    return float(statistics.median(samples.tolist()))


def predict_once(est, X_one, X_big, X_te, y_te, n_one, n_batch_calls):
    """One repeat of the predict measures: ({one-row}, {big batch}) medians per call."""
    t_one = median_ns(lambda: est.predict(X_one), n_one)
    t_big = median_ns(lambda: est.predict(X_big), n_batch_calls, warmup=2)
    acc = float(np.mean(est.predict(X_te) == y_te))
    return ({"time_s": t_one * 1e-9, "accuracy": acc, "calls": n_one},
            {"time_s": t_big * 1e-9, "accuracy": acc, "calls": n_batch_calls,
             "rows": X_big.shape[0]})


def best_of(runs):
    """Merge repeats: minimum time, the other fields from the last run; first error wins."""
    for r in runs:
        if "time_s" not in r:
            return r
    best = dict(runs[-1])
    best["time_s"] = min(r["time_s"] for r in runs)
    best["repeats"] = len(runs)
    return best


def _error(exc):
    return {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}


# --------------------------------------------------------- neuraxis workers
def _params_from_json(params):
    return {k: tuple(v) if isinstance(v, list) else v for k, v in params.items()}


def worker_main(args):
    """Worker subprocess: --worker --data NPZ [--threads N] [--expect-dir DIR].

    Prints one JSON line (hello: where neuraxis came from, its threads and pools),
    then answers one JSON line per JSON command read from stdin:
    {"op": "fit", "workload": "w1"|"w2", "dtype": ..., "params": {...}, "keep": bool},
    {"op": "predict", "n_one": .., "n_rows": .., "n_batch_calls": ..} (on the kept model),
    {"op": "quit"}.
    """
    def send(obj):
        _PROTO.write(json.dumps(obj, default=str) + "\n")
        _PROTO.flush()

    hello = {"pinned_env": _benchenv.pinned_now(), "pid": os.getpid(),
             "pythonpath": os.environ.get("PYTHONPATH")}
    limiter = None
    try:
        if neuraxis is None or NxMLPClassifier is None:
            raise RuntimeError("neuraxis could not be imported:\n" + (NEURAXIS_IMPORT_ERROR or ""))
        nx_dir = os.path.dirname(os.path.abspath(neuraxis.__file__))
        hello.update(neuraxis_version=getattr(neuraxis, "__version__", "?"), neuraxis_dir=nx_dir)
        if args.expect_dir:
            want = os.path.join(os.path.abspath(args.expect_dir), "neuraxis")
            if os.path.realpath(nx_dir) != os.path.realpath(want):
                raise RuntimeError(f"neuraxis was imported from {nx_dir}, not from {want}")
        if args.threads is not None:
            limiter = threadpool_limits(limits=args.threads)
            neuraxis.set_num_threads(args.threads)
        hello.update(neuraxis_num_threads=neuraxis.get_num_threads(),
                     show_config=neuraxis_config(neuraxis),
                     threadpools=_benchenv.pool_records(threadpool_info()))
    except Exception as exc:
        hello.update(_error(exc))
    send(hello)
    if "error" in hello:
        return 1

    data = np.load(args.data)
    arrays, model, inputs = {}, None, {}

    def get(workload, dtype):
        key = (workload, dtype)
        if key not in arrays:  # the same casts as the runner's
            arrays[key] = tuple(data[f"{workload}_{k}"].astype(dtype) if k.startswith("X")
                                else data[f"{workload}_{k}"]
                                for k in ("X_tr", "y_tr", "X_te", "y_te"))
        return arrays[key]

    for line in iter(sys.stdin.readline, ""):
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        try:
            if cmd["op"] == "fit":
                X_tr, y_tr, X_te, y_te = get(cmd["workload"], cmd["dtype"])
                res, est = fit_once("neuraxis", _params_from_json(cmd["params"]),
                                    X_tr, y_tr, X_te, y_te)
                if cmd.get("keep"):
                    model, inputs = est, {}
                send(res)
            elif cmd["op"] == "predict":
                if model is None:
                    raise RuntimeError("no fitted W1 float32 model")
                X_tr, y_tr, X_te, y_te = get("w1", "float32")
                if cmd["n_rows"] not in inputs:
                    inputs[cmd["n_rows"]] = predict_inputs(X_te, X_tr, cmd["n_rows"])
                X_one, X_big = inputs[cmd["n_rows"]]
                one, big = predict_once(model, X_one, X_big, X_te, y_te, cmd["n_one"],
                                        cmd["n_batch_calls"])
                send({"one": one, "big": big})
            else:
                raise ValueError(f"unknown op {cmd['op']!r}")
        except Exception as exc:
            send(_error(exc))
    if limiter is not None:
        limiter.restore_original_limits()
    return 0


class NxWorker:
    """One neuraxis build in a worker subprocess of this script (see worker_main)."""

    def __init__(self, name, data_path, threads, baseline_dir=None):
        self.name = name
        env = _benchenv.child_env(pythonpath_first=baseline_dir)
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", "--data", data_path]
        if threads is not None:
            cmd += ["--threads", str(threads)]
        if baseline_dir:
            cmd += ["--expect-dir", baseline_dir]
        # stderr is inherited: a worker's tracebacks and warnings show up in the terminal
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     env=env, text=True, bufsize=1)
        self.hello = None

    def read_hello(self):
        self.hello = self._read()
        return self.hello

    @property
    def ok(self):
        return self.hello is not None and "error" not in self.hello and self.proc.poll() is None

    def _read(self):
        line = self.proc.stdout.readline()
        if not line:
            rc = self.proc.wait()
            return {"error": f"{LIB_TITLES[self.name]} worker exited with {rc} (see stderr)"}
        return json.loads(line)

    def call(self, **cmd):
        if not self.ok:
            return {"error": (self.hello or {}).get("error", "worker not running")}
        try:
            self.proc.stdin.write(json.dumps(cmd) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            self.hello = {"error": f"worker pipe closed: {exc}"}
            return dict(self.hello)
        res = self._read()
        if "error" in res and self.proc.poll() is not None:
            self.hello = res
        return res

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=30)
            except Exception:
                self.proc.kill()
                self.proc.wait()


def take_turns(workers, repeat):
    """(rep, worker) in the order A B, B A, A B, ... so neither build always goes first."""
    names = list(workers)
    for rep in range(repeat):
        for name in (names if rep % 2 == 0 else names[::-1]):
            yield rep, workers[name]


def _pause(workers):
    if len(workers) > 1:
        time.sleep(SWITCH_PAUSE_S)


def run_fit_workload(name, workload, dtype, params, data, workers, repeat, keep_models=False):
    """Fit every library `repeat` times on `data`; best time per library.

    The neuraxis builds fit in their workers, taking turns; NumPy ref and
    scikit-learn in this process. With keep_models the last fits are kept for predict.
    """
    X_tr, y_tr, X_te, y_te = data
    res, models = {}, {}
    runs = {n: [] for n in workers}
    for _, w in take_turns(workers, repeat):
        _pause(workers)
        runs[w.name].append(w.call(op="fit", workload=workload, dtype=dtype, params=params,
                                   keep=keep_models))
    _pause(workers)
    for n in workers:
        res[n] = best_of(runs[n])
    for lib in ("numpy", "sklearn"):
        try:
            lib_runs = []
            for _ in range(repeat):
                r, models[lib] = fit_once(lib, params, X_tr, y_tr, X_te, y_te)
                lib_runs.append(r)
            res[lib] = best_of(lib_runs)
        except Exception as exc:
            res[lib] = _error(exc)
    for lib in list(workers) + ["numpy", "sklearn"]:
        if "error" in res[lib]:
            print(f"  [{name}] {LIB_TITLES[lib]} FAILED: {res[lib]['error']}\n"
                  f"{res[lib].get('traceback', '')}")
    return res, (models if keep_models else None)


def run_predict(models, workers, X_te, X_tr, y_te, quick, repeat):
    n_one, n_rows, n_batch_calls = predict_sizes(quick)
    X_one, X_big = predict_inputs(X_te, X_tr, n_rows)
    runs = {n: ([], []) for n in workers}
    for _, w in take_turns(workers, repeat):
        _pause(workers)
        r = w.call(op="predict", n_one=n_one, n_rows=n_rows, n_batch_calls=n_batch_calls)
        runs[w.name][0].append(r.get("one", r))
        runs[w.name][1].append(r.get("big", r))
    _pause(workers)
    one = {n: best_of(runs[n][0]) for n in workers}
    big = {n: best_of(runs[n][1]) for n in workers}
    for lib in ("numpy", "sklearn"):
        if lib not in models:
            one[lib] = big[lib] = {"error": "no fitted W1 float32 model"}
            continue
        try:
            reps = [predict_once(models[lib], X_one, X_big, X_te, y_te, n_one, n_batch_calls)
                    for _ in range(repeat)]
            one[lib] = best_of([r[0] for r in reps])
            big[lib] = best_of([r[1] for r in reps])
        except Exception as exc:
            one[lib] = big[lib] = _error(exc)
    for lib in one:
        if "error" in one[lib]:
            print(f"  [predict] {LIB_TITLES[lib]} FAILED: {one[lib]['error']}\n"
                  f"{one[lib].get('traceback', '')}")
    return one, big


# -------------------------------------------------------------------- report
def fmt_time(s):
    if s is None:
        return "n/a"
    if s < 1e-3:
        return f"{s * 1e6:.1f} us"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.2f} s"


def fmt_ratio(r):
    return f"{r:.2f}x" if r is not None else "n/a"


def ratio(res, num, den="neuraxis"):
    a, b = res.get(num, {}), res.get(den, {})
    if "time_s" in a and "time_s" in b and b["time_s"] > 0:
        return a["time_s"] / b["time_s"]
    return None


def evaluate(target, res):
    """(target text, met: True/False/None)."""
    kind = target["kind"]
    nx = res.get("neuraxis", {})
    if "time_s" not in nx:
        return target["text"], None
    if kind == "speedup":
        r = ratio(res, "sklearn")
        ok = r is not None and r >= target["value"]
        if target.get("acc_points") is not None and "accuracy" in res.get("sklearn", {}):
            ok = ok and abs(nx["accuracy"] - res["sklearn"]["accuracy"]) * 100 <= target["acc_points"]
        return target["text"], ok
    if kind == "max_time":
        return target["text"], nx["time_s"] <= target["value"]
    return target["text"], None


def shown_libs(res):
    return [lib for lib in LIBS if lib != "neuraxis-before" or lib in res]


def print_workload(title, res, extra=()):
    print(f"## {title}")
    for lib in shown_libs(res):
        r = res.get(lib, {})
        if "time_s" in r:
            parts = [f"time {fmt_time(r['time_s'])}", f"test accuracy {r['accuracy']:.4f}"]
            for key in extra:
                if key in r:
                    parts.append(f"{key} {r[key]}")
            print(f"  {LIB_TITLES[lib]:<17}: " + ", ".join(parts))
        else:
            print(f"  {LIB_TITLES[lib]:<17}: ERROR {r.get('error', 'not run')}")
    for num in ("sklearn", "numpy"):
        print(f"  {num}/neuraxis : {fmt_ratio(ratio(res, num))}")
    if "neuraxis-before" in res:
        print(f"  before/after : {fmt_ratio(ratio(res, 'neuraxis-before'))} "
              "(neuraxis (before) time / neuraxis time; > 1: the current build is faster)")
    print()


def cell(r, show_iter=False):
    if "time_s" not in r:
        return "error"
    s = f"{fmt_time(r['time_s'])} (acc {100 * r['accuracy']:.1f}%"
    if show_iter:
        s += f", {r['n_iter']} it"
    return s + ")"


def markdown_table(rows):
    with_before = any("neuraxis-before" in res for _, res, _, _ in rows)
    libs = [lib for lib in LIBS if with_before or lib != "neuraxis-before"]
    head = (["workload"] + [LIB_TITLES[lib] for lib in libs] + ["sklearn/neuraxis"]
            + (["before/after"] if with_before else []) + ["target", "met?"])
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for name, res, target, show_iter in rows:
        text, met = evaluate(target, res)
        met_s = {True: "yes", False: "**no**", None: "n/a"}[met]
        ratios = [fmt_ratio(ratio(res, "sklearn"))]
        if with_before:
            ratios.append(fmt_ratio(ratio(res, "neuraxis-before")))
        lines.append("| " + " | ".join(
            [name] + [cell(res.get(lib, {}), show_iter) for lib in libs] + ratios
            + [text, met_s]) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", choices=("w1", "w2", "predict", "all"), default="all")
    ap.add_argument("--repeat", type=int, default=1, help="repeat each measure, report the minimum")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    ap.add_argument("--threads", type=int, default=None,
                    help="neuraxis.set_num_threads(N) and threadpoolctl limits for all libraries")
    ap.add_argument("--baseline", metavar="DIR",
                    help="also run the neuraxis build in DIR/neuraxis (column 'neuraxis (before)')")
    ap.add_argument("--json", metavar="PATH", help="write the raw numbers to PATH")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--expect-dir", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        return worker_main(args)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")
    if args.threads is not None and args.threads < 1:
        ap.error("--threads must be >= 1")
    if args.baseline is not None:
        args.baseline = os.path.abspath(args.baseline)
        if not os.path.isfile(os.path.join(args.baseline, "neuraxis", "__init__.py")):
            ap.error(f"--baseline {args.baseline}: no neuraxis/ package there")

    limiter = None
    if args.threads is not None:
        limiter = threadpool_limits(limits=args.threads)
        if neuraxis is not None:
            neuraxis.set_num_threads(args.threads)

    w = args.workload
    tmpdir = tempfile.mkdtemp(prefix="neuraxis_bench_")
    workers = {}
    try:
        # the data every library gets; the workers read the same arrays from an .npz
        arrays = {}
        if w in ("w1", "predict", "all"):
            w1 = w1_data(args.quick)
            arrays.update({f"w1_{k}": a for k, a in zip(("X_tr", "X_te", "y_tr", "y_te"), w1)})
        if w in ("w2", "all"):
            w2 = w2_data()
            arrays.update({f"w2_{k}": a for k, a in zip(("X_tr", "X_te", "y_tr", "y_te"), w2)})
        data_path = os.path.join(tmpdir, "data.npz")
        np.savez(data_path, **arrays)

        workers["neuraxis"] = NxWorker("neuraxis", data_path, args.threads)
        if args.baseline:
            workers["neuraxis-before"] = NxWorker("neuraxis-before", data_path, args.threads,
                                                  baseline_dir=args.baseline)
        for wk in workers.values():
            wk.read_hello()

        info = {
            "machine": machine_info(),
            "versions": {"python": platform.python_version(), "numpy": np.__version__,
                         "sklearn": sklearn.__version__,
                         "neuraxis": getattr(neuraxis, "__version__", "not importable")},
            "threads": thread_info(),
            "workers": {n: wk.hello for n, wk in workers.items()},
            "args": vars(args),
        }
        print_header(args, info)
        results, rows = run_workloads(args, arrays, workers)
    finally:
        for wk in workers.values():
            wk.close()
        shutil.rmtree(tmpdir, ignore_errors=True)

    elapsed = results.pop("_elapsed_s")
    print(f"total benchmark time: {elapsed:.1f} s\n")
    print(markdown_table(rows))

    if args.json:
        out = {"info": info, "results": results, "elapsed_s": elapsed,
               "targets": {name: {"target": t["text"], "met": evaluate(t, res)[1]}
                           for name, res, t, _ in rows}}
        _benchenv.write_json(args.json, out)

    if limiter is not None:
        limiter.restore_original_limits()
    return 0


def run_workloads(args, arrays, workers):
    results, rows = {}, []
    w = args.workload
    t_start = time.perf_counter()

    if w in ("w1", "predict", "all"):
        X_tr, X_te, y_tr, y_te = (arrays[f"w1_{k}"] for k in ("X_tr", "X_te", "y_tr", "y_te"))
        params = w1_params(args.quick)
        n_tr = X_tr.shape[0]
        for dtype in (np.float32, np.float64):
            if w == "predict" and dtype is np.float64:
                continue
            dname = np.dtype(dtype).name
            Xtr, Xte = X_tr.astype(dtype), X_te.astype(dtype)
            res, models = run_fit_workload(f"w1 {dname}", "w1", dname, params,
                                           (Xtr, y_tr, Xte, y_te), workers, args.repeat,
                                           keep_models=dtype is np.float32)
            title = (f"W1 {dname}: make_classification {n_tr}+{Xte.shape[0]} x 784, 10 classes, "
                     f"(100,) relu adam, {params['max_iter']} epochs")
            if w != "predict":
                print_workload(title, res, extra=("n_iter",))
                results[f"w1_{dname}"] = res
                tgt = 4 if dtype is np.float32 else 3
                rows.append((f"W1 fit {dname}", res,
                             {"kind": "speedup", "value": tgt, "acc_points": 1,
                              "text": f">= {tgt}x sklearn, acc within 1 pt"}, False))
            if dtype is np.float32 and w in ("predict", "all"):
                one, big = run_predict(models, workers, Xte, Xtr, y_te, args.quick, args.repeat)
                n_rows = predict_sizes(args.quick)[1]
                print_workload("predict, W1 float32 model: one row (median per call)", one)
                print_workload(f"predict, W1 float32 model: {n_rows} rows (median per call)", big)
                results["predict_1"], results["predict_batch"] = one, big
                rows.append(("predict 1 row", one,
                             {"kind": "max_time", "value": 10e-6, "text": "neuraxis <= 10 us"}, False))
                rows.append((f"predict {n_rows} rows", big,
                             {"kind": "speedup", "value": 2, "text": ">= 2x sklearn"}, False))

    if w in ("w2", "all"):
        data = tuple(arrays[f"w2_{k}"] for k in ("X_tr", "y_tr", "X_te", "y_te"))
        res, _ = run_fit_workload("w2", "w2", "float64", W2_PARAMS, data, workers, args.repeat)
        print_workload("W2: lecture example, make_classification 800+200 x 20, 2 classes, "
                       "(100, 50) relu adam, to convergence", res, extra=("n_iter",))
        results["w2"] = res
        rows.append(("W2 fit (lecture)", res,
                     {"kind": "speedup", "value": 10, "text": ">= 10x sklearn"}, True))

    # sort rows in a stable, readable order
    order = ["W1 fit float32", "W1 fit float64", "W2 fit (lecture)"]
    rows.sort(key=lambda r: order.index(r[0]) if r[0] in order else len(order))
    results["_elapsed_s"] = time.perf_counter() - t_start
    return results, rows


if __name__ == "__main__":
    sys.exit(main())
