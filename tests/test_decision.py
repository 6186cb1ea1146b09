"""Decision curves against the net benefit counted on the rows by its definition, against
Python's dcurves (output stored under tests/data/dcurves/), on a real model of scikit-learn's
breast-cancer data, and from every streamed source within the bound it reports."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import logitshift
from logitshift.cli import main

DATA = Path(__file__).parent / "data" / "dcurves"
THRESHOLDS = np.arange(1, 100) / 100.0
N = 60_000


def sigmoid(z):
    with np.errstate(over="ignore"):
        return 1.0 / (1.0 + np.exp(-z))


def by_definition(y, risk, weight, thresholds):
    """NB(t) = TP/n - FP/n · t/(1-t), TP and FP summed over the rows of ``risk >= t``."""
    w = np.ones(y.size) if weight is None else np.asarray(weight, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    n = w.sum()
    out = []
    for t in thresholds:
        treated = risk >= t
        tp, fp = np.sum((w * y)[treated]), np.sum((w * (1 - y))[treated])
        out.append((tp / n - fp / n * t / (1 - t), tp, fp))
    return np.array(out).T


@pytest.fixture(scope="module")
def data():
    """Scores with a miscalibration in the large and in slope, float weights."""
    rng = np.random.default_rng(20261208)
    scores = rng.normal(-1.0, 1.6, N)
    labels = (rng.random(N) < sigmoid(0.4 + 0.7 * scores)).astype(np.int64)
    weights = rng.gamma(2.0, 0.5, N)
    return labels, scores, weights


@pytest.fixture(scope="module")
def exact(data):
    labels, scores, weights = data
    return logitshift.decision_curve(labels, scores, weights)


def test_net_benefit_is_its_definition_counted_on_the_rows(data):
    labels, scores, _ = data
    curve = logitshift.decision_curve(labels, scores)
    assert curve.exact and np.all(curve.model.bound == 0)
    shift = logitshift.fit(labels, scores).shift
    slope = logitshift.fit_slope(labels, scores)
    assert curve.shift == shift
    assert (curve.intercept, curve.slope) == (slope.intercept, slope.slope)
    for net, risk in ((curve.model, sigmoid(scores)), (curve.shifted, sigmoid(scores + shift)),
                      (curve.recalibrated, sigmoid(slope.intercept + slope.slope * scores))):
        expected, tp, fp = by_definition(labels, risk, None, THRESHOLDS)
        # Counts of unweighted rows: integers, so equal to the last bit.
        np.testing.assert_array_equal(net.true_positives, tp)
        np.testing.assert_array_equal(net.false_positives, fp)
        np.testing.assert_allclose(net.net_benefit, expected, rtol=0, atol=1e-15)
        prevalence = labels.mean()
        np.testing.assert_allclose(net.standardized, expected / prevalence, rtol=0, atol=1e-14)
    prevalence = labels.mean()
    np.testing.assert_allclose(curve.treat_all,
                               prevalence - (1 - prevalence) * THRESHOLDS / (1 - THRESHOLDS),
                               rtol=1e-15, atol=1e-16)
    np.testing.assert_array_equal(curve.treat_none, np.zeros(99))


def test_weighted_net_benefit_sums_weights(data, exact):
    labels, scores, weights = data
    expected, tp, fp = by_definition(labels, sigmoid(scores), weights, THRESHOLDS)
    np.testing.assert_allclose(exact.model.true_positives, tp, rtol=1e-12)
    np.testing.assert_allclose(exact.model.false_positives, fp, rtol=1e-12)
    np.testing.assert_allclose(exact.model.net_benefit, expected, rtol=0, atol=1e-13)
    shift = logitshift.fit(labels, scores, weights).shift
    expected, _, _ = by_definition(labels, sigmoid(scores + shift), weights, THRESHOLDS)
    np.testing.assert_allclose(exact.shifted.net_benefit, expected, rtol=0, atol=1e-13)
    assert exact.weight_sum == pytest.approx(weights.sum(), rel=1e-14)


def test_soft_labels_count_on_both_sides():
    rng = np.random.default_rng(4)
    scores = rng.normal(0, 1, 5000)
    soft = rng.random(5000)
    curve = logitshift.decision_curve(soft, scores, thresholds=[0.2, 0.5, 0.7],
                                      recalibrate=False)
    expected, _, _ = by_definition(soft, sigmoid(scores), None, [0.2, 0.5, 0.7])
    np.testing.assert_allclose(curve.model.net_benefit, expected, rtol=0, atol=1e-14)


def test_a_negative_slope_treats_the_lowest_scores():
    rng = np.random.default_rng(7)
    scores = rng.normal(0, 1.5, 20_000)
    labels = (rng.random(20_000) < sigmoid(-0.8 * scores - 0.5)).astype(int)
    curve = logitshift.decision_curve(labels, scores)
    slope = logitshift.fit_slope(labels, scores)
    assert curve.slope == slope.slope < 0
    risk = sigmoid(slope.intercept + slope.slope * scores)
    expected, tp, _ = by_definition(labels, risk, None, THRESHOLDS)
    np.testing.assert_array_equal(curve.recalibrated.true_positives, tp)
    np.testing.assert_allclose(curve.recalibrated.net_benefit, expected, rtol=0, atol=1e-15)
    # The scores as given rank the wrong way: where treating everyone does harm, they do
    # harm too, and recalibrated they do good.
    harmful = curve.treat_all < 0
    assert curve.model.net_benefit[harmful].max() < 0
    assert curve.recalibrated.net_benefit[harmful][:5].min() > 0.1


def _dcurves(name):
    rows = [line.split(",") for line in (DATA / "dcurves_reference.csv").read_text().split()[1:]]
    picked = [row for row in rows if row[0] == name]
    table = {model: np.array([[float(v) for v in row[2:]] for row in picked if row[1] == model])
             for model in ("risk", "all", "none")}
    return table


def _stored(name):
    text = (DATA / f"{name}.csv").read_text().split()[1:]
    y = np.array([int(line.split(",")[0]) for line in text])
    risk = np.array([float(line.split(",")[1]) for line in text])
    return y, risk


@pytest.mark.parametrize("name", ["breast_cancer", "ties"])
def test_dcurves_gives_the_same_net_benefit(name):
    """dcurves 1.1.7 (tests/data/dcurves/dcurves_reference.py): columns threshold,
    prevalence, tp_rate, fp_rate, net_benefit."""
    y, risk = _stored(name)
    reference = _dcurves(name)
    curve = logitshift.decision_curve(y, risk, offset_is="probability", recalibrate=False)
    model = reference["risk"]
    np.testing.assert_array_equal(model[:, 0], curve.thresholds)
    np.testing.assert_allclose(curve.model.net_benefit, model[:, 4], rtol=0, atol=1e-12)
    np.testing.assert_allclose(curve.model.true_positives / y.size, model[:, 2], rtol=0,
                               atol=1e-12)
    np.testing.assert_allclose(curve.model.false_positives / y.size, model[:, 3], rtol=0,
                               atol=1e-12)
    np.testing.assert_allclose(curve.treat_all, reference["all"][:, 4], rtol=0, atol=1e-12)
    np.testing.assert_allclose(reference["none"][:, 4], 0.0, atol=1e-12)
    assert curve.prevalence == pytest.approx(model[0, 1], abs=1e-15)


def test_ties_at_a_threshold_are_treated():
    y, risk = _stored("ties")
    on_threshold = np.isin(risk, THRESHOLDS)
    assert on_threshold.sum() > 1000  # the data set puts many rows on the thresholds
    curve = logitshift.decision_curve(y, risk, offset_is="probability", recalibrate=False)
    expected, tp, fp = by_definition(y, risk, None, THRESHOLDS)
    np.testing.assert_array_equal(curve.model.true_positives, tp)
    np.testing.assert_array_equal(curve.model.false_positives, fp)


def test_a_real_model_on_rows_it_did_not_see():
    """scikit-learn's breast-cancer data, a logistic regression fitted on the even rows and
    scored on the odd rows (tests/data/valprob/make_data.py): from its raw scores, the same
    curve as from its probabilities, and that curve is dcurves'."""
    text = (DATA.parent / "valprob" / "breast_cancer.csv").read_text().split()[1:]
    y = np.array([int(line.split(",")[0]) for line in text])
    lp = np.array([float(line.split(",")[1]) for line in text])
    curve = logitshift.decision_curve(y, lp)
    expected, _, _ = by_definition(y, sigmoid(lp), None, THRESHOLDS)
    np.testing.assert_allclose(curve.model.net_benefit, expected, rtol=0, atol=1e-15)
    np.testing.assert_allclose(curve.model.net_benefit, _dcurves("breast_cancer")["risk"][:, 4],
                               rtol=0, atol=1e-12)
    # A useful model: above both references over the usual range of thresholds.
    useful = (curve.thresholds >= 0.05) & (curve.thresholds <= 0.8)
    assert np.all(curve.model.net_benefit[useful] > np.maximum(curve.treat_all[useful], 0))


