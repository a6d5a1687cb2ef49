"""Plain NumPy reference implementations of every neuraxis kernel.

Independent of neuraxis on purpose: the kernel tests compare the C++ engine
against these, and against central finite differences (``numerical_grad``).
Everything is evaluated in float64 whatever the input dtype, so a float32
kernel is compared against the exact value, not against another float32
rounding. Losses follow scikit-learn's definitions
(``sklearn/neural_network/_base.py``), including ``eps = finfo(dtype).eps``
taken from the *input* dtype; the optimizer steps follow
``sklearn/neural_network/_stochastic_optimizers.py``.
"""
import numpy as np

ACTIVATIONS = ("identity", "logistic", "tanh", "relu", "leaky_relu", "elu", "softplus",
               "softmax", "step", "exp")
LOSSES = ("softmax_log_loss", "logistic_log_loss", "squared_error", "poisson")

# The output activation paired with each loss: the fused delta P - Y is the
# gradient of the loss with respect to the pre-activation Z of this output.
OUTPUT_ACTIVATION = {
    "softmax_log_loss": "softmax",
    "logistic_log_loss": "logistic",
    "squared_error": "identity",
    "poisson": "exp",
}


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def expit(z):
    """Logistic sigmoid 1 / (1 + e^-z), without overflow on either tail."""
    z = _f64(z)
    e = np.exp(-np.abs(z))  # in (0, 1]: never overflows
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def xlogy(x, y):
    """x * log(y), and 0 where x == 0 (even for y == 0), like scipy.special.xlogy."""
    x, y = np.broadcast_arrays(_f64(x), _f64(y))
    out = np.zeros_like(x)
    nz = x != 0
    out[nz] = x[nz] * np.log(y[nz])
    return out


# ---- activations -------------------------------------------------------------

def softmax(z):
    """Row-wise (last axis) softmax, shifted by the row max for stability."""
    z = _f64(z)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def activation_forward(z, name, alpha=0.0):
    """y = f(z) elementwise (softmax: over the last axis), in float64."""
    z = _f64(z)
    if name == "identity":
        return z.copy()
    if name == "logistic":
        return expit(z)
    if name == "tanh":
        return np.tanh(z)
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "leaky_relu":
        return np.where(z > 0, z, alpha * z)
    if name == "elu":
        return np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0.0)))
    if name == "softplus":
        return np.logaddexp(0.0, z)
    if name == "softmax":
        return softmax(z)
    if name == "step":
        return (z > 0).astype(np.float64)
    if name == "exp":
        return np.exp(z)
    raise ValueError(f"unknown activation {name!r}")


def activation_backward(z, dy, name, alpha=0.0):
    """dL/dz from the pre-activation z (not from y) and dL/dy, in float64.

    Written in terms of z so that it is independent of the engine, which
    expresses every derivative through the output y = f(z).
    """
    z, dy = _f64(z), _f64(dy)
    if name == "identity":
        d = np.ones_like(z)
    elif name == "logistic":
        s = expit(z)
        d = s * (1.0 - s)
    elif name == "tanh":
        d = 1.0 / np.cosh(z) ** 2
    elif name == "relu":
        d = (z > 0).astype(np.float64)
    elif name == "leaky_relu":
        d = np.where(z > 0, 1.0, alpha)
    elif name == "elu":
        d = np.where(z > 0, 1.0, alpha * np.exp(np.minimum(z, 0.0)))
    elif name == "softplus":
        d = expit(z)
    elif name == "exp":
        d = np.exp(z)
    elif name == "softmax":
        # Jacobian-vector product of the row softmax: y * (dy - <dy, y>)
        y = softmax(z)
        return y * (dy - np.sum(dy * y, axis=-1, keepdims=True))
    elif name == "step":
        raise ValueError("step has no useful gradient")
    else:
        raise ValueError(f"unknown activation {name!r}")
    return d * dy


# ---- dense -------------------------------------------------------------------

def dense_forward(X, W, b=None):
    """Y = X @ W + b."""
    Y = _f64(X) @ _f64(W)
    if b is not None:
        Y = Y + _f64(b)
    return Y


def dense_backward(X, W, dY):
    """(dX, dW, db) of Y = X @ W + b given dY = dL/dY."""
    X, W, dY = _f64(X), _f64(W), _f64(dY)
    return dY @ W.T, X.T @ dY, dY.sum(axis=0)


