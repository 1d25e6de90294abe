"""The local service layer and the HTTP client implement one RegistryAPI: every call
of the Protocol exists on both, with the same parameters in the same order, kinds and
defaults (mypy checks the types: the CLI and the SDK are typed against the Protocol)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from registry.interfaces import RegistryAPI


def _calls() -> list[str]:
    return sorted(
        name
        for name, member in vars(RegistryAPI).items()
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
