"""The mergeable one-pass sketch: the summary every source fills and every estimator reads.

Offsets go on a grid of width ``δ`` (a power of two): row ``i`` falls in cell
``b = floor(f_i / δ)`` with remainder ``d_i = f_i - (b + 1/2) δ``, ``|d_i| <= δ/2``. Two tables,
one per label part, hold the moments ``M[b, j] = Σ_{i in b} w_i d_i^j`` (``j < order``) with
weights ``w(1 - y)`` and ``w y``. Every sum the solver needs is then a Taylor series around
the cell centres, evaluated from the tables alone; σ is analytic in the strip ``|Im z| < π``,
so the remainder falls like ``(δ / 2π)^order``. Tables add, so sketches of parts of the data
merge into the sketch of the whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable
import math
import struct
import zlib
from dataclasses import MISSING, asdict, dataclass, fields, replace
from functools import partial
from typing import Any

import numpy as np

from .._core import kernels as _kernels
from .._core.kernels import (N_STATS, S_ANCHOR, S_FIRST_BAD, S_HIGH, S_LOW, S_OFFSET_MAX,
                             S_OFFSET_MIN, S_OVERFLOW, S_POSITIVES, S_WEIGHT)
from .._core.losses import spline_cell_polynomials
from .._core.units import LogPart, ldexp
from .._core.validate import InputError, as_bool, as_positive_int, as_shift, check_se_type
from .._estimators.decision import LabelTotals, TreatedWeights
from .._estimators.report import CalibrationReport, build_report, c_statistic_of_cells
from .._estimators.result import ShiftFit
from .._estimators.shift import fit_curve
from .._estimators.slope import SlopeFit, SlopeTerms, fit_slope_curve, scaled_totals, warn_about
from .._estimators.solve import CurveTotals, Terms, with_log_parts
from .passes import (NO_ROWS, Prepared, ScanTotals, in_threads, log_parts_from_states,
                     raise_for_bad_rows, rescaled_pass, row_ranges, terms_from_sums)

__all__ = ["Sketch", "SketchSpline", "CellRates", "CellBudgetExceeded", "scan_arrays", "fill_reference",
           "DEFAULT_WIDTH", "DEFAULT_ORDER", "DEFAULT_MAX_CELLS", "FORMAT_VERSION"]

#: Grid width and Taylor order: the remainder is below 1e-16 of the Hessian (see
#: docs/benchmarks.md for the measurement behind these defaults).
DEFAULT_WIDTH = 2.0 ** -4
DEFAULT_ORDER = 8
MAX_ORDER = 16

#: The most cells a sketch holds by default: every cell of offsets spanning ±2048 logits,
#: about 9 MB at the default order (``8 + 16 * order`` bytes a cell). Raw scores fill a few
#: hundred to a few thousand cells (σ is 0 or 1 to double precision beyond ±37 logits, so
#: real log-odds rarely leave ±40: 1,280 cells); offsets spread far wider, each row in a cell
#: of its own, would make the sketch larger than the data.
DEFAULT_MAX_CELLS = 1 << 16

#: Cells each side of a thread's first cell that its dense table covers: ±1024 logits at the
#: default width. Rows beyond go through the sparse path.
_HALF_WINDOW = 1 << 14
_FACTORIALS = np.array([math.factorial(j) for j in range(MAX_ORDER + 1)], dtype=np.float64)
_COEFFICIENTS = _kernels.derivative_coefficients(MAX_ORDER + 2)
_NO_CELLS = np.empty((0, 2))  # sketch_terms: no per-cell parts wanted

def _cell_lookup(centres: np.ndarray, width: float) -> tuple[np.ndarray, float]:
    """The position in ``centres`` of each grid cell from the first to the last (dense:
    ``-1`` for the cells between that no row occupies), and the first cell's index; empty
    where the cells spread wider than a few times their number (then `fill_extras`
    searches)."""
    on_grid = centres[np.abs(centres) < 2.0 ** 52 * width]
    if on_grid.size == 0:
        return np.empty(0, dtype=np.int64), 0.0
    index = np.floor(on_grid / width)
    first, span = index[0], index[-1] - index[0] + 1
    if span > 4 * centres.size + 4096:
        return np.empty(0, dtype=np.int64), 0.0
    lookup = np.full(int(span), -1, dtype=np.int64)
    lookup[(index - first).astype(np.int64)] = np.searchsorted(centres, on_grid)
    return lookup, float(first)


def _suffix_sums(values: np.ndarray) -> np.ndarray:
    """``out[i] = Σ values[i:]`` for ``i`` in ``0..len(values)`` (so ``out[-1] = 0``),
    accumulated in ``np.longdouble``."""
    out = np.zeros(values.size + 1, dtype=np.longdouble)
    out[:-1] = np.cumsum(values[::-1].astype(np.longdouble))[::-1]
    return out.astype(np.float64)


def _histogram_bins(width: float) -> int:
    """Sub-bins of width ``HISTOGRAM_WIDTH`` per cell: at least 1, at most 4096 (cells
    wider than 1/4 logit get coarser sub-bins)."""
    return min(4096, max(1, int(width / HISTOGRAM_WIDTH)))


# The sandwich's polynomials in σ(z): (1 - y)² σ², y² (1 - σ)², and the cross term
# -2 y (1 - y) σ (1 - σ), with the derivatives `sketch_polynomials` reads.
_SIGMA_SQUARED = _kernels.polynomial_derivatives(np.array([0.0, 0.0, 1.0]), MAX_ORDER)
_TAIL_SQUARED = _kernels.polynomial_derivatives(np.array([1.0, -2.0, 1.0]), MAX_ORDER)
_CROSS = _kernels.polynomial_derivatives(np.array([0.0, -2.0, 2.0]), MAX_ORDER)
_NONE = _kernels.polynomial_derivatives(np.array([0.0, 0.0, 0.0]), MAX_ORDER)

#: The resolution of the optional histogram of offsets (``Sketch(histogram=True)``): each
#: cell is cut into ``width / HISTOGRAM_WIDTH`` sub-bins (256 at the default width, 4 KB a
#: cell), which bounds the c-statistic of a stream to about 1e-5 (see ``validate``).
HISTOGRAM_WIDTH = 2.0 ** -12


class CellBudgetExceeded(InputError):
    """The offsets occupy more grid cells than the sketch's ``max_cells``: a sketch of them
    would be larger than the data. ``cells`` counts them (at least), ``offset_min`` and
    ``offset_max`` are their range."""

    def __init__(self, cells: int, max_cells: int, offset_min: float, offset_max: float,
                 width: float, order: int) -> None:
        span = (f"±{max(abs(offset_min), abs(offset_max)):.3g}" if offset_min < 0 < offset_max
                else f"[{offset_min:.6g}, {offset_max:.6g}]")
        super().__init__(
            f"offset spans {span} logits, {cells:,} cells of width {width:g}: more than the "
            f"sketch's budget of max_cells = {max_cells:,}. Is it really a raw score "
            f"(log-odds)? Real raw scores rarely leave ±40 logits. To sketch it anyway, pass "
            f"a larger budget, Sketch(max_cells=...) ({8 + 16 * order} bytes a cell); in "
            f"memory, fit(..., method='newton') needs no sketch", argument="offset",
            value=(offset_min, offset_max))
        self.cells, self.max_cells = cells, max_cells
        self.offset_min, self.offset_max = offset_min, offset_max


def scan_arrays(data: Prepared, width: float, order: int, threads: int | None = None,
                max_cells: int | None = None) -> tuple[ScanTotals, np.ndarray, np.ndarray]:
    """One pass: validate, total and fill the tables, on at most ``threads`` threads.

    Returns the totals, the centres of the occupied cells (sorted) and their tables
    ``(cells, 2, order)``. Raises :class:`CellBudgetExceeded` where the rows occupy more
    than ``max_cells`` cells, before the rows outside the dense windows take any memory.
    """
    arguments = data.kernel_arguments
    n_rows = data.labels.shape[0]
    ranges = row_ranges(n_rows, threads)
    stats = np.zeros((len(ranges), N_STATS))
    # np.zeros maps zero pages lazily: only the cells the data touch become resident.
    tables = np.zeros((len(ranges), 2 * _HALF_WINDOW * 2 * order))
    kernel, leading = _fill_kernel(arguments)
    tasks = [partial(kernel, *leading, start, stop, 1.0 / width, width, order, tables[t],
                     stats[t]) for t, (start, stop) in enumerate(ranges)]
    _kernels.compile_vectorized(kernel, tasks[0].args)
    in_threads(tasks)
    raise_for_bad_rows(data, stats[:, S_FIRST_BAD])
    tables = tables.reshape(len(ranges), 2 * _HALF_WINDOW, 2, order)
    cells, parts = [], []
    for t in range(len(ranges)):
        low, high = int(stats[t, S_LOW]), int(stats[t, S_HIGH])
        if high < low:
            continue
        rows = tables[t, low:high + 1]
        used = (rows[:, 0, 0] != 0) | (rows[:, 1, 0] != 0)
        index = stats[t, S_ANCHOR] - _HALF_WINDOW + np.arange(low, high + 1)[used]
        cells.append((index + 0.5) * width)
        parts.append(rows[used])
    offset_min = float(stats[:, S_OFFSET_MIN].min())
    offset_max = float(stats[:, S_OFFSET_MAX].max())
    if max_cells is not None:
        _check_cell_budget(data, stats, ranges, width, order, max_cells, cells, offset_min,
                           offset_max)
    if stats[:, S_OVERFLOW].sum() > 0:
        wide_cells, wide_tables, wide_min, wide_max = _fill_outside_windows(
            data, stats, ranges, width, order)
        cells.append(wide_cells)
        parts.append(wide_tables)
        offset_min, offset_max = min(offset_min, wide_min), max(offset_max, wide_max)
    centres, tables = _combine(np.concatenate(cells) if cells else np.empty(0),
                               np.concatenate(parts) if parts else np.empty((0, 2, order)),
                               width)
    # The label parts of rows in the table are summed there; the kernel summed the rest.
    negatives, positives = tables[:, 0, 0], tables[:, 1, 0]
    totals = ScanTotals(
        n_rows=n_rows,
        weight_sum=float(np.sum(stats[:, S_WEIGHT])),
        positives=float(np.sum(positives) + np.sum(stats[:, S_POSITIVES])),
        active_negatives=float(np.sum(negatives)),
        active_positives=float(np.sum(positives)),
        weighted_offset=_weighted_offset(centres, tables),
        offset_min=offset_min,
        offset_max=offset_max,
    )
    return totals, centres, tables


def _fill_kernel(arguments: tuple) -> tuple[Callable[..., None], tuple]:
    """The fill kernel for these arrays and its leading arguments: `kernels.fill_unweighted`
    for integer labels (bool included), an offset array and no weights, the common case and
    twice as fast; `kernels.fill` for everything else."""
    offsets, has_offsets, _, labels, _, has_weights = arguments
    if has_offsets and not has_weights and labels.dtype.kind in "iu":
        return _kernels.fill_unweighted, (offsets, labels)
    return _kernels.fill, arguments


def scan_in_units(data: Prepared, width: float, order: int, threads: int | None = None,
                  max_cells: int | None = None) -> tuple[ScanTotals, np.ndarray, np.ndarray]:
    """`scan_arrays`, and where the weights' sum is not ordinary, again in units that make it
    so (`passes.rescaled_pass`); the totals say which."""
    (scanned, centres, tables), exponent = rescaled_pass(
        data, partial(scan_arrays, width=width, order=order, threads=threads,
                      max_cells=max_cells),
        lambda result: result[0])
    if exponent:
        scanned = replace(scanned, scale_exponent=exponent)
    return scanned, centres, tables


def _weighted_offset(centres: np.ndarray, tables: np.ndarray) -> float:
    """``Σ w f`` from the tables (nan where offsets of ±1e306 overflow it: `mean_within`
    copes)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.sum(centres * (tables[:, 0, 0] + tables[:, 1, 0]))
                     + np.sum(tables[:, :, 1]))


