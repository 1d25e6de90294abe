"""expiring data keys (crypto-shredding of the decision log's inputs)

Data keys with a purpose, a period and an expiry, wrapped by the KEK like
``ledger_data_keys``. The decision log encrypts each decision's applicant
inputs under the key of the calendar month its retention ends in; once that
month is over the key row is deleted and the inputs become undecryptable,
while the append-only decision rows and their hashes stay.

Guard rails: DELETE is refused while ``expires_at`` lies after the database's
own clock; UPDATE may only re-wrap (``kek_id``, ``nonce``, ``wrapped``);
TRUNCATE is refused (PostgreSQL).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 15:45:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

TABLE = "expiring_data_keys"
FIXED = ("key_id", "purpose", "period", "expires_at", "created_at")

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _create_guard_rails() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in FIXED)
        op.execute(
            f"CREATE TRIGGER {TABLE}_rewrap_only BEFORE UPDATE ON {TABLE} WHEN {changed} "
            f"BEGIN SELECT RAISE(ABORT, '{TABLE}: only a re-wrap may change a key: "
            "UPDATE refused'); END"
        )
        op.execute(
            f"CREATE TRIGGER {TABLE}_no_early_delete BEFORE DELETE ON {TABLE} "
            "WHEN OLD.expires_at > strftime('%Y-%m-%dT%H:%M:%fZ', 'now') "
            f"BEGIN SELECT RAISE(ABORT, '{TABLE}: key not expired yet: DELETE refused'); END"
        )
        return
    changed = " OR ".join(f"NEW.{c} IS DISTINCT FROM OLD.{c}" for c in FIXED)
    op.execute(
        "CREATE OR REPLACE FUNCTION govreg_expiring_key_guard() RETURNS trigger AS $$ "
        "BEGIN "
        "IF TG_OP = 'UPDATE' THEN "
        f"  IF {changed} THEN "
        f"    RAISE EXCEPTION '{TABLE}: only a re-wrap may change a key: UPDATE refused'; "
        "  END IF; "
        "  RETURN NEW; "
        "ELSIF TG_OP = 'DELETE' THEN "
        "  IF OLD.expires_at::timestamptz > now() THEN "
        f"    RAISE EXCEPTION '{TABLE}: key not expired yet: DELETE refused'; "
        "  END IF; "
        "  RETURN OLD; "
        "END IF; "
        f"RAISE EXCEPTION '{TABLE}: % refused', TG_OP; "
        "END; $$ LANGUAGE plpgsql"
    )
    op.execute(
        f"CREATE TRIGGER {TABLE}_guard BEFORE UPDATE OR DELETE ON {TABLE} "
        "FOR EACH ROW EXECUTE FUNCTION govreg_expiring_key_guard()"
    )
    op.execute(
        f"CREATE TRIGGER {TABLE}_no_truncate BEFORE TRUNCATE ON {TABLE} "
        "FOR EACH STATEMENT EXECUTE FUNCTION govreg_expiring_key_guard()"
    )


def _drop_guard_rails() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_rewrap_only")
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_early_delete")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_guard ON {TABLE}")
        op.execute(f"DROP TRIGGER IF EXISTS {TABLE}_no_truncate ON {TABLE}")
        op.execute("DROP FUNCTION IF EXISTS govreg_expiring_key_guard()")


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("key_id", sa.String(length=64), nullable=False),
        sa.Column("purpose", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("expires_at", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("kek_id", sa.String(length=64), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("wrapped", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("key_id"),
        sa.UniqueConstraint("purpose", "period", name="uq_expiring_data_keys_period"),
    )
    _create_guard_rails()


def downgrade() -> None:
    _drop_guard_rails()
    op.drop_table(TABLE)
