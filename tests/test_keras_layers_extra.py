"""Keras front: Conv1D, the 1-D and global poolings, ZeroPadding/Cropping/UpSampling 1D and 2D.

Shapes, parameter counts, summary, config round trips, errors, a Conv1D model that learns
a sequence task, save/load; and where real Keras 3 (torch backend) is installed, the same
cases in a Keras subprocess: configs, shapes and error messages word for word, each
layer's output with copied weights, whole models' summaries, predictions and two epochs
of SGD from the same weights.
"""
import doctest
import importlib
import json
import os
import re
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from neuraxis import layers as layers_mod
from neuraxis._keras.session import clear_session, set_random_seed
from neuraxis.layers import (AveragePooling1D, Conv1D, Conv2D, Cropping1D, Cropping2D, Dense,
                             Flatten, GlobalAveragePooling1D, GlobalAveragePooling2D,
                             GlobalMaxPooling1D, GlobalMaxPooling2D, Input, MaxPooling1D,
                             MaxPooling2D, UpSampling1D, UpSampling2D, ZeroPadding1D,
                             ZeroPadding2D)
from neuraxis.models import Sequential, load_model

import reference_conv as rc
from real_keras import HAVE_KERAS, needs_keras  # noqa: F401

NEW = ["Conv1D", "MaxPooling1D", "AveragePooling1D", "GlobalAveragePooling1D",
       "GlobalAveragePooling2D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "ZeroPadding1D",
       "ZeroPadding2D", "Cropping1D", "Cropping2D", "UpSampling1D", "UpSampling2D"]
ALIASES = {"MaxPool1D": "MaxPooling1D", "AvgPool1D": "AveragePooling1D",
           "GlobalAvgPool1D": "GlobalAveragePooling1D", "GlobalAvgPool2D": "GlobalAveragePooling2D",
           "GlobalMaxPool1D": "GlobalMaxPooling1D", "GlobalMaxPool2D": "GlobalMaxPooling2D"}


@pytest.fixture(autouse=True)
def _fresh_session():
    clear_session()
    set_random_seed(0)
    yield


def case(cls, *args, shape=None, **kwargs):
    return {"cls": cls, "args": list(args), "kwargs": kwargs, "shape": shape}


# --- what both answer: run by the same function here and in the Keras subprocess --------
EVALUATE = textwrap.dedent("""
    def evaluate(layers, cases, config=False):
        out = []
        for case in cases:
            try:
                layer = getattr(layers, case["cls"])(*case["args"], **case["kwargs"])
                res = {}
                if config:
                    res["config"] = layer.get_config()
                if case.get("shape"):
                    res["shape"] = list(layer.compute_output_shape(tuple(case["shape"])))
            except Exception as e:
                res = {"error": type(e).__name__, "message": str(e)}
            out.append(res)
        return json.loads(json.dumps(out))
""")

CONFIG_CASES = [
    case("Conv1D", 8, 3, name="c1"),
    case("Conv1D", 4, 5, strides=2, padding="SAME", activation="relu", use_bias=False,
         kernel_initializer="he_normal", bias_initializer="ones", name="c2"),
    case("Conv1D", 2, [2], dilation_rate=3, padding="causal", activation="tanh",
         trainable=False, name="c3"),
    case("MaxPooling1D", name="p1"), case("MaxPooling1D", 3, strides=1, padding="same", name="p2"),
    case("MaxPool1D", 4, 2, name="p3"), case("AveragePooling1D", 3, padding="SAME", name="p4"),
    case("AvgPool1D", [2], strides=[1], name="p5"),
    case("GlobalAveragePooling1D", name="g1"), case("GlobalAveragePooling2D", keepdims=True,
                                                   name="g2"),
    case("GlobalMaxPooling1D", keepdims=True, name="g3"),
    case("GlobalMaxPooling2D", data_format="channels_last", name="g4"),
    case("GlobalAvgPool2D", name="g5"), case("GlobalMaxPool1D", name="g6"),
    case("ZeroPadding1D", name="z1"), case("ZeroPadding1D", (2, 0), name="z2"),
    case("ZeroPadding2D", name="z3"), case("ZeroPadding2D", 2, name="z4"),
    case("ZeroPadding2D", (1, 3), name="z5"), case("ZeroPadding2D", ((1, 0), (2, 3)), name="z6"),
    case("Cropping1D", name="k1"), case("Cropping1D", 2, name="k2"),
    case("Cropping1D", (0, 3), name="k3"), case("Cropping2D", name="k4"),
    case("Cropping2D", 1, name="k5"), case("Cropping2D", ((2, 0), (1, 3)), name="k6"),
    case("UpSampling1D", name="u1"), case("UpSampling1D", 3, name="u2"),
    case("UpSampling2D", name="u3"), case("UpSampling2D", (1, 3), interpolation="NEAREST",
                                          name="u4"),
    case("UpSampling2D", 2, name="u5"),
]

