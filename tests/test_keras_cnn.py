"""The Keras front's CNN layers end to end on the engine: predictions against the NumPy
references, and a small image task learnt in a few epochs."""
import warnings

import numpy as np
from sklearn.datasets import load_digits

from neuraxis.layers import AveragePooling2D, Conv2D, Dense, Flatten, Input, MaxPooling2D
from neuraxis.models import Sequential
from neuraxis.utils import set_random_seed

import reference as ref
import reference_conv as refc


def test_cnn_predict_matches_numpy_references():
    set_random_seed(3)
    model = Sequential([Input((9, 8, 2)), Conv2D(4, (3, 2), padding="same", activation="relu"),
                        MaxPooling2D(), Conv2D(3, 2, strides=(2, 1)), AveragePooling2D(2, 1),
                        Flatten(), Dense(5, activation="softmax")])
    x = np.random.default_rng(0).normal(size=(6, 9, 8, 2)).astype(np.float32)
    w = [a.astype(np.float64) for a in model.get_weights()]
    h = np.maximum(refc.conv2d_forward(x, w[0], w[1], padding="same"), 0)
    h = refc.max_pool2d_forward(h, (2, 2), (2, 2), "valid")
    h = refc.conv2d_forward(h, w[2], w[3], strides=(2, 1))
    h = refc.avg_pool2d_forward(h, (2, 2), (1, 1), "valid").reshape(6, -1)
    expect = ref.softmax(h @ w[4] + w[5])
    np.testing.assert_allclose(model.predict(x, verbose=0), expect, rtol=1e-4, atol=1e-6)
    # a layer called on an array runs the same engine layer
    np.testing.assert_allclose(model.layers[0](x),
                               np.maximum(refc.conv2d_forward(x, w[0], w[1], padding="same"), 0),
                               rtol=1e-4, atol=1e-5)


def test_lecture_style_cnn_learns_digits():
    X, y = load_digits(return_X_y=True)
    X = (X / 16.0).reshape(-1, 8, 8, 1).astype(np.float32)
    Y = np.eye(10, dtype=np.float32)[y]
    set_random_seed(0)
    with warnings.catch_warnings():  # the lecture's input_shape= spelling warns, as in Keras
        warnings.simplefilter("ignore", UserWarning)
        model = Sequential()
        model.add(Conv2D(16, (3, 3), activation="relu", padding="same", input_shape=(8, 8, 1)))
    model.add(MaxPooling2D(pool_size=(2, 2)))
    model.add(Conv2D(32, (3, 3), activation="relu"))
    model.add(Flatten())
    model.add(Dense(64, activation="relu"))
    model.add(Dense(10, activation="softmax"))
    model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(X, Y, epochs=6, batch_size=32, verbose=0)
    assert history.history["accuracy"][-1] >= 0.9
    assert model.evaluate(X, Y, verbose=0)[1] >= 0.9
