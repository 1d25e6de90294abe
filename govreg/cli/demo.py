"""govreg demo: the end-to-end walk in a demo home."""

from __future__ import annotations

import click

from govreg.cli.core import cli


@cli.command()
@click.option("--rows", default=10000, show_default=True, help="rows of synthetic credit data")
def demo(rows: int) -> None:
    """The main job: an end-to-end walk through govreg in a demo home."""
    from govreg.demo import run_demo

    run_demo(rows=rows)
