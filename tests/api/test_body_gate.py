"""Work before authentication (issue 12, finding 4), over real HTTP against a real
server: credentials and permission are checked, and a body's size capped, before
the server reads the body.

The requests are written on a raw socket, so a test can stop sending and wait:
a server that answers while the body is still unsent (or unfinished) has not
read it. Without the gate each of these requests waits for its body instead.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_server import Server, make_principal, start_server, stop

PROBLEM = "application/problem+json"
UPLOAD_LIMIT = 5_000_000
JSON_LIMIT = 1024 * 1024
SCORE_LIMIT = 8 * 1024 * 1024
BOUNDARY = "govregboundary"


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    """The server's temporary folder (TMPDIR): where uploads are spooled."""
    folder = tmp_path / "spool"
    folder.mkdir()
    return folder


@pytest.fixture
def server(home: Any, spool: Path) -> Iterator[Server]:
    srv = start_server(
        home, env={"GOVREG_MAX_UPLOAD_BYTES": str(UPLOAD_LIMIT), "TMPDIR": str(spool)}
    )
    with srv.client("admin") as admin:
        for name, role in (
            ("ds-1", "data_scientist"),
            ("auditor-1", "auditor"),
            ("svc-1", "service"),
        ):
            made = make_principal(admin, name, role)
            assert made.status_code == 201, made.text
            srv.keys[role] = made.json()["api_key"]
    yield srv
    stop(srv)


def _connect(server: Server) -> socket.socket:
    host, port = server.url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=30)


def _head(
    method: str, path: str, key: str | None, headers: dict[str, str], length: int | None
) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: test"]
    if key:
        lines.append(f"Authorization: Bearer {key}")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    lines.append(
        f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def _response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one response (a Content-Length body) from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers["content-length"])
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "connection closed in the middle of the response body"
        body += chunk
    return int(status_line.split()[1]), headers, body[:length]


def _problem(answer: tuple[int, dict[str, str], bytes], status: int) -> dict[str, Any]:
    code, headers, body = answer
    assert code == status, body
    assert headers["content-type"] == PROBLEM
    document: dict[str, Any] = json.loads(body)
    assert set(document) == {"type", "title", "status", "detail"}
    assert document["status"] == status
    return document


def _headers_only(
    server: Server, method: str, path: str, key: str | None, length: int, content_type: str
) -> tuple[int, dict[str, str], bytes]:
    """Announce a ``length``-byte body, send none of it, and read the answer."""
    with _connect(server) as sock:
        sock.sendall(_head(method, path, key, {"Content-Type": content_type}, length))
        return _response(sock)


def _denials(server: Server) -> list[dict[str, Any]]:
    with server.client("admin") as admin:
        events = admin.get("/v1/audit/events").json()
    return [e for e in events if e["type"] == "access.denied"]


def _spooled(server: Server, spool: Path) -> int:
    """Bytes the server holds in files under its temporary folder: open
    (unnamed spool files included) and named ones."""
    total = 0
    fds = Path(f"/proc/{server.process.pid}/fd")
    for fd in fds.iterdir():
        try:
            target = os.readlink(fd)
            if target.startswith(str(spool)):
                total += os.stat(fd).st_size
        except FileNotFoundError:  # closed meanwhile
            continue
    return total + sum(p.stat().st_size for p in spool.rglob("*") if p.is_file())


MULTIPART = f"multipart/form-data; boundary={BOUNDARY}"


def test_no_credentials_is_a_401_before_the_body_is_sent(server: Server, spool: Path) -> None:
    before = len(_denials(server))
    for path, length, content_type in (
        ("/v1/models/pd/versions", 60 * 1024 * 1024, MULTIPART),
        ("/v1/policies", 13 * 1024 * 1024, "application/json"),
        ("/v1/models/pd/score", 13 * 1024 * 1024, "application/json"),
    ):
        answer = _headers_only(server, "POST", path, None, length, content_type)
        document = _problem(answer, 401)
        assert document == {
            "type": "https://govreg.dev/problems/unauthenticated",
            "title": "unauthenticated",
            "status": 401,
            "detail": "no credentials: send 'Authorization: Bearer <API key or token>'",
        }
        assert answer[1]["www-authenticate"] == "Bearer"
        unknown = _headers_only(server, "POST", path, "grk_nope_nope", length, content_type)
        assert _problem(unknown, 401)["detail"] == "API key is not known"
    assert _spooled(server, spool) == 0
    assert len(_denials(server)) == before  # an unknown key names nobody to record


