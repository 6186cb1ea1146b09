"""Read label, offset and weight columns from CSV or Parquet, in record batches, and stream
files of any size through a :class:`~logitshift.Sketch`.

Files are read with pyarrow, a batch at a time, so that memory stays bounded; only the
requested columns are decoded. ``"-"`` reads CSV from standard input; a binary file object
(``open(path, "rb")``, ``io.BytesIO``) and a filesystem URL (``file://``, ``s3://``, ... through
``pyarrow.fs``, or any scheme of fsspec where it is installed) are read too.
"""

from __future__ import annotations

import glob
import io
import os
import re
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from functools import partial
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from .._core.validate import (InputError, as_positive_int, check_columns, check_offset_is,
                              naming_columns, prefixing)
from .._summary.chunks import (Needs, empty, fill, named_columns, read_ahead, refuse_passes,
                              require_scores)
from .._summary.group_sketch import GroupSketch
from .._summary.passes import max_threads
from .._summary.sketch import Sketch

__all__ = ["iter_batches", "read_columns", "sketch_file", "sketch_groups_file", "expand_sources",
           "check_format", "Files", "DEFAULT_BATCH_ROWS", "FORMATS", "PARQUET_SUFFIXES"]

DEFAULT_BATCH_ROWS = 1 << 20
#: Bytes of CSV parsed at a time (pyarrow's block): a batch of CSV rows.
CSV_BLOCK_BYTES = 1 << 24
#: Bytes at the start of a CSV from which its columns' types are told.
_CSV_SAMPLE_BYTES = 1 << 20

#: The suffixes of Parquet files, which a directory given as input is read for.
PARQUET_SUFFIXES = {".parquet", ".pq", ".parq"}
_CSV_SUFFIXES = {".csv", ".txt"}
_COMPRESSION = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}


#: The file formats read, for ``format=``.
FORMATS = ("csv", "parquet")
# A scheme of two or more letters: "C://" is a Windows drive, not a URL.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+://")
#: The first bytes of each compressed format, for file objects (which have no suffix).
_MAGIC = {b"\x1f\x8b": "gzip", b"BZh": "bz2", b"\x28\xb5\x2f\xfd": "zstd",
          b"\x04\x22\x4d\x18": "lz4"}


def _is_file_object(source: Any) -> bool:
    return hasattr(source, "read") and not isinstance(source, (str, bytes, os.PathLike))


def _is_url(source: Any) -> bool:
    """A filesystem URL, not a local file whose name happens to look like one."""
    return (isinstance(source, str) and _URL.match(source) is not None
            and not os.path.exists(source))


def check_format(format: str | None) -> str | None:
    """``format=`` is None (tell it from the source) or one of :data:`FORMATS`."""
    if format is not None and format not in FORMATS:
        raise InputError(f"format = {format!r} must be one of {', '.join(map(repr, FORMATS))}",
                         argument="format", value=format)
    return format


def _url_path(name: str) -> str:
    """The path of a URL (from its host on: ``memory://a.csv`` has no other), without its
    query; any other name as it is."""
    if not _is_url(name):
        return name
    parts = urllib.parse.urlsplit(name)
    return parts.netloc + parts.path


def _peek(file: Any, size: int) -> bytes:
    """The first ``size`` bytes of a file object, left unread (b"" if it cannot seek)."""
    if not file.seekable():
        return b""
    at = file.tell()
    try:
        return bytes(file.read(size))
    finally:
        file.seek(at)


def _format_of(source: Any, format: str | None = None) -> str:
    if str(source) == "-" and not _is_file_object(source):
        if format not in (None, "csv"):
            raise InputError(f"format = {format!r}: standard input ('-') is read as CSV",
                             argument="format", value=format)
        return "csv"
    if format is not None:
        return format
    if _is_file_object(source):
        # Parquet starts (and ends) with "PAR1"; anything else is read as CSV.
        return "parquet" if _peek(source, 4) == b"PAR1" else "csv"
    name = _url_path(str(source))
    suffixes = [s.lower() for s in Path(name).suffixes]
    if suffixes and suffixes[-1] in _COMPRESSION:
        suffixes = suffixes[:-1]
    last = suffixes[-1] if suffixes else ""
    if last in PARQUET_SUFFIXES:
        return "parquet"
    if last in _CSV_SUFFIXES:
        return "csv"
    raise InputError(
        f"cannot tell the format of {str(source)!r}: name it .csv or .parquet, or pass "
        "format='csv' or 'parquet'",
        argument="path", value=str(source),
    )


def _codec_of(source: Any) -> str | None:
    """The compression of a CSV: by its name's suffix, or for a file object without a name,
    by its first bytes."""
    name = getattr(source, "name", None) if _is_file_object(source) else str(source)
    if isinstance(name, str):
        name = _url_path(name)
        # Named here: pyarrow's own detection misses upper-case suffixes.
        codec = _COMPRESSION.get(Path(name).suffix.lower())
        if codec is not None or not _is_file_object(source):
            return codec
    head = _peek(source, 4)
    return next((codec for magic, codec in _MAGIC.items() if head.startswith(magic)), None)


class _Borrowed(io.RawIOBase):
    """The caller's file object, read but never closed: a reader closes what it reads from,
    and the file is not ours to close."""

    def __init__(self, file: Any) -> None:
        super().__init__()
        self._file = file

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._file.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def seekable(self) -> bool:
        return self._file.seekable()

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._file.seek(offset, whence)

    def tell(self) -> int:
        return self._file.tell()


