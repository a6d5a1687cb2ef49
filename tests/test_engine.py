"""The engine's Keras-side kernels and whole networks against NumPy references.

1. neuraxis.ops kernels added for the Keras front (Keras losses, their fused
   deltas, dL/dP for every loss, metrics, RMSprop, dropout masks);
2. whole-network gradients (Network32/Network64.loss_grad) against central
   finite differences and a NumPy chain-rule reference, on 1 and 2 threads;
3. dropout through train_batches against a NumPy forward/backward with the
   engine's own mask (ops.dropout_mask);
4. train_batches bookkeeping (metric sums, rows, weights, loss_sum, chunking,
   Adam/RMSprop steps);
5. bad specs and arrays raise ValueError / TypeError with a clear message.

float64 is compared tightly, float32 loosely against a float64 reference.
"""
import zlib

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import neuraxis
from neuraxis import _core, ops

import reference as ref

DTYPES = (np.float64, np.float32)
TOL = {np.float64: dict(rtol=1e-12, atol=1e-13), np.float32: dict(rtol=1e-5, atol=1e-6)}
# a float64 network against the float64 reference: rounding grows with depth
NET_TOL = {np.float64: dict(rtol=1e-10, atol=1e-12), np.float32: dict(rtol=2e-4, atol=2e-5)}
FD_TOL = dict(rtol=1e-6, atol=1e-8)
NETWORK = {np.float64: _core.Network64, np.float32: _core.Network32}


def tol(dtype):
    return TOL[np.dtype(dtype).type]


def net_tol(dtype):
    return NET_TOL[np.dtype(dtype).type]


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


def one_hot(rng, n, k):
    Y = np.zeros((n, k))
    Y[np.arange(n), rng.integers(0, k, size=n)] = 1.0
    return Y


def targets(rng, kind, n, k):
    if kind == "onehot":
        return one_hot(rng, n, k)
    if kind == "binary":
        return rng.integers(0, 2, size=(n, k)).astype(float)
    if kind == "unit":  # soft targets in (0, 1)
        return rng.uniform(0.05, 0.95, size=(n, k))
    if kind == "counts":
        return rng.integers(0, 4, size=(n, k)).astype(float)
    return rng.normal(size=(n, k))


def weights(rng, n):
    return rng.uniform(0.2, 2.0, size=n)


# ---- 1. kernels ----------------------------------------------------------------

KERAS_LOSSES = ref.KERAS_LOSSES
LOSS_TARGET = {"categorical_crossentropy": "onehot", "binary_crossentropy": "binary",
               "mse": "normal", "mae": "normal", "softmax_log_loss": "onehot",
               "logistic_log_loss": "binary", "squared_error": "normal", "poisson": "counts"}
LOSS_SHAPES = ((7, 5), (1, 1), (13, 3))


def probs(rng, loss, shape):
    """Predictions inside the open range each loss expects, away from clips."""
    n, k = shape
    if loss in ("categorical_crossentropy", "softmax_log_loss") and k > 1:
        return ref.softmax(rng.uniform(-2, 2, size=shape))
    if loss == "poisson":
        return rng.uniform(0.2, 3.0, size=shape)
    if loss in ("mse", "mae", "squared_error"):
        return rng.normal(size=shape)
    return rng.uniform(0.05, 0.95, size=shape)


def test_ops_lists_the_new_losses_and_metrics():
    assert set(KERAS_LOSSES) <= set(ops.LOSSES)
    assert set(ops.METRICS) == set(ref.METRICS)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", LOSS_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", KERAS_LOSSES)
def test_keras_loss_value_matches_reference(loss, dtype, shape, weighted, rng):
    P = probs(rng, loss, shape)
    Y = targets(rng, LOSS_TARGET[loss], *shape)
    if loss in ("categorical_crossentropy", "binary_crossentropy") and shape[0] > 2:
        # entries beyond the clip [1e-7, 1 - 1e-7]: the clip must bite
        P[0, 0], P[1, -1], P[-1, 0] = 0.0, 1.0, 1e-9
        Y[0, 0], Y[1, -1] = 1.0, 0.0
    sw = weights(rng, shape[0]) if weighted else None
    P, Y = P.astype(dtype), Y.astype(dtype)
    sw = None if sw is None else sw.astype(dtype)
    got = ops.loss_value(loss, P, Y, sw)
    assert np.isfinite(got)
    assert_allclose(got, ref.keras_loss_value(loss, P, Y, sw), **tol(dtype))


def test_keras_losses_clip_at_1e_7_not_dtype_eps():
    # p = 0 with y = 1: -log(1e-7) for both cross-entropies, whatever the dtype
    for dtype in DTYPES:
        P = np.array([[0.0, 1.0]], dtype)
        Y = np.array([[1.0, 0.0]], dtype)
        assert_allclose(ops.loss_value("categorical_crossentropy", P, Y), -np.log(1e-7),
                        rtol=1e-6)
        assert_allclose(ops.loss_value("binary_crossentropy", P, Y), -np.log(1e-7),
                        rtol=1e-6)


def test_keras_losses_mean_over_outputs_and_weighted_mean_over_rows():
    P = np.array([[0.5, 2.0, -1.0], [1.0, 1.0, 1.0]])
    Y = np.array([[0.0, 0.0, 0.0], [1.0, 1.0, 4.0]])
    # row losses: mse (0.25 + 4 + 1)/3 = 1.75, 9/3 = 3; mae 3.5/3, 3/3
    assert_allclose(ops.loss_value("mse", P, Y), (1.75 + 3.0) / 2, rtol=1e-15)
    assert_allclose(ops.loss_value("mse", P, Y, np.array([1.0, 3.0])), (1.75 + 9.0) / 4,
                    rtol=1e-15)
    assert_allclose(ops.loss_value("mae", P, Y, np.array([2.0, 0.0])), 3.5 / 3, rtol=1e-15)


@pytest.mark.parametrize("scale", [1.0, 0.37])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", LOSS_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", KERAS_LOSSES)
def test_keras_loss_delta_matches_reference(loss, dtype, shape, weighted, scale, rng):
    P = probs(rng, loss, shape)
    Y = targets(rng, LOSS_TARGET[loss], *shape)
    if loss == "mae":
        Y.flat[0] = P.flat[0]  # a tie: sign(0) = 0
    sw = weights(rng, shape[0]) if weighted else None
    P, Y = P.astype(dtype), Y.astype(dtype)
    sw = None if sw is None else sw.astype(dtype)
    d = ops.loss_delta(loss, P, Y, sw, scale)
    assert d.dtype == dtype and d.shape == shape
    assert_allclose(d, ref.keras_loss_delta(loss, P, Y, sw, scale), **tol(dtype))
    if loss == "mae":
        assert d.flat[0] == 0.0


CANONICAL = {"categorical_crossentropy": "softmax", "binary_crossentropy": "logistic",
             "mse": "identity", "mae": "identity"}


@pytest.mark.parametrize("loss", KERAS_LOSSES)
def test_keras_loss_delta_is_the_gradient_wrt_logits(loss, rng):
    # loss_delta(f(Z)) * ... == d/dZ [loss_value(f(Z)) * sum(w)] * scale for the canonical f
    n, k, scale = 9, 4, 0.6
    Z = rng.uniform(-2, 2, size=(n, k))
    Y = targets(rng, LOSS_TARGET[loss], n, k)
    sw = weights(rng, n)
    act = CANONICAL[loss]

    def f(z):
        return ops.loss_value(loss, ops.activation_forward(z, act), Y, sw) * sw.sum() * scale

    d = ops.loss_delta(loss, ops.activation_forward(Z, act), Y, sw, scale)
    assert_allclose(d, ref.numerical_grad(f, Z), **FD_TOL)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", LOSS_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ops.LOSSES)
