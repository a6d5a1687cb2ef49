"""Plain NumPy reference of the lecture CNN's training step ("NumPy ref" in bench/cnn_bench.py).

The model (issue 7), float32, NHWC, exactly what Keras 3 trains for

    Sequential([Input((H, W, C)), Conv2D(32, 3, activation="relu"), MaxPooling2D(2),
                Conv2D(64, 3, activation="relu"), MaxPooling2D(2), Flatten(),
                Dense(128, activation="relu"), Dense(10, activation="softmax")])
    compile(optimizer="adam", loss="categorical_crossentropy")

written directly on NumPy arrays with no Python loop over images or pixels:

* Conv2D ('valid', stride 1): im2col over the whole batch -- the KH*KW shifted
  slices of the input copied into one (N*Ho*Wo, KH*KW*Cin) matrix, ordered like
  Keras's (KH, KW, Cin, Cout) kernel -- then one big ``col @ W``; bias and relu in
  place. Backward: ``dW = col.T @ dz``, ``db = sum(dz)``, ``dcol = dz @ W.T`` and
  col2im by adding the KH*KW shifted slices of dcol into dx (conv1 has no dx).
* MaxPooling2D(2) ('valid'): the input cropped to even height/width (as Keras
  drops the last row/column of an odd size), reshaped to (N, Ho, 2, Wo, 2, C) and
  reduced with max; the backward routes each gradient to the window's arg-max
  (the first maximum in row-major order on ties, like PyTorch's kernel and so
  Keras's torch backend), through a boolean mask kept from the forward pass.
* Flatten in NHWC order (Keras's), Dense, relu, softmax and the categorical
  cross-entropy averaged over the batch (probabilities clipped to [1e-7, 1-1e-7]
  for the loss value; the gradient with respect to the logits is (P - Y) / n).
* Keras's Adam (learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7):
  ``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)``,
  ``w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps)``, on one flat
  float32 buffer holding every parameter (and one holding every gradient).
* Glorot-uniform kernels (conv fans: KH*KW*Cin and KH*KW*Cout), zero biases.

Work buffers (the im2col matrices, the pooling masks) are allocated once per
batch size and reused, so a step allocates little besides NumPy temporaries.

    python bench/numpy_cnn.py --check     # gradients vs PyTorch autograd, one step vs Keras
    python bench/numpy_cnn.py             # time a W3 step (64x64x3, batch 32)
    python bench/numpy_cnn.py --mnist     # time a W6 step (28x28x1, batch 128)
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _benchlib import keras_adam  # noqa: E402

__all__ = ["NumpyCNN", "param_shapes", "step_flops", "check"]

F32 = np.float32


def _conv_out(h, k):
    return h - k + 1


def layer_dims(input_shape, k=3, filters=(32, 64), units=128, n_out=10):
    """Spatial sizes: [(H, W, C) of conv1 in, conv1 out, pool1 out, conv2 out, pool2 out]."""
    h, w, c = input_shape
    h1, w1 = _conv_out(h, k), _conv_out(w, k)
    p1h, p1w = h1 // 2, w1 // 2
    h2, w2 = _conv_out(p1h, k), _conv_out(p1w, k)
    p2h, p2w = h2 // 2, w2 // 2
    return [(h, w, c), (h1, w1, filters[0]), (p1h, p1w, filters[0]), (h2, w2, filters[1]),
            (p2h, p2w, filters[1])]


def param_shapes(input_shape, k=3, filters=(32, 64), units=128, n_out=10):
    """Keras's weight shapes, in model.get_weights() order."""
    dims = layer_dims(input_shape, k, filters, units, n_out)
    c = input_shape[2]
    flat = int(np.prod(dims[4]))
    return [(k, k, c, filters[0]), (filters[0],), (k, k, filters[0], filters[1]), (filters[1],),
            (flat, units), (units,), (units, n_out), (n_out,)]


