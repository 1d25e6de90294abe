"""Parquet decompression bombs made in the test (importable as ``parquet_bombs``)."""

from __future__ import annotations

import io
from pathlib import Path


def constant_column(path: Path, rows: int = 125_000_000) -> Path:
    """A ~550 KiB file declaring one int64 column of ``rows`` sevens: 1 GB decoded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    chunk = pa.table({"x": pa.array([7] * 5_000_000, pa.int64())})
    with pq.ParquetWriter(path, chunk.schema, compression="zstd") as writer:
        for _ in range(rows // 5_000_000):
            writer.write_table(chunk)
    return path


def repeated_text(path: Path, rows: int = 10_000, length: int = 100_000) -> Path:
    """A ~28 KiB file whose text column holds one ``length``-character value ``rows``
    times: stored once in the dictionary, so the footer declares ~200 KB; 1 GB decoded."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    column = pa.DictionaryArray.from_arrays(
        pa.array([0] * rows, pa.int32()), pa.array(["a" * length])
    )
    table = pa.table({"x": column, "n": pa.array(range(rows))})
    buffer = io.BytesIO()
    # without the stored Arrow schema the column reads back as plain text, not a category
    pq.write_table(table, buffer, compression="zstd", store_schema=False)
    path.write_bytes(buffer.getvalue())
    return path
