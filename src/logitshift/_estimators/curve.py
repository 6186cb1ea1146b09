"""The smooth calibration curve: a logistic regression of the labels on a restricted cubic
spline of the scores' log-odds (``glm(y ~ rms::rcs(lp, knots), family = binomial)``), or
``val.prob``'s lowess, with Austin and Steyerberg's ICI, E50, E90 and Emax.

The spline fit works on a protocol (:class:`SplineSummary`) that a summary provides: the
loss, gradient and Hessian of the spline model at given coefficients (a Taylor series on a
sketch's tables, every knot on a cell edge), the cells' weights (for the default knots) and
the distribution of the scores (the rows themselves, or a sketch's sub-bins, each with the
half-width that bounds what it hides). It imports no summary.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np

from .._core import jsonsafe as _json
from .._core import kernels as _kernels
from .._core.units import ldexp
from .._core.losses import sigmoid_pair, spline_basis, spline_cell_polynomials
from .._core.validate import InputError, as_numeric, as_positive_int
from .result import normal_quantile, regularised_gamma

__all__ = ["SmoothCalibrationCurve", "CurvePrediction", "SplineSummary", "fit_spline",
           "fit_loess", "spline_knots", "check_curve_options", "chi_square_quantile",
           "HARRELL_QUANTILES", "METHODS"]

#: The curves a caller may ask for.
METHODS = ("rcs", "loess")

#: Harrell's default knot quantiles (``Hmisc::rcspline.eval``): ``seq(outer, 1 - outer,
#: length = k)`` with ``outer`` 0.1 for 3 knots, 0.05 for 4 to 6 and 0.025 from 7.
HARRELL_QUANTILES = {k: np.linspace(outer, 1.0 - outer, k)
                     for k, outer in ((3, 0.1), (4, 0.05), (5, 0.05), (6, 0.05), (7, 0.025))}

#: The most knots an array of knots may hold (rms takes any number; more than a dozen
#: over-fits any calibration curve, and each one costs a row and column of the Hessian).
MAX_KNOTS = 12

_STATISTICS = ("ici", "e50", "e90", "emax")


class SplineSummary(Protocol):
    """What the spline fit asks of a summary.

    ``n_rows``, ``weight_sum`` (in the user's units) and ``scale_exponent`` (the sums of
    ``spline_terms`` are in units of ``2**scale_exponent``).
    """

    n_rows: int
    weight_sum: float
    scale_exponent: int

    def spline_terms(self, knots: np.ndarray, coefficients: np.ndarray
                     ) -> tuple[float, np.ndarray, np.ndarray]:
        """Loss, gradient ``(K,)`` and Hessian ``(K, K)`` of ``Σ w BCE(y, B(f) β)``."""

    def score_cells(self) -> tuple[np.ndarray, np.ndarray, float]:
        """The occupied cells' centres (sorted), weights, and the cells' width."""

    def score_points(self) -> tuple[np.ndarray, np.ndarray | None, float]:
        """Points of the scores' distribution, their weights (user units; None for rows
        without weights), and the half-width within which each point's rows lie (0 for the
        rows themselves)."""

    def pooled_points(self) -> tuple[np.ndarray, np.ndarray]:
        """A few points per cell that match the cell's weight, mean and variance (user
        units): where the simulated coefficients are evaluated."""


class CurvePrediction(NamedTuple):
    """The smooth curve at given scores: the observed probability it predicts, its pointwise
    interval and the simultaneous band (all in probability, shape of the scores)."""

    probability: np.ndarray
    low: np.ndarray
    high: np.ndarray
    band_low: np.ndarray
    band_high: np.ndarray


@dataclass(frozen=True, repr=False)
class SmoothCalibrationCurve:
    """The smooth calibration curve of a model's scores, with ICI, E50, E90 and Emax.

    ``method="rcs"``: ``logit P(y = 1 | f) = g(f) = Σ_k β_k B_k(f)``, with ``f`` the score's
    log-odds and ``B`` Harrell's restricted cubic spline basis (``1, f, f', f'', ...`` as
    ``rms::rcs`` builds it: the nonlinear terms divided by ``(t_K - t_1)²``), fitted by
    maximum likelihood. ``method="loess"``: ``val.prob``'s ``lowess(p, y, iter = 0)``.

    Attributes
    ----------
    method : {"rcs", "loess"}
    knots : ndarray, shape (K,)
        The knots, in logits (on the sketch's grid of 1/16 logit); empty for loess.
    coefficients : ndarray, shape (K,)
        ``β``: the intercept, the linear term and the ``K - 2`` nonlinear terms, as R's
        ``coef(glm(y ~ rcs(lp, knots), family = binomial))`` orders them.
    covariance : ndarray, shape (K, K)
        The inverse of the observed information (``vcov`` of that glm).
    ici, e50, e90, emax : float
        Over the rows' distribution of scores, with ``D(f) = σ(g(f)) - σ(f)``: ICI the
        weighted mean of ``|D|`` (Austin and Steyerberg's integrated calibration index, the
        ``Eavg`` of ``val.prob.ci.2``), E50 and E90 its median and 90th percentile (R's
        ``quantile``, type 7, for unit weights; with weights, the same rule on cumulative
        weight), Emax its largest value.
    bounds : dict
        For each of ``"ici"``, ``"e50"``, ``"e90"``, ``"emax"``: the largest error of its
        value. 0 from rows in memory (computed on the rows); from a stream, the rows of a
        sub-bin of the sketch (width 2**-12 logit, or a cell of 1/16 without the histogram)
        share one point, and ``|D|`` moves by at most its Lipschitz bound over that width.
    intervals : dict
        For each statistic, ``(low, high)``: the percentile interval at ``level`` of the
        statistic over ``draws`` coefficient vectors drawn from ``N(β, covariance)`` (as R's
        ``pmcalibration`` simulates them), each evaluated on two points per cell of the
        sketch with the cell's weight, mean and variance (O(cells) a draw, not O(rows));
        NaN for loess.
    level : float
    draws, seed : int, int or None
    n_rows : int
    weight_sum : float
    status : str
        ``"converged"``, ``"max_iter"``, or ``"stalled"`` (no step along Newton's direction
        lowered the loss); loess: ``"lowess"``.
    iterations : int
    gradient_norm : float
        ``max |∇|`` of the loss at the answer, relative to ``Σ w``.
    truncation : float
        The relative error of the sketch's Taylor sums at the answer (0 on rows):
        ``max_cells (width / 2R)^order``, with ``R`` the radius in which ``g`` moves less
        than π in the complex plane (σ's nearest poles).
    offset_is : {"logit", "probability"}
        What :meth:`predict` takes, as the scores were given.
    """

    method: str
    knots: np.ndarray
    coefficients: np.ndarray
    covariance: np.ndarray
    ici: float
    e50: float
    e90: float
    emax: float
    bounds: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    level: float
    draws: int
    seed: int | None
    n_rows: int
    weight_sum: float
    status: str
    iterations: int
    gradient_norm: float
    truncation: float
    offset_is: str
    score_range: tuple[float, float]
    _lowess: tuple[np.ndarray, np.ndarray] | None = field(default=None, compare=False)

    @property
    def converged(self) -> bool:
        return self.status in ("converged", "lowess")

    def predict(self, scores: Any, *, level: float | None = None) -> CurvePrediction:
        """The curve at ``scores`` (log-odds, or probabilities where the curve was fitted
        with ``offset_is="probability"``), with the pointwise interval ``σ(g ± z se)`` and
        the simultaneous band ``σ(g ± sqrt(χ²_K(level)) se)``: Scheffé's (Working and
        Hotelling's) band over every score at once, with ``se² = B(f)ᵀ V B(f)``.

        Parameters
        ----------
        scores : array_like, shape (m,)
        level : float, optional
            Coverage; the curve's own ``level`` by default.

        Returns
        -------
        CurvePrediction
            Shape ``(m,)`` each; the intervals are NaN for loess (``lowess`` gives none).
        """
        level = self.level if level is None else level
        z = normal_quantile(level)
        values = as_numeric(scores, "scores").astype(np.float64)
        bad = np.flatnonzero(np.isnan(values))
        if bad.size:
            raise InputError(f"scores[{bad[0]}] is nan", argument="scores", index=int(bad[0]),
                             value=math.nan)
        if self.method == "rcs":
            # The fit refuses such scores: the spline of the log-odds has no value there.
            infinite = np.flatnonzero(np.isinf(values) if self.offset_is == "logit"
                                      else (values == 0) | (values == 1))
            if infinite.size:
                i = int(infinite[0])
                raise InputError(
                    f"scores[{i}] = {float(values[i])!r} is a log-odds of ±inf: the spline of "
                    "the log-odds has no value there", argument="scores", index=i,
                    value=float(values[i]))
        if self.offset_is == "probability":
            outside = np.flatnonzero((values < 0) | (values > 1))
            if outside.size:
                i = int(outside[0])
                raise InputError(f"scores[{i}] = {float(values[i])!r} is outside [0, 1]",
                                 argument="scores", index=i, value=float(values[i]))
            with np.errstate(divide="ignore"):
                logits = np.log(values) - np.log1p(-values)
        else:
            logits = values
        if self.method == "loess":
            x, fitted = self._lowess  # type: ignore[misc]
            probability = np.interp(sigmoid_pair(logits)[0], x, fitted)
            nan = np.full_like(probability, math.nan)
            return CurvePrediction(probability, nan, nan, nan.copy(), nan.copy())
        basis = _tail_basis(logits, self.knots)
        # Each row in units of its largest term, so that g and se of a score of 1e300 are
        # formed without overflow; only σ's argument, ``size · (g ± z se)``, may reach ±inf.
        size = np.maximum(np.max(np.abs(basis), axis=1), 1.0) if basis.size else np.ones(0)
        basis = basis / size[:, None]
        g = basis @ self.coefficients
        se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", basis, self.covariance, basis), 0.0))
        wide = math.sqrt(chi_square_quantile(level, self.coefficients.size))

        def p(value: np.ndarray) -> np.ndarray:
            with np.errstate(over="ignore"):
                return sigmoid_pair(size * value)[0]

        return CurvePrediction(p(g), p(g - z * se), p(g + z * se), p(g - wide * se),
                               p(g + wide * se))

    def grid(self, points: int = 101) -> dict[str, np.ndarray]:
        """The curve on ``points`` scores evenly spaced in log-odds over the middle 99% of
        the rows' scores: ``score`` (as given: log-odds or probability), ``predicted``
        (probability) and the :class:`CurvePrediction` fields."""
        logits = np.linspace(*self.score_range, as_positive_int(points, "points"))
        scores = sigmoid_pair(logits)[0] if self.offset_is == "probability" else logits
        prediction = self.predict(scores)
        return {"score": scores, "predicted": sigmoid_pair(logits)[0],
                **prediction._asdict()}

    def to_dict(self, *, json_safe: bool = False, points: int = 101) -> dict[str, Any]:
        """The statistics, their bounds and intervals, the knots, coefficients and
        covariance, the fit's status and the curve on :meth:`grid`; strict JSON's values with
        ``json_safe=True`` (what ``--json`` prints)."""
        record = {
            "method": self.method, "n_rows": self.n_rows, "weight_sum": self.weight_sum,
            **{name: getattr(self, name) for name in _STATISTICS},
            **{f"{name}_bound": self.bounds[name] for name in _STATISTICS},
            **{f"{name}_ci_low": self.intervals[name][0] for name in _STATISTICS},
            **{f"{name}_ci_high": self.intervals[name][1] for name in _STATISTICS},
            "level": self.level, "draws": self.draws, "seed": self.seed,
            "knots": self.knots.tolist(), "coefficients": self.coefficients.tolist(),
            "covariance": self.covariance.tolist(), "status": self.status,
            "iterations": self.iterations, "gradient_norm": self.gradient_norm,
            "truncation": self.truncation, "offset_is": self.offset_is,
            "grid": {name: values.tolist() for name, values in self.grid(points).items()},
        }
        return _json.json_safe(record) if json_safe else record

    def __repr__(self) -> str:
        def row(name: str) -> str:
            low, high = self.intervals[name]
            text = f"{getattr(self, name):.4g}"
            if self.bounds[name] > 0:
                text += f" ± {self.bounds[name]:.1g}"
            if not math.isnan(low):
                text += f"  [{low:.4g}, {high:.4g}]"
            return text

        knots = ", ".join(f"{k:.4g}" for k in self.knots)
        return (f"SmoothCalibrationCurve(method={self.method!r}, n_rows={self.n_rows}, "
                f"knots=[{knots}], status={self.status!r},\n  "
                + ",\n  ".join(f"{name.upper() if name == 'ici' else name.capitalize()} = "
                               f"{row(name)}" for name in _STATISTICS) + ")")


def _tail_basis(logits: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """:func:`spline_basis`, with scores beyond the outer knots on the spline's straight
    tails, ``B(t) + B'(t) (f - t)``: the same numbers in exact arithmetic, but no difference
    of cubes that overflows (``f = 1e300``) or cancels (``f = 1e12``) in doubles."""
    clipped = np.clip(logits, knots[0], knots[-1])
    return (spline_basis(clipped, knots)
            + spline_basis(clipped, knots, 1) * (logits - clipped)[:, None])


# -- options and knots ------------------------------------------------------------------------

def check_curve_options(method: Any, knots: Any, level: Any, draws: Any, seed: Any
                        ) -> dict[str, Any]:
    """The curve's options, checked before any pass over the data."""
    if method not in METHODS:
        raise InputError(f"curve method = {method!r} must be one of {', '.join(METHODS)}",
                         argument="method", value=method)
    normal_quantile(level)
    draws = as_positive_int(draws, "draws")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))
                             or seed < 0):
        raise InputError(f"seed = {seed!r} must be a non-negative integer or None",
                         argument="seed", value=seed)
    if isinstance(knots, (int, np.integer)) and not isinstance(knots, bool):
        if int(knots) not in HARRELL_QUANTILES:
            raise InputError(f"knots = {knots} must be 3 to 7 (Harrell's quantiles), or an "
                             "array of knots", argument="knots", value=knots)
        knots = int(knots)
    else:
        array = as_numeric(knots, "knots").astype(np.float64)
        bad = np.flatnonzero(~np.isfinite(array))
        if bad.size:
            raise InputError(f"knots[{bad[0]}] = {float(array[bad[0]])!r} is not finite",
                             argument="knots", index=int(bad[0]), value=float(array[bad[0]]))
        if not 3 <= array.size <= MAX_KNOTS:
            raise InputError(f"knots has {array.size} values: a restricted cubic spline needs "
                             f"3 to {MAX_KNOTS}", argument="knots", value=array.size)
        down = np.flatnonzero(np.diff(array) <= 0)
        if down.size:
            i = int(down[0]) + 1
            raise InputError(f"knots[{i}] = {float(array[i])!r} is not above knots[{i - 1}] "
                             f"= {float(array[i - 1])!r}: knots must increase", argument="knots",
                             index=i, value=float(array[i]))
        knots = array
        if method == "loess":
            raise InputError("knots are for method='rcs'; loess has none", argument="knots")
    return {"method": method, "knots": knots, "level": float(level), "draws": draws,
            "seed": None if seed is None else int(seed)}


