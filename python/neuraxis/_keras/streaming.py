"""Keras's streaming metrics in NumPy: confusion counts per threshold (AUC, Precision,
Recall), F-beta's per-class counts, and the values Keras computes from them.

During fit/evaluate the engine adds the counts up in C++ (`stream_add` in
cpp/src/kernels/metrics_extra.cpp): for a confusion metric it returns, per number c of
thresholds below a prediction, the weighted counts of positive and negative labels
(`buckets`), which `from_buckets` turns into tp, fp, tn, fn. The standalone metric
objects count here (`confusion`, `fbeta_counts`) and share the value formulas.

Example
-------
>>> import numpy as np
>>> tp, fp, tn, fn = confusion([0, 1, 1], [0.2, 0.7, 0.4], np.float32([0.5]))
>>> [float(v[0]) for v in (tp, fp, tn, fn)]
[1.0, 0.0, 1.0, 1.0]
"""
import numpy as np

EPSILON = 1e-7   # keras.backend.epsilon()
NEG_INF = -1e10  # Keras's value for predictions outside the top k


def _no_nan(a, b):
    """ops.divide_no_nan: a / b, 0 where b == 0."""
    a, b = np.broadcast_arrays(np.asarray(a, np.float64), np.asarray(b, np.float64))
    out = np.zeros(a.shape)
    np.divide(a, b, out=out, where=b != 0)
    return out


def filter_top_k(p, k):
    """Keras's _filter_top_k: values outside a row's top k become NEG_INF."""
    order = np.argsort(-p, axis=-1, kind="stable")[..., :k]
    keep = np.zeros(p.shape, bool)
    np.put_along_axis(keep, order, True, axis=-1)
    return np.where(keep, p, np.float32(NEG_INF))


def confusion(y_true, y_pred, thresholds, sample_weight=None, top_k=None, class_id=None,
              clip=False):
    """(tp, fp, tn, fn) per threshold: label != 0 and p > t etc., each element weighted by
    its row's sample weight, every element of a row counted (Keras's multi_label=False)."""
    p = np.asarray(y_pred, np.float32)
    y = np.asarray(y_true, np.float32)
    if y.ndim < p.ndim:  # squeeze_or_expand_to_same_rank
        y = y.reshape(y.shape + (1,) * (p.ndim - y.ndim))
    elif y.ndim > p.ndim:
        p = p.reshape(p.shape + (1,) * (y.ndim - p.ndim))
    y = np.broadcast_to(y, p.shape)
    w = np.ones(len(p)) if sample_weight is None else np.asarray(sample_weight,
                                                                  np.float64).reshape(-1)
    w = np.broadcast_to(w.reshape((len(p),) + (1,) * (p.ndim - 1)), p.shape)
    if top_k is not None:
        p = filter_top_k(p, top_k)
    if class_id is not None:
        if p.ndim == 1:
            raise ValueError("When class_id is provided, y_pred must be a 2D array with shape "
                             f"(num_samples, num_classes), found shape: {p.shape}")
        p, y, w = p[..., class_id], y[..., class_id], w[..., class_id]
    if clip:
        p = np.clip(p, 0.0, 1.0)
    p, pos, w = p.reshape(-1), y.reshape(-1) != 0, w.reshape(-1)
    above = p[None, :] > np.asarray(thresholds, np.float32)[:, None]  # (T, elements)
    tp = (above & pos) @ w
    fp = (above & ~pos) @ w
    fn = (~above & pos) @ w
    tn = (~above & ~pos) @ w
    return tp, fp, tn, fn


def from_buckets(sums, n_thresholds):
    """The engine's bucket sums -> (tp, fp, tn, fn): positive at threshold t iff more than t
    thresholds lie below the prediction."""
    s = np.asarray(sums, np.float64)
    pos, neg = s[:n_thresholds + 1], s[n_thresholds + 1:]
    above_pos = np.cumsum(pos[::-1])[::-1][1:]  # sum over c > t
    above_neg = np.cumsum(neg[::-1])[::-1][1:]
    return above_pos, above_neg, neg.sum() - above_neg, pos.sum() - above_pos


def precision(tp, fp, tn, fn):
    return _no_nan(tp, tp + fp)


def recall(tp, fp, tn, fn):
    return _no_nan(tp, tp + fn)


def auc(tp, fp, tn, fn, curve="ROC", summation_method="interpolation"):
    """Keras's AUC.result for multi_label=False (thresholds ascending)."""
    if curve == "PR" and summation_method == "interpolation":
        # Davis & Goadrich's interpolation, as Keras's interpolate_pr_auc
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _no_nan(dtp, np.maximum(dp, 0))
        intercept = tp[1:] - slope * p[1:]
        ratio = np.where((p[:-1] > 0) & (p[1:] > 0), _no_nan(p[:-1], np.maximum(p[1:], 0)),
                         1.0)
        return float(np.sum(_no_nan(slope * (dtp + intercept * np.log(ratio)),
                                    np.maximum(tp[1:] + fn[1:], 0))))
    rec = _no_nan(tp, tp + fn)
    if curve == "ROC":
        x, y = _no_nan(fp, fp + tn), rec
    elif curve == "PR":
        x, y = rec, _no_nan(tp, tp + fp)
    else:  # PRGAIN
        scale = _no_nan(tp + fn, tn + fp)
        rg = np.where(tp == 0, 0.0, 1.0 - scale * _no_nan(fn, tp))
        pg = np.where(tp == 0, 1.0, 1.0 - scale * _no_nan(fp, tp))
        x, y = np.maximum(rg, 0.0), pg
    if summation_method == "interpolation":
        heights = (y[:-1] + y[1:]) / 2.0
    elif summation_method == "minoring":
        heights = np.minimum(y[:-1], y[1:])
    else:
        heights = np.maximum(y[:-1], y[1:])
    return float(np.sum((x[:-1] - x[1:]) * heights))


def fbeta_counts(y_true, y_pred, threshold=None, sample_weight=None):
    """Per class (tp, fp, fn, weighted label sum), as Keras's FBetaScore.update_state."""
    y = np.asarray(y_true, np.float64)
    p = np.asarray(y_pred, np.float32)
    if p.ndim != 2 or y.ndim != 2:
        raise ValueError("FBetaScore expects 2D inputs with shape (batch_size, output_dim). "
                         f"Received input shapes: y_pred.shape={p.shape} and "
                         f"y_true.shape={y.shape}.")
    if threshold is None:
        pos = (p >= p.max(axis=-1, keepdims=True)) & (np.abs(p) > 1e-9)
    else:
        pos = p > threshold
    pos = pos.astype(np.float64)
    w = (np.ones((len(p), 1)) if sample_weight is None
         else np.asarray(sample_weight, np.float64).reshape(-1, 1))
    return ((pos * y * w).sum(0), (pos * (1 - y) * w).sum(0), ((1 - pos) * y * w).sum(0),
            (y * w).sum(0))


def fbeta(tp, fp, fn, weights, beta=1.0, average=None):
    """Keras's FBetaScore.result from per-class counts (micro: their sums)."""
    if average == "micro":
        tp, fp, fn, weights = (np.sum(a) for a in (tp, fp, fn, weights))
    prec = tp / (tp + fp + EPSILON)
    rec = tp / (tp + fn + EPSILON)
    f = prec * rec / (beta ** 2 * prec + rec + EPSILON) * (1 + beta ** 2)
    if average == "weighted":
        return float(np.sum(f * weights / (np.sum(weights) + EPSILON)))
    if average is not None:
        return float(np.mean(f))
    return np.asarray(f, np.float32)
