"""Per-group shifts: the maximum-likelihood shift of every group, and the random-intercept
model ``y ~ Bernoulli(σ(offset + μ + u_g))``, ``u_g ~ N(0, τ²)``, from per-group curves.

The estimator sees the data only through *group curves* (:class:`GroupCurves`): the groups'
keys and totals, every group's sums at its own shift in one call, each group as a curve of
its own (:class:`solve.Curve`) and the curve of all rows together. Where they came from (a
:class:`~logitshift.GroupSketch` of arrays, of a stream, of a cluster) is not
this module's business.
"""

from __future__ import annotations

import math
import reprlib
import warnings
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .._core import jsonsafe as _json
from .._core.losses import sigmoid_abs, softplus
from .._core.units import ldexp
from .._core.validate import InputError, as_positive_int, warn
from .result import LRTest, ShiftFit, chi2_sf, normal_quantile
from .shift import check_options, fit_curve
from .solve import Curve, pseudo_count_too_large

__all__ = ["GroupTotals", "GroupTerms", "GroupIntegrals", "GroupCurves", "GroupShiftFit",
           "fit_group_curves", "check_group_options", "check_l2", "SHRINKAGES"]

SHRINKAGES = (None, "random")
#: The most Gauss-Hermite points: beyond, the rule's weights underflow.
MAX_NAGQ = 100
#: A float group column of at least this many rows, with more distinct values than this
#: share of them, not all whole numbers, is taken for scores passed as groups.
_SCORE_LIKE_ROWS = 20
_SCORE_LIKE_SHARE = 0.5


@dataclass(frozen=True)
class GroupTotals:
    """Each group's totals, as arrays over the groups (the fields of `solve.CurveTotals`)."""

    n_rows: np.ndarray
    weight_sum: np.ndarray
    positives: np.ndarray
    active_negatives: np.ndarray
    active_positives: np.ndarray
    offset_min: np.ndarray
    offset_max: np.ndarray
    offset_mean: np.ndarray
    #: Group ``g``'s weighted totals, and its sums (:class:`GroupTerms`, the losses), are in
    #: units of ``2**scale_exponent[g]`` of the weights (`solve.CurveTotals`'s units, a
    #: group at a time); None: all 0.
    scale_exponent: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.scale_exponent is None:
            object.__setattr__(self, "scale_exponent",
                               np.zeros(self.n_rows.size, dtype=np.int64))


@dataclass(frozen=True)
class GroupTerms:
    """Each group's sums at its own shift (the fields of `solve.Terms`, as arrays)."""

    negative: np.ndarray
    positive: np.ndarray
    gradient: np.ndarray
    negative_curvature: np.ndarray
    positive_curvature: np.ndarray
    loss: np.ndarray

    @property
    def hessian(self) -> np.ndarray:
        return self.negative_curvature + self.positive_curvature

    def __add__(self, other: GroupTerms) -> GroupTerms:
        return GroupTerms(*(getattr(self, name) + getattr(other, name) for name in _TERMS))


@dataclass(frozen=True)
class GroupIntegrals:
    """Each group's integral over its random intercept, ``-log ∫ exp(-L(μ + u)) φ(u; 0, τ²)
    du`` (Laplace or adaptive Gauss-Hermite), in the user's units, with its mode (arrays
    over the groups; 0 for the groups not asked for). Derivatives are exact, in ``(μ, θ =
    log τ)``: pairs in the order ``(μ, θ)``, Hessians as ``(μμ, μθ, θθ)``."""

    value: np.ndarray
    gradient: np.ndarray  # (groups, 2)
    hessian: np.ndarray  # (groups, 3)
    #: The mode as a shift, ``μ + û``; the loss's second derivative there; the shift's
    #: derivatives in ``(μ, θ)``.
    shift: np.ndarray
    curvature: np.ndarray
    shift_gradient: np.ndarray  # (groups, 2)
    shift_hessian: np.ndarray  # (groups, 3)
    #: Steps of the mode's search.
    iterations: np.ndarray


#: A label part of the gradient below this share of its weight has lost its digits.
_TINY = 2.0 ** -900
#: Below this a label part leaves the normal doubles (2**-1022) within 22 bits.
_NORMAL = 2.0 ** -1000

_TERMS = ("negative", "positive", "gradient", "negative_curvature", "positive_curvature",
          "loss")


class GroupCurves(Protocol):
    """What the per-group estimators need of the data."""

    @property
    def keys(self) -> np.ndarray: ...

    @property
    def group_totals(self) -> GroupTotals: ...

    def evaluate_groups(self, shifts: np.ndarray, wanted: np.ndarray | None = None, *,
                        loss: bool = True) -> GroupTerms:
        """Each wanted group's sums at its shift; without ``loss``, the loss may be NaN."""

    def group_integrals(self, mean: float, tau: float, start: np.ndarray,
                        negatives: np.ndarray, positives: np.ndarray, nodes: np.ndarray,
                        weights: np.ndarray, wanted: np.ndarray) -> GroupIntegrals: ...

    def curve(self, index: int) -> Curve: ...

    def pooled(self) -> Curve: ...


def check_group_options(shrinkage: Any, nagq: Any, pseudo_count: Any, tol: Any,
                        max_iter: Any, l2: Any = 0.0) -> dict[str, Any]:
    """The options of :func:`logitshift.fit_groups`, checked before any pass."""
    l2 = check_l2(l2)
    if l2 > 0 and shrinkage == "random":
        raise InputError(
            f"l2 = {l2!r} cannot be combined with shrinkage='random': the random-intercept "
            "model estimates its own penalty, 1/tau**2 (with its mean at 0, a penalty of "
            "1/tau**2 is the same model with tau fixed)", argument="l2", value=l2)
    if shrinkage not in SHRINKAGES:
        raise InputError(f"shrinkage = {shrinkage!r} must be None or 'random'",
                         argument="shrinkage", value=shrinkage)
    nagq = as_positive_int(nagq, "nagq")
    if nagq > MAX_NAGQ:
        raise InputError(f"nagq = {nagq} must be at most {MAX_NAGQ}", argument="nagq",
                         value=nagq)
    if shrinkage is None and nagq != 1:
        raise InputError("nagq applies to shrinkage='random' only", argument="nagq",
                         value=nagq)
    pseudo_count, tol, max_iter = check_options(None, pseudo_count, tol, max_iter)
    return {"shrinkage": shrinkage, "nagq": nagq, "pseudo_count": pseudo_count, "tol": tol,
            "max_iter": max_iter, "l2": l2}


def check_l2(l2: Any) -> float:
    """``l2`` as a finite float >= 0, or an :class:`InputError` naming it."""
    if isinstance(l2, (bool, np.bool_)) or not isinstance(l2, (int, float, np.integer,
                                                                 np.floating)):
        raise InputError(f"l2 = {l2!r} must be a number >= 0", argument="l2", value=l2)
    try:
        value = float(l2)
    except OverflowError:  # an int beyond the doubles
        value = math.inf if l2 > 0 else -math.inf
    if not (math.isfinite(value) and value >= 0):
        raise InputError(f"l2 = {value!r} must be finite and >= 0", argument="l2",
                         value=value)
    return value


def _pseudo_weight(pseudo_count: float, totals: GroupTotals) -> np.ndarray:
    """The pseudo-rows' weight in each group's units, as `solve.pseudo_rows` has it (inf
    where it is beyond the doubles there)."""
    with np.errstate(over="ignore"):
        return np.ldexp(pseudo_count, -totals.scale_exponent.astype(np.intc))


def _pseudo_terms(mean: np.ndarray, pseudo_count: float, shifts: np.ndarray) -> GroupTerms:
    """The two pseudo-rows of each group (labels 1 and 0, weight ``pseudo_count``, at its
    mean offset), as `solve.ArrayCurve` sums them."""
    z = mean + shifts
    right = z > 0
    near, tail = sigmoid_abs(z)
    a = pseudo_count
    return GroupTerms(
        negative=a * np.where(right, near, tail), positive=a * np.where(right, tail, near),
        gradient=np.where(right, a, -a) + 2.0 * a * np.where(right, -tail, tail),
        negative_curvature=a * (near * tail), positive_curvature=a * (near * tail),
        loss=a * softplus(-z) + a * softplus(z))


def _penalty_weight(l2: float, totals: GroupTotals) -> np.ndarray:
    """``l2`` in each group's units (the penalty ``l2·s²/2`` is in the user's units of
    weight, as the loss it is added to)."""
    with np.errstate(over="ignore", under="ignore"):
        return np.ldexp(l2, -totals.scale_exponent.astype(np.intc))


def _penalty_terms(penalty: np.ndarray, shifts: np.ndarray) -> GroupTerms:
    """The sums of each group's penalty ``penalty·s²/2``: gradient ``penalty·s``, Hessian
    ``penalty``. The gradient is put in the label part it has the sign of (``negative`` for
    ``s > 0``, ``positive`` for ``s < 0``, as a row of label 0 or 1 would be), its curvature
    with it, so that the solver's step on ``log(negative / positive)`` finds the root of the
    penalised gradient ``negative - positive``."""
    up = shifts >= 0
    pull = penalty * shifts
    return GroupTerms(
        negative=np.where(up, pull, 0.0), positive=np.where(up, 0.0, -pull), gradient=pull,
        negative_curvature=np.where(up, penalty, 0.0),
        positive_curvature=np.where(up, 0.0, penalty), loss=0.5 * pull * shifts)


