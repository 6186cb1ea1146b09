"""The data behind valprob_reference.R: written once, kept as CSV so that the R output and
the tests read the same rows whatever numpy or scikit-learn version runs later.

- synthetic.csv: y ~ Bernoulli(σ(0.3 + 0.8·lp)), lp ~ N(0, 1.5²), n = 2000, with integer
  frequency weights: a model that is miscalibrated in the large and in slope.
- breast_cancer.csv: scikit-learn's breast-cancer data, a logistic regression fitted on the
  even rows and applied to the odd rows (lp: its decision function there); a real model on
  data it did not see.

Run from the repository root: python tests/data/valprob/make_data.py
"""

from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def synthetic() -> None:
    rng = np.random.default_rng(20261202)
    n = 2000
    lp = rng.normal(0.0, 1.5, n)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(0.3 + 0.8 * lp)))).astype(int)
    w = rng.integers(1, 4, n)
    lines = ["y,lp,w"] + [f"{a},{b!r},{c}" for a, b, c in zip(y, lp.tolist(), w)]
    (HERE / "synthetic.csv").write_text("\n".join(lines) + "\n")


def breast_cancer() -> None:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=1000))
    model.fit(X[::2], y[::2])
    lp = model.decision_function(X[1::2])
    lines = ["y,lp"] + [f"{a},{b!r}" for a, b in zip(y[1::2], lp.tolist())]
    (HERE / "breast_cancer.csv").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    synthetic()
    breast_cancer()
