"""``fit``: validate, solve on a curve, and assemble the one result type."""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from typing import Any

import numpy as np

from ._result import ShiftFit
from ._sketch import ConstantCurve, ExactCurve, Prepared, Sketch, scan_totals
from ._solve import DEFAULT_TOL, ArrayCurve, Curve, Terms, pseudo_rows, solve_curve
from ._validate import (InputError, as_nonnegative_float, as_positive_int, check_columns,
                        column_roles, library_of, naming_columns)

__all__ = ["fit", "fit_frame", "fit_file", "fit_for_caller", "fit_curve", "check_options",
           "METHODS"]

METHODS = ("auto", "sketch", "newton")


class _WithPseudoRows:
    """A curve plus the two pseudo-rows: the objective that a pseudo-count asks for."""

    def __init__(self, data: Curve, pseudo: ArrayCurve) -> None:
        self._data, self._pseudo = data, pseudo
        d, p = data.totals, pseudo.totals
        # The pseudo-rows sit at the mean offset: the range and the mean stay the data's.
        self.totals = replace(d, **{
            name: getattr(d, name) + getattr(p, name)
            for name in ("n_rows", "weight_sum", "positives", "active_positives",
                         "active_negatives")})

    def evaluate(self, shift: float) -> Terms:
        return self._data.evaluate(shift) + self._pseudo.evaluate(shift)


def check_options(method: str | None, pseudo_count: Any, tol: Any, max_iter: Any
                  ) -> tuple[float, float, int]:
    """The solver's options, checked (and ``method``, unless None) before any pass over the
    data; returns ``pseudo_count``, ``tol`` (its default filled in) and ``max_iter``."""
    if method is not None and method not in METHODS:
        raise InputError(f"method = {method!r} must be one of {', '.join(map(repr, METHODS))}",
                         argument="method", value=method)
    pseudo_count = as_nonnegative_float(pseudo_count, "pseudo_count")
    tol = DEFAULT_TOL if tol is None else as_nonnegative_float(tol, "tol")
    if not tol > 0:
        raise InputError("tol must be positive", argument="tol", value=tol)
    return pseudo_count, tol, as_positive_int(max_iter, "max_iter")


def fit_curve(
    data: Curve,
    *,
    method: str,
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
    stacklevel: int = 2,
) -> ShiftFit:
    """Solve for the shift on any curve and build the :class:`ShiftFit`."""
    pseudo_count, tol, max_iter = check_options(None, pseudo_count, tol, max_iter)

    if data.totals.weight_sum == 0:
        raise InputError("weight is zero on every row", argument="weight")
    if data.totals.active_positives + data.totals.active_negatives == 0:
        raise InputError(
            "every row with positive weight has an infinite offset, so every shift fits "
            "equally well", argument="offset")
    pseudo = pseudo_rows(data.totals, pseudo_count) if pseudo_count > 0 else None
    objective: Curve = data if pseudo is None else _WithPseudoRows(data, pseudo)
    totals = objective.totals
    if totals.active_positives == 0:
        shift, status, converged, iterations = -math.inf, "all_negative", True, 0
    elif totals.active_negatives == 0:
        shift, status, converged, iterations = math.inf, "all_positive", True, 0
    else:
        solution = solve_curve(objective, tol=tol, max_iter=max_iter)
        shift, status = solution.shift, solution.status
        converged, iterations = solution.converged, solution.iterations

    at_shift = data.evaluate(shift)
    at_zero = data.evaluate(0.0)
    objective_at_shift, objective_at_zero = at_shift, at_zero
    if pseudo is not None:
        objective_at_shift = at_shift + pseudo.evaluate(shift)
        objective_at_zero = at_zero + pseudo.evaluate(0.0)
    information = objective_at_shift.hessian
    result = ShiftFit(
        shift=shift,
        status=status,
        converged=converged,
        iterations=iterations,
        n_rows=data.totals.n_rows,
        weight_sum=data.totals.weight_sum,
        positives=data.totals.positives,
        loss=at_shift.loss / data.totals.weight_sum,
        loss_at_zero=at_zero.loss / data.totals.weight_sum,
        se=1.0 / math.sqrt(information) if information > 0 else math.inf,
        pseudo_count=pseudo_count,
        method="closed_form" if status == "closed_form" else method,
        passes=data.passes,
        _objective=objective,
        _data=data,
        _objective_loss=objective_at_shift.loss,
        _objective_loss_at_zero=objective_at_zero.loss,
        # Rows with infinite offsets expect what they observe, so O - E = -gradient(0).
        _expected=data.totals.positives + at_zero.gradient,
    )
    _warn_about(result, objective_at_shift.gradient, stacklevel + 1)
    return result


