"""The rows the R reference (vglm.R) fits: written once, read by R and by the tests."""

import numpy as np

rng = np.random.default_rng(20)
for name, n, k, weighted in (("k3", 300, 3, False), ("k4_weighted", 500, 4, True)):
    logits = rng.normal(size=(n, k)) * 1.5
    truth = rng.normal(size=k) * 0.6
    probability = np.exp(logits + truth)
    probability /= probability.sum(axis=1, keepdims=True)
    y = (probability.cumsum(axis=1) > rng.random((n, 1))).argmax(axis=1)
    weight = rng.uniform(0.2, 3.0, size=n).round(3) if weighted else np.ones(n)
    columns = [y, weight] + [logits[:, j] for j in range(k)]
    header = "y,weight," + ",".join(f"f{j}" for j in range(k))
    np.savetxt(f"{name}.csv", np.column_stack(columns), delimiter=",", header=header,
               comments="", fmt=["%d", "%.3f"] + ["%.17g"] * k)
