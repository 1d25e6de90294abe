"""Eight writer processes appending at once: one gapless ledger, every event
exactly once, in each writer's own order, and it verifies."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import pytest
from ledger_helpers import append, concurrent_writer, mp_context, seqs, verify, wait_for

from audits.events import EventType

PROCESSES = 8
EACH = 50


def test_concurrent_appends(home: Any) -> None:
    mp = mp_context()
    workers = []
    try:
        for proc in range(PROCESSES):
            parent, child = mp.Pipe()
            worker = mp.Process(
                target=concurrent_writer,
                args=(str(home.path), home.database_url, proc, EACH, child),
            )
            worker.start()
            child.close()
            workers.append((worker, parent))
        for _, pipe in workers:
            wait_for(pipe, "ready", timeout=60)
        for expected in ("half", "done"):  # all start at once, and again after half
            for _, pipe in workers:
                pipe.send("go")
            for _, pipe in workers:
                wait_for(pipe, expected, timeout=120)
        for worker, _ in workers:
            worker.join(30)
            assert worker.exitcode == 0
    finally:
        for worker, pipe in workers:
            if worker.is_alive():
                worker.kill()
                worker.join()
            worker.close()
            pipe.close()

    ctx = home.context()
    try:
        total = 3 + PROCESSES * EACH  # bootstrap wrote seq 1 to 3
        assert seqs(ctx) == list(range(1, total + 1))
        with ctx.registry.reading() as conn:
            events = list(ctx.ledger.events(conn, types=[EventType.BENCHMARK]))
        assert len(events) == PROCESSES * EACH
        seen = Counter((e.data["proc"], e.data["i"]) for e in events)
        assert seen == Counter({(p, i): 1 for p in range(PROCESSES) for i in range(EACH)})
        for proc in range(PROCESSES):
            mine = [e for e in events if e.data["proc"] == proc]
            assert [e.data["i"] for e in mine] == list(range(EACH))  # seq order = own order
            assert {e.actor for e in mine} == {f"proc-{proc}"}
        # the writers did interleave: every first half precedes every second half,
        # so each half changes writer at least PROCESSES - 1 times, and once between
        switches = sum(1 for a, b in itertools.pairwise(events) if a.actor != b.actor)
        assert switches >= 2 * PROCESSES - 1
        halves = [e.data["i"] >= EACH // 2 for e in events]
        assert halves == sorted(halves)

        report = verify(ctx)
        # one checkpoint per transaction: the bootstrap's and one per event, each anchored
        assert (report.size, report.checkpoints, report.anchors) == (total, 401, 401)
        assert report.warnings == []
    finally:
        ctx.close()


def test_checkpoint_committed_while_verification_starts(
    home: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writer commits a checkpoint and writes its anchor just as a verifier
    starts: no false alarm. (Anchors are written after their commit, so they
    must be read before the verifier's database snapshot is taken.)"""
    import audits.verify

    ctx = home.context()
    writer = home.context()
    original = audits.verify.read_anchors
    raced = []

    def read_anchors_with_a_writer_in_between(*args: Any) -> Any:
        if not raced:
            raced.append(append(writer, range(4, 8)))  # commits checkpoints 4..7 and anchors
        return original(*args)

    monkeypatch.setattr(audits.verify, "read_anchors", read_anchors_with_a_writer_in_between)
    try:
        report = verify(ctx)
        assert len(raced) == 1
        assert (report.size, report.checkpoints, report.anchors) == (7, 5, 5)
        assert report.warnings == []
    finally:
        writer.close()
        ctx.close()
