"""Each exit code, locally and through GOVREG_URL: the same outcome gives the same
code and, with --json, the same error object."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from api_server import Server, start_server, stop
from govreg_kit import MODEL, PROTECTED, TARGET, Inputs, passing_results, submit_args

from govreg.cli import REFUSED


@pytest.fixture
def server(sqlite_home: Any) -> Iterator[Server]:
    srv = start_server(sqlite_home)
    yield srv
    stop(srv)


class People:
    """Principals of the server's home, made in process, and a local context."""

    def __init__(self, server: Server) -> None:
        self.ctx = server.home.context()
        admin = self.ctx.registry.authenticate(server.home.admin_key)
        self.keys: dict[str, str] = {"admin": server.home.admin_key}
        self.actors: dict[str, Any] = {}
        for name, role in (
            ("ds-1", "data_scientist"),
            ("validator-1", "validator"),
            ("compliance-1", "compliance_officer"),
            ("auditor-1", "auditor"),
        ):
            principal, self.keys[name] = self.ctx.registry.create_principal(admin, name, role)
            self.actors[name] = principal

    def submit(self, files: Inputs, **overrides: Any) -> int:
        args: dict[str, Any] = {
            "artifact": files.model,
            "train": files.train_csv,
            "validation": files.validation_parquet,
            "target": TARGET,
            "protected": list(PROTECTED),
            **overrides,
        }
        number: int = self.ctx.registry.submit(self.actors["ds-1"], MODEL, **args)
        return number

    def size(self) -> int:
        with self.ctx.engine.connect() as conn:
            return int(self.ctx.ledger.head(conn)[0])


def local(server: Server, *args: str, key: str) -> Any:
    return server.home.cli(*args, api_key=key)


def remote(server: Server, *args: str, key: str, url: str | None = None) -> Any:
    # a client machine: no govreg home, only the server's address and a key
    env = {"GOVREG_URL": url or server.url, "GOVREG_HOME": "/nonexistent-govreg-home"}
    return server.home.cli(*args, api_key=key, env=env)


def error_of(result: Any) -> dict[str, Any]:
    """The --json error object; stderr is empty and the code is the exit code."""
    assert result.stderr == "", result.stderr
    body = json.loads(result.stdout)
    assert list(body) == ["error"]
    assert set(body["error"]) == {"type", "message", "exit_code"}
    assert body["error"]["exit_code"] == result.exit_code
    error: dict[str, Any] = body["error"]
    return error


def same_both_ways(server: Server, *args: str, key: str) -> tuple[int, dict[str, Any]]:
    """Run a refused command locally and remotely (with and without --json)."""
    here, there = (run(server, *args, "--json", key=key) for run in (local, remote))
    assert here.exit_code == there.exit_code, (here.output, there.output)
    assert error_of(here) == error_of(there)
    plain_here, plain_there = (run(server, *args, key=key) for run in (local, remote))
    message = error_of(here)["message"]
    for plain in (plain_here, plain_there):
        assert (plain.exit_code, plain.stdout) == (here.exit_code, "")
        assert plain.stderr == f"error: {message}\n"
    return here.exit_code, error_of(here)


