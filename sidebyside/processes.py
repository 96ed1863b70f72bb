"""What every child process of a run does first: die with its parent.

Workers, the peak's and the canary's processes, and a data-parallel job's
launcher each call `die_with_parent()` as they start, so a runner killed
outright (SIGKILL) takes them all with it: nothing keeps running.
"""

import ctypes
import signal

PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent():
    """Be killed (SIGKILL) when the parent process dies; Linux only."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the runner's own clean-up must do
        return