def test_loss_grad_output_matches_finite_differences(loss, dtype, shape, weighted, rng):
    scale = 0.7
    P = probs(rng, loss, shape)
    Y = targets(rng, LOSS_TARGET[loss], *shape)
    sw = weights(rng, shape[0]) if weighted else None
    Pk = P.astype(dtype)  # what the kernel sees
    P64 = Pk.astype(np.float64)  # differentiate at the very point the kernel sees
    Y = Y.astype(dtype)
    sw = None if sw is None else sw.astype(dtype)
    wsum = shape[0] if sw is None else float(np.sum(sw.astype(np.float64)))
    Y64 = Y.astype(np.float64)
    sw64 = None if sw is None else sw.astype(np.float64)

    def f(p):
        return ops.loss_value(loss, p, Y64, sw64) * wsum * scale

    num = ref.numerical_grad(f, P64)
    if loss == "squared_error":
        # scikit-learn's quirk: it trains squared_error (0.5 * mean over outputs)
        # with the delta P - Y, k times the derivative of the value it reports;
        # loss_grad_output keeps that delta so the unfused path matches the fused one.
        num = num * shape[1]
    d = ops.loss_grad_output(loss, Pk, Y, sw, scale)
    assert d.dtype == dtype and d.shape == shape
    t = FD_TOL if dtype == np.float64 else dict(rtol=2e-5, atol=1e-6)
    assert_allclose(d, num, **t)
    # and the same as the analytic reference (squared_error: the quirk again)
    expect = ref.loss_derivative(loss, P64, Y64) * (
        np.ones(shape[0]) if sw64 is None else sw64)[:, None] * scale
    if loss == "squared_error":
        expect = expect * shape[1]
    assert_allclose(d, expect, **(tol(dtype) if dtype == np.float32 else dict(rtol=1e-12,
                                                                                atol=1e-14)))


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "binary_crossentropy",
                                  "softmax_log_loss", "logistic_log_loss"])
def test_loss_grad_output_is_zero_where_probabilities_are_clipped(loss):
    P = np.array([[0.0, 1e-20, 1.0, 0.4]])
    Y = np.array([[1.0, 1.0, 0.0, 1.0]])
    d = ops.loss_grad_output(loss, P, Y)
    assert_array_equal(d[0, :3], 0.0)
    assert d[0, 3] != 0.0


def test_loss_grad_output_softmax_chain_equals_fused_delta(rng):
    # the general path (dL/dP then the softmax Jacobian) equals the fused P - Y
    Z = rng.uniform(-2, 2, size=(6, 4))
    Y = one_hot(rng, 6, 4)
    sw = weights(rng, 6)
    P = ops.activation_forward(Z, "softmax")
    general = ops.activation_backward(P, ops.loss_grad_output("categorical_crossentropy", P, Y,
                                                              sw, 0.5), "softmax")
    assert_allclose(general, ops.loss_delta("categorical_crossentropy", P, Y, sw, 0.5),
                    rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", ref.METRICS)
def test_metric_sum_matches_reference(metric, dtype, weighted, rng):
    n, k = 17, 4 if metric != "top_k_categorical_accuracy" else 9  # top 5 of 9
    if metric in ("categorical_accuracy", "top_k_categorical_accuracy"):
        P = ref.softmax(rng.normal(size=(n, k)))
        Y = one_hot(rng, n, k)
        Y[:6] = (P[:6] == P[:6].max(axis=1, keepdims=True))  # some certainly right
    elif metric == "binary_accuracy":
        P = rng.uniform(0, 1, size=(n, k))
        P[np.abs(P - 0.5) < 1e-3] = 0.7
        Y = rng.integers(0, 2, size=(n, k)).astype(float)
    else:
        P, Y = rng.normal(size=(n, k)), rng.normal(size=(n, k))
    sw = weights(rng, n) if weighted else None
    P, Y = P.astype(dtype), Y.astype(dtype)
    sw = None if sw is None else sw.astype(dtype)
    got = ops.metric_sum(metric, P, Y, sw)
    expect = ref.metric_sum(metric, P, Y, sw)
    assert_allclose(got, expect, **tol(dtype))
    if metric in ("categorical_accuracy", "binary_accuracy", "top_k_categorical_accuracy"):
        r = ref.metric_per_row(metric, P, Y)
        assert 0 < r.sum() < n  # neither all right nor all wrong: the test can fail


def test_categorical_accuracy_takes_the_first_index_on_ties():
    P = np.array([[0.3, 0.3, 0.1], [0.2, 0.4, 0.4], [0.5, 0.5, 0.0]])
    Y = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, 1.0, 0]])
    # row 0: argmax 0 == 0 right; row 1: argmax 1 != 2 wrong; row 2: argmax 0 != 1 wrong
    assert ops.metric_sum("categorical_accuracy", P, Y) == 1.0
    assert ops.metric_sum("categorical_accuracy", P, Y, np.array([2.0, 5.0, 7.0])) == 2.0


def test_binary_accuracy_threshold_is_strictly_above_one_half():
    for dtype in DTYPES:
        P = np.array([[0.5, 0.5000001, 0.2, 0.9]], dtype)
        Y = np.array([[0.0, 1.0, 1.0, 1.0]], dtype)
        # 0.5 -> 0 (right), 0.5000001 -> 1 (right), 0.2 -> 0 (wrong), 0.9 -> 1 (right)
        assert_allclose(ops.metric_sum("binary_accuracy", P, Y), 0.75, rtol=1e-15)
        assert_allclose(ops.metric_sum("binary_accuracy", P, Y, np.array([3.0], dtype)), 2.25,
                        rtol=1e-7)


@pytest.mark.parametrize("momentum", [0.0, 0.9])
@pytest.mark.parametrize("dtype", DTYPES)
def test_rmsprop_step_matches_keras_formula(dtype, momentum, rng):
    n = 37
    lr, rho, eps = 0.01, 0.8, 1e-7
    p = rng.normal(size=n).astype(dtype)
    ms = rng.uniform(0, 0.5, size=n).astype(dtype)
    ms[:3] = 0.0  # first step from empty accumulators: sqrt(ms + eps) matters
    mom = rng.normal(scale=0.01, size=n).astype(dtype) if momentum else None
    rp, rms = p.astype(np.float64), ms.astype(np.float64)
    rmom = None if mom is None else mom.astype(np.float64)  # a copy: mom changes in place
    for _ in range(3):  # the accumulators carry over between steps
        g = rng.normal(size=n).astype(dtype)
        g[0] = 0.0
        ops.rmsprop_step(p, ms, g, lr, rho=rho, epsilon=eps, momentum=momentum,
                         momentum_buffer=mom)
        rp, rms, rmom = ref.rmsprop_step(rp, rms, g, lr, rho, eps, momentum, rmom)
        assert_allclose(ms, rms, **tol(dtype))
        assert_allclose(p, rp, **tol(dtype))
        if momentum:
            assert_allclose(mom, rmom, **tol(dtype))


