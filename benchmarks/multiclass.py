"""Multiclass recalibration: the in-memory targets of issue 20.

Run from the repository root::

    python benchmarks/multiclass.py               # everything below, a few minutes
    python benchmarks/multiclass.py --repeats 3   # fewer repeats

Every timing is the median over ``--repeats`` runs, its baseline timed in the same process,
interleaved with it. The output is Markdown.

1. n = 1e6, K = 10, float32 and float64: ``fit_multiclass`` with ``"shift"`` and
   ``"bias_temperature"`` against one ``scipy.special.softmax(F, axis=1)`` and against
   scikit-learn's temperature scaling (the calibrator that
   ``CalibratedClassifierCV(method="temperature")`` fits, on the same logits), with the mean
   cross-entropy each reaches. PyTorch's LBFGS recipe is timed where torch is installed.
2. n = 5e4, K = 1000 (float32): every method's time, passes, and its peak of traced memory
   (numpy allocations; the kernels' own scratch is O(K) per thread).
3. Where the dense Hessian stops paying: ``solver="dense"`` against ``"cg"`` for K from 16
   to 256 at n·K = 4e6.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import platform
import statistics
import time
import tracemalloc
import warnings

import numpy as np
import scipy.special

import logitshift
from logitshift._core.softmax import log_softmax


def simulate(n: int, k: int, dtype, seed: int = 0):
    """Logits of a model that is overconfident by 1/0.7 and off by a bias per class."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 2.0
    bias = rng.normal(size=k) * 0.5
    probability = np.exp(0.7 * logits + bias)
    probability /= probability.sum(axis=1, keepdims=True)
    y = (probability.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    return y, logits.astype(dtype)


def median_time(function, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        gc.collect()
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def mean_loss(y: np.ndarray, logits: np.ndarray) -> float:
    return float(-np.mean(log_softmax(logits)[np.arange(len(y)), y]))


def section_targets(repeats: int) -> None:
    slow_repeats = max(1, repeats // 3)  # the peers take seconds to a minute a run
    print("## n = 1e6, K = 10\n")
    print("| dtype | what | median s | × softmax | loss reached |")
    print("|---|---|---:|---:|---:|")
    for dtype in (np.float32, np.float64):
        y, logits = simulate(10**6, 10, dtype)
        logitshift.fit_multiclass(y[:1000], logits[:1000], method="bias_temperature")
        logitshift.fit_multiclass(y[:1000], logits[:1000], method="shift")
        rows = {}
        softmax_times, shift_times, bias_times = [], [], []
        for _ in range(repeats):  # interleaved, so that the machine's load hits all alike
            softmax_times.append(median_time(lambda: scipy.special.softmax(logits, axis=1),
                                             1)[0])
            elapsed, shift = median_time(lambda: logitshift.fit_multiclass(
                y, logits, method="shift"), 1)
            shift_times.append(elapsed)
            elapsed, both = median_time(lambda: logitshift.fit_multiclass(
                y, logits, method="bias_temperature"), 1)
            bias_times.append(elapsed)
        softmax = statistics.median(softmax_times)
        rows["scipy.special.softmax(F, axis=1)"] = (softmax, math_nan())
        rows[f"fit_multiclass shift ({shift.passes} passes)"] = (
            statistics.median(shift_times), shift.loss)
        rows[f"fit_multiclass bias_temperature ({both.passes} passes)"] = (
            statistics.median(bias_times), both.loss)
        temperature = logitshift.fit_multiclass(y, logits, method="temperature")
        rows[f"fit_multiclass temperature ({temperature.passes} passes)"] = (
            median_time(lambda: logitshift.fit_multiclass(y, logits, method="temperature"),
                        repeats)[0], temperature.loss)
        try:
            from sklearn.calibration import _TemperatureScaling

            elapsed, scaler = median_time(lambda: _TemperatureScaling().fit(logits, y),
                                          slow_repeats)
            rows["scikit-learn temperature scaling"] = (
                elapsed, mean_loss(y, float(scaler.beta_) * logits.astype(np.float64)))
        except ImportError:
            rows["scikit-learn temperature scaling"] = (math_nan(), math_nan())
        if importlib.util.find_spec("torch") is not None:
            rows["PyTorch LBFGS temperature"] = torch_lbfgs(y, logits, slow_repeats)
        else:
            rows["PyTorch LBFGS temperature: torch not installed"] = (math_nan(), math_nan())
        for what, (elapsed, loss) in rows.items():
            print(f"| {np.dtype(dtype).name} | {what} | {elapsed:.3f} | "
                  f"{elapsed / softmax:.2f} | {loss:.9f} |")
    print()


def torch_lbfgs(y, logits, repeats):
    """The widely copied recipe: one temperature, LBFGS (lr 0.01, max_iter 50) on the NLL."""
    import torch

    tensor_logits = torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32))
    labels = torch.from_numpy(y)

    def run():
        temperature = torch.nn.Parameter(torch.ones(1) * 1.5)
        optimizer = torch.optim.LBFGS([temperature], lr=0.01, max_iter=50)
        loss_function = torch.nn.CrossEntropyLoss()

        def closure():
            optimizer.zero_grad()
            loss = loss_function(tensor_logits / temperature, labels)
            loss.backward()
            return loss

        optimizer.step(closure)
        return float(temperature.item())

    elapsed, temperature = median_time(run, repeats)
    return elapsed, mean_loss(y, logits.astype(np.float64) / temperature)


def math_nan() -> float:
    return float("nan")


def section_imagenet(repeats: int) -> None:
    print("## n = 5e4, K = 1000 (float32 logits, 200 MB)\n")
    print("| method | median s | passes | Hessian-vector products | status | "
          "peak traced MiB |")
    print("|---|---:|---:|---:|---|---:|")
    rng = np.random.default_rng(1)
    n, k = 50_000, 1000
    y = rng.integers(0, k, n)
    logits = (rng.normal(size=(n, k)) * 1.5).astype(np.float32)
    logits[np.arange(n), y] += 4.0
    for method in ("shift", "temperature", "bias_temperature", "vector"):
        logitshift.fit_multiclass(y[:5000], logits[:5000], method=method)
        elapsed, result = median_time(lambda: logitshift.fit_multiclass(
            y, logits, method=method), repeats)
        tracemalloc.start()
        logitshift.fit_multiclass(y, logits, method=method)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        print(f"| {method} | {elapsed:.2f} | {result.passes} | {result.hessian_products} | "
              f"{result.status} | {peak / 2**20:.0f} |")
    print()


def section_switch(repeats: int) -> None:
    print("## Dense Hessian or conjugate gradients (n·K = 4e6, float64)\n")
    print("| K | method | dense s | cg s | cg / dense |")
    print("|---:|---|---:|---:|---:|")
    for k in (16, 32, 64, 128, 256):
        y, logits = simulate(4_000_000 // k, k, np.float64, seed=k)
        for method in ("shift", "bias_temperature"):
            times = {}
            for solver in ("dense", "cg"):
                logitshift.fit_multiclass(y[:2000], logits[:2000], method=method,
                                          solver=solver)
                times[solver] = median_time(lambda: logitshift.fit_multiclass(
                    y, logits, method=method, solver=solver), repeats)[0]
            print(f"| {k} | {method} | {times['dense']:.3f} | {times['cg']:.3f} | "
                  f"{times['cg'] / times['dense']:.2f} |")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sections", nargs="*", default=["targets", "imagenet", "switch"])
    options = parser.parse_args()
    warnings.simplefilter("ignore")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, numpy {np.__version__}, load average "
          f"{os.getloadavg()[0]:.2f} at the start\n")
    for name in options.sections:
        {"targets": section_targets, "imagenet": section_imagenet,
         "switch": section_switch}[name](options.repeats)
    print(f"Load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
