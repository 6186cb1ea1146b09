"""Recalibrate a classifier in the large for a new population with ``ShiftCalibrator``.

A model for the breast-cancer data was developed on a sample where benign tumours were rare
(one in five); in the population it now serves, about three in five are. Its scores still
rank the tumours well, but its probabilities of "benign" are too low. ``ShiftCalibrator``
keeps the model and adds one constant to its log-odds, fitted on calibration data from the
new population (``glm(y ~ 1, offset = lp, family = binomial)`` in R); Platt scaling
(``CalibratedClassifierCV(method="sigmoid")``) fits a slope too. Run:
``python examples/sklearn_calibration.py``.
"""

from __future__ import annotations

import numpy as np
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_breast_cancer
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from logitshift.sklearn import ShiftCalibrator


def main() -> dict[str, float]:
    features, labels = load_breast_cancer(return_X_y=True)  # label 1 is benign
    rows = np.random.default_rng(0).permutation(labels.size)
    development, new_population = rows[:300], rows[300:]
    # The development sample keeps every malignant tumour and a quarter as many benign ones.
    malignant = development[labels[development] == 0]
    benign = development[labels[development] == 1][: malignant.size // 4]
    development = np.concatenate([malignant, benign])
    calibration, test = new_population[:130], new_population[130:]

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.3))
    model.fit(features[development], labels[development])
    shifted = ShiftCalibrator(FrozenEstimator(model))
    shifted.fit(features[calibration], labels[calibration])
    platt = CalibratedClassifierCV(FrozenEstimator(model), method="sigmoid")
    platt.fit(features[calibration], labels[calibration])

    losses = {name: log_loss(labels[test], calibrated.predict_proba(features[test]))
              for name, calibrated in [("uncalibrated", model), ("shift", shifted),
                                       ("platt", platt)]}
    result = shifted.fit_
    low, high = result.confint()
    print(f"benign share: development {labels[development].mean():.2f}, "
          f"calibration {labels[calibration].mean():.2f}")
    print(f"shift {result.shift:.3f} (95% CI {low:.3f} to {high:.3f}), "
          f"O/E before it {result.observed_expected.ratio:.3f}")
    print("test log loss: " + ", ".join(f"{name} {loss:.4f}" for name, loss in losses.items()))
    return {"shift": result.shift, "ci_low": low, "ci_high": high,
            **{f"test_loss_{name}": loss for name, loss in losses.items()}}


if __name__ == "__main__":
    main()
