"""numpy, gradients by hand, written for speed: every array made once, every matrix transposed.

The maths, data and steps are numpy_manual's; what changes is where the
results go and how they are laid out. numpy_manual's step makes thirteen
new arrays (h, h_relu, y_pred, the error, its square, the loss, 2·error, the
gradient of h_relu, the mask, both weight gradients and their scaled
copies), the largest the 1000×100 gradient of w1 and its scaled copy, 400 KB
each in float32: every one is a trip through the allocator and a write into
memory the cache has not seen for a while. Here every intermediate is
allocated once (the updates in `__init__`, the rest for the first batch of
a shape) and the step writes into them with `out=`: the products go from
BLAS straight into their buffers, nothing is allocated in the step, and the
1000×100 array is written once instead of twice.

Every matrix is kept transposed, as in torch_tuned: w1 as H×D_in
(`w1_t`), w2 as D_out×H (`w2_t`), and the hidden layer and the error with
the batch as their rows' length (H×N, D_out×N). The two large products,
the forward hᵀ = w1ᵀ·xᵀ and the update's grad_hᵀ·x, then read and write
w1ᵀ row by row with its long side (D_in) as the rows' length, and both read
their operands as stored, with no transposed view for BLAS to turn. x
arrives as every implementation receives it, N×D_in and row-major, so the
step copies it transposed into a buffer made once per batch shape (D_in×N)
for the forward; the update reads x as given. A training loop gets a new
batch every step and would pay that copy every step, so it is timed with
the step (docs/tuned-variants.md keeps the figures measured when the copy
was made once, outside the clock).

Smaller changes, the same maths rounded in another place:
- the loss, the sum of the squared errors, is one BLAS dot product of the
  error with itself (no squared copy, then a sum);
- the factors 2 (of the squared error's derivative) and the learning rate
  are scalars, and scalars commute with the products, so they are applied
  once to the 10×64 error instead of to the 10×100 and 100×1000 gradients;
  the products then give the updates themselves, subtracted in place;
- the ReLU's backward is one comparison into a preallocated boolean array
  and one multiply: the gradient passes where h > 0. numpy_manual blocks it
  where h < 0; the two differ only where h is exactly 0, where ReLU has no
  derivative and either choice is a subgradient.

What is left is numpy's: every ufunc runs on the calling thread, so the
in-place update of w1 on one core reads the part of the update that
OpenBLAS's second thread wrote, and takes back the part of w1 that thread
read out of its core's cache (less so with w1 transposed than as D_in×H).
numpy has no product that adds into its output (BLAS's beta) to fold the
update into; torch_tuned's `addmm_` is one.
"""

import numpy as np

from sidebyside.implementations.two_layer.problem import DeviceUnavailable, demo

# This file's registry entries: implementations/__init__.py reads them from the source, without importing it.
IMPLEMENTATIONS = [
    {"name": "numpy_tuned", "order": 160, "framework": "numpy", "requires": ("numpy",), "extra": "numpy",
     "tuned_from": "numpy_manual",
     "tuning": "every intermediate is allocated once and written with out=, the loss is one dot product, "
               "the factor 2 and the learning rate scale the 64×10 error instead of the gradients, "
               "every matrix is kept transposed (the two large products read and write w1 as H×D_in, "
               "x copied transposed into a buffer every step), and the ReLU's backward is one multiply by a mask of h > 0",
     "promise": {"compiled": False}},  # as its idiomatic sibling's
]


