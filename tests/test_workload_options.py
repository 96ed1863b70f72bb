"""Workloads own their parameters: options, sizes and size labels come from the workload, not the CLI.

A plug-in workload defined here, with a size key of its own ("points") and
an option of its own (--points), is registered in-process: `run`'s parser
and the settings file gain its flag, the configuration records its settled
value, and --strict names its failed cases by its own label. The two-layer
net's flags are its own too: without its options, `run` has none of them.
"""

import pytest

from sidebyside import cli, workloads
from sidebyside.config import Option, positive_int
from sidebyside.workloads.two_layer import WORKLOAD as TWO_LAYER

NAME = "points_fit"
DEFAULT_POINTS = 32


class PointsFit(workloads.Workload):
    name = NAME
    title = "Points (a test's own workload)"
    options = (Option("--points", "points", f"points of the fit (default {DEFAULT_POINTS})", type=positive_int),)

    def settled(self, config):
        return {"points": config.option("points", DEFAULT_POINTS)}

    def size_label(self, size):
        return f"{size['points']} points"


@pytest.fixture
def plugin():
    workloads.register(PointsFit())
    yield
    workloads._registered.pop(NAME)


def config_of(*argv):
    parser = cli.build_parser()
    argv = ["run", *argv]
    return cli.config_from(cli.with_settings(parser.parse_args(argv), argv, parser.run_parser))


def test_a_workload_option_reaches_the_parser_the_settings_file_and_the_config(plugin, tmp_path, monkeypatch):
    assert config_of("--workload", NAME, "--points", "7").options["points"] == 7
    assert config_of("--workload", NAME).options["points"] == DEFAULT_POINTS  # settled: the default recorded
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sidebyside.toml").write_text("points = 5\n")
    assert config_of("--workload", NAME).options["points"] == 5
    with pytest.raises(cli.UsageError, match="--points: '0' must be at least 1"):
        config_of("--workload", NAME, "--points", "0")


def test_without_its_options_the_cli_has_none_of_the_two_layer_flags(monkeypatch):
    flags = {option.flag for option in TWO_LAYER.options}
    assert {"--size", "--sweep", "--no-sweep", "--learning-rate"} <= flags
    run = cli.build_parser().run_parser
    assert flags <= set(run._option_string_actions)
    monkeypatch.setattr(type(TWO_LAYER), "options", ())
    run = cli.build_parser().run_parser
    assert not flags & set(run._option_string_actions)


def test_strict_names_a_plugin_workloads_cases_by_its_own_label(plugin, capsys):
    entries = [
        {"workload": NAME, "implementation": "fit_loop", "device": "cpu", "dtype": "float32",
         "size": {"points": 32}, "status": "failed", "reason": "boom"},
        # A workload this installation does not have: its values, whatever its keys.
        {"workload": "elsewhere", "implementation": "x", "device": "cpu", "dtype": "float64",
         "size": {"rows": 3, "cols": 4}, "status": "diverged", "reason": "diverged at step 2"},
        {"workload": "two_layer", "implementation": "numpy_manual", "device": "cpu", "dtype": "float32",
         "size": {"N": 64, "D_in": 1000, "H": 100, "D_out": 10}, "status": "disagrees", "reason": "off"},
        {"workload": NAME, "implementation": "fit_vector", "device": "cpu", "dtype": "float32",
         "size": {"points": 32}, "status": "ok", "reason": None},
    ]
    assert cli.strict_status(entries) == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"strict: {NAME} fit_loop cpu float32 32 points: failed: boom",
        "strict: elsewhere x cpu float64 3×4: diverged: diverged at step 2",
        "strict: two_layer numpy_manual cpu float32 64×1000×100×10: disagrees: off",
    ]
    assert cli.strict_status(entries[-1:]) == 0


def test_a_configuration_built_in_code_settles_to_the_same_options_as_the_cli():
    from sidebyside.config import RunConfig
    from sidebyside.workloads.two_layer.tasks import LEARNING_RATE, SHORT_SWEEP, TUTORIAL_SIZE

    settled = workloads.settle(RunConfig(workloads=("two_layer",), options={"sizes": ((32, 100, 10, 5),)}))
    assert settled.options == {"sizes": [[32, 100, 10, 5]], "sweep": [], "learning_rate": LEARNING_RATE}
    assert workloads.settle(settled) == settled
    from_cli = config_of("--workload", "two_layer")
    assert from_cli.options == workloads.settle(RunConfig(workloads=("two_layer",))).options
    assert from_cli.options["sizes"] == [list(TUTORIAL_SIZE)] and from_cli.options["sweep"] == [list(size) for size in SHORT_SWEEP]
