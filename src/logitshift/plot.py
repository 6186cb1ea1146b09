"""Pictures of a fit: the loss around the shift, calibration before and after it, and the
calibration report.

Needs matplotlib (``pip install "logitshift[plot]"``). :func:`loss_curve`,
:func:`reliability`, :func:`calibration` and :func:`prediction_histogram` draw on the Axes
they are given, or on a new :class:`matplotlib.figure.Figure`, and return the Axes
(``ax.figure`` is its figure); :func:`figure` returns a Figure with the first two, and
:func:`report_figure` one with the last two, for a
:class:`~logitshift.CalibrationReport`. :func:`group_shifts` draws the per-group shifts of a
:class:`~logitshift.GroupShiftFit` against the groups' sizes. Figures are made without pyplot: no global state,
no backend chosen, nothing shown. Save one with ``savefig``, or, in a notebook with
matplotlib's inline backend, leave it as a cell's value to see it.

>>> import logitshift, logitshift.plot                          # doctest: +SKIP
>>> result = logitshift.fit(labels, offsets)                    # doctest: +SKIP
>>> logitshift.plot.figure(result, labels, offsets).savefig("shift.png")  # doctest: +SKIP
>>> report = logitshift.validate(labels, offsets)               # doctest: +SKIP
>>> logitshift.plot.report_figure(report).savefig("report.png")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

try:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
except ImportError as exc:
    raise ImportError('plotting needs matplotlib: pip install "logitshift[plot]"') from exc

from ._core.losses import sigmoid
from ._core.validate import InputError, as_positive_int, as_shift
from ._estimators.decision import DecisionCurve
from ._estimators.groups import GroupShiftFit
from ._estimators.report import CalibrationReport, equal_weight_groups
from ._estimators.result import ShiftFit, normal_quantile
from ._summary.sketch import Sketch

__all__ = ["loss_curve", "reliability", "figure", "calibration", "prediction_histogram",
           "report_figure", "group_shifts", "net_benefit", "decision_figure",
           "smooth_calibration", "smooth_calibration_figure"]

#: Points on the loss curve (besides the shift and 0, which are always on it).
_CURVE_POINTS = 201
#: Bins of predicted probability in the histogram of predictions by label.
HISTOGRAM_BINS = 50


def _new_axes(ax: Axes | None) -> Axes:
    return Figure().add_subplot() if ax is None else ax


def _percent(level: float) -> str:
    return f"{100 * level:g}%"


def _shift_range(fit: ShiftFit, low: float, high: float) -> tuple[float, float]:
    """Shifts to draw: the interval, 0, the shift and three standard errors either side,
    with a margin; towards an infinite shift, as far again, to show the loss falling."""
    points = [0.0] + [value for value in (fit.shift, low, high) if math.isfinite(value)]
    if math.isfinite(fit.shift) and math.isfinite(fit.se):
        points += [fit.shift - 3.0 * fit.se, fit.shift + 3.0 * fit.se]
    left, right = min(points), max(points)
    margin = 0.1 * (right - left) or 1.0
    left, right = left - margin, right + margin
    if math.isinf(fit.shift):
        reach = max(right - left, 2.0)
        left, right = (left - reach, right) if fit.shift < 0 else (left, right + reach)
    return left, right


def loss_curve(fit: ShiftFit, *, ax: Axes | None = None, level: float = 0.95) -> Axes:
    """The mean loss as a function of the shift, with the shift, its interval and shift 0.

    Draws ``fit.loss_at(s) = Σ w BCE(y, offset + s) / Σ w`` over a range of shifts that holds
    the profile-likelihood interval, shift 0 and three standard errors either side of the
    shift; marks the shift (at ``fit.loss``), shades the interval ``fit.confint(level)`` and
    marks the loss at shift 0 (``fit.loss_at_zero``).

    Parameters
    ----------
    fit : ShiftFit
        A result of :func:`logitshift.fit` or :meth:`logitshift.Sketch.solve`.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default on a new figure.
    level : float, default 0.95
        Coverage of the interval.

    Returns
    -------
    matplotlib.axes.Axes
        The curve is the line with gid ``"loss"``, the interval the patch with gid
        ``"confint"``, the markers the lines with gids ``"shift"`` and ``"zero"``.

    Notes
    -----
    The curve is the data's loss, as ``fit.loss`` is: with a pseudo-count, whose rows the
    shift and the interval include, its minimum lies near the shift rather than at it.
    When every label is 0 (or 1) the shift is ``-inf`` (``+inf``): the loss falls towards
    that side without reaching a minimum, the interval is open on that side, and a note on
    the plot says so in place of a marker. One evaluation of the fit's sums per point: no
    pass over the data, except for fits made with ``method="newton"``.
    """
    low, high = fit.confint(level)
    left, right = _shift_range(fit, low, high)
    marked = [value for value in (fit.shift, 0.0) if math.isfinite(value)]
    shifts = np.union1d(np.linspace(left, right, _CURVE_POINTS), marked)
    losses = np.array([fit.loss_at(shift) for shift in shifts])

    ax = _new_axes(ax)
    ax.plot(shifts, losses, color="C0", label="mean loss", gid="loss")
    ax.axvspan(max(low, left), min(high, right), color="C0", alpha=0.15, linewidth=0,
               label=f"{_percent(level)} interval (profile likelihood)", gid="confint")
    if math.isfinite(fit.shift):
        ax.axvline(fit.shift, color="C1", linestyle="--", linewidth=1)
        ax.plot([fit.shift], [fit.loss], "o", color="C1", gid="shift",
                label=f"shift {fit.shift:.4g}: loss {fit.loss:.4g}")
    else:
        which = "0" if fit.shift < 0 else "1"
        note = f"shift = {fit.shift} (every label is {which})"
        ax.text(0.02 if fit.shift < 0 else 0.98, 0.5,
                f"\u2190 {note}" if fit.shift < 0 else f"{note} \u2192",
                transform=ax.transAxes, ha="left" if fit.shift < 0 else "right",
                va="center", color="C1", gid="shift")
    ax.plot([0.0], [fit.loss_at_zero], "s", color="C3", gid="zero",
            label=f"shift 0: loss {fit.loss_at_zero:.4g}")
    ax.set_xlim(left, right)
    ax.set_xlabel("shift (logits)")
    ax.set_ylabel("mean cross-entropy (nats)")
    ax.set_title("Loss around the shift")
    ax.legend(loc="best", fontsize="small")
    return ax


def _as_sketch(y: Any, offset: Any, weight: Any) -> Sketch:
    if not isinstance(y, Sketch):
        return Sketch().update(y, offset, weight)
    for name, value in (("offset", offset), ("weight", weight)):
        if value is not None:
            raise InputError(f"{name} must be None when y is a Sketch (the sketch holds it)",
                             argument=name)
    return y


def reliability(
    y: Any,
    offset: Any,
    shift: float,
    *,
    weight: Any = None,
    bins: int = 10,
    ax: Axes | None = None,
) -> Axes:
    """Predicted against observed positive rate, in bins of offset, before and after a shift.

    Parameters
    ----------
    y : array_like of shape (n,), or Sketch
        Labels in [0, 1], or a :class:`logitshift.Sketch` of the rows (then ``offset`` and
        ``weight`` must be None: a file streamed through a sketch needs no arrays).
    offset : array_like of shape (n,) or float, or None
        Raw scores the shift is added to, as for :func:`logitshift.fit`.
    shift : float
        The shift, usually ``fit.shift``; ``±inf`` is allowed.
    weight : array_like of shape (n,), optional
        Non-negative frequency weights.
    bins : int, default 10
        Groups of about equal weight.
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default on a new figure.

    Returns
    -------
    matplotlib.axes.Axes
        The lines with gids ``"before"`` (shift 0) and ``"after"`` hold the points, one per
        bin in increasing offset: ``x = Σ w σ(offset + s) / Σ w``, ``y = Σ w y / Σ w`` over
        the bin's rows. The bars with gid ``"weight"``, on a twin axis and placed at the
        after-shift points, hold ``Σ w`` per bin.

    Notes
    -----
    The rows are binned through the sketch's cells (offsets on a grid of width
    ``Sketch.width``, 1/16 of a logit by default): consecutive cells go into ``bins`` groups
    of about equal weight. A cell is never split, so a cell heavier than ``1 / bins`` of the
    total leaves fewer bins; without offsets every row is in one cell and there is one bin.
    The cells are by offset, so the bins are the same before and after the shift. Rows of
    infinite offset (certain, and right) and rows of zero weight are in no bin. At the
    optimal shift the weighted mean of the after-shift points lies on the diagonal: total
    expected equals total observed there.
    """
    sketch = _as_sketch(y, offset, weight)
    shift = as_shift(shift)
    bins = as_positive_int(bins, "bins")
    before, after = sketch.cells(0.0), sketch.cells(shift)
    if not np.sum(before.weight) > 0:
        raise InputError("no row has positive weight and a finite offset: nothing to bin",
                         argument="y")
    group = equal_weight_groups(before.weight, bins)

    def per_bin(values: np.ndarray) -> np.ndarray:
        return np.bincount(group, weights=values)

    bin_weight = per_bin(before.weight)
    observed = per_bin(before.observed) / bin_weight
    predicted_before = per_bin(before.expected) / bin_weight
    predicted_after = per_bin(after.expected) / bin_weight

    rates = np.concatenate([observed, predicted_before, predicted_after])
    low, high = float(rates.min()), float(rates.max())
    margin = 0.05 * (high - low) or 0.05
    low, high = low - margin, high + margin

    ax = _new_axes(ax)
    ax.plot([low, high], [low, high], color="0.6", linestyle=":", label="perfectly calibrated",
            gid="diagonal")
    ax.plot(predicted_before, observed, "o-", color="C0", label="before (shift 0)",
            gid="before")
    ax.plot(predicted_after, observed, "o-", color="C1", label=f"after (shift {shift:.4g})",
            gid="after")
    counts = ax.twinx()
    bars = counts.bar(predicted_after, bin_weight, width=0.015 * (high - low), color="C1",
                      alpha=0.25, label="weight per bin", gid="weight")
    # The bars keep to the lower quarter, under the points.
    counts.set_ylim(0.0, 4.0 * float(bin_weight.max()))
    counts.set_ylabel("weight per bin")
    ax.set_zorder(counts.get_zorder() + 1)
    ax.patch.set_visible(False)
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel("predicted positive rate")
    ax.set_ylabel("observed positive rate")
    ax.set_title("Reliability (1 bin)" if bin_weight.size == 1 else
                 f"Reliability ({bin_weight.size} bins of about equal weight)")
    ax.legend(handles=[*ax.get_lines(), bars], loc="best", fontsize="small")
    return ax


def figure(fit: ShiftFit, y: Any, offset: Any = None, *, weight: Any = None,
           level: float = 0.95) -> Figure:
    """Both pictures side by side: :func:`loss_curve` and :func:`reliability` at the shift.

    Parameters
    ----------
    fit : ShiftFit
        The fit of these rows.
    y : array_like of shape (n,), or Sketch
        Labels, or a :class:`logitshift.Sketch` of the rows (then ``offset`` and ``weight``
        must be None).
    offset, weight : array_like, optional
        As for :func:`logitshift.fit`.
    level : float, default 0.95
        Coverage of the interval on the loss curve.

    Returns
    -------
    matplotlib.figure.Figure
        A figure made without pyplot, with the two panels as its first two Axes.
    """
    fig = Figure(figsize=(11.0, 4.5), layout="constrained")
    left, right = fig.subplots(1, 2)
    loss_curve(fit, ax=left, level=level)
    reliability(y, offset, fit.shift, weight=weight, ax=right)
    return fig


# -- the calibration report ---------------------------------------------------------------------


def _logit(probability: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        return np.log(probability) - np.log1p(-probability)


def _probability_range(report: CalibrationReport) -> tuple[float, float]:
    """Probabilities to draw: the curve's points and intervals, with a margin, within
    [0, 1]."""
    curve = report.curve
    values = np.concatenate([curve.predicted, curve.observed, curve.low, curve.high])
    low, high = float(values.min()), float(values.max())
    margin = 0.05 * (high - low) or 0.05
    return max(0.0, low - margin), min(1.0, high + margin)


def calibration(report: CalibrationReport, *, ax: Axes | None = None) -> Axes:
    """The reliability curve of a calibration report, with its intervals, and the two
    recalibrations of the model: shift only, and slope and intercept.

    Parameters
    ----------
    report : CalibrationReport
        From :func:`logitshift.validate` (or its frame, file and sketch forms).
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default on a new figure.

    Returns
    -------
    matplotlib.axes.Axes
        The line with gid ``"observed"`` holds the curve's points, ``x = report.curve
        .predicted`` and ``y = report.curve.observed``, one per bin; the vertical lines of
        the collection with gid ``"interval"`` span each bin's interval (``curve.low`` to
        ``curve.high``, Wilson, at ``curve.level``). The line with gid ``"shift"`` is the
        calibration in the large, ``σ(f + shift)`` against ``σ(f)``; the line with gid
        ``"slope"`` is the logistic recalibration, ``σ(intercept + slope · f)`` against
        ``σ(f)`` (left out where that fit did not converge; so is ``"shift"`` where the shift
        is infinite). The line with gid ``"diagonal"`` is perfect calibration.

    Notes
    -----
    The two recalibrated curves are what the model's probabilities would be after
    refitting: where the shift's curve follows the points better than the diagonal, the
    model is off only in the large; where the slope's curve is steeper or flatter than the
    diagonal, its scores are too weak or too extreme. Both are drawn over the probabilities
    the points span; no data are read again.
    """
    curve = report.curve
    low, high = _probability_range(report)
    probability = np.linspace(max(low, 1e-9), min(high, 1.0 - 1e-9), _CURVE_POINTS)
    scores = _logit(probability)

    ax = _new_axes(ax)
    ax.plot([low, high], [low, high], color="0.6", linestyle=":", label="perfectly calibrated",
            gid="diagonal")
    shift, slope = report.shift, report.slope
    if math.isfinite(shift.shift):
        ax.plot(probability, sigmoid(scores + shift.shift), color="C1",
                label=f"shift only: σ(f {shift.shift:+.3g})", gid="shift")
    if slope.converged:
        ax.plot(probability, sigmoid(slope.intercept + slope.slope * scores), color="C2",
                label=f"slope and intercept: σ({slope.intercept:.3g} + {slope.slope:.3g} f)",
                gid="slope")
    ax.vlines(curve.predicted, curve.low, curve.high, color="C0", linewidth=1.5,
              label=f"{_percent(curve.level)} interval (Wilson)", gid="interval")
    ax.plot(curve.predicted, curve.observed, "o", color="C0",
            label=f"observed ({curve.weight.size} bins of about equal weight)",
            gid="observed")
    ax.set_xlim(low, high)
    ax.set_ylim(low, high)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed proportion")
    ax.set_title(f"Calibration: C = {report.c_statistic:.3f}, "
                 f"slope {slope.slope:.3g}, in the large {shift.shift:.3g}")
    ax.legend(loc="best", fontsize="small")
    return ax


def _report_cells(report: CalibrationReport) -> tuple[Sketch, Any]:
    """The sketch of the report's rows and its cells."""
    # The report's shift was solved on the sketch of its rows: its data curve is that sketch.
    sketch = getattr(report.shift, "_data", None)
    if not isinstance(sketch, Sketch):
        raise InputError("the report holds no sketch of its rows to draw the histogram from",
                         argument="report")
    return sketch, sketch.cells(0.0)


