"""The decision log: every decision recorded, encrypted, batched, signed, verified.

Each test runs on SQLite and PostgreSQL (``home`` builds an initialised govreg
home: keys, data key, schema). Writers in other processes are real processes
(this file run as a script, see ``_worker`` at the bottom), killed with SIGKILL
where the test says so.
"""

from __future__ import annotations

import base64
import math
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from hashlib import sha256
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
from ledger_helpers import (
    DECISION_GUARD_RAILS_POSTGRES,
    DECISION_GUARD_RAILS_SQLITE,
    drop_guard_rails,
    mp_context,
    postgres_dump,
    wait_for,
)
from sqlalchemy import text

from audits.keyring import Keyring
from audits.merkle import root
from audits.notes import SignedNote
from audits.signing import (
    SignedCheckpoint,
    fingerprint,
    load_private_key,
    load_public_key,
    sign_checkpoint,
)
from core.canonical import canonical_row
from core.db import make_engine, read_only
from core.errors import InputError, IntegrityError
from serving.decisions import (
    Decision,
    DecisionLog,
    DecisionLogError,
    DecisionLogReport,
    DecisionVerificationFailed,
    StoredDecision,
    batch_hash_of,
    canonical_flags,
    canonical_reason_values,
    head,
    read_decisions,
    verify_decisions,
)

SECRET = "applicant-name-Quinn-Harlow-0147"
GUARD_RAILS_SQLITE = DECISION_GUARD_RAILS_SQLITE
GUARD_RAILS_POSTGRES = DECISION_GUARD_RAILS_POSTGRES


def decision(tag: str, i: int, *, secret: str = "") -> Decision:
    return Decision(
        model="credit-pd",
        version=3,
        approval_seq=41,
        inputs={
            "applicant": f"{tag}-{i}{secret}",
            "income": 41000.5 + i,
            "age": 30 + i % 40,
            "debt_ratio": 0.125,
            "homeowner": i % 2 == 0,
            "notes": None,
        },
        score=f"0.{i % 1000:04d}",
        decision="decline" if i % 3 == 0 else "approve",
        reasons=["Debt ratio too high", "Short credit history"] if i % 3 == 0 else [],
        retention_days=762,
        flags={"out_of_range": ["income"], "unseen_category": ["housing"]} if i % 5 == 0 else {},
        reason_values=(
            [{"feature": "debt_ratio", "value": 0.125}, {"feature": "housing", "value": None}]
            if i % 3 == 0
            else []
        ),
    )


@dataclass
class Env:
    url: str
    keys: Path
    engine: Any
    keyring: Keyring

    def log(self, **options: Any) -> DecisionLog:
        return DecisionLog(self.engine, self.keyring, self.keys / "checkpoint.key", **options)

    def verify(self, **options: Any) -> DecisionLogReport:
        key = load_public_key(self.keys / "checkpoint.pub")
        with read_only(self.engine) as conn:
            report = verify_decisions(conn, Keyring(self.keys), key, **options)
            conn.rollback()
        return report

    def failure(self, **options: Any) -> DecisionVerificationFailed:
        with pytest.raises(DecisionVerificationFailed) as info:
            self.verify(**options)
        return info.value

    def read(self, **options: Any) -> list[StoredDecision]:
        with read_only(self.engine) as conn:
            rows = list(read_decisions(conn, Keyring(self.keys), **options))
            conn.rollback()
        return rows

    def sql(self, statement: str, params: dict[str, Any] | None = None) -> Any:
        with self.engine.begin() as conn:
            result = conn.execute(text(statement), params or {})
            return result.all() if result.returns_rows else result.rowcount

    def seqs(self) -> list[int]:
        return [int(r[0]) for r in self.sql("SELECT seq FROM decisions ORDER BY seq")]

    def batches(self) -> list[tuple[int, int, int]]:
        rows = self.sql("SELECT batch, first_seq, last_seq FROM decision_batches ORDER BY batch")
        return [(int(b), int(f), int(last)) for b, f, last in rows]

    def drop_guard_rails(self) -> None:
        drop_guard_rails(self, GUARD_RAILS_SQLITE, GUARD_RAILS_POSTGRES)


