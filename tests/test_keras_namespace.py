"""`import neuraxis as keras`: Keras 3's namespace as its docs write it (keras.Sequential,
keras.Input, keras.layers..., keras.optimizers..., keras.utils.pad_sequences, keras.config),
loaded lazily (the scikit-learn front never imports the Keras one); pad_sequences against
an independent expectation and against real Keras."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import neuraxis as keras

from real_keras import needs_keras


def test_the_keras_docs_spelling_trains_a_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input(shape=(8,)),
                              keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dropout(0.1),
                              keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2),
                  loss=keras.losses.SparseCategoricalCrossentropy(),
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 8)).astype("float32")
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)
    hist = model.fit(X, y, epochs=20, batch_size=32, verbose=0,
                     callbacks=[keras.callbacks.EarlyStopping(monitor="loss", patience=3)])
    assert hist.history["sparse_categorical_accuracy"][-1] > 0.8
    assert isinstance(model, keras.Model) and isinstance(model, keras.models.Sequential)
    assert isinstance(model.layers[0], keras.Layer)
    assert isinstance(model.optimizer, keras.Optimizer)
    assert isinstance(model.loss, keras.Loss)
    assert keras.models.load_model is keras.saving.load_model
    assert keras.layers.Input is keras.Input
    assert keras.initializers.get("glorot_uniform").__class__ is keras.initializers.GlorotUniform


def test_config_and_backend_values():
    assert keras.config.floatx() == keras.backend.floatx() == "float32"
    assert keras.config.epsilon() == 1e-7
    assert keras.config.image_data_format() == "channels_last"
    assert keras.config.backend() == "neuraxis"
    keras.config.set_floatx("float32")  # the value in force is accepted
    with pytest.raises(NotImplementedError, match="float32"):
        keras.config.set_floatx("float64")
    with pytest.raises(ValueError, match="Unknown `floatx`"):
        keras.config.set_floatx("float8")
    with pytest.raises(NotImplementedError):
        keras.config.set_image_data_format("channels_first")
    keras.backend.clear_session()
    assert keras.version() == keras.__version__


def test_functional_and_subclassed_models_are_refused_clearly():
    with pytest.raises(NotImplementedError, match="Only Sequential"):
        keras.Model(inputs=None, outputs=None)

    class Custom(keras.Model):
        pass

    with pytest.raises(NotImplementedError, match="subclassed"):
        Custom()


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="no attribute 'applications'"):
        keras.applications  # noqa: B018
    assert "layers" in dir(keras) and "Sequential" in dir(keras)


def test_the_scikit_learn_front_does_not_load_the_keras_one():
    code = ("import sys, neuraxis; from neuraxis.neural_network import MLPClassifier; "
            "print(sorted(m for m in sys.modules if m.startswith('neuraxis.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = out.stdout
    assert "neuraxis.models" not in loaded and "neuraxis.layers" not in loaded


CASES = [
    ([[1], [2, 3], [4, 5, 6]], {}),
    ([[1], [2, 3], [4, 5, 6]], {"maxlen": 2}),
    ([[1], [2, 3], [4, 5, 6]], {"padding": "post", "value": -1}),
    ([[1, 2, 3, 4], [], [5]], {"maxlen": 3, "truncating": "post", "padding": "post"}),
    ([[1.5, 2.5], [3.5]], {"dtype": "float32"}),
    ([[[1, 2], [3, 4]], [[5, 6]]], {}),
]


def test_pad_sequences_pads_and_truncates():
    pad = keras.utils.pad_sequences
    assert pad([[1], [2, 3], [4, 5, 6]]).tolist() == [[0, 0, 1], [0, 2, 3], [4, 5, 6]]
    assert pad([[1], [2, 3], [4, 5, 6]], maxlen=2).tolist() == [[0, 1], [2, 3], [5, 6]]
    out = pad([[1, 2, 3, 4], [], [5]], maxlen=3, truncating="post", padding="post")
    assert out.tolist() == [[1, 2, 3], [0, 0, 0], [5, 0, 0]] and out.dtype == np.int32
    assert keras.preprocessing.sequence.pad_sequences is pad
    with pytest.raises(ValueError, match="Padding type"):
        pad([[1]], padding="middle")
    with pytest.raises(ValueError, match="list of iterables"):
        pad([1, 2])
    with pytest.raises(ValueError, match="different from expected shape"):
        pad([[[1, 2]], [[1, 2, 3]]])


@needs_keras
def test_pad_sequences_equals_keras():
    script = textwrap.dedent("""
        import json, sys
        import keras
        cases = json.loads(sys.argv[1])
        print(json.dumps([keras.utils.pad_sequences(s, **kw).tolist() for s, kw in cases]))
    """)
    out = subprocess.run([sys.executable, "-c", script, json.dumps(CASES)], capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, KERAS_BACKEND="torch"))
    assert out.returncode == 0, out.stderr[-2000:]
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    for (seqs, kw), want in zip(CASES, theirs):
        assert keras.utils.pad_sequences(seqs, **kw).tolist() == want, kw
