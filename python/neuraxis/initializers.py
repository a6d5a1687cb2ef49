"""Weight initializers of the Keras front.

An initializer is called with a shape and returns a float32 NumPy array. With
`seed=None` it draws from the global stream that
`neuraxis.utils.set_random_seed` resets; with an int seed every call
returns the same values (as a seeded Keras initializer does).

Example
-------
>>> from neuraxis import initializers
>>> w = initializers.get("glorot_uniform")((64, 100))
>>> w.shape, w.dtype, bool(abs(w).max() <= (6 / 164) ** 0.5)
((64, 100), dtype('float32'), True)
"""
import math

import numpy as np

from ._keras import session


def _fans(shape, input_axes=None, output_axes=None):
    # Keras: dense (in, out); conv (kh, kw, in, out) -> receptive field times channels;
    # with both axis lists given, the products of those axes (Keras 3's compute_fans).
    if input_axes is not None and output_axes is not None:
        return (math.prod(shape[a] for a in input_axes),
                math.prod(shape[a] for a in output_axes))
    if len(shape) == 0:
        return 1, 1
    if len(shape) == 1:
        return shape[0], shape[0]
    if len(shape) == 2:
        return shape[0], shape[1]
    rf = math.prod(shape[:-2])
    return shape[-2] * rf, shape[-1] * rf


class Initializer:
    """Base class: `__call__(shape, dtype=None)` returns a float32 array."""

    def __call__(self, shape, dtype=None):
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def _generator(self):
        seed = getattr(self, "seed", None)
        return session.rng() if seed is None else np.random.default_rng(seed)


class Zeros(Initializer):
    """All zeros."""

    def __call__(self, shape, dtype=None):
        return np.zeros(shape, dtype=np.float32)


class Ones(Initializer):
    """All ones."""

    def __call__(self, shape, dtype=None):
        return np.ones(shape, dtype=np.float32)


class Constant(Initializer):
    """Every entry equal to `value`."""

    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=None):
        return np.full(shape, self.value, dtype=np.float32)

    def get_config(self):
        return {"value": self.value}


class RandomUniform(Initializer):
    """U(minval, maxval)."""

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval, self.seed = minval, maxval, seed

    def __call__(self, shape, dtype=None):
        return self._generator().uniform(self.minval, self.maxval, shape).astype(np.float32)

    def get_config(self):
        return {"minval": self.minval, "maxval": self.maxval, "seed": self.seed}


class RandomNormal(Initializer):
    """N(mean, stddev)."""

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev, self.seed = mean, stddev, seed

    def __call__(self, shape, dtype=None):
        return self._generator().normal(self.mean, self.stddev, shape).astype(np.float32)

    def get_config(self):
        return {"mean": self.mean, "stddev": self.stddev, "seed": self.seed}


