"""The shift of data in a Dask collection: one pass, the same answer as in memory.

Needs dask (``pip install "logitshift[dask]"``). Each chunk of the arrays, or each partition
of the DataFrame, fills a :class:`~logitshift.Sketch` where it lies; the sketches merge in a
tree, eight at a time, and the client solves on the one sketch that is left. Sketches merge
exactly, so the result is the :class:`~logitshift.ShiftFit` that :func:`logitshift.fit` gives
on the same data in memory, to rounding. The work runs on whatever scheduler is active: a
``distributed.Client`` where one exists, as for any Dask computation.

As a source, the module turns a collection into one sketch (:func:`sketch_arrays`,
:func:`sketch_frame`); :func:`fit_arrays` and :func:`fit_frame` then solve it, as
:func:`logitshift.fit` and :func:`logitshift.fit_frame` do for Dask inputs. Per-group shifts
take the same road with a :class:`~logitshift._group_sketch.GroupSketch` per chunk
(:func:`sketch_groups_arrays`, :func:`sketch_groups_frame`, :func:`fit_groups_arrays`,
:func:`fit_groups_frame`).

>>> import logitshift.dask                                             # doctest: +SKIP
>>> result = logitshift.dask.fit_arrays(labels, offsets)               # doctest: +SKIP
>>> result = logitshift.dask.fit_frame(ddf, label="y", offset="margin")  # doctest: +SKIP
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

from ._group_sketch import GroupSketch
from ._groups import GroupShiftFit, check_group_options, fit_group_curves
from ._result import ShiftFit
from ._shift import check_options, fit_curve
from ._sketch import Sketch
from ._validate import (InputError, as_bool, as_numeric, as_offset, as_raw_scores,
                        check_columns, check_offset_is, check_se_type, column_roles,
                        naming_columns, prefixing, rows)

__all__ = ["fit_arrays", "fit_frame", "sketch_arrays", "sketch_frame", "fit_groups_arrays",
           "fit_groups_frame", "sketch_groups_arrays", "sketch_groups_frame"]

#: Sketches merged by one task of the reduction tree.
_FAN_IN = 8


def fit_arrays(
    y: Any,
    offset: Any = None,
    weight: Any = None,
    *,
    method: str = "auto",
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
    se_type: str = "model",
) -> ShiftFit:
    """:func:`logitshift.fit` on Dask arrays, in one pass over their chunks.

    Parameters
    ----------
    y : dask.array.Array, shape (n,)
        Labels in [0, 1]: bool, integer or float (soft labels allowed).
    offset : dask.array.Array of shape (n,), float or None, optional
        Fixed raw scores (log-odds) that the shift is added to. An array chunked unlike
        ``y`` is rechunked to ``y``'s chunks.
    weight : dask.array.Array of shape (n,), optional
        Non-negative frequency weights, rechunked like ``offset``.
    method : {"auto", "sketch"}
        Both fill one sketch per chunk. ``"newton"``, which makes a pass over the data per
        iteration, raises: the sketch gives the same shift (to about 1e-16) in one pass.
    pseudo_count, tol, max_iter, se_type
        As for :func:`logitshift.fit`.

    Returns
    -------
    ShiftFit
        With ``passes == 1``; its statistics (``confint``, ``loss_at``, ...) come from the
        sketch, without touching the data again.

    Raises
    ------
    InputError
        As :func:`logitshift.fit`, with rows numbered from the start of the whole array
        (``offset[1032] is nan``). Where Dask does not know the chunks' sizes (arrays made
        from a DataFrame), rows are numbered within their chunk and the message starts with
        it: ``chunk 3: offset[17] is nan``. Errors found in a chunk are raised on the client
        once the chunk's task has failed.

    Notes
    -----
    Each chunk is read once, by one task, and becomes a sketch of a few kilobytes (16 cells
    per unit of offset range the chunk occupies); about ``chunks / 7`` further tasks merge
    them. No data but the final sketch reach the client.

    Examples
    --------
    >>> import dask.array as da, logitshift.dask                       # doctest: +SKIP
    >>> offsets = da.random.normal(0, 2, 10_000_000, chunks=1_000_000)  # doctest: +SKIP
    >>> labels = da.random.random(offsets.shape, chunks=offsets.chunks) < 1 / (
    ...     1 + da.exp(2 - offsets))                                    # doctest: +SKIP
    >>> logitshift.dask.fit_arrays(labels, offsets).shift              # doctest: +SKIP
    -2.00...
    """
    check_method(method)
    check_options(method, pseudo_count, tol, max_iter)
    return _solve(sketch_arrays(y, offset, weight, robust=check_se_type(se_type) == "robust"),
                  {}, pseudo_count=pseudo_count, tol=tol, max_iter=max_iter, se_type=se_type)


def sketch_arrays(y: Any, offset: Any = None, weight: Any = None, *,
                  offset_is: str = "logit", robust: bool = False,
                  histogram: bool = False) -> Sketch:
    """The :class:`~logitshift.Sketch` of Dask arrays, in one pass over their chunks.

    Arguments and errors as for :func:`fit_arrays`: one task per chunk fills its sketch
    where the chunk lies, the sketches merge in a tree, and only the last one reaches the
    client. ``offset_is="probability"``: the offsets are predicted probabilities, turned
    into log-odds in each chunk's task (0 and 1 become ``-inf`` and ``+inf``, which must
    agree with their labels). ``robust`` and ``histogram``: the sketch's optional tables
    (see :class:`~logitshift.Sketch`).
    """
    options = {"robust": as_bool(robust, "robust"), "histogram": as_bool(histogram,
                                                                          "histogram")}
    check_offset_is(offset_is)
    labels = _as_dask(y, "y")
    offsets, weights, first_rows, known, offset_is = _chunked(labels, offset, weight,
                                                              offset_is)
    # The arrays' graphs go in unoptimised: array optimisation fuses a task that the arrays
    # share (one loader for labels and offsets) into each of them, which reads it twice.
    sketches = [
        dask.delayed(_sketch)(labels_block, offset_block, weight_block,
                              first_row=int(first_row), where=None if known else f"chunk {i}",
                              roles={}, offset_is=offset_is, options=options)
        for i, (labels_block, offset_block, weight_block, first_row) in enumerate(
            zip(labels.to_delayed(optimize_graph=False), offsets, weights, first_rows))
    ]
    return _merged(sketches)


def fit_frame(
    frame: Any,
    label: Any,
    offset: Any = None,
    weight: Any = None,
    *,
    method: str = "auto",
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
    se_type: str = "model",
) -> ShiftFit:
    """:func:`logitshift.fit_frame` on a Dask DataFrame, in one pass over its partitions.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        Only the named columns are read (Dask pushes the selection down to Parquet and other
        readers that can skip columns).
    label, offset, weight : column names
        The labels, and optionally the offsets and the weights.
    method, pseudo_count, tol, max_iter, se_type
        As for :func:`fit_arrays`.

    Returns
    -------
    ShiftFit

    Raises
    ------
    InputError
        A column that is not in the frame, before any work; or any error of
        :func:`logitshift.fit`, with the partition and the column:
        ``partition 3: column 'margin': offset[17] is nan``. Rows are numbered by position
        within their partition, from 0 (the partitions' lengths are not known before the
        pass).

    Examples
    --------
    >>> import dask.dataframe as dd, logitshift.dask                   # doctest: +SKIP
    >>> ddf = dd.read_parquet("clicks/")                               # doctest: +SKIP
    >>> logitshift.dask.fit_frame(ddf, label="clicked", offset="margin").shift  # doctest: +SKIP
    """
    check_method(method)
    check_options(method, pseudo_count, tol, max_iter)
    return _solve(sketch_frame(frame, label, offset, weight,
                               robust=check_se_type(se_type) == "robust"),
                  column_roles(label, offset, weight)[0], pseudo_count=pseudo_count, tol=tol,
                  max_iter=max_iter, se_type=se_type)


def sketch_frame(frame: Any, label: Any, offset: Any = None, weight: Any = None, *,
                 offset_is: str = "logit", robust: bool = False,
                 histogram: bool = False) -> Sketch:
    """The :class:`~logitshift.Sketch` of the named columns of a Dask DataFrame, in one pass
    over its partitions; arguments and errors as for :func:`fit_frame`, ``offset_is``,
    ``robust`` and ``histogram`` as for :func:`sketch_arrays`."""
    import dask.dataframe as dd

    check_offset_is(offset_is)
    options = {"robust": as_bool(robust, "robust"), "histogram": as_bool(histogram,
                                                                          "histogram")}

    if not isinstance(frame, dd.DataFrame):
        raise InputError(f"frame must be a dask DataFrame, got {type(frame).__name__}; "
                         "for a table in memory use logitshift.fit_frame", argument="frame")
    roles, columns = column_roles(label, offset, weight)
    check_columns(columns, list(frame.columns), "the frame")
    return _merged([dask.delayed(_partition_sketch)(part, roles, where=f"partition {i}",
                                                    offset_is=offset_is, options=options)
                    for i, part in enumerate(frame[columns].to_delayed())])


def check_method(method: str) -> None:
    """Refuse ``method="newton"`` before the pass: it would make a pass per iteration."""
    if method == "newton":
        raise InputError(
            "method = 'newton' makes a pass over the data per iteration; on a Dask "
            "collection use 'sketch' (or 'auto'), which gives the same shift in one pass",
            argument="method", value=method)


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


def _sketch(y: Any, offset: Any, weight: Any, *, first_row: int, where: str | None,
            roles: Mapping[str, Any], offset_is: str = "logit",
            options: Mapping[str, bool] = {}) -> Sketch:
    """The sketch of one chunk; errors name the chunk (``where``) when its rows are numbered
    from its own start, and the column when the arrays are a frame's (``roles``).
    Probabilities become log-odds here, in the chunk's task."""
    with prefixing(where) if where is not None else nullcontext(), naming_columns(roles):
        offset = as_raw_scores(offset, offset_is, first_row=first_row)
        return Sketch(**options).update(y, offset, weight, first_row=first_row)


