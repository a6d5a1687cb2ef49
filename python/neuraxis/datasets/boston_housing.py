"""Boston Housing: 506 rows of 13 attributes and the median house value (k$).

As Keras warns, the data set has an ethical problem (its "B" variable); use it to
illustrate that, not as a benchmark.

Example
-------
>>> from neuraxis.datasets import boston_housing
>>> (x_train, y_train), (x_test, y_test) = boston_housing.load_data()   # doctest: +SKIP
>>> x_train.shape, x_test.shape                                          # doctest: +SKIP
((404, 13), (102, 13))
"""
import zipfile

import numpy as np

from ._files import get_file, unreadable

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/boston_housing.npz"
FILE_HASH = "f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5"


def load_data(path="boston_housing.npz", test_split=0.2, seed=113):
    """`(x_train, y_train), (x_test, y_test)` after a seeded shuffle; the last `test_split`
    of the rows are the test set."""
    if not (0 <= test_split < 1):
        raise ValueError(f"Invalid `test_split` argument: {test_split}. It must be between 0 "
                         "and 1 (exclusive of 1).")
    path = get_file(path, origin=ORIGIN, file_hash=FILE_HASH)
    try:
        # our own handle: np.load leaks its file when the zip is bad
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            x, y = f["x"], f["y"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise unreadable(path, e) from e
    rng = np.random.RandomState(seed)  # Keras's shuffle, so the split is the same rows
    indices = np.arange(len(x))
    rng.shuffle(indices)
    x, y = x[indices], y[indices]
    cut = int(len(x) * (1 - test_split))
    return (np.array(x[:cut]), np.array(y[:cut])), (np.array(x[cut:]), np.array(y[cut:]))
