"""pytest-benchmark suite: options, fairness set-up and machine info.

    pytest benchmarks/ --benchmark-only                 # tutorial size + short sweep
    pytest benchmarks/ --benchmark-only --sweep         # the full grid
    pytest benchmarks/ --benchmark-only --no-sweep      # the tutorial size only
    pytest benchmarks/ --benchmark-only --sweep-size 256,1000,100,10   # this sweep size instead
    pytest benchmarks/ --benchmark-only --threads 1 --benchmark-json out.json

Keras takes its backend from KERAS_BACKEND when first imported, so one
pytest process benchmarks one backend (tensorflow unless the variable says
otherwise); the other Keras cases skip and say how to run them.
"""

import os

import pytest

from sidebyside import fairness, machine
from sidebyside.config import positive_int, sizes_of
from sidebyside.config import RunConfig


def pytest_addoption(parser):
    group = parser.getgroup("sidebyside")
    group.addoption("--sweep", action="store_true", help="benchmark the full grid of sizes")
    group.addoption("--no-sweep", action="store_true", help="benchmark the tutorial size only")
    group.addoption("--sweep-size", type=sizes_of(("N", "D_in", "H", "D_out")), action="append", default=None, metavar="N,D_in,H,D_out",
                    help="a sweep size to benchmark instead of the short sweep (repeatable)")
    group.addoption("--threads", type=int, default=None, help="threads for every framework (default: all cores)")
    group.addoption("--device", choices=("cpu", "cuda", "all"), default="all", help="devices to benchmark")
    group.addoption("--impl", action="append", default=None, help="implementation names (repeatable)")
    group.addoption("--dtype", choices=("float32", "float64"), default="float32")
    group.addoption("--tf32", action="store_true", help="allow TF32 matmuls on GPUs")
    group.addoption("--ranks", type=positive_int, default=RunConfig.ranks,
                    help=f"torch_ddp: processes (default {RunConfig.ranks}), threads // ranks each")
    group.addoption("--targets", action="store_true", help="also run the speed-target ratios and the protocol agreement (minutes)")


def threads_of(config):
    return config.getoption("--threads") or fairness.default_threads()


def pytest_configure(config):
    # Thread pools are sized at import: this runs before any framework loads.
    fairness.set_environment(threads_of(config))
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")


def pytest_benchmark_update_machine_info(config, machine_info):
    # The same peak record as `sidebyside run` writes (per device and dtype,
    # see sidebyside/peak.py), measured here in-process: pytest-benchmark runs
    # every benchmark in this one process, under these thread settings.
    from sidebyside import peak

    record = machine.describe()
    record["threads"] = {"requested": threads_of(config)}
    record["tf32"] = config.getoption("--tf32")
    record.update(peak.measure(threads_of(config), record["tf32"]))
    machine_info.update(record)


@pytest.fixture(scope="session")
def threads(request):
    return threads_of(request.config)


def pytest_collection_modifyitems(config, items):
    if config.getoption("--targets"):
        return
    skip = pytest.mark.skip(reason="the speed targets and the protocol's agreement run with --targets")
    for item in items:
        if item.name in ("test_targets", "test_protocol"):
            item.add_marker(skip)
