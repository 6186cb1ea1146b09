"""The profile interval of the random intercepts' τ (`GroupShiftFit.tau_confint`): its ends
are where the profile deviance reaches the chi-square quantile, found in a handful of
evaluations of the likelihood, and where the bisection it replaced put them."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import mpmath
import numpy as np
import pandas as pd
import pytest
from scipy import optimize, special, stats

import logitshift
from logitshift._estimators import groups as _groups

DATA = Path(__file__).parent / "data" / "glmer"


def _many(seed: int, rows: int, groups: int, tau: float) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    group = rng.integers(0, groups, rows)
    offset = rng.normal(0, 1, rows)
    effect = rng.normal(0, tau, groups)
    y = rng.random(rows) < special.expit(offset - 1 + effect[group])
    return y, group, offset


def _data(name: str) -> tuple[np.ndarray, ...]:
    if name == "grouped":
        table = pd.read_csv(DATA / "grouped.csv")
        return table.y.values, table.group.values, table.offset.values
    return {"many": lambda: _many(3, 3000, 1000, 0.6),  # three rows a group
            "weak": lambda: _many(5, 2000, 200, 0.15),  # τ̂ = 0: the boundary
            "boundary": lambda: _many(6, 2000, 100, 0.2),  # τ̂ > 0, the lower end 0
            }[name]()


# The ends given by the implementation this one replaced (bisection in log τ to 1e-9, each
# profile value by Newton in μ to steps of 1e-9), computed once with it.
PREVIOUS = {
    ("grouped", 1, 0.95): (0.4065789789265822, 0.6256542103710374),
    ("grouped", 1, 0.5): (0.46517619682563466, 0.5392765145459376),
    ("grouped", 9, 0.95): (0.40683811448965224, 0.6261888221096557),
    ("grouped", 9, 0.5): (0.46549818522330455, 0.5396891567603326),
    ("many", 1, 0.95): (0.299016678571248, 0.6808936918485226),
    ("many", 1, 0.5): (0.4429309345889896, 0.5693728380511512),
    ("many", 9, 0.95): (0.3428472088303716, 0.7349359847873529),
    ("many", 9, 0.5): (0.4869501192662082, 0.6177499183264211),
    ("weak", 1, 0.95): (0.0, 0.24921059831180226),
    ("weak", 1, 0.5): (0.0, 0.09430818720824215),
    ("weak", 9, 0.95): (0.0, 0.25110178287479157),
    ("weak", 9, 0.5): (0.0, 0.09447107709080634),
    ("boundary", 1, 0.95): (0.0, 0.4166645521379729),
    ("boundary", 9, 0.95): (0.0, 0.42143029478879396),
}


@pytest.fixture(scope="module")
def fits() -> dict[tuple[str, int], logitshift.GroupShiftFit]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {(name, nagq): logitshift.fit_groups(*_data(name), shrinkage="random",
                                                    nagq=nagq)
                for name, nagq, _ in PREVIOUS}


def _profile(result: logitshift.GroupShiftFit, tau: float) -> float:
    """``min_μ -log L(μ, τ)`` by scipy's Brent, apart from the interval's own search."""
    marginal = result._random.marginal
    return optimize.minimize_scalar(lambda m: marginal(m, math.log(tau)),
                                    bracket=(result.mean - 0.2, result.mean + 0.2),
                                    tol=1e-12).fun


@pytest.mark.parametrize("case", list(PREVIOUS), ids=lambda c: "-".join(map(str, c)))
def test_the_ends_are_where_the_profile_deviance_reaches_the_quantile(fits, case):
    name, nagq, level = case
    result = fits[name, nagq]
    low, high = result.tau_confint(level)
    quantile = stats.chi2.ppf(level, 1)
    pooled_loss = result.pooled.loss * result.pooled.weight_sum
    assert 0.0 <= low <= result.tau < high < math.inf
    if low == 0.0:
        # No end below: the deviance of τ = 0 (the pooled fit) is within the quantile.
        assert 2 * (pooled_loss + result.loglik) <= quantile
    else:
        assert 2 * (_profile(result, low) + result.loglik) == pytest.approx(quantile,
                                                                            abs=1e-7)
    assert 2 * (_profile(result, high) + result.loglik) == pytest.approx(quantile, abs=1e-7)
    # Beyond each end the deviance is above the quantile, inside it below.
    assert 2 * (_profile(result, high * 1.01) + result.loglik) > quantile
    if low > 0:
        assert 2 * (_profile(result, low * 0.99) + result.loglik) > quantile
    # Where the bisection put them: both searches stop within about 1e-10 of the root.
    previous = PREVIOUS[case]
    assert low == pytest.approx(previous[0], abs=1e-8)
    assert high == pytest.approx(previous[1], abs=1e-8)


@pytest.mark.parametrize("name, nagq", [("grouped", 1), ("many", 9), ("weak", 9),
                                        ("boundary", 1)])
def test_the_interval_needs_a_handful_of_profile_values(fits, name, nagq, monkeypatch):
    # Each profile value is three values of log L (a Newton step in μ), rarely six; each
    # end takes five or six of them. The bisection took 240 to 450 values of log L here.
    calls = []
    value = _groups._Marginal.__call__

    def counted(self, mean, log_tau):
        calls.append((mean, log_tau))
        return value(self, mean, log_tau)

    monkeypatch.setattr(_groups._Marginal, "__call__", counted)
    result = fits[name, nagq]
    result.tau_confint()
    assert 0 < len(calls) <= 60


# -- the exact derivatives behind both (`kernels.group_integrals`) ---------------------------

def _rows(seed: int) -> tuple[np.ndarray, ...]:
    """Groups of 1 to 60 rows, some of one label, weights that vary, one of a single row."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 60, 30)
    sizes[7] = 1
    group = np.repeat(np.arange(sizes.size), sizes)
    offset = rng.normal(0.0, 1.5, group.size)
    y = (rng.random(group.size) < special.expit(offset - 0.3 + rng.normal(0, 0.7, 30)[group])
         ).astype(float)
    y[group == 3] = 0.0
    y[group == 4] = 1.0
    weight = rng.uniform(0.5, 2.0, group.size)
    return y, group, offset, weight


