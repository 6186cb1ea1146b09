"""The shift against 40-digit mpmath references, on data built to be hard."""

from __future__ import annotations

import math
import warnings

import mpmath as mp
import numpy as np
import pytest

import logitshift
import reference
from logitshift._estimators.shift import fit_curve
from logitshift._estimators.solve import ArrayCurve

# The seed notebook's example, scenario B: DESIGN.md's 50-digit reference.
SEED_SHIFT_B = mp.mpf("-2.4810844113094772659")


def seed_example():
    np.random.seed(0)
    labels = np.random.binomial(1, 0.1, 1000)
    offsets = np.random.normal(0, 1, 1000)
    return labels, offsets


def assert_close_to_reference(shift: float, exact: mp.mpf, rel: float = 1e-13) -> None:
    error = abs(mp.mpf(shift) - exact)
    assert error <= rel * max(1, abs(exact)), f"shift {shift!r} is {float(error):.3g} off {exact}"


def spread_offsets():
    rng = np.random.default_rng(1)
    offsets = rng.uniform(-1000, 1000, 2000)
    labels = rng.random(2000) < 1 / (1 + np.exp(-np.clip(offsets - 1.3, -500, 500)))
    return labels, offsets, None


def one_positive_in_a_million():
    # A million rows whose offsets repeat, so that the reference stays cheap.
    offsets = np.tile(np.linspace(-3.0, 3.0, 1000), 1000)
    labels = np.zeros(offsets.size, dtype=np.int8)
    labels[123_457] = 1
    return labels, offsets, None


def float32_offsets():
    rng = np.random.default_rng(2)
    offsets = rng.normal(0, 1.5, 3000).astype(np.float32)
    labels = (rng.random(3000) < 0.3).astype(np.float32)
    return labels, offsets, None


def soft_labels_and_weights():
    rng = np.random.default_rng(3)
    offsets = rng.normal(1, 3, 1500)
    labels = rng.beta(0.3, 0.7, 1500)
    weights = rng.exponential(1.0, 1500) * (rng.random(1500) > 0.1)
    return labels, offsets, weights


def repeated_large_sample():
    # 2e6 rows of 3000 distinct offsets: long sums, cheap reference.
    rng = np.random.default_rng(4)
    levels = rng.normal(0, 2, 3000)
    offsets = levels[rng.integers(0, 3000, 2_000_000)]
    labels = (rng.random(offsets.size) < 1 / (1 + np.exp(-(offsets - 2)))).astype(np.int8)
    return labels, offsets, None


def huge_offsets():
    # Offsets of order 1e4, so nearly every row is certain and right; the few rows near the
    # boundary set the shift.
    rng = np.random.default_rng(5)
    offsets = rng.normal(0, 1, 1000) * 1e4
    labels = rng.random(1000) < 1 / (1 + np.exp(-np.clip(offsets + 0.5, -500, 500)))
    return labels, offsets, None


def rare_positives_far_out():
    # Near-certain predictions: the gradient is a sum of tiny probabilities.
    rng = np.random.default_rng(6)
    offsets = rng.normal(-25, 3, 5000)
    labels = np.zeros(5000)
    labels[[17, 4000]] = 1
    return labels, offsets, None


CASES = [
    spread_offsets,
    one_positive_in_a_million,
    float32_offsets,
    soft_labels_and_weights,
    repeated_large_sample,
    huge_offsets,
    rare_positives_far_out,
]


def fit_with(method, labels, offsets=None, weights=None):
    """``fit`` by a public method, or by the numpy reference curve."""
    if method == "reference":
        curve = ArrayCurve(np.asarray(labels), 0.0 if offsets is None else offsets, weights)
        return fit_curve(curve, method="newton")
    return logitshift.fit(labels, offsets, weights, method=method)


METHODS = ["auto", "newton", "reference"]


@pytest.fixture(scope="module")
def references():
    """40-digit references, computed once per case."""
    return {case.__name__: reference.shift(*case()) for case in CASES}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", CASES, ids=[case.__name__ for case in CASES])
def test_shift_matches_40_digit_reference(case, method, references):
    labels, offsets, weights = case()
    result = fit_with(method, labels, offsets, weights)
    assert result.converged and result.status == "converged"
    assert_close_to_reference(result.shift, references[case.__name__])


@pytest.mark.parametrize("method", METHODS)
def test_seed_example_matches_design_reference(method):
    labels, offsets = seed_example()
    result = fit_with(method, labels, offsets)
    assert result.shift == -2.481084411309477
    assert_close_to_reference(result.shift, SEED_SHIFT_B, rel=2e-16)
    assert_close_to_reference(result.shift, reference.shift(labels, offsets), rel=2e-16)
    assert result.iterations <= 8


def test_seed_example_scenario_a_is_the_seed_number():
    labels, _ = seed_example()
    result = logitshift.fit(labels)
    assert result.shift == -2.1113349054557897
    assert result.shift == math.log(108 / 892)
    assert result.status == "closed_form" and result.iterations == 0


@pytest.mark.parametrize("offset", [0.0, 2.5, -40.0])
def test_constant_offset_is_closed_form(offset):
    labels = np.array([1, 0, 0, 1, 0, 0, 0])
    weights = np.array([1.0, 2.0, 0.5, 3.0, 1.0, 0.0, 4.0])
    result = logitshift.fit(labels, offset, weights)
    assert result.status == "closed_form"
    expected = math.log(4.0 / 7.5) - offset
    assert result.shift == pytest.approx(expected, rel=1e-15, abs=1e-15)
    # A constant array is the same problem.
    array_result = logitshift.fit(labels, np.full(7, offset), weights)
    assert array_result.shift == pytest.approx(expected, rel=1e-15, abs=1e-15)


