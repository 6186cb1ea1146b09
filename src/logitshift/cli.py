"""The ``logitshift`` command: ``demo``, ``fit`` (one shift, or one per group with
``--group``) and ``validate``.

Errors a user can act on (bad input, a missing file or column, a ``--plot`` file that cannot
be written) end with one line on stderr and exit status 2; messages and warnings name the
command's flags (``--pseudo-count``), not the Python arguments behind them. Nothing ends in
a Python traceback: see :func:`main` for the last resort.
"""

from __future__ import annotations

import argparse
import contextlib
from decimal import Decimal
import fnmatch
import glob
import importlib.util
import itertools
import json
import math
import os
import re
import stat
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from . import __version__
from ._api import fit, fit_groups_file, fit_groups_frame, validate_file, validate_frame
from ._core.jsonsafe import json_safe
from ._core.validate import InputError, as_positive_int, column_roles, naming_columns
from ._estimators.decision import check_thresholds, describe
from ._estimators.groups import GroupShiftFit, check_group_options
from ._estimators.report import CalibrationReport
from ._estimators.result import ShiftFit, normal_quantile
from ._estimators.shift import check_options

__all__ = ["main"]

EXIT_USAGE = 2
#: A fault of logitshift's own (a bug): one line naming the exception, as Python's exit status.
EXIT_INTERNAL = 1
#: 128 + SIGINT, as shells report a command stopped by Ctrl-C.
EXIT_INTERRUPTED = 130
_PROG = "logitshift"
#: Python arguments and the flags that set them, for messages raised by the library.
_FLAGS = {"pseudo_count": "--pseudo-count", "level": "--level", "format": "--format",
          "offset_is": "--offset-is", "bins": "--bins", "se_type": "--se-type",
          "nagq": "--nagq", "top": "--top", "thresholds": "--thresholds", "l2": "--l2"}
#: Phrases of library messages and the flags that say the same.
_PHRASES = {"shrinkage='random'": "--shrink"}
#: The per-group table's formats, by the --output file's extension.
_TABLE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet", ".parq": "parquet"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _seed_example() -> tuple[np.ndarray, np.ndarray]:
    """The seed notebook's data: n = 1000, p = 0.1, seed 0, offsets drawn right after."""
    # The notebook's legacy generator, for its exact numbers, without touching numpy's
    # global state.
    random = np.random.RandomState(0)
    n = 1000
    labels = random.binomial(1, 0.1, n)
    offsets = random.normal(0, 1, n)
    return labels, offsets


def _describe(result: ShiftFit, level: float, details: bool) -> list[str]:
    low, high = result.confint(level)
    robust = result.se_type == "robust"
    lines = [
        f"  shift         {result.shift!r}",
        f"  se            {result.se:.6g}{' (robust, HC0)' if robust else ''}",
        f"  {_percent(level)} CI        [{low:.6g}, {high:.6g}] "
        f"({'Wald, robust se' if robust else 'profile likelihood'})",
        f"  loss          {result.loss_at_zero:.6g} at shift 0 -> {result.loss:.6g} at the shift",
        f"  iterations    {result.iterations} ({result.status})",
    ]
    if details:
        test = result.lr_test()
        oe = result.observed_expected_at(level)
        lines += [
            f"  rows          {result.n_rows} (weight {result.weight_sum:.10g}, "
            f"positives {result.positives:.10g})",
            f"  LR test       statistic {test.statistic:.6g}, p = {test.pvalue:.3g} "
            "(shift = 0)",
            f"  O/E           {oe.ratio:.6g} [{oe.low:.6g}, {oe.high:.6g}] at shift 0",
        ]
    return lines


def _plotting(path: str | None, flag: str = "--plot") -> Any:
    """The plot module when ``--plot PATH`` (or ``flag``) asks for a figure (else None),
    checked before any work: matplotlib is there, and the file's extension names a format it
    writes. Errors name ``flag``, the option the user typed."""
    if path is None:
        return None
    try:
        from . import plot
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError as exc:
        raise InputError(f"{flag}: {exc}", argument=flag) from None
    suffix = Path(path).suffix.lower().lstrip(".")
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix and suffix not in formats:
        raise InputError(f"{flag} {path}: cannot write the format {suffix!r}; use one of "
                         f"{', '.join(sorted(formats))}", argument=flag, value=path)
    _check_writable(path, flag)
    return plot


def _check_writable(path: str, flag: str = "--plot") -> None:
    """Refuse a ``--plot`` (or ``--output``) file that cannot be written before the pass, not
    after it: a file that is there must open for appending (which leaves it unchanged), and
    its directory must take the temporary file that :func:`_write_atomically` renames."""
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise InputError(f"{flag} {path}: there is no directory {folder!r}",
                         argument=flag, value=path)
    if os.path.isdir(path):
        raise InputError(f"{flag} {path}: is a directory; name a file", argument=flag,
                         value=path)
    try:
        if os.path.exists(path):
            with open(path, "ab"):
                pass
        descriptor, temporary = tempfile.mkstemp(dir=os.path.dirname(os.path.realpath(path)))
        os.close(descriptor)
        os.remove(temporary)
    except OSError as exc:
        raise InputError(f"{flag} {path}: cannot write it ({exc.strerror or exc})",
                         argument=flag, value=path) from None


