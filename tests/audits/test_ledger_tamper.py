"""Tampering with the ledger as someone with write access to the database.

Every test drops the append-only guard rails first (as such an attacker
would), edits rows with raw SQL and checks that verification names the first
bad seq and says exactly what is wrong. The ledger is built through a Context
as every write is: each transaction signs its checkpoint. Bootstrap writes seq
1-3 (checkpoint at 3), then ``run`` n is written as seq n for n = 4..12 in
three transactions, 4-5, 6-10 and 11-12 (checkpoints at 5, 10 and 12, all four
also in the anchor folder). Verification here is an auditor's, with the
public key only; test_ledger_signer.py covers the authenticators, which need
the signing key.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ledger_helpers import (
    anchor_files,
    append,
    checkpoint_issued_at,
    drop_guard_rails,
    event_row,
    failure,
    flip,
    forge_score,
    key_fingerprint,
    recompute_hashes,
    renumber,
    sql,
    standard_ledger,
    verify,
)

from audits.events import EventType, NewEvent
from audits.ledger import anchor_name, chain_of, envelope_bytes, leaf_of
from audits.merkle import root
from audits.signing import SignedCheckpoint, fingerprint, sign_checkpoint
from audits.verify import VerificationFailed
from core.clock import isoformat, utcnow

AES_FAILED = (
    "seq {seq}: ciphertext does not match its leaf hash "
    "(AES-GCM authentication failed: altered, or moved from another row)"
)


@pytest.fixture
def ctx(home: Any) -> Iterator[Any]:
    context = standard_ledger(home, guard_rails=False)
    yield context
    context.close()


def test_untouched_ledger_verifies(ctx: Any) -> None:
    report = verify(ctx)
    assert (report.size, report.checkpoints, report.anchors) == (12, 4, 4)
    assert report.warnings == []
    assert anchor_files(ctx) == [anchor_name(n) for n in (3, 5, 10, 12)]
    sizes = [int(r[0]) for r in sql(ctx, "SELECT size FROM ledger_checkpoints ORDER BY size")]
    assert sizes == [3, 5, 10, 12]
    assert report.root == _true_root(ctx, 12)
    assert report.summary() == (
        f"ledger intact: 12 events, root {report.root.hex()}, 4 signed checkpoints and "
        f"4 anchors verified with key {key_fingerprint(ctx)}; event authenticators not "
        "checked (the signing key is not at hand)"
    )


def test_one_ciphertext_byte_flipped(ctx: Any) -> None:
    ciphertext = bytes(event_row(ctx, 7).ciphertext)
    sql(ctx, "UPDATE ledger_events SET ciphertext = :c WHERE seq = 7", {"c": flip(ciphertext, 9)})
    err = failure(ctx)
    assert (err.seq, str(err)) == (7, AES_FAILED.format(seq=7))


def _edits(row: Any) -> list[tuple[str, Any, str]]:
    """(column, new value, expected message) for edits of seq 7's stored row."""
    return [
        (
            "actor",
            "mallory",
            "seq 7: plaintext field 'actor' was altered (stored 'mallory', sealed 'alice')",
        ),
        (
            "recorded_at",
            "2020-01-01T00:00:00.000000Z",
            "seq 7: plaintext field 'recorded_at' was altered (stored "
            f"'2020-01-01T00:00:00.000000Z', sealed '{row.recorded_at}')",
        ),
        (
            "model",
            "other-model",
            "seq 7: plaintext field 'model' was altered (stored 'other-model', "
            "sealed 'credit-risk')",
        ),
        ("version", 2, "seq 7: plaintext field 'version' was altered (stored 2, sealed 1)"),
        (
            "index_fields",
            '{"run":99}',
            'seq 7: plaintext index fields were altered (stored {"run":99}, sealed {"run":7})',
        ),
        (
            "index_fields",
            "not json",
            'seq 7: plaintext index fields were altered (stored not json, sealed {"run":7})',
        ),
        ("event_type", "version.approved", AES_FAILED.format(seq=7)),
        ("nonce", flip(bytes(row.nonce)), AES_FAILED.format(seq=7)),
        ("key_id", "dk-000002", "seq 7: data key dk-000002 is not in the database"),
        (
            "leaf_hash",
            flip(bytes(row.leaf_hash)),
            "seq 7: envelope does not match its leaf hash (leaf hash altered)",
        ),
        (
            "chain_hash",
            flip(bytes(row.chain_hash)),
            "seq 7: chain hash does not follow from the previous event",
        ),
    ]


