"""Submission by reference reads the import folder safely, over real HTTP.

The server reads each named file once, opened relative to the import folder's
own descriptor one component at a time without following symbolic links; a
folder swapped while a submission runs can make it read another file of the
folder, never one outside it (the checkpoint signing key, say).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import Server, make_principal, start_server, stop
from govreg_kit import PROTECTED, TARGET

PEM_HEADER = "-----BEGIN PRIVATE KEY-----"
TRIES = 300
SECONDS = 10.0


@pytest.fixture
def imports(tmp_path: Path, inputs: Any) -> Path:
    """An import folder: the model and validation data at its top, the training
    data in ``good/``, and ``evil/train.csv`` a symbolic link to the signing key."""
    folder = tmp_path / "imports"
    (folder / "good").mkdir(parents=True)
    (folder / "evil").mkdir()
    (folder / "model.txt").write_bytes(inputs.model.read_bytes())
    (folder / "validation.csv").write_bytes(inputs.validation_csv.read_bytes())
    (folder / "good" / "train.csv").write_bytes(inputs.train_csv.read_bytes())
    return folder


@pytest.fixture
def server(home: Any, imports: Path) -> Iterator[Server]:
    (imports / "evil" / "train.csv").symlink_to(home.path / "keys" / "checkpoint.key")
    srv = start_server(home, env={"GOVREG_IMPORT_DIR": str(imports)})
    with srv.client("admin") as admin:
        for name, role in (("ds-1", "data_scientist"), ("auditor-1", "auditor")):
            made = make_principal(admin, name, role)
            assert made.status_code == 201, made.text
            srv.keys[role] = made.json()["api_key"]
    yield srv
    stop(srv)


def _by_reference(client: httpx.Client, **overrides: Any) -> httpx.Response:
    body = {
        "artifact": "model.txt",
        "train": "good/train.csv",
        "validation": "validation.csv",
        "target": TARGET,
        "protected": list(PROTECTED),
        **overrides,
    }
    return client.post("/v1/models/pd/versions/by-reference", json=body)


def _ledger_size(server: Server) -> int:
    with server.client("auditor") as auditor:
        verified = auditor.post("/v1/audit/verify")
    assert verified.status_code == 200, verified.text
    return int(verified.json()["size"])


def _exchange() -> Callable[[Path, Path], None]:
    """Swap two folders' names atomically (renameat2 RENAME_EXCHANGE), or with
    three renames where the C library lacks renameat2."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:

        def by_renames(a: Path, b: Path) -> None:
            spare = a.with_name(a.name + ".swap")
            os.rename(a, spare)
            os.rename(b, a)
            os.rename(spare, b)

        return by_renames
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
    renameat2.argtypes += [ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2

    def exchange(a: Path, b: Path) -> None:
        if renameat2(at_fdcwd, bytes(a), at_fdcwd, bytes(b), rename_exchange) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))

    return exchange


def test_swapping_folders_never_reads_the_signing_key(server: Server, imports: Path) -> None:
    """A thread swaps ``good`` and ``evil`` as fast as it can while the same
    by-reference submission is sent again and again: each one reads the real
    training data or is refused at the symbolic link; none reads the key."""
    key_lines = (server.home.path / "keys" / "checkpoint.key").read_text().splitlines()
    assert key_lines[0] == PEM_HEADER
    secret_lines = key_lines[1:]  # the header is the target the request itself names
    no_target = (
        f"dataset good/train.csv has no target column '{PEM_HEADER}'; pass --target with one of "
        "income, debt_to_income, credit_utilisation, delinquencies_2y, "
        "months_since_last_delinquency, employment_years, age, open_accounts, inquiries_6m, "
        "loan_amount, postcode_risk, sex"
    )
    symlink = (
        "train dataset path 'good/train.csv': 'train.csv' is a symbolic link; the import "
        "folder is read only through real folders and files"
    )
    with server.client("data_scientist") as ds:  # the server's first parse is slow
        warm = _by_reference(ds, target=PEM_HEADER)
        assert warm.json()["detail"] == no_target
    before = _ledger_size(server)
    exchange = _exchange()
    stop_swapping = threading.Event()
    swaps = 0

    def swap() -> None:
        nonlocal swaps
        while not stop_swapping.is_set():
            exchange(imports / "good", imports / "evil")
            swaps += 1

    swapper = threading.Thread(target=swap, daemon=True)
    details: list[str] = []
    swapper.start()
    try:
        deadline = time.monotonic() + SECONDS
        with server.client("data_scientist") as ds:
            while len(details) < TRIES and time.monotonic() < deadline:
                response = _by_reference(ds, target=PEM_HEADER)
                for line in secret_lines:
                    assert line not in response.text
                assert response.status_code == 422, response.text
                details.append(response.json()["detail"])
    finally:
        stop_swapping.set()
        swapper.join()
    assert swaps > len(details)
    assert set(details) <= {no_target, symlink}, set(details) - {no_target, symlink}
    # the swapper did change what each submission found: both outcomes happened
    assert details.count(no_target) > 0
    assert details.count(symlink) > 0
    assert _ledger_size(server) == before