def _write_atomically(path: str, write: Callable[[str], None]) -> None:
    """``write(temporary)`` into a temporary file beside ``path``, then rename it onto
    ``path``: a reader sees the old file or the whole new one, and a failure (a full disk,
    Ctrl-C) leaves no partial file. The new file takes the old one's permissions, or the
    umask's; a symbolic link is written through, not replaced."""
    target = os.path.realpath(path)
    folder, name = os.path.split(target)
    if os.path.exists(target):
        mode = stat.S_IMODE(os.stat(target).st_mode)
    else:
        umask = os.umask(0)
        os.umask(umask)
        mode = 0o666 & ~umask
    descriptor, temporary = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=folder)
    os.close(descriptor)
    try:
        write(temporary)
        os.chmod(temporary, mode)
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def _save_figure(figure: Any, path: str) -> None:
    """Save a figure, in the format of the file's extension (PNG without one), atomically.
    No pyplot and no display: savefig renders each format with its own canvas (Agg for
    PNG), whatever backend is configured."""
    image_format = Path(path).suffix.lower().lstrip(".") or "png"
    _write_atomically(path, lambda temporary: figure.savefig(temporary, format=image_format))


def _write_plot(plot: Any, path: str, result: ShiftFit, y: Any, offset: Any = None,
                level: float = 0.95) -> None:
    """Save the figure of the fit."""
    _save_figure(plot.figure(result, y, offset, level=level), path)


def _refuse_inputs(paths: Sequence[str], outputs: Sequence[tuple[str, str | None]]) -> None:
    """Refuse, before the pass, an output file that is one of the inputs, or would become
    one of them the next time the same command runs: a file that an input names (the same
    file by any path: a link, ``./``), a Parquet file inside an input directory (read as
    part of the dataset), or a path that an input's glob pattern matches. Also two outputs
    that name one file."""
    from ._sources.files import PARQUET_SUFFIXES
    from .io import expand_sources

    named = [(flag, path) for flag, path in outputs if path is not None]
    for (flag, path), (other_flag, other) in itertools.combinations(named, 2):
        if _same_file(path, other):
            raise InputError(f"{other_flag} {other}: {flag} names the same file; name "
                             "another", argument=other_flag, value=other)
    if not named:
        return
    given = [str(path) for path in paths if str(path) != "-"]
    files = [str(path) for path in expand_sources(given)] if given else []
    for flag, path in named:
        for source in files:
            if _same_file(path, source):
                raise InputError(f"{flag} {path}: is an input file ({source}); writing it "
                                 "would overwrite the data: name another file",
                                 argument=flag, value=path)
        for source in given:
            if (os.path.isdir(source) and Path(path).suffix.lower() in PARQUET_SUFFIXES
                    and _inside(path, source)):
                raise InputError(f"{flag} {path}: lies in the input directory {source}, "
                                 "whose Parquet files are all read as the data: write it "
                                 "elsewhere", argument=flag, value=path)
            if not os.path.exists(source) and glob.has_magic(source) and _matches(path, source):
                raise InputError(f"{flag} {path}: matches the input pattern {source}, so it "
                                 "would be read as data: name another file", argument=flag,
                                 value=path)


def _same_file(path: str, other: str) -> bool:
    try:
        return os.path.samefile(path, other)
    except (OSError, ValueError):  # either is not there (yet): compare where they would be
        return os.path.realpath(path) == os.path.realpath(other)


def _inside(path: str, folder: str) -> bool:
    real, root = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([real, root]) == root


def _matches(path: str, pattern: str) -> bool:
    """Whether ``glob.glob(pattern, recursive=True)`` would list ``path`` once it is there:
    component by component (``*`` stops at ``/``), ``**`` spanning any number of them."""
    parts = Path(os.path.abspath(path)).parts
    wildcards = Path(os.path.abspath(pattern)).parts

    def match(i: int, j: int) -> bool:
        if j == len(wildcards):
            return i == len(parts)
        if wildcards[j] == "**":
            return any(match(k, j + 1) for k in range(i, len(parts) + 1))
        return i < len(parts) and fnmatch.fnmatchcase(parts[i], wildcards[j]) and \
            match(i + 1, j + 1)

    return match(0, 0)


