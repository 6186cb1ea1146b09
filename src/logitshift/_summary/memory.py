"""Rows in memory: the summary of a source that keeps its rows (arrays and tables).

Where a streamed source can only hand over a sketch, rows in memory give the estimators more:
the closed form for a constant offset (or none), exact passes (:class:`ExactCurve`, one per
evaluation, for ``method="newton"`` and for offsets too spread to sketch), the exact refit of
a slope too steep for the sketch, and the exact c-statistic. :class:`Rows` holds them and
fills the sketch of the rows, with the pass that validates them, only when asked.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property, partial

import numpy as np

from .._core import kernels as _kernels
from .._core.kernels import (N_STATS, S_ACTIVE_NEG, S_ACTIVE_POS, S_FIRST_BAD, S_OFFSET_MAX,
                             S_OFFSET_MIN, S_POSITIVES, S_WEIGHT, S_WEIGHTED_OFFSET)
from .._core.losses import sigmoid_pair
from .._core.validate import InputError
from .._estimators.decision import LabelTotals, TreatedWeights
from .._estimators.report import CalibrationReport, c_statistic
from .._estimators.result import ShiftFit
from .._estimators.shift import fit_curve
from .._estimators.slope import (MAX_TRUNCATION, ArraySlopeCurve, SlopeFit, fit_slope_curve,
                                 warn_about)
from .._estimators.solve import ArrayCurve, Curve, Terms, squared_residuals, with_log_parts
from .passes import (Prepared, ScanTotals, exact_log_parts, in_threads, raise_for_bad_rows,
                     rescaled_pass, row_ranges, terms_from_sums)
from .sketch import CellBudgetExceeded, Sketch, SketchSpline

__all__ = ["Rows", "RowsSpline", "ScoredArrays", "scan_totals", "ExactCurve", "ConstantCurve"]


class Rows:
    """Labels, offsets and weights in memory, checked for type and shape (no pass yet).

    ``robust``: the sketch keeps the w² tables of robust standard errors, and a constant
    offset's curve the w² sums.
    """

    def __init__(self, data: Prepared, *, robust: bool = False) -> None:
        self.data, self.robust = data, robust

    def curve(self, method: str) -> tuple[Curve, str]:
        """The curve of the rows after one validating pass, and the method that names
        it in the result: ``"sketch"`` for ``"auto"``, or ``"newton"`` where the offsets are
        too spread for the sketch's cell budget; a constant offset keeps ``method``, as the
        estimator reports it as ``"closed_form"``."""
        data, robust = self.data, self.robust
        if np.ndim(data.offsets) == 0:
            totals = scan_totals(data)
            squared = _squared_label_sums(data, totals.scale_exponent) if robust else None
            return ConstantCurve(totals, float(data.offsets), squared), method
        if method == "newton":
            return ExactCurve(data), method
        try:
            return Sketch._from_prepared(data, robust=robust), "sketch"
        except CellBudgetExceeded:
            if method == "sketch":
                raise
        # A sketch of such offsets would outgrow the data; the exact passes need no memory
        # beyond it. The sketch's pass, given up, counts among the passes.
        curve = ExactCurve(data)
        curve.passes += 1
        return curve, "newton"

    def solve_slope(self, *, tol: float | None = None, max_iter: int = 100,
                    se_type: str = "model") -> SlopeFit:
        """The :class:`SlopeFit` of the rows, as :meth:`Sketch.solve_slope` gives a sketch's:
        from their sketch, refitted with exact passes where the sketch cannot vouch for its
        sums (offsets beyond its cell budget, a slope too steep or scores too close for its
        grid)."""
        return warn_about(self.scored.slope(tol=tol, max_iter=max_iter, se_type=se_type))

    def validate(self, *, bins: int = 10, level: float = 0.95, se_type: str = "model"
                 ) -> CalibrationReport:
        """The :class:`CalibrationReport` of the rows, as :meth:`Sketch.validate` gives a
        sketch's, with the exact c-statistic and the slope refitted exactly where the sketch
        cannot vouch for it."""
        scored = self.scored
        sketch = scored.sketched()  # the report's sums and curve come from the sketch's cells
        slope = warn_about(scored.slope(tol=None, max_iter=100, se_type=se_type))
        return sketch._report(slope, (scored.c_statistic(), 0.0), bins=bins, level=level,
                              se_type=se_type)

    def solve(self, *, se_type: str = "model") -> ShiftFit:
        """The shift of the rows from the sketch of :attr:`scored` (the pass that validates
        them), or with exact passes where the offsets outgrow the sketch."""
        scored = self.scored
        if scored.sketch is None:
            return fit_curve(ExactCurve(self.data), method="newton", se_type=se_type)
        return fit_curve(scored.sketch, method="sketch", se_type=se_type)

    def label_totals(self) -> LabelTotals:
        """The rows, their weight and positives, in the units of :meth:`treated_weights`
        (after the pass that validates the rows)."""
        totals = self._totals
        return LabelTotals(totals.n_rows, totals.weight_sum, totals.positives,
                           totals.scale_exponent)

    def treated_weights(self, cuts: np.ndarray) -> TreatedWeights:
        """The exact weights of each label among the rows of raw score ``f >= cut``, for
        each of ``cuts``: one pass, each row placed among the sorted cuts by a binary search
        and its weight added to its gap's (integer labels without weights count exactly;
        weights are summed in float64, in the units of :meth:`label_totals`), then sums from
        the top. O(n log k), no sort of the rows."""
        cuts = np.asarray(cuts, dtype=np.float64)
        order = np.argsort(cuts, kind="stable")
        # Padded with NaN to a power of two above the cuts' number, as the kernel searches.
        ordered = np.full(1 << cuts.size.bit_length(), np.nan)
        ordered[:cuts.size] = cuts[order]
        arguments, scale = self.data.arguments_in_units(self._totals.scale_exponent)
        offsets, _, _, labels, weights, has_weights = arguments
        ranges = row_ranges(self.data.n_rows)
        parts = np.zeros((len(ranges), ordered.size, 2))
        in_threads([partial(_kernels.weights_by_gap, offsets, labels, weights, has_weights,
                            scale, ordered, start, stop, parts[t])
                    for t, (start, stop) in enumerate(ranges)])
        by_gap = parts.sum(axis=0)[:cuts.size + 1]
        from_top = np.cumsum(by_gap[::-1], axis=0)[::-1]  # row g: the gaps g, g + 1, ...
        at_or_above = np.empty((cuts.size, 2))
        at_or_above[order] = from_top[1:]
        zeros = np.zeros(cuts.size)
        return TreatedWeights(at_or_above[:, 0], at_or_above[:, 1], zeros, zeros, zeros)

    @cached_property
    def _totals(self) -> ScanTotals:
        """The totals of the rows, from the validating pass of :attr:`scored`."""
        scored = self.scored
        return scored.sketch._scanned if scored.sketch is not None else scan_totals(self.data)

    def spline(self) -> RowsSpline:
        """The rows as the smooth calibration curve's summary: the fit's sums from their
        sketch (filled by the pass that validates them), the statistics on the rows."""
        return RowsSpline(self.scored)

    def labelled_rows(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Labels, offsets (log-odds) and weights, validated (for lowess)."""
        scored = self.scored
        return scored.data.labels, np.asarray(scored.data.offsets), scored.data.weights

    @cached_property
    def scored(self) -> ScoredArrays:
        """:class:`ScoredArrays` of the rows, after one validating pass."""
        data = self.data
        if np.ndim(data.offsets) == 0:
            raise InputError("offset must be an array of raw scores: a recalibration slope "
                             "needs them to vary", argument="offset", value=data.offsets)
        try:
            return ScoredArrays(data, Sketch._from_prepared(data, robust=self.robust))
        except CellBudgetExceeded as error:
            # Offsets too spread to sketch: the slope's exact passes need no sketch (its
            # pass, given up, validated the rows); the report, which needs the cells, says
            # so.
            return ScoredArrays(data, None, error)


