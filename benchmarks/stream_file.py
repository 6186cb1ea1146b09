"""Streaming a large Parquet file: logitshift.fit_file against pyarrow merely reading it.

Writes (once) a Parquet file of ``--rows`` rows, label int8 and offset float64 ~ N(0, 2), the
labels drawn from σ(offset − 2); then, in this process, times the median of ``--repeats``
runs of

- pyarrow reading the same two columns a batch at a time, into numpy, with its own default
  threads (the floor);
- ``logitshift.fit_file(path, "label", "offset")``;

and prints them with their ratio, and the peak resident memory of a fresh process that does
nothing but fit_file (``VmHWM``). The file stays in the page cache between runs, so
both are timed on a warm cache.

    python benchmarks/stream_file.py                # 1e8 rows, about 0.9 GB on disk
    python benchmarks/stream_file.py --rows 1e7
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
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import logitshift
from logitshift.io import DEFAULT_BATCH_ROWS

# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child of a parent that
# holds a large array would report the parent's peak.
_PEAK_RSS = """
import sys, logitshift
result = logitshift.fit_file(sys.argv[1], "label", "offset", progress=False)
print(result.shift, [line.split()[1] for line in open("/proc/self/status")
                     if line.startswith("VmHWM")][0])
"""


def write_file(path: Path, rows: int, chunk: int = 10_000_000) -> None:
    rng = np.random.default_rng(2026)
    schema = pa.schema([("label", pa.int8()), ("offset", pa.float64())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, chunk):
            n = min(chunk, rows - start)
            offsets = rng.normal(0.0, 2.0, n)
            labels = (rng.random(n) < 1 / (1 + np.exp(-(offsets - 2.0)))).astype(np.int8)
            writer.write_table(pa.table({"label": labels, "offset": offsets}, schema=schema))


def read_only(path: Path) -> int:
    """What fit_file reads, and nothing more: the two columns as numpy, a batch at a time
    (pyarrow decoding with its default threads; fit_file decodes on one thread beside the
    fill)."""
    parquet = pq.ParquetFile(path, pre_buffer=False)
    rows = 0
    for batch in parquet.iter_batches(batch_size=DEFAULT_BATCH_ROWS,
                                      columns=["label", "offset"]):
        for column in batch.columns:
            column.to_numpy(zero_copy_only=False)
        rows += batch.num_rows
    return rows


def median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", default=tempfile.gettempdir(),
                        help="where the file is written (and kept for the next run)")
    args = parser.parse_args()
    rows = int(args.rows)
    path = Path(args.dir) / f"logitshift-stream-{rows}.parquet"
    if not path.exists() or pq.ParquetFile(path).metadata.num_rows != rows:
        start = time.perf_counter()
        write_file(path, rows)
        print(f"wrote {path} ({path.stat().st_size / 1e9:.2f} GB) in "
              f"{time.perf_counter() - start:.0f} s", file=sys.stderr)

    assert read_only(path) == rows
    logitshift.fit_file(path, "label", "offset", progress=False)  # compile, warm the cache
    floor = median_seconds(lambda: read_only(path), args.repeats)
    fit = median_seconds(lambda: logitshift.fit_file(path, "label", "offset", progress=False),
                         args.repeats)
    done = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(path)], capture_output=True,
                          text=True, check=True)
    shift, peak_kib = done.stdout.split()

    print(f"rows {rows:,}, file {path.stat().st_size / 1e9:.2f} GB, batches of "
          f"{DEFAULT_BATCH_ROWS:,} rows, median of {args.repeats}; {os.cpu_count()} cores, "
          f"{cpu_model()}, Python {platform.python_version()}, pyarrow {pa.__version__}")
    print()
    print("| what | seconds | rows/s | ratio to reading |")
    print("|---|---|---|---|")
    print(f"| pyarrow reads the two columns (floor) | {floor:.2f} | {rows / floor / 1e6:.0f} M "
          "| 1.00 |")
    print(f"| logitshift.fit_file | {fit:.2f} | {rows / fit / 1e6:.0f} M | {fit / floor:.2f} |")
    print()
    print(f"shift {float(shift)!r}; peak resident memory of a process running fit_file: "
          f"{int(peak_kib) / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
