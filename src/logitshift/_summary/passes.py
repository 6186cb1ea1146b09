"""Rows on their way through the kernels: checked for type and shape, split over the cores,
and, where a kernel has found a bad row, the error phrased in the numpy validators' words.

Every source (in-memory arrays, files, Dask chunks) reaches the kernels through
:class:`Prepared`, and every pass ends in :func:`raise_for_bad_rows`: the kernels only find
the first bad row of their range, in the pass they make anyway; the slow numpy checks run only
then, to say what is wrong with it.
"""

from __future__ import annotations

import math
import operator
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields, replace
from functools import cached_property, partial
from typing import Any

import numba
import numpy as np

from .._core import kernels as _kernels
from .._core.units import LogPart, ldexp, mean_within, weight_exponent
from .._core.validate import InputError, as_labels, as_offset, as_weight, check_infinite_offsets
from .._estimators.solve import CurveTotals, Terms

__all__ = ["Prepared", "ScanTotals", "NO_ROWS", "max_threads", "row_ranges", "in_threads",
           "raise_for_bad_rows", "terms_from_sums", "rescaled_pass", "log_parts_from_states",
           "exact_log_parts"]

#: Fewer rows than this per thread are not worth a thread.
_ROWS_PER_THREAD = 1 << 16

# dtypes the kernels read in place; others are copied to float64. Each is a compiled
# specialisation, so the list is short: the labels people store, float offsets.
_NATIVE_LABELS = {np.dtype(t) for t in (np.uint8, np.int8, np.int32, np.int64, np.float32,
                                        np.float64)}
_NATIVE_OFFSETS = {np.dtype(np.float32), np.dtype(np.float64)}


def _for_kernel(array: np.ndarray | None, native: set[np.dtype]) -> np.ndarray:
    """The array itself where the kernels read its dtype in place, else a float64 copy."""
    if array is None:
        return np.empty(0)
    if array.dtype == np.bool_:
        array = array.view(np.uint8)  # the same bytes, a type the kernels can convert
    if array.dtype in native and array.dtype.isnative:
        return array
    return array.astype(np.float64)


@dataclass(frozen=True)
class Prepared:
    """Labels, offsets and weights checked for type and shape, ready for the kernels."""

    labels: np.ndarray
    offsets: np.ndarray | float
    weights: np.ndarray | None
    first_row: int = 0  # the number of the first row, in error messages

    @classmethod
    def of(cls, y: Any, offset: Any, weight: Any, *, allow_empty: bool = False,
           first_row: int = 0) -> Prepared:
        # The rows' numbers in messages: a non-negative int, so that a message never fails
        # on the arithmetic of a row number.
        if isinstance(first_row, (bool, np.bool_)) or not isinstance(
                first_row, (int, np.integer)) or first_row < 0:
            raise InputError(f"first_row = {first_row!r} must be a non-negative integer",
                             argument="first_row", value=first_row)
        first_row = int(first_row)
        labels = as_labels(y, check_values=False, allow_empty=allow_empty)
        n_rows = labels.shape[0]
        return cls(labels, as_offset(offset, n_rows, check_values=False),
                   as_weight(weight, n_rows, check_values=False), first_row)

    @property
    def n_rows(self) -> int:
        return self.labels.shape[0]

    def raise_for_values(self, row: int) -> None:
        """Raise the error the numpy validators give for these arrays (the slow path, only
        taken once a kernel has found a bad row), its row counted from ``first_row``."""
        try:
            labels = as_labels(self.labels)
            as_offset(self.offsets, labels.shape[0])
            as_weight(self.weights, labels.shape[0])
            check_infinite_offsets(labels, self.offsets, self.weights)
        except InputError as error:
            if not self.first_row or error.index is None:
                raise
            index = error.index + self.first_row
            message = re.sub(rf"\[{error.index}\]", f"[{index}]", str(error))
            raise InputError(message, argument=error.argument, index=index,
                             value=error.value) from None
        raise InputError(f"row {row + self.first_row} is invalid",  # pragma: no cover
                         index=row + self.first_row)

    def in_units(self, exponent: int) -> Prepared:
        """The same rows with every weight divided by ``2**exponent`` (exact, but for weights
        more than 2**1074 below the largest, which underflow). A copy of the weights: only
        for weights at the ends of the double range."""
        if exponent == 0 or self.weights is None:
            return self
        return replace(self, weights=np.ldexp(self.weights.astype(np.float64), -exponent))

    def arguments_in_units(self, exponent: int) -> tuple[tuple, float]:
        """:attr:`kernel_arguments` and the factor ``2**-exponent`` that the kernels multiply
        each weight by to count it in units of ``2**exponent``; where that factor is beyond
        the doubles (weights of 5e-324 need 2**1074), the weights rescaled instead, and 1."""
        scale = ldexp(1.0, -exponent)
        if math.isfinite(scale):
            return self.kernel_arguments, scale
        return self.in_units(exponent).kernel_arguments, 1.0

    def largest_weight(self) -> float:
        return float(np.max(self.weights)) if self.weights is not None else 1.0

    @cached_property
    def kernel_arguments(self) -> tuple:
        """The kernels' leading arguments; made once, since a dtype the kernels do not read
        in place costs a copy."""
        has_offsets = np.ndim(self.offsets) > 0
        return (
            _for_kernel(self.offsets if has_offsets else None, _NATIVE_OFFSETS), has_offsets,
            0.0 if has_offsets else float(self.offsets),
            _for_kernel(self.labels, _NATIVE_LABELS),
            # Weights are rarer and often float64 already; one dtype halves the compiling.
            _for_kernel(self.weights, {np.dtype(np.float64)}), self.weights is not None,
        )


