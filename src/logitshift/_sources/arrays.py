"""The in-memory source: arrays and tables in memory, summarised as the rows themselves.

:class:`Arrays` takes columns as values (numpy, lists, pandas, polars, pyarrow, CPU torch),
:class:`Table` the named columns of a table (:func:`frame_columns`). Their summary is
:class:`~logitshift._summary.memory.Rows` (checked for type and shape; the pass that validates them
comes with the curve the estimator asks for), or a :class:`GroupSketch` for per-group shifts.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .._core.class_input import as_class_labels, as_logits
from .._core.validate import (InputError, as_numeric, as_raw_scores, as_weight, check_columns,
                              column_roles, library_of, naming_columns)
from .._summary.chunks import Needs, empty, fill, require_scores
from .._summary.group_sketch import GroupSketch
from .._summary.memory import Rows
from .._summary.multiclass_rows import ClassRows
from .._summary.passes import Prepared

__all__ = ["Arrays", "Table", "frame_columns", "ClassArrays", "ClassTable"]


class Arrays:
    """Columns given as values: ``columns`` maps roles (``y``, ``offset``, ``weight``,
    ``group``) to arrays, scalars or None."""

    def __init__(self, columns: Mapping[str, Any], *, offset_is: str = "logit",
                 levels: Any = None, roles: Mapping[str, Any] | None = None) -> None:
        self.columns, self.offset_is, self.levels = dict(columns), offset_is, levels
        self.roles = dict(roles or {})

    def summary(self, needs: Needs) -> Rows | GroupSketch:
        """The rows in memory, or the group sketch of them (one pass)."""
        columns = self.columns
        with naming_columns(self.roles):
            require_scores(needs, columns.get("offset"), named=bool(self.roles))
            if needs.groups:
                # Solved here and never merged: small groups are cheaper as their rows.
                return fill(empty(needs), columns, offset_is=self.offset_is,
                            levels=self.levels, keep_rows=True)
            offset = as_raw_scores(columns.get("offset"), self.offset_is)
            return Rows(Prepared.of(columns["y"], offset, columns.get("weight")),
                        robust=needs.robust)


class Table(Arrays):
    """The named columns of a table in memory (see :func:`frame_columns`); ``names`` maps
    roles to column names."""

    def __init__(self, frame: Any, names: Mapping[str, Any], *, offset_is: str = "logit",
                 levels: Any = None) -> None:
        roles, values = frame_columns(frame, names["y"], names.get("offset"),
                                      names.get("weight"), group=names.get("group"))
        super().__init__(dict(zip(roles, values)), offset_is=offset_is, levels=levels,
                         roles=roles)


def frame_columns(frame: Any, label: Any, offset: Any = None, weight: Any = None, *,
                  group: Any = None) -> tuple[dict[str, Any], list[Any]]:
    """The roles (``{"y": label, "offset": ..., "weight": ...}``, with ``"group"`` after
    ``"y"`` where ``group`` names a column) and the columns that fill them (None where a
    role has no column), read from a pandas or polars DataFrame, a polars LazyFrame (only
    the named columns are collected), a pyarrow Table or RecordBatch, a mapping, or a numpy
    structured array (its fields). Raises for a column that is not there, listing those that
    are, for a name that two columns share, and for anything that is not a table."""
    roles, columns = column_roles(label, offset, weight, group=group)
    if hasattr(frame, "collect"):  # a polars LazyFrame: collect only the columns asked for
        check_columns(columns, frame.collect_schema().names(), "the frame")
        frame = frame.select(columns).collect()
    if isinstance(frame, np.ndarray):
        if frame.dtype.names is None:
            raise InputError(
                f"frame is a numpy array of dtype {frame.dtype}, without named fields: pass "
                "its columns to logitshift.fit(y, offset, weight) instead", argument="frame")
        available = list(frame.dtype.names)
    elif hasattr(frame, "column_names"):  # pyarrow
        available = list(frame.column_names)
    elif hasattr(frame, "columns") or isinstance(frame, Mapping):
        available = list(getattr(frame, "columns", frame))
    else:
        raise InputError(
            f"frame must be a table (a pandas or polars DataFrame, a pyarrow Table, a mapping "
            f"of names to arrays, a numpy structured array), got {type(frame).__name__}",
            argument="frame")
    check_columns(columns, available, "the frame")
    return roles, [None if name is None else frame[name] for name in roles.values()]


class ClassArrays:
    """The columns of a multiclass fit given as values: ``columns`` maps ``y`` (class
    indices, names with ``classes``, soft rows, or None for unlabelled rows), ``logits``
    (n × K) and ``weight`` to arrays. Summarised as :class:`ClassRows`."""

    def __init__(self, columns: Mapping[str, Any], *, offset_is: str = "logit",
                 classes: Any = None, binary: bool = False,
                 roles: Mapping[str, Any] | None = None) -> None:
        self.columns, self.logits_is, self.classes = dict(columns), offset_is, classes
        self.binary = binary  # one column of log-odds (or probabilities) is two classes
        self.roles = dict(roles or {})
        self.class_names: list[Any] | None = None

    def summary(self, needs: Needs) -> ClassRows:
        """The rows in memory as a softmax pass (checked for type and shape; the first pass
        validates the values)."""
        if not needs.classes:
            raise InputError("these columns hold n × K logits: only the multiclass fits read "
                             "them", argument="logits")
        columns = self.columns
        with naming_columns(self.roles):
            values, binary = columns["logits"], False
            if self.binary and values is not None and np.ndim(values) == 1:
                values, binary = _two_classes(as_numeric(values, "logits"), self.logits_is), True
            logits = as_logits(values, "logits", self.logits_is)
            n_rows, n_classes = logits.shape
            index = rows = None
            if columns.get("y") is not None:
                index, rows, self.class_names = as_class_labels(columns["y"], n_rows, n_classes,
                                                                self.classes)
            elif self.classes is not None:
                index, rows, self.class_names = None, None, as_class_labels(
                    np.zeros(n_rows, dtype=np.int64), n_rows, n_classes, self.classes)[2]
            weight = as_weight(columns.get("weight"), n_rows, check_values=False)
            if weight is not None and weight.shape[0] and not np.any(weight != 0):
                raise InputError("weight is zero on every row", argument="weight")
        return ClassRows(logits, index, rows, weight, normalise=needs.normalise,
                         classes=self.class_names, binary=binary)


def _two_classes(values: np.ndarray, logits_is: str) -> np.ndarray:
    """One column of log-odds ``f`` as two classes' logits ``[0, f]``; of probabilities
    ``p`` of the second class, as ``[1 - p, p]``."""
    if values.dtype.kind == "b":
        raise InputError("logits is boolean: scores, not a mask", argument="logits")
    values = values.astype(np.float64)
    if logits_is == "probability":
        return np.column_stack([1.0 - values, values])
    return np.column_stack([np.zeros_like(values), values])


class ClassTable(ClassArrays):
    """The named columns of a multiclass fit in a table in memory: ``names`` maps ``y``,
    ``logits`` (K column names, or one column of fixed-size lists) and ``weight``."""

    def __init__(self, frame: Any, names: Mapping[str, Any], *, offset_is: str = "logit",
                 classes: Any = None, binary: bool = False) -> None:
        logits = names["logits"]
        single = isinstance(logits, (str, int)) and not isinstance(logits, bool)
        wanted = [logits] if single else _logit_names(logits)
        roles, values = frame_columns(frame, names.get("y") if names.get("y") is not None
                                      else wanted[0], None, names.get("weight"))
        if names.get("y") is None:
            values[0] = None
        check_columns(wanted, _available(frame), "the frame")
        if hasattr(frame, "collect"):
            frame = frame.select(wanted).collect()
        if single:
            logit_values = _list_column(frame[logits], logits)
        else:
            logit_values = np.column_stack([as_numeric(frame[name], f"column {name!r}")
                                            for name in wanted])
        roles = {"y": roles["y"] if names.get("y") is not None else None,
                 "weight": roles["weight"], "logits": logits if single else None}
        super().__init__({"y": values[0], "logits": logit_values,
                          "weight": values[-1] if names.get("weight") is not None else None},
                         offset_is=offset_is, classes=classes, binary=binary, roles=roles)


def _logit_names(logits: Any) -> list[Any]:
    if isinstance(logits, (str, bytes)) or not hasattr(logits, "__iter__"):
        raise InputError(f"logits must name K columns or one column of lists, got {logits!r}",
                         argument="logits", value=logits)
    names = list(logits)
    if len(names) < 2:
        raise InputError(f"logits names {len(names)} column: a multiclass fit needs at least "
                         "2 classes", argument="logits", value=names)
    if len(set(map(repr, names))) != len(names):
        raise InputError(f"logits names a column twice: {names!r}", argument="logits")
    return names


def _available(frame: Any) -> list[Any]:
    if hasattr(frame, "collect_schema"):
        return list(frame.collect_schema().names())
    if hasattr(frame, "column_names"):
        return list(frame.column_names)
    if isinstance(frame, np.ndarray) and frame.dtype.names:
        return list(frame.dtype.names)
    return list(getattr(frame, "columns", frame))


def _list_column(column: Any, name: Any) -> np.ndarray:
    """An n × K array from one column of fixed-size lists (pyarrow ``fixed_size_list``,
    polars ``Array``, or a pandas column of equal-length arrays)."""
    library = library_of(column)
    if library == "pyarrow":
        import pyarrow as pa

        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        if not pa.types.is_fixed_size_list(column.type):
            raise InputError(f"column {name!r} holds {column.type}: one column of logits must "
                             "be a fixed-size list (pa.list_(pa.float64(), K))",
                             argument="logits", value=name)
        if column.null_count:
            row = int(np.flatnonzero(np.asarray(column.is_null()))[0])
            raise InputError(f"column {name!r}: logits[{row}] is missing", argument="logits",
                             index=row)
        width = column.type.list_size
        return np.asarray(column.flatten()).reshape(len(column), width)
    values = column.to_numpy() if hasattr(column, "to_numpy") else np.asarray(column)
    if values.dtype == object:
        try:
            values = np.stack(list(values))
        except ValueError as exc:
            raise InputError(f"column {name!r}: its lists of logits differ in length ({exc})",
                             argument="logits", value=name) from None
    return values
