"""The ``logitshift`` command: ``demo`` and ``fit``.

Errors a user can act on (bad input, a missing file or column, a ``--plot`` file that cannot
be written) end with one line on stderr and exit status 2; messages and warnings name the
command's flags (``--pseudo-count``), not the Python arguments behind them. Nothing ends in
a Python traceback: see :func:`main` for the last resort.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from . import __version__
from ._fit import fit
from ._result import ShiftFit, normal_quantile
from ._shift import check_options
from ._validate import InputError, column_roles, naming_columns

__all__ = ["main"]

EXIT_USAGE = 2
#: A fault of logitshift's own (a bug): one line naming the exception, as Python's exit status.
EXIT_INTERNAL = 1
#: 128 + SIGINT, as shells report a command stopped by Ctrl-C.
EXIT_INTERRUPTED = 130
_PROG = "logitshift"
#: Python arguments and the flags that set them, for messages raised by the library.
_FLAGS = {"pseudo_count": "--pseudo-count", "level": "--level", "format": "--format"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _jsonable(value: Any) -> Any:
    """Floats for JSON: ``inf``/``-inf``/``nan`` become strings, never bare ``Infinity``."""
    if isinstance(value, dict):
        return {key: _jsonable(item) for key, item in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


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
    lines = [
        f"  shift         {result.shift!r}",
        f"  se            {result.se:.6g}",
        f"  {level:.0%} CI        [{low:.6g}, {high:.6g}] (profile likelihood)",
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


def _plotting(path: str | None) -> Any:
    """The plot module when ``--plot PATH`` asks for a figure (else None), checked before any
    work: matplotlib is there, and the file's extension names a format it writes."""
    if path is None:
        return None
    try:
        from . import plot
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError as exc:
        raise InputError(f"--plot: {exc}", argument="--plot") from None
    suffix = Path(path).suffix.lower().lstrip(".")
    formats = FigureCanvasBase.get_supported_filetypes()
    if suffix and suffix not in formats:
        raise InputError(f"--plot {path}: cannot write the format {suffix!r}; use one of "
                         f"{', '.join(sorted(formats))}", argument="--plot", value=path)
    _check_writable(path)
    return plot


def _check_writable(path: str) -> None:
    """Refuse a ``--plot`` file that cannot be written before the pass, not after it: open it
    for appending (which leaves a file that is there unchanged), and remove it again if it
    was not there."""
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise InputError(f"--plot {path}: there is no directory {folder!r}",
                         argument="--plot", value=path)
    if os.path.isdir(path):
        raise InputError(f"--plot {path}: is a directory; name a file", argument="--plot",
                         value=path)
    existed = os.path.exists(path)
    try:
        with open(path, "ab"):
            pass
    except OSError as exc:
        raise InputError(f"--plot {path}: cannot write it ({exc.strerror or exc})",
                         argument="--plot", value=path) from None
    if not existed:
        os.remove(path)


def _write_plot(plot: Any, path: str, result: ShiftFit, y: Any, offset: Any = None,
                level: float = 0.95) -> None:
    """Save the figure of the fit, in the format of the file's extension (PNG without one).
    No pyplot and no display: savefig renders each format with its own canvas (Agg for
    PNG), whatever backend is configured."""
    figure = plot.figure(result, y, offset, level=level)
    figure.savefig(path, format=Path(path).suffix.lower().lstrip(".") or "png")


def _demo(args: argparse.Namespace) -> int:
    plot = _plotting(args.plot)
    labels, offsets = _seed_example()
    scenario_a = fit(labels)
    scenario_b = fit(labels, offsets)
    if plot is not None:
        _write_plot(plot, args.plot, scenario_b, labels, offsets)
    if args.json:
        report = {"scenario_a": scenario_a.to_dict(), "scenario_b": scenario_b.to_dict()}
        print(json.dumps(_jsonable(report), allow_nan=False))
        return 0
    print(f"seed example: n = {labels.size}, positives = {int(labels.sum())}")
    print("scenario A: no offset (closed form log(m/k))")
    print("\n".join(_describe(scenario_a, 0.95, details=False)))
    print("scenario B: offsets ~ N(0, 1)")
    print("\n".join(_describe(scenario_b, 0.95, details=False)))
    return 0


def _fit(args: argparse.Namespace) -> int:
    from .io import sketch_file  # pyarrow loads only when a file is read

    # Options are checked before the pass, not after it.
    roles, _ = column_roles(args.label, args.offset, args.weight)
    check_options(None, args.pseudo_count, None, 1)
    normal_quantile(args.level)
    plot = _plotting(args.plot)
    # One pass, a batch at a time: memory stays bounded whatever the files' size.
    sketch = sketch_file(args.paths, args.label, args.offset, args.weight,
                         progress=False if args.quiet else None, format=args.format)
    with naming_columns(roles):
        result = sketch.solve(pseudo_count=args.pseudo_count)
    if plot is not None:
        # Before the report, so that a path that cannot be written leaves stdout empty.
        _write_plot(plot, args.plot, result, sketch, level=args.level)
    if args.json:
        print(json.dumps(_jsonable(result.to_dict(args.level)), allow_nan=False))
    else:
        print("\n".join(_describe(result, args.level, details=True)))
    return 0


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
    run.add_argument("paths", metavar="PATH", nargs="+",
                     help="a .csv or .parquet file, a directory of Parquet files, a glob "
                          "pattern, or - for CSV on standard input")
    run.add_argument("--label", required=True, metavar="COL", help="labels in [0, 1]")
    run.add_argument("--offset", metavar="COL", help="fixed raw scores the shift is added to")
    run.add_argument("--weight", metavar="COL", help="non-negative frequency weights")
    run.add_argument("--pseudo-count", type=float, default=0.0, metavar="A",
                     help="add a positive and a negative row of weight A at the mean offset")
    run.add_argument("--level", type=float, default=0.95,
                     help="confidence level of the intervals (default 0.95)")
    run.add_argument("--format", choices=["csv", "parquet"],
                     help="the format of every PATH, where its extension does not tell it")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument("--quiet", action="store_true",
                     help="no progress line (shown only when standard error is a terminal)")
    run.add_argument("--plot", metavar="FILE",
                     help="also draw the loss curve and reliability diagram into FILE "
                          "(.png, .pdf, .svg, ...; needs logitshift[plot])")
    run.set_defaults(run=_fit)
    return parser


def _in_flags(message: str) -> str:
    """A library message in the command's words: ``pseudo_count = -1.0 must be ...`` reads
    ``--pseudo-count -1.0 must be ...``, ``pass pseudo_count > 0`` reads ``pass
    --pseudo-count > 0``. "level" and "format" are words as well as arguments: alone, they
    are left as they are."""
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
