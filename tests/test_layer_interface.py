"""The engine's layer interface, kind by kind: shapes, parameters, forward against NumPy,
backward against finite differences (float64), frozen parameters, sequence lengths.

Networks are built the way both fronts build them: an input shape plus one dict per layer.
"""
import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import neuraxis
from neuraxis import _core, ops

import reference as ref
from engine_checks import FD_TOL, engine_grads, fd_check  # noqa: F401

@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def dense(units, activation="identity", **kw):
    return {"kind": "dense", "units": units, "activation": activation, **kw}


def init(net, rng, dtype=np.float64, scale=0.5):
    return [(rng.normal(size=s) * scale).astype(dtype) for s in net.param_shapes]


def sgd_config(lr):
    opt = _core.OptConfig()
    opt.kind, opt.learning_rate, opt.momentum = "sgd", lr, 0.0
    return opt


# ---- shapes and parameters -----------------------------------------------------------------

def test_shapes_chain_through_every_kind():
    net = _core.Network64([4, 6, 3], [
        {"kind": "flatten"}, dense(5, "relu"), {"kind": "reshape", "target_shape": [5, 1]},
        dense(2, use_bias=False), {"kind": "dropout", "rate": 0.25},
        {"kind": "activation", "activation": "tanh"}, {"kind": "flatten"}], "mse", "batch_size")
    assert net.input_shape == (4, 6, 3)
    assert net.layer_output_shapes == [(72,), (5,), (5, 1), (5, 2), (5, 2), (5, 2), (10,)]
    assert net.output_shape == (10,)
    # Dense kernels are (in, units) over the last axis; use_bias=False has no bias
    assert net.param_shapes == [(72, 5), (5,), (1, 2)]
    assert net.param_trainable == [True, True, True]


def test_reshape_infers_minus_one():
    net = _core.Network32([12], [{"kind": "reshape", "target_shape": [-1, 3]}], "mse",
                          "batch_size")
    assert net.output_shape == (4, 3)


# ---- forward against NumPy, backward against finite differences ----------------------------

ACTS = [("identity", 0.0), ("relu", 0.0), ("tanh", 0.0), ("logistic", 0.0),
        ("leaky_relu", 0.2), ("elu", 1.3), ("softplus", 0.0), ("softmax", 0.0)]


@pytest.mark.parametrize("act,alpha", ACTS)
def test_dense_forward_and_gradient(act, alpha, rng):
    net = _core.Network64([7], [dense(5, act, alpha=alpha), dense(3)], "mse", "batch_size")
    params = init(net, rng)
    X, Y = rng.normal(size=(9, 7)), rng.normal(size=(9, 3))
    P, nonfinite = net.predict(params, X)
    h = ref.activation_forward(X @ params[0] + params[1], act, alpha)
    assert not nonfinite
    assert_allclose(P, h @ params[2] + params[3], rtol=1e-12, atol=1e-12)
    fd_check(net, params, X, Y)


def test_dense_without_bias(rng):
    net = _core.Network64([4], [dense(3, "tanh", use_bias=False)], "mse", "batch_size")
    params = init(net, rng)
    assert [p.shape for p in params] == [(4, 3)]
    X, Y = rng.normal(size=(6, 4)), rng.normal(size=(6, 3))
    assert_allclose(net.predict(params, X)[0], np.tanh(X @ params[0]), rtol=1e-12)
    fd_check(net, params, X, Y)


def test_dense_applies_over_the_last_axis(rng):
    # (n, T, F) inputs: the same kernel on every step, as Keras's Dense on rank-3 inputs
    net = _core.Network64([3, 4], [dense(5, "relu"), dense(2)], "mse", "batch_size")
    assert net.output_shape == (3, 2)
    params = init(net, rng)
    X, Y = rng.normal(size=(6, 3, 4)), rng.normal(size=(6, 3, 2))
    P, _ = net.predict(params, X)
    h = np.maximum(X @ params[0] + params[1], 0)
    assert P.shape == (6, 3, 2)
    assert_allclose(P, h @ params[2] + params[3], rtol=1e-12, atol=1e-12)
    fd_check(net, params, X, Y)


