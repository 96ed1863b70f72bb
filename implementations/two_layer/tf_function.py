"""TensorFlow without Keras: tf.GradientTape inside tf.function, optionally XLA.

TensorFlow runs operations eagerly, one at a time, like numpy. To get
gradients, the forward pass runs under a `tf.GradientTape`, which records
the operations on watched variables; `tape.gradient` then plays the record
backwards. The weights are `tf.Variable`s: mutable, always watched by the
tape, and updated in place with `assign_sub`.

`tf.function` traces the Python step once, on the first call, into a
TensorFlow graph, which later calls run without going back to Python. With
`jit_compile=True` that graph is handed to the XLA compiler, which fuses it
into one program; the registry names this file twice: tf_function (graph
only) and tf_function_xla (graph compiled by XLA).
"""

import numpy as np
import tensorflow as tf

from sidebyside.implementations import TF_FIRST
from sidebyside.implementations.two_layer.problem import demo

# This file's registry entries: implementations/__init__.py reads them from the source, without importing it.
IMPLEMENTATIONS = [
    {"name": "tf_function", "order": 100, "framework": "tensorflow", "requires": ("tensorflow",),
     "extra": "tensorflow", "options": {"jit_compile": False}, "first_step": TF_FIRST,
     "promise": {"compiled": True, "jit_compile": False}},
    {"name": "tf_function_xla", "order": 110, "framework": "tensorflow", "requires": ("tensorflow",),
     "extra": "tensorflow", "options": {"jit_compile": True}, "first_step": TF_FIRST,
     "promise": {"compiled": True, "jit_compile": True}},
]


class Net:
    def __init__(self, w1, w2, learning_rate, device="cpu", dtype="float32", jit_compile=False):
        self.device = {"cpu": "/CPU:0", "cuda": "/GPU:0"}.get(device, device)  # a name or a TensorFlow device
        self.dtype = tf.as_dtype(dtype)
        self.learning_rate = learning_rate
        self.jit_compile = jit_compile
        # Variables hold copies of the shared initial weights, on the device.
        with tf.device(self.device):
            self.w1 = tf.Variable(np.asarray(w1, dtype=dtype))
            self.w2 = tf.Variable(np.asarray(w2, dtype=dtype))
        # tf.function traces train_step into a graph on its first call, once
        # for each new shape or dtype of its arguments; jit_compile=True
        # also compiles that graph with XLA.
        self.compiled_step = tf.function(self.train_step, jit_compile=jit_compile)

    def prepare(self, x, y):
        """Tensors of our dtype on our device; no copy if they already are."""
        return self.to_device(x), self.to_device(y)

    def to_device(self, array):
        tensor = tf.convert_to_tensor(array, dtype=self.dtype)
        if tf.DeviceSpec.from_string(tensor.device).device_type == tf.DeviceSpec.from_string(self.device).device_type:
            return tensor
        # tf.identity under tf.device copies the tensor to that device.
        with tf.device(self.device):
            return tf.identity(tensor)

    def step(self, x, y):
        """One step of gradient descent; returns the loss before the update.

        `.numpy()` copies the loss to the host, which waits for the device.
        """
        return float(self.compiled_step(*self.prepare(x, y)).numpy())

    def train(self, x, y, steps):
        """Run `steps` steps; the losses stay on the device until the end."""
        x, y = self.prepare(x, y)
        with tf.device(self.device):
            losses = tf.stack([self.compiled_step(x, y) for _ in range(steps)])
        return losses.numpy()

    def params(self):
        return self.w1.numpy().copy(), self.w2.numpy().copy()

    def info(self):
        # Asked of the tf.function, not of our flag: function_spec holds the
        # jit_compile it traces with (every traced graph is then marked
        # "XLA must compile"), and the tracing count says whether the step
        # has run as a graph yet (it traces on its first call).
        traces = self.compiled_step.experimental_get_tracing_count()
        return {
            "jit_compile": bool(self.compiled_step.function_spec.jit_compile),
            "graph_traces": traces, "compiled": traces > 0,
        }

    def train_step(self, x, y):
        w1, w2 = self.w1, self.w2

        # The tape records what happens to the variables it watches (all
        # trainable variables, by default) while the forward pass runs.
        with tf.GradientTape() as tape:
            # Forward pass: compute predicted y
            h = tf.matmul(x, w1)
            h_relu = tf.maximum(h, 0)
            y_pred = tf.matmul(h_relu, w2)

            # Compute loss: the sum of squared errors over every element
            loss = tf.reduce_sum(tf.square(y_pred - y))

        # Backward pass: play the record backwards to get the gradients of
        # the loss with respect to w1 and w2
        grad_w1, grad_w2 = tape.gradient(loss, [w1, w2])

        # Update weights: assign_sub writes into the variables in place
        w1.assign_sub(self.learning_rate * grad_w1)
        w2.assign_sub(self.learning_rate * grad_w2)
        return loss


if __name__ == "__main__":
    demo(Net)
