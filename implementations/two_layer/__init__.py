"""The two-layer workload's implementations: the classic ReLU net trained by SGD, one file per variant.

problem.py holds the shared problem (sizes, learning rate, data and initial
weights); each other module defines a `Net` for one framework or one way of
writing it, and declares its registry entries (`IMPLEMENTATIONS`), which the
one registry (implementations/__init__.py) finds by listing this folder.
`python -m sidebyside.implementations.two_layer.<module>` trains it as the
tutorial does and prints the loss every 100 steps.
"""
