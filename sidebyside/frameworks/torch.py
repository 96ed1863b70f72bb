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
