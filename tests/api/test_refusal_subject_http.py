"""A refusal at the HTTP gate (before the body is read) is about the model and version
the path names, as the same refusal in the CLI is; a path whose model is not a valid
name leaves it out of the ledger."""

from __future__ import annotations

import json

import httpx
from api_server import Server, make_principal


def test_a_gate_refusal_names_the_paths_model_and_version(server: Server) -> None:
    admin_headers = {"Authorization": f"Bearer {server.home.admin_key}"}
    with httpx.Client(base_url=server.url, headers=admin_headers) as admin:
        made = make_principal(admin, "auditor-1", "auditor")
        assert made.status_code == 201, made.text
        key = made.json()["api_key"]
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as auditor:
        named = auditor.post("/v1/models/pd/versions/7/promote", json={"alias": "champion"})
        unnamed = auditor.post("/v1/models/-pd/versions/99999999999/suspend", json={"reason": "x"})
    assert (named.status_code, unnamed.status_code) == (403, 403)
    events = server.home.cli("audit", "log", "--json")
    assert events.exit_code == 0, events.output
    denied = [
        (e["actor"], e["model"], e["version"], e["data"]["action"])
        for e in json.loads(events.stdout)
        if e["type"] == "access.denied"
    ]
    assert denied == [("auditor-1", "pd", 7, "promote"), ("auditor-1", None, None, "suspend")]
