"""Glue between the scikit-learn front and the C++ engine.

Parameters and optimizer state live in NumPy arrays owned by the estimator
(so they pickle with it); the engine receives them on every call and updates
them in place.
"""
import numpy as np

from .. import _core, _names

_OUT_LOSS = {
    "softmax": "softmax_log_loss",
    "logistic": "logistic_log_loss",
    "identity": "squared_error",
    "exp": "poisson",
}

_names.require("losses", _OUT_LOSS.values(), __name__)
# scikit-learn's hidden activations plus three it does not have (slopes below)
HIDDEN_ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "leaky_relu", "elu", "softplus")
_names.require("activations", list(_OUT_LOSS) + list(HIDDEN_ACTIVATIONS), __name__)

# Fixed slopes for the activations scikit-learn does not have.
_ACT_ALPHA = {"leaky_relu": 0.01, "elu": 1.0}


def layer_specs(layer_units, activation, out_activation):
    """The engine's layer dicts: Dense(units, activation) x hidden -> Dense(k, out)."""
    specs = []
    n = len(layer_units) - 1
    for i in range(n):
        act = activation if i < n - 1 else out_activation
        specs.append({"kind": "dense", "units": int(layer_units[i + 1]), "activation": act,
                      "alpha": _ACT_ALPHA.get(act, 0.0)})
    return specs


def build_network(layer_units, activation, out_activation, dtype):
    """An engine network Dense(units, activation) x hidden -> Dense(k, out)."""
    cls = _core.Network32 if np.dtype(dtype) == np.float32 else _core.Network64
    return cls([int(layer_units[0])], layer_specs(layer_units, activation, out_activation),
               _OUT_LOSS[out_activation])


def engine_params(coefs, intercepts):
    """[W0, b0, W1, b1, ...] in the engine's order."""
    out = []
    for W, b in zip(coefs, intercepts):
        out.append(W)
        out.append(b)
    return out


class BaseOptimizer:
    """State and schedule of one stochastic solver (scikit-learn's semantics)."""

    def __init__(self, learning_rate_init=0.1):
        self.learning_rate_init = learning_rate_init
        self.learning_rate = float(learning_rate_init)

    def iteration_ends(self, time_step):
        pass

    def trigger_stopping(self, msg, verbose):
        if verbose:
            print(msg + " Stopping.")
        return True


class SGDOptimizer(BaseOptimizer):
    def __init__(self, params, learning_rate_init=0.1, lr_schedule="constant", momentum=0.9,
                 nesterov=True, power_t=0.5):
        super().__init__(learning_rate_init)
        self.lr_schedule = lr_schedule
        self.momentum = momentum
        self.nesterov = nesterov
        self.power_t = power_t
        self.velocities = [np.zeros_like(p) for p in params]

    def iteration_ends(self, time_step):
        if self.lr_schedule == "invscaling":
            self.learning_rate = float(self.learning_rate_init) / (time_step + 1) ** self.power_t

    def trigger_stopping(self, msg, verbose):
        if self.lr_schedule != "adaptive":
            if verbose:
                print(msg + " Stopping.")
            return True
        if self.learning_rate <= 1e-6:
            if verbose:
                print(msg + " Learning rate too small. Stopping.")
            return True
        self.learning_rate /= 5.0
        if verbose:
            print(msg + " Setting learning rate to %f" % self.learning_rate)
        return False

    def config(self):
        c = _core.OptConfig()
        c.kind = "sgd"
        c.learning_rate = float(self.learning_rate)
        c.momentum = float(self.momentum)
        c.nesterov = bool(self.nesterov)
        return c, self.velocities, []

    def absorb(self, config):
        pass


class AdamOptimizer(BaseOptimizer):
    def __init__(self, params, learning_rate_init=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        super().__init__(learning_rate_init)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.t = 0
        self.ms = [np.zeros_like(p) for p in params]
        self.vs = [np.zeros_like(p) for p in params]

    def config(self):
        c = _core.OptConfig()
        c.kind = "adam"
        c.learning_rate = float(self.learning_rate_init)
        c.beta_1 = float(self.beta_1)
        c.beta_2 = float(self.beta_2)
        c.epsilon = float(self.epsilon)
        c.t = int(self.t)
        return c, self.ms, self.vs

    def absorb(self, config):
        self.t = int(config.t)
        if self.t:
            self.learning_rate = (self.learning_rate_init * np.sqrt(1 - self.beta_2**self.t)
                                  / (1 - self.beta_1**self.t))


def as_engine_array(a, dtype):
    """C-contiguous, writeable array of `dtype` (returns `a` itself when it already is)."""
    if (type(a) is np.ndarray and a.dtype == dtype and a.flags.c_contiguous
            and a.flags.writeable):
        return a
    return np.array(a, dtype=dtype, order="C", copy=True)
