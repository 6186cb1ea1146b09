"""The pyarrow dataset source: a ``pyarrow.dataset.Dataset`` or ``Scanner``, read batch by batch.

A dataset brings its own files, partitioning, format and filters (``ds.dataset(path,
partitioning="hive").filter(...)``, or ``dataset.scanner(filter=...)``); this source scans
only the named columns and hands each record batch to the chunk step every source shares,
so memory stays a few batches. Rows are numbered within each file of the dataset (a
fragment), as the files source numbers them, and errors name the file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
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
        return fill_batches(empty(needs), self._batches(data, schema), self.roles,
                            offset_is=self.offset_is, levels=self.levels)

    def _batches(self, scanner: Any, schema: Any) -> Iterator[tuple[str, Any]]:
        """The scan's record batches, each with its file; the group labels' kind checked
        file by file, and a scan Arrow cannot read named."""
        import pyarrow as pa

        group = self.roles.get("group")
        # The kind of the group labels in the first file, and that file: a dataset casts
        # every file to one schema, which would make the text "1" of one file, the integer 1
        # of another and True of a third one group.
        label_kind: tuple[str, str] | None = None
        seen: set[str] = set()
        batches = scanner.scan_batches()
        while True:
            try:
                tagged = next(batches)
            except StopIteration:
                return
            except pa.ArrowException as exc:
                raise _unreadable(self.data, schema, self._columns, exc) from None
            where = _place(tagged.fragment)
            if where not in seen and group is not None:
                label_kind = _group_kind(tagged.fragment, group, where, label_kind)
            seen.add(where)
            yield where, tagged.record_batch


def _place(fragment: Any) -> str:
    """A fragment's file, for errors."""
    path = getattr(fragment, "path", None)
    return repr(path) if path else "the dataset"


def _unreadable(data: Any, schema: Any, columns: list[str], error: Exception) -> InputError:
    """The error for a scan that Arrow could not read: where a file's column is of another
    type than the dataset's schema (which pyarrow takes from one file), that file, the
    column and both types; else Arrow's own message, as one line."""
    import pyarrow.dataset as ds

    reason = " ".join(str(error).split())
    if isinstance(data, ds.FileSystemDataset):
        for fragment in data.get_fragments():
            physical = fragment.physical_schema
            for name in columns:
                if name in physical.names and name in schema.names \
                        and physical.field(name).type != schema.field(name).type:
                    return InputError(
                        f"{fragment.path!r}: column {name!r} is of type "
                        f"{physical.field(name).type}, where the dataset's schema says "
                        f"{schema.field(name).type}: the files must agree on each column's "
                        f"type ({reason})", argument=name, value=str(physical.field(name).type))
    return InputError(f"cannot read the dataset: {reason}", argument="source")


def _kind_of(kind: Any) -> str:
    """The kind of group label an Arrow type holds, as the files source tells them apart:
    integers of any width and sign are one kind; a dictionary is its values' kind."""
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_integer(kind):
        return "integers"
    if pa.types.is_boolean(kind):
        return "booleans"
    if pa.types.is_floating(kind):
        return "floats"
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or \
            pa.types.is_string_view(kind):
        return "text"
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind) or \
            pa.types.is_binary_view(kind):
        return "bytes"
    return str(kind)


def _group_kind(fragment: Any, column: str, where: str, first: tuple[str, str] | None
                ) -> tuple[str, str] | None:
    """The kind of the group labels of a file as stored (before the dataset's cast), checked
    against the first file's: labels of two kinds are refused, naming both files."""
    try:
        physical = fragment.physical_schema
    except Exception:  # noqa: BLE001 - a fragment that cannot say keeps the dataset's type
        return first
    if column not in physical.names:  # a partition key: one type, the partitioning's
        return first
    kind = _kind_of(physical.field(column).type)
    if first is None:
        return (kind, where)
    if kind != first[0]:
        raise InputError(
            f"{where}: column {column!r}: its group labels are {kind}, those of {first[1]} "
            f"{first[0]}: a group column must hold labels of one kind in every file of a "
            "dataset (the dataset would cast them to one type, merging labels such as "
            "'1', 1 and True)", argument=column, value=(first[0], kind))
    return first
