"""Content-addressed blob storage: artifacts and datasets by SHA-256.

A blob is read once, hashed, and written under ``sha256/ab/abcdef...`` by an
atomic rename; storing the same bytes twice is a no-op. Reads check the
digest again so a swapped file is never handed out as the stored one.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from core.errors import IntegrityError, NotFoundError


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, digest: str) -> Path:
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise NotFoundError(f"not a SHA-256 digest: {digest!r}")
        return self.root / "sha256" / digest[:2] / digest

    def has(self, digest: str) -> bool:
        return self.path_for(digest).is_file()

    def put(self, data: bytes) -> tuple[str, bool]:
        """Store ``data``; returns its digest and whether it was new."""
        digest = sha256_hex(data)
        path = self.path_for(digest)
        if path.is_file():
            return digest, False
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{digest}.{os.getpid()}.tmp")
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        return digest, True

    def remove(self, digest: str) -> None:
        self.path_for(digest).unlink(missing_ok=True)

    def get(self, digest: str, *, max_bytes: int | None = None) -> bytes:
        """The stored bytes, read once and checked against ``digest``."""
        path = self.path_for(digest)
        if path.is_symlink():
            raise IntegrityError(f"blob {digest[:12]} is a symbolic link; refusing it")
        try:
            with path.open("rb") as fh:
                data = fh.read() if max_bytes is None else fh.read(max_bytes + 1)
        except FileNotFoundError as exc:
            raise NotFoundError(f"blob {digest[:12]} is not in the store {self.root}") from exc
        if max_bytes is not None and len(data) > max_bytes:
            raise IntegrityError(f"blob {digest[:12]} is larger than {max_bytes} bytes")
        if sha256_hex(data) != digest:
            raise IntegrityError(f"blob {digest[:12]} in the store does not match its digest")
        return data
