"""govreg policies: propose, adopt and list policy versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from govreg.cli.core import cli, emit, json_option, open_context


@cli.group()
def policies() -> None:
    """Propose and adopt policy versions (a compliance officer approves)."""


@policies.command("list")
@json_option
@click.pass_obj
def policies_list(obj: dict[str, Any], as_json: bool) -> None:
    """Every policy version in the ledger, proposed or adopted."""
    with open_context(obj) as ctx:
        rows = ctx.registry.list_policies(ctx.principal())

    def human() -> None:
        for r in rows:
            click.echo(
                f"{r['id']}@{r['version']:<4} {r['status']:9} {r['digest'][:16]} "
                f"proposed by {r['proposed_by']}, approved by {r['approved_by'] or '-'}"
            )

    emit(as_json, rows, human)


@policies.command("propose")
@click.argument("path", type=click.Path(path_type=Path))
@json_option
@click.pass_obj
def policies_propose(obj: dict[str, Any], path: Path, as_json: bool) -> None:
    """Propose the policy in the YAML file PATH (takes effect once approved)."""
    from policies.loader import load_policy_file

    policy = load_policy_file(path)
    with open_context(obj) as ctx:
        ctx.registry.propose_policy(ctx.principal(), policy)
    emit(
        as_json,
        {"policy": policy.ref, "digest": policy.digest, "status": "proposed"},
        lambda: click.echo(f"proposed {policy.ref} (digest {policy.digest[:16]})"),
    )


@policies.command("approve")
@click.argument("ref", metavar="ID@VERSION")
@click.option("--comment", required=True)
@json_option
@click.pass_obj
def policies_approve(obj: dict[str, Any], ref: str, comment: str, as_json: bool) -> None:
    """Adopt a proposed policy version (compliance officer, not its proposer)."""
    with open_context(obj) as ctx:
        policy = ctx.registry.approve_policy(ctx.principal(), ref, comment=comment)
    emit(
        as_json,
        {"policy": policy.ref, "digest": policy.digest, "status": "adopted"},
        lambda: click.echo(f"adopted {policy.ref}"),
    )
