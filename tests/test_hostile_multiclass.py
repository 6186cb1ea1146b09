"""Odd inputs to the multiclass estimators: each either fits what a plain scipy fit of the
same objective gives (or what `logitshift.fit` gives at K = 2, or what an invariance says),
or raises an `InputError` that names the argument, the row and the value."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy.optimize import minimize
from scipy.special import log_softmax as scipy_log_softmax
from scipy.special import softmax

import logitshift
from logitshift import InputError

N, K = 40, 3
RNG = np.random.default_rng(20)
LOGITS = RNG.normal(size=(N, K)) * 1.5
Y = (softmax(0.6 * LOGITS + [0.3, -0.2, 0.0], axis=1).cumsum(axis=1)
     > RNG.random((N, 1))).argmax(axis=1)
WEIGHT = RNG.uniform(0.5, 2.0, size=N)
METHODS = ["shift", "temperature", "bias_temperature", "vector"]


def quiet(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return function(*args, **kwargs)


def reference_proba(y, logits, weight=None, method="shift"):
    """The recalibrated probabilities of the rows, from scipy's BFGS on the same loss:
    ``Σ w CE(y, softmax(scale ∘ G + b))`` (G the log-softmax for vector scaling)."""
    logits = np.asarray(logits, dtype=np.float64)
    n, k = logits.shape
    target = np.eye(k)[y] if np.ndim(y) == 1 else np.asarray(y, dtype=np.float64)
    weight = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    grid = scipy_log_softmax(logits, axis=1) if method == "vector" else logits
    finite = np.where(np.isfinite(grid), grid, 0.0)

    def unpack(theta):
        if method == "shift":
            return np.ones(k), theta
        if method == "temperature":
            return np.full(k, theta[0]), np.zeros(k)
        if method == "bias_temperature":
            return np.full(k, theta[0]), theta[1:]
        return theta[:k], theta[k:]

    def eta(theta):
        scale, bias = unpack(theta)
        return np.where(np.isfinite(grid), scale * finite + bias, -np.inf)

    def loss(theta):
        log_p = scipy_log_softmax(eta(theta), axis=1)
        own = np.where(target > 0, log_p, 0.0)  # a ruled-out class adds nothing, not 0·(-inf)
        return -np.sum(weight[:, None] * target * own)

    start = {"shift": np.zeros(k), "temperature": np.ones(1),
             "bias_temperature": np.r_[1.0, np.zeros(k)],
             "vector": np.r_[np.ones(k), np.zeros(k)]}[method]
    theta = minimize(loss, start, method="BFGS", options={"gtol": 1e-10, "maxiter": 10_000}).x
    return softmax(eta(theta), axis=1)


def assert_matches(result, y, logits, weight=None, method="shift", *, tol=2e-5):
    # Vector scaling on 40 rows may fit a scale <= 0 ("anti_informative"): still the minimum.
    assert result.converged and result.status in ("converged", "anti_informative"), \
        result.status
    expected = reference_proba(y, logits, weight, method)
    got = result.predict_proba(np.asarray(logits, dtype=np.float64))
    np.testing.assert_allclose(got, expected, atol=tol)


def assert_input_error(call, argument, index=None, value=None, *, columns=()):
    """``columns``: a table's columns, any of which may be the argument named."""
    with pytest.raises(InputError) as caught:
        quiet(call)
    error = caught.value
    named = {argument, *columns, *(f"column {column!r}" for column in columns)}
    assert error.argument in named, (error.argument, str(error))
    if index is not None:
        assert error.index == index, (error.index, str(error))
        assert str(index) in str(error)
    if value is not None:
        assert str(value) in str(error), str(error)
    return error


# -- odd but valid inputs: the reference fit ---------------------------------------------

def _with(logits, row, column, value):
    changed = np.array(logits, dtype=np.float64)
    changed[row, column] = value
    return changed


