"""Keras front: Conv2D and the 2-D pooling layers, Python side only (shapes, parameter
counts, summary text, config, errors, engine dicts). Nothing here runs the engine.

Where real Keras 3 (torch backend) is installed, the same cases run in a Keras
subprocess too and the answers must agree (skipped otherwise)."""
import doctest
import importlib
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

from neuraxis import layers as layers_mod
from neuraxis._keras.session import clear_session, set_random_seed
from neuraxis.layers import (AveragePooling2D, AvgPool2D, Conv2D, Dense, Flatten, Input,
                             MaxPool2D, MaxPooling2D)
from neuraxis.models import Sequential, load_model

from real_keras import HAVE_KERAS, needs_keras  # noqa: F401

INPUT_WARNING = "Do not pass an `input_shape`/`input_dim` argument to a layer"
SHAPES = [(None, 62, 62, 32), (None, 31, 31, 32), (None, 29, 29, 64), (None, 14, 14, 64),
          (None, 12544), (None, 128), (None, 10)]
PARAMS = [896, 0, 18_496, 0, 0, 1_605_760, 1_290]


@pytest.fixture(autouse=True)
def _fresh_session():
    clear_session()
    set_random_seed(0)
    yield


def lecture_cnn(input_shape_arg=False):
    first = (Conv2D(32, (3, 3), activation="relu", input_shape=(64, 64, 3)) if input_shape_arg
             else Conv2D(32, (3, 3), activation="relu"))
    head = [] if input_shape_arg else [Input((64, 64, 3))]
    return Sequential(head + [first, MaxPooling2D(pool_size=(2, 2)),
                              Conv2D(64, (3, 3), activation="relu"), MaxPooling2D((2, 2)),
                              Flatten(), Dense(128, activation="relu"),
                              Dense(10, activation="softmax")])


# --- the cases both Keras and neuraxis answer (data only: JSON goes to the subprocess) ----
EVALUATE = textwrap.dedent("""
    def evaluate(layers, cases):
        out = []
        for case in cases:
            try:
                layer = getattr(layers, case["cls"])(*case["args"], **case["kwargs"])
                res = {}
                if case.get("config"):
                    res["config"] = layer.get_config()
                if case.get("shape"):
                    res["shape"] = list(layer.compute_output_shape(tuple(case["shape"])))
            except Exception as e:
                res = {"error": type(e).__name__, "message": str(e)}
            out.append(res)
        return json.loads(json.dumps(out))
""")


def case(cls, *args, shape=None, config=False, **kwargs):
    return {"cls": cls, "args": list(args), "kwargs": kwargs, "shape": shape, "config": config}


CONFIG_CASES = [
    case("Conv2D", 32, 3, name="c1"),
    case("Conv2D", 8, [3, 5], strides=2, padding="SAME", activation="relu", use_bias=False,
         kernel_initializer="he_normal", bias_initializer="ones", name="c2"),
    case("Conv2D", 4, 2, dilation_rate=(2, 3), padding="same", activation="softmax",
         kernel_initializer="random_normal", trainable=False, name="c3"),
    case("Conv2D", 16, (1, 1), strides=(1, 2), activation="tanh", data_format="channels_last",
         kernel_initializer="glorot_normal", bias_initializer="he_uniform", name="c4"),
    case("MaxPooling2D", name="p1"),
    case("MaxPooling2D", 3, strides=1, padding="same", name="p2"),
    case("MaxPool2D", (2, 3), (1, 2), name="p3"),
    case("AveragePooling2D", 3, strides=(2, 1), padding="SAME", name="p4"),
    case("AvgPool2D", 2, name="p5"),
]
for c in CONFIG_CASES:
    c["config"] = True

SHAPE_CASES = (
    [case("Conv2D", 2, k, strides=s, dilation_rate=d, padding=p, shape=[None, h, 6, 3])
     for h in (1, 2, 3, 5, 7) for k in (1, 2, 3, (3, 2)) for s, d in ((1, 1), (2, 1), (3, 1),
                                                                       (1, 2), (1, (2, 1)))
     for p in ("valid", "same")]
    + [case("MaxPooling2D", k, strides=s, padding=p, shape=[None, h, 5, 2])
       for h in range(1, 8) for k in (1, 2, 3, (3, 1)) for s in (None, 1, 2, 3)
       for p in ("valid", "same")]
    + [case("AveragePooling2D", 2, shape=[None, None, 7, 4]),
       case("Conv2D", 5, 3, strides=2, shape=[None, 9, None, 4])])

