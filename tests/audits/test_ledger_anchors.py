"""The anchor folder: every signed checkpoint has its file, byte for byte.

Issue 13, findings 6 and 8. A missing or different anchor file fails
verification (exit 8), except that the latest checkpoint may lack its file:
its writer may have been killed between the commit and the anchor write. That
case is a warning, and the next write by any writer anchors it (tested with a
writer process killed by SIGKILL at exactly that point).
"""

from __future__ import annotations

import logging
import shutil
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from ledger_helpers import (
    anchor_crash_writer,
    anchor_files,
    append,
    checkpoint_issued_at,
    checkpoint_sizes,
    failure,
    key_fingerprint,
    mp_context,
    seqs,
    sql,
    standard_ledger,
    verify,
)

from audits.ledger import anchor_name
from audits.merkle import root
from audits.signing import SIGNING_KEY_FILE, load_private_key, sign_checkpoint
from core.errors import IntegrityError

UNANCHORED = (
    "the latest checkpoint (size {size}) is not in the anchor folder yet "
    "(checkpoint-{size:012d}.txt): its writer stopped between commit and anchor write; "
    "the next write anchors it"
)
REANCHORED = (
    "checkpoint at size {size} was not in the anchor folder (its writer stopped between "
    "commit and anchor write); anchored it now as checkpoint-{size:012d}.txt"
)


@pytest.fixture
def ctx(home: Any) -> Iterator[Any]:
    """Checkpoints at 3 (bootstrap), 5, 10 and 12 (one transaction each), anchored."""
    context = standard_ledger(home)
    yield context
    context.close()


def missing(size: int) -> str:
    return (
        f"anchor file {anchor_name(size)} for the checkpoint signed at size {size} is missing "
        "from the anchor folder"
    )


# -- finding 6 -------------------------------------------------------------------------
@pytest.mark.parametrize("size", [3, 5])
def test_anchor_file_deleted(ctx: Any, home: Any, size: int) -> None:
    path = ctx.settings.anchors_path / anchor_name(size)
    text = path.read_text(encoding="utf-8")
    path.unlink()
    err = failure(ctx)
    assert (err.seq, str(err)) == (None, missing(size))
    result = home.cli("audit", "verify")
    assert (result.exit_code, result.stdout, result.stderr) == (8, "", f"error: {missing(size)}\n")
    path.write_text(text, encoding="utf-8")
    assert verify(ctx).warnings == []


def test_anchor_folder_deleted(ctx: Any) -> None:
    shutil.rmtree(ctx.settings.anchors_path)
    err = failure(ctx)
    assert (err.seq, str(err)) == (None, missing(3))


def test_anchor_file_overwritten(ctx: Any, home: Any) -> None:
    """A text that differs from the signed checkpoint: one that parses (the same root
    signed by the same key at another time) differs; one off the exact shape of a
    signed note is not a checkpoint at all."""
    path = ctx.settings.anchors_path / anchor_name(10)
    text = path.read_text(encoding="utf-8")
    assert checkpoint_issued_at(ctx, 10) in text
    key = load_private_key(ctx.settings.keys_path / SIGNING_KEY_FILE)
    fpr = key_fingerprint(ctx)
    leaves = [bytes(r[0]) for r in sql(ctx, "SELECT leaf_hash FROM ledger_events ORDER BY seq")]
    resigned = sign_checkpoint(key, 10, root(leaves[:10]), "2020-01-01T00:00:00.000000Z")
    note, sig_line = text.split("\n\n")
    not_a_checkpoint = f"{path}: not a govreg checkpoint"
    forgeries = {
        resigned.to_text(): (
            f"anchor file {anchor_name(10)} ({len(resigned.to_text().encode())} bytes) differs "
            "from the checkpoint signed at size 10 in the database"
        ),
        note + "\n\n" + sig_line.replace(fpr[:16], "0" * 16): (
            f"{not_a_checkpoint} (the signature line names key '0000000000000000', which does "
            f"not begin the note's key {fpr})"
        ),
        text + "\n": (f"{not_a_checkpoint} (not one blank line, just before the signature line)"),
    }
    for forged, message in forgeries.items():
        path.write_text(forged, encoding="utf-8")
        err = failure(ctx)
        assert (err.seq, str(err)) == (None, message)
        result = home.cli("audit", "verify")
        assert (result.exit_code, result.stderr) == (8, f"error: {message}\n")
    path.write_text(text, encoding="utf-8")
    assert verify(ctx).size == 12


def test_anchor_file_copied_under_another_name(ctx: Any) -> None:
    folder = ctx.settings.anchors_path
    text = (folder / anchor_name(10)).read_text(encoding="utf-8")
    (folder / anchor_name(10)).write_text(
        (folder / anchor_name(5)).read_text(encoding="utf-8"), encoding="utf-8"
    )
    err = failure(ctx)
    assert (err.seq, str(err)) == (
        None,
        f"anchor file {anchor_name(10)} holds the checkpoint at size 5 "
        f"(its name is {anchor_name(5)})",
    )
    (folder / anchor_name(10)).write_text(text, encoding="utf-8")
    assert verify(ctx).size == 12


