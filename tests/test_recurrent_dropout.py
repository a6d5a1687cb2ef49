"""Dropout in the recurrent engine layers (Keras's RNN dropout: one mask per sequence for all
its steps, on the inputs and on h_{t-1}): the training gradient against central finite
differences of the training-mode objective with the same masks (same seed), inference
without masks, and the masks' independence of the thread split."""
import numpy as np
import pytest
from numpy.testing import assert_allclose

import neuraxis
from neuraxis import _core

import reference as ref

CASES = [("simple_rnn", dict(dropout=0.3, recurrent_dropout=0.4)),
         ("lstm", dict(dropout=0.3, recurrent_dropout=0.4)),
         ("lstm", dict(dropout=0.3, return_sequences=True, go_backwards=True)),
         ("gru", dict(dropout=0.3)),
         ("gru", dict(dropout=0.3, recurrent_dropout=0.4)),
         ("gru", dict(recurrent_dropout=0.4, return_sequences=True, go_backwards=True)),
         ("gru", dict(dropout=0.5, reset_after=False))]


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


@pytest.mark.parametrize("kind,kw", CASES, ids=[f"{k}-{sorted(v.items())}" for k, v in CASES])
def test_training_gradient_matches_finite_differences(kind, kw):
    rng = np.random.default_rng(1)
    net = net_for(kind, kw)
    params = [rng.normal(size=s) * 0.5 for s in net.param_shapes]
    X, Y, seed = rng.normal(size=(6, 4, 3)), rng.normal(size=(6, 2)), 123

    def objective(ps):  # training mode: predict(training=True) draws the same masks
        return np.mean((net.predict(ps, X, training=True, seed=seed)[0] - Y) ** 2)

    after = sgd_step(net, params, X, Y, seed)
    for i, p in enumerate(params):
        def f(a, i=i):
            ps = list(params)
            ps[i] = a
            return objective(ps)
        assert_allclose(p - after[i], ref.numerical_grad(f, p), rtol=1e-6, atol=1e-8)
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
        net_for("gru", dict(recurrent_dropout=0.2, reset_after=False))
