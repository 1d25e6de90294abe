"""Verify the ledger's events in parallel worker processes.

The events ``1..n`` are cut into chunks of ``2**k`` events aligned on their
size (the last chunk may be shorter), so each full chunk is a complete subtree
of the RFC 6962 tree and a worker can compute its hash alone. Each worker:

1. opens its own database connection and reads the parent's snapshot (see
   below);
2. runs every per-row check of the sequential pass on its rows
   (:func:`audits.verify.check_event`: types, seq, AES-GCM, sealed fields,
   leaf, chain, authenticator). It starts from the stored chain hash of the
   event before its chunk, which the worker of the previous chunk checks;
3. compares the stored tree nodes that end inside its chunk, up to the chunk's
   own level, with the nodes it recomputes;
4. returns, for every signed size in its chunk, the hash of its leaves up to
   that size; for the stored frontier of each such checkpoint, the part that
   precedes the chunk; and for a full chunk, its hash and the stored nodes
   above it.

The parent combines the chunk hashes in seq order, as the sequential compact
range would, into the tree head at every signed size. It compares that head
with the checkpoint's signed root and stored frontier, and with the stored
nodes above the chunks. The count of node rows must be exactly the number of
complete subtrees, so an extra row anywhere fails too.

The result is that of the sequential pass, always. The parallel pass only
says yes or "ask the sequential pass". That happens when the ledger's shape
does not suit it: events beyond the latest checkpoint, a row count that is
not the latest signed size, a node count that is wrong. It happens when a
worker finds anything wrong or fails in any way. It also happens when a head
differs. :func:`audits.verify.verify_ledger` then verifies sequentially in
the same transaction, so the first failure reported (message, seq, exit code)
is the one ``--workers 1`` reports. On a clean ledger the report is the same
(size, root, counts, warnings, summary).

All workers read the rows the parent's transaction sees:

- on PostgreSQL, the parent (in REPEATABLE READ, as ``Registry.verify``
  opens it) exports its snapshot with ``pg_export_snapshot()`` and each
  worker's REPEATABLE READ transaction starts with ``SET TRANSACTION
  SNAPSHOT``. They see exactly the same rows;
- on SQLite (WAL), each worker reads in its own transaction, begun after the
  parent's. Writers only append: seqs above the head, checkpoints above the
  latest size, nodes above it (:func:`core.db.writers_lock` serialises them,
  and the append-only triggers refuse UPDATE and DELETE). So a worker's later
  snapshot holds the same rows for seqs ``1..n`` as the parent's, and every
  query a worker runs is bounded by ``n``.

The workers start through the ``forkserver`` method, never by forking the
parent, which holds database connections. Memory stays flat: workers stream
their rows, and the parent holds O(log n) hashes and the checkpoints of the
chunks in flight.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import re
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audits.ledger import COLUMNS, GENESIS, frontier_text
from audits.merkle import CompactRange, fold, node_hash
from audits.tables import EVENTS_TABLE, NODES_TABLE
from audits.verify import (
    NODE_COLUMNS,
    VerificationFailed,
    VerifyReport,
    Workers,
    bad_column,
    check_event,
    replayed,
)
from core.errors import InputError

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

    from audits.anchors import Anchor
    from audits.events import Event
    from audits.keyring import Keyring
    from audits.ledger import Ledger
    from audits.signing import SignedCheckpoint
    from audits.verify import StoredCheckpoint

__all__ = [
    "AUTO_MIN_EVENTS",
    "MAX_WORKERS",
    "Layout",
    "WorkersError",
    "parse_workers",
    "resolve_workers",
    "verify_parallel",
]

MAX_WORKERS = 64
# "auto" verifies in parallel from this many events on: starting the workers
# took 1.4 s (docs/benchmarks.md), which two workers at the sequential rate of
# about 40,000 events/s each win back only above about 110,000 events.
AUTO_MIN_EVENTS = 200_000
_MIN_LEVEL, _MAX_LEVEL = 10, 16  # chunks of 1,024 to 65,536 events
_CHUNKS_PER_WORKER = 8
_BATCH = 5000
# What the forkserver imports once, so each worker starts in milliseconds.
_PRELOAD = [
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql.psycopg",
    "psycopg",
    "cryptography.hazmat.primitives.ciphers.aead",
    "audits.parallel",
]
_SNAPSHOT_ID = re.compile(r"[0-9A-Fa-f]+(-[0-9A-Fa-f]+)+")


# -- the option -----------------------------------------------------------------------
class WorkersError(InputError, ValueError):
    """A ``--workers`` value that is not a count of processes or "auto" (bad
    input: exit code 2; still a ValueError for the callers that catch one)."""


def parse_workers(text: str) -> Workers:
    """``"auto"`` or a whole number 1..64 of worker processes; else WorkersError
    with a message that says what to give."""
    value = text.strip()
    if value.lower() == "auto":
        return "auto"
    wanted = f"give a whole number from 1 to {MAX_WORKERS}, or auto"
    if not value.isascii() or not value.isdigit():
        raise WorkersError(f"{text!r} is not a number of worker processes: {wanted}")
    count = int(value)
    if not 1 <= count <= MAX_WORKERS:
        raise WorkersError(f"{count} worker processes is out of range: {wanted}")
    return count


def resolve_workers(
    workers: Workers, size: int, *, cpus: int | None = None, load: float | None = None
) -> int:
    """The number of processes to verify ``size`` events with. ``auto``: from
    AUTO_MIN_EVENTS events on, one per CPU that is free (``cpus`` minus the
    1-minute load average ``load``, this process's own CPU counted as free), at
    most 64; below that, or with fewer than two free, 1: workers that share busy
    cores with other work only add their start-up (docs/benchmarks.md)."""
    if workers == "auto":
        if size < AUTO_MIN_EVENTS:
            return 1
        cpus = (os.cpu_count() or 1) if cpus is None else cpus
        load = os.getloadavg()[0] if load is None else load
        free = min(cpus, int(cpus - load) + 1, MAX_WORKERS)
        return free if free >= 2 else 1  # parallel means two or more
    if not 1 <= workers <= MAX_WORKERS:
        raise WorkersError(f"{workers} worker processes is out of range 1..{MAX_WORKERS}")
    return workers


# -- the parent -----------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """What :func:`audits.verify.verify_ledger` read before the events: the key's
    fingerprint, the checked checkpoints and anchors, every signed size (sorted),
    the signed tree head at each, and the anchor warnings."""

    key_fpr: str
    stored: dict[int, StoredCheckpoint]
    anchors: dict[int, Anchor[SignedCheckpoint]]
    sizes: list[int]
    targets: dict[int, SignedCheckpoint]
    warnings: list[str]


@dataclass(frozen=True)
class _Setup:
    """What every worker needs: where the database and the data keys are, the
    authenticator key if at hand, and the PostgreSQL snapshot to read."""

    url: str
    keys_dir: Path
    mac_key: bytes | None
    snapshot: str | None


@dataclass(frozen=True)
class _Chunk:
    number: int
    first: int  # first seq
    last: int  # last seq
    level: int | None  # k of a complete subtree of 2**k events; None: the last, shorter chunk
    signed: tuple[tuple[int, str | None], ...]  # signed sizes inside, with their stored frontier


@dataclass(frozen=True)
class _Outcome:
    number: int
    state: tuple[bytes, ...]  # the chunk's compact range over its own leaves
    roots: tuple[tuple[int, bytes], ...]  # (size, hash of the chunk's leaves up to it)
    head: tuple[str, ...] | None  # the stored frontiers' part before the chunk (hex)
    upper: tuple[tuple[int, bytes], ...]  # stored (level, hash) above the chunk, at its end
    nodes: int  # stored node rows matched inside the chunk


def verify_parallel(
    conn: Connection,
    ledger: Ledger,
    layout: Layout,
    *,
    workers: Workers,
    chunk_level: int | None,
    on_event: Callable[[Event], None] | None,
    replay_types: frozenset[str] | None,
    mac_key: bytes | None,
) -> VerifyReport | None:
    """The report of a clean ledger verified in parallel, or None: verify it
    sequentially (the ledger does not suit, or something does not check out).
    ``on_event`` then receives the events of ``replay_types`` in seq order, read
    again in this transaction once every worker has verified them."""
    if on_event is not None and replay_types is None:
        return None  # every event to the caller: nothing left to share out
    size = int(conn.exec_driver_sql(f"SELECT count(*) FROM {EVENTS_TABLE}").scalar_one())
    processes = resolve_workers(workers, size)
    if processes < 2 or size == 0 or not _suits(conn):
        return None
    covered = max(layout.stored, default=0)
    if layout.sizes[-1:] != [size] or covered != size:
        return None  # unsigned events or missing ones: the sequential pass names them
    nodes = size - size.bit_count()  # the complete subtrees of level >= 1
    if int(conn.exec_driver_sql(f"SELECT count(*) FROM {NODES_TABLE}").scalar_one()) != nodes:
        return None
    level = chunk_level if chunk_level is not None else _chunk_level(size, processes)
    chunks = list(_chunks(size, level, layout))
    setup = _Setup(
        url=conn.engine.url.render_as_string(hide_password=False),
        keys_dir=ledger.keyring.keys_dir,
        mac_key=mac_key,
        snapshot=_export_snapshot(conn),
    )
    processes = min(processes, len(chunks))
    root = _combine(_outcomes(setup, chunks, processes), chunks, layout, nodes)
    if root is None:
        return None
    if on_event is not None and replay_types:
        _replay(conn, ledger, size, on_event, replay_types)
    return VerifyReport(
        size=size,
        root=root,
        checkpoints=len(layout.stored),
        anchors=len(layout.anchors),
        key_fingerprint=layout.key_fpr,
        warnings=layout.warnings,
        authenticators_checked=mac_key is not None,
        workers=processes,
    )


def _suits(conn: Connection) -> bool:
    """Other processes can read what this transaction reads: a SQLite file, or a
    PostgreSQL transaction whose snapshot lasts (REPEATABLE READ or SERIALIZABLE)."""
    url = conn.engine.url
    if conn.dialect.name == "sqlite":
        database = url.database or ""
        return database not in {"", ":memory:"} and "mode=memory" not in str(url)
    if conn.dialect.name == "postgresql":
        level = conn.exec_driver_sql("SHOW transaction_isolation").scalar_one()
        return str(level) in {"repeatable read", "serializable"}
    return False


def _export_snapshot(conn: Connection) -> str | None:
    if conn.dialect.name != "postgresql":
        return None
    snapshot = str(conn.exec_driver_sql("SELECT pg_export_snapshot()").scalar_one())
    if not _SNAPSHOT_ID.fullmatch(snapshot):
        raise VerificationFailed(f"PostgreSQL exported an unexpected snapshot id {snapshot!r}")
    return snapshot


def _chunk_level(size: int, processes: int) -> int:
    """About eight chunks per worker, each 2**10 to 2**16 events."""
    per_chunk = max(size // (processes * _CHUNKS_PER_WORKER), 1)
    return min(max(per_chunk.bit_length() - 1, _MIN_LEVEL), _MAX_LEVEL)


def _chunks(size: int, level: int, layout: Layout) -> Iterator[_Chunk]:
    width = 1 << level
    sizes = iter(layout.sizes)
    signed = next(sizes, None)
    for number, before in enumerate(range(0, size, width)):
        last = min(before + width, size)
        inside: list[tuple[int, str | None]] = []
        while signed is not None and signed <= last:
            row = layout.stored.get(signed)
            inside.append((signed, None if row is None else row.frontier))
            signed = next(sizes, None)
        yield _Chunk(
            number=number,
            first=before + 1,
            last=last,
            level=level if last - before == width else None,
            signed=tuple(inside),
        )


def _outcomes(
    setup: _Setup, chunks: list[_Chunk], processes: int
) -> Generator[_Outcome | None, None, None]:
    """Each chunk's outcome in seq order (None: that chunk does not check out, or a
    worker died); leaving the generator cancels the chunks not started yet."""
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    pool = ProcessPoolExecutor(
        processes, mp_context=context, initializer=_start_worker, initargs=(setup,)
    )
    try:
        running = {pool.submit(_run_chunk, chunk) for chunk in chunks}
        waiting: dict[int, _Outcome | None] = {}
        following = 0
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    number, outcome = future.result()
                except Exception:  # noqa: BLE001 - a worker died: verify sequentially
                    yield None
                    return
                waiting[number] = outcome
            while following in waiting:
                yield waiting.pop(following)
                following += 1
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _combine(
    outcomes: Generator[_Outcome | None, None, None],
    chunks: list[_Chunk],
    layout: Layout,
    nodes: int,
) -> bytes | None:
    """The root over every chunk, if every signed head, stored frontier and stored
    node above the chunks checks out; else None."""
    state: list[bytes] = []  # the compact range over the chunks so far
    matched = 0
    with closing(outcomes):
        for chunk, outcome in zip(chunks, outcomes, strict=True):
            if outcome is None:
                return None
            if outcome.head is not None and outcome.head != tuple(h.hex() for h in state):
                return None
            for size, local in outcome.roots:
                if fold([*state, local]) != layout.targets[size].root:
                    return None
            matched += outcome.nodes
            if chunk.level is None:  # the last, shorter chunk ends the tree
                state.extend(outcome.state)
                continue
            if len(outcome.state) != 1:
                return None
            above = _push(state, chunk.first - 1, chunk.level, outcome.state[0])
            if above != list(outcome.upper):
                return None
            matched += len(above)
            row = layout.stored.get(chunk.last)
            if row is not None and row.frontier != frontier_text(
                CompactRange.from_state(chunk.last, state)
            ):
                return None
    return fold(state) if matched == nodes else None


def _push(state: list[bytes], before: int, level: int, subtree: bytes) -> list[tuple[int, bytes]]:
    """Append the complete subtree of ``level`` over the leaves after the first
    ``before`` (a multiple of its width) to the compact range ``state``, merging
    like a binary carry; the subtrees it completes, as ``(level, hash)``."""
    completed: list[tuple[int, bytes]] = []
    carry = before >> level
    while carry & 1:
        subtree = node_hash(state.pop(), subtree)
        level += 1
        completed.append((level, subtree))
        carry >>= 1
    state.append(subtree)
    return completed


def _replay(
    conn: Connection,
    ledger: Ledger,
    size: int,
    on_event: Callable[[Event], None],
    replay_types: frozenset[str],
) -> None:
    """Hand the verified events of ``replay_types`` to ``on_event``, in seq order."""
    from cryptography.exceptions import InvalidTag

    from audits.ledger import associated_data
    from audits.verify import _typed

    pg = conn.dialect.name == "postgresql"
    mark = "%s" if pg else "?"
    types = sorted(str(t) for t in replay_types)
    sql = (
        f"SELECT {COLUMNS} FROM {EVENTS_TABLE} WHERE event_type IN "
        f"({', '.join([mark] * len(types))}) AND seq <= {mark} ORDER BY seq"
    )
    raw: Any = conn.connection.driver_connection
    with closing(_rows(raw, pg, "govreg_verify_replay", sql, (*types, size))) as rows:
        for raw_row in rows:
            row = _typed(raw_row, 0)
            seq, event_type, key_id, nonce, ciphertext = (row[0], row[2], *row[7:10])
            aes = ledger.keyring.cipher(conn, key_id)
            try:
                plain = aes.decrypt(nonce, ciphertext, associated_data(seq, event_type, key_id))
            except InvalidTag as exc:
                raise VerificationFailed(
                    f"seq {seq}: ciphertext does not match its leaf hash (it changed while "
                    "the ledger was being verified)",
                    seq=seq,
                ) from exc
            on_event(replayed(row, plain, row[10]))


# -- the workers ----------------------------------------------------------------------
_WORKER: dict[str, Any] = {}


class _Mismatch(Exception):
    """Something in a chunk does not check out (the sequential pass says what)."""


def _start_worker(setup: _Setup) -> None:
    from sqlalchemy.pool import NullPool

    from audits.keyring import Keyring
    from core.db import make_engine

    _WORKER["setup"] = setup
    _WORKER["engine"] = make_engine(setup.url, poolclass=NullPool)
    _WORKER["keyring"] = Keyring(setup.keys_dir)


def _run_chunk(chunk: _Chunk) -> tuple[int, _Outcome | None]:
    """Verify one chunk in its own transaction on the parent's snapshot."""
    from core.db import read_only

    setup: _Setup = _WORKER["setup"]
    engine: Engine = _WORKER["engine"]
    try:
        conn = read_only(engine)
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
        try:
            with conn.begin():
                if setup.snapshot is not None:
                    conn.exec_driver_sql(f"SET TRANSACTION SNAPSHOT '{setup.snapshot}'")
                return chunk.number, _check_chunk(conn, _WORKER["keyring"], setup.mac_key, chunk)
        finally:
            conn.close()
    except Exception:  # noqa: BLE001 - any problem at all: the parent verifies sequentially
        return chunk.number, None


