"""Anchor folders: each log's signed notes, copied outside the database.

A log's writer commits an item (a ledger checkpoint, a decision batch), then
copies its signed note (:mod:`audits.notes`) into the log's anchor folder as
``<prefix>-<number, 12 digits>.txt``, where the number is the note's first body
line (a checkpoint's size, a batch's number). One :class:`AnchorLog` describes
one log's anchors: their names, how they are written and read, and the one
check of the stored items against them (:meth:`AnchorLog.check`):

1. every anchor file is a signed note of the log's origin and shape, named
   after its number, signed by the pinned key;
2. every anchored item is stored, and its signed text equals the anchor byte
   for byte (so deleting the newest items, or all of them, fails);
3. every stored item has its anchor file, except that the latest may lack one
   (its writer stopped between commit and anchor write; the next write
   anchors it): a warning. A file that appeared since the folder was read (a
   writer committed meanwhile) is read then, and checked as in 1 and 2.

A problem is an :class:`AnchorProblem`: raised as :class:`AnchorError`, or
returned as a warning. Each log words it for its users (its :class:`Wording`)
and raises its own error type (:func:`audits.verify.verify_ledger`,
:func:`serving.decisions.verify_decisions`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Generic, Literal, Protocol, TypeVar

from audits.notes import KeyMismatch, MalformedNote, SignatureInvalid, SignedNote, decimal
from core.errors import IntegrityError
from core.files import write_durably

if TYPE_CHECKING:
    from pathlib import Path

    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

T = TypeVar("T")


class Signed(Protocol):
    """A stored item as its anchor holds it."""

    def to_text(self) -> str: ...


class Kind(StrEnum):
    """What is wrong with an anchor folder."""

    UNREADABLE = "unreadable"  # the file cannot be read (detail: the OS error's name)
    MALFORMED = "malformed"  # not a signed note of the log's shape (detail: why)
    MISNAMED = "misnamed"  # holds item ``number``, but its name is another's
    WRONG_KEY = "wrong key"  # signed by key ``named``, not the pinned ``pinned``
    BAD_SIGNATURE = "bad signature"  # the signature does not verify with the pinned key
    NOT_STORED = "not stored"  # anchored, but not stored (the latest stored is ``latest``)
    DIFFERS = "differs"  # the anchor's text is not the stored item's signed text
    MISSING = "missing"  # a stored item's anchor file is missing
    # warnings
    LATEST_UNANCHORED = "latest unanchored"  # the latest stored item has no anchor yet
    BEFORE_ANCHORS = "before anchors"  # items up to ``number`` precede the first anchor


@dataclass(frozen=True)
class Wording:
    """A log's message for each :class:`Kind` of problem: a ``str.format`` template
    over the problem's fields (``path``, ``name``, ``number``, ``detail``,
    ``expected``, ``named``, ``pinned``, ``latest``, ``text_bytes``)."""

    unreadable: str
    malformed: str
    misnamed: str
    wrong_key: str
    bad_signature: str
    not_stored: str
    differs: str
    missing: str
    latest_unanchored: str
    before_anchors: str


@dataclass(frozen=True)
class AnchorProblem:
    kind: Kind
    path: Path  # the anchor file (or where it should be)
    number: int | None = None  # the item it is about, when known
    detail: str = ""
    expected: str = ""  # MISNAMED: the name of the item's anchor file
    named: str = ""  # WRONG_KEY: the key the anchor names (full fingerprint)
    pinned: str = ""  # WRONG_KEY: the pinned key (full fingerprint)
    latest: int = 0  # NOT_STORED: the latest stored item (0: none)
    text: str = ""  # DIFFERS: the anchor's text

    @property
    def name(self) -> str:
        return self.path.name

    def worded(self, wording: Wording) -> str:
        """The problem in the log's words."""
        template: str = getattr(wording, self.kind.name.lower())
        return template.format(
            path=self.path,
            name=self.name,
            number=self.number,
            detail=self.detail,
            expected=self.expected,
            named=self.named,
            pinned=self.pinned,
            latest=self.latest,
            text_bytes=len(self.text.encode()),
        )


class AnchorError(IntegrityError):
    """An anchor folder fails a check; ``problem`` says which (for the log to word)."""

    def __init__(self, problem: AnchorProblem) -> None:
        super().__init__(f"{problem.path}: {problem.kind} anchor")
        self.problem = problem


@dataclass(frozen=True)
class Anchor(Generic[T]):
    """An anchor file: its name, its exact text, its number and the log's item it holds."""

    name: str
    text: str
    number: int
    item: T


@dataclass(frozen=True)
class Checked(Generic[T]):
    """What :meth:`AnchorLog.check` found: every anchor (those read again included)
    and the warnings."""

    anchors: dict[int, Anchor[T]]
    warnings: list[AnchorProblem] = field(default_factory=list)


