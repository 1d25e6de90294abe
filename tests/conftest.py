"""Shared fixtures: a govreg home on SQLite and, where reachable, PostgreSQL.

PostgreSQL tests use the server named by GOVREG_TEST_POSTGRES_URL (CI sets
it; the default is the local server) with a fresh schema per test, and skip
with a visible reason when the server cannot be reached.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from govreg_homes import Home, make_home

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SHARED = PROJECT_ROOT.parent / "shared"
PG_URL = os.environ.get(
    "GOVREG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_pg_state: dict[str, Any] = {}


def postgres_reason() -> str | None:
    """None if PostgreSQL is reachable, else why not (cached)."""
    if "reason" not in _pg_state:
        try:
            import psycopg

            conninfo = PG_URL.replace("postgresql+psycopg://", "postgresql://")
            with psycopg.connect(conninfo, connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _pg_state["reason"] = None
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            _pg_state["reason"] = f"PostgreSQL at {PG_URL} not reachable: {exc}"
    reason: str | None = _pg_state["reason"]
    return reason


@pytest.fixture
def pg_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a new, empty schema."""
    reason = postgres_reason()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    conninfo = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


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
