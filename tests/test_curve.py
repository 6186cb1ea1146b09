"""The smooth calibration curve against R (glm + rms::rcs, lowess), against the numpy
reference on the rows, and across sources.

The R output is stored (tests/data/curve/curve_reference.R and .json): CI needs no R.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import logitshift
from logitshift._core import kernels as _kernels
from logitshift._core import losses as _losses
from logitshift._estimators.curve import chi_square_quantile, fit_loess, spline_knots
from logitshift._estimators.result import normal_quantile
from logitshift._summary.sketch import _COEFFICIENTS, _FACTORIALS, fill_reference

HERE = Path(__file__).parent / "data" / "curve"
REFERENCE = json.loads((HERE / "curve_reference.json").read_text())
STATISTICS = ("ici", "e50", "e90", "emax")


def _columns(name: str) -> dict[str, np.ndarray]:
    path = {"synthetic": HERE / "synthetic.csv", "verbagg": HERE / "verbagg.csv",
            "breast_cancer": HERE.parent / "valprob" / "breast_cancer.csv"}[name]
    table = pacsv.read_csv(path)
    return {column: table[column].to_numpy() for column in table.column_names}


# (reference name, data set, weighted)
CASES = [("synthetic", "synthetic", False), ("synthetic_weighted", "synthetic", True),
         ("synthetic_3", "synthetic", False), ("breast_cancer", "breast_cancer", False),
         ("verbagg", "verbagg", False)]


@pytest.fixture(scope="module", params=CASES, ids=[case[0] for case in CASES])
def fitted(request):
    """Each reference case: R's output, the rows, and our curve from arrays with R's knots."""
    name, data, weighted = request.param
    columns = _columns(data)
    weight = columns["w"] if weighted else None
    expected = REFERENCE[name]
    curve = logitshift.calibration_curve(columns["y"], columns["lp"], weight,
                                         knots=np.array(expected["knots"]), seed=3)
    return expected, columns, weight, curve


def test_coefficients_and_covariance_match_r(fitted):
    expected, _, _, curve = fitted
    assert curve.status == "converged"
    np.testing.assert_array_equal(curve.knots, expected["knots"])
    beta = np.array(expected["coefficients"])
    np.testing.assert_allclose(curve.coefficients, beta, rtol=1e-9,
                               atol=1e-9 * np.abs(beta).max())
    covariance = np.array(expected["covariance"])
    np.testing.assert_allclose(curve.covariance, covariance, rtol=1e-8,
                               atol=1e-9 * np.abs(covariance).max())


def test_curve_and_its_standard_error_match_r_predict(fitted):
    """predict(glm, se.fit = TRUE) on R's grid: the link and its se, through our
    prediction's probability and pointwise interval."""
    expected, _, _, curve = fitted
    grid = np.array(expected["grid"])
    link, se = np.array(expected["fit"]), np.array(expected["se"])
    prediction = curve.predict(grid)
    np.testing.assert_allclose(prediction.probability, _losses.sigmoid(link), rtol=1e-9)
    z = normal_quantile(0.95)
    np.testing.assert_allclose(prediction.low, _losses.sigmoid(link - z * se), rtol=1e-8)
    np.testing.assert_allclose(prediction.high, _losses.sigmoid(link + z * se), rtol=1e-8)
    wide = math.sqrt(chi_square_quantile(0.95, curve.coefficients.size))
    np.testing.assert_allclose(prediction.band_high, _losses.sigmoid(link + wide * se),
                               rtol=1e-8)


def test_statistics_from_arrays_match_r(fitted):
    """Austin & Steyerberg's ICI, E50, E90, Emax from R's fitted values on the rows."""
    expected, _, _, curve = fitted
    for name in STATISTICS:
        assert getattr(curve, name) == pytest.approx(expected[name], abs=1e-9), name
        assert curve.bounds[name] == 0.0
        low, high = curve.intervals[name]
        assert low <= high