def _filesystem_file(url: str) -> Any:
    """A random-access file of a URL: through pyarrow's filesystems (``file``, ``s3``,
    ``gs``, ``hdfs``, ...), or failing those, fsspec's, where it is installed."""
    import pyarrow.fs as pafs

    try:
        filesystem, path = pafs.FileSystem.from_uri(url)
    except pa.ArrowInvalid:
        try:
            import fsspec
        except ImportError:
            raise InputError(f"cannot open {url!r}: pyarrow does not know its scheme, and "
                             "fsspec, which may, is not installed", argument="path",
                             value=url) from None
        try:
            fsspec_filesystem, path = fsspec.core.url_to_fs(url)
        except (ValueError, ImportError) as exc:
            raise InputError(f"cannot open {url!r}: {_one_line(exc)}", argument="path",
                             value=url) from None
        filesystem = pafs.PyFileSystem(pafs.FSSpecHandler(fsspec_filesystem))
    return filesystem.open_input_file(path)


@contextmanager
def _opened(source: Any, start: int | None = None) -> Iterator[Any]:
    """A readable binary file of the source; a file it opens is closed on the way out, the
    caller's file object and standard input are left open. ``start``: where a file object
    is read from (to read it again)."""
    if _is_file_object(source):
        if start is not None:
            source.seek(start)
        yield _Borrowed(source)
    elif str(source) == "-":
        yield _Borrowed(sys.stdin.buffer)
    elif _is_url(source):
        with _filesystem_file(source) as file:
            yield file
    else:
        with pa.OSFile(str(source)) as file:
            yield file


class _Position:
    """How far through its input a reader is: rows so far, and where it is known, the share
    of rows (Parquet, from its metadata) or of bytes read (a CSV file; read ahead of the
    rows parsed, so an upper bound)."""

    def __init__(self) -> None:
        self.rows = 0
        self.start()

    def start(self, total_rows: int | None = None, stream: Any = None,
              total_bytes: int | None = None) -> None:
        """A new input: its size in rows, or the raw stream and its size in bytes."""
        self._total_rows, self._stream, self._total_bytes = total_rows, stream, total_bytes

    def describe(self) -> str | None:
        if self._total_rows:
            return f"{self.rows / self._total_rows:.0%}"
        if self._stream is not None and self._total_bytes:
            return f"{self._stream.tell() / 1e6:,.0f} of {self._total_bytes / 1e6:,.0f} MB read"
        return None


def _record_batches(source: Any, columns: Sequence[str], batch_rows: int,
                    position: _Position | None = None, format: str | None = None,
                    keys: Sequence[str] = ()) -> Iterator[pa.RecordBatch]:
    where = _where(source)
    try:
        if _format_of(source, format) == "parquet":
            # Without pre-buffering, a batch at a time: pre-buffering holds the whole
            # file's column chunks in memory at once.
            with _opened(source) as file, pq.ParquetFile(file, pre_buffer=False) as parquet:
                check_columns(columns, parquet.schema_arrow.names, where)
                if position is not None:
                    position.start(total_rows=parquet.metadata.num_rows)
                groups = [parquet.metadata.row_group(i).num_rows
                          for i in range(parquet.num_row_groups)]
                local = not (_is_file_object(source) or _is_url(source))
                # Row groups of about a batch (pyarrow writes them 1,048,576 rows long) are
                # decoded two at a time; others (many small ones, or few huge ones) in
                # batches of batch_rows by one decoder.
                if local and groups and (batch_rows // 4 <= min(groups[:-1] or groups)
                                         and max(groups) <= batch_rows):
                    yield from _row_groups(str(source), columns, len(groups))
                else:
                    # One decoding thread: the reader runs beside the fill (`sketch_file`).
                    yield from parquet.iter_batches(batch_size=batch_rows,
                                                    columns=list(columns), use_threads=False)
            return
        yield from _csv_batches(source, columns, position, keys)
    except pa.ArrowException as exc:
        raise InputError(f"cannot read {where}: {_one_line(exc)}") from None


#: Row groups decoded at once, and read ahead of the one the caller has, by `_row_groups`.
_DECODERS = 2
_GROUPS_AHEAD = 2


def _row_groups(path: str, columns: Sequence[str], count: int) -> Iterator[pa.RecordBatch]:
    """The named columns of a local Parquet file, a row group at a time, in order, with
    ``_DECODERS`` groups decoded at once (each by a reader of its own on its own handle).

    One decoder cannot keep up with the fill: on 2 cores at 1e8 rows it made the whole pass
    wait on it (0.79 s where parallel groups take 0.64 s; pyarrow reading alone, 0.44 s).
    Memory is ``_GROUPS_AHEAD`` row groups, each at most a batch."""
    readers: dict[int, pq.ParquetFile] = {}
    handles: list[Any] = []

    def read(index: int) -> pa.Table:
        reader = readers.get(threading.get_ident())
        if reader is None:
            handle = pa.OSFile(path)
            handles.append(handle)
            reader = readers[threading.get_ident()] = pq.ParquetFile(handle, pre_buffer=False)
        return reader.read_row_group(index, columns=list(columns), use_threads=False)

    coming: list[Any] = []
    try:
        with ThreadPoolExecutor(max_workers=_DECODERS,
                                thread_name_prefix="logitshift-decoder") as pool:
            try:
                coming += [pool.submit(read, index)
                           for index in range(min(_GROUPS_AHEAD, count))]
                for index in range(count):
                    table = coming[index].result()
                    coming[index] = None
                    if len(coming) < count:
                        coming.append(pool.submit(read, len(coming)))
                    yield from table.to_batches()
            finally:  # closed early (an error downstream): read nothing more
                for future in coming:
                    if future is not None:
                        future.cancel()
    finally:
        for handle in handles:
            handle.close()


