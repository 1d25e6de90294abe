"""The append-only ledger: encrypt, hash, chain, checkpoint.

Each event is stored as a plaintext envelope (seq, time, type, actor,
subject, index fields, key id, nonce) plus the AES-256-GCM ciphertext of its
payload, whose associated data binds it to this table, its seq, its type and
its key id. Then

    leaf  = SHA-256(0x00 || RFC 8785 canonical bytes of the stored envelope)
    chain = SHA-256(0x01 || previous chain || leaf)      (previous of seq 1: 32 zero bytes)

and an RFC 6962 Merkle tree over the leaves gives the root that signed
checkpoints commit to. Each event also carries

    authenticator = HMAC-SHA256(K, "govreg-ledger/event" || seq (8 bytes, big-endian) || leaf)

where K is derived (HKDF-SHA256) from the checkpoint signing key: the data keys
in ``kek.json`` cannot make one. Appends run inside the caller's transaction,
after taking the writers' lock, so a use case's projection rows and its events
commit together or not at all; :meth:`Ledger.seal` then signs a checkpoint
over them in the same transaction, so no committed event is ever outside a
signed checkpoint. Before signing, the signer vouches for every event the new
checkpoint adds: each must carry a valid authenticator, and the tree must
extend the previous signed one; otherwise it refuses, writes nothing and logs
an error.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from base64 import b64encode
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from hashlib import sha256
from json.encoder import encode_basestring
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audits.anchors import AnchorLog
from audits.events import Event, EventType, NewEvent
from audits.keyring import Keyring
from audits.merkle import (
    CompactRange,
    MerkleError,
    consistency_proof_nodes,
    fold,
    inclusion_proof_nodes,
)
from audits.signing import NOTE_HEADER, SignedCheckpoint, load_private_key, sign_checkpoint
from audits.tables import CHECKPOINTS_TABLE, EVENTS_TABLE, NODES_TABLE
from core.canonical import canonical_bytes
from core.clock import isoformat, utcnow
from core.db import is_sqlite, writers_lock
from core.errors import ConfigError, IntegrityError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from sqlalchemy.engine import Connection

log = logging.getLogger(__name__)


class SignerRefused(IntegrityError):
    """The signer refused to sign a checkpoint over events it cannot vouch for: the
    transaction rolled back and nothing was written; every write is refused until an
    operator runs ``govreg audit verify`` and repairs the ledger. Over HTTP a 503
    (the server cannot take writes), locally exit code 8 like any integrity failure."""

    http_status = 503
    problem_type = "ledger-signer-refused"


GENESIS = bytes(32)
ADVISORY_LOCK_ID = 0x676F7672  # "govr"
PENDING_ANCHORS = "govreg_pending_anchors"
APPENDED = "govreg_appended_transaction"
COLUMNS = (
    "seq, recorded_at, event_type, actor, model, version, index_fields, "
    "key_id, nonce, ciphertext, leaf_hash, chain_hash, authenticator"
)
AUTHENTICATOR_INFO = b"govreg-ledger/v1 event authenticator"
AUTHENTICATOR_PREFIX = b"govreg-ledger/event"


_UNREAD: Any = object()


@dataclass
class _Appended:
    """What one transaction appended, for :meth:`Ledger.seal`: its first seq, the
    latest checkpoint as it read it under the lock, and its own leaf hashes."""

    transaction: Any
    first_seq: int
    latest: Any
    leaves: list[bytes]


def _str(value: str | None) -> str:
    return "null" if value is None else encode_basestring(value)


def _int(value: int | None) -> str:
    return "null" if value is None else str(int(value))


def envelope_bytes(  # noqa: PLR0917 - positional on purpose: once per event, hot path
    seq: int,
    recorded_at: str,
    event_type: str,
    actor: str,
    model: str | None,
    version: int | None,
    index_fields: str,
    key_id: str,
    nonce: bytes,
    ciphertext: bytes,
) -> bytes:
    """RFC 8785 canonical bytes of the stored envelope (what the leaf hash covers).

    Written out by hand because it runs once per event in appends and
    verification; the tests check it equals ``canonical_bytes`` of the same
    object (keys in RFC 8785 order, strings escaped as RFC 8785 does).
    """
    return (
        f'{{"actor":{_str(actor)},"ciphertext":"{b64encode(ciphertext).decode()}",'
        f'"index":{_str(index_fields)},"key_id":{_str(key_id)},"model":{_str(model)},'
        f'"nonce":"{b64encode(nonce).decode()}","recorded_at":{_str(recorded_at)},'
        f'"seq":{_int(seq)},"type":{_str(event_type)},"version":{_int(version)}}}'
    ).encode()


def frontier_text(tree: CompactRange) -> str:
    """The ``frontier`` column of a checkpoint: the compact range at its size."""
    return json.dumps([h.hex() for h in tree.state()])


def leaf_of(envelope: bytes) -> bytes:
    return sha256(b"\x00" + envelope).digest()


def row_leaf(row: Any) -> bytes:
    """The leaf hash recomputed from a stored event row's envelope columns."""
    return leaf_of(
        envelope_bytes(
            int(row.seq),
            row.recorded_at,
            row.event_type,
            row.actor,
            row.model,
            None if row.version is None else int(row.version),
            row.index_fields,
            row.key_id,
            bytes(row.nonce),
            bytes(row.ciphertext),
        )
    )


