"""Where a net computes, shared by every workload's implementations and every framework's adapter:
the devices and dtypes, and the errors that say one is unavailable.

Which device a framework can use here is its adapter's to say
(`device(name)` in sidebyside/frameworks/<framework>.py); the harness asks
it before a case is built, so a case on a device the framework cannot use
is "n/a" with the adapter's reason. The reasons are made here alike for
every framework: "no CUDA device" where the machine has no NVIDIA GPU,
"CPU-only build of X installed" where it has one but the installed build
cannot use it (the fix is another install, not another machine). An
implementation names its device with its framework's own call and imports
nothing of the harness beyond this package.
"""

import os

DEVICES = ("cpu", "cuda")
DTYPES = ("float32", "float64")


class DeviceUnavailable(RuntimeError):
    """The requested device does not exist here (no GPU, or a CPU-only framework)."""


class DtypeUnsupported(RuntimeError):
    """The framework cannot compute in the requested dtype (checked, not assumed)."""


def check_name(device):
    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; valid devices: {', '.join(DEVICES)}")


def gpu_present():
    """Whether this machine has an NVIDIA GPU with its driver loaded, whatever the frameworks see."""
    return os.path.exists("/proc/driver/nvidia/version") or os.path.exists("/dev/nvidia0")


def no_cuda(framework, version, cpu_only_build):
    """The reason a framework has no CUDA device here."""
    if gpu_present() and cpu_only_build:
        return DeviceUnavailable(f"CPU-only build of {framework} installed ({version}); this machine has a GPU")
    if gpu_present():
        return DeviceUnavailable(f"no CUDA device visible to {framework} {version} (the machine has a GPU)")
    return DeviceUnavailable("no CUDA device")