def _rows(
    raw: Any, pg: bool, name: str, sql: str, params: tuple[Any, ...]
) -> Generator[Any, None, None]:
    """The rows of ``sql`` streamed from the driver (a server-side cursor on PostgreSQL)."""
    if pg:
        cursor = raw.cursor(name=name)
        cursor.itersize = _BATCH
    else:
        cursor = raw.cursor()
    try:
        cursor.execute(sql, params)
        while rows := cursor.fetchmany(_BATCH):
            yield from rows
    finally:
        cursor.close()


def _blob(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value


def _node(row: Any) -> tuple[int, int, bytes]:
    if row is None:
        raise _Mismatch("a tree node is missing")
    values = tuple(_blob(v) for v in row)
    if bad_column("tree node", values, NODE_COLUMNS) is not None:
        raise _Mismatch("a tree node has a wrong type")
    return values[0], values[1], values[2]


def _frontier_head(text: str, tail: list[bytes]) -> tuple[str, ...]:
    """The hashes of a stored frontier before ``tail`` (the chunk's own part)."""
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise _Mismatch("a stored frontier is not JSON") from exc
    if type(values) is not list or any(type(v) is not str for v in values):
        raise _Mismatch("a stored frontier is not a list of hashes")
    cut = len(values) - len(tail)
    if json.dumps(values) != text or cut < 0 or values[cut:] != [h.hex() for h in tail]:
        raise _Mismatch("a stored frontier differs")
    return tuple(values[:cut])


def _check_chunk(
    conn: Connection, keyring: Keyring, mac_key: bytes | None, chunk: _Chunk
) -> _Outcome:
    from audits.verify import _typed

    raw: Any = conn.connection.driver_connection
    pg = conn.dialect.name == "postgresql"
    mark = "%s" if pg else "?"
    chain = GENESIS
    if chunk.first > 1:
        found = conn.exec_driver_sql(
            f"SELECT chain_hash FROM {EVENTS_TABLE} WHERE seq = {mark}", (chunk.first - 1,)
        ).all()
        if len(found) != 1 or type(_blob(found[0][0])) is not bytes:
            raise _Mismatch("the chain hash before the chunk")
        chain = _blob(found[0][0])
    bounds = (chunk.first, chunk.last)
    events = _rows(
        raw,
        pg,
        "govreg_verify_chunk",
        f"SELECT {COLUMNS} FROM {EVENTS_TABLE} WHERE seq >= {mark} AND seq <= {mark} ORDER BY seq",
        bounds,
    )
    stored_nodes = _rows(
        raw,
        pg,
        "govreg_verify_chunk_nodes",
        f"SELECT last_seq, level, hash FROM {NODES_TABLE} WHERE last_seq >= {mark} "
        f"AND last_seq <= {mark} ORDER BY last_seq, level",
        bounds,
    )
    with closing(events), closing(stored_nodes):
        signed = dict(chunk.signed)
        tree = CompactRange()
        roots: list[tuple[int, bytes]] = []
        heads: set[tuple[str, ...]] = set()
        ciphers: dict[str, Any] = {}
        expected = chunk.first
        matched = 0
        for raw_row in events:
            row = _typed(raw_row, expected)
            leaf, _ = check_event(conn, keyring, ciphers, row, expected, chain, mac_key)
            chain = row[11]
            for level, value in tree.append(leaf):
                if _node(next(stored_nodes, None)) != (expected, level, value):
                    raise _Mismatch("a tree node differs")
                matched += 1
            if expected in signed:
                roots.append((expected, tree.root()))
                text = signed[expected]
                if text is not None and (chunk.level is None or expected != chunk.last):
                    heads.add(_frontier_head(text, tree.state()))
            expected += 1
        if expected != chunk.last + 1 or len(heads) > 1:
            raise _Mismatch("rows are missing, or the stored frontiers disagree")
        upper: list[tuple[int, bytes]] = []
        for node_row in stored_nodes:
            last, level, value = _node(node_row)
            if chunk.level is None or last != chunk.last or level <= chunk.level:
                raise _Mismatch("an extra tree node")
            upper.append((level, value))
    return _Outcome(
        number=chunk.number,
        state=tuple(tree.state()),
        roots=tuple(roots),
        head=next(iter(heads), None),
        upper=tuple(upper),
        nodes=matched,
    )
