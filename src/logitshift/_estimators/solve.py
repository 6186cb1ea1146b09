"""The shift as a one-dimensional root: closed form, bracket and safeguarded Newton.

The solver sees the data only through a *curve*: an object whose ``evaluate(shift)`` returns
the label-split sums (:class:`Terms`) of the whole data at that shift, and whose attributes give
the few totals the bracket needs (:class:`CurveTotals`). The numpy reference curve here holds
the arrays; other backends provide the same interface from a sketch of the data, so one solver
and one result type serve them all.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Protocol

import numpy as np

from .._core.losses import sigmoid_abs, sigmoid_pair, softplus, times
from .._core.units import (TINY, LogPart, ldexp, log_difference, log_ratio, mean_within,
                           weight_exponent)
from .._core.validate import InputError, check_infinite_offsets

__all__ = ["Terms", "LogPart", "CurveTotals", "Curve", "ArrayCurve", "solve_curve",
           "DEFAULT_TOL", "TINY", "weight_exponent", "ldexp", "log_ratio", "squared_residuals",
           "robust_meat_of", "pseudo_count_too_large"]

#: Newton stops once a step is below ``DEFAULT_TOL * max(1, |shift|)``. Newton converges
#: quadratically, so the step applied last leaves an error far below this.
DEFAULT_TOL = 1e-14


#: Where ``log σ(z)`` is written ``z - log1p(e^z)`` with ``z = offset + shift`` kept in two
#: pieces (see :class:`LogPart`): below this, ``σ(z)`` is near or beyond the end of the doubles.
_DEEP = -700.0


@dataclass(frozen=True)
class Terms:
    """Sums over rows at one shift, with ``z = offset + shift``.

    ``negative = Σ w(1-y) σ(z)`` and ``positive = Σ w y σ(-z)`` are the two label parts of the
    gradient; ``gradient`` is their difference, computed without subtracting them (see
    :meth:`ArrayCurve.evaluate`); ``*_curvature`` are ``Σ w(1-y) σ(z)σ(-z)`` and
    ``Σ w y σ(z)σ(-z)``; ``loss`` is the total (not mean) weighted cross-entropy.

    Where a part is below :data:`TINY` (every row of that label is far beyond σ's range on
    its right side: data separated by a gap of more than ~1400 logits), the curve adds its
    logarithm, ``log_negative`` / ``log_positive``; otherwise they are None.
    """

    negative: float
    positive: float
    gradient: float
    negative_curvature: float
    positive_curvature: float
    loss: float
    log_negative: LogPart | None = field(default=None, compare=False)
    log_positive: LogPart | None = field(default=None, compare=False)

    @property
    def hessian(self) -> float:
        """``d² loss / d shift² = Σ w σ(z) σ(-z)``: the observed information."""
        return self.negative_curvature + self.positive_curvature

    @property
    def in_log_space(self) -> bool:
        return self.log_negative is not None or self.log_positive is not None

    def negative_log(self) -> LogPart | None:
        """The logarithm of the negative part: the curve's own where it gave one."""
        if self.log_negative is not None:
            return self.log_negative
        return LogPart.of(self.negative, self.negative_curvature)

    def positive_log(self) -> LogPart | None:
        if self.log_positive is not None:
            return self.log_positive
        return LogPart.of(self.positive, self.positive_curvature)

    def log_hessian(self) -> float:
        """``log(hessian)``, from the parts' logarithms where the Hessian underflows."""
        if self.hessian >= TINY or not self.in_log_space:
            return math.log(self.hessian) if self.hessian > 0 else -math.inf
        total = None
        for part in (self.negative_log(), self.positive_log()):
            if part is not None and part.slope > 0:
                mantissa, exponent = math.frexp(part.slope)
                scaled = LogPart(part.anchor, part.residual + math.log(mantissa), 0.0,
                                 part.exponent + exponent)
                total = scaled if total is None else total + scaled
        return -math.inf if total is None else total.value()

    def __add__(self, other: Terms) -> Terms:
        linear = [getattr(self, f.name) + getattr(other, f.name) for f in fields(Terms)
                  if f.compare]
        log_negative = log_positive = None
        if self.log_negative is not None or other.log_negative is not None:
            log_negative = _add_logs(self.negative_log(), other.negative_log())
        if self.log_positive is not None or other.log_positive is not None:
            log_positive = _add_logs(self.positive_log(), other.positive_log())
        return Terms(*linear, log_negative=log_negative, log_positive=log_positive)


