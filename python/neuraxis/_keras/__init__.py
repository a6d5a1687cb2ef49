"""Internals of the Keras front (`neuraxis.models`, `neuraxis.layers`, ...).

Imports run one way: the public modules import from here, and the modules here import
only each other and `neuraxis._core`, never a public module, not even inside a function
(tests/test_layout.py). What they need from the public side is passed in: the model
itself, `callbacks.CallbackList`, `Sequential.from_config`, ...
"""
