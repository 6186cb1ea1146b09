"""Bad input to ``logitshift.fit`` and the per-row functions raises ``InputError``.

Each message names the argument, the first bad row and its value where there is one, and the
exception carries them as ``argument``, ``index`` and ``value``. Inputs are never modified.
"""

from __future__ import annotations

import math
import re
import warnings

import numpy as np
import pytest

import logitshift
from logitshift import InputError

_MISSING = object()  # "do not check this attribute"

# A small well-posed problem that each bad case spoils in one place.
Y = np.array([0.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0])
OFFSET = np.array([0.3, -1.2, 0.5, 2.0, -0.4, 1.1, -2.2, 0.7, 0.0, -0.9])
WEIGHT = np.array([1.0, 2.0, 0.5, 1.0, 3.0, 1.0, 1.0, 0.25, 2.0, 1.0])


def _with(array: np.ndarray, index: int, value: object, dtype: object = None) -> np.ndarray:
    out = np.array(array, dtype=dtype if dtype is not None else array.dtype)
    out[index] = value
    return out


def _objects(array: np.ndarray, index: int, value: object) -> np.ndarray:
    out = np.array(list(array), dtype=object)
    out[index] = value
    return out


def case(id, call, message, argument, index=None, value=_MISSING):
    """``call()`` raises InputError whose message contains ``message`` exactly."""
    return pytest.param(call, message, argument, index, value, id=id)


