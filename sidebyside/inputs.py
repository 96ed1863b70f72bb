"""Fair inputs: every implementation's step consumes the batch in the layout all of them receive.

`net.prepare` runs outside every clock, so whatever it does to a batch is
free. A training loop gets a new batch every step and would pay for any
re-layout every step, so `prepare` may convert the dtype and move the data
to the device, nothing more: a transposed copy, a reshape or any other
per-batch work belongs in the timed step. `check_prepared` refuses what a
`prepare` returned when an array's shape changed, or its layout is not
row-major where the array type exposes one (numpy's flags, torch's
strides; JAX and TensorFlow arrays expose only a shape). Both workloads
call it right after `prepare`; the error is one line, which the worker
records as the entry's "failed" reason.
"""

RULE = "prepare may only convert dtype and move to the device"


def check_prepared(given, prepared, names=("x", "y")):
    """Refuse `prepared` (what prepare returned for the arrays `given`) unless each keeps its shape, row-major.

    ValueError, one line, naming the first array that changed. An array with
    no shape (a wrapper the harness only passes back) is not checked.
    """
    for name, before, after in zip(names, given, prepared):
        shape = getattr(after, "shape", None)
        if shape is None:
            continue
        layout = layout_of(after)
        if tuple(shape) != tuple(before.shape) or layout not in ("row-major", None):
            raise ValueError(f"prepare changed {name} from {describe(before)} to {describe(after)}: {RULE}")


def layout_of(array):
    """The layout, where the array type exposes one: row-major, column-major or strided; else None."""
    flags = getattr(array, "flags", None)
    if flags is not None and hasattr(flags, "c_contiguous"):  # numpy
        return "row-major" if flags.c_contiguous else "column-major" if flags.f_contiguous else "strided"
    if callable(getattr(array, "is_contiguous", None)):  # torch
        if array.is_contiguous():
            return "row-major"
        return "column-major" if array.permute(*reversed(range(array.dim()))).is_contiguous() else "strided"
    return None


def describe(array):
    """`64×1000 row-major`: the shape, and the layout where there is one."""
    text = "×".join(str(length) for length in tuple(array.shape)) or "a scalar"
    layout = layout_of(array)
    return f"{text} {layout}" if layout else text