# -- streamed sources -------------------------------------------------------------------------

def assert_within_bound(streamed, exact, *, spread=True):
    assert not streamed.exact
    np.testing.assert_array_equal(streamed.thresholds, exact.thresholds)
    for name, net in exact.curves().items():
        other = streamed.curves()[name]
        assert np.all(np.abs(other.net_benefit - net.net_benefit) <= other.bound), name
        # The histogram's sub-bins are 2**-12 logits wide: for scores that spread, the bound
        # stays small, but for the weight t / (1 - t) of the false positives at high
        # thresholds.
        odds = exact.thresholds / (1 - exact.thresholds)
        assert not spread or np.max(other.bound / (1 + odds)) < 1e-4, name
    # The prevalence to rounding (weights summed in another order), times 1 + t / (1 - t).
    assert np.all(np.abs(streamed.treat_all - exact.treat_all) <= 1e-14 * (1 + odds))
    assert streamed.shift == pytest.approx(exact.shift, abs=1e-12)
    assert streamed.slope == pytest.approx(exact.slope, abs=1e-10)


def assert_same(one, other):
    for name, net in one.curves().items():
        np.testing.assert_allclose(other.curves()[name].net_benefit, net.net_benefit,
                                   rtol=0, atol=1e-12)


def csv_text(labels, scores, weights):
    return "y,f,w\n" + "\n".join(f"{a},{b!r},{c!r}" for a, b, c in
                                 zip(labels, scores.tolist(), weights.tolist())) + "\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory, data):
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    folder = tmp_path_factory.mktemp("decision")
    labels, scores, weights = data
    (folder / "rows.csv").write_text(csv_text(labels, scores, weights))
    pq.write_table(pa.table({"y": labels, "f": scores, "w": weights}), folder / "rows.parquet",
                   row_group_size=7_000)
    return folder