def _partition_sketch(part: Any, roles: Mapping[str, Any], where: str,
                      offset_is: str = "logit", options: Mapping[str, bool] = {}) -> Sketch:
    """The sketch of one partition (a pandas DataFrame) of a Dask DataFrame."""
    return _sketch(*(None if name is None else part[name] for name in roles.values()),
                   first_row=0, where=where, roles=roles, offset_is=offset_is,
                   options=options)


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


def _solve(sketch: Sketch, roles: Mapping[str, Any], **options: Any) -> ShiftFit:
    """The shift of the merged sketch; errors about the whole (no rows, no weight) name the
    column of ``roles`` they concern."""
    with naming_columns(roles):
        return fit_curve(sketch, method="sketch", **options)


# -- per-group shifts ---------------------------------------------------------------------------

def fit_groups_arrays(
    y: Any,
    group: Any,
    offset: Any = None,
    weight: Any = None,
    *,
    shrinkage: str | None = None,
    nagq: int = 1,
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
    levels: Any = None,
    offset_is: str = "logit",
) -> GroupShiftFit:
    """:func:`logitshift.fit_groups` on Dask arrays, in one pass over their chunks.

    Parameters
    ----------
    y, offset, weight
        As for :func:`fit_arrays`.
    group : dask.array.Array of shape (n,), or array_like
        Each row's group (integers, strings, floats, bools; with ``levels``, integer codes
        into them), rechunked to ``y``'s chunks; an array in memory is cut into them.
    shrinkage, nagq, pseudo_count, tol, max_iter, levels, offset_is
        As for :func:`logitshift.fit_groups`.

    Returns
    -------
    GroupShiftFit
        The result of :func:`logitshift.fit_groups` on the same rows in memory, to rounding:
        group sketches merge exactly, cell by cell.

    Raises
    ------
    InputError
        As :func:`logitshift.fit_groups`, rows numbered as :func:`fit_arrays` numbers them
        (``group[1032] is missing``, or ``chunk 3: group[17] is missing`` where Dask does
        not know the chunks' sizes).

    Notes
    -----
    Each chunk is read once, by one task, into a group sketch (a row per occupied
    ``(group, cell)`` pair); the sketches merge in a tree, eight at a time, and the client
    fits the one left. The random-intercept model then needs no further pass.
    """
    options = check_group_options(shrinkage, nagq, pseudo_count, tol, max_iter)
    return _solve_groups(sketch_groups_arrays(y, group, offset, weight, levels=levels,
                                              offset_is=offset_is), {}, options)