def test_plaintext_field_edited(ctx: Any) -> None:
    """Each stored field of seq 7 edited in turn (and put back after)."""
    row = event_row(ctx, 7)
    for column, value, message in _edits(row):
        update = f"UPDATE ledger_events SET {column} = :v WHERE seq = 7"
        sql(ctx, update, {"v": value})
        err = failure(ctx)
        assert (column, err.seq, str(err)) == (column, 7, message)
        sql(ctx, update, {"v": getattr(row, column)})
        assert verify(ctx).size == 12


def test_middle_row_deleted(ctx: Any) -> None:
    assert sql(ctx, "DELETE FROM ledger_events WHERE seq = 7") == 1
    err = failure(ctx)
    assert (err.seq, str(err)) == (7, "seq 7: missing (the next stored event is seq 8)")


def test_last_rows_deleted_caught_by_the_checkpoint(ctx: Any) -> None:
    assert sql(ctx, "DELETE FROM ledger_events WHERE seq >= 9") == 4
    err = failure(ctx)
    assert (err.seq, str(err)) == (
        9,
        "seq 9: missing; a checkpoint signed the ledger at size 12 but it ends at seq 8 "
        "(events deleted from the end)",
    )


def test_last_rows_and_their_checkpoints_deleted_caught_by_the_anchor(ctx: Any) -> None:
    assert sql(ctx, "DELETE FROM ledger_events WHERE seq >= 9") == 4
    assert sql(ctx, "DELETE FROM ledger_checkpoints WHERE size >= 9") == 2
    err = failure(ctx)
    assert (err.seq, str(err)) == (
        None,
        "anchored checkpoint at size 10 is missing from the database (checkpoints were deleted)",
    )
    from audits.signing import load_public_key

    key = load_public_key(ctx.settings.public_key_path)
    # Without the anchors, the tree nodes the deleted checkpoint wrote give it away...
    with pytest.raises(VerificationFailed) as info:
        ctx.registry.verify(None, key, anchor_dir=None)
    assert str(info.value) == (
        "tree node at level 1 over seqs 5..6: stored, but it is not a complete subtree of "
        "the ledger's first 5 leaves (an extra row)"
    )
    # ...and once they are deleted too, events 6..8 are left outside every checkpoint,
    # which no honest write leaves (each signs its own)...
    assert sql(ctx, "DELETE FROM ledger_tree_nodes WHERE last_seq > 5") == 7
    with pytest.raises(VerificationFailed) as info:
        ctx.registry.verify(None, key, anchor_dir=None)
    assert (info.value.seq, str(info.value)) == (
        6,
        "seq 6..8: not covered by any signed checkpoint (every write signs one in its own "
        "transaction: these were added outside govreg, or by a version before that, which "
        "`govreg init` upgrades)",
    )
    # ...so the attacker cuts at a checkpoint. Then the anchors are what catch it: the
    # database alone looks like a consistent, shorter ledger (why they are kept outside it).
    assert sql(ctx, "DELETE FROM ledger_events WHERE seq > 5") == 3
    assert ctx.registry.verify(None, key, anchor_dir=None).size == 5


def test_anchor_remains_but_its_checkpoint_row_deleted(ctx: Any) -> None:
    assert sql(ctx, "DELETE FROM ledger_checkpoints WHERE size = 5") == 1
    err = failure(ctx)
    assert (err.seq, str(err)) == (
        None,
        "anchored checkpoint at size 5 is missing from the database (checkpoints were deleted)",
    )


def test_two_rows_swapped(ctx: Any) -> None:
    renumber(ctx, 6, 1000)
    renumber(ctx, 7, 6)
    renumber(ctx, 1000, 7)
    assert event_row(ctx, 6).index_fields == '{"run":7}'  # run 7 now sits at seq 6
    err = failure(ctx)
    assert (err.seq, str(err)) == (6, AES_FAILED.format(seq=6))


def test_row_inserted_in_the_middle(ctx: Any) -> None:
    for seq in range(12, 7, -1):
        renumber(ctx, seq, seq + 1)
    sql(
        ctx,
        "INSERT INTO ledger_events SELECT 8, recorded_at, event_type, actor, model, version, "
        "index_fields, key_id, nonce, ciphertext, leaf_hash, chain_hash, authenticator "
        "FROM ledger_events WHERE seq = 7",
    )
    recompute_hashes(ctx, 8)
    err = failure(ctx)
    assert (err.seq, str(err)) == (8, AES_FAILED.format(seq=8))