@pytest.fixture(scope="module")
def from_csv(files):
    return logitshift.decision_curve_file(files / "rows.csv", "y", "f", "w", batch_rows=9_000)


def test_csv_and_parquet_are_within_their_bound_and_agree(files, from_csv, exact):
    parquet = logitshift.decision_curve_file(files / "rows.parquet", "y", "f", "w")
    assert_within_bound(from_csv, exact)
    assert_within_bound(parquet, exact)
    assert_same(from_csv, parquet)


def test_standard_input_through_the_command_line(files, from_csv, exact, monkeypatch, capsys):
    text = (files / "rows.csv").read_text()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    status = main(["validate", "-", "--label", "y", "--offset", "f", "--weight", "w", "--dca",
                   "--json", "--quiet"])
    assert status == 0
    record = json.loads(capsys.readouterr().out)["decision"]
    assert record["thresholds"] == THRESHOLDS.tolist()
    for name in ("model", "shifted", "recalibrated"):
        net = np.array(record[name]["net_benefit"])
        np.testing.assert_allclose(net, from_csv.curves()[name].net_benefit, rtol=0, atol=1e-12)
        exact_net = exact.curves()[name].net_benefit
        assert np.all(np.abs(net - exact_net) <= np.array(record[name]["bound"]))


def test_dask_is_within_its_bound_and_equals_the_file(data, from_csv, exact):
    da = pytest.importorskip("dask.array")
    labels, scores, weights = data
    chunks = 11_000
    curve = logitshift.decision_curve(*(da.from_array(v, chunks=chunks)
                                        for v in (labels, scores, weights)))
    assert_within_bound(curve, exact)
    assert_same(curve, from_csv)


def test_validate_attaches_the_same_curve_from_the_same_pass(data, exact, files):
    labels, scores, weights = data
    report = logitshift.validate(labels, scores, weights, decision=True)
    for name, net in exact.curves().items():
        np.testing.assert_array_equal(report.decision.curves()[name].net_benefit,
                                      net.net_benefit)
    assert report.decision.shift == report.shift.shift
    assert report.decision.slope == report.slope.slope
    record = report.to_dict(json_safe=True)
    assert json.loads(json.dumps(record, allow_nan=False))["decision"]["thresholds"][0] == 0.01
    assert logitshift.validate(labels, scores).decision is None
    streamed = logitshift.validate_file(files / "rows.parquet", "y", "f", "w", decision=True,
                                        thresholds=[0.1, 0.3])
    assert_within_bound(streamed.decision, logitshift.decision_curve(
        labels, scores, weights, thresholds=[0.1, 0.3]))


