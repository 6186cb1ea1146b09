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
from dataclasses import asdict, dataclass, fields
from functools import partial
from typing import Any

import numpy as np

from . import _kernels
from ._kernels import (N_STATS, S_ANCHOR, S_FIRST_BAD, S_HIGH, S_LOW, S_OFFSET_MAX,
                       S_OFFSET_MIN, S_OVERFLOW, S_POSITIVES, S_WEIGHT)
from ._report import CalibrationReport, build_report, c_statistic_of_cells
from ._result import ShiftFit
from ._rows import (NO_ROWS, Prepared, ScanTotals, in_threads, raise_for_bad_rows,
                    row_ranges, terms_from_sums)
from ._shift import fit_curve
from ._slope import SlopeFit, SlopeTerms, fit_slope_curve, scaled_totals, warn_about
from ._solve import CurveTotals, Terms
from ._validate import InputError, as_positive_int

__all__ = ["Sketch", "CellRates", "scan_arrays", "fill_reference", "DEFAULT_WIDTH",
           "DEFAULT_ORDER"]

#: Grid width and Taylor order: the remainder is below 1e-16 of the Hessian (see
#: docs/benchmarks.md for the measurement behind these defaults).
DEFAULT_WIDTH = 2.0 ** -4
DEFAULT_ORDER = 8
MAX_ORDER = 16

#: Cells each side of a thread's first cell that its dense table covers: ±1024 logits at the
#: default width. Rows beyond go through the sparse path.
_HALF_WINDOW = 1 << 14
_FACTORIALS = np.array([math.factorial(j) for j in range(MAX_ORDER + 1)], dtype=np.float64)
_COEFFICIENTS = _kernels.derivative_coefficients(MAX_ORDER + 2)
_NO_CELLS = np.empty((0, 2))  # sketch_terms: no per-cell parts wanted


