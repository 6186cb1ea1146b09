"""The pyarrow dataset source: a ``pyarrow.dataset.Dataset`` or ``Scanner``, read batch by batch.

A dataset brings its own files, partitioning, format and filters (``ds.dataset(path,
partitioning="hive").filter(...)``, or ``dataset.scanner(filter=...)``); this source scans
only the named columns and hands each record batch to the chunk step every source shares,
so memory stays a few batches. Rows are numbered within each file of the dataset (a
fragment), as the files source numbers them, and errors name the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._core.validate import InputError, as_positive_int, check_columns
from .._summary.chunks import (Needs, empty, fill_batches, named_columns, refuse_passes,
                               require_scores)
from .._summary.group_sketch import GroupSketch
from .._summary.sketch import Sketch

__all__ = ["ArrowDataset"]


class ArrowDataset:
    """The named columns (``names`` maps roles to column names) of a pyarrow ``Dataset`` or
    ``Scanner``.

    ``batch_rows`` sets the scan's batch size (a ``Dataset`` only: a ``Scanner`` was made
    with its own). A dataset knows its format, so ``format`` must be None; no progress
    line is shown. A ``Scanner`` made from an iterator of batches can be read only once.
    """

    def __init__(self, data: Any, names: Mapping[str, Any], *, offset_is: str = "logit",
                 levels: Any = None, batch_rows: int | None = None,
                 progress: bool | None = None, format: str | None = None) -> None:
        import pyarrow.dataset as ds

        if not isinstance(data, (ds.Dataset, ds.Scanner)):
            raise InputError(f"expected a pyarrow Dataset or Scanner, got {type(data).__name__}",
                             argument="source")
        if format is not None:
            raise InputError(f"format = {format!r} does not apply to a pyarrow dataset, which "
                             "knows its own format", argument="format", value=format)
        if batch_rows is not None:
            as_positive_int(batch_rows, "batch_rows")
            if isinstance(data, ds.Scanner):
                raise InputError("batch_rows does not apply to a Scanner, whose batches are "
                                 "set when it is made: Dataset.scanner(batch_size=...)",
                                 argument="batch_rows", value=batch_rows)
        self.data, self.offset_is, self.levels = data, offset_is, levels
        self.batch_rows = batch_rows
        self.roles, self._columns = named_columns(names)

    def summary(self, needs: Needs) -> Sketch | GroupSketch:
        import pyarrow.dataset as ds

        refuse_passes(needs, "a pyarrow dataset")
        require_scores(needs, self.roles.get("offset"), named=True)
        data = self.data
        schema = data.schema if isinstance(data, ds.Dataset) else data.projected_schema
        check_columns(self._columns, schema.names, "the dataset")
        if isinstance(data, ds.Dataset):
            options = {} if self.batch_rows is None else {"batch_size": self.batch_rows}
            data = data.scanner(columns=self._columns, **options)
        tagged = ((_place(batch.fragment), batch.record_batch) for batch in data.scan_batches())
        return fill_batches(empty(needs), tagged, self.roles, offset_is=self.offset_is,
                            levels=self.levels)


def _place(fragment: Any) -> str:
    """A fragment's file, for errors."""
    path = getattr(fragment, "path", None)
    return repr(path) if path else "the dataset"
