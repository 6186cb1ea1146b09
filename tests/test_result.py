"""ShiftFit's statistics against statsmodels and against their definitions."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats

import logitshift


def recalibration_data(weighted: bool):
    rng = np.random.default_rng(11)
    n = 3000
    offsets = rng.normal(-1, 1.5, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-(offsets + 0.4)))).astype(float)
    weights = rng.integers(1, 4, n).astype(float) if weighted else None
    return labels, offsets, weights


def statsmodels_fit(labels, offsets, weights):
    model = sm.GLM(labels, np.ones((labels.size, 1)), family=sm.families.Binomial(),
                   offset=offsets, freq_weights=weights)
    return model, model.fit(tol=1e-14)


def total_loss(labels, offsets, weights, shift):
    return float(np.sum(logitshift.loss(labels, offsets + shift, weights)))


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "freq_weights"])
def test_se_wald_and_lr_match_statsmodels_glm(weighted):
    labels, offsets, weights = recalibration_data(weighted)
    result = logitshift.fit(labels, offsets, weights)
    model, reference = statsmodels_fit(labels, offsets, weights)

    assert result.shift == pytest.approx(reference.params[0], rel=1e-10)
    assert result.se == pytest.approx(reference.bse[0], rel=1e-8)
    low, high = reference.conf_int(alpha=0.05)[0]
    assert result.confint(method="wald") == pytest.approx((low, high), rel=1e-8)
    statistic = 2 * (reference.llf - model.loglike(np.array([0.0])))
    assert result.lr_test().statistic == pytest.approx(statistic, rel=1e-9)
    assert result.lr_test().pvalue == pytest.approx(stats.chi2.sf(statistic, 1), rel=1e-7)
    # The mean loss is the negative mean log-likelihood.
    assert result.loss == pytest.approx(-reference.llf / result.weight_sum, rel=1e-12)


@pytest.mark.parametrize("level", [0.5, 0.9, 0.95, 0.999])
def test_profile_interval_is_where_the_deviance_rises_by_the_chi2_quantile(level):
    labels, offsets, weights = recalibration_data(weighted=True)
    result = logitshift.fit(labels, offsets, weights)
    low, high = result.confint(level)
    minimum = total_loss(labels, offsets, weights, result.shift)
    quantile = stats.chi2.ppf(level, 1)
    for bound in (low, high):
        rise = 2 * (total_loss(labels, offsets, weights, bound) - minimum)
        assert rise == pytest.approx(quantile, rel=1e-8)
    assert low < result.shift < high
    # With this much data the profile and Wald intervals nearly agree.
    wald = result.confint(level, method="wald")
    assert low == pytest.approx(wald[0], abs=0.05 * result.se)
    assert high == pytest.approx(wald[1], abs=0.05 * result.se)


def test_profile_interval_is_asymmetric_on_small_skewed_data():
    labels = np.array([1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    offsets = np.linspace(-1, 1, 10)
    result = logitshift.fit(labels, offsets)
    low, high = result.confint()
    # Few positives: the likelihood falls off slower towards -inf.
    assert result.shift - low > high - result.shift


def test_profile_interval_of_degenerate_labels_is_one_sided():
    labels = np.zeros(40)
    offsets = np.linspace(-1, 1, 40)
    with pytest.warns(RuntimeWarning):
        result = logitshift.fit(labels, offsets)
    low, high = result.confint(0.95)
    assert low == -math.inf and math.isfinite(high)
    # The loss tends to 0 as the shift goes to -inf; the bound is where it reaches q/2.
    assert 2 * total_loss(labels, offsets, None, high) == pytest.approx(
        stats.chi2.ppf(0.95, 1), rel=1e-9)
    assert result.confint(method="wald") == (-math.inf, math.inf)
    statistic = 2 * total_loss(labels, offsets, None, 0.0)
    assert result.lr_test().statistic == pytest.approx(statistic, rel=1e-12)


def test_observed_expected_at_shift_zero():
    labels, offsets, weights = recalibration_data(weighted=True)
    result = logitshift.fit(labels, offsets, weights)
    oe = result.observed_expected
    observed = np.sum(weights * labels)
    expected = np.sum(weights * logitshift.sigmoid(offsets))
    assert oe.observed == pytest.approx(observed, rel=1e-14)
    assert oe.expected == pytest.approx(expected, rel=1e-12)
    assert oe.ratio == pytest.approx(observed / expected, rel=1e-12)
    spread = 1.959963984540054 * math.sqrt((1 - observed / weights.sum()) / observed)
    assert oe.low == pytest.approx(oe.ratio * math.exp(-spread), rel=1e-12)
    assert oe.high == pytest.approx(oe.ratio * math.exp(spread), rel=1e-12)
    # The data were drawn 0.4 logits above the offsets: more observed than expected.
    assert oe.low > 1


def test_to_dict_holds_plain_values_and_repr_is_readable():
    labels, offsets, weights = recalibration_data(weighted=False)
    result = logitshift.fit(labels, offsets)
    values = result.to_dict()
    for key in ("shift", "se", "loss", "loss_at_zero", "iterations", "n_rows", "status",
                "ci_low", "ci_high", "lr_statistic", "lr_pvalue", "observed_expected"):
        assert key in values
    assert values["shift"] == result.shift
    assert (values["ci_low"], values["ci_high"]) == result.confint()
    assert all(isinstance(v, (int, float, str, bool)) for v in values.values())
    text = repr(result)
    assert text.startswith("ShiftFit(shift=") and repr(result.shift) in text


def test_result_is_immutable():
    result = logitshift.fit(np.array([0, 1, 1]), np.array([0.1, 0.2, -0.4]))
    with pytest.raises(AttributeError):
        result.shift = 0.0  # type: ignore[misc]


@pytest.mark.parametrize("level", [0.0, 1.0, -0.5, 2.0, float("nan")])
def test_bad_levels_are_input_errors(level):
    result = logitshift.fit(np.array([0, 1, 1]), np.array([0.1, 0.2, -0.4]))
    with pytest.raises(logitshift.InputError, match="level"):
        result.confint(level)


def test_unknown_interval_method_is_an_input_error():
    result = logitshift.fit(np.array([0, 1, 1]), np.array([0.1, 0.2, -0.4]))
    with pytest.raises(logitshift.InputError, match="method = 'bootstrap'"):
        result.confint(method="bootstrap")


def test_loss_fields_are_weighted_means():
    labels, offsets, weights = recalibration_data(weighted=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = logitshift.fit(labels, offsets, weights)
    assert result.loss_at_zero == pytest.approx(
        total_loss(labels, offsets, weights, 0.0) / weights.sum(), rel=1e-13)
    assert result.loss == pytest.approx(
        total_loss(labels, offsets, weights, result.shift) / weights.sum(), rel=1e-13)
    assert result.loss < result.loss_at_zero
    assert result.weight_sum == weights.sum() and result.n_rows == labels.size
    assert result.positives == np.sum(weights * labels)


@pytest.mark.parametrize(
    "options",
    [{}, {"method": "newton"}, {"pseudo_count": 3.0}, {"no_offset": True}],
    ids=["sketch", "newton", "pseudo-count", "closed-form"],
)
def test_loss_at_is_the_mean_loss_of_the_arrays(options):
    labels, offsets, weights = recalibration_data(weighted=True)
    options = dict(options)
    if options.pop("no_offset", False):
        offsets = np.zeros_like(offsets)
        result = logitshift.fit(labels, None, weights, **options)
    else:
        result = logitshift.fit(labels, offsets, weights, **options)
    # The same sums as the fields, so exactly equal; the pseudo-rows are in neither.
    assert result.loss_at(result.shift) == result.loss
    assert result.loss_at(0.0) == result.loss_at_zero
    for shift in (-3.0, -0.4, 0.25, 2.0):
        assert result.loss_at(shift) == pytest.approx(
            total_loss(labels, offsets, weights, shift) / weights.sum(), rel=1e-13)


def test_loss_at_infinite_shifts_and_bad_shifts():
    labels = np.zeros(40)
    offsets = np.linspace(-1, 1, 40)
    with pytest.warns(RuntimeWarning):
        result = logitshift.fit(labels, offsets)
    assert result.loss_at(-math.inf) == 0.0 == result.loss
    assert result.loss_at(math.inf) == math.inf
    assert result.loss_at(1.5) == pytest.approx(
        total_loss(labels, offsets, None, 1.5) / 40, rel=1e-13)
    for bad in (math.nan, "left", None):
        with pytest.raises(logitshift.InputError, match="shift"):
            result.loss_at(bad)


# -- intervals at every level -------------------------------------------------------------------

EXTREME_LEVELS = [1e-300, 1e-100, 1e-16, 1e-12, 1e-8, 1e-6, 1e-4, 1e-2, 0.1, 0.5, 0.9, 0.999,
                  1 - 1e-10, 0.9999999999999999]


def _mp_two_sided_quantile(level, mp):
    return mp.sqrt(2) * mp.erfinv(mp.mpf(level))


@pytest.mark.parametrize("level", EXTREME_LEVELS, ids=lambda level: f"{level:.17g}")
def test_normal_quantile_matches_mpmath_at_every_level(level):
    import mpmath as mp

    from logitshift._estimators.result import normal_quantile

    with mp.workdps(40):
        reference = float(_mp_two_sided_quantile(level, mp))
    assert normal_quantile(level) == pytest.approx(reference, rel=4e-16)


@pytest.fixture(scope="module")
def small_fit_and_mpmath():
    """A fit of 30 rows, and its loss at 80 digits, for the profile intervals' reference."""
    import mpmath as mp

    rng = np.random.default_rng(3)
    offsets = rng.normal(0, 1.5, 30)
    labels = (rng.random(30) < 1 / (1 + np.exp(-offsets))).astype(float)
    rows = [(mp.mpf(float(label)), mp.mpf(float(offset)))
            for label, offset in zip(labels, offsets)]

    def loss(shift):
        return mp.fsum((1 - y) * mp.log1p(mp.exp(f + shift)) + y * mp.log1p(mp.exp(-(f + shift)))
                       for y, f in rows)

    def gradient(shift):
        return mp.fsum(1 / (1 + mp.exp(-(f + shift))) - y for y, f in rows)

    return logitshift.fit(labels, offsets), loss, gradient, mp


