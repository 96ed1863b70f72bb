"""JAX, written for speed: one jitted step with donated weights, and train() as one compiled loop.

The maths, data and steps are jax_jit's. What changes:

- The backward pass is written by hand, as in numpy_manual, instead of by
  `jax.value_and_grad`, so the factor 2 of the squared error's derivative
  and the learning rate are applied once, to the 64×10 error, and the
  products give the weight updates directly (scalars commute with the
  products: the same maths, rounded in another place). XLA compiles the
  whole step into one program either way, so this saves little: at the
  tutorial size the step is two large products, and their time is XLA's
  CPU dot kernels' (about 50 GFLOP/s here, against 80 for numpy's BLAS).
  Writing the weight-gradient product with x transposed into an array of
  its own (an `optimization_barrier`) sped that product up alone, but not
  the whole step, so it is not done.
- The weights are donated (`donate_argnums`) and so updated in place, with
  no way to turn it off. On this jaxlib's CPU backend donation is real, not
  a no-op with a warning: the donated arrays are deleted after the call
  (`is_deleted()`), no "donated buffers were not usable" warning is raised,
  and a jitted 1000×100 update took 32 µs with donation against 70 µs
  without on the 2-core machine this was written on (jaxlib 0.10.2).
  jax_jit donates by default too.
- `step` copies the loss to the host with `np.asarray`, which reads the
  array's buffer; `float()` of a JAX array, as jax_jit does, took about
  30 µs more per call there.
- `train` runs its steps inside one compiled `lax.fori_loop`, one call for
  a chunk of up to CHUNK steps instead of one Python dispatch per step.
  The trip count is an argument, not a constant, so XLA builds one while
  loop that serves every length: a loop of a new length compiles nothing
  (a `lax.scan` would be compiled anew for each length). Each step's loss is
  written into a CHUNK-long buffer, of which the first `steps` are kept.
"""

import functools

import numpy as np

import jax
import jax.numpy as jnp
from jax import lax

from sidebyside.implementations.devices import jax_device
from sidebyside.implementations.two_layer.problem import DtypeUnsupported, demo

CHUNK = 512  # steps per compiled loop call; the losses buffer has this length


class Net:
    def __init__(self, w1, w2, learning_rate, device="cpu", dtype="float32"):
        self.device = jax_device(device)
        if dtype == "float64":
            # JAX silently makes float64 requests float32 unless 64-bit mode
            # is on. The switch is global to the process and must come before
            # the first float64 array; float32 arrays stay float32 with it on.
            jax.config.update("jax_enable_x64", True)
        self.dtype = jnp.dtype(dtype)
        self.learning_rate = learning_rate
        # device_put copies the shared initial weights to the device once.
        # JAX arrays are immutable, so the caller's arrays are never touched.
        self.w1 = jax.device_put(np.array(w1, dtype=self.dtype), self.device)
        self.w2 = jax.device_put(np.array(w2, dtype=self.dtype), self.device)
        if self.w1.dtype != self.dtype:
            raise DtypeUnsupported(f"JAX {jax.__version__} made {self.w1.dtype} weights when {dtype} was asked")
        # One compiled program per shape and dtype, made on the first call;
        # the weights (arguments 0 and 1) are donated: updated in place.
        self.compiled_step = jax.jit(
            functools.partial(train_step, learning_rate=learning_rate), donate_argnums=(0, 1)
        )
        self.compiled_loop = jax.jit(
            functools.partial(train_loop, learning_rate=learning_rate), donate_argnums=(0, 1)
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

        `np.asarray` copies the loss to the host, which waits for the device;
        it takes the array's buffer directly, where `float()` of a JAX array
        takes a slower path (measured: about 30 µs more per call here).
        """
        return np.asarray(self.dispatch_step(*self.prepare(x, y))).item()

    def train(self, x, y, steps):
        """Run `steps` steps in compiled loops of up to CHUNK steps; one wait at the end.

        The chunks are only queued; `jax.device_get` then copies every
        chunk's losses to the host and waits once.
        """
        x, y = self.prepare(x, y)
        chunks = []
        for start in range(0, steps, CHUNK):
            count = min(CHUNK, steps - start)
            # The count is a device scalar of one dtype: every length runs the same program.
            losses, self.w1, self.w2 = self.compiled_loop(self.w1, self.w2, x, y, np.int32(count))
            chunks.append((losses, count))
        got = jax.device_get([losses for losses, _ in chunks])
        return np.concatenate([np.asarray(g[:count]) for g, (_, count) in zip(got, chunks)] or [np.zeros(0)]).astype(
            self.dtype
        )

    def params(self):
        return np.array(self.w1), np.array(self.w2)

    def info(self):
        # Asked of JAX, not of our flags: the jitted step keeps one compiled
        # XLA program per shape and dtype it has been called with, so a
        # step that has run compiled has at least one (`_cache_size` is the
        # count; None where a JAX version no longer offers it).
        cache_size = getattr(self.compiled_step, "_cache_size", None)
        programs = cache_size() if cache_size else None
        loop_size = getattr(self.compiled_loop, "_cache_size", None)
        return {
            "jit": True, "donate_weights": True, "x64": bool(jax.config.jax_enable_x64),
            "compiled_programs": programs, "compiled": None if programs is None else programs > 0,
            "compiled_loops": loop_size() if loop_size else None,
        }

    def dispatch_step(self, x, y):
        # The compiled step returns new weights; the old ones were donated.
        loss, self.w1, self.w2 = self.compiled_step(self.w1, self.w2, x, y)
        return loss


def train_step(w1, w2, x, y, learning_rate):
    # Forward pass: compute predicted y
    h = x.dot(w1)
    h_relu = jnp.maximum(h, 0)
    y_pred = h_relu.dot(w2)

    # Compute loss: the sum of squared errors over every element
    error = y_pred - y
    loss = jnp.square(error).sum()

    # Backward pass: grad_y_pred = 2 · error, times the learning rate here,
    # on the 64×10 error, so that the products below are the updates
    scaled = (2.0 * learning_rate) * error
    update_w2 = h_relu.T.dot(scaled)
    grad_h_relu = scaled.dot(w2.T)
    # ReLU passes the gradient where its input was positive and blocks it
    # elsewhere (zero where h < 0, as numpy_manual)
    grad_h = jnp.where(h < 0, 0, grad_h_relu)
    update_w1 = x.T.dot(grad_h)

    # Update weights: new arrays, since JAX arrays are immutable; XLA
    # writes them into the donated buffers of the old weights
    return loss, w1 - update_w1, w2 - update_w2


def train_loop(w1, w2, x, y, count, learning_rate):
    """`count` steps (a traced scalar, at most CHUNK) in one XLA while loop; every step's loss."""

    def body(t, carry):
        losses, w1, w2 = carry
        loss, w1, w2 = train_step(w1, w2, x, y, learning_rate)
        return losses.at[t].set(loss), w1, w2

    losses = jnp.zeros(CHUNK, dtype=w1.dtype)
    return lax.fori_loop(0, count, body, (losses, w1, w2))


if __name__ == "__main__":
    demo(Net)
