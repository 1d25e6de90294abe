"""Oracle test: core.canonical equals rfc8785.dumps.

Random JSON documents (no floats) come from ``random.Random(seed)`` over many
seeds: nested objects and arrays, control characters, escapes, non-ASCII,
astral-plane keys and strings (whose UTF-16 order differs from code point
order), booleans, null and integers up to the I-JSON limit. The hand-written
flat-row, scalar and number encoders (floats included) are checked on random
rows and fuzzed (hypothesis); the hand-written envelope and associated-data
encoders of the ledger are checked against the same oracle.
"""

from __future__ import annotations

import base64
import random
import re
from typing import Any

import pytest
import rfc8785
from hypothesis import given
from hypothesis import strategies as st

from audits.ledger import associated_data, envelope_bytes
from core.canonical import canonical_bytes, canonical_row, check_scalar, number_text, scalar_text
from core.errors import InputError

MAX = 2**53 - 1
SEEDS = range(1500)

CONTROL = [chr(c) for c in range(0x20)] + ["\x7f"] + [chr(c) for c in range(0x80, 0xA0)]
ESCAPES = ['"', "\\", "/", "\b", "\f", "\n", "\r", "\t"]
BMP = [
    "é",
    "ß",
    "ü",
    "Å",
    "中",
    "文",
    "ا",
    "ש",
    "\u0301",  # combining acute
    "\u00a0",
    "\u2028",
    "\u2029",
    "\u20ac",
    "\ue000",  # private use, just above the surrogates
    "\ufb01",
    "\ufeff",
    "\uff41",
    "\ufffd",
    "\uffff",
]
ASTRAL = ["\U00010000", "\U0001d11e", "\U0001f600", "\U0001f1e6", "\U0010ffff", "\U00020000"]
INTS = [0, 1, -1, 7, -42, 255, 2**31, -(2**31), 2**32 + 1, MAX, -MAX, MAX - 1, 10**15]


def _char(rng: random.Random) -> str:
    pick = rng.random()
    if pick < 0.45:
        return chr(rng.randint(0x20, 0x7E))
    if pick < 0.55:
        return rng.choice(CONTROL)
    if pick < 0.62:
        return rng.choice(ESCAPES)
    if pick < 0.75:
        return rng.choice(BMP)
    if pick < 0.82:  # anywhere in the BMP but the surrogates
        code = rng.randint(0xA0, 0xFFFD)
        return chr(code) if not 0xD800 <= code <= 0xDFFF else "\ud7ff"
    if pick < 0.92:
        return rng.choice(ASTRAL)
    return chr(rng.randint(0x10000, 0x10FFFF))


def _string(rng: random.Random, longest: int = 10) -> str:
    return "".join(_char(rng) for _ in range(rng.randint(0, longest)))


def _key(rng: random.Random, astral: bool = True) -> str:
    pick = rng.random()
    if pick < 0.3:  # short keys sharing prefixes: ordering of "a" < "ab" < "a\uff41" ...
        parts = ["", "b", "\uff41", "\U0001f600" if astral else "\ue000", "\x00"]
        return "a" + "".join(rng.choice(parts) for _ in "ab")
    key = _string(rng, 6)
    return key if astral else "".join(ch if ch <= "\uffff" else "\ufb01" for ch in key)


def _int(rng: random.Random) -> int:
    if rng.random() < 0.4:
        return rng.choice(INTS)
    return rng.randint(-MAX, MAX) >> rng.randint(0, 52)


def _value(rng: random.Random, depth: int, astral: bool = True) -> Any:
    kinds = ["null", "bool", "int", "str"] + (["list", "dict"] * 2 if depth < 4 else [])
    kind = rng.choice(kinds)
    if kind == "null":
        return None
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return _int(rng)
    if kind == "str":
        return _string(rng)
    if kind == "list":
        return [_value(rng, depth + 1, astral) for _ in range(rng.randint(0, 5))]
    return {_key(rng, astral): _value(rng, depth + 1, astral) for _ in range(rng.randint(0, 6))}


def _keys(value: Any) -> Any:
    if isinstance(value, dict):
        for key, sub in value.items():
            yield key
            yield from _keys(sub)
    elif isinstance(value, list):
        for sub in value:
            yield from _keys(sub)


