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
from logitshift._summary.group_sketch import GroupSketch

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
    if pseudo and min(scales) < -1022:
        # Pseudo-rows of 0.5 beside rows of 2**-1030: refused by name, by fit as by groups.
        light = int(np.argmin(scales))
        rows = group == light
        for call in (lambda: logitshift.fit(labels[rows], offset[rows], weight=weight[rows],
                                            pseudo_count=pseudo),
                     lambda: logitshift.fit_groups(labels, group, offset, weight,
                                                   pseudo_count=pseudo)):
            try:
                _quiet(call)
            except logitshift.InputError as error:
                assert "pseudo_count = 0.5 is more than 2**1023" in str(error)
        return
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
        result = logitshift._estimators.groups.fit_group_curves(sketch)
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


# -- item: the calibration report of extreme but finite inputs -----------------------------------

mpmath = pytest.importorskip("mpmath")
mpmath.mp.dps = 60


def _softplus(x):
    return mpmath.log1p(mpmath.exp(x))


def _reference_report(y, f, w, slope_loss):
    """val.prob's indexes, the Brier score and the log loss by their definitions, in mpmath
    (60 digits, exponents unbounded), from the rows; ``slope_loss`` is the recalibration
    line's mean loss (NaN where it did not converge: U and Q are NaN then)."""
    y = [mpmath.mpf(float(v)) for v in y]
    f = [mpmath.mpf(float(v)) for v in f]
    w = [mpmath.mpf(1)] * len(y) if w is None else [mpmath.mpf(float(v)) for v in w]
    n = mpmath.fsum(w)
    mean = mpmath.fsum(wi * yi for wi, yi in zip(w, y)) / n
    entropy = -sum(p * mpmath.log(p) for p in (mean, 1 - mean) if p > 0)
    loss = mpmath.fsum(wi * (yi * _softplus(-fi) + (1 - yi) * _softplus(fi))
                       for wi, yi, fi in zip(w, y, f)) / n
    p = [1 / (1 + mpmath.exp(-fi)) for fi in f]
    brier = mpmath.fsum(wi * ((1 - yi) * pi ** 2 + yi * (1 - pi) ** 2)
                        for wi, yi, pi in zip(w, y, p)) / n
    ratio = 2 * n * (entropy - loss)
    r2 = ((1 - mpmath.exp(-ratio / n)) / (1 - mpmath.exp(-2 * entropy)) if entropy > 0
          else math.nan)
    discrimination = (ratio - 1) / n
    out = {"r2": r2, "discrimination": discrimination, "discrimination_chi2": ratio,
           "brier": brier, "log_loss": loss}
    if math.isnan(slope_loss):
        out.update(unreliability=math.nan, quality=math.nan)
    else:
        joint = max(2 * n * (loss - mpmath.mpf(slope_loss)), 0)
        out.update(unreliability=(joint - 2) / n, quality=(ratio - joint + 1) / n)
    return {name: float(value) if not isinstance(value, float) else value
            for name, value in out.items()}


def _check_report(report, y, f, w=None):
    reference = _reference_report(y, f, w, report.slope.loss if report.slope.converged
                                  else math.nan)
    for name, expected in reference.items():
        got = getattr(report, name)
        if math.isnan(expected) or math.isinf(expected):
            assert got == expected or (math.isnan(got) and math.isnan(expected)), name
        else:
            # Differences of losses of 1e300 keep their digits relative to the losses.
            assert got == pytest.approx(expected, rel=1e-9, abs=1e-12), name


def _rows(seed=0, n=400, scale=1.0):
    rng = np.random.default_rng(seed)
    f = rng.normal(0, 1, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-f))).astype(float)
    return y, f * scale


def _validate(*args, **kwargs):
    return _quiet(logitshift.validate, *args, **kwargs)


def test_validate_scores_times_1e4_as_the_issue_found():
    """R² raised OverflowError: math range error; its true value is about -e^4300."""
    y, f = _rows(scale=1e4)
    report = _validate(y, f)
    assert report.r2 == -math.inf
    _check_report(report, y, f)
    # The slope is either statsmodels' or says it is not.
    sm = pytest.importorskip("statsmodels.api")
    glm = sm.GLM(y, sm.add_constant(f), family=sm.families.Binomial()).fit(tol=1e-14)
    for slope in (report.slope, _quiet(logitshift.fit_slope, y, f)):
        if slope.status == "converged":
            assert [slope.intercept, slope.slope] == pytest.approx(glm.params, rel=1e-7)
        else:
            assert slope.status == "max_iter" and not slope.converged


