"""Fashion-MNIST: 60,000 + 10,000 grayscale 28x28 images of 10 kinds of clothing.

Labels: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress, 4 Coat, 5 Sandal, 6 Shirt,
7 Sneaker, 8 Bag, 9 Ankle boot. The four gzip'd IDX files live in
`~/.keras/datasets/fashion-mnist/` as Keras keeps them (Keras gives them no hash).

Example
-------
>>> from neuraxis.datasets import fashion_mnist
>>> (x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()   # doctest: +SKIP
>>> x_train.shape, x_train.dtype                                        # doctest: +SKIP
((60000, 28, 28), dtype('uint8'))
"""
import gzip
import os
import zlib

import numpy as np

from ._files import get_file, unreadable

BASE = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FILES = ["train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"]
# Keras's cache_subdir: under the cache dir, so ~/.keras/datasets/fashion-mnist
CACHE_SUBDIR = os.path.join("datasets", "fashion-mnist")


def _read(path, offset, count=None):
    # IDX: a big-endian header (8 bytes for labels, 16 for images), then raw uint8
    try:
        with gzip.open(path, "rb") as f:
            data = np.frombuffer(f.read(), np.uint8, offset=offset)
        return data if count is None else data.reshape(count, 28, 28)
    except (OSError, EOFError, ValueError, zlib.error) as e:
        raise unreadable(path, e) from e


def load_data():
    """`(x_train, y_train), (x_test, y_test)`: uint8 images (n, 28, 28), uint8 labels (n,)."""
    paths = [get_file(f, origin=BASE + f, cache_subdir=CACHE_SUBDIR) for f in FILES]
    y_train = _read(paths[0], 8)
    x_train = _read(paths[1], 16, len(y_train))
    y_test = _read(paths[2], 8)
    x_test = _read(paths[3], 16, len(y_test))
    return (x_train, y_train), (x_test, y_test)
