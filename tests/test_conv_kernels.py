"""2-D convolution and pooling kernels of neuraxis.ops against the NumPy reference.

NHWC with Keras/TensorFlow conventions (see tests/reference_conv.py). float64 is
compared tightly (rtol 1e-10), float32 loosely (rtol 1e-4, atol 1e-5 times the
square root of the number of summed terms), on odd shapes, strides 1, 2 and (2, 1),
dilation 2, both paddings, non-square, 1x1 and whole-input windows. Backward
kernels are also checked against central finite differences in float64, and the
reference itself against torch when torch is installed. Max-pool inputs are
distinct values, so that no window has a tie, except in the test of ties.
"""
import zlib

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from neuraxis import ops

import reference as ref
import reference_conv as rc

DTYPES = (np.float64, np.float32)
FD_TOL = dict(rtol=1e-6, atol=1e-8)
N, C, F = 2, 3, 5
# (H, W), kernel (KH, KW), strides, dilation: each with both paddings
CONV_CASES = [
    ((7, 9), (3, 3), (1, 1), (1, 1)),
    ((7, 9), (3, 2), (2, 2), (1, 1)),
    ((7, 9), (3, 2), (2, 1), (1, 1)),   # "same": W padded (0, 1), the odd extra right
    ((7, 9), (3, 3), (1, 1), (2, 2)),
    ((7, 9), (2, 3), (2, 2), (2, 1)),
    ((7, 9), (1, 1), (1, 1), (1, 1)),
    ((7, 9), (1, 1), (2, 2), (1, 1)),   # stride > kernel: inputs no window sees
    ((7, 9), (7, 9), (1, 1), (1, 1)),   # kernel as large as the input
    ((5, 4), (5, 4), (2, 3), (1, 1)),
    ((8, 6), (4, 4), (3, 3), (1, 1)),   # even sizes, asymmetric "same" padding
]
# (H, W), pool_size, strides (None: = pool_size)
POOL_CASES = [
    ((7, 9), (2, 2), None),
    ((7, 9), (3, 3), (2, 2)),           # overlapping windows
    ((7, 9), (3, 2), (2, 1)),
    ((7, 9), (2, 3), (1, 1)),
    ((7, 9), (1, 1), None),
    ((7, 9), (7, 9), None),             # one window over the whole input
    ((7, 9), (2, 2), (3, 3)),           # gaps between windows
    ((8, 6), (3, 3), None),
]


def case_id(case):
    return "-".join("x".join(map(str, p)) if p else "None" for p in case)


def close(got, want, dtype, terms=1):
    """float64 tight; float32 with atol growing like sqrt(number of summed terms)."""
    rtol, atol = (1e-10, 1e-12) if dtype == np.float64 else (1e-4, 1e-5)
    assert got.dtype == dtype and got.shape == want.shape
    assert_allclose(got, want, rtol=rtol, atol=atol * np.sqrt(terms))


def distinct(rng, shape, dtype=np.float64):
    """A shuffle of distinct values in (-1, 1), spaced 2/size: no ties anywhere."""
    m = int(np.prod(shape))
    return ((rng.permutation(m) + 0.5 - m / 2) * (2 / m)).reshape(shape).astype(dtype)


def conv_inputs(rng, hw, kernel, dtype=np.float64, n=N, c=C, f=F):
    return (rng.normal(size=(n, *hw, c)).astype(dtype),
            rng.normal(size=(*kernel, c, f)).astype(dtype),
            rng.normal(size=f).astype(dtype))


@pytest.fixture
def rng(request):
    # one fixed seed per test id: reproducible and different across tests
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


# ---- convolution ----------------------------------------------------------------

@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("padding", rc.PADDINGS)
@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_forward_matches_reference(dtype, case, padding, with_bias, rng):
    hw, k, s, d = case
    x, w, b = conv_inputs(rng, hw, k, dtype)
    b = b if with_bias else None
    x0, w0 = x.copy(), w.copy()
    y = ops.conv2d_forward(x, w, b, strides=s, padding=padding, dilation_rate=d)
    close(y, rc.conv2d_forward(x, w, b, s, padding, d), dtype, C * k[0] * k[1])
    assert_array_equal(x, x0)
    assert_array_equal(w, w0)


