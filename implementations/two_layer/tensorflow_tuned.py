"""TensorFlow without Keras, written for speed: a graph with the backward pass by hand, called by its flat path.

The maths, data and steps are tf_function's; the weights are still
`tf.Variable`s updated in place with `assign_sub`. What changes:

- There is no `tf.GradientTape`: the backward pass is written by hand, as
  in numpy_manual, so nothing is recorded and played back, and the factor
  2 of the squared error's derivative and the learning rate are applied
  once, to the 64×10 error, so the products are the updates themselves
  (scalars commute with the products: the same maths, rounded in another
  place).
- The step is a `tf.function` graph, as tf_function's, and NOT compiled by
  XLA: at the tutorial size on the CPU, XLA's dot kernels were no faster
  than the ones TensorFlow's graph runs (Eigen's `MatMul`, the op
  sidebyside/frameworks/tensorflow.py finds in a traced graph here) in
  paired runs of this same step. XLA buys nothing here, and the plain
  graph keeps TensorFlow's own kernels.
- Calling the graph costs more than running it, and the ways of calling
  it differ: the concrete function's flat call (`_call_flat`) skips
  binding the arguments to the function's signature, casting and checking
  them (the arguments here are already tensors of the traced shape and
  dtype), and was the fastest, then the `ConcreteFunction`, then the
  `tf.function`. `step` therefore calls the traced step for the batch's
  shape by its flat call, where this TensorFlow has one (`call_path` in
  info() says which was taken), and otherwise the concrete function.
- `prepare` returns tensors that already are of our dtype on our device
  without converting them again (tf_function's `prepare`, which its
  `step` calls, pays `tf.convert_to_tensor` and two device-spec parses
  each time). It converts and places, nothing more: x reaches the step as
  every implementation receives it, and the update's xᵀ·grad_h reads it
  through `transpose_a`, inside the step.
- `train` is one graph (`tf.function`) whose loop over `tf.range(steps)`
  calls the step and writes each loss into a `TensorArray`: one call from
  Python for the whole loop. `steps` goes in as a tensor, so a loop of a
  new length is not traced again.

docs/tuned-variants.md keeps the figures behind these choices.
"""

import numpy as np
import tensorflow as tf

from sidebyside.implementations import TF_FIRST
from sidebyside.implementations.two_layer.problem import demo

# This file's registry entries: implementations/__init__.py reads them from the source, without importing it.
IMPLEMENTATIONS = [
    {"name": "tensorflow_tuned", "order": 190, "framework": "tensorflow", "requires": ("tensorflow",),
     "extra": "tensorflow", "tuned_from": "tf_function",
     "tuning": "the backward pass is written by hand instead of a GradientTape, in a graph that XLA does "
               "not compile (no faster at this size on the CPU), called by its concrete function's flat call, "
               "prepare() passes our own tensors through, and train() is one graph loop",
     "first_step": TF_FIRST,
     # A graph without XLA, as tf_function's (XLA was slower at the tutorial size on the CPU).
     "promise": {"compiled": True, "jit_compile": False}},
]


class Net:
    def __init__(self, w1, w2, learning_rate, device="cpu", dtype="float32"):
        self.device = {"cpu": "/CPU:0", "cuda": "/GPU:0"}.get(device, device)  # a name or a TensorFlow device
        self.dtype = tf.as_dtype(dtype)
        self.learning_rate = learning_rate
        # Variables hold copies of the shared initial weights, on the device.
        with tf.device(self.device):
            self.w1 = tf.Variable(np.asarray(w1, dtype=dtype))
            self.w2 = tf.Variable(np.asarray(w2, dtype=dtype))
            self.zero = tf.constant(0, dtype=self.dtype)
        # The full name of the device our tensors live on, as a tensor reports it.
        self.placed = self.w1.device
        # tf.function traces train_step into a graph on its first call, once
        # for each new shape or dtype of its arguments; no XLA (see above).
        self.compiled_step = tf.function(self.train_step)
        self.compiled_loop = tf.function(self.train_loop)
        self.calls = {}  # shapes of x and y -> the traced step's fastest call
        self.call_path = None

    def prepare(self, x, y):
        """Tensors of our dtype on our device; no copy if they already are."""
        return self.to_device(x), self.to_device(y)

    def to_device(self, array):
        if isinstance(array, tf.Tensor) and array.dtype == self.dtype and array.device == self.placed:
            return array
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
        call = self.calls.get(key)
        if call is None:
            call = self.calls[key] = self.fastest_call(self.compiled_step.get_concrete_function(x, y))
        return call(x, y).numpy().item()

    def fastest_call(self, concrete):
        """The concrete function's flat call where it has one, else the concrete function itself."""
        flat = getattr(concrete, "_call_flat", None)
        if flat is None:
            self.call_path = "ConcreteFunction"
            return concrete
        captured = concrete.captured_inputs  # the variables' handles, passed on every call
        self.call_path = "_call_flat"
        return lambda x, y: flat([x, y], captured)

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
            "call_path": self.call_path,
        }

    def train_loop(self, x, y, steps):
        # AutoGraph makes this a graph while loop; each iteration calls the
        # step, in order, since each reads what the last wrote.
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
        # elsewhere (zero where h < 0, as numpy_manual; the zero is a scalar
        # that tf.where broadcasts, not a zeros tensor made every step)
        grad_h = tf.where(h < 0, self.zero, grad_h_relu)
        update_w1 = tf.matmul(x, grad_h, transpose_a=True)

        # Update weights: assign_sub writes into the variables in place
        w1.assign_sub(update_w1)
        w2.assign_sub(update_w2)
        return loss


if __name__ == "__main__":
    demo(Net)
