"""The calibration report (``validate``, ``Sketch.validate``) against R's rms::val.prob,
Hmisc::somers2 and glm deviances, scikit-learn's roc_auc_score and the numpy reference."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import mpmath
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

import logitshift
from logitshift._core import kernels as _kernels
from logitshift._estimators.report import c_statistic

DATA = Path(__file__).parent / "data" / "valprob"


def reference(dataset: str, weighted: bool) -> pd.Series:
    table = pd.read_csv(DATA / "valprob_reference.csv")
    rows = table[(table.dataset == dataset) & (table.weighted == weighted)]
    return rows.set_index("name").value.astype(float)


def dataset(name: str):
    frame = pd.read_csv(DATA / f"{name}.csv")
    return frame.y.to_numpy(), frame.lp.to_numpy(), (frame.w.to_numpy() if "w" in frame
                                                     else None)


@pytest.mark.parametrize("name", ["synthetic", "breast_cancer"])
def test_matches_val_prob_and_somers2(name):
    y, f, _ = dataset(name)
    r = reference(name, False)
    report = logitshift.validate(y, f)
    assert report.brier == pytest.approx(r["val.prob.Brier"], rel=1e-12)
    assert report.brier == pytest.approx(r["brier"], rel=1e-12)
    assert report.spiegelhalter_z == pytest.approx(r["val.prob.S:z"], rel=1e-9)
    assert report.spiegelhalter_pvalue == pytest.approx(r["val.prob.S:p"], rel=1e-9)
    # The exact tie-aware C; val.prob's printed "C (ROC)" comes from its own rank
    # computation and differs by about 1e-5.
    assert report.c_statistic == r["somers2.C"] and report.c_statistic_bound == 0.0
    assert report.c_statistic == pytest.approx(r["val.prob.C (ROC)"], abs=5e-5)
    assert report.to_dict()["dxy"] == pytest.approx(r["val.prob.Dxy"], abs=1e-4)
    # val.prob's two-parameter Intercept and Slope are lrm's, at a looser tolerance.
    assert report.slope.intercept == pytest.approx(r["val.prob.Intercept"], rel=1e-6)
    assert report.slope.slope == pytest.approx(r["val.prob.Slope"], rel=1e-6)
    assert report.slope.intercept == pytest.approx(r["slope.intercept"], rel=1e-9)
    assert report.shift.shift == pytest.approx(r["large.shift"], rel=1e-9)
    assert report.log_loss * y.size * 2 == pytest.approx(r["deviance_at_identity"], rel=1e-12)


@pytest.mark.parametrize("name", ["synthetic", "breast_cancer"])
def test_matches_val_prob_r2_d_u_q(name):
    y, f, _ = dataset(name)
    r = reference(name, False)
    report = logitshift.validate(y, f)
    assert report.r2 == pytest.approx(r["val.prob.R2"], rel=1e-12)
    assert report.discrimination == pytest.approx(r["val.prob.D"], rel=1e-12)
    assert report.discrimination_chi2 == pytest.approx(r["val.prob.D:Chi-sq"], rel=1e-12)
    assert report.unreliability == pytest.approx(r["val.prob.U"], rel=1e-12)
    assert report.miller.joint == pytest.approx(r["val.prob.U:Chi-sq"], rel=1e-12)
    # R's U:p is 1 - pchisq(), which keeps only ~1e-7 of a p-value of 2.5e-10.
    assert report.unreliability_pvalue == pytest.approx(r["val.prob.U:p"], rel=1e-6)
    assert report.quality == pytest.approx(r["val.prob.Q"], rel=1e-12)
    # The same from a stream (the sums from the sketch's tables).
    streamed = logitshift.Sketch().update(y, f).validate()
    for name in ("r2", "discrimination", "unreliability", "quality"):
        assert getattr(streamed, name) == pytest.approx(getattr(report, name), rel=1e-12)


@pytest.mark.parametrize("name, weighted", [("synthetic", False), ("synthetic", True),
                                            ("breast_cancer", False)])
def test_millers_tests_are_the_glm_deviance_differences(name, weighted):
    y, f, w = dataset(name)
    r = reference(name, weighted)
    report = logitshift.validate(y, f, w if weighted else None)
    miller = report.miller
    assert miller.joint == pytest.approx(r["miller.joint"], rel=1e-9)
    assert miller.intercept == pytest.approx(r["miller.intercept"], rel=1e-9)
    assert miller.slope == pytest.approx(r["miller.slope"], rel=1e-9)
    assert miller.joint_pvalue == pytest.approx(r["miller.joint_p"], rel=1e-9)
    assert miller.intercept_pvalue == pytest.approx(r["miller.intercept_p"], rel=1e-9)
    assert miller.slope_pvalue == pytest.approx(r["miller.slope_p"], rel=1e-9)
    assert miller.intercept == pytest.approx(report.shift.lr_test().statistic, rel=1e-12)


def test_a_sketch_gives_the_same_report_and_bounds_its_c_statistic():
    y, f, w = dataset("synthetic")
    whole = logitshift.validate(y, f, w)
    sketch = logitshift.Sketch()
    for start in range(0, y.size, 700):
        sketch.update(y[start:start + 700], f[start:start + 700], w[start:start + 700])
    streamed = logitshift.Sketch.from_bytes(sketch.to_bytes()).validate()
    for name in ("brier", "brier_scaled", "spiegelhalter_z", "log_loss", "ici", "e50", "e90"):
        assert getattr(streamed, name) == pytest.approx(getattr(whole, name), rel=1e-12)
    assert streamed.miller == pytest.approx(whole.miller, rel=1e-9)
    assert 0 < streamed.c_statistic_bound < 0.01
    assert abs(streamed.c_statistic - whole.c_statistic) <= streamed.c_statistic_bound


@pytest.mark.parametrize("spread", [0.05, 0.5, 2.0])
def test_the_histogram_bounds_the_c_statistic_below_1e4(spread):
    # From cells the bound is ~3e-3; sub-bins of 2**-12 cut it about 256-fold: below 1e-4
    # for scores of sd 1/3 logit or more (it is about 3e-5 / sd). The error lies within it.
    rng = np.random.default_rng(4)
    f = rng.normal(-1.0, spread, 200_000)
    y = (rng.random(f.size) < 1 / (1 + np.exp(-(f + 1.0) / spread))).astype(np.int8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the steep slope of sd 0.05 is the sketch's limit
        exact = logitshift.validate(y, f).c_statistic
        cells = logitshift.Sketch().update(y, f).validate()
    sketch = sum(logitshift.Sketch(histogram=True).update(y[i::4], f[i::4]) for i in range(4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = logitshift.Sketch.from_bytes(sketch.to_bytes()).validate()
    assert 0 < report.c_statistic_bound <= (1e-4 if spread >= 0.5 else 1e-3)
    assert report.c_statistic_bound < cells.c_statistic_bound / 100
    assert abs(report.c_statistic - exact) <= report.c_statistic_bound
    assert report.brier == pytest.approx(cells.brier, rel=1e-14)


def test_polynomial_sums_match_the_rows_in_both_tails():
    rng = np.random.default_rng(3)
    f = np.concatenate([rng.normal(0, 3, 30_000), rng.uniform(25, 40, 200),
                        rng.uniform(-40, -25, 200)])
    y = rng.random(f.size)  # soft labels
    w = rng.integers(0, 4, f.size).astype(float)
    sketch = logitshift.Sketch().update(y, f, w)
    p, q = 1 / (1 + np.exp(-f)), 1 / (1 + np.exp(f))
    # (1 - p)^2 for label 1 is ~1e-30 in the right tail: it must keep its relative accuracy.
    right = f > 25
    tail = logitshift.Sketch().update(y[right], f[right], w[right])
    negative, positive = tail.polynomial_sums([0.0, 0.0, 1.0], [1.0, -2.0, 1.0])
    assert positive == pytest.approx(np.sum((w * y * q * q)[right]), rel=1e-13)
    for poly_negative, poly_positive, expected in [
        ([0.0, 0.0, 1.0], [1.0, -2.0, 1.0], (np.sum(w * (1 - y) * p * p),
                                             np.sum(w * y * q * q))),
        ([0.0, 1.0, -5.0, 8.0, -4.0], [0.0, 1.0, -5.0, 8.0, -4.0],
         (np.sum(w * (1 - y) * (q - p) ** 2 * p * q), np.sum(w * y * (q - p) ** 2 * p * q))),
        ([1.0], [0.0, 1.0], (np.sum(w * (1 - y)), np.sum(w * y * p))),
    ]:
        sums = sketch.polynomial_sums(poly_negative, poly_positive)
        assert sums == pytest.approx(expected, rel=1e-13)


@pytest.mark.parametrize("z", [-30.0, -2.5, -0.1, 0.0, 0.7, 3.0, 30.0])
def test_polynomial_derivatives_against_mpmath(z):
    polynomial = np.array([0.3, -1.0, 2.0, 0.5])
    mpmath.mp.dps = 40

    def g(x):
        s = 1 / (1 + mpmath.exp(-x))
        return sum(mpmath.mpf(c) * s ** k for k, c in enumerate(polynomial))

    table = _kernels.polynomial_derivatives(polynomial, 6)
    side = 1 if z > 0 else 0
    small = 1 / (1 + math.exp(abs(z)))  # σ(-|z|)
    for j in range(6):
        value = np.polynomial.polynomial.polyval(small, table[side, j])
        truth = float(mpmath.diff(g, mpmath.mpf(z), j))
        assert value == pytest.approx(truth, rel=1e-12, abs=1e-14)


def test_c_statistic_matches_scikit_learn_with_ties_and_weights():
    rng = np.random.default_rng(4)
    f = np.round(rng.normal(0, 1, 3000), 1)  # many ties
    y = (rng.random(f.size) < 1 / (1 + np.exp(-f))).astype(int)
    w = rng.integers(1, 5, f.size).astype(float)
    assert c_statistic(y, f, None) == pytest.approx(roc_auc_score(y, f), rel=1e-14)
    assert c_statistic(y, f, w) == pytest.approx(roc_auc_score(y, f, sample_weight=w),
                                                 rel=1e-14)
    # An infinite score ranks like the largest finite one would.
    assert c_statistic(np.append(y, 1), np.append(f, np.inf), None) == pytest.approx(
        roc_auc_score(np.append(y, 1), np.append(f, 1e9)), rel=1e-14)
    assert c_statistic(1 - y, f, None) == pytest.approx(1 - roc_auc_score(y, f), rel=1e-13)


def test_probabilities_give_the_report_of_their_log_odds():
    y, f, _ = dataset("breast_cancer")
    from_scores = logitshift.validate(y, f)
    from_probabilities = logitshift.validate(y, 1 / (1 + np.exp(-f)), offset_is="probability")
    assert from_probabilities.brier == pytest.approx(from_scores.brier, rel=1e-12)
    assert from_probabilities.slope.slope == pytest.approx(from_scores.slope.slope, rel=1e-9)
    assert from_probabilities.c_statistic == from_scores.c_statistic
    certain = logitshift.validate([0, 1, 0, 1, 1], [0.0, 1.0, 0.5, 0.6, 0.4],
                                  offset_is="probability")
    assert certain.brier == pytest.approx(np.mean(np.square(
        np.array([0, 1, 0, 1, 1]) - [0.0, 1.0, 0.5, 0.6, 0.4])), rel=1e-12)
    with pytest.raises(logitshift.InputError, match=r"offset\[1\] = inf with label y\[1\] = 0"):
        logitshift.validate([0, 0, 1], [0.2, 1.0, 0.5], offset_is="probability")
    with pytest.raises(logitshift.InputError, match=r"probability offset\[2\] = 1.5"):
        logitshift.validate([0, 0, 1], [0.2, 0.1, 1.5], offset_is="probability")
    with pytest.raises(logitshift.InputError, match="offset_is = 'odds'"):
        logitshift.validate([0, 1], [0.2, 0.1], offset_is="odds")


def test_curve_and_its_summaries():
    y, f, _ = dataset("synthetic")
    report = logitshift.validate(y, f, bins=8)
    curve = report.curve
    assert curve.weight.sum() == pytest.approx(y.size)
    assert 6 <= curve.weight.size <= 8
    assert np.all(np.diff(curve.predicted) > 0)
    assert np.all((curve.low <= curve.observed) & (curve.observed <= curve.high))
    error = np.abs(curve.observed - curve.predicted)
    assert report.ici == pytest.approx(np.average(error, weights=curve.weight))
    assert report.e50 in error and report.e90 in error and report.e50 <= report.e90
    assert np.average(curve.predicted, weights=curve.weight) == pytest.approx(
        np.mean(1 / (1 + np.exp(-f))), rel=1e-12)
    text = repr(report)
    for name in ("C (ROC)", "Brier", "Intercept", "Slope", "S:z", "S:p", "E90"):
        assert name in text
    record = report.to_dict()
    assert record["spiegelhalter_z"] == report.spiegelhalter_z
    assert record["calibration_in_the_large"] == report.shift.shift


@pytest.mark.parametrize("power", [-1070, 1000])
def test_weights_at_any_scale_give_the_same_report(power):
    y, f, w = dataset("synthetic")
    base = logitshift.validate(y, f, w)
    scaled = logitshift.validate(y, f, np.ldexp(w, power))
    for name in ("brier", "brier_scaled", "log_loss", "c_statistic", "ici", "e90"):
        assert getattr(scaled, name) == pytest.approx(getattr(base, name), rel=1e-12)
    # Frequency weights count rows: z grows with their square root.
    assert scaled.spiegelhalter_z == pytest.approx(base.spiegelhalter_z * 2.0 ** (power / 2),
                                                   rel=1e-12)
    streamed = logitshift.Sketch().update(y, f, np.ldexp(w, power)).validate()
    assert streamed.brier == pytest.approx(base.brier, rel=1e-12)
    if power > 0:  # (below, the statistic itself is subnormal)
        assert scaled.miller.joint == pytest.approx(np.ldexp(base.miller.joint, power),
                                                    rel=1e-9)


@pytest.mark.parametrize("kind", ["int8", "bool", "uint16"])
def test_the_counting_c_statistic_of_0_1_labels_is_the_weighted_one(kind):
    # 0/1 labels without weights take a sort per class and an exact count of pairs; ties,
    # infinite offsets and one-row classes included, it is scikit-learn's and the weighted
    # path's (unit weights) to the last bit or two.
    rng = np.random.default_rng(12)
    for n in (2, 7, 1000, 50_000):
        f = np.round(rng.normal(0, 2, n), 1)  # many ties
        y = (rng.random(n) < 1 / (1 + np.exp(-f))).astype(kind)
        y[0], y[-1] = 1, 0
        f[0], f[-1] = np.inf, -np.inf
        fast = c_statistic(y, f, None)
        # scikit-learn refuses infinities; ±1e300 order the same.
        assert fast == pytest.approx(roc_auc_score(y, np.clip(f, -1e300, 1e300)), rel=1e-15,
                                     abs=0)
        assert fast == pytest.approx(c_statistic(y, f, np.ones(n)), rel=1e-15, abs=0)
    assert math.isnan(c_statistic(np.zeros(5, dtype=np.int8), np.arange(5.0), None))
