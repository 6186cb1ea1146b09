"""Odd inputs to the smooth calibration curve and the decision curve, as a new user tries
them: each answer is right against its reference (the net benefit counted on the rows by its
definition, statsmodels' GLM on a spline design built here by hand, R's lowess stored under
tests/data/curve, the same rows as plain float64, the same rows from a file or the CLI) or
an ``InputError`` naming the argument, the row and the value. The tests after the battery
each failed before the fix they name."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import logitshift
from logitshift.cli import main

HERE = Path(__file__).parent / "data" / "curve"
N = 400


@pytest.fixture(scope="module")
def rows() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    scores = rng.normal(-0.3, 1.5, N)
    labels = (rng.random(N) < 1 / (1 + np.exp(-0.8 * scores))).astype(np.float64)
    return labels, scores


@pytest.fixture(scope="module")
def baseline(rows) -> logitshift.SmoothCalibrationCurve:
    y, f = rows
    return logitshift.calibration_curve(y, f, draws=50, seed=0)


def net_benefit_by_definition(y, probability, weight, thresholds):
    """TP/n − FP/n · t/(1−t), ``p >= t`` treated, counted row by row."""
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if weight is None else np.asarray(weight, dtype=np.float64)
    w = w / np.max(w)  # exact enough: the ratio is what counts
    out = []
    for t in thresholds:
        treated = probability >= t
        tp, fp = np.sum(w * y * treated), np.sum(w * (1 - y) * treated)
        out.append(tp / np.sum(w) - fp / np.sum(w) * t / (1 - t))
    return np.array(out)


def rcs_design(x, knots):
    """Harrell's restricted cubic spline basis written out from Hmisc::rcspline.eval."""
    t = np.asarray(knots, dtype=np.float64)
    norm = (t[-1] - t[0]) ** 2
    cube = lambda k: np.maximum(x - k, 0.0) ** 3  # noqa: E731
    columns = [np.ones_like(x), x]
    for j in range(t.size - 2):
        columns.append((cube(t[j]) - cube(t[-2]) * (t[-1] - t[j]) / (t[-1] - t[-2])
                        + cube(t[-1]) * (t[-2] - t[j]) / (t[-1] - t[-2])) / norm)
    return np.column_stack(columns)


def glm_coefficients(y, x, weight, knots):
    sm = pytest.importorskip("statsmodels.api")
    model = sm.GLM(np.asarray(y, np.float64), rcs_design(np.asarray(x, np.float64), knots),
                   family=sm.families.Binomial(),
                   freq_weights=None if weight is None else np.asarray(weight, np.float64))
    return model.fit(tol=1e-14, maxiter=200).params


def refused(call, argument, index=None):
    with pytest.raises(logitshift.InputError) as caught:
        call()
    error = caught.value
    assert argument in str(error) and error.argument is not None and argument in error.argument
    if index is not None:
        assert f"[{index}]" in str(error) and error.index == index
    return error


# -- the battery: the decision curve against its definition --------------------------------