# ---- losses (scikit-learn's definitions) ---------------------------------------

def _weighted_row_mean(per_row, sample_weight):
    return float(np.average(per_row, weights=None if sample_weight is None
                            else _f64(sample_weight)))


def loss_value(loss, P, Y, sample_weight=None):
    """Weighted mean over rows of the per-row loss, as scikit-learn computes it.

    - softmax_log_loss: categorical cross-entropy -sum_j y_j log p_j with p
      clipped to [eps, 1 - eps] (sklearn ``log_loss`` for k >= 2 columns);
    - logistic_log_loss: binary cross-entropy summed over outputs (sklearn
      ``binary_log_loss``), same clipping;
    - squared_error: 0.5 * mean over outputs of (y - p)^2 (sklearn
      ``squared_loss`` averages over outputs too);
    - poisson: half Poisson deviance sum_j y log(y/p) - y + p.
    eps = finfo(P.dtype).eps, from the input dtype as in scikit-learn.
    """
    P_in = np.asarray(P)
    eps = np.finfo(P_in.dtype).eps if P_in.dtype.kind == "f" else np.finfo(np.float64).eps
    P, Y = _f64(P_in), _f64(Y)
    if loss == "softmax_log_loss":
        p = np.clip(P, eps, 1 - eps)
        per_row = -xlogy(Y, p).sum(axis=1)
    elif loss == "logistic_log_loss":
        p = np.clip(P, eps, 1 - eps)
        per_row = -(xlogy(Y, p) + xlogy(1 - Y, 1 - p)).sum(axis=1)
    elif loss == "squared_error":
        per_row = 0.5 * ((Y - P) ** 2).mean(axis=1)
    elif loss == "poisson":
        per_row = (xlogy(Y, Y / P) - Y + P).sum(axis=1)
    else:
        raise ValueError(f"unknown loss {loss!r}")
    return _weighted_row_mean(per_row, sample_weight)


def loss_delta(P, Y, sample_weight=None, scale=1.0):
    """Fused output delta dZ = (P - Y) * sample_weight[:, None] * scale."""
    P, Y = _f64(P), _f64(Y)
    sw = np.ones(P.shape[0]) if sample_weight is None else _f64(sample_weight)
    return (P - Y) * sw[:, None] * scale


# ---- optimizers (scikit-learn's formulas) ----------------------------------------

def sgd_step(param, velocity, grad, lr, momentum=0.9, nesterov=True):
    """One SGDOptimizer step; returns (new_param, new_velocity)."""
    param, velocity, grad = _f64(param), _f64(velocity), _f64(grad)
    velocity = momentum * velocity - lr * grad
    update = momentum * velocity - lr * grad if nesterov else velocity
    return param + update, velocity


def adam_lr_t(learning_rate_init, t, beta_1=0.9, beta_2=0.999):
    """AdamOptimizer's bias-corrected step size at time step t (t >= 1)."""
    return learning_rate_init * np.sqrt(1 - beta_2 ** t) / (1 - beta_1 ** t)


