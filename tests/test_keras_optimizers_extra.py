"""Learning-rate schedules, gradient clipping, weight decay and the extra optimizers
(AdamW, Adagrad, Adadelta, Adamax, Nadam; Adam's amsgrad, RMSprop's centered): the
schedules against NumPy formulas written here and against real Keras at many steps;
training against a NumPy reference and against real Keras 3 (torch backend, in a
subprocess) from copied initial weights; configs, variables and errors as Keras's.
"""
import doctest
import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_allclose

import neuraxis
from neuraxis import layers as L
from neuraxis import optimizers
from neuraxis.models import Sequential
from neuraxis.optimizers import schedules
from neuraxis.optimizers.schedules import (CosineDecay, ExponentialDecay, InverseTimeDecay,
                                           PiecewiseConstantDecay, PolynomialDecay)
from neuraxis.utils import set_random_seed

from real_keras import needs_keras

STEPS = [0, 1, 2, 3, 5, 7, 10, 11, 19, 20, 21, 33, 50, 99, 100, 101, 250]


# ---- schedules vs NumPy formulas written from Keras's documentation ---------------------

def np_exponential(s, init, ds, rate, stair):
    p = np.floor(s / ds) if stair else s / ds
    return init * rate ** p


def np_inverse(s, init, ds, rate, stair):
    p = np.floor(s / ds) if stair else s / ds
    return init / (1 + rate * p)


def np_piecewise(s, bounds, values):
    return values[int(np.searchsorted(bounds, s, side="left"))]


def np_polynomial(s, init, ds, end, power, cycle):
    if cycle:
        ds = ds * max(1.0, math.ceil(s / ds))
    else:
        s = min(s, ds)
    return (init - end) * (1 - s / ds) ** power + end


def np_cosine(s, init, ds, alpha, target, warm):
    def decay(k, frm):
        k = min(k, ds)
        return frm * ((1 - alpha) * 0.5 * (1 + np.cos(np.pi * k / ds)) + alpha)
    if target is None:
        return decay(s, init)
    if s < warm:
        return init + (target - init) * s / warm
    return decay(min(s, ds + warm) - warm, target)


CASES = [
    (ExponentialDecay(0.1, 10, 0.5), lambda s: np_exponential(s, 0.1, 10, 0.5, False)),
    (ExponentialDecay(0.1, 7, 0.3, staircase=True),
     lambda s: np_exponential(s, 0.1, 7, 0.3, True)),
    (InverseTimeDecay(0.2, 5, 0.5), lambda s: np_inverse(s, 0.2, 5, 0.5, False)),
    (InverseTimeDecay(0.2, 5, 0.5, staircase=True), lambda s: np_inverse(s, 0.2, 5, 0.5, True)),
    (PiecewiseConstantDecay([10, 20, 100], [1.0, 0.5, 0.1, 0.01]),
     lambda s: np_piecewise(s, [10, 20, 100], [1.0, 0.5, 0.1, 0.01])),
    (PolynomialDecay(0.1, 50), lambda s: np_polynomial(s, 0.1, 50, 1e-4, 1.0, False)),
    (PolynomialDecay(0.1, 20, end_learning_rate=0.01, power=0.5, cycle=True),
     lambda s: np_polynomial(s, 0.1, 20, 0.01, 0.5, True)),
    (CosineDecay(0.1, 100), lambda s: np_cosine(s, 0.1, 100, 0.0, None, 0)),
    (CosineDecay(0.1, 80, alpha=0.1), lambda s: np_cosine(s, 0.1, 80, 0.1, None, 0)),
    (CosineDecay(0.0, 50, warmup_target=0.2, warmup_steps=20, alpha=0.05),
     lambda s: np_cosine(s, 0.0, 50, 0.05, 0.2, 20)),
]


