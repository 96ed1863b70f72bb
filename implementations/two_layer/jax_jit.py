"""JAX: pure functions, gradients by jax.value_and_grad, compiled by jax.jit.

JAX arrays look like numpy arrays but can never be changed in place, so the
training step is a pure function: it takes the weights and the batch and
returns the loss and new weights, instead of updating anything. The backward
pass is not written by hand: `jax.value_and_grad` turns the function that
computes the loss into one that also returns its gradients. `jax.jit` traces
the whole step once, on the first call, and hands it to the XLA compiler,
which fuses it into one program for the device; later calls run that program.

Two more differences matter when timing JAX. It computes in 32 bits unless
64-bit mode (`jax_enable_x64`) is switched on before float64 arrays are made.
And it dispatches work asynchronously: a call returns at once with arrays
that are still being computed, so `block_until_ready()` must be called
before any clock stops.
"""

import functools

import numpy as np

import jax
import jax.numpy as jnp

from sidebyside.implementations import JIT_FIRST
from sidebyside.implementations.two_layer.problem import DtypeUnsupported, demo

# This file's registry entries: implementations/__init__.py reads them from the source, without importing it.
IMPLEMENTATIONS = [
    {"name": "jax_jit", "order": 80, "framework": "jax", "requires": ("jax",), "extra": "jax",
     "first_step": JIT_FIRST, "promise": {"compiled": True}},
]


class Net:
    def __init__(self, w1, w2, learning_rate, device="cpu", dtype="float32", donate=True):
        self.device = jax.devices(device)[0] if isinstance(device, str) else device  # a name or a jax.Device
        if dtype == "float64":
            # JAX silently makes float64 requests float32 unless 64-bit mode
            # is on. The switch is global to the process and must come before
            # the first float64 array; float32 arrays stay float32 with it on.
            jax.config.update("jax_enable_x64", True)
        self.dtype = jnp.dtype(dtype)
        self.learning_rate = learning_rate
        self.donate = donate
        # device_put copies the shared initial weights to the device once.
        # JAX arrays are immutable, so the caller's arrays are never touched.
        self.w1 = jax.device_put(np.array(w1, dtype=self.dtype), self.device)
        self.w2 = jax.device_put(np.array(w2, dtype=self.dtype), self.device)
        if self.w1.dtype != self.dtype:
            raise DtypeUnsupported(f"JAX {jax.__version__} made {self.w1.dtype} weights when {dtype} was asked")
        # jax.jit compiles on the first call, for the shapes and dtypes it
        # sees. Donating the weights (arguments 0 and 1) lets XLA write the
        # new weights into the old buffers, which the step no longer needs,
        # instead of allocating fresh ones on every step.
        self.compiled_step = jax.jit(
            functools.partial(train_step, learning_rate=learning_rate),
            donate_argnums=(0, 1) if donate else (),
        )

    def prepare(self, x, y):
        """JAX arrays of our dtype on our device; no copy if they already are."""
        return self.to_device(x), self.to_device(y)

    def to_device(self, array):
        if isinstance(array, jax.Array) and array.dtype == self.dtype and array.devices() == {self.device}:
            return array
        # device_put copies a host array to the device (or between devices).
        return jax.device_put(np.asarray(array, dtype=self.dtype), self.device)

    def step(self, x, y):
        """One step of gradient descent; returns the loss before the update.

        `float()` copies the loss to the host, which waits for the device.
        """
        return float(self.dispatch_step(*self.prepare(x, y)))

    def train(self, x, y, steps):
        """Run `steps` steps; the losses stay on the device until the end.

        Each call only queues the step, so the loop runs ahead of the device
        and the losses pile up as device scalars. `jax.device_get` then starts
        every copy to the host before waiting on any, and waits once.

        The scalars are not joined on the device first: `jnp.stack` of N
        arrays is an operation of N inputs, which JAX compiles anew for every
        N it has not seen, so a loop of a new length would pay an XLA compile
        (tens of milliseconds) inside the timed loop.
        """
        x, y = self.prepare(x, y)
        losses = [self.dispatch_step(x, y) for _ in range(steps)]
        return np.array(jax.device_get(losses), dtype=self.dtype)

    def params(self):
        return np.array(self.w1), np.array(self.w2)

    def info(self):
        # Asked of JAX, not of our flags: the jitted step keeps one compiled
        # XLA program per shape and dtype it has been called with, so a
        # step that has run compiled has at least one (`_cache_size` is the
        # count; None where a JAX version no longer offers it).
        cache_size = getattr(self.compiled_step, "_cache_size", None)
        programs = cache_size() if cache_size else None
        return {
            "jit": True, "donate_weights": self.donate, "x64": bool(jax.config.jax_enable_x64),
            "compiled_programs": programs, "compiled": None if programs is None else programs > 0,
        }

    def dispatch_step(self, x, y):
        # The compiled step returns new weights; the old ones were donated.
        loss, self.w1, self.w2 = self.compiled_step(self.w1, self.w2, x, y)
        return loss


def compute_loss(w1, w2, x, y):
    # Forward pass: compute predicted y
    h = x.dot(w1)
    h_relu = jnp.maximum(h, 0)
    y_pred = h_relu.dot(w2)

    # Compute loss: the sum of squared errors over every element
    return jnp.square(y_pred - y).sum()


def train_step(w1, w2, x, y, learning_rate):
    # Backward pass: value_and_grad runs the forward pass and returns the
    # loss with its gradients with respect to arguments 0 and 1, w1 and w2
    loss, (grad_w1, grad_w2) = jax.value_and_grad(compute_loss, argnums=(0, 1))(w1, w2, x, y)

    # Update weights: new arrays, since JAX arrays are immutable; under jit
    # XLA writes them into the donated buffers of the old weights
    w1 = w1 - learning_rate * grad_w1
    w2 = w2 - learning_rate * grad_w2
    return loss, w1, w2


if __name__ == "__main__":
    demo(Net)