@pytest.mark.parametrize("level", EXTREME_LEVELS, ids=lambda level: f"{level:.17g}")
def test_profile_and_wald_intervals_match_mpmath_at_every_level(small_fit_and_mpmath, level):
    result, loss, gradient, mp = small_fit_and_mpmath
    with mp.workdps(80):
        minimum = mp.findroot(gradient, result.shift)
        z = _mp_two_sided_quantile(level, mp)
        rise = z * z / 2
        curvature = mp.diff(loss, minimum, 2)
        half = z / mp.sqrt(curvature)
        lowest = loss(minimum)
        ends = [mp.findroot(lambda s: loss(s) - lowest - rise, minimum + side * half)
                for side in (-1, 1)]
        wald_half = float(z * result.se)
    low, high = result.confint(level)
    # Each end to 1e-12 of the half-width, or to 2 ulps of the shift where the whole interval
    # is narrower than rounding.
    tolerance = 1e-12 * float(half) + 2 * np.spacing(abs(result.shift))
    assert low <= result.shift <= high
    assert abs(low - float(ends[0])) <= tolerance
    assert abs(high - float(ends[1])) <= tolerance
    wald_low, wald_high = result.confint(level, method="wald")
    assert wald_low <= result.shift <= wald_high
    assert wald_low == pytest.approx(result.shift - wald_half, rel=0, abs=tolerance)
    assert wald_high == pytest.approx(result.shift + wald_half, rel=0, abs=tolerance)