def _demo(args: argparse.Namespace) -> int:
    plot = _plotting(args.plot)
    labels, offsets = _seed_example()
    scenario_a = fit(labels)
    scenario_b = fit(labels, offsets)
    if plot is not None:
        _write_plot(plot, args.plot, scenario_b, labels, offsets)
    if args.json:
        report = {"scenario_a": scenario_a.to_dict(), "scenario_b": scenario_b.to_dict()}
        print(json.dumps(json_safe(report), allow_nan=False))
        return 0
    print(f"seed example: n = {labels.size}, positives = {int(labels.sum())}")
    print("scenario A: no offset (closed form log(m/k))")
    print("\n".join(_describe(scenario_a, 0.95, details=False)))
    print("scenario B: offsets ~ N(0, 1)")
    print("\n".join(_describe(scenario_b, 0.95, details=False)))
    return 0


def _fit(args: argparse.Namespace) -> int:
    from .io import sketch_file

    if args.group is not None:
        return _fit_groups(args)
    for flag, given in (("--shrink", args.shrink), ("--nagq", args.nagq is not None),
                        ("--output", args.output is not None),
                        ("--top", args.top is not None), ("--l2", args.l2 != 0)):
        if given:
            raise InputError(f"{flag} applies to per-group fits: name the column of groups "
                             "with --group", argument=flag)
    # Options are checked before the pass, not after it.
    roles, _ = column_roles(args.label, args.offset, args.weight)
    check_options(None, args.pseudo_count, None, 1)
    normal_quantile(args.level)
    if args.offset_is == "probability" and args.offset is None:
        raise InputError("--offset-is probability needs --offset, the column of "
                         "probabilities", argument="--offset-is")
    plot = _plotting(args.plot)
    source = _sql_source(args)
    _refuse_inputs(args.paths, [("--plot", args.plot)])
    if source is not None:  # one query, on DuckDB
        from ._sources.sql import SqlTable
        from ._summary.chunks import Needs

        sketch = SqlTable(source, roles, offset_is=args.offset_is).summary(
            Needs(robust=args.se_type == "robust"))
    else:
        # One pass, a batch at a time: memory stays bounded whatever the files' size.
        sketch = sketch_file(args.paths, args.label, args.offset, args.weight,
                             progress=False if args.quiet else None, format=args.format,
                             offset_is=args.offset_is, robust=args.se_type == "robust")
    with naming_columns(roles):
        result = sketch.solve(pseudo_count=args.pseudo_count, se_type=args.se_type)
    if plot is not None:
        # Before the report, so that a path that cannot be written leaves stdout empty.
        _write_plot(plot, args.plot, result, sketch, level=args.level)
    if args.json:
        print(json.dumps(result.to_dict(args.level, json_safe=True), allow_nan=False))
    else:
        print("\n".join(_describe(result, args.level, details=True)))
    return 0


def _fit_groups(args: argparse.Namespace) -> int:
    """``fit --group``: a shift per group (and the random intercepts with ``--shrink``), from
    one pass over the files."""
    # Options are checked before the pass, not after it.
    column_roles(args.label, args.offset, args.weight, group=args.group)
    if args.nagq is not None and not args.shrink:
        raise InputError("--nagq applies to --shrink only (the random-intercept model)",
                         argument="--nagq", value=args.nagq)
    if args.se_type != "model":
        raise InputError("--se-type robust does not apply to per-group fits: their standard "
                         "errors are the model's", argument="--se-type", value=args.se_type)
    shrinkage = "random" if args.shrink else None
    nagq = 1 if args.nagq is None else args.nagq
    check_group_options(shrinkage, nagq, args.pseudo_count, None, 100, args.l2)
    normal_quantile(args.level)
    top = 10 if args.top is None else as_positive_int(args.top, "top")
    if args.offset_is == "probability" and args.offset is None:
        raise InputError("--offset-is probability needs --offset, the column of "
                         "probabilities", argument="--offset-is")
    table_format = _table_format(args.output)
    plot = _plotting(args.plot)
    source = _sql_source(args)
    _refuse_inputs(args.paths, [("--output", args.output), ("--plot", args.plot)])
    if source is not None:
        result = fit_groups_frame(source, args.label, args.group, args.offset, args.weight,
                                  offset_is=args.offset_is, shrinkage=shrinkage, nagq=nagq,
                                  pseudo_count=args.pseudo_count, l2=args.l2)
    else:
        result = fit_groups_file(args.paths, args.label, args.group, args.offset,
                                 args.weight, progress=False if args.quiet else None,
                                 format=args.format, offset_is=args.offset_is,
                                 shrinkage=shrinkage, nagq=nagq,
                                 pseudo_count=args.pseudo_count, l2=args.l2)
    # Files before the report, so that a path that cannot be written leaves stdout empty.
    if plot is not None:
        _save_figure(plot.group_shifts(result, level=args.level).figure, args.plot)
    if table_format is not None:
        _write_table(result, args.output, table_format)
    if args.json:
        print(json.dumps(json_safe(_groups_record(result, args.level)), allow_nan=False))
    else:
        print("\n".join(_describe_groups(result, args.level, top)))
    return 0