def test_row_forged_at_the_end_with_hashes(ctx: Any) -> None:
    """Without the data key a forged payload cannot authenticate."""
    last = event_row(ctx, 12)
    nonce, ciphertext = secrets.token_bytes(12), secrets.token_bytes(80)
    recorded_at = isoformat(utcnow())
    leaf = leaf_of(
        envelope_bytes(
            13, recorded_at, "benchmark.event", "alice", None, None, "{}", "dk-000001", nonce,
            ciphertext,
        )
    )  # fmt: skip
    sql(
        ctx,
        "INSERT INTO ledger_events VALUES (13, :t, 'benchmark.event', 'alice', NULL, NULL, '{}', "
        "'dk-000001', :n, :c, :l, :h, :a)",
        {
            "a": secrets.token_bytes(32),
            "t": recorded_at,
            "n": nonce,
            "c": ciphertext,
            "l": leaf,
            "h": chain_of(bytes(last.chain_hash), leaf),
        },
    )
    err = failure(ctx)
    assert (err.seq, str(err)) == (13, AES_FAILED.format(seq=13))


def test_ciphertext_moved_to_another_row(ctx: Any) -> None:
    source = event_row(ctx, 4)
    sql(
        ctx,
        "UPDATE ledger_events SET nonce = :n, ciphertext = :c WHERE seq = 9",
        {"n": bytes(source.nonce), "c": bytes(source.ciphertext)},
    )
    recompute_hashes(ctx, 9)
    err = failure(ctx)
    assert (err.seq, str(err)) == (9, AES_FAILED.format(seq=9))


def test_edit_then_every_later_hash_recomputed(ctx: Any) -> None:
    ciphertext = bytes(event_row(ctx, 7).ciphertext)
    sql(ctx, "UPDATE ledger_events SET ciphertext = :c WHERE seq = 7", {"c": flip(ciphertext, 0)})
    recompute_hashes(ctx, 7)
    err = failure(ctx)
    assert (err.seq, str(err)) == (7, AES_FAILED.format(seq=7))


@pytest.mark.parametrize(("seq", "first", "size"), [(7, 6, 10), (4, 4, 5)])
def test_properly_reencrypted_rewrite_caught_by_checkpoints(
    ctx: Any, seq: int, first: int, size: int
) -> None:
    forge_score(ctx, seq)
    with ctx.registry.reading() as conn:
        forged = [e for e in ctx.ledger.events(conn) if e.seq == seq]
    assert forged[0].data["score"] == "0.9999"  # it decrypts: every per-row check passes
    err = failure(ctx)
    assert (err.seq, str(err)) == (
        first,
        f"seq {first}..{size}: history differs from the checkpoint signed at size {size} on "
        f"{checkpoint_issued_at(ctx, size)} (events rewritten in this range)",
    )


def test_properly_reencrypted_rewrite_caught_by_anchor_without_db_checkpoints(
    ctx: Any,
) -> None:
    """The attacker also deletes the database checkpoints: the anchor catches it."""
    forge_score(ctx, 7)
    sql(ctx, "DELETE FROM ledger_checkpoints WHERE size >= 5")
    err = failure(ctx)
    assert (err.seq, str(err)) == (
        None,
        "anchored checkpoint at size 5 is missing from the database (checkpoints were deleted)",
    )


def test_rewrite_with_checkpoint_root_replaced_fails_the_signature(ctx: Any) -> None:
    """The attacker also points the stored checkpoint at the new root."""
    forge_score(ctx, 7)
    leaves = [bytes(r[0]) for r in sql(ctx, "SELECT leaf_hash FROM ledger_events ORDER BY seq")]
    sql(
        ctx,
        "UPDATE ledger_checkpoints SET root_hash = :r WHERE size = 10",
        {"r": root(leaves[:10])},
    )
    err = failure(ctx)
    assert (err.seq, str(err)) == (
        None,
        "database checkpoint at size 10: signature does not verify with the public key",
    )