def _decision_cases():
    rng = np.random.default_rng(3)
    y = (rng.random(60) < 0.4).astype(np.float64)
    f = rng.normal(0, 2, 60)
    p = 1 / (1 + np.exp(-f))
    soft = rng.random(60)
    w = rng.exponential(size=60)
    grid = [0.05, 0.2, 0.5, 0.8]
    cases = {
        "plain": (y, f, None, grid, "logit"),
        "probabilities": (y, p, None, grid, "probability"),
        "int_labels": (y.astype(np.int64), f, None, grid, "logit"),
        "bool_labels": (y.astype(bool), f, None, grid, "logit"),
        "float32": (y.astype(np.float32), f.astype(np.float32), None, grid, "logit"),
        "float16_scores": (y, f.astype(np.float16), None, grid, "logit"),
        "list_inputs": (y.tolist(), f.tolist(), None, grid, "logit"),
        "pandas": (pd.Series(y), pd.Series(f), None, grid, "logit"),
        "nullable_no_missing": (pd.Series(y).astype("Float64"), pd.Series(f).astype("Float64"),
                                None, grid, "logit"),
        "masked_none_masked": (np.ma.masked_array(y), np.ma.masked_array(f), None, grid,
                               "logit"),
        "soft_labels": (soft, f, None, grid, "logit"),
        "weights": (y, f, w, grid, "logit"),
        "weights_2^600": (y, f, w * 2.0 ** 600, grid, "logit"),
        "weights_2^-600": (y, f, w * 2.0 ** -600, grid, "logit"),
        "subnormal_weights": (y, f, np.full(60, 5e-324), grid, "logit"),
        "integer_weights": (y, f, rng.integers(0, 4, 60), grid, "logit"),
        "edge_thresholds": (y, f, None, [1e-12, 0.5, 1 - 1e-12], "logit"),
        "one_threshold": (y, f, None, [0.3], "logit"),
        "fine_thresholds": (y, f, None, np.linspace(0.001, 0.999, 200), "logit"),
        "all_labels_0": (np.zeros(60), f, None, grid, "logit"),
        "all_labels_1": (np.ones(60), f, None, grid, "logit"),
        "all_scores_equal": (y, np.zeros(60), None, grid, "logit"),
        "scores_in_one_cell": (y, 0.5 + rng.random(60) * 0.01, None, grid, "logit"),
        "threshold_on_a_score": (y, p, None, sorted(set(np.round(p[:4], 12))),
                                 "probability"),
        "probabilities_0_and_1": (np.r_[0.0, 1.0, y[2:]], np.r_[0.0, 1.0, p[2:]], None, grid,
                                  "probability"),
        "logits_700": (np.r_[1.0, 0.0, y[2:]], np.r_[700.0, -700.0, f[2:]], None, grid,
                       "logit"),
        "logits_1e300": (np.r_[1.0, 0.0, y[2:]], np.r_[1e300, -1e300, f[2:]], None, grid,
                         "logit"),
        "logits_inf": (np.r_[1.0, 0.0, y[2:]], np.r_[np.inf, -np.inf, f[2:]], None, grid,
                       "logit"),
        "anti_informative": (y, -f, None, grid, "logit"),
        "one_row": (np.array([1.0]), np.array([0.3]), None, grid, "logit"),
        "two_rows": (np.array([1.0, 0.0]), np.array([0.3, 0.1]), None, grid, "logit"),
        "huge_n_few_scores": (np.tile(y, 500), np.tile(np.round(f), 500), None, grid, "logit"),
        "threshold_series": (y, f, None, pd.Series(grid), "logit"),
        "threshold_tuple": (y, f, None, tuple(grid), "logit"),
    }
    return cases


DECISION_CASES = _decision_cases()


