"""Recurrent layers: train step + inference (neuraxis/PyTorch/NumPy), model.fit epochs (Keras 3).

One training step and one inference batch of LSTM(50), SimpleRNN(50) and GRU(50) on sequences
of length 100 with 1 feature, batch 64: neuraxis vs PyTorch vs a NumPy reference; model.fit
epochs: neuraxis's Keras front vs real Keras 3 on its torch and JAX backends; and (`--big`)
LSTM(256) on length 50 with 64 features, neuraxis vs PyTorch, with the step's GFLOP/s.

    python bench/rnn_bench.py                     # W4 LSTM, W5 SimpleRNN and GRU: both tables
    python bench/rnn_bench.py --cell lstm         # one cell (lstm, simple_rnn, gru or all)
    python bench/rnn_bench.py --only step         # the step table only (neuraxis, PyTorch, NumPy)
    python bench/rnn_bench.py --only fit          # the model.fit table only (neuraxis, Keras x2)
    python bench/rnn_bench.py --big               # both tables + the LSTM(256) row
    python bench/rnn_bench.py --only big          # the LSTM(256) row only
    python bench/rnn_bench.py --keras-python /work/venv/bin/python   # the Python with jax for
                                                  # the Keras-JAX worker (default: this one)
    python bench/rnn_bench.py --repeat 5 --steps 10 --epochs 4 --big --json bench/results/rnn.json
    python bench/rnn_bench.py --steps 2 --repeat 1 --epochs 2 --sequences 128   # smoke run
    python bench/rnn_bench.py --check             # the NumPy reference's gradients vs PyTorch

Model (issue 8): Input((100, 1)) -> LSTM(50) | SimpleRNN(50) | GRU(50) (last output only) ->
Dense(1, sigmoid), Adam, binary cross-entropy; Keras's defaults (tanh, sigmoid recurrent
activation, GRU reset_after=True); weights in Keras's layouts, Glorot-uniform kernels,
orthogonal recurrent kernels, zero biases (LSTM forget-gate bias 1), the same in every library.

Step table ("train step", "predict batch"; time of a step = the minimum over `--repeat`
repeats of the mean over `--steps` steps, after one warm-up step; batch i of the data each
step):
  * neuraxis through its engine (`_core.Network32`, the network `Sequential.fit` builds),
    `net.train_batches(...)` for one batch per step, `net.predict` for inference;
  * PyTorch eager: `nn.LSTM` / `nn.RNN` / `nn.GRU(batch_first=True)` + `nn.Linear`,
    `BCEWithLogitsLoss`, `torch.optim.Adam`, `torch.set_num_threads` equal to neuraxis's
    threads; inference under `torch.no_grad()` (with the sigmoid);
  * NumPy: the reference `NumpyRNN` below (float32, loop over time: the input projection of
    every step as one matmul before the loop, one recurrent matmul per step forward and one
    per step backward, then dW, dU, db as one product each over every (row, step); Keras's
    Adam on one flat buffer), OpenBLAS limited to the same threads through threadpoolctl.
  The "train step GFLOP/s" row divides the step's matrix-product FLOPs, counted analytically
  (`step_flops`: 2 * multiply-adds of the forward input projection x W and recurrent products
  h U of every step, and of the backward dW, dU and dh_{t-1} = dz U^T products -- no dX, the
  recurrent layer is the first -- plus the Dense head; the backward is (F + 2u) / (F + u) ~ 2x
  the forward), by each library's step time.

model.fit table: the lecture's Keras code, `Sequential([Input((100, 1)), LSTM(50),
Dense(1, activation="sigmoid")]).compile(optimizer="adam", loss="binary_crossentropy",
metrics=["accuracy"]).fit(X, Y, batch_size=64, epochs=3, verbose=0)` on 2048 random normal
sequences with random 0/1 labels (per cell; only the imports differ between libraries); an
epoch is timed by a callback (on_epoch_begin / on_epoch_end, time.perf_counter) and the table
shows the best (minimum) epoch over epochs 2..E (epoch 1 carries graph building / tracing /
compilation and is shown apart):
  * neuraxis: `from neuraxis.models import Sequential; from neuraxis import layers`;
  * Keras-torch and Keras-JAX: real Keras 3, KERAS_BACKEND set in the worker's environment,
    torch threads / XLA's CPUs limited to neuraxis's threads (as in bench/keras_bench.py).
    The Keras-JAX worker runs under `--keras-python` (it imports neither neuraxis nor this
    run's NumPy reference, so a Python with jax but an older neuraxis serves).

`--big` table: LSTM(256) on sequences of length 50 with 64 features, batch 64, train step and
predict batch, neuraxis's engine vs PyTorch, with GFLOP/s, and for comparison the rate of
torch.mm (same threads) on the step's two product shapes: every step's input and recurrent
products as one GEMM (B*T, F+u) x (F+u, 4u), and one step's recurrent product (B, u) x (u, 4u).

Every library (and every cell) runs in its own fresh subprocess (their thread pools would spin
against each other in one process). OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are unset for every
process (see bench/_benchenv.py). `--json PATH` writes every number of the run.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import _benchenv  # noqa: E402
from _benchlib import (KERAS_BACKENDS, cell_ms, clocked_fit, fit_front, keras_adam,  # noqa: E402
                       machine, ratio, timed)

_benchenv.scrub_environ()

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

CELLS = ("lstm", "simple_rnn", "gru")
CELL_TITLES = {"lstm": "LSTM", "simple_rnn": "SimpleRNN", "gru": "GRU"}
GATES = {"lstm": 4, "simple_rnn": 1, "gru": 3}
STEP_KINDS = ("neuraxis", "torch", "numpy")
BIG_KINDS = ("neuraxis", "torch")
FIT_KINDS = ("neuraxis-fit", "keras-torch", "keras-jax")
TITLES = {"neuraxis": "neuraxis", "torch": "PyTorch", "numpy": "NumPy ref",
          "neuraxis-fit": "neuraxis", "keras-torch": "Keras-torch", "keras-jax": "Keras-JAX"}

# (sequence length, features, units, batch)
SMALL = (100, 1, 50, 64)
BIG = (50, 64, 256, 64)


def step_flops(cell, T, F, u, n):
    """FLOPs of one training step's matrix products, counted analytically.

    Forward: x_t W (F x G) and h_{t-1} U (u x G) at every step, G = gates * u (counted for
    all T steps, also the first, whose h_{-1} is zero), and the Dense(1) head. Backward: dW
    (F x G) and dU (u x G) over every (row, step), dh_{t-1} = dz_t U^T (u x G) per step, the
    head's dW and dh; no dX (the recurrent layer is the first). 2 FLOPs per multiply-add;
    activations, gates, the loss and Adam are not counted."""
    G = GATES[cell] * u
    fwd = n * T * G * (F + u) + n * u
    bwd = n * T * G * (F + 2 * u) + 2 * n * u
    return 2 * (fwd + bwd)


def forward_flops(cell, T, F, u, n):
    """FLOPs of an inference batch's matrix products (2 * forward multiply-adds)."""
    G = GATES[cell] * u
    return 2 * (n * T * G * (F + u) + n * u)