FIT_CASES = [
    # -- empty and mismatched lengths ------------------------------------------------------
    case("empty-list", lambda: logitshift.fit([]), "y is empty", "y"),
    case("empty-array", lambda: logitshift.fit(np.array([], dtype=np.float64)), "y is empty",
         "y"),
    case("empty-int-array", lambda: logitshift.fit(np.zeros(0, dtype=np.int64)), "y is empty",
         "y"),
    case("weight-999-of-1000",
         lambda: logitshift.fit(np.tile([0.0, 1.0], 500), None, np.ones(999)),
         "weight has 999 rows, y has 1000", "weight"),
    case("weight-1001-of-1000",
         lambda: logitshift.fit(np.tile([0.0, 1.0], 500), None, np.ones(1001)),
         "weight has 1001 rows, y has 1000", "weight"),
    case("offset-999-of-1000",
         lambda: logitshift.fit(np.tile([0.0, 1.0], 500), np.zeros(999)),
         "offset has 999 rows, y has 1000", "offset"),
    case("offset-length-1-array", lambda: logitshift.fit(Y, np.array([0.5])),
         "offset has 1 row, y has 10", "offset"),
    # -- NaN ----------------------------------------------------------------------------------
    case("nan-label", lambda: logitshift.fit(_with(Y, 4, np.nan)), "y[4] is nan", "y", 4,
         math.nan),
    case("nan-label-float32", lambda: logitshift.fit(_with(Y, 6, np.nan, np.float32)),
         "y[6] is nan", "y", 6, math.nan),
    case("nan-label-first-of-two",
         lambda: logitshift.fit(_with(_with(Y, 8, np.nan), 2, np.nan)), "y[2] is nan", "y", 2,
         math.nan),
    case("nan-offset", lambda: logitshift.fit(Y, _with(OFFSET, 3, np.nan)), "offset[3] is nan",
         "offset", 3, math.nan),
    case("nan-offset-object",
         lambda: logitshift.fit(Y, _objects(OFFSET, 5, float("nan"))), "offset[5] is nan",
         "offset", 5, math.nan),
    case("nan-scalar-offset", lambda: logitshift.fit(Y, float("nan")), "offset is nan",
         "offset", None, math.nan),
    case("nan-numpy-scalar-offset", lambda: logitshift.fit(Y, np.float32("nan")),
         "offset is nan", "offset", None, math.nan),
    case("nan-weight", lambda: logitshift.fit(Y, OFFSET, _with(WEIGHT, 5, np.nan)),
         "weight[5] is nan", "weight", 5, math.nan),
    # -- labels outside [0, 1] -----------------------------------------------------------------
    case("label-2.0", lambda: logitshift.fit(_with(Y, 7, 2.0)),
         "label y[7] = 2.0 is outside [0, 1]", "y", 7, 2.0),
    case("label-int8-2", lambda: logitshift.fit(_with(Y, 7, 2, np.int8)),
         "label y[7] = 2 is outside [0, 1]", "y", 7, 2),
    case("label-int-minus-1", lambda: logitshift.fit([0, 1, -1, 1]),
         "label y[2] = -1 is outside [0, 1]", "y", 2, -1),
    case("label-negative-soft", lambda: logitshift.fit(_with(Y, 2, -0.5)),
         "label y[2] = -0.5 is outside [0, 1]", "y", 2, -0.5),
    case("label-just-above-1", lambda: logitshift.fit(_with(Y, 0, np.nextafter(1.0, 2.0))),
         f"label y[0] = {float(np.nextafter(1.0, 2.0))!r} is outside [0, 1]", "y", 0,
         float(np.nextafter(1.0, 2.0))),
    case("label-inf", lambda: logitshift.fit(_with(Y, 1, np.inf)),
         "label y[1] = inf is outside [0, 1]", "y", 1, math.inf),
    case("label-first-of-two", lambda: logitshift.fit(_with(_with(Y, 8, 5.0), 3, 3.0)),
         "label y[3] = 3.0 is outside [0, 1]", "y", 3, 3.0),
    # -- bad weights -----------------------------------------------------------------------------
    case("weight-negative", lambda: logitshift.fit(Y, OFFSET, _with(WEIGHT, 2, -1.0)),
         "weight[2] = -1.0 must be finite and non-negative", "weight", 2, -1.0),
    case("weight-negative-int", lambda: logitshift.fit(Y, None, _with(WEIGHT, 2, -1, np.int64)),
         "weight[2] = -1 must be finite and non-negative", "weight", 2, -1),
    case("weight-tiny-negative", lambda: logitshift.fit(Y, None, _with(WEIGHT, 9, -1e-300)),
         "weight[9] = -1e-300 must be finite and non-negative", "weight", 9, -1e-300),
    case("weight-inf", lambda: logitshift.fit(Y, OFFSET, _with(WEIGHT, 4, np.inf)),
         "weight[4] = inf must be finite and non-negative", "weight", 4, math.inf),
    case("weight-minus-inf", lambda: logitshift.fit(Y, OFFSET, _with(WEIGHT, 6, -np.inf)),
         "weight[6] = -inf must be finite and non-negative", "weight", 6, -math.inf),
    case("weight-first-of-two",
         lambda: logitshift.fit(Y, OFFSET, _with(_with(WEIGHT, 7, np.inf), 1, -2.0)),
         "weight[1] = -2.0 must be finite and non-negative", "weight", 1, -2.0),
    case("weight-all-zero", lambda: logitshift.fit(Y, OFFSET, np.zeros(10)),
         "weight is zero on every row", "weight"),
    case("weight-all-zero-int", lambda: logitshift.fit(Y, None, np.zeros(10, dtype=np.int32)),
         "weight is zero on every row", "weight"),
    case("weight-all-false", lambda: logitshift.fit(Y, None, np.zeros(10, dtype=bool)),
         "weight is zero on every row", "weight"),
    # -- non-numeric -------------------------------------------------------------------------------
    case("label-str-array", lambda: logitshift.fit(np.array(["0", "1", "1"])),
         "y must be numeric, got dtype <U1", "y"),
    case("label-object-str", lambda: logitshift.fit(_objects(Y, 2, "a")),
         "y must be numeric; y[2] = 'a'", "y", 2, "a"),
    case("label-object-none", lambda: logitshift.fit(_objects(Y, 5, None)),
         "y must be numeric; y[5] = None", "y", 5, None),
    case("label-complex", lambda: logitshift.fit(np.array([0, 1 + 0j])),
         "y must be numeric, got dtype complex128", "y"),
    case("offset-str-array", lambda: logitshift.fit(Y, OFFSET.astype(str)),
         "offset must be numeric, got dtype <U", "offset"),
    case("offset-object-str", lambda: logitshift.fit(Y, _objects(OFFSET, 3, "x")),
         "offset must be numeric; offset[3] = 'x'", "offset", 3, "x"),
    case("offset-scalar-str", lambda: logitshift.fit(Y, "abc"),
         "offset must be a number, got 'abc'", "offset", None, "abc"),
    case("weight-str-array", lambda: logitshift.fit(Y, None, WEIGHT.astype(str)),
         "weight must be numeric, got dtype <U", "weight"),
    case("weight-object-str", lambda: logitshift.fit(Y, None, _objects(WEIGHT, 4, "heavy")),
         "weight must be numeric; weight[4] = 'heavy'", "weight", 4, "heavy"),
    # -- 2-D where 1-D is expected -------------------------------------------------------------
    case("label-2d", lambda: logitshift.fit(Y.reshape(5, 2)),
         "y must be 1-D, got shape (5, 2); pass a flat array", "y"),
    case("label-column", lambda: logitshift.fit(Y.reshape(10, 1)),
         "y must be 1-D, got shape (10, 1)", "y"),
    case("label-0d", lambda: logitshift.fit(1.0), "y must be 1-D, got shape ()", "y"),
    case("offset-column", lambda: logitshift.fit(Y, OFFSET.reshape(10, 1)),
         "offset must be 1-D, got shape (10, 1)", "offset"),
    case("weight-row", lambda: logitshift.fit(Y, None, WEIGHT.reshape(1, 10)),
         "weight must be 1-D, got shape (1, 10)", "weight"),
    # -- infinite offsets that contradict their labels ---------------------------------------
    case("plus-inf-offset-label-0", lambda: logitshift.fit(Y, _with(OFFSET, 3, np.inf)),
         "offset[3] = inf with label y[3] = 0.0 has infinite loss", "offset", 3, math.inf),
    case("minus-inf-offset-label-1", lambda: logitshift.fit(Y, _with(OFFSET, 1, -np.inf)),
         "offset[1] = -inf with label y[1] = 1.0 has infinite loss", "offset", 1, -math.inf),
    case("plus-inf-offset-soft-label",
         lambda: logitshift.fit(_with(Y, 4, 0.5), _with(OFFSET, 4, np.inf)),
         "offset[4] = inf with label y[4] = 0.5 has infinite loss", "offset", 4, math.inf),
    case("first-contradicting-offset",
         lambda: logitshift.fit(Y, _with(_with(OFFSET, 1, -np.inf), 0, np.inf)),
         "offset[0] = inf with label y[0] = 0.0", "offset", 0, math.inf),
    case("scalar-plus-inf-offset", lambda: logitshift.fit(Y, math.inf),
         "offset = inf leaves no shift to fit", "offset", None, math.inf),
    case("scalar-minus-inf-offset", lambda: logitshift.fit(Y, -math.inf),
         "offset = -inf leaves no shift to fit", "offset", None, -math.inf),
    case("every-offset-infinite-and-agreeing",
         lambda: logitshift.fit([1.0, 0.0], [math.inf, -math.inf]),
         "every row with positive weight has an infinite offset", "offset"),
    # -- options ---------------------------------------------------------------------------------
    case("pseudo-count-negative", lambda: logitshift.fit(Y, pseudo_count=-1.0),
         "pseudo_count = -1.0 must be finite and non-negative", "pseudo_count", None, -1.0),
    case("pseudo-count-nan", lambda: logitshift.fit(Y, pseudo_count=math.nan),
         "pseudo_count = nan must be finite and non-negative", "pseudo_count", None, math.nan),
    case("pseudo-count-inf", lambda: logitshift.fit(Y, pseudo_count=math.inf),
         "pseudo_count = inf must be finite and non-negative", "pseudo_count", None, math.inf),
    case("pseudo-count-str", lambda: logitshift.fit(Y, pseudo_count="half"),
         "pseudo_count must be a number, got 'half'", "pseudo_count", None, "half"),
    case("tol-zero", lambda: logitshift.fit(Y, OFFSET, tol=0.0), "tol must be positive", "tol",
         None, 0.0),
    case("tol-negative", lambda: logitshift.fit(Y, OFFSET, tol=-1e-8),
         "tol = -1e-08 must be finite and non-negative", "tol", None, -1e-8),
    case("tol-nan", lambda: logitshift.fit(Y, OFFSET, tol=math.nan),
         "tol = nan must be finite and non-negative", "tol", None, math.nan),
    case("tol-inf", lambda: logitshift.fit(Y, OFFSET, tol=math.inf),
         "tol = inf must be finite and non-negative", "tol", None, math.inf),
    case("tol-str", lambda: logitshift.fit(Y, OFFSET, tol="tiny"),
         "tol must be a number, got 'tiny'", "tol", None, "tiny"),
    case("max-iter-zero", lambda: logitshift.fit(Y, OFFSET, max_iter=0),
         "max_iter = 0 must be a positive integer", "max_iter", None, 0),
    case("max-iter-negative", lambda: logitshift.fit(Y, OFFSET, max_iter=-3),
         "max_iter = -3 must be a positive integer", "max_iter", None, -3),
    case("max-iter-float", lambda: logitshift.fit(Y, OFFSET, max_iter=2.5),
         "max_iter = 2.5 must be a positive integer", "max_iter", None, 2.5),
    case("max-iter-bool", lambda: logitshift.fit(Y, OFFSET, max_iter=True),
         "max_iter = True must be a positive integer", "max_iter", None, True),
    case("max-iter-str", lambda: logitshift.fit(Y, OFFSET, max_iter="10"),
         "max_iter = '10' must be a positive integer", "max_iter", None, "10"),
    case("max-iter-none", lambda: logitshift.fit(Y, OFFSET, max_iter=None),
         "max_iter = None must be a positive integer", "max_iter", None, None),
]