@pytest.mark.parametrize("name", DECISION_CASES)
def test_net_benefit_equals_its_definition(name):
    y, scores, weight, thresholds, offset_is = DECISION_CASES[name]
    before = [None if a is None else np.array(a, copy=True) for a in (y, scores, weight)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        curve = logitshift.decision_curve(y, scores, weight, thresholds=thresholds,
                                          offset_is=offset_is, recalibrate=False)
    values = np.asarray(scores, dtype=np.float64)
    if offset_is == "logit":
        with np.errstate(over="ignore"):
            probability = 1 / (1 + np.exp(-values))
        # p >= t is f >= logit(t): compare on the log-odds, where σ would round.
        t = np.asarray(thresholds, dtype=np.float64)
        expected = []
        yy = np.asarray(y, np.float64)
        w = np.ones_like(yy) if weight is None else np.asarray(weight, np.float64)
        w = w / np.max(w)
        for level, threshold in zip(np.log(t) - np.log1p(-t), t):
            treated = values >= level
            expected.append((np.sum(w * yy * treated) - np.sum(w * (1 - yy) * treated)
                             * threshold / (1 - threshold)) / np.sum(w))
        expected = np.array(expected)
        del probability
    else:
        expected = net_benefit_by_definition(y, values, weight, thresholds)
    np.testing.assert_allclose(curve.model.net_benefit, expected, rtol=1e-12, atol=1e-14)
    assert curve.exact and np.all(curve.model.bound == 0)
    json.dumps(curve.to_dict(json_safe=True), allow_nan=False)
    for original, given in zip(before, (y, scores, weight)):
        if original is not None:
            np.testing.assert_array_equal(np.asarray(given), original)


@pytest.mark.parametrize("name", ["plain", "weights", "soft_labels", "anti_informative",
                                  "edge_thresholds"])
def test_validate_decision_equals_decision_curve(name):
    y, scores, weight, thresholds, offset_is = DECISION_CASES[name]
    alone = logitshift.decision_curve(y, scores, weight, thresholds=thresholds,
                                      offset_is=offset_is)
    report = logitshift.validate(y, scores, weight, decision=True, thresholds=thresholds,
                                 offset_is=offset_is)
    for which in ("model", "shifted"):
        np.testing.assert_allclose(getattr(report.decision, which).net_benefit,
                                   getattr(alone, which).net_benefit, rtol=1e-12, atol=1e-15)
    plain = logitshift.validate(y, scores, weight, offset_is=offset_is)
    assert report.shift.shift == plain.shift.shift and report.c_statistic == plain.c_statistic


# -- the battery: the spline curve against statsmodels and against plain float64 --------------

KNOTS = [-1.5, -0.5, 0.5, 1.5]


def _spline_cases(y, f):
    rng = np.random.default_rng(11)
    w = rng.exponential(size=y.size)
    return {
        "plain": (y, f, None, KNOTS),
        "knots_tuple": (y, f, None, tuple(KNOTS)),
        "knots_ndarray": (y, f, None, np.array(KNOTS)),
        "knots_series": (y, f, None, pd.Series(KNOTS)),
        "knots_int_list": (y, f, None, [-2, 0, 2]),
        "soft_labels": (rng.random(y.size), f, None, KNOTS),
        "anti_informative": (y, -f, None, KNOTS),
        "weights": (y, f, w, KNOTS),
        "weights_2^600": (y, f, w * 2.0 ** 600, KNOTS),
        "weights_2^-600": (y, f, w * 2.0 ** -600, KNOTS),
        "subnormal_weights": (y, f, np.full(y.size, 5e-324), KNOTS),
        "bool_labels": (y.astype(bool), f, None, KNOTS),
        "float32": (y.astype(np.float32), f.astype(np.float32), None, KNOTS),
        "float16_scores": (y, f.astype(np.float16), None, KNOTS),
        "int8_labels": (y.astype(np.int8), f, None, KNOTS),
        "logit_700": (np.r_[1.0, 0.0, y[2:]], np.r_[700.0, -700.0, f[2:]], None, KNOTS),
        "masked_none_masked": (np.ma.masked_array(y), np.ma.masked_array(f), None, KNOTS),
        "nullable": (pd.Series(y).astype("Float64"), pd.Series(f).astype("Float64"), None,
                     KNOTS),
    }


@pytest.fixture(scope="module")
def spline_cases(rows):
    return _spline_cases(*rows)


SPLINE_NAMES = list(_spline_cases(np.zeros(4), np.zeros(4)))


@pytest.mark.parametrize("name", SPLINE_NAMES)
def test_spline_equals_statsmodels_glm(name, spline_cases):
    y, f, weight, knots = spline_cases[name]
    curve = logitshift.calibration_curve(y, f, weight, knots=knots, draws=20, seed=0)
    assert curve.status == "converged"
    x = np.asarray(f, dtype=np.float64)
    unit = None if weight is None else np.asarray(weight, np.float64) / np.max(weight)
    expected = glm_coefficients(y, x, unit, np.asarray(knots, np.float64))
    np.testing.assert_allclose(curve.coefficients, expected, rtol=1e-7, atol=1e-9)
    # ICI by its definition on the rows.
    g = rcs_design(x, np.asarray(knots, np.float64)) @ curve.coefficients
    with np.errstate(over="ignore"):
        gap = np.abs(1 / (1 + np.exp(-g)) - 1 / (1 + np.exp(-x)))
    expected_ici = np.average(gap, weights=unit)
    assert curve.ici == pytest.approx(expected_ici, rel=1e-9, abs=1e-12)
    json.dumps(curve.to_dict(json_safe=True), allow_nan=False)
    assert "SmoothCalibrationCurve" in repr(curve)


# -- the battery: missing values and bad values, named -----------------------------------------

def _with_missing(kind, values, row):
    values = np.asarray(values, dtype=np.float64)
    if kind == "nan":
        out = values.copy()
        out[row] = np.nan
        return out
    if kind == "none":
        out = values.tolist()
        out[row] = None
        return out
    if kind == "pd_na":
        return pd.Series(values).astype("Float64").where(np.arange(values.size) != row)
    if kind == "masked":
        return np.ma.masked_array(values, mask=np.arange(values.size) == row)
    if kind == "pyarrow_null":
        pa = pytest.importorskip("pyarrow")
        return pa.array([None if i == row else v for i, v in enumerate(values.tolist())])
    raise AssertionError(kind)


CALLS = {
    "calibration_curve": lambda y, f, w: logitshift.calibration_curve(y, f, w, draws=10),
    "decision_curve": lambda y, f, w: logitshift.decision_curve(y, f, w),
    "validate_curve": lambda y, f, w: logitshift.validate(y, f, w, curve="rcs"),
    "validate_decision": lambda y, f, w: logitshift.validate(y, f, w, decision=True),
}
ROLES = {"y": "y", "scores": "offset", "weight": "weight"}


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("kind", ["nan", "none", "pd_na", "masked", "pyarrow_null"])
def test_a_missing_value_is_named_by_argument_and_row(call, role, kind, rows):
    y, f = rows
    columns = {"y": y, "scores": f, "weight": np.ones(N)}
    columns[role] = _with_missing(kind, columns[role], 37)
    refused(lambda: CALLS[call](columns["y"], columns["scores"], columns["weight"]),
            ROLES[role], 37)


BAD_OPTIONS = {
    "knots_2": (dict(knots=2), "knots"), "knots_8": (dict(knots=8), "knots"),
    "knots_bool": (dict(knots=True), "knots"), "knots_float": (dict(knots=5.0), "knots"),
    "knots_nan": (dict(knots=[0.0, np.nan, 1.0]), "knots"),
    "knots_inf": (dict(knots=[0.0, 1.0, np.inf]), "knots"),
    "knots_unsorted": (dict(knots=[1.0, 0.0, 2.0]), "knots"),
    "knots_duplicate": (dict(knots=[0.0, 0.0, 1.0]), "knots"),
    "knots_same_cell_edge": (dict(knots=[0.0, 0.01, 1.0]), "knots"),
    "knots_2d": (dict(knots=[[0.0, 1.0, 2.0]]), "knots"),
    "knots_strings": (dict(knots=["a", "b", "c"]), "knots"),
    "knots_outside_data": (dict(knots=[10.0, 11.0, 12.0]), "knots"),
    "knots_13": (dict(knots=np.linspace(-2, 2, 13)), "knots"),
    "knots_with_loess": (dict(knots=[0.0, 1.0, 2.0], method="loess"), "knots"),
    "method": (dict(method="spline"), "method"), "method_none": (dict(method=None), "method"),
    "level_0": (dict(level=0.0), "level"), "level_1": (dict(level=1.0), "level"),
    "level_nan": (dict(level=math.nan), "level"), "draws_0": (dict(draws=0), "draws"),
    "draws_float": (dict(draws=2.5), "draws"), "seed_float": (dict(seed=1.5), "seed"),
    "seed_negative": (dict(seed=-1), "seed"), "seed_str": (dict(seed="1"), "seed"),
    "offset_is": (dict(offset_is="odds"), "offset_is"),
}


@pytest.mark.parametrize("name", BAD_OPTIONS)
def test_a_bad_curve_option_is_named(name, rows):
    y, f = rows
    options, argument = BAD_OPTIONS[name]
    refused(lambda: logitshift.calibration_curve(y, f, **options), argument)


BAD_THRESHOLDS = {
    "zero": [0.0, 0.5], "one": [0.5, 1.0], "negative": [-0.1], "nan": [0.1, np.nan],
    "inf": [np.inf], "unsorted": [0.5, 0.2], "duplicate": [0.2, 0.2], "empty": [],
    "scalar": 0.5, "2d": [[0.1, 0.2]], "strings": ["0.1"], "none_inside": [0.1, None],
    "masked": np.ma.masked_array([0.1, 0.2], mask=[0, 1]), "bool": [True],
}


@pytest.mark.parametrize("name", BAD_THRESHOLDS)
def test_bad_thresholds_are_named(name, rows):
    y, f = rows
    refused(lambda: logitshift.decision_curve(y, f, thresholds=BAD_THRESHOLDS[name]),
            "thresholds")


BAD_DATA = {
    "labels_all_0": (lambda y, f: (np.zeros(N), f, None), "y"),
    "labels_all_1": (lambda y, f: (np.ones(N), f, None), "y"),
    "zero_weights": (lambda y, f: (y, f, np.zeros(N)), "weight"),
    "negative_weight": (lambda y, f: (y, f, np.r_[-1.0, np.ones(N - 1)]), "weight"),
    "one_row": (lambda y, f: (np.array([1.0]), np.array([0.3]), None), "y"),
    "two_rows": (lambda y, f: (np.array([1.0, 0.0]), np.array([0.3, 0.1]), None), "knots"),
    "all_scores_equal": (lambda y, f: (y, np.zeros(N), None), "knots"),
    "scores_in_one_cell": (lambda y, f: (y, 0.3 + 0.01 * np.linspace(0, 1, N), None),
                           "knots"),
    "swapped_arguments": (lambda y, f: (f, y, None), "y"),
    "label_2": (lambda y, f: (np.r_[2.0, y[1:]], f, None), "y"),
    "probability_0": (lambda y, f: (y, np.r_[0.0, 1 / (1 + np.exp(-f[1:]))], None), "offset"),
    "logit_inf": (lambda y, f: (np.r_[1.0, y[1:]], np.r_[np.inf, f[1:]], None), "offset"),
    "logit_1e300": (lambda y, f: (np.r_[1.0, y[1:]], np.r_[1e300, f[1:]], None), "offset"),
    "logit_1e12": (lambda y, f: (np.r_[1.0, y[1:]], np.r_[1e12, f[1:]], None), "offset"),
    "strings": (lambda y, f: (y, f.astype(str), None), "offset"),
    "lengths": (lambda y, f: (y, f[:-1], None), "offset"),
}


@pytest.mark.parametrize("name", BAD_DATA)
def test_bad_data_for_the_spline_is_named(name, rows):
    make, argument = BAD_DATA[name]
    y, f, w = make(*rows)
    offset_is = "probability" if name == "probability_0" else "logit"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refused(lambda: logitshift.calibration_curve(y, f, w, draws=10, offset_is=offset_is),
                argument)


PREDICT = {
    "nan": ([0.0, np.nan], "scores", 1), "inf": ([np.inf], "scores", 0),
    "minus_inf": ([0.0, -np.inf], "scores", 1), "strings": (["a"], "scores", None),
    "2d": ([[0.0]], "scores", None), "scalar": (0.5, "scores", None),
}


@pytest.mark.parametrize("name", PREDICT)
def test_predict_refuses_by_name(name, baseline):
    scores, argument, index = PREDICT[name]
    refused(lambda: baseline.predict(scores), argument, index)


def test_predict_far_scores_lie_on_the_straight_tails(baseline):
    b = baseline.coefficients
    tail = baseline.predict([1e300, -1e300, 1e12, -1e12])
    # Beyond the outer knots g(f) = a + s f with s the tail's slope: σ at ±1e12 is 0 or 1.
    slope = (baseline.predict([60.0]).probability, baseline.predict([50.0]).probability)
    assert np.all(np.isfinite(tail.probability)) and np.all(np.isfinite(tail.low))
    assert set(np.round(tail.probability, 12)) <= {0.0, 1.0}
    upper = 1.0 if slope[0] >= slope[1] else 0.0
    assert tail.probability[0] == upper and tail.probability[2] == upper
    assert np.all(tail.low <= tail.probability) and np.all(tail.probability <= tail.high)
    assert b.size == baseline.knots.size


def test_predict_of_probabilities_equals_predict_of_their_logits(rows):
    y, f = rows
    p = 1 / (1 + np.exp(-f))
    by_probability = logitshift.calibration_curve(y, p, offset_is="probability", draws=10,
                                                  seed=0)
    by_logit = logitshift.calibration_curve(y, f, draws=10, seed=0)
    np.testing.assert_allclose(by_probability.coefficients, by_logit.coefficients, rtol=1e-9)
    grid = np.array([0.05, 0.3, 0.7, 0.95])
    np.testing.assert_allclose(by_probability.predict(grid).probability,
                               by_logit.predict(np.log(grid / (1 - grid))).probability,
                               rtol=1e-9)
    refused(lambda: by_probability.predict([0.5, 1.0]), "scores", 1)
    refused(lambda: by_probability.predict([1.5]), "scores", 0)


# -- lowess against R ---------------------------------------------------------------------

LOWESS_TIES = json.loads((HERE / "lowess_ties.json").read_text())


@pytest.mark.parametrize("case", LOWESS_TIES)
def test_lowess_at_tied_runs_equals_r(case):
    """Failed before: statsmodels' lowess returns 0 or 1 where a tied run fills the
    neighbourhood (R gives the run's mean), and warned of a division."""
    data = LOWESS_TIES[case]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        curve = logitshift.calibration_curve(data["y"], data["p"], method="loess",
                                             offset_is="probability")
    fitted = curve.predict(np.array(data["p"])).probability
    np.testing.assert_allclose(fitted, data["fitted"], atol=1e-12)
    assert curve.ici == pytest.approx(np.mean(np.abs(np.array(data["fitted"])
                                                     - np.array(data["p"]))), abs=1e-12)


# -- the defects found, each a test that failed before its fix ------------------------------

def test_masked_arrays_are_refused_by_row_not_by_numba(rows):
    y, f = rows
    masked = np.ma.masked_array(f, mask=np.arange(N) == 5)
    for call in (lambda: logitshift.fit(y, masked), lambda: logitshift.fit_slope(y, masked)):
        refused(call, "offset", 5)
    unmasked = logitshift.fit(y, np.ma.masked_array(f))
    assert unmasked.shift == logitshift.fit(y, f).shift


def test_float16_scores_give_the_curve_of_their_float64_values(rows):
    y, f = rows
    half = f.astype(np.float16)
    curve = logitshift.calibration_curve(y, half, knots=KNOTS, draws=10, seed=0)
    same = logitshift.calibration_curve(y, half.astype(np.float64), knots=KNOTS, draws=10,
                                        seed=0)
    np.testing.assert_allclose(curve.coefficients, same.coefficients, rtol=1e-12)
    assert curve.ici == pytest.approx(same.ici, rel=1e-12)


@pytest.mark.parametrize("weight", [5e-324, 2.0 ** -1060, 2.0 ** -600, 2.0 ** 600, 1e308])
def test_constant_weights_of_any_size_equal_no_weights(weight, rows):
    y, f = rows
    w = np.full(N, weight)
    curve = logitshift.calibration_curve(y, f, w, knots=KNOTS, draws=10, seed=0)
    plain = logitshift.calibration_curve(y, f, knots=KNOTS, draws=10, seed=0)
    np.testing.assert_allclose(curve.coefficients, plain.coefficients, rtol=1e-9)
    assert curve.ici == pytest.approx(plain.ici, rel=1e-9)
    assert curve.emax == pytest.approx(plain.emax, rel=1e-9)
    decision = logitshift.decision_curve(y, f, w, thresholds=[0.2, 0.5])
    np.testing.assert_allclose(decision.model.net_benefit,
                               logitshift.decision_curve(y, f, thresholds=[0.2, 0.5])
                               .model.net_benefit, rtol=1e-12)


def test_subnormal_weights_from_a_file_equal_the_rows(rows, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    y, f = rows
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"y": y, "f": f, "w": np.full(N, 5e-324)}), path)
    streamed = logitshift.calibration_curve_file(path, "y", "f", "w", knots=KNOTS, draws=10,
                                                 seed=0)
    plain = logitshift.calibration_curve(y, f, knots=KNOTS, draws=10, seed=0)
    np.testing.assert_allclose(streamed.coefficients, plain.coefficients, rtol=1e-9)
    assert abs(streamed.ici - plain.ici) <= streamed.bounds["ici"] + 1e-12
    decision = logitshift.decision_curve_file(path, "y", "f", "w", thresholds=[0.3])
    exact = logitshift.decision_curve(y, f, thresholds=[0.3])
    assert abs(decision.model.net_benefit[0] - exact.model.net_benefit[0]) <= \
        decision.model.bound[0] + 1e-12