def test_rmsprop_momentum_changes_the_step(rng):
    p0 = rng.normal(size=8)
    g = rng.normal(size=8)
    a, b = p0.copy(), p0.copy()
    ms_a, ms_b = np.zeros(8), np.zeros(8)
    buf = np.full(8, 0.05)
    ops.rmsprop_step(a, ms_a, g, 0.01)
    ops.rmsprop_step(b, ms_b, g, 0.01, momentum=0.9, momentum_buffer=buf)
    assert_allclose(p0 - b, p0 - a + 0.9 * 0.05, rtol=1e-12)


# ---- dropout masks ----------------------------------------------------------------

@pytest.mark.parametrize("rate", [0.5, 0.3, 0.8])
def test_dropout_mask_values_and_drop_fraction(rate):
    M = ops.dropout_mask(seed=1234, layer=0, row0=0, rows=500, cols=300, rate=rate)
    assert M.shape == (500, 300)
    keep = 1.0 / (1.0 - rate)
    assert set(np.unique(M)) == {0.0, keep}
    dropped = M == 0.0
    assert abs(dropped.mean() - rate) < 0.01  # std ~ 0.001 on 150000 draws
    # no structure: every row and every column drops about `rate`
    assert np.all(np.abs(dropped.mean(axis=0) - rate) < 0.15)
    assert np.all(np.abs(dropped.mean(axis=1) - rate) < 0.15)
    # the inverted-dropout scale keeps the mean: E[mask] = 1
    assert abs(M.mean() - 1.0) < 0.05


def test_dropout_mask_rate_zero_keeps_everything():
    assert_array_equal(ops.dropout_mask(7, 1, 0, 4, 5, 0.0), np.ones((4, 5)))


def test_dropout_mask_deterministic_and_seed_layer_dependent():
    a = ops.dropout_mask(42, 0, 0, 64, 32, 0.5)
    assert_array_equal(a, ops.dropout_mask(42, 0, 0, 64, 32, 0.5))
    for other in (ops.dropout_mask(43, 0, 0, 64, 32, 0.5),
                  ops.dropout_mask(42, 1, 0, 64, 32, 0.5),
                  ops.dropout_mask(42, 0, 64, 64, 32, 0.5)):
        agree = np.mean((a == 0) == (other == 0))
        assert 0.4 < agree < 0.6  # independent masks agree about half the time


def test_dropout_mask_row_offset_is_a_slice_of_a_bigger_mask():
    big = ops.dropout_mask(9, 2, 0, 40, 11, 0.4)
    assert_array_equal(ops.dropout_mask(9, 2, 13, 7, 11, 0.4), big[13:20])
    assert_array_equal(ops.dropout_mask(9, 2, 39, 1, 11, 0.4), big[39:])
    # rows do not depend on the width of the block either
    assert_array_equal(ops.dropout_mask(9, 2, 0, 40, 5, 0.4), big[:, :5])


@pytest.mark.parametrize("rate", [1.0, -0.1, 1.5])
def test_dropout_mask_rejects_bad_rates(rate):
    with pytest.raises(ValueError, match="rate"):
        ops.dropout_mask(0, 0, 0, 2, 2, rate)


# ---- 2. whole-network gradients -------------------------------------------------------

def dense(n_in, n_out, act, alpha=0.0, dropout=0.0):
    return ("dense", n_in, n_out, act, alpha, dropout)


def activation(w, act, alpha=0.0, dropout=0.0):
    return ("activation", w, w, act, alpha, dropout)


def engine_layers(specs):
    """The reference's 6-tuples as the engine's layer dicts: a tuple's dropout becomes a
    Dropout layer right after it. Returns (dicts, {tuple index: its Dropout's layer index})."""
    layers, drop_at = [], {}
    for i, (kind, _, n_out, act, alpha, *rest) in enumerate(specs):
        if kind == "dense":
            layers.append({"kind": "dense", "units": n_out, "activation": act, "alpha": alpha})
        else:
            layers.append({"kind": "activation", "activation": act, "alpha": alpha})
        if rest and rest[0] > 0:
            drop_at[i] = len(layers)
            layers.append({"kind": "dropout", "rate": rest[0]})
    return layers, drop_at


def make_net(cls, specs, loss, reduction="weights"):
    """An engine network for the reference's specs, on inputs of width specs[0][1]."""
    return cls([specs[0][1]], engine_layers(specs)[0], loss, reduction)


def init_params(rng, specs, dtype=np.float64, w_scale=1.0):
    params = []
    for kind, n_in, n_out, *_ in specs:
        if kind == "dense":
            params.append((rng.normal(size=(n_in, n_out)) * w_scale / np.sqrt(n_in))
                          .astype(dtype))
            params.append((rng.normal(size=n_out) * 0.3).astype(dtype))
    return params


def engine_loss_grad(net, params, X, Y, sw, alpha):
    grads = [np.full_like(p, np.nan) for p in params]  # every entry must be written
    loss = net.loss_grad(params, grads, X, Y, sw, alpha)
    return loss, grads


def fd_grads(net, params, X, Y, sw, alpha, eps=1e-6):
    scratch = [np.zeros_like(p) for p in params]
    out = []
    for i in range(len(params)):
        def f(a, i=i):
            ps = list(params)
            ps[i] = a
            return net.loss_grad(ps, scratch, X, Y, sw, alpha)
        out.append(ref.numerical_grad(f, params[i], eps))
    return out


# (id, specs, loss, target kind): Keras-style, reduction 'batch_size'
KERAS_NETS = [
    ("relu_softmax_cce_fused", [dense(5, 6, "relu"), dense(6, 4, "softmax")],
     "categorical_crossentropy", "onehot"),
    ("leaky_layer_sigmoid_bce_fused",
     [dense(5, 6, "identity"), activation(6, "leaky_relu", 0.3), dense(6, 3, "logistic")],
     "binary_crossentropy", "binary"),
    ("tanh_linear_mse_fused", [dense(5, 6, "tanh"), dense(6, 3, "identity")], "mse", "normal"),
    ("tanh_linear_mae_fused", [dense(5, 6, "tanh"), dense(6, 3, "identity")], "mae", "normal"),
    ("softmax_activation_layer_cce_fused",
     [dense(5, 6, "elu", 1.3), dense(6, 4, "identity"), activation(4, "softmax")],
     "categorical_crossentropy", "onehot"),
    ("sigmoid_mse_general", [dense(5, 6, "tanh"), dense(6, 3, "logistic")], "mse", "unit"),
    ("softmax_mse_general", [dense(5, 6, "softplus"), dense(6, 4, "softmax")], "mse", "onehot"),
    ("sigmoid_cce_general", [dense(5, 6, "tanh"), dense(6, 4, "logistic")],
     "categorical_crossentropy", "onehot"),
    ("softmax_bce_general", [dense(5, 6, "relu"), dense(6, 3, "softmax")],
     "binary_crossentropy", "binary"),
    ("tanh_mae_general", [dense(5, 6, "relu"), dense(6, 2, "tanh")], "mae", "normal"),
]
# scikit-learn-style, reduction 'weights', with sample weights and alpha > 0
SKLEARN_NETS = [
    ("relu_softmax_log_loss", [dense(5, 6, "relu"), dense(6, 4, "softmax")], "softmax_log_loss",
     "onehot"),
    ("tanh_logistic_log_loss", [dense(5, 6, "tanh"), dense(6, 3, "logistic")],
     "logistic_log_loss", "binary"),
    ("logistic_squared_error", [dense(5, 6, "logistic"), dense(6, 1, "identity")],
     "squared_error", "normal"),
    ("softplus_poisson", [dense(5, 6, "softplus"), dense(6, 2, "exp")], "poisson", "counts"),
    ("tanh_mse_weights", [dense(5, 6, "tanh"), dense(6, 3, "identity")], "mse", "normal"),
    ("deep_relu_cce_weights", [dense(5, 7, "relu"), dense(7, 6, "leaky_relu", 0.07),
                               dense(6, 3, "softmax")], "categorical_crossentropy", "onehot"),
]


