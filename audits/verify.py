"""Verify the whole ledger in one streaming pass.

Memory stays flat: rows are streamed in seq order and the Merkle root is kept
as a compact range (O(log n) hashes). Every stored column of both ledger
tables is checked: first its type (a value SQLite stored under another type
fails and names its seq or checkpoint), then its content. For every event, in
order:

1. its seq follows the previous one (no gap, no duplicate);
2. its ciphertext authenticates under its data key (``key_id``) with
   associated data binding it to this table, its seq, its type and its key id
   (this covers ``nonce``, ``ciphertext``, ``event_type`` and ``key_id``);
3. every plaintext envelope field (``recorded_at``, ``actor``, ``model``,
   ``version``, ``index_fields``) equals the copy sealed inside the ciphertext;
4. the leaf hash recomputed from the stored envelope equals ``leaf_hash``;
5. the chain hash follows from the previous chain hash and the leaf
   (``chain_hash``);
6. it carries an authenticator (``authenticator``): 32 bytes, never NULL
   (NULL only in a home ``govreg init`` has not upgraded yet). Where the
   checkpoint signing key is at hand (the home's own machine), each is
   recomputed and compared: an event added or rewritten by someone without
   the signing key fails here even when every hash and checkpoint was
   recomputed around it.

Every event must be inside a signed checkpoint: every write signs one in its
own transaction, so events beyond the latest checkpoint were written outside
govreg (or by a version before signing per commit: ``govreg init`` signs them).

Every checkpoint row must carry a valid signature by the given public key
(``size``, ``root_hash``, ``issued_at``, ``key_fingerprint``, ``signature``),
its ``note`` must be the note that was signed, its root must equal the root
recomputed at that size and its ``frontier`` the compact range recomputed
from the leaves 1..size. The stored tree nodes (``ledger_tree_nodes``, what
proofs are built from) must be exactly the complete subtrees of level >= 1
within the latest database checkpoint, each equal to the hash recomputed from
the leaves: they are streamed in the order the leaves complete them, so a
tampered, missing or extra row fails naming its level and seqs. With an
anchor folder, every anchor file must be byte for byte the text of a
database checkpoint of the same size, and every database checkpoint must
have its anchor file; the one exception is the latest checkpoint, whose
writer may have stopped between its commit and its anchor write (a warning;
the next write anchors it). The first failure stops
verification and names its seq or checkpoint and what is wrong.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from audits.anchors import Anchor, AnchorError, Wording
from audits.events import Event
from audits.ledger import (
    CHECKPOINT_ANCHORS,
    COLUMNS,
    GENESIS,
    Ledger,
    associated_data,
    authenticator_of,
    chain_of,
    envelope_bytes,
    frontier_text,
    leaf_of,
    sealed_header,
    unseal,
)
from audits.merkle import CompactRange
from audits.signing import SignedCheckpoint, fingerprint
from audits.tables import CHECKPOINTS_TABLE, EVENTS_TABLE, NODES_TABLE
from core.errors import IntegrityError, quote

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    from sqlalchemy.engine import Connection

    from audits.keyring import Keyring


Workers = int | Literal["auto"]


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
    authenticators_checked: bool = False
    # How many processes verified the events (1: sequentially, or the parallel pass
    # fell back); not part of the result, so reports compare equal either way.
    workers: int = field(default=1, compare=False)

    def summary(self) -> str:
        checked = (
            "every event authenticator checked with the signing key"
            if self.authenticators_checked
            else "event authenticators not checked (the signing key is not at hand)"
        )
        return (
            f"ledger intact: {self.size} events, root {self.root.hex()}, "
            f"{self.checkpoints} signed checkpoints and {self.anchors} anchors verified "
            f"with key {self.key_fingerprint}; {checked}"
        )


# -- strict types -------------------------------------------------------------------
# What each stored column must hold, as the Python value the driver returns:
# SQLite keeps whatever type was written into any column (a REAL 2.5 in
# ``version`` would otherwise hash as 2), and a wrong type must fail naming the
# row, never crash the verifier.
_INT, _INT_OR_NULL = "an integer", "an integer or NULL"
_TEXT, _TEXT_OR_NULL = "text", "text or NULL"
EVENT_COLUMNS: tuple[tuple[str, str | int], ...] = (
    ("seq", _INT),
    ("recorded_at", _TEXT),
    ("event_type", _TEXT),
    ("actor", _TEXT),
    ("model", _TEXT_OR_NULL),
    ("version", _INT_OR_NULL),
    ("index_fields", _TEXT),
    ("key_id", _TEXT),
    ("nonce", 12),
    ("ciphertext", -16),  # negative: at least that many bytes (the GCM tag)
    ("leaf_hash", 32),
    ("chain_hash", 32),
    ("authenticator", 32),
)
CHECKPOINT_COLUMNS: tuple[tuple[str, str | int], ...] = (
    ("size", _INT),
    ("root_hash", 32),
    ("issued_at", _TEXT),
    ("key_fingerprint", _TEXT),
    ("note", _TEXT),
    ("signature", 64),
    ("frontier", _TEXT),
)
NODE_COLUMNS: tuple[tuple[str, str | int], ...] = (
    ("last_seq", _INT),
    ("level", _INT),
    ("hash", 32),
)
_STORAGE = {int: "INTEGER", float: "REAL", str: "TEXT", bytes: "BLOB"}


def held(value: Any) -> str:
    """A stored value and its type, for a message (text quoted and cut, bytes counted)."""
    if value is None:
        return "NULL"
    kind = _STORAGE.get(type(value), type(value).__name__)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"{len(value)} bytes ({kind})"
    if isinstance(value, str):
        return f"{quote(value)} ({kind})"
    return f"{value!r} ({kind})"


def _fits(value: Any, expected: str | int) -> bool:
    if isinstance(expected, int):
        return type(value) is bytes and (
            len(value) == expected if expected > 0 else len(value) >= -expected
        )
    if value is None:
        return expected in {_INT_OR_NULL, _TEXT_OR_NULL}
    if expected in {_INT, _INT_OR_NULL}:
        return type(value) is int
    return type(value) is str


def _wanted(expected: str | int) -> str:
    if isinstance(expected, str):
        return expected
    return f"{expected} bytes" if expected > 0 else f"at least {-expected} bytes"


def bad_column(
    where: str, row: tuple[Any, ...], columns: tuple[tuple[str, str | int], ...]
) -> str | None:
    """The message for the first column of ``row`` that holds a wrong type, if any."""
    for (name, expected), value in zip(columns, row, strict=True):
        if not _fits(value, expected):
            return f"{where}: column '{name}' holds {held(value)}, expected {_wanted(expected)}"
    return None


def _events_typed(row: tuple[Any, ...]) -> bool:
    """Fast path of ``bad_column`` for an event row (runs once per event)."""
    seq, recorded_at, event_type, actor, model, version, index_fields, key_id = row[:8]
    nonce, ciphertext, leaf, chain, mac = row[8:]
    return (
        type(seq) is int
        and type(recorded_at) is str
        and type(event_type) is str
        and type(actor) is str
        and (model is None or type(model) is str)
        and (version is None or type(version) is int)
        and type(index_fields) is str
        and type(key_id) is str
        and type(nonce) is bytes
        and len(nonce) == 12
        and type(ciphertext) is bytes
        and len(ciphertext) >= 16
        and type(leaf) is bytes
        and len(leaf) == 32
        and type(chain) is bytes
        and len(chain) == 32
        and type(mac) is bytes
        and len(mac) == 32
    )


# -- checkpoints and anchors -----------------------------------------------------------
@dataclass(frozen=True)
class StoredCheckpoint:
    """A database checkpoint row, its types checked."""

    checkpoint: SignedCheckpoint
    note: str
    frontier: str


# The ledger's words for an anchor folder's problems (:mod:`audits.anchors`).
ANCHOR_WORDING = Wording(
    unreadable="anchor file {name} cannot be read ({detail})",
    malformed="{path}: not a govreg checkpoint ({detail})",
    misnamed="anchor file {name} holds the checkpoint at size {number} (its name is {expected})",
    wrong_key=(
        "anchor checkpoint at size {number} names key {named}, not the given public key {pinned}"
    ),
    bad_signature=(
        "anchor checkpoint at size {number}: signature does not verify with the public key"
    ),
    not_stored=(
        "anchored checkpoint at size {number} is missing from the database "
        "(checkpoints were deleted)"
    ),
    differs=(
        "anchor file {name} ({text_bytes} bytes) differs from the checkpoint signed at size "
        "{number} in the database"
    ),
    missing=(
        "anchor file {name} for the checkpoint signed at size {number} is missing from the "
        "anchor folder"
    ),
    latest_unanchored=(
        "the latest checkpoint (size {number}) is not in the anchor folder yet ({name}): its "
        "writer stopped between commit and anchor write; the next write anchors it"
    ),
    # never: every checkpoint must have its anchor (before_first="fail")
    before_anchors="the checkpoints up to size {number} have no anchor files",
)


@contextmanager
def _anchor_failures() -> Iterator[None]:
    try:
        yield
    except AnchorError as exc:
        raise VerificationFailed(exc.problem.worded(ANCHOR_WORDING), seq=None) from exc


def read_anchors(
    anchor_dir: Path | None, public_key: Ed25519PublicKey
) -> dict[int, Anchor[SignedCheckpoint]]:
    """Every anchor file in ``anchor_dir`` by size (none if the folder is absent),
    each a well-formed checkpoint named after its size and signed by ``public_key``."""
    if anchor_dir is None:
        return {}
    with _anchor_failures():
        return CHECKPOINT_ANCHORS.read(anchor_dir, public_key)


def read_checkpoints(conn: Connection) -> dict[int, StoredCheckpoint]:
    """Every database checkpoint by size, each column's type checked."""
    rows = conn.exec_driver_sql(
        f"SELECT size, root_hash, issued_at, key_fingerprint, note, signature, frontier "
        f"FROM {CHECKPOINTS_TABLE} ORDER BY size"
    ).all()
    stored: dict[int, StoredCheckpoint] = {}
    for number, row in enumerate(rows, 1):
        values: tuple[Any, ...] = tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
        size = values[0]
        where = (
            f"database checkpoint at size {size}"
            if type(size) is int
            else f"database checkpoint {number} (in size order)"
        )
        problem = bad_column(where, values, CHECKPOINT_COLUMNS)
        if problem is None and size < 1:
            problem = f"{where}: column 'size' holds {size}, expected at least 1"
        if problem is None and size in stored:
            problem = f"{where}: stored twice"
        if problem is not None:
            raise VerificationFailed(problem)
        _, root, issued_at, fpr, note, signature, frontier = values
        stored[size] = StoredCheckpoint(
            SignedCheckpoint(size, root, issued_at, fpr, signature), note, frontier
        )
    return stored