@pytest.mark.parametrize("k", range(len(CASES)))
def test_schedule_values_match_numpy_formulas(k):
    sched, ref = CASES[k]
    got = np.array([sched(s) for s in STEPS])
    assert got.dtype == np.float32
    assert_allclose(got, [ref(float(s)) for s in STEPS], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("k", range(len(CASES)))
def test_schedule_config_round_trips(k):
    sched, _ = CASES[k]
    again = type(sched).from_config(sched.get_config())
    assert again.get_config() == sched.get_config()
    back = schedules.deserialize(schedules.serialize(sched))
    assert [float(back(s)) for s in STEPS] == [float(sched(s)) for s in STEPS]


def test_schedule_bad_arguments_raise_as_keras():
    for cls in (ExponentialDecay, InverseTimeDecay):
        with pytest.raises(ValueError, match="decay_steps` must be > 0"):
            cls(0.1, 0, 0.5)
    with pytest.raises(ValueError, match="decay_steps` must be > 0"):
        PolynomialDecay(0.1, -1)
    with pytest.raises(ValueError, match="decay_steps` must be > 0"):
        CosineDecay(0.1, 0)
    with pytest.raises(ValueError, match="length of boundaries should be 1 less"):
        PiecewiseConstantDecay([1, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="initial_learning_rate` must be a number"):
        ExponentialDecay("big", 10, 0.5)(1)
    with pytest.raises(ValueError, match="Unknown decay"):
        schedules.deserialize({"class_name": "NoSuchDecay", "config": {}})


def test_optimizer_learning_rate_reads_the_schedule_at_iterations():
    sched = ExponentialDecay(0.1, 2, 0.5)
    opt = optimizers.SGD(learning_rate=sched)
    assert opt.learning_rate == np.float32(0.1)
    opt.iterations = 4
    assert opt.learning_rate == np.float32(0.025)
    with pytest.raises(TypeError, match="not settable"):
        opt.learning_rate = 0.5
    cfg = opt.get_config()["learning_rate"]
    assert cfg["class_name"] == "ExponentialDecay" and cfg["module"] == \
        "keras.optimizers.schedules"
    again = optimizers.deserialize(optimizers.serialize(opt))
    assert isinstance(again._schedule, ExponentialDecay)
    # a schedule's learning rate is not a variable
    assert len(opt.variables) == 1


def test_the_engine_steps_follow_the_schedule():
    """SGD on a linear model with a piecewise schedule: each batch's step uses lr(t)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    y = rng.normal(size=(40, 2)).astype(np.float32)
    W0 = rng.normal(size=(3, 2)).astype(np.float32)
    sched = PiecewiseConstantDecay([1, 3], [0.1, 0.02, 0.005])
    model = Sequential([L.Input((3,)), L.Dense(2)])
    model.compile(optimizer=optimizers.SGD(sched), loss="mse")
    model.set_weights([W0, np.zeros(2, np.float32)])
    model.fit(X, y, batch_size=10, epochs=2, shuffle=False, verbose=0)
    W, b = W0.astype(np.float64), np.zeros(2)
    for t in range(8):
        xb, yb = X[t % 4 * 10:(t % 4 + 1) * 10], y[t % 4 * 10:(t % 4 + 1) * 10]
        d = 2 * (xb @ W + b - yb) / d_size(yb)
        lr = np_piecewise(t, [1, 3], [0.1, 0.02, 0.005])
        W, b = W - lr * xb.T @ d, b - lr * d.sum(0)
    assert_allclose(model.get_weights()[0], W, rtol=1e-5, atol=1e-6)
    assert model.optimizer.iterations == 8
    assert model.optimizer.learning_rate == np.float32(0.005)


def d_size(yb):
    return yb.size


# ---- clipping and weight decay vs NumPy ------------------------------------------------

def np_linear_sgd(X, y, W, b, lr, steps, batch, clip=None, mode=None, wd=None):
    W, b = W.astype(np.float64), b.astype(np.float64)
    n = len(X)
    for t in range(steps):
        i0 = t * batch % n
        xb, yb = X[i0:i0 + batch], y[i0:i0 + batch]
        d = 2 * (xb @ W + b - yb) / yb.size
        gW, gb = xb.T @ d, d.sum(0)
        if mode == "clipnorm":
            gW = gW * clip / max(np.linalg.norm(gW), clip)
            gb = gb * clip / max(np.linalg.norm(gb), clip)
        elif mode == "global_clipnorm":
            norm = np.sqrt((gW ** 2).sum() + (gb ** 2).sum())
            gW, gb = gW * min(1, clip / norm), gb * min(1, clip / norm)
        elif mode == "clipvalue":
            gW, gb = np.clip(gW, -clip, clip), np.clip(gb, -clip, clip)
        if wd:
            W, b = W * (1 - wd * lr), b * (1 - wd * lr)
        W, b = W - lr * gW, b - lr * gb
    return W, b


@pytest.mark.parametrize("mode,clip", [("clipnorm", 0.05), ("global_clipnorm", 0.05),
                                       ("clipvalue", 0.02), (None, None)])
@pytest.mark.parametrize("threads", [1, 2])
def test_clipping_and_weight_decay_match_numpy(mode, clip, threads, restore_threads):
    rng = np.random.default_rng(1)
    # many rows per batch so two threads split it (the global norm needs both halves)
    X = rng.normal(size=(512, 20)).astype(np.float32)
    y = rng.normal(size=(512, 30)).astype(np.float32) * 3
    W0 = rng.normal(size=(20, 30)).astype(np.float32)
    b0 = rng.normal(size=30).astype(np.float32)
    neuraxis.set_num_threads(threads)
    kw = {mode: clip} if mode else {}
    model = Sequential([L.Input((20,)), L.Dense(30)])
    model.compile(optimizer=optimizers.SGD(0.05, weight_decay=0.1, **kw), loss="mse")
    model.set_weights([W0, b0])
    model.fit(X, y, batch_size=256, epochs=2, shuffle=False, verbose=0)
    W, b = np_linear_sgd(X, y, W0, b0, 0.05, 4, 256, clip, mode, wd=0.1)
    assert_allclose(model.get_weights()[0], W, rtol=1e-4, atol=1e-5)
    assert_allclose(model.get_weights()[1], b, rtol=1e-4, atol=1e-5)


def test_clip_arguments_are_exclusive_as_keras():
    for a, b in [("clipnorm", "global_clipnorm"), ("clipnorm", "clipvalue"),
                 ("clipvalue", "global_clipnorm")]:
        with pytest.raises(ValueError, match="Only one of `clipnorm`, `clipvalue` and "
                                             "`global_clipnorm` can be set"):
            optimizers.Adam(**{a: 1.0, b: 1.0})
    with pytest.raises(ValueError, match="`weight_decay` must be a float"):
        optimizers.AdamW(weight_decay=None)
    with pytest.raises(ValueError, match="not recognized"):
        optimizers.Nadam(amsgrad=True)
    with pytest.raises(ValueError, match="clipnorm` must be a float"):
        optimizers.SGD(clipnorm="big")
    with pytest.warns(UserWarning, match="`decay` is no longer supported"):
        optimizers.Adam(decay=0.1)
    optimizers.Adam(decay=None)  # accepted silently, as Keras
    with pytest.raises(NotImplementedError, match="use_ema"):
        optimizers.Adam(use_ema=True)


# ---- against real Keras ----------------------------------------------------------------

KERAS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import keras
    L, R = keras.layers, keras.regularizers
    d = np.load(sys.argv[1])
    cases = json.loads(open(sys.argv[3]).read())
    out, arrays = {}, {}
    for k, case in enumerate(cases):
        model = keras.Sequential(eval(case["layers"]))
        opt = keras.optimizers.deserialize(case["optimizer"])
        if case["exclude"]:
            opt.exclude_from_weight_decay(var_names=case["exclude"])
        model.compile(optimizer=opt, loss=case.get("loss", "mse"))
        model.set_weights([d[f"{k}_w{j}"] for j in range(len(model.get_weights()))])
        h = model.fit(d[f"{k}_X"], d[f"{k}_y"], batch_size=case["batch"], epochs=case["epochs"],
                      shuffle=False, verbose=0)
        out[str(k)] = {"loss": h.history["loss"],
                       "eval": model.evaluate(d[f"{k}_X"], d[f"{k}_y"], verbose=0),
                       "variables": [list(v.shape) for v in model.optimizer.variables],
                       "iterations": int(model.optimizer.iterations),
                       "lr": float(model.optimizer.learning_rate)}
        for j, w in enumerate(model.get_weights()):
            arrays[f"{k}_w{j}"] = w
    sched = [keras.optimizers.schedules.deserialize(s)
             for s in json.loads(open(sys.argv[4]).read())]
    steps = json.loads(sys.argv[5])
    out["schedules"] = [[float(s(keras.ops.convert_to_tensor(t))) for t in steps] for s in sched]
    out["configs"] = {n: keras.optimizers.get(n).get_config() for n in
                      ["sgd", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax",
                       "nadam"]}
    np.savez(sys.argv[2], **arrays)
    print(json.dumps(out))
""")

MLP = "[L.Input((5,)), L.Dense(6, activation='tanh'), L.Dense(3)]"

def excluding(opt, names):
    opt.exclude_from_weight_decay(var_names=names)
    return opt


OPTIMIZER_CASES = [
    optimizers.SGD(0.1, momentum=0.9, nesterov=True, clipnorm=0.3),
    optimizers.SGD(0.05, clipvalue=0.02),
    optimizers.SGD(0.05, momentum=0.5, weight_decay=0.05),
    optimizers.Adam(0.01, amsgrad=True),
    optimizers.Adam(0.02, global_clipnorm=0.2),
    optimizers.AdamW(0.01, weight_decay=0.1),
    optimizers.AdamW(0.01, amsgrad=True, clipvalue=0.05),
    optimizers.RMSprop(0.01, centered=True),
    optimizers.RMSprop(0.01, centered=True, momentum=0.5, clipnorm=0.5),
    optimizers.RMSprop(0.01, momentum=0.3, global_clipnorm=0.5),
    optimizers.Adagrad(0.1),
    optimizers.Adagrad(0.05, initial_accumulator_value=0.5, weight_decay=0.01),
    optimizers.Adadelta(1.0),
    optimizers.Adadelta(0.5, rho=0.9, clipnorm=0.1),
    optimizers.Adamax(0.02),
    optimizers.Nadam(0.01),
    optimizers.Nadam(0.01, global_clipnorm=0.3),
    optimizers.SGD(ExponentialDecay(0.1, 3, 0.5, staircase=True), momentum=0.9),
    optimizers.Adam(CosineDecay(0.001, 5, warmup_target=0.05, warmup_steps=3)),
    optimizers.SGD(PiecewiseConstantDecay([3, 6], [0.1, 0.05, 0.01])),
    optimizers.RMSprop(PolynomialDecay(0.01, 5, cycle=True)),
    optimizers.Adam(InverseTimeDecay(0.01, 2, 0.5)),
    optimizers.AdamW(CosineDecay(0.02, 4, alpha=0.1), weight_decay=0.2),
    excluding(optimizers.AdamW(0.02, weight_decay=0.5), ["bias"]),
]


def keras_cases():
    """(layers source, optimizer, loss); regularizer cases come from the regularizer tests."""
    cases = [(MLP, opt, "mse", None) for opt in OPTIMIZER_CASES]
    try:
        from test_keras_regularizers import REGULARIZER_CASES
    except ImportError:
        REGULARIZER_CASES = []
    return cases + list(REGULARIZER_CASES)


def regularizers_module():
    import importlib
    try:
        return importlib.import_module("neuraxis.regularizers")
    except ImportError:
        return None


@pytest.fixture(scope="module")
def keras_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("keras_opt")
    rng = np.random.default_rng(7)
    arrays, specs, ours = {}, [], []
    for k, (src, opt, loss, ids) in enumerate(keras_cases()):
        set_random_seed(k)
        model = Sequential(eval(src, {"L": L, "R": regularizers_module()}))
        shape = model.input_shape[1:]
        arrays[f"{k}_X"] = (rng.normal(size=(48,) + shape) if ids is None else
                            rng.integers(0, ids, (48,) + shape)).astype(np.float32)
        out_shape = model.output_shape[1:]
        arrays[f"{k}_y"] = rng.normal(size=(48,) + out_shape).astype(np.float32)
        for j, w in enumerate(model.get_weights()):
            arrays[f"{k}_w{j}"] = rng.uniform(-0.6, 0.6, w.shape).astype(np.float32)
        specs.append({"layers": src, "optimizer": optimizers.serialize(opt), "batch": 16,
                      "epochs": 2, "loss": loss,
                      "exclude": getattr(opt, "_wd_exclude_names", None)})
        ours.append((model, opt, loss))
    np.savez(tmp / "in.npz", **arrays)
    (tmp / "cases.json").write_text(json.dumps(specs))
    (tmp / "sched.json").write_text(json.dumps([schedules.serialize(s) for s, _ in CASES]))
    out = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(tmp / "in.npz"),
                          str(tmp / "out.npz"), str(tmp / "cases.json"), str(tmp / "sched.json"),
                          json.dumps(STEPS)], capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, KERAS_BACKEND="torch"))
    assert out.returncode == 0, out.stderr[-3000:]
    return arrays, ours, json.loads(out.stdout.strip().splitlines()[-1]), \
        dict(np.load(tmp / "out.npz"))