@pytest.mark.parametrize("act,alpha", ACTS)
def test_activation_layer_forward_and_gradient_through_it(act, alpha, rng):
    net = _core.Network64([5], [dense(6), {"kind": "activation", "activation": act,
                                           "alpha": alpha}, dense(2)], "mse", "batch_size")
    params = init(net, rng)
    X, Y = rng.normal(size=(8, 5)), rng.normal(size=(8, 2))
    h = ref.activation_forward(X @ params[0] + params[1], act, alpha)
    assert_allclose(net.predict(params, X)[0], h @ params[2] + params[3], rtol=1e-12,
                    atol=1e-12)
    fd_check(net, params, X, Y)


def test_softmax_layer_on_rank3_is_over_the_last_axis(rng):
    net = _core.Network64([3, 4], [{"kind": "activation", "activation": "softmax"}], "mse",
                          "batch_size")
    X = rng.normal(size=(2, 3, 4))
    P, _ = net.predict([], X)
    assert_allclose(P, ref.softmax(X.reshape(-1, 4)).reshape(2, 3, 4), rtol=1e-12)


def test_flatten_and_reshape_pass_values_and_gradients_unchanged(rng):
    layers = [{"kind": "reshape", "target_shape": [2, 6]}, dense(3, "tanh"), {"kind": "flatten"},
              dense(2)]
    net = _core.Network64([3, 4], layers, "mse", "batch_size")
    params = init(net, rng)
    X, Y = rng.normal(size=(5, 3, 4)), rng.normal(size=(5, 2))
    h = np.tanh(X.reshape(5, 2, 6) @ params[0] + params[1]).reshape(5, 6)
    assert_allclose(net.predict(params, X)[0], h @ params[2] + params[3], rtol=1e-12)
    fd_check(net, params, X, Y)


def test_a_network_that_only_reshapes_returns_its_input(rng):
    net = _core.Network32([2, 3], [{"kind": "flatten"}], "mse", "batch_size")
    X = rng.normal(size=(4, 2, 3)).astype(np.float32)
    assert_array_equal(net.predict([], X)[0], X.reshape(4, 6))


def test_dropout_layer_trains_with_its_mask_and_predicts_as_identity(rng):
    n, lr, seed, rate = 10, 0.1, 99, 0.4
    net = _core.Network64([4], [dense(6, "relu"), {"kind": "dropout", "rate": rate}, dense(2)],
                          "mse", "batch_size")
    params = init(net, rng)
    X, Y = rng.normal(size=(n, 4)), rng.normal(size=(n, 2))
    W0, b0, W1, b1 = [p.copy() for p in params]
    mask = ops.dropout_mask(seed, 1, 0, n, 6, rate)  # layer 1 is the Dropout
    # NumPy: forward with the mask, gradient by the chain rule
    h = np.maximum(X @ W0 + b0, 0)
    hd = h * mask
    P = hd @ W1 + b1
    dP = 2 * (P - Y) / (n * 2)
    dh = (dP @ W1.T) * mask * (h > 0)
    expect = [W0 - lr * X.T @ dh, b0 - lr * dh.sum(0), W1 - lr * hd.T @ dP, b1 - lr * dP.sum(0)]
    m = [np.zeros_like(p) for p in params]
    net.train_batches(params, sgd_config(lr), m, [], X, Y, None, None, n, 0, 1, [], seed)
    for p, e in zip(params, expect):
        assert_allclose(p, e, rtol=1e-10, atol=1e-12)
    # inference: no dropout
    assert_allclose(net.predict(params, X)[0], np.maximum(X @ params[0] + params[1], 0)
                    @ params[2] + params[3], rtol=1e-12)
    # training=True in predict applies the same masks
    out, _ = net.predict(params, X, training=True, seed=seed)
    assert_allclose(out, (np.maximum(X @ params[0] + params[1], 0) * mask) @ params[2]
                    + params[3], rtol=1e-12)


