"""Conv2DTranspose: the engine layer against an independent NumPy scatter reference
(valid / same, strides, dilation, even and non-square kernels) and finite differences in
float64; the reference against torch's conv_transpose2d; the Keras layer against real
Keras 3 (torch backend, in a subprocess) with copied weights: config, outputs, and two
epochs of a small conv autoencoder."""
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from numpy.testing import assert_allclose

from neuraxis import _core
from neuraxis import layers as L
from neuraxis.models import Sequential
from neuraxis.optimizers import Adam
from neuraxis.utils import set_random_seed

from engine_checks import fd_check
from real_keras import HAVE_KERAS, needs_keras  # noqa: F401


def out_length(n, k, s, d, same):
    kd = (k - 1) * d + 1
    return n * s if same else n * s + max(kd - s, 0)


def reference(x, W, b, strides, dilation, same):
    """y = sum over input positions and kernel taps of x[h, w] W[a, b]^T, scattered to
    (h s + a d - pad_top, w s + b d - pad_left), as TensorFlow's conv2d_transpose."""
    n, H, Wd, _ = x.shape
    kh, kw, F, _ = W.shape
    (sh, sw), (dh, dw) = strides, dilation
    OH, OW = out_length(H, kh, sh, dh, same), out_length(Wd, kw, sw, dw, same)
    pt = max((H - 1) * sh + (kh - 1) * dh + 1 - OH, 0) // 2 if same else 0
    pl = max((Wd - 1) * sw + (kw - 1) * dw + 1 - OW, 0) // 2 if same else 0
    y = np.zeros((n, OH, OW, F))
    for h in range(H):
        for w in range(Wd):
            for a in range(kh):
                for c in range(kw):
                    oh, ow = h * sh + a * dh - pt, w * sw + c * dw - pl
                    if 0 <= oh < OH and 0 <= ow < OW:
                        y[:, oh, ow] += x[:, h, w] @ W[a, c].T
    return y + (0 if b is None else b)


CASES = [((3, 4), (3, 3), (2, 2), (1, 1), "valid"), ((3, 4), (3, 2), (2, 1), (1, 1), "same"),
         ((4, 3), (2, 2), (3, 3), (1, 1), "valid"), ((3, 3), (3, 3), (1, 1), (2, 2), "same"),
         ((5, 4), (4, 4), (2, 2), (1, 1), "same"), ((2, 3), (1, 1), (1, 1), (1, 1), "valid")]


@pytest.mark.parametrize("hw,k,s,d,padding", CASES)
def test_engine_matches_reference_and_finite_differences(hw, k, s, d, padding):
    rng = np.random.default_rng(0)
    spec = {"kind": "conv2d_transpose", "filters": 3, "kernel_size": list(k),
            "strides": list(s), "dilation_rate": list(d), "padding": padding}
    net = _core.Network64([*hw, 2], [spec, {"kind": "flatten"}, {"kind": "dense", "units": 2}],
                          "mse", "batch_size")
    params = [rng.normal(size=sh) * 0.5 for sh in net.param_shapes]
    X, Y = rng.normal(size=(2, *hw, 2)), rng.normal(size=(2, 2))
    y = reference(X, params[0], params[1], s, d, padding == "same")
    assert net.layer_output_shapes[0] == y.shape[1:]
    assert_allclose(net.predict(params, X)[0], y.reshape(2, -1) @ params[2] + params[3],
                    rtol=1e-12, atol=1e-12)
    fd_check(net, params, X, Y)


def test_reference_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, W = rng.normal(size=(2, 4, 5, 3)), rng.normal(size=(3, 3, 2, 3))  # (kh, kw, out, in)
    want = torch.nn.functional.conv_transpose2d(
        torch.tensor(x).permute(0, 3, 1, 2), torch.tensor(W).permute(3, 2, 0, 1), stride=2)
    assert_allclose(reference(x, W, None, (2, 2), (1, 1), False),
                    want.permute(0, 2, 3, 1).numpy(), rtol=1e-12, atol=1e-12)


def test_keras_layer_shapes_and_errors():
    layer = L.Conv2DTranspose(8, 3, strides=2, padding="same")
    assert layer.compute_output_shape((None, None, 5, 2)) == (None, None, 10, 8)
    with pytest.raises(NotImplementedError, match="output_padding"):
        L.Conv2DTranspose(2, 3, strides=2, output_padding=1)
    with pytest.raises(ValueError, match="greater than output padding"):
        L.Conv2DTranspose(2, 3, strides=2, output_padding=2)


