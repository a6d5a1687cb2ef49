"""SimpleRNN, LSTM and GRU over batches of sequences (None, steps, features).

Weights and math are Keras 3's, so real Keras weights load by copy:

    SimpleRNN  h = act(x K + b + h₋₁ R)              K (F, u), R (u, u), b (u,)
    LSTM       z = x K + h₋₁ R + b, gates i, f, c, o  K (F, 4u), R (u, 4u), b (4u,)
               c = σ(f)·c₋₁ + σ(i)·act(c̃); h = σ(o)·act(c)
    GRU        gates z, r, h                         K (F, 3u), R (u, 3u),
               reset_after: hh = act(x_h + r·(h₋₁R_h + b_rh))   b (2, 3u) (input, recurrent)
               else:        hh = act(x_h + (r·h₋₁)R_h)          b (3u,)
               h = z·h₋₁ + (1 − z)·hh

The steps axis may be None (`Input((None, 1))`): the weights do not depend on it, and
the model builds the engine network for the length of the data it is given. The
output is the last state (None, u), or every state (None, steps, u) with
`return_sequences`; `go_backwards` reads the steps in reverse (and returns the
sequence in that processing order, as Keras does). `unroll` is accepted and ignored
(same math). `dropout` / `recurrent_dropout` draw one mask per sequence for all its
steps (training only); a step mask (Masking, Embedding(mask_zero=True)) makes a masked
step keep the state and repeat the last output, with or without dropout, as Keras.
`return_state` and `stateful` are not supported yet.
"""
import numbers

import numpy as np

from .. import activations, initializers, regularizers
from ._base import Layer
from .convolutional import check_rank
from .core import _none_only


def _check_units(units):
    if isinstance(units, float) and units.is_integer():
        units = int(units)
    if not isinstance(units, numbers.Integral) or isinstance(units, bool) or units <= 0:
        raise ValueError("Received an invalid value for argument `units`, expected a positive "
                         f"integer, got {units}.")
    return int(units)


