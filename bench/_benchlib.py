"""What the CNN and RNN benchmark runners share: the step timer, the machine header, the
table cells, Keras's Adam on NumPy arrays (for the NumPy references), and model.fit
through neuraxis's front or real Keras with an epoch clock.

Import after `_benchenv.scrub_environ()`; nothing heavy is imported at the top.
"""
import os
import sys
import time

KERAS_BACKENDS = {"keras-torch": "torch", "keras-jax": "jax"}


def timed(step, steps, repeat):
    """The best over `repeat` runs of the mean time of `steps` calls step(i), after one warm-up."""
    step(0)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for i in range(steps):
            step(i)
        best = min(best, (time.perf_counter() - t0) / steps)
    return best


def machine():
    """CPU model, usable CPUs and the 1-minute load at start, for the header."""
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                       cpu)
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    return {"cpu": cpu, "usable_cpus": usable, "loadavg_1min_at_start": load}


def cell_ms(r, k, digits=1):
    return f"{r[k] * 1e3:.{digits}f} ms" if r.get(k) is not None else r.get("error", "n/a")


def ratio(num, den):
    return f"{num / den:.2f}x" if num and den else "n/a"


def keras_adam(np, params, grads, m, v, tmp, t, lr, b1, b2, eps, dtype):
    """One Keras Adam step (step number t >= 1) on flat arrays, in place, in `dtype`."""
    c = dtype
    alpha = c(lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t))
    np.subtract(grads, m, out=tmp)
    tmp *= c(1 - b1)
    m += tmp                                        # m += (g - m)(1 - b1)
    np.multiply(grads, grads, out=tmp)
    tmp -= v
    tmp *= c(1 - b2)
    v += tmp                                        # v += (g^2 - v)(1 - b2)
    np.sqrt(v, out=tmp)
    tmp += c(eps)
    np.divide(m, tmp, out=tmp)
    tmp *= -alpha
    params += tmp


def fit_front(kind, threads, info):
    """(Sequential, layers module, Callback) of neuraxis ('neuraxis-fit') or of real Keras
    with the backend of `kind`, its threads limited to `threads`; versions into `info`."""
    if kind == "neuraxis-fit":
        import neuraxis
        from neuraxis import layers as L
        from neuraxis.callbacks import Callback
        from neuraxis.models import Sequential
        info.update(version=neuraxis.__version__, threads=neuraxis.get_num_threads())
        return Sequential, L, Callback
    backend = KERAS_BACKENDS[kind]
    os.environ["KERAS_BACKEND"] = backend  # before the first import of keras
    if backend == "torch":
        import torch
        torch.set_num_threads(threads)
        info.update(torch=torch.__version__, threads=torch.get_num_threads())
    else:
        from keras_bench import _limit_xla_threads
        _limit_xla_threads(threads, info)  # XLA_FLAGS and the CPU affinity
        import jax
        info.update(jax=jax.__version__, threads=threads,
                    jax_devices=[str(d) for d in jax.devices()])
    import keras
    if keras.backend.backend() != backend:
        raise RuntimeError(f"keras imported with backend {keras.backend.backend()!r}")
    from keras import Sequential
    from keras import layers as L
    info.update(version=keras.__version__, keras_backend=backend)
    return Sequential, L, keras.callbacks.Callback


def clocked_fit(model, Callback, X, Y, batch, epochs, info):
    """model.fit with epoch times from on_epoch_begin / on_epoch_end, into `info`."""
    begins, ends = [], []

    class Clock(Callback):
        def on_epoch_begin(self, epoch, logs=None):
            begins.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            ends.append(time.perf_counter())

    t0 = time.perf_counter()
    hist = model.fit(X, Y, batch_size=batch, epochs=epochs, verbose=0, callbacks=[Clock()])
    total = time.perf_counter() - t0
    epoch_s = [e - b for b, e in zip(begins, ends)]
    info.update(epoch_s=epoch_s, epoch1_s=epoch_s[0] if epoch_s else None,
                best_epoch_s=min(epoch_s[1:]) if len(epoch_s) > 1 else None,
                fit_total_s=total, batch=batch, epochs=epochs,
                steps_per_epoch=-(-len(X) // batch),
                last_loss=float(hist.history["loss"][-1]), python=sys.executable)
    return info
