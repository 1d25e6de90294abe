"""Reading a file a caller names: opened once, checked and read from that one descriptor.

:func:`read_file` reads a path the caller owns (the command line's files,
the API's own upload copies). :func:`read_beneath` reads a file named
relative to a folder the server trusts (``GOVREG_IMPORT_DIR``): the path is
walked one component at a time from the folder's own descriptor with
``openat(..., O_NOFOLLOW)``, so that

1. ``..``, an absolute path, a NUL byte or an empty path is refused before
   anything is opened;
2. a symbolic link at any component is refused (``ELOOP``), and a folder
   renamed or swapped meanwhile can change which file of the folder is read,
   never make the read leave it;
3. what was opened must be a regular file (no FIFO, device or folder) with a
   single hard link (a hard link can name a file outside the folder), within
   the size limit, and its bytes are read from the same descriptor.

The caller hashes and parses the bytes returned; nothing opens the path again.
:func:`write_durably` writes a file atomically and durably (keys, anchor files).
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from core.errors import InputError, quote

# O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused after fstat)
_READ = os.O_RDONLY | os.O_CLOEXEC | os.O_NOCTTY | os.O_NONBLOCK
_FOLDER = os.O_RDONLY | os.O_CLOEXEC | os.O_DIRECTORY
_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ImportedPath:
    """A file named by ``relative`` (as the caller wrote it) inside ``root``."""

    root: Path
    relative: str

    @property
    def suffix(self) -> str:
        return PurePosixPath(self.relative).suffix

    def __str__(self) -> str:
        return self.relative


def components(relative: str, *, what: str) -> list[str]:
    """The path's components, or InputError saying why the path is refused."""
    shown = quote(relative)
    if "\x00" in relative:
        raise InputError(f"{what} path {shown} contains a NUL byte")
    if not relative:
        raise InputError(f"{what} path is empty; name a file inside the server's import folder")
    if relative.startswith("/"):
        raise InputError(
            f"{what} path {shown} is absolute; name a file relative to the server's import folder"
        )
    parts = [part for part in relative.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise InputError(
            f"{what} path {shown} contains '..'; name a file inside the server's import folder"
        )
    if not parts:
        raise InputError(
            f"{what} path {shown} names no file; name a file inside the server's import folder"
        )
    return parts


def read_beneath(path: ImportedPath, what: str, *, max_bytes: int) -> bytes:
    """The bytes of the regular file ``path.relative`` inside ``path.root`` (see the module)."""
    parts = components(path.relative, what=what)
    shown = quote(path.relative)
    try:
        fd = os.open(path.root, _FOLDER)
    except OSError as exc:
        raise InputError(
            f"the server's import folder cannot be opened ({exc.strerror}); tell its operator"
        ) from exc
    try:
        for number, part in enumerate(parts):
            last = number == len(parts) - 1
            flags = (_READ if last else _FOLDER) | os.O_NOFOLLOW
            try:
                opened = os.open(part, flags, dir_fd=fd)
            except OSError as exc:
                raise _refusal(exc, what, shown, part, last=last, link=_is_link(fd, part)) from exc
            os.close(fd)
            fd = opened
        data = _read_open(fd, what, shown, max_bytes=max_bytes, single_link=True)
    finally:
        os.close(fd)
    return data


def read_file(path: Path, what: str, *, max_bytes: int) -> bytes:
    """The bytes of the regular file at ``path`` (a path the caller owns; links followed)."""
    try:
        fd = os.open(path, _READ)
    except FileNotFoundError as exc:
        raise InputError(f"{what} file {path} does not exist; check the path") from exc
    except OSError as exc:
        raise InputError(f"{what} file {path} is unreadable: {exc.strerror}") from exc
    try:
        return _read_open(fd, what, str(path), max_bytes=max_bytes, single_link=False)
    finally:
        os.close(fd)


def _is_link(dir_fd: int, part: str) -> bool:
    """Whether ``part`` is a symbolic link (for the message only: a folder opened
    with O_NOFOLLOW | O_DIRECTORY fails with ENOTDIR on a link, as on a file)."""
    try:
        return stat.S_ISLNK(os.stat(part, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _refusal(
    exc: OSError, what: str, shown: str, part: str, *, last: bool, link: bool
) -> InputError:
    name = quote(part)
    if exc.errno == errno.ELOOP or link:
        return InputError(
            f"{what} path {shown}: {name} is a symbolic link; the import folder is read only "
            "through real folders and files"
        )
    if exc.errno == errno.ENOTDIR:
        return InputError(f"{what} path {shown}: {name} is not a folder")
    if exc.errno == errno.ENOENT:
        return InputError(
            f"{what} file {shown} does not exist in the server's import folder; check the path"
        )
    if exc.errno == errno.EACCES:
        kind = "file" if last else "folder"
        return InputError(f"{what} path {shown}: the server may not read the {kind} {name}")
    return InputError(f"{what} path {shown} cannot be opened: {exc.strerror}")


def _read_open(fd: int, what: str, shown: str, *, max_bytes: int, single_link: bool) -> bytes:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        kind = "a regular file" if single_link else "a file"
        raise InputError(f"{what} path {shown} is not {kind}")
    if single_link and info.st_nlink != 1:
        raise InputError(
            f"{what} file {shown} has {info.st_nlink} hard links; copy it into the import "
            "folder (a hard link can name a file outside it)"
        )
    if info.st_size > max_bytes:
        raise InputError(
            f"{what} file {shown} is {info.st_size} bytes, over the {max_bytes}-byte limit"
        )
    os.set_blocking(fd, True)
    data = bytearray()
    try:
        while chunk := os.read(fd, _CHUNK):
            data += chunk
            if len(data) > max_bytes:  # grew after fstat
                raise InputError(f"{what} file {shown} is over the {max_bytes}-byte limit")
    except OSError as exc:
        raise InputError(f"{what} file {shown} is unreadable: {exc.strerror}") from exc
    return bytes(data)


def write_durably(path: Path, data: bytes, *, mode: int) -> None:
    """Write ``path`` with ``mode``, durably and atomically: a temporary file beside
    it, fsync, rename over ``path``, fsync of the folder (so the rename survives a
    power loss too). Readers see the old file or the new one, never part of one.

    The temporary file has a fresh random name (so two writers of one path never
    share one) and is created exclusively (``O_EXCL | O_NOFOLLOW``), so a file or
    link planted beside ``path`` is never reused; it is created with ``mode`` and
    ``fchmod``-ed to ``mode`` whatever the umask, before a byte is written.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(tmp, flags, mode)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
