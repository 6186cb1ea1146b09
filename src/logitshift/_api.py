"""The façade: every public function runs one estimator on one source, through one table.

A public function checks its options, then :func:`pick` chooses the source that reads its
input (:data:`SOURCES`: by the form the function takes, then by the input's type), and
:func:`run` asks that source for the summary the estimator needs and hands it to the
estimator (:data:`SHIFT`, :data:`SLOPE`, :data:`REPORT`, :data:`GROUPS`). A source knows
nothing of the estimators, nor an estimator of the sources: a new source is one entry of
:data:`SOURCES`, a new estimator one :class:`Estimator` and its public functions.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._core.class_input import check_logits_is
from ._core.kernels import M_LOSS
from ._core.softmax import brier_score, classwise_ece, log_softmax, top_label_ece
from ._core.validate import (InputError, as_bool, as_positive_int, check_offset_is,
                             check_se_type, library_of, naming_columns)
from ._estimators.curve import (SmoothCalibrationCurve, check_curve_options, fit_loess,
                                fit_spline)
from ._estimators.decision import DecisionCurve, check_thresholds, decision_curve_of
from ._estimators.groups import GroupShiftFit, check_group_options, fit_group_curves
from ._estimators.multiclass import (MulticlassFit, MulticlassMetrics,
                                     check_multiclass_options, fit_softmax)
from ._estimators.prior_shift import PriorShiftFit, as_source_priors, fit_priors
from ._estimators.report import CalibrationReport
from ._estimators.result import ShiftFit, normal_quantile
from ._estimators.shift import check_options, fit_curve
from ._estimators.slope import SlopeFit
from ._summary.chunks import Needs
from ._summary.memory import Rows
from ._summary.multiclass_rows import ClassRows

__all__ = ["fit", "fit_frame", "fit_file", "fit_slope", "fit_slope_frame", "fit_slope_file",
           "validate", "validate_frame", "validate_file",
           "decision_curve", "decision_curve_frame", "decision_curve_file",
           "fit_groups", "fit_groups_frame", "fit_groups_file",
           "calibration_curve", "calibration_curve_frame", "calibration_curve_file",
           "fit_multiclass", "fit_multiclass_frame", "fit_prior_shift", "fit_prior_shift_frame",
           "multiclass_metrics",
           "Estimator", "SHIFT", "SLOPE", "REPORT", "DECISION", "CURVE", "GROUPS", "MULTICLASS",
           "PRIOR_SHIFT", "SOURCES", "pick", "run"]


# -- the sources ------------------------------------------------------------------------------

def _is_dask_arrays(columns: Mapping[str, Any]) -> bool:
    return any(library_of(value) == "dask" for value in columns.values())


def _is_dask_frame(frame: Any) -> bool:
    return library_of(frame) == "dask"


def _is_spark_frame(frame: Any) -> bool:
    return library_of(frame) == "pyspark"


def _is_dataset(data: Any) -> bool:
    if type(data).__module__ != "pyarrow._dataset":
        return False
    import pyarrow.dataset as ds

    return isinstance(data, (ds.Dataset, ds.Scanner))


def _is_sql(data: Any) -> bool:
    """A DuckDB relation, or the table of :func:`logitshift.sql.table`."""
    if type(data).__module__ == "logitshift._sources.sql":
        return True
    return library_of(data) in ("duckdb", "_duckdb") and hasattr(data, "query")


#: The sources, by the form in which a public function takes its input: its columns as
#: values (``"arrays"``), a table and column names (``"table"``), or files and column names
#: (``"files"``). Within a form, the first source whose test accepts the input reads it;
#: each is a module and a class in it, imported only when chosen (Dask and Spark are
#: optional).
SOURCES: dict[str, list[tuple[Callable[[Any], bool], str, str]]] = {
    "arrays": [(_is_dask_arrays, "_sources.dask", "DaskArrays"),
               (lambda columns: True, "_sources.arrays", "Arrays")],
    "table": [(_is_dask_frame, "_sources.dask", "DaskFrame"),
              (_is_spark_frame, "_sources.spark", "SparkFrame"),
              (_is_dataset, "_sources.dataset", "ArrowDataset"),
              (_is_sql, "_sources.sql", "SqlTable"),
              (lambda frame: True, "_sources.arrays", "Table")],
    "files": [(_is_dataset, "_sources.dataset", "ArrowDataset"),
              (lambda source: True, "_sources.files", "Files")],
    # The multiclass fits: n × K logits given as values, or named columns of a table.
    "class_arrays": [(lambda columns: True, "_sources.arrays", "ClassArrays")],
    "class_table": [(lambda frame: True, "_sources.arrays", "ClassTable")],
}


def pick(form: str, data: Any, *arguments: Any, offset_is: str = "logit",
         **reading: Any) -> Any:
    """The source of :data:`SOURCES` that reads ``data`` in ``form``, made with
    ``arguments`` (the column names, for tables and files) and ``reading``."""
    check_offset_is(offset_is)
    for accepts, module, name in SOURCES[form]:
        if accepts(data):
            kind = getattr(importlib.import_module(f".{module}", __package__), name)
            return kind(data, *arguments, offset_is=offset_is, **reading)
    raise AssertionError(f"no source reads {form}")  # pragma: no cover - the last accepts all


def group_names(label: Any, group: Any, offset: Any, weight: Any) -> dict[str, Any]:
    """The roles of a per-group fit's named columns; the group column is required."""
    if group is None:
        raise InputError("group must name a column, got None: a per-group fit needs one",
                         argument="group", value=group)
    return {"y": label, "group": group, "offset": offset, "weight": weight}


# -- the estimators ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Estimator:
    """An estimator as the façade runs it: what it needs of a source, given its options,
    and how it turns the source's summary into its one result.

    ``finish`` takes :class:`~logitshift._summary.memory.Rows` from a source that keeps its
    rows in memory, a sketch from any other: both answer ``solve_slope`` and ``validate``
    (rows in memory with the exact refit and c-statistic), and the shift asks the rows for
    the curve its method calls for.
    """

    needs: Callable[[Mapping[str, Any]], Needs]
    finish: Callable[[Any, Mapping[str, Any]], Any]


def run(estimator: Estimator, options: Mapping[str, Any], source: Any) -> Any:
    """``estimator`` on the summary of ``source``; errors name the source's columns."""
    summary = source.summary(estimator.needs(options))
    with naming_columns(source.roles):
        return estimator.finish(summary, options)


