"""What the harness raises when this machine lacks something it needs."""

from __future__ import annotations


class PrerequisiteMissing(RuntimeError):
    """A program the harness needs is not installed here (redis-server, …).

    Commands report it as an error; the test suite turns it into a skip (tests/conftest.py)."""