SHAPE_CASES = (
    [case("Conv1D", 2, k, strides=s, dilation_rate=d, padding=p, shape=[None, t, 3])
     for t in (1, 2, 3, 5, 8) for k in (1, 2, 3) for s, d in ((1, 1), (2, 1), (3, 1), (1, 2))
     for p in ("valid", "same", "causal")]
    + [case("MaxPooling1D", k, strides=s, padding=p, shape=[None, t, 2])
       for t in range(1, 7) for k in (1, 2, 3) for s in (None, 1, 2) for p in ("valid", "same")]
    + [case("AveragePooling1D", 2, shape=[None, None, 4]),
       case("Conv1D", 5, 3, strides=2, shape=[None, None, 4])]
    + [case(c, keepdims=k, shape=[None, 5, 3] if "1D" in c else [None, 5, 4, 3])
       for c in ("GlobalAveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling2D",
                 "GlobalMaxPooling2D") for k in (False, True)]
    + [case("ZeroPadding1D", p, shape=[None, t, 2]) for p in (0, 2, (1, 3)) for t in (1, 4, None)]
    + [case("ZeroPadding2D", p, shape=[None, 3, t, 2]) for p in (0, 1, (2, 0), ((0, 1), (3, 2)))
       for t in (1, 5, None)]
    + [case("Cropping1D", c, shape=[None, t, 2]) for c in (0, 1, (2, 0), (1, 3))
       for t in (3, 4, 5, 9, None)]
    + [case("Cropping2D", c, shape=[None, 4, t, 2]) for c in (0, 1, (1, 2), ((0, 3), (2, 1)))
       for t in (3, 4, 7, None)]
    + [case("UpSampling1D", s, shape=[None, t, 2]) for s in (1, 2, 5) for t in (1, 4)]
    + [case("UpSampling2D", s, shape=[None, 3, t, 2]) for s in (1, 2, (3, 1)) for t in (2, None)])

# Errors raised at construction, with Keras's messages word for word.
ERROR_CASES = [
    case("Conv1D", 0, 3), case("Conv1D", 2, 3, padding="full"), case("Conv1D", 2, 0),
    case("Conv1D", 2, (3, 3)), case("Conv1D", 2, 3, strides=2, dilation_rate=2),
    case("Conv1D", 2, 3, strides=0), case("Conv1D", 2, 3, data_format="foo"),
    case("Conv1D", 2, 3, groups=0), case("Conv1D", 2, 3, groups=3), case("Conv1D", 2, 3, foo=1),
    case("MaxPooling1D", 0), case("MaxPooling1D", (2, 2)), case("AveragePooling1D"),
    case("AveragePooling1D", 2, strides=(1, 1)), case("GlobalAveragePooling1D", data_format="x"),
    case("GlobalMaxPooling2D", units=3),
    case("ZeroPadding1D", -1), case("ZeroPadding1D", (1, 2, 3)),
    case("ZeroPadding2D", (1, 2, 3)), case("ZeroPadding2D", ((1, -1), (0, 0))),
    case("ZeroPadding2D", (1, (2, 3, 4))), case("ZeroPadding2D", 1.5),
    case("Cropping1D", -2), case("Cropping1D", (1,)), case("Cropping2D", -1),
    case("Cropping2D", (1, 2, 3)), case("Cropping2D", ((0, 0), (0, -3))),
    case("Cropping2D", "a"),
    case("UpSampling1D", 0), case("UpSampling1D", 2.0), case("UpSampling1D", (2,)),
    case("UpSampling2D", 0), case("UpSampling2D", (2, 2, 2)),
]
# Errors at compute_output_shape
SHAPE_ERROR_CASES = [
    case("Cropping1D", (2, 2), shape=[None, 4, 1]), case("Cropping1D", 3, shape=[None, 5, 2]),
    case("Cropping2D", ((1, 1), (0, 0)), shape=[None, 2, 6, 1]),
    case("Cropping2D", ((0, 0), (3, 3)), shape=[None, 8, 6, 1]),
]