def test_equals_rfc8785_on_random_documents() -> None:
    astral_keys = bmp_only = 0
    for seed in SEEDS:
        rng = random.Random(seed)
        astral = seed % 2 == 1  # even seeds: BMP keys only (astral strings still appear)
        document = {_key(rng, astral): _value(rng, 1, astral) for _ in range(rng.randint(1, 6))}
        expected = rfc8785.dumps(document)
        assert canonical_bytes(document) == expected, f"seed {seed}"
        if any(ord(ch) > 0xFFFF for key in _keys(document) for ch in key):
            astral_keys += 1  # the fallback path
        else:
            bmp_only += 1  # the json.dumps fast path
    # both code paths were exercised many times
    assert astral_keys > 300
    assert bmp_only > 300


def test_equals_rfc8785_on_random_scalars_and_arrays() -> None:
    for seed in range(10_000, 10_500):
        value = _value(random.Random(seed), 3)
        assert canonical_bytes(value) == rfc8785.dumps(value), f"seed {seed}"


def test_utf16_key_order_differs_from_code_point_order() -> None:
    document = {"\uff41": 1, "\U0001f600": 2, "\ue000": 3, "a": 4, "\u00e9": 5, "": 6}
    # UTF-16: "" < "a" < "é" < U+D83D U+DE00 (the emoji) < U+E000 < U+FF41
    expected = '{"":6,"a":4,"é":5,"😀":2,"\ue000":3,"ａ":1}'.encode()
    assert rfc8785.dumps(document) == expected
    assert canonical_bytes(document) == expected
    # with BMP keys only, code point order is UTF-16 order (the fast path)
    bmp = {"\uff41": 1, "\ue000": 3, "a": 4}
    assert canonical_bytes(bmp) == '{"a":4,"\ue000":3,"ａ":1}'.encode()


def test_escapes_are_those_of_rfc8785() -> None:
    value = '"\\/\b\f\n\r\t\x00\x1f\x7f\u2028é😀'
    expected = b'"\\"\\\\/\\b\\f\\n\\r\\t\\u0000\\u001f\x7f\xe2\x80\xa8\xc3\xa9\xf0\x9f\x98\x80"'
    assert canonical_bytes(value) == expected == rfc8785.dumps(value)


def test_integer_limits() -> None:
    assert canonical_bytes([MAX, -MAX]) == b"[9007199254740991,-9007199254740991]"
    assert canonical_bytes([True, False, None, 0]) == b"[true,false,null,0]"
    for big in (MAX + 1, -(MAX + 1), 2**64, -(2**100)):
        for holder in (big, [big], {"a": {"b": [1, big]}}):
            message = f"integer {big} is outside the I-JSON range; write it as a string"
            with pytest.raises(ValueError, match=re.escape(message)) as info:
                canonical_bytes(holder)
            assert str(info.value) == message


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.5, "1.5"),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (1e308, "1e+308"),
        (float("nan"), "nan"),
        (float("inf"), "inf"),
        (1.0, "1.0"),
    ],
)
def test_floats_are_refused(value: float, text: str) -> None:
    for holder in (value, [1, value], {"a": {"b": [value]}}, {"k": "v", "n": value}):
        message = f"float {text} in hashed data; write it as a decimal string"
        with pytest.raises(ValueError, match=re.escape(message)) as info:
            canonical_bytes(holder)
        assert str(info.value) == message


def test_other_non_json_values_are_refused() -> None:
    cases = [
        ({1: "a"}, "object key 1 is not a string"),
        ({("a",): 1}, "object key ('a',) is not a string"),
        ({"a": {1, 2}}, "set is not JSON data"),
        ([b"bytes"], "bytes is not JSON data"),
    ]
    for value, message in cases:
        with pytest.raises(ValueError, match=re.escape(message)) as info:
            canonical_bytes(value)
        assert str(info.value) == message
    for lone in ("\ud800", {"\udfff": 1}):  # lone surrogates are not Unicode text
        with pytest.raises(ValueError, match=r"non-UTF-8|surrogates not allowed"):
            rfc8785.dumps(lone)
        with pytest.raises(UnicodeEncodeError) as err:
            canonical_bytes(lone)
        assert err.value.reason == "surrogates not allowed"


def test_ledger_envelope_and_associated_data_equal_rfc8785() -> None:
    """The ledger writes these two by hand for speed: same bytes as the oracle."""
    for seed in range(50_000, 50_400):
        _check_ledger_encoders(random.Random(seed), seed)


