"""Plain NumPy reference of scikit-learn's MLPClassifier training (solver="adam").

This is the "NumPy reference" column of the benchmark: the same algorithm as
``sklearn.neural_network.MLPClassifier(solver="adam", activation="relu")``,
written directly on NumPy arrays, with no per-sample Python loop.

What it reproduces from scikit-learn:

* Glorot-uniform initialisation, drawn from the same ``RandomState`` in the
  same order (coef then intercept, layer by layer), so with the same
  ``random_state`` the initial weights are the same as scikit-learn's;
* dense layers, relu hidden layers, softmax output (multiclass) or logistic
  output with a single unit (binary), log loss, L2 penalty
  ``0.5 * alpha * sum(W**2) / batch_size``;
* Adam with scikit-learn's formulas (bias correction folded into the step size
  ``lr_t = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)``, ``t`` counted in
  mini-batches);
* mini-batches of ``min(200, n)`` rows (``batch_size="auto"``) taken from an
  index permutation that is reshuffled every epoch exactly as scikit-learn's
  ``shuffle`` does it;
* the stopping rule on the epoch training loss (``tol``, ``n_iter_no_change``).

The dtype of ``X`` (float32 or float64) is kept throughout: weights, Adam
moments, activations and gradients. All parameters live in one flat buffer so
that an Adam step is a handful of vectorised operations.

Example
-------
>>> import numpy as np
>>> from numpy_mlp import NumpyMLPClassifier
>>> rng = np.random.RandomState(0)
>>> X = rng.randn(200, 5); y = (X[:, 0] > 0).astype(int)
>>> clf = NumpyMLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(X, y)
>>> clf.score(X, y) > 0.9
True
"""
import numbers

import numpy as np

__all__ = ["NumpyMLPClassifier"]


def _check_random_state(seed):
    if seed is None:
        return np.random.mtrand._rand
    if isinstance(seed, numbers.Integral):
        return np.random.RandomState(seed)
    if isinstance(seed, np.random.RandomState):
        return seed
    raise ValueError(f"{seed!r} cannot be used to seed a numpy.random.RandomState instance")


