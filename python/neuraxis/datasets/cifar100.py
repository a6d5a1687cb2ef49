"""CIFAR-100: 50,000 + 10,000 colour 32x32 images in 100 fine classes (20 coarse ones).

Images are channels last (NHWC). The batches are pickles, read with a restricted
unpickler (see `_cifar`); the archive's SHA-256 is Keras's.

Example
-------
>>> from neuraxis.datasets import cifar100
>>> (x_train, y_train), (x_test, y_test) = cifar100.load_data("coarse")   # doctest: +SKIP
>>> x_train.shape, y_train.shape                                           # doctest: +SKIP
((50000, 32, 32, 3), (50000, 1))
"""
import os

import numpy as np

from ._cifar import load_batch
from ._files import get_file

DIRNAME = "cifar-100-python-target"
ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
FILE_HASH = "85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7"


def load_data(label_mode="fine"):
    """`(x_train, y_train), (x_test, y_test)`: uint8 images (n, 32, 32, 3), int64 labels
    (n, 1), fine (0-99) or coarse (0-19)."""
    if label_mode not in ["fine", "coarse"]:
        raise ValueError('`label_mode` must be one of `"fine"`, `"coarse"`. '
                         f"Received: label_mode={label_mode}.")
    path = get_file(fname=DIRNAME, origin=ORIGIN, extract=True, file_hash=FILE_HASH)
    path = os.path.join(path, "cifar-100-python")
    x_train, y_train = load_batch(os.path.join(path, "train"), label_key=f"{label_mode}_labels")
    x_test, y_test = load_batch(os.path.join(path, "test"), label_key=f"{label_mode}_labels")
    y_train = np.reshape(y_train, (len(y_train), 1))
    y_test = np.reshape(y_test, (len(y_test), 1))
    return (x_train.transpose(0, 2, 3, 1), y_train), (x_test.transpose(0, 2, 3, 1), y_test)
