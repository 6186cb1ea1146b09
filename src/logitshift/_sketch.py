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
import math
import struct
from dataclasses import asdict, dataclass, fields, replace
from functools import partial
from typing import Any

import numpy as np

from . import _kernels
from ._kernels import (N_STATS, S_ANCHOR, S_FIRST_BAD, S_HIGH, S_LOW, S_OFFSET_MAX,
                       S_OFFSET_MIN, S_OVERFLOW, S_POSITIVES, S_WEIGHT)
from ._result import ShiftFit
from ._rows import (NO_ROWS, Prepared, ScanTotals, in_threads, log_parts_from_states,
                    raise_for_bad_rows, rescaled_pass, row_ranges, terms_from_sums)
from ._shift import fit_curve
from ._solve import CurveTotals, LogPart, Terms, ldexp, with_log_parts
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
    tasks = [partial(_kernels.fill, *arguments, start, stop, 1.0 / width, width, order,
                     tables[t], stats[t]) for t, (start, stop) in enumerate(ranges)]
    _kernels.compile_vectorized(_kernels.fill, tasks[0].args)
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


def scan_in_units(data: Prepared, width: float, order: int, threads: int | None = None
                  ) -> tuple[ScanTotals, np.ndarray, np.ndarray]:
    """`scan_arrays`, and where the weights' sum is not ordinary, again in units that make it
    so (`_rows.rescaled_pass`); the totals say which."""
    (scanned, centres, tables), exponent = rescaled_pass(
        data, partial(scan_arrays, width=width, order=order, threads=threads),
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


def _in_units(tables: np.ndarray, exponent: int, target: int) -> np.ndarray:
    """Tables in units of ``2**exponent`` expressed in units of ``2**target`` (exact, but for
    what falls below the smallest double)."""
    if exponent == target:
        return tables
    with np.errstate(over="ignore", under="ignore"):
        return np.ldexp(tables, exponent - target)


def _combine(cells: np.ndarray, tables: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct cells (by centre), with the tables of equal cells added."""
    unique, inverse = np.unique(cells, return_inverse=True)
    if unique.size == cells.size and np.all(cells[1:] > cells[:-1]):
        return cells, tables
    combined = np.zeros((unique.size,) + tables.shape[1:])
    np.add.at(combined, inverse.ravel(), tables)
    return unique, combined


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
        self._absorb(*scan_in_units(data, self.width, self.order, threads))
        return self

    @classmethod
    def _from_prepared(cls, data: Prepared) -> Sketch:
        """The sketch (default grid) of arrays already checked for type and shape."""
        sketch = cls()
        sketch._absorb(*scan_in_units(data, sketch.width, sketch.order))
        return sketch

    def _absorb(self, scanned: ScanTotals, centres: np.ndarray, tables: np.ndarray) -> None:
        # Tables in different units add in the larger (a power of two apart: exact).
        exponent = self._scanned.common_exponent(scanned)
        mine = _in_units(self._tables, self._scanned.scale_exponent, exponent)
        theirs = _in_units(tables, scanned.scale_exponent, exponent)
        self._scanned = self._scanned + scanned
        self._centres, self._tables = _combine(np.concatenate([self._centres, centres]),
                                             np.concatenate([mine, theirs]))

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
        """The sums at ``shift``, in the units of ``totals`` (the curve protocol)."""
        terms = terms_from_sums(_kernels.sketch_terms(
            self._centres, self._tables, self.width, float(shift), _COEFFICIENTS, _FACTORIALS,
            _NO_CELLS))
        return with_log_parts(terms, float(shift), self._scanned.weight_sum, self._log_parts)

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
        parts = np.empty((self.n_cells, 2))
        _kernels.sketch_terms(self._centres, self._tables, self.width, float(shift),
                              _COEFFICIENTS, _FACTORIALS, parts)
        negatives, positives = self._tables[:, 0, 0], self._tables[:, 1, 0]
        # Σ w σ(z) = Σ w (1 - y) σ(z) + Σ w y - Σ w y σ(-z)
        expected = parts[:, 0] + (positives - parts[:, 1])
        exponent = self._scanned.scale_exponent
        return CellRates(centre=self._centres.copy(),
                         weight=_in_units(negatives + positives, 0, -exponent),
                         observed=_in_units(positives, 0, -exponent).copy(),
                         expected=_in_units(expected, 0, -exponent))

    def solve(self, **fit_options: Any) -> ShiftFit:
        """The :class:`ShiftFit` of the rows seen so far; ``pseudo_count``, ``tol`` and
        ``max_iter`` as for :func:`fit`."""
        if self.n_rows == 0:
            raise InputError("y is empty: the sketch has no rows yet", argument="y")
        return fit_curve(self, method="sketch", **fit_options)

    @property
    def passes(self) -> int:
        return 1

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
        # Dicts written before the weights had units are in units of 1.
        values = {"scale_exponent": 0, **data}
        sketch._scanned = ScanTotals(**{
            field.name: (int if field.name in ("n_rows", "scale_exponent") else float)(
                values[field.name]) for field in fields(ScanTotals)})
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
