"""The commands that work on the home itself (its keys, decision log, MLflow mirror)
refuse GOVREG_URL in one place, with one message naming the command, exit code 3."""

from __future__ import annotations

import json
from typing import Any

import pytest

LOCAL_ONLY = [
    ("keys", "rotate"),
    ("keys", "rotate-kek"),
    ("audit", "flush-denials"),
    ("audit", "decisions"),
    ("decisions", "purge"),
    ("mlflow", "sync", "pd"),
]
# a client machine: no home; nothing listens on port 9, and nothing is asked of it
REMOTE = {"GOVREG_URL": "http://127.0.0.1:9", "GOVREG_HOME": "/nonexistent-govreg-home"}


def _command(args: tuple[str, ...]) -> str:
    return " ".join(a for a in args if a != "pd")


@pytest.mark.parametrize("args", LOCAL_ONLY, ids=_command)
def test_a_local_only_command_refuses_a_server(sqlite_home: Any, args: tuple[str, ...]) -> None:
    result = sqlite_home.cli(*args, env=REMOTE)
    assert (result.exit_code, result.stdout, result.stderr) == (
        3,
        "",
        f"error: {_command(args)} runs on the server's host, not through GOVREG_URL\n",
    )


@pytest.mark.parametrize("args", LOCAL_ONLY, ids=_command)
def test_a_local_only_command_refuses_a_server_in_json(
    sqlite_home: Any, args: tuple[str, ...]
) -> None:
    result = sqlite_home.cli(*args, "--json", env=REMOTE)
    assert (result.exit_code, result.stderr) == (3, "")
    assert json.loads(result.stdout) == {
        "error": {
            "type": "ConfigError",
            "message": f"{_command(args)} runs on the server's host, not through GOVREG_URL",
            "exit_code": 3,
        }
    }


def test_the_refusal_comes_from_opening_the_home() -> None:
    """govreg.context.open_local is the one place: a server's URL is refused before
    anything is built or asked of the server."""
    from core.errors import ConfigError
    from govreg.context import open_local
    from govreg.settings import Settings

    settings = Settings(url="http://127.0.0.1:9", home="/nonexistent-govreg-home")
    with pytest.raises(ConfigError) as refused:
        open_local(settings, "keys rotate")
    assert str(refused.value) == "keys rotate runs on the server's host, not through GOVREG_URL"
