"""`govreg evidence verify` refuses a zip bomb with bounded memory.

A 509 KiB bundle whose two entries inflate to 510 MiB (the penetration test's
bundle peaked the verifier at 1.09 GB) is refused, naming the entry, and the
verifier's peak memory (``ru_maxrss`` of the child process that runs the CLI)
stays within a bound of a reference run that verifies a small zip.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from reports import bundle
from reports.bundle import BundleInvalid, read_zip

MiB = 1024 * 1024
# The CLI in a child process that reports its own peak resident size (KiB on Linux).
CHILD = """
import resource, sys
from govreg.cli import main
sys.argv = ["govreg", *sys.argv[1:]]
try:
    main()
finally:
    print("MAXRSS", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
"""


def _public_key(folder: Path) -> Path:
    path = folder / "checkpoint.pub"
    path.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return path


def _bomb(path: Path, names: tuple[str, ...], each: int = 255 * MiB) -> Path:
    """A zip holding a manifest and entries of ``each`` zero bytes (under the entry
    cap, so only counting stops them), written in chunks: the test never holds them."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        zf.writestr("manifest.json", b'{"files": []}')
        zero = bytes(MiB)
        for name in names:
            with zf.open(name, "w", force_zip64=True) as entry:
                for _ in range(each // MiB):
                    entry.write(zero)
    return path


def _verify(bundle_path: Path, key: Path) -> tuple[int, str, int]:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            "evidence",
            "verify",
            str(bundle_path),
            "--public-key",
            str(key),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    lines = done.stderr.splitlines()
    maxrss = int(next(line for line in lines if line.startswith("MAXRSS")).split()[1])
    message = "\n".join(line for line in lines if not line.startswith("MAXRSS"))
    return done.returncode, message, maxrss


@pytest.mark.slow
def test_a_zip_bomb_bundle_is_refused_with_bounded_memory(tmp_path: Path) -> None:
    key = _public_key(tmp_path)
    bomb = _bomb(tmp_path / "bomb.zip", ("report.pdf", "events/0001.json"))
    assert 480 * 1024 < bomb.stat().st_size < 540 * 1024  # the finding's 509 KiB
    small = tmp_path / "small.zip"
    with zipfile.ZipFile(small, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("manifest.json", b'{"files": []}')
    ref_code, ref_message, ref_rss = _verify(small, key)
    assert ref_code == 8, ref_message  # a zip, but no bundle: refused after reading it all
    code, message, rss = _verify(bomb, key)
    assert code == 8
    assert "'report.pdf': inflates more than 200 times its" in message, message
    assert "compressed bytes (a decompression bomb?)" in message
    # stopped after ~1 MiB inflated; without the caps the verifier holds 510 MiB or more
    assert rss - ref_rss < 64 * 1024, (rss, ref_rss)


def _zip(files: dict[str, bytes], path: Path) -> bytes:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, body in files.items():
            zf.writestr(name, body)
    return path.read_bytes()


def test_a_header_declaring_an_entry_over_the_cap_is_refused_before_inflating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bundle, "MAX_ENTRY_BYTES", 4 * MiB)
    data = _bomb(tmp_path / "big.zip", ("report.pdf",), each=5 * MiB).read_bytes()
    with pytest.raises(BundleInvalid) as refused:
        read_zip(data)
    assert str(refused.value) == "'report.pdf': declares 5242880 bytes, over the 4194304-byte limit"


def test_entry_and_total_caps_count_inflated_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random bytes do not compress (no ratio), so the size caps are what refuses."""
    import os

    body = os.urandom(3 * MiB)
    data = _zip({"a.bin": body, "b.bin": body}, tmp_path / "two.zip")
    assert set(read_zip(data)) == {"a.bin", "b.bin"}
    monkeypatch.setattr(bundle, "MAX_TOTAL_BYTES", 5 * MiB)
    with pytest.raises(BundleInvalid) as total:
        read_zip(data)
    assert str(total.value) == "'b.bin': the bundle inflates past its 5242880-byte limit"
    monkeypatch.setattr(bundle, "MAX_ENTRY_BYTES", 2 * MiB)
    with pytest.raises(BundleInvalid) as entry:
        read_zip(data)
    assert str(entry.value) == "'a.bin': declares 3145728 bytes, over the 2097152-byte limit"


def test_a_header_that_understates_the_size_does_not_pass_the_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The local and central headers say 1000 bytes; the data inflates to 3 MiB."""
    path = tmp_path / "lying.zip"
    data = bytearray(_zip({"a.bin": bytes(3 * MiB)}, path))
    real = (3 * MiB).to_bytes(4, "little")
    assert data.count(real) == 2  # the local header and the central directory
    data = data.replace(real, (1000).to_bytes(4, "little"))
    monkeypatch.setattr(bundle, "MAX_RATIO", 10**6)  # only the entry cap may stop it
    monkeypatch.setattr(bundle, "MAX_ENTRY_BYTES", 2 * MiB)
    with pytest.raises(BundleInvalid) as refused:
        read_zip(bytes(data))
    # zipfile stops at the declared size; the CRC then fails: never more than declared
    assert str(refused.value).startswith("bundle: not a readable zip file ('Bad CRC-32")


def test_too_many_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _zip({f"e{i}.json": b"{}" for i in range(12)}, tmp_path / "many.zip")
    monkeypatch.setattr(bundle, "MAX_ENTRIES", 10)
    with pytest.raises(BundleInvalid) as refused:
        read_zip(data)
    assert str(refused.value) == "bundle: 12 entries, over the limit of 10"
