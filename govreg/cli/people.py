"""govreg persons and principals: the people and the API keys acting for them."""

from __future__ import annotations

from typing import Any

import click

from govreg.cli.core import cli, emit, json_option, open_context
from registry.roles import Role

# registry.roles is a light module (two enums); the choices come from it.
ROLES = tuple(role.value for role in Role)


# -- persons --------------------------------------------------------------------
@cli.group()
def persons() -> None:
    """Create and list persons, the people principals belong to (admin only)."""


@persons.command("create")
@click.argument("person_id", metavar="ID")
@click.option("--display", required=True, help="how the person is shown, e.g. a job title")
@json_option
@click.pass_obj
def persons_create(obj: dict[str, Any], person_id: str, display: str, as_json: bool) -> None:
    """Record person ID; sign-offs count persons, so give each human one person."""
    with open_context(obj) as ctx:
        person = ctx.registry.create_person(ctx.principal(), person_id, display=display)
    emit(
        as_json,
        person,
        lambda: click.echo(f"created person {person['id']} ({person['display']})"),
    )


@persons.command("list")
@json_option
@click.pass_obj
def persons_list(obj: dict[str, Any], as_json: bool) -> None:
    """List persons, with who created each."""
    with open_context(obj) as ctx:
        found = ctx.registry.list_persons(ctx.principal())

    def human() -> None:
        for p in found:
            click.echo(f"{p['id']:24} {p['display']:32} created by {p['created_by']}")

    emit(as_json, found, human)


# -- principals -----------------------------------------------------------------
@cli.group()
def principals() -> None:
    """Create, list and revoke principals (admin only)."""


@principals.command("create")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(ROLES))
@click.option("--person", required=True, help="the person it belongs to (govreg persons create)")
@click.option(
    "--models",
    metavar="NAME,...",
    help="the models a service principal may score and fetch (required for --role service)",
)
@click.option("--expires", "expires", metavar="ISO-8601", help="optional expiry, UTC")
@json_option
@click.pass_obj
def principals_create(
    obj: dict[str, Any],
    name: str,
    role: str,
    person: str,
    models: str | None,
    expires: str | None,
    as_json: bool,
) -> None:
    """Create NAME with ROLE for PERSON; prints its API key once."""
    from datetime import UTC, datetime

    from core.errors import InputError

    scope = None
    if models is not None:
        scope = [m.strip() for m in models.split(",") if m.strip()]
    elif role == "service":
        raise InputError("--role service needs --models: the models it may score and fetch")

    expiry = None
    if expires:
        try:
            expiry = datetime.fromisoformat(expires)
        except ValueError as exc:
            raise InputError(f"--expires {expires!r} is not an ISO-8601 time") from exc
        expiry = expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)
    with open_context(obj) as ctx:
        principal, api_key = ctx.registry.create_principal(
            ctx.principal(), name, role, person=person, models=scope, expires_at=expiry
        )
    emit(
        as_json,
        {**principal.public(), "api_key": api_key},
        lambda: click.echo(
            f"created {principal.name} ({principal.role}) for person {principal.person_id}\n"
            f"API key (shown once, keep it secret): {api_key}"
        ),
    )


@principals.command("list")
@json_option
@click.pass_obj
def principals_list(obj: dict[str, Any], as_json: bool) -> None:
    """List principals."""
    with open_context(obj) as ctx:
        found = ctx.registry.list_principals(ctx.principal())

    def human() -> None:
        for p in found:
            state = f"revoked {p.revoked_at}" if p.revoked_at else "active"
            scope = f" models {','.join(p.models)}" if p.models is not None else ""
            click.echo(f"{p.name:24} {p.role:20} {p.person_id:24} {state}{scope}")

    emit(as_json, [p.public() for p in found], human)


@principals.command("revoke")
@click.argument("name")
@json_option
@click.pass_obj
def principals_revoke(obj: dict[str, Any], name: str, as_json: bool) -> None:
    """Revoke NAME's API key."""
    with open_context(obj) as ctx:
        ctx.registry.revoke_principal(ctx.principal(), name)
    emit(as_json, {"name": name, "revoked": True}, lambda: click.echo(f"revoked {name}"))