class Net:
    def __init__(self, w1, w2, learning_rate, device="cpu", dtype="float32"):
        if device != "cpu":
            raise DeviceUnavailable(f"numpy runs on the CPU only, not {device!r}")
        self.device = device
        self.dtype = np.dtype(dtype)
        self.learning_rate = learning_rate
        # Our own copies, both transposed (H×D_in and D_out×H), copied once
        # into that layout; the update below never writes into the caller's arrays.
        self.w1_t = np.ascontiguousarray(np.asarray(w1, dtype=self.dtype).T)
        self.w2_t = np.ascontiguousarray(np.asarray(w2, dtype=self.dtype).T)
        # The updates have the weights' shapes: allocated once, here.
        self.update_w1_t = np.empty_like(self.w1_t)
        self.update_w2_t = np.empty_like(self.w2_t)
        self.buffers_for = None  # the batch shape the step buffers below were made for

    def prepare(self, x, y):
        """numpy arrays of our dtype, contiguous; no copy if they already are."""
        return (
            np.ascontiguousarray(x, dtype=self.dtype),
            np.ascontiguousarray(y, dtype=self.dtype),
        )

    def allocate(self, x, y):
        """The step's intermediates, transposed, made once per batch shape (N, D_out)."""
        if self.buffers_for == (x.shape, y.shape):
            return
        N, H = x.shape[0], self.w1_t.shape[0]
        self.x_t = np.empty(x.shape[::-1], dtype=self.dtype)
        self.h_t = np.empty((H, N), dtype=self.dtype)
        self.h_relu_t = np.empty((H, N), dtype=self.dtype)
        self.y_pred_t = np.empty(y.shape[::-1], dtype=self.dtype)
        self.grad_h_t = np.empty((H, N), dtype=self.dtype)
        self.passes = np.empty((H, N), dtype=bool)
        self.buffers_for = (x.shape, y.shape)

    def step(self, x, y):
        """One step of gradient descent; returns the loss before the update."""
        return float(self.train_step(*self.prepare(x, y)))

    def train(self, x, y, steps):
        """Run `steps` steps on one batch and return every loss as a numpy array."""
        x, y = self.prepare(x, y)
        return np.array([self.train_step(x, y) for _ in range(steps)])

    def params(self):
        return self.w1_t.T.copy(), self.w2_t.T.copy()

    def info(self):
        # Every operation runs eagerly, one at a time from Python: no graph,
        # no compiler (results.json records this next to the compiled ones).
        return {"compiled": False, "preallocated": True}

    def train_step(self, x, y):
        w1_t, w2_t = self.w1_t, self.w2_t
        self.allocate(x, y)
        h_t, h_relu_t, y_pred_t, grad_h_t = self.h_t, self.h_relu_t, self.y_pred_t, self.grad_h_t

        # Forward pass: compute predicted y, transposed: hᵀ = w1ᵀ·xᵀ, with
        # xᵀ copied from this step's batch into its buffer
        np.copyto(self.x_t, x.T)
        np.dot(w1_t, self.x_t, out=h_t)
        np.maximum(h_t, 0, out=h_relu_t)
        np.dot(w2_t, h_relu_t, out=y_pred_t)

        # Compute loss: the sum of squared errors over every element, as
        # the dot product of the error with itself. y_pred becomes the error;
        # y.T is a view, read in place.
        error_t = np.subtract(y_pred_t, y.T, out=y_pred_t)
        flat = error_t.reshape(-1)
        loss = np.dot(flat, flat)

        # Backward pass: compute gradients of w1 and w2 with respect to loss,
        # each already times the learning rate: grad_y_pred = 2 · error, and
        # learning_rate · 2 · error scales the 10×64 error, not the gradients.
        scaled_t = np.multiply(error_t, 2.0 * self.learning_rate, out=error_t)
        np.dot(scaled_t, h_relu_t.T, out=self.update_w2_t)
        np.dot(w2_t.T, scaled_t, out=grad_h_t)
        # ReLU passes the gradient where its input was positive and blocks it
        # elsewhere: times a preallocated mask of h > 0.
        np.greater(h_t, 0, out=self.passes)
        np.multiply(grad_h_t, self.passes, out=grad_h_t)
        np.dot(grad_h_t, x, out=self.update_w1_t)

        # Update weights: in place, so no new weight arrays are allocated
        np.subtract(w1_t, self.update_w1_t, out=w1_t)
        np.subtract(w2_t, self.update_w2_t, out=w2_t)
        return loss


if __name__ == "__main__":
    demo(Net)
