"""govreg report and evidence: PDF reports and evidence bundles."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from govreg.cli.core import cli, open_context


@cli.command()
@click.argument("model")
@click.argument("version", type=int)
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="PDF file")
@click.pass_obj
def report(obj: dict[str, Any], model: str, version: int, output: Path) -> None:
    """Write the PDF/A-3b compliance report of a version (evidence JSON embedded)."""
    with open_context(obj) as session:
        pdf = session.report(model, version)
    output.write_bytes(pdf.data)
    click.echo(f"wrote {output} ({len(pdf.data)} bytes, sha256 {pdf.sha256})")


@cli.group()
def evidence() -> None:
    """Export evidence bundles and verify them offline."""


@evidence.command("export")
@click.argument("model")
@click.argument("version", type=int)
@click.option("-o", "--output", required=True, type=click.Path(path_type=Path), help="zip file")
@click.pass_obj
def evidence_export(obj: dict[str, Any], model: str, version: int, output: Path) -> None:
    """Write the version's evidence bundle (events, proofs, checkpoint, report)."""
    with open_context(obj) as session:
        bundle = session.evidence(model, version)
    output.write_bytes(bundle.data)
    proved = (
        ""
        if bundle.events is None
        else f"{bundle.events} events proved against checkpoint {bundle.checkpoint}, "
    )
    click.echo(f"wrote {output}: {proved}sha256 {bundle.sha256}")


@evidence.command("verify")
@click.argument("bundle", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option(
    "--public-key",
    required=True,
    type=click.Path(path_type=Path),
    help="the checkpoint public key you were given out of band",
)
def evidence_verify(bundle: Path, public_key: Path) -> None:
    """Verify a bundle offline: no database, no network, no govreg home."""
    from audits.signing import load_public_key
    from reports.bundle import verify_bundle

    result = verify_bundle(bundle.read_bytes(), load_public_key(public_key))
    click.echo(result.summary())
