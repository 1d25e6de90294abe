"""Every stored column of the ledger tables is verified, with its type.

Issue 13, findings 5 and 7. As in test_ledger_tamper.py: bootstrap writes seq
1-3 (checkpoint at 3), runs 4-5, 6-10 and 11-12 are one transaction each
(checkpoints at 5, 10 and 12, all anchored); the guard rails are dropped and
rows are edited with raw SQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from ledger_helpers import (
    append,
    checkpoint_sizes,
    failure,
    seqs,
    sql,
    standard_ledger,
    verify,
)
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, StatementError

from audits.verify import VerificationFailed
from core.errors import IntegrityError

RUN_VERIFY = "(run `govreg audit verify`)"


@pytest.fixture
def ctx(home: Any) -> Iterator[Any]:
    context = standard_ledger(home, guard_rails=False)
    yield context
    context.close()


def is_sqlite(ctx: Any) -> bool:
    return bool(ctx.engine.dialect.name == "sqlite")


def frontier(ctx: Any, size: int) -> str:
    return str(
        sql(ctx, "SELECT frontier FROM ledger_checkpoints WHERE size = :s", {"s": size})[0][0]
    )


def set_checkpoint(ctx: Any, size: int, column: str, value: Any) -> None:
    assert (
        sql(
            ctx,
            f"UPDATE ledger_checkpoints SET {column} = :v WHERE size = :s",
            {"v": value, "s": size},
        )
        == 1
    )


# -- finding 5: note and frontier ------------------------------------------------------
def test_checkpoint_note_edited(ctx: Any) -> None:
    note = sql(ctx, "SELECT note FROM ledger_checkpoints WHERE size = 5")[0][0]
    set_checkpoint(ctx, 5, "note", note.replace("\n5\n", "\n6\n"))
    err = failure(ctx)
    assert (err.seq, str(err)) == (
        None,
        "database checkpoint at size 5: column 'note' differs from the note that was signed",
    )
    set_checkpoint(ctx, 5, "note", note)
    assert verify(ctx).size == 12


def test_checkpoint_frontier_edited(ctx: Any) -> None:
    original = frontier(ctx, 10)  # size 10 = 8 + 2: two hashes
    hashes = original.replace(original[3], "0" if original[3] != "0" else "1", 1)
    assert hashes != original
    for value in (hashes, original.replace(", ", ","), "[]"):
        set_checkpoint(ctx, 10, "frontier", value)
        err = failure(ctx)
        assert (err.seq, str(err)) == (
            None,
            "database checkpoint at size 10: column 'frontier' differs from the compact range "
            "recomputed from leaves 1..10",
        )
    set_checkpoint(ctx, 10, "frontier", original)
    assert verify(ctx).size == 12


@pytest.mark.parametrize(
    ("poison", "problem"),
    [
        ("other hashes", "stored frontier does not lead to its signed root"),
        ("not json", "stored frontier is malformed"),
        ('["zz"]', "stored frontier is malformed"),
        ("[]", "stored frontier is malformed"),
    ],
)
def test_poisoned_frontier_is_never_signed(ctx: Any, poison: str, problem: str) -> None:
    """The writer checks the frontier it builds on against the signed root: it
    refuses, writes nothing, and names the checkpoint."""
    original = frontier(ctx, 12)
    if poison == "other hashes":  # the compact range of size 12 with another subtree
        poison = original[:2] + ("f" if original[2] != "f" else "e") + original[3:]
    set_checkpoint(ctx, 12, "frontier", poison)
    with pytest.raises(IntegrityError) as info:
        append(ctx, range(13, 14))  # seq 13 would sign the checkpoint at 13
    assert str(info.value) == (
        f"checkpoint at size 12: {problem}; refusing to sign a new checkpoint on it {RUN_VERIFY}"
    )
    assert ctx.ledger.refusal == str(info.value)
    assert seqs(ctx) == list(range(1, 13))
    assert checkpoint_sizes(ctx) == [3, 5, 10, 12]
    set_checkpoint(ctx, 12, "frontier", original)
    append(ctx, range(13, 14))
    assert ctx.ledger.refusal is None
    assert checkpoint_sizes(ctx) == [3, 5, 10, 12, 13]
    assert verify(ctx).size == 13


def test_writer_refuses_a_latest_checkpoint_it_did_not_sign(ctx: Any) -> None:
    signature = sql(ctx, "SELECT signature FROM ledger_checkpoints WHERE size = 12")[0][0]
    set_checkpoint(ctx, 12, "signature", bytes(64))
    with pytest.raises(IntegrityError) as info:
        append(ctx, range(13, 14))
    assert str(info.value) == (
        "checkpoint at size 12 is not signed by this ledger's checkpoint key (checkpoint at "
        "size 12: signature does not verify with the public key); refusing to build on it "
        f"{RUN_VERIFY}"
    )
    assert (seqs(ctx), checkpoint_sizes(ctx)) == (list(range(1, 13)), [3, 5, 10, 12])
    set_checkpoint(ctx, 12, "signature", bytes(signature))
    append(ctx, range(13, 14))
    assert verify(ctx).size == 13


# -- finding 7: strict types -----------------------------------------------------------
def test_version_stored_as_real(ctx: Any) -> None:
    """SQLite keeps 2.5 as REAL (it used to hash as 2 and verify); PostgreSQL's
    integer column rounds it (to 3), and the sealed copy catches the new value."""
    sql(ctx, "UPDATE ledger_events SET version = 2.5 WHERE seq = 7")
    err = failure(ctx)
    if is_sqlite(ctx):
        message = "seq 7: column 'version' holds 2.5 (REAL), expected an integer or NULL"
    else:
        message = "seq 7: plaintext field 'version' was altered (stored 3, sealed 1)"
    assert (err.seq, str(err)) == (7, message)
    sql(ctx, "UPDATE ledger_events SET version = 1 WHERE seq = 7")
    assert verify(ctx).size == 12


# SQLite's column affinity turns a number written into a text column into text
# (caught by the content checks): the type confusions it keeps are these.
SQLITE_EVENT_MUTATIONS = [
    ("seq", 7.5, "seq 7: column 'seq' holds 7.5 (REAL), expected an integer"),
    ("seq", "7x", "seq 7: missing (the next stored event is seq 8)"),  # sorts last
    ("recorded_at", b"2026", "seq 7: column 'recorded_at' holds 4 bytes (BLOB), expected text"),
    ("event_type", b"x", "seq 7: column 'event_type' holds 1 bytes (BLOB), expected text"),
    ("actor", b"alice", "seq 7: column 'actor' holds 5 bytes (BLOB), expected text"),
    ("model", b"m", "seq 7: column 'model' holds 1 bytes (BLOB), expected text or NULL"),
    ("version", 2.5, "seq 7: column 'version' holds 2.5 (REAL), expected an integer or NULL"),
    ("version", "one", "seq 7: column 'version' holds 'one' (TEXT), expected an integer or NULL"),
    ("version", b"1", "seq 7: column 'version' holds 1 bytes (BLOB), expected an integer or NULL"),
    ("index_fields", b"{}", "seq 7: column 'index_fields' holds 2 bytes (BLOB), expected text"),
    ("key_id", b"dk-000001", "seq 7: column 'key_id' holds 9 bytes (BLOB), expected text"),
    ("nonce", "abc", "seq 7: column 'nonce' holds 'abc' (TEXT), expected 12 bytes"),
    ("nonce", 12, "seq 7: column 'nonce' holds 12 (INTEGER), expected 12 bytes"),
    ("ciphertext", 7, "seq 7: column 'ciphertext' holds 7 (INTEGER), expected at least 16 bytes"),
    (
        "leaf_hash",
        "x" * 32,
        f"seq 7: column 'leaf_hash' holds '{'x' * 32}' (TEXT), expected 32 bytes",
    ),
    ("chain_hash", 0.0, "seq 7: column 'chain_hash' holds 0.0 (REAL), expected 32 bytes"),
]
# Wrong lengths and NULLs are what PostgreSQL's column types let through.
BOTH_EVENT_MUTATIONS = [
    ("nonce", b"", "seq 7: column 'nonce' holds 0 bytes (BLOB), expected 12 bytes"),
    ("nonce", b"abc", "seq 7: column 'nonce' holds 3 bytes (BLOB), expected 12 bytes"),
    ("nonce", bytes(200), "seq 7: column 'nonce' holds 200 bytes (BLOB), expected 12 bytes"),
    (
        "ciphertext",
        b"short",
        "seq 7: column 'ciphertext' holds 5 bytes (BLOB), expected at least 16 bytes",
    ),
    ("leaf_hash", bytes(31), "seq 7: column 'leaf_hash' holds 31 bytes (BLOB), expected 32 bytes"),
    ("chain_hash", b"", "seq 7: column 'chain_hash' holds 0 bytes (BLOB), expected 32 bytes"),
    (
        "model",
        None,
        "seq 7: plaintext field 'model' was altered (stored None, sealed 'credit-risk')",
    ),
    ("version", None, "seq 7: plaintext field 'version' was altered (stored None, sealed 1)"),
]


def test_event_columns_of_the_wrong_type(ctx: Any) -> None:
    """Each mutation in turn (and put back after): a VerificationFailed naming the
    seq and the column, never a TypeError, ValueError or KeyError."""
    mutations = BOTH_EVENT_MUTATIONS + (SQLITE_EVENT_MUTATIONS if is_sqlite(ctx) else [])
    rows = sql(ctx, "SELECT * FROM ledger_events ORDER BY seq")
    for column, value, message in mutations:
        seq = 1 if (column, value) == ("seq", None) else 7
        sql(ctx, f"UPDATE ledger_events SET {column} = :v WHERE seq = {seq}", {"v": value})
        err = failure(ctx)
        assert (column, err.seq, str(err)) == (column, int(message.split(":")[0][4:]), message)
        _restore(ctx, "ledger_events", rows)
        assert verify(ctx).size == 12, column


SQLITE_CHECKPOINT_MUTATIONS = [
    ("size", "5", None),  # TEXT '5' in an INTEGER column becomes 5 again: harmless
    ("size", 5.5, "database checkpoint 2 (in size order): column 'size' holds 5.5 (REAL), "
     "expected an integer"),
    ("size", "five", "database checkpoint 4 (in size order): column 'size' holds 'five' (TEXT), "
     "expected an integer"),
    ("root_hash", "r" * 32, f"database checkpoint at size 5: column 'root_hash' holds "
     f"'{'r' * 32}' (TEXT), expected 32 bytes"),
    ("issued_at", b"2026", "database checkpoint at size 5: column 'issued_at' holds 4 bytes "
     "(BLOB), expected text"),
    ("key_fingerprint", b"f", "database checkpoint at size 5: column 'key_fingerprint' holds "
     "1 bytes (BLOB), expected text"),
    ("note", b"n", "database checkpoint at size 5: column 'note' holds 1 bytes (BLOB), "
     "expected text"),
    ("note", 1.0, "database checkpoint at size 5: column 'note' differs from the note that "
     "was signed"),  # TEXT affinity: '1.0'
    ("signature", "s", "database checkpoint at size 5: column 'signature' holds 's' (TEXT), "
     "expected 64 bytes"),
    ("frontier", b"[]", "database checkpoint at size 5: column 'frontier' holds 2 bytes (BLOB), "
     "expected text"),
]  # fmt: skip
BOTH_CHECKPOINT_MUTATIONS = [
    ("size", 0, "database checkpoint at size 0: column 'size' holds 0, expected at least 1"),
    (
        "root_hash",
        bytes(31),
        "database checkpoint at size 5: column 'root_hash' holds 31 bytes (BLOB), "
        "expected 32 bytes",
    ),
    (
        "signature",
        bytes(65),
        "database checkpoint at size 5: column 'signature' holds 65 bytes (BLOB), "
        "expected 64 bytes",
    ),
]


def test_checkpoint_columns_of_the_wrong_type(ctx: Any) -> None:
    mutations = BOTH_CHECKPOINT_MUTATIONS + (SQLITE_CHECKPOINT_MUTATIONS if is_sqlite(ctx) else [])
    rows = sql(ctx, "SELECT * FROM ledger_checkpoints ORDER BY size")
    for column, value, message in mutations:
        set_checkpoint(ctx, 5, column, value)
        if message is None:
            assert verify(ctx).size == 12, column
        else:
            err = failure(ctx)
            assert (column, err.seq, str(err)) == (column, None, message)
        _restore(ctx, "ledger_checkpoints", rows)
        assert verify(ctx).size == 12, column


def test_sqlite_text_that_is_not_utf8(ctx: Any) -> None:
    if not is_sqlite(ctx):
        pytest.skip("PostgreSQL refuses text that is not valid UTF-8")
    sql(ctx, "UPDATE ledger_events SET actor = CAST(x'ff616c696365' AS TEXT) WHERE seq = 9")
    err = failure(ctx)
    assert (err.seq, str(err)) == (
        9,
        "seq 9: the database cannot return the stored row (OperationalError: a column holds "
        "bytes that are not valid text)",
    )


# -- any column of any row, any wrong value ------------------------------------------------
def _restore(ctx: Any, table: str, rows: list[Any]) -> None:
    """Put the table back exactly (rows as read with SELECT *)."""
    with ctx.engine.begin() as conn:
        conn.execute(text(f"DELETE FROM {table}"))
        columns = list(rows[0]._fields)
        marks = ", ".join(f":{c}" for c in columns)
        conn.execute(
            text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"),
            [dict(r._mapping) for r in rows],
        )


EVENT_COLUMN_NAMES = [
    "seq", "recorded_at", "event_type", "actor", "model", "version", "index_fields", "key_id",
    "nonce", "ciphertext", "leaf_hash", "chain_hash", "authenticator",
]  # fmt: skip
CHECKPOINT_COLUMN_NAMES = [
    "size", "root_hash", "issued_at", "key_fingerprint", "note", "signature", "frontier",
]  # fmt: skip
VALUES = st.one_of(
    st.none(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.binary(max_size=80),
    st.sampled_from(
        [0, 1, 7, 2.5, -1, "", "7", "[]", "{}", "null", b"", bytes(12), bytes(32), bytes(64)]
    ),
)
NAMED = re.compile(r"^(seq -?\d+(\.\.\d+)?: |database checkpoint |anchor |anchored checkpoint )")


@settings(
    max_examples=120,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    table=st.sampled_from(["ledger_events", "ledger_checkpoints"]),
    which=st.integers(min_value=0, max_value=11),
    column=st.integers(min_value=0, max_value=11),
    value=VALUES,
)
def test_any_wrong_value_anywhere_fails_naming_its_row(
    ctx: Any, table: str, which: int, column: int, value: Any
) -> None:
    """Verify passes (the mutation was harmless) or fails naming a seq or a
    checkpoint: never any other exception."""
    key, names = (
        ("seq", EVENT_COLUMN_NAMES)
        if table == "ledger_events"
        else ("size", CHECKPOINT_COLUMN_NAMES)
    )
    rows = sql(ctx, f"SELECT * FROM {table} ORDER BY {key}")
    row = rows[which % len(rows)]
    name = names[column % len(names)]
    try:
        sql(
            ctx,
            f"UPDATE {table} SET {name} = :v WHERE {key} = :k",
            {"v": value, "k": getattr(row, key)},
        )
    except (DBAPIError, StatementError, OverflowError):
        # The database refused the value (PostgreSQL's column types, NOT NULL):
        # not an example; every counted one reached the verifier.
        assume(False)
    try:
        outcome = _outcome(ctx)
    finally:
        _restore(ctx, table, rows)
    assert outcome == "intact" or NAMED.match(outcome), outcome
    assert verify(ctx).size == 12


def _outcome(ctx: Any) -> str:
    """'intact', or the failure's message (checked to start with its seq)."""
    try:
        report = verify(ctx)
    except VerificationFailed as err:
        message = str(err)
        if err.seq is not None and not message.startswith(f"seq {err.seq}"):
            return f"seq attribute {err.seq} differs from the message: {message}"
        return message
    assert report.size == 12
    return "intact"


