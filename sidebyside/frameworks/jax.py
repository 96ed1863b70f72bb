"""JAX: XLA compiles every step; its threads come from PJRT_NPROC and XLA_FLAGS, its precision from a config flag."""

from importlib import metadata

from sidebyside.frameworks import _xla as xla
from sidebyside.implementations.devices import check_name, no_cuda

PACKAGES = {"jax": ("jax",), "jaxlib": ("jaxlib",)}  # recorded name: the distributions that may provide it


def environment(threads):
    return xla.environment(threads)


def configure(threads, tf32=False):
    import os

    import jax

    jax.config.update("jax_default_matmul_precision", "tensorfloat32" if tf32 else "highest")
    return {"xla_flags": os.environ.get("XLA_FLAGS", "")}  # as set: XLA has no call that reads its flags back


def pools():
    """XLA's intra-op pool: its threads, once the CPU client (which starts them) exists."""
    import jax

    jax.devices("cpu")  # creates the client where no computation has yet
    return {"xla_intra_op": xla.pool_threads()}


# How XLA's CPU backend lowered a product, read from the compiled program.
LOWERINGS = (("ynn", "YNNPACK"), ("xnn", "XNNPACK"), ("onednn", "oneDNN"), ("mkl", "oneDNN"))


def kernels():
    """Which library XLA runs a product with here: compiled at the tutorial's first product and read back.

    XLA's CPU backend hands a dot to a fused library call (YNNPACK or
    XNNPACK in recent jaxlib, oneDNN where enabled) or emits it through
    Eigen; the compiled HLO names which.
    """
    import jax
    import jax.numpy as jnp

    import jaxlib

    a, b = jnp.ones((64, 1000), jnp.float32), jnp.ones((1000, 100), jnp.float32)
    text = jax.jit(jnp.matmul).lower(a, b).compile().as_text() or ""
    roots = [line.lower() for line in text.splitlines() if line.strip().startswith("ROOT")]
    library = next((label for key, label in LOWERINGS if any(key in line for line in roots)), None)
    if library is None:
        library = "Eigen" if any(" dot(" in line for line in roots) else "unknown"
    return f"XLA {jax.devices()[0].platform.upper()} ({library}), jaxlib {jaxlib.__version__}"


def reset_peak(device):
    raise RuntimeError("JAX keeps one peak of device memory over the process's life (peak_bytes_in_use), "
                       "which cannot be reset for one case")


def peak_bytes(device):
    return None  # a lifetime peak is no case's figure (reset_peak)


def forget_compiled():
    pass  # compiled per net: a new net compiles afresh


def device(name):
    """A jax.Device for "cpu" or "cuda"; DeviceUnavailable where JAX has no GPU platform here."""
    import jax

    check_name(name)
    if name == "cuda":
        try:
            return jax.devices("gpu")[0]
        except RuntimeError:
            raise no_cuda("JAX", jax.__version__, not cuda_plugin()) from None
    return jax.devices("cpu")[0]


def cuda_plugin():
    """Whether a JAX CUDA plugin (jax[cuda12], jax[cuda13]) is installed."""
    names = {dist.metadata["Name"].lower() for dist in metadata.distributions() if dist.metadata["Name"]}
    return any(name.startswith("jax-cuda") and name.endswith("plugin") for name in names)


def matmul(device, dtype, sizes, operands):
    """`jax.jit(jnp.matmul)` compiled ahead of time, so XLA's compilation is never timed."""
    import jax
    import jax.numpy as jnp

    target = jax.devices("cpu" if device == "cpu" else "gpu")[0]
    products = []
    for size in sizes:
        if device == "cpu":
            a, b = (jax.device_put(m, target) for m in operands[size])
        else:
            keys = jax.random.split(jax.random.key(0))
            a, b = (jax.device_put(jax.random.normal(key, (size, size), dtype=dtype), target) for key in keys)
        compiled = jax.jit(jnp.matmul).lower(a, b).compile()
        products.append((size, lambda a=a, b=b, f=compiled: f(a, b).block_until_ready()))
    return products


def for_peak():
    """64-bit mode on, which float64 operands need; returns what switches it back.

    Restored afterwards: in a pytest-benchmark process the same jax runs the implementations.
    """
    import jax

    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", True)
    return lambda: jax.config.update("jax_enable_x64", before)


def after_peak(device):
    pass


def profile(step, steps, device):
    """`steps` runs of `step` under JAX's profiler: matrix products, other kernels, wall time, per step.

    A kernel is an XLA op as the trace names it (an event carrying `hlo_op`:
    a thunk on the CPU; on a GPU, the device's kernels). Only the host
    events at the lightest level are traced and no Python function calls:
    more would slow the step described.
    """
    import shutil
    import tempfile
    from pathlib import Path

    import jax

    from sidebyside.frameworks import _profile

    options = jax.profiler.ProfileOptions()
    options.host_tracer_level = 1  # the ops' events, not the runtime's internals
    options.python_tracer_level = 0
    folder = tempfile.mkdtemp(prefix="sidebyside-profile-")
    try:
        jax.profiler.start_trace(folder, profiler_options=options)
        try:
            walls = _profile.run(step, steps, jax.profiler.TraceAnnotation)
        finally:
            jax.profiler.stop_trace()
        data = jax.profiler.ProfileData.from_file(str(next(Path(folder).rglob("*.xplane.pb"))))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    windows, kernels = [], []
    for plane in data.planes:
        on_device = plane.name.startswith("/device:")
        for line in plane.lines:
            events = [(event.start_ns / 1e9, event.end_ns / 1e9, event.name, event) for event in line.events]
            windows += [(start, end) for start, end, name, _ in events if name == _profile.STEP and not on_device]
            if on_device != (device == "cuda") or (on_device and not line.name.startswith("Stream")):
                continue  # on a GPU the host's ops only launch kernels
            kernels += _profile.innermost([(start, end, label(event)) for start, end, _, event in events
                                           if on_device or any(key == "hlo_op" for key, _ in event.stats)])
    return {**_profile.breakdown(walls, windows, kernels), "profiler": f"jax.profiler (jax {jax.__version__})"}


def label(event):
    """An XLA event's name and its HLO op's, which on a GPU is often what says it is a product."""
    op = next((str(value) for key, value in event.stats if key == "hlo_op"), "")
    return f"{event.name} {op}" if op and op != event.name else event.name
