"""Embedding: integer ids -> rows of a trained table, as Keras 3's `layers.Embedding`.

`embeddings` is (input_dim, output_dim); each id of a sample of any shape, e.g.
(steps,), becomes that row: output (..., output_dim). The engine sees ids as
float32 values, so they are checked here, before any engine call: integers in
[0, input_dim), else a ValueError. The steps axis may be None (`Input((None,))`):
the table does not depend on it, and the model builds its engine network for the
length of the data it is given, as for the recurrent layers.

`mask_zero=True`: id 0 is padding, which the recurrent layers after it skip (Keras's
mask; other layers that would use the mask raise NotImplementedError). Not supported yet:
constraints, LoRA and quantization.
"""
import numbers
import warnings

import numpy as np

from .. import initializers, regularizers
from .._keras.utils import user_stacklevel
from ._base import Layer
from .core import _none_only

# ids travel as float32: every integer up to 2**24 is exact
_MAX_INPUT_DIM = 2 ** 24


def _positive_int(value, name):
    if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value} "
                         f"(of type {type(value).__name__}).")
    return int(value)


class Embedding(Layer):
    """Turns non-negative integer ids into dense vectors: `embeddings[ids]`.

    Example
    -------
    >>> import numpy as np
    >>> from neuraxis.layers import Embedding
    >>> layer = Embedding(4, 2, weights=[np.arange(8.0).reshape(4, 2)])
    >>> layer(np.array([[3, 0, 3]])).tolist()
    [[[6.0, 7.0], [0.0, 1.0], [6.0, 7.0]]]
    >>> layer.compute_output_shape((None, None))
    (None, None, 2)
    """

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform",
                 embeddings_regularizer=None, embeddings_constraint=None, mask_zero=False,
                 weights=None, lora_rank=None, lora_alpha=None, quantization_config=None,
                 **kwargs):
        input_dim = _positive_int(input_dim, "input_dim")
        output_dim = _positive_int(output_dim, "output_dim")
        if kwargs.pop("input_length", None) is not None:
            warnings.warn("Argument `input_length` is deprecated. Just remove it.",
                          stacklevel=user_stacklevel())
        super().__init__(**kwargs)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        _none_only(embeddings_constraint=embeddings_constraint, lora_rank=lora_rank,
                   lora_alpha=lora_alpha, quantization_config=quantization_config)
        if input_dim > _MAX_INPUT_DIM:
            raise NotImplementedError(f"input_dim={input_dim} is too large: ids reach the "
                                      f"engine as float32, exact up to {_MAX_INPUT_DIM}")
        self.input_dim, self.output_dim = input_dim, output_dim
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        # id 0 is padding: the recurrent layers after it skip those steps (Keras's mask)
        self.mask_zero = bool(mask_zero)
        if weights is not None:
            self.build()
            if not (isinstance(weights, list) and len(weights) == 1):
                weights = [weights]
            self.set_weights(weights)

    def build(self, input_shape=None):
        if not self._weights:  # built once: `weights=` creates the table before any shape
            self.add_weight((self.input_dim, self.output_dim), self.embeddings_initializer,
                            "embeddings")
        if input_shape is not None:
            self._finish_build(input_shape)

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape), self.output_dim)

    @property
    def embeddings(self):
        if not self._weights:
            raise AttributeError("You must build the layer before accessing `embeddings`.")
        return self._weights[0][1]

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
                "activity_regularizer": None,
                "embeddings_constraint": None, "mask_zero": self.mask_zero,
                "quantization_config": None}

    def _engine_spec(self):
        spec = {"kind": "embedding", "input_dim": self.input_dim,
                "output_dim": self.output_dim, "trainable": self.trainable}
        if self.mask_zero:
            spec["mask_zero"] = True
        return spec

    # --- the ids --------------------------------------------------------------------
    def _check_inputs(self, x):
        """ValueError unless every value of the batch `x` is an integer id < input_dim."""
        check_ids(x, self.input_dim, self.name)

    def call(self, inputs, training=False):
        self._check_inputs(inputs)
        return super().call(inputs, training)


def check_ids(x, input_dim, name):
    """ValueError unless `x` holds only integers in [0, input_dim) (Keras casts floats to
    int32; here a fractional id is refused: it is almost always a bug)."""
    x = np.asarray(x)
    bad = ~np.isfinite(x) | (x != np.trunc(x)) if x.dtype.kind == "f" else None
    if bad is not None and bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise ValueError(f"Invalid input for layer \"{name}\" (Embedding): ids must be integers "
                         f"in [0, {input_dim}), got indices[{','.join(map(str, where))}] = "
                         f"{float(x[where])}")
    out = (x < 0) | (x >= input_dim)
    if out.any():
        where = tuple(int(i) for i in np.argwhere(out)[0])
        raise ValueError(f"Invalid input for layer \"{name}\" (Embedding): "
                         f"indices[{','.join(map(str, where))}] = {int(x[where])} is not in "
                         f"[0, {input_dim}). Ids must be smaller than input_dim={input_dim} "
                         "(the vocabulary size).")