def test_nonfinite_input_is_reported_by_the_first_computing_layer(rng):
    for first in ([dense(3)], [{"kind": "activation", "activation": "relu"}],
                  [{"kind": "dropout", "rate": 0.5}]):
        net = _core.Network64([2, 2], [{"kind": "flatten"}] + first, "mse", "batch_size")
        params = init(net, rng)
        X = np.ones((3, 2, 2))
        assert net.predict(params, X)[1] is False
        X[1, 0, 1] = np.nan
        assert net.predict(params, X)[1] is True


# ---- frozen parameters -----------------------------------------------------------------------

def test_frozen_layer_is_bit_identical_and_its_state_untouched(rng):
    layers = [dense(6, "relu", trainable=False), dense(3, "softmax")]
    net = _core.Network32([5], layers, "categorical_crossentropy", "batch_size")
    assert net.param_trainable == [False, False, True, True]
    params = init(net, rng, np.float32)
    frozen = [p.copy() for p in params[:2]]
    X = rng.normal(size=(40, 5)).astype(np.float32)
    Y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 40)]
    opt = _core.OptConfig()
    opt.kind, opt.learning_rate = "adam", 0.01
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]
    before_top = [p.copy() for p in params[2:]]
    net.train_batches(params, opt, m, v, X, Y, None, None, 8, 0, -1, [], 0)
    assert opt.t == 5
    for p, f in zip(params[:2], frozen):
        assert_array_equal(p, f)
    for a in m[:2] + v[:2]:
        assert not a.any()
    assert all(not np.array_equal(p, b) for p, b in zip(params[2:], before_top))


def test_frozen_bottom_layer_gets_no_gradient_and_the_rest_the_full_one(rng):
    free = _core.Network64([4], [dense(5, "tanh"), dense(2)], "mse", "batch_size")
    frozen = _core.Network64([4], [dense(5, "tanh", trainable=False), dense(2)], "mse",
                             "batch_size")
    params = init(free, rng)
    X, Y = rng.normal(size=(7, 4)), rng.normal(size=(7, 2))
    l1, g1 = engine_grads(free, params, X, Y)
    l2, g2 = engine_grads(frozen, params, X, Y)
    assert l1 == l2
    assert not g2[0].any() and not g2[1].any()
    assert_array_equal(g1[2], g2[2])
    assert_array_equal(g1[3], g2[3])


# ---- sequences: per-row lengths pass through -------------------------------------------------

def test_lengths_pass_through_every_entry_point(rng):
    net = _core.Network32([5, 2], [{"kind": "flatten"}, dense(3)], "mse", "batch_size")
    params = init(net, rng, np.float32)
    X = rng.normal(size=(6, 5, 2)).astype(np.float32)
    Y = rng.normal(size=(6, 3)).astype(np.float32)
    lengths = np.array([5, 1, 0, 3, 5, 2], dtype=np.int32)
    # no layer reads them yet: results are those without lengths
    assert_array_equal(net.predict(params, X, lengths)[0], net.predict(params, X)[0])
    assert net.evaluate(params, X, Y, None, 4, [], lengths) == net.evaluate(params, X, Y, None,
                                                                             4, [])
    outs = []
    for ls in (lengths, None):
        ps = [p.copy() for p in params]
        m = [np.zeros_like(p) for p in ps]
        net.train_batches(ps, sgd_config(0.1), m, [], X, Y, None, np.arange(6)[::-1].copy(), 4,
                          0, -1, [], 0, lengths=ls)
        outs.append(ps)
    for a, b in zip(*outs):
        assert_array_equal(a, b)


def test_bad_lengths_raise(rng):
    net = _core.Network32([5, 2], [{"kind": "flatten"}, dense(3)], "mse", "batch_size")
    params = init(net, rng, np.float32)
    X = np.zeros((4, 5, 2), np.float32)
    with pytest.raises(ValueError, match=r"lengths\[2\] = 6 is outside \[0, 5\]"):
        net.predict(params, X, np.array([1, 2, 6, 0], np.int32))
    with pytest.raises(ValueError, match="lengths has the wrong shape"):
        net.predict(params, X, np.array([1, 2, 3], np.int32))
    with pytest.raises(TypeError, match="int32"):
        net.predict(params, X, np.array([1, 2, 3, 4], np.int64))
    flat = _core.Network32([10], [dense(3)], "mse", "batch_size")
    with pytest.raises(ValueError, match="lengths are for sequence inputs"):
        flat.predict(init(flat, rng, np.float32), X.reshape(4, 10), np.ones(4, np.int32))