def test_command_line_table_and_figure(files, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    figure = tmp_path / "dca.png"
    status = main(["validate", str(files / "rows.csv"), "--label", "y", "--offset", "f",
                   "--thresholds", "0.05:0.5:0.05", "--dca-plot", str(figure), "--quiet"])
    out = capsys.readouterr().out
    assert status == 0
    table = out[out.index("decision curve"):].splitlines()[2:]
    assert [float(line.split()[0]) for line in table] == [
        0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- invariances ------------------------------------------------------------------------------

small = st.integers(0, 2**32 - 1)


def _rows(seed, n=400):
    rng = np.random.default_rng(seed)
    scores = np.round(rng.normal(0, 1.5, n), 1)  # ties across rows
    labels = (rng.random(n) < sigmoid(scores)).astype(int)
    counts = rng.integers(1, 4, n)
    return labels, scores, counts


@settings(max_examples=15, deadline=None)
@given(seed=small, power=st.integers(-60, 60))
def test_scaling_the_weights_by_a_power_of_two_changes_nothing(seed, power):
    labels, scores, counts = _rows(seed)
    one = logitshift.decision_curve(labels, scores, counts.astype(float))
    scaled = logitshift.decision_curve(labels, scores, np.ldexp(counts.astype(float), power))
    for name, net in one.curves().items():
        np.testing.assert_array_equal(scaled.curves()[name].net_benefit, net.net_benefit)


@settings(max_examples=15, deadline=None)
@given(seed=small)
def test_row_order_and_repeated_rows_change_nothing(seed):
    labels, scores, counts = _rows(seed)
    one = logitshift.decision_curve(labels, scores, counts, recalibrate=False)
    order = np.random.default_rng(seed).permutation(labels.size)
    shuffled = logitshift.decision_curve(labels[order], scores[order], counts[order],
                                         recalibrate=False)
    repeated = logitshift.decision_curve(np.repeat(labels, counts), np.repeat(scores, counts),
                                         recalibrate=False)
    np.testing.assert_array_equal(shuffled.model.net_benefit, one.model.net_benefit)
    np.testing.assert_array_equal(repeated.model.net_benefit, one.model.net_benefit)


def test_callers_arrays_are_left_as_they_are(data):
    labels, scores, weights = (v.copy() for v in data)
    thresholds = np.array([0.3, 0.1 + 0.2])
    logitshift.decision_curve(labels, scores, weights, thresholds=thresholds)
    for before, after in zip(data, (labels, scores, weights)):
        np.testing.assert_array_equal(before, after)
    np.testing.assert_array_equal(thresholds, [0.3, 0.1 + 0.2])


# -- bad input --------------------------------------------------------------------------------

@pytest.mark.parametrize("thresholds, message", [
    ([0.1, 1.0], r"thresholds\[1\] = 1.0 is outside \(0, 1\)"),
    ([0.0, 0.5], r"thresholds\[0\] = 0.0 is outside \(0, 1\)"),
    ([0.2, -0.1], r"thresholds\[1\] = -0.1 is outside"),
    ([0.2, math.nan], r"thresholds\[1\] is nan"),
    ([0.2, 0.2], r"thresholds must increase: thresholds\[1\] = 0.2 follows 0.2"),
    ([0.3, 0.1], r"thresholds must increase: thresholds\[1\] = 0.1 follows 0.3"),
    ([], "thresholds is empty"),
    ([[0.1, 0.2]], "thresholds"),
    (["a"], "thresholds"),
])
def test_bad_thresholds_are_refused_by_name(thresholds, message):
    y, scores = np.array([0, 1, 1]), np.array([-1.0, 0.5, 2.0])
    with pytest.raises(logitshift.InputError, match=message) as error:
        logitshift.decision_curve(y, scores, thresholds=thresholds)
    assert error.value.argument == "thresholds"


def test_bad_rows_are_named_as_validate_names_them():
    with pytest.raises(logitshift.InputError, match=r"offset\[1\] is nan"):
        logitshift.decision_curve([0, 1], [0.1, math.nan])
    with pytest.raises(logitshift.InputError, match="offset must be an array"):
        logitshift.decision_curve([0, 1], None)
    with pytest.raises(logitshift.InputError, match="recalibrate"):
        logitshift.decision_curve([0, 1], [0.1, 0.2], recalibrate="yes")


@pytest.mark.parametrize("flags", [["--thresholds", "0.5:0.1:0.1"], ["--thresholds", "x"],
                                   ["--thresholds", "0.1,1.5"], ["--thresholds", "0:0.5:0.1"]])
def test_command_line_refuses_bad_thresholds_in_one_line(files, flags, capsys):
    status = main(["validate", str(files / "rows.csv"), "--label", "y", "--offset", "f",
                   *flags])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "thresholds" in err


# -- tables -----------------------------------------------------------------------------------

def test_a_frame_in_memory_is_its_columns(data, exact):
    pd = pytest.importorskip("pandas")
    labels, scores, weights = data
    frame = pd.DataFrame({"died": labels, "risk": scores, "w": weights})
    curve = logitshift.decision_curve_frame(frame, "died", "risk", "w")
    assert curve.exact
    for name, net in exact.curves().items():
        np.testing.assert_array_equal(curve.curves()[name].net_benefit, net.net_benefit)
    with pytest.raises(logitshift.InputError, match="column 'risk'"):
        logitshift.decision_curve_frame(frame.assign(risk=np.where(frame.index == 5, np.nan,
                                                                   frame.risk)),
                                        "died", "risk", "w")


def test_streamed_tables_are_within_their_bound(data, exact, from_csv, files):
    dd = pytest.importorskip("dask.dataframe")
    pd = pytest.importorskip("pandas")
    labels, scores, weights = data
    frame = dd.from_pandas(pd.DataFrame({"y": labels, "f": scores, "w": weights}),
                           npartitions=4)
    curve = logitshift.decision_curve_frame(frame, "y", "f", "w")
    assert_within_bound(curve, exact)
    assert_same(curve, from_csv)
    duckdb = pytest.importorskip("duckdb")
    relation = duckdb.connect().read_parquet(str(files / "rows.parquet"))
    curve = logitshift.decision_curve_frame(relation, "y", "f", "w")
    assert_within_bound(curve, exact)
    assert_same(curve, from_csv)


def test_a_stream_of_certain_and_tied_risks_is_within_its_bound():
    """Risks of 0 and 1 (infinite scores) and many rows exactly on the thresholds: those rows
    share the sub-bin that holds the threshold, so the bound is their weight, and holds."""
    y, risk = _stored("ties")
    exact = logitshift.decision_curve(y, risk, offset_is="probability")
    streamed = logitshift.decision_curve_file(DATA / "ties.csv", "y", "risk",
                                              offset_is="probability", batch_rows=700)
    assert_within_bound(streamed, exact, spread=False)
    # A threshold inside its sub-bin leaves the tied rows' side unknown: at least their
    # share of the net benefit, e.g. t/(1 - t) · (tied negatives) / n on the one side. At
    # t = 0.5 (log-odds 0, a sub-bin's edge) they are known to be at or above it.
    tied = np.array([np.sum(risk == t) for t in exact.thresholds]) / y.size
    inside = (tied > 0) & (exact.thresholds != 0.5)
    odds = exact.thresholds / (1 - exact.thresholds)
    least = 0.05 * tied[inside] * np.minimum(1, odds[inside])
    assert np.all(streamed.model.bound[inside] > least)
    assert streamed.model.bound[exact.thresholds == 0.5] < 1e-12


# -- the figure -------------------------------------------------------------------------------

def test_figure_draws_every_curve_off_the_legend(exact):
    pytest.importorskip("matplotlib")
    import logitshift.plot

    figure = logitshift.plot.decision_figure(exact, standardized=True)
    net, standardized = figure.axes
    lines = {line.get_gid(): line for line in net.get_lines()}
    assert set(lines) == {"model", "shifted", "recalibrated", "treat_all", "treat_none"}
    np.testing.assert_array_equal(lines["model"].get_xdata(), 100 * exact.thresholds)
    np.testing.assert_array_equal(lines["recalibrated"].get_ydata(),
                                  exact.recalibrated.net_benefit)
    np.testing.assert_array_equal(
        {line.get_gid(): line for line in standardized.get_lines()}["model"].get_ydata(),
        exact.model.standardized)
    # Treat all falls far below 0; the axis stops at 15% of the top below 0.
    low, high = net.get_ylim()
    assert exact.treat_all.min() < low == pytest.approx(-0.15 * high)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()  # lays the figure out, as saving it does
    renderer = canvas.get_renderer()
    for ax in figure.axes:
        legend = ax.get_legend().get_window_extent(renderer)
        assert legend.y0 >= ax.get_window_extent(renderer).y1  # above the axes: no overlap
    assert [text.get_text() for text in net.get_legend().get_texts()][:1] == ["model"]


def test_command_line_refuses_one_file_for_both_figures(files, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = str(tmp_path / "both.png")
    status = main(["validate", str(files / "rows.csv"), "--label", "y", "--offset", "f",
                   "--plot", path, "--dca-plot", path])
    assert status == 2
    assert "--plot and --dca-plot name one file" in capsys.readouterr().err
    assert not (tmp_path / "both.png").exists()
