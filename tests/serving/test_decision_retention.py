"""Retention of the decision log by crypto-shredding.

Decisions are recorded with an injected clock so that their retention ends in
five consecutive months around the current one: three months already over,
the current month, the next month. A purge now destroys exactly the three
past months' keys. The months are relative to the real date because the
key table's guard rail compares with the database's own clock.
Each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from ledger_helpers import postgres_dump
from sqlalchemy import text

from audits.keyring import Keyring
from audits.signing import load_public_key
from core.clock import isoformat, utcnow
from core.db import make_engine, read_only
from core.errors import IntegrityError
from serving.decisions import (
    Decision,
    DecisionLog,
    DecisionLogReport,
    DecisionVerificationFailed,
    PurgeReport,
    StoredDecision,
    associated_data,
    purge_expired,
    read_decisions,
    retention_period,
    verify_decisions,
)

RETENTION = 762
PER_MONTH = 4
SECRET = "applicant-Rowan-Ellery-0993"


def _month(moment: datetime, offset: int) -> datetime:
    """Noon on the 15th of the month ``offset`` months from ``moment``'s."""
    index = moment.year * 12 + moment.month - 1 + offset
    return datetime(index // 12, index % 12 + 1, 15, 12, tzinfo=UTC)


NOW = utcnow()
OFFSETS = (-3, -2, -1, 0, 1)  # months of retain_until, relative to now
PERIODS = [f"{_month(NOW, o):%Y-%m}" for o in OFFSETS]
EXPIRED = PERIODS[:3]
LIVE = PERIODS[3:]


def _decision(month: str, i: int) -> Decision:
    return Decision(
        model="credit-pd",
        version=3,
        approval_seq=41,
        inputs={"applicant": f"{month}-{i}-{SECRET}", "income": 52000 + i, "debt_ratio": 0.25},
        score=f"0.{i:04d}",
        decision="decline" if i % 2 else "approve",
        reasons=["Debt ratio too high"] if i % 2 else [],
        retention_days=RETENTION,
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

    def keyring(self) -> Keyring:
        return Keyring(self.keys)

    def sql(self, statement: str, params: dict[str, Any] | None = None) -> Any:
        with self.engine.begin() as conn:
            result = conn.execute(text(statement), params or {})
            return result.all() if result.returns_rows else result.rowcount

    def verify(self, now: datetime | None = None) -> DecisionLogReport:
        key = load_public_key(self.keys / "checkpoint.pub")
        with read_only(self.engine) as conn:
            report = verify_decisions(conn, self.keyring(), key, anchor_dir=self.anchors, now=now)
            conn.rollback()
        return report

    def read(self, now: datetime | None = None) -> list[StoredDecision]:
        with read_only(self.engine) as conn:
            rows = list(read_decisions(conn, self.keyring(), now=now))
            conn.rollback()
        return rows

    def purge(self, now: datetime) -> PurgeReport:
        with self.engine.begin() as conn:
            return purge_expired(conn, self.keyring(), now=now)

    def key_ids(self) -> list[str]:
        return [r[0] for r in self.sql("SELECT key_id FROM expiring_data_keys ORDER BY key_id")]


@pytest.fixture
def env(home: Any) -> Iterator[Env]:
    engine = make_engine(home.database_url)
    made = Env(home, engine)
    moment = {"at": NOW}
    log = DecisionLog(
        engine,
        made.keyring(),
        made.keys / "checkpoint.key",
        batch_size=7,  # batches mix months
        flush_interval=60,
        clock=lambda: moment["at"],
        anchor_dir=made.anchors,
    )
    for offset in OFFSETS:  # recorded so that retain_until falls in that month
        moment["at"] = _month(NOW, offset) - timedelta(days=RETENTION)
        for i in range(PER_MONTH):
            log.record(_decision(f"{_month(NOW, offset):%Y-%m}", i))
    log.close()
    yield made
    engine.dispose()


def test_keys_per_month_of_retention(env: Env) -> None:
    assert env.key_ids() == [f"decisions/{p}" for p in PERIODS]
    rows = env.sql("SELECT period, expires_at FROM expiring_data_keys ORDER BY period")
    for (period, expires_at), offset in zip(rows, OFFSETS, strict=True):
        assert period == f"{_month(NOW, offset):%Y-%m}"
        assert expires_at == isoformat(_month(NOW, offset + 1).replace(day=1, hour=0))
    stored = env.read()
    assert len(stored) == 5 * PER_MONTH
    for s in stored:
        assert s.key_id == f"decisions/{s.retain_until[:7]}"
        assert s.inputs is not None
        assert s.inputs["applicant"].startswith(s.retain_until[:7])
    assert retention_period(datetime(2027, 12, 31, 23, 59, tzinfo=UTC)) == (
        "2027-12",
        datetime(2028, 1, 1, tzinfo=UTC),
    )
    report = env.verify()
    assert (report.decisions, report.erased, report.erased_keys) == (20, 0, ())


def _database_dump(env: Env) -> bytes:
    if env.engine.dialect.name == "sqlite":
        env.engine.dispose()
        raw = sqlite3.connect(env.engine.url.database, isolation_level=None)
        try:
            assert raw.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
        finally:
            raw.close()
        return Path(env.engine.url.database).read_bytes()
    return postgres_dump(env.engine)


def test_purge_erases_exactly_the_expired_months(env: Env) -> None:
    wrapped = {r[0]: bytes(r[1]) for r in env.sql("SELECT key_id, wrapped FROM expiring_data_keys")}
    before = {s.seq: s for s in env.read()}

    # before any month is over: nothing to erase
    early = env.purge(_month(NOW, -3).replace(day=1))
    assert early.keys == ()
    assert env.key_ids() == [f"decisions/{p}" for p in PERIODS]

    report = env.purge(NOW)
    assert [(k.key_id, k.period, k.decisions) for k in report.keys] == [
        (f"decisions/{p}", p, PER_MONTH) for p in EXPIRED
    ]
    assert report.decisions == 3 * PER_MONTH
    assert report.data()["keys"][0]["expires_at"] == isoformat(
        _month(NOW, -2).replace(day=1, hour=0)
    )
    assert env.key_ids() == [f"decisions/{p}" for p in LIVE]

    # read: erased decisions keep every audit field, inputs None; the rest intact
    after = env.read()
    assert [s.seq for s in after] == sorted(before)
    for s in after:
        old = before[s.seq]
        erased = s.retain_until[:7] in EXPIRED
        assert s.erased is erased
        assert s.inputs == (None if erased else old.inputs)
        assert (s.score, s.decision, s.reasons, s.input_digest, s.retain_until) == (
            old.score,
            old.decision,
            old.reasons,
            old.input_digest,
            old.retain_until,
        )
    assert sum(s.erased for s in after) == 3 * PER_MONTH

    # verify: everything still verifies, erased counted
    report_v = env.verify()
    assert (report_v.decisions, report_v.erased) == (5 * PER_MONTH, 3 * PER_MONTH)
    # purging deletes keys, not batches: every batch still equals its anchor
    assert (report_v.anchors, report_v.warnings) == (report_v.batches, ())
    assert report_v.erased_keys == tuple(f"decisions/{p}" for p in EXPIRED)
    assert f"{3 * PER_MONTH} past retention with inputs erased" in report_v.summary()

    # the raw database: no erased key's bytes, and no remaining key opens an erased row
    dump = _database_dump(env)
    for key_id, blob in wrapped.items():
        present = blob in dump or blob.hex().encode() in dump  # PostgreSQL's text is hex
        assert present is (key_id.removeprefix("decisions/") in LIVE), key_id
    keyring = env.keyring()
    ledger_key_ids = [r[0] for r in env.sql("SELECT key_id FROM ledger_data_keys")]
    with read_only(env.engine) as conn:
        live = [keyring.expiring_cipher(conn, f"decisions/{p}") for p in LIVE]
        ledger_keys = [keyring.cipher(conn, key_id) for key_id in ledger_key_ids]
        conn.rollback()
    rows = env.sql(
        "SELECT seq, model, version, key_id, nonce, ciphertext, retain_until FROM decisions"
    )
    for seq, model, version, key_id, nonce, ciphertext, retain_until in rows:
        if retain_until[:7] not in EXPIRED:
            continue
        for aes in [*live, *ledger_keys]:
            assert isinstance(aes, AESGCM)
            with pytest.raises(InvalidTag):
                aes.decrypt(
                    bytes(nonce), bytes(ciphertext), associated_data(seq, model, version, key_id)
                )

    # again: a no-op
    assert env.purge(NOW).keys == ()
    assert env.verify().erased == 3 * PER_MONTH


def test_destroying_a_live_key_is_refused_and_detected(env: Env) -> None:
    live = f"decisions/{LIVE[0]}"
    # the service refuses before the expiry
    keyring = env.keyring()
    with env.engine.begin() as conn:
        key = next(k for k in keyring.expiring_keys(conn, purpose="decisions") if k.key_id == live)
        with pytest.raises(IntegrityError, match="refusing to destroy it"):
            keyring.destroy_expiring(conn, key, now=NOW)
    # the guard rail refuses a raw DELETE (and any UPDATE but a re-wrap)
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="key not expired yet: DELETE refused"):
        env.sql("DELETE FROM expiring_data_keys WHERE key_id = :k", {"k": live})
    with pytest.raises(sqlalchemy.exc.DBAPIError, match="UPDATE refused"):
        env.sql(
            "UPDATE expiring_data_keys SET expires_at = '2000-01-01T00:00:00.000000Z' "
            "WHERE key_id = :k",
            {"k": live},
        )
    if env.engine.dialect.name == "postgresql":
        with pytest.raises(sqlalchemy.exc.DBAPIError, match="TRUNCATE refused"):
            env.sql("TRUNCATE expiring_data_keys")
    assert env.key_ids() == [f"decisions/{p}" for p in PERIODS]

    # someone who drops the guard rail and deletes the live key is caught
    if env.engine.dialect.name == "sqlite":
        env.sql("DROP TRIGGER expiring_data_keys_no_early_delete")
    else:
        env.sql("DROP TRIGGER expiring_data_keys_guard ON expiring_data_keys")
    env.sql("DELETE FROM expiring_data_keys WHERE key_id = :k", {"k": live})
    first = 3 * PER_MONTH + 1  # the first decision of the current month
    with pytest.raises(DecisionVerificationFailed) as info:
        env.verify()
    assert str(info.value).startswith(
        f"seq {first}: data key {live} is missing, but the decision must be kept until "
    )
    assert info.value.seq == first
    with pytest.raises(DecisionVerificationFailed, match="a live key was deleted"):
        env.read()


def test_a_purged_key_verifies_only_after_its_period(env: Env) -> None:
    env.purge(NOW)
    # an auditor who (wrongly) believes it is still three months ago sees a deleted live key
    with pytest.raises(DecisionVerificationFailed, match="a live key was deleted") as info:
        env.verify(now=_month(NOW, -3))
    assert info.value.seq == 1
    assert env.verify(now=NOW).erased == 3 * PER_MONTH


def test_kek_rotation_rewraps_the_decision_keys(env: Env) -> None:
    result = env.home.cli("keys", "rotate-kek", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["rewrapped"] == 1 + len(PERIODS)
    kek_ids = {r[0] for r in env.sql("SELECT kek_id FROM expiring_data_keys")}
    assert kek_ids == {r[0] for r in env.sql("SELECT kek_id FROM ledger_data_keys")}
    assert all(s.inputs is not None for s in env.read())
    assert env.verify().decisions == 5 * PER_MONTH


def test_cli_purge_is_admin_only_recorded_and_idempotent(env: Env) -> None:
    home = env.home
    person = home.cli("persons", "create", "auditor-1", "--display", "auditor")
    assert person.exit_code == 0, person.output
    made = home.cli(
        "principals", "create", "auditor-1", "--role", "auditor", "--person", "auditor-1", "--json"
    )
    assert made.exit_code == 0, made.output
    auditor_key = json.loads(made.output)["api_key"]
    denied = home.cli("decisions", "purge", api_key=auditor_key)
    assert denied.exit_code != 0
    assert "may not purge decisions" in denied.output
    assert env.key_ids() == [f"decisions/{p}" for p in PERIODS]

    def purged_events() -> list[dict[str, Any]]:
        log = json.loads(home.cli("audit", "log", "--json").output)
        return [e for e in log if e["type"] == "decisions.purged"]

    result = home.cli("decisions", "purge", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["decisions"] == 3 * PER_MONTH
    assert [k["period"] for k in data["keys"]] == EXPIRED
    events = purged_events()
    assert len(events) == 1
    assert events[0]["actor"] == "admin"
    assert events[0]["data"]["keys"] == data["keys"]
    assert events[0]["index"] == {
        "decisions": 3 * PER_MONTH,
        "keys": ",".join(f"decisions/{p}" for p in EXPIRED),
    }

    again = home.cli("decisions", "purge", "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["keys"] == []
    assert len(purged_events()) == 1  # nothing destroyed, nothing recorded

    verified = home.cli("audit", "verify", "--json")
    assert verified.exit_code == 0, verified.output
    assert json.loads(verified.output)["ok"] is True
    decisions = home.cli("audit", "decisions", "--model", "credit-pd", "--json")
    assert decisions.exit_code == 0, decisions.output
    listed = json.loads(decisions.output)
    assert (listed["decisions"], listed["erased"]) == (5 * PER_MONTH, 3 * PER_MONTH)
    assert sum(row["erased"] for row in listed["listed"]) == 3 * PER_MONTH
    assert listed["warnings"] == []
    assert (listed["batches"], listed["anchors"]) == (3, 3)
    human = home.cli("audit", "decisions", "--model", "credit-pd").output
    assert human.count("[inputs erased: past retention]") == 3 * PER_MONTH


def test_a_key_destroyed_without_a_recorded_purge_is_reported(env: Env) -> None:
    env.purge(NOW)  # the keys go, but no ledger event says so
    result = env.home.cli("audit", "decisions", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["erased"] == 3 * PER_MONTH
    assert data["warnings"] == [
        f"data key decisions/{p} was destroyed without a recorded purge "
        "(its retention had ended, so the erasure itself is allowed)"
        for p in EXPIRED
    ]
