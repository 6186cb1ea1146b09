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
:func:`shift_pool` does the same for a CatBoost ``Pool``'s baseline, and
:func:`shift_catboost` writes the shift on new rows into a trained CatBoost model's bias.

A trained booster's leaves are groups: :func:`refit_leaves` refits every leaf value of an
XGBoost or LightGBM model on new rows, its trees fixed, each the exact (penalised)
minimiser of its rows' loss given the earlier trees, where XGBoost's ``refresh`` updater and
LightGBM's ``refit`` take one Newton step.

No library is imported until one of these functions is called.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
import math
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ._api import fit, fit_groups
from ._core import jsonsafe as _json
from ._core import losses as _losses
from ._core.validate import (InputError, as_labels, as_nonnegative_float, as_offset,
                             as_weight, rows, warn)
from ._estimators.groups import check_l2
from ._estimators.result import ShiftFit

if TYPE_CHECKING:
    import lightgbm
    import xgboost

__all__ = ["shift_dmatrix", "shift_dataset", "refit_leaves", "LeafRefit", "shift_pool",
           "shift_catboost", "ShiftedModel"]


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
    if array.ndim == 0:
        raise InputError(f"{argument} = {values!r} must be an array with one {what} per row",
                         argument=argument, value=values)
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


# -- refitting a trained booster's leaves ------------------------------------------------------

#: Leaf indices of at most this many (row, tree) pairs are held at once.
_LEAF_BLOCK = 2 ** 24


@dataclass(frozen=True, repr=False)
class LeafRefit:
    """What :func:`refit_leaves` did: the new model and, tree by tree, what changed.

    Attributes
    ----------
    model
        The new model, of the kind given (``xgboost.Booster``, ``XGBClassifier``,
        ``lightgbm.Booster``, ``LGBMClassifier``); the caller's model is unchanged.
    loss_before, loss_after : float
        Weighted mean log loss, ``Σ w BCE(y, margin) / Σ w``, of the old and the new model's
        margin (base plus trees) on the given rows.
    trees : ndarray of int, shape (n_refitted,)
        The trees refitted, in boosting order.
    leaves_changed : ndarray of int, shape (n_refitted,)
        Per refitted tree, the leaves whose value changed (a leaf no row reaches keeps its
        value).
    largest_change : ndarray of float, shape (n_refitted,)
        Per refitted tree, ``max |new - old|`` over its leaves (0 where none changed).
    learning_rate : ndarray of float, shape (n_refitted,)
        The learning rate each refitted tree's minimiser was scaled by.
    kept : tuple of (int, int)
        ``(tree, leaf)`` of the leaves that rows reach but whose value was kept because the
        penalised loss has no finite minimiser there: its rows' labels are all 1 (or all 0)
        and ``l2 = 0``.
    l2, decay : float
        The penalty and the blend used.
    """

    model: Any
    loss_before: float
    loss_after: float
    trees: np.ndarray
    leaves_changed: np.ndarray
    largest_change: np.ndarray
    learning_rate: np.ndarray
    kept: tuple[tuple[int, int], ...]
    l2: float
    decay: float

    def to_dict(self, *, json_safe: bool = False) -> dict[str, Any]:
        """Everything but the model, as plain Python values (lists for the per-tree
        arrays); ``json_safe=True`` as strict JSON holds them (``inf`` and ``nan`` as
        strings)."""
        out = {"loss_before": self.loss_before, "loss_after": self.loss_after,
               "trees": self.trees.tolist(), "leaves_changed": self.leaves_changed.tolist(),
               "largest_change": self.largest_change.tolist(),
               "learning_rate": self.learning_rate.tolist(),
               "kept": [list(pair) for pair in self.kept], "l2": self.l2, "decay": self.decay}
        return _json.json_safe(out) if json_safe else out

    def __repr__(self) -> str:
        return (f"LeafRefit(trees={self.trees.size}, loss_before={self.loss_before:.6g}, "
                f"loss_after={self.loss_after:.6g}, kept={len(self.kept)})")


class _Trees:
    """A trained binary booster seen as trees of leaf values: what :func:`refit_leaves`
    reads and writes, one library at a time."""

    #: The dtype the library stores leaf values in.
    stored: Any = np.float64
    #: Trees per boosting round: leaf indices are read a whole round at a time.
    per_round: int = 1
    #: Whether the model was trained with monotone constraints (as far as it says).
    monotone: bool = False
    n_trees: int
    learning_rate: np.ndarray  # per tree, the model's own
    l2: float

    def values(self, tree: int) -> np.ndarray:
        """The tree's leaf values, indexed by the leaf index ``pred_leaf`` gives."""
        raise NotImplementedError

    def leaves(self, first: int, stop: int) -> np.ndarray:
        """Each row's leaf in trees ``first .. stop - 1``: shape (n, stop - first)."""
        raise NotImplementedError

    def base(self) -> np.ndarray:
        """The margin before the first tree, row by row, as the library's predict has it."""
        raise NotImplementedError

    def written(self, values: list[np.ndarray]) -> Any:
        """A new model of the caller's kind with these leaf values."""
        raise NotImplementedError


