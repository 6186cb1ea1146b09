"""Per-group shifts and random intercepts (`logitshift.fit_groups`, `GroupSketch`), against
`logitshift.fit` on each group's rows, R's glm and lme4's glmer (tests/data/glmer), and an
independent numpy implementation that sums row by row."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st
from scipy import optimize, special, stats

import logitshift
from logitshift._summary.group_sketch import GroupSketch, group_codes

DATA = Path(__file__).parent / "data" / "glmer"


def _reference(name: str) -> dict[tuple[str, int, str], float]:
    table = pd.read_csv(DATA / name)
    return {(row.dataset, int(row.nagq), row.name): float(row.value)
            for row in table.itertuples()}


def _modes(name: str, dataset: str, nagq: int) -> pd.DataFrame:
    table = pd.read_csv(DATA / name)
    return table[(table.dataset == dataset) & (table.nagq == nagq)]


@pytest.fixture(scope="module")
def grouped() -> pd.DataFrame:
    return pd.read_csv(DATA / "grouped.csv")


@pytest.fixture(scope="module")
def cbpp() -> dict[str, np.ndarray]:
    data = pd.read_csv(DATA / "cbpp.csv")
    n = len(data)
    return {"y": np.r_[np.ones(n), np.zeros(n)],
            "group": np.r_[data.herd, data.herd],
            "offset": np.r_[data.lp, data.lp],
            "weight": np.r_[data.incidence, data["size"] - data.incidence].astype(float)}


def _fit(*args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return logitshift.fit_groups(*args, **kwargs)


@pytest.fixture(scope="module")
def random_fits(grouped):
    return {nagq: _fit(grouped.y.values, grouped.group.values, grouped.offset.values,
                       shrinkage="random", nagq=nagq) for nagq in (1, 25)}


# -- per-group maximum likelihood ------------------------------------------------------------

def test_each_group_is_fit_on_its_rows_and_r_glm(grouped):
    result = _fit(grouped.y.values, grouped.group.values, grouped.offset.values)
    reference = _reference("glmer_reference.csv")
    assert result.groups.tolist() == sorted(grouped.group.unique())
    checked = 0
    for i, key in enumerate(result.groups):
        rows = grouped.group.values == key
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            alone = logitshift.fit(grouped.y.values[rows], grouped.offset.values[rows])
        assert result.status[i] == alone.status
        assert result.n_rows[i] == alone.n_rows and result.positives[i] == alone.positives
        if math.isfinite(alone.shift):
            assert abs(result.shift[i] - alone.shift) <= 1e-13
            assert result.se[i] == pytest.approx(alone.se, rel=1e-13)
            assert result.loss[i] == pytest.approx(alone.loss, rel=1e-13)
            assert result.loss_at_zero[i] == pytest.approx(alone.loss_at_zero, rel=1e-13)
            assert result.observed_expected[i] == pytest.approx(
                alone.observed_expected.ratio, rel=1e-12)
            assert abs(result.shift[i] - reference[("grouped", 0, f"mle.{key}")]) <= 1e-8
            # glm's SE is from its IRLS weights one iteration before its estimate.
            assert result.se[i] == pytest.approx(reference[("grouped", 0, f"mle_se.{key}")],
                                                 rel=1e-7)
            checked += 1
        else:
            assert result.shift[i] == alone.shift
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full = result.fit_of(key)
        assert full.shift == alone.shift or abs(full.shift - alone.shift) <= 1e-14
        assert full.confint() == pytest.approx(alone.confint(), abs=1e-12)
    assert checked == 58


def test_degenerate_groups_warn_once_with_their_count(grouped):
    with pytest.warns(RuntimeWarning, match="2 of 60 groups have labels of one class") as got:
        result = logitshift.fit_groups(grouped.y.values, grouped.group.values,
                                       grouped.offset.values)
    assert len(got) == 1
    assert result.status.tolist().count("all_negative") == 2
    assert np.isneginf(result.shift[result.status == "all_negative"]).all()
    finite = _fit(grouped.y.values, grouped.group.values, grouped.offset.values,
                  pseudo_count=0.5)
    assert np.isfinite(finite.shift).all()
    rows = grouped.group.values == "g02"
    alone = logitshift.fit(grouped.y.values[rows], grouped.offset.values[rows],
                           pseudo_count=0.5)
    assert abs(finite.shift[2] - alone.shift) <= 1e-13
    assert finite.se[2] == pytest.approx(alone.se, rel=1e-13)


def test_with_random_intercepts_the_warning_does_not_suggest_them(grouped):
    with pytest.warns(RuntimeWarning, match="2 of 60 groups have labels of one class") as got:
        result = logitshift.fit_groups(grouped.y.values, grouped.group.values,
                                       grouped.offset.values, shrinkage="random")
    (message,) = [str(warning.message) for warning in got]
    assert "shrinkage=" not in message and "their shrunk shifts are finite" in message
    assert np.isfinite(result.shrunk[result.status == "all_negative"]).all()


def test_lr_test_of_one_common_shift(grouped):
    result = _fit(grouped.y.values, grouped.group.values, grouped.offset.values)
    reference = _reference("glmer_reference.csv")
    # Total log-likelihoods: the pooled glm's from R, the groups' from their fits.
    per_group = float(np.sum(result.loss * result.weight_sum))
    statistic = 2 * (-reference[("grouped", 0, "pooled_loglik")] - per_group)
    test = result.lr_test()
    assert test.statistic == pytest.approx(statistic, rel=1e-10)
    assert test.pvalue == pytest.approx(stats.chi2.sf(statistic, 59), rel=1e-10)
    assert result.pooled.shift == pytest.approx(reference[("grouped", 0, "pooled_shift")],
                                                abs=1e-8)


@pytest.mark.parametrize("df", [1, 2, 5, 59, 400])
@pytest.mark.parametrize("statistic", [0.01, 1.0, 7.5, 60.0, 300.0, 900.0])
def test_chi2_survival_matches_scipy(df, statistic):
    from logitshift._estimators.result import chi2_sf

    assert chi2_sf(statistic, df) == pytest.approx(stats.chi2.sf(statistic, df), rel=1e-12,
                                                   abs=1e-300)


def test_one_group_equals_fit():
    rng = np.random.default_rng(3)
    offset = rng.normal(0, 2, 5000)
    y = rng.random(5000) < special.expit(offset - 1)
    weight = rng.integers(0, 4, 5000).astype(float)
    result = _fit(y, np.zeros(5000, dtype=int), offset, weight)
    alone = logitshift.fit(y, offset, weight)
    assert result.shift[0] == pytest.approx(alone.shift, abs=1e-14)
    assert result.se[0] == pytest.approx(alone.se, rel=1e-13)
    assert result.pooled.shift == pytest.approx(alone.shift, abs=1e-14)
    mine, theirs = result.fit_of(0).to_dict(), alone.to_dict()
    assert mine.keys() == theirs.keys()
    for name, value in theirs.items():
        if isinstance(value, str):
            assert mine[name] == value
        else:
            assert mine[name] == pytest.approx(value, rel=1e-12, abs=1e-14), name
    assert result.lr_test().statistic == pytest.approx(0.0, abs=1e-9)


def test_permuting_group_labels_permutes_results(grouped):
    result = _fit(grouped.y.values, grouped.group.values, grouped.offset.values)
    keys = result.groups
    rename = dict(zip(keys, [f"h{59 - i:02d}" for i in range(keys.size)]))
    renamed = _fit(grouped.y.values, grouped.group.map(rename).values, grouped.offset.values)
    order = [renamed.groups.tolist().index(rename[key]) for key in keys]
    np.testing.assert_array_equal(renamed.shift[order], result.shift)
    np.testing.assert_array_equal(renamed.se[order], result.se)
    np.testing.assert_array_equal(renamed.status[order], result.status)
    shuffled = np.random.default_rng(0).permutation(len(grouped))
    again = _fit(grouped.y.values[shuffled], grouped.group.values[shuffled],
                 grouped.offset.values[shuffled])
    np.testing.assert_allclose(again.shift, result.shift, atol=1e-13, rtol=0)


# -- group labels of every kind ----------------------------------------------------------------

def test_every_kind_of_group_column_gives_the_same_fit(grouped):
    import polars as pl
    import pyarrow as pa

    y, offset = grouped.y.values, grouped.offset.values
    names = np.asarray(grouped.group.values, dtype=object)
    codes = np.array([int(name[1:]) for name in names])
    expected = _fit(y, codes, offset)
    assert expected.groups.tolist() == list(range(60))
    levels = np.array([f"g{i:02d}" for i in range(60)])
    columns = {
        "str": names.astype(str), "object": names,
        "pandas": grouped.group, "categorical": grouped.group.astype("category"),
        "pandas categorical unsorted": pd.Categorical(names, categories=levels[::-1]),
        "polars": pl.Series(names), "polars categorical": pl.Series(names,
                                                                    dtype=pl.Categorical),
        "arrow": pa.array(names), "arrow chunked": pa.chunked_array([names[:5000],
                                                                     names[5000:]]),
        "arrow dictionary": pa.array(names).dictionary_encode(),
        "list": names.tolist(), "float": codes.astype(float) * 0.5,
        "int8": codes.astype(np.int8), "uint64 large": codes.astype(np.uint64) * 10**15,
    }
    for what, column in columns.items():
        result = _fit(y, column, offset)
        np.testing.assert_allclose(result.shift, expected.shift, atol=1e-14, rtol=0,
                                   err_msg=what)
        assert result.n_groups == 60, what
    coded = _fit(y, codes, offset, levels=levels)
    assert coded.groups.tolist() == levels.tolist()
    np.testing.assert_array_equal(coded.shift, expected.shift)
    assert _fit(y, names, offset).groups.tolist() == levels.tolist()


def test_bool_and_mixed_labels():
    y = np.array([0, 1, 1, 0, 1, 0])
    result = _fit(y, np.array([True, False, True, False, True, False]))
    assert result.groups.tolist() == [False, True]
    mixed = _fit(y, np.array([1, "a", 1, "a", 2, "a"], dtype=object))
    assert sorted(map(str, mixed.groups.tolist())) == ["1", "2", "a"]


@pytest.mark.parametrize("group, message", [
    (pd.Series(["a", None, "b", "a"]), r"group\[1\] is missing"),
    (pd.Series(["a", "b", "b", None], dtype="category"), r"group\[3\] is missing"),
    (np.array(["a", "b", None, "a"], dtype=object), r"group\[2\] is missing"),
    (np.array([1.0, 2.0, 1.0, np.nan]), r"group\[3\] is nan"),
    (np.array([[1, 2], [1, 2]]), "must be 1-D"),
    (np.array([1, 2, 3]), "group has 3 rows, y has 4"),
])
def test_bad_groups(group, message):
    with pytest.raises(logitshift.InputError, match=message) as error:
        logitshift.fit_groups(np.array([0, 1, 0, 1]), group)
    assert error.value.argument == "group"


@pytest.mark.parametrize("group, index, problem", [
    (pd.Series(["a", None, "b", "a"]), 101, "missing"),
    (pd.Series(["a", "b", "b", None], dtype="category"), 103, "missing"),
    (np.array(["a", "b", None, "a"], dtype=object), 102, "missing"),
    (np.array([1.0, 2.0, 1.0, np.nan]), 103, "nan"),
], ids=["pandas", "categorical", "object", "float"])
def test_a_chunks_bad_group_is_numbered_from_its_first_row(group, index, problem):
    # A stream's chunk (a file's batch, a Dask chunk) numbers its rows from where it starts.
    with pytest.raises(logitshift.InputError, match=rf"group\[{index}\] is {problem}") as error:
        GroupSketch().update(np.array([0, 1, 0, 1]), group, first_row=100)
    assert error.value.index == index


def test_bad_groups_of_other_libraries_and_codes():
    import polars as pl
    import pyarrow as pa

    y = np.array([0, 1, 0, 1])
    for group in (pl.Series(["a", "b", None, "a"]), pa.array(["a", "b", None, "a"])):
        with pytest.raises(logitshift.InputError, match=r"group\[2\] is missing"):
            logitshift.fit_groups(y, group)
    with pytest.raises(logitshift.InputError, match=r"group\[3\] = 5 is not a code of the 2"):
        logitshift.fit_groups(y, np.array([0, 1, 0, 5]), levels=["a", "b"])
    with pytest.raises(logitshift.InputError, match=r"label y\[2\] = 2"):
        logitshift.fit_groups(np.array([0, 1, 2, 1]), np.array([0, 1, 0, 1]))
    with pytest.raises(logitshift.InputError, match="shrinkage"):
        logitshift.fit_groups(y, np.array([0, 1, 0, 1]), shrinkage="fixed")
    with pytest.raises(logitshift.InputError, match="nagq applies"):
        logitshift.fit_groups(y, np.array([0, 1, 0, 1]), nagq=5)


def test_more_groups_than_rows_and_groups_without_weight():
    y = np.array([0, 1, 1, 0, 1])
    result = _fit(y, np.array([0, 0, 1, 2, 3]), np.array([0.1, -0.2, 0.3, 0.0, 1.0]),
                  np.array([1.0, 1.0, 0.0, 2.0, 1.0]))
    assert result.status.tolist() == ["converged", "no_weight", "all_negative",
                                      "all_positive"]
    assert math.isnan(result.shift[1]) and result.n_rows[1] == 1
    with pytest.raises(logitshift.InputError, match="weight is zero"):
        result.fit_of(1)


# -- the sketch: merging and moving it -----------------------------------------------------

def _assert_same_sketch(a: GroupSketch, b: GroupSketch, rel: float = 1e-12) -> None:
    assert a.keys.tolist() == b.keys.tolist()
    np.testing.assert_array_equal(a._start, b._start)
    np.testing.assert_array_equal(a._centres, b._centres)
    np.testing.assert_allclose(a._tables, b._tables, rtol=rel, atol=1e-300)
    np.testing.assert_array_equal(a._n_rows, b._n_rows)
    np.testing.assert_allclose(a._sums, b._sums, rtol=rel)
    np.testing.assert_array_equal(a._range, b._range)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 400), st.integers(1, 30), st.integers(0, 400),
       st.floats(0.1, 40.0), st.booleans(), st.integers(0, 2**32 - 1))
def test_merging_sketches_of_disjoint_rows_equals_one_sketch(n, groups, cut, scale,
                                                             weighted, seed):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int8)
    group = rng.integers(0, groups, n) * 7 - 3
    offset = rng.normal(0, scale, n)
    weight = rng.integers(0, 3, n).astype(float) if weighted else None
    cut = min(cut, n)
    whole = GroupSketch().update(y, group, offset, weight)
    parts = [GroupSketch().update(y[s], group[s], offset[s],
                                  None if weight is None else weight[s])
             for s in (slice(0, cut), slice(cut, n))]
    _assert_same_sketch(parts[0] + parts[1], whole)
    _assert_same_sketch(sum(parts), whole)
    streamed = GroupSketch()
    for s in (slice(0, cut), slice(cut, n)):
        streamed.update(y[s], group[s], offset[s], None if weight is None else weight[s])
    _assert_same_sketch(streamed, whole)
    _assert_same_sketch(GroupSketch.from_bytes(whole.to_bytes()), whole, rel=0)


def test_group_sketch_matches_the_sketch_of_each_group():
    rng = np.random.default_rng(5)
    n = 300_000  # several threads; a group spread over a wide range takes the sparse path
    group = rng.integers(0, 50, n)
    offset = rng.normal(0, 1.5, n)
    offset[group == 7] *= 400
    y = rng.random(n) < special.expit(offset)
    sketch = GroupSketch().update(y, group, offset)
    for key in (0, 7, 49):
        rows = group == key
        alone = logitshift.Sketch().update(y[rows], offset[rows])
        mine = sketch.sketch_of(key)
        np.testing.assert_array_equal(mine._centres, alone._centres)
        np.testing.assert_allclose(mine._tables, alone._tables, rtol=1e-12, atol=1e-300)
        assert mine.solve().shift == pytest.approx(alone.solve().shift, abs=1e-13)
    pooled = logitshift.Sketch().update(y, offset)
    assert sketch.pooled().solve().shift == pytest.approx(pooled.solve().shift, abs=1e-13)


def test_bytes_are_checked():
    sketch = GroupSketch().update(np.array([0, 1, 1]), np.array(["a", "b", "a"]),
                                  np.array([0.5, -1.0, 2.0]))
    blob = sketch.to_bytes()
    assert blob[:4] == b"LSGS"
    again = GroupSketch.from_bytes(blob)
    _assert_same_sketch(again, sketch, rel=0)
    flipped = bytearray(blob)
    flipped[40] ^= 1
    with pytest.raises(logitshift.InputError, match="checksum mismatch"):
        GroupSketch.from_bytes(bytes(flipped))
    with pytest.raises(logitshift.InputError, match="not a logitshift group sketch"):
        GroupSketch.from_bytes(logitshift.Sketch().update([0, 1], [0.0, 1.0]).to_bytes())
    with pytest.raises(logitshift.InputError, match="checksum"):
        GroupSketch.from_bytes(blob[:-9] + blob[-4:])


def test_merging_keys_of_two_integer_types_keeps_them_apart():
    # uint64 beside int64 concatenates to float64, where 2**63 + 1 and 2**63 + 2 are equal.
    y, f = np.array([0, 1, 1, 0]), np.array([0.1, 0.2, 0.3, 0.4])
    big = GroupSketch().update(y, np.array([2**63 + 1, 2**63 + 2] * 2, dtype=np.uint64), f)
    small = GroupSketch().update(y, np.array([-1, -1, 5, 5]), f)
    merged = big + small
    assert merged.keys.tolist() == [-1, 5, 2**63 + 1, 2**63 + 2]
    assert merged._n_rows.tolist() == [2, 2, 2, 2]


def test_bytes_whose_order_is_broken_are_refused():
    # A blob with a valid checksum whose cells or keys are out of order would merge into
    # wrong sums: from_bytes refuses it.
    sketch = GroupSketch().update(np.array([0, 1, 1, 0, 1]), np.array(["a", "b", "a", "b", "a"]),
                                  np.array([0.5, -1.0, 2.0, 3.0, -2.0]))
    cells = sketch.__dict__.copy()
    sketch._centres = sketch._centres[::-1].copy()
    with pytest.raises(logitshift.InputError, match="cells are not in order"):
        GroupSketch.from_bytes(sketch.to_bytes())
    sketch.__dict__.update(cells)
    sketch._keys = sketch._keys[::-1].copy()
    with pytest.raises(logitshift.InputError, match="keys are not sorted and distinct"):
        GroupSketch.from_bytes(sketch.to_bytes())
    sketch._keys = np.array(["a", "a"], dtype=object)
    with pytest.raises(logitshift.InputError, match="keys are not sorted and distinct"):
        GroupSketch.from_bytes(sketch.to_bytes())


# -- random intercepts -----------------------------------------------------------------------

@pytest.mark.parametrize("nagq", [1, 25])
def test_random_intercepts_match_glmer(random_fits, nagq):
    result = random_fits[nagq]
    default = _reference("glmer_reference.csv")
    tight = _reference("glmer_tight.csv")
    for name in ("mean", "tau", "loglik"):
        value = getattr(result, name)
        # glmer at its default tolerance: within 1e-4 at both nAGQ.
        assert abs(value - default[("grouped", nagq, name)]) <= 1e-4, name
        if nagq == 25:  # converged tightly, the maximum itself
            assert abs(value - tight[("grouped", nagq, name)]) <= 1e-6, name
    assert result.mean_se == pytest.approx(tight[("grouped", nagq, "mean_se")], abs=2e-5)
    modes = _modes("glmer_tight_modes.csv", "grouped", nagq)
    assert modes.group.tolist() == result.groups.tolist()
    tolerance = 1e-6 if nagq == 25 else 1e-4
    np.testing.assert_allclose(result.shrunk, modes["mode"].values, atol=tolerance, rtol=0)
    np.testing.assert_allclose(result.shrunk_se, modes.sd.values, atol=tolerance, rtol=0)
    stored = _modes("glmer_modes.csv", "grouped", nagq)
    np.testing.assert_allclose(result.shrunk, stored["mode"].values, atol=1e-4, rtol=0)


@pytest.mark.parametrize("weight", [1.0, 1e4])
def test_the_mean_se_holds_on_large_weights(weight):
    # Against Richardson's extrapolation of central differences of log L at steps 2e-2 and
    # 1e-2, each difference taken group by group and then summed: the rounding of the
    # total itself (its last place, 2.4e-7 at |log L| = 1.1e9, over h² = 1e-4) would put
    # the reference 4e-5 off.
    rng = np.random.default_rng(8)
    group = np.repeat(np.arange(10), 20_000)
    offset = rng.normal(0, 1, group.size)
    effect = rng.normal(0, 0.4, 10)
    y = rng.random(group.size) < special.expit(offset - 0.5 + effect[group])
    result = _fit(y=y, group=group, offset=offset, weight=np.full(group.size, weight),
                  shrinkage="random")
    marginal = result._random.marginal
    x, z = result.mean, math.log(result.tau)
    value = marginal(x, z)
    groups = marginal.point(x, z).per_group.copy()

    def rise(dx, dz):
        return math.fsum(marginal.point(x + dx, z + dz).per_group - groups)

    def se(h):
        xp, xm, zp, zm = rise(h, 0), rise(-h, 0), rise(0, h), rise(0, -h)
        up, down = rise(h, h), rise(-h, -h)
        cross = (up + down - xp - xm - zp - zm) / 2
        hessian = np.array([[xp + xm, cross], [cross, zp + zm]])
        return math.sqrt(np.linalg.inv(hessian / (h * h))[0, 0])

    reference = (4 * se(1e-2) - se(2e-2)) / 3
    assert abs(-value) > (1e8 if weight > 1 else 1e4)
    assert result.mean_se == pytest.approx(reference, rel=2e-5)


def test_random_intercepts_on_cbpp_counts(cbpp):
    tight = _reference("glmer_tight.csv")
    result = _fit(**cbpp, shrinkage="random", nagq=25)
    for name in ("mean", "tau"):
        assert abs(getattr(result, name) - tight[("cbpp", 25, name)]) <= 1e-6, name
    modes = _modes("glmer_tight_modes.csv", "cbpp", 25)
    np.testing.assert_allclose(result.shrunk, modes["mode"].values, atol=1e-6, rtol=0)
    laplace = _fit(**cbpp, shrinkage="random", nagq=1)
    # lme4's Laplace for binomial counts sits 1.8e-4 (log-likelihood) off the Laplace
    # approximation of the same rows as 0/1 rows with weights; the optimum moves by 4e-4.
    for name in ("mean", "tau"):
        assert abs(getattr(laplace, name) - tight[("cbpp", 1, name)]) <= 1e-3, name


def _numpy_marginal(y, offset, group, weight, mean, tau, nagq):
    """-log L of the random-intercept model, row by row: each group's mode by Newton on
    sums over its rows, then Laplace or adaptive Gauss-Hermite."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(nagq)
    weights = weights / weights.sum()
    total = 0.0
    for key in np.unique(group):
        rows = group == key
        yy, ff, ww = y[rows].astype(float), offset[rows], weight[rows]

        def loss(u):
            z = ff + mean + u
            return np.sum(ww * ((1 - yy) * np.logaddexp(0, z) + yy * np.logaddexp(0, -z)))

        u = 0.0
        for _ in range(100):
            p = special.expit(ff + mean + u)
            g = np.sum(ww * (p - yy)) + u / tau**2
            h = np.sum(ww * p * (1 - p)) + 1 / tau**2
            u -= g / h
            if abs(g / h) < 1e-15:
                break
        p = special.expit(ff + mean + u)
        hessian = np.sum(ww * p * (1 - p))
        at_mode = loss(u) + u * u / (2 * tau**2)
        spread = 1 / math.sqrt(hessian + 1 / tau**2)
        integral = sum(w * math.exp(at_mode - loss(u + spread * t)
                                    - (u + spread * t) ** 2 / (2 * tau**2) + t * t / 2)
                       for t, w in zip(nodes, weights))
        total += at_mode + 0.5 * math.log1p(tau**2 * hessian) - math.log(integral)
    return total