def test_statistics_from_a_stream_within_their_bound(fitted, tmp_path):
    expected, columns, weight, curve = fitted
    table = {"y": columns["y"], "lp": columns["lp"]}
    if weight is not None:
        table["w"] = weight
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table(table), path)
    streamed = logitshift.calibration_curve_file(
        path, "y", "lp", "w" if weight is not None else None, knots=np.array(expected["knots"]),
        seed=3)
    np.testing.assert_allclose(streamed.coefficients, curve.coefficients, rtol=1e-12,
                               atol=1e-12)
    for name in STATISTICS:
        bound = streamed.bounds[name]
        assert 0 < bound < 1e-3
        assert abs(getattr(streamed, name) - expected[name]) <= bound + 1e-12, name


def test_default_knots_are_harrell_quantiles_on_the_grid(fitted):
    expected, columns, weight, _ = fitted
    k = len(expected["knots"])
    curve = logitshift.calibration_curve(columns["y"], columns["lp"], weight, knots=k,
                                         draws=10)
    assert np.all(np.mod(curve.knots * 16, 1) == 0)
    if weight is None:  # R's quantile of the unweighted rows
        np.testing.assert_allclose(curve.knots, expected["harrell_quantiles"], atol=1 / 16)


# -- sources ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic():
    columns = _columns("synthetic")
    return columns["y"], columns["lp"], columns["w"]


def test_sources_agree_to_1e12(synthetic, tmp_path):
    dd = pytest.importorskip("dask.dataframe")
    da = pytest.importorskip("dask.array")
    import pandas as pd

    y, lp, w = synthetic
    arrays = logitshift.calibration_curve(y, lp, w, seed=0)
    frame = pd.DataFrame({"y": y, "lp": lp, "w": w})
    parquet, csv = tmp_path / "a.parquet", tmp_path / "a.csv"
    frame.to_parquet(parquet)
    frame.to_csv(csv, index=False)
    others = {
        "parquet": logitshift.calibration_curve_file(parquet, "y", "lp", "w", seed=0),
        "csv": logitshift.calibration_curve_file(csv, "y", "lp", "w", seed=0,
                                                 batch_rows=700),
        "frame": logitshift.calibration_curve_frame(frame, "y", "lp", "w", seed=0),
        "dask_frame": logitshift.calibration_curve_frame(
            dd.from_pandas(frame, npartitions=4), "y", "lp", "w", seed=0),
        "dask_arrays": logitshift.calibration_curve(
            da.from_array(y, chunks=500), da.from_array(lp, chunks=500),
            da.from_array(w, chunks=500), seed=0),
    }
    for name, other in others.items():
        np.testing.assert_array_equal(other.knots, arrays.knots, err_msg=name)
        np.testing.assert_allclose(other.coefficients, arrays.coefficients, rtol=1e-12,
                                   atol=1e-12, err_msg=name)
        for statistic in STATISTICS:
            assert abs(getattr(other, statistic) - getattr(arrays, statistic)) <= (
                other.bounds[statistic] + 1e-12), (name, statistic)


def test_probabilities_as_scores(synthetic):
    y, lp, w = synthetic
    logits = logitshift.calibration_curve(y, lp, w, seed=0)
    probabilities = logitshift.calibration_curve(y, _losses.sigmoid(lp), w, seed=0,
                                                 offset_is="probability")
    np.testing.assert_allclose(probabilities.coefficients, logits.coefficients, rtol=1e-9)
    grid = np.array([-2.0, 0.0, 1.5])
    np.testing.assert_allclose(probabilities.predict(_losses.sigmoid(grid)).probability,
                               logits.predict(grid).probability, rtol=1e-9)


