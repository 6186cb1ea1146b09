"""Hostile numerics: weights at the ends of the double range, and data separable by gaps far
wider than the ±745 logits where σ underflows. Each case is checked against an mpmath
reference (or an invariance that is exact in floating point)."""

from __future__ import annotations

import math
import warnings

import mpmath as mp
import numpy as np
import pytest

import logitshift
import reference
from logitshift import Sketch
from logitshift._shift import fit_curve
from logitshift._solve import ArrayCurve, Terms

METHODS = ["auto", "newton", "reference"]


def fit_with(method, labels, offsets=None, weights=None, **options):
    """``fit`` by a public method, or by the numpy reference curve."""
    if method == "reference":
        curve = ArrayCurve(np.asarray(labels), 0.0 if offsets is None else offsets, weights)
        return fit_curve(curve, method="newton", **options)
    return logitshift.fit(labels, offsets, weights, method=method, **options)


def assert_close(value: float, exact: mp.mpf, rel: float = 1e-13) -> None:
    error = abs(mp.mpf(value) - exact)
    assert error <= rel * max(1, abs(exact)), f"{value!r} is {float(error):.3g} off {exact}"


def ordinary_data(n=1000, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random(n) < 0.3).astype(np.int8)
    return labels, rng.normal(0, 1, n)


# -- 1. weights whose sum overflows or underflows -----------------------------------------

