"""Decision log benchmark: what scoring pays, and how fast batches are written.

Every figure is printed next to a reference measured in the same run:

- ``record()`` per call (the scorer's cost, writer thread idle: flush interval
  longer than the run) next to a plain ``queue.SimpleQueue.put`` of the same
  object;
- batch write throughput (canonical inputs, AES-GCM, leaves, Merkle root,
  chain hash, Ed25519 signature, one transaction per batch) next to plain
  INSERTs of the same column values into a plain table, same batch size;
- verify throughput next to a plain SELECT of the same rows.

Run:  .venv/bin/python benchmarks/decisions.py [--backend sqlite|postgresql]
      [--count 20000] [--batch 256]
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG_URL = os.environ.get(
    "GOVREG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def _decision(i: int):  # type: ignore[no-untyped-def]
    from serving.decisions import Decision

    return Decision(
        model="credit-pd",
        version=1,
        approval_seq=17,
        inputs={
            "income": 41000.5 + i,
            "age": 30 + i % 40,
            "debt_ratio": 0.3125,
            "months_employed": 48,
            "utilisation": 0.71,
            "delinquencies": i % 3,
            "inquiries": 2,
            "loan_amount": 15000.0,
            "term": 36,
            "home": "rent",
            "purpose": "car",
            "region": "north",
        },
        score=f"0.{i % 10000:04d}",
        decision="decline" if i % 4 == 0 else "approve",
        reasons=["Debt ratio too high"] if i % 4 == 0 else [],
        retention_days=762,
    )


def _pg_schema() -> str:
    import psycopg

    schema = f"bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return schema


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()

    from sqlalchemy import text

    from audits.keyring import Keyring
    from audits.signing import load_public_key
    from core.db import make_engine, read_only
    from govreg.context import init_home
    from govreg.settings import Settings
    from serving.decisions import DecisionLog, verify_decisions

    tmp = Path(tempfile.mkdtemp(prefix="govreg-bench-"))
    schema = None
    if args.backend == "sqlite":
        url = f"sqlite:///{tmp / 'govreg.db'}"
    else:
        schema = _pg_schema()
        url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    init_home(Settings(home=tmp / "home", database_url=url))
    keys = tmp / "home" / "keys"
    engine = make_engine(url)
    keyring = Keyring(keys)
    decisions = [_decision(i) for i in range(args.count)]

    # 1. record() vs queue.put (the writer does not run during the loop)
    log = DecisionLog(
        engine, keyring, keys / "checkpoint.key", batch_size=args.count, flush_interval=3600
    )
    reference: queue.SimpleQueue[object] = queue.SimpleQueue()
    rec, put = [], []
    for _ in range(5):
        start = time.perf_counter()
        for d in decisions[:2000]:
            reference.put(d)
        put.append((time.perf_counter() - start) / 2000)
        start = time.perf_counter()
        for d in decisions[:2000]:
            log.record(d)
        rec.append((time.perf_counter() - start) / 2000)
    record_us, put_us = statistics.median(rec) * 1e6, statistics.median(put) * 1e6
    log.close()  # writes the 10,000 recorded above (not timed)

    # 2. batch writes vs plain INSERTs of the same values
    log = DecisionLog(
        engine, keyring, keys / "checkpoint.key", batch_size=args.batch, flush_interval=3600
    )
    from core.clock import utcnow
    from serving.decisions import _Pending  # the writer's own unit of work

    items = [_Pending(utcnow(), d, d.inputs, tuple(d.reasons)) for d in decisions]
    start = time.perf_counter()
    for i in range(0, len(items), args.batch):
        log.write_batch(items[i : i + args.batch])
    written = time.perf_counter() - start
    log.close()
    with engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE plain_rows (seq BIGINT PRIMARY KEY, recorded_at VARCHAR(32), "
                "model VARCHAR(200), version INTEGER, approval_seq BIGINT, score VARCHAR(40), "
                "decision VARCHAR(16), reasons TEXT, payload TEXT)"
            )
        )
    rows = [
        {
            "s": i,
            "t": "2026-11-24T12:00:00.000000Z",
            "m": d.model,
            "v": d.version,
            "a": d.approval_seq,
            "sc": d.score,
            "d": d.decision,
            "r": str(d.reasons),
            "p": str(d.inputs),
        }
        for i, d in enumerate(decisions)
    ]
    start = time.perf_counter()
    for i in range(0, len(rows), args.batch):
        with engine.begin() as conn:
            conn.execute(
                text("INSERT INTO plain_rows VALUES (:s, :t, :m, :v, :a, :sc, :d, :r, :p)"),
                rows[i : i + args.batch],
            )
    plain = time.perf_counter() - start

    # 3. verify vs a plain SELECT of the same rows
    total = args.count + 10000
    public = load_public_key(keys / "checkpoint.pub")
    with read_only(engine) as conn:
        start = time.perf_counter()
        report = verify_decisions(conn, keyring, public)
        verified = time.perf_counter() - start
        start = time.perf_counter()
        selected = len(conn.execute(text("SELECT * FROM decisions ORDER BY seq")).all())
        select = time.perf_counter() - start
        conn.rollback()
    assert report.decisions == selected == total
    engine.dispose()

    print(f"decision log benchmark ({args.backend}, batch {args.batch})")
    print(
        f"record():      {record_us:7.2f} us/call   queue.put {put_us:5.2f} us   "
        f"ratio {record_us / put_us:6.1f}x"
    )
    print(
        f"batch writes:  {args.count / written:9,.0f} decisions/s   plain INSERT "
        f"{args.count / plain:9,.0f} rows/s   ratio {written / plain:5.2f}x the time"
    )
    print(
        f"verify:        {total / verified:9,.0f} decisions/s   plain SELECT "
        f"{total / select:9,.0f} rows/s   ratio {verified / select:5.2f}x the time"
    )
    if schema is not None:
        import psycopg

        with psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
