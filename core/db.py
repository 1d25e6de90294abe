"""Database engines: SQLite (the embedded default) and PostgreSQL.

Writers are serialised: on SQLite every write transaction starts with
``BEGIN IMMEDIATE``; on PostgreSQL each log's writers take a
transaction-scoped advisory lock of their own (:func:`writers_lock`: the ledger's
and the decision log's ids differ). Read-only work (verification,
listing) opens its transaction with a plain ``BEGIN`` through
:func:`read_only`, so a long verification never blocks appends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

READ_ONLY = "govreg_read_only"
LOCKS_HELD = "govreg_writer_locks"  # conn.info: advisory lock id -> the transaction holding it


def make_engine(url: str, **kwargs: Any) -> Engine:
    from sqlalchemy import create_engine, event

    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60}, **kwargs)

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own
            # transaction handling would defer it and make locking lazy).
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            if conn.get_execution_options().get(READ_ONLY):
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def is_sqlite(conn_or_engine: Connection | Engine) -> bool:
    return conn_or_engine.dialect.name == "sqlite"


def read_only(engine: Engine) -> Connection:
    """A connection whose transactions do not take the SQLite write lock."""
    return engine.connect().execution_options(**{READ_ONLY: True})


def writers_lock(conn: Connection, lock_id: int) -> None:
    """Serialise the writers of one log across processes: on PostgreSQL the
    transaction-scoped advisory lock ``lock_id``, taken once per transaction (a
    use case that locked before reading pays no second round trip when it
    writes); on SQLite the write transaction began IMMEDIATE, which is the lock."""
    if is_sqlite(conn):
        return
    from sqlalchemy import text

    transaction = conn.get_transaction()
    held: dict[int, Any] = conn.info.setdefault(LOCKS_HELD, {})
    if transaction is not None and held.get(lock_id) is transaction:
        return
    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})
    held[lock_id] = transaction
