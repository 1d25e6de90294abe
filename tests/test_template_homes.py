"""The tests' homes are copies of a template home (tests/govreg_homes.py): a copy must
be what ``init_home`` makes, in its own folder and database, and isolated from the
template and from the other copies."""

from __future__ import annotations

import contextlib
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from govreg_homes import (
    Home,
    discard_templates,
    make_home,
    postgres_reason,
    postgres_schema,
    template_home,
)

FILES = {
    "admin.key": 0o600,
    "keys/kek.json": 0o600,
    "keys/checkpoint.key": 0o600,
    "keys/checkpoint.pub": 0o644,
    "anchors/checkpoint-000000000003.txt": 0o644,
}


def _files(root: Path) -> dict[str, int]:
    return {
        p.relative_to(root).as_posix(): stat.S_IMODE(p.stat().st_mode)
        for p in root.rglob("*")
        if p.is_file()
    }


def _tables(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, sorted (the schema's whole content)."""
    from sqlalchemy import MetaData, select

    from core.db import make_engine

    engine = make_engine(url)
    try:
        meta = MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            return {
                name: sorted(tuple(row) for row in conn.execute(select(table)))
                for name, table in sorted(meta.tables.items())
            }
    finally:
        engine.dispose()


def _verify(home: Home) -> Any:
    from audits.signing import load_public_key

    ctx = home.context()
    try:
        return ctx.registry.verify(
            None,
            load_public_key(ctx.settings.public_key_path),
            anchor_dir=ctx.settings.anchors_path,
        )
    finally:
        ctx.close()


def _add_principal(home: Home, name: str) -> None:
    ctx = home.context()
    try:
        admin = ctx.registry.authenticate(home.admin_key)
        ctx.registry.create_principal(admin, name, "auditor")
    finally:
        ctx.close()


def _fresh(tmp_path: Path, database_url: str) -> Home:
    """A home initialised from scratch (the reference a copy must equal)."""
    from govreg.context import init_home
    from govreg.settings import Settings

    init_home(Settings(home=tmp_path / "fresh", database_url=database_url))
    key = (tmp_path / "fresh" / "admin.key").read_text().strip()
    return Home(tmp_path / "fresh", database_url, key, {})


@contextlib.contextmanager
def _database(backend: str, root: Path, name: str = "govreg.db") -> Iterator[str]:
    """A new SQLite file's URL, or an empty PostgreSQL schema's (dropped after)."""
    if backend == "postgresql":
        with postgres_schema() as url:
            yield url
    else:
        yield f"sqlite:///{root / name}"


def _template_url(backend: str) -> str:
    template = template_home(backend)
    if backend == "sqlite":
        return f"sqlite:///{template.database}"
    from govreg_homes import _schema_url

    return _schema_url(template.database)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_a_copy_is_the_template_in_its_own_folder_and_database(
    tmp_path: Path, backend: str
) -> None:
    if backend == "postgresql" and postgres_reason():
        pytest.skip(postgres_reason() or "")
    template = template_home(backend)
    with _database(backend, tmp_path) as url:
        home = make_home(tmp_path / "home", url)
        # its own folder, laid out as init_home lays it out, secrets 0600
        assert home.path == tmp_path / "home"
        assert _files(home.path) == FILES
        assert stat.S_IMODE(home.path.stat().st_mode) == 0o700
        assert stat.S_IMODE((home.path / "keys").stat().st_mode) == 0o700
        # the template's keys and bootstrap: the same admin key, the same rows
        assert home.admin_key == (template.home / "admin.key").read_text().strip()
        template_rows = _tables(_template_url(backend))
        assert _tables(url) == template_rows
        report = _verify(home)
        assert (report.size, report.checkpoints, report.anchors) == (3, 1, 1)
        # a write to the copy stays in the copy
        _add_principal(home, "auditor-1")
        assert _tables(_template_url(backend)) == template_rows
        names = [row[0] for row in _tables(url)["principals"]]
        assert sorted(names) == ["admin", "auditor-1"]
        assert _verify(home).size == 5  # the person and the principal


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def test_a_copy_has_the_schema_and_rows_init_home_makes(tmp_path: Path, backend: str) -> None:
    """Same tables and columns and as many rows per table as a home made from
    scratch (its rows differ: its own keys, times and hashes)."""
    if backend == "postgresql" and postgres_reason():
        pytest.skip(postgres_reason() or "")
    from sqlalchemy import MetaData

    from core.db import make_engine

    def columns(url: str) -> dict[str, list[tuple[str, str, bool]]]:
        engine = make_engine(url)
        try:
            meta = MetaData()
            meta.reflect(engine)
            return {
                name: [(c.name, str(c.type), bool(c.nullable)) for c in table.columns]
                for name, table in sorted(meta.tables.items())
            }
        finally:
            engine.dispose()

    with (
        _database(backend, tmp_path, "fresh.db") as fresh,
        _database(backend, tmp_path) as copied,
    ):
        _fresh(tmp_path, fresh)
        make_home(tmp_path / "home", copied)
        assert columns(copied) == columns(fresh)
        counts = {name: len(rows) for name, rows in _tables(copied).items()}
        assert counts == {name: len(rows) for name, rows in _tables(fresh).items()}
        assert counts["ledger_events"] == 3
        assert counts["principals"] == 1


@pytest.mark.postgres
def test_postgresql_copy_keeps_the_append_only_triggers(tmp_path: Path) -> None:
    """The replayed schema has the ledger's guard: an UPDATE of an event is refused."""
    import psycopg

    with postgres_schema() as url:
        make_home(tmp_path / "home", url)
        schema = url.rsplit("%3D", 1)[1]
        conninfo = url.split("?")[0].replace("postgresql+psycopg://", "postgresql://")
        with (
            psycopg.connect(conninfo, options=f"-csearch_path={schema}") as conn,
            pytest.raises(psycopg.errors.RaiseException, match="ledger_events is append-only"),
        ):
            conn.execute("UPDATE ledger_events SET actor = 'x'")


def test_two_copies_do_not_share_state(tmp_path: Path) -> None:
    first = make_home(tmp_path / "a" / "home", f"sqlite:///{tmp_path / 'a.db'}")
    second = make_home(tmp_path / "b" / "home", f"sqlite:///{tmp_path / 'b.db'}")
    _add_principal(first, "auditor-1")
    assert _verify(first).size == 5
    assert _verify(second).size == 3
    assert (first.path / "keys" / "kek.json").read_bytes() == (
        second.path / "keys" / "kek.json"
    ).read_bytes()


def test_an_existing_folder_or_database_is_initialised_not_copied(tmp_path: Path) -> None:
    """Where a copy cannot be made (the folder exists, the SQLite file exists, the
    URL has options) make_home runs init_home: a home with its own admin key."""
    template_key = (template_home("sqlite").home / "admin.key").read_text().strip()
    (tmp_path / "one").mkdir()
    existing_folder = make_home(tmp_path / "one", f"sqlite:///{tmp_path / 'one.db'}")
    (tmp_path / "two.db").write_bytes(b"")
    existing_file = make_home(tmp_path / "two", f"sqlite:///{tmp_path / 'two.db'}")
    with_options = make_home(tmp_path / "three", f"sqlite:///{tmp_path / 'three.db'}?timeout=5")
    keys = {existing_folder.admin_key, existing_file.admin_key, with_options.admin_key}
    assert len(keys) == 3
    assert template_key not in keys
    for home in (existing_folder, existing_file, with_options):
        assert _verify(home).size == 3


@pytest.mark.postgres
def test_a_schema_with_tables_is_initialised_not_copied(tmp_path: Path) -> None:
    import psycopg

    template_key = (template_home("postgresql").home / "admin.key").read_text().strip()
    with postgres_schema() as url:
        schema = url.rsplit("%3D", 1)[1]
        conninfo = url.split("?")[0].replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(conninfo, options=f"-csearch_path={schema}") as conn:
            conn.execute("CREATE TABLE unrelated (x integer)")
        home = make_home(tmp_path / "home", url)
        assert home.admin_key != template_key
        assert _verify(home).size == 3


@pytest.mark.postgres
def test_discard_removes_the_template_folders_and_schema(tmp_path: Path) -> None:
    import psycopg
    from govreg_homes import _conninfo

    template_home("sqlite")
    schema = template_home("postgresql").database
    folders = [template_home(b).home for b in ("sqlite", "postgresql")]
    assert all(f.is_dir() for f in folders)
    discard_templates()
    assert not any(f.exists() for f in folders)
    with psycopg.connect(_conninfo()) as conn:
        found = conn.execute(
            "SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,)
        ).fetchone()
    assert found == (0,)
    # the next home builds a new template
    home = make_home(tmp_path / "home", f"sqlite:///{tmp_path / 'govreg.db'}")
    assert template_home("sqlite").home not in folders
    assert home.admin_key == (template_home("sqlite").home / "admin.key").read_text().strip()
