"""``GET /v1/health`` over real HTTP: 200 while the ledger is whole, 503 naming the
problem as soon as the events and the latest checkpoint disagree (in every worker,
with no write needed), and again 200 once the forgery is gone."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from api_server import Server, start_server, stop
from ledger_helpers import benchmark, drop_guard_rails, forge, sql


@pytest.fixture
def server(sqlite_home: Any) -> Iterator[Server]:
    srv = start_server(sqlite_home, workers=2)
    yield srv
    stop(srv)


def test_health_turns_unhealthy_on_a_forged_append(server: Server) -> None:
    anonymous = httpx.Client(base_url=server.url, timeout=30)
    admin = server.client("admin")
    try:
        assert anonymous.get("/v1/health").json() == {"status": "ok"}
        ctx = server.home.context()
        try:
            drop_guard_rails(ctx)
            seq = forge(ctx, benchmark(99), None)  # an event no signer wrote
            problem = {
                "status": "unhealthy",
                "problem": f"events {seq}..{seq} are not covered by a signed checkpoint "
                "(run `govreg audit verify`)",
            }
            for _ in range(6):  # both workers answer it, whichever takes the request
                response = anonymous.get("/v1/health")
                assert (response.status_code, response.json()) == (503, problem)
            # A write through the API is refused by the signer (503, nothing recorded).
            refused = admin.post("/v1/persons", json={"id": "eve", "display": "someone"})
            assert refused.status_code == 503, refused.text
            assert refused.json()["type"].endswith("/ledger-signer-refused")
            assert f"seq {seq}: no authenticator, so no holder of the signing key" in refused.text
            assert sql(ctx, "SELECT count(*) FROM persons WHERE id = 'eve'")[0][0] == 0
            sql(ctx, f"DELETE FROM ledger_events WHERE seq = {seq}")
        finally:
            ctx.close()
        for _ in range(6):
            response = anonymous.get("/v1/health")
            assert (response.status_code, response.json()) == (200, {"status": "ok"})
        made = admin.post("/v1/persons", json={"id": "eve", "display": "someone"})
        assert made.status_code == 201, made.text
    finally:
        anonymous.close()
        admin.close()


def test_a_principal_row_forged_in_the_table_is_refused_over_http(server: Server) -> None:
    """A row inserted with a key of the attacker's own: 401 naming why, in every
    worker, and the honest admin keeps working."""
    from registry.principals import principal_created
    from registry.roles import Role

    ctx = server.home.context()
    try:
        drop_guard_rails(ctx)
        event, key = principal_created("admin", "mallory", Role.ADMIN, None, person="admin")
        sql(
            ctx,
            "INSERT INTO principals (name, role, person, key_prefix, key_hash, created_at, "
            "created_by) VALUES ('mallory', 'admin', 'admin', :p, :h, "
            "'2026-01-01T00:00:00.000000Z', 'admin')",
            {"p": event.data["key_prefix"], "h": event.data["key_hash"]},
        )
    finally:
        ctx.close()
    mallory = server.client(token=key)
    admin = server.client("admin")
    try:
        for _ in range(6):  # both workers
            refused = mallory.get("/v1/principals")
            assert refused.status_code == 401, refused.text
            assert (
                "API key of 'mallory' is not backed by the ledger (no ledger event created it)"
                in refused.text
            )
            assert admin.get("/v1/principals").status_code == 200
    finally:
        mallory.close()
        admin.close()
