"""govreg init: the home, its keys, schema and bootstrap admin."""

from __future__ import annotations

import click

from govreg.cli.core import cli, emit, json_option, read_settings


@cli.command()
@json_option
def init(as_json: bool) -> None:
    """Create the home, keys, schema and the bootstrap admin (idempotent)."""
    from govreg.context import init_home

    result = init_home(read_settings())

    def human() -> None:
        for line in result.messages:
            click.echo(line)
        click.echo(f"checkpoint public key fingerprint: {result.fingerprint}")

    emit(as_json, result.__dict__, human)
