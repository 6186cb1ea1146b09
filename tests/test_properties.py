"""Invariances of the shift, checked by hypothesis on arbitrary small data."""

from __future__ import annotations

import math
import warnings

import numpy as np
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import logitshift

settings.register_profile("logitshift", max_examples=60, deadline=None)
settings.load_profile("logitshift")

ROWS = st.integers(min_value=2, max_value=40)


@st.composite
def problems(draw, soft: bool = True):
    """Labels (0/1 or soft), offsets within ±30 and integer weights 0..4, not degenerate."""
    n = draw(ROWS)
    if soft and draw(st.booleans()):
        labels = draw(hnp.arrays(np.float64, n, elements=st.floats(0, 1, allow_subnormal=False)))
    else:
        labels = draw(hnp.arrays(np.int8, n, elements=st.integers(0, 1)))
    offsets = draw(hnp.arrays(np.float64, n, elements=st.floats(-30, 30)))
    weights = draw(hnp.arrays(np.int64, n, elements=st.integers(0, 4)))
    positives = np.sum(weights * labels)
    assume(0 < positives < np.sum(weights))
    return labels, offsets, weights


def close(a: float, b: float, rel: float = 1e-12) -> bool:
    return a == b or abs(a - b) <= rel * max(1.0, abs(a), abs(b))


@given(problems())
def test_integer_weights_equal_repeated_rows(problem):
    labels, offsets, weights = problem
    weighted = logitshift.fit(labels, offsets, weights)
    repeated = logitshift.fit(np.repeat(labels, weights), np.repeat(offsets, weights))
    assert close(weighted.shift, repeated.shift)
    assert close(weighted.se, repeated.se, rel=1e-9)
    assert close(weighted.loss, repeated.loss)
    assert weighted.weight_sum == repeated.n_rows


@given(problems(), st.floats(-50, 50))
def test_adding_a_constant_to_the_offsets_subtracts_it_from_the_shift(problem, constant):
    labels, offsets, weights = problem
    base = logitshift.fit(labels, offsets, weights)
    moved = logitshift.fit(labels, offsets + constant, weights)
    # The moved offsets are rounded, so compare at the scale of the offsets.
    scale = max(1.0, np.max(np.abs(offsets)), abs(constant))
    assert abs(moved.shift - (base.shift - constant)) <= 1e-11 * scale


@given(problems(), st.randoms(use_true_random=False))
def test_row_order_does_not_matter(problem, random):
    labels, offsets, weights = problem
    order = np.array(random.sample(range(labels.size), labels.size))
    base = logitshift.fit(labels, offsets, weights)
    shuffled = logitshift.fit(labels[order], offsets[order], weights[order])
    assert close(base.shift, shuffled.shift)


@given(problems())
def test_gradient_at_the_shift_is_zero_to_rounding(problem):
    labels, offsets, weights = problem
    result = logitshift.fit(labels, offsets, weights)
    assert result.converged
    z = offsets + result.shift
    negative = np.sum(weights * (1 - labels) * logitshift.sigmoid(z))
    positive = np.sum(weights * labels * logitshift.sigmoid(-z))
    # Zero to rounding: within a few ulps of its larger part, or the root is pinned to ulps.
    gradient = negative - positive
    curvature = np.sum(weights * logitshift.hessian(z))
    assert (abs(gradient) <= 1e-12 * max(negative, positive)
            or abs(gradient) <= 1e-12 * max(1.0, abs(result.shift)) * curvature)


@given(problems(soft=True), st.data())
def test_shift_is_monotone_in_the_labels(problem, data):
    labels, offsets, weights = problem
    labels = labels.astype(np.float64)
    i = data.draw(st.integers(0, labels.size - 1))
    raised = labels.copy()
    raised[i] = data.draw(st.floats(labels[i], 1.0))
    assume(np.sum(weights * raised) < np.sum(weights))
    base = logitshift.fit(labels, offsets, weights)
    higher = logitshift.fit(raised, offsets, weights)
    assert higher.shift >= base.shift - 1e-11 * max(1.0, abs(base.shift))


@given(problems(soft=False))
def test_flipping_labels_and_offsets_negates_the_shift(problem):
    labels, offsets, weights = problem
    base = logitshift.fit(labels, offsets, weights)
    mirrored = logitshift.fit(1 - labels, -offsets, weights)
    assert close(mirrored.shift, -base.shift)


def _shift_by(how: str, labels, offsets, weights, unit: int) -> float:
    """The shift by one path, the weights (and the pseudo-count) times ``2**unit``."""
    w = np.ldexp(weights.astype(np.float64), unit)
    if how == "closed_form":
        return logitshift.fit(labels, 0.75, w).shift
    if how == "pseudo_count":
        return logitshift.fit(labels, offsets, w, pseudo_count=math.ldexp(1.5, unit)).shift
    if how == "chunks":
        half = labels.size // 2
        first = logitshift.Sketch().update(labels[:half], offsets[:half], w[:half])
        second = logitshift.Sketch().update(labels[half:], offsets[half:], w[half:])
        streamed = logitshift.Sketch().update(labels[:half], offsets[:half], w[:half])
        streamed.update(labels[half:], offsets[half:], w[half:])
        merged = (first + second).solve().shift
        assert streamed.solve().shift == merged
        return merged
    return logitshift.fit(labels, offsets, w, method=how).shift


@given(problems(), st.integers(-1072, 1021),
       st.sampled_from(["auto", "newton", "closed_form", "pseudo_count", "chunks"]))
def test_scaling_the_weights_by_a_power_of_two_leaves_the_shift_to_the_bit(problem, unit, how):
    # Integer weights up to 4 times 2**unit stay finite and non-zero, and exact.
    labels, offsets, weights = problem
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # degenerate halves of a stream
        assert (_shift_by(how, labels, offsets, weights, unit)
                == _shift_by(how, labels, offsets, weights, 0))
