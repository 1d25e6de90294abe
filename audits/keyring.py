"""Envelope encryption for event payloads.

Data keys (AES-256) encrypt payloads; each data key is stored in the database
wrapped by the key-encryption key (KEK), which lives in a file outside the
database (mode 0600). ``rotate`` starts a new data key (old events keep their
key id and stay readable); ``rotate_kek`` re-wraps every data key under a new
KEK. Both can be re-run after an interruption and neither loses a row.

Expiring data keys (table ``expiring_data_keys``) serve crypto-shredding: one
key per purpose and period, with an expiry after which
:meth:`Keyring.destroy_expiring` deletes it, and with it the only way to
decrypt what was encrypted under it. ``rotate_kek`` re-wraps them too.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audits.tables import DATA_KEYS_TABLE, EXPIRING_KEYS_TABLE
from core.clock import isoformat, parse, utcnow
from core.errors import ConfigError, IntegrityError
from core.files import write_durably

if TYPE_CHECKING:
    from datetime import datetime

    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    from sqlalchemy.engine import Connection

KEK_FILE = "kek.json"
KEK_NEXT_FILE = "kek.next.json"


@dataclass(frozen=True)
class Kek:
    kek_id: str
    key: bytes


def write_secret_file(path: Path, data: bytes) -> None:
    """Write ``path`` with mode 0600, durably (see :func:`core.files.write_durably`):
    a KEK rotation re-wraps the data keys under kek.next.json right after it is
    written, and losing that file loses every key."""
    write_durably(path, data, mode=0o600)


def check_secret_modes(paths: list[Path]) -> None:
    """Refuse a secret file (key, API key) that group or others may read or write."""
    import stat

    for path in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            raise ConfigError(
                f"secret file {path} is open to group or others (mode {mode:04o}); run "
                f"`chmod 600 {path}`, and treat the key as exposed if anyone else could read it"
            )


def _new_kek() -> Kek:
    return Kek(kek_id="kek-" + secrets.token_hex(8), key=secrets.token_bytes(32))


def _kek_bytes(kek: Kek) -> bytes:
    doc = {"kek_id": kek.kek_id, "key": base64.b64encode(kek.key).decode()}
    return json.dumps(doc).encode()


def _read_kek(path: Path) -> Kek:
    try:
        doc = json.loads(path.read_bytes())
        kek = Kek(kek_id=str(doc["kek_id"]), key=base64.b64decode(doc["key"], validate=True))
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"key-encryption key {path} is unreadable: {exc}") from exc
    if len(kek.key) != 32:
        raise ConfigError(f"key-encryption key {path} is not 32 bytes")
    return kek


def _wrap_aad(key_id: str, kek_id: str) -> bytes:
    return f"govreg-data-key/v1|{key_id}|{kek_id}".encode()


@dataclass(frozen=True)
class ExpiringKey:
    """An expiring data key's plaintext fields (its bytes stay wrapped)."""

    key_id: str
    purpose: str
    period: str
    expires_at: str

    def expired(self, now: datetime) -> bool:
        return parse(self.expires_at) <= now


def expiring_key_id(purpose: str, period: str) -> str:
    """``decisions/2027-03``: the key id names its purpose and period."""
    return f"{purpose}/{period}"


def _expiring_aad(key: ExpiringKey, kek_id: str) -> bytes:
    """Binds a wrapped expiring key to its id, purpose, period, expiry and KEK."""
    return (
        f"govreg-expiring-key/v1|{key.key_id}|{key.purpose}|{key.period}|{key.expires_at}|{kek_id}"
    ).encode()


_EXPIRING_COLUMNS = "key_id, purpose, period, expires_at, kek_id, nonce, wrapped"


def _expiring(row: Any) -> ExpiringKey:
    return ExpiringKey(row.key_id, row.purpose, row.period, row.expires_at)