def _check_checkpoints(stored: dict[int, StoredCheckpoint], public_key: Ed25519PublicKey) -> None:
    for size, row in stored.items():
        try:
            row.checkpoint.verify(public_key)
        except IntegrityError as exc:
            raise VerificationFailed(f"database {exc}", seq=None) from exc
        if row.note != row.checkpoint.note:
            raise VerificationFailed(
                f"database checkpoint at size {size}: column 'note' differs from the note "
                "that was signed"
            )


def _check_anchors(
    stored: dict[int, StoredCheckpoint],
    anchors: dict[int, Anchor[SignedCheckpoint]],
    anchor_dir: Path,
    public_key: Ed25519PublicKey,
) -> tuple[dict[int, Anchor[SignedCheckpoint]], list[str]]:
    """Every anchor file is its database checkpoint, byte for byte; every database
    checkpoint has its anchor file, but the latest may lack one (its writer
    stopped between commit and anchor write): a warning then. Returns every
    anchor (those written since ``anchors`` was read included) and the warnings."""
    signed = {size: row.checkpoint for size, row in stored.items()}
    with _anchor_failures():
        checked = CHECKPOINT_ANCHORS.check(anchor_dir, signed, anchors, public_key)
    return checked.anchors, [w.worded(ANCHOR_WORDING) for w in checked.warnings]


