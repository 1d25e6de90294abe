"""Event types and the event records the ledger reads and writes.

Tags are ``object.action``; one enum names every kind of event govreg writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    LEDGER_INITIALISED = "ledger.initialised"
    LEDGER_UPGRADED = "ledger.upgraded"
    PERSON_CREATED = "person.created"
    PRINCIPAL_CREATED = "principal.created"
    PRINCIPAL_REVOKED = "principal.revoked"
    DATA_KEY_ROTATED = "key.data_key_rotated"
    KEK_ROTATED = "key.kek_rotated"
    POLICY_PROPOSED = "policy.proposed"
    POLICY_APPROVED = "policy.approved"
    MODEL_REGISTERED = "model.registered"
    VERSION_SUBMITTED = "version.submitted"
    EVALUATION_STARTED = "evaluation.started"
    GATE_EVALUATED = "gate.evaluated"
    EVALUATION_COMPLETED = "evaluation.completed"
    SIGNOFF_RECORDED = "signoff.recorded"
    VERSION_APPROVED = "version.approved"
    VERSION_REJECTED = "version.rejected"
    ALIAS_SET = "alias.set"
    VERSION_SUSPENDED = "version.suspended"
    VERSION_REINSTATED = "version.reinstated"
    VERSION_RETIRED = "version.retired"
    ACCESS_DENIED = "access.denied"
    ACCESS_DENIED_AGGREGATED = "access.denied.aggregated"
    REPORT_GENERATED = "report.generated"
    EVIDENCE_EXPORTED = "evidence.exported"
    MODEL_LOADED = "serving.loaded"
    LOAD_REFUSED = "serving.refused"
    ARTIFACT_FETCHED = "serving.fetched"
    DECISIONS_PURGED = "decisions.purged"
    BENCHMARK = "benchmark.event"


@dataclass(frozen=True)
class NewEvent:
    """What a use case asks the ledger to record.

    ``data`` is encrypted; ``index`` is stored in plaintext for queries
    (verdicts, digests, status) and also inside the encrypted payload, so a
    verifier can tell an edited plaintext field from an edited ciphertext.
    """

    type: EventType
    actor: str
    model: str | None = None
    version: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    index: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """A stored event, decrypted."""

    seq: int
    recorded_at: str
    type: str
    actor: str
    model: str | None
    version: int | None
    index: dict[str, Any]
    data: dict[str, Any]
    key_id: str
    leaf_hash: bytes
    chain_hash: bytes

    def public(self) -> dict[str, Any]:
        """JSON form for `audit log --json`."""
        return {
            "seq": self.seq,
            "recorded_at": self.recorded_at,
            "type": self.type,
            "actor": self.actor,
            "model": self.model,
            "version": self.version,
            "index": self.index,
            "data": self.data,
            "key_id": self.key_id,
            "leaf_hash": self.leaf_hash.hex(),
            "chain_hash": self.chain_hash.hex(),
        }
