"""DuckDB on a Parquet file: logitshift's sketch query against DuckDB's own two sums, and
against logitshift.fit_file on the same file.

Writes (once, in a temporary folder unless ``--path``) a Parquet file of ``--rows`` rows,
label int8 and offset float64 ~ N(0, 2), the labels drawn from σ(offset − 2); then times the
median of ``--repeats`` runs of

- DuckDB's ``SELECT sum(label), sum(offset) FROM 'file.parquet'`` (the floor: one scan, two
  sums);
- ``logitshift.fit_frame(logitshift.sql.table("'file.parquet'"), "label", "offset")``:
  DuckDB hands the rows over as Arrow batches and the kernels sketch them (the default);
- the same with ``aggregate=True``: the sketch query on DuckDB (one ``GROUP BY``), then
  the fit;
- ``logitshift.fit_file(path, "label", "offset")`` (numba, a batch at a time);

and prints each with its ratio to DuckDB's sum, and each shift's difference from fit_file's.
DuckDB and fit_file use every core; the file stays in the page cache between runs.

    python benchmarks/sql.py                 # 1e8 rows, about 0.9 GB on disk
    python benchmarks/sql.py --rows 1e7
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stream_file import write_file  # noqa: E402

import logitshift  # noqa: E402
import logitshift.sql  # noqa: E402


def timed(work, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=float, default=1e8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--path", type=Path, default=None)
    args = parser.parse_args()
    rows = int(args.rows)
    folder = None
    path = args.path
    if path is None:
        folder = tempfile.TemporaryDirectory()
        path = Path(folder.name) / f"sql_{rows}.parquet"
    if not path.exists():
        write_file(path, rows)
    quoted = str(path).replace("'", "''")
    connection = duckdb.connect()

    def own_sum():
        return connection.execute(
            f"SELECT sum(label), sum(\"offset\") FROM '{quoted}'").fetchall()

    source = logitshift.sql.table(f"'{quoted}'", connection)
    summed = logitshift.sql.table(f"'{quoted}'", connection, aggregate=True)
    own_sum()  # the file's metadata, and DuckDB, warmed up once
    logitshift.fit_file(path, "label", "offset", progress=False)
    floor, _ = timed(own_sum, args.repeats)
    on_duckdb, arrow_fit = timed(
        lambda: logitshift.fit_frame(source, "label", "offset"), args.repeats)
    by_query, sketch_fit = timed(
        lambda: logitshift.fit_frame(summed, "label", "offset"), args.repeats)
    streamed, file_fit = timed(
        lambda: logitshift.fit_file(path, "label", "offset", progress=False), args.repeats)

    print(f"{rows:,} rows, {path.stat().st_size / 1e9:.2f} GB Parquet; {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), DuckDB {duckdb.__version__}, "
          f"median of {args.repeats}")
    print(f"{'':46}{'seconds':>9}{'x sum':>8}  shift - fit_file's shift")
    lines = [("DuckDB: SELECT sum(label), sum(offset)", floor, None),
             ("logitshift on DuckDB (Arrow batches + fit)", on_duckdb, arrow_fit.shift),
             ("logitshift on DuckDB (sketch query + fit)", by_query, sketch_fit.shift),
             ("logitshift.fit_file (numba, streamed)", streamed, file_fit.shift)]
    for name, seconds, shift in lines:
        difference = "" if shift is None else f"{shift - file_fit.shift:+.3g}"
        print(f"{name:46}{seconds:9.3f}{seconds / floor:8.2f}  {difference}")
    if folder is not None:
        folder.cleanup()


if __name__ == "__main__":
    main()
