"""Collect one version's evidence from the ledger: the JSON a report embeds and a bundle holds.

Everything comes from the ledger inside one read transaction: the stored
envelopes exactly as stored (plus their decrypted payloads for the reader),
the current gate results, the sign-offs with their comments, the policy the
version is judged by, and the latest signed checkpoint with an RFC 6962
inclusion proof of every event against it (the caller has the registry make
sure a checkpoint covers the version's last event first:
``Registry.ensure_covered``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from audits.events import EventType
from audits.records import RecordedEvent, envelope_record
from core.errors import NotFoundError
from registry.history import VersionHistory
from registry.roles import Action

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from audits.signing import SignedCheckpoint
    from registry.services import Principal, Registry

FORMAT = "govreg-evidence/v1"


@dataclass(frozen=True)
class Evidence:
    """One version's evidence; ``data`` is JSON without floats."""

    data: dict[str, Any]
    checkpoint: SignedCheckpoint
    proofs: dict[int, list[bytes]]

    @property
    def events(self) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.data["events"]
        return events


def _event_record(registry: Registry, conn: Connection, row: Any) -> dict[str, Any]:
    """The stored envelope of ``row`` and its decrypted payload (header and data)."""
    header, data = registry.ledger.open_row(conn, row)
    return {
        "envelope": envelope_record(row),
        "decrypted": {"header": header, "data": data},
    }


def collect(
    registry: Registry,
    actor: Principal,
    model: str,
    version: int,
    *,
    generated_at: str,
) -> Evidence:
    """Read the version's evidence (the caller made sure a checkpoint covers it)."""
    registry.authorize(actor, Action.READ, model=model, version=version)
    shown = registry.show_version(actor, model, version)
    submission = registry.submission(model, version)
    with registry.reading() as conn:
        rows = registry.ledger.version_rows(conn, model, version)
        records = [_event_record(registry, conn, row) for row in rows]
        checkpoint = registry.ledger.latest_checkpoint(conn)
        if checkpoint is None or checkpoint.size < rows[-1].seq:
            raise NotFoundError(
                f"no signed checkpoint covers {model} v{version} (last event seq {rows[-1].seq})"
            )
        # O(log n) stored subtree hashes per event, not every leaf.
        proofs = registry.ledger.inclusion_proofs(
            conn, checkpoint.size, [r["envelope"]["seq"] for r in records]
        )
    comments = {
        r["envelope"]["seq"]: r["decrypted"]["data"].get("comment", "")
        for r in records
        if r["envelope"]["type"] == EventType.SIGNOFF_RECORDED
    }
    signoffs = [{**s, "comment": comments.get(s["seq"], "")} for s in shown["signoffs"]]
    history = VersionHistory.from_events(
        RecordedEvent.of(r["envelope"], r["decrypted"]["data"]) for r in records
    )
    document = history.policy_document or {}  # exactly as recorded (its digest is indexed)
    gates = shown["gates"]
    lineage = submission.get("lineage") or {}
    data: dict[str, Any] = {
        "format": FORMAT,
        "model": model,
        "version": version,
        "generated_at": generated_at,
        "generated_by": actor.name,
        "status": shown["status"],
        "version_record": {k: v for k, v in shown.items() if k not in ("gates", "signoffs")},
        "submission": {k: v for k, v in submission.items() if k != "policy"},
        "lineage": lineage,
        "policy": {
            "digest": shown["policy"]["digest"],
            "ref": f"{shown['policy']['id']}@{shown['policy']['version']}",
            "document": document,
        },
        "gates": gates,
        "signoffs": signoffs,
        "events": records,
        "checkpoint": {
            "size": checkpoint.size,
            "root": checkpoint.root.hex(),
            "issued_at": checkpoint.issued_at,
            "key_fingerprint": checkpoint.key_fingerprint,
            "text": checkpoint.to_text(),
        },
        "proofs": {str(seq): [h.hex() for h in proof] for seq, proof in sorted(proofs.items())},
    }
    return Evidence(data=data, checkpoint=checkpoint, proofs=proofs)