def shift_options(method: str | None, pseudo_count: Any, tol: Any, max_iter: Any,
                  se_type: Any) -> dict[str, Any]:
    """The shift's options, checked before any pass over the data."""
    check_options(method, pseudo_count, tol, max_iter)
    return {"method": method, "pseudo_count": pseudo_count, "tol": tol, "max_iter": max_iter,
            "se_type": check_se_type(se_type)}


def _finish_shift(summary: Any, options: Mapping[str, Any]) -> ShiftFit:
    if isinstance(summary, Rows):
        curve, method = summary.curve(options["method"])
    else:
        curve, method = summary, "sketch"
    return fit_curve(curve, method=method, pseudo_count=options["pseudo_count"],
                     tol=options["tol"], max_iter=options["max_iter"],
                     se_type=options["se_type"])


SHIFT = Estimator(
    needs=lambda options: Needs(robust=options["se_type"] == "robust",
                                passes=options["method"] == "newton"),
    finish=_finish_shift)


def slope_options(tol: Any, max_iter: Any, se_type: Any) -> dict[str, Any]:
    """The slope's options, checked before any pass over the data."""
    check_options(None, 0.0, tol, max_iter)
    return {"tol": tol, "max_iter": max_iter, "se_type": check_se_type(se_type)}


SLOPE = Estimator(
    needs=lambda options: Needs(robust=options["se_type"] == "robust", scores=True),
    finish=lambda summary, options: summary.solve_slope(**options))


def report_options(bins: Any, level: Any, se_type: Any, decision: Any = False,
                   thresholds: Any = None, curve: Any = None,
                   offset_is: str = "logit") -> dict[str, Any]:
    """The report's options, checked before any pass over the data."""
    check_se_type(se_type)
    as_positive_int(bins, "bins")
    normal_quantile(level)
    smooth = None if curve is None else curve_options(curve, 5, level, 1000, 0, offset_is)
    return {"bins": bins, "level": level, "se_type": se_type, "curve": smooth,
            # Thresholds given ask for the curve at them, as --thresholds does on the CLI.
            "thresholds": check_thresholds(thresholds)
            if as_bool(decision, "decision") or thresholds is not None else None}


def _finish_report(summary: Any, options: Mapping[str, Any]) -> CalibrationReport:
    report = summary.validate(bins=options["bins"], level=options["level"],
                              se_type=options["se_type"])
    if options["curve"] is not None:
        report = replace(report, smooth_curve=_finish_curve(summary, options["curve"]))
    if options["thresholds"] is not None:
        slope = report.slope  # the decision curve recalibrates with the report's own fits
        report = replace(report, decision=decision_curve_of(
            summary, options["thresholds"], shift=report.shift.shift,
            line=(slope.intercept, slope.slope, slope.status),
            exact=isinstance(summary, Rows)))
    return report


def _report_needs(options: Mapping[str, Any]) -> Needs:
    loess = options["curve"] is not None and options["curve"]["method"] == "loess"
    return Needs(robust=options["se_type"] == "robust", histogram=True, scores=True,
                 rows="curve = 'loess'" if loess else "")


REPORT = Estimator(needs=_report_needs, finish=_finish_report)


def decision_options(thresholds: Any, recalibrate: Any) -> dict[str, Any]:
    """The decision curve's options, checked before any pass over the data."""
    return {"thresholds": check_thresholds(thresholds),
            "recalibrate": as_bool(recalibrate, "recalibrate")}


def _finish_decision(summary: Any, options: Mapping[str, Any]) -> DecisionCurve:
    shift = line = None
    if options["recalibrate"]:
        shift = summary.solve().shift
        slope = summary.solve_slope()
        line = (slope.intercept, slope.slope, slope.status)
    return decision_curve_of(summary, options["thresholds"], shift=shift, line=line,
                             exact=isinstance(summary, Rows))


DECISION = Estimator(needs=lambda options: Needs(histogram=True, scores=True),
                     finish=_finish_decision)


def curve_options(method: Any, knots: Any, level: Any, draws: Any, seed: Any,
                  offset_is: str) -> dict[str, Any]:
    """The smooth curve's options, checked before any pass over the data."""
    return {**check_curve_options(method, knots, level, draws, seed), "offset_is": offset_is}


def _finish_curve(summary: Any, options: Mapping[str, Any]) -> SmoothCalibrationCurve:
    if options["method"] == "loess":
        labels, offsets, weights = summary.labelled_rows()
        return fit_loess(labels, offsets, weights, n_rows=labels.shape[0],
                         offset_is=options["offset_is"], level=options["level"])
    return fit_spline(summary.spline(), **options)


CURVE = Estimator(
    needs=lambda options: Needs(histogram=True, scores=True,
                                rows="method = 'loess'" if options["method"] == "loess"
                                else ""),
    finish=_finish_curve)


GROUPS = Estimator(needs=lambda options: Needs(groups=True),
                   finish=lambda summary, options: fit_group_curves(summary, **options))


def multiclass_options(method: Any, pseudo_count: Any, tol: Any, max_iter: Any, solver: Any,
                       logits_is: Any) -> dict[str, Any]:
    """The multiclass fit's options, checked before any pass over the data."""
    options = check_multiclass_options(method, pseudo_count, tol, max_iter, solver)
    options["logits_is"] = check_logits_is(logits_is)
    return options


MULTICLASS = Estimator(
    needs=lambda options: Needs(classes=True, normalise=options["method"] == "vector"),
    finish=lambda summary, options: fit_softmax(summary, classes=summary.classes, **options))


def prior_shift_options(source_priors: Any, tol: Any, max_iter: Any, logits_is: Any
                        ) -> dict[str, Any]:
    """The prior-shift fit's options, checked before any pass (the priors' length is
    checked against the logits once they are read)."""
    check_multiclass_options("shift", 0.0, tol, max_iter)
    if source_priors is None:
        as_source_priors(None, 0)  # refuses, saying why
    return {"source_priors": source_priors, "tol": tol, "max_iter": max_iter,
            "logits_is": check_logits_is(logits_is)}


