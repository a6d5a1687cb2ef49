"""BatchNormalization over the last axis (channels_last), as Keras 3.

In training (`fit`, or a call with `training=True`) the layer normalizes by the
batch's own mean and biased variance over every axis but the last, and moves
its moving statistics once per batch: `moving = moving * momentum + batch *
(1 - momentum)`; otherwise (`predict`, `evaluate`, or the layer frozen with
`trainable = False`, as Keras) it normalizes by the moving statistics:
`y = gamma * (x - mean) / sqrt(variance + epsilon) + beta`. The weights are
`[gamma, beta, moving_mean, moving_variance]`, the last two non-trainable.
"""
import numbers

from .. import initializers, ops
from ._base import Layer
from .core import _none_only


class BatchNormalization(Layer):
    """Normalize each channel (the last axis) by batch statistics in training, by moving
    statistics in inference.

    Example
    -------
    >>> import numpy as np
    >>> from neuraxis.layers import BatchNormalization
    >>> bn = BatchNormalization()
    >>> bn.build((None, 3)); [w.shape for w in bn.get_weights()], bn.count_params()
    ([(3,), (3,), (3,), (3,)], 12)
    >>> x = np.array([[0.0, 1.0, 2.0], [2.0, 3.0, 6.0]])
    >>> np.round(bn(x), 2).tolist()  # inference: the moving statistics (0 and 1 at first)
    [[0.0, 1.0, 2.0], [2.0, 3.0, 6.0]]
    >>> np.round(bn(x, training=True), 2).tolist()  # each column: mean 0, variance ~1
    [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]]
    >>> [round(float(v), 2) for v in bn.moving_mean]  # moved 1 - momentum = 0.01 of the way
    [0.01, 0.02, 0.04]
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones",
                 moving_mean_initializer="zeros", moving_variance_initializer="ones",
                 beta_regularizer=None, gamma_regularizer=None, beta_constraint=None,
                 gamma_constraint=None, renorm=False, renorm_clipping=None,
                 renorm_momentum=0.99, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
            raise TypeError(f"Expected an int value for argument `axis`. Received: axis={axis!r}")
        self.axis = int(axis)
        if synchronized:
            raise ValueError("Argument synchronized=True is only supported with the TensorFlow "
                             "backend.")
        self.synchronized = False
        self.momentum = float(momentum)
        self.epsilon = float(epsilon)
        if not self.epsilon > 0:
            raise ValueError(f"`epsilon` must be positive. Received: epsilon={epsilon}")
        self.center = bool(center)
        self.scale = bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        _none_only(beta_regularizer=beta_regularizer, gamma_regularizer=gamma_regularizer,
                   beta_constraint=beta_constraint, gamma_constraint=gamma_constraint)
        if renorm:
            raise NotImplementedError("BatchNormalization(renorm=True) is not supported yet")
        self.renorm = False
        self.renorm_clipping = renorm_clipping
        self.renorm_momentum = float(renorm_momentum)

    def _channel_axis(self, input_shape):
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(f"Axis {self.axis} is out of bounds for input shape {input_shape}. "
                             f"Received: axis={self.axis}")
        axis = self.axis % rank
        if axis == 0:
            raise ValueError("BatchNormalization cannot normalize over the batch axis 0 "
                             f"(axis={self.axis}, input shape {input_shape})")
        if axis != rank - 1:
            raise NotImplementedError(
                f"BatchNormalization(axis={self.axis}) on inputs of shape {input_shape} is not "
                "supported: the engine normalizes the last (channels_last) axis; use axis=-1")
        return axis

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        axis = self._channel_axis(input_shape)
        if input_shape[axis] is None:
            raise ValueError(f"Axis {self.axis} of the input of BatchNormalization must be "
                             f"defined; the input shape received is {input_shape}")
        shape = (input_shape[axis],)
        self._weights = []
        if self.scale:
            self.add_weight(shape, self.gamma_initializer, "gamma")
        if self.center:
            self.add_weight(shape, self.beta_initializer, "beta")
        self.add_weight(shape, self.moving_mean_initializer, "moving_mean")
        self.add_weight(shape, self.moving_variance_initializer, "moving_variance")
        self._finish_build(input_shape)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        rank = len(input_shape)
        if not -rank <= self.axis < rank:
            raise ValueError(f"Axis {self.axis} is out of bounds for input shape {input_shape}. "
                             f"Received: axis={self.axis}")
        return input_shape

    def _weight(self, name):
        return next((a for n, a in self._weights if n == name), None)

    gamma = property(lambda self: self._weight("gamma"))
    beta = property(lambda self: self._weight("beta"))
    moving_mean = property(lambda self: self._weight("moving_mean"))
    moving_variance = property(lambda self: self._weight("moving_variance"))

    @property
    def trainable_weights(self):
        if not self.trainable:
            return []
        return [a for n, a in self._weights if n in ("gamma", "beta")]

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [a for n, a in self._weights if n not in ("gamma", "beta")]

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum,
                "epsilon": self.epsilon, "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer":
                    initializers.serialize(self.moving_variance_initializer),
                "beta_regularizer": None, "gamma_regularizer": None, "beta_constraint": None,
                "gamma_constraint": None, "synchronized": self.synchronized,
                "renorm": self.renorm, "renorm_clipping": self.renorm_clipping,
                "renorm_momentum": self.renorm_momentum}

    def _engine_spec(self):
        return {"kind": "batch_norm", "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale, "trainable": self.trainable}

    def call(self, inputs, training=False):
        """Eager call; `training=True` also moves the moving statistics, as Keras does."""
        if not training or not self.trainable:
            return super().call(inputs, training=False)
        y, mean, var = ops.batch_norm_forward(inputs, self.gamma, self.beta, self.moving_mean,
                                              self.moving_variance, training=True,
                                              epsilon=self.epsilon)
        m = self.momentum
        self.moving_mean[...] = self.moving_mean * m + mean * (1.0 - m)
        self.moving_variance[...] = self.moving_variance * m + var * (1.0 - m)
        return y
