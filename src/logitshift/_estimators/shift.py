"""The shift estimator: the optimal shift of any curve, as a :class:`ShiftFit`.

An estimator knows the data only as a *curve* (:class:`solve.Curve`): its totals and its
sums at any shift. Where the curve came from (a sketch of a stream, an exact pass over arrays,
a constant offset) is the sources' business, not this module's.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from .._core.units import TINY, ldexp
from .._core.validate import InputError, as_nonnegative_float, as_positive_int, check_se_type, warn
from .result import ShiftFit
from .solve import DEFAULT_TOL, ArrayCurve, Curve, Terms, pseudo_rows, robust_meat_of, solve_curve

__all__ = ["fit_curve", "check_options", "METHODS"]

METHODS = ("auto", "sketch", "newton")


class _WithPseudoRows:
    """A curve plus the two pseudo-rows: the objective that a pseudo-count asks for."""

    def __init__(self, data: Curve, pseudo: ArrayCurve) -> None:
        self._data, self._pseudo = data, pseudo
        d, p = data.totals, pseudo.totals
        # The pseudo-rows sit at the mean offset: the range and the mean stay the data's.
        self.totals = replace(d, **{
            name: getattr(d, name) + getattr(p, name)
            for name in ("n_rows", "weight_sum", "positives", "active_positives",
                         "active_negatives")})

    def evaluate(self, shift: float) -> Terms:
        return self._data.evaluate(shift) + self._pseudo.evaluate(shift)

    def robust_meat(self, shift: float) -> float:
        return robust_meat_of(self._data, shift) + self._pseudo.robust_meat(shift)


def check_options(method: str | None, pseudo_count: Any, tol: Any, max_iter: Any
                  ) -> tuple[float, float, int]:
    """The solver's options, checked (and ``method``, unless None) before any pass over the
    data; returns ``pseudo_count``, ``tol`` (its default filled in) and ``max_iter``."""
    if method is not None and method not in METHODS:
        raise InputError(f"method = {method!r} must be one of {', '.join(map(repr, METHODS))}",
                         argument="method", value=method)
    pseudo_count = as_nonnegative_float(pseudo_count, "pseudo_count")
    tol = DEFAULT_TOL if tol is None else as_nonnegative_float(tol, "tol")
    if not tol > 0:
        raise InputError("tol must be positive", argument="tol", value=tol)
    return pseudo_count, tol, as_positive_int(max_iter, "max_iter")


def fit_curve(
    data: Curve,
    *,
    method: str,
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
    se_type: str = "model",
) -> ShiftFit:
    """Solve for the shift on any curve and build the :class:`ShiftFit`.

    ``method`` is what the result reports as the way its sums were computed (``"sketch"``,
    ``"newton"``; ``"closed_form"`` replaces it where the offset is constant). Warnings point
    at the user's line that led here. ``se_type="robust"`` needs a curve with
    ``robust_meat``.
    """
    pseudo_count, tol, max_iter = check_options(None, pseudo_count, tol, max_iter)
    check_se_type(se_type)

    if data.totals.n_rows == 0:
        raise InputError("y is empty", argument="y")
    if data.totals.weight_sum == 0:
        raise InputError("weight is zero on every row", argument="weight")
    if data.totals.active_positives + data.totals.active_negatives == 0:
        raise InputError(
            "every row with positive weight has an infinite offset, so every shift fits "
            "equally well", argument="offset")
    pseudo = pseudo_rows(data.totals, pseudo_count) if pseudo_count > 0 else None
    objective: Curve = data if pseudo is None else _WithPseudoRows(data, pseudo)
    totals = objective.totals
    if totals.active_positives == 0:
        shift, status, converged, iterations = -math.inf, "all_negative", True, 0
    elif totals.active_negatives == 0:
        shift, status, converged, iterations = math.inf, "all_positive", True, 0
    else:
        solution = solve_curve(objective, tol=tol, max_iter=max_iter)
        shift, status = solution.shift, solution.status
        converged, iterations = solution.converged, solution.iterations

    at_shift = data.evaluate(shift)
    at_zero = data.evaluate(0.0)
    objective_at_shift, objective_at_zero = at_shift, at_zero
    if pseudo is not None:
        objective_at_shift = at_shift + pseudo.evaluate(shift)
        objective_at_zero = at_zero + pseudo.evaluate(0.0)
    # The sums are in units of 2**exponent of the weights: totals go back to the user's
    # units (weight_sum is inf where the true sum is beyond the doubles), means and ratios
    # need not.
    exponent = data.totals.scale_exponent
    result = ShiftFit(
        shift=shift,
        status=status,
        converged=converged,
        iterations=iterations,
        n_rows=data.totals.n_rows,
        weight_sum=ldexp(data.totals.weight_sum, exponent),
        positives=ldexp(data.totals.positives, exponent),
        loss=at_shift.loss / data.totals.weight_sum,
        loss_at_zero=at_zero.loss / data.totals.weight_sum,
        se=(standard_error(objective_at_shift, exponent) if se_type == "model"
            else robust_standard_error(objective, shift, objective_at_shift.hessian)),
        se_type=se_type,
        pseudo_count=pseudo_count,
        method="closed_form" if status == "closed_form" else method,
        passes=data.passes,
        _objective=objective,
        _data=data,
        _objective_loss=objective_at_shift.loss,
        _objective_loss_at_zero=objective_at_zero.loss,
        # Rows with infinite offsets expect what they observe, so O - E = -gradient(0).
        _expected=data.totals.positives + at_zero.gradient,
        _scale_exponent=exponent,
    )
    _warn_about(result, objective_at_shift.gradient)
    return result


def standard_error(terms: Terms, exponent: int) -> float:
    """``1 / sqrt(H)`` with ``H`` the Hessian in units of ``2**exponent``. Where ``H``
    underflows (separable data), from ``log H``, which the logarithms of the gradient's parts
    give: finite where the true value is a double, ``inf`` beyond."""
    information = terms.hessian
    if information >= TINY:
        half, odd = divmod(exponent, 2)
        return ldexp(1.0 / math.sqrt(ldexp(information, odd)), -half)
    log_information = terms.log_hessian()
    if log_information == -math.inf:
        return math.inf
    try:
        return math.exp(-0.5 * (log_information + exponent * math.log(2.0)))
    except OverflowError:
        return math.inf


def robust_standard_error(curve: Curve, shift: float, information: float) -> float:
    """The sandwich (HC0) standard error ``sqrt(Σ w² (y - σ)²) / H`` at ``shift``: right
    for sampling weights and soft labels, where ``1 / sqrt(H)`` assumes each row is a
    Bernoulli trial of its weight. Units cancel: the numerator and ``H`` scale alike."""
    if not math.isfinite(shift):
        return math.inf
    meat = robust_meat_of(curve, shift)
    if not (information > 0 and math.isfinite(information)):
        return math.inf
    return math.sqrt(meat) / information


def _warn_about(result: ShiftFit, gradient: float) -> None:
    if result.status in ("all_negative", "all_positive"):
        which = "0" if result.status == "all_negative" else "1"
        warn(f"every label is {which} (of the rows with weight and a finite offset): the "
             f"optimal shift is {result.shift}; pass pseudo_count > 0 for a finite one")
    elif result.status == "not_identifiable":
        warn(f"both parts of the gradient underflow at shift {result.shift!r} and cannot be "
             f"compared in double precision: the shift is not identifiable from these sums")
    elif not result.converged:
        warn(f"did not converge after {result.iterations} iterations; last shift "
             f"{result.shift!r}, gradient {gradient:.3g}")