def _outside_window(data: Prepared, offsets: np.ndarray, stats: np.ndarray, t: int,
                    rows: slice, width: float) -> np.ndarray:
    """Which rows of thread ``t``'s range, of finite offset and positive weight, its dense
    window missed."""
    with np.errstate(over="ignore", invalid="ignore"):  # |f| > 1e307: outside anyway
        # The kernel's own expression, operation for operation, so that every row is
        # either in its window or here, never both or neither.
        position = np.floor(offsets[rows] * (1.0 / width)) - (stats[t, S_ANCHOR]
                                                              - _HALF_WINDOW)
    outside = ~((position >= 0) & (position < 2 * _HALF_WINDOW)) & np.isfinite(offsets[rows])
    if data.weights is not None:
        outside[outside] = data.weights[rows][outside] > 0
    return outside


def _check_cell_budget(data: Prepared, stats: np.ndarray, ranges: list[tuple[int, int]],
                       width: float, order: int, max_cells: int,
                       window_centres: list[np.ndarray], offset_min: float,
                       offset_max: float) -> None:
    """Raise :class:`CellBudgetExceeded` where the rows fill more than ``max_cells`` cells.

    Counted before the rows outside the windows are filled: their tables (``16 * order``
    bytes a row) are what grows with the data, where this count needs 8 bytes a row for
    their distinct cells. The windows' cells are few (``2**15`` a thread at most) but may
    coincide between threads, so they are counted once each.
    """
    outside_rows = int(stats[:, S_OVERFLOW].sum())
    if sum(centres.size for centres in window_centres) + outside_rows <= max_cells:
        return
    n_rows = data.labels.shape[0]
    offsets = np.broadcast_to(np.asarray(data.offsets, dtype=np.float64), (n_rows,))
    outside_cells = []
    for t, (start, stop) in enumerate(ranges):
        rows = slice(start, stop)
        chosen = offsets[rows][_outside_window(data, offsets, stats, t, rows, width)]
        if chosen.size:
            offset_min = min(offset_min, float(chosen.min()))
            offset_max = max(offset_max, float(chosen.max()))
            with np.errstate(over="ignore", invalid="ignore"):  # in place: 8 bytes a row
                np.multiply(chosen, 1.0 / width, out=chosen)
                np.floor(chosen, out=chosen)
                np.add(chosen, 0.5, out=chosen)
                np.multiply(chosen, width, out=chosen)
            outside_cells.append(chosen)
    # A cell may be in one thread's window and outside another's: count the union. Rows
    # beyond 1e307 have no cell index (inf, or nan) but a cell each.
    centres = np.concatenate(window_centres + outside_cells)
    del outside_cells
    centres.sort()  # -inf first; inf, then nan, last
    low = int(np.searchsorted(centres, -np.inf, side="right"))
    high = int(np.searchsorted(centres, np.inf))
    cells = (low + int(high > low) + centres.size - high
             + int(np.count_nonzero(centres[low + 1:high] != centres[low:high - 1])))
    if cells > max_cells:
        raise CellBudgetExceeded(cells, max_cells, offset_min, offset_max, width, order)


def _fill_outside_windows(data: Prepared, stats: np.ndarray, ranges: list[tuple[int, int]],
                          width: float, order: int
                          ) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The rows of finite offset each thread's window missed (offsets spread over more than
    ±1024 logits), through the numpy fill: slower, but only for such data. Returns their
    cells, tables and offset range."""
    n_rows = data.labels.shape[0]
    offsets = np.broadcast_to(np.asarray(data.offsets, dtype=np.float64), (n_rows,))
    cells, parts, low, high = [], [], math.inf, -math.inf
    for t, (start, stop) in enumerate(ranges):
        rows = slice(start, stop)
        outside = _outside_window(data, offsets, stats, t, rows, width)
        weights = None if data.weights is None else data.weights[rows][outside]
        c, p = fill_reference(data.labels[rows][outside], offsets[rows][outside], weights,
                              width, order)
        cells.append(c)
        parts.append(p)
        if outside.any():
            low = min(low, float(offsets[rows][outside].min()))
            high = max(high, float(offsets[rows][outside].max()))
    return np.concatenate(cells), np.concatenate(parts), low, high


def fill_reference(labels: np.ndarray, offsets: np.ndarray, weights: np.ndarray | None,
                   width: float, order: int) -> tuple[np.ndarray, np.ndarray]:
    """The numpy reference of the table fill: sorted cell centres and ``(cells, 2, order)``
    tables. Beyond ``|f| ~ 1e307`` the cell index overflows; such a row is its own centre."""
    y = np.asarray(labels, dtype=np.float64)
    f = np.asarray(offsets, dtype=np.float64)
    w = np.ones_like(y) if weights is None else np.asarray(weights, dtype=np.float64)
    keep = (w > 0) & np.isfinite(f)
    y, f, w = y[keep], f[keep], w[keep]
    with np.errstate(over="ignore", invalid="ignore"):
        centres = (np.floor(f / width) + 0.5) * width
    centres = np.where(np.isfinite(centres), centres, f)
    powers = (f - centres)[:, None] ** np.arange(order)
    rows = np.stack([(w * (1.0 - y))[:, None] * powers, (w * y)[:, None] * powers], axis=1)
    return _combine(centres, rows)


def _in_units(tables: np.ndarray, exponent: int, target: int) -> np.ndarray:
    """Tables in units of ``2**exponent`` expressed in units of ``2**target`` (exact, but for
    what falls below the smallest double)."""
    if exponent == target:
        return tables
    with np.errstate(over="ignore", under="ignore"):
        return np.ldexp(tables, exponent - target)


def _combine(cells: np.ndarray, tables: np.ndarray, width: float | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct cells (by centre), with the tables of equal cells added. Given the
    grid's ``width``, cells on a grid no wider than their count combine in one pass."""
    if np.all(cells[1:] > cells[:-1]):
        return cells, tables
    if width is not None:
        index = np.floor(cells * (1.0 / width))  # (two cells at least: sorted otherwise)
        low, high = index.min(), index.max()
        if (math.isfinite(low) and math.isfinite(high) and high - low < cells.size + 4096
                and np.array_equal((index + 0.5) * width, cells)):
            flat = np.ascontiguousarray(tables.reshape(cells.size, -1))
            span = int(high - low) + 1
            out = np.zeros((span, flat.shape[1]))
            counts = np.zeros(span, dtype=np.int64)
            _kernels.pool_cells((index - low).astype(np.int64), flat, out, counts)
            used = np.flatnonzero(counts)
            return ((used + low + 0.5) * width,
                    out[used].reshape((used.size,) + tables.shape[1:]))
    # Equal cells summed in the order they come (as adding them one by one would).
    order = np.argsort(cells, kind="stable")
    cells = cells[order]
    starts = np.flatnonzero(np.concatenate([[True], cells[1:] != cells[:-1]]))
    return cells[starts], np.add.reduceat(tables[order], starts, axis=0)


