"""Weights and scores at the ends of the double range: per-group shifts whose groups weigh
2**-1074 to 2**1023 of each other, and the calibration report of scores of ±1e300.

Each case is refused by name or checked against a reference: `logitshift.fit` on a group's
rows, the same fit with every weight scaled by a power of two (to the bit), the fit without
a group that weighs nothing beside the others, or the statistic by its definition in mpmath.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import logitshift
from logitshift._group_sketch import GroupSketch

SUBNORMAL = 5e-324  # 2**-1074


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def _grouped(seed: int, n: int = 600, groups: int = 3):
    rng = np.random.default_rng(seed)
    group = rng.integers(0, groups, n)
    offset = rng.normal(0, 1.5, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-(offset + 0.4 * group - 0.3)))).astype(float)
    # Integer multiples of a power of two: exact at any scale, subnormals included.
    base = rng.integers(1, 4, n).astype(float)
    return labels, group, offset, base


def _assert_each_group_is_fit(result, labels, group, offset, weight, rel=1e-12, **options):
    for index, key in enumerate(result.groups.tolist()):
        rows = group == key
        reference = _quiet(logitshift.fit, labels[rows], offset[rows], weight=weight[rows],
                           **options)
        assert result.status[index] == reference.status
        assert result.shift[index] == pytest.approx(reference.shift, rel=rel, abs=0), key
        assert result.se[index] == pytest.approx(reference.se, rel=1e-9), key
        assert result.weight_sum[index] == pytest.approx(reference.weight_sum, rel=1e-12)
        assert result.positives[index] == pytest.approx(reference.positives, rel=1e-12)
        assert result.loss[index] == pytest.approx(reference.loss, rel=1e-9)


# -- item: per-group shifts at any scale of a group's weights ------------------------------------

def test_subnormal_weights_in_one_group_as_the_issue_found():
    """Group 1's weights are 7 * 5e-324: its shift was 0.50297, "converged", where fit on
    its rows says 0.50535."""
    labels, group, offset, _ = _grouped(4, n=2000, groups=2)
    weight = np.where(group == 0, 1.0, 7 * SUBNORMAL)
    result = logitshift.fit_groups(labels, group, offset, weight)
    _assert_each_group_is_fit(result, labels, group, offset, weight)
    assert list(result.status) == ["converged", "converged"]
    fit_of = result.fit_of(1)
    reference = logitshift.fit(labels[group == 1], offset[group == 1],
                               weight=weight[group == 1])
    assert fit_of.shift == reference.shift and fit_of.se == pytest.approx(reference.se, 1e-12)
    assert fit_of.confint() == pytest.approx(reference.confint(), rel=1e-9)


SCALES = [-1074, -1073, -1060, -1022, -1000, -700, -501, -500, -200, 0, 200, 500, 501, 700,
          1000, 1021]


@pytest.mark.parametrize("k", SCALES)
def test_one_group_at_scale_two_to_the_k(k):
    labels, group, offset, base = _grouped(11 + k % 7)
    weight = np.where(group == 1, np.ldexp(base, k), base)
    result = _quiet(logitshift.fit_groups, labels, group, offset, weight)
    _assert_each_group_is_fit(result, labels, group, offset, weight)


@pytest.mark.parametrize("scales", [(-1074, 1021), (1021, -1074), (-1074, 0), (1021, 0),
                                    (-600, 600), (-1050, -1074), (1000, 1021)])
def test_groups_at_scales_the_whole_range_apart(scales):
    labels, group, offset, base = _grouped(5)
    weight = base.copy()
    for key, k in zip((0, 2), scales):
        weight[group == key] = np.ldexp(base[group == key], k)
    result = _quiet(logitshift.fit_groups, labels, group, offset, weight)
    _assert_each_group_is_fit(result, labels, group, offset, weight)


@settings(max_examples=25, deadline=None)
@given(scales=st.lists(st.integers(-1074, 1021), min_size=3, max_size=3),
       seed=st.integers(0, 2**16), pseudo=st.sampled_from([0.0, 0.5]))
def test_every_group_is_its_fit_and_common_scaling_changes_nothing(scales, seed, pseudo):
    labels, group, offset, base = _grouped(seed, n=300)
    weight = base.copy()
    for key, k in enumerate(scales):
        weight[group == key] = np.ldexp(base[group == key], k)
    result = _quiet(logitshift.fit_groups, labels, group, offset, weight, pseudo_count=pseudo)
    _assert_each_group_is_fit(result, labels, group, offset, weight, pseudo_count=pseudo)
    if pseudo:
        return
    # The same data with every weight times 2**j, j keeping them exact: the same shifts.
    low, high = min(scales), max(scales)
    for j in {-(low + 1074), 1021 - high, (1021 - high - low - 1074) // 2}:
        scaled = _quiet(logitshift.fit_groups, labels, group, offset, np.ldexp(weight, j))
        assert scaled.shift.tobytes() == result.shift.tobytes(), j
        assert np.array_equal(scaled.status, result.status)


def test_scaling_every_weight_keeps_the_shifts_to_the_bit():
    labels, group, offset, base = _grouped(8)
    shifts = [logitshift.fit_groups(labels, group, offset, np.ldexp(base, k)).shift
              for k in (-1070, -1000, -600, -500, -100, 0, 100, 500, 501, 900, 1021)]
    for other in shifts[1:]:
        assert other.tobytes() == shifts[0].tobytes()


def test_the_likelihood_ratio_test_scales_with_the_weights():
    labels, group, offset, base = _grouped(9)
    plain = logitshift.fit_groups(labels, group, offset, base).lr_test()
    for k in (-1000, -600, 600, 900):
        test = logitshift.fit_groups(labels, group, offset, np.ldexp(base, k)).lr_test()
        assert test.statistic == pytest.approx(math.ldexp(plain.statistic, k), rel=1e-9)
    # 2**1021 times a statistic above 2 is beyond the doubles: inf, and p = 0, not nan.
    test = logitshift.fit_groups(labels, group, offset, np.ldexp(base, 1021)).lr_test()
    assert plain.statistic > 2 and test.statistic == math.inf and test.pvalue == 0.0


def test_group_sketch_merge_and_bytes_keep_each_groups_units():
    labels, group, offset, base = _grouped(10, n=900)
    weight = np.where(group == 0, base * SUBNORMAL, np.where(group == 1, base * 1e300, base))
    whole = logitshift.fit_groups(labels, group, offset, weight)
    halves = [GroupSketch().update(labels[part], group[part], offset[part], weight[part])
              for part in (slice(0, 450), slice(450, None))]
    merged = halves[0] + halves[1]
    copied = GroupSketch.from_bytes(merged.to_bytes())
    for sketch in (merged, copied):
        result = logitshift._groups.fit_group_curves(sketch)
        assert result.shift == pytest.approx(whole.shift, rel=1e-12)
        assert result.weight_sum == pytest.approx(whole.weight_sum, rel=1e-12)
    # A blob whose groups all weigh in units of 1 is still written as version 2.
    assert GroupSketch().update(labels, group, offset, base).to_bytes()[4] == 2
    assert merged.to_bytes()[4] == 3


def test_frame_and_file_sources_give_the_same_units(tmp_path):
    pd = pytest.importorskip("pandas")
    labels, group, offset, base = _grouped(12)
    weight = np.where(group == 2, base * 3 * SUBNORMAL, base * 1e-3)
    frame = pd.DataFrame({"y": labels, "g": group, "f": offset, "w": weight})
    memory = logitshift.fit_groups(labels, group, offset, weight)
    from_frame = logitshift.fit_groups_frame(frame, "y", "g", "f", weight="w")
    path = tmp_path / "rows.parquet"
    frame.to_parquet(path)
    from_file = logitshift.fit_groups_file(path, "y", "g", "f", weight="w")
    for result in (from_frame, from_file):
        assert result.shift == pytest.approx(memory.shift, rel=1e-12)
    _assert_each_group_is_fit(memory, labels, group, offset, weight)


@pytest.mark.parametrize("k", [-1074, -1060, -900, -600])
def test_random_intercepts_weigh_a_negligible_group_as_nothing(k):
    """A group whose weights are 2**k of the others' adds nothing to the marginal likelihood
    in doubles: μ̂, τ̂ and log L are those of the fit without it, and its shrunk shift is
    μ̂."""
    labels, group, offset, base = _grouped(13, n=1500, groups=6)
    weight = np.where(group == 5, np.ldexp(base, k), base)
    kept = group != 5
    without = _quiet(logitshift.fit_groups, labels[kept], group[kept], offset[kept],
                     base[kept], shrinkage="random", nagq=5)
    result = _quiet(logitshift.fit_groups, labels, group, offset, weight, shrinkage="random",
                    nagq=5)
    # (μ̂ and τ̂ to the optimiser's stopping rule, a step of 1e-8: its start differs.)
    assert result.mean == pytest.approx(without.mean, rel=1e-7)
    assert result.tau == pytest.approx(without.tau, rel=1e-7)
    assert result.loglik == pytest.approx(without.loglik, rel=1e-12)
    assert result.shrunk[:5] == pytest.approx(without.shrunk, rel=1e-7)
    assert result.shrunk[5] == pytest.approx(result.mean, rel=1e-12)
    assert result.shrunk_se[5] == pytest.approx(result.tau, rel=1e-12)
    _assert_each_group_is_fit(result, labels, group, offset, weight)


def test_random_intercepts_beyond_the_range_are_refused_by_name():
    labels, group, offset, base = _grouped(14)
    for k in (-1000, 600):
        with pytest.raises(logitshift.InputError, match="random-intercept likelihood"):
            logitshift.fit_groups(labels, group, offset, np.ldexp(base, k),
                                  shrinkage="random")
    # One heavy group is enough: the sum is the user's, in the user's units.
    with pytest.raises(logitshift.InputError, match=r"beyond \[2\*\*-500"):
        logitshift.fit_groups(labels, group, offset, np.where(group == 0, 1e300, base),
                              shrinkage="random")


def test_weights_that_vanish_within_a_group_are_refused_as_fit_refuses_them():
    labels, group, offset, base = _grouped(15)
    weight = np.where(labels == 1, 2.0 ** 1000, 2.0 ** -100) * base
    weight[group != 1] = base[group != 1]
    rows = group == 1
    with pytest.raises(logitshift.InputError, match="range of doubles"):
        logitshift.fit(labels[rows], offset[rows], weight=weight[rows])
    with pytest.raises(logitshift.InputError, match="range of doubles within group 1"):
        logitshift.fit_groups(labels, group, offset, weight)


def test_a_label_that_vanishes_from_the_pooled_fit_is_refused_as_fit_refuses_it():
    labels, group, offset, base = _grouped(16)
    labels[group == 0] = 1.0
    weight = np.where(group == 0, 2.0 ** 1000, 2.0 ** -100) * base
    with pytest.raises(logitshift.InputError, match="range of doubles"):
        logitshift.fit(labels, offset, weight=weight)
    with pytest.raises(logitshift.InputError, match="vanishes in the pooled fit"):
        _quiet(logitshift.fit_groups, labels, group, offset, weight)
