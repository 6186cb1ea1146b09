"""Per-row loss, gradient, Hessian and sigmoid against mpmath, finite differences and the seed."""

from __future__ import annotations

import mpmath as mp
import numpy as np
import pytest

import logitshift

RAW = np.array([-1e308, -1e5, -745.5, -710.0, -40.0, -36.9, -5.0, -1e-9, 0.0, 1e-300,
                0.3, 1.0, 17.0, 37.5, 500.0, 709.9, 1e5, 1e308])
LABELS = np.array([0.0, 0.25, 0.5, 1.0])


def mp_loss(y, z):
    with mp.workdps(60):
        z = mp.mpf(float(z))
        # log(1 + e^z) for any z, without cancellation.
        softplus = (lambda t: t + mp.log1p(mp.exp(-t)) if t > 0 else mp.log1p(mp.exp(t)))
        return (1 - mp.mpf(y)) * softplus(z) + mp.mpf(y) * softplus(-z)


def mp_sigmoid(z):
    with mp.workdps(60):
        return 1 / (1 + mp.exp(-mp.mpf(float(z))))


def relative_error(value, exact):
    """Relative error, or absolute error in units of the smallest normal double where the
    exact value underflows (below it doubles have fewer significant bits)."""
    exact = mp.mpf(exact)
    error = abs(mp.mpf(float(value)) - exact)
    tiny = mp.mpf(np.finfo(np.float64).tiny)
    return error / tiny if abs(exact) < tiny else error / abs(exact)


@pytest.mark.parametrize("y", LABELS)
def test_loss_matches_mpmath_for_every_finite_raw_score(y):
    values = logitshift.loss(np.full(RAW.size, y), RAW)
    assert np.all(np.isfinite(values))
    for z, value in zip(RAW, values):
        assert relative_error(value, mp_loss(y, z)) < 4e-16, (y, z, value)


@pytest.mark.parametrize("y", LABELS)
def test_gradient_matches_mpmath(y):
    values = logitshift.gradient(np.full(RAW.size, y), RAW)
    assert np.all(np.isfinite(values))
    for z, value in zip(RAW, values):
        with mp.workdps(60):
            up, down = mp_sigmoid(z), mp_sigmoid(-z)
            exact = (1 - mp.mpf(y)) * up - mp.mpf(y) * down
            # Each label part is accurate to ulps; soft labels can cancel between them.
            scale = max((1 - mp.mpf(y)) * up, mp.mpf(y) * down)
        error = abs(mp.mpf(float(value)) - exact)
        assert error <= 4e-16 * scale + np.finfo(np.float64).tiny, (y, z, value)


def test_hessian_and_sigmoid_match_mpmath():
    hessian = logitshift.hessian(RAW)
    sigmoid = logitshift.sigmoid(RAW)
    for z, h, s in zip(RAW, hessian, sigmoid):
        exact_s = mp_sigmoid(z)
        with mp.workdps(60):
            exact_h = exact_s * mp_sigmoid(-z)
        assert relative_error(s, exact_s) < 3e-16
        assert relative_error(h, exact_h) < 4e-16


@pytest.mark.parametrize("y", LABELS)
def test_gradient_is_the_derivative_of_the_loss(y):
    z = np.linspace(-30, 30, 61)
    step = 1e-5
    labels = np.full(z.size, y)
    numeric = (logitshift.loss(labels, z + step) - logitshift.loss(labels, z - step)) / (2 * step)
    np.testing.assert_allclose(logitshift.gradient(labels, z), numeric, rtol=1e-7, atol=1e-9)
    numeric_2 = (logitshift.gradient(labels, z + step)
                 - logitshift.gradient(labels, z - step)) / (2 * step)
    # The differenced gradient loses eps / step to cancellation near |gradient| = 1.
    np.testing.assert_allclose(logitshift.hessian(z), numeric_2, rtol=1e-7, atol=1e-10)


