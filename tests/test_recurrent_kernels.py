"""Recurrent engine layers (simple_rnn, lstm, gru) against the NumPy reference
(tests/reference_rnn.py), central finite differences, torch and real Keras.

- The reference itself is checked against torch's nn.RNN / nn.LSTM / nn.GRU with converted
  weights, and (in one Keras subprocess) against Keras's own layers, which alone have
  GRU(reset_after=False) and go_backwards.
- Engine forward (one recurrent layer, and one followed by a Dense) equals the reference to
  1e-12 in float64 on short odd sequences, for every option that changes the arithmetic.
- Whole-network gradients (net.loss_grad) against central differences in float64, float32
  against float64, one and two threads, and outputs plus input and weight gradients
  against torch autograd.

Layouts (Keras's): kernel W (F, G*u), recurrent kernel U (u, G*u), bias (G*u,), or (2, 3u)
for GRU(reset_after=True); gate order i, f, c, o (LSTM), z, r, h (GRU).
"""
import json
import os
import subprocess
import sys
import textwrap
import zlib

import numpy as np
import pytest
from numpy.testing import assert_allclose

import neuraxis
from neuraxis import _core

import reference as ref
from engine_checks import engine_grads, fd_check  # noqa: F401
import reference_rnn as rr
from real_keras import HAVE_KERAS, needs_keras

FD_TOL = dict(rtol=1e-6, atol=1e-8)
TIGHT = dict(rtol=1e-12, atol=1e-12)
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


@pytest.fixture
def rng(request):
    # one fixed seed per test id: reproducible and different across tests
    return np.random.default_rng(zlib.crc32(request.node.name.encode()))


def rnn(kind, units, **kw):
    return {"kind": kind, "units": units, **kw}


def dense(units, activation="identity", **kw):
    return {"kind": "dense", "units": units, "activation": activation, **kw}


def init(net, rng, dtype=np.float64, scale=0.5):
    return [(rng.normal(size=s) * scale).astype(dtype) for s in net.param_shapes]


def n_params(spec):
    return 3 if spec.get("use_bias", True) else 2


def expected_param_shapes(spec, F):
    u, G = spec["units"], GATES[spec["kind"]]
    shapes = [(F, G * u), (u, G * u)]
    if spec.get("use_bias", True):
        shapes.append((2, 3 * u) if spec["kind"] == "gru" and spec.get("reset_after", True)
                      else (G * u,))
    return shapes


# ---- the reference against torch ---------------------------------------------------------

def _torch_module(torch, kind, F, u, nonlinearity="tanh"):
    nn = torch.nn
    if kind == "simple_rnn":
        return nn.RNN(F, u, nonlinearity=nonlinearity, batch_first=True, dtype=torch.float64)
    cls = nn.LSTM if kind == "lstm" else nn.GRU
    return cls(F, u, batch_first=True, dtype=torch.float64)


def _swap_zr(a):
    """Keras's GRU gate blocks z, r, h along the last axis <-> torch's r, z, n (the swap
    of the first two blocks is its own inverse)."""
    u = a.shape[-1] // 3
    return np.concatenate([a[..., u:2 * u], a[..., :u], a[..., 2 * u:]], axis=-1)


def to_torch(torch, kind, F, params, nonlinearity="tanh", rng=None):
    """A float64 batch_first torch module with the Keras-layout weights `params`.

    RNN and LSTM add two biases (b_ih + b_hh): b is split between them at random
    when rng is given (and put all in b_ih otherwise)."""
    W, U, b = params
    u = U.shape[0]
    m = _torch_module(torch, kind, F, u, nonlinearity)
    if kind == "gru":
        w_ih, w_hh = _swap_zr(W).T, _swap_zr(U).T
        b_ih, b_hh = _swap_zr(b[0]), _swap_zr(b[1])
    else:
        w_ih, w_hh = W.T, U.T
        b_hh = rng.normal(size=b.shape) if rng is not None else np.zeros_like(b)
        b_ih = b - b_hh
    with torch.no_grad():
        for name, a in (("weight_ih_l0", w_ih), ("weight_hh_l0", w_hh), ("bias_ih_l0", b_ih),
                        ("bias_hh_l0", b_hh)):
            getattr(m, name).copy_(torch.tensor(np.ascontiguousarray(a)))
    return m


