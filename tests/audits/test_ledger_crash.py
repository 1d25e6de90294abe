"""A writer killed with SIGKILL at any moment leaves no partial event.

Real processes (multiprocessing "forkserver": each writer is a fresh process
forked from a clean server that preloaded govreg) append batches of three
events in a loop, with a checkpoint every 7 events and now and then a new
principal (a projection row in the same transaction), and are killed after
delays from 0.05 s to 1 s (geometric). After each kill the ledger verifies (hashes,
checkpoints, anchors, projection), seq is gapless and every batch is whole.
"""

from __future__ import annotations

import signal
import time
from collections import defaultdict
from typing import Any

from ledger_helpers import crash_writer, mp_context, seqs, sql, verify, wait_for

from audits.events import EventType

KILLS = 10
DELAYS = [round(0.05 * 20 ** (i / (KILLS - 1)), 3) for i in range(KILLS)]  # 0.05 s .. 1 s


def _check(ctx: Any, tags: list[str]) -> int:
    report = verify(ctx)
    assert seqs(ctx) == list(range(1, report.size + 1))
    batches: dict[tuple[str, int], list[int]] = defaultdict(list)
    with ctx.registry.reading() as conn:
        for event in ctx.ledger.events(conn, types=[EventType.BENCHMARK]):
            batches[(event.data["proc"], event.data["batch"])].append(event.data["part"])
    assert all(parts == [0, 1, 2] for parts in batches.values()), "a partial batch"
    principals = {str(r[0]) for r in sql(ctx, "SELECT name FROM principals")}
    for tag in tags:
        done = sorted(b for (t, b) in batches if t == tag)
        assert done == list(range(len(done))), f"{tag}: committed batches not a prefix"
        assert done, f"{tag} was killed before its first commit was reported"
        # a principal follows every fifth batch, in its own transaction
        made = {int(n.rsplit("-", 1)[1]) for n in principals if n.startswith(f"p-{tag}-")}
        expected = {b for b in done[:-1] if b % 5 == 4}
        assert made - expected <= {done[-1]}
        assert expected <= made
    return report.size


def test_sigkill_during_appends(home: Any) -> None:
    mp = mp_context()
    ctx = home.context()
    sizes = []
    try:
        for n, delay in enumerate(DELAYS):
            parent, child = mp.Pipe()
            proc = mp.Process(
                target=crash_writer,
                args=(str(home.path), home.database_url, home.admin_key, f"k{n}", child),
            )
            proc.start()
            child.close()
            wait_for(parent, "ready", timeout=60)
            time.sleep(delay)
            proc.kill()
            proc.join(30)
            assert proc.exitcode == -signal.SIGKILL
            proc.close()
            parent.close()
            sizes.append(_check(ctx, [f"k{i}" for i in range(n + 1)]))
    finally:
        ctx.close()
    assert sizes == sorted(sizes)
    assert sizes[0] > 2
