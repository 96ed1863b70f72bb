"""Keras 3 Sequential trained with `model.fit`, on the TensorFlow, PyTorch or JAX backend.

Here Keras is used the way its guides use it: layers stacked in a
`Sequential`, `compile` with a loss and an optimizer, and `fit`, which runs
the whole loop (batches, forward pass, loss, backward pass, Adam update),
compiled by the backend. The shared batch order reaches `fit` through a
`keras.utils.PyDataset`, whose item i is batch i of the epoch; `fit` is
called once per epoch with `shuffle=False`, so it keeps our order.

Two things differ from the other files. Keras's Adam folds the bias
corrections into the step size and adds epsilon to √v rather than √v̂; the
effect is that of a larger epsilon, eps / √(1 - beta2^t) (see numpy_manual).
On the TensorFlow backend it also rounds beta1 and beta2 to float32 before
raising them to the power t, even in float64 (reference.py replays both).
And `fit` reports no per-step loss: after each batch its logs hold the mean
loss of the epoch so far, weighted by batch size. The callback below
recovers each step's loss from two consecutive running means, exact up to
the rounding of the running sum (a few parts per million in float32).
"""

import numpy as np

import keras
from keras import ops

from implementations.digits.problem import DtypeUnsupported, demo
from implementations.keras_sequential import BACKEND, keras_device


class SharedBatches(keras.utils.PyDataset):
    """The epoch's batches in the shared order: item i is (images, labels) of batch i."""

    def __init__(self, x, y, batches):
        super().__init__()  # one worker, no multiprocessing: batches come in order
        self.x, self.y, self.batches = x, y, batches

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, index):
        batch = self.batches[index]
        return self.x[batch], self.y[batch]


class StepLosses(keras.callbacks.Callback):
    """Each step's loss, recovered from the running means that `fit` logs."""

    def __init__(self, batch_sizes):
        super().__init__()
        self.seen = np.cumsum(batch_sizes, dtype=np.float64)  # images seen after each step
        self.means = []

    def on_train_batch_end(self, batch, logs=None):
        self.means.append(float(logs["loss"]))

    def losses(self):
        # The running mean after step k is (sum of n_i · loss_i for i ≤ k) / seen_k.
        totals = np.array(self.means) * self.seen[: len(self.means)]
        return np.diff(totals, prepend=0.0) / np.diff(self.seen[: len(self.means)], prepend=0.0)


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
    def __init__(self, params, problem, device="cpu", jit_compile="auto"):
        self.device = keras_device(device)
        self.dtype = problem.dtype
        check_dtype(problem.dtype)
        D_in, H = np.shape(params["w1"])
        D_out = np.shape(params["w2"])[1]
        with keras.device(self.device):
            # Dense keeps its kernel as (in, out), the layout of our w1 and w2.
            self.model = keras.Sequential(
                [
                    keras.Input(shape=(D_in,), dtype=problem.dtype),
                    keras.layers.Dense(H, activation="relu", dtype=problem.dtype),
                    keras.layers.Dense(D_out, dtype=problem.dtype),
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
        """Images as numpy arrays of our dtype, labels as int64: `fit` converts each batch itself."""
        x = np.ascontiguousarray(x, dtype=self.dtype)
        return x if y is None else (x, np.ascontiguousarray(y, dtype=np.int64))

    def fit_epoch(self, x, y, batches):
        """One epoch of `fit` over the shared batches; returns each step's loss before its update."""
        x, y = self.prepare(x, y)
        step_losses = StepLosses([len(batch) for batch in batches])
        with keras.device(self.device):
            # Forward pass, Compute loss, Backward pass and Update weights all
            # happen inside fit, one batch at a time: Keras predicts with the
            # layers, applies the compiled loss, asks the backend for the
            # gradients and lets Adam update the kernels and biases.
            self.model.fit(SharedBatches(x, y, batches), epochs=1, shuffle=False, verbose=0, callbacks=[step_losses])
        return step_losses.losses()

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
