"""ShiftCalibrator: scikit-learn's estimator checks, recalibration of a real model, conventions."""

from __future__ import annotations

import importlib.util
import pickle
import warnings
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="logitshift.sklearn needs scikit-learn")

import statsmodels.api as sm  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.calibration import CalibratedClassifierCV  # noqa: E402
from sklearn.datasets import load_breast_cancer, load_iris  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.frozen import FrozenEstimator  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import log_loss  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

import logitshift  # noqa: E402
from logitshift.sklearn import ShiftCalibrator  # noqa: E402

SEVERAL_COLUMNS = ("the check fits on X with several columns; without an estimator, X is one "
                   "column of raw scores")
EXPECTED_FAILED_CHECKS = {name: SEVERAL_COLUMNS for name in [
    "check_classifier_data_not_an_array", "check_classifiers_classes",
    "check_classifiers_one_label_sample_weights", "check_classifiers_train",
    "check_decision_proba_consistency", "check_dict_unchanged",
    "check_dont_overwrite_parameters", "check_dtype_object", "check_estimators_dtypes",
    "check_estimators_fit_returns_self", "check_estimators_overwrite_params",
    "check_estimators_pickle", "check_f_contiguous_array_estimator",
    "check_fit2d_predict1d", "check_fit_check_is_fitted", "check_fit_idempotent",
    "check_fit_score_takes_y", "check_methods_sample_order_invariance",
    "check_methods_subset_invariance", "check_n_features_in",
    "check_n_features_in_after_fitting", "check_pipeline_consistency",
    "check_positive_only_tag_during_fit", "check_readonly_memmap_input",
    "check_sample_weight_equivalence_on_dense_data", "check_sample_weights_list",
    "check_sample_weights_not_an_array", "check_sample_weights_not_overwritten",
    "check_sample_weights_pandas_series", "check_sample_weights_shape",
    "check_supervised_y_2d",
]}
EXPECTED_FAILED_CHECKS["check_estimators_nan_inf"] = (
    SEVERAL_COLUMNS + "; and an infinite raw score (a probability of 0 or 1) is valid input")


def test_scikit_learn_estimator_checks():
    results = check_estimator(ShiftCalibrator(), expected_failed_checks=EXPECTED_FAILED_CHECKS,
                              on_skip=None)  # raises on any failure not listed
    passed = {r["check_name"] for r in results if r["status"] == "passed"}
    failed = [(r["check_name"], r["exception"]) for r in results if r["status"] == "xfail"]
    assert "check_classifiers_one_label" in passed  # the checks ran
    # Every listed check fails (each variant of it), for the reason given: X with several
    # columns.
    assert {name for name, _ in failed} == set(EXPECTED_FAILED_CHECKS)
    assert not passed & set(EXPECTED_FAILED_CHECKS)
    for name, error in failed:
        while error is not None and not isinstance(error, logitshift.InputError):
            error = error.__cause__ or error.__context__
        assert error is not None and error.argument == "X", name
        assert "columns" in str(error), name


def test_the_docstring_names_every_check_that_cannot_pass():
    documented = " ".join(ShiftCalibrator.__doc__.split())
    assert [name for name in EXPECTED_FAILED_CHECKS if name not in documented] == []


# -- A model developed where benign tumours were rare, used where they are common ----------

@pytest.fixture(scope="module")
def recalibration():
    features, labels = load_breast_cancer(return_X_y=True)  # label 1 is benign
    rows = np.random.default_rng(3).permutation(labels.size)
    development, new_population = rows[:300], rows[300:]
    malignant = development[labels[development] == 0]
    benign = development[labels[development] == 1][: malignant.size // 4]
    development = np.concatenate([malignant, benign])
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.3))
    model.fit(features[development], labels[development])
    calibration, test = new_population[:130], new_population[130:]
    return (model, features[calibration], labels[calibration], features[test],
            labels[test])


