"""Logistic recalibration: the intercept and slope of ``y ~ Bernoulli(σ(a + b · offset))``.

The estimator knows the data only as a *slope curve* (:class:`SlopeCurve`): its totals, its
loss, gradient and Hessian at any ``(a, b)``, and the one-dimensional curve in ``a`` at a fixed
``b`` (so that the shift's solver profiles the intercept out). A :class:`~logitshift.Sketch`
is one, from its tables (a Taylor series in ``b · d``); :class:`ArraySlopeCurve`, the numpy
reference over arrays, is another.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple, Protocol

import numpy as np

from .._core import jsonsafe as _json
from .._core.losses import sigmoid_pair, softplus, times
from .._core.units import ldexp, log_ratio
from .._core.validate import (InputError, as_numeric, as_positive_int, check_infinite_offsets,
                              check_se_type, warn)
from .result import normal_quantile
from .solve import (DEFAULT_TOL, ArrayCurve, Curve, CurveTotals, profile_bound, solve_curve,
                    squared_residuals)

__all__ = ["SlopeTerms", "SlopeCurve", "ArraySlopeCurve", "SlopeFit", "SlopeIntervals",
           "fit_slope_curve", "warn_about", "MAX_TRUNCATION"]

#: The largest relative truncation error of a sketch's sums that a fit accepts as exact.
MAX_TRUNCATION = 1e-12
_EPSILON = 2.0 ** -52


@dataclass(frozen=True)
class SlopeTerms:
    """Total loss, gradient and Hessian of ``Σ w BCE(y, a + b · offset)`` at one ``(a, b)``.

    ``gradient = (Σ w (σ(z) - y), Σ w (σ(z) - y) offset)``; ``hessian`` holds ``Σ w h``,
    ``Σ w h offset`` and ``Σ w h offset²`` with ``h = σ(z) σ(-z)``.
    """

    loss: float
    gradient: tuple[float, float]
    hessian: tuple[float, float, float]


class SlopeCurve(Protocol):
    totals: CurveTotals
    passes: int

    def evaluate_slope(self, intercept: float, slope: float) -> SlopeTerms: ...

    def at_slope(self, slope: float) -> Curve: ...

    def truncation(self, slope: float) -> float: ...

    # Optional, for robust (sandwich) covariances: ``(Σ s_a², Σ s_a s_b, Σ s_b²)`` of the
    # scores ``s = w (y - σ(z)) (1, offset)``, in units of ``2**(2 * scale_exponent)``.
    # def robust_meat_slope(self, intercept: float, slope: float) -> np.ndarray: ...


def scaled_totals(totals: CurveTotals, slope: float) -> CurveTotals:
    """The totals of the offsets ``slope · offset``: what the shift's bracket needs."""
    low, high = sorted((slope * totals.offset_min, slope * totals.offset_max))
    return replace(totals, offset_min=low, offset_max=high,
                   offset_mean=min(max(slope * totals.offset_mean, low), high))


class ArraySlopeCurve:
    """The numpy reference over in-memory arrays: every evaluation is one exact pass.

    Rows with an infinite offset must agree with their label (they then fit every finite
    ``(a, b)`` with ``b > 0``) and are left out; ``labels``, ``offsets`` and ``weights`` must be
    validated already.
    """

    def __init__(self, labels: np.ndarray, offsets: np.ndarray, weights: np.ndarray | None
                 ) -> None:
        check_infinite_offsets(labels, offsets, weights)
        y = labels.astype(np.float64, copy=False)
        w = np.ones_like(y) if weights is None else weights.astype(np.float64, copy=False)
        f = np.asarray(offsets, dtype=np.float64)
        whole = ArrayCurve(labels, offsets, weights)
        # The sums are in the units of the totals: 2**scale_exponent of the user's weights.
        self._exponent = whole.totals.scale_exponent
        if self._exponent:
            w = np.ldexp(w, -self._exponent)
        keep = np.isfinite(f) & (w > 0)
        self._labels, self._offsets, self._weights = y[keep], f[keep], w[keep]
        self.totals = whole.totals
        self.passes = 0

    def separates(self) -> int:
        """+1 where no row of label weight 0 lies above a row of label weight 1 (the offsets
        separate the labels, up to ties: the slope is +inf), -1 for the mirror image, else 0."""
        negative = self._offsets[self._labels < 1]
        positive = self._offsets[self._labels > 0]
        if negative.size == 0 or positive.size == 0:
            return 0
        if negative.max() <= positive.min():
            return 1
        if positive.max() <= negative.min():
            return -1
        return 0

    def evaluate_slope(self, intercept: float, slope: float) -> SlopeTerms:
        self.passes += 1
        y, f, w = self._labels, self._offsets, self._weights
        z = intercept + slope * f
        up, down = sigmoid_pair(z)
        gradient = w * ((1.0 - y) * up - y * down)
        curvature = w * up * down
        loss = times(w * (1.0 - y), softplus(z)) + times(w * y, softplus(-z))
        return SlopeTerms(
            loss=float(np.sum(loss)),
            gradient=(float(np.sum(gradient)), float(np.sum(gradient * f))),
            hessian=(float(np.sum(curvature)), float(np.sum(curvature * f)),
                     float(np.sum(curvature * f * f))),
        )

    def at_slope(self, slope: float) -> Curve:
        return ArrayCurve(self._labels, slope * self._offsets, self._weights,
                          scale_exponent=self._exponent)

    def robust_meat_slope(self, intercept: float, slope: float) -> np.ndarray:
        y, f, w = self._labels, self._offsets, self._weights
        z = intercept + slope * f
        return np.array([squared_residuals(w * (1.0 - y), w * y, z, moment)
                         for moment in (1.0, f, f * f)])

    def truncation(self, slope: float) -> float:
        return 0.0