@pytest.mark.parametrize("nagq", [1, 9])
def test_random_intercepts_match_a_row_by_row_numpy_implementation(nagq):
    rng = np.random.default_rng(8)
    sizes = rng.integers(2, 120, 25)
    group = np.repeat(np.arange(25), sizes)
    n = group.size
    offset = rng.normal(0, 1, n)
    u = rng.normal(0, 0.8, 25)
    y = rng.random(n) < special.expit(offset + 0.3 + u[group])
    weight = rng.integers(1, 3, n).astype(float)
    result = _fit(y, group, offset, weight, shrinkage="random", nagq=nagq)
    marginal = result._random.marginal
    for mean, tau in ((result.mean, result.tau), (0.0, 0.3), (1.0, 2.0)):
        assert marginal(mean, math.log(tau)) == pytest.approx(
            _numpy_marginal(y, offset, group, weight, mean, tau, nagq), abs=1e-9)
    best = optimize.minimize(
        lambda p: _numpy_marginal(y, offset, group, weight, p[0], math.exp(p[1]), nagq),
        [result.mean + 0.05, math.log(result.tau) - 0.05], method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-13, "maxiter": 4000})
    assert result.mean == pytest.approx(best.x[0], abs=1e-6)
    assert result.tau == pytest.approx(math.exp(best.x[1]), abs=1e-6)
    assert -result.loglik == pytest.approx(best.fun, abs=1e-9)