def test_recalibration_improves_the_log_loss_on_new_data(recalibration):
    model, x_cal, y_cal, x_test, y_test = recalibration
    shifted = ShiftCalibrator(model).fit(x_cal, y_cal)
    platt = CalibratedClassifierCV(FrozenEstimator(model), method="sigmoid").fit(x_cal, y_cal)
    before = log_loss(y_test, model.predict_proba(x_test))
    after = log_loss(y_test, shifted.predict_proba(x_test))
    with_slope = log_loss(y_test, platt.predict_proba(x_test))
    print(f"test log loss: uncalibrated {before:.4f}, shift {after:.4f}, platt {with_slope:.4f}")

    # Benign is far more common here than where the model was developed.
    assert shifted.shift_ > 0
    assert shifted.fit_.confint()[0] > 0
    assert after < 0.9 * before
    assert with_slope < before
    # ShiftFit's losses are scikit-learn's log loss before and after, on the calibration data.
    assert shifted.fit_.loss_at_zero == pytest.approx(
        log_loss(y_cal, model.predict_proba(x_cal)), rel=1e-12)
    assert shifted.fit_.loss == pytest.approx(
        log_loss(y_cal, shifted.predict_proba(x_cal)), rel=1e-12)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "freq_weights"])
def test_shift_is_the_glm_intercept_with_the_scores_as_offset(recalibration, weighted):
    model, x_cal, y_cal, _, _ = recalibration
    weight = np.random.default_rng(5).integers(1, 5, y_cal.size) if weighted else None
    shifted = ShiftCalibrator(model).fit(x_cal, y_cal, sample_weight=weight)
    glm = sm.GLM(y_cal, np.ones((y_cal.size, 1)), family=sm.families.Binomial(),
                 offset=model.decision_function(x_cal), freq_weights=weight).fit(tol=1e-14)
    assert shifted.shift_ == pytest.approx(glm.params[0], rel=1e-8)
    assert shifted.fit_.se == pytest.approx(glm.bse[0], rel=1e-6)


def test_sample_weight_equals_repeated_rows(recalibration):
    model, x_cal, y_cal, x_test, _ = recalibration
    weight = np.random.default_rng(8).integers(0, 4, y_cal.size)
    weighted = ShiftCalibrator(model).fit(x_cal, y_cal, sample_weight=weight)
    repeated = ShiftCalibrator(model).fit(np.repeat(x_cal, weight, axis=0),
                                          np.repeat(y_cal, weight))
    assert weighted.shift_ == pytest.approx(repeated.shift_, rel=1e-12)
    assert weighted.fit_.se == pytest.approx(repeated.fit_.se, rel=1e-12)
    np.testing.assert_allclose(weighted.predict_proba(x_test), repeated.predict_proba(x_test),
                               rtol=1e-12)


def test_raw_scores_come_from_the_method_asked_for(recalibration):
    model, x_cal, y_cal, _, _ = recalibration
    by_default = ShiftCalibrator(model).fit(x_cal, y_cal)
    assert by_default.shift_ == logitshift.fit(y_cal, model.decision_function(x_cal)).shift
    from_probabilities = ShiftCalibrator(model, response_method="predict_proba")
    from_probabilities.fit(x_cal, y_cal)
    probabilities = model.predict_proba(x_cal)
    logits = np.log(probabilities[:, 1]) - np.log(probabilities[:, 0])
    assert from_probabilities.shift_ == logitshift.fit(y_cal, logits).shift
    with pytest.raises(logitshift.InputError, match="response_method") as caught:
        ShiftCalibrator(model, response_method="predict").fit(x_cal, y_cal)
    assert caught.value.argument == "response_method"


def test_the_wrapped_estimator_is_neither_refitted_nor_modified(recalibration):
    model, x_cal, y_cal, x_test, _ = recalibration
    before = pickle.dumps(model)
    calibrator = ShiftCalibrator(model).fit(x_cal, y_cal)
    calibrator.predict_proba(x_test)
    assert pickle.dumps(model) == before
    assert calibrator.estimator is model


def test_clone_keeps_params_and_a_frozen_estimator(recalibration):
    model, x_cal, y_cal, _, _ = recalibration
    frozen = FrozenEstimator(model)
    original = ShiftCalibrator(frozen, response_method="predict_proba", pseudo_count=0.5)
    copy = clone(original)
    assert copy.get_params(deep=False) == original.get_params(deep=False)
    assert copy.estimator is frozen
    assert not hasattr(copy, "shift_")
    assert copy.fit(x_cal, y_cal).shift_ == original.fit(x_cal, y_cal).shift_
    assert copy.set_params(pseudo_count=2.0).pseudo_count == 2.0


