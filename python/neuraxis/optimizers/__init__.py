"""Optimizers of the Keras front: SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax, Nadam.

An optimizer holds its hyper-parameters, its step count (`iterations`) and its
slot arrays (Adam's moments, SGD's velocities, RMSprop's mean squares, ...).
The engine performs the update in C++ on those same arrays, with Keras's
options in Keras's order: the gradient is clipped (`clipnorm` per weight,
`global_clipnorm` over all weights, or `clipvalue`), the weights decay
(`weight_decay`: w -= w * wd * lr), then the optimizer's update runs. Python
only hands the arrays over and reads the step count back. `learning_rate` is
a number or a schedule (`neuraxis.optimizers.schedules`), which the engine
evaluates at every step; changing a number between epochs (callbacks do) takes
effect at the next engine call.

Example
-------
>>> from neuraxis import optimizers
>>> opt = optimizers.get("adam")
>>> opt.learning_rate, opt.beta_1, opt.epsilon
(0.001, 0.9, 1e-07)
>>> optimizers.get("adamw").get_config()["weight_decay"]
0.004
"""
import re
import warnings

import numpy as np

from .. import _core, _names
from .._keras.utils import user_stacklevel
from . import schedules
from .schedules import LearningRateSchedule

_UNSUPPORTED_DEFAULTS = {"use_ema": False, "ema_momentum": 0.99,
                         "ema_overwrite_frequency": None, "loss_scale_factor": None,
                         "gradient_accumulation_steps": None}


def _optional_float(name, value):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"`{name}` must be a float or None. Received: {name}={value!r}")
    return float(value)


def _unit(name, value):
    """A decay rate in [0, 1] (beta_1, beta_2, rho): NaN or 2 would only make NaN weights."""
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"`{name}` must be a float between [0, 1], got {value!r}")
    return v


def _nonnegative(name, value):
    v = float(value)
    if not (np.isfinite(v) and v >= 0.0):
        raise ValueError(f"`{name}` must be a finite float >= 0, got {value!r}")
    return v