class NumpyMLPClassifier:
    """Multi-layer perceptron classifier (relu hidden layers, Adam), NumPy only."""

    def __init__(self, hidden_layer_sizes=(100,), alpha=1e-4, batch_size="auto",
                 learning_rate_init=1e-3, max_iter=200, shuffle=True, random_state=None,
                 tol=1e-4, beta_1=0.9, beta_2=0.999, epsilon=1e-8, n_iter_no_change=10):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate_init = learning_rate_init
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change

    # ------------------------------------------------------------------ layout
    def _allocate(self, units, dtype):
        """One flat buffer for all parameters; coefs_/intercepts_ are views into it."""
        shapes = [(a, b) for a, b in zip(units[:-1], units[1:])]
        sizes = [a * b + b for a, b in shapes]
        self._params = np.empty(sum(sizes), dtype=dtype)
        self._grads = np.empty_like(self._params)

        def views(flat):
            ws, bs, off = [], [], 0
            for a, b in shapes:
                ws.append(flat[off:off + a * b].reshape(a, b))
                off += a * b
                bs.append(flat[off:off + b])
                off += b
            return ws, bs

        self.coefs_, self.intercepts_ = views(self._params)
        self._coef_grads, self._intercept_grads = views(self._grads)

    # ----------------------------------------------------------------- forward
    def _forward(self, X):
        """Activations of every layer (X first); the last one is the output probability."""
        acts = [X]
        last = len(self.coefs_) - 1
        for i, (W, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            Z = acts[-1] @ W
            Z += b
            if i < last:
                np.maximum(Z, 0, out=Z)  # relu
            elif self.out_activation_ == "softmax":
                Z -= Z.max(axis=1, keepdims=True)
                np.exp(Z, out=Z)
                Z /= Z.sum(axis=1, keepdims=True)
            else:  # logistic
                with np.errstate(over="ignore"):
                    np.negative(Z, out=Z)
                    np.exp(Z, out=Z)
                    Z += 1
                    np.reciprocal(Z, out=Z)
            acts.append(Z)
        return acts

    # ---------------------------------------------------------------- backprop
    def _backprop(self, Xb, yb):
        """Loss of the batch; fills self._grads (coef and intercept gradients)."""
        n = Xb.shape[0]
        acts = self._forward(Xb)
        P = acts[-1]
        eps = np.finfo(P.dtype).eps
        rows = np.arange(n)
        if self.out_activation_ == "softmax":
            loss = -np.log(np.clip(P[rows, yb], eps, 1 - eps)).sum() / n
            P[rows, yb] -= 1  # delta = P - Y, in place
            D = P
        else:
            p = np.clip(P[:, 0], eps, 1 - eps)
            loss = -np.where(yb == 1, np.log(p), np.log1p(-p)).sum() / n
            D = P
            D[:, 0] -= yb
        loss += 0.5 * self.alpha * sum(float(np.dot(W.ravel(), W.ravel())) for W in self.coefs_) / n

        inv_n = 1.0 / n
        for i in range(len(self.coefs_) - 1, -1, -1):
            gW, gb, W = self._coef_grads[i], self._intercept_grads[i], self.coefs_[i]
            np.dot(acts[i].T, D, out=gW)
            gW += self.alpha * W
            gW *= inv_n
            np.sum(D, axis=0, out=gb)
            gb *= inv_n
            if i > 0:
                D = D @ W.T
                D *= acts[i] > 0  # relu derivative (sklearn: delta[Z == 0] = 0)
        return float(loss)

    def _adam(self):
        self._t += 1
        b1, b2 = self.beta_1, self.beta_2
        lr = self.learning_rate_init * np.sqrt(1 - b2 ** self._t) / (1 - b1 ** self._t)
        m, v, g, tmp = self._m, self._v, self._grads, self._tmp
        m *= b1
        np.multiply(g, 1 - b1, out=tmp)
        m += tmp
        v *= b2
        np.multiply(g, g, out=tmp)
        tmp *= 1 - b2
        v += tmp
        np.sqrt(v, out=tmp)
        tmp += self.epsilon
        np.divide(m, tmp, out=tmp)
        tmp *= -lr
        self._params += tmp

    # --------------------------------------------------------------------- API
    def fit(self, X, y):
        X = np.asarray(X)
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        X = np.ascontiguousarray(X, dtype=dtype)
        self.classes_, y_idx = np.unique(np.asarray(y), return_inverse=True)
        y_idx = y_idx.ravel()
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError("need at least 2 classes")
        self.out_activation_ = "softmax" if n_classes > 2 else "logistic"
        n_out = n_classes if n_classes > 2 else 1
        yb_all = y_idx if n_classes > 2 else y_idx.astype(dtype)

        hidden = self.hidden_layer_sizes
        hidden = list(hidden) if hasattr(hidden, "__iter__") else [hidden]
        units = [X.shape[1], *hidden, n_out]
        self.n_layers_ = len(units)
        self.n_outputs_ = n_out
        self._allocate(units, dtype)

        rng = _check_random_state(self.random_state)
        for W, b in zip(self.coefs_, self.intercepts_):  # Glorot uniform, relu factor 6
            bound = np.sqrt(6.0 / (W.shape[0] + W.shape[1]))
            W[...] = rng.uniform(-bound, bound, W.shape)
            b[...] = rng.uniform(-bound, bound, b.shape[0])

        self._m = np.zeros_like(self._params)
        self._v = np.zeros_like(self._params)
        self._tmp = np.empty_like(self._params)
        self._t = 0

        n = X.shape[0]
        bs = min(200, n) if self.batch_size == "auto" else int(np.clip(self.batch_size, 1, n))
        sample_idx = np.arange(n)
        self.loss_curve_ = []
        best_loss, no_improve = np.inf, 0
        self.n_iter_ = 0
        for _ in range(self.max_iter):
            if self.shuffle:  # as sklearn.utils.shuffle(sample_idx, random_state=rng)
                perm = np.arange(n)
                rng.shuffle(perm)
                sample_idx = sample_idx[perm]
            acc = 0.0
            for start in range(0, n, bs):
                idx = sample_idx[start:start + bs]
                acc += self._backprop(np.take(X, idx, axis=0), yb_all[idx]) * idx.shape[0]
                self._adam()
            self.n_iter_ += 1
            self.loss_ = acc / n
            self.loss_curve_.append(self.loss_)
            no_improve = no_improve + 1 if self.loss_ > best_loss - self.tol else 0
            best_loss = min(best_loss, self.loss_)
            if no_improve > self.n_iter_no_change:
                break
        return self

    def predict_proba(self, X):
        X = np.ascontiguousarray(X, dtype=self._params.dtype)
        P = self._forward(X)[-1]
        if self.out_activation_ == "logistic":
            return np.hstack([1 - P, P])
        return P

    def predict(self, X):
        X = np.ascontiguousarray(X, dtype=self._params.dtype)
        P = self._forward(X)[-1]
        if self.out_activation_ == "logistic":
            return self.classes_[(P[:, 0] > 0.5).astype(int)]
        return self.classes_[P.argmax(axis=1)]

    def score(self, X, y):
        return float(np.mean(self.predict(X) == np.asarray(y)))
