"""Checks 1 to 3 of the loader, read from the ledger itself.

Nothing here trusts the registry's projection tables: the alias, the
standing, the gate results and the sign-offs are read from the version's
ledger events (decrypted, so AES-GCM authenticates them), every one of which
must hash to its leaf in a tree whose root a checkpoint signed by the
*pinned* public key commits to. The projection only speeds up nothing here;
an edited ``versions`` or ``aliases`` row changes no answer.
"""

from __future__ import annotations

import json
import threading
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from audits.events import Event, EventType
from audits.ledger import row_leaf
from audits.merkle import CompactRange
from audits.records import RecordNotProved, envelope_record, prove_record
from core.clock import parse
from core.errors import GovregError, IntegrityError, NotFoundError
from policies.schema import Policy, ScoringRules
from registry.history import VersionHistory
from registry.rules import failing_gates, missing_signoffs, seat_of, signers_by_role
from serving.errors import Check, LoadRefused
from serving.proof import DEFAULT_MAX_PROOF_AGE_SECONDS, FORMAT, SERVABLE, STANDING_EVENTS

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from sqlalchemy.engine import Connection

    from audits.ledger import Ledger
    from audits.signing import SignedCheckpoint

# Events that decide whether a version may be served; all must be covered.
GOVERNING_EVENTS: frozenset[str] = STANDING_EVENTS | {
    EventType.VERSION_SUBMITTED,
    EventType.EVALUATION_STARTED,
    EventType.GATE_EVALUATED,
    EventType.EVALUATION_COMPLETED,
    EventType.SIGNOFF_RECORDED,
    EventType.VERSION_REJECTED,
}


@dataclass(frozen=True)
class Approval:
    """A version the ledger proves approved and in standing, with what scoring needs."""

    model: str
    version: int
    alias: str | None
    approval_seq: int
    artifact_digest: str
    evidence_digest: str
    revalidate_by: str
    features: list[str]
    cutoff: str
    reason_texts: dict[str, Any]  # recorded form: str | {"default", "categories"}
    schema_suite: dict[str, Any] | None
    retention_days: int
    proof: dict[str, Any]
    head: int
    contract: dict[str, Any] | None = None  # canonical; None before contracts were recorded
    scoring: ScoringRules = field(default_factory=ScoringRules)
    policy_digest: str = ""
    max_proof_age_seconds: int = DEFAULT_MAX_PROOF_AGE_SECONDS

    def scoring_metadata(self) -> dict[str, Any]:
        """What a scorer acts on, as a fetch response carries it (see ``proof.scoring_digest``)."""
        return {
            "features": self.features,
            "cutoff": self.cutoff,
            "reason_texts": self.reason_texts,
            "schema_suite": self.schema_suite,
            "retention_days": self.retention_days,
            "contract": self.contract,
            "rules": self.scoring.model_dump(mode="json"),
            "policy_digest": self.policy_digest,
        }

    @property
    def subject(self) -> str:
        return f"{self.model} v{self.version}"


def resolve_alias(conn: Connection, ledger: Ledger, model: str, alias: str) -> tuple[int, int]:
    """(version, seq) of the latest ``alias.set`` of ``model@alias`` in the ledger."""
    rows = ledger.rows_of_type(conn, model, EventType.ALIAS_SET)
    for row in rows:
        if json.loads(row.index_fields).get("alias") == alias:
            return int(row.version), int(row.seq)
    raise NotFoundError(f"{model}@{alias} is not set; promote an approved version to it first")


def believed_event(conn: Connection, ledger: Ledger, row: Any, *, subject: str) -> Event:
    """Decrypt a row selected by its plaintext columns, if its sealed header agrees.

    The rows are selected by ``model`` and ``version``, which are plaintext;
    the AES-GCM payload starts with a sealed copy of them (as ``audit verify``
    compares), so a row moved here from another version is refused, naming
    its seq.
    """
    try:
        header, _ = ledger.open_row(conn, row)
    except GovregError as exc:
        raise LoadRefused(Check.CHECKPOINT, subject, str(exc)) from exc
    stored = {
        "recorded_at": row.recorded_at,
        "actor": row.actor,
        "model": row.model,
        "version": None if row.version is None else int(row.version),
        "index": json.loads(row.index_fields),
    }
    for name, value in stored.items():
        if header.get(name) != value:
            raise LoadRefused(
                Check.CHECKPOINT,
                subject,
                f"event {row.seq}: its plaintext column '{name}' differs from its sealed header",
            )
    return ledger.decrypt_row(conn, row)


