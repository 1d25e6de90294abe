"""``govreg demo``: the main job, end to end, in a fresh demo home.

Initialise a home; create principals for each role; generate synthetic
credit data with categorical columns (housing, loan purpose, employment type)
and missing values that mean something (no delinquency ever, income not
verified); train two LightGBM candidates on it, the categories as pandas
``category`` columns, tracked in MLflow (a SQLite tracking store in the demo
home): one on data with a known bias against one group (its files CSV), one
on fair data (its files Parquet); submit both from MLflow (``runs:/`` and
``models:/``) with reason texts per category; evaluate every gate of the
default policy; show a segregation-of-duties refusal; have three distinct
people sign the passing candidate; promote it (govreg mirrors it into MLflow's
registry); score a few applicants (category strings, a ``null`` where training
had missing values) through the HTTP scoring API and show a declined
applicant's reasons; export the PDF report and the evidence bundle and check
the bundle offline; verify the ledger and the decision log; print what
happened and where everything is. Running it again starts from a fresh demo
home.

If a step after submission fails (the scoring API refuses the applicants),
the remaining steps still run, and the demo ends with an error naming it.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import click

from core.errors import GovregError

MARKER = ".govreg-demo"
MODEL = "credit-pd"
PEOPLE = {
    "ds-team": "data_scientist",
    "validator-1": "validator",
    "compliance-1": "compliance_officer",
    "business-owner-1": "business_owner",
    "auditor-1": "auditor",
    "lending-service": "service",
}
APPLICANTS = 8
# Validation rows per training row: women over 60 are ~4 % of applicants, and the
# fairness gate's group rates need a few hundred of them to be more than noise.
VALIDATION_FACTOR = 4
FORMATS = {"biased": "csv", "fair": "parquet"}


class DemoIncomplete(GovregError):
    """A step of the demo failed; the others ran. ``result`` is what happened.
    Exit code 1 (any other error): each failed step says what failed."""

    def __init__(self, message: str, result: dict[str, Any]) -> None:
        super().__init__(message)
        self.result = result


def _step(text: str) -> None:
    click.secho(f"\n==> {text}", bold=True)


def _prepare_home(root: Path) -> Path:
    home = root / ".govreg-demo"
    if home.exists():
        if not (home / MARKER).exists():
            raise click.ClickException(f"{home} exists and is not a govreg demo home; move it away")
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / MARKER).write_text("created by `govreg demo`; safe to delete\n")
    return home


def run_demo(*, rows: int = 10000, root: Path | None = None, seed: int = 7) -> dict[str, Any]:
    """Run the demo; returns what happened (the tests check it)."""
    from audits.signing import load_public_key
    from govreg.context import build, init_home
    from govreg.settings import Settings
    from govreg.synthetic import PROTECTED, TARGET, write_candidate
    from registry.services import Registry

    started = time.perf_counter()
    home = _prepare_home((root or Path.cwd()).resolve())
    tracking_uri = f"sqlite:///{home / 'mlflow.db'}"
    settings = Settings(home=home, database_url=None, mlflow_tracking_uri=tracking_uri)

    _step(f"initialise a govreg home in {home}")
    result = init_home(settings)
    for line in result.messages:
        click.echo(f"    {line}")
    ctx = build(settings)
    registry: Registry = ctx.registry
    try:
        admin = registry.authenticate(Path(result.admin_key_path or "").read_text().strip())

        _step(
            "create one person per role and their principal (each gets its own API key; "
            "sign-offs count persons, and the service may score only the demo model)"
        )
        actors = {}
        keys: dict[str, str] = {}
        for name, role in PEOPLE.items():
            registry.create_person(admin, name, display=role.replace("_", " "))
            scope = [MODEL] if role == "service" else None
            _principal, key = registry.create_principal(
                admin, name, role, person=name, models=scope
            )
            actors[name] = registry.authenticate(key)
            keys[name] = key
            click.echo(f"    {name:18} {role}")

        _step(
            f"generate synthetic credit data ({rows} training and {rows * VALIDATION_FACTOR} "
            "validation applicants) and train two candidates"
        )
        # Both candidates respect the monotone relations the policy declares and use
        # the categorical columns (pandas category dtype) and the missing values.
        # The fair one leaves out age and the area score; the biased one uses
        # every column and learns the area score as a proxy for sex.
        files: dict[str, dict[str, Path]] = {}
        tracked: dict[str, dict[str, str]] = {}
        candidates = (("biased", True), ("fair", False))
        with click.progressbar(
            candidates, label="    training and logging to MLflow", show_pos=True
        ) as bar:
            for label, biased in bar:
                files[label] = write_candidate(
                    home / "data" / label,
                    rows=rows,
                    validation_rows=rows * VALIDATION_FACTOR,
                    seed=seed,
                    biased=biased,
                    realistic=True,
                    train_format=FORMATS[label],
                    validation_format=FORMATS[label],
                )
                tracked[label] = _track(
                    home, tracking_uri, label, files[label], rows=rows, seed=seed
                )
        for label in ("biased", "fair"):
            click.echo(
                f"    {label:7} MLflow run {tracked[label]['run_id']}; "
                f"data {files[label]['train'].name}, {files[label]['validation'].name}"
            )
        click.echo("    " + _data_summary(files["fair"]["train"]))
        sources = {"biased": tracked["biased"]["runs_uri"], "fair": tracked["fair"]["models_uri"]}

        _step(
            f"submit both candidates of '{MODEL}' from MLflow as {actors['ds-team'].name}, "
            "with reason texts per category"
        )
        versions: dict[str, int] = {}
        for label in ("biased", "fair"):
            reasons = json.loads(files[label]["reasons"].read_text(encoding="utf-8"))
            versions[label] = registry.submit(
                actors["ds-team"],
                MODEL,
                artifact=sources[label],
                train=files[label]["train"],
                validation=files[label]["validation"],
                target=TARGET,
                protected=list(PROTECTED),
                reason_texts=reasons,
            )
            click.echo(f"    {label:7} {sources[label]} -> {MODEL} v{versions[label]}")

        _step("evaluate every gate of the credit-risk policy")
        outcome: dict[str, str] = {}
        for label in ("biased", "fair"):
            number = versions[label]
            gates = len(registry.policy_of(MODEL, number).gates)
            with click.progressbar(
                length=gates + 1, label=f"    evaluating v{number} ({label})", show_pos=True
            ) as bar:
                status = registry.evaluate(
                    actors["ds-team"], MODEL, number, progress=lambda _m: bar.update(1)
                )
            outcome[label] = status.value
            shown = registry.show_version(actors["ds-team"], MODEL, number)
            click.echo(f"    {MODEL} v{number} ({label}): {status.value}")
            for gate in shown["gates"]:
                click.echo(f"      {gate['gate_id']:15} {gate['verdict']:17} {gate['message']}")

        fair = versions["fair"]
        scored: dict[str, Any] = {}
        mirrored: dict[str, int] = {}
        failed_steps: list[str] = []
        _step("segregation of duties: the submitter tries to sign their own version")
        refusal = ""
        try:
            registry.signoff(
                actors["ds-team"], MODEL, fair, role="validator", approve=True, comment="mine"
            )
        except GovregError as exc:
            refusal = str(exc)
            click.echo(f"    refused: {exc}")

        if outcome["fair"] == "awaiting_signoff":
            _step(f"three distinct people sign {MODEL} v{fair}")
            for name, role in (
                ("validator-1", "validator"),
                ("compliance-1", "compliance_officer"),
                ("business-owner-1", "business_owner"),
            ):
                status = registry.signoff(
                    actors[name],
                    MODEL,
                    fair,
                    role=role,
                    approve=True,
                    comment=f"{role}: evidence reviewed",
                )
                click.echo(f"    {name:18} signed as {role:20} -> {status.value}")
            _step(f"promote {MODEL} v{fair} to champion")
            registry.promote(actors["compliance-1"], MODEL, fair, alias="champion")
            click.echo(f"    {MODEL}@champion -> v{fair}")
            mirrored = _mlflow_aliases(tracking_uri)
            click.echo(f"    MLflow registry: {MODEL} aliases {mirrored} (mirrored by govreg)")

            _step(f"a lending service scores {APPLICANTS} applicants through the HTTP API")
            scored = _score_over_http(settings, keys["lending-service"], files["fair"], APPLICANTS)
            if "refused" in scored:
                failed_steps.append(f"scoring: {scored['refused']}")

        _step(f"the auditor exports the PDF report and the evidence bundle of v{fair}")
        from reports.bundle import verify_bundle
        from reports.service import export_evidence

        public_key = load_public_key(settings.public_key_path)
        exported = export_evidence(
            registry, actors["auditor-1"], MODEL, fair, public_key=public_key
        )
        pdf_path = home / f"{MODEL}-v{fair}-report.pdf"
        bundle_path = home / f"{MODEL}-v{fair}-evidence.zip"
        pdf_path.write_bytes(exported.report.pdf)
        bundle_path.write_bytes(exported.bundle)
        click.echo(f"    report: {pdf_path} (sha256 {exported.report.sha256[:16]}...)")
        click.echo(f"    bundle: {bundle_path}")
        bundle_check = verify_bundle(bundle_path.read_bytes(), public_key)
        click.echo(f"    offline check: {bundle_check.summary()}")

        _step("verify the ledger: hashes, chain, signed checkpoints, anchors, registry replay")
        report = registry.verify(actors["auditor-1"], public_key, anchor_dir=settings.anchors_path)
        click.echo(f"    {report.summary()}")
        from serving.decisions import ANCHOR_FOLDER, verify_decisions

        with registry.reading() as conn:
            decisions = verify_decisions(
                conn,
                ctx.ledger.keyring,
                public_key,
                anchor_dir=settings.anchors_path / ANCHOR_FOLDER,
            )
        click.echo(f"    {decisions.summary()}")
        for warning in [*report.warnings, *decisions.warnings]:
            click.echo(f"    note: {warning}")

        final = {
            label: registry.show_version(actors["auditor-1"], MODEL, number)["status"]
            for label, number in versions.items()
        }
    finally:
        ctx.close()

    elapsed = time.perf_counter() - started
    _step(f"done in {elapsed:.1f} s")
    click.echo(f"    {MODEL} v{versions['biased']} (biased data): {final['biased']}")
    click.echo(f"    {MODEL} v{versions['fair']} (fair data):   {final['fair']}")
    click.echo(f"    home:        {home}")
    click.echo(f"    database:    {settings.db_url}")
    click.echo(f"    public key:  {settings.public_key_path}")
    click.echo(f"    anchors:     {settings.anchors_path}")
    click.echo(f"    MLflow:      {tracking_uri}  (mlflow ui --backend-store-uri {tracking_uri})")
    click.echo(f"    open first:  {pdf_path}")
    click.echo(f"    evidence:    {bundle_path}")
    click.echo("    look next:")
    env = f"GOVREG_HOME={home} GOVREG_API_KEY=$(cat {home}/admin.key)"
    click.echo(f"      {env} govreg audit log")
    click.echo(f"      {env} govreg versions show {MODEL} {versions['fair']}")
    happened = {
        "home": home,
        "versions": versions,
        "outcome": outcome,
        "final": final,
        "refusal": refusal,
        "ledger_size": report.size,
        "report": pdf_path,
        "bundle": bundle_path,
        "tracked": tracked,
        "mlflow_aliases": mirrored,
        "tracking_uri": tracking_uri,
        "scored": scored,
        "decisions": decisions.decisions,
        "failed_steps": failed_steps,
    }
    if failed_steps:
        raise DemoIncomplete(
            "the demo ran every step, but these failed: " + "; ".join(failed_steps), happened
        )
    return happened


def _track(
    home: Path, tracking_uri: str, label: str, files: dict[str, Path], *, rows: int, seed: int
) -> dict[str, str]:
    """Log a candidate to MLflow as its data scientist would (the fair one is registered)."""
    import mlflow
    from sklearn.metrics import roc_auc_score

    from govreg.synthetic import TARGET, log_to_mlflow, with_category_dtypes

    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    if client.get_experiment_by_name(MODEL) is None:
        client.create_experiment(MODEL, artifact_location=(home / "mlflow-artifacts").as_uri())
    from core.lgbm import import_lightgbm

    lightgbm = import_lightgbm()
    text = files["artifact"].read_text(encoding="utf-8")
    booster = lightgbm.Booster(model_str=text)
    # LightGBM's pandas path: the categorical columns as category dtype (a CSV reads text)
    validation = with_category_dtypes(_read(files["validation"]))
    auc = roc_auc_score(validation[TARGET], booster.predict(validation[booster.feature_name()]))
    return log_to_mlflow(
        text,
        tracking_uri=tracking_uri,
        experiment=MODEL,
        params={"rows": str(rows), "seed": str(seed), "training_data": label},
        metrics={"validation_auc": float(auc)},
        register_as=MODEL if label == "fair" else None,
    )


def _mlflow_aliases(tracking_uri: str) -> dict[str, int]:
    import mlflow

    found = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return {k: int(v) for k, v in found.get_registered_model(MODEL).aliases.items()}


def _read(path: Path) -> Any:
    import pandas as pd

    return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)


def _data_summary(train: Path) -> str:
    """One line on the categorical columns and the missing values of the training data."""
    from govreg.synthetic import CATEGORIES

    frame = _read(train)
    nulls = frame.isna().mean()
    shown = ", ".join(f"{c} {100 * nulls[c]:.1f} %" for c in nulls.index if nulls[c] > 0)
    return (
        f"categorical: {', '.join(c for c in CATEGORIES if c in frame.columns)}; missing: {shown}"
    )


def _applicants(files: dict[str, Path], features: list[str], count: int) -> list[dict[str, Any]]:
    """Applicants from held-out data as a lending service sends them (JSON: category
    strings, ``null`` for a missing value), inside the ranges the model was validated on:
    the first few, and the riskiest-looking ones, so at least one is likely declined."""
    import pandas as pd

    from govreg.synthetic import CATEGORIES

    train = _read(files["train"])
    frame = _read(files["validation"])
    numeric = [f for f in features if f not in CATEGORIES]
    values = frame[numeric]
    inside = values.isna() | ((values >= train[numeric].min()) & (values <= train[numeric].max()))
    frame = frame[inside.all(axis=1)]
    risk = frame["debt_to_income"] + frame["credit_utilisation"] + frame["delinquencies_2y"]
    chosen = pd.concat([frame.head(count - 2), frame.loc[risk.nlargest(2).index]])
    rows: list[dict[str, Any]] = []
    for record in chosen[features].astype(object).to_dict(orient="records"):
        rows.append(
            {
                str(k): None if pd.isna(v) else (str(v) if k in CATEGORIES else v)
                for k, v in record.items()
            }
        )
    return rows


def _describe(applicant: dict[str, Any]) -> str:
    from govreg.synthetic import CATEGORIES

    categories = ", ".join(str(applicant[c]) for c in CATEGORIES if c in applicant)
    missing = [k for k, v in applicant.items() if v is None]
    return f"{categories}; null: {', '.join(missing) or '-'}"


def _score_over_http(
    settings: Any, api_key: str, files: dict[str, Path], count: int
) -> dict[str, Any]:
    """Start the API on a loopback port, score applicants as the service, stop it cleanly.

    A refusal by the API is returned as ``{"refused": ...}`` (the demo goes on)."""
    import socket
    import threading

    import httpx
    import uvicorn

    from core.lgbm import import_lightgbm
    from govreg.api.app import create_app

    lightgbm = import_lightgbm()

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, name="govreg-demo-api", daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        click.echo(f"    API on {url}; POST /v1/models/{MODEL}/score as lending-service")
        model_text = files["artifact"].read_text(encoding="utf-8")
        features = lightgbm.Booster(model_str=model_text).feature_name()
        applicants = _applicants(files, features, count)
        response = httpx.post(
            f"{url}/v1/models/{MODEL}/score",
            json={"applicants": applicants},
            headers={"Authorization": f"Bearer {api_key}"},
            timeout=60,
        )
    finally:
        server.should_exit = True  # the lifespan closes the decision log: nothing lost
        thread.join(timeout=30)
    if response.status_code != 200:
        try:
            detail = str(response.json().get("detail") or response.text)
        except ValueError:
            detail = response.text
        refused = f"HTTP {response.status_code}: {detail}"
        click.secho(f"    the scoring API refused the applicants ({refused})", fg="red")
        return {"refused": refused, "applicants": applicants}
    body: dict[str, Any] = response.json()
    click.echo(
        f"    served by {MODEL} v{body['version']} (approval event {body['approval_seq']}), "
        f"cutoff {body['cutoff']}"
    )
    for i, (applicant, result) in enumerate(zip(applicants, body["results"], strict=True), 1):
        click.echo(
            f"      applicant {i} ({_describe(applicant)}): probability of default "
            f"{result['probability_of_default']} -> {result['decision']}"
        )
    declined = [r for r in body["results"] if r["decision"] == "decline"]
    if declined:
        click.echo("    principal reasons for the first declined applicant:")
        for reason in declined[0]["reasons"]:
            click.echo(f"      - {reason['reason']} ({reason['feature']})")
    body["applicants"] = applicants
    return body