# ------------------------------------------------------------------ weights
def init_weights(cell, F, u, seed=0, dtype=None):
    """Keras's initial weights in model.get_weights() order: [W (F, G), U (u, G), b, Wd (u, 1),
    bd (1,)]; Glorot-uniform W and Wd, orthogonal U (Keras's Orthogonal: QR of a normal
    matrix, signs of R's diagonal), zero biases, the LSTM's forget-gate bias 1
    (unit_forget_bias), the GRU's bias (2, 3u) (reset_after: input and recurrent rows)."""
    import numpy as np

    dtype = dtype or np.float32
    rng = np.random.default_rng(seed)
    G = GATES[cell] * u
    lim = np.sqrt(6.0 / (F + G))
    W = rng.uniform(-lim, lim, (F, G))
    a = rng.standard_normal((max(u, G), min(u, G)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))
    U = q.T if u < G else q  # (u, G), orthonormal rows (u <= G)
    b = np.zeros((2, G) if cell == "gru" else (G,))
    if cell == "lstm":
        b[u:2 * u] = 1.0
    lim = np.sqrt(6.0 / (u + 1))
    Wd = rng.uniform(-lim, lim, (u, 1))
    bd = np.zeros(1)
    return [np.ascontiguousarray(w, dtype=dtype) for w in (W, U, b, Wd, bd)]


def _gru_perm(u):
    """Column order Keras (z, r, h) <-> torch (r, z, n); the permutation is its own inverse."""
    import numpy as np
    return np.r_[u:2 * u, 0:u, 2 * u:3 * u]


def keras_to_torch(cell, weights, rnn, head):
    """Copy Keras-layout weights into a torch nn.LSTM/RNN/GRU (one layer) and nn.Linear."""
    import torch

    W, U, b, Wd, bd = weights
    u = U.shape[0]
    if cell == "gru":
        p = _gru_perm(u)
        W, U, b_ih, b_hh = W[:, p], U[:, p], b[0][p], b[1][p]
    else:  # LSTM gate order i, f, g (Keras c), o is torch's too
        b_ih, b_hh = b, b * 0
    with torch.no_grad():
        dt = rnn.weight_ih_l0.dtype
        rnn.weight_ih_l0.copy_(torch.tensor(W.T, dtype=dt))
        rnn.weight_hh_l0.copy_(torch.tensor(U.T, dtype=dt))
        rnn.bias_ih_l0.copy_(torch.tensor(b_ih, dtype=dt))
        rnn.bias_hh_l0.copy_(torch.tensor(b_hh, dtype=dt))
        head.weight.copy_(torch.tensor(Wd.T, dtype=dt))
        head.bias.copy_(torch.tensor(bd, dtype=dt))


def torch_grads_to_keras(cell, rnn, head):
    """The gradients of a torch model built by keras_to_torch, in Keras's layouts."""
    import numpy as np

    gW = rnn.weight_ih_l0.grad.numpy().T
    gU = rnn.weight_hh_l0.grad.numpy().T
    gb_ih = rnn.bias_ih_l0.grad.numpy()
    gb_hh = rnn.bias_hh_l0.grad.numpy()
    u = gU.shape[0]
    if cell == "gru":
        p = _gru_perm(u)
        gW, gU, gb = gW[:, p], gU[:, p], np.stack([gb_ih[p], gb_hh[p]])
    else:
        gb = gb_ih  # b_ih and b_hh enter the same sum: equal gradients
    return [gW, gU, gb, head.weight.grad.numpy().T, head.bias.grad.numpy()]


