"""Key rotation: data keys and the key-encryption key (KEK) rotated between
appends, tampered wrapped keys, interrupted KEK rotations re-run to the end.
Nothing is ever lost: every event decrypts afterwards in a fresh process
(a new Context with empty key caches)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from ledger_helpers import append, failure, flip, fresh, sql, verify

from audits.events import EventType, NewEvent
from audits.keyring import KEK_FILE, KEK_NEXT_FILE
from core.errors import IntegrityError


@pytest.fixture
def ctx(home: Any) -> Iterator[Any]:
    context = home.context()
    yield context
    context.close()


def _kek_id(path: Any) -> str:
    return str(json.loads(path.read_text())["kek_id"])


def _keys(ctx: Any) -> list[tuple[str, str]]:
    rows = sql(ctx, "SELECT key_id, kek_id FROM ledger_data_keys ORDER BY key_id")
    return [(str(k), str(w)) for k, w in rows]


def _events(ctx: Any) -> list[tuple[int, str, str, Any]]:
    """(seq, type, key id, run or None) of every event, decrypted by a fresh context."""
    reader = fresh(ctx)
    try:
        with reader.registry.reading() as conn:
            return [
                (e.seq, e.type, e.key_id, e.data.get("run")) for e in reader.ledger.events(conn)
            ]
    finally:
        reader.close()


def _runs(events: list[tuple[int, str, str, Any]]) -> dict[int, str]:
    return {run: key for _, kind, key, run in events if kind == EventType.BENCHMARK}


def test_data_key_and_kek_rotated_between_appends(ctx: Any, home: Any) -> None:
    admin = ctx.registry.authenticate(home.admin_key)
    keys_dir = ctx.settings.keys_path
    first_kek = _kek_id(keys_dir / KEK_FILE)
    append(ctx, range(4, 6))  # seq 4-5 (bootstrap wrote 1-3)
    assert ctx.registry.rotate_data_key(admin) == "dk-000002"  # seq 6
    append(ctx, range(7, 10))  # seq 7-9
    new_kek, rewrapped = ctx.registry.rotate_kek(admin)  # seq 10
    assert (rewrapped, new_kek != first_kek) == (2, True)
    append(ctx, range(11, 14))  # seq 11-13, same context: cached keys
    assert ctx.registry.rotate_data_key(admin) == "dk-000003"  # seq 14, wrapped by the new KEK
    append(ctx, range(15, 16))

    assert _kek_id(keys_dir / KEK_FILE) == new_kek
    assert not (keys_dir / KEK_NEXT_FILE).exists()
    assert _keys(ctx) == [("dk-000001", new_kek), ("dk-000002", new_kek), ("dk-000003", new_kek)]
    events = _events(ctx)
    assert [(seq, kind, key) for seq, kind, key, _ in events] == [
        (1, EventType.LEDGER_INITIALISED, "dk-000001"),
        (2, EventType.PERSON_CREATED, "dk-000001"),
        (3, EventType.PRINCIPAL_CREATED, "dk-000001"),
        (4, EventType.BENCHMARK, "dk-000001"),
        (5, EventType.BENCHMARK, "dk-000001"),
        (6, EventType.DATA_KEY_ROTATED, "dk-000002"),
        (7, EventType.BENCHMARK, "dk-000002"),
        (8, EventType.BENCHMARK, "dk-000002"),
        (9, EventType.BENCHMARK, "dk-000002"),
        (10, EventType.KEK_ROTATED, "dk-000002"),
        (11, EventType.BENCHMARK, "dk-000002"),
        (12, EventType.BENCHMARK, "dk-000002"),
        (13, EventType.BENCHMARK, "dk-000002"),
        (14, EventType.DATA_KEY_ROTATED, "dk-000003"),
        (15, EventType.BENCHMARK, "dk-000003"),
    ]
    assert sorted(_runs(events)) == [4, 5, 7, 8, 9, 11, 12, 13, 15]
    reader = fresh(ctx)
    try:
        with reader.registry.reading() as conn:
            rotated = [
                e.data
                for e in reader.ledger.events(
                    conn, types=[EventType.DATA_KEY_ROTATED, EventType.KEK_ROTATED]
                )
            ]
        assert rotated == [
            {"key_id": "dk-000002"},
            {"kek_id": new_kek, "rewrapped": 2},
            {"key_id": "dk-000003"},
        ]
        assert verify(reader).size == 15
    finally:
        reader.close()


def test_tampered_wrapped_key_is_detected(ctx: Any, home: Any) -> None:
    admin = ctx.registry.authenticate(home.admin_key)
    append(ctx, range(4, 5))
    ctx.registry.rotate_data_key(admin)  # seq 5
    append(ctx, range(6, 7))
    kek = _kek_id(ctx.settings.keys_path / KEK_FILE)
    wrapped = bytes(
        sql(ctx, "SELECT wrapped FROM ledger_data_keys WHERE key_id = 'dk-000002'")[0][0]
    )
    sql(
        ctx,
        "UPDATE ledger_data_keys SET wrapped = :w WHERE key_id = 'dk-000002'",
        {"w": flip(wrapped, 3)},
    )
    reader = fresh(ctx)
    try:
        message = (
            f"data key dk-000002: wrapped key fails authentication under {kek} "
            "(the stored key was altered)"
        )
        err = failure(reader)
        assert (err.seq, str(err)) == (5, f"seq 5: {message}")
        with reader.registry.reading() as conn, pytest.raises(IntegrityError) as info:
            list(reader.ledger.events(conn))
        assert str(info.value) == message
    finally:
        reader.close()


def test_data_key_under_an_unknown_kek_is_reported(ctx: Any) -> None:
    sql(ctx, "UPDATE ledger_data_keys SET kek_id = 'kek-0000000000000000'")
    reader = fresh(ctx)
    try:
        err = failure(reader)
        assert (err.seq, str(err)) == (
            1,
            "seq 1: data key dk-000001 is wrapped by kek-0000000000000000, which is not in "
            f"{ctx.settings.keys_path}",
        )
    finally:
        reader.close()


def _record_rotation_without_finishing(ctx: Any, admin: Any) -> tuple[str, int]:
    """rotate_kek up to the database commit: the process dies before
    ``finish_kek_rotation`` renames kek.next.json to kek.json."""
    keyring = ctx.ledger.keyring
    new = keyring.prepare_kek_rotation()
    with ctx.registry.transaction() as conn:
        count = keyring.rewrap_all(conn, new)
        ctx.registry.record(
            conn,
            [
                NewEvent(
                    type=EventType.KEK_ROTATED,
                    actor=admin.name,
                    data={"kek_id": new.kek_id, "rewrapped": count},
                    index={"kek_id": new.kek_id},
                )
            ],
        )
    return new.kek_id, count


def test_interrupted_after_prepare_then_rerun(ctx: Any, home: Any) -> None:
    admin = ctx.registry.authenticate(home.admin_key)
    keys_dir = ctx.settings.keys_path
    old_kek = _kek_id(keys_dir / KEK_FILE)
    append(ctx, range(4, 5))
    ctx.registry.rotate_data_key(admin)  # seq 5
    append(ctx, range(6, 8))
    pending = ctx.ledger.keyring.prepare_kek_rotation().kek_id  # ... and the process dies
    assert _kek_id(keys_dir / KEK_NEXT_FILE) == pending != old_kek

    after_crash = fresh(ctx)
    try:
        append(after_crash, range(8, 10))  # work goes on in the interrupted state
        assert _keys(after_crash) == [("dk-000001", old_kek), ("dk-000002", old_kek)]
        assert verify(after_crash).size == 9
        # re-running picks up the pending KEK instead of making another one
        assert after_crash.registry.rotate_kek(admin) == (pending, 2)  # seq 10
    finally:
        after_crash.close()

    assert _kek_id(keys_dir / KEK_FILE) == pending
    assert not (keys_dir / KEK_NEXT_FILE).exists()
    assert _keys(ctx) == [("dk-000001", pending), ("dk-000002", pending)]
    events = _events(ctx)
    assert [seq for seq, *_ in events] == list(range(1, 11))
    assert _runs(events) == {
        4: "dk-000001",
        6: "dk-000002",
        7: "dk-000002",
        8: "dk-000002",
        9: "dk-000002",
    }
    reader = fresh(ctx)
    try:
        assert verify(reader).size == 10
    finally:
        reader.close()


def test_interrupted_after_rewrap_commit_then_rerun(ctx: Any, home: Any) -> None:
    admin = ctx.registry.authenticate(home.admin_key)
    keys_dir = ctx.settings.keys_path
    old_kek = _kek_id(keys_dir / KEK_FILE)
    append(ctx, range(4, 5))
    ctx.registry.rotate_data_key(admin)  # seq 5
    append(ctx, range(6, 7))
    pending, count = _record_rotation_without_finishing(ctx, admin)  # seq 7
    assert count == 2
    assert _kek_id(keys_dir / KEK_FILE) == old_kek  # the rename never happened
    assert _keys(ctx) == [("dk-000001", pending), ("dk-000002", pending)]

    after_crash = fresh(ctx)
    try:
        # both KEK files are read, so everything still decrypts
        assert verify(after_crash).size == 7
        # a data key made in the interrupted state is wrapped by the current kek.json
        assert after_crash.registry.rotate_data_key(admin) == "dk-000003"  # seq 8
        append(after_crash, range(9, 11))
        assert _keys(after_crash)[2] == ("dk-000003", old_kek)
        # the re-run re-wraps only what is not yet under the pending KEK
        assert after_crash.registry.rotate_kek(admin) == (pending, 1)  # seq 11
    finally:
        after_crash.close()

    assert _kek_id(keys_dir / KEK_FILE) == pending
    assert not (keys_dir / KEK_NEXT_FILE).exists()
    assert _keys(ctx) == [
        ("dk-000001", pending),
        ("dk-000002", pending),
        ("dk-000003", pending),
    ]
    events = _events(ctx)
    assert [seq for seq, *_ in events] == list(range(1, 12))
    assert _runs(events) == {
        4: "dk-000001",
        6: "dk-000002",
        9: "dk-000003",
        10: "dk-000003",
    }
    reader = fresh(ctx)
    try:
        assert verify(reader).size == 11
    finally:
        reader.close()


def test_rotation_by_another_process_is_picked_up(ctx: Any, home: Any) -> None:
    """A long-running process (an API server) keeps working after an admin
    rotates the KEK and the data key from another process."""
    admin = ctx.registry.authenticate(home.admin_key)
    append(ctx, range(4, 5))  # ctx has now loaded the KEK and cached dk-000001
    admin_process = fresh(ctx)
    try:
        new_kek, count = admin_process.registry.rotate_kek(admin)  # seq 5
        assert count == 1
        assert admin_process.registry.rotate_data_key(admin) == "dk-000002"  # seq 6
    finally:
        admin_process.close()
    append(ctx, range(7, 9))  # under dk-000002, wrapped by a KEK ctx has not seen
    with ctx.registry.reading() as conn:
        events = [(e.seq, e.key_id) for e in ctx.ledger.events(conn)]
    assert events[-4:] == [(5, "dk-000001"), (6, "dk-000002"), (7, "dk-000002"), (8, "dk-000002")]
    assert _keys(ctx) == [("dk-000001", new_kek), ("dk-000002", new_kek)]
    assert verify(ctx).size == 8
