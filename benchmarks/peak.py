"""The attainable peak: how fast this machine multiplies large float32 matrices.

Measured in the same run as the implementations, with the same thread count,
so each implementation's GFLOP/s can be read as a share of what the hardware
actually delivers here (a roofline for compute-bound work). On the CPU both
numpy's BLAS and torch's are tried and the faster counts; on a GPU, torch
(or JAX) with TF32 as configured.

Run as `python -m benchmarks.peak THREADS TF32(0|1)`: prints one JSON object.
"""

import importlib.util
import json
import sys
import time

CPU_SIZE = 2048  # 2048³ float32: about 17 GFLOP, tens of milliseconds on 2 cores
GPU_SIZE = 8192  # 8192³ float32: about 1.1 TFLOP
REPEATS = 5


def best_gflops(multiply, size, sync=lambda: None):
    multiply()  # warm-up: page in the operands, start the thread pool
    sync()
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        multiply()
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def cpu_peaks():
    import numpy as np

    generator = np.random.default_rng(0)
    a, b = (generator.standard_normal((CPU_SIZE, CPU_SIZE), dtype=np.float32) for _ in range(2))
    peaks = {"numpy": best_gflops(lambda: a @ b, CPU_SIZE)}
    if importlib.util.find_spec("torch"):
        import torch

        ta, tb = torch.from_numpy(a), torch.from_numpy(b)
        peaks["torch"] = best_gflops(lambda: ta @ tb, CPU_SIZE)
    return peaks


def cuda_peaks():
    if not importlib.util.find_spec("torch"):
        return {}
    import torch

    if not torch.cuda.is_available():
        return {}
    a, b = (torch.randn(GPU_SIZE, GPU_SIZE, device="cuda") for _ in range(2))
    return {"torch": best_gflops(lambda: a @ b, GPU_SIZE, torch.cuda.synchronize)}


def measure(threads, tf32):
    from benchmarks import fairness

    fairness.set_environment(threads)
    frameworks = ["torch"] if importlib.util.find_spec("torch") else []
    fairness.apply(frameworks, threads, tf32)
    cpu, cuda = cpu_peaks(), cuda_peaks()
    return {
        "peak_gflops": {"cpu": max(cpu.values()), "cuda": max(cuda.values()) if cuda else None},
        "peak_detail": {"cpu": cpu, "cuda": cuda, "size": {"cpu": CPU_SIZE, "cuda": GPU_SIZE}},
    }


if __name__ == "__main__":
    print(json.dumps(measure(int(sys.argv[1]), sys.argv[2] == "1")))
