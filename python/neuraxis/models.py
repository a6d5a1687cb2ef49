"""`Sequential`, the Keras front's model, and `load_model`.

A Sequential model is a list of config-only layers. On first data (or `build`)
each layer creates its float32 weights; `fit`/`evaluate`/`predict` compile the
list into one engine network (see `_keras.specs.engine_specs`) that updates
those same arrays in place.

Example
-------
>>> import numpy as np
>>> from neuraxis.models import Sequential
>>> from neuraxis.layers import Dense, Input
>>> model = Sequential([Input((2,)), Dense(1, activation="sigmoid")])
>>> model.set_weights([np.array([[5.], [-3.]]), np.array([1.])])
>>> float(model.predict(np.array([[-3., 2.]]), verbose=0)[0, 0]) < 1e-8
True
"""
import json

import numpy as np

from ._locks import serialized
from . import callbacks as callbacks_mod, layers as layers_mod, losses as losses_mod
from . import metrics as metrics_mod, optimizers as optimizers_mod, saving
from ._keras import data, penalties, session, specs, streams, trainer
from ._keras.progbar import Progbar
from ._keras.summary import print_summary
from ._keras.utils import (check_input_shape, check_weight_list, normalize_shape,
                           shapes_compatible)
from .layers import InputLayer, KerasTensor, Layer
from .saving import load_model, model_from_json, save_model  # noqa: F401  (re-exported)

__all__ = ["Model", "Sequential", "load_model", "save_model", "model_from_json"]

# How the trainer checks and encodes targets for a loss (see _keras.data.targets).
_TARGET_KINDS = ((losses_mod.SparseCategoricalCrossentropy, "sparse"),
                 (losses_mod.CategoricalCrossentropy, "categorical"),
                 (losses_mod.BinaryCrossentropy, "binary"))


class Model:
    """Keras's model base class. Only its `Sequential` form exists here: a functional
    `Model(inputs, outputs)` or a subclassed model raises NotImplementedError."""

    def __new__(cls, *args, **kwargs):
        if not issubclass(cls, Sequential):
            raise NotImplementedError(
                "Only Sequential models are supported here: the functional API "
                "(keras.Model(inputs, outputs)) and subclassed models (class M(keras.Model)) "
                "are not. Build the model as keras.Sequential([keras.Input(...), ...]).")
        return super().__new__(cls)


