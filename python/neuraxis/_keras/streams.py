"""Data that is not one array: Python generators / iterators and `PyDataset` (Keras's
`keras.utils.PyDataset`, alias `Sequence`) for fit / evaluate / predict.

The batches are run as they come, one engine call per batch, so a stream is never
materialised. Which batches an epoch gets follows Keras 3's `EpochIterator` rule for
rule: a finite generator without `steps_per_epoch` ends its first epoch when it runs
out (Keras warns "Your input ran out of data" then, too) and later epochs replay the
two batches Keras peeked at the start; with `steps_per_epoch` the generator is carried
on across epochs; a `PyDataset` of `len(ds)` batches gives `len(ds)` steps an epoch, in
an order shuffled with Python's `random` when `shuffle=True`, as Keras does.

Example
-------
>>> import numpy as np
>>> from neuraxis.models import Sequential
>>> from neuraxis.layers import Dense, Input
>>> model = Sequential([Input((3,)), Dense(1)])
>>> model.compile("sgd", "mse")
>>> def batches():
...     for _ in range(4):
...         yield np.ones((8, 3), np.float32), np.zeros((8, 1), np.float32)
>>> len(model.fit(batches(), epochs=1, steps_per_epoch=4, shuffle=False, verbose=0).epoch)
1
"""
import itertools
import random
import types
import warnings

import numpy as np

from . import data, penalties, trainer
from .progbar import Progbar
from .specs import check_inputs, network, output_shape
from .utils import user_stacklevel

PEEKED = 2  # Keras's NUM_BATCHES_FOR_TENSOR_SPEC: batches read ahead to see the structure


