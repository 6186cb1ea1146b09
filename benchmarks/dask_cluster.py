"""logitshift.dask.fit_arrays on a local cluster, against the cheapest pass over the same data.

Run from the repository root (needs ``logitshift[dask]`` and dask.distributed)::

    python benchmarks/dask_cluster.py                     # 1e8 rows, about 0.9 GB in memory
    python benchmarks/dask_cluster.py --rows 1e7 --repeats 3

A LocalCluster of two worker processes (one thread each) generates int8 labels and float64
offsets ~ N(0, 2), labels ~ Bernoulli(σ(offset - 2)), in 40 partitions, and keeps them in
memory. The floor is ``(labels.sum() + offsets.sum()).compute()`` on the same persisted arrays:
one task per chunk that reads it once, as the fit does. Both are timed as the median over
repeats, after one untimed run of each (the workers load the compiled kernels on first use).
The output is Markdown.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

import dask
import dask.array as da
import distributed

import logitshift.dask
from run import cpu_model  # benchmarks/run.py, beside this script


def partition(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """One partition's labels and offsets, made on the worker that holds them."""
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0.0, 2.0, rows)
    labels = (rng.random(rows) < 1.0 / (1.0 + np.exp(2.0 - offsets))).astype(np.int8)
    return labels, offsets


def make_arrays(rows: int, partitions: int) -> tuple[da.Array, da.Array]:
    """Labels and offsets in ``partitions`` chunks, generated on the workers and persisted."""
    sizes = [len(part) for part in np.array_split(np.arange(rows), partitions)]
    labels, offsets = [], []
    for seed, size in enumerate(sizes):
        made = dask.delayed(partition, nout=2)(size, seed)
        labels.append(da.from_delayed(made[0], (size,), np.int8))
        offsets.append(da.from_delayed(made[1], (size,), np.float64))
    labels, offsets = dask.persist(da.concatenate(labels), da.concatenate(offsets))
    distributed.wait([labels, offsets])
    return labels, offsets


def median_seconds(run: Callable[[], object], repeats: int) -> float:
    run()  # warm-up: kernels loaded on the workers, connections made
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e8, help="rows in all (default 1e8)")
    parser.add_argument("--partitions", type=int, default=40)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    rows = int(args.rows)

    with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                  processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster):
        labels, offsets = make_arrays(rows, args.partitions)
        result = logitshift.dask.fit_arrays(labels, offsets)
        fit_time = median_seconds(lambda: logitshift.dask.fit_arrays(labels, offsets),
                                  args.repeats)
        floor_time = median_seconds(lambda: (labels.sum() + offsets.sum()).compute(),
                                    args.repeats)

    print(f"Machine: {os.cpu_count()} cores, {cpu_model()}; LocalCluster of {args.workers} "
          f"worker processes x 1 thread; median of {args.repeats}.\n")
    print("| rows | partitions | fit_arrays (s) | labels.sum() + offsets.sum() (s) | ratio "
          "| shift |")
    print("|---:|---:|---:|---:|---:|---:|")
    print(f"| {rows:,} | {args.partitions} | {fit_time:.3f} | {floor_time:.3f} | "
          f"{fit_time / floor_time:.2f}x | {result.shift:.6f} |")


if __name__ == "__main__":
    main()
