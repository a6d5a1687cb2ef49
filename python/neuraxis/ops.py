"""Single engine kernels on NumPy arrays, forward and backward side by side.

This is how the tests and benchmarks reach one kernel alone, and how an
advanced user composes one. Arrays must be float32 or float64 (both arguments
of one call the same dtype); they are made C-contiguous here.

Example
-------
>>> import numpy as np
>>> from neuraxis import ops
>>> X = np.ones((2, 3)); W = np.ones((3, 4)); b = np.zeros(4)
>>> ops.dense_forward(X, W, b)[0].tolist()
[3.0, 3.0, 3.0, 3.0]
"""
import numpy as np

from . import _core
from ._names import TABLE, check

# The engine's own names (its name table): what the kernels here accept.
ACTIVATIONS = TABLE["activations"]
LOSSES = TABLE["losses"]
# per-row metrics (`metric_sum`); the streaming ones (counts in several slots) run in
# fit/evaluate only
METRICS = tuple(m for m in TABLE["metrics"] if m not in ("confusion", "fbeta"))


_INT_MAX = 2**31 - 1


def convert_to_numpy(x):
    """`keras.ops.convert_to_numpy`: the value as a NumPy array (neuraxis's tensors already
    are; a float learning rate becomes a 0-d array).

    >>> float(convert_to_numpy(0.5))
    0.5
    """
    return np.asarray(x)


def _prep(*arrays):
    """C-contiguous, aligned arrays of one floating dtype (float32 stays float32). Complex,
    string, byte and object arrays are a TypeError (never parsed or truncated to reals), a
    0-d value a ValueError; a misaligned or strided array is copied."""
    out = []
    dtype = None
    for a in arrays:
        if a is None:
            out.append(None)
            continue
        a = np.asarray(a)
        if a.dtype.kind == "c":
            raise TypeError(f"complex input is not supported (the imaginary part would be "
                            f"lost), got an array of dtype {a.dtype}")
        if a.dtype.kind not in "biuf":
            raise TypeError(f"expected a numeric array, got dtype {a.dtype}")
        if a.ndim == 0:
            raise ValueError(f"expected an array with at least one axis, got the 0-d value {a}")
        # GEMM dimensions are 32-bit ints (checked before any copy: `a` may be a broadcast view)
        lead = a.size // a.shape[-1] if a.shape[-1] else 0
        if max(a.shape) > _INT_MAX or lead > _INT_MAX:
            raise ValueError(f"array of shape {a.shape} is too large: each dimension and the "
                             f"product of the leading ones must stay below 2**31")
        if dtype is None:
            dtype = a.dtype if a.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        out.append(np.require(a, dtype, ["C_CONTIGUOUS", "ALIGNED"]))
    return out


def activation_forward(z, name, alpha=0.0):
    """y = f(z) elementwise (softmax: over the last axis)."""
    check("activations", name)
    (z,) = _prep(z)
    return _core.act_forward(z, name, float(alpha))


def activation_backward(y, dy, name, alpha=0.0):
    """dL/dz given the forward output y = f(z) and dL/dy."""
    check("activations", name)
    y, dy = _prep(y, dy)
    if y.shape != dy.shape:
        raise ValueError(f"y and dy must have the same shape, got {y.shape} and {dy.shape}")
    return _core.act_backward(y, dy, name, float(alpha))


def dense_forward(X, W, b=None):
    """Y = X @ W + b for X (n, in), W (in, out), b (out,)."""
    X, W, b = _prep(X, W, b)
    return _core.dense_forward(X, W, b)


def dense_backward(X, W, dY):
    """(dX, dW, db) of Y = X @ W + b given dY."""
    X, W, dY = _prep(X, W, dY)
    return _core.dense_backward(X, W, dY)


def loss_value(loss, P, Y, sample_weight=None):
    """Weighted mean over rows of the loss between predictions P and targets Y."""
    check("losses", loss)
    P, Y, sw = _prep(P, Y, sample_weight)
    return _core.loss_value(loss, P, Y, sw)


def loss_delta(loss, P, Y, sample_weight=None, scale=1.0):
    """Fused output delta dZ = (P - Y) * sample_weight * scale."""
    check("losses", loss)
    P, Y, sw = _prep(P, Y, sample_weight)
    return _core.loss_delta(loss, P, Y, sw, float(scale))


