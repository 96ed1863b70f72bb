"""What every child process of a run does first: die with its parent.

Workers, the peak's and the canary's processes, and a data-parallel job's
launcher each call `die_with_parent()` as they start, so a runner killed
outright (SIGKILL) takes them all with it: nothing keeps running.

A job's own processes (torchrun's ranks, the multi-worker processes) start
as `python -m sidebyside.processes MODULE ARGS...`: before anything else is
imported they ask to die with their parent and exit at once where the worker
that launched them is gone already, then run MODULE as `python -m` would. A
process still importing when the runner was killed would otherwise wait
for peers that will never come.
"""

import ctypes
import os
import runpy
import signal
import sys

PR_SET_PDEATHSIG = 1  # prctl(2)
LAUNCHER = "SIDEBYSIDE_JOB_LAUNCHER"  # the pid of the worker that started a job's processes, in `sidebyside run`


def die_with_parent():
    """Be killed (SIGKILL) when the parent process dies; Linux only."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the runner's own clean-up must do
        return


def launched_here():
    """What a job's processes started by this one (the worker) are told of it: the environment's LAUNCHER."""
    return {LAUNCHER: str(os.getpid())}


def stay_with_the_launcher():
    """Die with the parent, and exit now where the worker that launched the job is gone already.

    A process started by hand has no launcher to stay with.
    """
    die_with_parent()
    launcher = os.environ.get(LAUNCHER)
    if launcher and not alive(int(launcher)):
        os._exit(1)


def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, and is not ours to signal
        return True
    return True


if __name__ == "__main__":
    stay_with_the_launcher()
    sys.argv = sys.argv[1:]
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
