"""Hostile values for every field of every input model, over real HTTP.

schemathesis generates requests that do *not* match the server's own OpenAPI
document (wrong types, values out of range, missing or extra fields, strings
where objects go, bad path parameters, for every operation and every body,
path and query field) and sends each with the key of a role allowed to call
the operation, so it reaches the handler. Every answer must be a 4xx problem
document (never a 5xx, never a 2xx for data the schema refuses; an operation
that takes no input answers as usual), the server
must log no traceback, and afterwards the ledger verifies with nothing but
what legitimate requests recorded.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from api_server import Server, start_server, stop
from govreg_homes import make_home, postgres_schema
from hypothesis import HealthCheck, settings
from test_schemathesis import acting_key, add_acting_principals

from govreg.api.app import create_app

PROBLEM = "application/problem+json"

schema = schemathesis.openapi.from_dict(create_app().openapi())
schema.config.generation.update(modes=["negative"])


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per database for the module (PostgreSQL refuses NUL bytes in
    text, SQLite does not: both must answer with a problem)."""
    root: Path = tmp_path_factory.mktemp("hostile-fields")
    with contextlib.ExitStack() as cleanup:
        if request.param == "sqlite":
            url = f"sqlite:///{root / 'govreg.db'}"
        else:
            url = cleanup.enter_context(postgres_schema())
        yield from _served(make_home(root / "home", url))


def _served(home: Any) -> Iterator[Server]:
    srv = start_server(home)
    add_acting_principals(srv)
    try:
        yield srv
    finally:
        stop(srv)


def _log(api: Server) -> str:
    return "".join(p.read_text(errors="replace") for p in api.home.path.glob("server-*.log"))


@schema.parametrize()
@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_hostile_values_are_refused_as_problems(case: Any, api: Server) -> None:
    operation = (case.method.upper(), case.path)
    key = acting_key(case, api)
    # schemathesis's checks: no 5xx, a documented status and body, and data the
    # schema refuses is refused (negative_data_rejection)
    response = case.call_and_validate(base_url=api.url, headers={"Authorization": f"Bearer {key}"})
    status = response.status_code
    assert status < 500, (operation, status, response.text[:300])
    if 400 <= status < 500 and status not in (404, 405):  # 404/405: no handler takes it
        assert response.headers["content-type"] == [PROBLEM], (operation, response.headers)
        problem = response.json()
        assert problem["status"] == status
        assert isinstance(problem["detail"], str)
        assert problem["detail"]
        assert "Traceback" not in problem["detail"]
        assert str(api.home.path) not in problem["detail"]


def test_afterwards_the_server_logged_no_error_and_the_ledger_verifies(api: Server) -> None:
    """Runs after the fuzz (same module, same server)."""
    log = _log(api)
    assert "Traceback" not in log
    assert "Internal Server Error" not in log
    with api.client("auditor") as auditor:
        report = auditor.post("/v1/audit/verify")
        events = auditor.get("/v1/audit/events", params={"limit": 1000})
    assert report.status_code == 200, report.text
    counted = Counter(e["type"] for e in events.json())
    # the fuzz created, submitted, signed and proposed nothing: besides the set-up
    # (the ledger, and one person and principal per key) it recorded refusals only
    # (a 403, e.g. a service principal's model outside its scope)
    # refusals: one event each, or (repeated within the denial interval) counted
    # into an aggregated event
    denied = counted.pop("access.denied", 0) + counted.pop("access.denied.aggregated", 0)
    assert counted == {
        "ledger.initialised": 1,
        "person.created": len(api.keys),
        "principal.created": len(api.keys),
    }
    assert report.json()["size"] == len(api.keys) * 2 + 1 + denied


def test_a_hostile_body_never_reaches_the_handler_unauthenticated(api: Server) -> None:
    """The same kind of body without a key: 401, before the body is looked at."""
    response = httpx.post(
        api.url + "/v1/principals",
        content=b'{"name": ["x"], "role": {"$gt": ""}, "person": 10e400}',
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
