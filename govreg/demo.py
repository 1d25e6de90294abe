"""``govreg demo``: the main job, end to end, in a fresh demo home.

Initialise a home; create principals for each role; generate synthetic
credit data; train two LightGBM candidates (one on data with a known bias
against one group, one on fair data); submit both; evaluate every gate of the
default policy; show a segregation-of-duties refusal; have three distinct
people sign the passing candidate; promote it; verify the ledger; print what
happened and where everything is.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import click

MARKER = ".govreg-demo"
MODEL = "credit-pd"
REASON_TEXTS = {
    "income": "Income insufficient for the amount of credit requested",
    "debt_to_income": "Debt obligations too high relative to income",
    "credit_utilisation": "Proportion of revolving balances to credit limits is too high",
    "delinquencies_2y": "Delinquent past or present credit obligations",
    "months_since_last_delinquency": "Time since last delinquency is too short",
    "employment_years": "Length of employment",
    "age": "Length of credit history",
    "open_accounts": "Number of established credit accounts",
    "inquiries_6m": "Number of recent credit inquiries",
    "loan_amount": "Amount of credit requested relative to income",
    "postcode_risk": "Area risk score",
}
UNFAIR = ("age", "postcode_risk")
PEOPLE = {
    "ds-team": "data_scientist",
    "validator-1": "validator",
    "compliance-1": "compliance_officer",
    "business-owner-1": "business_owner",
    "auditor-1": "auditor",
}


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
    from govreg.synthetic import (
        PROTECTED,
        TARGET,
        feature_names,
        make_credit_data,
        train_lightgbm,
    )
    from policies.loader import DEFAULT_POLICY, find_policy
    from registry.services import Registry

    started = time.perf_counter()
    home = _prepare_home((root or Path.cwd()).resolve())
    settings = Settings(home=home, database_url=None)

    _step(f"initialise a govreg home in {home}")
    result = init_home(settings)
    for line in result.messages:
        click.echo(f"    {line}")
    ctx = build(settings)
    registry: Registry = ctx.registry
    try:
        admin = registry.authenticate(Path(result.admin_key_path or "").read_text().strip())

        _step("create one principal per role (each gets its own API key)")
        actors = {}
        for name, role in PEOPLE.items():
            _principal, key = registry.create_principal(admin, name, role)
            actors[name] = registry.authenticate(key)
            click.echo(f"    {name:18} {role}")

        _step(
            f"generate synthetic credit data ({rows} applicants per set) and train two candidates"
        )
        data_dir = home / "data"
        data_dir.mkdir()
        # Both candidates respect the monotone relations the policy declares;
        # the biased one still learns the proxy for a protected attribute.
        policy = find_policy(DEFAULT_POLICY, extra_dir=settings.policy_dir)
        monotone = next(
            (
                dict(g.params.get("monotone", {}))
                for g in policy.gates
                if g.kind == "explainability"
            ),
            None,
        )
        files: dict[str, dict[str, Path]] = {}
        for label, biased in (("biased", True), ("fair", False)):
            frame = make_credit_data(rows * 2, seed=seed, biased=biased)
            train, validation = frame.iloc[:rows], frame.iloc[rows:]
            paths = {
                "train": data_dir / f"{label}-train.csv",
                "validation": data_dir / f"{label}-validation.csv",
                "model": data_dir / f"{label}-model.txt",
            }
            train.to_csv(paths["train"], index=False)
            validation.to_csv(paths["validation"], index=False)
            # The fair candidate leaves out age and the area score; the biased
            # one uses every column, the proxy for sex included.
            features = None if biased else [f for f in feature_names() if f not in UNFAIR]
            model_text = train_lightgbm(train, seed=seed, monotone=monotone, features=features)
            paths["model"].write_text(model_text, encoding="utf-8")
            files[label] = paths
            click.echo(f"    {label:7} model trained on {len(train)} rows -> {paths['model'].name}")

        _step(f"submit both candidates of '{MODEL}' as {actors['ds-team'].name}")
        versions: dict[str, int] = {}
        for label in ("biased", "fair"):
            versions[label] = registry.submit(
                actors["ds-team"],
                MODEL,
                artifact=files[label]["model"],
                train=files[label]["train"],
                validation=files[label]["validation"],
                target=TARGET,
                protected=list(PROTECTED),
                reason_texts=REASON_TEXTS,
            )
            click.echo(f"    {label:7} -> {MODEL} v{versions[label]}")

        _step("evaluate every gate of the credit-risk policy")
        outcome: dict[str, str] = {}
        for label in ("biased", "fair"):
            number = versions[label]
            status = registry.evaluate(
                actors["ds-team"], MODEL, number, progress=lambda m: click.echo(f"      {m}")
            )
            outcome[label] = status.value
            shown = registry.show_version(actors["ds-team"], MODEL, number)
            click.echo(f"    {MODEL} v{number} ({label}): {status.value}")
            for gate in shown["gates"]:
                click.echo(f"      {gate['gate_id']:15} {gate['verdict']:17} {gate['message']}")

        fair = versions["fair"]
        _step("segregation of duties: the submitter tries to sign their own version")
        from core.errors import GovregError

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

        _step("verify the ledger: hashes, chain, signed checkpoints, anchors, registry replay")
        report = registry.verify(
            actors["auditor-1"],
            load_public_key(settings.public_key_path),
            anchor_dir=settings.anchors_path,
        )
        click.echo(f"    {report.summary()}")
        for warning in report.warnings:
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
    click.echo("    look next:")
    env = f"GOVREG_HOME={home} GOVREG_API_KEY=$(cat {home}/admin.key)"
    click.echo(f"      {env} govreg audit log")
    click.echo(f"      {env} govreg versions show {MODEL} {versions['fair']}")
    return {
        "home": home,
        "versions": versions,
        "outcome": outcome,
        "final": final,
        "refusal": refusal,
        "ledger_size": report.size,
    }
