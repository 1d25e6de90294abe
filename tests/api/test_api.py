"""The HTTP API over real HTTP: a `govreg serve` process, real API keys and JWTs."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import Server, endpoint_table, make_principal, start_server, stop
from govreg_kit import LIFECYCLE_EVENTS

from registry.roles import PERMISSIONS, Role

ENDPOINTS = endpoint_table()

ROLES = [r.value for r in Role]


@pytest.fixture
def server(home: Any, request: pytest.FixtureRequest) -> Iterator[Server]:
    """A `govreg serve` with one principal per role; one worker unless a test
    asks for more with ``@pytest.mark.parametrize("server", [N], indirect=True)``."""
    srv = start_server(home, workers=getattr(request, "param", 1))
    with srv.client("admin") as admin:
        for role in ROLES:
            if role == "admin":
                continue
            made = make_principal(admin, f"{role}-1", role)
            assert made.status_code == 201, made.text
            srv.keys[role] = made.json()["api_key"]
    yield srv
    stop(srv)


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from govreg.synthetic import write_candidate

    return write_candidate(tmp_path_factory.mktemp("api-candidate"))


def _upload(client: httpx.Client, files: dict[str, Path], model: str = "pd") -> httpx.Response:
    return client.post(
        f"/v1/models/{model}/versions",
        files={
            "artifact": ("model.txt", files["artifact"].read_bytes()),
            "train": ("train.csv", files["train"].read_bytes()),
            "validation": ("validation.csv", files["validation"].read_bytes()),
        },
        data={
            "target": "default",
            "protected": "sex,age_band",
            "reasons": files["reasons"].read_text(),
        },
    )


def _ledger_size(server: Server) -> int:
    with server.client("auditor") as client:
        return int(client.post("/v1/audit/verify").json()["size"])


def test_every_route_is_in_the_authorisation_table() -> None:
    from govreg.api.app import create_app

    paths = create_app().openapi()["paths"]
    routes = {
        (method.upper(), path)
        for path, operations in paths.items()
        for method in operations
        if path != "/v1/health"
    }
    assert routes == {(m, p) for m, p, _ in ENDPOINTS}


def test_authentication_failures_are_problem_documents(server: Server) -> None:
    with server.client() as anonymous:
        response = anonymous.get("/v1/versions")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {
        "type": "https://govreg.dev/problems/unauthenticated",
        "title": "unauthenticated",
        "status": 401,
        "detail": "no credentials: send 'Authorization: Bearer <API key or token>'",
    }
    with server.client(token="grk_00000000_nope") as unknown:
        assert unknown.get("/v1/versions").json()["detail"] == "API key is not known"
    with server.client(token="not-a-jwt") as garbage:
        assert garbage.get("/v1/versions").json()["detail"] == (
            "bearer token is not a govreg API key and no OIDC issuer is set"
        )
    # A key the worker already authenticated (and holds in its cache) stops
    # working within the poll interval of its revocation, and the refusal is recorded.
    with server.client("auditor") as auditor:
        assert auditor.get("/v1/versions").status_code == 200
        with server.client("admin") as admin:
            assert admin.delete("/v1/principals/auditor-1").status_code == 204
        revoked_at = time.monotonic()
        while auditor.get("/v1/versions").status_code == 200:
            assert time.monotonic() - revoked_at <= 2.0, "revocation not honoured within 2 s"
            time.sleep(0.05)
        body = auditor.get("/v1/versions").json()
    assert body["status"] == 401
    assert body["detail"].startswith("API key of 'auditor-1' was revoked at ")
    with server.client("admin") as admin:
        log = admin.get("/v1/audit/events").json()
    assert [e["actor"] for e in log if e["type"] == "access.denied"][-1] == "auditor-1"


def _path(template: str) -> str:
    # downloads of a version that does not exist: the permission check still
    # runs first, and no report is rendered (fast)
    version = "99" if template.endswith(("/report", "/evidence")) else "1"
    return (
        template.replace("{model}", "pd")
        .replace("{version}", version)
        .replace("{number}", "1")
        .replace("{policy_ref}", "credit-risk")
        .replace("{name}", "nobody")
    )


def test_authorisation_matrix(server: Server, candidate: dict[str, Path]) -> None:
    with server.client("data_scientist") as ds:
        assert _upload(ds, candidate).status_code == 201
    bodies: dict[str, Any] = {
        "signoffs": {"role": "validator", "decision": "approve", "comment": "x"},
        "promote": {"alias": "champion"},
        "suspend": {"reason": "x"},
        "reinstate": {"reason": "x"},
        "retire": {"reason": "x"},
        "principals": {"name": "made-by-matrix", "role": "auditor"},
        "policies": {"policy": {"id": "incomplete"}},
        "approve": {"comment": "x"},
        "by-reference": {
            "artifact": "a",
            "train": "t.csv",
            "validation": "v.csv",
            "target": "default",
            "protected": ["sex"],
        },
    }
    seen: list[tuple[str, str, str, int]] = []
    for method, template, action in ENDPOINTS:
        allowed = PERMISSIONS[action]
        for role in ROLES:
            body = bodies.get(template.rsplit("/", 1)[-1])
            if template.endswith("/signoffs") and role in ("compliance_officer", "business_owner"):
                body = {**bodies["signoffs"], "role": role}
            with server.client(role) as client:
                if template == "/v1/models/{model}/versions" and method == "POST":
                    response = client.post(_path(template), files={}, data={})
                else:
                    response = client.request(method, _path(template), json=body)
            seen.append((method, template, role, response.status_code))
            if role in allowed:
                assert response.status_code not in (401, 403), (
                    method,
                    template,
                    role,
                    response.text,
                )
            else:
                assert response.status_code == 403, (method, template, role, response.text)
                name = "admin" if role == "admin" else f"{role}-1"
                assert response.json()["detail"].startswith(f"'{name}' ({role}) may not")
    assert len(seen) == len(ENDPOINTS) * len(ROLES)
    # every refusal is counted, once, with who was refused: the first of each
    # principal and action at once as access.denied, the later ones of the interval
    # in the access.denied.aggregated event that `audit flush-denials` appends
    flushed = server.home.cli("audit", "flush-denials", "--json")
    assert flushed.exit_code == 0, flushed.output
    with server.client("admin") as admin:
        events = admin.get("/v1/audit/events", params={"limit": 10000}).json()
    denied = [e for e in events if e["type"] == "access.denied"]
    aggregated = [e for e in events if e["type"] == "access.denied.aggregated"]
    forbidden = [s for s in seen if s[3] == 403]
    counted = [e["data"]["role"] for e in denied] + [
        e["data"]["role"] for e in aggregated for _ in range(e["data"]["count"])
    ]
    assert sorted(counted) == sorted(s[2] for s in forbidden)
    # one immediate event per (principal, action) refused, however often
    firsts = {(s[2], action) for s in forbidden for m, t, action in ENDPOINTS if (m, t) == s[:2]}
    assert sorted((e["data"]["role"], e["data"]["action"]) for e in denied) == sorted(
        (role, action.value) for role, action in firsts
    )
    assert json.loads(flushed.stdout)["refusals"] == len(forbidden) - len(denied)


def test_mass_assignment_is_refused(server: Server) -> None:
    with server.client("validator") as client:
        response = client.post(
            "/v1/models/pd/versions/1/signoffs",
            json={"role": "validator", "decision": "approve", "comment": "x", "status": "approved"},
        )
    assert response.status_code == 422
    assert response.json()["detail"] == "status: Extra inputs are not permitted"
    with server.client("admin") as admin:
        response = admin.post(
            "/v1/principals",
            json={"name": "x", "role": "admin", "person": "admin", "approved_by": "me"},
        )
    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"field": "approved_by", "message": "Extra inputs are not permitted"}
    ]


@pytest.mark.parametrize("server", [2], indirect=True, ids=["workers2"])
def test_full_flow_over_http(server: Server, candidate: dict[str, Path]) -> None:
    """The whole lifecycle against two worker processes sharing one database:
    requests (and the evaluation's background job) land on either worker."""
    start = _ledger_size(server)
    with server.client("data_scientist") as ds:
        created = _upload(ds, candidate)
        assert created.status_code == 201, created.text
        assert created.json() == {"model": "pd", "version": 1, "status": "submitted"}
        started = ds.post("/v1/models/pd/versions/1/evaluations")
        assert started.status_code == 202
        assert started.json() == {
            "model": "pd",
            "version": 1,
            "evaluation": 1,
            "state": "running",
            "status": "evaluating",
        }
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            state = ds.get("/v1/models/pd/versions/1/evaluations/1").json()
            if state["state"] == "completed":
                break
            time.sleep(0.5)
        assert state == {
            "model": "pd",
            "version": 1,
            "evaluation": 1,
            "state": "completed",
            "status": "awaiting_signoff",
        }
        gates = ds.get("/v1/models/pd/versions/1/gates").json()
        assert [(g["gate_id"], g["verdict"]) for g in gates] == [
            ("performance", "passed"),
            # 10,000 validation rows: the equalized odds intervals reach above 0.10
            ("fairness", "warned"),
            ("data-schema", "passed"),
            ("explainability", "passed"),
            ("stability", "passed"),
            ("latency", "passed"),
        ]
        refused = ds.post(
            "/v1/models/pd/versions/1/signoffs",
            json={"role": "validator", "decision": "approve", "comment": "mine"},
        )
        assert refused.status_code == 403
    statuses = []
    for role in ("validator", "compliance_officer", "business_owner"):
        with server.client(role) as signer:
            response = signer.post(
                "/v1/models/pd/versions/1/signoffs",
                json={"role": role, "decision": "approve", "comment": f"{role} reviewed"},
            )
            assert response.status_code == 201, response.text
            statuses.append(response.json()["status"])
    assert statuses == ["awaiting_signoff", "awaiting_signoff", "approved"]
    with server.client("compliance_officer") as co:
        promoted = co.post("/v1/models/pd/versions/1/promote", json={"alias": "champion"})
        assert promoted.json() == {"model": "pd", "version": 1, "status": "promoted"}
        wrong = co.post("/v1/models/pd/versions/1/reinstate", json={"reason": "x"})
        assert wrong.status_code == 409
        assert wrong.json()["detail"].startswith("cannot reinstate pd v1: it is promoted")
    with server.client("validator") as validator:
        suspended = validator.post(
            "/v1/models/pd/versions/1/suspend", json={"reason": "drift under review"}
        )
        assert suspended.status_code == 200, suspended.text
        assert suspended.json() == {"model": "pd", "version": 1, "status": "suspended"}
    with server.client("business_owner") as owner:
        reinstated = owner.post(
            "/v1/models/pd/versions/1/reinstate", json={"reason": "drift explained"}
        )
        # the alias still points at it, so it is back to promoted
        assert reinstated.json() == {"model": "pd", "version": 1, "status": "promoted"}
    with server.client("compliance_officer") as co:
        retired = co.post("/v1/models/pd/versions/1/retire", json={"reason": "replaced"})
        assert retired.json() == {"model": "pd", "version": 1, "status": "retired"}
        again = co.post("/v1/models/pd/versions/1/suspend", json={"reason": "x"})
        assert again.status_code == 409
    with server.client("auditor") as auditor:
        shown = auditor.get("/v1/models/pd/versions/1").json()
        verified = auditor.post("/v1/audit/verify")
        events = auditor.get("/v1/audit/events", params={"model": "pd"}).json()
        every = auditor.get("/v1/audit/events", params={"limit": 10000}).json()
    assert shown["status"] == "retired"
    assert shown["aliases"] == []  # retiring a version takes its aliases away
    assert [s["principal"] for s in shown["signoffs"]] == [
        "validator-1",
        "compliance_officer-1",
        "business_owner-1",
    ]
    assert verified.status_code == 200
    assert verified.json()["ok"] is True
    # gapless: every event of the run is in the trail, once, in order
    assert [e["seq"] for e in every] == list(range(1, len(every) + 1))
    assert verified.json()["size"] == len(every)
    types = [e["type"] for e in events if e["type"] != "access.denied"]
    assert types == LIFECYCLE_EVENTS
    # the run added exactly these events and one refusal: the submitter's
    # sign-off, refused by role before the route read its body, about the model
    # and version its path names (so it is in pd's trail); refused transitions
    # (409) add nothing
    denied = [e for e in every[start:] if e["type"] == "access.denied"]
    assert len(every) - start == len(types) + 1
    assert [(e["actor"], e["data"]["action"], e["model"], e["version"]) for e in denied] == [
        ("data_scientist-1", "sign", "pd", 1)
    ]
    assert [e["seq"] for e in events if e["type"] == "access.denied"] == [denied[0]["seq"]]

    # the auditor downloads the report and the evidence bundle, and verifies
    # the bundle offline with nothing but the public key
    import hashlib

    from audits.signing import load_public_key
    from reports.bundle import verify_bundle

    with server.client("auditor") as auditor:
        pdf = auditor.get("/v1/models/pd/versions/1/report")
        bundle = auditor.get("/v1/models/pd/versions/1/evidence")
        trail = auditor.get("/v1/audit/events", params={"model": "pd"}).json()
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF-")
    assert pdf.headers["x-content-sha256"] == hashlib.sha256(pdf.content).hexdigest()
    generated = [e for e in trail if e["type"] == "report.generated"]
    assert generated[0]["data"]["report_sha256"] == hashlib.sha256(pdf.content).hexdigest()
    assert bundle.headers["content-type"] == "application/zip"
    exported = [e for e in trail if e["type"] == "evidence.exported"]
    assert exported[-1]["data"]["bundle_sha256"] == bundle.headers["x-content-sha256"]
    key = load_public_key(server.home.settings().public_key_path)
    report = verify_bundle(bundle.content, key)
    assert report.model == "pd"
    assert report.version == 1
    # the download renders one report; the bundle renders (and records) its own
    assert [e["type"] for e in trail][len(events) :] == [
        "report.generated",
        "report.generated",
        "evidence.exported",
    ]


def test_refused_submission_records_nothing(server: Server, candidate: dict[str, Path]) -> None:
    before = _ledger_size(server)
    with server.client("data_scientist") as ds:
        response = ds.post(
            "/v1/models/pd/versions",
            files={
                "artifact": ("model.pkl", b"\x80\x04garbage"),
                "train": ("train.csv", candidate["train"].read_bytes()),
                "validation": ("validation.csv", candidate["validation"].read_bytes()),
            },
            data={"target": "default", "protected": "sex"},
        )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("artifact ")
    assert "govreg accepts only LightGBM native text models" in response.json()["detail"]
    assert _ledger_size(server) == before


def test_broken_models_are_422_and_the_worker_lives_on(
    server: Server, candidate: dict[str, Path], tmp_path: Path
) -> None:
    """Uploads that made LightGBM abort the worker (and log its memory): each is one
    problem document, nothing is recorded, and the same worker serves on."""
    import pandas as pd
    from model_files import categorical_model, doctored, write_garbage

    text = candidate["artifact"].read_text()
    features = text.split("feature_names=", 1)[1].split("\n", 1)[0].split(" ")
    categorical = categorical_model(pd.read_csv(candidate["train"]), features, "default")
    cases = doctored(text)
    garbage = tmp_path / "garbage.txt"
    write_garbage(garbage, text)
    uploads: list[tuple[str, Any, str]] = [
        ("cut at 60%", text.encode()[: len(text) * 6 // 10], "tree_sizes says Tree="),
        ("categorical cut", categorical.encode()[: len(categorical) // 2], "tree_sizes says"),
        *(
            (name, cases[name][0].encode(), cases[name][1])
            for name in ("a million and one trees claimed", "feature index out of range")
        ),
        (
            "refused by LightGBM",
            text.replace("sigmoid:1", "sigmoid:-1").encode(),
            "does not load as a LightGBM model (LightGBM says 'Sigmoid parameter -1.000000 "
            "should be greater than zero')",
        ),
        ("200 MB of garbage", garbage, "is not a valid LightGBM text model: Tree="),
    ]
    store = server.home.settings().store_path
    blobs = sorted(store.rglob("*")) if store.exists() else []
    before = _ledger_size(server)
    pid = server.process.pid
    with server.client("data_scientist") as ds:
        for name, artifact, reason in uploads:
            opened = artifact.open("rb") if isinstance(artifact, Path) else nullcontext(artifact)
            with opened as body:
                response = ds.post(
                    "/v1/models/pd/versions",
                    files={
                        "artifact": ("model.txt", body),
                        "train": ("train.csv", candidate["train"].read_bytes()),
                        "validation": ("validation.csv", candidate["validation"].read_bytes()),
                    },
                    data={"target": "default", "protected": "sex,age_band"},
                )
            assert response.status_code == 422, (name, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            detail = response.json()["detail"]
            assert detail.startswith("artifact "), (name, detail)
            assert reason in detail, (name, detail)
            assert "\n" not in detail, (name, detail)
            assert len(detail) < 400, (name, detail)
            assert httpx.get(server.url + "/v1/health").status_code == 200, name
        assert server.process.poll() is None
        assert _ledger_size(server) == before
        assert ds.get("/v1/versions").json() == []
        assert (sorted(store.rglob("*")) if store.exists() else []) == blobs
        created = _upload(ds, candidate)
    assert created.status_code == 201, created.text
    assert created.json() == {"model": "pd", "version": 1, "status": "submitted"}
    assert server.process.pid == pid
    assert server.process.poll() is None
    log = next(server.home.path.glob("server-*.log")).read_text(errors="replace")
    assert "[LightGBM]" not in log
    assert "Traceback" not in log


def test_upload_limit_gives_413(home: Any) -> None:
    srv = start_server(home, env={"GOVREG_MAX_UPLOAD_BYTES": "1000"})
    try:
        with srv.client("admin") as admin:
            key = make_principal(admin, "ds-1", "data_scientist")
        with srv.client(token=key.json()["api_key"]) as ds:
            response = ds.post(
                "/v1/models/pd/versions",
                files={
                    "artifact": ("model.txt", b"tree\n" + b"x" * 2000),
                    "train": ("t.csv", b"a\n1\n"),
                    "validation": ("v.csv", b"a\n1\n"),
                },
                data={"target": "default", "protected": "sex"},
            )
        assert response.status_code == 413
        # the whole multipart body is capped, before the server reads it (the gate)
        length = response.request.headers["content-length"]
        assert response.json()["detail"] == (
            f"request body of {length} bytes is over this endpoint's limit of 1000 bytes "
            "(GOVREG_MAX_UPLOAD_BYTES)"
        )
    finally:
        stop(srv)


def test_openapi_documents_errors(server: Server) -> None:
    doc = httpx.get(server.url + "/openapi.json").json()
    for method, template, _ in ENDPOINTS:
        operation = doc["paths"][template][method.lower()]
        assert {"401", "403"} <= set(operation["responses"]), (method, template)
    signoff = doc["components"]["schemas"]["SignoffCreate"]
    assert signoff["additionalProperties"] is False


def test_docs_show_the_authorisation_matrix() -> None:
    from govreg.api.app import authorization_markdown

    docs = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    assert authorization_markdown() in docs


def test_several_workers_share_one_ledger(home: Any) -> None:
    """Two worker processes take writes at once: the ledger stays gapless and verifies."""
    from concurrent.futures import ThreadPoolExecutor

    srv = start_server(home, workers=2)
    try:

        def create(i: int) -> int:
            with srv.client("admin") as admin:
                body = {"name": f"service-{i:02d}", "role": "service", "person": "admin"}
                response = admin.post("/v1/principals", json={**body, "models": ["pd"]})
                return response.status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(pool.map(create, range(24)))
        with srv.client("admin") as admin:
            names = sorted(p["name"] for p in admin.get("/v1/principals").json())
            events = admin.get("/v1/audit/events").json()
            verified = admin.post("/v1/audit/verify").json()
    finally:
        stop(srv)
    assert codes == [201] * 24
    assert names == sorted(["admin", *(f"service-{i:02d}" for i in range(24))])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert sum(e["type"] == "principal.created" for e in events) == 25
    assert verified["ok"] is True
    assert verified["size"] == len(events)


def test_several_workers_listen_as_tcp_so_connections_get_nodelay() -> None:
    """uvicorn binds the multi-worker socket with proto 0, and asyncio then leaves
    Nagle on (~40 ms per keep-alive request); `govreg serve` re-wraps it as TCP."""
    import socket

    import uvicorn

    from govreg.cli.serve import bind_tcp_socket

    config = uvicorn.Config("govreg.api.app:app_from_env", host="127.0.0.1", port=0, workers=2)
    plain = config.bind_socket()
    assert plain.proto == 0  # the upstream behaviour this works around
    plain.close()
    fixed = bind_tcp_socket(config)
    try:
        assert (fixed.family, fixed.proto) == (socket.AF_INET, socket.IPPROTO_TCP)
        assert fixed.get_inheritable()
        fixed.listen()  # each worker's event loop does this
        with socket.create_connection(fixed.getsockname()[:2], timeout=5):
            accepted, _ = fixed.accept()
            with accepted:
                assert accepted.proto == socket.IPPROTO_TCP  # asyncio sets TCP_NODELAY on it
    finally:
        fixed.close()


def test_reason_texts_per_category_arrive_as_given_over_http(
    server: Server, home: Any, tmp_path: Path
) -> None:
    import json

    from govreg.synthetic import write_candidate

    files = write_candidate(tmp_path, rows=3000, realistic=True)
    sent = json.loads(files["reasons"].read_text())
    assert isinstance(sent["housing"], dict)  # the realistic candidate's texts per category
    with server.client("data_scientist") as client:
        made = _upload(client, files)
        assert made.status_code == 201, made.text
        number = made.json()["version"]
        bad = dict(sent, housing={"default": "Housing", "categories": {"castle": "A castle"}})
        refused = _upload(client, {**files, "reasons": _write(tmp_path / "bad.json", bad)})
    assert refused.status_code == 422
    assert "name category 'castle', which the model does not know" in refused.json()["detail"]
    ctx = home.context()
    try:
        recorded = ctx.registry.submission("pd", number)["reason_texts"]
    finally:
        ctx.close()
    assert recorded["housing"] == sent["housing"]
    assert recorded["income"] == sent["income"]


def _write(path: Path, data: Any) -> Path:
    import json

    path.write_text(json.dumps(data), encoding="utf-8")
    return path