def _table_format(path: str | None) -> str | None:
    """The format of the ``--output`` table by its extension, checked before the pass."""
    if path is None:
        return None
    table_format = _TABLE_FORMATS.get(Path(path).suffix.lower())
    if table_format is None:
        raise InputError(f"--output {path}: name a .csv or .parquet file", argument="--output",
                         value=path)
    _check_writable(path, "--output")
    return table_format


def _write_table(result: GroupShiftFit, path: str, table_format: str) -> None:
    """The whole per-group table, one row per group, as CSV or Parquet."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    table = result.table()
    if not isinstance(table, pa.Table):
        table = pa.Table.from_pandas(table, preserve_index=False)
    write = pacsv.write_csv if table_format == "csv" else pq.write_table
    _write_atomically(path, lambda temporary: write(table, temporary))


def _groups_record(result: GroupShiftFit, level: float) -> dict[str, Any]:
    """``result.to_dict()``, with the interval of τ at ``level`` where there is one."""
    record = {**result.to_dict(), "level": level}
    if result.shrinkage == "random":
        record["tau_ci_low"], record["tau_ci_high"] = result.tau_confint(level)
    return record


#: Statuses of groups whose shift is infinite, and of groups that have no shift at all.
_DEGENERATE = ("all_negative", "all_positive")
_UNFITTED = ("no_weight", "no_finite_offset", "underflow")


def _describe_groups(result: GroupShiftFit, level: float, top: int) -> list[str]:
    """The summary of a per-group fit, then the groups with the largest |shift| (|shrunk|
    with the random intercepts), at most ``top`` of them."""
    percent = _percent(level)
    degenerate = int(np.isin(result.status, _DEGENERATE).sum())
    unfitted = int(np.isin(result.status, _UNFITTED).sum())
    pooled = result.pooled
    counts = f"{result.n_groups}, {degenerate} degenerate (labels of one class only)"
    if unfitted:
        counts += f", {unfitted} without a shift (no weight, no finite offset or underflow)"
    rows = [("groups", counts),
            ("rows", f"{int(result.n_rows.sum())} (weight {result.weight_sum.sum():.10g}, "
                     f"positives {result.positives.sum():.10g})"),
            ("pooled shift", f"{pooled.shift:.6g} (se {pooled.se:.3g}): one shift for all")]
    test = result.lr_test()
    if result.shrinkage == "random":
        low, high = result.tau_confint(level)
        method = "Laplace" if result.nagq == 1 else f"adaptive Gauss-Hermite, {result.nagq} points"
        rows += [("mean", f"{result.mean:.6g} (se {result.mean_se:.3g}): μ̂"),
                 ("tau", f"{result.tau:.6g} ({percent} CI [{low:.6g}, {high:.6g}], profile "
                         "likelihood): τ̂"),
                 ("log-lik", f"{result.loglik:.10g} ({method})"),
                 ("LR test", f"statistic {test.statistic:.6g}, p = {test.pvalue:.3g} "
                             "(tau = 0, on the boundary)")]
        if not result.converged:
            rows.append(("status", "the random-intercept fit did not converge"))
    elif result.l2 > 0:
        rows.append(("penalty", f"l2 = {result.l2:.6g}: penalised shifts, no LR test"))
    else:
        rows.append(("LR test", f"statistic {test.statistic:.6g}, p = {test.pvalue:.3g} "
                                "(one shift for every group)"))
    width = max(len(name) for name, _ in rows)
    lines = [f"  {name.ljust(width)}  {value}" for name, value in rows]

    shrunk = result.shrinkage == "random"
    values = result.shrunk if shrunk else result.shift
    shown = np.flatnonzero(np.isfinite(values))
    shown = shown[np.argsort(-np.abs(values[shown]), kind="stable")][:top]
    what = "|shrunk|" if shrunk else "|shift|"
    heading = f"  the {shown.size} groups of largest {what}"
    if not shrunk and degenerate:
        heading += f" (the {degenerate} of infinite shift left out)"
    keys = result.groups[shown].tolist()
    lows, highs = result.confint(level, keys=keys)
    names = [str(key) for key in keys]
    name_width = max([len("group")] + [len(name) for name in names])
    header = (f"    {'group'.ljust(name_width)}  {'rows':>8}  {'shift':>10}  {'se':>8}  "
              f"{percent + ' CI (profile)':>22}")
    if shrunk:
        header += f"  {'shrunk':>10}  {'se':>8}"
    lines += [heading + ":", header + "  status"]
    for i, name, low, high in zip(shown.tolist(), names, lows.tolist(), highs.tolist()):
        shift, se = result.shift[i], result.se[i]
        interval = "" if math.isnan(low) or math.isnan(high) else _interval((low, high))
        line = (f"    {name.ljust(name_width)}  {result.n_rows[i]:>8}  {shift:>10.4g}  "
                f"{se:>8.3g}  {interval:>22}")
        if shrunk:
            line += f"  {result.shrunk[i]:>10.4g}  {result.shrunk_se[i]:>8.3g}"
        lines.append(line + f"  {result.status[i]}")
    return lines


def _interval(bounds: tuple[float, float]) -> str:
    return f"[{bounds[0]:.6g}, {bounds[1]:.6g}]"


def _percent(level: float) -> str:
    """The level as a percentage with the digits it was given: ``95%`` for 0.95, and
    ``99.99999999999999%`` (not 100%) for 0.9999999999999999."""
    return f"{(Decimal(repr(float(level))) * 100).normalize():f}%"


def _describe_report(report: CalibrationReport, level: float) -> list[str]:
    """The report as ``val.prob`` lists its statistics (its names where it has them), then
    the calibration in the large, Miller's tests and the curve."""
    shift, slope, miller = report.shift, report.slope, report.miller
    percent = _percent(level)
    c = f"{report.c_statistic:.6g}"
    if report.c_statistic_bound > 0:
        c += f" ± {report.c_statistic_bound:.2g} (from the sketch's histogram)"
    if slope.converged:
        intervals = slope.confint(level)
        intercept = (f"{slope.intercept:.6g} (se {slope.se_intercept:.3g}, {percent} CI "
                     f"{_interval(intervals.intercept)})")
        line = (f"{slope.slope:.6g} (se {slope.se_slope:.3g}, {percent} CI "
                f"{_interval(intervals.slope)})")
    else:
        intercept = f"{slope.intercept:.6g} ({slope.status})"
        line = f"{slope.slope:.6g} ({slope.status})"
    rows = [
        ("n", f"{report.n_rows} (weight {shift.weight_sum:.10g}, "
              f"positives {shift.positives:.10g})"),
        ("Dxy", f"{2.0 * report.c_statistic - 1.0:.6g}"),
        ("C (ROC)", c), ("R2", f"{report.r2:.6g}"),
        ("D", f"{report.discrimination:.6g}"),
        ("D:Chi-sq", f"{report.discrimination_chi2:.6g}"),
        ("D:p", f"{report.discrimination_pvalue:.3g}"),
        ("U", f"{report.unreliability:.6g}"),
        ("U:Chi-sq", f"{miller.joint:.6g}"), ("U:p", f"{miller.joint_pvalue:.3g}"),
        ("Q", f"{report.quality:.6g}"),
        ("Brier", f"{report.brier:.6g}"), ("Brier scaled", f"{report.brier_scaled:.6g}"),
        ("Intercept", intercept), ("Slope", line),
        ("E90", f"{report.e90:.6g}"), ("ICI", f"{report.ici:.6g}"),
        ("E50", f"{report.e50:.6g}"),
        ("S:z", f"{report.spiegelhalter_z:.6g}"), ("S:p", f"{report.spiegelhalter_pvalue:.3g}"),
        ("Log loss", f"{report.log_loss:.6g}"),
    ]
    if math.isfinite(shift.shift):
        oe = shift.observed_expected_at(level)
        rows += [
            ("In the large", f"{shift.shift:.6g} (se {shift.se:.3g}, {percent} CI "
                             f"{_interval(shift.confint(level))})"),
            ("O/E", f"{oe.ratio:.6g} {_interval((oe.low, oe.high))}"),
        ]
    else:
        rows.append(("In the large", f"{shift.shift} ({shift.status})"))
    rows += [
        ("Miller a=0,b=1", f"{miller.joint:.6g} (2 df, p = {miller.joint_pvalue:.3g})"),
        ("Miller a=0|b=1", f"{miller.intercept:.6g} (1 df, p = {miller.intercept_pvalue:.3g})"),
        ("Miller b=1|a", f"{miller.slope:.6g} (1 df, p = {miller.slope_pvalue:.3g})"),
    ]
    width = max(len(name) for name, _ in rows)
    lines = [f"  {name.ljust(width)}  {value}" for name, value in rows]
    if report.smooth_curve is not None:
        lines += _describe_smooth_curve(report.smooth_curve)
    curve = report.curve
    lines.append(f"  calibration curve ({curve.weight.size} bins of about equal weight, "
                 f"{percent} Wilson intervals):")
    lines.append("    predicted  observed  interval              weight")
    for predicted, observed, low, high, weight in zip(curve.predicted, curve.observed,
                                                      curve.low, curve.high, curve.weight):
        lines.append(f"    {predicted:9.4f}  {observed:8.4f}  [{low:.4f}, {high:.4f}]"
                     f"  {weight:10.6g}")
    return lines


