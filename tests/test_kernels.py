"""Every kernel of neuraxis.ops against the NumPy reference and finite differences.

float64 is compared tightly (rtol 1e-12), float32 loosely (rtol 1e-5), on odd
shapes; inputs stay away from kinks (relu/leaky/elu/step at 0) and ties.
Backward kernels are also checked against central finite differences in float64.
"""
import warnings
import zlib

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from neuraxis import ops

import reference as ref

DTYPES = (np.float64, np.float32)
TOL = {np.float64: dict(rtol=1e-12, atol=1e-13), np.float32: dict(rtol=1e-5, atol=1e-6)}
# finite differences: truncation O(eps^2) plus cancellation O(1e-16 / eps)
FD_TOL = dict(rtol=1e-6, atol=1e-8)
SHAPES = ((7, 5), (1, 1), (13, 3))
DIFFERENTIABLE = tuple(a for a in ref.ACTIVATIONS if a != "step")
# alpha each activation is tested with (ignored by the others); neither 0 nor 1,
# so a kernel that drops alpha or uses it in the wrong branch fails.
ALPHA = {"leaky_relu": 0.07, "elu": 1.3}


def tol(dtype):
    return TOL[np.dtype(dtype).type]


def away_from_zero(rng, shape, lo=0.1, hi=2.0):
    """Values with |z| in [lo, hi] and random signs: no kinks at 0, no ties."""
    return rng.uniform(lo, hi, size=shape) * rng.choice([-1.0, 1.0], size=shape)


def one_hot(rng, n, k):
    Y = np.zeros((n, k))
    Y[np.arange(n), rng.integers(0, k, size=n)] = 1.0
    return Y


def loss_inputs(rng, loss, shape):
    """(Z, Y) for a loss: logits of its canonical output and valid targets."""
    n, k = shape
    Z = rng.uniform(-2.0, 2.0, size=shape)
    if loss == "softmax_log_loss":
        Y = one_hot(rng, n, k)  # rows sum to 1, needed for delta = P - Y
    elif loss == "logistic_log_loss":
        Y = rng.integers(0, 2, size=shape).astype(float)
    elif loss == "squared_error":
        Y = rng.normal(size=shape)
    else:  # poisson: counts, zeros included (exercises xlogy(0, .) = 0)
        Y = rng.integers(0, 4, size=shape).astype(float)
        Y.flat[0] = 0.0
    return Z, Y


def loss_pred(loss, Z):
    return ref.activation_forward(Z, ref.OUTPUT_ACTIVATION[loss])


@pytest.fixture
def rng(request):
    # one fixed seed per test id: reproducible and different across tests
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


# ---- activations -------------------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ref.ACTIVATIONS)
def test_activation_forward_matches_reference(name, dtype, shape, rng):
    alpha = ALPHA.get(name, 0.0)
    z = away_from_zero(rng, shape).astype(dtype)
    z_before = z.copy()
    y = ops.activation_forward(z, name, alpha)
    assert y.dtype == dtype and y.shape == shape
    assert_allclose(y, ref.activation_forward(z, name, alpha), **tol(dtype))
    assert_array_equal(z, z_before)  # the input is not modified


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_activation_backward_matches_reference(name, dtype, shape, rng):
    alpha = ALPHA.get(name, 0.0)
    z = away_from_zero(rng, shape).astype(dtype)
    y = ref.activation_forward(z, name, alpha).astype(dtype)
    g = rng.normal(size=shape).astype(dtype)
    g_before = g.copy()
    d = ops.activation_backward(y, g, name, alpha)
    assert d.dtype == dtype and d.shape == shape
    assert_allclose(d, ref.activation_backward(z, g, name, alpha), **tol(dtype))
    assert_array_equal(g, g_before)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("name", DIFFERENTIABLE)
def test_activation_backward_matches_finite_differences(name, shape, rng):
    # d/dz sum(g * f(z)) == activation_backward(f(z), g)
    alpha = ALPHA.get(name, 0.0)
    z = away_from_zero(rng, shape)
    g = rng.normal(size=shape)
    num = ref.numerical_grad(lambda t: np.sum(g * ops.activation_forward(t, name, alpha)), z)
    d = ops.activation_backward(ops.activation_forward(z, name, alpha), g, name, alpha)
    assert_allclose(d, num, **FD_TOL)