def _add_logs(a: LogPart | None, b: LogPart | None) -> LogPart | None:
    return b if a is None else a + b


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
    #: Every weighted total here and every sum of :class:`Terms` is in units of
    #: ``2**scale_exponent`` of the user's weights (0 but for weights at the ends of the
    #: double range, see :func:`weight_exponent`).
    scale_exponent: int = 0


class Curve(Protocol):
    """``totals`` and ``evaluate(shift)``, both in units of ``2**totals.scale_exponent``."""

    totals: CurveTotals
    passes: int  # passes over the data so far

    def evaluate(self, shift: float) -> Terms: ...

    # Optional, for robust (sandwich) standard errors: ``Σ w² (y - σ(offset + shift))²`` in
    # units of ``2**(2 * totals.scale_exponent)``.
    # def robust_meat(self, shift: float) -> float: ...


def _sum(values: np.ndarray | float) -> float:
    # numpy's pairwise summation: error O(log n · eps) relative to the sum of |terms|.
    return float(np.sum(values))


class ArrayCurve:
    """The numpy reference curve over in-memory arrays (every evaluation is one pass).

    ``labels``, ``offsets`` and ``weights`` must already be validated; ``offsets`` may be a
    scalar. The arrays are read, never written. The weights are in the user's units unless
    ``scale_exponent`` is given, when they are already in units of ``2**scale_exponent``.
    """

    def __init__(
        self,
        labels: np.ndarray,
        offsets: np.ndarray | float,
        weights: np.ndarray | None,
        *,
        scale_exponent: int | None = None,
    ) -> None:
        y = labels.astype(np.float64, copy=False)
        w = np.ones_like(y) if weights is None else weights.astype(np.float64, copy=False)
        if scale_exponent is None:
            with np.errstate(over="ignore"):
                scale_exponent = weight_exponent(
                    _sum(w), (_sum(w * y), _sum(w * (1.0 - y))), lambda: float(np.max(w)))
            if scale_exponent:
                w = np.ldexp(w, -scale_exponent)
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
            with np.errstate(over="ignore", invalid="ignore"):
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
            scale_exponent=scale_exponent,
        )

    def robust_meat(self, shift: float) -> float:
        """``Σ w² (y - σ(offset + shift))²``, the sandwich variance's middle, in units of
        ``2**(2 * scale_exponent)``."""
        return squared_residuals(self._negative_weight, self._positive_weight,
                                 self._offsets + shift)

    def evaluate(self, shift: float) -> Terms:
        """All sums at ``shift`` in one pass.

        Notes
        -----
        With ``t = σ(-|z|) <= 1/2``, a row's gradient is ``w(1-y) - w t`` where ``z > 0`` and
        ``w t - w y`` where ``z <= 0``. Summing the weights (``Σ_{z>0} w(1-y) - Σ_{z<=0} w y``,
        exact for integer weights) apart from the tails (``±w t``) keeps the gradient accurate
        to ulps of ``Σ w t <= 2 Σ w σ(z)σ(-z)``: the root is then accurate to a few ulps
        even when confident mistakes on both sides (``σ ≈ 1`` against ``σ ≈ 1``) would cancel
        in ``negative - positive``. A part below :data:`TINY` gets its logarithm too
        (:func:`log_parts`).
        """
        self.passes += 1
        z = self._offsets + shift
        right = z > 0
        near, tail = sigmoid_abs(z)
        a, b, w = self._negative_weight, self._positive_weight, self._weights
        curvature = near * tail
        loss = times(a, softplus(z)) + times(b, softplus(-z))
        terms = Terms(
            negative=_sum(a * np.where(right, near, tail)),
            positive=_sum(b * np.where(right, tail, near)),
            gradient=_sum(np.where(right, a, -b)) + _sum(np.where(right, -tail, tail) * w),
            negative_curvature=_sum(a * curvature),
            positive_curvature=_sum(b * curvature),
            loss=_sum(loss),
        )
        return with_log_parts(terms, shift, self.totals.weight_sum, self._log_parts)

    def _log_parts(self, shift: float, scale: float, exponent: int
                   ) -> tuple[LogPart | None, LogPart | None]:
        f = np.broadcast_to(self._offsets, self._weights.shape)
        with np.errstate(divide="ignore"):
            return (log_parts(f, self._negative_weight * scale, shift, 1.0, exponent),
                    log_parts(f, self._positive_weight * scale, shift, -1.0, exponent))


