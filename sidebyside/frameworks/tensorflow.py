"""TensorFlow: intra-op threads, one inter-op thread, TF32 off unless asked; XLA where jit_compile is on."""

from sidebyside.frameworks import _xla as xla
from sidebyside.implementations.devices import check_name, no_cuda

PACKAGES = {"tensorflow": ("tensorflow", "tensorflow-cpu")}  # recorded name: the distributions that may provide it


def environment(threads):
    return {**xla.environment(threads), "TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1"}


def configure(threads, tf32=False):
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow was already initialised
        pass
    tf.config.experimental.enable_tensor_float_32_execution(tf32)
    return {}


def pools():
    """TensorFlow's configuration of its pools (where the set above failed, the one it started with)."""
    import tensorflow as tf

    return {"tensorflow_intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
            "tensorflow_inter_op": tf.config.threading.get_inter_op_parallelism_threads()}


def kernels():
    """The kernel TensorFlow runs a MatMul with here, read from a traced run of one.

    With oneDNN's optimizations on, TensorFlow rewrites MatMul into a oneDNN
    op (_MklMatMul and kin) when it builds the graph; otherwise the Eigen
    kernel runs. A one-product graph run with a full trace names the op.
    """
    import numpy as np
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        a = tf.compat.v1.placeholder(tf.float32, (64, 1000))
        product = tf.matmul(a, tf.ones((1000, 100)))
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    metadata = tf.compat.v1.RunMetadata()
    with tf.compat.v1.Session(graph=graph) as session:
        session.run(product, {a: np.ones((64, 1000), np.float32)}, options=options, run_metadata=metadata)
    ops = {stats.timeline_label.split("=", 1)[-1].split("(")[0].strip()
           for device in metadata.step_stats.dev_stats for stats in device.node_stats if "MatMul" in stats.node_name}
    if any("Mkl" in op or "OneDnn" in op for op in ops):
        return f"oneDNN ({', '.join(sorted(ops))})"
    return "Eigen (MatMul)" if "MatMul" in ops else f"unknown ({', '.join(sorted(ops)) or 'no MatMul traced'})"


def reset_peak(device):
    """Start the peak of allocated device memory afresh; the bytes allocated now (the case's baseline)."""
    import tensorflow as tf

    tf.config.experimental.reset_memory_stats("GPU:0")
    return int(tf.config.experimental.get_memory_info("GPU:0")["current"])


def peak_bytes(device):
    import tensorflow as tf

    return int(tf.config.experimental.get_memory_info("GPU:0")["peak"])


def forget_compiled():
    pass  # tf.function graphs belong to their net: a new net traces afresh


def device(name):
    """A TensorFlow device string for "cpu" or "cuda"; DeviceUnavailable where TensorFlow sees no GPU here."""
    import tensorflow as tf

    check_name(name)
    if name == "cuda":
        if not tf.config.list_physical_devices("GPU"):
            raise no_cuda("TensorFlow", tf.__version__, not tf.test.is_built_with_cuda())
        return "/GPU:0"
    return "/CPU:0"


matmul = None  # the peak never imports TensorFlow: its start-up alone costs seconds, twice per run