class SlopeIntervals(NamedTuple):
    """Confidence intervals ``(low, high)`` for the intercept and for the slope."""

    intercept: tuple[float, float]
    slope: tuple[float, float]
    level: float


@dataclass(frozen=True, repr=False)
class SlopeFit:
    """Logistic recalibration of the raw scores: ``y ~ Bernoulli(σ(intercept + slope ·
    offset))``, by maximum likelihood.

    Attributes
    ----------
    intercept, slope : float
        The fitted line on the log-odds scale. A well-calibrated model has ``(0, 1)``.
    covariance : ndarray, shape (2, 2)
        With ``se_type="model"``, the inverse of the observed information ``H`` at the fit
        (intercept first); with ``"robust"``, the sandwich (HC0) ``H⁻¹ M H⁻¹`` with
        ``M = Σ w² (y - σ(z))² (1, offset)(1, offset)ᵀ``, as statsmodels'
        ``GLM(..., var_weights=w).fit(cov_type="HC0")``.
    se_intercept, se_slope : float
        Their standard errors, the square roots of the covariance's diagonal.
    se_type : str
        ``"model"`` or ``"robust"``: which covariance this is (``confint`` then defaults to
        the Wald intervals).
    status : str
        ``"converged"``; ``"max_iter"`` (Newton stopped first); ``"separated"`` (the offsets
        separate the labels, so the slope is infinite: no maximum exists);
        ``"constant_offset"`` (every offset is the same, so the slope is not identified);
        ``"all_negative"`` / ``"all_positive"`` (one class only); ``"beyond_sketch"`` (the
        slope is too steep for the sketch's grid to give its sums to double precision: fill
        a sketch of smaller ``width``, or fit the arrays in memory).
    converged : bool
        True only for ``"converged"``.
    iterations : int
        Newton iterations.
    n_rows, weight_sum : int, float
        Rows read and ``Σ w``.
    loss : float
        Weighted mean cross-entropy at the fit.
    truncation : float
        A bound on the relative error of the sums behind the fit (0 for exact passes):
        the Taylor remainder ``(|slope| · width / 2π)^order`` of a sketch.
    method : str
        ``"sketch"`` or ``"exact"`` (passes over arrays in memory).
    passes : int
        Passes over the data rows the fit made.
    """

    intercept: float
    slope: float
    covariance: np.ndarray
    status: str
    converged: bool
    iterations: int
    n_rows: int
    weight_sum: float
    loss: float
    truncation: float
    method: str
    passes: int
    se_type: str = "model"
    _curve: SlopeCurve = field(default=None, compare=False)  # type: ignore[assignment]
    _total_loss: float = field(default=math.nan, compare=False)
    _tol: float = field(default=DEFAULT_TOL, compare=False)
    # The curve's sums, and `_total_loss`, are in units of 2**_scale_exponent of the weights.
    _scale_exponent: int = field(default=0, compare=False)

    @property
    def se_intercept(self) -> float:
        return math.sqrt(self.covariance[0, 0])

    @property
    def se_slope(self) -> float:
        return math.sqrt(self.covariance[1, 1])

    def predict_raw(self, offset: Any) -> np.ndarray:
        """The recalibrated raw scores ``intercept + slope · offset`` (float64, same shape)."""
        scores = as_numeric(offset, "offset", one_dimensional=False).astype(np.float64,
                                                                            copy=False)
        return self.intercept + self.slope * scores

    def confint(self, level: float = 0.95, method: str | None = None) -> SlopeIntervals:
        """Confidence intervals for the intercept and the slope.

        Parameters
        ----------
        level : float
            Coverage, between 0 and 1.
        method : {"profile", "wald"}, optional
            By default ``"profile"``, or ``"wald"`` where ``se_type`` is ``"robust"`` (the
            profile assumes the model's variance). ``"profile"``: for each parameter, the values where twice the rise of the loss,
            minimised over the other parameter, equals the chi-square(1) quantile (as R's
            ``confint`` on a ``glm``, which interpolates the same profile on a grid).
            ``"wald"``: estimate ± z · se. Where the rise ``z² / 2`` is below what a
            difference of two total losses resolves (``1e8`` times their rounding: tiny
            levels, or weights so heavy that the interval is a few ulps wide), the profile
            ends are the Wald ends, to ``O(z · se)`` relative.

        Returns
        -------
        SlopeIntervals
        """
        z = normal_quantile(level)
        if method is None:
            method = "profile" if self.se_type == "model" else "wald"
        if method not in ("profile", "wald"):
            raise InputError(f"method = {method!r} must be 'profile' or 'wald'",
                             argument="method", value=method)
        if not self.converged:
            raise InputError(f"no interval: the fit's status is {self.status!r}",
                             argument="status", value=self.status)
        if method == "wald":
            return SlopeIntervals(
                (self.intercept - z * self.se_intercept, self.intercept + z * self.se_intercept),
                (self.slope - z * self.se_slope, self.slope + z * self.se_slope), level)
        wald = self.confint(level, method="wald")
        half_quantile = ldexp(0.5 * z * z, -self._scale_exponent)  # in the curve's units
        if not 1e8 * _EPSILON * abs(self._total_loss) < half_quantile:
            # A rise this far below the loss's rounding (a tiny level, or weights so heavy
            # that the interval is narrower than a few ulps) cannot be told from a difference
            # of two losses; the profile ends are then the Wald ends to O(z · se) relative.
            return wald
        intercept = tuple(
            profile_bound(_Profile(self._intercept_profile()), self.intercept,
                          self._total_loss, half_quantile, direction,
                          1.5 * z * self.se_intercept)
            for direction in (-1, 1))
        slope = tuple(
            profile_bound(_Profile(self._slope_profile()), self.slope, self._total_loss,
                          half_quantile, direction, 1.5 * z * self.se_slope)
            for direction in (-1, 1))
        return SlopeIntervals(intercept, slope, level)  # type: ignore[arg-type]

    def _slope_profile(self):
        """``b ↦ (min_a loss(a, b), its derivative)``: the intercept solved at each slope."""
        curve, tol = self._curve, self._tol

        def profile(slope: float) -> tuple[float, float]:
            intercept = solve_curve(curve.at_slope(slope), tol=tol).shift
            terms = curve.evaluate_slope(intercept, slope)
            return terms.loss, terms.gradient[1]  # the envelope theorem: ∂/∂b at the minimum

        return profile

    def _intercept_profile(self):
        """``a ↦ (min_b loss(a, b), its derivative)``, by Newton in the slope from the fit."""
        curve, tol, start = self._curve, self._tol, self.slope

        def profile(intercept: float) -> tuple[float, float]:
            slope = start
            terms = curve.evaluate_slope(intercept, slope)
            for _ in range(100):
                if not terms.hessian[2] > 0:  # far out, where every row is certain
                    break
                step = -terms.gradient[1] / terms.hessian[2]
                # The loss is convex in the slope: halve a step that would raise it.
                for _ in range(60):
                    trial = curve.evaluate_slope(intercept, slope + step)
                    if trial.loss <= terms.loss + 1e-15 * abs(terms.loss):
                        break
                    step *= 0.5
                slope, terms = slope + step, trial
                if abs(step) <= tol * max(1.0, abs(slope)):
                    break
            return terms.loss, terms.gradient[0]

        return profile

    def to_dict(self, level: float = 0.95, *, json_safe: bool = False) -> dict[str, Any]:
        """The result as plain Python values, with the intervals at ``level`` (by
        ``confint``'s default method) where the fit converged.

        With ``json_safe=True``, the same values as strict JSON holds them (``inf``,
        ``-inf`` and ``nan`` as the strings ``"inf"``, ``"-inf"``, ``"nan"``; numpy scalars
        as Python numbers): ``json.dumps(result.to_dict(json_safe=True), allow_nan=False)``
        succeeds, and is what ``logitshift ... --json`` prints.
        """
        result = {
            "intercept": self.intercept, "slope": self.slope,
            "se_intercept": self.se_intercept, "se_slope": self.se_slope,
            "covariance": self.covariance.tolist(), "status": self.status,
            "converged": self.converged, "iterations": self.iterations,
            "n_rows": self.n_rows, "weight_sum": self.weight_sum, "loss": self.loss,
            "truncation": self.truncation, "method": self.method, "passes": self.passes,
            "se_type": self.se_type, "level": level,
        }
        if self.converged:
            intervals = self.confint(level)
            result.update(intercept_low=intervals.intercept[0],
                          intercept_high=intervals.intercept[1],
                          slope_low=intervals.slope[0], slope_high=intervals.slope[1])
        return _json.json_safe(result) if json_safe else result

    def __repr__(self) -> str:
        return (f"SlopeFit(intercept={self.intercept!r}, slope={self.slope!r}, "
                f"se_intercept={self.se_intercept:.6g}, se_slope={self.se_slope:.6g}, "
                f"{'' if self.se_type == 'model' else 'se_type=' + repr(self.se_type) + ', '}"
                f"status={self.status!r}, iterations={self.iterations}, "
                f"method={self.method!r}, passes={self.passes}, n_rows={self.n_rows}, "
                f"loss={self.loss:.6g})")


