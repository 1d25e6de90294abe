"""Verify the whole ledger in one streaming pass.

Memory stays flat: rows are streamed in seq order and the Merkle root is kept
as a compact range (O(log n) hashes). For every event, in order:

1. its seq follows the previous one (no gap, no duplicate);
2. its ciphertext authenticates under its data key with associated data
   binding it to this table, its seq, its type and its key id;
3. every plaintext envelope field equals the copy sealed inside the
   ciphertext;
4. the leaf hash recomputed from the stored envelope equals the stored one;
5. the chain hash follows from the previous chain hash and the leaf.

Then every checkpoint (in the database and in the anchor folder) must carry a
valid signature by the given public key and commit to the root the ledger has
at that size, and the anchored checkpoints must be in the database. The first
failure stops verification and names its seq and what is wrong.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audits.events import Event
from audits.ledger import (
    COLUMNS,
    GENESIS,
    Ledger,
    associated_data,
    chain_of,
    envelope_bytes,
    leaf_of,
    sealed_header,
    unseal,
)
from audits.merkle import CompactRange
from audits.signing import SignedCheckpoint, fingerprint
from audits.tables import EVENTS_TABLE
from core.errors import IntegrityError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from sqlalchemy.engine import Connection


class VerificationFailed(IntegrityError):
    """The ledger does not verify; ``seq`` is the first bad event if known."""

    def __init__(self, message: str, *, seq: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq


@dataclass
class VerifyReport:
    size: int
    root: bytes
    checkpoints: int
    anchors: int
    key_fingerprint: str
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"ledger intact: {self.size} events, root {self.root.hex()[:16]}, "
            f"{self.checkpoints} signed checkpoints and {self.anchors} anchors verified "
            f"with key {self.key_fingerprint[:16]}"
        )


def read_anchors(anchor_dir: Path | None) -> dict[int, SignedCheckpoint]:
    anchors: dict[int, SignedCheckpoint] = {}
    if anchor_dir is None or not anchor_dir.is_dir():
        return anchors
    for path in sorted(anchor_dir.glob("checkpoint-*.txt")):
        # A damaged anchor fails verification like any other tampering.
        try:
            cp = SignedCheckpoint.from_text(path.read_text(encoding="utf-8"), source=str(path))
        except UnicodeDecodeError as exc:
            raise VerificationFailed(f"{path}: not a govreg checkpoint ({exc})") from exc
        except IntegrityError as exc:
            raise VerificationFailed(str(exc)) from exc
        anchors[cp.size] = cp
    return anchors


_SEALED_FIELDS = ("recorded_at", "actor", "model", "version")
_BATCH = 5000


def _stream(conn: Connection) -> Iterator[tuple[Any, ...]]:
    """All event rows as plain tuples in seq order, streamed from the driver.

    The DBAPI cursor is used directly (a server-side cursor on PostgreSQL):
    verification touches every row, and row objects would cost more than the
    hashing.
    """
    raw: Any = conn.connection.driver_connection
    sql = f"SELECT {COLUMNS} FROM {EVENTS_TABLE} ORDER BY seq"
    if conn.dialect.name == "postgresql":
        cursor = raw.cursor(name="govreg_verify")
        cursor.itersize = _BATCH
    else:
        cursor = raw.cursor()
    try:
        cursor.execute(sql)
        while True:
            rows = cursor.fetchmany(_BATCH)
            if not rows:
                return
            yield from rows
    finally:
        cursor.close()


def _which_field(seq: int, row: tuple[Any, ...], plain: bytes) -> str:
    """Name the plaintext field that differs from its sealed copy."""
    header, _ = unseal(plain)
    stored = dict(
        zip(
            ("recorded_at", "actor", "model", "version"),
            (row[1], row[3], row[4], row[5]),
            strict=True,
        )
    )
    for name in _SEALED_FIELDS:
        if header[name] != stored[name]:
            return (
                f"seq {seq}: plaintext field '{name}' was altered "
                f"(stored {stored[name]!r}, sealed {header[name]!r})"
            )
    sealed = json.dumps(header["index"], sort_keys=True, separators=(",", ":"))
    return f"seq {seq}: plaintext index fields were altered (stored {row[6]}, sealed {sealed})"


def verify_ledger(
    conn: Connection,
    ledger: Ledger,
    public_key: Ed25519PublicKey,
    *,
    anchor_dir: Path | None,
    on_event: Callable[[Event], None] | None = None,
    replay_types: frozenset[str] | None = None,
) -> VerifyReport:
    """Raise :class:`VerificationFailed` at the first problem; else a report.

    ``on_event`` receives every decrypted event whose type is in
    ``replay_types`` (all events if None).
    """
    from cryptography.exceptions import InvalidTag

    key_fpr = fingerprint(public_key)
    # Anchors first: a writer writes its anchor after its commit, so every
    # anchor read now is in the snapshot the first query below starts.
    anchors = read_anchors(anchor_dir)
    stored = {cp.size: cp for cp in ledger.checkpoints(conn)}
    for source, cps in (("database", stored), ("anchor", anchors)):
        for cp in cps.values():
            try:
                cp.verify(public_key)
            except IntegrityError as exc:
                raise VerificationFailed(f"{source} {exc}", seq=None) from exc
    for size, anchor in anchors.items():
        db_cp = stored.get(size)
        if db_cp is None:
            raise VerificationFailed(
                f"anchored checkpoint at size {size} is missing from the database "
                "(checkpoints were deleted)",
                seq=None,
            )
        if db_cp.root != anchor.root or db_cp.issued_at != anchor.issued_at:
            raise VerificationFailed(
                f"checkpoint at size {size} in the database differs from its anchor", seq=None
            )
    sizes = sorted(set(stored) | set(anchors))
    targets = {s: anchors.get(s) or stored[s] for s in sizes}

    tree = CompactRange()
    expected = 1
    chain = GENESIS
    last_good_checkpoint = 0
    ciphers: dict[str, Any] = {}
    for row in _stream(conn):
        (seq, recorded_at, event_type, actor, model, version, index_fields, key_id) = row[:8]
        nonce, ciphertext, stored_leaf, stored_chain = (bytes(v) for v in row[8:])
        # 1. seq is gapless
        if seq != expected:
            if seq > expected:
                raise VerificationFailed(
                    f"seq {expected}: missing (the next stored event is seq {seq})", seq=expected
                )
            raise VerificationFailed(f"seq {seq}: duplicate or out of order", seq=seq)
        # 2. the ciphertext authenticates for this row
        aes = ciphers.get(key_id)
        if aes is None:
            try:
                aes = ciphers[key_id] = ledger.keyring.cipher(conn, key_id)
            except IntegrityError as exc:
                raise VerificationFailed(f"seq {seq}: {exc}", seq=seq) from exc
        try:
            plain = aes.decrypt(nonce, ciphertext, associated_data(seq, event_type, key_id))
        except InvalidTag as exc:
            raise VerificationFailed(
                f"seq {seq}: ciphertext does not match its leaf hash "
                "(AES-GCM authentication failed: altered, or moved from another row)",
                seq=seq,
            ) from exc
        # 3. plaintext fields equal their sealed copies
        header = sealed_header(recorded_at, actor, model, version, index_fields)
        if not plain.startswith(header):
            raise VerificationFailed(_which_field(seq, row, plain), seq=seq)
        # 4. the leaf covers the stored envelope
        leaf = leaf_of(
            envelope_bytes(
                seq,
                recorded_at,
                event_type,
                actor,
                model,
                version,
                index_fields,
                key_id,
                nonce,
                ciphertext,
            )
        )
        if leaf != stored_leaf:
            raise VerificationFailed(
                f"seq {seq}: envelope does not match its leaf hash (leaf hash altered)", seq=seq
            )
        # 5. the chain follows
        chain = chain_of(chain, leaf)
        if chain != stored_chain:
            raise VerificationFailed(
                f"seq {seq}: chain hash does not follow from the previous event", seq=seq
            )
        tree.append(leaf)
        target = targets.get(seq)
        if target is not None:
            if target.root != tree.root():
                raise VerificationFailed(
                    f"seq {last_good_checkpoint + 1}..{seq}: history differs from the checkpoint "
                    f"signed at size {seq} on {target.issued_at} (events rewritten in this range)",
                    seq=last_good_checkpoint + 1,
                )
            last_good_checkpoint = seq
        if on_event is not None and (replay_types is None or event_type in replay_types):
            head, data = unseal(plain)
            on_event(
                Event(
                    seq=seq,
                    recorded_at=recorded_at,
                    type=event_type,
                    actor=actor,
                    model=model,
                    version=version,
                    index=head["index"],
                    data=data,
                    key_id=key_id,
                    leaf_hash=leaf,
                    chain_hash=chain,
                )
            )
        expected += 1
    size = expected - 1
    beyond = [s for s in sizes if s > size]
    if beyond:
        raise VerificationFailed(
            f"seq {size + 1}: missing; a checkpoint signed the ledger at size {beyond[-1]} "
            f"but it ends at seq {size} (events deleted from the end)",
            seq=size + 1,
        )
    report = VerifyReport(
        size=size,
        root=tree.root(),
        checkpoints=len(stored),
        anchors=len(anchors),
        key_fingerprint=key_fpr,
    )
    unanchored = sorted(set(stored) - set(anchors))
    if anchor_dir is not None and unanchored:
        report.warnings.append(
            f"{len(unanchored)} checkpoints are not in the anchor folder {anchor_dir} "
            f"(first at size {unanchored[0]})"
        )
    covered = sizes[-1] if sizes else 0
    if covered < size:
        report.warnings.append(
            f"events {covered + 1}..{size} are not yet covered by a signed checkpoint"
        )
    return report
