"""sidebyside: the same small networks in several frameworks, checked for agreement, timed fairly, reported.

The harness, in the order data flows through it: config.py (and settings.py)
→ plan.py expands it to cases → runner.py runs them in rounds, a worker.py
process per implementation (pool.py) → entries (document.py) →
results.json → report/ builds the page. The implementations themselves
are sidebyside.implementations (the folder implementations/ of the
repository).
"""