def _same(actual: object, expected: object) -> bool:
    if isinstance(expected, float) and math.isnan(expected):
        return isinstance(actual, float) and math.isnan(actual)
    return type(actual) is type(expected) and actual == expected


def _check(excinfo: pytest.ExceptionInfo, message, argument, index, value) -> None:
    error = excinfo.value
    assert type(error) is InputError
    assert isinstance(error, ValueError)
    assert message in str(error)
    assert argument in str(error), "the message must name the argument"
    assert error.argument == argument
    assert error.index == index
    if index is not None:
        assert f"[{index}]" in str(error), "the message must name the first bad row"
    if value is not _MISSING:
        assert _same(error.value, value), (error.value, value)


def test_input_error_is_a_value_error():
    assert issubclass(InputError, ValueError)
    error = InputError("boom", argument="y", index=3, value=2.0)
    assert (str(error), error.argument, error.index, error.value) == ("boom", "y", 3, 2.0)
    plain = InputError("boom")
    assert (plain.argument, plain.index, plain.value) == (None, None, None)


@pytest.mark.parametrize(("call", "message", "argument", "index", "value"), FIT_CASES)
def test_fit_rejects(call, message, argument, index, value):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a rejected input must not warn first
        with pytest.raises(InputError) as excinfo:
            call()
    _check(excinfo, message, argument, index, value)


