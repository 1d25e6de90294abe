"""Signed notes: the one text format the ledger's checkpoints and the decision
log's batches are signed and anchored in (after C2SP signed-note).

A note is an origin line naming the log and the full fingerprint of its key,
then one or more body lines, each ended by a newline:

    <origin> <key fingerprint: SHA-256 of the raw public key, 64 hex digits>
    <body line>
    ...

Its signature is Ed25519 over exactly those bytes. The signed text (an anchor
file's content) is the note, a blank line and the signature line:

    — <the fingerprint's first 16 hex digits> <signature, base64>

:meth:`SignedNote.parse` reads that text strictly: the exact shape above, the
note in printable ASCII, a fingerprint of 64 lowercase hex digits, a signature
line naming the note's key, a canonical base64 signature of 64 bytes. Anything
else raises :class:`MalformedNote` naming where the text came from; so only
texts that :meth:`SignedNote.to_text` writes parse, and parsing then writing
gives back the same bytes.

    NoteError                (an IntegrityError)
    ├── MalformedNote        not a signed note of the expected origin and shape
    ├── KeyMismatch          signed by another key than the given one
    └── SignatureInvalid     the signature does not verify with the given key
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from core.errors import IntegrityError, quote

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

DASH = "—"  # U+2014, the signature line's first character
SIGNATURE_BYTES = 64  # Ed25519
_FINGERPRINT = re.compile(r"[0-9a-f]{64}")
_DECIMAL = re.compile(r"0|[1-9][0-9]*")


class NoteError(IntegrityError):
    """A signed note does not parse or does not verify."""


class MalformedNote(NoteError):
    """``source`` is not a signed note of the expected origin and shape; ``reason`` says why."""

    def __init__(self, source: str, reason: str, *, kind: str = "signed note") -> None:
        super().__init__(f"{source}: not a {kind} ({reason})")
        self.source = source
        self.reason = reason


class KeyMismatch(NoteError):
    """The note names the key ``named``, not ``expected`` (both full fingerprints)."""

    def __init__(self, named: str, expected: str) -> None:
        super().__init__(f"signed by key {named}, not the given public key {expected}")
        self.named = named
        self.expected = expected


class SignatureInvalid(NoteError):
    """The note names the given key, but its signature does not verify with it."""

    def __init__(self) -> None:
        super().__init__("signature does not verify with the public key")


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """SHA-256 of the raw public key, 64 lowercase hex digits (the origin line's key)."""
    import hashlib

    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def b64(data: bytes) -> str:
    """Standard base64 with padding, as every note writes bytes."""
    return base64.b64encode(data).decode("ascii")


@dataclass(frozen=True, slots=True)
class SignedNote:
    """A note (origin, key fingerprint, body lines) and its Ed25519 signature."""

    origin: str
    key_fingerprint: str
    lines: tuple[str, ...]
    signature: bytes

    @property
    def note(self) -> str:
        """The signed bytes, as text: the origin line and the body lines."""
        body = "".join(f"{line}\n" for line in self.lines)
        return f"{self.origin} {self.key_fingerprint}\n{body}"

    def to_text(self) -> str:
        """The note, a blank line and the signature line (an anchor file's content)."""
        return f"{self.note}\n{DASH} {self.key_fingerprint[:16]} {b64(self.signature)}\n"

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """Raise :class:`KeyMismatch` unless the note names ``public_key``, then
        :class:`SignatureInvalid` unless ``public_key`` signed it."""
        from cryptography.exceptions import InvalidSignature

        expected = fingerprint(public_key)
        if self.key_fingerprint != expected:
            raise KeyMismatch(self.key_fingerprint, expected)
        try:
            public_key.verify(self.signature, self.note.encode())
        except InvalidSignature as exc:
            raise SignatureInvalid from exc

    @classmethod
    def parse(
        cls,
        text: str | bytes,
        *,
        origin: str,
        source: str,
        lines: int | None = None,
    ) -> SignedNote:
        """The signed note in ``text`` (as :meth:`to_text` writes it, UTF-8 if bytes),
        of ``origin`` and, given ``lines``, with that many body lines; anything else
        raises :class:`MalformedNote` naming ``source``. The signature is not checked
        (see :meth:`verify`)."""
        text = _decoded(text, source)
        # 1. the shape: origin line, body lines, blank line, signature line, final newline
        parts = text.split("\n")
        if len(parts) < 5 or parts[-1] != "":
            raise MalformedNote(
                source,
                "not an origin line, body lines, a blank line and a "
                "signature line, each ending in a newline",
            )
        origin_line, body, blank, sig_line = parts[0], parts[1:-3], parts[-3], parts[-2]
        if blank != "" or "" in body:
            raise MalformedNote(source, "not one blank line, just before the signature line")
        # 2. the note is printable ASCII
        for number, line in enumerate([origin_line, *body], start=1):
            if not (line.isascii() and line.isprintable()):
                raise MalformedNote(source, f"line {number} is not printable ASCII")
        # 3. the origin line: this log's origin and a full key fingerprint
        head, _, key_fpr = origin_line.partition(" ")
        if head != origin:
            raise MalformedNote(source, f"header is {quote(head)}")
        if not _FINGERPRINT.fullmatch(key_fpr):
            raise MalformedNote(
                source, f"key {quote(key_fpr, 100)} is not 64 lowercase hexadecimal digits"
            )
        if lines is not None and len(body) != lines:
            raise MalformedNote(source, f"{len(body)} body lines, expected {lines}")
        # 4. the signature line names the note's key and holds a canonical signature
        fields = sig_line.split(" ")
        if len(fields) != 3 or fields[0] != DASH:
            raise MalformedNote(source, f"no signature line ('{DASH} <key> <signature>')")
        _, short, sig = fields
        if short != key_fpr[:16]:
            raise MalformedNote(
                source,
                f"the signature line names key {quote(short, 100)}, which does not begin "
                f"the note's key {key_fpr}",
            )
        signature = decode_b64(sig, source=source, what="signature", length=SIGNATURE_BYTES)
        return cls(origin, key_fpr, tuple(body), signature)


def sign(key: Ed25519PrivateKey, origin: str, lines: Sequence[str]) -> SignedNote:
    """The note of ``origin`` with body ``lines``, signed by ``key``. Raises
    ValueError for a note :meth:`SignedNote.parse` would refuse (a programming
    error: every line is written by govreg)."""
    body = tuple(lines)
    if not body or not all(line and line.isascii() and line.isprintable() for line in body):
        raise ValueError("a note needs body lines of printable ASCII, none empty")
    if not (origin and origin.isascii() and origin.isprintable()) or " " in origin:
        raise ValueError(f"origin {origin!r} is not one word of printable ASCII")
    key_fpr = fingerprint(key.public_key())
    note = SignedNote(origin, key_fpr, body, b"").note
    return SignedNote(origin, key_fpr, body, key.sign(note.encode()))


def decimal(line: str, *, source: str, what: str) -> int:
    """A body line that is a decimal number as notes write them (no sign, no
    leading zero), or :class:`MalformedNote`."""
    if not _DECIMAL.fullmatch(line):
        raise MalformedNote(source, f"{what} {quote(line)} is not a decimal number")
    return int(line)


def decode_b64(line: str, *, source: str, what: str, length: int | None = None) -> bytes:
    """A body line that is canonical base64 (of ``length`` bytes if given), or
    :class:`MalformedNote`."""
    try:
        value = base64.b64decode(line.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        value = None
    if value is None or b64(value) != line or (length is not None and len(value) != length):
        wanted = "canonical base64" if length is None else f"canonical base64 of {length} bytes"
        raise MalformedNote(source, f"{what} {quote(line, 100)} is not {wanted}")
    return value


def _decoded(text: str | bytes, source: str) -> str:
    if isinstance(text, str):
        return text
    if not isinstance(text, bytes | bytearray | memoryview):
        raise MalformedNote(source, f"{type(text).__name__} is not text")
    try:
        return bytes(text).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedNote(source, str(exc)) from exc
