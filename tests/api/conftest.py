"""Fixtures of these tests: ``inputs``, the kit's session files (see tests/govreg_kit.py);
``candidate``, a trained candidate's files per module; ``server``, a ``govreg serve``
of one worker on a new SQLite home (a module's own fixture of that name wins)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_server import Server, start_server, stop
from govreg_kit import inputs

__all__ = ["candidate", "inputs", "server"]


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from govreg.synthetic import write_candidate

    return write_candidate(tmp_path_factory.mktemp("candidate"))


@pytest.fixture
def server(sqlite_home: Any) -> Iterator[Server]:
    srv = start_server(sqlite_home)
    yield srv
    stop(srv)