@dataclass(frozen=True)
class Witnessed:
    """The ledger's first ``size`` envelopes, each recomputed to its stored leaf and all
    folded to a root a checkpoint signed; ``seqs`` holds the governing events of each
    ``(model, version)`` as their plaintext columns were then."""

    size: int
    frontier: tuple[bytes, ...]
    seqs: dict[tuple[str | None, int | None], tuple[int, ...]]


# One per Ledger (a process's view of its home): later loads hash only the new events.
_WITNESSED: weakref.WeakKeyDictionary[Ledger, Witnessed] = weakref.WeakKeyDictionary()
_WITNESS_LOCK = threading.Lock()


def witness(
    conn: Connection, ledger: Ledger, checkpoint: SignedCheckpoint, *, subject: str
) -> Witnessed:
    """Every envelope 1..size recomputed to its stored leaf and folded to the signed root.

    Selecting a version's rows by plaintext columns cannot see a row whose
    ``version`` or ``model`` column was edited away (a suspension moved to
    v999); its recomputed leaf no longer equals its stored one, and a stored
    leaf edited to match no longer hashes to the signed root. The first load
    in a process reads the whole ledger once (no decryption, memory flat);
    later loads resume from the compact range witnessed last and read only the
    events since, so a reload costs O(new events + log n).
    """

    with _WITNESS_LOCK:
        known = _WITNESSED.get(ledger)
    base = known if known is not None and known.size <= checkpoint.size else None
    tree = CompactRange()
    if base is not None:
        tree = CompactRange.from_state(base.size, list(base.frontier))
    if base is not None and base.size == checkpoint.size and tree.root() == checkpoint.root:
        return base
    if base is not None and base.size == checkpoint.size:
        base, tree = None, CompactRange()
    seqs: dict[tuple[str | None, int | None], tuple[int, ...]] = (
        {} if base is None else dict(base.seqs)
    )
    rows = ledger.rows_between(conn, tree.size, checkpoint.size)
    try:
        for row in rows:
            if int(row.seq) != tree.size + 1:
                break  # a gap: the root check below refuses
            leaf = row_leaf(row)
            if leaf != bytes(row.leaf_hash):
                raise LoadRefused(
                    Check.CHECKPOINT,
                    subject,
                    f"event {row.seq}: its plaintext columns do not hash to its stored leaf "
                    "(an envelope field was edited)",
                )
            tree.append(leaf)
            if row.event_type in GOVERNING_EVENTS:
                key = (row.model, None if row.version is None else int(row.version))
                seqs[key] = (*seqs.get(key, ()), int(row.seq))
    finally:
        rows.close()
    if tree.size != checkpoint.size or tree.root() != checkpoint.root:
        raise LoadRefused(
            Check.CHECKPOINT,
            subject,
            f"the ledger's first {checkpoint.size} events do not hash to the signed root",
        )
    seen = Witnessed(checkpoint.size, tuple(tree.state()), seqs)
    with _WITNESS_LOCK:
        current = _WITNESSED.get(ledger)
        if current is None or current.size <= seen.size:
            _WITNESSED[ledger] = seen
    return seen


