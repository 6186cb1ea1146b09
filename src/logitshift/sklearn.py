"""Recalibration in the large as a scikit-learn classifier: :class:`ShiftCalibrator`.

A model moved to a new population keeps its raw scores (log-odds) and gets one constant added
to them, fitted on calibration data with the old scores as offset: R's
``glm(y ~ 1, offset = lp, family = binomial)``.

Requires scikit-learn (``pip install "logitshift[sklearn]"``); ``import logitshift`` does not
import this module.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

try:
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.exceptions import NotFittedError
    from sklearn.utils import Tags, check_consistent_length, get_tags
    from sklearn.utils.multiclass import check_classification_targets
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        'logitshift.sklearn needs scikit-learn 1.6 or later: '
        'pip install "logitshift[sklearn]"'
    ) from exc

from ._api import fit as fit_shift
from ._core.losses import sigmoid_pair
from ._core.validate import InputError, as_weight

__all__ = ["ShiftCalibrator"]

RESPONSE_METHODS = ("auto", "decision_function", "predict_proba")


class ShiftCalibrator(ClassifierMixin, BaseEstimator):
    """Recalibrate a fitted binary classifier by shifting its raw scores by a constant.

    The wrapped classifier keeps its raw scores ``s`` (log-odds) and is never refitted;
    ``fit`` finds only ``shift = argmin_c Σ w · BCE(y, s + c)`` with :func:`logitshift.fit`
    (calibration in the large, ``glm(y ~ 1, offset = s, family = binomial)``), and the
    calibrated probability of the positive class is ``σ(s + shift)``.

    Parameters
    ----------
    estimator : fitted binary classifier, optional
        The model to recalibrate, already fitted. Its raw scores are
        ``estimator.decision_function(X)`` or ``log(p1) - log(p0)`` from
        ``estimator.predict_proba(X)`` (see ``response_method``). ``clone`` (inside
        cross-validation and grid search) returns an unfitted copy of a plain estimator;
        wrap it in :class:`sklearn.frozen.FrozenEstimator` to keep it fitted there, as for
        :class:`sklearn.calibration.CalibratedClassifierCV`. With ``None``, ``X`` itself is
        one column of raw scores, shape (n, 1).
    response_method : {"auto", "decision_function", "predict_proba"}, default="auto"
        Where the estimator's raw scores come from. ``"auto"``: ``decision_function`` when
        the estimator has one, else ``predict_proba``. Choose ``"predict_proba"`` for a
        classifier whose ``decision_function`` is not in log-odds (e.g. an SVM margin).
        Ignored without an estimator.
    pseudo_count : float, default=0
        Passed to :func:`logitshift.fit`: one positive and one negative row of this weight
        at the mean score, which keeps the shift finite when every calibration label is
        the same.

    Attributes
    ----------
    shift_ : float
        The fitted shift added to every raw score.
    fit_ : ShiftFit
        The full result: ``se``, ``confint(level)``, ``lr_test()``, ``observed_expected``,
        ``loss`` and ``loss_at_zero`` (mean log loss after and before the shift).
    classes_ : ndarray of shape (2,)
        The class labels; ``classes_[1]`` is the positive class. The estimator's own
        ``classes_`` when it has them, else the sorted labels of ``y``.
    n_features_in_ : int
        Columns of ``X``: 1 without an estimator, else the estimator's (when it records it).
    feature_names_in_ : ndarray of str
        Column names of ``X``, when ``X`` had string column names (or the estimator records
        them).

    Notes
    -----
    A probability of exactly 0 or 1 from ``predict_proba`` is a raw score of ``-inf`` /
    ``+inf`` (and so are infinite values in ``X``). Such a row stays certain whatever the
    shift: it does not affect the fit when its label agrees, and ``fit`` raises
    :class:`logitshift.InputError` when it does not, since no shift can fit it. Compute
    finite scores yourself (clip the probabilities) and pass them as ``X`` with
    ``estimator=None`` to fit such a model anyway.

    ``ShiftCalibrator()`` passes scikit-learn's ``check_estimator`` but for the checks that
    fit on ``X`` with several columns, since without an estimator ``X`` is one column of raw
    scores: check_classifier_data_not_an_array,
    check_classifiers_classes, check_classifiers_one_label_sample_weights,
    check_classifiers_train, check_decision_proba_consistency, check_dict_unchanged,
    check_dont_overwrite_parameters, check_dtype_object, check_estimators_dtypes,
    check_estimators_fit_returns_self, check_estimators_overwrite_params,
    check_estimators_pickle, check_f_contiguous_array_estimator, check_fit2d_predict1d,
    check_fit_check_is_fitted, check_fit_idempotent, check_fit_score_takes_y,
    check_methods_sample_order_invariance, check_methods_subset_invariance,
    check_n_features_in, check_n_features_in_after_fitting, check_pipeline_consistency,
    check_positive_only_tag_during_fit, check_readonly_memmap_input,
    check_sample_weight_equivalence_on_dense_data, check_sample_weights_list,
    check_sample_weights_not_an_array, check_sample_weights_not_overwritten,
    check_sample_weights_pandas_series, check_sample_weights_shape and
    check_supervised_y_2d; nor check_estimators_nan_inf, which also wants infinite values
    in ``X`` refused, while here they are valid raw scores. The tests check what these
    cover (weights as repeated rows, pickling, inputs left unchanged, predictions that
    agree) on one column.

    Examples
    --------
    >>> from sklearn.datasets import load_breast_cancer
    >>> from sklearn.linear_model import LogisticRegression
    >>> X, y = load_breast_cancer(return_X_y=True)
    >>> model = LogisticRegression(max_iter=5000).fit(X[:300], y[:300])
    >>> calibrated = ShiftCalibrator(model).fit(X[300:], y[300:])
    >>> calibrated.predict_proba(X[:2]).shape
    (2, 2)
    """

    def __init__(self, estimator: Any = None, *, response_method: str = "auto",
                 pseudo_count: float = 0.0) -> None:
        self.estimator = estimator
        self.response_method = response_method
        self.pseudo_count = pseudo_count

    def fit(self, X: Any, y: Any, sample_weight: Any = None) -> ShiftCalibrator:
        """Fit the shift of the raw scores on calibration data.

        Parameters
        ----------
        X : array-like of shape (n, n_features)
            Calibration rows as the estimator takes them, or raw scores of shape (n, 1)
            without an estimator.
        y : array-like of shape (n,)
            Class labels, two classes.
        sample_weight : array-like of shape (n,), optional
            Non-negative frequency weights.

        Returns
        -------
        self : ShiftCalibrator

        Raises
        ------
        InputError
            More than two classes, labels the estimator does not know, an unfitted
            estimator, ``X`` with several columns without an estimator, or a row whose
            raw score is infinite and contradicts its label.
        """
        if self.estimator is None:
            X, y = validate_data(self, X, y, ensure_all_finite=False, dtype=np.float64)
        else:
            _check_fitted(self.estimator)
            # X goes to the estimator as it is; only y is ours to check.
            y = validate_data(self, y=y)
            check_consistent_length(X, y)
            for name in ("n_features_in_", "feature_names_in_"):
                if hasattr(self.estimator, name):
                    setattr(self, name, getattr(self.estimator, name))
        classes = self._classes(y)
        weight = as_weight(sample_weight, len(y), "sample_weight")
        scores = _score_column(X) if self.estimator is None else self._raw_scores(X)
        try:
            result = fit_shift(y == classes[1], scores, weight,
                               pseudo_count=self.pseudo_count)
        except InputError as error:
            raise self._in_user_terms(error, y, scores, weight, classes) from None
        self.classes_, self.fit_, self.shift_ = classes, result, result.shift
        return self

    def decision_function(self, X: Any) -> np.ndarray:
        """Shifted raw scores ``s + shift``, the log-odds of ``classes_[1]``, shape (n,).

        An infinite raw score stays as it is.
        """
        check_is_fitted(self)
        scores = self._raw_scores(X)
        # A certain score stays certain, even against an infinite shift (no inf - inf).
        with np.errstate(invalid="ignore"):
            return np.where(np.isinf(scores), scores, scores + self.shift_)

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated class probabilities ``[σ(-z), σ(z)]`` with ``z = s + shift``, shape (n, 2).

        Each column is computed directly (never ``1 - p``), so small probabilities keep
        their precision.
        """
        up, down = sigmoid_pair(self.decision_function(X))
        return np.column_stack([down, up])

    def predict(self, X: Any) -> np.ndarray:
        """Class labels: ``classes_[1]`` where the calibrated probability exceeds 1/2."""
        positive = self.decision_function(X) > 0
        return self.classes_[positive.astype(np.intp)]

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        if self.estimator is not None:
            # X goes to the estimator as it is, so it accepts what the estimator accepts.
            tags.input_tags = get_tags(self.estimator).input_tags
        return tags

    def _classes(self, y: np.ndarray) -> np.ndarray:
        """The two classes: the estimator's, or those of ``y``."""
        check_classification_targets(y)
        known = None if self.estimator is None else getattr(self.estimator, "classes_", None)
        classes = np.unique(y) if known is None else np.asarray(known)
        listed = ", ".join(map(repr, classes.tolist()))
        if classes.size > 2:
            raise InputError(f"Only binary classification is supported; there are "
                             f"{classes.size} classes ({listed})", argument="y")
        if classes.size < 2:
            raise InputError(f"y has one class ({listed}); without an estimator that knows "
                             "both classes, ShiftCalibrator needs both in y", argument="y")
        unknown = ~np.isin(y, classes)
        if unknown.any():
            i = int(np.flatnonzero(unknown)[0])
            label = _plain(y[i])
            raise InputError(f"label y[{i}] = {label!r} is not a class of the estimator "
                             f"({listed})", argument="y", index=i, value=label)
        return classes

    def _raw_scores(self, X: Any) -> np.ndarray:
        """The raw scores of new rows ``X``, shape (n,)."""
        if self.estimator is None:
            return _score_column(validate_data(self, X, reset=False, ensure_all_finite=False,
                                               dtype=np.float64))
        if self._response() == "decision_function":
            return np.asarray(self.estimator.decision_function(X), dtype=np.float64).ravel()
        probabilities = np.asarray(self.estimator.predict_proba(X), dtype=np.float64)
        if probabilities.ndim != 2 or probabilities.shape[1] != 2:
            raise InputError(
                f"estimator.predict_proba gave shape {probabilities.shape}, not (n, 2)",
                argument="estimator")
        # Both columns, not 1 - p: the small one keeps its digits; p = 0 or 1 gives ±inf.
        with np.errstate(divide="ignore"):
            return np.log(probabilities[:, 1]) - np.log(probabilities[:, 0])

    def _in_user_terms(self, error: InputError, y: np.ndarray, scores: np.ndarray,
                       weight: np.ndarray | None, classes: np.ndarray) -> InputError:
        """Reword logitshift's complaint about the offsets as one about the raw scores."""
        if error.argument != "offset":
            return error
        if error.index is None:
            counted = scores if weight is None else scores[weight > 0]
            if not np.isinf(counted).all():
                return error
            return InputError("every row with weight has an infinite raw score (the model "
                              "is certain of each), so every shift fits equally well",
                              argument="X")
        i, score = error.index, scores[error.index]
        if self.estimator is None:
            where, remedy = f"X[{i}, 0]", "Clip X to finite raw scores to fit anyway"
        else:
            where = f"the raw score of row {i} (from estimator.{self._response()})"
            remedy = ("To fit anyway, pass finite raw scores (e.g. from clipped "
                      "probabilities) as X with estimator=None")
        if np.isnan(score):
            return InputError(f"{where} is nan", argument="X", index=i, value=math.nan)
        certain_of, label = _plain(classes[int(score > 0)]), _plain(y[i])
        return InputError(
            f"{where} is {score}: the model is certain of class {certain_of!r}, but "
            f"the label is {label!r}, and no shift can fit that. {remedy}",
            argument="X", index=i, value=float(score))

    def _response(self) -> str:
        """The estimator's method that gives the raw scores."""
        if self.response_method not in RESPONSE_METHODS:
            raise InputError(
                f"response_method = {self.response_method!r} must be one of "
                f"{', '.join(map(repr, RESPONSE_METHODS))}", argument="response_method",
                value=self.response_method)
        if self.response_method != "auto":
            return self.response_method
        return ("decision_function" if hasattr(self.estimator, "decision_function")
                else "predict_proba")


def _score_column(X: np.ndarray) -> np.ndarray:
    """The raw scores in a validated ``X`` of shape (n, 1): finite or infinite, not NaN."""
    if X.shape[1] != 1:
        raise InputError(
            f"X has {X.shape[1]} columns: without an estimator X is one column of raw "
            "scores, shape (n, 1)", argument="X")
    scores = X[:, 0]
    nan = np.isnan(scores)
    if nan.any():
        i = int(np.flatnonzero(nan)[0])
        raise InputError(f"X[{i}, 0] is nan", argument="X", index=i, value=math.nan)
    return scores


def _check_fitted(estimator: Any) -> None:
    try:
        check_is_fitted(estimator)
    except NotFittedError as exc:
        raise InputError(
            f"estimator {type(estimator).__name__} is not fitted, and ShiftCalibrator never "
            "fits it: pass a fitted classifier. Wrap it in sklearn.frozen.FrozenEstimator "
            "to keep it fitted through clone (in cross-validation or a grid search)",
            argument="estimator") from exc


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, for messages."""
    return value.item() if isinstance(value, np.generic) else value
