"""Writers of one anchor folder take turns: :func:`folder_turn`.

A log's writer commits, then copies what it signed to an anchor folder; the
next writer first re-anchors the last entry if its file is missing (its
writer stopped between commit and anchor write). Without turns, a writer that
starts just after another's commit finds that entry unanchored while its
writer is still writing the file, copies it again with a false "writer
stopped" warning, and holds the database's writers' lock while its copy
reaches the disk. So each writer holds the folder, from before its
transaction until its anchor file is written. The ledger and the decision
log each use their own folder.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# The anchor folders this process's writers have open for their turn. A forked child
# closes its copies: a copy would keep the folder locked after the parent let go. A
# fork waits while a writer opens or closes one, so every open one is listed.
_turns_held: set[int] = set()
_turns_opening = threading.Lock()


def _drop_turns_in_child() -> None:
    for fd in _turns_held:
        os.close(fd)
    _turns_held.clear()
    _turns_opening.release()  # taken before the fork


os.register_at_fork(
    before=_turns_opening.acquire,
    after_in_parent=_turns_opening.release,
    after_in_child=_drop_turns_in_child,
)


@contextmanager
def folder_turn(folder: Path | None) -> Iterator[None]:
    """Hold ``folder`` against every other writer (any thread, any process) until the
    block ends. The lock is a ``flock`` on the folder itself, released when its
    holder closes it or dies. Take it before the database's writers' lock, always:
    every writer takes the two in that order."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    with _turns_opening:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        _turns_held.add(fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        with _turns_opening:
            _turns_held.discard(fd)
            os.close(fd)  # lets the next writer go
