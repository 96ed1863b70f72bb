"""Writing files so that a failure never leaves half of one, for the runner and the report alike.

`atomic_write` writes a temporary file in the same folder and renames it
over the target: a full disk, Ctrl-C or a crash leaves the previous file
whole. `probe_writable` finds out, before any long work, whether a folder
takes files at all.
"""

import os
import tempfile
from pathlib import Path


def current_umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write(path, data):
    """Write `data` (str, as UTF-8, or bytes) to `path` through a temporary file, an fsync and a rename."""
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}-")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data.encode("utf-8") if isinstance(data, str) else data)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(temporary, 0o666 & ~current_umask())  # mkstemp makes it private; our files are not
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def probe_writable(folder):
    """Create and remove a file in `folder`; the OSError if that fails."""
    with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-test-"):
        pass
