"""The calibration report: the shift, the slope, Miller's tests, Spiegelhalter's z, the Brier
score, the c-statistic and a binned calibration curve, from one summary of the data.

Every statistic but the c-statistic is a sum over rows of an analytic function of the offset,
split by label, so a sketch gives it exactly (a Taylor series on its tables, to rounding).
The c-statistic needs the order of rows within a cell: exact from arrays in memory (a sort),
and from a sketch only up to the pairs that share a cell, with that bound reported beside it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

from .._core import jsonsafe as _json
from .._core import kernels as _kernels
from .._core.units import ldexp
from .decision import DecisionCurve
from .result import ShiftFit, normal_quantile
from .curve import SmoothCalibrationCurve
from .slope import SlopeFit
from .solve import CurveTotals

__all__ = ["CalibrationReport", "CalibrationCurve", "MillerTests", "PolynomialSums",
           "build_report", "c_statistic", "c_statistic_of_cells", "equal_weight_groups",
           "BRIER_NEGATIVE", "BRIER_POSITIVE", "SPIEGELHALTER_NEGATIVE",
           "SPIEGELHALTER_POSITIVE", "SPIEGELHALTER_VARIANCE"]

# Polynomials in p = σ(offset), by power, summed over each label part (y = 0, y = 1):
# the Brier score's (y - p)², Spiegelhalter's (y - p)(1 - 2p) and its variance
# (1 - 2p)² p (1 - p).
BRIER_NEGATIVE = np.array([0.0, 0.0, 1.0])
BRIER_POSITIVE = np.array([1.0, -2.0, 1.0])
SPIEGELHALTER_NEGATIVE = np.array([0.0, -1.0, 2.0])
SPIEGELHALTER_POSITIVE = np.array([1.0, -3.0, 2.0])
SPIEGELHALTER_VARIANCE = np.array([0.0, 1.0, -5.0, 8.0, -4.0])


class PolynomialSums(Protocol):
    """``(Σ w (1 - y) P(p), Σ w y Q(p))`` for polynomials ``P``, ``Q`` in ``p = σ(offset)``."""

    def __call__(self, negative: np.ndarray, positive: np.ndarray) -> tuple[float, float]: ...


class MillerTests(NamedTuple):
    """Miller's likelihood-ratio tests of the recalibration line ``a + b · offset``:
    ``a = 0, b = 1`` jointly (2 df), ``a = 0`` given ``b = 1`` (1 df, the shift's own
    test) and ``b = 1`` with ``a`` free (1 df). Each statistic is a difference of
    deviances (twice the total loss)."""

    joint: float
    joint_pvalue: float
    intercept: float
    intercept_pvalue: float
    slope: float
    slope_pvalue: float


@dataclass(frozen=True)
class CalibrationCurve:
    """Observed against predicted positives in bins of about equal weight (consecutive
    cells of the sketch), with Wilson score intervals of the observed rate."""

    predicted: np.ndarray
    observed: np.ndarray
    weight: np.ndarray
    low: np.ndarray
    high: np.ndarray
    level: float


@dataclass(frozen=True, repr=False)
class CalibrationReport:
    """Where a model's raw scores stand against the labels, in van Calster's hierarchy.

    Attributes
    ----------
    shift : ShiftFit
        Calibration in the large: the shift of the scores with slope 1 (``fit``), with its
        interval, likelihood-ratio test and O/E.
    slope : SlopeFit
        Weak calibration: the logistic recalibration ``a + b · offset``. Its ``intercept``
        is what R's ``val.prob`` prints as "Intercept", not the calibration in the large.
    miller : MillerTests
    spiegelhalter_z, spiegelhalter_pvalue : float
        ``Σ w (y - p)(1 - 2p) / sqrt(Σ w (1 - 2p)² p (1 - p))`` with ``p = σ(offset)``,
        two-sided.
    brier : float
        ``Σ w (y - p)² / Σ w`` (for soft labels, its expectation over labels drawn with
        probability ``y``: ``Σ w [(1 - y) p² + y (1 - p)²] / Σ w``).
    brier_scaled : float
        ``1 - brier / (ȳ (1 - ȳ))``, against predicting the mean label everywhere.
    log_loss : float
        Weighted mean cross-entropy of the scores as they are.
    c_statistic : float
        The area under the ROC curve, ties counting one half (Harrell's C, scikit-learn's
        ``roc_auc_score``, ``Hmisc::somers2``).
    c_statistic_bound : float
        Its largest possible error: 0 when computed from the rows (in memory); from a sketch,
        half the share of positive-negative pairs that share a cell.
    curve : CalibrationCurve
    ici, e50, e90 : float
        The weighted mean, median and 90th percentile of ``|observed - predicted|`` over the
        bins of ``curve``. Loess-based tools (``val.prob``'s ``Eavg`` / ``E90``,
        ``CalibrationCurves``) smooth the rows instead and give somewhat different values.
    r2 : float
        Nagelkerke's R², ``(1 - exp(-LR / n)) / (1 - exp(-L0 / n))``, with ``LR`` the
        likelihood-ratio statistic of the recalibration line against the intercept alone,
        ``L0`` the intercept alone's deviance and ``n = Σ w`` (``val.prob``'s ``R2``).
    discrimination, discrimination_chi2, discrimination_pvalue : float
        ``D = (LR - 1) / n``, ``LR`` and its chi-square(1) p-value (``val.prob``'s ``D``,
        ``D:Chi-sq``; it prints ``D:p`` as NA).
    unreliability, unreliability_pvalue : float
        ``U = (χ² - 2) / n`` with ``χ²`` Miller's joint statistic (``a = 0, b = 1``), and
        its chi-square(2) p-value (``val.prob``'s ``U``, ``U:p``; ``U:Chi-sq`` is
        ``miller.joint``).
    quality : float
        ``Q = D - U`` (``val.prob``'s ``Q``).
    decision : DecisionCurve or None
        The decision curve, where ``validate(..., decision=True)`` asked for it.
    """

    shift: ShiftFit
    slope: SlopeFit
    miller: MillerTests
    spiegelhalter_z: float
    spiegelhalter_pvalue: float
    brier: float
    brier_scaled: float
    log_loss: float
    c_statistic: float
    c_statistic_bound: float
    curve: CalibrationCurve
    ici: float
    e50: float
    e90: float
    r2: float
    discrimination: float
    discrimination_chi2: float
    discrimination_pvalue: float
    unreliability: float
    unreliability_pvalue: float
    quality: float
    decision: DecisionCurve | None = None
    #: The smooth curve (``validate(..., curve="rcs" | "loess")``), or None.
    smooth_curve: SmoothCalibrationCurve | None = None

    @property
    def n_rows(self) -> int:
        return self.shift.n_rows

    def to_dict(self, *, json_safe: bool = False) -> dict[str, Any]:
        """The statistics as plain Python values (the curve as lists); the intervals by
        ``confint``'s default method (Wald's where ``se_type`` is ``"robust"``).

        With ``json_safe=True``, the same values as strict JSON holds them (``inf``,
        ``-inf`` and ``nan`` as the strings ``"inf"``, ``"-inf"``, ``"nan"``; numpy scalars
        as Python numbers): ``json.dumps(report.to_dict(json_safe=True), allow_nan=False)``
        succeeds, and is what ``logitshift ... --json`` prints.
        """
        low, high = self.shift.confint()
        record = {
            "n_rows": self.n_rows, "weight_sum": self.shift.weight_sum,
            "positives": self.shift.positives,
            "calibration_in_the_large": self.shift.shift, "shift_se": self.shift.se,
            "se_type": self.shift.se_type,
            "shift_ci_low": low, "shift_ci_high": high,
            "observed_expected": self.shift.observed_expected.ratio,
            "intercept": self.slope.intercept, "slope": self.slope.slope,
            "se_intercept": self.slope.se_intercept, "se_slope": self.slope.se_slope,
            "slope_status": self.slope.status,
            **{f"miller_{name}": value for name, value in self.miller._asdict().items()},
            "spiegelhalter_z": self.spiegelhalter_z,
            "spiegelhalter_pvalue": self.spiegelhalter_pvalue,
            "brier": self.brier, "brier_scaled": self.brier_scaled, "log_loss": self.log_loss,
            "c_statistic": self.c_statistic, "c_statistic_bound": self.c_statistic_bound,
            "dxy": 2.0 * self.c_statistic - 1.0,
            "ici": self.ici, "e50": self.e50, "e90": self.e90, "r2": self.r2,
            "discrimination": self.discrimination,
            "discrimination_chi2": self.discrimination_chi2,
            "discrimination_pvalue": self.discrimination_pvalue,
            "unreliability": self.unreliability,
            "unreliability_pvalue": self.unreliability_pvalue, "quality": self.quality,
            "curve": {name: getattr(self.curve, name).tolist()
                      for name in ("predicted", "observed", "weight", "low", "high")},
        }
        if self.decision is not None:
            record["decision"] = self.decision.to_dict()
        if self.smooth_curve is not None:
            record["smooth_curve"] = self.smooth_curve.to_dict()
        return _json.json_safe(record) if json_safe else record

    def __repr__(self) -> str:
        c = f"{self.c_statistic:.6g}"
        if self.c_statistic_bound > 0:
            c += f" ± {self.c_statistic_bound:.2g}"
        rows = [
            ("Dxy", f"{2.0 * self.c_statistic - 1.0:.6g}"), ("C (ROC)", c),
            ("R2", f"{self.r2:.6g}"), ("D", f"{self.discrimination:.6g}"),
            ("U", f"{self.unreliability:.6g}"), ("Q", f"{self.quality:.6g}"),
            ("Brier", f"{self.brier:.6g}"), ("Brier scaled", f"{self.brier_scaled:.6g}"),
            ("Log loss", f"{self.log_loss:.6g}"),
            ("In the large", f"{self.shift.shift:.6g} (se {self.shift.se:.3g})"),
            ("O/E", f"{self.shift.observed_expected.ratio:.6g}"),
            ("Intercept", f"{self.slope.intercept:.6g}"), ("Slope", f"{self.slope.slope:.6g}"),
            ("Miller a=0,b=1", f"{self.miller.joint:.6g} (p = {self.miller.joint_pvalue:.3g})"),
            ("Miller a=0|b=1", f"{self.miller.intercept:.6g} "
                               f"(p = {self.miller.intercept_pvalue:.3g})"),
            ("Miller b=1", f"{self.miller.slope:.6g} (p = {self.miller.slope_pvalue:.3g})"),
            ("S:z", f"{self.spiegelhalter_z:.6g}"), ("S:p", f"{self.spiegelhalter_pvalue:.3g}"),
            ("ICI", f"{self.ici:.6g}"), ("E50", f"{self.e50:.6g}"), ("E90", f"{self.e90:.6g}"),
        ]
        width = max(len(name) for name, _ in rows)
        return "CalibrationReport(\n" + "\n".join(
            f"  {name.ljust(width)}  {value}" for name, value in rows) + "\n)"


def _chi_square_pvalue(statistic: float, df: int) -> float:
    if df == 1:
        return math.erfc(math.sqrt(0.5 * statistic))
    if df == 2:
        return math.exp(-0.5 * statistic)
    raise ValueError(df)  # pragma: no cover


def _deviance_difference(shift: ShiftFit, higher: float, lower: float) -> float:
    """``2 Σ w · (higher - lower)`` for two mean losses of the same rows: the difference of
    the means first, then the weights in the sums' units (``2**scale_exponent``), so that it
    leaves the doubles only where the statistic itself does (weights of 1e300, scores of
    ±1e300), never as inf - inf."""
    difference = higher - lower
    if difference == 0 or math.isnan(difference):
        return difference
    units = shift._scale_exponent
    weight = shift._data.totals.weight_sum if shift._data is not None else ldexp(
        shift.weight_sum, -units)
    return ldexp(difference * weight, units + 1)


def miller_tests(shift: ShiftFit, slope: SlopeFit) -> MillerTests:
    """Miller's three tests from the mean losses at ``(0, 1)``, ``(shift, 1)`` and the
    recalibration line."""
    recalibrated = slope.loss if slope.converged else math.nan
    # Rounding can make a difference of deviances a hair negative; NaN (no slope fit) stays
    # NaN, where max(0.0, nan) would say 0.
    joint = _deviance_difference(shift, shift.loss_at_zero, recalibrated)
    joint = 0.0 if joint < 0 else joint
    intercept = max(0.0, _deviance_difference(shift, shift.loss_at_zero, shift.loss))
    line = _deviance_difference(shift, shift.loss, recalibrated)
    line = 0.0 if line < 0 else line
    return MillerTests(joint, _chi_square_pvalue(joint, 2), intercept,
                       _chi_square_pvalue(intercept, 1), line, _chi_square_pvalue(line, 1))


def equal_weight_groups(weight: np.ndarray, bins: int) -> np.ndarray:
    """Group numbers ``0, 1, ...`` of consecutive cells, about ``1 / bins`` of the total
    weight each: a cell joins the group in which its middle falls."""
    cumulative = np.cumsum(weight)
    middle = (cumulative - 0.5 * weight) / cumulative[-1]
    group = np.minimum((middle * bins).astype(np.intp), bins - 1)
    # A cell heavier than a group's share leaves groups empty: number the rest consecutively.
    return np.unique(group, return_inverse=True)[1]


def _wilson(observed: np.ndarray, weight: np.ndarray, z: float
            ) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score intervals of ``observed / weight``, written to stay finite for weights
    of any size: ``(n p + z²/2 ± z sqrt(n p (1 - p) + z²/4)) / (n + z²)``."""
    rate = observed / weight
    centre = observed + 0.5 * z * z
    spread = z * np.sqrt(observed * (1.0 - rate) + 0.25 * z * z)
    total = weight + z * z
    return np.maximum((centre - spread) / total, 0.0), np.minimum((centre + spread) / total, 1.0)


