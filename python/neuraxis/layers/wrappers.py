"""TimeDistributed: one layer applied to every time step of (None, steps, ...) inputs.

Only a Dense inner layer is supported: the engine's Dense already works over the last
axis of any input, so `TimeDistributed(Dense(u))` on (steps, features) is the inner
Dense itself (same engine layer, same weights, kernel (features, u) and bias (u,)).
"""
from ._base import Layer
from .core import Dense


class TimeDistributed(Layer):
    """Applies `layer` to every temporal slice (axis 1) of its input, with one set of weights.

    Example
    -------
    >>> from neuraxis.layers import Dense, TimeDistributed
    >>> layer = TimeDistributed(Dense(1))
    >>> layer.build((None, 10, 8)); layer.output_shape, layer.count_params()
    ((None, 10, 1), 9)
    >>> [w.shape for w in layer.get_weights()]
    [(8, 1), (1,)]
    """

    def __init__(self, layer, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError("Please initialize `TimeDistributed` layer with a "
                             f"`keras.layers.Layer` instance. Received: {layer}")
        if not isinstance(layer, Dense):
            raise NotImplementedError(
                f"TimeDistributed({type(layer).__name__}) is not supported yet: the inner "
                "layer must be a Dense (applied over the last axis of every time step)")
        self.layer = layer
        super().__init__(**kwargs)

    # The weights are the inner layer's (the same arrays): nothing of its own.
    @property
    def _weights(self):
        return self.layer._weights

    @_weights.setter
    def _weights(self, value):
        pass

    @staticmethod
    def _child_shape(input_shape):
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) < 3:
            raise ValueError("`TimeDistributed` Layer should be passed an `input_shape` with "
                             f"at least 3 dimensions, received: {input_shape}")
        return (input_shape[0], *input_shape[2:])

    def build(self, input_shape):
        child = self._child_shape(tuple(input_shape))
        if not self.layer.built:
            self.layer.build(child)
        elif self.layer._build_shape[-1] != child[-1]:
            raise ValueError(f"Input 0 of layer \"{self.name}\" is incompatible with its inner "
                             f"layer \"{self.layer.name}\", built for inputs "
                             f"{self.layer._build_shape}: got time steps of shape {child}")
        self._finish_build(input_shape)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        out = self.layer.compute_output_shape(self._child_shape(input_shape))
        return (out[0], input_shape[1], *out[1:])

    def get_config(self):
        from . import serialize  # the package's serializer (this module is part of it)
        return {**super().get_config(), "layer": serialize(self.layer)}

    @classmethod
    def from_config(cls, config):
        from . import deserialize
        config = dict(config)
        return cls(deserialize(config.pop("layer")), **config)

    def _engine_spec(self):
        spec = dict(self.layer._engine_spec())
        spec["trainable"] = bool(spec.get("trainable", True) and self.trainable)
        return spec
