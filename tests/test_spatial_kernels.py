"""The engine's 1-D, global and spatial layers: conv1d, max/avg_pool1d, global_max/avg_pool,
zero_pad1d/2d, crop1d/2d and upsample1d/2d (nearest), through `_core.Network64/32`.

Forward against plain NumPy loops written here from the definitions (Keras/TensorFlow
conventions, channels last); backward against central finite differences of the whole
network's objective in float64; both against PyTorch (conv1d, max/avg_pool1d, F.pad,
interpolate(mode='nearest'), adaptive pools) with copied weights when torch is installed.
Each layer is tested inside [Dense over the last axis, layer, Flatten, Dense]: the first
Dense's gradient is the layer's input gradient chained once more, so a wrong backward of
the layer shows there. Max-pool inputs are distinct values (no ties) except in the tie tests.
"""
import zlib

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import neuraxis
from neuraxis import _core

import reference as ref
from engine_checks import fd_check
import reference_conv as rc

FD_TOL = dict(rtol=1e-6, atol=1e-8)


@pytest.fixture
def rng(request):
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


def dense(units, activation="identity", **kw):
    return {"kind": "dense", "units": units, "activation": activation, **kw}


def net64(shape, layers, loss="mse"):
    return _core.Network64(list(shape), layers, loss, "batch_size")


def init(net, rng, dtype=np.float64, scale=0.5):
    return [(rng.normal(size=s) * scale).astype(dtype) for s in net.param_shapes]


def distinct(rng, shape):
    """A shuffle of distinct values in (-1, 1), spaced 2/size: no ties anywhere."""
    m = int(np.prod(shape))
    return ((rng.permutation(m) + 0.5 - m / 2) * (2 / m)).reshape(shape)




# ---- NumPy references (explicit loops over outputs and taps) ---------------------------

def pads_1d(T, k, s, d, padding):
    """(left, right) zeros: TensorFlow's 'same' rule (odd extra right), causal all left."""
    if padding == "causal":
        return (k - 1) * d, 0
    return rc.pads(T, k, s, d, padding)


def conv1d_ref(x, w, b, s=1, padding="valid", d=1):
    # y[n, o, f] = b[f] + sum_{k, c} xpad[n, o*s + k*d, c] * w[k, c, f]
    n, T, C = x.shape
    K, _, F = w.shape
    left, right = pads_1d(T, K, s, d, padding)
    xp = np.zeros((n, left + T + right, C))
    xp[:, left:left + T] = x
    O = (left + T + right - ((K - 1) * d + 1)) // s + 1
    y = np.zeros((n, O, F))
    for o in range(O):
        for k in range(K):
            for c in range(C):
                y[:, o, :] += xp[:, o * s + k * d, c, None] * w[k, c][None, :]
    return y if b is None else y + b


def pool1d_ref(x, p, s, padding, kind):
    # the taps of window o inside the input: o*s - left + j for j < p
    n, T, C = x.shape
    left = rc.pads(T, p, s, 1, padding)[0]
    O = rc.out_size(T, p, s, 1, padding)
    y = np.zeros((n, O, C))
    for o in range(O):
        taps = [t for t in range(o * s - left, o * s - left + p) if 0 <= t < T]
        win = x[:, taps, :]
        y[:, o] = win.max(axis=1) if kind == "max" else win.sum(axis=1) / len(taps)
    return y


def global_ref(x, kind, keepdims):
    n, C = x.shape[0], x.shape[-1]
    flat = x.reshape(n, -1, C)
    y = flat.max(axis=1) if kind == "max" else flat.sum(axis=1) / flat.shape[1]
    return y.reshape((n,) + (1,) * (x.ndim - 2) + (C,)) if keepdims else y


def pad_crop_ref(x, kind, v):
    """x (n, T, C) or (n, H, W, C); v: [left, right] or [top, bottom, left, right]."""
    pairs = [v[i:i + 2] for i in range(0, len(v), 2)]
    if kind.startswith("zero_pad"):
        y = np.zeros((x.shape[0],) + tuple(dim + a + b for dim, (a, b) in
                                          zip(x.shape[1:-1], pairs)) + (x.shape[-1],))
        y[(slice(None),) + tuple(slice(a, a + dim) for dim, (a, _) in
                                 zip(x.shape[1:-1], pairs))] = x
        return y
    return x[(slice(None),) + tuple(slice(a, dim - b) for dim, (a, b) in
                                    zip(x.shape[1:-1], pairs))]


