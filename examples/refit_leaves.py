"""Adapt a trained XGBoost model to a new population by refitting its leaves, trees fixed.

The data are statsmodels' ``fair`` survey (6,366 women; the label is "had an affair"). The
model is trained on an old population made by subsampling: half the rows, with 70% of the
positives dropped, so the outcome looks rarer than it is. In the new population (the other
half, every positive kept) its probabilities are too low.

``refit_leaves`` keeps every tree's splits and replaces each leaf's value, tree by tree, by
the exact penalised minimiser of its rows' log loss given the earlier trees (scaled by the
model's learning rate), on a quarter of the rows; the last quarter is held out. XGBoost's
``refresh`` updater, the library's own tool for this, takes one Newton step per leaf.
Run: ``python examples/refit_leaves.py`` (needs xgboost and statsmodels).
"""

from __future__ import annotations

import warnings

import numpy as np
import statsmodels.api as sm
import xgboost

from logitshift.boosting import refit_leaves

PARAMS = {"objective": "binary:logistic", "eta": 0.1, "max_depth": 4, "lambda": 1.0}
ROUNDS = 100


def log_loss(model: xgboost.Booster, features: np.ndarray, labels: np.ndarray) -> float:
    margin = model.predict(xgboost.DMatrix(features), output_margin=True)
    return float(np.mean(np.logaddexp(0.0, margin) - labels * margin))


def main() -> dict[str, float]:
    frame = sm.datasets.fair.load_pandas().data
    labels = (frame["affairs"] > 0).to_numpy(np.float64)
    features = frame.drop(columns="affairs").to_numpy(np.float64)
    rng = np.random.default_rng(0)
    order = rng.permutation(labels.size)
    old, new = order[: labels.size // 2], order[labels.size // 2:]
    old = old[(labels[old] == 0) | (rng.random(old.size) < 0.3)]
    adapt, held_out = new[: new.size // 2], new[new.size // 2:]

    model = xgboost.train(PARAMS, xgboost.DMatrix(features[old], label=labels[old]), ROUNDS)
    result = refit_leaves(model, features[adapt], labels[adapt])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # XGBoost warns about a hand-picked updater
        refreshed = xgboost.train(
            {**PARAMS, "process_type": "update", "updater": "refresh", "refresh_leaf": True},
            xgboost.DMatrix(features[adapt], label=labels[adapt]), ROUNDS, xgb_model=model)

    print(f"positives: {labels[old].mean():.1%} where trained, {labels[new].mean():.1%} in "
          "the new population")
    print(f"refit_leaves: {result.trees.size} trees, {int(result.leaves_changed.sum())} leaves "
          f"changed; loss on the refit rows {result.loss_before:.4f} -> "
          f"{result.loss_after:.4f}")
    print("held-out log loss:")
    outcome = {"loss_before": result.loss_before, "loss_after": result.loss_after}
    for name, booster in (("as trained", model), ("XGBoost refresh", refreshed),
                          ("refit_leaves", result.model)):
        outcome[name] = log_loss(booster, features[held_out], labels[held_out])
        print(f"  {name:16s} {outcome[name]:.4f}")
    return outcome


if __name__ == "__main__":
    main()
