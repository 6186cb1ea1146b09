"""The chunk step that every source shares: what an estimator needs of the data, the empty
summary that holds it, and one chunk of rows added to that summary.

A source reads its input in chunks (a file's batches, a Dask chunk, a Spark partition) and
hands each to :func:`fill`; summaries of separate chunks merge with ``+``. So a source
writes only how it reads, and an estimator only what it does with the summary.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._core.validate import (InputError, as_raw_scores, column_roles, naming_columns,
                              prefixing)
from .group_sketch import GroupSketch
from .passes import max_threads
from .sketch import Sketch

__all__ = ["Needs", "empty", "fill", "fill_batches", "read_ahead", "named_columns",
           "require_scores", "refuse_passes", "ROLES"]

#: The columns a chunk may hold, by role, in the order the sources name them.
ROLES = ("y", "offset", "weight", "group")


@dataclass(frozen=True)
class Needs:
    """What an estimator asks of a source, before the source reads anything.

    Attributes
    ----------
    groups : bool
        A :class:`GroupSketch` keyed by the group column, not a :class:`Sketch`.
    robust : bool
        The sketch's w² tables (sandwich standard errors).
    histogram : bool
        The sketch's fine histogram (a c-statistic where the rows are not kept).
    scores : bool
        The offsets must be given and vary: a slope or a report refuses a missing or
        constant offset before any pass.
    passes : bool
        The estimator will make exact passes over the rows (``method="newton"``): a
        source that cannot keep them refuses before reading.
    rows : str
        The option, as its user wrote it, that needs every row in memory at once
        (``"method = 'loess'"``: lowess sorts them), or ``""``: a source that keeps no rows
        refuses it before reading.
    classes : bool
        A multiclass estimator: n × K logits (role ``logits``), labels as classes, soft
        rows or none; the summary is a softmax pass (``ClassRows`` in memory), over which
        the estimator makes several passes.
    normalise : bool
        With ``classes``: the passes read each row's log-softmax of the logits.
    """

    groups: bool = False
    robust: bool = False
    histogram: bool = False
    scores: bool = False
    passes: bool = False
    rows: str = ""
    classes: bool = False
    normalise: bool = False


def named_columns(names: Mapping[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """A named source's roles (``names`` maps roles to column names; ``y`` is required) and
    the distinct columns to read, each name checked (see ``column_roles``)."""
    return column_roles(names["y"], names.get("offset"), names.get("weight"),
                        group=names.get("group"))


def empty(needs: Needs) -> Sketch | GroupSketch:
    """The empty summary that holds what ``needs`` asks for."""
    if needs.groups:
        return GroupSketch()
    return Sketch(robust=needs.robust, histogram=needs.histogram)


def fill(summary: Sketch | GroupSketch, chunk: Mapping[str, Any], *, first_row: int = 0,
         offset_is: str = "logit", levels: Any = None, threads: int | None = None,
         keep_rows: bool = False) -> Sketch | GroupSketch:
    """Add one chunk of rows to ``summary`` and return it.

    ``chunk`` maps roles (:data:`ROLES`; ``offset``, ``weight`` and ``group`` may be absent
    or None) to the chunk's columns, numbered from ``first_row`` in errors. Probabilities
    (``offset_is="probability"``) become log-odds here, a chunk at a time: what the offsets
    mean is the source's to say, and the summary holds raw scores. ``levels`` names a
    group column of integer codes. ``keep_rows``: a group sketch keeps its small groups
    as rows (`GroupSketch.update`), for a summary solved where it is filled.
    """
    offset = as_raw_scores(chunk.get("offset"), offset_is, first_row=first_row)
    if isinstance(summary, GroupSketch):
        return summary.update(chunk["y"], chunk["group"], offset, chunk.get("weight"),
                              levels=levels, first_row=first_row, threads=threads,
                              keep_rows=keep_rows)
    return summary.update(chunk["y"], offset, chunk.get("weight"), first_row=first_row,
                          threads=threads)


def fill_batches(summary: Sketch | GroupSketch, batches: Iterable[tuple[str, Any]],
                 roles: Mapping[str, Any], *, offset_is: str = "logit", levels: Any = None
                 ) -> Sketch | GroupSketch:
    """Add record batches to ``summary``: ``batches`` yields ``(where, batch)``, a place's
    name for errors (a file) and a pyarrow record batch whose columns ``roles`` names; rows
    are numbered from 0 within each place. Returns the summary."""
    read: dict[str, int] = {}  # rows read so far in each place
    # A pipeline, as for files: one thread reads the next batch while the others fill.
    threads = max(1, max_threads() - 1)
    with closing(read_ahead(iter(batches))) as ahead:
        for where, batch in ahead:
            first_row = read.get(where, 0)
            chunk = {role: batch.column(name) for role, name in roles.items()
                     if name is not None}
            with prefixing(where), naming_columns(roles):
                fill(summary, chunk, first_row=first_row, offset_is=offset_is, levels=levels,
                     threads=threads)
            read[where] = first_row + batch.num_rows
    return summary


_END = object()


def read_ahead(items: Iterator[Any]) -> Iterator[Any]:
    """The same items, the next one read in a thread while the caller works on this one."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="logitshift-reader") as reader:
        coming = reader.submit(next, items, _END)
        while (item := coming.result()) is not _END:
            coming = reader.submit(next, items, _END)
            yield item


def require_scores(needs: Needs, offset: Any, *, named: bool) -> None:
    """Refuse, before any pass, a missing offset (or, given as values, a constant one) where
    ``needs.scores`` asks for scores that vary; ``named``: ``offset`` names a column."""
    if not needs.scores:
        return
    if named and offset is None:
        raise InputError("offset must name the column of raw scores: a recalibration slope "
                         "needs them", argument="offset")
    if not named and (offset is None or np.ndim(offset) == 0):
        raise InputError("offset must be an array of raw scores: a recalibration slope needs "
                         "them to vary", argument="offset", value=offset)


def refuse_passes(needs: Needs, what: str) -> None:
    """Refuse exact passes (``method="newton"``), and an option that needs the rows in
    memory, by name, before reading: a source of ``what`` keeps no rows, so it would read
    its input once per iteration, or not hold it at all."""
    if needs.rows:
        name, _, value = needs.rows.partition(" = ")
        raise InputError(f"{needs.rows} needs the rows in memory, and {what} is read in one "
                         "pass that keeps none: read the rows into arrays or a table in "
                         "memory first", argument=name, value=value.strip("'"))
    if needs.passes:
        raise InputError(
            f"method = 'newton' makes a pass over the data per iteration; on {what} use "
            "'sketch' (or 'auto'), which gives the same shift in one pass",
            argument="method", value="newton")
