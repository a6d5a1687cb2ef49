"""Batch normalization: the kernels of neuraxis.ops and the engine layer against an
independent NumPy reference, central finite differences in float64 (training mode, where
the batch statistics depend on every row), the moving-statistics update, thread-count
invariance, a frozen layer (inference mode, as Keras), and torch's batch_norm when
installed."""
import zlib

import numpy as np
import pytest
from numpy.testing import assert_allclose

import neuraxis
from neuraxis import _core, ops

import reference as ref

EPS = 1e-3


# ---- the NumPy reference ------------------------------------------------------------------
def bn_reference(x, gamma, beta, mean=None, var=None, eps=EPS):
    """(y, mean, var) over every axis but the last; batch statistics when mean is None."""
    x = np.asarray(x, np.float64)
    axes = tuple(range(x.ndim - 1))
    if mean is None:
        mean = x.mean(axis=axes)
        var = ((x - mean) ** 2).mean(axis=axes)
    g = 1.0 if gamma is None else gamma
    b = 0.0 if beta is None else beta
    return g * (x - mean) / np.sqrt(var + eps) + b, mean, var


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


SHAPES = [(7, 3), (2, 5, 3, 4), (3, 6, 5), (1, 2)]


def inputs(rng, shape, dtype=np.float64, offset=0.0):
    C = shape[-1]
    return (rng.normal(size=shape).astype(dtype) * 2 + offset,
            rng.uniform(0.5, 1.5, C).astype(dtype), rng.normal(size=C).astype(dtype),
            rng.normal(size=C).astype(dtype), rng.uniform(0.5, 2.0, C).astype(dtype))


def tol(dtype):
    return dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-5)


# ---- ops -------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("affine", [True, False])
def test_forward_matches_reference(dtype, shape, training, affine, rng):
    x, g, b, mm, mv = inputs(rng, shape, dtype)
    if not affine:
        g = b = None
    y, mean, var = ops.batch_norm_forward(x, g, b, mm, mv, training=training)
    want, wmean, wvar = bn_reference(x, g, b, None if training else mm, None if training else mv)
    assert y.dtype == dtype and y.shape == x.shape
    assert_allclose(y, want, **tol(dtype))
    assert_allclose(mean, wmean, **tol(dtype))
    assert_allclose(var, wvar, **tol(dtype))


