"""Per-group shifts: logitshift.fit_groups against ungrouped logitshift.fit, and the
random-intercept model against lme4's glmer.

1. ``--rows`` rows (default 1e7), offsets ~ N(0, 1), labels from σ(offset - 1 + u_g), with
   1e3 and 1e5 groups: the median of ``--repeats`` runs of ``logitshift.fit(y, offset)`` and
   of ``logitshift.fit_groups(y, group, offset)`` on the same arrays, in this process, and
   their ratio (targets: at most 3× with 1e3 groups, 8× with 1e5); also the time of the
   group sketch's fill alone (as ``fit_groups`` fills it: small groups kept as rows), how
   many rows it keeps and how many (group, cell) pairs the rest occupy.
2. ``--glmer-rows`` rows (default 1e6) in ``--glmer-groups`` groups (default 2000), u_g ~
   N(0, 0.6²): ``fit_groups(..., shrinkage="random")`` with the Laplace approximation and
   with nagq=9, against ``Rscript`` running ``glmer(y ~ 1 + (1 | g) + offset(f), binomial,
   nAGQ = 1 / 9)`` on the same rows written to a CSV file (R's time excludes reading it),
   with both times and the differences of μ̂, τ̂ and the log-likelihood. Skipped where
   Rscript or lme4 is missing; ``--glmer-rows 0`` skips it.
3. ``--parquet-rows`` rows (default 1e8) in ``--parquet-groups`` groups (default 1e4),
   written once to a Parquet file (label int8, group int32, offset float64) under
   ``--dir``: ``fit_groups_file`` in a fresh process, its time and its peak resident memory
   (``VmHWM``; target below 1 GiB). ``--parquet-rows 0`` skips it.

    python benchmarks/groups.py
    python benchmarks/groups.py --rows 1e6 --glmer-rows 1e5 --repeats 3 --parquet-rows 1e6
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

import logitshift
from logitshift._summary.group_sketch import GroupSketch

_R = r"""
suppressPackageStartupMessages(library(lme4))
args <- commandArgs(trailingOnly = TRUE)
data <- read.csv(args[1])
data$g <- factor(data$g)
for (nagq in c(1, 9)) {
  start <- proc.time()[["elapsed"]]
  m <- glmer(y ~ 1 + (1 | g) + offset(f), data = data, family = binomial, nAGQ = nagq)
  elapsed <- proc.time()[["elapsed"]] - start
  cat(nagq, sprintf("%.17g", c(elapsed, fixef(m)[[1]],
                               attr(VarCorr(m)[[1]], "stddev")[[1]],
                               as.numeric(logLik(m)))), "\n")
}
"""


# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec.
_PEAK_RSS = """
import sys, time, warnings, logitshift
warnings.simplefilter("ignore")
start = time.perf_counter()
result = logitshift.fit_groups_file(sys.argv[1], "label", "group", "offset", progress=False)
elapsed = time.perf_counter() - start
peak = [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")][0]
print(elapsed, peak, result.n_groups, result.pooled.shift)
"""


def _data(rows: int, groups: int, tau: float, seed: int) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    group = rng.integers(0, groups, rows)
    offset = rng.normal(0.0, 1.0, rows)
    effect = rng.normal(0.0, tau, groups)
    y = (rng.random(rows) < 1.0 / (1.0 + np.exp(-(offset - 1.0 + effect[group])))).astype(
        np.int8)
    return y, group, offset


def _median(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def grouped_against_fit(rows: int, repeats: int) -> None:
    print(f"**fit_groups against fit, n = {rows:.0e}: median of {repeats} runs, seconds**\n")
    print("| groups | fit | fit_groups | ratio | fill alone | rows kept | (group, cell) pairs |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for groups in (1_000, 100_000):
        y, group, offset = _data(rows, groups, 0.3, 1)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logitshift.fit_groups(y[:5000], group[:5000], offset[:5000])  # compile
            logitshift.fit(y, offset)
            plain = _median(lambda: logitshift.fit(y, offset), repeats)
            grouped = _median(lambda: logitshift.fit_groups(y, group, offset), repeats)
        fill = _median(lambda: GroupSketch().update(y, group, offset, keep_rows=True),
                       repeats)
        sketch = GroupSketch().update(y, group, offset, keep_rows=True)
        kept = 0 if sketch._kept is None else int(sketch._kept.counts.sum())
        print(f"| {groups:,} | {plain:.3f} | {grouped:.3f} | {grouped / plain:.1f} | "
              f"{fill:.3f} | {kept:,} | {sketch._centres.size:,} |")
    print()


def against_glmer(rows: int, groups: int) -> None:
    print(f"**Random intercepts, n = {rows:.0e}, {groups:,} groups, τ = 0.6: fit_groups "
          f"against glmer (Rscript), seconds**\n")
    if shutil.which("Rscript") is None:
        print("Rscript not found: skipped.\n")
        return
    y, group, offset = _data(rows, groups, 0.6, 2)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "data.csv"
        np.savetxt(path, np.column_stack([y, group, offset]), delimiter=",",
                   header="y,g,f", comments="", fmt=["%d", "%d", "%.17g"])
        script = Path(folder) / "glmer.R"
        script.write_text(_R)
        run = subprocess.run(["Rscript", str(script), str(path)], capture_output=True,
                             text=True)
    if run.returncode:
        print(f"Rscript failed: {run.stderr.strip().splitlines()[-1:]}\n")
        return
    r = {int(line.split()[0]): [float(v) for v in line.split()[1:]]
         for line in run.stdout.strip().splitlines()}
    print("| nagq | glmer | fit_groups | speed-up | μ̂ − glmer | τ̂ − glmer | log L − glmer |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logitshift.fit_groups(y[:5000], group[:5000], offset[:5000], shrinkage="random")
        for nagq in (1, 9):
            start = time.perf_counter()
            result = logitshift.fit_groups(y, group, offset, shrinkage="random", nagq=nagq)
            elapsed = time.perf_counter() - start
            seconds, mean, tau, loglik = r[nagq]
            print(f"| {nagq} | {seconds:.2f} | {elapsed:.2f} | {seconds / elapsed:.0f}× | "
                  f"{result.mean - mean:.1e} | {result.tau - tau:.1e} | "
                  f"{result.loglik - loglik:.1e} |")
    print()


def write_parquet(path: Path, rows: int, groups: int, chunk: int = 10_000_000) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("label", pa.int8()), ("group", pa.int32()), ("offset", pa.float64())])
    with pq.ParquetWriter(path, schema) as writer:
        for k, start in enumerate(range(0, rows, chunk)):
            y, group, offset = _data(min(chunk, rows - start), groups, 0.3, 100 + k)
            writer.write_table(pa.table({"label": y, "group": group.astype(np.int32),
                                         "offset": offset}, schema=schema))


def parquet_memory(rows: int, groups: int, folder: str) -> None:
    print(f"**fit_groups_file on Parquet, n = {rows:.0e}, {groups:,} groups: a fresh "
          f"process**\n")
    import pyarrow.parquet as pq

    path = Path(folder) / f"logitshift-groups-{rows}-{groups}.parquet"
    if not path.exists() or pq.ParquetFile(path).metadata.num_rows != rows:
        write_parquet(path, rows, groups)
    subprocess.run([sys.executable, "-c", _PEAK_RSS, str(path)], capture_output=True,
                   check=True)  # compile, warm the page cache
    done = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(path)], capture_output=True,
                          text=True, check=True)
    seconds, peak_kib, n_groups, _ = done.stdout.split()
    print("| file | groups | seconds | rows/s | peak resident memory |")
    print("|---:|---:|---:|---:|---:|")
    print(f"| {path.stat().st_size / 1e9:.2f} GB | {int(n_groups):,} | {float(seconds):.1f} | "
          f"{rows / float(seconds) / 1e6:.0f} M | {int(peak_kib) / 1024:.0f} MiB |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e7)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--glmer-rows", type=float, default=1e6)
    parser.add_argument("--glmer-groups", type=int, default=2000)
    parser.add_argument("--parquet-rows", type=float, default=1e8)
    parser.add_argument("--parquet-groups", type=int, default=10_000)
    parser.add_argument("--dir", default=tempfile.gettempdir(),
                        help="where the Parquet file is written (and kept for the next run)")
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{sys.version.split()[0]}, numpy {np.__version__}\n")
    grouped_against_fit(int(args.rows), args.repeats)
    if args.glmer_rows:
        against_glmer(int(args.glmer_rows), args.glmer_groups)
    if args.parquet_rows:
        parquet_memory(int(args.parquet_rows), args.parquet_groups, args.dir)
    print("Load average at the end (1, 5, 15 min): "
          + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
