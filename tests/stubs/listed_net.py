"""numpy_manual under another name: a test-only implementation that this one file adds.

Nothing else registers it: tests/test_problem_and_registry.py names this
package (or this module) in SIDEBYSIDE_IMPLEMENTATIONS, or passes it to
`implementations.discover`, and finds `numpy_listed` listed by `sidebyside
list` and `implementations.names()` and built by `implementations.create`.
"""

from sidebyside.implementations.two_layer.numpy_manual import Net  # noqa: F401 (this variant's Net)

IMPLEMENTATIONS = [
    {"name": "numpy_listed", "framework": "numpy", "requires": ("numpy",), "extra": "numpy",
     "promise": {"compiled": False}},
]