def sketch_groups_arrays(y: Any, group: Any, offset: Any = None, weight: Any = None, *,
                         levels: Any = None, offset_is: str = "logit") -> GroupSketch:
    """The :class:`~logitshift._group_sketch.GroupSketch` of Dask arrays, in one pass over
    their chunks; arguments and errors as for :func:`fit_groups_arrays`."""
    check_offset_is(offset_is)
    labels = _as_dask(y, "y")
    groups = _aligned(_as_dask_groups(group, labels), labels, "group").to_delayed(
        optimize_graph=False)
    offsets, weights, first_rows, known, offset_is = _chunked(labels, offset, weight,
                                                              offset_is)
    sketches = [
        dask.delayed(_group_sketch)(labels_block, group_block, offset_block, weight_block,
                                    first_row=int(first_row),
                                    where=None if known else f"chunk {i}", roles={},
                                    offset_is=offset_is, levels=levels)
        for i, (labels_block, group_block, offset_block, weight_block, first_row) in enumerate(
            zip(labels.to_delayed(optimize_graph=False), groups, offsets, weights, first_rows))
    ]
    return _merged(sketches)


def fit_groups_frame(
    frame: Any,
    label: Any,
    group: Any,
    offset: Any = None,
    weight: Any = None,
    *,
    shrinkage: str | None = None,
    nagq: int = 1,
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
    levels: Any = None,
    offset_is: str = "logit",
) -> GroupShiftFit:
    """:func:`logitshift.fit_groups_frame` on a Dask DataFrame, in one pass over its
    partitions.

    Parameters
    ----------
    frame : dask.dataframe.DataFrame
        Only the named columns are read.
    label, group, offset, weight : column names
        The labels, the groups (categorical columns included), and optionally the offsets
        and the weights.
    shrinkage, nagq, pseudo_count, tol, max_iter, levels, offset_is
        As for :func:`logitshift.fit_groups`.

    Returns
    -------
    GroupShiftFit

    Raises
    ------
    InputError
        A column that is not in the frame, before any work; or any error of
        :func:`logitshift.fit_groups`, with the partition and the column:
        ``partition 3: column 'country': group[17] is missing: every row needs a group``,
        rows numbered within their partition.
    """
    options = check_group_options(shrinkage, nagq, pseudo_count, tol, max_iter)
    roles, _ = column_roles(label, offset, weight, group=group)
    return _solve_groups(sketch_groups_frame(frame, label, group, offset, weight,
                                             levels=levels, offset_is=offset_is),
                         roles, options)


