"""JAX multi-process: the jax_jit net trained data-parallel with jax.distributed and shard_map.

Every process calls `jax.distributed.initialize` with the coordinator's
address, the number of processes and its own id; after that
`jax.devices()` lists the devices of every process (one CPU device each
here), and a Mesh over them spans the processes. The step is one jitted
`shard_map` over that mesh: the batch is split along its rows (each
process supplies its own rows, `make_array_from_process_local_data`), the
weights are replicated. Inside, each device computes the loss and
gradients of its rows; the gradients of the replicated weights come back
summed over the mesh (shard_map's transpose of a replicated input is a
psum), and the loss is summed with an explicit `psum`. CPU processes
exchange over gloo (`jax_cpu_collectives_implementation`).

Started by sidebyside/jobs/multiworker.py, once per process. There is no
in-process Net: the mesh spans processes.
"""

import statistics
import time

import jax
import numpy as np

from sidebyside.implementations import JIT_FIRST

# This file's registry entries: implementations/__init__.py reads them from the source, without importing it.
IMPLEMENTATIONS = [
    # Data-parallel over processes, as tf_multiworker; no in-process Net.
    {"name": "jax_distributed", "order": 210, "framework": "jax", "requires": ("jax",), "extra": "jax",
     "options": {"ranks": 2}, "slow_start": True, "launcher": "jax_coordinator", "in_process": False,
     "first_step": JIT_FIRST, "promise": {"compiled": True}},  # the step is one jitted shard_map
]

AXIS = "batch"


def join(coordinator, processes, process_id):
    """Meet the other processes at the coordinator; CPU collectives over gloo."""
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=processes, process_id=process_id)


class Net:
    def __init__(self, w1, w2, learning_rate, dtype="float32"):
        import jax.numpy as jnp
        from jax import shard_map
        from jax.sharding import Mesh, NamedSharding
        from jax.sharding import PartitionSpec as P

        if dtype == "float64":
            jax.config.update("jax_enable_x64", True)
        self.dtype = np.dtype(dtype)
        self.mesh = Mesh(np.array(jax.devices()), (AXIS,))
        self.rows = NamedSharding(self.mesh, P(AXIS))
        self.replicated = NamedSharding(self.mesh, P())
        self.w1 = jax.make_array_from_process_local_data(self.replicated, np.asarray(w1, dtype=dtype))
        self.w2 = jax.make_array_from_process_local_data(self.replicated, np.asarray(w2, dtype=dtype))

        def loss_fn(w1, w2, x, y):
            # Forward pass: compute predicted y for this device's rows only
            h_relu = jnp.maximum(x @ w1, 0)
            y_pred = h_relu @ w2
            # Compute loss: the sum of squared errors over these rows
            return jnp.sum((y_pred - y) ** 2)

        def local_step(w1, w2, x, y):
            # Backward pass: the gradients of the replicated weights arrive summed over the mesh
            loss, (grad_w1, grad_w2) = jax.value_and_grad(loss_fn, argnums=(0, 1))(w1, w2, x, y)
            # Update weights, the same everywhere; the loss of the whole batch is the sum over devices
            return w1 - learning_rate * grad_w1, w2 - learning_rate * grad_w2, jax.lax.psum(loss, AXIS)

        self.train_step = jax.jit(shard_map(local_step, mesh=self.mesh, in_specs=(P(), P(), P(AXIS), P(AXIS)),
                                            out_specs=(P(), P(), P())))
        self.exchange = jax.jit(shard_map(lambda a, b: jax.lax.psum((a, b), AXIS), mesh=self.mesh,
                                          in_specs=(P(AXIS), P(AXIS)), out_specs=(P(), P())))
        self.all_sum = jax.jit(shard_map(lambda v: jax.lax.psum(v, AXIS), mesh=self.mesh,
                                         in_specs=P(AXIS), out_specs=P()))

    def prepare(self, x, y):
        """This process's rows as its part of one global array, outside every clock."""
        x = jax.make_array_from_process_local_data(self.rows, np.asarray(x, dtype=self.dtype))
        y = jax.make_array_from_process_local_data(self.rows, np.asarray(y, dtype=self.dtype))
        return x, y

    def step(self, x, y):
        self.w1, self.w2, loss = self.train_step(self.w1, self.w2, x, y)
        return float(np.asarray(loss.addressable_data(0)))

    def train(self, x, y, steps):
        losses = []
        for _ in range(steps):
            self.w1, self.w2, loss = self.train_step(self.w1, self.w2, x, y)
            losses.append(loss)
        return np.array([float(np.asarray(loss.addressable_data(0))) for loss in losses])

    def gather(self, vector, index, processes):
        """Every process's vector, as rows: each puts its own in its row and the rows are summed."""
        rows = np.zeros((1, processes, len(vector)))
        rows[0, index] = vector
        total = self.all_sum(jax.make_array_from_process_local_data(self.rows, rows))
        return np.asarray(total.addressable_data(0))[0]

    def communication_s(self, repeats=50):
        """Median seconds of one psum of gradient-sized buffers (the step's exchange, timed apart)."""
        parts = [jax.make_array_from_process_local_data(self.rows, np.zeros((1, *w.shape), self.dtype))
                 for w in (self.w1, self.w2)]
        jax.block_until_ready(self.exchange(*parts))
        seconds = []
        for _ in range(repeats):
            begin = time.perf_counter()
            jax.block_until_ready(self.exchange(*parts))
            seconds.append(time.perf_counter() - begin)
        return statistics.median(seconds)
