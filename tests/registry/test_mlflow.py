"""MLflow as a source (runs:/ and models:/) and the mirror into its model registry.

Real MLflow, no mocks: a SQLite tracking store and a local artifact root in a
temporary folder, with LightGBM models logged by ``mlflow.lightgbm.log_model``
once per module (logging is slow).
"""

from __future__ import annotations

import hashlib
import json
import pickle
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from govreg_homes import make_home
from govreg_kit import MODEL, PROTECTED, TARGET, Inputs, Kit, passing_results
from mlflow_stores import COMMIT, PARAMS, Store, make_store, process_wide

from core.errors import ConfigError, InputError, NotFoundError


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory, inputs: Inputs) -> Iterator[Store]:
    root = tmp_path_factory.mktemp("mlflow")
    with process_wide(f"sqlite:///{root / 'mlflow.db'}"):
        yield make_store(root, inputs.model_text)


@pytest.fixture
def mkit(tmp_path: Path, inputs: Inputs, store: Store) -> Iterator[Kit]:
    """A SQLite home whose registry reads from and mirrors into ``store``."""
    home = make_home(tmp_path / "home", f"sqlite:///{tmp_path / 'govreg.db'}")
    made = Kit(home=home, ctx=home.context(mlflow_tracking_uri=store.uri), files=inputs)
    made.keys["admin"] = home.admin_key
    made.principals["admin"] = made.admin
    try:
        yield made
        made.verify()
    finally:
        made.ctx.close()


def _lineage(kit: Kit, version: int = 1) -> dict[str, Any]:
    lineage: dict[str, Any] = kit.registry.submission(MODEL, version)["lineage"]
    return lineage


def _approve(kit: Kit, version: int) -> None:
    """Complete the evaluation with constructed passing results and sign three times."""
    number = kit.registry.start_evaluation(kit["ds-1"], MODEL, version)
    kit.registry.evaluations.record_evaluation(
        kit["ds-1"], MODEL, version, number, passing_results()
    )
    for who in ("validator-1", "compliance-1", "owner-1"):
        kit.sign(who, MODEL, version)


def _mlflow_version(store: Store, name: str, version: str) -> tuple[dict[str, str], dict[str, str]]:
    """(tags of the MLflow version, aliases of the registered model)."""
    client = store.client()
    tags = dict(client.get_model_version(name, version).tags)
    aliases = {a: str(v) for a, v in client.get_registered_model(name).aliases.items()}
    return tags, aliases


# -- MLflow as a source -------------------------------------------------------------
def test_submit_from_a_runs_uri_records_the_run_lineage_and_the_model_lgb_digest(
    mkit: Kit, store: Store
) -> None:
    version = mkit.submit(artifact=store.runs_uri)

    row = mkit.row(MODEL, version)
    assert row is not None
    assert row["artifact_digest"] == hashlib.sha256(store.model_lgb).hexdigest()
    assert mkit.registry.store.get(row["artifact_digest"]) == store.model_lgb
    assert _lineage(mkit, version) == {
        "mlflow": {
            "source_uri": store.runs_uri,
            "tracking_uri": store.uri,
            "registered_model": None,
            "logged_model_id": store.logged_model_id,
            "model_file": "model.lgb",
            "run_id": store.run_id,
            "experiment_id": store.experiment_id,
            "params": PARAMS,
            "metrics": {"auc": "0.871", "ks": "0.58"},
            "source_commit": COMMIT,
        }
    }


def test_submit_from_a_models_uri_records_the_registered_model_version(
    mkit: Kit, store: Store
) -> None:
    mkit.people("ds-1")
    before = mkit.size()
    version = mkit.submit(artifact=store.models_uri)

    assert store.models_uri == "models:/credit-pd/1"
    assert mkit.size() == before + 2  # model.registered, version.submitted
    row = mkit.row(MODEL, version)
    assert row is not None
    assert row["artifact_digest"] == hashlib.sha256(store.model_lgb).hexdigest()
    mlflow = _lineage(mkit, version)["mlflow"]
    assert mlflow["source_uri"] == "models:/credit-pd/1"
    assert mlflow["registered_model"] == {"name": "credit-pd", "version": "1"}
    assert (mlflow["run_id"], mlflow["experiment_id"]) == (store.run_id, store.experiment_id)
    assert (mlflow["params"], mlflow["source_commit"]) == (PARAMS, COMMIT)
    assert mlflow["metrics"] == {"auc": "0.871", "ks": "0.58"}
    assert mlflow["logged_model_id"] == store.logged_model_id


def test_a_pickle_only_artifact_is_refused_nothing_is_recorded_and_no_pickle_runs(
    mkit: Kit, store: Store
) -> None:
    mkit.people("ds-1")
    before = mkit.state()

    with pytest.raises(InputError) as refused:
        mkit.submit(artifact=store.pickle_uri)

    assert str(refused.value) == (
        f"artifact {store.pickle_uri} has no LightGBM native text model: its MLmodel lists "
        "the flavors python_function (loader_module mlflow.sklearn), sklearn (pickled_model "
        "model.pkl, serialization_format cloudpickle); govreg never loads pickles or pyfunc "
        "code: log a LightGBM Booster with mlflow.lightgbm.log_model(booster, ...)"
    )
    assert mkit.state() == before
    assert not store.sentinel.exists()
    # the sentinel is live: unpickling the artifact's bytes does create it
    pickle.loads(store.pickle_bytes)  # the test's own bytes, to prove the sentinel works
    assert store.sentinel.exists()
    store.sentinel.unlink()


@pytest.mark.parametrize(
    ("uri", "error", "message"),
    [
        (
            "runs:/0123456789abcdef0123456789abcdef/model",
            NotFoundError,
            "run 0123456789abcdef0123456789abcdef: Run with id=0123456789abcdef0123456789abcdef "
            "not found (MLflow at {uri})",
        ),
        (
            "models:/no-such-model/1",
            NotFoundError,
            "registered model 'no-such-model': Registered Model with name=no-such-model not "
            "found (MLflow at {uri})",
        ),
        (
            "models:/credit-pd/99",
            NotFoundError,
            "registered model 'credit-pd' version 99: Model Version (name=credit-pd, "
            "version=99) not found (MLflow at {uri})",
        ),
        (
            "{runs_path}/no-such-path",
            NotFoundError,
            "{runs_path}/no-such-path: the run has no artifact at that path (next to it: "
            "MLmodel, conda.yaml, model.lgb, python_env.yaml, requirements.txt)",
        ),
        (
            "models:/credit-pd@champion",
            InputError,
            "MLflow URI 'models:/credit-pd@champion' is not supported: use runs:/<run_id>/"
            "<artifact path> or models:/<registered model name>/<version number>",
        ),
    ],
    ids=["unknown-run", "unknown-model", "unknown-version", "unknown-path", "alias-uri"],
)
def test_unknown_sources_are_clear_errors_and_record_nothing(
    mkit: Kit, store: Store, uri: str, error: type[Exception], message: str
) -> None:
    mkit.people("ds-1")
    before = mkit.state()
    runs_path = store.runs_uri
    with pytest.raises(error) as refused:
        mkit.submit(artifact=uri.format(runs_path=runs_path))
    assert str(refused.value) == message.format(uri=store.uri, runs_path=runs_path)
    assert mkit.state() == before