class PyDataset:
    """Base class for a dataset of batches computed in Python (`keras.utils.PyDataset`).

    Implement `__len__` (the number of batches) and `__getitem__(index)` returning a
    batch `(x, y)`, `(x, y, sample_weight)`, `(x,)` or `x`; optionally `on_epoch_begin` /
    `on_epoch_end`. `workers`, `use_multiprocessing` and `max_queue_size` are accepted and
    kept as Keras keeps them; batches are read in the calling thread, in order.

    Example
    -------
    >>> import numpy as np
    >>> from neuraxis.utils import PyDataset
    >>> class Batches(PyDataset):
    ...     def __init__(self, x, y, batch_size, **kwargs):
    ...         super().__init__(**kwargs)
    ...         self.x, self.y, self.batch_size = x, y, batch_size
    ...     def __len__(self):
    ...         return -(-len(self.x) // self.batch_size)
    ...     def __getitem__(self, i):
    ...         s = slice(i * self.batch_size, (i + 1) * self.batch_size)
    ...         return self.x[s], self.y[s]
    >>> len(Batches(np.zeros((10, 2)), np.zeros(10), 4, workers=2))
    3
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self._workers = workers
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = max_queue_size

    def _warn_if_super_not_called(self):
        warn = False
        for name, default in (("_workers", 1), ("_use_multiprocessing", False),
                              ("_max_queue_size", 10)):
            if not hasattr(self, name):
                setattr(self, name, default)
                warn = True
        if warn:
            warnings.warn("Your `PyDataset` class should call `super().__init__(**kwargs)` in "
                          "its constructor. `**kwargs` can include `workers`, "
                          "`use_multiprocessing`, `max_queue_size`. Do not pass these arguments "
                          "to `fit()`, as they will be ignored.", stacklevel=user_stacklevel())

    @property
    def workers(self):
        self._warn_if_super_not_called()
        return self._workers

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self):
        self._warn_if_super_not_called()
        return self._use_multiprocessing

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = value

    @property
    def max_queue_size(self):
        self._warn_if_super_not_called()
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        raise NotImplementedError

    def __iter__(self):
        try:
            n = self.num_batches
        except NotImplementedError:
            n = None
        for index in (range(n) if n is not None else itertools.count()):
            yield self[index]

    @property
    def num_batches(self):
        """The number of batches (`len(self)`), or None for an endless dataset."""
        if hasattr(self, "__len__"):
            return len(self)
        raise NotImplementedError("You need to implement the `num_batches` property:\n\n"
                                  "@property\ndef num_batches(self):\n  return ...")

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


def is_stream(x):
    """Whether `x` is batches to iterate (a generator, an iterator, a PyDataset)."""
    return isinstance(x, (PyDataset, types.GeneratorType)) or (
        hasattr(x, "__next__") and hasattr(x, "__iter__") and not isinstance(x, np.ndarray))


def _unsupported(arg, description, kind):
    raise ValueError(f"When providing `x` as a {kind}, `{arg}` should not be passed. Instead, "
                     f"{description} should be included as part of the {kind}.")


class GeneratorAdapter:
    """A generator's batches; the first two are read ahead (Keras checks their structure and
    yields them again before the rest, each time the stream is restarted)."""

    num_batches = None

    def __init__(self, generator):
        self.first = list(itertools.islice(generator, PEEKED))
        self.rest = generator
        if not self.first:
            raise ValueError("When passing a Python generator to a Keras model, the generator "
                             "must yield at least one batch. Received an empty generator.")
        if not isinstance(self.first[0], tuple):
            raise ValueError("When passing a Python generator to a Keras model, the generator "
                             "must return a tuple, either (input,) or (inputs, targets) or "
                             f"(inputs, targets, sample_weights). Received: {self.first[0]}")

    def iterator(self):
        return itertools.chain(self.first, self.rest)

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


class PyDatasetAdapter:
    def __init__(self, ds, class_weight=None, shuffle=False):
        self.ds, self.class_weight, self.shuffle = ds, class_weight, shuffle
        self.within_epoch = False
        ds.workers  # noqa: B018  (Keras reads them here: warns if super().__init__ was skipped)

    @property
    def num_batches(self):
        return self.ds.num_batches

    def standardize(self, batch):
        if isinstance(batch, np.ndarray):
            batch = (batch,)
        if isinstance(batch, list):
            batch = tuple(batch)
        if not isinstance(batch, tuple) or len(batch) not in (1, 2, 3):
            raise ValueError("PyDataset.__getitem__() must return a tuple or a dict. If a tuple, "
                             "it must be ordered either (input,) or (inputs, targets) or "
                             "(inputs, targets, sample_weights). Received: "
                             f"{str(batch)[:100]}... of type {type(batch)}")
        if self.class_weight is not None:
            if len(batch) == 3:
                raise ValueError("You cannot specify `class_weight` and `sample_weight` at the "
                                 "same time.")
            if len(batch) == 2:
                batch = batch + (data.sample_weights(None, self.class_weight, batch[1],
                                                     len(batch[1])),)
        return batch

    def iterator(self):
        n = self.ds.num_batches
        if n is None:
            indices = itertools.count()
        else:
            indices = list(range(n))
            if self.shuffle:
                random.shuffle(indices)  # Keras's draw: reproducible with set_random_seed
        return (self.standardize(self.ds[i]) for i in indices)

    def on_epoch_begin(self):
        if self.within_epoch:
            raise ValueError("`on_epoch_begin` was called twice without `on_epoch_end` having "
                             "been called.")
        self.within_epoch = True
        self.ds.on_epoch_begin()

    def on_epoch_end(self):
        self.ds.on_epoch_end()
        self.within_epoch = False


def adapter(x, y=None, sample_weight=None, class_weight=None, shuffle=False):
    """The adapter for stream `x`, refusing what Keras refuses with its words."""
    if isinstance(x, PyDataset):
        if y is not None:
            _unsupported("y", "the targets", "PyDataset")
        if sample_weight is not None:
            _unsupported("sample_weights", "the sample weights", "PyDataset")
        if getattr(x, "num_batches", None) is None and shuffle:
            warnings.warn("`shuffle=True` was passed, but will be ignored since the data `x` "
                          "was provided as an infinite PyDataset. The PyDataset is expected to "
                          "already be shuffled.", stacklevel=user_stacklevel())
        return PyDatasetAdapter(x, class_weight, shuffle)
    if y is not None:
        _unsupported("y", "the targets", "generator")
    if sample_weight is not None:
        _unsupported("sample_weights", "the sample weights", "generator")
    if class_weight is not None:
        raise ValueError("Argument `class_weight` is not supported for Python generator "
                         f"inputs. Received: class_weight={class_weight}")
    if shuffle:
        warnings.warn("`shuffle=True` was passed, but will be ignored since the data `x` was "
                      "provided as a generator. The generator is expected to yield "
                      "already-shuffled data.", stacklevel=user_stacklevel())
    return GeneratorAdapter(x)


class EpochIterator:
    """Keras 3's EpochIterator (steps_per_execution=1): `for step, batch in it.epoch()`."""

    def __init__(self, adapter, steps=None):
        self.adapter, self.steps = adapter, steps
        self.num = adapter.num_batches  # known, or learnt when a stream first runs out
        self.current, self.seen = None, 0

    @property
    def num_batches(self):
        return self.steps or self.num

    def reset(self):
        """Keras calls this before fit's first epoch and before each evaluate (so a
        PyDataset's on_epoch_end runs there too, and a generator's length is forgotten)."""
        self.current, self.seen = None, 0
        self.num = self.adapter.num_batches
        self.adapter.on_epoch_end()

    def ran_out(self):
        warnings.warn("Your input ran out of data; interrupting training. Make sure that your "
                      "dataset or generator can generate at least `steps_per_epoch * epochs` "
                      "batches. You may need to use the `.repeat()` function when building "
                      "your dataset.", UserWarning, stacklevel=user_stacklevel())

    def epoch(self):
        self.adapter.on_epoch_begin()
        steps = self.steps or self.num or -1
        if steps > 0:
            if self.current is None or self.steps is None:
                self.current, self.seen = iter(self.adapter.iterator()), 0
            for step in range(steps):
                if self.num and self.seen >= self.num:
                    if self.steps:
                        self.ran_out()
                    break
                self.seen += 1
                batch = self._next()
                if batch is None:
                    return
                yield step, batch
            if self.num and self.seen >= self.num:
                self.current, self.seen = iter(self.adapter.iterator()), 0
        else:
            self.current = iter(self.adapter.iterator())
            for step in itertools.count():
                self.seen = step + 1
                batch = self._next()
                if batch is None:
                    return
                yield step, batch
        self.adapter.on_epoch_end()

    def _next(self):
        try:
            return next(self.current)
        except StopIteration:
            if self.num is None:
                self.num = self.seen
            self.ran_out()
            self.current = None
            self.adapter.on_epoch_end()
            return None


