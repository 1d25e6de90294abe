"""Versions of the libraries a gate used, read from package metadata (no import)."""

from __future__ import annotations

from functools import cache


@cache
def _version(distribution: str) -> str:
    from importlib import metadata  # ~0.1 s to import: only when a gate reports

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def library_versions(*distributions: str) -> dict[str, str]:
    """``{distribution: version}`` for the named distributions, always with numpy."""
    names = sorted({"numpy", *distributions})
    return {name: _version(name) for name in names}