KERAS_SCRIPT = textwrap.dedent("""
    import json, os, sys
    os.environ["KERAS_BACKEND"] = "torch"
    import numpy as np
    import keras
    L = keras.layers
    d = np.load(sys.argv[1])
    cases = json.loads(sys.argv[2])
    out, arrays = {"configs": []}, {}
    for i, kw in enumerate(cases):
        layer = L.Conv2DTranspose(3, name=f"t{i}", **kw)
        layer.build(d["X"].shape)
        layer.set_weights([d[f"c{i}_w0"], d[f"c{i}_w1"]])
        arrays[f"c{i}"] = keras.ops.convert_to_numpy(layer(d["X"]))
        out["configs"].append(layer.get_config())
    model = keras.Sequential([keras.Input((8, 8, 1)),
                              L.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
                              L.Conv2DTranspose(1, 3, strides=2, padding="same",
                                                activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    model.set_weights([d[f"m_w{j}"] for j in range(4)])
    h = model.fit(d["A"], d["A"], batch_size=8, epochs=2, shuffle=False, verbose=0)
    out["history"] = h.history
    for j, w in enumerate(model.get_weights()):
        arrays[f"m_w{j}"] = w
    np.savez(sys.argv[3], **arrays)
    print(json.dumps(out))
""")

KCASES = [{"kernel_size": 3}, {"kernel_size": [3, 2], "strides": 2, "padding": "same"},
          {"kernel_size": 2, "strides": [2, 3]}, {"kernel_size": 3, "dilation_rate": 2,
                                                   "padding": "same"},
          {"kernel_size": 4, "strides": 2, "padding": "same", "activation": "relu"}]


def autoencoder():
    set_random_seed(0)
    return Sequential([L.Input((8, 8, 1)),
                       L.Conv2D(4, 3, strides=2, padding="same", activation="relu"),
                       L.Conv2DTranspose(1, 3, strides=2, padding="same",
                                         activation="sigmoid")])


@needs_keras
def test_matches_keras(tmp_path):
    rng = np.random.default_rng(2)
    arrays = {"X": rng.normal(size=(2, 4, 5, 2)).astype(np.float32),
              "A": (rng.random((16, 8, 8, 1)) > 0.5).astype(np.float32)}
    for i, kw in enumerate(KCASES):
        layer = L.Conv2DTranspose(3, **kw)
        layer.build(arrays["X"].shape)
        for j, w in enumerate(layer.get_weights()):
            arrays[f"c{i}_w{j}"] = rng.uniform(-0.5, 0.5, w.shape).astype(np.float32)
    for j, w in enumerate(autoencoder().get_weights()):
        arrays[f"m_w{j}"] = rng.uniform(-0.5, 0.5, w.shape).astype(np.float32)
    np.savez(tmp_path / "in.npz", **arrays)
    out = subprocess.run([sys.executable, "-c", KERAS_SCRIPT, str(tmp_path / "in.npz"),
                          json.dumps(KCASES), str(tmp_path / "out.npz")], capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, KERAS_BACKEND="torch"))
    assert out.returncode == 0, out.stderr[-2000:]
    answers = json.loads(out.stdout.strip().splitlines()[-1])
    theirs = np.load(tmp_path / "out.npz")
    for i, kw in enumerate(KCASES):
        layer = L.Conv2DTranspose(3, name=f"t{i}", **kw)
        layer.build(arrays["X"].shape)
        layer.set_weights([arrays[f"c{i}_w0"], arrays[f"c{i}_w1"]])
        got = layer(arrays["X"])
        assert got.shape == theirs[f"c{i}"].shape, kw
        assert_allclose(got, theirs[f"c{i}"], rtol=1e-5, atol=1e-5, err_msg=str(kw))
        mine = json.loads(json.dumps(layer.get_config()))
        assert list(mine) == list(answers["configs"][i]) and mine == answers["configs"][i]
    model = autoencoder()
    model.compile(Adam(0.01), "binary_crossentropy")
    model.set_weights([arrays[f"m_w{j}"] for j in range(4)])
    hist = model.fit(arrays["A"], arrays["A"], batch_size=8, epochs=2, shuffle=False, verbose=0)
    for j, w in enumerate(model.get_weights()):
        assert_allclose(w, theirs[f"m_w{j}"], rtol=2e-4, atol=2e-5, err_msg=f"weight {j}")
    assert_allclose(hist.history["loss"], answers["history"]["loss"], rtol=2e-4)