@dataclass(frozen=True)
class ScoredArrays:
    """Labels with an array of raw scores in memory: their sketch, filled by the one pass
    that validates them, and what only the rows themselves give."""

    data: Prepared
    sketch: Sketch | None  # None where the offsets outgrow the sketch's cell budget
    too_wide: CellBudgetExceeded | None = None

    def sketched(self) -> Sketch:
        """The sketch, or the budget's error where there is none."""
        if self.sketch is None:
            raise self.too_wide  # type: ignore[misc]
        return self.sketch

    def exact_slope_curve(self) -> ArraySlopeCurve:
        """The exact curve for slopes too steep for the sketch, or separation inside one of
        its cells; its first pass is the sketch's."""
        curve = ArraySlopeCurve(self.data.labels, self.data.offsets, self.data.weights)
        curve.passes = 1
        return curve

    def slope(self, *, tol: float | None, max_iter: int, se_type: str) -> SlopeFit:
        """The slope from the sketch, or from exact passes where the sketch cannot vouch for
        its sums."""
        options = {"tol": tol, "max_iter": max_iter, "se_type": se_type}
        if self.sketch is None:  # offsets beyond the cell budget
            return fit_slope_curve(self.exact_slope_curve(), method="exact", **options)
        result = fit_slope_curve(self.sketch, method="sketch", **options)
        if result.status == "beyond_sketch" or result.truncation > MAX_TRUNCATION:
            result = fit_slope_curve(self.exact_slope_curve(), method="exact", **options)
        return result

    def c_statistic(self) -> float:
        """The exact c-statistic of the rows (a sort)."""
        return c_statistic(self.data.labels, self.data.offsets, self.data.weights)



