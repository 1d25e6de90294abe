"""Fixtures of these tests: ``inputs``, the kit's session files (see tests/govreg_kit.py)."""

from govreg_kit import inputs

__all__ = ["inputs"]