VALID = {
    "float labels": lambda: ((Y.astype(np.float64), LOGITS), (Y, LOGITS)),
    "float32 labels": lambda: ((Y.astype(np.float32), LOGITS), (Y, LOGITS)),
    "uint8 labels": lambda: ((Y.astype(np.uint8), LOGITS), (Y, LOGITS)),
    "int logits": lambda: ((Y, np.round(LOGITS * 3).astype(np.int64)),
                           (Y, np.round(LOGITS * 3))),
    "float16 logits": lambda: ((Y, LOGITS.astype(np.float16)),
                               (Y, LOGITS.astype(np.float16).astype(np.float64))),
    "float32 logits": lambda: ((Y, LOGITS.astype(np.float32)),
                               (Y, LOGITS.astype(np.float32).astype(np.float64))),
    "list of rows": lambda: ((Y.tolist(), LOGITS.tolist()), (Y, LOGITS)),
    "fortran order": lambda: ((Y, np.asfortranarray(LOGITS)), (Y, LOGITS)),
    "strided view": lambda: ((Y, np.hstack([LOGITS, LOGITS])[:, ::2][:, :K]),
                             (Y, np.hstack([LOGITS, LOGITS])[:, ::2][:, :K])),
    "-inf on another class": lambda: (
        (Y, _with(LOGITS, 5, (Y[5] + 1) % K, -np.inf)),
        (Y, _with(LOGITS, 5, (Y[5] + 1) % K, -np.inf))),
    "soft one-hot": lambda: ((np.eye(K)[Y], LOGITS), (Y, LOGITS)),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", sorted(VALID))
def test_odd_valid_input_fits_the_reference(case, method):
    (y, logits), (y_ref, logits_ref) = VALID[case]()
    result = quiet(logitshift.fit_multiclass, y, logits, method=method)
    assert_matches(result, y_ref, logits_ref, method=method)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("epsilon", [1e-7, -1e-7, 9e-7])
def test_soft_rows_within_the_tolerance_of_one_are_read_as_normalised(method, epsilon):
    soft = np.eye(K)[Y] * 0.8 + 0.2 / K
    soft[[3, 7]] *= 1 + epsilon
    before = soft.copy()
    result = quiet(logitshift.fit_multiclass, soft, LOGITS, method=method)
    assert result.converged
    normalised = soft / soft.sum(axis=1, keepdims=True)
    assert_matches(result, normalised, LOGITS, method=method)
    np.testing.assert_array_equal(soft, before)  # the caller's labels are not normalised


@pytest.mark.parametrize("method", METHODS)
def test_weighted_fit_and_zero_weight_rows(method):
    weight = WEIGHT.copy()
    weight[[2, 9]] = 0.0
    result = quiet(logitshift.fit_multiclass, Y, LOGITS, weight, method=method)
    assert_matches(result, Y, LOGITS, weight, method=method)
    keep = weight > 0
    dropped = quiet(logitshift.fit_multiclass, Y[keep], LOGITS[keep], weight[keep],
                    method=method)
    np.testing.assert_allclose(result.predict_proba(LOGITS), dropped.predict_proba(LOGITS),
                               atol=1e-9)


@pytest.mark.parametrize("weight", [5e-324, 2.0 ** -600, 2.0 ** -1060])
def test_a_tiny_weight_on_one_row_is_nearly_that_row_dropped(weight):
    weights = np.ones(N)
    weights[4] = weight
    result = quiet(logitshift.fit_multiclass, Y, LOGITS, weights)
    keep = np.arange(N) != 4
    dropped = quiet(logitshift.fit_multiclass, Y[keep], LOGITS[keep])
    np.testing.assert_allclose(result.shift, dropped.shift, atol=1e-9)


@pytest.mark.parametrize("method", ["shift", "bias_temperature"])
def test_two_classes_agree_with_the_binary_fit(method):
    y = Y % 2
    logits = LOGITS[:, :2]
    result = quiet(logitshift.fit_multiclass, y, logits, method=method)
    offset = logits[:, 1] - logits[:, 0]
    if method == "shift":
        binary = logitshift.fit(y, offset)
        assert result.shift[1] - result.shift[0] == pytest.approx(binary.shift, abs=1e-8)
    else:
        binary = logitshift.fit_slope(y, offset)
        assert result.scale == pytest.approx(binary.slope, abs=1e-7)
        assert result.shift[1] - result.shift[0] == pytest.approx(binary.intercept, abs=1e-7)


def test_bools_are_classes_0_and_1():
    y = Y % 2 == 1
    result = logitshift.fit_multiclass(y, LOGITS[:, :2])
    assert_matches(result, y.astype(int), LOGITS[:, :2])


def test_categorical_with_unused_categories_and_classes():
    names = np.array(["cat", "dog", "eel"])
    labels = pd.Categorical(names[Y], categories=["ant", "cat", "dog", "eel"])
    result = logitshift.fit_multiclass(labels, LOGITS, classes=list(names))
    assert result.classes == list(names)
    assert_matches(result, Y, LOGITS)
    error = assert_input_error(lambda: logitshift.fit_multiclass(labels, LOGITS), "classes")
    assert "4" in str(error) and "3" in str(error)


def test_string_labels_with_classes_in_any_order():
    names = np.array(["b", "a", "c"])
    result = logitshift.fit_multiclass(names[Y], LOGITS, classes=list(names))
    assert_matches(result, Y, LOGITS)


def test_a_class_with_no_rows_and_every_row_one_class():
    y = np.where(Y == 2, 0, Y)
    result = quiet(logitshift.fit_multiclass, y, LOGITS)
    assert result.status == "degenerate" and result.shift[2] == -np.inf
    probability = result.predict_proba(LOGITS)
    np.testing.assert_allclose(probability[:, 2], 0.0)
    expected = reference_proba(y, LOGITS[:, :2])
    np.testing.assert_allclose(probability[:, :2], expected, atol=2e-5)
    one = quiet(logitshift.fit_multiclass, np.zeros(N, dtype=int), LOGITS)
    assert one.status == "degenerate" and not np.isfinite(one.shift[1:]).any()
    np.testing.assert_allclose(one.predict_proba(LOGITS)[:, 0], 1.0)


def test_a_thousand_classes_and_three_rows():
    logits = np.random.default_rng(1).normal(size=(3, 1000))
    result = quiet(logitshift.fit_multiclass, np.array([0, 1, 2]), logits)
    assert result.status == "degenerate"
    assert np.isfinite(result.shift[:3]).all() and np.isneginf(result.shift[3:]).all()
    expected = reference_proba(np.array([0, 1, 2]), logits[:, :3])
    np.testing.assert_allclose(result.predict_proba(logits)[:, :3], expected, atol=2e-5)


def test_a_huge_pseudo_count_pulls_the_shifts_to_the_pseudo_rows():
    result = quiet(logitshift.fit_multiclass, Y, LOGITS, pseudo_count=1e12)
    mean = LOGITS.mean(axis=0)
    # Pseudo rows alone: one row of each class at the mean logits, so softmax(mean + b) is
    # uniform and b = -mean up to a constant.
    np.testing.assert_allclose(result.shift, -(mean - mean.mean()), atol=1e-6)


def test_torch_tensors_read_as_arrays():
    torch = pytest.importorskip("torch")
    result = logitshift.fit_multiclass(torch.tensor(Y), torch.tensor(LOGITS, requires_grad=True))
    assert_matches(result, Y, LOGITS)
    half = logitshift.fit_multiclass(torch.tensor(Y), torch.tensor(LOGITS).to(torch.bfloat16))
    assert_matches(half, Y, torch.tensor(LOGITS).to(torch.bfloat16).double().numpy())


# -- bad input: an InputError naming the argument, the row and the value ------------------

def _soft(row, column, value):
    soft = np.eye(K)[Y].astype(np.float64)
    soft[row, column] = value
    return soft


def _scaled_soft(row, factor):
    soft = np.eye(K)[Y].astype(np.float64)
    soft[row] *= factor
    return soft


def _weights(row, value):
    weight = np.ones(N)
    weight[row] = value
    return weight


OWN = int(Y[6])
FIT = logitshift.fit_multiclass
BAD = {
    "label 2.5": (lambda: FIT(np.where(np.arange(N) == 3, 2.5, Y), LOGITS), "y", 3, "2.5"),
    "label nan": (lambda: FIT(np.where(np.arange(N) == 3, np.nan, Y), LOGITS), "y", 3, "nan"),
    "label -1": (lambda: FIT(np.where(np.arange(N) == 8, -1, Y), LOGITS), "y", 8, "-1"),
    "label K": (lambda: FIT(np.where(np.arange(N) == 8, K, Y), LOGITS), "y", 8, str(K)),
    "label K float": (lambda: FIT(np.where(np.arange(N) == 8, K, Y).astype(float), LOGITS),
                      "y", 8, str(K)),
    "strings without classes": (lambda: FIT(np.array(list("abc"))[Y], LOGITS), "y", None,
                                "classes"),
    "string not among classes": (
        lambda: FIT(np.where(np.arange(N) == 11, "z", np.array(list("abc"))[Y]), LOGITS,
                    classes=list("abc")), "y", 11, "'z'"),
    "classes duplicated": (lambda: FIT(np.array(list("abc"))[Y], LOGITS,
                                       classes=["a", "a", "b"]), "classes", None, "twice"),
    "classes too few": (lambda: FIT(Y, LOGITS, classes=["a", "b"]), "classes", None, "2"),
    "soft nan": (lambda: FIT(_soft(4, 1, np.nan), LOGITS), "y", 4, "nan"),
    "soft negative": (lambda: FIT(_soft(4, 1, -0.5), LOGITS), "y", 4, "-0.5"),
    "soft sum 1+1e-5": (lambda: FIT(_scaled_soft(4, 1 + 1e-5), LOGITS), "y", 4, "1.00001"),
    "soft sum 1-1e-5": (lambda: FIT(_scaled_soft(4, 1 - 1e-5), LOGITS), "y", 4, "0.99999"),
    "soft sum 2": (lambda: FIT(_scaled_soft(4, 2.0), LOGITS), "y", 4, "2.0"),
    "soft wrong width": (lambda: FIT(np.eye(K + 1)[Y], LOGITS), "y", None, str(K + 1)),
    "soft strings": (lambda: FIT(np.eye(K)[Y].astype(str), LOGITS), "y", None, "numeric"),
    "logit nan": (lambda: FIT(Y, _with(LOGITS, 5, 1, np.nan)), "logits", 5, "nan"),
    "logit +inf": (lambda: FIT(Y, _with(LOGITS, 5, 1, np.inf)), "logits", 5, "inf"),
    "logit -inf own class": (lambda: FIT(Y, _with(LOGITS, 6, OWN, -np.inf)), "logits", 6,
                             "-inf"),
    "logits all -inf": (lambda: FIT(Y, _with(LOGITS, 6, slice(None), -np.inf)), "logits", 6,
                        "-inf"),
    "logits 1-D": (lambda: FIT(Y, LOGITS[:, 0]), "logits", None, f"({N},)"),
    "logits 3-D": (lambda: FIT(Y, LOGITS[:, :, None]), "logits", None, None),
    "logits one column": (lambda: FIT(Y, LOGITS[:, :1]), "logits", None, "1 column"),
    "logits no rows": (lambda: FIT(Y[:0], LOGITS[:0]), "logits", None, "empty"),
    "logits strings": (lambda: FIT(Y, LOGITS.astype(str)), "logits", None, None),
    "y one row more": (lambda: FIT(np.r_[Y, 0], LOGITS), "y", None, str(N + 1)),
    "y one row fewer": (lambda: FIT(Y[1:], LOGITS), "y", None, str(N - 1)),
    "weight one row fewer": (lambda: FIT(Y, LOGITS, np.ones(N - 1)), "weight", None,
                             str(N - 1)),
    "weight negative": (lambda: FIT(Y, LOGITS, _weights(7, -1.0)), "weight", 7, "-1.0"),
    "weight nan": (lambda: FIT(Y, LOGITS, _weights(7, np.nan)), "weight", 7, "nan"),
    "weight inf": (lambda: FIT(Y, LOGITS, _weights(7, np.inf)), "weight", 7, "inf"),
    "weight all zero": (lambda: FIT(Y, LOGITS, np.zeros(N)), "weight", None, "zero"),
    "weight 2**600 on one row": (lambda: FIT(Y, LOGITS, _weights(7, 2.0 ** 600)), "weight",
                                 None, "2**500"),
    "weights all 2**1020": (lambda: FIT(Y, LOGITS, np.full(N, 2.0 ** 1020)), "weight", None,
                            "power of two"),
    "weights all 2**-600": (lambda: FIT(Y, LOGITS, np.full(N, 2.0 ** -600)), "weight", None,
                            "power of two"),
    "weights all subnormal": (lambda: FIT(Y, LOGITS, np.full(N, 5e-324)), "weight", None,
                              "power of two"),
    "pseudo_count negative": (lambda: FIT(Y, LOGITS, pseudo_count=-1.0), "pseudo_count", None,
                              "-1.0"),
    "pseudo_count nan": (lambda: FIT(Y, LOGITS, pseudo_count=np.nan), "pseudo_count", None,
                         "nan"),
    "pseudo_count inf": (lambda: FIT(Y, LOGITS, pseudo_count=np.inf), "pseudo_count", None,
                         "inf"),
    "method misspelt": (lambda: FIT(Y, LOGITS, method="temprature"), "method", None,
                        "temprature"),
    "solver misspelt": (lambda: FIT(Y, LOGITS, solver="dens"), "solver", None, "dens"),
    "logits_is misspelt": (lambda: FIT(Y, LOGITS, logits_is="probs"), "logits_is", None,
                           "probs"),
    "max_iter 0": (lambda: FIT(Y, LOGITS, max_iter=0), "max_iter", None, "0"),
    "max_iter -3": (lambda: FIT(Y, LOGITS, max_iter=-3), "max_iter", None, "-3"),
    "max_iter 2.5": (lambda: FIT(Y, LOGITS, max_iter=2.5), "max_iter", None, "2.5"),
    "tol 0": (lambda: FIT(Y, LOGITS, tol=0), "tol", None, "0"),
    "tol negative": (lambda: FIT(Y, LOGITS, tol=-1e-9), "tol", None, "-1e-09"),
    "tol nan": (lambda: FIT(Y, LOGITS, tol=np.nan), "tol", None, "nan"),
    "probability above 1": (lambda: FIT(Y, _with(softmax(LOGITS, axis=1), 2, 0, 1.5),
                                        logits_is="probability"), "logits", 2, "1.5"),
    "probability negative": (lambda: FIT(Y, _with(softmax(LOGITS, axis=1), 2, 0, -0.1),
                                         logits_is="probability"), "logits", 2, "-0.1"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_names_argument_row_and_value(case):
    call, argument, index, value = BAD[case]
    assert_input_error(call, argument, index, value)


@pytest.fixture(scope="module")
def fits():
    return {method: quiet(logitshift.fit_multiclass, Y, LOGITS, method=method)
            for method in METHODS}


PREDICT_BAD = {
    "K-1 columns": (LOGITS[:, :K - 1], None, str(K - 1)),
    "K+1 columns": (np.hstack([LOGITS, LOGITS[:, :1]]), None, str(K + 1)),
    "nan": (_with(LOGITS, 3, 2, np.nan), 3, "nan"),
    "+inf": (_with(LOGITS, 3, 2, np.inf), 3, "inf"),
    "1-D": (LOGITS[0], None, None),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", sorted(PREDICT_BAD))
def test_predict_proba_refuses_bad_logits(fits, method, case):
    logits, index, value = PREDICT_BAD[case]
    assert_input_error(lambda: fits[method].predict_proba(logits), "logits", index, value)


@pytest.mark.parametrize("method", METHODS)
def test_predict_is_the_recalibration_and_leaves_the_logits(fits, method):
    logits = _with(LOGITS, 1, 0, -np.inf)
    before = logits.copy()
    probability = fits[method].predict_proba(logits)
    np.testing.assert_array_equal(logits, before)
    assert probability[1, 0] == 0.0
    np.testing.assert_allclose(probability.sum(axis=1), 1.0, rtol=1e-12)


# -- tables with missing values -----------------------------------------------------------

def _pandas():
    frame = pd.DataFrame(LOGITS, columns=["a", "b", "c"])
    frame["y"] = Y
    return frame


def _missing_logit_tables():
    frame = _pandas()
    frame.loc[3, "b"] = np.nan
    table = pa.table({"a": pa.array([None, *LOGITS[1:, 0]]), "b": LOGITS[:, 1],
                      "c": LOGITS[:, 2], "y": Y})
    tables = {"pandas nan logit": (frame, 3), "pyarrow null logit": (table, 0)}
    try:
        import polars as pl
    except ImportError:
        return tables
    tables["polars null logit"] = (pl.from_arrow(table), 0)
    return tables


def _missing_label_tables():
    frame = _pandas().astype({"y": "Int64"})
    frame.loc[5, "y"] = pd.NA
    table = pa.table({"a": LOGITS[:, 0], "b": LOGITS[:, 1], "c": LOGITS[:, 2],
                      "y": pa.array([*Y[:5], None, *Y[6:]])})
    tables = {"pandas NA label": frame, "pyarrow null label": table}
    try:
        import polars as pl
    except ImportError:
        return tables
    tables["polars null label"] = pl.from_arrow(table)
    return tables


@pytest.mark.parametrize("case", ["pandas nan logit", "pyarrow null logit",
                                  "polars null logit"])
def test_missing_logits_in_a_table_name_the_row(case):
    tables = _missing_logit_tables()
    if case not in tables:
        pytest.skip("polars is not installed")
    table, row = tables[case]
    error = assert_input_error(
        lambda: logitshift.fit_multiclass_frame(table, "y", ["a", "b", "c"]), "logits",
        columns="abc")
    assert f"{row}" in str(error)
    error = assert_input_error(
        lambda: logitshift.fit_prior_shift_frame(table, ["a", "b", "c"], [0.3, 0.3, 0.4]),
        "logits", columns="abc")
    assert f"{row}" in str(error)


@pytest.mark.parametrize("case", ["pandas NA label", "pyarrow null label",
                                  "polars null label"])
def test_missing_labels_in_a_table_name_the_row(case):
    tables = _missing_label_tables()
    if case not in tables:
        pytest.skip("polars is not installed")
    error = assert_input_error(
        lambda: logitshift.fit_multiclass_frame(tables[case], "y", ["a", "b", "c"]), "y",
        columns=["y"])
    assert "5" in str(error)


@pytest.mark.parametrize("missing", ["row", "item"])
def test_fixed_size_list_column_with_nulls(missing):
    rows = [list(row) for row in LOGITS]
    if missing == "row":
        rows[2] = None
    else:
        rows[2][1] = None
    column = pa.array(rows, type=pa.list_(pa.float64(), K))
    table = pa.table({"scores": column, "y": Y})
    error = assert_input_error(
        lambda: logitshift.fit_multiclass_frame(table, "y", "scores"), "logits",
        columns=["scores"])
    assert "2" in str(error)


def test_tables_without_missing_values_fit_as_arrays():
    frame = _pandas()
    result = logitshift.fit_multiclass_frame(frame, "y", ["a", "b", "c"], method="vector")
    column = pa.FixedSizeListArray.from_arrays(pa.array(LOGITS.ravel()), K)
    listed = logitshift.fit_multiclass_frame(pa.table({"s": column, "y": Y}), "y", "s",
                                             method="vector")
    arrays = logitshift.fit_multiclass(Y, LOGITS, method="vector")
    for fit in (result, listed):
        np.testing.assert_allclose(fit.shift, arrays.shift, atol=1e-12)
        np.testing.assert_allclose(fit.scale, arrays.scale, atol=1e-12)


# -- fit_prior_shift ----------------------------------------------------------------------

SOURCE = np.array([0.25, 0.35, 0.4])
# Logits whose maximum-likelihood priors lie inside the simplex: posteriors of a model
# under SOURCE, drawn from rows of a shifted population.
PRIOR_LOGITS = (np.log(SOURCE) + 2.0 * np.eye(K)[
    np.random.default_rng(3).choice(K, size=200, p=[0.5, 0.3, 0.2])]
    + np.random.default_rng(4).normal(size=(200, K)))


def reference_priors(logits, source, weight=None):
    probability = softmax(np.asarray(logits, dtype=np.float64), axis=1)
    weight = np.ones(len(probability)) if weight is None else weight

    def loss(theta):
        priors = softmax(np.r_[0.0, theta])
        return -np.sum(weight * np.log(probability @ (priors / source)))

    theta = minimize(loss, np.zeros(len(source) - 1), method="BFGS",
                     options={"gtol": 1e-12}).x
    return softmax(np.r_[0.0, theta])


@pytest.fixture(scope="module")
def prior_reference():
    return reference_priors(PRIOR_LOGITS, SOURCE)


@pytest.mark.parametrize("factor", [1.0, 2.0, 100.0, 1e-3])
def test_source_priors_are_normalised(prior_reference, factor):
    result = logitshift.fit_prior_shift(PRIOR_LOGITS, SOURCE * factor)
    assert result.status == "converged"
    np.testing.assert_allclose(result.priors, prior_reference, atol=1e-6)
    np.testing.assert_allclose(result.source_priors, SOURCE, rtol=1e-12)


PRIOR_BAD = {
    "zero": ([0.0, 0.5, 0.5], "source_priors", 0, "0.0"),
    "negative": ([0.5, -0.1, 0.6], "source_priors", 1, "-0.1"),
    "nan": ([0.5, np.nan, 0.5], "source_priors", 1, "nan"),
    "inf": ([0.5, np.inf, 0.5], "source_priors", 1, "inf"),
    "too short": ([0.5, 0.5], "source_priors", None, "(2,)"),
    "too long": ([0.25] * 4, "source_priors", None, "(4,)"),
    "2-D": ([[0.2, 0.3, 0.5]], "source_priors", None, "(1, 3)"),
    "a float for K = 3": (0.3, "source_priors", None, "()"),
    "None": (None, "source_priors", None, None),
}


@pytest.mark.parametrize("case", sorted(PRIOR_BAD))
def test_bad_source_priors(case):
    priors, argument, index, value = PRIOR_BAD[case]
    assert_input_error(lambda: logitshift.fit_prior_shift(PRIOR_LOGITS, priors), argument,
                       index, value)


def test_source_priors_from_a_fit_of_another_number_of_classes():
    other = logitshift.fit_multiclass(Y % 2, LOGITS[:, :2])
    error = assert_input_error(lambda: logitshift.fit_prior_shift(PRIOR_LOGITS, other),
                               "source_priors")
    assert "2" in str(error) and "3" in str(error)


PRIOR_ROWS_BAD = {
    "nan logit": (lambda: logitshift.fit_prior_shift(_with(PRIOR_LOGITS, 9, 1, np.nan),
                                                     SOURCE), "logits", 9, "nan"),
    "+inf logit": (lambda: logitshift.fit_prior_shift(_with(PRIOR_LOGITS, 9, 1, np.inf),
                                                      SOURCE), "logits", 9, "inf"),
    "row all -inf": (lambda: logitshift.fit_prior_shift(
        _with(PRIOR_LOGITS, 9, slice(None), -np.inf), SOURCE), "logits", 9, "-inf"),
    "no rows": (lambda: logitshift.fit_prior_shift(PRIOR_LOGITS[:0], SOURCE), "logits",
                None, "empty"),
    "negative weight": (lambda: logitshift.fit_prior_shift(
        PRIOR_LOGITS, SOURCE, np.where(np.arange(200) == 4, -2.0, 1.0)), "weight", 4, "-2.0"),
    "subnormal weights": (lambda: logitshift.fit_prior_shift(
        PRIOR_LOGITS, SOURCE, np.full(200, 5e-324)), "weight", None, "power of two"),
    "weights 2**1020": (lambda: logitshift.fit_prior_shift(
        PRIOR_LOGITS, SOURCE, np.full(200, 2.0 ** 1020)), "weight", None, "power of two"),
    "max_iter 0": (lambda: logitshift.fit_prior_shift(PRIOR_LOGITS, SOURCE, max_iter=0),
                   "max_iter", None, "0"),
    "tol negative": (lambda: logitshift.fit_prior_shift(PRIOR_LOGITS, SOURCE, tol=-1.0),
                     "tol", None, "-1"),
}


@pytest.mark.parametrize("case", sorted(PRIOR_ROWS_BAD))
def test_bad_rows_of_a_prior_shift(case):
    call, argument, index, value = PRIOR_ROWS_BAD[case]
    assert_input_error(call, argument, index, value)


def test_prior_shift_with_a_class_ruled_out_on_some_rows(prior_reference):
    logits = _with(PRIOR_LOGITS, 9, 2, -np.inf)
    result = logitshift.fit_prior_shift(logits, SOURCE)
    assert result.status == "converged"
    np.testing.assert_allclose(result.priors, reference_priors(logits, SOURCE), atol=1e-6)


def test_prior_shift_with_a_recalibration_of_the_same_classes():
    calibration = logitshift.fit_multiclass(Y, LOGITS, method="temperature")
    result = logitshift.fit_prior_shift(PRIOR_LOGITS, calibration)
    source = calibration.observed / calibration.weight_sum
    expected = reference_priors(calibration.predict_logits(PRIOR_LOGITS), source)
    np.testing.assert_allclose(result.priors, expected, atol=1e-6)


# -- JSON and the caller's arrays ---------------------------------------------------------

JSON_CASES = {
    "ordinary": lambda method: FIT(Y, LOGITS, method=method),
    "class without rows": lambda method: FIT(np.where(Y == 2, 0, Y), LOGITS, method=method),
    "one class": lambda method: FIT(np.zeros(N, dtype=int), LOGITS, method=method),
    "stopped early": lambda method: FIT(Y, LOGITS, method=method, max_iter=1),
}


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("case", sorted(JSON_CASES))
def test_to_dict_is_strict_json(method, case):
    result = quiet(JSON_CASES[case], method)
    if case == "stopped early":
        assert result.status == "max_iter" and not result.converged
    text = json.dumps(result.to_dict(json_safe=True), allow_nan=False)
    assert json.loads(text)["status"] == result.status
    # The inference of a degenerate fit is NaN, not an exception.
    quiet(result.confint)
    quiet(result.lr_test)
    quiet(result.observed_expected)


@pytest.mark.parametrize("priors", ["interior", "boundary"])
def test_prior_shift_to_dict_is_strict_json(priors):
    logits = PRIOR_LOGITS if priors == "interior" else np.c_[PRIOR_LOGITS[:, :2],
                                                             PRIOR_LOGITS[:, 2] - 30]
    result = quiet(logitshift.fit_prior_shift, logits, SOURCE)
    json.dumps(result.to_dict(json_safe=True), allow_nan=False)


@pytest.mark.parametrize("method", METHODS)
def test_the_callers_arrays_are_left_as_they_were(method):
    y = Y.astype(np.float64)
    logits = np.asfortranarray(LOGITS.astype(np.float32))
    weight = WEIGHT.copy()
    soft = np.eye(K)[Y] * (1 + 1e-7)
    copies = [array.copy() for array in (y, logits, weight, soft)]
    quiet(logitshift.fit_multiclass, y, logits, weight, method=method, pseudo_count=0.5)
    quiet(logitshift.fit_multiclass, soft, logits, weight, method=method)
    quiet(logitshift.fit_prior_shift, logits, SOURCE, weight)
    for array, copy in zip((y, logits, weight, soft), copies):
        np.testing.assert_array_equal(array, copy)


# -- multiclass_metrics -------------------------------------------------------------------

def reference_metrics(target, logits, weight):
    probability = softmax(logits, axis=1)
    log_p = scipy_log_softmax(logits, axis=1)
    log_loss = -np.sum(weight * np.sum(target * np.where(target > 0, log_p, 0.0), axis=1))
    brier = np.sum(weight * np.sum((probability - target) ** 2, axis=1))
    return log_loss / weight.sum(), brier / weight.sum()


METRIC_CASES = {
    "hard labels": lambda: (Y, LOGITS, None, np.eye(K)[Y], LOGITS, np.ones(N)),
    "soft rows summing to 1 + 1e-7": lambda: (np.eye(K)[Y] * (1 + 1e-7), LOGITS, None,
                                              np.eye(K)[Y], LOGITS, np.ones(N)),
    "weights": lambda: (Y, LOGITS, WEIGHT, np.eye(K)[Y], LOGITS, WEIGHT),
    "equal weights of 2**-400": lambda: (Y, LOGITS, np.full(N, 2.0 ** -400), np.eye(K)[Y],
                                         LOGITS, np.ones(N)),
    "-inf on another class": lambda: (Y, _with(LOGITS, 5, (Y[5] + 1) % K, -np.inf), None,
                                      np.eye(K)[Y], _with(LOGITS, 5, (Y[5] + 1) % K, -np.inf),
                                      np.ones(N)),
    "probabilities": lambda: (Y, softmax(LOGITS, axis=1), None, np.eye(K)[Y], LOGITS,
                              np.ones(N)),
}


@pytest.mark.parametrize("case", sorted(METRIC_CASES))
def test_metrics_of_odd_inputs(case):
    y, logits, weight, target, reference_logits, reference_weight = METRIC_CASES[case]()
    logits_is = "probability" if case == "probabilities" else "logit"
    metrics = logitshift.multiclass_metrics(y, logits, weight, logits_is=logits_is)
    log_loss, brier = reference_metrics(target, reference_logits, reference_weight)
    assert metrics.log_loss == pytest.approx(log_loss, rel=1e-9)
    assert metrics.brier == pytest.approx(brier, rel=1e-9)
    json.dumps(metrics.to_dict(json_safe=True), allow_nan=False)


@pytest.mark.parametrize("bins", [0, -1, 2.5, "10"])
def test_metrics_bins_must_be_a_positive_integer(bins):
    assert_input_error(lambda: logitshift.multiclass_metrics(Y, LOGITS, bins=bins), "bins",
                       None, repr(bins) if isinstance(bins, str) else str(bins))


@pytest.mark.parametrize("which", ["logits", "y", "weight"])
def test_a_masked_entry_is_refused_by_its_row_not_read_as_its_data(which):
    """A masked array's masked entries are missing values: refused by row, as a column's
    nulls are, never read as whatever data lies under the mask."""
    rng = np.random.default_rng(5)
    logits = np.ma.array(rng.normal(size=(30, 3)), mask=False)
    y = np.ma.array(np.arange(30) % 3, mask=False)
    weight = np.ma.array(np.ones(30), mask=False)
    arguments = {"logits": logits, "y": y, "weight": weight}
    masked = arguments[which]
    if masked.ndim == 2:
        masked.mask[7, 2] = True
        masked.data[7, 2] = 1e3
    else:
        masked.mask[7] = True
    with pytest.raises(InputError, match=rf"{which}\[7\] is missing \(masked\)"):
        logitshift.fit_multiclass(arguments["y"], arguments["logits"], arguments["weight"])
    clean = {name: np.ma.getdata(value) for name, value in arguments.items()}
    clean[which] = np.ma.array(clean[which], mask=False)  # nothing masked: read as its data
    expected = logitshift.fit_multiclass(np.ma.getdata(y), np.ma.getdata(logits),
                                         np.ma.getdata(weight))
    np.testing.assert_array_equal(
        logitshift.fit_multiclass(clean["y"], clean["logits"], clean["weight"]).shift,
        expected.shift)
