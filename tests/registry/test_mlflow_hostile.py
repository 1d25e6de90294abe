"""Hostile MLflow sources: nothing on the server's host is read, listed or fetched
through a ``runs:/`` or ``models:/`` URI, no other host is asked for anything,
and MLflow's credentials go nowhere but to the tracking server (issue 12, finding 2).

Real MLflow, no mocks: a SQLite tracking store, an ``mlflow server`` process,
and a plain HTTP server on 127.0.0.1 that counts the requests it gets. Each
test's docstring names the protection it covers; with that protection
removed, the test fails.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.parse
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from govreg_kit import MODEL, PROTECTED, TARGET, Inputs, Kit
from mlflow_stores import Store, counting_server, make_store, process_wide, tracking_server

from core.errors import ConfigError, InputError, NotFoundError, quote

PASSWORD = "s3cret-pw"
USER = "alice-user"
PATH_REFUSAL = (
    "MLflow URI {uri} is refused: an artifact path is relative to the run's artifacts, "
    "in plain '/'-separated names (no '..' or '.', no leading or doubled '/', no "
    "backslash, no percent-encoding, no control characters)"
)
SCHEME_REFUSAL = (
    "MLflow URI {uri} is refused: its artifacts are stored at a 'http' location, and "
    "govreg fetches MLflow artifacts only from file, mlflow-artifacts locations (the "
    "setting GOVREG_MLFLOW_ARTIFACT_SCHEMES)"
)
HOST_REFUSAL = (
    "MLflow URI {uri} is refused: its artifacts are on another host than the MLflow "
    "tracking server, and govreg fetches over HTTP only from the tracking server (MLflow "
    "would send its credentials along)"
)
FILE_REFUSAL = (
    "MLflow URI {uri} is refused: its artifacts are local files outside the MLflow "
    "artifact root (the setting GOVREG_MLFLOW_ARTIFACT_ROOT); govreg reads local "
    "artifacts only inside it, and never its own keys, anchors or blob store"
)
LINK_REFUSAL = (
    "MLflow URI {uri} is refused: its artifact folder holds a symbolic link; govreg "
    "reads local artifacts only as plain files"
)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, inputs: Inputs) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("mlflow-hostile")
    with process_wide(f"sqlite:///{root / 'mlflow.db'}"):
        yield make_store(root, inputs.model_text)


@pytest.fixture(scope="module")
def server_url(tmp_path_factory: pytest.TempPathFactory, store: Store) -> Iterator[str]:
    """A real ``mlflow server`` (artifacts proxied as ``mlflow-artifacts:``). Its
    operator lets experiments store artifacts on other hosts through it (MLflow 3.17
    refuses that by default; an older server, or anybody writing its database, does not)."""
    allow = {"MLFLOW_ALLOWED_HOST_ADDRESSED_ARTIFACT_SCHEMES": "mlflow-artifacts"}
    with tracking_server(tmp_path_factory.mktemp("mlflow-server"), env=allow) as url:
        yield url


@pytest.fixture
def temp_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Python's temporary folder for this test: whatever MLflow downloads lands here."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLflow's credentials in the environment, as an operator would set them."""
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", USER)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", PASSWORD)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")


@contextmanager
def _kit(
    home: Any, inputs: Inputs, tracking_uri: str, *, like: Kit | None = None, **settings: Any
) -> Iterator[Kit]:
    """A Kit whose registry reads from ``tracking_uri`` (SQLite or PostgreSQL home),
    with the principals of ``like`` (another Kit of the home), else a new ds-1."""
    made = Kit(home=home, ctx=home.context(mlflow_tracking_uri=tracking_uri, **settings),
               files=inputs)  # fmt: skip
    made.keys["admin"] = home.admin_key
    made.principals["admin"] = made.admin
    if like is None:
        made.people("ds-1")
    else:
        made.principals.update(like.principals)
        made.keys.update(like.keys)
    try:
        yield made
        made.verify()
    finally:
        made.ctx.close()


