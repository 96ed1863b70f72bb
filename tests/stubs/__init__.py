"""Implementations that exist only for tests: registered by a sitecustomize the test writes, or found by
listing (listed_net.py declares its own entry, read when SIDEBYSIDE_IMPLEMENTATIONS names this package)."""
