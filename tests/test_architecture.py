"""The package graph and start-up promises of ARCHITECTURE.md and the README."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = (
    "lightgbm",
    "sklearn",
    "fairlearn",
    "aif360",
    "shap",
    "great_expectations",
    "mlflow",
    "weasyprint",
    "pandas",
    "numpy",
    "sqlalchemy",
    "sqlmodel",
    "cryptography",
    "fastapi",
)


def test_import_linter_contract_is_kept() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--config", str(ROOT / "pyproject.toml")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 5 kept, 0 broken." in result.stdout


def test_help_imports_no_heavy_library() -> None:
    """`govreg --help` loads click and the CLI module only (fast start-up)."""
    code = (
        "import sys\n"
        "from govreg.cli import cli\n"
        "try:\n"
        "    cli(['--help'], prog_name='govreg')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"heavy = {HEAVY!r}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & set(heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"


CLI_MODULES = sorted(p.stem for p in (ROOT / "govreg" / "cli").glob("*.py"))


def test_the_cli_package_holds_the_command_families() -> None:
    assert CLI_MODULES == [
        "__init__",
        "audit",
        "core",
        "demo",
        "evidence",
        "home",
        "keys",
        "mirror",
        "people",
        "policy",
        "serve",
        "versions",
    ]


def test_no_cli_module_imports_a_heavy_library() -> None:
    """Each module of govreg/cli, imported alone, imports click, the standard library
    and light govreg modules only; the commands import what they need."""
    for name in CLI_MODULES:
        module = "govreg.cli" if name == "__init__" else f"govreg.cli.{name}"
        code = (
            "import sys\n"
            f"import {module}\n"
            f"heavy = {HEAVY!r}\n"
            f"print({name!r}, sorted({{m.split('.')[0] for m in sys.modules}} & set(heavy)))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
        )
        assert result.stdout.splitlines() == [f"{name} []"]


def test_no_cli_command_branches_on_local_or_remote() -> None:
    """The CLI asks its Session (or the home, for a command that runs only there);
    it never tells the local home from the server's client itself."""
    import ast

    found = []
    for path in sorted((ROOT / "govreg" / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "govreg.client":
                found.append(f"{path.name}: imports govreg.client")
            elif isinstance(node, ast.Name) and node.id in {"RemoteContext", "RemoteRegistry"}:
                found.append(f"{path.name}: {node.id}")
            elif isinstance(node, ast.Attribute) and node.attr == "remote":
                found.append(f"{path.name}: .remote")
            elif isinstance(node, ast.Constant) and node.value == "remote":
                found.append(f"{path.name}: 'remote'")
    assert found == []


def test_lower_packages_import_no_heavy_library_at_module_level() -> None:
    code = (
        "import sys\n"
        "import audits.ledger, audits.verify, policies.loader, registry.inputs\n"
        "import validation.runner, validation.fairness, validation.performance\n"
        "heavy = {'lightgbm', 'sklearn', 'fairlearn', 'aif360', 'shap', 'great_expectations',"
        " 'mlflow', 'weasyprint', 'pandas'}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & heavy))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "[]"
