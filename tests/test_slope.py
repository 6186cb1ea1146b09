"""Logistic recalibration (``fit_slope``, ``Sketch.solve_slope``) against R's glm, statsmodels,
the numpy reference and brute-force profiles."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize_scalar
from scipy.stats import chi2

import logitshift
from logitshift._estimators.slope import ArraySlopeCurve

DATA = Path(__file__).parent / "data" / "valprob"


def reference(dataset: str, weighted: bool) -> pd.Series:
    table = pd.read_csv(DATA / "valprob_reference.csv")
    rows = table[(table.dataset == dataset) & (table.weighted == weighted)]
    return rows.set_index("name").value.astype(float)


def dataset(name: str, weighted: bool):
    frame = pd.read_csv(DATA / f"{name}.csv")
    return frame.y.to_numpy(), frame.lp.to_numpy(), frame.w.to_numpy() if weighted else None


R_CASES = [("synthetic", False), ("synthetic", True), ("breast_cancer", False)]


def total_loss(y, f, w, intercept, slope):
    z = intercept + slope * f
    w = np.ones_like(f) if w is None else w
    return float(np.sum(w * (np.logaddexp(0.0, z) - y * z)))


@pytest.mark.parametrize("name, weighted", R_CASES, ids=[f"{n}-{w}" for n, w in R_CASES])
def test_matches_r_glm(name, weighted):
    y, f, w = dataset(name, weighted)
    r = reference(name, weighted)
    fit = logitshift.fit_slope(y, f, w)
    assert fit.converged and fit.status == "converged"
    assert fit.intercept == pytest.approx(r["slope.intercept"], rel=1e-9)
    assert fit.slope == pytest.approx(r["slope.slope"], rel=1e-9)
    # R floors each row's IRLS weight σ(z)σ(-z) at machine epsilon; the breast-cancer model
    # has rows far below it, which moves R's covariance by ~3e-8 (statsmodels agrees with
    # ours to 1e-15 there).
    assert fit.covariance[0, 0] == pytest.approx(r["slope.var_intercept"], rel=1e-7)
    assert fit.covariance[1, 1] == pytest.approx(r["slope.var_slope"], rel=1e-7)
    assert fit.covariance[0, 1] == pytest.approx(r["slope.cov"], rel=1e-7)
    assert fit.se_slope == pytest.approx(math.sqrt(r["slope.var_slope"]), rel=1e-7)
    glm = sm.GLM(y, sm.add_constant(f), family=sm.families.Binomial(),
                 freq_weights=w).fit(tol=1e-14)
    assert fit.covariance == pytest.approx(glm.cov_params(), rel=1e-10)
    assert 2 * fit.loss * fit.weight_sum == pytest.approx(r["slope.deviance"], rel=1e-10)


@pytest.mark.parametrize("name, weighted", R_CASES, ids=[f"{n}-{w}" for n, w in R_CASES])
def test_profile_intervals_are_the_likelihood_ratio_ends(name, weighted):
    """Each end is where twice the rise of the profiled loss is the chi-square quantile
    (checked by brute force). R's confint interpolates the same profile between points of a
    grid: 2e-6 from the ends here on the synthetic data, 3e-4 on the breast-cancer model,
    whose profile is far from quadratic."""
    y, f, w = dataset(name, weighted)
    r = reference(name, weighted)
    fit = logitshift.fit_slope(y, f, w)
    best = total_loss(y, f, w, fit.intercept, fit.slope)
    quantile = chi2.ppf(0.95, 1)
    intervals = fit.confint(0.95)
    for end in intervals.slope:
        inner = minimize_scalar(lambda a: total_loss(y, f, w, a, end),
                                bracket=(fit.intercept - 1, fit.intercept + 1), tol=1e-12)
        assert 2 * (inner.fun - best) == pytest.approx(quantile, abs=1e-7)
    for end in intervals.intercept:
        inner = minimize_scalar(lambda b: total_loss(y, f, w, end, b),
                                bracket=(fit.slope - 1, fit.slope + 1), tol=1e-12)
        assert 2 * (inner.fun - best) == pytest.approx(quantile, abs=1e-7)
    grid = 5e-4 if name == "breast_cancer" else 1e-5
    assert intervals.intercept == pytest.approx(
        (r["slope.ci_intercept_low"], r["slope.ci_intercept_high"]), abs=grid)
    assert intervals.slope == pytest.approx(
        (r["slope.ci_slope_low"], r["slope.ci_slope_high"]), abs=grid)
    wald = fit.confint(0.95, method="wald")
    z = 1.959963984540054
    assert wald.slope == pytest.approx((fit.slope - z * fit.se_slope,
                                        fit.slope + z * fit.se_slope), rel=1e-12)
    assert intervals.intercept[0] < fit.intercept < intervals.intercept[1]
    assert intervals.slope[0] < fit.slope < intervals.slope[1]


def test_sketch_sums_match_the_numpy_reference():
    rng = np.random.default_rng(5)
    f = rng.normal(0, 3, 50_000)
    y = rng.random(f.size)  # soft labels
    w = rng.integers(0, 4, f.size).astype(float)
    sketch = logitshift.Sketch().update(y, f, w)
    exact = ArraySlopeCurve(y, f, w)
    for intercept, slope in [(0.3, 0.8), (-2.0, 1.3), (1.0, -0.7), (0.0, 0.0), (4.0, 0.05)]:
        ours, truth = sketch.evaluate_slope(intercept, slope), exact.evaluate_slope(intercept,
                                                                                    slope)
        scale = np.sum(w * (1 + np.abs(f)) ** 2)
        assert ours.loss == pytest.approx(truth.loss, rel=1e-13)
        assert np.allclose(ours.gradient, truth.gradient, rtol=0, atol=1e-14 * scale)
        assert np.allclose(ours.hessian, truth.hessian, rtol=0, atol=1e-13 * scale)
        assert sketch.truncation(slope) <= 1e-15


def test_agrees_with_statsmodels_with_soft_labels_and_weights():
    rng = np.random.default_rng(6)
    f = rng.normal(-1, 1.5, 5000)
    y = 1 / (1 + np.exp(-(0.4 + 1.2 * f))) * rng.uniform(0.5, 1.0, f.size)
    w = rng.uniform(0.1, 3.0, f.size)
    fit = logitshift.fit_slope(y, f, w)
    glm = sm.GLM(y, sm.add_constant(f), family=sm.families.Binomial(),
                 freq_weights=w).fit(tol=1e-14)
    assert fit.intercept == pytest.approx(glm.params[0], rel=1e-9)
    assert fit.slope == pytest.approx(glm.params[1], rel=1e-9)
    assert fit.covariance == pytest.approx(glm.cov_params(), rel=1e-7)


def test_a_steep_slope_is_refitted_exactly():
    """Beyond what the sketch's grid resolves (|slope| > 3.2 at the default width) the fit
    is made again with exact passes, and says so."""
    rng = np.random.default_rng(7)
    f = rng.normal(0, 0.2, 20_000)
    y = (rng.random(f.size) < 1 / (1 + np.exp(-(0.2 + 8.0 * f)))).astype(np.int8)
    fit = logitshift.fit_slope(y, f)
    glm = sm.GLM(y, sm.add_constant(f), family=sm.families.Binomial()).fit(tol=1e-14)
    assert fit.method == "exact" and fit.passes > 1 and fit.truncation == 0.0
    assert fit.slope == pytest.approx(glm.params[1], rel=1e-9)
    assert fit.intercept == pytest.approx(glm.params[0], rel=1e-9)
    # A sketch alone cannot: it says so rather than give sums it cannot vouch for.
    with pytest.warns(RuntimeWarning, match="too steep"):
        streamed = logitshift.Sketch().update(y, f).solve_slope()
    assert streamed.status == "beyond_sketch" and not streamed.converged


def test_streamed_chunks_give_the_fit_of_the_whole():
    y, f, w = dataset("synthetic", True)
    sketch = logitshift.Sketch()
    for start in range(0, y.size, 300):
        sketch.update(y[start:start + 300], f[start:start + 300], w[start:start + 300])
    whole = logitshift.fit_slope(y, f, w)
    streamed = logitshift.Sketch.from_bytes(sketch.to_bytes()).solve_slope()
    assert streamed.intercept == pytest.approx(whole.intercept, rel=1e-13)
    assert streamed.slope == pytest.approx(whole.slope, rel=1e-13)


@pytest.mark.parametrize("inside_a_cell", [False, True], ids=["between-cells", "in-a-cell"])
def test_separated_labels_have_no_finite_slope(inside_a_cell):
    rng = np.random.default_rng(8)
    f = rng.normal(0, 2, 1000)
    boundary = 0.01 if inside_a_cell else 0.0  # 0 is a cell edge; 0.01 is inside a cell
    f = f[np.abs(f - boundary) > 1e-3]
    y = (f > boundary).astype(int)
    with pytest.warns(RuntimeWarning, match="separate the labels"):
        fit = logitshift.fit_slope(y, f)
    assert fit.status == "separated" and not fit.converged and fit.slope == math.inf
    with pytest.raises(logitshift.InputError, match="status is 'separated'"):
        fit.confint()
    with pytest.warns(RuntimeWarning):
        mirrored = logitshift.fit_slope(1 - y, f)
    assert mirrored.slope == -math.inf


def test_degenerate_data_say_so():
    f = np.linspace(-1, 1, 50)
    with pytest.warns(RuntimeWarning, match="every offset is the same"):
        constant = logitshift.fit_slope(np.arange(50) % 2, np.full(50, 0.3))
    assert constant.status == "constant_offset" and not constant.converged
    with pytest.warns(RuntimeWarning, match="every label is 0"):
        negative = logitshift.fit_slope(np.zeros(50), f)
    assert negative.status == "all_negative" and negative.intercept == -math.inf
    with pytest.raises(logitshift.InputError, match="offset must be an array"):
        logitshift.fit_slope(np.arange(50) % 2, 0.5)
    with pytest.raises(logitshift.InputError, match=r"label y\[3\] = 2.0"):
        logitshift.fit_slope([0, 1, 0, 2.0], [0.1, 0.2, 0.3, 0.4])


def test_rows_of_infinite_offset_need_a_positive_slope():
    rng = np.random.default_rng(9)
    f = rng.normal(0, 1, 2000)
    y = (rng.random(f.size) < 1 / (1 + np.exp(-(0.1 + 0.7 * f)))).astype(float)
    finite = logitshift.fit_slope(y, f)
    certain = logitshift.fit_slope(np.append(y, [1.0, 0.0]), np.append(f, [np.inf, -np.inf]))
    assert certain.slope == pytest.approx(finite.slope, rel=1e-13)
    with pytest.raises(logitshift.InputError, match="only a positive slope"):
        logitshift.fit_slope(np.append(1 - y, 1.0), np.append(f, np.inf))


@settings(max_examples=25, deadline=None)
@given(scale=st.floats(0.25, 4.0), move=st.floats(-5.0, 5.0), seed=st.integers(0, 2**16))
def test_an_affine_change_of_the_offsets_moves_the_line_with_it(scale, move, seed):
    """``a + b f = a' + b' (scale f + move)``: ``b' = b / scale``, ``a' = a - b' move``."""
    rng = np.random.default_rng(seed)
    f = rng.normal(0, 1, 3000)
    y = (rng.random(f.size) < 1 / (1 + np.exp(-(0.3 + 0.6 * f)))).astype(np.int8)
    base = logitshift.fit_slope(y, f)
    moved = logitshift.fit_slope(y, scale * f + move)
    assert moved.slope == pytest.approx(base.slope / scale, rel=1e-10)
    assert moved.intercept == pytest.approx(base.intercept - moved.slope * move,
                                            rel=1e-10, abs=1e-10)


