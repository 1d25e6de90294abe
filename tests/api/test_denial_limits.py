"""Refusals are counted, not appended one by one; refusals and expensive
downloads are limited (issue 12, finding 8). A real `govreg serve` over HTTP,
on SQLite and PostgreSQL.

Each test sets an interval of an hour, so no interval ends while it runs:
what the trail holds is then exact. ``govreg audit flush-denials`` (an admin)
appends what was counted.
"""

from __future__ import annotations

import http.client
import json
import os
import sqlite3
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from api_server import Server, endpoint_table, make_principal, start_server, stop
from govreg_homes import Home
from govreg_kit import submit_candidate

HOUR = {"GOVREG_DENIAL_INTERVAL_SECONDS": "3600"}


def _events(server: Server) -> list[dict[str, Any]]:
    with server.client("admin") as admin:
        response = admin.get("/v1/audit/events", params={"limit": 10000})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()
    return events


def _flush(home: Home) -> dict[str, Any]:
    result = home.cli("audit", "flush-denials", "--json")
    assert result.exit_code == 0, result.output
    flushed: dict[str, Any] = json.loads(result.stdout)
    return flushed


def _verified(server: Server, home: Home) -> None:
    with server.client("admin") as admin:
        response = admin.post("/v1/audit/verify")
    assert response.status_code == 200, response.text
    assert response.json()["ok"] is True
    local = home.cli("audit", "verify")
    assert local.exit_code == 0, local.output


def _with_auditor(server: Server) -> str:
    with server.client("admin") as admin:
        made = make_principal(admin, "auditor-1", "auditor")
    assert made.status_code == 201, made.text
    key: str = made.json()["api_key"]
    server.keys["auditor"] = key
    return key


def _denied(event: dict[str, Any]) -> tuple[Any, ...]:
    """What an access.denied or access.denied.aggregated event says (not when)."""
    data = event["data"]
    if event["type"] == "access.denied":
        return (event["type"], event["actor"], data["action"], data["role"])
    return (
        event["type"],
        event["actor"],
        data["subject"],
        data["action"],
        data["role"],
        data["count"],
        data["rate_limited"],
    )


def test_400_refusals_of_one_principal_are_two_events_counting_400(home: Home) -> None:
    server = start_server(home, env={**HOUR, "GOVREG_DENIAL_LIMIT": "1000"})
    try:
        _with_auditor(server)
        before = len(_events(server))
        with server.client("auditor") as auditor:
            codes = [
                auditor.post("/v1/models/pd/versions/1/promote", json={"alias": "x"}).status_code
                for _ in range(400)
            ]
        assert codes == [403] * 400
        # the first refusal is in the trail at once; the 399 others are counted
        added = _events(server)[before:]
        assert [_denied(e) for e in added] == [("access.denied", "auditor-1", "promote", "auditor")]
        flushed = _flush(home)
        assert (flushed["events"], flushed["refusals"]) == (1, 399)
        added = _events(server)[before:]
        assert [_denied(e) for e in added] == [
            ("access.denied", "auditor-1", "promote", "auditor"),
            (
                "access.denied.aggregated",
                "auditor-1",
                "principal:auditor-1",
                "promote",
                "auditor",
                399,
                0,
            ),
        ]
        aggregated = added[1]["data"]
        assert added[0]["recorded_at"] < aggregated["first_at"] <= aggregated["last_at"]
        # every refusal counted: one event each for the immediate ones plus the counts
        assert sum(1 if e["type"] == "access.denied" else e["data"]["count"] for e in added) == 400
        assert _flush(home) == {"events": 0, "refusals": 0, "seqs": []}  # nothing twice
        _verified(server, home)
    finally:
        stop(server)