# -- events ----------------------------------------------------------------------------
_SEALED_FIELDS = ("recorded_at", "actor", "model", "version")
_BATCH = 5000


def _stream(conn: Connection) -> Iterator[tuple[Any, ...]]:
    """All event rows as plain tuples in seq order, streamed from the driver.

    The DBAPI cursor is used directly (a server-side cursor on PostgreSQL):
    verification touches every row, and row objects would cost more than the
    hashing. A row the driver cannot return (SQLite text that is not UTF-8)
    fails naming the seq after the last one read.
    """
    raw: Any = conn.connection.driver_connection
    sql = f"SELECT {COLUMNS} FROM {EVENTS_TABLE} ORDER BY seq"
    if conn.dialect.name == "postgresql":
        cursor = raw.cursor(name="govreg_verify")
        cursor.itersize = _BATCH
    else:
        cursor = raw.cursor()
    dbapi_error: Any = conn.dialect.loaded_dbapi.Error
    last = 0
    try:
        cursor.execute(sql)
        while True:
            try:
                rows = cursor.fetchmany(_BATCH)
            except dbapi_error as exc:
                bad = _unreadable_seq(raw, last) if conn.dialect.name == "sqlite" else last + 1
                raise VerificationFailed(
                    f"seq {bad}: the database cannot return the stored row "
                    f"({type(exc).__name__}: a column holds bytes that are not valid text)",
                    seq=bad,
                ) from exc
            if not rows:
                return
            for row in rows:
                if type(row[0]) is int:
                    last = row[0]
                yield row
    finally:
        cursor.close()