def test_far_scores_never_read_as_converged(rows):
    """1e12 logits once gave status 'converged' at the identity curve, 1e300 NaN."""
    y, f = rows
    for far in (1e12, 1e20, 1e300):
        error = refused(lambda: logitshift.calibration_curve(np.r_[1.0, y[1:]],
                                                             np.r_[far, f[1:]]), "offset", 0)
        assert f"{far:.6g}" in str(error)
    near = logitshift.calibration_curve(np.r_[1.0, y[1:]], np.r_[700.0, f[1:]], knots=KNOTS,
                                        draws=10, seed=0)
    without = glm_coefficients(y[1:], f[1:], None, KNOTS)
    assert near.status == "converged"
    np.testing.assert_allclose(near.coefficients, without, rtol=1e-7)


def test_validate_with_thresholds_gives_the_decision_curve(rows):
    y, f = rows
    report = logitshift.validate(y, f, thresholds=[0.2, 0.4])
    assert report.decision is not None
    np.testing.assert_array_equal(report.decision.thresholds, [0.2, 0.4])


def test_the_plots_name_a_wrong_argument(rows):
    pytest.importorskip("matplotlib")
    import logitshift.plot as plot

    y, f = rows
    report = logitshift.validate(y, f, decision=True, thresholds=[0.2, 0.4])
    refused(lambda: plot.smooth_calibration(report.decision), "report")
    refused(lambda: plot.net_benefit(logitshift.validate(y, f)), "curve")
    axes = plot.net_benefit(report)  # the report's own decision curve
    model = [line for line in axes.get_lines() if line.get_gid() == "model"][0]
    np.testing.assert_allclose(model.get_ydata(), report.decision.model.net_benefit)


