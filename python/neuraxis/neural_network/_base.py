"""The shared machinery of MLPClassifier and MLPRegressor.

The Python side mirrors ``sklearn.neural_network`` (parameters, validation,
random-state draws, stopping rules, fitted attributes); every forward,
backward and optimizer step runs in the C++ engine, one call per epoch.
"""
import warnings
import weakref
from numbers import Integral, Real

import numpy as np
import scipy.optimize
import scipy.sparse as sp
from sklearn.base import BaseEstimator, _fit_context, is_classifier
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, Options, StrOptions
from sklearn.utils.optimize import _check_optimize_result
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

from .._locks import serialized
from ._engine import (HIDDEN_ACTIVATIONS, AdamOptimizer, SGDOptimizer, as_engine_array,
                      build_network, engine_params)

_STOCHASTIC_SOLVERS = ["sgd", "adam"]
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))

# Engine objects and predict-ready parameter lists, per estimator. Kept out of
# the estimator's __dict__: they are caches (rebuilt on demand, never pickled)
# and predict must not change an estimator's attributes.
_CACHES = weakref.WeakKeyDictionary()


def _cache(est):
    c = _CACHES.get(est)
    if c is None:
        c = _CACHES[est] = {}
    return c


def _lbfgs_iprint_options(iprint):
    try:
        from sklearn.utils.fixes import _get_additional_lbfgs_options_dict
    except ImportError:  # pragma: no cover - older scikit-learn
        return {"iprint": iprint}
    return _get_additional_lbfgs_options_dict("iprint", iprint)


def _dense(X):
    """The engine reads dense rows (sparse input is densified a block at a time)."""
    return X.toarray() if sp.issparse(X) else X


# Sparse input is densified in blocks of about this many bytes, so a wide
# sparse matrix (text features) never becomes one huge dense array.
_SPARSE_BLOCK_BYTES = 64 << 20


