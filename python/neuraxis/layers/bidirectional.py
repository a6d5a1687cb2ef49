"""Bidirectional(SimpleRNN / LSTM / GRU), as Keras 3.

The wrapped layer runs on the sequence (`forward_layer`) and a copy of it with
`go_backwards=True` (`backward_layer`); with `return_sequences` the backward output is
flipped back to the input's order, then the two are merged: `concat` (default, the
last axis doubles), `sum`, `mul` or `ave`. The weights are the forward layer's, then
the backward layer's. The engine runs both directions as one layer.
"""
from ._base import Layer

_MODES = ("sum", "mul", "ave", "concat", None)


def _strip(name, prefix):
    return name[len(prefix):] if name.startswith(prefix) else name


class Bidirectional(Layer):
    """Run a recurrent layer both ways over the sequence and merge the two outputs.

    Example
    -------
    >>> from neuraxis.layers import LSTM, Bidirectional
    >>> layer = Bidirectional(LSTM(8))
    >>> layer.compute_output_shape((None, 5, 3))
    (None, 16)
    >>> layer.build((None, 5, 3)); layer.count_params()  # 2 x (4 * 8 * (3 + 8 + 1))
    768
    >>> layer.backward_layer.go_backwards
    True
    """

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None,
                 **kwargs):
        from . import deserialize, serialize
        from .recurrent import _RNN
        if not isinstance(layer, Layer):
            raise ValueError("Please initialize `Bidirectional` layer with a "
                             f"`keras.layers.Layer` instance. Received: {layer}")
        if backward_layer is not None and not isinstance(backward_layer, Layer):
            raise ValueError("`backward_layer` need to be a `keras.layers.Layer` instance. "
                             f"Received: {backward_layer}")
        if merge_mode not in _MODES:
            raise ValueError(f"Invalid merge mode. Received: {merge_mode}. Merge mode should be "
                             'one of {"sum", "mul", "ave", "concat", None}')
        super().__init__(**kwargs)
        if not isinstance(layer, _RNN):
            raise NotImplementedError("Bidirectional wraps SimpleRNN, LSTM or GRU here, not "
                                      f"{type(layer).__name__}")
        if merge_mode is None:
            raise NotImplementedError("Bidirectional(merge_mode=None) returns two outputs, which a "
                                      "Sequential model cannot pass on; use 'concat', 'sum', "
                                      "'mul' or 'ave'")
        config = serialize(layer)
        config["config"]["name"] = f"forward_{_strip(layer.name, 'forward_')}"
        self.forward_layer = deserialize(config)
        if backward_layer is None:
            config = serialize(layer)
            config["config"]["go_backwards"] = True
            config["config"]["name"] = f"backward_{_strip(layer.name, 'backward_')}"
            self.backward_layer = deserialize(config)
        else:
            self.backward_layer = backward_layer
        self._verify_layer_config()
        self.merge_mode = merge_mode
        self._initial_weights = list(weights) if weights else None
        self.return_sequences = layer.return_sequences
        self.stateful = False
        self.return_state = False

    def _verify_layer_config(self):
        f, b = self.forward_layer, self.backward_layer
        if f.go_backwards == b.go_backwards:
            raise ValueError("Forward layer and backward layer should have different "
                             "`go_backwards` value. Received: forward_layer.go_backwards "
                             f"{f.go_backwards}, backward_layer.go_backwards={b.go_backwards}")
        if f.return_sequences != b.return_sequences:
            raise ValueError("Forward layer and backward layer are expected to have the same "
                             'value for attribute "return_sequences", got '
                             f'"{f.return_sequences}" for forward layer and '
                             f'"{b.return_sequences}" for backward layer')
        if f.go_backwards:
            raise NotImplementedError("Bidirectional of a layer with go_backwards=True is not "
                                      "supported")
        fs, bs = f._engine_spec(), b._engine_spec()
        fs.pop("go_backwards")
        bs.pop("go_backwards")
        if fs != bs:
            raise NotImplementedError("a backward_layer that differs from the forward layer in "
                                      "more than go_backwards is not supported")

    # --- weights and shapes ---------------------------------------------------------------
    def build(self, input_shape):
        input_shape = tuple(input_shape)
        if not self.forward_layer.built:
            self.forward_layer.build(input_shape)
        if not self.backward_layer.built:
            self.backward_layer.build(input_shape)
        # the inner layers' own arrays: their get_weights stay in step with this layer's
        self._weights = ([(f"forward/{n}", a) for n, a in self.forward_layer._weights]
                         + [(f"backward/{n}", a) for n, a in self.backward_layer._weights])
        self._finish_build(input_shape)
        if self._initial_weights:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def compute_output_shape(self, input_shape):
        shape = list(self.forward_layer.compute_output_shape(tuple(input_shape)))
        if self.merge_mode == "concat":
            shape[-1] *= 2
        return tuple(shape)

    # --- config ---------------------------------------------------------------------------
    def get_config(self):
        from . import serialize
        return {**super().get_config(), "merge_mode": self.merge_mode,
                "layer": serialize(self.forward_layer),
                "backward_layer": serialize(self.backward_layer)}

    @classmethod
    def from_config(cls, config):
        from . import deserialize
        config = dict(config)
        config["layer"] = deserialize(config["layer"])
        if config.get("backward_layer") is not None:
            config["backward_layer"] = deserialize(config["backward_layer"])
        return cls(**config)

    def _engine_spec(self):
        inner = dict(self.forward_layer._engine_spec())
        spec = {"kind": "bidirectional", "layer": inner.pop("kind"), **inner,
                "merge_mode": self.merge_mode}
        spec["trainable"] = bool(self.trainable and inner.get("trainable", True))
        return spec