def torch_grads(kind, m):
    """The gradients of the torch module's weights, in the engine's layout and order."""
    g = {k: getattr(m, k).grad.numpy() for k in ("weight_ih_l0", "weight_hh_l0",
                                                   "bias_ih_l0", "bias_hh_l0")}
    if kind == "gru":
        return [_swap_zr(g["weight_ih_l0"].T), _swap_zr(g["weight_hh_l0"].T),
                np.stack([_swap_zr(g["bias_ih_l0"]), _swap_zr(g["bias_hh_l0"])])]
    # b = b_ih + b_hh: both get the same gradient
    assert_allclose(g["bias_ih_l0"], g["bias_hh_l0"], rtol=1e-14)
    return [g["weight_ih_l0"].T, g["weight_hh_l0"].T, g["bias_ih_l0"]]


def random_params(rng, kind, F, u, scale=0.5):
    G = GATES[kind]
    b_shape = (2, 3 * u) if kind == "gru" else (G * u,)
    return [rng.normal(size=s) * scale for s in ((F, G * u), (u, G * u), b_shape)]


TORCH_CASES = [("simple_rnn", "tanh"), ("simple_rnn", "relu"), ("lstm", "tanh"),
               ("gru", "tanh")]


@pytest.mark.parametrize("kind,act", TORCH_CASES)
def test_reference_matches_torch(kind, act, rng):
    torch = pytest.importorskip("torch")
    n, T, F, u = 3, 7, 3, 5
    params = random_params(rng, kind, F, u)
    x = rng.normal(size=(n, T, F))
    m = to_torch(torch, kind, F, params, act, rng)
    with torch.no_grad():
        yt, state = m(torch.tensor(x))
    opts = {"activation": act} if kind == "simple_rnn" else {}
    fn = {"simple_rnn": rr.simple_rnn_forward, "lstm": rr.lstm_forward,
          "gru": rr.gru_forward}[kind]
    seq, states = fn(x, *params, return_sequences=True, **opts)
    last, _ = fn(x, *params, **opts)
    assert seq.shape == (n, T, u) and last.shape == (n, u)
    assert_allclose(seq, yt.numpy(), rtol=1e-12, atol=1e-13)
    assert_allclose(last, yt.numpy()[:, -1], rtol=1e-12, atol=1e-13)
    if kind == "lstm":
        H, C = states
        assert_allclose(C[:, -1], state[1].numpy()[0], rtol=1e-12, atol=1e-13)
        assert_allclose(H, seq)


def test_reference_go_backwards_is_the_reversed_sequence(rng):
    x = rng.normal(size=(2, 5, 3))
    for kind in GATES:
        params = random_params(rng, kind, 3, 4)
        back = rr.forward(kind, x, params, return_sequences=True, go_backwards=True)
        fwd = rr.forward(kind, x[:, ::-1], params, return_sequences=True)
        assert_allclose(back, fwd, rtol=1e-15)
        assert not np.allclose(back, rr.forward(kind, x, params, return_sequences=True))


# The reference against real Keras, one subprocess: the only independent check of
# GRU(reset_after=False), go_backwards and the non-default activations. Keras computes in
# float32 (outside TensorFlow, its dtype rules turn float64 results into float32:
# BIT64_TO_BIT32_DTYPE in keras/src/backend/common/dtypes.py), so the inputs and
# weights are float32 values and the tolerance is float32 rounding's; mixing up two gates
# or the two GRU variants moves outputs by ~0.1.
KERAS_CASES = [
    ("SimpleRNN", {"activation": "relu", "go_backwards": True, "return_sequences": True}),
    ("LSTM", {"go_backwards": True, "return_sequences": True}),
    ("LSTM", {"activation": "relu", "recurrent_activation": "tanh"}),
    ("GRU", {"reset_after": True, "go_backwards": True, "return_sequences": True}),
    ("GRU", {"reset_after": False, "return_sequences": True}),
    ("GRU", {"reset_after": False, "go_backwards": True, "activation": "linear"}),
    ("GRU", {"reset_after": False, "use_bias": False, "recurrent_activation": "tanh"}),
]
KERAS_KIND = {"SimpleRNN": "simple_rnn", "LSTM": "lstm", "GRU": "gru"}
KERAS_ACT = {"linear": "identity", "sigmoid": "logistic"}

