"""govreg mlflow: the MLflow model registry mirror."""

from __future__ import annotations

from typing import Any

import click

from govreg.cli.core import cli, emit, json_option, open_home


@cli.group("mlflow")
def mlflow_group() -> None:
    """The MLflow model registry mirror (tags and aliases set by govreg)."""


@mlflow_group.command("sync")
@click.argument("model")
@json_option
@click.pass_obj
def mlflow_sync(obj: dict[str, Any], model: str, as_json: bool) -> None:
    """Re-mirror MODEL's current state from the ledger into MLflow (re-runnable)."""
    with open_home(obj) as home:
        result = home.sync_mirror(model)
    emit(
        as_json,
        {
            "model": model,
            "versions": [m.__dict__ for m in result.versions],
            "aliases": {
                a: (None if t is None else {"name": t[0], "version": t[1]})
                for a, t in result.aliases.items()
            },
        },
        lambda: click.echo("\n".join(result.lines())),
    )
