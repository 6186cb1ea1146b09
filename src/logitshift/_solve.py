"""The shift as a one-dimensional root: closed form, bracket and safeguarded Newton.

The solver sees the data only through a *curve*: an object whose ``evaluate(shift)`` returns
the label-split sums (:class:`Terms`) of the whole data at that shift, and whose attributes give
the few totals the bracket needs (:class:`CurveTotals`). The numpy reference curve here holds
the arrays; other backends provide the same interface from a sketch of the data, so one solver
and one result type serve them all.
"""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass
from typing import Protocol

import numpy as np

from ._losses import sigmoid_abs, softplus, times
from ._validate import check_infinite_offsets

__all__ = ["Terms", "CurveTotals", "Curve", "ArrayCurve", "solve_curve", "DEFAULT_TOL"]

#: Newton stops once a step is below ``DEFAULT_TOL * max(1, |shift|)``. Newton converges
#: quadratically, so the step applied last leaves an error far below this.
DEFAULT_TOL = 1e-14


@dataclass(frozen=True)
class Terms:
    """Sums over rows at one shift, with ``z = offset + shift``.

    ``negative = Σ w(1-y) σ(z)`` and ``positive = Σ w y σ(-z)`` are the two label parts of the
    gradient; ``gradient`` is their difference, computed without subtracting them (see
    :meth:`ArrayCurve.evaluate`); ``*_curvature`` are ``Σ w(1-y) σ(z)σ(-z)`` and
    ``Σ w y σ(z)σ(-z)``; ``loss`` is the total (not mean) weighted cross-entropy.
    """

    negative: float
    positive: float
    gradient: float
    negative_curvature: float
    positive_curvature: float
    loss: float

    @property
    def hessian(self) -> float:
        """``d² loss / d shift² = Σ w σ(z) σ(-z)``: the observed information."""
        return self.negative_curvature + self.positive_curvature

    def __add__(self, other: Terms) -> Terms:
        return Terms(*(mine + theirs for mine, theirs in zip(astuple(self), astuple(other))))


@dataclass(frozen=True)
class CurveTotals:
    """What the solver needs to know of the data besides its sums at a shift.

    ``n_rows``, ``weight_sum`` and ``positives`` describe every row. The rest describe only
    the rows that determine the shift: those with positive weight and a finite offset (a row
    whose infinite offset agrees with its label has zero loss at every shift).
    """

    n_rows: int
    weight_sum: float
    positives: float
    active_positives: float  # Σ w y
    active_negatives: float  # Σ w (1 - y)
    offset_min: float
    offset_max: float
    offset_mean: float  # weighted by w


class Curve(Protocol):
    totals: CurveTotals
    passes: int  # passes over the data so far

    def evaluate(self, shift: float) -> Terms: ...


def mean_within(mean: float, low: float, high: float) -> float:
    """A weighted mean kept inside the range it averages: rounding can put it just outside,
    and offsets of ±1e306 can make the sum overflow to nan (then the midpoint stands in)."""
    if not math.isfinite(mean):
        return 0.5 * low + 0.5 * high
    return min(max(mean, low), high)


def _sum(values: np.ndarray | float) -> float:
    # numpy's pairwise summation: error O(log n · eps) relative to the sum of |terms|.
    return float(np.sum(values))


