"""The migrations are the only way the schema is made: upgrade from empty,
no drift from the tables in code, downgrade and upgrade again, guard rails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import inspect, text

from core.db import make_engine
from migrations import runner

LEDGER_TABLES = {
    "ledger_events",
    "ledger_checkpoints",
    "ledger_data_keys",
    "expiring_data_keys",
    "ledger_tree_nodes",
}
HEAD = "0010"
DECISION_TABLES = {"decisions", "decision_batches"}
REGISTRY_TABLES = {
    "aliases",
    "artifacts",
    "datasets",
    "gate_results",
    "models",
    "persons",
    "policies",
    "principals",
    "signoffs",
    "versions",
}
# counters of refusals: working state, not a projection (not compared by audit verify)
DENIAL_TABLES = {"denial_tally", "denial_rate"}
ALL_TABLES = LEDGER_TABLES | REGISTRY_TABLES | DECISION_TABLES | DENIAL_TABLES | {"alembic_version"}
SQLITE_TRIGGERS = {
    ("ledger_events_no_update", "ledger_events"),
    ("ledger_events_no_delete", "ledger_events"),
    ("ledger_checkpoints_no_update", "ledger_checkpoints"),
    ("ledger_checkpoints_no_delete", "ledger_checkpoints"),
    ("ledger_tree_nodes_no_update", "ledger_tree_nodes"),
    ("ledger_tree_nodes_no_delete", "ledger_tree_nodes"),
    ("decisions_no_update", "decisions"),
    ("decisions_no_delete", "decisions"),
    ("decision_batches_no_update", "decision_batches"),
    ("decision_batches_no_delete", "decision_batches"),
    ("expiring_data_keys_rewrap_only", "expiring_data_keys"),
    ("expiring_data_keys_no_early_delete", "expiring_data_keys"),
}
POSTGRES_TRIGGERS = {
    ("ledger_events_append_only", "ledger_events"),
    ("ledger_events_no_truncate", "ledger_events"),
    ("ledger_checkpoints_append_only", "ledger_checkpoints"),
    ("ledger_checkpoints_no_truncate", "ledger_checkpoints"),
    ("ledger_tree_nodes_append_only", "ledger_tree_nodes"),
    ("ledger_tree_nodes_no_truncate", "ledger_tree_nodes"),
    ("decisions_append_only", "decisions"),
    ("decisions_no_truncate", "decisions"),
    ("decision_batches_append_only", "decision_batches"),
    ("decision_batches_no_truncate", "decision_batches"),
    ("expiring_data_keys_guard", "expiring_data_keys"),
    ("expiring_data_keys_no_truncate", "expiring_data_keys"),
}


@pytest.fixture
def engine(database_url: str) -> Iterator[Any]:
    eng = make_engine(database_url)
    yield eng
    eng.dispose()


def _tables(engine: Any) -> set[str]:
    return set(inspect(engine).get_table_names())


def _triggers(engine: Any) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            rows = conn.execute(
                text("SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger'")
            ).all()
        else:
            rows = conn.execute(
                text(
                    "SELECT t.tgname, c.relname FROM pg_trigger t "
                    "JOIN pg_class c ON c.oid = t.tgrelid "
                    "WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace"
                )
            ).all()
        conn.rollback()
    return {(str(name), str(table)) for name, table in rows}


def _function_exists(engine: Any) -> bool:
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT count(*) FROM pg_proc WHERE proname = 'govreg_append_only' "
                "AND pronamespace = current_schema()::regnamespace"
            )
        ).scalar_one()
        conn.rollback()
    return bool(found)


def _expected_triggers(engine: Any) -> set[tuple[str, str]]:
    return SQLITE_TRIGGERS if engine.dialect.name == "sqlite" else POSTGRES_TRIGGERS


def test_upgrade_from_empty_check_and_round_trip(engine: Any) -> None:
    assert _tables(engine) == set()
    assert runner.current(engine) is None

    runner.upgrade(engine)
    assert runner.current(engine) == HEAD
    assert _tables(engine) == ALL_TABLES
    assert _triggers(engine) == _expected_triggers(engine)
    if engine.dialect.name == "postgresql":
        assert _function_exists(engine)
    runner.check(engine)  # the models in code and the migrations agree

    runner.upgrade(engine)  # idempotent at head
    assert runner.current(engine) == HEAD

    runner.downgrade(engine, "base")
    assert runner.current(engine) is None
    assert _tables(engine) == {"alembic_version"}
    assert _triggers(engine) == set()
    if engine.dialect.name == "postgresql":
        assert not _function_exists(engine)

    runner.upgrade(engine)
    assert runner.current(engine) == HEAD
    assert _tables(engine) == ALL_TABLES
    assert _triggers(engine) == _expected_triggers(engine)
    runner.check(engine)

    # one revision at a time, down and up again
    runner.downgrade(engine, "0008")
    columns = [c["name"] for c in inspect(engine).get_columns("ledger_events")]
    assert "authenticator" not in columns
    assert _triggers(engine) == _expected_triggers(engine)  # DROP COLUMN keeps them
    runner.downgrade(engine, "0007")
    assert _tables(engine) == ALL_TABLES - {"ledger_tree_nodes"}
    assert "ledger_tree_nodes" not in {table for _, table in _triggers(engine)}
    runner.downgrade(engine, "0006")
    assert _tables(engine) == ALL_TABLES - DENIAL_TABLES - {"ledger_tree_nodes"}
    runner.downgrade(engine, "0003")
    assert "expiring_data_keys" not in _tables(engine)
    assert "expiring_data_keys" not in {table for _, table in _triggers(engine)}
    runner.downgrade(engine, "0002")
    assert runner.current(engine) == "0002"
    assert not DECISION_TABLES & _tables(engine)
    assert {table for _, table in _triggers(engine)} == {"ledger_events", "ledger_checkpoints"}
    runner.downgrade(engine, "0001")
    assert runner.current(engine) == "0001"
    assert "policies" not in _tables(engine)
    runner.upgrade(engine)
    assert runner.current(engine) == HEAD
    assert "policies" in _tables(engine)
    assert _triggers(engine) == _expected_triggers(engine)
    runner.check(engine)


def test_ledger_columns_and_keys(engine: Any) -> None:
    runner.upgrade(engine)
    insp = inspect(engine)
    columns = {c["name"]: c for c in insp.get_columns("ledger_events")}
    assert list(columns) == [
        "seq",
        "recorded_at",
        "event_type",
        "actor",
        "model",
        "version",
        "index_fields",
        "key_id",
        "nonce",
        "ciphertext",
        "leaf_hash",
        "chain_hash",
        "authenticator",
    ]
    nullable = {name for name, c in columns.items() if c["nullable"]}
    assert nullable == {"model", "version", "authenticator"}  # NULL fails audit verify
    assert insp.get_pk_constraint("ledger_events")["constrained_columns"] == ["seq"]
    assert insp.get_pk_constraint("ledger_checkpoints")["constrained_columns"] == ["size"]
    assert insp.get_pk_constraint("ledger_data_keys")["constrained_columns"] == ["key_id"]
    indexes = {i["name"]: i["column_names"] for i in insp.get_indexes("ledger_events")}
    assert indexes == {
        "ix_ledger_events_event_type": ["event_type"],
        "ix_ledger_events_model": ["model"],
    }


def test_drift_is_reported_by_check(engine: Any) -> None:
    """``runner.check`` is not vacuous: a column added outside the migrations fails it."""
    from alembic.util.exc import AutogenerateDiffsDetected

    runner.upgrade(engine)
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE models ADD COLUMN note TEXT"))
    with pytest.raises(AutogenerateDiffsDetected) as info:
        runner.check(engine)
    assert "remove_column" in str(info.value)
    assert "'models', Column('note'" in str(info.value)


def test_alembic_gets_the_url_intact(engine: Any) -> None:
    """URL-encoded characters (the PostgreSQL URL's ``options=-csearch_path%3D...``,
    a password with '%') reach alembic intact instead of breaking ConfigParser."""
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name == "postgresql":
        assert "%3D" in url
    assert runner.alembic_config(engine).get_main_option("sqlalchemy.url") == url
