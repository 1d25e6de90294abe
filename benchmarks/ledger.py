"""Ledger benchmark: append and verify throughput, peak memory, start-up.

Every figure is printed next to a reference measured in the same run:

- append, one event per transaction / batched: plain INSERTs of rows of the
  same size into a plain table, without hashing, encryption or signing, each
  committed on the same engine (the same durability settings); every ledger
  transaction also vouches for its events and signs its checkpoint;
- verify at each size: a plain streaming SELECT of the same rows;
- parallel verify at each size (``--workers``, default 2): the sequential
  verify of the same ledger in the same run, as a ratio;
- peak memory of verify at each size (its own process, ru_maxrss), and of
  parallel verify (the parent's, and the largest worker's high-water mark);
- ``govreg --help`` start-up next to ``python -c pass``;
- append batched with the tree-node rows each checkpoint writes, next to the
  same appends without them (the ratio is their cost);
- at each size, a proof and a serving reload: an inclusion proof from the
  stored tree nodes, and the loader's ledger work on a reload after one new
  event (hash the events since the last witnessed checkpoint, then prove ten
  events from the nodes), next to one indexed SELECT of one row; and the
  loader's first load in a process (hash every envelope once) next to the plain
  streaming SELECT.

Run:  .venv/bin/python benchmarks/ledger.py [--backends sqlite,postgresql]
      [--sizes 100000,1000000] [--single 2000] [--batched 20000] [--workers 2]
      [--verify-only]   (only the fill and the verify figures)
Targets (2 cores): one event per transaction, signature included, >= 0.9x the
plain INSERT; >= 20,000 events/s batched, verify >= 100,000 events/s, peak
memory flat between the sizes, start-up < 0.3 s, proof and reload at 1M events
<= 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_URL = os.environ.get(
    "GOVREG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
PAYLOAD = {"note": "x" * 160, "value": "0.123456789"}
BATCH = 1000


def _event(i: int):  # type: ignore[no-untyped-def]
    from audits.events import EventType, NewEvent

    return NewEvent(
        type=EventType.BENCHMARK,
        actor="benchmark",
        model="bench",
        version=1,
        data={**PAYLOAD, "i": i},
        index={"i": i},
    )


def _context(home: Path, url: str):  # type: ignore[no-untyped-def]
    from govreg.context import build, init_home
    from govreg.settings import Settings

    settings = Settings(home=home, database_url=url)
    init_home(settings)
    return build(settings)


def _reference_table(engine) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    blob = "BLOB" if engine.dialect.name == "sqlite" else "BYTEA"
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS bench_plain"))
        conn.execute(
            text(
                f"CREATE TABLE bench_plain (seq BIGINT PRIMARY KEY, recorded_at VARCHAR(32), "
                f"event_type VARCHAR(64), actor VARCHAR(200), model VARCHAR(200), "
                f"version INTEGER, index_fields TEXT, key_id VARCHAR(64), nonce {blob}, "
                f"ciphertext {blob}, leaf_hash {blob}, chain_hash {blob})"
            )
        )


def _plain_rows(start: int, count: int, size: int) -> list[dict[str, object]]:
    return [
        {
            "seq": start + i,
            "recorded_at": "2026-11-24T12:00:00.000000Z",
            "event_type": "benchmark.event",
            "actor": "benchmark",
            "model": "bench",
            "version": 1,
            "index_fields": f'{{"i":{start + i}}}',
            "key_id": "dk-000001",
            "nonce": secrets.token_bytes(12),
            "ciphertext": secrets.token_bytes(size),
            "leaf_hash": secrets.token_bytes(32),
            "chain_hash": secrets.token_bytes(32),
        }
        for i in range(count)
    ]


_PLAIN_INSERT = (
    "INSERT INTO bench_plain VALUES (:seq, :recorded_at, :event_type, :actor, :model, :version, "
    ":index_fields, :key_id, :nonce, :ciphertext, :leaf_hash, :chain_hash)"
)


def bench_appends(ctx, single: int, batched: int, unsigned_url: str) -> dict[str, float]:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    size = len(json.dumps(PAYLOAD)) + 120
    _reference_table(ctx.engine)
    out: dict[str, float] = {}
    # one event per transaction, three ways in turn (a shared machine's load hits
    # all alike): signed and vouched; a plain INSERT; the same append left unsigned
    # (as before every commit was signed) in a home of its own, signed at the end
    unsigned = _context(Path(str(ctx.settings.home) + "-unsigned"), unsigned_url)

    def signed_one(i: int) -> None:
        with ctx.registry.transaction() as conn:
            ctx.ledger.append(conn, [_event(i)])

    def plain_one(i: int) -> None:
        with ctx.engine.begin() as conn:
            conn.execute(text(_PLAIN_INSERT), _plain_rows(i, 1, size))

    def unsigned_one(i: int) -> None:
        with unsigned.engine.begin() as conn:
            unsigned.ledger.lock(conn)
            unsigned.ledger.append(conn, [_event(i)])

    spent = {"single": 0.0, "single_ref": 0.0, "single_unsigned": 0.0}
    ways = (("single", signed_one), ("single_ref", plain_one), ("single_unsigned", unsigned_one))
    for start in range(0, single, 50):
        for name, way in ways:
            t0 = time.perf_counter()
            for i in range(start, min(start + 50, single)):
                way(i)
            spent[name] += time.perf_counter() - t0
    out.update({name: single / seconds for name, seconds in spent.items()})
    with unsigned.registry.transaction() as conn:
        unsigned.ledger.checkpoint(conn)
    unsigned.close()
    # batched
    t0 = time.perf_counter()
    for start in range(0, batched, BATCH):
        with ctx.registry.transaction() as conn:
            ctx.ledger.append(conn, [_event(start + i) for i in range(BATCH)])
    out["batched"] = batched / (time.perf_counter() - t0)
    offset = single
    t0 = time.perf_counter()
    for start in range(0, batched, BATCH):
        with ctx.engine.begin() as conn:
            conn.execute(text(_PLAIN_INSERT), _plain_rows(offset + start, BATCH, size))
    out["batched_ref"] = batched / (time.perf_counter() - t0)
    return out


def bench_nodes(ctx, batched: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Batched appends with the checkpoints' node rows and without them, batch by batch
    in turn (a shared machine's load hits both alike). The batches without leave
    ``ctx``'s ledger without their nodes: give it a home of its own."""
    from audits.ledger import Ledger

    real = Ledger.__dict__["_store_nodes"]  # the staticmethod itself
    spent = {"with": 0.0, "without": 0.0}
    for start in range(0, 2 * batched, BATCH):
        name = "with" if start // BATCH % 2 == 0 else "without"
        if name == "without":
            Ledger._store_nodes = staticmethod(lambda conn, nodes, after=0: None)  # type: ignore[method-assign]
        try:
            t0 = time.perf_counter()
            with ctx.registry.transaction() as conn:
                ctx.ledger.append(conn, [_event(start + i) for i in range(BATCH)])
            spent[name] += time.perf_counter() - t0
        finally:
            Ledger._store_nodes = real  # type: ignore[method-assign]
    return {name: batched / seconds for name, seconds in spent.items()}