HOSTILE = {
    "scores 1e2": (lambda: _rows(1, scale=1e2)),
    "scores 1e300": (lambda: _rows(2, scale=1e300)),
    "scores -1e300 everywhere": (lambda: (_rows(3)[0], np.full(400, -1e300))),
    "scores 1e300 everywhere": (lambda: (_rows(4)[0], np.full(400, 1e300))),
    "one misplaced row at 1e300": (lambda: (lambda y, f: (y, np.where(np.arange(400) == 7,
                                   1e300 * (0.5 - y), f)))(*_rows(5))),
    "two rows, separated by 2e300": (lambda: (np.array([0.0, 1.0]), np.array([-1e300, 1e300]))),
    "two rows, the wrong way round": (lambda: (np.array([1.0, 0.0]),
                                               np.array([-1e300, 1e300]))),
    "soft labels, scores 1e300": (lambda: (np.linspace(0.05, 0.95, 400),
                                           _rows(6, scale=1e300)[1])),
    "soft labels, scores 1e4": (lambda: (np.linspace(0.05, 0.95, 400),
                                         _rows(7, scale=1e4)[1])),
    "scores 700 logits apart": (lambda: _rows(8, scale=700.0)),
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_validate_extreme_scores_against_mpmath(case):
    y, f = HOSTILE[case]()
    _check_report(_validate(y, f), y, f)


@pytest.mark.parametrize("weight", [1e-300, 1e300, 5e-324, 1.7e308],
                         ids=["1e-300", "1e300", "subnormal", "near max"])
@pytest.mark.parametrize("scale", [1.0, 1e4, 1e300], ids=["1", "1e4", "1e300"])
def test_validate_extreme_weights_against_mpmath(weight, scale):
    y, f = _rows(9, n=200, scale=scale)
    w = np.full(y.size, weight)
    report = _validate(y, f, weight=w)
    _check_report(report, y, f, w)
    # The indexes are per unit of weight: a common scale of the weights changes nothing
    # but the chi-square statistics, which are totals.
    plain = _validate(y, f)
    for name in ("r2", "brier", "log_loss"):
        assert getattr(report, name) == pytest.approx(getattr(plain, name), rel=1e-12)


def test_validate_file_streams_the_same_report(tmp_path):
    for scale in (1e4, 1e300):
        y, f = _rows(10, scale=scale)
        path = tmp_path / f"scores-{scale:g}.csv"
        path.write_text("y,f\n" + "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in zip(y, f)))
        streamed = _quiet(logitshift.validate_file, path, label="y", offset="f")
        memory = _validate(y, f)
        _check_report(streamed, y, f)
        for name in ("r2", "discrimination", "unreliability", "quality", "brier",
                     "log_loss", "discrimination_chi2"):
            a, b = getattr(streamed, name), getattr(memory, name)
            assert a == b or a == pytest.approx(b, rel=1e-12) or (a != a and b != b), name


def test_the_command_line_reports_scores_times_1e4(tmp_path):
    import subprocess
    import sys

    y, f = _rows(11, scale=1e4)
    path = tmp_path / "scores.csv"
    path.write_text("y,f\n" + "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in zip(y, f)))
    done = subprocess.run([sys.executable, "-m", "logitshift", "validate", str(path),
                           "--label", "y", "--offset", "f", "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert '"r2": "-inf"' in done.stdout or '"r2": -Infinity' in done.stdout


@pytest.mark.parametrize("label", [0.0, 1.0, 0.25])
def test_one_row_with_a_score_of_1e300(label):
    y, f = np.array([label]), np.array([1e300])
    report = _validate(y, f)
    _check_report(report, y, f)
    assert report.slope.status in ("constant_offset", "all_positive", "all_negative")


def test_all_scores_equal_at_1e300():
    y, _ = _rows(12)
    report = _validate(y, np.full(y.size, 1e300))
    assert report.slope.status == "constant_offset"
    _check_report(report, y, np.full(y.size, 1e300))


@pytest.mark.parametrize("probability", [0.0, 1.0, 1 - 1e-17, 1e-300, 1 - 2**-53])
def test_probabilities_at_the_ends(probability):
    """0 and 1 (and 1 - 1e-17, which is 1.0 in doubles) are ∓inf logits: they must agree
    with their labels, else the row is named; 1e-300 and 1 - 2**-53 are finite."""
    y, f = _rows(13, n=100)
    p = 1 / (1 + np.exp(-f))
    p[0] = probability
    raw = math.log(probability) - math.log1p(-probability) if 0 < probability < 1 else None
    for label in (0.0, 1.0):
        y[0] = label
        agrees = raw is not None or probability == label
        if not agrees:
            with pytest.raises(logitshift.InputError, match=r"\[0\]"):
                _validate(y, p, offset_is="probability")
            continue
        report = _validate(y, p, offset_is="probability")
        if raw is not None:
            scores = np.log(p) - np.log1p(-p)
            scores[0] = raw
            _check_report(report, y, scores)
        else:
            # A row whose infinite score agrees with its label adds no loss.
            keep = np.arange(y.size) != 0
            scores = np.log(p[keep]) - np.log1p(-p[keep])
            expected = _reference_report(y[keep], scores, None, math.nan)
            assert report.log_loss * y.size == pytest.approx(
                expected["log_loss"] * (y.size - 1), rel=1e-9)


def test_fit_slope_says_what_it_reached_with_scores_of_1e300():
    y, f = _rows(14, scale=1e300)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        slope = logitshift.fit_slope(y, f)
    assert slope.status in ("converged", "max_iter", "separated", "beyond_sketch")
    if slope.status != "converged":
        assert not slope.converged and caught
    else:  # the slope of the same data at scale 1, divided by 1e300
        plain = logitshift.fit_slope(y, f / 1e300)
        assert slope.slope * 1e300 == pytest.approx(plain.slope, rel=1e-9)


def test_fit_slope_with_heavy_and_light_weights_against_statsmodels():
    sm = pytest.importorskip("statsmodels.api")
    y, f = _rows(15, scale=30.0)
    glm = sm.GLM(y, sm.add_constant(f), family=sm.families.Binomial()).fit(tol=1e-14)
    for weight in (1e-300, 1e300, 1.7e308):
        slope = logitshift.fit_slope(y, f, weight=np.full(y.size, weight))
        assert slope.status == "converged"
        assert [slope.intercept, slope.slope] == pytest.approx(glm.params, rel=1e-8)


def test_every_label_one_class_with_extreme_scores():
    y = np.ones(50)
    f = np.linspace(-1e300, 1e300, 50)
    with pytest.warns(RuntimeWarning):
        report = logitshift.validate(y, f)
    assert math.isnan(report.r2) and math.isnan(report.c_statistic)
    _check_report(report, y, f)