def _constrained(constraints: Any) -> bool:
    """Whether a model's ``monotone_constraints`` (XGBoost's "(1,0,-1)", LightGBM's list
    or "1,0,-1") constrain any feature."""
    if constraints is None:
        return False
    text = constraints if isinstance(constraints, str) else ",".join(map(str, constraints))
    return any(int(value) != 0 for value in re.findall(r"-?\d+", text))


def _refuse_objective(name: str, library: str) -> None:
    multi = "multi" in name
    raise InputError(
        f"model has objective {name!r}: refit_leaves refits binary log-loss models only "
        f"({'binary:logistic or binary:logitraw' if library == 'xgboost' else 'binary'})"
        + ("; multiclass recalibration has not landed yet" if multi else ""),
        argument="model", value=name)


class _XGBoostTrees(_Trees):
    stored = np.float32

    def __init__(self, model: Any, data: Any, base_margin: np.ndarray | None) -> None:
        xgb = _import("xgboost")
        self.wrapper = None if isinstance(model, xgb.Booster) else model
        with _fitted(model):
            self.booster = model if self.wrapper is None else model.get_booster()
        raw = json.loads(bytes(self.booster.save_raw("json")))
        learner = raw["learner"]
        objective = learner["objective"]["name"]
        if objective not in ("binary:logistic", "binary:logitraw"):
            _refuse_objective(objective, "xgboost")
        booster_name = learner["gradient_booster"]["name"]
        if booster_name != "gbtree":
            raise InputError(
                f"model is a {booster_name!r} booster: refit_leaves refits tree boosters "
                "(gbtree); dart scales its trees at prediction and gblinear has none",
                argument="model", value=booster_name)
        self.raw = raw
        self.trees = learner["gradient_booster"]["model"]["trees"]
        self.n_trees = len(self.trees)
        # Trees per boosting round (num_parallel_tree): slicing the booster is by round.
        indptr = learner["gradient_booster"]["model"].get("iteration_indptr")
        self.per_round = (int(indptr[1]) if indptr and len(indptr) > 1 else 1)
        config = json.loads(self.booster.save_config())
        train = config["learner"]["gradient_booster"].get("tree_train_param", {})
        self.learning_rate = np.full(self.n_trees, float(train.get("eta", 0.3)))
        self.l2 = float(train.get("lambda", 1.0))
        self.monotone = _constrained(train.get("monotone_constraints"))
        missing = getattr(self.wrapper, "missing", math.nan)
        if isinstance(data, xgb.DMatrix):
            if base_margin is not None:
                raise InputError("data is a DMatrix: set its base margin "
                                 "(set_base_margin), not base_margin=", argument="base_margin")
            self.data = data
        else:
            _table_shape(data)
            with _library_says("data", "XGBoost", (ValueError, TypeError,
                                                   xgb.core.XGBoostError)):
                self.data = xgb.DMatrix(data, missing=missing, enable_categorical=True)
            if base_margin is not None:
                # Checked here: XGBoost's own message for a margin of another length is a
                # C++ check with a stack trace.
                if base_margin.size != self.data.num_row():
                    raise InputError(f"base_margin has {rows(base_margin.size)}, data has "
                                     f"{rows(self.data.num_row())}", argument="base_margin",
                                     value=base_margin.size)
                self.data.set_base_margin(base_margin)
        self.n_rows = int(self.data.num_row())
        # XGBoost's predict refuses other feature names, but the leaf predictions here
        # cannot ask it to (a sliced booster), and a narrower table it reads as missing
        # values: both would silently refit other features' splits.
        _check_features(int(self.data.num_col()), self.booster.num_features(),
                        self.data.feature_names, self.booster.feature_names, strict=True)
        # A scikit-learn model that stopped early predicts with its best iteration's trees
        # only: those are the model refitted; the later ones are kept as they are.
        self.all_trees = self.n_trees
        best = getattr(self.wrapper, "best_iteration", None) if self.wrapper else None
        if best is not None:
            self.n_trees = min(self.n_trees, (int(best) + 1) * self.per_round)
            self.learning_rate = self.learning_rate[:self.n_trees]

    def values(self, tree: int) -> np.ndarray:
        return np.asarray(self.trees[tree]["split_conditions"], dtype=np.float32).astype(
            np.float64)

    def leaves(self, first: int, stop: int) -> np.ndarray:
        # Leaf prediction takes no iteration range but from 0: a slice of the rounds.
        rounds = self.booster[first // self.per_round:stop // self.per_round]
        leaves = np.asarray(rounds.predict(self.data, pred_leaf=True, validate_features=False))
        return leaves.reshape(self.n_rows, -1).astype(np.int64)

    def _model(self, values: list[np.ndarray] | None) -> Any:
        raw = copy.deepcopy(self.raw)
        for tree, new in zip(raw["learner"]["gradient_booster"]["model"]["trees"],
                             values if values is not None else [None] * self.all_trees):
            leaf = np.asarray(tree["left_children"]) == -1
            for field_name in ("split_conditions", "base_weights"):
                column = np.asarray(tree[field_name], dtype=np.float64)
                column[leaf] = 0.0 if new is None else new[leaf]
                tree[field_name] = column.tolist()
        booster = self.booster.copy()
        booster.load_model(bytearray(json.dumps(raw).encode()))
        return booster

    def base(self) -> np.ndarray:
        # The model with every leaf 0 predicts its base: base_score in margin units, or
        # the DMatrix's base margin, exactly as XGBoost adds it.
        zero = self._model(None)
        return np.asarray(zero.predict(self.data, output_margin=True,
                                       validate_features=False), dtype=np.float64)

    def written(self, values: list[np.ndarray]) -> Any:
        booster = self._model(values)
        if self.wrapper is None:
            return booster
        model = copy.deepcopy(self.wrapper)
        model._Booster = booster
        return model


class _LightGBMTrees(_Trees):
    def __init__(self, model: Any, data: Any, base_margin: np.ndarray | None) -> None:
        lgb = _import("lightgbm")
        self.wrapper = None if isinstance(model, lgb.Booster) else model
        with _fitted(model):
            booster = model if self.wrapper is None else model.booster_
        # A copy: the values are written into it, never into the caller's.
        self.booster = lgb.Booster(model_str=booster.model_to_string())
        dump = self.booster.dump_model()
        objective = str(dump.get("objective", ""))
        name, *settings = objective.split()
        if name != "binary" or dump.get("num_tree_per_iteration", 1) != 1:
            _refuse_objective(objective, "lightgbm")
        if "sigmoid:1" not in settings:
            raise InputError(f"model has objective {objective!r}: refit_leaves needs the "
                             "plain log loss, sigmoid = 1", argument="model", value=objective)
        params = self.booster.params
        if params.get("linear_tree"):
            raise InputError("model is a linear_tree model: its leaves are linear models, "
                             "not values", argument="model")
        info = dump["tree_info"]
        self.n_trees = len(info)
        self.n_leaves = [int(tree["num_leaves"]) for tree in info]
        # Each tree's own shrinkage: the learning rate, but 1 for a first tree that carries
        # boost_from_average's start (LightGBM adds it to that tree's leaves).
        self.learning_rate = np.array([float(tree.get("shrinkage", 1.0)) for tree in info])
        self.l2 = float(params.get("lambda_l2", 0.0))
        self.monotone = _constrained(params.get("monotone_constraints"))
        if isinstance(data, lgb.Dataset):
            raise InputError("data is a lightgbm.Dataset, which LightGBM's predict does not "
                             "take: pass its features (an array or a DataFrame)",
                             argument="data")
        self.data = data
        self.base_margin = base_margin
        self.n_rows, n_features = _table_shape(data)
        # LightGBM's predict reads a DataFrame's columns by position; a column that is one
        # of the model's features at another position is a table in another order.
        columns = getattr(data, "columns", None)
        _check_features(n_features, self.booster.num_feature(),
                        None if columns is None else [str(c) for c in columns],
                        self.booster.feature_name(), strict=False)
        self.errors = (ValueError, TypeError, lgb.basic.LightGBMError)

    def values(self, tree: int) -> np.ndarray:
        return np.array([self.booster.get_leaf_output(tree, leaf)
                         for leaf in range(self.n_leaves[tree])], dtype=np.float64)

    def leaves(self, first: int, stop: int) -> np.ndarray:
        with _library_says("data", "LightGBM", self.errors):
            leaves = self.booster.predict(self.data, pred_leaf=True, start_iteration=first,
                                          num_iteration=stop - first,
                                          validate_features=False)
        return np.asarray(leaves).reshape(self.n_rows, -1).astype(np.int64)

    def base(self) -> np.ndarray:
        if self.base_margin is None:
            return np.zeros(self.n_rows)
        return np.array(self.base_margin, dtype=np.float64)

    def written(self, values: list[np.ndarray]) -> Any:
        for tree, new in enumerate(values):
            old = self.values(tree)
            for leaf in np.flatnonzero(new != old).tolist():
                self.booster.set_leaf_output(tree, leaf, float(new[leaf]))
        if self.wrapper is None:
            return self.booster
        model = copy.deepcopy(self.wrapper)
        model._Booster = self.booster
        return model


@contextlib.contextmanager
def _fitted(model: Any) -> Iterator[None]:
    """Reading a scikit-learn model's booster, whose absence means it was never fitted."""
    try:
        yield
    except (AttributeError, ValueError) as exc:  # scikit-learn's NotFittedError is both
        raise InputError(f"model is a {type(model).__name__} that is not fitted: call its fit "
                         "first", argument="model", value=type(model).__name__) from exc


@contextlib.contextmanager
def _library_says(argument: str, library: str, errors: tuple[type, ...]) -> Iterator[None]:
    """The library's refusal of an input as an :class:`InputError` naming the argument."""
    try:
        yield
    except InputError:
        raise
    except errors as exc:
        # The first line, without XGBoost's "[time] file.cc:line: Check failed: ...:" prefix
        # (a C++ stack trace follows it).
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        reason = re.sub(r"^\[[^\]]*\] [^ ]+:\d+: (Check failed: [^:]*: )?", "", reason)
        raise InputError(f"{library} cannot read {argument}: {reason}",
                         argument=argument) from exc


def _table_shape(data: Any) -> tuple[int, int]:
    """(rows, features) of a table of features; anything but 2-D is refused by name."""
    shape = getattr(data, "shape", None)
    if shape is None:
        try:
            shape = np.shape(data)
        except ValueError:  # ragged lists
            shape = (len(data),)
    if len(shape) != 2:
        raise InputError(f"data has shape {tuple(shape)}: it must be a table (2-D), a row "
                         "of features per row", argument="data", value=tuple(shape))
    return int(shape[0]), int(shape[1])


def _check_features(n_features: int, expected: int, names: list[str] | None,
                    model_names: list[str] | None, *, strict: bool) -> None:
    """Refuse a table whose columns are not the model's: another number of them, or (with
    names on both sides) other names (``strict``, as XGBoost's predict) or the model's names
    at other positions (as LightGBM, which renames some of them, can be checked)."""
    if n_features != expected:
        raise InputError(f"data has {n_features} feature columns, the model was trained on "
                         f"{expected}", argument="data", value=n_features)
    if names is None or model_names is None:
        return
    names, model_names = list(names), list(model_names)
    moved = [name for i, name in enumerate(names)
             if name in model_names and model_names.index(name) != i]
    if moved or (strict and names != model_names):
        order = (f": the same names in another order, pass data[{model_names!r}]"
                 if sorted(names) == sorted(model_names) else "")
        raise InputError(f"data's columns {names} are not the model's features "
                         f"{model_names}{order}", argument="data", value=names)


def _library_of(model: Any) -> str:
    module = type(model).__module__.partition(".")[0]
    if module in ("xgboost", "lightgbm"):
        return module
    raise InputError(
        f"model must be an XGBoost or LightGBM model (Booster, XGBClassifier, "
        f"LGBMClassifier), got {type(model).__name__}", argument="model",
        value=type(model).__name__)


def _chosen_trees(trees: Any, n_trees: int) -> np.ndarray:
    """``trees`` as a boolean mask over the model's trees."""
    chosen = np.zeros(n_trees, dtype=bool)
    if trees is None:
        chosen[:] = True
        return chosen
    if isinstance(trees, np.ndarray) and trees.ndim == 0:
        trees = trees.item()
    if isinstance(trees, (int, np.integer)) and not isinstance(trees, (bool, np.bool_)):
        trees = [trees]
    if isinstance(trees, (str, bytes)) or not hasattr(trees, "__iter__"):
        raise InputError(f"trees = {trees!r} must be a tree index (an int) or a sequence of "
                         "them", argument="trees", value=trees)
    for i, tree in enumerate(trees):
        if isinstance(tree, (bool, np.bool_)) or not isinstance(tree, (int, np.integer)):
            raise InputError(f"trees[{i}] = {tree!r} is not a tree index (an int)",
                             argument="trees", index=i, value=tree)
        if not -n_trees <= tree < n_trees:
            raise InputError(f"trees[{i}] = {tree} is not a tree of the model's {n_trees}",
                             argument="trees", index=i, value=tree)
        chosen[tree] = True
    return chosen


def _option(value: Any, name: str) -> float:
    """A finite number >= 0; a string or a bool is refused, not read as one."""
    if isinstance(value, (str, bytes, bool, np.bool_)) or (
            isinstance(value, np.ndarray) and value.dtype.kind not in "iuf"):
        raise InputError(f"{name} = {value!r} must be a number", argument=name, value=value)
    return as_nonnegative_float(value, name)


def _mean_loss(label: np.ndarray, margin: np.ndarray, weight: np.ndarray | None) -> float:
    per_row = _losses.loss(label, margin, weight)
    total = float(label.size if weight is None else np.sum(weight))
    return float(np.sum(per_row)) / total


def refit_leaves(
    model: Any,
    data: Any,
    y: Any = None,
    weight: Any = None,
    *,
    learning_rate: float | None = None,
    l2: float | None = None,
    decay: float = 0.0,
    trees: Any = None,
    base_margin: Any = None,
    init_score: Any = None,
) -> LeafRefit:
    """Refit a trained booster's leaf values on new rows, its trees' structure fixed.

    Tree by tree, in boosting order, each leaf's new value is

        new = decay · old + (1 - decay) · learning_rate · s*,
        s* = argmin_s Σ_{i in leaf} w_i BCE(y_i, margin_i + s) + l2 · s² / 2,

    where ``margin_i`` is the base margin plus the earlier trees' outputs (those refitted
    already with their new values). ``s*`` is exact (:func:`logitshift.fit_groups` with
    ``l2``, the leaves as groups), where XGBoost's ``refresh`` updater takes one Newton step
    from 0 and LightGBM's ``refit`` one step from 0 as well.

    Parameters
    ----------
    model : xgboost.Booster, xgboost.XGBClassifier, lightgbm.Booster or lightgbm.LGBMClassifier
        A binary log-loss model (XGBoost ``binary:logistic`` or ``binary:logitraw``,
        ``gbtree``; LightGBM ``binary``). Never modified.
    data : array_like, DataFrame or xgboost.DMatrix, shape (n, n_features)
        What the model's ``predict`` takes (a DMatrix for XGBoost only). A
        ``QuantileDMatrix`` holds each feature's bin, and rows are placed by it, as
        XGBoost's ``predict`` on it places them: build it with ``ref=`` the training
        DMatrix, or pass the table itself, for the leaves of the features' values.
    y : array_like, shape (n,)
        Labels in [0, 1]. For a DMatrix, its label when not given.
    weight : array_like, shape (n,), optional
        Row weights (for a DMatrix, its weight when not given).
    learning_rate : float, optional
        What ``s*`` is scaled by. By default the model's own: XGBoost's ``eta``; LightGBM's
        shrinkage of each tree, which is the ``learning_rate`` but 1 for a first tree that
        carries ``boost_from_average``'s start.
    l2 : float, optional
        The penalty on each leaf's value, in the units of ``weight``. By default the model's
        own: XGBoost's ``lambda`` (``reg_lambda``), LightGBM's ``lambda_l2``.
    decay : float, default 0
        In [0, 1]: the share of the old value kept (LightGBM's ``refit_decay_rate``).
    trees : int or sequence of int, optional
        The trees to refit (by default all); the others keep their values, and their outputs
        enter the later trees' margins as they are.
    base_margin, init_score : array_like, shape (n,), optional
        The margin the model boosts from on these rows, when it boosted from one: XGBoost's
        ``base_margin`` (as its ``predict`` adds it, in place of ``base_score``; for a
        DMatrix, set it on the DMatrix), LightGBM's ``init_score`` (which LightGBM's
        ``predict`` never adds). Give one of the two. Without it, the base is XGBoost's
        ``base_score`` in margin units, and 0 for LightGBM.

    Returns
    -------
    LeafRefit
        The new model (``.model``, the same kind as ``model``), the loss before and after,
        and per refitted tree the leaves changed and the largest change.

    Raises
    ------
    InputError
        A model that is not one of the above or not fitted, a multiclass or other objective
        (multiclass recalibration has not landed), a ``dart`` or ``gblinear`` booster,
        LightGBM's ``linear_tree``; ``data`` that is not a table (2-D), has another number of
        feature columns than the model, is a DataFrame whose columns are not the model's
        features in the model's order (XGBoost's ``predict`` refuses it; LightGBM's would
        read it by position), or that the library cannot read (its reason quoted); ``y``
        or ``weight`` of another length than ``data`` or with bad values (named as
        :func:`logitshift.fit` names them), a NaN base margin, a tree
        index that is not a tree (an int, or a sequence of them), ``learning_rate <= 0``
        or so large that a leaf leaves the range of the model's leaf values, ``l2 < 0``,
        ``decay`` outside [0, 1]; a string or a bool where a number is meant.
    ImportError
        The model's library is not installed.

    Warns
    -----
    RuntimeWarning
        Once, counting the leaves kept because their rows are of one class and ``l2 = 0``
        (their minimiser is infinite, which no model should hold; see ``kept``). Once, when
        the model was trained with ``monotone_constraints``: the leaves are refitted each
        on its own rows, without the constraints, so the new model may break them (as
        LightGBM's own ``refit`` may). A model loaded from a file may not say it was.

    Notes
    -----
    The trees refitted are those the model's own ``predict`` uses: an ``XGBClassifier``
    that stopped early (``best_iteration``) predicts with the trees up to its best
    iteration, so only those are refitted and the later ones are kept as they are; a
    ``Booster`` from ``xgboost.train`` predicts with all its trees, ``best_iteration`` or
    not; LightGBM keeps only the trees up to its best iteration.

    A leaf that no row reaches keeps its value. XGBoost stores leaf values and margins as
    float32: each new value is rounded to float32 before it enters the later trees'
    margins, so the margins are those of the written model, and its
    ``predict(output_margin=True)`` equals base plus leaves within its float32 sum,
    ``|error| <= (T + 1) · 2**-24 · (|base| + Σ |leaf|)`` for ``T`` trees. XGBoost's
    ``max_delta_step``, ``min_child_weight`` and ``alpha`` (L1) are not applied.

    The leaves of one tree are solved together, by one call of the grouped fit on the rows'
    leaf indices (``pred_leaf``, read a block of trees at a time): one pass over the rows
    per tree, ``O(n · T)`` in all.

    Examples
    --------
    >>> import numpy as np, xgboost, logitshift.boosting
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(2000, 3))
    >>> y = rng.random(2000) < 1 / (1 + np.exp(-X[:, 0]))
    >>> booster = xgboost.train({"objective": "binary:logistic", "max_depth": 2},
    ...                         xgboost.DMatrix(X[:1000], label=y[:1000]), 10)
    >>> result = logitshift.boosting.refit_leaves(booster, X[1000:], y[1000:])
    >>> bool(result.loss_after <= result.loss_before)
    True
    """
    library = _library_of(model)
    if base_margin is not None and init_score is not None:
        raise InputError("pass base_margin or init_score, not both (they are one margin)",
                         argument="init_score")
    margin_name = "base_margin" if init_score is None else "init_score"
    start = base_margin if init_score is None else init_score
    decay = _option(decay, "decay")
    if decay > 1:
        raise InputError(f"decay = {decay!r} must be in [0, 1]", argument="decay",
                         value=decay)
    if learning_rate is not None:
        learning_rate = _option(learning_rate, "learning_rate")
        if learning_rate == 0:
            raise InputError("learning_rate = 0.0 must be > 0", argument="learning_rate",
                             value=learning_rate)
    if l2 is not None:
        l2 = check_l2(l2)
    if start is not None:
        start = _one_column(start, margin_name, margin_name)
        start = as_offset(start, start.size, margin_name)
        if not np.all(np.isfinite(start)):
            i = int(np.flatnonzero(~np.isfinite(start))[0])
            raise InputError(f"{margin_name}[{i}] = {start[i]!r} is not finite",
                             argument=margin_name, index=i, value=start[i])
    source = (_XGBoostTrees if library == "xgboost" else _LightGBMTrees)(model, data, start)
    if library == "xgboost" and isinstance(data, _import("xgboost").DMatrix):
        if y is None and np.size(source.data.get_label()):  # empty: it has none
            y = source.data.get_label()
        if weight is None and np.size(source.data.get_weight()):
            weight = source.data.get_weight()
    if y is None:
        raise InputError("y is missing: refit_leaves needs the labels of data's rows"
                         + (" (data is a DMatrix without a label)" if library == "xgboost"
                            and isinstance(data, _import("xgboost").DMatrix) else ""),
                         argument="y")
    n = source.n_rows
    label = as_labels(_one_column(y, "label", "y"), "y").astype(np.float64)
    if label.size != n:
        raise InputError(f"y has {rows(label.size)}, data has {rows(n)}", argument="y",
                         value=label.size)
    if weight is not None:
        weight = as_weight(_one_column(weight, "weight", "weight"), n, "weight").astype(
            np.float64)
    if start is not None and start.size != n:
        raise InputError(f"{margin_name} has {rows(start.size)}, data has {rows(n)}",
                         argument=margin_name, value=start.size)
    chosen = _chosen_trees(trees, source.n_trees)
    rates = (source.learning_rate if learning_rate is None
             else np.full(source.n_trees, learning_rate))
    penalty = source.l2 if l2 is None else l2

    margin = source.base()
    old_margin = margin.copy()
    written, refitted, changed, largest, kept = [], [], [], [], []
    per_round = source.per_round
    block = max(per_round, (_LEAF_BLOCK // max(n, 1)) // per_round * per_round)
    for first in range(0, source.n_trees, block):
        stop = min(first + block, source.n_trees)
        leaves = source.leaves(first, stop)
        for tree in range(first, stop):
            leaf = leaves[:, tree - first]
            old = source.values(tree)
            new = old
            if chosen[tree]:
                new, kept_here = _refit_tree(label, leaf, margin, weight, penalty,
                                             rates[tree], decay, old, source.stored)
                if not np.all(np.isfinite(new)):
                    # A learning rate so large that a leaf leaves the stored dtype's range
                    # would give every later tree an infinite margin.
                    j = int(np.flatnonzero(~np.isfinite(new))[0])
                    raise InputError(
                        f"learning_rate = {float(rates[tree])!r} puts leaf {j} of tree {tree} "
                        f"at {float(new[j])!r}, beyond the range of the model's "
                        f"{np.dtype(source.stored)} leaf values", argument="learning_rate",
                        value=float(rates[tree]))
                kept += [(tree, int(k)) for k in kept_here]
                moved = np.abs(new - old)
                refitted.append(tree)
                changed.append(int(np.count_nonzero(moved)))
                largest.append(float(moved.max()) if moved.size else 0.0)
            written.append(new)
            with np.errstate(over="ignore"):
                margin += new[leaf]
            if chosen[tree] and not np.all(np.isfinite(margin)):
                i = int(np.flatnonzero(~np.isfinite(margin))[0])
                raise InputError(
                    f"learning_rate = {float(rates[tree])!r} takes row {i}'s margin to "
                    f"{float(margin[i])!r} after tree {tree}: no finite model has these "
                    "leaves", argument="learning_rate", value=float(rates[tree]))
            old_margin += old[leaf]
    if source.monotone and chosen.any():
        warn("model was trained with monotone_constraints, which refit_leaves does not "
             "impose: each new leaf is its rows' minimiser, so the new model may not be "
             "monotone in the constrained features; check it, or refit fewer trees "
             "(trees=) or with decay > 0")
    if kept:
        warn(f"{len(kept)} leaves kept their value: their rows' labels are all 1 (or all 0), "
             "so with l2 = 0 their loss has no finite minimiser; pass l2 > 0 to refit them "
             "(LeafRefit.kept lists them)")
    return LeafRefit(
        model=source.written(written), loss_before=_mean_loss(label, old_margin, weight),
        loss_after=_mean_loss(label, margin, weight), trees=np.array(refitted, dtype=np.int64),
        leaves_changed=np.array(changed, dtype=np.int64),
        largest_change=np.array(largest, dtype=np.float64),
        learning_rate=rates[chosen].astype(np.float64), kept=tuple(kept), l2=penalty,
        decay=decay)


def _refit_tree(label: np.ndarray, leaf: np.ndarray, margin: np.ndarray,
                weight: np.ndarray | None, l2: float, learning_rate: float, decay: float,
                old: np.ndarray, stored: Any) -> tuple[np.ndarray, np.ndarray]:
    """One tree's new leaf values (rounded to the library's ``stored`` dtype) and the leaves
    kept for want of a finite minimiser."""
    with warnings.catch_warnings():
        # Leaves of one class are counted once for the whole model, by the caller.
        warnings.simplefilter("ignore", RuntimeWarning)
        fit = fit_groups(label, leaf, margin, weight, l2=l2)
    ids = fit.groups.astype(np.int64)
    finite = np.isfinite(fit.shift)
    # No weight on the leaf's rows: as if no row reached it.
    unreached = fit.status == "no_weight"
    new = old.copy()
    target = ids[finite]
    with np.errstate(over="ignore"):  # the caller refuses a leaf beyond the stored range
        new[target] = (decay * old[target]
                       + (1.0 - decay) * learning_rate * fit.shift[finite]).astype(stored)
    return new, ids[~finite & ~unreached]


# -- CatBoost ------------------------------------------------------------------------------------

def _pool_baseline(pool: Any) -> np.ndarray | None:
    """A Pool's baseline as one value per row; None when it has none. A baseline of several
    columns (a multiclass model's) is refused by name."""
    baseline = np.asarray(pool.get_baseline(), dtype=np.float64)
    if baseline.size == 0:
        return None
    if baseline.ndim == 2 and baseline.shape[1] != 1:
        raise InputError(
            f"the baseline of pool has {baseline.shape[1]} columns: a shift needs one raw "
            "score per row (a binary model); multiclass recalibration has not landed yet",
            argument="pool", value=baseline.shape[1])
    return baseline.reshape(-1)


def _pool_label_and_weight(pool: Any) -> tuple[np.ndarray, np.ndarray]:
    label = pool.get_label()
    if label is None or np.size(label) == 0:
        raise InputError("pool has no label: pass label= to catboost.Pool", argument="pool")
    label = _one_column(np.asarray(label), "label", "pool")
    return label, np.asarray(pool.get_weight(), dtype=np.float64)


def shift_pool(
    pool: Any,
    *,
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
    method: str = "auto",
) -> ShiftFit:
    """Set a CatBoost Pool's baseline to ``baseline + shift``, with the optimal shift.

    The CatBoost counterpart of :func:`shift_dmatrix`: reads the Pool's label, weight and
    baseline (0 where it has none), fits ``shift = argmin_s Σ w · BCE(label, baseline + s)``
    with :func:`logitshift.fit`, and sets the baseline to ``baseline + shift``. CatBoost
    boosts from a Pool's baseline as it is, so a model trained on it starts from the
    centred margin.

    Parameters
    ----------
    pool : catboost.Pool
        With a numeric label in [0, 1] per row; its baseline, if any, of one column.
    pseudo_count, tol, max_iter, method
        Passed to :func:`logitshift.fit`.

    Returns
    -------
    ShiftFit
        ``shift`` is what was added; ``loss_at_zero`` and ``loss`` are the weighted mean log
        loss of the baseline before and after.

    Raises
    ------
    InputError
        ``pool`` is not a Pool, has no label, or has a baseline of several columns
        (multiclass); every label is 0 (or 1) (pass ``pseudo_count``). Bad values raise
        :func:`logitshift.fit`'s errors (``y``, ``offset``, ``weight``).
    ImportError
        catboost is not installed: ``pip install "logitshift[catboost]"``.

    Notes
    -----
    A model trained on a Pool with a baseline predicts only what it adds to it; CatBoost's
    ``predict`` on a Pool adds that Pool's baseline. Give every Pool the model is evaluated
    on the same shift, ``test_pool.set_baseline(test_baseline + result.shift)``. CatBoost
    keeps a Pool's weights and baseline as float32: the shift is fitted on the values it
    keeps.

    Examples
    --------
    >>> import numpy as np, catboost, logitshift.boosting
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.normal(0, 2, 1000)
    >>> labels = (rng.random(1000) < 1 / (1 + np.exp(2 - scores))).astype(int)
    >>> pool = catboost.Pool(rng.normal(size=(1000, 3)), label=labels, baseline=scores)
    >>> result = logitshift.boosting.shift_pool(pool)
    >>> bool(result.loss < result.loss_at_zero)
    True
    """
    catboost = _import("catboost")
    if not isinstance(pool, catboost.Pool):
        raise InputError(f"pool must be a catboost.Pool, got {type(pool).__name__}",
                         argument="pool")
    label, weight = _pool_label_and_weight(pool)
    result, shifted = _fit_margin(
        label, weight, _pool_baseline(pool), "pool", "baseline",
        dict(pseudo_count=pseudo_count, tol=tol, max_iter=max_iter, method=method))
    pool.set_baseline(shifted)
    return result


@dataclass(frozen=True)
class ShiftedModel:
    """A model with the optimal shift written into its bias, and the fit of that shift."""

    #: The new model (a copy); its raw predictions are the old ones plus ``fit.shift``.
    model: Any
    #: The shift's :class:`ShiftFit` on the rows given.
    fit: ShiftFit


def shift_catboost(
    model: Any,
    data: Any,
    y: Any = None,
    weight: Any = None,
    *,
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
    method: str = "auto",
) -> ShiftedModel:
    """A copy of a trained CatBoost model whose bias is moved by the optimal shift on new rows.

    Fits ``shift = argmin_s Σ w · BCE(y, raw + s)``, ``raw`` the model's
    ``predict(data, prediction_type="RawFormulaVal")``, and writes ``bias + shift`` into a
    copy (``model.copy()``, ``set_scale_and_bias``): recalibration in the large of a model
    moved to a new population, without retraining. The caller's model is unchanged.

    Parameters
    ----------
    model : catboost.CatBoostClassifier or catboost.CatBoost
        A trained binary model (``Logloss`` or ``CrossEntropy``).
    data : array_like, DataFrame or catboost.Pool, shape (n, n_features)
        What ``model.predict`` takes. A Pool's baseline enters ``raw`` as ``predict`` adds it.
    y : array_like, shape (n,)
        Labels in [0, 1]; for a Pool, its label when not given.
    weight : array_like, shape (n,), optional
        For a Pool, its weight when not given.
    pseudo_count, tol, max_iter, method
        Passed to :func:`logitshift.fit`.

    Returns
    -------
    ShiftedModel
        ``model``: the copy, of the same class; ``fit``: the :class:`ShiftFit`.

    Raises
    ------
    InputError
        ``model`` is not a fitted CatBoost model, or its loss is not a binary log loss (a
        multiclass model is refused by name: multiclass recalibration has not landed);
        ``data`` not a table, an array of another number of feature columns than the
        model's, or data CatBoost cannot read (its reason quoted); no labels, ``y`` or
        ``weight`` of another length than ``data``; the shift is infinite (every label 0 or
        1: pass ``pseudo_count``).
    ImportError
        catboost is not installed: ``pip install "logitshift[catboost]"``.

    Notes
    -----
    CatBoost's ``set_scale_and_bias`` is documented for use after training: the raw
    prediction is ``scale · Σ trees + bias``, so a new bias moves every raw prediction by
    the same amount. The maintainers advise against it for continued training (#2745).
    """
    catboost = _import("catboost")
    if not isinstance(model, catboost.CatBoost):
        raise InputError(f"model must be a CatBoost model, got {type(model).__name__}",
                         argument="model", value=type(model).__name__)
    if not model.is_fitted():
        raise InputError(f"model is a {type(model).__name__} that is not fitted: call its fit "
                         "first", argument="model", value=type(model).__name__)
    loss_name = str(model.get_all_params().get("loss_function", ""))
    if loss_name.split(":")[0] not in ("Logloss", "CrossEntropy"):
        raise InputError(
            f"model has loss_function {loss_name!r}: shift_catboost shifts binary log-loss "
            "models (Logloss, CrossEntropy)"
            + ("; multiclass recalibration has not landed yet"
               if loss_name.startswith("Multi") else ""),
            argument="model", value=loss_name)
    if isinstance(data, catboost.Pool):
        pool_label, pool_weight = (_pool_label_and_weight(data) if y is None
                                   else (None, np.asarray(data.get_weight(), dtype=float)))
        y = pool_label if y is None else y
        weight = pool_weight if weight is None else weight
    if y is None:
        raise InputError("y is missing: shift_catboost needs the labels of data's rows",
                         argument="y")
    if not isinstance(data, catboost.Pool):
        # CatBoost predicts one row from 1-D data, and reads extra columns of an array by
        # position (a DataFrame's by name).
        n_features = _table_shape(data)[1]
        expected = len(model.feature_names_)
        if not hasattr(data, "columns") and n_features != expected:
            raise InputError(f"data has {n_features} feature columns, the model was trained "
                             f"on {expected}", argument="data", value=n_features)
    with _library_says("data", "CatBoost", (catboost.CatBoostError, ValueError, TypeError)):
        raw = np.asarray(model.predict(data, prediction_type="RawFormulaVal"),
                         dtype=np.float64)
    for name, values in (("y", y), ("weight", weight)):
        if values is not None and np.ndim(values) >= 1 and len(values) != raw.size:
            # Before the fit, which would name the raw scores its offset.
            raise InputError(f"{name} has {rows(len(values))}, data has {rows(raw.size)}",
                             argument=name, value=len(values))
    result, _ = _fit_margin(y, weight, raw, "y", "raw score",
                            dict(pseudo_count=pseudo_count, tol=tol, max_iter=max_iter,
                                 method=method))
    shifted = model.copy()
    scale, bias = shifted.get_scale_and_bias()
    shifted.set_scale_and_bias(scale, float(bias) + result.shift)
    return ShiftedModel(shifted, result)