def prediction_histogram(report: CalibrationReport, *, ax: Axes | None = None,
                         bins: int = HISTOGRAM_BINS) -> Axes:
    """The predicted probabilities of the report's rows, by label: weight of label 1 above
    the axis, of label 0 below it (as ``val.prob`` draws them).

    Parameters
    ----------
    report : CalibrationReport
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default on a new figure.
    bins : int, default 50
        Bins of equal width in predicted probability, over [0, 1].

    Returns
    -------
    matplotlib.axes.Axes
        The bars with gid ``"positives"`` hold ``Σ w y`` per bin (heights up), those with gid
        ``"negatives"`` ``Σ w (1 - y)`` (heights down, negative); soft labels count in both.

    Notes
    -----
    The rows come from the sketch's cells (offsets on a grid of width ``Sketch.width``, 1/16
    of a logit by default), which do not say where in its cell a row lies: a cell that
    straddles a bin edge is shared between the two bins in proportion to the length of the
    cell (in logits) on either side. The totals by label are exact; a bin's weight is off
    by at most the weight of the two cells at its edges. Rows of infinite offset (predicted
    0 or 1, agreeing with their labels) are in the first and last bins.
    """
    bins = as_positive_int(bins, "bins")
    sketch, cells = _report_cells(report)
    edges = np.linspace(0.0, 1.0, bins + 1)
    # The share of each cell below each edge, the cell's rows spread evenly over its width.
    below = np.clip((_logit(edges)[None, :] - cells.centre[:, None]) / sketch.width + 0.5,
                    0.0, 1.0)
    share = np.diff(below, axis=1)
    up = cells.observed @ share
    down = (cells.weight - cells.observed) @ share
    # Rows of offset ±inf are in no cell: -inf rows are negatives predicted 0, +inf rows
    # positives predicted 1.
    up[-1] += max(0.0, report.shift.positives - float(np.sum(cells.observed)))
    down[0] += max(0.0, report.shift.weight_sum - report.shift.positives
                   - float(np.sum(cells.weight - cells.observed)))
    ax = _new_axes(ax)
    width = np.diff(edges)
    ax.bar(edges[:-1], up, width=width, align="edge", color="C3", alpha=0.6,
           label="label 1", gid="positives")
    ax.bar(edges[:-1], -down, width=width, align="edge", color="C0", alpha=0.6,
           label="label 0", gid="negatives")
    ax.axhline(0.0, color="0.3", linewidth=0.8)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("weight (label 1 up, label 0 down)")
    ax.legend(loc="best", fontsize="small")
    return ax


