"""SpatialDropout1D/2D/3D: whole channels dropped in training (one mask entry per sample and
channel for every position), the identity in inference; the engine's training gradient
against finite differences of the training objective (same seed); Keras's config."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose

from neuraxis import _core
from neuraxis import layers as L
from neuraxis.models import Sequential

import reference as ref
from real_keras import HAVE_KERAS, needs_keras  # noqa: F401


@pytest.mark.parametrize("cls,shape", [(L.SpatialDropout1D, (8, 5, 6)),
                                       (L.SpatialDropout2D, (8, 3, 4, 6)),
                                       (L.SpatialDropout3D, (8, 2, 3, 2, 6))])
def test_whole_channels_are_dropped_in_training_only(cls, shape):
    x = np.random.default_rng(0).uniform(1, 2, shape).astype(np.float32)
    layer = cls(0.5)
    np.testing.assert_array_equal(layer(x), x)
    y = layer(x, training=True)
    axes = tuple(range(1, len(shape) - 1))
    dropped = (y == 0).all(axis=axes)
    kept = np.isclose(y, 2 * x).all(axis=axes)
    assert (dropped | kept).all()          # a channel is dropped everywhere or nowhere
    assert 0.2 < dropped.mean() < 0.8


def test_training_gradient_matches_finite_differences():
    rng = np.random.default_rng(1)
    net = _core.Network64([5, 4], [{"kind": "dropout", "rate": 0.4, "per_channel": True},
                                   {"kind": "lstm", "units": 3}, {"kind": "dense", "units": 2}],
                          "mse", "batch_size")
    params = [rng.normal(size=s) * 0.5 for s in net.param_shapes]
    X, Y, seed = rng.normal(size=(6, 5, 4)), rng.normal(size=(6, 2)), 11
    opt = _core.OptConfig()
    opt.kind, opt.learning_rate, opt.momentum = "sgd", 1.0, 0.0
    after = [p.copy() for p in params]
    net.train_batches(after, opt, [np.zeros_like(p) for p in after], [], X, Y, None, None, 6, 0,
                      1, [], seed)
    for i, p in enumerate(params):
        def f(a, i=i):
            ps = list(params)
            ps[i] = a
            return np.mean((net.predict(ps, X, training=True, seed=seed)[0] - Y) ** 2)
        assert_allclose(p - after[i], ref.numerical_grad(f, p), rtol=1e-6, atol=1e-8)


def test_in_a_text_model():
    rng = np.random.default_rng(2)
    ids = rng.integers(1, 30, (256, 10))
    y = (ids == 7).any(axis=1).astype(np.float32)
    model = Sequential([L.Input((10,)), L.Embedding(30, 8), L.SpatialDropout1D(0.2),
                        L.LSTM(16), L.Dense(1, activation="sigmoid")])
    model.compile("adam", "binary_crossentropy", metrics=["accuracy"])
    model.fit(ids, y, epochs=20, batch_size=32, verbose=0)
    assert model.evaluate(ids, y, verbose=0)[1] >= 0.9


def test_errors():
    with pytest.raises(NotImplementedError, match="channels_first"):
        L.SpatialDropout2D(0.5, data_format="channels_first")
    with pytest.raises(ValueError, match="expected ndim=3"):
        Sequential([L.Input((4, 4, 2)), L.SpatialDropout1D(0.5)])


@needs_keras
def test_config_matches_keras():
    script = ("import json, os; os.environ['KERAS_BACKEND'] = 'torch'; import keras; "
              "L = keras.layers; print(json.dumps([L.SpatialDropout1D(0.3, name='a').get_config(), "
              "L.SpatialDropout2D(0.2, seed=3, name='b').get_config()]))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, KERAS_BACKEND="torch"))
    assert out.returncode == 0, out.stderr[-2000:]
    theirs = json.loads(out.stdout.strip().splitlines()[-1])
    ours = [L.SpatialDropout1D(0.3, name="a").get_config(),
            L.SpatialDropout2D(0.2, seed=3, name="b").get_config()]
    assert json.loads(json.dumps(ours)) == theirs
    for config, cls in zip(theirs, (L.SpatialDropout1D, L.SpatialDropout2D)):
        assert cls.from_config(config).get_config() == config