def upsample_ref(x, size):
    # y[h][w] = x[h // sh][w // sw], by index arithmetic (not np.repeat)
    out = tuple(dim * s for dim, s in zip(x.shape[1:-1], size))
    idx = np.meshgrid(*[np.arange(o) // s for o, s in zip(out, size)], indexing="ij")
    return x[(slice(None),) + tuple(idx)]


def forward_ref(spec, x):
    kind = spec["kind"]
    if kind in ("max_pool1d", "avg_pool1d"):
        p = spec.get("pool_size", [2])[0]
        return pool1d_ref(x, p, spec.get("strides", [p])[0], spec.get("padding", "valid"),
                          kind[:3])
    if kind.startswith("global_"):
        return global_ref(x, kind[7:10], spec.get("keepdims", False))
    if kind.startswith(("zero_pad", "crop")):
        return pad_crop_ref(x, kind, spec["padding" if kind.startswith("zero") else "cropping"])
    if kind.startswith("upsample"):
        return upsample_ref(x, spec["size"])
    raise AssertionError(kind)


# ---- the cases -------------------------------------------------------------------------

# steps, kernel, strides, dilation, padding on (steps, 3) inputs
CONV1D = [(9, 3, 1, 1, "valid"), (9, 3, 2, 1, "valid"), (9, 3, 1, 2, "valid"),
          (9, 2, 3, 1, "valid"), (9, 3, 1, 1, "same"), (8, 4, 2, 1, "same"),
          (9, 2, 1, 3, "same"), (8, 1, 1, 1, "same"), (9, 3, 1, 1, "causal"),
          (9, 2, 1, 3, "causal"), (9, 3, 2, 1, "causal"), (8, 4, 3, 1, "causal"),
          (9, 9, 1, 1, "valid"), (9, 9, 1, 1, "causal"), (5, 4, 1, 2, "causal")]
# (input shape, spec): parameterless layers
SPATIAL = [
    ((9, 3), {"kind": "max_pool1d", "pool_size": [2]}),
    ((9, 3), {"kind": "max_pool1d", "pool_size": [3], "strides": [2], "padding": "same"}),
    ((8, 3), {"kind": "max_pool1d", "pool_size": [3], "strides": [1], "padding": "valid"}),
    ((9, 3), {"kind": "avg_pool1d", "pool_size": [2]}),
    ((9, 3), {"kind": "avg_pool1d", "pool_size": [4], "strides": [3], "padding": "same"}),
    ((8, 3), {"kind": "avg_pool1d", "pool_size": [3], "strides": [1], "padding": "same"}),
    ((7, 3), {"kind": "global_avg_pool"}),
    ((7, 3), {"kind": "global_max_pool", "keepdims": True}),
    ((5, 3, 2), {"kind": "global_avg_pool", "keepdims": True}),
    ((5, 3, 2), {"kind": "global_max_pool"}),
    ((7, 3), {"kind": "zero_pad1d", "padding": [1, 2]}),
    ((7, 3), {"kind": "zero_pad1d", "padding": [0, 0]}),
    ((5, 3, 2), {"kind": "zero_pad2d", "padding": [1, 1, 1, 1]}),
    ((5, 3, 2), {"kind": "zero_pad2d", "padding": [2, 0, 0, 3]}),
    ((7, 3), {"kind": "crop1d", "cropping": [1, 2]}),
    ((7, 3), {"kind": "crop1d", "cropping": [0, 6]}),
    ((5, 4, 2), {"kind": "crop2d", "cropping": [1, 2, 0, 1]}),
    ((5, 4, 2), {"kind": "crop2d", "cropping": [0, 0, 3, 0]}),
    ((5, 3), {"kind": "upsample1d", "size": [3]}),
    ((3, 4, 2), {"kind": "upsample2d", "size": [2, 3]}),
    ((3, 4, 2), {"kind": "upsample2d", "size": [1, 1]}),
]
OUT_SHAPES = [(4, 3), (5, 3), (6, 3), (4, 3), (3, 3), (8, 3), (3,), (1, 3), (1, 1, 2), (2,),
              (10, 3), (7, 3), (7, 5, 2), (7, 6, 2), (4, 3), (1, 3), (2, 3, 2), (5, 1, 2),
              (15, 3), (6, 12, 2), (3, 4, 2)]


def conv1d_spec(k, s, d, padding, **kw):
    return {"kind": "conv1d", "filters": 4, "kernel_size": [k], "strides": [s],
            "dilation_rate": [d], "padding": padding, **kw}


def spec_id(case):
    shape, spec = case
    return "-".join([spec["kind"]] + [f"{k}{v}" for k, v in spec.items() if k != "kind"]
                    + ["x".join(map(str, shape))]).replace(" ", "")


def conv_id(case):
    return "T{}-k{}-s{}-d{}-{}".format(*case)


def test_layer_kinds_are_in_the_name_table():
    kinds = {"conv1d", "max_pool1d", "avg_pool1d", "global_max_pool", "global_avg_pool",
             "zero_pad1d", "zero_pad2d", "crop1d", "crop2d", "upsample1d", "upsample2d"}
    assert kinds <= set(_core.names()["layers"])


@pytest.mark.parametrize("case,want", list(zip(SPATIAL, OUT_SHAPES)),
                         ids=[spec_id(c) for c in SPATIAL])
def test_output_shapes(case, want):
    shape, spec = case
    net = net64(shape, [spec])
    assert net.output_shape == want and net.param_shapes == []


@pytest.mark.parametrize("case", CONV1D, ids=conv_id)
def test_conv1d_shapes_and_forward(case, rng):
    T, k, s, d, padding = case
    net = net64((T, 3), [conv1d_spec(k, s, d, padding)])
    assert net.param_shapes == [(k, 3, 4), (4,)]
    want_len = -(-T // s) if padding != "valid" else (T - (k - 1) * d - 1) // s + 1
    assert net.output_shape == (want_len, 4)
    params = init(net, rng)
    x = rng.normal(size=(3, T, 3))
    y = net.predict(params, x)[0]
    assert_allclose(y, conv1d_ref(x, *params, s, padding, d), rtol=1e-12, atol=1e-12)
    # float32: the same within float32 rounding
    net32 = _core.Network32([T, 3], [conv1d_spec(k, s, d, padding)], "mse", "batch_size")
    y32 = net32.predict([p.astype(np.float32) for p in params], x.astype(np.float32))[0]
    assert y32.dtype == np.float32
    assert_allclose(y32, y, rtol=1e-4, atol=1e-5)


def test_conv1d_without_bias_and_with_an_activation(rng):
    net = net64((9, 3), [conv1d_spec(3, 1, 1, "causal", use_bias=False, activation="relu")])
    assert net.param_shapes == [(3, 3, 4)]
    (w,) = init(net, rng)
    x = rng.normal(size=(2, 9, 3))
    assert_allclose(net.predict([w], x)[0], np.maximum(conv1d_ref(x, w, None, 1, "causal"), 0),
                    rtol=1e-12, atol=1e-12)


def test_causal_output_t_sees_only_inputs_up_to_t(rng):
    # changing x[t0] changes no output before t0 (and the output at t0 itself)
    net = net64((9, 2), [conv1d_spec(3, 1, 2, "causal")])
    params = init(net, rng)
    x = rng.normal(size=(1, 9, 2))
    y0 = net.predict(params, x)[0]
    x[0, 5] += 1.0
    y1 = net.predict(params, x)[0]
    assert_array_equal(y0[0, :5], y1[0, :5])
    assert np.all(y0[0, 5] != y1[0, 5])


@pytest.mark.parametrize("case", SPATIAL, ids=spec_id)
def test_forward_matches_numpy(case, rng):
    shape, spec = case
    x = distinct(rng, (3,) + shape)
    y = net64(shape, [spec]).predict([], x)[0]
    want = forward_ref(spec, x)
    assert y.shape == want.shape
    assert_allclose(y, want, rtol=1e-12, atol=1e-15)
    y32 = _core.Network32(list(shape), [spec], "mse", "batch_size").predict(
        [], x.astype(np.float32))[0]
    assert y32.dtype == np.float32
    assert_allclose(y32, want, rtol=1e-6, atol=1e-7)


def chain(shape, spec, out=2):
    """[Dense over the last axis, spec, Flatten, Dense(out)]: gradients reach the layer's
    input through the first Dense."""
    return [dense(shape[-1]), spec, {"kind": "flatten"}, dense(out)]


@pytest.mark.parametrize("case", SPATIAL, ids=spec_id)
def test_gradient_matches_finite_differences(case, rng):
    shape, spec = case
    net = net64(shape, chain(shape, spec))
    params = init(net, rng)
    X = distinct(rng, (4,) + shape)
    Y = rng.normal(size=(4, 2))
    fd_check(net, params, X, Y)


@pytest.mark.parametrize("case", CONV1D, ids=conv_id)
def test_conv1d_gradient_matches_finite_differences(case, rng):
    T, k, s, d, padding = case
    net = net64((T, 3), chain((T, 3), conv1d_spec(k, s, d, padding, activation="tanh")))
    params = init(net, rng)
    fd_check(net, params, rng.normal(size=(3, T, 3)), rng.normal(size=(3, 2)))


def test_global_max_gradient_goes_to_the_first_argmax():
    # through [dense(identity kernel), global_max_pool]: dL/db of the first Dense is the
    # layer's input gradient summed over positions; dL/dW picks the rows of x at the arg-max
    net = net64((4, 2), [dense(2), {"kind": "global_max_pool"}])
    params = [np.eye(2), np.zeros(2)]
    x = np.array([[[1.0, 7.0], [3.0, 7.0], [3.0, -1.0], [2.0, 7.0]]])  # ties: 3 at t=1,2; 7
    y = np.array([[0.0, 0.0]])
    grads = [np.full_like(p, np.nan) for p in params]
    net.loss_grad(params, grads, x, y, None, 0.0)
    dy = 2 * np.array([3.0, 7.0]) / 2  # mse over 2 outputs: 2 (p - y) / k
    # column 0: arg-max t=1 (x[1] = [3, 7]); column 1: t=0 (x[0] = [1, 7])
    assert_allclose(grads[0], np.array([[3.0, 1.0], [7.0, 7.0]]) * dy[None, :], rtol=1e-15)
    assert_allclose(grads[1], dy, rtol=1e-15)


def test_max_pool1d_ties_go_to_the_first_argmax():
    # h = x[:, :, 0] (tied values) while x[:, :, 1] tags each step: dL/dW0[1] = the tags of
    # the steps the gradient went to, times their dL/dh
    net = net64((6, 2), [dense(1, use_bias=False), {"kind": "max_pool1d", "pool_size": [3]},
                         {"kind": "flatten"}, dense(1, use_bias=False)])
    params = [np.array([[1.0], [0.0]]), np.array([[1.0], [10.0]])]
    x = np.array([[2.0, 1.0, 2.0, 5.0, 5.0, 0.0],  # windows: 2 at t=0, 2; 5 at t=3, 4
                  [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]]).T[None].copy()
    grads = [np.zeros((2, 1)), np.zeros((2, 1))]
    net.loss_grad(params, grads, x, np.zeros((1, 1)), None, 0.0)
    dp = 2 * (2.0 * 1.0 + 5.0 * 10.0)  # mse of one output: 2 (p - y)
    assert_allclose(grads[1], dp * np.array([[2.0], [5.0]]), rtol=1e-15)
    # the first arg-max of each window: t=0 (tag 10) with dL/dh = dp, t=3 (tag 40) with 10 dp
    assert_allclose(grads[0], dp * np.array([[2.0 + 5.0 * 10], [10.0 + 40.0 * 10]]), rtol=1e-15)


def test_cnn1d_trains_the_same_on_one_and_two_threads(rng, restore_threads):
    layers = [conv1d_spec(3, 1, 1, "causal", activation="relu"),
              {"kind": "max_pool1d", "pool_size": [2]},
              {"kind": "zero_pad1d", "padding": [1, 0]},
              {"kind": "upsample1d", "size": [2]},
              {"kind": "crop1d", "cropping": [0, 2]},
              {"kind": "global_avg_pool"}, dense(3, "softmax")]
    net = _core.Network32([11, 2], layers, "categorical_crossentropy", "batch_size")
    assert net.layer_output_shapes == [(11, 4), (5, 4), (6, 4), (12, 4), (10, 4), (4,), (3,)]
    params = init(net, rng, np.float32)
    X = rng.normal(size=(64, 11, 2)).astype(np.float32)
    Y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)]
    out = []
    for nt in (1, 2):
        neuraxis.set_num_threads(nt)
        ps = [p.copy() for p in params]
        m = [np.zeros_like(p) for p in ps]
        v = [np.zeros_like(p) for p in ps]
        net.train_batches(ps, _core.OptConfig(), m, v, X, Y, None, None, 16, 0, -1, [], 0)
        out.append(ps)
    for a, b, p in zip(out[0], out[1], params):
        assert not np.array_equal(a, p)
        assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_nonfinite_input_is_reported_by_a_first_spatial_layer():
    for spec in ({"kind": "zero_pad1d", "padding": [1, 1]}, {"kind": "upsample1d", "size": [2]},
                 {"kind": "global_max_pool"}, {"kind": "crop1d", "cropping": [1, 1]}):
        net = net64((4, 2), [spec])
        X = np.ones((3, 4, 2))
        assert net.predict([], X)[1] is False
        X[1, 2, 1] = np.nan
        assert net.predict([], X)[1] is True


@pytest.mark.parametrize("shape,spec,match", [
    ((9,), conv1d_spec(3, 1, 1, "valid"), r"needs inputs of shape \(steps, channels\)"),
    ((4, 4, 1), conv1d_spec(3, 1, 1, "valid"), r"needs inputs of shape \(steps, channels\)"),
    ((2, 3), conv1d_spec(3, 1, 1, "valid"), "conv1d: a window of 3 does not fit an input of 2"),
    ((9, 3), conv1d_spec(3, 1, 1, "full"), "'padding' must be 'valid', 'same' or 'causal'"),
    ((9, 3), conv1d_spec(0, 1, 1, "valid"), "must be positive"),
    ((9, 3), {"kind": "conv1d", "filters": 2, "kernel_size": [3, 3]}, "must hold 1 integer"),
    ((9, 3), {"kind": "max_pool1d", "padding": "causal"}, "'padding' must be 'valid' or 'same'"),
    ((2, 3), {"kind": "avg_pool1d", "pool_size": [3]}, "does not fit an input of 2"),
    ((9,), {"kind": "global_avg_pool"}, r"needs inputs of shape \(\.\.\., channels\)"),
    ((9, 3), {"kind": "global_max_pool", "keep_dims": True}, "unknown key"),
    ((9, 3), {"kind": "zero_pad1d", "padding": [1, 2, 3, 4]}, "must hold 2 integers"),
    ((9, 3), {"kind": "zero_pad2d", "padding": [1, 1, 1, 1]}, r"\(height, width, channels\)"),
    ((9, 3), {"kind": "zero_pad1d", "padding": [-1, 0]}, "must not be negative"),
    ((9, 3), {"kind": "crop1d", "cropping": [4, 5]}, "leaves nothing"),
    ((3, 3, 1), {"kind": "crop2d", "cropping": [0, 0, 1, 2]}, "leaves nothing"),
    ((9, 3), {"kind": "upsample1d", "size": [0]}, "positive"),
    ((3, 3, 1), {"kind": "upsample2d", "size": [2]}, "must hold 2 integers"),
])
def test_bad_specs_raise(shape, spec, match):
    with pytest.raises(ValueError, match=match):
        net64(shape, [spec])


# ---- against PyTorch ---------------------------------------------------------------------

def torch_layer(torch, spec, h, params):
    """spec applied to h (n, ..., C) channels-last, by torch's own ops on channels-first."""
    F = torch.nn.functional
    kind = spec["kind"]
    cf = h.movedim(-1, 1)  # (n, C, ...)
    if kind == "conv1d":
        w, b = params
        k, s = spec["kernel_size"][0], spec["strides"][0]
        d, padding = spec["dilation_rate"][0], spec["padding"]
        cf = F.pad(cf, pads_1d(cf.shape[-1], k, s, d, padding))
        out = F.conv1d(cf, w.permute(2, 1, 0), b, stride=s, dilation=d)
        out = torch.tanh(out) if spec.get("activation") == "tanh" else out
    elif kind in ("max_pool1d", "avg_pool1d"):
        p = spec.get("pool_size", [2])[0]
        s = spec.get("strides", [p])[0]
        lr = rc.pads(cf.shape[-1], p, s, 1, spec.get("padding", "valid"))
        if kind == "max_pool1d":
            out = F.max_pool1d(F.pad(cf, lr, value=-np.inf), p, s)
        else:  # the mean over in-bounds taps: padded sum / padded count
            ones = torch.ones_like(cf)
            out = F.avg_pool1d(F.pad(cf, lr), p, s) / F.avg_pool1d(F.pad(ones, lr), p, s)
    elif kind.startswith("global_"):
        rank = cf.ndim - 2
        pool = getattr(F, f"adaptive_{kind[7:10]}_pool{rank}d")
        out = pool(cf, 1)
        if not spec.get("keepdims", False):
            out = out.flatten(2)[..., 0]
            return out
    elif kind.startswith("zero_pad"):
        v = spec["padding"]
        out = F.pad(cf, tuple(v) if len(v) == 2 else (v[2], v[3], v[0], v[1]))
    elif kind.startswith("crop"):
        v = spec["cropping"]
        if len(v) == 2:
            out = cf[..., v[0]:cf.shape[-1] - v[1]]
        else:
            out = cf[..., v[0]:cf.shape[-2] - v[1], v[2]:cf.shape[-1] - v[3]]
    elif kind.startswith("upsample"):
        out = F.interpolate(cf, scale_factor=tuple(float(s) for s in spec["size"]),
                            mode="nearest")
    else:
        raise AssertionError(kind)
    return out.movedim(1, -1)


def torch_chain(torch, spec, params, X, Y):
    """[Dense, spec, Flatten, Dense] and mse in torch: (output, loss, parameter grads)."""
    ps = [torch.tensor(p, requires_grad=True) for p in params]
    h = torch.tensor(X) @ ps[0] + ps[1]
    h = torch_layer(torch, spec, h, ps[2:-2])
    out = h.reshape(h.shape[0], -1) @ ps[-2] + ps[-1]
    loss = torch.mean((out - torch.tensor(Y)) ** 2)  # Keras mse, averaged over rows
    loss.backward()
    return out.detach().numpy(), float(loss.detach()), [p.grad.numpy() for p in ps]


def check_against_torch(torch, shape, spec, rng, n=4):
    net = net64(shape, chain(shape, spec))
    params = init(net, rng)
    X, Y = distinct(rng, (n,) + shape), rng.normal(size=(n, 2))
    out, loss, tgrads = torch_chain(torch, spec, params, X, Y)
    assert_allclose(net.predict(params, X)[0], out, rtol=1e-12, atol=1e-13)
    grads = [np.zeros_like(p) for p in params]
    assert net.loss_grad(params, grads, X, Y, None, 0.0) == pytest.approx(loss, rel=1e-12)
    for g, t in zip(grads, tgrads):
        assert_allclose(g, t, rtol=1e-10, atol=1e-13)


@pytest.mark.parametrize("case", SPATIAL, ids=spec_id)
def test_layers_match_torch(case, rng):
    torch = pytest.importorskip("torch")
    check_against_torch(torch, *case, rng)


@pytest.mark.parametrize("case", CONV1D, ids=conv_id)
def test_conv1d_matches_torch(case, rng):
    torch = pytest.importorskip("torch")
    T, k, s, d, padding = case
    check_against_torch(torch, (T, 3), conv1d_spec(k, s, d, padding, activation="tanh"), rng)
