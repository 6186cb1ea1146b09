"""The one result type of every fit, and the statistics derived from it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, NamedTuple

import numpy as np

from .._core import jsonsafe as _json
from .._core.units import ldexp
from .._core.validate import InputError, as_shift
from .solve import Curve, profile_bound

__all__ = ["ShiftFit", "LRTest", "ObservedExpected", "normal_quantile", "regularised_gamma",
           "chi2_sf"]


#: Gauss-Legendre nodes and weights on [0, 1] for the rise of the loss near its minimum.
_NODES, _WEIGHTS = (0.5 * (values + offset) for values, offset in
                    zip(np.polynomial.legendre.leggauss(8), (1.0, 0.0)))
_EPSILON = 2.0 ** -52


def regularised_gamma(a: float, x: float) -> tuple[float, float]:
    """The regularised incomplete gammas ``(P(a, x), Q(a, x))``, ``P + Q = 1``: the one
    that is small computed directly, by its series for ``x < a + 1`` (``P``) and by Lentz's
    continued fraction above (``Q``), so that each keeps its relative precision in the tail
    where it is small (Numerical Recipes §6.2)."""
    if not x > 0:
        return 0.0, 1.0
    if math.isinf(x):
        return 1.0, 0.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1.0:
        term = total = 1.0 / a
        for n in range(1, 10_000):
            term *= x / (a + n)
            total += term
            if abs(term) < abs(total) * 1e-17:
                break
        lower = min(1.0, total * math.exp(log_front))
        return lower, 1.0 - lower
    tiny = 1e-300
    b = x + 1.0 - a
    c, d = 1.0 / tiny, 1.0 / b
    h = d
    for n in range(1, 10_000):
        an = -n * (n - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    upper = min(1.0, math.exp(log_front) * h)
    return 1.0 - upper, upper


def chi2_sf(statistic: float, df: int) -> float:
    """``P(χ²_df > statistic)``: ``Q(df/2, statistic/2)``; 1 for a statistic of 0 or less,
    NaN where nothing was fitted (``df < 1``) and the statistic is above 0."""
    if not statistic > 0:
        return 1.0
    if df < 1:
        return math.nan
    return regularised_gamma(0.5 * df, 0.5 * statistic)[1]


def normal_quantile(level: float) -> float:
    """The two-sided standard normal quantile ``z`` with ``P(|Z| <= z) = level``, to a few
    ulps (relative) for every level in (0, 1).

    ``Φ⁻¹(1/2 + level/2)`` would round its argument: to 1 for levels within an ulp of 1
    (where Φ⁻¹ is infinite) and to ``1/2 + level/2 ± ulp`` for small levels, losing the
    relative accuracy of a small ``z``. So the upper half uses the tail ``1 - level``, exact
    there, and the lower half solves ``erf(z / √2) = level``, whose ``erf`` keeps its relative
    accuracy at 0.
    """
    if (isinstance(level, bool) or not isinstance(level, (int, float, np.floating))
            or not 0 < level < 1):
        raise InputError(f"level = {level!r} must be between 0 and 1 (exclusive)",
                         argument="level", value=level)
    level = float(level)
    if level >= 0.5:
        return -NormalDist().inv_cdf(0.5 * (1.0 - level))
    # erf(x) = 2x/√π (1 - x²/3 + ...): the first term is exact to rounding below 1e-8.
    x = (NormalDist().inv_cdf(0.5 + 0.5 * level) / math.sqrt(2.0) if level > 1e-8
         else level * (0.5 * math.sqrt(math.pi)))
    for _ in range(4):  # Newton on erf from a start accurate to ~1e-16 absolute
        x -= (math.erf(x) - level) / (2.0 / math.sqrt(math.pi) * math.exp(-x * x))
    return math.sqrt(2.0) * x


def _rise_scale(curve: Curve, centre: float, direction: int, z: float, scale: float
                ) -> tuple[float, float]:
    """``(loss(centre + direction·z·scale) - loss(centre)) / z²`` and its derivative in
    ``scale``, for ``centre`` the minimum of the loss.

    Taylor's theorem with the integral remainder, ``loss(c + t) - loss(c) = t² ∫₀¹ (1 - x)
    H(c + t x) dx`` where ``loss'(c) = 0``, sums Hessians (positive terms, each exact to
    rounding) where the difference of two losses would cancel; Gauss-Legendre with 8 nodes
    is exact to rounding for ``|t| < 1``, as the Hessian is analytic in the strip
    ``|Im t| < π``. Dividing by ``z²`` keeps it from underflowing at the smallest levels.
    """
    distance = direction * z * scale
    hessians = np.array([curve.evaluate(centre + distance * x).hessian for x in _NODES])
    inner = float(np.sum(_WEIGHTS * (1.0 - _NODES) * hessians))
    return scale * scale * inner, scale * float(np.sum(_WEIGHTS * hessians))


def _bound_near_minimum(curve: Curve, shift: float, z: float) -> tuple[float, float] | None:
    """The profile interval for a ``z`` so small that the loss rises by less than rounding
    can resolve in a difference of two losses, from :func:`_rise_scale`; None where the
    interval is too wide for its quadrature (then the differences are accurate)."""
    at = curve.evaluate(shift)
    if not at.hessian > 0:
        return None
    # The fitted shift is the minimum to rounding (its gradient is noise): centring there,
    # not one Newton step away, keeps it inside the narrowest intervals.
    centre = shift
    start = 1.0 / math.sqrt(at.hessian)  # the half-width over z, to first order
    if z * start >= 1.0:
        return None
    bounds = []
    for direction in (-1, 1):
        scale = start
        for _ in range(20):
            # G(scale) = rise / z² - 1/2 is convex in scale, so Newton converges from the right
            # of its root monotonically, and from the left after one step.
            rise, slope = _rise_scale(curve, centre, direction, z, scale)
            if not slope > 0:
                return None
            step = (rise - 0.5) / slope
            scale -= step
            if abs(step) <= 1e-15 * scale:
                break
        bounds.append(centre + direction * z * scale)
    return bounds[0], bounds[1]


def _degenerate_bound(curve: Curve, direction: int, log_quantile: float) -> float:
    """The finite end of the interval of an infinite shift: where ``log loss(s)`` reaches
    ``log(z² / 2)``, the loss at the infinite shift being 0.

    The loss falls like ``exp(-|s|)`` towards the infinite shift, where Newton on the loss
    itself crawls by about one logit a step; on its logarithm, nearly linear there, it takes
    a few steps whatever the level. Bracketed, with bisection where a step leaves it.
    """
    def excess(point: float) -> tuple[float, float]:
        terms = curve.evaluate(point)
        if not terms.loss > 0:
            return -math.inf, math.nan
        return math.log(terms.loss) - target, direction * terms.gradient / terms.loss

    # Where the loss is below e^-460 every row is deep in its tail (softplus(x) = e^x to
    # rounding), so log loss is linear with slope 1: the root at the target below, then
    # moved along that line, stays exact where the loss itself would underflow.
    target = max(log_quantile, -460.0)
    beyond = direction * (log_quantile - target)
    anchor = -curve.totals.offset_mean
    inner = outer = anchor
    value_in, _ = value_out, _ = excess(anchor)
    distance = 1.0
    while value_out <= 0 and distance < 1e308:
        outer = anchor + direction * distance
        value_out, _ = excess(outer)
        distance *= 2.0
    distance = 1.0
    while value_in >= 0 and distance < 1e308:
        inner = anchor - direction * distance
        value_in, _ = excess(inner)
        distance *= 2.0
    # Along `direction` the loss rises: the root lies between `inner` and `outer`.
    point = outer
    for _ in range(200):
        value, slope = excess(point)
        if value == 0:
            return point + beyond
        if value > 0:
            outer = point
        else:
            inner = point
        guess = point - direction * value / slope if slope > 0 else math.nan
        if not min(inner, outer) < guess < max(inner, outer):
            guess = 0.5 * inner + 0.5 * outer
        if abs(guess - point) <= 1e-15 * max(1.0, abs(point)) or guess in (inner, outer):
            return guess + beyond
        point = guess
    return point + beyond  # pragma: no cover - a bracketed Newton converges well before


class LRTest(NamedTuple):
    """Likelihood-ratio test of ``shift = 0`` (the offsets unchanged) against the fitted shift.

    ``statistic = 2 (total loss at 0 - total loss at the shift)``, referred to a chi-square
    distribution with 1 degree of freedom.
    """

    statistic: float
    pvalue: float


class ObservedExpected(NamedTuple):
    """Observed over expected positives with the offsets as they are (shift 0).

    ``observed = Σ w y``, ``expected = Σ w σ(offset)``. The interval is
    ``ratio · exp(±z · se_log)`` with ``se_log = sqrt((1 - observed / weight_sum) / observed)``,
    the binomial standard error of ``log(observed)`` (Debray et al., BMJ 2017; 356:i6460).
    """

    ratio: float
    observed: float
    expected: float
    low: float
    high: float
    level: float


@dataclass(frozen=True, repr=False)
class ShiftFit:
    """The optimal shift of the raw scores and what goes with it.

    Attributes
    ----------
    shift : float
        ``argmin_s Σ w · BCE(y, offset + s)``; ``±inf`` when every label is 1 or every label
        is 0 (see ``status``).
    status : str
        ``"closed_form"`` (constant offset: ``log(m / k) - offset``), ``"converged"``
        (Newton), ``"all_negative"`` / ``"all_positive"`` (degenerate labels: the shift is
        infinite), ``"max_iter"`` (Newton stopped without converging), or
        ``"not_identifiable"`` (both parts of the gradient underflow and cannot be compared
        in double precision, so ``shift`` is only the last point tried; the sources of this
        package give the logarithms of the parts wherever they underflow, so it marks a curve
        that does not).
    converged : bool
        Whether ``shift`` is the answer to working precision (True for every status but
        ``"max_iter"`` and ``"not_identifiable"``).
    iterations : int
        Newton iterations (0 for the closed form and the degenerate cases).
    n_rows : int
        Rows read, including those of zero weight.
    weight_sum : float
        ``Σ w``.
    positives : float
        ``Σ w y``, the weighted count of positives.
    loss : float
        Weighted mean cross-entropy at ``shift``, ``Σ w BCE / Σ w``, in nats.
    loss_at_zero : float
        The same with the offsets unchanged (shift 0).
    se : float
        Standard error of the shift. With ``se_type="model"``, ``1 / sqrt(Σ w σ(z)σ(-z))``
        at the shift (the observed information; ``inf`` when the shift is infinite). Where
        the information underflows (data separated by a gap beyond σ's range) it comes from
        its logarithm: finite where the true value is a double, ``inf`` beyond. With
        ``se_type="robust"``, the sandwich (HC0) ``sqrt(Σ w² (y - σ(z))²) / Σ w σ(z)σ(-z)``,
        as statsmodels' ``GLM(..., var_weights=w).fit(cov_type="HC0")``.
    se_type : str
        ``"model"`` or ``"robust"``: which ``se`` this is. The robust one holds for sampling
        (not frequency) weights and for soft labels, where the model's information
        overstates what the rows tell; ``confint`` then defaults to the Wald interval.
    pseudo_count : float
        The weight of each of the two pseudo-rows added to the data (0 for none). With a
        pseudo-count, ``se``, the intervals and the test use the likelihood that includes
        them; ``loss`` and ``loss_at_zero`` are over the data rows alone.
    method : str
        How the sums were computed: ``"closed_form"``, ``"sketch"`` or ``"newton"``.
    passes : int
        Passes over the data rows the fit made (1 for the sketch and the closed form).
    """

    shift: float
    status: str
    converged: bool
    iterations: int
    n_rows: int
    weight_sum: float
    positives: float
    loss: float
    loss_at_zero: float
    se: float
    method: str
    passes: int
    pseudo_count: float = 0.0
    se_type: str = "model"
    # The total objective (data and pseudo-rows) at 0 and at the shift, and the curve itself,
    # so that intervals and tests need no further argument.
    _objective: Curve = field(default=None, compare=False)  # type: ignore[assignment]
    # The data alone, without pseudo-rows: what `loss` and `loss_at` report.
    _data: Curve = field(default=None, compare=False)  # type: ignore[assignment]
    _objective_loss: float = field(default=math.nan, compare=False)
    _objective_loss_at_zero: float = field(default=math.nan, compare=False)
    _expected: float = field(default=math.nan, compare=False)
    # The private sums above and the curves' are in units of 2**_scale_exponent of the weights.
    _scale_exponent: int = field(default=0, compare=False)

    def confint(self, level: float = 0.95, method: str | None = None) -> tuple[float, float]:
        """Confidence interval for the shift.

        Parameters
        ----------
        level : float
            Coverage, strictly between 0 and 1; every such level gives an ordered interval
            that contains ``shift`` and widens with the level.
        method : {"profile", "wald"}, optional
            ``"profile"``: the shifts where twice the rise in total loss equals the
            chi-square(1) quantile (the likelihood-ratio interval; finite on the
            informative side even when the shift is infinite). ``"wald"``:
            ``shift ± z · se``; ``(-inf, inf)`` when the shift is infinite. By default
            ``"profile"``, but ``"wald"`` (with the robust ``se``) where ``se_type`` is
            ``"robust"``: the likelihood's profile assumes the model's variance.

        Returns
        -------
        (low, high) : tuple of float

        Notes
        -----
        Where the rise ``z² / 2`` is within a factor ``1e12`` of the rounding of the total
        loss (small levels), a difference of two losses cannot resolve it; the ends then come
        from the Hessian, ``loss(s) - loss(shift) = t² ∫₀¹ (1 - x) H(shift + t x) dx`` with
        ``t = s - shift``, by 8-point Gauss-Legendre (eight evaluations of the curve per
        Newton step: passes over the data for ``method="newton"``). For an infinite shift the
        finite end solves ``log loss(s) = log(z² / 2)``, which stays exact where the loss
        underflows.
        """
        z = normal_quantile(level)
        if method is None:
            method = "profile" if self.se_type == "model" else "wald"
        if method == "wald":
            if not math.isfinite(self.shift):
                return (-math.inf, math.inf)
            return (self.shift - z * self.se, self.shift + z * self.se)
        if method != "profile":
            raise InputError(f"method = {method!r} must be 'profile' or 'wald'",
                             argument="method", value=method)
        # The curve's sums are in units of 2**scale_exponent of the weights: so is the rise
        # z² / 2 of the total loss, which is z_units² / 2 in those units.
        units = self._scale_exponent
        half_quantile = ldexp(0.5 * z * z, -units)
        z_units = ldexp(z, -(units // 2)) * (math.sqrt(0.5) if units % 2 else 1.0)
        if math.isinf(self.shift):
            finite = -1 if self.shift > 0 else 1
            end = _degenerate_bound(self._objective, finite, 2.0 * math.log(z_units)
                                    - math.log(2.0))
            return (end, self.shift) if finite < 0 else (self.shift, end)
        # A difference of two total losses is accurate to about eps · |loss|; where that is
        # not far below the rise it is to find, sum the Hessians instead.
        if not 1e12 * _EPSILON * abs(self._objective_loss) < half_quantile:
            near = _bound_near_minimum(self._objective, self.shift, z_units)
            if near is not None:
                return near
        start = 1.5 * z * self.se if math.isfinite(self.se) else 1.0
        bounds = [
            profile_bound(self._objective, self.shift, self._objective_loss, half_quantile,
                          direction, start)
            for direction in (-1, 1)
        ]
        return (bounds[0], bounds[1])

    def loss_at(self, shift: float) -> float:
        """Weighted mean cross-entropy of the data rows at another shift.

        ``Σ w BCE(y, offset + shift) / Σ w``, from the same sums as the fit (no pass over the
        data for a sketch or the closed form; one pass for ``method="newton"``):
        ``loss_at(result.shift) == result.loss`` and ``loss_at(0) == result.loss_at_zero``.
        Like ``loss``, it leaves out the pseudo-rows, so with a pseudo-count its minimum
        lies near, not at, ``shift``.

        Parameters
        ----------
        shift : float
            Any shift, ``±inf`` included (where the loss is 0 or ``inf``).

        Returns
        -------
        float
        """
        return self._data.evaluate(as_shift(shift)).loss / self._data.totals.weight_sum

    def lr_test(self) -> LRTest:
        """Likelihood-ratio test that the shift is 0, chi-square with 1 degree of freedom
        (under the model's variance, whatever ``se_type``)."""
        statistic = max(0.0, ldexp(2.0 * (self._objective_loss_at_zero - self._objective_loss),
                                   self._scale_exponent))
        return LRTest(statistic, math.erfc(math.sqrt(0.5 * statistic)))

    @property
    def observed_expected(self) -> ObservedExpected:
        """Observed / expected positives at shift 0 with its 95% interval."""
        return self.observed_expected_at(0.95)

    def observed_expected_at(self, level: float) -> ObservedExpected:
        """Observed / expected positives at shift 0 with an interval of the given level."""
        z = normal_quantile(level)
        # In the sums' units: the ratio does not depend on them, the spread as 1 / sqrt.
        exponent = self._scale_exponent
        observed = ldexp(self.positives, -exponent)
        weight_sum = ldexp(self.weight_sum, -exponent)
        if exponent and self._data is not None:
            observed, weight_sum = self._data.totals.positives, self._data.totals.weight_sum
        expected = self._expected
        ratio = observed / expected if expected > 0 else math.inf
        if observed > 0:
            spread = z * ldexp(math.sqrt(max(0.0, 1.0 - observed / weight_sum) / observed
                                         * 2.0 ** (exponent % 2)), -(exponent // 2 + exponent % 2))
            # Weights of 5e-324 carry almost no information: the interval is (0, inf).
            low = ratio * math.exp(-spread)
            high = ratio * math.exp(spread) if spread < 700 else math.inf
        else:
            low, high = 0.0, math.inf
        return ObservedExpected(ratio, self.positives, ldexp(expected, exponent), low, high,
                                level)

    def to_dict(self, level: float = 0.95, *, json_safe: bool = False) -> dict[str, Any]:
        """The result as plain Python values, with the interval (``ci_low``, ``ci_high``: by
        ``confint``'s default method), the Wald interval, the likelihood-ratio test and the
        observed/expected ratio at ``level``.

        With ``json_safe=True``, the same values as strict JSON holds them (``inf``,
        ``-inf`` and ``nan`` as the strings ``"inf"``, ``"-inf"``, ``"nan"``; numpy scalars
        as Python numbers): ``json.dumps(result.to_dict(json_safe=True), allow_nan=False)``
        succeeds, and is what ``logitshift ... --json`` prints.
        """
        low, high = self.confint(level)
        wald_low, wald_high = self.confint(level, method="wald")
        test = self.lr_test()
        oe = self.observed_expected_at(level)
        record = {
            "shift": self.shift,
            "se": self.se,
            "se_type": self.se_type,
            "status": self.status,
            "converged": self.converged,
            "iterations": self.iterations,
            "n_rows": self.n_rows,
            "weight_sum": self.weight_sum,
            "positives": self.positives,
            "loss": self.loss,
            "loss_at_zero": self.loss_at_zero,
            "pseudo_count": self.pseudo_count,
            "method": self.method,
            "passes": self.passes,
            "level": level,
            "ci_low": low,
            "ci_high": high,
            "wald_low": wald_low,
            "wald_high": wald_high,
            "lr_statistic": test.statistic,
            "lr_pvalue": test.pvalue,
            "observed": oe.observed,
            "expected": oe.expected,
            "observed_expected": oe.ratio,
            "observed_expected_low": oe.low,
            "observed_expected_high": oe.high,
        }
        return _json.json_safe(record) if json_safe else record

    def __repr__(self) -> str:
        return (
            f"ShiftFit(shift={self.shift!r}, se={self.se:.6g}, "
            f"{'' if self.se_type == 'model' else 'se_type=' + repr(self.se_type) + ', '}"
            f"status={self.status!r}, "
            f"iterations={self.iterations}, method={self.method!r}, passes={self.passes}, "
            f"n_rows={self.n_rows}, "
            f"positives={self.positives:.10g}, weight_sum={self.weight_sum:.10g}, "
            f"loss={self.loss:.6g}, loss_at_zero={self.loss_at_zero:.6g})"
        )