class Sequential(Model):
    """A linear stack of layers, trained by the C++ engine with Keras's API.

    Example
    -------
    >>> from neuraxis.models import Sequential
    >>> from neuraxis.layers import Dense, LeakyReLU, Input
    >>> model = Sequential([Input((64,)), Dense(100), LeakyReLU(negative_slope=0.01),
    ...                     Dense(10, activation="softmax")])
    >>> model.compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    >>> model.count_params()
    7510
    """

    # pickle / deepcopy: the engine network is a cache, rebuilt on the next call
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_net"] = None
        state["_net_key"] = None
        state["_nets"] = {}
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __init__(self, layers=None, trainable=True, name=None):
        self.name = name or session.unique_name("sequential")
        self.trainable = bool(trainable)
        self._layers = []
        self.built = False
        self._build_input_shape = None
        self.optimizer = self.loss = None
        self._loss = None
        self._metrics_spec = []
        self._metric_names = []
        self._metric_directions = {}
        self._compile_config = None
        self.compiled = False
        self.stop_training = False
        self.history = None
        self._net = self._net_key = None
        self._nets = {}  # engine networks by (input shape, layers, loss): see specs.network
        self._running = trainer.Running()
        for layer in layers or []:
            self.add(layer, rebuild=False)
        if self._layers:
            self._maybe_rebuild()

    # --- structure ------------------------------------------------------------------
    @property
    def layers(self):
        """The layers, without the InputLayer (as in Keras)."""
        return [la for la in self._layers if not isinstance(la, InputLayer)]

    @layers.setter
    def layers(self, _):
        raise AttributeError("`Model.layers` attribute is reserved and should not be used. "
                             "Please use another name.")

    def add(self, layer, rebuild=True):
        """Append a layer (or the InputLayer of an `Input(...)`)."""
        if isinstance(layer, KerasTensor):
            layer = layer._input_layer
        if not isinstance(layer, Layer):
            raise ValueError("Only instances of `neuraxis.layers.Layer` can be added to a "
                             f"Sequential model. Received: {layer!r} (of type {type(layer)})")
        if isinstance(layer, InputLayer):
            if self._layers and isinstance(self._layers[0], InputLayer):
                raise ValueError(f"Sequential model '{self.name}' has already been configured to "
                                 f"use input shape {self._layers[0].batch_shape}. You cannot add "
                                 "a different Input layer to it.")
            if self._layers:
                raise ValueError("An Input/InputLayer can only be the first layer of a "
                                 "Sequential model")
        elif not self._layers and layer._input_shape_arg is not None:
            self._layers.append(InputLayer(shape=layer._input_shape_arg))
        if any(la.name == layer.name for la in self._layers):
            raise ValueError("All layers added to a Sequential model should have unique names. "
                             f"Name '{layer.name}' is already the name of a layer in this model. "
                             "Update the `name` argument to pass a unique name.")
        self._layers.append(layer)
        self.built = False
        if rebuild:
            self._maybe_rebuild()

    def pop(self, rebuild=True):
        """Remove and return the last layer."""
        if not self.layers:
            raise TypeError("There are no layers in the model.")
        layer = self._layers.pop()
        self.built = False
        if rebuild:
            self._maybe_rebuild()
        return layer

    def _maybe_rebuild(self):
        first = self._layers[0] if self._layers else None
        if isinstance(first, InputLayer) and len(self._layers) > 1:
            self.build(first.batch_shape)
        elif self._build_input_shape is not None and self.layers:
            self.build(self._build_input_shape)

    def build(self, input_shape=None):
        """Create every layer's weights for inputs of `input_shape` (batch dimension first)."""
        first = self._layers[0] if self._layers else None
        if input_shape is None:
            if not isinstance(first, InputLayer):
                raise ValueError("You must provide an `input_shape` argument.")
            input_shape = first.batch_shape
        shape = (None,) + normalize_shape(tuple(input_shape)[1:], "input_shape")
        check_input_shape(shape, "input_shape")
        if isinstance(first, InputLayer) and shape[1:] != first.batch_shape[1:]:
            raise ValueError(f"Sequential model '{self.name}' has already been configured to use "
                             f"input shape {first.batch_shape}. You cannot build it with "
                             f"input_shape {tuple(input_shape)}")
        if not self.layers:
            raise ValueError(f"Sequential model {self.name} cannot be built because it has no "
                             "layers. Call `model.add(layer)`.")
        self._build_input_shape = shape
        cur = shape
        for layer in self.layers:
            if layer.built and layer._build_shape is not None:
                if not shapes_compatible(layer._build_shape[1:], cur[1:]):
                    raise ValueError(f"Input 0 of layer \"{layer.name}\" is incompatible with the "
                                     f"layer: expected shape={layer._build_shape}, found "
                                     f"shape={cur}")
                if tuple(layer._build_shape[1:]) != tuple(cur[1:]):
                    layer._finish_build(cur)  # e.g. now a variable steps axis: same weights
            else:
                layer.build(cur)
                layer._built_by_model = True  # serialize: Keras's build_config rule
            cur = layer.output_shape
        self.built = True

    @property
    def input_shape(self):
        return self._build_input_shape

    @property
    def output_shape(self):
        return self.layers[-1].output_shape if self.built else None

    def get_layer(self, name=None, index=None):
        """A layer by name or by index in `layers`."""
        if index is not None:
            return self.layers[index]
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise ValueError(f"No such layer: {name}. Existing layers are: "
                         f"{[la.name for la in self.layers]}.")

    # --- weights --------------------------------------------------------------------
    @property
    def weights(self):
        return [w for la in self.layers for w in la.weights]

    @property
    def trainable_weights(self):
        return [w for la in self.layers for w in la.trainable_weights] if self.trainable else []

    @property
    def non_trainable_weights(self):
        if not self.trainable:
            return self.weights
        return [w for la in self.layers for w in la.non_trainable_weights]

    def get_weights(self):
        """Copies of all weights, layer by layer (Dense: kernel, bias)."""
        return [w.copy() for w in self.weights]

    def set_weights(self, weights):
        """Copy a `get_weights()`-style list into the model (checked before anything changes)."""
        self._require_built("set_weights")
        named = [(f"{la.name}/{n}", a) for la in self.layers for n, a in la._weights]
        check_weight_list(self.name, named, weights)
        for (_, a), w in zip(named, weights):
            a[...] = np.asarray(w, dtype=np.float32)

    def count_params(self):
        self._require_built("count_params")
        return int(sum(w.size for w in self.weights))

    def _require_built(self, what):
        if not self.built:
            raise ValueError(f"You tried to call `{what}` on model '{self.name}', but the model "
                             "isn't built. Build it with `model.build(input_shape)`, an "
                             "Input(shape) first layer, or by calling it on data.")

    # --- compile / train / infer ----------------------------------------------------
    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None,
                weighted_metrics=None, run_eagerly=False, steps_per_execution=1,
                jit_compile="auto", auto_scale_loss=True):
        """Set the optimizer, loss and metrics (strings or objects, Keras's names)."""
        opt = optimizers_mod.get(optimizer)
        if isinstance(loss, (dict, list, tuple)):
            raise ValueError("A Sequential model has one output: pass a single loss")
        resolved = None if loss is None else losses_mod.get(loss)
        if isinstance(resolved, losses_mod.Loss) and resolved._kw.get("from_logits"):
            raise NotImplementedError("from_logits=True is not supported yet; use a softmax or "
                                      "sigmoid output layer")
        if loss_weights is not None:
            raise NotImplementedError("loss_weights is not supported (single output)")
        spec = []
        for arg, value in (("metrics", metrics), ("weighted_metrics", weighted_metrics)):
            if value is None:
                continue
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"Expected `{arg}` argument to be a list, tuple, or dict. "
                                 f"Received instead: {arg}={value!r} of type {type(value)}")
            # (metric, weighted): Keras 3 applies sample weights to weighted_metrics only
            spec += [(metrics_mod.check(m), arg == "weighted_metrics") for m in value]
        self.optimizer, self.loss, self._loss = opt, loss, resolved
        self._metrics_spec = spec
        self._metric_names = []
        # Keras keeps its metrics container from an earlier compile when this one has none
        self._compile_metrics = getattr(self, "_compile_metrics", False) or (
            metrics is not None or weighted_metrics is not None)
        self._compile_config = {
            "optimizer": optimizers_mod.serialize(opt),
            "loss": loss if loss is None or isinstance(loss, str) else losses_mod.serialize(
                resolved),
            "loss_weights": None,
            "metrics": None if metrics is None else [metrics_mod.serialize(m) for m in metrics],
            "weighted_metrics": None if weighted_metrics is None else
            [metrics_mod.serialize(m) for m in weighted_metrics],
            "run_eagerly": False, "steps_per_execution": 1, "jit_compile": False}
        self.compiled = True

    def _assert_compiled(self, method):
        if not self.compiled:
            raise ValueError(f"You must call `compile()` before calling `{method}()`.")

    def _resolve_compile(self, y_shape):
        """compile()'s loss and metrics for targets of `y_shape`, in the trainer's terms (the
        trainer never imports the losses and metrics modules): (loss, target kind, metrics),
        metrics as [(history key, engine metric, direction, weighted)]. 'crossentropy' and
        'accuracy' are chosen from the shapes, as Keras does."""
        out_shape = self.output_shape
        loss = self._loss
        if isinstance(loss, str):
            loss = losses_mod.resolve_by_shape(y_shape, out_shape)
        kind = next((k for cls, k in _TARGET_KINDS if isinstance(loss, cls)), None)
        metrics = []
        for m, weighted in self._metrics_spec:
            name, cls = metrics_mod.resolve(m, y_shape, out_shape)
            # a streaming metric (counts in slots) comes with its object, which reduces them
            metrics.append((name, cls._engine, cls._direction, weighted) +
                           ((cls,) if hasattr(cls, "_from_sums") else ()))
        return loss, kind, metrics

    @property
    def metrics_names(self):
        """Keras 3's: the loss tracker and the one container of compiled metrics by name
        (`['loss', 'compile_metrics']`), [] before compile."""
        if not self.compiled:
            return []
        return ["loss"] + (["compile_metrics"] if self._compile_metrics else [])

    @serialized
    def fit(self, x=None, y=None, batch_size=None, epochs=1, verbose="auto", callbacks=None,
            validation_split=0.0, validation_data=None, shuffle=True, class_weight=None,
            sample_weight=None, initial_epoch=0, steps_per_epoch=None, validation_steps=None,
            validation_batch_size=None, validation_freq=1):
        """Train for `epochs` epochs; returns a `History` (`.history` dict of lists).

        `x` may be arrays (with `y`), or a generator / PyDataset of `(x, y)` or
        `(x, y, sample_weight)` batches (see `_keras.streams`)."""
        if streams.is_stream(x):
            return streams.fit(self, x, y, sample_weight, batch_size, epochs, verbose,
                               callbacks, validation_split, validation_data, shuffle,
                               class_weight, initial_epoch, steps_per_epoch, validation_steps,
                               validation_batch_size, validation_freq, callbacks_mod.CallbackList)
        if steps_per_epoch is not None or validation_steps is not None or (
                validation_data is not None and streams.is_stream(
                    streams.unpack(validation_data)[0])):
            raise NotImplementedError("steps_per_epoch, validation_steps and a generator as "
                                      "validation_data are supported when x is a generator or "
                                      "PyDataset; with arrays pass arrays")
        return trainer.fit(self, x, y, batch_size, epochs, verbose, callbacks, validation_split,
                           validation_data, shuffle, class_weight, sample_weight, initial_epoch,
                           validation_batch_size, validation_freq, callbacks_mod.CallbackList)

    @serialized
    def evaluate(self, x=None, y=None, batch_size=None, verbose="auto", sample_weight=None,
                 steps=None, callbacks=None, return_dict=False):
        """Loss and metrics on (x, y): `[loss, *metrics]`, a scalar, or a dict."""
        verbose, bs = data.verbosity(verbose), data.batch_size(batch_size)
        if streams.is_stream(x):
            self._assert_compiled("evaluate")
            it = streams.EpochIterator(streams.adapter(x, y, sample_weight), steps)
            bar = Progbar(it.num_batches, verbose=verbose) if verbose else None
            self._running = streams.evaluate(self, it, bar)
            return self._results(return_dict)
        if steps is not None:
            raise NotImplementedError("`steps` is supported for generators and PyDataset; "
                                      "with arrays, slice them instead")
        X, plan, sw = trainer.prepare(self, x, y, sample_weight, what="evaluate")
        net, params = specs.network(self, plan.engine_loss, X)
        bar = Progbar(-(-len(X) // bs), verbose=verbose) if verbose else None
        self._running = trainer.evaluate_arrays(self, net, params, X, plan.Y, sw, bs, plan.names,
                                                plan.engine_metrics, bar, plan.streams)
        return self._results(return_dict)

    def _results(self, return_dict):
        if return_dict:
            return self._running.logs()
        values = self._running.values()
        return values[0] if len(values) == 1 else values

    @serialized
    def predict(self, x, batch_size=None, verbose="auto", steps=None, callbacks=None):
        """Model outputs for `x` as a float32 NumPy array (no dropout)."""
        verbose, bs = data.verbosity(verbose), data.batch_size(batch_size)
        if streams.is_stream(x):
            return streams.predict(self, x, steps, verbose)
        if steps is not None:
            raise NotImplementedError("`steps` is supported for generators and PyDataset; "
                                      "with arrays, slice them instead")
        X = self._features(x)
        out = trainer.predict_arrays(self, X, bs, verbose)
        return out.reshape((len(X),) + specs.output_shape(self, X)[1:])

    @serialized
    def predict_on_batch(self, x):
        """`predict` on one batch: no progress bar."""
        X = self._features(x)
        return trainer.predict_arrays(self, X, max(len(X), 1), 0).reshape(
            (len(X),) + specs.output_shape(self, X)[1:])

    def __call__(self, x, training=False):
        return self.predict_on_batch(x)

    def _features(self, x):
        x = data.as_features(x, self._build_input_shape if self.built else None, self.name)
        if not self.built:
            self.build((None,) + x.shape[1:])
        specs.check_inputs(self, x)
        return x.reshape(len(x), -1)

    @serialized
    def train_on_batch(self, x, y=None, sample_weight=None, class_weight=None,
                       return_dict=False):
        """One optimizer step on (x, y) as a single batch; returns this batch's loss and
        metrics (Keras 3 resets the metrics at every call)."""
        X, plan, sw = trainer.prepare(self, x, y, sample_weight, class_weight, "train_on_batch")
        net, params = specs.network(self, plan.engine_loss, X)
        self.optimizer.build(params, trainable=net.param_trainable)
        self._running = trainer.Running(plan.names, plan.weighted, plan.streams)
        res = trainer.train_chunk(self, net, params, X, plan.Y, sw, None, len(X), 0, 1,
                                  plan.engine_metrics, trainer.dropout_seed(self))
        self._running.add(res)
        return self._results(return_dict)

    @serialized
    def test_on_batch(self, x, y=None, sample_weight=None, return_dict=False):
        """Loss and metrics on one batch (the metrics reset first, as Keras 3)."""
        X, plan, sw = trainer.prepare(self, x, y, sample_weight, what="test_on_batch")
        net, params = specs.network(self, plan.engine_loss, X)
        self._running = trainer.Running(plan.names, plan.weighted, plan.streams)
        self._running.add(penalties.add_penalty(self, net.evaluate(
            params, X, plan.Y, sw, max(len(X), 1), plan.engine_metrics)))
        return self._results(return_dict)

    def reset_metrics(self):
        self._running = trainer.Running(self._running.names, self._running.weighted,
                                        self._running.streams)

    # --- inspection and persistence -------------------------------------------------
    def summary(self, line_length=None, positions=None, print_fn=None, expand_nested=False,
                show_trainable=False, layer_range=None):
        """Print Keras's table of layers, output shapes and parameter counts."""
        print_summary(self, line_length, positions, print_fn, show_trainable, layer_range)

    def get_config(self):
        config = {"name": self.name, "trainable": self.trainable,
                  "dtype": {"module": "keras", "class_name": "DTypePolicy",
                            "config": {"name": "float32"}, "registered_name": None},
                  "layers": [layers_mod.serialize(la) for la in self._layers]}
        if self.built:
            config["build_input_shape"] = list(self._build_input_shape)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        """Recreate the (uncompiled) model; weights are fresh until `set_weights`/loading."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("A Sequential config must be a dict with a 'layers' list")
        model = cls(name=config.get("name"), trainable=config.get("trainable", True))
        for layer_config in config["layers"]:
            model.add(layers_mod.deserialize(layer_config, custom_objects), rebuild=False)
        shape = config.get("build_input_shape")
        if model._layers:
            if shape is not None:
                model.build(shape)
            else:
                model._maybe_rebuild()
        return model

    def to_json(self, **kwargs):
        from ._keras.keras_format import model_config
        config = model_config(self)  # with build_config, as Keras's serialize_keras_object
        config.setdefault("compile_config", {})  # Keras's get_compile_config() when uncompiled
        return json.dumps(config, **kwargs)

    def save(self, filepath, overwrite=True, zipped=None):
        """Write the model (config, weights, compile and optimizer state): `.keras` is Keras 3's
        format, `.neuraxis` neuraxis's own zip."""
        save_model(self, filepath, overwrite=overwrite)

    def save_weights(self, filepath, overwrite=True):
        """Write the weights to a `.weights.h5` (Keras's layout) or `.weights.npz` file."""
        saving.save_weights(self, filepath, overwrite)

    def load_weights(self, filepath, skip_mismatch=False):
        """Load weights written by `save_weights` (or a full model file)."""
        saving.load_weights(self, filepath, skip_mismatch)

    def __repr__(self):
        return f"<Sequential name={self.name}, built={self.built}>"

