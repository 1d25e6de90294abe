"""Twenty sign-off clients race against a two-worker server on PostgreSQL.

Three versions await sign-off under the credit-risk policy, which asks for
one validator, one compliance officer and one business owner. Twenty
principals (eight validators, six compliance officers, six business owners),
each with its own API key and its own connection, sign every version at the
same moment, each in its own order, repeating their first sign-off at once
(a duplicate) and finally trying to sign as a role they do not hold. Per
version and role one slot exists, so most of them lose.

What must hold: exactly one winner per slot; every response is accounted
for by exactly the events it implies (a 201 by one ``signoff.recorded``, the
approving 201 by a ``version.approved`` too, a principal's first 403 by one
``access.denied`` and its later ones by the count of one
``access.denied.aggregated``, a 409 or 422 by nothing); the ledger is gapless and verifies, and the
projection equals its replay.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from api_server import start_server, stop
from govreg_homes import Home, make_home
from govreg_kit import submit_candidate

VERSIONS = (1, 2, 3)
SIGNERS = {"validator": 8, "compliance_officer": 6, "business_owner": 6}


@pytest.fixture
def pg_home(tmp_path: Path, pg_schema_url: str) -> Home:
    return make_home(tmp_path / "home", pg_schema_url)


def _prepare(home: Home, tmp_path: Path) -> dict[str, tuple[str, str]]:
    """Three evaluated versions (real gates) and twenty signers; name -> (role, key)."""
    from govreg.synthetic import write_candidate

    files = write_candidate(tmp_path / "candidate")
    ctx = home.context()
    try:
        registry = ctx.registry
        admin = registry.authenticate(home.admin_key)
        ds, _ = registry.create_principal(admin, "ds-1", "data_scientist")
        for number in VERSIONS:
            submitted = submit_candidate(registry, ds, "pd", files)
            assert submitted == number
            assert registry.evaluate(ds, "pd", number).value == "awaiting_signoff"
        signers: dict[str, tuple[str, str]] = {}
        for role, count in SIGNERS.items():
            for i in range(1, count + 1):
                principal, key = registry.create_principal(admin, f"{role}-{i}", role)
                signers[principal.name] = (role, key)
    finally:
        ctx.close()
    return signers


@pytest.mark.postgres
def test_twenty_signoff_clients_race(pg_home: Home, tmp_path: Path) -> None:
    signers = _prepare(pg_home, tmp_path)
    assert len(signers) == 20
    server = start_server(pg_home, workers=2)
    try:
        with server.client("admin") as admin:
            start = len(admin.get("/v1/audit/events", params={"limit": 10000}).json())
        barrier = threading.Barrier(len(signers))

        def sign(name: str) -> list[tuple[str, str, int, int, Any]]:
            role, key = signers[name]
            order = list(VERSIONS)
            random.Random(name).shuffle(order)
            # the first sign-off at once again (a duplicate), then every version
            attempts = [(v, role) for v in [order[0], *order]]
            # and last, a role this principal does not hold
            attempts.append((order[-1], "business_owner" if role == "validator" else "validator"))
            out = []
            with server.client(token=key) as client:
                barrier.wait(timeout=30)
                for version, as_role in attempts:
                    response = client.post(
                        f"/v1/models/pd/versions/{version}/signoffs",
                        json={"role": as_role, "decision": "approve", "comment": f"{name} agrees"},
                    )
                    out.append((name, as_role, version, response.status_code, response.json()))
            return out

        with ThreadPoolExecutor(max_workers=len(signers)) as pool:
            results = [r for batch in pool.map(sign, sorted(signers)) for r in batch]

        flushed = pg_home.cli("audit", "flush-denials")  # every counted refusal, appended
        assert flushed.exit_code == 0, flushed.output
        with server.client("admin") as admin:
            every = admin.get("/v1/audit/events", params={"limit": 10000}).json()
            verified = admin.post("/v1/audit/verify")
            shown = {v: admin.get(f"/v1/models/pd/versions/{v}").json() for v in VERSIONS}
    finally:
        stop(server)

    assert len(results) == 20 * 5
    codes = Counter(code for *_, code, _ in results)
    assert set(codes) <= {201, 403, 409, 422}, codes

    # exactly one winner per (version, role), and the third of them approved it
    won = [(version, role, name) for name, role, version, code, _ in results if code == 201]
    assert sorted((v, r) for v, r, _ in won) == sorted((v, r) for v in VERSIONS for r in SIGNERS)
    approving = [(version, body["status"]) for _, _, version, code, body in results if code == 201]
    assert sorted(v for v, status in approving if status == "approved") == list(VERSIONS)
    for version in VERSIONS:
        assert shown[version]["status"] == "approved"
        assert sorted((s["role"], s["principal"]) for s in shown[version]["signoffs"]) == sorted(
            (r, n) for v, r, n in won if v == version
        )
        assert shown[version]["signoffs_missing"] == []

    # losers: a filled slot (422), an approved version (409), their own
    # duplicate while the version still awaited sign-off (403, recorded), or
    # a role they do not hold (403, recorded, refused before any lock)
    for name, role, version, code, body in results:
        if role != signers[name][0]:
            assert code == 403
            assert body["detail"] == (
                f"'{name}' holds the role {signers[name][0]} and cannot sign as {role}"
            )
        elif code == 422:
            assert body["detail"] == (
                f"pd v{version} already has the 1 {role} sign-off(s) its policy asks for"
            )
        elif code == 409:
            assert body["detail"].startswith(f"cannot sign pd v{version}: it is approved")
        elif code == 403:
            assert body["detail"] == (
                f"'{name}' may not sign pd v{version}: person '{name}' has already signed this "
                f"version (as '{name}'); each sign-off needs a distinct person "
                "(segregation of duties)"
            )

    # every response is accounted for by exactly its events, no more, no fewer
    added = every[start:]
    assert [e["seq"] for e in every] == list(range(1, len(every) + 1))
    # (a principal's 403s all refuse the action signoff: the first is an access.denied
    # event, the others are counted in one access.denied.aggregated event)
    refused = [name for name, _, _, code, _ in results if code == 403]
    immediate = [e for e in added if e["type"] == "access.denied"]
    aggregated = [e for e in added if e["type"] == "access.denied.aggregated"]
    assert Counter(e["type"] for e in added) == Counter(
        {
            "signoff.recorded": codes[201],
            "version.approved": len(VERSIONS),
            "access.denied": len(set(refused)),
            **({"access.denied.aggregated": len(aggregated)} if aggregated else {}),
        }
    )
    assert sorted(e["actor"] for e in aggregated) == sorted(
        name for name, times in Counter(refused).items() if times > 1
    )
    counted = Counter(e["actor"] for e in immediate)
    for event in aggregated:
        assert event["data"]["action"] == "signoff"
        counted[event["actor"]] += event["data"]["count"]
    assert counted == Counter(refused)  # every 403 counted, exactly once
    assert codes[201] == 3 * len(VERSIONS)
    assert codes[403] >= len(signers)  # at least the twenty wrong-role attempts
    recorded = sorted(
        (e["version"], e["data"]["role"], e["actor"])
        for e in added
        if e["type"] == "signoff.recorded"
    )
    assert recorded == sorted(won)
    # the event at once is each principal's first 403 (a client's requests are in order)
    first: dict[str, int] = {}
    for name, _, version, code, _ in results:
        if code == 403:
            first.setdefault(name, version)
    denied = sorted((e["actor"], e["version"]) for e in immediate)
    assert denied == sorted(first.items())

    # the ledger verifies and the projection equals its replay
    assert verified.status_code == 200, verified.text
    assert verified.json()["ok"] is True
    assert verified.json()["size"] == len(every)