class Optimizer:
    """Base class: learning rate (or schedule), clipping, weight decay, step count, slots."""

    _kind = None
    # The slot lists the engine keeps per weight, in Keras's groups: each group's
    # slots are made weight by weight (Keras's add_optimizer_variables interleaves them).
    _groups = ((0,),)

    def __init__(self, learning_rate, name, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, **kwargs):
        if kwargs.pop("decay", None) is not None:
            warnings.warn("Argument `decay` is no longer supported and will be ignored.",
                          stacklevel=user_stacklevel())
        for k, v in kwargs.items():
            if k not in _UNSUPPORTED_DEFAULTS:
                raise ValueError(f"Argument(s) not recognized: {{'{k}': {v!r}}}")
            if v != _UNSUPPORTED_DEFAULTS[k]:
                raise NotImplementedError(f"{type(self).__name__}({k}={v!r}) is not supported yet")
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. "
                f"Received: clipnorm={clipnorm}, clipvalue={clipvalue}, "
                f"global_clipnorm={global_clipnorm}")
        self.weight_decay = _optional_float("weight_decay", weight_decay)
        self.clipnorm = _optional_float("clipnorm", clipnorm)
        self.clipvalue = _optional_float("clipvalue", clipvalue)
        self.global_clipnorm = _optional_float("global_clipnorm", global_clipnorm)
        self.name = name
        self._schedule = None
        self.learning_rate = learning_rate
        self.iterations = 0
        self._m, self._v = [], []  # engine slots: first, then second and third (see build)
        self._trainable = None  # per slot: counted in `variables` (build's `trainable`)
        self.built = False

    @property
    def learning_rate(self):
        """The number, or with a schedule its value at `iterations` (as Keras reads it)."""
        if self._schedule is not None:
            return self._schedule(self.iterations)
        return self._learning_rate

    @learning_rate.setter
    def learning_rate(self, value):
        if isinstance(value, LearningRateSchedule):
            if value._engine_name is None:
                raise NotImplementedError(
                    f"learning_rate={type(value).__name__}(...): only the built-in schedules "
                    "of neuraxis.optimizers.schedules run in the engine")
            self._schedule = value
            return
        if self._schedule is not None:
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its "
                "`learning_rate` constructor argument, hence its learning rate is not "
                "settable. If you need the learning rate to be settable, you should "
                "instantiate the optimizer with a float `learning_rate` argument.")
        if callable(value):
            raise NotImplementedError("learning_rate as a plain callable is not supported; "
                                      "pass a neuraxis.optimizers.schedules schedule")
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise ValueError("Argument `learning_rate` should be float, or an instance of "
                             f"LearningRateSchedule. Received instead: learning_rate={value!r}"
                             ) from None
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"learning_rate must be a finite number >= 0, got {value}")
        self._learning_rate = value

    def exclude_from_weight_decay(self, var_list=None, var_names=None):
        """Exclude weights from weight decay: the arrays in `var_list` (a layer's `weights`
        entries) and every weight whose name ('kernel', 'bias', 'gamma', ...) contains one
        of the strings of `var_names` (a regular-expression search, as Keras's)."""
        self._wd_exclude_ids = {id(v) for v in var_list} if var_list else set()
        self._wd_exclude_names = list(var_names) if var_names else []
        self._wd_exclude_pattern = (re.compile("|".join(set(var_names))) if var_names
                                    else None)

    def _excludes_weight_decay(self):
        return bool(getattr(self, "_wd_exclude_ids", None) or
                    getattr(self, "_wd_exclude_pattern", None))

    def _no_decay_flags(self, params, names):
        """One flag per engine parameter: 1 where weight decay skips it."""
        ids = getattr(self, "_wd_exclude_ids", set())
        pattern = getattr(self, "_wd_exclude_pattern", None)
        return [int(id(p) in ids or (pattern is not None and pattern.search(n) is not None))
                for p, n in zip(params, names)]

    def _n_slots(self):
        """How many slot lists the engine needs (1, 2 or 3)."""
        return 1 + max((i for g in self._groups for i in g), default=0)

    def _slot_init(self, slot):
        return 0.0

    def build(self, params, trainable=None):
        """Create the slots shaped like `params` (keeps them if the shapes already match).

        `trainable` (one flag per param) says which slots Keras would have: the engine keeps
        a slot per param, but a frozen one (BatchNormalization's moving statistics, a
        layer with trainable=False) is never touched and not counted in `variables`.
        The engine's `m` is the first slot list; `v` the second, then the third."""
        shapes = [p.shape for p in params]
        self._trainable = [True] * len(params) if trainable is None else [bool(t) for t in
                                                                         trainable]
        n = self._n_slots()
        if self.built and [a.shape for a in self._m] == shapes and \
                len(self._v) == len(shapes) * (n - 1):
            return
        self._m = [np.full(s, self._slot_init(0), np.float32) for s in shapes]
        self._v = [np.full(s, self._slot_init(k), np.float32) for k in range(1, n)
                   for s in shapes]
        self.iterations = 0
        self._reset_scalars()
        self.built = True

    def _reset_scalars(self):
        pass

    def _scalar_state(self):
        """State beyond the step count and slots, for a saved model (a JSON dict)."""
        return {}

    def _load_scalar_state(self, state):
        pass

    def _slot(self, k):
        """Slot list k (0: m, 1..: the parts of v)."""
        if k == 0:
            return self._m
        n = len(self._m)
        return self._v[(k - 1) * n:k * n]

    @property
    def variables(self):
        """iterations, learning rate (unless a schedule) and the slots, as Keras lists them."""
        mask = getattr(self, "_trainable", None) or [True] * len(self._m)  # old pickles
        out = [np.array(self.iterations, np.int32)]
        if getattr(self, "_schedule", None) is None:
            out.append(np.array(self.learning_rate, np.float32))
        if self._m:
            for group in self._groups:
                lists = [self._slot(k) for k in group]
                out += [a[i] for i, t in enumerate(mask) if t for a in lists]
        return out + self._extra_variables()

    def _extra_variables(self):
        return []

    def _engine_config(self):
        c = _core.OptConfig()
        c.kind = self._kind
        c.t = int(self.iterations)
        if getattr(self, "_schedule", None) is not None:
            self._schedule._fill(c)
        else:
            c.learning_rate = self.learning_rate
        # OptConfig's own defaults are scikit-learn's (momentum 0.9, nesterov): set every field.
        c.momentum, c.nesterov, c.rho = 0.0, False, 0.9
        c.beta_1, c.beta_2, c.epsilon = 0.9, 0.999, 1e-7
        c.clipnorm = getattr(self, "clipnorm", None) or 0.0
        c.clipvalue = getattr(self, "clipvalue", None) or 0.0
        c.global_clipnorm = getattr(self, "global_clipnorm", None) or 0.0
        c.weight_decay = getattr(self, "weight_decay", None) or 0.0
        self._fill(c)
        return c

    def _fill(self, c):
        pass

    def _absorb(self, c):
        self.iterations = int(c.t)

    def get_config(self):
        lr = (schedules.serialize(self._schedule) if getattr(self, "_schedule", None)
              is not None else self.learning_rate)
        return {"name": self.name, "learning_rate": lr,
                "weight_decay": getattr(self, "weight_decay", None),
                "clipnorm": getattr(self, "clipnorm", None),
                "global_clipnorm": getattr(self, "global_clipnorm", None),
                "clipvalue": getattr(self, "clipvalue", None), **_UNSUPPORTED_DEFAULTS}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        lr = config.get("learning_rate")
        if isinstance(lr, dict):
            config["learning_rate"] = schedules.deserialize(lr)
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

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name="sgd", **kwargs):
        super().__init__(learning_rate, name, weight_decay, clipnorm, clipvalue,
                         global_clipnorm, **kwargs)
        if not isinstance(momentum, (int, float)) or not 0 <= momentum <= 1:
            raise ValueError("`momentum` must be a float between [0, 1].")
        self.momentum = float(momentum)
        self.nesterov = bool(nesterov)

    @property
    def _groups(self):
        return ((0,),) if self.momentum != 0 else ()  # Keras makes no velocity without momentum

    def _n_slots(self):
        return 1  # the engine's SGD takes a velocity list either way

    def _fill(self, c):
        c.momentum = self.momentum
        c.nesterov = self.nesterov

    def get_config(self):
        return {**super().get_config(), "momentum": self.momentum, "nesterov": self.nesterov}


