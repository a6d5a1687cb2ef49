"""Keras's step masking in the recurrent engine layers: a masked step keeps the state and
repeats the last output (zeros before the first real step), and gradients pass through it;
against the NumPy reference run on each row's real steps only, and finite differences. The
mask comes from a Masking layer (all features equal to mask_value)."""
import numpy as np
import pytest
from numpy.testing import assert_allclose

from neuraxis import _core

from engine_checks import fd_check
import reference_rnn as rr


def masked_reference(kind, x, params, mask, seq, back, **kw):
    n, T, _ = x.shape
    u = params[1].shape[0]
    outs, last = np.zeros((n, T, u)), np.zeros((n, u))
    for i in range(n):
        steps = list(range(T - 1, -1, -1)) if back else list(range(T))
        real = [t for t in steps if mask[i, t]]
        h_seq = (rr.forward(kind, x[i:i + 1, real[::-1] if back else real], params,
                            return_sequences=True, go_backwards=back, **kw)[0]
                 if real else np.zeros((0, u)))
        h, k = np.zeros(u), 0
        for s, t in enumerate(steps):
            if mask[i, t]:
                h, k = h_seq[k], k + 1
            outs[i, s] = h
        last[i] = h
    return outs if seq else last


CASES = [(k, kw, seq, back) for k, kw in [("simple_rnn", {}), ("lstm", {}), ("gru", {}),
                                         ("gru", {"reset_after": False})]
         for seq in (False, True) for back in (False, True)]


@pytest.mark.parametrize("kind,kw,seq,back", CASES)
def test_masked_steps_keep_the_state(kind, kw, seq, back):
    rng = np.random.default_rng(0)
    T, F, n, u = 5, 2, 4, 3
    net = _core.Network64([T, F], [{"kind": "masking", "mask_value": 0.0},
                                   {"kind": kind, "units": u, "use_mask": True,
                                    "return_sequences": seq, "go_backwards": back, **kw},
                                   {"kind": "flatten"}, {"kind": "dense", "units": 2}],
                          "mse", "batch_size")
    params = [rng.normal(size=s) * 0.5 for s in net.param_shapes]
    X = rng.normal(size=(n, T, F))
    mask = rng.random((n, T)) > 0.4
    mask[0] = False        # a row with no real step
    mask[1, :2] = False    # leading padding
    mask[2, -2:] = False   # trailing padding
    X[~mask] = 0.0
    Y = rng.normal(size=(n, 2))
    h = masked_reference(kind, X, params[:3], mask, seq, back, **kw)
    assert_allclose(net.predict(params, X)[0], h.reshape(n, -1) @ params[3] + params[4],
                    rtol=1e-12, atol=1e-12)
    fd_check(net, params, X, Y)


def test_masking_layer_zeroes_masked_steps_and_their_gradient():
    rng = np.random.default_rng(1)
    net = _core.Network64([4, 3], [{"kind": "masking", "mask_value": 2.0}, {"kind": "flatten"},
                                   {"kind": "dense", "units": 1}], "mse", "batch_size")
    params = [rng.normal(size=s) for s in net.param_shapes]
    X = rng.normal(size=(3, 4, 3))
    X[0, 1] = 2.0
    X[1, 2, 0] = 2.0  # not all features: a real step
    out = net.predict(params, X)[0]
    Xm = X.copy()
    Xm[0, 1] = 0.0
    assert_allclose(out, Xm.reshape(3, -1) @ params[0] + params[1], rtol=1e-12)


def test_a_recurrent_layer_needs_a_mask_before_it():
    with pytest.raises(ValueError, match="no layer before it makes one"):
        _core.Network64([4, 3], [{"kind": "lstm", "units": 2, "use_mask": True}], "mse",
                        "batch_size")
