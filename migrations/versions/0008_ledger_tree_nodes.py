"""ledger tree nodes

``ledger_tree_nodes`` holds every complete subtree hash of level >= 1 of the
ledger's Merkle tree, keyed by the seq of its last leaf and its level, so an
inclusion or consistency proof reads O(log n) rows instead of every leaf.
The writer inserts the subtrees a checkpoint completes in the checkpoint's
transaction; this migration backfills those of an existing ledger up to its
latest checkpoint, streaming the leaves in seq order (memory stays flat). The
table is append-only like the other ledger tables (the same guard rails).

A stored leaf that is not 32 bytes stops the backfill there (``audit verify``
names that seq); the nodes before it are stored.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 21:15:00.000000
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "ledger_tree_nodes"
BATCH = 5000
log = logging.getLogger("alembic.runtime.migration")


def _create_guard_rails() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER {TABLE}_no_{action.lower()} BEFORE {action} ON {TABLE} "
                f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: {action} refused'); END"
            )
        return
    # govreg_append_only() is created by revision 0001.
    op.execute(
        f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION govreg_append_only()"
    )
    op.execute(
        f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
        "FOR EACH STATEMENT EXECUTE FUNCTION govreg_append_only()"
    )


def _backfill() -> None:
    from audits.merkle import CompactRange

    bind = op.get_bind()
    last = bind.execute(sa.text("SELECT max(size) FROM ledger_checkpoints")).scalar()
    if not last:
        return
    mark = "?" if bind.dialect.name == "sqlite" else "%s"
    insert = f"INSERT INTO {TABLE} (last_seq, level, hash) VALUES ({mark}, {mark}, {mark})"
    tree = CompactRange()
    rows: list[tuple[int, int, bytes]] = []
    leaves = bind.execute(
        sa.text("SELECT seq, leaf_hash FROM ledger_events WHERE seq <= :n ORDER BY seq")
        .execution_options(stream_results=True, yield_per=BATCH),
        {"n": int(last)},
    )
    try:
        for seq, leaf in leaves:
            if seq != tree.size + 1 or not isinstance(leaf, bytes | memoryview) or len(leaf) != 32:
                log.warning(
                    "ledger_tree_nodes: backfill stopped before seq %s (run `govreg audit verify`)",
                    seq,
                )
                break
            for level, value in tree.append(bytes(leaf)):
                rows.append((seq, level, value))
            if len(rows) >= BATCH:
                bind.exec_driver_sql(insert, rows)
                rows = []
    finally:
        leaves.close()
    if rows:
        bind.exec_driver_sql(insert, rows)


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("last_seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("level", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("last_seq", "level"),
    )
    _backfill()
    _create_guard_rails()


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_update")
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_delete")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE}")
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE}")
    op.drop_table(TABLE)