def _describe_smooth_curve(curve: Any) -> list[str]:
    """The smooth curve's statistics, each with its bound (from a stream) and its simulation
    interval, and its knots and coefficients."""
    if curve.method == "rcs":
        knots = ", ".join(f"{knot:.4g}" for knot in curve.knots)
        title = (f"  smooth calibration curve (restricted cubic spline of the log-odds, knots "
                 f"{knots}; {curve.status}; intervals from {curve.draws} draws of the "
                 f"coefficients):")
    else:
        title = "  smooth calibration curve (lowess, as val.prob):"
    lines = [title]
    for name in ("ici", "e50", "e90", "emax"):
        value = f"{getattr(curve, name):.6g}"
        if curve.bounds[name] > 0:
            value += f" ± {curve.bounds[name]:.1g}"
        if curve.method == "rcs":
            value += f"  {_percent(curve.level)} {_interval(curve.intervals[name])}"
        label = "ICI (Eavg)" if name == "ici" else name.capitalize()
        lines.append(f"    {label.ljust(10)}  {value}")
    if curve.method == "rcs":
        lines.append("    coefficients  " + ", ".join(f"{b:.6g}" for b in curve.coefficients))
    return lines


def _report_record(report: CalibrationReport, level: float) -> dict[str, Any]:
    """``report.to_dict()``, with every interval at ``level``."""
    record = {**report.to_dict(), "level": level}
    if math.isfinite(report.shift.shift):
        record["shift_ci_low"], record["shift_ci_high"] = report.shift.confint(level)
        oe = report.shift.observed_expected_at(level)
        record["observed_expected_low"], record["observed_expected_high"] = oe.low, oe.high
    if report.slope.converged:
        intervals = report.slope.confint(level)
        record["intercept_low"], record["intercept_high"] = intervals.intercept
        record["slope_low"], record["slope_high"] = intervals.slope
    return record