@pytest.mark.parametrize("options", [{}, {"pseudo_count": 0.5}, {"method": "newton"}],
                         ids=["sketch", "pseudo_count", "newton"])
def test_intervals_are_ordered_and_nested_as_the_level_rises(options):
    labels, offsets, weights = recalibration_data(weighted=True)
    result = logitshift.fit(labels, offsets, weights, **options)
    levels = [1e-300, 1e-16, 1e-12, 1e-9, 1e-6, 1e-3, 0.05, 0.5, 0.95, 1 - 1e-9,
              0.9999999999999999]
    for method in ("profile", "wald"):
        intervals = [result.confint(level, method) for level in levels]
        for (low, high) in intervals:
            assert math.isfinite(low) and math.isfinite(high)
            assert low <= result.shift <= high
        lows, highs = zip(*intervals)
        assert all(np.diff(lows) <= 0) and all(np.diff(highs) >= 0)
        assert lows[-1] < lows[0] and highs[-1] > highs[0]
    # The observed/expected interval uses the same quantile, and nests too.
    ratios = [result.observed_expected_at(level) for level in levels]
    assert all(np.diff([ratio.low for ratio in ratios]) <= 0)
    assert all(np.diff([ratio.high for ratio in ratios]) >= 0)
    assert 0 < ratios[-1].low < ratios[0].low and math.isfinite(ratios[-1].high)


@pytest.mark.parametrize("level", [1e-300, 1e-16, 1e-8, 0.5, 0.9999999999999999],
                         ids=lambda level: f"{level:.17g}")
def test_degenerate_labels_have_their_finite_end_at_every_level(level):
    import mpmath as mp

    offsets = np.linspace(-1, 1, 40)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = logitshift.fit(np.zeros(40), offsets)
    low, high = result.confint(level)
    with mp.workdps(60):
        rise = mp.log(_mp_two_sided_quantile(level, mp) ** 2 / 2)
        end = mp.findroot(lambda s: mp.log(mp.fsum(mp.log1p(mp.exp(mp.mpf(f) + s))
                                                    for f in offsets)) - rise, high)
    assert low == -math.inf
    assert high == pytest.approx(float(end), rel=1e-14, abs=1e-14)
