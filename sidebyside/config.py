"""What a run measures: one frozen dataclass, with the defaults of `sidebyside run`."""

from dataclasses import asdict, dataclass

TUTORIAL_SIZE = (64, 1000, 100, 10)
# The default sweep goes from overhead-bound (the tutorial size, about 0.2 ms
# a step here) to compute-bound (about 15 ms a step on 2 cores) in one jump;
# --sweep walks the whole grid in between.
SHORT_SWEEP = ((1024, 1000, 1000, 10),)
# --sweep: batch × hidden width, the full grid.
FULL_SWEEP = tuple((n, 1000, h, 10) for n in (64, 256, 1024, 4096) for h in (100, 400, 1600))
DEVICE_CHOICES = ("cpu", "cuda", "all")


@dataclass(frozen=True)
class RunConfig:
    implementations: tuple = ()  # registry names; empty means every registered one but the slow starters
    slow_starters: bool = False  # also run the slow starters (registry `slow_start`) not named: --all
    workloads: tuple = ()  # which problems to run (sidebyside.workloads names); empty means every one
    devices: tuple = ("cpu",)  # resolved devices: "cpu" and/or "cuda"
    dtypes: tuple = ("float32", "float64")  # agreement runs in each; the sweep in the first
    sizes: tuple = (TUTORIAL_SIZE,)  # (N, D_in, H, D_out) run for the full number of steps
    sweep: tuple = SHORT_SWEEP  # sizes timed within a budget, float32, judged on their first steps
    steps: int = 500  # training steps of the full-length runs
    learning_rate: float = 1e-6  # at the tutorial size; sweep sizes scale it down
    seed: int = 0  # numpy seed of data and initial weights
    threads: int = 1  # one thread count for every framework
    tf32: bool = False  # allow TF32 matmuls on GPUs (off: full float32)
    warmup: int = 10  # burn-in steps after the first, not counted
    sweep_warmup: int = 3  # ... at a sweep size
    sweep_budget_s: float = 0.3  # seconds of timed steps per sweep size (round 1)
    peak_budget_s: float = 2.0  # seconds of matmul timing per device for the peak, at the start and the end
    rounds: int = 5  # timing rounds, each a fresh process per implementation in a shuffled order
    round_budget_s: float = 0.1  # seconds of timed steps per case in rounds 2, 3, ...
    canary_s: float = 0.04  # seconds of the drift canary (sidebyside/canary.py) beside each block
    environments: tuple = ()  # (name, python) pairs: every case runs in each, rounds interleaved (--env)
    min_timed_steps: int = 5  # ... and in the sweep: at least this many timed steps, whatever the budget
    loop_flops: float = 1.3e9  # the loop view's work per case: 50 steps at the tutorial size
    loop_min_steps: int = 5  # ... but never fewer steps than this
    epochs: int = 5  # training epochs, for the workloads that train in epochs
    data: str = ""  # a data set, for the workloads that read one; empty means their bundled data
    ranks: int = 2  # the data-parallel implementations: processes
    quick: bool = False  # a smoke run: few steps, no sweep, one epoch
    name: str = ""  # the machine's label in reports; empty means the host name
    settings_file: str = ""  # sidebyside.toml or pyproject.toml the settings came from, besides the flags
    worker_timeout_s: float = 900.0  # a worker silent this long is stopped and marked failed

    def as_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        known = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        for key in ("implementations", "workloads", "devices", "dtypes"):
            if key in known:
                known[key] = tuple(known[key])
        for key in ("sizes", "sweep", "environments"):
            if key in known:
                known[key] = tuple(tuple(size) for size in known[key])
        return cls(**known)


def sweep_learning_rate(learning_rate, size):
    """Scale the tutorial's rate so larger nets do not diverge while timed.

    The gradient grows with the batch and the widths, so the rate shrinks by
    (64·1000·100)/(N·D_in·H).
    """
    N, D_in, H, _ = size
    return learning_rate * (64 * 1000 * 100) / (N * D_in * H)