class RowsSpline(SketchSpline):
    """:class:`SketchSpline` of the rows' sketch, with the rows themselves as the scores'
    distribution: ICI, E50, E90 and Emax exactly on the rows (half-width 0).

    The fit stays on the sketch: its sums agree with the rows' to 1e-15 (the Taylor
    remainder at the default grid), and each Newton iteration costs O(cells), not O(n).
    """

    def __init__(self, scored: ScoredArrays) -> None:
        super().__init__(scored.sketched())
        self._data = scored.data

    def score_points(self) -> tuple[np.ndarray, np.ndarray | None, float]:
        data = self._data
        weights = None if data.weights is None else np.asarray(data.weights, np.float64)
        # float64 whatever the scores' dtype (float16 too), as the kernel reads them.
        return np.asarray(data.offsets, np.float64), weights, 0.0

    def farthest_score(self) -> tuple[int, float]:
        """The row whose score lies farthest from 0, and that score (for errors)."""
        offsets = np.asarray(self._data.offsets)
        i = int(np.argmax(np.abs(offsets)))
        return i, float(offsets[i])


def scan_totals(data: Prepared) -> ScanTotals:
    """One pass: validate and total, without tables; a second only for weights whose sum
    is not ordinary (`passes.rescaled_pass`), the totals then in the units it gives."""
    scanned, exponent = rescaled_pass(data, _scan_totals, lambda totals: totals)
    return replace(scanned, scale_exponent=exponent)


def _scan_totals(data: Prepared) -> ScanTotals:
    ranges = row_ranges(data.n_rows)
    if data.weights is None and np.ndim(data.offsets) == 0 and data.labels.dtype.kind in "biu":
        return _count_labels(data, ranges)
    stats = np.zeros((len(ranges), N_STATS))
    arguments = data.kernel_arguments
    in_threads([partial(_kernels.totals, *arguments, start, stop, stats[t])
                for t, (start, stop) in enumerate(ranges)])
    raise_for_bad_rows(data, stats[:, S_FIRST_BAD])

    def total(column: int) -> float:  # value plus compensation
        return float(np.sum(stats[:, column]) + np.sum(stats[:, column + 1]))

    return ScanTotals(
        n_rows=data.n_rows, weight_sum=total(S_WEIGHT), positives=total(S_POSITIVES),
        active_negatives=total(S_ACTIVE_NEG), active_positives=total(S_ACTIVE_POS),
        weighted_offset=total(S_WEIGHTED_OFFSET),
        offset_min=float(stats[:, S_OFFSET_MIN].min()),
        offset_max=float(stats[:, S_OFFSET_MAX].max()),
    )