def _median_ms(action, runs: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        action()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def bench_proofs(ctx) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Proof and reload at the current size, next to one indexed SELECT of one row."""
    import random

    from sqlalchemy import text

    from serving.approval import witness

    rng = random.Random(6962)
    out: dict[str, float] = {}
    with ctx.registry.reading() as conn:
        checkpoint = ctx.ledger.latest_checkpoint(conn)
        size = checkpoint.size
        out["size"] = size
        out["select_ms"] = _median_ms(
            lambda: conn.execute(
                text("SELECT leaf_hash FROM ledger_events WHERE seq = :s"),
                {"s": rng.randint(1, size)},
            ).one(),
            200,
        )
        out["proof_ms"] = _median_ms(
            lambda: ctx.ledger.inclusion_proofs(conn, size, [rng.randint(1, size)]), 200
        )
        t0 = time.perf_counter()
        witness(conn, ctx.ledger, checkpoint, subject="bench v1")
        out["first_load_s"] = time.perf_counter() - t0
    reloads = []
    for i in range(20):
        with ctx.registry.transaction() as conn:
            ctx.ledger.append(conn, [_event(-1 - i)])
        with ctx.registry.reading() as conn:
            t0 = time.perf_counter()
            checkpoint = ctx.ledger.latest_checkpoint(conn)
            witness(conn, ctx.ledger, checkpoint, subject="bench v1")
            seqs = [rng.randint(1, checkpoint.size) for _ in range(10)]
            ctx.ledger.inclusion_proofs(conn, checkpoint.size, seqs)
            reloads.append(time.perf_counter() - t0)
    out["reload_ms"] = statistics.median(reloads) * 1000
    return out


def fill(ctx, target: int) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy import text

    size = len(json.dumps(PAYLOAD)) + 120
    with ctx.engine.connect() as conn:
        have = ctx.ledger.head(conn)[0]
        plain = conn.execute(text("SELECT count(*) FROM bench_plain")).scalar() or 0
    for start in range(have, target, BATCH):
        n = min(BATCH, target - start)
        with ctx.registry.transaction() as conn:
            ctx.ledger.append(conn, [_event(start + i) for i in range(n)])
    for start in range(plain, target, 5000):
        n = min(5000, target - start)
        with ctx.engine.begin() as conn:
            conn.execute(text(_PLAIN_INSERT), _plain_rows(start + 1_000_000_000, n, size))


def _descendants_peak(stop: Any, peaks: dict[int, int], cpu: dict[int, float]) -> None:
    """Until ``stop`` is set, the high-water mark (VmHWM, KiB) and the CPU seconds
    (user and system, last seen) of every process below this one, by pid (the
    parallel verify's forkserver and workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    me = os.getpid()
    while not stop.wait(0.05):
        parents: dict[int, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                parents[int(entry.name)] = int(fields[1])
                used = (int(fields[11]) + int(fields[12])) / tick
            except (OSError, IndexError, ValueError):
                continue
            cpu[int(entry.name)] = max(cpu.get(int(entry.name), 0.0), used)
        for pid in parents:
            up = parents.get(pid)
            while up is not None and up != me:
                up = parents.get(up)
            if up != me:
                cpu.pop(pid, None)
                continue
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peaks[pid] = max(peaks.get(pid, 0), int(line.split()[1]))
            except OSError:
                continue


def child_verify(home: str, url: str, mode: str) -> None:
    """Run in a fresh process; print seconds, events and peak RSS (KiB); for a
    parallel verify (mode ``verify-N``) also the largest worker's peak."""
    import threading

    from sqlalchemy import text

    from audits.signing import load_public_key
    from govreg.context import build
    from govreg.settings import Settings

    settings = Settings(home=Path(home), database_url=url)
    ctx = build(settings)
    stop = threading.Event()
    peaks: dict[int, int] = {}
    cpu: dict[int, float] = {}
    watcher = threading.Thread(target=_descendants_peak, args=(stop, peaks, cpu), daemon=True)
    workers: Any = 1
    if mode.startswith("verify-"):
        workers = mode.removeprefix("verify-")
        workers = workers if workers == "auto" else int(workers)
        watcher.start()
    own = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    if mode.startswith("verify"):
        report = ctx.registry.verify(
            None,
            load_public_key(settings.public_key_path),
            anchor_dir=settings.anchors_path,
            workers=workers,
        )
        count = report.size
        used = report.workers
    else:
        count = 0
        with ctx.engine.connect() as conn:
            result = conn.execution_options(stream_results=True, yield_per=5000).execute(
                text("SELECT * FROM bench_plain ORDER BY seq")
            )
            for row in result:
                count += 1
                _ = (bytes(row.ciphertext), row.index_fields)
        used = 1
    seconds = time.perf_counter() - t0
    stop.set()
    if watcher.is_alive():
        watcher.join()
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu_s = after.ru_utime + after.ru_stime - own.ru_utime - own.ru_stime + sum(cpu.values())
    peak = after.ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "events": count,
                "peak_kib": peak,
                "workers": used,
                "worker_peak_kib": max(peaks.values(), default=0),
                "cpu_s": cpu_s,
                "load": os.getloadavg()[0],
            }
        )
    )