@pytest.mark.parametrize(("call", "message", "argument", "index", "value"), FIT_CASES[:8])
def test_fit_errors_are_caught_as_value_error(call, message, argument, index, value):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


# -- the edges of the valid region are accepted -----------------------------------------------


def test_contradicting_infinite_offset_on_zero_weight_row_is_ignored():
    offsets = _with(_with(OFFSET, 3, np.inf), 1, -np.inf)  # both contradict their labels
    weights = _with(_with(WEIGHT, 3, 0.0), 1, 0.0)
    keep = np.ones(10, dtype=bool)
    keep[[1, 3]] = False
    result = logitshift.fit(Y, offsets, weights)
    assert result.shift == logitshift.fit(Y[keep], OFFSET[keep], WEIGHT[keep]).shift


def test_agreeing_infinite_offsets_are_accepted():
    offsets = _with(_with(OFFSET, 3, -np.inf), 1, np.inf)  # -inf on a 0, +inf on a 1
    keep = np.ones(10, dtype=bool)
    keep[[1, 3]] = False
    result = logitshift.fit(Y, offsets, WEIGHT)
    assert result.shift == logitshift.fit(Y[keep], OFFSET[keep], WEIGHT[keep]).shift
    assert result.n_rows == 10


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param(np.array([0.0, 1.0, 0.0, 0.0]), id="float-0-1"),
        pytest.param(np.array([0.0, 0.25, 1.0, 0.5]), id="soft"),
        pytest.param(np.array([False, True, False, False]), id="bool"),
        pytest.param(np.array([0, 1, 0, 0], dtype=np.uint8), id="uint8"),
        pytest.param(np.array([0, 1, 0, 0], dtype=object), id="object-ints"),
        pytest.param([0, 1, 0, 0], id="list"),
    ],
)
def test_valid_labels_give_the_closed_form(labels):
    y = np.asarray(labels, dtype=np.float64)
    m, k = y.sum(), (1 - y).sum()
    assert logitshift.fit(labels).shift == pytest.approx(math.log(m / k), rel=1e-15)