@needs_keras
def test_schedules_match_keras_at_many_steps(keras_run):
    theirs = keras_run[2]["schedules"]
    for (sched, _), vals in zip(CASES, theirs):
        assert_allclose([float(sched(s)) for s in STEPS], vals, rtol=2e-6, atol=2e-8,
                        err_msg=type(sched).__name__)


@needs_keras
def test_default_configs_match_keras(keras_run):
    for name, cfg in keras_run[2]["configs"].items():
        ours = optimizers.get(name).get_config()
        assert set(ours) == set(cfg), name
        for key, value in cfg.items():
            if isinstance(value, float):
                assert ours[key] == pytest.approx(value, rel=1e-6), (name, key)
            else:
                assert ours[key] == value, (name, key)


def keras_case_ids():
    return [f"{k}-{type(c[1]).__name__}" + ("-reg" if "R." in c[0] or "regularizer" in c[0]
                                            else "") for k, c in enumerate(keras_cases())]


@needs_keras
@pytest.mark.parametrize("k", range(len(keras_cases())), ids=keras_case_ids())
def test_training_matches_keras(keras_run, k):
    arrays, ours, out, theirs = keras_run
    model, opt, loss = ours[k]
    x_y = arrays[f"{k}_X"], arrays[f"{k}_y"]
    # a fresh copy of the optimizer (the fixture's instance may be shared)
    fresh = optimizers.deserialize(optimizers.serialize(opt))
    if getattr(opt, "_wd_exclude_names", None):
        fresh.exclude_from_weight_decay(var_names=opt._wd_exclude_names)
    model.compile(optimizer=fresh, loss=loss)
    n = len(model.get_weights())
    model.set_weights([arrays[f"{k}_w{j}"] for j in range(n)])
    h = model.fit(*x_y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    ref = out[str(k)]
    assert_allclose(h.history["loss"], ref["loss"], rtol=2e-5, atol=1e-6)
    for j, w in enumerate(model.get_weights()):
        assert_allclose(w, theirs[f"{k}_w{j}"], rtol=2e-4, atol=2e-5, err_msg=f"weight {j}")
        if model.layers[0].trainable or j >= len(model.layers[0].weights):
            assert not np.allclose(w, arrays[f"{k}_w{j}"])  # it did train
    assert model.optimizer.iterations == ref["iterations"]
    assert [list(v.shape) for v in model.optimizer.variables] == ref["variables"]
    assert float(model.optimizer.learning_rate) == pytest.approx(ref["lr"], rel=1e-6)
    assert model.evaluate(*x_y, verbose=0) == pytest.approx(ref["eval"], rel=2e-5)


@pytest.mark.parametrize("name", ["adamw", "adagrad", "adadelta", "adamax", "nadam"])
def test_new_optimizers_by_string_train(name):
    rng = np.random.default_rng(3)
    X = rng.normal(size=(64, 4)).astype(np.float32)
    y = (X @ rng.normal(size=(4, 1))).astype(np.float32)
    model = Sequential([L.Input((4,)), L.Dense(1)])
    model.compile(optimizer=optimizers.get(name).__class__(learning_rate=0.05), loss="mse")
    h = model.fit(X, y, batch_size=8, epochs=5, verbose=0)
    assert h.history["loss"][-1] < h.history["loss"][0]
    assert type(model.optimizer).__name__.lower() == name


def test_docstring_examples():
    for mod in (optimizers, schedules):
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
        assert res.failed == 0


@pytest.mark.parametrize("opt", [
    lambda: optimizers.Nadam(0.01, clipnorm=0.5),
    lambda: optimizers.Adam(CosineDecay(0.01, 4, warmup_target=0.02, warmup_steps=2),
                            amsgrad=True),
    lambda: optimizers.RMSprop(0.01, centered=True, momentum=0.5, weight_decay=0.01),
    lambda: optimizers.Adagrad(0.05), lambda: optimizers.Adadelta(1.0),
], ids=["nadam", "adam-schedule-amsgrad", "rmsprop-centered", "adagrad", "adadelta"])
def test_saved_model_resumes_training_exactly(tmp_path, opt):
    """Save after an epoch, load, train on: the same weights as training on unsaved (the
    slots, the step count for the schedule, Nadam's running product all come back)."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(40, 4)).astype(np.float32)
    y = rng.normal(size=(40, 2)).astype(np.float32)
    set_random_seed(1)
    model = Sequential([L.Input((4,)), L.Dense(5, activation="tanh"), L.Dense(2)])
    model.compile(optimizer=opt(), loss="mse")
    model.fit(X, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = neuraxis.saving.load_model(tmp_path / "m.keras")
    assert type(loaded.optimizer) is type(model.optimizer)
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    for m in (model, loaded):
        m.fit(X, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert_allclose(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("how", ["names", "list"])
def test_exclude_from_weight_decay_matches_numpy(how):
    """SGD with weight decay on a linear model, the bias excluded (by name or by array)."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(32, 3)).astype(np.float32)
    y = rng.normal(size=(32, 2)).astype(np.float32)
    W0, b0 = rng.normal(size=(3, 2)).astype(np.float32), rng.normal(size=2).astype(np.float32)
    model = Sequential([L.Input((3,)), L.Dense(2)])
    opt = optimizers.SGD(0.05, weight_decay=0.5)
    if how == "names":
        opt.exclude_from_weight_decay(var_names=["bias"])
    else:
        opt.exclude_from_weight_decay(var_list=[model.layers[0].weights[1]])
    model.compile(optimizer=opt, loss="mse")
    model.set_weights([W0, b0])
    model.fit(X, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    W, b = W0.astype(np.float64), b0.astype(np.float64)
    for t in range(8):
        xb, yb = X[t % 4 * 8:(t % 4 + 1) * 8], y[t % 4 * 8:(t % 4 + 1) * 8]
        d = 2 * (xb @ W + b - yb) / yb.size
        W = W * (1 - 0.5 * 0.05) - 0.05 * xb.T @ d
        b = b - 0.05 * d.sum(0)  # not decayed
    assert_allclose(model.get_weights()[0], W, rtol=1e-5, atol=1e-6)
    assert_allclose(model.get_weights()[1], b, rtol=1e-5, atol=1e-6)