# Construction errors with Keras's own messages, word for word. (Keras checks a pooling
# layer's padding only when it computes a shape; neuraxis already at construction.)
ERROR_CASES = [
    case("Conv2D", 0, 3), case("Conv2D", -1, 3), case("Conv2D", 2, 3, padding="full"),
    case("Conv2D", 2, 3, padding="causal"), case("Conv2D", 2, 3, strides=2, dilation_rate=2),
    case("Conv2D", 2, 3, strides=(1, 2), dilation_rate=(2, 1)), case("Conv2D", 2, 0),
    case("Conv2D", 2, (3, 0)), case("Conv2D", 2, (3, 3, 3)), case("Conv2D", 2, 3.0),
    case("Conv2D", 2, 3, strides=0), case("Conv2D", 2, 3, dilation_rate=0),
    case("Conv2D", 2, 3, data_format="foo"), case("Conv2D", 2, 3, groups=0),
    case("Conv2D", 2, 3, groups=3), case("Conv2D", 2, 3, foo=1),
    case("MaxPooling2D", 0), case("MaxPooling2D", (2, 2, 2)),
    case("MaxPooling2D", 2, padding="full", shape=[None, 4, 4, 1]),
    case("MaxPooling2D", 2, data_format="bad"), case("AveragePooling2D"),
]


@pytest.fixture(scope="module")
def keras_answers():
    if not HAVE_KERAS:
        pytest.skip("keras + torch not installed")
    script = "import json, os, sys\n" + EVALUATE + textwrap.dedent("""
        os.environ["KERAS_BACKEND"] = "torch"
        import keras
        L = keras.layers
        model = keras.Sequential([
            keras.Input((64, 64, 3)), L.Conv2D(32, (3, 3), activation="relu"),
            L.MaxPooling2D(pool_size=(2, 2)), L.Conv2D(64, (3, 3), activation="relu"),
            L.MaxPooling2D((2, 2)), L.Flatten(), L.Dense(128, activation="relu"),
            L.Dense(10, activation="softmax")])
        text = []  # COLUMNS=200: rich would crop the table at 80 columns without a terminal
        model.summary(line_length=88, print_fn=lambda s, **kw: text.append(s))
        cases = json.loads(sys.stdin.read())
        print(json.dumps({"summary": "".join(text), "params": model.count_params(),
                          "cases": {k: evaluate(L, v) for k, v in cases.items()}}))
    """)
    cases = {"config": CONFIG_CASES, "shape": SHAPE_CASES, "error": ERROR_CASES}
    out = subprocess.run([sys.executable, "-c", script], input=json.dumps(cases),
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, KERAS_BACKEND="torch", COLUMNS="200"))
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def ours(cases):
    namespace = {"json": json}
    exec(EVALUATE, namespace)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the arguments Keras gets: through JSON (tuples become lists)
        return namespace["evaluate"](layers_mod, json.loads(json.dumps(cases)))


# --- the lecture CNN ------------------------------------------------------------------------
def test_lecture_cnn_shapes_and_parameter_counts():
    model = lecture_cnn()
    assert [la.output_shape for la in model.layers] == SHAPES
    assert [la.count_params() for la in model.layers] == PARAMS
    assert model.count_params() == 1_626_442
    assert model.output_shape == (None, 10)
    conv = model.layers[0]
    assert [w.shape for w in conv.get_weights()] == [(3, 3, 3, 32), (32,)]
    assert [w.shape for w in model.layers[2].get_weights()] == [(3, 3, 32, 64), (64,)]
    assert [w.dtype for w in model.get_weights()] == [np.float32] * 8
    assert [la.name for la in model.layers[:4]] == ["conv2d", "max_pooling2d", "conv2d_1",
                                                    "max_pooling2d_1"]


def test_lecture_cnn_with_the_deprecated_input_shape_argument():
    with pytest.warns(UserWarning, match=INPUT_WARNING):
        model = lecture_cnn(input_shape_arg=True)
    assert model.built and model.input_shape == (None, 64, 64, 3)
    assert len(model.layers) == 7  # the InputLayer Sequential adds is not listed
    assert [la.output_shape for la in model.layers] == SHAPES
    assert model.count_params() == 1_626_442


def test_summary_lists_the_shapes_and_counts(capsys):
    lecture_cnn().summary(line_length=88)
    text = capsys.readouterr().out
    for name, shape, n in zip(["conv2d (Conv2D)", "max_pooling2d (MaxPooling2D)",
                               "conv2d_1 (Conv2D)", "max_pooling2d_1 (MaxPooling2D)",
                               "flatten (Flatten)", "dense (Dense)", "dense_1 (Dense)"],
                              SHAPES, PARAMS):
        row = next(line for line in text.splitlines() if f" {name} " in line)
        assert str(shape) in row and row.rstrip("│ ").endswith(f"{n:,}")
    assert " Total params: 1,626,442 (6.20 MB)" in text
    assert " Non-trainable params: 0 (0.00 B)" in text