# -- figures of degenerate curves -----------------------------------------------------------

def test_figures_of_degenerate_curves_draw_what_they_hold(rows):
    pytest.importorskip("matplotlib")
    import logitshift.plot as plot

    y, f = rows
    nobody = logitshift.decision_curve(np.zeros(N), f, thresholds=[0.1, 0.5])
    figure = plot.decision_figure(nobody, standardized=True)
    lines = {line.get_gid(): line for line in figure.axes[0].get_lines()}
    np.testing.assert_allclose(lines["model"].get_ydata(), nobody.model.net_benefit)
    low, high = figure.axes[0].get_ylim()
    assert np.isfinite(low) and np.isfinite(high) and low < 0 < high
    standardized = {line.get_gid(): line for line in figure.axes[1].get_lines()}
    assert np.all(np.isnan(standardized["model"].get_ydata()))  # π = 0: no value
    tied = logitshift.validate(np.r_[np.ones(10), np.zeros(10)], np.zeros(20),
                               curve="loess")
    axes = plot.smooth_calibration(tied)
    smooth = [line for line in axes.get_lines() if line.get_gid() == "smooth"][0]
    np.testing.assert_allclose(smooth.get_ydata(), 0.5)  # the run's mean, as R's lowess


# -- the command line --------------------------------------------------------------------------

