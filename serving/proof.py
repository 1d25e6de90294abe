"""Approval proofs: what another process needs to trust an artifact offline.

A proof is JSON::

    {"format": "govreg-approval-proof/v1", "model": ..., "version": ...,
     "artifact_digest": ..., "events": [envelope record, ...],
     "inclusion": {"<seq>": ["<hex>", ...]}, "checkpoint": "<signed note>",
     "standing": "<signed standing statement>"}

``events`` holds the version's ``version.approved`` event and every later
event that changed its standing (alias set, suspended, reinstated, retired),
each as stored (see :mod:`audits.records`), with an RFC 6962 inclusion proof
against the signed checkpoint. :func:`verify_proof` needs no database and no
data key: only the proof, the artifact bytes and the pinned public key.

What it proves: the pinned key signed a ledger head that contains an
approval of exactly these bytes for this model version, and the standing
those events give it. What it cannot prove offline is that the server showed
every later event; the server checks standing against the whole ledger when
it hands out the proof, and says so in the *standing statement*, signed by
the same key::

    govreg-standing/v1 <key fingerprint>
    <model>
    <version>
    <approval seq>
    <artifact digest>
    <scoring digest>
    <checkpoint size>
    <issued at, UTC>
    <expires at, UTC>

The scoring digest (:func:`scoring_digest`) covers everything a scorer acts
on: the features, the cutoff, the reason texts, the data contract, the schema
suite, the scoring rules, the retention and the policy digest. A response
whose scoring metadata differs, or whose statement expired (the policy's
``serving.max_proof_age_seconds`` after it was issued, one hour by default),
is refused: a response captured before a suspension stops working within
that bound.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from audits.events import EventType
from audits.records import RecordNotProved, prove_record, record_index
from audits.signing import SignedCheckpoint, fingerprint
from core.clock import isoformat, parse
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
STANDING_HEADER = "govreg-standing/v1"
DEFAULT_MAX_PROOF_AGE_SECONDS = 3600
# What a scorer acts on, all covered by the scoring digest.
SCORING_FIELDS = (
    "features",
    "cutoff",
    "reason_texts",
    "schema_suite",
    "retention_days",
    "contract",
    "rules",
    "policy_digest",
)


def scoring_digest(scoring: Mapping[str, Any]) -> str:
    """SHA-256 of the scoring metadata a fetch response carries (sorted, compact JSON).

    Plain JSON rather than RFC 8785: a data contract may hold float ranges,
    which Python's JSON round-trips exactly. Raises ``KeyError`` on a missing
    field and ``TypeError`` / ``ValueError`` on a value JSON cannot hold.
    """
    fields = {name: scoring[name] for name in SCORING_FIELDS}
    text = json.dumps(
        fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Standing:
    """The server's signed word that a version was in standing when it answered."""

    key_fingerprint: str
    model: str
    version: int
    approval_seq: int
    artifact_digest: str
    scoring_digest: str
    checkpoint_size: int
    issued_at: str
    expires_at: str

    @property
    def note(self) -> str:
        return (
            f"{STANDING_HEADER} {self.key_fingerprint}\n{self.model}\n{self.version}\n"
            f"{self.approval_seq}\n{self.artifact_digest}\n{self.scoring_digest}\n"
            f"{self.checkpoint_size}\n{self.issued_at}\n{self.expires_at}\n"
        )

    @classmethod
    def issue(
        cls,
        sign: Callable[[bytes], bytes],
        public_key: Ed25519PublicKey,
        *,
        model: str,
        version: int,
        approval_seq: int,
        artifact_digest: str,
        scoring: Mapping[str, Any],
        checkpoint_size: int,
        now: datetime,
        max_age_seconds: int,
    ) -> str:
        """The signed statement's text, expiring ``max_age_seconds`` after ``now``."""
        statement = cls(
            key_fingerprint=fingerprint(public_key),
            model=model,
            version=version,
            approval_seq=approval_seq,
            artifact_digest=artifact_digest,
            scoring_digest=scoring_digest(scoring),
            checkpoint_size=checkpoint_size,
            issued_at=isoformat(now),
            expires_at=isoformat(now + timedelta(seconds=max_age_seconds)),
        )
        signature = base64.b64encode(sign(statement.note.encode())).decode()
        return f"{statement.note}\n— {statement.key_fingerprint[:16]} {signature}\n"

    @classmethod
    def verified(cls, text: str, public_key: Ed25519PublicKey) -> Standing:
        """Parse ``text`` and check its signature; ValueError or GovregError if either fails."""
        from cryptography.exceptions import InvalidSignature

        note, sig_line = text.split("\n\n", 1)
        lines = note.split("\n")
        if len(lines) != 9:
            raise ValueError(f"the statement has {len(lines)} lines, not 9")
        prefix, fpr = lines[0].split(" ")
        if prefix != STANDING_HEADER:
            raise ValueError(f"not a {STANDING_HEADER} statement")
        dash, _short, sig = sig_line.strip().split(" ")
        if dash != "—":
            raise ValueError("no signature line")
        statement = cls(
            key_fingerprint=fpr,
            model=lines[1],
            version=int(lines[2]),
            approval_seq=int(lines[3]),
            artifact_digest=lines[4],
            scoring_digest=lines[5],
            checkpoint_size=int(lines[6]),
            issued_at=lines[7],
            expires_at=lines[8],
        )
        if statement.note != note + "\n":
            raise ValueError("the statement is not in its canonical form")
        if fpr != fingerprint(public_key):
            raise GovregError(
                f"the standing statement names key {fpr}, "
                f"not the pinned key {fingerprint(public_key)}"
            )
        try:
            public_key.verify(base64.b64decode(sig, validate=True), note.encode() + b"\n")
        except InvalidSignature as exc:
            raise GovregError("the standing statement's signature does not verify") from exc
        return statement


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
    scoring: Mapping[str, Any],
    now: datetime,
) -> ProofFacts:
    """Raise :class:`LoadRefused` unless ``proof`` shows ``artifact`` approved and in standing.

    ``scoring`` is the response's scoring metadata: its digest must be the one
    the standing statement signs. Every malformed field is a refusal.
    """
    subject = f"{model} v{version}"
    try:
        facts = _verify(proof, public_key, model=model, version=version, artifact=artifact, now=now)
        standing = Standing.verified(_text(proof, "standing"), public_key)
        expires_at = parse(standing.expires_at)
        digest = scoring_digest(scoring)
    except GovregError as exc:
        if isinstance(exc, LoadRefused):
            raise
        raise _refuse(subject, str(exc)) from exc
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise _refuse(subject, f"malformed response ({exc.__class__.__name__}: {exc})") from exc
    signed = (
        standing.model,
        standing.version,
        standing.approval_seq,
        standing.artifact_digest,
        standing.checkpoint_size,
    )
    shown = (model, version, facts.approval_seq, facts.artifact_digest, facts.checkpoint_size)
    if signed != shown:
        raise _refuse(subject, "the standing statement is for another approval or checkpoint")
    if expires_at <= now:
        raise _refuse(
            subject,
            f"the standing statement expired at {standing.expires_at}; fetch the model again",
            Check.STATUS,
        )
    if digest != standing.scoring_digest:
        raise _refuse(
            subject,
            "the scoring metadata (cutoff, features, data contract, reason texts, rules) "
            "differs from what the server signed",
        )
    return facts


