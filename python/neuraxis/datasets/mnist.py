"""MNIST handwritten digits: 60,000 + 10,000 grayscale 28x28 images of the digits 0-9.

Example
-------
>>> from neuraxis.datasets import mnist
>>> (x_train, y_train), (x_test, y_test) = mnist.load_data()   # doctest: +SKIP
>>> x_train.shape, y_train.shape, x_test.shape, y_test.shape    # doctest: +SKIP
((60000, 28, 28), (60000,), (10000, 28, 28), (10000,))
"""
import zipfile

import numpy as np

from ._files import get_file, unreadable

ORIGIN = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
FILE_HASH = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"


def load_data(path="mnist.npz"):
    """`(x_train, y_train), (x_test, y_test)`: uint8 images (n, 28, 28), uint8 labels (n,).

    `path` is the file's name in the cache (`~/.keras/datasets`).
    """
    path = get_file(fname=path, origin=ORIGIN, file_hash=FILE_HASH)
    try:
        # our own handle: np.load leaks its file when the zip is bad
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as f:
            x_train, y_train = f["x_train"], f["y_train"]
            x_test, y_test = f["x_test"], f["y_test"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as e:
        raise unreadable(path, e) from e
    return (x_train, y_train), (x_test, y_test)