def _run(argv, capsys, stdin=None, monkeypatch=None):
    if stdin is not None:
        import io
        import sys

        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    try:
        code = main(argv)
    except SystemExit as exit:
        code = int(exit.code)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def csv_file(rows, tmp_path_factory):
    y, f = rows
    path = tmp_path_factory.mktemp("cli") / "rows.csv"
    path.write_text("y,f\n" + "".join(f"{int(a)},{b!r}\n" for a, b in zip(y, f.tolist())))
    return path


CLI_REFUSALS = {
    "thresholds_reversed": ["--thresholds", "0.5:0.1:0.1"],
    "thresholds_zero_step": ["--thresholds", "0.1:0.2:0"],
    "thresholds_two_parts": ["--thresholds", "0.1:0.2"],
    "thresholds_word": ["--thresholds", "abc"],
    "thresholds_empty_item": ["--thresholds", "0.3,,0.2"],
    "thresholds_unsorted": ["--thresholds", "0.3,0.2"],
    "thresholds_zero": ["--thresholds", "0:1:0.1"],
    "thresholds_nan": ["--thresholds", "nan:0.5:0.1"],
    "thresholds_too_many": ["--thresholds", "0.1:0.9:1e-9"],
    "dca_plot_no_folder": ["--dca-plot", "/nonexistent/folder/x.png"],
    "dca_plot_bad_format": ["--dca-plot", "x.notaformat"],
    "plot_no_folder": ["--curve", "rcs", "--plot", "/nonexistent/folder/x.png"],
    "loess_from_a_file": ["--curve", "loess"],
    "offset_is_probability_on_logits": ["--dca", "--offset-is", "probability"],
}


