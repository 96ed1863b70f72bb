"""One training step of every implementation, per device and size.

The protocol of `sidebyside run` (sidebyside/timing.py), from the same
source and through the same code. Each case is the task the run plans for
it (`tasks.task` with the run's defaults, `--ranks` and `--dtype`: the
tutorial size in full, any other size as a sweep size), built by the
workload's own `build` (data converted outside every clock; torch_ddp with
the run's ranks, threads // ranks threads each). Before an
implementation's first case the framework is warmed up at a tiny size, as
in each of the run's processes. `timing.start` times the first step (with
any tracing or compilation) alone and runs the task's burn-in; then
pytest-benchmark times single steps, each ending with the loss copied to
the host.

How the run's protocol maps onto pytest-benchmark: one step is one round
(`pedantic`, iterations=1), and the rounds are the steps the run times in
its first round. At full length that is every step left of the run's
(500 - 1 - the burn-in), so both ways train the same trajectory and never
past it. At a sweep size the run times steps until they have spent its
budget (at least `min_steps`); pytest-benchmark needs the count before it
starts, so `tasks.budget_steps` counts it from the burn-in's mean step.
pytest-benchmark's own warm-up stays off (warmup_rounds=0) and so does its
calibration (pedantic has none): the burn-in is the warm-up, and either
would train steps the run does not. What one pytest process cannot have is
the run's later rounds, each a fresh process: the suite is the run's first
round (`sidebyside run --rounds 1`), and `sidebyside compare` reads its
JSON as a run without rounds.

The loop case runs one untimed loop first, then times loops of the length
`sidebyside run` uses at that size (LOOP_ROUNDS of them; the run times
one). Groups are "<device> N,D_in,H,D_out <view>", so each table compares
frameworks on equal terms.
"""

import os

import pytest

from sidebyside import implementations
from sidebyside import fairness, timing
from sidebyside.results import gflops
from sidebyside.config import RunConfig
from sidebyside.workloads.two_layer import WORKLOAD, build, tasks
from sidebyside.workloads.two_layer.tasks import FULL_SWEEP, SHORT_SWEEP, TUTORIAL_SIZE
from sidebyside.frameworks import compute_framework, computing, kernels
from sidebyside.frameworks import cuda_available, device as device_of
from sidebyside.implementations.two_layer.problem import DeviceUnavailable, DtypeUnsupported

LOOP_ROUNDS = 5
WARMED_UP = set()  # implementations whose framework this process has warmed up


def sizes(config):
    """The tutorial size, then the sweep's: --sweep-size, the full grid (--sweep), none (--no-sweep) or the short one."""
    if config.getoption("--no-sweep"):
        sweep = ()
    else:
        sweep = config.getoption("--sweep-size") or (FULL_SWEEP if config.getoption("--sweep") else SHORT_SWEEP)
    return tuple(dict.fromkeys((TUTORIAL_SIZE, *sweep)))


def pytest_generate_tests(metafunc):
    if "case" not in metafunc.fixturenames:
        return
    config = metafunc.config
    names = config.getoption("--impl") or implementations.names()
    device = config.getoption("--device")
    devices = ("cpu", "cuda") if device == "all" else (device,)
    cases_ = [(name, dev, size) for dev in devices for size in sizes(config) for name in names]
    ids = [f"{name}-{dev}-{','.join(map(str, size))}" for name, dev, size in cases_]
    metafunc.parametrize("case", cases_, ids=ids)


def planned(config, device, size):
    """The task `sidebyside run` plans for this case: the tutorial size in full, any other as a sweep size."""
    run = RunConfig(ranks=config.getoption("--ranks"))
    return tasks.task(run, device, config.getoption("--dtype"), size, full=size == TUTORIAL_SIZE)


def load_or_skip(name):
    reason = implementations.missing(name)
    if reason:
        pytest.skip(f"n/a: {reason}")
    spec = implementations.spec(name)
    if not spec.in_process:
        pytest.skip(f"n/a: {name} runs only as a job of several processes (sidebyside run; sidebyside/jobs/multiworker.py)")
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
    task = planned(request.config, device, size)
    threads = request.getfixturevalue("threads")
    if "ranks" in spec.options and threads < task["ranks"]:
        pytest.skip(f"n/a: {task['ranks']} ranks need at least {task['ranks']} threads (--threads {threads})")
    frameworks = [framework for framework in computing(spec.requires) if framework != "numpy"]
    settings = fairness.apply(frameworks, threads, request.config.getoption("--tf32"))
    if device == "cuda" and not any(cuda_available(framework) for framework in frameworks or ["numpy"]):
        pytest.skip("n/a: no CUDA device")
    if name not in WARMED_UP:
        WARMED_UP.add(name)
        WORKLOAD.warm_up(spec, task, threads)
    try:
        device_of(compute_framework(spec), device)  # the adapter's reason where the framework lacks the device
        net, x, y, problem = build(spec, task, threads)
    except (DeviceUnavailable, DtypeUnsupported) as error:
        pytest.skip(f"n/a: {error}")
    begin = timing.CLOCK()
    _, first_step_s, _ = timing.start(net, x, y, task["warmup"])
    burn_in_s = timing.CLOCK() - begin - first_step_s
    info = {
        "implementation": name, "framework": spec.framework, "backend": spec.backend, "device": device,
        "dtype": task["dtype"], "threads": threads, "N": size[0], "D_in": size[1], "H": size[2], "D_out": size[3],
        "first_step_s": first_step_s, "flops_per_step": problem.flops_per_step(),
        "burn_in_steps": task["warmup"], "burn_in_step_s": burn_in_s / max(task["warmup"], 1),
        "budget_s": task.get("budget_s"), "kernels": kernels(compute_framework(spec)),
        "tf32": request.config.getoption("--tf32"),
        **{f"threads_{key}": value for key, value in settings.items() if key not in ("requested", "tf32")},
    }
    return net, x, y, problem, info, task


@pytest.fixture
def built(request, case):
    net, x, y, problem, info, task = build_case(request, case)
    yield net, x, y, problem, info, task
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
    net, x, y, problem, info, task = built
    name, device, size = case
    benchmark.group = f"{device} {','.join(map(str, size))} step"
    benchmark.name = name
    rounds = tasks.budget_steps(task, info["burn_in_step_s"])
    last_loss = benchmark.pedantic(net.step, args=(x, y), rounds=rounds, iterations=1, warmup_rounds=0)
    record(benchmark, {**info, "view": "step"}, problem.flops_per_step())
    # Where the net stands after the timed steps: with `steps_trained`, what
    # shows that the suite timed the run's own trajectory (the run records
    # the same loss as the last of its `losses`).
    if last_loss is not None:
        timed = 1 if benchmark.disabled else rounds  # --benchmark-disable runs the step once
        benchmark.extra_info.update({"last_loss": float(last_loss), "steps_trained": 1 + task["warmup"] + timed})


def test_loop(benchmark, built, case):
    """A loop of steps that syncs once, at the end: throughput."""
    net, x, y, problem, info, task = built
    name, device, size = case
    steps = task["loop_steps"]
    benchmark.group = f"{device} {','.join(map(str, size))} loop of {steps}"
    benchmark.name = name
    benchmark.pedantic(net.train, args=(x, y, steps), rounds=LOOP_ROUNDS, iterations=1, warmup_rounds=1)
    record(benchmark, {**info, "view": "loop", "loop_steps": steps}, problem.flops_per_step(), steps)