def test_integer_weights_equal_repeated_rows():
    y, f, w = dataset("synthetic", True)
    weighted = logitshift.fit_slope(y, f, w)
    repeated = logitshift.fit_slope(np.repeat(y, w), np.repeat(f, w))
    assert repeated.slope == pytest.approx(weighted.slope, rel=1e-13)
    assert repeated.intercept == pytest.approx(weighted.intercept, rel=1e-13)


def test_result_methods():
    y, f, w = dataset("synthetic", False)
    fit = logitshift.fit_slope(y, f)
    assert fit.predict_raw(np.array([0.0, 1.0])) == pytest.approx(
        [fit.intercept, fit.intercept + fit.slope])
    record = fit.to_dict()
    assert record["slope"] == fit.slope and record["slope_low"] < fit.slope
    assert record["method"] == "sketch" and record["passes"] == 1
    with pytest.raises(logitshift.InputError, match="method = 'exact'"):
        fit.confint(method="exact")
    with pytest.raises(logitshift.InputError, match="level"):
        fit.confint(1.5)
    narrow, wide = fit.confint(0.5), fit.confint(0.99)
    assert wide.slope[0] < narrow.slope[0] < fit.slope < narrow.slope[1] < wide.slope[1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert "slope=" in repr(fit)


@pytest.mark.parametrize("power", [-60, 0, 600, 1000])
def test_weights_at_any_scale_move_only_the_covariance(power):
    """Multiplying every weight by 2**power leaves the line as it is and divides the
    covariance by 2**power, at both ends of the double range."""
    y, f, w = dataset("synthetic", True)
    base = logitshift.fit_slope(y, f, w)
    scaled = logitshift.fit_slope(y, f, np.ldexp(w, power))
    assert scaled.converged
    assert scaled.intercept == pytest.approx(base.intercept, rel=1e-12)
    assert scaled.slope == pytest.approx(base.slope, rel=1e-12)
    assert scaled.loss == pytest.approx(base.loss, rel=1e-12)
    assert scaled.covariance == pytest.approx(np.ldexp(base.covariance, -power), rel=1e-10)
    # The weights count rows: 2**power times as many rows narrow the interval by 2**(power/2).
    low, high = scaled.confint().slope
    assert low <= scaled.slope <= high
    half_width = 0.5 * (high - low)
    base_low, base_high = base.confint().slope
    if power <= 0:
        assert half_width > 0.5 * (base_high - base_low) * 2.0 ** (-power / 2) * 0.5
    else:
        assert half_width <= 0.5 * (base_high - base_low)
    exact = fit_exactly(y, f, np.ldexp(w, power))
    assert exact.slope == pytest.approx(base.slope, rel=1e-12)


def fit_exactly(y, f, w):
    from logitshift._estimators.slope import fit_slope_curve
    return fit_slope_curve(ArraySlopeCurve(y, f, w), method="exact")


def test_offsets_beyond_the_cell_budget_are_fitted_exactly_in_memory():
    """Offsets too spread to sketch: fit_slope makes exact passes, as fit does; a stream,
    which cannot, says why."""
    rng = np.random.default_rng(10)
    f = rng.uniform(-1e6, 1e6, 200_000)
    y = (rng.random(f.size) < 1 / (1 + np.exp(-(0.2 + 3e-6 * f)))).astype(int)
    fit = logitshift.fit_slope(y, f)
    glm = sm.GLM(y, sm.add_constant(f), family=sm.families.Binomial()).fit(tol=1e-14)
    assert fit.method == "exact" and fit.converged
    assert fit.slope == pytest.approx(glm.params[1], rel=1e-9)
    with pytest.raises(logitshift.InputError, match="offset spans"):
        logitshift.validate(y, f)
    with pytest.raises(logitshift.InputError, match="offset spans"):
        logitshift.Sketch().update(y, f)