def sketch_groups_frame(frame: Any, label: Any, group: Any, offset: Any = None,
                        weight: Any = None, *, levels: Any = None, offset_is: str = "logit"
                        ) -> GroupSketch:
    """The :class:`~logitshift._group_sketch.GroupSketch` of the named columns of a Dask
    DataFrame, in one pass over its partitions; arguments and errors as for
    :func:`fit_groups_frame`."""
    import dask.dataframe as dd

    check_offset_is(offset_is)
    if not isinstance(frame, dd.DataFrame):
        raise InputError(f"frame must be a dask DataFrame, got {type(frame).__name__}; "
                         "for a table in memory use logitshift.fit_groups_frame",
                         argument="frame")
    roles, columns = column_roles(label, offset, weight, group=group)
    check_columns(columns, list(frame.columns), "the frame")
    return _merged([dask.delayed(_partition_group_sketch)(part, roles, where=f"partition {i}",
                                                          offset_is=offset_is, levels=levels)
                    for i, part in enumerate(frame[columns].to_delayed())])


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


def _group_sketch(y: Any, group: Any, offset: Any, weight: Any, *, first_row: int,
                  where: str | None, roles: Mapping[str, Any], offset_is: str,
                  levels: Any) -> GroupSketch:
    """The group sketch of one chunk; errors named as :func:`_sketch` names them."""
    with prefixing(where) if where is not None else nullcontext(), naming_columns(roles):
        offset = as_raw_scores(offset, offset_is, first_row=first_row)
        return GroupSketch().update(y, group, offset, weight, levels=levels,
                                    first_row=first_row)


def _partition_group_sketch(part: Any, roles: Mapping[str, Any], where: str, offset_is: str,
                            levels: Any) -> GroupSketch:
    """The group sketch of one partition (a pandas DataFrame) of a Dask DataFrame."""
    y, group, offset, weight = (None if name is None else part[name]
                                for name in roles.values())
    return _group_sketch(y, group, offset, weight, first_row=0, where=where, roles=roles,
                         offset_is=offset_is, levels=levels)


def _solve_groups(sketch: GroupSketch, roles: Mapping[str, Any], options: dict[str, Any]
                  ) -> GroupShiftFit:
    """The per-group fit of the merged sketch; errors about the whole name their column."""
    with naming_columns(roles):
        return fit_group_curves(sketch, **options)
