"""Parallel verification (audits/parallel.py) against the sequential pass.

The oracle is the sequential verifier: on a clean ledger the parallel report
equals it (the same counts, root and summary), and on a tampered ledger the
parallel run raises exactly the failure the sequential run raises (message,
seq, exit code). Small chunks (``chunk_level``) make ledgers of a few dozen
events span many chunks, with checkpoints inside chunks and at their ends.

The ledger: bootstrap writes seq 1-3, then runs 4..45 in the transactions of
BATCHES, so checkpoints (all anchored) are at 3, 8, 12, 16, 17, 30, 32 and
45 (45 is not a power of two). With chunks of 4 events, 8, 12, 16 and 32 end
a chunk, and 17, 30 and 45 fall inside one.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ledger_helpers import (
    append_in,
    checkpoint_sizes,
    drop_guard_rails,
    event_row,
    flip,
    forge_score,
    sql,
)
from sqlalchemy import text

from audits.ledger import _Appended
from audits.parallel import (
    AUTO_MIN_EVENTS,
    MAX_WORKERS,
    WorkersError,
    parse_workers,
    resolve_workers,
)
from audits.signing import load_public_key
from audits.verify import VerificationFailed, VerifyReport, verify_ledger
from core.db import read_only

BATCHES = (
    range(4, 9),
    range(9, 13),
    range(13, 17),
    range(17, 18),
    range(18, 31),
    range(31, 33),
    range(33, 46),
)
SIZES = [3, 8, 12, 16, 17, 30, 32, 45]


@pytest.fixture
def ctx(home: Any) -> Iterator[Any]:
    context = home.context()
    append_in(context, *BATCHES)
    drop_guard_rails(context)
    yield context
    context.close()


def _verify(ctx: Any, *, authenticators: bool = False, **options: Any) -> VerifyReport:
    """As an auditor with the public key only, unless ``authenticators``."""
    key = load_public_key(ctx.settings.public_key_path)
    report: VerifyReport = ctx.registry.verify(
        None, key, anchor_dir=ctx.settings.anchors_path, authenticators=authenticators, **options
    )
    return report


def _failure(ctx: Any, **options: Any) -> VerificationFailed:
    with pytest.raises(VerificationFailed) as info:
        _verify(ctx, **options)
    return info.value


def _same_failure(ctx: Any, *, authenticators: bool = False) -> VerificationFailed:
    """The sequential failure, asserted equal to the parallel ones."""
    sequential = _failure(ctx, authenticators=authenticators)
    for level in (1, 2):
        parallel = _failure(ctx, authenticators=authenticators, workers=2, chunk_level=level)
        assert (parallel.seq, str(parallel), parallel.exit_code) == (
            sequential.seq,
            str(sequential),
            sequential.exit_code,
        )
    return sequential


# -- clean ledgers ----------------------------------------------------------------------
def test_the_ledger_spans_chunks(ctx: Any) -> None:
    assert checkpoint_sizes(ctx) == SIZES


@pytest.mark.parametrize("level", [0, 1, 2, 3, 5])
def test_clean_ledger_same_report(ctx: Any, level: int) -> None:
    sequential = _verify(ctx)
    parallel = _verify(ctx, workers=2, chunk_level=level)
    assert parallel == sequential
    assert parallel.summary() == sequential.summary()
    assert (parallel.size, parallel.checkpoints, parallel.anchors) == (45, 8, 8)
    assert (sequential.workers, parallel.workers) == (1, 2)  # it did run in parallel


def test_clean_ledger_three_workers_with_authenticators(ctx: Any) -> None:
    sequential = _verify(ctx, authenticators=True)
    parallel = _verify(ctx, authenticators=True, workers=3, chunk_level=2)
    assert sequential.authenticators_checked is True
    assert (parallel, parallel.summary(), parallel.workers) == (
        sequential,
        sequential.summary(),
        3,
    )


def test_more_workers_than_chunks(ctx: Any) -> None:
    parallel = _verify(ctx, workers=8, chunk_level=4)  # 3 chunks: 16, 16 and 13 events
    assert (parallel, parallel.workers) == (_verify(ctx), 3)


def test_auto_stays_sequential_below_its_threshold(ctx: Any) -> None:
    report = _verify(ctx, workers="auto")
    assert (report, report.workers) == (_verify(ctx), 1)


def test_replay_reaches_the_registry_in_parallel(ctx: Any) -> None:
    """The registry's projection is compared with the replay after the parallel pass:
    a deleted projection row fails as sequentially."""
    sql(ctx, "DELETE FROM principals WHERE name = 'admin'")
    err = _same_failure(ctx)
    assert (err.seq, str(err)) == (
        None,
        "registry table 'principals' lacks row ('admin',) that the ledger created",
    )


LEAVES = "SELECT leaf_hash FROM ledger_events ORDER BY seq"


def _tiny(home: Any, size: int) -> Any:
    """A context whose ledger holds the first ``size`` bootstrap events only, signed."""
    context = home.context()
    drop_guard_rails(context)
    sql(context, "DELETE FROM ledger_tree_nodes")
    sql(context, "DELETE FROM ledger_checkpoints")
    sql(context, "DELETE FROM ledger_events WHERE seq > :n", {"n": size})
    for anchor in context.settings.anchors_path.glob("*.txt"):
        anchor.unlink()
    if size:  # sign it from scratch, as the first write of a new ledger does
        with context.registry.transaction() as conn:
            leaves = [bytes(r[0]) for r in conn.execute(text(LEAVES)).all()]
            context.ledger.checkpoint(conn, _Appended(conn.get_transaction(), 1, None, leaves))
    return context


# by size: sequential, chunks of one event, chunks of two
WORKERS_USED = {0: [1, 1, 1], 1: [1, 1, 1], 2: [1, 2, 1], 3: [1, 2, 2]}


@pytest.mark.parametrize("size", [0, 1, 2, 3])
def test_tiny_ledgers(home: Any, size: int) -> None:
    context = _tiny(home, size)
    key = load_public_key(context.settings.public_key_path)
    try:
        reports = []
        for options in ({}, {"workers": 2, "chunk_level": 0}, {"workers": 2, "chunk_level": 1}):
            with read_only(context.engine) as opened:
                conn = opened
                if conn.dialect.name == "postgresql":
                    conn = conn.execution_options(isolation_level="REPEATABLE READ")
                with conn.begin():
                    reports.append(
                        verify_ledger(conn, context.ledger, key, anchor_dir=None, **options)
                    )
        assert reports[1] == reports[0] == reports[2]
        assert (reports[0].size, reports[0].checkpoints) == (size, 1 if size else 0)
        # an empty ledger has nothing to share out; a worker per chunk, at most two
        assert [r.workers for r in reports] == WORKERS_USED[size]
    finally:
        context.close()


# -- tampered ledgers: the first failure is the sequential one --------------------------
def test_altered_ciphertext(ctx: Any) -> None:
    ciphertext = bytes(event_row(ctx, 22).ciphertext)
    sql(ctx, "UPDATE ledger_events SET ciphertext = :c WHERE seq = 22", {"c": flip(ciphertext, 3)})
    assert _same_failure(ctx).seq == 22


def test_altered_plaintext_field(ctx: Any) -> None:
    sql(ctx, "UPDATE ledger_events SET actor = 'mallory' WHERE seq = 9")
    err = _same_failure(ctx)
    assert str(err) == (
        "seq 9: plaintext field 'actor' was altered (stored 'mallory', sealed 'alice')"
    )


def test_two_altered_events_report_the_first(ctx: Any) -> None:
    for seq in (40, 13):
        sql(ctx, f"UPDATE ledger_events SET actor = 'mallory' WHERE seq = {seq}")
    assert _same_failure(ctx).seq == 13


def test_rewritten_history_with_recomputed_hashes(ctx: Any) -> None:
    forge_score(ctx, 26)
    err = _same_failure(ctx)
    assert err.seq == 18  # the range since the last good checkpoint (17)
    assert str(err).startswith("seq 18..30: history differs from the checkpoint signed at size 30")
    err = _same_failure(ctx, authenticators=True)
    assert str(err) == (
        "seq 26: authenticator does not match (the event was added or rewritten by someone "
        "without the checkpoint signing key)"
    )


@pytest.mark.parametrize("seq", [1, 14, 16, 17, 44, 45])
def test_deleted_row(ctx: Any, seq: int) -> None:
    sql(ctx, "DELETE FROM ledger_events WHERE seq = :s", {"s": seq})
    assert _same_failure(ctx).seq == seq


def test_renumbered_row(ctx: Any) -> None:
    sql(ctx, "UPDATE ledger_events SET seq = 100 WHERE seq = 45")
    err = _same_failure(ctx)
    assert err.seq == 45


def test_altered_chain_hash(ctx: Any) -> None:
    chain = bytes(event_row(ctx, 16).chain_hash)  # the last of a chunk of 4
    sql(ctx, "UPDATE ledger_events SET chain_hash = :c WHERE seq = 16", {"c": flip(chain)})
    err = _same_failure(ctx)
    assert str(err) == "seq 16: chain hash does not follow from the previous event"


@pytest.mark.parametrize(("level", "last"), [(1, 22), (2, 28), (3, 24), (4, 32), (5, 32)])
def test_bad_stored_node(ctx: Any, level: int, last: int) -> None:
    """Inside a chunk and above the chunks (levels 3 to 5 with chunks of 4 or 2)."""
    stored = sql(
        ctx,
        "SELECT hash FROM ledger_tree_nodes WHERE level = :l AND last_seq = :s",
        {"l": level, "s": last},
    )
    sql(
        ctx,
        "UPDATE ledger_tree_nodes SET hash = :h WHERE level = :l AND last_seq = :s",
        {"h": flip(bytes(stored[0][0])), "l": level, "s": last},
    )
    err = _same_failure(ctx)
    first = last - (1 << level) + 1
    assert str(err) == (
        f"tree node at level {level} over seqs {first}..{last}: column 'hash' differs from "
        "the hash recomputed from the leaves"
    )


def test_missing_stored_node(ctx: Any) -> None:
    sql(ctx, "DELETE FROM ledger_tree_nodes WHERE level = 3 AND last_seq = 40")
    assert _same_failure(ctx).seq == 40


@pytest.mark.parametrize(("last", "level"), [(21, 0), (33, 1), (44, 7), (46, 1)])
def test_extra_stored_node(ctx: Any, last: int, level: int) -> None:
    sql(
        ctx,
        "INSERT INTO ledger_tree_nodes (last_seq, level, hash) VALUES (:s, :l, :h)",
        {"s": last, "l": level, "h": bytes(32)},
    )
    assert "(an extra row)" in str(_same_failure(ctx))


@pytest.mark.parametrize("size", [17, 32])
def test_altered_frontier(ctx: Any, size: int) -> None:
    """Inside a chunk (17) and at a chunk's end (32)."""
    sql(
        ctx,
        "UPDATE ledger_checkpoints SET frontier = '[]' WHERE size = :s",
        {"s": size},
    )
    assert str(_same_failure(ctx)) == (
        f"database checkpoint at size {size}: column 'frontier' differs from the compact "
        f"range recomputed from leaves 1..{size}"
    )