def test_closed_form_matches_reference_with_soft_labels():
    rng = np.random.default_rng(7)
    labels = rng.random(500)
    weights = rng.integers(0, 4, 500)
    assert_close_to_reference(logitshift.fit(labels, weight=weights).shift,
                              reference.shift(labels, 0.0, weights), rel=1e-15)


@pytest.mark.parametrize("which, shift", [(0, -math.inf), (1, math.inf)])
def test_degenerate_labels_give_infinite_shift(which, shift):
    labels = np.full(20, which)
    offsets = np.linspace(-2, 2, 20)
    with pytest.warns(RuntimeWarning, match=f"every label is {which}"):
        result = logitshift.fit(labels, offsets)
    assert result.shift == shift
    assert result.status == ("all_negative" if which == 0 else "all_positive")
    assert result.converged
    assert result.se == math.inf


def test_pseudo_count_closed_form():
    labels = np.zeros(10)
    labels[:3] = 1
    result = logitshift.fit(labels, pseudo_count=0.5)
    assert result.shift == pytest.approx(math.log(3.5 / 7.5), rel=1e-15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        degenerate = logitshift.fit(np.zeros(10), pseudo_count=2.0)
    assert degenerate.shift == pytest.approx(math.log(2.0 / 12.0), rel=1e-15)
    assert degenerate.status == "closed_form"


def test_pseudo_count_equals_two_rows_at_the_mean_offset():
    rng = np.random.default_rng(8)
    offsets = rng.normal(0, 1, 200)
    weights = rng.exponential(1, 200)
    labels = np.zeros(200)
    mean_offset = np.sum(weights * offsets) / np.sum(weights)
    augmented = logitshift.fit(
        np.append(labels, [1.0, 0.0]),
        np.append(offsets, [mean_offset, mean_offset]),
        np.append(weights, [0.7, 0.7]),
    )
    result = logitshift.fit(labels, offsets, weights, pseudo_count=0.7)
    assert result.status == "converged"
    assert result.shift == pytest.approx(augmented.shift, rel=1e-13)
    assert result.se == pytest.approx(augmented.se, rel=1e-12)
    # loss is over the data rows only.
    data_loss = np.sum(logitshift.loss(labels, offsets + result.shift, weights)) / weights.sum()
    assert result.loss == pytest.approx(data_loss, rel=1e-13)


def test_infinite_offsets_that_agree_with_their_labels_are_ignored():
    labels, offsets = seed_example()
    offsets = offsets.copy()
    labels = labels.copy()
    offsets[:5], labels[:5] = np.inf, 1
    offsets[5:9], labels[5:9] = -np.inf, 0
    result = logitshift.fit(labels, offsets)
    expected = reference.shift(labels[9:], offsets[9:])
    assert_close_to_reference(result.shift, expected)
    assert result.n_rows == 1000 and result.positives == labels.sum()
    # Their loss is zero, but they count in the mean.
    finite = logitshift.fit(labels[9:], offsets[9:])
    assert result.loss == pytest.approx(finite.loss * 991 / 1000, rel=1e-13)


def test_zero_weight_rows_are_ignored_even_with_infinite_offsets():
    labels, offsets = seed_example()
    weights = np.ones(1000)
    weights[:10] = 0
    offsets = offsets.copy()
    offsets[:10] = np.where(labels[:10] == 1, -np.inf, np.inf)  # impossible, but weightless
    result = logitshift.fit(labels, offsets, weights)
    assert_close_to_reference(result.shift, reference.shift(labels[10:], offsets[10:]))
    assert math.isfinite(result.loss)


def test_gradient_at_the_shift_is_zero_to_rounding():
    labels, offsets, weights = soft_labels_and_weights()
    result = logitshift.fit(labels, offsets, weights)
    z = offsets + result.shift
    per_row = weights * logitshift.gradient(labels, z)
    scale = np.sum(np.abs(per_row))
    assert abs(np.sum(per_row)) <= 1e-13 * scale


def test_not_converging_says_so():
    labels, offsets, _ = spread_offsets()
    with pytest.warns(RuntimeWarning, match="did not converge after 1 iterations"):
        result = logitshift.fit(labels, offsets, max_iter=1)
    assert not result.converged and result.status == "max_iter"
    assert result.iterations == 1


def test_loose_tolerance_still_lands_near_the_root():
    labels, offsets = seed_example()
    result = logitshift.fit(labels, offsets, tol=1e-6)
    assert result.converged
    assert abs(result.shift - float(SEED_SHIFT_B)) < 1e-6


def test_newton_needs_few_iterations_on_ordinary_data():
    labels, offsets, _ = repeated_large_sample()
    assert logitshift.fit(labels, offsets).iterations <= 8


@pytest.mark.parametrize("method", METHODS)
def test_newton_stops_once_the_step_is_below_the_spacing_of_doubles(method):
    # The last Newton step can round onto the bracket's end; it must end the iteration,
    # not send it bisecting across the bracket.
    rng = np.random.default_rng(12345)
    offsets = rng.normal(0, 2, 100_000)
    labels = (rng.random(offsets.size) < 1 / (1 + np.exp(-(offsets - 2)))).astype(np.int8)
    result = fit_with(method, labels, offsets)
    assert result.converged and result.iterations <= 6
