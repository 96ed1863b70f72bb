"""What a run measures: one frozen dataclass, with the defaults of `sidebyside run`, and the value checks of its flags.

Nothing here belongs to one workload. A workload declares its own options
(`Option`s: its sizes, its sweep, its learning rate or epochs), which the
CLI adds to `run`'s parser and so to the settings file; their values ride in
`RunConfig.options`, and each workload reads its own with its own defaults.
"""

import argparse
import math
from dataclasses import asdict, dataclass, field

DEVICE_CHOICES = ("cpu", "cuda", "all")


@dataclass(frozen=True)
class Option:
    """One option a workload adds to `sidebyside run`: `flag` on the command line, `key` in RunConfig.options."""

    flag: str  # "--learning-rate"
    key: str  # "learning_rate"
    help: str
    type: object = None  # the argparse type: positive_int, positive_float, sizes_of(...)
    action: str = "store"  # or "append", "store_true"
    metavar: str = None

    def add_to(self, parser):
        """Add the flag to an argparse parser; an option not given is absent from the namespace's options."""
        extra = {"type": self.type, "metavar": self.metavar} if self.action != "store_true" else {}
        parser.add_argument(self.flag, dest=f"option:{self.key}", action=self.action, default=None,
                            help=self.help, **extra)


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive finite number")
    return value


def sizes_of(keys):
    """The argparse type of a size with these keys: "64,1000,100,10" -> (64, 1000, 100, 10)."""
    def size(text):
        parts = text.split(",")
        if len(parts) != len(keys):
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {','.join(keys)} ({len(keys)} whole number{'s' if len(keys) > 1 else ''})")
        return tuple(positive_int(part) for part in parts)
    size.__name__ = ",".join(keys)
    return size


@dataclass(frozen=True)
class RunConfig:
    implementations: tuple = ()  # registry names; empty means every registered one but the slow starters
    slow_starters: bool = False  # also run the slow starters (registry `slow_start`) not named: --all
    workloads: tuple = ()  # which problems to run (sidebyside.workloads names); empty means every one
    devices: tuple = ("cpu",)  # resolved devices: "cpu" and/or "cuda"
    dtypes: tuple = ("float32", "float64")  # agreement runs in each; the sweep in the first
    steps: int = 500  # training steps of the full-length runs
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
    environments: tuple = ()  # (name, python or requirements) pairs: every case runs in each, interleaved (--env)
    min_timed_steps: int = 5  # ... and in the sweep: at least this many timed steps, whatever the budget
    loop_flops: float = 1.3e9  # the loop view's work per case, in flops (the workload counts its steps)
    loop_min_steps: int = 5  # ... but never fewer steps than this
    ranks: int = 2  # the data-parallel implementations: processes
    quick: bool = False  # a smoke run: few steps, no sweep, one epoch
    name: str = ""  # the machine's label in reports; empty means the host name
    settings_file: str = ""  # sidebyside.toml or pyproject.toml the settings came from, besides the flags
    worker_timeout_s: float = 900.0  # a worker silent this long is stopped and marked failed
    options: dict = field(default_factory=dict)  # the workloads' own options (Workload.options), by key

    def option(self, key, default=None):
        """A workload option's value, or `default` where the run did not set it."""
        value = self.options.get(key)
        return default if value is None else value

    def as_dict(self):
        return asdict(self)

    @classmethod
    def from_dict(cls, data):
        known = {key: value for key, value in data.items() if key in cls.__dataclass_fields__}
        # Keys that are no field are workload options (older files kept them beside the fields).
        options = {key: value for key, value in data.items() if key not in cls.__dataclass_fields__}
        known["options"] = {**options, **(known.get("options") or {})}
        for key in ("implementations", "workloads", "devices", "dtypes"):
            if key in known:
                known[key] = tuple(known[key])
        for key in ("environments",):
            if key in known:
                known[key] = tuple(tuple(size) for size in known[key])
        return cls(**known)