def test_random_intercept_results(random_fits, grouped):
    result = random_fits[1]
    test = result.lr_test()
    pooled_loglik = _reference("glmer_reference.csv")[("grouped", 0, "pooled_loglik")]
    assert test.statistic == pytest.approx(2 * (result.loglik - pooled_loglik), rel=1e-9)
    assert test.pvalue == pytest.approx(0.5 * stats.chi2.sf(test.statistic, 1), rel=1e-9)
    predicted = result.predict_shift(["g05", "unseen", "g00"])
    assert predicted.tolist() == [result.shrunk[5], result.mean, result.shrunk[0]]
    low, high = result.tau_confint()
    assert low < result.tau < high
    # Twice the profile's rise at each end is the chi-square(1) quantile.
    for end in (low, high):
        profile = optimize.minimize_scalar(
            lambda m: result._random.marginal(m, math.log(end)),
            bracket=(result.mean - 0.1, result.mean + 0.1), tol=1e-12).fun
        assert 2 * (profile + result.loglik) == pytest.approx(stats.chi2.ppf(0.95, 1),
                                                              abs=1e-5)
    table = result.table()
    assert list(table.columns[:2]) == ["group", "n_rows"] and "shrunk" in table.columns
    plain = result.to_dict()
    assert plain["group"] == result.groups.tolist() and plain["tau"] == result.tau
    assert np.isfinite(result.shrunk).all()  # the all-0 groups too