def _count_labels(data: Prepared, ranges: list[tuple[int, int]]) -> ScanTotals:
    """Totals of unweighted integer labels at a constant offset: counts, exact."""
    labels = data.kernel_arguments[3]
    out = np.zeros((len(ranges), 2), dtype=np.int64)
    in_threads([partial(_kernels.count_labels, labels, start, stop, out[t])
                for t, (start, stop) in enumerate(ranges)])
    raise_for_bad_rows(data, out[:, 1])
    n_rows = labels.shape[0]
    positives = int(out[:, 0].sum())
    offset = float(data.offsets)
    return ScanTotals(n_rows, float(n_rows), float(positives), float(n_rows - positives),
                      float(positives), offset * n_rows, offset, offset)


class ExactCurve:
    """The exact curve over in-memory arrays, with numba: each evaluation is one pass."""

    def __init__(self, data: Prepared) -> None:
        scanned = scan_totals(data)
        data = data.in_units(scanned.scale_exponent)
        self._data = data
        self._arguments = data.kernel_arguments
        self._ranges = row_ranges(data.n_rows)
        self.totals = scanned.curve_totals()
        self.passes = 1

    def evaluate(self, shift: float) -> Terms:
        self.passes += 1
        n = _kernels.N_TERMS
        parts = np.zeros((len(self._ranges), 2 * n))
        in_threads([partial(_kernels.exact_terms, *self._arguments, float(shift), start, stop,
                            parts[t]) for t, (start, stop) in enumerate(self._ranges)])
        terms = terms_from_sums(np.stack([parts[:, :n].sum(axis=0), parts[:, n:].sum(axis=0)],
                                         axis=1))
        return with_log_parts(terms, float(shift), self.totals.weight_sum, partial(
            exact_log_parts, self._arguments, self._ranges))

    def robust_meat(self, shift: float) -> float:
        """``Σ w² (y - σ(offset + shift))²``, in numpy: one more pass."""
        self.passes += 1
        negative, positive = _label_parts(self._data)
        return squared_residuals(negative, positive,
                                 np.asarray(self._data.offsets, dtype=np.float64) + shift)


class ConstantCurve:
    """A constant offset (none is 0): every sum in closed form from the two label totals."""

    def __init__(self, totals: ScanTotals, offset: float,
                 squared: tuple[float, float, float] | None = None) -> None:
        self._rows = ArrayCurve(np.array([1.0, 0.0]), np.full(2, offset),
                                np.array([totals.active_positives, totals.active_negatives]),
                                scale_exponent=totals.scale_exponent)
        self.totals = totals.curve_totals()
        self.passes = 1
        self._offset, self._squared = offset, squared

    def evaluate(self, shift: float) -> Terms:
        return self._rows.evaluate(shift)

    def robust_meat(self, shift: float) -> float:
        """``σ² Σ a² - 2 σ σ(-z) Σ a b + σ(-z)² Σ b²`` for the label parts ``a = w (1 - y)``,
        ``b = w y``: the rows share ``z``, so three sums of squares serve every shift."""
        if self._squared is None:
            raise InputError("se_type='robust' needs the w² sums, which this curve was made "
                             "without", argument="se_type", value="robust")
        up, down = sigmoid_pair(self._offset + shift)
        a, ab, b = self._squared
        return float(up * up * a - 2.0 * up * down * ab + down * down * b)


def _label_parts(data: Prepared) -> tuple[np.ndarray, np.ndarray]:
    """``w (1 - y)`` and ``w y`` of every row, float64."""
    y = data.labels.astype(np.float64, copy=False)
    w = 1.0 if data.weights is None else data.weights.astype(np.float64, copy=False)
    return w * (1.0 - y), w * y


def _squared_label_sums(data: Prepared, exponent: int) -> tuple[float, float, float]:
    """``Σ a², Σ a b, Σ b²`` of the label parts in units of ``2**exponent``: the w² sums of
    a constant offset (rows of infinite offset agree with their label and add nothing)."""
    negative, positive = _label_parts(data.in_units(exponent))
    finite = np.isfinite(data.offsets) if np.ndim(data.offsets) else True
    negative, positive = negative * finite, positive * finite
    return (float(np.sum(negative * negative)), float(np.sum(negative * positive)),
            float(np.sum(positive * positive)))
