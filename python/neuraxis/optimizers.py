"""Optimizers of the Keras front: SGD, Adam, RMSprop.

An optimizer holds its hyper-parameters, its step count (`iterations`) and its
slot arrays (Adam's moments, SGD's velocities, RMSprop's mean squares). The
engine performs the update in C++ on those same arrays; Python only hands them
over and reads the step count back. Changing `learning_rate` between epochs
(callbacks do) takes effect at the next engine call.

Example
-------
>>> from neuraxis import optimizers
>>> opt = optimizers.get("adam")
>>> opt.learning_rate, opt.beta_1, opt.epsilon
(0.001, 0.9, 1e-07)
"""
import numpy as np

from . import _core, _names

_UNSUPPORTED_DEFAULTS = {"weight_decay": None, "clipnorm": None, "clipvalue": None,
                         "global_clipnorm": None, "use_ema": False, "ema_momentum": 0.99,
                         "ema_overwrite_frequency": None, "loss_scale_factor": None,
                         "gradient_accumulation_steps": None}


class Optimizer:
    """Base class: learning rate, step count, slot arrays and config."""

    _kind = None
    _slots = 1          # arrays per weight in `m`
    _two_moments = False

    def __init__(self, learning_rate, name, **kwargs):
        for k, v in kwargs.items():
            if k not in _UNSUPPORTED_DEFAULTS:
                raise ValueError(f"Argument(s) not recognized: {{'{k}': {v!r}}}")
            if v != _UNSUPPORTED_DEFAULTS[k]:
                raise NotImplementedError(f"{type(self).__name__}({k}={v!r}) is not supported yet")
        self.name = name
        self.learning_rate = learning_rate
        self.iterations = 0
        self._m, self._v = [], []
        self._trainable = None  # per slot: counted in `variables` (build's `trainable`)
        self.built = False

    @property
    def learning_rate(self):
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise NotImplementedError(
                f"learning_rate must be a number (schedules are not supported yet), got {value!r}"
            ) from None
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"learning_rate must be a finite number >= 0, got {value}")
        self._learning_rate = value

    def build(self, params, trainable=None):
        """Create zeroed slots shaped like `params` (keeps them if the shapes already match).

        `trainable` (one flag per param) says which slots Keras would have: the engine keeps
        a slot per param, but a frozen one (BatchNormalization's moving statistics, a
        layer with trainable=False) is never touched and not counted in `variables`."""
        shapes = [p.shape for p in params]
        self._trainable = [True] * len(params) if trainable is None else [bool(t) for t in
                                                                         trainable]
        if self.built and [a.shape for a in self._m] == shapes:
            return
        self._m = [np.zeros(s, np.float32) for s in shapes]
        self._v = [np.zeros(s, np.float32) for s in shapes] if self._needs_v() else []
        self.iterations = 0
        self.built = True

    @property
    def variables(self):
        """iterations, learning rate and the slots, as Keras counts them in `summary()`."""
        mask = getattr(self, "_trainable", None) or [True] * len(self._m)  # old pickles
        return [np.array(self.iterations, np.int32), np.array(self.learning_rate, np.float32)] \
            + [a for a, t in zip(self._m, mask) if t and self._uses_m()] \
            + [a for a, t in zip(self._v, mask) if t]

    def _uses_m(self):
        return True

    def _needs_v(self):
        return self._two_moments

    def _engine_config(self):
        c = _core.OptConfig()
        c.kind = self._kind
        c.learning_rate = self.learning_rate
        c.t = int(self.iterations)
        # OptConfig's own defaults are scikit-learn's (momentum 0.9, nesterov): set every field.
        c.momentum, c.nesterov, c.rho = 0.0, False, 0.9
        c.beta_1, c.beta_2, c.epsilon = 0.9, 0.999, 1e-7
        self._fill(c)
        return c

    def _fill(self, c):
        pass

    def _absorb(self, c):
        self.iterations = int(c.t)

    def get_config(self):
        return {"name": self.name, "learning_rate": self.learning_rate,
                **_UNSUPPORTED_DEFAULTS}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return f"<{type(self).__name__} learning_rate={self.learning_rate}>"


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum, Keras's update rule.

    Example
    -------
    >>> from neuraxis.optimizers import SGD
    >>> SGD(learning_rate=0.1, momentum=0.9, nesterov=True).get_config()["nesterov"]
    True
    """

    _kind = "sgd"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        if not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
            raise ValueError("`momentum` must be a float between [0, 1].")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    def _uses_m(self):
        return self.momentum != 0  # Keras creates no velocity without momentum

    def _fill(self, c):
        c.momentum = self.momentum
        c.nesterov = self.nesterov

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam with Keras's defaults and epsilon placement (epsilon added to sqrt(v_hat)).

    Example
    -------
    >>> from neuraxis.optimizers import Adam
    >>> Adam(learning_rate=0.01).get_config()["beta_2"]
    0.999
    """

    _kind = "adam"
    _two_moments = True

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, name="adam", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        if amsgrad:
            raise NotImplementedError("Adam(amsgrad=True) is not supported yet")
        self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
        self.amsgrad = False

    def _fill(self, c):
        c.beta_1, c.beta_2, c.epsilon = self.beta_1, self.beta_2, self.epsilon

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": False}