def with_log_parts(terms: Terms, shift: float, weight_sum: float,
                   compute: Callable[[float, float, int], tuple[LogPart | None, LogPart | None]]
                   ) -> Terms:
    """``terms`` with the logarithms of its parts where a part is below :data:`TINY`.

    ``compute(shift, scale, exponent)`` gives them from the weights times ``scale =
    2**-exponent``, the exponent making ``weight_sum`` near 1: residuals that do not depend on
    the units of the weights.
    """
    if not (math.isfinite(shift) and (terms.negative < TINY or terms.positive < TINY)):
        return terms
    exponent = math.frexp(weight_sum)[1] if weight_sum > 0 else 0
    log_negative, log_positive = compute(shift, ldexp(1.0, -exponent), exponent)
    return Terms(terms.negative, terms.positive, terms.gradient, terms.negative_curvature,
                 terms.positive_curvature, terms.loss,
                 log_negative=log_negative if terms.negative < TINY else None,
                 log_positive=log_positive if terms.positive < TINY else None)


def log_parts(offsets: np.ndarray, weights: np.ndarray, shift: float, side: float,
              exponent: int) -> LogPart | None:
    """The logarithm of ``Σ w σ(side · (f + shift))`` (the negative part for ``side = 1``,
    the positive for ``side = -1``) by log-sum-exp over rows: the numpy reference of the
    kernels' log pass.

    With ``x = side · (f + shift)``, ``log σ(x) = x - log1p(e^x)``. Where ``x`` is far below
    σ's range, ``x`` is kept as ``(side · f) + (side · shift)``, the offset being the row's
    anchor: at offsets of 1e300 the shift would vanish in their sum. Elsewhere the anchor
    is 0 and the residual ``log σ(x)``.
    """
    used = weights > 0
    if not used.any():
        return None
    f, w = offsets[used], weights[used]
    x = side * (f + shift)
    deep = x < _DEEP
    near, tail = sigmoid_abs(x)
    log_sigmoid = -softplus(-x)
    anchors = np.where(deep, side * f, 0.0)
    deep_rest = side * shift - np.log1p(np.exp(np.minimum(x, _DEEP)))
    residuals = np.log(w) + np.where(deep, deep_rest, log_sigmoid)
    slopes = np.where(x > 0, tail, near)  # σ(-x), the curvature over the part
    with np.errstate(over="ignore", invalid="ignore"):
        values = anchors + residuals
        pivot = int(np.argmax(values))
        for _ in range(4):
            # The rounded values may tie where the terms differ by 1e250; their gaps, with the
            # anchors subtracted first, tell them apart: pivot again on the largest gap.
            gaps = (anchors - anchors[pivot]) + (residuals - residuals[pivot])
            # Anchors 3e308 apart overflow their difference; the rounded values then do.
            gaps = np.where(np.isfinite(gaps), gaps, values - values[pivot])
            if not gaps.max() > 0:
                break
            pivot = int(np.argmax(gaps))
        gaps = np.exp(gaps)
    total = _sum(gaps)
    return LogPart(float(anchors[pivot]), float(residuals[pivot]) + math.log(total),
                   _sum(gaps * slopes) / total, exponent)


def squared_residuals(negative_weight: np.ndarray, positive_weight: np.ndarray,
                      z: np.ndarray, moment: np.ndarray | float = 1.0) -> float:
    """``Σ moment · (w (y - σ(z)))²`` of rows with label parts ``w (1 - y)`` and ``w y``:
    each row's score is ``w (1 - y) σ(z) - w y σ(-z)``, a difference only of soft labels."""
    up, down = sigmoid_pair(z)
    score = negative_weight * up - positive_weight * down
    return float(np.sum(moment * score * score))


def robust_meat_of(curve: Curve, shift: float) -> float:
    """``curve.robust_meat(shift)``, or an error that says how to get it."""
    meat = getattr(curve, "robust_meat", None)
    if meat is None:
        raise InputError(f"se_type='robust' needs the w² sums that a {type(curve).__name__} "
                         "does not keep", argument="se_type", value="robust")
    return meat(shift)


def pseudo_count_too_large(pseudo_count: float, weight_sum: float, where: str = ""
                           ) -> InputError:
    """The error for pseudo-rows more than 2**1023 times heavier than the rows' weights
    (the sums' units cannot hold both): the rows would weigh nothing beside them."""
    return InputError(
        f"pseudo_count = {pseudo_count!r} is more than 2**1023 times the weights' sum "
        f"({weight_sum!r}){where}: the rows would weigh nothing beside the pseudo-rows; pass "
        "a pseudo_count in proportion to the weights", argument="pseudo_count",
        value=pseudo_count)


