"""``govreg demo``: the main job, end to end, in a fresh demo home.

Initialise a home; create principals for each role; generate synthetic
credit data; train two LightGBM candidates (one on data with a known bias
against one group, one on fair data); submit both; evaluate every gate of the
default policy; show a segregation-of-duties refusal; have three distinct
people sign the passing candidate; promote it; export its PDF report and
evidence bundle and check the bundle offline; verify the ledger; print what
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
    from govreg.synthetic import PROTECTED, REASON_TEXTS, TARGET, write_candidate
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
        # Both candidates respect the monotone relations the policy declares.
        # The fair one leaves out age and the area score; the biased one uses
        # every column and learns the area score as a proxy for sex.
        files = {
            label: write_candidate(home / "data" / label, rows=rows, seed=seed, biased=biased)
            for label, biased in (("biased", True), ("fair", False))
        }
        for label, paths in files.items():
            click.echo(f"    {label:7} model trained on {rows} rows -> {paths['artifact']}")

        _step(f"submit both candidates of '{MODEL}' as {actors['ds-team'].name}")
        versions: dict[str, int] = {}
        for label in ("biased", "fair"):
            versions[label] = registry.submit(
                actors["ds-team"],
                MODEL,
                artifact=files[label]["artifact"],
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
    click.echo(f"    open first:  {pdf_path}")
    click.echo(f"    evidence:    {bundle_path}")
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
        "report": pdf_path,
        "bundle": bundle_path,
    }
