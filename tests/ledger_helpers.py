"""Shared helpers for the ledger tests: appending, verifying, tampering, workers.

The worker functions at the bottom run in separate processes (multiprocessing
"forkserver": children fork from a clean server process that has preloaded
this module, so a killed or concurrent writer is a real process that starts in
milliseconds instead of re-importing SQLAlchemy for seconds).
"""

from __future__ import annotations

import json
import multiprocessing
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from audits.events import Event, EventType, NewEvent
from audits.ledger import (
    associated_data,
    chain_of,
    envelope_bytes,
    leaf_of,
    row_leaf,
    sealed_header,
)
from audits.signing import load_public_key
from audits.verify import VerificationFailed, VerifyReport
from govreg.context import Context, build
from govreg.settings import Settings

GUARD_RAILS_SQLITE = (
    "ledger_events_no_update",
    "ledger_events_no_delete",
    "ledger_checkpoints_no_update",
    "ledger_checkpoints_no_delete",
    "ledger_tree_nodes_no_update",
    "ledger_tree_nodes_no_delete",
)
GUARD_RAILS_POSTGRES = (
    ("ledger_events_append_only", "ledger_events"),
    ("ledger_events_no_truncate", "ledger_events"),
    ("ledger_checkpoints_append_only", "ledger_checkpoints"),
    ("ledger_checkpoints_no_truncate", "ledger_checkpoints"),
    ("ledger_tree_nodes_append_only", "ledger_tree_nodes"),
    ("ledger_tree_nodes_no_truncate", "ledger_tree_nodes"),
)

DECISION_GUARD_RAILS_SQLITE = (
    "decisions_no_update",
    "decisions_no_delete",
    "decision_batches_no_update",
    "decision_batches_no_delete",
)
DECISION_GUARD_RAILS_POSTGRES = (
    ("decisions_append_only", "decisions"),
    ("decisions_no_truncate", "decisions"),
    ("decision_batches_append_only", "decision_batches"),
    ("decision_batches_no_truncate", "decision_batches"),
)


# -- acting through a context ---------------------------------------------------
def benchmark(run: int, *, actor: str = "alice", **data: Any) -> NewEvent:
    return NewEvent(
        type=EventType.BENCHMARK,
        actor=actor,
        model="credit-risk",
        version=1,
        data={"run": run, "score": f"0.{run:04d}", **data},
        index={"run": run},
    )


def append(ctx: Context, runs: range) -> list[Event]:
    """One transaction per event (each signs its checkpoint)."""
    stored: list[Event] = []
    for run in runs:
        with ctx.registry.transaction() as conn:
            stored.extend(ctx.registry.record(conn, [benchmark(run)]))
    return stored


def append_in(ctx: Context, *batches: range) -> list[Event]:
    """One transaction per batch: a checkpoint at the end of each."""
    stored: list[Event] = []
    for runs in batches:
        with ctx.registry.transaction() as conn:
            stored.extend(ctx.registry.record(conn, [benchmark(run) for run in runs]))
    return stored


# The ledger most tests tamper with: bootstrap writes seq 1-3, then runs 4-5, 6-10 and
# 11-12 are one transaction each, so checkpoints (all anchored) are at 3, 5, 10, 12.
STANDARD_BATCHES = (range(4, 6), range(6, 11), range(11, 13))


def standard_ledger(home: Any, *, guard_rails: bool = True) -> Context:
    """A context on ``home`` holding the standard ledger (see STANDARD_BATCHES);
    without the append-only guard rails if ``guard_rails`` is False."""
    ctx: Context = home.context()
    append_in(ctx, *STANDARD_BATCHES)
    if not guard_rails:
        drop_guard_rails(ctx)
    return ctx


def checkpoint_sizes(ctx: Context) -> list[int]:
    return [int(r[0]) for r in sql(ctx, "SELECT size FROM ledger_checkpoints ORDER BY size")]


def anchor_files(ctx: Context) -> list[str]:
    return sorted(p.name for p in ctx.settings.anchors_path.glob("*.txt"))