def net_data(rng, specs, target, n=11, dtype=np.float64):
    X = rng.normal(size=(n, specs[0][1])).astype(dtype)
    Y = targets(rng, target, n, specs[-1][2]).astype(dtype)
    return X, Y


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("case", KERAS_NETS, ids=[c[0] for c in KERAS_NETS])
def test_keras_network_gradient_matches_finite_differences(case, weighted, rng):
    _, specs, loss, target = case
    net = make_net(_core.Network64, specs, loss, "batch_size")
    params = init_params(rng, specs)
    X, Y = net_data(rng, specs, target)
    sw = weights(rng, X.shape[0]) if weighted else None
    loss_v, grads = engine_loss_grad(net, params, X, Y, sw, 0.0)
    # the value: a NumPy forward pass, Keras's sum_over_batch_size reduction
    assert_allclose(loss_v, ref.network_objective(specs, params, X, Y, loss, "batch_size", sw),
                    **net_tol(np.float64))
    num = fd_grads(net, params, X, Y, sw, 0.0)
    expect = ref.network_grad(specs, params, X, Y, loss, "batch_size", sw)
    for g, fd, e in zip(grads, num, expect):
        assert np.all(np.isfinite(g))
        assert_allclose(g, fd, **FD_TOL)
        assert_allclose(g, e, **net_tol(np.float64))


@pytest.mark.parametrize("case", SKLEARN_NETS, ids=[c[0] for c in SKLEARN_NETS])
def test_sklearn_network_gradient_with_weights_and_l2(case, rng):
    _, specs, loss, target = case
    alpha = 0.3
    # scikit-learn's front builds 4-tuples (fan_in, fan_out, activation, alpha)
    net = make_net(_core.Network64, specs, loss, "weights")
    params = init_params(rng, specs)
    X, Y = net_data(rng, specs, target)
    sw = weights(rng, X.shape[0])
    loss_v, grads = engine_loss_grad(net, params, X, Y, sw, alpha)
    assert_allclose(loss_v, ref.network_objective(specs, params, X, Y, loss, "weights", sw, alpha),
                    **net_tol(np.float64))
    # the L2 term is really there: alpha / (2 sum w) * sum ||W||^2
    loss0, _ = engine_loss_grad(net, params, X, Y, sw, 0.0)
    sumsq = sum(np.sum(W ** 2) for W in params[0::2])
    assert_allclose(loss_v - loss0, alpha * sumsq / (2 * sw.sum()), rtol=1e-10)
    num = fd_grads(net, params, X, Y, sw, alpha)
    expect = ref.network_grad(specs, params, X, Y, loss, "weights", sw, alpha)
    for g, fd, e in zip(grads, num, expect):
        assert_allclose(g, fd, **FD_TOL)
        assert_allclose(g, e, **net_tol(np.float64))


def test_sklearn_squared_error_gradient_keeps_sklearns_delta(rng):
    # k > 1 outputs: scikit-learn trains with delta P - Y, k times the derivative of
    # 0.5 * mean over outputs; the L2 part alpha/sum(w) W is not scaled.
    specs = [dense(5, 6, "tanh"), dense(6, 3, "identity")]
    net = make_net(_core.Network64, specs, "squared_error", "weights")
    params = init_params(rng, specs)
    X, Y = net_data(rng, specs, "normal")
    sw = weights(rng, X.shape[0])
    alpha = 0.2
    _, grads = engine_loss_grad(net, params, X, Y, sw, alpha)
    data = ref.network_grad(specs, params, X, Y, "squared_error", "weights", sw)
    for i, (g, d) in enumerate(zip(grads, data)):
        reg = alpha / sw.sum() * params[i] if i % 2 == 0 else 0.0
        assert_allclose(g, 3 * d + reg, **net_tol(np.float64))


def test_reference_network_gradient_matches_its_own_finite_differences(rng):
    # the NumPy chain rule (used for the dropout and threads tests) checked on its own,
    # with dropout masks and an activation layer in the middle
    specs = [dense(4, 5, "relu"), activation(5, "tanh"), dense(5, 3, "softmax")]
    params = init_params(rng, specs)
    X, Y = net_data(rng, specs, "onehot", n=6)
    sw = weights(rng, 6)
    masks = {0: ops.dropout_mask(3, 0, 0, 6, 5, 0.5), 1: ops.dropout_mask(3, 1, 0, 6, 5, 0.3)}
    grads = ref.network_grad(specs, params, X, Y, "categorical_crossentropy", "weights", sw, 0.1,
                             masks)
    for i in range(len(params)):
        def f(a, i=i):
            ps = list(params)
            ps[i] = a
            return ref.network_objective(specs, ps, X, Y, "categorical_crossentropy", "weights",
                                         sw, 0.1, masks)
        assert_allclose(grads[i], ref.numerical_grad(f, params[i]), **FD_TOL)


@pytest.mark.parametrize("case", [KERAS_NETS[0], KERAS_NETS[1], KERAS_NETS[5], KERAS_NETS[6],
                                  SKLEARN_NETS[0]], ids=lambda c: c[0])
def test_float32_network_gradient_matches_float64_reference(case, rng):
    _, specs, loss, target = case
    reduction = "weights" if loss in ref.SKLEARN_LOSSES else "batch_size"
    alpha = 0.3 if reduction == "weights" else 0.0
    net = make_net(_core.Network32, specs, loss, reduction)
    params = init_params(rng, specs, np.float32)
    X, Y = net_data(rng, specs, target, dtype=np.float32)
    sw = weights(rng, X.shape[0]).astype(np.float32)
    loss_v, grads = engine_loss_grad(net, params, X, Y, sw, alpha)
    assert all(g.dtype == np.float32 for g in grads)
    assert_allclose(loss_v, ref.network_objective(specs, params, X, Y, loss, reduction, sw, alpha),
                    **net_tol(np.float32))
    expect = ref.network_grad(specs, params, X, Y, loss, reduction, sw, alpha)
    for g, e in zip(grads, expect):
        assert_allclose(g, e, **net_tol(np.float32))


BIG_SPECS = [dense(10, 64, "relu"), dense(64, 64, "tanh"), dense(64, 3, "softmax")]


