"""One training step of every implementation, per device and size.

Each case is built, its data moved to the device and its first step (with
any tracing or compilation) timed once, outside pytest-benchmark; warm-up
steps follow; then pytest-benchmark times single steps, each ending with the
loss copied to the host. The loop case times 50 steps that sync only at the
end. Groups are "<device> N,D_in,H,D_out <view>", so each table compares
frameworks on equal terms.
"""

import os
import time

import pytest

import implementations
from benchmarks import cases, fairness
from benchmarks.config import FULL_SWEEP, SHORT_SWEEP, TUTORIAL_SIZE, sweep_learning_rate
from benchmarks.machine import kernels
from benchmarks.worker import TUNED_FRAMEWORKS
from implementations.devices import cuda_available
from implementations.problem import DeviceUnavailable, DtypeUnsupported

WARMUP_STEPS = 10
LOOP_STEPS = 50


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    config = metafunc.config
    names = config.getoption("--impl") or implementations.names()
    if config.getoption("--no-sweep"):
        sizes = (TUTORIAL_SIZE,)
    else:
        sizes = (TUTORIAL_SIZE,) + (FULL_SWEEP if config.getoption("--sweep") else SHORT_SWEEP)
    sizes = tuple(dict.fromkeys(sizes))
    device = config.getoption("--device")
    devices = ("cpu", "cuda") if device == "all" else (device,)
    cases_ = [(name, dev, size) for dev in devices for size in sizes for name in names]
    ids = [f"{name}-{dev}-{','.join(map(str, size))}" for name, dev, size in cases_]
    metafunc.parametrize("case", cases_, ids=ids)


def load_or_skip(name):
    reason = implementations.missing(name)
    if reason:
        pytest.skip(f"n/a: {reason}")
    spec = implementations.spec(name)
    if "keras" in spec.requires and spec.backend != os.environ.get("KERAS_BACKEND"):
        pytest.skip(f"n/a: this process runs Keras on {os.environ.get('KERAS_BACKEND')}; "
                    f"run KERAS_BACKEND={spec.backend} pytest benchmarks/ -k {name}")
    try:
        return spec, implementations.load(name)
    except implementations.FrameworkMissing as error:
        pytest.skip(f"n/a: {error}")


def build_case(request, case):
    name, device, size = case
    spec, Net = load_or_skip(name)
    frameworks = [framework for framework in spec.requires if framework in TUNED_FRAMEWORKS]
    threads = request.getfixturevalue("threads")
    settings = fairness.apply(frameworks, threads, request.config.getoption("--tf32"))
    dtype = request.config.getoption("--dtype")
    learning_rate = 1e-6 if size == TUTORIAL_SIZE else sweep_learning_rate(1e-6, size)
    if device == "cuda" and not any(cuda_available(framework) for framework in frameworks or ["numpy"]):
        pytest.skip("n/a: no CUDA device")
    try:
        net, x, y, problem = cases.build(Net, spec, device, dtype, dict(zip(("N", "D_in", "H", "D_out"), size)), learning_rate)
    except (DeviceUnavailable, DtypeUnsupported) as error:
        pytest.skip(f"n/a: {error}")
    start = time.perf_counter()
    net.step(x, y)
    first_step_s = time.perf_counter() - start
    for _ in range(WARMUP_STEPS):
        net.step(x, y)
    info = {
        "implementation": name, "framework": spec.framework, "backend": spec.backend, "device": device,
        "dtype": dtype, "threads": threads, "N": size[0], "D_in": size[1], "H": size[2], "D_out": size[3],
        "first_step_s": first_step_s, "flops_per_step": problem.flops_per_step(),
        "kernels": kernels(frameworks[0] if frameworks else "numpy"),
        "tf32": request.config.getoption("--tf32"),
        **{f"threads_{key}": value for key, value in settings.items() if key not in ("requested", "tf32")},
    }
    return net, x, y, problem, info


@pytest.fixture
def built(request, case):
    net, x, y, problem, info = build_case(request, case)
    yield net, x, y, problem, info
    if hasattr(net, "close"):
        net.close()


def record(benchmark, info, flops, steps_per_round=1):
    benchmark.extra_info.update(info)
    stats = benchmark.stats.stats if benchmark.stats else None
    if stats and stats.median > 0:
        benchmark.extra_info["gflops"] = flops * steps_per_round / stats.median / 1e9


def test_step(benchmark, built, case):
    """Per step, loss fetched to the host: what a loop that logs every step pays."""
    net, x, y, problem, info = built
    name, device, size = case
    benchmark.group = f"{device} {','.join(map(str, size))} step"
    benchmark.name = name
    benchmark(net.step, x, y)
    record(benchmark, {**info, "view": "step"}, problem.flops_per_step())


def test_loop(benchmark, built, case):
    """A loop of steps that syncs once, at the end: throughput."""
    net, x, y, problem, info = built
    name, device, size = case
    benchmark.group = f"{device} {','.join(map(str, size))} loop of {LOOP_STEPS}"
    benchmark.name = name
    benchmark(net.train, x, y, LOOP_STEPS)
    record(benchmark, {**info, "view": "loop", "loop_steps": LOOP_STEPS}, problem.flops_per_step(), LOOP_STEPS)
