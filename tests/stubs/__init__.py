"""Implementations that exist only for tests, registered by a sitecustomize the test writes."""