@pytest.mark.parametrize("loss,reduction,alpha", [
    ("categorical_crossentropy", "batch_size", 0.0),
    ("softmax_log_loss", "weights", 0.4),
])
def test_loss_grad_same_on_one_and_two_threads(loss, reduction, alpha, rng, restore_threads):
    # 259 rows x 64-wide layers: above the engine's threshold, so two threads split
    # the rows (unevenly); the result must not depend on it
    n = 259
    net = make_net(_core.Network64, BIG_SPECS, loss, reduction)
    params = init_params(rng, BIG_SPECS)
    X, Y = net_data(rng, BIG_SPECS, "onehot", n=n)
    sw = weights(rng, n)
    results = {}
    for nt in (1, 2, 1):
        neuraxis.set_num_threads(nt)
        assert neuraxis.get_num_threads() == nt
        results.setdefault(nt, []).append(engine_loss_grad(net, params, X, Y, sw, alpha))
    (l1, g1), (l1b, g1b) = results[1]
    (l2, g2), = results[2]
    assert l1 == l1b and all(np.array_equal(a, b) for a, b in zip(g1, g1b))  # deterministic
    assert_allclose(l2, l1, rtol=1e-12)
    for a, b in zip(g2, g1):
        assert_allclose(a, b, rtol=1e-12, atol=1e-15)
    assert_allclose(l1, ref.network_objective(BIG_SPECS, params, X, Y, loss, reduction, sw, alpha),
                    **net_tol(np.float64))
    expect = ref.network_grad(BIG_SPECS, params, X, Y, loss, reduction, sw, alpha)
    for a, e in zip(g2, expect):
        assert_allclose(a, e, **net_tol(np.float64))


def test_float32_loss_grad_on_two_threads_matches_reference(rng, restore_threads):
    n = 256
    specs = [dense(10, 64, "relu"), activation(64, "leaky_relu", 0.2), dense(64, 64, "tanh"),
             dense(64, 3, "logistic")]
    net = make_net(_core.Network32, specs, "binary_crossentropy", "batch_size")
    params = init_params(rng, specs, np.float32)
    X, Y = net_data(rng, specs, "binary", n=n, dtype=np.float32)
    out = []
    for nt in (1, 2):
        neuraxis.set_num_threads(nt)
        out.append(engine_loss_grad(net, params, X, Y, None, 0.0))
    expect = ref.network_grad(specs, params, X, Y, "binary_crossentropy", "batch_size")
    for (lv, grads) in out:
        assert_allclose(lv, ref.network_objective(specs, params, X, Y, "binary_crossentropy",
                                                  "batch_size"), **net_tol(np.float32))
        for g, e in zip(grads, expect):
            assert_allclose(g, e, **net_tol(np.float32))
    for a, b in zip(out[0][1], out[1][1]):
        assert_allclose(a, b, rtol=1e-5, atol=1e-6)


# ---- 3. dropout through the engine ------------------------------------------------------

def sgd(lr, momentum=0.0):
    opt = _core.OptConfig()
    opt.kind = "sgd"
    opt.learning_rate = lr
    opt.momentum = momentum
    return opt


def train_one_batch(net, params, opt, X, Y, sw, seed, m=None, v=None, metrics=()):
    m = [np.zeros_like(p) for p in params] if m is None else m
    v = [] if v is None else v
    return net.train_batches(params, opt, m, v, X, Y, sw, None, X.shape[0], 0, 1, list(metrics),
                             seed)


DROP_SPECS = [dense(5, 8, "relu", 0, 0.5), dense(8, 3, "softmax")]


@pytest.mark.parametrize("dtype", DTYPES)
def test_dropout_gradient_through_train_batches(dtype, rng):
    n, h, lr, seed = 12, 8, 0.5, 2024
    net = make_net(NETWORK[dtype], DROP_SPECS, "categorical_crossentropy", "batch_size")
    params = init_params(rng, DROP_SPECS, dtype)
    X, Y = net_data(rng, DROP_SPECS, "onehot", n=n, dtype=dtype)
    before = [p.copy() for p in params]
    tot = train_one_batch(net, params, sgd(lr), X, Y, None, seed)
    g_engine = [(b.astype(np.float64) - a.astype(np.float64)) / lr for a, b in zip(params, before)]

    drop = engine_layers(DROP_SPECS)[1][0]  # the engine index of the Dropout after layer 0
    mask = ops.dropout_mask(seed, layer=drop, row0=0, rows=n, cols=h, rate=0.5)
    assert 0 < np.count_nonzero(mask) < mask.size
    expect = ref.network_grad(DROP_SPECS, before, X, Y, "categorical_crossentropy", "batch_size",
                              masks={0: mask})
    no_drop = ref.network_grad(DROP_SPECS, before, X, Y, "categorical_crossentropy", "batch_size")
    t = dict(rtol=1e-9, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=3e-6)
    for g, e in zip(g_engine, expect):
        assert_allclose(g, e, **t)
    assert not np.allclose(g_engine[0], no_drop[0], rtol=1e-3)  # the mask mattered
    # the loss it reports is the loss of the dropped-out forward pass
    assert_allclose(tot["loss_sum"] / n,
                    ref.network_objective(DROP_SPECS, before, X, Y, "categorical_crossentropy",
                                          "batch_size", masks={0: mask}), **net_tol(dtype))


def test_dropout_masks_continue_across_batches(rng):
    # batch b uses rows b*batch.. of the mask, whatever the chunking
    n, h, lr, seed, batch = 10, 8, 0.25, 77, 4
    net = make_net(_core.Network64, DROP_SPECS, "categorical_crossentropy", "batch_size")
    params = init_params(rng, DROP_SPECS)
    X, Y = net_data(rng, DROP_SPECS, "onehot", n=n)
    expect = [p.copy() for p in params]
    mask = ops.dropout_mask(seed, engine_layers(DROP_SPECS)[1][0], 0, n, h, 0.5)
    for b in range(3):
        s = slice(b * batch, min(n, (b + 1) * batch))
        g = ref.network_grad(DROP_SPECS, expect, X[s], Y[s], "categorical_crossentropy",
                             "batch_size", masks={0: mask[s]})
        expect = [p - lr * gi for p, gi in zip(expect, g)]
    m = [np.zeros_like(p) for p in params]
    net.train_batches(params, sgd(lr), m, [], X, Y, None, None, batch, 0, -1, [], seed)
    for p, e in zip(params, expect):
        assert_allclose(p, e, rtol=1e-10, atol=1e-12)


def test_predict_evaluate_and_loss_grad_ignore_dropout(rng):
    specs = [dense(5, 8, "relu", 0, 0.5), activation(8, "tanh", 0, 0.3), dense(8, 3, "softmax")]
    net = make_net(_core.Network64, specs, "categorical_crossentropy", "batch_size")
    params = init_params(rng, specs)
    X, Y = net_data(rng, specs, "onehot", n=9)
    P, nonfinite = net.predict(params, X)
    assert not nonfinite
    P_ref, _ = ref.network_forward(specs, params, X)
    assert_allclose(P, P_ref, **net_tol(np.float64))
    ev = net.evaluate(params, X, Y, None, 4, [])
    plain = ref.network_objective(specs, params, X, Y, "categorical_crossentropy", "batch_size")
    assert ev["rows"] == 9
    assert_allclose(ev["loss_sum"] / ev["rows"], plain, **net_tol(np.float64))
    loss_v, grads = engine_loss_grad(net, params, X, Y, None, 0.0)
    assert_allclose(loss_v, plain, **net_tol(np.float64))
    for g, e in zip(grads, ref.network_grad(specs, params, X, Y, "categorical_crossentropy",
                                            "batch_size")):
        assert_allclose(g, e, **net_tol(np.float64))


