"""What a result depends on, besides the code: the machine and its software.

`describe()` imports no framework (versions come from package metadata), so
the runner can call it without loading TensorFlow into its own process.
Which matrix-multiply library a framework really uses is its adapter's
`kernels()` (sidebyside/frameworks/), asked inside a worker.
"""

import os
import platform
import shutil
import subprocess
from importlib import metadata

from sidebyside import frameworks

# Packages whose versions decide the numbers (each framework adapter's,
# and the harness's own timing and thread control); first installed name wins.
FRAMEWORK_PACKAGES = {
    **{name: packages for framework in frameworks.NAMES for name, packages in frameworks.adapter(framework).PACKAGES.items()},
    "pytest-benchmark": ("pytest-benchmark",),
    "threadpoolctl": ("threadpoolctl",),
}

# Environment variables that change speed or numerics; recorded when set.
RECORDED_ENVIRONMENT = (
    "OPENBLAS_CORETYPE",
    "OPENBLAS_L2_SIZE",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_ENABLE_ONEDNN_OPTS",
    "XLA_FLAGS",
    "KERAS_BACKEND",
    "CUDA_VISIBLE_DEVICES",
)


def framework_versions():
    versions = {}
    for framework, packages in FRAMEWORK_PACKAGES.items():
        for package in packages:
            try:
                versions[framework] = metadata.version(package)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def cpu_name():
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu():
    """The first NVIDIA GPU as nvidia-smi reports it, or None."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        output = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.strip().splitlines()
        header = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    if not output:
        return None
    name, driver, memory = [field.strip() for field in output[0].split(",")]
    cuda = header.split("CUDA Version:")[1].split()[0] if "CUDA Version:" in header else ""
    return {"name": name, "driver": driver, "cuda": cuda, "memory_bytes": int(float(memory)) * 2**20}


def commit():
    """The sidebyside commit these numbers were measured with, if known."""
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        result = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None


def blas_libraries():
    """threadpoolctl's view of the BLAS and OpenMP libraries loaded here.

    `architecture` is the kernel OpenBLAS actually runs (OPENBLAS_CORETYPE can
    pin an older one), so a slow numpy can be traced to its kernel.
    """
    from threadpoolctl import threadpool_info

    keys = ("user_api", "internal_api", "version", "architecture", "num_threads", "filepath")
    return [{key: info.get(key) for key in keys} for info in threadpool_info()]


# Run by another environment's interpreter (`sidebyside run --env NAME=PYTHON`): only the standard
# library, so that it works whatever version of sidebyside that environment holds.
ENVIRONMENT_SCRIPT = r"""
import json, os, platform, subprocess, sys
from importlib import metadata, util
packages = json.loads(sys.argv[1])
versions = {}
for framework, names in packages.items():
    for name in names:
        try:
            versions[framework] = metadata.version(name)
            break
        except metadata.PackageNotFoundError:
            continue
spec = util.find_spec("sidebyside")
if spec is None or not spec.origin:
    sys.exit("cannot import sidebyside")
here = os.path.dirname(os.path.dirname(os.path.abspath(spec.origin)))
try:
    commit = subprocess.run(["git", "-C", here, "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, timeout=10).stdout.strip() or None
except (OSError, subprocess.SubprocessError):
    commit = None
try:
    version = metadata.version("sidebyside")
except metadata.PackageNotFoundError:
    version = None
print(json.dumps({"python": platform.python_version(), "executable": sys.executable, "sidebyside": version,
                  "location": here, "commit": commit, "frameworks": versions}))
"""


class EnvironmentUnusable(Exception):
    """An environment given to --env that cannot run the workers: one line for the user."""


def environment(python, timeout_s=120):
    """What an environment's interpreter holds: Python, sidebyside (version, commit, folder), framework versions.

    EnvironmentUnusable in one line where it cannot run or cannot import sidebyside.
    """
    import json
    import tempfile

    try:  # as the workers start: no current folder on the path (sidebyside.pool.Zygote)
        result = subprocess.run([python, "-c", ENVIRONMENT_SCRIPT, json.dumps(FRAMEWORK_PACKAGES)],
                                capture_output=True, text=True, timeout=timeout_s, cwd=tempfile.gettempdir(),
                                env=dict(os.environ, PYTHONSAFEPATH="1"))
    except (OSError, subprocess.SubprocessError) as error:
        raise EnvironmentUnusable(f"{python}: cannot run it ({getattr(error, 'strerror', None) or error})") from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        raise EnvironmentUnusable(f"{python}: {lines[-1] if lines else f'exit status {result.returncode}'}")
    try:
        return json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise EnvironmentUnusable(f"{python}: did not describe itself") from None


def describe(name=None):
    """The machine record of results.json (no framework is imported)."""
    import numpy  # noqa: F401  (loads numpy's BLAS so threadpoolctl can see it)

    return {
        "name": name or platform.node() or "unnamed",
        "system": platform.system(),
        "release": platform.release(),
        "arch": platform.machine(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count() or 1,
        "python": platform.python_version(),
        "frameworks": framework_versions(),
        "blas": blas_libraries(),
        "env": {key: os.environ[key] for key in RECORDED_ENVIRONMENT if key in os.environ},
        "gpu": gpu(),
        "commit": commit(),
    }
