"""An initialised govreg home for tests (importable as ``govreg_homes``)."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

PG_URL = os.environ.get(
    "GOVREG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
_pg_state: dict[str, Any] = {}


def postgres_reason() -> str | None:
    """None if PostgreSQL is reachable, else why not (cached)."""
    if "reason" not in _pg_state:
        try:
            import psycopg

            with psycopg.connect(_conninfo(), connect_timeout=3) as conn:
                conn.execute("SELECT 1")
            _pg_state["reason"] = None
        except Exception as exc:  # noqa: BLE001 - any failure means "not reachable"
            _pg_state["reason"] = f"PostgreSQL at {PG_URL} not reachable: {exc}"
    reason: str | None = _pg_state["reason"]
    return reason


def _conninfo() -> str:
    return PG_URL.replace("postgresql+psycopg://", "postgresql://")


@contextlib.contextmanager
def postgres_schema() -> Iterator[str]:
    """A PostgreSQL URL whose search_path is a new, empty schema, dropped after;
    skips the test (with the reason) when the server cannot be reached."""
    reason = postgres_reason()
    if reason:
        pytest.skip(reason)
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(_conninfo(), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@dataclass
class Home:
    """An initialised govreg home and helpers to act in it."""

    path: Path
    database_url: str
    admin_key: str
    env: dict[str, str]

    def settings(self, **overrides: Any) -> Any:
        from govreg.settings import Settings

        return Settings(home=self.path, database_url=self.database_url, **overrides)

    def context(self, **overrides: Any) -> Any:
        from govreg.context import build

        return build(self.settings(**overrides))

    def cli(
        self, *args: str, api_key: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        from govreg.cli import cli

        full_env = {**self.env, "GOVREG_API_KEY": api_key or self.admin_key, **(env or {})}
        return CliRunner().invoke(cli, list(args), env=full_env, catch_exceptions=False)


def make_home(path: Path, database_url: str) -> Home:
    from govreg.context import init_home
    from govreg.settings import Settings

    init_home(Settings(home=path, database_url=database_url))
    admin_key = (path / "admin.key").read_text().strip()
    env = {"GOVREG_HOME": str(path), "GOVREG_DATABASE_URL": database_url}
    return Home(path=path, database_url=database_url, admin_key=admin_key, env=env)