class ArrayCurve:
    """The numpy reference curve over in-memory arrays (every evaluation is one pass).

    ``labels``, ``offsets`` and ``weights`` must already be validated; ``offsets`` may be a
    scalar. The arrays are read, never written.
    """

    def __init__(
        self,
        labels: np.ndarray,
        offsets: np.ndarray | float,
        weights: np.ndarray | None,
    ) -> None:
        y = labels.astype(np.float64, copy=False)
        w = np.ones_like(y) if weights is None else weights.astype(np.float64, copy=False)
        n_rows = y.shape[0]
        weight_sum = _sum(w)
        positives = _sum(w * y)
        f = np.asarray(offsets, dtype=np.float64)

        check_infinite_offsets(labels, offsets, weights)
        if f.ndim and not np.isfinite(f).all():
            # Rows with an infinite offset that agrees with the label add nothing.
            keep = np.isfinite(f)
            y, w, f = y[keep], w[keep], f[keep]

        self._weights = w
        self._negative_weight = w * (1.0 - y)
        self._positive_weight = w * y
        active_weight = _sum(w)
        if f.ndim == 0:
            offset_min = offset_max = offset_mean = float(f)
        elif active_weight > 0:
            used = f[w > 0]
            offset_min, offset_max = float(used.min()), float(used.max())
            offset_mean = mean_within(_sum(w * f) / active_weight, offset_min, offset_max)
        else:  # nothing to fit; fit_curve says so
            offset_min, offset_max, offset_mean = math.inf, -math.inf, math.nan
        self._offsets = f
        self.passes = 0
        self.totals = CurveTotals(
            n_rows=n_rows,
            weight_sum=weight_sum,
            positives=positives,
            active_positives=_sum(self._positive_weight),
            active_negatives=_sum(self._negative_weight),
            offset_min=offset_min,
            offset_max=offset_max,
            offset_mean=offset_mean,
        )

    def evaluate(self, shift: float) -> Terms:
        """All sums at ``shift`` in one pass.

        Notes
        -----
        With ``t = σ(-|z|) <= 1/2``, a row's gradient is ``w(1-y) - w t`` where ``z > 0`` and
        ``w t - w y`` where ``z <= 0``. Summing the weights (``Σ_{z>0} w(1-y) - Σ_{z<=0} w y``,
        exact for integer weights) apart from the tails (``±w t``) keeps the gradient accurate
        to ulps of ``Σ w t <= 2 Σ w σ(z)σ(-z)``: the root is then accurate to a few ulps
        even when confident mistakes on both sides (``σ ≈ 1`` against ``σ ≈ 1``) would cancel
        in ``negative - positive``.
        """
        self.passes += 1
        z = self._offsets + shift
        right = z > 0
        near, tail = sigmoid_abs(z)
        a, b, w = self._negative_weight, self._positive_weight, self._weights
        curvature = near * tail
        loss = times(a, softplus(z)) + times(b, softplus(-z))
        return Terms(
            negative=_sum(a * np.where(right, near, tail)),
            positive=_sum(b * np.where(right, tail, near)),
            gradient=_sum(np.where(right, a, -b)) + _sum(np.where(right, -tail, tail) * w),
            negative_curvature=_sum(a * curvature),
            positive_curvature=_sum(b * curvature),
            loss=_sum(loss),
        )


def pseudo_rows(totals: CurveTotals, pseudo_count: float) -> ArrayCurve:
    """One positive and one negative row of weight ``pseudo_count`` at the mean offset."""
    offset = np.full(2, totals.offset_mean)
    return ArrayCurve(np.array([1.0, 0.0]), offset, np.full(2, pseudo_count))


@dataclass(frozen=True)
class Solution:
    """What :func:`solve_curve` decided and why, before it becomes a :class:`ShiftFit`."""

    shift: float
    status: str
    converged: bool
    iterations: int
    gradient: float  # at the last shift evaluated


def _log_ratio_step(terms: Terms) -> float:
    """Newton step on ``log(negative) - log(positive)``, or nan where that is undefined.

    This function of the shift has slope in (0, 2), tends to slope 1 far from the data and is
    exactly linear without offsets, so its Newton step is well scaled from any start, where
    the plain Newton step on the gradient overshoots on its flat tails. At the root the two
    coincide.
    """
    a, b = terms.negative, terms.positive
    if not (a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b)):
        return math.nan
    slope = terms.negative_curvature / a + terms.positive_curvature / b
    if not slope > 0:
        return math.nan
    # log(a / b) = log1p(gradient / b), which keeps the accuracy of the gradient near the root.
    ratio = terms.gradient / b
    log_ratio = math.log1p(ratio) if abs(ratio) < 0.5 else math.log(a) - math.log(b)
    return -log_ratio / slope


def _split(lo: float, hi: float) -> float:
    """A bisection point of ``[lo, hi]`` that takes few steps whatever the bracket's scale:
    0 when it straddles 0 widely, the geometric mean when it spans orders of magnitude on one
    side (offsets of 1e300 make such brackets), the midpoint otherwise."""
    if lo < -1.0 and hi > 1.0:
        return 0.0
    if lo >= 0.0 and hi > 4.0 * max(lo, 1.0):
        return math.sqrt(max(lo, 1.0)) * math.sqrt(hi)
    if hi <= 0.0 and -lo > 4.0 * max(-hi, 1.0):
        return -math.sqrt(max(-hi, 1.0)) * math.sqrt(-lo)
    return 0.5 * lo + 0.5 * hi


