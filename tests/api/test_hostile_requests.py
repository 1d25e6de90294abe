"""Hostile requests over real HTTP: look-alike and malformed names, inputs that
were 500s, security headers, and what the audit log shows to whom."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_server import Server, make_principal, start_server, stop
from govreg_kit import PROTECTED, TARGET, Inputs

from govreg.api.headers import API_POLICY, DOCS_POLICY

PROBLEM = "application/problem+json"
NAME_RULE = "use 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"


@pytest.fixture
def server(home: Any) -> Iterator[Server]:
    srv = start_server(home)
    with srv.client("admin") as admin:
        for name, role in (("ds-1", "data_scientist"), ("auditor-1", "auditor")):
            made = make_principal(admin, name, role)
            assert made.status_code == 201, made.text
            srv.keys[role] = made.json()["api_key"]
    yield srv
    stop(srv)


def _size(server: Server) -> int:
    with server.client("auditor") as auditor:
        return int(auditor.post("/v1/audit/verify").json()["size"])


def _upload(client: httpx.Client, files: Inputs, model: str) -> httpx.Response:
    return client.post(
        f"/v1/models/{model}/versions",
        files={
            "artifact": ("model.txt", files.model.read_bytes()),
            "train": ("train.csv", files.train_csv.read_bytes()),
            "validation": ("validation.csv", files.validation_csv.read_bytes()),
        },
        data={"target": TARGET, "protected": ",".join(PROTECTED)},
    )


def _problem(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    detail: str = response.json()["detail"]
    return detail


def test_names_that_look_like_others_are_refused(server: Server, inputs: Inputs) -> None:
    before = _size(server)
    with server.client("admin") as admin:
        for name in ("ds-1\n", "ds-1\r\n", " ds-1", "ds\u20101", "ｄｓ-1", "ds-1\x00"):
            response = admin.post(
                "/v1/principals", json={"name": name, "role": "validator", "person": "ds-1"}
            )
            assert _problem(response, 422).startswith("name: String should match pattern")
        for name, existing in (("DS-1", "ds-1"), ("Ds-1", "ds-1"), ("ADMIN", "admin")):
            response = admin.post(
                "/v1/principals", json={"name": name, "role": "validator", "person": "ds-1"}
            )
            assert _problem(response, 422) == (
                f"principal '{name}' is too like the existing principal '{existing}' (names "
                "may not differ only in case or Unicode form); choose another name"
            )
        assert [p["name"] for p in admin.get("/v1/principals").json()] == [
            "admin",
            "auditor-1",
            "ds-1",
        ]
    assert _size(server) == before
    with server.client("data_scientist") as ds:
        assert _upload(ds, inputs, "pd").status_code == 201
        after_first = _size(server)
        for model in ("PD", "Pd"):
            assert _problem(_upload(ds, inputs, model), 422) == (
                f"model '{model}' is too like the existing model 'pd' (names may not differ "
                "only in case or Unicode form); choose another name"
            )
        assert [(v["model"], v["version"]) for v in ds.get("/v1/versions").json()] == [("pd", 1)]
    assert _size(server) == after_first


def test_inputs_that_were_server_errors_are_problems_naming_the_field(server: Server) -> None:
    """An expiry without a time zone and a NUL byte in a principal's name
    (PostgreSQL refuses it in a query) were 500s. (A NUL byte in an import path:
    tests/api/test_import_folder.py; a JWT role claim given as a list:
    tests/api/test_oidc.py.)"""
    before = _size(server)
    with server.client("admin") as admin:
        naive = admin.post(
            "/v1/principals",
            json={
                "name": "later",
                "role": "auditor",
                "person": "ds-1",
                "expires_at": "2099-01-01T00:00:00",
            },
        )
        assert _problem(naive, 422) == "expires_at: Input should have timezone info"
        assert naive.json()["errors"] == [
            {"field": "expires_at", "message": "Input should have timezone info"}
        ]
        nul = admin.delete("/v1/principals/a%00b")
        assert _problem(nul, 404) == "no principal 'a\\x00b'; see `govreg principals list`"
        aware = admin.post(
            "/v1/principals",
            json={
                "name": "later",
                "role": "auditor",
                "person": "ds-1",
                "expires_at": "2099-01-01T00:00:00+02:00",
            },
        )
        assert aware.status_code == 201, aware.text
        assert aware.json()["expires_at"] == "2098-12-31T22:00:00.000000Z"
    assert _size(server) == before + 1


def _security_headers(response: httpx.Response, policy: str = API_POLICY) -> None:
    assert response.headers["content-security-policy"] == policy
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_every_response_carries_the_security_headers(server: Server) -> None:
    with server.client() as anonymous:
        for path in ("/v1/health", "/v1/versions", "/openapi.json", "/nowhere"):
            response = anonymous.get(path)
            _security_headers(response)
            no_store = response.headers.get("cache-control") == "no-store"
            assert no_store == path.startswith("/v1/"), path
        docs = anonymous.get("/docs")
        assert docs.status_code == 200
        _security_headers(docs, DOCS_POLICY)
        redoc = anonymous.get("/redoc")
        _security_headers(redoc, DOCS_POLICY)
    with server.client("admin") as admin:
        made = make_principal(admin, "svc-1", "service")
        assert made.status_code == 201
        assert made.json()["api_key"].startswith("grk_")
        assert made.headers["cache-control"] == "no-store"
        _security_headers(made)
        refused = make_principal(admin, "svc-1", "service")
        assert refused.status_code == 422
        _security_headers(refused)


def test_only_admins_see_api_key_hashes_in_the_audit_log(server: Server) -> None:
    with server.client("admin") as admin:
        events = admin.get("/v1/audit/events").json()
    created = [e for e in events if e["type"] == "principal.created"]
    assert [e["data"]["name"] for e in created] == ["admin", "ds-1", "auditor-1"]
    assert all(len(e["data"]["key_hash"]) == 64 for e in created)
    for role in ("auditor", "data_scientist"):
        with server.client(role) as reader:
            seen = reader.get("/v1/audit/events").json()
        assert len(seen) == len(events)
        for mine, theirs in zip(seen, events, strict=True):
            assert "key_hash" not in mine["data"]
            expected = {k: v for k, v in theirs["data"].items() if k != "key_hash"}
            assert mine["data"] == expected
            # the hashes a verifier checks are those of the stored envelopes, unchanged
            assert (mine["leaf_hash"], mine["chain_hash"]) == (
                theirs["leaf_hash"],
                theirs["chain_hash"],
            )


def test_an_unhandled_error_carries_the_headers_too() -> None:
    """The headers wrap Starlette's error middleware: its plain 500 has them as well
    (in process; no route of the real server is meant to fail this way)."""
    import asyncio

    from govreg.api.app import create_app

    app = create_app()

    @app.get("/v1/fails")
    def fails() -> None:
        raise RuntimeError("unhandled")

    async def get() -> httpx.Response:
        # ASGITransport runs no lifespan: no home needed
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.get("/v1/fails")

    response = asyncio.run(get())
    assert (response.status_code, response.text) == (500, "Internal Server Error")
    _security_headers(response)
    assert response.headers["cache-control"] == "no-store"
