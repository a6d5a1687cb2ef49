"""Plain NumPy references for 2-D convolution and pooling (NHWC, Keras layout).

Independent of neuraxis on purpose, and written as explicit loops over output
positions and window offsets (no im2col), so that each line can be checked by
eye against the definition. Everything is evaluated in float64 whatever the
input dtype.

Conventions (TensorFlow / Keras):

- x (n, H, W, C); conv kernel w (KH, KW, C, F); bias b (F,); outputs (n, OH, OW, .).
- Convolution is a cross-correlation (no kernel flip):
  y[n, i, j, f] = b[f] + sum_{kh, kw, c} x[n, i*sh - pt + kh*dh, j*sw - pl + kw*dw, c]
                                        * w[kh, kw, c, f],
  the terms whose input position is outside x (padding) being 0.
- "valid": OH = floor((H - ((KH-1)*dh + 1)) / sh) + 1; "same": OH = ceil(H / sh) with
  pad_total = max((OH-1)*sh + (KH-1)*dh + 1 - H, 0), pad_top = pad_total // 2 and the
  odd extra at the bottom (the same along W).
- Max pooling ignores padded positions (as -inf); its gradient goes to the first
  arg-max of each window in row-major (kh, kw) order. Average pooling divides by
  the number of window elements inside the input (padding is not counted).
"""
import numpy as np

PADDINGS = ("valid", "same")


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def out_size(h, k, s=1, d=1, padding="valid"):
    """Output length along one axis of length h, window k, stride s, dilation d."""
    if padding not in PADDINGS:
        raise ValueError(f"padding must be 'valid' or 'same', got {padding!r}")
    if min(h, k, s, d) < 1:
        raise ValueError("sizes, strides and dilation must be positive")
    span = (k - 1) * d + 1  # extent of the dilated window
    o = (h - span) // s + 1 if padding == "valid" else -(-h // s)
    if o < 1:
        raise ValueError(f"output size {o} < 1 (input {h}, window {span}, stride {s})")
    return o


def pads(h, k, s=1, d=1, padding="valid"):
    """(pad_before, pad_after) along one axis; the odd extra goes after."""
    o = out_size(h, k, s, d, padding)
    if padding == "valid":
        return 0, 0
    total = max((o - 1) * s + (k - 1) * d + 1 - h, 0)
    return total // 2, total - total // 2


def windows(hw, kernel, strides=(1, 1), dilation=(1, 1), padding="valid"):
    """(OH, OW, wins): wins[(i, j)] lists the taps (kh, kw, ih, iw) of output (i, j)
    whose input position (ih, iw) lies inside the input, in row-major (kh, kw) order."""
    (H, W), (KH, KW), (sh, sw), (dh, dw) = hw, kernel, strides, dilation
    OH, OW = out_size(H, KH, sh, dh, padding), out_size(W, KW, sw, dw, padding)
    pt, pl = pads(H, KH, sh, dh, padding)[0], pads(W, KW, sw, dw, padding)[0]
    wins = {}
    for i in range(OH):
        for j in range(OW):
            taps = []
            for kh in range(KH):
                for kw in range(KW):
                    ih, iw = i * sh - pt + kh * dh, j * sw - pl + kw * dw
                    if 0 <= ih < H and 0 <= iw < W:
                        taps.append((kh, kw, ih, iw))
            wins[(i, j)] = taps
    return OH, OW, wins


def _check_conv(x, w):
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"x and w must be 4-D, got {x.shape} and {w.shape}")
    if x.shape[3] != w.shape[2]:
        raise ValueError(f"x has {x.shape[3]} channels, w expects {w.shape[2]}")


# ---- convolution ---------------------------------------------------------------

def conv2d_forward(x, w, b=None, strides=(1, 1), padding="valid", dilation_rate=(1, 1)):
    """y (n, OH, OW, F) = cross-correlation of x (n, H, W, C) with w (KH, KW, C, F) + b."""
    x, w = _f64(x), _f64(w)
    _check_conv(x, w)
    OH, OW, wins = windows(x.shape[1:3], w.shape[:2], strides, dilation_rate, padding)
    y = np.zeros((x.shape[0], OH, OW, w.shape[3]))
    for (i, j), taps in wins.items():
        for kh, kw, ih, iw in taps:
            y[:, i, j, :] += x[:, ih, iw, :] @ w[kh, kw]  # (n, C) @ (C, F)
    if b is not None:
        y += _f64(b)
    return y


