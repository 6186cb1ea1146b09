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

__all__ = ["sigmoid", "softplus", "loss", "gradient", "hessian", "sigmoid_abs", "sigmoid_pair", "times",
           "spline_basis", "spline_terms", "spline_cell_polynomials"]


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


def spline_basis(x: np.ndarray, knots: np.ndarray, derivative: int = 0) -> np.ndarray:
    """Harrell's restricted cubic spline basis of ``x``, as ``rms::rcs`` (``Hmisc::rcspline.eval``
    with ``norm = 2``) builds it, with a column of ones first: shape ``(n, K)`` for ``K``
    knots ``t_1 < ... < t_K``.

    Columns ``1, x, X_1, ..., X_{K-2}`` with::

        X_j = [(x - t_j)_+^3 - (x - t_{K-1})_+^3 (t_K - t_j) / (t_K - t_{K-1})
               + (x - t_K)_+^3 (t_{K-1} - t_j) / (t_K - t_{K-1})] / (t_K - t_1)^2

    cubic between the knots, linear beyond the outer ones. Written term by term as R writes
    it, so that the numbers agree with R's to rounding. ``derivative`` (0, 1 or 2): the
    columns' first or second derivatives in ``x`` instead.
    """
    x = np.asarray(x, dtype=np.float64)
    t = np.asarray(knots, dtype=np.float64)
    k = t.size
    norm = (t[-1] - t[0]) ** 2

    def cube(knot: float) -> np.ndarray:  # (x - knot)_+^3, or its derivative
        gap = np.maximum(x - knot, 0.0)
        return (gap ** 3, 3.0 * gap ** 2, 6.0 * gap)[derivative]

    columns = [(np.ones_like(x), np.zeros_like(x), np.zeros_like(x))[derivative],
               (x, np.ones_like(x), np.zeros_like(x))[derivative]]
    last, outer = cube(t[-2]), cube(t[-1])
    span = t[-1] - t[-2]
    for j in range(k - 2):
        columns.append((cube(t[j]) - last * (t[-1] - t[j]) / span
                        + outer * (t[-2] - t[j]) / span) / norm)
    return np.stack(columns, axis=1)


def spline_terms(y: np.ndarray, x: np.ndarray, weight: np.ndarray | None, knots: np.ndarray,
                 coefficients: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """The loss ``Σ w BCE(y, g(x))`` of the spline ``g = B(x) β`` (:func:`spline_basis`), its
    gradient ``Bᵀ w (σ(g) - y)`` (shape ``(K,)``) and Hessian ``Bᵀ diag(w σ(g) σ(-g)) B``
    (shape ``(K, K)``), row by row: the oracle of the sketch's spline sums."""
    y = np.asarray(y, dtype=np.float64)
    w = np.ones_like(y) if weight is None else np.asarray(weight, dtype=np.float64)
    basis = spline_basis(x, knots)
    g = basis @ np.asarray(coefficients, dtype=np.float64)
    up, down = sigmoid_pair(g)
    value = float(np.sum(times(w * (1.0 - y), softplus(g)) + times(w * y, softplus(-g))))
    residual = w * ((1.0 - y) * up - y * down)
    return value, basis.T @ residual, (basis * (w * up * down)[:, None]).T @ basis


def spline_cell_polynomials(centres: np.ndarray, knots: np.ndarray) -> np.ndarray:
    """Each basis function of :func:`spline_basis` as a cubic in ``d = x - c`` within the cell
    of centre ``c``: shape ``(cells, K, 4)``, the coefficients of ``d^0 .. d^3``.

    Valid where no knot lies strictly inside a cell (every knot on a cell edge), so that
    each ``(x - t)_+^3`` is either 0 or ``Σ_i C(3, i) (c - t)^(3 - i) d^i`` over the whole
    cell.
    """
    c = np.asarray(centres, dtype=np.float64)
    t = np.asarray(knots, dtype=np.float64)
    k = t.size
    out = np.zeros((c.size, k, 4))
    out[:, 0, 0] = 1.0
    out[:, 1, 0], out[:, 1, 1] = c, 1.0

    def cube(knot: float) -> np.ndarray:  # (x - knot)_+^3 by power of d
        gap = np.where(c > knot, c - knot, 0.0)
        above = (c > knot).astype(np.float64)
        return np.stack([gap ** 3, 3.0 * gap ** 2, 3.0 * gap, above], axis=1)

    norm = (t[-1] - t[0]) ** 2
    span = t[-1] - t[-2]
    last, outer = cube(t[-2]), cube(t[-1])
    for j in range(k - 2):
        out[:, 2 + j] = (cube(t[j]) - last * (t[-1] - t[j]) / span
                         + outer * (t[-2] - t[j]) / span) / norm
    return out