def raise_for_bad_rows(data: Prepared, first_bad: np.ndarray) -> None:
    """Validate, then phrase the error: ``first_bad`` holds each range's first bad row as a
    kernel found it (-1 for none); for the first of them, raise what the numpy validators
    say of these arrays. Every pass over rows ends here."""
    if (first_bad >= 0).any():
        data.raise_for_values(int(first_bad[first_bad >= 0].min()))


@dataclass(frozen=True)
class ScanTotals:
    """The totals a pass over rows gathers, with or without tables."""

    n_rows: int
    weight_sum: float
    positives: float
    active_negatives: float
    active_positives: float
    weighted_offset: float
    offset_min: float
    offset_max: float
    #: The weighted totals are in units of ``2**scale_exponent`` (see `units.weight_exponent`).
    scale_exponent: int = 0

    def curve_totals(self) -> CurveTotals:
        active = self.active_negatives + self.active_positives
        mean = self.weighted_offset / active if active > 0 else math.nan
        return CurveTotals(
            n_rows=self.n_rows, weight_sum=self.weight_sum, positives=self.positives,
            active_positives=self.active_positives, active_negatives=self.active_negatives,
            offset_min=self.offset_min, offset_max=self.offset_max,
            offset_mean=mean_within(mean, self.offset_min, self.offset_max),
            scale_exponent=self.scale_exponent,
        )

    def common_exponent(self, other: ScanTotals) -> int:
        """The units two totals add in: the larger, so that nothing overflows (totals of no
        weight take the other's)."""
        if other.weight_sum == 0:
            return self.scale_exponent
        if self.weight_sum == 0:
            return other.scale_exponent
        return max(self.scale_exponent, other.scale_exponent)

    def in_units(self, exponent: int) -> ScanTotals:
        """The same totals in units of ``2**exponent``."""
        change = self.scale_exponent - exponent
        if change == 0:
            return self
        return replace(self, scale_exponent=exponent, **{
            name: ldexp(getattr(self, name), change) for name in _WEIGHTED})

    def __add__(self, other: ScanTotals) -> ScanTotals:
        exponent = self.common_exponent(other)
        mine, theirs = self.in_units(exponent), other.in_units(exponent)
        combine = {"offset_min": min, "offset_max": max, "scale_exponent": max}
        return ScanTotals(**{
            field.name: combine.get(field.name, operator.add)(getattr(mine, field.name),
                                                              getattr(theirs, field.name))
            for field in fields(ScanTotals)})


_WEIGHTED = ("weight_sum", "positives", "active_negatives", "active_positives",
             "weighted_offset")


def rescaled_pass(data: Prepared, scan: Callable[[Prepared], Any],
                  totals_of: Callable[[Any], ScanTotals]) -> tuple[Any, int]:
    """``scan(data)``, and where the weights' sum is not ordinary (it overflows, or is below
    2**-500, see `units.weight_exponent`), the same pass again over the weights in units
    that make it ordinary: the common case makes one pass and no copy. Returns what the last
    pass returned and the exponent of its units."""
    with np.errstate(over="ignore", invalid="ignore"):  # sums that overflow are redone
        scanned = scan(data)
    totals = totals_of(scanned)
    exponent = weight_exponent(
        totals.weight_sum, (totals.positives, totals.active_positives, totals.active_negatives),
        data.largest_weight)
    if exponent:
        scanned = scan(data.in_units(exponent))
        _check_nothing_vanished(data, totals, totals_of(scanned))
    return scanned, exponent


