"""numpy: its BLAS (OpenBLAS in the wheels) does the products; threadpoolctl sizes and names it."""

from sidebyside.implementations.devices import DeviceUnavailable, check_name

PACKAGES = {"numpy": ("numpy",)}  # recorded name: the distributions that may provide it, first installed wins
SETTLE_S = 0.15  # the peak's pause after a block of its products: OpenBLAS's idle threads spin 2^28 cycles


def environment(threads):
    return {}  # the BLAS variables are every framework's (sidebyside/fairness.py)


def configure(threads, tf32=False):
    return {}  # the BLAS limit is applied for every process (fairness.apply); no precision switch


def pools():
    return {}  # its BLAS's pool is read back by threadpoolctl for every process (fairness.read_back)


def kernels():
    """The BLAS numpy loaded, with the kernel it runs (OPENBLAS_CORETYPE can pin an older one)."""
    import numpy  # noqa: F401  (loads its BLAS, so threadpoolctl can see it)
    from threadpoolctl import threadpool_info

    libraries = [info for info in threadpool_info() if info.get("user_api") == "blas"]
    return ", ".join(
        f"{info.get('internal_api')} {info.get('version') or ''} ({info.get('architecture') or 'unknown'} kernel)".replace("  ", " ")
        for info in libraries
    ) or "unknown BLAS"


def reset_peak(device):
    raise RuntimeError("numpy has no device memory")


def peak_bytes(device):
    return None  # host memory only: the worker measures it for every framework alike


def forget_compiled():
    pass


def device(name):
    """The CPU, numpy's only device, by its name."""
    check_name(name)
    if name != "cpu":
        raise DeviceUnavailable(f"numpy runs on the CPU only, not {name!r}")
    return name


def matmul(device, dtype, sizes, operands):
    """`np.matmul` into a preallocated output: no fresh pages to fault in per product."""
    if device != "cpu":
        return None
    import numpy as np

    products = []
    for size in sizes:
        a, b = operands[size]
        out = np.ones((size, size), dtype)
        products.append((size, lambda a=a, b=b, out=out: np.matmul(a, b, out=out)))
    return products


def for_peak():
    return lambda: None


def after_peak(device):
    pass