def _insert_checkpoint(ctx: Any, cp: SignedCheckpoint) -> None:
    sql(
        ctx,
        "INSERT INTO ledger_checkpoints (size, root_hash, issued_at, key_fingerprint, note, "
        "signature, frontier) VALUES (:s, :r, :t, :f, :n, :g, '[]')",
        {
            "s": cp.size,
            "r": cp.root,
            "t": cp.issued_at,
            "f": cp.key_fingerprint,
            "n": cp.note,
            "g": cp.signature,
        },
    )


def _true_root(ctx: Any, size: int) -> bytes:
    leaves = [bytes(r[0]) for r in sql(ctx, "SELECT leaf_hash FROM ledger_events ORDER BY seq")]
    return root(leaves[:size])


def test_checkpoint_signed_by_another_key_inserted(ctx: Any) -> None:
    from audits.signing import load_public_key

    ours = fingerprint(load_public_key(ctx.settings.public_key_path))
    other = Ed25519PrivateKey.generate()
    issued_at = isoformat(utcnow())
    true_root = _true_root(ctx, 11)
    # 1. honestly named as the other key's
    _insert_checkpoint(ctx, sign_checkpoint(other, 11, true_root, issued_at))
    err = failure(ctx)
    assert (err.seq, str(err)) == (
        None,
        f"database checkpoint at size 11 names key {fingerprint(other.public_key())}, "
        f"not the given public key {key_fingerprint(ctx)}",
    )
    assert sql(ctx, "DELETE FROM ledger_checkpoints WHERE size = 11") == 1
    assert verify(ctx).size == 12
    # 2. naming our key, signed by the other one
    note = SignedCheckpoint(11, true_root, issued_at, ours, b"").note
    _insert_checkpoint(
        ctx, SignedCheckpoint(11, true_root, issued_at, ours, other.sign(note.encode()))
    )
    err = failure(ctx)
    assert (err.seq, str(err)) == (
        None,
        "database checkpoint at size 11: signature does not verify with the public key",
    )


def test_anchor_file_replaced_by_one_signed_with_another_key(ctx: Any) -> None:
    other = Ed25519PrivateKey.generate()
    forged = sign_checkpoint(other, 10, _true_root(ctx, 10), checkpoint_issued_at(ctx, 10))
    (ctx.settings.anchors_path / anchor_name(10)).write_text(forged.to_text(), encoding="utf-8")
    err = failure(ctx)
    assert (err.seq, str(err)) == (
        None,
        f"anchor checkpoint at size 10 names key {fingerprint(other.public_key())}, "
        f"not the given public key {key_fingerprint(ctx)}",
    )


def test_anchor_file_mangled(ctx: Any) -> None:
    path = ctx.settings.anchors_path / anchor_name(5)
    original = path.read_bytes()
    path.write_bytes(original.replace(b"govreg-ledger/v1", b"x"))
    err = failure(ctx)
    assert (err.seq, str(err)) == (None, f"{path}: not a govreg checkpoint (header is 'x')")
    path.write_bytes(b"\xff" + original)
    err = failure(ctx)
    assert (err.seq, str(err)) == (
        None,
        f"{path}: not a govreg checkpoint ('utf-8' codec can't decode byte 0xff in position 0: "
        "invalid start byte)",
    )


# -- the registry projection edited behind the ledger ----------------------------------
@pytest.fixture
def with_bob(ctx: Any, home: Any) -> Any:
    admin = ctx.registry.authenticate(home.admin_key)
    ctx.registry.create_principal(admin, "bob", "validator")
    with ctx.registry.transaction() as conn:
        ctx.registry.record(
            conn,
            [
                NewEvent(
                    type=EventType.MODEL_REGISTERED,
                    actor="alice",
                    model="credit-risk",
                    data={"name": "credit-risk"},
                    index={"name": "credit-risk"},
                )
            ],
        )
    assert verify(ctx).size == 15
    return ctx


PROJECTION_EDITS = [
    (
        "UPDATE principals SET role = 'admin' WHERE name = 'bob'",
        "UPDATE principals SET role = 'validator' WHERE name = 'bob'",
        "registry table 'principals' row ('bob',): role is 'admin' but the ledger replay "
        "gives 'validator'",
    ),
    (
        "UPDATE models SET created_by = 'mallory' WHERE name = 'credit-risk'",
        "UPDATE models SET created_by = 'alice' WHERE name = 'credit-risk'",
        "registry table 'models' row ('credit-risk',): created_by is 'mallory' but the ledger "
        "replay gives 'alice'",
    ),
    (
        "INSERT INTO principals (name, role, key_prefix, key_hash, created_at, created_by, person) "
        "VALUES ('eve', 'admin', 'ffffffff', 'ff', '2026-01-01T00:00:00.000000Z', 'admin', "
        "'admin')",
        "DELETE FROM principals WHERE name = 'eve'",
        "registry table 'principals' has row ('eve',) that no ledger event created",
    ),
    (
        "UPDATE principals SET name = 'bob2' WHERE name = 'bob'",
        "UPDATE principals SET name = 'bob' WHERE name = 'bob2'",
        "registry table 'principals' has row ('bob2',) that no ledger event created",
    ),
]


