"""The tally of refusals in the service layer, with a clock the test moves: when
an interval's count reaches the ledger, and the limit (SQLite and PostgreSQL).
The HTTP side, with a real server and two workers: tests/api/test_denial_limits.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.errors import PermissionDenied, TooManyRequests
from registry.denials import DenialLimits
from registry.roles import Action

T0 = datetime(2026, 12, 2, 12, 0, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def at(self, seconds: float) -> None:
        self.now = T0 + timedelta(seconds=seconds)


def _registry(kit: Any, clock: Clock, *, limit: int = 100) -> Any:
    from registry.services import Registry

    return Registry(
        kit.ctx.engine,
        kit.ctx.ledger,
        kit.registry.store,
        clock=clock,
        denial_limits=DenialLimits(interval=60, limit=limit),
    )


def _refuse(registry: Any, principal: Any, action: Action, times: int = 1) -> None:
    for _ in range(times):
        with pytest.raises(PermissionDenied):
            registry.authorize(principal, action)


def _trail(kit: Any, since: int) -> list[tuple[Any, ...]]:
    out: list[tuple[Any, ...]] = []
    for event in kit.events(types=["access.denied", "access.denied.aggregated"]):
        if event.seq <= since:
            continue
        if event.type == "access.denied":
            out.append((event.type, event.actor, event.data["action"]))
        else:
            data = event.data
            counted = (data["count"], data["rate_limited"], data["first_at"], data["last_at"])
            out.append((event.type, event.actor, data["action"], *counted))
    return out


def test_the_next_refusal_after_the_interval_appends_its_count_first(kit: Any) -> None:
    clock = Clock()
    registry = _registry(kit, clock)
    auditor = kit["auditor-1"]
    since = kit.size()
    _refuse(registry, auditor, Action.PROMOTE)
    clock.at(10)
    _refuse(registry, auditor, Action.PROMOTE, 2)
    clock.at(59)
    _refuse(registry, auditor, Action.PROMOTE)
    assert _trail(kit, since) == [("access.denied", "auditor-1", "promote")]
    kit.verify()  # counts pending in the tally are not the projection's: still verifies
    clock.at(60)  # the interval [0, 60) has ended: its 3 counted refusals come first
    _refuse(registry, auditor, Action.PROMOTE)
    assert _trail(kit, since) == [
        ("access.denied", "auditor-1", "promote"),
        (
            "access.denied.aggregated",
            "auditor-1",
            "promote",
            3,
            0,
            "2026-12-02T12:00:10.000000Z",
            "2026-12-02T12:00:59.000000Z",
        ),
        ("access.denied", "auditor-1", "promote"),  # and opens the next interval
    ]
    kit.verify()


def test_a_flush_appends_ended_intervals_and_every_count_only_when_asked(kit: Any) -> None:
    clock = Clock()
    registry = _registry(kit, clock)
    auditor, service = kit["auditor-1"], kit["service-1"]
    since = kit.size()
    _refuse(registry, auditor, Action.SIGN, 3)  # interval [0, 60)
    clock.at(30)
    _refuse(registry, service, Action.READ, 2)  # interval [30, 90)
    clock.at(61)
    assert [e.data["count"] for e in registry.flush_denials()] == [2]  # auditor's only
    clock.at(62)
    assert [(e.actor, e.data["count"]) for e in registry.flush_denials(every=True)] == [
        ("service-1", 1)
    ]
    # flushed early, the service's interval stays open: its next refusal is counted
    _refuse(registry, service, Action.READ)
    assert registry.flush_denials() == []  # not ended yet
    clock.at(90)
    assert [(e.actor, e.data["count"]) for e in registry.flush_denials()] == [("service-1", 1)]
    assert registry.flush_denials(every=True) == []
    trail = _trail(kit, since)
    assert [t[:4] for t in trail] == [
        ("access.denied", "auditor-1", "sign"),
        ("access.denied", "service-1", "read"),
        ("access.denied.aggregated", "auditor-1", "sign", 2),
        ("access.denied.aggregated", "service-1", "read", 1),
        ("access.denied.aggregated", "service-1", "read", 1),
    ]
    assert 2 + sum(t[3] for t in trail[2:]) == 3 + 3  # every refusal counted once
    kit.verify()


def test_refusals_over_the_limit_are_too_many_requests_and_counted(kit: Any) -> None:
    clock = Clock()
    registry = _registry(kit, clock, limit=3)
    auditor = kit["auditor-1"]
    since = kit.size()
    _refuse(registry, auditor, Action.SIGN, 2)
    _refuse(registry, auditor, Action.PROMOTE)  # the limit is per principal, all actions
    clock.at(20.5)
    with pytest.raises(TooManyRequests) as caught:
        registry.authorize(auditor, Action.SIGN)
    assert caught.value.retry_after == 40  # the rest of the interval, rounded up
    assert str(caught.value) == (
        "too many refused requests from 'auditor-1': over 3 in 60 s (GOVREG_DENIAL_LIMIT); "
        "retry after 40 s"
    )
    # a request the principal may make is not refused for its refusals
    registry.authorize(auditor, Action.READ)
    with pytest.raises(TooManyRequests):
        registry.authorize(auditor, Action.RETIRE)  # a 429 is only counted, even a first
    clock.at(60)  # a new interval: refused, not limited
    _refuse(registry, auditor, Action.RETIRE)
    registry.flush_denials(every=True)
    assert [t[:5] for t in _trail(kit, since)] == [
        ("access.denied", "auditor-1", "sign"),
        ("access.denied", "auditor-1", "promote"),
        ("access.denied.aggregated", "auditor-1", "sign", 2, 1),
        ("access.denied.aggregated", "auditor-1", "retire", 2, 1),
    ]
    kit.verify()


def test_every_table_is_ledger_projection_decision_log_or_declared_not_projected() -> None:
    """``audit verify`` compares the projection tables with the replay; the tally
    tables are left out of it on purpose, by name, not by oversight."""
    from sqlmodel import SQLModel

    import audits.tables
    import serving.tables
    from registry.tables import NOT_PROJECTED, PROJECTION_TABLES

    ledger = {
        audits.tables.EVENTS_TABLE,
        audits.tables.CHECKPOINTS_TABLE,
        audits.tables.DATA_KEYS_TABLE,
        audits.tables.EXPIRING_KEYS_TABLE,
        audits.tables.NODES_TABLE,
    }
    decisions = {serving.tables.DECISIONS_TABLE, serving.tables.DECISION_BATCHES_TABLE}
    assert {"denial_tally", "denial_rate"} == NOT_PROJECTED
    assert not NOT_PROJECTED & set(PROJECTION_TABLES)
    assert set(SQLModel.metadata.tables) == (
        ledger | set(PROJECTION_TABLES) | decisions | NOT_PROJECTED
    )


def test_the_flusher_appends_ended_intervals_and_every_count_when_stopped(kit: Any) -> None:
    """A server worker's flusher (govreg.api.denials) with the registry's clock moved
    by the test: it appends an interval's count once the interval has ended, and
    every count when it stops."""
    import time

    from govreg.api.denials import DenialFlusher

    clock = Clock()
    registry = _registry(kit, clock)
    since = kit.size()
    _refuse(registry, kit["auditor-1"], Action.SIGN, 3)  # interval [0, 60)
    clock.at(30)
    _refuse(registry, kit["service-1"], Action.READ, 2)  # interval [30, 90)
    flusher = DenialFlusher(registry, 0.05)
    flusher.start()
    try:
        clock.at(60)  # the auditor's interval has ended, the service's has not
        deadline = time.monotonic() + 30
        while len(_trail(kit, since)) < 3:
            assert time.monotonic() < deadline, "the flusher appended nothing within 30 s"
            time.sleep(0.05)
        assert [t[:4] for t in _trail(kit, since)][2:] == [
            ("access.denied.aggregated", "auditor-1", "sign", 2)
        ]
    finally:
        flusher.stop()  # appends the service's open count too
    assert [t[:4] for t in _trail(kit, since)] == [
        ("access.denied", "auditor-1", "sign"),
        ("access.denied", "service-1", "read"),
        ("access.denied.aggregated", "auditor-1", "sign", 2),
        ("access.denied.aggregated", "service-1", "read", 1),
    ]
    kit.verify()