def calibration_curve(weight: np.ndarray, observed: np.ndarray, expected: np.ndarray,
                      bins: int, level: float) -> CalibrationCurve:
    """The binned curve from per-cell weights, observed and expected positives."""
    group = equal_weight_groups(weight, bins)
    bin_weight = np.bincount(group, weights=weight)
    bin_observed = np.bincount(group, weights=observed)
    low, high = _wilson(bin_observed, bin_weight, normal_quantile(level))
    return CalibrationCurve(predicted=np.bincount(group, weights=expected) / bin_weight,
                            observed=bin_observed / bin_weight, weight=bin_weight, low=low,
                            high=high, level=level)


def _weighted_quantile(values: np.ndarray, weight: np.ndarray, share: float) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weight[order])
    return float(values[order][np.searchsorted(cumulative, share * cumulative[-1])])


def c_statistic(labels: np.ndarray, offsets: np.ndarray, weights: np.ndarray | None
                ) -> float:
    """The exact tie-aware area under the ROC curve of ``offsets`` for ``labels``:
    ``Σ_{positive i, negative j} w_i w_j ([f_i > f_j] + [f_i = f_j] / 2) / (P N)``, a soft
    label counting as a positive of weight ``w y`` and a negative of weight ``w (1 - y)``.
    One sort, O(n log n): for 0/1 labels without weights, a sort of each class's offsets and
    a merge that counts the pairs exactly (in integers, then one rounding)."""
    if weights is None and labels.dtype.kind in "biu":
        positive = labels.astype(bool, copy=False)
        f = np.asarray(offsets, dtype=np.float64)
        below, ties = _kernels.ordered_pairs(np.sort(f[~positive]), np.sort(f[positive]))
        count = int(np.count_nonzero(positive))
        total = count * (positive.size - count)
        return (2 * int(below) + int(ties)) / (2 * total) if total else math.nan
    y = np.asarray(labels, dtype=np.float64)
    w = np.ones_like(y) if weights is None else _unit_scale(np.asarray(weights, np.float64))
    order = np.argsort(offsets)  # ties are summed together: their order does not matter
    f = np.asarray(offsets, dtype=np.float64)[order]
    positive, negative = (w * y)[order], (w * (1.0 - y))[order]
    starts = np.flatnonzero(np.concatenate([[True], f[1:] != f[:-1]]))
    tied_positive = np.add.reduceat(positive, starts)
    tied_negative = np.add.reduceat(negative, starts)
    below = np.cumsum(tied_negative) - tied_negative
    pairs = float(np.sum(tied_positive * (below + 0.5 * tied_negative)))
    total = float(np.sum(positive)) * float(np.sum(negative))
    return pairs / total if total > 0 else math.nan  # one class only: no pairs to order