def test_every_exit_code_is_the_same_locally_and_remotely(
    server: Server, inputs: Inputs, tmp_path: Any
) -> None:
    people = People(server)
    keys = people.keys
    try:
        # 0: done
        here = local(server, "versions", "list", "--json", key=keys["auditor-1"])
        there = remote(server, "versions", "list", "--json", key=keys["auditor-1"])
        assert (here.exit_code, there.exit_code) == (0, 0)
        assert json.loads(here.stdout) == json.loads(there.stdout) == []

        # 2: bad input, here a cutoff other than the policy's; nothing recorded
        size = people.size()
        code, error = same_both_ways(server, *submit_args(inputs, cutoff="0.9"), key=keys["ds-1"])
        assert (code, error["type"]) == (2, "InputError")
        assert error["message"].startswith(
            "--cutoff 0.9 differs from the decision_cutoff 0.5 of policy credit-risk@1"
        )
        assert people.size() == size
        # ... and a command line that does not parse (click's own check, before any call)
        for run in (local, remote):
            broken = run(server, "versions", "show", MODEL, "one", "--json", key=keys["ds-1"])
            assert error_of(broken) == {
                "type": "InputError",
                "message": "Invalid value for 'VERSION': 'one' is not a valid integer.",
                "exit_code": 2,
            }

        # 4: not found
        code, error = same_both_ways(server, "versions", "show", MODEL, "99", key=keys["ds-1"])
        assert (code, error) == (
            4,
            {
                "type": "NotFoundError",
                "message": "no model 'pd'; see `govreg versions list`",
                "exit_code": 4,
            },
        )

        # 5: a credential that is not a key
        code, error = same_both_ways(server, "versions", "list", key="grk_nope_nope")
        assert (code, error["type"]) == (5, "AuthError")

        # 6: not this role (each refusal recorded as access.denied)
        code, error = same_both_ways(server, *submit_args(inputs), key=keys["auditor-1"])
        assert (code, error["message"]) == (6, "'auditor-1' (auditor) may not submit")

        # 7: the lifecycle does not allow it
        submitted = people.submit(inputs)
        code, error = same_both_ways(
            server,
            "promote",
            MODEL,
            str(submitted),
            "--alias",
            "champion",
            key=keys["compliance-1"],
        )
        assert (code, error["type"]) == (7, "TransitionError")

        # 10: the gates refused it: every gate errored (the training blob is gone)
        first, second = people.submit(inputs), people.submit(inputs)
        shown = people.ctx.registry.show_version(people.actors["ds-1"], MODEL, first)
        people.ctx.registry.store.path_for(shown["train_digest"]).unlink()
        for run, version in ((local, first), (remote, second)):
            evaluated = run(server, "evaluate", MODEL, str(version), "--json", key=keys["ds-1"])
            assert (evaluated.exit_code, evaluated.stderr) == (REFUSED, "")
            result = json.loads(evaluated.stdout)
            assert result["status"] == "gates_failed"
            assert {g["verdict"] for g in result["gates"]} == {"error"}
            again = run(server, "versions", "show", MODEL, str(version), key=keys["ds-1"])
            assert again.exit_code == 0  # reading a refused version is no refusal

        # 10: a sign-off that rejects
        ready = []
        for _ in range(2):
            number = people.submit(inputs, train=inputs.train_parquet)
            evaluation = people.ctx.registry.start_evaluation(people.actors["ds-1"], MODEL, number)
            people.ctx.registry.evaluations.record_evaluation(
                people.actors["ds-1"], MODEL, number, evaluation, passing_results()
            )
            ready.append(number)
        for run, version in zip((local, remote), ready, strict=True):
            args = ("signoff", MODEL, str(version), "--role", "validator", "--reject")
            rejected = run(server, *args, "--comment", "calibration poor", key=keys["validator-1"])
            assert (rejected.exit_code, rejected.stderr) == (REFUSED, "")
            assert rejected.stdout == f"signed pd v{version} as validator; status rejected\n"

        # 8: the evidence does not verify (here an anchor file is not a checkpoint,
        # a failure whose message names no seq: the problem type tells it, not the text)
        verified = remote(server, "audit", "verify", "--json", key=keys["auditor-1"])
        assert verified.exit_code == 0, verified.output
        anchor = sorted(server.home.settings().anchors_path.iterdir())[0]
        anchor.write_text("not a checkpoint\n")
        code, error = same_both_ways(server, "audit", "verify", key=keys["auditor-1"])
        assert (code, error["type"]) == (8, "IntegrityError")
        assert error["message"].startswith(f"{anchor}: not a govreg checkpoint")
    finally:
        people.ctx.close()


def test_the_api_refuses_another_cutoff_with_422_and_takes_an_equal_one(
    server: Server, inputs: Inputs
) -> None:
    people = People(server)
    try:
        files = {
            "artifact": ("model.txt", inputs.model.read_bytes()),
            "train": ("train.csv", inputs.train_csv.read_bytes()),
            "validation": ("validation.csv", inputs.validation_csv.read_bytes()),
        }
        form = {"target": TARGET, "protected": ",".join(PROTECTED)}
        size = people.size()
        with server.client(token=people.keys["ds-1"]) as ds:
            refused = ds.post("/v1/models/pd/versions", files=files, data={**form, "cutoff": "0.9"})
            assert refused.status_code == 422
            assert refused.json()["type"] == "https://govreg.dev/problems/invalid-input"
            assert refused.json()["detail"].startswith(
                "--cutoff 0.9 differs from the decision_cutoff 0.5 of policy credit-risk@1, "
            )
            assert people.size() == size
            taken = ds.post("/v1/models/pd/versions", files=files, data={**form, "cutoff": "0.50"})
            assert taken.status_code == 201, taken.text
            shown = ds.get("/v1/models/pd/versions/1").json()
        assert shown["cutoff"] == "0.5"
        assert people.size() == size + 2  # model.registered, version.submitted
    finally:
        people.ctx.close()