def test_a_revoked_key_hammering_is_answered_429_and_counted(home: Home) -> None:
    server = start_server(home, env={**HOUR, "GOVREG_DENIAL_LIMIT": "5"})
    try:
        key = _with_auditor(server)
        with server.client("admin") as admin:
            assert admin.delete("/v1/principals/auditor-1").status_code == 204
        before = len(_events(server))
        with server.client(token=key) as revoked:
            answers = [revoked.get("/v1/versions") for _ in range(20)]
        assert [a.status_code for a in answers] == [401] * 5 + [429] * 15
        assert answers[0].json()["detail"].startswith("API key of 'auditor-1' was revoked at ")
        for answer in answers[5:]:
            wait_s = int(answer.headers["retry-after"])
            assert 3590 <= wait_s <= 3600
            assert answer.headers["content-type"] == "application/problem+json"
            assert answer.json() == {
                "type": "https://govreg.dev/problems/too-many-requests",
                "title": "too many requests",
                "status": 429,
                "detail": "too many refused requests from 'auditor-1': over 5 in 3600 s "
                f"(GOVREG_DENIAL_LIMIT); retry after {wait_s} s",
            }
        # callers without a valid credential are counted against their address, and
        # only counted: none of their refusals is an event of its own
        with server.client(token="grk_00000000_nope") as unknown:
            guesses = [unknown.get("/v1/versions") for _ in range(7)]
        assert [g.status_code for g in guesses] == [401] * 5 + [429] * 2
        retry = int(guesses[-1].headers["retry-after"])
        assert guesses[-1].json()["detail"] == (
            "too many refused requests from this address: over 5 in 3600 s "
            f"(GOVREG_DENIAL_LIMIT); retry after {retry} s"
        )
        added = _events(server)[before:]
        assert [_denied(e) for e in added] == [
            ("access.denied", "auditor-1", "authenticate", "auditor")
        ]
        assert _flush(home)["refusals"] == 19 + 7
        added = _events(server)[before:]
        assert [_denied(e) for e in added] == [
            ("access.denied", "auditor-1", "authenticate", "auditor"),
            (
                "access.denied.aggregated",
                "auditor-1",
                "principal:auditor-1",
                "authenticate",
                "auditor",
                19,
                15,
            ),
            (
                "access.denied.aggregated",
                "unauthenticated",
                "address:127.0.0.1",
                "authenticate",
                None,
                7,
                2,
            ),
        ]
        _verified(server, home)
    finally:
        stop(server)


