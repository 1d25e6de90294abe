"""The signer vouches for what it signs (issue 13, findings 1 to 3).

Every write signs a checkpoint in its own transaction, so no committed event is
outside one. Before signing, the signer checks every event since the last
checkpoint for an authenticator that only a holder of the signing key can make
(the data keys in ``kek.json`` cannot), that the new tree extends the last
signed one, and that the anchor folder holds no checkpoint of the new size. If
not, it refuses: nothing is written, the error is logged, ``/v1/health`` turns
unhealthy and the command exits 8.

The attacker here holds the database and ``kek.json`` (so can encrypt proper
payloads and recompute every hash), but not the signing key. Bootstrap writes
seq 1-3, then runs 4-5, 6-10 and 11-12 in one transaction each (checkpoints at
3, 5, 10 and 12, all anchored).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from ledger_helpers import (
    anchor_files,
    append,
    checkpoint_sizes,
    failure,
    forge_score,
    forged_admin,
    fresh,
    seqs,
    sql,
    standard_ledger,
    verify,
)

from audits.ledger import anchor_name
from core.errors import IntegrityError
from registry.roles import Role
from registry.services import Principal
from registry.vouching import Unvouched

RUN_VERIFY = "(run `govreg audit verify`)"
UNCOVERED = (
    "seq {first}..{last}: not covered by any signed checkpoint (every write signs one in "
    "its own transaction: these were added outside govreg, or by a version before that, "
    "which `govreg init` upgrades)"
)


@pytest.fixture
def ctx(home: Any) -> Iterator[Any]:
    context = standard_ledger(home, guard_rails=False)
    yield context
    context.close()


def health(ctx: Any) -> str | None:
    with ctx.registry.reading() as conn:
        problem: str | None = ctx.ledger.health(conn)
    return problem


# -- finding 2: forged appends ---------------------------------------------------------------
@pytest.mark.parametrize(
    ("authenticator", "named"), [(None, "no"), (bytes(32), "an invalid"), (b"x" * 32, "an invalid")]
)
def test_forged_append_is_never_signed(
    ctx: Any, home: Any, caplog: pytest.LogCaptureFixture, authenticator: Any, named: str
) -> None:
    admin = ctx.registry.authenticate(home.admin_key)
    seq, api_key = forged_admin(ctx, authenticator)
    assert seq == 13
    # No key is accepted any more, the forged one nor the admin's: the principal
    # event 13 is outside every checkpoint.
    unvouched = (
        "no API key is accepted while the ledger's principal events do not check out "
        "(principal event 13 is not covered by a checkpoint); run `govreg audit verify`"
    )
    for key in (api_key, home.admin_key):
        with pytest.raises(Unvouched) as denied:
            ctx.registry.authenticate(key)
        assert str(denied.value) == unvouched
    refusal = (
        f"seq 13: {named} authenticator, so no holder of the signing key wrote it; refusing "
        f"to sign a checkpoint over it {RUN_VERIFY}"
    )
    mallory = Principal(name="mallory", role=Role.ADMIN)
    for actor in (admin, mallory):  # a principal already authenticated: no write is signed
        with caplog.at_level(logging.ERROR, logger="audits.ledger"):
            caplog.clear()
            with pytest.raises(IntegrityError) as info:
                ctx.registry.create_person(actor, "eve", display="someone")
        assert str(info.value) == refusal
        assert caplog.messages == [f"the ledger's signer refused to sign a checkpoint: {refusal}"]
    assert (seqs(ctx), checkpoint_sizes(ctx)) == (list(range(1, 14)), [3, 5, 10, 12])
    assert sql(ctx, "SELECT count(*) FROM persons WHERE id = 'eve'")[0][0] == 0
    # This process knows it refused; any other sees the uncovered event.
    assert health(ctx) == "the ledger's signer refused to sign a checkpoint (see the server log)"
    other = fresh(ctx)
    try:
        assert health(other) == (
            f"events 13..13 are not covered by a signed checkpoint {RUN_VERIFY}"
        )
    finally:
        other.close()
    # The CLI refuses the key (exit 5), after the log line a server would keep.
    result = home.cli("persons", "create", "eve", "--display", "someone")
    assert (result.exit_code, result.stdout, result.stderr) == (
        5,
        "",
        "warning: the ledger's principal events do not check out, so no API key is "
        "accepted: principal event 13 is not covered by a checkpoint (run `govreg audit "
        f"verify`)\nerror: {unvouched}\n",
    )
    # An auditor with the public key only: a missing authenticator is seen as such; a
    # forged one cannot be told from a real one, but the event is outside every checkpoint.
    missing = (
        "seq 13: no authenticator (the ledger was not upgraded: run `govreg init` on its "
        "home, which holds the signing key) or it was written outside govreg"
    )
    err = failure(ctx)
    assert (err.seq, str(err)) == (
        13,
        missing if authenticator is None else UNCOVERED.format(first=13, last=13),
    )
    # On the home's machine, the authenticator itself fails.
    err = failure(ctx, authenticators=True)
    assert (err.seq, str(err)) == (
        13,
        missing
        if authenticator is None
        else "seq 13: authenticator does not match (the event was added or rewritten by "
        "someone without the checkpoint signing key)",
    )


def test_an_authenticator_moved_from_another_event_does_not_vouch(ctx: Any) -> None:
    """Each authenticator binds its seq and leaf: seq 12's is no good for seq 13."""
    twelve = bytes(sql(ctx, "SELECT authenticator FROM ledger_events WHERE seq = 12")[0][0])
    forged_admin(ctx, twelve)
    with pytest.raises(IntegrityError) as info:
        append(ctx, range(14, 15))
    assert str(info.value).startswith("seq 13: an invalid authenticator, so no holder")
    assert checkpoint_sizes(ctx) == [3, 5, 10, 12]


