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
The ReLU's backward is one comparison into a preallocated boolean array
and one multiply: the gradient passes where h > 0. numpy_manual blocks it
where h < 0; the two differ only where h is exactly 0, where ReLU has no
derivative and either choice is a subgradient. (A boolean mask of h < 0 and
`copyto(where=)`, this file's first version, was 2-4 % slower a step.)

The product that makes the update of w1, xᵀ·grad_h, reads x transposed from
a copy made once by `prepare` (D_in×N, contiguous), not through the `.T`
view: OpenBLAS ran it in 89 against 121 µs, two threads, on a 2-vCPU AMD
EPYC. Together the two changes took the step from 0.90 to 0.86 of
numpy_manual's (alternating steps, 300 each, the best of five medians of
one process: 252 and 240 against 280 µs). Over twelve such processes
the ratio read 0.83-0.97, the first version's 0.83-0.99 (in the slow
minutes of a shared machine the two were even): the margin moves with the
minute, which is why the targets pair the two five times.

What is left is numpy's: every ufunc runs on the calling thread, so the
in-place update of w1 on one core reads the half of the gradient that
OpenBLAS's second thread wrote, and takes the half of w1 that thread read
out of its core's cache (the subtraction took 60-280 µs in the step where
it takes 9-13 µs alone). numpy has no product that adds into its output
(BLAS's beta) to fold the update into; torch_tuned's `addmm_` is one.
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
        self.x_layouts = None  # (x, its D_in×N copy), made by prepare

    def prepare(self, x, y):
        """numpy arrays of our dtype, contiguous; no copy if they already are.

        Also x transposed (D_in×N), copied once for each x it is given, so
        that steps on the array it returns find it ready. x is read as data:
        it must not change in place between steps.
        """
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if self.x_layouts is None or self.x_layouts[0] is not x:
            self.x_layouts = x, np.ascontiguousarray(x.T)
        return x, np.ascontiguousarray(y, dtype=self.dtype)

    def allocate(self, x, y):
        """The step's intermediates, made once per batch shape (N, D_out)."""
        if self.buffers_for == (x.shape, y.shape):
            return
        N, H = x.shape[0], self.w1.shape[1]
        self.h = np.empty((N, H), dtype=self.dtype)
        self.h_relu = np.empty((N, H), dtype=self.dtype)
        self.y_pred = np.empty(y.shape, dtype=self.dtype)
        self.grad_h = np.empty((N, H), dtype=self.dtype)
        self.passes = np.empty((N, H), dtype=bool)
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

    def transposed(self, x):
        """x transposed: prepare's contiguous copy where it made one for this x, else a view."""
        return self.x_layouts[1] if self.x_layouts and self.x_layouts[0] is x else x.T

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
        # elsewhere: times a preallocated mask of h > 0.
        np.greater(h, 0, out=self.passes)
        np.multiply(grad_h, self.passes, out=grad_h)
        np.dot(self.transposed(x), grad_h, out=self.update_w1)

        # Update weights: in place, so no new weight arrays are allocated
        np.subtract(w1, self.update_w1, out=w1)
        np.subtract(w2, self.update_w2, out=w2)
        return loss


if __name__ == "__main__":
    demo(Net)