def _socket_owners(parent: int, port: int) -> dict[int, int]:
    """Client port -> pid of the worker (a child of ``parent``) holding that connection
    to the server's ``port``, read from /proc."""
    inodes: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[1]) != parent:
                continue
            for fd in os.listdir(f"/proc/{entry}/fd"):
                target = os.readlink(f"/proc/{entry}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes[int(target[8:-1])] = int(entry)
        except OSError:  # a process that ended meanwhile
            continue
    owners: dict[int, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, inode = fields[1], fields[2], int(fields[9])
            if inode in inodes and int(local.rsplit(":", 1)[1], 16) == port:
                owners[int(remote.rsplit(":", 1)[1], 16)] = inodes[inode]
    return owners


def _one_connection_per_worker(server: Server) -> list[http.client.HTTPConnection]:
    """Keep-alive connections until two worker processes each hold one: one of each."""
    address = urlsplit(server.url)
    assert address.hostname is not None
    assert address.port is not None
    opened: list[http.client.HTTPConnection] = []
    by_worker: dict[int, http.client.HTTPConnection] = {}
    while len(by_worker) < 2:
        assert len(opened) < 200, "the connections all went to one worker"
        conn = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
        conn.request("GET", "/v1/health")
        assert conn.getresponse().read() == b'{"status":"ok"}'
        opened.append(conn)
        client_port = conn.sock.getsockname()[1]
        owner = _socket_owners(server.process.pid, address.port).get(client_port)
        if owner is not None and owner not in by_worker:
            by_worker[owner] = conn
    for conn in opened:
        if conn not in by_worker.values():
            conn.close()
    return list(by_worker.values())


def test_two_workers_share_one_tally(home: Home) -> None:
    server = start_server(home, env={**HOUR, "GOVREG_DENIAL_LIMIT": "1000"}, workers=2)
    try:
        key = _with_auditor(server)
        before = len(_events(server))
        first, second = _one_connection_per_worker(server)
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        codes = []
        for i in range(200):
            conn = first if i % 2 == 0 else second  # alternately on each worker
            conn.request("POST", "/v1/models/pd/versions/1/retire", body=b"{}", headers=headers)
            answer = conn.getresponse()
            answer.read()
            codes.append(answer.status)
        first.close()
        second.close()
        assert codes == [403] * 200
        # one tally for both workers: one refusal at once, 199 counted
        assert [_denied(e) for e in _events(server)[before:]] == [
            ("access.denied", "auditor-1", "retire", "auditor")
        ]
        assert (_flush(home)["events"], _events(server)[-1]["data"]["count"]) == (1, 199)
        _verified(server, home)
    finally:
        stop(server)


@contextmanager
def _writers_held(home: Home) -> Iterator[None]:
    """Hold the ledger writers' lock (what every append waits for) from this test."""
    from audits.ledger import ADVISORY_LOCK_ID

    if home.database_url.startswith("sqlite"):
        conn = sqlite3.connect(home.database_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    import psycopg

    conninfo = home.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as pg:
        pg.execute("SELECT pg_advisory_xact_lock(%s)", (ADVISORY_LOCK_ID,))
        try:
            yield
        finally:
            pg.rollback()


def test_the_third_concurrent_report_is_answered_429_and_not_started(
    home: Home, tmp_path: Path
) -> None:
    from govreg.synthetic import write_candidate

    ctx = home.context()
    try:
        admin = ctx.registry.authenticate(home.admin_key)
        ctx.registry.create_person(admin, "ds-1", display="data scientist")
        ds, _ = ctx.registry.create_principal(admin, "ds-1", "data_scientist", person="ds-1")
        submit_candidate(ctx.registry, ds, "pd", write_candidate(tmp_path / "candidate"))
    finally:
        ctx.close()
    server = start_server(home, env={"GOVREG_MAX_CONCURRENT_EXPORTS": "2"})
    try:
        _with_auditor(server)
        before = len(_events(server))

        def report() -> httpx.Response:
            with server.client("auditor") as auditor:
                return auditor.get("/v1/models/pd/versions/1/report")

        # Each report records itself in the ledger last; while this test holds the
        # writers' lock none can finish, so all three are in flight together.
        with ThreadPoolExecutor(3) as pool:
            with _writers_held(home):
                futures = [pool.submit(report) for _ in range(3)]
                done, _ = wait(futures, timeout=120, return_when=FIRST_COMPLETED)
                [refused] = [f.result() for f in done]
            answers = sorted((f.result() for f in futures), key=lambda a: a.status_code)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "15"
        assert refused.json()["detail"] == (
            "this server worker is rendering 2 reports or evidence bundles already "
            "(GOVREG_MAX_CONCURRENT_EXPORTS); retry after 15 s"
        )
        assert [a.status_code for a in answers] == [200, 200, 429]
        # the refused one started nothing: two reports rendered and recorded
        added = _events(server)[before:]
        assert [e["type"] for e in added] == ["report.generated", "report.generated"]
        assert sorted(e["data"]["report_sha256"] for e in added) == sorted(
            a.headers["x-content-sha256"] for a in answers[:2]
        )
        assert report().status_code == 200  # the slots are free again
        _verified(server, home)
    finally:
        stop(server)


def test_every_endpoint_documents_429_with_retry_after() -> None:
    from govreg.api.app import create_app

    ENDPOINTS = endpoint_table()

    paths = create_app().openapi()["paths"]
    documented = {
        (method.upper(), path): operation["responses"].get("429")
        for path, operations in paths.items()
        for method, operation in operations.items()
    }
    assert documented.pop(("GET", "/v1/health")) is None  # refuses nobody
    assert set(documented) == {(m, p) for m, p, _ in ENDPOINTS}
    for endpoint, answer in documented.items():
        assert answer is not None, endpoint
        assert answer["headers"]["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}
        assert answer["content"] == {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }


def test_a_server_shutting_down_appends_every_count(home: Home) -> None:
    server = start_server(home, env={**HOUR, "GOVREG_DENIAL_LIMIT": "1000"})
    try:
        _with_auditor(server)
        before = len(_events(server))
        with server.client("auditor") as auditor:
            for _ in range(3):
                assert auditor.post("/v1/policies", json={"policy": {}}).status_code == 403
    finally:
        stop(server)  # SIGTERM: the worker's lifespan ends, and flushes
    ctx = home.context()
    try:
        with ctx.registry.reading() as conn:
            added = list(ctx.ledger.events(conn))[before:]
    finally:
        ctx.close()
    assert [(e.type, e.actor, e.data["action"], e.data.get("count")) for e in added] == [
        ("access.denied", "auditor-1", "propose_policy", None),
        ("access.denied.aggregated", "auditor-1", "propose_policy", 2),
    ]
