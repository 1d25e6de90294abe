"""Fixtures of the CLI tests: see ``tests/registry/helpers.py``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

TESTS = Path(__file__).resolve().parents[1]


def load(name: str, path: Path) -> ModuleType:
    """Import ``path`` once as module ``name`` (a name no other folder uses)."""
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


_kit = load("govreg_test_kit", TESTS / "registry" / "helpers.py")
inputs = _kit.inputs
kit = _kit.kit
sqlite_kit = _kit.sqlite_kit
