"""Input checks of the Keras front: every bad input becomes a ValueError that says what was
expected, before anything reaches the engine."""
import math

import numpy as np


def as_array(x, what="x"):
    """A numeric NumPy array (lists, tuples and array-likes accepted; strings/objects not)."""
    if x is None:
        raise ValueError(f"`{what}` is required, got None")
    if isinstance(x, dict):
        raise ValueError(f"`{what}` must be an array of numbers; a Sequential model takes one "
                         f"input, not a dict (got keys {list(x)[:10]})")
    if isinstance(x, (str, bytes)) or not array_like(x):
        # np.asarray would walk an object's __len__/__getitem__ (possibly forever)
        raise ValueError(f"Unrecognized data type: `{what}` must be a NumPy array, an object "
                         "with __array__, a list of numbers, or (for x) a generator or "
                         f"PyDataset of batches; got {type(x).__name__}")
    try:
        a = np.asarray(x)
    except (ValueError, TypeError) as e:
        raise ValueError(f"`{what}` could not be converted to an array: {e}") from None
    if a.dtype.kind not in "biuf":
        raise ValueError(f"`{what}` must contain numbers, got an array of dtype {a.dtype}")
    return a


def array_like(x):
    """NumPy arrays, numbers, nested lists/tuples, and objects NumPy reads without iterating
    them (__array__, the array interfaces, the buffer protocol: torch, pandas, memoryview)."""
    if isinstance(x, (np.ndarray, np.generic, int, float, bool, memoryview)):
        return True
    if isinstance(x, (list, tuple)):
        return all(not isinstance(v, (dict, str, bytes)) and array_like(v) for v in x[:1])
    return any(hasattr(x, a) for a in ("__array__", "__array_interface__",
                                       "__array_struct__", "__cuda_array_interface__"))


def as_features(x, input_shape, model_name):
    """x as float32 of shape (n, *input_shape); checks the shape against the model's input."""
    a = as_array(x, "x")
    if a.ndim < 2:
        raise ValueError(
            f"Input 0 of layer \"{model_name}\" must have a batch dimension: expected shape="
            f"{input_shape}, found shape={a.shape}. Pass a 2-D array, e.g. x.reshape(-1, 1) "
            "for a single feature or x.reshape(1, -1) for a single sample.")
    # None: the steps axis of a variable-length (sequence) input takes any length >= 1
    if input_shape is not None and (a.ndim != len(input_shape) or any(
            d != e if e is not None else d < 1 for d, e in zip(a.shape[1:], input_shape[1:]))):
        raise ValueError(f"Input 0 of layer \"{model_name}\" is incompatible with the layer: "
                         f"expected shape={input_shape}, found shape={a.shape}")
    if len(a) == 0:
        raise ValueError("x contains 0 samples")
    return np.ascontiguousarray(a, dtype=np.float32)


def check_finite(a, what="x"):
    if not np.isfinite(a).all():
        raise ValueError(f"Input {what} contains NaN or infinity. Remove or impute those values "
                         "before calling the model.")


def check_cardinality(n_x, n_other, what):
    if n_x != n_other:
        raise ValueError(f"Data cardinality is ambiguous: x sizes: {n_x}, {what} sizes: {n_other}."
                         " Make sure all arrays contain the same number of samples.")


