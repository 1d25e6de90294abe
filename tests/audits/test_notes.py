"""The signed note (audits/notes.py): the one text format of ledger checkpoints and
decision batches. Its texts are byte for byte those govreg wrote before the note
was shared (homes, anchor files and stored signatures verify as they are), it
parses only what it writes, and it names full key fingerprints."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from audits.notes import (
    KeyMismatch,
    MalformedNote,
    NoteError,
    SignatureInvalid,
    SignedNote,
    decimal,
    decode_b64,
    fingerprint,
    sign,
)
from audits.signing import NOTE_HEADER, SignedCheckpoint, sign_checkpoint
from core.errors import IntegrityError
from serving.decisions import ORIGIN, DecisionVerificationFailed, SignedBatch

# A fixed key: Ed25519 signatures are deterministic, so the texts below are fixed too.
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
FPR = "56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c"
OTHER = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
ROOT = hashlib.sha256(b"root").digest()
BATCH_HASH = hashlib.sha256(b"batch").digest()

# What govreg wrote before audits.notes (computed with the code of 130e2fb).
CHECKPOINT_TEXT = (
    "govreg-ledger/v1 56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c\n"
    "12\n"
    "SBNJTRN+FjG7owHVrKtue7eqdM4RhdRWVl71HXN2d7I=\n"
    "2026-12-03T14:00:00.000000Z\n"
    "\n"
    "\u2014 56475aa75463474c MSXiYCvadizP86Iz3Amy6KB21YdSlLN5KzpKfTdrX4KfTKmBe8ctrOe/TOEGD2N7"
    "ZhQrCIDiP6jIZUep4Gx0Dw==\n"
)
BATCH_TEXT = (
    "govreg-decisions/v1 56475aa75463474c0285df5dbf2bcab73da651358839e9b77481b2eab107708c\n"
    "3\n"
    "30\n"
    "S7JO/JZBr8Xe0cp36rtuL88GLSESzNYb2L1qzYkYC64=\n"
    "2026-12-03T14:00:01.000000Z\n"
    "\n"
    "\u2014 56475aa75463474c smHGADQx0An9lywYI8FWbwcx4xWl+O4TFn2iWXRfPwu9lKN17jYJsMRLygv1ZfAW"
    "Udl39kjvIIi7izemiYSXCw==\n"
)


def batch(signature: bytes) -> SignedBatch:
    return SignedBatch(
        batch=3,
        first_seq=21,
        last_seq=30,
        written_at="2026-12-03T14:00:01.000000Z",
        root=bytes(32),
        prev_hash=bytes(32),
        batch_hash=BATCH_HASH,
        key_fingerprint=FPR,
        signature=signature,
    )


def test_fixed_key_fingerprint() -> None:
    assert fingerprint(KEY.public_key()) == FPR


def test_checkpoint_text_is_byte_identical_and_round_trips() -> None:
    cp = sign_checkpoint(KEY, 12, ROOT, "2026-12-03T14:00:00.000000Z")
    assert cp.to_text() == CHECKPOINT_TEXT
    assert cp.note == CHECKPOINT_TEXT.split("\n\n", maxsplit=1)[0] + "\n"
    parsed = SignedCheckpoint.from_text(CHECKPOINT_TEXT, source="anchor")
    assert parsed == cp
    assert SignedCheckpoint.from_text(CHECKPOINT_TEXT.encode(), source="anchor") == cp
    parsed.verify(KEY.public_key())
    note = SignedNote.parse(CHECKPOINT_TEXT, origin=NOTE_HEADER, source="anchor", lines=3)
    assert note == cp.signed_note
    assert note.lines == ("12", "SBNJTRN+FjG7owHVrKtue7eqdM4RhdRWVl71HXN2d7I=", cp.issued_at)
    assert note.to_text() == CHECKPOINT_TEXT


def test_batch_text_is_byte_identical_and_round_trips() -> None:
    lines = ("3", "30", base64.b64encode(BATCH_HASH).decode(), "2026-12-03T14:00:01.000000Z")
    signed = sign(KEY, ORIGIN, lines)
    assert signed.to_text() == BATCH_TEXT
    stored = batch(signed.signature)
    assert stored.to_text() == BATCH_TEXT
    assert stored.signed_note == signed
    stored.verify(KEY.public_key())
    parsed = SignedNote.parse(BATCH_TEXT, origin=ORIGIN, source="anchor", lines=4)
    assert parsed == signed
    assert parsed.to_text() == BATCH_TEXT


def test_signature_verification() -> None:
    note = sign(KEY, "test/v1", ["a", "b"])
    note.verify(KEY.public_key())
    # another body under the same signature
    with pytest.raises(SignatureInvalid) as info:
        SignedNote(note.origin, note.key_fingerprint, ("a", "c"), note.signature).verify(
            KEY.public_key()
        )
    assert str(info.value) == "signature does not verify with the public key"
    # another origin under the same signature: the origin is signed too
    with pytest.raises(SignatureInvalid):
        SignedNote("test/v2", note.key_fingerprint, note.lines, note.signature).verify(
            KEY.public_key()
        )
    # the key named is not the given one
    with pytest.raises(KeyMismatch) as mismatch:
        note.verify(OTHER.public_key())
    other = fingerprint(OTHER.public_key())
    assert (mismatch.value.named, mismatch.value.expected) == (FPR, other)
    assert str(mismatch.value) == f"signed by key {FPR}, not the given public key {other}"


def test_mismatch_messages_name_full_fingerprints() -> None:
    other = fingerprint(OTHER.public_key())
    cp = SignedCheckpoint.from_text(CHECKPOINT_TEXT, source="anchor")
    with pytest.raises(IntegrityError) as info:
        cp.verify(OTHER.public_key())
    assert str(info.value) == (
        f"checkpoint at size 12 names key {FPR}, not the given public key {other}"
    )
    forged = SignedCheckpoint(12, ROOT, cp.issued_at, FPR, OTHER.sign(cp.note.encode()))
    with pytest.raises(IntegrityError) as info:
        forged.verify(KEY.public_key())
    assert str(info.value) == (
        "checkpoint at size 12: signature does not verify with the public key"
    )
    signed = batch(SignedNote.parse(BATCH_TEXT, origin=ORIGIN, source="b").signature)
    with pytest.raises(DecisionVerificationFailed) as failed:
        signed.verify(OTHER.public_key())
    assert str(failed.value) == f"batch 3: signed by key {FPR}, not the pinned key {other}"
    assert failed.value.batch == 3
    # a malformed signature line names the note's whole key, never 16 digits of it
    text = CHECKPOINT_TEXT.replace("\u2014 56475aa75463474c", "\u2014 0000000000000000")
    with pytest.raises(MalformedNote) as malformed:
        SignedNote.parse(text, origin=NOTE_HEADER, source="f")
    assert str(malformed.value) == (
        "f: not a signed note (the signature line names key '0000000000000000', which does "
        f"not begin the note's key {FPR})"
    )


SIG = CHECKPOINT_TEXT.split("\n")[-2].split(" ")[2]
NOTE = CHECKPOINT_TEXT.split("\n\n", maxsplit=1)[0]
SIG_LINE = f"\u2014 {FPR[:16]} {SIG}"
SHAPE = (
    "not an origin line, body lines, a blank line and a signature line, each ending in a newline"
)
BLANK = "not one blank line, just before the signature line"
MALFORMED: dict[str, tuple[str | bytes, str]] = {
    "not UTF-8": (
        b"\xff" + CHECKPOINT_TEXT.encode(),
        "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte",
    ),
    "empty": ("", SHAPE),
    "no final newline": (CHECKPOINT_TEXT[:-1], SHAPE),
    "too short": (f"{NOTE_HEADER} {FPR}\n\n", SHAPE),
    "no blank line": (f"{NOTE}\n{SIG_LINE}\n", BLANK),
    "two blank lines": (f"{NOTE}\n\n\n{SIG_LINE}\n", BLANK),
    "a trailing line": (CHECKPOINT_TEXT + "\n", BLANK),
    "an empty body line": (f"{NOTE_HEADER} {FPR}\n12\n\nx\n\n{SIG_LINE}\n", BLANK),
    "CRLF line ends": (CHECKPOINT_TEXT.replace("\n", "\r\n"), BLANK),
    "a CR in a body line": (
        CHECKPOINT_TEXT.replace("\n12\n", "\n12\r\n"),
        "line 2 is not printable ASCII",
    ),
    "non-ASCII in the note": (
        CHECKPOINT_TEXT.replace("\n12\n", "\n\u0661\u0662\n"),
        "line 2 is not printable ASCII",
    ),
    "non-ASCII origin": (
        CHECKPOINT_TEXT.replace("v1", "v\u00b9", 1),
        "line 1 is not printable ASCII",
    ),
    "another origin": (CHECKPOINT_TEXT.replace(NOTE_HEADER, "x"), "header is 'x'"),
    "the decision log's origin": (BATCH_TEXT, "header is 'govreg-decisions/v1'"),
    "no key": (
        CHECKPOINT_TEXT.replace(f" {FPR}\n", "\n", 1),
        "key '' is not 64 lowercase hexadecimal digits",
    ),
    "an upper-case key": (
        CHECKPOINT_TEXT.replace(FPR, FPR.upper(), 1),
        f"key '{FPR.upper()}' is not 64 lowercase hexadecimal digits",
    ),
    "a short key": (
        CHECKPOINT_TEXT.replace(FPR, FPR[:63], 1),
        f"key '{FPR[:63]}' is not 64 lowercase hexadecimal digits",
    ),
    "two spaces in the origin line": (
        CHECKPOINT_TEXT.replace(f" {FPR}", f"  {FPR}", 1),
        f"key ' {FPR}' is not 64 lowercase hexadecimal digits",
    ),
    "a body line too many": (f"{NOTE}\nx\n\n{SIG_LINE}\n", "4 body lines, expected 3"),
    "a body line too few": (CHECKPOINT_TEXT.replace("\n12\n", "\n", 1), "2 body lines, expected 3"),
    "no dash": (
        CHECKPOINT_TEXT.replace("\u2014", "-"),
        "no signature line ('\u2014 <key> <signature>')",
    ),
    "no signature": (
        f"{NOTE}\n\n\u2014 {FPR[:16]}\n",
        "no signature line ('\u2014 <key> <signature>')",
    ),
    "a field too many": (
        f"{NOTE}\n\n{SIG_LINE} x\n",
        "no signature line ('\u2014 <key> <signature>')",
    ),
    "a tab in the signature line": (
        f"{NOTE}\n\n\u2014\t{FPR[:16]} {SIG}\n",
        "no signature line ('\u2014 <key> <signature>')",
    ),
    "the full key in the signature line": (
        f"{NOTE}\n\n\u2014 {FPR} {SIG}\n",
        f"the signature line names key '{FPR}', which does not begin the note's key {FPR}",
    ),
    "a signature not base64": (
        f"{NOTE}\n\n\u2014 {FPR[:16]} {SIG[:-3]}*==\n",
        f"signature '{SIG[:-3]}*==' is not canonical base64 of 64 bytes",
    ),
    "a signature without padding": (
        f"{NOTE}\n\n\u2014 {FPR[:16]} {SIG[:-2]}\n",
        f"signature '{SIG[:-2]}' is not canonical base64 of 64 bytes",
    ),
    "a signature with other trailing bits": (
        f"{NOTE}\n\n\u2014 {FPR[:16]} {SIG[:-3]}x==\n",
        f"signature '{SIG[:-3]}x==' is not canonical base64 of 64 bytes",
    ),
    "a short signature": (
        f"{NOTE}\n\n\u2014 {FPR[:16]} {base64.b64encode(bytes(63)).decode()}\n",
        f"signature '{base64.b64encode(bytes(63)).decode()}' is not canonical base64 of 64 bytes",
    ),
    "a non-ASCII signature": (
        f"{NOTE}\n\n\u2014 {FPR[:16]} {SIG[:-3]}\u00e9==\n",
        f"signature '{SIG[:-3]}\\xe9==' is not canonical base64 of 64 bytes",
    ),
}


@pytest.mark.parametrize("case", MALFORMED)
def test_every_malformed_shape_is_named(case: str) -> None:
    text, reason = MALFORMED[case]
    with pytest.raises(MalformedNote) as info:
        SignedNote.parse(text, origin=NOTE_HEADER, source="anchors/x.txt", lines=3)
    assert (info.value.source, info.value.reason) == ("anchors/x.txt", reason)
    assert str(info.value) == f"anchors/x.txt: not a signed note ({reason})"
    # a checkpoint says it is not one, with the same reason
    with pytest.raises(IntegrityError) as checkpoint:
        SignedCheckpoint.from_text(text, source="anchors/x.txt")
    assert str(checkpoint.value) == f"anchors/x.txt: not a govreg checkpoint ({reason})"


def test_not_text_is_malformed() -> None:
    with pytest.raises(MalformedNote) as info:
        SignedNote.parse(12, origin=NOTE_HEADER, source="s")  # type: ignore[arg-type]  # a hostile caller's value
    assert info.value.reason == "int is not text"


@pytest.mark.parametrize(
    ("size", "root", "reason"),
    [
        (
            "012",
            "SBNJTRN+FjG7owHVrKtue7eqdM4RhdRWVl71HXN2d7I=",
            "size '012' is not a decimal number",
        ),
        (
            "+12",
            "SBNJTRN+FjG7owHVrKtue7eqdM4RhdRWVl71HXN2d7I=",
            "size '+12' is not a decimal number",
        ),
        (
            "1_2",
            "SBNJTRN+FjG7owHVrKtue7eqdM4RhdRWVl71HXN2d7I=",
            "size '1_2' is not a decimal number",
        ),
        ("12", "AAAA", "root 'AAAA' is not canonical base64 of 32 bytes"),
    ],
)
def test_checkpoint_body_is_strict(size: str, root: str, reason: str) -> None:
    note = sign(KEY, NOTE_HEADER, [size, root, "2026-12-03T14:00:00.000000Z"])
    with pytest.raises(MalformedNote) as info:
        SignedCheckpoint.from_text(note.to_text(), source="cp")
    assert str(info.value) == f"cp: not a govreg checkpoint ({reason})"


def test_helpers() -> None:
    assert decimal("0", source="s", what="n") == 0
    assert decimal("120", source="s", what="n") == 120
    for bad in ("", "-1", "01", " 1", "\u0661"):
        with pytest.raises(MalformedNote):
            decimal(bad, source="s", what="n")
    assert decode_b64("AAA=", source="s", what="b") == bytes(2)
    with pytest.raises(MalformedNote):
        decode_b64("AAA=", source="s", what="b", length=3)


@pytest.mark.parametrize(
    ("origin", "lines"),
    [("test/v1", []), ("test/v1", [""]), ("test/v1", ["a\nb"]), ("two words", ["a"]), ("", ["a"])],
)
def test_sign_refuses_a_note_parse_would_refuse(origin: str, lines: list[str]) -> None:
    with pytest.raises(ValueError, match=r"note|origin"):
        sign(KEY, origin, lines)


# -- fuzz: whatever the text, parse raises its own error or returns a note --------------
def _mutations() -> st.SearchStrategy[str]:
    """Texts near a valid one: a slice cut out, a character put in or replaced."""
    alphabet = st.sampled_from(["\n", " ", "\u2014", "=", "A", "0", "\r", "\x00", "\u00e9"])

    @st.composite
    def mutated(draw: st.DrawFn) -> str:
        text = draw(st.sampled_from([CHECKPOINT_TEXT, BATCH_TEXT]))
        for _ in range(draw(st.integers(1, 3))):
            at = draw(st.integers(0, len(text)))
            end = draw(st.integers(at, min(len(text), at + 4)))
            text = text[:at] + draw(st.text(alphabet, max_size=3)) + text[end:]
        return text

    return mutated()


def _parse_or_note_error(data: str | bytes) -> None:
    for origin, lines in ((NOTE_HEADER, 3), (ORIGIN, None)):
        try:
            note = SignedNote.parse(data, origin=origin, source="fuzz", lines=lines)
        except NoteError as exc:
            message = str(exc)
            assert message.startswith("fuzz: not a signed note (")
            continue
        # what parses writes back the same text
        text = data if isinstance(data, str) else data.decode("utf-8")
        assert note.to_text() == text


@given(st.one_of(st.text(), st.binary(), _mutations(), _mutations().map(str.encode)))
def test_parse_raises_only_its_own_error(data: str | bytes) -> None:
    _parse_or_note_error(data)
