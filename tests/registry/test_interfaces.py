"""The local service layer and the HTTP client implement one RegistryAPI, and the local
home and the server's client one Session: every call of each Protocol exists on both,
with the same parameters in the same order, kinds and defaults (mypy checks the types:
the CLI and the SDK are typed against the Protocols)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from registry.interfaces import RegistryAPI, Session


def _calls(protocol: type = RegistryAPI) -> list[str]:
    return sorted(
        name
        for name, member in vars(protocol).items()
        if callable(member) and not name.startswith("_")
    )


def _shape(function: Any) -> list[tuple[str, Any, Any]]:
    return [
        (p.name, p.kind, p.default)
        for p in inspect.signature(function).parameters.values()
        if p.name != "self"
    ]


def test_the_protocol_names_the_calls_the_cli_and_the_sdk_make() -> None:
    assert _calls() == [
        "approve_policy",
        "audit_log",
        "create_person",
        "create_principal",
        "evaluate",
        "list_persons",
        "list_policies",
        "list_principals",
        "list_versions",
        "promote",
        "propose_policy",
        "reinstate",
        "retire",
        "revoke_principal",
        "show_version",
        "signoff",
        "submit",
        "suspend",
    ]


@pytest.mark.parametrize("call", _calls())
def test_local_and_remote_take_the_protocols_parameters(call: str) -> None:
    from govreg.client import RemoteRegistry
    from registry.services import Registry

    wanted = _shape(getattr(RegistryAPI, call))
    for implementation in (Registry, RemoteRegistry):
        given = _shape(getattr(implementation, call))
        # an implementation may add keyword-only parameters with defaults (how often
        # the client polls), never drop, rename, reorder or re-default one
        extra = given[len(wanted) :]
        assert given[: len(wanted)] == wanted, f"{implementation.__name__}.{call}"
        assert all(
            kind is inspect.Parameter.KEYWORD_ONLY and default is not inspect.Parameter.empty
            for _, kind, default in extra
        ), f"{implementation.__name__}.{call} adds {extra}"


def test_the_session_protocol_names_what_a_session_does_besides_the_registry() -> None:
    assert _calls(Session) == ["close", "evidence", "principal", "report", "verify"]
    assert sorted(n for n, m in vars(Session).items() if isinstance(m, property)) == [
        "registry",
        "remote",
    ]


@pytest.mark.parametrize("call", _calls(Session))
def test_the_local_home_and_the_servers_client_take_the_sessions_parameters(call: str) -> None:
    from govreg.client import RemoteContext
    from govreg.context import Context

    wanted = _shape(getattr(Session, call))
    for implementation in (Context, RemoteContext):
        assert _shape(getattr(implementation, call)) == wanted, f"{implementation.__name__}.{call}"
