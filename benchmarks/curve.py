"""The smooth calibration curve: its cost beside `validate` in memory and beside `fit_file`
on a stream, its peak memory, and R's glm + rms::rcs on the same kind of rows.

Run from the repository root::

    python benchmarks/curve.py                           # 1e7 rows in memory and streamed
    python benchmarks/curve.py --rows 1e6 --file-rows 1e6 --r-rows 1e5   # quick
    python benchmarks/curve.py --file-rows 1e8 --rows 0 --r-rows 0       # the 1e8 stream

Scores ``f ~ N(0, 2)`` (float64), labels (int8) from ``σ(0.8 f - 1.5)``. In memory, the rows
alternate: ``validate(y, f)``, ``validate(y, f, curve="rcs")``, ``calibration_curve(y, f)``
and one exact Newton iteration on the rows (the numpy reference ``losses.spline_terms``,
the ``n × K`` design: what fitting on the rows instead of the sketch would cost per
iteration); each time is the median of ``--repeats``, with its ratio to ``validate``.
Streamed, a Parquet file of ``--file-rows`` rows is written once and read with a warm page
cache: ``fit_file`` (the ratio's base), ``validate_file`` with and without the curve and
``calibration_curve_file``, and the peak resident memory (VmHWM) of a fresh process running
``calibration_curve_file``. R: ``glm(y ~ rcs(lp, knots), binomial)`` with the same five knots,
on rows R draws itself (``system.time`` of the fit alone), at ``--r-rows`` and at larger
sizes until one takes more than ``--r-limit`` seconds.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import logitshift
from logitshift._core.losses import spline_terms

SEED = 2026
CHUNK = 10_000_000

_PEAK_RSS = """
import sys, logitshift
curve = logitshift.calibration_curve_file(sys.argv[1], "label", "offset", progress=False)
print(curve.ici, curve.bounds["ici"],
      [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")][0])
"""

_R_FIT = """
suppressMessages(library(rms))
n <- as.numeric(commandArgs(TRUE)[1])
set.seed(2026)
lp <- rnorm(n, 0, 2)
y <- rbinom(n, 1, plogis(0.8 * lp - 1.5))
knots <- round(quantile(lp, c(.05, .275, .5, .725, .95)) * 16) / 16
seconds <- system.time(fit <- glm(y ~ rcs(lp, knots), family = binomial))[["elapsed"]]
cat(seconds, coef(fit), "\\n")
"""


def make_data(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0.0, 2.0, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-(0.8 * offsets - 1.5)))).astype(np.int8)
    return labels, offsets


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def interleaved(functions: dict[str, object], repeats: int) -> dict[str, float]:
    """The median seconds of each function, the functions run in turn ``repeats`` times (so
    that a busy spell of the machine falls on all of them)."""
    times: dict[str, list[float]] = {name: [] for name in functions}
    for name, function in functions.items():  # compile and warm
        function()
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def in_memory(n: int, repeats: int) -> None:
    y, f = make_data(n)
    curve = logitshift.calibration_curve(y, f)
    knots, beta = curve.knots, curve.coefficients
    functions = {
        "`validate(y, f)`": lambda: logitshift.validate(y, f),
        '`validate(y, f, curve="rcs")`': lambda: logitshift.validate(y, f, curve="rcs"),
        "`calibration_curve(y, f)`": lambda: logitshift.calibration_curve(y, f),
        "one Newton iteration on the rows (numpy, n × K design)":
            lambda: spline_terms(y, f, None, knots, beta),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        seconds = interleaved(functions, repeats)
    base = seconds["`validate(y, f)`"]
    print(f"\n### In memory: n = {n:,}, median of {repeats}\n")
    print("| what | seconds | × `validate` |\n|---|---:|---:|")
    for name, value in seconds.items():
        print(f"| {name} | {value:.3f} | {value / base:.2f} |")
    print(f"\nICI {curve.ici:.6f}, E50 {curve.e50:.6f}, E90 {curve.e90:.6f}, Emax "
          f"{curve.emax:.6f}; {curve.iterations} Newton iterations on the sketch")


def write_file(path: Path, rows: int) -> None:
    schema = pa.schema([("label", pa.int8()), ("offset", pa.float64())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, CHUNK):
            y, f = make_data(min(CHUNK, rows - start), seed=SEED + start)
            writer.write_table(pa.table({"label": y, "offset": f}, schema=schema))


def streamed(rows: int, repeats: int, folder: str) -> None:
    path = Path(folder) / f"curve_{rows}.parquet"
    if not path.exists():
        write_file(path, rows)
    options = {"progress": False}
    functions = {
        "`fit_file`": lambda: logitshift.fit_file(path, "label", "offset", **options),
        "`validate_file`": lambda: logitshift.validate_file(path, "label", "offset",
                                                             **options),
        '`validate_file(curve="rcs")`': lambda: logitshift.validate_file(
            path, "label", "offset", curve="rcs", **options),
        "`calibration_curve_file`": lambda: logitshift.calibration_curve_file(
            path, "label", "offset", **options),
    }
    seconds = interleaved(functions, repeats)
    done = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(path)], capture_output=True,
                          text=True, check=True)
    ici, bound, peak = done.stdout.split()
    size = path.stat().st_size / 2**30
    print(f"\n### Streamed: {rows:,} rows of Parquet ({size:.2f} GiB, warm page cache), "
          f"median of {repeats}\n")
    print("| what | seconds | × `fit_file` |\n|---|---:|---:|")
    base = seconds["`fit_file`"]
    for name, value in seconds.items():
        print(f"| {name} | {value:.2f} | {value / base:.2f} |")
    print(f"\nOne pass each. ICI {float(ici):.6f} ± {float(bound):.1g}; peak resident memory "
          f"of a process running `calibration_curve_file`: {int(peak) / 1024:.0f} MiB")


def in_r(rows: int, limit: float) -> None:
    print(f"\n### R: glm(y ~ rms::rcs(lp, knots), binomial) on rows drawn in R\n")
    print("| rows | seconds (the fit) |\n|---:|---:|")
    n = rows
    while True:
        start = time.perf_counter()
        try:
            done = subprocess.run(["Rscript", "-e", _R_FIT, str(n)], capture_output=True,
                                  text=True, timeout=limit * 4)
        except subprocess.TimeoutExpired:
            print(f"| {n:,} | did not finish in {limit * 4:.0f} s |")
            return
        if done.returncode != 0:
            print(f"| {n:,} | failed: {done.stderr.strip().splitlines()[-1]} |")
            return
        seconds = float(done.stdout.split()[0])
        print(f"| {n:,} | {seconds:.1f} (the whole script {time.perf_counter() - start:.0f}) |")
        if seconds > limit:
            return
        n *= 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e7)
    parser.add_argument("--file-rows", type=float, default=1e7)
    parser.add_argument("--r-rows", type=float, default=1e6)
    parser.add_argument("--r-limit", type=float, default=60.0,
                        help="stop R's sizes after a fit slower than this (seconds)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--folder", default=tempfile.gettempdir())
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}, "
          f"numpy {np.__version__}, logitshift {logitshift.__version__}")
    if args.rows:
        in_memory(int(args.rows), args.repeats)
    if args.file_rows:
        streamed(int(args.file_rows), args.repeats, args.folder)
    if args.r_rows:
        in_r(int(args.r_rows), args.r_limit)


if __name__ == "__main__":
    main()