class Adam(Optimizer):
    """Adam with Keras's defaults and epsilon placement (epsilon added to sqrt(v_hat));
    `amsgrad` keeps the running maximum of v.

    Example
    -------
    >>> from neuraxis.optimizers import Adam
    >>> Adam(learning_rate=0.01).get_config()["beta_2"]
    0.999
    >>> len(Adam(amsgrad=True)._groups)
    2
    """

    _kind = "adam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 amsgrad=False, weight_decay=None, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name="adam", **kwargs):
        super().__init__(learning_rate, name, weight_decay, clipnorm, clipvalue,
                         global_clipnorm, **kwargs)
        self.beta_1, self.beta_2 = _unit("beta_1", beta_1), _unit("beta_2", beta_2)
        self.epsilon = _nonnegative("epsilon", epsilon)
        self.amsgrad = bool(amsgrad)

    @property
    def _groups(self):  # momentums and velocities interleaved, then velocity_hats
        return ((0, 1), (2,)) if getattr(self, "amsgrad", False) else ((0, 1),)

    def _fill(self, c):
        c.beta_1, c.beta_2, c.epsilon = self.beta_1, self.beta_2, self.epsilon
        c.amsgrad = getattr(self, "amsgrad", False)

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon, "amsgrad": getattr(self, "amsgrad", False)}