@dataclass(frozen=True)
class AnchorLog(Generic[T]):
    """One log's anchors: files ``<prefix>-<number>.txt`` holding signed notes of
    ``origin`` with ``lines`` body lines, written with ``mode``. ``decode`` checks
    a parsed note's body and returns the log's item (raising
    :class:`audits.notes.MalformedNote`)."""

    prefix: str
    origin: str
    lines: int
    decode: Callable[[SignedNote, str], T]
    mode: int = 0o644

    def name(self, number: int) -> str:
        return f"{self.prefix}-{number:012d}.txt"

    def write(self, folder: Path, number: int, text: str) -> Path:
        """Write item ``number``'s anchor (durable and atomic, one temporary file
        per writer: two writers may write the same anchor)."""
        path = folder / self.name(number)
        write_durably(path, text.encode(), mode=self.mode)
        return path

    def read(self, folder: Path, public_key: Ed25519PublicKey) -> dict[int, Anchor[T]]:
        """Every anchor file in ``folder`` by number (none if the folder is absent),
        each checked (1.); raises :class:`AnchorError` at the first bad one."""
        anchors: dict[int, Anchor[T]] = {}
        if folder.is_dir():
            for path in sorted(folder.glob(f"{self.prefix}-*.txt")):
                anchor = self.read_one(path, public_key)
                anchors[anchor.number] = anchor
        return anchors

    def read_one(self, path: Path, public_key: Ed25519PublicKey) -> Anchor[T]:
        """The anchor file ``path``, its shape, name and signature checked (1.)."""
        try:
            data = path.read_bytes()
        except OSError as exc:
            problem = AnchorProblem(Kind.UNREADABLE, path, detail=type(exc).__name__)
            raise AnchorError(problem) from exc
        source = str(path)
        try:
            note = SignedNote.parse(data, origin=self.origin, source=source, lines=self.lines)
            number = decimal(note.lines[0], source=source, what="number")
            item = self.decode(note, source)
        except MalformedNote as exc:
            raise AnchorError(AnchorProblem(Kind.MALFORMED, path, detail=exc.reason)) from exc
        if path.name != self.name(number):
            problem = AnchorProblem(Kind.MISNAMED, path, number, expected=self.name(number))
            raise AnchorError(problem)
        try:
            note.verify(public_key)
        except KeyMismatch as exc:
            problem = AnchorProblem(
                Kind.WRONG_KEY, path, number, named=exc.named, pinned=exc.expected
            )
            raise AnchorError(problem) from exc
        except SignatureInvalid as exc:
            raise AnchorError(AnchorProblem(Kind.BAD_SIGNATURE, path, number)) from exc
        return Anchor(path.name, data.decode("utf-8"), number, item)  # parse checked UTF-8

    def check(
        self,
        folder: Path,
        stored: Mapping[int, Signed],
        anchors: Mapping[int, Anchor[T]],
        public_key: Ed25519PublicKey,
        *,
        before_first: Literal["fail", "warn"] = "fail",
    ) -> Checked[T]:
        """Check the ``stored`` items (by number) against the ``anchors`` read from
        ``folder`` before the items were read (2. and 3.); raise :class:`AnchorError`
        at the first problem. With ``before_first="warn"``, stored items before the
        first anchored one (written before the log was anchored) are one warning;
        with ``"fail"`` each must have its anchor too."""
        found = dict(anchors)
        latest = max(stored, default=0)
        for anchor in found.values():
            self._compare(folder, stored, anchor, latest)
        warnings: list[AnchorProblem] = []
        first = min(found, default=latest) if before_first == "warn" else 0
        earlier = [number for number in stored if number < first]
        if earlier:
            warnings.append(
                AnchorProblem(Kind.BEFORE_ANCHORS, folder / self.name(first), max(earlier))
            )
        for number in sorted(set(stored) - set(found)):
            if number < first:
                continue
            path = folder / self.name(number)
            # Anchors were read before the stored items: an item committed since
            # has its file now, unless its writer stopped.
            if path.is_file():
                found[number] = anchor = self.read_one(path, public_key)
                self._compare(folder, stored, anchor, latest)
            elif number == latest:
                warnings.append(AnchorProblem(Kind.LATEST_UNANCHORED, path, number))
            else:
                raise AnchorError(AnchorProblem(Kind.MISSING, path, number))
        return Checked(found, warnings)

    def _compare(
        self, folder: Path, stored: Mapping[int, Signed], anchor: Anchor[T], latest: int
    ) -> None:
        item = stored.get(anchor.number)
        path = folder / anchor.name
        if item is None:
            raise AnchorError(AnchorProblem(Kind.NOT_STORED, path, anchor.number, latest=latest))
        if anchor.text != item.to_text():
            raise AnchorError(AnchorProblem(Kind.DIFFERS, path, anchor.number, text=anchor.text))