def test_random_intercepts_of_groups_that_do_not_differ():
    rng = np.random.default_rng(2)
    group = rng.integers(0, 40, 4000)
    offset = rng.normal(0, 1, 4000)
    y = rng.random(4000) < special.expit(offset - 0.5)
    result = _fit(y, group, offset, shrinkage="random")
    pooled = logitshift.fit(y, offset)
    assert result.loglik >= -pooled.loss * pooled.weight_sum - 1e-9
    if result.tau == 0:
        assert result.mean == pooled.shift and result.lr_test().pvalue == 1.0
    else:
        assert result.tau < 0.3


def test_group_codes_keep_integer_codes_in_place():
    codes = np.array([5, 3, 5, 9], dtype=np.int32)
    groups = group_codes(codes, 4)
    assert groups.codes is codes and groups.base == 3 and groups.levels.tolist() == list(
        range(3, 10))


def test_groups_beyond_what_the_group_sketch_resolves_say_so():
    """No wrong number silently: separable groups with gaps of 1e4 logits are flagged (fit
    solves them in log space); weights summing beyond 2**500 are solved a group at a time in
    the group's own units, and refused by name only by the random-intercept likelihood."""
    rng = np.random.default_rng(21)
    group = rng.integers(0, 3, 3000)
    labels = (rng.random(3000) < 0.3).astype(int)
    offsets = rng.normal(0, 1, 3000)
    wide = np.where(labels == 1, 1e4, -1e4)
    with pytest.warns(RuntimeWarning, match="underflows"):
        flagged = logitshift.fit_groups(labels, group, np.where(group == 0, wide, offsets))
    assert flagged.status[0] == "underflow" and math.isnan(flagged.shift[0])
    for index in (1, 2):
        rows = group == index
        assert flagged.shift[index] == pytest.approx(
            logitshift.fit(labels[rows], offsets[rows]).shift, rel=1e-13)
    heavy = np.full(3000, 1e308)
    solved = logitshift.fit_groups(labels, group, offsets, heavy)
    for index in (0, 1, 2):
        rows = group == index
        assert solved.shift[index] == logitshift.fit(labels[rows], offsets[rows],
                                                     weight=heavy[rows]).shift
    with pytest.raises(logitshift.InputError, match=r"beyond \[2\*\*-500, 2\*\*500\]"):
        logitshift.fit_groups(labels, group, offsets, heavy, shrinkage="random")
