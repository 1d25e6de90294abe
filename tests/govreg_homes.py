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
    schema = _create_schema()
    try:
        yield _schema_url(schema)
    finally:
        _drop_schema(schema)


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
    """An initialised home at ``path`` on ``database_url`` (a new SQLite file, or an
    empty PostgreSQL schema from :func:`postgres_schema`): a copy of this process's
    template home (see :func:`template_home`) where the database allows, else a home
    initialised from scratch."""
    if not _copy_template(path, database_url):
        from govreg.context import init_home
        from govreg.settings import Settings

        init_home(Settings(home=path, database_url=database_url))
    admin_key = (path / "admin.key").read_text().strip()
    env = {"GOVREG_HOME": str(path), "GOVREG_DATABASE_URL": database_url}
    return Home(path=path, database_url=database_url, admin_key=admin_key, env=env)


# -- template homes ---------------------------------------------------------------------
# Migrating and bootstrapping a home costs far more than copying one, so each test
# process (each pytest-xdist worker) initialises one home per backend on first use and
# gives each test a copy: its own folder and its own database, sharing the template's
# key files and bootstrap events (per-home secrets, the same for every copy; tests that
# need another key make one). SQLite: the database file is copied. PostgreSQL: the SQL
# the template's initialisation sent is replayed in the test's new, empty schema (the
# server has no schema copy; a template database would give each test another URL).


@dataclass
class _Template:
    home: Path
    database: str  # SQLite: the file; PostgreSQL: the schema
    statements: list[tuple[str, Any, bool]]  # PostgreSQL: (SQL, parameters, executemany)


_templates: dict[str, _Template] = {}
_template_root: list[Path] = []
_SEARCH_PATH = "options=-csearch_path%3D"


def _root() -> Path:
    import tempfile

    if not _template_root:
        _template_root.append(Path(tempfile.mkdtemp(prefix="govreg-templates-")))
    return _template_root[0]


def template_home(backend: str) -> _Template:
    """This process's template home on ``backend`` ("sqlite" or "postgresql"), built on
    first use; :func:`discard_templates` removes them (folders, database schema)."""
    if backend in _templates:
        return _templates[backend]
    from govreg.context import init_home
    from govreg.settings import Settings

    root = _root() / backend
    if backend == "sqlite":
        database = str(root / "govreg.db")
        init_home(Settings(home=root / "home", database_url=f"sqlite:///{database}"))
        _templates[backend] = _Template(root / "home", database, [])
        return _templates[backend]
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    schema = _create_schema()
    url = _schema_url(schema)
    statements: list[tuple[str, Any, bool]] = []

    def record(conn: Any, _cursor: Any, sql: str, params: Any, _ctx: Any, many: bool) -> None:
        if conn.engine.url.query.get("options") == f"-csearch_path={schema}":
            statements.append((sql, params, many))

    event.listen(Engine, "before_cursor_execute", record)
    try:
        init_home(Settings(home=root / "home", database_url=url))
    except BaseException:
        _drop_schema(schema)
        raise
    finally:
        event.remove(Engine, "before_cursor_execute", record)
    _templates[backend] = _Template(root / "home", schema, statements)
    return _templates[backend]


def discard_templates() -> None:
    """Remove this process's template homes and their PostgreSQL schema."""
    import shutil

    template = _templates.pop("postgresql", None)
    if template is not None:
        _drop_schema(template.database)
    _templates.clear()
    while _template_root:
        shutil.rmtree(_template_root.pop(), ignore_errors=True)


def _schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}{_SEARCH_PATH}{schema}"


def _create_schema() -> str:
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_conninfo(), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return schema


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(_conninfo(), autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def _copy_template(path: Path, database_url: str) -> bool:
    """Copy the template home to ``path`` and into the database; False (nothing done)
    where the database is not a new SQLite file or an empty schema of PG_URL."""
    import shutil

    if path.exists():
        return False
    if database_url.startswith("sqlite:///") and "?" not in database_url:
        target = Path(database_url.removeprefix("sqlite:///"))
        if target.exists() or not target.parent.is_dir():
            return False
        template = template_home("sqlite")
        shutil.copytree(template.home, path)
        for suffix in ("", "-wal"):
            source = Path(template.database + suffix)
            if source.exists():
                shutil.copyfile(source, f"{target}{suffix}")
        return True
    schema = database_url.removeprefix(_schema_url(""))
    if schema == database_url or not schema.isidentifier() or postgres_reason():
        return False
    import psycopg

    template = template_home("postgresql")
    with psycopg.connect(_conninfo(), options=f"-csearch_path={schema}") as conn:
        tables = conn.execute(
            "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname = %s",
            (schema,),
        ).fetchone()
        if tables is None or tables[0] != 0:
            return False
        with conn.cursor() as cursor:
            for sql, params, many in template.statements:
                if many:
                    cursor.executemany(sql, params)
                else:
                    cursor.execute(sql, params)
    shutil.copytree(template.home, path)
    return True