class _Value(NamedTuple):
    loss: float
    gradient: float


class _Profile:
    """A profiled loss (value and derivative of one parameter, the other minimised out) as
    the curve that the shift's `profile_bound` walks."""

    def __init__(self, profile) -> None:
        self._profile = profile

    def evaluate(self, point: float) -> _Value:
        return _Value(*self._profile(point))


def _covariance(terms: SlopeTerms) -> np.ndarray:
    aa, ab, bb = terms.hessian
    det = aa * bb - ab * ab
    if not det > 0:
        return np.full((2, 2), math.inf)
    return np.array([[bb, -ab], [-ab, aa]]) / det


def _sandwich(curve: SlopeCurve, intercept: float, slope: float, terms: SlopeTerms
              ) -> np.ndarray:
    """``H⁻¹ M H⁻¹``: the units of ``H`` (``2**e``) and ``M`` (``2**2e``) cancel."""
    meat = getattr(curve, "robust_meat_slope", None)
    if meat is None:
        raise InputError(f"se_type='robust' needs the w² sums that a {type(curve).__name__} "
                         "does not keep", argument="se_type", value="robust")
    if not math.isfinite(slope):
        return np.full((2, 2), math.inf)
    bread = _covariance(terms)
    if not np.isfinite(bread).all():
        return bread
    m_aa, m_ab, m_bb = meat(intercept, slope)
    return bread @ np.array([[m_aa, m_ab], [m_ab, m_bb]]) @ bread


