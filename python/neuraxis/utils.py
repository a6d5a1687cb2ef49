"""Keras-style utilities: seeding, session state, label encoding, sequence padding.

Example
-------
>>> from neuraxis import utils
>>> utils.set_random_seed(42)   # weights, shuffles and dropout masks become reproducible
>>> utils.to_categorical([0, 2, 1]).tolist()
[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
"""
import numpy as np

from ._keras.sequences import pad_sequences
from ._keras.session import clear_session, set_random_seed
from ._keras.streams import PyDataset

Sequence = PyDataset  # Keras 3 keeps the old name as an alias

__all__ = ["PyDataset", "Sequence", "clear_session", "pad_sequences", "set_random_seed",
           "to_categorical"]


def to_categorical(x, num_classes=None):
    """One-hot encode integer class labels (Keras's ``keras.utils.to_categorical``).

    Returns a float64 array of shape ``x.shape + (num_classes,)`` (a trailing
    axis of size 1 in ``x`` is dropped first, as Keras does).
    """
    x = np.array(x, dtype="int64")
    input_shape = x.shape
    if input_shape and input_shape[-1] == 1 and len(input_shape) > 1:
        input_shape = tuple(input_shape[:-1])
    x = x.reshape(-1)
    if num_classes is None:
        num_classes = int(np.max(x)) + 1 if x.size else 0
    if x.size and (x.min() < 0 or x.max() >= num_classes):
        raise ValueError(f"to_categorical: labels must be in [0, {num_classes}), got values "
                         f"from {x.min()} to {x.max()}")
    categorical = np.zeros((x.shape[0], num_classes))
    categorical[np.arange(x.shape[0]), x] = 1
    return categorical.reshape(input_shape + (num_classes,))
