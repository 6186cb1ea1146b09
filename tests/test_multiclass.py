"""Multiclass recalibration against its references: R's VGAM, 40-digit mpmath Newton, the
binary estimators at K = 2, scikit-learn's temperature scaling, the numpy reference of the
kernels, and the invariances of the loss."""

from __future__ import annotations

import csv
import json
import warnings
from functools import lru_cache
from pathlib import Path

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import logitshift
from logitshift import InputError
from logitshift._core import kernels
from logitshift._core.softmax import log_softmax, softmax_sums
from logitshift._summary.multiclass_rows import ClassRows

DATA = Path(__file__).parent / "data" / "multiclass"
METHODS = ["shift", "temperature", "bias_temperature", "vector"]


def simulate(n: int, k: int, seed: int, *, scale: float = 0.7, spread: float = 2.0,
             weighted: bool = False):
    """Rows whose true recalibration is ``scale · F + bias``."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * spread
    bias = rng.normal(size=k) * 0.5
    probability = np.exp(scale * logits + bias)
    probability /= probability.sum(axis=1, keepdims=True)
    y = (probability.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    weight = rng.uniform(0.1, 3.0, size=n) if weighted else None
    return y, logits, weight


@pytest.fixture(scope="module")
def small():
    return simulate(60, 3, 1, weighted=True)


# -- R: VGAM::vglm(y ~ 1, multinomial, offset = ...) -------------------------------------

def _vglm_reference():
    with open(DATA / "vglm_results.csv") as handle:
        rows = list(csv.DictReader(handle))
    reference: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        reference.setdefault(row["case"], []).append((float(row["estimate"]),
                                                      float(row["se"])))
    return reference


@pytest.mark.parametrize("case", ["k3", "k4_weighted"])
def test_shift_and_se_equal_vglm(case):
    data = np.loadtxt(DATA / f"{case}.csv", delimiter=",", skiprows=1)
    y, weight, logits = data[:, 0].astype(int), data[:, 1], data[:, 2:]
    result = logitshift.fit_multiclass(y, logits, weight, method="shift")
    estimate, se = result.contrast()  # against the last class, VGAM's reference level
    expected = np.array(_vglm_reference()[case])
    assert result.status == "converged"
    np.testing.assert_allclose(estimate[:-1], expected[:, 0], rtol=0, atol=1e-9)
    np.testing.assert_allclose(se[:-1], expected[:, 1], rtol=0, atol=1e-9)
    assert estimate[-1] == 0 and se[-1] == 0


# -- mpmath: Newton at 40 digits ---------------------------------------------------------

def _mp_fit(method: str, logits: np.ndarray, y: np.ndarray, weight: np.ndarray):
    """The minimum in 40 digits: Newton on the identifiable parameters (the first class's
    bias fixed at 0), with the gradient and Hessian of the full parameterisation."""
    mpmath.mp.dps = 40
    n, k = logits.shape
    rows = [[mpmath.mpf(float(v)) for v in row] for row in logits]
    if method == "vector":  # each row's log-softmax, in 40 digits
        rows = [[v - mpmath.log(sum(mpmath.exp(u) for u in row)) for v in row] for row in rows]
    w = [mpmath.mpf(float(v)) for v in weight]
    # The free parameters as a map to (scale, bias): columns of `select`.
    names = {"shift": [("b", j) for j in range(1, k)],
             "temperature": [("s", None)],
             "bias_temperature": [("s", None)] + [("b", j) for j in range(1, k)],
             "vector": [("s", j) for j in range(k)] + [("b", j) for j in range(1, k)]}[method]
    m = len(names)
    select = mpmath.zeros(2 * k, m)  # rows: scale_0..scale_{k-1}, bias_0..bias_{k-1}
    for column, (kind, j) in enumerate(names):
        if kind == "s":
            for c in (range(k) if j is None else [j]):
                select[c, column] = 1
        else:
            select[k + j, column] = 1
    theta = mpmath.matrix([1 if kind == "s" else 0 for kind, _ in names])
    fixed_scale = 1 if method == "shift" else 0
    for _ in range(60):
        full = select * theta
        scale = [full[c] + fixed_scale for c in range(k)]
        bias = [full[k + c] for c in range(k)]
        gradient = mpmath.zeros(2 * k, 1)
        hessian = mpmath.zeros(2 * k, 2 * k)
        for i in range(n):
            eta = [scale[c] * rows[i][c] + bias[c] for c in range(k)]
            top = max(eta)
            e = [mpmath.exp(v - top) for v in eta]
            total = sum(e)
            p = [v / total for v in e]
            features = [[0] * (2 * k) for _ in range(k)]  # d eta_c / d full
            for c in range(k):
                features[c][c] = rows[i][c]
                features[c][k + c] = 1
            for a in range(2 * k):
                mean_a = sum(p[c] * features[c][a] for c in range(k))
                gradient[a] += w[i] * (mean_a - features[y[i]][a])
                for b in range(2 * k):
                    mean_b = sum(p[c] * features[c][b] for c in range(k))
                    second = sum(p[c] * features[c][a] * features[c][b] for c in range(k))
                    hessian[a, b] += w[i] * (second - mean_a * mean_b)
        g = select.T * gradient
        h = select.T * hessian * select
        step = mpmath.lu_solve(h, -g)
        theta += step
        if mpmath.norm(step) < mpmath.mpf(10) ** -35:
            break
    full = select * theta
    scale = np.array([float(full[c] + fixed_scale) for c in range(k)])
    bias = np.array([float(full[k + c]) for c in range(k)])
    return scale, bias - bias.mean()


@pytest.mark.parametrize("method", METHODS)
def test_every_method_equals_mpmath(method, small):
    y, logits, weight = small
    scale, bias = _mp_fit(method, logits, y, weight)
    result = logitshift.fit_multiclass(y, logits, weight, method=method)
    assert result.converged
    np.testing.assert_allclose(np.broadcast_to(result.scale, (3,)), scale, rtol=0, atol=1e-13)
    np.testing.assert_allclose(result.shift, bias, rtol=0, atol=1e-13)


@pytest.mark.parametrize("method", ["shift", "bias_temperature", "vector"])
def test_conjugate_gradients_reach_the_dense_answer(method):
    y, logits, weight = simulate(3000, 6, 2, weighted=True)
    dense = logitshift.fit_multiclass(y, logits, weight, method=method, solver="dense")
    cg = logitshift.fit_multiclass(y, logits, weight, method=method, solver="cg")
    assert cg.converged and cg.hessian_products > 0 and dense.hessian_products == 0
    np.testing.assert_allclose(cg.shift, dense.shift, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cg.scale, dense.scale, rtol=0, atol=1e-12)
    # The covariance from the stored float32 probabilities, or a dense pass: the same.
    np.testing.assert_allclose(cg.shift_se, dense.shift_se, rtol=1e-6)


# -- K = 2 is the binary estimators --------------------------------------------------------

def test_two_classes_equal_the_binary_fits():
    y, logits, weight = simulate(400, 2, 3, weighted=True)
    offset = logits[:, 1] - logits[:, 0]
    shift = logitshift.fit_multiclass(y, logits, weight, method="shift")
    binary = logitshift.fit(y, offset, weight)
    assert shift.shift[1] - shift.shift[0] == pytest.approx(binary.shift, abs=1e-13)
    difference, se = shift.contrast(0)
    assert se[1] == pytest.approx(binary.se, rel=1e-10)
    assert shift.loss == pytest.approx(binary.loss, rel=1e-13)
    both = logitshift.fit_multiclass(y, logits, weight, method="bias_temperature")
    slope = logitshift.fit_slope(y, offset, weight)
    assert both.scale == pytest.approx(slope.slope, abs=1e-13)
    assert both.shift[1] - both.shift[0] == pytest.approx(slope.intercept, abs=1e-13)
    assert both.scale_se == pytest.approx(slope.se_slope, rel=1e-9)


# -- scikit-learn's temperature scaling ------------------------------------------------------

def test_temperature_matches_scikit_learn():
    sklearn = pytest.importorskip("sklearn")
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.datasets import make_classification
    from sklearn.frozen import FrozenEstimator
    from sklearn.linear_model import LogisticRegression

    del sklearn
    x, y = make_classification(n_samples=4000, n_features=10, n_informative=6, n_classes=4,
                               random_state=0)
    model = LogisticRegression(C=100.0, max_iter=2000).fit(x[:2000], y[:2000])
    calibrated = CalibratedClassifierCV(FrozenEstimator(model), method="temperature")
    calibrated.fit(x[2000:], y[2000:])
    beta = float(calibrated.calibrated_classifiers_[0].calibrators[0].beta_)
    scores = model.decision_function(x[2000:])
    ours = logitshift.fit_multiclass(y[2000:], scores, method="temperature")
    theirs = log_softmax(beta * scores)[np.arange(2000), y[2000:]]
    their_loss = -float(np.mean(theirs))
    assert ours.loss <= their_loss + 1e-15
    # Brent's search on log β cannot resolve the flat minimum below about sqrt(eps).
    assert ours.scale == pytest.approx(beta, rel=1e-7)


# -- the kernel against its numpy reference --------------------------------------------------

@pytest.mark.parametrize("labels", ["hard", "soft", "none"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_kernel_equals_numpy_reference(labels, dtype):
    rng = np.random.default_rng(4)
    n, k = 300, 5
    logits = (rng.normal(size=(n, k)) * 3).astype(dtype)
    y = rng.integers(0, k, n)
    ruled_out = np.arange(0, n, 7)
    logits[ruled_out, (y[ruled_out] + 1) % k] = -np.inf  # never the row's own class
    onehot = np.eye(k)[y]
    soft = np.where(np.isfinite(logits), rng.random((n, k)), 0.0)
    soft /= soft.sum(axis=1, keepdims=True)
    weight = rng.uniform(0, 2, n)
    scale, bias = rng.uniform(0.5, 1.5, k), rng.normal(size=k)
    active = np.ones(k, dtype=bool)
    target = {"hard": onehot, "soft": soft, "none": None}[labels]
    rows = ClassRows(logits, y if labels == "hard" else None,
                     soft if labels == "soft" else None, weight)
    sums = rows.evaluate(scale, bias, active, dense=2)
    row, square = softmax_sums(logits.astype(np.float64), target, weight, scale, bias, active)
    np.testing.assert_allclose(sums.row, row, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(sums.square, square, rtol=1e-12, atol=1e-12)


def test_gradient_and_hessian_are_the_loss_derivatives(small):
    """Finite differences of the reference loss against the kernel's gradient and the
    Hessian-vector product."""
    y, logits, weight = small
    k = logits.shape[1]
    rows = ClassRows(logits, y, None, weight)
    rng = np.random.default_rng(5)
    scale, bias = rng.uniform(0.5, 1.5, k), rng.normal(size=k)
    active = np.ones(k, dtype=bool)
    sums = rows.evaluate(scale, bias, active, store=True)
    direction_scale, direction_bias = rng.normal(size=k), rng.normal(size=k)
    onehot = np.eye(k)[y]

    def loss(t):
        row, _ = softmax_sums(logits, onehot, weight, scale + t * direction_scale,
                              bias + t * direction_bias, active)
        return row[0]

    def slope(t):
        row, _ = softmax_sums(logits, onehot, weight, scale + t * direction_scale,
                              bias + t * direction_bias, active)
        gb = row[kernels.M_HEAD:kernels.M_HEAD + k]
        gs = row[kernels.M_HEAD + k:kernels.M_HEAD + 2 * k]
        return gb @ direction_bias + gs @ direction_scale

    h = 1e-5
    gradient_bias = sums.row[kernels.M_HEAD:kernels.M_HEAD + k]
    gradient_scale = sums.row[kernels.M_HEAD + k:kernels.M_HEAD + 2 * k]
    numeric = (loss(h) - loss(-h)) / (2 * h)
    assert gradient_bias @ direction_bias + gradient_scale @ direction_scale == \
        pytest.approx(numeric, rel=1e-7)
    hv_bias, hv_scale = rows.hessian_vector(direction_scale, direction_bias, with_scale=True)
    curvature = hv_bias @ direction_bias + hv_scale @ direction_scale
    assert curvature == pytest.approx((slope(h) - slope(-h)) / (2 * h), rel=1e-5)


# -- invariances (hypothesis) ----------------------------------------------------------------

@lru_cache(maxsize=None)
def _base(seed: int):
    return simulate(80, 3, seed, weighted=True)


def _fit(method, y, logits, weight, **options):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return logitshift.fit_multiclass(y, logits, weight, method=method, **options)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 3), method=st.sampled_from(METHODS),
       constants=st.lists(st.floats(-30, 30), min_size=80, max_size=80))
def test_a_constant_added_to_a_row_changes_nothing(seed, method, constants):
    y, logits, weight = _base(seed)
    before = _fit(method, y, logits, weight)
    after = _fit(method, y, logits + np.array(constants)[:, None], weight)
    np.testing.assert_allclose(after.shift, before.shift, rtol=0, atol=1e-9)
    np.testing.assert_allclose(after.scale, before.scale, rtol=0, atol=1e-9)
    assert after.loss == pytest.approx(before.loss, rel=1e-10)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 3), method=st.sampled_from(METHODS),
       order=st.permutations([0, 1, 2]))
def test_permuting_the_classes_permutes_the_results(seed, method, order):
    y, logits, weight = _base(seed)
    before = _fit(method, y, logits, weight)
    order = np.array(order)
    inverse = np.argsort(order)
    after = _fit(method, inverse[y], logits[:, order], weight)
    np.testing.assert_allclose(after.shift, before.shift[order], rtol=0, atol=1e-10)
    np.testing.assert_allclose(np.broadcast_to(after.scale, (3,)),
                               np.broadcast_to(before.scale, (3,))[order], rtol=0, atol=1e-10)
    np.testing.assert_allclose(after.shift_se, before.shift_se[order], rtol=1e-8)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 3), method=st.sampled_from(METHODS), power=st.integers(-30, 30))
def test_weights_times_a_power_of_two_change_nothing(seed, method, power):
    y, logits, weight = _base(seed)
    before = _fit(method, y, logits, weight)
    after = _fit(method, y, logits, weight * 2.0 ** power)
    np.testing.assert_allclose(after.shift, before.shift, rtol=0, atol=1e-12)
    np.testing.assert_allclose(after.scale, before.scale, rtol=0, atol=1e-12)
    np.testing.assert_allclose(after.shift_se * 2.0 ** (power / 2), before.shift_se,
                               rtol=1e-9)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 3), method=st.sampled_from(METHODS),
       counts=st.lists(st.integers(0, 3), min_size=80, max_size=80))
def test_integer_weights_equal_repeated_rows(seed, method, counts):
    y, logits, _ = _base(seed)
    counts = np.array(counts)
    if len(np.unique(y[counts > 0])) < 3:
        return  # a class without rows: the degenerate case has its own test
    weighted = _fit(method, y, logits, counts.astype(float))
    repeated = _fit(method, np.repeat(y, counts), np.repeat(logits, counts, axis=0), None)
    np.testing.assert_allclose(weighted.shift, repeated.shift, rtol=0, atol=1e-10)
    np.testing.assert_allclose(weighted.scale, repeated.scale, rtol=0, atol=1e-10)
    np.testing.assert_allclose(weighted.shift_se, repeated.shift_se, rtol=1e-8)


# -- statistics ------------------------------------------------------------------------------

def test_probabilities_and_log_probabilities_give_one_fit():
    y, logits, weight = simulate(500, 4, 6, weighted=True)
    probability = np.exp(log_softmax(logits))
    for method in METHODS:
        from_logits = logitshift.fit_multiclass(y, logits, weight, method=method)
        from_probability = logitshift.fit_multiclass(y, probability, weight, method=method,
                                                     logits_is="probability")
        np.testing.assert_allclose(from_probability.shift, from_logits.shift, atol=1e-9)
        np.testing.assert_allclose(from_probability.predict_proba(probability),
                                   from_logits.predict_proba(logits), atol=1e-9)


def test_predictions_reproduce_the_fitted_loss():
    y, logits, weight = simulate(500, 4, 7, weighted=True)
    for method in METHODS:
        result = logitshift.fit_multiclass(y, logits, weight, method=method)
        probability = result.predict_proba(logits)
        loss = -np.sum(weight * np.log(probability[np.arange(500), y])) / weight.sum()
        assert loss == pytest.approx(result.loss, rel=1e-12)
        start = -np.sum(weight * log_softmax(logits)[np.arange(500), y]) / weight.sum()
        assert start == pytest.approx(result.loss_at_start, rel=1e-12)
        test = result.lr_test()
        assert test.statistic == pytest.approx(
            2 * weight.sum() * (result.loss_at_start - result.loss), rel=1e-9)
        assert test.df == {"shift": 3, "temperature": 1, "bias_temperature": 4,
                           "vector": 7}[method]


def test_observed_expected_per_class():
    y, logits, weight = simulate(500, 3, 8, weighted=True)
    result = logitshift.fit_multiclass(y, logits, weight)
    oe = result.observed_expected(0.9)
    probability = np.exp(log_softmax(logits))
    for k in range(3):
        binary = logitshift.fit((y == k).astype(float), np.log(probability[:, k])
                                - np.log1p(-probability[:, k]), weight).observed_expected_at(0.9)
        assert oe.observed[k] == pytest.approx(binary.observed, rel=1e-12)
        assert oe.expected[k] == pytest.approx(binary.expected, rel=1e-12)
        assert (oe.low[k], oe.high[k]) == pytest.approx((binary.low, binary.high), rel=1e-10)


def test_temperature_profile_interval():
    y, logits, weight = simulate(800, 4, 9)
    for method in ("temperature", "bias_temperature"):
        result = logitshift.fit_multiclass(y, logits, method=method)
        low, high = result.scale_confint(0.95)
        assert low < result.scale < high
        # At each end, the profile loss has risen by exactly the chi-square(1) quantile / 2.
        for end in (low, high):
            if method == "temperature":
                at_end = -np.sum(log_softmax(end * logits)[np.arange(800), y])
                rise = at_end - result.loss * 800
            else:
                at = logitshift.fit_multiclass(y, logits * end, method="shift")
                rise = at.loss * 800 - result.loss * 800
            assert rise == pytest.approx(0.5 * 1.959963984540054 ** 2, rel=1e-8)
        t_low, t_high = result.confint(0.95)
        assert t_low == pytest.approx(1 / high) and t_high == pytest.approx(1 / low)
        wald = result.scale_se * 1.96
        assert high - low == pytest.approx(2 * wald, rel=0.1)


def test_anti_informative_scores_say_so():
    y, logits, _ = simulate(1000, 3, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = logitshift.fit_multiclass(y, -logits, method="temperature")
    assert result.status == "anti_informative" and result.converged
    assert result.scale < 0


def test_class_without_weight_is_degenerate_and_pseudo_count_makes_it_finite():
    y, logits, _ = simulate(400, 4, 11)
    y = np.where(y == 2, 0, y)
    with pytest.warns(RuntimeWarning, match="without weight"):
        result = logitshift.fit_multiclass(y, logits)
    assert result.status == "degenerate" and result.converged
    assert result.shift[2] == -np.inf and np.all(np.isfinite(result.shift[[0, 1, 3]]))
    assert np.isnan(result.shift_se[2])
    assert result.predict_proba(logits)[:, 2].max() == 0
    three = logitshift.fit_multiclass(np.searchsorted([0, 1, 3], y), logits[:, [0, 1, 3]])
    np.testing.assert_allclose(result.shift[[0, 1, 3]], three.shift, atol=1e-12)
    smoothed = logitshift.fit_multiclass(y, logits, pseudo_count=0.5)
    assert smoothed.status == "converged" and np.all(np.isfinite(smoothed.shift))
    assert smoothed.shift[2] < -3


@pytest.mark.parametrize("method", METHODS)
def test_every_label_in_one_class(method):
    logits = np.random.default_rng(20).normal(size=(50, 3))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = logitshift.fit_multiclass(np.zeros(50, dtype=int), logits, method=method)
    json.dumps(result.to_dict(json_safe=True), allow_nan=False)
    if method == "temperature":  # no shift to send to -inf: the scale does what it can
        assert result.converged and result.loss < result.loss_at_start
        return
    assert result.status == "degenerate" and result.loss == 0
    assert result.shift[0] == 0 and np.all(result.shift[1:] == -np.inf)
    np.testing.assert_array_equal(result.predict_proba(logits), np.eye(3)[np.zeros(50, int)])
    if method != "shift":
        assert np.all(np.isnan(result.scale)) and np.all(np.isnan(result.scale_se))


def test_constant_logits_give_log_frequencies():
    y = np.array([0, 0, 1, 2, 2, 2, 1, 0, 2, 2])
    result = logitshift.fit_multiclass(y, np.zeros((10, 3)))
    counts = np.bincount(y)
    np.testing.assert_allclose(result.shift, np.log(counts) - np.log(counts).mean(),
                               atol=1e-15)
    assert result.iterations == 1


def test_class_names_and_soft_labels():
    y, logits, weight = simulate(300, 3, 12, weighted=True)
    names = np.array(["cat", "dog", "owl"])
    by_index = logitshift.fit_multiclass(y, logits, weight)
    by_name = logitshift.fit_multiclass(names[y], logits, weight, classes=["cat", "dog", "owl"])
    soft = logitshift.fit_multiclass(np.eye(3)[y], logits, weight)
    np.testing.assert_array_equal(by_name.shift, by_index.shift)
    np.testing.assert_allclose(soft.shift, by_index.shift, atol=1e-14)
    assert by_name.classes == ["cat", "dog", "owl"]
    pandas = pytest.importorskip("pandas")
    categorical = pandas.Categorical(names[y], categories=["cat", "dog", "owl"])
    np.testing.assert_array_equal(
        logitshift.fit_multiclass(categorical, logits, weight).shift, by_index.shift)


def test_tables_and_tensors_equal_arrays():
    y, logits, weight = simulate(300, 3, 13, weighted=True)
    expected = logitshift.fit_multiclass(y, logits, weight, method="vector")
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame(logits, columns=["a", "b", "c"]).assign(y=y, w=weight)
    pyarrow = pytest.importorskip("pyarrow")
    lists = pyarrow.table({"y": y, "w": weight, "scores": pyarrow.FixedSizeListArray.from_arrays(
        pyarrow.array(logits.ravel()), 3)})
    polars = pytest.importorskip("polars")
    for table, columns in ((frame, ["a", "b", "c"]), (lists, "scores"),
                           (polars.from_pandas(frame), ["a", "b", "c"]),
                           (polars.from_pandas(frame).lazy(), ["a", "b", "c"])):
        got = logitshift.fit_multiclass_frame(table, "y", columns, "w", method="vector")
        np.testing.assert_array_equal(got.shift, expected.shift)
    listed = logitshift.fit_multiclass(list(y), logits.tolist(), list(weight), method="vector")
    np.testing.assert_array_equal(listed.shift, expected.shift)
    try:
        import torch
    except ImportError:
        return
    tensor = logitshift.fit_multiclass(torch.tensor(y), torch.tensor(logits), weight,
                                       method="vector")
    np.testing.assert_array_equal(tensor.shift, expected.shift)


def test_caller_arrays_are_not_modified():
    y, logits, weight = simulate(300, 3, 14, weighted=True)
    copies = (y.copy(), logits.copy(), weight.copy())
    for method in METHODS:
        result = logitshift.fit_multiclass(y, logits, weight, method=method)
        result.predict_proba(logits)
        result.to_dict()
    for before, after in zip(copies, (y, logits, weight)):
        np.testing.assert_array_equal(before, after)


def test_large_fits_start_from_a_subsample():
    y, logits, _ = simulate(300_000, 5, 15)
    result = logitshift.fit_multiclass(y, logits.astype(np.float32), method="bias_temperature")
    started = logitshift.fit_multiclass(y[:100_000], logits[:100_000].astype(np.float32),
                                        method="bias_temperature")
    # The validating pass, then Newton from the subsample's answer; without a subsample
    # (100,000 rows of 5 classes is below four times its 52,428) Newton starts at scale 1.
    assert result.converged and result.passes <= 5 and result.iterations < started.iterations
    # float32 logits are read in place, and give the float64 fit of the same values.
    float64 = logitshift.fit_multiclass(y, logits.astype(np.float32).astype(np.float64),
                                        method="bias_temperature")
    np.testing.assert_allclose(result.shift, float64.shift, atol=1e-12)


def test_to_dict_is_json_and_repr_reads():
    y, logits, weight = simulate(300, 3, 16, weighted=True)
    for method in METHODS:
        result = logitshift.fit_multiclass(y, logits, weight, method=method)
        record = result.to_dict(json_safe=True)
        json.dumps(record, allow_nan=False)
        assert record["method"] == method and len(record["shift"]) == 3
        assert repr(result).startswith(f"MulticlassFit(method={method!r}")


# -- metrics -------------------------------------------------------------------------------

def test_metrics_against_direct_formulas():
    y, logits, weight = simulate(2000, 4, 17, weighted=True)
    metrics = logitshift.multiclass_metrics(y, logits, weight)
    probability = np.exp(log_softmax(logits))
    onehot = np.eye(4)[y]
    assert metrics.log_loss == pytest.approx(
        -np.sum(weight * np.log(probability[np.arange(2000), y])) / weight.sum(), rel=1e-12)
    assert metrics.brier == pytest.approx(
        np.sum(weight * np.sum((probability - onehot) ** 2, axis=1)) / weight.sum(), rel=1e-12)
    # ECE by a loop over bins.
    confidence = probability.max(axis=1)
    correct = probability.argmax(axis=1) == y
    ece = 0.0
    for b in range(15):
        inside = (confidence > b / 15) & (confidence <= (b + 1) / 15)
        if inside.any():
            w = weight[inside]
            ece += abs(np.sum(w * correct[inside]) - np.sum(w * confidence[inside]))
    assert metrics.top_label_ece == pytest.approx(ece / weight.sum(), rel=1e-9)
    for k, fit in enumerate(metrics.one_vs_rest):
        assert fit.observed_expected.expected == pytest.approx(
            np.sum(weight * probability[:, k]), rel=1e-12)
    assert metrics.classwise_ece >= 0
    json.dumps(metrics.to_dict(json_safe=True), allow_nan=False)


# -- bad input -----------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    (lambda y, f, w: (np.where(np.arange(50) == 7, 3, y), f, w), r"y\[7\] = 3 is outside"),
    (lambda y, f, w: (y, np.where(np.arange(50)[:, None] == 9, np.nan, f), w),
     r"logits\[9, 0\] is nan"),
    (lambda y, f, w: (y, np.where((np.arange(50)[:, None] == 4) & (np.arange(3) == 1), np.inf,
                                  f), w), r"logits\[4, 1\] = inf"),
    (lambda y, f, w: (y, np.where(np.arange(50)[:, None] == 5, -np.inf, f), w),
     r"logits\[5, \d\] = -inf on the row's own class"),
    (lambda y, f, w: (y, f, np.where(np.arange(50) == 11, -1.0, w)), r"weight\[11\] = -1.0"),
    (lambda y, f, w: (y, f, np.where(np.arange(50) == 12, np.nan, w)), r"weight\[12\] = nan"),
    (lambda y, f, w: (y, f[:, :1], w), "1 column"),
    (lambda y, f, w: (y[:40], f, w), "y has 40 rows, logits has 50"),
    (lambda y, f, w: (y, f, w[:30]), "weight has 30 rows"),
    (lambda y, f, w: (y + 0.5, f, w), r"y\[0\] = \d.5 is not a class index"),
    (lambda y, f, w: (y, f[:, 0], w), "must be 2-D"),
])
def test_bad_input_names_argument_row_and_value(change, message):
    y, logits, weight = simulate(50, 3, 18, weighted=True)
    copies = (y.copy(), logits.copy(), weight.copy())
    with pytest.raises(InputError, match=message):
        logitshift.fit_multiclass(*change(y, logits, weight))
    np.testing.assert_array_equal(logits, copies[1])


def test_bad_soft_rows_and_classes():
    y, logits, _ = simulate(50, 3, 19)
    soft = np.eye(3)[y]
    soft[6] = [0.5, 0.4, 0.0]
    with pytest.raises(InputError, match=r"y\[6\] sum to 0.9"):
        logitshift.fit_multiclass(soft, logits)
    soft[6] = [1.5, -0.5, 0.0]
    with pytest.raises(InputError, match=r"y\[6, 1\] = -0.5"):
        logitshift.fit_multiclass(soft, logits)
    with pytest.raises(InputError, match=r"y\[0\] = 'emu' is not among the classes"):
        logitshift.fit_multiclass(np.array(["emu"] + ["cat"] * 49), logits,
                                  classes=["cat", "dog", "owl"])
    with pytest.raises(InputError, match="pass classes="):
        logitshift.fit_multiclass(np.array(["cat"] * 50), logits)
    with pytest.raises(InputError, match="method = 'platt'"):
        logitshift.fit_multiclass(y, logits, method="platt")
    with pytest.raises(InputError, match="probability logits\\[0, 0\\] = 1.5"):
        logitshift.fit_multiclass(y, np.full((50, 3), 1.5), logits_is="probability")
