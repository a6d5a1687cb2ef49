"""Learning-rate schedules, Keras's `keras.optimizers.schedules`.

A schedule passed as an optimizer's `learning_rate` is evaluated by the engine
at every training step (its parameters travel in the optimizer's engine
config), at the optimizer's `iterations` before the step, as Keras does.
Calling a schedule in Python, `schedule(step)`, runs the engine's same formula
and returns a float32 scalar.

Example
-------
>>> from neuraxis.optimizers.schedules import ExponentialDecay
>>> lr = ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)
>>> round(float(lr(10)), 6), round(float(lr(20)), 6)
(0.05, 0.025)
"""
import math
import numbers

import numpy as np

from .. import _core

__all__ = ["LearningRateSchedule", "ExponentialDecay", "InverseTimeDecay",
           "PiecewiseConstantDecay", "PolynomialDecay", "CosineDecay", "serialize",
           "deserialize"]


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, (numbers.Real, np.floating,
                                                         np.integer)):
        raise ValueError(f"Argument `{name}` must be a number. Received: {name}={value!r}")
    return float(value)


def _positive_steps(value):
    if value <= 0:
        raise ValueError(f"Argument `decay_steps` must be > 0. Received: decay_steps={value}")


class LearningRateSchedule:
    """Base class of the schedules; the engine evaluates the built-in ones only."""

    _engine_name = None

    def __call__(self, step):
        if self._engine_name is None:
            raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                      "override `__call__(self, step)`.")
        if isinstance(step, np.ndarray):
            step = step.item()
        if isinstance(step, bool) or not isinstance(step, (numbers.Integral, np.integer)):
            if not (isinstance(step, (numbers.Real, np.floating)) and float(step).is_integer()):
                raise ValueError(f"`step` must be a whole number of steps, got {step!r}")
        c = _core.OptConfig()
        self._fill(c)
        return np.float32(_core.scheduled_lr(c, int(step)))

    def _fill(self, c):
        """Write the schedule's name and parameters into an engine OptConfig."""
        raise NotImplementedError

    def get_config(self):
        raise NotImplementedError(f"Learning rate schedule '{type(self).__name__}' must "
                                  "override `get_config()` in order to be serializable.")

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class ExponentialDecay(LearningRateSchedule):
    """`initial_learning_rate * decay_rate ** (step / decay_steps)` (floored with staircase).

    Example
    -------
    >>> ExponentialDecay(1.0, 4, 0.5, staircase=True)(7)
    np.float32(0.5)
    """

    _engine_name = "exponential"

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="ExponentialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        _positive_steps(self.decay_steps)

    def _fill(self, c):
        c.schedule = self._engine_name
        c.schedule_args = [_number("initial_learning_rate", self.initial_learning_rate),
                           _number("decay_steps", self.decay_steps),
                           _number("decay_rate", self.decay_rate), float(bool(self.staircase))]

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "decay_rate": self.decay_rate,
                "staircase": self.staircase, "name": self.name}


class InverseTimeDecay(ExponentialDecay):
    """`initial_learning_rate / (1 + decay_rate * step / decay_steps)` (floored with staircase).

    Example
    -------
    >>> InverseTimeDecay(1.0, 1, 0.5)(2)
    np.float32(0.5)
    """

    _engine_name = "inverse_time"

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False,
                 name="InverseTimeDecay"):
        super().__init__(initial_learning_rate, decay_steps, decay_rate, staircase, name)


class PiecewiseConstantDecay(LearningRateSchedule):
    """`values[0]` while `step <= boundaries[0]`, ..., `values[-1]` after `boundaries[-1]`.

    Example
    -------
    >>> s = PiecewiseConstantDecay([10, 20], [1.0, 0.5, 0.1])
    >>> [float(s(k)) for k in (10, 11, 21)]
    [1.0, 0.5, 0.10000000149011612]
    """

    _engine_name = "piecewise"

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. "
                f"Received: boundaries={boundaries} of length {len(boundaries)}, and "
                f"values={values} of length {len(values)}.")
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def _fill(self, c):
        c.schedule = self._engine_name
        # Keras casts the boundaries to the step's (integer) dtype
        c.schedule_boundaries = [float(int(_number("boundaries", b))) for b in self.boundaries]
        c.schedule_values = [_number("values", v) for v in self.values]

    def get_config(self):
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """From `initial_learning_rate` to `end_learning_rate` over `decay_steps` as
    `(1 - step / decay_steps) ** power`; with `cycle`, over the next multiple of decay_steps.

    Example
    -------
    >>> PolynomialDecay(1.0, 10, end_learning_rate=0.0)(5)
    np.float32(0.5)
    """

    _engine_name = "polynomial"

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0,
                 cycle=False, name="PolynomialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name
        _positive_steps(self.decay_steps)

    def _fill(self, c):
        c.schedule = self._engine_name
        c.schedule_args = [_number("initial_learning_rate", self.initial_learning_rate),
                           _number("decay_steps", self.decay_steps),
                           _number("end_learning_rate", self.end_learning_rate),
                           _number("power", self.power), float(bool(self.cycle))]

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "cycle": self.cycle, "name": self.name}


class CosineDecay(LearningRateSchedule):
    """Cosine decay to `alpha` times the start over `decay_steps`, after an optional linear
    warmup from `initial_learning_rate` to `warmup_target` over `warmup_steps`.

    Example
    -------
    >>> CosineDecay(1.0, 10)(5)
    np.float32(0.5)
    """

    _engine_name = "cosine"

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay",
                 warmup_target=None, warmup_steps=0):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_steps = warmup_steps
        self.warmup_target = warmup_target
        _positive_steps(self.decay_steps)

    def _fill(self, c):
        c.schedule = self._engine_name
        target = math.nan if self.warmup_target is None else _number("warmup_target",
                                                                     self.warmup_target)
        c.schedule_args = [_number("initial_learning_rate", self.initial_learning_rate),
                           _number("decay_steps", self.decay_steps),
                           _number("alpha", self.alpha), target,
                           _number("warmup_steps", self.warmup_steps)]

    def get_config(self):
        return {"initial_learning_rate": self.initial_learning_rate,
                "decay_steps": self.decay_steps, "alpha": self.alpha, "name": self.name,
                "warmup_target": self.warmup_target, "warmup_steps": self.warmup_steps}


_CLASSES = {c.__name__: c for c in (ExponentialDecay, InverseTimeDecay, PiecewiseConstantDecay,
                                     PolynomialDecay, CosineDecay)}


def serialize(learning_rate_schedule):
    """The schedule as Keras serializes it: module, class_name, config, registered_name."""
    return {"module": "keras.optimizers.schedules",
            "class_name": type(learning_rate_schedule).__name__,
            "config": learning_rate_schedule.get_config(), "registered_name": None}


def deserialize(config, custom_objects=None):
    """A schedule from `serialize`'s dict (or Keras's `{'class_name', 'config'}`)."""
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(f"Could not interpret serialized decay: {config!r}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _CLASSES.get(name)
    if cls is None:
        raise ValueError(f"Unknown decay: '{name}'. Known schedules: {sorted(_CLASSES)}")
    return cls.from_config(dict(config.get("config") or {}))