def check_approval(
    conn: Connection,
    ledger: Ledger,
    public_key: Ed25519PublicKey,
    *,
    model: str,
    version: int | None = None,
    alias: str | None = None,
    now: datetime,
) -> Approval:
    """Run checks 1 to 3 for ``model`` at ``version`` (or ``alias``); raise LoadRefused."""
    if version is None:
        if alias is None:
            raise ValueError("give a version or an alias")
        version, _ = resolve_alias(conn, ledger, model, alias)
    subject = f"{model} v{version}"
    rows = [
        r for r in ledger.version_rows(conn, model, version) if r.event_type in GOVERNING_EVENTS
    ]
    if not rows:
        raise NotFoundError(f"{subject} does not exist")
    events = [believed_event(conn, ledger, r, subject=subject) for r in rows]
    history = VersionHistory.from_events(events)
    submitted = history.submitted
    if submitted is None:
        raise NotFoundError(f"{subject} has no submission event")

    # 1. Standing: the last event that set a status, and the revalidation date.
    status, approval = history.status, history.approval
    if status in ("suspended", "retired", "rejected"):
        raise LoadRefused(Check.STATUS, subject, f"the version is {status}")
    if status in ("submitted", "evaluating"):
        raise LoadRefused(Check.STATUS, subject, f"the version is {status}, never approved")
    if history.policy_document is None:
        raise NotFoundError(f"{subject} records no policy")
    policy = Policy.model_validate(history.policy_document)
    # 2. Gates and sign-offs under the recorded policy (also the precise reason
    #    a version that never got approved is refused).
    if history.completed is None:
        raise LoadRefused(Check.GATES, subject, "the version was never evaluated")
    results = {gate_id: dict(e.data) for gate_id, e in history.gates.items()}
    failed = failing_gates(policy, results.values())
    if failed:
        raise LoadRefused(
            Check.GATES,
            subject,
            f"blocking gates did not pass under {policy.ref}: " + ", ".join(failed),
        )
    evidence = history.completed.data["evidence_digest"]
    counted = signers_by_role(
        ({"principal": e.actor, **e.data} for e in history.signoffs),
        evidence=evidence,
        submitter=seat_of(submitted.actor, dict(submitted.data)),
    )
    missing = missing_signoffs(policy, counted)
    if missing:
        raise LoadRefused(
            Check.SIGNOFFS,
            subject,
            "required sign-offs are incomplete: "
            + ", ".join(
                f"{m['role']} ({m['have']} of {m['have'] + m['missing']})" for m in missing
            ),
        )
    if approval is None or status not in SERVABLE:
        raise LoadRefused(Check.STATUS, subject, f"the version is {status}, never approved")
    if approval.data["evidence_digest"] != evidence:
        raise LoadRefused(
            Check.SIGNOFFS,
            subject,
            "the approval signed other evidence than the current evaluation's",
        )
    revalidate_by = str(approval.data["revalidate_by"])
    if parse(revalidate_by) <= now:
        raise LoadRefused(Check.STATUS, subject, f"past its revalidation date {revalidate_by}")

    # 3. Covered by a checkpoint signed by the pinned key, and the rows are the tree's leaves.
    checkpoint = ledger.latest_checkpoint(conn)
    last = rows[-1].seq
    if checkpoint is None or checkpoint.size < last:
        covered = checkpoint.size if checkpoint is not None else 0
        raise LoadRefused(
            Check.CHECKPOINT,
            subject,
            f"event {last} is not covered by a signed checkpoint (the last covers {covered})",
        )
    try:
        checkpoint.verify(public_key)
    except GovregError as exc:
        raise LoadRefused(Check.CHECKPOINT, subject, str(exc)) from exc
    seen = witness(conn, ledger, checkpoint, subject=subject)
    selected = {int(r.seq) for r in rows}
    for seq in seen.seqs.get((model, version), ()):
        if seq not in selected:
            raise LoadRefused(
                Check.CHECKPOINT,
                subject,
                f"event {seq} of {subject} is no longer selected by its plaintext columns "
                "(an envelope field was edited since it was verified)",
            )
    try:
        proofs = ledger.inclusion_proofs(conn, checkpoint.size, sorted(selected))
    except IntegrityError as exc:
        raise LoadRefused(Check.CHECKPOINT, subject, str(exc)) from exc
    for row in rows:
        try:
            prove_record(envelope_record(row), proofs[row.seq], checkpoint)
        except RecordNotProved as exc:
            raise LoadRefused(
                Check.CHECKPOINT, subject, f"event {row.seq} does not hash to its signed leaf"
            ) from exc
    shown = [r for r in rows if r.event_type in STANDING_EVENTS and r.seq >= approval.seq]
    proof = {
        "format": FORMAT,
        "model": model,
        "version": version,
        "artifact_digest": approval.data["artifact_digest"],
        "events": [envelope_record(r) for r in shown],
        "inclusion": {str(r.seq): [h.hex() for h in proofs[r.seq]] for r in shown},
        "checkpoint": checkpoint.to_text(),
    }
    schema = None
    for gate in policy.gates:
        if gate.kind == "data_schema" and gate.id in results:
            schema = results[gate.id].get("result", {}).get("details", {}).get("suite", schema)
    return Approval(
        model=model,
        version=version,
        alias=alias,
        approval_seq=approval.seq,
        artifact_digest=str(approval.data["artifact_digest"]),
        evidence_digest=str(approval.data["evidence_digest"]),
        revalidate_by=revalidate_by,
        features=list(submitted.data["features"]),
        cutoff=str(submitted.data["cutoff"]),
        reason_texts=dict(submitted.data.get("reason_texts") or {}),
        schema_suite=schema or submitted.data.get("schema_suite"),
        retention_days=policy.decision_retention_days,
        proof=proof,
        head=checkpoint.size,
        contract=submitted.data.get("contract"),
        scoring=policy.scoring,
        policy_digest=policy.digest,
        max_proof_age_seconds=(
            policy.serving.max_proof_age_seconds
            if policy.serving is not None
            else DEFAULT_MAX_PROOF_AGE_SECONDS
        ),
    )