@pytest.mark.parametrize("padding", rc.PADDINGS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_forward_of_an_image_larger_than_one_block(dtype, padding, rng):
    # 70x70 outputs of a 3x3x3 kernel: more positions than one forward block holds
    # (the blocks' im2col rows, products and bias are stitched together)
    x, w, b = conv_inputs(rng, (72, 71), (3, 3), dtype, n=2, c=3, f=4)
    y = ops.conv2d_forward(x, w, b, strides=1, padding=padding)
    close(y, rc.conv2d_forward(x, w, b, (1, 1), padding, (1, 1)), dtype, 27)


@pytest.mark.parametrize("padding", rc.PADDINGS)
@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_conv2d_backward_matches_reference(dtype, case, padding, rng):
    hw, k, s, d = case
    x, w, _ = conv_inputs(rng, hw, k, dtype)
    oh, ow = (rc.out_size(h, kk, ss, dd, padding) for h, kk, ss, dd in zip(hw, k, s, d))
    dy = rng.normal(size=(N, oh, ow, F)).astype(dtype)
    dy0 = dy.copy()
    dx, dw, db = ops.conv2d_backward(x, w, dy, strides=s, padding=padding, dilation_rate=d)
    rdx, rdw, rdb = rc.conv2d_backward(x, w, dy, s, padding, d)
    close(dx, rdx, dtype, F * k[0] * k[1])
    close(dw, rdw, dtype, N * oh * ow)
    close(db, rdb, dtype, N * oh * ow)
    assert_array_equal(dy, dy0)


SMALL_CONV = [((3, 2), (1, 1), (1, 1)), ((3, 3), (2, 2), (1, 1)), ((2, 2), (1, 2), (2, 2)),
              ((2, 3), (2, 1), (1, 1))]


@pytest.mark.parametrize("padding", rc.PADDINGS)
@pytest.mark.parametrize("geom", SMALL_CONV, ids=case_id)
@pytest.mark.parametrize("impl", ["ops", "reference"])
def test_conv2d_backward_matches_finite_differences(impl, geom, padding, rng):
    # d/d(x, w, b) of sum(g * conv2d_forward(x, w, b)) == conv2d_backward(x, w, g)
    lib = ops if impl == "ops" else rc
    k, s, d = geom
    x, w, b = conv_inputs(rng, (5, 4), k, n=2, c=2, f=3)

    def obj(x_, w_, b_):
        return np.sum(g * lib.conv2d_forward(x_, w_, b_, strides=s, padding=padding,
                                             dilation_rate=d))

    g = rng.normal(size=lib.conv2d_forward(x, w, b, strides=s, padding=padding,
                                           dilation_rate=d).shape)
    dx, dw, db = lib.conv2d_backward(x, w, g, strides=s, padding=padding, dilation_rate=d)
    assert_allclose(dx, ref.numerical_grad(lambda t: obj(t, w, b), x), **FD_TOL)
    assert_allclose(dw, ref.numerical_grad(lambda t: obj(x, t, b), w), **FD_TOL)
    assert_allclose(db, ref.numerical_grad(lambda t: obj(x, w, t), b), **FD_TOL)


# ---- pooling ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("padding", rc.PADDINGS)
@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
@pytest.mark.parametrize("dtype", DTYPES)
def test_pool2d_matches_reference(dtype, case, padding, kind, rng):
    hw, p, s = case
    x = distinct(rng, (N, *hw, C), dtype)
    x0 = x.copy()
    fwd, bwd = getattr(ops, f"{kind}_pool2d_forward"), getattr(ops, f"{kind}_pool2d_backward")
    rfwd, rbwd = getattr(rc, f"{kind}_pool2d_forward"), getattr(rc, f"{kind}_pool2d_backward")
    y = fwd(x, pool_size=p, strides=s, padding=padding)
    close(y, rfwd(x, p, s, padding), dtype, p[0] * p[1])
    dy = rng.normal(size=y.shape).astype(dtype)
    dx = bwd(x, dy, pool_size=p, strides=s, padding=padding)
    close(dx, rbwd(x, dy, p, s, padding), dtype, p[0] * p[1])
    assert_array_equal(x, x0)


def test_pool2d_strides_default_to_pool_size(rng):
    x = distinct(rng, (N, 7, 9, C))
    for kind in ("max", "avg"):
        fwd = getattr(ops, f"{kind}_pool2d_forward")
        assert_array_equal(fwd(x, (3, 2)), fwd(x, (3, 2), (3, 2)))
        assert fwd(x).shape == (N, 3, 4, C)  # pool_size (2, 2), strides (2, 2)


@pytest.mark.parametrize("padding", rc.PADDINGS)
@pytest.mark.parametrize("geom", [((2, 2), None), ((3, 3), (2, 2)), ((3, 2), (1, 1))],
                         ids=case_id)
@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("impl", ["ops", "reference"])
def test_pool2d_backward_matches_finite_differences(impl, kind, geom, padding, rng):
    lib = ops if impl == "ops" else rc
    fwd, bwd = getattr(lib, f"{kind}_pool2d_forward"), getattr(lib, f"{kind}_pool2d_backward")
    p, s = geom
    x = distinct(rng, (2, 5, 4, 2))  # gaps 0.025 >> eps: the arg-max never moves
    g = rng.normal(size=fwd(x, p, s, padding).shape)
    num = ref.numerical_grad(lambda t: np.sum(g * fwd(t, p, s, padding)), x)
    assert_allclose(bwd(x, g, p, s, padding), num, **FD_TOL)


def test_max_pool2d_ties_go_to_the_first_argmax():
    def grad(rows, dy, pool, strides, padding):
        x = np.array(rows, dtype=float)[None, :, :, None]
        dy = np.array(dy, dtype=float)[None, :, :, None]
        got = ops.max_pool2d_backward(x, dy, pool, strides, padding)
        assert_array_equal(got, rc.max_pool2d_backward(x, dy, pool, strides, padding))
        return got[0, :, :, 0]

    # row-major: (0, 1) comes before (1, 0); a tie in the last row goes to its first column
    assert_array_equal(grad([[1, 5], [5, 2]], [[7]], (2, 2), None, "valid"), [[0, 7], [0, 0]])
    assert_array_equal(grad([[1, 2], [5, 5]], [[7]], (2, 2), None, "valid"), [[0, 0], [7, 0]])
    # constant input, overlapping windows: each goes to its top-left tap, and they add up
    dy = [[1, 2], [3, 4]]
    assert_array_equal(grad(-np.ones((4, 4)), dy, (3, 3), (1, 1), "valid"),
                       np.pad(dy, ((0, 2), (0, 2))))
    # "same": the first tap *inside* the input (padded ones are -inf, never 0, never ties)
    dy = np.arange(1.0, 10.0).reshape(3, 3)
    want = np.zeros((3, 3))
    for i in range(3):
        for j in range(3):
            want[max(i - 1, 0), max(j - 1, 0)] += dy[i, j]
    assert_array_equal(grad(-np.ones((3, 3)), dy, (3, 3), (1, 1), "same"), want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_padding_is_neither_a_value_nor_counted(dtype, rng):
    # all-negative input: a zero-padded max would return 0 at the borders
    x = -1.0 - np.abs(distinct(rng, (N, 7, 9, C), dtype))
    y = ops.max_pool2d_forward(x, (3, 3), (2, 2), "same")
    assert np.all(y < -1.0)
    close(y, rc.max_pool2d_forward(x, (3, 3), (2, 2), "same"), dtype)
    # the mean of a constant is that constant, at the borders too
    x = np.full((N, 7, 9, C), 3.0, dtype)
    close(ops.avg_pool2d_forward(x, (3, 2), (2, 1), "same"), np.full((N, 4, 9, C), 3.0), dtype)
    # a 1x1 kernel of ones with stride 1 and "same" is the identity on the channel sum
    w = np.ones((1, 1, C, 1), dtype)
    close(ops.conv2d_forward(x, w, padding="same"), np.full((N, 7, 9, 1), 3.0 * C), dtype)


# ---- the reference against torch ---------------------------------------------------

def _torch_padded(torch, x, k, s, d, padding, value=0.0):
    """x NHWC (numpy) -> NCHW torch tensor padded as TensorFlow does (requires grad)."""
    t = torch.tensor(x.transpose(0, 3, 1, 2), requires_grad=True)
    (pt, pb), (pl, pr) = (rc.pads(h, kk, ss, dd, padding)
                          for h, kk, ss, dd in zip(x.shape[1:3], k, s, d))
    return t, torch.nn.functional.pad(t, (pl, pr, pt, pb), value=value)


def _nhwc(t):
    return t.detach().numpy().transpose(0, 2, 3, 1)


@pytest.mark.parametrize("padding", rc.PADDINGS)
@pytest.mark.parametrize("case", CONV_CASES, ids=case_id)
def test_reference_conv2d_matches_torch(case, padding, rng):
    torch = pytest.importorskip("torch")
    hw, k, s, d = case
    x, w, b = conv_inputs(rng, hw, k)
    xt, xp = _torch_padded(torch, x, k, s, d, padding)
    wt = torch.tensor(w.transpose(3, 2, 0, 1), requires_grad=True)  # (F, C, KH, KW)
    bt = torch.tensor(b, requires_grad=True)
    yt = torch.nn.functional.conv2d(xp, wt, bt, stride=s, dilation=d)
    y = rc.conv2d_forward(x, w, b, s, padding, d)
    assert_allclose(y, _nhwc(yt), rtol=1e-12, atol=1e-12)
    g = rng.normal(size=y.shape)
    yt.backward(torch.tensor(g.transpose(0, 3, 1, 2)))
    dx, dw, db = rc.conv2d_backward(x, w, g, s, padding, d)
    assert_allclose(dx, _nhwc(xt.grad), rtol=1e-12, atol=1e-12)
    assert_allclose(dw, wt.grad.numpy().transpose(2, 3, 1, 0), rtol=1e-12, atol=1e-12)
    assert_allclose(db, bt.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("padding", rc.PADDINGS)
@pytest.mark.parametrize("case", POOL_CASES, ids=case_id)
def test_reference_pool2d_matches_torch(case, padding, kind, rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    hw, p, s = case
    s = p if s is None else s
    x = distinct(rng, (N, *hw, C))
    if kind == "max":
        xt, xp = _torch_padded(torch, x, p, s, (1, 1), padding, value=-np.inf)
        yt = tf.max_pool2d(xp, p, s)
    else:  # count_include_pad=False: the mean over the padded sum of in-bounds taps
        xt, xp = _torch_padded(torch, x, p, s, (1, 1), padding)
        _, ones = _torch_padded(torch, np.ones_like(x), p, s, (1, 1), padding)
        yt = tf.avg_pool2d(xp, p, s) / tf.avg_pool2d(ones, p, s)
    y = getattr(rc, f"{kind}_pool2d_forward")(x, p, s, padding)
    assert_allclose(y, _nhwc(yt), rtol=1e-12, atol=1e-15)
    g = rng.normal(size=y.shape)
    yt.backward(torch.tensor(g.transpose(0, 3, 1, 2)))
    dx = getattr(rc, f"{kind}_pool2d_backward")(x, g, p, s, padding)
    assert_allclose(dx, _nhwc(xt.grad), rtol=1e-12, atol=1e-15)


# ---- dtypes and bad arguments --------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES)
def test_output_dtype_follows_input_dtype(dtype, rng):
    x, w, b = conv_inputs(rng, (5, 4), (3, 2), dtype)
    y = ops.conv2d_forward(x, w, b, padding="same")
    assert y.dtype == dtype
    assert all(a.dtype == dtype for a in ops.conv2d_backward(x, w, y, padding="same"))
    for kind in ("max", "avg"):
        y = getattr(ops, f"{kind}_pool2d_forward")(x, (2, 2), None, "same")
        assert y.dtype == dtype
        assert getattr(ops, f"{kind}_pool2d_backward")(x, y, (2, 2), None, "same").dtype == dtype


def _x(h=7, w=9, c=3):
    return np.ones((2, h, w, c))


_W = np.ones((3, 3, 3, 5))


@pytest.mark.parametrize("call", [
    lambda: ops.conv2d_forward(np.ones((7, 9, 3)), _W),                 # x not 4-D
    lambda: ops.conv2d_forward(_x(), np.ones((3, 3, 3))),              # w not 4-D
    lambda: ops.conv2d_forward(_x(c=4), _W),                           # channel mismatch
    lambda: ops.conv2d_forward(_x(), _W, np.ones(4)),                  # bias not (F,)
    lambda: ops.conv2d_forward(_x(), _W, padding="full"),
    lambda: ops.conv2d_forward(_x(), _W, strides=(0, 1)),
    lambda: ops.conv2d_forward(_x(), _W, strides=(1, -2)),
    lambda: ops.conv2d_forward(_x(), _W, dilation_rate=(1, 0)),
    lambda: ops.conv2d_forward(_x(h=2), _W),                           # output height 0
    lambda: ops.conv2d_forward(_x(h=5), _W, dilation_rate=(3, 1)),     # window 7 > 5
    lambda: ops.conv2d_backward(_x(), _W, np.ones((2, 5, 7, 4))),      # dy not (2, 5, 7, 5)
    lambda: ops.conv2d_backward(_x(), _W, np.ones((2, 5, 7, 5)), padding="SAME_ish"),
    lambda: ops.conv2d_backward(_x(c=2), _W, np.ones((2, 5, 7, 5))),
    lambda: ops.max_pool2d_forward(_x(), (0, 2)),
    lambda: ops.max_pool2d_forward(_x(), (2, 2), (2, -1)),
    lambda: ops.max_pool2d_forward(_x(), (2, 2), padding="full"),
    lambda: ops.max_pool2d_forward(_x(h=2), (3, 3)),                   # output height 0
    lambda: ops.max_pool2d_forward(np.ones((7, 9, 3)), (2, 2)),
    lambda: ops.max_pool2d_backward(_x(), np.ones((2, 3, 4, 2)), (2, 2)),  # dy shape
    lambda: ops.avg_pool2d_forward(_x(), (2, 0)),
    lambda: ops.avg_pool2d_forward(_x(), (2, 2), padding="causal"),
    lambda: ops.avg_pool2d_backward(_x(), np.ones((2, 4, 4, 3)), (2, 2)),  # dy (2, 3, 4, 3)
])
def test_bad_arguments_raise_value_error(call):
    with pytest.raises(ValueError):
        call()