KERAS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import keras
    d = np.load(sys.argv[1])
    out = {}
    for i, (cls, kw) in enumerate(json.loads(sys.argv[2])):
        layer = getattr(keras.layers, cls)(4, **kw)
        layer.build(d["x"].shape)
        layer.set_weights([d[f"case{i}_w{j}"] for j in range(len(layer.weights))])
        out[f"case{i}"] = keras.ops.convert_to_numpy(layer(d["x"]))
    np.savez(sys.argv[3], **out)
""")


def _keras_params(rng, cls, kw, F, u=4):
    kind = KERAS_KIND[cls]
    G = GATES[kind]
    ps = [rng.normal(size=(F, G * u)) * 0.5, rng.normal(size=(u, G * u)) * 0.5]
    if kw.get("use_bias", True):
        ps.append(rng.normal(size=(2, 3 * u) if kind == "gru" and kw.get("reset_after", True)
                             else (G * u,)) * 0.5)
    return ps


@needs_keras
def test_reference_matches_keras(tmp_path):
    if not HAVE_KERAS:
        pytest.skip("keras + torch not installed")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3, 5, 2)).astype(np.float32)
    arrays, params = {"x": x}, []
    for i, (cls, kw) in enumerate(KERAS_CASES):
        params.append([w.astype(np.float32) for w in _keras_params(rng, cls, kw, 2)])
        arrays.update({f"case{i}_w{j}": w for j, w in enumerate(params[-1])})
    np.savez(tmp_path / "in.npz", **arrays)
    out = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(tmp_path / "in.npz"),
                          json.dumps(KERAS_CASES), str(tmp_path / "out.npz")],
                         capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, KERAS_BACKEND="torch"))
    assert out.returncode == 0, out.stderr[-2000:]
    theirs = np.load(tmp_path / "out.npz")
    for i, (cls, kw) in enumerate(KERAS_CASES):
        opts = {k: KERAS_ACT.get(v, v) if "activation" in k else v for k, v in kw.items()}
        mine = rr.forward(KERAS_KIND[cls], x, params[i], **opts)
        assert_allclose(mine, theirs[f"case{i}"], rtol=1e-5, atol=2e-6,
                        err_msg=f"{cls} {kw}")


# ---- engine: shapes and parameters --------------------------------------------------------

SPECS = [
    rnn("simple_rnn", 4),
    rnn("simple_rnn", 5, return_sequences=True),
    rnn("simple_rnn", 1, use_bias=False),
    rnn("lstm", 4, return_sequences=True, go_backwards=True),
    rnn("lstm", 5, use_bias=False),
    rnn("gru", 4),
    rnn("gru", 5, reset_after=False, return_sequences=True),
    rnn("gru", 1, reset_after=False, use_bias=False),
    rnn("gru", 4, use_bias=False),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: json.dumps(s))
def test_shapes_and_parameters(spec):
    T, F = 7, 3
    net = _core.Network64([T, F], [spec, dense(2)], "mse", "batch_size")
    u = spec["units"]
    out = (T, u) if spec.get("return_sequences") else (u,)
    assert net.layer_output_shapes == [out, out[:-1] + (2,)]
    assert net.param_shapes == expected_param_shapes(spec, F) + [(u, 2), (2,)]
    assert net.param_trainable == [True] * (n_params(spec) + 2)


# ---- engine forward against the reference -------------------------------------------------

# every option that changes the arithmetic, per kind; sizes below
FORWARD_CASES = [
    ("simple_rnn", {}),
    ("simple_rnn", {"return_sequences": True}),
    ("simple_rnn", {"go_backwards": True}),
    ("simple_rnn", {"return_sequences": True, "go_backwards": True}),
    ("simple_rnn", {"activation": "relu"}),
    ("simple_rnn", {"activation": "identity", "return_sequences": True}),
    ("simple_rnn", {"activation": "logistic", "use_bias": False}),
    ("lstm", {}),
    ("lstm", {"return_sequences": True}),
    ("lstm", {"go_backwards": True}),
    ("lstm", {"return_sequences": True, "go_backwards": True}),
    ("lstm", {"activation": "relu"}),
    ("lstm", {"activation": "identity", "recurrent_activation": "tanh"}),
    ("lstm", {"use_bias": False, "return_sequences": True}),
    ("gru", {}),
    ("gru", {"return_sequences": True}),
    ("gru", {"go_backwards": True}),
    ("gru", {"return_sequences": True, "go_backwards": True}),
    ("gru", {"activation": "relu"}),
    ("gru", {"activation": "identity", "recurrent_activation": "tanh"}),
    ("gru", {"use_bias": False}),
    ("gru", {"reset_after": False}),
    ("gru", {"reset_after": False, "return_sequences": True, "go_backwards": True}),
    ("gru", {"reset_after": False, "activation": "relu"}),
    ("gru", {"reset_after": False, "use_bias": False, "return_sequences": True}),
]
# (T, F, units, rows)
SIZES = [(1, 1, 1, 1), (2, 3, 4, 3), (7, 3, 5, 33), (7, 1, 4, 3), (2, 1, 5, 33), (7, 3, 1, 1)]


def case_id(case):
    kind, opts = case
    return kind + "".join(f"-{k}={v}" for k, v in opts.items())


@pytest.mark.parametrize("case", FORWARD_CASES, ids=case_id)
def test_forward_matches_reference(case, rng):
    kind, opts = case
    for T, F, u, n in SIZES:
        spec = rnn(kind, u, **opts)
        k = n_params(spec)
        X = rng.normal(size=(n, T, F))
        alone = _core.Network64([T, F], [spec], "mse", "batch_size")
        params = init(alone, rng)
        want = rr.forward(kind, X, params, **opts)
        got, nonfinite = alone.predict(params, X)
        assert not nonfinite
        assert got.shape == want.shape
        assert_allclose(got, want, **TIGHT, err_msg=f"T={T} F={F} u={u} n={n}")
        # then a Dense (over the last axis of a sequence output)
        net = _core.Network64([T, F], [spec, dense(2, "tanh")], "mse", "batch_size")
        params += init(net, rng)[k:]
        got, _ = net.predict(params, X)
        assert_allclose(got, np.tanh(want @ params[k] + params[k + 1]), **TIGHT,
                        err_msg=f"with a Dense: T={T} F={F} u={u} n={n}")


def test_forward_in_float32_is_close_to_float64(rng):
    for kind, opts in [("simple_rnn", {"return_sequences": True}), ("lstm", {"go_backwards": True}),
                       ("gru", {}), ("gru", {"reset_after": False, "return_sequences": True})]:
        layers = [rnn(kind, 5, **opts), dense(3)]
        n64 = _core.Network64([7, 3], layers, "mse", "batch_size")
        n32 = _core.Network32([7, 3], layers, "mse", "batch_size")
        p64 = init(n64, rng)
        p32 = [p.astype(np.float32) for p in p64]
        X = rng.normal(size=(9, 7, 3))
        Y = rng.normal(size=(9,) + n64.output_shape)
        P32, _ = n32.predict(p32, X.astype(np.float32))
        assert P32.dtype == np.float32
        assert_allclose(P32, n64.predict(p64, X)[0], rtol=1e-4, atol=1e-5, err_msg=kind)
        l32, g32 = engine_grads(n32, p32, X.astype(np.float32), Y.astype(np.float32))
        l64, g64 = engine_grads(n64, p64, X, Y)
        assert l32 == pytest.approx(l64, rel=1e-4)
        for a, b in zip(g32, g64):
            assert_allclose(a, b, rtol=1e-3, atol=1e-5, err_msg=kind)


# ---- engine gradients against finite differences ------------------------------------------

FD_CASES = [
    [rnn("simple_rnn", 3), dense(2)],
    [rnn("simple_rnn", 3, activation="relu", return_sequences=True, go_backwards=True), dense(2)],
    [rnn("simple_rnn", 2, use_bias=False, activation="identity"), dense(1)],
    [rnn("lstm", 3), dense(2)],
    [rnn("lstm", 2, return_sequences=True, go_backwards=True, use_bias=False), dense(2)],
    [rnn("lstm", 2, activation="identity", recurrent_activation="tanh"), dense(1)],
    [rnn("gru", 3), dense(2)],
    [rnn("gru", 2, return_sequences=True, go_backwards=True), dense(2)],
    [rnn("gru", 3, reset_after=False), dense(2)],
    [rnn("gru", 2, reset_after=False, return_sequences=True, use_bias=False), dense(1)],
    # stacked
    [rnn("lstm", 2, return_sequences=True), rnn("gru", 3), dense(2)],
    [rnn("gru", 3, return_sequences=True, go_backwards=True, reset_after=False),
     rnn("simple_rnn", 2, return_sequences=True), dense(1)],
    [rnn("simple_rnn", 2, return_sequences=True), rnn("lstm", 2, go_backwards=True)],
]


@pytest.mark.parametrize("layers", FD_CASES, ids=lambda ls: "+".join(
    l["kind"] + ("-seq" if l.get("return_sequences") else "") for l in ls))
def test_gradient_matches_finite_differences(layers, rng):
    T, F, n = 3, 2, 4
    net = _core.Network64([T, F], layers, "mse", "batch_size")
    params = init(net, rng)
    X = rng.normal(size=(n, T, F))
    Y = rng.normal(size=(n,) + net.output_shape)
    fd_check(net, params, X, Y)


# ---- training: the step, and one against two threads --------------------------------------

def sgd_config(lr):
    opt = _core.OptConfig()
    opt.kind, opt.learning_rate, opt.momentum = "sgd", lr, 0.0
    return opt


# Big enough that a batch of 64 rows gets two threads: the engine splits a batch when
# 3 x (MACs per row) x rows >= 2.5e5 (kMinParallelWork) with at least 8 rows per thread;
# here T (G (F + u)) per layer: 8 (4 (4 + 16)) + 8 (3 (16 + 8)) + 8 (8 + 4) + 4 ~ 3300.
TRAIN_SHAPE = [8, 4]
TRAIN_NET = [rnn("lstm", 16, return_sequences=True),
             rnn("gru", 8, go_backwards=True, return_sequences=True, reset_after=False),
             rnn("simple_rnn", 4), dense(2)]


@pytest.mark.parametrize("nt", [1, 2])
def test_one_sgd_step_is_the_loss_gradient_step(nt, rng, restore_threads):
    neuraxis.set_num_threads(nt)
    n, lr = 64, 0.1
    net = _core.Network64(TRAIN_SHAPE, TRAIN_NET, "mse", "batch_size")
    params = init(net, rng, scale=0.3)
    X, Y = rng.normal(size=(n, *TRAIN_SHAPE)), rng.normal(size=(n, 2))
    _, grads = engine_grads(net, params, X, Y)
    expect = [p - lr * g for p, g in zip(params, grads)]
    m = [np.zeros_like(p) for p in params]
    net.train_batches(params, sgd_config(lr), m, [], X, Y, None, None, n, 0, 1, [], 0)
    for p, e in zip(params, expect):
        assert_allclose(p, e, rtol=1e-11, atol=1e-13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_trains_the_same_on_one_and_two_threads(dtype, rng, restore_threads):
    cls = _core.Network64 if dtype == np.float64 else _core.Network32
    net = cls(TRAIN_SHAPE, TRAIN_NET, "mse", "batch_size")
    params = init(net, rng, dtype, 0.3)
    X = rng.normal(size=(128, *TRAIN_SHAPE)).astype(dtype)
    Y = rng.normal(size=(128, 2)).astype(dtype)
    out = []
    for nt in (1, 2):
        neuraxis.set_num_threads(nt)
        ps = [p.copy() for p in params]
        m = [np.zeros_like(p) for p in ps]
        v = [np.zeros_like(p) for p in ps]
        tot = net.train_batches(ps, _core.OptConfig(), m, v, X, Y, None, None, 64, 0, -1, [], 0)
        out.append((ps, tot["loss_sum"]))
    (a, la), (b, lb) = out
    tol = dict(rtol=1e-10, atol=1e-12) if dtype == np.float64 else dict(rtol=1e-4, atol=1e-6)
    assert la == pytest.approx(lb, rel=tol["rtol"])
    for x, y, p in zip(a, b, params):
        assert not np.array_equal(x, p)
        assert_allclose(x, y, **tol)


# ---- engine against torch: outputs, input and weight gradients ----------------------------

def input_as_weights(n, T, F, layers):
    """A network whose first parameter is the input itself: one-hot rows e_i through a
    bias-free Dense (n, T*F) reshaped to (T, F), so that row i of its kernel is sample i
    and the kernel's gradient is dL/dX."""
    return _core.Network64([n], [dense(T * F, use_bias=False),
                                 {"kind": "reshape", "target_shape": [T, F]}] + layers,
                           "mse", "batch_size")


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("kind,act", TORCH_CASES)
def test_engine_matches_torch(kind, act, return_sequences, rng):
    torch = pytest.importorskip("torch")
    n, T, F, u = 5, 7, 3, 4
    opts = {"activation": act} if kind == "simple_rnn" else {}
    spec = rnn(kind, u, return_sequences=return_sequences, **opts)
    net = input_as_weights(n, T, F, [spec])
    params = random_params(rng, kind, F, u)
    X = rng.normal(size=(n, T, F))
    m = to_torch(torch, kind, F, params, act, rng)
    xt = torch.tensor(X, requires_grad=True)
    yt = m(xt)[0]
    if not return_sequences:
        yt = yt[:, -1]
    Y = rng.normal(size=tuple(yt.shape))
    loss = ((yt - torch.tensor(Y)) ** 2).mean()  # Keras's mse: the mean over everything
    loss.backward()

    eye = np.eye(n)
    ps = [X.reshape(n, T * F)] + params
    P, _ = net.predict(ps, eye)
    assert_allclose(P, yt.detach().numpy(), rtol=1e-12, atol=1e-13)
    value, grads = engine_grads(net, ps, eye, Y)
    assert value == pytest.approx(loss.item(), rel=1e-12)
    assert_allclose(grads[0].reshape(n, T, F), xt.grad.numpy(), rtol=1e-10, atol=1e-13,
                    err_msg="dL/dX")
    for name, g, t in zip(("W", "U", "b"), grads[1:], torch_grads(kind, m)):
        assert_allclose(g, t, rtol=1e-10, atol=1e-13, err_msg=f"dL/d{name}")


# ---- bad specs --------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", list(GATES))
def test_bad_specs_raise(kind):
    def build(spec, shape=(5, 3)):
        _core.Network64(list(shape), [spec], "mse", "batch_size")

    with pytest.raises(ValueError, match="bogus"):
        build(rnn(kind, 3, bogus=1))
    for units in (0, -2):
        with pytest.raises(ValueError, match="units"):
            build(rnn(kind, units))
    for shape in ((15,), (5, 3, 2)):
        with pytest.raises(ValueError):
            build(rnn(kind, 3), shape)
    with pytest.raises(ValueError, match="swish"):
        build(rnn(kind, 3, activation="swish"))
    if kind != "gru":
        with pytest.raises(ValueError, match="reset_after"):
            build(rnn(kind, 3, reset_after=True))
    if kind == "simple_rnn":
        with pytest.raises(ValueError, match="recurrent_activation"):
            build(rnn(kind, 3, recurrent_activation="logistic"))
