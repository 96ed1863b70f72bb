"""Memory's one meaning, in this process: the most bytes a case adds above what its process held at its start.

Each check measures arrays whose size it knows (their nbytes are the
oracle), the larger case first, as the workloads order their cases, so a
peak that was not reset would give the smaller case the larger one's
figure. A framework that cannot reset its peak gives None and says why.
The same meaning in real runs, one process and several: tests/test_run_processes.py,
tests/test_ddp.py, tests/test_multiworker.py.
"""

import numpy as np
import pytest

from sidebyside import frameworks, timing

MB = 1 << 20


def added(counter, nbytes, make):
    """What `counter` counts while an array of `nbytes` exists and is freed again."""
    array = make(nbytes)
    del array
    return counter.growth()


KEPT = []  # a block made after each case's and kept: malloc cannot shrink its heap below it


def heap_blocks(nbytes):
    """Blocks malloc keeps in its heap once freed: the next case would reuse those pages unseen
    unless each case's start hands them back to the kernel (timing.trim_heap)."""
    blocks = [np.ones(8192) for _ in range(nbytes // 65536)]
    KEPT.append(np.ones(8192))
    return blocks


@pytest.mark.parametrize("make", [
    lambda nbytes: np.ones(nbytes // 8),  # one block malloc maps apart and unmaps when freed
    heap_blocks,
], ids=["mapped", "heap"])
def test_resident_memory_is_what_each_case_adds_the_larger_case_first(make):
    if timing.PeakMemory().method != timing.RESIDENT:
        pytest.skip("n/a: the kernel's high-water mark cannot be reset here")
    large = added(timing.PeakMemory(), 64 * MB, make)
    small = added(timing.PeakMemory(), 8 * MB, make)
    # Within a few pages below (what else the process freed meanwhile) and a few MB above (the interpreter's own).
    assert 0.9 * 64 * MB < large < 64 * MB + 4 * MB, large
    assert 0.9 * 8 * MB < small < 8 * MB + 4 * MB, small


def test_a_gpu_peak_that_cannot_be_reset_is_na_with_its_reason():
    memory = timing.GpuPeak("jax")  # JAX counts one peak over the process's life
    assert memory.growth() is None
    assert memory.method.startswith("n/a: ") and "cannot be reset" in memory.method
    assert timing.case_memory("jax", "cuda").growth() is None
    assert isinstance(timing.case_memory("jax", "cpu"), timing.PeakMemory)


@pytest.mark.skipif(not frameworks.cuda_available("torch"), reason="n/a: no CUDA device for torch here")
def test_torch_gpu_memory_is_what_each_case_allocates_above_its_start():
    import torch

    held = torch.ones(MB // 4, device="cuda")  # allocated before either case: in both baselines, in neither figure
    make = lambda nbytes: torch.ones(nbytes // 4, device="cuda")
    large = added(timing.GpuPeak("torch"), 64 * MB, make)
    small = added(timing.GpuPeak("torch"), 8 * MB, make)
    assert 64 * MB <= large < 64 * MB + MB and 8 * MB <= small < 8 * MB + MB, (large, small)
    del held
