"""One session for the CLI and the SDK, local or through GOVREG_URL: lineage recorded
the same both ways, remote waits with a deadline, a pinned key checked against the
server's verification, and settings that do not parse refused with their names."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import Server, make_principal


def _remote_actor() -> Any:
    from registry.services import Principal

    return Principal("(remote)", "(remote)")  # the server authenticates the key instead


def _key(server: Server, name: str, role: str) -> str:
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.home.admin_key}"}
    ) as admin:
        made = make_principal(admin, name, role)
    assert made.status_code == 201, made.text
    key: str = made.json()["api_key"]
    return key


def _files(candidate: dict[str, Path]) -> dict[str, Any]:
    return {
        "artifact": candidate["artifact"],
        "train": candidate["train"],
        "validation": candidate["validation"],
        "target": "default",
        "protected": ["sex", "age_band"],
    }


def _remote_cli(server: Server, *args: str, key: str, **env: str) -> Any:
    return server.home.cli(
        *args,
        api_key=key,
        env={"GOVREG_URL": server.url, "GOVREG_HOME": "/nonexistent-govreg-home", **env},
    )


def _recorded_lineage(home: Any, model: str) -> Any:
    log = json.loads(home.cli("audit", "log", "--model", model, "--json").stdout)
    (submitted,) = [e for e in log if e["type"] == "version.submitted"]
    return submitted["data"]["lineage"]


def test_lineage_is_recorded_the_same_locally_and_through_the_server(
    server: Server, candidate: dict[str, Path]
) -> None:
    from govreg.client import RemoteRegistry

    lineage = {"source_commit": "3f2a9c1", "pipeline": {"name": "pd-train", "run": 41}}
    key = _key(server, "ds-1", "data_scientist")
    remote = RemoteRegistry(server.url, key)
    try:
        number = remote.submit(_remote_actor(), "pd", lineage=lineage, **_files(candidate))
        assert number == 1
    finally:
        remote.close()
    ctx = server.home.context(api_key=key)
    try:
        ctx.registry.submit(ctx.principal(), "pd-local", lineage=lineage, **_files(candidate))
    finally:
        ctx.close()
    assert _recorded_lineage(server.home, "pd") == lineage
    assert _recorded_lineage(server.home, "pd-local") == lineage


@pytest.mark.parametrize(
    ("lineage", "message"),
    [
        (
            {"mlflow": {"run_id": "0" * 32}},
            "lineage must not name 'mlflow': govreg records the MLflow run itself when the "
            "model is submitted as a runs:/ or models:/ URI",
        ),
        (
            ["not", "an", "object"],
            'lineage must be a JSON object, e.g. {"source_commit": "3f2a..."}',
        ),
        (
            {"auc": 0.81},
            "lineage is not JSON data without floats: float 0.81 in hashed data; write it "
            "as a decimal string",
        ),
        ({"notes": "x" * 20000}, "lineage is 20012 bytes as JSON; at most 16384 are kept"),
    ],
)
def test_a_bad_lineage_is_refused_the_same_both_ways_and_records_nothing(
    server: Server, candidate: dict[str, Path], lineage: Any, message: str
) -> None:
    from core.errors import InputError
    from govreg.client import RemoteRegistry

    key = _key(server, "ds-1", "data_scientist")
    remote = RemoteRegistry(server.url, key)
    ctx = server.home.context(api_key=key)
    try:
        with pytest.raises(InputError) as over_http:
            remote.submit(_remote_actor(), "pd", lineage=lineage, **_files(candidate))
        with pytest.raises(InputError) as local:
            ctx.registry.submit(ctx.principal(), "pd", lineage=lineage, **_files(candidate))
        assert ctx.registry.list_versions(ctx.principal()) == []
    finally:
        remote.close()
        ctx.close()
    assert str(over_http.value) == str(local.value) == message


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "lineage is not JSON: Expecting property name enclosed in double quotes"),
        ("[" * 100_000, "lineage is not JSON: maximum recursion depth exceeded"),
    ],
)
def test_a_lineage_form_field_that_is_not_json_is_a_422(
    server: Server, candidate: dict[str, Path], text: str, message: str
) -> None:
    key = _key(server, "ds-1", "data_scientist")
    files = {
        name: (candidate[name].name, candidate[name].read_bytes())
        for name in ("artifact", "train", "validation")
    }
    answer = httpx.post(
        f"{server.url}/v1/models/pd/versions",
        headers={"Authorization": f"Bearer {key}"},
        files=files,
        data={"target": "default", "protected": "sex,age_band", "lineage": text},
        timeout=60,
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"].startswith(message)
    assert (
        httpx.get(f"{server.url}/v1/versions", headers={"Authorization": f"Bearer {key}"}).json()
        == []
    )


def test_a_remote_evaluate_stops_waiting_at_its_deadline_and_the_server_goes_on(
    server: Server, candidate: dict[str, Path]
) -> None:
    key = _key(server, "ds-1", "data_scientist")
    submitted = server.home.cli(
        "submit", "pd", "--artifact", str(candidate["artifact"]), "--train",
        str(candidate["train"]), "--validation", str(candidate["validation"]), "--target",
        "default", "--protected", "sex,age_band", "--reasons", str(candidate["reasons"]),
        api_key=key,
    )  # fmt: skip
    assert submitted.exit_code == 0, submitted.output
    waited = _remote_cli(server, "evaluate", "pd", "1", key=key, GOVREG_REMOTE_WAIT_SECONDS="0.001")
    assert (waited.exit_code, waited.stderr) == (
        9,
        "  ... evaluation 1 running on the server\n"
        "error: evaluation 1 of pd v1 is still running on the server after 0.001 s "
        "(GOVREG_REMOTE_WAIT_SECONDS); it goes on there: see `govreg versions show pd 1`\n",
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        shown = json.loads(
            _remote_cli(server, "versions", "show", "pd", "1", "--json", key=key).stdout
        )
        if shown["status"] != "evaluating":
            break
        time.sleep(0.5)
    assert shown["status"] == "awaiting_signoff"


def test_a_pinned_key_is_checked_against_the_servers_verification(
    server: Server, tmp_path: Path
) -> None:
    from audits.signing import PUBLIC_KEY_FILE, create_signing_key, fingerprint, load_public_key

    key = _key(server, "auditor-1", "auditor")
    own = server.home.path / "keys" / PUBLIC_KEY_FILE
    pinned = _remote_cli(server, "audit", "verify", "--public-key", str(own), key=key)
    assert pinned.exit_code == 0, pinned.output
    assert pinned.stdout.startswith("ledger intact: ")

    assert create_signing_key(tmp_path)
    other = tmp_path / PUBLIC_KEY_FILE
    wrong = _remote_cli(server, "audit", "verify", "--public-key", str(other), key=key)
    assert (wrong.exit_code, wrong.stderr) == (
        8,
        "error: the server verified its ledger with key "
        f"{fingerprint(load_public_key(own))}, not with the pinned public key "
        f"{fingerprint(load_public_key(other))}\n",
    )
    anchors = _remote_cli(server, "audit", "verify", "--anchors", str(tmp_path), key=key)
    assert (anchors.exit_code, anchors.stderr) == (
        3,
        f"error: --anchors {tmp_path} names a folder on this machine; through GOVREG_URL the "
        "server verifies against its own anchor folder (leave --anchors out, or verify on "
        "the server's host)\n",
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"GOVREG_DENIAL_LIMIT": "abc"},
            "error: invalid settings: GOVREG_DENIAL_LIMIT='abc': Input should be a valid "
            "integer, unable to parse string as an integer\n",
        ),
        (
            {"GOVREG_REMOTE_WAIT_SECONDS": "0", "GOVREG_MAX_UPLOAD_BYTES": "-1"},
            "error: invalid settings: GOVREG_REMOTE_WAIT_SECONDS='0': Input should be greater "
            "than 0; GOVREG_MAX_UPLOAD_BYTES='-1': Input should be greater than or equal to "
            "1\n",
        ),
    ],
)
def test_a_setting_that_does_not_parse_is_a_configuration_error_naming_it(
    sqlite_home: Any, env: dict[str, str], message: str
) -> None:
    result = sqlite_home.cli("versions", "list", env=env)
    assert (result.exit_code, result.stderr) == (3, message)
