"""One training step of every implementation, per device and size.

The same protocol as `sidebyside run` (sidebyside/timing.py), through the
same code: the case is built by `sidebyside.workloads.two_layer.cases.build` (data converted
outside every clock), `timing.start` times the first step (with any tracing
or compilation) alone and runs the burn-in steps; then pytest-benchmark
times single steps, each ending with the loss copied to the host, for
exactly as many rounds as `sidebyside run` counts (the run's steps minus
the first and the burn-in), one step per round. So pytest-benchmark's
calibration never trains the net past the run's 500 steps, and both ways
time the same trajectory. The loop case runs one untimed loop first, then
times loops of the length `sidebyside run` uses at that size. Groups are
"<device> N,D_in,H,D_out <view>", so each table compares frameworks on
equal terms.
"""

import os

import pytest

from sidebyside import implementations
from sidebyside import fairness, timing
from sidebyside.results import gflops
from sidebyside.workloads.two_layer import cases
from sidebyside.config import FULL_SWEEP, SHORT_SWEEP, TUTORIAL_SIZE, RunConfig, sweep_learning_rate
from sidebyside.workloads.two_layer import loop_steps
from sidebyside.frameworks import compute_framework, computing, kernels
from sidebyside.frameworks import cuda_available
from sidebyside.implementations.two_layer.problem import DeviceUnavailable, DtypeUnsupported

RUN = RunConfig()  # the defaults of `sidebyside run`: steps, burn-in, loop length
WARMUP_STEPS = RUN.warmup
TIMED_STEPS = RUN.steps - 1 - RUN.warmup  # the steps `sidebyside run` counts at full length
SWEEP_STEPS = RUN.min_timed_steps  # at a sweep size, the run times at least this many steps within its 0.3 s budget
LOOP_ROUNDS = 5


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
    if not spec.in_process:
        pytest.skip(f"n/a: {name} runs only as a job of several processes (sidebyside run; sidebyside/workloads/two_layer/multiworker.py)")
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
    frameworks = [framework for framework in computing(spec.requires) if framework != "numpy"]
    threads = request.getfixturevalue("threads")
    settings = fairness.apply(frameworks, threads, request.config.getoption("--tf32"))
    dtype = request.config.getoption("--dtype")
    learning_rate = 1e-6 if size == TUTORIAL_SIZE else sweep_learning_rate(1e-6, size)
    if device == "cuda" and not any(cuda_available(framework) for framework in frameworks or ["numpy"]):
        pytest.skip("n/a: no CUDA device")
    try:
        net, x, y, problem = cases.build(spec.name, device, dtype, dict(zip(("N", "D_in", "H", "D_out"), size)),
                                         learning_rate, RUN.steps)
    except (DeviceUnavailable, DtypeUnsupported) as error:
        pytest.skip(f"n/a: {error}")
    _, first_step_s, _ = timing.start(net, x, y, WARMUP_STEPS)
    info = {
        "implementation": name, "framework": spec.framework, "backend": spec.backend, "device": device,
        "dtype": dtype, "threads": threads, "N": size[0], "D_in": size[1], "H": size[2], "D_out": size[3],
        "first_step_s": first_step_s, "flops_per_step": problem.flops_per_step(),
        "kernels": kernels(compute_framework(spec)),
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
    rate = gflops(flops * steps_per_round, stats.median) if stats else None
    if rate is not None:
        benchmark.extra_info["gflops"] = rate


def test_step(benchmark, built, case):
    """Per step, loss fetched to the host: what a loop that logs every step pays."""
    net, x, y, problem, info = built
    name, device, size = case
    benchmark.group = f"{device} {','.join(map(str, size))} step"
    benchmark.name = name
    rounds = TIMED_STEPS if size == TUTORIAL_SIZE else SWEEP_STEPS
    last_loss = benchmark.pedantic(net.step, args=(x, y), rounds=rounds, iterations=1, warmup_rounds=0)
    record(benchmark, {**info, "view": "step"}, problem.flops_per_step())
    # Where the net stands after the timed steps: with `steps_trained`, what
    # shows that the suite timed the run's own trajectory (the run records
    # the same loss as the last of its `losses`).
    if last_loss is not None:
        timed = 1 if benchmark.disabled else rounds  # --benchmark-disable runs the step once
        benchmark.extra_info.update({"last_loss": float(last_loss), "steps_trained": 1 + WARMUP_STEPS + timed})


def test_loop(benchmark, built, case):
    """A loop of steps that syncs once, at the end: throughput."""
    net, x, y, problem, info = built
    name, device, size = case
    steps = loop_steps(RUN, size)
    benchmark.group = f"{device} {','.join(map(str, size))} loop of {steps}"
    benchmark.name = name
    benchmark.pedantic(net.train, args=(x, y, steps), rounds=LOOP_ROUNDS, iterations=1, warmup_rounds=1)
    record(benchmark, {**info, "view": "loop", "loop_steps": steps}, problem.flops_per_step(), steps)
