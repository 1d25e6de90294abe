"""Hostile uploads over real HTTP: a Parquet bomb, a CSV that does not parse.

The server refuses each with a 422 naming the upload as the client named
the field (never the server's temporary folder), records nothing, and the
bomb does not raise the server's peak memory (``VmHWM`` of its process).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import Server, make_principal, start_server, stop
from govreg_kit import PROTECTED, TARGET, Inputs
from parquet_bombs import constant_column

MiB = 1024 * 1024


@pytest.fixture
def server(home: Any) -> Iterator[Server]:
    srv = start_server(home)
    with srv.client("admin") as admin:
        made = make_principal(admin, "ds-1", "data_scientist")
        assert made.status_code == 201, made.text
        srv.keys["data_scientist"] = made.json()["api_key"]
    yield srv
    stop(srv)


def _peak_kib(server: Server) -> int:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1])


def _size(server: Server) -> int:
    with server.client("admin") as admin:
        return int(admin.post("/v1/audit/verify").json()["size"])


def _submit(
    server: Server, inputs: Inputs, train: tuple[str, bytes], target: str = TARGET
) -> httpx.Response:
    with server.client("data_scientist") as ds:
        return ds.post(
            "/v1/models/pd/versions",
            files={
                "artifact": ("model.txt", inputs.model.read_bytes()),
                "train": train,
                "validation": ("validation.csv", inputs.validation_csv.read_bytes()),
            },
            data={"target": target, "protected": ",".join(PROTECTED)},
        )


@pytest.mark.slow
def test_a_parquet_bomb_upload_is_refused_without_the_memory(
    server: Server, inputs: Inputs, tmp_path: Path
) -> None:
    bomb = constant_column(tmp_path / "bomb.parquet").read_bytes()
    # a normal Parquet upload refused for its target first: the server has then
    # imported what reading one needs, so the peak below measures the bomb alone
    normal = ("mine.parquet", inputs.train_parquet.read_bytes())
    assert _submit(server, inputs, normal, target="nope").status_code == 422
    before, peak = _size(server), _peak_kib(server)
    response = _submit(server, inputs, ("mine.parquet", bomb))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["detail"] == (
        "dataset train.parquet declares 1000000000 bytes once decoded (125000000 rows in "
        f"125 row groups), over the decompression limit: the limit is {200 * len(bomb)} "
        f"bytes for this {len(bomb)}-byte file (GOVREG_MAX_DECODED_BYTES=2147483648, "
        "GOVREG_MAX_DECOMPRESSION_RATIO=200)"
    )
    assert _peak_kib(server) - peak < 64 * 1024  # the finding: about 1 GB
    assert _size(server) == before


def test_a_csv_that_does_not_parse_names_its_line_not_the_server_path(
    server: Server, inputs: Inputs
) -> None:
    text = inputs.train_csv.read_text().splitlines()
    text[5] += ',"-----BEGIN PRIVATE KEY-----",x'
    before = _size(server)
    response = _submit(server, inputs, ("mine.csv", "\n".join(text).encode()))
    assert response.status_code == 422, response.text
    assert response.json()["detail"] == (
        "dataset train.csv cannot be read as csv: line 6 does not parse (ParserError); "
        "check that line's fields and quotes"
    )
    assert _size(server) == before