def spline_knots(knots: int | np.ndarray, centres: np.ndarray, weights: np.ndarray,
                 width: float) -> np.ndarray:
    """The knots in logits, each on a cell edge (a multiple of ``width``).

    An integer ``k``: Harrell's quantiles of the scores (:data:`HARRELL_QUANTILES`), each
    read from the cells' cumulative weight, spread evenly within its cell, then moved to the
    nearest cell edge (at most ``width / 2``, 1/32 logit by default). An array: each knot
    moved to its nearest edge. Refused, naming ``knots``, where two land on one edge.
    """
    if isinstance(knots, int):
        cumulative = np.cumsum(weights)
        total = cumulative[-1]
        quantiles = []
        for share in HARRELL_QUANTILES[knots]:
            target = share * total
            b = min(int(np.searchsorted(cumulative, target)), centres.size - 1)
            before = cumulative[b] - weights[b]
            fraction = min(max((target - before) / weights[b], 0.0), 1.0)
            quantiles.append(centres[b] - 0.5 * width + fraction * width)
        wanted = np.array(quantiles)
    else:
        wanted = np.asarray(knots, dtype=np.float64)
    snapped = np.round(wanted / width) * width + 0.0  # no -0.0
    same = np.flatnonzero(np.diff(snapped) <= 0)
    if same.size:
        i = int(same[0])
        what = (f"Harrell's {knots} quantiles" if isinstance(knots, int) else "the knots")
        raise InputError(
            f"knots: {what} {wanted[i]:.6g} and {wanted[i + 1]:.6g} both fall on the cell edge "
            f"{snapped[i]:.6g} of the sketch's grid (width {width:g} logit): the scores are "
            f"too concentrated for {wanted.size} knots; ask for fewer, or give knots at least "
            f"{width:g} apart", argument="knots", value=float(wanted[i]))
    return snapped