def _thresholds(text: str | None) -> np.ndarray | None:
    """``--thresholds``: ``START:STOP:STEP`` (both ends included, in decimal steps, so
    ``0.05:0.5:0.05`` gives 0.05, 0.1, ..., 0.5 as written) or a comma-separated list;
    checked as :func:`logitshift.decision_curve` checks them."""
    if text is None:
        return None
    try:
        if ":" in text:
            start, stop, step = (Decimal(part.strip()) for part in text.split(":"))
            if not step > 0 or not stop >= start:
                raise ValueError
            count = int((stop - start) / step) + 1
            if count > 100_000:
                raise InputError(f"--thresholds {text}: {count:,} thresholds; give at most "
                                 "100,000", argument="thresholds", value=text)
            values = [float(start + i * step) for i in range(count)]
        else:
            values = [float(part) for part in text.split(",")]
    except InputError:
        raise
    except (ValueError, ArithmeticError):
        raise InputError(f"--thresholds {text!r}: give START:STOP:STEP with STOP >= START "
                         "and STEP > 0 (e.g. 0.05:0.5:0.01), or a list (0.1,0.2,0.3)",
                         argument="thresholds", value=text) from None
    return check_thresholds(values)


def _validate(args: argparse.Namespace) -> int:
    # Options are checked before the pass, not after it.
    column_roles(args.label, args.offset, args.weight)
    normal_quantile(args.level)
    as_positive_int(args.bins, "bins")
    thresholds = _thresholds(args.thresholds)
    decision = args.dca or thresholds is not None or args.dca_plot is not None
    plot = _plotting(args.plot)
    dca_plot = _plotting(args.dca_plot, "--dca-plot")
    if plot is not None and dca_plot is not None and _same_file(args.plot, args.dca_plot):
        raise InputError(f"--plot and --dca-plot name one file, {args.plot!r}: give two",
                         argument="--dca-plot", value=args.dca_plot)
    source = _sql_source(args)
    _refuse_inputs(args.paths, [("--plot", args.plot), ("--dca-plot", args.dca_plot)])
    options = {"offset_is": args.offset_is, "bins": args.bins, "level": args.level,
               "se_type": args.se_type, "decision": decision, "thresholds": thresholds,
               "curve": args.curve}
    if source is not None:
        report = validate_frame(source, args.label, args.offset, args.weight, **options)
    else:
        report = validate_file(args.paths, args.label, args.offset, args.weight,
                               progress=False if args.quiet else None, format=args.format,
                               **options)
    # Figures before the report, so that a path that cannot be written leaves stdout empty.
    if plot is not None:
        _save_figure(plot.smooth_calibration_figure(report) if report.smooth_curve is not None
                     else plot.report_figure(report), args.plot)
    if dca_plot is not None:
        _save_figure(dca_plot.decision_figure(report.decision), args.dca_plot)
    if args.json:
        print(json.dumps(json_safe(_report_record(report, args.level)), allow_nan=False))
    else:
        lines = _describe_report(report, args.level)
        if report.decision is not None:
            lines.append("  decision curve (net benefit; treated: risk >= threshold; ± its "
                         "bound from the histogram):")
            lines += ["  " + line for line in describe(report.decision)]
        print("\n".join(lines))
    return 0