WEIGHTS = {
    "all_1e308": lambda n: np.full(n, 1e308),  # the sum overflows
    "all_1e306": lambda n: np.full(n, 1e306),
    "all_2**1023": lambda n: np.full(n, 2.0 ** 1023),
    "all_5e-324": lambda n: np.full(n, 5e-324),  # the smallest subnormal
    "all_1e-310": lambda n: np.full(n, 1e-310),
    "all_1e-300": lambda n: np.full(n, 1e-300),  # normal, but their sum is tiny
    "spread_1e300_and_1": lambda n: np.where(np.arange(n) % 2, 1e300, 3e299),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", list(WEIGHTS))
def test_equal_weights_at_any_scale_give_the_unweighted_shift(name, method):
    labels, offsets = ordinary_data()
    weights = WEIGHTS[name](labels.size)
    unit = weights / weights.max()  # the same problem in ordinary units
    exact = reference.shift(labels, offsets, unit)
    result = fit_with(method, labels, offsets, weights)
    assert result.converged and result.status == "converged"
    assert_close(result.shift, exact)
    plain = fit_with(method, labels, offsets, unit)
    # Means and ratios do not depend on the units of the weights.
    assert result.loss == pytest.approx(plain.loss, rel=1e-13)
    assert result.loss_at_zero == pytest.approx(plain.loss_at_zero, rel=1e-13)
    assert result.loss_at(0.3) == pytest.approx(plain.loss_at(0.3), rel=1e-13)
    assert result.observed_expected.ratio == pytest.approx(plain.observed_expected.ratio,
                                                           rel=1e-13)
    # Totals are in the user's units: inf only where the true sum exceeds the double range.
    true_weight = mp.fsum(mp.mpf(float(w)) for w in weights)
    if true_weight > mp.mpf(np.finfo(float).max):
        assert result.weight_sum == math.inf
    else:
        assert result.weight_sum == pytest.approx(float(true_weight), rel=1e-13)
    # The standard error scales as 1 / sqrt(the weights' unit).
    factor = mp.sqrt(mp.mpf(float(weights.max())))
    expected_se = mp.mpf(plain.se) / factor
    assert result.se == pytest.approx(float(expected_se), rel=1e-10)
    # The interval is ordered and holds the shift; LR statistic in the user's units.
    low, high = result.confint()
    assert low <= result.shift <= high
    statistic = mp.mpf(plain.lr_test().statistic) * mp.mpf(float(weights.max()))
    if statistic > mp.mpf(np.finfo(float).max):
        assert result.lr_test().statistic == math.inf
    else:
        assert result.lr_test().statistic == pytest.approx(float(statistic), rel=1e-9)


@pytest.mark.parametrize("method", ["auto", "newton"])
@pytest.mark.parametrize("light", [0, 1])
def test_weights_beyond_any_common_unit_are_refused(light, method):
    # Every positive (negative) lighter than 2**-1074 of the heaviest row: the fit gave
    # shift -inf, "all_negative", as if there were none.
    labels = np.full(1000, 1 - light)
    labels[:3] = light
    weights = np.full(1000, 1e308)
    weights[:3] = 5e-324
    with pytest.raises(logitshift.InputError, match="range of doubles") as error:
        logitshift.fit(labels, np.linspace(-1, 1, 1000), weights, method=method)
    assert error.value.argument == "weight" and error.value.value == 1e308


@pytest.mark.parametrize("method", ["auto", "newton"])
def test_two_rows_of_weight_1e308(method):
    # Reported weight_sum=inf and loss=0.
    result = logitshift.fit([0, 1], [0.0, 0.5], [1e308, 1e308], method=method)
    assert result.converged
    assert_close(result.shift, reference.shift([0, 1], [0.0, 0.5]))
    assert result.weight_sum == math.inf  # 2e308 is beyond the double range
    plain = logitshift.fit([0, 1], [0.0, 0.5], method=method)
    assert result.loss == pytest.approx(plain.loss, rel=1e-14)
    assert result.loss_at_zero == pytest.approx(plain.loss_at_zero, rel=1e-14)


@pytest.mark.parametrize("weight", [1e308, 2.0 ** 1023, 5e-324, 1e-320],
                         ids=["1e308", "2**1023", "5e-324", "1e-320"])
def test_constant_offset_closed_form_at_any_weight_scale(weight):
    labels, _ = ordinary_data()
    result = logitshift.fit(labels, 1.5, np.full(labels.size, weight))
    assert result.status == "closed_form"
    m = int(labels.sum())
    expected = math.log(m / (labels.size - m)) - 1.5
    if math.frexp(weight)[0] == 0.5:  # a power of two: the sums are exact
        assert result.shift == expected
    else:
        assert result.shift == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize("method", ["auto", "newton"])
def test_pseudo_count_scales_with_the_weights(method):
    labels, offsets = ordinary_data()
    plain = logitshift.fit(labels, offsets, np.ones(labels.size), method=method,
                           pseudo_count=2.0)
    huge = logitshift.fit(labels, offsets, np.full(labels.size, 2.0 ** 1020), method=method,
                          pseudo_count=2.0 ** 1021)
    assert huge.shift == plain.shift


def test_sketch_chunks_of_different_weight_scales_merge_exactly():
    labels, offsets = ordinary_data(3000)
    weights = np.ones(labels.size)
    weights[1000:2000] = 2.0 ** -600  # a chunk light enough to be rescaled on its own
    weights[2000:] = 2.0 ** 900  # and one heavy enough (its sum overflows at 2**1014)
    scaled = weights * 2.0 ** 100
    parts = [(0, 1000), (1000, 2000), (2000, 3000)]
    for w in (weights, scaled):
        merged = Sketch()
        for a, b in parts:
            merged = merged + Sketch().update(labels[a:b], offsets[a:b], w[a:b])
        streamed = Sketch()
        for a, b in parts:
            streamed.update(labels[a:b], offsets[a:b], w[a:b])
        whole = Sketch().update(labels, offsets, w)
        exact = reference.shift(labels, offsets, w / 2.0 ** 900)
        for sketch in (merged, streamed, whole):
            assert_close(sketch.solve().shift, exact)
    # Scaling every weight by a power of two changes nothing, chunk by chunk.
    base = [Sketch().update(labels[a:b], offsets[a:b], weights[a:b]) for a, b in parts]
    moved = [Sketch().update(labels[a:b], offsets[a:b], scaled[a:b]) for a, b in parts]
    assert sum(base[1:], base[0]).solve().shift == sum(moved[1:], moved[0]).solve().shift


def test_the_scale_of_a_sketch_survives_to_dict_and_older_dicts_load():
    labels, offsets = ordinary_data()
    sketch = Sketch().update(labels, offsets, np.full(labels.size, 1e308))
    data = sketch.to_dict()
    assert data["scale_exponent"] != 0
    again = Sketch.from_dict(data)
    assert again.solve().shift == sketch.solve().shift
    assert again.loss(0.0) == sketch.loss(0.0) == math.inf  # the total itself overflows
    # A dict written before the field existed is in units of 1.
    ordinary = Sketch().update(labels, offsets).to_dict()
    assert ordinary["scale_exponent"] == 0
    del ordinary["scale_exponent"]
    assert Sketch.from_dict(ordinary).solve().shift == Sketch().update(
        labels, offsets).solve().shift
    blob = Sketch.from_bytes(sketch.to_bytes())
    assert blob.solve().shift == sketch.solve().shift


def test_sketch_sums_are_in_the_users_units():
    labels, offsets = ordinary_data()
    weights = np.full(labels.size, 2.0 ** -1070)
    sketch = Sketch().update(labels, offsets, weights)
    plain = Sketch().update(labels, offsets)
    for shift in (-1.0, 0.0, 2.0):
        assert sketch.loss(shift) == pytest.approx(plain.loss(shift) * 2.0 ** -1070, rel=1e-12)
        assert sketch.hessian(shift) == pytest.approx(plain.hessian(shift) * 2.0 ** -1070,
                                                      rel=1e-12)
    cells, plain_cells = sketch.cells(0.5), plain.cells(0.5)
    np.testing.assert_allclose(cells.weight, plain_cells.weight * 2.0 ** -1070, rtol=1e-13)
    np.testing.assert_allclose(cells.expected, plain_cells.expected * 2.0 ** -1070, rtol=1e-12)


# -- 2. separable data with gaps wider than σ's range ---------------------------------------

def separable(a, n=1000, seed=0):
    labels, _ = ordinary_data(n, seed)
    return labels, np.where(labels == 1, a, -a)


def separable_with_ordinary_rows(a):
    # Separable groups far out, plus a few ordinary rows near 0 that set the shift.
    labels, offsets = separable(a)
    rng = np.random.default_rng(3)
    extra = rng.normal(0, 1, 50)
    extra_labels = (rng.random(50) < 0.4).astype(np.int8)
    return np.r_[labels, extra_labels], np.r_[offsets, extra]


def separable_spread(a):
    # Both groups spread over many cells, the gap still far beyond σ's range.
    rng = np.random.default_rng(4)
    labels, _ = ordinary_data(2000, 4)
    offsets = np.where(labels == 1, a, -a) + rng.normal(0, 3, labels.size)
    return labels, offsets


def separable_unequal(a):
    # The two groups at different distances: the shift is far from 0.
    labels, _ = ordinary_data()
    return labels, np.where(labels == 1, a, -2 * a)


def separable_weighted(a):
    rng = np.random.default_rng(5)
    labels, offsets = separable(a)
    return labels, offsets, rng.exponential(1.0, labels.size)


def separable_with_soft_rows(a):
    # A soft label is a mistake on both sides: soft rows must sit near 0 for a gap to remain.
    labels, offsets, weights = separable_weighted(a)
    rng = np.random.default_rng(6)
    soft = rng.random(30)
    return (np.r_[labels, soft], np.r_[offsets, rng.normal(0, 2, 30)],
            np.r_[weights, rng.integers(1, 4, 30)])


SEPARABLE = {
    "gap_745": lambda: separable(745.0),
    "gap_800": lambda: separable(800.0),
    "gap_1e3": lambda: separable(1e3),
    "gap_1e4": lambda: separable(1e4),
    "gap_1e300": lambda: separable(1e300),
    "gap_1e308": lambda: separable(1e308),
    "mixed_1e3": lambda: separable_with_ordinary_rows(1e3),
    "mixed_1e300": lambda: separable_with_ordinary_rows(1e300),
    "spread_1e3": lambda: separable_spread(1e3),
    "spread_1e4": lambda: separable_spread(1e4),
    "unequal_1e3": lambda: separable_unequal(1e3),
    "unequal_1e300": lambda: separable_unequal(1e300),
    "weighted_1e3": lambda: separable_weighted(1e3),
    "weighted_1e300": lambda: separable_weighted(1e300),
    "soft_rows_1e4": lambda: separable_with_soft_rows(1e4),
}


@pytest.fixture(scope="module")
def separable_references():
    return {}


def _reference_for(name, separable_references):
    if name not in separable_references:
        separable_references[name] = reference.shift_any_offsets(*SEPARABLE[name]())
    return separable_references[name]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("name", list(SEPARABLE))
def test_separable_data_matches_the_reference(name, method, separable_references):
    data = SEPARABLE[name]()
    exact = _reference_for(name, separable_references)
    result = fit_with(method, *data)
    assert result.converged and result.status == "converged", result
    assert_close(result.shift, exact)


@pytest.mark.parametrize("a", [745.0, 1e3, 1e4, 1e300], ids=["745", "1e3", "1e4", "1e300"])
def test_separable_shift_is_half_the_log_odds(a):
    labels, offsets = separable(a)
    m = int(labels.sum())
    with mp.workdps(40):
        expected = mp.log(mp.mpf(m) / (labels.size - m)) / 2
    for method in ("auto", "newton"):
        assert_close(logitshift.fit(labels, offsets, method=method).shift, expected)


@pytest.mark.parametrize("method", ["auto", "newton"])
@pytest.mark.parametrize("a", [1e3, 1e4, 1e300], ids=["1e3", "1e4", "1e300"])
def test_statistics_at_a_separable_shift(a, method):
    labels, offsets = separable(a)
    result = logitshift.fit(labels, offsets, method=method)
    sums = reference.sums_any_offsets(labels, offsets, None, mp.mpf(result.shift))
    # The Hessian underflows; the standard error comes from its logarithm.
    se = 1 / mp.sqrt(sums["hessian"])
    if se > mp.mpf(np.finfo(float).max):
        assert result.se == math.inf
    else:
        assert result.se == pytest.approx(float(se), rel=1e-10)
    # The loss is far below the smallest double: 0 is its nearest double.
    assert result.loss == float(sums["loss"] / labels.size) == 0.0
    low, high = result.confint()
    assert low < result.shift < high
    assert math.isfinite(low) and math.isfinite(high)
    # The likelihood is flat across the gap: the interval spans most of it.
    assert high > 0.5 * a and low < -0.5 * a
    test = result.lr_test()
    assert test.statistic >= 0 and 0 <= test.pvalue <= 1


def test_separable_spread_with_the_sketch_and_weights_scaled():
    labels, offsets = separable_spread(1e3)
    weights = np.full(labels.size, 1e308)
    exact = reference.shift_any_offsets(labels, offsets)
    for method in ("auto", "newton"):
        assert_close(logitshift.fit(labels, offsets, weights, method=method).shift, exact)


class _LinearOnly:
    """A curve that gives only the linear sums (no logarithms of the parts)."""

    def __init__(self, inner):
        self._inner = inner
        self.totals = inner.totals
        self.passes = 0

    def evaluate(self, shift):
        t = self._inner.evaluate(shift)
        return Terms(t.negative, t.positive, t.gradient, t.negative_curvature,
                     t.positive_curvature, t.loss)


def test_underflowed_parts_without_their_logarithms_are_not_identifiable():
    labels, offsets = separable(1e4)
    curve = _LinearOnly(ArrayCurve(labels, offsets, None))
    with pytest.warns(RuntimeWarning, match="underflow"):
        result = fit_curve(curve, method="newton")
    assert result.status == "not_identifiable" and not result.converged


def test_ordinary_data_never_computes_logarithms_of_the_parts():
    labels, offsets = ordinary_data()
    for curve in (ArrayCurve(labels, offsets, None), Sketch().update(labels, offsets)):
        terms = curve.evaluate(-1.0)
        assert terms.log_negative is None and terms.log_positive is None


def test_no_warning_on_separable_data():
    labels, offsets = separable(1e4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = logitshift.fit(labels, offsets)
    assert result.converged