def adam_step(param, m, v, grad, lr_t, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """One AdamOptimizer step with step size lr_t; returns (new_param, new_m, new_v)."""
    param, m, v, grad = _f64(param), _f64(m), _f64(v), _f64(grad)
    m = beta_1 * m + (1 - beta_1) * grad
    v = beta_2 * v + (1 - beta_2) * grad ** 2
    return param - lr_t * m / (np.sqrt(v) + epsilon), m, v


# ---- finite differences ---------------------------------------------------------

def numerical_grad(f, x, eps=1e-6):
    """Central finite-difference gradient of the scalar function f at array x.

    g[i] = (f(x + eps e_i) - f(x - eps e_i)) / (2 eps), in float64; x is not
    modified.
    """
    x = np.array(x, dtype=np.float64)
    g = np.empty_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = float(f(x))
        flat[i] = old - eps
        fm = float(f(x))
        flat[i] = old
        gflat[i] = (fp - fm) / (2 * eps)
    return g


# ---- Keras losses, metrics and RMSprop (keras/src/losses, metrics, optimizers) ----

KERAS_EPS = 1e-7  # keras.backend.epsilon()
KERAS_LOSSES = ("categorical_crossentropy", "binary_crossentropy", "mse", "mae")
METRICS = ("categorical_accuracy", "binary_accuracy", "mse", "mae", "top_k_categorical_accuracy")


def keras_loss_per_row(loss, P, Y):
    """Per-row Keras loss (no reduction over rows), in float64.

    - categorical_crossentropy: -sum_j y_j log p_j, p clipped to [1e-7, 1 - 1e-7];
    - binary_crossentropy: mean over outputs of -(y log p + (1-y) log(1-p)), same clip;
    - mse / mae: mean over outputs of (p - y)^2 / |p - y|.
    """
    P, Y = _f64(P), _f64(Y)
    if loss == "categorical_crossentropy":
        return -np.sum(Y * np.log(np.clip(P, KERAS_EPS, 1 - KERAS_EPS)), axis=1)
    if loss == "binary_crossentropy":
        p = np.clip(P, KERAS_EPS, 1 - KERAS_EPS)
        return -np.mean(Y * np.log(p) + (1 - Y) * np.log(1 - p), axis=1)
    if loss == "mse":
        return np.mean((P - Y) ** 2, axis=1)
    if loss == "mae":
        return np.mean(np.abs(P - Y), axis=1)
    raise ValueError(f"unknown Keras loss {loss!r}")


def keras_loss_value(loss, P, Y, sample_weight=None):
    """Weighted mean over rows of the per-row Keras loss."""
    return _weighted_row_mean(keras_loss_per_row(loss, P, Y), sample_weight)


def keras_loss_delta(loss, P, Y, sample_weight=None, scale=1.0):
    """Fused output delta c * (P - Y) * sw * scale for the canonical Keras output.

    c = 1 (categorical_crossentropy with softmax), 1/k (binary_crossentropy with
    sigmoid), 2/k (mse with a linear output); mae: sign(P - Y) / k.
    """
    P, Y = _f64(P), _f64(Y)
    k = P.shape[1]
    sw = np.ones(P.shape[0]) if sample_weight is None else _f64(sample_weight)
    if loss == "categorical_crossentropy":
        d = P - Y
    elif loss == "binary_crossentropy":
        d = (P - Y) / k
    elif loss == "mse":
        d = 2.0 * (P - Y) / k
    elif loss == "mae":
        d = np.sign(P - Y) / k
    else:
        raise ValueError(f"unknown Keras loss {loss!r}")
    return d * sw[:, None] * scale


def loss_derivative(loss, P, Y):
    """d(per-row loss)/dP, elementwise, for every loss (scikit-learn's and Keras's).

    The true derivative of the value the loss reports (squared_error: (p - y) / k,
    not scikit-learn's training delta p - y). Clipped probabilities get 0, as the
    clip has zero derivative outside its range.
    """
    P, Y = _f64(P), _f64(Y)
    k = P.shape[1]
    eps = np.finfo(np.float64).eps if loss in ("softmax_log_loss", "logistic_log_loss") \
        else KERAS_EPS
    inside = (P > eps) & (P < 1 - eps)
    with np.errstate(divide="ignore", invalid="ignore"):
        if loss in ("softmax_log_loss", "categorical_crossentropy"):
            return np.where(inside, -Y / P, 0.0)
        if loss in ("logistic_log_loss", "binary_crossentropy"):
            c = 1.0 if loss == "logistic_log_loss" else 1.0 / k
            return np.where(inside, c * (P - Y) / (P * (1 - P)), 0.0)
    if loss == "squared_error":
        return (P - Y) / k
    if loss == "poisson":
        return 1.0 - Y / P
    if loss == "mse":
        return 2.0 * (P - Y) / k
    if loss == "mae":
        return np.sign(P - Y) / k
    raise ValueError(f"unknown loss {loss!r}")


def metric_per_row(metric, P, Y):
    """Keras metrics per row: categorical_accuracy (argmax, first index on ties),
    binary_accuracy (p > 0.5, mean over outputs), mse, mae (mean over outputs)."""
    P, Y = _f64(P), _f64(Y)
    if metric == "categorical_accuracy":
        return (np.argmax(P, axis=1) == np.argmax(Y, axis=1)).astype(np.float64)
    if metric == "binary_accuracy":
        return np.mean((P > 0.5).astype(np.float64) == Y, axis=1)
    if metric == "mse":
        return np.mean((P - Y) ** 2, axis=1)
    if metric == "mae":
        return np.mean(np.abs(P - Y), axis=1)
    if metric == "top_k_categorical_accuracy":  # k=5: fewer than 5 scores above the label's
        label = P[np.arange(len(P)), np.argmax(Y, axis=1)]
        return ((P > label[:, None]).sum(axis=1) < 5).astype(np.float64)
    raise ValueError(f"unknown metric {metric!r}")


def metric_sum(metric, P, Y, sample_weight=None):
    """sum_i w_i * metric_i (w_i = 1 without weights)."""
    r = metric_per_row(metric, P, Y)
    w = np.ones_like(r) if sample_weight is None else _f64(sample_weight)
    return float(np.sum(w * r))


def rmsprop_step(param, ms, grad, lr, rho=0.9, epsilon=1e-7, momentum=0.0, mom=None):
    """One Keras 3 RMSprop step (centered=False); returns (new_param, new_ms, new_mom).

    ms = rho ms + (1 - rho) g^2; step = lr g / sqrt(ms + eps);
    momentum > 0: mom = momentum mom + step, p -= mom; else p -= step.
    """
    param, ms, grad = _f64(param), _f64(ms), _f64(grad)
    ms = rho * ms + (1 - rho) * grad ** 2
    step = lr * grad / np.sqrt(ms + epsilon)
    if momentum > 0:
        mom = momentum * _f64(mom) + step
        return param - mom, ms, mom
    return param - step, ms, mom


# ---- whole networks: forward, objective and backward --------------------------------
# specs are the engine's 6-tuples (kind, in, out, activation, alpha, dropout) with
# kind "dense" (params W (in, out), b (out,)) or "activation" (no params);
# `masks` maps a layer index to the dropout scales applied to its output.

SKLEARN_LOSSES = LOSSES


def network_forward(specs, params, X, masks=None):
    """(P, cache) with cache[l] = (input a, pre-activation z, output after dropout)."""
    masks = masks or {}
    a = _f64(X)
    cache = []
    p = 0
    for l, (kind, _n_in, _n_out, act, alpha, _rate) in enumerate(specs):
        if kind == "dense":
            z = a @ _f64(params[p]) + _f64(params[p + 1])
            p += 2
        else:
            z = a
        y = activation_forward(z, act, alpha)
        out = y * _f64(masks[l]) if l in masks else y
        cache.append((a, z, out))
        a = out
    return a, cache


def _denominator(reduction, sw):
    return sw.sum() if reduction == "weights" else float(sw.shape[0])


def network_objective(specs, params, X, Y, loss, reduction, sample_weight=None, alpha=0.0,
                      masks=None):
    """sum_i w_i l_i / D + alpha / (2 sum w) * sum ||W||^2, D = sum w ('weights') or n."""
    P, _ = network_forward(specs, params, X, masks)
    n = P.shape[0]
    sw = np.ones(n) if sample_weight is None else _f64(sample_weight)
    mean = keras_loss_value(loss, P, Y, sw) if loss in KERAS_LOSSES else \
        loss_value(loss, P, Y, sw)
    obj = mean * sw.sum() / _denominator(reduction, sw)
    sumsq = sum(np.sum(_f64(W) ** 2) for W in params[0::2])
    return obj + 0.5 * alpha * sumsq / sw.sum()


def network_grad(specs, params, X, Y, loss, reduction, sample_weight=None, alpha=0.0,
                 masks=None):
    """Gradient of network_objective w.r.t. params (list like params), by the chain rule
    through the general dL/dP (no fused output delta)."""
    masks = masks or {}
    P, cache = network_forward(specs, params, X, masks)
    n = P.shape[0]
    sw = np.ones(n) if sample_weight is None else _f64(sample_weight)
    d = loss_derivative(loss, P, Y) * sw[:, None] / _denominator(reduction, sw)
    grads = [None] * len(params)
    p = 2 * sum(1 for s in specs if s[0] == "dense")
    for l in range(len(specs) - 1, -1, -1):
        kind, _n_in, _n_out, act, alpha_act, _rate = specs[l]
        a_in, z, _ = cache[l]
        if l in masks:
            d = d * _f64(masks[l])
        dz = activation_backward(z, d, act, alpha_act)
        if kind == "dense":
            p -= 2
            W = _f64(params[p])
            grads[p] = a_in.T @ dz + alpha / sw.sum() * W
            grads[p + 1] = dz.sum(axis=0)
            d = dz @ W.T
        else:
            d = dz
    return grads
