"""Decision curves: the net benefit of treating the rows whose predicted risk reaches a
threshold, over thresholds, for the scores as given and after each recalibration.

Vickers & Elkin (2006): at a threshold probability ``t`` a row is *treated* when its predicted
risk ``p`` satisfies ``p >= t`` (ties treated, as ``dcurves`` and ``rmda`` count them), and

    NB(t) = TP(t) / n - FP(t) / n · t / (1 - t),

with ``TP = Σ w y [treated]``, ``FP = Σ w (1 - y) [treated]`` and ``n = Σ w``: with weights
every count is a weight sum, and a soft label counts as a positive of weight ``w y`` and a
negative of weight ``w (1 - y)``. Treating everyone gives ``π - (1 - π) t / (1 - t)`` with
``π = Σ w y / n``; treating no one gives 0. The standardised net benefit (Kerr et al. 2016)
is ``NB / π``.

The estimator knows the data only through two questions (:class:`TreatedRows`): the label
totals, and the weights of each label among the rows whose raw score is at or above given
cuts. Rows in memory answer exactly; a sketch answers from its histogram of the scores, and
the rows of the one sub-bin that holds a cut may lie on either side of it: their weight
bounds the error, reported per threshold. The threshold is moved onto the raw scores: ``p >=
t`` is ``f >= logit(t)`` for the scores as given, ``f >= logit(t) - shift`` after the shift
(``p = σ(f + shift)``), and ``a + b f >= logit(t)`` after the logistic recalibration
(``p = σ(a + b f)``), which for ``b < 0`` reverses the order: ``f <= (logit(t) - a) / b``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import numpy as np

from .._core import jsonsafe as _json
from .._core.units import ldexp
from .._core.validate import InputError, as_numeric

__all__ = ["DecisionCurve", "NetBenefit", "TreatedRows", "TreatedWeights", "LabelTotals",
           "check_thresholds", "decision_curve_of", "logit", "DEFAULT_THRESHOLDS"]

#: The thresholds of a decision curve unless given: 0.01, 0.02, ..., 0.99.
DEFAULT_THRESHOLDS = np.arange(1, 100) / 100.0


class LabelTotals(NamedTuple):
    """The rows' weight ``Σ w`` and positives ``Σ w y``, in units of ``2**scale_exponent``
    (``n_rows`` counts the rows)."""

    n_rows: int
    weight_sum: float
    positives: float
    scale_exponent: int


class TreatedWeights(NamedTuple):
    """Per cut ``c``, in the units of :class:`LabelTotals`: ``negatives`` and ``positives``
    are the weights ``Σ w (1 - y)`` and ``Σ w y`` of the rows surely at or above ``c``;
    ``straddle_negatives`` and ``straddle_positives`` those of rows that may lie on either
    side (0 where the rows are known); ``straddle_share`` the share of their bin's width at
    or above ``c``, by which an estimate counts them. ``rounding``: the largest relative
    error of the sums behind these weights, as a share of the total weight (0 where they
    are exact)."""

    negatives: np.ndarray
    positives: np.ndarray
    straddle_negatives: np.ndarray
    straddle_positives: np.ndarray
    straddle_share: np.ndarray
    rounding: float = 0.0


class TreatedRows(Protocol):
    """What a decision curve asks of a summary of the rows (the rows themselves, or a
    sketch with its histogram)."""

    def label_totals(self) -> LabelTotals: ...

    def treated_weights(self, cuts: np.ndarray) -> TreatedWeights:
        """The weights of the rows whose raw score ``f`` satisfies ``f >= cut``, for each
        of ``cuts`` (any order, ``±inf`` allowed)."""
        ...


@dataclass(frozen=True)
class NetBenefit:
    """The net benefit of one set of predicted risks at each threshold.

    Attributes
    ----------
    net_benefit : ndarray, shape (k,)
        ``TP / n - FP / n · t / (1 - t)``.
    standardized : ndarray, shape (k,)
        ``net_benefit / π`` (NaN where no row is positive).
    true_positives, false_positives : ndarray, shape (k,)
        ``Σ w y`` and ``Σ w (1 - y)`` over the treated rows (from a sketch, estimates that
        count the straddling sub-bin by the share of it at or above the threshold).
    bound : ndarray, shape (k,)
        The largest error of ``net_benefit``: 0 from rows in memory; from a sketch, the
        most that the rows of the sub-bin holding the threshold can move it, plus the
        rounding of the sums. ``standardized`` is off by at most ``bound / π``.
    """

    net_benefit: np.ndarray
    standardized: np.ndarray
    true_positives: np.ndarray
    false_positives: np.ndarray
    bound: np.ndarray

    def to_dict(self) -> dict[str, list[float]]:
        return {name: getattr(self, name).tolist() for name in
                ("net_benefit", "standardized", "true_positives", "false_positives", "bound")}


@dataclass(frozen=True, repr=False)
class DecisionCurve:
    """The decision curve of a model's scores: net benefit against the threshold
    probability, beside treating everyone and no one, and after each recalibration.

    Attributes
    ----------
    thresholds : ndarray, shape (k,)
        The threshold probabilities ``t``, increasing, in (0, 1). A row is treated when its
        predicted risk ``p >= t``.
    model : NetBenefit
        The scores as given, ``p = σ(f)``.
    shifted : NetBenefit or None
        After the calibration in the large, ``p = σ(f + shift)`` (:func:`logitshift.fit`'s
        shift); None where it was not asked for.
    recalibrated : NetBenefit or None
        After the logistic recalibration, ``p = σ(intercept + slope · f)``
        (:func:`logitshift.fit_slope`); None where it was not asked for or the slope did not
        converge (``slope_status`` says why). A negative slope reverses the order of the
        rows: the treated are then those of the *lowest* scores.
    treat_all, treat_all_standardized : ndarray, shape (k,)
        ``π - (1 - π) t / (1 - t)`` and that over ``π``. Treating no one is 0.
    prevalence : float
        ``π = Σ w y / Σ w``.
    n_rows : int
    weight_sum, positives : float
        ``Σ w`` and ``Σ w y``.
    shift, intercept, slope : float
        The recalibrations applied (NaN where not asked for).
    slope_status : str
        The logistic recalibration's status (``"converged"``, ``"separated"``, ...), or
        ``"not_asked"``.
    exact : bool
        True where the counts come from the rows themselves (every ``bound`` is 0).
    """

    thresholds: np.ndarray
    model: NetBenefit
    shifted: NetBenefit | None
    recalibrated: NetBenefit | None
    treat_all: np.ndarray
    treat_all_standardized: np.ndarray
    prevalence: float
    n_rows: int
    weight_sum: float
    positives: float
    shift: float
    intercept: float
    slope: float
    slope_status: str
    exact: bool

    @property
    def treat_none(self) -> np.ndarray:
        """Treating no one: 0 at every threshold."""
        return np.zeros_like(self.thresholds)

    def curves(self) -> dict[str, NetBenefit]:
        """The model's curves by name (``"model"``, ``"shifted"``, ``"recalibrated"``), as
        there are."""
        return {name: curve for name, curve in (("model", self.model),
                                                ("shifted", self.shifted),
                                                ("recalibrated", self.recalibrated))
                if curve is not None}

    def to_dict(self, *, json_safe: bool = False) -> dict[str, Any]:
        """Plain values: the thresholds and every curve as lists. With ``json_safe=True``,
        the values strict JSON holds (see :meth:`CalibrationReport.to_dict`)."""
        record: dict[str, Any] = {
            "n_rows": self.n_rows, "weight_sum": self.weight_sum, "positives": self.positives,
            "prevalence": self.prevalence, "exact": self.exact,
            "shift": self.shift, "intercept": self.intercept, "slope": self.slope,
            "slope_status": self.slope_status,
            "thresholds": self.thresholds.tolist(),
            "treat_all": self.treat_all.tolist(),
            "treat_all_standardized": self.treat_all_standardized.tolist(),
            "treat_none": self.treat_none.tolist(),
            **{name: curve.to_dict() for name, curve in self.curves().items()},
        }
        return _json.json_safe(record) if json_safe else record

    def __repr__(self) -> str:
        return "DecisionCurve(\n" + "\n".join(describe(self)) + "\n)"


def describe(curve: DecisionCurve, every: int = 1) -> list[str]:
    """The curve as a table, one line per ``every``-th threshold: the net benefit of treat
    all and of each set of risks (with ``± bound`` where a sketch gave it)."""
    names = {"model": "model", "shifted": "shifted", "recalibrated": "recalibrated"}
    curves = curve.curves()
    header = "  threshold  treat all" + "".join(f"  {names[name]:>{_column(curve)}}"
                                                 for name in curves)
    lines = [header]
    for i in range(0, curve.thresholds.size, every):
        row = f"  {curve.thresholds[i]:9.4g}  {curve.treat_all[i]:9.5f}"
        for net in curves.values():
            cell = f"{net.net_benefit[i]:.5f}"
            if not curve.exact:
                cell += f" ± {net.bound[i]:.1e}"
            row += f"  {cell:>{_column(curve)}}"
        lines.append(row)
    return lines


def _column(curve: DecisionCurve) -> int:
    return 12 if curve.exact else 20


def logit(probability: np.ndarray) -> np.ndarray:
    """``log(p) - log1p(-p)``: the conversion of ``offset_is="probability"``, so that a
    probability equal to a threshold lands on that threshold's log-odds exactly."""
    with np.errstate(divide="ignore"):
        return np.log(probability) - np.log1p(-probability)


