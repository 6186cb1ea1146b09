"""logitshift.plot: what the axes hold, against numpy sums over the arrays."""

from __future__ import annotations

import math
import subprocess
import sys
import warnings

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="logitshift.plot needs matplotlib (logitshift[plot])")

from matplotlib.figure import Figure  # noqa: E402

import logitshift  # noqa: E402
from logitshift import plot  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def recalibration_data(n=4000, seed=5):
    rng = np.random.default_rng(seed)
    offsets = rng.normal(-0.5, 1.5, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-(offsets + 0.7)))).astype(float)
    weights = rng.exponential(1.0, n) * (rng.random(n) > 0.1)
    return labels, offsets, weights


def mean_loss(labels, offsets, weights, shift):
    return float(np.sum(logitshift.loss(labels, offsets + shift, weights)) / np.sum(weights))


def by_gid(artists, gid):
    (found,) = [artist for artist in artists if artist.get_gid() == gid]
    return found


def band_edges(patch):
    """The data x-range of an axvspan patch, whatever patch class draws it."""
    corners = patch.get_patch_transform().transform(patch.get_path().vertices)
    return float(corners[:, 0].min()), float(corners[:, 0].max())


def weight_axes(ax):
    (twin,) = [other for other in ax.figure.axes
               if other is not ax and other.bbox.bounds == ax.bbox.bounds]
    return twin


def assert_png(path):
    assert path.stat().st_size > 1000
    assert path.read_bytes()[:8] == PNG_MAGIC


