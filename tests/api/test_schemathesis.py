"""schemathesis over the server's own OpenAPI document, with its default checks.

Every operation is called with the key of a role that may call it (from
the authorisation table), so generated requests get past authentication and
authorisation and reach the handlers: any 5xx, undocumented status code,
content type or response that does not match the documented schema fails.
Bounded (a few examples per operation) so it stays quick; one SQLite-backed
server for the module.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from api_server import Server, endpoint_table, make_principal, start_server, stop
from govreg_homes import make_home
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from govreg.api.app import create_app
from registry.roles import PERMISSIONS, Action, Role

ENDPOINTS = endpoint_table()

# one role that may call each action; reads and verification as the auditor
ACTING_ROLE: dict[Action, Role] = {
    Action.MANAGE_PRINCIPALS: Role.ADMIN,
    Action.ROTATE_KEYS: Role.ADMIN,
    Action.SUBMIT: Role.DATA_SCIENTIST,
    Action.EVALUATE: Role.VALIDATOR,
    Action.SIGN: Role.VALIDATOR,
    Action.PROMOTE: Role.COMPLIANCE_OFFICER,
    Action.SUSPEND: Role.COMPLIANCE_OFFICER,
    Action.REINSTATE: Role.BUSINESS_OWNER,
    Action.RETIRE: Role.BUSINESS_OWNER,
    Action.PROPOSE_POLICY: Role.VALIDATOR,
    Action.APPROVE_POLICY: Role.COMPLIANCE_OFFICER,
    Action.READ: Role.AUDITOR,
    Action.VERIFY: Role.AUDITOR,
    Action.FETCH_MODEL: Role.SERVICE,
    Action.SCORE: Role.SERVICE,
    Action.PURGE_DECISIONS: Role.ADMIN,  # CLI only, no endpoint
}
ACTION_OF = {(method, path): action for method, path, action in ENDPOINTS}
# Operations whose rules JSON Schema cannot state: a request that matches the
# document may still be refused by the service with a 422 problem document.
# For these, and only these, schemathesis's positive_data_acceptance check is
# replaced by semantic_refusal below, which allows exactly that refusal.
SEMANTIC = {
    ("POST", "/v1/models/{model}/versions"): "the files' contents: a LightGBM text "
    "model, CSV or Parquet holding the named target and protected columns",
    ("POST", "/v1/models/{model}/versions/by-reference"): "the files must exist in the "
    "server's import folder (and submission by reference is off without one)",
    ("POST", "/v1/models/{model}/versions/{version}/evaluations"): "a named policy must "
    "be adopted in the ledger",
    ("POST", "/v1/policies"): "a policy's gates and their parameters (policies.schema)",
    ("POST", "/v1/persons"): "a person id must not be taken (or too like a taken one)",
    ("POST", "/v1/principals"): "an expiry must lie in the future; the name must not be "
    "taken (or too like a taken one)",
}


def add_acting_principals(srv: Server) -> None:
    """One principal (and person) per acting role, its key in ``srv.keys``."""
    with srv.client("admin") as admin:
        for role in sorted(set(ACTING_ROLE.values()) - {Role.ADMIN}):
            made = make_principal(admin, f"{role}-1", role)
            assert made.status_code == 201, made.text
            srv.keys[role] = made.json()["api_key"]


def acting_key(case: Any, srv: Server) -> str:
    """The key of a role allowed to call ``case``'s operation."""
    action = ACTION_OF.get((case.method.upper(), case.path))
    return srv.keys[ACTING_ROLE[action]] if action else srv.keys["admin"]


def test_acting_roles_are_allowed() -> None:
    assert all(role in PERMISSIONS[action] for action, role in ACTING_ROLE.items())
    assert set(ACTING_ROLE) == set(Action)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root: Path = tmp_path_factory.mktemp("schemathesis")
    home = make_home(root / "home", f"sqlite:///{root / 'govreg.db'}")
    srv = start_server(home)
    add_acting_principals(srv)
    yield srv
    stop(srv)


# The document is built in-process (the server serves the same one, checked
# below): schemathesis's lazy fixture loader does not run under this pytest.
schema = schemathesis.openapi.from_dict(create_app().openapi())


def test_server_serves_this_document(api: Server) -> None:
    assert httpx.get(api.url + "/openapi.json").json() == create_app().openapi()


@schema.parametrize()
@settings(
    max_examples=8,
    derandomize=True,  # the same examples every run: a failure reproduces
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_openapi_conformance(case: Any, api: Server) -> None:
    operation = (case.method.upper(), case.path)
    headers = {"Authorization": f"Bearer {acting_key(case, api)}"}
    if operation in SEMANTIC:
        case.call_and_validate(
            base_url=api.url,
            headers=headers,
            excluded_checks=[positive_data_acceptance],
            additional_checks=[semantic_refusal],
        )
    else:
        case.call_and_validate(base_url=api.url, headers=headers)


def semantic_refusal(ctx: Any, response: Any, case: Any) -> bool | None:
    """positive_data_acceptance, but a 422 invalid-input or invalid-policy
    problem document (a rule of SEMANTIC) is an accepted answer too."""
    if response.status_code == 422:
        assert response.headers["content-type"] == ["application/problem+json"], response.headers
        kind = response.json()["type"].rsplit("/", 1)[-1]
        assert kind in ("invalid-input", "invalid-policy"), response.json()
        assert response.json()["detail"]
        return None
    return positive_data_acceptance(ctx, response, case)  # type: ignore[no-any-return]