class _Broken(BaseHTTPRequestHandler):
    """Not govreg: a proxy in front of it that answers 502 with a page."""

    def do_GET(self) -> None:
        body = b"<html>bad gateway</html>"
        self.send_response(502)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        pass


def test_an_answer_govreg_does_not_know_exits_1(sqlite_home: Any) -> None:
    proxy = ThreadingHTTPServer(("127.0.0.1", 0), _Broken)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{proxy.server_address[1]}"
        env = {"GOVREG_URL": url, "GOVREG_HOME": "/nonexistent-govreg-home"}
        result = sqlite_home.cli("versions", "list", "--json", env=env)
        assert error_of(result) == {
            "type": "GovregError",
            "message": "<html>bad gateway</html>",
            "exit_code": 1,
        }
        plain = sqlite_home.cli("versions", "list", env=env)
        assert (plain.exit_code, plain.stderr) == (1, "error: <html>bad gateway</html>\n")
    finally:
        proxy.shutdown()
        proxy.server_close()


def test_a_configuration_error_exits_3_either_way(sqlite_home: Any, tmp_path: Any) -> None:
    no_home = sqlite_home.cli(
        "versions", "list", "--json", env={"GOVREG_HOME": str(tmp_path / "none")}
    )
    assert error_of(no_home)["type"] == "ConfigError"
    assert no_home.exit_code == 3
    unreachable = sqlite_home.cli(
        "versions",
        "list",
        "--json",
        env={"GOVREG_URL": "http://127.0.0.1:9", "GOVREG_HOME": "/nowhere"},
    )
    assert error_of(unreachable)["type"] == "ConfigError"
    assert unreachable.exit_code == 3
    only_local = sqlite_home.cli(
        "audit", "decisions", env={"GOVREG_URL": "http://127.0.0.1:9", "GOVREG_HOME": "/nowhere"}
    )
    assert (only_local.exit_code, only_local.stderr) == (
        3,
        "error: audit decisions runs on the server's host, not through GOVREG_URL\n",
    )


def test_the_client_reads_each_problem_type_as_the_servers_error() -> None:
    """Every problem type the server sends maps to an error with the server's exit code."""
    from govreg.api.problems import STATUS
    from govreg.client import PROBLEMS
    from policies.schema import PolicyError

    sent = {slug: cls for cls, _status, slug in STATUS} | {"invalid-policy": PolicyError}
    assert set(PROBLEMS) == set(sent)
    for slug, cls in sent.items():
        assert PROBLEMS[slug].exit_code == cls.exit_code, slug


def test_the_serving_sdk_reads_problems_as_the_cli_does(server: Server, inputs: Inputs) -> None:
    """fetch_approved against the server: each problem is the error its type names
    (a refusal to serve is a LoadRefused), with the local error's exit code."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from core.errors import AuthError, GovregError, NotFoundError, PermissionDenied
    from serving.errors import Check, LoadRefused
    from serving.remote import fetch_approved

    people = People(server)
    try:
        admin = people.ctx.registry.authenticate(server.home.admin_key)
        _, service = people.ctx.registry.create_principal(admin, "service-1", "service")
        key = Ed25519PrivateKey.generate().public_key()  # never reached: every fetch fails

        def fetch(api_key: str, model: str = MODEL) -> GovregError:
            with pytest.raises(GovregError) as caught:
                fetch_approved(server.url, api_key, model, public_key=key)
            return caught.value

        unknown = fetch("grk_nope_nope")
        assert type(unknown) is AuthError
        not_service = fetch(people.keys["auditor-1"])
        assert type(not_service) is PermissionDenied
        assert str(not_service) == "'auditor-1' (auditor) may not fetch model"
        missing = fetch(service)
        assert (type(missing), str(missing)) == (
            NotFoundError,
            "pd@champion is not set; promote an approved version to it first",
        )
        version = people.submit(inputs)
        with pytest.raises(LoadRefused) as refused:
            fetch_approved(server.url, service, MODEL, public_key=key, version=version)
        assert refused.value.check == Check.STATUS
        assert refused.value.exit_code == 8
        assert str(refused.value) == (
            "refused to serve pd: status check failed: the server refused: refused to serve "
            "pd v1: status check failed: the version is submitted, never approved"
        )
    finally:
        people.ctx.close()
