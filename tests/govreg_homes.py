"""An initialised govreg home for tests (importable as ``govreg_homes``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner, Result


@dataclass
class Home:
    """An initialised govreg home and helpers to act in it."""

    path: Path
    database_url: str
    admin_key: str
    env: dict[str, str]

    def settings(self, **overrides: Any) -> Any:
        from govreg.settings import Settings

        return Settings(home=self.path, database_url=self.database_url, **overrides)

    def context(self, **overrides: Any) -> Any:
        from govreg.context import build

        return build(self.settings(**overrides))

    def cli(
        self, *args: str, api_key: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        from govreg.cli import cli

        full_env = {**self.env, "GOVREG_API_KEY": api_key or self.admin_key, **(env or {})}
        return CliRunner().invoke(cli, list(args), env=full_env, catch_exceptions=False)


def make_home(path: Path, database_url: str) -> Home:
    from govreg.context import init_home
    from govreg.settings import Settings

    init_home(Settings(home=path, database_url=database_url))
    admin_key = (path / "admin.key").read_text().strip()
    env = {"GOVREG_HOME": str(path), "GOVREG_DATABASE_URL": database_url}
    return Home(path=path, database_url=database_url, admin_key=admin_key, env=env)
