"""Binary cross-entropy in raw-score space: the numpy reference.

With ``z`` the raw score (log-odds) and ``y`` in [0, 1]::

    loss(y, z)     = (1 - y) * softplus(z) + y * softplus(-z)
    gradient(y, z) = (1 - y) * sigmoid(z) - y * sigmoid(-z)      # d loss / dz
    hessian(z)     = sigmoid(z) * sigmoid(-z)                    # d2 loss / dz2

These are algebraically the textbook ``-y log s - (1 - y) log(1 - s)`` with ``s = sigmoid(z)``,
``s - y`` and ``s (1 - s)``, but never form ``log(s)`` or ``1 - s``: every term is finite and
accurate to a few ulps for any finite ``z`` (and for infinite ``z`` whenever the loss is).
Splitting the gradient by label keeps ``sum(gradient)`` accurate when nearly every
probability is close to 0 or 1.

The per-row functions here are the oracle that the solvers and the fast kernels are tested
against; they compute in float64 whatever the input precision.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .validate import InputError, as_labels, as_numeric, as_weight

__all__ = ["sigmoid", "softplus", "loss", "gradient", "hessian", "sigmoid_abs", "sigmoid_pair", "times"]


def _as_raw(raw: Any, name: str = "raw") -> np.ndarray:
    """Raw scores as float64, any shape; NaN refused (every function of it would be NaN)."""
    array = as_numeric(raw, name, one_dimensional=False).astype(np.float64, copy=False)
    nan = np.isnan(array).ravel()
    if nan.any():
        i = int(np.flatnonzero(nan)[0])
        raise InputError(f"{name}[{i}] is nan", argument=name, index=i, value=math.nan)
    return array


def _broadcast(**arrays: np.ndarray) -> None:
    """Refuse arrays that do not broadcast against each other, naming their shapes."""
    try:
        np.broadcast_shapes(*(array.shape for array in arrays.values()))
    except ValueError:
        shapes = ", ".join(f"{name} has shape {array.shape}" for name, array in arrays.items())
        last = list(arrays)[-1]
        raise InputError(f"{last} does not match the others: {shapes}", argument=last
                         ) from None


def sigmoid_abs(z: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """``(sigmoid(|z|), sigmoid(-|z|))`` from a single ``exp`` that cannot overflow."""
    tail = np.exp(-np.abs(z))
    near = 1.0 / (1.0 + tail)  # in [1/2, 1]
    return near, tail * near  # the second in [0, 1/2]


def sigmoid_pair(z: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
    """``(sigmoid(z), sigmoid(-z))``, each accurate to ulps."""
    near, far = sigmoid_abs(z)
    positive = z >= 0
    return np.where(positive, near, far), np.where(positive, far, near)


def sigmoid(raw: Any) -> np.ndarray:
    """The logistic function ``1 / (1 + exp(-raw))``, overflow-free, as float64.

    Parameters
    ----------
    raw : array_like
        Raw scores (log-odds), any shape.

    Returns
    -------
    ndarray
        ``sigmoid(raw)``, the same shape, in [0, 1].
    """
    return sigmoid_pair(_as_raw(raw))[0]


def softplus(z: np.ndarray | float) -> np.ndarray:
    """``log(1 + exp(z))`` without overflow: ``max(z, 0) + log1p(exp(-|z|))``."""
    return np.maximum(z, 0.0) + np.log1p(np.exp(-np.abs(z)))


def times(coefficient: np.ndarray, term: np.ndarray) -> np.ndarray:
    """``coefficient * term`` with ``0 * inf = 0``: a row with no weight on a term has none."""
    with np.errstate(invalid="ignore"):
        return np.where(coefficient > 0, coefficient * term, 0.0)


def loss(y: Any, raw: Any, weight: Any = None) -> np.ndarray:
    """Per-row binary cross-entropy ``w * [(1 - y) softplus(raw) + y softplus(-raw)]``.

    Parameters
    ----------
    y : array_like
        Labels in [0, 1]: bool, integer or float (soft labels allowed).
    raw : array_like
        Raw scores (log-odds), broadcastable against ``y``.
    weight : array_like, optional
        Non-negative row weights, broadcastable against ``y``. A row of zero weight has
        zero loss, even where its unweighted loss is infinite.

    Returns
    -------
    ndarray of float64
        The loss of each row, in nats. Finite for every finite ``raw``; ``inf`` only for an
        infinite ``raw`` that contradicts its label.

    Raises
    ------
    InputError
        A NaN raw score (``raw[i] is nan``), ``y``, ``raw`` and ``weight`` of shapes that do
        not broadcast (each shape named), a label outside [0, 1], a negative, NaN or infinite
        weight.
    """
    labels = as_labels(y, "y", one_dimensional=False).astype(np.float64, copy=False)
    z = _as_raw(raw)
    weights = None if weight is None else as_weight(weight, None).astype(np.float64,
                                                                        copy=False)
    _broadcast(y=labels, raw=z, **({} if weights is None else {"weight": weights}))
    per_row = times(1.0 - labels, softplus(z)) + times(labels, softplus(-z))
    if weights is None:
        return per_row
    return times(weights, per_row)


def gradient(y: Any, raw: Any) -> np.ndarray:
    """Per-row derivative of the loss in the raw score: ``(1 - y) sigmoid(raw) - y sigmoid(-raw)``.

    Equal to ``sigmoid(raw) - y``, but computed from the two label parts so that a sum over
    rows keeps its accuracy when the probabilities are close to 0 or 1.
    """
    labels = as_labels(y, "y", one_dimensional=False).astype(np.float64, copy=False)
    z = _as_raw(raw)
    _broadcast(y=labels, raw=z)
    up, down = sigmoid_pair(z)
    return (1.0 - labels) * up - labels * down


def hessian(raw: Any) -> np.ndarray:
    """Per-row second derivative of the loss in the raw score: ``sigmoid(raw) sigmoid(-raw)``.

    It does not depend on the label.
    """
    up, down = sigmoid_pair(_as_raw(raw))
    return up * down