def test_the_signer_signs_again_once_the_forgery_is_gone(ctx: Any) -> None:
    forged_admin(ctx, None)
    with pytest.raises(IntegrityError):
        append(ctx, range(14, 15))
    assert ctx.ledger.refusal is not None
    assert health(ctx) == "the ledger's signer refused to sign a checkpoint (see the server log)"
    sql(ctx, "DELETE FROM principals WHERE name = 'mallory'")
    sql(ctx, "DELETE FROM ledger_events WHERE seq = 13")
    # The ledger changed since the refusal: health no longer reports it, before any write.
    assert (ctx.ledger.refusal is not None, health(ctx)) == (True, None)
    append(ctx, range(13, 14))
    assert (ctx.ledger.refusal, health(ctx)) == (None, None)
    assert checkpoint_sizes(ctx) == [3, 5, 10, 12, 13]
    assert verify(ctx, authenticators=True).size == 13


# -- finding 3: laundering a rewrite through the honest signer --------------------------------
def test_laundered_rewrite_is_refused_and_caught(ctx: Any) -> None:
    """Seq 7 re-encrypted with a new score and every later hash recomputed; then every
    checkpoint row, tree node and anchor file deleted, so that the honest signer would
    start a new tree over the rewritten history."""
    forge_score(ctx, 7)
    sql(ctx, "DELETE FROM ledger_checkpoints")
    sql(ctx, "DELETE FROM ledger_tree_nodes")
    for path in ctx.settings.anchors_path.glob("*.txt"):
        path.unlink()
    with pytest.raises(IntegrityError) as info:
        append(ctx, range(13, 14))
    assert str(info.value) == (
        "the ledger holds events 1..12 but no signed checkpoint (checkpoints were deleted: "
        f"every write signs one); refusing to sign {RUN_VERIFY}"
    )
    assert (seqs(ctx), checkpoint_sizes(ctx), anchor_files(ctx)) == (list(range(1, 13)), [], [])
    err = failure(ctx, authenticators=True)
    assert (err.seq, str(err)) == (
        7,
        "seq 7: authenticator does not match (the event was added or rewritten by someone "
        "without the checkpoint signing key)",
    )
    err = failure(ctx)  # with the public key only, nothing is signed at all
    assert (err.seq, str(err)) == (1, UNCOVERED.format(first=1, last=12))