def _unreadable_seq(raw: Any, last: int) -> int:
    """The seq of the first row after ``last`` that SQLite cannot return."""
    cursor = raw.cursor()
    try:
        cursor.execute(
            f"SELECT {COLUMNS} FROM {EVENTS_TABLE} WHERE seq > ? ORDER BY seq",
            (last,),
        )
        while True:
            try:
                row = cursor.fetchone()
            except Exception:  # noqa: BLE001 - any driver error marks the row
                break
            if row is None:
                break
            last = row[0] if type(row[0]) is int else last
        found = cursor.execute(
            f"SELECT seq FROM {EVENTS_TABLE} WHERE seq > ? ORDER BY seq LIMIT 1",
            (last,),
        ).fetchone()
    finally:
        cursor.close()
    return found[0] if found is not None and type(found[0]) is int else last + 1


def _node_name(level: int, last: int) -> str:
    return f"tree node at level {level} over seqs {last - (1 << level) + 1}..{last}"


class _StoredNodes:
    """The stored tree nodes, streamed in the order verification recomputes them
    (by the seq of their last leaf, then level), each compared as it comes."""

    def __init__(self, conn: Connection, covered: int) -> None:
        self.covered = covered  # nodes are stored up to the latest database checkpoint
        raw: Any = conn.connection.driver_connection
        if conn.dialect.name == "postgresql":
            self._cursor = raw.cursor(name="govreg_verify_nodes")
            self._cursor.itersize = _BATCH
        else:
            self._cursor = raw.cursor()
        self._error: Any = conn.dialect.loaded_dbapi.Error
        self._cursor.execute(
            f"SELECT last_seq, level, hash FROM {NODES_TABLE} ORDER BY last_seq, level"
        )
        self._rows: list[tuple[Any, ...]] = []
        self._number = 0
        self._next: tuple[int, int, bytes] | None = None
        self._advance()

    def close(self) -> None:
        self._cursor.close()

    def _advance(self) -> None:
        if not self._rows:
            try:
                self._rows = list(reversed(self._cursor.fetchmany(_BATCH)))
            except self._error as exc:
                raise VerificationFailed(
                    f"tree node row {self._number + 1} (in seq order): the database cannot "
                    f"return it ({type(exc).__name__})"
                ) from exc
        if not self._rows:
            self._next = None
            return
        self._number += 1
        values = tuple(bytes(v) if isinstance(v, memoryview) else v for v in self._rows.pop())
        last, level = values[0], values[1]
        where = (
            f"tree node at level {level} ending at seq {last}"
            if type(last) is int and type(level) is int
            else f"tree node row {self._number} (in seq order)"
        )
        problem = bad_column(where, values, NODE_COLUMNS)
        if problem is not None:
            raise VerificationFailed(problem)
        self._next = (int(last), int(level), bytes(values[2]))

    def _extra(self, last: int, level: int) -> VerificationFailed:
        where = f"tree node at level {level} ending at seq {last}"
        if level >= 1 and last >= 1 << level and last % (1 << level) == 0:
            where = _node_name(level, last)
        return VerificationFailed(
            f"{where}: stored, but it is not a complete subtree of the ledger's first "
            f"{self.covered} leaves (an extra row)"
        )

    def expect(self, last: int, level: int, value: bytes) -> None:
        """The node recomputed at seq ``last`` of ``level`` must be the next stored one."""
        while self._next is not None and (self._next[0], self._next[1]) < (last, level):
            raise self._extra(self._next[0], self._next[1])
        if self._next is None or (self._next[0], self._next[1]) != (last, level):
            raise VerificationFailed(
                f"{_node_name(level, last)} is missing from {NODES_TABLE} (proofs in the "
                f"first {self.covered} leaves need it)",
                seq=last,
            )
        if self._next[2] != value:
            raise VerificationFailed(
                f"{_node_name(level, last)}: column 'hash' differs from the hash recomputed "
                "from the leaves",
                seq=last,
            )
        self._advance()

    def finish(self) -> None:
        if self._next is not None:
            raise self._extra(self._next[0], self._next[1])


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