class AdamW(Adam):
    """Adam with decoupled weight decay (default 0.004): w -= w * weight_decay * lr first.

    Example
    -------
    >>> from neuraxis.optimizers import AdamW
    >>> AdamW().get_config()["weight_decay"], AdamW().name
    (0.004, 'adam_w')
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999,
                 epsilon=1e-7, amsgrad=False, clipnorm=None, clipvalue=None,
                 global_clipnorm=None, name="adam_w", **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, amsgrad, weight_decay,
                         clipnorm, clipvalue, global_clipnorm, name, **kwargs)
        if self.weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: "
                             "weight_decay=None")


class RMSprop(Optimizer):
    """RMSprop, Keras's form: ms = rho ms + (1 - rho) g²; step = lr g / sqrt(ms + eps);
    centered, the squared mean gradient is subtracted under the root; with momentum,
    mom = momentum mom + step and the weights move by mom.

    Example
    -------
    >>> from neuraxis.optimizers import RMSprop
    >>> RMSprop().get_config()["rho"]
    0.9
    """

    _kind = "rmsprop"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name="rm_sprop", **kwargs):  # Keras's auto-name of the class
        super().__init__(learning_rate, name, weight_decay, clipnorm, clipvalue,
                         global_clipnorm, **kwargs)
        if not isinstance(momentum, (int, float)) or momentum < 0:
            raise ValueError(f"`momentum` must be a float >= 0, got {momentum!r}")
        self.rho, self.epsilon = _unit("rho", rho), _nonnegative("epsilon", epsilon)
        self.momentum, self.centered = float(momentum), bool(centered)

    @property
    def _groups(self):  # velocities, momentums, average_gradients: each its own group
        centered = getattr(self, "centered", False)
        return ((0,),) + (((1,),) if self.momentum > 0 else ()) + (((2,),) if centered else ())

    def _fill(self, c):
        c.rho, c.epsilon, c.momentum = self.rho, self.epsilon, self.momentum
        c.centered = getattr(self, "centered", False)

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "momentum": self.momentum,
                "epsilon": self.epsilon, "centered": getattr(self, "centered", False)}


class Adagrad(Optimizer):
    """Adagrad: acc += g²; w -= lr g / sqrt(acc + eps), the accumulators starting at
    `initial_accumulator_value`.

    Example
    -------
    >>> from neuraxis.optimizers import Adagrad
    >>> Adagrad().get_config()["initial_accumulator_value"]
    0.1
    """

    _kind = "adagrad"

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name="adagrad", **kwargs):
        super().__init__(learning_rate, name, weight_decay, clipnorm, clipvalue,
                         global_clipnorm, **kwargs)
        self.initial_accumulator_value = float(initial_accumulator_value)
        self.epsilon = _nonnegative("epsilon", epsilon)

    def _slot_init(self, slot):
        return self.initial_accumulator_value

    def _fill(self, c):
        c.epsilon = self.epsilon

    def get_config(self):
        return {**super().get_config(),
                "initial_accumulator_value": self.initial_accumulator_value,
                "epsilon": self.epsilon}


class Adadelta(Optimizer):
    """Adadelta: running means of g² and of the squared updates (rho), steps scaled by lr.

    Example
    -------
    >>> from neuraxis.optimizers import Adadelta
    >>> Adadelta().get_config()["rho"]
    0.95
    """

    _kind = "adadelta"
    _groups = ((0, 1),)  # accumulated_grad, accumulated_delta_var, interleaved

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, name="adadelta",
                 **kwargs):
        super().__init__(learning_rate, name, weight_decay, clipnorm, clipvalue,
                         global_clipnorm, **kwargs)
        self.rho, self.epsilon = _unit("rho", rho), _nonnegative("epsilon", epsilon)

    def _fill(self, c):
        c.rho, c.epsilon = self.rho, self.epsilon

    def get_config(self):
        return {**super().get_config(), "rho": self.rho, "epsilon": self.epsilon}


class Adamax(Optimizer):
    """Adamax: Adam with the infinity norm, u = max(beta_2 u, |g|).

    Example
    -------
    >>> from neuraxis.optimizers import Adamax
    >>> Adamax().get_config()["beta_2"]
    0.999
    """

    _kind = "adamax"
    _groups = ((0, 1),)  # m, u

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name="adamax", **kwargs):
        super().__init__(learning_rate, name, weight_decay, clipnorm, clipvalue,
                         global_clipnorm, **kwargs)
        self.beta_1, self.beta_2 = _unit("beta_1", beta_1), _unit("beta_2", beta_2)
        self.epsilon = _nonnegative("epsilon", epsilon)

    def _fill(self, c):
        c.beta_1, c.beta_2, c.epsilon = self.beta_1, self.beta_2, self.epsilon

    def get_config(self):
        return {**super().get_config(), "beta_1": self.beta_1, "beta_2": self.beta_2,
                "epsilon": self.epsilon}


class Nadam(Adamax):
    """Nadam: Adam with Nesterov momentum and Keras's momentum schedule
    beta_1 (1 - 0.5 * 0.96^t), whose running product is one more variable.

    Example
    -------
    >>> from neuraxis.optimizers import Nadam
    >>> Nadam().name
    'nadam'
    """

    _kind = "nadam"

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 name="nadam", **kwargs):
        super().__init__(learning_rate, beta_1, beta_2, epsilon, weight_decay, clipnorm,
                         clipvalue, global_clipnorm, name, **kwargs)
        self._u_product = 1.0

    def _reset_scalars(self):
        self._u_product = 1.0

    def _scalar_state(self):
        return {"u_product": self._u_product}

    def _load_scalar_state(self, state):
        u = state.get("u_product", 1.0)
        if isinstance(u, bool) or not isinstance(u, (int, float)) or not 0 <= u <= 1:
            raise ValueError(f"invalid Nadam u_product {u!r}")
        self._u_product = float(u)

    def _extra_variables(self):
        return [np.array(self._u_product, np.float32)] if self._m else []

    def _fill(self, c):
        super()._fill(c)
        c.u_product = self._u_product

    def _absorb(self, c):
        super()._absorb(c)
        self._u_product = float(c.u_product)


_CLASSES = {c.__name__: c for c in (SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, Adamax,
                                     Nadam)}
_NAMES = {name.lower(): c for name, c in _CLASSES.items()}
_names.require("optimizers", sorted({c._kind for c in _CLASSES.values()}), __name__)


def get(identifier):
    """An optimizer from a name ('adam', 'adamw', ...), a serialized dict or an instance."""
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
