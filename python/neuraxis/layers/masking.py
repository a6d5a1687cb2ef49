"""Masking(mask_value): Keras's step mask from the data.

A step (of a (None, steps, features) batch) whose features all equal `mask_value` is
padding: its output is zeros, and the recurrent layers after it skip it (a skipped step
keeps the state and repeats the last output, as Keras). Dense, Dropout and Activation
layers pass the mask on, a recurrent layer with return_sequences=True too; a layer that
would use the mask in other ways (pooling, normalization, the loss of a sequence output)
raises NotImplementedError rather than ignoring it.
"""
import numbers

from ._base import Layer
from .convolutional import check_rank


class Masking(Layer):
    """Mark the padding steps of a sequence batch (all features equal to `mask_value`).

    Example
    -------
    >>> import numpy as np
    >>> from neuraxis.layers import Masking
    >>> Masking()(np.array([[[1.0, 2.0], [0.0, 0.0], [0.0, 3.0]]])).tolist()
    [[[1.0, 2.0], [0.0, 0.0], [0.0, 3.0]]]
    >>> Masking(mask_value=2.0)(np.array([[[2.0, 2.0], [2.0, 1.0]]])).tolist()
    [[[0.0, 0.0], [2.0, 1.0]]]
    """

    def __init__(self, mask_value=0.0, **kwargs):
        super().__init__(**kwargs)
        if isinstance(mask_value, bool) or not isinstance(mask_value, numbers.Real):
            raise NotImplementedError(f"Masking(mask_value={mask_value!r}): only a number is "
                                      "supported")
        self.mask_value = float(mask_value)

    def build(self, input_shape):
        check_rank(self, tuple(input_shape), 3)
        self._finish_build(input_shape)

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}

    def _engine_spec(self):
        return {"kind": "masking", "mask_value": self.mask_value}