def _log_ratios(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """`units.log_ratio`, group by group: ``log(a / b)``, unchanged to the bit when a
    group's ``a`` and ``b`` are multiplied by the same power of two (its units)."""
    with np.errstate(all="ignore"):
        ratio = a / b
        near = np.log1p((a - b) / b)  # a - b is exact here (Sterbenz)
        mantissa_a, exponent_a = np.frexp(a)
        mantissa_b, exponent_b = np.frexp(b)
        far = np.log(mantissa_a / mantissa_b) + (exponent_a - exponent_b) * math.log(2.0)
        return np.where((0.5 <= ratio) & (ratio <= 2.0), near,
                        np.where((2.0 ** -1000 < ratio) & (ratio < 2.0 ** 1000), np.log(ratio),
                                 far))


def _log_ratio_steps(terms: GroupTerms) -> np.ndarray:
    """`solve._log_ratio_step`, group by group (nan where it is undefined)."""
    a, b = terms.negative, terms.positive
    with np.errstate(all="ignore"):
        slope = terms.negative_curvature / a + terms.positive_curvature / b
        ratio = terms.gradient / b
        log_ratio = np.where(np.abs(ratio) < 0.5, np.log1p(ratio), _log_ratios(a, b))
        step = -log_ratio / slope
    ok = (a > 0) & (b > 0) & np.isfinite(a) & np.isfinite(b) & (slope > 0)
    return np.where(ok, step, math.nan)


def _splits(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """`solve._split`, group by group."""
    with np.errstate(all="ignore"):
        middle = 0.5 * lo + 0.5 * hi
        up = np.sqrt(np.maximum(lo, 1.0)) * np.sqrt(np.abs(hi))
        down = -np.sqrt(np.maximum(-hi, 1.0)) * np.sqrt(np.abs(lo))
    return np.where((lo < -1.0) & (hi > 1.0), 0.0,
                    np.where((lo >= 0.0) & (hi > 4.0 * np.maximum(lo, 1.0)), up,
                             np.where((hi <= 0.0) & (-lo > 4.0 * np.maximum(-hi, 1.0)), down,
                                      middle)))


@dataclass
class _Solutions:
    shift: np.ndarray
    status: np.ndarray
    iterations: np.ndarray


def _solve_groups(evaluate: Any, totals: GroupTotals, todo: np.ndarray, tol: float,
                  max_iter: int, penalty: np.ndarray | None = None) -> _Solutions:
    # Brackets of groups that are done may be infinite: their arithmetic is not looked at.
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        return _solve_groups_in(evaluate, totals, todo, tol, max_iter, penalty)


def _penalised_bracket(totals: GroupTotals, penalty: np.ndarray, lo: np.ndarray,
                       hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The bracket of each group's penalised root, from its unpenalised one ``[lo, hi]``.

    The penalised gradient ``g(s) + λ s`` is negative at ``min(lo, 0)`` and positive at
    ``max(hi, 0)``: its root lies between 0 and the unpenalised root. A group of one class
    (``lo`` or ``hi`` infinite) has, for ``s > 0`` and ``W`` its weight,
    ``λ s = Σ w σ(-(o + s)) <= min(W, W e^(-o_min - s))``, so its root is at most
    ``min(W / λ, max(1, log(W / λ) - o_min))`` (mirrored for labels all 0)."""
    weight = totals.active_negatives + totals.active_positives
    log_reach = np.log(weight) - np.log(penalty)
    up = np.minimum(weight / penalty,
                    np.maximum(1.0, log_reach - np.minimum(totals.offset_min, 0.0)))
    down = np.minimum(weight / penalty,
                      np.maximum(1.0, log_reach + np.maximum(totals.offset_max, 0.0)))
    lo = np.where(np.isinf(lo) & (lo < 0), -down, np.minimum(lo, 0.0))
    hi = np.where(np.isinf(hi) & (hi > 0), up, np.maximum(hi, 0.0))
    return lo, hi


def _solve_groups_in(evaluate: Any, totals: GroupTotals, todo: np.ndarray, tol: float,
                     max_iter: int, penalty: np.ndarray | None) -> _Solutions:
    """`solve.solve_curve` on every group of ``todo`` at once (each must have positives and
    negatives, or a penalty > 0): the same bracket, start, steps and stopping rule, one
    evaluation of the groups still iterating per step. With ``penalty`` (each group's
    ``λ``, in its units; ``evaluate`` includes it), the bracket is the penalised root's
    (`_penalised_bracket`) and no group has the closed form."""
    n = todo.size
    shift = np.full(n, math.nan)
    status = np.full(n, "", dtype=object)
    iterations = np.zeros(n, dtype=np.int64)
    center = _log_ratios(totals.active_positives, totals.active_negatives)
    lo, hi = center - totals.offset_max, center - totals.offset_min
    if penalty is not None:
        lo, hi = _penalised_bracket(totals, penalty, lo, hi)
    closed = todo & (lo == hi) & (True if penalty is None else penalty == 0)
    shift[closed], status[closed] = lo[closed], "closed_form"
    todo = todo & ~closed
    x = np.where(todo, np.minimum(np.maximum(center - totals.offset_mean, lo), hi), 0.0)
    step = np.full(n, math.inf)
    older = np.full(n, math.inf)

    def finish(which: np.ndarray, value: np.ndarray, iteration: int) -> None:
        shift[which], status[which], iterations[which] = value[which], "converged", iteration

    for iteration in range(1, max_iter + 1):
        if not todo.any():
            break
        terms = evaluate(x, todo)
        gradient = terms.gradient
        zero = todo & (gradient == 0)
        finish(zero, x, iteration)
        todo = todo & ~zero
        hi = np.where(todo & (gradient > 0), x, hi)
        lo = np.where(todo & ~(gradient > 0), x, lo)
        newton = _log_ratio_steps(terms)
        with np.errstate(invalid="ignore"):
            target = x + newton
            small = todo & (np.abs(newton) <= tol * np.maximum(1.0, np.abs(x)))
        finish(small, np.minimum(np.maximum(target, lo), hi), iteration)
        todo = todo & ~small
        with np.errstate(invalid="ignore"):
            leave = ~((lo < target) & (target < hi)) | (np.abs(newton) > 0.5 * np.abs(older))
        target = np.where(todo & leave, _splits(lo, hi), target)
        older, step = np.where(todo, step, older), np.where(todo, target - x, step)
        scale = tol * np.maximum(1.0, np.abs(target))
        done = todo & ((np.abs(step) <= scale) | (hi - lo <= scale))
        finish(done, target, iteration)
        todo = todo & ~done
        x = np.where(todo, target, x)
    shift[todo], status[todo], iterations[todo] = x[todo], "max_iter", max_iter
    return _Solutions(shift, status, iterations)


# -- the random-intercept model -----------------------------------------------------------------

@dataclass(frozen=True)
class _Point:
    """``-log L`` at one ``(μ, log τ)``, its exact gradient and Hessian there; each group's
    term of ``-log L``, its mode ``û`` and its loss's second derivative at ``μ + û``."""

    value: float
    gradient: np.ndarray
    hessian: np.ndarray
    per_group: np.ndarray
    modes: np.ndarray
    curvature: np.ndarray


class _Marginal:
    """The negative log marginal likelihood of the random-intercept model, group by group:
    each group's integral over its intercept on its own curve.

    For a group with loss ``L(s)`` (its total cross-entropy at shift ``s``), the integrand
    is ``exp(-h(u)) / sqrt(2π τ²)`` with ``h(u) = L(μ + u) + u² / (2τ²)``. Its mode ``û``
    solves ``L'(μ + û) + û / τ² = 0``, its curvature is ``L''(μ + û) + 1/τ²``. With ``σ̂``
    the inverse square root of that curvature, adaptive Gauss-Hermite with nodes ``t_k`` and
    weights ``w_k`` (normalised to sum 1) gives

        -log ∫ = h(û) + ½ log(1 + τ² L''(μ + û)) - log Σ_k w_k exp(h(û) - h(û + σ̂ t_k) + t_k²/2),

    the Laplace approximation at one node (the last term vanishes). The group curves'
    ``group_integrals`` gives each group's term with its exact gradient and Hessian in
    ``(μ, log τ)`` (`kernels.group_integrals`), from modes predicted to second order off
    the last ones found.

    Calling it (``marginal(μ, log τ)``) gives ``-log L`` and keeps the point, derivatives
    and modes, as :attr:`last`: each call is one evaluation of every group.
    """

    def __init__(self, groups: GroupCurves, totals: GroupTotals, wanted: np.ndarray,
                 nagq: int) -> None:
        self.groups, self.wanted, self.nagq = groups, wanted, nagq
        self.positives = np.where(wanted, totals.active_positives, 0.0)
        self.negatives = np.where(wanted, totals.active_negatives, 0.0)
        self._rules = {count: _hermite_rule(count) for count in {1, nagq}}
        # The last evaluation: its (μ, log τ) and its `group_integrals` rows, whose modes
        # and their derivatives predict the next ones.
        self._found: tuple[float, float, np.ndarray] | None = None
        self.last: _Point | None = None
        self._key: tuple[float, float, int] | None = None
        self.evaluations = 0

    def __call__(self, mean: float, log_tau: float, nagq: int | None = None) -> float:
        nagq = self.nagq if nagq is None else nagq
        key = (float(mean), float(log_tau), nagq)
        if key != self._key:
            self.last, self._key = self._evaluate(*key), key
        return self.last.value

    def point(self, mean: float, log_tau: float, nagq: int | None = None) -> _Point:
        """The evaluation at ``(μ, log τ)`` (a call, kept)."""
        self(mean, log_tau, nagq)
        return self.last

    def laplace(self, mean: float, log_tau: float) -> float:
        """The value at one node, whatever the model's ``nagq``."""
        return self(mean, log_tau, 1)

    def _evaluate(self, mean: float, log_tau: float, nagq: int) -> _Point:
        self.evaluations += 1
        nodes, weights = self._rules[nagq]
        groups = self.groups.group_integrals(mean, math.exp(log_tau),
                                             self._predicted(mean, log_tau), self.negatives,
                                             self.positives, nodes, weights, self.wanted)
        self._found = (mean, log_tau, groups)
        h_mm, h_mt, h_tt = groups.hessian.sum(axis=0)
        return _Point(float(np.sum(groups.value)), groups.gradient.sum(axis=0),
                      np.array([[h_mm, h_mt], [h_mt, h_tt]]), groups.value,
                      np.where(self.wanted, groups.shift - mean, 0.0), groups.curvature)

    def _predicted(self, mean: float, log_tau: float) -> np.ndarray:
        """The modes ``û`` at ``(μ, log τ)`` to second order from the last ones found: each
        group's mode as a shift, ``s = μ + û``, by its Taylor polynomial in ``(μ, log τ)``
        (derivatives from the mode's equation). Near the last point Halley's method then
        needs one step."""
        if self._found is None:
            return np.zeros(self.wanted.size)
        last_mean, last_log_tau, groups = self._found
        dm, dt = mean - last_mean, log_tau - last_log_tau
        (s_m, s_t), (s_mm, s_mt, s_tt) = groups.shift_gradient.T, groups.shift_hessian.T
        with np.errstate(all="ignore"):
            modes = (groups.shift - mean + s_m * dm + s_t * dt
                     + 0.5 * (s_mm * dm * dm + 2.0 * s_mt * dm * dt + s_tt * dt * dt))
        return np.where(np.isfinite(modes), modes, groups.shift - last_mean)


def _hermite_rule(count: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Hermite nodes and weights (probabilists', weights summing to 1)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(count)
    return nodes, weights / weights.sum()


#: Below this τ the model is the single shift to rounding: the boundary.
_TAU_FLOOR = 1e-6


def _maximise(evaluate: Any, mean: float, tau: float, max_iter: int, tol: float = 1e-8
              ) -> tuple[float, float, _Point, bool, int]:
    """Newton on ``(μ, log τ)`` for ``evaluate(μ, log τ)`` (a :class:`_Point` of the
    negative log-likelihood, with its exact gradient and Hessian), with a line search that
    backtracks by cubic interpolation (`_backtrack`); returns ``(μ̂, τ̂, point, converged,
    iterations)``. It stops at a point whose Newton step is within ``tol`` (relative), that
    is within about ``tol`` of the optimum: Newton's next point would be within about
    ``tol²``."""
    point = np.array([mean, math.log(tau)])
    here = evaluate(*point)
    for iteration in range(1, max_iter + 1):
        gradient, hessian = here.gradient, here.hessian
        try:
            eigen = np.linalg.eigvalsh(hessian)
            if eigen.min() > 0:
                direction = -np.linalg.solve(hessian, gradient)
            else:
                direction = -gradient / np.maximum(np.abs(np.diag(hessian)), 1e-8)
        except np.linalg.LinAlgError:
            direction = -gradient / np.maximum(np.abs(np.diag(hessian)), 1e-8)
        if (np.abs(direction) <= tol * np.maximum(1.0, np.abs(point))).all():
            return float(point[0]), math.exp(point[1]), here, True, iteration
        if 1.5 * gradient[1] < hessian[1, 1] < 2.5 * gradient[1]:
            # Towards τ = 0, -log L is about a + b τ² = a + b e^(2 log τ), where Newton's
            # step in log τ is -1/2 however far the boundary: reach further (the line search
            # keeps the step honest).
            direction[1] *= 6.0
        # A step in log τ beyond 3 is never trusted whole.
        direction *= min(1.0, 3.0 / max(abs(direction[1]), 1e-300))
        slope = float(gradient @ direction)
        size, trial, there = 1.0, point + direction, evaluate(*(point + direction))
        while not (there.value <= here.value + 1e-4 * size * slope) and size >= 1e-8:
            size = _backtrack(here.value, slope, size, there.value,
                              float(there.gradient @ direction))
            trial = point + size * direction
            there = evaluate(*trial)
        moved = np.abs(trial - point)
        if there.value <= here.value:
            point, here = trial, there
        if point[1] < math.log(_TAU_FLOOR):
            return float(point[0]), 0.0, here, True, iteration
        if (moved <= 1e-10 * np.maximum(1.0, np.abs(point))).all() or size < 1e-8:
            return float(point[0]), math.exp(point[1]), here, True, iteration
    return float(point[0]), math.exp(point[1]), here, False, max_iter


def _backtrack(value: float, slope: float, size: float, trial_value: float,
               trial_slope: float) -> float:
    """The next, shorter step of a backtracking line search along a descent direction: the
    minimiser of the cubic through the values and slopes at 0 and ``size`` (Nocedal and
    Wright, eq. 3.59), kept within ``[0.1, 0.5] · size``."""
    d1 = slope + trial_slope - 3.0 * (value - trial_value) / (0.0 - size)
    radicand = d1 * d1 - slope * trial_slope
    if radicand >= 0 and math.isfinite(radicand):
        d2 = math.sqrt(radicand)
        denominator = trial_slope - slope + 2.0 * d2
        cubic = size - size * (trial_slope + d2 - d1) / denominator if denominator else math.nan
    else:
        cubic = math.nan
    if not math.isfinite(cubic):
        return 0.5 * size
    return min(max(cubic, 0.1 * size), 0.5 * size)


@dataclass(frozen=True)
class _RandomPart:
    mean: float
    mean_se: float
    tau: float
    loglik: float
    shrunk: np.ndarray
    shrunk_se: np.ndarray
    converged: bool
    iterations: int
    nagq: int
    marginal: _Marginal = field(repr=False, compare=False)
    #: The observed information in ``(μ, log τ)`` at the optimum (None at ``τ̂ = 0``).
    information: np.ndarray | None = field(default=None, repr=False, compare=False)


class _InUserUnits:
    """Group curves whose groups keep their sums in units of their own (see
    :class:`GroupTotals`), seen in the user's units, which the random-intercept model adds
    across groups. Only for a fit whose weights sum within [2**-500, 2**500]: there no group's
    sums overflow, and a group whose own have fallen into the subnormals weighs nothing
    beside the others."""

    def __init__(self, groups: GroupCurves, totals: GroupTotals) -> None:
        self._groups = groups
        self._exponent = totals.scale_exponent.astype(np.intc)
        self.keys = groups.keys
        self.group_totals = GroupTotals(**{
            **totals.__dict__, "scale_exponent": np.zeros(totals.n_rows.size, dtype=np.int64),
            **{name: np.ldexp(getattr(totals, name), self._exponent)
               for name in ("weight_sum", "positives", "active_negatives",
                            "active_positives")}})

    def evaluate_groups(self, shifts: np.ndarray, wanted: np.ndarray | None = None, *,
                        loss: bool = True) -> GroupTerms:
        terms = self._groups.evaluate_groups(shifts, wanted, loss=loss)
        return GroupTerms(*(np.ldexp(getattr(terms, name), self._exponent)
                            for name in _TERMS))

    def group_integrals(self, *arguments: Any) -> GroupIntegrals:
        # (Each group's in the user's units already.)
        return self._groups.group_integrals(*arguments)

    def curve(self, index: int) -> Curve:
        return self._groups.curve(index)

    def pooled(self) -> Curve:
        return self._groups.pooled()


def _fit_random(groups: GroupCurves, totals: GroupTotals, usable: np.ndarray, pooled: ShiftFit,
                nagq: int, max_iter: int) -> _RandomPart:
    if not math.isfinite(pooled.shift):
        raise InputError("every label is one class: the random-intercept model has no "
                         "finite mean", argument="y")
    marginal = _Marginal(groups, totals, usable, nagq)
    # τ² to start from, by the moments of the groups' residuals at the pooled shift: with
    # r_g = Σ w (y - σ(z)) and v_g = Σ w σ(z) σ(-z), E r_g² = v_g + τ² v_g² to first order in
    # τ² (at least 0.04: from below, Newton in log τ creeps).
    at_pooled = groups.evaluate_groups(np.where(usable, pooled.shift, 0.0), usable)
    residual, variance = at_pooled.gradient[usable], at_pooled.hessian[usable]
    with np.errstate(all="ignore"):
        moment = float(np.sum(residual * residual - variance) / np.sum(variance * variance))
    tau = math.sqrt(moment) if moment > 0.04 else 0.2
    # The Laplace optimum first (no points but the modes); with more nodes, Newton on their
    # value goes on from near it (to 1e-5: their optimum is further away than that).
    start = tau
    mean, tau, here, converged, iterations = _maximise(
        lambda m, t: marginal.point(m, t, 1), pooled.shift, tau, max_iter,
        1e-8 if nagq == 1 else 1e-5)
    if nagq > 1 and iterations < max_iter:  # the two share max_iter
        mean, tau, here, converged, more = _maximise(
            marginal.point, mean if tau > 0 else pooled.shift, tau if tau > 0 else start,
            max_iter - iterations)
        iterations += more
    elif nagq > 1:  # the Laplace fit spent them: the quadrature's value at its end
        converged = False
        if tau > 0:
            here = marginal.point(mean, math.log(tau))
    value = here.value
    pooled_loss = pooled.loss * pooled.weight_sum
    if tau == 0.0 or pooled_loss <= value:
        mean, tau, value = pooled.shift, 0.0, pooled_loss
        shrunk = np.where(usable, mean, math.nan)
        return _RandomPart(mean, pooled.se, 0.0, -value, shrunk, np.where(usable, 0.0, math.nan),
                           converged, iterations, nagq, marginal)
    information = here.hessian
    try:
        covariance = np.linalg.inv(information)
        mean_se = math.sqrt(covariance[0, 0]) if covariance[0, 0] > 0 else math.nan
    except np.linalg.LinAlgError:
        mean_se = math.nan
    shrunk = np.where(usable, mean + here.modes, math.nan)
    shrunk_se = np.where(usable, 1.0 / np.sqrt(here.curvature + 1.0 / (tau * tau)), math.nan)
    return _RandomPart(mean, mean_se, tau, -value, shrunk, shrunk_se, converged, iterations,
                       nagq, marginal, information)


class _Profile:
    """The profile of the marginal likelihood in ``τ``, ``p(τ) = min_μ -log L(μ, τ)``, and the
    ends of the interval where ``2 (p(τ) - p(τ̂)) <= z²``.

    Each value of ``p`` is a Newton step in ``μ`` on the exact derivatives (one value of
    ``-log L``) from ``μ`` predicted off the nearest profile point already found, along its
    slope ``dμ̂/dθ = -H_μθ / H_μμ`` (``θ = log τ``): with ``δ`` the distance of the
    prediction from the minimum, the parabola's minimum is ``p`` within about ``c δ³``
    (``c`` the curvature in ``μ``), and a prediction that is too far gets a second step.
    Each value comes with ``p``'s first two derivatives in ``θ``, ``H_θ`` (the envelope
    theorem; to first order in the step) and ``H_θθ - H_μθ² / H_μμ``. The modes of every
    group are warm-started by `_Marginal` from the last ones found.
    """

    #: The accepted cubic error ``c |step|³`` of a profile value.
    ACCEPT = 1e-10
    #: The root's stopping rule: its error below this, relative, in its variable.
    TOL = 1e-10

    def __init__(self, random: _RandomPart, pooled_shift: float, pooled_loss: float) -> None:
        self.marginal = random.marginal
        self.tau, self.mean, self.minimum = random.tau, random.mean, -random.loglik
        self.pooled_shift = pooled_shift
        self.pooled_loss = pooled_loss
        self.information = random.information
        # Solved (log τ, μ̂(τ), dμ̂/dlog τ): the fit's point to begin with.
        self.solved: list[tuple[float, float, float]] = []
        if random.tau > 0 and self.information is not None and self.information[0, 0] > 0:
            h = self.information
            self.solved.append((math.log(random.tau), random.mean, -h[0, 1] / h[0, 0]))

    def _predicted_mean(self, log_tau: float) -> float:
        """``μ̂`` at ``log τ`` by Taylor's polynomial at the nearest solved point: its slope,
        and the curvature of ``μ̂`` from the change of slope to the next nearest."""
        if not self.solved:
            return self.pooled_shift
        (theta, mean, slope), *others = sorted(self.solved,
                                                key=lambda point: abs(point[0] - log_tau))
        step = log_tau - theta
        if others and others[0][0] != theta:
            bend = (others[0][2] - slope) / (others[0][0] - theta)
            return mean + slope * step + 0.5 * bend * step * step
        return mean + slope * step

    def value(self, tau: float) -> tuple[float, float, float]:
        """``p(τ)`` and its first two derivatives in ``log τ``."""
        log_tau = math.log(tau)
        m = self._predicted_mean(log_tau)
        value = slope = bend = math.nan
        for _ in range(30):
            f0 = self.marginal(m, log_tau)
            here = self.marginal.last
            (g, g_theta), h = here.gradient, here.hessian
            if not h[0, 0] > 0:  # not convex in μ here: its value, no step
                value, slope, bend = f0, g_theta, h[1, 1]
                break
            step = -g / h[0, 0]
            value = f0 + 0.5 * g * step  # the parabola's minimum
            slope = g_theta + h[0, 1] * step
            bend = h[1, 1] - h[0, 1] * h[0, 1] / h[0, 0]
            m += step
            if h[0, 0] * abs(step) ** 3 <= self.ACCEPT:
                break
        if h[0, 0] > 0:
            self.solved.append((log_tau, m, -h[0, 1] / h[0, 0]))
        return value, slope, bend

    def _excess(self, tau: float, in_log: bool) -> tuple[float, float, float]:
        """``r = sqrt(2 (p(τ) - p(τ̂))) - z`` without ``z`` (the root of the profile
        deviance: nearly linear in ``log τ`` or ``τ``, where the deviance is nearly
        quadratic), and its first two derivatives in ``log τ`` (``in_log``) or ``τ``."""
        if tau == 0.0:
            return math.sqrt(max(2.0 * (self.pooled_loss - self.minimum), 0.0)), math.nan, \
                math.nan
        value, slope, bend = self.value(tau)
        if not in_log:  # in τ: d/dτ = (1/τ) d/dθ
            slope, bend = slope / tau, (bend - slope) / (tau * tau)
        rise = 2.0 * (value - self.minimum)
        if not rise > 0:
            return 0.0, math.nan, math.nan
        root = math.sqrt(rise)
        first = slope / root
        return root, first, (bend - first * first) / root

    def _first_guess(self, z: float, direction: int) -> float | None:
        """``log τ`` where the quadratic approximation of the profile reaches ``z²``."""
        h = self.information
        if h is None or not h[0, 0] > 0:
            return None
        curvature = h[1, 1] - h[0, 1] * h[0, 1] / h[0, 0]
        if not curvature > 0:
            return None
        return math.log(self.tau) + direction * z / math.sqrt(curvature)

    def lower_end(self, z: float) -> float:
        """The end below ``τ̂ > 0`` (where the deviance at ``τ = 0`` exceeds ``z²``), in ``τ``:
        bracketed from the start by ``τ = 0`` and ``τ̂``."""
        guess = self._first_guess(z, -1)
        start = math.exp(guess) if guess is not None else 0.5 * self.tau

        def excess(tau: float) -> tuple[float, float, float]:
            root, first, second = self._excess(tau, False)
            return root - z, first, second

        return _halley_root(excess, self.tau, -z, 0.0, excess(0.0)[0],
                            min(max(start, 1e-3 * self.tau), 0.999 * self.tau),
                            self.TOL * self.tau)

    def upper_end(self, z: float) -> float:
        """The end above ``τ̂``: in ``log τ`` from ``τ̂ > 0``, in ``τ`` from ``τ̂ = 0``."""
        if self.tau > 0:
            guess = self._first_guess(z, 1)
            start = guess if guess is not None else math.log(self.tau) + 0.5

            def excess(log_tau: float) -> tuple[float, float, float]:
                root, first, second = self._excess(math.exp(log_tau), True)
                return root - z, first, second

            log_tau = _halley_root(excess, math.log(self.tau), -z, None, None, start,
                                   self.TOL, limit=_TAU_LIMIT)
            return math.exp(log_tau)

        def excess_in_tau(tau: float) -> tuple[float, float, float]:
            root, first, second = self._excess(tau, False)
            return root - z, first, second

        return _halley_root(excess_in_tau, 0.0, -z, None, None, 0.25, self.TOL,
                            limit=math.exp(_TAU_LIMIT))


#: log τ beyond which the upper end is taken as unbounded.
_TAU_LIMIT = math.log(1e8)


def _halley_root(function: Any, inside: float, at_inside: float, outside: float | None,
                 at_outside: float | None, guess: float, tol: float,
                 limit: float = math.inf) -> float:
    """The root of an increasing-away ``function`` (returning its value and first two
    derivatives) between ``inside`` (where it is negative) and ``outside`` (positive; None:
    not known yet, beyond ``guess``), by Halley's steps, replaced by the bracket's false
    position (Illinois) where they leave it, or its middle, and by steps that at most
    quadruple while no point beyond is known. Stops once Newton's error estimate after the
    step, ``|f'' / (2 f')| δ²``, or the step itself, is within ``tol`` (absolute); returns
    inf where the function stays negative up to ``limit``."""
    direction = 1.0 if guess > inside else -1.0
    last = inside
    x = guess
    streak = 0  # > 0: the inside end replaced that often in a row; < 0: the outside end
    for _ in range(100):
        value, first, second = function(x)
        if value == 0.0:
            return x
        if value < 0:
            inside, at_inside = x, value
            streak = max(streak, 0) + 1
        else:
            outside, at_outside = x, value
            streak = min(streak, 0) - 1
        newton = -value / first if first != 0 else math.nan
        # Halley's correction where it is one (a denominator near 1).
        bend = 1.0 - 0.5 * newton * second / first if first != 0 else math.nan
        step = newton / bend if 0.5 < bend < 2.0 else newton
        following = x + step
        error = abs(0.5 * second / first) * step * step if first != 0 else math.nan
        reach = x + direction * 4.0 * abs(x - last)
        last = x
        if outside is None:
            halley = following
            if not (following - x) * direction > 0:
                following = reach
            following = min(following, reach) if direction > 0 else max(following, reach)
            if direction * following >= direction * limit:
                if direction * x >= direction * limit:
                    return math.inf
                following = limit
            if following != halley:
                error = math.nan
        else:
            low, high = min(inside, outside), max(inside, outside)
            if not low < following < high:
                # False position, the value of an end kept twice in a row halved (Illinois).
                a_in = at_inside * (0.5 if streak <= -2 else 1.0)
                a_out = at_outside * (0.5 if streak >= 2 else 1.0)
                following = inside - a_in * (outside - inside) / (a_out - a_in)
                error = math.nan
                if not low < following < high:
                    following = 0.5 * (low + high)
        scale = tol * max(1.0, abs(x))
        if (abs(following - x) <= scale or error <= scale
                or (outside is not None and abs(outside - inside) <= scale)):
            return following
        x = following
    return x


# -- the result ---------------------------------------------------------------------------------

class UnknownGroup(InputError, KeyError):
    """A key that is not one of the groups: an :class:`InputError`, and a ``KeyError`` as
    any lookup's miss is."""

    __str__ = InputError.__str__


@dataclass(frozen=True, repr=False)
class GroupShiftFit:
    """Per-group shifts: each group's maximum-likelihood shift and, with
    ``shrinkage="random"``, the random-intercept model's mean, spread and shrunk shifts.

    Attributes
    ----------
    groups : ndarray
        The groups' labels, sorted; every other array is in this order.
    shift, se : ndarray of float
        Each group's maximum-likelihood shift, ``argmin_s Σ_{i in g} w BCE(y, offset + s)``
        (``±inf`` for a group whose labels are all 1 or all 0, nan for a group without
        weight), and its standard error ``1 / sqrt(Σ w σ(z) σ(-z))``. With ``l2 > 0``, the
        penalised shift ``argmin_s Σ_{i in g} w BCE(y, offset + s) + l2 s² / 2`` (finite
        for every group with weight) and ``1 / sqrt(Σ w σ(z) σ(-z) + l2)``, the curvature
        of the penalised objective.
    n_rows, weight_sum, positives : ndarray
        Rows, ``Σ w`` and ``Σ w y`` of each group.
    loss, loss_at_zero : ndarray of float
        Weighted mean cross-entropy of each group at its shift and at 0.
    observed_expected : ndarray of float
        ``Σ w y / Σ w σ(offset)`` of each group, at shift 0.
    status : ndarray of str
        Per group, as :attr:`ShiftFit.status` (``"converged"``, ``"closed_form"``,
        ``"all_negative"``, ``"all_positive"``, ``"max_iter"``), or ``"no_weight"`` (every
        row of weight 0), ``"no_finite_offset"`` (every row certain) or ``"underflow"``
        (labels separated by a gap so wide that the gradient underflows at the shift: the
        shift is nan; :func:`logitshift.fit` on the group's rows solves it in log space).
    shrinkage : None or "random"
    pseudo_count : float
        As for :func:`logitshift.fit`, added to each group's maximum-likelihood fit.
    l2 : float
        The penalty ``l2 s² / 2`` on each group's shift (0: none). It is the negative log
        of a normal prior ``N(0, 1/l2)`` on the shift, so the penalised shift is the
        random-intercept model's conditional mode with ``μ = 0`` and ``τ² = 1/l2`` fixed,
        and ``se`` its conditional standard deviation. ``loss`` is the data's alone.
    mean, mean_se, tau, loglik : float
        ``shrinkage="random"`` only (nan otherwise): ``μ̂``, its standard error (from the
        observed information of the marginal likelihood in ``(μ, log τ)``), ``τ̂`` and the
        maximised log marginal likelihood ``log L = Σ_g log ∫ Π_{i in g} p(y_i | u) φ(u; 0,
        τ²) du``, Laplace (``nagq = 1``) or adaptive Gauss-Hermite with ``nagq`` points.
    shrunk, shrunk_se : ndarray of float or None
        ``shrinkage="random"`` only: the conditional modes ``μ̂ + û_g`` and their conditional
        standard deviations ``1 / sqrt(Σ w σ σ(-·) + 1/τ̂²)`` (lme4's ``ranef`` with
        ``condVar``, plus ``μ̂``).
    nagq : int
    """

    groups: np.ndarray
    shift: np.ndarray
    se: np.ndarray
    n_rows: np.ndarray
    weight_sum: np.ndarray
    positives: np.ndarray
    loss: np.ndarray
    loss_at_zero: np.ndarray
    observed_expected: np.ndarray
    status: np.ndarray
    iterations: np.ndarray
    shrinkage: str | None
    pseudo_count: float
    l2: float = 0.0
    nagq: int = 1
    mean: float = math.nan
    mean_se: float = math.nan
    tau: float = math.nan
    loglik: float = math.nan
    shrunk: np.ndarray | None = None
    shrunk_se: np.ndarray | None = None
    converged: bool = True
    _curves: Any = field(default=None, compare=False)
    _pooled: ShiftFit | None = field(default=None, compare=False)
    _random: _RandomPart | None = field(default=None, compare=False)
    _options: dict[str, Any] = field(default_factory=dict, compare=False)
    #: Each group's total loss at its shift in its own units, and those units' exponents.
    _total_loss: tuple[np.ndarray, np.ndarray] | None = field(default=None, compare=False)

    @property
    def n_groups(self) -> int:
        return self.groups.size

    def _index(self, key: Any) -> int:
        matches = np.flatnonzero(_equal(self.groups, key))
        if not matches.size:
            shown = ", ".join(repr(_plain(group)) for group in self.groups[:5].tolist())
            more = f", ... ({self.n_groups} groups)" if self.n_groups > 5 else ""
            raise UnknownGroup(f"no group {key!r}: the groups are {shown}{more}",
                               argument="key", value=key)
        return int(matches[0])

    def confint(self, level: float = 0.95, method: str = "profile", keys: Any = None
                ) -> tuple[np.ndarray, np.ndarray]:
        """Every group's confidence interval for its shift: for each group,
        ``fit_of(key).confint(level, method)``, all groups at once.

        Parameters
        ----------
        level : float
            Coverage, strictly between 0 and 1.
        method : {"profile", "wald"}
            ``"profile"`` (the default): the shifts where twice the rise in the group's total
            loss equals the chi-square(1) quantile (finite on the informative side where the
            shift is infinite); ``"wald"``: ``shift ± z · se``, ``(-inf, inf)`` where the
            shift is infinite.
        keys : sequence, optional
            The groups wanted, in this order (by default every group, in the order of
            ``groups``); a key that is not a group raises :class:`UnknownGroup` (an
            ``InputError`` and a ``KeyError``), as :meth:`fit_of`.

        Returns
        -------
        (low, high) : tuple of ndarray of float, shape (n_groups,) or (len(keys),)
            nan for a group without a shift (status ``"no_weight"``, ``"no_finite_offset"``
            or ``"underflow"``).

        Notes
        -----
        The profile ends of every group run at once, the steps of `solve.profile_bound` (and
        of the finite end of an infinite shift, in log loss) on the group curves: a few
        dozen evaluations of all groups' sums, not a few per group. The groups that does
        not suit are solved one by one, as ``fit_of(key).confint``: those that did not
        converge, and those where the rise is too small for a difference of two losses to
        resolve (levels near 0).
        """
        z = normal_quantile(level)
        if method not in ("profile", "wald"):
            raise InputError(f"method = {method!r} must be 'profile' or 'wald'",
                             argument="method", value=method)
        if keys is None:
            wanted = np.ones(self.n_groups, dtype=bool)
            chosen = np.arange(self.n_groups)
        else:
            lookup = {key: i for i, key in enumerate(self.groups.tolist())}
            chosen = np.array([self._index(key) if (place := _position(lookup, key)) is None
                               else place for key in _key_list(keys)], dtype=np.int64)
            wanted = np.zeros(self.n_groups, dtype=bool)
            wanted[chosen] = True
        low = np.full(self.n_groups, math.nan)
        high = np.full(self.n_groups, math.nan)
        infinite = wanted & np.isinf(self.shift)
        if method == "wald":
            finite = wanted & np.isfinite(self.shift)
            low[finite] = self.shift[finite] - z * self.se[finite]
            high[finite] = self.shift[finite] + z * self.se[finite]
            low[infinite], high[infinite] = -math.inf, math.inf
            return low[chosen], high[chosen]
        together = wanted & np.isfinite(self.shift) & (self.status != "max_iter")
        ends, resolved = _profile_ends(self._objective, self.shift, self.se, z, together)
        low[resolved], high[resolved] = ends[0][resolved], ends[1][resolved]
        # Without pseudo-rows (which make every shift finite), the objective is the data's.
        end = _degenerate_ends(self._curves.evaluate_groups, np.where(self.shift > 0, -1, 1),
                               self._curves.group_totals.offset_mean,
                               2.0 * math.log(z) - math.log(2.0), infinite)
        low[infinite] = np.where(self.shift > 0, end, -math.inf)[infinite]
        high[infinite] = np.where(self.shift > 0, math.inf, end)[infinite]
        alone = (together & ~resolved) | (wanted & (self.status == "max_iter"))
        if self.l2 > 0:
            # A group's own curve has no penalty: the penalised objective's quadratic.
            low[alone] = self.shift[alone] - z * self.se[alone]
            high[alone] = self.shift[alone] + z * self.se[alone]
            alone = alone & False
        for i in np.flatnonzero(alone).tolist():
            low[i], high[i] = fit_curve(self._curves.curve(i), method="sketch",
                                        **self._options).confint(level)
        return low[chosen], high[chosen]

    def _objective(self, shifts: np.ndarray, wanted: np.ndarray) -> GroupTerms:
        """The groups' sums with their pseudo-rows and penalty: what each group's shift
        minimises."""
        terms = self._curves.evaluate_groups(shifts, wanted)
        totals = self._curves.group_totals
        if self.pseudo_count > 0:
            terms = terms + _pseudo_terms(np.nan_to_num(totals.offset_mean),
                                          _pseudo_weight(self.pseudo_count, totals), shifts)
        if self.l2 > 0:
            terms = terms + _penalty_terms(_penalty_weight(self.l2, totals), shifts)
        return terms

    def fit_of(self, key: Any) -> ShiftFit:
        """The group's full :class:`ShiftFit` (profile interval, LR test and the rest): the
        shift estimator on the group's own curve, as :func:`logitshift.fit` on its rows. A
        key that is not a group raises :class:`UnknownGroup`, an ``InputError`` that names
        a few of the groups and is also a ``KeyError``. Refused with ``l2 > 0``: a group's
        own fit has no penalty (``shift``, ``se`` and :meth:`confint` are the penalised
        ones)."""
        if self.l2 > 0:
            raise InputError(
                f"fit_of gives a group's maximum-likelihood fit, and this fit has l2 = "
                f"{self.l2!r}: use shift, se and confint(keys=[key]), which are penalised, "
                "or fit with l2=0", argument="l2", value=self.l2)
        return fit_curve(self._curves.curve(self._index(key)), method="sketch",
                         **self._options)

    @property
    def pooled(self) -> ShiftFit:
        """The single shift of every row, the groups ignored."""
        return self._pooled

    def lr_test(self) -> LRTest:
        """Likelihood-ratio test that every group has the same shift.

        ``shrinkage=None``: against a shift per group, ``2 (loss of the pooled shift - Σ_g
        loss of the group's shift)`` (total losses of the data rows), chi-square with
        ``G - 1`` degrees of freedom, ``G`` the groups with weight. ``shrinkage="random"``:
        ``τ = 0`` against the random-intercept model, ``2 (log L̂ - log L̂_{τ=0})``; ``τ = 0``
        lies on the boundary of the parameter space, so the statistic is referred to the
        50:50 mixture of χ²₀ and χ²₁ (Self & Liang 1987): ``p = P(χ²₁ > x) / 2``.
        With ``l2 > 0`` the shifts are not maximum-likelihood and no χ² law holds: statistic
        and p-value are nan (fit with ``l2=0`` for the test).
        """
        if self.l2 > 0:
            return LRTest(math.nan, math.nan)
        pooled_loss = self._pooled.loss * self._pooled.weight_sum
        if self.shrinkage == "random":
            statistic = max(0.0, 2.0 * (self.loglik + pooled_loss))
            pvalue = 0.5 * math.erfc(math.sqrt(0.5 * statistic)) if statistic > 0 else 1.0
            return LRTest(statistic, pvalue)
        usable = np.isin(self.status, ("no_weight", "no_finite_offset"), invert=True)
        if self._total_loss is None:
            total = float(np.sum((self.loss * self.weight_sum)[usable]))
            statistic = max(0.0, 2.0 * (pooled_loss - total))
        else:
            # In the pooled fit's units (its heaviest group's), so that weights of any scale
            # neither overflow the totals nor drop the lighter groups' digits before the
            # difference; beyond the doubles only where the statistic itself is.
            losses, exponents = self._total_loss
            units = self._pooled._scale_exponent
            with np.errstate(over="ignore"):
                total = float(np.sum(np.ldexp(losses, (exponents - units).astype(np.intc))
                                     [usable]))
            statistic = max(0.0, ldexp(self._pooled._objective_loss - total, units + 1))
        df = int(usable.sum()) - 1
        return LRTest(statistic, chi2_sf(statistic, df) if df > 0 else 1.0)

    def tau_confint(self, level: float = 0.95) -> tuple[float, float]:
        """Profile-likelihood interval for ``τ`` (``shrinkage="random"``): the ``τ`` where
        ``2 (log L̂ - max_μ log L(μ, τ))`` reaches the chi-square(1) quantile; the lower end is
        0 where the profile at ``τ = 0`` stays below it, the upper end inf where the profile
        stays below it up to ``τ = 1e8``.

        Notes
        -----
        Each end is a root of the signed square root of the profile deviance less ``z``, a
        nearly linear function (of ``log τ`` above ``τ̂``, of ``τ`` below it and from a
        boundary fit), by Halley's method kept inside its bracket, from the quadratic
        approximation of the observed information: two to four profile values an end, each
        ``max_μ`` by a Newton step on the exact derivatives of ``log L`` (one value of
        ``log L``, and its gradient and Hessian), from ``μ`` predicted off the values
        already found; the first of each end sometimes takes a second step. The profile's
        slope in ``log τ`` is the likelihood's (envelope theorem), its curvature the Schur
        complement of the Hessian. The bisection this replaced took 240 to 450 values of
        ``log L`` for the two ends.
        """
        if self._random is None:
            raise InputError("tau_confint needs shrinkage='random'", argument="shrinkage")
        z = normal_quantile(level)
        pooled_loss = self._pooled.loss * self._pooled.weight_sum
        profile = _Profile(self._random, self._pooled.shift, pooled_loss)
        if self.tau == 0 or 2.0 * (pooled_loss + self.loglik) <= z * z:
            low = 0.0
        else:
            low = profile.lower_end(z)
        return (low, profile.upper_end(z))

    def predict_shift(self, keys: Any) -> np.ndarray:
        """The shift for each of ``keys``: the shrunk shift ``μ̂ + û_g`` of a group seen, ``μ̂``
        for one not seen (``shrinkage="random"``); the maximum-likelihood shift, nan for an
        unseen group, without shrinkage. ``keys``: a list (its elements, tuples included),
        an array (its elements) or one key; an unhashable key, which no group can have, is
        an :class:`InputError` naming its place."""
        values = self.shrunk if self.shrinkage == "random" else self.shift
        default = self.mean if self.shrinkage == "random" else math.nan
        lookup = {key: i for i, key in enumerate(self.groups.tolist())}
        keys = _key_list(keys)
        out = np.full(len(keys), default)
        for j, key in enumerate(keys):
            try:
                i = lookup.get(key.item() if isinstance(key, np.generic) else key)
            except TypeError:
                raise InputError(f"keys[{j}] = {reprlib.repr(key)} is a {type(key).__name__}, "
                                 "which is not hashable and so not a group label",
                                 argument="keys", index=j, value=key) from None
            if i is not None:
                out[j] = values[i]
        return out

    def _columns(self) -> dict[str, Any]:
        columns = {"group": self.groups.tolist(), "n_rows": self.n_rows,
                   "weight_sum": self.weight_sum, "positives": self.positives,
                   "shift": self.shift, "se": self.se, "status": self.status.astype(str),
                   "loss": self.loss, "loss_at_zero": self.loss_at_zero,
                   "observed_expected": self.observed_expected}
        if self.shrinkage == "random":
            columns["shrunk"], columns["shrunk_se"] = self.shrunk, self.shrunk_se
        return columns

    def table(self) -> Any:
        """One row per group: a pandas DataFrame where pandas is installed, else a pyarrow
        Table."""
        columns = self._columns()
        try:
            import pandas as pd
        except ImportError:
            import pyarrow as pa

            return pa.table({name: list(value) if name == "group" else value
                             for name, value in columns.items()})
        return pd.DataFrame(columns)

    def to_dict(self, *, json_safe: bool = False) -> dict[str, Any]:
        """Plain Python values: the per-group columns as lists, named as the columns of
        :meth:`table` (``group``, ``n_rows``, ``shift``, ...), the test, and the
        random-intercept fit where there is one.

        With ``json_safe=True``, the same values as strict JSON holds them (``inf``,
        ``-inf`` and ``nan`` as the strings ``"inf"``, ``"-inf"``, ``"nan"``; numpy scalars
        as Python numbers; group keys that JSON has no type for as their ``str``):
        ``json.dumps(result.to_dict(json_safe=True), allow_nan=False)`` succeeds, and is
        what ``logitshift fit --group ... --json`` prints.
        """
        out: dict[str, Any] = {name: [_plain(v) for v in np.asarray(value, dtype=object)]
                               if not isinstance(value, list) else value
                               for name, value in self._columns().items()}
        test = self.lr_test()
        out.update({"shrinkage": self.shrinkage, "pseudo_count": self.pseudo_count,
                    "l2": self.l2,
                    "lr_statistic": test.statistic, "lr_pvalue": test.pvalue,
                    "pooled_shift": self._pooled.shift})
        if self.shrinkage == "random":
            out.update({"nagq": self.nagq, "mean": self.mean, "mean_se": self.mean_se,
                        "tau": self.tau, "loglik": self.loglik, "converged": self.converged})
        return _json.json_safe(out) if json_safe else out

    def __repr__(self) -> str:
        degenerate = int(np.isin(self.status, ("all_negative", "all_positive")).sum())
        text = (f"GroupShiftFit(groups={self.n_groups}, degenerate={degenerate}, "
                f"pooled_shift={self._pooled.shift:.6g}")
        if self.l2 > 0:
            text += f", l2={self.l2:.6g}"
        if self.shrinkage == "random":
            text += f", mean={self.mean:.6g}, tau={self.tau:.6g}, nagq={self.nagq}"
        return text + ")"


def _profile_ends(objective: Any, shift: np.ndarray, se: np.ndarray, z: float,
                  todo: np.ndarray) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
    """The profile interval's ends of every group of ``todo`` (finite shifts), and where
    they were found: `solve.profile_bound` on all groups at once, each side in turn.

    A group is left out (not resolved) where the rise ``z² / 2`` is within a factor 1e12 of
    the rounding of its total loss, as :meth:`ShiftFit.confint` decides before it sums
    Hessians instead, or where no point beyond the rise was found."""
    half = 0.5 * z * z
    at_shift = objective(np.where(todo, shift, 0.0), todo)
    minimum = at_shift.loss
    todo = todo & (1e12 * 2.0 ** -52 * np.abs(minimum) < half)
    start = np.where(np.isfinite(se), 1.5 * z * se, 1.0)
    resolved = todo.copy()
    ends = []
    with np.errstate(all="ignore"):
        for direction in (-1, 1):
            point, found = _profile_side(objective, shift, minimum, half, direction, start,
                                         todo)
            ends.append(point)
            resolved &= found
    return (ends[0], ends[1]), resolved


def _profile_side(objective: Any, shift: np.ndarray, minimum: np.ndarray, half: float,
                  direction: int, start: np.ndarray, todo: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray]:
    """`solve.profile_bound`'s walk on side ``direction``, group by group: double the
    distance until the loss has risen by more than ``half``, then Newton from beyond the
    root (monotone on a convex function), bisecting where rounding overshoots it."""

    def at(distance: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        terms = objective(np.where(wanted, shift + direction * distance, 0.0), wanted)
        return terms.gradient, terms.loss - minimum - half

    inner, outer = np.zeros(shift.size), start.copy()
    gradient, excess = at(outer, todo)
    searching = todo & ~(excess > 0)
    for _ in range(2100):
        if not searching.any():
            break
        inner = np.where(searching, np.maximum(inner, outer), inner)
        outer = np.where(searching, 2.0 * outer, outer)
        new_gradient, new_excess = at(outer, searching)
        gradient = np.where(searching, new_gradient, gradient)
        excess = np.where(searching, new_excess, excess)
        searching &= ~(excess > 0)
    active = todo & ~searching
    for _ in range(200):
        step = np.where(gradient != 0, -excess / (direction * gradient), math.nan)
        # A step that does not point back towards the root, or vanishes: rounding has
        # taken over.
        active &= (step < 0) & ~(np.abs(step) <= 1e-15 * np.maximum(
            1.0, np.abs(shift + direction * outer)))
        target = outer + step
        overshot = ~(target > inner)
        target = np.where(overshot, np.where(
            outer > 4.0 * np.maximum(inner, 1.0),
            np.sqrt(np.maximum(inner, 1.0)) * np.sqrt(outer), 0.5 * (inner + outer)), target)
        active &= ~overshot | ((inner < target) & (target < outer))
        if not active.any():
            break
        new_gradient, new_excess = at(target, active)
        beyond = active & (new_excess > 0)
        outer = np.where(beyond, target, outer)
        gradient = np.where(beyond, new_gradient, gradient)
        excess = np.where(beyond, new_excess, excess)
        inner = np.where(active & ~beyond, target, inner)
    point = shift + direction * outer
    point = np.maximum(point, shift) if direction > 0 else np.minimum(point, shift)
    return point, todo & ~searching


def _degenerate_ends(evaluate: Any, direction: np.ndarray, offset_mean: np.ndarray,
                     log_quantile: float, todo: np.ndarray) -> np.ndarray:
    """The finite end of the interval of each group of ``todo`` (infinite shifts), on side
    ``direction``: `result._degenerate_bound` on all groups at once, where ``log loss(s)``
    reaches ``log(z² / 2)``, bracketed Newton on the log of the loss."""

    def excess(point: np.ndarray, wanted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        terms = evaluate(np.where(wanted, point, 0.0), wanted)
        positive = terms.loss > 0
        return (np.where(positive, np.log(terms.loss) - target, -math.inf),
                np.where(positive, direction * terms.gradient / terms.loss, math.nan))

    # Below e^-460 log loss is linear with slope 1 (every row deep in its tail): the root
    # at the target below, moved along that line, as `_degenerate_bound` does.
    target = max(log_quantile, -460.0)
    beyond = direction * (log_quantile - target)
    end = np.full(direction.size, math.nan)
    with np.errstate(all="ignore"):
        anchor = np.where(todo, -offset_mean, 0.0)
        value, _ = excess(anchor, todo)
        inner, outer, value_in, value_out = anchor, anchor, value, value
        for side in (1, -1):
            distance = np.ones(direction.size)
            search = todo & ((value_out <= 0) if side > 0 else (value_in >= 0))
            while search.any():
                point = anchor + side * direction * distance
                found, _ = excess(point, search)
                if side > 0:
                    outer = np.where(search, point, outer)
                    value_out = np.where(search, found, value_out)
                    search &= value_out <= 0
                else:
                    inner = np.where(search, point, inner)
                    value_in = np.where(search, found, value_in)
                    search &= value_in >= 0
                distance = 2.0 * distance
                search &= distance < 1e308
        point, active = outer.copy(), todo.copy()
        for _ in range(200):
            if not active.any():
                break
            value, slope = excess(point, active)
            exact = active & (value == 0)
            end[exact] = point[exact]
            active &= ~exact
            outer = np.where(active & (value > 0), point, outer)
            inner = np.where(active & ~(value > 0), point, inner)
            guess = np.where(slope > 0, point - direction * value / slope, math.nan)
            guess = np.where((np.minimum(inner, outer) < guess)
                             & (guess < np.maximum(inner, outer)), guess,
                             0.5 * inner + 0.5 * outer)
            done = active & ((np.abs(guess - point) <= 1e-15 * np.maximum(1.0, np.abs(point)))
                             | (guess == inner) | (guess == outer))
            end[done] = guess[done]
            active &= ~done
            point = np.where(active, guess, point)
        end[active] = point[active]
    return end + beyond


def _key_list(keys: Any) -> list[Any]:
    """Keys given to a lookup, as a list: a list's or a tuple's elements as they are (numpy
    would split a list of pairs into two columns), an array's elements, an iterator's (a
    generator); anything else (a string, a set, a dict) is one key."""
    if isinstance(keys, (list, tuple)):
        return list(keys)
    if hasattr(keys, "__array__") and not isinstance(keys, (str, bytes)):
        return np.asarray(keys, dtype=object).ravel().tolist()
    if hasattr(keys, "__next__"):
        return list(keys)
    return [keys]


def _position(lookup: dict[Any, int], key: Any) -> int | None:
    """The group's place by hashing (None where the key is not there, or not hashable)."""
    try:
        return lookup.get(_plain(key))
    except TypeError:
        return None


def _equal(keys: np.ndarray, key: Any) -> np.ndarray:
    return np.array([k == key for k in keys.tolist()], dtype=bool)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _refuse_score_like_groups(keys: np.ndarray, n_rows: int) -> None:
    """Refuse float groups that look like scores: nearly one distinct value per row and not
    all whole numbers, as ``fit_groups(y, scores, groups)`` (the order of ``fit(y, offset)``)
    gives. Checked on the final keys, so that every source gets it once and a stream's
    batches cannot trip it one by one. (A CSV source reads decimals as text: strings pass,
    and are the way to group by such values on purpose.)"""
    if (keys.dtype.kind != "f" or n_rows < _SCORE_LIKE_ROWS
            or keys.size <= _SCORE_LIKE_SHARE * n_rows):
        return
    with np.errstate(invalid="ignore"):
        if np.all(keys == np.round(keys)):
            return
    raise InputError(
        f"group holds {keys.size} distinct floats in {n_rows} rows, not all whole numbers: "
        "these look like scores, not groups. The offset is the third argument: "
        "fit_groups(y, group, offset=scores); to group by these values, pass them as "
        "strings or integer codes", argument="group", value=keys.size)


def fit_group_curves(groups: GroupCurves, *, shrinkage: str | None = None, nagq: int = 1,
                     pseudo_count: float = 0.0, tol: float | None = None,
                     max_iter: int = 100, l2: float = 0.0) -> GroupShiftFit:
    """:class:`GroupShiftFit` of any group curves (options as :func:`logitshift.fit_groups`).
    Warns once for the groups whose shift is infinite and once for those that did not
    converge."""
    options = check_group_options(shrinkage, nagq, pseudo_count, tol, max_iter, l2)
    pseudo_count, tol, max_iter, l2 = (options["pseudo_count"], options["tol"],
                                       options["max_iter"], options["l2"])
    totals = groups.group_totals
    n = totals.n_rows.size
    if n == 0:
        raise InputError("y is empty", argument="y")
    if not totals.weight_sum.sum() > 0:
        raise InputError("weight is zero on every row", argument="weight")
    exponent = totals.scale_exponent
    if shrinkage == "random":
        with np.errstate(over="ignore"):
            whole = float(np.sum(np.ldexp(totals.weight_sum, exponent.astype(np.intc))))
        if not 2.0 ** -500 <= whole <= 2.0 ** 500:
            # The marginal likelihood adds the groups' losses in the user's units, where
            # weights summing this far out overflow it or leave it in the subnormals.
            raise InputError(
                f"the weights sum to {whole!r}, beyond [2**-500, 2**500], where the "
                "random-intercept likelihood leaves the range of doubles; divide every weight "
                "by the same power of two (the shifts do not change, the random-intercept "
                "model does: weights are frequencies)", argument="weight", value=whole)
    _refuse_score_like_groups(groups.keys, int(np.sum(totals.n_rows)))
    no_weight = totals.weight_sum == 0
    active = totals.active_negatives + totals.active_positives
    no_finite = ~no_weight & (active == 0)
    usable = ~no_weight & ~no_finite
    objective = totals
    pseudo = None
    if pseudo_count > 0:
        pseudo_weight = _pseudo_weight(pseudo_count, totals)
        beyond = np.flatnonzero(usable & ~np.isfinite(pseudo_weight))
        if beyond.size:
            g = int(beyond[0])
            raise pseudo_count_too_large(
                pseudo_count, float(np.ldexp(totals.weight_sum[g], int(exponent[g]))),
                f" in group {_plain(groups.keys[g])!r}")
        objective = GroupTotals(**{**totals.__dict__,
                                   "active_negatives": totals.active_negatives + pseudo_weight,
                                   "active_positives": totals.active_positives + pseudo_weight})

        def pseudo(shifts: np.ndarray) -> GroupTerms:
            return _pseudo_terms(np.nan_to_num(totals.offset_mean), pseudo_weight, shifts)

    # The penalty l2·s²/2 in each group's units (0 where it underflows there: beside that
    # group's weights it is nothing).
    penalty = _penalty_weight(l2, totals) if l2 > 0 else None

    def evaluate(shifts: np.ndarray, wanted: np.ndarray) -> GroupTerms:
        # Newton's steps use no loss: curves that can skip it do.
        terms = groups.evaluate_groups(shifts, wanted, loss=False)
        if pseudo is not None:
            terms = terms + pseudo(shifts)
        return terms if penalty is None else terms + _penalty_terms(penalty, shifts)

    penalised = usable & (penalty > 0) if penalty is not None else np.zeros(n, dtype=bool)
    all_negative = usable & ~penalised & (objective.active_positives == 0)
    all_positive = usable & ~penalised & ~all_negative & (objective.active_negatives == 0)
    solvable = usable & ~all_negative & ~all_positive
    solutions = _solve_groups(evaluate, objective, solvable, tol, max_iter, penalty)
    shift, status = solutions.shift, solutions.status
    shift[all_negative], status[all_negative] = -math.inf, "all_negative"
    shift[all_positive], status[all_positive] = math.inf, "all_positive"
    status[no_weight], status[no_finite] = "no_weight", "no_finite_offset"

    at_shift = groups.evaluate_groups(np.where(usable, shift, 0.0), usable)
    # Where a label part of the gradient underflows at the answer (labels separated by a gap
    # of more than ~700 logits), its root is not the group's: fit() solves such rows in log
    # space, the group sketch does not yet. Say so rather than give the number.
    parts = at_shift if pseudo is None else at_shift + pseudo(np.where(usable, shift, 0.0))
    # A penalised group of one class has one label part, balanced by the penalty's pull
    # l2·|s| alone: no two parts cancel, and its root holds while that part is a normal
    # double (l2 = 1e-300 puts it near 1e-297, far below _TINY but exact).
    one_class = penalised & ((objective.active_positives == 0)
                             | (objective.active_negatives == 0))
    floor = np.where(one_class, _NORMAL, _TINY)
    with np.errstate(invalid="ignore"):
        lost = solvable & ((parts.negative < floor * objective.active_negatives)
                           | (parts.positive < floor * objective.active_positives))
    shift[lost], status[lost] = math.nan, "underflow"
    at_zero = groups.evaluate_groups(np.zeros(n), usable)
    information = at_shift.hessian
    if pseudo is not None:
        information = information + pseudo(np.where(usable, shift, 0.0)).hessian
    if penalty is not None:
        # The penalised objective's curvature: the se of a penalised (posterior-mode) shift.
        information = information + penalty
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # In each group's units, as `shift.standard_error`: 1 / sqrt(H 2**e).
        half, odd = np.divmod(exponent, 2)
        se = np.where(information > 0,
                      np.ldexp(1.0 / np.sqrt(np.ldexp(information, odd.astype(np.intc))),
                               -half.astype(np.intc)), math.inf)
        weight = totals.weight_sum
        loss = np.where(usable, at_shift.loss / weight, math.nan)
        loss_at_zero = np.where(usable, at_zero.loss / weight, math.nan)
        expected = totals.positives + at_zero.gradient
        ratio = np.where(expected > 0, totals.positives / expected, math.inf)
        # Totals go back to the user's units (inf where beyond the doubles), as fit's do.
        user_weight = np.ldexp(weight, exponent.astype(np.intc))
        user_positives = np.ldexp(totals.positives, exponent.astype(np.intc))
    se = np.where(usable, se, math.nan)
    ratio = np.where(usable, ratio, math.nan)

    degenerate = int((all_negative | all_positive).sum())
    if degenerate:
        remedy = ("their shrunk shifts are finite" if shrinkage == "random" else
                  "pass pseudo_count > 0 for finite ones, or shrinkage='random'")
        warn(f"{degenerate} of {n} groups have labels of one class only (of the rows with "
             f"weight and a finite offset): their shift is infinite; {remedy}")
    if (lost & one_class).any():
        warn(f"{int((lost & one_class).sum())} of {n} groups have labels of one class and "
             f"l2 = {l2!r} so small beside their weights that their penalised shift lies "
             "where the gradient underflows (status 'underflow', shift nan); pass a larger "
             "l2")
    if (lost & ~one_class).any():
        warn(f"{int((lost & ~one_class).sum())} of {n} groups have labels separated by a gap "
             "so wide that the gradient underflows at their shift (status 'underflow', shift "
             "nan); fit each such group's rows with logitshift.fit, which solves them in log "
             "space")
    stuck = int((status == "max_iter").sum())
    if stuck:
        warn(f"{stuck} of {n} groups did not converge after {max_iter} iterations")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the groups' warning says it already
        pooled = fit_curve(groups.pooled(), method="sketch", tol=tol, max_iter=max_iter)
    fit_options = {"pseudo_count": pseudo_count, "tol": tol, "max_iter": max_iter}
    result = dict(groups=groups.keys, shift=shift, se=se, n_rows=totals.n_rows,
                  weight_sum=user_weight, positives=user_positives, loss=loss,
                  loss_at_zero=loss_at_zero, observed_expected=ratio, status=status,
                  iterations=solutions.iterations, shrinkage=shrinkage,
                  pseudo_count=pseudo_count, l2=l2, _curves=groups, _pooled=pooled,
                  _options=fit_options,
                  _total_loss=(np.where(usable, at_shift.loss, 0.0), exponent))
    if shrinkage == "random":
        in_user_units = _InUserUnits(groups, totals) if exponent.any() else groups
        random = _fit_random(in_user_units, in_user_units.group_totals, usable, pooled,
                             options["nagq"], max_iter)
        if not random.converged:
            warn(f"the random-intercept fit did not converge after {max_iter} iterations; "
                 f"last mean {random.mean!r}, tau {random.tau!r}")
        result.update(nagq=random.nagq, mean=random.mean, mean_se=random.mean_se,
                      tau=random.tau, loglik=random.loglik, shrunk=random.shrunk,
                      shrunk_se=random.shrunk_se, converged=random.converged,
                      _random=random)
    return GroupShiftFit(**result)
