"""neuraxis.ops.simple_rnn_* / lstm_* / gru_* on NumPy arrays: forward against the NumPy
loop-over-time reference, backward (dx and every parameter) against central finite
differences of sum(dy * forward) in float64, float32 close to float64, bad arguments."""
import numpy as np
import pytest
from numpy.testing import assert_allclose

from neuraxis import ops

import reference as ref
import reference_rnn as rr

CASES = [("simple_rnn", {}), ("simple_rnn", {"activation": "relu", "go_backwards": True}),
         ("lstm", {}), ("lstm", {"return_sequences": True}),
         ("gru", {}), ("gru", {"reset_after": False, "return_sequences": True})]
GATES = {"simple_rnn": 1, "lstm": 4, "gru": 3}


def params_for(kind, rng, F=3, u=4, reset_after=True):
    G = GATES[kind] * u
    b = rng.normal(size=(2, G) if kind == "gru" and reset_after else G) * 0.5
    return rng.normal(size=(F, G)) * 0.5, rng.normal(size=(u, G)) * 0.5, b


def call(kind, x, p, dy=None, **kw):
    fn = getattr(ops, f"{kind}_{'forward' if dy is None else 'backward'}")
    return fn(x, p[0], p[1], bias=p[2], **kw) if dy is None else fn(x, p[0], p[1], dy,
                                                                       bias=p[2], **kw)


@pytest.mark.parametrize("kind,kw", CASES, ids=[f"{k}-{sorted(v.items())}" for k, v in CASES])
def test_forward_and_backward(kind, kw):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 3))
    p = params_for(kind, rng, reset_after=kw.get("reset_after", True))
    y = call(kind, x, p, **kw)
    assert_allclose(y, rr.forward(kind, x, list(p), **kw), rtol=1e-12, atol=1e-12)
    dy = rng.normal(size=y.shape)
    grads = call(kind, x, p, dy, **kw)
    assert len(grads) == 4
    args = [x, *p]
    for i, a in enumerate(args):
        def f(v, i=i):
            b = list(args)
            b[i] = v
            return (call(kind, b[0], b[1:], **kw) * dy).sum()
        assert_allclose(grads[i], ref.numerical_grad(f, a), rtol=1e-6, atol=1e-8)
    y32 = call(kind, x.astype(np.float32), [q.astype(np.float32) for q in p], **kw)
    assert y32.dtype == np.float32
    assert_allclose(y32, y, rtol=1e-4, atol=1e-5)


def test_sigmoid_and_linear_names_and_no_bias():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 4, 3))
    W, U, b = params_for("lstm", rng)
    assert_allclose(ops.lstm_forward(x, W, U, b, recurrent_activation="sigmoid"),
                    ops.lstm_forward(x, W, U, b), rtol=0, atol=0)
    y = ops.simple_rnn_forward(x, W[:, :4], U[:, :4], activation="linear")
    assert_allclose(y, rr.forward("simple_rnn", x, [W[:, :4], U[:, :4]], activation="identity"),
                    rtol=1e-12)


def test_bad_arguments_raise():
    x = np.zeros((2, 4, 3))
    with pytest.raises(ValueError):
        ops.lstm_forward(x, np.zeros((3, 8)), np.zeros((3, 8)))  # recurrent must be (2, 8)
    with pytest.raises(ValueError):
        ops.simple_rnn_forward(np.zeros((2, 3)), np.zeros((3, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError):
        ops.gru_backward(x, np.zeros((3, 6)), np.zeros((2, 6)), np.zeros((2, 5)),
                         bias=np.zeros((2, 6)))


# ---- embedding_forward / embedding_backward ------------------------------------------------
@pytest.mark.parametrize("shape", [(4,), (3, 5), (2, 3, 2)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_embedding_ops_equal_numpy_take_and_add_at(shape, dtype):
    rng = np.random.default_rng(7)
    table = rng.normal(size=(6, 3)).astype(dtype)
    ids = rng.integers(0, 6, shape)
    ids.flat[0] = ids.flat[-1]  # a repeated id: its gradient rows add up
    y = ops.embedding_forward(ids, table)
    assert y.dtype == dtype and y.shape == shape + (3,)
    assert_allclose(y, table[ids])
    dy = rng.normal(size=shape + (3,)).astype(dtype)
    want = np.zeros((6, 3))
    np.add.at(want, ids, dy)
    assert_allclose(ops.embedding_backward(ids, table, dy), want, rtol=1e-6, atol=1e-6)
    # float ids holding integers work as Keras's cast does
    assert_allclose(ops.embedding_forward(ids.astype(np.float64), table), table[ids])


def test_embedding_ops_refuse_bad_ids_and_shapes():
    table = np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"indices\[1\] = 4 is not in \[0, 4\)"):
        ops.embedding_forward(np.array([0, 4]), table)
    with pytest.raises(ValueError, match="must be integers"):
        ops.embedding_forward(np.array([0.5]), table)
    with pytest.raises(ValueError, match="2-d table"):
        ops.embedding_forward(np.array([0]), np.zeros(4))
    with pytest.raises(ValueError, match="dy must have shape"):
        ops.embedding_backward(np.array([[0, 1]]), table, np.zeros((1, 2)))