def _finish_prior_shift(rows: ClassRows, options: Mapping[str, Any]) -> PriorShiftFit:
    priors = options["source_priors"]
    calibration = priors if isinstance(priors, MulticlassFit) else None
    if calibration is not None:
        if calibration.n_classes != rows.n_classes:
            raise InputError(f"source_priors is a fit of {calibration.n_classes} classes, the "
                             f"logits have {rows.n_classes}", argument="source_priors")
        if rows.binary and calibration.logits_is == "probability":
            raise InputError("a single column of scores cannot go through a fit made on "
                             "probabilities: pass both columns", argument="logits")
        priors = calibration.observed / calibration.weight_sum
        rows = ClassRows(calibration._recalibrate(rows.logits), None, None, rows.weights,
                         classes=rows.classes, binary=rows.binary)
    source = as_source_priors(priors, rows.n_classes)
    classes = rows.classes or (calibration.classes if calibration is not None else None)
    return fit_priors(rows, source, tol=options["tol"], max_iter=options["max_iter"],
                      classes=classes, calibration=calibration,
                      logits_is=options["logits_is"], binary=rows.binary)


PRIOR_SHIFT = Estimator(needs=lambda options: Needs(classes=True), finish=_finish_prior_shift)


# -- the public functions ---------------------------------------------------------------------

def fit(y: Any, offset: Any = None, weight: Any = None, *, method: str = "auto",
        pseudo_count: float = 0.0, tol: float | None = None, max_iter: int = 100,
        offset_is: str = "logit", se_type: str = "model") -> ShiftFit:
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
        The shift with its standard error and status; its methods give the intervals, the
        likelihood-ratio test and O/E.

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
    return run(SHIFT, shift_options(method, pseudo_count, tol, max_iter, se_type),
               pick("arrays", {"y": y, "offset": offset, "weight": weight},
                    offset_is=offset_is))


def fit_frame(frame: Any, label: str, offset: str | None = None, weight: str | None = None, *,
              method: str = "auto", pseudo_count: float = 0.0, tol: float | None = None,
              max_iter: int = 100, offset_is: str = "logit", se_type: str = "model") -> ShiftFit:
    """:func:`fit` on the named columns of a table.

    Parameters
    ----------
    frame : pandas or polars DataFrame, polars LazyFrame, pyarrow Table or RecordBatch, a
        mapping of column names to arrays, a Dask DataFrame, or a pyarrow Dataset or Scanner
        Only the named columns are read (a LazyFrame collects only those), without copies
        where a column holds a plain numeric buffer. A Dask DataFrame goes to
        :func:`logitshift.dask.fit_frame`: one pass, partition by partition; a pyarrow
        Dataset or Scanner is scanned a batch at a time, as :func:`fit_file` scans it.
    label, offset, weight : str
        Column names: the labels, and optionally the offsets and the weights.
    method, pseudo_count, tol, max_iter, offset_is, se_type
        As for :func:`fit`.

    Returns
    -------
    ShiftFit
        As :func:`fit` gives on the same columns as arrays.

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
    return run(SHIFT, shift_options(method, pseudo_count, tol, max_iter, se_type),
               pick("table", frame, {"y": label, "offset": offset, "weight": weight},
                    offset_is=offset_is))


def fit_file(source: Any, label: str, offset: str | None = None, weight: str | None = None, *,
             batch_rows: int | None = None, progress: bool | None = None,
             format: str | None = None, pseudo_count: float = 0.0, tol: float | None = None,
             max_iter: int = 100, offset_is: str = "logit", se_type: str = "model") -> ShiftFit:
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
        pattern such as ``"data/*.parquet"``, or a list of these; or a
        ``pyarrow.dataset.Dataset`` or ``Scanner`` (its partitioning and filters apply; only
        the named columns are scanned, a batch at a time).
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
    return run(SHIFT, shift_options(None, pseudo_count, tol, max_iter, se_type),
               pick("files", source, {"y": label, "offset": offset, "weight": weight},
                    offset_is=offset_is, batch_rows=batch_rows, progress=progress,
                    format=format))


def fit_slope(y: Any, offset: Any, weight: Any = None, *, offset_is: str = "logit",
              tol: float | None = None, max_iter: int = 100, se_type: str = "model") -> SlopeFit:
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
        The intercept and slope with their covariance and status; ``confint`` gives their
        intervals.

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
    return run(SLOPE, slope_options(tol, max_iter, se_type),
               pick("arrays", {"y": y, "offset": offset, "weight": weight},
                    offset_is=offset_is))


def fit_slope_frame(frame: Any, label: str, offset: str, weight: str | None = None, *,
                    offset_is: str = "logit", tol: float | None = None, max_iter: int = 100,
                    se_type: str = "model") -> SlopeFit:
    """:func:`fit_slope` on the named columns of a table.

    Parameters
    ----------
    frame : table
        As for :func:`fit_frame`: pandas, polars, pyarrow (a dataset too), a mapping, or a
        Dask DataFrame (one pass over its partitions).
    label, offset, weight : str
        Column names: the labels, the raw scores (or probabilities, with
        ``offset_is="probability"``) and optionally the weights.
    offset_is, tol, max_iter, se_type
        As for :func:`fit_slope`.

    Returns
    -------
    SlopeFit
        In memory, with the exact refit of :func:`fit_slope`; streamed (Dask, a pyarrow
        dataset), from the sketch alone, as :func:`fit_slope_file`.

    Raises
    ------
    InputError
        As :func:`fit_frame`: errors name the column.
    """
    return run(SLOPE, slope_options(tol, max_iter, se_type),
               pick("table", frame, {"y": label, "offset": offset, "weight": weight},
                    offset_is=offset_is))


def fit_slope_file(source: Any, label: str, offset: str, weight: str | None = None, *,
                   offset_is: str = "logit", batch_rows: int | None = None,
                   progress: bool | None = None, format: str | None = None,
                   tol: float | None = None, max_iter: int = 100, se_type: str = "model"
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
        As :func:`fit_file`; also, before the pass, where ``offset`` names no column.
    """
    return run(SLOPE, slope_options(tol, max_iter, se_type),
               pick("files", source, {"y": label, "offset": offset, "weight": weight},
                    offset_is=offset_is, batch_rows=batch_rows, progress=progress,
                    format=format))


