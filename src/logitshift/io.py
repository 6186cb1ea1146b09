"""Read label, offset and weight columns from CSV or Parquet, in record batches.

Files are read with pyarrow, a batch at a time, so that a caller can keep memory bounded;
only the requested columns are decoded. ``"-"`` reads CSV from standard input.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ._validate import InputError, check_columns

__all__ = ["iter_batches", "read_columns", "DEFAULT_BATCH_ROWS"]

DEFAULT_BATCH_ROWS = 1 << 20

_PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}
_CSV_SUFFIXES = {".csv", ".txt"}
_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}


def _format_of(source: str | Path) -> str:
    if str(source) == "-":
        return "csv"
    suffixes = [s.lower() for s in Path(source).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in _PARQUET_SUFFIXES:
        return "parquet"
    if last in _CSV_SUFFIXES:
        return "csv"
    raise InputError(
        f"cannot tell the format of {str(source)!r}: name it .csv or .parquet",
        argument="path", value=str(source),
    )


def _record_batches(source: str | Path, columns: Sequence[str], batch_rows: int
                    ) -> Iterator[pa.RecordBatch]:
    where = "standard input" if str(source) == "-" else repr(str(source))
    try:
        if _format_of(source) == "parquet":
            parquet = pq.ParquetFile(source)
            check_columns(columns, parquet.schema_arrow.names, where)
            yield from parquet.iter_batches(batch_size=batch_rows, columns=list(columns))
            return
        stream: BinaryIO | pa.NativeFile = sys.stdin.buffer
        if str(source) != "-":
            # Name the codec: pyarrow's own detection misses upper-case suffixes.
            codec = _COMPRESSION.get(Path(source).suffix.lower())
            stream = pa.input_stream(str(source), compression=codec)
        reader = pacsv.open_csv(
            stream,
            read_options=pacsv.ReadOptions(block_size=1 << 24),
            convert_options=pacsv.ConvertOptions(include_columns=list(columns)),
        )
        yield from reader
    except pa.ArrowException as exc:
        missing = re.search(r"Column '(.*)' in include_columns does not exist", str(exc))
        if missing:
            raise InputError(f"no column {missing.group(1)!r} in {where}",
                             argument=missing.group(1)) from None
        raise InputError(f"cannot read {where}: {_one_line(exc)}") from None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _column_values(batch: pa.RecordBatch, name: str, first_row: int) -> np.ndarray:
    column = batch.column(name)
    if column.null_count:
        i = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(
            f"column {name!r} row {first_row + i} is missing (empty, NA or NaN)",
            argument=name, index=first_row + i,
        )
    kind = column.type
    if pa.types.is_null(kind):  # a column with no values at all
        raise InputError(f"column {name!r} is empty", argument=name)
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)
            or pa.types.is_boolean(kind)):
        value = column[0].as_py() if len(column) else None
        raise InputError(
            f"column {name!r} must be numeric, got {kind}; row {first_row} = {value!r}",
            argument=name, index=first_row, value=value,
        )
    return column.to_numpy(zero_copy_only=False)


def iter_batches(
    source: str | Path,
    columns: Sequence[str],
    *,
    batch_rows: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Yield ``{column: ndarray}`` batches of the named numeric columns of a file.

    Parameters
    ----------
    source : str or Path
        A ``.csv`` (optionally ``.gz``/``.bz2``/``.zst``/``.lz4`` compressed) or
        ``.parquet`` file, or ``"-"`` for CSV on standard input.
    columns : sequence of str
        Column names; each must exist and hold numbers or booleans with no missing values.
    batch_rows : int, optional
        Rows per Parquet batch (default ``DEFAULT_BATCH_ROWS``; CSV batches follow pyarrow's
        block size).

    Raises
    ------
    InputError
        For an unknown format, a missing column, a missing value (naming its row) or a
        non-numeric column.
    OSError
        When the file cannot be opened.
    """
    first_row = 0
    rows = DEFAULT_BATCH_ROWS if batch_rows is None else batch_rows
    for batch in _record_batches(source, columns, rows):
        yield {name: _column_values(batch, name, first_row) for name in columns}
        first_row += batch.num_rows


def read_columns(source: str | Path, columns: Sequence[str]) -> dict[str, np.ndarray]:
    """All rows of the named columns, as one array each (see :func:`iter_batches`)."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in columns}
    for batch in iter_batches(source, columns):
        for name in columns:
            parts[name].append(batch[name])
    return {
        name: np.concatenate(chunks) if chunks else np.empty(0)
        for name, chunks in parts.items()
    }