def test_dropout_training_is_reproducible_per_seed(rng):
    net = make_net(_core.Network64, DROP_SPECS, "categorical_crossentropy", "batch_size")
    params = init_params(rng, DROP_SPECS)
    X, Y = net_data(rng, DROP_SPECS, "onehot", n=16)

    def run(seed):
        ps = [p.copy() for p in params]
        m = [np.zeros_like(p) for p in params]
        tot = net.train_batches(ps, sgd(0.1, 0.9), m, [], X, Y, None, None, 5, 0, -1, [], seed)
        return ps, tot["loss_sum"]

    a, la = run(11)
    b, lb = run(11)
    c, lc = run(12)
    assert la == lb and all(np.array_equal(x, y) for x, y in zip(a, b))
    assert la != lc and not np.array_equal(a[0], c[0])


def test_dropout_mask_does_not_depend_on_thread_split(rng, restore_threads):
    specs = [dense(10, 64, "relu", 0, 0.5), dense(64, 64, "tanh", 0, 0.2), dense(64, 3, "softmax")]
    n, lr, seed = 256, 0.5, 5
    net = make_net(_core.Network64, specs, "categorical_crossentropy", "batch_size")
    params = init_params(rng, specs)
    X, Y = net_data(rng, specs, "onehot", n=n)
    out = []
    for nt in (1, 2):
        neuraxis.set_num_threads(nt)
        ps = [p.copy() for p in params]
        train_one_batch(net, ps, sgd(lr), X, Y, None, seed)
        out.append(ps)
    at = engine_layers(specs)[1]
    masks = {0: ops.dropout_mask(seed, at[0], 0, n, 64, 0.5),
             1: ops.dropout_mask(seed, at[1], 0, n, 64, 0.2)}
    expect = ref.network_grad(specs, params, X, Y, "categorical_crossentropy", "batch_size",
                              masks=masks)
    for a, b, p, e in zip(out[0], out[1], params, expect):
        assert_allclose(a, b, rtol=1e-12, atol=1e-15)
        assert_allclose((p - b) / lr, e, rtol=1e-8, atol=1e-12)


# ---- 4. train_batches bookkeeping -----------------------------------------------------------

BOOK_SPECS = [dense(5, 7, "tanh"), dense(7, 4, "softmax")]


def book_setup(rng, n=23, reduction="batch_size"):
    net = make_net(_core.Network64, BOOK_SPECS, "categorical_crossentropy", reduction)
    params = init_params(rng, BOOK_SPECS, w_scale=2.0)
    X, Y = net_data(rng, BOOK_SPECS, "onehot", n=n)
    return net, params, X, Y, weights(rng, n)


@pytest.mark.parametrize("use_perm", [False, True])
@pytest.mark.parametrize("reduction", ["batch_size", "weights"])
def test_train_batches_totals_with_lr_zero(reduction, use_perm, rng):
    n, batch = 23, 5
    net, params, X, Y, sw = book_setup(rng, n, reduction)
    perm = rng.permutation(n).astype(np.int64) if use_perm else None
    before = [p.copy() for p in params]
    m = [np.zeros_like(p) for p in params]
    tot = net.train_batches(params, sgd(0.0), m, [], X, Y, sw, perm, batch, 0, -1,
                            ["weighted:categorical_accuracy", "weighted:mse", "mse"], 0)
    for p, b in zip(params, before):
        assert_array_equal(p, b)
    P, _ = net.predict(params, X)
    acc = ref.metric_sum("categorical_accuracy", P, Y, sw)
    assert 0 < acc < sw.sum()
    # "weighted:" metrics are sums of w_i * metric_i, plain ones ignore the weights
    assert_allclose(tot["metric_sums"], [acc, ref.metric_sum("mse", P, Y, sw),
                                         ref.metric_sum("mse", P, Y, None)], rtol=1e-12)
    assert tot["rows"] == n
    assert_allclose(tot["weight_sum"], sw.sum(), rtol=1e-14)
    order = perm if use_perm else np.arange(n)
    per_row = ref.keras_loss_per_row("categorical_crossentropy", P, Y)
    expect = 0.0
    for start in range(0, n, batch):
        rows = order[start:start + batch]
        wl = np.sum(sw[rows] * per_row[rows])
        denom = len(rows) if reduction == "batch_size" else sw[rows].sum()
        expect += wl / denom * len(rows)
    assert_allclose(tot["loss_sum"], expect, rtol=1e-12)


@pytest.mark.parametrize("reduction", ["batch_size", "weights"])
def test_evaluate_totals_with_weights(reduction, rng):
    n, batch = 23, 5
    net, params, X, Y, sw = book_setup(rng, n, reduction)
    tot = net.evaluate(params, X, Y, sw, batch,
                       ["weighted:categorical_accuracy", "weighted:mae"])
    P, _ = ref.network_forward(BOOK_SPECS, params, X)
    assert tot["rows"] == n
    assert_allclose(tot["weight_sum"], sw.sum(), rtol=1e-14)
    assert_allclose(tot["metric_sums"], [ref.metric_sum("categorical_accuracy", P, Y, sw),
                                         ref.metric_sum("mae", P, Y, sw)], rtol=1e-12)
    per_row = ref.keras_loss_per_row("categorical_crossentropy", P, Y)
    expect = 0.0
    for start in range(0, n, batch):
        s = slice(start, start + batch)
        rows = len(per_row[s])
        denom = rows if reduction == "batch_size" else sw[s].sum()
        expect += np.sum(sw[s] * per_row[s]) / denom * rows
    assert_allclose(tot["loss_sum"], expect, rtol=1e-12)


def test_train_batches_totals_on_two_threads(rng, restore_threads):
    # one 259-row batch split over two threads: per-thread loss and metric partial
    # sums must all be added
    n = 259
    net = make_net(_core.Network64, BIG_SPECS, "categorical_crossentropy", "batch_size")
    params = init_params(rng, BIG_SPECS, w_scale=2.0)
    X, Y = net_data(rng, BIG_SPECS, "onehot", n=n)
    sw = weights(rng, n)
    P, _ = ref.network_forward(BIG_SPECS, params, X)
    names = ["categorical_accuracy", "binary_accuracy", "mse", "mae"]
    mets = ["weighted:" + m for m in names]
    expect = [ref.metric_sum(m, P, Y, sw) for m in names]
    loss = np.sum(sw * ref.keras_loss_per_row("categorical_crossentropy", P, Y))  # / n * n
    for nt in (2, 1):
        neuraxis.set_num_threads(nt)
        m = [np.zeros_like(p) for p in params]
        tot = net.train_batches(params, sgd(0.0), m, [], X, Y, sw, None, n, 0, 1, mets, 0)
        assert tot["rows"] == n
        assert_allclose(tot["weight_sum"], sw.sum(), rtol=1e-13)
        assert_allclose(tot["metric_sums"], expect, rtol=1e-11)
        assert_allclose(tot["loss_sum"], loss, rtol=1e-11)


def adam(lr):
    opt = _core.OptConfig()
    opt.kind = "adam"
    opt.learning_rate = lr
    opt.epsilon = 1e-7
    return opt