def report_figure(report: CalibrationReport) -> Figure:
    """The calibration report in one figure: :func:`calibration` above, and below it
    :func:`prediction_histogram`, the predictions by label over [0, 1].

    Returns
    -------
    matplotlib.figure.Figure
        A figure made without pyplot, with the two panels as its two Axes, in that order.
    """
    fig = Figure(figsize=(6.5, 8.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1.3])
    calibration(report, ax=top)
    prediction_histogram(report, ax=bottom)
    return fig


def _statistics_box(report: CalibrationReport) -> str:
    """The statistics ``val.prob.ci.2`` prints in its figure, one per line."""
    curve = report.smooth_curve
    percent = _percent(curve.level)
    shift, slope = report.shift, report.slope
    rows = [("n", f"{report.n_rows:,}")]
    c = f"{report.c_statistic:.3f}"
    rows.append(("C (ROC)", c))
    if math.isfinite(shift.shift):
        low, high = shift.confint(curve.level)
        rows.append(("In the large", f"{shift.shift:.3f} [{low:.3f}, {high:.3f}]"))
    if slope.converged:
        low, high = slope.confint(curve.level).slope
        rows.append(("Slope", f"{slope.slope:.3f} [{low:.3f}, {high:.3f}]"))
    for name in ("ici", "e50", "e90", "emax"):
        value = f"{getattr(curve, name):.3f}"
        low, high = curve.intervals[name]
        if not math.isnan(low):
            value += f" [{low:.3f}, {high:.3f}]"
        rows.append(("ICI" if name == "ici" else name.capitalize(), value))
    width = max(len(name) for name, _ in rows)
    lines = [f"{name.ljust(width)}  {value}" for name, value in rows]
    return "\n".join(lines + [f"({percent} intervals)"])