def _typed(row: tuple[Any, ...], expected: int) -> tuple[Any, ...]:
    """``row`` with its types checked (PostgreSQL's bytea may come as memoryview)."""
    if _events_typed(row):
        return row
    values = tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
    if _events_typed(values):
        return values
    seq = values[0]
    named = seq if type(seq) is int else expected
    if values[12] is None and _events_typed((*values[:12], bytes(32))):
        raise VerificationFailed(
            f"seq {named}: no authenticator (the ledger was not upgraded: run `govreg init` "
            "on its home, which holds the signing key) or it was written outside govreg",
            seq=named,
        )
    problem = bad_column(f"seq {named}", values, EVENT_COLUMNS)
    raise VerificationFailed(problem or f"seq {named}: unreadable row", seq=named)


def check_event(  # noqa: PLR0917 - positional on purpose: once per event, hot path
    conn: Connection,
    keyring: Keyring,
    ciphers: dict[str, Any],
    row: tuple[Any, ...],
    expected: int,
    chain: bytes,
    mac_key: bytes | None,
) -> tuple[bytes, bytes]:
    """Steps 1-6 for one event row whose types :func:`_typed` checked, after the
    event whose chain hash is ``chain``: its leaf hash and decrypted payload, or
    :class:`VerificationFailed`. ``ciphers`` caches the data keys by key id.
    The sequential pass and every parallel worker run exactly this."""
    from cryptography.exceptions import InvalidTag

    (seq, recorded_at, event_type, actor, model, version, index_fields, key_id) = row[:8]
    nonce, ciphertext, stored_leaf, stored_chain, mac = row[8:]
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
            aes = ciphers[key_id] = keyring.cipher(conn, key_id)
        except IntegrityError as exc:
            raise VerificationFailed(f"seq {seq}: {exc}", seq=seq) from exc
    try:
        plain: bytes = aes.decrypt(nonce, ciphertext, associated_data(seq, event_type, key_id))
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
    if chain_of(chain, leaf) != stored_chain:
        raise VerificationFailed(
            f"seq {seq}: chain hash does not follow from the previous event", seq=seq
        )
    # 6. the authenticator, where the signing key is at hand
    if mac_key is not None and not hmac.compare_digest(mac, authenticator_of(mac_key, seq, leaf)):
        raise VerificationFailed(
            f"seq {seq}: authenticator does not match (the event was added or rewritten "
            "by someone without the checkpoint signing key)",
            seq=seq,
        )
    return leaf, plain


def replayed(row: tuple[Any, ...], plain: bytes, leaf: bytes) -> Event:
    """The decrypted :class:`Event` of a verified row (its types checked)."""
    head, data = unseal(plain)
    return Event(
        seq=row[0],
        recorded_at=row[1],
        type=row[2],
        actor=row[3],
        model=row[4],
        version=row[5],
        index=head["index"],
        data=data,
        key_id=row[7],
        leaf_hash=leaf,
        chain_hash=row[11],
    )


