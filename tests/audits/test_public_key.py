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
