"""logitshift.fit_frame on a Spark DataFrame, against Spark's own sums and Spark ML's GLR.

Run from the repository root (needs ``logitshift[spark]`` and a Java runtime)::

    python benchmarks/spark.py                   # local[2], 1e7 rows, median of 3
    python benchmarks/spark.py --rows 1e6 --repeats 5

Spark generates float64 offsets ~ N(0, 2) and int labels ~ Bernoulli(σ(offset - 2)) (so the
shift is about -2), with an empty feature vector for GLR, and caches and counts them. Then,
on that cached frame, each timed as the median over repeats after one untimed run:

* ``logitshift.fit_frame(df, "y", "f")``: one job, a sketch per partition;
* ``df.agg(F.sum("y"), F.sum("f")).collect()``: Spark's own cheapest pass over both columns;
* Spark ML's ``GeneralizedLinearRegression(family="binomial", link="logit", offsetCol="f")``
  on the empty feature vector: the intercept alone, which is the shift, by IRLS (a job per
  iteration);
* two floors that say where the fit's time goes: a ``mapInArrow`` that only counts its rows
  (handing the columns to Python), and the sketch's cell sums as Spark's own ``groupBy``.

It prints a Markdown table: each one's time, its ratio to the fit, its shift and the
difference from ours, and the cost of merging the partitions' sketches on the driver.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np

os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

from pyspark.ml.functions import array_to_vector  # noqa: E402
from pyspark.ml.regression import GeneralizedLinearRegression  # noqa: E402
from pyspark.sql import SparkSession  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402

import logitshift  # noqa: E402
from run import cpu_model  # noqa: E402  (benchmarks/run.py, beside this script)


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: Python workers started, kernels loaded in them
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count_rows(batches):
    """A partition's rows counted, in a Python worker: what it costs Spark to hand the two
    columns to Python as Arrow batches, the floor of any ``mapInArrow``."""
    import pyarrow as pa

    yield pa.RecordBatch.from_pydict({"rows": [sum(batch.num_rows for batch in batches)]})


def cell_sums(order: int) -> list:
    """``Σ y·d^j`` and ``Σ (1 - y)·d^j`` for ``j ≤ order``, ``d`` the offset's distance from
    its cell's centre (cells of width 1/16): the sketch's tables, summed by Spark's own
    aggregation, without the sketch's checks of each row or its care of the double range."""
    cell = F.floor(F.col("f") * 16)
    distance = F.col("f") - (cell + 0.5) / 16
    sums = []
    for power in range(order + 1):
        term = distance ** power if power else F.lit(1.0)
        sums += [F.sum(F.col("y") * term), F.sum((1 - F.col("y")) * term)]
    return sums


def merge_seconds(partitions: int, rows: int) -> float:
    """The driver's part for ``partitions`` partitions of ``rows`` rows in all: read each
    partition's sketch from its bytes and merge them, in memory, without Spark."""
    rng = np.random.default_rng(0)
    blobs = []
    for _ in range(partitions):
        offsets = rng.normal(0.0, 2.0, rows // partitions)
        labels = rng.random(offsets.size) < 1 / (1 + np.exp(2.0 - offsets))
        blobs.append(logitshift.Sketch().update(labels, offsets).to_bytes())
    def merge() -> None:
        functools.reduce(lambda total, sketch: total + sketch,
                         (logitshift.Sketch.from_bytes(blob) for blob in blobs))

    return median_seconds(merge, 3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e7, help="rows in all (default 1e7)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    rows = int(args.rows)

    spark = (SparkSession.builder.master(args.master).appName("logitshift-benchmark")
             .config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.driver.memory", "4g")
             .config("spark.sql.shuffle.partitions", "2")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    frame = (spark.range(rows)
             .select((F.randn(seed=1) * 2.0).alias("f"), F.rand(seed=2).alias("u"))
             .select("f", (F.col("u") < 1 / (1 + F.exp(2.0 - F.col("f")))).cast("int")
                     .alias("y"),
                     array_to_vector(F.array().cast("array<double>")).alias("features"))
             .cache())
    frame.count()
    partitions = frame.rdd.getNumPartitions()

    ours = logitshift.fit_frame(frame, "y", "f")
    fit_time = median_seconds(lambda: logitshift.fit_frame(frame, "y", "f"), args.repeats)
    sums = frame.agg(F.sum("y"), F.sum("f")).collect()[0]
    agg_time = median_seconds(lambda: frame.agg(F.sum("y"), F.sum("f")).collect(),
                              args.repeats)
    glr = GeneralizedLinearRegression(family="binomial", link="logit", offsetCol="f",
                                      labelCol="y", featuresCol="features", fitIntercept=True)
    model = glr.fit(frame)
    glr_time = median_seconds(lambda: glr.fit(frame), args.repeats)
    iterations, intercept = model.summary.numIterations, model.intercept
    floor_time = median_seconds(
        lambda: frame.select("y", "f").mapInArrow(count_rows, "rows long").collect(),
        args.repeats)
    # A new DataFrame each time: a second action on the same one would reuse its shuffle.
    cells_time = median_seconds(
        lambda: frame.groupBy(F.floor(F.col("f") * 16).alias("cell")).agg(*cell_sums(8))
        .collect(), args.repeats)
    merge_time = merge_seconds(partitions, rows)
    merge_200_time = merge_seconds(200, rows)
    spark.stop()

    print(f"Machine: {os.cpu_count()} cores, {cpu_model()}; Spark {spark.version} "
          f"{args.master}, {partitions} partitions, cached; median of {args.repeats}.\n")
    print("| rows | what | time (s) | × the fit | shift | − ours |")
    print("|---:|---|---:|---:|---:|---:|")
    print(f"| {rows:,} | `logitshift.fit_frame` | {fit_time:.3f} | 1.00 | "
          f"{ours.shift:.12f} | |")
    print(f"| | `df.agg(sum(y), sum(f))` | {agg_time:.3f} | {agg_time / fit_time:.2f} | "
          f"(sums {sums[0]:,}, {sums[1]:.1f}) | |")
    print(f"| | Spark ML GLR, offsetCol, intercept only ({iterations} "
          f"iterations) | {glr_time:.3f} | {glr_time / fit_time:.2f} | "
          f"{intercept:.12f} | {intercept - ours.shift:.1e} |")
    print(f"| | `mapInArrow` that only counts the rows | {floor_time:.3f} | "
          f"{floor_time / fit_time:.2f} | | |")
    print(f"| | the cells' power sums as a Spark `groupBy` (no checks, no fit) | "
          f"{cells_time:.3f} | {cells_time / fit_time:.2f} | | |")
    print(f"\nThe fit is {fit_time / agg_time:.2f}× the sums (target ≤ 2×) and "
          f"{glr_time / fit_time:.1f}× faster than GLR (target ≥ 10×). Reading "
          f"{partitions} partitions' sketches from bytes and merging them on the driver: "
          f"{merge_time * 1e3:.2f} ms (200 partitions' sketches: {merge_200_time * 1e3:.1f} ms).")


if __name__ == "__main__":
    main()
