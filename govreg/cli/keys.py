"""govreg keys: rotate the data key and the key-encryption key."""

from __future__ import annotations

from typing import Any

import click

from govreg.cli.core import cli, emit, json_option, open_home


@cli.group()
def keys() -> None:
    """Rotate the data key or the key-encryption key (admin)."""


@keys.command("rotate")
@json_option
@click.pass_obj
def keys_rotate(obj: dict[str, Any], as_json: bool) -> None:
    """Start a new data key; earlier events stay readable."""
    with open_home(obj) as home:
        key_id = home.registry.rotate_data_key(home.principal())
    emit(as_json, {"data_key": key_id}, lambda: click.echo(f"new data key {key_id}"))


@keys.command("rotate-kek")
@json_option
@click.pass_obj
def keys_rotate_kek(obj: dict[str, Any], as_json: bool) -> None:
    """Re-wrap every data key under a new key-encryption key (re-runnable)."""
    with open_home(obj) as home:
        kek_id, count = home.registry.rotate_kek(home.principal())
    emit(
        as_json,
        {"kek_id": kek_id, "rewrapped": count},
        lambda: click.echo(f"key-encryption key is now {kek_id}; re-wrapped {count} data keys"),
    )
