"""The sketch of a Spark DataFrame: one pass, merged on the driver.

Needs pyspark (``pip install "logitshift[spark]"``). :func:`logitshift.fit_frame`,
:func:`~logitshift.fit_slope_frame`, :func:`~logitshift.validate_frame` and
:func:`~logitshift.fit_groups_frame` take a ``pyspark.sql.DataFrame`` as they take a table in
memory: each partition fills a :class:`~logitshift.Sketch` (a
:class:`~logitshift.GroupSketch` for per-group shifts) where it lies, from the Arrow batches
of the named columns, and the driver merges them and solves. The functions here stop at the
merged sketch, for users who keep it (``to_bytes``), merge it with others, or fit it later.

>>> import logitshift, logitshift.spark                                # doctest: +SKIP
>>> result = logitshift.fit_frame(df, label="clicked", offset="margin")  # doctest: +SKIP
>>> sketch = logitshift.spark.sketch_frame(df, "clicked", "margin")    # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from ._api import group_names
from ._core.validate import as_bool, check_offset_is
from ._sources.spark import SparkFrame
from ._summary.chunks import Needs
from ._summary.group_sketch import GroupSketch
from ._summary.sketch import Sketch

__all__ = ["sketch_frame", "sketch_groups_frame"]


def sketch_frame(frame: Any, label: Any, offset: Any = None, weight: Any = None, *,
                 offset_is: str = "logit", robust: bool = False, histogram: bool = False
                 ) -> Sketch:
    """The :class:`~logitshift.Sketch` of the named columns of a Spark DataFrame, in one pass
    over its partitions.

    Parameters
    ----------
    frame : pyspark.sql.DataFrame
        Only the named columns are read.
    label, offset, weight : column names
        The labels, and optionally the offsets and the weights.
    offset_is : {"logit", "probability"}, default "logit"
        What ``offset`` holds; probabilities become log-odds in each partition's task (0 and
        1 become ``-inf`` and ``+inf``, which must agree with their labels).
    robust, histogram : bool, default False
        The sketch's optional tables (see :class:`~logitshift.Sketch`).

    Returns
    -------
    Sketch
        The sketch :meth:`Sketch.update` gives on the same rows in memory, to rounding.

    Raises
    ------
    InputError
        A column that is not in the frame, before any job; or any error of
        :func:`logitshift.fit`, with the partition and the column, rows numbered within
        their partition from 0: ``partition 3: column 'margin': offset[17] is nan``.

    Notes
    -----
    One Spark job: each partition is read once, by one task, into a sketch of a few
    kilobytes (16 cells per unit of offset range the partition occupies), which is all that
    reaches the driver.
    """
    check_offset_is(offset_is)
    needs = Needs(robust=as_bool(robust, "robust"), histogram=as_bool(histogram, "histogram"))
    return SparkFrame(frame, {"y": label, "offset": offset, "weight": weight},
                      offset_is=offset_is).summary(needs)


def sketch_groups_frame(frame: Any, label: Any, group: Any, offset: Any = None,
                        weight: Any = None, *, levels: Any = None, offset_is: str = "logit"
                        ) -> GroupSketch:
    """The :class:`~logitshift.GroupSketch` of the named columns of a Spark DataFrame, in
    one pass over its partitions.

    ``group`` names the column of each row's group (integers, strings, floats, bools; with
    ``levels``, integer codes into them); the other arguments, the errors and the cost are
    as for :func:`sketch_frame` (``partition 3: column 'country': group[17] is missing:
    every row needs a group``).
    """
    check_offset_is(offset_is)
    return SparkFrame(frame, group_names(label, group, offset, weight), offset_is=offset_is,
                      levels=levels).summary(Needs(groups=True))