def fit_slope_curve(curve: SlopeCurve, *, method: str, tol: float | None = None,
                    max_iter: int = 100, se_type: str = "model") -> SlopeFit:
    """The maximum-likelihood intercept and slope on a slope curve.

    Notes
    -----
    Starts at the calibration in the large (slope 1, the shift's exact root), then takes
    Newton steps on the convex loss, each halved until the loss does not rise; it stops when
    both steps are below ``tol · max(1, |value|)``. Separation (the offsets order the labels
    perfectly) is refused before any step where the curve can tell it.
    """
    tol = DEFAULT_TOL if tol is None else tol
    max_iter = as_positive_int(max_iter, "max_iter")
    check_se_type(se_type)
    totals = curve.totals
    exponent = totals.scale_exponent
    if totals.n_rows == 0:
        raise InputError("y is empty", argument="y")
    if totals.weight_sum == 0:
        raise InputError("weight is zero on every row", argument="weight")

    def result(intercept: float, slope: float, status: str, iterations: int,
               terms: SlopeTerms | None) -> SlopeFit:
        if status == "converged" and certain > 0 and not slope > 0:
            raise InputError(
                f"rows of infinite offset fit only a positive slope, but the other rows' "
                f"slope is {slope!r}: no slope fits both", argument="offset")
        # The curve's sums are in units of 2**exponent of the weights: the information
        # scales with them, the mean loss does not.
        with np.errstate(over="ignore"):  # beyond the doubles, the covariance is inf
            covariance = (np.full((2, 2), math.inf) if terms is None
                          else np.ldexp(_covariance(terms), -exponent))
        if se_type == "robust" and terms is not None:
            covariance = _sandwich(curve, intercept, slope, terms)
        loss = math.nan if terms is None else terms.loss
        return SlopeFit(
            intercept=intercept, slope=slope, covariance=covariance, status=status,
            converged=status == "converged", iterations=iterations, n_rows=totals.n_rows,
            weight_sum=ldexp(totals.weight_sum, exponent), loss=loss / totals.weight_sum,
            truncation=curve.truncation(slope) if math.isfinite(slope) else math.inf,
            method=method, passes=curve.passes, se_type=se_type, _curve=curve, _total_loss=loss, _tol=tol,
            _scale_exponent=exponent)

    # Rows of infinite offset (agreeing with their label) have no loss at any positive slope:
    # they are in no sum, but they rule out a slope <= 0. (The tolerance covers the rounding
    # of the totals; rows weighing less than that change no sum either.)
    active = totals.active_positives + totals.active_negatives
    certain = totals.weight_sum - active if totals.weight_sum - active > 1e-12 * active else 0.0
    if totals.active_positives == 0:
        return result(-math.inf, math.nan, "all_negative", 0, None)
    if totals.active_negatives == 0:
        return result(math.inf, math.nan, "all_positive", 0, None)
    if totals.offset_min == totals.offset_max:
        return result(math.nan, math.nan, "constant_offset", 0, None)
    separated = getattr(curve, "separates", lambda: 0)()
    if separated:
        return result(math.nan, separated * math.inf, "separated", 0, None)

    # From the calibration in the large (slope 1, the shift's exact root); where Newton does
    # not converge from there (scores so spread that every row is certain at slope 1: the
    # curvature vanishes, or the first step leaps far beyond the answer), from the null
    # model instead (slope 0, the intercept the log odds of the labels), as glm starts.
    start = (solve_curve(curve.at_slope(1.0), tol=tol).shift, 1.0)
    outcome = _newton(curve, *start, tol, max_iter)
    if outcome[2] != "converged":
        null = log_ratio(totals.active_positives, totals.active_negatives)
        retried = _newton(curve, null, 0.0, tol, max_iter)
        if retried[2] == "converged":
            outcome = retried
    intercept, slope, status, iterations, terms = outcome
    if status == "stalled":
        status, iterations = "max_iter", max_iter
    return result(intercept, slope, status, iterations, terms)


