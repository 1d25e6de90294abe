"""LightGBM, imported with its log lines routed through Python logging.

govreg imports LightGBM only through :func:`import_lightgbm`. It hands the
package's own messages to the ``lightgbm`` logger (``lightgbm.register_logger``)
and registers a callback for LightGBM's native log in the calling thread:
the native library keeps that callback per thread (``THREAD_LOCAL`` in its
``log.h``) and prints ``[LightGBM] [Info] ...`` raw to stdout in any thread
that has none, and the package registers one only for the thread that first
imports it (a web server's worker threads would have none). The ``lightgbm``
logger has a NullHandler, so nothing reaches stderr unless the application
configures logging; native warnings are logged at WARNING, the rest at INFO.

What this cannot route: LightGBM 4 writes a fatal error to stderr itself
before it raises, and threads of its own (OpenMP) have no callback. So govreg
lets LightGBM parse untrusted bytes only in a child process whose output is
discarded (:mod:`registry.model_probe`), after :mod:`core.model_text`.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import sys
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

from core.errors import ConfigError

LOGGER = logging.getLogger("lightgbm")

_lock = threading.Lock()
_thread = threading.local()
_state: dict[str, Any] = {}


def library_path() -> Path:
    """The native LightGBM library of the installed package, found without importing it.

    The places the package's own ``lightgbm/libpath.py`` looks, in its order.
    """
    spec = importlib.util.find_spec("lightgbm")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the lightgbm package is not installed")
    package = Path(next(iter(spec.submodule_search_locations)))
    if sys.platform == "win32":
        name = "lib_lightgbm.dll"
    elif sys.platform == "darwin":
        name = "lib_lightgbm.dylib"
    else:
        name = "lib_lightgbm.so"
    for folder in (package.parent, package / "bin", package / "lib"):
        if (folder / name).is_file():
            return folder / name
    raise ConfigError(f"LightGBM's native library {name} is not found beside {package}")


def _emit(line: str) -> None:
    level = logging.WARNING if line.startswith("[LightGBM] [Warning]") else logging.INFO
    LOGGER.log(level, "%s", line.rstrip())


def _native(message: bytes | None) -> None:
    """One piece of a native log line; LightGBM sends a line as prefix, text, newline."""
    text = (message or b"").decode("utf-8", "backslashreplace")
    parts: list[str] = getattr(_thread, "parts", None) or []
    _thread.parts = parts
    if text.strip():
        parts.append(text)
        return
    line = "".join(parts)
    parts.clear()
    if line:
        _emit(line)


def import_lightgbm() -> ModuleType:
    """The ``lightgbm`` module, with its log routed for this thread (see the module doc)."""
    import lightgbm

    if getattr(_thread, "routed", False):
        return lightgbm
    with _lock:
        if "library" not in _state:
            if not any(isinstance(h, logging.NullHandler) for h in LOGGER.handlers):
                LOGGER.addHandler(logging.NullHandler())
            lightgbm.register_logger(LOGGER)
            # The same file the package loaded: the dynamic loader hands back that handle.
            _state["library"] = ctypes.CDLL(str(library_path()))
            # Kept referenced for the life of the process: the library calls it.
            _state["callback"] = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(_native)
        library, callback = _state["library"], _state["callback"]
    if library.LGBM_RegisterLogCallback(callback) != 0:
        raise ConfigError("LightGBM refused govreg's log callback")
    _thread.routed = True
    return lightgbm
