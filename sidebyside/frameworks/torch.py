"""torch: intra-op threads, one inter-op thread, TF32 off unless asked, MKL/oneDNN on the CPU, cuBLAS on a GPU."""

from sidebyside.implementations.devices import check_name, no_cuda

PACKAGES = {"torch": ("torch",)}  # recorded name: the distributions that may provide it, first installed wins


def environment(threads):
    return {}  # OMP_NUM_THREADS, which torch reads, is set for every framework (sidebyside/fairness.py)


def configure(threads, tf32=False):
    import torch

    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set, or parallel work already started
        pass
    # TF32 trades mantissa bits for speed in float32 matmuls on Ampere and
    # newer GPUs; the tutorial net does not converge the same under it.
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.set_float32_matmul_precision("high" if tf32 else "highest")
    return {}


def pools():
    import torch

    return {"torch_intra_op": torch.get_num_threads(), "torch_inter_op": torch.get_num_interop_threads()}


def kernels():
    """The BLAS torch was built with (its build configuration says), and whether oneDNN is available."""
    import torch

    settings = torch.__config__.show().replace(",", " ").split()
    blas = next((item.split("=", 1)[1] for item in settings if item.startswith("BLAS_INFO=")), "unknown")
    return f"{blas} BLAS, oneDNN {'on' if torch.backends.mkldnn.is_available() else 'off'}"


def reset_peak(device):
    """Start the peak of allocated device memory afresh; the bytes allocated now (the case's baseline)."""
    import torch

    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    return int(torch.cuda.memory_allocated())


def peak_bytes(device):
    import torch

    return int(torch.cuda.max_memory_allocated())


def forget_compiled():
    """torch.compile remembers the shapes it saw per function: after a warm-up at a
    tiny size, the next size would be compiled for dynamic shapes, not the
    static graph a fresh process compiles."""
    import sys

    if "torch._dynamo" in sys.modules:  # else nothing was compiled
        import torch

        torch.compiler.reset()


def device(name):
    """A torch.device for "cpu" or "cuda"; DeviceUnavailable where torch has no CUDA device here."""
    import torch

    check_name(name)
    if name == "cuda" and not torch.cuda.is_available():
        raise no_cuda("torch", torch.__version__, torch.version.cuda is None)
    return torch.device(name)


def matmul(device, dtype, sizes, operands):
    """`torch.matmul(out=)`; on the CPU on numpy's operands (no copy), on a GPU synchronized per product."""
    import torch

    products = []
    for size in sizes:
        if device == "cpu":
            a, b = (torch.from_numpy(m) for m in operands[size])
        else:
            generator = torch.Generator(device="cuda").manual_seed(0)
            a, b = (torch.randn(size, size, dtype=getattr(torch, dtype), device="cuda", generator=generator)
                    for _ in range(2))
        out = torch.empty_like(a)

        def multiply(a=a, b=b, out=out, on_gpu=device != "cpu"):
            torch.matmul(a, b, out=out)
            if on_gpu:
                torch.cuda.synchronize()  # a GPU product is only queued until the device says it is done

        products.append((size, multiply))
    return products


def for_peak():
    return lambda: None  # the products need no mode of their own


def after_peak(device):
    """Hand the CUDA cache back once the GPU's products are timed."""
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def profile(step, steps, device):
    """`steps` runs of `step` under torch.profiler: matrix products, other kernels, wall time, per step.

    On the CPU a kernel is an aten op's self time (its interval less the ops
    it calls), which is all of an op's compute the CPU profiler can see; on a
    GPU it is the device's kernels, which the CPU only launches. Nothing but
    the ops' times is recorded (no shapes, stacks or memory): each would
    slow every op and so the step described.
    """
    import torch
    from torch.profiler import ProfilerActivity, record_function
    from torch.profiler import profile as profiler

    from sidebyside.frameworks import _profile

    # The C++ annotation where torch has it: record_function's costs tens of microseconds a step.
    annotate = getattr(torch._C._profiler, "_RecordFunctionFast", record_function)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device == "cuda" else [])
    with profiler(activities=activities) as trace:
        walls = _profile.run(step, steps, annotate)
    events = trace.events()
    on_cpu = [event for event in events if event.device_type == torch.autograd.DeviceType.CPU]
    windows = [span(event)[:2] for event in on_cpu if event.name == _profile.STEP]
    if device == "cuda":
        kernels = [span(event) for event in events
                   if event.device_type == torch.autograd.DeviceType.CUDA and not event.is_user_annotation]
    else:
        kernels = [piece for event in on_cpu if event.name.startswith("aten::") for piece in self_time(event)]
    return {**_profile.breakdown(walls, windows, kernels), "profiler": f"torch.profiler (torch {torch.__version__})"}


def span(event):
    """(start, end, name) of a profiler event, in seconds (torch reports microseconds)."""
    return event.time_range.start / 1e6, event.time_range.end / 1e6, event.name


def self_time(event):
    """An op's own time as (start, end, name) pieces: its interval less the intervals of the ops it called."""
    pieces, start, end, name = [], *span(event)
    for child in sorted(event.cpu_children, key=lambda child: child.time_range.start):
        child_start, child_end, _ = span(child)
        if child_start > start:
            pieces.append((start, child_start, name))
        start = max(start, child_end)
    if end > start:
        pieces.append((start, end, name))
    return pieces