def sgd_step(param, velocity, grad, lr, momentum=0.9, nesterov=True):
    """In-place SGD step on `param` and `velocity` (C-contiguous, same dtype)."""
    _core.sgd_step(param, velocity, grad, float(lr), float(momentum), bool(nesterov))


def adam_step(param, m, v, grad, lr_t, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
    """In-place Adam step with the bias-corrected step size lr_t."""
    _core.adam_step(param, m, v, grad, float(lr_t), float(beta_1), float(beta_2), float(epsilon))


def loss_grad_output(loss, P, Y, sample_weight=None, scale=1.0):
    """dL/dP of the per-row loss times sample_weight * scale (clipped entries get 0)."""
    check("losses", loss)
    P, Y, sw = _prep(P, Y, sample_weight)
    return _core.loss_grad_output(loss, P, Y, sw, float(scale))


def metric_sum(metric, P, Y, sample_weight=None):
    """Sum over rows of sample_weight * metric(row)."""
    check("metrics", metric)
    P, Y, sw = _prep(P, Y, sample_weight)
    return _core.metric_sum(metric, P, Y, sw)


def rmsprop_step(param, ms, grad, lr, rho=0.9, epsilon=1e-7, momentum=0.0, momentum_buffer=None):
    """In-place Keras RMSprop step (mean squares `ms`, optional momentum buffer)."""
    _core.rmsprop_step(param, ms, momentum_buffer, grad, float(lr), float(rho), float(epsilon),
                       float(momentum))


def dropout_mask(seed, layer, row0, rows, cols, rate):
    """The engine's inverted-dropout scales (0 or 1/(1-rate)) for a block of rows."""
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"rate must be in [0, 1), got {rate}")
    return _core.dropout_mask(int(seed), int(layer), int(row0), int(rows), int(cols), float(rate))


