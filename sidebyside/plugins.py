"""Plug-ins found by listing: a package folder's own modules, then the import paths a variable names.

Workloads, data-parallel jobs, framework adapters and report sections are
each found this way: every module of their folder (a leading underscore
marks a helper the plug-ins share, not a plug-in), in their names' order,
then those named in their environment variable, SIDEBYSIDE_<KIND> (import
paths, comma-separated), which every process of a run inherits. Adding one
is adding a file.
"""

import os
import pkgutil


def listed(package, path):
    """The import paths of the modules in a package's folder (`package`, its `__path__`), helpers left out."""
    return [f"{package}.{info.name}" for info in sorted(pkgutil.iter_modules(path), key=lambda info: info.name)
            if not info.name.startswith("_")]


def named(variable):
    """The import paths environment variable `variable` names, in its order."""
    return [name.strip() for name in os.environ.get(variable, "").split(",") if name.strip()]
