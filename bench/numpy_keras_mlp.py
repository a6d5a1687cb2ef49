"""Plain NumPy reference of the Keras lecture model's training (issue 3's benchmark).

This is the "NumPy ref" column of ``bench/keras_bench.py``: exactly the training
that Keras 3 runs for

    Sequential([Input((784,)), Dense(100), LeakyReLU(negative_slope=0.01),
                Dense(10, activation="softmax")])
    compile(optimizer="adam", loss="categorical_crossentropy", metrics=["accuracy"])
    fit(X, Y_onehot, batch_size=32, epochs=5, shuffle=True)

written directly on float32 NumPy arrays, with no per-sample Python loop:

* Glorot-uniform kernels (``limit = sqrt(6 / (fan_in + fan_out))``), zero biases;
* Dense -> LeakyReLU(0.01) -> Dense -> softmax, categorical cross-entropy with
  Keras's clipping of the probabilities to ``[1e-7, 1 - 1e-7]``, averaged over
  the batch; the gradient with respect to the logits is ``(P - Y) / batch``;
* Keras's Adam (``learning_rate=1e-3, beta_1=0.9, beta_2=0.999,
  epsilon=1e-7``): ``m += (g - m)(1 - b1)``, ``v += (g^2 - v)(1 - b2)``,
  ``w -= lr * sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + epsilon)``, ``t``
  counted in batches;
* a fresh permutation of the rows every epoch, batches of 32 (the last one
  smaller if 32 does not divide n);
* the running epoch loss and categorical accuracy that Keras's ``fit`` logs.

All parameters live in one flat float32 buffer, so an Adam step is a handful
of vectorised operations.

Example
-------
>>> import numpy as np
>>> from numpy_keras_mlp import NumpyKerasMLP
>>> rng = np.random.default_rng(0)
>>> X = rng.standard_normal((512, 8)).astype(np.float32); y = (X[:, 0] > 0).astype(int)
>>> net = NumpyKerasMLP(8, 16, 2, seed=0)
>>> hist = net.fit(X, np.eye(2, dtype=np.float32)[y], epochs=20)
>>> float(np.mean(net.predict(X).argmax(1) == y)) > 0.9
True
"""
import numpy as np

__all__ = ["NumpyKerasMLP"]


class NumpyKerasMLP:
    """Dense(hidden) -> LeakyReLU -> Dense(n_out, softmax), trained like Keras 3 (Adam, CCE)."""

    def __init__(self, n_in, hidden=100, n_out=10, negative_slope=0.01, learning_rate=1e-3,
                 beta_1=0.9, beta_2=0.999, epsilon=1e-7, seed=0):
        self.slope, self.lr, self.b1, self.b2, self.eps = (negative_slope, learning_rate, beta_1,
                                                           beta_2, epsilon)
        shapes = [(n_in, hidden), (hidden,), (hidden, n_out), (n_out,)]
        sizes = [int(np.prod(s)) for s in shapes]
        self._params = np.zeros(sum(sizes), np.float32)
        self._grads = np.zeros_like(self._params)
        offs = np.cumsum([0] + sizes)
        self.W1, self.bias1, self.W2, self.bias2 = (self._params[a:b].reshape(s)
                                                for a, b, s in zip(offs, offs[1:], shapes))
        self.gW1, self.gb1, self.gW2, self.gb2 = (self._grads[a:b].reshape(s)
                                                  for a, b, s in zip(offs, offs[1:], shapes))
        rng = np.random.default_rng(seed)
        for W in (self.W1, self.W2):  # Glorot uniform; biases stay zero
            lim = np.sqrt(6.0 / (W.shape[0] + W.shape[1]))
            W[...] = rng.uniform(-lim, lim, W.shape)
        self._rng = rng
        self._m, self._v, self._tmp = (np.zeros_like(self._params) for _ in range(3))
        self._t = 0

    def _forward(self, X):
        Z = X @ self.W1
        Z += self.bias1
        H = np.where(Z > 0, Z, Z * np.float32(self.slope))
        S = H @ self.W2
        S += self.bias2
        S -= S.max(axis=1, keepdims=True)
        np.exp(S, out=S)
        S /= S.sum(axis=1, keepdims=True)
        return Z, H, S

    def _step(self, Xb, Yb, yb):
        """Forward, backward and one Adam step on a batch; returns (loss sum, correct count)."""
        n = Xb.shape[0]
        Z, H, P = self._forward(Xb)
        rows = np.arange(n)
        loss = -np.log(np.clip(P[rows, yb], 1e-7, 1 - 1e-7)).sum(dtype=np.float64)
        correct = int(np.count_nonzero(P.argmax(axis=1) == yb))
        D = P
        D -= Yb
        D *= np.float32(1.0 / n)                          # d(mean CCE)/d(logits)
        np.dot(H.T, D, out=self.gW2)
        np.sum(D, axis=0, out=self.gb2)
        DH = D @ self.W2.T
        DH *= np.where(Z > 0, np.float32(1), np.float32(self.slope))   # LeakyReLU'
        np.dot(Xb.T, DH, out=self.gW1)
        np.sum(DH, axis=0, out=self.gb1)
        self._adam()
        return loss, correct

    def _adam(self):
        self._t += 1
        t, b1, b2 = self._t, self.b1, self.b2
        alpha = np.float32(self.lr * np.sqrt(1 - b2 ** t) / (1 - b1 ** t))
        g, m, v, tmp = self._grads, self._m, self._v, self._tmp
        np.subtract(g, m, out=tmp)
        tmp *= np.float32(1 - b1)
        m += tmp                                          # m += (g - m)(1 - b1)
        np.multiply(g, g, out=tmp)
        tmp -= v
        tmp *= np.float32(1 - b2)
        v += tmp                                          # v += (g^2 - v)(1 - b2)
        np.sqrt(v, out=tmp)
        tmp += np.float32(self.eps)
        np.divide(m, tmp, out=tmp)
        tmp *= -alpha
        self._params += tmp

    def fit(self, X, Y, batch_size=32, epochs=1, shuffle=True, on_epoch_end=None):
        """Train on float32 X and one-hot Y; returns {'loss': [...], 'accuracy': [...]}.

        ``on_epoch_end(epoch, logs)`` is called after each epoch (for timing)."""
        X = np.ascontiguousarray(X, dtype=np.float32)
        Y = np.ascontiguousarray(Y, dtype=np.float32)
        y = Y.argmax(axis=1)
        n = X.shape[0]
        hist = {"loss": [], "accuracy": []}
        for epoch in range(epochs):
            order = self._rng.permutation(n) if shuffle else np.arange(n)
            loss, correct = 0.0, 0
            for start in range(0, n, batch_size):
                idx = order[start:start + batch_size]
                l_, c_ = self._step(X[idx], Y[idx], y[idx])
                loss += l_
                correct += c_
            logs = {"loss": float(loss / n), "accuracy": correct / n}
            for k in hist:
                hist[k].append(logs[k])
            if on_epoch_end is not None:
                on_epoch_end(epoch, logs)
        return hist

    def predict(self, X):
        """Softmax probabilities, float32."""
        return self._forward(np.ascontiguousarray(X, dtype=np.float32))[2]
