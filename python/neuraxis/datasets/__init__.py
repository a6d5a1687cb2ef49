"""Keras 3's small datasets, read from (and downloaded into) Keras's own cache.

Each module has Keras's `load_data` with the same signature, return values, dtypes and
shapes; the files, their names, origins and hashes are Keras's, so a file real Keras already
downloaded to `~/.keras/datasets` (or `$KERAS_HOME/datasets`) is reused. See `_files` for
the cache, downloads, hash checks and safe extraction.

Example
-------
>>> from neuraxis.datasets import mnist
>>> (x_train, y_train), (x_test, y_test) = mnist.load_data()   # doctest: +SKIP
>>> x_train.shape, x_train.dtype                                # doctest: +SKIP
((60000, 28, 28), dtype('uint8'))
"""
from . import boston_housing, cifar10, cifar100, fashion_mnist, imdb, mnist, reuters

__all__ = ["boston_housing", "cifar10", "cifar100", "fashion_mnist", "imdb", "mnist",
           "reuters"]