# ------------------------------------------------------------------ NumPy reference
class NumpyRNN:
    """SimpleRNN / LSTM / GRU(reset_after=True) (last output) -> Dense(1, sigmoid), binary
    cross-entropy, Keras's Adam, in NumPy, as a loop over time steps.

    Keras's layouts and math (tests/reference_rnn.py has the same cells, one line per
    equation, in float64): W (F, G), U (u, G), gates LSTM i, f, c, o; GRU z, r, h, b (2, 3u).
    Everything is kept time-major, (T, n, .), so each step's rows are one contiguous block:

    * forward: the input projection of every step as one matmul Z = X W + b over the (T*n, F)
      rows; per step one matmul h_{t-1} U into a (n, G) buffer, added to Z[t], and the gate
      activations in place (sigmoid as 0.5 + 0.5 tanh(z / 2): no overflow); Z keeps the
      activated gates, H[t] = h_{t-1}, the LSTM's C[t] = c_{t-1} and tanh(c_t), the GRU's
      recurrent candidate term h_{t-1} U_h + b_rh;
    * backward (BPTT): per step in reverse the gate derivatives into DZ[t] and one matmul
      dh_{t-1} = DZ[t] U^T (the GRU: its recurrent side DR[t]); then dW = X^T DZ,
      dU = H^T DZ (DR for the GRU) and db as one product / sum each over every (row, step);
    * the loss: Keras's binary cross-entropy on sigmoid probabilities clipped to
      [1e-7, 1 - 1e-7], averaged over the batch; dL/dlogit = (p - y) / n;
    * Keras's Adam (learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7) on one flat
      buffer holding every parameter (and one holding every gradient).

    Work buffers are allocated once per batch size and reused.
    """

    def __init__(self, cell, seq_len, features, units, learning_rate=1e-3, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-7, seed=0, weights=None, dtype=None):
        import numpy as np

        if cell not in CELLS:
            raise ValueError(f"cell must be one of {CELLS}, got {cell!r}")
        self.np = np
        self.dt = np.dtype(dtype or np.float32)
        self.cell, self.T, self.F, self.u = cell, seq_len, features, units
        self.G = GATES[cell] * units
        self.lr, self.b1, self.b2, self.eps = learning_rate, beta_1, beta_2, epsilon
        w0 = weights if weights is not None else init_weights(cell, features, units, seed)
        shapes = [np.shape(w) for w in w0]
        sizes = [int(np.prod(s)) for s in shapes]
        offs = np.cumsum([0] + sizes)
        self._params = np.zeros(offs[-1], self.dt)
        self._grads = np.zeros_like(self._params)
        self.params = [self._params[a:b].reshape(s) for a, b, s in zip(offs, offs[1:], shapes)]
        self.grads = [self._grads[a:b].reshape(s) for a, b, s in zip(offs, offs[1:], shapes)]
        self.set_weights(w0)
        self._m, self._v, self._tmp = (np.zeros_like(self._params) for _ in range(3))
        self._t = 0
        self._ws = {}

    def get_weights(self):
        return [p.copy() for p in self.params]

    def set_weights(self, weights):
        for p, w in zip(self.params, weights):
            p[...] = self.np.asarray(w, self.dt).reshape(p.shape)

    def _workspace(self, n):
        ws = self._ws.get(n)
        if ws is None:
            np, T, F, u, G, dt = self.np, self.T, self.F, self.u, self.G, self.dt
            ws = {"X": np.empty((T, n, F), dt), "Z": np.empty((T, n, G), dt),
                  "H": np.zeros((T + 1, n, u), dt), "R": np.empty((n, G), dt),
                  "DZ": np.empty((T, n, G), dt), "dh": np.empty((n, u), dt),
                  "dc": np.empty((n, u), dt), "a": np.empty((n, u), dt),
                  "b": np.empty((n, u), dt)}
            if self.cell == "lstm":
                ws["C"] = np.zeros((T + 1, n, u), dt)   # C[t] = c_{t-1}, C[0] = 0
                ws["TC"] = np.empty((T, n, u), dt)      # tanh(c_t)
            if self.cell == "gru":
                ws["RH"] = np.empty((T, n, u), dt)      # h_{t-1} U_h + b_rh
                ws["DR"] = np.empty((T, n, G), dt)      # the recurrent side's gate grads
            if len(self._ws) > 2:
                self._ws.clear()
            self._ws[n] = ws
        return ws

    def _sigmoid(self, z):
        """In place: sigmoid(z) = 0.5 + 0.5 tanh(z / 2)."""
        z *= 0.5
        self.np.tanh(z, out=z)
        z *= 0.5
        z += 0.5

    def _recurrent_forward(self, X):
        """Fills the workspace's H (H[T] = the last output); returns the workspace."""
        np, T, u, cell = self.np, self.T, self.u, self.cell
        W, U, b = self.params[:3]
        X = np.asarray(X)
        n = X.shape[0]
        ws = self._workspace(n)
        Xt, Z, H, R = ws["X"], ws["Z"], ws["H"], ws["R"]
        Xt[...] = X.transpose(1, 0, 2)                      # time-major copy
        np.matmul(Xt.reshape(T * n, -1), W, out=Z.reshape(T * n, -1))  # every step's x W
        Z += b[0] if cell == "gru" else b
        for t in range(T):
            z = Z[t]
            np.matmul(H[t], U, out=R)                        # the step's recurrent product
            if cell == "simple_rnn":
                z += R
                np.tanh(z, out=z)
                H[t + 1] = z
            elif cell == "lstm":
                C, TC = ws["C"], ws["TC"]
                z += R
                self._sigmoid(z[:, :2 * u])                  # i, f
                np.tanh(z[:, 2 * u:3 * u], out=z[:, 2 * u:3 * u])
                self._sigmoid(z[:, 3 * u:])                  # o
                i, f, g, o = z[:, :u], z[:, u:2 * u], z[:, 2 * u:3 * u], z[:, 3 * u:]
                c = C[t + 1]
                np.multiply(f, C[t], out=c)
                np.multiply(i, g, out=ws["a"])
                c += ws["a"]                                 # c_t = f c_{t-1} + i g
                np.tanh(c, out=TC[t])
                np.multiply(o, TC[t], out=H[t + 1])          # h_t = o tanh(c_t)
            else:  # GRU, reset_after=True
                RH = ws["RH"]
                R += b[1]
                z[:, :2 * u] += R[:, :2 * u]
                self._sigmoid(z[:, :2 * u])                  # z, r
                RH[t] = R[:, 2 * u:]
                zz, r, hh = z[:, :u], z[:, u:2 * u], z[:, 2 * u:]
                np.multiply(r, RH[t], out=ws["a"])
                hh += ws["a"]
                np.tanh(hh, out=hh)                          # hh = tanh(x_h + r * r_h)
                h = H[t + 1]
                np.subtract(H[t], hh, out=h)
                h *= zz
                h += hh                                      # h = z h_{t-1} + (1 - z) hh
        return ws

    def _head(self, h):
        Wd, bd = self.params[3:]
        s = h @ Wd
        s += bd
        self._sigmoid(s)
        return s

    def predict(self, X):
        """Sigmoid probabilities (n, 1)."""
        ws = self._recurrent_forward(self.np.asarray(X, self.dt))
        return self._head(ws["H"][self.T])

    def gradients(self, X, Y):
        """Forward + BPTT on a batch: fills self.grads; returns the mean BCE loss."""
        np, T, u, cell = self.np, self.T, self.u, self.cell
        W, U, b, Wd, bd = self.params
        gW, gU, gb, gWd, gbd = self.grads
        X = np.asarray(X, self.dt)
        Y = np.asarray(Y, self.dt).reshape(-1, 1)
        n = X.shape[0]
        ws = self._recurrent_forward(X)
        Xt, Z, H, DZ, dh = ws["X"], ws["Z"], ws["H"], ws["DZ"], ws["dh"]
        p = self._head(H[T])
        pc = np.clip(p, 1e-7, 1 - 1e-7)
        loss = float(-np.mean(Y * np.log(pc) + (1 - Y) * np.log(1 - pc), dtype=np.float64))
        d = p - Y
        d *= self.dt.type(1.0 / n)                           # d(mean BCE)/d(logit)
        np.dot(H[T].T, d, out=gWd)
        np.sum(d, axis=0, out=gbd)
        np.matmul(d, Wd.T, out=dh)
        a, tmp = ws["a"], ws["b"]
        if cell == "lstm":
            C, TC, dc = ws["C"], ws["TC"], ws["dc"]
            dc.fill(0)
        for t in range(T - 1, -1, -1):
            z, dz = Z[t], DZ[t]
            if cell == "simple_rnn":
                np.multiply(H[t + 1], H[t + 1], out=a)
                np.subtract(1, a, out=a)
                np.multiply(dh, a, out=dz)                   # dh (1 - h^2)
            elif cell == "lstm":
                i, f, g, o = z[:, :u], z[:, u:2 * u], z[:, 2 * u:3 * u], z[:, 3 * u:]
                tc = TC[t]
                # do = dh tanh(c) o (1 - o)
                np.multiply(dh, tc, out=a)
                np.subtract(1, o, out=tmp)
                tmp *= o
                np.multiply(a, tmp, out=dz[:, 3 * u:])
                # dc += dh o (1 - tanh(c)^2)
                np.multiply(tc, tc, out=a)
                np.subtract(1, a, out=a)
                a *= o
                a *= dh
                dc += a
                # di = dc g i (1 - i)
                np.subtract(1, i, out=tmp)
                tmp *= i
                tmp *= g
                np.multiply(dc, tmp, out=dz[:, :u])
                # df = dc c_{t-1} f (1 - f)
                np.subtract(1, f, out=tmp)
                tmp *= f
                tmp *= C[t]
                np.multiply(dc, tmp, out=dz[:, u:2 * u])
                # dg = dc i (1 - g^2)
                np.multiply(g, g, out=tmp)
                np.subtract(1, tmp, out=tmp)
                tmp *= i
                np.multiply(dc, tmp, out=dz[:, 2 * u:3 * u])
                dc *= f                                      # dc_{t-1}
            else:  # GRU
                DR, RH = ws["DR"], ws["RH"]
                dr_ = DR[t]
                zz, r, hh = z[:, :u], z[:, u:2 * u], z[:, 2 * u:]
                # dah = dh (1 - z) (1 - hh^2): the candidate's pre-activation
                np.multiply(hh, hh, out=a)
                np.subtract(1, a, out=a)
                np.subtract(1, zz, out=tmp)
                a *= tmp
                np.multiply(dh, a, out=dz[:, 2 * u:])        # input side: d x_h
                np.multiply(dz[:, 2 * u:], r, out=dr_[:, 2 * u:])  # recurrent side: d r_h
                # dr = dah r_h r (1 - r)
                np.subtract(1, r, out=tmp)
                tmp *= r
                tmp *= RH[t]
                np.multiply(dz[:, 2 * u:], tmp, out=dz[:, u:2 * u])
                # dz = dh (h_{t-1} - hh) z (1 - z)
                np.subtract(H[t], hh, out=a)
                np.subtract(1, zz, out=tmp)
                tmp *= zz
                a *= tmp
                np.multiply(dh, a, out=dz[:, :u])
                dr_[:, :2 * u] = dz[:, :2 * u]
                dh *= zz                                     # the direct path z h_{t-1}
            if t > 0:                                        # dh_{t-1} (h_{-1} is no parameter)
                if cell == "gru":
                    dh += ws["DR"][t] @ U.T
                else:
                    np.matmul(dz, U.T, out=dh)
        rows = T * n
        np.dot(Xt.reshape(rows, -1).T, DZ.reshape(rows, -1), out=gW)
        DRec = ws["DR"] if cell == "gru" else DZ
        np.dot(H[:T].reshape(rows, -1).T, DRec.reshape(rows, -1), out=gU)
        if cell == "gru":
            np.sum(DZ.reshape(rows, -1), axis=0, out=gb[0])
            np.sum(DRec.reshape(rows, -1), axis=0, out=gb[1])
        else:
            np.sum(DZ.reshape(rows, -1), axis=0, out=gb)
        return loss

    def adam(self):
        """One Keras Adam step from self.grads."""
        self._t += 1
        keras_adam(self.np, self._params, self._grads, self._m, self._v, self._tmp, self._t,
                   self.lr, self.b1, self.b2, self.eps, self.dt.type)

    def train_step(self, X, Y):
        """Forward, BPTT and one Adam step on a batch; returns the batch's mean loss."""
        loss = self.gradients(X, Y)
        self.adam()
        return loss