def _warn_about(result: ShiftFit, gradient: float, stacklevel: int) -> None:
    if result.status in ("all_negative", "all_positive"):
        which = "0" if result.status == "all_negative" else "1"
        warnings.warn(
            f"every label is {which} (of the rows with weight and a finite offset): the "
            f"optimal shift is {result.shift}; pass pseudo_count > 0 for a finite one",
            RuntimeWarning, stacklevel=stacklevel,
        )
    elif not result.converged:
        warnings.warn(
            f"did not converge after {result.iterations} iterations; last shift "
            f"{result.shift!r}, gradient {gradient:.3g}",
            RuntimeWarning, stacklevel=stacklevel,
        )


def fit(
    y: Any,
    offset: Any = None,
    weight: Any = None,
    *,
    method: str = "auto",
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
) -> ShiftFit:
    """The constant shift of the raw scores that minimises the binary cross-entropy.

    Finds ``shift = argmin_s Σ_i w_i · BCE(y_i, offset_i + s)`` with
    ``BCE(y, z) = -y log σ(z) - (1 - y) log(1 - σ(z))``.

    Parameters
    ----------
    y : array_like, shape (n,)
        Labels in [0, 1]: bool, integer or float (soft labels allowed).
    offset : array_like of shape (n,) or float, optional
        Fixed raw scores (log-odds) that the shift is added to, e.g. a model's margin.
        ``+inf`` is allowed on a row labelled 1 and ``-inf`` on a row labelled 0 (such rows
        fit every shift perfectly); the opposite cannot be fitted and raises.
    weight : array_like, shape (n,), optional
        Non-negative frequency weights; a row of weight 0 is ignored and a row of integer
        weight ``k`` counts as ``k`` copies.
    method : {"auto", "sketch", "newton"}
        ``"sketch"``: one pass over the data fills a :class:`Sketch`, and Newton runs on its
        tables (no further pass). ``"newton"``: Newton with an exact pass over the data per
        iteration; its result keeps a reference to the data, and its profile interval makes
        a dozen or more further passes. ``"auto"`` is ``"sketch"``. A constant offset needs
        neither: one pass and the closed form.
    pseudo_count : float, default 0
        Adds one positive and one negative row, each of this weight, at the weighted mean
        offset. Any ``pseudo_count > 0`` makes the shift finite; without offsets it gives
        ``log((m + a) / (k + a))`` for ``m`` positives and ``k`` negatives.
    tol : float, optional
        Newton stops when a step is below ``tol * max(1, |shift|)`` (default 1e-14).
    max_iter : int, default 100
        The most Newton iterations.

    Returns
    -------
    ShiftFit

    Raises
    ------
    InputError
        Empty input, mismatched lengths, NaN, labels outside [0, 1], negative or all-zero
        weights, non-numeric or 2-D input, or an infinite offset that contradicts its label.

    Warns
    -----
    RuntimeWarning
        When every label is 0 or every label is 1 (the shift is ``-inf`` / ``+inf``), or when
        Newton did not converge.

    Notes
    -----
    With a constant offset ``c`` (or none, ``c = 0``) the answer is the closed form
    ``log(m / k) - c`` with ``m = Σ w y`` and ``k = Σ w (1 - y)``. Otherwise it is the root of
    the gradient ``Σ w (σ(offset + s) - y)``, found by safeguarded Newton inside the bracket
    ``[logit(ȳ) - max offset, logit(ȳ) - min offset]``. The gradient is summed by label and by
    side of ``z = 0`` (never ``Σσ - Σy``) with compensated sums, so the root is accurate to a
    few ulps. Time O(n) for one pass; memory O(offset range / width) for the sketch.

    Examples
    --------
    >>> import numpy as np, logitshift
    >>> y = np.array([0, 0, 1, 0, 1])
    >>> round(logitshift.fit(y).shift, 6)     # log(2 / 3)
    -0.405465
    >>> result = logitshift.fit(y, offset=np.array([-1.0, 0.5, 2.0, -0.3, 0.1]))
    >>> result.converged
    True
    """
    return fit_for_caller(y, offset, weight, method=method, pseudo_count=pseudo_count,
                          tol=tol, max_iter=max_iter, stacklevel=4)


def fit_for_caller(y: Any, offset: Any, weight: Any, *, stacklevel: int, method: str = "auto",
                   pseudo_count: float = 0.0, tol: float | None = None,
                   max_iter: int = 100) -> ShiftFit:
    """:func:`fit` for the package's own functions: warnings point ``stacklevel`` frames up
    from the solver (4 for a function the user calls directly)."""
    if any(library_of(values) == "dask" for values in (y, offset, weight)):
        from .dask import fit_arrays

        return fit_arrays(y, offset, weight, method=method, pseudo_count=pseudo_count,
                          tol=tol, max_iter=max_iter, _stacklevel=stacklevel)
    check_options(method, pseudo_count, tol, max_iter)
    data = Prepared.of(y, offset, weight)
    if np.ndim(data.offsets) == 0:
        curve: Curve = ConstantCurve(scan_totals(data), float(data.offsets))
    elif method == "newton":
        curve = ExactCurve(data)
    else:
        curve = Sketch._from_prepared(data)
        method = "sketch"
    return fit_curve(curve, method=method, pseudo_count=pseudo_count, tol=tol,
                     max_iter=max_iter, stacklevel=stacklevel)


def fit_frame(
    frame: Any,
    label: str,
    offset: str | None = None,
    weight: str | None = None,
    *,
    method: str = "auto",
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
) -> ShiftFit:
    """:func:`fit` on the named columns of a table.

    Parameters
    ----------
    frame : pandas or polars DataFrame, polars LazyFrame, pyarrow Table or RecordBatch, a
        mapping of column names to arrays, or a Dask DataFrame
        Only the named columns are read (a LazyFrame collects only those), without copies
        where a column holds a plain numeric buffer. A Dask DataFrame goes to
        :func:`logitshift.dask.fit_frame`: one pass, partition by partition.
    label, offset, weight : str
        Column names: the labels, and optionally the offsets and the weights.
    method, pseudo_count, tol, max_iter
        As for :func:`fit`.

    Returns
    -------
    ShiftFit

    Raises
    ------
    InputError
        A column that is not in the frame (the message lists those that are), or any error
        of :func:`fit`, prefixed by the column's name: ``column 'target': label y[7] = 2.0
        is outside [0, 1]``. Rows are numbered by position from 0, whatever the frame's index.

    Examples
    --------
    >>> import pandas as pd, logitshift
    >>> frame = pd.DataFrame({"clicked": [0, 1, 0, 0], "score": [-1.0, 0.5, 0.2, -2.0]})
    >>> result = logitshift.fit_frame(frame, label="clicked", offset="score")
    >>> result.converged
    True
    """
    if library_of(frame) == "dask":
        from . import dask

        return dask.fit_frame(frame, label, offset, weight, method=method,
                              pseudo_count=pseudo_count, tol=tol, max_iter=max_iter,
                              _stacklevel=3)
    roles, columns = column_roles(label, offset, weight)
    if hasattr(frame, "collect"):  # a polars LazyFrame: collect only the columns asked for
        check_columns(columns, frame.collect_schema().names(), "the frame")
        frame = frame.select(columns).collect()
    available = (frame.column_names if hasattr(frame, "column_names")
                 else list(getattr(frame, "columns", frame)))
    check_columns(columns, available, "the frame")
    with naming_columns(roles):
        return fit_for_caller(*(None if name is None else frame[name]
                                for name in roles.values()),
                              method=method, pseudo_count=pseudo_count, tol=tol,
                              max_iter=max_iter, stacklevel=4)


def fit_file(
    source: Any,
    label: str,
    offset: str | None = None,
    weight: str | None = None,
    *,
    batch_rows: int | None = None,
    progress: bool | None = None,
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
) -> ShiftFit:
    """:func:`fit` on columns of CSV or Parquet files of any size, in one pass.

    The rows are streamed a batch at a time through a :class:`Sketch`
    (:func:`logitshift.io.sketch_file`), so memory stays bounded whatever the size of the
    files, and standard input (``"-"``, CSV) is read once, as a pipe must be.

    Parameters
    ----------
    source : str, Path or sequence of them
        A ``.csv`` (optionally compressed) or ``.parquet`` file, ``"-"`` for CSV on standard
        input, a directory of Parquet files (a partitioned dataset), a glob pattern such as
        ``"data/*.parquet"``, or a list of these.
    label, offset, weight : str
        Column names: the labels, and optionally the offsets and the weights.
    batch_rows : int, optional
        Rows per Parquet batch (default 1,048,576).
    progress : bool, optional
        A progress line on standard error; by default only when it is a terminal.
    pseudo_count, tol, max_iter
        As for :func:`fit`.

    Returns
    -------
    ShiftFit
        With ``method="sketch"`` and ``passes=1``.

    Raises
    ------
    InputError
        Naming the file, the column and the row: a missing or unparsable cell, a NaN, a label
        outside [0, 1], a missing column, a file that is not CSV or Parquet (or truncated).
    OSError
        A file that cannot be opened.
    """
    from .io import sketch_file

    check_options(None, pseudo_count, tol, max_iter)  # before the pass, not after it
    sketch = sketch_file(source, label, offset, weight, batch_rows=batch_rows,
                         progress=progress)
    with naming_columns(column_roles(label, offset, weight)[0]):
        return sketch._solve({"pseudo_count": pseudo_count, "tol": tol, "max_iter": max_iter})
