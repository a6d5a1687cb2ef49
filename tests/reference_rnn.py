"""Plain NumPy references for the recurrent cells (SimpleRNN, LSTM, GRU), Keras layouts.

Independent of neuraxis on purpose, and written as a loop over time steps, one line
per equation, so that each can be checked by eye against Keras's cells
(keras/src/layers/rnn/simple_rnn.py, lstm.py, gru.py: ``call`` of each cell).
Everything is evaluated in float64 whatever the input dtype.

Conventions (Keras):

- x (n, T, F); h_{-1} = 0 (and c_{-1} = 0 for the LSTM); x_t @ W is (n, G*u).
- SimpleRNN: W (F, u), U (u, u), b (u,): h_t = act(x_t W + h_{t-1} U + b).
- LSTM: W (F, 4u), U (u, 4u), b (4u,), gate order i, f, c, o:
  z = x_t W + h_{t-1} U + b; i = rec(z_i); f = rec(z_f); g = act(z_c); o = rec(z_o);
  c_t = f c_{t-1} + i g; h_t = o act(c_t).
- GRU: W (F, 3u), U (u, 3u), gate order z, r, h.
  reset_after=True, b (2, 3u) (row 0 input bias, row 1 recurrent bias):
    x_z, x_r, x_h = x_t W + b[0]; r_z, r_r, r_h = h_{t-1} U + b[1];
    z = rec(x_z + r_z); r = rec(x_r + r_r); hh = act(x_h + r * r_h).
  reset_after=False, b (3u,):
    x_z, x_r, x_h = x_t W + b; z = rec(x_z + h_{t-1} U_z); r = rec(x_r + h_{t-1} U_r);
    hh = act(x_h + (r * h_{t-1}) U_h).
  Both: h_t = z h_{t-1} + (1 - z) hh.
- go_backwards: the steps are processed in the order T-1, ..., 0; with
  return_sequences the outputs are in processing order (the reverse of the input
  order), as Keras returns them.
- Output: the last h (n, u), or every h (n, T, u) with return_sequences.
"""
import numpy as np

ACTIVATIONS = ("tanh", "logistic", "relu", "identity")


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def act(z, name):
    """The activations a recurrent layer takes, by their engine names."""
    if name == "tanh":
        return np.tanh(z)
    if name == "logistic":
        e = np.exp(-np.abs(z))  # never overflows
        return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    if name == "relu":
        return np.maximum(z, 0.0)
    if name == "identity":
        return z.copy()
    raise ValueError(f"unknown activation {name!r}; expected one of {', '.join(ACTIVATIONS)}")


def _steps(x, go_backwards):
    x = _f64(x)
    if x.ndim != 3:
        raise ValueError(f"x must be (n, T, F), got shape {x.shape}")
    T = x.shape[1]
    return x, (range(T - 1, -1, -1) if go_backwards else range(T))


def _out(hs, return_sequences):
    H = np.stack(hs, axis=1)  # (n, T, u), processing order
    return (H if return_sequences else H[:, -1]), H


def simple_rnn_forward(x, W, U, b=None, activation="tanh", return_sequences=False,
                       go_backwards=False):
    """(output, H): H (n, T, u) is every state in processing order."""
    x, steps = _steps(x, go_backwards)
    W, U = _f64(W), _f64(U)
    h = np.zeros((x.shape[0], U.shape[0]))
    hs = []
    for t in steps:
        z = x[:, t] @ W + h @ U
        if b is not None:
            z = z + _f64(b)
        h = act(z, activation)
        hs.append(h)
    return _out(hs, return_sequences)


def lstm_forward(x, W, U, b=None, activation="tanh", recurrent_activation="logistic",
                 return_sequences=False, go_backwards=False):
    """(output, (H, C)): the hidden and the cell states (n, T, u) in processing order."""
    x, steps = _steps(x, go_backwards)
    W, U = _f64(W), _f64(U)
    u = U.shape[0]
    h = np.zeros((x.shape[0], u))
    c = np.zeros((x.shape[0], u))
    hs, cs = [], []
    for t in steps:
        z = x[:, t] @ W + h @ U
        if b is not None:
            z = z + _f64(b)
        i = act(z[:, :u], recurrent_activation)
        f = act(z[:, u:2 * u], recurrent_activation)
        g = act(z[:, 2 * u:3 * u], activation)
        o = act(z[:, 3 * u:], recurrent_activation)
        c = f * c + i * g
        h = o * act(c, activation)
        hs.append(h)
        cs.append(c)
    out, H = _out(hs, return_sequences)
    return out, (H, np.stack(cs, axis=1))


def gru_forward(x, W, U, b=None, activation="tanh", recurrent_activation="logistic",
                reset_after=True, return_sequences=False, go_backwards=False):
    """(output, H): H (n, T, u) is every state in processing order."""
    x, steps = _steps(x, go_backwards)
    W, U = _f64(W), _f64(U)
    u = U.shape[0]
    if b is None:
        b_in = b_rec = np.zeros(3 * u)
    elif reset_after:
        b = _f64(b)
        if b.shape != (2, 3 * u):
            raise ValueError(f"reset_after=True takes a bias (2, {3 * u}), got {b.shape}")
        b_in, b_rec = b[0], b[1]
    else:
        b_in, b_rec = _f64(b), np.zeros(3 * u)
    h = np.zeros((x.shape[0], u))
    hs = []
    for t in steps:
        xw = x[:, t] @ W + b_in
        x_z, x_r, x_h = xw[:, :u], xw[:, u:2 * u], xw[:, 2 * u:]
        if reset_after:
            hu = h @ U + b_rec
            z = act(x_z + hu[:, :u], recurrent_activation)
            r = act(x_r + hu[:, u:2 * u], recurrent_activation)
            hh = act(x_h + r * hu[:, 2 * u:], activation)
        else:
            z = act(x_z + h @ U[:, :u], recurrent_activation)
            r = act(x_r + h @ U[:, u:2 * u], recurrent_activation)
            hh = act(x_h + (r * h) @ U[:, 2 * u:], activation)
        h = z * h + (1.0 - z) * hh
        hs.append(h)
    return _out(hs, return_sequences)


def forward(kind, x, params, **options):
    """The output of the layer `kind` ('simple_rnn', 'lstm', 'gru') for x, given its
    parameters in the engine's order [W, U] + [b] (when use_bias); options are the
    layer spec's other keys (units and use_bias are implied by params)."""
    opts = {k: v for k, v in options.items() if k not in ("units", "use_bias", "kind")}
    W, U, *rest = params
    b = rest[0] if rest else None
    fn = {"simple_rnn": simple_rnn_forward, "lstm": lstm_forward, "gru": gru_forward}[kind]
    return fn(x, W, U, b, **opts)[0]
