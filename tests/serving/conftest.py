"""Fixtures of these tests: ``inputs``, ``kit`` and ``sqlite_kit`` (see tests/govreg_kit.py),
and ``tampered_kit``, a kit whose ledger the test breaks on purpose (not verified at teardown).
"""

from collections.abc import Iterator
from typing import Any

import pytest
from govreg_kit import Inputs, Kit, inputs, kit, make_kit, sqlite_kit

__all__ = ["inputs", "kit", "sqlite_kit", "tampered_kit"]


@pytest.fixture
def tampered_kit(home: Any, inputs: Inputs) -> Iterator[Kit]:
    made = make_kit(home, inputs)
    try:
        yield made
    finally:
        made.ctx.close()