def smooth_calibration(report: CalibrationReport, *, ax: Axes | None = None,
                       groups: bool = True, statistics: bool = True) -> Axes:
    """The smooth calibration curve of a report (``validate(..., curve="rcs")``) with its
    band, the ideal line, the grouped observations with their intervals and a box of the
    statistics, as ``CalibrationCurves::val.prob.ci.2`` draws them.

    Parameters
    ----------
    report : CalibrationReport
        With ``report.smooth_curve`` (``validate(..., curve="rcs" | "loess")``).
    ax : matplotlib.axes.Axes, optional
    groups : bool, default True
        Draw the report's binned curve (deciles by default) with its Wilson intervals.
    statistics : bool, default True
        Draw the box of statistics: n, the c-statistic, the calibration intercept (in the
        large) and slope with their intervals, ICI, E50, E90 and Emax with theirs.

    Returns
    -------
    matplotlib.axes.Axes
        The line with gid ``"smooth"`` holds the curve (predicted, observed probability) over
        the middle 99% of the scores; the band with gid ``"pointwise"`` its pointwise
        interval, the lines with gids ``"band_low"``, ``"band_high"`` the simultaneous band
        (Scheffé's, over every score at once), both at ``curve.level`` (none for loess);
        ``"diagonal"`` is perfect calibration; ``"groups"`` the bins' points and
        ``"group_interval"`` their intervals; the text with gid ``"statistics"`` the box.
    """
    if not isinstance(report, CalibrationReport):
        raise InputError(f"report is a {type(report).__name__}: pass the CalibrationReport of "
                         "validate(..., curve='rcs')", argument="report")
    curve = report.smooth_curve
    if curve is None:
        raise InputError("report has no smooth curve: make it with validate(..., "
                         "curve='rcs')", argument="report")
    grid = curve.grid(_CURVE_POINTS)
    ax = _new_axes(ax)
    ax.plot([0, 1], [0, 1], color="0.55", linestyle=":", linewidth=1.2, label="ideal",
            gid="diagonal")
    percent = _percent(curve.level)
    if curve.method == "rcs":
        ax.fill_between(grid["predicted"], grid["low"], grid["high"], color="C0", alpha=0.25,
                        linewidth=0, label=f"{percent} pointwise interval", gid="pointwise")
        ax.plot(grid["predicted"], grid["band_low"], color="C0", linestyle="--",
                linewidth=0.9, label=f"{percent} simultaneous band", gid="band_low")
        ax.plot(grid["predicted"], grid["band_high"], color="C0", linestyle="--",
                linewidth=0.9, gid="band_high")
        label = f"flexible calibration (RCS, {curve.knots.size} knots)"
    else:
        label = "flexible calibration (lowess)"
    ax.plot(grid["predicted"], grid["probability"], color="C0", linewidth=2.0, label=label,
            gid="smooth")
    if groups:
        binned = report.curve
        ax.vlines(binned.predicted, binned.low, binned.high, color="0.2", linewidth=1.0,
                  gid="group_interval")
        ax.plot(binned.predicted, binned.observed, "^", color="0.2", markersize=5,
                label=f"grouped observations ({binned.weight.size} groups)", gid="groups")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.0)
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed proportion")
    ax.legend(loc="lower right", fontsize="small", framealpha=0.9)
    if statistics:
        ax.text(0.03, 0.97, _statistics_box(report), transform=ax.transAxes, va="top",
                ha="left", family="monospace", fontsize="small", gid="statistics",
                bbox={"boxstyle": "round", "facecolor": "white", "edgecolor": "0.7",
                      "alpha": 0.9})
    return ax


