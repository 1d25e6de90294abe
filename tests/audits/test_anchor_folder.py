"""The one anchor folder (audits/anchors.py) both logs use, on a log of its own:
names, durable writes, reads checked with the pinned key, and the check of stored
items against their anchors (the latest may lack one)."""

from __future__ import annotations

import dataclasses
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audits.anchors import AnchorError, AnchorLog, AnchorProblem, Kind, Wording
from audits.notes import SignedNote, fingerprint, sign

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
LOG: AnchorLog[SignedNote] = AnchorLog(
    prefix="item", origin="test/v1", lines=2, decode=lambda note, _source: note
)


def item(number: int, body: str = "x", key: Ed25519PrivateKey = KEY) -> SignedNote:
    return sign(key, "test/v1", [str(number), body])


def write(folder: Path, *numbers: int) -> dict[int, SignedNote]:
    items = {n: item(n) for n in numbers}
    for n, signed in items.items():
        LOG.write(folder, n, signed.to_text())
    return items


def problem(folder: Path, stored: dict[int, SignedNote]) -> AnchorProblem:
    """The problem reading and checking ``folder`` against ``stored`` raises."""
    try:
        anchors = LOG.read(folder, KEY.public_key())
        LOG.check(folder, stored, anchors, KEY.public_key())
    except AnchorError as exc:
        return exc.problem
    pytest.fail("no AnchorError")


def test_wording_has_one_template_per_kind() -> None:
    assert [f.name for f in dataclasses.fields(Wording)] == [k.name.lower() for k in Kind]


def test_write_then_read(tmp_path: Path) -> None:
    stored = write(tmp_path, 1, 2, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "item-000000000001.txt",
        "item-000000000002.txt",
        "item-000000000003.txt",
    ]
    assert stat.S_IMODE((tmp_path / LOG.name(1)).stat().st_mode) == 0o644
    anchors = LOG.read(tmp_path, KEY.public_key())
    assert {n: (a.name, a.text, a.item) for n, a in anchors.items()} == {
        n: (LOG.name(n), s.to_text(), s) for n, s in stored.items()
    }
    checked = LOG.check(tmp_path, stored, anchors, KEY.public_key())
    assert (sorted(checked.anchors), checked.warnings) == ([1, 2, 3], [])
    assert LOG.read(tmp_path / "absent", KEY.public_key()) == {}


def test_latest_may_lack_its_anchor_but_no_other(tmp_path: Path) -> None:
    stored = write(tmp_path, 1, 2, 3)
    (tmp_path / LOG.name(3)).unlink()
    anchors = LOG.read(tmp_path, KEY.public_key())
    checked = LOG.check(tmp_path, stored, anchors, KEY.public_key())
    assert checked.warnings == [AnchorProblem(Kind.LATEST_UNANCHORED, tmp_path / LOG.name(3), 3)]
    (tmp_path / LOG.name(2)).unlink()
    assert problem(tmp_path, stored) == AnchorProblem(Kind.MISSING, tmp_path / LOG.name(2), 2)


def test_items_before_the_first_anchor(tmp_path: Path) -> None:
    stored = {n: item(n) for n in (1, 2, 3, 4)}
    write(tmp_path, 3, 4)
    assert problem(tmp_path, stored).kind is Kind.MISSING  # the ledger's rule
    anchors = LOG.read(tmp_path, KEY.public_key())
    checked = LOG.check(tmp_path, stored, anchors, KEY.public_key(), before_first="warn")
    assert checked.warnings == [AnchorProblem(Kind.BEFORE_ANCHORS, tmp_path / LOG.name(3), 2)]
    # none anchored at all: the earlier ones and the latest are warnings
    empty = tmp_path / "empty"
    checked = LOG.check(empty, stored, {}, KEY.public_key(), before_first="warn")
    assert [(w.kind, w.number) for w in checked.warnings] == [
        (Kind.BEFORE_ANCHORS, 3),
        (Kind.LATEST_UNANCHORED, 4),
    ]


def test_an_anchor_written_since_the_folder_was_read_is_read_and_checked(tmp_path: Path) -> None:
    stored = write(tmp_path, 1, 2)
    anchors = LOG.read(tmp_path, KEY.public_key())
    stored[3] = item(3)
    LOG.write(tmp_path, 3, stored[3].to_text())  # a writer committed meanwhile
    stored[4] = item(4)
    checked = LOG.check(tmp_path, stored, anchors, KEY.public_key())
    assert sorted(checked.anchors) == [1, 2, 3]
    assert [(w.kind, w.number) for w in checked.warnings] == [(Kind.LATEST_UNANCHORED, 4)]
    LOG.write(tmp_path, 4, item(4, "y").to_text())
    with pytest.raises(AnchorError) as info:
        LOG.check(tmp_path, stored, anchors, KEY.public_key())
    assert (info.value.problem.kind, info.value.problem.number) == (Kind.DIFFERS, 4)


def test_anchored_but_not_stored_or_different(tmp_path: Path) -> None:
    stored = write(tmp_path, 1, 2, 3)
    del stored[3]
    assert problem(tmp_path, stored) == AnchorProblem(
        Kind.NOT_STORED, tmp_path / LOG.name(3), 3, latest=2
    )
    other = item(2, "y")
    LOG.write(tmp_path, 2, other.to_text())
    assert problem(tmp_path, {1: stored[1], 2: stored[2], 3: item(3)}) == AnchorProblem(
        Kind.DIFFERS, tmp_path / LOG.name(2), 2, text=other.to_text()
    )


def test_read_problems(tmp_path: Path) -> None:
    stored = write(tmp_path, 1, 2)
    first, second = (tmp_path / LOG.name(n) for n in (1, 2))
    second.write_text(first.read_text(encoding="utf-8"), encoding="utf-8")
    assert problem(tmp_path, stored) == AnchorProblem(
        Kind.MISNAMED, second, 1, expected=LOG.name(1)
    )
    second.write_text(item(2, key=OTHER).to_text(), encoding="utf-8")
    assert problem(tmp_path, stored) == AnchorProblem(
        Kind.WRONG_KEY,
        second,
        2,
        named=fingerprint(OTHER.public_key()),
        pinned=fingerprint(KEY.public_key()),
    )
    second.write_text(stored[2].to_text().replace("\nx\n", "\ny\n"), encoding="utf-8")
    assert problem(tmp_path, stored) == AnchorProblem(Kind.BAD_SIGNATURE, second, 2)
    second.write_text(stored[2].to_text().replace("test/v1", "test/v2"), encoding="utf-8")
    assert problem(tmp_path, stored) == AnchorProblem(
        Kind.MALFORMED, second, detail="header is 'test/v2'"
    )
    second.write_text(stored[2].to_text().replace("\n2\n", "\n02\n"), encoding="utf-8")
    assert problem(tmp_path, stored) == AnchorProblem(
        Kind.MALFORMED, second, detail="number '02' is not a decimal number"
    )
    second.unlink()
    second.mkdir()
    assert problem(tmp_path, stored) == AnchorProblem(
        Kind.UNREADABLE, second, detail="IsADirectoryError"
    )


def test_worded() -> None:
    wording = Wording(**{f.name: f.name + " {name} {number}" for f in dataclasses.fields(Wording)})
    found = AnchorProblem(Kind.MISSING, Path("/a/item-000000000002.txt"), 2)
    assert found.worded(wording) == "missing item-000000000002.txt 2"