def test_laundered_rewrite_past_a_kept_checkpoint_is_refused(ctx: Any) -> None:
    """Seq 11 rewritten, and only what covers it deleted (checkpoint 12, its nodes and
    anchor): the signer resumes from 10 and meets the rewritten event's authenticator."""
    forge_score(ctx, 11)
    sql(ctx, "DELETE FROM ledger_checkpoints WHERE size = 12")
    sql(ctx, "DELETE FROM ledger_tree_nodes WHERE last_seq > 10")
    (ctx.settings.anchors_path / anchor_name(12)).unlink()
    with pytest.raises(IntegrityError) as info:
        append(ctx, range(13, 14))
    assert str(info.value) == (
        "seq 11: an invalid authenticator, so no holder of the signing key wrote it; "
        f"refusing to sign a checkpoint over it {RUN_VERIFY}"
    )
    assert checkpoint_sizes(ctx) == [3, 5, 10]
    err = failure(ctx, authenticators=True)
    assert (err.seq, str(err)) == (
        11,
        "seq 11: authenticator does not match (the event was added or rewritten by someone "
        "without the checkpoint signing key)",
    )


def test_checkpoints_deleted_under_kept_tree_nodes_are_refused(ctx: Any) -> None:
    sql(ctx, "DELETE FROM ledger_checkpoints WHERE size = 12")
    (ctx.settings.anchors_path / anchor_name(12)).unlink()
    with pytest.raises(IntegrityError) as info:
        append(ctx, range(13, 14))
    assert str(info.value) == (
        "tree nodes past the last checkpoint (size 10) are already stored: checkpoints were "
        f"deleted; refusing to sign {RUN_VERIFY}"
    )
    assert checkpoint_sizes(ctx) == [3, 5, 10]


# -- finding 1: deleting the newest events ------------------------------------------------------
def test_newest_event_deleted_is_never_signed_over(ctx: Any) -> None:
    """The checkpoint at 12 remains: the next write would reuse seq 12."""
    assert sql(ctx, "DELETE FROM ledger_events WHERE seq = 12") == 1
    err = failure(ctx)
    assert (err.seq, str(err)) == (
        12,
        "seq 12: missing; a checkpoint signed the ledger at size 12 but it ends at seq 11 "
        "(events deleted from the end)",
    )
    with pytest.raises(IntegrityError) as info:
        append(ctx, range(99, 100))
    assert str(info.value) == (
        "the ledger ended at seq 11 but a checkpoint signed it at size 12 (events deleted "
        f"from the end); refusing to sign {RUN_VERIFY}"
    )
    assert (seqs(ctx), checkpoint_sizes(ctx)) == (list(range(1, 12)), [3, 5, 10, 12])
    other = fresh(ctx)
    try:
        assert health(other) == (
            f"the ledger ends at seq 11 but a checkpoint signed it at size 12 {RUN_VERIFY}"
        )
    finally:
        other.close()


def test_newest_event_and_its_checkpoint_deleted(ctx: Any) -> None:
    """Without the anchor folder's help the attacker leaves seq 11 outside every
    checkpoint, and the anchor of 12 stops the signer from signing a new 12."""
    assert sql(ctx, "DELETE FROM ledger_events WHERE seq = 12") == 1
    assert sql(ctx, "DELETE FROM ledger_checkpoints WHERE size = 12") == 1
    key = ctx.settings.public_key_path
    from audits.signing import load_public_key

    with pytest.raises(IntegrityError) as info:
        ctx.registry.verify(None, load_public_key(key), anchor_dir=None)
    assert str(info.value).startswith("tree node at level 1 over seqs 11..12: stored, but")
    assert str(failure(ctx)) == (
        "anchored checkpoint at size 12 is missing from the database (checkpoints were deleted)"
    )
    with pytest.raises(IntegrityError) as info:
        append(ctx, range(99, 100))
    assert str(info.value) == (
        f"the anchor folder already holds {anchor_name(12)}, a checkpoint at size 12 the "
        "database no longer has (checkpoints were deleted); refusing to sign over it "
        f"{RUN_VERIFY}"
    )
    assert (seqs(ctx), checkpoint_sizes(ctx)) == (list(range(1, 12)), [3, 5, 10])
    assert (ctx.settings.anchors_path / anchor_name(12)).is_file()