@pytest.mark.parametrize("use_perm", [False, True])
def test_chunked_training_equals_one_call(use_perm, rng):
    n, batch = 23, 5  # 5 batches, the last one of 3 rows
    net, params, X, Y, sw = book_setup(rng, n)
    perm = rng.permutation(n).astype(np.int64) if use_perm else None
    mets = ["categorical_accuracy", "mse"]

    def fresh():
        return ([p.copy() for p in params], adam(0.05), [np.zeros_like(p) for p in params],
                [np.zeros_like(p) for p in params])

    p1, o1, m1, v1 = fresh()
    whole = net.train_batches(p1, o1, m1, v1, X, Y, sw, perm, batch, 0, -1, mets, 3)
    assert o1.t == 5  # one step per batch
    p2, o2, m2, v2 = fresh()
    a = net.train_batches(p2, o2, m2, v2, X, Y, sw, perm, batch, 0, 2, mets, 3)
    assert o2.t == 2 and a["rows"] == 10
    b = net.train_batches(p2, o2, m2, v2, X, Y, sw, perm, batch, 2, 10, mets, 3)
    assert o2.t == 5 and b["rows"] == 13
    for x, y in zip(p1 + m1 + v1, p2 + m2 + v2):
        assert_array_equal(x, y)
    assert whole["rows"] == a["rows"] + b["rows"]
    assert_allclose(whole["loss_sum"], a["loss_sum"] + b["loss_sum"], rtol=1e-13)
    assert_allclose(whole["weight_sum"], a["weight_sum"] + b["weight_sum"], rtol=1e-13)
    assert_allclose(whole["metric_sums"], np.add(a["metric_sums"], b["metric_sums"]), rtol=1e-13)
    assert not np.array_equal(p1[0], params[0])  # it trained


def test_chunk_past_the_end_does_nothing(rng):
    net, params, X, Y, sw = book_setup(rng, 23)
    opt = adam(0.05)
    before = [p.copy() for p in params]
    tot = net.train_batches(params, opt, [np.zeros_like(p) for p in params],
                            [np.zeros_like(p) for p in params], X, Y, sw, None, 5, 5, 3, ["mse"], 0)
    assert opt.t == 0 and tot["rows"] == 0 and tot["loss_sum"] == 0.0
    assert tot["metric_sums"] == [0.0]
    for p, b in zip(params, before):
        assert_array_equal(p, b)


def stepwise(net, params, X, Y, sw, batch, n_batches, opt, m, v, apply_step):
    """Train batch by batch through the engine, and alongside apply `apply_step`
    to a copy with the engine's own gradient (loss_grad on that batch)."""
    mirror = [p.copy() for p in params]
    scratch = [np.zeros_like(p) for p in params]
    for b in range(n_batches):
        s = slice(b * batch, (b + 1) * batch)
        net.loss_grad(mirror, scratch, X[s], Y[s], sw[s], 0.0)
        t_before = opt.t
        net.train_batches(params, opt, m, v, X, Y, sw, None, batch, b, 1, [], 0)
        assert opt.t == t_before + 1
        apply_step(mirror, scratch, opt.t)
        for p, q in zip(params, mirror):
            assert_allclose(p, q, rtol=1e-13, atol=1e-15)
    return mirror


