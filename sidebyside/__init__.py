"""sidebyside: the same small networks in several frameworks, checked for agreement, timed fairly, reported.

The harness, in the order data flows through it: config.py (and settings.py)
→ runner.py plans the cases and starts a worker.py process per
implementation → entries → results.json → report/ builds the page. The
implementations themselves are sidebyside.implementations (the folder
implementations/ of the repository).
"""
