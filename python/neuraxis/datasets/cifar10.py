"""CIFAR-10: 50,000 + 10,000 colour 32x32 images in 10 classes.

Labels: 0 airplane, 1 automobile, 2 bird, 3 cat, 4 deer, 5 dog, 6 frog, 7 horse, 8 ship,
9 truck. Images are channels last (NHWC), the layout neuraxis computes in. The archive
(`~/.keras/datasets/cifar-10-batches-py-target_archive`) is extracted next to it as
Keras does; its batches are pickles, read with a restricted unpickler (see `_cifar`).

Example
-------
>>> from neuraxis.datasets import cifar10
>>> (x_train, y_train), (x_test, y_test) = cifar10.load_data()   # doctest: +SKIP
>>> x_train.shape, y_train.shape, y_train.dtype                   # doctest: +SKIP
((50000, 32, 32, 3), (50000, 1), dtype('uint8'))
"""
import os

import numpy as np

from ._cifar import load_batch
from ._files import get_file

DIRNAME = "cifar-10-batches-py-target"
ORIGIN = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
FILE_HASH = "6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce"


def load_data():
    """`(x_train, y_train), (x_test, y_test)`: uint8 images (n, 32, 32, 3), uint8 labels
    (n, 1)."""
    path = get_file(fname=DIRNAME, origin=ORIGIN, extract=True, file_hash=FILE_HASH)
    path = os.path.join(path, "cifar-10-batches-py")  # the batches sit in an inner folder
    # Keras fills a preallocated (50000, ...) array; stacking the five batches gives the
    # same arrays and does not depend on the batch size.
    parts = [load_batch(os.path.join(path, f"data_batch_{i}")) for i in range(1, 6)]
    x_train = np.concatenate([x for x, _ in parts]).astype("uint8")
    y_train = np.concatenate([np.asarray(y) for _, y in parts]).astype("uint8")
    x_test, y_test = load_batch(os.path.join(path, "test_batch"))
    y_train = np.reshape(y_train, (len(y_train), 1))
    y_test = np.reshape(y_test, (len(y_test), 1))
    x_train = x_train.transpose(0, 2, 3, 1)
    x_test = x_test.transpose(0, 2, 3, 1)
    return (x_train, y_train), (x_test.astype(x_train.dtype), y_test.astype(y_train.dtype))
