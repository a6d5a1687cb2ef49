"""Benchmark neuraxis's MLPClassifier against a NumPy reference and scikit-learn.

    python bench/run.py --workload all            # full run (a few minutes on 2 cores)
    python bench/run.py --quick --workload all    # smoke run, smaller sizes
    python bench/run.py --workload w1 --repeat 3 --threads 2 --json bench/results/w1.json

Every number in one report comes from the same process and the same data; the
ratios compare columns of the same run. See bench/README.md for the workloads.
"""
import argparse
import json
import os
import platform
import statistics
import sys
import time
import traceback
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

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

LIBS = ("neuraxis", "numpy", "sklearn")
LIB_TITLES = {"neuraxis": "neuraxis", "numpy": "NumPy ref", "sklearn": "scikit-learn"}


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
    pools = []
    for p in threadpool_info():
        pools.append({
            "user_api": p.get("user_api"),
            "internal_api": p.get("internal_api"),
            "version": p.get("version"),
            "num_threads": p.get("num_threads"),
            "threading_layer": p.get("threading_layer"),
            "library": os.path.basename(p.get("filepath", "")),
        })
    return {
        "neuraxis_num_threads": neuraxis.get_num_threads() if neuraxis is not None else None,
        "threadpools": pools,
    }


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
    t = info["threads"]
    print(f"threads : --threads={args.threads or 'default'}; "
          f"neuraxis.get_num_threads()={t['neuraxis_num_threads']}")
    for p in t["threadpools"]:
        print(f"          threadpoolctl: {p['internal_api']} {p['version'] or ''} "
              f"({p['user_api']}, {p['library']}) num_threads={p['num_threads']}"
              + (f" layer={p['threading_layer']}" if p["threading_layer"] else ""))
    if NEURAXIS_IMPORT_ERROR:
        print("neuraxis import error:\n" + NEURAXIS_IMPORT_ERROR)
    print(f"mode    : {'quick' if args.quick else 'full'}, repeat={args.repeat} (minimum reported)")
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


def time_fit(lib, params, X_tr, y_tr, X_te, y_te, repeat):
    """Best-of-`repeat` fit wall time, test accuracy and n_iter_ of the last fit."""
    best, est = np.inf, None
    for _ in range(repeat):
        est = make_estimator(lib, **params)
        ctx = _quiet()
        try:
            t0 = time.perf_counter()
            est.fit(X_tr, y_tr)
            dt = time.perf_counter() - t0
        finally:
            ctx.__exit__(None, None, None)
        best = min(best, dt)
    acc = float(np.mean(est.predict(X_te) == y_te))
    return {"time_s": best, "accuracy": acc, "n_iter": int(getattr(est, "n_iter_", -1))}, est


def run_fit_workload(name, params, X_tr, y_tr, X_te, y_te, repeat, keep_models=False):
    res, models = {}, {}
    for lib in LIBS:
        try:
            res[lib], models[lib] = time_fit(lib, params, X_tr, y_tr, X_te, y_te, repeat)
        except Exception as exc:
            res[lib] = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
            print(f"  [{name}] {lib} FAILED:\n{res[lib]['traceback']}")
    return res, (models if keep_models else None)


def median_ns(fn, n_calls, warmup=20):
    for _ in range(warmup):
        fn()
    samples = np.empty(n_calls, dtype=np.int64)
    for i in range(n_calls):
        t0 = time.perf_counter_ns()
        fn()
        samples[i] = time.perf_counter_ns() - t0
    return float(statistics.median(samples.tolist()))


def run_predict(models, X_te, X_tr, y_te, quick, repeat):
    n_one = 200 if quick else 2000
    n_rows = 2000 if quick else 10000
    n_batch_calls = 5 if quick else 15
    X_one = np.ascontiguousarray(X_te[:1])
    X_big = np.ascontiguousarray(np.concatenate([X_te, X_tr])[:n_rows])
    if X_big.shape[0] < n_rows:
        X_big = np.ascontiguousarray(np.resize(X_big, (n_rows, X_big.shape[1])))
    one, big = {}, {}
    for lib in LIBS:
        if lib not in models:
            one[lib] = big[lib] = {"error": "no fitted W1 float32 model"}
            continue
        est = models[lib]
        try:
            t_one = min(median_ns(lambda: est.predict(X_one), n_one) for _ in range(repeat))
            t_big = min(median_ns(lambda: est.predict(X_big), n_batch_calls, warmup=2)
                        for _ in range(repeat))
            acc = float(np.mean(est.predict(X_te) == y_te))
            one[lib] = {"time_s": t_one * 1e-9, "accuracy": acc, "calls": n_one}
            big[lib] = {"time_s": t_big * 1e-9, "accuracy": acc, "calls": n_batch_calls,
                        "rows": n_rows}
        except Exception as exc:
            one[lib] = big[lib] = {"error": f"{type(exc).__name__}: {exc}",
                                   "traceback": traceback.format_exc()}
            print(f"  [predict] {lib} FAILED:\n{one[lib]['traceback']}")
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


