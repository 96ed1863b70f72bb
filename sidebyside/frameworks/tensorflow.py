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


def profile(step, steps, device):
    """`steps` runs of `step` under TensorFlow's profiler: matrix products, other kernels, wall time, per step.

    A kernel is a TensorFlow op's kernel (an event the trace gives an op
    type: "MatMul:_MklMatMul") or, where XLA compiled the step, an XLA op
    (an event carrying `hlo_op`); of ops nested in one another (a function's
    op around the ops it runs, XLA's launch around its ops) only the
    innermost count. On a GPU, the device's kernels. Only the host events
    at the lightest level are traced and no Python function calls.
    """
    import shutil
    import tempfile
    from pathlib import Path

    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    from sidebyside.frameworks import _profile

    options = tf.profiler.experimental.ProfilerOptions(host_tracer_level=1, python_tracer_level=0,
                                                       device_tracer_level=1 if device == "cuda" else 0)
    folder = tempfile.mkdtemp(prefix="sidebyside-profile-")
    try:
        tf.profiler.experimental.start(folder, options=options)
        try:
            walls = _profile.run(step, steps, tf.profiler.experimental.Trace)
        finally:
            tf.profiler.experimental.stop()
        space = xplane_pb2.XSpace()
        space.ParseFromString(next(Path(folder).rglob("*.xplane.pb")).read_bytes())
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    windows, kernels = [], []
    for plane in space.planes:
        on_device = plane.name.startswith("/device:")
        hlo_op = next((key for key, stat in plane.stat_metadata.items() if stat.name == "hlo_op"), None)
        for line in plane.lines:
            events = []
            for event in line.events:
                metadata = plane.event_metadata[event.metadata_id]
                start = (line.timestamp_ns * 1000 + event.offset_ps) / 1e12
                end = start + event.duration_ps / 1e12
                if metadata.name == _profile.STEP and not on_device:
                    windows.append((start, end))
                elif on_device or metadata.display_name or any(stat.metadata_id == hlo_op for stat in event.stats):
                    events.append((start, end, metadata.display_name or metadata.name))
            if on_device == (device == "cuda") and (not on_device or line.name.startswith("Stream")):
                kernels += _profile.innermost(events)  # on a GPU the host's ops only launch kernels
    return {**_profile.breakdown(walls, windows, kernels), "profiler": f"tf.profiler (TensorFlow {tf.__version__})"}
