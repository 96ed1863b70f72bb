"""numpy, gradients by hand, written for speed: every array made once.

The maths, data and steps are numpy_manual's; what changes is where the
results go. numpy_manual's step makes thirteen new arrays (h, h_relu,
y_pred, the error, its square, the loss, 2·error, the gradient of h_relu,
the mask, both weight gradients and their scaled copies), the largest the 1000×100 gradient of w1 and its scaled
copy, 400 KB each in float32: every one is a trip through the allocator and
a write into memory the cache has not seen for a while. Here every
intermediate is allocated once (the updates in `__init__`, the rest for the
first batch of a shape) and the step writes into them with `out=`: the
products go from BLAS straight into their buffers, nothing is allocated in
the step, and the 1000×100 array is written once instead of twice.

Two smaller changes, the same maths rounded in another place:
- the loss, the sum of the squared errors, is one BLAS dot product of the
  error with itself (no squared copy, then a sum);
- the factors 2 (of the squared error's derivative) and the learning rate
  are scalars, and scalars commute with the products, so they are applied
  once to the 64×10 error instead of to the 100×10 and 1000×100 gradients;
  the products then give the updates themselves, subtracted in place.
The ReLU mask goes into a preallocated boolean array, not a new one.
"""

import numpy as np

from sidebyside.implementations.two_layer.problem import DeviceUnavailable, demo


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
        # The updates have the weights' shapes: allocated once, here.
        self.update_w1 = np.empty_like(self.w1)
        self.update_w2 = np.empty_like(self.w2)
        self.buffers_for = None  # the batch shape the step buffers below were made for

    def prepare(self, x, y):
        """numpy arrays of our dtype, contiguous; no copy if they already are."""
        return (
            np.ascontiguousarray(x, dtype=self.dtype),
            np.ascontiguousarray(y, dtype=self.dtype),
        )

    def allocate(self, x, y):
        """The step's intermediates, made once per batch shape (N, D_out)."""
        if self.buffers_for == (x.shape, y.shape):
            return
        N, H = x.shape[0], self.w1.shape[1]
        self.h = np.empty((N, H), dtype=self.dtype)
        self.h_relu = np.empty((N, H), dtype=self.dtype)
        self.y_pred = np.empty(y.shape, dtype=self.dtype)
        self.grad_h = np.empty((N, H), dtype=self.dtype)
        self.blocked = np.empty((N, H), dtype=bool)
        self.buffers_for = (x.shape, y.shape)

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
        return {"compiled": False, "preallocated": True}

    def train_step(self, x, y):
        w1, w2 = self.w1, self.w2
        self.allocate(x, y)
        h, h_relu, y_pred, grad_h = self.h, self.h_relu, self.y_pred, self.grad_h

        # Forward pass: compute predicted y
        np.dot(x, w1, out=h)
        np.maximum(h, 0, out=h_relu)
        np.dot(h_relu, w2, out=y_pred)

        # Compute loss: the sum of squared errors over every element, as
        # the dot product of the error with itself. y_pred becomes the error.
        error = np.subtract(y_pred, y, out=y_pred)
        flat = error.reshape(-1)
        loss = np.dot(flat, flat)

        # Backward pass: compute gradients of w1 and w2 with respect to loss,
        # each already times the learning rate: grad_y_pred = 2 · error, and
        # learning_rate · 2 · error scales the 64×10 error, not the gradients.
        scaled = np.multiply(error, 2.0 * self.learning_rate, out=error)
        np.dot(h_relu.T, scaled, out=self.update_w2)
        np.dot(scaled, w2.T, out=grad_h)
        # ReLU passes the gradient where its input was positive and blocks it
        # elsewhere: zero where h < 0, through a preallocated mask.
        np.less(h, 0, out=self.blocked)
        np.copyto(grad_h, 0, where=self.blocked)
        np.dot(x.T, grad_h, out=self.update_w1)

        # Update weights: in place, so no new weight arrays are allocated
        np.subtract(w1, self.update_w1, out=w1)
        np.subtract(w2, self.update_w2, out=w2)
        return loss


if __name__ == "__main__":
    demo(Net)