def _refused(kit: Kit, uri: str, error: type[Exception] = InputError) -> str:
    """Submit ``uri``; the refusal's text, after checking that nothing was recorded."""
    before = kit.state()
    with pytest.raises(error) as refused:
        kit.submit(artifact=uri)
    assert kit.state() == before
    return str(refused.value)


def _artifacts_of(store: Store, run_id: str) -> Path:
    uri = store.client().get_run(run_id).info.artifact_uri
    return Path(urllib.parse.urlsplit(uri).path)


def _traversals(store: Store, keys: Path) -> dict[str, str]:
    """URIs that name the govreg home's keys folder from inside the run's artifacts."""
    run = store.run_id
    up = os.path.relpath(keys, _artifacts_of(store, run) / "model")
    assert up.startswith("../")
    assert up.endswith("/keys")
    return {
        "dotdot": f"runs:/{run}/model/{up}",
        "encoded-dots": f"runs:/{run}/model/{up.replace('..', '%2e%2e')}",
        "encoded-slash": f"runs:/{run}/model%2f{up.replace('/', '%2f')}",
        "absolute": f"runs:/{run}/{keys}",
        "backslash": f"runs:/{run}/model\\{up.replace('/', chr(92))}",
        "nul": f"runs:/{run}/model\x00/{up}",
        "trailing-newline": f"runs:/{run}/model\n",
    }


KINDS = ["dotdot", "encoded-dots", "encoded-slash", "absolute", "backslash", "nul",
         "trailing-newline"]  # fmt: skip


# -- artifact paths that leave the run's artifacts ---------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_a_traversal_run_path_is_refused_and_nothing_is_listed_copied_or_recorded(
    home: Any, inputs: Inputs, store: Store, temp_root: Path, kind: str
) -> None:
    """Covers the artifact-path check (``_check_artifact_path``, and the ``\\Z`` end of
    the URI pattern for the trailing newline): without it a traversal lists the
    folder next to the target, or copies the keys into a temporary folder."""
    uri = _traversals(store, home.path / "keys")[kind]
    with _kit(home, inputs, store.uri) as kit:
        message = _refused(kit, uri)

    assert message == PATH_REFUSAL.format(uri=quote(uri, 120))
    assert "kek" not in message
    assert "checkpoint" not in message
    assert list(temp_root.iterdir()) == []  # nothing was downloaded


def test_a_traversal_run_path_is_refused_before_any_mlflow_call(
    home: Any, inputs: Inputs, store: Store, credentials: None
) -> None:
    """Covers the order of the checks: the artifact path is checked before the
    tracking server (here a counting HTTP server) is asked anything."""
    uris = _traversals(store, home.path / "keys")
    with counting_server() as counter, _kit(home, inputs, counter.url) as kit:
        messages = {kind: _refused(kit, uris[kind]) for kind in KINDS}
        assert counter.requests == []

    assert messages == {k: PATH_REFUSAL.format(uri=quote(uris[k], 120)) for k in KINDS}


# -- storage locations on other hosts (SSRF) ---------------------------------------------
def test_a_model_version_stored_on_a_local_http_server_is_refused_without_a_request(
    home: Any, inputs: Inputs, store: Store, credentials: None, temp_root: Path
) -> None:
    """Covers the scheme allow-list (GOVREG_MLFLOW_ARTIFACT_SCHEMES, default file and
    mlflow-artifacts for a local store): an http: version source is refused before
    anything is fetched, and the HTTP server hears nothing, credentials or not."""
    with counting_server() as counter:
        name = f"ssrf-{uuid.uuid4().hex[:8]}"
        client = store.client()
        client.create_registered_model(name)
        client.create_model_version(name, f"{counter.url}/artifacts/model", run_id=store.run_id)
        uri = f"models:/{name}/1"
        with _kit(home, inputs, store.uri) as kit:
            message = _refused(kit, uri)
        assert counter.requests == []

    assert message == SCHEME_REFUSAL.format(uri=quote(uri, 120))
    assert list(temp_root.iterdir()) == []