@pytest.fixture
def env(home: Any) -> Iterator[Env]:
    engine = make_engine(home.database_url)
    yield Env(home.database_url, home.path / "keys", engine, Keyring(home.path / "keys"))
    engine.dispose()


def _expected(stored: StoredDecision, sent: Decision) -> None:
    assert (stored.model, stored.version, stored.approval_seq) == ("credit-pd", 3, 41)
    assert stored.inputs == sent.inputs
    assert stored.input_digest == sha256(canonical_row(sent.inputs)).hexdigest()
    assert (stored.score, stored.decision, stored.reasons) == (
        sent.score,
        sent.decision,
        sent.reasons,
    )
    assert stored.flags == sent.flags
    assert stored.reason_values == sent.reason_values
    recorded = stored.recorded_at
    assert recorded.endswith("Z")
    assert len(recorded) == len("2026-11-24T12:00:00.123456Z")
    from datetime import timedelta

    from core.clock import parse

    assert parse(stored.retain_until) - parse(recorded) == timedelta(days=762)


# -- round trip -------------------------------------------------------------------------------
def test_threads_round_trip_exact_rows_and_batches(env: Env) -> None:
    """8 threads x 125 decisions, batches of 50 written only when full: exactly 20
    batches, seq 1..1000, every row read back decrypted and equal to what was sent."""
    log = env.log(batch_size=50, flush_interval=60)
    sent: dict[str, Decision] = {}

    def scorer(tag: str) -> None:
        for i in range(125):
            d = decision(tag, i)
            sent[f"{tag}-{i}"] = d
            log.record(d)

    threads = [threading.Thread(target=scorer, args=(f"t{n}",)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()

    assert env.seqs() == list(range(1, 1001))
    assert env.batches() == [(b, 50 * b - 49, 50 * b) for b in range(1, 21)]
    stored = env.read()
    assert [s.seq for s in stored] == list(range(1, 1001))
    assert sorted(s.inputs["applicant"] for s in stored) == sorted(sent)
    for s in stored:
        _expected(s, sent[s.inputs["applicant"]])
        assert s.batch == (s.seq - 1) // 50 + 1
    for n in range(8):  # one thread's decisions keep their order
        mine = [s.inputs["applicant"] for s in stored if s.inputs["applicant"].startswith(f"t{n}-")]
        assert mine == [f"t{n}-{i}" for i in range(125)]
    report = env.verify()
    assert (report.decisions, report.batches) == (1000, 20)
    fpr = fingerprint(load_public_key(env.keys / "checkpoint.pub"))
    assert report.summary() == (
        f"decision log intact: 1000 decisions in 20 signed batches, "
        f"head {report.head_hash.hex()[:16]}, verified with key {fpr}"
    )
    assert [s.seq for s in env.read(model="credit-pd")] == list(range(1, 1001))
    assert env.read(model="other") == []


def test_flush_and_close(env: Env) -> None:
    """flush() makes what was recorded durable (one batch each time); close() writes
    the rest: 1000 recorded then closed is 1000 rows, none lost."""
    log = env.log(batch_size=256, flush_interval=60)
    for i in range(7):
        log.record(decision("f", i))
    assert env.seqs() == []  # still queued: the batch is not full and not due
    log.flush()
    assert env.batches() == [(1, 1, 7)]
    for i in range(7, 10):
        log.record(decision("f", i))
    log.flush()
    log.flush()  # nothing new: no empty batch
    assert env.batches() == [(1, 1, 7), (2, 8, 10)]
    for i in range(10, 1010):
        log.record(decision("f", i))
    log.close()
    assert env.seqs() == list(range(1, 1011))
    # 1000 more: three full batches of 256 while recording, the last 232 at close
    assert env.batches()[2:] == [(3, 11, 266), (4, 267, 522), (5, 523, 778), (6, 779, 1010)]
    assert [s.inputs["applicant"] for s in env.read()] == [f"f-{i}" for i in range(1010)]
    assert env.verify().decisions == 1010
    log.close()  # idempotent
    with pytest.raises(DecisionLogError, match="closed"):
        log.record(decision("f", 0))


def test_interpreter_exit_without_close_loses_nothing(sqlite_home: Any) -> None:
    """A program that records and exits without calling close(): the atexit hook
    writes the queue (a real interpreter; multiprocessing children skip atexit)."""
    keys = sqlite_home.path / "keys"
    code = (
        "import sys; from pathlib import Path\n"
        "from audits.keyring import Keyring\n"
        "from core.db import make_engine\n"
        "from serving.decisions import Decision, DecisionLog\n"
        f"keys = Path({str(keys)!r})\n"
        f"log = DecisionLog(make_engine({sqlite_home.database_url!r}), Keyring(keys), "
        "keys / 'checkpoint.key', batch_size=1000, flush_interval=3600)\n"
        "for i in range(123):\n"
        "    log.record(Decision('credit-pd', 3, 41, {'i': i}, '0.5', 'approve', [], 762))\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    engine = make_engine(sqlite_home.database_url)
    try:
        env = Env(sqlite_home.database_url, keys, engine, Keyring(keys))
        assert [s.inputs["i"] for s in env.read()] == list(range(123))
        assert env.batches() == [(1, 1, 123)]
    finally:
        engine.dispose()


def test_flush_interval_writes_a_partial_batch(env: Env) -> None:
    log = env.log(batch_size=100, flush_interval=0.05)
    try:
        for i in range(3):
            log.record(decision("i", i))
        deadline = time.monotonic() + 5
        while not env.seqs() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert env.batches() == [(1, 1, 3)]
    finally:
        log.close()


def test_bad_decisions_are_refused_in_the_callers_thread(env: Env) -> None:
    log = env.log()
    good = decision("b", 1)
    bad_inputs: list[Any] = [
        {"income": float("nan")},
        {"income": math.inf},
        {"when": object()},
        {"nested": {"a": 1}},
        {"big": 2**60},
        {1: "not a string key"},
        {"s": "\ud800"},
    ]
    good = decision("b", 3)  # a decline: two reasons, two values
    try:
        for inputs in bad_inputs:
            with pytest.raises(InputError):
                log.record(replace(good, inputs=inputs))
            with pytest.raises(InputError):  # one bad decision refuses the request's others
                log.record_many([decision("b", 2), replace(good, inputs=inputs), decision("b", 3)])
        for change in (
            {"decision": "maybe"},
            {"retention_days": 0},
            {"reasons": [1]},
            {"flags": {"out_of_range": "income"}},
            {"reason_values": [{"feature": "x", "value": 1}]},  # two reasons, one value
            {
                "reason_values": [
                    {"feature": "x", "value": float("nan")},
                    {"feature": "y", "value": 1},
                ]
            },
        ):
            with pytest.raises(InputError):
                log.record(replace(good, **change))
    finally:
        log.close()
    assert env.seqs() == []


# -- reason values and flags (oracle: rfc8785; rows and scalars: tests/core) -----------------
def test_reason_values_and_flags_equal_rfc8785() -> None:
    import rfc8785

    values = [
        {"feature": "income", "value": 41000},
        {"feature": "debt_ratio", "value": 0.125},
        {"feature": "rate", "value": 1e-7},
        {"feature": "big", "value": 1e21},
        {"feature": "housing", "value": "own é 😀"},
        {"feature": "ctl", "value": "\x00\x1f\u2028"},
        {"feature": "ключ", "value": None},
        {"feature": "flag", "value": True},
    ]
    assert canonical_reason_values(values) == rfc8785.dumps(values)
    assert canonical_reason_values([]) == b"[]"
    flags = {"unseen_category": ["purpose", "é"], "out_of_range": ["income"], "none": []}
    assert (
        canonical_flags(flags)
        == rfc8785.dumps({"out_of_range": ["income"], "unseen_category": ["purpose", "é"]}).decode()
    )


def test_a_requests_decisions_are_written_in_one_batch(env: Env) -> None:
    """record_many: a request's decisions are never split across batches (one
    transaction each), whatever the batch size."""
    log = env.log(batch_size=5, flush_interval=60)
    sizes = [3, 3, 4, 7, 1]
    for n, size in enumerate(sizes):
        log.record_many([decision(f"r{n}", i) for i in range(size)])
    log.close()
    assert env.batches() == [(1, 1, 3), (2, 4, 6), (3, 7, 10), (4, 11, 17), (5, 18, 18)]
    batches: dict[str, set[int]] = {}
    for s in env.read():
        batches.setdefault(str(s.inputs["applicant"]).split("-")[0], set()).add(s.batch)
    assert batches == {"r0": {1}, "r1": {2}, "r2": {3}, "r3": {4}, "r4": {5}}
    assert env.verify().decisions == 18


def test_a_request_over_the_backlog_is_refused_whole(env: Env) -> None:
    log = env.log(batch_size=5, max_pending=10, flush_interval=60)
    try:
        with pytest.raises(DecisionLogError, match="10 decisions are waiting"):
            log.record_many([decision("o", i) for i in range(11)])
        log.record_many([decision("o", i) for i in range(10)])
    finally:
        log.close()
    assert env.seqs() == list(range(1, 11))


# -- tampering ------------------------------------------------------------------------------
@pytest.fixture
def written(env: Env) -> Env:
    """30 decisions in three batches of 10 (seq 1-10, 11-20, 21-30); guard rails dropped."""
    log = env.log(batch_size=10, flush_interval=60)
    for i in range(1, 31):
        log.record(decision("w", i))
    log.close()
    assert env.batches() == [(1, 1, 10), (2, 11, 20), (3, 21, 30)]
    env.drop_guard_rails()
    return env


def _row(env: Env, seq: int) -> Any:
    rows = env.sql("SELECT * FROM decisions WHERE seq = :s", {"s": seq})
    assert len(rows) == 1
    return rows[0]


def _flip(data: bytes, index: int = 0) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


def test_untouched_log_verifies(written: Env) -> None:
    report = written.verify()
    assert (report.decisions, report.batches) == (30, 3)
    stored = written.sql("SELECT batch_hash FROM decision_batches WHERE batch = 3")[0][0]
    assert report.head_hash == bytes(stored)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        (
            "score",
            "0.0001",
            "seq 17: plaintext field 'score' was altered (stored '0.0001', sealed '0.0017')",
        ),
        (
            "decision",
            "approve",
            "seq 18: plaintext field 'decision' was altered (stored 'approve', sealed 'decline')",
        ),
        (
            "reasons",
            "[]",
            "seq 18: plaintext field 'reasons' was altered (stored '[]', sealed "
            '\'["Debt ratio too high","Short credit history"]\')',
        ),
        (
            "approval_seq",
            40,
            "seq 17: plaintext field 'approval_seq' was altered (stored 40, sealed 41)",
        ),
        (
            "retain_until",
            "2020-01-01T00:00:00.000000Z",
            "seq 17: plaintext field 'retain_until' was altered",
        ),
        ("input_digest", "0" * 64, "seq 17: plaintext field 'input_digest' was altered"),
        (
            "flags",
            '{"out_of_range":["income"]}',
            "seq 17: plaintext field 'flags' was altered "
            "(stored '{\"out_of_range\":[\"income\"]}', sealed '{}')",
        ),
        ("flags", None, "seq 17: plaintext field 'flags' was altered (stored None, sealed '{}')"),
        ("model", "other", "seq 17: ciphertext fails AES-GCM authentication"),
        ("version", 2, "seq 17: ciphertext fails AES-GCM authentication"),
        ("batch", 3, "seq 17: stored record does not match its leaf hash"),
    ],
)
def test_edited_decision_field_is_named(
    written: Env, column: str, value: Any, message: str
) -> None:
    seq = 18 if column in {"decision", "reasons"} else 17
    written.sql(f"UPDATE decisions SET {column} = :v WHERE seq = :s", {"v": value, "s": seq})
    err = written.failure()
    assert str(err).startswith(message), str(err)
    assert err.seq == seq


def test_every_decision_gets_its_own_id_returned_stored_and_read_back(env: Env) -> None:
    import re

    log = env.log(batch_size=10, flush_interval=60)
    one = log.record(decision("id", 1))
    many = log.record_many([decision("id", i) for i in range(2, 6)])
    assert log.record_many([]) == []
    log.close()
    ids = [one, *many]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert len(set(ids)) == 5
    stored = env.read()
    assert [(s.seq, s.decision_id) for s in stored] == list(zip(range(1, 6), ids, strict=True))
    assert [r[0] for r in env.sql("SELECT decision_id FROM decisions ORDER BY seq")] == ids
    assert env.verify().decisions == 5


def test_decisions_written_before_ids_verify_beside_new_ones(env: Env) -> None:
    from core.clock import utcnow
    from serving.decisions import _Pending

    log = env.log(batch_size=10, flush_interval=60)
    old = decision("old", 1)
    log.write_batch([_Pending(utcnow(), old, dict(old.inputs), tuple(old.reasons))])
    new = log.record(decision("new", 2))
    log.close()
    assert [s.decision_id for s in env.read()] == [None, new]
    assert (env.verify().decisions, env.verify().batches) == (2, 2)


@pytest.mark.parametrize(
    ("value", "shown"), [("0" * 32, "'00000000000000000000000000000000'"), (None, "None")]
)
def test_an_edited_decision_id_is_named(written: Env, value: Any, shown: str) -> None:
    (original,) = written.sql("SELECT decision_id FROM decisions WHERE seq = 17")[0]
    written.sql("UPDATE decisions SET decision_id = :v WHERE seq = 17", {"v": value})
    err = written.failure()
    assert str(err) == (
        f"seq 17: plaintext field 'decision_id' was altered (stored {shown}, sealed {original!r})"
    )
    assert err.seq == 17


def test_ids_of_two_stored_decisions_cannot_be_the_same(written: Env) -> None:
    (first,) = written.sql("SELECT decision_id FROM decisions WHERE seq = 1")[0]
    with pytest.raises(sqlalchemy.exc.IntegrityError):
        written.sql("UPDATE decisions SET decision_id = :v WHERE seq = 2", {"v": first})


def test_edited_ciphertext_and_leaf(written: Env) -> None:
    ciphertext = bytes(_row(written, 12).ciphertext)
    written.sql("UPDATE decisions SET ciphertext = :c WHERE seq = 12", {"c": _flip(ciphertext, 5)})
    err = written.failure()
    assert str(err) == (
        "seq 12: ciphertext fails AES-GCM authentication "
        "(altered, or moved from another row, model or version)"
    )
    assert err.seq == 12
    written.sql("UPDATE decisions SET ciphertext = :c WHERE seq = 12", {"c": ciphertext})
    written.verify()
    leaf = bytes(_row(written, 25).leaf_hash)
    written.sql("UPDATE decisions SET leaf_hash = :l WHERE seq = 25", {"l": _flip(leaf)})
    assert str(written.failure()) == "seq 25: stored record does not match its leaf hash"


def test_swapped_ciphertexts_are_detected(written: Env) -> None:
    """Inputs moved to another decision fail authentication (associated data binds the seq)."""
    a, b = _row(written, 3), _row(written, 4)
    for target, source in ((3, b), (4, a)):
        written.sql(
            "UPDATE decisions SET nonce = :n, ciphertext = :c WHERE seq = :s",
            {"n": bytes(source.nonce), "c": bytes(source.ciphertext), "s": target},
        )
    assert written.failure().seq == 3


def test_edited_leaf_and_root_recomputed_is_caught_by_the_signature(written: Env) -> None:
    """An attacker who edits a leaf and recomputes the root and batch hash still
    cannot sign: the signature by the pinned key fails."""
    rows = written.sql("SELECT leaf_hash, seq FROM decisions WHERE batch = 2 ORDER BY seq")
    leaves = [bytes(r[0]) for r in rows]
    fake_root = root([*leaves[:-1], bytes(32)])
    written.sql("UPDATE decision_batches SET root_hash = :r WHERE batch = 2", {"r": fake_root})
    err = written.failure()
    assert str(err) == "batch 2 (seq 11..20): Merkle root does not match its decisions"
    assert (err.seq, err.batch) == (None, 2)
    true_root = root(leaves)
    written.sql("UPDATE decision_batches SET root_hash = :r WHERE batch = 2", {"r": true_root})
    written.verify()
    batch = written.sql("SELECT * FROM decision_batches WHERE batch = 2")[0]
    written.sql(
        "UPDATE decision_batches SET written_at = :w WHERE batch = 2",
        {"w": "2026-01-01T00:00:00.000000Z"},
    )
    assert str(written.failure()) == "batch 2: batch hash does not follow from its fields"
    forged = batch_hash_of(
        2, 11, 20, "2026-01-01T00:00:00.000000Z", bytes(batch.prev_hash), true_root
    )
    written.sql("UPDATE decision_batches SET batch_hash = :h WHERE batch = 2", {"h": forged})
    assert str(written.failure()) == "batch 2: signature does not verify with the pinned public key"


def test_batch_signed_by_another_key(written: Env) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = Ed25519PrivateKey.generate()
    other_fpr = fingerprint(other.public_key())
    batch = written.sql("SELECT * FROM decision_batches WHERE batch = 2")[0]
    note = SignedNote(
        "govreg-decisions/v1",
        other_fpr,
        ("2", "20", base64.b64encode(bytes(batch.batch_hash)).decode(), batch.written_at),
        b"",
    ).note
    written.sql(
        "UPDATE decision_batches SET key_fingerprint = :k, signature = :s WHERE batch = 2",
        {"k": other_fpr, "s": other.sign(note.encode())},
    )
    pinned = fingerprint(load_public_key(written.keys / "checkpoint.pub"))
    err = written.failure()
    assert str(err) == f"batch 2: signed by key {other_fpr}, not the pinned key {pinned}"
    assert err.batch == 2


def test_deleted_rows_and_batches(written: Env) -> None:
    written.sql("DELETE FROM decisions WHERE seq = 15")
    err = written.failure()
    assert str(err) == "seq 15: missing (batch 2 covers seq 11..20)"
    assert (err.seq, err.batch) == (15, 2)


def test_deleted_middle_batch(written: Env) -> None:
    written.sql("DELETE FROM decision_batches WHERE batch = 2")
    err = written.failure()
    assert str(err) == "batch 2: missing (the next stored batch is 3)"


def test_truncated_tail_needs_an_anchor(written: Env) -> None:
    """Deleting the last batch and its decisions leaves a shorter log that verifies
    on its own; the last batch note kept outside the database catches it."""
    with read_only(written.engine) as conn:
        anchor = head(conn)
        conn.rollback()
    assert anchor is not None
    assert anchor.batch == 3
    assert written.verify(anchor=anchor).batches == 3
    written.sql("DELETE FROM decisions WHERE batch = 3")
    written.sql("DELETE FROM decision_batches WHERE batch = 3")
    assert written.verify().decisions == 20  # without an anchor: a shorter, consistent log
    err = written.failure(anchor=anchor)
    assert str(err) == (
        "batch 3: missing; the anchor was signed at batch 3 (batches deleted from the end)"
    )


def test_uncovered_decision(written: Env) -> None:
    row = _row(written, 30)
    values = dict(row._mapping)
    values["seq"] = 31
    columns = ", ".join(values)
    insert = f"INSERT INTO decisions ({columns}) VALUES ({', '.join(':' + c for c in values)})"
    with pytest.raises(sqlalchemy.exc.IntegrityError):  # a verbatim copy repeats its id
        written.sql(insert, values)
    written.sql(insert, {**values, "decision_id": "f" * 32})
    assert str(written.failure()) == "seq 31: not covered by any signed batch"


def test_notes_are_not_ledger_checkpoints(written: Env) -> None:
    """Same key, distinct origin: a batch note never passes as a ledger checkpoint
    and a ledger checkpoint's signature never passes as a batch's."""
    key = load_private_key(written.keys / "checkpoint.key")
    public = key.public_key()
    with read_only(written.engine) as conn:
        batch = head(conn)
        conn.rollback()
    assert batch is not None
    assert batch.note.startswith("govreg-decisions/v1 ")
    with pytest.raises(IntegrityError, match="not a govreg checkpoint"):
        SignedCheckpoint.from_text(batch.to_text(), source="decision note")
    as_checkpoint = SignedCheckpoint(
        batch.last_seq, batch.batch_hash, batch.written_at, batch.key_fingerprint, batch.signature
    )
    with pytest.raises(IntegrityError, match="signature does not verify"):
        as_checkpoint.verify(public)
    ledger_cp = sign_checkpoint(key, batch.last_seq, batch.batch_hash, batch.written_at)
    forged = replace(batch, signature=ledger_cp.signature)
    with pytest.raises(DecisionVerificationFailed, match="signature does not verify"):
        forged.verify(public)


# -- what someone reading the database sees ------------------------------------------------
def _database_dump(env: Env) -> bytes:
    if env.engine.dialect.name == "sqlite":
        db = Path(env.engine.url.database)
        files = [db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")]
        return b"".join(f.read_bytes() for f in files if f.exists())
    return postgres_dump(env.engine)


def test_inputs_never_in_plaintext(env: Env) -> None:
    log = env.log(batch_size=4)
    for i in range(10):
        log.record(decision("p", i, secret=SECRET))
    log.close()
    assert all(SECRET in s.inputs["applicant"] for s in env.read())
    forbidden = [SECRET.encode(), SECRET.encode("utf-16-le"), SECRET.encode().hex().encode()]
    for _ in range(2):  # before and after the WAL is folded into the database file
        dump = _database_dump(env)
        assert b"Debt ratio too high" in dump  # plaintext columns are there: the control
        for form in forbidden:
            assert form not in dump
        if env.engine.dialect.name == "sqlite":
            env.engine.dispose()
            raw = sqlite3.connect(env.engine.url.database, isolation_level=None)
            try:
                busy, _, _ = raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                assert busy == 0
            finally:
                raw.close()
    assert env.verify().decisions == 10


# -- guard rails ----------------------------------------------------------------------------
def test_update_delete_truncate_are_refused(env: Env) -> None:
    log = env.log(batch_size=5)
    for i in range(5):
        log.record(decision("g", i))
    log.close()
    statements = [
        ("decisions", "UPDATE", "UPDATE decisions SET score = '0.5' WHERE seq = 1"),
        ("decisions", "DELETE", "DELETE FROM decisions WHERE seq = 5"),
        ("decision_batches", "UPDATE", "UPDATE decision_batches SET root_hash = NULL"),
        ("decision_batches", "DELETE", "DELETE FROM decision_batches"),
    ]
    if env.engine.dialect.name == "postgresql":
        statements += [
            ("decisions", "TRUNCATE", "TRUNCATE decisions"),
            ("decision_batches", "TRUNCATE", "TRUNCATE decision_batches CASCADE"),
        ]
    for table, action, statement in statements:
        with pytest.raises(sqlalchemy.exc.DBAPIError) as info:
            env.sql(statement)
        assert f"{table} is append-only: {action} refused" in str(info.value.orig), statement
    assert env.seqs() == [1, 2, 3, 4, 5]
    assert env.verify().decisions == 5


# -- processes ------------------------------------------------------------------------------
# Writers are real processes from the ledger tests' forkserver (preloaded with
# SQLAlchemy, psycopg, cryptography and govreg), so they start in milliseconds.
@dataclass
class Worker:
    proc: Any
    pipe: Any

    def expect(self, message: str, timeout: float = 60) -> None:
        wait_for(self.pipe, message, timeout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.join(30)
        assert self.proc.exitcode == -signal.SIGKILL
        self.close()

    def close(self) -> None:
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join(30)
        self.proc.close()
        self.pipe.close()


def _spawn(env: Env, mode: str, tag: str) -> Worker:
    mp = mp_context()
    parent, child = mp.Pipe()
    proc = mp.Process(target=_worker, args=(mode, env.url, str(env.keys), tag, child))
    proc.start()
    child.close()
    return Worker(proc, parent)


def _applicants(env: Env, tag: str) -> list[int]:
    return [
        int(s.inputs["applicant"].split("-")[1])
        for s in env.read()
        if s.inputs["applicant"].startswith(tag + "-")
    ]


def test_sigkill_loses_only_the_queued_decisions(env: Env) -> None:
    """A writer flushes 200 decisions (4 batches of 50), queues 30 more (less than
    a batch, flush interval 60 s) and is killed: the database holds exactly the
    4 flushed batches, which verify; the loss is the 30 queued (< batch_size)."""
    worker = _spawn(env, "crash", "c")
    worker.expect("flushed")
    worker.expect("queued")
    worker.kill()
    assert env.batches() == [(1, 1, 50), (2, 51, 100), (3, 101, 150), (4, 151, 200)]
    assert _applicants(env, "c") == list(range(200))
    assert env.verify().decisions == 200


def test_sigkill_while_writing_leaves_whole_batches(env: Env) -> None:
    """Writers recording continuously are killed at random moments: every stored
    batch is whole and verifies, and what each writer committed is a prefix of
    what it recorded (the loss is its tail, never a hole)."""
    rng = random.Random(11)
    for n in range(3):
        worker = _spawn(env, "stream", f"s{n}")
        worker.expect("writing")
        time.sleep(rng.uniform(0.02, 0.3))
        worker.kill()
        report = env.verify()
        assert env.seqs() == list(range(1, report.decisions + 1))
        done = _applicants(env, f"s{n}")
        assert done == list(range(len(done)))
        assert len(done) >= 10


def test_two_processes_write_concurrently(env: Env) -> None:
    """Two processes, 300 decisions each in batches of 7 (flush interval 60 s: only
    full batches, the rest at close): 600 gapless decisions in 2 x 43 batches."""
    workers = [_spawn(env, "concurrent", f"m{n}") for n in range(2)]
    try:
        for worker in workers:
            worker.expect("ready")
        for worker in workers:
            worker.pipe.send("go")
        for worker in workers:
            worker.expect("done")
            worker.proc.join(60)
            assert worker.proc.exitcode == 0
    finally:
        for worker in workers:
            worker.close()
    assert env.seqs() == list(range(1, 601))
    assert len(env.batches()) == 86
    for n in range(2):
        assert _applicants(env, f"m{n}") == list(range(300))
    assert env.verify().decisions == 600


# -- the worker (runs in a forkserver child) ---------------------------------------------------
def _worker(mode: str, url: str, keys: str, tag: str, pipe: Any) -> None:
    engine = make_engine(url)
    keyring = Keyring(Path(keys))
    signing = Path(keys) / "checkpoint.key"
    if mode == "crash":
        log = DecisionLog(engine, keyring, signing, batch_size=50, flush_interval=60)
        for i in range(200):
            log.record(decision(tag, i))
        log.flush()
        pipe.send("flushed")
        for i in range(200, 230):
            log.record(decision(tag, i))
        pipe.send("queued")
        time.sleep(120)
    elif mode == "stream":
        log = DecisionLog(engine, keyring, signing, batch_size=10, flush_interval=0.01)
        i = 0
        while True:
            for _ in range(10):
                log.record(decision(tag, i))
                i += 1
            if i == 10:
                log.flush()
                pipe.send("writing")
            time.sleep(0.002)
    elif mode == "concurrent":
        log = DecisionLog(engine, keyring, signing, batch_size=7, flush_interval=60)
        with engine.begin() as conn:  # connect and unwrap the key before "go"
            keyring.cipher(conn, keyring.active_key_id(conn))
        pipe.send("ready")
        assert pipe.recv() == "go"
        for i in range(300):
            log.record(decision(tag, i))
        log.close()
        pipe.send("done")
    engine.dispose()