class _Sloped:
    """A sketch seen through offsets multiplied by ``slope``: the same tables, with centres
    ``slope · c``, moments ``slope^j · M_j`` and width ``|slope| · width``."""

    def __init__(self, sketch: Sketch, slope: float) -> None:
        self._centres = slope * sketch._centres
        self._tables = sketch._tables * slope ** np.arange(sketch.order)
        self._width = abs(slope) * sketch.width
        self.totals = scaled_totals(sketch.totals, slope)
        self.passes = 1

    def evaluate(self, shift: float) -> Terms:
        return terms_from_sums(_kernels.sketch_terms(
            self._centres, self._tables, self._width, float(shift), _COEFFICIENTS, _FACTORIALS,
            _NO_CELLS))


class SketchSpline:
    """A sketch's sums for the restricted-cubic-spline curve: its loss, gradient and Hessian
    from the Taylor tables (`kernels.spline_terms`, every knot on a cell edge), its cells,
    and its histogram's sub-bins (or, without one, its cells) as the scores' distribution.

    Rows of infinite offset lie in no cell: a spline of the log-odds has no value there, so
    they are refused by name rather than left out."""

    def __init__(self, sketch: Sketch) -> None:
        if sketch.n_rows == 0:
            raise InputError("y is empty: the sketch has no rows yet", argument="y")
        totals = sketch._scanned
        active = totals.active_negatives + totals.active_positives
        outside = totals.weight_sum - active
        if outside > 1e-12 * totals.weight_sum:
            raise InputError(
                f"offset: rows of weight {ldexp(outside, totals.scale_exponent):.6g} have an "
                "infinite score (a probability of 0 or 1): a spline of the log-odds has no "
                "value there; leave them out or clip them", argument="offset")
        if not totals.weight_sum > 0:
            raise InputError("weight is zero on every row: a calibration curve needs rows "
                             "of positive weight", argument="weight")
        for label, weight in ((0, totals.weight_sum - totals.positives),
                              (1, totals.positives)):
            if not weight > 0:
                raise InputError(f"y: no row has label {label} (weight {weight:g}): a "
                                 "calibration curve needs both labels", argument="y")
        self._sketch = sketch
        self.n_rows = sketch.n_rows
        self.scale_exponent = totals.scale_exponent
        self.weight_sum = ldexp(totals.weight_sum, totals.scale_exponent)
        self.order = sketch.order

    def spline_terms(self, knots: np.ndarray, coefficients: np.ndarray
                     ) -> tuple[float, np.ndarray, np.ndarray]:
        sketch = self._sketch
        basis = spline_cell_polynomials(sketch._centres, knots)
        sums = _kernels.spline_terms(sketch._centres, sketch._tables, basis,
                                     np.asarray(coefficients, dtype=np.float64), _COEFFICIENTS,
                                     _FACTORIALS)
        k = knots.size
        return float(sums[0]), sums[1:1 + k], sums[1 + k:].reshape(k, k)

    def score_cells(self) -> tuple[np.ndarray, np.ndarray, float]:
        sketch = self._sketch
        return sketch._centres, sketch._tables[:, :, 0].sum(axis=1), sketch.width

    def score_points(self) -> tuple[np.ndarray, np.ndarray, float]:
        sketch = self._sketch
        if sketch._histogram is None:
            points, weights = self.score_cells()[:2]
            half_width = 0.5 * sketch.width
        else:
            bins = sketch.histogram_bins
            step = sketch.width / bins
            points = (sketch._centres[:, None] - 0.5 * sketch.width
                      + (np.arange(bins) + 0.5) * step).ravel()
            weights = sketch._histogram.sum(axis=2).ravel()
            half_width = 0.5 * step
        kept = weights > 0
        return points[kept], ldexp(1.0, self.scale_exponent) * weights[kept], half_width

    def pooled_points(self) -> tuple[np.ndarray, np.ndarray]:
        """Two points a cell, ``c + m ± s`` with half the cell's weight each, where ``m`` and
        ``s²`` are the mean and variance of the remainders (from the moments ``M_1 / M_0``
        and ``M_2 / M_0``): the cell's weight, mean and variance, in O(cells)."""
        sketch = self._sketch
        moments = sketch._tables[:, 0, :3] + sketch._tables[:, 1, :3]
        weight = moments[:, 0]
        mean = moments[:, 1] / weight
        spread = np.sqrt(np.maximum(moments[:, 2] / weight - mean * mean, 0.0))
        centre = sketch._centres + mean
        half = 0.5 * ldexp(1.0, self.scale_exponent) * weight
        return np.concatenate([centre - spread, centre + spread]), np.concatenate([half, half])


@dataclass(frozen=True)
class CellRates:
    """Per occupied sketch cell, in increasing offset: the cell's centre, its weight, its
    weighted positives ``Σ w y`` and its expected positives ``Σ w σ(offset + shift)``."""

    centre: np.ndarray
    weight: np.ndarray
    observed: np.ndarray
    expected: np.ndarray


