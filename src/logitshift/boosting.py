"""Start a gradient-boosted model from the optimal shift of the scores it boosts from.

When a booster continues from another model's raw scores (XGBoost's ``base_margin``,
LightGBM's ``init_score``), those scores are its starting point exactly as they are; no
constant is fitted on top of them:

- **XGBoost** (checked with 3.2) adds a DMatrix's ``base_margin`` to the trees *in place of*
  ``base_score``: with a base margin set, a booster trained with ``eta=0`` predicts the margin
  itself whatever ``base_score`` is. ``base_score`` is estimated from the labels alone (for
  ``binary:logistic``, the weighted mean label) and serves only rows without a margin.
- **LightGBM** (checked with 4.7) starts a binary model from ``log(m / k)`` (``m`` positives,
  ``k`` negatives) through ``boost_from_average``, but only when the Dataset has no init
  score: with one, it starts from the init score, even when ``boost_from_average=True`` is
  passed.

So when the scores come from another population, from down-sampled training data, or from a
model that was never calibrated, the booster starts from a badly centred margin and spends its
first trees, shrunk by the learning rate, moving a constant. The right start is the optimal
shift *given* the scores, ``argmin_s Σ w · BCE(y, margin + s)``: :func:`shift_dmatrix` and
:func:`shift_dataset` fit it with the margin as offset and add it to the margin.

For plain arrays the same is ``logitshift.fit(label, offset=margin, weight=weight)``.

Neither library is imported until one of these functions is called.
"""

from __future__ import annotations

import importlib
import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ._api import fit
from ._core.validate import InputError, rows
from ._estimators.result import ShiftFit

if TYPE_CHECKING:
    import lightgbm
    import xgboost

__all__ = ["shift_dmatrix", "shift_dataset"]


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(
            f"this needs {name}, which is not installed: pip install \"logitshift[{name}]\""
        ) from exc


def _on_host(values: Any) -> Any:
    # XGBoost hands back CuPy arrays for data that live on a GPU; numpy cannot read them.
    return values.get() if hasattr(values, "__cuda_array_interface__") else values


def _one_column(values: Any, what: str, argument: str) -> np.ndarray:
    """``values`` as a 1-D array; a single column is flattened, several are refused."""
    array = np.asarray(_on_host(values))
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise InputError(
            f"the {what} of {argument} has shape {array.shape}: a shift needs one {what} per "
            "row (a single-output binary model); multi-output models are not supported",
            argument=argument,
        )
    return array


def _fit_margin(
    label: Any, weight: Any, margin: Any, argument: str, margin_name: str,
    options: dict[str, Any],
) -> tuple[ShiftFit, np.ndarray]:
    """Fit the shift of ``margin`` (or of 0 when it is None) and return the shifted margin."""
    if label is None or np.size(label) == 0:
        raise InputError(f"{argument} has no label", argument=argument)
    label = _one_column(label, "label", argument)
    if weight is not None:
        weight = _one_column(weight, "weight", argument)
    if margin is not None:
        margin = _one_column(margin, margin_name, argument)
    result = fit(label, margin, weight, **options)
    if math.isinf(result.shift):
        raise InputError(
            f"every label of {argument} is {'1' if result.shift > 0 else '0'} (of the rows "
            f"with weight), so the optimal shift is {result.shift}; pass pseudo_count > 0 "
            "(e.g. 0.5) for a finite shift",
            argument=argument, value=result.shift,
        )
    if margin is None:
        return result, np.full(label.shape[0], result.shift)
    # A new float64 array: the caller's margin stays as it was, and a float32 margin plus the
    # shift is not rounded to float32 before LightGBM stores it as float64.
    return result, np.asarray(margin, dtype=np.float64) + result.shift