def test_a_plain_estimator_comes_back_unfitted_from_clone_and_fit_says_what_to_do(
        recalibration):
    model, x_cal, y_cal, _, _ = recalibration
    with pytest.raises(logitshift.InputError, match="FrozenEstimator") as caught:
        clone(ShiftCalibrator(model)).fit(x_cal, y_cal)
    assert caught.value.argument == "estimator"


@pytest.mark.parametrize("method", ["predict", "predict_proba", "decision_function"])
def test_not_fitted_error_before_fit(method):
    with pytest.raises(NotFittedError):
        getattr(ShiftCalibrator(), method)(np.zeros((3, 1)))


# -- Raw scores as X (no estimator) ---------------------------------------------------------

def shifted_population(rng, n_rows=400, shift=-1.5):
    scores = rng.normal(0.5, 2.0, n_rows)
    labels = rng.random(n_rows) < 1.0 / (1.0 + np.exp(-(scores + shift)))
    return scores, labels


def test_string_labels_and_the_positive_class():
    scores, labels = shifted_population(np.random.default_rng(1))
    names = np.where(labels, "malignant", "benign")
    calibrator = ShiftCalibrator().fit(scores[:, None], names)
    assert list(calibrator.classes_) == ["benign", "malignant"]
    assert calibrator.shift_ == logitshift.fit(labels, scores).shift
    assert calibrator.n_features_in_ == 1
    predicted = calibrator.predict(scores[:, None])
    assert set(predicted) <= {"benign", "malignant"}
    np.testing.assert_array_equal(predicted == "malignant",
                                  scores + calibrator.shift_ > 0)


def test_string_labels_through_a_wrapped_estimator(recalibration):
    model, x_cal, y_cal, x_test, y_test = recalibration
    names = np.array(["malignant", "benign"])
    named = clone(model).fit(np.vstack([x_cal, x_test]), names[np.concatenate([y_cal, y_test])])
    calibrator = ShiftCalibrator(named).fit(x_cal, names[y_cal])
    assert list(calibrator.classes_) == list(named.classes_) == ["benign", "malignant"]
    positive = names[y_cal] == "malignant"
    assert calibrator.shift_ == logitshift.fit(positive, named.decision_function(x_cal)).shift
    assert set(calibrator.predict(x_test)) <= {"benign", "malignant"}
    with pytest.raises(logitshift.InputError, match="not a class") as caught:
        calibrator.fit(x_cal, np.where(positive, "malignant", "unknown"))
    assert caught.value.argument == "y"


def test_predict_and_predict_proba_agree_and_stay_accurate_at_extreme_scores():
    scores, labels = shifted_population(np.random.default_rng(2))
    calibrator = ShiftCalibrator().fit(scores[:, None], labels)
    new = np.array([[-700.0], [-40.0], [-1.0], [0.0], [1.0], [40.0], [700.0], [-np.inf],
                    [np.inf]])
    z = calibrator.decision_function(new)
    np.testing.assert_array_equal(z[:-2], new[:-2, 0] + calibrator.shift_)
    assert z[-2:].tolist() == [-np.inf, np.inf]
    proba = calibrator.predict_proba(new)
    assert proba.shape == (9, 2)
    assert not np.isnan(proba).any()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-15)
    np.testing.assert_array_equal(calibrator.predict(new),
                                  calibrator.classes_[proba.argmax(axis=1)])
    # The small probability is computed directly, not as 1 - p: it keeps its digits.
    assert proba[0, 1] == pytest.approx(np.exp(z[0]), rel=1e-13)
    assert proba[6, 0] == pytest.approx(np.exp(-z[6]), rel=1e-13)
    assert proba[-2:].tolist() == [[1.0, 0.0], [0.0, 1.0]]


def test_infinite_scores_that_agree_with_their_labels_do_not_move_the_shift():
    scores, labels = shifted_population(np.random.default_rng(4))
    certain = np.array([np.inf, -np.inf, np.inf])
    with_certain = ShiftCalibrator().fit(np.concatenate([scores, certain])[:, None],
                                         np.concatenate([labels, [True, False, True]]))
    assert with_certain.shift_ == logitshift.fit(labels, scores).shift


