"""Retention of the decision log: the admin's purge, recorded in the ledger, and
the auditor's check that every erasure was such a purge.

:func:`serving.decisions.purge_expired` destroys the keys; :func:`purge_decisions`
authorises the caller, runs it in a ledger transaction and records what was
destroyed as one ``decisions.purged`` event (key ids, periods, expiries,
counts) with a signed checkpoint, so the erasure is itself evidence. Nothing
to destroy records nothing: re-running is a no-op. :func:`audit_decisions`
verifies the log and warns of each destroyed key no recorded purge names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from audits.events import EventType, NewEvent
from registry.roles import Action
from serving.decisions import (
    DecisionLogReport,
    PurgeReport,
    StoredDecision,
    purge_expired,
    read_decisions,
    verify_decisions,
)

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    from registry.services import Principal, Registry

__all__ = ["DecisionAudit", "audit_decisions", "purge_decisions"]


@dataclass(frozen=True)
class DecisionAudit:
    """The decision log's verification, its warnings and the decisions listed."""

    report: DecisionLogReport
    warnings: tuple[str, ...]
    listed: tuple[StoredDecision, ...]


def audit_decisions(
    registry: Registry,
    actor: Principal,
    public_key: Ed25519PublicKey,
    *,
    anchor_dir: Path,
    model: str | None = None,
) -> DecisionAudit:
    """Verify the decision log against ``public_key`` and its anchors; warn of every
    data key destroyed without a recorded ``decisions.purged`` event (the erasure is
    allowed, its retention had ended, but it is not evidence); with ``model``, list
    that model's decisions, decrypted."""
    registry.authorize(actor, Action.VERIFY)
    with registry.reading() as conn:
        report = verify_decisions(conn, registry.ledger.keyring, public_key, anchor_dir=anchor_dir)
        recorded = {
            k["key_id"]
            for e in registry.ledger.events(conn, types=[EventType.DECISIONS_PURGED])
            for k in e.data["keys"]
        }
        listed = tuple(read_decisions(conn, registry.ledger.keyring, model=model)) if model else ()
    unrecorded = (
        f"data key {k} was destroyed without a recorded purge "
        "(its retention had ended, so the erasure itself is allowed)"
        for k in report.erased_keys
        if k not in recorded
    )
    warnings = (*report.warnings, *unrecorded)
    return DecisionAudit(report=report, warnings=warnings, listed=listed)


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