def shift_dmatrix(
    dmatrix: xgboost.DMatrix,
    *,
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
    method: str = "auto",
) -> ShiftFit:
    """Set an XGBoost DMatrix's base margin to ``margin + shift``, with the optimal shift.

    Reads the DMatrix's labels, weights (if any) and base margin (if any), fits
    ``shift = argmin_s Σ w · BCE(label, margin + s)`` with :func:`logitshift.fit`, and sets the
    base margin to ``margin + shift`` (a new array). Without a base margin it fits the shift
    of 0, ``log(m / k)``, and sets the constant margin ``shift``.

    Parameters
    ----------
    dmatrix : xgboost.DMatrix
        With a label per row, in [0, 1]; a ``QuantileDMatrix`` too. Its base margin is
        replaced; nothing else changes.
    pseudo_count, tol, max_iter, method
        Passed to :func:`logitshift.fit`.

    Returns
    -------
    ShiftFit
        ``shift`` is what was added; ``loss_at_zero`` and ``loss`` are the weighted mean log
        loss of the margin before and after, as XGBoost's ``logloss`` metric reports them.

    Raises
    ------
    InputError
        ``dmatrix`` is not a DMatrix, has no label, or has a 2-D label or margin (multi-output
        models); every label is 0 (or 1), so the shift would be infinite (pass
        ``pseudo_count``). Bad values raise :func:`logitshift.fit`'s errors, which name the
        label ``y``, the margin ``offset`` and the weight ``weight``.
    ImportError
        xgboost is not installed.

    Notes
    -----
    XGBoost uses a row's base margin instead of ``base_score``, so a booster trained on this
    DMatrix predicts only what it added to the margin. Give every DMatrix it later predicts
    on or evaluates the same shifted margin, e.g.
    ``dtest.set_base_margin(test_margin + result.shift)``.

    XGBoost stores margins, labels and weights as float32; the shift is fitted on the values
    it stores. The shift is optimal for the plain (weighted) log loss of ``binary:logistic``;
    ``scale_pos_weight`` reweights the classes inside XGBoost and is not seen here.

    Examples
    --------
    >>> import numpy as np, xgboost, logitshift.boosting
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.normal(0, 2, 1000)
    >>> labels = rng.random(1000) < 1 / (1 + np.exp(2 - scores))
    >>> dtrain = xgboost.DMatrix(rng.normal(size=(1000, 3)), label=labels, base_margin=scores)
    >>> result = logitshift.boosting.shift_dmatrix(dtrain)
    >>> bool(result.loss < result.loss_at_zero)
    True
    """
    xgb = _import("xgboost")
    if not isinstance(dmatrix, xgb.DMatrix):
        raise InputError(f"dmatrix must be an xgboost.DMatrix, got {type(dmatrix).__name__}",
                         argument="dmatrix")
    # An empty array is XGBoost's answer for a field that was never set.
    weight = _on_host(dmatrix.get_weight())
    margin = _on_host(dmatrix.get_base_margin())
    result, shifted = _fit_margin(
        dmatrix.get_label(), weight if np.size(weight) else None,
        margin if np.size(margin) else None, "dmatrix", "base margin",
        dict(pseudo_count=pseudo_count, tol=tol, max_iter=max_iter, method=method),
    )
    dmatrix.set_base_margin(shifted)
    return result


def _dataset_field(dataset: lightgbm.Dataset, name: str) -> Any:
    """A Dataset's label, weight or init score as LightGBM will use it; None when it has none.

    Before construction only what was passed to the Dataset exists; after it, LightGBM keeps
    the fields (whatever ``free_raw_data``), and ``get_<name>`` reads those that were never
    passed in Python, e.g. read from a file.
    """
    value = getattr(dataset, name)
    if value is None:
        try:
            value = getattr(dataset, f"get_{name}")()
        except Exception:  # LightGBM raises a bare Exception: not constructed, field not passed
            return None
    return value


