"""The L2 penalty on per-group shifts (``fit_groups(..., l2=λ)``): against a numpy Newton per
group, from every source, its invariances and the options it is refused with."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import logitshift
from logitshift import InputError
from reference import penalised_shift


@pytest.fixture(scope="module")
def rows() -> dict[str, np.ndarray]:
    """40 groups of 30 to 2000 rows with weights; group 3's labels are all 1, group 4's all 0,
    group 5 has one row."""
    rng = np.random.default_rng(23)
    n = 30_000
    group = rng.integers(0, 40, n)
    group[group == 5] = 6
    group[0] = 5
    offset = rng.normal(0.0, 2.0, n)
    weight = rng.exponential(size=n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(offset + 0.3 * (group % 7 - 3))))).astype(float)
    y[group == 3], y[group == 4] = 1.0, 0.0
    return {"y": y, "group": group, "offset": offset, "weight": weight}


@pytest.fixture(scope="module")
def references(rows: dict[str, np.ndarray]) -> dict[float, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for l2 in (0.25, 3.0, 400.0):
        pairs = [penalised_shift(*(rows[name][rows["group"] == g]
                                    for name in ("y", "offset", "weight")), l2)
                 for g in range(40)]
        out[l2] = (np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs]))
    return out


@pytest.mark.parametrize("l2", [0.25, 3.0, 400.0])
def test_l2_equals_a_numpy_newton_per_group(rows, references, l2):
    result = logitshift.fit_groups(rows["y"], rows["group"], rows["offset"], rows["weight"],
                                   l2=l2)
    shift, information = references[l2]
    assert result.groups.tolist() == list(range(40))
    assert np.all(np.abs(result.shift - shift) <= 1e-13 * np.maximum(1.0, np.abs(shift)))
    # The one-class groups are finite and on the side of their labels.
    assert math.isfinite(result.shift[3]) and result.shift[3] > 0
    assert math.isfinite(result.shift[4]) and result.shift[4] < 0
    assert set(result.status.tolist()) == {"converged"}
    np.testing.assert_allclose(result.se, 1.0 / np.sqrt(information), rtol=1e-12)
    assert result.l2 == l2 and result.to_dict()["l2"] == l2


def test_l2_zero_is_the_maximum_likelihood_fit(rows):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = logitshift.fit_groups(rows["y"], rows["group"], rows["offset"], rows["weight"])
        zero = logitshift.fit_groups(rows["y"], rows["group"], rows["offset"], rows["weight"],
                                     l2=0.0)
    np.testing.assert_array_equal(plain.shift, zero.shift)
    assert plain.lr_test() == zero.lr_test()


def test_the_penalised_shift_lies_between_zero_and_the_maximum_likelihood_shift(rows):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        free = logitshift.fit_groups(rows["y"], rows["group"], rows["offset"], rows["weight"])
    shifts = [logitshift.fit_groups(rows["y"], rows["group"], rows["offset"], rows["weight"],
                                    l2=l2).shift for l2 in (0.1, 1.0, 10.0, 100.0)]
    for weaker, stronger in zip(shifts, shifts[1:]):
        assert np.all(np.abs(stronger) <= np.abs(weaker))
        assert np.all(np.sign(stronger) == np.sign(free.shift))


@pytest.mark.parametrize("power", [-700, 600])
def test_weights_and_l2_scaled_together_leave_the_shifts_unchanged(rows, power):
    """The penalty is in the weights' units: both times 2**k is the same problem, whatever
    the groups' own units (here beyond the doubles' range for a plain sum)."""
    base = logitshift.fit_groups(rows["y"], rows["group"], rows["offset"], rows["weight"],
                                 l2=3.0)
    scaled = logitshift.fit_groups(rows["y"], rows["group"], rows["offset"],
                                   np.ldexp(rows["weight"], power), l2=math.ldexp(3.0, power))
    np.testing.assert_allclose(scaled.shift, base.shift, rtol=1e-13, atol=1e-13)


def test_the_penalised_profile_interval_brackets_the_shift_and_the_wald_one_uses_the_se(rows):
    result = logitshift.fit_groups(rows["y"], rows["group"], rows["offset"], rows["weight"],
                                   l2=3.0)
    low, high = result.confint()
    assert np.all(low < result.shift) and np.all(result.shift < high)
    # The penalised objective rises by z²/2 at both ends.
    objective = result._objective
    everyone = np.ones(result.n_groups, dtype=bool)
    rise = (objective(low, everyone).loss - objective(result.shift, everyone).loss)
    half = 0.5 * 1.959963984540054 ** 2
    np.testing.assert_allclose(np.ldexp(rise, 0) / half, 1.0, rtol=1e-6)
    low, high = result.confint(method="wald")
    np.testing.assert_allclose(high - result.shift, 1.959963984540054 * result.se, rtol=1e-12)


def test_the_statistics_that_need_maximum_likelihood_say_so(rows):
    result = logitshift.fit_groups(rows["y"], rows["group"], rows["offset"], l2=1.0)
    test = result.lr_test()
    assert math.isnan(test.statistic) and math.isnan(test.pvalue)
    with pytest.raises(InputError, match="l2 = 1.0"):
        result.fit_of(0)
    assert "l2=1" in repr(result)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, "1", True, None])
def test_bad_l2_is_refused_by_name(rows, bad):
    with pytest.raises(InputError, match="l2 = "):
        logitshift.fit_groups(rows["y"], rows["group"], l2=bad)


def test_l2_with_random_intercepts_is_refused_by_name(rows):
    with pytest.raises(InputError, match="l2 = 2.0 cannot be combined with shrinkage='random'.*1/tau"):
        logitshift.fit_groups(rows["y"], rows["group"], shrinkage="random", l2=2.0)


def test_the_caller_arrays_are_not_modified(rows):
    copies = {name: value.copy() for name, value in rows.items()}
    logitshift.fit_groups(rows["y"], rows["group"], rows["offset"], rows["weight"], l2=2.0)
    for name, value in rows.items():
        np.testing.assert_array_equal(value, copies[name])


def test_every_source_gives_the_same_penalised_shifts(rows, tmp_path):
    expected = logitshift.fit_groups(rows["y"], rows["group"], rows["offset"], rows["weight"],
                                     l2=3.0)
    frame = pd.DataFrame(rows)
    from_frame = logitshift.fit_groups_frame(frame, "y", "group", "offset", "weight", l2=3.0)
    path = tmp_path / "rows.parquet"
    frame.to_parquet(path)
    from_file = logitshift.fit_groups_file(path, "y", "group", "offset", "weight", l2=3.0)
    results = [from_frame, from_file]
    dask_array = pytest.importorskip("dask.array")
    import dask
    from logitshift.dask import fit_groups_arrays

    with dask.config.set(scheduler="synchronous"):
        results.append(fit_groups_arrays(
            *(dask_array.from_array(rows[name], chunks=7000)
              for name in ("y", "group", "offset", "weight")), l2=3.0))
    halves = [logitshift.GroupSketch().update(*(rows[name][part] for name in
                                                ("y", "group", "offset", "weight")))
              for part in (slice(0, 12_345), slice(12_345, None))]
    results.append(sum(halves).solve(l2=3.0))
    for result in results:
        assert result.l2 == 3.0
        np.testing.assert_allclose(result.shift, expected.shift, rtol=1e-13, atol=1e-13)


def test_the_cli_takes_l2_for_grouped_fits_and_refuses_it_alone(rows, tmp_path):
    path = tmp_path / "rows.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    run = [sys.executable, "-m", "logitshift", "fit", str(path), "--label", "y", "--offset",
           "offset", "--weight", "weight"]
    done = subprocess.run(run + ["--group", "group", "--l2", "3", "--json"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    expected = logitshift.fit_groups(rows["y"], rows["group"], rows["offset"], rows["weight"],
                                     l2=3.0)
    assert out["l2"] == 3.0
    np.testing.assert_allclose(out["shift"], expected.shift, rtol=1e-12)
    for extra, message in ((["--l2", "1"], "--l2 applies to per-group fits"),
                           (["--group", "group", "--l2", "-1"], "--l2 -1.0 must be")):
        done = subprocess.run(run + extra, capture_output=True, text=True)
        assert done.returncode == 2 and message in done.stderr
        assert len(done.stderr.strip().splitlines()) == 1


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), l2=st.floats(1e-3, 1e3), move=st.floats(-5.0, 5.0))
def test_the_penalised_gradient_vanishes_at_the_answer(seed, l2, move):
    """At each group's shift ``Σ w (σ(z) - y) + l2 s = 0`` to rounding; a common change of
    every offset is not undone by the shift (the penalty pins 0), but keeps it a root."""
    rng = np.random.default_rng(seed)
    n = 300
    group = rng.integers(0, 4, n)
    offset = rng.normal(0.0, 1.5, n) + move
    weight = rng.exponential(size=n)
    y = (rng.random(n) < 0.4).astype(float)
    result = logitshift.fit_groups(y, group, offset, weight, l2=l2)
    for i, g in enumerate(result.groups.tolist()):
        rows_of = group == g
        z = offset[rows_of] + result.shift[i]
        p = 1.0 / (1.0 + np.exp(-z))
        gradient = np.sum(weight[rows_of] * (p - y[rows_of])) + l2 * result.shift[i]
        scale = np.sum(weight[rows_of]) + l2 * abs(result.shift[i])
        assert abs(gradient) <= 1e-12 * scale


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), l2=st.floats(1e-2, 1e2))
def test_integer_weights_are_repeated_rows_and_order_does_not_matter(seed, l2):
    rng = np.random.default_rng(seed)
    n = 200
    group = rng.integers(0, 3, n)
    offset = rng.normal(0.0, 1.5, n)
    y = (rng.random(n) < 0.5).astype(float)
    counts = rng.integers(1, 4, n)
    weighted = logitshift.fit_groups(y, group, offset, counts.astype(float), l2=l2)
    repeated = logitshift.fit_groups(np.repeat(y, counts), np.repeat(group, counts),
                                     np.repeat(offset, counts), l2=l2)
    np.testing.assert_allclose(weighted.shift, repeated.shift, rtol=1e-12, atol=1e-13)
    order = rng.permutation(n)
    shuffled = logitshift.fit_groups(y[order], group[order], offset[order],
                                     counts[order].astype(float), l2=l2)
    np.testing.assert_allclose(shuffled.shift, weighted.shift, rtol=1e-12, atol=1e-13)
