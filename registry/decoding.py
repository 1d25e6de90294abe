"""Reading a submitted Parquet file without letting it decompress without bound.

A Parquet file is compressed and encoded (dictionary, run-length): a few
hundred KiB can declare a constant column of a hundred million rows, about
1 GB once decoded. The upload limit bounds the file, not what it becomes, so
:func:`read_parquet` bounds what it becomes:

1. before any data is decoded, the footer's facts are checked: the number of
   columns, and the size they declare, both in total (at most ``max_bytes``)
   and as a ratio to the file's own size (at most ``max_ratio``). The declared
   size is the larger of the column chunks' uncompressed sizes (which count
   pages after dictionary and run-length encoding, so a constant column
   declares almost nothing) and 8 bytes for every cell the footer's row and
   column counts declare;
2. the footer may understate (a forged size, or a text column holding one
   long value a thousand times, which the footer counts once: it is stored
   once, in the dictionary), so the data is then decoded in record batches
   and the decoded size (the larger of Arrow's buffers and 8 bytes per cell)
   is counted as it grows. Text columns are read still dictionary-encoded,
   their decoded size computed from the dictionary's value lengths, and
   decoded only once counted; reading stops with a refusal as soon as the
   count passes either limit.

Peak memory is therefore about ``max_bytes`` plus one batch, and the
conversion to pandas after a successful read; never what the file declares.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import InputError, quote

if TYPE_CHECKING:
    import pandas as pd

MiB = 1024 * 1024
_BATCH_ROWS = 64 * 1024
_CELL_BYTES = 8  # a float64, an int64 or an object pointer: what pandas holds per cell


@dataclass(frozen=True)
class DecodeLimits:
    """How large a submitted dataset may become once decoded (``GOVREG_MAX_DECODED_BYTES``,
    ``GOVREG_MAX_DECOMPRESSION_RATIO``), and how many columns it may have."""

    max_bytes: int = 2048 * MiB
    max_ratio: int = 200
    max_columns: int = 10_000

    def allowed(self, file_size: int) -> int:
        """The decoded size allowed for a file of ``file_size`` bytes: the smaller limit."""
        return min(self.max_bytes, self.max_ratio * max(file_size, 1))


def _limit_text(limits: DecodeLimits, file_size: int) -> str:
    return (
        f"the limit is {limits.allowed(file_size)} bytes for this {file_size}-byte file "
        f"(GOVREG_MAX_DECODED_BYTES={limits.max_bytes}, "
        f"GOVREG_MAX_DECOMPRESSION_RATIO={limits.max_ratio})"
    )


def declared_size(metadata: object) -> int:
    """The decoded size the footer declares (see the module): the larger of its column
    chunks' uncompressed sizes and 8 bytes per declared cell."""
    cells = max(int(metadata.num_rows), 0) * int(metadata.num_columns)  # type: ignore[attr-defined]
    total = 0
    for group in range(metadata.num_row_groups):  # type: ignore[attr-defined]
        row_group = metadata.row_group(group)  # type: ignore[attr-defined]
        for column in range(row_group.num_columns):
            total += max(int(row_group.column(column).total_uncompressed_size), 0)
    return max(total, cells * _CELL_BYTES)


def read_parquet(data: bytes, *, source: str, limits: DecodeLimits) -> pd.DataFrame:
    """The frame of the Parquet file ``data``, or InputError naming ``source`` and the
    limit it would pass (see the module)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    size = len(data)
    allowed = limits.allowed(size)
    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(
            f"dataset {source} cannot be read as parquet ({type(exc).__name__}: {quote(exc, 80)})"
        ) from None
    metadata = parquet.metadata
    target = parquet.schema_arrow
    if metadata.num_columns > limits.max_columns:
        raise InputError(
            f"dataset {source} has {metadata.num_columns} columns, over the limit of "
            f"{limits.max_columns}"
        )
    declared = declared_size(metadata)
    if declared > allowed:
        raise InputError(
            f"dataset {source} declares {declared} bytes once decoded "
            f"({metadata.num_rows} rows in {metadata.num_row_groups} row groups), over the "
            f"decompression limit: {_limit_text(limits, size)}"
        )
    texts = [
        field.name
        for field in parquet.schema_arrow
        if pa.types.is_string(field.type)
        or pa.types.is_large_string(field.type)
        or pa.types.is_binary(field.type)
        or pa.types.is_large_binary(field.type)
    ]
    batches = []
    decoded = 0
    try:
        # read_dictionary: text columns arrive as indices into their dictionary
        parquet = pq.ParquetFile(io.BytesIO(data), read_dictionary=texts)
        for encoded in parquet.iter_batches(batch_size=_BATCH_ROWS, use_threads=False):
            decoded += _decoded_size(encoded)
            if decoded > allowed:
                raise InputError(
                    f"dataset {source} decodes to more than {allowed} bytes (stopped after "
                    f"{decoded} bytes; its footer declared {declared}): "
                    f"{_limit_text(limits, size)}"
                )
            batches.append(_plain(encoded, texts, target))
        table = pa.Table.from_batches(batches, schema=target)
        return table.to_pandas()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InputError(
            f"dataset {source} cannot be read as parquet ({type(exc).__name__}: {quote(exc, 80)})"
        ) from None


def _decoded_size(batch: Any) -> int:
    """What ``batch`` becomes once its dictionary columns are decoded: the larger of
    8 bytes per cell and Arrow's buffers, counting each dictionary value once per
    row that refers to it."""
    import pyarrow as pa
    import pyarrow.compute as pc

    size = 0
    for column in batch.columns:
        if pa.types.is_dictionary(column.type):
            lengths = pc.binary_length(column.dictionary)
            taken = pc.sum(pc.take(lengths, column.indices)).as_py() or 0
            size += taken + column.indices.nbytes
        else:
            size += column.nbytes
    return max(size, int(batch.num_rows) * int(batch.num_columns) * _CELL_BYTES)


def _plain(batch: Any, texts: list[str], schema: Any) -> Any:
    """``batch`` with the text columns read dictionary-encoded decoded to ``schema``'s types."""
    import pyarrow as pa

    if not texts:
        return batch
    columns = [
        column.dictionary_decode().cast(field.type) if field.name in texts else column
        for column, field in zip(batch.columns, schema, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, schema=schema)
