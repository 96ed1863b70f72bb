"""Keras 3 Sequential, on the TensorFlow, PyTorch or JAX backend.

Keras describes the model as a stack of layers and hides the training step:
`model.compile` fixes the loss and the optimizer, and `train_on_batch` runs
forward pass, loss, backward pass and update in one call, compiled by the
backend (a `tf.function`, a `jax.jit`, or eager torch). The backend is chosen
by the KERAS_BACKEND environment variable when keras is first imported and
cannot change afterwards, so each backend runs in its own process; this
file declares three registry names, keras_tensorflow, keras_torch and
keras_jax, and three more with jit_compile switched the other way.

`train_on_batch` returns the loss as a host float, so each call waits for the
device: Keras offers no per-step call that leaves the loss on the device.
`model.fit` on a single batch per epoch would pay its per-epoch set-up (data
adapter, callbacks, logs) on every step, about 20 times slower here, so it is
not the idiom for a loop of single-batch steps.
"""

import os

import numpy as np

import keras
from keras import ops

from sidebyside.implementations import KERAS_FIRST, TORCH_COMPILER
from sidebyside.implementations.two_layer.problem import DtypeUnsupported, demo

# This file's registry entries: implementations/__init__.py reads them from the source, without importing it.
IMPLEMENTATIONS = [
    {"name": "keras_tensorflow", "order": 50, "framework": "keras", "requires": ("keras", "tensorflow"),
     "extra": "keras,tensorflow", "options": {"backend": "tensorflow"}, "first_step": KERAS_FIRST},
    {"name": "keras_torch", "order": 60, "framework": "keras", "requires": ("keras", "torch"),
     "extra": "keras,torch", "options": {"backend": "torch"}, "first_step": KERAS_FIRST},
    {"name": "keras_jax", "order": 70, "framework": "keras", "requires": ("keras", "jax"),
     "extra": "keras,jax", "options": {"backend": "jax"}, "first_step": KERAS_FIRST},
    # The same with jit_compile switched the other way from each backend's "auto".
    {"name": "keras_tensorflow_xla", "order": 130, "framework": "keras", "requires": ("keras", "tensorflow"),
     "extra": "keras,tensorflow", "options": {"backend": "tensorflow", "jit_compile": True},
     "first_step": KERAS_FIRST},
    {"name": "keras_torch_compile", "order": 140, "framework": "keras", "requires": ("keras", "torch"),
     "extra": "keras,torch", "options": {"backend": "torch", "jit_compile": True}, "slow_start": True,
     "preload": TORCH_COMPILER, "first_step": KERAS_FIRST},
    {"name": "keras_jax_eager", "order": 150, "framework": "keras", "requires": ("keras", "jax"),
     "extra": "keras,jax", "options": {"backend": "jax", "jit_compile": False}, "slow_start": True,
     "first_step": KERAS_FIRST},
]

BACKEND = keras.backend.backend()


def keras_device(device):
    """A Keras device name for "cpu" or "cuda" (the harness asks the backend's adapter whether it has one)."""
    name = "gpu" if device == "cuda" else "cpu"
    # The torch backend moves new variables with .to(name): "cpu:0" would make
    # them non-leaf tensors that never receive gradients, so it gets no index.
    return name if BACKEND == "torch" else f"{name}:0"


class SumOfSquares(keras.losses.Loss):
    """The tutorial's loss: squared errors summed over every element.

    Keras losses return one value per sample and then reduce over the batch;
    reduction="sum" makes that reduction a sum instead of Keras's default mean.
    """

    def __init__(self):
        super().__init__(name="sum_of_squares", reduction="sum")

    def call(self, y_true, y_pred):
        return ops.sum(ops.square(y_pred - y_true), axis=-1)