def smooth_calibration_figure(report: CalibrationReport) -> Figure:
    """:func:`smooth_calibration` above, and below it :func:`prediction_histogram`, the
    predictions by outcome over the same [0, 1]."""
    fig = Figure(figsize=(6.5, 8.6), layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=[4, 1.2], sharex=True)
    smooth_calibration(report, ax=top)
    prediction_histogram(report, ax=bottom)
    bottom.set_ylabel("weight\n(1 up, 0 down)")
    top.set_xlabel("")
    return fig


def group_shifts(result: GroupShiftFit, ax: Axes | None = None, *, level: float = 0.95,
                 annotate: int = 5) -> Axes:
    """The groups' shifts, with their intervals, against the groups' sizes: a funnel (or
    caterpillar) plot of a :class:`~logitshift.GroupShiftFit`.

    Each group is drawn at ``x = weight_sum`` (log scale where the sizes span a factor of
    10 or more): its maximum-likelihood shift with the Wald interval ``shift ± z · se``,
    and with random intercepts (``shrinkage="random"``) its shrunk shift ``μ̂ + û_g`` with
    ``shrunk ± z · shrunk_se``, joined to the first by a thin line, beside the mean ``μ̂``
    and the band ``μ̂ ± z · τ̂`` where ``1 - level`` of the groups' intercepts are expected
    to fall outside. Without them, the line is the pooled shift (one shift for every row).
    Small groups have wide intervals and, shrunk, lie near ``μ̂``: the funnel.

    Parameters
    ----------
    result : GroupShiftFit
        From :func:`logitshift.fit_groups` (or its frame, file and Dask forms).
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default on a new figure.
    level : float, default 0.95
        Coverage of the intervals (and of the band of ``τ̂``).
    annotate : int, default 5
        Label this many groups with their key: those of largest ``|shift - line|``
        (``|shrunk - μ̂|`` with random intercepts).

    Returns
    -------
    matplotlib.axes.Axes
        The line with gid ``"shift"`` holds one point per group of finite shift
        (``x = weight_sum``, ``y = shift``), the collection with gid ``"shift_interval"``
        their intervals; ``"shrunk"`` and ``"shrunk_interval"`` the same for the shrunk
        shifts (one per group with weight and a finite offset), ``"shrinkage"`` the lines
        between the two. A group whose shift is ``+inf`` (``-inf``), its labels all 1 (0),
        is a triangle at the top (bottom) edge, in the line with gid ``"infinite_above"``
        (``"infinite_below"``), drawn only where there is one. The line
        with gid ``"mean"`` is at ``μ̂`` (random intercepts) and the one with gid
        ``"pooled"`` at the pooled shift otherwise; the patch ``"tau"`` is the band.

    Notes
    -----
    Only the result's arrays are read: no pass over the data. Groups without weight have
    no size and no shift, and are left out.
    """
    from matplotlib.collections import LineCollection
    from matplotlib.transforms import offset_copy

    z = normal_quantile(level)
    annotate = int(annotate)
    random = result.shrinkage == "random"
    size = np.asarray(result.weight_sum, dtype=float)
    shift, se = np.asarray(result.shift, dtype=float), np.asarray(result.se, dtype=float)
    sized = size > 0
    finite = sized & np.isfinite(shift)
    infinite = sized & np.isinf(shift)

    ax = _new_axes(ax)
    if sized.any() and size[sized].max() >= 10.0 * size[sized].min():
        ax.set_xscale("log")
    # With random intercepts, the two estimates of a group stand a few points apart on the
    # screen (their data are the group's size all the same), so that neither hides the other.
    dodge = 2.5 if random else 0.0
    raw_at = offset_copy(ax.transData, fig=ax.figure, x=-dodge, units="points")
    shrunk_at = offset_copy(ax.transData, fig=ax.figure, x=dodge, units="points")
    bounded = finite & np.isfinite(se)
    ax.add_collection(LineCollection(
        [[(x, s - z * e), (x, s + z * e)] for x, s, e in
         zip(size[bounded], shift[bounded], se[bounded])],
        colors="0.45", linewidths=1.0, gid="shift_interval", transform=raw_at,
        label=f"{_percent(level)} interval (Wald)"))
    ax.plot(size[finite], shift[finite], "o", markerfacecolor="white", markeredgecolor="0.2",
            markersize=5, linestyle="none", gid="shift", transform=raw_at, zorder=3,
            label=f"shift of the group ({int(finite.sum())})")
    # Artists drawn with an offset do not set the data limits: their data do.
    ax.update_datalim(np.column_stack([size[bounded], shift[bounded] - z * se[bounded]]))
    ax.update_datalim(np.column_stack([size[bounded], shift[bounded] + z * se[bounded]]))
    ax.update_datalim(np.column_stack([size[finite], shift[finite]]))
    if random:
        shrunk = np.asarray(result.shrunk, dtype=float)
        shrunk_se = np.asarray(result.shrunk_se, dtype=float)
        drawn = sized & np.isfinite(shrunk)
        ax.add_collection(LineCollection(
            [[(x, a), (x, b)] for x, a, b in zip(size[finite & drawn], shift[finite & drawn],
                                                 shrunk[finite & drawn])],
            colors="C1", linewidths=0.6, alpha=0.5, gid="shrinkage"))
        ax.add_collection(LineCollection(
            [[(x, s - z * e), (x, s + z * e)] for x, s, e in
             zip(size[drawn], shrunk[drawn], shrunk_se[drawn])],
            colors="C1", linewidths=1.2, alpha=0.8, gid="shrunk_interval", transform=shrunk_at))
        ax.plot(size[drawn], shrunk[drawn], "o", color="C1", markersize=5, linestyle="none",
                gid="shrunk", transform=shrunk_at,
                label=f"shrunk: μ̂ + û ({int(drawn.sum())}), {_percent(level)} interval")
        for spread in (-z, z):
            ax.update_datalim(np.column_stack([size[drawn],
                                               shrunk[drawn] + spread * shrunk_se[drawn]]))
        centre = result.mean
        ax.axhline(centre, color="C0", linewidth=1.2, gid="mean",
                   label=f"μ̂ = {centre:.4g} (se {result.mean_se:.2g})")
        if result.tau > 0:
            ax.axhspan(centre - z * result.tau, centre + z * result.tau, color="C0",
                       alpha=0.06, linewidth=0, gid="tau",
                       label=f"μ̂ ± {z:.3g} τ̂, τ̂ = {result.tau:.3g}")
        values = np.where(drawn, shrunk, np.nan)
    else:
        centre = result.pooled.shift
        ax.axhline(centre, color="C0", linewidth=1.2, gid="pooled",
                   label=f"pooled shift {centre:.4g}")
        values = np.where(finite, shift, np.nan)
    # A group of infinite shift: a triangle at the edge of the axes on the side of its sign.
    for gid, side, marker, height in (("infinite_above", 1, "^", 0.97),
                                      ("infinite_below", -1, "v", 0.03)):
        edge = infinite & (np.sign(shift) == side)
        if edge.any():
            ax.plot(size[edge], np.full(int(edge.sum()), height), marker, color="C3",
                    linestyle="none", transform=ax.get_xaxis_transform(), gid=gid,
                    label=f"shift {'+' if side > 0 else '-'}inf ({int(edge.sum())}: labels "
                          f"all {1 if side > 0 else 0})")
    far = np.flatnonzero(np.isfinite(values))
    far = far[np.argsort(-np.abs(values[far] - centre), kind="stable")][:max(annotate, 0)]
    for i in far.tolist():
        ax.annotate(str(result.groups[i]), (size[i], values[i]), xytext=(4, 2),
                    textcoords="offset points", fontsize="x-small", gid="annotation")
    ax.autoscale_view()
    ax.set_xlabel("group size (weight sum)")
    ax.set_ylabel("shift (logits)")
    ax.set_title(f"{result.n_groups} groups: shifts with {_percent(level)} intervals")
    ax.legend(loc="best", fontsize="small")
    return ax