class Keyring:
    """Data keys for one ledger, unwrapped on first use and cached."""

    def __init__(self, keys_dir: Path) -> None:
        self.keys_dir = keys_dir
        self._keks: dict[str, Kek] | None = None
        self._cache: dict[str, AESGCM] = {}

    # -- key-encryption keys -------------------------------------------------
    @staticmethod
    def create_kek(keys_dir: Path) -> bool:
        """Write a new KEK file if there is none; True if one was written."""
        path = keys_dir / KEK_FILE
        if path.exists():
            return False
        write_secret_file(path, _kek_bytes(_new_kek()))
        return True

    def _load_keks(self) -> dict[str, Kek]:
        if self._keks is None:
            path = self.keys_dir / KEK_FILE
            if not path.exists():
                raise ConfigError(f"no key-encryption key at {path}; run `govreg init`")
            keks = {kek.kek_id: kek for kek in [_read_kek(path)]}
            pending = self.keys_dir / KEK_NEXT_FILE
            if pending.exists():  # a KEK rotation was interrupted; both are needed
                nxt = _read_kek(pending)
                keks[nxt.kek_id] = nxt
            self._keks = keks
        return self._keks

    @property
    def current_kek(self) -> Kek:
        return _read_kek(self.keys_dir / KEK_FILE)

    # -- data keys -----------------------------------------------------------
    def _unwrap(
        self, key_id: str, kek_id: str, nonce: bytes, wrapped: bytes, aad: bytes | None = None
    ) -> bytes:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        kek = self._load_keks().get(kek_id)
        if kek is None:  # another process may have rotated the KEK since we read it
            self._keks = None
            kek = self._load_keks().get(kek_id)
        if kek is None:
            raise IntegrityError(
                f"data key {key_id} is wrapped by {kek_id}, which is not in {self.keys_dir}"
            )
        try:
            return AESGCM(kek.key).decrypt(nonce, wrapped, aad or _wrap_aad(key_id, kek_id))
        except InvalidTag as exc:
            raise IntegrityError(
                f"data key {key_id}: wrapped key fails authentication under {kek_id} "
                "(the stored key was altered)"
            ) from exc

    def cipher(self, conn: Connection, key_id: str) -> AESGCM:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from sqlalchemy import text

        cached = self._cache.get(key_id)
        if cached is not None:
            return cached
        row = conn.execute(
            text(f"SELECT kek_id, nonce, wrapped FROM {DATA_KEYS_TABLE} WHERE key_id = :k"),
            {"k": key_id},
        ).one_or_none()
        if row is None:
            raise IntegrityError(f"data key {key_id} is not in the database")
        aes = AESGCM(self._unwrap(key_id, row.kek_id, bytes(row.nonce), bytes(row.wrapped)))
        self._cache[key_id] = aes
        return aes

    def active_key_id(self, conn: Connection) -> str:
        from sqlalchemy import text

        key_id = conn.execute(text(f"SELECT max(key_id) FROM {DATA_KEYS_TABLE}")).scalar()
        if key_id is None:
            raise ConfigError("the ledger has no data key; run `govreg init`")
        return str(key_id)

    def add_data_key(self, conn: Connection) -> str:
        """Create the next data key (``dk-000001``, ``dk-000002``, ...)."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from sqlalchemy import text

        last = conn.execute(text(f"SELECT max(key_id) FROM {DATA_KEYS_TABLE}")).scalar()
        number = int(str(last).removeprefix("dk-")) + 1 if last else 1
        key_id = f"dk-{number:06d}"
        kek = self.current_kek
        nonce = secrets.token_bytes(12)
        dek = AESGCM.generate_key(bit_length=256)
        wrapped = AESGCM(kek.key).encrypt(nonce, dek, _wrap_aad(key_id, kek.kek_id))
        conn.execute(
            text(
                f"INSERT INTO {DATA_KEYS_TABLE} (key_id, created_at, kek_id, nonce, wrapped) "
                "VALUES (:k, :t, :kek, :n, :w)"
            ),
            {"k": key_id, "t": isoformat(utcnow()), "kek": kek.kek_id, "n": nonce, "w": wrapped},
        )
        self._cache[key_id] = AESGCM(dek)
        return key_id

    # -- expiring data keys (crypto-shredding) ---------------------------------------
    def expiring_key(
        self, conn: Connection, *, purpose: str, period: str, expires_at: str
    ) -> tuple[str, AESGCM]:
        """The key of ``purpose`` for ``period``, created (expiring at ``expires_at``)
        if there is none yet. The caller serialises creators (the same
        transaction must not race another creating the same period)."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from sqlalchemy import text

        key = ExpiringKey(expiring_key_id(purpose, period), purpose, period, expires_at)
        row = self._expiring_row(conn, key.key_id)
        if row is not None:
            if _expiring(row) != key:
                raise IntegrityError(
                    f"data key {key.key_id} expires at {row.expires_at}, not {expires_at}"
                )
            return key.key_id, self._unwrap_expiring(row)
        kek = self.current_kek
        nonce = secrets.token_bytes(12)
        dek = AESGCM.generate_key(bit_length=256)
        wrapped = AESGCM(kek.key).encrypt(nonce, dek, _expiring_aad(key, kek.kek_id))
        conn.execute(
            text(
                f"INSERT INTO {EXPIRING_KEYS_TABLE} "
                "(key_id, purpose, period, expires_at, created_at, kek_id, nonce, wrapped) "
                "VALUES (:k, :p, :d, :e, :t, :kek, :n, :w)"
            ),
            {
                "k": key.key_id,
                "p": purpose,
                "d": period,
                "e": expires_at,
                "t": isoformat(utcnow()),
                "kek": kek.kek_id,
                "n": nonce,
                "w": wrapped,
            },
        )
        return key.key_id, AESGCM(dek)

    @staticmethod
    def _expiring_row(conn: Connection, key_id: str) -> Any:
        from sqlalchemy import text

        return conn.execute(
            text(f"SELECT {_EXPIRING_COLUMNS} FROM {EXPIRING_KEYS_TABLE} WHERE key_id = :k"),
            {"k": key_id},
        ).one_or_none()

    def expiring_cipher(self, conn: Connection, key_id: str) -> AESGCM | None:
        """The expiring key ``key_id``, or None once it has been destroyed (or was
        never made). Never cached: a key destroyed by another process is gone here too."""
        row = self._expiring_row(conn, key_id)
        return None if row is None else self._unwrap_expiring(row)

    def _unwrap_expiring(self, row: Any) -> AESGCM:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        aad = _expiring_aad(_expiring(row), row.kek_id)
        dek = self._unwrap(row.key_id, row.kek_id, bytes(row.nonce), bytes(row.wrapped), aad)
        return AESGCM(dek)

    @staticmethod
    def expiring_keys(conn: Connection, *, purpose: str) -> list[ExpiringKey]:
        """The expiring keys of ``purpose`` that still exist, oldest period first."""
        from sqlalchemy import text

        rows = conn.execute(
            text(
                f"SELECT {_EXPIRING_COLUMNS} FROM {EXPIRING_KEYS_TABLE} "
                "WHERE purpose = :p ORDER BY period"
            ),
            {"p": purpose},
        ).all()
        return [_expiring(row) for row in rows]

    @staticmethod
    def destroy_expiring(conn: Connection, key: ExpiringKey, *, now: datetime) -> None:
        """Delete ``key`` for good (crypto-shredding). Refused before its expiry;
        on SQLite the freed page is overwritten (``secure_delete``)."""
        from sqlalchemy import text

        if not key.expired(now):
            raise IntegrityError(
                f"data key {key.key_id} expires at {key.expires_at}; refusing to destroy it "
                f"at {isoformat(now)}"
            )
        if conn.dialect.name == "sqlite":
            conn.execute(text("PRAGMA secure_delete = ON"))
        deleted = conn.execute(
            text(
                f"DELETE FROM {EXPIRING_KEYS_TABLE} "
                "WHERE key_id = :k AND purpose = :p AND period = :d AND expires_at = :e"
            ),
            {"k": key.key_id, "p": key.purpose, "d": key.period, "e": key.expires_at},
        ).rowcount
        if deleted != 1:
            raise IntegrityError(f"data key {key.key_id} changed or vanished while destroying it")

    def prepare_kek_rotation(self) -> Kek:
        """The pending new KEK: the one from an interrupted run, or a new one."""
        pending = self.keys_dir / KEK_NEXT_FILE
        if not pending.exists():
            write_secret_file(pending, _kek_bytes(_new_kek()))
        self._keks = None
        return _read_kek(pending)

    def rewrap_all(self, conn: Connection, new: Kek) -> int:
        """Re-wrap every data key (expiring ones too) not yet under ``new``; returns how many."""
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
        from sqlalchemy import text

        rows = conn.execute(
            text(f"SELECT key_id, kek_id, nonce, wrapped FROM {DATA_KEYS_TABLE} ORDER BY key_id")
        ).all()
        count = 0
        for row in rows:
            if row.kek_id == new.kek_id:
                continue
            dek = self._unwrap(row.key_id, row.kek_id, bytes(row.nonce), bytes(row.wrapped))
            nonce = secrets.token_bytes(12)
            wrapped = AESGCM(new.key).encrypt(nonce, dek, _wrap_aad(row.key_id, new.kek_id))
            conn.execute(
                text(
                    f"UPDATE {DATA_KEYS_TABLE} SET kek_id = :kek, nonce = :n, wrapped = :w "
                    "WHERE key_id = :k"
                ),
                {"kek": new.kek_id, "n": nonce, "w": wrapped, "k": row.key_id},
            )
            count += 1
        expiring = conn.execute(
            text(f"SELECT {_EXPIRING_COLUMNS} FROM {EXPIRING_KEYS_TABLE} ORDER BY key_id")
        ).all()
        for row in expiring:
            if row.kek_id == new.kek_id:
                continue
            key = _expiring(row)
            dek = self._unwrap(
                row.key_id,
                row.kek_id,
                bytes(row.nonce),
                bytes(row.wrapped),
                _expiring_aad(key, row.kek_id),
            )
            nonce = secrets.token_bytes(12)
            wrapped = AESGCM(new.key).encrypt(nonce, dek, _expiring_aad(key, new.kek_id))
            conn.execute(
                text(
                    f"UPDATE {EXPIRING_KEYS_TABLE} SET kek_id = :kek, nonce = :n, wrapped = :w "
                    "WHERE key_id = :k"
                ),
                {"kek": new.kek_id, "n": nonce, "w": wrapped, "k": row.key_id},
            )
            count += 1
        return count

    def finish_kek_rotation(self) -> None:
        """After the re-wrap committed: the pending KEK becomes the KEK."""
        pending = self.keys_dir / KEK_NEXT_FILE
        if pending.exists():
            os.replace(pending, self.keys_dir / KEK_FILE)
            fd = os.open(self.keys_dir, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        self._keks = None
