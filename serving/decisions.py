"""The decision log: every credit decision, recorded without making scoring wait.

The scorer hands each decision to :meth:`DecisionLog.record`, which checks it,
stamps the time and puts it on an in-memory queue (about a microsecond, no
database). One writer thread per process takes decisions off the queue and
writes them in batches, one transaction per batch:

    under the writers' lock (PostgreSQL: advisory lock "govd"; SQLite: BEGIN IMMEDIATE)
    seq        = previous batch's last seq + 1, ... (gapless across processes)
    key        = the expiring data key of the month retain_until falls in
                 ("decisions/2029-01", created on first use, see below)
    ciphertext = AES-256-GCM(key, sealed header || "\\n" || RFC 8785 inputs
                                  || "\\n" || RFC 8785 reason values,
                             associated data = {key_id, model, seq, table, version})
    leaf       = SHA-256(0x00 || RFC 8785 bytes of the stored record, ciphertext included)
    root       = RFC 6962 Merkle root of the batch's leaves
    batch hash = SHA-256(RFC 8785 {batch, first_seq, last_seq, written_at, prev, root})
    signature  = Ed25519 over the signed note
                     govreg-decisions/v1 <key fingerprint>
                     <batch>
                     <last seq>
                     <batch hash, base64>
                     <written at>

The note is a signed note (:mod:`audits.notes`), as the ledger's checkpoints
are, with its own origin line, so a decision-log signature never verifies as a
ledger checkpoint and a ledger checkpoint never parses or verifies as a
decision batch.
The sealed header is a copy of the plaintext fields inside the ciphertext, so
verification names the plaintext field that was edited.

Every decision gets a ``decision_id`` when it is recorded (32 random hex
digits, returned to the caller by :meth:`DecisionLog.record_many`), kept in
plaintext, sealed and hashed like the other fields: outcomes and overrides name
a decision by it. Decisions written before ids have none (NULL) and verify as
written.

Besides the score, outcome and reason texts, a decision keeps in plaintext
its ``flags``: the features scored outside what the model was validated on
(``{"out_of_range": ["income"], "unseen_category": ["purpose"]}``), so
monitoring can count them without decrypting anything. The value each
principal reason counted (``{"feature": "housing", "value": "rent"}``) is
the applicant's data: it is encrypted with the inputs. Decisions written
before flags were recorded have none (``flags`` NULL) and verify as written.

A request's decisions are handed over together (:meth:`DecisionLog.record_many`):
all are checked before any is queued, and they are written in one batch, one
transaction, so the log never holds part of a request.

Retention by crypto-shredding: every decision's ``retain_until`` is
``recorded_at + retention_days``; its inputs are encrypted under the key of
the calendar month (UTC) that ``retain_until`` falls in, so every decision
under one key may be erased at the same moment: the end of that month.
:func:`purge_expired` then destroys the key (an expiring data key, see
:mod:`audits.keyring`). The rows stay as written (append-only) and still
verify: leaves, roots, chain and signatures cover the stored ciphertext, not
the plaintext. :func:`verify_decisions` counts a decision whose key is gone
as erased when its month is over, and fails when it is not (a live key was
deleted). Decisions written before this scheme sit under the ledger's data
keys (``dk-...``); they stay readable and are never purged by period.

Durability, precisely:

* ``flush()`` returns once every decision recorded before it was called (by
  any thread of this process) is committed.
* ``close()`` (also run at interpreter exit) writes everything queued, then
  stops the thread: a clean shutdown loses nothing.
* A crash (SIGKILL, power loss) loses exactly the decisions that were queued
  but not yet in a committed batch: the batch being collected (at most
  ``batch_size`` decisions, at most ``flush_interval`` seconds old) and the
  batch whose transaction was in flight, plus any backlog when decisions
  arrive faster than the database takes them (capped at ``max_pending``;
  beyond it ``record`` refuses). Committed batches are whole: one transaction
  per batch, so the database never holds part of a batch.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import logging
import os
import queue
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from json.encoder import encode_basestring
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

from audits.anchors import Anchor, AnchorError, AnchorLog, Wording
from audits.keyring import Keyring, expiring_key_id
from audits.ledger import leaf_of
from audits.merkle import CompactRange
from audits.notes import (
    KeyMismatch,
    SignatureInvalid,
    SignedNote,
    b64,
    decimal,
    decode_b64,
    sign,
)
from audits.signing import fingerprint, load_private_key
from core.canonical import canonical_bytes, canonical_row, check_scalar, scalar_text
from core.clock import isoformat, parse, utcnow
from core.db import is_sqlite, writers_lock
from core.errors import InputError, IntegrityError
from core.turns import folder_turn
from serving.errors import DecisionLogError
from serving.tables import DECISION_BATCHES_TABLE, DECISIONS_TABLE

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from sqlalchemy.engine import Connection, Engine

__all__ = [
    "ADVISORY_LOCK_ID",
    "ANCHOR_FOLDER",
    "ORIGIN",
    "Decision",
    "DecisionLog",
    "DecisionLogError",
    "DecisionLogReport",
    "DecisionVerificationFailed",
    "PurgeReport",
    "PurgedKey",
    "SignedBatch",
    "StoredDecision",
    "anchor_name",
    "canonical_flags",
    "canonical_reason_values",
    "check_decision",
    "head",
    "is_decision_id",
    "new_decision_id",
    "purge_expired",
    "read_decisions",
    "retention_period",
    "verify_decisions",
    "write_anchor",
]

ORIGIN: Final = "govreg-decisions/v1"
ADVISORY_LOCK_ID: Final = 0x676F7664  # "govd": distinct from the ledger's "govr"
GENESIS: Final = bytes(32)
OUTCOMES: Final = frozenset({"approve", "decline"})
ANCHOR_FOLDER: Final = "decisions"  # the anchor folder's sub-folder for batch anchors
KEY_PURPOSE: Final = "decisions"  # the expiring data keys' purpose (key ids "decisions/YYYY-MM")
EXIT_TIMEOUT: Final = 30.0  # seconds close() may take at interpreter exit
_log = logging.getLogger(__name__)


class DecisionVerificationFailed(IntegrityError):
    """The decision log does not verify; ``seq`` / ``batch`` name the first bad one."""

    def __init__(self, message: str, *, seq: int | None = None, batch: int | None = None) -> None:
        super().__init__(message)
        self.seq = seq
        self.batch = batch


# -- records ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Decision:
    """What the scorer hands over: one decision about one applicant."""

    model: str
    version: int
    approval_seq: int
    inputs: dict[str, Any]  # the applicant row as given (personal data: stored encrypted)
    score: str  # probability of default, decimal string
    decision: str  # "approve" | "decline"
    reasons: list[str]  # principal reason texts, may be empty
    retention_days: int
    # features scored outside what the model was validated on, by kind
    flags: Mapping[str, Sequence[str]] = field(default_factory=dict)
    # per reason, in order: {"feature": name, "value": the value that counted}
    # (personal data: stored encrypted with the inputs); empty or one per reason
    reason_values: Sequence[Mapping[str, Any]] = ()


def new_decision_id() -> str:
    """A new decision id: 32 lowercase hex digits, random (UUID 4). Only the log
    gives them (:meth:`DecisionLog.record_many`), so no two decisions share one."""
    import uuid

    return uuid.uuid4().hex


def is_decision_id(value: Any) -> bool:
    """``value`` has the form :func:`new_decision_id` gives."""
    return isinstance(value, str) and _DECISION_ID.fullmatch(value) is not None


_DECISION_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class StoredDecision:
    """A decision as the log holds it, inputs decrypted (``None`` once erased:
    its retention ended and its key was destroyed; every other field stays)."""

    seq: int
    batch: int
    recorded_at: str
    model: str
    version: int
    approval_seq: int
    inputs: dict[str, Any] | None
    input_digest: str
    score: str
    decision: str
    reasons: list[str]
    retain_until: str
    key_id: str
    leaf_hash: bytes
    flags: dict[str, list[str]] = field(default_factory=dict)
    # None once erased, or for a decision written before reason values were kept
    reason_values: list[dict[str, Any]] | None = None
    # None for a decision written before decisions had ids (migration 0010)
    decision_id: str | None = None

    @property
    def erased(self) -> bool:
        return self.inputs is None


@dataclass(frozen=True, slots=True)
class SignedBatch:
    """A written batch: what its signature commits to."""

    batch: int
    first_seq: int
    last_seq: int
    written_at: str
    root: bytes
    prev_hash: bytes
    batch_hash: bytes
    key_fingerprint: str
    signature: bytes

    @property
    def signed_note(self) -> SignedNote:
        lines = (str(self.batch), str(self.last_seq), b64(self.batch_hash), self.written_at)
        return SignedNote(ORIGIN, self.key_fingerprint, lines, self.signature)

    @property
    def note(self) -> str:
        return self.signed_note.note

    def to_text(self) -> str:
        """The signed note and its signature line (as a ledger anchor file)."""
        return self.signed_note.to_text()

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """Raise :class:`DecisionVerificationFailed` unless ``public_key`` signed this batch."""
        try:
            self.signed_note.verify(public_key)
        except KeyMismatch as exc:
            raise DecisionVerificationFailed(
                f"batch {self.batch}: signed by key {exc.named}, not the pinned key {exc.expected}",
                batch=self.batch,
            ) from exc
        except SignatureInvalid as exc:
            raise DecisionVerificationFailed(
                f"batch {self.batch}: signature does not verify with the pinned public key",
                batch=self.batch,
            ) from exc


@dataclass(frozen=True, slots=True)
class DecisionLogReport:
    decisions: int
    batches: int
    head_hash: bytes
    key_fingerprint: str
    erased: int = 0  # decisions whose retention ended and whose key was destroyed
    erased_keys: tuple[str, ...] = ()
    anchors: int | None = None  # anchor files checked (None: verified without an anchor folder)
    warnings: tuple[str, ...] = ()

    def summary(self) -> str:
        erased = (
            f"; {self.erased} past retention with inputs erased ({', '.join(self.erased_keys)})"
            if self.erased
            else ""
        )
        anchors = "" if self.anchors is None else f", {self.anchors} anchors"
        return (
            f"decision log intact: {self.decisions} decisions in {self.batches} signed batches"
            f"{anchors}, head {self.head_hash.hex()[:16]}, verified with key "
            f"{self.key_fingerprint}{erased}"
        )


@dataclass(frozen=True, slots=True)
class PurgedKey:
    key_id: str
    period: str
    expires_at: str
    decisions: int


@dataclass(frozen=True, slots=True)
class PurgeReport:
    """What :func:`purge_expired` destroyed (nothing when re-run)."""

    at: str
    keys: tuple[PurgedKey, ...]

    @property
    def decisions(self) -> int:
        return sum(k.decisions for k in self.keys)

    def data(self) -> dict[str, Any]:
        """The ledger event's payload (and the CLI's JSON)."""
        return {
            "at": self.at,
            "decisions": self.decisions,
            "keys": [
                {
                    "key_id": k.key_id,
                    "period": k.period,
                    "expires_at": k.expires_at,
                    "decisions": k.decisions,
                }
                for k in self.keys
            ],
        }

    def summary(self) -> str:
        if not self.keys:
            return f"nothing to purge at {self.at}: no decision key is past its retention period"
        periods = ", ".join(k.period for k in self.keys)
        return (
            f"purged {len(self.keys)} decision keys ({periods}): the inputs of "
            f"{self.decisions} decisions past retention are erased"
        )


def retention_period(retain_until: datetime) -> tuple[str, datetime]:
    """The key period of a retention end: its calendar month (UTC) as ``YYYY-MM``,
    and when that month is over (the key's expiry)."""
    moment = retain_until.astimezone(UTC)
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    return f"{moment.year:04d}-{moment.month:02d}", datetime(year, month, 1, tzinfo=UTC)


# -- hashing and encoding -------------------------------------------------------------------
def canonical_reason_values(values: Sequence[Mapping[str, Any]]) -> bytes:
    """RFC 8785 bytes of a decision's reason values: ``[{"feature": ..., "value": ...}]``."""
    parts = [
        '{"feature":'
        + encode_basestring(str(v["feature"]))
        + ',"value":'
        + scalar_text(v["value"])
        + "}"
        for v in values
    ]
    return ("[" + ",".join(parts) + "]").encode()


def canonical_flags(flags: Mapping[str, Sequence[str]]) -> str:
    """The stored ``flags`` column: RFC 8785 text, kinds without a feature left out."""
    return canonical_bytes({k: list(v) for k, v in flags.items() if v}).decode()


def _check_inputs(inputs: Any) -> None:
    """Cheap checks in the caller's thread, so the writer can always encode the row."""
    if not isinstance(inputs, dict):
        raise InputError(f"decision inputs must be a dict, not {type(inputs).__name__}")
    for key, value in inputs.items():
        if not isinstance(key, str):
            raise InputError(f"decision input name {key!r} is not a string")
        check_scalar(value, f"decision input {key!r}")


def check_decision(decision: Decision) -> None:
    """Raise InputError unless ``decision`` is one the log can record as it is."""
    if decision.decision not in OUTCOMES:
        raise InputError(f"decision is {decision.decision!r}, not 'approve' or 'decline'")
    if not isinstance(decision.score, str):
        raise InputError("score must be a decimal string")
    if type(decision.version) is not int or type(decision.approval_seq) is not int:
        raise InputError("version and approval_seq must be integers")
    if type(decision.retention_days) is not int or decision.retention_days < 1:
        raise InputError(f"retention_days is {decision.retention_days!r}, not a positive integer")
    if not all(isinstance(r, str) for r in decision.reasons):
        raise InputError("reasons must be strings")
    _check_inputs(decision.inputs)
    if not isinstance(decision.flags, Mapping) or not all(
        isinstance(kind, str)
        and isinstance(names, list | tuple)
        and all(isinstance(n, str) for n in names)
        for kind, names in decision.flags.items()
    ):
        raise InputError("flags must map a kind to a list of feature names")
    values = decision.reason_values
    if len(values) not in (0, len(decision.reasons)):
        raise InputError("reason_values must give one value per reason (or none)")
    for item in values:
        if not isinstance(item, Mapping) or not isinstance(item.get("feature"), str):
            raise InputError("each reason value needs a 'feature' name")
        check_scalar(item.get("value"), f"reason value of {item['feature']!r}")


def associated_data(seq: int, model: str, version: int, key_id: str) -> bytes:
    """AES-GCM associated data: binds a ciphertext to its table, seq, model, version and key."""
    return canonical_bytes(
        {"key_id": key_id, "model": model, "seq": seq, "table": DECISIONS_TABLE, "version": version}
    )


def sealed_header(  # noqa: PLR0917 - the stored columns, in table order
    recorded_at: str,
    model: str,
    version: int,
    approval_seq: int,
    input_digest: str,
    score: str,
    decision: str,
    reasons: str,
    retain_until: str,
    flags: str | None = None,
    decision_id: str | None = None,
) -> dict[str, Any]:
    sealed = {
        "approval_seq": approval_seq,
        "decision": decision,
        "input_digest": input_digest,
        "model": model,
        "reasons": reasons,
        "recorded_at": recorded_at,
        "retain_until": retain_until,
        "score": score,
        "version": version,
    }
    if flags is not None:  # decisions written before flags were recorded have none
        sealed["flags"] = flags
    if decision_id is not None:  # nor have decisions written before ids
        sealed["decision_id"] = decision_id
    return sealed


_SEALED = (
    "recorded_at",
    "model",
    "version",
    "approval_seq",
    "input_digest",
    "score",
    "decision",
    "reasons",
    "retain_until",
)
_OPTIONAL = ("flags", "decision_id")  # plaintext, sealed and hashed where not NULL
_COLUMNS = ("seq", "batch", *_SEALED, *_OPTIONAL, "key_id", "nonce", "ciphertext", "leaf_hash")
COLUMNS: Final = ", ".join(_COLUMNS)
BATCH_COLUMNS: Final = (
    "batch, first_seq, last_seq, written_at, root_hash, prev_hash, batch_hash, "
    "key_fingerprint, signature"
)


def record_bytes(row: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of a stored decision record (every column but the leaf hash)."""
    doc = {name: row[name] for name in ("seq", "batch", *_SEALED, "key_id")}
    for name in _OPTIONAL:  # absent from records written before the column
        if row[name] is not None:
            doc[name] = row[name]
    doc["nonce"] = base64.b64encode(bytes(row["nonce"])).decode()
    doc["ciphertext"] = base64.b64encode(bytes(row["ciphertext"])).decode()
    return canonical_bytes(doc)


def batch_hash_of(  # noqa: PLR0917 - the batch row's fields, in table order
    batch: int, first_seq: int, last_seq: int, written_at: str, prev_hash: bytes, root: bytes
) -> bytes:
    """Chain hash of a batch: covers its number, range, time, root and the previous batch."""
    doc = {
        "batch": batch,
        "first_seq": first_seq,
        "last_seq": last_seq,
        "log": ORIGIN,
        "prev": base64.b64encode(prev_hash).decode(),
        "root": base64.b64encode(root).decode(),
        "written_at": written_at,
    }
    return hashlib.sha256(canonical_bytes(doc)).digest()


# -- the writer -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Pending:
    at: datetime
    decision: Decision
    inputs: dict[str, Any]
    reasons: tuple[str, ...]
    flags: str | None = None  # canonical_flags(decision.flags) when given
    reason_values: bytes | None = None  # canonical_reason_values(decision.reason_values)
    decision_id: str | None = None  # given by record_many (None: written as before ids)


_STOP: Final = object()


def _lock(conn: Connection) -> None:
    """Serialise batch writers across processes (:func:`core.db.writers_lock`)."""
    writers_lock(conn, ADVISORY_LOCK_ID)


class DecisionLog:
    """Records decisions in the background; one instance (and one writer thread) per process.

    ``engine`` must come from :func:`core.db.make_engine` (on SQLite its write
    transactions begin IMMEDIATE, which is the writers' lock).
    """

    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        signing_key_path: Path,
        *,
        batch_size: int = 256,
        flush_interval: float = 0.5,
        max_pending: int = 100_000,
        clock: Callable[[], datetime] = utcnow,
        anchor_dir: Path | None = None,
    ) -> None:
        if batch_size < 1 or flush_interval <= 0 or max_pending < batch_size:
            raise ValueError("need batch_size >= 1, flush_interval > 0, max_pending >= batch_size")
        self._engine = engine
        self._keyring = keyring
        self._key: Ed25519PrivateKey = load_private_key(signing_key_path)
        self._fingerprint = fingerprint(self._key.public_key())
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.max_pending = max_pending
        self._clock = clock
        # each batch's signed note is copied here after its commit (anchors_path / "decisions")
        self.anchor_dir = anchor_dir
        self.last_error: BaseException | None = None
        self._closed = False
        self._close_lock = threading.Lock()
        self._start()
        atexit.register(self._close_at_exit)

    def _start(self) -> None:
        self._pid = os.getpid()
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._waiting = 0  # decisions queued, not yet taken by the writer
        self._count_lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="govreg-decision-log", daemon=True)
        self._thread.start()

    def _after_fork(self) -> None:
        """A forked child: the parent's queue is the parent's to write; start afresh."""
        self._close_lock = threading.Lock()
        self._engine.dispose(close=False)  # never share the parent's connections
        self._start()

    # -- the scorer's side ------------------------------------------------------------------
    def record(self, decision: Decision) -> str:
        """Queue ``decision`` for writing; never waits on the database. Returns its
        decision id (:func:`new_decision_id`), by which it is found later.

        Raises :class:`InputError` for a malformed decision and
        :class:`DecisionLogError` when the log is closed, its writer is gone,
        or ``max_pending`` decisions are already waiting (the database is not
        keeping up): the caller should then not act on the decision.
        """
        (decision_id,) = self.record_many([decision])
        return decision_id

    def record_many(self, decisions: Sequence[Decision]) -> list[str]:
        """Queue a request's decisions together: all or none; their decision ids,
        in order (the log gives them, so no two decisions ever share one).

        Every decision is checked before any is queued (one malformed decision
        refuses them all, with :class:`InputError`), and the writer puts them
        in one batch, so one transaction commits all of them or none (a crash
        loses a whole request's decisions or none of them). Raises
        :class:`DecisionLogError` as :meth:`record` does, counting all of them
        against ``max_pending``.
        """
        if self._pid != os.getpid():
            self._after_fork()
        if self._closed:
            raise DecisionLogError("the decision log is closed; the decision was not recorded")
        if not decisions:
            return []
        for decision in decisions:
            check_decision(decision)
        if self._waiting + len(decisions) > self.max_pending:
            raise DecisionLogError(
                f"{self.max_pending} decisions are waiting to be written; the database is "
                f"not keeping up (last error: {self.last_error!r})"
            )
        if not self._thread.is_alive():
            raise DecisionLogError("the decision log's writer thread has stopped")
        at = self._clock()
        group = tuple(
            _Pending(
                at,
                d,
                dict(d.inputs),
                tuple(d.reasons),
                canonical_flags(d.flags),
                canonical_reason_values(d.reason_values),
                new_decision_id(),
            )
            for d in decisions
        )
        with self._count_lock:
            self._waiting += len(group)
        self._queue.put(group)
        return [str(p.decision_id) for p in group]

    def flush(self, timeout: float | None = None) -> None:
        """Block until every decision recorded before this call is committed."""
        if self._closed:
            return  # close() wrote everything
        if self._pid != os.getpid():
            self._after_fork()
        done = threading.Event()
        self._queue.put(done)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not done.wait(0.2):
            if not self._thread.is_alive():
                raise DecisionLogError("the decision log's writer thread has stopped")
            if deadline is not None and time.monotonic() >= deadline:
                raise DecisionLogError(
                    f"decisions not durable within {timeout} s (last error: {self.last_error!r})"
                )

    def close(self, timeout: float | None = None) -> None:
        """Write everything queued, then stop the writer. Idempotent; also runs at
        interpreter exit (with a timeout of ``EXIT_TIMEOUT`` seconds)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self._close_at_exit)
        if self._pid != os.getpid():
            return  # a forked child that never recorded: nothing of its own to write
        self._queue.put(_STOP)
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise DecisionLogError(
                f"decisions not written within {timeout} s of close "
                f"(last error: {self.last_error!r})"
            )
        # Decisions recorded by other threads while close() ran (after the stop marker).
        pending: list[_Pending] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, tuple):
                pending = self._take(pending, item)
            elif isinstance(item, threading.Event):
                item.set()
        if pending:
            self._write(pending)

    def _close_at_exit(self) -> None:
        """At interpreter exit: write what is queued, but never hang the exit on a
        database that is down (the loss is then logged, not silent)."""
        try:
            self.close(timeout=EXIT_TIMEOUT)
        except DecisionLogError as exc:
            _log.error("decision log: queued decisions lost at exit: %s", exc)

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, conn: Connection, model: str | None = None) -> Iterator[StoredDecision]:
        """Decrypted decisions in seq order (auditors)."""
        return read_decisions(conn, self._keyring, model=model)

    # -- the writer thread -----------------------------------------------------------------
    def _run(self) -> None:
        pending: list[_Pending] = []
        deadline = 0.0
        while True:
            timeout = max(0.0, deadline - time.monotonic()) if pending else None
            try:
                item = self._queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            while item is not None:
                if isinstance(item, tuple):  # one request's decisions (record_many)
                    if not pending:
                        deadline = time.monotonic() + self.flush_interval
                    pending = self._take(pending, item)
                elif isinstance(item, threading.Event):  # flush(): everything before it
                    if pending:
                        self._write(pending)
                        pending = []
                    item.set()
                else:  # close()
                    if pending:
                        self._write(pending)
                    return
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    item = None
            if pending and time.monotonic() >= deadline:
                self._write(pending)
                pending = []

    def _take(self, pending: list[_Pending], group: tuple[_Pending, ...]) -> list[_Pending]:
        """Add one request's decisions to the batch being collected, never splitting
        them across batches: a batch that has no room left for the whole group is
        written first; a batch that is full is written. Returns what is still pending."""
        with self._count_lock:
            self._waiting -= len(group)
        if pending and len(pending) + len(group) > self.batch_size:
            self._write(pending)
            pending = []
        pending.extend(group)
        if len(pending) >= self.batch_size:
            self._write(pending)
            return []
        return pending

    def _write(self, items: Sequence[_Pending]) -> None:
        """Write one batch, retrying with backoff until it commits: nothing is dropped."""
        delay = 0.05
        while True:
            try:
                self.write_batch(items)
            except Exception as exc:  # noqa: BLE001 - any failure: keep the batch and retry
                self.last_error = exc
                _log.warning("decision log: batch of %d not written, retrying: %s", len(items), exc)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
            else:
                self.last_error = None
                return

    def write_batch(self, items: Sequence[_Pending]) -> SignedBatch:
        """Encrypt, hash, sign and insert ``items`` as one batch in one transaction,
        then copy the signed batch to the anchor folder.

        From the transaction to the anchor file, this writer has the anchor
        folder to itself (see :func:`core.turns.folder_turn`): a writer that finds the last
        batch unanchored knows that batch's writer stopped, rather than being
        about to write it.
        """
        prepared: list[tuple[dict[str, Any], str, str, bytes]] = []
        for item in items:  # everything that does not depend on seq, before the lock
            d = item.decision
            plain_inputs = canonical_row(item.inputs)
            recorded_at = isoformat(item.at)
            retain_until = item.at + timedelta(days=d.retention_days)
            flags = item.flags if item.flags is not None else canonical_flags(d.flags)
            values = (
                item.reason_values
                if item.reason_values is not None
                else canonical_reason_values(d.reason_values)
            )
            fields = sealed_header(
                recorded_at,
                d.model,
                d.version,
                d.approval_seq,
                hashlib.sha256(plain_inputs).hexdigest(),
                d.score,
                d.decision,
                canonical_bytes(list(item.reasons)).decode(),
                isoformat(retain_until),
                flags,
                item.decision_id,
            )
            period, expires = retention_period(retain_until)
            plaintext = canonical_bytes(fields) + b"\n" + plain_inputs + b"\n" + values
            prepared.append((fields, period, isoformat(expires), plaintext))
        with folder_turn(self.anchor_dir):
            signed = self._commit(prepared)
            if self.anchor_dir is not None:
                # After the commit: an anchor never names a batch the database lacks. The
                # batch is committed: a failed anchor write must not write it again (the
                # next batch write anchors it, see _reanchor).
                try:
                    write_anchor(self.anchor_dir, signed)
                except OSError as exc:
                    _log.error(
                        "decision log: batch %d committed but its anchor not written (%s); "
                        "the next batch write anchors it",
                        signed.batch,
                        type(exc).__name__,
                    )
        return signed

    def _commit(self, prepared: Sequence[tuple[dict[str, Any], str, str, bytes]]) -> SignedBatch:
        """Number, chain, sign and insert the prepared rows as one batch, under the
        writers' lock, in one transaction."""
        from sqlalchemy import text

        with self._engine.begin() as conn:
            _lock(conn)
            last = conn.execute(
                text(
                    f"SELECT {BATCH_COLUMNS} FROM {DECISION_BATCHES_TABLE} "
                    "ORDER BY batch DESC LIMIT 1"
                )
            ).first()
            if last is not None:
                self._reanchor(_batch(last))
            batch, seq, prev = (
                (1, 0, GENESIS)
                if last is None
                else (int(last.batch) + 1, int(last.last_seq), bytes(last.batch_hash))
            )
            keys: dict[str, tuple[str, AESGCM]] = {}
            first_seq = seq + 1
            tree = CompactRange()
            rows = []
            for fields, period, expires_at, plaintext in prepared:
                if period not in keys:  # created under the writers' lock: no race
                    keys[period] = self._keyring.expiring_key(
                        conn, purpose=KEY_PURPOSE, period=period, expires_at=expires_at
                    )
                key_id, aes = keys[period]
                seq += 1
                nonce = secrets.token_bytes(12)
                ad = associated_data(seq, fields["model"], fields["version"], key_id)
                row = {
                    "seq": seq,
                    "batch": batch,
                    **fields,
                    "decision_id": fields.get("decision_id"),
                    "key_id": key_id,
                    "nonce": nonce,
                    "ciphertext": aes.encrypt(nonce, plaintext, ad),
                }
                row["leaf_hash"] = leaf_of(record_bytes(row))
                tree.append(row["leaf_hash"])
                rows.append(tuple(row[name] for name in _COLUMNS))
            written_at = isoformat(self._clock())
            root = tree.root()
            chained = batch_hash_of(batch, first_seq, seq, written_at, prev, root)
            unsigned = SignedBatch(
                batch=batch,
                first_seq=first_seq,
                last_seq=seq,
                written_at=written_at,
                root=root,
                prev_hash=prev,
                batch_hash=chained,
                key_fingerprint=self._fingerprint,
                signature=b"",
            )
            note = sign(self._key, ORIGIN, unsigned.signed_note.lines)
            signed = replace(unsigned, signature=note.signature)
            mark = "?" if is_sqlite(conn) else "%s"
            conn.exec_driver_sql(
                f"INSERT INTO {DECISIONS_TABLE} ({COLUMNS}) "
                f"VALUES ({', '.join([mark] * len(_COLUMNS))})",
                rows,
            )
            conn.execute(
                text(
                    f"INSERT INTO {DECISION_BATCHES_TABLE} ({BATCH_COLUMNS}) VALUES "
                    "(:b, :f, :l, :w, :r, :p, :h, :k, :s)"
                ),
                {
                    "b": batch,
                    "f": first_seq,
                    "l": seq,
                    "w": written_at,
                    "r": root,
                    "p": prev,
                    "h": chained,
                    "k": self._fingerprint,
                    "s": signed.signature,
                },
            )
        return signed

    def _reanchor(self, last: SignedBatch) -> None:
        """Under the writers' lock, in the anchor folder's turn: anchor the last
        committed batch if its writer stopped between commit and anchor write;
        only after checking that this log's key signed it (never copy a forged
        batch into the anchors)."""
        if self.anchor_dir is None or (self.anchor_dir / anchor_name(last.batch)).is_file():
            return
        last.verify(self._key.public_key())  # refuses to write on a batch it did not sign
        path = write_anchor(self.anchor_dir, last)
        _log.warning(
            "decision batch %d was not in the anchor folder (its writer stopped between "
            "commit and anchor write); anchored it now as %s",
            last.batch,
            path.name,
        )


# -- reading and verifying --------------------------------------------------------------------
def _batch(row: Any) -> SignedBatch:
    return SignedBatch(
        batch=int(row.batch),
        first_seq=int(row.first_seq),
        last_seq=int(row.last_seq),
        written_at=row.written_at,
        root=bytes(row.root_hash),
        prev_hash=bytes(row.prev_hash),
        batch_hash=bytes(row.batch_hash),
        key_fingerprint=row.key_fingerprint,
        signature=bytes(row.signature),
    )


# -- anchors ------------------------------------------------------------------------------------
def _batch_note(note: SignedNote, source: str) -> SignedNote:
    """A parsed batch note, its body checked: batch, last seq, batch hash, written at."""
    decimal(note.lines[1], source=source, what="last seq")
    decode_b64(note.lines[2], source=source, what="batch hash", length=32)
    return note


BATCH_ANCHORS: Final[AnchorLog[SignedNote]] = AnchorLog(
    prefix="batch", origin=ORIGIN, lines=4, decode=_batch_note, mode=0o600
)


def anchor_name(batch: int) -> str:
    return BATCH_ANCHORS.name(batch)


def write_anchor(anchor_dir: Path, signed: SignedBatch) -> Path:
    """Copy a batch's signed note to ``anchor_dir`` (mode 0600, durable, atomic)."""
    return BATCH_ANCHORS.write(anchor_dir, signed.batch, signed.to_text())


# The decision log's words for an anchor folder's problems (:mod:`audits.anchors`).
ANCHOR_WORDING: Final = Wording(
    unreadable="decision anchor file {name} cannot be read ({detail})",
    malformed="decision anchor file {name} is not a signed decision batch ({detail})",
    misnamed="decision anchor file {name} holds batch {number} (its name is {expected})",
    wrong_key=(
        "batch {number}: anchor file {name} is signed by key {named}, not the pinned key {pinned}"
    ),
    bad_signature=(
        "batch {number}: anchor file {name}: signature does not verify with the pinned public key"
    ),
    not_stored=(
        "batch {number}: anchored but missing from the database, which ends at batch {latest} "
        "(batches deleted from the end)"
    ),
    differs="batch {number}: anchor file {name} differs from the batch stored in the database",
    missing="batch {number}: its anchor file {name} is missing from the decision anchor folder",
    latest_unanchored=(
        "the newest decision batch ({number}) is not in the anchor folder yet ({name}): its "
        "writer stopped between commit and anchor write; the next batch write anchors it"
    ),
    before_anchors=(
        "decision batches 1..{number} have no anchor files: written before the decision log "
        "was anchored (or their anchors were removed)"
    ),
)


@contextmanager
def _anchor_failures() -> Iterator[None]:
    try:
        yield
    except AnchorError as exc:
        problem = exc.problem
        raise DecisionVerificationFailed(
            problem.worded(ANCHOR_WORDING), batch=problem.number
        ) from exc


def _read_anchors(anchor_dir: Path, public_key: Ed25519PublicKey) -> dict[int, Anchor[SignedNote]]:
    with _anchor_failures():
        return BATCH_ANCHORS.read(anchor_dir, public_key)


def _check_anchors(
    stored: Sequence[SignedBatch],
    anchors: dict[int, Anchor[SignedNote]],
    anchor_dir: Path,
    public_key: Ed25519PublicKey,
) -> tuple[int, list[str]]:
    """Every anchored batch is in the database, as anchored; every stored batch
    from the first anchored one on has its anchor, but the newest may lack one
    (its writer stopped between commit and anchor write): a warning then.
    Batches before the first anchored one were written before the log was
    anchored (a home upgraded with a decision log): a warning, not a failure.
    Returns how many anchors were checked and the warnings."""
    with _anchor_failures():
        checked = BATCH_ANCHORS.check(
            anchor_dir, {b.batch: b for b in stored}, anchors, public_key, before_first="warn"
        )
    return len(checked.anchors), [w.worded(ANCHOR_WORDING) for w in checked.warnings]


def head(conn: Connection) -> SignedBatch | None:
    """The last written batch (keep its ``to_text()`` outside the database to catch
    a later truncation: pass it to :func:`verify_decisions` as ``anchor``)."""
    from sqlalchemy import text

    row = conn.execute(
        text(f"SELECT {BATCH_COLUMNS} FROM {DECISION_BATCHES_TABLE} ORDER BY batch DESC LIMIT 1")
    ).first()
    return None if row is None else _batch(row)


def _rows(conn: Connection, where: str = "", params: Mapping[str, Any] | None = None) -> Any:
    from sqlalchemy import text

    stmt = text(f"SELECT {COLUMNS} FROM {DECISIONS_TABLE}{where} ORDER BY seq")
    # statement-level streaming (see Ledger.events): the connection stays usable
    return conn.execute(stmt.execution_options(stream_results=True, yield_per=2000), params or {})


def _key_for(
    conn: Connection, keyring: Keyring, ciphers: dict[str, AESGCM | None], row: Any
) -> AESGCM | None:
    """The key of a stored decision (looked up once per key id in ``ciphers``),
    or None when it is an expiring key that no longer exists (then call
    :func:`_check_erased`). A missing ledger data key fails."""
    key_id = row.key_id
    if key_id not in ciphers:
        try:
            ciphers[key_id] = (
                keyring.expiring_cipher(conn, key_id)
                if key_id.startswith(KEY_PURPOSE + "/")
                else keyring.cipher(conn, key_id)  # written before expiring keys
            )
        except IntegrityError as exc:
            _fail(f"seq {row.seq}: {exc}", seq=int(row.seq))
    return ciphers[key_id]


def _check_period(row: Any) -> None:
    """An expiring key's row is under the key of the month its retention ends in."""
    # retain_until is written in UTC: its first 7 characters are the month
    if row.key_id.startswith(KEY_PURPOSE + "/") and row.key_id != expiring_key_id(
        KEY_PURPOSE, row.retain_until[:7]
    ):
        _fail(
            f"seq {row.seq}: encrypted under {row.key_id}, not under the key of its "
            f"retention period (retain_until {row.retain_until})",
            seq=int(row.seq),
        )


def _check_erased(row: Any, now: datetime) -> None:
    """A decision whose key is gone: fine once its retention period is over, a
    failure before (a live key was deleted)."""
    seq = int(row.seq)
    _check_period(row)
    try:
        _, expires = retention_period(parse(row.retain_until))
    except ValueError:
        _fail(f"seq {seq}: retain_until {row.retain_until!r} is not a timestamp", seq=seq)
    if expires > now:
        _fail(
            f"seq {seq}: data key {row.key_id} is missing, but the decision must be kept "
            f"until {row.retain_until} (a live key was deleted)",
            seq=seq,
        )


def _open(aes: Any, row: Any) -> tuple[bytes, bytes, bytes | None]:
    """(sealed header bytes, canonical inputs, canonical reason values or None for a
    decision written before they were kept) of a row; raises InvalidTag. RFC 8785
    text holds no raw newline, so the parts split at the newlines between them."""
    plain: bytes = aes.decrypt(
        bytes(row.nonce),
        bytes(row.ciphertext),
        associated_data(int(row.seq), row.model, int(row.version), row.key_id),
    )
    header, _, rest = plain.partition(b"\n")
    inputs, newline, values = rest.partition(b"\n")
    return header, inputs, values if newline else None


def read_decisions(
    conn: Connection,
    keyring: Keyring,
    *,
    model: str | None = None,
    version: int | None = None,
    now: datetime | None = None,
) -> Iterator[StoredDecision]:
    """Decrypted decisions in seq order, streamed; a decision whose retention
    ended (as of ``now``, default the current time) and whose key was destroyed
    comes with ``inputs=None``. A ciphertext that fails authentication, or a
    key missing before the end of retention, raises
    :class:`DecisionVerificationFailed` naming its seq."""
    import json

    from cryptography.exceptions import InvalidTag

    where = []
    params: dict[str, Any] = {}
    if model is not None:
        where.append("model = :model")
        params["model"] = model
    if version is not None:
        where.append("version = :version")
        params["version"] = version
    at = now or utcnow()
    ciphers: dict[str, AESGCM | None] = {}
    result = _rows(conn, " WHERE " + " AND ".join(where) if where else "", params)
    try:
        for row in result:
            aes = _key_for(conn, keyring, ciphers, row)
            inputs: bytes | None = None
            values: bytes | None = None
            if aes is None:
                _check_erased(row, at)
            else:
                try:
                    _, inputs, values = _open(aes, row)
                except InvalidTag as exc:
                    raise DecisionVerificationFailed(
                        f"seq {row.seq}: ciphertext fails AES-GCM authentication",
                        seq=int(row.seq),
                    ) from exc
            yield StoredDecision(
                seq=int(row.seq),
                batch=int(row.batch),
                recorded_at=row.recorded_at,
                model=row.model,
                version=int(row.version),
                approval_seq=int(row.approval_seq),
                inputs=None if inputs is None else json.loads(inputs),
                input_digest=row.input_digest,
                score=row.score,
                decision=row.decision,
                reasons=json.loads(row.reasons),
                retain_until=row.retain_until,
                key_id=row.key_id,
                leaf_hash=bytes(row.leaf_hash),
                flags={} if row.flags is None else json.loads(row.flags),
                reason_values=None if values is None else json.loads(values),
                decision_id=row.decision_id,
            )
    finally:
        result.close()


def _fail(message: str, *, seq: int | None = None, batch: int | None = None) -> NoReturn:
    raise DecisionVerificationFailed(message, seq=seq, batch=batch)


def _check_row(
    conn: Connection,
    keyring: Keyring,
    ciphers: dict[str, AESGCM | None],
    row: Any,
    now: datetime,
) -> tuple[bytes, bool]:
    """Steps 2-5 for one stored decision; returns its recomputed leaf and
    whether its inputs were erased (steps 2-4 then cannot run: the leaf, the
    root, the chain and the signature still cover the stored ciphertext)."""
    import json

    from cryptography.exceptions import InvalidTag

    seq = int(row.seq)
    aes = _key_for(conn, keyring, ciphers, row)
    if aes is None:
        leaf = leaf_of(record_bytes(row._mapping))
        if leaf != bytes(row.leaf_hash):
            _fail(f"seq {seq}: stored record does not match its leaf hash", seq=seq)
        _check_erased(row, now)  # retain_until and key_id as the leaf (and root) say
        return leaf, True
    # 2. the ciphertext authenticates for this row (key, seq, model, version)
    try:
        header, inputs, _ = _open(aes, row)
    except InvalidTag as exc:
        raise DecisionVerificationFailed(
            f"seq {seq}: ciphertext fails AES-GCM authentication "
            "(altered, or moved from another row, model or version)",
            seq=seq,
        ) from exc
    # 3. the plaintext fields equal their sealed copies
    sealed = json.loads(header)
    for name in (*_SEALED, *_OPTIONAL):
        stored = getattr(row, name)
        if sealed.get(name) != stored:
            _fail(
                f"seq {seq}: plaintext field '{name}' was altered "
                f"(stored {stored!r}, sealed {sealed.get(name)!r})",
                seq=seq,
            )
    _check_period(row)
    # 4. the decrypted inputs hash to input_digest
    if hashlib.sha256(inputs).hexdigest() != row.input_digest:
        _fail(f"seq {seq}: decrypted inputs do not match input_digest", seq=seq)
    # 5. the leaf covers the stored record
    leaf = leaf_of(record_bytes(row._mapping))
    if leaf != bytes(row.leaf_hash):
        _fail(f"seq {seq}: stored record does not match its leaf hash", seq=seq)
    return leaf, False


def verify_decisions(
    conn: Connection,
    keyring: Keyring,
    public_key: Ed25519PublicKey,
    *,
    anchor: SignedBatch | None = None,
    anchor_dir: Path | None = None,
    now: datetime | None = None,
) -> DecisionLogReport:
    """Verify the whole decision log with the pinned ``public_key`` (never one
    read from the database); raise :class:`DecisionVerificationFailed` at the
    first problem, naming its seq or batch.

    For every batch, in order: 1. batch numbers and seq ranges are gapless;
    then for each of its decisions 2. the ciphertext authenticates, 3. the
    plaintext fields equal the sealed copies, 4. the inputs hash to
    ``input_digest``, 5. the leaf hash covers the stored record, and
    6. the row says it belongs to this batch; then 7. the Merkle root of the
    leaves equals the stored root, 8. the batch hash follows from the previous
    batch hash, the range, the time and the root, 9. the signature verifies.
    Finally no decision lies beyond the last batch and, given an ``anchor``
    (a batch note kept outside the database), that batch is still there.

    Given ``anchor_dir`` (the anchor folder's ``decisions`` sub-folder, where
    the writer copies every batch after its commit): every anchor file is
    signed by the pinned key, names a batch the database holds and equals it
    byte for byte (so deleting the last batches, or all of them, fails), and
    every stored batch has its anchor file, except that the newest may lack
    one (its writer stopped between commit and anchor write): a warning in
    the report, and the next batch write anchors it.

    A decision whose expiring key was destroyed (:func:`purge_expired`) skips
    steps 2-4 and is counted as erased, provided its retention period ended
    before ``now`` (default: the current time); before that, the missing key
    is a failure.
    """
    from sqlalchemy import text

    key_fpr = fingerprint(public_key)
    # Anchors first: a writer writes its anchor after its commit, so every
    # anchor read now names a batch the query below sees.
    anchors = None if anchor_dir is None else _read_anchors(anchor_dir, public_key)
    batches = conn.execute(
        text(f"SELECT {BATCH_COLUMNS} FROM {DECISION_BATCHES_TABLE} ORDER BY batch")
    ).all()
    at = now or utcnow()
    result = _rows(conn)
    ciphers: dict[str, AESGCM | None] = {}
    stored: list[SignedBatch] = []
    prev = GENESIS
    next_seq = 1
    count = 0
    erased = 0
    try:
        rows = iter(result)
        row = next(rows, None)
        for number, batch_row in enumerate(batches, start=1):
            signed = _batch(batch_row)
            # 1. gapless batches and ranges
            if signed.batch != number:
                _fail(
                    f"batch {number}: missing (the next stored batch is {signed.batch})",
                    batch=number,
                )
            if signed.first_seq != next_seq or signed.last_seq < signed.first_seq:
                _fail(
                    f"batch {number}: covers seq {signed.first_seq}..{signed.last_seq}, "
                    f"expected to start at {next_seq}",
                    batch=number,
                )
            tree = CompactRange()
            for seq in range(signed.first_seq, signed.last_seq + 1):
                if row is None or int(row.seq) > seq:
                    _fail(
                        f"seq {seq}: missing (batch {number} covers seq "
                        f"{signed.first_seq}..{signed.last_seq})",
                        seq=seq,
                        batch=number,
                    )
                leaf, was_erased = _check_row(conn, keyring, ciphers, row, at)
                tree.append(leaf)
                erased += was_erased
                # 6. the row is in the batch that covers it
                if int(row.batch) != number:
                    _fail(
                        f"seq {seq}: says batch {row.batch}, but batch {number} covers it",
                        seq=seq,
                        batch=number,
                    )
                count += 1
                row = next(rows, None)
            # 7. the root covers the leaves
            if tree.root() != signed.root:
                _fail(
                    f"batch {number} (seq {signed.first_seq}..{signed.last_seq}): "
                    "Merkle root does not match its decisions",
                    batch=number,
                )
            # 8. the chain
            if signed.prev_hash != prev:
                _fail(
                    f"batch {number}: previous hash does not match batch {number - 1}", batch=number
                )
            expected = batch_hash_of(
                number, signed.first_seq, signed.last_seq, signed.written_at, prev, signed.root
            )
            if expected != signed.batch_hash:
                _fail(f"batch {number}: batch hash does not follow from its fields", batch=number)
            # 9. the signature, by the pinned key
            signed.verify(public_key)
            stored.append(signed)
            prev = signed.batch_hash
            next_seq = signed.last_seq + 1
        if row is not None:
            _fail(f"seq {row.seq}: not covered by any signed batch", seq=int(row.seq))
    finally:
        result.close()
    if anchor is not None:
        anchor.verify(public_key)
        if anchor.batch > len(batches):
            _fail(
                f"batch {len(batches) + 1}: missing; the anchor was signed at batch "
                f"{anchor.batch} (batches deleted from the end)",
                batch=len(batches) + 1,
            )
        if bytes(batches[anchor.batch - 1].batch_hash) != anchor.batch_hash:
            _fail(f"batch {anchor.batch}: differs from its anchor", batch=anchor.batch)
    warnings: list[str] = []
    anchored = None
    if anchor_dir is not None and anchors is not None:
        anchored, warnings = _check_anchors(stored, anchors, anchor_dir, public_key)
    return DecisionLogReport(
        decisions=count,
        batches=len(batches),
        head_hash=prev,
        key_fingerprint=key_fpr,
        erased=erased,
        erased_keys=tuple(sorted(k for k, aes in ciphers.items() if aes is None)),
        anchors=anchored,
        warnings=tuple(warnings),
    )


# -- retention --------------------------------------------------------------------------------
def purge_expired(conn: Connection, keyring: Keyring, *, now: datetime) -> PurgeReport:
    """Destroy the decision keys whose whole period is past retention at ``now``.

    Runs in the caller's transaction (which should also record the report in
    the ledger), under the decision writers' lock. Each key's decisions are
    counted, and a key under which some decision's retention has not ended is
    refused (never expected: the writer picks the key from ``retain_until``).
    The rows stay; their inputs become undecryptable. Re-running destroys
    nothing more.
    """
    from sqlalchemy import text

    _lock(conn)
    purged = []
    for key in keyring.expiring_keys(conn, purpose=KEY_PURPOSE):
        if not key.expired(now):
            continue
        count, latest = conn.execute(
            text(f"SELECT count(*), max(retain_until) FROM {DECISIONS_TABLE} WHERE key_id = :k"),
            {"k": key.key_id},
        ).one()
        if latest is not None and latest >= key.expires_at:
            raise IntegrityError(
                f"data key {key.key_id} expires at {key.expires_at}, but a decision under it "
                f"must be kept until {latest}; refusing to destroy it"
            )
        keyring.destroy_expiring(conn, key, now=now)
        purged.append(PurgedKey(key.key_id, key.period, key.expires_at, int(count)))
    return PurgeReport(at=isoformat(now), keys=tuple(purged))
