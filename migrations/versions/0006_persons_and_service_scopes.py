"""persons and service scopes

Sign-offs count persons, not principal names: a ``persons`` table (a person
record, created by an admin through a ``person.created`` ledger event), the
person of every principal and of every sign-off, and a service principal's
model scope (NULL: unscoped, every model).

Earlier principals were recorded without a person: each becomes a person of
its own name, created when and by whom the principal was, exactly what the
ledger replay gives for a ``principal.created`` event that names no person, so
old ledgers keep verifying and the tables stay equal to the replay. Earlier
sign-offs are their principal's.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "persons",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("display", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.String(length=32), nullable=False),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.add_column("principals", sa.Column("person", sa.String(length=200), nullable=True))
    op.add_column("principals", sa.Column("models", sa.Text(), nullable=True))
    op.add_column("signoffs", sa.Column("person", sa.String(length=200), nullable=True))
    op.execute(
        "INSERT INTO persons (id, display, created_at, created_by) "
        "SELECT name, name, created_at, created_by FROM principals"
    )
    op.execute("UPDATE principals SET person = name")
    op.execute("UPDATE signoffs SET person = principal")
    with op.batch_alter_table("principals", schema=None) as batch_op:
        batch_op.alter_column("person", existing_type=sa.String(length=200), nullable=False)
        batch_op.create_index(batch_op.f("ix_principals_person"), ["person"], unique=False)
    with op.batch_alter_table("signoffs", schema=None) as batch_op:
        batch_op.alter_column("person", existing_type=sa.String(length=200), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("signoffs", schema=None) as batch_op:
        batch_op.drop_column("person")
    with op.batch_alter_table("principals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_principals_person"))
        batch_op.drop_column("models")
        batch_op.drop_column("person")
    op.drop_table("persons")