def test_validate_attaches_the_same_curve(synthetic, tmp_path):
    y, lp, w = synthetic
    report = logitshift.validate(y, lp, w, curve="rcs")
    curve = logitshift.calibration_curve(y, lp, w, seed=0)
    np.testing.assert_array_equal(report.smooth_curve.coefficients, curve.coefficients)
    assert report.smooth_curve.intervals == curve.intervals
    assert logitshift.validate(y, lp, w).smooth_curve is None
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"y": y, "lp": lp, "w": w}), path)
    streamed = logitshift.validate_file(path, "y", "lp", "w", curve="rcs")
    np.testing.assert_allclose(streamed.smooth_curve.coefficients, curve.coefficients,
                               rtol=1e-12, atol=1e-12)
    record = report.to_dict(json_safe=True)
    json.dumps(record, allow_nan=False)
    assert record["smooth_curve"]["ici"] == curve.ici


def test_to_dict_is_strict_json(synthetic):
    y, lp, w = synthetic
    curve = logitshift.calibration_curve(y, lp, w, seed=0)
    record = json.loads(json.dumps(curve.to_dict(json_safe=True), allow_nan=False))
    assert record["coefficients"] == curve.coefficients.tolist()
    assert len(record["grid"]["probability"]) == 101
    assert record["ici_ci_low"] <= record["ici"] <= record["ici_ci_high"]


# -- the numpy reference ------------------------------------------------------------------

@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("beta", [[0.0, 1.0, 0.0, 0.0, 0.0], [0.3, 0.7, 0.4, -0.9, 0.5],
                                  [-2.0, 2.5, -1.0, 3.0, -2.0]], ids=["identity", "mild", "steep"])
def test_sketch_sums_match_the_rows(weighted, beta):
    """`kernels.spline_terms` on the tables against `losses.spline_terms` on the rows."""
    rng = np.random.default_rng(7)
    n = 20_000
    lp = rng.normal(0.0, 2.0, n)
    y = (rng.random(n) < _losses.sigmoid(0.8 * lp)).astype(float)
    w = rng.exponential(size=n) if weighted else None
    knots = np.array([-3.0, -1.0, 0.0, 1.0, 3.0])
    centres, tables = fill_reference(y, lp, w, 1 / 16, 8)
    basis = _losses.spline_cell_polynomials(centres, knots)
    sums = _kernels.spline_terms(centres, tables, basis, np.array(beta), _COEFFICIENTS,
                                 _FACTORIALS)
    loss, gradient, hessian = _losses.spline_terms(y, lp, w, knots, np.array(beta))
    assert sums[0] == pytest.approx(loss, rel=1e-14)
    np.testing.assert_allclose(sums[1:6], gradient, rtol=0, atol=1e-13 * np.abs(hessian).max())
    np.testing.assert_allclose(sums[6:].reshape(5, 5), hessian, rtol=1e-13,
                               atol=1e-14 * np.abs(hessian).max())


def test_the_answer_zeroes_the_gradient_on_the_rows(synthetic):
    y, lp, w = synthetic
    curve = logitshift.calibration_curve(y, lp, w, seed=0)
    _, gradient, hessian = _losses.spline_terms(y, lp, w, curve.knots, curve.coefficients)
    step = np.linalg.solve(hessian, gradient)
    assert np.all(np.abs(step) <= 1e-12 * (1 + np.abs(curve.coefficients)))
    assert 0 < curve.truncation < 1e-13
    np.testing.assert_allclose(curve.covariance, np.linalg.inv(hessian), rtol=1e-10)


def test_a_known_curve_is_recovered():
    """Data drawn from a spline with known coefficients: the estimate within 5 se of each,
    and the true curve inside the simultaneous band on the grid."""
    rng = np.random.default_rng(11)
    n = 300_000
    lp = rng.normal(0.0, 1.5, n)
    knots = np.array([-2.5, -0.875, 0.0, 0.875, 2.5])
    truth = np.array([0.2, 0.7, 0.6, -1.2, 0.9])
    y = rng.random(n) < _losses.sigmoid(_losses.spline_basis(lp, knots) @ truth)
    curve = logitshift.calibration_curve(y, lp, knots=knots, seed=0)
    z = (curve.coefficients - truth) / np.sqrt(np.diag(curve.covariance))
    assert np.all(np.abs(z) < 5), z
    grid = curve.grid()
    true_curve = _losses.sigmoid(_losses.spline_basis(np.asarray(grid["score"]), knots)
                                 @ truth)
    assert np.all((grid["band_low"] <= true_curve) & (true_curve <= grid["band_high"]))
    # The true ICI lies in the simulation interval.
    true_ici = np.mean(np.abs(_losses.sigmoid(_losses.spline_basis(lp, knots) @ truth)
                              - _losses.sigmoid(lp)))
    low, high = curve.intervals["ici"]
    assert low <= true_ici <= high


