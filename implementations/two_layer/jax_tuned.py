"""JAX, written for speed: w1 kept transposed, one jitted step with donated weights, train() as one compiled loop.

The maths, data and steps are jax_jit's. What changes:

- w1 is kept transposed, as an H×D_in array (`w1t`), the layout
  `torch.nn.Linear` keeps its weight in, and the hidden layer is computed
  transposed too (H×N); `params()` hands w1 back as D_in×H. XLA's CPU dot
  kernels are not equally fast for every arrangement of the same product,
  and this one got faster kernels for both large products than jax_jit's.
  x arrives as every implementation receives it, N×D_in and row-major, and
  the compiled step transposes it (x_t, D_in×N): the forward is
  hᵀ = w1t·x_t, and the weight-gradient product grad_hᵀ·x_tᵀ is already
  the new w1t's shape. XLA may fold the transpose into the dots or make
  it; either way it is inside the step: a training loop gets a new batch
  every step and would pay for it every step, so it is timed with the step. (In `train`'s loop over one fixed
  batch XLA may hoist it out of the loop, as it may any loop-invariant
  work of any compiled loop.) docs/tuned-variants.md keeps the figures
  behind this layout, measured when x was transposed once, outside the
  clock; at this size the margin over jax_jit was thin.
- The backward pass is written by hand, as in numpy_manual, instead of by
  `jax.value_and_grad`, so the factor 2 of the squared error's derivative
  and the learning rate are applied once, to the 64×10 error, and the
  products give the weight updates directly (scalars commute with the
  products: the same maths, rounded in another place). XLA compiles the
  whole step into one program either way: with the weights in jax_jit's
  layout, the hand-written step was no faster than jax_jit's in paired
  runs, so this alone buys nothing.
- The weights are donated (`donate_argnums`) and so updated in place, with
  no way to turn it off. On this jaxlib's CPU backend donation is real, not
  a no-op with a warning: the donated arrays are deleted after the call
  (`is_deleted()`). jax_jit donates by default too.
- `step` copies the loss to the host with `np.asarray(...).item()`, which
  reads the array's buffer; `float()` of a JAX array, as jax_jit does,
  takes a slower path.
- `train` runs its steps inside one compiled `lax.fori_loop`, one call for
  a chunk of up to CHUNK steps instead of one Python dispatch per step.
  The trip count is an argument, not a constant, so XLA builds one while
  loop that serves every length: a loop of a new length compiles nothing
  (a `lax.scan` would be compiled anew for each length). Each step's loss is
  written into a CHUNK-long buffer, of which the first `steps` are kept.

Tried and not kept: XLA compiler options per program (YNNPACK's fusion of
the dot with the update, one-threaded Eigen, no YNNPACK) were within the
noise of paired runs, and materializing grad_hᵀ behind an
`optimization_barrier` was slower.
"""

import functools

import numpy as np

import jax
import jax.numpy as jnp
from jax import lax

from sidebyside.implementations import JIT_FIRST
from sidebyside.implementations.two_layer.problem import DtypeUnsupported, demo

# This file's registry entries: implementations/__init__.py reads them from the source, without importing it.
IMPLEMENTATIONS = [
    {"name": "jax_tuned", "order": 180, "framework": "jax", "requires": ("jax",), "extra": "jax",
     "tuned_from": "jax_jit",
     "tuning": "w1 and the hidden layer are kept transposed and x is transposed inside the step, so that "
               "XLA's faster CPU dot kernels serve both large products, the backward pass is written by hand inside one jitted "
               "step with donated weights, the loss is read with np.asarray instead of float(), and train() "
               "runs its steps in one compiled lax.fori_loop, compiled once for any length",
     "first_step": JIT_FIRST, "promise": {"compiled": True}},  # as its idiomatic sibling's
]

CHUNK = 512  # steps per compiled loop call; the losses buffer has this length


class Net:
    def __init__(self, w1, w2, learning_rate, device="cpu", dtype="float32"):
        self.device = jax.devices(device)[0] if isinstance(device, str) else device  # a name or a jax.Device
        if dtype == "float64":
            # JAX silently makes float64 requests float32 unless 64-bit mode
            # is on. The switch is global to the process and must come before
            # the first float64 array; float32 arrays stay float32 with it on.
            jax.config.update("jax_enable_x64", True)
        self.dtype = jnp.dtype(dtype)
        self.learning_rate = learning_rate
        # device_put copies the shared initial weights to the device once.
        # JAX arrays are immutable, so the caller's arrays are never touched.
        # w1 is kept transposed (H×D_in): see the module docstring.
        self.w1t = jax.device_put(np.ascontiguousarray(np.asarray(w1, dtype=self.dtype).T), self.device)
        self.w2 = jax.device_put(np.array(w2, dtype=self.dtype), self.device)
        if self.w1t.dtype != self.dtype:
            raise DtypeUnsupported(f"JAX {jax.__version__} made {self.w1t.dtype} weights when {dtype} was asked")
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
        takes a slower path.
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
            losses, self.w1t, self.w2 = self.compiled_loop(self.w1t, self.w2, x, y, np.int32(count))
            chunks.append((losses, count))
        got = jax.device_get([losses for losses, _ in chunks])
        return np.concatenate([np.asarray(g[:count]) for g, (_, count) in zip(got, chunks)] or [np.zeros(0)]).astype(
            self.dtype
        )

    def params(self):
        return np.array(self.w1t).T.copy(), np.array(self.w2)

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
        loss, self.w1t, self.w2 = self.compiled_step(self.w1t, self.w2, x, y)
        return loss


def train_step(w1t, w2, x, y, learning_rate):
    # Forward pass: compute predicted y, the hidden layer transposed:
    # hᵀ = w1t·xᵀ, x transposed here, in the step
    x_t = x.T
    h_t = w1t.dot(x_t)
    h_relu_t = jnp.maximum(h_t, 0)
    y_pred = h_relu_t.T.dot(w2)

    # Compute loss: the sum of squared errors over every element
    error = y_pred - y
    loss = jnp.square(error).sum()

    # Backward pass: grad_y_pred = 2 · error, times the learning rate here,
    # on the 64×10 error, so that the products below are the updates
    scaled = (2.0 * learning_rate) * error
    update_w2 = h_relu_t.dot(scaled)
    grad_h_relu_t = w2.dot(scaled.T)
    # ReLU passes the gradient where its input was positive and blocks it
    # elsewhere (zero where h < 0, as numpy_manual)
    grad_h_t = jnp.where(h_t < 0, 0, grad_h_relu_t)
    # The update of w1, transposed: (xᵀ·grad_h)ᵀ = grad_hᵀ·x
    update_w1t = grad_h_t.dot(x_t.T)

    # Update weights: new arrays, since JAX arrays are immutable; XLA
    # writes them into the donated buffers of the old weights
    return loss, w1t - update_w1t, w2 - update_w2


def train_loop(w1t, w2, x, y, count, learning_rate):
    """`count` steps (a traced scalar, at most CHUNK) in one XLA while loop; every step's loss."""

    def body(t, carry):
        losses, w1t, w2 = carry
        loss, w1t, w2 = train_step(w1t, w2, x, y, learning_rate)
        return losses.at[t].set(loss), w1t, w2

    losses = jnp.zeros(CHUNK, dtype=w1t.dtype)
    return lax.fori_loop(0, count, body, (losses, w1t, w2))


if __name__ == "__main__":
    demo(Net)