def _check_nothing_vanished(data: Prepared, before: ScanTotals, after: ScanTotals) -> None:
    """Weights more than 2**1074 apart have no common unit: a label whose every weight is
    that much lighter than the heaviest vanishes, and the shift would come out infinite."""
    for name, label in (("active_positives", "1"), ("active_negatives", "0")):
        if getattr(before, name) > 0 and getattr(after, name) == 0:
            raise InputError(
                f"weight spans more than the range of doubles: every row labelled {label} "
                f"weighs less than 2**-1074 of the heaviest row ({data.largest_weight()!r}), "
                f"so their total vanishes beside it", argument="weight",
                value=data.largest_weight())


NO_ROWS = ScanTotals(0, 0.0, 0.0, 0.0, 0.0, 0.0, math.inf, -math.inf)


def terms_from_sums(sums: np.ndarray) -> Terms:
    """`solve.Terms` from a kernel's compensated sums ``(_kernels.N_TERMS, 2)``."""
    # An infinite sum (the loss at an infinite shift) has a meaningless compensation.
    value = (sums[:, 0] + np.where(np.isfinite(sums[:, 0]), sums[:, 1], 0.0)).tolist()
    return Terms(negative=value[0], positive=value[1], gradient=value[2] + value[3],
                 negative_curvature=value[4], positive_curvature=value[5], loss=value[6])


def log_parts_from_states(states: np.ndarray, exponent: int
                          ) -> tuple[LogPart | None, LogPart | None]:
    """The two parts' logarithms from the log-sum-exp states a log pass wrote, one row per
    range (see `kernels.N_LOG`), their weights in units of ``2**exponent``."""
    parts: list[LogPart | None] = []
    half = _kernels.N_LOG // 2
    for base in (0, half):
        total = None
        for state in np.atleast_2d(states)[:, base:base + half]:
            anchor, residual, value, value_c, slope, slope_c = state.tolist()
            if value == 0.0:
                continue
            value += value_c
            part = LogPart(anchor, residual + math.log(value), (slope + slope_c) / value,
                           exponent)
            total = part if total is None else total + part
        parts.append(total)
    return parts[0], parts[1]


def exact_log_parts(arguments: tuple, ranges: list[tuple[int, int]], shift: float,
                    scale: float, exponent: int) -> tuple[LogPart | None, LogPart | None]:
    """The log pass over rows (`kernels.exact_log_parts`), one range per thread."""
    states = np.zeros((len(ranges), _kernels.N_LOG))
    in_threads([partial(_kernels.exact_log_parts, *arguments, shift, scale, start, stop,
                        states[t]) for t, (start, stop) in enumerate(ranges)])
    return log_parts_from_states(states, exponent)


def max_threads() -> int:
    """Threads to use: numba's setting (``NUMBA_NUM_THREADS``, by default the CPU count),
    read without starting numba's own thread pool, which no kernel here uses."""
    return max(1, int(numba.config.NUMBA_NUM_THREADS))


def row_ranges(n_rows: int, threads: int | None = None) -> list[tuple[int, int]]:
    """One contiguous range of rows per thread (at most ``threads``, by default
    :func:`max_threads`)."""
    limit = max_threads() if threads is None else threads
    n_threads = max(1, min(limit, n_rows // _ROWS_PER_THREAD))
    chunk = -(-n_rows // n_threads)
    return [(t * chunk, min(n_rows, (t + 1) * chunk)) for t in range(n_threads)]


_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    """In a forked child the pool's threads do not exist: start afresh."""
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def in_threads(tasks: list[Callable[[], None]]) -> None:
    """Run the tasks at once: the first in this thread, the others in a pool. The kernels
    release the GIL, so each runs on its own core."""
    global _pool, _pool_size
    futures = []
    if len(tasks) > 1:
        with _pool_lock:
            if _pool_size < len(tasks) - 1:
                # The old pool is not shut down: another caller may be submitting to it. Its
                # threads end once nothing refers to it.
                _pool = ThreadPoolExecutor(len(tasks) - 1, thread_name_prefix="logitshift")
                _pool_size = len(tasks) - 1
            pool = _pool
        futures = [pool.submit(task) for task in tasks[1:]]
    tasks[0]()
    for future in futures:
        future.result()