def chain_of(previous: bytes, leaf: bytes) -> bytes:
    return sha256(b"\x01" + previous + leaf).digest()


def authenticator_key(signing_key: Ed25519PrivateKey) -> bytes:
    """The event-authenticator key: HKDF-SHA256 of the checkpoint signing key's seed
    (only a holder of the signing key can compute it; the data keys cannot)."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    seed = signing_key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return HKDF(hashes.SHA256(), 32, salt=None, info=AUTHENTICATOR_INFO).derive(seed)


def authenticator_of(key: bytes, seq: int, leaf: bytes) -> bytes:
    """HMAC-SHA256 over the event's seq and leaf hash (the stored ``authenticator``)."""
    return hmac.digest(key, AUTHENTICATOR_PREFIX + seq.to_bytes(8, "big") + leaf, "sha256")


def associated_data(seq: int, event_type: str, key_id: str) -> bytes:
    """AES-GCM associated data: binds a ciphertext to its table, seq, type and key."""
    return (
        f'{{"key_id":{_str(key_id)},"seq":{_int(seq)},"table":"{EVENTS_TABLE}",'
        f'"type":{_str(event_type)}}}'
    ).encode()


def sealed_header(
    recorded_at: str, actor: str, model: str | None, version: int | None, index_fields: str
) -> bytes:
    """The first line of every sealed payload: a copy of the plaintext envelope
    fields, so verification can tell an edited plaintext field from an edited
    ciphertext without parsing the payload."""
    return (
        f'{{"actor":{_str(actor)},"index":{index_fields},"model":{_str(model)},'
        f'"recorded_at":{_str(recorded_at)},"version":{_int(version)}}}\n'
    ).encode()


