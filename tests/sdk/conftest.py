"""Fixtures of these tests: ``inputs``, ``kit`` and ``sqlite_kit`` (see tests/govreg_kit.py)."""

from govreg_kit import inputs, kit, sqlite_kit

__all__ = ["inputs", "kit", "sqlite_kit"]
