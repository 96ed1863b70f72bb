"""The two tiers: plain `pytest` collects the fast one, `pytest --e2e` the end-to-end one, and CI runs both."""

import subprocess
import sys

from tests.conftest import ROOT


def collected(*arguments):
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                             *arguments], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return {line.split("::", 1)[1] for line in result.stdout.splitlines() if "::" in line}


def names(tests):
    return {test.split("[")[0] for test in tests}


FILES = ("tests/test_plan.py", "tests/test_cli.py", "tests/test_compare.py", "tests/test_agreement.py")
END_TO_END = {
    "test_quick_run_writes_valid_results",  # marked: a real run
    "test_the_quick_run_has_rounds_and_canaries_to_compare",  # needs the session's real run (quick_run)
    "test_keras_matches_oracle",  # a Keras implementation: a process per backend
}


def test_plain_pytest_is_the_fast_tier_and_e2e_the_rest():
    fast, end_to_end = collected(*FILES), collected("--e2e", *FILES)
    assert fast and end_to_end and not fast & end_to_end
    assert END_TO_END <= names(end_to_end) and not END_TO_END & names(fast)
    assert {"test_float64_matches_oracle[numpy_manual]", "test_float64_matches_oracle[torch_ddp]"} <= fast | end_to_end
    assert "test_float64_matches_oracle[numpy_manual]" in fast and "test_float64_matches_oracle[torch_ddp]" in end_to_end
    assert "test_bad_arguments_are_one_line_errors" in names(fast)
    # A test named by its node id runs whatever its tier.
    assert collected("tests/test_cli.py::test_quick_run_writes_valid_results") == {"test_quick_run_writes_valid_results"}


def test_ci_runs_both_tiers():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "-m pytest\n" in ci and "-m pytest --e2e" in ci.splitlines()[-1]