def test_no_tracking_uri_configured_is_a_clear_error(
    tmp_path: Path, inputs: Inputs, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("GOVREG_MLFLOW_TRACKING_URI", raising=False)
    home = make_home(tmp_path / "home", f"sqlite:///{tmp_path / 'govreg.db'}")
    made = Kit(home=home, ctx=home.context(), files=inputs)
    try:
        with pytest.raises(ConfigError) as refused:
            made.submit(artifact=store.models_uri)
        assert str(refused.value) == (
            "no MLflow tracking URI is configured: set GOVREG_MLFLOW_TRACKING_URI "
            "(or MLFLOW_TRACKING_URI)"
        )
    finally:
        made.ctx.close()


# -- the mirror into the MLflow model registry ------------------------------------------
def test_the_mirror_follows_approval_promotion_suspension_reinstatement_and_retirement(
    mkit: Kit, store: Store
) -> None:
    name, mv = store.register()
    v1 = mkit.submit(artifact=f"models:/{name}/{mv}")
    # before approval govreg writes nothing to MLflow
    number = mkit.registry.start_evaluation(mkit["ds-1"], MODEL, v1)
    mkit.registry.evaluations.record_evaluation(mkit["ds-1"], MODEL, v1, number, passing_results())
    mkit.sign("validator-1", MODEL, v1)
    assert _mlflow_version(store, name, mv) == ({}, {})

    mkit.sign("compliance-1", MODEL, v1)
    mkit.sign("owner-1", MODEL, v1)  # approves
    row = mkit.row(MODEL, v1)
    assert row is not None
    approved_tags = {
        "govreg.model": MODEL,
        "govreg.version": "1",
        "govreg.status": "approved",
        "govreg.artifact_digest": hashlib.sha256(store.model_lgb).hexdigest(),
        "govreg.evidence_digest": row["evidence_digest"],
        "govreg.approval_seq": str(row["approval_seq"]),
    }
    assert _mlflow_version(store, name, mv) == (approved_tags, {})

    mkit.registry.promote(mkit["compliance-1"], MODEL, v1, alias="champion")
    assert _mlflow_version(store, name, mv) == (
        {**approved_tags, "govreg.status": "promoted"},
        {"champion": mv},
    )

    mkit.registry.suspend(mkit["compliance-1"], MODEL, v1, reason="drift")
    assert _mlflow_version(store, name, mv) == ({**approved_tags, "govreg.status": "suspended"}, {})

    mkit.registry.reinstate(mkit["compliance-1"], MODEL, v1, reason="drift explained")
    assert _mlflow_version(store, name, mv) == (
        {**approved_tags, "govreg.status": "promoted"},
        {"champion": mv},
    )

    mkit.registry.retire(mkit["compliance-1"], MODEL, v1, reason="replaced")
    assert _mlflow_version(store, name, mv) == ({**approved_tags, "govreg.status": "retired"}, {})


def test_the_alias_moves_to_the_approved_version_only(mkit: Kit, store: Store) -> None:
    name, mv1 = store.register()
    client = store.client()
    mv2 = str(
        client.create_model_version(
            name, store.model_location, run_id=store.run_id, model_id=store.logged_model_id
        ).version
    )
    # somebody points "champion" at an MLflow version govreg never approved
    client.set_registered_model_alias(name, "champion", mv2)
    v1 = mkit.submit(artifact=f"models:/{name}/{mv1}")
    v2 = mkit.submit(artifact=f"models:/{name}/{mv2}")
    _approve(mkit, v1)
    mkit.registry.promote(mkit["compliance-1"], MODEL, v1, alias="champion")

    tags1, aliases = _mlflow_version(store, name, mv1)
    tags2, _ = _mlflow_version(store, name, mv2)
    assert aliases == {"champion": mv1}
    assert (tags1["govreg.status"], tags2["govreg.status"]) == ("promoted", "submitted")
    assert "govreg.approval_seq" not in tags2
    assert mkit.row(MODEL, v2)["status"] == "submitted"  # type: ignore[index]


def test_a_runs_version_is_registered_in_mlflow_at_approval_and_only_once(
    mkit: Kit, store: Store
) -> None:
    model = f"pd-{uuid.uuid4().hex[:8]}"
    version = mkit.submit(model, artifact=store.runs_uri)
    client = store.client()
    assert client.search_registered_models(f"name = '{model}'") == []

    number = mkit.registry.start_evaluation(mkit["ds-1"], model, version)
    mkit.registry.evaluations.record_evaluation(
        mkit["ds-1"], model, version, number, passing_results()
    )
    for who in ("validator-1", "compliance-1", "owner-1"):
        mkit.sign(who, model, version)
    mkit.registry.promote(mkit["owner-1"], model, version, alias="champion")
    mkit.ctx.mirror.sync(mkit.registry, model)  # re-running registers nothing new

    versions = client.search_model_versions(f"name = '{model}'")
    assert [str(v.version) for v in versions] == ["1"]
    found = versions[0]
    assert (found.run_id, found.source) == (store.run_id, store.model_location)
    assert found.tags["govreg.version"] == "1"
    assert found.tags["govreg.status"] == "promoted"
    aliases = client.get_registered_model(model).aliases
    assert {a: str(v) for a, v in aliases.items()} == {"champion": "1"}


def test_a_mirror_failure_keeps_governance_committed_and_sync_repairs_it(
    mkit: Kit, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api_server import _free_port

    name, mv = store.register()
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    down = {"GOVREG_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{_free_port()}"}
    up = {"GOVREG_MLFLOW_TRACKING_URI": store.uri}
    submitted = mkit.home.cli(
        "submit",
        MODEL,
        "--artifact",
        f"models:/{name}/{mv}",
        "--train",
        str(mkit.files.train_csv),
        "--validation",
        str(mkit.files.validation_csv),
        "--target",
        TARGET,
        "--protected",
        ",".join(PROTECTED),
        api_key=mkit.key("ds-1"),
        env=up,
    )
    assert submitted.exit_code == 0, submitted.output
    assert submitted.stdout == "submitted pd v1\n"
    number = mkit.registry.start_evaluation(mkit["ds-1"], MODEL, 1)
    mkit.registry.evaluations.record_evaluation(mkit["ds-1"], MODEL, 1, number, passing_results())
    mkit.sign("validator-1")
    mkit.sign("compliance-1")

    # the tracking server is down when the last sign-off approves and at promotion
    signed = mkit.home.cli(
        "signoff", MODEL, "1", "--role", "business_owner", "--approve", "--comment", "ok",
        api_key=mkit.key("owner-1"),
        env=down,
    )  # fmt: skip
    assert signed.exit_code == 0, signed.output
    assert signed.stdout == "signed pd v1 as business_owner; status approved\n"
    assert signed.stderr.startswith(
        "warning: pd v1 is recorded, but MlflowMirror failed: mirroring pd into MLflow: "
        f"MLflow at {down['GOVREG_MLFLOW_TRACKING_URI']} failed: "
    )
    promoted = mkit.home.cli(
        "promote", MODEL, "1", "--alias", "champion", api_key=mkit.key("owner-1"), env=down
    )
    assert promoted.exit_code == 0, promoted.output
    assert "MlflowMirror failed" in promoted.stderr
    # governance is committed; MLflow is behind
    assert mkit.row(MODEL, 1)["status"] == "promoted"  # type: ignore[index]
    assert [a["alias"] for a in mkit.rows("aliases", model=MODEL)] == ["champion"]
    assert _mlflow_version(store, name, mv) == ({}, {})
    synced_down = mkit.home.cli("mlflow", "sync", MODEL, env=down)
    assert synced_down.exit_code == 3

    synced = mkit.home.cli("mlflow", "sync", MODEL, "--json", env=up)
    assert synced.exit_code == 0, synced.output
    assert json.loads(synced.stdout)["aliases"] == {"champion": {"name": name, "version": mv}}
    tags, aliases = _mlflow_version(store, name, mv)
    assert (tags["govreg.status"], aliases) == ("promoted", {"champion": mv})
    row = mkit.row(MODEL, 1)
    assert tags["govreg.approval_seq"] == str(row["approval_seq"])  # type: ignore[index]


def test_the_report_shows_the_mlflow_lineage_recorded_at_submit(mkit: Kit, store: Store) -> None:
    from reports.report import lineage_rows
    from reports.service import render

    version = mkit.submit(artifact=store.models_uri)
    rendered = render(mkit.registry, mkit["auditor-1"], MODEL, version, public_key=None)
    rows = lineage_rows(rendered.evidence.data["lineage"])
    assert rows == [
        {"label": "Training run", "value": store.run_id},
        {"label": "Source commit", "value": COMMIT},
        {"label": "MLflow experiment", "value": store.experiment_id},
        {"label": "Registered model version", "value": "credit-pd version 1"},
        {"label": "MLflow logged model", "value": store.logged_model_id},
        {"label": "Submitted from", "value": "models:/credit-pd/1"},
        {"label": "Model file", "value": "model.lgb"},
        {"label": "Tracking server", "value": store.uri},
    ]
    for row in rows:
        assert f"<tr><th>{row['label']}</th><td>{row['value']}</td></tr>" in rendered.html
    assert "not recorded" not in rendered.html.split("3. Data lineage")[1].split("</table>")[0]


def test_versions_show_gives_the_lineage_recorded_at_submit(mkit: Kit, store: Store) -> None:
    version = mkit.submit(artifact=store.models_uri)
    shown = mkit.registry.show_version(mkit["auditor-1"], MODEL, version)
    assert shown["lineage"] == _lineage(mkit, version)
    assert shown["lineage"]["mlflow"]["run_id"] == store.run_id
    human = mkit.home.cli(
        "versions", "show", MODEL, str(version), api_key=mkit.key("auditor-1")
    ).stdout
    assert f"  mlflow run       {store.run_id} (models:/credit-pd/1)\n" in human
    assert (
        json.loads(
            mkit.home.cli(
                "versions", "show", MODEL, str(version), "--json", api_key=mkit.key("auditor-1")
            ).stdout
        )["lineage"]
        == shown["lineage"]
    )
