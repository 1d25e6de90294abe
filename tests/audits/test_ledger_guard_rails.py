"""The append-only guard rails: UPDATE, DELETE (and TRUNCATE on PostgreSQL)
on the ledger tables are refused by the database itself."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy.exc
from ledger_helpers import append, append_in, seqs, sql, verify

STATEMENTS = [
    ("ledger_events", "UPDATE", "UPDATE ledger_events SET actor = 'mallory' WHERE seq = 3"),
    ("ledger_events", "DELETE", "DELETE FROM ledger_events WHERE seq = 3"),
    ("ledger_events", "DELETE", "DELETE FROM ledger_events"),
    (
        "ledger_checkpoints",
        "UPDATE",
        "UPDATE ledger_checkpoints SET issued_at = '2020-01-01T00:00:00.000000Z'",
    ),
    ("ledger_checkpoints", "DELETE", "DELETE FROM ledger_checkpoints WHERE size = 3"),
]


@pytest.fixture
def ctx(home: Any) -> Iterator[Any]:
    context = home.context()
    append_in(context, range(4, 6), range(6, 8))
    yield context
    context.close()


def _state(ctx: Any) -> tuple[Any, ...]:
    return (
        seqs(ctx),
        sql(ctx, "SELECT actor FROM ledger_events WHERE seq = 3")[0][0],
        [
            tuple(r)
            for r in sql(ctx, "SELECT size, root_hash FROM ledger_checkpoints ORDER BY size")
        ],
    )


def test_update_and_delete_are_refused(ctx: Any) -> None:
    before = _state(ctx)
    assert before[0] == [1, 2, 3, 4, 5, 6, 7]
    assert [size for size, _ in before[2]] == [3, 5, 7]
    expected_error = (
        sqlalchemy.exc.IntegrityError  # RAISE(ABORT) is a constraint failure
        if ctx.engine.dialect.name == "sqlite"
        else sqlalchemy.exc.ProgrammingError  # plpgsql RAISE EXCEPTION (P0001)
    )
    for table, action, statement in STATEMENTS:
        with pytest.raises(sqlalchemy.exc.DBAPIError) as info:
            sql(ctx, statement)
        assert type(info.value) is expected_error
        message = str(info.value.orig)
        assert f"{table} is append-only: {action} refused" in message, statement
    assert _state(ctx) == before
    assert verify(ctx).size == 7


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_truncate_is_refused_on_postgresql(ctx: Any) -> None:
    """SQLite has no TRUNCATE; its DELETE without WHERE is covered above."""
    before = _state(ctx)
    for table in ("ledger_events", "ledger_checkpoints"):
        with pytest.raises(sqlalchemy.exc.ProgrammingError) as info:
            sql(ctx, f"TRUNCATE {table} CASCADE")
        assert f"{table} is append-only: TRUNCATE refused" in str(info.value.orig)
    assert _state(ctx) == before
    assert verify(ctx).size == 7


def test_inserts_still_work_through_the_ledger(ctx: Any) -> None:
    append(ctx, range(8, 11))
    report = verify(ctx)
    assert (report.size, report.checkpoints, report.warnings) == (10, 6, [])