def _check_ledger_encoders(rng: random.Random, seed: int) -> None:
    nonce = rng.randbytes(12)
    ciphertext = rng.randbytes(rng.randint(16, 80))
    fields = {
        "seq": rng.randint(1, MAX),
        "recorded_at": _string(rng),
        "type": _string(rng),
        "actor": _string(rng),
        "model": _string(rng) if rng.random() < 0.7 else None,
        "version": _int(rng) if rng.random() < 0.7 else None,
        "index": canonical_bytes(_value(rng, 2)).decode(),
        "key_id": _string(rng),
    }
    envelope = envelope_bytes(
        fields["seq"],
        fields["recorded_at"],
        fields["type"],
        fields["actor"],
        fields["model"],
        fields["version"],
        fields["index"],
        fields["key_id"],
        nonce,
        ciphertext,
    )
    expected = {
        **fields,
        "nonce": base64.b64encode(nonce).decode(),
        "ciphertext": base64.b64encode(ciphertext).decode(),
    }
    assert envelope == rfc8785.dumps(expected), f"seed {seed}"
    assert associated_data(fields["seq"], fields["type"], fields["key_id"]) == rfc8785.dumps(
        {
            "table": "ledger_events",
            "seq": fields["seq"],
            "type": fields["type"],
            "key_id": fields["key_id"],
        }
    ), f"seed {seed}"


# -- flat rows of scalars, floats included ---------------------------------------------------
FLOATS = [
    0.0,
    -0.0,
    1.0,
    -1.5,
    1e21,
    1e-7,
    1e-6,
    123456789012345680000.0,
    5e-324,
    1.7976931348623157e308,
]
TEXTS = [
    "",
    "plain",
    'quote " and \\ back',
    "ctl \x00\x01\x1f\x7f",
    "é ü ß €",
    "emoji 😀",
    "\u2028",
]


def _row(rng: random.Random) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for n in range(rng.randint(0, 12)):
        kind = rng.randrange(6)
        key = rng.choice(["k", "é", "Z", "a_b", "ключ", "😀", "\u00ff", "k2"]) + str(n)
        if kind == 0:
            row[key] = rng.choice(FLOATS)
        elif kind == 1:
            row[key] = rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30)
        elif kind == 2:
            row[key] = rng.randint(-MAX, MAX)
        elif kind == 3:
            row[key] = rng.choice(TEXTS)
        elif kind == 4:
            row[key] = rng.choice([True, False, None])
        else:
            row[key] = round(rng.uniform(0, 100000), rng.randint(0, 6))
    return row


def test_rows_and_scalars_equal_rfc8785_on_random_rows() -> None:
    rng = random.Random(5)
    for _ in range(3000):
        row = _row(rng)
        assert canonical_row(row) == rfc8785.dumps(row), row
        for value in row.values():
            check_scalar(value, "value")
            assert scalar_text(value).encode() == rfc8785.dumps(value), value


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (-1.5, "-1.5"),
        (1e16, "10000000000000000"),
        (1e21, "1e+21"),
        (123456789012345680000.0, "123456789012345680000"),
        (1e-6, "0.000001"),
        (1e-7, "1e-7"),
        (0.1 + 0.2, "0.30000000000000004"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
    ],
)
def test_numbers_are_written_as_ecmascript_writes_them(value: float, text: str) -> None:
    assert number_text(value) == text == rfc8785.dumps(value).decode()


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_number_text_fuzz(value: float) -> None:
    assert number_text(value).encode() == rfc8785.dumps(value)


SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-MAX, max_value=MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)


@given(st.dictionaries(st.text(max_size=8), SCALARS, max_size=8))
def test_canonical_row_fuzz(row: dict[str, Any]) -> None:
    for value in row.values():
        check_scalar(value, "value")
    assert canonical_row(row) == rfc8785.dumps(row)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (float("nan"), "row field is nan, not a finite number"),
        (float("-inf"), "row field is -inf, not a finite number"),
        (MAX + 1, "row field: integer outside the I-JSON range"),
        (-(2**64), "row field: integer outside the I-JSON range"),
        ("\ud800", "row field is not valid Unicode"),
        ([1], "row field: list is not a JSON scalar (str, int, float, bool or None)"),
        (b"x", "row field: bytes is not a JSON scalar (str, int, float, bool or None)"),
    ],
)
def test_check_scalar_refuses_what_the_encoders_cannot_write(value: Any, message: str) -> None:
    with pytest.raises(InputError) as info:
        check_scalar(value, "row field")
    assert str(info.value) == message
