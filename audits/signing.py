"""Ed25519 checkpoint keys and the signed checkpoint note.

A checkpoint note (after the C2SP signed-note format) is the text

    govreg-ledger/v1 <key fingerprint>
    <size>
    <root, base64>
    <issued at, UTC>

and its signature is Ed25519 over those exact bytes. The private key lives in
a 0600 file outside the database; verification takes a public key given by
the verifier (a file), never one read from the database.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from audits.keyring import write_secret_file
from core.errors import ConfigError, IntegrityError

if TYPE_CHECKING:
    import os

    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

NOTE_HEADER = "govreg-ledger/v1"
SIGNING_KEY_FILE = "checkpoint.key"
PUBLIC_KEY_FILE = "checkpoint.pub"


def fingerprint(public_key: Ed25519PublicKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


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
    def note(self) -> str:
        return make_note(self.key_fingerprint, self.size, self.root, self.issued_at)

    def to_text(self) -> str:
        """The note followed by its signature line (the anchor file's content)."""
        sig = base64.b64encode(self.signature).decode()
        return f"{self.note}\n— {self.key_fingerprint[:16]} {sig}\n"

    @classmethod
    def from_text(cls, text: str, *, source: str) -> SignedCheckpoint:
        try:
            note, sig_line = text.split("\n\n", 1)
            header, size, root, issued_at = note.split("\n")
            prefix, fpr = header.split(" ")
            if prefix != NOTE_HEADER:
                raise ValueError(f"header is {prefix!r}")
            dash, _short, sig = sig_line.strip().split(" ")
            if dash != "—":
                raise ValueError("no signature line")
            return cls(
                size=int(size),
                root=base64.b64decode(root, validate=True),
                issued_at=issued_at,
                key_fingerprint=fpr,
                signature=base64.b64decode(sig, validate=True),
            )
        except ValueError as exc:
            raise IntegrityError(f"{source}: not a govreg checkpoint ({exc})") from exc

    def verify(self, public_key: Ed25519PublicKey) -> None:
        """Raise IntegrityError unless ``public_key`` signed this checkpoint."""
        from cryptography.exceptions import InvalidSignature

        if self.key_fingerprint != fingerprint(public_key):
            raise IntegrityError(
                f"checkpoint at size {self.size} names key {self.key_fingerprint}, "
                f"not the given public key {fingerprint(public_key)}"
            )
        try:
            public_key.verify(self.signature, self.note.encode())
        except InvalidSignature as exc:
            raise IntegrityError(
                f"checkpoint at size {self.size}: signature does not verify with the public key"
            ) from exc


def make_note(key_fingerprint: str, size: int, root: bytes, issued_at: str) -> str:
    root_b64 = base64.b64encode(root).decode()
    return f"{NOTE_HEADER} {key_fingerprint}\n{size}\n{root_b64}\n{issued_at}\n"


def sign_checkpoint(
    key: Ed25519PrivateKey, size: int, root: bytes, issued_at: str
) -> SignedCheckpoint:
    fpr = fingerprint(key.public_key())
    signature = key.sign(make_note(fpr, size, root, issued_at).encode())
    return SignedCheckpoint(size, root, issued_at, fpr, signature)