@needs_keras
def test_summary_text_matches_keras(keras_answers):
    lines = []
    lecture_cnn().summary(line_length=88, print_fn=lines.append)
    assert keras_answers["params"] == 1_626_442
    assert "".join(lines) == keras_answers["summary"]


def test_the_cnn_config_and_file_round_trip(tmp_path):
    model = lecture_cnn()
    config = json.loads(model.to_json())["config"]  # through JSON: tuples become lists
    clone = Sequential.from_config(config)
    assert clone.get_config() == model.get_config()
    assert [la.output_shape for la in clone.layers] == SHAPES
    model.save(tmp_path / "cnn.keras")
    loaded = load_model(tmp_path / "cnn.keras")
    assert loaded.get_config() == model.get_config()
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


# --- config ---------------------------------------------------------------------------------
@needs_keras
def test_get_config_matches_keras(keras_answers):
    for c, mine, theirs in zip(CONFIG_CASES, ours(CONFIG_CASES), keras_answers["cases"]["config"]):
        assert "config" in theirs, (c, theirs)
        assert list(mine["config"]) == list(theirs["config"]), c  # the same keys, same order
        assert mine["config"] == theirs["config"], c


@needs_keras
def test_keras_configs_load_here(keras_answers):
    for c, theirs in zip(CONFIG_CASES, keras_answers["cases"]["config"]):
        config = theirs["config"]  # as Keras wrote it, initializer axes included
        layer = layers_mod.deserialize({"class_name": c["cls"], "config": config})
        assert json.loads(json.dumps(layer.get_config())) == config


def test_config_keys_and_defaults():
    conv = Conv2D(32, 3, name="c")
    assert conv.get_config() == {
        "name": "c", "trainable": True,
        "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"},
                  "registered_name": None},
        "filters": 32, "kernel_size": (3, 3), "strides": (1, 1), "padding": "valid",
        "data_format": "channels_last", "dilation_rate": (1, 1), "groups": 1,
        "activation": "linear", "use_bias": True,
        "kernel_initializer": {"module": "keras.initializers", "class_name": "GlorotUniform",
                               "config": {"seed": None, "input_axes": None, "output_axes": None},
                               "registered_name": None},
        "bias_initializer": {"module": "keras.initializers", "class_name": "Zeros",
                             "config": {}, "registered_name": None},
        "kernel_regularizer": None, "bias_regularizer": None, "activity_regularizer": None,
        "kernel_constraint": None, "bias_constraint": None}
    pool = MaxPooling2D(name="p").get_config()
    assert list(pool)[3:] == ["pool_size", "padding", "strides", "data_format"]
    assert (pool["pool_size"], pool["strides"], pool["padding"]) == ((2, 2), (2, 2), "valid")
    assert Conv2D(4, 3, padding="SAME").get_config()["padding"] == "same"  # as Keras
    assert MaxPooling2D(padding="SAME").get_config()["padding"] == "SAME"  # as Keras too


@pytest.mark.parametrize("c", CONFIG_CASES, ids=lambda c: c["kwargs"]["name"])
def test_from_config_and_serialize_round_trip(c):
    layer = getattr(layers_mod, c["cls"])(*c["args"], **c["kwargs"])
    config = layer.get_config()
    again = type(layer).from_config(config)
    assert type(again) is type(layer) and again.get_config() == config
    assert type(layer).from_config(json.loads(json.dumps(config))).get_config() == config
    layer.build((None, 12, 10, 3))
    serialized = layers_mod.serialize(layer)
    assert serialized["class_name"] in ("Conv2D", "MaxPooling2D", "AveragePooling2D")
    assert serialized["build_config"] == {"input_shape": [None, 12, 10, 3]}
    clone = layers_mod.deserialize(json.loads(json.dumps(serialized)))
    assert type(clone) is type(layer) and clone.get_config() == config


def test_aliases_are_the_keras_classes():
    assert MaxPool2D is MaxPooling2D and AvgPool2D is AveragePooling2D
    legacy = {"class_name": "MaxPool2D", "config": {"pool_size": [3, 3]}}
    assert type(layers_mod.deserialize(legacy)) is MaxPooling2D