def validate(y: Any, offset: Any, weight: Any = None, *, offset_is: str = "logit", bins: int = 10,
             level: float = 0.95, se_type: str = "model", decision: bool = False,
             thresholds: Any = None, curve: str | None = None) -> CalibrationReport:
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
    decision : bool, default False
        Also the decision curve (:func:`decision_curve`, with both recalibrations), from
        the same pass, as ``report.decision``.
    thresholds : array_like, optional
        Its threshold probabilities (default 0.01, 0.02, ..., 0.99); given, they ask for
        the decision curve without ``decision=True``.
    curve : {None, "rcs", "loess"}, default None
        Also the smooth calibration curve, as ``report.smooth_curve``: what
        :func:`calibration_curve` gives with its defaults (5 knots, ``seed=0``), from the
        same summary (no further pass); ``"loess"`` for rows in memory only.

    Returns
    -------
    CalibrationReport
        The shift (calibration in the large) and the slope (weak calibration) with their
        inference, Miller's tests, Spiegelhalter's z, the Brier score, the log loss, the
        c-statistic, the binned curve and ICI / E50 / E90; with ``decision=True``, the
        decision curve.

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
    return run(REPORT, report_options(bins, level, se_type, decision, thresholds, curve,
                                      offset_is),
               pick("arrays", {"y": y, "offset": offset, "weight": weight},
                    offset_is=offset_is))


