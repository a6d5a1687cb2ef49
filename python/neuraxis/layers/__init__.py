"""Layers of the Keras front (`from neuraxis.layers import Dense, LeakyReLU`).

Example
-------
>>> from neuraxis.layers import Dense, LeakyReLU
>>> from neuraxis.models import Sequential
>>> model = Sequential([Dense(100, input_dim=64), LeakyReLU(alpha=0.01),
...                     Dense(10, activation="softmax")])  # doctest: +SKIP
"""
from ._base import Layer
from .activation import ELU, Activation, LeakyReLU, ReLU, Softmax
from .convolutional import Conv1D, Conv2D, Conv2DTranspose
from .core import (Dense, Dropout, Flatten, Input, InputLayer, KerasTensor, Reshape,
                   SpatialDropout1D, SpatialDropout2D, SpatialDropout3D)
from .embedding import Embedding
from .normalization import BatchNormalization
from .pooling import (AveragePooling1D, AveragePooling2D, AvgPool1D, AvgPool2D,
                      GlobalAveragePooling1D, GlobalAveragePooling2D, GlobalAvgPool1D,
                      GlobalAvgPool2D, GlobalMaxPool1D, GlobalMaxPool2D, GlobalMaxPooling1D,
                      GlobalMaxPooling2D, MaxPool1D, MaxPool2D, MaxPooling1D, MaxPooling2D)
from .bidirectional import Bidirectional
from .masking import Masking
from .recurrent import GRU, LSTM, SimpleRNN
from .reshaping import (Cropping1D, Cropping2D, UpSampling1D, UpSampling2D, ZeroPadding1D,
                        ZeroPadding2D)
from .wrappers import TimeDistributed

_CLASSES = {c.__name__: c for c in (InputLayer, Dense, Dropout, Flatten, Reshape, Activation,
                                    ReLU, LeakyReLU, ELU, Softmax, Conv2D, MaxPooling2D,
                                    AveragePooling2D, BatchNormalization)}
_CLASSES.update(MaxPool2D=MaxPool2D, AvgPool2D=AvgPool2D)  # Keras's aliases, same classes
_EXTRA = (Conv1D, MaxPooling1D, AveragePooling1D, GlobalAveragePooling1D, GlobalAveragePooling2D,
          GlobalMaxPooling1D, GlobalMaxPooling2D, ZeroPadding1D, ZeroPadding2D, Cropping1D,
          Cropping2D, UpSampling1D, UpSampling2D)
_CLASSES.update({c.__name__: c for c in _EXTRA})
_CLASSES.update({c.__name__: c for c in (SimpleRNN, LSTM, GRU, Bidirectional, Masking,
                                         SpatialDropout1D, SpatialDropout2D, SpatialDropout3D,
                                         Conv2DTranspose)})
_CLASSES.update(Embedding=Embedding, TimeDistributed=TimeDistributed)
_CLASSES.update(MaxPool1D=MaxPool1D, AvgPool1D=AvgPool1D, GlobalAvgPool1D=GlobalAvgPool1D,
                GlobalAvgPool2D=GlobalAvgPool2D, GlobalMaxPool1D=GlobalMaxPool1D,
                GlobalMaxPool2D=GlobalMaxPool2D)

__all__ = ["Layer", "Input", "InputLayer", "Dense", "Dropout", "Flatten", "Reshape", "Activation",
           "ReLU", "LeakyReLU", "ELU", "Softmax", "Conv2D", "MaxPooling2D", "MaxPool2D",
           "AveragePooling2D", "AvgPool2D", "BatchNormalization", "serialize", "deserialize"]
__all__ += ["Conv1D", "MaxPooling1D", "MaxPool1D", "AveragePooling1D", "AvgPool1D",
            "GlobalAveragePooling1D", "GlobalAvgPool1D", "GlobalAveragePooling2D",
            "GlobalAvgPool2D", "GlobalMaxPooling1D", "GlobalMaxPool1D", "GlobalMaxPooling2D",
            "GlobalMaxPool2D", "ZeroPadding1D", "ZeroPadding2D", "Cropping1D", "Cropping2D",
            "UpSampling1D", "UpSampling2D"]
__all__ += ["SimpleRNN", "LSTM", "GRU", "Bidirectional", "Masking", "SpatialDropout1D",
            "SpatialDropout2D", "SpatialDropout3D", "Conv2DTranspose"]
__all__ += ["Embedding", "TimeDistributed"]

# Keras marks these built when constructed (no build() of their own): a model never builds
# them, so its serialization of them has no build_config unless build() was called by hand
# (measured with Keras 3.15: test_keras_user_snippets, test_keras_snippet_fixes)
_BUILT_AT_INIT = (Dropout, Reshape, Activation, ReLU, LeakyReLU, ELU, Softmax, MaxPooling1D,
                  AveragePooling1D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling1D,
                  GlobalAveragePooling2D, GlobalMaxPooling1D, GlobalMaxPooling2D, Masking,
                  SpatialDropout1D, SpatialDropout2D, SpatialDropout3D)


def serialize(layer):
    """Keras's serialized form of a layer (module, class_name, config, build_config)."""
    out = {"module": "keras.layers", "class_name": type(layer).__name__,
           "config": layer.get_config(), "registered_name": None}
    if layer.built and not isinstance(layer, InputLayer) and not (
            isinstance(layer, _BUILT_AT_INIT) and getattr(layer, "_built_by_model", False)):
        out["build_config"] = {"input_shape": list(layer._build_shape)}
    return out


def deserialize(config, custom_objects=None):
    """Recreate a layer from `serialize`'s dict. Only known classes: nothing is imported or run."""
    if not isinstance(config, dict) or not isinstance(config.get("class_name"), str):
        raise ValueError(f"A serialized layer must be a dict with a 'class_name', got {config!r}")
    name = config["class_name"]
    cls = (custom_objects or {}).get(name) or _CLASSES.get(name)
    if cls is None or not (isinstance(cls, type) and issubclass(cls, Layer)):
        raise ValueError(f"Unknown layer class {name!r}. Known layers: {sorted(_CLASSES)} "
                         "(pass others in custom_objects)")
    inner = config.get("config", {})
    if not isinstance(inner, dict):
        raise ValueError(f"The config of layer {name!r} must be a dict, got {inner!r}")
    try:
        return cls.from_config(dict(inner))
    except (TypeError, ValueError) as e:
        raise ValueError(f"Invalid config for layer {name!r}: {e}") from None