def _text(proof: Mapping[str, Any], name: str) -> str:
    value = proof[name]
    if not isinstance(value, str):
        raise TypeError(f"proof field '{name}' is not a string")
    return value


def _verify(
    proof: Mapping[str, Any],
    public_key: Ed25519PublicKey,
    *,
    model: str,
    version: int,
    artifact: bytes,
    now: datetime,
) -> ProofFacts:
    subject = f"{model} v{version}"
    if not isinstance(proof, Mapping):
        raise TypeError("the proof is not an object")
    try:
        if proof.get("format") != FORMAT:
            raise _refuse(subject, f"not a {FORMAT} document")
        if (proof.get("model"), proof.get("version")) != (model, version):
            raise _refuse(
                subject,
                f"the proof is for {proof.get('model')} v{proof.get('version')}, not {subject}",
            )
        # 1. The checkpoint is signed by the pinned key.
        checkpoint = SignedCheckpoint.from_text(_text(proof, "checkpoint"), source="proof")
        try:
            checkpoint.verify(public_key)
        except GovregError as exc:
            raise _refuse(subject, str(exc), Check.CHECKPOINT) from exc
        # 2. Each event is included in the signed tree and belongs to this version.
        events: list[tuple[int, str, dict[str, Any]]] = []
        if not isinstance(proof["events"], list) or not isinstance(proof["inclusion"], dict):
            raise TypeError("proof fields 'events' and 'inclusion' are a list and an object")
        for env in proof["events"]:
            if not isinstance(env, dict):
                raise TypeError("a proof event is not an object")
            seq = int(env["seq"])
            if (env["model"], env["version"]) != (model, version):
                raise _refuse(subject, f"event {seq} belongs to {env['model']} v{env['version']}")
            try:
                prove_record(env, proof["inclusion"][str(seq)], checkpoint)
            except RecordNotProved as exc:
                if exc.reason == "malformed":
                    raise _refuse(subject, f"malformed proof ({exc})") from exc
                raise _refuse(subject, str(exc), Check.CHECKPOINT) from exc
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