def test_what_still_needs_the_anchor_folder_out_of_reach(ctx: Any) -> None:
    """The limit, stated as a test: an attacker who can also delete anchor files and
    cuts the ledger exactly at a checkpoint leaves a shorter ledger that verifies.
    A copy of the anchors kept elsewhere (the README's advice) still catches it."""
    kept = {p.name: p.read_text(encoding="utf-8") for p in ctx.settings.anchors_path.iterdir()}
    assert sql(ctx, "DELETE FROM ledger_events WHERE seq > 10") == 2
    assert sql(ctx, "DELETE FROM ledger_checkpoints WHERE size > 10") == 1
    assert sql(ctx, "DELETE FROM ledger_tree_nodes WHERE last_seq > 10") == 2
    (ctx.settings.anchors_path / anchor_name(12)).unlink()
    assert verify(ctx, authenticators=True).size == 10
    (ctx.settings.anchors_path / anchor_name(12)).write_text(kept[anchor_name(12)])
    assert str(failure(ctx)) == (
        "anchored checkpoint at size 12 is missing from the database (checkpoints were deleted)"
    )


# -- every commit is signed -------------------------------------------------------------------
def test_every_transaction_signs_one_checkpoint(ctx: Any, home: Any) -> None:
    admin = ctx.registry.authenticate(home.admin_key)
    ctx.registry.create_person(admin, "bob", display="validator")
    ctx.registry.create_principal(admin, "bob", "validator", person="bob")
    assert checkpoint_sizes(ctx) == [3, 5, 10, 12, 13, 14]
    assert anchor_files(ctx) == [anchor_name(n) for n in (3, 5, 10, 12, 13, 14)]
    with ctx.registry.transaction() as conn:  # a transaction that appends nothing
        ctx.registry.ledger.head(conn)
    assert checkpoint_sizes(ctx)[-1] == 14
    report = verify(ctx, authenticators=True)
    assert (report.size, report.checkpoints, report.warnings) == (14, 6, [])


# -- the upgrade --------------------------------------------------------------------------------
def test_init_upgrades_a_ledger_written_before_authenticators(ctx: Any, home: Any) -> None:
    """Down to revision 0008 (no authenticators; events past the last checkpoint, as
    the earlier writer left them), then ``govreg init``: every event gets its
    authenticator, ``ledger.upgraded`` records it, and its checkpoint covers all."""
    from migrations import runner

    runner.downgrade(ctx.engine, "0008")
    sql(ctx, "DELETE FROM ledger_checkpoints WHERE size = 12")  # written with checkpoint_every
    sql(ctx, "DELETE FROM ledger_tree_nodes WHERE last_seq > 10")
    (ctx.settings.anchors_path / anchor_name(12)).unlink()
    result = home.cli("init")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:2] == [
        f"database schema at revision 0010 ({home.database_url.split('://')[0]})",
        "gave the 12 events already in the ledger their authenticators and recorded it "
        "(ledger.upgraded)",
    ]
    assert checkpoint_sizes(ctx) == [3, 5, 10, 13]
    with ctx.registry.reading() as conn:
        upgraded = list(ctx.ledger.events(conn, types=["ledger.upgraded"]))
    assert [(e.seq, e.actor, e.data) for e in upgraded] == [
        (13, "govreg-init", {"authenticated_events": 12, "revision": "0009"})
    ]
    report = verify(ctx, authenticators=True)
    assert (report.size, report.checkpoints, report.authenticators_checked) == (13, 4, True)
    assert home.cli("init").stdout.startswith(f"govreg home {home.path} is already initialised")
