"""Numbers that keep their precision at the ends of the double range.

Weight sums far from 1 are kept in units of ``2**E`` (:func:`weight_exponent` picks ``E``,
:func:`ldexp` moves a value between units without overflow), and label parts of a gradient
that underflow are kept as logarithms in pieces (:class:`LogPart`). Every layer above uses
them: the passes, the sketches, the estimators and the solver.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["TINY", "ORDINARY_EXPONENT", "ldexp", "log_ratio", "weight_exponent", "LogPart",
           "log_difference", "mean_within"]


#: A label part of the gradient below this (about 1e-271) may hold underflowed terms: the
#: curves then add its logarithm (:class:`LogPart`), and the solver steps on that.
TINY = 2.0 ** -900


#: Weight sums in ``[2**-ORDINARY_EXPONENT, 2**ORDINARY_EXPONENT]`` are summed as they come;
#: beyond, the weights are rescaled by a power of two first (see :func:`weight_exponent`).
ORDINARY_EXPONENT = 500


_LN2 = math.log(2.0)


def ldexp(value: float, exponent: int) -> float:
    """``value * 2**exponent``, exact unless it leaves the range of doubles, where it is
    ``±inf`` or (gradually) 0 rather than an error."""
    if exponent == 0 or value == 0 or not math.isfinite(value):
        return value
    try:
        return math.ldexp(value, exponent)
    except OverflowError:
        return math.copysign(math.inf, value)


def log_ratio(a: float, b: float) -> float:
    """``log(a / b)`` for positive ``a``, ``b``, unchanged to the bit when both are multiplied
    by the same power of two, and finite where ``a / b`` would overflow."""
    ratio = a / b
    if 0.5 <= ratio <= 2.0:
        return math.log1p((a - b) / b)  # a - b is exact here (Sterbenz)
    if 2.0 ** -1000 < ratio < 2.0 ** 1000:
        return math.log(ratio)
    mantissa_a, exponent_a = math.frexp(a)
    mantissa_b, exponent_b = math.frexp(b)
    return math.log(mantissa_a / mantissa_b) + (exponent_a - exponent_b) * _LN2


def weight_exponent(weight_sum: float, label_totals: tuple[float, ...],
                    largest_weight: Callable[[], float]) -> int:
    """The power of two ``k`` whose units the weights are summed in: 0 where their sum is
    ordinary (in ``[2**-500, 2**500]``, or 0), which is nearly always; else ``k`` such that
    the weights divided by ``2**k`` have a sum near 1, from the sum where it is finite and
    otherwise from the largest weight (``largest_weight()``, called only then: a pass).

    Dividing by a power of two is exact, so the shift does not depend on the units; they keep
    the sums clear of overflow (weights of 1e308) and of underflow (weights of 5e-324, whose
    products with σ would lose their digits). A label total (``Σ w y``, ``Σ w (1 - y)``)
    below :data:`TINY`, or 0, may have lost digits too (soft labels of 1e-287 times weights
    of 2**-81): where the weights' sum is below 1/2, units that raise it to 1 restore them.
    """
    ordinary = weight_sum == 0 or (2.0 ** -ORDINARY_EXPONENT <= weight_sum
                                   <= 2.0 ** ORDINARY_EXPONENT)
    if ordinary:
        if weight_sum < 0.5 and any(total < TINY for total in label_totals):
            return math.frexp(weight_sum)[1]
        return 0
    if math.isfinite(weight_sum):
        return math.frexp(weight_sum)[1]
    return math.frexp(largest_weight())[1]


@dataclass(frozen=True)
class LogPart:
    """The logarithm of a label part of the gradient where the part itself underflows:
    ``part = 2**exponent · exp(anchor + residual)``, and ``slope = curvature / part``.

    ``anchor`` is an offset of the data (or 0) and ``residual`` the rest, shift included: at
    offsets of ±1e300, ``offset + shift`` rounds to the offset, but the two parts' anchors are
    offsets themselves and cancel exactly in their difference, which leaves the shift whole.
    ``exponent`` carries the units of the weights, so that the residual does not depend on
    them.
    """

    anchor: float
    residual: float
    slope: float
    exponent: int = 0

    @classmethod
    def of(cls, part: float, curvature: float) -> LogPart | None:
        """From a linear part (None for a part that is 0 or not finite)."""
        if not (part > 0 and math.isfinite(part)):
            return None
        mantissa, exponent = math.frexp(part)
        return cls(0.0, math.log(mantissa), curvature / part, exponent)

    def value(self) -> float:
        """``log(part)`` as one number (rounded: differences of them lose the shift)."""
        return self.anchor + self.residual + self.exponent * _LN2

    def __add__(self, other: LogPart | None) -> LogPart:
        """The logarithm of the sum of two parts (log-sum-exp)."""
        if other is None:
            return self
        exponent = max(self.exponent, other.exponent)
        mine = self.residual + (self.exponent - exponent) * _LN2
        theirs = other.residual + (other.exponent - exponent) * _LN2
        gap = (self.anchor - other.anchor) + (mine - theirs)
        if not math.isfinite(gap):  # anchors 3e308 apart: their rounded sums will do
            gap = (self.anchor + mine) - (other.anchor + theirs)
        if math.isnan(gap):
            return LogPart(math.nan, math.nan, math.nan, exponent)
        big, small = (self, other) if gap >= 0 else (other, self)
        residual = mine if gap >= 0 else theirs
        share = math.exp(-abs(gap))  # the smaller part over the larger
        return LogPart(big.anchor, residual + math.log1p(share),
                       big.slope + (small.slope - big.slope) * share / (1.0 + share), exponent)

    __radd__ = __add__


def log_difference(negative: LogPart, positive: LogPart) -> float:
    """``log(negative part) - log(positive part)``, the anchors subtracted first."""
    units = (negative.exponent - positive.exponent) * _LN2
    difference = (negative.anchor - positive.anchor) + (negative.residual - positive.residual)
    if not math.isfinite(difference):  # anchors 3e308 apart
        difference = ((negative.anchor + negative.residual)
                      - (positive.anchor + positive.residual))
    return difference + units


def mean_within(mean: float, low: float, high: float) -> float:
    """A weighted mean kept inside the range it averages: rounding can put it just outside,
    and offsets of ±1e306 can make the sum overflow to nan (then the midpoint stands in)."""
    if not math.isfinite(mean):
        return 0.5 * low + 0.5 * high
    return min(max(mean, low), high)