def step_flops(input_shape, batch, k=3, filters=(32, 64), units=128, n_out=10):
    """FLOPs of one training step's matrix products, counted analytically.

    2 * multiply-adds of the forward product and of both backward products (dW and
    dx) of every conv and dense layer; conv1 has no dx product (it is the first
    layer). Bias adds, activations, pooling, softmax and Adam are not counted."""
    dims = layer_dims(input_shape, k, filters, units, n_out)
    (_, _, c0), (h1, w1, c1), (_, _, _), (h2, w2, c2), p2 = dims
    conv1 = batch * h1 * w1 * k * k * c0 * c1
    conv2 = batch * h2 * w2 * k * k * c1 * c2
    dense1 = batch * int(np.prod(p2)) * units
    dense2 = batch * units * n_out
    return 2 * (2 * conv1 + 3 * conv2 + 3 * dense1 + 3 * dense2)


def forward_flops(input_shape, batch, k=3, filters=(32, 64), units=128, n_out=10):
    """FLOPs of an inference batch's matrix products (2 * forward multiply-adds)."""
    dims = layer_dims(input_shape, k, filters, units, n_out)
    (_, _, c0), (h1, w1, c1), (_, _, _), (h2, w2, c2), p2 = dims
    return 2 * (batch * h1 * w1 * k * k * c0 * c1 + batch * h2 * w2 * k * k * c1 * c2
                + batch * int(np.prod(p2)) * units + batch * units * n_out)


# ------------------------------------------------------------------ the layers
def im2col(x, k, out=None):
    """(N, H, W, C) -> (N, Ho, Wo, k, k, C) patches (a copy, C-contiguous), 'valid', stride 1.

    Row (n, i, j) of the (N*Ho*Wo, k*k*C) reshape is the patch in (kh, kw, c) order,
    matching a Keras kernel (k, k, C, F) reshaped to (k*k*C, F)."""
    n, h, w, c = x.shape
    ho, wo = h - k + 1, w - k + 1
    if out is None:
        out = np.empty((n, ho, wo, k, k, c), x.dtype)
    for di in range(k):          # k*k whole-batch slice copies, no loop over pixels
        for dj in range(k):
            out[:, :, :, di, dj, :] = x[:, di:di + ho, dj:dj + wo, :]
    return out


def col2im(dcol, x_shape, out=None):
    """Adjoint of im2col: (N, Ho, Wo, k, k, C) -> (N, H, W, C), adding the shifted slices."""
    n, ho, wo, k, _, c = dcol.shape
    if out is None:
        out = np.zeros(x_shape, dcol.dtype)
    else:
        out.fill(0)
    for di in range(k):
        for dj in range(k):
            out[:, di:di + ho, dj:dj + wo, :] += dcol[:, :, :, di, dj, :]
    return out


def maxpool2_forward(y, mask=None, out=None):
    """2x2 'valid' max pooling of (N, H, W, C); odd H/W cropped as Keras does.

    Returns (pooled, mask): mask (N, Ho, 2, Wo, 2, C) bool marks the first arg-max
    (row-major, as PyTorch's kernel picks it) of each window."""
    n, h, w, c = y.shape
    ho, wo = h // 2, w // 2
    r = y[:, :2 * ho, :2 * wo, :].reshape(n, ho, 2, wo, 2, c)     # a view
    corners = [r[:, :, i, :, j, :] for i in (0, 1) for j in (0, 1)]
    if out is None:
        out = np.empty((n, ho, wo, c), y.dtype)
    np.maximum(corners[0], corners[1], out=out)
    np.maximum(out, corners[2], out=out)
    np.maximum(out, corners[3], out=out)
    if mask is None:
        mask = np.empty(r.shape, bool)
    ms = [mask[:, :, i, :, j, :] for i in (0, 1) for j in (0, 1)]
    np.equal(corners[0], out, out=ms[0])
    taken = ms[0].copy()
    for k in (1, 2, 3):   # the first maximum only (ties: equal values, e.g. relu's zeros)
        np.equal(corners[k], out, out=ms[k])
        ms[k] &= ~taken
        if k != 3:
            taken |= ms[k]
    return out, mask