def test_a_certain_and_wrong_model_is_refused_with_the_row():
    features, labels = load_breast_cancer(return_X_y=True)
    tree = DecisionTreeClassifier(random_state=0).fit(features, labels)  # pure leaves
    wrong = labels.copy()
    wrong[17] = 1 - wrong[17]
    with pytest.raises(logitshift.InputError, match="row 17 .*certain") as caught:
        ShiftCalibrator(tree).fit(features, wrong)
    assert (caught.value.argument, caught.value.index) == ("X", 17)
    with pytest.raises(logitshift.InputError, match="every shift fits equally") as caught:
        ShiftCalibrator(tree).fit(features, labels)
    assert caught.value.argument == "X"


def test_every_label_the_same_needs_a_pseudo_count():
    scores, _ = shifted_population(np.random.default_rng(6))
    model = LogisticRegression().fit(scores[:, None], scores > 0)
    negatives = np.zeros(scores.size, bool)
    with pytest.warns(RuntimeWarning, match="pseudo_count") as warned:
        degenerate = ShiftCalibrator(model).fit(scores[:, None], negatives)
    assert warned[0].filename == __file__
    assert degenerate.shift_ == -np.inf
    assert (degenerate.predict_proba(scores[:, None])[:, 1] == 0).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        finite = ShiftCalibrator(model, pseudo_count=0.5).fit(scores[:, None], negatives)
    assert np.isfinite(finite.shift_) and finite.shift_ < 0


def test_more_than_two_classes_are_refused():
    features, labels = load_iris(return_X_y=True)
    with pytest.raises(logitshift.InputError, match="Only binary") as caught:
        ShiftCalibrator().fit(features[:, :1], labels)
    assert caught.value.argument == "y"
    three = LogisticRegression(max_iter=1000).fit(features, labels)
    with pytest.raises(logitshift.InputError, match="3 classes"):
        ShiftCalibrator(three).fit(features, labels)


def test_x_must_be_one_column_of_scores_without_nan():
    scores, labels = shifted_population(np.random.default_rng(9), n_rows=20)
    with pytest.raises(logitshift.InputError, match="2 columns") as caught:
        ShiftCalibrator().fit(np.column_stack([scores, scores]), labels)
    assert caught.value.argument == "X"
    with_nan = scores.copy()
    with_nan[4] = np.nan
    with pytest.raises(logitshift.InputError, match=r"X\[4, 0\] is nan"):
        ShiftCalibrator().fit(with_nan[:, None], labels)
    with pytest.raises(logitshift.InputError, match="sample_weight"):
        ShiftCalibrator().fit(scores[:, None], labels, sample_weight=np.ones(19))


def test_inputs_are_not_modified():
    scores, labels = shifted_population(np.random.default_rng(10))
    X, y, weight = scores[:, None].copy(), labels.copy(), np.full(scores.size, 2.0)
    copies = [X.copy(), y.copy(), weight.copy()]
    calibrator = ShiftCalibrator().fit(X, y, sample_weight=weight)
    calibrator.predict_proba(X)
    for before, after in zip(copies, [X, y, weight]):
        np.testing.assert_array_equal(before, after)


def test_pickle_round_trip_and_feature_names():
    pd = pytest.importorskip("pandas", reason="feature names come from a DataFrame")
    scores, labels = shifted_population(np.random.default_rng(12))
    frame = pd.DataFrame({"score": scores})
    calibrator = ShiftCalibrator().fit(frame, labels)
    assert list(calibrator.feature_names_in_) == ["score"]
    restored = pickle.loads(pickle.dumps(calibrator))
    np.testing.assert_array_equal(restored.predict_proba(frame),
                                  calibrator.predict_proba(frame))


def test_example_script_recalibrates():
    path = Path(__file__).resolve().parents[1] / "examples" / "sklearn_calibration.py"
    spec = importlib.util.spec_from_file_location("sklearn_calibration", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    result = example.main()
    assert result["ci_low"] < result["shift"] < result["ci_high"]
    assert result["shift"] > 0
    assert result["test_loss_shift"] < result["test_loss_uncalibrated"]
    assert result["test_loss_platt"] < result["test_loss_uncalibrated"]
