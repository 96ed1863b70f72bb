"""A round is the unit of evidence: the statistics every verdict is made of.

A round times a case in a fresh process. Steps within one process are not
independent draws: they share its thread placement, its memory layout and
the minute of machine it ran in, and a shared machine drifts by up to 2×
within a minute. So an entry's figure is the median of its round medians
(each round, the first one's full trajectory included, one equal vote), its
interval is an order-statistic interval of those medians, and two sets of
rounds are told apart only where the rounds themselves say so: every round
of one lies beyond every round of the other, and the medians differ by more
than NOISE_MARGIN. The ranking (sidebyside/ranking.py), `sidebyside
compare` and the report all use these functions.

Between runs (another day, another runner) the machine itself may have
changed speed. Each round's block of a case is timed beside a fixed
reference workload, the canary (sidebyside/canary.py), in the same minutes
on the same CPUs; dividing a round's median by its canary removes what the
machine did to both (`normalized`).

The p value of two sets of rounds is the exact two-sided Mann–Whitney U
test on the round values (scipy), so it is never smaller than the number
of rounds can support: with 5 rounds a side, 2 / C(10, 5) ≈ 0.008 at least.
"""

import math
import statistics

# Two medians closer than this, relative to the faster, are a tie whatever the
# rounds say: fresh processes on one idle machine differ by 1-2 % (thread
# placement, frequency, page and cache state).
NOISE_MARGIN = 0.03
# The canary's own noise between two runs: its process starts with another memory layout, and a few
# percent of its time goes with it. Below this change the machine did not measurably move.
MACHINE_MOVED = 0.10
MIN_ROUNDS = 2  # below this a side's rounds cannot be told apart from anything
ALPHA = 0.05
INTERVAL_COVERAGE = 0.9  # the interval of a median: the narrowest order statistics covering at least this


def usable(values):
    """The finite positive numbers of a list (None where there is no list)."""
    if not isinstance(values, (list, tuple)):
        return None
    kept = [float(x) for x in values
            if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0]
    return kept


def median(values):
    """The median of the round values, or None without any."""
    values = usable(values)
    return statistics.median(values) if values else None


def interval(values):
    """(low, high): the order statistics of the rounds that cover their median with INTERVAL_COVERAGE.

    Distribution-free: the median lies below the k-th smallest of n rounds
    with probability P(Binomial(n, 1/2) >= k), whatever the distribution.
    With fewer rounds than that coverage needs, (min, max). None without rounds.
    """
    values = sorted(usable(values) or ())
    n = len(values)
    if not n:
        return None
    best = 0
    for k in range(n // 2):  # [values[k], values[n - 1 - k]]
        outside = 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n  # P(median below values[k]) both sides
        if 1 - outside >= INTERVAL_COVERAGE:
            best = k
    return values[best], values[n - 1 - best]


def normalized(rounds, canary):
    """Each round's value over its canary's, where every round has a canary; else None."""
    rounds, canary = list(rounds or ()), list(canary or ())
    if not rounds or len(canary) != len(rounds):
        return None
    pairs = [(value, reference) for value, reference in zip(rounds, canary)]
    if any(not isinstance(ref, (int, float)) or not ref or ref <= 0 or not value for value, ref in pairs):
        return None
    return [value / reference for value, reference in pairs]


def apart(first, second):
    """Whether two sets of round values are told apart: no overlap, and medians beyond NOISE_MARGIN.

    False where either side has fewer than MIN_ROUNDS values.
    """
    first, second = usable(first) or [], usable(second) or []
    if len(first) < MIN_ROUNDS or len(second) < MIN_ROUNDS:
        return False
    low, high = sorted((statistics.median(first), statistics.median(second)))
    if high <= low * (1 + NOISE_MARGIN):
        return False
    return max(first) < min(second) or max(second) < min(first)


def p_value(first, second):
    """The exact two-sided Mann–Whitney U p value of two sets of round values (scipy)."""
    from scipy.stats import mannwhitneyu  # only compare needs it; scipy is in the report extra

    first, second = usable(first), usable(second)
    method = "exact" if len(set(first) | set(second)) == len(first) + len(second) else "asymptotic"
    p = float(mannwhitneyu(first, second, alternative="two-sided", method=method).pvalue)
    return 1.0 if p != p else min(p, 1.0)


def smallest_p(n, m):
    """The smallest two-sided p value n and m rounds can give: 2 / C(n + m, n)."""
    return min(1.0, 2 / math.comb(n + m, n)) if n and m else 1.0


def drift(canaries):
    """(fastest, slowest, slowest / fastest) of a run's canary times, or None without any.

    The canary does the same work each time, so its spread over a run is how
    much the machine changed speed while the run measured.
    """
    values = usable([x for series in canaries for x in (series or ())])
    if not values:
        return None
    return min(values), max(values), max(values) / min(values)
