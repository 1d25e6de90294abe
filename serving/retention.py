"""Retention of the decision log: the admin's purge, recorded in the ledger.

:func:`serving.decisions.purge_expired` destroys the keys; this use case
authorises the caller, runs it in a ledger transaction and records what was
destroyed as one ``decisions.purged`` event (key ids, periods, expiries,
counts) with a signed checkpoint, so the erasure is itself evidence. Nothing
to destroy records nothing: re-running is a no-op.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from audits.events import EventType, NewEvent
from registry.roles import Action
from serving.decisions import PurgeReport, purge_expired

if TYPE_CHECKING:
    from registry.services import Principal, Registry

__all__ = ["purge_decisions"]


def purge_decisions(registry: Registry, actor: Principal) -> PurgeReport:
    """Erase the inputs of every decision past retention (admin only)."""
    registry.authorize(actor, Action.PURGE_DECISIONS)
    now = registry.clock()
    with registry.transaction() as conn:
        report = purge_expired(conn, registry.ledger.keyring, now=now)
        if report.keys:
            event = NewEvent(
                type=EventType.DECISIONS_PURGED,
                actor=actor.name,
                data=report.data(),
                index={
                    "decisions": report.decisions,
                    "keys": ",".join(k.key_id for k in report.keys),
                },
            )
            registry.record(conn, [event])
    return report
