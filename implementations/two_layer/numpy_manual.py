"""numpy, gradients by hand.

numpy knows nothing of deep learning, gradients or GPUs: it is a generic
library for n-dimensional arrays. So the forward pass, the backward pass and
the update are all written out by hand with array operations. This is the
plainest statement of the algorithm, and every other file follows its
sections and names.
"""

import numpy as np

from sidebyside.implementations.two_layer.problem import DeviceUnavailable, demo

# This file's registry entries: implementations/__init__.py reads them from the source, without importing it.
IMPLEMENTATIONS = [
    {"name": "numpy_manual", "order": 10, "framework": "numpy", "requires": ("numpy",), "extra": "numpy",
     "promise": {"compiled": False}},
]


class Net:
    def __init__(self, w1, w2, learning_rate, device="cpu", dtype="float32"):
        if device != "cpu":
            raise DeviceUnavailable(f"numpy runs on the CPU only, not {device!r}")
        self.device = device
        self.dtype = np.dtype(dtype)
        self.learning_rate = learning_rate
        # Our own copies, so the update below never writes into the caller's arrays.
        self.w1 = np.array(w1, dtype=self.dtype)
        self.w2 = np.array(w2, dtype=self.dtype)

    def prepare(self, x, y):
        """numpy arrays of our dtype, contiguous; no copy if they already are."""
        return (
            np.ascontiguousarray(x, dtype=self.dtype),
            np.ascontiguousarray(y, dtype=self.dtype),
        )

    def step(self, x, y):
        """One step of gradient descent; returns the loss before the update."""
        return float(self.train_step(*self.prepare(x, y)))

    def train(self, x, y, steps):
        """Run `steps` steps on one batch and return every loss as a numpy array."""
        x, y = self.prepare(x, y)
        return np.array([self.train_step(x, y) for _ in range(steps)])

    def params(self):
        return self.w1.copy(), self.w2.copy()

    def info(self):
        # Every operation runs eagerly, one at a time from Python: no graph,
        # no compiler (results.json records this next to the compiled ones).
        return {"compiled": False}

    def train_step(self, x, y):
        w1, w2 = self.w1, self.w2

        # Forward pass: compute predicted y
        h = x.dot(w1)
        h_relu = np.maximum(h, 0)
        y_pred = h_relu.dot(w2)

        # Compute loss: the sum of squared errors over every element
        error = y_pred - y
        loss = np.square(error).sum()

        # Backward pass: compute gradients of w1 and w2 with respect to loss
        grad_y_pred = 2.0 * error
        grad_w2 = h_relu.T.dot(grad_y_pred)
        grad_h_relu = grad_y_pred.dot(w2.T)
        # ReLU passes the gradient where its input was positive and blocks it
        # elsewhere. grad_h_relu is a fresh array, so it is masked in place.
        grad_h = grad_h_relu
        grad_h[h < 0] = 0
        grad_w1 = x.T.dot(grad_h)

        # Update weights: in place, so no new weight arrays are allocated
        w1 -= self.learning_rate * grad_w1
        w2 -= self.learning_rate * grad_w2
        return loss


if __name__ == "__main__":
    demo(Net)
