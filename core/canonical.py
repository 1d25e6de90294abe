"""Canonical JSON (RFC 8785) for everything that is hashed or signed.

Hashed structures hold only strings, integers, booleans, ``None``, lists and
objects with string keys; floats are refused (write them as decimal strings).
For such values RFC 8785 equals ``json.dumps`` with sorted keys, no
whitespace and no ASCII escaping, provided keys sort the same by UTF-16 code
units as by code points, which holds for keys in the Basic Multilingual
Plane. The fast path below is checked against the ``rfc8785`` package in the
tests (an oracle test) and falls back to it for other keys.
"""

from __future__ import annotations

import json
from typing import Any

_MAX_SAFE_INT = 2**53 - 1


def _check(value: Any) -> bool:
    """Raise on floats and out-of-range integers; return True if all keys are BMP."""
    bmp = True
    stack = [value]
    while stack:
        item = stack.pop()
        if item is None or isinstance(item, (str, bool)):
            continue
        if isinstance(item, int):
            if abs(item) > _MAX_SAFE_INT:
                raise ValueError(
                    f"integer {item} is outside the I-JSON range; write it as a string"
                )
            continue
        if isinstance(item, float):
            raise ValueError(f"float {item!r} in hashed data; write it as a decimal string")
        if isinstance(item, dict):
            for key, sub in item.items():
                if not isinstance(key, str):
                    raise ValueError(f"object key {key!r} is not a string")
                if bmp and not key.isascii() and any(ord(ch) > 0xFFFF for ch in key):
                    bmp = False
                stack.append(sub)
            continue
        if isinstance(item, (list, tuple)):
            stack.extend(item)
            continue
        raise ValueError(f"{type(item).__name__} is not JSON data")
    return bmp


def canonical_bytes(value: Any) -> bytes:
    """RFC 8785 canonical UTF-8 bytes of ``value`` (no floats)."""
    if _check(value):
        return json.dumps(
            value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        ).encode("utf-8")
    import rfc8785

    return rfc8785.dumps(value)