def test_forged_checkpoint(ctx: Any) -> None:
    sql(ctx, "UPDATE ledger_checkpoints SET root_hash = :r WHERE size = 30", {"r": bytes(32)})
    assert str(_same_failure(ctx)).startswith("database checkpoint at size 30")


def test_deleted_latest_checkpoint(ctx: Any) -> None:
    """Events beyond the latest database checkpoint: the anchor names size 45."""
    sql(ctx, "DELETE FROM ledger_checkpoints WHERE size = 45")
    _same_failure(ctx)


def test_unsigned_events_at_the_end(ctx: Any) -> None:
    with ctx.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO ledger_events SELECT 46, recorded_at, event_type, actor, model, "
                "version, index_fields, key_id, nonce, ciphertext, leaf_hash, chain_hash, "
                "authenticator FROM ledger_events WHERE seq = 45"
            )
        )
    assert _same_failure(ctx).seq == 46


def test_type_confused_column(sqlite_home: Any) -> None:
    """SQLite keeps any type in any column: a REAL version, a text seq."""
    context = sqlite_home.context()
    try:
        append_in(context, *BATCHES)
        drop_guard_rails(context)
        sql(context, "UPDATE ledger_events SET version = 1.5 WHERE seq = 27")
        assert str(_same_failure(context)) == (
            "seq 27: column 'version' holds 1.5 (REAL), expected an integer or NULL"
        )
        sql(context, "UPDATE ledger_events SET version = 1 WHERE seq = 27")
        sql(context, "UPDATE ledger_events SET leaf_hash = 'x' WHERE seq = 20")
        assert str(_same_failure(context)) == (
            "seq 20: column 'leaf_hash' holds 'x' (TEXT), expected 32 bytes"
        )
        sql(context, "UPDATE ledger_events SET seq = 'twelve' WHERE seq = 12")
        assert _same_failure(context).seq == 12
    finally:
        context.close()