# --- shapes ---------------------------------------------------------------------------------
def test_shapes_same_padding_strides_dilation():
    x = (None, 7, 8, 3)
    assert Conv2D(4, 3).compute_output_shape(x) == (None, 5, 6, 4)
    assert Conv2D(4, 3, padding="same").compute_output_shape(x) == (None, 7, 8, 4)
    assert Conv2D(4, 3, strides=2).compute_output_shape(x) == (None, 3, 3, 4)
    assert Conv2D(4, 3, strides=(2, 3), padding="same").compute_output_shape(x) == (None, 4, 3, 4)
    assert Conv2D(4, 3, dilation_rate=2).compute_output_shape(x) == (None, 3, 4, 4)
    assert Conv2D(4, 3, dilation_rate=(1, 3), padding="same").compute_output_shape(x) == \
        (None, 7, 8, 4)
    assert Conv2D(4, (1, 5)).compute_output_shape(x) == (None, 7, 4, 4)
    assert MaxPooling2D().compute_output_shape(x) == (None, 3, 4, 3)
    assert MaxPooling2D(3, strides=2, padding="same").compute_output_shape(x) == (None, 4, 4, 3)
    assert AveragePooling2D((2, 3), strides=1).compute_output_shape(x) == (None, 6, 6, 3)
    assert Conv2D(4, 3).compute_output_shape((None, None, 8, 3)) == (None, None, 6, 4)


def test_int_and_tuple_arguments_are_the_same():
    a, b = Conv2D(4, 3, strides=2), Conv2D(4, (3, 3), strides=[2, 2])
    assert (a.kernel_size, a.strides) == (b.kernel_size, b.strides) == ((3, 3), (2, 2))
    assert a.get_config() | {"name": ""} == b.get_config() | {"name": ""}
    assert Conv2D(4, np.int64(3)).kernel_size == (3, 3)
    assert Conv2D(4.0, 3).filters == 4
    assert MaxPooling2D(3).strides == (3, 3) and MaxPooling2D(3, strides=1).strides == (1, 1)


@needs_keras
def test_output_shapes_match_keras(keras_answers):
    for c, mine, theirs in zip(SHAPE_CASES, ours(SHAPE_CASES), keras_answers["cases"]["shape"]):
        if "error" in theirs:
            assert mine.get("error") == theirs["error"] == "ValueError", (c, mine, theirs)
            prefix = "Computed output size would be zero or negative."
            assert mine["message"].startswith(prefix) and theirs["message"].startswith(prefix)
        else:
            assert mine == theirs, c


def test_weights_and_initializers():
    conv = Conv2D(6, (3, 2), bias_initializer="ones")
    conv.build((None, 9, 9, 4))
    assert conv.kernel.shape == (3, 2, 4, 6) and conv.bias.shape == (6,)
    assert np.abs(conv.kernel).max() <= np.sqrt(6 / (6 * 4 + 6 * 6))  # conv fans
    np.testing.assert_array_equal(conv.bias, np.ones(6, np.float32))
    conv.set_weights([np.zeros((3, 2, 4, 6)), np.arange(6)])
    assert conv.get_weights()[1].tolist() == list(range(6))
    flat = Conv2D(2, 1, use_bias=False)
    flat.build((None, 3, 3, 5))
    assert [w.shape for w in flat.weights] == [(1, 1, 5, 2)] and flat.bias is None
    frozen = Conv2D(2, 1, trainable=False)
    frozen.build((None, 3, 3, 1))
    assert frozen.trainable_weights == [] and len(frozen.non_trainable_weights) == 2
    pool = AveragePooling2D(2)
    pool.build((None, 4, 4, 3))
    assert pool.weights == [] and pool.count_params() == 0


