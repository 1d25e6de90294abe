"""CLI start-up benchmark: what a command costs before it does its work.

Every figure is a median of ``--runs`` processes, printed next to the same run's
``python -c "import sqlalchemy"`` (the reference: every database command needs
SQLAlchemy), wall-clock and CPU (user + system of the child):

- ``govreg --help``;
- ``govreg versions list`` on a new home (settings, keys, engine, authentication
  with the principal vouch, one query);
- ``import`` of each heavy library ``evaluate`` loads for its gates (the fixed
  cost of an evaluation, before any data is read).

Each is measured twice: "compiled", with the bytecode ``make setup`` writes (the
installed packages at install, the project's modules by ``compileall``), and
"uncompiled", with no bytecode found (``PYTHONPYCACHEPREFIX`` set to an empty
folder and ``PYTHONDONTWRITEBYTECODE=1``): a virtual environment installed without
compiled bytecode where Python may not write it, as on many CI machines and
containers, where every process compiles every module it imports.

Run:  .venv/bin/python benchmarks/cli.py [--runs 5]
Target (2 cores): ``govreg versions list`` <= 1.5x the reference.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LIBRARIES = ("great_expectations", "lightgbm", "sklearn", "fairlearn", "aif360", "shap")


def _run(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _median(command: list[str], env: dict[str, str], runs: int) -> tuple[float, float]:
    _run(command, env)  # page cache
    samples = [_run(command, env) for _ in range(runs)]
    return (
        statistics.median(s[0] for s in samples),
        statistics.median(s[1] for s in samples),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--libraries", action=argparse.BooleanOptionalAction, default=True)
    args = parser.parse_args()
    python, govreg = str(BIN / "python"), str(BIN / "govreg")
    with tempfile.TemporaryDirectory(prefix="govreg-cli-bench-") as tmp:
        home = Path(tmp) / "home"
        base = {
            **os.environ,
            "GOVREG_HOME": str(home),
            "GOVREG_DATABASE_URL": f"sqlite:///{home / 'govreg.db'}",
        }
        base.pop("GOVREG_URL", None)
        subprocess.run([govreg, "init"], env=base, check=True, stdout=subprocess.DEVNULL)
        base["GOVREG_API_KEY"] = (home / "admin.key").read_text().strip()
        empty = Path(tmp) / "no-bytecode"
        empty.mkdir()
        conditions = {
            "compiled": {**base, "PYTHONDONTWRITEBYTECODE": "1"},
            "uncompiled": {
                **base,
                "PYTHONDONTWRITEBYTECODE": "1",
                "PYTHONPYCACHEPREFIX": str(empty),
            },
        }
        commands = {
            "govreg --help": [govreg, "--help"],
            "govreg versions list": [govreg, "versions", "list"],
        }
        if args.libraries:
            commands |= {f"import {lib}": [python, "-c", f"import {lib}"] for lib in LIBRARIES}
        for name, env in conditions.items():
            ref_wall, ref_cpu = _median([python, "-c", "import sqlalchemy"], env, args.runs)
            print(
                f"{name}: reference `import sqlalchemy` {ref_wall * 1000:.0f} ms wall, "
                f"{ref_cpu * 1000:.0f} ms CPU"
            )
            for label, command in commands.items():
                wall, cpu = _median(command, env, args.runs)
                print(
                    f"  {label:<26} {wall * 1000:6.0f} ms wall ({wall / ref_wall:4.2f}x), "
                    f"{cpu * 1000:6.0f} ms CPU ({cpu / ref_cpu:4.2f}x)"
                )


if __name__ == "__main__":
    main()
