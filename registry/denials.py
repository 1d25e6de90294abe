"""Refusals counted, not appended one by one; the limit on them.

Every refusal (a 403, a revoked or expired key, a credential the server does
not know) is counted. For each *subject* (``principal:<name>``, or
``address:<ip>`` for callers without a valid credential) and action:

1. the first refusal of an interval is recorded at once as ``access.denied``
   (so a single 403 shows in the trail immediately), and opens the interval
   (``GOVREG_DENIAL_INTERVAL_SECONDS``); refusals of callers without a valid
   credential, and those answered 429, are only counted;
2. further refusals in that interval are counted in ``denial_tally``;
3. once the interval has ended, what it counted is appended as one
   ``access.denied.aggregated`` event (the count, how many of them were
   answered 429, the first and last time): at the subject's next refusal of
   that action, at a server's periodic flush, or when ``govreg audit
   flush-denials`` (or a server's shutdown) flushes every count at once.

Each subject's refusals in its interval are also counted in ``denial_rate``;
past ``GOVREG_DENIAL_LIMIT`` a refusal is answered 429 with ``Retry-After``
(the rest of the interval) instead of 401 or 403, and counted all the same.
A request the caller may make is never refused for earlier refusals.

Every function here runs inside the caller's write transaction (the
registry's, which holds the writers' lock), so two workers never count the
same refusal twice nor lose one, on SQLite and PostgreSQL alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from audits.events import EventType, NewEvent
from core.clock import isoformat, parse

if TYPE_CHECKING:
    from sqlalchemy import Table
    from sqlalchemy.engine import Connection

TALLY = "denial_tally"
RATE = "denial_rate"
# the actor of a refusal whose caller has no valid credential
UNAUTHENTICATED = "unauthenticated"


@dataclass(frozen=True)
class DenialLimits:
    """``interval`` seconds per tally and rate window; ``limit`` refusals per subject
    per window before they are answered 429."""

    interval: float = 60.0
    limit: int = 120


@dataclass(frozen=True)
class Denial:
    """One refusal. ``immediate``: recorded at once when it opens its interval (False
    for callers without a valid credential: they are only counted)."""

    subject: str
    actor: str
    role: str | None
    action: str
    reason: str
    model: str | None = None
    version: int | None = None
    immediate: bool = True


@dataclass(frozen=True)
class Counted:
    """What counting one refusal asks of the ledger, and whether it is over the limit
    (then ``retry_after`` seconds until its subject's interval ends)."""

    events: list[NewEvent]
    retry_after: int | None


def _table(name: str) -> Table:
    from registry.tables import DenialRateRow, DenialTallyRow

    rows: dict[str, Any] = {TALLY: DenialTallyRow, RATE: DenialRateRow}
    table: Table = rows[name].__table__
    return table


def denied_event(denial: Denial) -> NewEvent:
    """The ``access.denied`` event recorded at once."""
    return NewEvent(
        type=EventType.ACCESS_DENIED,
        actor=denial.actor,
        model=denial.model,
        version=denial.version,
        data={"action": denial.action, "role": denial.role, "reason": denial.reason},
        index={"action": denial.action, "role": denial.role},
    )


def aggregated_event(row: dict[str, Any]) -> NewEvent:
    """One tally row's counted refusals as an ``access.denied.aggregated`` event."""
    return NewEvent(
        type=EventType.ACCESS_DENIED_AGGREGATED,
        actor=row["actor"],
        data={
            "subject": row["subject"],
            "action": row["action"],
            "role": row["role"],
            "count": int(row["pending"]),
            "rate_limited": int(row["limited"]),
            "first_at": row["first_at"],
            "last_at": row["last_at"],
            "interval_start": row["window_start"],
            "interval_end": row["window_end"],
        },
        index={"action": row["action"], "role": row["role"], "count": int(row["pending"])},
    )


def count(conn: Connection, denial: Denial, *, now: datetime, limits: DenialLimits) -> Counted:
    """Count ``denial`` (see the module's steps) and say what to append."""
    retry_after = _rate(conn, denial.subject, now=now, limits=limits)
    events: list[NewEvent] = []
    tally = _table(TALLY)
    key = (tally.c.subject == denial.subject) & (tally.c.action == denial.action)
    found = conn.execute(tally.select().where(key)).mappings().first()
    stamp = isoformat(now)
    if found is not None and found["window_end"] <= stamp:
        if found["pending"]:
            events.append(aggregated_event(dict(found)))
        conn.execute(tally.delete().where(key))
        found = None
    limited = int(retry_after is not None)
    if found is not None:
        conn.execute(
            tally.update()
            .where(key)
            .values(
                pending=tally.c.pending + 1,
                limited=tally.c.limited + limited,
                first_at=found["first_at"] or stamp,
                last_at=stamp,
                role=denial.role,
            )
        )
        return Counted(events, retry_after)
    at_once = denial.immediate and not limited
    conn.execute(
        tally.insert().values(
            subject=denial.subject,
            action=denial.action,
            actor=denial.actor,
            role=denial.role,
            window_start=stamp,
            window_end=isoformat(now + timedelta(seconds=limits.interval)),
            pending=0 if at_once else 1,
            limited=limited,
            first_at=None if at_once else stamp,
            last_at=None if at_once else stamp,
        )
    )
    if at_once:
        events.append(denied_event(denial))
    return Counted(events, retry_after)


def _rate(conn: Connection, subject: str, *, now: datetime, limits: DenialLimits) -> int | None:
    """Count one refusal of ``subject`` in its interval; seconds to the interval's end
    if that puts it over the limit, else None."""
    rate = _table(RATE)
    stamp = isoformat(now)
    found = conn.execute(rate.select().where(rate.c.subject == subject)).mappings().first()
    if found is None or found["window_end"] <= stamp:
        end = isoformat(now + timedelta(seconds=limits.interval))
        if found is None:
            conn.execute(rate.insert().values(subject=subject, window_end=end, refusals=1))
        else:
            conn.execute(
                rate.update().where(rate.c.subject == subject).values(window_end=end, refusals=1)
            )
        refusals = 1
    else:
        end = found["window_end"]
        refusals = int(found["refusals"]) + 1
        conn.execute(
            rate.update().where(rate.c.subject == subject).values(refusals=rate.c.refusals + 1)
        )
    if refusals <= limits.limit:
        return None
    return max(math.ceil((parse(end) - now).total_seconds()), 1)


def flush(conn: Connection, *, now: datetime, every: bool) -> list[NewEvent]:
    """The aggregated events of the intervals that have ended (``every``: of every
    interval with counted refusals, ended or not), oldest interval first; their rows
    are removed (an interval flushed early stays open, its count back at 0)."""
    tally = _table(TALLY)
    rate = _table(RATE)
    stamp = isoformat(now)
    rows = [
        dict(r)
        for r in conn.execute(
            tally.select().order_by(tally.c.window_start, tally.c.subject, tally.c.action)
        ).mappings()
    ]
    events = [
        aggregated_event(r) for r in rows if r["pending"] and (every or r["window_end"] <= stamp)
    ]
    conn.execute(tally.delete().where(tally.c.window_end <= stamp))
    if every:
        conn.execute(tally.update().values(pending=0, limited=0, first_at=None, last_at=None))
    conn.execute(rate.delete().where(rate.c.window_end <= stamp))
    return events


def any_rows(conn: Connection) -> bool:
    """Whether anything is counted (a flush with nothing to do takes no write lock)."""
    from sqlalchemy import select

    return any(
        conn.execute(select(_table(name).c.subject).limit(1)).first() is not None
        for name in (TALLY, RATE)
    )