def _newton(curve: SlopeCurve, intercept: float, slope: float, tol: float, max_iter: int
            ) -> tuple[float, float, str, int, SlopeTerms]:
    """Newton steps on the convex loss from ``(intercept, slope)``, each halved until the
    loss does not rise, until both steps are below ``tol · max(1, |value|)``: the point,
    its status (``"converged"``, ``"beyond_sketch"``, ``"max_iter"``, or ``"stalled"``
    where the curvature vanishes), the iterations and the sums there."""
    terms = curve.evaluate_slope(intercept, slope)
    for iteration in range(1, max_iter + 1):
        aa, ab, bb = terms.hessian
        det = aa * bb - ab * ab
        if not (det > 0 and math.isfinite(det)):
            return intercept, slope, "stalled", iteration - 1, terms
        ga, gb = terms.gradient
        step_a, step_b = -(bb * ga - ab * gb) / det, -(aa * gb - ab * ga) / det
        scale = 1.0
        for _ in range(60):
            trial = curve.evaluate_slope(intercept + scale * step_a, slope + scale * step_b)
            if trial.loss <= terms.loss + 4e-16 * abs(terms.loss):
                break
            scale *= 0.5
        intercept, slope, terms = intercept + scale * step_a, slope + scale * step_b, trial
        if curve.truncation(slope) > MAX_TRUNCATION:
            return intercept, slope, "beyond_sketch", iteration, terms
        if (abs(scale * step_a) <= tol * max(1.0, abs(intercept))
                and abs(scale * step_b) <= tol * max(1.0, abs(slope))):
            return intercept, slope, "converged", iteration, terms
    return intercept, slope, "max_iter", max_iter, terms


def warn_about(result: SlopeFit) -> SlopeFit:
    """Warn (at the user's line) when the fit did not converge, saying why; returns it."""
    if not result.converged:
        warn(f"logistic recalibration: {_EXPLAIN[result.status]}")
    return result


_EXPLAIN = {
    "max_iter": "Newton did not converge",
    "separated": "the offsets separate the labels, so the slope is infinite",
    "constant_offset": "every offset is the same, so the slope is not identified",
    "all_negative": "every label is 0, so the intercept is -inf and the slope undefined",
    "all_positive": "every label is 1, so the intercept is +inf and the slope undefined",
    "beyond_sketch": "the slope is too steep for the sketch's grid to give its sums to "
                     "double precision; fill a sketch of smaller width, or fit in memory",
}
