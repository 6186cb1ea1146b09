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

from .._core.validate import InputError, as_raw_scores, check_columns, column_roles, naming_columns
from .._summary.chunks import Needs, empty, fill, require_scores
from .._summary.group_sketch import GroupSketch
from .._summary.memory import Rows
from .._summary.passes import Prepared

__all__ = ["Arrays", "Table", "frame_columns"]


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
