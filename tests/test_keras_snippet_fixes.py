"""The small differences from Keras 3.15 that the user-snippet suite found, each pinned down:
`metrics_names`, Dense's `quantization_config` key, `to_json`'s build and compile configs,
which layers' serialization has a `build_config`, a built layer's `input` / `output`, and
`keras.ops.convert_to_numpy`. Expected values are Keras's (read from its source, and the
same checks run on real Keras in a subprocess when it is installed)."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import neuraxis as nx

from real_keras import needs_keras

# One script, run with either front: `keras` is whichever module the caller gives it.
CHECKS = textwrap.dedent("""
    import json
    import numpy as np
    L = keras.layers
    out = {}
    m = keras.Sequential([keras.Input((3,)), L.Dense(2)])
    out["names_uncompiled"] = m.metrics_names
    m.compile("adam", "mse")
    out["names_loss_only"] = m.metrics_names
    m.compile("adam", "mse", metrics=[])
    out["names_empty_metrics"] = m.metrics_names
    m.compile("adam", "mse")  # Keras keeps the earlier metrics container
    out["names_recompiled"] = m.metrics_names
    m.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    out["names_after_fit"] = m.metrics_names
    fresh = keras.Sequential([keras.Input((3,)), L.Dense(2)])
    fresh.compile("adam", "mse", metrics=["mae", "mse"])
    out["names_two_metrics"] = fresh.metrics_names
    out["dense_keys"] = sorted(L.Dense(3).get_config())
    spec = json.loads(fresh.to_json())
    out["json_keys"] = list(spec)
    out["json_build"] = spec["build_config"]
    out["json_compile"] = sorted(spec["compile_config"])
    bare = json.loads(keras.Sequential([keras.Input((3,)), L.Dense(2)]).to_json())
    out["json_uncompiled_compile"] = bare["compile_config"]
    net = keras.Sequential([keras.Input((4, 4, 3)), L.Conv2D(2, 3), L.MaxPooling2D(1),
                            L.Dropout(0.1), L.ZeroPadding2D(1), L.Activation("relu"),
                            L.Flatten(), L.Reshape((-1,)), L.Dense(2)])
    out["build_config"] = [["build_config" in c, c["class_name"]]
                           for c in net.get_config()["layers"]]
    pool = L.MaxPooling2D()
    pool.build((None, 6, 6, 3))  # by hand: Keras records the shape
    out["hand_built"] = keras.layers.serialize(pool).get("build_config")
    out["io"] = [[list(layer.input.shape), list(layer.output.shape)] for layer in net.layers]
    try:
        L.Dense(2).output
        out["unbuilt_output"] = None
    except AttributeError as e:
        out["unbuilt_output"] = ["AttributeError", str(e)]
    out["to_numpy"] = keras.ops.convert_to_numpy(np.float32(0.25)).tolist()
    print(json.dumps(out))
""")

KERAS_SAYS = {  # Keras 3.15 (torch backend)
    "names_uncompiled": [], "names_loss_only": ["loss"],
    "names_empty_metrics": ["loss", "compile_metrics"],
    "names_recompiled": ["loss", "compile_metrics"],
    "names_after_fit": ["loss", "compile_metrics"],
    "names_two_metrics": ["loss", "compile_metrics"],
    "dense_keys": ["activation", "bias_constraint", "bias_initializer", "bias_regularizer",
                   "dtype", "kernel_constraint", "kernel_initializer", "kernel_regularizer",
                   "name", "quantization_config", "trainable", "units", "use_bias"],
    "json_keys": ["module", "class_name", "config", "registered_name", "build_config",
                  "compile_config"],
    "json_build": {"input_shape": [None, 3]},
    "json_compile": ["jit_compile", "loss", "loss_weights", "metrics", "optimizer",
                     "run_eagerly", "steps_per_execution", "weighted_metrics"],
    "json_uncompiled_compile": {},
    "build_config": [[False, "InputLayer"], [True, "Conv2D"], [False, "MaxPooling2D"],
                     [False, "Dropout"], [True, "ZeroPadding2D"], [False, "Activation"],
                     [True, "Flatten"], [False, "Reshape"], [True, "Dense"]],
    "hand_built": {"input_shape": [None, 6, 6, 3]},
    "io": [[[None, 4, 4, 3], [None, 2, 2, 2]], [[None, 2, 2, 2], [None, 2, 2, 2]],
           [[None, 2, 2, 2], [None, 2, 2, 2]], [[None, 2, 2, 2], [None, 4, 4, 2]],
           [[None, 4, 4, 2], [None, 4, 4, 2]], [[None, 4, 4, 2], [None, 32]],
           [[None, 32], [None, 32]], [[None, 32], [None, 2]]],
    "unbuilt_output": ["AttributeError", "'Dense' object has no attribute 'output'"],
    "to_numpy": 0.25,
}


def run_checks(module):
    code = (f"import os\nos.environ['KERAS_BACKEND'] = 'torch'\nimport {module} as keras\n"
            + CHECKS)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, env=dict(os.environ, KERAS_BACKEND="torch"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


@pytest.mark.parametrize("module", ["neuraxis", pytest.param("keras", marks=needs_keras)])
def test_checks_give_keras_answers(module):
    got = run_checks(module)
    assert sorted(got) == sorted(KERAS_SAYS)
    for key, want in KERAS_SAYS.items():
        assert got[key] == want, key


def test_symbolic_tensors_follow_the_model():
    model = nx.Sequential([nx.Input((None, 3)), nx.layers.LSTM(4, return_sequences=True),
                           nx.layers.Dense(2)])
    assert model.layers[0].input.shape == (None, None, 3)
    assert model.layers[1].output.shape == (None, None, 2)
    assert model.layers[1].output.dtype == "float32"
    assert isinstance(model.layers[1].input, nx.KerasTensor)


def test_serialized_model_without_build_configs_still_loads(tmp_path):
    model = nx.Sequential([nx.Input((5,)), nx.layers.Dense(3), nx.layers.Dropout(0.2),
                           nx.layers.Dense(1)])
    model.compile("adam", "mse")
    model.save(tmp_path / "m.keras")
    loaded = nx.models.load_model(tmp_path / "m.keras")
    x = np.random.default_rng(0).normal(size=(4, 5)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    again = nx.models.model_from_json(model.to_json())
    assert json.dumps(again.get_config()) == json.dumps(model.get_config())


def test_train_and_test_on_batch_report_each_batch_alone():
    """Keras 3 resets the metrics at every train_on_batch / test_on_batch call: each returns
    its own batch's loss (before the step, for train_on_batch) and accuracy, in NumPy here."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(24, 5)).astype(np.float32)
    y = rng.integers(0, 3, 24)
    model = nx.Sequential([nx.Input((5,)), nx.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=nx.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])

    def numpy_loss_acc(xb, yb):
        W, b = (w.astype(np.float64) for w in model.get_weights())
        z = xb @ W + b
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        return -np.log(p[np.arange(len(yb)), yb]).mean(), (p.argmax(1) == yb).mean()

    for i in range(0, 24, 8):
        want = numpy_loss_acc(x[i:i + 8], y[i:i + 8])
        np.testing.assert_allclose(model.train_on_batch(x[i:i + 8], y[i:i + 8]), want,
                                   rtol=1e-5)
    for i in (16, 0):
        want = numpy_loss_acc(x[i:i + 8], y[i:i + 8])
        got = model.test_on_batch(x[i:i + 8], y[i:i + 8], return_dict=True)
        np.testing.assert_allclose([got["loss"], got["accuracy"]], want, rtol=1e-5)
