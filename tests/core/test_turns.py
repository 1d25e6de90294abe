"""Anchor-folder turns (core.turns): one writer at a time, across processes."""

from __future__ import annotations

import fcntl
import os
import signal
import time
from pathlib import Path

from core.turns import folder_turn


def test_a_forked_child_does_not_keep_the_folder_locked(tmp_path: Path) -> None:
    """A process forked during a writer's turn (its copy of the locked folder
    closed at once) does not keep the other writers waiting once the turn ends."""
    folder = tmp_path / "anchors" / "decisions"
    ready, started = os.pipe()
    with folder_turn(folder):
        child = os.fork()
        if child == 0:  # pragma: no cover - the child only waits to be killed
            os.write(started, b"!")  # past the fork handlers
            time.sleep(60)
            os._exit(0)
    os.close(started)
    assert os.read(ready, 1) == b"!"
    os.close(ready)
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the next turn, at once
    finally:
        os.close(fd)
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
