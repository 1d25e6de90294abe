"""Parquet decompression bombs: refused before (or while) decoding, with bounded memory.

Each read runs in a child process that reports its own peak resident size
(``ru_maxrss``), compared with a reference child that reads a normal Parquet
file in the same run. Over HTTP: tests/api/test_upload_bombs.py.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest
from govreg_kit import Inputs
from parquet_bombs import constant_column, repeated_text

from core.errors import InputError
from registry.decoding import DecodeLimits
from registry.inputs import load_frame

CHILD = """
import resource, sys
from pathlib import Path
from core.errors import InputError
from registry.inputs import load_frame
path = Path(sys.argv[1])
try:
    frame = load_frame(path.read_bytes(), "parquet", source=path.name)
    print("rows", len(frame))
except InputError as exc:
    print(exc)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def _read_in_child(path: Path) -> tuple[str, int]:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    message, maxrss = done.stdout.strip().rsplit("\n", 1)
    return message, int(maxrss)


@pytest.fixture(scope="module")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bombs")
    return {
        "constant": constant_column(root / "constant.parquet"),
        "text": repeated_text(root / "text.parquet"),
    }


@pytest.mark.slow
def test_a_constant_column_bomb_is_refused_from_its_footer(
    bombs: dict[str, Path], inputs: Inputs
) -> None:
    bomb = bombs["constant"]
    size = bomb.stat().st_size
    assert 500 * 1024 < size < 600 * 1024
    reference, ref_rss = _read_in_child(inputs.train_parquet)
    assert reference == "rows 800"
    message, rss = _read_in_child(bomb)
    assert message == (
        "dataset constant.parquet declares 1000000000 bytes once decoded (125000000 rows in "
        f"125 row groups), over the decompression limit: the limit is {200 * size} bytes for "
        f"this {size}-byte file (GOVREG_MAX_DECODED_BYTES=2147483648, "
        "GOVREG_MAX_DECOMPRESSION_RATIO=200)"
    )
    # without the check the child holds 1 GB (the finding: about 1 GB of server memory)
    assert rss - ref_rss < 64 * 1024, (rss, ref_rss)


@pytest.mark.slow
def test_a_footer_that_understates_is_stopped_while_decoding(
    bombs: dict[str, Path], inputs: Inputs
) -> None:
    bomb = bombs["text"]
    size = bomb.stat().st_size
    _, ref_rss = _read_in_child(inputs.train_parquet)
    message, rss = _read_in_child(bomb)
    assert message.startswith(
        f"dataset text.parquet decodes to more than {200 * size} bytes (stopped after "
        "1000121250 bytes; its footer declared 197"
    ), message
    assert rss - ref_rss < 64 * 1024, (rss, ref_rss)


def test_the_absolute_cap_applies_whatever_the_ratio(inputs: Inputs) -> None:
    data = inputs.train_parquet.read_bytes()
    assert len(load_frame(data, "parquet", source="train.parquet")) == 800
    limits = DecodeLimits(max_bytes=10_000, max_ratio=10**6)
    with pytest.raises(InputError) as refused:
        load_frame(data, "parquet", source="train.parquet", limits=limits)
    assert "over the decompression limit: the limit is 10000 bytes" in str(refused.value)


def test_parquet_columns_and_types_read_as_pandas_reads_them() -> None:
    """Reading batch by batch (text columns through their dictionary) gives the frame
    pandas.read_parquet gives: categories, text with missing values, numbers."""
    import pandas as pd

    frame = pd.DataFrame(
        {
            "housing": pd.Categorical(["rent", "own", None, "rent"]),
            "purpose": ["car", None, "home", "car"],
            "income": [1.5, None, 3.0, 4.0],
            "default": [0, 1, 0, 1],
        }
    )
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    read = load_frame(buffer.getvalue(), "parquet", source="t.parquet")
    pd.testing.assert_frame_equal(read, pd.read_parquet(io.BytesIO(buffer.getvalue())))


def test_parser_errors_name_the_line_not_its_text() -> None:
    secret = "-----BEGIN PRIVATE KEY-----MC4CAQAwBQYDK2VwBCIEI"
    data = f"a,b\n1,2\n3,4,{secret},5\n".encode()
    with pytest.raises(InputError) as refused:
        load_frame(data, "csv", source="train.csv")
    assert str(refused.value) == (
        "dataset train.csv cannot be read as csv: line 3 does not parse (ParserError); "
        "check that line's fields and quotes"
    )
    with pytest.raises(InputError) as garbage:
        load_frame(b"PAR1" + secret.encode() * 10, "parquet", source="train.parquet")
    assert secret not in str(garbage.value)
    assert len(str(garbage.value)) < 200, str(garbage.value)
