"""`keras.preprocessing`'s still-used part: `sequence.pad_sequences`.

Example
-------
>>> from neuraxis.preprocessing.sequence import pad_sequences
>>> pad_sequences([[1, 2]], maxlen=3).tolist()
[[0, 1, 2]]
"""
from . import sequence

__all__ = ["sequence"]
