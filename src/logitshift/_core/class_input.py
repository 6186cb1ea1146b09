"""Input checks of the multiclass fits: logits as an n × K array, labels as class indices,
class names or soft rows, and the message for a bad row that a kernel found.

As in :mod:`validate`, the caller's arrays are read, never written; a conversion copies only
where the input is not already a numeric numpy array.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .units import ORDINARY_EXPONENT
from .validate import InputError, as_array, as_weight, library_of

__all__ = ["as_logits", "as_class_labels", "raise_for_class_row", "SOFT_TOLERANCE",
           "LOGIT_KINDS", "check_logits_is", "check_weight_units"]

#: A soft label row must sum to 1 within this.
SOFT_TOLERANCE = 1e-6

LOGIT_KINDS = ("logit", "probability")

_NATIVE = (np.dtype(np.float32), np.dtype(np.float64))


def check_logits_is(logits_is: Any) -> str:
    """``logits_is=``: ``"logit"`` (raw scores, any row constant) or ``"probability"``."""
    if not isinstance(logits_is, str) or logits_is not in LOGIT_KINDS:
        raise InputError(f"logits_is = {logits_is!r} must be 'logit' or 'probability'",
                         argument="logits_is", value=logits_is)
    return logits_is


def as_logits(logits: Any, name: str = "logits", logits_is: str = "logit") -> np.ndarray:
    """Logits as an n × K float array (float32 and float64 as they are, other numbers as
    float64), K ≥ 2; with ``logits_is="probability"``, probabilities in [0, 1] turned into
    their logarithms (0 becomes ``-inf``). A numpy array, a CPU torch tensor, or anything
    ``numpy.asarray`` reads as rows (a list of rows). Values are checked by the pass."""
    check_logits_is(logits_is)
    if logits is None:
        raise InputError(f"{name} is None: pass the model's n × K scores", argument=name)
    array = as_array(logits, name)
    if array.dtype.kind not in "biuf":
        raise InputError(f"{name} must be numeric, got dtype {array.dtype}", argument=name)
    if array.dtype.kind == "b":
        raise InputError(f"{name} is boolean: logits are scores, not a mask", argument=name)
    if array.ndim != 2:
        hint = ("; for two classes, pass the scores of both (or use logitshift.fit for "
                "one column of log-odds)" if array.ndim == 1 else "")
        raise InputError(f"{name} must be 2-D (rows × classes), got shape {array.shape}{hint}",
                         argument=name)
    n_rows, n_classes = array.shape
    if n_rows == 0:
        raise InputError(f"{name} is empty", argument=name)
    if n_classes < 2:
        raise InputError(f"{name} has {n_classes} column: a multiclass fit needs at least 2 "
                         "classes", argument=name, value=n_classes)
    if array.dtype not in _NATIVE or not array.dtype.isnative:
        array = array.astype(np.float64)
    if logits_is == "probability":
        bad = ~((array >= 0) & (array <= 1))
        if bad.any():
            row, column = (int(i) for i in np.argwhere(bad)[0])
            value = float(array[row, column])
            raise InputError(
                f"{name}[{row}, {column}] is nan" if value != value else
                f"probability {name}[{row}, {column}] = {value!r} is outside [0, 1]",
                argument=name, index=row, value=value)
        with np.errstate(divide="ignore"):
            array = np.log(array.astype(np.float64))
    return array


def as_class_labels(y: Any, n_rows: int, n_classes: int, classes: Any = None, name: str = "y"
                    ) -> tuple[np.ndarray | None, np.ndarray | None, list[Any]]:
    """Labels as class indices (int64, checked by the pass) or soft rows (n × K, float),
    and the names of the classes.

    ``y`` is 1-D: integer indices ``0..K-1`` (floats that are whole numbers too), or, with
    ``classes`` (K names, in the order of the logits' columns), values looked up among
    them; a pandas Categorical without ``classes`` is read by its K categories. ``y`` is
    2-D: soft labels, a row of K non-negative weights summing to 1 (checked by the pass).
    """
    if y is None:
        raise InputError(f"{name} is None: pass the labels", argument=name)
    names = None
    if classes is not None:
        names = _class_names(classes, n_classes)
    if library_of(y) == "pandas" and str(getattr(y, "dtype", "")) == "category" and names is None:
        categories = y.cat.categories if hasattr(y, "cat") else y.categories
        names = _class_names(list(categories), n_classes, "the categories of y")
    array = as_array(y, name)
    if array.ndim == 0 or array.ndim > 2:
        raise InputError(f"{name} must be 1-D (a class per row) or 2-D (soft labels, rows × "
                         f"classes), got shape {array.shape}", argument=name)
    if array.shape[0] != n_rows:
        raise InputError(f"{name} has {array.shape[0]} rows, logits has {n_rows}",
                         argument=name)
    if array.ndim == 2:
        if array.shape[1] != n_classes:
            raise InputError(f"{name} has {array.shape[1]} columns of soft labels, logits has "
                             f"{n_classes}", argument=name)
        if array.dtype.kind not in "biuf":
            raise InputError(f"soft labels {name} must be numeric, got dtype {array.dtype}",
                             argument=name)
        return None, _normalised_soft_rows(array), names or list(range(n_classes))
    if names is not None:
        return _look_up(array, names, name), None, names
    if array.dtype.kind in "iub":
        return array.astype(np.int64, copy=False), None, list(range(n_classes))
    if array.dtype.kind == "f":
        whole = np.isfinite(array) & (array == np.round(array))
        if not whole.all():
            row = int(np.flatnonzero(~whole)[0])
            value = float(array[row])
            raise InputError(f"label {name}[{row}] = {value!r} is not a class index 0..."
                             f"{n_classes - 1}", argument=name, index=row, value=value)
        return array.astype(np.int64), None, list(range(n_classes))
    raise InputError(f"{name} holds {array.dtype} values: pass classes=[...] (the class of "
                     f"each column of logits) to map them to classes", argument=name)


def check_weight_units(weights: np.ndarray | None) -> None:
    """Refuse weights whose sum is beyond ``[2**-500, 2**500]``.

    The multiclass passes sum ``w · p`` and ``w · log p`` in the weights' own units: where
    the weights are near the smallest normal float their products lose their digits (a
    silently wrong fit), and near the largest they overflow. Dividing every weight by one
    power of two changes no shift, scale or prior, so the message says to. A weight that is
    negative, NaN or infinite is left for the first pass to name with its row.
    """
    if weights is None or weights.size == 0:
        return
    with np.errstate(over="ignore", invalid="ignore"):
        total = float(np.sum(weights, dtype=np.float64))
        if not np.isfinite(weights).all() or (weights < 0).any():
            return
    bound = 2.0 ** ORDINARY_EXPONENT
    if total > bound or 0 < total < 1 / bound:
        largest = float(np.max(weights))
        raise InputError(f"weight sums to {total!r} (largest {largest!r}), beyond [2**-500, "
                         "2**500], where the multiclass sums lose their precision: divide "
                         "every weight by the same power of two (the fit does not change)",
                         argument="weight", value=total)


def _normalised_soft_rows(array: np.ndarray) -> np.ndarray:
    """Soft rows divided by their sums where these are within :data:`SOFT_TOLERANCE` of 1
    (a copy: the caller's array is left as it is).

    A row that sums to ``1 + ε`` adds ``ε`` times its weight to the gradient along the
    shifts' common constant, a direction the loss does not change along: Newton would
    chase it and never converge. Rows beyond the tolerance, or with NaN or negative entries,
    are left for the pass to name.
    """
    rows = np.array(array, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        totals = rows.sum(axis=1)
        near = (np.abs(totals - 1.0) <= SOFT_TOLERANCE) & (rows >= 0).all(axis=1)
    rows[near] /= totals[near, None]
    return rows


def _class_names(classes: Any, n_classes: int, what: str = "classes") -> list[Any]:
    names = np.asarray(classes).tolist() if not isinstance(classes, list) else list(classes)
    if len(names) != n_classes:
        raise InputError(f"{what} has {len(names)} names, logits has {n_classes} columns",
                         argument="classes", value=len(names))
    if len(set(map(repr, names))) != len(names):
        raise InputError(f"{what} names a class twice: {names!r}", argument="classes")
    return names


def _look_up(values: np.ndarray, names: list[Any], name: str) -> np.ndarray:
    """The index of each value among ``names``; a value that is none of them is named."""
    position = {value: i for i, value in enumerate(names)}
    if values.dtype.kind == "f" and np.isnan(values).any():
        row = int(np.flatnonzero(np.isnan(values))[0])
        raise InputError(f"{name}[{row}] is nan", argument=name, index=row)
    unique, inverse = np.unique(values, return_inverse=True)
    table = np.empty(len(unique), dtype=np.int64)
    for u, value in enumerate(unique.tolist()):
        if value not in position:
            row = int(np.flatnonzero(inverse == u)[0])
            raise InputError(f"label {name}[{row}] = {value!r} is not among the classes "
                             f"{names!r}", argument=name, index=row, value=value)
        table[u] = position[value]
    return table[inverse.reshape(-1)]


def raise_for_class_row(logits: np.ndarray, label_index: np.ndarray | None,
                        label_rows: np.ndarray | None, weights: np.ndarray | None, row: int,
                        first_row: int = 0) -> None:
    """Raise what is wrong with ``row`` (which a pass found bad): its weight, a logit, its
    label, or a ``-inf`` logit on its own class. Rows are numbered from ``first_row``."""
    where = row + first_row
    if weights is not None:
        try:
            as_weight(weights[row:row + 1], None)
        except InputError:
            value = float(weights[row])
            raise InputError(f"weight[{where}] = {value!r} must be finite and non-negative",
                             argument="weight", index=where, value=value) from None
    values = logits[row]
    for column, value in enumerate(values.tolist()):
        if value != value:
            raise InputError(f"logits[{where}, {column}] is nan", argument="logits",
                             index=where, value=value)
        if value == np.inf:
            raise InputError(f"logits[{where}, {column}] = inf: a logit must be finite, or "
                             "-inf for a class the row rules out", argument="logits",
                             index=where, value=value)
    n_classes = values.shape[0]
    if label_index is not None:
        label = int(label_index[row])
        if not 0 <= label < n_classes:
            raise InputError(f"label y[{where}] = {label} is outside the classes 0..."
                             f"{n_classes - 1}", argument="y", index=where, value=label)
        own = [label]
    elif label_rows is not None and label_rows.shape[0]:
        soft = label_rows[row]
        for column, value in enumerate(soft.tolist()):
            if not value >= 0:
                raise InputError(f"soft label y[{where}, {column}] = {value!r} must be "
                                 "non-negative", argument="y", index=where, value=value)
        total = float(np.sum(soft))
        if not abs(total - 1.0) <= SOFT_TOLERANCE:
            raise InputError(f"soft labels y[{where}] sum to {total!r}, not 1 (within "
                             f"{SOFT_TOLERANCE:g})", argument="y", index=where, value=total)
        own = [int(k) for k in np.flatnonzero(soft > 0)]
    else:
        own = []
    for column in own:
        if values[column] == -np.inf:
            raise InputError(f"logits[{where}, {column}] = -inf on the row's own class "
                             f"{column}: its loss is infinite at every recalibration",
                             argument="logits", index=where, value=-np.inf)
    if not (values > -np.inf).any():
        raise InputError(f"logits[{where}] are all -inf: the row rules out every class",
                         argument="logits", index=where, value=-np.inf)
    raise InputError(f"row {where} is invalid", index=where)  # pragma: no cover
