"""Dropout in the recurrent engine layers (Keras's RNN dropout: one mask per sequence for all
its steps, on the inputs and on h_{t-1}): the training gradient against central finite
differences of the training-mode objective with the same masks (same seed), inference
without masks, and the masks' independence of the thread split. Together with a step mask
(a masked step keeps the true state and repeats the last output) and for GRU
reset_after=False: the training forward against a NumPy loop of Keras's cells with the
engine's masks (ops.dropout_mask), against real Keras 3 (torch, in a subprocess) with those
masks patched into its cells, and the gradient against finite differences."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import neuraxis
from neuraxis import _core, ops

import reference as ref
import reference_rnn as rr
from real_keras import needs_keras

CASES = [("simple_rnn", dict(dropout=0.3, recurrent_dropout=0.4)),
         ("lstm", dict(dropout=0.3, recurrent_dropout=0.4)),
         ("lstm", dict(dropout=0.3, return_sequences=True, go_backwards=True)),
         ("gru", dict(dropout=0.3)),
         ("gru", dict(dropout=0.3, recurrent_dropout=0.4)),
         ("gru", dict(recurrent_dropout=0.4, return_sequences=True, go_backwards=True)),
         ("gru", dict(dropout=0.5, reset_after=False)),
         ("gru", dict(dropout=0.3, recurrent_dropout=0.4, reset_after=False)),
         ("gru", dict(recurrent_dropout=0.4, reset_after=False, return_sequences=True,
                      go_backwards=True))]


def net_for(kind, kw, dtype=np.float64, T=4, F=3, u=3):
    cls = _core.Network64 if dtype == np.float64 else _core.Network32
    return cls([T, F], [{"kind": kind, "units": u, **kw}, {"kind": "flatten"},
                        {"kind": "dense", "units": 2}], "mse", "batch_size")


def sgd_step(net, params, X, Y, seed):
    opt = _core.OptConfig()
    opt.kind, opt.learning_rate, opt.momentum = "sgd", 1.0, 0.0
    after = [p.copy() for p in params]
    net.train_batches(after, opt, [np.zeros_like(p) for p in after], [], X, Y, None, None,
                      len(X), 0, 1, [], seed)
    return after


def check_sgd_step_is_the_fd_gradient(net, params, X, Y, seed):
    """One SGD step with lr 1 moves each parameter by the finite-difference gradient of the
    training objective (training mode: predict(training=True) draws the same masks)."""
    def objective(ps):
        return np.mean((net.predict(ps, X, training=True, seed=seed)[0] - Y) ** 2)

    after = sgd_step(net, params, X, Y, seed)
    for i, p in enumerate(params):
        def f(a, i=i):
            ps = list(params)
            ps[i] = a
            return objective(ps)
        assert_allclose(p - after[i], ref.numerical_grad(f, p), rtol=1e-6, atol=1e-8,
                        err_msg=f"param {i}")


@pytest.mark.parametrize("kind,kw", CASES, ids=[f"{k}-{sorted(v.items())}" for k, v in CASES])
def test_training_gradient_matches_finite_differences(kind, kw):
    rng = np.random.default_rng(1)
    net = net_for(kind, kw)
    params = [rng.normal(size=s) * 0.5 for s in net.param_shapes]
    X, Y, seed = rng.normal(size=(6, 4, 3)), rng.normal(size=(6, 2)), 123
    check_sgd_step_is_the_fd_gradient(net, params, X, Y, seed)
    # inference has no dropout; training does
    plain = _core.Network64([4, 3], [{"kind": kind, "units": 3,
                                      **{k: v for k, v in kw.items() if "dropout" not in k}},
                                     {"kind": "flatten"}, {"kind": "dense", "units": 2}],
                            "mse", "batch_size")
    assert_allclose(net.predict(params, X)[0], plain.predict(params, X)[0], rtol=1e-14)
    assert not np.allclose(net.predict(params, X, training=True, seed=seed)[0],
                           plain.predict(params, X)[0])


def test_masks_do_not_depend_on_the_thread_split():
    rng = np.random.default_rng(2)
    net = net_for("lstm", dict(dropout=0.3, recurrent_dropout=0.3), T=20, F=8, u=32)
    params = [rng.normal(size=s) * 0.3 for s in net.param_shapes]
    X, Y = rng.normal(size=(64, 20, 8)), rng.normal(size=(64, 2))
    out = []
    try:
        for nt in (1, 2):
            neuraxis.set_num_threads(nt)
            out.append(sgd_step(net, params, X, Y, 7))
    finally:
        neuraxis.set_num_threads(2)
    for a, b in zip(*out):
        assert_allclose(a, b, rtol=1e-10, atol=1e-12)


def test_bad_rates_raise():
    with pytest.raises(ValueError, match="dropout"):
        net_for("lstm", dict(dropout=1.0))
    with pytest.raises(ValueError, match="recurrent_dropout"):
        net_for("gru", dict(recurrent_dropout=1.0))


# ---- recurrent dropout together with a step mask; GRU reset_after=False ---------------------

def engine_masks(seed, index, n, F, u, drop, rdrop):
    """The masks the engine draws for the recurrent layer at position `index`: keyed by the
    layer (index | 2**40) for the inputs, one key further for h_{t-1} (columns F.. of it)."""
    key = index | (1 << 40)
    mx = ops.dropout_mask(seed, key, 0, n, F, drop) if drop else np.ones((n, F))
    mh = ops.dropout_mask(seed, key + 1, 0, n, F + u, rdrop)[:, F:] if rdrop else np.ones((n, u))
    return mx, mh


def keras_cell_reference(kind, x, params, step_mask, mx, mh, seq=False, back=False,
                         reset_after=True):
    """Keras 3's cells in training mode (simple_rnn.py, lstm.py implementation 1, gru.py) with
    the inputs times mx and h_{t-1} times mh in the products (the GRU update reads h_{t-1}
    itself), and rnn.py's masking: a masked step keeps h (and c) and repeats the last output."""
    W, U, b = params
    n, T, _ = x.shape
    u = U.shape[0]
    h, c = np.zeros((n, u)), np.zeros((n, u))
    outs = []
    for t in (range(T - 1, -1, -1) if back else range(T)):
        xt, hm = x[:, t] * mx, h * mh
        if kind == "simple_rnn":
            h_new = np.tanh(xt @ W + b + hm @ U)
        elif kind == "lstm":
            z = xt @ W + b + hm @ U
            i, f, g, o = (rr.act(z[:, k * u:(k + 1) * u], a)
                          for k, a in enumerate(("logistic", "logistic", "tanh", "logistic")))
            c_new = f * c + i * g
            h_new = o * np.tanh(c_new)
        else:
            xw = xt @ W + (b[0] if reset_after else b)
            if reset_after:
                hu = hm @ U + b[1]
                zg = rr.act(xw[:, :u] + hu[:, :u], "logistic")
                rg = rr.act(xw[:, u:2 * u] + hu[:, u:2 * u], "logistic")
                hh = np.tanh(xw[:, 2 * u:] + rg * hu[:, 2 * u:])
            else:
                zg = rr.act(xw[:, :u] + hm @ U[:, :u], "logistic")
                rg = rr.act(xw[:, u:2 * u] + hm @ U[:, u:2 * u], "logistic")
                hh = np.tanh(xw[:, 2 * u:] + (rg * hm) @ U[:, 2 * u:])
            h_new = zg * h + (1.0 - zg) * hh
        keep = step_mask[:, t:t + 1]
        h = np.where(keep, h_new, h)
        if kind == "lstm":
            c = np.where(keep, c_new, c)
        outs.append(h)
    return np.stack(outs, axis=1) if seq else h


