"""Anchors of the decision log: every signed batch copied to the anchor folder's
``decisions`` sub-folder after its commit, so a truncated log fails verification.

Each test runs on SQLite and PostgreSQL (``home``: an initialised govreg home).
"""

from __future__ import annotations

import base64
import json
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ledger_helpers import (
    DECISION_GUARD_RAILS_POSTGRES,
    DECISION_GUARD_RAILS_SQLITE,
    drop_guard_rails,
)
from sqlalchemy import text

from audits.keyring import Keyring
from audits.notes import SignedNote
from audits.signing import load_private_key, load_public_key
from core.clock import utcnow
from core.db import make_engine, read_only
from serving import decisions
from serving.decisions import (
    Decision,
    DecisionLog,
    DecisionLogReport,
    DecisionVerificationFailed,
    SignedBatch,
    _Pending,
    anchor_name,
    verify_decisions,
)

GUARD_RAILS_SQLITE = DECISION_GUARD_RAILS_SQLITE
GUARD_RAILS_POSTGRES = DECISION_GUARD_RAILS_POSTGRES
NAMES = [anchor_name(n) for n in (1, 2, 3)]


def decision(i: int) -> Decision:
    return Decision(
        model="credit-pd",
        version=3,
        approval_seq=41,
        inputs={"applicant": f"a-{i}", "income": 41000 + i, "debt_ratio": 0.125},
        score=f"0.{i:04d}",
        decision="decline" if i % 3 == 0 else "approve",
        reasons=["Debt ratio too high"] if i % 3 == 0 else [],
        retention_days=762,
    )


@dataclass
class Env:
    home: Any
    engine: Any

    @property
    def keys(self) -> Path:
        return Path(self.home.path) / "keys"

    @property
    def anchors(self) -> Path:
        return Path(self.home.path) / "anchors" / "decisions"

    def log(self, **options: Any) -> DecisionLog:
        return DecisionLog(
            self.engine,
            Keyring(self.keys),
            self.keys / "checkpoint.key",
            batch_size=10,
            flush_interval=60,
            **({"anchor_dir": self.anchors} | options),
        )

    def verify(self, **options: Any) -> DecisionLogReport:
        key = load_public_key(self.keys / "checkpoint.pub")
        with read_only(self.engine) as conn:
            report = verify_decisions(
                conn, Keyring(self.keys), key, **({"anchor_dir": self.anchors} | options)
            )
            conn.rollback()
        return report

    def failure(self, **options: Any) -> DecisionVerificationFailed:
        with pytest.raises(DecisionVerificationFailed) as info:
            self.verify(**options)
        return info.value

    def sql(self, statement: str) -> Any:
        with self.engine.begin() as conn:
            result = conn.execute(text(statement))
            return result.all() if result.returns_rows else result.rowcount

    def drop_guard_rails(self) -> None:
        drop_guard_rails(self, GUARD_RAILS_SQLITE, GUARD_RAILS_POSTGRES)

    def stored(self) -> list[str]:
        """Every stored batch's signed text, in batch order."""
        with read_only(self.engine) as conn:
            rows = conn.execute(
                text(
                    "SELECT batch, first_seq, last_seq, written_at, root_hash, prev_hash, "
                    "batch_hash, key_fingerprint, signature FROM decision_batches ORDER BY batch"
                )
            ).all()
            conn.rollback()
        return [
            SignedBatch(
                batch=int(r[0]),
                first_seq=int(r[1]),
                last_seq=int(r[2]),
                written_at=r[3],
                root=bytes(r[4]),
                prev_hash=bytes(r[5]),
                batch_hash=bytes(r[6]),
                key_fingerprint=r[7],
                signature=bytes(r[8]),
            ).to_text()
            for r in rows
        ]

    def files(self) -> list[str]:
        return sorted(p.name for p in self.anchors.iterdir())


@pytest.fixture
def env(home: Any) -> Iterator[Env]:
    """30 decisions in three anchored batches of 10; guard rails dropped."""
    engine = make_engine(home.database_url)
    made = Env(home, engine)
    log = made.log()
    for i in range(1, 31):
        log.record(decision(i))
    log.close()
    made.drop_guard_rails()
    yield made
    engine.dispose()


def test_each_batch_is_anchored_as_its_signed_text(env: Env) -> None:
    assert env.files() == NAMES
    stored = env.stored()
    assert len(stored) == 3
    for name, signed in zip(NAMES, stored, strict=True):
        path = env.anchors / name
        assert path.read_text(encoding="utf-8") == signed
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    report = env.verify()
    assert (report.decisions, report.batches, report.anchors, report.warnings) == (30, 3, 3, ())
    assert ", 3 anchors, head " in report.summary()
    # without the folder: as before, no anchor counted
    assert env.verify(anchor_dir=None).anchors is None