def _sql_source(args: argparse.Namespace) -> Any:
    """The ``--sql`` query as a source on a new in-memory DuckDB (None without ``--sql``),
    where no PATH is given too; PATHs without ``--sql`` otherwise."""
    if args.sql is None:
        if not args.paths:
            raise InputError("name the input: one PATH or more, or --sql QUERY",
                             argument="paths")
        return None
    if args.paths:
        raise InputError(f"give PATHs or --sql, not both (PATH {args.paths[0]!r})",
                         argument="--sql")
    if args.format is not None:
        raise InputError("--format applies to PATHs: DuckDB reads what --sql names",
                         argument="--format")
    # DuckDB and sqlglot are imported only when the query runs: ask for them before.
    if any(importlib.util.find_spec(name) is None for name in ("duckdb", "sqlglot")):
        raise InputError('--sql runs on DuckDB: pip install "logitshift[sql]"',
                         argument="--sql")
    from .sql import table

    return table(args.sql)


def _add_input_flags(command: argparse.ArgumentParser, offset_help: str,
                     offset_required: bool) -> None:
    """The flags that say where the rows are, shared by ``fit`` and ``validate``."""
    command.add_argument("paths", metavar="PATH", nargs="*",
                         help="a .csv or .parquet file, a directory of Parquet files, a glob "
                              "pattern, or - for CSV on standard input")
    command.add_argument("--sql", metavar="QUERY",
                         help="instead of PATHs, the rows of a query that DuckDB runs, e.g. "
                              "\"SELECT * FROM 'events/*.parquet' WHERE day > '2024-06-01'\" "
                              "(needs logitshift[sql]): the sketch is one GROUP BY on it")
    command.add_argument("--label", required=True, metavar="COL", help="labels in [0, 1]")
    command.add_argument("--offset", required=offset_required, metavar="COL", help=offset_help)
    command.add_argument("--weight", metavar="COL", help="non-negative frequency weights")
    command.add_argument("--offset-is", choices=["logit", "probability"], default="logit",
                         help="what the --offset column holds: raw scores (log-odds, the "
                              "default) or predicted probabilities (0 and 1 must agree with "
                              "their labels)")