def test_agrees_with_the_seed_formulas_where_they_are_finite():
    def sigma(z):
        return 1.0 / (1.0 + np.exp(-z))

    def seed_loss(z, y):
        return -y * np.log(sigma(z)) - (1.0 - y) * np.log(1.0 - sigma(z))

    def seed_gradient(z, y):  # with the seed's slip fixed: σ(z) + σ(-z) = 1
        return sigma(z) - y * (sigma(z) + sigma(-z))

    rng = np.random.default_rng(0)
    # The seed's log(1 - σ(z)) loses digits as |z| grows; compare where it keeps nine.
    z = rng.uniform(-15, 15, 2000)
    y = rng.random(2000)
    np.testing.assert_allclose(logitshift.loss(y, z), seed_loss(z, y), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(logitshift.gradient(y, z), seed_gradient(z, y), rtol=1e-12,
                               atol=1e-15)
    # The seed's loss overflows where this one does not.
    with np.errstate(divide="ignore"):
        assert np.isinf(seed_loss(np.array(40.0), 0.0))
    assert logitshift.loss(np.array([0.0]), np.array([40.0]))[0] == pytest.approx(40.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("label_dtype", [bool, np.int8, np.int64, np.float32],
                         ids=["bool", "int8", "int64", "float32"])
def test_input_dtypes_give_float64_results_equal_to_the_float64_computation(dtype, label_dtype):
    rng = np.random.default_rng(1)
    raw = rng.normal(0, 5, 100).astype(dtype)
    labels = (rng.random(100) < 0.4).astype(label_dtype)
    as64 = (labels.astype(np.float64), raw.astype(np.float64))
    for function in (logitshift.loss, logitshift.gradient):
        result = function(labels, raw)
        assert result.dtype == np.float64
        np.testing.assert_array_equal(result, function(*as64))
    np.testing.assert_array_equal(logitshift.hessian(raw), logitshift.hessian(raw.astype(float)))


def test_infinite_raw_scores():
    labels = np.array([1.0, 0.0, 0.0, 1.0, 0.5])
    raw = np.array([np.inf, -np.inf, np.inf, -np.inf, np.inf])
    loss = logitshift.loss(labels, raw)
    np.testing.assert_array_equal(loss, [0.0, 0.0, np.inf, np.inf, np.inf])
    np.testing.assert_array_equal(logitshift.gradient(labels, raw), [0.0, 0.0, 1.0, -1.0, 0.5])
    np.testing.assert_array_equal(logitshift.hessian(raw), np.zeros(5))
    # A row of zero weight has no loss, even an infinite one.
    weighted = logitshift.loss(labels, raw, weight=np.array([1.0, 1.0, 0.0, 0.0, 2.0]))
    np.testing.assert_array_equal(weighted, [0.0, 0.0, 0.0, 0.0, np.inf])


def test_weighted_loss_is_the_product():
    rng = np.random.default_rng(2)
    y, z, w = rng.random(50), rng.normal(0, 3, 50), rng.exponential(1, 50)
    np.testing.assert_array_equal(logitshift.loss(y, z, w), w * logitshift.loss(y, z))


def test_sigmoid_is_symmetric_and_bounded():
    z = np.linspace(-800, 800, 3201)
    s = logitshift.sigmoid(z)
    assert np.all((s >= 0) & (s <= 1))
    np.testing.assert_allclose(s + logitshift.sigmoid(-z), 1.0, rtol=0, atol=2.3e-16)
    assert np.all(np.diff(s) >= 0)


@pytest.mark.parametrize("weight, message", [
    (np.array([1.0, -2.0]), r"weight\[1\] = -2.0 must be finite and non-negative"),
    (np.array([np.nan, 1.0]), r"weight\[0\] is nan"),
    (np.array([1.0, np.inf]), r"weight\[1\] = inf must be finite"),
], ids=["negative", "nan", "inf"])
def test_per_row_loss_rejects_bad_weights(weight, message):
    with pytest.raises(logitshift.InputError, match=message):
        logitshift.loss(np.array([0.0, 1.0]), np.array([0.5, -0.5]), weight)


@pytest.mark.parametrize("call, message", [
    (lambda: logitshift.loss(np.zeros(50), np.zeros(50), weight=np.ones(3)),
     r"weight does not match the others: y has shape \(50,\), raw has shape \(50,\), "
     r"weight has shape \(3,\)"),
    (lambda: logitshift.loss(np.zeros(4), np.zeros(3)),
     r"raw does not match the others: y has shape \(4,\), raw has shape \(3,\)"),
    (lambda: logitshift.gradient(np.zeros(4), np.zeros(3)), r"raw has shape \(3,\)"),
    (lambda: logitshift.loss([0, 1], [0.0, np.nan]), r"raw\[1\] is nan"),
    (lambda: logitshift.gradient([0, 1], [np.nan, 0.0]), r"raw\[0\] is nan"),
    (lambda: logitshift.hessian(np.array([[0.0, np.nan]])), r"raw\[1\] is nan"),
    (lambda: logitshift.sigmoid(float("nan")), r"raw\[0\] is nan"),
], ids=["weight-length", "raw-length", "gradient-length", "nan-loss", "nan-gradient",
        "nan-hessian", "nan-sigmoid"])
def test_per_row_functions_refuse_nan_and_mismatched_shapes(call, message):
    with pytest.raises(logitshift.InputError, match=message):
        call()


def test_per_row_functions_still_broadcast():
    y = np.array([[0.0], [1.0]])
    raw = np.array([-1.0, 0.0, 2.0])
    expected = np.array([[float(mp_loss(label, z)) for z in raw] for label in (0.0, 1.0)])
    np.testing.assert_allclose(logitshift.loss(y, raw, weight=2.0), 2 * expected, rtol=1e-15)