# -- the spline fit ---------------------------------------------------------------------------

def fit_spline(summary: SplineSummary, *, method: str = "rcs", knots: int | np.ndarray = 5,
               level: float = 0.95, draws: int = 1000, seed: int | None = None,
               offset_is: str = "logit", tol: float = 1e-12, max_iter: int = 50
               ) -> SmoothCalibrationCurve:
    """The restricted-cubic-spline calibration curve of ``summary`` by Newton's method
    (``method`` is ``"rcs"``, the only one a summary without rows fits).

    Notes
    -----
    Newton from the identity ``g(f) = f`` (``β = (0, 1, 0, ...)``), halving a step that
    raises the loss, stops when no coefficient moves by more than ``tol · (1 + |β|)``; each
    iteration is one call of ``spline_terms`` (O(cells · K²) on a sketch). The covariance is
    the inverse Hessian at the answer. The statistics are computed on ``score_points``
    (O(points)); the intervals on ``pooled_points``, two a cell, for each of ``draws``
    coefficient vectors (O(cells · draws)).
    """
    centres, cell_weights, width = summary.score_cells()
    knot_values = spline_knots(knots, centres, cell_weights, width)
    _check_reach(summary, centres, width, knot_values)
    k = knot_values.size
    beta = np.zeros(k)
    beta[1] = 1.0
    loss, gradient, hessian = summary.spline_terms(knot_values, beta)
    status, iterations = "max_iter", 0
    for iterations in range(1, max_iter + 1):
        step = _newton_step(gradient, hessian, knot_values, iterations)
        trial = beta - step
        for _ in range(60):
            new = summary.spline_terms(knot_values, trial)
            if new[0] <= loss + 1e-13 * abs(loss):
                break
            step = 0.5 * step
            trial = beta - step
        else:
            # No step along Newton's direction lowers the loss: a tiny step is no sign of
            # convergence, so the fit stops where it is, unconverged.
            status = "stalled"
            break
        beta = trial
        loss, gradient, hessian = new
        if np.all(np.abs(step) <= tol * (1.0 + np.abs(beta))):
            status = "converged"
            break
    exponent = summary.scale_exponent  # the sums are in units of 2**exponent
    weight_sum = summary.weight_sum
    # Relative to Σ w in the sums' units, where 2**exponent itself would overflow (1e308).
    gradient_norm = float(np.max(np.abs(gradient)) / ldexp(weight_sum, -exponent))
    if status != "converged":
        warnings.warn(f"the calibration curve did not converge after {iterations} iterations; "
                      f"last coefficients {np.array2string(beta, precision=4)}, gradient "
                      f"{gradient_norm:.2g} of the weight", RuntimeWarning, stacklevel=2)
    with np.errstate(over="ignore"):  # weights of 1e-320 carry an information below 1e-308
        covariance = np.ldexp(_inverse(hessian, knot_values), -exponent)
    points, weights, half_width = summary.score_points()
    statistics, bounds = _statistics(points, weights, half_width, knot_values, beta)
    intervals = _simulated_intervals(summary.pooled_points(), knot_values, beta, covariance,
                                     level, draws, seed)
    return SmoothCalibrationCurve(
        method="rcs", knots=knot_values, coefficients=beta, covariance=covariance,
        **statistics, bounds=bounds, intervals=intervals, level=level, draws=draws,
        seed=seed, n_rows=summary.n_rows, weight_sum=weight_sum, status=status,
        iterations=iterations, gradient_norm=gradient_norm,
        truncation=_truncation(centres, width, knot_values, beta, summary),
        offset_is=offset_is, score_range=_middle(centres, cell_weights))