class Sketch:
    """A mergeable one-pass summary of ``(y, offset, weight)`` from which the shift, the
    loss curve and every statistic follow exactly.

    Parameters
    ----------
    width : float, default 2**-4
        Grid width of the offsets, a power of two (so cell centres and remainders are exact).
    order : int, default 8
        Taylor terms per cell. The relative error of every sum is about
        ``(width / (2π))**order``: below 1e-16 with the defaults.
    max_cells : int, default 65536 (``DEFAULT_MAX_CELLS``)
        The most occupied cells the sketch may hold, ``8 + 16 * order`` bytes each (9 MB at
        the default). Raw scores fill a few thousand at most; offsets spread over ±1e5
        logits or more, a cell per row, would make the sketch larger than the data, and
        ``update`` (or ``+``) raises an :class:`InputError` that says so instead.
    robust : bool, default False
        Also keep, per cell, the moments weighted by ``w²`` (three tables: ``w²(1 - y)²``,
        ``w² y (1 - y)``, ``w² y²``, ``24 * order`` bytes a cell): what the robust (sandwich,
        HC0) standard errors of ``solve(se_type="robust")`` and
        ``solve_slope(se_type="robust")`` need. Filling them costs a second loop over each
        chunk, in cache.
    histogram : bool, default False
        Also keep, per cell, the weights of each label in sub-bins of width
        ``HISTOGRAM_WIDTH`` (2**-12): the c-statistic of :meth:`validate` then has an error
        bound of the pairs that share a sub-bin (about 1e-5) instead of a cell (about 3e-3).
        4 KB a cell at the default width.

    Notes
    -----
    ``update`` reads each chunk once (numba, a thread per core) and keeps two small tables,
    one row per occupied cell (``1 / width`` cells per unit of offset range, sparse when the
    range is wide). Sketches of parts of the data merge (``a.merge(b)``, ``a + b`` or
    ``sum(sketches)``) into the sketch of the whole, so the same code serves arrays, files
    read in batches, streams and partitions of a cluster; ``to_bytes`` / ``from_bytes`` move
    one between processes, in a format with a version and a CRC-32 checksum.

    Examples
    --------
    >>> import numpy as np, logitshift
    >>> sketch = logitshift.Sketch()
    >>> for labels, offsets in [(np.array([0, 1, 0]), np.array([0.2, 1.5, -0.3])),
    ...                         (np.array([1, 0]), np.array([0.1, -2.0]))]:
    ...     _ = sketch.update(labels, offsets)
    >>> result = sketch.solve()
    >>> abs(sketch.gradient(result.shift)) < 1e-12
    True
    """

    def __init__(self, width: float = DEFAULT_WIDTH, order: int = DEFAULT_ORDER, *,
                 max_cells: int = DEFAULT_MAX_CELLS, robust: bool = False,
                 histogram: bool = False) -> None:
        width_ok = (isinstance(width, (int, float)) and not isinstance(width, bool)
                    and 0 < width < math.inf)
        if not (width_ok and math.frexp(width)[0] == 0.5):
            raise InputError(f"width = {width!r} must be a positive power of two",
                             argument="width", value=width)
        order = as_positive_int(order, "order")
        if not 2 <= order <= MAX_ORDER:
            raise InputError(f"order = {order} must be between 2 and {MAX_ORDER}",
                             argument="order", value=order)
        self.width = float(width)
        self.order = order
        self.max_cells = as_positive_int(max_cells, "max_cells")
        self.robust = as_bool(robust, "robust")
        self.histogram = as_bool(histogram, "histogram")
        self._scanned = NO_ROWS
        self._centres = np.empty(0)
        self._tables = np.empty((0, 2, order))
        # The optional per-cell tables, aligned with `_centres` (None where not kept): w²
        # moments in units of 2**(2 * scale_exponent), the histogram in those of the tables.
        self._squared = np.empty((0, 3, order)) if self.robust else None
        self._histogram = (np.empty((0, self.histogram_bins, 2)) if self.histogram else None)

    @property
    def histogram_bins(self) -> int:
        """Sub-bins per cell of the optional histogram."""
        return _histogram_bins(self.width)

    def _like(self, max_cells: int | None = None) -> Sketch:
        """An empty sketch of the same grid and options."""
        return Sketch(self.width, self.order, max_cells=max_cells or self.max_cells,
                      robust=self.robust, histogram=self.histogram)

    # -- building ----------------------------------------------------------------------------

    def update(self, y: Any, offset: Any = None, weight: Any = None, *,
               first_row: int = 0, threads: int | None = None) -> Sketch:
        """Add rows: labels ``y``, offsets (array, scalar or None) and optional weights.

        Checks the rows as :func:`logitshift.fit` does, numbering them from ``first_row``
        in its messages (the chunk's place in a stream), and returns the sketch itself. A
        chunk may be empty, or weigh nothing: a stream's pieces need not each be fittable,
        only their sum. ``threads`` caps the threads that fill it (by default numba's
        ``NUMBA_NUM_THREADS``, the CPU count), e.g. to leave a core to a reader.

        Raises :class:`InputError` (``argument="offset"``, naming the offsets' range) once
        the rows so far occupy more than ``max_cells`` cells; the sketch is then unchanged.
        """
        data = Prepared.of(y, offset, weight, allow_empty=True, first_row=first_row)
        if threads is not None:
            threads = as_positive_int(threads, "threads")
        if data.labels.shape[0] == 0:
            return self
        self._fill(data, threads)
        return self

    @classmethod
    def _from_prepared(cls, data: Prepared, *, robust: bool = False,
                       histogram: bool = False) -> Sketch:
        """The sketch (default grid) of arrays already checked for type and shape; raises
        :class:`CellBudgetExceeded` past the default budget."""
        sketch = cls(robust=robust, histogram=histogram)
        sketch._fill(data, None)
        return sketch

    @classmethod
    def _from_cells(cls, centres: np.ndarray, tables: np.ndarray, *, n_rows: int,
                    weight_sum: float, positives: float, offset_min: float,
                    offset_max: float, scale_exponent: int = 0,
                    squared: np.ndarray | None = None, histogram: np.ndarray | None = None,
                    width: float = DEFAULT_WIDTH, order: int = DEFAULT_ORDER,
                    max_cells: int = DEFAULT_MAX_CELLS, argument: str = "rows") -> Sketch:
        """The sketch of per-cell tables summed elsewhere (an SQL engine's ``GROUP BY``):
        the occupied cells' centres (sorted) and tables ``(cells, 2, order)``, the totals
        over every row (``n_rows``, ``Σ w``, ``Σ w y``, the least and greatest finite
        offset of positive weight), the units of the weights, and the optional tables where
        given. The label parts' totals and ``Σ w f`` come from the tables, as a fill takes
        them. Checked field by field as :meth:`from_bytes` checks a blob, so that a wrong
        result is refused as a corrupted blob is (``argument`` names its origin)."""
        centres = np.asarray(centres, dtype=np.float64)
        tables = np.asarray(tables, dtype=np.float64).reshape(centres.size, 2, order)
        extras = {name: np.asarray(table, dtype=np.float64)
                  for name, table in (("squared", squared), ("histogram", histogram))
                  if table is not None}
        totals = ScanTotals(
            n_rows=int(n_rows), weight_sum=float(weight_sum), positives=float(positives),
            active_negatives=float(np.sum(tables[:, 0, 0])),
            active_positives=float(np.sum(tables[:, 1, 0])),
            weighted_offset=_weighted_offset(centres, tables), offset_min=float(offset_min),
            offset_max=float(offset_max), scale_exponent=int(scale_exponent))
        header = {"width": float(width), "order": int(order), "max_cells": int(max_cells),
                  **{name: 1 for name in extras}, "n_cells": centres.size, **asdict(totals)}
        return _checked_sketch(header, centres, tables, FORMAT_VERSION, argument, extras)

    def _fill(self, data: Prepared, threads: int | None) -> None:
        """Add the rows: the tables in the pass that validates them, then the optional
        tables over the same rows, now valid, into the cells that pass found."""
        scanned, centres, tables = scan_in_units(data, self.width, self.order, threads,
                                                 self.max_cells)
        extras = {}
        if self.robust or self.histogram:
            squared = np.zeros((centres.size, 3, self.order) if self.robust else (0, 3, 1))
            histogram = np.zeros((centres.size, self.histogram_bins, 2) if self.histogram
                                 else (0, 1, 2))
            ranges = row_ranges(data.n_rows, threads)
            parts = [(np.zeros_like(squared), np.zeros_like(histogram)) for _ in ranges]
            arguments, scale = data.arguments_in_units(scanned.scale_exponent)
            lookup, first_cell = _cell_lookup(centres, self.width)
            in_threads([partial(_kernels.fill_extras, *arguments, scale, start, stop, centres,
                                lookup, first_cell, 1.0 / self.width, self.width, *part)
                        for part, (start, stop) in zip(parts, ranges)])
            if self.robust:
                extras["squared"] = sum(part[0] for part in parts)
            if self.histogram:
                extras["histogram"] = sum(part[1] for part in parts)
        self._absorb(scanned, centres, tables, extras)

    def _extras(self) -> dict[str, np.ndarray]:
        """The optional tables this sketch keeps, by name."""
        return {name: table for name, table in (("squared", self._squared),
                                                 ("histogram", self._histogram))
                if table is not None}

    def _absorb(self, scanned: ScanTotals, centres: np.ndarray, tables: np.ndarray,
                extras: dict[str, np.ndarray]) -> None:
        # Tables in different units add in the larger (a power of two apart: exact); the w²
        # tables are in the square of those units.
        exponent = self._scanned.common_exponent(scanned)
        mine = [_in_units(self._tables, self._scanned.scale_exponent, exponent)]
        theirs = [_in_units(tables, scanned.scale_exponent, exponent)]
        for name, table in self._extras().items():
            power = 2 if name == "squared" else 1
            mine.append(_in_units(table, power * self._scanned.scale_exponent,
                                  power * exponent))
            theirs.append(_in_units(extras[name], power * scanned.scale_exponent,
                                    power * exponent))
        total = self._scanned + scanned
        shapes = [part.shape[1:] for part in mine]
        flat = [np.concatenate([a.reshape(a.shape[0], math.prod(shape)),
                                b.reshape(b.shape[0], math.prod(shape))])
                for a, b, shape in zip(mine, theirs, shapes)]
        centres, combined = _combine(np.concatenate([self._centres, centres]),
                                     np.concatenate(flat, axis=1), self.width)
        if centres.size > self.max_cells:
            raise CellBudgetExceeded(centres.size, self.max_cells, total.offset_min,
                                     total.offset_max, self.width, self.order)
        splits = np.cumsum([math.prod(shape) for shape in shapes])[:-1]
        parts = [part.reshape((centres.size,) + shape)
                 for part, shape in zip(np.split(combined, splits, axis=1), shapes)]
        self._scanned, self._centres, self._tables = total, centres, parts[0]
        for name, part in zip(self._extras(), parts[1:]):
            setattr(self, f"_{name}", part)

    def merge(self, other: Sketch) -> Sketch:
        """A new sketch of both sketches' rows, with the larger of their budgets."""
        if not isinstance(other, Sketch):
            return NotImplemented
        if (other.width, other.order) != (self.width, self.order):
            raise InputError(
                f"cannot merge a sketch of width {other.width} and order {other.order} into "
                f"one of width {self.width} and order {self.order}", argument="other")
        for option in ("robust", "histogram"):
            if getattr(other, option) != getattr(self, option):
                raise InputError(
                    f"cannot merge a sketch of {option}={getattr(other, option)} into one of "
                    f"{option}={getattr(self, option)}: fill both with the same options",
                    argument="other")
        merged = self._like(max(self.max_cells, other.max_cells))
        merged._scanned = self._scanned
        merged._centres, merged._tables = self._centres, self._tables
        merged._squared, merged._histogram = self._squared, self._histogram
        merged._absorb(other._scanned, other._centres, other._tables, other._extras())
        return merged

    __add__ = merge

    def __radd__(self, other: Any) -> Sketch:
        """``0 + sketch``: a copy, so that ``sum(sketches)`` merges them."""
        if isinstance(other, int) and not isinstance(other, bool) and other == 0:
            return self.merge(self._like())
        return NotImplemented

    # -- the curve ---------------------------------------------------------------------------

    @property
    def totals(self) -> CurveTotals:
        return self._scanned.curve_totals()

    @property
    def n_rows(self) -> int:
        return self._scanned.n_rows

    @property
    def n_cells(self) -> int:
        """Occupied grid cells: the size of the sketch, ``2 * order`` numbers each."""
        return self._centres.size

    def evaluate(self, shift: float) -> Terms:
        """Every sum at ``shift`` (any float but NaN, ``±inf`` included), in the units of
        ``totals`` (the curve protocol)."""
        shift = as_shift(shift)
        terms = terms_from_sums(_kernels.sketch_terms(
            self._centres, self._tables, self.width, shift, _COEFFICIENTS, _FACTORIALS,
            _NO_CELLS))
        return with_log_parts(terms, shift, self._scanned.weight_sum, self._log_parts)

    def _log_parts(self, shift: float, scale: float, exponent: int
                   ) -> tuple[LogPart | None, LogPart | None]:
        state = np.zeros(_kernels.N_LOG)
        _kernels.sketch_log_parts(self._centres, self._tables, self.width, shift, _COEFFICIENTS,
                                  _FACTORIALS, scale, state)
        return log_parts_from_states(state, exponent)

    def _in_users_units(self, value: float) -> float:
        return ldexp(value, self._scanned.scale_exponent)

    def loss(self, shift: float) -> float:
        """Total weighted cross-entropy ``Σ w BCE(y, offset + shift)``."""
        return self._in_users_units(self.evaluate(shift).loss)

    def gradient(self, shift: float) -> float:
        """Its derivative ``Σ w (σ(offset + shift) - y)``."""
        return self._in_users_units(self.evaluate(shift).gradient)

    def hessian(self, shift: float) -> float:
        """Its second derivative ``Σ w σ(z) σ(-z)``, the observed information."""
        return self._in_users_units(self.evaluate(shift).hessian)

    def cells(self, shift: float = 0.0) -> CellRates:
        """Observed and expected positives per occupied cell at ``shift``.

        The rows of a cell share an offset to within ``width / 2``, so the cells, in order,
        bin the rows by predicted probability: what a reliability diagram needs, from the
        sketch alone. ``expected = Σ w σ(offset + shift)`` is the Taylor series of the
        tables, exact to rounding like every other sum. Rows of infinite offset (certain,
        and agreeing with their label) are in no cell.
        """
        rates = self._cells(shift)
        exponent = self._scanned.scale_exponent
        return CellRates(centre=rates.centre, weight=_in_units(rates.weight, 0, -exponent),
                         observed=_in_units(rates.observed, 0, -exponent).copy(),
                         expected=_in_units(rates.expected, 0, -exponent))

    def _cells(self, shift: float) -> CellRates:
        """:meth:`cells` in the units of ``totals``."""
        parts = np.empty((self.n_cells, 2))
        _kernels.sketch_terms(self._centres, self._tables, self.width, as_shift(shift),
                              _COEFFICIENTS, _FACTORIALS, parts)
        negatives, positives = self._tables[:, 0, 0], self._tables[:, 1, 0]
        # Σ w σ(z) = Σ w (1 - y) σ(z) + Σ w y - Σ w y σ(-z)
        expected = parts[:, 0] + (positives - parts[:, 1])
        return CellRates(centre=self._centres.copy(), weight=negatives + positives,
                         observed=positives.copy(), expected=expected)

    def robust_meat(self, shift: float) -> float:
        """``Σ w² (y - σ(offset + shift))²`` from the w² tables, in units of
        ``2**(2 * scale_exponent)``: the middle of the shift's sandwich variance."""
        return float(self._sandwich_meat(as_shift(shift), 1.0, 1)[0])

    def robust_meat_slope(self, intercept: float, slope: float) -> np.ndarray:
        """``Σ s sᵀ`` with ``s = w (y - σ(z)) (1, offset)`` and ``z = intercept + slope ·
        offset``, as ``(m_aa, m_ab, m_bb)``, from the w² tables (units as
        :meth:`robust_meat`)."""
        return self._sandwich_meat(float(intercept), float(slope), 3)

    def _sandwich_meat(self, intercept: float, slope: float, terms: int) -> np.ndarray:
        """``Σ w² (y - σ(z))² offset^k`` for ``k < terms``. A row of cell ``b`` has offset
        ``c + d``: the sums of ``d^k`` times the function are the series of the moments
        shifted by ``k`` (one term fewer each, on terms ``width / 2`` smaller), and
        ``offset^k = Σ_l C(k, l) c^(k-l) d^l`` puts them together per cell."""
        self._check_se_type("robust")
        squared, order = self._squared, self.order
        scaled_powers = slope ** np.arange(order)
        centres = slope * self._centres
        per_k = []
        for k in range(terms):
            shifted = np.zeros_like(squared)
            shifted[:, :, :order - k] = squared[:, :, k:]
            shifted *= scaled_powers
            outer = np.empty((self.n_cells, 2))  # w²(1 - y)² σ², w² y² σ(-z)²
            _kernels.sketch_polynomials(centres, np.ascontiguousarray(shifted[:, ::2]),
                                        intercept, _SIGMA_SQUARED, _TAIL_SQUARED, _FACTORIALS,
                                        outer)
            cross = np.empty((self.n_cells, 2))  # -2 w² y (1 - y) σ σ(-z)
            _kernels.sketch_polynomials(centres, np.ascontiguousarray(shifted[:, 1:3]),
                                        intercept, _CROSS, _NONE, _FACTORIALS, cross)
            per_k.append(outer.sum(axis=1) + cross[:, 0])
        c = self._centres
        if terms == 1:
            return np.array([per_k[0].sum()])
        s0, s1, s2 = per_k
        return np.array([s0.sum(), (c * s0 + s1).sum(), (c * c * s0 + 2.0 * c * s1 + s2).sum()])

    def solve(self, **fit_options: Any) -> ShiftFit:
        """The :class:`ShiftFit` of the rows seen so far; ``pseudo_count``, ``tol``,
        ``max_iter`` as for :func:`fit`, and ``se_type`` (``"robust"`` needs
        ``Sketch(robust=True)``)."""
        if self.n_rows == 0:
            raise InputError("y is empty: the sketch has no rows yet", argument="y")
        self._check_se_type(fit_options.get("se_type", "model"))
        return fit_curve(self, method="sketch", **fit_options)

    def _check_se_type(self, se_type: Any) -> None:
        """Refuse ``se_type="robust"`` before any work where the w² tables are missing."""
        if check_se_type(se_type) == "robust" and not self.robust:
            raise InputError("se_type='robust' needs the w² tables: fill the sketch with "
                             "Sketch(robust=True)", argument="se_type", value=se_type)

    @property
    def passes(self) -> int:
        return 1

    # -- logistic recalibration ----------------------------------------------------------

    def evaluate_slope(self, intercept: float, slope: float) -> SlopeTerms:
        """Loss, gradient and Hessian of ``Σ w BCE(y, intercept + slope · offset)``, from the
        tables alone; relative error about :meth:`truncation` of ``slope``."""
        sums = _kernels.slope_terms(self._centres, self._tables, self.width, float(intercept),
                                    float(slope), _COEFFICIENTS, _FACTORIALS)
        value = (sums[:, 0] + np.where(np.isfinite(sums[:, 0]), sums[:, 1], 0.0)).tolist()
        return SlopeTerms(loss=value[0], gradient=(value[1] + value[2], value[3] + value[4]),
                          hessian=(value[5], value[6], value[7]))

    def at_slope(self, slope: float) -> _Sloped:
        """The curve in the intercept of the offsets ``slope · offset``: ``evaluate(a)``
        gives the sums of ``Σ w BCE(y, a + slope · offset)``."""
        return _Sloped(self, float(slope))

    def truncation(self, slope: float) -> float:
        """The relative error of the slope curve's sums at ``slope``: the Taylor remainder
        ``(|slope| · width / 2π)^order`` (below 1e-15 with the defaults for ``|slope| <=
        1.3``, below 1e-12 for ``|slope| <= 3.2``), or, where larger, the grid's resolution:
        a remainder ``d = offset - centre`` is rounded to ``2**-54 · width``, which is
        ``2**-54 · width / spread`` of the offsets' spread (scores spread over 1e-20 logits
        lie in one cell, whose tables cannot tell them apart)."""
        base = abs(slope) * self.width / (2.0 * math.pi)
        # A steep trial slope (scores of 1e4 logits make them) is far beyond the sketch:
        # its power overflows, which is inf here, not an error.
        taylor = base ** self.order if base < 1e15 else math.inf
        spread = self.totals.offset_max - self.totals.offset_min
        resolution = 2.0 ** -54 * self.width / spread if spread > 0 else 0.0
        return max(taylor, resolution)

    def separates(self) -> int:
        """+1 where every cell with label-0 weight lies below every cell with label-1 weight
        (the offsets separate the labels: the slope of a recalibration is +inf), -1 for the
        mirror image, 0 otherwise (including a boundary inside one cell, which the tables
        cannot resolve)."""
        negative = np.flatnonzero(self._tables[:, 0, 0] > 0)
        positive = np.flatnonzero(self._tables[:, 1, 0] > 0)
        if negative.size == 0 or positive.size == 0:
            return 0
        if negative[-1] < positive[0]:
            return 1
        if positive[-1] < negative[0]:
            return -1
        return 0

    def spline(self) -> SketchSpline:
        """The sketch as the smooth calibration curve's summary
        (:class:`~logitshift._estimators.curve.SplineSummary`)."""
        return SketchSpline(self)

    def polynomial_sums(self, negative: np.ndarray, positive: np.ndarray,
                        shift: float = 0.0) -> tuple[float, float]:
        """``Σ w (1 - y) P(p)`` and ``Σ w y Q(p)`` with ``p = σ(offset + shift)``, for
        polynomials ``P`` and ``Q`` (coefficients by power), from the tables alone: each is a
        Taylor series around the cell centres, exact to rounding like every other sum. Rows of
        infinite offset are in no cell (``p`` is their label there). In the user's units, as
        :meth:`loss`."""
        sums = self._polynomial_sums(negative, positive, shift)
        return self._in_users_units(sums[0]), self._in_users_units(sums[1])

    def _polynomial_sums(self, negative: np.ndarray, positive: np.ndarray,
                         shift: float = 0.0) -> tuple[float, float]:
        """:meth:`polynomial_sums` in the units of ``totals``."""
        parts = [_kernels.polynomial_derivatives(np.asarray(polynomial, float), self.order)
                 for polynomial in (negative, positive)]
        sums = _kernels.sketch_polynomials(self._centres, self._tables, as_shift(shift),
                                           *parts, _FACTORIALS, _NO_CELLS)
        return float(sums[0, 0] + sums[0, 1]), float(sums[1, 0] + sums[1, 1])

    def validate(self, *, bins: int = 10, level: float = 0.95, se_type: str = "model"
                 ) -> CalibrationReport:
        """The :class:`CalibrationReport` of the rows seen so far, from the tables alone.

        The c-statistic comes with a bound: pairs of rows that share a sub-bin of the
        histogram (``Sketch(histogram=True)``, width ``HISTOGRAM_WIDTH``: about 1e-5), or
        else a cell (about 3e-3), are not ordered. See :func:`logitshift.validate` for
        arrays in memory, where it is exact. ``se_type`` as for :meth:`solve`.
        """
        self._check_se_type(se_type)
        if self._histogram is not None:  # sub-bins in increasing offset, as the cells
            negative = self._histogram[:, :, 0].ravel()
            positive = self._histogram[:, :, 1].ravel()
        else:
            cells = self._cells(0.0)  # in the units of the totals below
            negative, positive = cells.weight - cells.observed, cells.observed
        # Rows of infinite offset are in no cell, yet they are pairs to order: -inf rows
        # (label 0) below every cell, +inf rows (label 1) above.
        totals = self._scanned
        below = totals.weight_sum - totals.positives - totals.active_negatives
        above = totals.positives - totals.active_positives
        floor = 1e-12 * (totals.active_negatives + totals.active_positives)  # rounding
        negative = np.concatenate([[below if below > floor else 0.0], negative, [0.0]])
        positive = np.concatenate([[0.0], positive, [above if above > floor else 0.0]])
        return self._report(self.solve_slope(se_type=se_type),
                            c_statistic_of_cells(negative, positive), bins=bins, level=level,
                            se_type=se_type)

    def _report(self, slope: SlopeFit, c: tuple[float, float], *, bins: int,
                level: float, se_type: str = "model") -> CalibrationReport:
        """The report with this sketch's shift, sums and cells, and the given slope fit and
        c-statistic (exact ones, where the caller has the rows)."""
        bins = as_positive_int(bins, "bins")
        cells = self._cells(0.0)  # ratios of sums in the sketch's units: no subnormals
        return build_report(self.solve(se_type=se_type), slope, self._polynomial_sums, self.totals,
                            (cells.weight, cells.observed, cells.expected), c, bins=bins,
                            level=level)

    def solve_slope(self, *, tol: float | None = None, max_iter: int = 100,
                    se_type: str = "model") -> SlopeFit:
        """The :class:`SlopeFit` (logistic recalibration, ``y ~ σ(a + b · offset)``) of the
        rows seen so far, from the tables alone (``se_type="robust"`` needs
        ``Sketch(robust=True)``)."""
        if self.n_rows == 0:
            raise InputError("y is empty: the sketch has no rows yet", argument="y")
        self._check_se_type(se_type)
        return warn_about(fit_slope_curve(self, method="sketch", tol=tol, max_iter=max_iter,
                                          se_type=se_type))

    # -- decision curves ---------------------------------------------------------------------

    def label_totals(self) -> LabelTotals:
        """The rows, their weight and positives in the sketch's units (a decision curve's
        totals)."""
        totals = self._scanned
        return LabelTotals(totals.n_rows, totals.weight_sum, totals.positives,
                           totals.scale_exponent)

    def treated_weights(self, cuts: np.ndarray) -> TreatedWeights:
        """The weights of each label among the rows of raw score ``f >= cut``, for each of
        ``cuts``, from the histogram's sub-bins (``Sketch(histogram=True)``, width
        ``HISTOGRAM_WIDTH``), or else the cells: the sub-bins wholly at or above a cut are
        counted, and the one that holds it inside is the straddle, whose rows may lie on
        either side (see :class:`~logitshift._estimators.decision.TreatedWeights`). Rows of
        infinite offset are where their offset says. Sums run in ``np.longdouble``, and
        ``rounding`` says what is left of their error."""
        cuts = np.asarray(cuts, dtype=np.float64)
        if self._histogram is not None:
            bins = self.histogram_bins
            negative = self._histogram[:, :, 0].ravel()
            positive = self._histogram[:, :, 1].ravel()
        else:
            bins = 1
            negative, positive = self._tables[:, 0, 0], self._tables[:, 1, 0]
        # Cell b spans [centre - width/2, centre + width/2); its sub-bins are equal parts of
        # it, their edges exact (powers of two).
        step = self.width / bins
        lows = ((self._centres - 0.5 * self.width)[:, None] + step * np.arange(bins)).ravel()
        highs = lows + step
        # suffix[i]: the weight of sub-bins i, i + 1, ... (suffix[-1] = 0).
        suffix_negative = _suffix_sums(negative)
        suffix_positive = _suffix_sums(positive)
        totals = self._scanned
        below = totals.weight_sum - totals.positives - totals.active_negatives  # -inf rows
        above = totals.positives - totals.active_positives  # +inf rows
        floor = 1e-12 * (totals.active_negatives + totals.active_positives)  # rounding
        below, above = (below if below > floor else 0.0), (above if above > floor else 0.0)
        first_above = np.searchsorted(lows, cuts, side="left")  # sub-bins surely >= cut
        inside = np.searchsorted(lows, cuts, side="right") - 1  # the sub-bin that holds it
        holds = (inside >= 0) & (inside < lows.size)
        holds[holds] &= (lows[inside[holds]] < cuts[holds]) & (cuts[holds] < highs[inside[holds]])
        where = np.where(holds, inside, 0)
        share = np.where(holds, (highs[where] - cuts) / step, 0.0)
        return TreatedWeights(
            negatives=suffix_negative[first_above] + np.where(cuts == -math.inf, below, 0.0),
            positives=suffix_positive[first_above] + above,
            straddle_negatives=np.where(holds, negative[where] if negative.size else 0.0, 0.0),
            straddle_positives=np.where(holds, positive[where] if positive.size else 0.0, 0.0),
            straddle_share=share,
            rounding=(lows.size + 2) * float(np.finfo(np.longdouble).eps) + 4 * 2.0 ** -52)

    # -- moving it ---------------------------------------------------------------------------

    def _header(self) -> dict[str, Any]:
        """The header fields in the order they are written: the grid and its budget, the
        optional tables kept (only where some are: version 3), the number of cells, then
        the totals."""
        extras = {name: 1 for name in self._extras()}
        return {"width": self.width, "order": self.order, "max_cells": self.max_cells,
                **extras, "n_cells": self.n_cells, **asdict(self._scanned)}

    @property
    def _version(self) -> int:
        """The format this sketch is written in: 2, or 3 where it keeps optional tables, so
        that a reader of version 2 reads every sketch without them."""
        return FORMAT_VERSION if self._extras() else 2

    def _body(self) -> bytes:
        """The checksummed part of the binary form: everything but the checksum."""
        text = json.dumps(self._header(), separators=(",", ":")).encode()
        arrays = [self._centres, self._tables, *self._extras().values()]
        return (_MAGIC + struct.pack("<II", self._version, len(text)) + text
                + b"".join(array.astype("<f8").tobytes() for array in arrays))

    def to_dict(self) -> dict[str, Any]:
        """Plain values: the format version, the grid, the totals, the occupied cells'
        centres and their tables (and the optional ones, by name), and the CRC-32 of the
        :meth:`to_bytes` form, which :meth:`from_dict` checks."""
        extras = {_EXTRAS[name]: table.tolist() for name, table in self._extras().items()}
        return {"version": self._version, **self._header(),
                "centres": self._centres.tolist(), "tables": self._tables.tolist(),
                **extras, "checksum": zlib.crc32(self._body())}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sketch:
        """The sketch of a :meth:`to_dict` (of this version or version 1).

        Raises :class:`InputError` for anything else: a value that is not a mapping, a
        missing or unknown field, a field of the wrong type or out of range, tables
        inconsistent with the totals, or (version 2) a checksum that does not match.
        """
        if not isinstance(data, dict):
            raise InputError(f"not a logitshift sketch: a {type(data).__name__}, not the dict "
                             "of Sketch.to_dict()", argument="data")
        version = _version_of(data.get("version"), "data")
        known = ({"version", "centres", "tables"} | ({"checksum"} if version >= 2 else set())
                 | (set(_EXTRAS.values()) if version >= 3 else set()))
        header = {name: value for name, value in data.items() if name not in known}
        missing = [name for name in ("centres", "tables") + (("checksum",) if version >= 2
                                                             else ()) if name not in data]
        if missing:
            raise InputError(f"sketch is corrupted: it has no field {missing[0]!r}",
                             argument="data")
        centres = _array_field(data["centres"], "centres")
        tables = _array_field(data["tables"], "tables")
        extras = {name: _array_field(data[key], key) for name, key in _EXTRAS.items()
                  if key in data}
        sketch = _checked_sketch(header, centres, tables, version, "data", extras)
        if version >= 2:
            checksum = data["checksum"]
            if (isinstance(checksum, bool) or not isinstance(checksum, int)
                    or checksum != zlib.crc32(sketch._body())):
                raise InputError("sketch is corrupted: checksum mismatch", argument="data")
        return sketch

    def to_bytes(self) -> bytes:
        """A compact binary form (format version 2, or 3 with optional tables), read by
        :meth:`from_bytes`.

        ``b"LSSK"``, the format version and the header's length (two little-endian
        uint32), the header (JSON: grid, budget, the optional tables kept, cell count,
        totals), the cells' centres and tables, then the optional tables (w² moments, then
        histogram; little-endian float64), and the CRC-32 of everything before it (uint32).
        """
        body = self._body()
        return body + struct.pack("<I", zlib.crc32(body))

    @classmethod
    def from_bytes(cls, blob: bytes) -> Sketch:
        """The sketch of a :meth:`to_bytes` blob, of this format version or version 1.

        Raises :class:`InputError` for every other blob: ``"not a logitshift sketch"``,
        ``"sketch is corrupted: checksum mismatch"`` (a flipped bit, a truncation, an
        insertion), ``"written by format version N; this reads up to 2"``, or a field out of
        range. Version 1 carried no checksum: its blobs are checked field by field.
        """
        if not isinstance(blob, (bytes, bytearray, memoryview)):
            raise InputError(f"blob must be bytes, got {type(blob).__name__}", argument="blob")
        blob = bytes(blob)
        if len(blob) < 8 or blob[:4] != _MAGIC:
            raise InputError("not a logitshift sketch: it does not start with b'LSSK'",
                             argument="blob")
        (word,) = struct.unpack("<I", blob[4:8])
        if word >= _FIRST_V1_LENGTH:  # version 1 put its header's length here
            return _from_version_1(blob, word)
        version = _version_of(word, "blob")
        if len(blob) < 16:
            raise InputError(f"sketch is corrupted: {len(blob)} bytes is too short",
                             argument="blob")
        body, (checksum,) = blob[:-4], struct.unpack("<I", blob[-4:])
        if zlib.crc32(body) != checksum:
            raise InputError("sketch is corrupted: checksum mismatch", argument="blob")
        (length,) = struct.unpack("<I", blob[8:12])
        header = _parse_header(blob[12:12 + length], version, "blob")
        order, n_cells = _size_field(header, "order", 2, MAX_ORDER), _size_field(
            header, "n_cells", 0, len(blob))
        shapes = {"centres": (n_cells,), "tables": (n_cells, 2, order),
                  **_extra_shapes(header, n_cells, order)}
        sizes = [math.prod(shape) for shape in shapes.values()]
        expected = 12 + length + 8 * sum(sizes) + 4
        if len(blob) != expected:
            raise InputError(f"sketch is corrupted: {len(blob)} bytes, where its header "
                             f"says {expected}", argument="blob")
        arrays = np.frombuffer(blob, dtype="<f8", count=sum(sizes),
                               offset=12 + length).astype(np.float64)
        parts = dict(zip(shapes, (part.reshape(shape) for part, shape in zip(
            np.split(arrays, np.cumsum(sizes)[:-1]), shapes.values()))))
        return _checked_sketch(header, parts.pop("centres"), parts.pop("tables"), version,
                               "blob", parts)

    def __repr__(self) -> str:
        return (f"Sketch(n_rows={self.n_rows}, cells={self.n_cells}, width={self.width}, "
                f"order={self.order})")