def solve_curve(
    curve: Curve,
    *,
    tol: float = DEFAULT_TOL,
    max_iter: int = 100,
) -> Solution:
    """The root of the gradient of ``curve``, which must have positives and negatives.

    Notes
    -----
    With ``ȳ`` the weighted mean label, ``logit(ȳ) - max(offset) <= shift <= logit(ȳ) -
    min(offset)``: at the left end every ``σ(offset + shift) <= ȳ``, so the gradient is <= 0,
    and symmetrically at the right. Newton steps on the log-ratio of the two gradient parts
    start from ``logit(ȳ) - mean(offset)``; a step that leaves the bracket, or fails to halve
    the step before last, is replaced by bisection (geometric while the bracket spans orders of
    magnitude), and every evaluation shrinks the bracket.
    It stops when a step is below ``tol * max(1, |shift|)`` or the bracket is narrower than
    that. Each iteration is one evaluation of the curve.
    """
    totals = curve.totals
    center = math.log(totals.active_positives) - math.log(totals.active_negatives)
    lo = center - totals.offset_max
    hi = center - totals.offset_min
    if lo == hi:  # constant offset: the closed form
        return Solution(lo, "closed_form", True, 0, 0.0)
    shift = min(max(center - totals.offset_mean, lo), hi)
    step = older_step = math.inf
    gradient = math.nan
    for iteration in range(1, max_iter + 1):
        terms = curve.evaluate(shift)
        gradient = terms.gradient
        if gradient == 0:
            return Solution(shift, "converged", True, iteration, gradient)
        if gradient > 0:
            hi = shift
        else:
            lo = shift
        newton = _log_ratio_step(terms)
        target = shift + newton
        if abs(newton) <= tol * max(1.0, abs(shift)):
            # Converged: the last step may be below the spacing of doubles, so that the
            # target rounds onto a bracket end; it is the answer all the same.
            return Solution(min(max(target, lo), hi), "converged", True, iteration, gradient)
        if not (lo < target < hi) or abs(newton) > 0.5 * abs(older_step):
            target = _split(lo, hi)
        older_step, step = step, target - shift
        scale = tol * max(1.0, abs(target))
        if abs(step) <= scale or hi - lo <= scale:
            return Solution(target, "converged", True, iteration, gradient)
        shift = target
    return Solution(shift, "max_iter", False, max_iter, gradient)


def profile_bound(
    curve: Curve,
    shift: float,
    loss: float,
    half_quantile: float,
    direction: int,
    start: float,
    *,
    max_iter: int = 200,
) -> float:
    """The shift on side ``direction`` (+1 or -1) of ``shift`` where the total loss reaches
    ``loss + half_quantile``: one end of a profile-likelihood interval.

    ``D(s) = loss(s) - loss - half_quantile`` is convex with ``D(shift) < 0``. From a point
    beyond the root (``D > 0``, found by doubling the distance ``start``), Newton steps on a
    convex function move monotonically to the root without overshoot.
    """
    if math.isinf(shift):
        if math.copysign(1, shift) == direction:
            return shift
        anchor = -curve.totals.offset_mean
    else:
        anchor = shift
    distance = start
    point = anchor + direction * distance
    excess = curve.evaluate(point).loss - loss - half_quantile
    for _ in range(2100):
        if excess > 0:
            break
        distance *= 2.0
        point = anchor + direction * distance
        excess = curve.evaluate(point).loss - loss - half_quantile
    else:  # pragma: no cover - the loss grows at least linearly away from its minimum
        return direction * math.inf
    for _ in range(max_iter):
        terms = curve.evaluate(point)
        excess = terms.loss - loss - half_quantile
        step = -excess / terms.gradient
        # On the far side of a convex function the steps point back towards the root; one
        # that does not, or that vanishes, means rounding has taken over.
        if not (step * direction < 0) or abs(step) <= 1e-15 * max(1.0, abs(point)):
            break
        point += step
    return point