def _where(source: Any) -> str:
    """The source, as messages name it."""
    if _is_file_object(source):
        name = getattr(source, "name", None)
        return repr(name) if isinstance(name, str) else f"the {type(source).__name__} object"
    return "standard input" if str(source) == "-" else repr(str(source))


@contextmanager
def _csv_stream(source: Any, start: int | None = None
                ) -> Iterator[tuple[Any, Any, int | None, str | None]]:
    """The stream to parse, the raw stream under it (for progress), its size where known,
    and its compression; a file is closed on the way out, the caller's left open."""
    with _opened(source, start) as raw:
        codec = _codec_of(source)
        size = raw.size() if isinstance(raw, pa.NativeFile) else None
        if codec is None:
            yield raw, raw, size, None
            return
        with pa.CompressedInputStream(raw, codec) as stream:
            yield stream, raw, size, codec


class _Replayed(io.RawIOBase):
    """A stream read again from its start: the bytes already taken from it, then the rest
    (a pipe cannot be rewound)."""

    def __init__(self, head: bytes, rest: Any) -> None:
        super().__init__()
        self._head, self._at, self._rest = head, 0, rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._at < len(self._head):
            data = self._head[self._at:self._at + len(buffer)]
            self._at += len(data)
        else:
            data = self._rest.read(len(buffer))
        buffer[:len(data)] = data
        return len(data)


def _column_types(head: bytes, columns: Sequence[str], where: str,
                  keys: Sequence[str] = ()) -> dict[str, pa.DataType]:
    """Each named column's type, after checking the header for it: float64, whatever the
    first rows look like (integers there may be followed by fractions further down); text,
    where the first rows hold booleans or text, to be turned into numbers a batch at a
    time (:func:`_numbers`), so that ``true``/``false`` may be followed by ``0.7`` and the
    first cell that is not a number can be named. A column of ``keys`` (group labels) is
    read as bytes, exactly as written, whatever its first rows hold: :class:`_CsvLabels`
    tells its kind from what it holds, and pyarrow's own integers would read ``007`` and
    ``0x7`` as 7."""
    sample = head[:head.rfind(b"\n") + 1] or head  # whole lines only
    # All columns, for their names: a name asked for may be missing or be there twice.
    schema = pacsv.read_csv(pa.BufferReader(sample)).schema
    check_columns(columns, schema.names, where)
    types = {}
    for name in columns:
        kind = schema.field(name).type
        if name in keys:
            types[name] = pa.binary()
        else:
            types[name] = (pa.string() if pa.types.is_boolean(kind) or pa.types.is_string(kind)
                           else pa.float64())
    return types


def _csv_reader(stream: Any, columns: Sequence[str],
                column_types: dict[str, pa.DataType]) -> pacsv.CSVStreamingReader:
    return pacsv.open_csv(
        stream,
        read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES),
        # An empty, NA or null cell is missing in a text column as in a numeric one.
        convert_options=pacsv.ConvertOptions(include_columns=list(columns),
                                             column_types=column_types,
                                             strings_can_be_null=True),
    )


_CONVERSION = re.compile(r"CSV conversion error to \w+: invalid value '(.*)'")


def _csv_batches(source: Any, columns: Sequence[str], position: _Position | None,
                 keys: Sequence[str] = ()) -> Iterator[pa.RecordBatch]:
    where = _where(source)
    # Where the caller's file object starts, to read it again to find a bad cell.
    start = source.tell() if _is_file_object(source) and source.seekable() else None
    with _csv_stream(source) as (stream, raw, size, codec):
        if position is not None:
            position.start(stream=raw, total_bytes=size)
        rows = 0
        labels = {name: _CsvLabels(name, where) for name in keys}
        try:
            head = stream.read(_CSV_SAMPLE_BYTES)
            types = _column_types(head, columns, where, keys)
            reader = _csv_reader(_Replayed(head, stream), columns, types)
            for batch in reader:
                yield _as_numbers(batch, rows, where, labels)
                rows += batch.num_rows
        except pa.ArrowInvalid as exc:
            # pyarrow names the value but not its row or column: find them.
            bad = _CONVERSION.search(str(exc))
            if bad is None:
                raise
            raise _unparsable(source, start, columns, types, rows, bad.group(1)) from None
        except OSError as exc:
            if codec is None:
                raise
            # A corrupt or truncated compressed file: zlib and its kind do not say which.
            after = f" after {rows:,} row{'' if rows == 1 else 's'}" if rows else ""
            raise InputError(f"cannot read {where}: its {codec} stream is corrupt or "
                             f"truncated{after} ({_one_line(exc)})", argument="path",
                             value=str(source) if not _is_file_object(source) else None
                             ) from None