def test_draws_are_seeded(synthetic):
    y, lp, w = synthetic
    one = logitshift.calibration_curve(y, lp, w, seed=5, draws=200)
    two = logitshift.calibration_curve(y, lp, w, seed=5, draws=200)
    three = logitshift.calibration_curve(y, lp, w, seed=6, draws=200)
    assert one.intervals == two.intervals
    assert one.intervals != three.intervals


def test_chi_square_quantile_against_scipy():
    stats = pytest.importorskip("scipy.stats")
    for df in (1, 3, 4, 5, 7, 12):
        for level in (0.5, 0.9, 0.95, 0.999):
            assert chi_square_quantile(level, df) == pytest.approx(stats.chi2.ppf(level, df),
                                                                   rel=1e-12)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_integer_weights_equal_repeated_rows_and_order_does_not_matter(seed):
    rng = np.random.default_rng(seed)
    n = 600
    lp = rng.normal(0.0, 1.5, n)
    y = (rng.random(n) < _losses.sigmoid(0.2 + 0.8 * lp)).astype(int)
    w = rng.integers(1, 4, n)
    knots = np.array([-2.0, 0.0, 2.0])
    weighted = logitshift.calibration_curve(y, lp, w, knots=knots, draws=20, seed=0)
    repeated = logitshift.calibration_curve(np.repeat(y, w), np.repeat(lp, w), knots=knots,
                                            draws=20, seed=0)
    order = rng.permutation(n)
    shuffled = logitshift.calibration_curve(y[order], lp[order], w[order], knots=knots,
                                            draws=20, seed=0)
    for other in (repeated, shuffled):
        np.testing.assert_allclose(other.coefficients, weighted.coefficients, rtol=1e-10,
                                   atol=1e-10)
        for name in STATISTICS:
            assert getattr(other, name) == pytest.approx(getattr(weighted, name), abs=1e-10)


def test_the_callers_arrays_are_left_alone(synthetic):
    y, lp, w = (array.copy() for array in synthetic)
    logitshift.calibration_curve(y, lp, w, seed=0, draws=10)
    for before, after in zip(synthetic, (y, lp, w)):
        np.testing.assert_array_equal(before, after)


# -- lowess -------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["breast_cancer", "synthetic"])
def test_loess_matches_r_lowess(name):
    """val.prob's curve, R's default delta: both lowess fit lines at anchors delta apart and
    interpolate between them, at slightly different anchors (statsmodels' and R's), so the
    fitted values differ between anchors by up to about 1e-6 and the statistics by 1e-8."""
    columns = _columns(name)
    expected = REFERENCE[f"lowess_{name}"]
    curve = logitshift.calibration_curve(columns["y"], columns["lp"], method="loess")
    for statistic in STATISTICS:
        assert getattr(curve, statistic) == pytest.approx(expected[statistic], abs=1e-8)
    x = np.array(expected["x"])
    logits = np.log(x) - np.log1p(-x)
    np.testing.assert_allclose(curve.predict(logits).probability, expected["fitted"],
                               atol=2e-6)
    assert math.isnan(curve.intervals["ici"][0])