def test_a_large_mean_does_not_cancel_the_variance(rng):
    # float32 data around 1000 with unit spread: a one-pass sum of squares would lose it
    x = (rng.normal(size=(64, 3)) + 1000.0).astype(np.float32)
    y, mean, var = ops.batch_norm_forward(x, None, None, np.zeros(3, np.float32),
                                          np.ones(3, np.float32), training=True)
    x64 = x.astype(np.float64)
    assert_allclose(var, x64.var(axis=0), rtol=1e-5)
    assert_allclose(y, bn_reference(x64, None, None)[0], rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("shape", SHAPES[:3], ids=str)
@pytest.mark.parametrize("training", [False, True])
def test_backward_matches_finite_differences(shape, training, rng):
    x, g, b, mm, mv = inputs(rng, shape)
    w = rng.normal(size=shape)  # f = sum(w * y)

    def f_x(xx):
        return (w * ops.batch_norm_forward(xx, g, b, mm, mv, training=training)[0]).sum()

    def f_g(gg):
        return (w * ops.batch_norm_forward(x, gg, b, mm, mv, training=training)[0]).sum()

    def f_b(bb):
        return (w * ops.batch_norm_forward(x, g, bb, mm, mv, training=training)[0]).sum()

    _, mean, var = ops.batch_norm_forward(x, g, b, mm, mv, training=training)
    dx, dg, db = ops.batch_norm_backward(x, w, g, mean, var, training=training)
    assert_allclose(dx, ref.numerical_grad(f_x, x), rtol=1e-6, atol=1e-8)
    assert_allclose(dg, ref.numerical_grad(f_g, g), rtol=1e-6, atol=1e-8)
    assert_allclose(db, ref.numerical_grad(f_b, b), rtol=1e-6, atol=1e-8)


def test_backward_matches_the_closed_form(rng):
    x, g, b, mm, mv = inputs(rng, (9, 4))
    dy = rng.normal(size=x.shape)
    _, mean, var = ops.batch_norm_forward(x, g, b, mm, mv, training=True)
    dx, dg, db = ops.batch_norm_backward(x, dy, g, mean, var, training=True)
    xhat = (x - x.mean(0)) / np.sqrt(x.var(0) + EPS)
    n = x.shape[0]
    want = g / np.sqrt(x.var(0) + EPS) * (dy - dy.mean(0) - xhat * (dy * xhat).sum(0) / n)
    assert_allclose(dx, want, rtol=1e-10, atol=1e-12)
    assert_allclose(dg, (dy * xhat).sum(0), rtol=1e-10)
    assert_allclose(db, dy.sum(0), rtol=1e-10)


@pytest.mark.parametrize("call", [
    lambda: ops.batch_norm_forward(np.ones((2, 3)), np.ones(2), None, np.zeros(3), np.ones(3)),
    lambda: ops.batch_norm_forward(np.ones((2, 3)), None, None, np.zeros(2), np.ones(3)),
    lambda: ops.batch_norm_forward(np.ones((2, 3)), None, None, np.zeros(3), np.ones(3),
                                   epsilon=0.0),
    lambda: ops.batch_norm_backward(np.ones((2, 3)), np.ones((3, 3)), None, np.zeros(3),
                                    np.ones(3)),
], ids=["gamma", "mean", "epsilon", "dy"])
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


# ---- the engine layer ------------------------------------------------------------------
def dense(units, activation="identity"):
    return {"kind": "dense", "units": units, "activation": activation}


def bn(**kw):
    return {"kind": "batch_norm", "momentum": 0.9, "epsilon": EPS, **kw}


def make_net(shape, width, dtype=np.float64, **bn_kw):
    cls = _core.Network64 if dtype == np.float64 else _core.Network32
    return cls(list(shape), [dense(width), bn(**bn_kw), dense(3, "tanh")], "mse", "batch_size")


def make_params(net, rng, dtype=np.float64):
    params = [(rng.normal(size=s) * 0.5).astype(dtype) for s in net.param_shapes]
    params[5] = rng.uniform(0.5, 2.0, params[5].shape).astype(dtype)  # moving variance > 0
    return params


def numpy_forward(params, X, training):
    W0, b0, g, b, mm, mv, W1, b1 = params
    h = X @ W0 + b0
    hn, mean, var = bn_reference(h, g, b, None if training else mm, None if training else mv)
    return np.tanh(hn @ W1 + b1), mean, var


def sgd_gradient(net, params, X, Y):
    """The training-mode gradient the engine applies: one SGD step of lr 1 over one batch."""
    opt = _core.OptConfig()
    opt.kind, opt.learning_rate, opt.momentum = "sgd", 1.0, 0.0
    after = [p.copy() for p in params]
    net.train_batches(after, opt, [np.zeros_like(p) for p in after], [], X, Y, None, None,
                      len(X), 0, 1, [], 0)
    return after, [p - a for p, a in zip(params, after)]


def test_layer_shapes_and_parameters():
    net = make_net((5, 4), 6)
    assert net.param_shapes == [(4, 6), (6,), (6,), (6,), (6,), (6,), (6, 3), (3,)]
    assert net.param_trainable == [True, True, True, True, False, False, True, True]
    assert net.layer_output_shapes[1] == (5, 6)
    bare = _core.Network64([4], [bn(center=False, scale=False)], "mse", "batch_size")
    assert bare.param_shapes == [(4,), (4,)]
    assert bare.param_trainable == [False, False]


@pytest.mark.parametrize("shape", [(5,), (3, 5)], ids=str)
def test_predict_in_inference_and_training_mode(shape, rng):
    net = make_net(shape, 4)
    params = make_params(net, rng)
    X = rng.normal(size=(11,) + shape) + 2.0
    out, _ = net.predict(params, X)
    assert_allclose(out, numpy_forward(params, X, False)[0], rtol=1e-10, atol=1e-12)
    out, _ = net.predict(params, X, training=True)
    assert_allclose(out, numpy_forward(params, X, True)[0], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("shape,n,width", [((5,), 9, 4), ((3, 5), 6, 4), ((64,), 48, 64)],
                         ids=["flat", "sequence", "two-threads"])
def test_training_gradient_and_moving_statistics(shape, n, width, rng):
    net = make_net(shape, width)
    params = make_params(net, rng)
    X, Y = rng.normal(size=(n,) + shape) + 1.0, rng.normal(size=(n,) + shape[:-1] + (3,))
    Yf = Y.reshape(n, -1)

    def objective(ps):  # the training-mode loss: batch statistics
        P = net.predict(ps, X, training=True)[0]
        return np.mean((P.reshape(n, -1) - Yf) ** 2)

    after, grads = sgd_gradient(net, params, X, Yf)
    for i in (0, 2, 3, 6, 7):  # the bias before the normalization has a zero gradient
        def f(a, i=i):
            ps = list(params)
            ps[i] = a
            return objective(ps)
        assert_allclose(grads[i], ref.numerical_grad(f, params[i]), rtol=1e-6, atol=1e-8)
    assert_allclose(grads[1], 0.0, atol=1e-10)
    _, mean, var = numpy_forward(params, X.reshape(-1, shape[-1]), True)
    assert_allclose(after[4], 0.9 * params[4] + 0.1 * mean, rtol=1e-12)
    assert_allclose(after[5], 0.9 * params[5] + 0.1 * var, rtol=1e-12)


def test_threads_give_the_reference_result(rng):
    # 48 rows of a 64-wide net split over two threads; each reduces its rows, then both
    # combine the parts: the same statistics (to rounding) as one pass.
    net = make_net((64,), 64)
    params = make_params(net, rng)
    X, Y = rng.normal(size=(48, 64)), rng.normal(size=(48, 3))
    results = []
    for nt in (1, 2):
        neuraxis.set_num_threads(nt)
        try:
            results.append(sgd_gradient(net, params, X, Y))
        finally:
            neuraxis.set_num_threads(2)
    for a, b in zip(results[0][0] + results[0][1], results[1][0] + results[1][1]):
        assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_frozen_layer_normalizes_by_its_moving_statistics(rng):
    net = make_net((5,), 4, trainable=False)
    params = make_params(net, rng)
    X, Y = rng.normal(size=(10, 5)), rng.normal(size=(10, 3))
    after, grads = sgd_gradient(net, params, X, Y)
    for i in (2, 3, 4, 5):  # gamma, beta, moving statistics: untouched
        np.testing.assert_array_equal(after[i], params[i])

    def objective(ps):
        return np.mean((numpy_forward(ps, X, False)[0] - Y) ** 2)

    for i in (0, 1):  # gradients through the inference-mode normalization
        def f(a, i=i):
            ps = list(params)
            ps[i] = a
            return objective(ps)
        assert_allclose(grads[i], ref.numerical_grad(f, params[i]), rtol=1e-6, atol=1e-8)


def test_float32_network_matches_float64(rng):
    p64 = make_params(make_net((6,), 5), rng)
    X, Y = rng.normal(size=(20, 6)), rng.normal(size=(20, 3))
    p32 = [p.astype(np.float32) for p in p64]
    a64, g64 = sgd_gradient(make_net((6,), 5), p64, X, Y)
    a32, g32 = sgd_gradient(make_net((6,), 5, np.float32), p32, X.astype(np.float32),
                            Y.astype(np.float32))
    for a, b in zip(a32, a64):
        assert_allclose(a, b, rtol=1e-4, atol=1e-5)


# ---- torch ------------------------------------------------------------------------------
def test_matches_torch_batch_norm(rng):
    torch = pytest.importorskip("torch")
    x, g, b, mm, mv = inputs(rng, (4, 5, 3, 6))
    t = torch.tensor(x).permute(0, 3, 1, 2)  # NCHW for torch
    rm, rv = torch.tensor(mm), torch.tensor(mv)
    for training in (True, False):
        want = torch.nn.functional.batch_norm(t, rm.clone(), rv.clone(), torch.tensor(g),
                                              torch.tensor(b), training=training, eps=EPS)
        y, mean, var = ops.batch_norm_forward(x, g, b, mm, mv, training=training)
        assert_allclose(y, want.permute(0, 2, 3, 1).numpy(), rtol=1e-10, atol=1e-12)
    # torch's running variance is unbiased, Keras's (ours) biased: the same up to n/(n-1)
    n = x.size // x.shape[-1]
    rm2, rv2 = rm.clone(), rv.clone()
    torch.nn.functional.batch_norm(t, rm2, rv2, None, None, training=True, momentum=0.01,
                                   eps=EPS)
    _, mean, var = ops.batch_norm_forward(x, g, b, mm, mv, training=True)
    assert_allclose(0.99 * mm + 0.01 * mean, rm2.numpy(), rtol=1e-12)
    assert_allclose(0.99 * mv + 0.01 * var * n / (n - 1), rv2.numpy(), rtol=1e-12)