@pytest.mark.parametrize("name", CLI_REFUSALS)
def test_cli_refuses_with_one_line(name, csv_file, capsys):
    code, out, err = _run(["validate", str(csv_file), "--label", "y", "--offset", "f",
                           *CLI_REFUSALS[name]], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    if name.startswith("dca_plot"):
        assert "--dca-plot" in err  # failed before: the message named --plot


def test_cli_refuses_the_input_as_a_figure(csv_file, capsys, tmp_path):
    png = tmp_path / "data.png"
    png.write_bytes(csv_file.read_bytes())
    code, out, err = _run(["validate", str(png), "--format", "csv", "--label", "y",
                           "--offset", "f", "--dca-plot", str(png)], capsys)
    assert code == 2 and "--dca-plot" in err and err.count("\n") == 1
    assert png.read_bytes() == csv_file.read_bytes()


@pytest.mark.parametrize("form", ["plain", "crlf_bom_quoted", "stdin"])
def test_cli_json_equals_the_rows_in_memory(form, rows, csv_file, capsys, tmp_path,
                                            monkeypatch):
    y, f = rows
    text = csv_file.read_bytes()
    if form == "crlf_bom_quoted":
        lines = text.decode().splitlines()
        body = [lines[0]] + ['"' + '","'.join(line.split(",")) + '"' for line in lines[1:]]
        path = tmp_path / "odd.csv"
        path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(body).encode() + b"\r\n")
        source, stdin = str(path), None
    elif form == "stdin":
        source, stdin = "-", text
    else:
        source, stdin = str(csv_file), None
    code, out, err = _run(["validate", source, "--label", "y", "--offset", "f", "--curve",
                           "rcs", "--thresholds", "0.2,0.5", "--json"], capsys, stdin,
                          monkeypatch)
    assert code == 0, err
    record = json.loads(out)
    memory = logitshift.validate(y, f, curve="rcs", thresholds=[0.2, 0.5])
    np.testing.assert_allclose(record["smooth_curve"]["coefficients"],
                               memory.smooth_curve.coefficients, rtol=1e-9)
    nb = record["decision"]["model"]["net_benefit"]
    bound = record["decision"]["model"]["bound"]
    assert np.all(np.abs(np.array(nb) - memory.decision.model.net_benefit)
                  <= np.array(bound) + 1e-12)