def test_a_forbidden_role_is_a_403_recorded_once_before_the_body(server: Server) -> None:
    before = len(_denials(server))
    # malformed JSON: was a 422 and no access.denied event (the body was parsed first)
    with server.client("auditor") as auditor:
        response = auditor.post(
            "/v1/policies", content=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 403, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json() == {
        "type": "https://govreg.dev/problems/forbidden",
        "title": "forbidden",
        "status": 403,
        "detail": "'auditor-1' (auditor) may not propose policy",
    }
    # a 60 MiB upload by a role that may not submit: refused with no byte sent
    answer = _headers_only(
        server,
        "POST",
        "/v1/models/pd/versions",
        server.keys["auditor"],
        60 * 1024 * 1024,
        MULTIPART,
    )
    assert _problem(answer, 403)["detail"] == "'auditor-1' (auditor) may not submit"
    denied = _denials(server)[before:]
    assert [(e["actor"], e["data"]["action"]) for e in denied] == [
        ("auditor-1", "propose_policy"),
        ("auditor-1", "submit"),
    ]


def test_a_content_length_over_the_limit_is_a_413_at_once(server: Server, spool: Path) -> None:
    for role, path, length, content_type, limit, setting in (
        (
            "data_scientist",
            "/v1/models/pd/versions",
            UPLOAD_LIMIT + 1,
            MULTIPART,
            UPLOAD_LIMIT,
            "GOVREG_MAX_UPLOAD_BYTES",
        ),
        (
            "admin",
            "/v1/principals",
            JSON_LIMIT + 1,
            "application/json",
            JSON_LIMIT,
            "GOVREG_MAX_JSON_BYTES",
        ),
        (
            "service",
            "/v1/models/pd/score",
            13 * 1024 * 1024,
            "application/json",
            SCORE_LIMIT,
            "GOVREG_MAX_SCORE_BYTES",
        ),
    ):
        answer = _headers_only(server, "POST", path, server.keys[role], length, content_type)
        assert _problem(answer, 413) == {
            "type": "https://govreg.dev/problems/http-413",
            "title": "http 413",
            "status": 413,
            "detail": f"request body of {length} bytes is over this endpoint's limit of "
            f"{limit} bytes ({setting})",
        }
    assert _spooled(server, spool) == 0


def _send_chunk(sock: socket.socket, data: bytes) -> None:
    sock.sendall(f"{len(data):x}\r\n".encode() + data + b"\r\n")


def test_a_chunked_upload_is_cut_at_the_limit_and_never_spooled_past_it(
    server: Server, spool: Path
) -> None:
    """A chunked body (no Content-Length) with valid credentials: the 413 comes
    while the body is still unfinished, and the server's temporary folder never
    holds more than the limit (sampled throughout)."""
    peak = 0
    done = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _spooled(server, spool))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        with _connect(server) as sock:
            sock.sendall(
                _head(
                    "POST",
                    "/v1/models/pd/versions",
                    server.keys["data_scientist"],
                    {"Content-Type": MULTIPART},
                    None,
                )
            )
            _send_chunk(
                sock,
                (
                    f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="train"; '
                    'filename="train.csv"\r\nContent-Type: text/csv\r\n\r\n'
                ).encode(),
            )
            piece = b"a,b\n" * (64 * 1024)  # 256 KiB
            sent = 0
            while sent < UPLOAD_LIMIT + 1024 * 1024:
                _send_chunk(sock, piece)
                sent += len(piece)
            # the body is not finished (no last chunk): only a server that counted it answers
            answer = _response(sock)
    finally:
        time.sleep(0.2)
        done.set()
        watcher.join()
    assert _problem(answer, 413)["detail"] == (
        f"request body is over this endpoint's limit of {UPLOAD_LIMIT} bytes "
        "(GOVREG_MAX_UPLOAD_BYTES)"
    )
    assert 0 < peak <= UPLOAD_LIMIT
    deadline = time.monotonic() + 10
    while _spooled(server, spool) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _spooled(server, spool) == 0
    with server.client("data_scientist") as ds:
        assert ds.get("/v1/versions").json() == []


def test_a_large_json_body_is_refused_by_size_and_health_answers_meanwhile(
    server: Server,
) -> None:
    """13 MiB of JSON, sent chunked by a principal allowed to call the endpoint: it
    is refused by its size after 1 MiB, before anything parses it; while that
    request is still open and unfinished, /v1/health answers."""
    big = json.dumps({"name": "x", "role": "auditor", "pad": "y" * (13 * 1024 * 1024)}).encode()
    with _connect(server) as sock:
        sock.sendall(
            _head(
                "POST",
                "/v1/principals",
                server.keys["admin"],
                {"Content-Type": "application/json"},
                None,
            )
        )
        step = 256 * 1024
        for start in range(0, 2 * 1024 * 1024, step):
            _send_chunk(sock, big[start : start + step])
        answer = _response(sock)
        assert _problem(answer, 413)["detail"] == (
            f"request body is over this endpoint's limit of {JSON_LIMIT} bytes "
            "(GOVREG_MAX_JSON_BYTES)"
        )
        with server.client() as anonymous:
            health = anonymous.get("/v1/health", timeout=5)
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
    with server.client("admin") as admin:
        assert [p["name"] for p in admin.get("/v1/principals").json()] == [
            "admin",
            "auditor-1",
            "ds-1",
            "svc-1",
        ]
