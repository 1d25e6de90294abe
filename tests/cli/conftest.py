"""Fixtures of the CLI tests: see ``tests/registry/helpers.py``."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

KIT_MODULE = "govreg_test_kit"


def load_kit() -> ModuleType:
    """Import ``tests/registry/helpers.py`` once, under a name no other folder uses."""
    module = sys.modules.get(KIT_MODULE)
    if module is None:
        path = Path(__file__).resolve().parents[1] / "registry" / "helpers.py"
        spec = importlib.util.spec_from_file_location(KIT_MODULE, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[KIT_MODULE] = module
        spec.loader.exec_module(module)
    return module


_kit = load_kit()
inputs = _kit.inputs
kit = _kit.kit
sqlite_kit = _kit.sqlite_kit