def _sketch(seed: int, light: bool = False) -> logitshift.GroupSketch:
    y, group, offset, weight = _rows(seed)
    if light:  # its sums in units of 2**-600 of its own
        weight = np.where(group == 9, weight * 2.0 ** -600, weight)
    return logitshift.GroupSketch().update(y, group, offset, weight)


def _sigma_derivatives(z: mpmath.mpf) -> list[mpmath.mpf]:
    """σ and its first three derivatives at ``z``."""
    s = 1 / (1 + mpmath.exp(-z))
    return [s, s * (1 - s), s * (1 - s) * (1 - 2 * s), s * (1 - s) * (1 - 6 * s + 6 * s * s)]


@pytest.mark.parametrize("seed", [1, 2])
def test_each_groups_loss_and_four_derivatives_are_the_rows_to_rounding(seed):
    # Against the rows themselves in 40 digits (the Taylor tables' own error is ~1e-17 of
    # each row), and against the group sums the solver uses (`evaluate_groups`).
    from logitshift._core import kernels
    from logitshift._summary import group_sketch

    y, group, offset, weight = _rows(seed)
    sketch = _sketch(seed)
    shifts = np.random.default_rng(seed).normal(0.0, 2.0, sketch.n_groups)
    shifts[0] = 40.0  # far in a tail
    out = np.zeros((sketch.n_groups, 5))
    kernels.group_derivatives(sketch._start, sketch._centres, sketch._tables, shifts, 4,
                              group_sketch._INTEGRAL_COEFFICIENTS, group_sketch._FACTORIALS,
                              out)
    terms = sketch.evaluate_groups(shifts)
    np.testing.assert_allclose(out[:, 0], terms.loss, rtol=1e-13)
    np.testing.assert_allclose(out[:, 1], terms.gradient, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(out[:, 2], terms.hessian, rtol=1e-12)
    mpmath.mp.dps = 40
    for g in range(sketch.n_groups):
        rows = group == g
        exact = [mpmath.mpf(0)] * 5
        for yy, ff, ww in zip(y[rows], offset[rows], weight[rows]):
            z = mpmath.mpf(float(ff)) + mpmath.mpf(float(shifts[g]))
            s = _sigma_derivatives(z)
            w = mpmath.mpf(float(ww))
            exact[0] += w * (mpmath.log1p(mpmath.exp(-z)) + (1 - yy) * z)
            exact[1] += w * (s[0] - yy)
            for k in (2, 3, 4):
                exact[k] += w * s[k - 1]
        for k in range(5):
            assert out[g, k] == pytest.approx(float(exact[k]), rel=1e-11,
                                              abs=1e-13 * float(exact[2]) + 1e-300), (g, k)


def _integrals(sketch: logitshift.GroupSketch, mean: float, log_tau: float, nagq: int,
               start: np.ndarray | None = None) -> _groups.GroupIntegrals:
    nodes, weights = _groups._hermite_rule(nagq)
    totals = sketch.group_totals
    exponent = totals.scale_exponent.astype(np.intc)
    wanted = np.ones(sketch.n_groups, dtype=bool)
    start = np.zeros(sketch.n_groups) if start is None else start
    return sketch.group_integrals(mean, math.exp(log_tau), start,
                                  np.ldexp(totals.active_negatives, exponent),
                                  np.ldexp(totals.active_positives, exponent), nodes, weights,
                                  wanted)


@pytest.mark.parametrize("nagq", [1, 2, 7])
@pytest.mark.parametrize("point", [(-0.2, math.log(0.8)), (0.5, math.log(0.02)),
                                   (0.1, math.log(4.0))], ids=["middle", "small", "large"])
@pytest.mark.parametrize("light", [False, True], ids=["", "light"])
def test_group_integrals_derivatives_are_their_values_differences(nagq, point, light):
    # Each group's gradient and Hessian in (μ, log τ) against central differences of its
    # value and gradient, its mode's derivatives against differences of its mode; the value
    # itself is the row-by-row numpy implementation's (test_groups). The light group's sums
    # are kept in units of 2**-600 (`GroupTotals.scale_exponent`): in the user's, nearly 0.
    sketch = _sketch(3, light)
    assert sketch._exponent.any() == light
    here = _integrals(sketch, *point, nagq)
    assert (here.iterations >= 1).all() and (here.iterations <= 20).all()
    h = 1e-5
    for axis in range(2):
        step = np.array([h, 0.0]) if axis == 0 else np.array([0.0, h])
        up = _integrals(sketch, *(np.array(point) + step), nagq)
        down = _integrals(sketch, *(np.array(point) - step), nagq)
        scale = np.abs(here.value) + 1.0

        def difference(a, b):
            return (a - b) / (2 * h)

        _assert_close(here.gradient[:, axis], difference(up.value, down.value), 1e-6,
                      1e-8 * scale)
        hessian = here.hessian[:, [0, 1]] if axis == 0 else here.hessian[:, [1, 2]]
        _assert_close(hessian, difference(up.gradient, down.gradient), 1e-6,
                      1e-8 * scale[:, None])
        np.testing.assert_allclose(here.shift_gradient[:, axis], difference(up.shift, down.shift),
                                   rtol=1e-6, atol=1e-9)
        second = here.shift_hessian[:, [0, 1]] if axis == 0 else here.shift_hessian[:, [1, 2]]
        np.testing.assert_allclose(second, difference(up.shift_gradient, down.shift_gradient),
                                   rtol=1e-6, atol=1e-9)


def _assert_close(actual: np.ndarray, expected: np.ndarray, rtol: float, atol: np.ndarray
                  ) -> None:
    bad = ~(np.abs(actual - expected) <= rtol * np.abs(expected) + atol)
    assert not bad.any(), (actual[bad], expected[bad])


def test_group_integrals_find_the_same_modes_from_any_start():
    sketch = _sketch(4)
    cold = _integrals(sketch, 0.3, math.log(0.7), 5)
    rng = np.random.default_rng(0)
    warm = _integrals(sketch, 0.3, math.log(0.7), 5, cold.shift - 0.3)
    far = _integrals(sketch, 0.3, math.log(0.7), 5, rng.normal(0, 30, sketch.n_groups))
    assert (warm.iterations == 1).all()
    for other in (warm, far):
        np.testing.assert_allclose(other.shift, cold.shift, rtol=0, atol=1e-12)
        np.testing.assert_allclose(other.value, cold.value, rtol=1e-14)


@pytest.mark.parametrize("name, nagq", [("many", 9), ("weak", 9), ("boundary", 1),
                                        ("grouped", 1)])
def test_the_fit_needs_a_few_values_of_log_l(name, nagq):
    # Each value of log L comes with its exact gradient and Hessian: Newton takes one a
    # step, from a moment estimate of τ; towards τ̂ = 0 (weak) it reaches in steps of 3 in
    # log τ. With differences it took six values a step, and 46 to 300 in all.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = logitshift.fit_groups(*_data(name), shrinkage="random", nagq=nagq)
    assert result.converged
    assert result._random.marginal.evaluations <= 14


def test_the_interval_takes_a_few_values_on_many_groups(monkeypatch):
    calls = []
    value = _groups._Marginal.__call__

    def counted(self, mean, log_tau, *rest):
        calls.append((mean, log_tau))
        return value(self, mean, log_tau, *rest)

    monkeypatch.setattr(_groups._Marginal, "__call__", counted)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = logitshift.fit_groups(*_many(9, 60_000, 20_000, 0.6), shrinkage="random",
                                       nagq=5)
    calls.clear()
    low, high = result.tau_confint()
    assert 0 < low < result.tau < high
    assert len(calls) <= 8


@pytest.mark.parametrize("output", [[], ["--json"]], ids=["text", "json"])
def test_the_cli_computes_the_interval_of_tau_once(tmp_path, monkeypatch, capsys, output):
    from logitshift.cli import main

    y, group, offset = _many(3, 3000, 1000, 0.6)
    path = tmp_path / "rows.csv"
    pd.DataFrame({"y": y.astype(int), "g": group, "f": offset}).to_csv(path, index=False)
    calls = []
    interval = logitshift.GroupShiftFit.tau_confint

    def counted(self, *args, **kwargs):
        calls.append(args)
        return interval(self, *args, **kwargs)

    monkeypatch.setattr(logitshift.GroupShiftFit, "tau_confint", counted)
    assert main(["fit", str(path), "--label", "y", "--offset", "f", "--group", "g",
                 "--shrink", "--nagq", "3", *output]) == 0
    assert "tau" in capsys.readouterr().out
    assert len(calls) == 1
