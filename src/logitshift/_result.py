"""The one result type of every fit, and the statistics derived from it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Any, NamedTuple

from ._solve import Curve, ldexp, profile_bound
from ._validate import InputError, as_shift

__all__ = ["ShiftFit", "LRTest", "ObservedExpected"]


def normal_quantile(level: float) -> float:
    if not (isinstance(level, (int, float)) and 0 < level < 1):
        raise InputError(f"level = {level!r} must be between 0 and 1", argument="level",
                         value=level)
    return NormalDist().inv_cdf(0.5 + 0.5 * level)


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
        Standard error of the shift, ``1 / sqrt(Σ w σ(z)σ(-z))`` at the shift (the observed
        information; ``inf`` when the shift is infinite). Where the information underflows
        (data separated by a gap beyond σ's range) it comes from its logarithm: finite where
        the true value is a double, ``inf`` beyond.
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

    def confint(self, level: float = 0.95, method: str = "profile") -> tuple[float, float]:
        """Confidence interval for the shift.

        Parameters
        ----------
        level : float
            Coverage, between 0 and 1.
        method : {"profile", "wald"}
            ``"profile"``: the shifts where twice the rise in total loss equals the
            chi-square(1) quantile (the likelihood-ratio interval; finite on the
            informative side even when the shift is infinite). ``"wald"``:
            ``shift ± z · se``; ``(-inf, inf)`` when the shift is infinite.

        Returns
        -------
        (low, high) : tuple of float
        """
        z = normal_quantile(level)
        if method == "wald":
            if not math.isfinite(self.shift):
                return (-math.inf, math.inf)
            return (self.shift - z * self.se, self.shift + z * self.se)
        if method != "profile":
            raise InputError(f"method = {method!r} must be 'profile' or 'wald'",
                             argument="method", value=method)
        start = 1.5 * z * self.se if math.isfinite(self.se) else 1.0
        bounds = [
            profile_bound(self._objective, self.shift, self._objective_loss,
                          ldexp(0.5 * z * z, -self._scale_exponent), direction, start)
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
        """Likelihood-ratio test that the shift is 0, chi-square with 1 degree of freedom."""
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

    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        """The result as plain Python values, with the profile interval, the likelihood-ratio
        test and the observed/expected ratio at ``level``."""
        low, high = self.confint(level)
        wald_low, wald_high = self.confint(level, method="wald")
        test = self.lr_test()
        oe = self.observed_expected_at(level)
        return {
            "shift": self.shift,
            "se": self.se,
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

    def __repr__(self) -> str:
        return (
            f"ShiftFit(shift={self.shift!r}, se={self.se:.6g}, status={self.status!r}, "
            f"iterations={self.iterations}, method={self.method!r}, passes={self.passes}, "
            f"n_rows={self.n_rows}, "
            f"positives={self.positives:.10g}, weight_sum={self.weight_sum:.10g}, "
            f"loss={self.loss:.6g}, loss_at_zero={self.loss_at_zero:.6g})"
        )