def unseal(plain: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header fields, payload) of a decrypted payload."""
    header, _, body = plain.partition(b"\n")
    return json.loads(header), json.loads(body)


@dataclass(frozen=True)
class LedgerConfig:
    signing_key_path: Path
    anchor_dir: Path | None


class Ledger:
    """Appends and reads events; signs checkpoints. Stateless but for caches
    and :attr:`refusal`, the signer's last refusal (None once it signs again)
    with the ledger's size when it refused (:meth:`health` reports the refusal
    only while the ledger still has that size)."""

    def __init__(self, keyring: Keyring, config: LedgerConfig) -> None:
        self.keyring = keyring
        self.config = config
        self._signing_key: Ed25519PrivateKey | None = None
        self._authenticator_key: bytes | None = None
        # The last checkpoint this process signed or checked: the next seal need
        # not verify its signature again when the stored row is exactly it.
        self._trusted: SignedCheckpoint | None = None
        # The frontier (text and hashes) of the checkpoint this process last signed.
        self._trusted_frontier: tuple[str, list[bytes]] | None = None
        self.refusal: str | None = None
        self._refused_at: int | None = None

    # -- writing ---------------------------------------------------------------
    def lock(self, conn: Connection) -> None:
        """Serialise writers (:func:`core.db.writers_lock`, once per transaction)."""
        writers_lock(conn, ADVISORY_LOCK_ID)

    def head(self, conn: Connection) -> tuple[int, bytes]:
        from sqlalchemy import text

        row = conn.execute(
            text(f"SELECT seq, chain_hash FROM {EVENTS_TABLE} ORDER BY seq DESC LIMIT 1")
        ).first()
        return (0, GENESIS) if row is None else (int(row.seq), bytes(row.chain_hash))

    def append(self, conn: Connection, events: Sequence[NewEvent]) -> list[Event]:
        """Append ``events`` in order inside the caller's transaction; call
        :meth:`seal` before it commits (``Registry.transaction`` does)."""

        if not events:
            return []
        self.lock(conn)
        transaction = conn.get_transaction()
        appended: _Appended | None = conn.info.get(APPENDED)
        if appended is not None and appended.transaction is not transaction:
            appended = None
        latest = self._latest_row(conn) if appended is None else appended.latest
        if appended is None:
            self.reanchor(conn, latest)
        seq, chain = self.head(conn)
        key_id = self.keyring.active_key_id(conn)
        aes = self.keyring.cipher(conn, key_id)
        mac_key = self.authenticator_key()
        rows: list[tuple[Any, ...]] = []
        stored: list[Event] = []
        recorded_at = isoformat(utcnow())  # one transaction, one time
        for new in events:
            seq += 1
            index_text = canonical_bytes(new.index).decode()
            nonce = secrets.token_bytes(12)
            header = sealed_header(recorded_at, new.actor, new.model, new.version, index_text)
            # The payload is encrypted, not hashed: plain sorted JSON suffices.
            data_bytes = json.dumps(
                new.data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode()
            plaintext = header + data_bytes
            ciphertext = aes.encrypt(nonce, plaintext, associated_data(seq, new.type, key_id))
            leaf = leaf_of(
                envelope_bytes(
                    seq,
                    recorded_at,
                    new.type,
                    new.actor,
                    new.model,
                    new.version,
                    index_text,
                    key_id,
                    nonce,
                    ciphertext,
                )
            )
            chain = chain_of(chain, leaf)
            rows.append(
                (
                    seq,
                    recorded_at,
                    str(new.type),
                    new.actor,
                    new.model,
                    new.version,
                    index_text,
                    key_id,
                    nonce,
                    ciphertext,
                    leaf,
                    chain,
                    authenticator_of(mac_key, seq, leaf),
                )
            )
            stored.append(
                Event(
                    seq=seq,
                    recorded_at=recorded_at,
                    type=str(new.type),
                    actor=new.actor,
                    model=new.model,
                    version=new.version,
                    index=new.index,
                    data=new.data,
                    key_id=key_id,
                    leaf_hash=leaf,
                    chain_hash=chain,
                )
            )
        mark = "?" if is_sqlite(conn) else "%s"
        conn.exec_driver_sql(
            f"INSERT INTO {EVENTS_TABLE} ({COLUMNS}) VALUES ({', '.join([mark] * 13)})", rows
        )
        if appended is None:
            conn.info[APPENDED] = _Appended(transaction, stored[0].seq, latest, [])
        conn.info[APPENDED].leaves.extend(row[10] for row in rows)
        return stored

    def seal(self, conn: Connection) -> SignedCheckpoint | None:
        """Sign a checkpoint over what this transaction appended (in it, before its
        commit): every committed event is inside a signed checkpoint."""
        appended: _Appended | None = conn.info.pop(APPENDED, None)
        if appended is None or appended.transaction is not conn.get_transaction():
            return None
        return self.checkpoint(conn, appended)

    def _key(self) -> Ed25519PrivateKey:
        if self._signing_key is None:
            self._signing_key = load_private_key(self.config.signing_key_path)
        return self._signing_key

    def authenticator_key(self) -> bytes:
        if self._authenticator_key is None:
            self._authenticator_key = authenticator_key(self._key())
        return self._authenticator_key

    def authenticator_key_for(self, public_key: Ed25519PublicKey) -> bytes | None:
        """The authenticator key if this process can read the signing key of
        ``public_key`` (on the home's machine), else None (an auditor's copy)."""
        from audits.signing import fingerprint

        try:
            key = self._key()
        except ConfigError:
            return None
        if fingerprint(key.public_key()) != fingerprint(public_key):
            return None
        return self.authenticator_key()

    def sign(self, message: bytes) -> bytes:
        """Ed25519 signature by the checkpoint key (serving's standing statements)."""
        return self._key().sign(message)

    def checkpoint(
        self, conn: Connection, appended: _Appended | None = None
    ) -> SignedCheckpoint | None:
        """Sign the current head after vouching for every event since the last
        checkpoint; the anchor file is written after commit.

        Refuses (:class:`SignerRefused`, logged at ERROR, :attr:`refusal` set) when an
        event since the last checkpoint has no valid authenticator (it was not
        written by a holder of the signing key), the events do not extend the
        last signed tree (the first seq this transaction appended is at or below
        it: events were deleted from the end), or the
        anchor folder already holds a checkpoint of the new size (checkpoint rows
        were deleted): the transaction rolls back and nothing is signed.
        """
        # the size of the ledger as stored before this transaction: what a refusal
        # is about (the transaction's own events are rolled back with it)
        before = appended.first_seq - 1 if appended is not None else self.head(conn)[0]
        try:
            signed = self._checkpoint(conn, appended)
        except IntegrityError as exc:
            self.refusal, self._refused_at = str(exc), before
            log.error("the ledger's signer refused to sign a checkpoint: %s", exc)
            raise SignerRefused(str(exc)) from exc
        self.refusal = self._refused_at = None
        return signed

    def _checkpoint(self, conn: Connection, appended: _Appended | None) -> SignedCheckpoint | None:
        from sqlalchemy import text

        self.lock(conn)
        if appended is None:
            size, _ = self.head(conn)
            before, own, last = size, [], self._latest_row(conn)
        else:  # under the lock since it appended: nobody else wrote since
            before, own, last = appended.first_seq - 1, appended.leaves, appended.latest
            size = before + len(own)
        if size == 0:
            return None
        if last is not None and type(last.size) is int and last.size > before:
            raise IntegrityError(
                f"the ledger ended at seq {before} but a checkpoint signed it at size "
                f"{last.size} (events deleted from the end); refusing to sign "
                "(run `govreg audit verify`)"
            )
        if last is not None and last.size == size:
            return None
        if last is None and before > 0:
            raise IntegrityError(
                f"the ledger holds events 1..{before} but no signed checkpoint (checkpoints "
                "were deleted: every write signs one); refusing to sign "
                "(run `govreg audit verify`)"
            )
        anchor_dir = self.config.anchor_dir
        if anchor_dir is not None and (anchor_dir / anchor_name(size)).exists():
            raise IntegrityError(
                f"the anchor folder already holds {anchor_name(size)}, a checkpoint at size "
                f"{size} the database no longer has (checkpoints were deleted); refusing to "
                "sign over it (run `govreg audit verify`)"
            )
        tree = CompactRange() if last is None else self._resume(last)
        tree_start = tree.size
        nodes: list[tuple[int, int, bytes]] = []
        if tree.size < before:  # events no writer signed: vouch for each
            self._vouch(conn, tree, before, nodes)
        for seq, leaf in enumerate(own, before + 1):  # this transaction's own
            nodes.extend((seq, level, value) for level, value in tree.append(leaf))
        if tree.size != size:
            raise IntegrityError(
                f"ledger has {size} events but {tree.size} leaves follow the last checkpoint"
            )
        self._store_nodes(conn, nodes, after=tree_start)
        signed = sign_checkpoint(self._key(), size, tree.root(), isoformat(utcnow()))
        conn.execute(
            text(
                f"INSERT INTO {CHECKPOINTS_TABLE} (size, root_hash, issued_at, key_fingerprint, "
                "note, signature, frontier) VALUES (:size, :root, :t, :fpr, :note, :sig, :fr)"
            ),
            {
                "size": size,
                "root": signed.root,
                "t": signed.issued_at,
                "fpr": signed.key_fingerprint,
                "note": signed.note,
                "sig": signed.signature,
                "fr": frontier_text(tree),
            },
        )
        conn.info.setdefault(PENDING_ANCHORS, []).append(signed)
        self._trusted = signed
        self._trusted_frontier = (frontier_text(tree), tree.state())
        return signed

    def _vouch(
        self, conn: Connection, tree: CompactRange, before: int, nodes: list[tuple[int, int, bytes]]
    ) -> None:
        """Add events ``tree.size + 1 .. before`` to ``tree`` (and their completed
        subtrees to ``nodes``), each only with a valid authenticator."""
        from sqlalchemy import text

        rows = conn.execute(
            text(
                f"SELECT seq, leaf_hash, authenticator FROM {EVENTS_TABLE} "
                "WHERE seq > :s AND seq <= :b ORDER BY seq"
            ),
            {"s": tree.size, "b": before},
        )
        mac_key = self.authenticator_key()
        for seq, stored_leaf, mac in rows:
            if not isinstance(stored_leaf, bytes | memoryview) or len(stored_leaf) != len(GENESIS):
                raise IntegrityError(
                    f"seq {seq}: stored leaf hash is not 32 bytes; refusing to sign a "
                    "checkpoint over it (run `govreg audit verify`)"
                )
            leaf = bytes(stored_leaf)
            if type(seq) is not int or seq != tree.size + 1:
                raise IntegrityError(
                    f"seq {tree.size + 1} is missing after the checkpoint at size {tree.size} "
                    f"(next stored: {seq!r}); refusing to sign (run `govreg audit verify`)"
                )
            if not isinstance(mac, bytes | memoryview) or not hmac.compare_digest(
                bytes(mac), authenticator_of(mac_key, seq, leaf)
            ):
                raise IntegrityError(
                    f"seq {seq}: {'no' if mac is None else 'an invalid'} authenticator, so no "
                    "holder of the signing key wrote it; refusing to sign a checkpoint over "
                    "it (run `govreg audit verify`)"
                )
            nodes.extend((seq, level, value) for level, value in tree.append(leaf))
        if tree.size != before:
            raise IntegrityError(
                f"seq {tree.size + 1} is missing after the checkpoint at size {tree.size}; "
                "refusing to sign (run `govreg audit verify`)"
            )

    @staticmethod
    def _store_nodes(
        conn: Connection, nodes: Sequence[tuple[int, int, bytes]], *, after: int = 0
    ) -> None:
        """Insert the complete subtrees ``(last_seq, level, hash)`` a checkpoint completed
        (under the writers' lock, in the checkpoint's transaction); refuse if one past
        the previous checkpoint's size ``after`` is already stored."""
        import sqlalchemy.exc

        if not nodes:
            return
        mark = "?" if is_sqlite(conn) else "%s"
        try:
            conn.exec_driver_sql(
                f"INSERT INTO {NODES_TABLE} (last_seq, level, hash) "
                f"VALUES ({mark}, {mark}, {mark})",
                list(nodes),
            )
        except sqlalchemy.exc.IntegrityError as exc:
            raise IntegrityError(
                f"tree nodes past the last checkpoint (size {after}) are already stored: "
                "checkpoints were deleted; refusing to sign (run `govreg audit verify`)"
            ) from exc

    def _signed_row(self, row: Any) -> SignedCheckpoint:
        """A stored checkpoint row, refused unless this ledger's key signed it."""
        where = f"checkpoint at size {row.size}"
        try:
            if type(row.size) is not int:
                raise TypeError(f"size is {type(row.size).__name__}")
            signed = SignedCheckpoint(
                row.size,
                _blob(row.root_hash),
                _text(row.issued_at),
                _text(row.key_fingerprint),
                _blob(row.signature),
            )
        except (TypeError, ValueError) as exc:
            raise IntegrityError(
                f"{where}: a stored column has the wrong type; refusing to build on it "
                "(run `govreg audit verify`)"
            ) from exc
        if signed == self._trusted:
            return signed  # this process signed or checked exactly this row
        try:
            signed.verify(self._key().public_key())
            self._trusted = signed
        except IntegrityError as exc:
            raise IntegrityError(
                f"{where} is not signed by this ledger's checkpoint key ({exc}); refusing to "
                "build on it (run `govreg audit verify`)"
            ) from exc
        return signed

    def _resume(self, last: Any) -> CompactRange:
        """The compact range stored with the last checkpoint, checked against its
        signed root: a poisoned frontier must never be signed into a new root."""
        signed = self._signed_row(last)
        mine = self._trusted_frontier
        if mine is not None and signed == self._trusted and last.frontier == mine[0]:
            return CompactRange.from_state(signed.size, mine[1])  # as this process signed it
        try:
            hashes = json.loads(_text(last.frontier))
            if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
                raise TypeError("not a list of hex strings")
            tree = CompactRange.from_state(signed.size, [bytes.fromhex(h) for h in hashes])
        except (TypeError, ValueError, MerkleError) as exc:
            raise IntegrityError(
                f"checkpoint at size {signed.size}: stored frontier is malformed; refusing to "
                "sign a new checkpoint on it (run `govreg audit verify`)"
            ) from exc
        if tree.root() != signed.root:
            raise IntegrityError(
                f"checkpoint at size {signed.size}: stored frontier does not lead to its signed "
                "root; refusing to sign a new checkpoint on it (run `govreg audit verify`)"
            )
        return tree

    @staticmethod
    def _latest_row(conn: Connection) -> Any:
        """The stored checkpoint of the largest size (every column), or None."""
        from sqlalchemy import text

        return conn.execute(
            text(
                "SELECT size, root_hash, issued_at, key_fingerprint, signature, frontier "
                f"FROM {CHECKPOINTS_TABLE} ORDER BY size DESC LIMIT 1"
            )
        ).first()

    def reanchor(self, conn: Connection, row: Any = _UNREAD) -> Path | None:
        """Write the latest committed checkpoint's anchor if it is missing (its
        writer stopped between commit and anchor write); under the writers' lock.
        ``row`` is that checkpoint if the caller already read it."""
        anchor_dir = self.config.anchor_dir
        if anchor_dir is None:
            return None
        if row is _UNREAD:
            row = self._latest_row(conn)
        if row is None:
            return None
        pending: list[SignedCheckpoint] = conn.info.get(PENDING_ANCHORS, [])
        if any(cp.size == row.size for cp in pending):
            return None  # this transaction's own: anchored after its commit
        if type(row.size) is not int:
            self._signed_row(row)  # refuses, naming the checkpoint
        path = anchor_dir / anchor_name(row.size)
        if not path.exists():
            # Never copy a checkpoint this ledger's key did not sign into the anchors.
            path = write_anchor(anchor_dir, self._signed_row(row))
            log.warning(
                "checkpoint at size %d was not in the anchor folder (its writer stopped "
                "between commit and anchor write); anchored it now as %s",
                row.size,
                path.name,
            )
        return path

    def write_anchors(self, conn: Connection) -> list[Path]:
        """Copy the checkpoints this connection committed to the anchor folder."""
        pending: list[SignedCheckpoint] = conn.info.pop(PENDING_ANCHORS, [])
        if self.config.anchor_dir is None:
            return []
        return [write_anchor(self.config.anchor_dir, cp) for cp in pending]

    def discard_anchors(self, conn: Connection) -> None:
        conn.info.pop(PENDING_ANCHORS, None)

    # -- reading ---------------------------------------------------------------
    def events(
        self,
        conn: Connection,
        *,
        model: str | None = None,
        version: int | None = None,
        types: Sequence[str] | None = None,
    ) -> Iterator[Event]:
        """Decrypted events in seq order (streamed)."""
        from sqlalchemy import bindparam, text

        where = []
        params: dict[str, Any] = {}
        if model is not None:
            where.append("model = :model")
            params["model"] = model
        if version is not None:
            where.append("version = :version")
            params["version"] = version
        if types:
            where.append("event_type IN :types")
            params["types"] = list(types)
        sql = f"SELECT {COLUMNS} FROM {EVENTS_TABLE}"
        if where:
            sql += " WHERE " + " AND ".join(where)
        stmt = text(sql + " ORDER BY seq")
        if types:
            stmt = stmt.bindparams(bindparam("types", expanding=True))
        # Statement-level options: Connection.execution_options() changes the
        # connection in place (SQLAlchemy 2), and a streaming connection would
        # send the caller's later INSERTs through a server-side cursor.
        stmt = stmt.execution_options(stream_results=True, yield_per=2000)
        result = conn.execute(stmt, params)
        try:
            for row in result:
                yield self.decrypt_row(conn, row)
        finally:
            result.close()  # a caller that stops early must not leave the cursor open

    def version_rows(self, conn: Connection, model: str, version: int) -> list[Any]:
        """The stored rows (``COLUMNS``) of one model version's events, in seq order."""
        from sqlalchemy import text

        return list(
            conn.execute(
                text(
                    f"SELECT {COLUMNS} FROM {EVENTS_TABLE} "
                    "WHERE model = :model AND version = :version ORDER BY seq"
                ),
                {"model": model, "version": version},
            )
        )

    def rows_between(self, conn: Connection, after: int, upto: int) -> Any:
        """The stored rows (``COLUMNS``) with ``after < seq <= upto``, in seq order,
        streamed (close the result when done with it early)."""
        from sqlalchemy import text

        return conn.execute(
            text(
                f"SELECT {COLUMNS} FROM {EVENTS_TABLE} WHERE seq > :a AND seq <= :b ORDER BY seq"
            ).execution_options(stream_results=True, yield_per=5000),
            {"a": after, "b": upto},
        )

    def rows_of_type(self, conn: Connection, model: str, event_type: EventType) -> list[Any]:
        """``seq``, ``version`` and ``index_fields`` of ``model``'s events of one type as
        stored (plaintext columns), newest first."""
        from sqlalchemy import text

        return list(
            conn.execute(
                text(
                    f"SELECT seq, version, index_fields FROM {EVENTS_TABLE} "
                    "WHERE model = :m AND event_type = :t ORDER BY seq DESC"
                ),
                {"m": model, "t": event_type.value},
            )
        )

    def last_seqs(
        self, conn: Connection, models: Iterable[str], types: Iterable[str]
    ) -> dict[str, int]:
        """The seq of each model's last event of one of ``types``."""
        from sqlalchemy import bindparam, text

        wanted = sorted(set(models))
        if not wanted:
            return {}
        stmt = text(
            f"SELECT model, max(seq) AS last FROM {EVENTS_TABLE} "
            "WHERE model IN :models AND event_type IN :types GROUP BY model"
        ).bindparams(bindparam("models", expanding=True), bindparam("types", expanding=True))
        rows = conn.execute(stmt, {"models": wanted, "types": sorted(set(types))})
        return {str(r.model): int(r.last) for r in rows}

    def last_version_seq(self, conn: Connection, model: str, version: int) -> int:
        """The seq of the version's last event (0: it has none)."""
        from sqlalchemy import text

        value = conn.execute(
            text(f"SELECT max(seq) FROM {EVENTS_TABLE} WHERE model = :m AND version = :v"),
            {"m": model, "v": version},
        ).scalar()
        return int(value or 0)

    def open_row(self, conn: Connection, row: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Authenticate and decrypt a stored row: (sealed header, payload)."""
        from cryptography.exceptions import InvalidTag

        aes = self.keyring.cipher(conn, row.key_id)
        try:
            plain = aes.decrypt(
                bytes(row.nonce),
                bytes(row.ciphertext),
                associated_data(row.seq, row.event_type, row.key_id),
            )
        except InvalidTag as exc:
            raise IntegrityError(
                f"seq {row.seq}: ciphertext does not match its leaf hash "
                "(AES-GCM authentication failed)"
            ) from exc
        return unseal(plain)

    def decrypt_row(self, conn: Connection, row: Any) -> Event:
        header, data = self.open_row(conn, row)
        return Event(
            seq=int(row.seq),
            recorded_at=row.recorded_at,
            type=row.event_type,
            actor=row.actor,
            model=row.model,
            version=row.version,
            index=header["index"],
            data=data,
            key_id=row.key_id,
            leaf_hash=bytes(row.leaf_hash),
            chain_hash=bytes(row.chain_hash),
        )

    def leaves(self, conn: Connection, size: int | None = None) -> list[bytes]:
        """Leaf hashes 1..size (for proofs)."""
        from sqlalchemy import text

        sql = f"SELECT leaf_hash FROM {EVENTS_TABLE}"
        params: dict[str, Any] = {}
        if size is not None:
            sql += " WHERE seq <= :size"
            params["size"] = size
        return [bytes(r[0]) for r in conn.execute(text(sql + " ORDER BY seq"), params)]

    def subtree_hashes(
        self, conn: Connection, wanted: set[tuple[int, int]], size: int
    ) -> dict[tuple[int, int], bytes]:
        """The stored hashes of complete subtrees ``(level, last_seq)`` within the first
        ``size`` leaves: level 0 from the events' leaf hashes, the others from the tree
        nodes. One indexed read per table; raises IntegrityError naming a missing one."""
        from sqlalchemy import bindparam, text

        found: dict[tuple[int, int], bytes] = {}
        leaves = sorted(last for level, last in wanted if level == 0)
        if leaves:
            stmt = text(f"SELECT seq, leaf_hash FROM {EVENTS_TABLE} WHERE seq IN :seqs").bindparams(
                bindparam("seqs", expanding=True)
            )
            for seq, value in conn.execute(stmt, {"seqs": leaves}):
                found[(0, int(seq))] = bytes(value)
        lasts = sorted({last for level, last in wanted if level > 0})
        if lasts:
            stmt = text(
                f"SELECT last_seq, level, hash FROM {NODES_TABLE} WHERE last_seq IN :lasts"
            ).bindparams(bindparam("lasts", expanding=True))
            for last, level, value in conn.execute(stmt, {"lasts": lasts}):
                key = (int(level), int(last))
                if key in wanted:
                    found[key] = bytes(value)
        for level, last in sorted(wanted - found.keys()):
            first = last - (1 << level) + 1
            what = (
                f"leaf hash of seq {last}"
                if level == 0
                else (f"tree node at level {level} over seqs {first}..{last}")
            )
            raise IntegrityError(
                f"{what} is not stored, but the tree of size {size} needs it for a proof "
                "(run `govreg audit verify`)"
            )
        return found

    def inclusion_proofs(
        self, conn: Connection, size: int, seqs: Sequence[int]
    ) -> dict[int, list[bytes]]:
        """RFC 6962 inclusion proofs of events ``seqs`` in the tree of the first ``size``
        leaves, from the stored subtree hashes: O(log size) rows read per event.

        The hashes are read, not checked: verify each proof against a signed root.
        """
        shapes = {seq: inclusion_proof_nodes(seq - 1, size) for seq in seqs}
        wanted = {node for shape in shapes.values() for element in shape for node in element}
        found = self.subtree_hashes(conn, wanted, size)
        return {
            seq: [fold([found[node] for node in element]) for element in shape]
            for seq, shape in shapes.items()
        }

    def consistency_proof(self, conn: Connection, old_size: int, size: int) -> list[bytes]:
        """RFC 6962 consistency proof from ``old_size`` to ``size`` from the stored hashes."""
        shape = consistency_proof_nodes(old_size, size)
        found = self.subtree_hashes(conn, {n for element in shape for n in element}, size)
        return [fold([found[node] for node in element]) for element in shape]

    def health(self, conn: Connection) -> str | None:
        """Why the ledger is unhealthy, or None: this process's signer refused and the
        ledger has not changed since, or the stored events and the latest checkpoint
        disagree (every commit is signed, so events beyond it were written outside
        govreg, and fewer were deleted). Two indexed reads, for ``/v1/health``.

        A refusal stops being reported once the ledger's size has changed (the
        offending events were removed, say): the next write finds out whether the
        signer signs again."""
        from sqlalchemy import text

        size, _ = self.head(conn)
        if self.refusal is not None and size == self._refused_at:
            return "the ledger's signer refused to sign a checkpoint (see the server log)"
        signed = conn.execute(text(f"SELECT max(size) FROM {CHECKPOINTS_TABLE}")).scalar()
        signed = int(signed or 0)
        if size > signed:
            return (
                f"events {signed + 1}..{size} are not covered by a signed checkpoint "
                "(run `govreg audit verify`)"
            )
        if size < signed:
            return (
                f"the ledger ends at seq {size} but a checkpoint signed it at size {signed} "
                "(run `govreg audit verify`)"
            )
        return None

    def latest_checkpoint(self, conn: Connection) -> SignedCheckpoint | None:
        """The checkpoint of the largest size (one indexed row), its signature unchecked."""
        from sqlalchemy import text

        r = conn.execute(
            text(
                f"SELECT size, root_hash, issued_at, key_fingerprint, signature "
                f"FROM {CHECKPOINTS_TABLE} ORDER BY size DESC LIMIT 1"
            )
        ).first()
        if r is None:
            return None
        return SignedCheckpoint(
            size=int(r.size),
            root=bytes(r.root_hash),
            issued_at=r.issued_at,
            key_fingerprint=r.key_fingerprint,
            signature=bytes(r.signature),
        )

    def checkpoints(self, conn: Connection) -> list[SignedCheckpoint]:
        from sqlalchemy import text

        rows = conn.execute(
            text(
                f"SELECT size, root_hash, issued_at, key_fingerprint, signature "
                f"FROM {CHECKPOINTS_TABLE} ORDER BY size"
            )
        )
        return [
            SignedCheckpoint(
                size=int(r.size),
                root=bytes(r.root_hash),
                issued_at=r.issued_at,
                key_fingerprint=r.key_fingerprint,
                signature=bytes(r.signature),
            )
            for r in rows
        ]


def _blob(value: Any) -> bytes:
    if not isinstance(value, bytes | memoryview):
        raise TypeError(f"expected bytes, got {type(value).__name__}")
    return bytes(value)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


CHECKPOINT_ANCHORS: AnchorLog[SignedCheckpoint] = AnchorLog(
    prefix="checkpoint", origin=NOTE_HEADER, lines=3, decode=SignedCheckpoint.from_note
)


def anchor_name(size: int) -> str:
    return CHECKPOINT_ANCHORS.name(size)


def write_anchor(anchor_dir: Path, checkpoint: SignedCheckpoint) -> Path:
    return CHECKPOINT_ANCHORS.write(anchor_dir, checkpoint.size, checkpoint.to_text())
