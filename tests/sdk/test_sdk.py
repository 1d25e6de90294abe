"""The data scientist's SDK (govreg.sdk.Client), locally and against a real server.

Both paths submit a model registered in a real MLflow store (SQLite, local
artifact root) by its models:/ URI, run the real gates, and wait for the
sign-offs of other people.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_server import Server, start_server, stop
from govreg_kit import GATES, MODEL, PROTECTED, TARGET, Inputs, Kit

from core.errors import NotFoundError
from govreg.sdk import Client, Submitted, VersionStatus, WaitTimeout

SIGNERS = ("validator-1", "compliance-1", "owner-1")


@pytest.fixture(scope="module")
def candidate(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The seeded candidate that passes every gate of credit-risk@1."""
    from govreg.synthetic import write_candidate

    return write_candidate(tmp_path_factory.mktemp("sdk-candidate"))


@pytest.fixture(scope="module")
def mlflow_model(
    tmp_path_factory: pytest.TempPathFactory, candidate: dict[str, Path]
) -> Iterator[dict[str, str]]:
    """The candidate's LightGBM model logged and registered in a real MLflow store."""
    from mlflow import MlflowClient

    from govreg.synthetic import log_to_mlflow

    root = tmp_path_factory.mktemp("sdk-mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    # some MLflow 3.17 code paths resolve through the process-wide tracking URI (default
    # ./mlflow.db): point it at this store for the module
    previous = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    MlflowClient(tracking_uri=uri).create_experiment(
        "credit", artifact_location=(root / "artifacts").as_uri()
    )
    logged = log_to_mlflow(
        candidate["artifact"].read_text(encoding="utf-8"),
        tracking_uri=uri,
        experiment="credit",
        params={"num_boost_round": "20"},
        metrics={"auc": 0.8},
        register_as="credit-pd",
    )
    yield {"tracking_uri": uri, **logged}
    if previous is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = previous


def _submit(client: Client, candidate: dict[str, Path], mlflow_model: dict[str, str]) -> Submitted:
    return client.submit(
        MODEL,
        artifact=mlflow_model["models_uri"],
        train=candidate["train"],
        validation=candidate["validation"],
        target=TARGET,
        protected=PROTECTED,
        reasons=json.loads(candidate["reasons"].read_text(encoding="utf-8")),
    )


def _check_evaluated(evaluated: VersionStatus, candidate: dict[str, Path]) -> None:
    assert (evaluated.model, evaluated.version) == (MODEL, 1)
    assert [g.gate_id for g in evaluated.gates] == [gate_id for gate_id, _ in GATES]
    assert evaluated.passed, evaluated.gates
    assert evaluated.status == "awaiting_signoff"
    digest = hashlib.sha256(candidate["artifact"].read_bytes()).hexdigest()
    assert evaluated.artifact_digest == digest


def _sign_all(kit: Kit) -> None:
    for who in SIGNERS:
        kit.sign(who, MODEL, 1)


def test_the_sdk_locally_submits_from_mlflow_evaluates_and_waits_for_approval(
    sqlite_kit: Kit,
    candidate: dict[str, Path],
    mlflow_model: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kit = sqlite_kit
    kit.people("ds-1", *SIGNERS)
    monkeypatch.delenv("GOVREG_URL", raising=False)
    monkeypatch.setenv("GOVREG_DATABASE_URL", kit.home.database_url)
    monkeypatch.setenv("GOVREG_MLFLOW_TRACKING_URI", mlflow_model["tracking_uri"])

    with Client(api_key=kit.key("ds-1"), home=kit.home.path) as client:
        assert not client.remote
        assert _submit(client, candidate, mlflow_model) == Submitted(MODEL, 1, "submitted")
        lineage = kit.registry.submission(MODEL, 1)["lineage"]["mlflow"]
        assert lineage["registered_model"] == {"name": "credit-pd", "version": "1"}
        assert lineage["run_id"] == mlflow_model["run_id"]
        assert client.status(MODEL, 1).status == "submitted"

        evaluated = client.evaluate(MODEL, 1)
        _check_evaluated(evaluated, candidate)
        assert evaluated.signoffs_missing == {
            "validator": 1,
            "compliance_officer": 1,
            "business_owner": 1,
        }
        with pytest.raises(WaitTimeout) as waited:
            client.wait(MODEL, 1, until="approved", timeout=0.3, poll=0.1)
        assert waited.value.last.status == "awaiting_signoff"
        assert str(waited.value) == (
            "pd v1 is still awaiting_signoff after 0.3 s (waiting for approved)"
        )

        _sign_all(kit)
        approved = client.wait(MODEL, 1, until="approved", timeout=5, poll=0.1)
        assert approved.status == "approved"
        assert approved.signoffs_missing == {}
        assert approved.approved_at is not None
        with pytest.raises(NotFoundError):
            client.status(MODEL, 2)


@pytest.fixture
def server(sqlite_home: Any, mlflow_model: dict[str, str]) -> Iterator[Server]:
    srv = start_server(
        sqlite_home, env={"GOVREG_MLFLOW_TRACKING_URI": mlflow_model["tracking_uri"]}
    )
    yield srv
    stop(srv)


def test_the_sdk_against_a_server_submits_from_the_servers_mlflow_and_waits(
    server: Server, inputs: Inputs, candidate: dict[str, Path], mlflow_model: dict[str, str]
) -> None:
    from govreg_kit import make_kit
    from mlflow import MlflowClient

    kit = make_kit(server.home, inputs)  # the server's home, for the people who sign
    try:
        kit.people("ds-1", *SIGNERS)
        with Client(url=server.url, api_key=kit.key("ds-1")) as client:
            assert client.remote
            # the server, not the client, reads the model from its MLflow
            assert _submit(client, candidate, mlflow_model) == Submitted(MODEL, 1, "submitted")
            lineage = kit.registry.submission(MODEL, 1)["lineage"]["mlflow"]
            assert lineage["source_uri"] == "models:/credit-pd/1"
            assert lineage["run_id"] == mlflow_model["run_id"]

            evaluated = client.evaluate(MODEL, 1)
            _check_evaluated(evaluated, candidate)
            with pytest.raises(WaitTimeout):
                client.wait(MODEL, 1, timeout=0.3, poll=0.1)

            _sign_all(kit)
            approved = client.wait(MODEL, 1, timeout=5, poll=0.1)
            assert (approved.status, approved.signoffs_missing) == ("approved", {})
    finally:
        kit.ctx.close()
    # promotion through the server: the server's mirror sets the alias in MLflow
    with server.client("admin") as http:
        refused = http.post(f"/v1/models/{MODEL}/versions/1/promote", json={"alias": "champion"})
    assert refused.status_code == 403  # an admin may not promote
    owner = Client(url=server.url, api_key=kit.key("owner-1"))
    try:
        owner.ctx.registry.promote(owner._principal(), MODEL, 1, alias="champion")
        assert owner.status(MODEL, 1).aliases == ("champion",)
    finally:
        owner.close()
    mlflow = MlflowClient(
        tracking_uri=mlflow_model["tracking_uri"], registry_uri=mlflow_model["tracking_uri"]
    )
    assert mlflow.get_model_version("credit-pd", "1").tags["govreg.status"] == "promoted"
    aliases = mlflow.get_registered_model("credit-pd").aliases
    assert {a: str(v) for a, v in aliases.items()} == {"champion": "1"}