# -- inputs are never modified ------------------------------------------------------------------

LABEL_DTYPES = [
    pytest.param(np.float64, id="y-float64"),
    pytest.param(np.float32, id="y-float32"),
    pytest.param(np.int8, id="y-int8"),
    pytest.param(np.bool_, id="y-bool"),
]
OFFSET_DTYPES = [
    pytest.param(np.float64, id="offset-float64"),
    pytest.param(np.float32, id="offset-float32"),
]


def _problem(label_dtype, offset_dtype, n=200):
    rng = np.random.default_rng(12345)
    labels = (rng.random(n) < 0.3).astype(label_dtype)
    offsets = rng.normal(0.0, 1.5, n).astype(offset_dtype)
    # Infinite offsets that agree with their labels exercise the row-dropping path.
    first_positive = int(np.flatnonzero(labels)[0])
    first_negative = int(np.flatnonzero(~labels.astype(bool))[0])
    offsets[first_positive] = np.inf
    offsets[first_negative] = -np.inf
    weights = rng.uniform(0.0, 3.0, n).astype(offset_dtype)
    weights[:5] = 0.0
    return labels, offsets, weights


def _exercise(labels, offsets, weights):
    """Fit with every option and use every method that reads the data again."""
    results = [
        logitshift.fit(labels),
        logitshift.fit(labels, offsets),
        logitshift.fit(labels, offsets, weights),
        logitshift.fit(labels, offsets, weights, pseudo_count=0.5, tol=1e-12, max_iter=50),
    ]
    for result in results:
        result.confint()
        result.confint(method="wald")
        result.lr_test()
        result.to_dict(0.9)
    logitshift.loss(labels, offsets, weights)
    logitshift.gradient(labels, offsets)
    logitshift.hessian(offsets)
    logitshift.sigmoid(offsets)
    return results


@pytest.mark.parametrize("offset_dtype", OFFSET_DTYPES)
@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
def test_read_only_inputs_are_accepted(label_dtype, offset_dtype):
    labels, offsets, weights = _problem(label_dtype, offset_dtype)
    expected = [r.shift for r in _exercise(labels, offsets, weights)]
    for array in (labels, offsets, weights):
        array.flags.writeable = False
    results = _exercise(labels, offsets, weights)
    assert [r.shift for r in results] == expected
    assert all(math.isfinite(s) for s in expected)


@pytest.mark.parametrize("offset_dtype", OFFSET_DTYPES)
@pytest.mark.parametrize("label_dtype", LABEL_DTYPES)
def test_writeable_inputs_are_not_modified(label_dtype, offset_dtype):
    labels, offsets, weights = _problem(label_dtype, offset_dtype)
    before = [a.copy() for a in (labels, offsets, weights)]
    _exercise(labels, offsets, weights)
    for array, original in zip((labels, offsets, weights), before):
        assert array.dtype == original.dtype
        assert array.shape == original.shape
        np.testing.assert_array_equal(array, original, strict=True)