def conv2d_backward(x, w, dy, strides=(1, 1), padding="valid", dilation_rate=(1, 1)):
    """(dx, dw, db) of conv2d_forward given dy = dL/dy, by the chain rule: each term
    x[:, ih, iw, :] @ w[kh, kw] of y[:, i, j, :] sends dy[:, i, j, :] back to both."""
    x, w, dy = _f64(x), _f64(w), _f64(dy)
    _check_conv(x, w)
    OH, OW, wins = windows(x.shape[1:3], w.shape[:2], strides, dilation_rate, padding)
    if dy.shape != (x.shape[0], OH, OW, w.shape[3]):
        raise ValueError(f"dy has shape {dy.shape}, expected {(x.shape[0], OH, OW, w.shape[3])}")
    dx, dw = np.zeros_like(x), np.zeros_like(w)
    for (i, j), taps in wins.items():
        g = dy[:, i, j, :]  # (n, F)
        for kh, kw, ih, iw in taps:
            dx[:, ih, iw, :] += g @ w[kh, kw].T   # (n, F) @ (F, C)
            dw[kh, kw] += x[:, ih, iw, :].T @ g   # (C, n) @ (n, F)
    return dx, dw, dy.sum(axis=(0, 1, 2))


# ---- pooling -------------------------------------------------------------------

def _pool_windows(x, pool_size, strides, padding):
    if x.ndim != 4:
        raise ValueError(f"x must be 4-D, got {x.shape}")
    strides = pool_size if strides is None else strides
    return windows(x.shape[1:3], pool_size, strides, (1, 1), padding)


def max_pool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid"):
    """y[n, i, j, c] = max of x over the in-bounds taps of window (i, j)."""
    x = _f64(x)
    OH, OW, wins = _pool_windows(x, pool_size, strides, padding)
    y = np.empty((x.shape[0], OH, OW, x.shape[3]))
    for (i, j), taps in wins.items():
        y[:, i, j, :] = np.max([x[:, ih, iw, :] for _, _, ih, iw in taps], axis=0)
    return y


def max_pool2d_backward(x, dy, pool_size=(2, 2), strides=None, padding="valid"):
    """dx: dy[n, i, j, c] goes to the first arg-max (row-major taps) of its window;
    the contributions of overlapping windows add up."""
    x, dy = _f64(x), _f64(dy)
    OH, OW, wins = _pool_windows(x, pool_size, strides, padding)
    n, _, _, C = x.shape
    rows, cols = np.arange(n)[:, None], np.arange(C)[None, :]
    dx = np.zeros_like(x)
    for (i, j), taps in wins.items():
        best = np.full((n, C), -np.inf)
        bh, bw = np.zeros((n, C), int), np.zeros((n, C), int)
        for _, _, ih, iw in taps:
            v = x[:, ih, iw, :]
            better = v > best  # strict: a later tie does not replace the first
            best = np.where(better, v, best)
            bh, bw = np.where(better, ih, bh), np.where(better, iw, bw)
        dx[rows, bh, bw, cols] += dy[:, i, j, :]  # one target per (n, c): no duplicates
    return dx


def avg_pool2d_forward(x, pool_size=(2, 2), strides=None, padding="valid"):
    """y[n, i, j, c] = mean of x over the in-bounds taps of window (i, j)."""
    x = _f64(x)
    OH, OW, wins = _pool_windows(x, pool_size, strides, padding)
    y = np.empty((x.shape[0], OH, OW, x.shape[3]))
    for (i, j), taps in wins.items():
        y[:, i, j, :] = sum(x[:, ih, iw, :] for _, _, ih, iw in taps) / len(taps)
    return y


def avg_pool2d_backward(x, dy, pool_size=(2, 2), strides=None, padding="valid"):
    """dx: each in-bounds tap of window (i, j) receives dy[:, i, j, :] / (number of taps)."""
    x, dy = _f64(x), _f64(dy)
    OH, OW, wins = _pool_windows(x, pool_size, strides, padding)
    dx = np.zeros_like(x)
    for (i, j), taps in wins.items():
        for _, _, ih, iw in taps:
            dx[:, ih, iw, :] += dy[:, i, j, :] / len(taps)
    return dx