# --- errors ---------------------------------------------------------------------------------
@needs_keras
def test_errors_match_keras_word_for_word(keras_answers):
    for c, mine, theirs in zip(ERROR_CASES, ours(ERROR_CASES), keras_answers["cases"]["error"]):
        assert "error" in theirs, (c, theirs)
        # Keras prints a Python set there, in hash order (it varies from run to run).
        theirs["message"] = theirs["message"].replace("{'valid', 'same'}", "{'same', 'valid'}")
        assert mine == theirs, (c, mine, theirs)


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="Expected a strictly positive value. Received filters=0"):
        Conv2D(0, 3)
    with pytest.raises(ValueError, match="`filters`"):
        Conv2D(2.5, 3)
    with pytest.raises(ValueError, match=r"one of \{'same', 'valid'\}. Received: full"):
        Conv2D(2, 3, padding="full")
    with pytest.raises(ValueError, match="must be either 'valid' or 'same'"):
        MaxPooling2D(padding="full")
    with pytest.raises(ValueError, match="`strides > 1` not supported in conjunction"):
        Conv2D(2, 3, strides=2, dilation_rate=2)
    with pytest.raises(ValueError, match="`kernel_size` argument must be a tuple of 2"):
        Conv2D(2, (3, 3, 3))
    with pytest.raises(ValueError, match="`pool_size` argument must be a tuple of 2"):
        MaxPooling2D(0)
    with pytest.raises(ValueError, match="`strides` argument must be a tuple of 2"):
        AveragePooling2D(2, strides=0)
    with pytest.raises(ValueError, match="Could not interpret activation"):
        Conv2D(2, 3, activation="nope")
    with pytest.raises(ValueError, match="Unrecognized keyword arguments passed to Conv2D"):
        Conv2D(2, 3, units=4)
    with pytest.raises(TypeError):
        AveragePooling2D()  # pool_size has no default in Keras either


@pytest.mark.parametrize("make", [
    lambda: Conv2D(2, 3, data_format="channels_first"),
    lambda: MaxPooling2D(data_format="channels_first"),
    lambda: AveragePooling2D(2, data_format="channels_first"),
    lambda: Conv2D(4, 3, groups=2),
    lambda: Conv2D(2, 3, padding=((1, 1), (1, 1))),
    lambda: Conv2D(2, 3, activity_regularizer="l2"),
    lambda: Conv2D(2, 3, kernel_constraint="max_norm"),
    lambda: Conv2D(2, 3, bias_constraint="non_neg"),
])
def test_unsupported_options_raise_not_implemented(make):
    with pytest.raises(NotImplementedError):
        make()


def test_channels_first_message_says_what_to_do():
    with pytest.raises(NotImplementedError, match="channels_last"):
        Conv2D(2, 3, data_format="channels_first")


def test_too_small_or_wrong_rank_inputs_raise():
    small = "Computed output size would be zero or negative"
    with pytest.raises(ValueError, match=small):
        Conv2D(2, 5).compute_output_shape((None, 3, 3, 1))
    with pytest.raises(ValueError, match=small):
        Conv2D(2, 3, dilation_rate=3).build((None, 6, 20, 1))
    with pytest.raises(ValueError, match=small):
        MaxPooling2D(3).compute_output_shape((None, 2, 9, 1))
    with pytest.raises(ValueError, match=small):
        Sequential([Input((7, 7, 1)), Conv2D(2, 3), MaxPooling2D(), Conv2D(2, 3)])
    with pytest.raises(ValueError, match="expected ndim=4, found ndim=3"):
        Conv2D(2, 3).build((None, 8, 8))
    with pytest.raises(ValueError, match="expected ndim=4, found ndim=2"):
        Sequential([Input((64,)), MaxPooling2D()])
    with pytest.raises(ValueError, match="channel dimension of the inputs should be defined"):
        Conv2D(2, 3).build((None, 8, 8, None))


# --- the engine interface -------------------------------------------------------------------
def test_engine_specs():
    conv = Conv2D(16, (3, 5), strides=(2, 1), padding="SAME", activation="relu", use_bias=False)
    assert conv._engine_spec() == {
        "kind": "conv2d", "filters": 16, "kernel_size": [3, 5], "strides": [2, 1],
        "padding": "same", "dilation_rate": [1, 1], "activation": "relu", "alpha": 0.0,
        "use_bias": False, "trainable": True}
    assert Conv2D(2, 3, dilation_rate=(2, 3), trainable=False)._engine_spec() == {
        "kind": "conv2d", "filters": 2, "kernel_size": [3, 3], "strides": [1, 1],
        "padding": "valid", "dilation_rate": [2, 3], "activation": "identity", "alpha": 0.0,
        "use_bias": True, "trainable": False}
    assert Conv2D(2, 3, activation="sigmoid")._engine_spec()["activation"] == "logistic"
    assert Conv2D(2, 3, activation="leaky_relu")._engine_spec()["alpha"] == 0.2
    assert MaxPooling2D()._engine_spec() == {"kind": "max_pool2d", "pool_size": [2, 2],
                                             "strides": [2, 2], "padding": "valid"}
    assert AveragePooling2D((3, 2), strides=1, padding="Same")._engine_spec() == {
        "kind": "avg_pool2d", "pool_size": [3, 2], "strides": [1, 1], "padding": "same"}


@pytest.mark.parametrize("module", ["neuraxis.layers.convolutional", "neuraxis.layers.pooling"])
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module),
                             optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
