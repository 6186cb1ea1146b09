"""A new user's hostile battery against the newer features: per-group shifts (arrays, tables,
files, pyarrow datasets, Dask), the random-intercept model, `GroupSketch`, `validate` and
`fit_slope`, and the command line's `fit --group` and `validate`.

Every case is either refused with an `InputError` that names the argument (and the row and
value where there is one), the command line exiting 2 with one line on stderr, or answered and
held to an independent reference: `logitshift.fit` on each group's rows (shifts within 1e-12),
statsmodels' GLM, or numpy by the definitions.
"""

from __future__ import annotations

import contextlib
import datetime
import decimal
import io
import json
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import statsmodels.api as sm

import logitshift
from logitshift.cli import main

N = 48
RNG = np.random.default_rng(18)
OFFSET = RNG.normal(0.0, 1.0, N)
# Every residue mod 3 (and mod 4) holds both labels.
Y = np.tile([0, 1, 1, 1, 0, 0, 0, 0, 1, 0, 1, 1], N // 12)
CODES = np.arange(N) % 3
NAMES = np.array(["a", "b", "c"])[CODES]
WEIGHT = np.linspace(0.25, 3.0, N)


def _quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


def _object(values) -> np.ndarray:
    column = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        column[index] = value
    return column


def _with(value, row: int = 5) -> list:
    labels = list(NAMES)
    labels[row] = value
    return labels


def _reference_shift(y, offset, weight, rows) -> float:
    if weight is not None and not np.asarray(weight)[rows].any():
        return math.nan  # fit refuses rows that weigh nothing; the group's shift is nan
    return _quiet(logitshift.fit, np.asarray(y)[rows],
                  None if offset is None else np.asarray(offset, dtype=float)[rows],
                  None if weight is None else np.asarray(weight)[rows]).shift


def assert_matches_fit(result, labels, y=Y, offset=OFFSET, weight=None) -> None:
    """One group per distinct label (Python's == and hash), each with the shift of
    `logitshift.fit` on its rows within 1e-12 (infinities equal), and its row count."""
    parts: dict = {}
    for row, label in enumerate(labels):
        parts.setdefault(label, []).append(row)
    assert result.n_groups == len(parts)
    place = {key: i for i, key in enumerate(result.groups.tolist())}
    assert len(place) == result.n_groups
    for label, rows in parts.items():
        i = place[label]
        assert result.n_rows[i] == len(rows)
        expected = _reference_shift(y, offset, weight, rows)
        got = result.shift[i]
        if math.isinf(expected) or math.isnan(expected):
            assert got == expected or (math.isnan(got) and math.isnan(expected)), label
        else:
            assert abs(got - expected) <= 1e-12 * max(1.0, abs(expected)), label


def refused(call, argument, index=None, match=None) -> logitshift.InputError:
    with pytest.raises(logitshift.InputError, match=match) as caught:
        _quiet(call)
    assert caught.value.argument == argument, str(caught.value)
    if index is not None:
        assert caught.value.index == index, str(caught.value)
    if index is not None:
        assert f"[{index}]" in str(caught.value)
    return caught.value


def fit_groups(group, y=Y, offset=OFFSET, weight=None, **options):
    return lambda: logitshift.fit_groups(y, group, offset, weight, **options)


# -- per-group shifts in memory: refused ----------------------------------------------------------

MISSING = [("None", None), ("nan", math.nan), ("pd.NA", pd.NA), ("pd.NaT", pd.NaT),
           ("np.NaT", np.datetime64("NaT")), ("float32 nan", np.float32("nan")),
           ("float16 nan", np.float16("nan")), ("Decimal nan", decimal.Decimal("nan")),
           ("timedelta NaT", np.timedelta64("NaT")), ("complex nan", complex("nan"))]

REFUSED = [
    *[pytest.param(fit_groups(_with(value)), "group", 5, "missing", id=f"list {name}")
      for name, value in MISSING],
    *[pytest.param(fit_groups(_object(_with(value))), "group", 5, "missing",
                   id=f"object {name}") for name, value in MISSING],
    pytest.param(fit_groups(pd.Series(CODES, dtype="Int64").mask(np.arange(N) == 7)),
                 "group", 7, "missing", id="pandas Int64 NA"),
    pytest.param(fit_groups(pd.Series(NAMES, dtype="string").mask(np.arange(N) == 7)),
                 "group", 7, "missing", id="pandas string NA"),
    pytest.param(fit_groups(pd.Categorical(np.where(np.arange(N) == 7, None, NAMES))),
                 "group", 7, "missing", id="pandas Categorical NA"),
    pytest.param(fit_groups(pl.Series([None if i == 7 else int(c) for i, c in enumerate(CODES)])),
                 "group", 7, "missing", id="polars null"),
    pytest.param(fit_groups(pl.Series([None if i == 7 else s for i, s in enumerate(NAMES)],
                                      dtype=pl.Categorical)), "group", 7, "missing",
                 id="polars Categorical null"),
    pytest.param(fit_groups(pl.Series(np.where(np.arange(N) == 7, np.nan, CODES))),
                 "group", 7, "nan", id="polars float NaN"),
    pytest.param(fit_groups(pa.array([None if i == 7 else int(c) for i, c in enumerate(CODES)])),
                 "group", 7, "missing", id="pyarrow null"),
    pytest.param(fit_groups(pa.chunked_array([pa.array(NAMES[:10].tolist()), pa.array(
        [None if i == 3 else s for i, s in enumerate(NAMES[10:])])])), "group", 13, "missing",
        id="pyarrow chunked null"),
    pytest.param(fit_groups(pa.array(np.where(np.arange(N) == 7, np.nan, CODES))),
                 "group", 7, "nan", id="pyarrow NaN"),
    pytest.param(fit_groups(pa.DictionaryArray.from_arrays(pa.array(CODES.astype(np.int32)),
                                                          pa.array(["a", None, "c"]))),
                 "group", 1, "missing", id="pyarrow dictionary null value"),
    pytest.param(fit_groups(np.where(np.arange(N) == 7, np.datetime64("NaT"),
                                     np.datetime64("2020-01-01") + CODES.astype("m8[D]"))),
                 "group", 7, "missing", id="datetime64 NaT"),
    pytest.param(fit_groups(np.zeros(N, dtype="V3")), "group", None, "dtype", id="void dtype"),
    pytest.param(fit_groups(np.zeros(N, dtype=[("a", int), ("b", float)])), "group", None,
                 "dtype", id="structured dtype"),
    pytest.param(fit_groups(_object([True, 1, 0] * (N // 3))), "group", 1, "bools",
                 id="bools beside ints"),
    pytest.param(fit_groups(_object([[1], [2], [1]] * (N // 3))), "group", 0, "hashable",
                 id="list labels"),
    pytest.param(fit_groups(_object([{1: 2}, {3: 4}] * (N // 2))), "group", 0, "hashable",
                 id="dict labels"),
    pytest.param(fit_groups(CODES.reshape(-1, 2)), "group", None, "1-D", id="2-D groups"),
    pytest.param(fit_groups(CODES[:-1]), "group", None, "rows", id="one group short"),
    pytest.param(fit_groups(3), "group", None, "1-D", id="scalar group"),
    pytest.param(fit_groups("abc"), "group", None, "1-D", id="string as group column"),
    pytest.param(fit_groups(None), "group", None, "1-D", id="no group"),
    pytest.param(fit_groups(CODES, levels=[np.nan, 1.0, 2.0]), "levels", 0, "nan",
                 id="levels nan"),
    pytest.param(fit_groups(CODES, levels=["a", "a", "b"]), "levels", 1, "repeats",
                 id="levels repeated"),
    pytest.param(fit_groups(CODES, levels=["a", "b"]), "group", 2, "code",
                 id="code beyond levels"),
    pytest.param(fit_groups(CODES - 1, levels=["a", "b", "c"]), "group", 0, "code",
                 id="negative code"),
    pytest.param(fit_groups(CODES + 0.5, levels=["a", "b", "c"]), "group", None, "integer",
                 id="float codes"),
    pytest.param(fit_groups(CODES.astype(str), levels=["a", "b", "c"]), "group", None,
                 "integer", id="text codes"),
    pytest.param(fit_groups(CODES == 1, levels=["a", "b"]), "group", None, "integer",
                 id="bool codes"),
    pytest.param(fit_groups(CODES, levels="abc"), "levels", None, "1-D", id="levels string"),
    pytest.param(fit_groups(CODES, levels=[[1, 2], [3], [4]]), "levels", 0, "hashable",
                 id="levels nested"),
    pytest.param(fit_groups(CODES, levels=["a", None, "c"]), "levels", 1, "missing",
                 id="levels None"),
    pytest.param(fit_groups(CODES, levels={0: "a", 1: "b", 2: "c"}), "levels", None, "1-D",
                 id="levels dict"),
    pytest.param(lambda: logitshift.fit_groups(Y, OFFSET, CODES), "group", None,
                 "look like scores", id="swapped group and offset"),
    pytest.param(lambda: logitshift.fit_groups(OFFSET, CODES, Y), "y", 0, "outside",
                 id="swapped label and offset"),
    *[pytest.param(fit_groups(CODES, **{name: value}), name, None, None,
                   id=f"{name}={value!r}")
      for name, value in [("shrinkage", "Random"), ("shrinkage", "fixed"),
                          ("shrinkage", True), ("shrinkage", 1), ("nagq", 3),
                          ("pseudo_count", -1), ("pseudo_count", math.nan),
                          ("pseudo_count", math.inf), ("tol", -1), ("tol", "x"), ("tol", 0),
                          ("max_iter", 0), ("max_iter", -5), ("max_iter", 2.5),
                          ("max_iter", True), ("offset_is", "prob")]],
    *[pytest.param(fit_groups(CODES, shrinkage="random", nagq=value), "nagq", None, None,
                   id=f"nagq={value!r}")
      for value in (0, -1, 2.5, "9", True, 10**6, np.float64(3.0))],
    pytest.param(fit_groups(CODES, offset=OFFSET, offset_is="probability"), "offset", 0,
                 "outside", id="logits as probabilities"),
    pytest.param(fit_groups(CODES, weight=np.where(np.arange(N) == 4, -1.0, 1.0)), "weight",
                 4, None, id="negative weight"),
    pytest.param(fit_groups(CODES, weight=np.where(np.arange(N) == 4, np.nan, 1.0)), "weight",
                 4, "nan", id="nan weight"),
    pytest.param(fit_groups(CODES, weight=np.where(np.arange(N) == 4, np.inf, 1.0)), "weight",
                 4, None, id="infinite weight"),
    pytest.param(fit_groups(CODES, weight=np.zeros(N)), "weight", None, "zero",
                 id="every weight zero"),
    pytest.param(fit_groups(CODES, weight=np.array(["1"] * N)), "weight", None, "numeric",
                 id="text weights"),
    pytest.param(fit_groups(CODES, weight=2.0), "weight", None, "array", id="scalar weight"),
    pytest.param(fit_groups(CODES, offset=np.where(np.arange(N) == 5, np.nan, OFFSET)),
                 "offset", 5, "nan", id="nan offset"),
    pytest.param(fit_groups(CODES, offset=OFFSET.astype(str)), "offset", None, "numeric",
                 id="text offsets"),
    pytest.param(fit_groups(CODES, offset=_object([None, *OFFSET[1:]])), "offset", 0, None,
                 id="None offset"),
    pytest.param(fit_groups(CODES, offset=np.where(np.arange(N) == 0, np.inf, OFFSET)),
                 "offset", 0, "infinite loss", id="+inf offset on a 0"),
    pytest.param(fit_groups(CODES, offset=np.where(np.arange(N) == 1, -np.inf, OFFSET)),
                 "offset", 1, "infinite loss", id="-inf offset on a 1"),
    pytest.param(fit_groups(CODES, y=np.where(np.arange(N) == 2, 2, Y)), "y", 2, "outside",
                 id="label 2"),
    pytest.param(fit_groups(CODES, y=Y.astype(str)), "y", None, "numeric", id="text labels"),
    pytest.param(fit_groups(CODES, y=pd.array([*Y[:3], None, *Y[4:]], dtype="Int64")), "y", 3,
                 "missing", id="label pd.NA"),
    pytest.param(fit_groups(CODES, y=np.ones(N), shrinkage="random"), "y", None, "one class",
                 id="random: every label one class"),
    pytest.param(fit_groups(CODES, weight=np.full(N, 1e308), shrinkage="random"), "weight",
                 None, "2\\*\\*500", id="random: weights summing to inf"),
    pytest.param(fit_groups(CODES, weight=np.full(N, 5e-324), shrinkage="random"), "weight",
                 None, "2\\*\\*-500", id="random: subnormal weights"),
    pytest.param(lambda: logitshift.fit_groups([], [], []), "y", None, "empty", id="no rows"),
]


@pytest.mark.parametrize("call, argument, index, match", REFUSED)
def test_refused_by_name(call, argument, index, match):
    refused(call, argument, index, match)


# -- per-group shifts in memory: answered ---------------------------------------------------------

ANSWERED = [
    pytest.param(CODES.astype("m8[s]"), id="timedelta groups"),
    pytest.param(CODES.astype(complex), id="complex groups"),
    pytest.param(CODES.astype(np.float16), id="float16 groups"),
    pytest.param(np.array([b"a", b"\xff", b""])[CODES], id="bytes groups"),
    pytest.param(np.array(["Zürich", "Zu\u0308rich", "東京"])[CODES],
                 id="composed and decomposed unicode are two groups"),
    pytest.param(np.array(["", "🙂", "\x00"])[CODES], id="empty string, emoji, NUL"),
    pytest.param(_object([1, "1", 2.5] * (N // 3)), id="1 and '1' are two groups"),
    pytest.param(_object([1, 1.0, 2] * (N // 3)), id="1 and 1.0 are equal in Python"),
    pytest.param(_object([frozenset({1}), frozenset({2}), frozenset({1})] * (N // 3)),
                 id="frozenset labels"),
    pytest.param(_object([(1, 2), (3,), (1, 2)] * (N // 3)), id="tuple labels"),
    pytest.param(np.array([0.0, np.inf, -np.inf])[CODES], id="infinite float groups"),
    pytest.param(np.array([0.0, -0.0, 1.0])[CODES], id="0.0 and -0.0 are equal"),
    pytest.param(Y, id="groups equal to the labels: every group degenerate"),
    pytest.param(np.zeros(N), id="one group"),
    pytest.param(pd.Categorical(NAMES, categories=["c", "zz", "a", "b"]),
                 id="categorical with an unused category"),
    pytest.param(pa.DictionaryArray.from_arrays(pa.array(CODES.astype(np.int32)),
                                                pa.array(["a", "a", "b"])),
                 id="dictionary that repeats a value"),
    pytest.param(pl.Series(NAMES).cast(pl.Enum(["c", "b", "a"])), id="polars Enum"),
    pytest.param(pa.array(NAMES, pa.string_view()), id="pyarrow string_view"),
    pytest.param((np.arange(N) % 3).astype(np.uint64) + np.uint64(2**63),
                 id="uint64 labels beyond int64"),
]


def _python_labels(group) -> list:
    if isinstance(group, pa.Array):
        return group.to_pylist()
    if isinstance(group, pl.Series):
        return group.to_list()
    return np.asarray(group, dtype=object).tolist()


@pytest.mark.parametrize("group", ANSWERED)
def test_answered_as_fit_on_each_group(group):
    result = _quiet(logitshift.fit_groups, Y, group, OFFSET)
    assert_matches_fit(result, _python_labels(group))


WEIGHTS = [
    pytest.param(np.where(CODES == 0, 1.0, 7 * 5e-324), id="subnormal beside 1"),
    pytest.param(np.where(CODES == 0, 1.0, 1e308), id="1e308 beside 1"),
    pytest.param(np.full(N, 5e-324), id="every weight 5e-324"),
    pytest.param(np.full(N, 1e308), id="every weight 1e308"),
    pytest.param(np.where(CODES == 0, 5e-324, np.where(CODES == 1, 1e308, 1.0)),
                 id="5e-324, 1e308 and 1"),
    pytest.param(np.where(CODES == 1, 0.0, WEIGHT), id="one group weighs nothing"),
    pytest.param(np.ones(N, dtype=bool), id="bool weights"),
]


@pytest.mark.parametrize("weight", WEIGHTS)
def test_weights_of_any_scale_as_fit_on_each_group(weight):
    result = _quiet(logitshift.fit_groups, Y, NAMES, OFFSET, weight)
    assert_matches_fit(result, NAMES.tolist(), weight=weight)
    if not weight.any() or (weight == 0).any():
        assert result.status[1] == "no_weight" and math.isnan(result.shift[1])


@pytest.mark.parametrize("offset", [
    pytest.param(0.5, id="scalar offset"),
    pytest.param(OFFSET * 1e300, id="offsets of 1e300"),
    pytest.param(np.where(Y == 1, -1e300, 1e300), id="anti-separated by 2e300"),
    pytest.param(np.where((Y == 1) & (CODES == 0), np.inf, OFFSET), id="+inf on 1s"),
    pytest.param(None, id="no offset"),
])
def test_offsets_of_any_scale_as_fit_on_each_group(offset):
    result = _quiet(logitshift.fit_groups, Y, NAMES, offset)
    full = None if offset is None else np.broadcast_to(np.asarray(offset, float), (N,))
    assert_matches_fit(result, NAMES.tolist(), offset=full)


def test_soft_and_bool_labels_as_fit_on_each_group():
    soft = np.linspace(0.0, 1.0, N)
    assert_matches_fit(logitshift.fit_groups(soft, NAMES, OFFSET), NAMES.tolist(), y=soft)
    flags = Y.astype(bool)
    assert_matches_fit(logitshift.fit_groups(flags, NAMES, OFFSET), NAMES.tolist(), y=flags)


def test_one_row_and_one_group():
    single = _quiet(logitshift.fit_groups, [1], ["a"], [0.3])
    assert single.shift.tolist() == [math.inf] and single.status.tolist() == ["all_positive"]
    one = logitshift.fit_groups(Y, np.zeros(N), OFFSET, WEIGHT)
    pooled = logitshift.fit(Y, OFFSET, WEIGHT)
    assert abs(one.shift[0] - pooled.shift) <= 1e-12 and one.lr_test().statistic == 0.0


def test_separated_group_fit_of_is_fit_on_its_rows():
    """Labels separated by 2e300 logits: the table says "underflow" (nan) as documented, and
    fit_of(key) solves the group in log space as fit does (it gave -2.5e299,
    "not_identifiable", where the truth is log(5/3)/2)."""
    labels = Y.copy()
    labels[0] = 1  # group "a" unbalanced, so that its shift is not 0
    offset = np.where(labels == 1, 1e300, -1e300)
    result = _quiet(logitshift.fit_groups, labels, NAMES, offset)
    assert result.status.tolist() == ["underflow"] * 3 and np.isnan(result.shift).all()
    for key in "abc":
        rows = NAMES == key
        expected = _quiet(logitshift.fit, labels[rows], offset[rows])
        got = _quiet(result.fit_of, key)
        m, k = labels[rows].sum(), (1 - labels[rows]).sum()
        assert expected.shift == pytest.approx(math.log(m / k) / 2, abs=1e-12)
        assert got.shift == pytest.approx(expected.shift, abs=1e-12)
        assert got.status == expected.status == "converged"


# -- the random-intercept model -------------------------------------------------------------------

@pytest.fixture(scope="module")
def differing():
    """Groups whose shifts differ (τ̂ > 0)."""
    rng = np.random.default_rng(3)
    group = rng.integers(0, 12, 1200)
    offset = rng.normal(0, 1, 1200)
    shift = np.linspace(-1.0, 1.0, 12)[group]
    y = (rng.random(1200) < 1 / (1 + np.exp(-(offset + shift)))).astype(int)
    return y, group, offset


def _marginal_loglik(y, group, offset, mean, tau, nodes=60):
    """Σ_g log ∫ Π p(y | μ + u) φ(u; 0, τ²) du by plain (non-adaptive) Gauss-Hermite with many
    nodes: a reference independent of the library's adaptive quadrature."""
    x, w = np.polynomial.hermite_e.hermegauss(nodes)
    total = 0.0
    for key in np.unique(group):
        rows = group == key
        raw = offset[rows][:, None] + mean + tau * x[None, :]
        log_p = np.sum(y[rows][:, None] * raw - np.logaddexp(0, raw), axis=0)
        top = log_p.max()
        total += top + math.log(np.sum(w * np.exp(log_p - top)) / math.sqrt(2 * math.pi))
    return total


def test_random_intercepts_against_a_direct_quadrature(differing):
    y, group, offset = differing
    result = logitshift.fit_groups(y, group, offset, shrinkage="random", nagq=15)
    assert result.converged and result.tau > 0
    reference = _marginal_loglik(y, group, offset, result.mean, result.tau)
    assert result.loglik == pytest.approx(reference, abs=1e-6)
    # The optimum: no nearby (μ, τ) is better.
    for dm, dt in ((1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3)):
        assert _marginal_loglik(y, group, offset, result.mean + dm, result.tau + dt) \
            <= reference + 1e-9
    low, high = result.tau_confint()
    assert 0 <= low < result.tau < high
    unseen = result.predict_shift(["unseen", 3])
    assert unseen[0] == result.mean and unseen[1] == result.shrunk[3]
    assert json.loads(json.dumps(result.to_dict(json_safe=True), allow_nan=False))["tau"] \
        == result.tau


def test_random_intercepts_of_identical_groups_converge():
    # Where τ̂ = 0, Newton in log τ once crept toward the floor by 1/2 a step and ran out of
    # iterations; with the likelihood's exact derivatives it reaches it.
    y = np.tile(Y[:12], 3)
    offset = np.tile(OFFSET[:12], 3)
    group = np.repeat([0, 1, 2], 12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = logitshift.fit_groups(y, group, offset, shrinkage="random")
    pooled = logitshift.fit(y, offset)
    assert result.tau == 0.0 and abs(result.mean - pooled.shift) <= 1e-12
    assert result.converged


def test_random_intercepts_of_one_group_weighing_everything():
    """Two groups of subnormal weight beside one of weight 1: the model is that one group's,
    whose marginal likelihood at τ = 0 is the pooled fit's."""
    weight = np.where(CODES == 0, 1.0, 7 * 5e-324)
    result = _quiet(logitshift.fit_groups, Y, CODES, OFFSET, weight, shrinkage="random")
    alone = logitshift.fit(Y[CODES == 0], OFFSET[CODES == 0])
    assert abs(result.mean - alone.shift) <= 1e-12 and result.tau == 0.0
    assert result.loglik == pytest.approx(-alone.loss * alone.weight_sum, rel=1e-12)


def test_every_group_degenerate_but_not_one_class():
    y = np.where(CODES == 0, 1, 0)
    result = _quiet(logitshift.fit_groups, y, CODES, OFFSET, shrinkage="random")
    assert result.shift.tolist() == [math.inf, -math.inf, -math.inf]
    assert np.isfinite(result.shrunk).all() and math.isfinite(result.mean)
    # Shrinkage pulls the all-1 group up and the all-0 groups down, from μ̂.
    assert result.shrunk[0] > result.mean > result.shrunk[1]


# -- the result's methods -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def by_name():
    return logitshift.fit_groups(Y, NAMES, OFFSET)


@pytest.mark.parametrize("key", ["z", None, ["a"], {1: 2}, b"a", math.nan, 0],
                         ids=["unseen", "None", "list", "dict", "bytes", "nan", "int"])
def test_fit_of_an_unknown_key_is_refused(by_name, key):
    error = refused(lambda: by_name.fit_of(key), "key", match="no group")
    assert isinstance(error, KeyError)


def test_fit_of_numpy_string_is_the_group(by_name):
    rows = NAMES == "b"
    assert by_name.fit_of(np.str_("b")).shift == pytest.approx(
        logitshift.fit(Y[rows], OFFSET[rows]).shift, abs=1e-12)


@pytest.mark.parametrize("keys", [[{1: 2}], {"a", "b"}], ids=["dict", "set"])
def test_predict_shift_of_an_unhashable_key_is_refused(by_name, keys):
    refused(lambda: by_name.predict_shift(keys), "keys", 0, "hashable")


@pytest.mark.parametrize("keys", [
    pytest.param(["a", "zz", "c"], id="list"), pytest.param(np.array(["a", "zz", "c"]), id="numpy"),
    pytest.param(pd.Series(["a", "zz", "c"]), id="pandas"),
    pytest.param(pl.Series(["a", "zz", "c"]), id="polars"),
    pytest.param(pa.array(["a", "zz", "c"]), id="pyarrow"),
    pytest.param(("a", "zz", "c"), id="tuple")])
def test_predict_shift_of_columns(by_name, keys):
    got = by_name.predict_shift(keys)
    assert got[0] == by_name.shift[0] and math.isnan(got[1]) and got[2] == by_name.shift[2]


def test_predict_shift_of_a_generator(by_name):
    got = by_name.predict_shift(key for key in ["a", "c"])
    assert got.tolist() == [by_name.shift[0], by_name.shift[2]]


def test_a_string_is_one_key_for_every_lookup(by_name):
    # predict_shift and confint read keys alike: a string is one label, not its letters.
    assert by_name.predict_shift("a").tolist() == [by_name.shift[0]]
    low, high = by_name.confint(keys="a")
    assert np.isfinite(low[0]) and np.isnan(low[1:]).all()
    with pytest.raises(logitshift.InputError, match="no group 'ab'"):
        by_name.confint(keys="ab")


@pytest.mark.parametrize("level", [1.0, 0.0, math.nan, "0.9", 95, True])
def test_confint_levels_refused(by_name, level, differing):
    refused(lambda: by_name.confint(level), "level")
    refused(lambda: by_name.fit_of("a").confint(level), "level")


def test_confint_options_refused(by_name):
    refused(lambda: by_name.confint(0.9, method="exact"), "method")
    refused(lambda: by_name.confint(keys=["q"]), "key")
    refused(lambda: by_name.tau_confint(), "shrinkage")


def test_confint_of_keys_is_fit_of_each(by_name):
    low, high = by_name.confint(0.9, keys=["c", "a", "c"])
    for j, key in enumerate(["c", "a", "c"]):
        expected = by_name.fit_of(key).confint(0.9)
        assert low[j] == pytest.approx(expected[0], abs=1e-9)
        assert high[j] == pytest.approx(expected[1], abs=1e-9)
    assert by_name.confint(keys=[])[0].size == 0


@pytest.mark.parametrize("level", [1.0, 0, "x"])
def test_tau_confint_levels_refused(differing, level):
    y, group, offset = differing
    result = logitshift.fit_groups(y, group, offset, shrinkage="random")
    refused(lambda: result.tau_confint(level), "level")


def test_table_and_json_agree(by_name):
    plain = by_name.to_dict(json_safe=True)
    text = json.dumps(plain, allow_nan=False)
    table = by_name.table()
    assert json.loads(text)["group"] == table["group"].tolist() == ["a", "b", "c"]
    assert json.loads(text)["shift"] == table["shift"].tolist()


# -- GroupSketch ----------------------------------------------------------------------------------

def _sketch(group=NAMES, y=Y, offset=OFFSET, weight=None, **options):
    return logitshift.GroupSketch(**options).update(y, group, offset, weight)


SKETCH_REFUSED = [
    pytest.param(lambda: logitshift.GroupSketch().update(Y, NAMES, OFFSET, threads="2"),
                 "threads", None, "positive integer", id="threads as text"),
    pytest.param(lambda: logitshift.GroupSketch().update(Y, NAMES, OFFSET, threads=0),
                 "threads", None, "positive integer", id="threads 0"),
    pytest.param(lambda: logitshift.GroupSketch().update(Y, NAMES, OFFSET, threads=-1),
                 "threads", None, "positive integer", id="threads -1"),
    pytest.param(lambda: logitshift.GroupSketch().update([0, 2], [1, 1], [0, 0], first_row="5"),
                 "first_row", None, "non-negative", id="first_row as text"),
    pytest.param(lambda: logitshift.GroupSketch().update([0, 2], [1, 1], [0, 0], first_row=-5),
                 "first_row", None, "non-negative", id="first_row negative"),
    pytest.param(lambda: logitshift.GroupSketch().update([0, 2], [1, 1], [0, 0], first_row=2.5),
                 "first_row", None, "non-negative", id="first_row float"),
    pytest.param(lambda: logitshift.Sketch().update([0, 2], [0, 0], first_row="5"),
                 "first_row", None, "non-negative", id="Sketch first_row as text"),
    pytest.param(lambda: logitshift.GroupSketch().update([0, 2], [1, 1], [0, 0], first_row=100),
                 "y", 101, "outside", id="rows numbered from first_row"),
    pytest.param(lambda: logitshift.GroupSketch().update([0, 1], [1, None], [0, 0]),
                 "group", 1, "missing", id="update: missing group"),
    *[pytest.param(lambda value=value: logitshift.GroupSketch(width=value), "width", None, None,
                   id=f"width={value!r}") for value in (0, 0.3, "0.0625", math.nan)],
    *[pytest.param(lambda value=value: logitshift.GroupSketch(order=value), "order", None, None,
                   id=f"order={value!r}") for value in (0, 1000, 2.5, True)],
    pytest.param(lambda: _sketch(width=0.125) + _sketch(), "other", None, "width",
                 id="merge: other width"),
    pytest.param(lambda: _sketch(order=4) + _sketch(), "other", None, "order",
                 id="merge: other order"),
    pytest.param(lambda: _sketch() + logitshift.Sketch(), "other", None, "Sketch",
                 id="merge: a Sketch"),
    pytest.param(lambda: _sketch() + 1, "other", None, None, id="merge: an int"),
    pytest.param(lambda: 1 + _sketch(), "other", None, None, id="1 + sketch"),
    pytest.param(lambda: False + _sketch(), "other", None, None, id="False + sketch"),
    pytest.param(lambda: _sketch(CODES) + _sketch(NAMES), "other", None, "str",
                 id="merge: int beside str labels"),
    pytest.param(lambda: _sketch(CODES == 1) + _sketch(CODES), "other", None, "bool",
                 id="merge: bool beside int labels"),
    pytest.param(lambda: _sketch(CODES) + _sketch(CODES.astype(float)), "other", None, "float",
                 id="merge: int beside float labels"),
    pytest.param(lambda: logitshift.GroupSketch().solve(), "y", None, "no rows",
                 id="solve: empty"),
    pytest.param(lambda: _sketch().solve(nagq=0), "nagq", None, None, id="solve: nagq 0"),
    pytest.param(lambda: _sketch().index_of("x"), "key", None, "no group", id="index_of: unseen"),
    pytest.param(lambda: _sketch().sketch_of("x"), "key", None, "no group",
                 id="sketch_of: unseen"),
    pytest.param(lambda: _sketch().relabelled(["a", "a", "b"]), "keys", None, "distinct",
                 id="relabelled: repeated"),
    pytest.param(lambda: _sketch().relabelled(["a"]), "keys", None, "labels",
                 id="relabelled: too few"),
    pytest.param(lambda: _sketch().relabelled([[1], [2], [3]]), "keys", 0, "hashable",
                 id="relabelled: unhashable"),
    pytest.param(lambda: _sketch().relabelled(["x", None, "z"]), "keys", 1, "missing",
                 id="relabelled: None"),
    *[pytest.param(lambda blob=blob: logitshift.GroupSketch.from_bytes(blob), "blob", None,
                   None, id=f"from_bytes: {name}")
      for name, blob in [("str", "LSGS"), ("None", None), ("empty", b""),
                         ("numpy", np.zeros(32, dtype=np.uint8)),
                         ("a Sketch's blob", logitshift.Sketch().update(Y, OFFSET).to_bytes())]],
    pytest.param(lambda: logitshift.GroupSketch.from_bytes(_sketch().to_bytes()[:-5]), "blob",
                 None, "checksum", id="from_bytes: truncated"),
    pytest.param(lambda: logitshift.GroupSketch.from_bytes(_sketch().to_bytes() + b"\0"), "blob",
                 None, "checksum", id="from_bytes: a byte more"),
    pytest.param(lambda: logitshift.Sketch.from_bytes(_sketch().to_bytes()), "blob", None,
                 "LSSK", id="Sketch.from_bytes of a group sketch"),
    *[pytest.param(lambda group=group: _sketch(group).to_bytes(), "group", None,
                   "cannot be written", id=f"to_bytes: {name} labels")
      for name, group in [("tuple", _object([(1, 2), (3,), (1, 2)] * (N // 3))),
                          ("frozenset", _object([frozenset({1}), frozenset({2})] * (N // 2))),
                          ("date", np.datetime64("2020-01-01") + CODES.astype("m8[D]")),
                          ("complex", CODES.astype(complex))]],
]


@pytest.mark.parametrize("call, argument, index, match", SKETCH_REFUSED)
def test_group_sketch_refuses_by_name(call, argument, index, match):
    error = refused(call, argument, index, match)
    if argument == "key":
        assert isinstance(error, KeyError)


def test_group_sketch_in_chunks_and_sums_is_fit_groups():
    reference = logitshift.fit_groups(Y, NAMES, OFFSET, WEIGHT)
    chained = logitshift.GroupSketch().update(Y[:10], NAMES[:10], OFFSET[:10], WEIGHT[:10])
    chained.update(Y[10:], NAMES[10:], OFFSET[10:], WEIGHT[10:], first_row=10)
    parts = [_sketch(NAMES[i::4], Y[i::4], OFFSET[i::4], WEIGHT[i::4]) for i in range(4)]
    for sketch in (chained, sum(parts), 0 + chained, parts[0] + parts[1] + parts[2] + parts[3],
                   logitshift.GroupSketch() + chained):
        got = sketch.solve()
        assert np.max(np.abs(got.shift - reference.shift)) <= 1e-12
    assert logitshift.GroupSketch().update([], [], []).n_groups == 0
    doubled = (chained + chained).solve()
    assert doubled.n_rows.tolist() == (2 * reference.n_rows).tolist()
    assert np.max(np.abs(doubled.shift - reference.shift)) <= 1e-12  # twice the rows: same shift
    assert abs(chained.sketch_of("b").solve().shift - reference.shift[1]) <= 1e-12


@pytest.mark.parametrize("group", [
    pytest.param(np.array(["Zürich", "Zu\u0308rich", "東京🙂"])[CODES], id="unicode"),
    pytest.param(np.array([-0.0, np.inf, -np.inf])[CODES], id="-0.0 and infinities"),
    pytest.param(_object([1, "1", 2] * (N // 3)), id="int beside str"),
    pytest.param(_object([2**70, -2**70, 5] * (N // 3)), id="Python integers beyond int64"),
    pytest.param(np.array([b"a", b"\xff", b""])[CODES], id="bytes"),
    pytest.param(CODES.astype(np.uint64) + np.uint64(2**63), id="uint64 beyond int64"),
    pytest.param(CODES == 1, id="bools"),
])
def test_group_sketch_bytes_round_trip(group):
    sketch = _sketch(group, weight=WEIGHT)
    moved = logitshift.GroupSketch.from_bytes(sketch.to_bytes())
    keys = moved.keys.tolist()
    assert keys == sketch.keys.tolist()
    assert [type(key) for key in keys] == [type(key) for key in sketch.keys.tolist()]
    assert_matches_fit(moved.solve(), _python_labels(group), weight=WEIGHT)
    for blob in (bytearray(sketch.to_bytes()), memoryview(sketch.to_bytes())):
        assert logitshift.GroupSketch.from_bytes(blob).keys.tolist() == keys


@pytest.mark.parametrize("weight", [np.where(CODES == 0, 1.0, 7 * 5e-324), np.full(N, 1e308)],
                         ids=["subnormal", "1e308"])
def test_group_sketch_bytes_keep_each_groups_units(weight):
    moved = logitshift.GroupSketch.from_bytes(_sketch(weight=weight).to_bytes())
    assert_matches_fit(moved.solve(), NAMES.tolist(), weight=weight)


def test_group_sketch_merges_integers_of_any_width_exactly():
    merged = _sketch(CODES.astype(np.uint64) + np.uint64(2**63)) + _sketch(CODES.astype(np.int32))
    assert merged.keys.tolist() == [0, 1, 2, 2**63, 2**63 + 1, 2**63 + 2]
    assert merged.solve().n_rows.tolist() == [N // 3] * 6


# -- validate and fit_slope -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def scored():
    rng = np.random.default_rng(1)
    scores = rng.normal(0, 1.5, 400)
    y = (rng.random(400) < 1 / (1 + np.exp(-(0.3 + 0.8 * scores)))).astype(int)
    glm = sm.GLM(y, sm.add_constant(scores), family=sm.families.Binomial()).fit(tol=1e-14)
    return y, scores, glm


def _brier_and_log_loss(y, raw, weight=None):
    weight = np.ones(len(y)) if weight is None else weight
    p = 1 / (1 + np.exp(-raw))
    return (np.sum(weight * (y - p) ** 2) / weight.sum(),
            np.sum(weight * (np.logaddexp(0, raw) - y * raw)) / weight.sum())


@pytest.mark.parametrize("scale", [1.0, 1e-3, 1e3], ids=["unit", "1e-3", "1e3"])
def test_slope_against_statsmodels_at_any_scale(scored, scale):
    y, scores, glm = scored
    result = logitshift.fit_slope(y, scores * scale)
    assert result.converged
    assert result.slope * scale == pytest.approx(glm.params[1], rel=1e-9)
    assert result.intercept == pytest.approx(glm.params[0], abs=1e-9)
    assert result.se_slope * scale == pytest.approx(glm.bse[1], rel=1e-7)


def test_slope_of_tiny_scores_is_not_a_silent_wrong_number(scored):
    # The sketch's cells cannot tell scores spread over 1e-20 apart (its truncation says
    # so), and rows in memory are refitted exactly.
    y, scores, glm = scored
    result = _quiet(logitshift.fit_slope, y, scores * 1e-20)
    assert (not result.converged) or result.slope * 1e-20 == pytest.approx(glm.params[1],
                                                                           rel=1e-9)


def test_slope_of_huge_scores_against_statsmodels(scored):
    # Newton from slope 1 finds every row certain; it starts again from slope 0.
    y, scores, _ = scored
    glm = sm.GLM(y, sm.add_constant(scores * 1e6), family=sm.families.Binomial()).fit(
        tol=1e-14)
    result = _quiet(logitshift.fit_slope, y, scores * 1e6)
    assert result.converged and result.slope == pytest.approx(glm.params[1], rel=1e-9)


def _unreliability(y, log_loss, glm) -> float:
    """val.prob's U, ``(dev(0, 1) - dev(a, b) - 2) / n``, with the recalibration's deviance
    from statsmodels (the same at any scale of the scores: the slope absorbs it)."""
    n = len(y)
    return (2 * n * log_loss + 2 * glm.llf - 2) / n


@pytest.mark.parametrize("scale", [1.0, 1e4, 1e300, -1e300], ids=["1", "1e4", "1e300", "-1e300"])
def test_report_brier_and_log_loss_by_definition(scored, scale):
    y, scores, glm = scored
    report = _quiet(logitshift.validate, y, scores * scale)
    brier, log_loss = _brier_and_log_loss(y, scores * scale)
    assert report.brier == pytest.approx(brier, rel=1e-12)
    assert report.log_loss == pytest.approx(log_loss, rel=1e-12)
    assert not math.isnan(report.r2) and not math.isnan(report.discrimination)
    if abs(scale) < 1e5:
        assert report.unreliability == pytest.approx(_unreliability(y, log_loss, glm), rel=1e-9)


@pytest.mark.parametrize("scale", [1e20, 1e150, pytest.param(1e300, marks=pytest.mark.xfail(
    strict=True, reason="the slope's curvature Σ w σ σ(-z) offset² overflows beyond offsets "
    "of about 1e154, so Newton cannot run there and U and Q are NaN, with the slope's "
    "warning (the README says so)"))])
def test_report_unreliability_of_huge_scores(scored, scale):
    y, scores, glm = scored
    report = _quiet(logitshift.validate, y, scores * scale)
    expected = _unreliability(y, _brier_and_log_loss(y, scores * scale)[1], glm)
    assert report.unreliability == pytest.approx(expected, rel=1e-9)
    assert report.quality == pytest.approx(report.discrimination - expected, rel=1e-9)


@pytest.mark.parametrize("weight", [np.full(400, 5e-324), np.full(400, 1e308),
                                    np.where(np.arange(400) < 200, 0.0, 1.0)],
                         ids=["5e-324", "1e308", "half zero"])
def test_report_with_weights_by_definition(scored, weight):
    y, scores, glm = scored
    report = logitshift.validate(y, scores, weight)
    brier, log_loss = _brier_and_log_loss(y, scores, np.where(weight > 0, 1.0, 0.0))
    assert report.brier == pytest.approx(brier, rel=1e-12)
    assert report.log_loss == pytest.approx(log_loss, rel=1e-12)
    if weight[0] > 0:
        assert report.slope.slope == pytest.approx(glm.params[1], rel=1e-9)


def test_report_degenerate_inputs(scored):
    y, scores, _ = scored
    one = _quiet(logitshift.validate, [1], [0.3])
    assert one.brier == pytest.approx((1 - 1 / (1 + math.exp(-0.3))) ** 2, rel=1e-14)
    assert math.isnan(one.c_statistic)
    same = _quiet(logitshift.validate, np.ones(400), scores)
    assert math.isnan(same.c_statistic) and same.log_loss == pytest.approx(
        np.mean(np.logaddexp(0, -scores)), rel=1e-12)
    flat = _quiet(logitshift.validate, y, np.zeros(400))
    assert flat.c_statistic == 0.5 and flat.slope.status == "constant_offset"
    assert flat.brier == pytest.approx(0.25, rel=1e-14)


VALIDATE_REFUSED = [
    *[pytest.param({"bins": value}, "bins", id=f"bins={value!r}")
      for value in (0, -1, 2.5, "10", True)],
    *[pytest.param({"level": value}, "level", id=f"level={value!r}") for value in (1.0, 0, "0.9")],
    pytest.param({"se_type": "hc3"}, "se_type", id="se_type"),
    pytest.param({"offset_is": "odds"}, "offset_is", id="offset_is"),
]


@pytest.mark.parametrize("options, argument", VALIDATE_REFUSED)
def test_validate_options_refused(scored, options, argument):
    y, scores, _ = scored
    refused(lambda: logitshift.validate(y, scores, **options), argument)


@pytest.mark.parametrize("call, argument, index", [
    pytest.param(lambda y, s: logitshift.validate(y, None), "offset", None, id="no offset"),
    pytest.param(lambda y, s: logitshift.validate(y, 0.5), "offset", None, id="scalar offset"),
    pytest.param(lambda y, s: logitshift.validate(s, y), "y", None, id="swapped"),
    pytest.param(lambda y, s: logitshift.validate(y, s, offset_is="probability"), "offset", None,
                 id="logits as probabilities"),
    pytest.param(lambda y, s: logitshift.validate([1, 0, 1], [0.0, 0.2, 0.5],
                                                  offset_is="probability"), "offset", 0,
                 id="probability 0 on a 1"),
    pytest.param(lambda y, s: logitshift.validate([], []), "y", None, id="empty"),
    pytest.param(lambda y, s: logitshift.fit_slope(y, s, tol=-1), "tol", None, id="slope tol"),
    pytest.param(lambda y, s: logitshift.fit_slope(y, s, max_iter=0), "max_iter", None,
                 id="slope max_iter"),
    pytest.param(lambda y, s: logitshift.fit_slope(y, s).confint(2), "level", None,
                 id="slope level 2"),
    pytest.param(lambda y, s: logitshift.fit_slope(y, s).predict_raw("a"), "offset", None,
                 id="predict_raw text"),
    pytest.param(lambda y, s: logitshift.fit_slope(y, None), "offset", None, id="slope no offset"),
])
def test_validate_and_slope_refused(scored, call, argument, index):
    y, scores, _ = scored
    refused(lambda: call(y, scores), argument, index)


def test_slope_statuses_say_why(scored):
    y, scores, _ = scored
    separated = _quiet(logitshift.fit_slope, y, np.where(y == 1, 1.0, -1.0))
    assert separated.status == "separated" and separated.slope == math.inf
    assert _quiet(logitshift.fit_slope, [1], [0.5]).status == "all_positive"
    assert _quiet(logitshift.fit_slope, y, np.ones(400)).status == "constant_offset"
    fitted = logitshift.fit_slope(y, scores)
    raw = fitted.predict_raw([1.0, 2.0])
    assert raw.tolist() == pytest.approx([fitted.intercept + fitted.slope * x for x in (1, 2)],
                                         rel=1e-15)


# -- tables, files, pyarrow datasets and Dask -----------------------------------------------------

@pytest.fixture(scope="module")
def frame():
    return pd.DataFrame({"y": Y, "g": NAMES, "f": OFFSET, "w": WEIGHT})


@pytest.fixture(scope="module")
def expected():
    return logitshift.fit_groups(Y, NAMES, OFFSET, WEIGHT)


def _same(result, expected, tol=1e-12):
    assert result.groups.tolist() == expected.groups.tolist()
    assert np.max(np.abs(result.shift - expected.shift)) <= tol


@pytest.mark.parametrize("make", [
    pytest.param(lambda f: f, id="pandas"), pytest.param(pl.from_pandas, id="polars"),
    pytest.param(lambda f: pl.from_pandas(f).lazy(), id="polars lazy"),
    pytest.param(pa.Table.from_pandas, id="pyarrow"), pytest.param(dict, id="mapping"),
    pytest.param(lambda f: ds.dataset(pa.Table.from_pandas(f)), id="in-memory dataset"),
    pytest.param(lambda f: f.assign(g=f.g.astype("category")), id="categorical"),
    pytest.param(lambda f: pa.Table.from_pandas(f.assign(g=f.g.astype("category"))),
                 id="pyarrow dictionary"),
])
def test_frames_are_fit_groups(frame, expected, make):
    _same(logitshift.fit_groups_frame(make(frame), "y", "g", "f", "w"), expected)


FRAME_REFUSED = [
    pytest.param(lambda f: logitshift.fit_groups_frame(f, "y", None, "f"), "group", None,
                 id="group None"),
    pytest.param(lambda f: logitshift.fit_groups_frame(f, "y", ["g"], "f"), "group", None,
                 id="group a list"),
    pytest.param(lambda f: logitshift.fit_groups_frame(f, "y", "country", "f"), "country", None,
                 id="no such column"),
    pytest.param(lambda f: logitshift.fit_groups_frame(f, "y", "f", "g"), "g", 0,
                 id="group and offset swapped"),
    pytest.param(lambda f: logitshift.fit_groups_frame(f, "f", "g", "y"), "f", None,
                 id="label and offset swapped"),
    pytest.param(lambda f: logitshift.fit_groups_frame(pd.concat([f, f[["g"]]], axis=1), "y",
                                                       "g", "f"), "g", None, id="column twice"),
    pytest.param(lambda f: logitshift.fit_groups_frame([1, 2], "y", "g", "f"), "frame", None,
                 id="not a table"),
    pytest.param(lambda f: logitshift.fit_groups_frame(f.iloc[:0], "y", "g", "f"), "y", None,
                 id="no rows"),
    pytest.param(lambda f: logitshift.fit_groups_frame(
        f.assign(g=f.g.where(np.arange(N) != 4, None)), "y", "g", "f"), "g", 4, id="None group"),
    pytest.param(lambda f: logitshift.fit_groups_frame(
        pl.DataFrame({"y": Y, "g": [[int(c)] for c in CODES], "f": OFFSET}), "y", "g", "f"),
        "g", None, id="polars list column"),
    pytest.param(lambda f: logitshift.fit_groups_frame(
        pl.DataFrame({"y": Y, "g": [{"a": int(c)} for c in CODES], "f": OFFSET}), "y", "g", "f"),
        "g", None, id="polars struct column"),
    pytest.param(lambda f: logitshift.fit_groups_frame(
        pa.table({"y": Y, "g": pa.nulls(N), "f": OFFSET}), "y", "g", "f"), "g", 0,
        id="pyarrow null column"),
    pytest.param(lambda f: logitshift.fit_groups_frame(
        f.assign(f=pd.array([*OFFSET[:3], None, *OFFSET[4:]], dtype="Float64")), "y", "g", "f"),
        "f", 3, id="Float64 NA offset"),
    pytest.param(lambda f: logitshift.fit_groups_frame(f.assign(y=f.y.astype(str)), "y", "g",
                                                       "f"), "y", 0, id="labels as text"),
]


@pytest.mark.parametrize("call, argument, index", FRAME_REFUSED)
def test_frames_refused_by_name(frame, call, argument, index):
    refused(lambda: call(frame), argument, index)


def _csv(path, rows: list[tuple], header="y,g,f,w") -> str:
    path.write_text(header + "\n" + "".join(",".join(map(str, row)) + "\n" for row in rows),
                    encoding="utf-8")
    return str(path)


def _rows(labels=None):
    labels = NAMES if labels is None else labels
    return [(int(Y[i]), labels[i], repr(float(OFFSET[i])), repr(float(WEIGHT[i])))
            for i in range(N)]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("hostile_groups")


def test_csv_and_parquet_are_fit_groups(folder, expected):
    path = _csv(folder / "ok.csv", _rows())
    _same(logitshift.fit_groups_file(path, "y", "g", "f", "w"), expected)
    _same(logitshift.fit_groups_file(path, "y", "g", "f", "w", batch_rows=1), expected)
    _same(logitshift.fit_groups_file(io.BytesIO(open(path, "rb").read()), "y", "g", "f", "w",
                                     format="csv"), expected)
    crlf = folder / "crlf.csv"
    crlf.write_bytes(b"\xef\xbb\xbf" + open(path, "rb").read().replace(b"\n", b"\r\n"))
    _same(logitshift.fit_groups_file(str(crlf), "y", "g", "f", "w"), expected)
    table = pa.table({"y": Y, "g": pa.array(NAMES).dictionary_encode(), "f": OFFSET, "w": WEIGHT})
    pq.write_table(table, folder / "dict.parquet", row_group_size=5)
    _same(logitshift.fit_groups_file(str(folder / "dict.parquet"), "y", "g", "f", "w"), expected)
    # A file named twice is read once.
    twice = logitshift.fit_groups_file([path, path], "y", "g", "f", "w")
    assert twice.n_rows.tolist() == expected.n_rows.tolist()


@pytest.mark.parametrize("labels, groups", [
    pytest.param(["007", "7", "0x1"], ["007", "0x1", "7"], id="007, 7 and 0x1"),
    pytest.param(["-0", "0", "+1"], ["+1", "-0", "0"], id="-0, 0 and +1"),
    pytest.param(["1.0", "1e0", "1"], ["1", "1.0", "1e0"], id="1.0, 1e0 and 1"),
    pytest.param(["Zürich", "Zu\u0308rich", "東京"], ["Zu\u0308rich", "Zürich", "東京"],
                 id="unicode forms"),
    pytest.param(["true", "True", "FALSE"], [False, True], id="boolean spellings"),
    pytest.param(["FR", "fr", "Fr"], ["FR", "Fr", "fr"], id="case"),
])
def test_csv_group_labels_as_written(folder, labels, groups):
    column = np.array(labels)[CODES]
    path = _csv(folder / f"labels{abs(hash(tuple(labels)))}.csv", _rows(column))
    result = logitshift.fit_groups_file(path, "y", "g", "f", "w")
    assert result.groups.tolist() == groups
    key = {label: str(label).lower() == "true" if isinstance(groups[0], bool) else label
           for label in labels}
    assert_matches_fit(result, [key[label] for label in column], weight=WEIGHT)


@pytest.mark.parametrize("edit, argument, index, match", [
    pytest.param(lambda r: r[:1] + [(r[1][0], "", *r[1][2:])] + r[2:], "g", 1, "missing",
                 id="empty group cell"),
    pytest.param(lambda r: r[:1] + [(r[1][0], "NA", *r[1][2:])] + r[2:], "g", 1, "missing",
                 id="NA group cell"),
    pytest.param(lambda r: r[:1] + [(r[1][0], '""', *r[1][2:])] + r[2:], "g", 1, "missing",
                 id="quoted empty group cell"),
    pytest.param(lambda r: r[:1] + [(r[1][0], " ", *r[1][2:])] + r[2:], "g", 1, "blank",
                 id="blank group cell"),
    pytest.param(lambda r: r[:1] + [("NA", *r[1][1:])] + r[2:], "y", 1, "missing",
                 id="NA label"),
    pytest.param(lambda r: r[:5] + [(*r[5][:2], "", r[5][3])] + r[6:], "f", 5, "missing",
                 id="empty offset"),
    pytest.param(lambda r: r[:2] + [("yes", *r[2][1:])] + r[3:], "y", 2, "yes",
                 id="label 'yes'"),
])
def test_csv_bad_cells_named(folder, edit, argument, index, match):
    path = _csv(folder / f"bad_{argument}_{index}_{match}.csv", edit(_rows()))
    error = refused(lambda: logitshift.fit_groups_file(path, "y", "g", "f", "w"), argument, None,
                    match)
    assert error.index == index and os.path.basename(path) in str(error)


def test_files_refused(folder):
    good = _csv(folder / "good.csv", _rows())
    (folder / "empty_dir").mkdir(exist_ok=True)
    (folder / "nothing.csv").write_text("")
    (folder / "latin1.csv").write_bytes("y,g,f\n1,Zürich,0.5\n".encode("latin1"))
    (folder / "dup.csv").write_text("y,g,g,f\n1,a,a,0.5\n")
    cases = [
        (lambda: logitshift.fit_groups_file(good, "y", None, "f"), "group"),
        (lambda: logitshift.fit_groups_file(good, "y", "zz", "f"), "zz"),
        (lambda: logitshift.fit_groups_file(str(folder / "empty_dir"), "y", "g", "f"), "path"),
        (lambda: logitshift.fit_groups_file(str(folder / "nomatch*.csv"), "y", "g", "f"), "path"),
        (lambda: logitshift.fit_groups_file(None, "y", "g", "f"), "path"),
        (lambda: logitshift.fit_groups_file(3, "y", "g", "f"), "path"),
        (lambda: logitshift.fit_groups_file(io.StringIO("y,g,f\n"), "y", "g", "f"), "path"),
        (lambda: logitshift.fit_groups_file(good, "y", "g", "f", batch_rows=0), "batch_rows"),
        (lambda: logitshift.fit_groups_file(good, "y", "g", "f", batch_rows="8"), "batch_rows"),
        (lambda: logitshift.fit_groups_file(good, "y", "g", "f", format="xlsx"), "format"),
        (lambda: logitshift.fit_groups_file(str(folder / "latin1.csv"), "y", "g", "f"), "g"),
        (lambda: logitshift.fit_groups_file(str(folder / "dup.csv"), "y", "g", "f"), "g"),
        (lambda: logitshift.fit_groups_file(good, "y", "g", "f", shrinkage="random", nagq=0),
         "nagq"),
    ]
    for call, argument in cases:
        refused(call, argument)
    with pytest.raises(logitshift.InputError, match="nothing.csv"):
        logitshift.fit_groups_file(str(folder / "nothing.csv"), "y", "g", "f")
    with pytest.raises(OSError):  # documented: a file that cannot be opened
        logitshift.fit_groups_file(str(folder / "absent.csv"), "y", "g", "f")


def test_parquet_files_of_other_label_types_refused(folder):
    for name, column in (("int", CODES), ("bool", CODES == 1), ("float", CODES.astype(float)),
                         ("str", NAMES), ("uint", CODES.astype(np.uint64))):
        pq.write_table(pa.table({"y": Y, "g": column, "f": OFFSET}), folder / f"{name}.parquet")
    for other in ("bool", "float", "str"):
        with pytest.raises(logitshift.InputError, match=f"{other}.parquet"):
            logitshift.fit_groups_file([str(folder / "int.parquet"),
                                        str(folder / f"{other}.parquet")], "y", "g", "f")
    merged = logitshift.fit_groups_file([str(folder / "int.parquet"),
                                         str(folder / "uint.parquet")], "y", "g", "f")
    assert merged.groups.tolist() == [0, 1, 2] and merged.n_rows.tolist() == [2 * N // 3] * 3


@pytest.fixture(scope="module")
def partitioned(folder):
    table = pa.table({"y": Y, "g": NAMES, "f": OFFSET, "w": WEIGHT,
                      "day": np.where(np.arange(N) < N // 2, "d1", "d2")})
    pq.write_to_dataset(table, str(folder / "part"), partition_cols=["day"])
    return ds.dataset(str(folder / "part"), format="parquet", partitioning="hive")


def test_dataset_sources_are_fit_groups(partitioned, expected):
    _same(logitshift.fit_groups_file(partitioned, "y", "g", "f", "w"), expected)
    _same(logitshift.fit_groups_frame(partitioned, "y", "g", "f", "w"), expected)
    _same(logitshift.fit_groups_file(partitioned, "y", "g", "f", "w", batch_rows=3), expected)
    half = np.arange(N) < N // 2
    _same(logitshift.fit_groups_file(partitioned.scanner(filter=ds.field("day") == "d1"),
                                     "y", "g", "f", "w"),
          logitshift.fit_groups(Y[half], NAMES[half], OFFSET[half], WEIGHT[half]))
    by_day = logitshift.fit_groups_file(partitioned, "y", "day", "f", "w")
    assert_matches_fit(by_day, np.where(half, "d1", "d2").tolist(), weight=WEIGHT)
    random = logitshift.fit_groups_file(partitioned, "y", "g", "f", "w", shrinkage="random",
                                        nagq=3)
    memory = logitshift.fit_groups(Y, NAMES, OFFSET, WEIGHT, shrinkage="random", nagq=3)
    assert abs(random.mean - memory.mean) <= 1e-9 and abs(random.tau - memory.tau) <= 1e-9
    report = logitshift.validate_file(partitioned, "y", "f", "w")
    brier, log_loss = _brier_and_log_loss(Y, OFFSET, WEIGHT)
    assert report.brier == pytest.approx(brier, rel=1e-12)
    assert report.log_loss == pytest.approx(log_loss, rel=1e-12)
    glm = sm.GLM(Y, sm.add_constant(OFFSET), family=sm.families.Binomial(),
                 freq_weights=WEIGHT).fit(tol=1e-14)
    assert logitshift.fit_slope_file(partitioned, "y", "f", "w").slope == pytest.approx(
        glm.params[1], rel=1e-9)


def test_dataset_sources_refused(partitioned, folder):
    cases = [
        (lambda: logitshift.fit_groups_file(partitioned.scanner(filter=ds.field("day") == "zz"),
                                            "y", "g", "f"), "y", None),
        (lambda: logitshift.fit_groups_file(partitioned.scanner(columns=["y", "f"]), "y", "g",
                                            "f"), "g", None),
        (lambda: logitshift.fit_groups_file(partitioned, "y", "zz", "f"), "zz", None),
        (lambda: logitshift.fit_groups_file(partitioned, "y", None, "f"), "group", None),
        (lambda: logitshift.fit_groups_file(partitioned, "y", "g", "f", format="csv"), "format",
         None),
        (lambda: logitshift.fit_groups_file([partitioned], "y", "g", "f"), "path", None),
        (lambda: logitshift.fit_groups_file(ds.dataset(pa.table(
            [pa.array(Y), pa.array(NAMES), pa.array(NAMES), pa.array(OFFSET)],
            names=["y", "g", "g", "f"])), "y", "g", "f"), "g", None),
    ]
    for call, argument, index in cases:
        refused(call, argument, index)
    (folder / "bad").mkdir()
    table = pa.table({"y": Y, "g": [None if i == 17 else s for i, s in enumerate(NAMES)],
                      "f": OFFSET})
    pq.write_table(table.slice(0, 12), folder / "bad" / "p0.parquet")
    pq.write_table(table.slice(12), folder / "bad" / "p1.parquet")
    error = refused(lambda: logitshift.fit_groups_file(ds.dataset(str(folder / "bad")), "y", "g",
                                                       "f"), "g", 5, "missing")
    assert "p1.parquet" in str(error)  # rows numbered within the file


@pytest.mark.parametrize("first, second, merged", [
    pytest.param(CODES, NAMES, None, id="int then text (a cast that fails)"),
    pytest.param(np.array(["1", "2", "x"])[CODES], CODES + 1, "'1' and 1",
                 id="text then int (a cast that merges)"),
    pytest.param(CODES, CODES.astype(float), "1 and 1.0", id="int then float"),
    pytest.param(CODES, CODES == 1, "1 and True", id="int then bool"),
])
def test_dataset_files_of_other_label_types_refused(folder, first, second, merged):
    """pyarrow casts every file of a dataset to one schema: the text "1" of one file, the
    integer 1 of another and True of a third would be one group (they were), or the scan
    fails with an ArrowInvalid (it did)."""
    where = folder / f"kinds_{abs(hash(merged))}"
    where.mkdir()
    half = N // 2
    pq.write_table(pa.table({"y": Y[:half], "g": first[:half], "f": OFFSET[:half]}),
                   where / "a.parquet")
    pq.write_table(pa.table({"y": Y[half:], "g": second[half:], "f": OFFSET[half:]}),
                   where / "b.parquet")
    error = refused(lambda: logitshift.fit_groups_file(ds.dataset(str(where)), "y", "g", "f"),
                    "g")
    assert "b.parquet" in str(error)


def test_dataset_files_of_one_label_kind_merge(folder):
    where = folder / "widths"
    where.mkdir()
    half = N // 2
    pq.write_table(pa.table({"y": Y[:half], "g": CODES[:half].astype(np.int32),
                             "f": OFFSET[:half]}), where / "a.parquet")
    pq.write_table(pa.table({"y": Y[half:], "g": CODES[half:], "f": OFFSET[half:]}),
                   where / "b.parquet")
    assert_matches_fit(logitshift.fit_groups_file(ds.dataset(str(where)), "y", "g", "f"),
                       CODES.tolist())


def test_dask_sources_are_fit_groups_or_refused(frame, expected):
    da = pytest.importorskip("dask.array")
    dd = pytest.importorskip("dask.dataframe")
    y, g, f, w = (da.from_array(v, chunks=size) for v, size in
                  ((Y, 7), (NAMES, 5), (OFFSET, 6), (WEIGHT, 9)))
    _same(logitshift.fit_groups(y, g, f, w), expected)
    _same(logitshift.fit_groups(y, NAMES, f, w), expected)  # numpy beside Dask
    ddf = dd.from_pandas(frame, npartitions=3)
    _same(logitshift.fit_groups_frame(ddf, "y", "g", "f", "w"), expected)
    _same(logitshift.fit_groups_frame(ddf.assign(g=ddf.g.astype("category")), "y", "g", "f",
                                      "w"), expected)
    _same(logitshift.fit_groups(ddf.y.to_dask_array(), ddf.g.to_dask_array(),
                                ddf.f.to_dask_array(), ddf.w.to_dask_array()), expected)
    refused(lambda: logitshift.fit_groups(y, da.from_array(NAMES[:-1], chunks=5), f), "group")
    refused(lambda: logitshift.fit_groups(y, da.from_array(_object(
        [None if i == 17 else s for i, s in enumerate(NAMES)]), chunks=7), f), "group", 17)
    refused(lambda: logitshift.fit_groups(y, f, f), "group", None, "look like scores")
    refused(lambda: logitshift.fit_groups_frame(ddf, "y", "zz", "f"), "zz")
    error = refused(lambda: logitshift.fit_groups_frame(
        dd.from_pandas(frame.assign(g=frame.g.where(np.arange(N) != 40, None)), npartitions=3),
        "y", "g", "f"), "g", None, "missing")
    assert "partition" in str(error)


# -- the command line -----------------------------------------------------------------------------

def _cli(argv, capsys):
    try:
        status = main(argv)
    except SystemExit as exc:
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


@pytest.fixture(scope="module")
def cli_files(folder):
    path = _csv(folder / "cli.csv", _rows())
    pq.write_table(pa.table({"y": Y, "g": NAMES, "f": OFFSET}), folder / "cli.parquet")
    return path, str(folder / "cli.parquet"), folder


BASE = ["--label", "y", "--offset", "f", "--group", "g"]

CLI_REFUSED = [
    pytest.param(BASE + ["--shrink", "--nagq", "0"], "--nagq", id="nagq 0"),
    pytest.param(BASE + ["--shrink", "--nagq", "-1"], "--nagq", id="nagq -1"),
    pytest.param(BASE + ["--shrink", "--nagq", "x"], "--nagq", id="nagq x"),
    pytest.param(BASE + ["--shrink", "--nagq", "1e3"], "--nagq", id="nagq 1e3"),
    pytest.param(BASE + ["--shrink", "--nagq", "101"], "--nagq", id="nagq 101"),
    pytest.param(BASE + ["--nagq", "9"], "--nagq", id="nagq without shrink"),
    pytest.param(BASE + ["--top", "0"], "--top", id="top 0"),
    pytest.param(BASE + ["--top", "x"], "--top", id="top x"),
    pytest.param(BASE + ["--output", "INPUT"], "--output", id="output is the input"),
    pytest.param(BASE + ["--output", "out.xlsx"], "--output", id="output xlsx"),
    pytest.param(BASE + ["--output", "nodir/out.csv"], "--output", id="output in no dir"),
    pytest.param(BASE + ["--output", "DIR"], "--output", id="output a directory"),
    pytest.param(BASE + ["--output", "-"], "--output", id="output -"),
    pytest.param(BASE + ["--plot", "p.xyz"], "--plot", id="plot format"),
    pytest.param(BASE + ["--plot", "DIR"], "--plot", id="plot a directory"),
    pytest.param(BASE + ["--level", "1.0"], "--level", id="level 1"),
    pytest.param(BASE + ["--level", "abc"], "--level", id="level abc"),
    pytest.param(BASE + ["--pseudo-count", "-1"], "--pseudo-count", id="pseudo-count -1"),
    pytest.param(BASE + ["--pseudo-count", "nan"], "--pseudo-count", id="pseudo-count nan"),
    pytest.param(BASE + ["--se-type", "robust"], "--se-type", id="robust per group"),
    pytest.param(BASE + ["--format", "xls"], "--format", id="format xls"),
    pytest.param(["--label", "y", "--offset", "f", "--group", "zz"], "zz", id="no group column"),
    pytest.param(["--label", "y", "--offset", "f", "--group", ""], "''", id="empty group name"),
    pytest.param(["--label", "y", "--offset", "g", "--group", "f"], "'a'",
                 id="group and offset swapped"),
    pytest.param(["--label", "f", "--offset", "y", "--group", "g"], "outside",
                 id="label and offset swapped"),
    pytest.param(["--label", "y", "--offset", "f", "--shrink"], "--group", id="shrink alone"),
    pytest.param(["--label", "y", "--offset", "f", "--top", "3"], "--group", id="top alone"),
    pytest.param(["--label", "y", "--offset", "f", "--output", "o.csv"], "--group",
                 id="output alone"),
    pytest.param(BASE + ["--bogus"], "--bogus", id="unknown flag"),
]


@pytest.mark.parametrize("flags, named", CLI_REFUSED)
def test_cli_fit_refused_in_one_line(cli_files, capsys, flags, named):
    path, _, folder = cli_files
    flags = [path if flag == "INPUT" else str(folder) if flag == "DIR" else
             str(folder / flag) if flag.startswith("nodir") else flag for flag in flags]
    status, out, err = _cli(["fit", path, *flags], capsys)
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert named in err


@pytest.mark.parametrize("argv, named", [
    pytest.param(["fit", "ABSENT", *BASE], "absent.csv", id="missing file"),
    pytest.param(["fit", "NOMATCH", *BASE], "no files match", id="glob matching nothing"),
    pytest.param(["fit", "PARQUET", *BASE, "--format", "csv"], "cli.parquet",
                 id="parquet read as csv"),
    pytest.param(["validate", "INPUT", "--label", "y", "--offset", "f", "--bins", "0"], "--bins",
                 id="validate bins 0"),
    pytest.param(["validate", "INPUT", "--label", "y", "--offset", "f", "--bins", "x"], "--bins",
                 id="validate bins x"),
    pytest.param(["validate", "INPUT", "--label", "y", "--offset", "f", "--level", "1"],
                 "--level", id="validate level 1"),
    pytest.param(["validate", "INPUT", "--label", "y", "--offset", "f", "--group", "g"],
                 "--group", id="validate has no groups"),
    pytest.param(["validate", "INPUT", "--label", "y", "--offset", "g"], "'a'",
                 id="validate text scores"),
    pytest.param(["validate", "INPUT", "--label", "y", "--offset", "f", "--plot", "DIR"],
                 "--plot", id="validate plot a directory"),
    pytest.param(["validate", "INPUT", "--label", "y", "--offset", "f", "--plot", "INPUT"],
                 "--plot", id="validate plot onto the input"),
    pytest.param(["validate", "INPUT", "--label", "y", "--offset", "f", "--offset-is",
                  "probability"], "outside", id="validate logits as probabilities"),
    pytest.param(["fit"], "required", id="fit with nothing"),
    pytest.param([], "required", id="no command"),
    pytest.param(["bogus"], "bogus", id="unknown command"),
])
def test_cli_refused_in_one_line(cli_files, capsys, argv, named):
    path, parquet, folder = cli_files
    argv = [{"INPUT": path, "PARQUET": parquet, "DIR": str(folder),
             "ABSENT": str(folder / "absent.csv"),
             "NOMATCH": str(folder / "nomatch*.csv")}.get(arg, arg) for arg in argv]
    status, out, err = _cli(argv, capsys)
    assert status == 2 and out == ""
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert named in err


def test_cli_fit_group_json_and_output_are_fit_groups(cli_files, capsys):
    path, _, folder = cli_files
    output = folder / "table.csv"
    status, out, err = _cli(["fit", path, *BASE, "--weight", "w", "--json", "--output",
                             str(output)], capsys)
    assert status == 0 and err == ""
    record = json.loads(out)
    expected = logitshift.fit_groups(Y, NAMES, OFFSET, WEIGHT)
    assert record["group"] == ["a", "b", "c"]
    assert np.max(np.abs(np.array(record["shift"]) - expected.shift)) <= 1e-12
    written = pd.read_csv(output)
    assert written["group"].tolist() == ["a", "b", "c"]
    assert np.max(np.abs(written["shift"].to_numpy() - expected.shift)) <= 1e-12
    assert written["n_rows"].tolist() == expected.n_rows.tolist()


def test_cli_fit_group_shrink_json(capsys, differing, folder):
    y, group, offset = differing
    path = folder / "differing.parquet"
    pq.write_table(pa.table({"y": y, "g": group, "f": offset}), path)
    status, out, err = _cli(["fit", str(path), *BASE, "--shrink", "--nagq", "15", "--json"],
                            capsys)
    assert status == 0 and err == ""
    record = json.loads(out)
    expected = logitshift.fit_groups(y, group, offset, shrinkage="random", nagq=15)
    assert abs(record["mean"] - expected.mean) <= 1e-9
    assert abs(record["tau"] - expected.tau) <= 1e-9
    assert record["loglik"] == pytest.approx(
        _marginal_loglik(y, group, offset, expected.mean, expected.tau), abs=1e-6)


def test_cli_validate_json_by_definition(cli_files, capsys):
    path = cli_files[0]
    status, out, err = _cli(["validate", path, "--label", "y", "--offset", "f", "--weight", "w",
                             "--json"], capsys)
    assert status == 0 and err == ""
    record = json.loads(out)
    brier, log_loss = _brier_and_log_loss(Y, OFFSET, WEIGHT)
    assert record["brier"] == pytest.approx(brier, rel=1e-12)
    assert record["log_loss"] == pytest.approx(log_loss, rel=1e-12)


def test_cli_from_standard_input_as_a_process(cli_files):
    """One real process: standard input with groups, and empty standard input."""
    path = cli_files[0]
    done = subprocess.run([sys.executable, "-m", "logitshift", "fit", "-", *BASE, "--json"],
                          input=open(path, "rb").read(), capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout)
    expected = logitshift.fit_groups(Y, NAMES, OFFSET)
    assert np.max(np.abs(np.array(record["shift"]) - expected.shift)) <= 1e-12
    empty = subprocess.run([sys.executable, "-m", "logitshift", "fit", "-", *BASE], input=b"",
                           capture_output=True, timeout=120)
    assert empty.returncode == 2 and len(empty.stderr.splitlines()) == 1
    assert b"Traceback" not in empty.stderr and b"standard input" in empty.stderr