# ---- determinism -------------------------------------------------------------------------------

def test_same_seed_and_threads_give_bit_identical_training(rng, restore_threads):
    layers = [dense(64, "relu"), {"kind": "dropout", "rate": 0.3}, dense(32, "tanh"),
              {"kind": "dropout", "rate": 0.1}, dense(4, "softmax")]
    net = _core.Network32([20], layers, "categorical_crossentropy", "batch_size")
    params = init(net, rng, np.float32, 0.2)
    X = rng.normal(size=(300, 20)).astype(np.float32)
    Y = np.eye(4, dtype=np.float32)[rng.integers(0, 4, 300)]
    neuraxis.set_num_threads(2)

    def run():
        ps = [p.copy() for p in params]
        opt = _core.OptConfig()
        m = [np.zeros_like(p) for p in ps]
        v = [np.zeros_like(p) for p in ps]
        perm = np.random.default_rng(5).permutation(300)
        tot = net.train_batches(ps, opt, m, v, X, Y, None, perm, 64, 0, -1, [], 42)
        return ps, tot["loss_sum"]

    (a, la), (b, lb) = run(), run()
    assert la == lb
    for x, y in zip(a, b):
        assert_array_equal(x, y)


# ---- the name table -----------------------------------------------------------------------------

def test_one_name_table_feeds_every_registry():
    from neuraxis import _names, activations, losses, optimizers

    table = _core.names()
    assert {"activations", "losses", "metrics", "optimizers", "layers"} <= set(table)
    assert table["layers"][:5] == ["dense", "activation", "dropout", "flatten", "reshape"]
    assert ops.ACTIVATIONS == tuple(table["activations"])
    assert {e for e, _ in activations.ENGINE.values()} <= set(table["activations"])
    assert {c._kind for c in optimizers._CLASSES.values()} == set(table["optimizers"])
    assert losses.CategoricalCrossentropy._engine in table["losses"]
    with pytest.raises(ValueError, match="unknown activation 'swish'; expected one of "
                                         + ", ".join(table["activations"])):
        ops.activation_forward(np.ones((1, 2)), "swish")
    with pytest.raises(ImportError, match=r"engine losses \['hinge'\]"):
        _names.require("losses", ["mse", "hinge"], "a registry")
    opt = _core.OptConfig()
    opt.kind = "lamb"
    net = _core.Network64([2], [dense(1)], "mse", "batch_size")
    with pytest.raises(ValueError, match="unknown optimizer 'lamb'; expected one of sgd, adam"):
        net.train_batches([np.zeros((2, 1)), np.zeros(1)], opt, [np.zeros((2, 1)), np.zeros(1)],
                          [], np.zeros((2, 2)), np.zeros((2, 1)), None, None, 2, 0, -1, [], 0)


@pytest.mark.parametrize("nt", [1, 2])
def test_small_batch_training_matches_numpy_on_any_thread_count(nt, rng, restore_threads):
    # Batches of a few rows per thread run the first layer by feature slices (each thread
    # its slice of the inputs and of W's rows); the step must be the plain chain rule's.
    neuraxis.set_num_threads(nt)
    n, lr = 48, 0.3
    net = _core.Network64([40], [dense(64, "relu"), dense(3, "softmax")],
                          "categorical_crossentropy", "batch_size")
    params = init(net, rng, scale=0.2)
    X = rng.normal(size=(n, 40))
    Y = np.eye(3)[rng.integers(0, 3, n)]
    sw = rng.uniform(0.5, 2.0, n)
    perm = rng.permutation(n)
    W0, b0, W1, b1 = [p.copy() for p in params]
    Xp, Yp, swp = X[perm], Y[perm], sw[perm]
    h = np.maximum(Xp @ W0 + b0, 0)
    P = ref.softmax(h @ W1 + b1)
    dz1 = (P - Yp) * swp[:, None] / n
    dz0 = (dz1 @ W1.T) * (h > 0)
    expect = [W0 - lr * Xp.T @ dz0, b0 - lr * dz0.sum(0), W1 - lr * h.T @ dz1,
              b1 - lr * dz1.sum(0)]
    m = [np.zeros_like(p) for p in params]
    net.train_batches(params, sgd_config(lr), m, [], X, Y, sw, perm, n, 0, 1, [], 0)
    for p, e in zip(params, expect):
        assert_allclose(p, e, rtol=1e-11, atol=1e-13)


