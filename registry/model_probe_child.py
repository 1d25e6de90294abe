"""The child side of :mod:`registry.model_probe`; run as a script, never imported.

``python -I -S model_probe_child.py LIBRARY`` reads a model's bytes on stdin,
loads them with LightGBM's C API (``LIBRARY`` is the package's native
library; only the standard library is imported here, so the child starts in
milliseconds), scores two rows (zeros, then missing values) so every tree is
walked once, and writes one JSON object to the stdout it was given:
``{"loaded": true, "features": [...], "num_trees": N, "num_class": K}``, or
``{"loaded": false, "error": "..."}`` when LightGBM refuses the model. Before
anything else it points its own stdout and stderr at /dev/null, so whatever
LightGBM prints (its fatal errors go straight to stderr) goes nowhere.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import sys

_DTYPE_FLOAT64 = 1  # C_API_DTYPE_FLOAT64
_PREDICT_NORMAL = 0  # C_API_PREDICT_NORMAL
_BASE_MEMORY = 2 * 1024**3


def _error(library: ctypes.CDLL) -> str:
    library.LGBM_GetLastError.restype = ctypes.c_char_p
    raw: bytes = library.LGBM_GetLastError() or b""
    return raw[:200].decode("utf-8", "backslashreplace")


def _feature_names(library: ctypes.CDLL, handle: ctypes.c_void_p, count: int) -> list[str]:
    size = 256
    while True:
        buffers = [ctypes.create_string_buffer(size) for _ in range(count)]
        pointers = (ctypes.c_char_p * count)(*(ctypes.cast(b, ctypes.c_char_p) for b in buffers))
        got, needed = ctypes.c_int(0), ctypes.c_size_t(0)
        if library.LGBM_BoosterGetFeatureNames(
            handle,
            ctypes.c_int(count),
            ctypes.byref(got),
            ctypes.c_size_t(size),
            ctypes.byref(needed),
            pointers,
        ):
            raise RuntimeError(_error(library))
        if needed.value <= size:
            return [b.value.decode("utf-8") for b in buffers[: got.value]]
        size = needed.value


def probe(library: ctypes.CDLL, data: bytes) -> dict[str, object]:
    handle = ctypes.c_void_p()
    iterations = ctypes.c_int(0)
    if library.LGBM_BoosterLoadModelFromString(
        ctypes.c_char_p(data), ctypes.byref(iterations), ctypes.byref(handle)
    ):
        return {"loaded": False, "error": _error(library)}
    num_class, num_features, num_trees = ctypes.c_int(0), ctypes.c_int(0), ctypes.c_int(0)
    for call, out in (
        (library.LGBM_BoosterGetNumClasses, num_class),
        (library.LGBM_BoosterGetNumFeature, num_features),
        (library.LGBM_BoosterNumberOfTotalModel, num_trees),
    ):
        if call(handle, ctypes.byref(out)):
            return {"loaded": False, "error": _error(library)}
    columns = num_features.value
    rows = (ctypes.c_double * (2 * columns))(*([0.0] * columns + [float("nan")] * columns))
    result = (ctypes.c_double * (2 * max(num_class.value, 1)))()
    written = ctypes.c_int64(0)
    if library.LGBM_BoosterPredictForMat(
        handle,
        rows,
        ctypes.c_int(_DTYPE_FLOAT64),
        ctypes.c_int32(2),
        ctypes.c_int32(columns),
        ctypes.c_int(1),
        ctypes.c_int(_PREDICT_NORMAL),
        ctypes.c_int(0),
        ctypes.c_int(-1),
        ctypes.c_char_p(b""),
        ctypes.byref(written),
        result,
    ):
        return {"loaded": False, "error": _error(library)}
    names = _feature_names(library, handle, columns)
    library.LGBM_BoosterFree(handle)
    return {
        "loaded": True,
        "features": names,
        "num_trees": num_trees.value,
        "num_class": num_class.value,
    }


def main() -> int:
    answer = os.fdopen(os.dup(1), "w", encoding="utf-8")
    sink = os.open(os.devnull, os.O_WRONLY)
    os.dup2(sink, 1)
    os.dup2(sink, 2)
    data = sys.stdin.buffer.read()
    # A backstop only: the structural check already bounds what LightGBM allocates.
    limit = _BASE_MEMORY + 16 * len(data)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    library = ctypes.CDLL(sys.argv[1])
    json.dump(probe(library, data), answer)
    answer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