class RMSprop(Optimizer):
    """RMSprop, Keras's form: ms = rho ms + (1 - rho) g²; step = lr g / sqrt(ms + eps);
    with momentum, mom = momentum mom + step and the weights move by mom.

    Example
    -------
    >>> from neuraxis.optimizers import RMSprop
    >>> RMSprop().get_config()["rho"]
    0.9
    """

    _kind = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 name="rmsprop", **kwargs):
        super().__init__(learning_rate, name, **kwargs)
        if centered:
            raise NotImplementedError("RMSprop(centered=True) is not supported by the engine yet")
        if not isinstance(momentum, (int, float)) or momentum < 0:
            raise ValueError(f"`momentum` must be a float >= 0, got {momentum!r}")
        self.rho, self.epsilon = float(rho), float(epsilon)
        self.momentum, self.centered = float(momentum), False

    def _needs_v(self):
        return self.momentum > 0  # the momentum buffers travel in the engine's `v` list

    def _fill(self, c):
        c.rho, c.epsilon, c.momentum = self.rho, self.epsilon, self.momentum

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": self.centered}


_CLASSES = {"SGD": SGD, "Adam": Adam, "RMSprop": RMSprop}
_NAMES = {"sgd": SGD, "adam": Adam, "rmsprop": RMSprop}
_names.require("optimizers", [c._kind for c in _CLASSES.values()], __name__)


def get(identifier):
    """An optimizer from a name ('adam'), a serialized dict or an instance."""
    if isinstance(identifier, Optimizer):
        return identifier
    if isinstance(identifier, str):
        cls = _NAMES.get(identifier.lower())
        if cls is None:
            raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}. "
                             f"Valid names: {sorted(_NAMES)}")
        return cls()
    if isinstance(identifier, dict):
        return deserialize(identifier)
    raise ValueError(f"Could not interpret optimizer identifier: {identifier!r}")


def serialize(optimizer):
    return {"module": "keras.optimizers", "class_name": type(optimizer).__name__,
            "config": optimizer.get_config(), "registered_name": None}


def deserialize(config):
    name = config.get("class_name") if isinstance(config, dict) else None
    cls = _CLASSES.get(name) or _NAMES.get(str(name).lower())
    if cls is None:
        raise ValueError(f"Unknown optimizer class {name!r}; known: {sorted(_CLASSES)}")
    inner = config.get("config") or {}
    if not isinstance(inner, dict):
        raise ValueError(f"Invalid optimizer config {inner!r}")
    try:
        return cls.from_config(dict(inner))
    except TypeError as e:
        raise ValueError(f"Invalid config for optimizer {name!r}: {e}") from None
