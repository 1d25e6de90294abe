"""Run the migrations from code (``govreg init``, the tests)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Engine

HERE = Path(__file__).resolve().parent


def alembic_config(engine: Engine) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(HERE))
    # ConfigParser interpolates '%': escape it (URL-encoded passwords, ?options=...).
    url = engine.url.render_as_string(hide_password=False)
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _with_connection(
    engine: Engine, action: str, revision: str, attributes: Mapping[str, object] | None = None
) -> dict[str, object]:
    from alembic import command

    cfg = alembic_config(engine)
    cfg.attributes.update(attributes or {})
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, action)(cfg, revision)
        conn.commit()
    return dict(cfg.attributes)


def upgrade(
    engine: Engine, revision: str = "head", *, authenticator_key: bytes | None = None
) -> int:
    """Upgrade to ``revision``; the number of events given authenticators on the way
    (revision 0009 needs ``authenticator_key`` for a ledger that holds events)."""
    attributes = {} if authenticator_key is None else {"authenticator_key": authenticator_key}
    done = _with_connection(engine, "upgrade", revision, attributes)
    count = done.get("authenticated", 0)
    return count if isinstance(count, int) else 0


def downgrade(engine: Engine, revision: str) -> None:
    _with_connection(engine, "downgrade", revision)


def current(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        rev = MigrationContext.configure(conn).get_current_revision()
        conn.rollback()
    return rev


def check(engine: Engine) -> None:
    """Raise if the tables in code differ from what the migrations create."""
    from alembic import command

    cfg = alembic_config(engine)
    with engine.connect() as conn:
        cfg.attributes["connection"] = conn
        command.check(cfg)
        conn.rollback()