def _add_output_flags(command: argparse.ArgumentParser) -> None:
    """The flags that say how to read the files and what to print, shared by ``fit`` and
    ``validate``."""
    command.add_argument("--level", type=float, default=0.95,
                         help="confidence level of the intervals (default 0.95)")
    command.add_argument("--se-type", choices=["model", "robust"], default="model",
                         help="standard errors from the model's information (the default) or "
                              "the sandwich (HC0, for sampling weights and soft labels; the "
                              "intervals are then Wald's)")
    command.add_argument("--format", choices=["csv", "parquet"],
                         help="the format of every PATH, where its extension does not tell it")
    command.add_argument("--json", action="store_true", help="print one JSON object")
    command.add_argument("--quiet", action="store_true",
                         help="no progress line (shown only when standard error is a "
                              "terminal)")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=_PROG,
        description="The optimal shift of raw scores (log-odds) under binary cross-entropy.",
    )
    parser.add_argument("--version", action="version", version=f"{_PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    demo = commands.add_parser("demo", help="fit the seed notebook's example, both scenarios")
    demo.add_argument("--json", action="store_true", help="print one JSON object")
    demo.add_argument("--plot", metavar="FILE",
                      help="also draw scenario B's loss curve and reliability diagram into "
                           "FILE (.png, .pdf, .svg, ...; needs logitshift[plot])")
    demo.set_defaults(run=_demo)

    run = commands.add_parser(
        "fit", help="fit the shift for columns of a CSV or Parquet file",
        description="Fit the shift for columns of CSV or Parquet files (chosen by each "
                    "file's extension), in one pass; PATH '-' reads CSV from standard input.",
    )
    _add_input_flags(run, "fixed raw scores the shift is added to", offset_required=False)
    run.add_argument("--pseudo-count", type=float, default=0.0, metavar="A",
                     help="add a positive and a negative row of weight A at the mean offset "
                          "(of each group, with --group)")
    _add_output_flags(run)
    run.add_argument("--plot", metavar="FILE",
                     help="also draw the loss curve and reliability diagram into FILE "
                          "(with --group, the groups' shifts against their size; .png, "
                          ".pdf, .svg, ...; needs logitshift[plot])")
    groups = run.add_argument_group(
        "per-group shifts", "With --group, a shift per group from the same one pass: a "
                            "summary, then the groups of largest |shift|.")
    groups.add_argument("--group", metavar="COL",
                        help="fit a shift per group of this column (text or integers)")
    groups.add_argument("--shrink", action="store_true",
                        help="also fit the random-intercept model (lme4's glmer(y ~ 1 + "
                             "(1 | group) + offset(f))): mean, tau and shrunk shifts")
    groups.add_argument("--l2", type=float, default=0.0, metavar="L",
                        help="penalise each group's shift by L·shift²/2 (XGBoost's "
                             "reg_lambda): finite, shrunk shifts")
    groups.add_argument("--nagq", type=int, metavar="K",
                        help="with --shrink: K-point adaptive Gauss-Hermite quadrature "
                             "(default 1, the Laplace approximation)")
    groups.add_argument("--output", metavar="FILE",
                        help="write the whole per-group table to FILE (.csv or .parquet)")
    groups.add_argument("--top", type=int, metavar="N",
                        help="how many groups to list (default 10)")
    run.set_defaults(run=_fit)

    check = commands.add_parser(
        "validate", help="the calibration report of a model's scores in a CSV or Parquet file",
        description="The calibration report of a model's scores (rms::val.prob's statistics, "
                    "the calibration in the large, Miller's tests and the binned curve), "
                    "from columns of CSV or Parquet files in one pass; PATH '-' reads CSV "
                    "from standard input. The c-statistic comes from the sketch's fine "
                    "histogram of the scores, with a bound on its error.",
    )
    _add_input_flags(check, "the model's raw scores (log-odds), or its probabilities with "
                            "--offset-is probability", offset_required=True)
    check.add_argument("--bins", type=int, default=10, metavar="N",
                       help="bins of the calibration curve, of about equal weight "
                            "(default 10)")
    _add_output_flags(check)
    check.add_argument("--plot", metavar="FILE",
                       help="also draw the calibration curve, both recalibrations and the "
                            "predictions by label into FILE (.png, .pdf, .svg, ...; needs "
                            "logitshift[plot]); with --curve, the smooth curve with its "
                            "band and statistics")
    check.add_argument("--curve", choices=["rcs", "loess"],
                       help="also the smooth calibration curve: a restricted cubic spline "
                            "of the log-odds (5 knots, one pass) with ICI, E50, E90 and Emax "
                            "and their intervals; loess needs rows in memory and is refused "
                            "for files")
    dca = check.add_argument_group(
        "decision curve", "With --dca, the net benefit at each threshold probability for the "
                          "scores, after the shift and after the logistic recalibration, "
                          "beside treat all, from the same pass.")
    dca.add_argument("--dca", action="store_true", help="add the decision curve")
    dca.add_argument("--thresholds", metavar="SPEC",
                     help="its thresholds: START:STOP:STEP, ends included (e.g. "
                          "0.05:0.5:0.01), or a list (0.1,0.2,0.3); default 0.01:0.99:0.01")
    dca.add_argument("--dca-plot", metavar="FILE",
                     help="draw the decision curve into FILE (.png, .pdf, .svg, ...; needs "
                          "logitshift[plot])")
    check.set_defaults(run=_validate)
    return parser


def _in_flags(message: str) -> str:
    """A library message in the command's words: ``pseudo_count = -1.0 must be ...`` reads
    ``--pseudo-count -1.0 must be ...``, ``pass pseudo_count > 0`` reads ``pass
    --pseudo-count > 0``. "level" and "format" are words as well as arguments: alone, they
    are left as they are."""
    for phrase, flag in _PHRASES.items():
        message = message.replace(phrase, flag)
    for name, flag in _FLAGS.items():
        message = re.sub(rf"(?<![\w-]){name} ?= ?", f"{flag} ", message)
        if "_" in name:
            message = re.sub(rf"(?<![\w-]){name}(?![\w-])", flag, message)
    return " ".join(message.split())


def _say(kind: str, message: str) -> None:
    print(f"{_PROG}: {kind}: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    0 on success; 2 with one line on stderr for an error the user can act on (bad input,
    a missing file or column, a bad option); 1 and nothing more when the reader of stdout
    has gone (``logitshift demo | head -1``); 130 with one line on Ctrl-C. Warnings are
    written as one line each (``logitshift: warning: ...``). The last resort: any other
    exception is a fault of logitshift's own, and ends with one line naming it (its type and
    message, and that it is a bug to report) and exit status 1, never a traceback.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status, error = _run(argv)
    # Warnings first: they were raised before whatever stopped the command.
    for warning in caught:
        _say("warning", _in_flags(str(warning.message)))
    if error is not None:
        _say("error", error)
    return status


def _run(argv: Sequence[str] | None) -> tuple[int, str | None]:
    """The exit status, and the error line to end with (None for none)."""
    try:
        args = _parser().parse_args(argv)
        return args.run(args), None
    except BrokenPipeError:
        # The reader went away (`logitshift demo | head -3`): nothing to say, and Python must
        # not fail again flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1, None
    except InputError as exc:
        return EXIT_USAGE, _in_flags(str(exc))
    except OSError as exc:
        return EXIT_USAGE, _in_flags(str(exc))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED, "interrupted"
    except Exception as exc:  # the last resort: a bug, said in one line
        return EXIT_INTERNAL, (f"internal error, please report it: {type(exc).__name__}: "
                               f"{' '.join(str(exc).split())}")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