# ------------------------------------------------------------------ the check
def _torch_loss_grads(cell, weights, X, Y):
    """Loss and gradients (Keras layouts) of the same model by PyTorch autograd, float64."""
    import torch
    from torch import nn

    T, F = X.shape[1:]
    u = weights[1].shape[0]
    rnn = {"lstm": nn.LSTM, "simple_rnn": nn.RNN, "gru": nn.GRU}[cell](
        F, u, batch_first=True).double()
    head = nn.Linear(u, 1).double()
    keras_to_torch(cell, weights, rnn, head)
    out, _ = rnn(torch.tensor(X, dtype=torch.float64))
    logit = head(out[:, -1])
    loss = nn.BCEWithLogitsLoss()(logit, torch.tensor(Y, dtype=torch.float64).reshape(-1, 1))
    loss.backward()
    return float(loss.detach()), torch_grads_to_keras(cell, rnn, head)


def _keras_step(cell, weights, X, Y):
    """Weights after one Keras 3 train_on_batch (Adam, BCE) from `weights`; None without Keras."""
    import numpy as np
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    L = keras.layers
    rnn = {"lstm": L.LSTM, "simple_rnn": L.SimpleRNN, "gru": L.GRU}[cell]
    model = keras.Sequential([keras.Input(X.shape[1:]), rnn(weights[1].shape[0]),
                              L.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy")
    model.set_weights(weights)
    model.train_on_batch(X, Y)
    return [np.asarray(w) for w in model.get_weights()], keras.backend.backend()


def check(T=7, F=3, u=5, n=4, seed=0, verbose=True):
    """Loss and gradients of NumpyRNN (float64 and float32) vs PyTorch autograd (float64) on a
    tiny batch with the same (non-zero-bias) weights, for every cell, and one float32 train
    step's weights vs Keras's train_on_batch. Returns True if everything agrees."""
    import numpy as np

    ok = True
    names = ["kernel W", "recurrent U", "bias b", "dense kernel", "dense bias"]
    for cell in CELLS:
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((n, T, F))
        Y = rng.integers(0, 2, (n, 1)).astype(np.float64)
        w0 = init_weights(cell, F, u, seed, dtype=np.float64)
        w0[2] = w0[2] + rng.uniform(-0.2, 0.2, w0[2].shape)   # non-zero biases
        w0[4] = w0[4] + 0.1
        t_loss, t_grads = _torch_loss_grads(cell, w0, X, Y)
        if verbose:
            print(f"{CELL_TITLES[cell]}({u}), T={T}, F={F}, batch {n}: torch loss {t_loss:.9f}")
        for dtype, tol in ((np.float64, 1e-10), (np.float32, 1e-4)):
            net = NumpyRNN(cell, T, F, u, weights=w0, dtype=dtype)
            loss = net.gradients(X.astype(dtype), Y.astype(dtype))
            lerr = abs(loss - t_loss) / max(1.0, abs(t_loss))
            good = lerr < tol
            worst = 0.0
            for name, g, tg in zip(names, net.grads, t_grads):
                err = float(np.max(np.abs(g - tg)) / max(np.max(np.abs(tg)), 1e-30))
                worst = max(worst, err)
                good &= err < tol and g.shape == tg.shape
            ok &= good
            if verbose:
                print(f"  numpy {np.dtype(dtype).name}: |loss - torch| = {lerr:.1e}, max over "
                      f"params of max|grad - torch| / max|torch| = {worst:.1e} "
                      f"(tol {tol:g}) {'ok' if good else 'MISMATCH'}")
                if not good:
                    for name, g, tg in zip(names, net.grads, t_grads):
                        err = float(np.max(np.abs(g - tg)) / max(np.max(np.abs(tg)), 1e-30))
                        print(f"    d {name:<13} {str(g.shape):<10} {err:.2e}")
        # one float32 Adam step vs Keras
        w32 = [w.astype(np.float32) for w in w0]
        net = NumpyRNN(cell, T, F, u, weights=w32)
        net.train_step(X.astype(np.float32), Y.astype(np.float32))
        ks = _keras_step(cell, w32, X.astype(np.float32), Y.astype(np.float32))
        if ks is None:
            if verbose:
                print("  Keras not installed: one-step Adam comparison skipped")
            continue
        k_w, backend = ks
        err = max(float(np.max(np.abs((w - a) - (kw - a))))
                  for w, kw, a in zip(net.params, k_w, w32))
        good = err < 2e-5                               # lr = 1e-3: < 2% of a step
        ok &= good
        if verbose:
            print(f"  one Adam step vs Keras {backend} train_on_batch: max |weight change "
                  f"difference| = {err:.2e} (step size ~1e-3) {'ok' if good else 'MISMATCH'}")
    if verbose:
        print("gradient check:", "PASSED" if ok else "FAILED")
    return bool(ok)


# ------------------------------------------------------------------ step workers
def data(shape, steps, seed=0):
    import numpy as np

    T, F, _, batch = shape
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((batch * steps, T, F)).astype(np.float32)
    Y = rng.integers(0, 2, (batch * steps, 1)).astype(np.float32)
    return X, Y, batch


def run_neuraxis(cell, shape, steps, repeat):
    import numpy as np

    import neuraxis
    from neuraxis import _core

    T, F, u, _ = shape
    X, Y, batch = data(shape, steps)
    specs = [{"kind": cell, "units": u}, {"kind": "dense", "units": 1, "activation": "logistic"}]
    net = _core.Network32([T, F], specs, "binary_crossentropy", "batch_size")
    params = init_weights(cell, F, u, seed=1)
    if [tuple(p.shape) for p in params] != [tuple(s) for s in net.param_shapes]:
        raise RuntimeError(f"param shapes {net.param_shapes} != Keras's "
                           f"{[p.shape for p in params]}")
    opt = _core.OptConfig()
    m = [np.zeros_like(p) for p in params]
    v = [np.zeros_like(p) for p in params]

    def step(i):
        net.train_batches(params, opt, m, v, X, Y, None, None, batch, i, 1, [], 0)

    def infer(i):
        net.predict(params, X[i * batch:(i + 1) * batch])

    return {"train_step_s": timed(step, steps, repeat),
            "predict_batch_s": timed(infer, steps, repeat),
            "threads": neuraxis.get_num_threads(), "version": neuraxis.__version__}


def _gemm_rates(torch, shape, repeat):
    """GFLOP/s of torch.mm (float32, this process's threads) on the step's product shapes."""
    T, F, u, n = shape
    G = 4 * u
    out = {}
    for name, (a, k, b) in (("all_steps", (n * T, F + u, G)), ("one_step", (n, u, G))):
        A, B = torch.randn(a, k), torch.randn(k, b)
        C = torch.empty(a, b)
        reps = max(3, int(2e9 / (2 * a * k * b)))  # ~2 GFLOP a measure
        torch.mm(A, B, out=C)
        best = float("inf")
        for _ in range(max(repeat, 3)):
            t0 = time.perf_counter()
            for _ in range(reps):
                torch.mm(A, B, out=C)
            best = min(best, (time.perf_counter() - t0) / reps)
        out[name] = {"shape": [a, k, b], "s": best, "gflops": 2 * a * k * b / best / 1e9}
    return out


def run_torch(cell, shape, steps, repeat, threads, gemm=False):
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    T, F, u, _ = shape
    X, Y, batch = data(shape, steps)
    rnn = {"lstm": nn.LSTM, "simple_rnn": nn.RNN, "gru": nn.GRU}[cell](F, u, batch_first=True)
    head = nn.Linear(u, 1)
    keras_to_torch(cell, init_weights(cell, F, u, seed=1), rnn, head)
    params = list(rnn.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params)
    xt, yt = torch.tensor(X), torch.tensor(Y)
    loss = nn.BCEWithLogitsLoss()

    def logits(x):
        out, _ = rnn(x)
        return head(out[:, -1])

    def step(i):
        opt.zero_grad()
        loss(logits(xt[i * batch:(i + 1) * batch]), yt[i * batch:(i + 1) * batch]).backward()
        opt.step()

    def infer(i):
        with torch.no_grad():
            torch.sigmoid(logits(xt[i * batch:(i + 1) * batch]))

    res = {"train_step_s": timed(step, steps, repeat),
           "predict_batch_s": timed(infer, steps, repeat),
           "threads": torch.get_num_threads(), "version": torch.__version__}
    if gemm:
        res["gemm"] = _gemm_rates(torch, shape, repeat)
    return res


def run_numpy(cell, shape, steps, repeat, threads):
    import numpy as np

    limiter = None
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
        if threads:
            limiter = threadpool_limits(limits=threads)
        blas = [f"{p['internal_api']} {p['version']} num_threads={p['num_threads']}"
                for p in threadpool_info() if p["user_api"] == "blas"]
    except ImportError:
        blas = ["threadpoolctl not installed: BLAS threads not limited"]
    T, F, u, _ = shape
    X, Y, batch = data(shape, steps)
    net = NumpyRNN(cell, T, F, u, weights=init_weights(cell, F, u, seed=1))

    def step(i):
        net.train_step(X[i * batch:(i + 1) * batch], Y[i * batch:(i + 1) * batch])

    def infer(i):
        net.predict(X[i * batch:(i + 1) * batch])

    res = {"train_step_s": timed(step, steps, repeat),
           "predict_batch_s": timed(infer, steps, repeat), "threads": threads,
           "version": np.__version__, "blas": blas}
    if limiter is not None:
        limiter.restore_original_limits()
    return res


# --------------------------------------------------------------- model.fit workers
def fit_data(sequences, shape=SMALL):
    import numpy as np

    T, F, _, batch = shape
    rng = np.random.default_rng(0)
    X = rng.standard_normal((sequences, T, F)).astype(np.float32)
    Y = rng.integers(0, 2, (sequences, 1)).astype(np.float32)
    return X, Y, batch


def lecture_model(Sequential, L, cell, input_shape, units):
    """The lecture code; `Sequential` and the layer module `L` are Keras's or neuraxis's."""
    RNN = {"lstm": L.LSTM, "simple_rnn": L.SimpleRNN, "gru": L.GRU}[cell]
    model = Sequential([L.Input(input_shape), RNN(units), L.Dense(1, activation="sigmoid")])
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    return model


def run_fit(kind, cell, sequences, epochs, threads):
    """model.fit(epochs) of the lecture code with an epoch clock."""
    info = {}
    Sequential, L, Callback = fit_front(kind, threads, info)
    T, F, u, _ = SMALL
    X, Y, batch = fit_data(sequences)
    model = lecture_model(Sequential, L, cell, (T, F), u)
    return clocked_fit(model, Callback, X, Y, batch, epochs, dict(info, sequences=sequences))


# ------------------------------------------------------------------------ runner
def versions_line(results):
    """One entry per library (its first result that ran), errors per (table, cell)."""
    parts, seen = [], set()
    for table in ("step", "big", "fit"):
        for cell, libs in results.get(table, {}).items():
            for lib, r in libs.items():
                if "error" in r:
                    parts.append(f"{lib} ({table} {cell}): ERROR {r['error']}")
                    continue
                if lib in seen:
                    continue
                seen.add(lib)
                v = f"{lib}: {r.get('version')}"
                if r.get("torch") or r.get("jax"):
                    v += f" (torch {r['torch']})" if r.get("torch") else f" (jax {r['jax']})"
                if r.get("blas"):
                    v += f" ({'; '.join(r['blas'])})"
                if lib == "keras-jax" and r.get("python"):
                    v += f" [{r['python']}]"
                parts.append(v + f", threads {r.get('threads')}")
    return "; ".join(parts)


def step_table(step, kinds, shape, big=False):
    """step: {cell: {lib: result}}; rows per cell: train step, predict batch, GFLOP/s."""
    T, F, u, n = shape
    libs = [lib for lib in kinds if any(lib in r for r in step.values())]
    others = [lib for lib in libs if lib != "neuraxis"]
    head = ["measure"] + [TITLES[lib] for lib in libs] + [f"{lib}/neuraxis" for lib in others]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell, res in step.items():
        name = f"{CELL_TITLES[cell]}({u})"
        nx = res.get("neuraxis", {})
        for key, title in (("train_step_s", "train step"), ("predict_batch_s", "predict batch")):
            row = [f"{name} {title}"] + [cell_ms(res.get(lib, {}), key, 2) for lib in libs]
            row += [ratio(res.get(lib, {}).get(key), nx.get(key)) for lib in others]
            lines.append("| " + " | ".join(row) + " |")
        rate_rows = [("train_step_s", "train step", step_flops(cell, T, F, u, n))]
        if big:
            rate_rows.append(("predict_batch_s", "predict batch",
                              forward_flops(cell, T, F, u, n)))
        for key, title, fl in rate_rows:
            row = [f"{name} {title} GFLOP/s ({fl / 1e9:.3f} GFLOP)"]
            for lib in libs:
                t = res.get(lib, {}).get(key)
                row.append(f"{fl / t / 1e9:.1f}" if t else "n/a")
            lines.append("| " + " | ".join(row + [""] * len(others)) + " |")
    return "\n".join(lines)


def fit_table(fit):
    libs = [lib for lib in FIT_KINDS if any(lib in r for r in fit.values())]
    kerases = [lib for lib in libs if lib != "neuraxis-fit"]
    head = (["model.fit epoch"] + [TITLES[lib] for lib in libs]
            + [f"{TITLES[lib]}/neuraxis" for lib in kerases] + ["faster Keras/neuraxis"])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for cell, res in fit.items():
        nx = res.get("neuraxis-fit", {})
        for key, title in (("best_epoch_s", "best epoch (2..E)"), ("epoch1_s", "epoch 1")):
            row = [f"{CELL_TITLES[cell]}({SMALL[2]}) {title}"]
            row += [cell_ms(res.get(lib, {}), key, 2) for lib in libs]
            row += [ratio(res.get(lib, {}).get(key), nx.get(key)) for lib in kerases]
            times = [res[lib].get(key) for lib in kerases if res.get(lib, {}).get(key)]
            row.append(ratio(min(times), nx.get(key)) if times else "n/a")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cell", choices=CELLS + ("all",), default="all",
                    help="which recurrent layer(s) (default all)")
    ap.add_argument("--steps", type=int, default=10, help="steps per repeat (step tables)")
    ap.add_argument("--repeat", type=int, default=3, help="repeats; the fastest is reported")
    ap.add_argument("--only", choices=("step", "fit", "big"), help="run one table only")
    ap.add_argument("--big", action="store_true",
                    help="also the LSTM(256), length 50, 64 features row (neuraxis vs PyTorch)")
    ap.add_argument("--epochs", type=int, default=3, help="model.fit epochs (>= 2; default 3)")
    ap.add_argument("--sequences", type=int, default=2048, help="model.fit sequences (2048)")
    ap.add_argument("--keras-python", default=sys.executable, metavar="PATH",
                    help="the Python that runs the Keras-JAX worker (needs jax and keras)")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per worker")
    ap.add_argument("--json", metavar="PATH", help="write all results to PATH")
    ap.add_argument("--check", action="store_true",
                    help="check the NumPy reference's gradients against torch autograd")
    ap.add_argument("--worker", choices=STEP_KINDS + FIT_KINDS, help=argparse.SUPPRESS)
    ap.add_argument("--worker-cell", choices=CELLS, help=argparse.SUPPRESS)
    ap.add_argument("--worker-big", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.check:
        return 0 if check() else 1
    if args.worker:
        cell, shape = args.worker_cell, BIG if args.worker_big else SMALL
        if args.worker == "neuraxis":
            out = run_neuraxis(cell, shape, args.steps, args.repeat)
        elif args.worker == "torch":
            out = run_torch(cell, shape, args.steps, args.repeat, args.threads,
                            gemm=args.worker_big)
        elif args.worker == "numpy":
            out = run_numpy(cell, shape, args.steps, args.repeat, args.threads)
        else:
            out = run_fit(args.worker, cell, args.sequences, args.epochs, args.threads)
        sys.stdout.flush()
        print("\n" + json.dumps(out), flush=True)  # the last line of stdout is the result
        return 0
    if args.epochs < 2 and args.only in (None, "fit"):
        ap.error("--epochs must be >= 2 (epoch 1 is reported apart)")
    cells = CELLS if args.cell == "all" else (args.cell,)
    do_step = args.only in (None, "step")
    do_fit = args.only in (None, "fit")
    do_big = args.big or args.only == "big"

    def worker(lib, cell, threads=0, big=False):
        python = args.keras_python if lib == "keras-jax" else sys.executable
        cmd = [python, os.path.abspath(__file__), "--worker", lib, "--worker-cell", cell,
               "--steps", str(args.steps), "--repeat", str(args.repeat), "--threads",
               str(threads), "--epochs", str(args.epochs), "--sequences", str(args.sequences)]
        if big:
            cmd.append("--worker-big")
        updates = {}
        if lib in ("torch", "keras-torch", "keras-jax"):
            updates.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
        if lib in KERAS_BACKENDS:
            updates["KERAS_BACKEND"] = KERAS_BACKENDS[lib]
        try:
            out = subprocess.run(cmd, env=_benchenv.child_env(updates), capture_output=True,
                                 text=True, timeout=args.timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {args.timeout:.0f} s"}
        except OSError as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
        lines = out.stdout.strip().splitlines()
        if out.returncode != 0 or not lines:
            return {"error": (out.stderr.strip().splitlines() or ["failed"])[-1][:200],
                    "stderr_tail": out.stderr[-4000:]}
        return json.loads(lines[-1])

    T, F, u, batch = SMALL
    m = machine()
    print(f"# recurrent layers ({', '.join(CELL_TITLES[c] for c in cells)}); "
          f"{_benchenv.describe()}")
    busy = m["loadavg_1min_at_start"] is not None and \
        m["loadavg_1min_at_start"] > 0.5 * (m["usable_cpus"] or 1)
    print(f"# machine: {m['cpu']}, {m['usable_cpus']} usable CPUs, load "
          f"{m['loadavg_1min_at_start']:.2f} at start"
          + ("  WARNING: the machine is busy, timings will be noisy" if busy else ""))
    results = {"machine": m,
               "config": {"cells": list(cells), "seq_len": T, "features": F, "units": u,
                          "batch": batch, "steps": args.steps, "repeat": args.repeat,
                          "fit_sequences": args.sequences, "epochs": args.epochs,
                          "big": dict(zip(("seq_len", "features", "units", "batch"), BIG))
                          if do_big else None,
                          "keras_python": args.keras_python},
               "env": _benchenv.describe(),
               "train_step_flops": {c: step_flops(c, T, F, u, batch) for c in cells},
               "predict_batch_flops": {c: forward_flops(c, T, F, u, batch) for c in cells}}
    threads = None

    def neuraxis_threads(r):
        return r.get("threads") or len(os.sched_getaffinity(0))

    if do_step:
        step = {}
        for cell in cells:
            res = {"neuraxis": worker("neuraxis", cell)}
            threads = threads or neuraxis_threads(res["neuraxis"])
            res["torch"] = worker("torch", cell, threads)
            res["numpy"] = worker("numpy", cell, threads)
            step[cell] = res
        results["step"] = step
        print(f"\n## one training step / inference batch: sequences of length {T}, {F} "
              f"feature, batch {batch}; threads {threads}; min over {args.repeat} repeats of "
              f"the mean of {args.steps} steps")
        print(step_table(step, STEP_KINDS, SMALL))
    if do_big:
        bT, bF, bu, bn = BIG
        res = {"neuraxis": worker("neuraxis", "lstm", big=True)}
        threads = threads or neuraxis_threads(res["neuraxis"])
        res["torch"] = worker("torch", "lstm", threads, big=True)
        results["big"] = {"lstm": res}
        results["big_train_step_flops"] = step_flops("lstm", bT, bF, bu, bn)
        results["big_predict_batch_flops"] = forward_flops("lstm", bT, bF, bu, bn)
        print(f"\n## big: LSTM({bu}) on sequences of length {bT}, {bF} features, batch {bn}; "
              f"threads {threads}; min over {args.repeat} repeats of the mean of "
              f"{args.steps} steps")
        print(step_table({"lstm": res}, BIG_KINDS, BIG, big=True))
        g = res["torch"].get("gemm")
        if g:
            print("  machine GEMM rate, torch.mm float32 at the same threads: " + "; ".join(
                f"({a}x{k})x({k}x{b}) {g[name]['gflops']:.1f} GFLOP/s ({label})"
                for name, label in (("all_steps", "every step's x W and h U as one product"),
                                    ("one_step", "one step's h U"))
                for a, k, b in [g[name]["shape"]]))
    if do_fit:
        fit = {}
        for cell in cells:
            res = {"neuraxis-fit": worker("neuraxis-fit", cell)}
            threads = threads or neuraxis_threads(res["neuraxis-fit"])
            for lib in ("keras-torch", "keras-jax"):
                res[lib] = worker(lib, cell, threads)
            fit[cell] = res
        results["fit"] = fit
        print(f"\n## model.fit: {args.sequences} sequences of length {T}, batch {batch}, "
              f"{args.epochs} epochs, verbose=0; threads {threads}")
        print(fit_table(fit))
        for cell, res in fit.items():
            for lib in FIT_KINDS:
                e = res.get(lib, {}).get("epoch_s")
                if e:
                    print(f"  {CELL_TITLES[cell]:<9} {TITLES[lib]:<12} epochs: "
                          + ", ".join(f"{t * 1e3:.0f} ms" for t in e))
    print("\nworkers: " + versions_line(results))
    if args.json:
        _benchenv.write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
