"""core.files: a file under a trusted folder opened once, relative to the folder,
following no symbolic link; and the error-message quoting of core.errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import InputError, quote
from core.files import ImportedPath, components, read_beneath, read_file

SECRET = b"-----BEGIN PRIVATE KEY-----\nTOP-SECRET-LINE\n-----END PRIVATE KEY-----\n"


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``imports/`` with real files and folders and links of every kind to ``secret.key``
    beside it (outside the folder)."""
    base = tmp_path_factory.mktemp("tree")
    (base / "secret.key").write_bytes(SECRET)
    root = base / "imports"
    (root / "a" / "b").mkdir(parents=True)
    (root / "top.csv").write_bytes(b"x,y\n1,2\n")
    (root / "a" / "b" / "deep.csv").write_bytes(b"deep\n")
    (root / "leaf.csv").symlink_to(base / "secret.key")
    (root / "relative.csv").symlink_to("../secret.key")
    (root / "up").symlink_to(base, target_is_directory=True)
    (root / "a" / "b" / "loop").symlink_to("loop")
    (root / "dangling.csv").symlink_to(base / "nothing")
    (base / "other.key").write_bytes(SECRET.replace(b"TOP", b"OTHER"))
    (root / "hard.key").hardlink_to(base / "other.key")
    return root


def _read(root: Path, relative: str, max_bytes: int = 1000) -> bytes:
    return read_beneath(ImportedPath(root, relative), "train dataset", max_bytes=max_bytes)


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("top.csv", b"x,y\n1,2\n"),
        ("./top.csv", b"x,y\n1,2\n"),
        ("a//b/./deep.csv", b"deep\n"),
    ],
)
def test_real_files_are_read(tree: Path, relative: str, expected: bytes) -> None:
    assert _read(tree, relative) == expected


LINK = "is a symbolic link; the import folder is read only through real folders and files"


@pytest.mark.parametrize(
    ("relative", "message"),
    [
        ("leaf.csv", f"train dataset path 'leaf.csv': 'leaf.csv' {LINK}"),
        ("relative.csv", f"train dataset path 'relative.csv': 'relative.csv' {LINK}"),
        ("up/secret.key", f"train dataset path 'up/secret.key': 'up' {LINK}"),
        ("a/b/loop", f"train dataset path 'a/b/loop': 'loop' {LINK}"),
        ("a/b/loop/x.csv", f"train dataset path 'a/b/loop/x.csv': 'loop' {LINK}"),
        ("dangling.csv", f"train dataset path 'dangling.csv': 'dangling.csv' {LINK}"),
        (
            "../secret.key",
            "train dataset path '../secret.key' contains '..'; name a file "
            "inside the server's import folder",
        ),
        (
            "a/../../secret.key",
            "train dataset path 'a/../../secret.key' contains '..'; name "
            "a file inside the server's import folder",
        ),
        (
            "/etc/passwd",
            "train dataset path '/etc/passwd' is absolute; name a file relative "
            "to the server's import folder",
        ),
        ("top.csv\x00", "train dataset path 'top.csv\\x00' contains a NUL byte"),
        ("", "train dataset path is empty; name a file inside the server's import folder"),
        (
            "./",
            "train dataset path './' names no file; name a file inside the server's import folder",
        ),
        ("top.csv/x", "train dataset path 'top.csv/x': 'top.csv' is not a folder"),
        ("a", "train dataset path 'a' is not a regular file"),
        (
            "hard.key",
            "train dataset file 'hard.key' has 2 hard links; copy it into the "
            "import folder (a hard link can name a file outside it)",
        ),
        (
            "no.csv",
            "train dataset file 'no.csv' does not exist in the server's import "
            "folder; check the path",
        ),
        ("x" * 300, f"train dataset path {quote('x' * 300)} cannot be opened: File name too long"),
    ],
)
def test_hostile_paths_are_refused(tree: Path, relative: str, message: str) -> None:
    with pytest.raises(InputError) as caught:
        _read(tree, relative)
    assert str(caught.value) == message