def verify_ledger(
    conn: Connection,
    ledger: Ledger,
    public_key: Ed25519PublicKey,
    *,
    anchor_dir: Path | None,
    on_event: Callable[[Event], None] | None = None,
    replay_types: frozenset[str] | None = None,
    authenticator_key: bytes | None = None,
    workers: Workers = 1,
    chunk_level: int | None = None,
) -> VerifyReport:
    """Raise :class:`VerificationFailed` at the first problem; else a report.

    ``on_event`` receives every decrypted event whose type is in
    ``replay_types`` (all events if None). With ``authenticator_key`` (derived
    from the signing key of ``public_key``), every event's authenticator is
    recomputed. Nothing but VerificationFailed leaves this function for
    anything stored in the ledger tables.

    With ``workers`` above 1 (or "auto"), the events are verified in that many
    worker processes where the ledger suits (:mod:`audits.parallel`; chunks of
    ``2**chunk_level`` events if given); wherever a worker finds anything
    wrong, this pass runs sequentially, so the result and the first failure
    reported are always those of ``workers=1``.
    """
    key_fpr = fingerprint(public_key)
    # Anchors first: a writer writes its anchor after its commit, so every
    # anchor read now is in the snapshot the first query below starts.
    anchors = read_anchors(anchor_dir, public_key)
    stored = read_checkpoints(conn)
    _check_checkpoints(stored, public_key)
    warnings: list[str] = []
    if anchor_dir is not None:
        anchors, warnings = _check_anchors(stored, anchors, anchor_dir, public_key)
    sizes = sorted(set(stored) | set(anchors))
    targets = {s: anchors[s].item if s in anchors else stored[s].checkpoint for s in sizes}
    if workers != 1:
        from audits.parallel import Layout, verify_parallel

        report = verify_parallel(
            conn,
            ledger,
            Layout(key_fpr, stored, anchors, sizes, targets, warnings),
            workers=workers,
            chunk_level=chunk_level,
            on_event=on_event,
            replay_types=replay_types,
            mac_key=authenticator_key,
        )
        if report is not None:
            return report

    tree = CompactRange()
    nodes = _StoredNodes(conn, max(stored, default=0))
    try:
        return _verify_events(
            conn,
            ledger,
            key_fpr,
            stored,
            anchors,
            sizes,
            targets,
            tree,
            nodes,
            warnings,
            on_event,
            replay_types,
            authenticator_key,
        )
    finally:
        nodes.close()


def _verify_events(  # noqa: PLR0917 - verify_ledger's state, split for the cursor
    conn: Connection,
    ledger: Ledger,
    key_fpr: str,
    stored: dict[int, StoredCheckpoint],
    anchors: dict[int, Anchor[SignedCheckpoint]],
    sizes: list[int],
    targets: dict[int, SignedCheckpoint],
    tree: CompactRange,
    nodes: _StoredNodes,
    warnings: list[str],
    on_event: Callable[[Event], None] | None,
    replay_types: frozenset[str] | None,
    mac_key: bytes | None,
) -> VerifyReport:
    expected = 1
    node_problem: VerificationFailed | None = None
    chain = GENESIS
    last_good_checkpoint = 0
    ciphers: dict[str, Any] = {}
    for raw_row in _stream(conn):
        row = _typed(raw_row, expected)
        seq, event_type = row[0], row[2]
        leaf, plain = check_event(conn, ledger.keyring, ciphers, row, expected, chain, mac_key)
        chain = row[11]
        for level, value in tree.append(leaf):
            if seq <= nodes.covered and node_problem is None:
                try:
                    nodes.expect(seq, level, value)
                except VerificationFailed as exc:
                    # Reported once the next signed root checks out: a rewrite the
                    # signatures catch is named as such, not by the unsigned nodes.
                    node_problem = exc
        target = targets.get(seq)
        if target is not None:
            if target.root != tree.root():
                raise VerificationFailed(
                    f"seq {last_good_checkpoint + 1}..{seq}: history differs from the checkpoint "
                    f"signed at size {seq} on {target.issued_at} (events rewritten in this range)",
                    seq=last_good_checkpoint + 1,
                )
            db_row = stored.get(seq)
            if db_row is not None and db_row.frontier != frontier_text(tree):
                raise VerificationFailed(
                    f"database checkpoint at size {seq}: column 'frontier' differs from the "
                    f"compact range recomputed from leaves 1..{seq}"
                )
            last_good_checkpoint = seq
            if node_problem is not None:
                raise node_problem
        if on_event is not None and (replay_types is None or event_type in replay_types):
            on_event(replayed(row, plain, leaf))
        expected += 1
    size = expected - 1
    beyond = [s for s in sizes if s > size]
    if beyond:
        raise VerificationFailed(
            f"seq {size + 1}: missing; a checkpoint signed the ledger at size {beyond[-1]} "
            f"but it ends at seq {size} (events deleted from the end)",
            seq=size + 1,
        )
    if node_problem is not None:
        raise node_problem
    nodes.finish()
    report = VerifyReport(
        size=size,
        root=tree.root(),
        checkpoints=len(stored),
        anchors=len(anchors),
        key_fingerprint=key_fpr,
        warnings=warnings,
        authenticators_checked=mac_key is not None,
    )
    covered = sizes[-1] if sizes else 0
    if covered < size:
        raise VerificationFailed(
            f"seq {covered + 1}..{size}: not covered by any signed checkpoint (every write "
            "signs one in its own transaction: these were added outside govreg, or by a "
            "version before that, which `govreg init` upgrades)",
            seq=covered + 1,
        )
    return report
