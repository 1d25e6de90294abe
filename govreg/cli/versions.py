"""A version's life: submit, evaluate, signoff, versions, promote, suspend,
reinstate, retire."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from govreg.cli.core import cli, emit, json_option, open_context, refused_if
from registry.roles import SIGNING_ROLES

# registry.roles is a light module (two enums); the choices come from it.
SIGNING = tuple(sorted(role.value for role in SIGNING_ROLES))


@cli.command()
@click.argument("model")
@click.option(
    "--artifact",
    required=True,
    help="LightGBM text model file, or an MLflow URI: runs:/<run_id>/<path> or "
    "models:/<name>/<version> (tracking URI from GOVREG_MLFLOW_TRACKING_URI)",
)
@click.option("--train", required=True, type=click.Path(path_type=Path), help="CSV or Parquet")
@click.option("--validation", required=True, type=click.Path(path_type=Path), help="CSV or Parquet")
@click.option("--target", required=True, help="binary target column (1 = default)")
@click.option("--protected", required=True, help="protected columns, comma-separated")
@click.option("--policy", "policy_id", help="policy id (default credit-risk)")
@click.option(
    "--cutoff",
    help="the policy's decision cutoff, if you pass it (another cutoff is refused: "
    "propose a policy version with that decision_cutoff)",
)
@click.option(
    "--reasons",
    type=click.Path(path_type=Path),
    help="YAML or JSON file mapping each feature to its adverse-action reason text",
)
@click.option(
    "--expectations",
    type=click.Path(path_type=Path),
    help="great-expectations suite (JSON) the validation data must pass "
    "(default: one derived from the training data)",
)
@json_option
@click.pass_obj
def submit(
    obj: dict[str, Any],
    model: str,
    artifact: str,
    train: Path,
    validation: Path,
    target: str,
    protected: str,
    policy_id: str | None,
    cutoff: str | None,
    reasons: Path | None,
    expectations: Path | None,
    as_json: bool,
) -> None:
    """Submit a candidate version of MODEL; prints the new version number."""
    from registry.inputs import read_reasons, read_suite

    columns = [c.strip() for c in protected.split(",") if c.strip()]
    reason_texts = read_reasons(reasons) if reasons else None
    suite = read_suite(expectations) if expectations else None
    with open_context(obj) as ctx:
        number = ctx.registry.submit(
            ctx.principal(),
            model,
            artifact=artifact,  # a runs:/ or models:/ URI, or a model file's path
            train=train,
            validation=validation,
            target=target,
            protected=columns,
            policy_id=policy_id,
            cutoff=cutoff,
            reason_texts=reason_texts,
            schema_suite=suite,
        )
    emit(
        as_json,
        {"model": model, "version": number, "status": "submitted"},
        lambda: click.echo(f"submitted {model} v{number}"),
    )


@cli.command()
@click.argument("model")
@click.argument("version", type=int)
@click.option(
    "--policy",
    "policy_id",
    help="re-evaluate under this policy (id or id@version); recorded as an explicit act",
)
@json_option
@click.pass_obj
def evaluate(
    obj: dict[str, Any], model: str, version: int, policy_id: str | None, as_json: bool
) -> None:
    """Run every gate of the version's policy and record the results.

    Exits 10 when the version ends gates_failed (the results are still printed)."""
    with open_context(obj) as ctx:
        actor = ctx.principal()
        status = ctx.registry.evaluate(
            actor, model, version, policy_id=policy_id, progress=None if as_json else _progress
        )
        shown = ctx.registry.show_version(actor, model, version)
    emit(as_json, shown, lambda: _print_gates(shown, status))
    refused_if(status, "gates_failed")


def _progress(message: str) -> None:
    click.echo(f"  ... {message}", err=True)


def _print_gates(shown: dict[str, Any], status: str) -> None:
    for gate in shown["gates"]:
        click.echo(f"  {gate['gate_id']:16} {gate['verdict']:18} {gate.get('message', '')}")
    click.echo(f"{shown['model']} v{shown['version']}: {status}")


@cli.command()
@click.argument("model")
@click.argument("version", type=int)
@click.option(
    "--role",
    required=True,
    type=click.Choice(SIGNING),
)
@click.option("--approve/--reject", "approve", required=True)
@click.option("--comment", required=True, help="why; a rejection needs a reason")
@json_option
@click.pass_obj
def signoff(
    obj: dict[str, Any],
    model: str,
    version: int,
    role: str,
    approve: bool,
    comment: str,
    as_json: bool,
) -> None:
    """Sign (approve or reject) a version awaiting sign-off; a rejection exits 10."""
    with open_context(obj) as ctx:
        status = ctx.registry.signoff(
            ctx.principal(), model, version, role=role, approve=approve, comment=comment
        )
    emit(
        as_json,
        {"model": model, "version": version, "status": status.value},
        lambda: click.echo(f"signed {model} v{version} as {role}; status {status.value}"),
    )
    refused_if(status, "rejected")


@cli.group()
def versions() -> None:
    """List and show model versions."""


@versions.command("list")
@click.argument("model", required=False)
@json_option
@click.pass_obj
def versions_list(obj: dict[str, Any], model: str | None, as_json: bool) -> None:
    """List versions (of MODEL, or of all models)."""
    with open_context(obj) as ctx:
        rows = ctx.registry.list_versions(ctx.principal(), model)

    def human() -> None:
        for r in rows:
            click.echo(
                f"{r['model']:20} v{r['version']:<4} {r['status']:18} {r['policy']:20} "
                f"{r['submitted_by']}"
            )

    emit(as_json, rows, human)


@versions.command("show")
@click.argument("model")
@click.argument("version", type=int)
@json_option
@click.pass_obj
def versions_show(obj: dict[str, Any], model: str, version: int, as_json: bool) -> None:
    """Everything recorded about one version."""
    with open_context(obj) as ctx:
        shown = ctx.registry.show_version(ctx.principal(), model, version)

    def human() -> None:
        click.echo(f"{model} v{version}: {shown['status']}")
        for key in (
            "policy",
            "artifact_digest",
            "submitted_by",
            "submitted_at",
            "approved_at",
            "revalidate_by",
            "aliases",
            "status_reason",
        ):
            click.echo(f"  {key:16} {shown[key]}")
        mlflow = shown.get("lineage", {}).get("mlflow") or {}
        if mlflow:
            click.echo(f"  {'mlflow run':16} {mlflow.get('run_id')} ({mlflow.get('source_uri')})")
        for gate in shown["gates"]:
            click.echo(f"  gate {gate['gate_id']:16} {gate['verdict']}  {gate.get('message', '')}")
        for s in shown["signoffs"]:
            click.echo(f"  signed by {s['principal']} ({s['role']}): {s['decision']}")
        for m in shown["signoffs_missing"]:
            click.echo(f"  missing sign-off: {m['missing']} x {m['role']}")

    emit(as_json, shown, human)


@cli.command()
@click.argument("model")
@click.argument("version", type=int)
@click.option("--alias", required=True, help="e.g. champion")
@json_option
@click.pass_obj
def promote(obj: dict[str, Any], model: str, version: int, alias: str, as_json: bool) -> None:
    """Point MODEL@ALIAS at an approved VERSION."""
    with open_context(obj) as ctx:
        ctx.registry.promote(ctx.principal(), model, version, alias=alias)
    emit(
        as_json,
        {"model": model, "version": version, "alias": alias, "status": "promoted"},
        lambda: click.echo(f"{model}@{alias} -> v{version}"),
    )


def _state_command(name: str, verb: str) -> None:
    @cli.command(name, help=f"{verb.capitalize()} a version (recorded with the reason).")
    @click.argument("model")
    @click.argument("version", type=int)
    @click.option("--reason", required=True)
    @json_option
    @click.pass_obj
    def command(obj: dict[str, Any], model: str, version: int, reason: str, as_json: bool) -> None:
        with open_context(obj) as ctx:
            actor = ctx.principal()
            getattr(ctx.registry, name)(actor, model, version, reason=reason)
            status = ctx.registry.show_version(actor, model, version)["status"]
        emit(
            as_json,
            {"model": model, "version": version, "status": status},
            lambda: click.echo(f"{verb} {model} v{version}"),
        )


_state_command("suspend", "suspended")
_state_command("reinstate", "reinstated")
_state_command("retire", "retired")
