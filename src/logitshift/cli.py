"""The ``logitshift`` command: ``demo`` and ``fit``.

Errors a user can act on (bad input, a missing file or column) end with one line on stderr
and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import numpy as np

from ._fit import fit
from ._result import ShiftFit, normal_quantile
from ._shift import check_options
from ._validate import InputError, column_roles, naming_columns

__all__ = ["main"]

EXIT_USAGE = 2
_PROG = "logitshift"


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
    return plot


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

    plot = _plotting(args.plot)
    roles, _ = column_roles(args.label, args.offset, args.weight)
    # Options are checked before the pass, not after it.
    check_options(None, args.pseudo_count, None, 1)
    normal_quantile(args.level)
    # One pass, a batch at a time: memory stays bounded whatever the files' size.
    sketch = sketch_file(args.paths, args.label, args.offset, args.weight,
                         progress=False if args.quiet else None)
    with naming_columns(roles), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = sketch.solve(pseudo_count=args.pseudo_count)
    for warning in caught:
        print(f"{_PROG}: warning: {warning.message}", file=sys.stderr)
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
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument("--quiet", action="store_true",
                     help="no progress line (shown only when standard error is a terminal)")
    run.add_argument("--plot", metavar="FILE",
                     help="also draw the loss curve and reliability diagram into FILE "
                          "(.png, .pdf, .svg, ...; needs logitshift[plot])")
    run.set_defaults(run=_fit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except BrokenPipeError:
        # The reader went away (`logitshift demo | head -3`): nothing to say, and Python must
        # not fail again flushing stdout at exit.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except (InputError, OSError) as exc:
        message = " ".join(str(exc).split())
        print(f"{_PROG}: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