def _unparsable(source: Any, start: int | None, columns: Sequence[str],
                types: dict[str, pa.DataType], first_row: int, value: str) -> InputError:
    """The error for a cell that does not parse as its column's type. A file is read again,
    as text, to find the cell's column and row; a pipe cannot be, so only the block it was in
    is named. (Group columns are read as bytes, which any cell is: their cells are checked
    a batch at a time, by :class:`_CsvLabels`, with their rows in hand.)"""
    where = _where(source)
    if str(source) == "-" or (_is_file_object(source) and start is None):
        return InputError(
            f"cannot read {value!r} in {where} as a number, in the block of rows from "
            f"{first_row} (a pipe cannot be read again to find its row and column)",
            value=value)
    with _csv_stream(source, start) as (stream, _, _, _):
        row = 0
        for batch in _csv_reader(stream, columns, {name: pa.string() for name in columns}):
            for name in columns:
                if pa.types.is_binary(types[name]):
                    continue  # group labels: any cell reads
                convert = (_numbers if types[name] == pa.string()
                           else partial(pc.cast, target_type=types[name]))
                found = _first_unconvertible(batch.column(name), convert)
                if found is not None:
                    return _not_a_number(name, row + found, where,
                                         batch.column(name)[found].as_py())
            row += batch.num_rows
    return InputError(f"cannot read {value!r} in {where} as a number", value=value)


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def _not_a_number(column: str, row: int, where: str, cell: str) -> InputError:
    return InputError(f"column {column!r} row {row} of {where}: cannot read {cell!r} as a "
                      "number", argument=column, index=row, value=cell)


#: How a CSV group cell spells a boolean: pyarrow's spellings of true and false, less its
#: ``1`` and ``0``, which are integers.
_TRUE = ("true", "True", "TRUE")
_FALSE = ("false", "False", "FALSE")
#: An integer as Python and numpy write it: no sign but ``-``, no leading zeros, no ``-0``.
_CANONICAL_INTEGER = r"^(0|-?[1-9][0-9]*)$"


class _CsvLabels:
    """A CSV group column's labels, a batch at a time, as what they are: its cells, read as
    bytes exactly as written, become int64 where every one so far is an integer as Python
    writes it (:data:`_CANONICAL_INTEGER`, within int64), bool where every one is one of
    :data:`_TRUE` or :data:`_FALSE`, and text otherwise.

    The kind is told from the first batch that holds a label (a block of
    ``CSV_BLOCK_BYTES``). From the first batch of integers that holds a cell of any other
    form the column comes as text, that batch and every one after it: each integer before
    it is the text it was read from (``str(label)``), so the caller can key the groups it
    has by that text and nothing is merged (:func:`sketch_groups_file` does). Booleans
    cannot be turned back (``True`` and ``true`` are one label), so a later cell that is not
    one is refused, by row. Missing cells (pyarrow's null spellings: empty, ``NA``,
    ``null``, ...) stay missing, for the caller to refuse by row; a cell of only whitespace
    is refused here, and so is one that is not UTF-8."""

    def __init__(self, column: str, where: str) -> None:
        self.column, self.where = column, where
        self.kind: type | None = None  # int, bool or str, once a label is seen

    def read(self, cells: pa.Array, first_row: int) -> pa.Array:
        """The labels of a batch of cells (binary) whose first is row ``first_row``."""
        text = self._text(cells, first_row)
        if self.kind is None and text.null_count == len(text):
            return text  # no label yet: missing ones only, for the caller to refuse
        if self.kind in (None, int):
            integers = _integers(text)
            if integers is not None:
                self.kind = int
                return integers
        if self.kind in (None, bool):
            booleans = _booleans(text)
            if booleans is not None:
                self.kind = bool
                return booleans
            if self.kind is bool:
                raise self._not_a_boolean(text, first_row)
        self.kind = str  # for good: this batch and every one after it are text
        self._check_blanks(text, first_row)
        return text

    def _text(self, cells: pa.Array, first_row: int) -> pa.Array:
        try:
            return pc.cast(cells, pa.string())
        except pa.ArrowInvalid:
            found = _first_unconvertible(cells, partial(pc.cast, target_type=pa.string()))
            if found is None:  # pragma: no cover - the whole column failed, no part did
                raise
            row, value = first_row + found, cells[found].as_py()
            raise InputError(
                f"{self.where}: column {self.column!r}: group[{row}] = {value!r} is not "
                "UTF-8 text: save the file as UTF-8",
                argument=self.column, index=row, value=value) from None

    def _check_blanks(self, text: pa.Array, first_row: int) -> None:
        blank = pc.fill_null(pc.utf8_is_space(text), False)
        if pc.any(blank).as_py():
            row = first_row + int(np.flatnonzero(blank.to_numpy(zero_copy_only=False))[0])
            value = text[row - first_row].as_py()
            raise InputError(
                f"{self.where}: column {self.column!r}: group[{row}] = {value!r} is blank "
                "(only whitespace): every row needs a group", argument=self.column,
                index=row, value=value)

    def _not_a_boolean(self, text: pa.Array, first_row: int) -> InputError:
        self._check_blanks(text, first_row)
        spelled = pc.is_in(text, value_set=pa.array(_TRUE + _FALSE))  # false where missing
        bad = pc.and_(pc.is_valid(text), pc.invert(spelled))
        found = int(np.flatnonzero(bad.to_numpy(zero_copy_only=False))[0])
        row, value = first_row + found, text[found].as_py()
        return InputError(
            f"{self.where}: column {self.column!r}: group[{row}] = {value!r} is not true or "
            "false: the group column's type changed. It was read as booleans from its first "
            f"rows (about {_size(CSV_BLOCK_BYTES)}), where True and true are one label, so it "
            "cannot become text now; to read it as text from the start, put a row with "
            "another label first",
            argument=self.column, index=row, value=value)


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:g} MB" if n_bytes >= 2**20 else f"{n_bytes / 2**10:g} KB"


