"""Keras-style utilities: seeding and session state.

Example
-------
>>> from neuraxis import utils
>>> utils.set_random_seed(42)   # weights, shuffles and dropout masks become reproducible
"""
from ._keras_backend import clear_session, set_random_seed

__all__ = ["clear_session", "set_random_seed"]