def verify(ctx: Context, *, authenticators: bool = False) -> VerifyReport:
    """Verify as an auditor with the public key only; ``authenticators`` also
    recomputes every event's authenticator with the home's signing key."""
    key = load_public_key(ctx.settings.public_key_path)
    report: VerifyReport = ctx.registry.verify(
        None, key, anchor_dir=ctx.settings.anchors_path, authenticators=authenticators
    )
    return report


def failure(ctx: Context, *, authenticators: bool = False) -> VerificationFailed:
    """The VerificationFailed that verification of ``ctx``'s ledger raises."""
    with pytest.raises(VerificationFailed) as info:
        verify(ctx, authenticators=authenticators)
    return info.value


def fresh(ctx: Context, **overrides: Any) -> Context:
    """A new context on the same home (empty key caches), like a new process."""
    settings = ctx.settings.model_copy(update=overrides)
    return build(settings)


# -- raw database access, as an attacker --------------------------------------------
def sql(ctx: Context, statement: str, params: dict[str, Any] | None = None) -> Any:
    """Run one statement in its own transaction; returns the rows, if any."""
    with ctx.engine.begin() as conn:
        result = conn.execute(text(statement), params or {})
        return result.all() if result.returns_rows else result.rowcount


def drop_guard_rails(
    ctx: Any,
    sqlite_triggers: tuple[str, ...] = GUARD_RAILS_SQLITE,
    postgres_triggers: tuple[tuple[str, str], ...] = GUARD_RAILS_POSTGRES,
) -> None:
    """Drop append-only triggers (the ledger's by default) through ``ctx.engine``."""
    with ctx.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            for name in sqlite_triggers:
                conn.execute(text(f"DROP TRIGGER {name}"))
        else:
            for name, table in postgres_triggers:
                conn.execute(text(f"DROP TRIGGER {name} ON {table}"))