def test_last_batch_deleted_fails_naming_it(env: Env) -> None:
    env.sql("DELETE FROM decisions WHERE batch = 3")
    env.sql("DELETE FROM decision_batches WHERE batch = 3")
    assert env.verify(anchor_dir=None).decisions == 20  # unanchored: a shorter, consistent log
    err = env.failure()
    assert str(err) == (
        "batch 3: anchored but missing from the database, which ends at batch 2 "
        "(batches deleted from the end)"
    )
    assert err.batch == 3


def test_all_batches_deleted_fails(env: Env) -> None:
    env.sql("DELETE FROM decisions")
    env.sql("DELETE FROM decision_batches")
    assert env.verify(anchor_dir=None).batches == 0
    err = env.failure()
    assert str(err) == (
        "batch 1: anchored but missing from the database, which ends at batch 0 "
        "(batches deleted from the end)"
    )
    assert err.batch == 1


def test_altered_anchor_fails(env: Env) -> None:
    path = env.anchors / NAMES[1]
    original = path.read_text(encoding="utf-8")
    # an edited byte: the signature no longer verifies
    lines = original.split("\n")
    lines[4] = lines[4].replace("Z", "+00:00") if "Z" in lines[4] else lines[4] + " "
    path.write_text("\n".join(lines), encoding="utf-8")
    err = env.failure()
    assert str(err) == (
        f"batch 2: anchor file {NAMES[1]}: signature does not verify with the pinned public key"
    )
    # a batch 2 validly signed by the key, but not the one stored: differs
    key = load_private_key(env.keys / "checkpoint.key")
    head_line, number, last_seq, digest, written_at = lines[:5]
    fpr = head_line.split(" ", 1)[1]
    other_hash = bytes(32)
    note = SignedNote(
        "govreg-decisions/v1",
        fpr,
        (number, last_seq, base64.b64encode(other_hash).decode(), written_at),
        b"",
    ).note
    sig = base64.b64encode(key.sign(note.encode())).decode()
    path.write_text(f"{note}\n\u2014 {fpr[:16]} {sig}\n", encoding="utf-8")
    assert digest != base64.b64encode(other_hash).decode()
    err = env.failure()
    assert str(err) == (
        f"batch 2: anchor file {NAMES[1]} differs from the batch stored in the database"
    )
    assert err.batch == 2
    path.write_text(original, encoding="utf-8")
    assert env.verify().anchors == 3


def test_a_missing_older_anchor_fails(env: Env) -> None:
    (env.anchors / NAMES[1]).unlink()
    err = env.failure()
    assert str(err) == (
        f"batch 2: its anchor file {NAMES[1]} is missing from the decision anchor folder"
    )