def print_workload(title, res, extra=()):
    print(f"## {title}")
    for lib in LIBS:
        r = res.get(lib, {})
        if "time_s" in r:
            parts = [f"time {fmt_time(r['time_s'])}", f"test accuracy {r['accuracy']:.4f}"]
            for key in extra:
                if key in r:
                    parts.append(f"{key} {r[key]}")
            print(f"  {LIB_TITLES[lib]:<13}: " + ", ".join(parts))
        else:
            print(f"  {LIB_TITLES[lib]:<13}: ERROR {r.get('error', 'not run')}")
    for num in ("sklearn", "numpy"):
        r = ratio(res, num)
        print(f"  {num}/neuraxis : {f'{r:.2f}x' if r is not None else 'n/a'}")
    print()


def cell(r, show_iter=False):
    if "time_s" not in r:
        return "error"
    s = f"{fmt_time(r['time_s'])} (acc {100 * r['accuracy']:.1f}%"
    if show_iter:
        s += f", {r['n_iter']} it"
    return s + ")"


def markdown_table(rows):
    head = ["workload", "neuraxis", "NumPy ref", "scikit-learn", "sklearn/neuraxis", "target", "met?"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for name, res, target, show_iter in rows:
        r = ratio(res, "sklearn")
        text, met = evaluate(target, res)
        met_s = {True: "yes", False: "**no**", None: "n/a"}[met]
        lines.append("| " + " | ".join([
            name, cell(res.get("neuraxis", {}), show_iter), cell(res.get("numpy", {}), show_iter),
            cell(res.get("sklearn", {}), show_iter), f"{r:.2f}x" if r is not None else "n/a",
            text, met_s]) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------- main
def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workload", choices=("w1", "w2", "predict", "all"), default="all")
    ap.add_argument("--repeat", type=int, default=1, help="repeat each measure, report the minimum")
    ap.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    ap.add_argument("--threads", type=int, default=None,
                    help="neuraxis.set_num_threads(N) and threadpoolctl limits for all libraries")
    ap.add_argument("--json", metavar="PATH", help="write the raw numbers to PATH")
    args = ap.parse_args(argv)
    if args.repeat < 1:
        ap.error("--repeat must be >= 1")

    limiter = None
    if args.threads is not None:
        if args.threads < 1:
            ap.error("--threads must be >= 1")
        limiter = threadpool_limits(limits=args.threads)
        if neuraxis is not None:
            neuraxis.set_num_threads(args.threads)

    info = {
        "machine": machine_info(),
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "sklearn": sklearn.__version__,
                     "neuraxis": getattr(neuraxis, "__version__", "not importable")},
        "threads": thread_info(),
        "args": vars(args),
    }
    print_header(args, info)

    results, rows = {}, []
    w = args.workload
    t_start = time.perf_counter()

    if w in ("w1", "predict", "all"):
        X_tr, X_te, y_tr, y_te = w1_data(args.quick)
        params = w1_params(args.quick)
        n_tr = X_tr.shape[0]
        for dtype in (np.float32, np.float64):
            if w == "predict" and dtype is np.float64:
                continue
            dname = np.dtype(dtype).name
            Xtr, Xte = X_tr.astype(dtype), X_te.astype(dtype)
            res, models = run_fit_workload(f"w1 {dname}", params, Xtr, y_tr, Xte, y_te,
                                           args.repeat, keep_models=dtype is np.float32)
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
                one, big = run_predict(models, Xte, Xtr, y_te, args.quick, args.repeat)
                n_rows = big.get("sklearn", {}).get("rows", 2000 if args.quick else 10000)
                print_workload("predict, W1 float32 model: one row (median per call)", one)
                print_workload(f"predict, W1 float32 model: {n_rows} rows (median per call)", big)
                results["predict_1"], results["predict_batch"] = one, big
                rows.append(("predict 1 row", one,
                             {"kind": "max_time", "value": 10e-6, "text": "neuraxis <= 10 us"}, False))
                rows.append((f"predict {n_rows} rows", big,
                             {"kind": "speedup", "value": 2, "text": ">= 2x sklearn"}, False))

    if w in ("w2", "all"):
        X, y = make_classification(n_samples=1000, n_features=20, n_classes=2, random_state=42)
        X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=42)
        params = dict(hidden_layer_sizes=(100, 50), activation="relu", max_iter=300,
                      random_state=42)
        res, _ = run_fit_workload("w2", params, X_tr, y_tr, X_te, y_te, args.repeat)
        print_workload("W2: lecture example, make_classification 800+200 x 20, 2 classes, "
                       "(100, 50) relu adam, to convergence", res, extra=("n_iter",))
        results["w2"] = res
        rows.append(("W2 fit (lecture)", res,
                     {"kind": "speedup", "value": 10, "text": ">= 10x sklearn"}, True))

    # sort rows in a stable, readable order
    order = ["W1 fit float32", "W1 fit float64", "W2 fit (lecture)"]
    rows.sort(key=lambda r: order.index(r[0]) if r[0] in order else len(order))

    elapsed = time.perf_counter() - t_start
    print(f"total benchmark time: {elapsed:.1f} s\n")
    print(markdown_table(rows))

    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        out = {"info": info, "results": results, "elapsed_s": elapsed,
               "targets": {name: {"target": t["text"], "met": evaluate(t, res)[1]}
                           for name, res, t, _ in rows}}
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2, default=str)
        print(f"\nraw numbers written to {args.json}")

    if limiter is not None:
        limiter.restore_original_limits()
    return 0


if __name__ == "__main__":
    sys.exit(main())