def targets(y, loss, kind, out_shape, n):
    """y as the engine's float32 (n, k) target for `loss` (one-hot for the sparse loss).

    `kind` is the loss's family, as the model resolved it: 'sparse' (sparse categorical
    crossentropy), 'categorical', 'binary' or None (a regression loss). The classes are
    the output's last axis; an output of more axes, e.g. (steps, classes), has one
    target per position (sparse: labels of shape (n, steps)).

    Integer labels given to categorical_crossentropy, one-hot rows given to the sparse loss,
    labels outside [0, 1] for binary_crossentropy and shape mismatches are refused.
    """
    a = as_array(y, "y")
    check_cardinality(n, len(a), "y")
    k = math.prod(out_shape[1:])
    out_tail = tuple(out_shape[1:])
    classes, positions_tail = out_tail[-1], out_tail[:-1]
    if not np.isfinite(a).all():
        raise ValueError("Targets y contain NaN or infinity.")
    lname = getattr(loss, "name", str(loss))
    flat = len(out_tail) == 1
    labels_shape = "(n,)" if flat else f"(n, {', '.join(map(str, positions_tail))})"
    if kind == "sparse":
        if tuple(a.shape[1:]) == out_tail and classes > 1:
            raise ValueError(
                f"sparse_categorical_crossentropy expects integer class indices of shape "
                f"{labels_shape} but y has shape {a.shape}, which looks one-hot encoded. Use "
                "loss='categorical_crossentropy' for one-hot targets, or pass "
                "y.argmax(axis=-1).")
        if tuple(a.shape[1:]) not in (positions_tail, positions_tail + (1,)):
            raise ValueError(f"sparse_categorical_crossentropy expects integer class indices of "
                             f"shape {labels_shape} (or with a trailing 1) for a model with "
                             f"outputs {tuple(out_shape)}, got y of shape {a.shape}")
        labels = a.reshape(-1)
        if a.dtype.kind == "f" and not np.array_equal(labels, np.round(labels)):
            raise ValueError("sparse_categorical_crossentropy expects integer class indices, but "
                             "y has fractional values")
        if len(labels) and (labels.min() < 0 or labels.max() >= classes):
            raise ValueError(f"sparse_categorical_crossentropy: class indices must be in "
                             f"[0, {classes}) for a model with {classes} outputs, got values in "
                             f"[{labels.min()}, {labels.max()}]")
        return np.eye(classes, dtype=np.float32)[labels.astype(np.int64)].reshape(n, k)
    if kind == "categorical":
        if classes > 1 and tuple(a.shape[1:]) in (positions_tail, positions_tail + (1,)):
            raise ValueError(
                f"categorical_crossentropy expects one-hot targets of shape "
                f"(n, {', '.join(map(str, out_tail))}), but y has shape {a.shape} (integer "
                "class labels?). "
                "Use loss='sparse_categorical_crossentropy' for integer labels, or one-hot "
                "encode them first.")
    elif classes == 1 and tuple(a.shape[1:]) == positions_tail:
        a = a[..., None]  # Keras expands (n,) to the model's (n, 1), (n, T) to (n, T, 1)
    if tuple(a.shape[1:]) != out_tail:
        raise ValueError(f"{lname}: targets y of shape {a.shape} do not match the model's output "
                         f"shape {tuple(out_shape)}")
    if kind == "binary" and (a.min() < 0 or a.max() > 1):
        raise ValueError("binary_crossentropy expects targets in [0, 1], got values in "
                         f"[{a.min()}, {a.max()}]")
    Y = np.ascontiguousarray(a.reshape(n, k), dtype=np.float32)
    smoothing = getattr(loss, "_kw", {}).get("label_smoothing", 0.0)
    if smoothing:
        if kind == "binary":
            Y = Y * (1 - smoothing) + 0.5 * smoothing
        else:
            Y = Y * (1 - smoothing) + smoothing / classes
        Y = Y.astype(np.float32)
    return Y


def sample_weights(sample_weight, class_weight, y, n):
    """float32 (n,) weights from sample_weight times class_weight (None when both are None)."""
    sw = None
    if sample_weight is not None:
        sw = as_array(sample_weight, "sample_weight")
        if sw.ndim == 2 and sw.shape[1] == 1:
            sw = sw[:, 0]
        if sw.ndim != 1:
            raise ValueError(f"sample_weight must be 1-D (n,), got shape {sw.shape}")
        check_cardinality(n, len(sw), "sample_weight")
        if not np.isfinite(sw).all() or (sw < 0).any():
            raise ValueError("sample_weight must be finite and non-negative")
        sw = sw.astype(np.float32)
    if class_weight is not None:
        if not isinstance(class_weight, dict):
            raise ValueError(f"class_weight must be a dict {{class: weight}}, got "
                             f"{type(class_weight).__name__}")
        labels = np.asarray(y)
        if labels.ndim > 1:
            labels = labels.argmax(-1) if labels.shape[-1] != 1 else labels[..., 0]
        labels = np.round(labels).astype(np.int64).reshape(-1)
        cw = np.array([float(class_weight.get(int(c), 1.0)) for c in labels], np.float32)
        if not np.isfinite(cw).all() or (cw < 0).any():
            raise ValueError("class_weight values must be finite and non-negative")
        sw = cw if sw is None else sw * cw
    return None if sw is None else np.ascontiguousarray(sw, dtype=np.float32)


def batch_size(value, default=32):
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {value!r}")
    return int(value)


def verbosity(value):
    if value == "auto":
        return 1
    if value in (0, 1, 2) and not isinstance(value, bool) or value is False or value is True:
        return int(value)
    raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {value!r}")
