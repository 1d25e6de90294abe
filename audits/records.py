"""Stored events in their portable form, and the leaf recomputed from it.

An evidence bundle and a serving approval proof carry events as *envelope
records*: the envelope exactly as stored (ciphertext and nonce in base64,
hashes in hex). Anyone holding one can recompute its leaf hash without any
key, and check it against a signed checkpoint with an inclusion proof:
:func:`prove_record`, the one check the serving loader, the serving SDK's
offline proof check, the report's verification and the bundle verifier share.
"""

from __future__ import annotations

import json
from base64 import b64decode, b64encode
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from audits.ledger import envelope_bytes, leaf_of
from audits.merkle import verify_inclusion
from core.errors import GovregError, IntegrityError

if TYPE_CHECKING:
    from audits.signing import SignedCheckpoint

Unproved = Literal["malformed", "leaf", "inclusion"]


class RecordNotProved(IntegrityError):
    """An envelope record that does not prove into a signed checkpoint. ``reason``:
    ``malformed`` (a field is missing or of the wrong kind), ``leaf`` (the envelope
    does not hash to its ``leaf_hash``) or ``inclusion`` (the proof does not lead
    from the leaf to the checkpoint's root)."""

    def __init__(self, message: str, *, seq: int | None, reason: Unproved) -> None:
        super().__init__(message)
        self.seq = seq
        self.reason: Unproved = reason


@dataclass(frozen=True)
class RecordedEvent:
    """An envelope record read as an event: its plaintext columns, with ``index``
    parsed (``{}`` when it is not a JSON object), and ``data`` only where the caller
    has a payload it can trust (a bundle verifier has none: it cannot decrypt)."""

    seq: int
    type: str
    actor: str
    index: Mapping[str, Any]
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, env: Mapping[str, Any], data: Any = None) -> RecordedEvent:
        try:
            index = json.loads(env["index_fields"])
        except (KeyError, TypeError, ValueError, RecursionError):
            index = {}
        return cls(
            seq=int(env["seq"]),
            type=str(env.get("type")),
            actor=str(env.get("actor")),
            index=index if isinstance(index, dict) else {},
            data=data if isinstance(data, dict) else {},
        )


def envelope_record(row: Any) -> dict[str, Any]:
    """The portable form of a stored event row (columns as in ``ledger.COLUMNS``)."""
    return {
        "seq": int(row.seq),
        "recorded_at": row.recorded_at,
        "type": row.event_type,
        "actor": row.actor,
        "model": row.model,
        "version": None if row.version is None else int(row.version),
        "index_fields": row.index_fields,
        "key_id": row.key_id,
        "nonce": b64encode(bytes(row.nonce)).decode(),
        "ciphertext": b64encode(bytes(row.ciphertext)).decode(),
        "leaf_hash": bytes(row.leaf_hash).hex(),
        "chain_hash": bytes(row.chain_hash).hex(),
    }


def record_leaf(env: Mapping[str, Any]) -> bytes:
    """The leaf hash of an envelope record, recomputed from its fields.

    Raises ``KeyError``, ``TypeError`` or ``ValueError`` on a malformed record.
    """
    return leaf_of(
        envelope_bytes(
            int(env["seq"]),
            env["recorded_at"],
            env["type"],
            env["actor"],
            env["model"],
            env["version"],
            env["index_fields"],
            env["key_id"],
            b64decode(env["nonce"], validate=True),
            b64decode(env["ciphertext"], validate=True),
        )
    )


def record_index(env: Mapping[str, Any]) -> dict[str, Any]:
    """The plaintext index fields of an envelope record."""
    index = json.loads(env["index_fields"])
    if not isinstance(index, dict):
        raise ValueError("index_fields is not a JSON object")
    return index


def _hashes(proof: Sequence[bytes | str]) -> list[bytes]:
    if isinstance(proof, (str, bytes)) or not isinstance(proof, Sequence):
        raise TypeError("an inclusion proof is a list of hashes")
    hashes = []
    for item in proof:
        if isinstance(item, bytes):
            hashes.append(item)
        elif isinstance(item, str):
            hashes.append(bytes.fromhex(item))
        else:
            raise TypeError(f"a proof hash is a {type(item).__name__}")
    return hashes


def prove_record(
    env: Mapping[str, Any], proof: Sequence[bytes | str], checkpoint: SignedCheckpoint
) -> bytes:
    """The leaf of envelope record ``env``, recomputed from its fields, equal to its
    ``leaf_hash`` and proved by ``proof`` (hashes as bytes or hex) to be leaf
    ``seq - 1`` of ``checkpoint``'s tree. Raises :class:`RecordNotProved`, never
    another exception, whatever ``env`` and ``proof`` hold. The checkpoint's
    signature is the caller's to check (``checkpoint.verify``)."""
    seq = None
    try:
        seq = int(env["seq"])
        leaf = record_leaf(env)
        stored = bytes.fromhex(env["leaf_hash"])
        hashes = _hashes(proof)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:
        where = "an event" if seq is None else f"event {seq}"
        raise RecordNotProved(
            f"{where} is not a govreg envelope record ({exc.__class__.__name__}: {exc})",
            seq=seq,
            reason="malformed",
        ) from exc
    if leaf != stored:
        raise RecordNotProved(
            f"event {seq}: its envelope does not hash to its leaf_hash", seq=seq, reason="leaf"
        )
    try:
        verify_inclusion(leaf, seq - 1, checkpoint.size, hashes, checkpoint.root)
    except GovregError as exc:
        raise RecordNotProved(
            f"event {seq} is not included in checkpoint {checkpoint.size} ({exc})",
            seq=seq,
            reason="inclusion",
        ) from exc
    return leaf
