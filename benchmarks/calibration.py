"""The calibration report and the slope against the floor and the usual alternatives.

Run from the repository root::

    python benchmarks/calibration.py                      # 1e7 rows in memory, 1e6 for peers
    python benchmarks/calibration.py --rows 1e6 --peer-rows 1e5 --file-rows 1e6   # quick
    python benchmarks/calibration.py --file-rows 1e8      # the 1e8-row Parquet stream

Scores ``f ~ N(0, 2)`` (float64) miscalibrated in both senses, labels (int8) drawn from
``σ(0.8 f - 1.5)``. Every time is the median of ``--repeats`` runs in this process, printed
with its ratio to the floor (``np.sum(f) + np.sum(y)`` over the same arrays, timed in the same
loop) and to ``logitshift.fit`` on the same rows. Peers run as their users run them:
statsmodels' ``GLM(y, [1, f], Binomial()).fit()`` (IRLS, its defaults), with
``cov_type="HC0"`` for the robust row; scikit-learn's ``LogisticRegression().fit(f[:, None],
y)`` (lbfgs, its default ``C = 1`` penalty: Platt scaling without inference) and
``roc_auc_score``. Each prints its answer's difference from ours.

The stream part writes (once) a Parquet file of ``--file-rows`` rows and times pyarrow reading
its two columns (the floor), ``fit_file``, ``validate_file`` (which also fills the fine
histogram of the c-statistic) and ``validate_file(se_type="robust")``, and the peak resident
memory of a fresh process running ``validate_file``.
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
from logitshift.io import DEFAULT_BATCH_ROWS

SEED = 2026
CHUNK = 10_000_000

_PEAK_RSS = """
import sys, logitshift
report = logitshift.validate_file(sys.argv[1], "label", "offset", progress=False)
print(report.c_statistic, report.c_statistic_bound,
      [line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")][0])
"""


def make_data(n: int, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    offsets = rng.normal(0.0, 2.0, n)
    labels = (rng.random(n) < 1 / (1 + np.exp(-(0.8 * offsets - 1.5)))).astype(np.int8)
    return labels, offsets


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
    return platform.processor() or "unknown CPU"


def quiet(function):
    def run():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return function()
    return run


def in_memory(n: int, repeats: int, peers: bool) -> None:
    labels, offsets = make_data(n)
    X = np.column_stack([np.ones(n), offsets])
    ours = logitshift.fit_slope(labels, offsets)
    ours_robust = logitshift.fit_slope(labels, offsets, se_type="robust")
    report = logitshift.validate(labels, offsets)
    rows: list[tuple[str, object, str]] = [
        ("floor `np.sum(f) + np.sum(y)`", lambda: np.sum(offsets) + np.sum(labels), ""),
        ("`fit(y, f)`", lambda: logitshift.fit(labels, offsets), ""),
        ("`fit(y, f, se_type=\"robust\")`",
         lambda: logitshift.fit(labels, offsets, se_type="robust"), ""),
        ("`fit_slope(y, f)`", lambda: logitshift.fit_slope(labels, offsets), ""),
        ("`fit_slope(y, f, se_type=\"robust\")`",
         lambda: logitshift.fit_slope(labels, offsets, se_type="robust"), ""),
        ("`validate(y, f)` (exact c-statistic: one sort)",
         lambda: logitshift.validate(labels, offsets), ""),
    ]
    if peers:
        import sklearn
        import statsmodels
        import statsmodels.api as sm
        from sklearn.linear_model import LogisticRegression
        from sklearn.metrics import roc_auc_score

        glm = sm.GLM(labels, X, family=sm.families.Binomial()).fit()
        hc0 = sm.GLM(labels, X, family=sm.families.Binomial()).fit(cov_type="HC0")
        platt = quiet(lambda: LogisticRegression().fit(offsets[:, None], labels))()
        auc = roc_auc_score(labels, offsets)
        rows += [
            (f"statsmodels {statsmodels.__version__} GLM IRLS",
             lambda: sm.GLM(labels, X, family=sm.families.Binomial()).fit(),
             f"slope {glm.params[1] - ours.slope:+.1e}, se "
             f"{glm.bse[1] / ours.se_slope - 1:+.1e} rel."),
            (f"statsmodels GLM, `cov_type=\"HC0\"`",
             lambda: sm.GLM(labels, X, family=sm.families.Binomial()).fit(cov_type="HC0"),
             f"robust se {hc0.bse[1] / ours_robust.se_slope - 1:+.1e} rel."),
            (f"scikit-learn {sklearn.__version__} `LogisticRegression()`",
             quiet(lambda: LogisticRegression().fit(offsets[:, None], labels)),
             f"slope {platt.coef_[0, 0] - ours.slope:+.1e} (C = 1 penalty), no SEs"),
            ("scikit-learn `roc_auc_score`", lambda: roc_auc_score(labels, offsets),
             f"c-statistic {auc - report.c_statistic:+.1e}"),
        ]
    for _, function, _ in rows:  # compile, and warm the caches
        function()
    times = [median_seconds(function, repeats) for _, function, _ in rows]
    floor, fit = times[0], times[1]
    print(f"### In memory: n = {n:,}, median of {repeats}")
    print()
    print("| row | median | × floor | × `fit` | answer against ours |")
    print("|---|---:|---:|---:|---|")
    for (name, _, note), seconds in zip(rows, times):
        print(f"| {name} | {seconds * 1e3:.1f} ms | {seconds / floor:.2f} | "
              f"{seconds / fit:.2f} | {note} |")
    print()


def write_file(path: Path, rows: int) -> None:
    schema = pa.schema([("label", pa.int8()), ("offset", pa.float64())])
    with pq.ParquetWriter(path, schema) as writer:
        for number, start in enumerate(range(0, rows, CHUNK)):
            labels, offsets = make_data(min(CHUNK, rows - start), SEED + number)
            writer.write_table(pa.table({"label": labels, "offset": offsets}, schema=schema))


def read_only(path: Path) -> int:
    """The two columns as numpy, a batch at a time: what every pass must at least do."""
    parquet = pq.ParquetFile(path, pre_buffer=False)
    rows = 0
    for batch in parquet.iter_batches(batch_size=DEFAULT_BATCH_ROWS,
                                      columns=["label", "offset"]):
        for column in batch.columns:
            column.to_numpy(zero_copy_only=False)
        rows += batch.num_rows
    return rows


def streamed(rows: int, repeats: int, folder: str) -> None:
    path = Path(folder) / f"logitshift-calibration-{rows}.parquet"
    if not path.exists() or pq.ParquetFile(path).metadata.num_rows != rows:
        write_file(path, rows)
    runs = [
        ("pyarrow reads the two columns (floor)", lambda: read_only(path)),
        ("`fit_file`", lambda: logitshift.fit_file(path, "label", "offset", progress=False)),
        ("`validate_file` (with the histogram)",
         lambda: logitshift.validate_file(path, "label", "offset", progress=False)),
        ("`validate_file(se_type=\"robust\")`",
         lambda: logitshift.validate_file(path, "label", "offset", progress=False,
                                          se_type="robust")),
    ]
    for _, function in runs:
        function()
    times = [median_seconds(function, repeats) for _, function in runs]
    done = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(path)], capture_output=True,
                          text=True, check=True)
    c, bound, peak_kib = done.stdout.split()
    print(f"### Streamed: {rows:,} rows of Parquet ({path.stat().st_size / 1e9:.2f} GB, "
          f"warm page cache), median of {repeats}")
    print()
    print("| what | seconds | ratio to reading | ratio to `fit_file` |")
    print("|---|---:|---:|---:|")
    for (name, _), seconds in zip(runs, times):
        print(f"| {name} | {seconds:.2f} | {seconds / times[0]:.2f} | "
              f"{seconds / times[1]:.2f} |")
    print()
    print(f"c-statistic {float(c):.6f} ± {float(bound):.1e}; peak resident memory of a "
          f"process running `validate_file`: {int(peak_kib) / 1024:.0f} MiB")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=float, default=1e7, help="in memory, ours alone")
    parser.add_argument("--peer-rows", type=float, default=1e6,
                        help="in memory, ours and the peers (0 to skip)")
    parser.add_argument("--file-rows", type=float, default=1e7, help="0 to skip")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    args = parser.parse_args()
    print(f"{os.cpu_count()} cores, {cpu_model()}, Python {platform.python_version()}, "
          f"numpy {np.__version__}, logitshift {logitshift.__version__}")
    print()
    if args.rows:
        in_memory(int(args.rows), args.repeats, peers=False)
    if args.peer_rows:
        in_memory(int(args.peer_rows), args.repeats, peers=True)
    if args.file_rows:
        streamed(int(args.file_rows), args.repeats, args.dir)


if __name__ == "__main__":
    main()
