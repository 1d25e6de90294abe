"""An API key is accepted only with the principal row the ledger records (issue 13,
finding 2). Someone who can write to the database but holds no key inserts a row
with a key of their own, raises a role or clears a revocation: the key is refused,
the refusal names the difference, and honest keys keep working. A principal event
that does not check out refuses every key."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from ledger_helpers import drop_guard_rails, flip, sql

from registry.principals import principal_created
from registry.roles import Role
from registry.vouching import Unvouched

VERIFY = "run `govreg audit verify`"


@pytest.fixture
def ctx(home: Any) -> Iterator[Any]:
    context = home.context()
    drop_guard_rails(context)  # the attacker writes to the tables directly
    yield context
    context.close()


def _admin_seq(ctx: Any) -> int:
    """The bootstrap admin's ``principal.created`` event."""
    found = sql(ctx, "SELECT min(seq) FROM ledger_events WHERE event_type = 'principal.created'")
    return int(found[0][0])


def _refusal(ctx: Any, key: str) -> str:
    with pytest.raises(Unvouched) as info:
        ctx.registry.authenticate(key)
    return str(info.value)


def test_a_row_inserted_without_an_event_is_refused(ctx: Any, home: Any) -> None:
    event, key = principal_created("admin", "mallory", Role.ADMIN, None, person="admin")
    d = event.data
    sql(
        ctx,
        "INSERT INTO principals (name, role, person, key_prefix, key_hash, created_at, "
        "created_by) VALUES ('mallory', 'admin', 'admin', :p, :h, "
        "'2026-01-01T00:00:00.000000Z', 'admin')",
        {"p": d["key_prefix"], "h": d["key_hash"]},
    )
    assert _refusal(ctx, key) == (
        f"API key of 'mallory' is not backed by the ledger (no ledger event created it); {VERIFY}"
    )
    assert ctx.registry.authenticate(home.admin_key).name == "admin"


def test_a_raised_role_and_a_cleared_revocation_are_refused(
    ctx: Any, home: Any, caplog: pytest.LogCaptureFixture
) -> None:
    admin = ctx.registry.authenticate(home.admin_key)
    ctx.registry.create_person(admin, "bob", display="Bob")
    _bob, key = ctx.registry.create_principal(admin, "bob", Role.VALIDATOR, person="bob")
    assert ctx.registry.authenticate(key).role == Role.VALIDATOR
    sql(ctx, "UPDATE principals SET role = 'admin' WHERE name = 'bob'")
    with caplog.at_level(logging.ERROR, logger="registry.vouching"):
        assert _refusal(ctx, key) == (
            "API key of 'bob' is not backed by the ledger (its role differs from the "
            f"ledger's); {VERIFY}"
        )
    assert caplog.messages == [
        "refused the API key of principal 'bob': its role differs from the ledger's (the "
        f"principals table was changed outside govreg; {VERIFY})"
    ]
    sql(ctx, "UPDATE principals SET role = 'validator' WHERE name = 'bob'")
    assert ctx.registry.authenticate(key).role == Role.VALIDATOR
    # revoked through govreg, then the revocation cleared in the table
    ctx.registry.revoke_principal(admin, "bob")
    sql(ctx, "UPDATE principals SET revoked_at = NULL, expires_at = '2099-01-01' "
        "WHERE name = 'bob'")  # fmt: skip
    assert _refusal(ctx, key) == (
        "API key of 'bob' is not backed by the ledger (its expires_at, revoked_at differ "
        f"from the ledger's); {VERIFY}"
    )
    assert ctx.registry.authenticate(home.admin_key).name == "admin"


def test_a_tampered_principal_event_refuses_every_key(ctx: Any, home: Any) -> None:
    """The bootstrap admin's principal.created, edited: it no longer checks out, and
    no key is accepted (skipping it could revive a key its genuine revocation ended)."""
    assert ctx.registry.authenticate(home.admin_key).name == "admin"
    seq = _admin_seq(ctx)
    where = {"s": seq}
    original = bytes(sql(ctx, "SELECT ciphertext FROM ledger_events WHERE seq = :s", where)[0][0])
    sql(
        ctx,
        "UPDATE ledger_events SET ciphertext = :c WHERE seq = :s",
        {**where, "c": flip(original)},
    )
    ctx.registry.vouch._replayed = None  # a fresh process (this one replayed before)
    assert _refusal(ctx, home.admin_key) == (
        "no API key is accepted while the ledger's principal events do not check out "
        f"(seq {seq}: its envelope does not hash to its stored leaf); {VERIFY}"
    )
    sql(ctx, "UPDATE ledger_events SET ciphertext = :c WHERE seq = :s", {**where, "c": original})
    ctx.registry.vouch._replayed = None
    assert ctx.registry.authenticate(home.admin_key).name == "admin"


def test_an_event_with_a_wrong_authenticator_refuses_every_key(ctx: Any, home: Any) -> None:
    where = {"s": _admin_seq(ctx)}
    stored = sql(ctx, "SELECT authenticator FROM ledger_events WHERE seq = :s", where)[0][0]
    sql(
        ctx, "UPDATE ledger_events SET authenticator = :a WHERE seq = :s", {**where, "a": bytes(32)}
    )
    assert _refusal(ctx, home.admin_key) == (
        "no API key is accepted while the ledger's principal events do not check out "
        f"(seq {where['s']}: its authenticator is missing or invalid (not written by "
        f"govreg)); {VERIFY}"
    )
    sql(ctx, "UPDATE ledger_events SET authenticator = :a WHERE seq = :s", {**where, "a": stored})
    ctx.registry.vouch._replayed = None
    assert ctx.registry.authenticate(home.admin_key).name == "admin"


def test_the_replay_is_redone_only_when_a_principal_event_is_added(ctx: Any, home: Any) -> None:
    admin = ctx.registry.authenticate(home.admin_key)
    first = ctx.registry.vouch._replayed
    assert first is not None
    ctx.registry.create_person(admin, "dave", display="Dave")  # not a principal event
    ctx.registry.authenticate(home.admin_key)
    assert ctx.registry.vouch._replayed is first
    _dave, key = ctx.registry.create_principal(admin, "dave", Role.AUDITOR, person="dave")
    assert ctx.registry.authenticate(key).name == "dave"
    replayed = ctx.registry.vouch._replayed
    assert replayed is not first
    assert (replayed.newest > first.newest, sorted(replayed.principals)) == (
        True,
        ["admin", "dave"],
    )