# --- one batch through the engine -------------------------------------------------------
def unpack(batch):
    """Keras's unpack_x_y_sample_weight."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        return batch, None, None
    if len(batch) in (1, 2, 3):
        return tuple(batch) + (None,) * (3 - len(batch))
    raise ValueError("Data is expected to be in format `x`, `(x,)`, `(x, y)`, or "
                     f"`(x, y, sample_weight)`, found: {batch}")


def features(model, x):
    X = data.as_features(x, model._build_input_shape if model.built else None, model.name)
    if not model.built:
        model.build((None,) + X.shape[1:])
    check_inputs(model, X)
    X = X.reshape(len(X), -1)
    data.check_finite(X)
    return X


def prepared(model, batch, what):
    """(X, plan, sw) of one (x, y[, sw]) batch, checked as an array call checks its data."""
    x, y, sw = unpack(batch)
    X = features(model, x)
    if y is None:
        raise ValueError(f"`{what}` needs targets: the batches must be (x, y) or "
                         "(x, y, sample_weight) tuples")
    if model._loss is None:
        raise ValueError("No loss to compute. Provide a `loss` argument in `compile()`.")
    plan = trainer.Plan(model, y, len(X), output_shape(model, X))
    return X, plan, data.sample_weights(sw, None, y, len(X))


def evaluate(model, it, bar=None):
    """Loss and metrics over one pass of EpochIterator `it` (one engine call per batch)."""
    running, done = None, 0
    it.reset()
    for step, batch in it.epoch():
        X, plan, sw = prepared(model, batch, "evaluate")
        net, params = network(model, plan.engine_loss, X)
        if running is None:
            running = trainer.Running(plan.names, plan.weighted, plan.streams)
        running.add(penalties.add_penalty(model, net.evaluate(params, X, plan.Y, sw, len(X),
                                                              plan.engine_metrics)))
        done = step + 1
        if bar is not None:
            bar.update(done, list(running.logs().items()), finalize=False)
    if running is None:
        raise ValueError("evaluate got no batches from the data")
    if bar is not None:
        if bar.target is None:
            bar.target = done
        bar.update(bar.target, list(running.logs().items()), finalize=True)
    return running


def predict(model, x, steps, verbose):
    """Concatenated outputs over the stream's batches (their `x` part)."""
    it = EpochIterator(adapter(x), steps)
    it.reset()
    bar = Progbar(it.num_batches, verbose=verbose) if verbose else None
    outs, done = [], 0
    for step, batch in it.epoch():
        X = features(model, unpack(batch)[0])
        net, params = network(model, model._net_key[-1] if model._net_key else "mse", X)
        out, nonfinite = net.predict(params, X)
        outs.append(out.reshape((len(X),) + output_shape(model, X)[1:]))
        done = step + 1
        if bar is not None:
            bar.update(done, finalize=False)
    if not outs:
        raise ValueError("predict got no batches from the data")
    if bar is not None:
        if bar.target is None:
            bar.target = done
        bar.update(bar.target, finalize=True)
    return np.concatenate(outs)