def test_latest_anchor_deleted_is_a_warning_until_the_next_write(
    ctx: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """Indistinguishable from a writer killed before its anchor write: the
    database checkpoint is still verified, and the next write restores the file."""
    (ctx.settings.anchors_path / anchor_name(12)).unlink()
    report = verify(ctx)
    assert (report.checkpoints, report.anchors) == (4, 3)
    assert report.warnings == [UNANCHORED.format(size=12)]
    with caplog.at_level(logging.WARNING, logger="audits.ledger"):
        append(ctx, range(13, 14))
    assert caplog.messages == [REANCHORED.format(size=12)]
    assert anchor_files(ctx) == [anchor_name(n) for n in (3, 5, 10, 12, 13)]
    report = verify(ctx)
    assert (report.checkpoints, report.anchors, report.warnings) == (5, 5, [])


# -- finding 8: a real SIGKILL between commit and anchor write -----------------------
def _killed_after_commit(mp: Any, home: Any, runs: list[int]) -> list[int]:
    parent, child = mp.Pipe()
    proc = mp.Process(
        target=anchor_crash_writer, args=(str(home.path), home.database_url, runs, child)
    )
    proc.start()
    child.close()
    try:
        assert parent.poll(60), "the writer did not reach its anchor write"
        pending: list[int] = parent.recv()
    finally:
        proc.kill()
        proc.join(30)
    assert proc.exitcode == -signal.SIGKILL
    proc.close()
    parent.close()
    return pending


def test_writer_killed_between_commit_and_anchor_write(
    home: Any, caplog: pytest.LogCaptureFixture
) -> None:
    mp = mp_context()
    ctx = home.context()
    try:
        # 1. killed after committing the checkpoint at 5: only the latest lacks its file
        assert _killed_after_commit(mp, home, [4, 5]) == [5]
        assert (seqs(ctx), checkpoint_sizes(ctx)) == ([1, 2, 3, 4, 5], [3, 5])
        assert anchor_files(ctx) == [anchor_name(3)]
        report = verify(ctx)
        assert (report.size, report.checkpoints, report.anchors) == (5, 2, 1)
        assert report.warnings == [UNANCHORED.format(size=5)]
        result = home.cli("audit", "verify")
        assert (result.exit_code, result.stderr) == (0, f"warning: {UNANCHORED.format(size=5)}\n")

        # 2. the next writer anchors 5 before it commits, and is killed the same way
        assert _killed_after_commit(mp, home, [6, 7]) == [7]
        assert anchor_files(ctx) == [anchor_name(3), anchor_name(5)]
        report = verify(ctx)
        assert (report.size, report.checkpoints, report.anchors) == (7, 3, 2)
        assert report.warnings == [UNANCHORED.format(size=7)]

        # 3. the next honest write anchors 7 first, with a log message, then its own
        with caplog.at_level(logging.WARNING, logger="audits.ledger"):
            append(ctx, range(8, 9))
        assert caplog.messages == [REANCHORED.format(size=7)]
        assert anchor_files(ctx) == [anchor_name(n) for n in (3, 5, 7, 8)]
        report = verify(ctx)
        assert (report.size, report.checkpoints, report.anchors) == (8, 4, 4)
        assert report.warnings == []
    finally:
        ctx.close()


def test_writer_never_anchors_a_checkpoint_it_did_not_sign(ctx: Any) -> None:
    """A forged latest checkpoint without an anchor file is refused, not copied."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audits.signing import fingerprint

    other = Ed25519PrivateKey.generate()
    leaves = [bytes(r[0]) for r in sql(ctx, "SELECT leaf_hash FROM ledger_events ORDER BY seq")]
    forged = sign_checkpoint(other, 13, root(leaves), "2026-01-01T00:00:00.000000Z")
    sql(
        ctx,
        "INSERT INTO ledger_checkpoints (size, root_hash, issued_at, key_fingerprint, note, "
        "signature, frontier) VALUES (13, :r, :t, :f, :n, :g, '[]')",
        {
            "r": forged.root,
            "t": forged.issued_at,
            "f": forged.key_fingerprint,
            "n": forged.note,
            "g": forged.signature,
        },
    )
    ours = fingerprint(load_private_key(ctx.settings.keys_path / SIGNING_KEY_FILE).public_key())
    with pytest.raises(IntegrityError) as info:
        append(ctx, range(13, 14))
    assert str(info.value) == (
        "checkpoint at size 13 is not signed by this ledger's checkpoint key (checkpoint at "
        f"size 13 names key {forged.key_fingerprint}, not the given public key {ours}); "
        "refusing to build on it (run `govreg audit verify`)"
    )
    assert (seqs(ctx), anchor_files(ctx)) == (
        list(range(1, 13)),
        [anchor_name(n) for n in (3, 5, 10, 12)],
    )


def test_the_next_writer_waits_for_the_anchor_being_written(
    home: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A writer still writing its anchor after its commit holds the anchor folder's
    turn: the next writer waits, instead of finding that checkpoint unanchored and
    copying it with a false "its writer stopped" warning."""
    import threading
    import time

    import audits.ledger

    first, second = home.context(), home.context()
    real = audits.ledger.write_anchor
    writing = threading.Event()

    def slow(anchor_dir: Any, checkpoint: Any) -> Any:
        writing.set()
        time.sleep(0.5)
        return real(anchor_dir, checkpoint)

    monkeypatch.setattr(audits.ledger, "write_anchor", slow)
    try:
        with caplog.at_level(logging.WARNING, logger="audits.ledger"):
            writer = threading.Thread(target=append, args=(first, range(4, 5)))
            writer.start()
            assert writing.wait(30)  # seq 4 committed, its anchor not yet written
            append(second, range(5, 6))
            writer.join(30)
        assert caplog.messages == []
        assert anchor_files(second) == [anchor_name(n) for n in (3, 4, 5)]
        assert verify(second).warnings == []
    finally:
        first.close()
        second.close()