def run_child(home: Path, url: str, mode: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(home), url],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def startup() -> tuple[float, float]:
    govreg = str(Path(sys.executable).with_name("govreg"))

    def median(cmd: list[str]) -> float:
        times = []
        for _ in range(7):
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True)
            times.append(time.perf_counter() - t0)
        return statistics.median(times)

    return median([govreg, "--help"]), median([sys.executable, "-c", "pass"])


def backend_url(backend: str, tmp: Path) -> tuple[str, str | None]:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'bench.db'}", None
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{PG_URL}?options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str | None) -> None:
    if schema:
        import psycopg

        with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--single", type=int, default=2000)
    parser.add_argument("--batched", type=int, default=20000)
    parser.add_argument("--workers", default="2", help="parallel verify: N or auto")
    parser.add_argument(
        "--verify-only", action="store_true", help="skip start-up, append and proof figures"
    )
    parser.add_argument("--child", nargs=3, metavar=("MODE", "HOME", "URL"))
    args = parser.parse_args()
    if args.child:
        mode, home, url = args.child
        child_verify(home, url, mode)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    if not args.verify_only:
        help_s, python_s = startup()
        print(
            f"start-up: govreg --help {help_s * 1000:.0f} ms  "
            f"(python -c pass {python_s * 1000:.0f} ms, ratio {help_s / python_s:.1f}x; "
            "target < 300 ms)"
        )
    for backend in args.backends.split(","):
        if args.verify_only:
            verify_only(backend, sizes, args.workers)
            continue
        with tempfile.TemporaryDirectory() as tmpdir:
            tmp = Path(tmpdir)
            url, schema = backend_url(backend, tmp)
            try:
                ctx = _context(tmp / "home", url)
                unsigned_tmp = tmp / "unsigned"
                unsigned_tmp.mkdir()
                unsigned_url, unsigned_schema = backend_url(backend, unsigned_tmp)
                try:
                    rates = bench_appends(ctx, args.single, args.batched, unsigned_url)
                finally:
                    drop_schema(unsigned_schema)
                print(f"\n[{backend}] append")
                print(
                    f"  one per transaction: {rates['single']:9.0f} events/s  "
                    f"(plain INSERT {rates['single_ref']:9.0f}/s; signed and vouched at "
                    f"{rates['single'] / rates['single_ref']:.2f}x its speed; target >= 0.90x)"
                )
                print(
                    f"  one per transaction, unsigned: {rates['single_unsigned']:9.0f} events/s  "
                    f"(signing and vouching each commit costs "
                    f"{rates['single_unsigned'] / rates['single']:.2f}x)"
                )
                print(
                    f"  batched ({BATCH}/tx):   {rates['batched']:9.0f} events/s  "
                    f"(plain INSERT {rates['batched_ref']:9.0f}/s, ratio "
                    f"{rates['batched_ref'] / rates['batched']:.2f}x; target >= 20,000/s)"
                )
                # Its own home: the appends without node rows leave that ledger without them.
                nodes_tmp = tmp / "nodes"
                nodes_tmp.mkdir()
                nodes_url, nodes_schema = backend_url(backend, nodes_tmp)
                try:
                    nodes_ctx = _context(nodes_tmp / "home", nodes_url)
                    nodes = bench_nodes(nodes_ctx, args.batched)
                    nodes_ctx.close()
                finally:
                    drop_schema(nodes_schema)
                print(
                    f"  batched with tree nodes: {nodes['with']:9.0f} events/s  (without "
                    f"{nodes['without']:9.0f}/s, ratio {nodes['without'] / nodes['with']:.2f}x)"
                )
                peaks = []
                for size in sizes:
                    fill(ctx, size)
                    proofs = bench_proofs(ctx)
                    print(
                        f"  at {int(proofs['size']):>8} events: proof "
                        f"{proofs['proof_ms']:6.2f} ms, "
                        f"reload (1 new event, 10 proofs) {proofs['reload_ms']:6.2f} ms  "
                        f"(one indexed SELECT {proofs['select_ms']:6.3f} ms; target <= 50 ms); "
                        f"first load in a process {proofs['first_load_s']:6.2f} s"
                    )
                    peaks.append(report_verify(tmp / "home", url, args.workers))
                if len(peaks) > 1:
                    print(
                        "  verify peak memory, largest / smallest size: "
                        f"{peaks[-1] / peaks[0]:.2f}x (target: flat, ~1.0x)"
                    )
                ctx.close()
            finally:
                drop_schema(schema)