def test_adam_through_the_engine_matches_adam_step(rng):
    n, batch = 18, 6
    net, params, X, Y, sw = book_setup(rng, n)
    opt = adam(0.02)
    opt.beta_1, opt.beta_2 = 0.85, 0.99
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    om = [np.zeros_like(p) for p in params]
    ov = [np.zeros_like(p) for p in params]
    rp = [p.copy() for p in params]
    rm = [np.zeros_like(p) for p in params]
    rv = [np.zeros_like(p) for p in params]

    def step(mirror, grads, t):
        lr_t = ref.adam_lr_t(0.02, t, 0.85, 0.99)
        for i, (p, g) in enumerate(zip(mirror, grads)):
            ops.adam_step(p, om[i], ov[i], g, lr_t, 0.85, 0.99, 1e-7)
            rp[i], rm[i], rv[i] = ref.adam_step(rp[i], rm[i], rv[i], g, lr_t, 0.85, 0.99, 1e-7)

    stepwise(net, params, X, Y, sw, batch, 3, opt, m, v, step)
    for p, r, a, b in zip(params, rp, m + v, om + ov):
        assert_allclose(p, r, rtol=1e-12, atol=1e-14)
        assert_allclose(a, b, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("momentum", [0.0, 0.6])
def test_rmsprop_through_the_engine_matches_rmsprop_step(momentum, rng):
    n, batch = 18, 6
    net, params, X, Y, sw = book_setup(rng, n)
    opt = _core.OptConfig()
    opt.kind, opt.learning_rate, opt.rho, opt.epsilon, opt.momentum = \
        "rmsprop", 0.01, 0.8, 1e-7, momentum
    ms = [np.zeros_like(p) for p in params]
    mom = [np.zeros_like(p) for p in params] if momentum else []
    oms = [np.zeros_like(p) for p in params]
    omom = [np.zeros_like(p) for p in params]
    rp = [p.copy() for p in params]
    rms = [np.zeros_like(p) for p in params]
    rmom = [np.zeros_like(p) for p in params]

    def step(mirror, grads, t):
        for i, (p, g) in enumerate(zip(mirror, grads)):
            ops.rmsprop_step(p, oms[i], g, 0.01, 0.8, 1e-7, momentum,
                             omom[i] if momentum else None)
            rp[i], rms[i], rmom[i] = ref.rmsprop_step(rp[i], rms[i], g, 0.01, 0.8, 1e-7, momentum,
                                                      rmom[i])

    stepwise(net, params, X, Y, sw, batch, 3, opt, ms, mom, step)
    for p, r, a, b in zip(params, rp, ms, oms):
        assert_allclose(p, r, rtol=1e-12, atol=1e-14)
        assert_allclose(a, b, rtol=1e-13, atol=1e-16)
    if momentum:
        for a, b in zip(mom, omom):
            assert_allclose(a, b, rtol=1e-13, atol=1e-16)


# ---- 5. bad specs and arrays ----------------------------------------------------------

GOOD = [dense(4, 5, "relu"), dense(5, 3, "softmax")]


D45 = {"kind": "dense", "units": 5, "activation": "relu"}
D3 = {"kind": "dense", "units": 3, "activation": "softmax"}


@pytest.mark.parametrize("layers,loss,reduction,match", [
    ([{"kind": "conv", "units": 5}, D3], "categorical_crossentropy", "batch_size",
     "layer 0 \\(conv\\): unknown layer kind 'conv'; expected one of dense, activation"),
    ([D45, D3], "hinge", "batch_size", "unknown loss 'hinge'.*categorical_crossentropy"),
    ([{**D45, "activation": "swish"}, D3], "mse", "batch_size",
     "unknown activation 'swish'; expected one of identity"),
    ([D45, {"kind": "dropout", "rate": 1.0}, D3], "mse", "batch_size",
     r"layer 1 \(dropout\): 'rate' must be in \[0, 1\)"),
    ([D45, {"kind": "dropout", "rate": -0.2}], "mse", "batch_size", "rate"),
    ([{**D45, "units": 0}], "mse", "batch_size", "'units' must be a positive integer, got 0"),
    ([{"kind": "dense"}], "mse", "batch_size", "layer 0 \\(dense\\): missing key 'units'"),
    ([{**D45, "unit": 3}], "mse", "batch_size", "unknown key\\(s\\) 'unit'"),
    ([{"kind": "reshape", "target_shape": [3, -1]}], "mse", "batch_size",
     "cannot reshape inputs of shape \\(4,\\)"),
    ([{"kind": "reshape", "target_shape": [-1, -1]}], "mse", "batch_size", "at most one -1"),
    ([], "mse", "batch_size", "at least one layer"),
    ([D45, D3], "mse", "mean", "reduction must be"),
    ([D45, {**D45, "units": 3}], "softmax_log_loss", "weights",
     "output activation does not match"),
])
def test_bad_specs_raise_value_error(layers, loss, reduction, match):
    for cls in (_core.Network64, _core.Network32):
        with pytest.raises(ValueError, match=match):
            cls([4], layers, loss, reduction)


@pytest.mark.parametrize("layers,match", [
    ([("dense", 4, 5, "relu")], "a layer spec must be a dict"),
    ([{**D45, "units": "five"}], "'units' must be an integer"),
    ([{**D45, "alpha": "0.5"}], "'alpha' must be a number"),
    ([{**D45, "use_bias": 1}], "'use_bias' must be True or False"),
    ([{**D45, "activation": None}], "'activation' has an unsupported value None"),
    ([{"kind": "reshape", "target_shape": [2, 2.0]}], "'target_shape' must hold integers"),
])
def test_spec_with_wrong_field_types_raises(layers, match):
    with pytest.raises((TypeError, ValueError), match=match):
        _core.Network64([4], layers, "mse", "batch_size")


def test_bad_input_shape_raises():
    with pytest.raises(ValueError, match="must be positive"):
        _core.Network64([4, 0], [D45], "mse", "batch_size")
    with pytest.raises(ValueError, match="at least one axis"):
        _core.Network64([], [D45], "mse", "batch_size")


def good_net(rng, dtype=np.float64):
    net = make_net(NETWORK[dtype], GOOD, "categorical_crossentropy", "batch_size")
    params = init_params(rng, GOOD, dtype)
    X, Y = net_data(rng, GOOD, "onehot", n=6, dtype=dtype)
    return net, params, X, Y


def test_unknown_metric_raises(rng):
    net, params, X, Y = good_net(rng)
    m = [np.zeros_like(p) for p in params]
    with pytest.raises(ValueError, match="unknown metric 'auc'.*categorical_accuracy"):
        net.train_batches(params, sgd(0.1), m, [], X, Y, None, None, 3, 0, -1, ["auc"], 0)
    with pytest.raises(ValueError, match="unknown metric 'auc'"):
        net.evaluate(params, X, Y, None, 3, ["mse", "auc"])
    with pytest.raises(ValueError, match="unknown metric"):
        ops.metric_sum("auc", Y, Y)
    with pytest.raises(ValueError, match="unknown loss"):
        ops.loss_value("hinge", Y, Y)


def test_wrong_params_raise(rng):
    net, params, X, Y = good_net(rng)
    grads = [np.zeros_like(p) for p in params]
    with pytest.raises(ValueError, match="expected 4 arrays, got 3"):
        net.loss_grad(params[:3], grads, X, Y, None, 0.0)
    with pytest.raises(ValueError, match="expected 4 arrays, got 3"):
        net.predict(params[:3], X)
    bad = [np.zeros((4, 4))] + params[1:]
    with pytest.raises(ValueError, match="16 elements, expected 20"):
        net.loss_grad(bad, grads, X, Y, None, 0.0)
    with pytest.raises(ValueError, match="expected 4 arrays, got 3"):
        net.loss_grad(params, grads[:3], X, Y, None, 0.0)
    with pytest.raises(ValueError, match="C-contiguous"):
        net.loss_grad([np.asfortranarray(params[0])] + params[1:], grads, X, Y, None, 0.0)
    with pytest.raises(ValueError, match="shape"):
        net.loss_grad(params, grads, X[:, :3].copy(), Y, None, 0.0)
    with pytest.raises(ValueError, match="shape"):
        net.loss_grad(params, grads, X, Y, np.ones(5), 0.0)
    m = [np.zeros_like(p) for p in params]
    with pytest.raises(ValueError, match="optimizer state m"):
        net.train_batches(params, sgd(0.1), m[:2], [], X, Y, None, None, 3, 0, -1, [], 0)
    with pytest.raises(ValueError, match="batch size"):
        net.train_batches(params, sgd(0.1), m, [], X, Y, None, None, 0, 0, -1, [], 0)
    opt = sgd(0.1)
    opt.kind = "lamb"
    with pytest.raises(ValueError, match="unknown optimizer 'lamb'"):
        net.train_batches(params, opt, m, [], X, Y, None, None, 3, 0, -1, [], 0)
    with pytest.raises(ValueError, match="out-of-range"):
        net.train_batches(params, sgd(0.1), m, [], X, Y, None, np.array([0, 1, 2, 3, 4, 6]), 3, 0,
                          -1, [], 0)


def test_wrong_dtype_raises_type_error(rng):
    net, params, X, Y = good_net(rng)
    grads = [np.zeros_like(p) for p in params]
    p32 = [p.astype(np.float32) for p in params]
    with pytest.raises(TypeError, match="float64"):
        net.loss_grad(p32, grads, X, Y, None, 0.0)
    with pytest.raises(TypeError, match="float64"):
        net.loss_grad(params, grads, X.astype(np.float32), Y, None, 0.0)
    with pytest.raises(TypeError, match="float64"):
        net.predict(p32, X)
    net32 = make_net(_core.Network32, GOOD, "categorical_crossentropy", "batch_size")
    with pytest.raises(TypeError, match="float32"):
        net32.predict(params, X.astype(np.float32))
    with pytest.raises(TypeError, match="numpy array"):
        net.predict([p.tolist() for p in params], X)


@pytest.mark.parametrize("kind", ["sgd", "adam", "rmsprop"])
def test_fit_epoch_with_l2_matches_steps_on_loss_grad(kind, rng):
    # fit_epoch folds alpha/sum(w) W into the step; it must equal the optimizer's step on
    # loss_grad's gradient (which contains that term), and report the mean objective
    n, batch, alpha, lr = 18, 6, 0.5, 0.01
    specs = [dense(5, 7, "tanh"), dense(7, 4, "softmax")]
    net = make_net(_core.Network64, specs, "softmax_log_loss", "weights")
    params = init_params(rng, specs)
    X, Y = net_data(rng, specs, "onehot", n=n)
    sw = weights(rng, n)
    opt = _core.OptConfig()
    opt.kind, opt.learning_rate, opt.rho, opt.epsilon, opt.momentum, opt.nesterov = \
        kind, lr, 0.9, 1e-7, (0.9 if kind == "sgd" else 0.0), True
    mirror = [p.copy() for p in params]
    a = [np.zeros_like(p) for p in params]
    b_ = [np.zeros_like(p) for p in params]
    g = [np.zeros_like(p) for p in params]
    objectives = []
    for b in range(n // batch):
        s = slice(b * batch, (b + 1) * batch)
        objectives.append(net.loss_grad(mirror, g, X[s], Y[s], sw[s], alpha))
        for i in range(len(params)):
            if kind == "sgd":
                ops.sgd_step(mirror[i], a[i], g[i], lr, 0.9, True)
            elif kind == "adam":
                ops.adam_step(mirror[i], a[i], b_[i], g[i], ref.adam_lr_t(lr, b + 1), 0.9, 0.999,
                              1e-7)
            else:
                ops.rmsprop_step(mirror[i], a[i], g[i], lr, 0.9, 1e-7, 0.0)
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params] if kind == "adam" else []
    mean_obj = net.fit_epoch(params, opt, m, v, X, Y, sw, None, batch, alpha)
    assert opt.t == n // batch
    assert_allclose(mean_obj, np.mean(objectives), rtol=1e-12)
    for p, q in zip(params, mirror):
        assert_allclose(p, q, rtol=1e-12, atol=1e-14)
