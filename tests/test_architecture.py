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