# --- layer outputs with copied weights -------------------------------------------------------
OUTPUT_CASES = [
    (case("Conv1D", 4, 3), (2, 9, 3)),
    (case("Conv1D", 4, 3, padding="same", strides=2), (2, 9, 3)),
    (case("Conv1D", 4, 4, padding="same"), (2, 8, 3)),
    (case("Conv1D", 4, 2, padding="causal", dilation_rate=3, activation="tanh"), (2, 9, 3)),
    (case("Conv1D", 3, 4, padding="causal", strides=3, use_bias=False), (2, 10, 2)),
    (case("Conv1D", 2, 1, activation="relu"), (3, 5, 4)),
    (case("MaxPooling1D"), (2, 9, 3)),
    (case("MaxPooling1D", 3, 2, "same"), (2, 9, 3)),
    (case("AveragePooling1D", 2), (2, 9, 3)),
    (case("AveragePooling1D", 3, 1, "same"), (2, 8, 3)),
    # Not AveragePooling1D(4, strides=3, padding="same") on 9 steps: with an odd total pad,
    # Keras's torch backend pads by replicating the edge ("replicate") and averages the copy
    # (7.25 for the last window of 0..8), where TensorFlow and neuraxis average the real
    # inputs only (7.0). tests/test_spatial_kernels.py checks that case against NumPy.
    (case("GlobalAveragePooling1D"), (2, 7, 3)),
    (case("GlobalMaxPooling1D", keepdims=True), (2, 7, 3)),
    (case("GlobalAveragePooling2D", keepdims=True), (2, 5, 4, 3)),
    (case("GlobalMaxPooling2D"), (2, 5, 4, 3)),
    (case("ZeroPadding1D", (1, 2)), (2, 5, 3)),
    (case("ZeroPadding1D"), (2, 5, 3)),
    (case("ZeroPadding2D"), (2, 3, 4, 2)),
    (case("ZeroPadding2D", ((1, 0), (2, 3))), (2, 3, 4, 2)),
    (case("Cropping1D"), (2, 6, 3)),
    (case("Cropping1D", (0, 3)), (2, 6, 3)),
    (case("Cropping2D", ((1, 2), (0, 1))), (2, 5, 4, 2)),
    (case("Cropping2D", 1), (2, 5, 4, 2)),
    (case("UpSampling1D", 3), (2, 4, 3)),
    (case("UpSampling2D"), (2, 3, 4, 2)),
    (case("UpSampling2D", (1, 3)), (2, 3, 4, 2)),
]

# --- whole models: summary, predictions, two epochs of SGD from the same weights --------------
MODELS = {
    "seq": {"input": [12, 3], "loss": "categorical_crossentropy", "out": 3, "layers": [
        ("Conv1D", [6, 3], {"padding": "causal", "activation": "relu"}),
        ("AveragePooling1D", [2], {}), ("ZeroPadding1D", [[1, 0]], {}),
        ("Conv1D", [4, 2], {"activation": "tanh"}), ("UpSampling1D", [2], {}),
        ("Cropping1D", [[1, 1]], {}), ("MaxPooling1D", [2], {"strides": 1}),
        ("GlobalAveragePooling1D", [], {}), ("Dense", [3], {"activation": "softmax"})]},
    "img": {"input": [7, 6, 2], "loss": "categorical_crossentropy", "out": 2, "layers": [
        ("ZeroPadding2D", [[[1, 0], [0, 1]]], {}), ("Conv2D", [4, 3], {"activation": "relu"}),
        ("UpSampling2D", [[2, 1]], {}), ("Cropping2D", [[[1, 1], [0, 1]]], {}),
        ("MaxPooling2D", [2], {}), ("GlobalMaxPooling2D", [], {}),
        ("Dense", [2], {"activation": "softmax"})]},
    "bin": {"input": [10, 2], "loss": "binary_crossentropy", "out": 1, "layers": [
        ("Conv1D", [3, 3], {"strides": 2, "padding": "same"}),
        ("GlobalMaxPooling1D", [], {"keepdims": True}), ("Flatten", [], {}),
        ("Dense", [1], {"activation": "sigmoid"})]},
    "gap2d": {"input": [5, 5, 1], "loss": "mse", "out": 2, "layers": [
        ("Conv2D", [3, 2], {}), ("GlobalAveragePooling2D", [], {}),
        ("Dense", [2], {})]},
}
MODEL_SHAPES = {
    "seq": [(None, 12, 6), (None, 6, 6), (None, 7, 6), (None, 6, 4), (None, 12, 4),
            (None, 10, 4), (None, 9, 4), (None, 4), (None, 3)],
    "img": [(None, 8, 7, 2), (None, 6, 5, 4), (None, 12, 5, 4), (None, 10, 4, 4), (None, 5, 2, 4),
            (None, 4), (None, 2)],
    "bin": [(None, 5, 3), (None, 1, 3), (None, 3), (None, 1)],
    "gap2d": [(None, 4, 4, 3), (None, 3), (None, 2)],
}
MODEL_PARAMS = {  # by hand: conv k*in*out + out, dense in*out + out
    "seq": [3 * 3 * 6 + 6, 0, 0, 2 * 6 * 4 + 4, 0, 0, 0, 0, 4 * 3 + 3],
    "img": [0, 3 * 3 * 2 * 4 + 4, 0, 0, 0, 0, 4 * 2 + 2],
    "bin": [3 * 2 * 3 + 3, 0, 0, 3 * 1 + 1],
    "gap2d": [2 * 2 * 1 * 3 + 3, 0, 3 * 2 + 2],
}
N_TRAIN, BATCH, LR = 32, 8, 0.1