@pytest.mark.parametrize("text", [b"y,f\n", b"", b"y,f\r\n"])
def test_cli_stdin_without_rows_is_one_line(text, capsys, monkeypatch):
    code, out, err = _run(["validate", "-", "--label", "y", "--offset", "f", "--curve", "rcs",
                           "--dca"], capsys, text, monkeypatch)
    assert code == 2 and out == "" and err.count("\n") == 1 and "Traceback" not in err


# -- the same rows from every source --------------------------------------------------------

def test_sources_agree(rows, tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    y, f = rows
    path = tmp_path / "rows.parquet"
    pq.write_table(pa.table({"y": y, "f": f}), path)
    memory = logitshift.calibration_curve(y, f, knots=KNOTS, draws=10, seed=0)
    frame = logitshift.calibration_curve_frame(pd.DataFrame({"y": y, "f": f}), "y", "f",
                                               knots=KNOTS, draws=10, seed=0)
    results = {"file": logitshift.calibration_curve_file(path, "y", "f", knots=KNOTS,
                                                         draws=10, seed=0), "frame": frame}
    try:
        import duckdb

        relation = duckdb.connect().read_parquet(str(path))
        results["duckdb"] = logitshift.calibration_curve_frame(relation, "y", "f", knots=KNOTS,
                                                               draws=10, seed=0)
    except ImportError:
        pass
    try:
        import dask.dataframe as dd

        results["dask"] = logitshift.calibration_curve_frame(
            dd.from_pandas(pd.DataFrame({"y": y, "f": f}), npartitions=3), "y", "f",
            knots=KNOTS, draws=10, seed=0)
    except ImportError:
        pass
    for name, result in results.items():
        np.testing.assert_allclose(result.coefficients, memory.coefficients, rtol=1e-9,
                                   err_msg=name)
        assert abs(result.ici - memory.ici) <= result.bounds["ici"] + 1e-12, name
