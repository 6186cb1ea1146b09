"""The Dask source: one summary per chunk or partition, where it lies, merged in a tree.

Each chunk of the arrays, or each partition of the DataFrame, fills a
:class:`~logitshift.Sketch` (a :class:`~logitshift.GroupSketch` for per-group
shifts) by the chunk step every source shares (:func:`logitshift._summary.chunks.fill`); the
summaries merge in a tree, eight at a time, and the client gets the one that is left.
Summaries merge exactly, so the estimators give what they give on the same data in memory,
to rounding. The work runs on whatever scheduler is active: a ``distributed.Client`` where
one exists, as for any Dask computation. :mod:`logitshift.dask` holds the public functions.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Mapping
from contextlib import nullcontext
from typing import Any

import numpy as np

try:
    import dask
    import dask.array as da
except ImportError as exc:
    raise ImportError('logitshift.dask needs dask: pip install "logitshift[dask]"') from exc

from .._core.validate import (InputError, as_numeric, as_offset, as_raw_scores, check_columns,
                              naming_columns, prefixing, rows)
from .._summary.chunks import Needs, empty, fill, named_columns, refuse_passes, require_scores
from .._summary.group_sketch import GroupSketch
from .._summary.sketch import Sketch

__all__ = ["DaskArrays", "DaskFrame"]

#: Summaries merged by one task of the reduction tree.
_FAN_IN = 8


class DaskArrays:
    """Dask arrays (or arrays that become one chunk each), by role, as for
    :class:`~logitshift._sources.arrays.Arrays`; rows are numbered in the whole array where the
    chunks' sizes are known, else within their chunk."""

    roles: dict[str, Any] = {}

    def __init__(self, columns: Mapping[str, Any], *, offset_is: str = "logit",
                 levels: Any = None) -> None:
        self.columns, self.offset_is, self.levels = dict(columns), offset_is, levels

    def summary(self, needs: Needs) -> Sketch | GroupSketch:
        refuse_passes(needs, "a Dask collection")
        columns = self.columns
        require_scores(needs, columns.get("offset"), named=False)
        labels = _as_dask(columns["y"], "y")
        n_chunks = labels.numblocks[0]
        groups = ([None] * n_chunks if not needs.groups else _aligned(
            _as_dask_groups(columns.get("group"), labels), labels, "group").to_delayed(
                optimize_graph=False))
        offsets, weights, first_rows, known, offset_is = _chunked(
            labels, columns.get("offset"), columns.get("weight"), self.offset_is)
        # The arrays' graphs go in unoptimised: array optimisation fuses a task that the
        # arrays share (one loader for labels and offsets) into each of them, which reads it
        # twice.
        return _merged([
            dask.delayed(_chunk_summary)(needs, labels_block, offset_block, weight_block,
                                         group_block, first_row=int(first_row),
                                         where=None if known else f"chunk {i}", roles={},
                                         offset_is=offset_is, levels=self.levels)
            for i, (labels_block, offset_block, weight_block, group_block, first_row)
            in enumerate(zip(labels.to_delayed(optimize_graph=False), offsets, weights, groups,
                             first_rows))
        ])


class DaskFrame:
    """The named columns of a Dask DataFrame (only those are read); rows are numbered within
    their partition."""

    def __init__(self, frame: Any, names: Mapping[str, Any], *, offset_is: str = "logit",
                 levels: Any = None) -> None:
        self.frame, self.offset_is, self.levels = frame, offset_is, levels
        self.roles, self._columns = named_columns(names)

    def summary(self, needs: Needs) -> Sketch | GroupSketch:
        import dask.dataframe as dd

        refuse_passes(needs, "a Dask collection")
        require_scores(needs, self.roles.get("offset"), named=True)
        frame = self.frame
        if not isinstance(frame, dd.DataFrame):
            use = "fit_groups_frame" if needs.groups else "fit_frame"
            raise InputError(f"frame must be a dask DataFrame, got {type(frame).__name__}; "
                             f"for a table in memory use logitshift.{use}", argument="frame")
        check_columns(self._columns, list(frame.columns), "the frame")
        return _merged([dask.delayed(_partition_summary)(needs, part, self.roles,
                                                         where=f"partition {i}",
                                                         offset_is=self.offset_is,
                                                         levels=self.levels)
                        for i, part in enumerate(frame[self._columns].to_delayed())])


def _as_dask(values: Any, name: str) -> da.Array:
    """A 1-D numeric dask array; arrays in memory are checked as :func:`logitshift.fit`
    checks them, dask arrays for type and shape without reading them."""
    if not isinstance(values, da.Array):
        return da.from_array(as_numeric(values, name))
    if values.ndim != 1:
        raise InputError(f"{name} must be 1-D, got shape {values.shape}", argument=name)
    if values.dtype != object:  # an object array may hold numbers: its chunks will tell
        as_numeric(np.empty(0, dtype=values.dtype), name)
    return values