def test_projection_edited_behind_the_ledger(with_bob: Any) -> None:
    """Each edit in turn (and undone after): the replay names table, row and column."""
    for edit, undo, message in PROJECTION_EDITS:
        sql(with_bob, edit)
        err = failure(with_bob)
        assert (err.seq, str(err)) == (None, message)
        sql(with_bob, undo)
        assert verify(with_bob).size == 15


def test_projection_row_deleted(with_bob: Any) -> None:
    sql(with_bob, "DELETE FROM principals WHERE name = 'bob'")
    err = failure(with_bob)
    assert (err.seq, str(err)) == (
        None,
        "registry table 'principals' lacks row ('bob',) that the ledger created",
    )


# -- the CLI ----------------------------------------------------------------------------
def test_cli_verify_intact_and_tampered(home: Any) -> None:
    ctx = home.context()
    try:
        append(ctx, range(4, 11))  # 10 events, a checkpoint per transaction
        report = verify(ctx, authenticators=True)  # the CLI has the home's signing key
        assert (report.warnings, report.authenticators_checked) == ([], True)
        result = home.cli("audit", "verify")
        assert (result.exit_code, result.stderr) == (0, "")
        assert result.stdout == report.summary() + "\n"
        assert result.stdout.startswith("ledger intact: 10 events, root ")

        drop_guard_rails(ctx)
        ciphertext = bytes(event_row(ctx, 4).ciphertext)
        sql(ctx, "UPDATE ledger_events SET ciphertext = :c WHERE seq = 4", {"c": flip(ciphertext)})
        result = home.cli("audit", "verify")
        assert result.exit_code == 8
        assert result.stdout == ""
        assert result.stderr == f"error: {AES_FAILED.format(seq=4)}\n"
    finally:
        ctx.close()


# -- what someone reading the database sees --------------------------------------------
SECRET = "applicant-ssn-078-05-1120"
MARKER = "plain-index-marker-4711"  # index fields are plaintext by design: the control


def _database_dump(ctx: Any) -> bytes:
    if ctx.engine.dialect.name == "sqlite":
        db = Path(ctx.engine.url.database)
        files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    tables = sql(
        ctx,
        "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()",
    )
    dump = []
    for (table,) in tables:  # every column of every row, bytea as hex
        dump.extend(str(r[0]) for r in sql(ctx, f'SELECT t::text FROM "{table}" AS t'))
    return "\n".join(dump).encode()


def test_raw_database_holds_no_plaintext_payload(home: Any) -> None:
    ctx = home.context()
    try:
        with ctx.registry.transaction() as conn:
            ctx.registry.record(
                conn,
                [
                    NewEvent(
                        type=EventType.BENCHMARK,
                        actor="alice",
                        data={"applicant": SECRET, "note": f"called {SECRET} about the limit"},
                        index={"marker": MARKER},
                    )
                    for _ in range(3)
                ],
            )
        with ctx.registry.reading() as conn:
            found = [e.data["applicant"] for e in ctx.ledger.events(conn) if e.seq > 3]
        assert found == [SECRET, SECRET, SECRET]

        forbidden = [SECRET.encode(), SECRET.encode("utf-16-le"), SECRET.encode().hex().encode()]
        for _ in range(2):  # before and after the WAL is folded into the database file
            dump = _database_dump(ctx)
            assert MARKER.encode() in dump
            for form in forbidden:
                assert form not in dump
            if ctx.engine.dialect.name == "sqlite":
                ctx.engine.dispose()
                raw = sqlite3.connect(ctx.engine.url.database, isolation_level=None)
                try:
                    busy, _, _ = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                    assert busy == 0
                finally:
                    raw.close()
        for path in home.path.rglob("*"):  # nor anywhere in the home (anchors, keys)
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path
        assert verify(ctx).size == 6
    finally:
        ctx.close()
