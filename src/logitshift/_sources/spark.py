"""The Spark source: one summary per partition, filled where the partition lies, merged on the
driver.

``DataFrame.mapInArrow`` hands each partition of the named columns to a Python worker as
Arrow record batches (no pandas conversion); the worker hands each batch to the chunk step
every source shares (:func:`logitshift._summary.chunks.fill`), so the partition becomes one
:class:`~logitshift.Sketch` (a :class:`~logitshift.GroupSketch` for per-group shifts), and
returns it as one row of bytes. The driver collects those rows (a few kilobytes each) and
merges them with ``+``: summaries merge exactly, so the estimators give what they give on the
same rows in memory, to rounding. It runs on whatever ``SparkSession`` made the DataFrame: a
local one, a cluster, or Spark Connect (which has no RDDs, hence no ``treeReduce``).

A bad row is found in its worker and sent back as an error row, not raised there: Spark would
wrap the exception in its own, and retry the task to the same end. The driver raises it as
the :class:`InputError` it was, naming the partition, the column and the row within the
partition: ``partition 3: column 'margin': offset[17] is nan``.
"""

from __future__ import annotations

import functools
import pickle
from collections.abc import Iterator, Mapping
from typing import Any

try:
    import pyspark  # noqa: F401  (the extra, checked once, where the source is chosen)
except ImportError as exc:
    raise ImportError('reading a Spark DataFrame needs pyspark: '
                      'pip install "logitshift[spark]"') from exc

from .._core.validate import InputError, check_columns, naming_columns, prefixing
from .._summary.chunks import Needs, empty, fill, named_columns, refuse_passes, require_scores
from .._summary.group_sketch import GroupSketch
from .._summary.sketch import Sketch

__all__ = ["SparkFrame"]

#: The rows each partition returns: its number, and either its summary's bytes or its error
#: (the pickled message, argument, row and value of the :class:`InputError`).
_SCHEMA = "partition long, summary binary, error binary"


class SparkFrame:
    """The named columns of a ``pyspark.sql.DataFrame`` (only those are read); rows are
    numbered within their partition."""

    #: Rows handed to the chunk step at once: Spark's batches (10,000 rows by default) are
    #: joined up to this many, as a fill costs some 30 µs whatever its size.
    chunk_rows = 1 << 18

    def __init__(self, frame: Any, names: Mapping[str, Any], *, offset_is: str = "logit",
                 levels: Any = None) -> None:
        self.frame, self.offset_is, self.levels = frame, offset_is, levels
        self.roles, self._columns = named_columns(names)

    def summary(self, needs: Needs) -> Sketch | GroupSketch:
        from pyspark.sql import DataFrame
        from pyspark.sql import functions as F

        refuse_passes(needs, "a Spark DataFrame")
        require_scores(needs, self.roles.get("offset"), named=True)
        frame = self.frame
        if not isinstance(frame, DataFrame):
            raise InputError(f"frame must be a pyspark.sql.DataFrame, got "
                             f"{type(frame).__name__}", argument="frame")
        check_columns(self._columns, frame.columns, "the frame")
        # Backquoted, so that a name with a dot is a column, not a field of a struct; and
        # renamed by position, as mapInArrow itself reads them back by name, unquoted.
        # Decimals (Spark SQL's type of a literal such as 0.5) are numbers to the kernels:
        # they travel as doubles. A group keeps its labels.
        kinds = dict(frame.dtypes)
        group = self.roles.get("group") if needs.groups else None
        selected = frame.select(*[
            _cast(F.col("`" + name.replace("`", "``") + "`"), kinds.get(name), name != group)
            .alias(f"_{i}") for i, name in enumerate(self._columns)])
        positions = {role: self._columns.index(name) for role, name in self.roles.items()
                     if name is not None}
        fill_partition = functools.partial(_partition_summary, needs=needs, roles=self.roles,
                                           positions=positions, offset_is=self.offset_is,
                                           levels=self.levels, chunk_rows=self.chunk_rows)
        rows = selected.mapInArrow(fill_partition, _SCHEMA).collect()
        errors = sorted((row.partition, row.error) for row in rows if row.error is not None)
        if errors:
            message, argument, index, value = pickle.loads(errors[0][1])
            raise InputError(message, argument=argument, index=index, value=value)
        # Merged on the driver, in partition order: a partition's summary is a few kilobytes,
        # and a merge takes microseconds to a millisecond (benchmarks/spark.py), far below
        # the cost of another Spark stage for a tree.
        summaries = [_read(needs, row.summary) for row in sorted(rows, key=lambda row: row.partition)
                     if row.summary is not None]
        return functools.reduce(lambda total, summary: total + summary, summaries,
                                empty(needs))


def _cast(column: Any, kind: str | None, number: bool) -> Any:
    """``column`` as a double where it holds decimals and is a ``number`` (not a group)."""
    return column.cast("double") if number and (kind or "").startswith("decimal") else column


def _read(needs: Needs, blob: bytes) -> Sketch | GroupSketch:
    return (GroupSketch if needs.groups else Sketch).from_bytes(bytes(blob))


def _partition_summary(batches: Iterator[Any], *, needs: Needs, roles: Mapping[str, Any],
                       positions: Mapping[str, int], offset_is: str, levels: Any,
                       chunk_rows: int) -> Iterator[Any]:
    """In a Spark worker: the partition's record batches (the column of each role at its
    position in ``positions``), joined into chunks of ``chunk_rows`` or more, into one
    summary, returned as one Arrow row of :data:`_SCHEMA`; or the first bad row's error, as
    the driver will raise it."""
    import pyarrow as pa
    from pyspark import TaskContext

    partition = TaskContext.get().partitionId()
    summary, first_row, error, blob = empty(needs), 0, None, None
    try:
        with prefixing(f"partition {partition}"), naming_columns(roles):
            for joined in _joined(batches, chunk_rows):
                chunk = {role: _column(joined, i) for role, i in positions.items()}
                fill(summary, chunk, first_row=first_row, offset_is=offset_is, levels=levels,
                     threads=1)  # a task has one core; Spark runs a task per core
                first_row += sum(batch.num_rows for batch in joined)
            if not first_row:
                return  # an empty partition adds nothing
            # In the try: a label the summary cannot write (a decimal group) is refused too.
            blob = summary.to_bytes()
    except InputError as exc:
        error = _pickled(exc)
    yield pa.RecordBatch.from_pydict(
        {"partition": [partition], "summary": [blob], "error": [error]},
        schema=pa.schema([("partition", pa.int64()), ("summary", pa.binary()),
                          ("error", pa.binary())]))


def _joined(batches: Iterator[Any], rows: int) -> Iterator[list[Any]]:
    """The batches in runs of at least ``rows`` rows (the last run may hold fewer)."""
    run, count = [], 0
    for batch in batches:
        run.append(batch)
        count += batch.num_rows
        if count >= rows:
            yield run
            run, count = [], 0
    if run:
        yield run


def _column(run: list[Any], position: int) -> Any:
    """The column at ``position`` of a run of batches, as one Arrow array."""
    import pyarrow as pa

    if len(run) == 1:
        return run[0].column(position)
    return pa.concat_arrays([batch.column(position) for batch in run])


def _pickled(exc: InputError) -> bytes:
    """The error's message, argument, row and value; a value that cannot be pickled goes as
    its ``repr``."""
    try:
        return pickle.dumps((str(exc), exc.argument, exc.index, exc.value))
    except Exception:  # noqa: BLE001 - any value at all may be the bad one
        return pickle.dumps((str(exc), exc.argument, exc.index, repr(exc.value)))
