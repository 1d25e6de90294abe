"""Service principals are scoped to the models they may score (issue 12, finding 11),
and sign-offs count persons (finding 3), over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from api_server import Server, make_principal, start_server, stop


@pytest.fixture
def server(home: Any) -> Iterator[Server]:
    srv = start_server(home)
    yield srv
    stop(srv)


def test_a_service_principal_scores_only_its_models(server: Server) -> None:
    with server.client("admin") as admin:
        unscoped = admin.post(
            "/v1/principals", json={"name": "svc-0", "role": "service", "person": "admin"}
        )
        assert unscoped.status_code == 422
        assert unscoped.json()["detail"] == (
            "a service principal needs models: the models it may score and fetch"
        )
        made = make_principal(admin, "svc-1", "service", models=["pd"])
        assert made.status_code == 201, made.text
        assert (made.json()["person"], made.json()["models"]) == ("svc-1", ["pd"])
        before = len(admin.get("/v1/audit/events").json())
    with server.client(token=made.json()["api_key"]) as svc:
        fetched = svc.get("/v1/models/other/approved")
        scored = svc.post("/v1/models/other/score", json={"applicants": [{"income": 1}]})
    for response, action in ((fetched, "fetch model"), (scored, "score")):
        assert response.status_code == 403
        assert response.json()["detail"] == (
            f"'svc-1' (service) is scoped to the models pd and may not {action} 'other'"
        )
    with server.client("admin") as admin:
        added = admin.get("/v1/audit/events").json()[before:]
    assert [(e["type"], e["actor"], e["model"]) for e in added] == [
        ("access.denied", "svc-1", "other"),
        ("access.denied", "svc-1", "other"),
    ]


def test_one_person_two_principals_over_http(server: Server) -> None:
    with server.client("admin") as admin:
        assert (
            admin.post("/v1/persons", json={"id": "alice", "display": "risk analyst"}).status_code
            == 201
        )
        missing = admin.post("/v1/principals", json={"name": "v-1", "role": "validator"})
        assert missing.status_code == 422
        assert missing.json()["detail"] == "person: Field required"
        for name, role in (("val-alice", "validator"), ("co-alice", "compliance_officer")):
            made = make_principal(admin, name, role, person="alice")
            assert made.status_code == 201, made.text
        persons = admin.get("/v1/persons").json()
        listed = {p["name"]: p["person"] for p in admin.get("/v1/principals").json()}
    assert [(p["id"], p["created_by"]) for p in persons] == [
        ("admin", "govreg-init"),
        ("alice", "admin"),
    ]
    assert listed == {"admin": "admin", "val-alice": "alice", "co-alice": "alice"}
