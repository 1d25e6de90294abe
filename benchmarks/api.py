"""HTTP API benchmark: authenticated reads and sign-offs against `govreg serve`.

A real server on loopback, on PostgreSQL (a throwaway schema, dropped at the
end), with 1 and then 2 worker processes. Every figure is printed next to a
reference measured against the same server in the same run: the
unauthenticated ``GET /v1/health``, which goes through uvicorn, FastAPI and
the problem-document handlers but not authentication, the database or the
ledger.

- read throughput (closed loop): ``wrk`` (Debian package) with 2 threads and
  16 connections, or an httpx async client with 16 connections where wrk is
  not installed; ``GET /v1/models/bench/versions`` (list) and
  ``GET /v1/models/bench/versions/1`` (one version, with its gates and
  sign-offs read from the ledger), as an auditor with an API key;
- read latency at a fixed 100 requests/s (open loop: each request is sent at
  its scheduled time whether or not earlier ones answered, and its latency is
  counted from that time, so a stall is not hidden): p50 and p99;
- the sign-off write path: versions awaiting sign-off, three sign-offs each
  (validator, compliance officer, business owner), sent by 4 concurrent
  clients; each one is an authenticated, serialised ledger transaction.
  The versions' gate results are recorded directly (constructed, all passed)
  so that the set-up does not run the gates (benchmarks/gates.py measures
  those). The ledger is verified over HTTP afterwards.

Run:  .venv/bin/python benchmarks/api.py [--workers 1,2] [--seconds 8]
      [--paced-seconds 10] [--signoff-versions 60]
Targets (2 cores): >= 500 authenticated reads/s; p99 <= 20 ms at 100
requests/s. The load generator runs on the same 2 cores as the server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
PG_URL = os.environ.get(
    "GOVREG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
CONNECTIONS = 16
RATE = 100


# -- set-up ---------------------------------------------------------------------------
def pg_schema() -> tuple[str, str]:
    import psycopg

    schema = f"bench_api_{uuid.uuid4().hex[:10]}"
    conninfo = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}", schema


def drop_schema(schema: str) -> None:
    import psycopg

    conninfo = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA {schema} CASCADE")


def prepare(home: Path, url: str, versions: int) -> dict[str, str]:
    """Init the home; one read version; ``versions`` awaiting sign-off; keys by role."""
    from govreg_kit import passing_results

    from govreg.context import build, init_home
    from govreg.settings import Settings
    from govreg.synthetic import write_candidate

    settings = Settings(home=home, database_url=url)
    init_home(settings)
    files = write_candidate(home.parent / "candidate")
    ctx = build(settings)
    try:
        reg = ctx.registry
        admin = reg.authenticate((home / "admin.key").read_text().strip())
        keys: dict[str, str] = {}
        people: dict[str, Any] = {}
        for role in ("data_scientist", "validator", "compliance_officer", "business_owner"):
            people[role], keys[role] = reg.create_principal(admin, f"{role}-1", role)
        _, keys["auditor"] = reg.create_principal(admin, "auditor-1", "auditor")
        ds = people["data_scientist"]
        for _ in range(versions + 1):
            number = reg.submit(
                ds,
                "bench",
                artifact=files["artifact"],
                train=files["train"],
                validation=files["validation"],
                target="default",
                protected=["sex", "age_band"],
            )
            evaluation = reg.start_evaluation(ds, "bench", number)
            reg.evaluations.record_evaluation(ds, "bench", number, evaluation, passing_results())
    finally:
        ctx.close()
    return keys


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(home: Path, url: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    env = {**os.environ, "GOVREG_HOME": str(home), "GOVREG_DATABASE_URL": url}
    env.pop("GOVREG_API_KEY", None)
    govreg = str(Path(sys.executable).with_name("govreg"))
    process = subprocess.Popen(
        [govreg, "serve", "--port", str(port), "--workers", str(workers)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(base + "/v1/health", timeout=1).status_code == 200:
                return process, base
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not start")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


# -- load -----------------------------------------------------------------------------
def warm(base: str, path: str, key: str | None, count: int = 200) -> None:
    """Let every worker open its connections before measuring."""
    import httpx

    headers = {"Authorization": f"Bearer {key}"} if key else {}
    with httpx.Client(base_url=base, headers=headers) as client:
        for _ in range(count):
            assert client.get(path).status_code == 200


def wrk(base: str, path: str, key: str | None, seconds: float) -> float:
    """Requests/s by wrk (closed loop); every response must be a 2xx."""
    cmd = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{int(seconds)}s"]
    if key:
        cmd += ["-H", f"Authorization: Bearer {key}"]
    out = subprocess.run([*cmd, base + path], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError(f"wrk saw errors:\n{out}")
    found = re.search(r"Requests/sec:\s+([0-9.]+)", out)
    assert found, out
    return float(found.group(1))


def async_closed_loop(base: str, path: str, key: str | None, seconds: float) -> float:
    """Requests/s by an httpx async client with CONNECTIONS concurrent requests."""
    import httpx

    async def run() -> float:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        limits = httpx.Limits(max_connections=CONNECTIONS)
        done = 0
        end = time.perf_counter() + seconds
        async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits) as client:

            async def loop() -> None:
                nonlocal done
                while time.perf_counter() < end:
                    response = await client.get(path)
                    if response.status_code != 200:
                        raise RuntimeError(response.text)
                    done += 1

            start = time.perf_counter()
            await asyncio.gather(*(loop() for _ in range(CONNECTIONS)))
            return done / (time.perf_counter() - start)

    return asyncio.run(run())


def paced(base: str, path: str, key: str | None, seconds: float) -> tuple[float, float]:
    """p50 and p99 (ms) at RATE requests/s, open loop, from each scheduled time."""
    import httpx

    async def run() -> list[float]:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        latencies: list[float] = []
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=base, headers=headers, limits=limits, timeout=30
        ) as client:

            async def one(at: float) -> None:
                await asyncio.sleep(max(0.0, at - time.perf_counter()))
                response = await client.get(path)
                if response.status_code != 200:
                    raise RuntimeError(response.text)
                latencies.append(time.perf_counter() - at)

            start = time.perf_counter() + 0.1
            total = int(seconds * RATE)
            await asyncio.gather(*(one(start + i / RATE) for i in range(total)))
        return latencies

    latencies = sorted(asyncio.run(run()))
    p50 = statistics.median(latencies) * 1000
    p99 = latencies[int(0.99 * (len(latencies) - 1))] * 1000
    return p50, p99


def signoffs(base: str, keys: dict[str, str], versions: range) -> dict[str, float]:
    """Sign every slot of ``versions`` with 4 concurrent clients; rate and latency."""
    import httpx

    jobs = [(v, role) for v in versions for role in SIGNING]
    lock = threading.Lock()
    latencies: list[float] = []
    codes: list[int] = []

    def client_loop() -> None:
        clients = {
            role: httpx.Client(
                base_url=base, headers={"Authorization": f"Bearer {keys[role]}"}, timeout=60
            )
            for role in SIGNING
        }
        try:
            while True:
                with lock:
                    if not jobs:
                        return
                    version, role = jobs.pop(0)
                began = time.perf_counter()
                response = clients[role].post(
                    f"/v1/models/bench/versions/{version}/signoffs",
                    json={"role": role, "decision": "approve", "comment": "benchmark"},
                )
                elapsed = time.perf_counter() - began
                with lock:
                    latencies.append(elapsed)
                    codes.append(response.status_code)
        finally:
            for client in clients.values():
                client.close()

    count = len(jobs)
    start = time.perf_counter()
    threads = [threading.Thread(target=client_loop) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    seconds = time.perf_counter() - start
    if codes != [201] * count:
        raise RuntimeError(f"sign-offs not all 201: {sorted(set(codes))}")
    latencies.sort()
    return {
        "rate": count / seconds,
        "p50": statistics.median(latencies) * 1000,
        "p99": latencies[int(0.99 * (len(latencies) - 1))] * 1000,
        "count": count,
    }


SIGNING = ("validator", "compliance_officer", "business_owner")


def verify(base: str, key: str) -> dict[str, Any]:
    import httpx

    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {key}"}) as client:
        report = client.post("/v1/audit/verify", timeout=120)
        events = client.get("/v1/audit/events", params={"limit": 10000}).json()
    assert report.status_code == 200, report.text
    return {
        "size": report.json()["size"],
        "signoffs": sum(e["type"] == "signoff.recorded" for e in events),
        "approved": sum(e["type"] == "version.approved" for e in events),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--paced-seconds", type=float, default=10)
    parser.add_argument("--signoff-versions", type=int, default=60, help="per worker count")
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]
    closed = wrk if shutil.which("wrk") else async_closed_loop
    generator = (
        f"wrk -t2 -c{CONNECTIONS}" if closed is wrk else f"httpx async, {CONNECTIONS} connections"
    )
    print(f"load generator: {generator}; paced at {RATE} requests/s (httpx async, open loop)")
    per_run = args.signoff_versions
    url, schema = pg_schema()
    results: dict[int, dict[str, Any]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="govreg-bench-api-") as tmp:
            home = Path(tmp) / "home"
            keys = prepare(home, url, per_run * len(worker_counts))
            auditor = keys["auditor"]
            reads = {"list": "/v1/models/bench/versions", "show": "/v1/models/bench/versions/1"}
            first = 2  # version 1 is read, never signed
            for workers in worker_counts:
                process, base = start_server(home, url, workers)
                try:
                    row: dict[str, Any] = {}
                    warm(base, "/v1/health", None)
                    for path in reads.values():
                        warm(base, path, auditor)
                    row["health_rps"] = closed(base, "/v1/health", None, args.seconds)
                    for name, path in reads.items():
                        row[f"{name}_rps"] = closed(base, path, auditor, args.seconds)
                    row["health_paced"] = paced(base, "/v1/health", None, args.paced_seconds)
                    for name, path in reads.items():
                        row[f"{name}_paced"] = paced(base, path, auditor, args.paced_seconds)
                    row["signoff"] = signoffs(base, keys, range(first, first + per_run))
                    first += per_run
                    row["ledger"] = verify(base, auditor)
                finally:
                    stop_server(process)
                results[workers] = row
                print(f"\n[{workers} worker(s)] {json.dumps(row)}")
    finally:
        drop_schema(schema)
    report(results)


def report(results: dict[int, dict[str, Any]]) -> None:
    print("\n| figure | " + " | ".join(f"{w} worker(s)" for w in results) + " |")
    print("|---|" + "---|" * len(results))

    def line(label: str, cell: Any) -> None:
        print(f"| {label} | " + " | ".join(cell(r) for r in results.values()) + " |")

    line("reference: GET /v1/health (no auth), req/s", lambda r: f"{r['health_rps']:,.0f}")
    for name in ("list", "show"):
        line(
            f"authenticated {name}, req/s (ratio to health)",
            lambda r, n=name: f"{r[f'{n}_rps']:,.0f} ({r[f'{n}_rps'] / r['health_rps']:.2f}x)",
        )
    line(
        "reference: health at 100 req/s, p50 / p99 ms",
        lambda r: f"{r['health_paced'][0]:.1f} / {r['health_paced'][1]:.1f}",
    )
    for name in ("list", "show"):
        line(
            f"authenticated {name} at 100 req/s, p50 / p99 ms",
            lambda r, n=name: f"{r[f'{n}_paced'][0]:.1f} / {r[f'{n}_paced'][1]:.1f}",
        )
    line(
        "sign-offs (4 clients), per s; p50 / p99 ms",
        lambda r: (
            f"{r['signoff']['rate']:,.0f}; {r['signoff']['p50']:.1f} / {r['signoff']['p99']:.1f}"
        ),
    )
    line(
        "ledger after (cumulative): events, signoff.recorded, approved; verifies",
        lambda r: (
            f"{r['ledger']['size']}, {r['ledger']['signoffs']}, {r['ledger']['approved']}; yes"
        ),
    )
    best = max(min(r["list_rps"], r["show_rps"]) for r in results.values())
    worst_p99 = max(max(r["list_paced"][1], r["show_paced"][1]) for r in results.values())
    print()
    print(
        f"target >= 500 authenticated reads/s: best worker count {best:,.0f}/s (slower of "
        f"list and show): {'met' if best >= 500 else 'NOT MET'}"
    )
    print(
        f"target p99 <= 20 ms at 100 req/s: worst p99 {worst_p99:.1f} ms: "
        f"{'met' if worst_p99 <= 20 else 'NOT MET'}"
    )


if __name__ == "__main__":
    main()