def test_a_run_stored_on_another_http_host_is_refused_even_when_http_is_allowed(
    home: Any, inputs: Inputs, store: Store, credentials: None
) -> None:
    """Covers the host rule: with http allowed by the operator, a location on another
    host than the tracking server is still refused, because MLflow would send
    MLFLOW_TRACKING_USERNAME/PASSWORD to it as Basic auth (``_on_tracking_server``)."""
    with counting_server() as counter:
        client = store.client()
        experiment = client.create_experiment(
            f"elsewhere-{uuid.uuid4().hex[:8]}", artifact_location=f"{counter.url}/artifacts"
        )
        run = client.create_run(experiment).info.run_id
        uri = f"runs:/{run}/model"
        allowed = "file,http,https,mlflow-artifacts"
        with _kit(home, inputs, store.uri, mlflow_artifact_schemes=allowed) as kit:
            message = _refused(kit, uri)
        assert counter.requests == []

    assert message == HOST_REFUSAL.format(uri=quote(uri, 120))


def test_an_mlflow_artifacts_location_naming_another_host_is_refused_without_a_request(
    home: Any, inputs: Inputs, server_url: str, credentials: None
) -> None:
    """Covers the host rule for ``mlflow-artifacts://host:port/...``: MLflow sends such
    requests (with the credentials) to that host instead of the tracking server."""
    from mlflow import MlflowClient

    with counting_server() as counter:
        client = MlflowClient(tracking_uri=server_url, registry_uri=server_url)
        experiment = client.create_experiment(
            f"proxied-elsewhere-{uuid.uuid4().hex[:8]}",
            artifact_location=f"mlflow-artifacts://127.0.0.1:{counter.port}/artifacts",
        )
        run = client.create_run(experiment).info.run_id
        uri = f"runs:/{run}/model"
        with _kit(home, inputs, server_url) as kit:
            message = _refused(kit, uri)
        assert counter.requests == []

    assert message == HOST_REFUSAL.format(uri=quote(uri, 120))


# -- local files: inside the artifact root, never govreg's own ------------------------------
@pytest.mark.parametrize("root", ["default", "/"], ids=["default-root", "root-is-slash"])
@pytest.mark.parametrize("link", ["folder", "file"])
def test_a_symbolic_link_to_the_keys_in_the_run_artifacts_is_refused(
    home: Any, inputs: Inputs, store: Store, temp_root: Path, root: str, link: str
) -> None:
    """Covers the file: rules (``_check_file``): the run's ``model`` folder is a link to
    the govreg home's keys, or holds an ``MLmodel`` linking to kek.json. Refused
    whether the artifact root is the store's folder (the keys are outside it) or
    ``/`` (the keys are govreg's own); without the rules the keys are copied."""
    client = store.client()
    run = client.create_run(store.experiment_id).info.run_id
    model = _artifacts_of(store, run) / "model"
    model.parent.mkdir(parents=True)
    keys = home.path / "keys"
    if link == "folder":
        model.symlink_to(keys, target_is_directory=True)
        expected = FILE_REFUSAL
    else:
        model.mkdir()
        (model / "MLmodel").symlink_to(keys / "kek.json")
        expected = LINK_REFUSAL
    uri = f"runs:/{run}/model"
    settings = {} if root == "default" else {"mlflow_artifact_root": Path(root)}
    with _kit(home, inputs, store.uri, **settings) as kit:
        message = _refused(kit, uri)

    assert message == expected.format(uri=quote(uri, 120))
    assert list(temp_root.iterdir()) == []