def test_list_inputs_are_not_modified():
    labels, offsets, weights = [0, 1, 1, 0], [0.5, -0.25, 1.0, 0.0], [1, 2, 3, 4]
    copies = (list(labels), list(offsets), list(weights))
    logitshift.fit(labels, offsets, weights, pseudo_count=1.0)
    assert (labels, offsets, weights) == copies


# -- the per-row functions ------------------------------------------------------------------------

PER_ROW_LABEL_CASES = [
    pytest.param(np.array([0.0, 2.0]), "label y[1] = 2.0 is outside [0, 1]", 1, 2.0,
                 id="above-1"),
    pytest.param(np.array([-0.5, 1.0]), "label y[0] = -0.5 is outside [0, 1]", 0, -0.5,
                 id="negative"),
    pytest.param(np.array([0, 3], dtype=np.int8), "label y[1] = 3 is outside [0, 1]", 1, 3,
                 id="int8-3"),
    pytest.param(np.array([1.0, np.nan]), "y[1] is nan", 1, math.nan, id="nan"),
    pytest.param(np.array([[0.0, 1.0], [1.5, 0.0]]), "label y[2] = 1.5 is outside [0, 1]", 2,
                 1.5, id="2d-flat-index"),
]


@pytest.mark.parametrize(("labels", "message", "index", "value"), PER_ROW_LABEL_CASES)
@pytest.mark.parametrize(
    "function",
    [
        pytest.param(lambda y: logitshift.loss(y, np.zeros(np.shape(y))), id="loss"),
        pytest.param(lambda y: logitshift.loss(y, 0.0, weight=1.0), id="loss-weighted"),
        pytest.param(lambda y: logitshift.gradient(y, np.zeros(np.shape(y))), id="gradient"),
    ],
)
def test_per_row_functions_reject_bad_labels(function, labels, message, index, value):
    with pytest.raises(InputError) as excinfo:
        function(labels)
    _check(excinfo, message, "y", index, value)


@pytest.mark.parametrize(
    "function",
    [
        pytest.param(lambda raw: logitshift.sigmoid(raw), id="sigmoid"),
        pytest.param(lambda raw: logitshift.hessian(raw), id="hessian"),
        pytest.param(lambda raw: logitshift.loss([0.0, 1.0], raw), id="loss"),
        pytest.param(lambda raw: logitshift.gradient([0.0, 1.0], raw), id="gradient"),
    ],
)
@pytest.mark.parametrize(
    ("raw", "message", "index", "value"),
    [
        pytest.param(np.array(["0.5", "1"]), "raw must be numeric, got dtype <U", None,
                     _MISSING, id="str-array"),
        pytest.param(np.array([0.5, "x"], dtype=object), "raw must be numeric; raw[1] = 'x'",
                     1, "x", id="object-str"),
    ],
)
def test_per_row_functions_reject_non_numeric_raw(function, raw, message, index, value):
    with pytest.raises(InputError) as excinfo:
        function(raw)
    _check(excinfo, message, "raw", index, value)


def test_per_row_functions_accept_the_label_range_edges():
    labels = np.array([0.0, 1.0, 0.5, 0.0, 1.0])
    raw = np.array([0.0, 0.0, 0.0, -1.0, 1.0])
    np.testing.assert_allclose(
        logitshift.loss(labels, raw),
        [math.log(2), math.log(2), math.log(2), math.log1p(math.exp(-1)),
         math.log1p(math.exp(-1))],
        rtol=1e-15,
    )
    np.testing.assert_allclose(
        logitshift.gradient(labels, raw),
        [0.5, -0.5, 0.0, 1 / (1 + math.e), -1 / (1 + math.e)],
        rtol=1e-15, atol=1e-300,
    )


@pytest.mark.parametrize("max_iter", [np.int64(20), np.int32(20)], ids=["int64", "int32"])
def test_numpy_integer_max_iter_is_accepted(max_iter):
    result = logitshift.fit(Y, OFFSET, max_iter=max_iter)
    assert result.shift == logitshift.fit(Y, OFFSET, max_iter=20).shift