def test_writer_refuses_to_sign_over_a_leaf_hash_of_the_wrong_length(ctx: Any) -> None:
    """Seq 11..12 left uncovered (their checkpoint row deleted), 12's leaf cut short."""
    checkpoints = sql(ctx, "SELECT * FROM ledger_checkpoints ORDER BY size")
    sql(ctx, "DELETE FROM ledger_checkpoints WHERE size = 12")
    leaf = sql(ctx, "SELECT leaf_hash FROM ledger_events WHERE seq = 12")[0][0]
    sql(ctx, "UPDATE ledger_events SET leaf_hash = :v WHERE seq = 12", {"v": bytes(31)})
    with pytest.raises(IntegrityError) as info:
        append(ctx, range(13, 14))
    assert str(info.value) == (
        "seq 12: stored leaf hash is not 32 bytes; refusing to sign a checkpoint over it "
        f"{RUN_VERIFY}"
    )
    assert (seqs(ctx), checkpoint_sizes(ctx)) == (list(range(1, 13)), [3, 5, 10])
    sql(ctx, "UPDATE ledger_events SET leaf_hash = :v WHERE seq = 12", {"v": bytes(leaf)})
    _restore(ctx, "ledger_checkpoints", checkpoints)
    append(ctx, range(13, 14))
    assert verify(ctx).size == 13