def shift_dataset(
    dataset: lightgbm.Dataset,
    *,
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
    method: str = "auto",
) -> ShiftFit:
    """Set a LightGBM Dataset's init score to ``init_score + shift``, with the optimal shift.

    Reads the Dataset's labels, weights (if any) and init score (if any), fits
    ``shift = argmin_s Σ w · BCE(label, init_score + s)`` with :func:`logitshift.fit`, and sets
    the init score to ``init_score + shift`` (a new array). Without an init score it fits the
    shift of 0, ``log(m / k)``, and sets the constant init score ``shift``.

    Parameters
    ----------
    dataset : lightgbm.Dataset
        Constructed or not. Its init score is replaced (``set_init_score``); nothing else
        changes, and an unconstructed Dataset stays unconstructed.
    pseudo_count, tol, max_iter, method
        Passed to :func:`logitshift.fit`.

    Returns
    -------
    ShiftFit
        ``shift`` is what was added; ``loss_at_zero`` and ``loss`` are the weighted mean log
        loss of the init score before and after, as LightGBM's ``binary_logloss`` reports them.

    Raises
    ------
    InputError
        ``dataset`` is not a Dataset, has no label (see Notes), has a label of zeros on every
        row (what LightGBM gives a Dataset constructed without one), or has a 2-D label or
        init score (multi-class models); every label is 0 (or 1), so the shift would be infinite
        (pass ``pseudo_count``). Bad values raise :func:`logitshift.fit`'s errors, which name
        the label ``y``, the init score ``offset`` and the weight ``weight``.
    ImportError
        lightgbm is not installed.

    Notes
    -----
    A Dataset is built lazily. Before it is constructed, the label, weight and init score are
    the ones passed to ``lightgbm.Dataset`` (or set since); after it, LightGBM's stored copies,
    which outlive ``free_raw_data=True``. A Dataset whose label is only in a file is not
    readable until constructed, nor is a subset's (``Dataset.subset``): call
    ``dataset.construct()`` first, with the parameters you will train with. A weight or init
    score kept only in a file is likewise seen only after construction.

    LightGBM starts from the init score and skips ``boost_from_average`` whenever a Dataset
    has one, so the model predicts only what it adds to the init score: give every Dataset it
    is validated on the same shift, ``valid.set_init_score(valid_score + result.shift)``, and
    add ``valid_score + result.shift`` to ``booster.predict(X, raw_score=True)``.

    LightGBM stores labels and weights as float32 when it constructs a Dataset; before
    construction the shift is fitted on the values passed, which can differ from LightGBM's in
    the eighth digit. The shift is optimal for the plain (weighted) log loss; ``is_unbalance``
    and ``scale_pos_weight`` reweight the classes inside LightGBM and are not seen here.

    Examples
    --------
    >>> import numpy as np, lightgbm, logitshift.boosting
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.normal(0, 2, 1000)
    >>> labels = rng.random(1000) < 1 / (1 + np.exp(2 - scores))
    >>> train = lightgbm.Dataset(rng.normal(size=(1000, 3)), label=labels, init_score=scores)
    >>> result = logitshift.boosting.shift_dataset(train)
    >>> bool(result.loss < result.loss_at_zero)
    True
    """
    lgb = _import("lightgbm")
    if not isinstance(dataset, lgb.Dataset):
        raise InputError(f"dataset must be a lightgbm.Dataset, got {type(dataset).__name__}",
                         argument="dataset")
    label = _dataset_field(dataset, "label")
    if label is None:
        raise InputError(
            "dataset has no label until it is constructed (the label is in a file, or it is a "
            "subset): call dataset.construct() first, with the parameters you will train with",
            argument="dataset")
    # LightGBM gives a Dataset constructed without a label a label of zeros, and once it is
    # constructed nothing tells that apart from labels that are all 0; either way no finite
    # shift is right (all-0 labels put it at -inf), so neither is fitted.
    values = np.asarray(_on_host(label))
    if values.size and values.dtype.kind in "biuf" and not values.any():
        raise InputError(
            f"every label of dataset is 0: LightGBM gives a Dataset constructed without a "
            f"label zeros, so it may have none ({rows(values.size)}). Pass label= to "
            "lightgbm.Dataset (or call set_label); for labels that truly are all 0 the "
            "optimal shift is -inf (logitshift.fit with pseudo_count > 0 gives a finite one)",
            argument="dataset")
    result, shifted = _fit_margin(
        label, _dataset_field(dataset, "weight"), _dataset_field(dataset, "init_score"),
        "dataset", "init score",
        dict(pseudo_count=pseudo_count, tol=tol, max_iter=max_iter, method=method),
    )
    dataset.set_init_score(shifted)
    return result
