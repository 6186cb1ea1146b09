"""Benchmark logitshift against the physical floor and the usual alternatives.

Run from the repository root::

    python benchmarks/run.py                  # n = 1e5, 1e6, 1e7
    python benchmarks/run.py --large          # adds n = 1e8 (about 0.9 GB of inputs)
    python benchmarks/run.py --sizes 1e5 1e6 --repeats 9
    python benchmarks/run.py --quick          # a smoke run of a minute or two

Everything is built in one process, and every timing is the median over repeats, printed in
seconds and as a ratio to the floor: ``np.sum(offset) + np.sum(label)`` over the same arrays,
timed in the same loop (reading both arrays once is the least any method can do). The output
is Markdown, so it can be pasted into the docs.

Scenario B has offsets: the answer is the root of ``Σ σ(offset + s) - Σ y`` and has no closed
form. Scenario A has none: the answer is ``log(m / k)``.

The seed is run as the seed runs it: ``scipy.optimize.newton`` without ``fprime`` (the
secant method, one numpy pass per step); a second, labelled row gives it an ``fprime`` (two
passes per step). Every peer's answer is printed with its difference from ``logitshift.fit``.

Comparison rows whose time, extrapolated linearly in n from the largest smaller n measured,
exceeds ``--max-seconds`` (default 60) are skipped, and the extrapolated time is printed.

At the largest size a table of the targets follows, measured in fresh interpreters for the
host build and for an AVX2-only build (the host CPU with its AVX-512 features switched off
through ``NUMBA_CPU_FEATURES``, compiled into a numba cache of its own); ``--no-targets``
skips it.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

SEED = 12345
CHUNK = 1 << 20
DEFAULT_SIZES = (10**5, 10**6, 10**7)
LARGE_SIZE = 10**8
QUICK_SIZES = (10**4, 10**5)
BYTES_PER_ROW = 9  # float64 offset + int8 label


# -- data -------------------------------------------------------------------------------------

def make_data(n: int) -> tuple[np.ndarray, np.ndarray]:
    """int8 labels and float64 offsets ~ N(0, 2), labels ~ Bernoulli(σ(offset - 2)).

    Generated in chunks so that 1e8 rows need little more than the 0.9 GB the arrays hold.
    """
    rng = np.random.default_rng(SEED)
    labels = np.empty(n, dtype=np.int8)
    offsets = np.empty(n, dtype=np.float64)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        chunk = rng.normal(0.0, 2.0, stop - start)
        offsets[start:stop] = chunk
        probability = 1.0 / (1.0 + np.exp(-(chunk - 2.0)))
        labels[start:stop] = rng.random(stop - start) < probability
    return labels, offsets


def sigma(z):
    """The seed notebook's sigmoid, exactly."""
    return 1 / (1 + np.exp(-z))


# -- the system -------------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def mem_available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def version_of(module_name: str) -> str:
    try:
        module = __import__(module_name)
    except Exception as error:  # noqa: BLE001 - any import failure means "not available"
        return f"not installed ({type(error).__name__})"
    return getattr(module, "__version__", "?")


def fmt_n(n: int) -> str:
    exponent = round(math.log10(n)) if n > 0 else 0
    if 10**exponent == n:
        return f"1e{exponent}"
    return f"{n:.3g}"


def fmt_seconds(seconds: float) -> str:
    if seconds >= 100:
        return f"{seconds:.0f}"
    return f"{seconds:.3g}"


def fmt_ratio(ratio: float) -> str:
    if ratio >= 100:
        return f"{ratio:.0f}"
    if ratio >= 10:
        return f"{ratio:.1f}"
    return f"{ratio:.2f}"


def fmt_bytes(count: float | None) -> str:
    if count is None:
        return "n/a"
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(count) >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count:.0f} B"


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- cold first call --------------------------------------------------------------------------

COLD_SCRIPT = r"""
import json, time
t0 = time.perf_counter()
import numpy as np
t1 = time.perf_counter()
import logitshift
t2 = time.perf_counter()
rng = np.random.default_rng(0)
offsets = rng.normal(0.0, 2.0, 1000)
labels = (rng.random(1000) < 1.0 / (1.0 + np.exp(-(offsets - 2.0)))).astype(np.int8)
t3 = time.perf_counter()
logitshift.fit(labels, offset=offsets)
t4 = time.perf_counter()
logitshift.fit(labels, offset=offsets, method="newton")
t5 = time.perf_counter()
logitshift.fit(labels)
t6 = time.perf_counter()
logitshift.fit(labels, offset=offsets)
t7 = time.perf_counter()
print(json.dumps({"import_numpy": t1 - t0, "import_logitshift": t2 - t1,
                  "first_auto": t4 - t3, "first_newton": t5 - t4, "first_no_offset": t6 - t5,
                  "warm_auto": t7 - t6}))
"""