def validate_frame(frame: Any, label: str, offset: str, weight: str | None = None, *,
                   offset_is: str = "logit", bins: int = 10, level: float = 0.95,
                   se_type: str = "model", decision: bool = False, thresholds: Any = None,
                   curve: str | None = None) -> CalibrationReport:
    """:func:`validate` on the named columns of a table.

    Parameters
    ----------
    frame, label, offset, weight
        As for :func:`fit_slope_frame`. From a Dask DataFrame or a pyarrow dataset (one pass
        over its partitions or batches) the c-statistic carries its bound.
    offset_is, bins, level, se_type, decision, thresholds, curve
        As for :func:`validate`.

    Returns
    -------
    CalibrationReport
        As :func:`validate` gives on the same columns as arrays (in memory), or as
        :func:`validate_file` gives (a Dask DataFrame, a pyarrow dataset).

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
    return run(REPORT, report_options(bins, level, se_type, decision, thresholds, curve,
                                      offset_is),
               pick("table", frame, {"y": label, "offset": offset, "weight": weight},
                    offset_is=offset_is))


def validate_file(source: Any, label: str, offset: str, weight: str | None = None, *,
                  offset_is: str = "logit", bins: int = 10, level: float = 0.95,
                  batch_rows: int | None = None, progress: bool | None = None,
                  format: str | None = None, se_type: str = "model", decision: bool = False,
                  thresholds: Any = None, curve: str | None = None) -> CalibrationReport:
    """:func:`validate` on columns of CSV or Parquet files of any size, or standard input,
    in one pass.

    The rows are streamed a batch at a time through a :class:`Sketch`
    (:func:`logitshift.io.sketch_file`), and :meth:`Sketch.validate` reports from its tables.

    Parameters
    ----------
    source, batch_rows, progress, format
        As for :func:`fit_file` (``"-"`` reads CSV from standard input).
    label, offset, weight : str
        As for :func:`fit_slope_file`.
    offset_is, bins, level, se_type, decision, thresholds
        As for :func:`validate`.
    curve : {None, "rcs"}
        As for :func:`validate`; ``"loess"`` is refused (it needs the rows in memory).

    Returns
    -------
    CalibrationReport
        The numbers of :func:`validate` on the same rows in memory, to rounding, but for the
        decision curve (from the same histogram, with its bound) and the c-statistic,
        which comes from the sketch's histogram of offsets (sub-bins of width 2**-12): pairs
        of rows within one sub-bin are not ordered, and
        ``c_statistic_bound`` bounds the error that leaves (about 1e-5). The slope has no
        exact pass to fall back on: where it is too steep for the sketch's grid, its status
        is ``"beyond_sketch"``.

    Raises
    ------
    InputError, OSError
        As :func:`fit_slope_file`.
    """
    return run(REPORT, report_options(bins, level, se_type, decision, thresholds, curve,
                                      offset_is),
               pick("files", source, {"y": label, "offset": offset, "weight": weight},
                    offset_is=offset_is, batch_rows=batch_rows, progress=progress,
                    format=format))


def decision_curve(y: Any, offset: Any, weight: Any = None, *, thresholds: Any = None,
                   recalibrate: bool = True, offset_is: str = "logit") -> DecisionCurve:
    """The decision curve of a model's scores: the net benefit of treating the rows whose
    predicted risk reaches each threshold, beside treating everyone and no one, for the
    scores as given and after each recalibration (Vickers & Elkin 2006).

    At a threshold probability ``t`` a row is treated when its predicted risk ``p >= t``
    (ties treated, as ``dcurves`` counts them), and

        ``NB(t) = TP(t) / n - FP(t) / n · t / (1 - t)``

    with ``TP = Σ w y [p >= t]``, ``FP = Σ w (1 - y) [p >= t]`` and ``n = Σ w``: with weights,
    every count is a sum of weights (a soft label counts as a positive of weight ``w y``
    and a negative of weight ``w (1 - y)``). The standardised net benefit is ``NB / π``,
    ``π = Σ w y / n``; treating everyone gives ``π - (1 - π) t / (1 - t)``.

    Parameters
    ----------
    y : array_like, shape (n,)
        Labels in [0, 1]. A Dask array goes to the Dask source (one pass over its chunks,
        the curve from the sketch's histogram, with its bound).
    offset : array_like, shape (n,)
        The model's raw scores (log-odds), ``p = σ(offset)``, or its predicted
        probabilities with ``offset_is="probability"``.
    weight : array_like, shape (n,), optional
        Non-negative frequency weights.
    thresholds : array_like of shape (k,), optional
        Threshold probabilities, each in (0, 1), strictly increasing (default 0.01, 0.02,
        ..., 0.99).
    recalibrate : bool, default True
        Also the curves after the calibration in the large (``p = σ(offset + shift)``, the
        shift of :func:`fit`) and after the logistic recalibration (``p = σ(a + b ·
        offset)``, :func:`fit_slope`), both fitted on these rows: what the model would be
        worth recalibrated, an optimistic view on the rows it is fitted to.
    offset_is : {"logit", "probability"}, default "logit"

    Returns
    -------
    DecisionCurve
        ``model``, ``shifted`` and ``recalibrated`` (each a :class:`NetBenefit`: the net
        benefit, the standardised one, the weighted true and false positives and the bound),
        ``treat_all``, and the recalibrations applied.

    Raises
    ------
    InputError
        The errors of :func:`validate`; thresholds that are not all in (0, 1), that do not
        increase, or that are NaN, naming the first bad one.

    Notes
    -----
    The comparison is made on the log-odds: ``p >= t`` is ``offset >= logit(t)``, with
    ``logit(t) = log(t) - log1p(-t)`` as ``offset_is="probability"`` converts the scores (so a
    probability equal to a threshold is treated); ``offset + shift >= logit(t)`` is asked as
    ``offset >= logit(t) - shift``, and ``a + b · offset >= logit(t)`` as ``offset >= (logit(t)
    - a) / b``, or ``offset <= (logit(t) - a) / b`` for ``b < 0``, where the recalibration
    reverses the ranking. In memory every count is exact (``bound`` is 0): one binary search
    of each row among the ``3k`` cuts and a weighted count per gap, O(n log k), after the
    one pass that validates the rows and fits the recalibrations. From a stream
    (:func:`decision_curve_file`, Dask) the counts come from the sketch's histogram, in
    sub-bins of width 2**-12 logits: the rows of the sub-bin that holds a cut are counted by
    the share of its width above the cut, and ``bound`` is the most they can move the net
    benefit.

    Examples
    --------
    >>> import numpy as np, logitshift
    >>> y = np.array([0, 0, 1, 0, 1, 1])
    >>> risk = np.array([0.1, 0.4, 0.35, 0.2, 0.8, 0.6])
    >>> curve = logitshift.decision_curve(y, risk, offset_is="probability",
    ...                                   thresholds=[0.3], recalibrate=False)
    >>> round(float(curve.model.net_benefit[0]), 6)    # TP 3, FP 1: 3/6 - 1/6 · 0.3/0.7
    0.428571
    """
    return run(DECISION, decision_options(thresholds, recalibrate),
               pick("arrays", {"y": y, "offset": offset, "weight": weight},
                    offset_is=offset_is))


def decision_curve_frame(frame: Any, label: str, offset: str, weight: str | None = None, *,
                         thresholds: Any = None, recalibrate: bool = True,
                         offset_is: str = "logit") -> DecisionCurve:
    """:func:`decision_curve` on the named columns of a table.

    Parameters
    ----------
    frame, label, offset, weight
        As for :func:`validate_frame`. From a Dask DataFrame or a pyarrow dataset (one pass
        over its partitions or batches) the curve carries its bound.
    thresholds, recalibrate, offset_is
        As for :func:`decision_curve`.

    Returns
    -------
    DecisionCurve

    Raises
    ------
    InputError
        As :func:`fit_frame`: errors name the column.
    """
    return run(DECISION, decision_options(thresholds, recalibrate),
               pick("table", frame, {"y": label, "offset": offset, "weight": weight},
                    offset_is=offset_is))


def decision_curve_file(source: Any, label: str, offset: str, weight: str | None = None, *,
                        thresholds: Any = None, recalibrate: bool = True,
                        offset_is: str = "logit", batch_rows: int | None = None,
                        progress: bool | None = None, format: str | None = None
                        ) -> DecisionCurve:
    """:func:`decision_curve` on columns of CSV or Parquet files of any size, or standard
    input, in one pass.

    The rows are streamed into a :class:`Sketch` with its histogram of the scores; the
    recalibrations are fitted on its tables and the net benefit counted from its sub-bins
    (width 2**-12 logits), each threshold with its ``bound``.

    Parameters
    ----------
    source, batch_rows, progress, format
        As for :func:`fit_file` (``"-"`` reads CSV from standard input).
    label, offset, weight : str
        As for :func:`validate_file`.
    thresholds, recalibrate, offset_is
        As for :func:`decision_curve`.

    Returns
    -------
    DecisionCurve
        With ``exact=False``: the net benefit of the rows in memory lies within ``bound``
        of each value.

    Raises
    ------
    InputError, OSError
        As :func:`validate_file`.
    """
    return run(DECISION, decision_options(thresholds, recalibrate),
               pick("files", source, {"y": label, "offset": offset, "weight": weight},
                    offset_is=offset_is, batch_rows=batch_rows, progress=progress,
                    format=format))


def fit_groups(y: Any, group: Any, offset: Any = None, weight: Any = None, *,
               shrinkage: str | None = None, nagq: int = 1, pseudo_count: float = 0.0,
               tol: float | None = None, max_iter: int = 100, levels: Any = None,
               offset_is: str = "logit", l2: float = 0.0) -> GroupShiftFit:
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
    l2 : float, default 0
        A ridge penalty on each group's shift: ``argmin_s Σ_{i in g} w_i BCE(y_i, offset_i
        + s) + l2 · s² / 2``, in the units of ``weight`` (XGBoost's ``reg_lambda``,
        LightGBM's ``lambda_l2``). Every group with weight gets a finite shift, 0 for a
        group without rows' pull; ``se`` is ``1 / sqrt(Σ w σ σ(-·) + l2)``. It is the
        random-intercept model with ``μ = 0`` and ``τ² = 1 / l2`` held fixed (the shift is
        its conditional mode), so it is refused with ``shrinkage="random"``, which
        estimates ``τ``. The LR test is nan with ``l2 > 0``, and ``fit_of`` is refused.

    Returns
    -------
    GroupShiftFit
        Each group's shift and its statistics; with ``shrinkage="random"``, the model's
        mean, spread and shrunk shifts too.

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
    One pass fills a :class:`~logitshift.GroupSketch`, the Taylor tables of
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
    return run(GROUPS, check_group_options(shrinkage, nagq, pseudo_count, tol, max_iter, l2),
               pick("arrays", {"y": y, "group": group, "offset": offset, "weight": weight},
                    offset_is=offset_is, levels=levels))


def fit_groups_frame(frame: Any, label: str, group: str, offset: str | None = None,
                     weight: str | None = None, *, shrinkage: str | None = None, nagq: int = 1,
                     pseudo_count: float = 0.0, tol: float | None = None, max_iter: int = 100,
                     levels: Any = None, offset_is: str = "logit", l2: float = 0.0
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
        What :func:`fit_groups` gives on the columns as arrays; from a Dask DataFrame or a
        pyarrow dataset, what :func:`fit_groups_file` gives.

    Raises
    ------
    InputError
        As :func:`fit_frame` says, with the errors of :func:`fit_groups`: ``column
        'country': group[7] is missing: every row needs a group``.

    Examples
    --------
    >>> import pandas as pd, logitshift
    >>> frame = pd.DataFrame({"clicked": [0, 1, 0, 1, 1, 0], "site": list("aabbcc"),
    ...                       "score": [-1.0, 0.5, 0.2, -2.0, 0.1, 0.3]})
    >>> logitshift.fit_groups_frame(frame, "clicked", "site", "score").groups.tolist()
    ['a', 'b', 'c']
    """
    return run(GROUPS, check_group_options(shrinkage, nagq, pseudo_count, tol, max_iter, l2),
               pick("table", frame, group_names(label, group, offset, weight),
                    offset_is=offset_is, levels=levels))


def fit_groups_file(source: Any, label: str, group: str, offset: str | None = None,
                    weight: str | None = None, *, batch_rows: int | None = None,
                    progress: bool | None = None, format: str | None = None,
                    offset_is: str = "logit", shrinkage: str | None = None, nagq: int = 1,
                    pseudo_count: float = 0.0, tol: float | None = None, max_iter: int = 100,
                    l2: float = 0.0) -> GroupShiftFit:
    """:func:`fit_groups` on columns of CSV or Parquet files of any size, in one pass.

    The rows are streamed a batch at a time into a
    :class:`~logitshift.GroupSketch` (:func:`logitshift.io.sketch_groups_file`),
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
    return run(GROUPS, check_group_options(shrinkage, nagq, pseudo_count, tol, max_iter, l2),
               pick("files", source, group_names(label, group, offset, weight),
                    offset_is=offset_is, batch_rows=batch_rows, progress=progress,
                    format=format))


def calibration_curve(y: Any, scores: Any, weight: Any = None, *, knots: Any = 5,
                      method: str = "rcs", level: float = 0.95, draws: int = 1000,
                      seed: int | None = None, offset_is: str = "logit"
                      ) -> SmoothCalibrationCurve:
    """The smooth calibration curve of a model's scores, with ICI, E50, E90 and Emax.

    ``method="rcs"`` fits ``logit P(y = 1) = g(f)``, a restricted cubic spline of the score's
    log-odds ``f``: what R's ``glm(y ~ rms::rcs(f, knots), family = binomial)`` fits, and
    ``CalibrationCurves::val.prob.ci.2(..., smooth = "rcs")`` draws. ``method="loess"``:
    ``rms::val.prob``'s ``lowess(p, y, iter = 0)``.

    Parameters
    ----------
    y : array_like, shape (n,)
        Labels in [0, 1]. Dask arrays go to the Dask source (one pass over their chunks).
    scores : array_like, shape (n,)
        The model's raw scores (log-odds), or its probabilities with
        ``offset_is="probability"``. Scores of probability 0 or 1 are refused: the spline
        of the log-odds has no value there.
    weight : array_like, shape (n,), optional
        Non-negative frequency weights (``"rcs"`` only).
    knots : int or array_like, default 5
        3 to 7: Harrell's quantiles of the scores' log-odds (for 5 knots 0.05, 0.275, 0.5,
        0.725 and 0.95, as ``rms::rcs``), read from the sketch's cells and moved to the
        nearest cell edge (at most 1/32 logit away). An array: the knots in log-odds, each
        moved to its nearest edge of 1/16 logit. Every knot on a cell edge is what lets the
        fit run on the sketch: see Notes.
    method : {"rcs", "loess"}
        ``"loess"`` needs the rows in memory, takes no weights and has no interval: it is
        not one pass (lowess sorts the rows).
    level : float, default 0.95
        Coverage of the intervals and of the band of :meth:`~SmoothCalibrationCurve.predict`.
    draws : int, default 1000
        Coefficient vectors drawn from ``N(β, V)`` for the intervals of ICI, E50, E90 and
        Emax (pmcalibration's simulation intervals).
    seed : int, optional
        Seed of those draws (``numpy.random.default_rng``).
    offset_is : {"logit", "probability"}, default "logit"

    Returns
    -------
    SmoothCalibrationCurve
        Knots, coefficients and covariance, ICI / E50 / E90 / Emax with their error bounds
        and intervals, the fit's status, and ``predict`` with a pointwise interval and a
        simultaneous band.

    Raises
    ------
    InputError
        Any error of :func:`validate`; knots not 3 to 7, an array of knots that does not
        increase, holds NaN, or two knots on one cell edge; a spline whose information is
        singular (knots outside the scores); ``method="loess"`` from a stream or with
        weights.

    Notes
    -----
    One pass fills a :class:`Sketch` (cells of 1/16 logit, moments of the remainders
    ``d`` to order 8). With every knot on a cell edge, ``g`` is a cubic in ``d`` inside each
    cell, so the loss, gradient and Hessian of any coefficients are Taylor series on the
    tables, with the relative error ``truncation`` (about 1e-16 for curves of slope below
    3): Newton runs on the tables, O(cells · K²) an iteration. From arrays in memory the
    statistics are computed on the rows themselves (exact); from a stream, on the sketch's
    histogram (sub-bins of 2**-12 logit), each with its bound (about 1e-6).

    Examples
    --------
    >>> import numpy as np, logitshift
    >>> rng = np.random.default_rng(0)
    >>> scores = rng.normal(0, 1.5, 20_000)
    >>> y = rng.random(20_000) < 1 / (1 + np.exp(-0.7 * scores))   # over-confident scores
    >>> curve = logitshift.calibration_curve(y, scores, seed=1)
    >>> curve.status, round(curve.ici, 2)
    ('converged', 0.05)
    """
    return run(CURVE, curve_options(method, knots, level, draws, seed, offset_is),
               pick("arrays", {"y": y, "offset": scores, "weight": weight},
                    offset_is=offset_is))


def calibration_curve_frame(frame: Any, label: str, scores: str, weight: str | None = None,
                            *, knots: Any = 5, method: str = "rcs", level: float = 0.95,
                            draws: int = 1000, seed: int | None = None,
                            offset_is: str = "logit") -> SmoothCalibrationCurve:
    """:func:`calibration_curve` on the named columns of a table (as
    :func:`validate_frame` takes them; a Dask DataFrame or a pyarrow dataset in one pass,
    whose statistics then carry their bounds)."""
    return run(CURVE, curve_options(method, knots, level, draws, seed, offset_is),
               pick("table", frame, {"y": label, "offset": scores, "weight": weight},
                    offset_is=offset_is))


def calibration_curve_file(source: Any, label: str, scores: str, weight: str | None = None,
                           *, knots: Any = 5, level: float = 0.95, draws: int = 1000,
                           seed: int | None = None, offset_is: str = "logit",
                           batch_rows: int | None = None, progress: bool | None = None,
                           format: str | None = None) -> SmoothCalibrationCurve:
    """:func:`calibration_curve` (``method="rcs"``) on columns of CSV or Parquet files of
    any size, or standard input, in one pass (``source``, ``batch_rows``, ``progress``,
    ``format`` as for :func:`fit_file`). The coefficients are those of the same rows in
    memory to 1e-12; ICI, E50, E90 and Emax come from the sketch's histogram, each with the
    bound on its error (``bounds``)."""
    return run(CURVE, curve_options("rcs", knots, level, draws, seed, offset_is),
               pick("files", source, {"y": label, "offset": scores, "weight": weight},
                    offset_is=offset_is, batch_rows=batch_rows, progress=progress,
                    format=format))


# -- multiclass ---------------------------------------------------------------------------

def fit_multiclass(y: Any, logits: Any, weight: Any = None, *, method: str = "shift",
                   classes: Any = None, logits_is: str = "logit", pseudo_count: float = 0.0,
                   tol: float | None = None, max_iter: int = 100, solver: str = "auto"
                   ) -> MulticlassFit:
    """Recalibrate a multiclass model: the per-class shifts, temperature, bias-corrected
    temperature or vector scaling that minimise the cross-entropy.

    Fits ``argmin Σ_i w_i CE(y_i, softmax(scale ∘ G_i + shift))`` with ``G`` the logits
    (each row's log-softmax of them for ``"vector"``) and the parameters of ``method``:

    - ``"shift"``: one shift per class (scale 1), up to a common constant;
    - ``"temperature"``: one scale β = 1/T, no shifts (temperature scaling, Guo et al. 2017);
    - ``"bias_temperature"``: β and the shifts (bias-corrected temperature scaling,
      Alexandari et al. 2020);
    - ``"vector"``: a scale and a shift per class (vector scaling).

    Parameters
    ----------
    y : array_like, shape (n,) or (n, K)
        Class indices ``0..K-1`` (integers), names looked up in ``classes`` (strings, any
        values; a pandas Categorical is read by its categories), or soft labels: rows of K
        non-negative weights that sum to 1 (within 1e-6).
    logits : array_like, shape (n, K)
        The model's scores: a numpy array (float32 is read in place), a CPU torch tensor, or
        a list of rows. Any constant added to a row changes nothing. A logit of ``-inf``
        rules a class out for its row (never its own class).
    weight : array_like, shape (n,), optional
        Non-negative frequency weights.
    method : {"shift", "temperature", "bias_temperature", "vector"}
    classes : sequence, optional
        The class of each column of ``logits``; labels are looked up among them.
    logits_is : {"logit", "probability"}
        ``"probability"``: ``logits`` holds probabilities, read as their logarithms.
    pseudo_count : float, default 0
        A pseudo-row of each class, of this weight, at the weighted mean logits: every shift
        then is finite, even for a class without weight.
    tol : float, optional
        Newton stops once a step is below ``tol · max(1, max |parameter|)`` (default 1e-9;
        the step is applied, and the error left is of its square's order).
    max_iter : int, default 100
    solver : {"auto", "dense", "cg"}
        ``"dense"`` forms the Hessian (``O(n K²)`` a pass); ``"cg"`` multiplies it by vectors
        in conjugate gradients (``O(n K)`` each, from the probabilities a pass keeps, in
        float32: n × K × 4 bytes); ``"auto"`` takes ``"cg"`` above
        ``DENSE_MAX = 64`` classes.

    Returns
    -------
    MulticlassFit
        The shifts (mean zero over the classes with weight), the scale, the temperature,
        their covariance and standard errors, ``confint``, ``lr_test``,
        ``observed_expected``, ``predict_logits`` / ``predict_proba``, ``status``,
        ``iterations``, ``passes`` and ``gradient_norm``.

    Raises
    ------
    InputError
        Naming the argument, the row and the value: a label outside ``0..K-1`` or not among
        ``classes``, a soft row that does not sum to 1, a NaN or ``+inf`` logit, a ``-inf``
        logit on a row's own class, fewer than 2 classes, shapes that disagree, a negative or
        NaN weight, weights that sum beyond ``[2**-500, 2**500]`` (divide them by a power of
        two: the fit does not change).

    Warns
    -----
    RuntimeWarning
        A class without weight among the labels (its shift is ``-inf``; ``status`` is
        ``"degenerate"``), or Newton that did not converge (``"max_iter"``).

    Notes
    -----
    The loss is convex in ``(scale, shift)``; Newton uses the exact Hessian with a
    backtracking line search. The first pass (scale 1, shifts 0) validates the rows and
    gives ``loss_at_start`` and the per-class O/E. The shifts start from ``log(O_k / E_k)``
    (the answer for constant logits); a scale starts at 1, or, where the rows hold at least
    four times 2**18 cells (rows × classes), from the fit on a strided subsample of about
    that many cells, so that three or four passes over all rows usually follow. A pass costs ``O(n K)`` exponentials (plus ``O(n K²)`` for the dense
    Hessian); memory beyond the input is ``O(K²)`` per thread (dense) or the n × K float32
    probabilities (``"cg"``), never ``O(n K²)``.

    Examples
    --------
    >>> import numpy as np, logitshift
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(size=(1000, 3)) * 3
    >>> y = np.array([rng.choice(3, p=np.exp(r / 2) / np.exp(r / 2).sum()) for r in logits])
    >>> result = logitshift.fit_multiclass(y, logits, method="temperature")
    >>> result.status, round(result.temperature, 1)
    ('converged', 1.9)
    """
    return run(MULTICLASS, multiclass_options(method, pseudo_count, tol, max_iter, solver,
                                              logits_is),
               pick("class_arrays", {"y": y, "logits": logits, "weight": weight},
                    offset_is=check_logits_is(logits_is), classes=classes))


def fit_multiclass_frame(frame: Any, label: Any, logits: Any, weight: Any = None, *,
                         method: str = "shift", classes: Any = None, logits_is: str = "logit",
                         pseudo_count: float = 0.0, tol: float | None = None,
                         max_iter: int = 100, solver: str = "auto") -> MulticlassFit:
    """:func:`fit_multiclass` on the named columns of a table in memory.

    Parameters
    ----------
    frame : pandas or polars DataFrame, polars LazyFrame, pyarrow Table, or a mapping
    label : str
        The column of labels (class indices, or names with ``classes``).
    logits : list of str, or str
        The K columns of logits, in class order; or one column of fixed-size lists
        (pyarrow ``fixed_size_list``, polars ``Array``, a pandas column of equal-length
        arrays).
    weight : str, optional
    method, classes, logits_is, pseudo_count, tol, max_iter, solver
        As for :func:`fit_multiclass`.

    Returns
    -------
    MulticlassFit
        As :func:`fit_multiclass` gives on the same columns as arrays.
    """
    return run(MULTICLASS, multiclass_options(method, pseudo_count, tol, max_iter, solver,
                                              logits_is),
               pick("class_table", frame, {"y": label, "logits": logits, "weight": weight},
                    offset_is=check_logits_is(logits_is), classes=classes))


def fit_prior_shift(logits: Any, source_priors: Any = None, weight: Any = None, *,
                    logits_is: str = "logit", tol: float | None = None,
                    max_iter: int = 1000) -> PriorShiftFit:
    """The maximum-likelihood class priors of unlabelled rows under label shift, and the
    shift of the logits they imply (Saerens, Latinne & Decaestecker 2002).

    Parameters
    ----------
    logits : array_like, shape (n, K) or (n,)
        The model's scores on the unlabelled rows, as for :func:`fit_multiclass`; one
        column is a binary model's log-odds (or, with ``logits_is="probability"``, its
        probability of the positive class), read as two classes ``[0, f]``.
    source_priors : array_like of shape (K,), float, or MulticlassFit
        The class priors under which the logits are posteriors (the training or calibration
        set's class frequencies; counts are normalised; a float is the positive class's for
        one column). A :class:`MulticlassFit` of a labelled set: its recalibration is applied
        to the logits first and its weighted label frequencies are the priors (BCTS + EM,
        Alexandari et al. 2020). Required: the likelihood divides each posterior by its
        prior, and no default is right for every model.
    weight : array_like, shape (n,), optional
    logits_is : {"logit", "probability"}
    tol : float, optional
        Newton stops once its step in the priors is below ``tol`` (default 1e-12).
    max_iter : int, default 1000

    Returns
    -------
    PriorShiftFit
        ``priors`` (π'), their standard errors (observed information on the simplex), the
        implied ``shift = log(π'/π)``, ``predict_proba``, the likelihood-ratio test of no
        shift, ``status``, ``iterations``, ``passes``, ``gradient_norm``.

    Notes
    -----
    The log-likelihood ``Σ w log Σ_k p_k π'_k / π_k`` is concave in π' on the simplex.
    Newton (the exact Hessian, the sum constraint by its multiplier) runs from the first EM
    step where its steps stay inside the simplex; EM steps otherwise, which reach a prior on
    the boundary (``status="boundary"``). Each iteration is one pass, ``O(n K²)`` with the
    Hessian (up to 256 classes; EM alone above).
    """
    return run(PRIOR_SHIFT, prior_shift_options(source_priors, tol, max_iter, logits_is),
               pick("class_arrays", {"y": None, "logits": logits, "weight": weight},
                    offset_is=check_logits_is(logits_is), binary=True))


def fit_prior_shift_frame(frame: Any, logits: Any, source_priors: Any = None,
                          weight: Any = None, *, logits_is: str = "logit",
                          tol: float | None = None, max_iter: int = 1000) -> PriorShiftFit:
    """:func:`fit_prior_shift` on the named columns of a table in memory: ``logits`` names
    K columns, one column of fixed-size lists, or one column of log-odds (two classes)."""
    return run(PRIOR_SHIFT, prior_shift_options(source_priors, tol, max_iter, logits_is),
               pick("class_table", frame, {"y": None, "logits": logits, "weight": weight},
                    offset_is=check_logits_is(logits_is), binary=True))


def multiclass_metrics(y: Any, logits: Any, weight: Any = None, *, logits_is: str = "logit",
                       classes: Any = None, bins: int = 15) -> MulticlassMetrics:
    """Calibration metrics of a multiclass model's scores: log loss, Brier score, top-label
    and class-wise ECE, and each class's one-vs-rest calibration in the large.

    Parameters
    ----------
    y, logits, weight, logits_is, classes
        As for :func:`fit_multiclass`.
    bins : int, default 15
        Equal-width bins of [0, 1] for the ECEs (15, as Guo et al. 2017).

    Returns
    -------
    MulticlassMetrics
        The one-vs-rest fits are :func:`fit` of each class's label on the log-odds of its
        probability, ``logit(p_k) = log p_k - log(1 - p_k)`` (from the log-softmax, so that
        probabilities near 1 keep their digits).
    """
    as_positive_int(bins, "bins")
    source = pick("class_arrays", {"y": y, "logits": logits, "weight": weight},
                  offset_is=check_logits_is(logits_is), classes=classes)
    rows = source.summary(Needs(classes=True))
    k = rows.n_classes
    start = rows.evaluate(np.ones(k), np.zeros(k), np.ones(k, dtype=bool))  # validates
    log_probability = log_softmax(rows.logits)
    probability = np.exp(log_probability)
    if rows.hard:
        labels = np.zeros((rows.n_rows, k))
        labels[np.arange(rows.n_rows), rows.label_index] = 1.0
    else:
        labels = rows.label_rows
    weights = np.ones(rows.n_rows) if rows.weights is None else rows.weights
    with np.errstate(divide="ignore"):
        odds = log_probability - np.log(-np.expm1(log_probability))
    one_vs_rest = [fit(labels[:, j], odds[:, j], rows.weights) for j in range(k)]
    weight_sum = start.weight_sum
    return MulticlassMetrics(
        log_loss=float(start.row[M_LOSS]) / weight_sum,
        brier=brier_score(probability, labels, weights),
        top_label_ece=top_label_ece(probability, labels, weights, bins),
        classwise_ece=classwise_ece(probability, labels, weights, bins), bins=bins,
        one_vs_rest=one_vs_rest, classes=rows.classes or list(range(k)), n_rows=rows.n_rows,
        weight_sum=weight_sum)
