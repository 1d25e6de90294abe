"""A version's history, read from its ledger events by one pure function.

The policy in force, the current evaluation and its gate events, the sign-offs and
the standing (status, approval): the services, the serving loader, evidence
collection and the offline bundle verifier all read them through
:meth:`VersionHistory.from_events`, so "which policy judges this version" and "which
evaluation is current" have one answer.

Every rule reads the events' ``index`` (their plaintext columns, sealed into the
encrypted header and covered by the Merkle tree), never their decrypted ``data``, so
the bundle verifier, which cannot decrypt, derives the same history a holder of the
keys does. ``data`` is carried along for the callers that can read it (the recorded
policy document, full gate results, sign-off comments).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from audits.events import EventType

__all__ = ["HistoryEvent", "VersionHistory"]


class HistoryEvent(Protocol):
    """What the history reads of an event (:class:`audits.events.Event` has it)."""

    @property
    def seq(self) -> int: ...

    @property
    def type(self) -> str: ...

    @property
    def actor(self) -> str: ...

    @property
    def index(self) -> Mapping[str, Any]: ...

    @property
    def data(self) -> Mapping[str, Any]: ...


@dataclass(frozen=True)
class VersionHistory:
    """One version's events, oldest first, folded into what the rules need.

    ``policy_event`` is the last submission or re-evaluation that recorded a policy
    (its ``index["policy_digest"]``, its ``data["policy"]`` document);
    ``completed`` the last ``evaluation.completed``, whose ``index["evaluation"]`` is
    the current evaluation; ``gates`` that evaluation's ``gate.evaluated`` events by
    gate id; ``status`` the last status an event set (``submitted`` before any)."""

    submitted: HistoryEvent | None = None
    status: str = "submitted"
    policy_event: HistoryEvent | None = None
    completed: HistoryEvent | None = None
    gates: dict[str, HistoryEvent] = field(default_factory=dict)
    signoffs: tuple[HistoryEvent, ...] = ()
    approval: HistoryEvent | None = None

    @classmethod
    def from_events(cls, events: Iterable[HistoryEvent]) -> VersionHistory:
        ordered = sorted(events, key=lambda e: e.seq)
        submitted = policy_event = completed = approval = None
        status = "submitted"
        signoffs: list[HistoryEvent] = []
        for event in ordered:
            index = event.index
            if "status" in index:
                status = str(index["status"])
            if event.type == EventType.VERSION_SUBMITTED and submitted is None:
                submitted = event
            if (
                event.type in (EventType.VERSION_SUBMITTED, EventType.EVALUATION_STARTED)
                and "policy_digest" in index
            ):
                policy_event = event
            if event.type == EventType.EVALUATION_COMPLETED:
                completed = event
            elif event.type == EventType.SIGNOFF_RECORDED:
                signoffs.append(event)
            elif event.type == EventType.VERSION_APPROVED:
                approval = event
        current = completed.index.get("evaluation") if completed is not None else None
        gates = {
            str(e.index.get("gate_id")): e
            for e in ordered
            if e.type == EventType.GATE_EVALUATED
            and current is not None
            and e.index.get("evaluation") == current
        }
        return cls(
            submitted=submitted,
            status=status,
            policy_event=policy_event,
            completed=completed,
            gates=gates,
            signoffs=tuple(signoffs),
            approval=approval,
        )

    @property
    def evaluation(self) -> Any:
        """The current (last completed) evaluation's number as recorded, or None."""
        return None if self.completed is None else self.completed.index.get("evaluation")

    @property
    def policy_digest(self) -> str | None:
        if self.policy_event is None:
            return None
        digest = self.policy_event.index.get("policy_digest")
        return digest if isinstance(digest, str) else None

    @property
    def policy_document(self) -> dict[str, Any] | None:
        """The policy in force exactly as recorded (needs the decrypted data)."""
        if self.policy_event is None:
            return None
        document = self.policy_event.data.get("policy")
        return document if isinstance(document, dict) else None
