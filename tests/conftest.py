"""Shared fixtures: a govreg home on SQLite and, where reachable, PostgreSQL.

PostgreSQL tests use the server named by GOVREG_TEST_POSTGRES_URL (CI sets
it; the default is the local server) with a fresh schema per test, and skip
with a visible reason when the server cannot be reached. A home is a copy of a
template home initialised once per test process and backend (see make_home).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from govreg_homes import Home, discard_templates, make_home, postgres_schema

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Remove the template homes (see tests/govreg_homes.py) this process built."""
    discard_templates()


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a new, empty schema."""
    with postgres_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'govreg.db'}"
    url: str = request.getfixturevalue("pg_schema_url")
    return url


@pytest.fixture
def home(tmp_path: Path, database_url: str) -> Home:
    return make_home(tmp_path / "home", database_url)


@pytest.fixture
def sqlite_home(tmp_path: Path) -> Home:
    return make_home(tmp_path / "home", f"sqlite:///{tmp_path / 'govreg.db'}")