def report_verify(home: Path, url: str, workers: str) -> float:
    """Print the verify figures at the ledger's current size; the sequential peak."""
    ver = run_child(home, url, "verify")
    par = run_child(home, url, f"verify-{workers}")
    ref = run_child(home, url, "plain")
    rate = ver["events"] / ver["seconds"]
    par_rate = par["events"] / par["seconds"]
    ref_rate = ref["events"] / ref["seconds"]
    print(
        f"  verify {int(ver['events']):>8} events: {rate:9.0f} events/s, peak "
        f"{ver['peak_kib'] / 1024:6.1f} MiB  (plain SELECT {ref_rate:9.0f}/s, "
        f"peak {ref['peak_kib'] / 1024:6.1f} MiB; ratio "
        f"{ref_rate / rate:.2f}x; target >= 100,000/s)"
    )
    print(
        f"  verify {int(par['events']):>8} events, --workers {workers} "
        f"({int(par['workers'])} used): {par_rate:9.0f} events/s, {par_rate / rate:.2f}x "
        f"sequential; peak {par['peak_kib'] / 1024:6.1f} MiB parent, "
        f"{par['worker_peak_kib'] / 1024:6.1f} MiB largest worker; target >= 100,000/s"
    )
    print(
        f"  CPU seconds: sequential {ver['cpu_s']:6.1f} in {ver['seconds']:6.1f} s, parallel "
        f"{par['cpu_s']:6.1f} (all processes) in {par['seconds']:6.1f} s; load average "
        f"{ver['load']:.1f} and {par['load']:.1f} at their end"
    )
    return ver["peak_kib"]  # type: ignore[no-any-return]


def verify_only(backend: str, sizes: list[int], workers: str) -> None:
    """Fill one ledger to each size in turn and print only the verify figures."""
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        url, schema = backend_url(backend, tmp)
        try:
            ctx = _context(tmp / "home", url)
            _reference_table(ctx.engine)
            print(f"\n[{backend}] verify")
            for size in sizes:
                fill(ctx, size)
                report_verify(tmp / "home", url, workers)
            ctx.close()
        finally:
            drop_schema(schema)


if __name__ == "__main__":
    main()
