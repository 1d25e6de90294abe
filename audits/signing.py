"""Ed25519 checkpoint keys and the signed checkpoint note.

A checkpoint note is a signed note (:mod:`audits.notes`) with the text

    govreg-ledger/v1 <key fingerprint>
    <size>
    <root, base64>
    <issued at, UTC>

and its signature is Ed25519 over those exact bytes. The private key lives in
a 0600 file outside the database; verification takes a public key given by
the verifier (a file), never one read from the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from audits.keyring import write_secret_file
from audits.notes import (
    KeyMismatch,
    MalformedNote,
    SignatureInvalid,
    SignedNote,
    b64,
    decimal,
    decode_b64,
    fingerprint,
    sign,
)
from core.errors import ConfigError, IntegrityError

if TYPE_CHECKING:
    import os

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

__all__ = [
    "NOTE_HEADER",
    "PUBLIC_KEY_FILE",
    "SIGNING_KEY_FILE",
    "SignedCheckpoint",
    "create_signing_key",
    "fingerprint",
    "load_private_key",
    "load_public_key",
    "sign_checkpoint",
]

NOTE_HEADER = "govreg-ledger/v1"
KIND = "govreg checkpoint"  # what a malformed checkpoint text is said not to be
SIGNING_KEY_FILE = "checkpoint.key"
PUBLIC_KEY_FILE = "checkpoint.pub"


def create_signing_key(keys_dir: Path) -> bool:
    """Write the private key (0600) and its ``.pub``; False if they exist."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    private_path = keys_dir / SIGNING_KEY_FILE
    if private_path.exists():
        return False
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_secret_file(private_path, pem)
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    (keys_dir / PUBLIC_KEY_FILE).write_bytes(public_pem)
    return True


def load_private_key(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"checkpoint signing key {path} is unreadable: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"checkpoint signing key {path} is not an Ed25519 key")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """The Ed25519 checkpoint public key in the PEM file ``path`` (a str or a Path)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    path = Path(path)
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"public key {path} is unreadable: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ConfigError(f"public key {path} is not an Ed25519 key")
    return key


@dataclass(frozen=True)
class SignedCheckpoint:
    size: int
    root: bytes
    issued_at: str
    key_fingerprint: str
    signature: bytes

    @property
    def signed_note(self) -> SignedNote:
        lines = (str(self.size), b64(self.root), self.issued_at)
        return SignedNote(NOTE_HEADER, self.key_fingerprint, lines, self.signature)

    @property
    def note(self) -> str:
        return self.signed_note.note

    def to_text(self) -> str:
        """The note followed by its signature line (the anchor file's content)."""
        return self.signed_note.to_text()

    @classmethod
    def from_note(cls, note: SignedNote, source: str) -> SignedCheckpoint:
        """The checkpoint a parsed note of ``NOTE_HEADER`` holds, its body checked."""
        size, root, issued_at = note.lines
        return cls(
            size=decimal(size, source=source, what="size"),
            root=decode_b64(root, source=source, what="root", length=32),
            issued_at=issued_at,
            key_fingerprint=note.key_fingerprint,
            signature=note.signature,
        )

    @classmethod
    def from_text(cls, text: str | bytes, *, source: str) -> SignedCheckpoint:
        """The checkpoint in ``text`` (as :meth:`to_text` writes it); anything else
        raises IntegrityError (:class:`audits.notes.MalformedNote`) naming ``source``."""
        try:
            note = SignedNote.parse(text, origin=NOTE_HEADER, source=source, lines=3)
            return cls.from_note(note, source)
        except MalformedNote as exc:
            raise MalformedNote(source, exc.reason, kind=KIND) from exc

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """Raise IntegrityError unless ``public_key`` signed this checkpoint."""
        try:
            self.signed_note.verify(public_key)
        except KeyMismatch as exc:
            raise IntegrityError(
                f"checkpoint at size {self.size} names key {exc.named}, "
                f"not the given public key {exc.expected}"
            ) from exc
        except SignatureInvalid as exc:
            raise IntegrityError(
                f"checkpoint at size {self.size}: signature does not verify with the public key"
            ) from exc


def sign_checkpoint(
    key: Ed25519PrivateKey, size: int, root: bytes, issued_at: str
) -> SignedCheckpoint:
    signed = sign(key, NOTE_HEADER, (str(size), b64(root), issued_at))
    return SignedCheckpoint(size, root, issued_at, signed.key_fingerprint, signed.signature)