def maxpool2_backward(dp, mask, y_shape, out=None):
    """Gradient of maxpool2_forward: dp (N, Ho, Wo, C) -> (N, H, W, C)."""
    n, ho, _, wo, _, c = mask.shape
    if out is None:
        out = np.empty(y_shape, dp.dtype)
    h, w = y_shape[1], y_shape[2]
    if h != 2 * ho:
        out[:, 2 * ho:, :, :] = 0
    if w != 2 * wo:
        out[:, :, 2 * wo:, :] = 0
    # splitting H and W into (Ho, 2) and (Wo, 2) is a view even of the cropped region
    view = out[:, :2 * ho, :2 * wo, :].reshape(n, ho, 2, wo, 2, c)
    assert np.shares_memory(view, out)
    np.multiply(mask, dp[:, :, None, :, None, :], out=view)
    return out


# ------------------------------------------------------------------ the model
class NumpyCNN:
    """The lecture CNN, trained like Keras 3 (Adam, categorical cross-entropy), in NumPy."""

    def __init__(self, input_shape, k=3, filters=(32, 64), units=128, n_out=10,
                 learning_rate=1e-3, beta_1=0.9, beta_2=0.999, epsilon=1e-7, seed=0,
                 weights=None):
        self.input_shape = tuple(input_shape)
        self.k, self.n_out = k, n_out
        self.lr, self.b1, self.b2, self.eps = learning_rate, beta_1, beta_2, epsilon
        self.dims = layer_dims(self.input_shape, k, filters, units, n_out)
        shapes = param_shapes(self.input_shape, k, filters, units, n_out)
        sizes = [int(np.prod(s)) for s in shapes]
        offs = np.cumsum([0] + sizes)
        self._params = np.zeros(offs[-1], F32)
        self._grads = np.zeros_like(self._params)
        self.params = [self._params[a:b].reshape(s) for a, b, s in zip(offs, offs[1:], shapes)]
        self.grads = [self._grads[a:b].reshape(s) for a, b, s in zip(offs, offs[1:], shapes)]
        rng = np.random.default_rng(seed)
        if weights is not None:
            self.set_weights(weights)
        else:
            for W in self.params[0::2]:  # Glorot uniform, Keras's fans; biases stay zero
                recept = int(np.prod(W.shape[:-2]))
                lim = np.sqrt(6.0 / (recept * (W.shape[-2] + W.shape[-1])))
                W[...] = rng.uniform(-lim, lim, W.shape)
        self._m, self._v, self._tmp = (np.zeros_like(self._params) for _ in range(3))
        self._t = 0
        self._ws = {}

    def get_weights(self):
        return [p.copy() for p in self.params]

    def set_weights(self, weights):
        for p, w in zip(self.params, weights):
            p[...] = np.asarray(w, F32).reshape(p.shape)

    def _workspace(self, n):
        """Buffers for a batch of n, allocated once (the last, smaller batch of an epoch
        gets its own set)."""
        ws = self._ws.get(n)
        if ws is None:
            (h, w, c), (h1, w1, c1), (p1h, p1w, _), (h2, w2, c2), (p2h, p2w, _) = self.dims
            k = self.k
            ws = {"col1": np.empty((n, h1, w1, k, k, c), F32),
                  "y1": np.empty((n * h1 * w1, c1), F32),
                  "p1": np.empty((n, p1h, p1w, c1), F32),
                  "mask1": np.empty((n, h1 // 2, 2, w1 // 2, 2, c1), bool),
                  "col2": np.empty((n, h2, w2, k, k, c1), F32),
                  "y2": np.empty((n * h2 * w2, c2), F32),
                  "p2": np.empty((n, p2h, p2w, c2), F32),
                  "mask2": np.empty((n, h2 // 2, 2, w2 // 2, 2, c2), bool),
                  "dcol2": np.empty((n, h2, w2, k, k, c1), F32),
                  "dp1": np.empty((n, p1h, p1w, c1), F32),
                  "dy1": np.empty((n, h1, w1, c1), F32),
                  "dy2": np.empty((n, h2, w2, c2), F32)}
            if len(self._ws) > 2:
                self._ws.clear()
            self._ws[n] = ws
        return ws

    def _conv_relu(self, x, W, b, col, y):
        """relu(conv(x) + b) into y (N*Ho*Wo, F); returns it as (N, Ho, Wo, F)."""
        im2col(x, self.k, out=col)
        kk = col.shape[3] * col.shape[4] * col.shape[5]
        np.matmul(col.reshape(-1, kk), W.reshape(kk, -1), out=y)
        y += b
        np.maximum(y, 0, out=y)                        # relu in place
        return y.reshape(col.shape[:3] + (y.shape[1],))

    def forward(self, X, ws=None):
        """Forward pass; returns the activations the backward pass needs and P."""
        W1, b1, W2, b2, W3, b3, W4, b4 = self.params
        n = X.shape[0]
        ws = ws or self._workspace(n)
        y1 = self._conv_relu(X, W1, b1, ws["col1"], ws["y1"])
        p1, _ = maxpool2_forward(y1, ws["mask1"], ws["p1"])
        y2 = self._conv_relu(p1, W2, b2, ws["col2"], ws["y2"])
        p2, _ = maxpool2_forward(y2, ws["mask2"], ws["p2"])
        flat = p2.reshape(n, -1)
        h3 = flat @ W3
        h3 += b3
        np.maximum(h3, 0, out=h3)
        s = h3 @ W4
        s += b4
        s -= s.max(axis=1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=1, keepdims=True)
        return {"y1": y1, "p1": p1, "y2": y2, "p2": p2, "flat": flat, "h3": h3, "P": s}

    def predict(self, X):
        """Softmax probabilities (N, n_out), float32."""
        X = np.ascontiguousarray(X, dtype=F32)
        return self.forward(X)["P"]

    def gradients(self, X, Y):
        """Forward + backward on a batch: fills self.grads; returns the mean CCE loss."""
        W1, b1, W2, b2, W3, b3, W4, b4 = self.params
        gW1, gb1, gW2, gb2, gW3, gb3, gW4, gb4 = self.grads
        X = np.ascontiguousarray(X, dtype=F32)
        n = X.shape[0]
        ws = self._workspace(n)
        a = self.forward(X, ws)
        P = a["P"]
        loss = float(-np.sum(Y * np.log(np.clip(P, 1e-7, 1 - 1e-7)), dtype=np.float64) / n)
        d = P - Y
        d *= F32(1.0 / n)                               # d(mean CCE)/d(logits)
        # Dense(10)
        np.dot(a["h3"].T, d, out=gW4)
        np.sum(d, axis=0, out=gb4)
        dh = d @ W4.T
        dh *= a["h3"] > 0                               # relu'
        # Dense(128)
        np.dot(a["flat"].T, dh, out=gW3)
        np.sum(dh, axis=0, out=gb3)
        dp2 = (dh @ W3.T).reshape(a["p2"].shape)
        # relu -> MaxPooling2D: the gradient reaches only each window's arg-max, where
        # relu's output is the pooled value, so relu' is applied at the pooled size.
        dp2 *= a["p2"] > 0
        dz2 = maxpool2_backward(dp2, ws["mask2"], a["y2"].shape, out=ws["dy2"])
        # Conv2D(64)
        col2 = ws["col2"]
        kk2 = int(np.prod(col2.shape[3:]))
        dz2m = dz2.reshape(-1, dz2.shape[-1])
        np.dot(col2.reshape(-1, kk2).T, dz2m, out=gW2.reshape(kk2, -1))
        np.sum(dz2m, axis=0, out=gb2)
        dcol2 = ws["dcol2"]
        np.matmul(dz2m, W2.reshape(kk2, -1).T, out=dcol2.reshape(-1, kk2))
        dp1 = col2im(dcol2, a["p1"].shape, out=ws["dp1"])
        dp1 *= a["p1"] > 0
        dz1 = maxpool2_backward(dp1, ws["mask1"], a["y1"].shape, out=ws["dy1"])
        # Conv2D(32): the first layer, no dx
        col1 = ws["col1"]
        kk1 = int(np.prod(col1.shape[3:]))
        dz1m = dz1.reshape(-1, dz1.shape[-1])
        np.dot(col1.reshape(-1, kk1).T, dz1m, out=gW1.reshape(kk1, -1))
        np.sum(dz1m, axis=0, out=gb1)
        return loss

    def adam(self):
        """One Keras Adam step from self.grads."""
        self._t += 1
        keras_adam(np, self._params, self._grads, self._m, self._v, self._tmp, self._t,
                   self.lr, self.b1, self.b2, self.eps, F32)

    def train_step(self, X, Y):
        """Forward, backward and one Adam step on a batch; returns the batch's mean loss."""
        loss = self.gradients(X, Y)
        self.adam()
        return loss


# ------------------------------------------------------------------ the check
def _torch_grads(weights, X, Y):
    """Loss and gradients of the same model (Keras layouts) by PyTorch autograd, float64."""
    import torch
    import torch.nn.functional as F

    ws = [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in weights]
    W1, b1, W2, b2, W3, b3, W4, b4 = ws
    x = torch.tensor(X, dtype=torch.float64).permute(0, 3, 1, 2)        # NHWC -> NCHW
    h = F.relu(F.conv2d(x, W1.permute(3, 2, 0, 1), b1))                   # (k,k,Ci,Co)->(Co,Ci,k,k)
    h = F.max_pool2d(h, 2)
    h = F.relu(F.conv2d(h, W2.permute(3, 2, 0, 1), b2))
    h = F.max_pool2d(h, 2)
    h = h.permute(0, 2, 3, 1).reshape(x.shape[0], -1)                     # Keras's NHWC flatten
    h = F.relu(h @ W3 + b3)
    p = torch.softmax(h @ W4 + b4, dim=1)
    loss = -(torch.tensor(Y, dtype=torch.float64) * torch.log(p.clamp(1e-7, 1 - 1e-7))).sum(1)
    loss = loss.mean()
    loss.backward()
    return float(loss.detach()), [w.grad.numpy() for w in ws]


def _keras_step(weights, X, Y, input_shape):
    """Weights after one Keras 3 train_on_batch (Adam, CCE) from `weights`; None without Keras."""
    import os
    os.environ.setdefault("KERAS_BACKEND", "torch")
    try:
        import keras
    except ImportError:
        return None
    L = keras.layers
    model = keras.Sequential([keras.Input(input_shape), L.Conv2D(32, 3, activation="relu"),
                              L.MaxPooling2D(2), L.Conv2D(64, 3, activation="relu"),
                              L.MaxPooling2D(2), L.Flatten(), L.Dense(128, activation="relu"),
                              L.Dense(10, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    model.set_weights(weights)
    model.train_on_batch(X, Y)
    return [np.asarray(w) for w in model.get_weights()], keras.backend.backend()


def check(input_shape=(13, 12, 2), batch=4, seed=0, verbose=True):
    """Gradients of NumpyCNN vs PyTorch autograd (float64) on a tiny batch with the same
    weights, and one train step's weights vs Keras's train_on_batch. Odd spatial sizes
    exercise the pooling crop. Returns True if everything agrees."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((batch,) + tuple(input_shape)).astype(F32)
    Y = np.eye(10, dtype=F32)[rng.integers(0, 10, batch)]
    net = NumpyCNN(input_shape, seed=seed)
    for b in net.params[1::2]:                          # non-zero biases: their grads matter
        b[...] = rng.uniform(-0.1, 0.1, b.shape)
    w0 = net.get_weights()
    loss = net.gradients(X, Y)
    t_loss, t_grads = _torch_grads(w0, X, Y)
    names = ["conv1 kernel", "conv1 bias", "conv2 kernel", "conv2 bias", "dense1 kernel",
             "dense1 bias", "dense2 kernel", "dense2 bias"]
    ok = abs(loss - t_loss) <= 1e-5 * max(1.0, abs(t_loss))
    if verbose:
        print(f"input {input_shape}, batch {batch}: loss numpy {loss:.7f}, torch {t_loss:.7f}")
    for name, g, tg in zip(names, net.grads, t_grads):
        err = float(np.max(np.abs(g - tg)) / max(np.max(np.abs(tg)), 1e-30))
        good = err < 1e-4 and g.shape == tg.shape
        ok &= good
        if verbose:
            print(f"  d {name:<14} {str(g.shape):<16} max|numpy - torch| / max|torch| = "
                  f"{err:.2e} {'ok' if good else 'MISMATCH'}")
    # pooling ties (small integers: many equal maxima, positive ones too) vs torch's routing
    import torch
    y = rng.integers(0, 3, (2, 7, 9, 5)).astype(F32)
    dp = rng.standard_normal((2, 3, 4, 5)).astype(F32)
    p, mask = maxpool2_forward(y)
    dy = maxpool2_backward(dp, mask, y.shape)
    ty = torch.tensor(y).permute(0, 3, 1, 2).requires_grad_(True)
    tp = torch.nn.functional.max_pool2d(ty, 2)
    tp.backward(torch.tensor(dp).permute(0, 3, 1, 2))
    good = (np.array_equal(p, tp.detach().permute(0, 2, 3, 1).numpy())
            and np.array_equal(dy, ty.grad.permute(0, 2, 3, 1).numpy()))
    ok &= good
    if verbose:
        print(f"  max-pool with ties, odd sizes {y.shape}: forward and backward equal torch's: "
              f"{'ok' if good else 'MISMATCH'}")
    net.adam()
    ks = _keras_step(w0, X, Y, input_shape)
    if ks is None:
        if verbose:
            print("  Keras not installed: one-step Adam comparison skipped")
    else:
        k_w, backend = ks
        # the update moves each weight by about lr; compare the moves
        err = max(float(np.max(np.abs((w - a) - (kw - a))))
                  for w, kw, a in zip(net.params, k_w, w0))
        good = err < 2e-5                               # lr = 1e-3: < 2% of a step
        ok &= good
        if verbose:
            print(f"  one Adam step vs Keras {backend} train_on_batch: max |weight change "
                  f"difference| = {err:.2e} (step size ~1e-3) {'ok' if good else 'MISMATCH'}")
    if verbose:
        print("gradient check:", "PASSED" if ok else "FAILED")
    return bool(ok)


def _time(mnist, steps, repeat):
    import time

    (h, w, c), batch = ((28, 28, 1), 128) if mnist else ((64, 64, 3), 32)
    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch, h, w, c)).astype(F32)
    Y = np.eye(10, dtype=F32)[rng.integers(0, 10, batch)]
    net = NumpyCNN((h, w, c))
    net.train_step(X, Y)
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(steps):
            net.train_step(X, Y)
        best = min(best, (time.perf_counter() - t0) / steps)
    fl = step_flops((h, w, c), batch)
    print(f"{h}x{w}x{c} batch {batch}: train step {best * 1e3:.1f} ms, "
          f"{fl / 1e9:.2f} GFLOP -> {fl / best / 1e9:.1f} GFLOP/s")


if __name__ == "__main__":
    import argparse
    import sys

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="verify gradients against PyTorch")
    ap.add_argument("--mnist", action="store_true", help="time W6 (28x28x1, batch 128)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    if args.check:
        ok = check() & check((28, 28, 1), batch=3, seed=1)
        sys.exit(0 if ok else 1)
    _time(args.mnist, args.steps, args.repeat)