def test_importing_the_package_does_not_import_matplotlib_and_plots_need_no_pyplot(tmp_path):
    script = f"""
import sys
import numpy as np
import logitshift, logitshift.cli
assert "matplotlib" not in sys.modules, "import logitshift imported matplotlib"
import logitshift.plot
labels, offsets = np.array([0, 1, 1, 0, 1]), np.array([-1.0, 0.5, 2.0, 0.3, -0.2])
figure = logitshift.plot.figure(logitshift.fit(labels, offsets), labels, offsets)
figure.savefig({str(tmp_path / "out.png")!r})
assert "matplotlib.pyplot" not in sys.modules, "plotting imported pyplot"
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode()
    assert_png(tmp_path / "out.png")


# -- loss curve -----------------------------------------------------------------------------------


@pytest.mark.parametrize("options", [{}, {"method": "newton"}, {"pseudo_count": 5.0}],
                         ids=["sketch", "newton", "pseudo-count"])
def test_loss_curve_holds_the_loss_the_shift_and_its_interval(tmp_path, options):
    labels, offsets, weights = recalibration_data()
    result = logitshift.fit(labels, offsets, weights, **options)
    ax = plot.loss_curve(result, level=0.9)

    line = by_gid(ax.get_lines(), "loss")
    shifts, losses = line.get_xdata(), line.get_ydata()
    assert np.all(np.diff(shifts) > 0)
    at_shift = np.flatnonzero(shifts == result.shift)
    at_zero = np.flatnonzero(shifts == 0.0)
    assert at_shift.size == 1 and at_zero.size == 1
    assert losses[at_shift[0]] == result.loss
    assert losses[at_zero[0]] == result.loss_at_zero
    if "pseudo_count" not in options:
        assert np.argmin(losses) == at_shift[0]
    for index in (0, 37, 150, shifts.size - 1):
        assert losses[index] == pytest.approx(
            mean_loss(labels, offsets, weights, shifts[index]), rel=1e-12)

    low, high = result.confint(0.9)
    assert band_edges(by_gid(ax.patches, "confint")) == pytest.approx((low, high), rel=1e-15)
    # The range holds the interval, 0 and three standard errors either side of the shift.
    left, right = ax.get_xlim()
    assert left < min(low, result.shift - 3 * result.se, 0.0)
    assert right > max(high, result.shift + 3 * result.se, 0.0)
    shift_marker = by_gid(ax.get_lines(), "shift")
    assert (list(shift_marker.get_xdata()), list(shift_marker.get_ydata())) == (
        [result.shift], [result.loss])
    zero_marker = by_gid(ax.get_lines(), "zero")
    assert (list(zero_marker.get_xdata()), list(zero_marker.get_ydata())) == (
        [0.0], [result.loss_at_zero])

    ax.figure.savefig(tmp_path / "loss.png")
    assert_png(tmp_path / "loss.png")


@pytest.mark.parametrize("label", [0, 1], ids=["all-zero", "all-one"])
def test_loss_curve_of_an_infinite_shift(tmp_path, label):
    offsets = np.linspace(-2, 1, 30)
    labels = np.full(30, label)
    with pytest.warns(RuntimeWarning):
        result = logitshift.fit(labels, offsets)
    assert math.isinf(result.shift) and math.isinf(result.se)
    ax = plot.loss_curve(result)
    losses = by_gid(ax.get_lines(), "loss").get_ydata()
    assert np.all(np.isfinite(losses))
    # The loss falls all the way towards the infinite shift.
    towards = np.diff(losses) if label == 0 else -np.diff(losses)
    assert np.all(towards > 0)
    note = by_gid(ax.texts, "shift")
    assert str(result.shift) in note.get_text() and f"every label is {label}" in note.get_text()
    low, high = result.confint()
    left, right = ax.get_xlim()
    assert left < 0.0 < right
    expected_band = (left, high) if label == 0 else (low, right)
    assert band_edges(by_gid(ax.patches, "confint")) == pytest.approx(expected_band)
    assert list(by_gid(ax.get_lines(), "zero").get_ydata()) == [result.loss_at_zero]
    ax.figure.savefig(tmp_path / "flat.png")
    assert_png(tmp_path / "flat.png")


def test_loss_curve_draws_on_the_axes_it_is_given():
    labels, offsets, weights = recalibration_data(n=500)
    ax = Figure().add_subplot()
    assert plot.loss_curve(logitshift.fit(labels, offsets, weights), ax=ax) is ax
    assert by_gid(ax.get_lines(), "loss").get_xdata().size > 100


# -- reliability ----------------------------------------------------------------------------------


def numpy_bins(labels, offsets, weights, shift, bin_weights, width):
    """Per-bin rates from the rows. The plotted bins are consecutive sketch cells; their
    weights (the bars) tell where each ends in the cumulative weight of the cells."""
    kept = weights > 0
    labels, offsets, weights = labels[kept], offsets[kept], weights[kept]
    centres = (np.floor(offsets / width) + 0.5) * width
    cells, cell_of_row = np.unique(centres, return_inverse=True)
    cell_weight = np.bincount(cell_of_row, weights=weights)
    ends = np.cumsum(cell_weight)
    last_cell = np.array([np.argmin(np.abs(ends - end)) for end in np.cumsum(bin_weights)])
    np.testing.assert_allclose(ends[last_cell], np.cumsum(bin_weights), rtol=1e-12)
    bin_of_row = np.searchsorted(last_cell, cell_of_row)

    def per_bin(values):
        return np.bincount(bin_of_row, weights=values)

    total = per_bin(weights)
    return {
        "weight": total,
        "observed": per_bin(weights * labels) / total,
        "before": per_bin(weights * logitshift.sigmoid(offsets)) / total,
        "after": per_bin(weights * logitshift.sigmoid(offsets + shift)) / total,
        "largest_cell": cell_weight.max(),
    }


def reliability_points(ax):
    before, after = by_gid(ax.get_lines(), "before"), by_gid(ax.get_lines(), "after")
    bars = [bar for bar in weight_axes(ax).patches if bar.get_gid() == "weight"]
    return {
        "before": before.get_xdata(), "after": after.get_xdata(),
        "observed": before.get_ydata(), "observed_after": after.get_ydata(),
        "weight": np.array([bar.get_height() for bar in bars]),
        "bar_x": np.array([bar.get_x() + 0.5 * bar.get_width() for bar in bars]),
    }


@pytest.mark.parametrize("bins", [10, 4])
def test_reliability_points_are_the_weighted_rates_of_the_rows(tmp_path, bins):
    labels, offsets, weights = recalibration_data()
    result = logitshift.fit(labels, offsets, weights)
    ax = plot.reliability(labels, offsets, result.shift, weight=weights, bins=bins)
    got = reliability_points(ax)
    assert got["weight"].size == bins
    expected = numpy_bins(labels, offsets, weights, result.shift, got["weight"],
                          logitshift.Sketch().width)
    for key in ("before", "after", "observed"):
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-12, err_msg=key)
    np.testing.assert_array_equal(got["observed_after"], got["observed"])  # the same bins
    np.testing.assert_allclose(got["bar_x"], got["after"], rtol=1e-12)
    # Bins of about equal weight: off by at most the one cell that cannot be split.
    total = weights.sum()
    assert got["weight"].sum() == pytest.approx(total, rel=1e-13)
    assert np.all(np.abs(got["weight"] - total / bins) <= expected["largest_cell"])
    assert np.all(np.diff(got["before"]) > 0)  # in increasing offset
    # At the optimal shift expected equals observed in total; at shift 0 it does not.
    assert np.sum(got["weight"] * (got["after"] - got["observed"])) == pytest.approx(
        0.0, abs=1e-10 * total)
    assert abs(np.sum(got["weight"] * (got["before"] - got["observed"]))) > 0.05 * total
    ax.figure.savefig(tmp_path / "reliability.png")
    assert_png(tmp_path / "reliability.png")


def test_reliability_of_a_sketch_equals_that_of_the_arrays():
    labels, offsets, weights = recalibration_data()
    sketch = logitshift.Sketch()
    for part in np.array_split(np.arange(labels.size), 3):
        sketch.update(labels[part], offsets[part], weights[part])
    result = sketch.solve()
    from_sketch = reliability_points(plot.reliability(sketch, None, result.shift))
    from_arrays = reliability_points(
        plot.reliability(labels, offsets, result.shift, weight=weights))
    for key, values in from_arrays.items():
        np.testing.assert_allclose(from_sketch[key], values, rtol=1e-13, err_msg=key)


def test_reliability_without_offsets_is_one_bin():
    labels = np.array([1, 0, 0, 1, 0, 0, 0, 1, 0, 0])
    result = logitshift.fit(labels)
    ax = plot.reliability(labels, None, result.shift)
    got = reliability_points(ax)
    assert list(got["weight"]) == [10.0]
    assert list(got["observed"]) == pytest.approx([0.3], rel=1e-15)
    assert list(got["before"]) == pytest.approx([0.5], rel=1e-15)
    # The closed form puts the one point on the diagonal.
    assert list(got["after"]) == pytest.approx([0.3], rel=1e-14)


def test_reliability_bins_never_split_a_cell():
    # Two offsets only: two cells, however many bins are asked for.
    labels = np.array([0, 1, 1, 0, 1, 0])
    offsets = np.array([-1.0, -1.0, -1.0, 2.0, 2.0, 2.0])
    got = reliability_points(plot.reliability(labels, offsets, 0.0, bins=10))
    assert list(got["weight"]) == [3.0, 3.0]
    assert list(got["observed"]) == pytest.approx([2 / 3, 1 / 3], rel=1e-15)
    expected = [1 / (1 + math.exp(1.0)), 1 / (1 + math.exp(-2.0))]
    assert list(got["before"]) == pytest.approx(expected, rel=1e-14)


def test_reliability_at_an_infinite_shift(tmp_path):
    offsets = np.linspace(-2, 1, 30)
    got = reliability_points(plot.reliability(np.zeros(30), offsets, -math.inf))
    assert np.all(got["after"] == 0.0) and np.all(got["observed"] == 0.0)
    assert np.all(got["before"] > 0.0)


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        pytest.param(lambda s: plot.reliability(s, np.zeros(3), 0.0), "offset must be None",
                     id="sketch-and-offset"),
        pytest.param(lambda s: plot.reliability(s, None, 0.0, weight=np.ones(3)),
                     "weight must be None", id="sketch-and-weight"),
        pytest.param(lambda s: plot.reliability(s, None, 0.0, bins=0), "bins",
                     id="zero-bins"),
        pytest.param(lambda s: plot.reliability(s, None, math.nan), "shift", id="nan-shift"),
        pytest.param(lambda s: plot.reliability(logitshift.Sketch(), None, 0.0),
                     "no row has positive weight", id="empty-sketch"),
        pytest.param(lambda s: plot.reliability([0, 1, 2], None, 0.0), "outside",
                     id="bad-labels"),
    ],
)
def test_reliability_input_errors(call, fragment):
    sketch = logitshift.Sketch().update(np.array([0, 1, 1]), np.array([0.1, -0.3, 0.8]))
    with pytest.raises(logitshift.InputError, match=fragment):
        call(sketch)


# -- both panels ----------------------------------------------------------------------------------


def test_figure_holds_both_panels(tmp_path):
    labels, offsets, weights = recalibration_data(n=1000)
    result = logitshift.fit(labels, offsets, weights)
    figure = plot.figure(result, labels, offsets, weight=weights, level=0.8)
    assert isinstance(figure, Figure)
    curve, calibration = figure.axes[:2]
    assert band_edges(by_gid(curve.patches, "confint")) == pytest.approx(result.confint(0.8))
    expected = reliability_points(
        plot.reliability(labels, offsets, result.shift, weight=weights))
    got = reliability_points(calibration)
    for key, values in expected.items():
        np.testing.assert_array_equal(got[key], values, err_msg=key)
    figure.savefig(tmp_path / "both.png")
    assert_png(tmp_path / "both.png")


def test_figure_of_degenerate_labels_from_a_sketch(tmp_path):
    sketch = logitshift.Sketch().update(np.ones(20), np.linspace(-1, 3, 20))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = sketch.solve()
    assert result.shift == math.inf
    figure = plot.figure(result, sketch)
    figure.savefig(tmp_path / "flat.png")
    assert_png(tmp_path / "flat.png")


# -- the calibration report -----------------------------------------------------------------------


def interval_segments(ax):
    (collection,) = [c for c in ax.collections if c.get_gid() == "interval"]
    segments = np.array(collection.get_segments())  # (bins, 2 ends, x and y)
    return segments[:, 0, 0], segments[:, 0, 1], segments[:, 1, 1]


def test_calibration_draws_the_curve_its_intervals_and_both_recalibrations(tmp_path):
    labels, offsets, weights = recalibration_data()
    report = logitshift.validate(labels, offsets, weights, bins=8, level=0.9)
    ax = plot.calibration(report)
    observed = by_gid(ax.get_lines(), "observed")
    np.testing.assert_array_equal(observed.get_xdata(), report.curve.predicted)
    np.testing.assert_array_equal(observed.get_ydata(), report.curve.observed)
    x, low, high = interval_segments(ax)
    np.testing.assert_array_equal(x, report.curve.predicted)
    np.testing.assert_array_equal(low, report.curve.low)
    np.testing.assert_array_equal(high, report.curve.high)

    shift = by_gid(ax.get_lines(), "shift")
    p = shift.get_xdata()
    scores = np.log(p) - np.log1p(-p)
    np.testing.assert_allclose(shift.get_ydata(), logitshift.sigmoid(scores + report.shift.shift),
                               rtol=1e-13)
    slope = by_gid(ax.get_lines(), "slope")
    np.testing.assert_array_equal(slope.get_xdata(), p)
    np.testing.assert_allclose(
        slope.get_ydata(),
        logitshift.sigmoid(report.slope.intercept + report.slope.slope * scores), rtol=1e-13)
    # Over the probabilities the points and intervals span, on the axes' range.
    left, right = ax.get_xlim()
    assert left <= p.min() <= report.curve.predicted.min()
    assert report.curve.predicted.max() <= p.max() <= right
    assert ax.get_ylim() == (left, right)
    assert list(by_gid(ax.get_lines(), "diagonal").get_xdata()) == [left, right]
    ax.figure.savefig(tmp_path / "calibration.png")
    assert_png(tmp_path / "calibration.png")


def test_calibration_leaves_out_the_fits_that_did_not_converge():
    offsets = np.linspace(-2, 2, 40)
    separated = (offsets > 0).astype(float)  # the slope is infinite
    with pytest.warns(RuntimeWarning, match="separate"):
        report = logitshift.validate(separated, offsets)
    gids = {line.get_gid() for line in plot.calibration(report).get_lines()}
    assert gids == {"diagonal", "shift", "observed"}
    with pytest.warns(RuntimeWarning):
        report = logitshift.validate(np.zeros(40), offsets)
    gids = {line.get_gid() for line in plot.calibration(report).get_lines()}
    assert gids == {"diagonal", "observed"}


def histogram_bars(ax):
    up = [bar for bar in ax.patches if bar.get_gid() == "positives"]
    down = [bar for bar in ax.patches if bar.get_gid() == "negatives"]
    edges = np.array([bar.get_x() for bar in up] + [up[-1].get_x() + up[-1].get_width()])
    return (edges, np.array([bar.get_height() for bar in up]),
            -np.array([bar.get_height() for bar in down]))


@pytest.mark.parametrize("bins", [50, 7])
def test_prediction_histogram_holds_the_weights_by_label(bins):
    labels, offsets, weights = recalibration_data()
    offsets[:5], labels[:5] = np.inf, 1.0  # certain, and right: predicted 1
    offsets[5:8], labels[5:8] = -np.inf, 0.0
    weights[:8] = 2.0
    report = logitshift.validate(labels, offsets, weights)
    edges, up, down = histogram_bars(plot.prediction_histogram(report, bins=bins))
    np.testing.assert_allclose(edges, np.linspace(0, 1, bins + 1), rtol=1e-15, atol=1e-15)
    assert np.all(up >= 0) and np.all(down >= 0)
    assert up.sum() == pytest.approx(np.sum(weights * labels), rel=1e-12)
    assert down.sum() == pytest.approx(np.sum(weights * (1 - labels)), rel=1e-12)
    assert up[-1] >= 10.0 and down[0] >= 6.0  # the certain rows at the ends
    # Against the rows: a bin is off by at most the cells that straddle its two edges.
    p = logitshift.sigmoid(offsets)
    width = logitshift.Sketch().width
    cell = np.floor(offsets[8:] / width)
    for heights, part in ((up, weights * labels), (down, weights * (1 - labels))):
        exact = np.histogram(p, edges, weights=part)[0]
        for k in range(bins):
            straddling = np.zeros(offsets.size - 8, dtype=bool)
            for edge in edges[k:k + 2]:
                if 0 < edge < 1:
                    straddling |= cell == np.floor(np.log(edge / (1 - edge)) / width)
            assert abs(heights[k] - exact[k]) <= np.sum(part[8:][straddling]) + 1e-9


def test_report_figure_of_a_streamed_report(tmp_path):
    labels, offsets, weights = recalibration_data()
    sketch = logitshift.Sketch()
    for part in np.array_split(np.arange(labels.size), 4):
        sketch.update(labels[part], offsets[part], weights[part])
    streamed = sketch.validate()
    figure = plot.report_figure(streamed)
    assert isinstance(figure, Figure)
    top, bottom = figure.axes
    np.testing.assert_array_equal(by_gid(top.get_lines(), "observed").get_ydata(),
                                  streamed.curve.observed)
    in_memory = histogram_bars(plot.prediction_histogram(logitshift.validate(labels, offsets,
                                                                             weights)))
    for got, expected in zip(histogram_bars(bottom), in_memory):
        np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    figure.savefig(tmp_path / "report.png")
    assert_png(tmp_path / "report.png")


def test_prediction_histogram_input_errors():
    report = logitshift.validate(*recalibration_data(n=300))
    with pytest.raises(logitshift.InputError, match="bins"):
        plot.prediction_histogram(report, bins=0)