def _rate(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a float between 0 and 1, got {value!r}")
    return min(1.0, max(0.0, float(value)))  # Keras clips (and 1.0 then drops nothing)


def _engine_rate(rate):
    # Keras applies an RNN dropout only for 0 < rate < 1
    return float(rate) if 0.0 < rate < 1.0 else 0.0


class _RNN(Layer):
    """The arguments, weights, shapes and config shared by SimpleRNN, LSTM and GRU."""

    _gates = 1          # blocks of `units` columns in the kernels
    _kind = None        # the engine layer's kind
    _recurrent_activation = False

    def __init__(self, units, activation, use_bias, kernel_initializer, recurrent_initializer,
                 bias_initializer, kernel_regularizer, recurrent_regularizer, bias_regularizer,
                 activity_regularizer, kernel_constraint, recurrent_constraint, bias_constraint,
                 dropout, recurrent_dropout, return_sequences, return_state, go_backwards,
                 stateful, unroll, seed, recurrent_activation=None, zero_output_for_mask=False,
                 **kwargs):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = _check_units(units)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.recurrent_regularizer = regularizers.get(recurrent_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        _none_only(kernel_constraint=kernel_constraint,
                   recurrent_constraint=recurrent_constraint, bias_constraint=bias_constraint)
        self.dropout = _rate(dropout, "dropout")
        self.recurrent_dropout = _rate(recurrent_dropout, "recurrent_dropout")
        if return_state:
            raise NotImplementedError("return_state=True is not supported yet (a Sequential "
                                      "model has one output per layer)")
        if stateful:
            raise NotImplementedError("stateful=True is not supported: every batch starts "
                                      "from zero states")
        self.activation = activations.get(activation)
        if self._recurrent_activation:
            self.recurrent_activation = activations.get(recurrent_activation)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.recurrent_initializer = initializers.get(recurrent_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.return_sequences = bool(return_sequences)
        self.return_state = False
        self.go_backwards = bool(go_backwards)
        self.stateful = False
        self.unroll = bool(unroll)
        self.zero_output_for_mask = bool(zero_output_for_mask)
        self.seed = seed

    # --- weights and shapes ---------------------------------------------------------
    def build(self, input_shape):
        input_shape = check_rank(self, input_shape, 3)
        features = input_shape[-1]
        if features is None:
            raise ValueError(f"Layer \"{self.name}\" needs a known number of features (the last "
                             f"input axis), got input shape {input_shape}")
        cols = self._gates * self.units
        self._weights = []
        self.add_weight((features, cols), self.kernel_initializer, "kernel")
        self.add_weight((self.units, cols), self.recurrent_initializer, "recurrent_kernel")
        if self.use_bias:
            self.add_weight(self._bias_shape(), self._bias_init, "bias")
        self._finish_build(input_shape)

    def _bias_shape(self):
        return (self._gates * self.units,)

    def _bias_init(self, shape):
        return self.bias_initializer(shape)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if self.return_sequences:
            return (input_shape[0], input_shape[1], self.units)
        return (input_shape[0], self.units)

    @property
    def kernel(self):
        return self._weights[0][1] if self._weights else None

    @property
    def recurrent_kernel(self):
        return self._weights[1][1] if self._weights else None

    @property
    def bias(self):
        return self._weights[2][1] if self.use_bias and self._weights else None

    # --- config and engine ----------------------------------------------------------
    def _init_configs(self):
        return {"kernel_initializer": initializers.serialize(self.kernel_initializer),
                "recurrent_initializer": initializers.serialize(self.recurrent_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer)}

    def _head_config(self):
        """Keras's RNN part first (base layer, then the RNN flags), then the cell's."""
        config = {**super().get_config(), "return_sequences": self.return_sequences,
                  "return_state": False, "go_backwards": self.go_backwards, "stateful": False,
                  "unroll": self.unroll, "zero_output_for_mask": self.zero_output_for_mask,
                  "units": self.units, "activation": activations.serialize(self.activation)}
        if self._recurrent_activation:
            config["recurrent_activation"] = activations.serialize(self.recurrent_activation)
        config["use_bias"] = self.use_bias
        return config

    _TAIL = {"activity_regularizer": None, "kernel_constraint": None,
             "recurrent_constraint": None, "bias_constraint": None}

    def get_config(self):
        regs = {k: regularizers.serialize(getattr(self, k)) for k in
                ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer")}
        return {**self._head_config(), **self._init_configs(), **regs, **self._TAIL,
                "dropout": self.dropout, "recurrent_dropout": self.recurrent_dropout}

    def _engine_spec(self):
        act, alpha = activations.ENGINE[self.activation.__name__]
        spec = {"kind": self._kind, "units": self.units, "activation": act,
                "use_bias": self.use_bias, "return_sequences": self.return_sequences,
                "go_backwards": self.go_backwards, "trainable": self.trainable}
        if alpha:
            spec["alpha"] = float(alpha)
        if self._recurrent_activation:
            spec["recurrent_activation"] = activations.ENGINE[
                self.recurrent_activation.__name__][0]
        # one mask per sequence for all its steps (on the inputs; on h_{t-1}), training only
        for key in ("dropout", "recurrent_dropout"):
            if _engine_rate(getattr(self, key)):
                spec[key] = _engine_rate(getattr(self, key))
        return spec


class SimpleRNN(_RNN):
    """Fully connected RNN: `h_t = activation(x_t @ kernel + bias + h_{t-1} @ recurrent_kernel)`.

    Example
    -------
    >>> from neuraxis.layers import SimpleRNN
    >>> layer = SimpleRNN(50)
    >>> layer.build((None, None, 1)); layer.count_params(), layer.output_shape
    (2600, (None, 50))
    """

    _kind = "simple_rnn"

    def __init__(self, units, activation="tanh", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, seed=None, **kwargs):
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, kernel_regularizer, recurrent_regularizer,
                         bias_regularizer, activity_regularizer, kernel_constraint,
                         recurrent_constraint, bias_constraint, dropout, recurrent_dropout,
                         return_sequences, return_state, go_backwards, stateful, unroll, seed,
                         **kwargs)


def _check_use_cudnn(use_cudnn):
    if use_cudnn not in ("auto", True, False) or isinstance(use_cudnn, (int, float)) and \
            not isinstance(use_cudnn, bool):
        raise ValueError("Invalid valid received for argument `use_cudnn`. Expected one of "
                         f"{{'auto', True, False}}. Received: use_cudnn={use_cudnn}")
    return use_cudnn


class LSTM(_RNN):
    """Long Short-Term Memory layer (Hochreiter 1997), Keras's gate order i, f, c, o.

    `unit_forget_bias=True` starts the forget gate's bias at 1 (the rest from
    `bias_initializer`). `use_cudnn` is accepted (there is no cuDNN path: same math).

    Example
    -------
    >>> from neuraxis.layers import LSTM
    >>> layer = LSTM(50, return_sequences=True)
    >>> layer.build((None, None, 1)); layer.count_params(), layer.output_shape
    (10400, (None, None, 50))
    >>> float(layer.bias[50:100].sum())
    50.0
    """

    _gates = 4
    _kind = "lstm"
    _recurrent_activation = True

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", unit_forget_bias=True, kernel_regularizer=None,
                 recurrent_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, recurrent_constraint=None, bias_constraint=None,
                 dropout=0.0, recurrent_dropout=0.0, seed=None, return_sequences=False,
                 return_state=False, go_backwards=False, stateful=False, unroll=False,
                 use_cudnn="auto", **kwargs):
        kwargs.pop("implementation", None)  # Keras pops it too (one implementation here)
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, kernel_regularizer, recurrent_regularizer,
                         bias_regularizer, activity_regularizer, kernel_constraint,
                         recurrent_constraint, bias_constraint, dropout, recurrent_dropout,
                         return_sequences, return_state, go_backwards, stateful, unroll, seed,
                         recurrent_activation=recurrent_activation, **kwargs)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.use_cudnn = _check_use_cudnn(use_cudnn)

    def _bias_init(self, shape):
        if not self.unit_forget_bias:
            return self.bias_initializer(shape)
        u = self.units  # as Keras: init(u), ones(u), init(2u)
        return np.concatenate([self.bias_initializer((u,)), np.ones(u, np.float32),
                               self.bias_initializer((2 * u,))])

    def _init_configs(self):
        return {**super()._init_configs(), "unit_forget_bias": self.unit_forget_bias}

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


class GRU(_RNN):
    """Gated Recurrent Unit (Cho et al. 2014), Keras's gate order z, r, h.

    `reset_after=True` (Keras 3's default, the cuDNN convention) applies the reset gate
    after the recurrent matmul and keeps separate input and recurrent biases: bias (2, 3u).

    Example
    -------
    >>> from neuraxis.layers import GRU
    >>> layer = GRU(4)
    >>> layer.build((None, 7, 3)); [w.shape for w in layer.get_weights()]
    [(3, 12), (4, 12), (2, 12)]
    """

    _gates = 3
    _kind = "gru"
    _recurrent_activation = True

    def __init__(self, units, activation="tanh", recurrent_activation="sigmoid", use_bias=True,
                 kernel_initializer="glorot_uniform", recurrent_initializer="orthogonal",
                 bias_initializer="zeros", kernel_regularizer=None, recurrent_regularizer=None,
                 bias_regularizer=None, activity_regularizer=None, kernel_constraint=None,
                 recurrent_constraint=None, bias_constraint=None, dropout=0.0,
                 recurrent_dropout=0.0, seed=None, return_sequences=False, return_state=False,
                 go_backwards=False, stateful=False, unroll=False, reset_after=True,
                 use_cudnn="auto", **kwargs):
        kwargs.pop("implementation", None)
        super().__init__(units, activation, use_bias, kernel_initializer, recurrent_initializer,
                         bias_initializer, kernel_regularizer, recurrent_regularizer,
                         bias_regularizer, activity_regularizer, kernel_constraint,
                         recurrent_constraint, bias_constraint, dropout, recurrent_dropout,
                         return_sequences, return_state, go_backwards, stateful, unroll, seed,
                         recurrent_activation=recurrent_activation, **kwargs)
        self.reset_after = bool(reset_after)
        self.use_cudnn = _check_use_cudnn(use_cudnn)

    def _bias_shape(self):
        return (2, 3 * self.units) if self.reset_after else (3 * self.units,)

    def get_config(self):
        return {**super().get_config(), "reset_after": self.reset_after, "seed": self.seed}

    def _engine_spec(self):
        return {**super()._engine_spec(), "reset_after": self.reset_after}
