"""Render a report's pages to PNG so a person can look at them.

python -m reports.render_pages report.pdf pages/      (pdftoppm -png -r 60)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path


def render_pages(pdf: Path, out_dir: Path, *, resolution: int = 60) -> list[Path]:
    tool = shutil.which("pdftoppm")
    if tool is None:
        raise SystemExit("pdftoppm not found: install poppler-utils")
    out_dir.mkdir(parents=True, exist_ok=True)
    # a fixed tool, paths given by the caller (ruff S603, bandit B603)
    subprocess.run(  # noqa: S603  # nosec B603
        [tool, "-png", "-r", str(resolution), str(pdf), str(out_dir / "page")], check=True
    )
    return sorted(out_dir.glob("page-*.png"))


if __name__ == "__main__":
    pages = render_pages(Path(sys.argv[1]), Path(sys.argv[2]))
    sys.stdout.write("\n".join(str(p) for p in pages) + "\n")
