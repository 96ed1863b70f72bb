"""TensorFlow without Keras, written for speed: the step compiled by XLA, gradients by hand.

The maths, data and steps are tf_function's; the weights are still
`tf.Variable`s updated in place with `assign_sub`. What changes:

- The step is compiled by XLA (`tf.function(jit_compile=True)`), which
  fuses it into one program instead of running a graph op by op.
- There is no `tf.GradientTape`: the backward pass is written by hand, as
  in numpy_manual, so nothing is recorded and played back, and the factor
  2 of the squared error's derivative and the learning rate are applied
  once, to the 64×10 error, so the products are the updates themselves
  (scalars commute with the products: the same maths, rounded in another
  place).
- `step` calls the traced concrete function for the batch's shape and
  dtype directly, skipping `tf.function`'s matching of the call's arguments
  against its traces on every call: on the 2-core machine this was written
  on, the same compiled step took about a quarter less time per step called
  this way than through the `tf.function`.
- `train` is one graph (`tf.function`) whose loop over `tf.range(steps)`
  calls the compiled step and writes each loss into a `TensorArray`: one
  call from Python for the whole loop. `steps` goes in as a tensor, so
  a loop of a new length is not traced again.
"""

import numpy as np
import tensorflow as tf

from sidebyside.implementations.devices import tensorflow_device
from sidebyside.implementations.two_layer.problem import demo


class Net:
    def __init__(self, w1, w2, learning_rate, device="cpu", dtype="float32"):
        self.device = tensorflow_device(device)
        self.dtype = tf.as_dtype(dtype)
        self.learning_rate = learning_rate
        # Variables hold copies of the shared initial weights, on the device.
        with tf.device(self.device):
            self.w1 = tf.Variable(np.asarray(w1, dtype=dtype))
            self.w2 = tf.Variable(np.asarray(w2, dtype=dtype))
        # tf.function traces train_step into a graph on its first call, once
        # for each new shape or dtype of its arguments, and XLA compiles it.
        self.compiled_step = tf.function(self.train_step, jit_compile=True)
        self.compiled_loop = tf.function(self.train_loop)
        self.concrete = {}  # (shape, dtype) of x and y -> the traced step

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
        x, y = self.prepare(x, y)
        key = (tuple(x.shape), tuple(y.shape))
        step = self.concrete.get(key)
        if step is None:
            step = self.concrete[key] = self.compiled_step.get_concrete_function(x, y)
        return float(step(x, y).numpy())

    def train(self, x, y, steps):
        """Run `steps` steps in one graph loop; the losses stay on the device until the end."""
        x, y = self.prepare(x, y)
        with tf.device(self.device):
            losses = self.compiled_loop(x, y, tf.constant(steps, dtype=tf.int32))
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
            "loop_traces": self.compiled_loop.experimental_get_tracing_count(),
        }

    def train_loop(self, x, y, steps):
        # AutoGraph makes this a graph while loop; each iteration calls the
        # XLA-compiled step, in order, since each reads what the last wrote.
        losses = tf.TensorArray(self.dtype, size=steps)
        for t in tf.range(steps):
            losses = losses.write(t, self.compiled_step(x, y))
        return losses.stack()

    def train_step(self, x, y):
        w1, w2 = self.w1, self.w2

        # Forward pass: compute predicted y
        h = tf.matmul(x, w1)
        h_relu = tf.maximum(h, 0)
        y_pred = tf.matmul(h_relu, w2)

        # Compute loss: the sum of squared errors over every element
        error = y_pred - y
        loss = tf.reduce_sum(tf.square(error))

        # Backward pass: grad_y_pred = 2 · error, times the learning rate here,
        # on the 64×10 error, so that the products below are the updates
        scaled = (2.0 * self.learning_rate) * error
        update_w2 = tf.matmul(h_relu, scaled, transpose_a=True)
        grad_h_relu = tf.matmul(scaled, w2, transpose_b=True)
        # ReLU passes the gradient where its input was positive and blocks it
        # elsewhere (zero where h < 0, as numpy_manual)
        grad_h = tf.where(h < 0, tf.zeros_like(grad_h_relu), grad_h_relu)
        update_w1 = tf.matmul(x, grad_h, transpose_a=True)

        # Update weights: assign_sub writes into the variables in place
        w1.assign_sub(update_w1)
        w2.assign_sub(update_w2)
        return loss


if __name__ == "__main__":
    demo(Net)