# -- the wire format -----------------------------------------------------------------------------

_MAGIC = b"LSSK"
#: The newest format :meth:`Sketch.to_bytes` writes (3, for a sketch with optional tables;
#: one without is written as version 2); :meth:`Sketch.from_bytes` reads it and every
#: version before it. Bump it for any change an older reader would misread.
FORMAT_VERSION = 3
#: The optional per-cell tables, in the order they are written: each one's header flag, and
#: its field in `Sketch.to_dict`.
_EXTRAS = {"squared": "squared_moments", "histogram": "histogram_weights"}
#: Version 1 wrote its header's length (at least 100 bytes) where later versions write the
#: version (a small number): the word after the magic tells them apart.
_FIRST_V1_LENGTH = 256

#: The header fields besides the totals (`ScanTotals`' fields, written after these), their
#: type, and the value a blob without them means (None: required). A new field goes here
#: with a default, e.g. ``"weight_scale": (int, 0)``: blobs written before it still read,
#: and `_checked_sketch` says how to check it.
_GRID_FIELDS: dict[str, tuple[type, Any]] = {
    "width": (float, None),
    "order": (int, None),
    "max_cells": (int, DEFAULT_MAX_CELLS),  # version 1 had no budget: the default
    "squared": (int, 0),  # 1 where the sketch keeps the w² tables (version 3)
    "histogram": (int, 0),  # 1 where it keeps the histogram (version 3)
    "n_cells": (int, None),
}