#: The largest rounding error the spline may carry at the farthest score, in log-odds.
_REACH_ROUNDING = 1e-6


def _check_reach(summary: SplineSummary, centres: np.ndarray, width: float,
                 knots: np.ndarray) -> None:
    """Refuse scores so far beyond the knots that the spline's cubic terms, whose
    difference is the straight tail there, lose its digits: the rounding of ``g`` at a score
    ``f`` is about ``ε (|f - t_1| + 1)³ / (t_K - t_1)²`` for coefficients of order 1. Logits
    within a few thousand of the knots pass."""
    reach = np.maximum(np.abs(centres - knots[0]), np.abs(centres - knots[-1])) + width
    rounding = np.finfo(np.float64).eps * (reach + 1.0) ** 3 / (knots[-1] - knots[0]) ** 2
    far = np.flatnonzero(~(rounding <= _REACH_ROUNDING))
    if not far.size:
        return
    farthest = getattr(summary, "farthest_score", None)
    index, value = farthest() if farthest is not None else (None, float(centres[far[-1]]))
    where = "offset" if index is None else f"offset[{index}]"
    raise InputError(
        f"{where} = {value:.6g} lies too far beyond the knots "
        f"{np.array2string(knots, precision=4)} for a spline of the log-odds: its cubic "
        "terms lose every digit there (a probability within "
        f"e^-{min(abs(value), 1e308):.3g} of 0 or 1); clip the scores or leave such rows out",
        argument="offset", index=index, value=value)