def make_model(name):
    spec = MODELS[name]
    return Sequential([Input(tuple(spec["input"]))] + [
        getattr(layers_mod, cls)(*args, **kw) for cls, args, kw in spec["layers"]])


def model_data(name):
    spec = MODELS[name]
    rng = np.random.default_rng(len(name))
    X = rng.normal(size=(N_TRAIN, *spec["input"])).astype(np.float32)
    k = spec["out"]
    if k == 1:
        Y = rng.integers(0, 2, (N_TRAIN, 1)).astype(np.float32)
    elif spec["loss"] == "mse":
        Y = rng.normal(size=(N_TRAIN, k)).astype(np.float32)
    else:
        Y = np.eye(k, dtype=np.float32)[rng.integers(0, k, N_TRAIN)]
    return X, Y


def output_inputs():
    """(x, weights) of each OUTPUT_CASES layer: inputs, and weights drawn here (not Keras's
    or ours) so both get the same."""
    rng = np.random.default_rng(7)
    out = []
    for c, shape in OUTPUT_CASES:
        x = rng.normal(size=shape).astype(np.float32)
        layer = getattr(layers_mod, c["cls"])(*c["args"], **c["kwargs"])
        layer.build((None,) + shape[1:])
        ws = [rng.normal(size=w.shape).astype(np.float32) * 0.5 for w in layer.weights]
        out.append((x, ws))
    return out


KERAS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import keras
    L = keras.layers
    req = json.loads(open(sys.argv[1]).read())
    d = np.load(sys.argv[2])
    res = {"cases": {k: evaluate(L, v, config=(k == "config")) for k, v in req["cases"].items()}}
    arrays = {}
    for i, c in enumerate(req["outputs"]):
        layer = getattr(L, c["cls"])(*c["args"], **c["kwargs"])
        x = d[f"x{i}"]
        layer.build((None,) + x.shape[1:])
        layer.set_weights([d[f"w{i}_{j}"] for j in range(c["n_weights"])])
        arrays[f"y{i}"] = keras.ops.convert_to_numpy(layer(x))
    res["models"] = {}
    for name, spec in req["models"].items():
        keras.backend.clear_session()  # the auto names start again, as for ours
        model = keras.Sequential([keras.Input(tuple(spec["input"]))] + [
            getattr(L, cls)(*args, **kw) for cls, args, kw in spec["layers"]])
        model.set_weights([d[f"{name}_w{j}"] for j in range(spec["n_weights"])])
        text = []
        model.summary(line_length=88, print_fn=lambda s, **kw: text.append(s))
        X, Y = d[f"{name}_X"], d[f"{name}_Y"]
        arrays[f"{name}_P"] = model.predict(X, verbose=0)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=req["lr"]), loss=spec["loss"])
        h = model.fit(X, Y, batch_size=req["batch"], epochs=2, shuffle=False, verbose=0)
        for j, w in enumerate(model.get_weights()):
            arrays[f"{name}_t{j}"] = w
        res["models"][name] = {"summary": "".join(text), "loss": h.history["loss"],
                               "shapes": [list(la.output.shape) for la in model.layers]}
    np.savez(sys.argv[3], **arrays)
    print(json.dumps(res))