def _header_fields() -> dict[str, tuple[type, Any]]:
    """Every header field: `_GRID_FIELDS`, then the totals, each with its type and default
    (a `ScanTotals` field with a default may be absent likewise)."""
    totals = {
        field.name: (int if field.type in (int, "int") else float,
                     None if field.default is MISSING else field.default)
        for field in fields(ScanTotals)}
    return {**_GRID_FIELDS, **totals}


def _version_of(version: Any, argument: str) -> int:
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise InputError(f"not a logitshift sketch: format version {version!r}",
                         argument=argument)
    if version > FORMAT_VERSION:
        raise InputError(f"sketch written by format version {version}; this reads up to "
                         f"{FORMAT_VERSION} (a newer logitshift wrote it)", argument=argument,
                         value=version)
    return version


def _parse_header(text: bytes, version: int, argument: str) -> dict[str, Any]:
    """The header's fields, from JSON exactly as `to_bytes` wrote it (no other spelling)."""
    try:
        header = json.loads(text.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError, JSONDecodeError
        raise InputError(f"sketch is corrupted: its header is not JSON ({exc})",
                         argument=argument) from None
    if not isinstance(header, dict):
        raise InputError("sketch is corrupted: its header is not a JSON object",
                         argument=argument)
    separators = (",", ":") if version >= 2 else (", ", ": ")
    if json.dumps(header, separators=separators).encode() != text:
        raise InputError("sketch is corrupted: its header is not as Sketch.to_bytes writes "
                         "it", argument=argument)
    return header


def _from_version_1(blob: bytes, length: int) -> Sketch:
    """A version-1 blob: the magic, the header's length, the JSON header (with its
    version), then the arrays; no checksum, so every field is checked instead."""
    header = _parse_header(blob[8:8 + length], 1, "blob")
    if header.pop("version", None) != 1:
        raise InputError("not a logitshift sketch: its header has no format version",
                         argument="blob")
    order = _size_field(header, "order", 2, MAX_ORDER)
    numbers, remainder = divmod(len(blob) - 8 - length, 8)
    n_cells, extra = divmod(numbers, 1 + 2 * order)
    if len(blob) < 8 + length or remainder or extra:
        raise InputError(f"sketch is corrupted: {len(blob)} bytes do not hold whole cells",
                         argument="blob")
    arrays = np.frombuffer(blob, dtype="<f8", offset=8 + length).astype(np.float64)
    header["n_cells"] = n_cells
    return _checked_sketch(header, arrays[:n_cells],
                           arrays[n_cells:].reshape(n_cells, 2, order), 1, "blob")


def _size_field(header: dict[str, Any], name: str, low: int, high: int) -> int:
    """A header's integer that sizes the arrays, checked before they are read."""
    value = header.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _corrupted("blob", f"{name} = {value!r} must be an integer between {low} and "
                                 f"{high}")
    return value


def _extra_shapes(header: dict[str, Any], n_cells: int, order: int
                  ) -> dict[str, tuple[int, ...]]:
    """The shapes of the optional tables a header says follow the tables."""
    shapes = {}
    if header.get("squared") == 1:
        shapes["squared"] = (n_cells, 3, order)
    if header.get("histogram") == 1:
        width = header.get("width")
        if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
            raise _corrupted("blob", f"width = {width!r} is not a positive number")
        shapes["histogram"] = (n_cells, _histogram_bins(width), 2)
    return shapes


def _array_field(values: Any, name: str) -> np.ndarray:
    """A float64 array of a dict's list (or array) of numbers; nothing else."""
    try:
        array = np.asarray(values)
    except (ValueError, TypeError) as exc:  # ragged lists
        raise InputError(f"sketch is corrupted: {name} is not an array ({exc})",
                         argument="data") from None
    if array.dtype.kind not in "iuf":
        raise InputError(f"sketch is corrupted: {name} is not an array of numbers",
                         argument="data")
    return array.astype(np.float64)


def _corrupted(argument: str, message: str) -> InputError:
    return InputError(f"sketch is corrupted: {message}", argument=argument)


def _checked_sketch(header: dict[str, Any], centres: np.ndarray, tables: np.ndarray,
                    version: int, argument: str,
                    extras: dict[str, np.ndarray] | None = None) -> Sketch:
    """A sketch of these fields, each checked: its type, its range, and that the tables
    (and the optional ones) agree with the totals as those of any sketch do."""
    extras = extras or {}
    spec = _header_fields()
    unknown = [name for name in header if name not in spec]
    if unknown:
        raise _corrupted(argument, f"its header has an unknown field {unknown[0]!r}")
    values: dict[str, Any] = {}
    for name, (kind, default) in spec.items():
        if name not in header:
            if default is None:
                raise _corrupted(argument, f"its header has no field {name!r}")
            values[name] = default
            continue
        value = header[name]
        number_ok = not isinstance(value, bool) and isinstance(
            value, int if kind is int else (int, float))
        if not number_ok or (kind is float and math.isnan(value) and name != "weighted_offset"):
            what = "an integer" if kind is int else "a number"
            raise _corrupted(argument, f"{name} = {value!r} is not {what}")
        values[name] = kind(value)
    for name in _EXTRAS:
        if values[name] not in (0, 1) or (values[name] and version < 3):
            raise _corrupted(argument, f"{name} = {values[name]!r} must be 0 or 1 (and 0 "
                                       f"before version 3)")
        if bool(values[name]) != (name in extras):
            raise _corrupted(argument, f"its header says {name} = {values[name]}, but the "
                                       f"table is {'missing' if values[name] else 'there'}")
    try:
        sketch = Sketch(values["width"], values["order"], max_cells=values["max_cells"],
                        robust=bool(values["squared"]), histogram=bool(values["histogram"]))
    except InputError as exc:
        raise _corrupted(argument, str(exc)) from None
    order, n_cells, width = sketch.order, values["n_cells"], sketch.width
    totals = ScanTotals(**{field.name: values[field.name] for field in fields(ScanTotals)})
    if not 0 <= n_cells <= sketch.max_cells:
        raise _corrupted(argument, f"n_cells = {n_cells} is outside [0, max_cells = "
                                   f"{sketch.max_cells}]")
    if n_cells == 0 and tables.size == 0 and centres.size == 0:  # to_dict's [] of no cells
        centres, tables = centres.reshape(0), tables.reshape(0, 2, order)
    if centres.shape != (n_cells,) or tables.shape != (n_cells, 2, order):
        raise _corrupted(argument, f"its tables have shape {tables.shape} and its centres "
                                   f"{centres.shape}, where {n_cells} cells of order {order} "
                                   f"need ({n_cells}, 2, {order}) and ({n_cells},)")
    _check_totals(totals, centres, tables, width, argument)
    for name, table in extras.items():
        _check_extra(sketch, name, table, tables, argument)
    sketch._scanned, sketch._centres, sketch._tables = totals, centres, tables
    sketch._squared, sketch._histogram = extras.get("squared"), extras.get("histogram")
    return sketch


def _check_extra(sketch: Sketch, name: str, table: np.ndarray, tables: np.ndarray,
                 argument: str) -> None:
    """An optional table's shape and what holds of it in every sketch."""
    n_cells = tables.shape[0]
    shape = ((n_cells, 3, sketch.order) if name == "squared"
             else (n_cells, sketch.histogram_bins, 2))
    if n_cells == 0 and table.size == 0:
        table.shape = shape
    if table.shape != shape:
        raise _corrupted(argument, f"its {name} table has shape {table.shape}, where "
                                   f"{n_cells} cells need {shape}")
    if not np.isfinite(table).all():
        raise _corrupted(argument, f"its {name} table holds a number that is not finite")
    if name == "histogram":
        close = np.isclose(table.sum(axis=1), tables[:, :, 0], rtol=1e-8, atol=1e-300)
        if (table < 0).any() or not close.all():
            raise _corrupted(argument, "its histogram does not agree with its tables")
    elif (table[:, :, 0] < 0).any():
        raise _corrupted(argument, "its w² table has a negative weight")


def _check_totals(totals: ScanTotals, centres: np.ndarray, tables: np.ndarray, width: float,
                  argument: str) -> None:
    """What holds of the totals and tables of every sketch, to rounding."""
    if totals.n_rows < 0:
        raise _corrupted(argument, f"n_rows = {totals.n_rows} is negative")
    sums = {"weight_sum": totals.weight_sum, "positives": totals.positives,
            "active_negatives": totals.active_negatives,
            "active_positives": totals.active_positives}
    for name, value in sums.items():
        if not value >= 0 or (name.startswith("active") and not math.isfinite(value)):
            raise _corrupted(argument, f"{name} = {value!r} must be finite and non-negative")
    if not (np.isfinite(centres).all() and np.isfinite(tables).all()):
        raise _corrupted(argument, "its tables hold a number that is not finite")
    if centres.size and not np.all(centres[1:] > centres[:-1]):
        raise _corrupted(argument, "its cells' centres are not sorted and distinct")
    weights = tables[:, :, 0]
    if (weights < 0).any() or not (weights.sum(axis=1) > 0).all():
        raise _corrupted(argument, "a cell has a negative weight, or none")
    # Remainders lie within half a cell of the centre: |Σ w d^j| <= (width / 2)^j Σ w.
    bound = (0.5 * width) ** np.arange(tables.shape[2]) * (1 + 1e-9)
    if (np.abs(tables) > weights[:, :, None] * bound + 1e-300).any():
        raise _corrupted(argument, "a cell's moments exceed what its width allows")
    on_grid = np.abs(centres) < 2.0 ** 52 * width  # beyond, a row is its own centre
    if not np.all((centres[on_grid] / width - 0.5) % 1 == 0):
        raise _corrupted(argument, "a cell's centre is not on the grid")
    close = partial(math.isclose, rel_tol=1e-8, abs_tol=1e-300)
    active = totals.active_negatives + totals.active_positives
    consistent = (
        close(totals.active_negatives, float(np.sum(weights[:, 0])))
        and close(totals.active_positives, float(np.sum(weights[:, 1])))
        and totals.positives >= totals.active_positives * (1 - 1e-8)
        and totals.weight_sum >= active * (1 - 1e-8)
        and (totals.n_rows > 0 or totals.weight_sum == 0)
    )
    if not consistent:
        raise _corrupted(argument, "its totals do not agree with its tables")
    if centres.size:
        # The least and greatest offsets lie in the first and last cells.
        if not (abs(totals.offset_min - centres[0]) <= 0.5 * width
                and abs(totals.offset_max - centres[-1]) <= 0.5 * width):
            raise _corrupted(argument, f"its offset range [{totals.offset_min!r}, "
                                       f"{totals.offset_max!r}] does not hold its cells")
    elif (totals.offset_min, totals.offset_max) != (math.inf, -math.inf):
        raise _corrupted(argument, "it has an offset range but no cells")