class Net:
    # Why this loop view, unlike the others, waits for the device every step;
    # the report prints it next to the loop timings (see train below).
    loop_note = "Keras returns each step's loss as a host float: the loop syncs every step (train_on_batch)"

    def __init__(self, w1, w2, learning_rate, device="cpu", dtype="float32", jit_compile="auto"):
        self.device = keras_device(device)
        self.dtype = dtype
        if BACKEND == "jax" and dtype == "float64":
            # JAX computes in 32 bits unless 64-bit mode is switched on.
            import jax

            jax.config.update("jax_enable_x64", True)
        # Keras creates the optimizer's learning rate and the loss tracker in
        # its global default float type, floatx: left at float32, a float64 run
        # would train with a learning rate rounded to float32 and report
        # float32-rounded losses. The setting is global, so one Keras net is
        # trained at a time per process.
        keras.config.set_floatx(dtype)
        if ops.matmul(ops.ones((1, 1), dtype), ops.ones((1, 1), dtype)).dtype != ops.ones((1,), dtype).dtype:
            # Keras's type promotion turns 64-bit results into 32-bit ones on
            # every backend but TensorFlow, to match JAX's default; on the
            # torch backend this makes float64 matrix products float32.
            raise DtypeUnsupported(f"Keras {keras.__version__} on the {BACKEND} backend computes {dtype} matmul in float32")
        w1, w2 = np.asarray(w1, dtype=dtype), np.asarray(w2, dtype=dtype)
        (D_in, H), (_, D_out) = w1.shape, w2.shape
        with keras.device(self.device):
            # Dense keeps its kernel as (in, out), the same layout as our w1, w2.
            # The weights come from the shared problem (set_weights below), so
            # the layers start from zeros: a random initializer would only be
            # overwritten, and on JAX it compiles a random-number kernel per
            # shape (about a second each on a slow CPU).
            self.model = keras.Sequential(
                [
                    keras.Input(shape=(D_in,), dtype=dtype),
                    keras.layers.Dense(H, activation="relu", use_bias=False, kernel_initializer="zeros", dtype=dtype),
                    keras.layers.Dense(D_out, use_bias=False, kernel_initializer="zeros", dtype=dtype),
                ]
            )
            self.model.layers[0].set_weights([w1])
            self.model.layers[1].set_weights([w2])
            # Plain SGD, no momentum; jit_compile="auto" lets the backend decide.
            self.model.compile(
                optimizer=keras.optimizers.SGD(learning_rate=learning_rate),
                loss=SumOfSquares(),
                jit_compile=jit_compile,
            )

    def prepare(self, x, y):
        """Backend tensors of our dtype on our device; no copy if they already are."""
        with keras.device(self.device):
            return (
                ops.convert_to_tensor(x, dtype=self.dtype),
                ops.convert_to_tensor(y, dtype=self.dtype),
            )

    def step(self, x, y):
        """One step of gradient descent; returns the loss before the update."""
        return float(self.train_step(*self.prepare(x, y)))

    def train(self, x, y, steps):
        """Run `steps` steps. Each returns a host float (Keras syncs every step).

        Keras has no call that runs several steps and keeps each one's loss.
        `compile(steps_per_execution=k)` with `fit` runs k steps per call with
        one sync, but `fit` reports only the logs of the last of them, and its
        "loss" is the running mean of the epoch's losses (a `Mean` metric
        reset each epoch), not that step's loss. Taking per-step losses back
        out of running means by differences loses every digit once the loss
        has fallen by orders of magnitude, as it does here; one epoch per step
        would give exact losses but pay fit's per-epoch set-up every step. So
        the loop view stays `train_on_batch`, syncing every step: `loop_note`.
        """
        x, y = self.prepare(x, y)
        return np.array([self.train_step(x, y) for _ in range(steps)])

    def params(self):
        return tuple(layer.get_weights()[0].copy() for layer in self.model.layers)

    def info(self):
        # What "auto" resolved to: XLA for JAX everywhere and for TensorFlow
        # on a GPU, eager for torch; True on torch means torch.compile.
        # Keras settles it when it builds the train function, on the first
        # step (and may switch XLA off then, for a model XLA cannot compile).
        # "compiled": the step runs as a traced program rather than op by
        # op: always a tf.function on TensorFlow (unless run_eagerly), only
        # with jit_compile (jax.jit, torch.compile) on JAX and torch. None
        # before the first step has built the train function.
        jit = bool(self.model.jit_compile)
        if self.model.train_function is None:
            compiled = None
        else:
            compiled = not self.model.run_eagerly and (jit or BACKEND == "tensorflow")
        return {"jit_compile": jit, "compiled": compiled}

    def train_step(self, x, y):
        with keras.device(self.device):
            # Forward pass, Compute loss, Backward pass and Update weights all
            # happen inside train_on_batch: Keras predicts y with the layers,
            # applies the compiled loss, asks the backend for the gradients of
            # the kernels and lets the optimizer apply w -= learning_rate * grad.
            # The loss it returns is the one computed before the update.
            return self.model.train_on_batch(x, y)


if __name__ == "__main__":
    demo(Net)
