"""What `sidebyside run` plans from its flags: which implementations run, and why the others do not."""

import pytest

from sidebyside import implementations
from sidebyside.cli import build_parser, config_from
from sidebyside.plan import plan

SLOW = [name for name in implementations.names() if implementations.spec(name).slow_start]


def planned(*flags):
    """{implementation: skip reason or None} for the two-layer workload."""
    config = config_from(build_parser().parse_args(["run", "--workload", "two_layer", *flags]))
    return {run["implementation"]: run.get("skip") for run in plan(config)}


def test_the_registry_has_slow_starters_to_leave_out():
    # Their files declare slow_start: some, not all, so that the tests below leave something out.
    assert SLOW and set(SLOW) < set(implementations.names())


def test_the_default_run_leaves_out_the_slow_starters_and_says_how_to_add_them():
    runs = planned()
    assert set(runs) == set(implementations.names())  # every one has a row
    for name in SLOW:
        assert runs[name].startswith("n/a: not in the default run")
        assert "--all" in runs[name] and f"--impl {name}" in runs[name]
    assert all(runs[name] is None for name in runs if name not in SLOW)


def test_all_runs_every_implementation():
    assert all(reason is None for reason in planned("--all").values())


@pytest.mark.parametrize("name", SLOW)
def test_a_slow_starter_named_runs(name):
    assert planned("--impl", name, "--threads", "2") == {name: None}


def test_quick_skips_the_slow_starters_even_with_all():
    runs = planned("--quick", "--all")
    assert all(runs[name].startswith("n/a: skipped by --quick") for name in SLOW)