MASKED = [("simple_rnn", {}, False, False), ("simple_rnn", {}, True, True),
          ("lstm", {}, False, False), ("lstm", {}, True, False), ("lstm", {}, False, True),
          ("gru", {}, True, False), ("gru", {}, False, True),
          ("gru", {"reset_after": False}, False, False),
          ("gru", {"reset_after": False}, True, True)]


def masked_net(kind, kw, seq, back, T, F, u, drop=0.2, rdrop=0.4):
    return _core.Network64([T, F], [{"kind": "masking", "mask_value": 0.0},
                                    {"kind": kind, "units": u, "use_mask": True,
                                     "return_sequences": seq, "go_backwards": back,
                                     "dropout": drop, "recurrent_dropout": rdrop, **kw},
                                    {"kind": "flatten"}, {"kind": "dense", "units": 2}],
                           "mse", "batch_size")


def padded_batch(rng, n, T, F):
    X = rng.normal(size=(n, T, F))
    mask = rng.random((n, T)) > 0.35
    mask[0] = False        # no real step
    mask[1, :2] = False    # leading padding
    mask[2, -2:] = False   # trailing padding
    X[~mask] = 0.0
    return X, mask


@pytest.mark.parametrize("kind,kw,seq,back", MASKED)
def test_step_mask_with_recurrent_dropout_forward_matches_numpy(kind, kw, seq, back):
    rng = np.random.default_rng(3)
    n, T, F, u, seed = 7, 6, 3, 4, 99
    net = masked_net(kind, kw, seq, back, T, F, u)
    params = [rng.normal(size=s) * 0.5 for s in net.param_shapes]
    X, mask = padded_batch(rng, n, T, F)
    mx, mh = engine_masks(seed, 1, n, F, u, 0.2, 0.4)
    assert (mh == 0).any() and (mh != 0).any()
    h = keras_cell_reference(kind, X, params[:3], mask, mx, mh, seq, back, **kw)
    assert_allclose(net.predict(params, X, training=True, seed=seed)[0],
                    h.reshape(n, -1) @ params[3] + params[4], rtol=1e-12, atol=1e-12)
    # inference: no dropout, the plain masked layer
    h = keras_cell_reference(kind, X, params[:3], mask, np.ones((n, F)), np.ones((n, u)), seq,
                             back, **kw)
    assert_allclose(net.predict(params, X)[0], h.reshape(n, -1) @ params[3] + params[4],
                    rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("kind,kw", [("simple_rnn", {}), ("lstm", {}), ("gru", {}),
                                     ("gru", {"reset_after": False})])
def test_masked_steps_keep_the_state_under_recurrent_dropout(kind, kw):
    # the layer's own output sequence: a masked step repeats the previous output (zeros
    # before the first real step), with dropout on every real step
    rng = np.random.default_rng(4)
    n, T, F, u = 5, 6, 2, 3
    net = _core.Network64([T, F], [{"kind": "masking"},
                                   {"kind": kind, "units": u, "use_mask": True,
                                    "return_sequences": True, "recurrent_dropout": 0.5, **kw}],
                          "mse", "batch_size")
    params = [rng.normal(size=s) for s in net.param_shapes]
    X, mask = padded_batch(rng, n, T, F)
    out = net.predict(params, X, training=True, seed=5)[0].reshape(n, T, u)
    for i in range(n):
        for t in range(T):
            if not mask[i, t]:
                assert_array_equal(out[i, t], out[i, t - 1] if t else np.zeros(u))
    assert_array_equal(out[0], np.zeros((T, u)))
    assert not np.allclose(out, net.predict(params, X)[0].reshape(n, T, u))


@pytest.mark.parametrize("kind,kw,seq,back", MASKED)
def test_step_mask_with_recurrent_dropout_gradient_matches_finite_differences(kind, kw, seq,
                                                                              back):
    rng = np.random.default_rng(5)
    n, T, F, u, seed = 6, 5, 3, 3, 321
    net = masked_net(kind, kw, seq, back, T, F, u)
    params = [rng.normal(size=s) * 0.5 for s in net.param_shapes]
    X, _ = padded_batch(rng, n, T, F)
    Y = rng.normal(size=(n, 2))
    check_sgd_step_is_the_fd_gradient(net, params, X, Y, seed)


@pytest.mark.parametrize("seq,back", [(False, False), (True, True)])
def test_gru_reset_before_recurrent_dropout_forward_matches_numpy(seq, back):
    rng = np.random.default_rng(6)
    n, T, F, u, seed = 5, 4, 3, 4, 17
    net = _core.Network64([T, F], [{"kind": "gru", "units": u, "reset_after": False,
                                    "return_sequences": seq, "go_backwards": back,
                                    "dropout": 0.3, "recurrent_dropout": 0.4}],
                          "mse", "batch_size")
    params = [rng.normal(size=s) * 0.5 for s in net.param_shapes]
    X = rng.normal(size=(n, T, F))
    mx, mh = engine_masks(seed, 0, n, F, u, 0.3, 0.4)
    h = keras_cell_reference("gru", X, params, np.ones((n, T), bool), mx, mh, seq, back,
                             reset_after=False)
    assert_allclose(net.predict(params, X, training=True, seed=seed)[0].reshape(n, -1),
                    h.reshape(n, -1), rtol=1e-12, atol=1e-12)


KERAS_SCRIPT = textwrap.dedent("""
    import sys
    import numpy as np
    import keras
    d = dict(np.load(sys.argv[1]))
    out = {}
    for name, cls, kw in [("simple_rnn", keras.layers.SimpleRNN, {}),
                          ("lstm", keras.layers.LSTM, {}),
                          ("gru", keras.layers.GRU, {}),
                          ("gru_before", keras.layers.GRU, {"reset_after": False})]:
        layer = cls(4, dropout=0.2, recurrent_dropout=0.4, return_sequences=True, **kw)
        model = keras.Sequential([keras.Input((6, 3)), keras.layers.Masking(), layer])
        layer.set_weights([d[f"{name}_w{j}"] for j in range(3)])
        # Keras's own masks replaced by the engine's (one per gate in implementation 1)
        count = getattr(layer.cell, "dropout_mask_count", None)
        mx, mh = (keras.ops.convert_to_tensor(d[k]) for k in ("mx", "mh"))
        layer.cell.get_dropout_mask = lambda _, m=mx: [m] * count if count else m
        layer.cell.get_recurrent_dropout_mask = lambda _, m=mh: [m] * count if count else m
        out[name] = keras.ops.convert_to_numpy(model(d["x"], training=True))
        out[name + "_inference"] = keras.ops.convert_to_numpy(model(d["x"], training=False))
    np.savez(sys.argv[2], **out)
""")


@needs_keras
def test_training_forward_with_a_step_mask_equals_keras(tmp_path):
    # real Keras 3 (torch) in training mode with the engine's dropout masks patched into its
    # cells: the same outputs, so the same semantics of dropout, recurrent dropout and masking
    rng = np.random.default_rng(8)
    n, T, F, u, seed = 7, 6, 3, 4, 2024
    X, mask = padded_batch(rng, n, T, F)
    mx, mh = engine_masks(seed, 1, n, F, u, 0.2, 0.4)
    arrays = {"x": X.astype(np.float32), "mx": mx.astype(np.float32),
              "mh": mh.astype(np.float32)}
    nets = {}
    for name, kind, kw in [("simple_rnn", "simple_rnn", {}), ("lstm", "lstm", {}),
                           ("gru", "gru", {}), ("gru_before", "gru", {"reset_after": False})]:
        net = _core.Network64([T, F], [{"kind": "masking", "mask_value": 0.0},
                                       {"kind": kind, "units": u, "use_mask": True,
                                        "return_sequences": True, "dropout": 0.2,
                                        "recurrent_dropout": 0.4, **kw}], "mse", "batch_size")
        params = [rng.normal(size=s).astype(np.float32) * 0.5 for s in net.param_shapes]
        nets[name] = net, [p.astype(np.float64) for p in params]
        arrays.update({f"{name}_w{j}": p for j, p in enumerate(params)})
    np.savez(tmp_path / "in.npz", **arrays)
    run = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(tmp_path / "in.npz"),
                          str(tmp_path / "out.npz")], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, KERAS_BACKEND="torch"))
    assert run.returncode == 0, run.stderr[-2000:]
    theirs = np.load(tmp_path / "out.npz")
    x = arrays["x"].astype(np.float64)
    for name, (net, params) in nets.items():
        ours = net.predict(params, x, training=True, seed=seed)[0].reshape(n, T, u)
        assert_allclose(ours, theirs[name], rtol=1e-5, atol=1e-5, err_msg=name)
        assert_allclose(net.predict(params, x)[0].reshape(n, T, u), theirs[name + "_inference"],
                        rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("kind,kw", [("lstm", {}), ("gru", {"reset_after": False})])
def test_bidirectional_with_a_step_mask_and_recurrent_dropout(kind, kw):
    # the two directions draw their own masks (the backward one keyed index + 2**20)
    rng = np.random.default_rng(9)
    n, T, F, u, seed = 6, 5, 2, 3, 77
    net = _core.Network64([T, F], [{"kind": "masking"},
                                   {"kind": "bidirectional", "layer": kind, "units": u,
                                    "use_mask": True, "return_sequences": True,
                                    "merge_mode": "concat", "dropout": 0.2,
                                    "recurrent_dropout": 0.4, **kw},
                                   {"kind": "flatten"}, {"kind": "dense", "units": 2}],
                          "mse", "batch_size")
    params = [rng.normal(size=s) * 0.5 for s in net.param_shapes]
    X, mask = padded_batch(rng, n, T, F)
    Y = rng.normal(size=(n, 2))
    k = (len(params) - 2) // 2
    yf = keras_cell_reference(kind, X, params[:k], mask, *engine_masks(seed, 1, n, F, u, 0.2, 0.4),
                              seq=True, **kw)
    yb = keras_cell_reference(kind, X, params[k:2 * k], mask,
                              *engine_masks(seed, 1 + (1 << 20), n, F, u, 0.2, 0.4), seq=True,
                              back=True, **kw)[:, ::-1]
    want = np.concatenate([yf, yb], -1).reshape(n, -1) @ params[-2] + params[-1]
    assert_allclose(net.predict(params, X, training=True, seed=seed)[0], want, rtol=1e-12,
                    atol=1e-12)
    check_sgd_step_is_the_fd_gradient(net, params, X, Y, seed)
