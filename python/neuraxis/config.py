"""`keras.config`: the global settings, fixed here to the values the engine computes with.

The Keras front computes in float32, channels-last, with Keras's epsilon 1e-7; the
setters accept those values and refuse others (NotImplementedError) rather than
changing nothing in silence. `backend()` says "neuraxis".

Example
-------
>>> import neuraxis as keras
>>> keras.config.floatx(), keras.config.image_data_format(), keras.config.epsilon()
('float32', 'channels_last', 1e-07)
"""
__all__ = ["backend", "epsilon", "floatx", "image_data_format", "set_epsilon", "set_floatx",
           "set_image_data_format", "enable_unsafe_deserialization"]

_FLOATX, _EPSILON, _FORMAT = "float32", 1e-7, "channels_last"


def backend():
    """The computing backend's name."""
    return "neuraxis"


def floatx():
    """The default float type: 'float32'."""
    return _FLOATX


def epsilon():
    """The fuzz factor of losses and metrics: 1e-7."""
    return _EPSILON


def image_data_format():
    """'channels_last' (NHWC), the only layout of the conv layers here."""
    return _FORMAT


def _fixed(what, value, fixed):
    if value != fixed:
        raise NotImplementedError(f"{what} is fixed to {fixed!r} here, got {value!r}")


def set_floatx(value):
    if value not in {"float16", "bfloat16", "float32", "float64"}:
        raise ValueError("Unknown `floatx` value: " + str(value) + ". Expected one of "
                         "{'float16', 'bfloat16', 'float32', 'float64'}")
    _fixed("floatx", value, _FLOATX)


def set_epsilon(value):
    _fixed("epsilon", float(value), _EPSILON)


def set_image_data_format(data_format):
    if data_format not in {"channels_first", "channels_last"}:
        raise ValueError("The `data_format` argument must be one of {'channels_first', "
                         f"'channels_last'}}. Received: data_format={data_format}")
    _fixed("image_data_format", data_format, _FORMAT)


def enable_unsafe_deserialization():
    """Accepted for compatibility: files never execute code here (no lambdas, no pickles)."""