def _aligned(values: da.Array, labels: da.Array, name: str) -> da.Array:
    """``values`` in the chunks of ``labels``."""
    if not any(math.isnan(size) for size in values.chunks[0] + labels.chunks[0]):
        if values.shape[0] != labels.shape[0]:
            raise InputError(f"{name} has {rows(values.shape[0])}, y has {labels.shape[0]}",
                             argument=name)
        return values.rechunk(labels.chunks)
    # Sizes Dask does not know cannot be rechunked to; each chunk compares its own lengths.
    if values.numblocks != labels.numblocks:
        raise InputError(
            f"{name} is in {values.numblocks[0]} chunks and y in {labels.numblocks[0]}, of "
            f"sizes Dask does not know; call compute_chunk_sizes() on both first",
            argument=name)
    return values


def _chunked(labels: da.Array, offset: Any, weight: Any, offset_is: str
             ) -> tuple[list, list, Any, bool, str]:
    """The offsets and weights as delayed chunks aligned with ``labels``', each chunk's first
    row (0 where Dask does not know the sizes), whether it knows them, and what the offsets
    now hold: a constant offset is checked (and made a raw score) here, once."""
    if offset is None or np.ndim(offset) == 0:
        offset = as_offset(as_raw_scores(offset, offset_is), 0)
        offset_is = "logit"
        offsets = [offset] * labels.numblocks[0]
    else:
        offsets = _aligned(_as_dask(offset, "offset"), labels, "offset").to_delayed(
            optimize_graph=False)
    weights = ([None] * labels.numblocks[0] if weight is None
               else _aligned(_as_dask(weight, "weight"), labels, "weight").to_delayed(
                   optimize_graph=False))
    sizes = labels.chunks[0]
    known = not any(math.isnan(size) for size in sizes)
    first_rows = np.cumsum((0,) + sizes[:-1]) if known else [0] * len(sizes)
    return offsets, weights, first_rows, known, offset_is


def _as_dask_groups(values: Any, labels: da.Array) -> da.Array:
    """The groups as a 1-D dask array (labels of any kind: only their shape is checked
    here, their values in each chunk's task); an array in memory in ``labels``' chunks."""
    if not isinstance(values, da.Array):
        array = np.asarray(values)
        if array.ndim != 1:
            raise InputError(f"group must be 1-D, got shape {array.shape}: one group per row",
                             argument="group")
        if any(math.isnan(size) for size in labels.chunks[0]):
            # Chunks of unknown size cannot be matched: `_aligned` says so, naming the cure.
            return da.from_array(array, chunks=array.shape[0])
        if array.shape[0] != labels.shape[0]:
            raise InputError(f"group has {rows(array.shape[0])}, y has {labels.shape[0]}",
                             argument="group")
        return da.from_array(array, chunks=labels.chunks)
    if values.ndim != 1:
        raise InputError(f"group must be 1-D, got shape {values.shape}: one group per row",
                         argument="group")
    return values


def _chunk_summary(needs: Needs, y: Any, offset: Any, weight: Any, group: Any, *,
                   first_row: int, where: str | None, roles: Mapping[str, Any],
                   offset_is: str, levels: Any) -> Sketch | GroupSketch:
    """One chunk's summary, its rows numbered from ``first_row`` in errors (after ``where``,
    and naming the columns of ``roles``)."""
    chunk = {"y": y, "offset": offset, "weight": weight, "group": group}
    with prefixing(where) if where is not None else nullcontext(), naming_columns(roles):
        return fill(empty(needs), chunk, first_row=first_row, offset_is=offset_is,
                    levels=levels)


def _partition_summary(needs: Needs, part: Any, roles: Mapping[str, Any], where: str,
                       offset_is: str, levels: Any) -> Sketch | GroupSketch:
    """One partition's summary, its columns named by ``roles``."""
    chunk = {role: None if name is None else part[name] for role, name in roles.items()}
    return _chunk_summary(needs, chunk["y"], chunk.get("offset"), chunk.get("weight"),
                          chunk.get("group"), first_row=0, where=where, roles=roles,
                          offset_is=offset_is, levels=levels)


def _merge(*sketches: Sketch) -> Sketch:
    return functools.reduce(operator.add, sketches)


def _merged(sketches: list) -> Sketch:
    """Merge the chunks' sketches in a tree and gather the one left; a chunk's error (its
    column named) raises here."""
    while len(sketches) > 1:
        sketches = [dask.delayed(_merge)(*sketches[start:start + _FAN_IN])
                    for start in range(0, len(sketches), _FAN_IN)]
    (sketch,) = dask.compute(sketches[0])
    return sketch
