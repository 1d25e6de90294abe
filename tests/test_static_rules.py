"""Static security rules the scanners cannot state.

bandit's B608 (SQL built from strings) is skipped in ``pyproject.toml``
because every statement here is an f-string over table and column names.
This rule is the stricter replacement: every f-string whose text is SQL may
interpolate only module constants (UPPER_CASE names) or one of the reviewed
expressions below, so a value reaching a statement by interpolation, rather
than as a bound parameter, fails the suite.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("audits", "core", "govreg", "registry", "reports", "serving", "validation")
SCANNED = (*PACKAGES, "migrations")
SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE|DROP|ALTER|TRUNCATE)\b")
CONSTANT = re.compile(r"_?[A-Z][A-Z0-9_]*")

# (file, interpolated expression): why it cannot carry a value
REVIEWED = {
    ("audits/ledger.py", "', '.join([mark] * 13)"): "bind-parameter placeholders",
    ("audits/ledger.py", "mark"): "a bind-parameter placeholder ('?' or '%s')",
    ("audits/parallel.py", "mark"): "a bind-parameter placeholder ('?' or '%s')",
    ("audits/parallel.py", "', '.join([mark] * len(types))"): "bind-parameter placeholders",
    ("migrations/versions/0008_ledger_tree_nodes.py", "mark"): "a bind-parameter placeholder",
    ("migrations/versions/0008_ledger_tree_nodes.py", "action"): "a loop over two literals",
    ("migrations/versions/0008_ledger_tree_nodes.py", "action.lower()"): "a loop over two literals",
    ("serving/decisions.py", "', '.join([mark] * len(_COLUMNS))"): "bind-parameter placeholders",
    ("serving/decisions.py", "where"): "fixed clauses joined by decisions(); values bound",
    **{
        (f"migrations/versions/{name}", expr): "a loop over the module's constant tuples"
        for name in (
            "0001_initial_schema_ledger_and_registry.py",
            "0003_decision_log.py",
        )
        for expr in ("table", "action", "action.lower()")
    },
    ("migrations/versions/0004_expiring_data_keys.py", "changed"): "column names of FIXED",
}


def interpolations(source: str) -> list[tuple[int, str]]:
    """(line, expression) of each non-constant value interpolated into SQL text."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.JoinedStr):
            continue
        text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
        if not SQL.search(text):
            continue
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                expr = ast.unparse(value.value)
                if not CONSTANT.fullmatch(expr):
                    found.append((node.lineno, expr))
    return found


def test_sql_interpolates_only_constants() -> None:
    unreviewed = []
    seen = set()
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for line, expr in interpolations(path.read_text(encoding="utf-8")):
                seen.add((rel, expr))
                if (rel, expr) not in REVIEWED:
                    unreviewed.append(f"{rel}:{line}: {{{expr}}}")
    assert unreviewed == []
    assert set(REVIEWED) - seen == set()  # no stale exception


def test_the_rule_catches_a_value_interpolated_into_sql() -> None:
    source = (
        "TABLE = 'principals'\n"
        "def find(conn, name):\n"
        "    return conn.execute(f\"SELECT * FROM {TABLE} WHERE name = '{name}'\")\n"
        "def count(conn):\n"
        "    return conn.execute(f'SELECT count(*) FROM {TABLE}')\n"
        "def label(name):\n"
        "    return f'hello {name}'\n"
    )
    assert interpolations(source) == [(3, "name")]


def test_bandit_finds_nothing_with_its_reviewed_skips() -> None:
    bandit = Path(sys.executable).with_name("bandit")
    result = subprocess.run(
        [str(bandit), "-q", "-c", "pyproject.toml", "-r", *SCANNED],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")


def test_serving_and_reports_name_no_ledger_table() -> None:
    """Serving and reports read the ledger through audits.ledger (the import-linter
    contract forbids audits.tables); nor may they spell a ledger table's name."""
    import audits.tables as tables

    names = {v for k, v in vars(tables).items() if k.endswith("_TABLE")}
    assert names == {
        "ledger_events",
        "ledger_checkpoints",
        "ledger_tree_nodes",
        "ledger_data_keys",
        "expiring_data_keys",
    }
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for package in ("serving", "reports")
        for path in sorted((ROOT / package).rglob("*.py"))
        for name in sorted(names)
        if re.search(rf"\b{name}\b", path.read_text())
    ]
    assert found == []