# -- credentials in the tracking URI --------------------------------------------------------
def test_credentials_in_the_tracking_uri_reach_no_message_and_no_lineage(
    home: Any, inputs: Inputs, server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Covers ``public_uri`` in the lineage and ``redact`` in ``translate``: a tracking
    URI with user:password@ is used, but recorded and reported without them."""
    from api_server import _free_port

    from govreg.synthetic import log_to_mlflow

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    logged = log_to_mlflow(inputs.model_text, tracking_uri=server_url, experiment="creds")
    parts = urllib.parse.urlsplit(server_url)
    secret_uri = f"http://{USER}:{PASSWORD}@{parts.netloc}"
    missing = "0123456789abcdef0123456789abcdef"
    down = f"http://127.0.0.1:{_free_port()}"
    secret_down = down.replace("http://", f"http://{USER}:{PASSWORD}@")

    with _kit(home, inputs, secret_uri) as kit:
        version = kit.submit(artifact=logged["runs_uri"])  # the honest path still works
        not_found = _refused(kit, f"runs:/{missing}/model", NotFoundError)
        lineage = kit.registry.submission(MODEL, version)["lineage"]["mlflow"]
        recorded = json.dumps([e.data for e in kit.events()])
        with _kit(home, inputs, secret_down, like=kit) as down_kit:
            unreachable = _refused(down_kit, f"runs:/{missing}/model", ConfigError)

    assert (lineage["tracking_uri"], lineage["source_uri"]) == (server_url, logged["runs_uri"])
    assert lineage["run_id"] == logged["run_id"]
    assert not_found == (
        f"run {missing}: RESOURCE_DOES_NOT_EXIST: Run with id={missing} not found "
        f"(MLflow at {server_url})"
    )
    assert unreachable.startswith(f"run {missing}: MLflow at {down} failed: ")
    assert f"{down}/api/2.0/mlflow/runs/get" in unreachable  # MLflow names the URL...
    for text in (recorded, not_found, unreachable):  # ...without the user or password
        assert PASSWORD not in text
        assert USER not in text


def test_http_problem_documents_carry_no_credentials_no_paths_and_record_nothing(
    home: Any, inputs: Inputs, store: Store, tmp_path: Path
) -> None:
    """Covers the problem document of a ConfigError (a fixed detail; the redacted cause
    goes to the server's log) and the path refusal through ``govreg serve``."""
    from api_server import _free_port, make_principal, start_server, stop

    from govreg.api.problems import SERVER_CONFIGURATION_DETAIL

    imports = tmp_path / "imports"
    imports.mkdir()
    (imports / "train.csv").write_bytes(inputs.train_csv.read_bytes())
    (imports / "validation.csv").write_bytes(inputs.validation_csv.read_bytes())
    down = f"127.0.0.1:{_free_port()}"
    env = {
        "GOVREG_IMPORT_DIR": str(imports),
        "GOVREG_MLFLOW_TRACKING_URI": f"http://{USER}:{PASSWORD}@{down}",
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
        "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    }
    server = start_server(home, env=env)
    try:
        with server.client("admin") as admin:
            made = make_principal(admin, "ds-1", "data_scientist")
            assert made.status_code == 201, made.text
            size = admin.post("/v1/audit/verify").json()["size"]
        server.keys["data_scientist"] = made.json()["api_key"]
        traversal = _traversals(store, home.path / "keys")["dotdot"]
        answers = {}
        with server.client("data_scientist") as ds:
            for uri in (traversal, f"runs:/{store.run_id}/model"):
                answers[uri] = ds.post(
                    f"/v1/models/{MODEL}/versions/by-reference",
                    json={"artifact": uri, "train": "train.csv",
                          "validation": "validation.csv", "target": TARGET,
                          "protected": list(PROTECTED)},
                )  # fmt: skip
        with server.client("admin") as admin:
            assert admin.post("/v1/audit/verify").json()["size"] == size
    finally:
        stop(server)

    refused, failed = answers[traversal], answers[f"runs:/{store.run_id}/model"]
    assert (refused.status_code, refused.json()) == (422, {
        "type": "https://govreg.dev/problems/invalid-input",
        "title": "invalid input",
        "status": 422,
        "detail": PATH_REFUSAL.format(uri=quote(traversal, 120)),
    })  # fmt: skip
    assert (failed.status_code, failed.json()) == (500, {
        "type": "https://govreg.dev/problems/server-configuration",
        "title": "server configuration",
        "status": 500,
        "detail": SERVER_CONFIGURATION_DETAIL,
    })  # fmt: skip
    log = "\n".join(p.read_text() for p in home.path.glob("server-*.log"))
    assert f"server configuration: run {store.run_id}: MLflow at http://{down} failed: " in log
    for text in (refused.text, failed.text, log):
        assert PASSWORD not in text
        assert USER not in text


# -- locations outside the run's artifacts; the rules' defaults ------------------------------
OUTSIDE_REFUSAL = (
    "MLflow URI {uri} is refused: its artifacts are stored outside the artifact root of "
    "its run or logged model; govreg fetches only a run's or logged model's own artifacts"
)
NO_RUN_REFUSAL = (
    "MLflow URI {uri} is refused: the model version names neither a run nor a logged "
    "model, so govreg cannot tell whether its files are a run's artifacts; register it "
    "from a run or a logged model"
)


@pytest.mark.parametrize("case", ["of-a-run", "of-no-run", "escaped-plain-path"])
def test_a_model_version_stored_outside_its_runs_artifacts_is_refused(
    home: Any, inputs: Inputs, store: Store, temp_root: Path, case: str
) -> None:
    """Covers the artifact-root containment (step 2 of ``_check_location``) and the
    refusal of a version with neither run nor logged model: the version's source is
    the pickle folder elsewhere in the store, which is inside the allowed file root;
    or a plain path whose ``%2F`` MLflow reads literally (a sibling folder of the
    run's artifacts), though unquoted it would seem to be inside them."""
    client = store.client()
    name = f"outside-{uuid.uuid4().hex[:8]}"
    client.create_registered_model(name)
    run = case != "of-no-run"
    source = (store.root / "sklearn-model").as_uri()
    if case == "escaped-plain-path":
        artifacts = _artifacts_of(store, store.run_id)
        source = f"{artifacts.parent}/{artifacts.name}%2Fmodel"
    client.create_model_version(name, source, run_id=store.run_id if run else None)
    uri = f"models:/{name}/1"
    with _kit(home, inputs, store.uri) as kit:
        message = _refused(kit, uri)

    assert message == (OUTSIDE_REFUSAL if run else NO_RUN_REFUSAL).format(uri=quote(uri, 120))
    assert list(temp_root.iterdir()) == []
    assert not store.sentinel.exists()


def test_the_default_rules_allow_only_the_tracking_servers_own_store(tmp_path: Path) -> None:
    """Covers the defaults of GOVREG_MLFLOW_ARTIFACT_SCHEMES and _ROOT, and the refusal
    of a malformed scheme list."""
    from registry.mlflow_source import ArtifactRules, artifact_rules

    keys = tmp_path / "keys"
    assert artifact_rules("http://mlflow.internal:5000") == ArtifactRules(
        schemes=frozenset({"mlflow-artifacts"})
    )
    assert artifact_rules(f"sqlite:///{tmp_path / 'mlflow.db'}", forbidden=(keys,)) == (
        ArtifactRules(frozenset({"file", "mlflow-artifacts"}), tmp_path.resolve(), (keys,))
    )
    assert artifact_rules(tmp_path.as_uri()).file_root == tmp_path.resolve()
    assert artifact_rules(
        "http://mlflow.internal:5000", schemes=" S3:, mlflow-artifacts ", file_root=tmp_path
    ) == ArtifactRules(frozenset({"s3", "mlflow-artifacts"}), tmp_path.resolve())
    with pytest.raises(ConfigError) as refused:
        artifact_rules("http://mlflow.internal:5000", schemes="file, s3://bucket")
    assert str(refused.value) == (
        "GOVREG_MLFLOW_ARTIFACT_SCHEMES must be a comma-separated list of URI schemes such "
        "as 'mlflow-artifacts,file'; 'file, s3://bucket' is not"
    )
