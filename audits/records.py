"""Stored events in their portable form, and the leaf recomputed from it.

An evidence bundle and a serving approval proof carry events as *envelope
records*: the envelope exactly as stored (ciphertext and nonce in base64,
hashes in hex). Anyone holding one can recompute its leaf hash without any
key, and check it against a signed checkpoint with an inclusion proof.
"""

from __future__ import annotations

import json
from base64 import b64decode, b64encode
from collections.abc import Mapping
from typing import Any

from audits.ledger import envelope_bytes, leaf_of


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