def _integers(text: pa.Array) -> pa.Array | None:
    """The cells as int64 where every one (missing ones aside) is an integer as Python
    writes it, within int64; else None."""
    if pc.all(pc.ascii_is_decimal(text)).as_py():  # the usual case: no signs, so no regex
        leading_zero = pc.and_(pc.starts_with(text, "0"), pc.greater(pc.binary_length(text), 1))
        if pc.any(leading_zero).as_py():
            return None
    elif not pc.all(pc.match_substring_regex(text, _CANONICAL_INTEGER)).as_py():
        return None
    try:
        return pc.cast(text, pa.int64())
    except pa.ArrowInvalid:  # beyond int64
        return None


def _booleans(text: pa.Array) -> pa.Array | None:
    """The cells as bool where every one (missing ones aside) spells true or false; else
    None."""
    spelled = pc.is_in(text, value_set=pa.array(_TRUE + _FALSE))  # false where missing
    if not pc.all(pc.or_(spelled, pc.is_null(text))).as_py():
        return None
    return pc.cast(text, pa.bool_())


def _first_unconvertible(cells: pa.Array, convert: Callable[[pa.Array], Any]) -> int | None:
    """The first of the text ``cells`` that ``convert`` refuses (by bisection)."""
    def converts(part: pa.Array) -> bool:
        try:
            convert(part)
        except pa.ArrowInvalid:
            return False
        return True

    if converts(cells):
        return None
    low, high = 0, len(cells)  # the first bad cell is in [low, high)
    while high - low > 1:
        middle = (low + high) // 2
        if converts(cells.slice(low, middle - low)):
            low = middle
        else:
            high = middle
    return low


def _numbers(cells: pa.Array) -> pa.Array:
    """Text cells as float64: ``true``/``false`` (in any case) as 1 and 0, anything else as a
    number."""
    try:  # a column of booleans alone (the usual case) converts at once
        return pc.cast(pc.cast(cells, pa.bool_()), pa.float64())
    except pa.ArrowInvalid:
        pass
    lower = pc.utf8_lower(cells)
    text = pc.if_else(pc.equal(lower, "true"), "1",
                      pc.if_else(pc.equal(lower, "false"), "0", cells))
    return pc.cast(text, pa.float64())


def _as_numbers(batch: pa.RecordBatch, first_row: int, where: str,
                labels: dict[str, _CsvLabels] | None = None) -> pa.RecordBatch:
    """A CSV batch with its text columns (booleans or text in the rows the types were told
    from) turned into float64, or the error naming the first cell that is not a number; the
    columns of ``labels`` (group labels) read by them."""
    labels = labels or {}
    columns = []
    for name, column in zip(batch.schema.names, batch.columns):
        if name in labels:
            column = labels[name].read(column, first_row)
        elif pa.types.is_string(column.type):
            try:
                column = _numbers(column)
            except pa.ArrowInvalid:
                found = _first_unconvertible(column, _numbers)
                if found is None:  # pragma: no cover - the whole column failed, no part did
                    raise
                raise _not_a_number(name, first_row + found, where,
                                    column[found].as_py()) from None
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)


def _column_values(batch: pa.RecordBatch, name: str, first_row: int, where: str
                   ) -> np.ndarray:
    column = batch.column(name)
    if column.null_count:
        i = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
        raise InputError(
            f"column {name!r} row {first_row + i} of {where} is missing (empty, NA or NaN)",
            argument=name, index=first_row + i,
        )
    kind = column.type
    if pa.types.is_null(kind):  # a column with no values at all
        raise InputError(f"column {name!r} of {where} is empty", argument=name)
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)
            or pa.types.is_boolean(kind)):
        value = column[0].as_py() if len(column) else None
        raise InputError(
            f"column {name!r} of {where} must be numeric, got {kind}; row {first_row} = "
            f"{value!r}", argument=name, index=first_row, value=value,
        )
    return column.to_numpy(zero_copy_only=False)


