"""The shift of data in a Dask collection: one pass, the same answer as in memory.

Needs dask (``pip install "logitshift[dask]"``). Each chunk of the arrays, or each partition
of the DataFrame, fills a :class:`~logitshift.Sketch` where it lies; the sketches merge in a
tree, eight at a time, and the client solves on the one sketch that is left. Sketches merge
exactly, so the result is the :class:`~logitshift.ShiftFit` that :func:`logitshift.fit` gives
on the same data in memory, to rounding. The work runs on whatever scheduler is active: a
``distributed.Client`` where one exists, as for any Dask computation.

:func:`fit_arrays` and :func:`fit_frame` are :func:`logitshift.fit` and
:func:`logitshift.fit_frame` with the Dask source chosen (they also take arrays in memory,
as one chunk each); :func:`sketch_arrays` and :func:`sketch_frame` stop at the merged sketch.
Per-group shifts take the same road with a :class:`~logitshift.GroupSketch` per chunk
(:func:`sketch_groups_arrays`, :func:`sketch_groups_frame`, :func:`fit_groups_arrays`,
:func:`fit_groups_frame`).

>>> import logitshift.dask                                             # doctest: +SKIP
>>> result = logitshift.dask.fit_arrays(labels, offsets)               # doctest: +SKIP
>>> result = logitshift.dask.fit_frame(ddf, label="y", offset="margin")  # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ._api import GROUPS, SHIFT, group_names, run, shift_options
from ._core.validate import as_bool, check_offset_is
from ._estimators.groups import GroupShiftFit, check_group_options
from ._estimators.result import ShiftFit
from ._sources.dask import DaskArrays, DaskFrame
from ._summary.chunks import Needs
from ._summary.group_sketch import GroupSketch
from ._summary.sketch import Sketch

__all__ = ["fit_arrays", "fit_frame", "sketch_arrays", "sketch_frame", "fit_groups_arrays",
           "fit_groups_frame", "sketch_groups_arrays", "sketch_groups_frame"]

def fit_arrays(y: Any, offset: Any = None, weight: Any = None, *, method: str = "auto",
               pseudo_count: float = 0.0, tol: float | None = None, max_iter: int = 100,
               se_type: str = "model") -> ShiftFit:
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
    return run(SHIFT, shift_options(method, pseudo_count, tol, max_iter, se_type),
               DaskArrays({"y": y, "offset": offset, "weight": weight}))


def sketch_arrays(y: Any, offset: Any = None, weight: Any = None, *, offset_is: str = "logit",
                  robust: bool = False, histogram: bool = False) -> Sketch:
    """The :class:`~logitshift.Sketch` of Dask arrays, in one pass over their chunks.

    Arguments and errors as for :func:`fit_arrays`: one task per chunk fills its sketch
    where the chunk lies, the sketches merge in a tree, and only the last one reaches the
    client. ``offset_is="probability"``: the offsets are predicted probabilities, turned
    into log-odds in each chunk's task (0 and 1 become ``-inf`` and ``+inf``, which must
    agree with their labels). ``robust`` and ``histogram``: the sketch's optional tables
    (see :class:`~logitshift.Sketch`).
    """
    needs = Needs(robust=as_bool(robust, "robust"), histogram=as_bool(histogram, "histogram"))
    check_offset_is(offset_is)
    return DaskArrays({"y": y, "offset": offset, "weight": weight},
                      offset_is=offset_is).summary(needs)


def fit_frame(frame: Any, label: Any, offset: Any = None, weight: Any = None, *,
              method: str = "auto", pseudo_count: float = 0.0, tol: float | None = None,
              max_iter: int = 100, se_type: str = "model") -> ShiftFit:
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
        The fit :func:`logitshift.fit_frame` gives on the same rows in memory, to rounding.

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
    return run(SHIFT, shift_options(method, pseudo_count, tol, max_iter, se_type),
               DaskFrame(frame, {"y": label, "offset": offset, "weight": weight}))


def sketch_frame(frame: Any, label: Any, offset: Any = None, weight: Any = None, *,
                 offset_is: str = "logit", robust: bool = False, histogram: bool = False
                 ) -> Sketch:
    """The :class:`~logitshift.Sketch` of the named columns of a Dask DataFrame, in one pass
    over its partitions; arguments and errors as for :func:`fit_frame`, ``offset_is``,
    ``robust`` and ``histogram`` as for :func:`sketch_arrays`."""
    check_offset_is(offset_is)
    needs = Needs(robust=as_bool(robust, "robust"), histogram=as_bool(histogram, "histogram"))
    return DaskFrame(frame, {"y": label, "offset": offset, "weight": weight},
                     offset_is=offset_is).summary(needs)




















def fit_groups_arrays(y: Any, group: Any, offset: Any = None, weight: Any = None, *,
                      shrinkage: str | None = None, nagq: int = 1, pseudo_count: float = 0.0,
                      tol: float | None = None, max_iter: int = 100, levels: Any = None,
                      offset_is: str = "logit", l2: float = 0.0) -> GroupShiftFit:
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
    options = check_group_options(shrinkage, nagq, pseudo_count, tol, max_iter, l2)
    check_offset_is(offset_is)
    return run(GROUPS, options,
               DaskArrays({"y": y, "group": group, "offset": offset, "weight": weight},
                          offset_is=offset_is, levels=levels))


def sketch_groups_arrays(y: Any, group: Any, offset: Any = None, weight: Any = None, *,
                         levels: Any = None, offset_is: str = "logit") -> GroupSketch:
    """The :class:`~logitshift.GroupSketch` of Dask arrays, in one pass over
    their chunks; arguments and errors as for :func:`fit_groups_arrays`."""
    check_offset_is(offset_is)
    return DaskArrays({"y": y, "group": group, "offset": offset, "weight": weight},
                      offset_is=offset_is, levels=levels).summary(Needs(groups=True))


def fit_groups_frame(frame: Any, label: Any, group: Any, offset: Any = None, weight: Any = None, *,
                     shrinkage: str | None = None, nagq: int = 1, pseudo_count: float = 0.0,
                     tol: float | None = None, max_iter: int = 100, levels: Any = None,
                     offset_is: str = "logit", l2: float = 0.0) -> GroupShiftFit:
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
        The result of :func:`logitshift.fit_groups_frame` on the same rows in memory.

    Raises
    ------
    InputError
        As :func:`fit_frame` says, with the errors of :func:`logitshift.fit_groups`:
        ``partition 3: column 'country': group[17] is missing: every row needs a group``.
    """
    options = check_group_options(shrinkage, nagq, pseudo_count, tol, max_iter, l2)
    check_offset_is(offset_is)
    return run(GROUPS, options,
               DaskFrame(frame, group_names(label, group, offset, weight), offset_is=offset_is,
                         levels=levels))


def sketch_groups_frame(frame: Any, label: Any, group: Any, offset: Any = None, weight: Any = None,
                        *, levels: Any = None, offset_is: str = "logit") -> GroupSketch:
    """The :class:`~logitshift.GroupSketch` of the named columns of a Dask
    DataFrame, in one pass over its partitions; arguments and errors as for
    :func:`fit_groups_frame`."""
    check_offset_is(offset_is)
    return DaskFrame(frame, group_names(label, group, offset, weight), offset_is=offset_is,
                     levels=levels).summary(Needs(groups=True))