# ---- convolution and pooling layers ----------------------------------------------------------

CNN = [{"kind": "conv2d", "filters": 4, "kernel_size": [3, 2], "strides": [1, 1],
        "padding": "same", "activation": "tanh"},
       {"kind": "max_pool2d", "pool_size": [2, 2]},
       {"kind": "conv2d", "filters": 3, "kernel_size": [2, 2], "strides": [2, 1],
        "dilation_rate": [1, 1], "activation": "relu"},
       {"kind": "avg_pool2d", "pool_size": [2, 2], "strides": [1, 1], "padding": "same"},
       {"kind": "flatten"}, dense(3, "softmax")]


def test_cnn_shapes_and_parameters():
    net = _core.Network64([9, 7, 2], CNN, "categorical_crossentropy", "batch_size")
    assert net.layer_output_shapes == [(9, 7, 4), (4, 3, 4), (2, 2, 3), (2, 2, 3), (12,), (3,)]
    assert net.param_shapes == [(3, 2, 2, 4), (4,), (2, 2, 4, 3), (3,), (12, 3), (3,)]


def test_cnn_forward_matches_the_kernels_and_its_gradient_finite_differences(rng):
    net = _core.Network64([9, 7, 2], CNN, "categorical_crossentropy", "batch_size")
    params = init(net, rng)
    X = rng.normal(size=(5, 9, 7, 2))
    Y = np.eye(3)[rng.integers(0, 3, 5)]
    h = np.tanh(ops.conv2d_forward(X, params[0], params[1], padding="same"))
    h = ops.max_pool2d_forward(h, 2)
    h = np.maximum(ops.conv2d_forward(h, params[2], params[3], strides=(2, 1)), 0)
    h = ops.avg_pool2d_forward(h, 2, 1, "same").reshape(5, -1)
    assert_allclose(net.predict(params, X)[0], ref.softmax(h @ params[4] + params[5]),
                    rtol=1e-12, atol=1e-14)
    fd_check(net, params, X, Y)


def test_cnn_trains_the_same_on_one_and_two_threads(rng, restore_threads):
    net = _core.Network32([9, 7, 2], CNN, "categorical_crossentropy", "batch_size")
    params = init(net, rng, np.float32)
    X = rng.normal(size=(64, 9, 7, 2)).astype(np.float32)
    Y = np.eye(3, dtype=np.float32)[rng.integers(0, 3, 64)]
    out = []
    for nt in (1, 2):
        neuraxis.set_num_threads(nt)
        ps = [p.copy() for p in params]
        m = [np.zeros_like(p) for p in ps]
        v = [np.zeros_like(p) for p in ps]
        net.train_batches(ps, _core.OptConfig(), m, v, X, Y, None, None, 32, 0, -1, [], 0)
        out.append(ps)
    for a, b, p in zip(out[0], out[1], params):
        assert not np.array_equal(a, p)
        assert_allclose(a, b, rtol=1e-4, atol=1e-6)


def test_bad_conv_specs_raise():
    with pytest.raises(ValueError, match="needs inputs of shape \\(height, width, channels\\)"):
        _core.Network32([8], [{"kind": "conv2d", "filters": 2, "kernel_size": [3, 3]}], "mse",
                        "batch_size")
    with pytest.raises(ValueError, match="does not fit an input of 2"):
        _core.Network32([2, 2, 1], [{"kind": "conv2d", "filters": 2, "kernel_size": [3, 3]}],
                        "mse", "batch_size")
    with pytest.raises(ValueError, match="'padding' must be 'valid' or 'same'"):
        _core.Network32([4, 4, 1], [{"kind": "max_pool2d", "padding": "full"}], "mse",
                        "batch_size")