# -- the option -------------------------------------------------------------------------
WANTED = f"give a whole number from 1 to {MAX_WORKERS}, or auto"


@pytest.mark.parametrize(
    ("given", "parsed"), [("1", 1), ("2", 2), ("64", 64), ("auto", "auto"), (" AUTO ", "auto")]
)
def test_parse_workers(given: str, parsed: Any) -> None:
    assert parse_workers(given) == parsed


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("0", f"0 worker processes is out of range: {WANTED}"),
        ("65", f"65 worker processes is out of range: {WANTED}"),
        ("-1", f"'-1' is not a number of worker processes: {WANTED}"),
        ("two", f"'two' is not a number of worker processes: {WANTED}"),
        ("", f"'' is not a number of worker processes: {WANTED}"),
        ("1.5", f"'1.5' is not a number of worker processes: {WANTED}"),
        ("\u0663", f"'\u0663' is not a number of worker processes: {WANTED}"),
    ],
)
def test_parse_workers_refuses(given: str, message: str) -> None:
    with pytest.raises(WorkersError) as info:
        parse_workers(given)
    assert str(info.value) == message


@given(st.text(max_size=12))
def test_parse_workers_fuzz(given: str) -> None:
    """Any text is a count 1..64, auto, or WorkersError saying what to give."""
    problem = ""
    try:
        parsed = parse_workers(given)
    except WorkersError as exc:
        problem = str(exc)
    if problem:
        assert problem.endswith(WANTED)
    else:
        assert parsed == "auto" or 1 <= int(parsed) <= MAX_WORKERS


