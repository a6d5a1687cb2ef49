"""`keras.preprocessing.sequence.pad_sequences` (the same function as `neuraxis.utils`'s).

Example
-------
>>> from neuraxis.preprocessing import sequence
>>> sequence.pad_sequences([[1], [2, 3]], padding="post").tolist()
[[1, 0], [2, 3]]
"""
from .._keras.sequences import pad_sequences

__all__ = ["pad_sequences"]