@pytest.mark.parametrize("name", ["breast_cancer", "synthetic"])
def test_loess_without_interpolation_matches_r_to_rounding(name):
    """With delta = 0 (a local line at every row) nothing is interpolated: R's lowess and
    ours agree to rounding, statistics and curve."""
    columns = _columns(name)
    expected = REFERENCE[f"lowess_exact_{name}"]
    curve = fit_loess(columns["y"], columns["lp"], None, n_rows=columns["y"].size,
                      delta=0.0)
    for statistic in STATISTICS:
        assert getattr(curve, statistic) == pytest.approx(expected[statistic], abs=1e-9)
    x = np.array(expected["x"])
    logits = np.log(x) - np.log1p(-x)
    np.testing.assert_allclose(curve.predict(logits).probability, expected["fitted"],
                               atol=1e-9)


# -- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("knots, words", [
    (2, "knots = 2 must be 3 to 7"), (8, "knots = 8 must be 3 to 7"),
    ([0.0, 1.0], "knots has 2 values"), ([0.0, 2.0, 1.0], "knots[2] = 1.0 is not above"),
    ([0.0, math.nan, 1.0], "knots[1] = nan is not finite"),
    ([0.0, 0.01, 1.0], "both fall on the cell edge"),
    ([5.0, 6.0, 7.0], "singular"),
])
def test_bad_knots_are_refused_by_name(synthetic, knots, words):
    y, lp, w = synthetic
    with pytest.raises(logitshift.InputError, match="knots") as error:
        logitshift.calibration_curve(y, lp, w, knots=knots)
    assert words in str(error.value)


def test_bad_rows_and_options_are_refused_by_name(synthetic, tmp_path):
    y, lp, w = synthetic
    bad = lp.copy()
    bad[17] = math.nan
    with pytest.raises(logitshift.InputError, match=r"offset\[17\] is nan"):
        logitshift.calibration_curve(y, bad)
    with pytest.raises(logitshift.InputError, match="method"):
        logitshift.calibration_curve(y, lp, method="spline")
    with pytest.raises(logitshift.InputError, match="weight"):
        logitshift.calibration_curve(y, lp, w, method="loess")
    p = _losses.sigmoid(lp)
    p[3] = 1.0
    y1 = y.copy()
    y1[3] = 1
    with pytest.raises(logitshift.InputError, match="infinite score"):
        logitshift.calibration_curve(y1, p, offset_is="probability")
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"y": y, "lp": lp}), path)
    with pytest.raises(logitshift.InputError, match="rows in memory"):
        logitshift.validate_file(path, "y", "lp", curve="loess")
    with pytest.raises(logitshift.InputError, match="no row has label 1"):
        logitshift.calibration_curve(np.zeros_like(y), lp)
    curve = logitshift.calibration_curve(y, lp, seed=0, draws=10)
    with pytest.raises(logitshift.InputError, match=r"scores\[1\] is nan"):
        curve.predict([0.0, math.nan])


def test_spline_knots_snap_to_edges():
    centres = (np.arange(-40, 40) + 0.5) / 16
    weights = np.ones_like(centres)
    knots = spline_knots(np.array([-1.01, 0.02, 1.5]), centres, weights, 1 / 16)
    np.testing.assert_array_equal(knots, [-1.0, 0.0, 1.5])
    harrell = spline_knots(3, centres, weights, 1 / 16)
    np.testing.assert_allclose(harrell, [-2.0, 0.0, 2.0], atol=1 / 16)


# -- command line and figure --------------------------------------------------------------

def _cli(argv: list[str]) -> int:
    from logitshift.cli import main

    try:
        return main(argv)
    except SystemExit as exit:  # argparse's own errors
        return int(exit.code)