def test_resolve_workers() -> None:
    assert resolve_workers("auto", AUTO_MIN_EVENTS - 1, cpus=8, load=0.0) == 1
    assert resolve_workers("auto", AUTO_MIN_EVENTS, cpus=8, load=0.0) == 8
    assert resolve_workers("auto", AUTO_MIN_EVENTS, cpus=8, load=3.5) == 5
    assert resolve_workers("auto", AUTO_MIN_EVENTS, cpus=2, load=0.7) == 2
    assert resolve_workers("auto", AUTO_MIN_EVENTS, cpus=2, load=1.2) == 1  # one core free
    assert resolve_workers("auto", AUTO_MIN_EVENTS, cpus=2, load=4.1) == 1  # busy machine
    assert resolve_workers("auto", AUTO_MIN_EVENTS, cpus=128, load=0.0) == MAX_WORKERS
    assert resolve_workers("auto", AUTO_MIN_EVENTS) <= min(os.cpu_count() or 1, MAX_WORKERS)
    assert resolve_workers(3, 10) == 3
    for bad in (0, MAX_WORKERS + 1):
        with pytest.raises(WorkersError) as info:
            resolve_workers(bad, 10)
        assert str(info.value) == f"{bad} worker processes is out of range 1..{MAX_WORKERS}"