""")


@pytest.fixture(scope="module")
def keras_answers(tmp_path_factory):
    if not HAVE_KERAS:
        pytest.skip("keras + torch not installed")
    tmp = tmp_path_factory.mktemp("keras_extra")
    arrays, outputs = {}, []
    for i, ((c, _), (x, ws)) in enumerate(zip(OUTPUT_CASES, output_inputs())):
        arrays[f"x{i}"] = x
        arrays.update({f"w{i}_{j}": w for j, w in enumerate(ws)})
        outputs.append(dict(c, n_weights=len(ws)))
    models = {}
    for name, spec in MODELS.items():
        clear_session()
        set_random_seed(1)
        model = make_model(name)
        X, Y = model_data(name)
        weights = model.get_weights()
        arrays.update({f"{name}_w{j}": w for j, w in enumerate(weights)}, **{
            f"{name}_X": X, f"{name}_Y": Y})
        models[name] = dict(spec, n_weights=len(weights))
    req = {"cases": {"config": CONFIG_CASES, "shape": SHAPE_CASES, "error": ERROR_CASES,
                     "shape_error": SHAPE_ERROR_CASES},
           "outputs": outputs, "models": models, "lr": LR, "batch": BATCH}
    (tmp / "req.json").write_text(json.dumps(req))
    np.savez(tmp / "in.npz", **arrays)
    out = subprocess.run(
        [sys.executable, "-c", "import json\n" + EVALUATE + KERAS_SCRIPT, str(tmp / "req.json"),
         str(tmp / "in.npz"), str(tmp / "out.npz")], capture_output=True, text=True,
        timeout=600, env=dict(os.environ, KERAS_BACKEND="torch", COLUMNS="200"))
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res["arrays"] = dict(np.load(tmp / "out.npz"))
    return res


def ours(cases, config=False):
    namespace = {"json": json}
    exec(EVALUATE, namespace)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return namespace["evaluate"](layers_mod, json.loads(json.dumps(cases)), config)


def sorted_sets(message):
    """Keras prints Python sets in hash order; compare them sorted."""
    return re.sub(r"\{('[^{}]*')\}", lambda m: "{" + ", ".join(sorted(
        m.group(1).split(", "))) + "}", message)


# --- against real Keras -------------------------------------------------------------------------
@needs_keras
def test_get_config_matches_keras(keras_answers):
    for c, mine, theirs in zip(CONFIG_CASES, ours(CONFIG_CASES, True),
                               keras_answers["cases"]["config"]):
        assert "config" in theirs, (c, theirs)
        assert list(mine["config"]) == list(theirs["config"]), c  # same keys, same order
        assert mine["config"] == theirs["config"], c


@needs_keras
def test_keras_configs_load_here(keras_answers):
    for c, theirs in zip(CONFIG_CASES, keras_answers["cases"]["config"]):
        cls = ALIASES.get(c["cls"], c["cls"])
        layer = layers_mod.deserialize({"class_name": cls, "config": theirs["config"]})
        assert type(layer).__name__ == cls
        assert json.loads(json.dumps(layer.get_config())) == theirs["config"]


@needs_keras
def test_output_shapes_match_keras(keras_answers):
    for c, mine, theirs in zip(SHAPE_CASES, ours(SHAPE_CASES), keras_answers["cases"]["shape"]):
        if "error" in theirs:
            assert mine.get("error") == theirs["error"] == "ValueError", (c, mine, theirs)
            prefix = "Computed output size would be zero or negative."
            if theirs["message"].startswith(prefix):  # Keras prints some tuples as lists there
                assert mine["message"].startswith(prefix)
            else:
                assert mine["message"] == theirs["message"]
        else:
            assert mine == theirs, c


@needs_keras
def test_errors_match_keras_word_for_word(keras_answers):
    for c, mine, theirs in zip(ERROR_CASES + SHAPE_ERROR_CASES,
                               ours(ERROR_CASES) + ours(SHAPE_ERROR_CASES),
                               keras_answers["cases"]["error"] +
                               keras_answers["cases"]["shape_error"]):
        assert "error" in theirs, (c, theirs)
        theirs["message"] = sorted_sets(theirs["message"])
        assert mine == theirs, (c, mine, theirs)


@needs_keras
def test_layer_outputs_match_keras_with_copied_weights(keras_answers):
    for i, ((c, _), (x, ws)) in enumerate(zip(OUTPUT_CASES, output_inputs())):
        layer = getattr(layers_mod, c["cls"])(*c["args"], **c["kwargs"])
        layer.build((None,) + x.shape[1:])
        layer.set_weights(ws)
        want = keras_answers["arrays"][f"y{i}"]
        got = layer(x)
        assert got.shape == want.shape, c
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=str(c))


@needs_keras
@pytest.mark.parametrize("name", sorted(MODELS))
def test_models_match_keras(name, keras_answers):
    theirs = keras_answers["models"][name]
    arrays = keras_answers["arrays"]
    clear_session()
    set_random_seed(1)
    model = make_model(name)  # the same auto names and weights as the fixture's
    lines = []
    model.summary(line_length=88, print_fn=lines.append)
    assert "".join(lines) == theirs["summary"]
    assert [list(la.output_shape) for la in model.layers] == theirs["shapes"]
    X, Y = model_data(name)
    np.testing.assert_allclose(model.predict(X, verbose=0), arrays[f"{name}_P"], rtol=1e-5,
                               atol=1e-6)
    from neuraxis import optimizers
    model.compile(optimizer=optimizers.SGD(learning_rate=LR), loss=MODELS[name]["loss"])
    h = model.fit(X, Y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(h.history["loss"], theirs["loss"], rtol=2e-4, atol=2e-5)
    for j, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, arrays[f"{name}_t{j}"], rtol=2e-4, atol=2e-5)


# --- shapes, counts, summary --------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_shapes_and_parameter_counts(name):
    model = make_model(name)
    assert [la.output_shape for la in model.layers] == MODEL_SHAPES[name]
    assert [la.count_params() for la in model.layers] == MODEL_PARAMS[name]
    assert model.count_params() == sum(MODEL_PARAMS[name])


def test_summary_rows_and_auto_names(capsys):
    make_model("seq").summary(line_length=88)
    text = capsys.readouterr().out
    names = ["conv1d (Conv1D)", "average_pooling1d (AveragePooling1D)",
             "zero_padding1d (ZeroPadding1D)", "conv1d_1 (Conv1D)", "up_sampling1d (UpSampling1D)",
             "cropping1d (Cropping1D)", "max_pooling1d (MaxPooling1D)",
             "global_average_pooling1d (GlobalAveragePooling1D)", "dense (Dense)"]
    for name, shape, n in zip(names, MODEL_SHAPES["seq"], MODEL_PARAMS["seq"]):
        row = next(line for line in text.splitlines() if f" {name.split()[0]} " in line)
        assert str(shape) in row and row.rstrip("│ ").endswith(f"{n:,}")
    assert sum(MODEL_PARAMS["seq"]) == 127
    assert " Total params: 127 (508.00 B)" in text


def test_conv1d_weights_and_fans():
    conv = Conv1D(6, 3, bias_initializer="ones")
    conv.build((None, 20, 4))
    assert conv.kernel.shape == (3, 4, 6) and conv.bias.shape == (6,)
    assert np.abs(conv.kernel).max() <= np.sqrt(6 / (3 * 4 + 3 * 6))  # glorot, conv fans
    np.testing.assert_array_equal(conv.bias, np.ones(6, np.float32))
    assert conv.count_params() == 3 * 4 * 6 + 6
    assert Conv1D(2, 1, use_bias=False)._engine_spec() == {
        "kind": "conv1d", "filters": 2, "kernel_size": [1], "strides": [1], "padding": "valid",
        "dilation_rate": [1], "activation": "identity", "alpha": 0.0, "use_bias": False,
        "trainable": True}


def test_shapes_by_hand():
    x1, x2 = (None, 10, 3), (None, 7, 8, 3)
    assert Conv1D(4, 3).compute_output_shape(x1) == (None, 8, 4)
    assert Conv1D(4, 3, padding="causal", strides=3).compute_output_shape(x1) == (None, 4, 4)
    assert Conv1D(4, 3, padding="same", dilation_rate=2).compute_output_shape(x1) == (None, 10, 4)
    assert MaxPooling1D().compute_output_shape(x1) == (None, 5, 3)
    assert AveragePooling1D(3, 2, "same").compute_output_shape(x1) == (None, 5, 3)
    assert GlobalMaxPooling1D().compute_output_shape(x1) == (None, 3)
    assert GlobalAveragePooling2D(keepdims=True).compute_output_shape(x2) == (None, 1, 1, 3)
    assert ZeroPadding1D(2).compute_output_shape(x1) == (None, 14, 3)
    assert ZeroPadding2D(((1, 0), (2, 3))).compute_output_shape(x2) == (None, 8, 13, 3)
    assert Cropping1D((3, 0)).compute_output_shape(x1) == (None, 7, 3)
    assert Cropping2D(((1, 2), (3, 4))).compute_output_shape(x2) == (None, 4, 1, 3)
    assert UpSampling1D(4).compute_output_shape(x1) == (None, 40, 3)
    assert UpSampling2D((3, 1)).compute_output_shape(x2) == (None, 21, 8, 3)
    assert UpSampling2D().compute_output_shape((None, None, 8, 3)) == (None, None, 16, 3)


# --- eager calls against NumPy ------------------------------------------------------------------
def test_eager_calls_match_numpy():
    rng = np.random.default_rng(3)
    x1 = rng.normal(size=(2, 9, 3)).astype(np.float32)
    x2 = rng.normal(size=(2, 5, 4, 3)).astype(np.float32)
    conv = Conv1D(2, 3, padding="causal", dilation_rate=2)
    conv.build((None, 9, 3))
    w, b = conv.get_weights()
    # causal: the valid convolution of [4 zeros, x]
    want = rc.conv2d_forward(np.pad(x1, ((0, 0), (4, 0), (0, 0)))[:, None], w[None], b,
                             dilation_rate=(1, 2))[:, 0]
    np.testing.assert_allclose(conv(x1), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(MaxPooling1D(3, 2, "same")(x1),
                               rc.max_pool2d_forward(x1[:, None], (1, 3), (1, 2), "same")[:, 0],
                               rtol=1e-6)
    np.testing.assert_allclose(GlobalAveragePooling2D()(x2), x2.mean(axis=(1, 2)), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(GlobalMaxPooling1D(keepdims=True)(x1),
                                  x1.max(axis=1, keepdims=True))
    np.testing.assert_array_equal(ZeroPadding2D(((1, 0), (0, 2)))(x2),
                                  np.pad(x2, ((0, 0), (1, 0), (0, 2), (0, 0))))
    np.testing.assert_array_equal(Cropping2D(((1, 2), (0, 1)))(x2), x2[:, 1:3, 0:3])
    np.testing.assert_array_equal(UpSampling2D((2, 3))(x2), x2.repeat(2, 1).repeat(3, 2))
    np.testing.assert_array_equal(UpSampling1D(2)(x1), x1.repeat(2, 1))
    np.testing.assert_array_equal(Cropping1D((2, 1))(x1), x1[:, 2:8])
    np.testing.assert_array_equal(ZeroPadding1D((0, 3))(x1), np.pad(x1, ((0, 0), (0, 3), (0, 0))))


# --- config, serialization, aliases ------------------------------------------------------------
@pytest.mark.parametrize("c", CONFIG_CASES, ids=lambda c: c["kwargs"]["name"])
def test_config_and_serialize_round_trip(c):
    layer = getattr(layers_mod, c["cls"])(*c["args"], **c["kwargs"])
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert type(again) is type(layer) and again.get_config() == config
    assert type(layer).from_config(json.loads(json.dumps(config))).get_config() == config
    shape = (None, 12, 10, 3) if "2D" in type(layer).__name__ else (None, 12, 3)
    layer.build(shape)
    serialized = layers_mod.serialize(layer)
    assert serialized["class_name"] == type(layer).__name__ in NEW
    assert serialized["build_config"] == {"input_shape": list(shape)}
    clone = layers_mod.deserialize(json.loads(json.dumps(serialized)))
    assert type(clone) is type(layer) and clone.get_config() == config


def test_config_defaults():
    assert list(Conv1D(2, 3, name="c").get_config())[3:6] == ["filters", "kernel_size", "strides"]
    conv = Conv1D(2, 3).get_config()
    assert (conv["kernel_size"], conv["strides"], conv["dilation_rate"], conv["padding"]) == \
        ((3,), (1,), (1,), "valid")
    assert Conv1D(2, 3, padding="CAUSAL").get_config()["padding"] == "causal"
    pool = MaxPooling1D().get_config()
    assert (pool["pool_size"], pool["strides"], pool["padding"]) == ((2,), (2,), "valid")
    assert GlobalMaxPooling2D().get_config()["keepdims"] is False
    assert ZeroPadding1D().get_config()["padding"] == (1, 1)
    assert ZeroPadding2D().get_config()["padding"] == ((1, 1), (1, 1))
    assert Cropping1D().get_config()["cropping"] == (1, 1)
    assert Cropping2D().get_config()["cropping"] == ((0, 0), (0, 0))
    assert UpSampling1D().get_config()["size"] == 2
    assert UpSampling2D().get_config()["size"] == (2, 2)
    assert UpSampling2D(interpolation="Nearest").get_config()["interpolation"] == "nearest"


def test_aliases_are_the_keras_classes():
    for alias, name in ALIASES.items():
        assert getattr(layers_mod, alias) is getattr(layers_mod, name)
        assert alias in layers_mod.__all__ and name in layers_mod.__all__
        legacy = {"class_name": alias, "config": {}}
        if name == "AveragePooling1D":
            legacy["config"]["pool_size"] = 2
        assert type(layers_mod.deserialize(legacy)).__name__ == name
    for name in NEW:
        assert name in layers_mod.__all__ and name in layers_mod._CLASSES


# --- errors ------------------------------------------------------------------------------
def test_bad_arguments_raise():
    with pytest.raises(ValueError, match=r"one of \{'causal', 'same', 'valid'\}. Received: full"):
        Conv1D(2, 3, padding="full")
    with pytest.raises(ValueError, match=r"one of \{'same', 'valid'\}. Received: causal"):
        Conv2D(2, 3, padding="causal")  # causal is Conv1D's only
    with pytest.raises(ValueError, match="`kernel_size` argument must be a tuple of 1"):
        Conv1D(2, (3, 3))
    with pytest.raises(ValueError, match="`pool_size` argument must be a tuple of 1"):
        MaxPooling1D((2, 2))
    with pytest.raises(ValueError, match="must be either 'valid' or 'same'"):
        AveragePooling1D(2, padding="causal")
    with pytest.raises(ValueError, match="that do not satisfy `value >= 0`"):
        ZeroPadding1D((1, -1))
    with pytest.raises(ValueError, match="`padding` should have two elements"):
        ZeroPadding2D((1, 2, 3))
    with pytest.raises(ValueError, match="`cropping` cannot be negative"):
        Cropping2D(-1)
    with pytest.raises(TypeError, match="Expected an integer value for `size`"):
        UpSampling1D(1.5)
    with pytest.raises(ValueError, match="`size` argument must be a tuple of 2"):
        UpSampling2D((0, 2))
    with pytest.raises(ValueError, match="Invalid value for argument `interpolation`"):
        UpSampling2D(interpolation="cubic-ish")
    with pytest.raises(ValueError, match="Unrecognized keyword arguments passed to Cropping1D"):
        Cropping1D(data_format="channels_last")  # Keras's Cropping1D has no data_format


def test_bad_input_shapes_raise():
    with pytest.raises(ValueError, match="expected ndim=3, found ndim=4"):
        Conv1D(2, 3).build((None, 8, 8, 1))
    with pytest.raises(ValueError, match="expected ndim=3, found ndim=2"):
        Sequential([Input((8,)), GlobalAveragePooling1D()])
    with pytest.raises(ValueError, match="expected ndim=4, found ndim=3"):
        Sequential([Input((8, 2)), ZeroPadding2D()])
    with pytest.raises(ValueError, match="Computed output size would be zero or negative"):
        Sequential([Input((4, 1)), Conv1D(2, 3), MaxPooling1D(), Conv1D(2, 2)])
    with pytest.raises(ValueError, match="must be smaller than the input length"):
        Sequential([Input((4, 1)), Cropping1D((2, 2))])
    with pytest.raises(ValueError, match="should be smaller than the corresponding spatial"):
        Cropping2D(((0, 0), (2, 2))).compute_output_shape((None, 5, 4, 1))


@pytest.mark.parametrize("make", [
    lambda: Conv1D(2, 3, data_format="channels_first"),
    lambda: Conv1D(4, 3, groups=2),
    lambda: Conv1D(2, 3, padding=[(1, 1)]),
    lambda: Conv1D(2, 3, bias_constraint="non_neg"),
    lambda: MaxPooling1D(data_format="channels_first"),
    lambda: AveragePooling1D(2, data_format="channels_first"),
    lambda: GlobalAveragePooling1D(data_format="channels_first"),
    lambda: GlobalMaxPooling2D(data_format="channels_first"),
    lambda: ZeroPadding1D(data_format="channels_first"),
    lambda: ZeroPadding2D(data_format="channels_first"),
    lambda: Cropping2D(data_format="channels_first"),
    lambda: UpSampling2D(data_format="channels_first"),
    lambda: UpSampling2D(interpolation="bilinear"),
    lambda: UpSampling2D(interpolation="bicubic"),
])
def test_unsupported_options_raise_not_implemented(make):
    with pytest.raises(NotImplementedError):
        make()


def test_not_implemented_messages_say_what_is_supported():
    with pytest.raises(NotImplementedError, match="only interpolation='nearest'"):
        UpSampling2D(interpolation="Bilinear")
    with pytest.raises(NotImplementedError, match="channels_last"):
        GlobalMaxPooling1D(data_format="channels_first")
    with pytest.raises(NotImplementedError, match=r"Conv1D\(groups=3\)"):
        Conv1D(3, 3, groups=3)


# --- training and saving --------------------------------------------------------------------------
def bump_task(n, rng, steps=24):
    """Noise sequences; class 1 if a bump (+2, +3, +2) was planted at a random place."""
    X = rng.normal(scale=0.5, size=(n, steps, 1)).astype(np.float32)
    y = rng.integers(0, 2, n)
    for i in np.flatnonzero(y):
        t = rng.integers(0, steps - 3)
        X[i, t:t + 3, 0] += [2.0, 3.0, 2.0]
    return X, y.astype(np.float32)[:, None]


def test_conv1d_model_learns_a_sequence_task():
    rng = np.random.default_rng(0)
    X, y = bump_task(600, rng)
    Xt, yt = bump_task(200, rng)
    set_random_seed(0)
    model = Sequential([Input((24, 1)), Conv1D(8, 3, activation="relu", padding="causal"),
                        MaxPooling1D(2), Conv1D(8, 3, activation="relu"),
                        GlobalMaxPooling1D(), Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    history = model.fit(X, y, epochs=15, batch_size=32, verbose=0)
    loss = history.history["loss"]
    assert loss[-1] < 0.5 * loss[0]
    assert model.evaluate(Xt, yt, verbose=0)[1] >= 0.9  # held-out sequences


def test_spatial_model_learns_digits():
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 8, 8, 1).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[y]
    set_random_seed(0)
    model = Sequential([Input((8, 8, 1)), ZeroPadding2D(), Conv2D(16, 3, activation="relu"),
                        MaxPooling2D(), UpSampling2D(), Cropping2D(1),
                        Conv2D(16, 3, activation="relu"), GlobalAveragePooling2D(),
                        Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(X, Y, epochs=15, batch_size=32, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    assert history.history["accuracy"][-1] >= 0.8


@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_load_round_trip(name, tmp_path):
    model = make_model(name)
    X, _ = model_data(name)
    before = model.predict(X, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.get_config() == model.get_config()
    assert [type(la) for la in loaded.layers] == [type(la) for la in model.layers]
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.predict(X, verbose=0), before)
    clone = Sequential.from_config(json.loads(model.to_json())["config"])
    assert clone.get_config() == model.get_config()


@pytest.mark.parametrize("module", ["neuraxis.layers.reshaping", "neuraxis.layers.pooling",
                                    "neuraxis.layers.convolutional"])
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
