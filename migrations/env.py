"""Alembic environment: the only way govreg's schema is created or changed."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text
from sqlmodel import SQLModel

import audits.tables
import registry.tables  # noqa: F401  (registers the registry's tables)
import serving.tables  # noqa: F401  (registers the decision log's tables)
from core.db import make_engine

config = context.config
target_metadata = SQLModel.metadata
_ = audits.tables


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.connect() as conn:
        _run(conn)
    engine.dispose()


def _run(connection: object) -> None:
    dialect = connection.dialect.name  # type: ignore[attr-defined]
    context.configure(
        connection=connection,  # type: ignore[arg-type]
        target_metadata=target_metadata,
        render_as_batch=dialect == "sqlite",
        transaction_per_migration=True,
        compare_type=True,
    )
    with context.begin_transaction():
        if dialect == "postgresql":
            # Defensive: never wait forever on a lock held by a running server.
            connection.execute(text("SET LOCAL lock_timeout = '10s'"))  # type: ignore[attr-defined]
            connection.execute(text("SET LOCAL statement_timeout = '300s'"))  # type: ignore[attr-defined]
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("govreg migrations run online only (govreg init / migrations.runner)")
run_migrations_online()
