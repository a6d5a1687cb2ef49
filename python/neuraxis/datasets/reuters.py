"""Reuters newswires: 11,228 word-index sequences labelled with one of 46 topics.

Indexing follows IMDB's (see `imdb`); `get_label_names()` names the topics. The ragged
sequences are object arrays read with a restricted unpickler (as Keras 3.15).

Example
-------
>>> from neuraxis.datasets import reuters
>>> (x_train, y_train), (x_test, y_test) = reuters.load_data(num_words=10000)   # doctest: +SKIP
>>> len(x_train), len(x_test)                                                    # doctest: +SKIP
(8982, 2246)
>>> reuters.get_label_names()[3]
'earn'
"""
import numpy as np

from . import _sequences
from ._files import get_file, load_npz, unreadable

BASE = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
FILE_HASH = "d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916"
WORD_INDEX_HASH = "4d44cc38712099c9e383dc6e5f11a921"  # MD5, as Keras has it

_LABELS = (
    "cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing", "money-supply",
    "coffee", "sugar", "trade", "reserves", "ship", "cotton", "carcass", "crude", "nat-gas",
    "cpi", "money-fx", "interest", "gnp", "meal-feed", "alum", "oilseed", "gold", "tin",
    "strategic-metal", "livestock", "retail", "ipi", "iron-steel", "rubber", "heat", "jobs",
    "lei", "bop", "zinc", "orange", "pet-chem", "dlr", "gas", "silver", "wpi", "hog", "lead")


def load_data(path="reuters.npz", num_words=None, skip_top=0, maxlen=None, test_split=0.2,
              seed=113, start_char=1, oov_char=2, index_from=3):
    """`(x_train, y_train), (x_test, y_test)`: object arrays of lists of ints, int labels;
    shuffled with `seed`, the last `test_split` of the newswires are the test set."""
    path = get_file(fname=path, origin=BASE + "reuters.npz", file_hash=FILE_HASH)
    try:
        f = load_npz(path)
        xs, labels = f["x"], f["y"]
    except Exception as e:  # a bad zip, a refused pickle, a missing member: all unreadable
        raise unreadable(path, e) from e
    rng = np.random.RandomState(seed)
    indices = np.arange(len(xs))
    rng.shuffle(indices)
    xs, labels = xs[indices], labels[indices]
    if start_char is not None or index_from:
        # Keras leaves the object array as it is when neither applies
        xs = _sequences.shift(xs, start_char, index_from)
    if maxlen:
        xs, labels = _sequences.remove_long(maxlen, xs, labels)
    xs = _sequences.limit(xs, num_words, skip_top, oov_char)
    idx = int(len(xs) * (1 - test_split))
    return ((np.array(xs[:idx], dtype="object"), np.array(labels[:idx])),
            (np.array(xs[idx:], dtype="object"), np.array(labels[idx:])))


def get_word_index(path="reuters_word_index.json"):
    """The `{word: index}` dict (indices from 1); add `index_from` to match `load_data`."""
    return _sequences.word_index(path, BASE + "reuters_word_index.json", WORD_INDEX_HASH)


def get_label_names():
    """The 46 topic names, in label order."""
    return _LABELS
