"""Save and load Keras-front models, no pickle.

`model.save("model.keras")` writes a real Keras 3 `.keras` archive (config.json,
metadata.json, model.weights.h5: `neuraxis._keras.keras_format`) that Keras's own
`load_model` reads; `model.save("model.neuraxis")` writes neuraxis's own zip of JSON +
`.npy` arrays (`neuraxis._keras.archive`). Both hold the config, the weights, the
compile settings and the optimizer state. `load_model` reads either (told apart by
content, so older neuraxis files named `.keras` still load), and `.keras` files real
Keras wrote. It rebuilds the model from the config through a registry of known
classes (nothing in the file is imported or executed) and checks every array against
it before copying it in. Any damage is a ValueError naming the file. Weights alone go
to `.weights.h5` (Keras's layout) or `.weights.npz`.

Example
-------
>>> import os, tempfile
>>> from neuraxis.models import Sequential, load_model
>>> from neuraxis.layers import Dense, Input
>>> model = Sequential([Input((3,)), Dense(2)])
>>> path = os.path.join(tempfile.mkdtemp(), "m.neuraxis")
>>> model.save(path)
>>> [w.shape for w in load_model(path).get_weights()]
[(3, 2), (2,)]
"""
import json

from . import __version__, optimizers
from ._keras import archive, keras_format
from ._keras.archive import FORMAT, FORMAT_VERSION  # noqa: F401  (the format's name/version)


def save_model(model, filepath, overwrite=True):
    """Write `model` to a `.keras` file (Keras 3's own format) or a `.neuraxis` zip (config,
    weights, compile and optimizer state either way)."""
    if str(filepath).endswith(".keras"):
        keras_format.write_model(model, str(filepath), overwrite, __version__)
    else:
        archive.write_model(model, filepath, overwrite, __version__)


def load_model(filepath, custom_objects=None, compile=True, safe_mode=True):
    """Rebuild a model saved by `model.save` — same weights, compile settings, optimizer state."""
    # Function-level: neuraxis.models imports this module (it re-exports load_model).
    from .models import Sequential

    return keras_format.load_model(filepath,
                                   lambda config: Sequential.from_config(config, custom_objects),
                                   _compile if compile else None)


def _compile(model, compile_config):
    """compile() `model` as its saved compile_config says (the optimizer state comes after)."""
    cc = compile_config
    model.compile(optimizer=optimizers.deserialize(cc.get("optimizer")), loss=cc.get("loss"),
                  metrics=cc.get("metrics"), weighted_metrics=cc.get("weighted_metrics"))


def model_from_json(json_string, custom_objects=None):
    """A fresh (uncompiled, newly initialised) model from `model.to_json()`."""
    from .models import Sequential  # function-level, as in load_model

    try:
        cfg = json.loads(json_string)
    except (TypeError, json.JSONDecodeError) as e:
        raise ValueError(f"Invalid model JSON: {e}") from None
    if not isinstance(cfg, dict) or cfg.get("class_name") != "Sequential":
        raise ValueError("Only Sequential model JSON is supported")
    return Sequential.from_config(cfg.get("config"), custom_objects)


def save_weights(model, filepath, overwrite=True):
    """Weights only: a `.weights.h5` file in Keras's layout (with the optimizer state, as
    Keras writes it), or a `.weights.npz` zip (readable with `np.load(allow_pickle=False)`)."""
    path = str(filepath)
    if path.endswith(".weights.h5"):
        keras_format.write_weights(model, path, overwrite)
    elif path.endswith(archive.WEIGHTS_EXT):
        archive.write_weights(model, filepath, overwrite)
    else:
        raise ValueError("The filename must end in `.weights.h5` (or `.weights.npz`). "
                         f"Received: filepath={path}")


def load_weights(model, filepath, skip_mismatch=False):
    """Copy weights from a `.weights.h5`, a `.weights.npz` or a full model file into a built
    `model`."""
    keras_format.load_weights(model, filepath, skip_mismatch)