def postgres_dump(engine: Any) -> bytes:
    """Every row of every table in the current schema, as text (raw-dump checks)."""
    with engine.begin() as conn:
        tables = conn.execute(
            text(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        ).all()
        dump = []
        for (table,) in tables:
            rows = conn.execute(text(f'SELECT t::text FROM "{table}" AS t')).all()
            dump.extend(str(r[0]) for r in rows)
    return "\n".join(dump).encode()


def event_row(ctx: Context, seq: int) -> Any:
    rows = sql(ctx, "SELECT * FROM ledger_events WHERE seq = :s", {"s": seq})
    assert len(rows) == 1
    return rows[0]


def seqs(ctx: Context) -> list[int]:
    return [int(r[0]) for r in sql(ctx, "SELECT seq FROM ledger_events ORDER BY seq")]


def flip(data: bytes, index: int = 0) -> bytes:
    changed = bytearray(data)
    changed[index] ^= 0x01
    return bytes(changed)


def renumber(ctx: Context, old: int, new: int) -> None:
    """Move row ``old`` to seq ``new`` (``new`` must be free)."""
    sql(ctx, "UPDATE ledger_events SET seq = :n WHERE seq = :o", {"n": new, "o": old})


def recompute_hashes(ctx: Context, start: int) -> None:
    """Recompute every leaf and chain hash from ``start`` on, as an attacker would."""
    with ctx.engine.begin() as conn:
        previous = conn.execute(
            text("SELECT chain_hash FROM ledger_events WHERE seq = :s"), {"s": start - 1}
        ).scalar_one()
        chain = bytes(previous)
        rows = conn.execute(
            text("SELECT * FROM ledger_events WHERE seq >= :s ORDER BY seq"), {"s": start}
        ).all()
        for row in rows:
            leaf = row_leaf(row)
            chain = chain_of(chain, leaf)
            conn.execute(
                text("UPDATE ledger_events SET leaf_hash = :l, chain_hash = :c WHERE seq = :s"),
                {"l": leaf, "c": chain, "s": row.seq},
            )


def reencrypt(ctx: Any, seq: int, old: bytes, new: bytes) -> None:
    """An attacker holding the data key rewrites seq's payload properly: decrypt,
    edit the sealed plaintext, encrypt under a fresh nonce with the right
    associated data, then recompute every later leaf and chain hash."""
    row = event_row(ctx, seq)
    with ctx.engine.connect() as conn:
        aes = ctx.ledger.keyring.cipher(conn, row.key_id)
        conn.rollback()
    aad = associated_data(seq, row.event_type, row.key_id)
    plain = aes.decrypt(bytes(row.nonce), bytes(row.ciphertext), aad)
    assert plain.count(old) == 1
    nonce = secrets.token_bytes(12)
    ciphertext = aes.encrypt(nonce, plain.replace(old, new), aad)
    sql(
        ctx,
        "UPDATE ledger_events SET nonce = :n, ciphertext = :c WHERE seq = :s",
        {"n": nonce, "c": ciphertext, "s": seq},
    )
    recompute_hashes(ctx, seq)


def forge_score(ctx: Any, seq: int) -> None:
    reencrypt(ctx, seq, f'"score":"0.{seq:04d}"'.encode(), b'"score":"0.9999"')


def forge(ctx: Any, new: NewEvent, authenticator: bytes | None) -> int:
    """Append ``new`` as the attacker can: a payload encrypted under the active data
    key, the right associated data, leaf and chain hashes, and, for the registry,
    its projection rows; the authenticator is whatever the attacker can come up with."""
    from core.canonical import canonical_bytes
    from core.clock import isoformat, utcnow
    from registry.projection import DatabaseView, apply

    with ctx.engine.begin() as conn:
        head = conn.exec_driver_sql(
            "SELECT seq, chain_hash FROM ledger_events ORDER BY seq DESC LIMIT 1"
        ).one()
        seq = int(head[0]) + 1
        key_id = ctx.ledger.keyring.active_key_id(conn)
        aes = ctx.ledger.keyring.cipher(conn, key_id)
        recorded_at = isoformat(utcnow())
        index = canonical_bytes(new.index).decode()
        plain = (
            sealed_header(recorded_at, new.actor, new.model, new.version, index)
            + json.dumps(new.data, sort_keys=True, separators=(",", ":")).encode()
        )
        nonce = secrets.token_bytes(12)
        ciphertext = aes.encrypt(nonce, plain, associated_data(seq, str(new.type), key_id))
        leaf = leaf_of(
            envelope_bytes(
                seq, recorded_at, str(new.type), new.actor, new.model, new.version, index,
                key_id, nonce, ciphertext,
            )
        )  # fmt: skip
        conn.exec_driver_sql(
            "INSERT INTO ledger_events VALUES " + ("(" + ", ".join(["?"] * 13) + ")")
            if conn.dialect.name == "sqlite"
            else "INSERT INTO ledger_events VALUES (" + ", ".join(["%s"] * 13) + ")",
            (
                seq, recorded_at, str(new.type), new.actor, new.model, new.version, index,
                key_id, nonce, ciphertext, leaf, chain_of(bytes(head[1]), leaf), authenticator,
            ),
        )  # fmt: skip
        events = list(ctx.ledger.events(conn))
        apply(DatabaseView(conn), events[-1])
    return seq


def forged_admin(ctx: Any, authenticator: bytes | None) -> tuple[int, str]:
    """A ``principal.created`` admin event and its ``principals`` row; its API key."""
    from registry.principals import principal_created
    from registry.roles import Role

    event, api_key = principal_created("admin", "mallory", Role.ADMIN, None, person="admin")
    return forge(ctx, event, authenticator), api_key


def checkpoint_issued_at(ctx: Context, size: int) -> str:
    rows = sql(ctx, "SELECT issued_at FROM ledger_checkpoints WHERE size = :s", {"s": size})
    return str(rows[0][0])


def key_fingerprint(ctx: Context) -> str:
    """The full fingerprint of the home's checkpoint public key."""
    from audits.signing import fingerprint

    return fingerprint(load_public_key(ctx.settings.public_key_path))


# -- processes ------------------------------------------------------------------------
# What the forkserver imports once, so that a worker starts in milliseconds.
# (Python 3.11's forkserver does not apply the parent's sys.path before
# preloading, so this module itself, in tests/, is imported by each worker;
# everything heavy it needs is already loaded by then.)
PRELOAD = [
    "pytest",
    "sqlalchemy",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql.psycopg",
    "psycopg",
    "cryptography.hazmat.primitives.ciphers.aead",
    "cryptography.hazmat.primitives.asymmetric.ed25519",
    "govreg.context",
    "govreg.settings",
    "registry.services",
    "registry.store",
    "audits.ledger",
    "audits.verify",
]


def mp_context() -> Any:
    """The forkserver context, preloading SQLAlchemy, cryptography and govreg."""
    mp = multiprocessing.get_context("forkserver")
    mp.set_forkserver_preload(PRELOAD)
    return mp


@contextmanager
def _context(home: str, database_url: str) -> Iterator[Context]:
    ctx = build(Settings(home=Path(home), database_url=database_url))
    try:
        yield ctx
    finally:
        ctx.close()


def crash_writer(home: str, database_url: str, admin_key: str, tag: str, ready: Any) -> None:
    """Append batches of three events forever; every fifth batch also creates a
    principal (a projection row in the same transaction). Signals ``ready``
    after the first commit; the parent then kills it at some moment."""
    with _context(home, database_url) as ctx:
        admin = ctx.registry.authenticate(admin_key)
        batch = 0
        while True:
            events = [
                NewEvent(
                    type=EventType.BENCHMARK,
                    actor="writer",
                    data={"proc": tag, "batch": batch, "part": part, "pad": "x" * 200},
                    index={"proc": tag, "batch": batch},
                )
                for part in range(3)
            ]
            with ctx.registry.transaction() as conn:
                ctx.registry.record(conn, events)
            if batch % 5 == 4:
                ctx.registry.create_principal(admin, f"p-{tag}-{batch}", "validator")
            if batch == 0:
                ready.send("ready")
            batch += 1


def concurrent_writer(home: str, database_url: str, proc: int, count: int, pipe: Any) -> None:
    """Wait for "go", then append ``count`` events, one transaction each: the first
    half, then "half" and a wait for the second "go", then the rest (so every
    writer's first half comes before any writer's second half, whatever the
    scheduler does)."""
    with _context(home, database_url) as ctx:
        with ctx.registry.transaction() as conn:  # connect and unwrap the key first
            ctx.ledger.keyring.cipher(conn, ctx.ledger.keyring.active_key_id(conn))
        pipe.send("ready")
        assert pipe.recv() == "go"
        for i in range(count):
            if i == count // 2:
                pipe.send("half")
                assert pipe.recv() == "go"
            with ctx.registry.transaction() as conn:
                ctx.registry.record(
                    conn,
                    [
                        NewEvent(
                            type=EventType.BENCHMARK,
                            actor=f"proc-{proc}",
                            data={"proc": proc, "i": i},
                            index={"proc": proc},
                        )
                    ],
                )
        pipe.send("done")


def wait_for(pipe: Any, expected: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pipe.poll(0.05):
            assert pipe.recv() == expected
            return
    raise AssertionError(f"no {expected!r} from the worker within {timeout} s")


def anchor_crash_writer(home: str, database_url: str, runs: list[int], pipe: Any) -> None:
    """Append benchmark events ``runs`` in one transaction that signs a checkpoint,
    then stop between its commit and its anchor write: send the sizes whose
    anchors are pending and wait there to be killed."""
    with _context(home, database_url) as ctx:

        def stop_before_anchors(conn: Any) -> list[Path]:
            pending = conn.info.get("govreg_pending_anchors", [])
            pipe.send([cp.size for cp in pending])
            time.sleep(120)
            raise AssertionError("the parent did not kill this writer")

        ctx.ledger.write_anchors = stop_before_anchors  # type: ignore[method-assign]
        with ctx.registry.transaction() as conn:
            ctx.registry.record(conn, [benchmark(run) for run in runs])
