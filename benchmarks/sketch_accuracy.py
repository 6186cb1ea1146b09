"""How accurate is the sketch, by grid width and Taylor order?

For several data sets, evaluates the sketch's gradient, Hessian and loss at shifts around the
answer and compares them with the exact numpy reference over the rows:

    gradient error / Hessian,   Hessian relative error,   loss relative error,
    and the shift's error against the exact (reference) shift, relative to max(1, |shift|).

Usage: python benchmarks/sketch_accuracy.py [--rows N]
"""

from __future__ import annotations

import argparse

import numpy as np

from logitshift import Sketch
from logitshift._estimators.shift import fit_curve
from logitshift._estimators.solve import ArrayCurve


def datasets(n: int, rng: np.random.Generator):
    f = rng.normal(0, 2, n)
    yield "N(0,2), y ~ σ(f-2)", (rng.random(n) < 1 / (1 + np.exp(-(f - 2)))).astype(float), f
    f = rng.normal(0, 30, n)
    yield "N(0,30), y ~ σ(f/10)", (rng.random(n) < 1 / (1 + np.exp(-f / 10))).astype(float), f
    f = rng.normal(-8, 1, n)
    y = np.zeros(n)
    y[rng.integers(0, n, 3)] = 1
    yield "rare positives, f ~ N(-8,1)", y, f
    f = rng.uniform(-5, 5, n)
    yield "soft labels, U(-5,5)", rng.beta(0.5, 0.5, n), f


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    rng = np.random.default_rng(2024)
    print(f"rows per data set: {args.rows}\n")
    print("| data | width | order | max grad err / H | max H rel err | max loss rel err "
          "| shift err |")
    print("|---|---|---|---|---|---|---|")
    for name, labels, offsets in datasets(args.rows, rng):
        exact = ArrayCurve(labels, offsets, None)
        reference = fit_curve(exact, method="newton").shift
        shifts = reference + np.array([-5.0, -1.0, -0.1, 0.0, 0.1, 1.0, 5.0])
        truth = [exact.evaluate(s) for s in shifts]
        for width in (2.0 ** -2, 2.0 ** -3, 2.0 ** -4, 2.0 ** -5):
            for order in (4, 6, 8, 10):
                sketch = Sketch(width, order).update(labels, offsets)
                gradient = hessian = loss = 0.0
                for s, t in zip(shifts, truth):
                    e = sketch.evaluate(s)
                    gradient = max(gradient, abs(e.gradient - t.gradient) / t.hessian)
                    hessian = max(hessian, abs(e.hessian - t.hessian) / t.hessian)
                    loss = max(loss, abs(e.loss - t.loss) / t.loss)
                shift_error = abs(sketch.solve().shift - reference) / max(1, abs(reference))
                print(f"| {name} | 2^{int(np.log2(width))} | {order} | {gradient:.1e} "
                      f"| {hessian:.1e} | {loss:.1e} | {shift_error:.1e} |")


if __name__ == "__main__":
    main()
