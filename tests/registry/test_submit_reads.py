"""Submission reads each file exactly once, and its refusals never echo a file's content."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from core.errors import InputError
from core.files import ImportedPath

_recording: list[list[tuple[Any, int]]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    # os.open and open() both raise the "open" audit event: (path, mode, flags)
    # (a descriptor opened as a file, e.g. the model probe's pipe, is not a path: skipped)
    if event == "open" and _recording and isinstance(args[0], str | bytes | os.PathLike):
        _recording[-1].append((args[0], args[2]))


sys.addaudithook(_audit)  # a hook cannot be removed; it records only inside opens()


@contextmanager
def opens() -> Iterator[list[tuple[Any, int]]]:
    seen: list[tuple[Any, int]] = []
    _recording.append(seen)
    try:
        yield seen
    finally:
        _recording.pop()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_a_submission_by_reference_opens_each_file_once_beneath_the_folder(
    kit: Any, tmp_path: Path
) -> None:
    root = tmp_path / "imports"
    (root / "team").mkdir(parents=True)
    (root / "model.txt").write_bytes(kit.files.model.read_bytes())
    (root / "team" / "train.csv").write_bytes(kit.files.train_csv.read_bytes())
    (root / "validation.parquet").write_bytes(kit.files.validation_parquet.read_bytes())
    kit.people("ds-1")
    with opens() as seen:
        number = kit.submit(
            artifact=ImportedPath(root, "model.txt"),
            train=ImportedPath(root, "team/train.csv"),
            validation=ImportedPath(root, "validation.parquet"),
        )
    assert number == 1
    folder = str(root)  # the audit event gives the path as os.open was given it, a str
    beneath = [(p, flags) for p, flags in seen if str(p) == folder or not os.path.isabs(p)]
    assert [path for path, _ in beneath] == [
        folder, "model.txt",
        folder, "team", "train.csv",
        folder, "validation.parquet",
    ]  # fmt: skip
    for path, flags in beneath:
        if path != folder:
            assert flags & os.O_NOFOLLOW, path
    # nothing else opened the files by their full paths
    outside = {str(p) for p in root.rglob("*")}
    assert [path for path, _ in seen if str(path) in outside] == []
    row = kit.row()
    assert row["artifact_digest"] == sha((root / "model.txt").read_bytes())
    assert row["train_digest"] == sha((root / "team" / "train.csv").read_bytes())
    assert row["validation_digest"] == sha((root / "validation.parquet").read_bytes())
    kit.verify()


def test_a_submission_from_the_command_line_opens_each_file_once(kit: Any) -> None:
    files = kit.files
    kit.people("ds-1")
    with opens() as seen:
        kit.submit(artifact=files.model, train=files.train_csv, validation=files.validation_csv)
    names = [str(path) for path, _ in seen]
    for path in (files.model, files.train_csv, files.validation_csv):
        assert names.count(str(path)) == 1, path
    assert kit.row()["train_digest"] == sha(files.train_csv.read_bytes())


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_refusals_quote_file_values_short_and_escaped(kit: Any, tmp_path: Path) -> None:
    """A file's values appear in a refusal only cut short and escaped."""
    files = kit.files
    secret = "MC4CAQAwBQYDK2VwBCIEIKbV3PJMXQ3ZOQqyUCK9TSrXG6Ibf4lIafIoar6rP44X"
    cases = {
        "long values in the target": (
            {"validation": _write(tmp_path / "v1.csv", f"default\n{secret}\n-----END-----\n")},
            {"target": "default"},
            "target column 'default' in {path} is not binary: it must hold 0 and 1 only, "
            "both present, no missing values (found ['-----...', 'MC4CA...'])",
        ),
        "many values": (
            {"validation": _write(tmp_path / "v2.csv", "default\n0\n1\n2\n3\n4\n")},
            {"target": "default"},
            "target column 'default' in {path} is not binary: it must hold 0 and 1 only, "
            "both present, no missing values (found ['0', '1', '2'] and 2 more)",
        ),
        "control characters": (
            {"validation": _write(tmp_path / "v3.csv", 'default\n"a\x1b[2Jb"\n1\n')},
            {"target": "default"},
            "target column 'default' in {path} is not binary: it must hold 0 and 1 only, "
            "both present, no missing values (found ['1', 'a\\x1b...'])",
        ),
        "a long column name": (
            {"validation": _write(tmp_path / "v4.csv", f"{secret},b\x07ell\n1,2\n")},
            {"target": "default"},
            "dataset {path} has no target column 'default'; pass --target with one of "
            f"'{secret[:37]}...', 'b\\x07ell'",
        ),
    }
    kit.people("ds-1")
    before = kit.state()
    for case, (paths, options, message) in cases.items():
        with pytest.raises(InputError) as caught:
            kit.submit(**paths, **options)
        assert str(caught.value) == message.format(path=paths["validation"]), case
        assert secret not in str(caught.value)
    assert kit.state() == before
    assert files.model.exists()
