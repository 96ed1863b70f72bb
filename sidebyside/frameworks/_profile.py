"""The op breakdown of profiled steps (`--profile`), shared by the adapters whose framework has a profiler.

Not an adapter (the underscore keeps it out of the list). An adapter's
`profile` runs its steps through `run` under its framework's profiler, then
hands `breakdown` what the profiler saw: each measured step's window on the
profiler's clock (the STEP annotation `run` wraps it in) and the kernels,
each as (start, end, name) in seconds of that clock. Kernels that overlap,
on one thread (an op and the op it calls) or on several (a product split
over a pool), are never summed beyond the time they cover: each category is
the union of its intervals within the step.
"""

import re
import time

STEP = "sidebyside step"  # the annotation around each measured step
WARM = 3  # steps under the profiler before the measured ones: a profiler pays its own start on its first events

# Matrix products, by the names the frameworks give their ops and kernels: torch's aten::mm, addmm, bmm,
# matmul, linear; XLA's dot and dot_general, and the YNNPACK/XNNPACK fusions its CPU backend forms
# around a dot; TensorFlow's MatMul, _MklMatMul, BatchMatMulV2, _FusedMatMul; GPU kernels from cuBLAS,
# CUTLASS and XLA's gemm fusions (gemm, gemv, xmma, cutlass); einsum and convolutions (not XLA's convert).
PRODUCT = re.compile(r"dot|gemm|gemv|matmul|einsum|convolution|conv[123]d|cublas|cutlass|xmma|[yx]nn_fusion"
                     r"|(?:^|::|_)(?:add|b|baddb)?mm(?:$|[_.])|::(?:addmv|mv|linear)$", re.IGNORECASE)


def is_product(name):
    """Whether a kernel or op of this name is a matrix product."""
    return bool(PRODUCT.search(name))


def run(step, steps, annotate):
    """WARM steps, then `steps` steps each inside annotate(STEP); the measured steps' seconds (perf_counter)."""
    for _ in range(WARM):
        step()
    walls = []
    for _ in range(steps):
        begin = time.perf_counter()
        with annotate(STEP):
            step()
        walls.append(time.perf_counter() - begin)
    return walls


def covered(intervals):
    """Seconds covered by the union of (start, end) intervals."""
    total, reach = 0.0, None
    for start, end in sorted(intervals):
        if reach is None or start > reach:
            total += end - start
            reach = end
        elif end > reach:
            total += end - reach
            reach = end
    return total


def innermost(events):
    """Of one thread's (start, end, name) events, those that contain no other: nested ops counted once."""
    events = sorted(events, key=lambda event: (event[0], -event[1]))
    inner = []
    for number, (start, end, name) in enumerate(events):
        following = events[number + 1] if number + 1 < len(events) else None
        if following is None or following[0] >= end:  # sorted by start: only the next can start inside
            inner.append((start, end, name))
    return inner


def breakdown(walls, windows, kernels):
    """{"wall_s", "matmul_s", "other_kernels_s", "steps"} per step, from the profiler's events.

    Per measured step: its wall time (`walls`, perf_counter), and within its
    window the union of the matrix-product kernels and the union of every
    other kernel (time covered by both counts as a product). The figures are
    the mean over the middle half of the steps by wall time, so one step
    slowed by something else on the machine does not move them, and they
    compare with the median of unprofiled steps; the parts of each step sum
    to its wall time, so the means do too.
    """
    if len(windows) != len(walls):
        raise RuntimeError(f"the profiler recorded {len(windows)} of the {len(walls)} steps profiled")
    parts = []
    for wall, (start, end) in zip(walls, sorted(windows)):
        inside = [(max(first, start), min(last, end), name) for first, last, name in kernels
                  if first < end and last > start]
        products = covered([(first, last) for first, last, name in inside if is_product(name)])
        every = covered([(first, last) for first, last, _ in inside])
        parts.append((wall, products, every - products))
    parts.sort()
    middle = parts[len(parts) // 4: len(parts) - len(parts) // 4]
    wall_s, matmul_s, other_s = (sum(step[index] for step in middle) / len(middle) for index in range(3))
    return {"wall_s": wall_s, "matmul_s": matmul_s, "other_kernels_s": other_s, "steps": len(walls)}