def _newton_step(gradient: np.ndarray, hessian: np.ndarray, knots: np.ndarray,
                 iteration: int) -> np.ndarray:
    try:
        factor = np.linalg.cholesky(hessian)
    except np.linalg.LinAlgError:
        raise InputError(
            f"knots {np.array2string(knots, precision=4)}: the spline's information matrix "
            f"is singular at iteration {iteration} (a knot interval holds too few rows, or "
            "the labels are separated); choose fewer knots or knots inside the scores",
            argument="knots", value=knots.tolist()) from None
    return np.linalg.solve(factor.T, np.linalg.solve(factor, gradient))


def _inverse(hessian: np.ndarray, knots: np.ndarray) -> np.ndarray:
    identity = np.eye(hessian.shape[0])
    return _newton_step(identity, hessian, knots, 0)


def _middle(centres: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """The 0.5% and 99.5% quantiles of the cells' centres: the range of the curve's grid."""
    cumulative = np.cumsum(weights) / np.sum(weights)
    low = centres[min(int(np.searchsorted(cumulative, 0.005)), centres.size - 1)]
    high = centres[min(int(np.searchsorted(cumulative, 0.995)), centres.size - 1)]
    return float(low), float(max(high, low))


def _truncation(centres: np.ndarray, width: float, knots: np.ndarray, beta: np.ndarray,
                summary: SplineSummary) -> float:
    """``(width / 2R)^order`` at the worst cell, where ``R`` keeps ``|a_1| R + |a_2| R² +
    |a_3| R³ <= π`` for the cell's cubic ``g(c + d) - g(c) = a_1 d + a_2 d² + a_3 d³``; 0
    where the summary fits on rows."""
    order = getattr(summary, "order", None)
    if order is None:
        return 0.0
    cubic = np.abs(np.einsum("bki,k->bi", spline_cell_polynomials(centres, knots), beta))
    low, high = np.zeros(centres.size), np.full(centres.size, 1e6)
    for _ in range(80):  # the increasing cubic's root, by bisection in every cell at once
        radius = 0.5 * (low + high)
        reach = radius * (cubic[:, 1] + radius * (cubic[:, 2] + radius * cubic[:, 3]))
        inside = reach < math.pi
        low, high = np.where(inside, radius, low), np.where(inside, high, radius)
    return float(np.max((0.5 * width / low) ** order))


# -- the statistics ---------------------------------------------------------------------------

def _type7_quantiles(values: np.ndarray, shares: tuple[float, ...]) -> tuple[float, ...]:
    """R's ``quantile(values, shares)`` (type 7) by one partition of ``values`` in place."""
    n = values.shape[0]
    positions = [(n - 1) * share for share in shares]
    below = [int(math.floor(h)) for h in positions]
    wanted = sorted({i for b in below for i in (b, min(b + 1, n - 1))})
    values.partition(wanted)
    return tuple(float(values[b] + (h - b) * (values[min(b + 1, n - 1)] - values[b]))
                 for h, b in zip(positions, below))


def _weighted_quantile(values: np.ndarray, weights: np.ndarray, shares: tuple[float, ...]
                       ) -> list[np.ndarray]:
    """R's type-7 quantiles generalised to weights, along the first axis: with the values
    sorted and ``C`` their cumulative weight, the value at position ``s`` is the first whose
    ``C >= s``; the quantile interpolates between positions ``⌊h⌋`` and ``⌊h⌋ + 1`` for ``h =
    1 + share (Σ w - 1)``. For unit weights, exactly ``quantile(x, share)``; for integer
    weights, that of the rows repeated. One sort serves every share."""
    order = np.argsort(values, axis=0)
    ordered = np.take_along_axis(values, order, axis=0)
    cumulative = np.cumsum(weights[order], axis=0)
    total = cumulative[-1]
    last = len(ordered) - 1

    def at(position: Any) -> np.ndarray:
        if ordered.ndim == 1:
            return ordered[min(int(np.searchsorted(cumulative, position * (1 - 1e-15))), last)]
        index = np.minimum((cumulative < position * (1 - 1e-15)).sum(axis=0), last)
        return np.take_along_axis(ordered, index[None, :], axis=0)[0]

    out = []
    for share in shares:
        h = 1.0 + share * np.maximum(total - 1.0, 0.0)
        floor = np.floor(h)
        low, high = at(floor), at(floor + 1.0)
        out.append(low + (h - floor) * (high - low))
    return out


def _statistics(points: np.ndarray, weights: np.ndarray, half_width: float, knots: np.ndarray,
                beta: np.ndarray) -> tuple[dict[str, float], dict[str, float]]:
    """ICI, E50, E90 and Emax over the points, and the bound on each where a point stands for
    rows within ``half_width`` of it: ``|D|`` moves by at most ``L_i · half_width`` there,
    with ``L_i = |D'(f_i)| + half_width · sup |D''|`` and ``sup |D''| <= max|σ''| (g'² + 1) +
    max|σ'| |g''|`` (``max|σ''| = 1/(6√3)``, ``max|σ'| = 1/4``)."""
    difference = np.empty(points.shape[0])
    _kernels.spline_differences(points, knots, beta, difference)
    if weights is None:  # rows without weights: R's quantile (type 7), one partition
        total = float(points.shape[0])
        values = {"ici": float(np.sum(difference)) / total,
                  "emax": float(np.max(difference))}
        values["e50"], values["e90"] = _type7_quantiles(difference, (0.5, 0.9))
        return values, dict.fromkeys(_STATISTICS, 0.0)
    kept = weights > 0
    e50, e90 = _weighted_quantile(difference, weights, (0.5, 0.9))
    # The mean in units of the largest weight's power of two (exact): subnormal weights
    # times |D| would otherwise underflow to an ICI of 0.
    weights = np.ldexp(weights, -math.frexp(float(np.max(weights)))[1])
    total = float(np.sum(weights))
    values = {"ici": float(np.sum(weights * difference) / total), "e50": float(e50),
              "e90": float(e90), "emax": float(np.max(difference[kept]))}
    if half_width == 0:
        return values, dict.fromkeys(_STATISTICS, 0.0)
    slope = spline_basis(points, knots, 1) @ beta
    bend = spline_basis(np.concatenate([points, knots]), knots, 2) @ beta
    g = spline_basis(points, knots) @ beta
    up, down = sigmoid_pair(g)
    p_up, p_down = sigmoid_pair(points)
    steepest_bend = 1.0 / (6.0 * math.sqrt(3.0))
    second = steepest_bend * (np.max(slope ** 2) + 1.0) + 0.25 * np.max(np.abs(bend))
    lipschitz = np.abs(up * down * slope - p_up * p_down) + half_width * second
    spread = lipschitz * half_width
    worst = float(np.max(spread[kept]))
    bounds = {"ici": float(np.sum(weights * spread) / total), "e50": worst, "e90": worst,
              "emax": worst}
    return values, bounds


def _simulated_intervals(summary_points: tuple[np.ndarray, np.ndarray], knots: np.ndarray,
                         beta: np.ndarray, covariance: np.ndarray, level: float, draws: int,
                         seed: int | None) -> dict[str, tuple[float, float]]:
    """Percentile intervals of the statistics over coefficients drawn from ``N(β, V)``."""
    pooled, weight = summary_points
    rng = np.random.default_rng(seed)
    if not np.all(np.isfinite(covariance)):  # beyond the doubles: no draws to take
        return {name: (math.nan, math.nan) for name in _STATISTICS}
    try:
        factor = np.linalg.cholesky(covariance)
    except np.linalg.LinAlgError:
        return {name: (math.nan, math.nan) for name in _STATISTICS}
    drawn = beta[:, None] + factor @ rng.standard_normal((beta.size, draws))
    difference = np.empty((draws, pooled.size))
    for i in range(draws):
        _kernels.spline_differences(pooled, knots, drawn[:, i], difference[i])
    difference = difference.T  # (points, draws)
    total = float(np.sum(weight))
    e50, e90 = _weighted_quantile(difference, weight, (0.5, 0.9))
    simulated = {"ici": weight @ difference / total, "e50": e50, "e90": e90,
                 "emax": difference.max(axis=0)}
    tail = 0.5 * (1.0 - level)
    return {name: (float(np.quantile(values, tail)), float(np.quantile(values, 1.0 - tail)))
            for name, values in simulated.items()}


# -- chi-square quantile (the band) --------------------------------------------------------

def chi_square_quantile(level: float, df: int) -> float:
    """``x`` with ``P(χ²_df <= x) = level``, by bisection to the double's resolution."""
    low, high = 0.0, max(4.0 * df, 10.0)
    while regularised_gamma(0.5 * df, 0.5 * high)[0] < level:
        high *= 2.0
    for _ in range(200):
        middle = 0.5 * (low + high)
        if middle in (low, high):
            break
        if regularised_gamma(0.5 * df, 0.5 * middle)[0] < level:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


# -- lowess -------------------------------------------------------------------------------------

def fit_loess(labels: np.ndarray, logits: np.ndarray, weights: np.ndarray | None, *,
              n_rows: int, offset_is: str = "logit", level: float = 0.95,
              delta: float | None = None) -> SmoothCalibrationCurve:
    """``val.prob``'s curve, ``lowess(p, y, iter = 0)`` with R's defaults (``f = 2/3``,
    ``delta = 0.01 · range(p)``), by statsmodels' lowess on the rows in memory; the
    statistics on the rows, exactly, from the fitted value at each row. Not one pass: lowess
    sorts the rows, then fits a local line at each anchor over two thirds of the rows.
    Rows with weights are refused (lowess has none). ``delta``: R's default where None.

    With ``delta = 0`` (a line at every row) statsmodels and R agree to rounding; with the
    default ``delta`` both fit lines only at anchors ``delta`` apart and interpolate between
    them, and their anchors differ a little, so the fitted values differ by up to about
    1e-6 between anchors and ICI, E50, E90 and Emax by about 1e-8 (tests/test_curve.py holds
    both against R)."""
    if weights is not None:
        raise InputError("weight: method='loess' (lowess) takes no weights; use "
                         "method='rcs'", argument="weight")
    try:
        from statsmodels.nonparametric.smoothers_lowess import lowess
    except ImportError:
        raise ImportError("method='loess' needs statsmodels: pip install "
                          "\"logitshift[loess]\"") from None
    y = np.asarray(labels, dtype=np.float64)
    p = sigmoid_pair(np.asarray(logits, dtype=np.float64))[0]
    order = np.argsort(p, kind="stable")
    x = p[order]
    with np.errstate(divide="ignore", invalid="ignore"):  # tied runs, mended below
        fitted_sorted = lowess(y[order], x, frac=2.0 / 3.0, it=0,
                               delta=0.01 * float(x[-1] - x[0]) if delta is None else delta,
                               is_sorted=True,
                               return_sorted=False)
    fitted_sorted = _tied_neighbourhoods(x, y[order], fitted_sorted)
    difference = np.abs(fitted_sorted - x)
    statistics = {"ici": float(np.mean(difference)),
                  "e50": float(np.quantile(difference, 0.5)),
                  "e90": float(np.quantile(difference, 0.9)),
                  "emax": float(np.max(difference))}
    x, first = np.unique(x, return_index=True)
    nan = (math.nan, math.nan)
    finite = np.isfinite(logits)
    low, high = np.quantile(np.asarray(logits)[finite], [0.005, 0.995])
    return SmoothCalibrationCurve(
        method="loess", knots=np.empty(0), coefficients=np.empty(0),
        covariance=np.empty((0, 0)), **statistics, bounds=dict.fromkeys(_STATISTICS, 0.0),
        intervals=dict.fromkeys(_STATISTICS, nan), level=level, draws=0, seed=None,
        n_rows=n_rows, weight_sum=float(y.size), status="lowess", iterations=0,
        gradient_norm=math.nan, truncation=0.0, offset_is=offset_is,
        score_range=(float(low), float(high)), _lowess=(x, fitted_sorted[first]))


def _tied_neighbourhoods(x: np.ndarray, y: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """R's ``lowess`` at a run of tied ``x`` that fills a whole neighbourhood (at least
    ``⌊f n⌋`` rows, ``f = 2/3``): the neighbourhood's radius is 0, every row of the run
    weighs 1 and the fit there is the run's mean of ``y`` (R's ``lowest``: ``r <= 0.001 h``
    gives weight 1). statsmodels divides by the radius there and returns 0 or 1 instead;
    elsewhere its fit is R's. ``x`` sorted."""
    span = max(min(int(2.0 / 3.0 * x.size + 1e-7), x.size), 2)
    values, first, counts = np.unique(x, return_index=True, return_counts=True)
    runs = np.flatnonzero(counts >= span)
    if not runs.size:
        return fitted
    fitted = fitted.copy()
    for run in runs:
        rows = slice(first[run], first[run] + counts[run])
        fitted[rows] = np.mean(y[rows])
    return fitted
