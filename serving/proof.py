"""Approval proofs: what another process needs to trust an artifact offline.

A proof is JSON::

    {"format": "govreg-approval-proof/v1", "model": ..., "version": ...,
     "artifact_digest": ..., "events": [envelope record, ...],
     "inclusion": {"<seq>": ["<hex>", ...]}, "checkpoint": "<signed note>"}

``events`` holds the version's ``version.approved`` event and every later
event that changed its standing (alias set, suspended, reinstated, retired),
each as stored (see :mod:`audits.records`), with an RFC 6962 inclusion proof
against the signed checkpoint. :func:`verify_proof` needs no database and no
data key: only the proof, the artifact bytes and the pinned public key.

What it proves: the pinned key signed a ledger head that contains an
approval of exactly these bytes for this model version, and the standing
those events give it. What it cannot prove offline is that the server showed
every later event; the server checks standing against the whole ledger when
it hands out the proof, and the SDK refuses a proof older than it allows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from audits.events import EventType
from audits.merkle import verify_inclusion
from audits.records import record_index, record_leaf
from audits.signing import SignedCheckpoint
from core.clock import parse
from core.errors import GovregError
from serving.errors import Check, LoadRefused

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

FORMAT = "govreg-approval-proof/v1"
STANDING_EVENTS: frozenset[str] = frozenset(
    {
        EventType.VERSION_APPROVED,
        EventType.ALIAS_SET,
        EventType.VERSION_SUSPENDED,
        EventType.VERSION_REINSTATED,
        EventType.VERSION_RETIRED,
    }
)
SERVABLE = frozenset({"approved", "promoted"})


@dataclass(frozen=True)
class ProofFacts:
    """What a verified proof establishes."""

    model: str
    version: int
    approval_seq: int
    artifact_digest: str
    evidence_digest: str
    revalidate_by: str
    status: str
    checkpoint_size: int
    checkpoint_issued_at: str
    key_fingerprint: str


def _refuse(subject: str, detail: str, check: Check = Check.PROOF) -> LoadRefused:
    return LoadRefused(check, subject, detail)


def verify_proof(
    proof: Mapping[str, Any],
    public_key: Ed25519PublicKey,
    *,
    model: str,
    version: int,
    artifact: bytes,
    now: datetime,
) -> ProofFacts:
    """Raise :class:`LoadRefused` unless ``proof`` shows ``artifact`` approved and in standing."""
    subject = f"{model} v{version}"
    try:
        if proof.get("format") != FORMAT:
            raise _refuse(subject, f"not a {FORMAT} document")
        if (proof.get("model"), proof.get("version")) != (model, version):
            raise _refuse(
                subject,
                f"the proof is for {proof.get('model')} v{proof.get('version')}, not {subject}",
            )
        # 1. The checkpoint is signed by the pinned key.
        checkpoint = SignedCheckpoint.from_text(str(proof["checkpoint"]), source="proof")
        try:
            checkpoint.verify(public_key)
        except GovregError as exc:
            raise _refuse(subject, str(exc), Check.CHECKPOINT) from exc
        # 2. Each event is included in the signed tree and belongs to this version.
        events: list[tuple[int, str, dict[str, Any]]] = []
        for env in proof["events"]:
            seq = int(env["seq"])
            if (env["model"], env["version"]) != (model, version):
                raise _refuse(subject, f"event {seq} belongs to {env['model']} v{env['version']}")
            hashes = [bytes.fromhex(h) for h in proof["inclusion"][str(seq)]]
            try:
                verify_inclusion(
                    record_leaf(env), seq - 1, checkpoint.size, hashes, checkpoint.root
                )
            except GovregError as exc:
                raise _refuse(
                    subject,
                    f"event {seq} is not included in checkpoint {checkpoint.size} ({exc})",
                    Check.CHECKPOINT,
                ) from exc
            events.append((seq, str(env["type"]), record_index(env)))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise _refuse(subject, f"malformed proof ({exc.__class__.__name__}: {exc})") from exc
    events.sort()
    approvals = [(s, i) for s, t, i in events if t == EventType.VERSION_APPROVED]
    if not approvals:
        raise _refuse(subject, "the proof holds no version.approved event", Check.STATUS)
    approval_seq, approval = approvals[-1]
    # 3. The approved digest is the digest of these bytes.
    digest = hashlib.sha256(artifact).hexdigest()
    if approval.get("artifact_digest") != digest:
        raise _refuse(
            subject,
            f"the artifact's SHA-256 is {digest}, the approval is for "
            f"{approval.get('artifact_digest')}",
            Check.DIGEST,
        )
    # 4. Standing: the last standing event's status, and the revalidation date.
    status = "approved"
    for seq, kind, index in events:
        if seq > approval_seq and kind in STANDING_EVENTS and "status" in index:
            status = str(index["status"])
    if status not in SERVABLE:
        raise _refuse(subject, f"the version is {status}", Check.STATUS)
    revalidate_by = str(approval.get("revalidate_by", ""))
    if not revalidate_by:
        raise _refuse(subject, "the approval records no revalidation date", Check.STATUS)
    if parse(revalidate_by) <= now:
        raise _refuse(subject, f"past its revalidation date {revalidate_by}", Check.STATUS)
    return ProofFacts(
        model=model,
        version=version,
        approval_seq=approval_seq,
        artifact_digest=digest,
        evidence_digest=str(approval.get("evidence_digest", "")),
        revalidate_by=revalidate_by,
        status=status,
        checkpoint_size=checkpoint.size,
        checkpoint_issued_at=checkpoint.issued_at,
        key_fingerprint=checkpoint.key_fingerprint,
    )
