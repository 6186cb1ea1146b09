"""Label shift without labels: the maximum-likelihood priors against 40-digit Newton, EM
run to its fixed point, the binary case, and scikit-learn's digits with priors shifted by
subsampling."""

from __future__ import annotations

import json

import mpmath
import numpy as np
import pytest

import logitshift
from logitshift import InputError
from logitshift._core.softmax import log_softmax


def unlabelled(n: int, k: int, seed: int, target=None):
    """Logits of a calibrated model under uniform source priors, on rows drawn with
    ``target`` priors."""
    rng = np.random.default_rng(seed)
    target = np.full(k, 1.0 / k) if target is None else np.asarray(target)
    y = rng.choice(k, size=n, p=target)
    centres = np.eye(k) * 2.0
    features = centres[y] + rng.normal(size=(n, k))
    # The exact posterior under uniform priors of a Gaussian class model: log-likelihoods.
    logits = -0.5 * ((features[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    return logits, y


def _mp_priors(logits, source, weight):
    """The maximum of ``Σ w log Σ_k p_k π'_k / π_k`` in 40 digits: Newton on π'_1..π'_{K-1}
    (π'_0 = 1 - their sum), and the covariance from the observed information."""
    mpmath.mp.dps = 40
    n, k = logits.shape
    q = []
    for row in logits:
        values = [mpmath.mpf(float(v)) for v in row]
        total = sum(mpmath.exp(v) for v in values)
        q.append([mpmath.exp(v) / total / mpmath.mpf(float(s)) for v, s in zip(values, source)])
    w = [mpmath.mpf(float(v)) for v in weight]
    free = mpmath.matrix([mpmath.mpf(1) / k] * (k - 1))
    for _ in range(80):
        priors = [1 - sum(free)] + [free[j] for j in range(k - 1)]
        gradient = mpmath.zeros(k - 1, 1)
        hessian = mpmath.zeros(k - 1, k - 1)
        for i in range(n):
            s = sum(q[i][c] * priors[c] for c in range(k))
            d = [(q[i][j + 1] - q[i][0]) / s for j in range(k - 1)]
            for a in range(k - 1):
                gradient[a] += w[i] * d[a]
                for b in range(k - 1):
                    hessian[a, b] -= w[i] * d[a] * d[b]
        step = mpmath.lu_solve(hessian, -gradient)
        free += step
        if mpmath.norm(step) < mpmath.mpf(10) ** -36:
            break
    covariance = mpmath.inverse(-hessian)
    priors = [1 - sum(free)] + [free[j] for j in range(k - 1)]
    variance = [sum(covariance[a, b] for a in range(k - 1) for b in range(k - 1))]
    variance += [covariance[j, j] for j in range(k - 1)]
    return (np.array([float(v) for v in priors]),
            np.array([float(mpmath.sqrt(v)) for v in variance]))


@pytest.mark.parametrize("k, seed", [(3, 1), (4, 2)])
def test_priors_equal_mpmath(k, seed):
    logits, _ = unlabelled(40, k, seed, target=np.linspace(1, 2, k) / np.linspace(1, 2, k).sum())
    rng = np.random.default_rng(seed)
    source = rng.uniform(0.5, 1.5, k)
    source /= source.sum()
    weight = rng.uniform(0.2, 2.0, 40)
    priors, se = _mp_priors(logits, source, weight)
    result = logitshift.fit_prior_shift(logits, source, weight)
    assert result.status == "converged"
    np.testing.assert_allclose(result.priors, priors, rtol=0, atol=1e-13)
    np.testing.assert_allclose(result.priors_se, se, rtol=1e-9)
    np.testing.assert_allclose(result.shift, np.log(priors / source), atol=1e-12)
    assert result.gradient_norm < 1e-12


def test_priors_equal_em_at_its_fixed_point():
    logits, _ = unlabelled(2000, 5, 3, target=[0.4, 0.3, 0.15, 0.1, 0.05])
    source = np.full(5, 0.2)
    probability = np.exp(log_softmax(logits))
    priors = source.copy()
    for _ in range(20000):  # Saerens et al. (2002), Eq. 2.8
        posterior = probability * priors / source
        posterior /= posterior.sum(axis=1, keepdims=True)
        priors = posterior.mean(axis=0)
    result = logitshift.fit_prior_shift(logits, source)
    np.testing.assert_allclose(result.priors, priors, rtol=0, atol=1e-10)
    assert result.passes < 15
    # The implied posteriors are the EM's.
    np.testing.assert_allclose(result.predict_proba(logits), posterior, atol=1e-9)


def test_binary_offsets_are_two_classes():
    rng = np.random.default_rng(4)
    offset = rng.normal(size=700) * 1.5 + 0.4
    weight = rng.uniform(0.5, 1.5, 700)
    one = logitshift.fit_prior_shift(offset, 0.3, weight)
    two = logitshift.fit_prior_shift(np.column_stack([np.zeros(700), offset]), [0.7, 0.3],
                                     weight)
    np.testing.assert_allclose(one.priors, two.priors, rtol=0, atol=1e-13)
    np.testing.assert_allclose(one.priors_se, two.priors_se, rtol=1e-12)
    np.testing.assert_allclose(one.predict_proba(offset), two.predict_proba(
        np.column_stack([np.zeros(700), offset])), atol=1e-13)
    probability = 1 / (1 + np.exp(-offset))
    three = logitshift.fit_prior_shift(probability, 0.3, weight, logits_is="probability")
    np.testing.assert_allclose(three.priors, one.priors, atol=1e-12)
    pandas = pytest.importorskip("pandas")
    frame = pandas.DataFrame({"score": offset, "w": weight})
    four = logitshift.fit_prior_shift_frame(frame, "score", 0.3, "w")
    np.testing.assert_array_equal(four.priors, one.priors)


def test_a_class_that_vanishes_reaches_the_boundary():
    logits, _ = unlabelled(1500, 3, 5, target=[0.6, 0.4, 0.0])
    result = logitshift.fit_prior_shift(logits, np.full(3, 1 / 3))
    assert result.converged and result.priors[2] < 0.02
    assert result.priors.sum() == pytest.approx(1.0, abs=1e-15)


def test_labelled_fit_as_source_priors_is_bcts_then_em():
    logits, y = unlabelled(3000, 4, 6)
    labelled = logitshift.fit_multiclass(y[:1500], logits[:1500] * 1.7,
                                         method="bias_temperature")
    result = logitshift.fit_prior_shift(logits[1500:] * 1.7, labelled)
    by_hand = logitshift.fit_prior_shift(labelled.predict_logits(logits[1500:] * 1.7),
                                         labelled.observed / labelled.weight_sum)
    np.testing.assert_allclose(result.priors, by_hand.priors, atol=1e-13)
    assert result.calibration is labelled
    np.testing.assert_allclose(result.predict_proba(logits[1500:] * 1.7),
                               by_hand.predict_proba(labelled.predict_logits(
                                   logits[1500:] * 1.7)), atol=1e-13)


def test_digits_with_shifted_priors():
    pytest.importorskip("sklearn")
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(7)
    order = rng.permutation(len(y))
    x, y = x[order] / 16.0, y[order]
    train, calibration, rest = slice(0, 700), slice(700, 1200), slice(1200, None)
    model = LogisticRegression(C=0.05, max_iter=3000).fit(x[train], y[train])
    scores = model.decision_function(x)
    recalibrated = logitshift.fit_multiclass(y[calibration], scores[calibration],
                                             method="bias_temperature")
    assert recalibrated.loss < recalibrated.loss_at_start  # a strongly regularised model
    # The deployed rows: classes 0-4 kept, 5-9 kept one time in four.
    keep = rng.random(len(y) - 1200) < np.where(y[rest] < 5, 1.0, 0.25)
    target_scores, target_y = scores[rest][keep], y[rest][keep]
    truth = np.bincount(target_y, minlength=10) / keep.sum()
    shifted = logitshift.fit_prior_shift(target_scores, recalibrated)
    assert shifted.converged
    z = (shifted.priors - truth) / shifted.priors_se
    assert np.max(np.abs(z)) < 4 and np.mean(z ** 2) < 3
    test = shifted.lr_test()
    assert test.df == 9 and test.pvalue < 1e-6
    rows = np.arange(keep.sum())
    loss_before = -np.mean(np.log(recalibrated.predict_proba(target_scores)[rows, target_y]))
    loss_after = -np.mean(np.log(shifted.predict_proba(target_scores)[rows, target_y]))
    assert loss_after < loss_before
    json.dumps(shifted.to_dict(json_safe=True), allow_nan=False)
    assert repr(shifted).startswith("PriorShiftFit(priors=")


def test_bad_input():
    logits, _ = unlabelled(50, 3, 8)
    with pytest.raises(InputError, match="source_priors is required"):
        logitshift.fit_prior_shift(logits)
    with pytest.raises(InputError, match=r"source_priors has shape \(2,\)"):
        logitshift.fit_prior_shift(logits, [0.5, 0.5])
    with pytest.raises(InputError, match=r"source_priors\[1\] = 0.0 must be positive"):
        logitshift.fit_prior_shift(logits, [0.5, 0.0, 0.5])
    bad = logits.copy()
    bad[17, 2] = np.nan
    with pytest.raises(InputError, match=r"logits\[17, 2\] is nan"):
        logitshift.fit_prior_shift(bad, [0.2, 0.3, 0.5])
    with pytest.raises(InputError, match=r"weight\[3\] = -2.0"):
        logitshift.fit_prior_shift(logits, [0.2, 0.3, 0.5], np.where(np.arange(50) == 3,
                                                                      -2.0, 1.0))
    two = logitshift.fit_multiclass(np.arange(50) % 2, np.zeros((50, 2)))
    with pytest.raises(InputError, match="a fit of 2 classes, the logits have 3"):
        logitshift.fit_prior_shift(logits, two)
