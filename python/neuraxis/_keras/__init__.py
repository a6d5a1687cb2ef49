"""Internals of the Keras front (`neuraxis.models`, `neuraxis.layers`, ...)."""