class VarianceScaling(Initializer):
    """Keras's VarianceScaling: scale / fan, uniform or truncated normal."""

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None,
                 input_axes=None, output_axes=None):
        if mode not in ("fan_in", "fan_out", "fan_avg"):
            raise ValueError(f"Invalid `mode` argument: {mode!r}; expected fan_in, fan_out or "
                             "fan_avg")
        if distribution not in ("truncated_normal", "untruncated_normal", "uniform"):
            raise ValueError(f"Invalid `distribution` argument: {distribution!r}")
        self.scale, self.mode, self.distribution, self.seed = scale, mode, distribution, seed
        self.input_axes = None if input_axes is None else [int(a) for a in input_axes]
        self.output_axes = None if output_axes is None else [int(a) for a in output_axes]

    def __call__(self, shape, dtype=None):
        shape = tuple(int(s) for s in shape)
        fan_in, fan_out = _fans(shape, self.input_axes, self.output_axes)
        fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        var = self.scale / max(1.0, fan)
        g = self._generator()
        if self.distribution == "uniform":
            lim = math.sqrt(3.0 * var)
            return g.uniform(-lim, lim, shape).astype(np.float32)
        if self.distribution == "untruncated_normal":
            return g.normal(0.0, math.sqrt(var), shape).astype(np.float32)
        # Truncated at 2 stddev; 0.8796... rescales so the variance stays `var`.
        std = math.sqrt(var) / 0.87962566103423978
        out = g.normal(0.0, std, shape)
        bad = np.abs(out) > 2 * std
        while bad.any():  # redraw the tails (about 5 % per round)
            out[bad] = g.normal(0.0, std, int(bad.sum()))
            bad = np.abs(out) > 2 * std
        return out.astype(np.float32)

    def get_config(self):
        return {"seed": self.seed, "scale": self.scale, "mode": self.mode,
                "distribution": self.distribution, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


class GlorotUniform(VarianceScaling):
    """U(±sqrt(6 / (fan_in + fan_out))) — the Dense default."""

    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(1.0, "fan_avg", "uniform", seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


class GlorotNormal(VarianceScaling):
    """Truncated N(0, 2 / (fan_in + fan_out))."""

    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(1.0, "fan_avg", "truncated_normal", seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


class HeUniform(VarianceScaling):
    """U(±sqrt(6 / fan_in))."""

    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(2.0, "fan_in", "uniform", seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


class HeNormal(VarianceScaling):
    """Truncated N(0, 2 / fan_in)."""

    def __init__(self, seed=None, input_axes=None, output_axes=None):
        super().__init__(2.0, "fan_in", "truncated_normal", seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self.seed, "input_axes": self.input_axes,
                "output_axes": self.output_axes}


class Orthogonal(Initializer):
    """An orthogonal matrix (times `gain`) — the recurrent kernels' default.

    As Keras: the Q of the QR decomposition of a normal (max(r, c), min(r, c)) matrix,
    columns sign-corrected by diag(R) so Q is uniformly distributed, transposed when the
    (flattened) shape has fewer rows r = prod(shape[:-1]) than columns c = shape[-1].

    Example
    -------
    >>> import numpy as np
    >>> from neuraxis.initializers import Orthogonal
    >>> q = Orthogonal(seed=1)((4, 4))
    >>> bool(np.allclose(q @ q.T, np.eye(4), atol=1e-6))
    True
    """

    def __init__(self, gain=1.0, seed=None):
        self.gain, self.seed = gain, seed

    def __call__(self, shape, dtype=None):
        shape = tuple(int(s) for s in shape)
        if len(shape) < 2:
            raise ValueError("The tensor to initialize must be at least two-dimensional. "
                             f"Received: shape={shape} of rank {len(shape)}.")
        rows, cols = math.prod(shape[:-1]), shape[-1]
        a = self._generator().normal(0.0, 1.0, (max(rows, cols), min(rows, cols)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))
        if rows < cols:
            q = q.T
        return (self.gain * q.reshape(shape)).astype(np.float32)

    def get_config(self):
        return {"seed": self.seed, "gain": self.gain}


_CLASSES = {c.__name__: c for c in (Zeros, Ones, Constant, RandomUniform, RandomNormal,
                                    VarianceScaling, GlorotUniform, GlorotNormal, HeUniform,
                                    HeNormal, Orthogonal)}
_ALIASES = {"zeros": Zeros, "ones": Ones, "constant": Constant, "random_uniform": RandomUniform,
            "uniform": RandomUniform, "normal": RandomNormal,
            "random_normal": RandomNormal, "variance_scaling": VarianceScaling,
            "glorot_uniform": GlorotUniform, "glorot_normal": GlorotNormal,
            "he_uniform": HeUniform, "he_normal": HeNormal, "orthogonal": Orthogonal,
            "OrthogonalInitializer": Orthogonal}


def get(identifier):
    """An initializer from a name ('glorot_uniform'), a serialized dict, or an instance."""
    if isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, str):
        cls = _ALIASES.get(identifier) or _CLASSES.get(identifier)
        if cls is None:
            raise ValueError(f"Could not interpret initializer identifier: {identifier!r}. "
                             f"Valid names: {sorted(_ALIASES)}")
        return cls()
    if isinstance(identifier, dict) and "class_name" in identifier:
        cls = _CLASSES.get(identifier["class_name"])
        if cls is None:
            raise ValueError(f"Unknown initializer class {identifier['class_name']!r}; "
                             f"known: {sorted(_CLASSES)}")
        return cls.from_config(dict(identifier.get("config") or {}))
    raise ValueError(f"Could not interpret initializer identifier: {identifier!r}")


def serialize(init):
    """Keras's serialized form: module, class_name, config, registered_name."""
    return {"module": "keras.initializers", "class_name": type(init).__name__,
            "config": init.get_config(), "registered_name": None}


deserialize = get