def _unit_scale(weights: np.ndarray) -> np.ndarray:
    """The weights times the power of two that brings the largest near 1 (exact): products
    of two weights then neither overflow nor underflow, whatever the weights' scale."""
    largest = float(np.max(weights)) if weights.size else 0.0
    if not 0 < largest < math.inf:
        return weights
    return np.ldexp(weights, -math.frexp(largest)[1])


def c_statistic_of_cells(negative: np.ndarray, positive: np.ndarray) -> tuple[float, float]:
    """The c-statistic from label weights per cell (cells in increasing offset), and its
    largest error: pairs in different cells are ordered, pairs within a cell are counted
    one half, so the error is at most half their share, plus the rounding of the sums
    (``cells · eps``)."""
    both = _unit_scale(np.concatenate([negative, positive]))
    negative, positive = both[:negative.size], both[negative.size:]
    below = np.cumsum(negative) - negative
    total = float(np.sum(positive)) * float(np.sum(negative))
    same_cell = float(np.sum(positive * negative))
    if not total > 0:  # one class only: no pairs to order
        return math.nan, math.nan
    return (float(np.sum(positive * (below + 0.5 * negative))) / total,
            0.5 * same_cell / total + negative.size * 2.0 ** -52)


def build_report(shift: ShiftFit, slope: SlopeFit, sums: PolynomialSums,
                 totals: CurveTotals, cells: tuple[np.ndarray, np.ndarray, np.ndarray],
                 c: tuple[float, float], *, bins: int, level: float) -> CalibrationReport:
    """The report from the two fits, the polynomial sums at the offsets as they are, the
    totals and per-cell weight, observed and expected positives in the same units as those
    sums (2**scale_exponent of the weights), and the c-statistic with its bound."""
    total = totals.weight_sum
    brier = sum(sums(BRIER_NEGATIVE, BRIER_POSITIVE)) / total
    mean = totals.positives / total
    numerator = sum(sums(SPIEGELHALTER_NEGATIVE, SPIEGELHALTER_POSITIVE))
    variance = sum(sums(SPIEGELHALTER_VARIANCE, SPIEGELHALTER_VARIANCE))
    # z grows with the square root of the weights' units: frequency weights count rows.
    units = totals.scale_exponent
    root_units = ldexp(1.0, units // 2) * (math.sqrt(2.0) if units % 2 else 1.0)
    z = numerator / math.sqrt(variance) * root_units if variance > 0 else math.nan
    curve = calibration_curve(*cells, bins=bins, level=level)
    error = np.abs(curve.observed - curve.predicted)
    miller = miller_tests(shift, slope)
    return CalibrationReport(
        shift=shift, slope=slope, miller=miller,
        spiegelhalter_z=z, spiegelhalter_pvalue=math.erfc(abs(z) / math.sqrt(2.0)),
        brier=brier,
        brier_scaled=1.0 - brier / (mean * (1.0 - mean)) if 0 < mean < 1 else math.nan,
        log_loss=shift.loss_at_zero, c_statistic=c[0], c_statistic_bound=c[1], curve=curve,
        ici=float(np.sum(curve.weight * error) / np.sum(curve.weight)),
        e50=_weighted_quantile(error, curve.weight, 0.5),
        e90=_weighted_quantile(error, curve.weight, 0.9),
        **_val_prob_indexes(shift, slope, miller, mean))


def _val_prob_indexes(shift: ShiftFit, slope: SlopeFit, miller: MillerTests, mean: float
                      ) -> dict[str, float]:
    """``val.prob``'s R², D, U and Q, with ``n = Σ w``: from the deviance of the intercept
    alone (the labels' entropy at their mean ``mean``), the deviance at the scores as they
    are (``LR`` is the first less the second: negative for scores worse than the mean) and
    Miller's joint statistic.

    Each index is a deviance per unit of weight, so each is formed from the mean losses:
    ``LR / n = 2 (entropy - loss at 0)``, ``R² = (1 - e^{-LR/n}) / (1 - e^{-2 entropy})``,
    ``D = LR / n - 1 / n``, ``U = 2 (loss at 0 - loss of the line) - 2 / n``. A number
    beyond the doubles (R² of scores 1e4 logits off, whose ``e^{-LR/n}`` is ``e^{1e4}``)
    is its correctly rounded ``-inf``, never an error.
    """
    n = shift.weight_sum  # inf where the weights sum beyond the doubles: 1 / n is then 0
    entropy = -sum(p * math.log(p) for p in (mean, 1.0 - mean) if p > 0)
    ratio = _deviance_difference(shift, entropy, shift.loss_at_zero)
    with np.errstate(over="ignore"):
        per_weight = 2.0 * float(np.float64(entropy) - shift.loss_at_zero)
        explained = -float(np.expm1(np.float64(-per_weight)))
        r2 = (explained / -math.expm1(-2.0 * entropy) if entropy > 0 else math.nan)
        discrimination = per_weight - 1.0 / n
        recalibrated = slope.loss if slope.converged else math.nan
        joint = 2.0 * float(np.float64(shift.loss_at_zero) - recalibrated)
    joint = 0.0 if joint < 0 else joint
    # Q = D - U = (LR - χ²)/n + 1/n, formed so: with weights summing to 1e-321, D and U are
    # each -inf (their -1/n, -2/n), and Q is +inf, not inf - inf.
    return {"r2": r2, "discrimination": discrimination, "discrimination_chi2": ratio,
            "discrimination_pvalue": _chi_square_pvalue(ratio, 1) if ratio > 0 else 1.0,
            "unreliability": joint - 2.0 / n,
            "unreliability_pvalue": miller.joint_pvalue,
            "quality": (per_weight - joint) + 1.0 / n}