def scan_arrays(data: Prepared, width: float, order: int, threads: int | None = None
                ) -> tuple[ScanTotals, np.ndarray, np.ndarray]:
    """One pass: validate, total and fill the tables, on at most ``threads`` threads.

    Returns the totals, the centres of the occupied cells (sorted) and their tables
    ``(cells, 2, order)``.
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
    if stats[:, S_OVERFLOW].sum() > 0:
        wide_cells, wide_tables, wide_min, wide_max = _fill_outside_windows(
            data, stats, ranges, width, order)
        cells.append(wide_cells)
        parts.append(wide_tables)
        offset_min, offset_max = min(offset_min, wide_min), max(offset_max, wide_max)
    centres, tables = _combine(np.concatenate(cells) if cells else np.empty(0),
                               np.concatenate(parts) if parts else np.empty((0, 2, order)))
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
    """The fill kernel for these arrays and its leading arguments: `_kernels.fill_unweighted`
    for integer labels (bool included), an offset array and no weights, the common case and
    twice as fast; `_kernels.fill` for everything else."""
    offsets, has_offsets, _, labels, _, has_weights = arguments
    if has_offsets and not has_weights and labels.dtype.kind in "iu":
        return _kernels.fill_unweighted, (offsets, labels)
    return _kernels.fill, arguments


def _weighted_offset(centres: np.ndarray, tables: np.ndarray) -> float:
    """``Σ w f`` from the tables (nan where offsets of ±1e306 overflow it: `mean_within`
    copes)."""
    with np.errstate(over="ignore", invalid="ignore"):
        return float(np.sum(centres * (tables[:, 0, 0] + tables[:, 1, 0]))
                     + np.sum(tables[:, :, 1]))


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
        with np.errstate(over="ignore", invalid="ignore"):  # |f| > 1e307: outside anyway
            # The kernel's own expression, operation for operation, so that every row is
            # either in its window or here, never both or neither.
            position = np.floor(offsets[rows] * (1.0 / width)) - (stats[t, S_ANCHOR]
                                                                  - _HALF_WINDOW)
        outside = ~((position >= 0) & (position < 2 * _HALF_WINDOW)) & np.isfinite(
            offsets[rows])
        weights = None if data.weights is None else data.weights[rows][outside]
        if weights is not None:
            outside[outside] = weights > 0
            weights = weights[weights > 0]
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
    rows = np.stack([(w - w * y)[:, None] * powers, (w * y)[:, None] * powers], axis=1)
    return _combine(centres, rows)


def _combine(cells: np.ndarray, tables: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct cells (by centre), with the tables of equal cells added."""
    unique, inverse = np.unique(cells, return_inverse=True)
    if unique.size == cells.size and np.all(cells[1:] > cells[:-1]):
        return cells, tables
    combined = np.zeros((unique.size,) + tables.shape[1:])
    np.add.at(combined, inverse.ravel(), tables)
    return unique, combined


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

    Notes
    -----
    ``update`` reads each chunk once (numba, a thread per core) and keeps two small tables,
    one row per occupied cell (``1 / width`` cells per unit of offset range, sparse when the
    range is wide). Sketches of parts of the data merge (``a.merge(b)`` or ``a + b``) into the sketch
    of the whole, so the same code serves arrays, files read in batches, streams and
    partitions of a cluster; ``to_bytes`` / ``from_bytes`` move one between processes.

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

    def __init__(self, width: float = DEFAULT_WIDTH, order: int = DEFAULT_ORDER) -> None:
        width_ok = isinstance(width, (int, float)) and 0 < width < math.inf
        if not (width_ok and math.frexp(width)[0] == 0.5):
            raise InputError(f"width = {width!r} must be a positive power of two",
                             argument="width", value=width)
        order = as_positive_int(order, "order")
        if not 2 <= order <= MAX_ORDER:
            raise InputError(f"order = {order} must be between 2 and {MAX_ORDER}",
                             argument="order", value=order)
        self.width = float(width)
        self.order = order
        self._scanned = NO_ROWS
        self._centres = np.empty(0)
        self._tables = np.empty((0, 2, order))

    # -- building ----------------------------------------------------------------------------

    def update(self, y: Any, offset: Any = None, weight: Any = None, *,
               first_row: int = 0, threads: int | None = None) -> Sketch:
        """Add rows: labels ``y``, offsets (array, scalar or None) and optional weights.

        Checks the rows as :func:`logitshift.fit` does, numbering them from ``first_row``
        in its messages (the chunk's place in a stream), and returns the sketch itself. A
        chunk may be empty, or weigh nothing: a stream's pieces need not each be fittable,
        only their sum. ``threads`` caps the threads that fill it (by default numba's
        ``NUMBA_NUM_THREADS``, the CPU count), e.g. to leave a core to a reader.
        """
        data = Prepared.of(y, offset, weight, allow_empty=True, first_row=first_row)
        if threads is not None:
            threads = as_positive_int(threads, "threads")
        if data.labels.shape[0] == 0:
            return self
        self._absorb(*scan_arrays(data, self.width, self.order, threads))
        return self

    @classmethod
    def _from_prepared(cls, data: Prepared) -> Sketch:
        """The sketch (default grid) of arrays already checked for type and shape."""
        sketch = cls()
        sketch._absorb(*scan_arrays(data, sketch.width, sketch.order))
        return sketch

    def _absorb(self, scanned: ScanTotals, centres: np.ndarray, tables: np.ndarray) -> None:
        self._scanned = self._scanned + scanned
        self._centres, self._tables = _combine(np.concatenate([self._centres, centres]),
                                             np.concatenate([self._tables, tables]))

    def merge(self, other: Sketch) -> Sketch:
        """A new sketch of both sketches' rows."""
        if not isinstance(other, Sketch):
            return NotImplemented
        if (other.width, other.order) != (self.width, self.order):
            raise InputError(
                f"cannot merge a sketch of width {other.width} and order {other.order} into "
                f"one of width {self.width} and order {self.order}", argument="other")
        merged = Sketch(self.width, self.order)
        merged._scanned = self._scanned
        merged._centres, merged._tables = self._centres, self._tables
        merged._absorb(other._scanned, other._centres, other._tables)
        return merged

    __add__ = merge

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
        return terms_from_sums(_kernels.sketch_terms(
            self._centres, self._tables, self.width, float(shift), _COEFFICIENTS, _FACTORIALS,
            _NO_CELLS))

    def loss(self, shift: float) -> float:
        """Total weighted cross-entropy ``Σ w BCE(y, offset + shift)``."""
        return self.evaluate(shift).loss

    def gradient(self, shift: float) -> float:
        """Its derivative ``Σ w (σ(offset + shift) - y)``."""
        return self.evaluate(shift).gradient

    def hessian(self, shift: float) -> float:
        """Its second derivative ``Σ w σ(z) σ(-z)``, the observed information."""
        return self.evaluate(shift).hessian

    def cells(self, shift: float = 0.0) -> CellRates:
        """Observed and expected positives per occupied cell at ``shift``.

        The rows of a cell share an offset to within ``width / 2``, so the cells, in order,
        bin the rows by predicted probability: what a reliability diagram needs, from the
        sketch alone. ``expected = Σ w σ(offset + shift)`` is the Taylor series of the
        tables, exact to rounding like every other sum. Rows of infinite offset (certain,
        and agreeing with their label) are in no cell.
        """
        parts = np.empty((self.n_cells, 2))
        _kernels.sketch_terms(self._centres, self._tables, self.width, float(shift),
                              _COEFFICIENTS, _FACTORIALS, parts)
        negatives, positives = self._tables[:, 0, 0], self._tables[:, 1, 0]
        # Σ w σ(z) = Σ w (1 - y) σ(z) + Σ w y - Σ w y σ(-z)
        expected = parts[:, 0] + (positives - parts[:, 1])
        return CellRates(centre=self._centres.copy(), weight=negatives + positives,
                         observed=positives.copy(), expected=expected)

    def solve(self, **fit_options: Any) -> ShiftFit:
        """The :class:`ShiftFit` of the rows seen so far; ``pseudo_count``, ``tol`` and
        ``max_iter`` as for :func:`fit`."""
        if self.n_rows == 0:
            raise InputError("y is empty: the sketch has no rows yet", argument="y")
        return fit_curve(self, method="sketch", **fit_options)

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
        """The Taylor remainder ``(|slope| · width / 2π)^order``: the relative error of the
        sums at that slope (below 1e-15 with the defaults for ``|slope| <= 1.3``, below
        1e-12 for ``|slope| <= 3.2``)."""
        return (abs(slope) * self.width / (2.0 * math.pi)) ** self.order

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

    def polynomial_sums(self, negative: np.ndarray, positive: np.ndarray,
                        shift: float = 0.0) -> tuple[float, float]:
        """``Σ w (1 - y) P(p)`` and ``Σ w y Q(p)`` with ``p = σ(offset + shift)``, for
        polynomials ``P`` and ``Q`` (coefficients by power), from the tables alone: each is a
        Taylor series around the cell centres, exact to rounding like every other sum. Rows of
        infinite offset are in no cell (``p`` is their label there)."""
        parts = []
        for polynomial in (negative, positive):
            parts.append(_kernels.polynomial_derivatives(np.asarray(polynomial, float),
                                                         self.order))
        sums = _kernels.sketch_polynomials(self._centres, self._tables, float(shift), *parts,
                                           _FACTORIALS, _NO_CELLS)
        return float(sums[0, 0] + sums[0, 1]), float(sums[1, 0] + sums[1, 1])

    def validate(self, *, bins: int = 10, level: float = 0.95) -> CalibrationReport:
        """The :class:`CalibrationReport` of the rows seen so far, from the tables alone.

        The c-statistic comes with a bound (pairs of rows that share a cell are not
        ordered); see :func:`logitshift.validate` for arrays in memory, where it is exact.
        """
        cells = self.cells(0.0)
        return self._report(self.solve_slope(),
                            c_statistic_of_cells(cells.weight - cells.observed, cells.observed),
                            bins=bins, level=level)

    def _report(self, slope: SlopeFit, c: tuple[float, float], *, bins: int,
                level: float) -> CalibrationReport:
        """The report with this sketch's shift, sums and cells, and the given slope fit and
        c-statistic (exact ones, where the caller has the rows)."""
        bins = as_positive_int(bins, "bins")
        cells = self.cells(0.0)
        return build_report(self.solve(), slope, self,
                            (cells.weight, cells.observed, cells.expected), c, bins=bins,
                            level=level)

    def solve_slope(self, *, tol: float | None = None, max_iter: int = 100) -> SlopeFit:
        """The :class:`SlopeFit` (logistic recalibration, ``y ~ σ(a + b · offset)``) of the
        rows seen so far, from the tables alone."""
        if self.n_rows == 0:
            raise InputError("y is empty: the sketch has no rows yet", argument="y")
        return warn_about(fit_slope_curve(self, method="sketch", tol=tol, max_iter=max_iter))

    # -- moving it ---------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Plain values: the grid, the totals, the occupied cells' centres and their tables."""
        return {
            "version": 1, "width": self.width, "order": self.order, **asdict(self._scanned),
            "centres": self._centres.tolist(), "tables": self._tables.tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Sketch:
        if data.get("version") != 1:
            raise InputError(f"unknown sketch version {data.get('version')!r}",
                             argument="data")
        sketch = cls(data["width"], data["order"])
        sketch._scanned = ScanTotals(**{
            field.name: (int if field.name == "n_rows" else float)(data[field.name])
            for field in fields(ScanTotals)})
        sketch._centres = np.asarray(data["centres"], dtype=np.float64).reshape(-1)
        sketch._tables = np.asarray(data["tables"], dtype=np.float64).reshape(
            sketch._centres.size, 2, sketch.order)
        return sketch

    _MAGIC = b"LSSK"

    def to_bytes(self) -> bytes:
        """A compact binary form: a JSON header and the raw little-endian arrays."""
        header = self.to_dict()
        del header["centres"], header["tables"]
        text = json.dumps(header).encode()
        return (self._MAGIC + struct.pack("<I", len(text)) + text
                + self._centres.astype("<f8").tobytes() + self._tables.astype("<f8").tobytes())

    @classmethod
    def from_bytes(cls, blob: bytes) -> Sketch:
        if blob[:4] != cls._MAGIC:
            raise InputError("not a logitshift sketch", argument="blob")
        (length,) = struct.unpack("<I", blob[4:8])
        header = json.loads(blob[8:8 + length])
        arrays = np.frombuffer(blob, dtype="<f8", offset=8 + length)
        n_cells = arrays.size // (1 + 2 * header["order"])
        header["centres"] = arrays[:n_cells]
        header["tables"] = arrays[n_cells:]
        return cls.from_dict(header)

    def __repr__(self) -> str:
        return (f"Sketch(n_rows={self.n_rows}, cells={self.n_cells}, width={self.width}, "
                f"order={self.order})")