#: How far below 0 a decision curve's axis reaches, as a share of the highest net benefit
#: drawn: treat-all falls without bound as the threshold rises, and below the zero of treat
#: none it only says "worse than treating no one" (dcurves and rmda clip it so too).
_NET_BENEFIT_FLOOR = 0.15


def net_benefit(curve: DecisionCurve, *, ax: Axes | None = None,
                standardized: bool = False) -> Axes:
    """The decision curve: net benefit against the threshold probability for the model,
    each recalibration, treating everyone and treating no one.

    Parameters
    ----------
    curve : DecisionCurve
        From :func:`logitshift.decision_curve` (or ``validate(..., decision=True).decision``).
    ax : matplotlib.axes.Axes, optional
        Where to draw; by default on a new figure.
    standardized : bool, default False
        Draw the standardised net benefit ``NB / π`` (at most 1) instead.

    Returns
    -------
    matplotlib.axes.Axes
        The lines with gid ``"model"``, ``"shifted"``, ``"recalibrated"``, ``"treat_all"``
        and ``"treat_none"`` hold ``x = 100 · thresholds`` (per cent) and their net benefit
        (the recalibrations only where the curve has them). The y-axis reaches below 0 by
        15% of the highest value drawn, so treat all's fall past 0 is cut there; the legend
        sits above the axes, off the curves.
    """
    if isinstance(curve, CalibrationReport) and curve.decision is not None:
        curve = curve.decision  # the report of validate(..., decision=True) holds it
    if not isinstance(curve, DecisionCurve):
        raise InputError(f"curve is a {type(curve).__name__}: pass a DecisionCurve "
                         "(decision_curve(...), or validate(..., decision=True).decision)",
                         argument="curve")
    ax = _new_axes(ax)
    percent = 100.0 * curve.thresholds
    field = "standardized" if standardized else "net_benefit"
    treat_all = curve.treat_all_standardized if standardized else curve.treat_all
    styles = {"model": ("model", "C0", "-", 2.0),
              "shifted": (f"after the shift ({curve.shift:+.3g})", "C1", "--", 1.6),
              "recalibrated": (f"after recalibration ({curve.intercept:.3g} + "
                               f"{curve.slope:.3g} f)", "C2", "-.", 1.6)}
    drawn = [np.zeros(1), treat_all[np.isfinite(treat_all)]]
    ax.axhline(0.0, color="0.15", linewidth=1.0, label="treat none", gid="treat_none")
    ax.plot(percent, treat_all, color="0.55", linewidth=1.2, label="treat all",
            gid="treat_all")
    for name, net in curve.curves().items():
        label, color, style, width = styles[name]
        values = getattr(net, field)
        ax.plot(percent, values, color=color, linestyle=style, linewidth=width, label=label,
                gid=name)
        drawn.append(values[np.isfinite(values)])
    high = float(max(np.max(values) for values in drawn if values.size))
    high = high * 1.05 if high > 0 else 0.05
    ax.set_ylim(-_NET_BENEFIT_FLOOR * high, high)
    ax.set_xlim(percent[0], percent[-1]) if percent.size > 1 else None
    ax.set_xlabel("threshold probability (%)")
    ax.set_ylabel("standardised net benefit" if standardized else "net benefit")
    ax.grid(color="0.92", linewidth=0.8)
    ax.set_axisbelow(True)
    # The model's curves first in the legend, the two references after them.
    handles, labels = ax.get_legend_handles_labels()
    order = list(range(2, len(handles))) + [1, 0]
    ax.legend([handles[i] for i in order], [labels[i] for i in order], loc="lower left",
              bbox_to_anchor=(0.0, 1.01, 1.0, 0.2), mode="expand", ncol=3, fontsize="small",
              frameon=False, borderaxespad=0.0)
    return ax


def decision_figure(curve: DecisionCurve, *, standardized: bool = False) -> Figure:
    """The decision curve in a figure a journal prints: :func:`net_benefit`, and with
    ``standardized=True`` the standardised net benefit beside it.

    Returns
    -------
    matplotlib.figure.Figure
        A figure made without pyplot, with one Axes (or two: net benefit, then
        standardised), whose title gives the prevalence and the rows.
    """
    panels = 2 if standardized else 1
    fig = Figure(figsize=(6.4 * panels, 5.0), layout="constrained")
    axes = np.atleast_1d(fig.subplots(1, panels))
    net_benefit(curve, ax=axes[0])
    if standardized:
        net_benefit(curve, ax=axes[1], standardized=True)
    source = "" if curve.exact else "; from the sketch's histogram"
    fig.suptitle(f"Decision curve: prevalence {curve.prevalence:.3g}, "
                 f"{curve.n_rows:,} rows{source}", fontsize="medium")
    return fig