def test_size_is_checked_on_the_open_descriptor(tree: Path) -> None:
    with pytest.raises(InputError) as caught:
        _read(tree, "top.csv", max_bytes=3)
    assert str(caught.value) == "train dataset file 'top.csv' is 8 bytes, over the 3-byte limit"


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.csv")
    with pytest.raises(InputError) as caught:
        _read(tmp_path, "pipe.csv")  # O_NONBLOCK: returns at once
    assert str(caught.value) == "train dataset path 'pipe.csv' is not a regular file"
    with pytest.raises(InputError) as caught:
        read_file(tmp_path / "pipe.csv", "train dataset", max_bytes=10)
    assert str(caught.value) == f"train dataset path {tmp_path / 'pipe.csv'} is not a file"


def test_a_missing_import_folder_is_named_without_its_path(tmp_path: Path) -> None:
    with pytest.raises(InputError) as caught:
        _read(tmp_path / "gone", "top.csv")
    assert str(caught.value) == (
        "the server's import folder cannot be opened (No such file or directory); tell its operator"
    )


def test_the_swap_window_is_closed_by_the_descriptor(tmp_path: Path) -> None:
    """A folder swapped for a link after the path was checked: the walk opens the
    link itself, so the refusal happens at read time, where the old code checked
    earlier and read later."""
    root = tmp_path / "imports"
    (root / "good").mkdir(parents=True)
    (root / "good" / "t.csv").write_bytes(b"ok\n")
    imported = ImportedPath(root, "good/t.csv")
    assert components(imported.relative, what="train") == ["good", "t.csv"]
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "t.csv").write_bytes(SECRET)
    (root / "good").rename(root / "was-good")
    (root / "good").symlink_to(tmp_path / "outside", target_is_directory=True)
    with pytest.raises(InputError, match="'good' is a symbolic link"):
        read_beneath(imported, "train dataset", max_bytes=100)


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.lists(
        st.sampled_from(
            [
                "",
                ".",
                "..",
                "a",
                "b",
                "top.csv",
                "deep.csv",
                "leaf.csv",
                "relative.csv",
                "up",
                "loop",
                "secret.key",
                "hard.key",
                "imports",
                "\x00",
                "/",
            ]
        ),
        max_size=6,
    ).map("/".join)
    | st.text(max_size=40)
)
def test_no_path_reads_outside_the_folder(tree: Path, relative: str) -> None:
    """Whatever the path, the read returns a file inside the folder or refuses
    with an InputError; never the secret beside the folder, never another error."""
    message = ""
    try:
        data = _read(tree, relative)
    except InputError as exc:
        message = str(exc)
        data = None
    assert "SECRET" not in message
    assert data in (None, b"x,y\n1,2\n", b"deep\n")


@given(st.text(max_size=200))
def test_components_fuzz(relative: str) -> None:
    try:
        parts = components(relative, what="train")
    except InputError:
        return
    assert parts
    for part in parts:
        assert part not in ("", ".", "..")
        assert "/" not in part
        assert "\x00" not in part
    assert not relative.startswith("/")


@pytest.mark.parametrize(
    ("value", "limit", "expected"),
    [
        ("income", 40, "'income'"),
        ("a'b", 40, "'a\\'b'"),
        ("line\nnext\x00", 40, "'line\\nnext\\x00'"),
        ("é", 40, "'\\xe9'"),
        ("MC4CAQAwBQYDK2VwBCIEIKbV3PJMXQ3ZOQ", 8, "'MC4CA...'"),
        ("x" * 100, 40, "'" + "x" * 37 + "...'"),
        (3.5, 40, "'3.5'"),
    ],
)
def test_quote(value: object, limit: int, expected: str) -> None:
    assert quote(value, limit) == expected


@given(st.text(), st.integers(min_value=4, max_value=60))
def test_quote_is_short_and_printable_ascii(value: str, limit: int) -> None:
    shown = quote(value, limit)
    assert len(shown) <= limit + 2
    assert shown.isascii()
    assert shown.isprintable()