def test_a_good_submission_by_reference_stores_the_bytes_it_read(
    server: Server, imports: Path
) -> None:
    nested = imports / "team" / "2025"
    nested.mkdir(parents=True)
    (nested / "train.csv").write_bytes((imports / "good" / "train.csv").read_bytes())
    before = _ledger_size(server)
    with server.client("data_scientist") as ds:
        created = _by_reference(ds, train="team/2025/train.csv")
        assert created.status_code == 201, created.text
        assert created.json() == {"model": "pd", "version": 1, "status": "submitted"}
        shown = ds.get("/v1/models/pd/versions/1").json()
    model = hashlib.sha256((imports / "model.txt").read_bytes()).hexdigest()
    assert shown["train_digest"] == hashlib.sha256((nested / "train.csv").read_bytes()).hexdigest()
    assert shown["artifact_digest"] == model
    assert _ledger_size(server) == before + 2  # model.registered, version.submitted


def _refusals(imports: Path, home: Path) -> dict[str, tuple[dict[str, str], str]]:
    """name -> (overrides of the body, the problem's detail)."""
    return {
        "symlink at the leaf": (
            {"train": "evil/train.csv"},
            "train dataset path 'evil/train.csv': 'train.csv' is a symbolic link; the import "
            "folder is read only through real folders and files",
        ),
        "symlink at a middle folder": (
            {"train": "linked/train.csv"},
            "train dataset path 'linked/train.csv': 'linked' is a symbolic link; the import "
            "folder is read only through real folders and files",
        ),
        "symlink to a folder inside": (
            {"train": "inside/train.csv"},
            "train dataset path 'inside/train.csv': 'inside' is a symbolic link; the import "
            "folder is read only through real folders and files",
        ),
        "dot-dot": (
            {"train": "good/../../home/keys/checkpoint.csv"},
            "train path 'good/../../home/keys/checkpoint.csv' contains '..'; name a file "
            "inside the server's import folder",
        ),
        "absolute path": (
            {"validation": str(home / "keys" / "checkpoint.key")},
            f"validation path '{str(home / 'keys' / 'checkpoint.key')[:37]}...' is absolute; "
            "name a file relative to the server's import folder",
        ),
        "NUL byte": (
            {"train": "good/train.csv\x00.parquet"},
            "train path 'good/train.csv\\x00.parquet' contains a NUL byte",
        ),
        "NUL byte in the artifact": (
            {"artifact": "model\x00.txt"},
            "artifact path 'model\\x00.txt' contains a NUL byte",
        ),
        "empty path": (
            {"train": ""},
            "train path is empty; name a file inside the server's import folder",
        ),
        "a file as a folder": (
            {"train": "model.txt/train.csv"},
            "train dataset path 'model.txt/train.csv': 'model.txt' is not a folder",
        ),
        "missing file": (
            {"train": "good/nothing.csv"},
            "train dataset file 'good/nothing.csv' does not exist in the server's import "
            "folder; check the path",
        ),
        "a folder": (
            {"train": "good.csv"},
            "train dataset path 'good.csv' is not a regular file",
        ),
        "a FIFO": (
            {"train": "pipe.csv"},
            "train dataset path 'pipe.csv' is not a regular file",
        ),
        "a hard link": (
            {"train": "hard.csv"},
            "train dataset file 'hard.csv' has 2 hard links; copy it into the import folder "
            "(a hard link can name a file outside it)",
        ),
    }


def test_hostile_references_are_refused_and_record_nothing(server: Server, imports: Path) -> None:
    home = server.home.path
    (imports / "linked").symlink_to(home / "keys", target_is_directory=True)
    (imports / "inside").symlink_to("good", target_is_directory=True)
    (imports / "good.csv").mkdir()
    os.mkfifo(imports / "pipe.csv")
    (imports / "hard.csv").hardlink_to(imports / "good" / "train.csv")
    before = _ledger_size(server)
    with server.client("data_scientist") as ds:
        for case, (overrides, detail) in _refusals(imports, home).items():
            response = _by_reference(ds, **overrides)
            assert response.status_code == 422, (case, response.text)
            assert response.headers["content-type"] == "application/problem+json"
            assert response.json()["detail"] == detail, case
            assert "PRIVATE KEY" not in response.text
        assert ds.get("/v1/versions").json() == []
    assert _ledger_size(server) == before
