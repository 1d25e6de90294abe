"""govreg audit and decisions: verify the ledger and the decision log, read
the trail, flush counted refusals, purge decision inputs past retention."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from govreg.cli.core import cli, emit, json_option, open_context, open_home

if TYPE_CHECKING:
    from audits.verify import Workers


# -- audit ----------------------------------------------------------------------
@cli.group()
def audit() -> None:
    """Verify the ledger and read the audit trail."""


def _workers(_ctx: click.Context, _param: click.Parameter, value: str | None) -> Any:
    """--workers: a whole number 1..64 or auto (audits.parallel.parse_workers)."""
    if value is None:
        return None
    from audits.parallel import WorkersError, parse_workers

    try:
        return parse_workers(value)
    except WorkersError as exc:
        raise click.BadParameter(str(exc)) from exc


@audit.command("verify")
@click.option(
    "--public-key", type=click.Path(path_type=Path), help="default: the home's checkpoint.pub"
)
@click.option(
    "--anchors", type=click.Path(path_type=Path), help="default: the home's anchor folder"
)
@click.option(
    "--workers",
    metavar="N|auto",
    callback=_workers,
    help=(
        "processes that verify the events: 1 to 64, or auto (one per free CPU from "
        "200,000 events on, else 1); default 1. Any problem is reported as 1 reports it. "
        "Local homes only: through GOVREG_URL the server verifies with 1."
    ),
)
@json_option
@click.pass_obj
def audit_verify(
    obj: dict[str, Any],
    public_key: Path | None,
    anchors: Path | None,
    workers: Workers | None,
    as_json: bool,
) -> None:
    """Recompute every hash, check every checkpoint, replay the registry."""
    from audits.parallel import WorkersError

    with open_context(obj) as session:
        try:
            report = session.verify(public_key, anchors=anchors, workers=workers)
        except WorkersError as exc:
            # a --workers the session cannot honour: a usage error, as a bad value is
            raise click.UsageError(str(exc)) from exc
    data = {
        "ok": True,
        "size": report.size,
        "root": report.root.hex(),
        "checkpoints": report.checkpoints,
        "anchors": report.anchors,
        "key_fingerprint": report.key_fingerprint,
        "warnings": report.warnings,
    }

    def human() -> None:
        click.echo(report.summary())
        for warning in report.warnings:
            click.echo(f"warning: {warning}", err=True)

    emit(as_json, data, human)


@audit.command("decisions")
@click.option(
    "--public-key",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="pinned checkpoint public key (default: the home's)",
)
@click.option("--model", help="also list this model's decisions")
@json_option
@click.pass_obj
def audit_decisions(
    obj: dict[str, Any], public_key: Path | None, model: str | None, as_json: bool
) -> None:
    """Verify the serving decision log; with --model, list its decisions (decrypted;
    the inputs of decisions past retention are erased by `decisions purge`)."""
    with open_home(obj) as home:
        audited = home.audit_decisions(public_key, model=model)
    report, warnings = audited.report, list(audited.warnings)
    rows: list[dict[str, Any]] = [
        {
            "seq": d.seq,
            "decision_id": d.decision_id,
            "recorded_at": d.recorded_at,
            "model": d.model,
            "version": d.version,
            "approval_seq": d.approval_seq,
            "input_digest": d.input_digest,
            "score": d.score,
            "decision": d.decision,
            "reasons": d.reasons,
            "retain_until": d.retain_until,
            "erased": d.erased,
        }
        for d in audited.listed
    ]
    data = {
        "ok": True,
        "decisions": report.decisions,
        "erased": report.erased,
        "erased_keys": list(report.erased_keys),
        "batches": report.batches,
        "anchors": report.anchors,
        "key_fingerprint": report.key_fingerprint,
        "listed": rows,
        "warnings": warnings,
    }

    def human() -> None:
        click.echo(report.summary())
        for warning in warnings:
            click.echo(f"warning: {warning}", err=True)
        for row in rows:
            reasons = "; ".join(str(r) for r in row["reasons"])
            click.echo(
                f"{row['seq']:>6}  {row['recorded_at']}  {row['model']} v{row['version']}  "
                f"{row['decision']:<7} pd={row['score']}  {reasons}"
                + ("  [inputs erased: past retention]" if row["erased"] else "")
            )

    emit(as_json, data, human)


# -- decisions ------------------------------------------------------------------
@cli.group()
def decisions() -> None:
    """The serving decision log's retention (admin)."""


@decisions.command("purge")
@json_option
@click.pass_obj
def decisions_purge(obj: dict[str, Any], as_json: bool) -> None:
    """Erase the inputs of decisions past retention (destroy their month's key).

    The decisions stay, with their score, outcome, reasons and input digest,
    and the log still verifies; the purge is recorded in the ledger. Re-running
    it purges nothing more.
    """
    from serving.retention import purge_decisions

    with open_home(obj) as home:
        report = purge_decisions(home.registry, home.principal())
    emit(as_json, report.data(), lambda: click.echo(report.summary()))


@audit.command("flush-denials")
@json_option
@click.pass_obj
def audit_flush_denials(obj: dict[str, Any], as_json: bool) -> None:
    """Append every counted refusal now, as access.denied.aggregated events (admin).

    Servers do this when an interval ends and at shutdown; run it before reading
    the trail when every refusal so far must be in it.
    """
    with open_home(obj) as home:
        events = home.registry.flush_denials(home.principal(), every=True)
    data = {
        "events": len(events),
        "refusals": sum(int(e.data["count"]) for e in events),
        "seqs": [e.seq for e in events],
    }
    emit(
        as_json,
        data,
        lambda: click.echo(
            f"appended {data['events']} access.denied.aggregated events "
            f"counting {data['refusals']} refusals"
        ),
    )


@audit.command("log")
@click.option("--model", help="only this model's events")
@json_option
@click.pass_obj
def audit_log(obj: dict[str, Any], model: str | None, as_json: bool) -> None:
    """The decrypted trail, oldest first."""
    with open_context(obj) as ctx:
        events = list(ctx.registry.audit_log(ctx.principal(), model=model))
    if as_json:
        click.echo(json.dumps([e.public() for e in events], indent=2, sort_keys=True))
        return
    for e in events:
        subject = f"{e.model} v{e.version}" if e.version else (e.model or "-")
        detail = " ".join(f"{k}={v}" for k, v in sorted(e.index.items()) if not isinstance(v, dict))
        click.echo(f"{e.seq:>6} {e.recorded_at} {e.type:22} {e.actor:18} {subject:20} {detail}")
