"""`keras.backend`'s functions that user code still calls (Keras 3 keeps a few).

Example
-------
>>> from neuraxis import backend
>>> backend.clear_session()
>>> backend.floatx()
'float32'
"""
from ._keras.session import clear_session
from .config import (backend, epsilon, floatx, image_data_format, set_epsilon, set_floatx,
                     set_image_data_format)

__all__ = ["backend", "clear_session", "epsilon", "floatx", "image_data_format", "set_epsilon",
           "set_floatx", "set_image_data_format"]
