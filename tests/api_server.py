"""A real `govreg serve` process for the API tests (importable as ``api_server``)."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    url: str
    home: Any
    keys: dict[str, str]
    process: subprocess.Popen[bytes]
    verify: ssl.SSLContext | bool = True

    def client(self, role: str | None = None, token: str | None = None) -> httpx.Client:
        headers = {}
        credential = token or (self.keys[role] if role else None)
        if credential:
            headers["Authorization"] = f"Bearer {credential}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=60, verify=self.verify)


def start_server(
    home: Any,
    env: dict[str, str] | None = None,
    workers: int = 1,
    *,
    args: tuple[str, ...] = (),
    verify: ssl.SSLContext | bool = True,
) -> Server:
    """``govreg serve`` with ``args`` (HTTPS if they name a certificate; ``verify`` is
    then the SSL context httpx checks it with), once its health endpoint answers."""
    port = _free_port()
    govreg = str(Path(sys.executable).with_name("govreg"))
    full_env = {**os.environ, **home.env, **(env or {})}
    full_env.pop("GOVREG_API_KEY", None)
    log = home.path / f"server-{port}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [govreg, "serve", "--port", str(port), "--workers", str(workers), *args],
            env=full_env,
            stdout=sink,
            stderr=sink,
        )
    scheme = "https" if "--tls-cert" in args else "http"
    url = f"{scheme}://127.0.0.1:{port}"
    # generous: worker start-up imports a lot, and a loaded 2-core machine is slow
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v1/health", timeout=1, verify=verify).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
        if process.poll() is not None:
            raise RuntimeError(log.read_text())
    else:
        process.kill()
        process.wait()
        raise RuntimeError(f"server did not start within 90 s:\n{log.read_text()}")
    return Server(
        url=url, home=home, keys={"admin": home.admin_key}, process=process, verify=verify
    )


def stop(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        server.process.kill()


def make_principal(
    admin: httpx.Client,
    name: str,
    role: str,
    *,
    person: str | None = None,
    models: list[str] | None = None,
    **extra: Any,
) -> httpx.Response:
    """``POST /v1/principals`` for ``person`` (default: a person of the principal's own
    name, created here first if it does not exist); a service principal is scoped to
    ``models`` (default: the model ``pd`` the API tests score)."""
    person = person or name
    if admin.get("/v1/persons").status_code == 200 and person not in {
        p["id"] for p in admin.get("/v1/persons").json()
    }:
        made = admin.post("/v1/persons", json={"id": person, "display": role.replace("_", " ")})
        assert made.status_code == 201, made.text
    body: dict[str, Any] = {"name": name, "role": role, "person": person, **extra}
    if role == "service":
        body["models"] = models or ["pd"]
    return admin.post("/v1/principals", json=body)


def endpoint_table() -> list[tuple[str, str, Any]]:
    """(method, path, action) of every endpoint the app mounts, in their order."""
    from govreg.api.app import mounted_routes
    from govreg.api.deps import endpoints

    return [(e.method, e.path, e.action) for e in endpoints(mounted_routes())]