@pytest.mark.parametrize("name", ["softmax", "logistic", "elu"])
def test_activation_on_3d_and_non_contiguous_input(name, rng):
    alpha = ALPHA.get(name, 0.0)
    z = away_from_zero(rng, (2, 3, 4))
    assert_allclose(ops.activation_forward(z, name, alpha),
                    ref.activation_forward(z, name, alpha), **tol(np.float64))
    zt = away_from_zero(rng, (5, 7)).T  # Fortran order: softmax must still use rows of zt
    assert not zt.flags.c_contiguous
    assert_allclose(ops.activation_forward(zt, name, alpha),
                    ref.activation_forward(zt, name, alpha), **tol(np.float64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_rows_sum_to_one_and_stable_for_large_logits(dtype):
    z = np.array([[1000.0, 999.0, 998.0],
                  [-1000.0, 0.0, 1000.0],
                  [-1000.0, -1001.0, -999.5],
                  [0.5, -0.25, 0.125]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = ops.activation_forward(z, "softmax")
    assert y.dtype == dtype
    assert np.all(np.isfinite(y))
    assert_allclose(y.sum(axis=1), 1.0, rtol=10 * np.finfo(dtype).eps)
    assert_allclose(y, ref.softmax(z), **tol(dtype))
    # shift invariance, the property the max-subtraction relies on
    assert_allclose(y[0], ops.activation_forward(np.array([[2.0, 1.0, 0.0]], dtype), "softmax")[0],
                    **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_logistic_and_softplus_stable_on_both_tails(dtype):
    z = np.array([[-1000.0, 1000.0, -40.0, 40.0]], dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = ops.activation_forward(z, "logistic")
        d = ops.activation_backward(y, np.ones_like(y), "logistic")
        sp = ops.activation_forward(z, "softplus")
    assert np.all(np.isfinite(y)) and np.all(np.isfinite(d)) and np.all(np.isfinite(sp))
    assert y[0, 0] == 0.0 and y[0, 1] == 1.0
    assert 0.0 < y[0, 2] < 1e-17 and y[0, 3] == 1.0
    assert_allclose(y, ref.activation_forward(z, "logistic"), rtol=1e-5, atol=0)
    assert_array_equal(d[0, :2], [0.0, 0.0])
    assert_allclose(sp, ref.activation_forward(z, "softplus"), rtol=1e-6, atol=0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_step_forward_is_binary_and_backward_raises(dtype):
    z = np.array([[-2.0, -1e-3, 1e-3, 3.0]], dtype=dtype)
    assert_array_equal(ops.activation_forward(z, "step"), [[0.0, 0.0, 1.0, 1.0]])
    y = ops.activation_forward(z, "step")
    with pytest.raises(ValueError, match="step"):
        ops.activation_backward(y, np.ones_like(y), "step")


@pytest.mark.parametrize("call", [
    lambda: ops.activation_forward(np.zeros((2, 2)), "swish"),
    lambda: ops.activation_backward(np.zeros((2, 2)), np.zeros((2, 2)), "swish"),
])
def test_unknown_activation_names_the_valid_ones(call):
    with pytest.raises(ValueError, match="swish") as exc:
        call()
    for name in ref.ACTIVATIONS:
        assert name in str(exc.value)


# ---- dense -------------------------------------------------------------------

DENSE_SHAPES = ((7, 5, 3), (1, 1, 1), (13, 3, 4))


def dense_inputs(rng, n, i, o, dtype=np.float64):
    return (rng.normal(size=(n, i)).astype(dtype), rng.normal(size=(i, o)).astype(dtype),
            rng.normal(size=o).astype(dtype))


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("nio", DENSE_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_forward_matches_reference(dtype, nio, with_bias, rng):
    X, W, b = dense_inputs(rng, *nio, dtype)
    b = b if with_bias else None
    Y = ops.dense_forward(X, W, b)
    assert Y.dtype == dtype and Y.shape == (nio[0], nio[2])
    assert_allclose(Y, ref.dense_forward(X, W, b), **tol(dtype))


@pytest.mark.parametrize("nio", DENSE_SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_backward_matches_reference(dtype, nio, rng):
    n, i, o = nio
    X, W, _ = dense_inputs(rng, n, i, o, dtype)
    dY = rng.normal(size=(n, o)).astype(dtype)
    got = ops.dense_backward(X, W, dY)
    want = ref.dense_backward(X, W, dY)
    for g, w, shape in zip(got, want, [(n, i), (i, o), (o,)]):
        assert g.dtype == dtype and g.shape == shape
        assert_allclose(g, w, **tol(dtype))


@pytest.mark.parametrize("nio", DENSE_SHAPES)
def test_dense_backward_matches_finite_differences(nio, rng):
    n, i, o = nio
    X, W, b = dense_inputs(rng, n, i, o)
    G = rng.normal(size=(n, o))
    dX, dW, db = ops.dense_backward(X, W, G)
    assert_allclose(dX, ref.numerical_grad(lambda t: np.sum(G * ops.dense_forward(t, W, b)), X),
                    **FD_TOL)
    assert_allclose(dW, ref.numerical_grad(lambda t: np.sum(G * ops.dense_forward(X, t, b)), W),
                    **FD_TOL)
    assert_allclose(db, ref.numerical_grad(lambda t: np.sum(G * ops.dense_forward(X, W, t)), b),
                    **FD_TOL)


def test_dense_forward_non_contiguous_and_integer_input(rng):
    X = rng.normal(size=(5, 7)).T  # (7, 5), Fortran order
    W = np.asfortranarray(rng.normal(size=(5, 3)))
    assert_allclose(ops.dense_forward(X, W), X @ W, **tol(np.float64))
    Y = ops.dense_forward([[1, 2], [3, 4]], [[1, 0], [0, 1]], [1, 1])
    assert Y.dtype == np.float64
    assert_array_equal(Y, [[2.0, 3.0], [4.0, 5.0]])


# ---- losses ------------------------------------------------------------------

@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ref.LOSSES)
def test_loss_value_matches_reference(loss, dtype, shape, weighted, rng):
    Z, Y = loss_inputs(rng, loss, shape)
    P = loss_pred(loss, Z).astype(dtype)
    Y = Y.astype(dtype)
    sw = rng.uniform(0.2, 3.0, size=shape[0]).astype(dtype) if weighted else None
    got = ops.loss_value(loss, P, Y, sw)
    assert isinstance(got, float)
    assert np.isfinite(got)
    assert_allclose(got, ref.loss_value(loss, P, Y, sw), **tol(dtype))


@pytest.mark.parametrize("loss", ref.LOSSES)
def test_loss_sample_weight_is_a_weighted_row_mean(loss, rng):
    # integer weights == repeating rows; unit weights == no weights
    Z, Y = loss_inputs(rng, loss, (6, 3))
    P = loss_pred(loss, Z)
    sw = np.array([1.0, 2.0, 0.0, 3.0, 1.0, 2.0])
    rep = np.repeat(np.arange(6), sw.astype(int))
    assert_allclose(ops.loss_value(loss, P, Y, sw), ops.loss_value(loss, P[rep], Y[rep]),
                    rtol=1e-12)
    assert_allclose(ops.loss_value(loss, P, Y, np.ones(6)), ops.loss_value(loss, P, Y),
                    rtol=1e-12)
    # and not the unweighted mean
    assert not np.isclose(ops.loss_value(loss, P, Y, sw), ops.loss_value(loss, P, Y), rtol=1e-6)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ["softmax_log_loss", "logistic_log_loss"])
def test_log_losses_clip_with_the_input_dtype_eps(loss, dtype):
    P = np.array([[0.0, 1.0], [1.0, 0.0]], dtype=dtype)
    Y = np.array([[1.0, 0.0], [1.0, 0.0]], dtype=dtype)
    got = ops.loss_value(loss, P, Y)
    assert np.isfinite(got)
    assert_allclose(got, ref.loss_value(loss, P, Y), rtol=1e-6)
    eps = np.finfo(dtype).eps
    # row 0 pays -log(eps) (once for softmax, twice for logistic); row 1 ~ 0
    per = -np.log(eps) * (1 if loss == "softmax_log_loss" else 2)
    assert_allclose(got, per / 2, rtol=1e-6)


@pytest.mark.parametrize("scale", [1.0, 0.37])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("loss", ref.LOSSES)
def test_loss_delta_matches_reference(loss, dtype, shape, weighted, scale, rng):
    Z, Y = loss_inputs(rng, loss, shape)
    P = loss_pred(loss, Z).astype(dtype)
    Y = Y.astype(dtype)
    sw = rng.uniform(0.2, 3.0, size=shape[0]).astype(dtype) if weighted else None
    d = ops.loss_delta(loss, P, Y, sw, scale=scale)
    assert d.dtype == dtype and d.shape == shape
    assert_allclose(d, ref.loss_delta(P, Y, sw, scale), **tol(dtype))


@pytest.mark.parametrize("loss_impl", ["reference", "neuraxis"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("loss", ref.LOSSES)
def test_loss_delta_is_the_gradient_wrt_logits(loss, shape, weighted, loss_impl, rng):
    """FD gradient of loss(f(Z), Y) wrt the logits Z == loss_delta(P, Y, sw, 1/sum(sw)).

    scikit-learn quirk: squared_error also averages over the k outputs while its
    delta is (P - Y) / n, so there the loss gradient is delta / k.
    """
    act = ref.OUTPUT_ACTIVATION[loss]
    Z, Y = loss_inputs(rng, loss, shape)
    sw = rng.uniform(0.2, 3.0, size=shape[0]) if weighted else None
    value = ref.loss_value if loss_impl == "reference" else ops.loss_value

    def L(z):
        return value(loss, ref.activation_forward(z, act), Y, sw)

    num = ref.numerical_grad(L, Z)
    P = ops.activation_forward(Z, act)
    total = shape[0] if sw is None else sw.sum()
    delta = ops.loss_delta(loss, P, Y, sw, scale=1.0 / total)
    k = shape[1] if loss == "squared_error" else 1
    assert_allclose(delta / k, num, **FD_TOL)


@pytest.mark.parametrize("call", [
    lambda: ops.loss_value("hinge", np.zeros((2, 2)), np.zeros((2, 2))),
    lambda: ops.loss_delta("hinge", np.zeros((2, 2)), np.zeros((2, 2))),
])
def test_unknown_loss_names_the_valid_ones(call):
    with pytest.raises(ValueError, match="hinge") as exc:
        call()
    for name in ref.LOSSES:
        assert name in str(exc.value)


# ---- optimizers --------------------------------------------------------------

@pytest.mark.parametrize("momentum", [0.9, 0.0])
@pytest.mark.parametrize("nesterov", [True, False])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_sgd_step_matches_reference(dtype, shape, nesterov, momentum, rng):
    lr = 0.1
    p = rng.normal(scale=0.1, size=shape).astype(dtype)
    vel = np.zeros(shape, dtype)
    p_ref, v_ref = p.astype(np.float64), vel.astype(np.float64)
    p_id, v_id = id(p), id(vel)
    for _ in range(3):
        g = rng.normal(size=shape).astype(dtype)
        g_before = g.copy()
        ops.sgd_step(p, vel, g, lr, momentum=momentum, nesterov=nesterov)
        p_ref, v_ref = ref.sgd_step(p_ref, v_ref, g, lr, momentum, nesterov)
        assert_array_equal(g, g_before)
        assert_allclose(vel, v_ref, **tol(dtype))
        assert_allclose(p, p_ref, **tol(dtype))
    assert id(p) == p_id and id(vel) == v_id
    assert p.dtype == dtype and vel.dtype == dtype


def test_sgd_nesterov_differs_from_plain_momentum(rng):
    # with a nonzero velocity the two rules give different steps
    g = rng.normal(size=(3, 4))
    a, va = np.zeros((3, 4)), np.ones((3, 4))
    b, vb = a.copy(), va.copy()
    ops.sgd_step(a, va, g, 0.1, momentum=0.9, nesterov=True)
    ops.sgd_step(b, vb, g, 0.1, momentum=0.9, nesterov=False)
    assert_allclose(va, vb, rtol=1e-15)
    assert not np.allclose(a, b)


@pytest.mark.parametrize("hyper", [
    dict(beta_1=0.9, beta_2=0.999, epsilon=1e-8),
    dict(beta_1=0.8, beta_2=0.99, epsilon=1e-4),
])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_step_matches_reference(dtype, shape, hyper, rng):
    lr = 0.01
    p = rng.normal(scale=0.01, size=shape).astype(dtype)
    m, v = np.zeros(shape, dtype), np.zeros(shape, dtype)
    p_ref, m_ref, v_ref = (a.astype(np.float64) for a in (p, m, v))
    for t in range(1, 4):
        g = rng.normal(size=shape).astype(dtype)
        lr_t = ref.adam_lr_t(lr, t, hyper["beta_1"], hyper["beta_2"])
        ops.adam_step(p, m, v, g, lr_t, **hyper)
        p_ref, m_ref, v_ref = ref.adam_step(p_ref, m_ref, v_ref, g, lr_t, **hyper)
        assert_allclose(m, m_ref, **tol(dtype))
        assert_allclose(v, v_ref, **tol(dtype))
        assert_allclose(p, p_ref, **tol(dtype))
    assert p.dtype == m.dtype == v.dtype == dtype


def test_adam_float32_edge_lanes_match_reference():
    # float32 Adam may use refined reciprocal estimates (AVX-512); lanes with v = 0, huge
    # or tiny gradients and a tiny epsilon must still give the exact formula's values.
    rng = np.random.default_rng(7)
    n = 16 * 9 + 5  # full vectors and a tail
    g = rng.normal(size=n).astype(np.float32)
    g[::7] = 0.0            # v stays 0: no step
    g[3::11] = 1e19          # v overflows to inf
    g[5::13] = 1e-22         # v underflows
    for eps in (1e-7, 1e-35):  # 1e-35: a denominator below the estimates' safe range
        p = rng.normal(size=n).astype(np.float32)
        m, v = np.zeros(n, np.float32), np.zeros(n, np.float32)
        p_ref, m_ref, v_ref = p.copy(), m.copy(), v.copy()
        f = np.float32
        with np.errstate(all="ignore"):
            for t in range(1, 3):
                ops.adam_step(p, m, v, g, 0.01, 0.9, 0.999, eps)
                # the exact formula, in float32 like the kernel
                m_ref = f(0.9) * m_ref + f(0.1) * g
                v_ref = f(0.999) * v_ref + f(0.001) * (g * g)
                p_ref = p_ref + -f(0.01) * m_ref / (np.sqrt(v_ref) + f(eps))
        assert_array_equal(m, m_ref)
        assert_array_equal(v, v_ref)
        assert_allclose(p, p_ref, rtol=2e-6, atol=1e-7, equal_nan=True)


def test_reference_follows_scikit_learn():
    """Guard the reference itself against scikit-learn's private implementations."""
    base = pytest.importorskip("sklearn.neural_network._base")
    so = pytest.importorskip("sklearn.neural_network._stochastic_optimizers")
    rng = np.random.default_rng(0)
    sw = rng.uniform(0.5, 2.0, size=7)
    Z = rng.normal(size=(7, 4))
    Yc = one_hot(rng, 7, 4)
    Yb = rng.integers(0, 2, size=(7, 4)).astype(float)
    Yr = rng.normal(size=(7, 4))
    Yp = rng.integers(0, 4, size=(7, 4)).astype(float)
    P = ref.softmax(Z)
    S = ref.expit(Z)
    E = np.exp(Z)
    for w in (None, sw):
        assert_allclose(ref.loss_value("softmax_log_loss", P, Yc, w), base.log_loss(Yc, P, w),
                        rtol=1e-12)
        assert_allclose(ref.loss_value("logistic_log_loss", S, Yb, w),
                        base.binary_log_loss(Yb, S, w), rtol=1e-12)
        assert_allclose(ref.loss_value("squared_error", Z, Yr, w), base.squared_loss(Yr, Z, w),
                        rtol=1e-12)
        assert_allclose(ref.loss_value("poisson", E, Yp, w), base.poisson_loss(Yp, E, w),
                        rtol=1e-12)
    params = [rng.normal(size=(3, 2))]
    for nesterov in (True, False):
        opt = so.SGDOptimizer([params[0].copy()], learning_rate_init=0.1, momentum=0.9,
                              nesterov=nesterov)
        p, vel = params[0].copy(), np.zeros((3, 2))
        for _ in range(3):
            g = rng.normal(size=(3, 2))
            (upd,) = opt._get_updates([g])
            p_new, vel = ref.sgd_step(p, vel, g, 0.1, 0.9, nesterov)
            assert_allclose(p_new - p, upd, rtol=1e-12, atol=1e-15)
            assert_allclose(vel, opt.velocities[0], rtol=1e-15)
            p = p_new
    opt = so.AdamOptimizer([params[0].copy()], learning_rate_init=0.01)
    p, m, v = params[0].copy(), np.zeros((3, 2)), np.zeros((3, 2))
    for t in range(1, 4):
        g = rng.normal(size=(3, 2))
        (upd,) = opt._get_updates([g])
        p_new, m, v = ref.adam_step(p, m, v, g, ref.adam_lr_t(0.01, t))
        assert_allclose(p_new - p, upd, rtol=1e-10, atol=1e-15)
        assert_allclose(m, opt.ms[0], rtol=1e-15)
        assert_allclose(v, opt.vs[0], rtol=1e-15)
        p = p_new


# ---- large arrays: the OpenMP branches (more than 2**15 elements) -------------

LARGE = (257, 131)  # 33667 elements, just above the engine's parallel threshold


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("name", ref.ACTIVATIONS)
def test_activations_on_large_arrays(name, dtype, rng):
    alpha = ALPHA.get(name, 0.0)
    z = away_from_zero(rng, LARGE).astype(dtype)
    assert_allclose(ops.activation_forward(z, name, alpha),
                    ref.activation_forward(z, name, alpha), **tol(dtype))
    if name != "step":
        y = ref.activation_forward(z, name, alpha).astype(dtype)
        g = rng.normal(size=LARGE).astype(dtype)
        assert_allclose(ops.activation_backward(y, g, name, alpha),
                        ref.activation_backward(z, g, name, alpha), **tol(dtype))


@pytest.mark.parametrize("dtype", DTYPES)
def test_dense_loss_and_optimizers_on_large_arrays(dtype, rng):
    n, k = LARGE
    X, W, b = dense_inputs(rng, n, 9, k, dtype)
    assert_allclose(ops.dense_forward(X, W, b), ref.dense_forward(X, W, b), **tol(dtype))
    P = rng.uniform(0.1, 0.9, size=LARGE).astype(dtype)
    Y = rng.integers(0, 2, size=LARGE).astype(dtype)
    sw = rng.uniform(0.2, 3.0, size=n).astype(dtype)
    assert_allclose(ops.loss_delta("logistic_log_loss", P, Y, sw, scale=0.5),
                    ref.loss_delta(P, Y, sw, 0.5), **tol(dtype))
    assert_allclose(ops.loss_value("logistic_log_loss", P, Y, sw),
                    ref.loss_value("logistic_log_loss", P, Y, sw), **tol(dtype))
    p, vel, g = (rng.normal(size=n * k).astype(dtype) for _ in range(3))
    p_ref, v_ref = ref.sgd_step(p, vel, g, 0.05, 0.9, True)
    ops.sgd_step(p, vel, g, 0.05, momentum=0.9, nesterov=True)
    assert_allclose(p, p_ref, **tol(dtype))
    assert_allclose(vel, v_ref, **tol(dtype))
    m, v = np.zeros_like(p), np.zeros_like(p)
    p_ref, m_ref, v_ref = ref.adam_step(p, m, v, g, 0.01)
    ops.adam_step(p, m, v, g, 0.01)
    assert_allclose(p, p_ref, **tol(dtype))
    assert_allclose(m, m_ref, **tol(dtype))
    assert_allclose(v, v_ref, **tol(dtype))


# ---- dtypes and shape errors ---------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_output_dtype_follows_input_dtype(dtype, rng):
    z = away_from_zero(rng, (3, 4)).astype(dtype)
    X, W, b = dense_inputs(rng, 3, 4, 2, dtype)
    assert ops.activation_forward(z, "tanh").dtype == dtype
    assert ops.activation_backward(z, z, "tanh").dtype == dtype
    assert ops.dense_forward(X, W, b).dtype == dtype
    assert all(a.dtype == dtype for a in ops.dense_backward(X, W, np.ones((3, 2), dtype)))
    P = np.full((3, 2), 0.5, dtype)
    assert ops.loss_delta("squared_error", P, P * 0).dtype == dtype
    assert isinstance(ops.loss_value("squared_error", P, P * 0), float)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("call", [
    lambda d: ops.activation_backward(np.ones((3, 4), d), np.ones((4, 3), d), "tanh"),
    lambda d: ops.dense_forward(np.ones((3, 4), d), np.ones((5, 2), d)),
    lambda d: ops.dense_forward(np.ones((3, 4), d), np.ones((4, 2), d), np.ones(3, d)),
    lambda d: ops.dense_forward(np.ones(4, d), np.ones((4, 2), d)),
    lambda d: ops.dense_backward(np.ones((3, 4), d), np.ones((4, 2), d), np.ones((3, 3), d)),
    lambda d: ops.dense_backward(np.ones((3, 4), d), np.ones((4, 2), d), np.ones((2, 2), d)),
    lambda d: ops.dense_backward(np.ones((3, 4), d), np.ones((5, 2), d), np.ones((3, 2), d)),
    lambda d: ops.loss_value("squared_error", np.ones((3, 2), d), np.ones((3, 3), d)),
    lambda d: ops.loss_value("squared_error", np.ones((3, 2), d), np.ones((2, 2), d)),
    lambda d: ops.loss_value("squared_error", np.ones((3, 2), d), np.ones((3, 2), d),
                             np.ones(4, d)),
    lambda d: ops.loss_delta("poisson", np.ones((3, 2), d), np.ones((3, 1), d)),
    lambda d: ops.loss_delta("poisson", np.ones((3, 2), d), np.ones((3, 2), d), np.ones(2, d)),
    lambda d: ops.sgd_step(np.ones(4, d), np.ones(3, d), np.ones(4, d), 0.1),
    lambda d: ops.sgd_step(np.ones(4, d), np.ones(4, d), np.ones(5, d), 0.1),
    lambda d: ops.adam_step(np.ones(4, d), np.ones(4, d), np.ones(3, d), np.ones(4, d), 0.1),
    lambda d: ops.adam_step(np.ones(4, d), np.ones(4, d), np.ones(4, d), np.ones(2, d), 0.1),
])
def test_mismatched_shapes_raise_value_error(call, dtype):
    with pytest.raises(ValueError):
        call(dtype)


# Shapes big enough for OpenBLAS's blocked kernels and the engine's row split over
# threads: tails in M and N, deep K, every transpose the engine uses.
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("n, d, h", [(37, 300, 45), (8, 513, 33), (200, 784, 100), (9, 17, 129)])
def test_dense_large_odd_shapes_match_numpy(dtype, rtol, n, d, h):
    rng = np.random.default_rng(n + d + h)
    X = rng.normal(size=(n, d)).astype(dtype)
    W = rng.normal(size=(d, h)).astype(dtype)
    b = rng.normal(size=h).astype(dtype)
    dY = rng.normal(size=(n, h)).astype(dtype)
    X64, W64, dY64 = X.astype(np.float64), W.astype(np.float64), dY.astype(np.float64)
    Y = ops.dense_forward(X, W, b)
    assert Y.dtype == dtype
    scale = np.sqrt(d)  # sums of d products of unit normals
    np.testing.assert_allclose(Y, X64 @ W64 + b, rtol=rtol, atol=rtol * scale)
    dX, dW, db = ops.dense_backward(X, W, dY)
    np.testing.assert_allclose(dX, dY64 @ W64.T, rtol=rtol, atol=rtol * np.sqrt(h))
    np.testing.assert_allclose(dW, X64.T @ dY64, rtol=rtol, atol=rtol * np.sqrt(n))
    np.testing.assert_allclose(db, dY64.sum(0), rtol=rtol, atol=rtol * np.sqrt(n))
