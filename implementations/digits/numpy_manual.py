"""numpy, softmax cross-entropy gradient and Adam by hand.

As in the two-layer net, numpy offers arrays and nothing else: the forward
pass, the gradient of the loss and the Adam update are all written out. What
is new here is a classifier's loss, softmax cross-entropy averaged over the
batch, whose gradient with respect to the class scores is simply
softmax(y_pred) - one_hot(label), over N; biases, whose gradients sum the
batch's gradients; and Adam, which keeps running means of the gradients (m)
and of their squares (v) and steps each weight by lr · m̂ / (√v̂ + eps).

Where epsilon enters is where frameworks differ. This file follows Kingma &
Ba's Algorithm 1 and PyTorch: eps is added to √v̂, the bias-corrected root
mean square. Keras folds the bias corrections into the step size and adds eps
to √v instead, which is the same as adding eps / √(1 - beta2^t) to √v̂: 32
times larger at the first step, 2.2 times after 225 (reference.py measures
what that does to the losses).
"""

import numpy as np

from sidebyside.implementations.digits.demo import demo
from sidebyside.implementations.digits.problem import DeviceUnavailable

# This file's registry entries, read from the source by implementations/__init__.py: the two-layer
# file of the same name declares their other fields.
IMPLEMENTATIONS = [{"name": "numpy_manual"}]


def loss_and_gradients(params, x, y):
    """The mean softmax cross-entropy of the batch and the gradient of every parameter."""
    w1, b1, w2, b2 = params["w1"], params["b1"], params["w2"], params["b2"]
    N = len(y)

    # Forward pass: compute the class scores y_pred (the logits)
    h = x.dot(w1) + b1
    h_relu = np.maximum(h, 0)
    y_pred = h_relu.dot(w2) + b2

    # Compute loss: the mean over the batch of -log softmax(y_pred)[label].
    # Subtracting each row's largest score first changes no probability but
    # keeps exp from overflowing.
    shifted = y_pred - y_pred.max(axis=1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -log_probs[np.arange(N), y].mean()

    # Backward pass: the gradient of the loss with respect to the scores is
    # (softmax - one_hot(label)) / N; each bias gradient sums its layer's
    # output gradient over the batch.
    grad_y_pred = np.exp(log_probs)
    grad_y_pred[np.arange(N), y] -= 1
    grad_y_pred /= N
    grad_w2 = h_relu.T.dot(grad_y_pred)
    grad_b2 = grad_y_pred.sum(axis=0)
    grad_h_relu = grad_y_pred.dot(w2.T)
    # ReLU passes the gradient where its input was positive and blocks it
    # elsewhere (at exactly zero too, as every framework's ReLU does).
    grad_h = grad_h_relu
    grad_h[h <= 0] = 0
    grad_w1 = x.T.dot(grad_h)
    grad_b1 = grad_h.sum(axis=0)
    return loss, {"w1": grad_w1, "b1": grad_b1, "w2": grad_w2, "b2": grad_b2}


class Net:
    def __init__(self, params, problem, device="cpu"):
        if device != "cpu":
            raise DeviceUnavailable(f"numpy runs on the CPU only, not {device!r}")
        self.problem = problem
        self.dtype = np.dtype(problem.dtype)
        # Our own copies, so the updates never write into the caller's arrays.
        self.weights = {name: np.array(value, dtype=self.dtype) for name, value in params.items()}
        # Adam's state: running means of the gradients and of their squares, and the step count.
        self.m = {name: np.zeros_like(value) for name, value in self.weights.items()}
        self.v = {name: np.zeros_like(value) for name, value in self.weights.items()}
        self.t = 0

    def prepare(self, x, y=None):
        """Images as contiguous arrays of our dtype, labels as int64."""
        x = np.ascontiguousarray(x, dtype=self.dtype)
        return x if y is None else (x, np.ascontiguousarray(y, dtype=np.int64))

    def prepare_batches(self, batches):
        """The epoch's index arrays as numpy integer arrays (no copy if they already are)."""
        return [np.asarray(batch, dtype=np.intp) for batch in batches]

    def fit_epoch(self, x, y, batches):
        """One step per batch of indices, in order; returns each step's loss before its update."""
        x, y = self.prepare(x, y)
        return np.array([self.train_step(x[batch], y[batch]) for batch in batches])

    def predict(self, x):
        """The most likely class of each image."""
        x = self.prepare(x)
        h_relu = np.maximum(x.dot(self.weights["w1"]) + self.weights["b1"], 0)
        return (h_relu.dot(self.weights["w2"]) + self.weights["b2"]).argmax(axis=1)

    def params(self):
        return {name: value.copy() for name, value in self.weights.items()}

    def train_step(self, x, y):
        loss, grads = loss_and_gradients(self.weights, x, y)

        # Update weights: Adam, in place, eps added to √v̂
        p = self.problem
        self.t += 1
        correction1 = 1 - p.beta1**self.t  # bias corrections: m and v start at zero
        correction2 = 1 - p.beta2**self.t
        for name, grad in grads.items():
            w, m, v = self.weights[name], self.m[name], self.v[name]
            m *= p.beta1
            m += (1 - p.beta1) * grad
            v *= p.beta2
            v += (1 - p.beta2) * grad * grad
            m_hat = m / correction1
            v_hat = v / correction2
            w -= p.learning_rate * m_hat / (np.sqrt(v_hat) + p.eps)
        return float(loss)


if __name__ == "__main__":
    demo(Net)
