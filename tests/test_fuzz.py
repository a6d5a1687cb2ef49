"""Property-based fuzzing of both fronts and neuraxis.ops (hypothesis): random shapes (0-d to
5-d, empty axes), dtypes, memory layouts (Fortran order, negative strides, read-only,
misaligned), NaN / inf and bad hyperparameters. The contract: a ValueError / TypeError /
NotImplementedError with a message, or the answer of an independent reference (NumPy,
scikit-learn) — never another exception, a crash or a hang.

A short budget by default; NEURAXIS_FUZZ_EXAMPLES=<n> runs n examples per test.
"""
import os
import warnings

import numpy as np

from hypothesis import HealthCheck, given, settings  # a test dependency (the `test` extra)
from hypothesis import strategies as st

from neuraxis import ops

EXAMPLES = int(os.environ.get("NEURAXIS_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
CLEAR = (ValueError, TypeError, NotImplementedError)

# (floats more often than the rest, so that many cases get past the checks)
DTYPES = ["float32", "float64", "int64", "int8", "bool", "complex128", "object", "U3", "S3",
          "float64", "float64", "float32", "float64"]


@st.composite
def arrays(draw, min_ndim=0, max_ndim=5, max_side=4, dtypes=DTYPES):
    """An array of random shape, dtype, values (with NaN / inf) and memory layout."""
    ndim = draw(st.integers(min_ndim, max_ndim))
    shape = tuple(draw(st.integers(0, max_side)) for _ in range(ndim))
    dtype = draw(st.sampled_from(dtypes))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    base = np.asarray(rng.normal(size=shape)) * draw(st.sampled_from([1.0, 1e-30, 1e30]))
    if base.size and draw(st.booleans()):
        base.flat[rng.integers(0, base.size)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    with np.errstate(all="ignore"):
        if dtype in ("U3", "S3", "object"):
            a = base.astype(str).astype(dtype) if dtype != "object" else base.astype(object)
        elif dtype == "complex128":
            a = base + 1j * base
        else:
            a = np.nan_to_num(base).astype(dtype) if dtype[0] in "ib" else base.astype(dtype)
    a = np.array(a, dtype=dtype)  # (0-d arithmetic gives NumPy / Python scalars)
    layout = draw(st.sampled_from(["C", "F", "reversed", "strided", "readonly", "misaligned"]))
    if layout == "F":
        a = np.asfortranarray(a)
    elif layout == "reversed" and a.ndim:
        a = a[::-1]
    elif layout == "strided" and a.ndim:
        a = np.repeat(a, 2, axis=-1)[..., ::2]
    elif layout == "readonly":
        a = a.copy()
        a.setflags(write=False)
    elif layout == "misaligned" and a.dtype.kind in "fi" and a.itemsize > 1:
        buf = np.zeros(a.nbytes + 1, np.uint8)
        m = np.frombuffer(buf.data, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
        m[...] = a
        a = m
    return a


def clear_or_equal(fn, reference):
    """fn() raises a clear error, or equals reference() (which may itself refuse)."""
    try:
        got = fn()
    except CLEAR as e:
        assert str(e), f"{type(e).__name__} without a message"
        return
    want = reference()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, equal_nan=True)


def _float(a):
    """The float array a correct kernel sees (the reference's own input)."""
    if a.dtype.kind not in "biuf" or a.ndim == 0:
        raise AssertionError("ops accepted an array it must refuse: "
                             f"{a.dtype} of shape {a.shape}")
    return np.asarray(a, dtype=a.dtype if a.dtype.kind == "f" else np.float64)


@FUZZ
@given(z=arrays(), name=st.sampled_from(["relu", "tanh", "logistic", "identity", "softmax",
                                         "bogus", ""]))
def test_activation_forward(z, name):
    def reference():
        x = _float(z).astype(np.float64)
        with np.errstate(all="ignore"):
            if name == "relu":
                return np.maximum(x, 0)
            if name == "tanh":
                return np.tanh(x)
            if name == "logistic":
                return 1 / (1 + np.exp(-x))
            if name == "identity":
                return x
            e = np.exp(x - x.max(axis=-1, keepdims=True, initial=-np.inf))
            return e / e.sum(axis=-1, keepdims=True)
    if name in ("softmax",):  # NaN/inf handling of softmax rows is checked elsewhere
        z = np.nan_to_num(z) if z.dtype.kind == "f" else z
    clear_or_equal(lambda: ops.activation_forward(z, name), reference)


@FUZZ
@given(X=arrays(max_ndim=3), W=arrays(max_ndim=3), with_bias=st.booleans())
def test_dense_forward(X, W, with_bias):
    b = np.linspace(-1, 1, W.shape[-1]) if with_bias and W.ndim else None

    def reference():
        x, w = _float(X).astype(np.float64), _float(W).astype(np.float64)
        if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0]:
            raise AssertionError(f"dense_forward accepted X {X.shape} and W {W.shape}")
        with np.errstate(all="ignore"):
            return x @ w + (0 if b is None else b)
    clear_or_equal(lambda: ops.dense_forward(X, W, b), reference)


@FUZZ
@given(x=arrays(min_ndim=3, max_ndim=5), w=arrays(min_ndim=3, max_ndim=5),
       strides=st.sampled_from([1, 2, (1, 2), 0, -1, (1, 1, 1)]),
       padding=st.sampled_from(["valid", "same", "full", 3]))
def test_conv2d_forward_refuses_or_runs(x, w, strides, padding):
    try:
        out = ops.conv2d_forward(x, w, None, strides=strides, padding=padding)
    except CLEAR:
        return
    assert out.ndim == 4 and out.shape[0] == x.shape[0] and out.shape[-1] == w.shape[-1]


@FUZZ
@given(x=arrays(min_ndim=2, max_ndim=4), pool=st.sampled_from([1, 2, 3, (2, 1), 0, -2]),
       padding=st.sampled_from(["valid", "same", "causal"]))
def test_max_pool2d_forward_refuses_or_runs(x, pool, padding):
    try:
        out = ops.max_pool2d_forward(x, pool_size=pool, padding=padding)
    except CLEAR:
        return
    assert out.ndim == 4 and out.shape[0] == x.shape[0] and out.shape[-1] == x.shape[-1]


@FUZZ
@given(x=arrays(min_ndim=1, max_ndim=4), units=st.integers(-1, 3),
       kind=st.sampled_from(["simple_rnn", "lstm", "gru"]))
def test_recurrent_forward_refuses_or_runs(x, units, kind):
    gates = {"simple_rnn": 1, "lstm": 4, "gru": 3}[kind]
    F = x.shape[-1] if x.ndim else 1
    u = max(units, 0)
    k, r = np.full((F, gates * u), 0.1), np.full((u, gates * u), 0.1)
    try:
        out = getattr(ops, f"{kind}_forward")(x, k, r)
    except CLEAR:
        return
    assert out.shape == (x.shape[0], u)


@FUZZ
@given(ids=arrays(max_ndim=3, dtypes=["int64", "float64", "float32", "complex128", "U3", "bool"]),
       rows=st.integers(0, 5))
def test_embedding_forward(ids, rows):
    table = np.arange(rows * 2, dtype=np.float64).reshape(rows, 2)

    def reference():
        i = np.asarray(ids)
        if i.ndim == 0 or i.dtype.kind not in "biuf" or not np.all(np.isfinite(i)) or \
                np.any(i != np.trunc(i)) or np.any(i < 0) or np.any(i >= rows):
            raise AssertionError(f"embedding_forward accepted ids {i!r}")
        return table[i.astype(np.int64)]
    clear_or_equal(lambda: ops.embedding_forward(ids, table), reference)


# ---- the scikit-learn front: the same errors as scikit-learn, or its kind of answer -------
@FUZZ
@given(X=arrays(max_ndim=3, max_side=6), seed=st.integers(0, 1000),
       params=st.fixed_dictionaries({
           "hidden_layer_sizes": st.sampled_from([(3,), (2, 2), (), (0,), (-1,), 3]),
           "alpha": st.sampled_from([0.0, 1e-4, -1.0, np.nan]),
           "solver": st.sampled_from(["adam", "sgd", "lbfgs", "newton"]),
           "batch_size": st.sampled_from(["auto", 1, 0, 4]),
           "max_iter": st.sampled_from([1, 2, 0]),
       }))
def test_sklearn_front_fails_like_scikit_learn(X, seed, params):
    from sklearn.neural_network import MLPRegressor as Theirs

    from neuraxis.neural_network import MLPRegressor as Ours
    n = X.shape[0] if X.ndim else 0
    y = np.random.default_rng(seed).normal(size=n)
    outcomes = []
    for cls in (Theirs, Ours):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                est = cls(random_state=0, **params).fit(X, y)
                outcomes.append(("ok", est.predict(X).shape))
            except CLEAR as e:
                outcomes.append((type(e).__name__, None))
            except Exception:  # noqa: BLE001
                if cls is Theirs:  # scikit-learn's own odd exception: ours must be clear
                    outcomes.append(("other", None))
                else:
                    raise
    theirs, ours = outcomes
    if theirs[0] != "other":  # (ours never raises anything but a clear error: see above)
        assert ours == theirs, (params, X.dtype, X.shape)


# ---- the Keras front: random layer stacks and inputs ---------------------------------------
LAYERS = st.sampled_from([
    ("Dense", (3,), {}), ("Dense", (0,), {}), ("Dense", (-2,), {}),
    ("Dense", (2,), {"activation": "bogus"}), ("Dropout", (0.5,), {}), ("Dropout", (1.5,), {}),
    ("Flatten", (), {}), ("Conv1D", (2, 2), {}), ("Conv2D", (2, 2), {}),
    ("MaxPooling2D", (), {}), ("LSTM", (2,), {}), ("GRU", (2,), {"return_sequences": True}),
    ("BatchNormalization", (), {}), ("Reshape", ((-1,),), {}), ("Embedding", (5, 2), {}),
    ("SimpleRNN", (2,), {"dropout": 2.0}),
])


@FUZZ
@given(stack=st.lists(LAYERS, min_size=1, max_size=4), x=arrays(min_ndim=1, max_ndim=5),
       training=st.booleans())
def test_keras_front_refuses_or_runs(stack, x, training):
    from neuraxis import layers as L
    from neuraxis.models import Sequential
    try:
        model = Sequential([getattr(L, name)(*args, **kw) for name, args, kw in stack])
        out = model.predict(x, verbose=0) if not training else None
        if training:
            model.compile("adam", "mse")
            out = model.predict(x, verbose=0)
            model.fit(x, np.zeros_like(out), epochs=1, verbose=0)
    except CLEAR as e:
        assert str(e)
        return
    assert isinstance(out, np.ndarray) and out.shape[0] == x.shape[0]
