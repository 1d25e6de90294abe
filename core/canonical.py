"""Canonical JSON (RFC 8785) for everything that is hashed or signed.

Hashed structures hold only strings, integers, booleans, ``None``, lists and
objects with string keys; :func:`canonical_bytes` refuses floats (write them
as decimal strings). For such values RFC 8785 equals ``json.dumps`` with
sorted keys, no whitespace and no ASCII escaping, provided keys sort the same
by UTF-16 code units as by code points, which holds for keys in the Basic
Multilingual Plane. The fast path below is checked against the ``rfc8785``
package in the tests (an oracle test) and falls back to it for other keys.

A flat row of scalars, floats included (a scored applicant's inputs), is
written by hand: :func:`canonical_row`, with :func:`scalar_text` for one
value and :func:`number_text` for a float (``json.dumps`` writes floats as
``repr`` does, ``1.0`` and ``1e-07``, where RFC 8785 wants ECMAScript's
``1`` and ``1e-7``). :func:`check_scalar` tells which values they take. They
are checked against ``rfc8785`` in the tests too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from json.encoder import encode_basestring
from typing import Any

from core.errors import InputError

__all__ = ["canonical_bytes", "canonical_row", "check_scalar", "number_text", "scalar_text"]

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


# -- flat rows of scalars, floats included, written by hand ---------------------------------
def check_scalar(value: Any, what: str) -> None:
    """Raise :class:`InputError` naming ``what`` unless ``value`` is a JSON scalar
    :func:`scalar_text` can write: ``None``, a bool, valid Unicode text, an integer
    within the I-JSON range or a finite float."""
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, str):
        if not value.isascii():
            try:
                value.encode()
            except UnicodeEncodeError as exc:
                raise InputError(f"{what} is not valid Unicode") from exc
        return
    if isinstance(value, int):
        if abs(value) > _MAX_SAFE_INT:
            raise InputError(f"{what}: integer outside the I-JSON range")
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InputError(f"{what} is {value}, not a finite number")
        return
    raise InputError(
        f"{what}: {type(value).__name__} is not a JSON scalar (str, int, float, bool or None)"
    )


def number_text(value: float) -> str:
    """A finite float as ECMAScript's Number::toString writes it (RFC 8785 section 3.2.2.3).

    Python's ``repr`` gives the shortest digits that round-trip, as ECMAScript
    does; only their layout differs.
    """
    if value == 0:
        return "0"  # also -0.0
    sign = "-" if value < 0 else ""
    mantissa, _, exp = repr(abs(value)).partition("e")
    whole, _, frac = mantissa.partition(".")
    all_digits = whole + frac
    digits = all_digits.lstrip("0")
    # value = 0.<digits> * 10**n
    n = len(whole) + (int(exp) if exp else 0) - (len(all_digits) - len(digits))
    digits = digits.rstrip("0")
    k = len(digits)
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    exponent = f"e{'+' if e >= 0 else '-'}{abs(e)}"
    if k == 1:
        return sign + digits + exponent
    return sign + digits[0] + "." + digits[1:] + exponent


def scalar_text(value: Any) -> str:
    """RFC 8785 text of a JSON scalar (one :func:`check_scalar` accepts)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return encode_basestring(value)
    if isinstance(value, int):
        return str(value)
    return number_text(float(value))


def canonical_row(row: Mapping[str, Any]) -> bytes:
    """RFC 8785 bytes of a flat object: string keys, scalar values (str, int, float,
    bool, None; see :func:`check_scalar`), such as an applicant row.

    Hand-written for speed (a third of ``rfc8785.dumps``); the tests check it
    against ``rfc8785`` on random rows. Keys outside the Basic Multilingual
    Plane sort differently by UTF-16 code units: those rows go to ``rfc8785``.
    """
    if any(not key.isascii() and any(ord(ch) > 0xFFFF for ch in key) for key in row):
        import rfc8785

        data: bytes = rfc8785.dumps(dict(row))
        return data
    parts = [f"{encode_basestring(key)}:{scalar_text(row[key])}" for key in sorted(row)]
    return ("{" + ",".join(parts) + "}").encode()