def test_cli_json_carries_the_curve(synthetic, tmp_path, capsys):
    y, lp, w = synthetic
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"y": y, "lp": lp, "w": w}), path)
    assert _cli(["validate", str(path), "--label", "y", "--offset", "lp", "--weight", "w",
                 "--curve", "rcs", "--json", "--quiet"]) == 0
    record = json.loads(capsys.readouterr().out)["smooth_curve"]
    expected = logitshift.validate_file(path, "y", "lp", "w", curve="rcs").smooth_curve
    assert record["coefficients"] == expected.coefficients.tolist()
    assert record["ici"] == expected.ici and record["ici_bound"] == expected.bounds["ici"]
    assert len(record["grid"]["score"]) == 101
    assert _cli(["validate", str(path), "--label", "y", "--offset", "lp", "--curve", "rcs",
                 "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "smooth calibration curve" in text and "ICI (Eavg)" in text


def test_loess_on_a_stream_is_refused_before_reading(tmp_path):
    """Lowess needs every row at once: a file, standard input or Dask is refused before a
    row is read (a bad row further on is never reached)."""
    dd = pytest.importorskip("dask.dataframe")
    path = tmp_path / "bad.csv"
    path.write_text("y,lp\n1,0.5\n0,oops\n")
    with pytest.raises(logitshift.InputError, match=r"curve = 'loess' needs the rows in "
                       r"memory, and a file or standard input") as error:
        logitshift.validate_file(path, "y", "lp", curve="loess")
    assert error.value.argument == "curve"
    frame = dd.from_dict({"y": [0.0, 1.0] * 50, "lp": [float("nan")] * 100}, npartitions=2)
    with pytest.raises(logitshift.InputError, match=r"method = 'loess' needs the rows in "
                       r"memory, and a Dask collection"):
        logitshift.calibration_curve_frame(frame, "y", "lp", method="loess")


def test_cli_refuses_loess_for_a_file_in_one_line(synthetic, tmp_path, capsys):
    y, lp, _ = synthetic
    path = tmp_path / "rows.csv"
    pacsv.write_csv(pa.table({"y": y, "lp": lp}), path)
    assert _cli(["validate", str(path), "--label", "y", "--offset", "lp", "--curve",
                 "loess", "--quiet"]) == 2
    error = capsys.readouterr().err.strip()
    assert "\n" not in error and "rows in memory" in error
    assert _cli(["validate", str(path), "--label", "y", "--offset", "lp", "--curve",
                 "spline"]) == 2


def test_figure_draws_the_curve_band_groups_and_statistics(synthetic, tmp_path):
    pytest.importorskip("matplotlib")
    import logitshift.plot

    y, lp, w = synthetic
    report = logitshift.validate(y, lp, w, curve="rcs")
    figure = logitshift.plot.smooth_calibration_figure(report)
    top = figure.axes[0]
    smooth = next(line for line in top.get_lines() if line.get_gid() == "smooth")
    grid = report.smooth_curve.grid(201)
    np.testing.assert_allclose(smooth.get_ydata(), grid["probability"])
    gids = {artist.get_gid() for artist in top.get_children()}
    assert {"pointwise", "band_low", "band_high", "diagonal", "groups", "statistics"} <= gids
    box = next(text for text in top.texts if text.get_gid() == "statistics").get_text()
    assert f"{report.smooth_curve.ici:.3f}" in box and "Emax" in box
    # The box and the legend do not overlap once drawn.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    legend = top.get_legend().get_window_extent(renderer)
    text = next(text for text in top.texts if text.get_gid() == "statistics")
    assert not legend.overlaps(text.get_window_extent(renderer))
    with pytest.raises(logitshift.InputError, match="smooth curve"):
        logitshift.plot.smooth_calibration(logitshift.validate(y, lp, w))


def test_standard_input_gives_the_files_curve(synthetic, tmp_path):
    import subprocess
    import sys

    y, lp, _ = synthetic
    path = tmp_path / "rows.csv"
    pacsv.write_csv(pa.table({"y": y, "lp": lp}), path)
    done = subprocess.run([sys.executable, "-m", "logitshift", "validate", "-", "--label", "y",
                           "--offset", "lp", "--curve", "rcs", "--json", "--quiet"],
                          input=path.read_bytes(), capture_output=True, check=True)
    record = json.loads(done.stdout)["smooth_curve"]
    expected = logitshift.calibration_curve_file(path, "y", "lp", seed=0)
    np.testing.assert_allclose(record["coefficients"], expected.coefficients, rtol=1e-12,
                               atol=1e-12)
    assert record["ici"] == pytest.approx(expected.ici, abs=1e-15)