def check_thresholds(thresholds: Any) -> np.ndarray:
    """Thresholds as a new float64 array: 1-D, not empty, each in (0, 1), strictly
    increasing; None gives :data:`DEFAULT_THRESHOLDS`."""
    if thresholds is None:
        return DEFAULT_THRESHOLDS.copy()
    values = np.array(as_numeric(thresholds, "thresholds"), dtype=np.float64)
    if values.size == 0:
        raise InputError("thresholds is empty: give at least one threshold probability in "
                         "(0, 1)", argument="thresholds")
    bad = ~((values > 0) & (values < 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        value = float(values[i])
        what = "is nan" if math.isnan(value) else f"= {value!r} is outside (0, 1)"
        raise InputError(f"thresholds[{i}] {what}: a threshold is a probability strictly "
                         "between 0 and 1", argument="thresholds", index=i, value=value)
    if values.size > 1:
        steps = np.diff(values)
        if not (steps > 0).all():
            i = int(np.flatnonzero(~(steps > 0))[0]) + 1
            raise InputError(f"thresholds must increase: thresholds[{i}] = "
                             f"{float(values[i])!r} follows {float(values[i - 1])!r}",
                             argument="thresholds", index=i,
                             value=float(values[i]))
    return values


def decision_curve_of(rows: TreatedRows, thresholds: np.ndarray, *, shift: float | None = None,
                      line: tuple[float, float, str] | None = None, exact: bool) -> DecisionCurve:
    """The :class:`DecisionCurve` of ``rows`` at ``thresholds`` (checked, increasing).

    ``shift``: the calibration in the large to apply as well (None for none); ``line``:
    ``(intercept, slope, status)`` of the logistic recalibration (None for none; a status
    other than ``"converged"`` leaves it out). ``exact``: the rows answer exactly.

    Notes
    -----
    One call of ``rows.treated_weights`` with every cut (three per threshold at most), so
    rows in memory are read once. A strict cut (``f > c``, the reversed order of a
    negative slope asks for ``f <= c``, the complement of ``f > c``) is asked as ``f >=``
    the next double above ``c``, which is the same set of doubles.
    """
    totals = rows.label_totals()
    levels = logit(thresholds)
    sets: list[tuple[str, np.ndarray, bool]] = [("model", levels, False)]
    shift_value = math.nan if shift is None else float(shift)
    if shift is not None:
        sets.append(("shifted", levels - shift_value, False))
    intercept, slope, status = (math.nan, math.nan, "not_asked") if line is None else line
    recalibrate = line is not None and status == "converged"
    if recalibrate:
        sets.append(("recalibrated", *_line_cuts(levels, intercept, slope)))
    cuts = np.concatenate([np.nextafter(c, math.inf) if reversed_ else c
                           for _, c, reversed_ in sets])
    treated = rows.treated_weights(cuts)
    k = thresholds.size
    odds = thresholds / (1.0 - thresholds)
    total, positives = totals.weight_sum, totals.positives
    prevalence = positives / total
    nets: dict[str, NetBenefit] = {}
    for s, (name, _, reversed_) in enumerate(sets):
        part = slice(s * k, (s + 1) * k)
        nets[name] = _net_benefit(
            TreatedWeights(*(column[part] for column in treated[:5]), treated.rounding),
            reversed_, odds, totals, prevalence)
    with np.errstate(divide="ignore", invalid="ignore"):
        treat_all = prevalence - (1.0 - prevalence) * odds
        treat_all_standardized = treat_all / prevalence if prevalence > 0 else np.full(k, np.nan)
    return DecisionCurve(
        thresholds=thresholds, model=nets["model"], shifted=nets.get("shifted"),
        recalibrated=nets.get("recalibrated"), treat_all=treat_all,
        treat_all_standardized=treat_all_standardized, prevalence=prevalence,
        n_rows=totals.n_rows, weight_sum=ldexp(total, totals.scale_exponent),
        positives=ldexp(positives, totals.scale_exponent), shift=shift_value,
        intercept=intercept, slope=slope, slope_status=status, exact=exact)


def _line_cuts(levels: np.ndarray, intercept: float, slope: float) -> tuple[np.ndarray, bool]:
    """The cuts on the raw scores of ``intercept + slope · f >= level``, and whether the
    treated lie at or *below* them (a negative slope); a zero slope treats everyone or no
    one."""
    if slope > 0:
        return (levels - intercept) / slope, False
    if slope < 0:
        return (levels - intercept) / slope, True
    # σ(intercept) is every row's risk: everyone is treated where it reaches the threshold.
    return np.where(intercept >= levels, -math.inf, math.inf), False


def _net_benefit(treated: TreatedWeights, reversed_: bool, odds: np.ndarray,
                 totals: LabelTotals, prevalence: float) -> NetBenefit:
    """The net benefit from the treated weights at one set of cuts; ``reversed_``: the
    treated are the rows *not* counted (``f <= c`` is the complement of ``f > c``)."""
    negatives, positives = treated.negatives, treated.positives
    straddle_negatives, straddle_positives = treated.straddle_negatives, treated.straddle_positives
    share = treated.straddle_share
    if reversed_:
        negatives = (totals.weight_sum - totals.positives) - negatives - straddle_negatives
        positives = totals.positives - positives - straddle_positives
        share = 1.0 - share
    n = totals.weight_sum
    true_positives = positives + share * straddle_positives
    false_positives = negatives + share * straddle_negatives
    net = true_positives / n - false_positives / n * odds
    # The straddling rows all on one side, then all on the other: the estimate is between.
    below = (share * straddle_positives + (1.0 - share) * straddle_negatives * odds) / n
    above = ((1.0 - share) * straddle_positives + share * straddle_negatives * odds) / n
    bound = np.maximum(below, above) + treated.rounding * (1.0 + odds)
    with np.errstate(divide="ignore", invalid="ignore"):
        standardized = net / prevalence if prevalence > 0 else np.full(net.shape, np.nan)
    exponent = totals.scale_exponent
    return NetBenefit(net_benefit=net, standardized=standardized,
                      true_positives=np.ldexp(true_positives, exponent),
                      false_positives=np.ldexp(false_positives, exponent), bound=bound)
