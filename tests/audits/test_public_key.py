"""Loading the pinned checkpoint public key, as serving and auditors do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audits.signing import load_public_key
from core.errors import ConfigError


def test_a_str_path_loads_the_same_key_as_a_path(sqlite_home: Any) -> None:
    path = sqlite_home.settings().public_key_path
    from_path = load_public_key(path)
    from_str = load_public_key(str(path))
    assert from_str.public_bytes_raw() == from_path.public_bytes_raw()


def test_a_missing_key_file_is_a_config_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "pinned" / "checkpoint.pub"
    with pytest.raises(ConfigError, match=r"public key .*pinned/checkpoint\.pub is unreadable"):
        load_public_key(str(missing))


def test_verify_with_a_key_kept_elsewhere_prints_full_fingerprints(
    home: Any, tmp_path: Path
) -> None:
    """Issue 13, finding 9: a fingerprint differing only after its 16th digit
    used to read 'names key 05473a7dc704be1a, not the given public key
    05473a7dc704be1a'."""
    import shutil

    from ledger_helpers import drop_guard_rails, sql

    from audits.signing import fingerprint

    kept = tmp_path / "offline" / "checkpoint.pub"  # the copy the README asks for
    kept.parent.mkdir()
    shutil.copy(home.settings().public_key_path, kept)
    ours = fingerprint(load_public_key(kept))
    result = home.cli("audit", "verify", "--public-key", str(kept))
    assert (result.exit_code, result.stderr) == (0, "")
    assert result.stdout.endswith(
        f" 1 signed checkpoints and 1 anchors verified with key {ours}; every event "
        "authenticator checked with the signing key\n"
    )

    forged = ours[:-1] + ("0" if ours[-1] != "0" else "1")
    ctx = home.context()
    try:
        drop_guard_rails(ctx)
        sql(ctx, "UPDATE ledger_checkpoints SET key_fingerprint = :f WHERE size = 3", {"f": forged})
    finally:
        ctx.close()
    result = home.cli("audit", "verify", "--public-key", str(kept))
    assert (result.exit_code, result.stdout) == (8, "")
    assert result.stderr == (
        f"error: database checkpoint at size 3 names key {forged}, "
        f"not the given public key {ours}\n"
    )
    assert len(ours) == 64
