"""IMDB movie reviews: 25,000 + 25,000 reviews as word-index sequences, labelled 0/1.

Words are indexed by frequency (index 1 is the most frequent); 0 pads, `start_char` opens
each review, `oov_char` stands for a word cut by `num_words` / `skip_top`, and real words
start at `index_from`. The ragged sequences are NumPy object arrays stored as pickles in
`imdb.npz`, read with a restricted unpickler that can only rebuild arrays (as Keras 3.15).

Example
-------
>>> from neuraxis.datasets import imdb
>>> (x_train, y_train), (x_test, y_test) = imdb.load_data(num_words=10000)   # doctest: +SKIP
>>> x_train.dtype, x_train[0][:1], max(max(s) for s in x_train) < 10000       # doctest: +SKIP
(dtype('O'), [1], True)
"""
import numpy as np

from . import _sequences
from ._files import get_file, load_npz, unreadable

BASE = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FILE_HASH = "69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f"
WORD_INDEX_HASH = "bfafd718b763782e994055a2d397834f"  # MD5, as Keras has it


def load_data(path="imdb.npz", num_words=None, skip_top=0, maxlen=None, seed=113,
              start_char=1, oov_char=2, index_from=3, **kwargs):
    """`(x_train, y_train), (x_test, y_test)`: object arrays of lists of ints, int labels.

    Both sets are shuffled with `seed`. `num_words` keeps the most frequent words, the
    `skip_top` most frequent become `oov_char` too; `maxlen` drops the reviews that are not
    shorter than it. Extra keyword arguments are accepted and ignored, as in Keras 3.
    """
    path = get_file(fname=path, origin=BASE + "imdb.npz", file_hash=FILE_HASH)
    try:
        f = load_npz(path)
        x_train, labels_train = f["x_train"], f["y_train"]
        x_test, labels_test = f["x_test"], f["y_test"]
    except Exception as e:  # a bad zip, a refused pickle, a missing member: all unreadable
        raise unreadable(path, e) from e

    rng = np.random.RandomState(seed)  # Keras's order: train shuffled first, then test
    indices = np.arange(len(x_train))
    rng.shuffle(indices)
    x_train, labels_train = x_train[indices], labels_train[indices]
    indices = np.arange(len(x_test))
    rng.shuffle(indices)
    x_test, labels_test = x_test[indices], labels_test[indices]

    x_train = _sequences.shift(x_train, start_char, index_from)
    x_test = _sequences.shift(x_test, start_char, index_from)
    if maxlen:
        x_train, labels_train = _sequences.remove_long(maxlen, x_train, labels_train)
        x_test, labels_test = _sequences.remove_long(maxlen, x_test, labels_test)
        if not x_train or not x_test:
            raise ValueError(f"After filtering for sequences shorter than maxlen={maxlen}, "
                             "no sequence was kept. Increase maxlen.")
    # the vocabulary cut is over train and test together, as in Keras
    xs = _sequences.limit(x_train + x_test, num_words, skip_top, oov_char)
    labels = np.concatenate([labels_train, labels_test])
    idx = len(x_train)
    x_train, y_train = np.array(xs[:idx], dtype="object"), labels[:idx]
    x_test, y_test = np.array(xs[idx:], dtype="object"), labels[idx:]
    return (x_train, y_train), (x_test, y_test)


def get_word_index(path="imdb_word_index.json"):
    """The `{word: index}` dict; add `index_from` to match `load_data`'s sequences."""
    return _sequences.word_index(path, BASE + "imdb_word_index.json", WORD_INDEX_HASH)
