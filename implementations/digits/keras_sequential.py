"""Keras 3 Sequential trained with `train_on_batch`, on the TensorFlow, PyTorch or JAX backend.

Layers stacked in a `Sequential`, `compile` with a loss and an optimizer, and
then one `train_on_batch` per batch of the shared order: Keras runs the
forward pass, the loss, the backward pass and the Adam update in one call,
compiled by the backend (a `tf.function`, a `jax.jit`, or eager torch), and
returns the batch's loss before the update, as the other files do.

Why not `model.fit`? It cannot take device tensors in our batch order
without converting them inside the timed loop on some backend. Fed a
`keras.utils.PyDataset` of numpy batches, it converts every batch to the
backend's tensors per step, a host-to-device conversion the other
frameworks pay once, before any clock starts. Fed a PyDataset of backend
tensors, the TensorFlow backend wraps it in `tf.data.Dataset.from_generator`,
which turns every item into numpy and back. Fed whole backend arrays, the
JAX backend's array adapter turns them into numpy (`np.asarray`) and puts
each batch back on the device. And `fit` logs only the running mean of the
epoch's loss, not each step's. So here, as in the torch files, the images
and labels are converted to backend tensors on the device once (`prepare`),
the epoch's index arrays too (`prepare_batches`); each step gathers its
batch on the device with `ops.take`, which is what torch's `x[batch]` does,
and hands it to `train_on_batch`, which passes backend tensors straight to
the compiled step on every backend. The price is Keras's per-call overhead:
on JAX, `train_on_batch` reads the model's state out of its variables and
writes it back at every call, which `fit` does once per epoch.

Keras's Adam folds the bias corrections into the step size and adds epsilon
to √v rather than √v̂; the effect is that of a larger epsilon,
eps / √(1 - beta2^t) (see numpy_manual). On the TensorFlow backend it also
rounds beta1 and beta2 to float32 before raising them to the power t, even
in float64. reference.py replays both; this file's IMPLEMENTATIONS mark
these entries with adam="keras".
"""

import numpy as np

import keras
from keras import ops

from sidebyside.implementations.digits.demo import demo
from sidebyside.implementations.digits.problem import DtypeUnsupported
from sidebyside.implementations.two_layer.keras_sequential import BACKEND, keras_device

# This file's registry entries, read from the source by implementations/__init__.py: the two-layer
# file of the same name declares their other fields; the Adam rule is the digits workload's.
IMPLEMENTATIONS = [
    {"name": "keras_tensorflow", "adam": "keras"},
    {"name": "keras_torch", "adam": "keras"},
    {"name": "keras_jax", "adam": "keras"},
]

# Integer type of labels and batch indices: JAX has no 64-bit integers unless
# its 64-bit mode is on (it is only in float64 runs); torch indexes with int64.
INDEX_DTYPE = "int32" if BACKEND == "jax" else "int64"


def check_dtype(dtype):
    """Make `dtype` Keras's default float type and check the backend computes in it."""
    if BACKEND == "jax" and dtype == "float64":
        # JAX computes in 32 bits unless 64-bit mode is switched on.
        import jax

        jax.config.update("jax_enable_x64", True)
    # Keras creates the optimizer's state and the loss tracker in its global
    # default float type, floatx; left at float32, a float64 run would keep
    # Adam's learning rate and the logged losses in float32. The setting is
    # global, so one Keras net is trained at a time per process.
    keras.config.set_floatx(dtype)
    if ops.matmul(ops.ones((1, 1), dtype), ops.ones((1, 1), dtype)).dtype != ops.ones((1,), dtype).dtype:
        # On the torch backend Keras's type promotion makes float64 matrix
        # products float32, to match JAX's default.
        raise DtypeUnsupported(f"Keras {keras.__version__} on the {BACKEND} backend computes {dtype} matmul in float32")


class Net:
    def __init__(self, params, problem, device="cpu", jit_compile="auto", adam="keras"):
        if adam != "keras":  # the registry's option, checked: Keras has only its own Adam rule
            raise ValueError(f"Keras's Adam adds eps to sqrt(v); adam={adam!r} is not available, only 'keras'")
        self.device = keras_device(device)
        self.dtype = problem.dtype
        check_dtype(problem.dtype)
        D_in, H = np.shape(params["w1"])
        D_out = np.shape(params["w2"])[1]
        with keras.device(self.device):
            # Dense keeps its kernel as (in, out), the layout of our w1 and w2.
            # The shared weights are set below, so the layers start from zeros
            # (a random initializer would be overwritten, after compiling a
            # random-number kernel per shape on JAX).
            self.model = keras.Sequential(
                [
                    keras.Input(shape=(D_in,), dtype=problem.dtype),
                    keras.layers.Dense(H, activation="relu", kernel_initializer="zeros", dtype=problem.dtype),
                    keras.layers.Dense(D_out, kernel_initializer="zeros", dtype=problem.dtype),
                ]
            )
            for layer, w, b in zip(self.model.layers, ("w1", "w2"), ("b1", "b2")):
                layer.set_weights([np.asarray(params[w], problem.dtype), np.asarray(params[b], problem.dtype)])
            # from_logits=True: the last layer gives raw scores and the loss
            # applies the softmax itself, which is more accurate. Its default
            # reduction averages over the batch.
            self.model.compile(
                optimizer=keras.optimizers.Adam(
                    learning_rate=problem.learning_rate,
                    beta_1=problem.beta1,
                    beta_2=problem.beta2,
                    epsilon=problem.eps,
                ),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=jit_compile,
            )

    def prepare(self, x, y=None):
        """Backend tensors on our device: images of our dtype, labels as integers; no copy if they already are."""
        with keras.device(self.device):
            x = ops.convert_to_tensor(x, dtype=self.dtype)
            return x if y is None else (x, ops.convert_to_tensor(y, dtype=INDEX_DTYPE))

    def prepare_batches(self, batches):
        """The epoch's index arrays as integer backend tensors on our device."""
        with keras.device(self.device):
            return [ops.convert_to_tensor(batch, dtype=INDEX_DTYPE) for batch in batches]

    def fit_epoch(self, x, y, batches):
        """One `train_on_batch` per batch of indices; returns each step's loss before its update."""
        x, y = self.prepare(x, y)
        batches = self.prepare_batches(batches)
        losses = []
        with keras.device(self.device):
            for batch in batches:
                # Gather the batch on the device, as torch's x[batch] does.
                x_batch, y_batch = ops.take(x, batch, axis=0), ops.take(y, batch, axis=0)
                # Forward pass, Compute loss, Backward pass and Update weights all
                # happen inside train_on_batch: Keras predicts with the layers,
                # applies the compiled loss, asks the backend for the gradients
                # and lets Adam update the kernels and biases. It returns the
                # loss as a host float, so each step waits for the device.
                losses.append(float(self.model.train_on_batch(x_batch, y_batch)))
        return np.array(losses)

    def predict(self, x):
        """The most likely class of each image."""
        with keras.device(self.device):
            scores = self.model.predict_on_batch(self.prepare(x))
        return np.asarray(scores).argmax(axis=1)

    def info(self):
        # What jit_compile="auto" resolved to: XLA for JAX everywhere and for
        # TensorFlow on a GPU, eager for torch.
        return {"jit_compile": bool(self.model.jit_compile)}

    def params(self):
        (w1, b1), (w2, b2) = (layer.get_weights() for layer in self.model.layers)
        return {"w1": w1, "b1": b1, "w2": w2, "b2": b2}


if __name__ == "__main__":
    demo(Net)
