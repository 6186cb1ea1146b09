"""The profile interval of the random intercepts' τ (`GroupShiftFit.tau_confint`): its ends
are where the profile deviance reaches the chi-square quantile, found in a handful of
evaluations of the likelihood, and where the bisection it replaced put them."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

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