def iter_batches(
    source: Any,
    columns: Sequence[str],
    *,
    batch_rows: int | None = None,
    format: str | None = None,
    keys: Sequence[str] = (),
    _position: _Position | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield ``{column: ndarray}`` batches of the named numeric columns of a file.

    Parameters
    ----------
    source : str, Path or binary file object
        A ``.csv`` (optionally ``.gz``/``.bz2``/``.zst``/``.lz4`` compressed) or
        ``.parquet`` file, ``"-"`` for CSV on standard input, a filesystem URL
        (``file:///data/a.parquet``, ``s3://...``; schemes pyarrow does not know go to fsspec
        where it is installed), or a file object open for reading bytes (``open(path,
        "rb")``, ``io.BytesIO``), which is read from where it stands and left open.
    columns : sequence of str
        Column names; each must be in the file once and hold numbers or booleans with no
        missing values. CSV columns arrive as float64 (``true``/``false`` as 1 and 0, in a
        column whose first rows hold them), Parquet columns in their own type.
    batch_rows : int, optional
        Rows per Parquet batch (default ``DEFAULT_BATCH_ROWS``; CSV batches follow pyarrow's
        block size).
    format : {"csv", "parquet"}, optional
        The format, where the name does not tell it. By default it is told by the name's
        extension, and for a file object by its first bytes (Parquet's ``PAR1``, or CSV,
        compressed when it starts as gzip, bz2, zstd or lz4 do).
    keys : sequence of str, optional
        Those of ``columns`` that hold labels (groups) rather than numbers: yielded as
        pyarrow Arrays, missing values and all, for the caller to check. A CSV key column
        comes as int64 while every cell is an integer as Python writes it (``-12``, not
        ``+12``, ``012``, ``0x0c`` or ``-0``), as bool where every cell of its first block
        is ``true``/``True``/``TRUE`` or ``false``/``False``/``FALSE``, and as text,
        exactly as written, otherwise; from the first batch of integers holding another
        cell, as text (each integer before it was written as ``str(label)``). A cell of only
        whitespace, one that is not UTF-8, or a later cell of a boolean column that is not a
        boolean is refused by row. A Parquet one comes in its own type (dictionary columns
        as dictionaries).

    Raises
    ------
    InputError
        Naming the file: an unknown format, a missing column or one whose name is used twice
        (the message lists the columns there are), a missing value or a cell that is not a
        number (naming its row and column), a non-numeric column, a file that is not Parquet
        or CSV (truncated, say), or a compressed file that is corrupt or truncated.
    OSError
        When the file cannot be opened.
    """
    check_format(format)
    first_row = 0
    rows = DEFAULT_BATCH_ROWS if batch_rows is None else batch_rows
    where = _where(source)
    for batch in _record_batches(source, columns, rows, _position, format, keys):
        yield {name: batch.column(name) if name in keys
               else _column_values(batch, name, first_row, where) for name in columns}
        first_row += batch.num_rows


def read_columns(source: Any, columns: Sequence[str], *, format: str | None = None
                 ) -> dict[str, np.ndarray]:
    """All rows of the named columns, as one array each (see :func:`iter_batches`)."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in columns}
    for batch in iter_batches(source, columns, format=format):
        for name in columns:
            parts[name].append(batch[name])
    return {
        name: np.concatenate(chunks) if chunks else np.empty(0)
        for name, chunks in parts.items()
    }


def _file_object(source: Any) -> Any:
    """A file object, checked to read bytes."""
    try:
        probe = source.read(0)
    except (OSError, ValueError) as exc:  # closed, or not open for reading
        raise InputError(f"cannot read the file object {_where(source)}: {_one_line(exc)}",
                         argument="path") from None
    if not isinstance(probe, (bytes, bytearray, memoryview)):
        raise InputError(
            f"the file object {_where(source)} is open in text mode: open it in binary "
            "mode, open(path, 'rb'), or pass its path", argument="path")
    return source


def expand_sources(source: Any) -> list[Any]:
    """The files a source names: a file, ``"-"``, a URL, a binary file object, a directory
    (its Parquet files, at any depth, as in a partitioned dataset), a glob pattern, or a list
    of any of these; in sorted order within a directory or pattern, each file once."""
    if _is_file_object(source):
        return [_file_object(source)]
    if isinstance(source, (str, Path)):
        text = str(source)
        if "\x00" in text:  # the operating system would refuse it with a ValueError
            raise InputError(f"the path {text!r} holds a NUL character", argument="path",
                             value=text)
        if text == "-" or os.path.isfile(text) or _is_url(text):
            return [source]
        if os.path.isdir(text):
            found = sorted(str(path) for path in Path(text).rglob("*")
                           if path.is_file() and path.suffix.lower() in PARQUET_SUFFIXES)
            if not found:
                raise InputError(f"no Parquet files in the directory {text!r}",
                                 argument="path", value=text)
            return found
        if glob.has_magic(text):
            found = sorted(path for path in glob.glob(text, recursive=True)
                           if os.path.isfile(path))
            if not found:
                raise InputError(f"no files match {text!r}", argument="path", value=text)
            return found
        return [source]  # opening it will say what is wrong
    if isinstance(source, (bytes, bytearray, memoryview)) or not isinstance(source, Iterable):
        raise InputError(
            f"source must be a path, a URL, a binary file object or a list of them, got "
            f"{type(source).__name__}" + ("; wrap bytes in io.BytesIO" if isinstance(
                source, (bytes, bytearray, memoryview)) else ""), argument="path")

    def key(path: Any) -> Any:
        if _is_file_object(path):
            return id(path)
        return path if str(path) == "-" or _is_url(path) else os.path.realpath(path)

    # A file named twice (a directory and a pattern inside it, say) is read once.
    sources = list({key(path): path
                    for item in source for path in expand_sources(item)}.values())
    if not sources:
        raise InputError("no files given", argument="path")
    if any(str(path) == "-" and not _is_file_object(path) for path in sources) \
            and len(sources) > 1:
        raise InputError("standard input ('-') cannot be read along with files",
                         argument="path")
    return sources


class _Progress:
    """One line on a terminal, redrawn at most a few times a second: rows read, how far
    through the input where that is known, and rows per second."""

    def __init__(self, stream: TextIO, n_files: int) -> None:
        self._stream, self._n_files = stream, n_files
        self._started = self._shown = time.perf_counter()
        self._width = 0

    def show(self, rows: int, file_number: int, done: str | None, final: bool = False) -> None:
        now = time.perf_counter()
        if not final and now - self._shown < 0.25:
            return
        self._shown = now
        rate = rows / max(now - self._started, 1e-9)
        parts = [f"{rows:,} rows"]
        if self._n_files > 1:
            parts.append(f"file {file_number} of {self._n_files}")
        if done is not None:
            parts.append(done)
        parts.append(f"{rate / 1e6:.3g} M rows/s")
        text = "logitshift: " + ", ".join(parts)
        self._stream.write("\r" + text.ljust(self._width) + ("\n" if final else ""))
        self._stream.flush()
        self._width = len(text)


def _stream(source: Any, columns: Sequence[str], roles: dict[str, Any],
            fill: Callable[[dict[str, Any], int, int], None], *, batch_rows: int | None,
            progress: bool | None, format: str | None, keys: Sequence[str] = (),
            finish: Callable[[Any], None] | None = None) -> None:
    """Read the named columns of every file a batch at a time, in one pass, and hand each
    batch to ``fill(batch, first_row, threads)``, then the file to ``finish(file)``; their
    errors name the file and the column of ``roles``, and rows are numbered from 0 within
    each file."""
    batch_rows = DEFAULT_BATCH_ROWS if batch_rows is None else as_positive_int(batch_rows,
                                                                               "batch_rows")
    check_format(format)
    sources = expand_sources(source)
    if progress is None:
        progress = sys.stderr.isatty()
    shown = _Progress(sys.stderr, len(sources)) if progress else None
    # A pipeline: one thread reads (and decodes) the next batch while the others fill the
    # sketch with this one. Measured at 1e8 rows on 2 cores, 1.29 s against 1.74 s for
    # reading and filling in turn, each with both cores.
    fill_threads = max(1, max_threads() - 1)
    rows = 0
    for number, path in enumerate(sources, start=1):
        position = _Position()
        first_row = 0
        # Closed at once, even when the sketch refuses a batch: the reader first, then the
        # file with it.
        with closing(iter_batches(path, columns, batch_rows=batch_rows, format=format,
                                  keys=keys, _position=position)) as batches, \
                closing(read_ahead(batches)) as ahead:
            for batch in ahead:
                with prefixing(_where(path)), naming_columns(roles):
                    fill(batch, first_row, fill_threads)
                first_row += len(batch[columns[0]])
                position.rows = first_row
                if shown is not None:
                    shown.show(rows + first_row, number, position.describe())
        if finish is not None:
            with prefixing(_where(path)), naming_columns(roles):
                finish(path)
        rows += first_row
    if shown is not None:
        shown.show(rows, len(sources), "done", final=True)


def sketch_file(source: str | Path | Sequence[str | Path], label: str, offset: str | None = None,
                weight: str | None = None, *, batch_rows: int | None = None,
                progress: bool | None = None, format: str | None = None, offset_is: str = "logit",
                robust: bool = False, histogram: bool = False) -> Sketch:
    """Stream the named columns of files through a :class:`~logitshift.Sketch`, in one pass.

    Parameters
    ----------
    source : str, Path, binary file object or sequence of them
        A CSV or Parquet file (by its extension; CSV may be compressed), ``"-"`` for CSV on
        standard input, a filesystem URL or a binary file object (as for
        :func:`iter_batches`), a directory of Parquet files (a partitioned dataset), a glob
        pattern, or a list of these.
    label, offset, weight : str
        Column names, as for :func:`logitshift.fit_frame`.
    batch_rows : int, optional
        Rows per Parquet batch (default ``DEFAULT_BATCH_ROWS``). Memory is a few batches,
        whatever the size of the files.
    progress : bool, optional
        A progress line on standard error (rows, share of the input read, rows per second).
        By default, only when standard error is a terminal.
    format : {"csv", "parquet"}, optional
        The format of every file, where their names do not tell it (see
        :func:`iter_batches`).
    offset_is : {"logit", "probability"}, default "logit"
        What the offset column holds: raw scores (log-odds), or predicted probabilities,
        turned into log-odds a batch at a time as they are read (0 and 1 become ``-inf``
        and ``+inf``, which must agree with their labels).
    robust, histogram : bool, default False
        The sketch's optional tables (see :class:`~logitshift.Sketch`): the w² moments of
        robust standard errors, the fine histogram of the c-statistic.

    Raises
    ------
    InputError
        Naming the file, and the column and row where the fault is in one: as for
        :func:`iter_batches` and :func:`logitshift.fit`. Rows are numbered from 0 within
        each file.
    """
    check_offset_is(offset_is)
    return Files(source, {"y": label, "offset": offset, "weight": weight},
                 batch_rows=batch_rows, progress=progress, format=format,
                 offset_is=offset_is).summary(Needs(robust=robust, histogram=histogram))


def sketch_groups_file(source: str | Path | Sequence[str | Path], label: str, group: str,
                       offset: str | None = None, weight: str | None = None, *,
                       batch_rows: int | None = None, progress: bool | None = None,
                       format: str | None = None, offset_is: str = "logit") -> GroupSketch:
    """Stream the named columns of files into a
    :class:`~logitshift.GroupSketch`, in one pass.

    Parameters
    ----------
    source, batch_rows, progress, format, offset_is
        As for :func:`sketch_file`. Memory is a few batches and the sketch (a row per
        occupied ``(group, cell)`` pair), whatever the size of the files.
    label, offset, weight : str
        Column names, as for :func:`sketch_file`.
    group : str
        The column of groups: labels, not numbers (see ``keys`` of :func:`iter_batches`).
        A CSV column is read as integers where every cell is an integer as Python writes it,
        as booleans where every one is true or false, and as text, exactly as written,
        otherwise: labels written differently are different groups. A CSV's integers
        become the text they were written as where text labels follow them, in the file or
        in another CSV or Parquet file; booleans beside labels of another kind are refused.

    Raises
    ------
    InputError
        As :func:`sketch_file`, and for a missing group (``'a.csv': column 'country':
        group[7] is missing: every row needs a group``), a blank one (only whitespace) or
        one that is not UTF-8, a later cell of a CSV column of booleans that is not one,
        group labels of files that do not sort together or booleans beside other labels,
        or a group column that is also the label, offset or weight column.
    """
    check_offset_is(offset_is)
    return Files(source, {"y": label, "group": group, "offset": offset, "weight": weight},
                 batch_rows=batch_rows, progress=progress, format=format,
                 offset_is=offset_is).summary(Needs(groups=True))


class Files:
    """The files source: the named columns (``names`` maps roles to column names) of files,
    standard input or URLs (see :func:`sketch_file`), streamed a batch at a time into one
    summary; rows are numbered within each file."""

    def __init__(self, source: Any, names: dict[str, Any], *, offset_is: str = "logit",
                 batch_rows: int | None = None, progress: bool | None = None,
                 format: str | None = None) -> None:
        self.source, self.offset_is = source, offset_is
        self.roles, self._columns = named_columns(names)
        self._reading = {"batch_rows": batch_rows, "progress": progress, "format": format}

    def summary(self, needs: Needs) -> Sketch | GroupSketch:
        roles = self.roles
        require_scores(needs, roles.get("offset"), named=True)
        refuse_passes(needs, "a file or standard input")
        if not needs.groups:
            summary = empty(needs)
            self._stream(lambda batch: summary)
            return summary
        group = roles["group"]
        for role in ("y", "offset", "weight"):
            if roles[role] is not None and roles[role] == group:
                what = "label" if role == "y" else role
                raise InputError(f"group names the column {group!r}, which is also the "
                                 f"{what}: a file's column is read either as labels or as "
                                 "numbers", argument="group", value=group)
        # Each file fills a sketch of its own, added to those before it once it is read: a
        # CSV file's integer labels may yet turn out to be text, in the file or beside
        # another's.
        files = _FileGroups(self._reading["format"])
        self._stream(lambda batch: files.labels_of(batch[group]), keys=[group],
                     finish=files.finish)
        return files.total

    def _stream(self, summary_for: Callable[[dict[str, Any]], Sketch | GroupSketch],
                **options: Any) -> None:
        """Stream the files, each batch into the summary ``summary_for(batch)``."""
        roles = self.roles

        def fill_batch(batch: dict[str, Any], first_row: int, threads: int) -> None:
            chunk = {role: batch[name] for role, name in roles.items() if name is not None}
            # A file's first batch keeps its small groups as rows: a file read in one batch
            # is then solved as the same rows in memory are, to the bit; the batches after
            # it merge as cells.
            fill(summary_for(batch), chunk, first_row=first_row, offset_is=self.offset_is,
                 threads=threads, keep_rows=True)

        _stream(self.source, self._columns, roles, fill_batch, **self._reading, **options)


_KIND_NAMES = {"int": "integers", "bool": "booleans", "text": "text",
               "other": "of other types"}


def _kind(keys: np.ndarray) -> str:
    """What a sketch's group labels are: ``int``, ``bool``, ``text`` or ``other``."""
    if keys.dtype.kind in "iu":
        return "int"
    if keys.dtype.kind == "b":
        return "bool"
    return "text" if all(isinstance(key, str) for key in keys.tolist()) else "other"


def _as_text(sketch: GroupSketch) -> GroupSketch:
    """A sketch of a CSV's integer labels keyed by the text they were read from: each cell
    was an integer as Python writes it (see :class:`_CsvLabels`), so ``str`` gives it back."""
    return sketch.relabelled([str(key) for key in sketch.keys.tolist()])


class _FileGroups:
    """The group sketch of files read one after another: each file's own sketch, added to
    the total when the file ends.

    A CSV group column's integers are its text read as numbers (:class:`_CsvLabels`): where
    text labels follow them, in the same file or in another one, they become that text
    again, so that a CSV's labels are never refused or merged for having been read as
    integers first. Booleans beside labels of any other kind are refused: ``True`` would
    otherwise merge with ``1``."""

    def __init__(self, format: str | None) -> None:
        self.format = format
        self.total = GroupSketch()
        self.part = GroupSketch()
        self.total_from_csv = True  # every file in the total so far is a CSV
        self.kind: str | None = None  # the kind of the total's labels, and the file that
        self.kind_source = ""  # first gave it

    def labels_of(self, labels: Any) -> GroupSketch:
        """The file's sketch, ready for a batch of ``labels``: keyed by text if the batch
        is the first of a CSV's group column to be text."""
        if (self.part.n_groups and pa.types.is_string(getattr(labels, "type", None))
                and _kind(self.part.keys) == "int"):
            self.part = _as_text(self.part)
        return self.part

    def finish(self, source: Any) -> None:
        """Add the file's sketch to the total."""
        part, self.part = self.part, GroupSketch()
        if not part.n_groups:
            return
        csv = _format_of(source, self.format) == "csv"
        mine = _kind(part.keys)
        if {mine, self.kind} == {"int", "text"}:
            if mine == "int" and csv:
                part, mine = _as_text(part), "text"
            elif self.kind == "int" and self.total_from_csv:
                self.total, self.kind = _as_text(self.total), "text"
        if self.kind is not None and "bool" in (mine, self.kind) and mine != self.kind:
            raise InputError(
                f"its group labels are {_KIND_NAMES[mine]}, those of {self.kind_source} "
                f"{_KIND_NAMES[self.kind]}: a group column must hold labels of one kind in "
                "every file (True would be taken for 1)", argument="group")
        self.total = part if not self.total.n_groups else self.total + part
        self.total_from_csv = self.total_from_csv and csv
        if self.kind is None:
            self.kind, self.kind_source = mine, _where(source)

