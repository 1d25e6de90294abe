"""Proofs from the stored tree nodes: equal to proofs from every leaf, O(log n) rows,
verified as stored, and backfilled for a ledger written before the nodes were kept."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from ledger_helpers import append, append_in, drop_guard_rails, failure, sql, verify

from audits.ledger import Ledger
from audits.merkle import (
    consistency_proof,
    inclusion_proof,
    root,
    verify_consistency,
    verify_inclusion,
)
from core.errors import IntegrityError
from migrations import runner


@pytest.fixture
def ctx(home: Any) -> Iterator[Any]:
    # bootstrap writes seq 1-3 (checkpoint at 3); then runs 4..40 in six transactions
    # (checkpoints at 7, 14, 21, 28, 35 and 40)
    context = home.context()
    ends = [3, 7, 14, 21, 28, 35, 40]
    append_in(context, *(range(a + 1, b + 1) for a, b in itertools.pairwise(ends)))
    yield context
    context.close()


def _sizes(ctx: Any) -> list[int]:
    return [int(r[0]) for r in sql(ctx, "SELECT size FROM ledger_checkpoints ORDER BY size")]


def _nodes(ctx: Any) -> dict[tuple[int, int], bytes]:
    rows = sql(ctx, "SELECT level, last_seq, hash FROM ledger_tree_nodes")
    return {(int(level), int(last)): bytes(value) for level, last, value in rows}


def _expected_nodes(leaves: list[bytes]) -> dict[tuple[int, int], bytes]:
    return {
        (level, last): root(leaves[last - (1 << level) : last])
        for level in range(1, len(leaves).bit_length())
        for last in range(1 << level, len(leaves) + 1, 1 << level)
    }


def test_checkpoints_store_every_complete_subtree_they_cover(ctx: Any) -> None:
    assert _sizes(ctx) == [3, 7, 14, 21, 28, 35, 40]
    with ctx.registry.reading() as conn:
        leaves = ctx.ledger.leaves(conn)
    assert len(leaves) == 40
    # Every complete subtree of the 40 leaves: 20 + 10 + 5 + 2 + 1 rows.
    assert _nodes(ctx) == _expected_nodes(leaves)
    assert len(_nodes(ctx)) == 38


def test_proofs_from_nodes_equal_proofs_from_leaves(ctx: Any) -> None:
    with ctx.registry.reading() as conn:
        leaves = ctx.ledger.leaves(conn)
        for size in _sizes(ctx):
            tree = leaves[:size]
            proofs = ctx.ledger.inclusion_proofs(conn, size, list(range(1, size + 1)))
            assert proofs == {seq: inclusion_proof(tree, seq - 1) for seq in range(1, size + 1)}
            for seq, proof in proofs.items():
                verify_inclusion(tree[seq - 1], seq - 1, size, proof, root(tree))
            for old in range(1, size + 1):
                proof = ctx.ledger.consistency_proof(conn, old, size)
                assert proof == consistency_proof(tree, old)
                verify_consistency(old, size, proof, root(leaves[:old]), root(tree))


def test_a_proof_reads_logarithmically_many_rows(ctx: Any) -> None:
    reads: list[set[tuple[int, int]]] = []
    real = Ledger.subtree_hashes

    def counted(self: Ledger, conn: Any, wanted: set[tuple[int, int]], size: int) -> Any:
        reads.append(set(wanted))
        return real(self, conn, wanted, size)

    ledger = ctx.ledger
    with ctx.registry.reading() as conn:
        ledger.subtree_hashes = counted.__get__(ledger)
        try:
            proofs = ledger.inclusion_proofs(conn, 35, [1])
        finally:
            del ledger.subtree_hashes
    # PATH(0, D[35]): leaf 2, nodes over 3..4, 5..8, 9..16, 17..32, and the fold of
    # 33..34 and 35 on the right border.
    assert reads == [{(0, 2), (1, 4), (2, 8), (3, 16), (4, 32), (1, 34), (0, 35)}]
    assert len(proofs[1]) == 6


def test_a_missing_node_is_named_when_a_proof_needs_it(ctx: Any) -> None:
    drop_guard_rails(ctx)
    assert sql(ctx, "DELETE FROM ledger_tree_nodes WHERE level = 3 AND last_seq = 16") == 1
    with ctx.registry.reading() as conn, pytest.raises(IntegrityError) as info:
        ctx.ledger.inclusion_proofs(conn, 35, [1])
    assert str(info.value) == (
        "tree node at level 3 over seqs 9..16 is not stored, but the tree of size 35 needs it "
        "for a proof (run `govreg audit verify`)"
    )


# -- audit verify over the stored nodes ---------------------------------------------------


def test_tampered_node_is_named_by_verify(ctx: Any) -> None:
    assert verify(ctx).size == 40
    drop_guard_rails(ctx)
    sql(
        ctx,
        "UPDATE ledger_tree_nodes SET hash = :h WHERE level = 2 AND last_seq = 8",
        {"h": bytes(32)},
    )
    err = failure(ctx)
    assert (err.seq, str(err)) == (
        8,
        "tree node at level 2 over seqs 5..8: column 'hash' differs from the hash recomputed "
        "from the leaves",
    )


def test_missing_node_is_named_by_verify(ctx: Any) -> None:
    drop_guard_rails(ctx)
    assert sql(ctx, "DELETE FROM ledger_tree_nodes WHERE level = 1 AND last_seq = 6") == 1
    err = failure(ctx)
    assert (err.seq, str(err)) == (
        6,
        "tree node at level 1 over seqs 5..6 is missing from ledger_tree_nodes (proofs in the "
        "first 40 leaves need it)",
    )


@pytest.mark.parametrize(
    ("level", "last", "named"),
    [
        (1, 42, "tree node at level 1 over seqs 41..42"),  # past the latest checkpoint
        (2, 6, "tree node at level 2 ending at seq 6"),  # not aligned
        (0, 3, "tree node at level 0 ending at seq 3"),  # leaves are not stored as nodes
        (6, 64, "tree node at level 6 over seqs 1..64"),  # beyond the ledger
    ],
)
def test_extra_node_is_named_by_verify(ctx: Any, level: int, last: int, named: str) -> None:
    drop_guard_rails(ctx)
    sql(
        ctx,
        "INSERT INTO ledger_tree_nodes (last_seq, level, hash) VALUES (:s, :l, :h)",
        {"s": last, "l": level, "h": bytes(32)},
    )
    err = failure(ctx)
    assert str(err) == (
        f"{named}: stored, but it is not a complete subtree of the ledger's first 40 leaves "
        "(an extra row)"
    )


def test_node_of_the_wrong_type_is_named_by_verify(ctx: Any) -> None:
    drop_guard_rails(ctx)
    sql(
        ctx,
        "UPDATE ledger_tree_nodes SET hash = :h WHERE level = 1 AND last_seq = 4",
        {"h": bytes(31)},
    )
    assert str(failure(ctx)) == (
        "tree node at level 1 ending at seq 4: column 'hash' holds 31 bytes (BLOB), "
        "expected 32 bytes"
    )


# -- the migration backfills a ledger written before it ------------------------------------


def test_migration_backfills_a_ledger_written_before_it(ctx: Any) -> None:
    """Down to revision 0007 (no nodes, no authenticators) and up again: 0008 stores
    the nodes from the leaves; 0009 refuses a ledger that holds events unless it is
    given the authenticator key (as ``govreg init`` does), then gives every event its
    authenticator."""
    append(ctx, range(41, 60))
    with ctx.registry.reading() as conn:
        before = ctx.ledger.leaves(conn)
    runner.downgrade(ctx.engine, "0007")
    assert sql(ctx, "SELECT count(*) FROM ledger_events")[0][0] == 59
    with pytest.raises(RuntimeError) as info:
        runner.upgrade(ctx.engine)
    assert str(info.value) == (
        "ledger_events holds 59 events written before event authenticators; run "
        "`govreg init` on this home to upgrade it (it holds the checkpoint signing key the "
        "authenticators need)"
    )
    assert runner.current(ctx.engine) == "0008"
    assert runner.upgrade(ctx.engine, authenticator_key=ctx.ledger.authenticator_key()) == 59
    assert runner.current(ctx.engine) == "0010"
    with ctx.registry.reading() as conn:
        leaves = ctx.ledger.leaves(conn)
        assert leaves == before
        assert _nodes(ctx) == _expected_nodes(leaves)
        proofs = ctx.ledger.inclusion_proofs(conn, 59, [1, 29, 59])
        assert proofs == {seq: inclusion_proof(leaves, seq - 1) for seq in (1, 29, 59)}
    report = verify(ctx, authenticators=True)
    assert (report.size, report.authenticators_checked) == (59, True)
    # Writing on goes on from the backfilled nodes.
    append(ctx, range(60, 64))
    with ctx.registry.reading() as conn:
        leaves = ctx.ledger.leaves(conn)
    assert _sizes(ctx)[-1] == 63
    assert _nodes(ctx) == _expected_nodes(leaves[:63])
    assert verify(ctx, authenticators=True).size == 63