# ---- 2-D convolution and pooling, NHWC (Keras's layouts) ---------------------------------
def _pair(v, what):
    """(a, b) of positive ints from an int or a pair."""
    t = (v, v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else tuple(v)
    if len(t) != 2 or any(isinstance(e, bool) or not isinstance(e, (int, np.integer)) or e < 1
                          for e in t):
        raise ValueError(f"{what} must be a positive int or a pair of them, got {v!r}")
    return int(t[0]), int(t[1])


def _padding(padding):
    p = str(padding).lower()
    if p not in ("valid", "same"):
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    return p


def conv2d_forward(x, w, b=None, strides=(1, 1), padding="valid", dilation_rate=(1, 1)):
    """y = conv(x, w) + b for x (n, H, W, C), w (kh, kw, C, F), b (F,): (n, OH, OW, F).

    Cross-correlation, TensorFlow's 'same' rule (the odd extra pad goes bottom/right).
    """
    x, w, b = _prep(x, w, b)
    return _core.conv2d_forward(x, w, b, _pair(strides, "strides"), _padding(padding),
                                _pair(dilation_rate, "dilation_rate"))


def conv2d_backward(x, w, dy, strides=(1, 1), padding="valid", dilation_rate=(1, 1)):
    """(dx, dw, db) of conv2d_forward given dy (n, OH, OW, F)."""
    x, w, dy = _prep(x, w, dy)
    return _core.conv2d_backward(x, w, dy, _pair(strides, "strides"), _padding(padding),
                                 _pair(dilation_rate, "dilation_rate"))


def _pool_args(pool_size, strides, padding):
    p = _pair(pool_size, "pool_size")
    return p, (p if strides is None else _pair(strides, "strides")), _padding(padding)


def max_pool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid"):
    """The max over each window of x (n, H, W, C); strides default to pool_size."""
    (x,) = _prep(x)
    return _core.pool2d_forward(x, *_pool_args(pool_size, strides, padding), True)


def max_pool2d_backward(x, dy, pool_size=(2, 2), strides=None, padding="valid"):
    """dx: each window's dy to its arg-max (the first one on ties), summed over windows."""
    x, dy = _prep(x, dy)
    return _core.pool2d_backward(x, dy, *_pool_args(pool_size, strides, padding), True)


def avg_pool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid"):
    """The mean over each window's positions inside x (padding is not counted)."""
    (x,) = _prep(x)
    return _core.pool2d_forward(x, *_pool_args(pool_size, strides, padding), False)


def avg_pool2d_backward(x, dy, pool_size=(2, 2), strides=None, padding="valid"):
    """dx of avg_pool2d_forward given dy."""
    x, dy = _prep(x, dy)
    return _core.pool2d_backward(x, dy, *_pool_args(pool_size, strides, padding), False)


# ---- batch normalization over the last axis (Keras's axis=-1) ----------------------------
def batch_norm_forward(x, gamma, beta, moving_mean, moving_variance, training=False,
                       epsilon=1e-3):
    """(y, mean, variance): y = gamma (x - mean) / sqrt(variance + epsilon) + beta per channel.

    In training, mean and variance are the batch's (over every axis but the last; the
    variance biased, as Keras) and are returned so the caller can move its moving
    statistics (`moving = moving * momentum + batch * (1 - momentum)`); otherwise the
    moving ones are used and returned. gamma / beta may be None (scale / center off).

    Example
    -------
    >>> import numpy as np
    >>> y, mean, var = batch_norm_forward(np.array([[1.0], [3.0]]), None, None,
    ...                                   np.zeros(1), np.ones(1), training=True)
    >>> mean.tolist(), var.tolist(), np.round(y, 3).ravel().tolist()
    ([2.0], [1.0], [-1.0, 1.0])
    """
    x, gamma, beta, moving_mean, moving_variance = _prep(x, gamma, beta, moving_mean,
                                                         moving_variance)
    return _core.batch_norm_forward(x, gamma, beta, moving_mean, moving_variance,
                                    bool(training), float(epsilon))


def batch_norm_backward(x, dy, gamma, mean, variance, training=False, epsilon=1e-3):
    """(dx, dgamma, dbeta) of batch_norm_forward given dy; `mean`/`variance` are the ones
    the forward used (in training the batch's, whose dependence on x enters dx)."""
    x, dy, gamma, mean, variance = _prep(x, dy, gamma, mean, variance)
    return _core.batch_norm_backward(x, dy, gamma, mean, variance, bool(training),
                                     float(epsilon))


# ---- recurrent layers, one engine layer on arrays (x: (n, steps, features)) ---------------
def _layer(spec, x, params, dy=None, training=False, seed=0):
    arrays = _prep(x, *params, dy)
    x, params, dy = arrays[0], [p for p in arrays[1:-1] if p is not None], arrays[-1]
    out = _core.layer_run(spec, x, params, dy, bool(training), int(seed))
    return out if dy is None else (out[1], *out[2])


_ACT_ALIASES = {"sigmoid": "logistic", "linear": "identity", None: "identity"}


def _rnn_spec(kind, units, activation, return_sequences, go_backwards, **extra):
    if "recurrent_activation" in extra:
        extra["recurrent_activation"] = _ACT_ALIASES.get(extra["recurrent_activation"],
                                                         extra["recurrent_activation"])
    return {"kind": kind, "units": int(units),
            "activation": _ACT_ALIASES.get(activation, activation),
            "return_sequences": bool(return_sequences), "go_backwards": bool(go_backwards),
            **extra}


def simple_rnn_forward(x, kernel, recurrent_kernel, bias=None, activation="tanh",
                       return_sequences=False, go_backwards=False):
    """Keras's SimpleRNN: h_t = act(x_t kernel + h_{t-1} recurrent_kernel + bias), h_{-1} = 0;
    the last h (n, units), or every h (n, steps, units) with return_sequences.

    Example
    -------
    >>> import numpy as np
    >>> x = np.ones((1, 3, 1)); k = np.full((1, 1), 0.5); r = np.zeros((1, 1))
    >>> np.round(simple_rnn_forward(x, k, r, return_sequences=True), 4).ravel().tolist()
    [0.4621, 0.4621, 0.4621]
    """
    spec = _rnn_spec("simple_rnn", np.shape(kernel)[1], activation, return_sequences,
                     go_backwards, use_bias=bias is not None)
    return _layer(spec, x, [kernel, recurrent_kernel, bias])


def simple_rnn_backward(x, kernel, recurrent_kernel, dy, bias=None, activation="tanh",
                        return_sequences=False, go_backwards=False):
    """(dx, dkernel, drecurrent_kernel[, dbias]) of simple_rnn_forward given dy (BPTT)."""
    spec = _rnn_spec("simple_rnn", np.shape(kernel)[1], activation, return_sequences,
                     go_backwards, use_bias=bias is not None)
    return _layer(spec, x, [kernel, recurrent_kernel, bias], dy)


def lstm_forward(x, kernel, recurrent_kernel, bias=None, activation="tanh",
                 recurrent_activation="logistic", return_sequences=False, go_backwards=False):
    """Keras's LSTM (gate order i, f, c, o; kernel (features, 4 units))."""
    spec = _rnn_spec("lstm", np.shape(kernel)[1] // 4, activation, return_sequences,
                     go_backwards, use_bias=bias is not None,
                     recurrent_activation=recurrent_activation)
    return _layer(spec, x, [kernel, recurrent_kernel, bias])


def lstm_backward(x, kernel, recurrent_kernel, dy, bias=None, activation="tanh",
                  recurrent_activation="logistic", return_sequences=False, go_backwards=False):
    """(dx, dkernel, drecurrent_kernel[, dbias]) of lstm_forward given dy."""
    spec = _rnn_spec("lstm", np.shape(kernel)[1] // 4, activation, return_sequences,
                     go_backwards, use_bias=bias is not None,
                     recurrent_activation=recurrent_activation)
    return _layer(spec, x, [kernel, recurrent_kernel, bias], dy)


def gru_forward(x, kernel, recurrent_kernel, bias=None, activation="tanh",
                recurrent_activation="logistic", reset_after=True, return_sequences=False,
                go_backwards=False):
    """Keras's GRU (gate order z, r, h; bias (2, 3 units) with reset_after)."""
    spec = _rnn_spec("gru", np.shape(kernel)[1] // 3, activation, return_sequences,
                     go_backwards, use_bias=bias is not None, reset_after=bool(reset_after),
                     recurrent_activation=recurrent_activation)
    return _layer(spec, x, [kernel, recurrent_kernel, bias])


def gru_backward(x, kernel, recurrent_kernel, dy, bias=None, activation="tanh",
                 recurrent_activation="logistic", reset_after=True, return_sequences=False,
                 go_backwards=False):
    """(dx, dkernel, drecurrent_kernel[, dbias]) of gru_forward given dy."""
    spec = _rnn_spec("gru", np.shape(kernel)[1] // 3, activation, return_sequences,
                     go_backwards, use_bias=bias is not None, reset_after=bool(reset_after),
                     recurrent_activation=recurrent_activation)
    return _layer(spec, x, [kernel, recurrent_kernel, bias], dy)


# ---- embedding: rows of a table at integer ids ----------------------------------------------
def _embedding(ids, embeddings, dy=None):
    from .layers.embedding import check_ids  # function-level: ops does not load the Keras front

    embeddings, dy = _prep(embeddings, dy)
    if embeddings.ndim != 2:
        raise ValueError(f"embeddings must be a 2-d table (input_dim, output_dim), got shape "
                         f"{embeddings.shape}")
    ids = np.asarray(ids)
    if ids.ndim < 1 or ids.dtype.kind not in "iuf":
        raise ValueError(f"ids must be an array of integer ids with at least one axis (rows), "
                         f"got {ids.dtype} of shape {ids.shape}")
    input_dim, output_dim = embeddings.shape
    check_ids(ids, input_dim, "embedding")
    x = np.ascontiguousarray(ids.reshape(len(ids), -1), dtype=embeddings.dtype)
    spec = {"kind": "embedding", "input_dim": int(input_dim), "output_dim": int(output_dim)}
    if dy is not None:
        want = ids.shape + (output_dim,)
        if dy.shape != want:
            raise ValueError(f"dy must have shape {want} (ids.shape + (output_dim,)), got "
                             f"{dy.shape}")
        dy = np.ascontiguousarray(dy.reshape(x.shape + (output_dim,)))
    out = _core.layer_run(spec, x, [embeddings], dy, False, 0)
    return out.reshape(ids.shape + (output_dim,)) if dy is None else out[2][0]


def embedding_forward(ids, embeddings):
    """Keras's Embedding: `embeddings[ids]`, shape ids.shape + (output_dim,); ids are integers
    in [0, input_dim) (a ValueError names the first one that is not).

    Example
    -------
    >>> import numpy as np
    >>> table = np.arange(6.0).reshape(3, 2)
    >>> embedding_forward(np.array([[2, 0]]), table).tolist()
    [[[4.0, 5.0], [0.0, 1.0]]]
    """
    return _embedding(ids, embeddings)


def embedding_backward(ids, embeddings, dy):
    """d embeddings given dy (ids.shape + (output_dim,)): each id's row adds up the dy rows
    where it was looked up (ids themselves get no gradient)."""
    return _embedding(ids, embeddings, dy)