def test_newest_anchor_missing_warns_and_the_next_write_restores_it(env: Env) -> None:
    newest = env.anchors / NAMES[2]
    text_before = newest.read_text(encoding="utf-8")
    newest.unlink()  # the writer stopped between commit and anchor write
    report = env.verify()
    assert (report.anchors, report.warnings) == (
        2,
        (
            f"the newest decision batch (3) is not in the anchor folder yet ({NAMES[2]}): "
            "its writer stopped between commit and anchor write; the next batch write "
            "anchors it",
        ),
    )
    result = env.home.cli("audit", "decisions", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert (data["batches"], data["anchors"], data["warnings"]) == (3, 2, list(report.warnings))

    log = env.log()
    log.record(decision(31))
    log.close()
    assert env.files() == [*NAMES, anchor_name(4)]
    assert newest.read_text(encoding="utf-8") == text_before
    assert [(env.anchors / n).read_text(encoding="utf-8") for n in env.files()] == env.stored()
    assert (env.verify().anchors, env.verify().warnings) == (4, ())


def test_reanchoring_refuses_a_batch_the_key_did_not_sign(env: Env) -> None:
    (env.anchors / NAMES[2]).unlink()
    env.sql("UPDATE decision_batches SET written_at = '2020-01-01T00:00:00Z' WHERE batch = 3")
    log = env.log()
    try:
        with pytest.raises(DecisionVerificationFailed) as info:
            log.write_batch(
                [_Pending(utcnow(), decision(31), dict(decision(31).inputs), (), None, None)]
            )
    finally:
        log.close()
    assert str(info.value) == "batch 3: signature does not verify with the pinned public key"
    assert env.files() == NAMES[:2]
    assert len(env.stored()) == 3  # nothing written


def test_cli_fails_on_a_truncated_log(env: Env) -> None:
    env.sql("DELETE FROM decisions WHERE batch = 3")
    env.sql("DELETE FROM decision_batches WHERE batch = 3")
    result = env.home.cli("audit", "decisions")
    assert result.exit_code == 8
    assert (
        "batch 3: anchored but missing from the database, which ends at batch 2 "
        "(batches deleted from the end)"
    ) in result.output


def test_a_failed_anchor_write_keeps_the_batch_once(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    """The batch is committed before its anchor is written: an anchor write that
    fails is logged, the batch is not written again, and the next write anchors it."""
    blocker = env.anchors / anchor_name(4)
    blocker.mkdir()  # the anchor's rename fails: a folder is in the way
    log = env.log()
    with caplog.at_level("ERROR", logger="serving.decisions"):
        log.record(decision(31))
        log.flush(timeout=30)
    assert [r.getMessage() for r in caplog.records if r.name == "serving.decisions"] == [
        "decision log: batch 4 committed but its anchor not written (IsADirectoryError); "
        "the next batch write anchors it"
    ]
    assert log.last_error is None  # the batch itself was written
    assert len(env.stored()) == 4  # written once
    blocker.rmdir()
    assert env.verify().warnings == (
        f"the newest decision batch (4) is not in the anchor folder yet ({anchor_name(4)}): "
        "its writer stopped between commit and anchor write; the next batch write anchors it",
    )
    log.record(decision(32))
    log.close()
    assert env.files() == [*NAMES, anchor_name(4), anchor_name(5)]
    assert [(env.anchors / n).read_text(encoding="utf-8") for n in env.files()] == env.stored()
    assert (env.verify().anchors, env.verify().warnings) == (5, ())


def test_a_log_written_before_anchoring_warns_then_is_anchored_from_its_next_write(
    home: Any,
) -> None:
    """A home upgraded with a decision log: its batches have no anchor files. They
    are a warning, not a failure; the next write anchors the newest old batch and
    its own, and from then on a truncation fails."""
    engine = make_engine(home.database_url)
    try:
        env = Env(home, engine)
        old = env.log(anchor_dir=None)
        for i in range(1, 31):
            old.record(decision(i))
        old.close()
        assert not env.anchors.exists()
        report = env.verify()
        assert (report.batches, report.anchors) == (3, 0)
        assert report.warnings == (
            "decision batches 1..2 have no anchor files: written before the decision log "
            "was anchored (or their anchors were removed)",
            f"the newest decision batch (3) is not in the anchor folder yet ({NAMES[2]}): "
            "its writer stopped between commit and anchor write; the next batch write "
            "anchors it",
        )

        log = env.log()
        for i in range(31, 41):
            log.record(decision(i))
        log.close()
        assert env.files() == [NAMES[2], anchor_name(4)]
        report = env.verify()
        assert (report.batches, report.anchors) == (4, 2)
        assert report.warnings == (
            "decision batches 1..2 have no anchor files: written before the decision log "
            "was anchored (or their anchors were removed)",
        )

        env.drop_guard_rails()
        env.sql("DELETE FROM decisions WHERE batch = 4")
        env.sql("DELETE FROM decision_batches WHERE batch = 4")
        assert str(env.failure()).startswith("batch 4: anchored but missing from the database")
    finally:
        engine.dispose()


def test_writers_of_one_folder_take_turns_so_none_reanchors_anothers_batch(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Two writers (two server workers) of one anchor folder, on a slow disk: the
    second waits until the first's anchor is written, instead of finding that
    batch unanchored and copying it again (a false "writer stopped" warning, with
    the database's writers' lock held while its copy reaches the disk)."""
    real_write = decisions.write_anchor

    def slow_disk(anchor_dir: Path, signed: SignedBatch) -> Path:
        time.sleep(0.2)  # the anchor lands well after its batch's commit
        return real_write(anchor_dir, signed)

    monkeypatch.setattr(decisions, "write_anchor", slow_disk)
    logs = [env.log(), env.log()]
    failures: list[BaseException] = []

    def write(log: DecisionLog, first: int) -> None:
        try:
            for i in range(first, first + 3):
                d = decision(i)
                log.write_batch([_Pending(utcnow(), d, dict(d.inputs), tuple(d.reasons))])
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=write, args=(log, 31 + 3 * n)) for n, log in enumerate(logs)]
    with caplog.at_level("WARNING", logger="serving.decisions"):
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    for log in logs:
        log.close()
    assert failures == []
    assert [r.getMessage() for r in caplog.records if r.name == "serving.decisions"] == []
    assert env.files() == [anchor_name(n) for n in range(1, 10)]
    assert [(env.anchors / n).read_text(encoding="utf-8") for n in env.files()] == env.stored()
    report = env.verify()
    assert (report.batches, report.anchors, report.warnings) == (9, 9, ())