def cold_call(cache_dir: str | None) -> dict[str, Any]:
    env = dict(os.environ)
    if cache_dir is not None:
        env["NUMBA_CACHE_DIR"] = cache_dir
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", COLD_SCRIPT], env=env, capture_output=True,
                          text=True, timeout=900)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    result = json.loads(done.stdout.strip().splitlines()[-1])
    result["process_wall"] = wall
    return result


def cold_calls() -> list[tuple[str, dict[str, Any]]]:
    """Fresh interpreters: the package's numba cache as it is (twice: the first may have to
    write it), and an empty NUMBA_CACHE_DIR (a true compile)."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="logitshift-numba-cold-") as empty:
        runs.append(("empty NUMBA_CACHE_DIR (cold compile)", cold_call(empty)))
    runs.append(("numba cache as installed, 1st process", cold_call(None)))
    runs.append(("numba cache as installed, 2nd process", cold_call(None)))
    return runs


# -- RSS in a fresh process -------------------------------------------------------------------

def _status_kib(field_name: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field_name + ":"):
                return int(line.split()[1])
    raise KeyError(field_name)


def rss_child(n: int, method: str, warm_n: int) -> None:
    """Run in a fresh interpreter: the peak resident growth of one ``logitshift.fit``.

    The peak (VmHWM) is reset through /proc/self/clear_refs just before the call, so the
    growth is measured from the memory the inputs already hold, not from whatever peak data
    generation reached. (ru_maxrss cannot be reset, and a child started from a large parent
    may inherit the parent's peak.)
    """
    import resource

    import logitshift

    warm_labels, warm_offsets = make_data(warm_n)
    logitshift.fit(warm_labels, offset=warm_offsets, method=method)
    del warm_labels, warm_offsets
    labels, offsets = make_data(n)
    gc.collect()
    report: dict[str, Any] = {}
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        report["how"] = "VmHWM"
    except OSError:
        report["how"] = "ru_maxrss"
    before_rss = _status_kib("VmRSS")
    before_maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    logitshift.fit(labels, offset=offsets, method=method)
    if report["how"] == "VmHWM":
        report["growth"] = (_status_kib("VmHWM") - before_rss) * 1024
    else:  # only growth beyond the earlier peak: a lower bound
        report["growth"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                            - before_maxrss) * 1024
    report["baseline"] = before_rss * 1024
    print(json.dumps(report))


def rss_growth(n: int, method: str, warm_n: int) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, os.path.abspath(__file__), "--rss-child", str(n), method,
         str(warm_n)], capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()
        return {"error": tail[-1] if tail else f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the targets, for the host build and an AVX2-only build ----------------------------------

def targets_child(n: int, repeats: int) -> None:
    """Run in a fresh interpreter: the ratios the targets are stated in, at ``n`` rows.

    ``fit`` on every thread and on one (``Sketch.update(threads=1)``, the same fill), both
    against ``np.sum(f) + np.sum(y)``, and ``fit(y)`` against ``np.sum(y)``, all timed in one
    loop. numba compiles for the CPU it is told of (``NUMBA_CPU_NAME``, ``NUMBA_CPU_FEATURES``).
    """
    import numba

    import logitshift

    warm_labels, warm_offsets = make_data(max(10**5, (1 << 17) * numba.get_num_threads()))
    logitshift.fit(warm_labels, offset=warm_offsets)
    logitshift.Sketch().update(warm_labels, warm_offsets, threads=1).solve()
    logitshift.fit(warm_labels)
    labels, offsets = make_data(n)
    calls = {
        "floor": lambda: np.sum(offsets) + np.sum(labels),
        "fit": lambda: logitshift.fit(labels, offset=offsets),
        "fit_one_thread": lambda: logitshift.Sketch().update(labels, offsets,
                                                             threads=1).solve(),
        "floor_labels": lambda: np.sum(labels),
        "fit_no_offsets": lambda: logitshift.fit(labels),
    }
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            gc.collect()
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    report: dict[str, Any] = {name: statistics.median(values) for name, values in times.items()}
    report["shift"] = logitshift.fit(labels, offset=offsets).shift
    report["threads"] = numba.get_num_threads()
    print(json.dumps(report))


def host_features() -> tuple[str, str, list[str]]:
    """LLVM's name for this CPU, its feature string with every AVX-512 feature switched off,
    and the AVX-512 features the host has (none on an AVX2-only CPU)."""
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features()
    avx512 = sorted(name for name, on in features.items() if on and "avx512" in name)
    flags = ",".join(("-" if "avx512" in name else "+" if on else "-") + name
                     for name, on in sorted(features.items()))
    return llvm.get_host_cpu_name(), flags, avx512


def targets_run(n: int, repeats: int, avx2_only: bool) -> dict[str, Any]:
    """`targets_child` in a fresh interpreter; for the AVX2-only build with the AVX-512
    features off and a numba cache of its own (so the installed cache is left as it is)."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="logitshift-numba-avx2-") as cache:
        if avx2_only:
            name, flags, _ = host_features()
            env.update(NUMBA_CPU_NAME=name, NUMBA_CPU_FEATURES=flags, NUMBA_CACHE_DIR=cache)
        done = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--targets-child", str(n),
             str(repeats)], env=env, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()
        return {"error": tail[-1] if tail else f"exit status {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def print_targets(n: int, repeats: int, outcomes: list[Outcome]) -> None:
    """The issue's targets at ``n`` rows, for the host build and an AVX2-only build."""
    name, _, avx512 = host_features()
    print(f"\n### Against the targets (n = {fmt_n(n)}, scenario B unless said)\n")
    print(f"Each build in a fresh interpreter, {repeats} repeats, medians, every ratio against "
          f"the floor timed in the same loop. Host: LLVM CPU `{name}`, AVX-512 features "
          f"{', '.join(avx512) if avx512 else 'none'}. AVX2-only: the same CPU with every "
          f"AVX-512 feature off (`NUMBA_CPU_FEATURES`)"
          + (" — on this host the two builds are the same code, so they differ only by "
             "noise." if not avx512 else ".") + "\n")
    by_label = {o.label: o for o in outcomes}
    fit = by_label.get("logitshift.fit(y, f) (auto)")
    seed = by_label.get(SEED_LABEL)
    seed_fprime = next((o for o in outcomes if o.label.startswith("seed's root with")), None)
    builds = [("host", targets_run(n, repeats, False)),
              ("AVX2-only", targets_run(n, repeats, True))]
    print("| target | " + " | ".join(label for label, _ in builds) + " |")
    print("|---|" + "---:|" * len(builds))

    def cells(ratio: Callable[[dict[str, Any]], float]) -> str:
        return " | ".join(f"error: {report['error']}" if "error" in report
                          else f"{ratio(report):.2f}×" for _, report in builds)

    threads = next((r["threads"] for _, r in builds if "threads" in r), "?")
    print(f"| `fit(y, f)` / floor, {threads} threads: ≤ 2.5× (moonshot ≤ 1.5×) | "
          f"{cells(lambda r: r['fit'] / r['floor'])} |")
    print(f"| `fit` on one thread / floor: ≤ 4× | "
          f"{cells(lambda r: r['fit_one_thread'] / r['floor'])} |")
    print(f"| scenario A: `fit(y)` / `np.sum(y)`: ≤ 1.5× | "
          f"{cells(lambda r: r['fit_no_offsets'] / r['floor_labels'])} |")
    if fit is not None and fit.median:
        for row, what in ((seed, "the seed as it runs (no fprime)"),
                          (seed_fprime, "the seed's root with an fprime")):
            if row is None:
                continue
            if row.median is None:
                text = f"~{row.extrapolated / fit.median:.0f}× (extrapolated)"
            else:
                text = f"{row.median / fit.median:.0f}×"
            print(f"| faster than {what}: ≥ 30× (main table, host) | {text} | |")
    sys.stdout.flush()


def traced_peak(call: Callable[[], Any]) -> int:
    """Peak bytes numpy and Python allocate during ``call`` beyond what was live before it.

    tracemalloc sees numpy's allocations, not those numba's runtime makes inside a kernel.
    """
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before, _ = tracemalloc.get_traced_memory()
        call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before


# -- rows -------------------------------------------------------------------------------------

@dataclass
class Row:
    scenario: str                       # "A" or "B"
    label: str
    call: Callable[[np.ndarray, np.ndarray], Any]   # (labels, offsets) -> raw result
    answer: Callable[[Any], float] | None = None    # raw result -> shift (None: a floor)
    note: Callable[[Any], str] = lambda result: ""
    comparison: bool = False            # subject to the extrapolation skip rule
    fixed_note: str = ""
    # per-n state
    times: list[float] = field(default_factory=list)
    runs: int = 0
    result: Any = None
    skipped: str = ""


@dataclass
class Outcome:
    n: int
    scenario: str
    label: str
    median: float | None
    runs: int
    shift: float | None
    note: str
    extrapolated: float | None = None


def logitshift_rows(logitshift) -> list[Row]:
    def fit_note(result) -> str:
        return (f"method={result.method}, passes={result.passes}, "
                f"iterations={result.iterations}")

    return [
        Row("B", "floor: `np.sum(f) + np.sum(y)`", lambda y, f: np.sum(f) + np.sum(y)),
        Row("B", "logitshift.fit(y, f) (auto)", lambda y, f: logitshift.fit(y, offset=f),
            answer=lambda r: r.shift, note=fit_note),
        Row("B", "logitshift.fit(y, f, method=\"newton\")",
            lambda y, f: logitshift.fit(y, offset=f, method="newton"),
            answer=lambda r: r.shift, note=fit_note),
        Row("A", "floor: `np.sum(y)` only", lambda y, f: np.sum(y)),
        Row("A", "logitshift.fit(y)", lambda y, f: logitshift.fit(y),
            answer=lambda r: r.shift, note=fit_note),
    ]


SEED_LABEL = "seed, as the seed runs it: `newton(lambda x: np.sum(sigma(f + x)) - m, x0=0.0)`"


def seed_rows() -> list[Row]:
    from scipy.optimize import newton

    def counted(function):
        """``function`` and a count of its calls: each is one numpy pass over the rows."""
        calls = [0]

        def call(x):
            calls[0] += 1
            return function(x)
        return call, calls

    def seed_offsets(y, f):
        # The seed's call, with offsets: the root of Σσ(f + x) - m by scipy's `newton`
        # without `fprime`, as the seed calls it (the secant method, one pass per step).
        m = np.sum(y)
        gradient, calls = counted(lambda x: np.sum(sigma(f + x)) - m)
        return newton(gradient, x0=0.0), calls[0]

    def seed_offsets_fprime(y, f):
        # Not the seed's call: the same root with the derivative given (Newton proper),
        # two passes per step.
        m = np.sum(y)
        gradient, calls = counted(lambda x: np.sum(sigma(f + x)) - m)
        derivative, derivative_calls = counted(
            lambda x: np.sum(sigma(f + x) * sigma(-(f + x))))
        return newton(gradient, x0=0.0, fprime=derivative), calls[0] + derivative_calls[0]

    def passes(result) -> str:
        return f"numpy passes={result[1]}"

    def seed_no_offsets(y, f):
        # The seed notebook verbatim: m, k from the labels, secant (no fprime) from 0.
        n = y.size
        m = np.sum(y)
        k = n - m
        return newton(lambda x: k*sigma(x) - m*sigma(-x), x0=0.0)

    return [
        Row("B", SEED_LABEL, seed_offsets, answer=lambda r: float(r[0]), note=passes,
            comparison=True),
        Row("B", "seed's root with an fprime added (not the seed's call): `newton(..., "
            "fprime=lambda x: np.sum(sigma(f + x) * sigma(-(f + x))))`", seed_offsets_fprime,
            answer=lambda r: float(r[0]), note=passes, comparison=True),
        Row("A", "seed: scipy `newton(lambda x: k*sigma(x) - m*sigma(-x), x0=0.0)`",
            seed_no_offsets, answer=float, comparison=True),
    ]


def sklearn_rows() -> list[Row]:
    from sklearn._loss.loss import HalfBinomialLoss

    return [Row("A", "sklearn `HalfBinomialLoss().fit_intercept_only(y.astype(float))`",
                lambda y, f: HalfBinomialLoss().fit_intercept_only(y_true=y.astype(float)),
                answer=float, comparison=True)]


def statsmodels_rows() -> list[Row]:
    import statsmodels.api as sm

    def glm(y, f):
        return sm.GLM(y, np.ones((y.size, 1)), family=sm.families.Binomial(), offset=f).fit()

    def note(result) -> str:
        history = getattr(result, "fit_history", None) or {}
        return f"IRLS iterations={history.get('iteration', '?')}"

    return [Row("B", "statsmodels `GLM(y, ones, Binomial(), offset=f).fit()`", glm,
                answer=lambda r: float(r.params[0]), note=note, comparison=True,
                fixed_note="design matrix built in the timed call; ")]


def glum_rows(warm_labels: np.ndarray, warm_offsets: np.ndarray) -> tuple[list[Row], list[str]]:
    """glum with an offset. A design matrix with no columns is refused, and a single all-zero
    column is singular for the default solver (IRLS with a direct solve), so this probes what
    works on the warm-up data and says what it found."""
    from glum import GeneralizedLinearRegressor

    findings: list[str] = []
    y, f = warm_labels, warm_offsets

    def attempt(description: str, make) -> bool:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                make()
            findings.append(f"{description}: works")
            return True
        except Exception as error:  # noqa: BLE001 - we report whatever glum raises
            message = str(error).splitlines()[0].rstrip(".") if str(error) else ""
            findings.append(f"{description}: {type(error).__name__}: {message}")
            return False

    def regressor(**options):
        return GeneralizedLinearRegressor(family="binomial", alpha=0, **options)

    def intercept(model) -> float:
        return float(model.intercept_)

    def iterations(model) -> str:
        return f"n_iter_={getattr(model, 'n_iter_', '?')}"

    rows: list[Row] = []
    zero_columns = "glum `fit(np.empty((n, 0)), y, offset=f)`, fit_intercept=True"
    if attempt(zero_columns, lambda: regressor(fit_intercept=True).fit(
            np.empty((y.size, 0)), y, offset=f)):
        rows.append(Row("B", "glum, X with 0 columns, fit_intercept=True",
                        lambda y, f: regressor(fit_intercept=True).fit(
                            np.empty((y.size, 0)), y, offset=f),
                        answer=intercept, note=iterations, comparison=True))
    else:
        zero_column = "glum `fit(np.zeros((n, 1)), y, offset=f)`, fit_intercept=True"
        if attempt(zero_column + ", default solver", lambda: regressor(fit_intercept=True).fit(
                np.zeros((y.size, 1)), y, offset=f)):
            rows.append(Row("B", "glum, 1 all-zero column, fit_intercept=True",
                            lambda y, f: regressor(fit_intercept=True).fit(
                                np.zeros((y.size, 1)), y, offset=f),
                            answer=intercept, note=iterations, comparison=True,
                            fixed_note="0 columns refused; "))
        elif attempt(zero_column + ", solver='lbfgs'", lambda: regressor(
                fit_intercept=True, solver="lbfgs").fit(np.zeros((y.size, 1)), y, offset=f)):
            rows.append(Row("B", "glum, 1 all-zero column, fit_intercept=True, solver='lbfgs'",
                            lambda y, f: regressor(fit_intercept=True, solver="lbfgs").fit(
                                np.zeros((y.size, 1)), y, offset=f),
                            answer=intercept, note=iterations, comparison=True,
                            fixed_note="0 columns refused, default solver singular; "))
    ones_column = "glum `fit(np.ones((n, 1)), y, offset=f)`, fit_intercept=False, default solver"
    if attempt(ones_column, lambda: regressor(fit_intercept=False).fit(
            np.ones((y.size, 1)), y, offset=f)):
        rows.append(Row("B", "glum, intercept as 1 ones column, fit_intercept=False",
                        lambda y, f: regressor(fit_intercept=False).fit(
                            np.ones((y.size, 1)), y, offset=f),
                        answer=lambda m: float(m.coef_[0]), note=iterations, comparison=True))
    for row in rows:
        row.fixed_note += "design matrix built in the timed call; default tolerances; "
    return rows, findings


# -- timing -----------------------------------------------------------------------------------

def time_one(row: Row, labels: np.ndarray, offsets: np.ndarray) -> float:
    gc.collect()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        result = row.call(labels, offsets)
        elapsed = time.perf_counter() - start
    if row.result is None:
        row.result = result
    return elapsed


def run_size(n: int, rows: list[Row], repeats: int, history: dict[str, tuple[int, float]],
             max_seconds: float, row_budget: float) -> tuple[list[Outcome], float]:
    log(f"n = {fmt_n(n)}: generating data")
    labels, offsets = make_data(n)
    for row in rows:
        row.times, row.result, row.skipped = [], None, ""
        row.runs = repeats
        if row.comparison and row.label in history:
            n_then, t_then = history[row.label]
            estimate = t_then * n / n_then
            if estimate > max_seconds:
                row.skipped = f"{estimate:.3g}"
                row.runs = 0
                log(f"  skipping {row.label}: extrapolated {estimate:.3g} s "
                    f"from {fmt_n(n_then)}")
    active = [row for row in rows if row.runs > 0]
    log(f"n = {fmt_n(n)}: timing {len(active)} rows x {repeats} repeats")
    for repeat in range(repeats):
        # Rotate the order so no row always follows the same neighbour (caches, frequency).
        shift = repeat % len(active)
        for row in active[shift:] + active[:shift]:
            if repeat >= row.runs:
                continue
            row.times.append(time_one(row, labels, offsets))
            if repeat == 0 and row.times[0] * repeats > row_budget:
                row.runs = max(min(3, repeats), int(row_budget // row.times[0]))
        log(f"  repeat {repeat + 1}/{repeats} done")

    floor = statistics.median(rows[0].times)
    outcomes = []
    for row in rows:
        if row.skipped:
            outcomes.append(Outcome(n, row.scenario, row.label, None, 0, None,
                                    row.fixed_note + "skipped", float(row.skipped)))
            continue
        median = statistics.median(row.times)
        if row.comparison:
            history[row.label] = (n, median)
        shift = row.answer(row.result) if row.answer else None
        outcomes.append(Outcome(n, row.scenario, row.label, median, len(row.times), shift,
                                row.fixed_note + row.note(row.result)))
    del labels, offsets
    for row in rows:
        row.result = None
    gc.collect()
    return outcomes, floor


def memory_for_size(n: int, logitshift, warm_n: int, seed_row: Row | None) -> dict[str, Any]:
    labels, offsets = make_data(n)
    report: dict[str, Any] = {"inputs": labels.nbytes + offsets.nbytes}
    for method in ("auto", "newton"):
        report[f"traced_{method}"] = traced_peak(
            lambda: logitshift.fit(labels, offset=offsets, method=method))
    if seed_row is not None:
        report["traced_seed"] = traced_peak(lambda: seed_row.call(labels, offsets))
    del labels, offsets
    gc.collect()
    for method in ("auto", "newton"):
        report[f"rss_{method}"] = rss_growth(n, method, warm_n)
    return report


# -- output -----------------------------------------------------------------------------------

def print_size_tables(n: int, outcomes: list[Outcome], floor: float, floor_labels: float,
                      reference: dict[str, float | None]) -> None:
    print(f"\n### n = {fmt_n(n)}\n")
    print(f"Floor: `np.sum(f) + np.sum(y)` = {fmt_seconds(floor)} s; "
          f"`np.sum(y)` alone = {fmt_seconds(floor_labels)} s.\n")

    def difference(outcome: Outcome) -> str:
        base = reference[outcome.scenario]
        if outcome.shift is None or base is None:
            return "—"
        if outcome.label in ("logitshift.fit(y, f) (auto)", "logitshift.fit(y)"):
            return "(reference)"
        return f"{abs(outcome.shift - base):.1e}"

    print("Scenario B (offsets given): |Δ| is the difference from `logitshift.fit(y, f)` "
          "(auto).\n")
    print("| method | median s | × floor (f + y) | shift | abs Δ vs auto | runs | notes |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for o in outcomes:
        if o.scenario != "B":
            continue
        if o.median is None:
            print(f"| {o.label} | skipped (~{fmt_seconds(o.extrapolated)} extrapolated) | "
                  f"~{fmt_ratio(o.extrapolated / floor)} (extrapolated) | — | — | 0 | "
                  f"{o.note} |")
            continue
        shift = "—" if o.shift is None else f"{o.shift:.15g}"
        print(f"| {o.label} | {fmt_seconds(o.median)} | {fmt_ratio(o.median / floor)} | "
              f"{shift} | {difference(o)} | {o.runs} | {o.note} |")

    print("\nScenario A (no offsets): |Δ| is the difference from `logitshift.fit(y)`.\n")
    print("| method | median s | × floor (f + y) | × floor (y only) | shift | abs Δ vs "
          "fit(y) | runs | notes |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    for o in outcomes:
        if o.scenario != "A":
            continue
        if o.median is None:
            print(f"| {o.label} | skipped (~{fmt_seconds(o.extrapolated)} extrapolated) | "
                  f"~{fmt_ratio(o.extrapolated / floor)} | "
                  f"~{fmt_ratio(o.extrapolated / floor_labels)} | — | — | 0 | {o.note} |")
            continue
        shift = "—" if o.shift is None else f"{o.shift:.15g}"
        print(f"| {o.label} | {fmt_seconds(o.median)} | {fmt_ratio(o.median / floor)} | "
              f"{fmt_ratio(o.median / floor_labels)} | {shift} | {difference(o)} | "
              f"{o.runs} | {o.note} |")
    sys.stdout.flush()


def rss_text(report: dict[str, Any]) -> str:
    if "error" in report:
        return f"error: {report['error']}"
    text = fmt_bytes(report["growth"])
    return text if report["how"] == "VmHWM" else f"≥ {text}"


def print_summary(sizes: list[int], all_outcomes: dict[int, list[Outcome]],
                  floors: dict[int, tuple[float, float]],
                  memory: dict[int, dict[str, Any]]) -> None:
    header = " | ".join(f"n = {fmt_n(n)}" for n in sizes)
    rule = "|".join("---:" for _ in sizes)

    def ratio_cell(o: Outcome | None, floor: float) -> str:
        if o is None:
            return "—"
        if o.median is None:
            return f"~{fmt_ratio(o.extrapolated / floor)} (skipped)"
        return fmt_ratio(o.median / floor)

    for scenario, title in (("B", "Scenario B (offsets): median time / floor (f + y)"),
                            ("A", "Scenario A (no offsets): median time / floor (f + y)"),
                            ("A*", "Scenario A (no offsets): median time / floor (y only)")):
        print(f"\n**{title}**\n")
        print(f"| method | {header} |")
        print(f"|---|{rule}|")
        which = scenario[0]
        labels = list(dict.fromkeys(o.label for n in sizes for o in all_outcomes[n]
                                    if o.scenario == which))
        for label in labels:
            cells = []
            for n in sizes:
                floor = floors[n][1] if scenario == "A*" else floors[n][0]
                match = next((o for o in all_outcomes[n]
                              if o.scenario == which and o.label == label), None)
                cells.append(ratio_cell(match, floor))
            print(f"| {label} | {' | '.join(cells)} |")
        print(f"| *floor, seconds* | "
              f"{' | '.join(fmt_seconds(floors[n][1 if scenario == 'A*' else 0]) for n in sizes)}"
              f" |")

    print("\n**Memory of `logitshift.fit(y, f)` beyond the inputs**\n")
    print("traced: peak of numpy/Python allocations during the call, by tracemalloc (numba's "
          "own allocations inside kernels are not traced; `np.zeros` tables count in full "
          "although only touched pages become resident). RSS: growth of the peak resident "
          "set (VmHWM, reset via /proc/self/clear_refs just before the call) in a fresh "
          "process holding the same inputs; '≥' marks the ru_maxrss fallback, a lower bound.\n")
    print("| n | inputs | traced, auto | traced, newton | traced, seed scipy | RSS, auto | "
          "RSS, newton |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        report = memory.get(n)
        if report is None:
            continue
        print(f"| {fmt_n(n)} | {fmt_bytes(report['inputs'])} | "
              f"{fmt_bytes(report['traced_auto'])} | {fmt_bytes(report['traced_newton'])} | "
              f"{fmt_bytes(report.get('traced_seed'))} | {rss_text(report['rss_auto'])} | "
              f"{rss_text(report['rss_newton'])} |")


# -- main -------------------------------------------------------------------------------------

def parse_size(text: str) -> int:
    value = float(text.replace("_", ""))
    if not (value >= 1 and value == int(value)):
        raise argparse.ArgumentTypeError(f"size {text!r} must be a positive whole number")
    return int(value)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=parse_size, metavar="N",
                        help="row counts, e.g. 1e5 1e6 (default 1e5 1e6 1e7)")
    parser.add_argument("--large", action="store_true",
                        help="add n = 1e8 (about 0.9 GB of inputs, more for the comparisons)")
    parser.add_argument("--repeats", type=int, metavar="R",
                        help="repeats per row (default 7 for n <= 1e6, 5 to 1e7, 3 above)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: n = 1e4 and 1e5, 3 repeats")
    parser.add_argument("--max-seconds", type=float, default=60.0, metavar="S",
                        help="skip a comparison row whose extrapolated time exceeds S "
                             "(default 60)")
    parser.add_argument("--row-budget", type=float, default=120.0, metavar="S",
                        help="fewer repeats (at least 3) for a row whose repeats would take "
                             "longer than S seconds in all (default 120)")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the memory measurements")
    parser.add_argument("--no-cold", action="store_true",
                        help="skip the cold first-call measurements")
    parser.add_argument("--no-targets", action="store_true",
                        help="skip the target table (host and AVX2-only builds, each in a "
                             "fresh interpreter) at the largest size")
    parser.add_argument("--rss-child", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--targets-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    return args


def repeats_for(n: int, args: argparse.Namespace) -> int:
    if args.repeats is not None:
        return args.repeats
    if args.quick:
        return 3
    if n <= 10**6:
        return 7
    if n <= 10**7:
        return 5
    return 3


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.rss_child:
        n, method, warm_n = args.rss_child
        rss_child(int(n), method, int(warm_n))
        return 0
    if args.targets_child:
        n, repeats = args.targets_child
        targets_child(int(n), int(repeats))
        return 0

    sizes = list(args.sizes) if args.sizes else list(QUICK_SIZES if args.quick
                                                     else DEFAULT_SIZES)
    if args.large and LARGE_SIZE not in sizes:
        sizes.append(LARGE_SIZE)
    sizes = sorted(set(sizes))
    started = time.perf_counter()
    load_at_start = os.getloadavg() if hasattr(os, "getloadavg") else None

    # Before anything in this process touches logitshift's kernels: fresh interpreters.
    cold = [] if args.no_cold else cold_calls()

    import numba

    import logitshift

    command = " ".join(shlex.quote(part) for part in [sys.executable, *sys.argv])
    print("## logitshift benchmark\n")
    print(f"- command: `{command}`")
    print(f"- Python {platform.python_version()}, numpy {np.__version__}, numba "
          f"{numba.__version__}, logitshift {logitshift.__version__}; scipy "
          f"{version_of('scipy')}, statsmodels {version_of('statsmodels')}, scikit-learn "
          f"{version_of('sklearn')}, glum {version_of('glum')}")
    print(f"- CPU: {cpu_model()}; os.cpu_count() = {os.cpu_count()}; usable CPUs = "
          f"{len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else '?'}; "
          f"numba.get_num_threads() = {numba.get_num_threads()}")
    if load_at_start:
        print(f"- load average before the run (1, 5, 15 min): "
              + " ".join(f"{value:.2f}" for value in load_at_start)
              + (" — **busy (this counts whatever ran in the last minutes): expect noisy "
                 "times**"
                 if load_at_start[0] > 0.25 * (os.cpu_count() or 1) else ""))
    print(f"- data: `np.random.default_rng({SEED})`, offsets f ~ N(0, 2) float64, labels y "
          f"int8 ~ Bernoulli(σ(f − 2)) (answer near −2), generated in chunks of {CHUNK}")
    print("- every time is the median over repeats (`time.perf_counter`), with the floors "
          "timed in the same loop; warm-up on small data first, so numba compile time is "
          "excluded (see the cold first call below)")
    print(f"- comparison rows are skipped where their time, extrapolated linearly in n from "
          f"the largest smaller n measured, exceeds {args.max_seconds:g} s")
    available = mem_available_bytes()
    for n in sizes:
        if n >= LARGE_SIZE:
            need = n * BYTES_PER_ROW
            print(f"- **memory warning**: n = {fmt_n(n)} holds {fmt_bytes(need)} of inputs "
                  f"(float64 offsets + int8 labels); the seed's numpy expressions, statsmodels "
                  f"and glum make several n-sized float64 temporaries on top "
                  f"(MemAvailable now: {fmt_bytes(available)})")
            log(f"WARNING: n = {fmt_n(n)} needs about {fmt_bytes(need)} for the inputs alone")

    if cold:
        print("\n### Cold first call (fresh interpreter, 1000 rows)\n")
        print("| numba cache | import numpy s | import logitshift s | 1st fit(y, f) s | "
              "then 1st newton s | then 1st fit(y) s | warm fit(y, f) s | process wall s |")
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for description, result in cold:
            if "error" in result:
                print(f"| {description} | error: {result['error']} ||||||| ")
                continue
            print(f"| {description} | {result['import_numpy']:.3f} | "
                  f"{result['import_logitshift']:.3f} | {result['first_auto']:.3f} | "
                  f"{result['first_newton']:.3f} | {result['first_no_offset']:.3f} | "
                  f"{result['warm_auto']:.5f} | {result['process_wall']:.2f} |")
    sys.stdout.flush()

    # Warm-up: big enough for every numba thread to get rows, small enough to be quick.
    warm_n = max(10**5, (1 << 17) * numba.get_num_threads())
    warm_labels, warm_offsets = make_data(warm_n)
    rows = logitshift_rows(logitshift)
    skipped_rows: list[str] = []
    for name, builder in (("scipy (seed)", seed_rows), ("scikit-learn", sklearn_rows),
                          ("statsmodels", statsmodels_rows)):
        try:
            rows += builder()
        except ImportError as error:
            skipped_rows.append(f"{name}: not installed ({error})")
    glum_findings: list[str] = []
    try:
        extra, glum_findings = glum_rows(warm_labels, warm_offsets)
        rows += extra
    except ImportError as error:
        skipped_rows.append(f"glum: not installed ({error}); its rows are skipped")
    # B rows first, then A, so the tables read in order; the floor stays first.
    rows = [r for r in rows if r.scenario == "B"] + [r for r in rows if r.scenario == "A"]
    log(f"warming up {len(rows)} rows on n = {warm_n}")
    for row in rows:
        time_one(row, warm_labels, warm_offsets)
        row.result = None
    try:
        threading_layer = numba.threading_layer()
    except Exception:  # noqa: BLE001 - not initialised
        threading_layer = "?"
    del warm_labels, warm_offsets

    print(f"\nnumba threading layer: {threading_layer}.")
    if skipped_rows:
        print("\nSkipped rows: " + "; ".join(skipped_rows) + ".")
    if glum_findings:
        print("\nglum probe (on the warm-up data):\n")
        for finding in glum_findings:
            print(f"- {finding}")

    history: dict[str, tuple[int, float]] = {}
    all_outcomes: dict[int, list[Outcome]] = {}
    floors: dict[int, tuple[float, float]] = {}
    memory: dict[int, dict[str, Any]] = {}
    seed_offsets_row = next(r for r in rows if r.label == SEED_LABEL)
    floor_labels_row = next(r for r in rows if r.label.startswith("floor: `np.sum(y)`"))
    for n in sizes:
        repeats = repeats_for(n, args)
        outcomes, floor = run_size(n, rows, repeats, history, args.max_seconds,
                                   args.row_budget)
        floor_labels = statistics.median(floor_labels_row.times)
        floors[n] = (floor, floor_labels)
        all_outcomes[n] = outcomes
        reference = {
            "B": next(o.shift for o in outcomes if o.label.startswith("logitshift.fit(y, f)")),
            "A": next(o.shift for o in outcomes if o.label == "logitshift.fit(y)"),
        }
        print_size_tables(n, outcomes, floor, floor_labels, reference)
        if not args.no_memory:
            log(f"n = {fmt_n(n)}: memory")
            seed_measured = not any(o.label == seed_offsets_row.label and o.median is None
                                    for o in outcomes)
            memory[n] = memory_for_size(n, logitshift, warm_n,
                                        seed_offsets_row if seed_measured else None)

    if not args.no_targets:
        log(f"n = {fmt_n(sizes[-1])}: targets, host and AVX2-only builds")
        print_targets(sizes[-1], max(5, repeats_for(sizes[-1], args)), all_outcomes[sizes[-1]])

    print("\n### Summary\n")
    print_summary(sizes, all_outcomes, floors, memory)
    if hasattr(os, "getloadavg"):
        print("\nLoad average at the end (1, 5, 15 min, this run included): "
              + " ".join(f"{value:.2f}" for value in os.getloadavg()) + ".")
    print(f"\nTotal wall time: {time.perf_counter() - started:.0f} s.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