def pseudo_rows(totals: CurveTotals, pseudo_count: float) -> ArrayCurve:
    """One positive and one negative row of weight ``pseudo_count`` at the mean offset, in
    the units of ``totals``."""
    offset = np.full(2, totals.offset_mean)
    weight = ldexp(pseudo_count, -totals.scale_exponent)
    if not math.isfinite(weight):
        raise pseudo_count_too_large(pseudo_count, ldexp(totals.weight_sum,
                                                         totals.scale_exponent))
    return ArrayCurve(np.array([1.0, 0.0]), offset, np.full(2, weight),
                      scale_exponent=totals.scale_exponent)


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
    return -(math.log1p(ratio) if abs(ratio) < 0.5 else log_ratio(a, b)) / slope


def _direction_and_step(terms: Terms) -> tuple[float, float]:
    """The sign of the gradient (as a float, 0 at a root) and the Newton step on the
    log-ratio; ``(nan, nan)`` where the parts cannot be compared in doubles.

    Where a part is below :data:`TINY` the curve gave its logarithm, and both come from the
    logarithms: the linear sums there have lost their digits, or are both 0.
    """
    if not terms.in_log_space:
        if terms.negative == 0 and terms.positive == 0:
            return math.nan, math.nan  # both underflowed and no logarithms to compare
        return float(np.sign(terms.gradient)), _log_ratio_step(terms)
    negative, positive = terms.negative_log(), terms.positive_log()
    if negative is None or positive is None:  # a part is exactly 0: the other dominates
        return (1.0 if positive is None else -1.0), math.nan
    difference = log_difference(negative, positive)
    slope = negative.slope + positive.slope
    if not (math.isfinite(difference) and slope > 0):
        return math.nan, math.nan
    return float(np.sign(difference)), -difference / slope


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
    that. Each iteration is one evaluation of the curve. Where both parts underflow and the
    curve gives no logarithms of them, the root cannot be located: ``"not_identifiable"``.
    """
    totals = curve.totals
    center = log_ratio(totals.active_positives, totals.active_negatives)
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
        direction, newton = _direction_and_step(terms)
        if math.isnan(direction):
            return Solution(shift, "not_identifiable", False, iteration, gradient)
        if direction == 0:
            return Solution(shift, "converged", True, iteration, gradient)
        if direction > 0:
            hi = shift
        else:
            lo = shift
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

    def at(distance: float) -> tuple[Terms, float]:
        terms = curve.evaluate(anchor + direction * distance)
        return terms, terms.loss - loss - half_quantile

    # Distances from the anchor: D <= 0 at inner, D > 0 at outer. An infinite shift has no
    # inner point: the anchor is merely a place to start from.
    inner, outer = (-math.inf if math.isinf(shift) else 0.0), start
    terms, excess = at(outer)
    for _ in range(2100):
        if excess > 0:
            break
        inner, outer = max(inner, outer), 2.0 * outer
        terms, excess = at(outer)
    else:  # pragma: no cover - the loss grows at least linearly away from its minimum
        return direction * math.inf
    for _ in range(max_iter):
        step = -excess / (direction * terms.gradient) if terms.gradient != 0 else math.nan
        # On the far side of a convex function the steps point back towards the root; one
        # that does not, or that vanishes, means rounding has taken over.
        if not step < 0 or abs(step) <= 1e-15 * max(1.0, abs(anchor + direction * outer)):
            break
        target = outer + step
        if not target > inner:
            # Rounding overshot the root (far out, where a step of 1e216 lands on the flat
            # part of separable data): bisect, geometrically while the bracket is wide.
            target = (math.sqrt(max(inner, 1.0)) * math.sqrt(outer)
                      if outer > 4.0 * max(inner, 1.0) else 0.5 * (inner + outer))
            if not inner < target < outer:
                break
        candidate, candidate_excess = at(target)
        if candidate_excess > 0:
            outer, terms, excess = target, candidate, candidate_excess
        else:
            inner = target
    point = anchor + direction * outer
    # Where the interval is narrower than the spacing of doubles at the shift (weights of
    # 1e308 make it so), rounding may leave the point on the wrong side of it.
    return max(point, shift) if direction > 0 else min(point, shift)
