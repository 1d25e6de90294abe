"""event authenticators

Adds ``ledger_events.authenticator``: HMAC-SHA256 over each event's seq and
leaf hash, keyed by a key derived from the checkpoint signing key (see
``audits.ledger``). The signer checks it for every event before signing a
checkpoint over it, so whoever holds only the data keys (``kek.json``) can no
longer append an event a later checkpoint would sign.

Existing events get theirs here, which needs the signing key: ``govreg init``
passes it (``config.attributes["authenticator_key"]``) and records the
upgrade in the ledger afterwards. Without it, a ledger that holds events is
refused with what to run; an empty one (a new home) needs nothing. The
append-only guard rails on ``ledger_events`` are lifted for the backfill
only, inside this migration's transaction.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 08:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "ledger_events"
BATCH = 5000


def _lift_guard_rails() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_update")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {TABLE}")


def _restore_guard_rails() -> None:
    # As revision 0001 created them.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_update BEFORE UPDATE ON {TABLE} "
            f"BEGIN SELECT RAISE(ABORT, '{TABLE} is append-only: UPDATE refused'); END"
        )
    else:
        op.execute(
            f"CREATE TRIGGER {TABLE}_append_only BEFORE UPDATE OR DELETE ON {TABLE} "
            "FOR EACH ROW EXECUTE FUNCTION govreg_append_only()"
        )


def _backfill() -> int:
    """Authenticators for every stored event; the number of events."""
    from audits.ledger import authenticator_of

    bind = op.get_bind()
    count = int(bind.execute(sa.text(f"SELECT count(*) FROM {TABLE}")).scalar() or 0)
    if count == 0:
        return 0
    key = op.get_context().config.attributes.get("authenticator_key")
    if key is None:
        raise RuntimeError(
            f"{TABLE} holds {count} events written before event authenticators; run "
            "`govreg init` on this home to upgrade it (it holds the checkpoint signing key "
            "the authenticators need)"
        )
    _lift_guard_rails()
    page = sa.text(
        f"SELECT seq, leaf_hash FROM {TABLE} WHERE seq > :last ORDER BY seq LIMIT {BATCH}"
    )
    update = sa.text(f"UPDATE {TABLE} SET authenticator = :mac WHERE seq = :seq")
    last = -(2**62)
    while rows := bind.execute(page, {"last": last}).all():
        last = rows[-1][0]
        # A malformed row keeps NULL: `govreg audit verify` names its seq.
        macs = [
            {"seq": seq, "mac": authenticator_of(key, seq, bytes(leaf))}
            for seq, leaf in rows
            if type(seq) is int and isinstance(leaf, bytes | memoryview) and len(leaf) == 32
        ]
        if macs:
            bind.execute(update, macs)
    _restore_guard_rails()
    op.get_context().config.attributes["authenticated"] = count
    return count


def upgrade() -> None:
    op.add_column(TABLE, sa.Column("authenticator", sa.LargeBinary(), nullable=True))
    _backfill()


def downgrade() -> None:
    # Plain DROP COLUMN (SQLite >= 3.35): a batch rebuild would drop the triggers.
    op.execute(f"ALTER TABLE {TABLE} DROP COLUMN authenticator")
