"""TensorFlow MultiWorkerMirroredStrategy: the tf_function net trained data-parallel over processes.

Every worker is a separate process, described by TF_CONFIG (the cluster's
worker addresses and this worker's index), holding a full copy of the
weights (variables created in the strategy's scope) and its rows of the
batch. `strategy.run` runs the step on this worker's replica; the
gradients are summed over the workers by the replica context's all-reduce
(TensorFlow's collective ops over gRPC between CPU processes), so every
worker applies the same update. The loss of the whole batch is the sum of
the workers' losses (`strategy.reduce`).

Started by sidebyside/jobs/multiworker.py, which sets TF_CONFIG for each worker
of `sidebyside run`, or by you on several machines with TF_CONFIG of your
own. There is no in-process Net: a strategy spans processes.
"""

import json
import os
import statistics
import time

import numpy as np
import tensorflow as tf

from sidebyside.implementations import TF_FIRST

# This file's registry entries: implementations/__init__.py reads them from the source, without importing it.
IMPLEMENTATIONS = [
    # Data-parallel over processes, launched as a job of several processes
    # (sidebyside/jobs/multiworker.py); no in-process Net.
    {"name": "tf_multiworker", "order": 200, "framework": "tensorflow", "requires": ("tensorflow",),
     "extra": "tensorflow", "options": {"ranks": 2}, "slow_start": True, "launcher": "tf_config",
     "in_process": False, "first_step": TF_FIRST, "promise": {"compiled": True}},  # the step is a tf.function
]


def layout():
    """(this worker's index, the number of workers) from TF_CONFIG."""
    config = json.loads(os.environ["TF_CONFIG"])
    return int(config["task"]["index"]), len(config["cluster"]["worker"])


class Net:
    def __init__(self, w1, w2, learning_rate, dtype="float32"):
        # The strategy reads TF_CONFIG and meets the other workers here.
        self.strategy = tf.distribute.MultiWorkerMirroredStrategy()
        self.dtype = tf.as_dtype(dtype)
        self.learning_rate = learning_rate
        with self.strategy.scope():
            self.w1 = tf.Variable(np.asarray(w1, dtype=dtype))
            self.w2 = tf.Variable(np.asarray(w2, dtype=dtype))
        self.train_step = tf.function(self.distributed_step)
        self.summed = tf.function(self.sum_over_workers)

    def prepare(self, x, y):
        """This worker's rows, converted once, outside every clock."""
        return tf.constant(x, dtype=self.dtype), tf.constant(y, dtype=self.dtype)

    def replica_step(self, x, y):
        with tf.GradientTape() as tape:
            # Forward pass: compute predicted y for this worker's rows only
            h_relu = tf.nn.relu(x @ self.w1)
            y_pred = h_relu @ self.w2

            # Compute loss: the sum of squared errors over this worker's rows
            loss = tf.reduce_sum((y_pred - y) ** 2)

        # Backward pass: this worker's gradients, then summed over every worker
        grads = tape.gradient(loss, [self.w1, self.w2])
        grads = tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, grads)

        # Update weights: the same summed gradient everywhere keeps the copies identical
        self.w1.assign_sub(self.learning_rate * grads[0])
        self.w2.assign_sub(self.learning_rate * grads[1])
        return loss

    def distributed_step(self, x, y):
        loss = self.strategy.run(self.replica_step, args=(x, y))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None)

    def step(self, x, y):
        """One step; returns the loss of the whole batch, before the update."""
        return float(self.train_step(x, y).numpy())

    def train(self, x, y, steps):
        losses = [self.train_step(x, y) for _ in range(steps)]
        return np.array([loss.numpy() for loss in losses])

    def sum_over_workers(self, value):
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, self.strategy.run(tf.identity, args=(value,)),
                                    axis=None)

    def gather(self, vector, index, workers):
        """Every worker's vector, as rows: each puts its own in its row and the rows are summed."""
        rows = np.zeros((workers, len(vector)))
        rows[index] = vector
        return self.summed(tf.constant(rows)).numpy()

    def communication_s(self, repeats=50):
        """Median seconds of one all-reduce of gradient-sized buffers (the step's exchange, timed apart)."""
        buffers = [tf.zeros_like(self.w1), tf.zeros_like(self.w2)]

        @tf.function
        def exchange():
            def replica():
                return tf.distribute.get_replica_context().all_reduce(tf.distribute.ReduceOp.SUM, buffers)

            return self.strategy.run(replica)

        exchange()
        seconds = []
        for _ in range(repeats):
            begin = time.perf_counter()
            result = exchange()
            _ = [part.numpy() for part in tf.nest.flatten(result)]
            seconds.append(time.perf_counter() - begin)
        return statistics.median(seconds)