def _sparse_block_rows(n_features, itemsize, batch_size):
    rows = max(1, _SPARSE_BLOCK_BYTES // max(1, n_features * itemsize))
    return max(batch_size, rows // batch_size * batch_size)


class BaseMultilayerPerceptron(BaseEstimator):
    """Shared machinery of MLPClassifier and MLPRegressor. Use those instead."""

    _parameter_constraints: dict = {
        "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "activation": [
            StrOptions(set(HIDDEN_ACTIVATIONS))
        ],
        "solver": [StrOptions({"lbfgs", "sgd", "adam"})],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "batch_size": [StrOptions({"auto"}), Interval(Integral, 1, None, closed="left")],
        "learning_rate": [StrOptions({"constant", "invscaling", "adaptive"})],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "power_t": [Interval(Real, 0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "random_state": ["random_state"],
        "tol": [Interval(Real, 0, None, closed="left")],
        "verbose": ["verbose"],
        "warm_start": ["boolean"],
        "momentum": [Interval(Real, 0, 1, closed="both")],
        "nesterovs_momentum": ["boolean"],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="left")],
        "beta_1": [Interval(Real, 0, 1, closed="left")],
        "beta_2": [Interval(Real, 0, 1, closed="left")],
        "epsilon": [Interval(Real, 0, None, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left"), Options(Real, {np.inf})],
        "max_fun": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, hidden_layer_sizes, activation, solver, alpha, batch_size, learning_rate,
                 learning_rate_init, power_t, max_iter, loss, shuffle, random_state, tol, verbose,
                 warm_start, momentum, nesterovs_momentum, early_stopping, validation_fraction,
                 beta_1, beta_2, epsilon, n_iter_no_change, max_fun):
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.loss = loss
        self.hidden_layer_sizes = hidden_layer_sizes
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun

    def _engine(self, dtype):
        """The engine network for the current architecture and dtype (cached)."""
        units = [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]
        key = (tuple(units), self.activation, self.out_activation_, np.dtype(dtype).str)
        store = _cache(self)
        cache = store.get("engine")
        if cache is None or cache[0] != key:
            cache = (key, build_network(units, self.activation, self.out_activation_, dtype))
            store["engine"] = cache
        return cache[1]

    def _params(self, dtype):
        """Engine-ready views of coefs_/intercepts_, fixing layout/dtype in place if needed."""
        for lst in (self.coefs_, self.intercepts_):
            for i, a in enumerate(lst):
                b = as_engine_array(a, dtype)
                if b is not a:
                    lst[i] = b
        return engine_params(self.coefs_, self.intercepts_)

    # ---- initialisation (scikit-learn's draws, in its order) ----------------
    def _initialize(self, y, layer_units, dtype):
        self.n_iter_ = 0
        self.t_ = 0
        self.n_outputs_ = y.shape[1]
        self.n_layers_ = len(layer_units)
        if not is_classifier(self):
            self.out_activation_ = "exp" if self.loss == "poisson" else "identity"
        elif self._label_binarizer.y_type_ == "multiclass":
            self.out_activation_ = "softmax"
        else:
            self.out_activation_ = "logistic"
        self.coefs_ = []
        self.intercepts_ = []
        for i in range(self.n_layers_ - 1):
            coef_init, intercept_init = self._init_coef(layer_units[i], layer_units[i + 1], dtype)
            self.coefs_.append(coef_init)
            self.intercepts_.append(intercept_init)
        self._best_coefs = [c.copy() for c in self.coefs_]
        self._best_intercepts = [i.copy() for i in self.intercepts_]
        if self.solver in _STOCHASTIC_SOLVERS:
            self.loss_curve_ = []
            self._no_improvement_count = 0
            if self.early_stopping:
                self.validation_scores_ = []
                self.best_validation_score_ = -np.inf
                self.best_loss_ = None
            else:
                self.best_loss_ = np.inf
                self.validation_scores_ = None
                self.best_validation_score_ = None

    def _init_coef(self, fan_in, fan_out, dtype):
        # Glorot uniform; factor 2 for logistic as in scikit-learn.
        factor = 2.0 if self.activation == "logistic" else 6.0
        init_bound = np.sqrt(factor / (fan_in + fan_out))
        coef_init = self._random_state.uniform(-init_bound, init_bound, (fan_in, fan_out))
        intercept_init = self._random_state.uniform(-init_bound, init_bound, fan_out)
        return coef_init.astype(dtype, copy=False), intercept_init.astype(dtype, copy=False)

    # ---- fit ----------------------------------------------------------------
    def _fit(self, X, y, sample_weight=None, incremental=False):
        hidden_layer_sizes = self.hidden_layer_sizes
        if not hasattr(hidden_layer_sizes, "__iter__"):
            hidden_layer_sizes = [hidden_layer_sizes]
        hidden_layer_sizes = list(hidden_layer_sizes)
        if np.any(np.array(hidden_layer_sizes) <= 0):
            raise ValueError("hidden_layer_sizes must be > 0, got %s." % hidden_layer_sizes)
        first_pass = not hasattr(self, "coefs_") or (not self.warm_start and not incremental)
        X, y = self._validate_input(X, y, incremental, reset=first_pass)
        n_samples, n_features = X.shape
        if sample_weight is not None:
            sample_weight = _check_sample_weight(sample_weight, X)
        if y.ndim == 1:
            y = y.reshape((-1, 1))
        self.n_outputs_ = y.shape[1]
        layer_units = [n_features] + hidden_layer_sizes + [self.n_outputs_]
        self._random_state = check_random_state(self.random_state)
        if first_pass:
            self._initialize(y, layer_units, X.dtype)
        elif [self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_] != layer_units:
            raise ValueError(
                "The network shape changed since the last fit: layer sizes "
                f"{[self.coefs_[0].shape[0]] + [c.shape[1] for c in self.coefs_]} were fitted, "
                f"{layer_units} are asked for. Use warm_start=False to start over."
            )
        if self.solver in _STOCHASTIC_SOLVERS:
            self._fit_stochastic(X, y, sample_weight, incremental)
        elif self.solver == "lbfgs":
            self._fit_lbfgs(X, y, sample_weight, layer_units)
        weights = list(self.coefs_) + list(self.intercepts_)
        if not all(np.isfinite(w).all() for w in weights):
            raise ValueError(
                "Solver produced non-finite parameter weights. The input data may"
                " contain large values and need to be preprocessed."
            )
        return self

    def _unpack(self, packed_parameters):
        """Point coefs_/intercepts_ at their slices of the packed vector (views)."""
        for i in range(self.n_layers_ - 1):
            start, end, shape = self._coef_indptr[i]
            self.coefs_[i] = np.reshape(packed_parameters[start:end], shape)
            start, end = self._intercept_indptr[i]
            self.intercepts_[i] = packed_parameters[start:end]

    def _loss_grad_lbfgs(self, packed_coef_inter, X, y, sample_weight, *_buffers):
        """Objective and packed gradient at `packed_coef_inter`, from the engine.

        Same signature as scikit-learn's (its activation/delta/gradient buffers
        are accepted and unused: the engine keeps its own).
        """
        dtype = np.dtype(np.float64)
        packed = np.ascontiguousarray(packed_coef_inter, dtype=dtype)
        self._unpack(packed)
        X = np.ascontiguousarray(_dense(X), dtype=dtype)
        y = np.asarray(y)
        Y = np.ascontiguousarray(y.reshape(-1, 1) if y.ndim == 1 else y, dtype=dtype)
        sw = None if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=dtype)
        grad = np.empty_like(packed)
        grad_coefs = [grad[a:b].reshape(shape) for a, b, shape in self._coef_indptr]
        grad_inters = [grad[a:b] for a, b in self._intercept_indptr]
        loss = self._engine(dtype).loss_grad(
            engine_params(self.coefs_, self.intercepts_), engine_params(grad_coefs, grad_inters),
            X, Y, sw, float(self.alpha))
        return loss, grad

    def _fit_lbfgs(self, X, y, sample_weight, layer_units):
        # Full batch in float64, as in scikit-learn (its packed vector is float64).
        self._coef_indptr = []
        self._intercept_indptr = []
        start = 0
        for i in range(self.n_layers_ - 1):
            n_fan_in, n_fan_out = layer_units[i], layer_units[i + 1]
            end = start + n_fan_in * n_fan_out
            self._coef_indptr.append((start, end, (n_fan_in, n_fan_out)))
            start = end
        for i in range(self.n_layers_ - 1):
            end = start + layer_units[i + 1]
            self._intercept_indptr.append((start, end))
            start = end
        dtype = np.float64
        X = np.ascontiguousarray(_dense(X), dtype=dtype)  # once, not per evaluation
        Y = np.ascontiguousarray(y, dtype=dtype)
        sw = None if sample_weight is None else np.ascontiguousarray(sample_weight, dtype=dtype)
        packed0 = np.hstack([c.ravel() for c in self.coefs_] +
                            [b.ravel() for b in self.intercepts_]).astype(dtype)
        iprint = 1 if (self.verbose is True or self.verbose >= 1) else -1
        opt_res = scipy.optimize.minimize(
            self._loss_grad_lbfgs, packed0, method="L-BFGS-B", jac=True,
            options={"maxfun": self.max_fun, "maxiter": self.max_iter, "gtol": self.tol,
                     **_lbfgs_iprint_options(iprint)},
            args=(X, Y, sw),
        )
        self.n_iter_ = _check_optimize_result("lbfgs", opt_res, self.max_iter)
        self.loss_ = opt_res.fun
        self._unpack(np.array(opt_res.x, dtype=dtype))
        # own, contiguous arrays (not views of scipy's vector)
        self.coefs_ = [np.ascontiguousarray(c).copy() for c in self.coefs_]
        self.intercepts_ = [np.ascontiguousarray(b).copy() for b in self.intercepts_]

    def _fit_stochastic(self, X, y, sample_weight, incremental):
        dtype = self.coefs_[0].dtype  # X's dtype on a first fit; kept on warm starts
        params = self._params(dtype)
        if not incremental or not hasattr(self, "_optimizer"):
            if self.solver == "sgd":
                self._optimizer = SGDOptimizer(params, self.learning_rate_init,
                                               self.learning_rate, self.momentum,
                                               self.nesterovs_momentum, self.power_t)
            elif self.solver == "adam":
                self._optimizer = AdamOptimizer(params, self.learning_rate_init, self.beta_1,
                                                self.beta_2, self.epsilon)
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        early_stopping = self.early_stopping
        if early_stopping:
            should_stratify = is_classifier(self) and self.n_outputs_ == 1
            stratify = y if should_stratify else None
            if sample_weight is None:
                X_train, X_val, y_train, y_val = train_test_split(
                    X, y, random_state=self._random_state, test_size=self.validation_fraction,
                    stratify=stratify)
                sample_weight_train = sample_weight_val = None
            else:
                (X_train, X_val, y_train, y_val, sample_weight_train,
                 sample_weight_val) = train_test_split(
                    X, y, sample_weight, random_state=self._random_state,
                    test_size=self.validation_fraction, stratify=stratify)
            if X_val.shape[0] < 2:
                raise ValueError(
                    "The validation set is too small. Increase 'validation_fraction' "
                    "or the size of your dataset."
                )
            if is_classifier(self):
                y_val = self._label_binarizer.inverse_transform(y_val)
        else:
            X_train, y_train, sample_weight_train = X, y, sample_weight
            X_val = y_val = sample_weight_val = None

        n_samples = X_train.shape[0]
        sample_idx = np.arange(n_samples, dtype=np.int64)
        if self.batch_size == "auto":
            batch_size = min(200, n_samples)
        else:
            if self.batch_size > n_samples:
                warnings.warn(
                    "Got `batch_size` less than 1 or larger than sample size. It is going to be "
                    "clipped"
                )
            batch_size = int(np.clip(self.batch_size, 1, n_samples))

        sparse = sp.issparse(X_train)
        Xe = X_train.tocsr() if sparse else np.ascontiguousarray(X_train, dtype=dtype)
        Ye = np.ascontiguousarray(y_train, dtype=dtype)
        swe = (None if sample_weight_train is None
               else np.ascontiguousarray(sample_weight_train, dtype=dtype))
        net = self._engine(dtype)
        alpha = float(self.alpha)
        try:
            self.n_iter_ = 0
            for it in range(self.max_iter):
                if self.shuffle:
                    # == sklearn.utils.shuffle(sample_idx, random_state=...)
                    order = np.arange(n_samples)
                    self._random_state.shuffle(order)
                    sample_idx = sample_idx[order]
                config, m, v = self._optimizer.config()
                try:
                    if sparse:
                        loss = self._sparse_epoch(net, dtype, config, m, v, Xe, Ye, swe,
                                                  sample_idx, batch_size, alpha)
                    else:
                        loss = net.fit_epoch(self._params(dtype), config, m, v, Xe, Ye, swe,
                                                sample_idx if self.shuffle else None, batch_size,
                                                alpha)
                finally:
                    self._optimizer.absorb(config)
                self.n_iter_ += 1
                self.loss_ = loss
                self.t_ += n_samples
                self.loss_curve_.append(self.loss_)
                if self.verbose:
                    print("Iteration %d, loss = %.8f" % (self.n_iter_, self.loss_))
                self._update_no_improvement_count(early_stopping, X_val, y_val, sample_weight_val)
                self._optimizer.iteration_ends(self.t_)
                if self._no_improvement_count > self.n_iter_no_change:
                    if early_stopping:
                        msg = ("Validation score did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    else:
                        msg = ("Training loss did not improve more than tol=%f for %d "
                               "consecutive epochs." % (self.tol, self.n_iter_no_change))
                    if self._optimizer.trigger_stopping(msg, self.verbose):
                        break
                    self._no_improvement_count = 0
                if incremental:
                    break
                if self.n_iter_ == self.max_iter:
                    warnings.warn(
                        "Stochastic Optimizer: Maximum iterations (%d) reached and the "
                        "optimization hasn't converged yet." % self.max_iter,
                        ConvergenceWarning,
                    )
        except KeyboardInterrupt:
            warnings.warn("Training interrupted by user.")
        if early_stopping:
            self.coefs_ = self._best_coefs
            self.intercepts_ = self._best_intercepts

    def _sparse_epoch(self, net, dtype, config, m, v, X, Y, sw, order, batch_size, alpha):
        """One epoch over CSR rows: whole batches densified a block at a time."""
        n = X.shape[0]
        step = _sparse_block_rows(X.shape[1], np.dtype(dtype).itemsize, batch_size)
        loss_sum = 0.0
        for start in range(0, n, step):
            rows = order[start:start + step]
            Xb = np.ascontiguousarray(X[rows].toarray(), dtype=dtype)
            swb = None if sw is None else np.ascontiguousarray(sw[rows])
            res = net.train_batches(self._params(dtype), config, m, v, Xb,
                                    np.ascontiguousarray(Y[rows]), swb, None, batch_size, 0, -1,
                                    [], 0, alpha)
            loss_sum += res["loss_sum"]
        return loss_sum / n

    def _update_no_improvement_count(self, early_stopping, X, y, sample_weight):
        if early_stopping:
            val_score = self._score(X, y, sample_weight=sample_weight)
            self.validation_scores_.append(val_score)
            if self.verbose:
                print("Validation score: %f" % self.validation_scores_[-1])
            last_valid_score = self.validation_scores_[-1]
            if last_valid_score < (self.best_validation_score_ + self.tol):
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if last_valid_score > self.best_validation_score_:
                self.best_validation_score_ = last_valid_score
                self._best_coefs = [c.copy() for c in self.coefs_]
                self._best_intercepts = [i.copy() for i in self.intercepts_]
        else:
            if self.loss_curve_[-1] > self.best_loss_ - self.tol:
                self._no_improvement_count += 1
            else:
                self._no_improvement_count = 0
            if self.loss_curve_[-1] < self.best_loss_:
                self.best_loss_ = self.loss_curve_[-1]

    @_fit_context(prefer_skip_nested_validation=True)
    @serialized
    def fit(self, X, y, sample_weight=None):
        """Fit the model to data matrix X and target(s) y.

        Parameters
        ----------
        X : {ndarray, sparse matrix} of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        self : object
        """
        return self._fit(X, y, sample_weight=sample_weight, incremental=False)

    def _check_solver(self):
        if self.solver not in _STOCHASTIC_SOLVERS:
            raise AttributeError(
                "partial_fit is only available for stochastic optimizers. %s is not stochastic."
                % self.solver
            )
        return True

    # ---- prediction ---------------------------------------------------------
    def _check_fitted(self):
        if "coefs_" not in self.__dict__:
            check_is_fitted(self)  # raises NotFittedError with scikit-learn's message
            raise NotFittedError(f"This {type(self).__name__} instance is not fitted yet.")

    def _forward_pass_fast(self, X, check_input=True):
        """Output-layer activations for X (validated unless check_input=False)."""
        coef_dtype = self.coefs_[0].dtype
        fast = (type(X) is np.ndarray and X.ndim == 2 and X.dtype in _FLOATS
                and X.flags.c_contiguous and X.shape[0] > 0
                and X.shape[1] == self.n_features_in_
                and "feature_names_in_" not in self.__dict__)
        if check_input and not fast:
            X = validate_data(self, X, accept_sparse=["csr", "csc"], reset=False)
            check_input = False
        dtype = X.dtype if X.dtype == coef_dtype else np.result_type(X.dtype, coef_dtype)
        if dtype not in _FLOATS:
            dtype = np.dtype(np.float64)
        if sp.issparse(X):
            X = X.tocsr()
            step = _sparse_block_rows(X.shape[1], dtype.itemsize, 1)
            return np.concatenate([
                self._forward_pass_fast(np.ascontiguousarray(X[i:i + step].toarray(), dtype=dtype),
                                        check_input=False)
                for i in range(0, X.shape[0], step)])
        if X.dtype != dtype or not X.flags.c_contiguous:
            X = np.ascontiguousarray(X, dtype=dtype)
        net, params = self._predictor(dtype)
        out, nonfinite = net.predict(params, X)
        if nonfinite and check_input:
            # The engine saw a NaN/inf after the first layer: either X holds one
            # (scikit-learn's error is raised here) or the values overflowed.
            validate_data(self, X, reset=False)
        return out

    def _predictor(self, dtype):
        """(engine network, parameter list) for predicting in `dtype`, cached while
        coefs_/intercepts_ hold the same arrays."""
        arrays = self.coefs_ + self.intercepts_
        key = (dtype, *map(id, arrays))
        store = _cache(self)
        cache = store.get("predict")
        if cache is not None and cache[0] == key:
            return cache[1], cache[2]
        self._check_fitted_params()
        if self.coefs_[0].dtype != dtype:  # converted copies: never cached
            params = engine_params([np.ascontiguousarray(c, dtype=dtype) for c in self.coefs_],
                                   [np.ascontiguousarray(b, dtype=dtype) for b in self.intercepts_])
            return self._engine(dtype), params
        params = self._params(dtype)
        net = self._engine(dtype)
        key = (dtype, *map(id, self.coefs_ + self.intercepts_))
        store["predict"] = (key, net, params)
        return net, params

    def _check_fitted_params(self):
        """ValueError / TypeError when coefs_ / intercepts_ were changed into something no
        network has (a layer removed, a wrong shape, object or complex values): scikit-learn's
        own matrix products would fail there too, here nothing reaches the engine."""
        coefs, inters = self.coefs_, self.intercepts_
        if not isinstance(coefs, list) or not isinstance(inters, list):
            raise TypeError("coefs_ and intercepts_ must be lists of arrays, got "
                            f"{type(coefs).__name__} and {type(inters).__name__}")
        if len(coefs) != self.n_layers_ - 1 or len(inters) != self.n_layers_ - 1:
            raise ValueError(f"coefs_ and intercepts_ must hold n_layers_ - 1 = "
                             f"{self.n_layers_ - 1} arrays each, got {len(coefs)} and "
                             f"{len(inters)}")
        fan_in = self.n_features_in_
        for i, (W, b) in enumerate(zip(coefs, inters)):
            for name, a, ndim in (("coefs_", W, 2), ("intercepts_", b, 1)):
                if not isinstance(a, np.ndarray) or a.dtype.kind not in "f":
                    raise TypeError(f"{name}[{i}] must be a float array, got "
                                    f"{getattr(a, 'dtype', type(a).__name__)}")
                if a.ndim != ndim:
                    raise ValueError(f"{name}[{i}] must be {ndim}-d, got shape {a.shape}")
            if W.shape[0] != fan_in or b.shape != (W.shape[1],):
                raise ValueError(f"coefs_[{i}] of shape {W.shape} and intercepts_[{i}] of shape "
                                 f"{b.shape} do not follow a layer of {fan_in} units")
            fan_in = W.shape[1]
        if fan_in != self.n_outputs_:
            raise ValueError(f"the last layer has {fan_in} units, but n_outputs_ is "
                             f"{self.n_outputs_}")

    def _score_with_function(self, X, y, sample_weight, score_function):
        y_pred = self._predict(X, check_input=False)
        if np.issubdtype(y_pred.dtype, np.floating) and not np.isfinite(y_pred).all():
            return np.nan
        return score_function(y, y_pred, sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags
