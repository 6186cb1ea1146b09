"""The façade: ``fit``, ``fit_frame`` and ``fit_file`` pick the source that turns their input
into a curve, then hand the curve to the shift estimator."""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _arrays
from ._group_sketch import GroupSketch
from ._groups import GroupShiftFit, check_group_options, fit_group_curves
from ._report import CalibrationReport
from ._result import ShiftFit, normal_quantile
from ._shift import check_options, fit_curve
from ._sketch import Sketch
from ._slope import MAX_TRUNCATION, SlopeFit, fit_slope_curve, warn_about
from ._solve import Curve
from ._validate import (InputError, as_positive_int, as_raw_scores, check_offset_is,
                        check_se_type,
                        column_roles, library_of, naming_columns)

__all__ = ["fit", "fit_frame", "fit_file", "fit_slope", "fit_slope_frame", "fit_slope_file",
           "validate", "validate_frame", "validate_file",
           "fit_groups", "fit_groups_frame", "fit_groups_file"]


def fit(
    y: Any,
    offset: Any = None,
    weight: Any = None,
    *,
    method: str = "auto",
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
    offset_is: str = "logit",
    se_type: str = "model",
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
        a dozen or more further passes. ``"auto"`` is ``"sketch"``, unless the offsets
        occupy more than the sketch's cell budget (``Sketch.max_cells``, 65,536 cells: offsets
        spread over ±1e5 logits or more, a cell per row); then it gives up the sketch and
        takes ``"newton"``, and the result says ``method="newton"`` with that pass among its
        ``passes``. ``"sketch"`` raises there instead. A constant offset needs neither: one
        pass and the closed form.
    pseudo_count : float, default 0
        Adds one positive and one negative row, each of this weight, at the weighted mean
        offset. Any ``pseudo_count > 0`` makes the shift finite; without offsets it gives
        ``log((m + a) / (k + a))`` for ``m`` positives and ``k`` negatives.
    tol : float, optional
        Newton stops when a step is below ``tol * max(1, |shift|)`` (default 1e-14).
    max_iter : int, default 100
        The most Newton iterations.
    offset_is : {"logit", "probability"}, default "logit"
        What ``offset`` holds: raw scores (log-odds), or a model's predicted probabilities,
        turned into log-odds before the fit (0 and 1 become ``-inf`` and ``+inf``, which
        must agree with their labels).
    se_type : {"model", "robust"}, default "model"
        ``"robust"``: the sandwich (HC0) standard error, for sampling weights and soft labels
        (see :class:`ShiftFit`); the sketch then also keeps its w² tables.

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
    options = _options(method, pseudo_count, tol, max_iter, se_type)
    check_offset_is(offset_is)
    robust = se_type == "robust"
    if _in_dask(y, offset, weight):
        from . import dask

        dask.check_method(method)
        return _estimate(dask.sketch_arrays(y, offset, weight, offset_is=offset_is,
                                            robust=robust), "sketch", {}, options)
    curve, method = _arrays.curve_of(y, as_raw_scores(offset, offset_is), weight, method,
                                     robust=robust)
    return _estimate(curve, method, {}, options)


def _in_dask(*values: Any) -> bool:
    """Whether any of the arrays is a Dask collection: then the Dask source reads them."""
    return any(library_of(value) == "dask" for value in values)


def _options(method: str | None, pseudo_count: Any, tol: Any, max_iter: Any,
             se_type: Any = "model") -> dict[str, Any]:
    """The estimator's options, checked before any pass over the data."""
    check_options(method, pseudo_count, tol, max_iter)
    return {"pseudo_count": pseudo_count, "tol": tol, "max_iter": max_iter,
            "se_type": check_se_type(se_type)}


def _estimate(curve: Curve, method: str, roles: dict[str, Any],
              options: dict[str, Any]) -> ShiftFit:
    """The shift estimator on ``curve``; its errors name the columns of ``roles``."""
    with naming_columns(roles):
        return fit_curve(curve, method=method, **options)


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
    offset_is: str = "logit",
    se_type: str = "model",
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
    method, pseudo_count, tol, max_iter, offset_is, se_type
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
    options = _options(method, pseudo_count, tol, max_iter, se_type)
    check_offset_is(offset_is)
    robust = se_type == "robust"
    if library_of(frame) == "dask":
        from . import dask

        dask.check_method(method)
        roles, _ = column_roles(label, offset, weight)
        return _estimate(dask.sketch_frame(frame, label, offset, weight, offset_is=offset_is,
                                           robust=robust), "sketch", roles, options)
    roles, (y, scores, weights) = _frame_columns(frame, label, offset, weight, offset_is)
    with naming_columns(roles):
        curve, method = _arrays.curve_of(y, scores, weights, method, robust=robust)
    return _estimate(curve, method, roles, options)


def _frame_columns(frame: Any, label: Any, offset: Any, weight: Any, offset_is: str
                   ) -> tuple[dict[str, Any], list[Any]]:
    """The roles and columns of an in-memory table, the offsets as raw scores."""
    roles, (y, scores, weights) = _arrays.frame_columns(frame, label, offset, weight)
    with naming_columns(roles):
        return roles, [y, as_raw_scores(scores, offset_is), weights]


def fit_file(
    source: Any,
    label: str,
    offset: str | None = None,
    weight: str | None = None,
    *,
    batch_rows: int | None = None,
    progress: bool | None = None,
    format: str | None = None,
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
    offset_is: str = "logit",
    se_type: str = "model",
) -> ShiftFit:
    """:func:`fit` on columns of CSV or Parquet files of any size, in one pass.

    The rows are streamed a batch at a time through a :class:`Sketch`
    (:func:`logitshift.io.sketch_file`), so memory stays bounded whatever the size of the
    files, and standard input (``"-"``, CSV) is read once, as a pipe must be.

    Parameters
    ----------
    source : str, Path, binary file object or sequence of them
        A ``.csv`` (optionally compressed) or ``.parquet`` file, ``"-"`` for CSV on standard
        input, a filesystem URL (``file://``, ``s3://``, ..., or a scheme of fsspec where it
        is installed), a file object open in binary mode (``open(path, "rb")``,
        ``io.BytesIO``), a directory of Parquet files (a partitioned dataset), a glob
        pattern such as ``"data/*.parquet"``, or a list of these.
    label, offset, weight : str
        Column names: the labels, and optionally the offsets and the weights.
    batch_rows : int, optional
        Rows per Parquet batch (default 1,048,576).
    progress : bool, optional
        A progress line on standard error; by default only when it is a terminal.
    format : {"csv", "parquet"}, optional
        Where a name does not tell it; a file object without one is told by its first bytes.
    pseudo_count, tol, max_iter, offset_is, se_type
        As for :func:`fit`; probabilities become log-odds a batch at a time, as they are
        read.

    Returns
    -------
    ShiftFit
        With ``method="sketch"`` and ``passes=1``.

    Raises
    ------
    InputError
        Naming the file, the column and the row: a missing or unparsable cell, a NaN, a label
        outside [0, 1], a missing column or one whose name is used twice, a file that is
        not CSV or Parquet (or truncated), a compressed file that is corrupt.
    OSError
        A file that cannot be opened.
    """
    from .io import sketch_file

    options = _options(None, pseudo_count, tol, max_iter, se_type)
    sketch = sketch_file(source, label, offset, weight, batch_rows=batch_rows,
                         progress=progress, format=format, offset_is=offset_is,
                         robust=se_type == "robust")
    return _estimate(sketch, "sketch", column_roles(label, offset, weight)[0], options)


def fit_slope(
    y: Any,
    offset: Any,
    weight: Any = None,
    *,
    offset_is: str = "logit",
    tol: float | None = None,
    max_iter: int = 100,
    se_type: str = "model",
) -> SlopeFit:
    """Logistic recalibration: the intercept and slope of ``y ~ Bernoulli(σ(a + b · offset))``.

    This is R's ``glm(y ~ offset, family = binomial)``, fitted from one pass over the data:
    the weak calibration of van Calster's hierarchy, where ``fit`` gives the calibration in
    the large (``b = 1`` fixed).

    Parameters
    ----------
    y : array_like, shape (n,)
        Labels in [0, 1] (soft labels allowed). A Dask array goes to the Dask source (one
        pass over its chunks), as for :func:`fit`.
    offset : array_like, shape (n,)
        The model's raw scores (log-odds). ``+inf`` is allowed on a row labelled 1 and
        ``-inf`` on a row labelled 0.
    weight : array_like, shape (n,), optional
        Non-negative frequency weights.
    offset_is : {"logit", "probability"}, default "logit"
        As for :func:`fit`: ``"probability"`` reads ``offset`` as predicted probabilities.
    tol : float, optional
        Newton stops when both steps are below ``tol · max(1, |value|)`` (default 1e-14).
    max_iter : int, default 100
        The most Newton iterations.
    se_type : {"model", "robust"}, default "model"
        ``"robust"``: the sandwich (HC0) covariance, for sampling weights and soft labels
        (see :class:`SlopeFit`); the sketch then also keeps its w² tables.

    Returns
    -------
    SlopeFit

    Raises
    ------
    InputError
        As :func:`fit`, and for an offset that is not an array.

    Warns
    -----
    RuntimeWarning
        Where the fit did not converge: the offsets separate the labels, every offset is the
        same, every label is one class, or Newton stopped.

    Notes
    -----
    One pass fills a :class:`Sketch`; Newton then runs on its tables, whose sums are Taylor
    series in ``b · d`` (``d`` the offsets' remainders on the grid) with relative error about
    ``(|b| · width / 2π)^order``: below 1e-15 for ``|b| <= 1.3`` and 1e-12 for ``|b| <= 3.2``
    at the default grid. Where that bound exceeds 1e-12 at the answer, or the labels may be
    separated inside one cell, the fit is redone with exact passes over the arrays
    (``method="exact"``, a pass per iteration). Dask arrays have no such second chance: the
    fit then says ``status="beyond_sketch"`` (see :meth:`Sketch.solve_slope`).

    Examples
    --------
    >>> import numpy as np, logitshift
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.normal(0, 2, 10_000)
    >>> labels = rng.random(10_000) < 1 / (1 + np.exp(-(0.5 + 0.8 * scores)))
    >>> result = logitshift.fit_slope(labels, scores)
    >>> round(result.slope, 1), result.converged
    (0.8, True)
    """
    _slope_options(offset_is, tol, max_iter, se_type)
    robust = se_type == "robust"
    if _in_dask(y, offset, weight):
        from . import dask

        _check_scores(offset)
        return _slope_of_sketch(dask.sketch_arrays(y, offset, weight, offset_is=offset_is,
                                                   robust=robust), {}, tol, max_iter, se_type)
    scored = _arrays.scored_arrays(y, as_raw_scores(offset, offset_is), weight, robust=robust)
    return warn_about(_slope_of(scored, tol, max_iter, se_type))


def fit_slope_frame(
    frame: Any,
    label: str,
    offset: str,
    weight: str | None = None,
    *,
    offset_is: str = "logit",
    tol: float | None = None,
    max_iter: int = 100,
    se_type: str = "model",
) -> SlopeFit:
    """:func:`fit_slope` on the named columns of a table.

    Parameters
    ----------
    frame : table
        As for :func:`fit_frame`: pandas, polars, pyarrow, a mapping, or a Dask DataFrame
        (one pass over its partitions).
    label, offset, weight : str
        Column names: the labels, the raw scores (or probabilities, with
        ``offset_is="probability"``) and optionally the weights.
    offset_is, tol, max_iter, se_type
        As for :func:`fit_slope`.

    Returns
    -------
    SlopeFit

    Raises
    ------
    InputError
        As :func:`fit_frame`: errors name the column.
    """
    _slope_options(offset_is, tol, max_iter, se_type)
    _check_offset_column(offset)
    robust = se_type == "robust"
    if library_of(frame) == "dask":
        from . import dask

        roles, _ = column_roles(label, offset, weight)
        return _slope_of_sketch(dask.sketch_frame(frame, label, offset, weight,
                                                  offset_is=offset_is, robust=robust),
                                roles, tol, max_iter, se_type)
    roles, columns = _frame_columns(frame, label, offset, weight, offset_is)
    with naming_columns(roles):
        return warn_about(_slope_of(_arrays.scored_arrays(*columns, robust=robust), tol,
                                    max_iter, se_type))


def fit_slope_file(
    source: Any,
    label: str,
    offset: str,
    weight: str | None = None,
    *,
    offset_is: str = "logit",
    batch_rows: int | None = None,
    progress: bool | None = None,
    format: str | None = None,
    tol: float | None = None,
    max_iter: int = 100,
    se_type: str = "model",
) -> SlopeFit:
    """:func:`fit_slope` on columns of CSV or Parquet files of any size, in one pass.

    The rows are streamed through a :class:`Sketch` (:func:`logitshift.io.sketch_file`),
    then :meth:`Sketch.solve_slope` fits on its tables.

    Parameters
    ----------
    source, batch_rows, progress, format
        As for :func:`fit_file`.
    label, offset, weight : str
        Column names: the labels, the raw scores (or probabilities, with
        ``offset_is="probability"``, converted a batch at a time) and optionally the
        weights.
    offset_is, tol, max_iter, se_type
        As for :func:`fit_slope`.

    Returns
    -------
    SlopeFit
        With ``method="sketch"`` and ``passes=1``. There is no exact pass to fall back on:
        where the slope is too steep for the sketch's grid, ``status="beyond_sketch"``.

    Raises
    ------
    InputError, OSError
        As :func:`fit_file`.
    """
    from .io import sketch_file

    _slope_options(offset_is, tol, max_iter, se_type)
    _check_offset_column(offset)
    sketch = sketch_file(source, label, offset, weight, batch_rows=batch_rows,
                         progress=progress, format=format, offset_is=offset_is,
                         robust=se_type == "robust")
    return _slope_of_sketch(sketch, column_roles(label, offset, weight)[0], tol, max_iter,
                            se_type)


def _slope_options(offset_is: str, tol: float | None, max_iter: int, se_type: Any) -> None:
    _options(None, 0.0, tol, max_iter, se_type)
    check_offset_is(offset_is)


def _check_scores(offset: Any) -> None:
    """A slope needs offsets that vary: an array, not a constant or none."""
    if offset is None or np.ndim(offset) == 0:
        raise InputError("offset must be an array of raw scores: a recalibration slope needs "
                         "them to vary", argument="offset", value=offset)


def _check_offset_column(offset: Any) -> None:
    if offset is None:
        raise InputError("offset must name the column of raw scores: a recalibration slope "
                         "needs them", argument="offset")


def _slope_of(scored: _arrays.ScoredArrays, tol: float | None, max_iter: int,
              se_type: str) -> SlopeFit:
    """The slope from the sketch, or from exact passes where the sketch cannot vouch for
    its sums."""
    options = {"tol": tol, "max_iter": max_iter, "se_type": se_type}
    if scored.sketch is None:  # offsets beyond the cell budget
        return fit_slope_curve(scored.exact_slope_curve(), method="exact", **options)
    result = fit_slope_curve(scored.sketch, method="sketch", **options)
    if result.status == "beyond_sketch" or result.truncation > MAX_TRUNCATION:
        result = fit_slope_curve(scored.exact_slope_curve(), method="exact", **options)
    return result


def _slope_of_sketch(sketch: Sketch, roles: dict[str, Any], tol: float | None,
                     max_iter: int, se_type: str) -> SlopeFit:
    """The slope of a streamed sketch, from its tables alone (there are no rows to redo
    it from); errors about the whole name the columns of ``roles``."""
    with naming_columns(roles):
        return sketch.solve_slope(tol=tol, max_iter=max_iter, se_type=se_type)


def validate(
    y: Any,
    offset: Any,
    weight: Any = None,
    *,
    offset_is: str = "logit",
    bins: int = 10,
    level: float = 0.95,
    se_type: str = "model",
) -> CalibrationReport:
    """The calibration report of a model's scores: what R's ``rms::val.prob`` prints, and
    the calibration in the large, from one pass over the data.

    Parameters
    ----------
    y : array_like, shape (n,)
        Labels in [0, 1]. A Dask array goes to the Dask source (one pass over its chunks).
    offset : array_like, shape (n,)
        The model's raw scores (log-odds), or its predicted probabilities with
        ``offset_is="probability"`` (0 and 1 become ``-inf`` and ``+inf``, which must agree
        with their labels).
    weight : array_like, shape (n,), optional
        Non-negative frequency weights.
    offset_is : {"logit", "probability"}
    bins : int, default 10
        Bins of the calibration curve, of about equal weight.
    level : float, default 0.95
        Coverage of the curve's intervals.
    se_type : {"model", "robust"}, default "model"
        The standard errors of the shift and the slope, as for :func:`fit`.

    Returns
    -------
    CalibrationReport
        The shift (calibration in the large) and the slope (weak calibration) with their
        inference, Miller's tests, Spiegelhalter's z, the Brier score, the log loss, the
        c-statistic, the binned curve and ICI / E50 / E90.

    Notes
    -----
    One pass fills a :class:`Sketch`; every statistic but the c-statistic is a Taylor series
    on its tables (exact to rounding). In memory the c-statistic is exact (one sort of the
    rows, ``c_statistic_bound == 0``), and the slope is refitted with exact passes where the
    sketch cannot vouch for its sums (see :func:`fit_slope`). From Dask arrays, as from
    files (:func:`validate_file`), the report is :meth:`Sketch.validate`'s: the same
    numbers to rounding, but the c-statistic from the sketch's histogram of the offsets
    (sub-bins of width 2**-12), with the bound on its error in ``c_statistic_bound`` (about
    1e-5; at most 1e-4 unless the scores pile up within a few thousandths of a logit).
    """
    _report_options(offset_is, bins, level, se_type)
    robust = se_type == "robust"
    if _in_dask(y, offset, weight):
        from . import dask

        _check_scores(offset)
        return _report_of_sketch(dask.sketch_arrays(y, offset, weight, offset_is=offset_is,
                                                    robust=robust, histogram=True),
                                 {}, bins, level, se_type)
    scored = _arrays.scored_arrays(y, as_raw_scores(offset, offset_is), weight, robust=robust)
    return _report_of(scored, bins, level, se_type)


def validate_frame(
    frame: Any,
    label: str,
    offset: str,
    weight: str | None = None,
    *,
    offset_is: str = "logit",
    bins: int = 10,
    level: float = 0.95,
    se_type: str = "model",
) -> CalibrationReport:
    """:func:`validate` on the named columns of a table.

    Parameters
    ----------
    frame : table
        As for :func:`fit_frame`: pandas, polars, pyarrow, a mapping, or a Dask DataFrame
        (one pass over its partitions; the c-statistic then carries its bound).
    label, offset, weight : str
        Column names: the labels, the raw scores (or probabilities, with
        ``offset_is="probability"``) and optionally the weights.
    offset_is, bins, level, se_type
        As for :func:`validate`.

    Returns
    -------
    CalibrationReport

    Raises
    ------
    InputError
        As :func:`fit_frame`: errors name the column.

    Examples
    --------
    >>> import pandas as pd, logitshift
    >>> frame = pd.DataFrame({"died": [0, 1, 0, 0, 1, 1], "risk": [.1, .8, .3, .5, .4, .7]})
    >>> report = logitshift.validate_frame(frame, "died", "risk", offset_is="probability")
    >>> round(report.c_statistic, 4)     # 8 of the 9 pairs in order
    0.8889
    """
    _report_options(offset_is, bins, level, se_type)
    _check_offset_column(offset)
    robust = se_type == "robust"
    if library_of(frame) == "dask":
        from . import dask

        roles, _ = column_roles(label, offset, weight)
        return _report_of_sketch(dask.sketch_frame(frame, label, offset, weight,
                                                   offset_is=offset_is, robust=robust,
                                                   histogram=True), roles, bins, level,
                                 se_type)
    roles, columns = _frame_columns(frame, label, offset, weight, offset_is)
    with naming_columns(roles):
        return _report_of(_arrays.scored_arrays(*columns, robust=robust), bins, level,
                          se_type)


def validate_file(
    source: Any,
    label: str,
    offset: str,
    weight: str | None = None,
    *,
    offset_is: str = "logit",
    bins: int = 10,
    level: float = 0.95,
    batch_rows: int | None = None,
    progress: bool | None = None,
    format: str | None = None,
    se_type: str = "model",
) -> CalibrationReport:
    """:func:`validate` on columns of CSV or Parquet files of any size, or standard input,
    in one pass.

    The rows are streamed a batch at a time through a :class:`Sketch`
    (:func:`logitshift.io.sketch_file`), and :meth:`Sketch.validate` reports from its tables.

    Parameters
    ----------
    source, batch_rows, progress, format
        As for :func:`fit_file` (``"-"`` reads CSV from standard input).
    label, offset, weight : str
        Column names: the labels, the raw scores (or probabilities, with
        ``offset_is="probability"``, converted a batch at a time) and optionally the
        weights.
    offset_is, bins, level, se_type
        As for :func:`validate`.

    Returns
    -------
    CalibrationReport
        The numbers of :func:`validate` on the same rows in memory, to rounding, but for the
        c-statistic, which comes from the sketch's histogram of offsets (sub-bins of width
        2**-12): pairs of rows within one sub-bin are not ordered, and
        ``c_statistic_bound`` bounds the error that leaves (about 1e-5). The slope has no
        exact pass to fall back on: where it is too steep for the sketch's grid, its status
        is ``"beyond_sketch"``.

    Raises
    ------
    InputError, OSError
        As :func:`fit_file`.
    """
    from .io import sketch_file

    _report_options(offset_is, bins, level, se_type)
    _check_offset_column(offset)
    sketch = sketch_file(source, label, offset, weight, batch_rows=batch_rows,
                         progress=progress, format=format, offset_is=offset_is,
                         robust=se_type == "robust", histogram=True)
    return _report_of_sketch(sketch, column_roles(label, offset, weight)[0], bins, level,
                             se_type)


def _report_options(offset_is: str, bins: int, level: float, se_type: Any) -> None:
    """The report's options, checked before any pass over the data."""
    check_offset_is(offset_is)
    check_se_type(se_type)
    as_positive_int(bins, "bins")
    normal_quantile(level)


def _report_of(scored: _arrays.ScoredArrays, bins: int, level: float, se_type: str
               ) -> CalibrationReport:
    """The report of rows in memory: the exact c-statistic, and the slope refitted exactly
    where the sketch cannot vouch for it."""
    sketch = scored.sketched()  # the report's sums and curve come from the sketch's cells
    slope = warn_about(_slope_of(scored, None, 100, se_type))
    return sketch._report(slope, (scored.c_statistic(), 0.0), bins=bins, level=level,
                          se_type=se_type)


def _report_of_sketch(sketch: Sketch, roles: dict[str, Any], bins: int, level: float,
                      se_type: str) -> CalibrationReport:
    """The report of a streamed sketch, from its tables alone."""
    with naming_columns(roles):
        return sketch.validate(bins=bins, level=level, se_type=se_type)


def fit_groups(
    y: Any,
    group: Any,
    offset: Any = None,
    weight: Any = None,
    *,
    shrinkage: str | None = None,
    nagq: int = 1,
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
    levels: Any = None,
    offset_is: str = "logit",
) -> GroupShiftFit:
    """The shift of every group, and optionally the random-intercept model, from one pass.

    ``shrinkage=None``: each group's maximum-likelihood shift, ``argmin_s Σ_{i in g} w_i
    BCE(y_i, offset_i + s)``, exactly as :func:`fit` on that group's rows.
    ``shrinkage="random"``: also the random-intercept model ``y ~ Bernoulli(σ(offset + μ +
    u_g))``, ``u_g ~ N(0, τ²)``, by maximum marginal likelihood: what R's
    ``lme4::glmer(y ~ 1 + (1 | group) + offset(offset), family = binomial, nAGQ = nagq)``
    fits.

    Parameters
    ----------
    y, offset, weight
        As for :func:`fit`. Dask arrays go to :func:`logitshift.dask.fit_groups_arrays`: one
        pass over their chunks.
    group : array_like, shape (n,)
        Each row's group: integers, strings, floats, bools, a pandas Categorical, a polars or
        pyarrow dictionary column (anything hashable that sorts; keys that do not sort
        together keep their order of first appearance). With ``levels``, integer codes into
        them.
    shrinkage : {None, "random"}
    nagq : int, default 1
        ``shrinkage="random"``: 1 for the Laplace approximation, ``k > 1`` for adaptive
        Gauss-Hermite quadrature with ``k`` points per group.
    pseudo_count : float, default 0
        Added to each group's maximum-likelihood fit, as for :func:`fit` (the
        random-intercept model needs none).
    tol, max_iter
        As for :func:`fit`; ``max_iter`` also bounds the random-intercept model's Newton
        iterations.
    levels : array_like, optional
        The labels of integer codes ``0, 1, ...`` in ``group``.
    offset_is : {"logit", "probability"}, default "logit"
        As for :func:`fit`.

    Returns
    -------
    GroupShiftFit

    Raises
    ------
    InputError
        Any error of :func:`fit`; a missing or NaN group (naming the row), a 2-D group
        column or one of another length, a code outside ``levels``.

    Warns
    -----
    RuntimeWarning
        Once, counting the groups whose labels are all 0 or all 1 (their shift is
        ``∓inf``); once for groups that did not converge.

    Notes
    -----
    One pass fills a :class:`~logitshift._group_sketch.GroupSketch`, the Taylor tables of
    :class:`Sketch` keyed by (group, cell); every group's curve comes from its own rows of
    them. Per-group shifts are found by the shift's Newton, all groups at once. The random
    intercepts integrate each group on its own curve: its mode by safeguarded Newton, its
    curvature from the curve's Hessian; ``(μ, log τ)`` by Newton with difference
    derivatives and a line search.

    Examples
    --------
    >>> import numpy as np, logitshift
    >>> rng = np.random.default_rng(0)
    >>> group = rng.integers(0, 5, 2000)
    >>> y = rng.random(2000) < 1 / (1 + np.exp(-(group - 2) / 2))
    >>> result = logitshift.fit_groups(y, group)
    >>> result.groups.tolist(), bool(result.shift[0] < result.shift[4])
    ([0, 1, 2, 3, 4], True)
    """
    options = check_group_options(shrinkage, nagq, pseudo_count, tol, max_iter)
    check_offset_is(offset_is)
    if _in_dask(y, group, offset, weight):
        from . import dask

        return _estimate_groups(dask.sketch_groups_arrays(y, group, offset, weight,
                                                          levels=levels, offset_is=offset_is),
                                {}, options)
    sketch = GroupSketch().update(y, group, as_raw_scores(offset, offset_is), weight,
                                  levels=levels)
    return _estimate_groups(sketch, {}, options)


def _estimate_groups(sketch: GroupSketch, roles: dict[str, Any], options: dict[str, Any]
                     ) -> GroupShiftFit:
    """The per-group estimator on ``sketch``; its errors about the whole (no rows, no
    weight) name the columns of ``roles``."""
    with naming_columns(roles):
        return fit_group_curves(sketch, **options)


def fit_groups_frame(
    frame: Any,
    label: str,
    group: str,
    offset: str | None = None,
    weight: str | None = None,
    *,
    shrinkage: str | None = None,
    nagq: int = 1,
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
    levels: Any = None,
    offset_is: str = "logit",
) -> GroupShiftFit:
    """:func:`fit_groups` on the named columns of a table.

    Parameters
    ----------
    frame : table
        As for :func:`fit_frame`: a pandas or polars DataFrame, a polars LazyFrame, a
        pyarrow Table or RecordBatch, a mapping of names to arrays, or a Dask DataFrame
        (:func:`logitshift.dask.fit_groups_frame`: one pass, partition by partition).
    label, group, offset, weight : str
        Column names: the labels, the groups, and optionally the offsets and the weights.
        The group column may hold any labels :func:`fit_groups` takes, a pandas
        categorical or a polars or pyarrow dictionary column among them.
    shrinkage, nagq, pseudo_count, tol, max_iter, levels, offset_is
        As for :func:`fit_groups`.

    Returns
    -------
    GroupShiftFit

    Raises
    ------
    InputError
        A column that is not in the frame (the message lists those that are), or any error
        of :func:`fit_groups`, prefixed by the column's name: ``column 'country':
        group[7] is missing: every row needs a group``. Rows are numbered by position from
        0, whatever the frame's index.

    Examples
    --------
    >>> import pandas as pd, logitshift
    >>> frame = pd.DataFrame({"clicked": [0, 1, 0, 1, 1, 0], "site": list("aabbcc"),
    ...                       "score": [-1.0, 0.5, 0.2, -2.0, 0.1, 0.3]})
    >>> logitshift.fit_groups_frame(frame, "clicked", "site", "score").groups.tolist()
    ['a', 'b', 'c']
    """
    options = check_group_options(shrinkage, nagq, pseudo_count, tol, max_iter)
    check_offset_is(offset_is)
    if library_of(frame) == "dask":
        from . import dask

        roles, _ = column_roles(label, offset, weight, group=group)
        return _estimate_groups(dask.sketch_groups_frame(frame, label, group, offset, weight,
                                                         levels=levels, offset_is=offset_is),
                                roles, options)
    roles, (y, groups, scores, weights) = _arrays.frame_columns(frame, label, offset, weight,
                                                                group=group)
    with naming_columns(roles):
        sketch = GroupSketch().update(y, groups, as_raw_scores(scores, offset_is), weights,
                                      levels=levels)
    return _estimate_groups(sketch, roles, options)


def fit_groups_file(
    source: Any,
    label: str,
    group: str,
    offset: str | None = None,
    weight: str | None = None,
    *,
    batch_rows: int | None = None,
    progress: bool | None = None,
    format: str | None = None,
    offset_is: str = "logit",
    shrinkage: str | None = None,
    nagq: int = 1,
    pseudo_count: float = 0.0,
    tol: float | None = None,
    max_iter: int = 100,
) -> GroupShiftFit:
    """:func:`fit_groups` on columns of CSV or Parquet files of any size, in one pass.

    The rows are streamed a batch at a time into a
    :class:`~logitshift._group_sketch.GroupSketch` (:func:`logitshift.io.sketch_groups_file`),
    so memory stays a few batches and the sketch, whatever the size of the files, and
    standard input (``"-"``, CSV) is read once.

    Parameters
    ----------
    source, batch_rows, progress, format
        As for :func:`fit_file`.
    label, offset, weight : str
        Column names, as for :func:`fit_file`.
    group : str
        The column of groups. Its cells are labels, not numbers: a CSV column is read as
        integers (int64) or booleans where its first rows (the first MB) hold only those,
        and as text, exactly as written, otherwise (decimals and larger integers too, so
        that no two labels round to one; an empty, ``NA`` or ``null`` cell is missing); a
        Parquet column in its own type, dictionary (categorical) columns included.
    offset_is
        As for :func:`fit_file`.
    shrinkage, nagq, pseudo_count, tol, max_iter
        As for :func:`fit_groups`.

    Returns
    -------
    GroupShiftFit
        The result of :func:`fit_groups` on the same rows in memory, to rounding.

    Raises
    ------
    InputError
        Naming the file, the column and the row, as :func:`fit_file` does: a missing group
        reads ``'a.csv': column 'country': group[7] is missing: every row needs a group``;
        a CSV group cell that is not of the type of the column's first rows is named too.
    OSError
        A file that cannot be opened.
    """
    from .io import sketch_groups_file

    options = check_group_options(shrinkage, nagq, pseudo_count, tol, max_iter)
    roles, _ = column_roles(label, offset, weight, group=group)
    sketch = sketch_groups_file(source, label, group, offset, weight, batch_rows=batch_rows,
                                progress=progress, format=format, offset_is=offset_is)
    return _estimate_groups(sketch, roles, options)
