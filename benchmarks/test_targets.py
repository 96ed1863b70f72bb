"""The targets as a pytest-benchmark case: ratios printed and kept in extra_info.

The tolerance of 5 % on "at least as fast as the plain version" absorbs the
noise of alternating medians; the ratios themselves are recorded as measured.
"""

from sidebyside import targets


def test_targets(benchmark, threads):
    results = targets.measure(threads)
    benchmark.group = "targets"
    fastest = results["tutorial"]["fastest"]
    net, x, y, _ = targets.build(fastest, (64, 1000, 100, 10))
    benchmark(net.step, x, y)
    benchmark.extra_info.update({
        "peak_gflops": results["peak_gflops"],
        "fastest": fastest,
        "tutorial_limit_ratio": results["tutorial"]["ratio"],
        "largest_peak_share": results["largest"]["peak_share"],
        **{f"baseline_ratio_{name}": item["ratio"] for name, item in results["baselines"].items()},
        **{f"compiled_ratio_{name}": item["ratio"] for name, item in results["compiled"].items()},
    })
    assert results["met"]["no_strawmen"], results["baselines"]
    assert results["met"]["tutorial_within_limit"], results["tutorial"]
    assert results["met"]["largest_share_of_peak"], results["largest"]