# --- fit ----------------------------------------------------------------------------------
def batch_seed(seed, step):
    """A dropout seed per batch: the engine numbers rows within one call, and here every
    call is one batch, so the epoch's seed is spread over the steps."""
    return (seed + (step + 1) * 0x9E3779B97F4A7C15) % (2**63 - 1)


def close_bars(cbs):
    """End a progress line left open by an interrupt (without calling on_train_end: Keras
    does not reach it either)."""
    for cb in cbs.callbacks:
        bar = getattr(cb, "bar", None)
        if bar is not None and hasattr(bar, "close_line"):
            bar.close_line()


def fit(model, x, y, sample_weight, batch_size, epochs, verbose, callbacks, validation_split,
        validation_data, shuffle, class_weight, initial_epoch, steps_per_epoch, validation_steps,
        validation_batch_size, validation_freq, callback_list):
    """`Sequential.fit` on a generator or PyDataset `x` (see trainer.fit for the arrays)."""
    given_verbose, verbose = verbose, data.verbosity(verbose)
    trainer.check_fit_args(epochs, initial_epoch, validation_freq)
    model._assert_compiled("fit")
    if validation_split and validation_data is None:
        raise ValueError("Argument `validation_split` is only supported for tensors or NumPy "
                         f"arrays.Found incompatible type in the input: [{type(x)}]")
    for name, value in (("steps_per_epoch", steps_per_epoch),
                        ("validation_steps", validation_steps)):
        if value is not None and (isinstance(value, bool) or not isinstance(
                value, (int, np.integer)) or value <= 0):
            raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
    it = EpochIterator(adapter(x, y, sample_weight, class_weight, shuffle), steps_per_epoch)
    val = val_it = val_arrays = None
    if validation_data is not None:
        val = unpack(validation_data)
        if is_stream(val[0]):
            val_it = EpochIterator(adapter(*val), validation_steps)
    it.reset()
    cbs = callback_list(callbacks, model=model, add_history=True, add_progbar=verbose != 0,
                        verbose=given_verbose, epochs=epochs, steps=it.num_batches)
    model.stop_training = False
    logs = {}
    cbs.on_train_begin()
    try:
        for epoch in range(initial_epoch, epochs):
            running = None
            cbs.on_epoch_begin(epoch)
            seed = trainer.dropout_seed(model)
            for step, batch in it.epoch():
                cbs.on_train_batch_begin(step)
                X, plan, sw = prepared(model, batch, "fit")
                net, params = network(model, plan.engine_loss, X)
                model.optimizer.build(params, trainable=net.param_trainable)
                if running is None:
                    running = model._running = trainer.Running(plan.names, plan.weighted,
                                                               plan.streams)
                running.add(trainer.train_chunk(model, net, params, X, plan.Y, sw, None, len(X),
                                                0, 1, plan.engine_metrics,
                                                batch_seed(seed, step)))
                cbs.on_train_batch_end(step, running.logs())
                if model.stop_training:
                    break
            logs = running.logs() if running is not None else {}
            freq = validation_freq
            if val is not None and ((epoch + 1) % freq == 0 if isinstance(freq, int)
                                    else epoch + 1 in freq):
                if val_it is not None:
                    vr = evaluate(model, val_it)
                else:
                    if val_arrays is None:
                        val_arrays = trainer.prepare(model, *val)
                    Xv, vplan, swv = val_arrays
                    vnet, params = network(model, vplan.engine_loss, Xv)
                    vr = trainer.evaluate_arrays(
                        model, vnet, params, Xv, vplan.Y, swv,
                        data.batch_size(validation_batch_size, data.batch_size(batch_size)),
                        vplan.names, vplan.engine_metrics, streams=vplan.streams)
                logs.update({"val_" + k: v for k, v in vr.logs().items()})
            cbs.on_epoch_end(epoch, logs)
            if model.stop_training:
                break
    except KeyboardInterrupt:
        model.stop_training = True
        close_bars(cbs)
        raise
    cbs.on_train_end(logs)
    return cbs.history
